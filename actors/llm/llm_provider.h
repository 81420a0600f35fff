/*
 * llm_provider — one actor per LLM provider and key: it turns requests from sessions into
 * HTTP calls (streamed), retries what is worth retrying, and guards the provider.
 *
 * Admission: at most max_inflight requests on the wire, a token bucket of rate_per_s with
 * burst, and two priorities — the main agent's calls go before auxiliary ones (compression
 * summaries, session-search summaries). Requests that cannot go out yet wait in the
 * provider's queue, not on a worker. When the provider rate-limits (429, Retry-After) or
 * is overloaded, the whole provider pauses until the advertised time and every waiting
 * session is told it is "waiting for the provider" (LLM_MSG_STATUS) instead of failing.
 * That notice goes at most once per request, and only to a request that is held back
 * (queued behind the pause or waiting for its retry), never to one on the wire: a request
 * retried ten times gets one notice, not ten.
 *
 * Retries: rate limits, overload, 5xx, network errors, timeouts and malformed or cut-short
 * responses are retried with exponential backoff and full jitter (base 1 s, cap 60 s),
 * honouring Retry-After, up to max_retries; client errors (401, 402, 403, 404, 400) are
 * not. A streamed request that already delivered content deltas is not retried silently:
 * the session is told (LLM_MSG_RESULT with the error) so the user never sees text twice.
 *
 * Exactly one LLM_MSG_RESULT answers each LLM_MSG_REQUEST, also after LLM_MSG_CANCEL
 * (err -ECANCELED) and when the provider stops.
 *
 * Invariants (llm_provider.c cites them):
 *   1. One RESULT per request, always last for its tag: success, failure, cancel, stop.
 *   2. DELTA messages of a request come in stream order, before its RESULT, and only for
 *      the attempt that produced the RESULT (a retried attempt never delivered any).
 *   3. At most max_inflight HTTP transfers are open; a cancelled transfer counts until the
 *      HTTP client confirms it ended. Queued requests hold no transfer and no worker.
 *   4. MAIN requests leave the queue before AUX ones; FIFO within a priority; a retry goes
 *      back to the front of its priority (it is older than everything behind it).
 *   5. The API key never reaches a log line or an errmsg (provider messages that echo it
 *      are masked).
 *
 * Requests are matched to cancels by (reply_to, tag): a cancel names `from` = the
 * request's reply_to. See docs/providers.md for the user-facing description.
 *
 * Threads: the message constructors and llm_provider_start from any thread (with that
 * thread's context); the actor itself runs on the pool and never blocks.
 */
#ifndef LLM_PROVIDER_H
#define LLM_PROVIDER_H

#include "llm_wire.h"
#include "rt_actor.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

enum {
    LLM_MSG_REQUEST = RT_MSG_TYPE(RT_MSG_MODULE_LLM, 1),   /* session → provider */
    LLM_MSG_CANCEL = RT_MSG_TYPE(RT_MSG_MODULE_LLM, 2),    /* session → provider (urgent) */
    LLM_MSG_DELTA = RT_MSG_TYPE(RT_MSG_MODULE_LLM, 3),     /* provider → session */
    LLM_MSG_STATUS = RT_MSG_TYPE(RT_MSG_MODULE_LLM, 4),    /* provider → session */
    LLM_MSG_RESULT = RT_MSG_TYPE(RT_MSG_MODULE_LLM, 5),    /* provider → session */
    LLM_MSG_STATS_GET = RT_MSG_TYPE(RT_MSG_MODULE_LLM, 6), /* anyone → provider */
    LLM_MSG_STATS = RT_MSG_TYPE(RT_MSG_MODULE_LLM, 7),     /* provider → asker */
};

enum llm_priority { LLM_PRIO_MAIN = 0, LLM_PRIO_AUX = 1 };

typedef struct llm_msg_request {
    rt_msg hdr;
    rt_ref reply_to;
    uint64_t tag;       /* echoed in every reply */
    int priority;       /* llm_priority */
    char *model;        /* owned; NULL: the provider's default model */
    cJSON *messages;    /* owned: neutral messages, system first; may hold reference items
                           into memory that `keep` keeps alive and nobody changes */
    cJSON *tools;       /* owned: [{name, description, parameters}], or NULL */
    cJSON *extra;       /* owned: OpenAI body extras (reasoning, provider routing), or NULL */
    int64_t max_tokens; /* 0: unset */
    double temperature; /* < 0: unset */
    bool stream;        /* pass content deltas on as they arrive */
    int64_t timeout_ms; /* 0: the provider's default */
    void *keep;         /* released with keep_drop(keep) after messages, or NULL */
    void (*keep_drop)(void *keep); /* any thread */
} llm_msg_request;

typedef struct llm_msg_cancel {
    rt_msg hdr;
    rt_ref from;
    uint64_t tag;
} llm_msg_cancel;

typedef struct llm_msg_delta {
    rt_msg hdr;
    uint64_t tag;
    int kind;   /* LLM_DELTA_CONTENT / LLM_DELTA_REASONING */
    char *text; /* owned */
} llm_msg_delta;

typedef struct llm_msg_status {
    rt_msg hdr;
    uint64_t tag;
    char *text;          /* owned, user-facing: "Waiting for the provider (rate limited) …" */
    int64_t retry_in_ms; /* when the next attempt is due, or 0 */
    int attempt;         /* attempts made so far */
} llm_msg_status;

