/*
 * ak_opts — reading an adapter's settings the same way everywhere, and stopping it the same
 * way: a non-empty value from the environment / ~/.hermes/.env (hm_config_getenv), comma
 * lists from the environment or from config.yaml (a YAML list or one comma string), the
 * false words, NULL-terminated string vectors, and the gateway's stop hook that lets an
 * adapter drain before it is stopped.
 *
 * Threads: any thread (the settings are read before the actor starts); ak_stop_drained only
 * from a non-worker thread (it waits).
 */
#ifndef AK_OPTS_H
#define AK_OPTS_H

#include "rt_actor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hm_config hm_config;

/* The variable's value when set and non-empty, else NULL (borrowed from cfg). */
const char *ak_getv(const hm_config *cfg, const char *name);
/* "a, b,c" → a NULL-terminated vector of trimmed non-empty items (ak_strv_free), or NULL
 * when there is none. */
char **ak_split_list(const char *s);
/* The list in environment variable env, else config.yaml's key (a list, or one string of
 * comma-separated items); NULL when neither has an item. At most 64 items from YAML. */
char **ak_list_setting(const hm_config *cfg, const char *env, const char *key);
/* "false", "0", "no", "off" in any case. */
bool ak_is_false(const char *v);
/* "true", "1", "yes" in any case (the original's only "on" words for some switches). */
bool ak_is_true(const char *v);
/* A copy of v (NULL → NULL) / free one. */
char **ak_strv_dup(char *const *v);
void ak_strv_free(char **v);
/* Whether s is one of v's items (NULL v or s: false). */
bool ak_strv_has(char *const *v, const char *s);

/*
 * The gw_adapter_def stop hook's body: send the adapter its drain message (drain(cx, ref)),
 * give it grace_ms (≤ 0: 1 s; at most 10 s) to send what is queued and end by itself, then
 * rt_stop it if it has not. Blocks the calling (non-worker) thread up to that long.
 */
void ak_stop_drained(rt_ctx *cx, rt_ref ref, int64_t grace_ms, void (*drain)(rt_ctx *, rt_ref));

#endif /* AK_OPTS_H */
