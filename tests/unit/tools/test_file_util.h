/*
 * test_file_util — shared by the tools/file tests: a fake session that runs tool calls
 * through the registry exactly as the agent's session does (a call actor linked as its
 * child, the result as TOOL_MSG_RESULT), plus small file helpers.
 */
#ifndef TEST_FILE_UTIL_H
#define TEST_FILE_UTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct tf_session tf_session;

/* A runtime and a session whose tools work in cwd. */
tf_session *tf_open(const char *cwd);
void tf_close(tf_session *s);

/* Start a call of tool with the JSON arguments; tf_wait returns its result (new string)
 * within 20 s or fails the test. */
void tf_start(tf_session *s, const char *tool, const char *args_json);
char *tf_wait(tf_session *s);
/* Whether the result has arrived (non-blocking). */
bool tf_done(tf_session *s);
/* Interrupt the session (and so its running call). */
void tf_interrupt(tf_session *s);
bool tf_was_interrupted(tf_session *s);

/* tf_start + tf_wait, parsed. */
cJSON *tf_call(tf_session *s, const char *tool, const char *args_json);

/* cJSON helpers that fail the test when the key is missing. */
const char *tf_str(const cJSON *o, const char *key);
double tf_num(const cJSON *o, const char *key);
bool tf_bool(const cJSON *o, const char *key);

/* Files: write (creating), read (new string or NULL), path join (new string). */
void tf_write(const char *path, const char *content);
char *tf_read(const char *path);
char *tf_join(const char *dir, const char *name);

/* Build JSON args with printf; strings passed through tf_q are JSON-quoted (new). */
char *tf_q(const char *s);

#endif /* TEST_FILE_UTIL_H */
