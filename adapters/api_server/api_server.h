/*
 * api_server — the OpenAI-compatible HTTP API server adapter (gateway.md §10.1-10.3).
 *
 * One actor answers every HTTP request of one rt_httpd listener (runtime/io/rt_httpd.h) and
 * speaks to the gateway through actors/gateway/gw.h only: a chat completion becomes one
 * GW_MSG_EVENT (platform "api_server", internal: the key authenticated it) whose reply target
 * carries a per-request id; the gateway answers with GW_OUT_DELTA / GW_OUT_TEXT /
 * GW_OUT_TURN_END addressed to that id, which the actor turns into a JSON body or an SSE
 * stream. Endpoints: GET /health, /v1/health, /health/detailed, /v1/models and
 * POST /v1/chat/completions. /v1/responses, /v1/runs and /api/jobs are not implemented yet
 * (501 with an OpenAI error envelope). docs/api-server.md is the user's guide.
 *
 * Security (gateway.md §10.1), enforced before any request reaches the gateway:
 *   1. A bind address that is not loopback needs a key that is not a placeholder and has at
 *      least 8 characters; otherwise api_server_start refuses with the original's message.
 *   2. With a key, every endpoint except the health checks needs "Authorization: Bearer
 *      <key>"; the comparison is constant-time over SHA-256 digests, so neither the content
 *      nor the length of the key leaks through timing. The key is never logged.
 *   3. Browser origins: a request with an Origin header not in API_SERVER_CORS_ORIGINS gets
 *      403 before anything else; OPTIONS preflights are answered here.
 *   4. Bodies over 1,000,000 bytes get 413 body_too_large (rt_httpd refuses bodies over
 *      1 MiB itself); message texts are capped (64 KB, 1000 parts, depth 10).
 *   5. Message contents are never logged (TRACE excepted, which release builds compile out).
 *
 * Concurrency: requests are independent; at most max_inflight chat completions (including
 * cancelled ones whose turn has not ended yet) are in flight, more get 429. Two requests for
 * one session are both sent to the gateway, which serializes them (caps.api).
 *
 * Threads: api_server_start/api_server_stop from the controlling thread (not a worker, not
 * the lws service thread: they wait for the service thread); the getters from any thread;
 * the actor runs on workers.
 */
#ifndef API_SERVER_H
#define API_SERVER_H

#include "gw.h"
#include "rt_actor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rt_reactor rt_reactor;
typedef struct rt_lws rt_lws;
typedef struct hm_config hm_config;

#define API_SERVER_PLATFORM     "api_server"
#define API_SERVER_DEFAULT_PORT 8642
#define API_SERVER_MAX_BODY     1000000 /* bytes; 413 body_too_large above */

typedef struct api_server_opts {
    const char *host;           /* IP address or host name to bind; NULL: "127.0.0.1" */
    int port;                   /* 0: an ephemeral port (tests); see api_server_port */
    const char *key;            /* bearer key; NULL or "": none (loopback only) */
    const char *cors_origins;   /* comma-separated allowed browser origins, "*" for any; NULL */
    const char *model_name;     /* advertised model; NULL: "hermes-agent" */
    const char *hermes_home;    /* where gateway_state.json lives; NULL: basics only */
    size_t max_inflight;        /* chat completions in flight; 0: 64 */
    int64_t keepalive_ms;       /* SSE ": keepalive" after this much silence; 0: 30 s */
    int64_t request_timeout_ms; /* a non-streamed reply must start within; 0: 6 h */
    int64_t cancel_grace_ms;    /* a cancelled request's slot is freed by then; 0: 30 s */
    rt_reactor *reactor;        /* reads gateway_state.json off the workers; NULL: basics */
    rt_lws *lws;                /* the lws service to serve on (required) */
    char *owned_[6];            /* strings api_server_opts_from_config allocated */
} api_server_opts;

/*
 * The settings the original reads (gateway.md §1.3, §10.1): API_SERVER_ENABLED (truthy) or a
 * non-empty API_SERVER_KEY or platforms.api_server.enabled turn it on; API_SERVER_KEY/HOST/
 * PORT/CORS_ORIGINS/MODEL_NAME, each falling back to platforms.api_server.extra.{key, host,
 * port, cors_origins (string or list), model_name}; extra.max_concurrent sets max_inflight.
 * Fills o (host 127.0.0.1 and port 8642 by default; hermes_home from cfg; reactor and lws
 * left NULL for the caller). Returns 1 (enabled), 0 (not enabled) or -EINVAL with a sentence
 * in err (a port that is not a number in 1..65535, a bad max_concurrent). Free with
 * api_server_opts_fini. Any thread (reads the environment).
 */
int api_server_opts_from_config(const hm_config *cfg, api_server_opts *o, char *err, size_t errlen);
void api_server_opts_fini(api_server_opts *o);

typedef struct api_server api_server;

/*
 * Check the security rules, bind, listen, spawn the adapter actor and announce it to the
 * gateway (GW_MSG_ADAPTER_UP to GW_NAME with caps api, streams and progress; if the gateway
 * is not registered yet it is announced before the first event). o and its strings are
 * copied. cx: the controlling thread's context (rt_ctx_external). Returns 0 and *out, or
 * -errno with the reason in err: -EINVAL (no lws service, bad options, host cannot be
 * resolved), -EPERM (a network-accessible address without a usable key: the original's
 * "Refusing to start: …" message), -EADDRINUSE ("Port N already in use. …", or bind's own
 * error), other bind errors.
 */
int api_server_start(rt_ctx *cx, const api_server_opts *o, api_server **out, char *err,
                     size_t errlen);
/* The adapter actor (the gateway's `adapter` for its events). */
rt_ref api_server_ref(const api_server *s);
/* The bound port. */
int api_server_port(const api_server *s);
/*
 * Tell the gateway the adapter is down, stop accepting, let requests in flight finish for up
 * to grace_ms (then their clients are disconnected and their turns cancelled), stop the
 * actor and free s. Call before rt_lws_stop. NULL: no-op.
 */
void api_server_stop(rt_ctx *cx, api_server *s, int64_t grace_ms);

#endif /* API_SERVER_H */