typedef struct llm_msg_result {
    rt_msg hdr;
    uint64_t tag;
    int err;           /* 0, or -errno (-ECANCELED when cancelled) */
    llm_err_kind kind; /* error class when err != 0 */
    int http_status;   /* last HTTP status, 0 when none */
    char *errmsg;      /* owned user-facing text when err != 0 */
    llm_result result; /* owned, valid when err == 0 */
    int attempts;
    int64_t latency_ms; /* from the request's arrival to this result */
} llm_msg_result;

/* Constructors with drop functions set; the request takes ownership of the cJSON trees. */
llm_msg_request *llm_request_new(rt_ref reply_to, uint64_t tag, cJSON *messages, cJSON *tools);
rt_msg *llm_cancel_new(rt_ref from, uint64_t tag);
/* Replies; their drop frees every owned field (text, errmsg, result). */
llm_msg_result *llm_result_msg_new(uint64_t tag);
rt_msg *llm_delta_new(uint64_t tag, int kind, const char *text, size_t len);
rt_msg *llm_status_new(uint64_t tag, const char *text, int64_t retry_in_ms, int attempt);

/* ---- observability (`hermes status`) ---- */

/* A snapshot of one provider's counters; the totals count since the provider started. */
typedef struct llm_provider_stats {
    uint64_t requests;            /* LLM_MSG_REQUEST received */
    uint64_t succeeded;           /* answered with a result */
    uint64_t failed;              /* answered with an error (not counting cancels and refusals) */
    uint64_t cancelled;           /* answered -ECANCELED: LLM_MSG_CANCEL or the provider stopping */
    uint64_t rejected;            /* refused on arrival: invalid request or queue full */
    uint64_t attempts;            /* HTTP requests started */
    uint64_t retries;             /* attempts scheduled again after a retryable failure */
    uint64_t rate_limited;        /* HTTP 429 responses */
    uint64_t overloaded;          /* HTTP 529 / overloaded_error responses */
    uint64_t pauses;              /* times the whole provider paused on Retry-After */
    uint64_t deltas;              /* LLM_MSG_DELTA sent */
    uint32_t inflight;            /* HTTP transfers open now (rule 3 of the invariants) */
    uint32_t queued_main;         /* waiting for admission, LLM_PRIO_MAIN */
    uint32_t queued_aux;          /* waiting for admission, LLM_PRIO_AUX */
    uint32_t backoff;             /* waiting for their retry timer */
    int64_t paused_for_ms;        /* until the provider-wide pause ends; 0 when not paused */
    int64_t paused_until_unix_ms; /* the same as wall-clock time; 0 when not paused */
} llm_provider_stats;

/* Ask a provider for its counters: it answers reply_to with one LLM_MSG_STATS. */
typedef struct llm_msg_stats_get {
    rt_msg hdr;
    rt_ref reply_to;
    uint64_t tag; /* echoed */
} llm_msg_stats_get;

typedef struct llm_msg_stats {
    rt_msg hdr;
    uint64_t tag;
    char name[32]; /* the provider's opts.name (cut to fit) */
    llm_provider_stats s;
} llm_msg_stats;

/* Constructor for LLM_MSG_STATS_GET (no owned fields). Any thread. */
rt_msg *llm_stats_get_new(rt_ref reply_to, uint64_t tag);

typedef struct llm_provider_opts {
    llm_api api;
    const char *name;           /* for logs and status: "openrouter", "anthropic", "custom" */
    const char *base_url;       /* without trailing slash, e.g. https://openrouter.ai/api/v1 */
    const char *api_key;        /* may be NULL or "" for local servers */
    const char *model;          /* the default model */
    const char *const *headers; /* extra "Name: value" lines (OpenRouter attribution), or NULL */
    const char *ca_file;        /* extra CA bundle (tests), or NULL */
    int max_inflight;           /* 0: 64 */
    double rate_per_s;          /* 0: unlimited */
    int burst;                  /* 0: max(1, rate_per_s) */
    int max_retries;            /* 0: 6; < 0: none */
    int64_t timeout_ms;         /* one attempt, whole request; 0: 900 s, the original's client
                                   timeout (config agent.api_timeout); a timed-out attempt is
                                   retried like a 5xx */
    int64_t idle_timeout_ms;    /* streamed: no byte for this long fails the attempt; 0: 300 s */
    int64_t backoff_base_ms;    /* 0: 1000 */
    int64_t backoff_cap_ms;     /* 0: 60000 */
    int queue_max;              /* requests waiting for admission; 0: 10,000 */
    int64_t max_retry_after_ms; /* a longer Retry-After fails the request instead; 0: 300 s */
    /* agent.reasoning_effort (xhigh, high, medium, low, minimal, none; NULL or "": xhigh):
     * the `reasoning` object the original sends to OpenRouter and Nous endpoints. */
    const char *reasoning_effort;
} llm_provider_opts;

/*
 * Spawn the provider actor (the reactor and its HTTP client must be running). Copies o and
 * every string it points to; o may be freed at once. Never fails for bad options: a
 * missing base URL or model makes each request fail with a clear errmsg instead, so a
 * session always gets its RESULT. Returns the actor's ref. Any thread with its context.
 */
rt_ref llm_provider_start(rt_ctx *cx, const llm_provider_opts *o);

#endif /* LLM_PROVIDER_H */
