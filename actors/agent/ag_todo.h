/*
 * ag_todo — the `todo` tool. Its list belongs to the session (agent-core §3.4), so the
 * session applies calls itself instead of starting a call actor.
 *
 * Pure; any thread.
 */
#ifndef AG_TODO_H
#define AG_TODO_H

#include <cjson/cJSON.h>

/* Apply one call's arguments to *todos (an array, replaced or merged as the original) and
 * return the result JSON text (new string). */
char *ag_todo_apply(cJSON **todos, const char *args_json);
/* The user message that re-injects the list after compression, or NULL when empty. */
char *ag_todo_injection(const cJSON *todos);
/* The latest list found in a history (the last tool result with a "todos" array), or NULL. */
cJSON *ag_todo_hydrate(const cJSON *messages);

#endif /* AG_TODO_H */
