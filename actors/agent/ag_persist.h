/*
 * ag_persist — how a session talks to the state store (actors/store): every call is one
 * message; with store == 0 (no state.db, e.g. tests) they do nothing.
 *
 * Threads: any thread (they only build and send messages).
 */
#ifndef AG_PERSIST_H
#define AG_PERSIST_H

#include "rt_actor.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

/* The session's row (an existing one is acked -EEXIST); ack_to/tag: 0 for no ack. */
void ag_persist_create_session(rt_ctx *cx, rt_ref store, rt_ref ack_to, uint64_t tag,
                               const char *id, const char *source, const char *user_id,
                               const char *model);
/* A session continuing parent_id after compression (sessions.parent_session_id). */
void ag_persist_create_child(rt_ctx *cx, rt_ref store, const char *id, const char *source,
                             const char *user_id, const char *model, const char *parent_id);
/* Keep the first keep messages of session id in state.db (/undo, /retry). */
void ag_persist_truncate(rt_ctx *cx, rt_ref store, const char *id, int64_t keep);
void ag_persist_end_session(rt_ctx *cx, rt_ref store, const char *id, const char *reason);
void ag_persist_system_prompt(rt_ctx *cx, rt_ref store, const char *id, const char *prompt);
void ag_persist_tokens(rt_ctx *cx, rt_ref store, const char *id, int64_t in, int64_t out);
/* One transcript message (neutral format); ack_to/tag: 0 for no ack. */
void ag_persist_message(rt_ctx *cx, rt_ref store, const char *id, const cJSON *m, rt_ref ack_to,
                        uint64_t tag);
/* The model's message with the tokens of the call that produced it, added to the session's
 * counters in the same write (no ack). */
void ag_persist_answer(rt_ctx *cx, rt_ref store, const char *id, const cJSON *m, int64_t in,
                       int64_t out);
/* Ask for an ack once everything sent before is durable. */
void ag_persist_sync(rt_ctx *cx, rt_ref store, rt_ref reply_to, uint64_t tag);
/* Ask a reader for a session's row and then its transcript (one reader answers in order):
 * the answers are recognised by is_session_row and is_history. */
void ag_persist_load(rt_ctx *cx, rt_ref reader, const char *id, rt_ref reply_to);

/* Is m a store ack? Then its tag, err and message. */
bool ag_persist_is_ack(rt_msg *m, uint64_t *tag, int *err, const char **errmsg);
/* Is m the answer to ag_persist_load? Then the transcript (taken from m; NULL on error or
 * an unknown session: a new session). */
bool ag_persist_is_history(rt_msg *m, cJSON **history);
/* Is m the session row asked for by ag_persist_load? Then what a reloaded session keeps from
 * it: the system prompt stored with its first turn (new string, NULL when none: an unknown
 * session, or one that never had a turn) and its token counts so far. */
bool ag_persist_is_session_row(rt_msg *m, char **system_prompt, int64_t *input_tokens,
                               int64_t *output_tokens);

#endif /* AG_PERSIST_H */
