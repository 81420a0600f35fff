/*
 * adapter_env — the world the API server and proxy tests run in: a runtime with a fake clock
 * (timers move only with tenv_advance), the reactor with the HTTP client, the lws service,
 * optionally the gateway double, and the API server itself; plus a small raw HTTP client
 * (tests/unit/io/lws_httpc) and an agent-protocol sink for proxy sessions.
 *
 * Threads: everything from the test's main thread, except the sink's records (any thread).
 */
#ifndef ADAPTER_ENV_H
#define ADAPTER_ENV_H

#include "api_server.h"
#include "gw_double.h"
#include "lws_httpc.h"
#include "rt_sched.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WAIT_MS  10000
#define TEST_KEY "sk-test-0123456789abcdef"

typedef struct tenv {
    rt_runtime *rt;
    rt_reactor *re;
    rt_lws *l;
    rt_ctx *cx;
    gwd *gw; /* NULL without the gateway double */
    api_server *srv;
    int port;
} tenv;

/* Runtime, reactor, HTTP client, lws and (with_gateway) the gateway double. */
void tenv_init(tenv *e, bool with_gateway);
/* Start the API server with o (lws and reactor filled in); 0 or the start error. */
int tenv_server(tenv *e, api_server_opts *o, char *err, size_t errlen);
/* Start with just a key (NULL: none) and defaults; asserts success. */
void tenv_server_key(tenv *e, const char *key);
/* Move the fake clock. */
void tenv_advance_ms(tenv *e, int64_t ms);
/* Stop everything and free it (asserts the runtime went quiet). */
void tenv_fini(tenv *e);

/* One request: headers are extra "Name: value\r\n" lines (or NULL); body may be NULL.
 * Returns 0 and fills r (free with hc_resp_free), or -1. */
int treq(int port, const char *method, const char *path, const char *headers, const char *body,
         hc_resp *r);
/* Send a request on an open connection (no read). */
int treq_send(hc_conn *c, const char *method, const char *path, const char *headers,
              const char *body);
/* Read raw bytes until needle appears in acc (NUL-terminated, cap bytes); 0 or -1. */
int tread_until(hc_conn *c, const char *needle, char *acc, size_t cap);

/* ---- a sink for the agent protocol (AG_MSG_DELTA / PROGRESS / STATUS / DONE) ---- */

typedef struct tsink_ev {
    uint32_t type;
    uint64_t turn;
    char *text;   /* delta text, progress preview, done text */
    char *tool;   /* progress */
    char *errmsg; /* done */
    char *session_id;
    int err;
    bool interrupted;
    bool completed;
    uint64_t input_id;
    int64_t prompt_tokens, completion_tokens;
} tsink_ev;

typedef struct tsink tsink;
tsink *tsink_new(rt_runtime *rt);
rt_ref tsink_ref(tsink *s);
int tsink_wait(tsink *s, uint32_t type, int n, int64_t timeout_ms);
int tsink_count(tsink *s, uint32_t type);
const tsink_ev *tsink_get(tsink *s, uint32_t type, int i);
/* Concatenated AG_MSG_DELTA texts of a turn (new string). */
char *tsink_deltas(tsink *s, uint64_t turn);
void tsink_free(tsink *s);

#endif /* ADAPTER_ENV_H */
