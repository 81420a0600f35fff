/*
 * llm_provider_int — internals shared by llm_provider.c (the actor: admission, queues,
 * retries, replies) and llm_attempt.c (one HTTP attempt: request, stream, outcome).
 * Not exported outside actors/llm.
 *
 * Threads: everything here runs inside the provider actor's behaviour (one thread at a
 * time, STYLE 3.6); nothing is shared.
 */
#ifndef LLM_PROVIDER_INT_H
#define LLM_PROVIDER_INT_H

#include "llm_provider.h"
#include "rt_http.h"
#include "rt_map.h"

#include <stdbool.h>
#include <stdint.h>

#define LLM_ERRMSG_MAX    400          /* user-facing error text, bytes */
#define LLM_STREAM_MAX    (32u << 20)  /* SSE bytes of one streamed attempt */
#define LLM_BODY_MAX      (16u << 20)  /* a buffered response body */
#define LLM_MAX_HEADERS   64           /* request header lines, ours and opts.headers */
#define LLM_PUMP_TAG      (1ull << 63) /* timer tags with this bit wake the admission pump */
#define LLM_EARLY_CANCELS 256          /* remembered cancels that found no request (ring) */

typedef enum llm_job_state {
    LLM_JOB_QUEUED,   /* in q[prio], waiting for admission */
    LLM_JOB_BACKOFF,  /* waiting for its retry timer */
    LLM_JOB_WIRE,     /* an HTTP attempt is open */
    LLM_JOB_DETACHED, /* answered (cancel / receiver gone), transfer not yet ended */
} llm_job_state;

typedef struct llm_job llm_job;
struct llm_job {
    llm_job *prev, *next; /* queue links, LLM_JOB_QUEUED only */
    llm_job *key_next;    /* chain of jobs sharing a by_key slot */
    uint64_t id;          /* provider-local, never 0, below LLM_PUMP_TAG; the HTTP tag */
    uint64_t key;         /* by_key hash of (reply_to, tag) */
    rt_ref reply_to;
    uint64_t tag; /* the requester's */
    int prio;     /* LLM_PRIO_MAIN / LLM_PRIO_AUX */
    bool stream;
    llm_job_state st;
    char *body; /* owned request body */
    size_t body_len;
    int64_t timeout_ms; /* per attempt */
    int64_t arrived_ns; /* runtime clock */
    int attempts;       /* HTTP attempts started */
    uint64_t timer_id;  /* retry timer, LLM_JOB_BACKOFF only */
    bool wait_told;     /* the requester got its one "waiting for the provider" notice */

    /* the open attempt (LLM_JOB_WIRE / DETACHED) */
    uint64_t http_id;       /* rt_http_submit's id */
    int head_status;        /* from HEAD (stream modes) */
    llm_stream *sp;         /* stream parser, streamed attempts */
    bool stream_done;       /* the stream said it was complete */
    bool delivered;         /* a DELTA of this attempt reached the requester */
    size_t streamed_bytes;  /* SSE data so far (capped by LLM_STREAM_MAX) */
    int fail_err;           /* set when the attempt was failed mid-stream and cancelled */
    llm_err_kind fail_kind; /* with fail_err */
    char *fail_msg;         /* owned, with fail_err */
};

typedef struct llm_queue {
    llm_job *head, *tail;
    uint32_t n;
} llm_queue;

typedef struct llm_prov {
    /* configuration, fixed at start */
    llm_api api;
    char *name;
    char *base_url; /* without trailing slash, or NULL when none was given */
    char *url;      /* the endpoint: base_url + /chat/completions or /messages */
    char *api_key;  /* NULL when none */
    char *model;    /* default model, or NULL */
    char *ca_file;
    char **headers;             /* NULL-terminated "Name: value" lines, owned */
    bool max_completion_tokens; /* api.openai.com wants max_completion_tokens */
    cJSON *body_extra; /* members every request body gets (OpenRouter's reasoning), or NULL */
    int max_inflight, burst, max_retries, queue_max;
    double rate_per_s;
    int64_t timeout_ms, idle_timeout_ms, backoff_base_ms, backoff_cap_ms, max_retry_after_ms;

    /* state */
    rt_map by_id;  /* job id → job, every job the provider holds */
    rt_map by_key; /* (reply_to, tag) hash → first job of a chain, answerable jobs only */
    llm_queue q[2];
    uint32_t inflight, nbackoff;
    double tokens;           /* token bucket level */
    int64_t tokens_ns;       /* when it was last refilled */
    int64_t paused_until_ns; /* provider-wide pause (429/529 with Retry-After) */
    llm_err_kind pause_kind; /* why: rate limited or overloaded */
    uint64_t pump_timer;     /* armed wake-up of the pump, or 0 */
    int64_t pump_due_ns;
    uint64_t pump_seq;
    uint64_t next_id;
    uint64_t rng;
    struct {
        rt_ref from; /* 0: free slot */
        uint64_t tag;
    } early[LLM_EARLY_CANCELS]; /* cancels that came before their request (ring) */
    int early_next;
    llm_provider_stats st;
} llm_prov;

/* The outcome of one finished attempt. */
typedef struct llm_outcome {
    int err; /* 0 or -errno */
    llm_err_kind kind;
    int http_status;
    char *msg;              /* owned user-facing text when err != 0 */
    int64_t retry_after_ms; /* Retry-After / retry-after-ms, or -1 */
    bool no_retry;          /* retrying cannot help (bad URL, no HTTP client) */
    llm_result result;      /* owned, when err == 0 */
} llm_outcome;

/* ---- llm_attempt.c ---- */

/* Fill the endpoint, headers and flags of p from o (strings already copied into p). */
void llm__conf_build(llm_prov *p, const llm_provider_opts *o);
void llm__conf_fini(llm_prov *p);
/* The members every request body of this provider gets (agent-core §1.5: `reasoning` from
 * agent.reasoning_effort, and Nous's `tags`), or NULL for other endpoints. New object. */
cJSON *llm__body_extra(llm_api api, const char *base_url, const char *effort);
/* The request body for r (new string), or NULL with *why set for a request that cannot
 * be sent (no messages, no model). */
char *llm__body_new(const llm_prov *p, const llm_msg_request *r, size_t *len, const char **why);
/* Open the HTTP attempt for j (state → WIRE; the caller counts it). */
void llm__attempt_start(rt_ctx *cx, llm_prov *p, llm_job *j);
void llm__on_head(llm_prov *p, llm_job *j, const rt_io_msg_http_head *h);
void llm__on_sse(rt_ctx *cx, llm_prov *p, llm_job *j, const rt_io_msg_http_sse *e);
/* Judge the attempt that d ends; o must be released with llm__outcome_fini. */
void llm__outcome(llm_prov *p, llm_job *j, rt_io_msg_http_done *d, llm_outcome *o);
void llm__outcome_fini(llm_outcome *o);
/* A user-facing copy of text: cut to LLM_ERRMSG_MAX, control characters blanked and the
 * API key masked (invariant 5). New string. */
char *llm__clean_msg(const llm_prov *p, const char *text);
/* -errno that goes with an error kind. */
int llm__kind_errno(llm_err_kind k);

/* ---- llm_provider.c ---- */

/* The requester is gone or was answered: drop the open attempt (cancel the transfer) and
 * keep j only until its DONE arrives. */
void llm__job_detach(rt_ctx *cx, llm_prov *p, llm_job *j);

#endif /* LLM_PROVIDER_INT_H */
