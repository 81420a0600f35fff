/*
 * llm_provider — the provider actor: admission (in-flight cap, token bucket, priorities,
 * provider-wide pause), retries with backoff, cancellation, stop, statistics. One HTTP
 * attempt is llm_attempt.c's business. See llm_provider.h for the contract and its
 * numbered invariants, which the code below cites.
 *
 * A request becomes a job. Its life:
 *
 *   QUEUED ──pump──► WIRE ──DONE──► answered (freed)
 *     ▲                │  └─retryable──► BACKOFF ──timer──► QUEUED (front of its priority)
 *     │                └─cancel / requester gone──► DETACHED ──DONE──► freed
 *     └─ arrival
 *
 * The pump admits queued jobs while all three gates are open: fewer than max_inflight
 * transfers, a token in the bucket, no provider-wide pause. When a gate is shut by time
 * (bucket, pause) the pump arms one timer to itself; no worker ever waits.
 *
 * Threads: the behaviour runs on the pool; llm_provider_start and llm_stats_get_new from
 * any thread.
 */
#include "llm_provider.h"

#include "llm_provider_int.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DEFAULT_MAX_INFLIGHT    64
#define DEFAULT_MAX_RETRIES     6
#define DEFAULT_TIMEOUT_MS      900000 /* the original's client timeout (agent-core §1.5) */
#define DEFAULT_IDLE_MS         300000
#define DEFAULT_BACKOFF_BASE_MS 1000
#define DEFAULT_BACKOFF_CAP_MS  60000
#define DEFAULT_QUEUE_MAX       10000
#define DEFAULT_MAX_RETRY_AFTER 300000
#define LOG_EVERY_MS            10000 /* rate-limited log lines: one per call site per 10 s */
#define NS_PER_MS               1000000LL

static int64_t now_ns(rt_ctx *cx)
{
    return rt_now_ns(rt_ctx_runtime(cx));
}

static int64_t ceil_ms(int64_t ns)
{
    return ns <= 0 ? 0 : (ns + NS_PER_MS - 1) / NS_PER_MS;
}

static uint64_t rng_next(llm_prov *p)
{
    /* xorshift64*: jitter only, not security */
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return p->rng * 0x2545F4914F6CDD1DULL;
}

/* ================================================================ jobs */

static uint64_t job_key(rt_ref r, uint64_t tag)
{
    uint64_t k = rt_hash_u64(r ^ rt_hash_u64(tag));
    return k ? k : 1;
}

static void key_add(llm_prov *p, llm_job *j)
{
    j->key = job_key(j->reply_to, j->tag);
    j->key_next = rt_map_get(&p->by_key, j->key);
    rt_map_put(&p->by_key, j->key, j);
}

static void key_del(llm_prov *p, llm_job *j)
{
    if (!j->key)
        return;
    llm_job *h = rt_map_get(&p->by_key, j->key);
    if (h == j) {
        if (j->key_next)
            rt_map_put(&p->by_key, j->key, j->key_next);
        else
            rt_map_del(&p->by_key, j->key);
    } else {
        while (h && h->key_next != j)
            h = h->key_next;
        if (h)
            h->key_next = j->key_next;
    }
    j->key_next = NULL;
    j->key = 0;
}

static llm_job *key_find(llm_prov *p, rt_ref r, uint64_t tag)
{
    for (llm_job *j = rt_map_get(&p->by_key, job_key(r, tag)); j; j = j->key_next)
        if (j->reply_to == r && j->tag == tag)
            return j;
    return NULL;
}

static void job_release(llm_job *j)
{
    rt_free(j->body);
    llm_stream_free(j->sp);
    rt_free(j->fail_msg);
    rt_free(j);
}

static void job_free(llm_prov *p, llm_job *j)
{
    rt_map_del(&p->by_id, j->id);
    key_del(p, j);
    job_release(j);
}

/* ================================================================ queues */

static void q_push(llm_prov *p, llm_job *j, bool front)
{
    llm_queue *q = &p->q[j->prio];
    j->prev = j->next = NULL;
    if (!q->head) {
        q->head = q->tail = j;
    } else if (front) {
        j->next = q->head;
        q->head->prev = j;
        q->head = j;
    } else {
        j->prev = q->tail;
        q->tail->next = j;
        q->tail = j;
    }
    q->n++;
    j->st = LLM_JOB_QUEUED;
}

static void q_remove(llm_prov *p, llm_job *j)
{
    llm_queue *q = &p->q[j->prio];
    if (j->prev)
        j->prev->next = j->next;
    else
        q->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        q->tail = j->prev;
    j->prev = j->next = NULL;
    q->n--;
}

static uint32_t queued(const llm_prov *p)
{
    return p->q[LLM_PRIO_MAIN].n + p->q[LLM_PRIO_AUX].n;
}

/* ================================================================ replies */

/* Tell j's requester it is waiting for the provider — at most once per request, and only
 * while j is held back (queued or in backoff): a request on the wire is not waiting, and a
 * retry after the first adds no new notice (one per waiting turn, not one per attempt). */
static void tell_waiting(rt_ctx *cx, llm_job *j, const char *why, const char *verb, int64_t in_ms)
{
    if (j->wait_told || (j->st != LLM_JOB_QUEUED && j->st != LLM_JOB_BACKOFF))
        return;
    j->wait_told = true;
    char text[160];
    snprintf(text, sizeof(text), "Waiting for the provider (%s), %s in %lld s", why, verb,
             (long long)(in_ms < 1000 ? 1 : (in_ms + 999) / 1000));
    rt_send(cx, j->reply_to, llm_status_new(j->tag, text, in_ms, j->attempts));
}

static const char *wait_words(llm_err_kind k)
{
    switch (k) {
    case LLM_ERR_RATE_LIMIT: return "rate limited";
    case LLM_ERR_OVERLOADED: return "overloaded";
    case LLM_ERR_SERVER: return "server error";
    case LLM_ERR_TIMEOUT: return "timed out";
    case LLM_ERR_MALFORMED: return "bad response";
    default: return "connection failed";
    }
}

/* Send j's one RESULT (invariant 1) and make j unanswerable; the caller disposes of j. */
static void answer(rt_ctx *cx, llm_prov *p, llm_job *j, llm_outcome *o)
{
    llm_msg_result *r = llm_result_msg_new(j->tag);
    r->err = o->err;
    r->http_status = o->http_status;
    r->attempts = j->attempts;
    r->latency_ms = ceil_ms(now_ns(cx) - j->arrived_ns);
    if (o->err) {
        r->kind = o->kind;
        r->errmsg = o->msg ? o->msg : rt_xstrdup(rt_strerror(o->err));
        o->msg = NULL;
    } else {
        r->result = o->result;
        memset(&o->result, 0, sizeof(o->result));
    }
    if (!o->err) {
        p->st.succeeded++;
    } else if (o->err == -ECANCELED) {
        p->st.cancelled++;
    } else {
        p->st.failed++;
        RT_LOG_LIMITED(RT_LOG_WARN, "llm", LOG_EVERY_MS,
                       "request failed provider=%s kind=%s status=%d attempts=%d", p->name,
                       llm_err_name(r->kind), r->http_status, r->attempts);
    }
    rt_send(cx, j->reply_to, &r->hdr);
    key_del(p, j);
}

/* Refuse a request on arrival (no job was made). */
static void refuse(rt_ctx *cx, llm_prov *p, const llm_msg_request *rq, int err, llm_err_kind k,
                   const char *msg)
{
    llm_msg_result *r = llm_result_msg_new(rq->tag);
    r->err = err;
    r->kind = k;
    r->errmsg = llm__clean_msg(p, msg);
    p->st.rejected++;
    RT_LOG_LIMITED(RT_LOG_WARN, "llm", LOG_EVERY_MS, "request refused provider=%s kind=%s: %s",
                   p->name, llm_err_name(k), r->errmsg);
    rt_send(cx, rq->reply_to, &r->hdr);
}

static void answer_cancelled(rt_ctx *cx, llm_prov *p, llm_job *j, const char *why)
{
    llm_outcome o = {.err = -ECANCELED, .msg = rt_xstrdup(why)};
    answer(cx, p, j, &o);
    llm__outcome_fini(&o);
}

void llm__job_detach(rt_ctx *cx, llm_prov *p, llm_job *j)
{
    rt_http_cancel(cx, j->http_id);
    j->st = LLM_JOB_DETACHED;
    key_del(p, j);
}

/* Dispose of a job that was just answered, whatever its state (rule 3: a transfer still
 * counts until its DONE). */
static void retire(rt_ctx *cx, llm_prov *p, llm_job *j)
{
    switch (j->st) {
    case LLM_JOB_QUEUED: q_remove(p, j); break;
    case LLM_JOB_BACKOFF:
        rt_timer_cancel(cx, j->timer_id);
        p->nbackoff--;
        break;
    case LLM_JOB_WIRE: llm__job_detach(cx, p, j); return;
    case LLM_JOB_DETACHED: return;
    }
    job_free(p, j);
}

/* ================================================================ admission */

/* Take a token: 0, or the nanoseconds until one is available. */
static int64_t bucket_take(llm_prov *p, int64_t now)
{
    if (p->rate_per_s <= 0)
        return 0;
    if (now > p->tokens_ns) {
        p->tokens += (double)(now - p->tokens_ns) / 1e9 * p->rate_per_s;
        if (p->tokens > p->burst)
            p->tokens = p->burst;
        p->tokens_ns = now;
    }
    if (p->tokens >= 1.0) {
        p->tokens -= 1.0;
        return 0;
    }
    return (int64_t)((1.0 - p->tokens) / p->rate_per_s * 1e9) + 1;
}

/* Make sure the pump runs again at `due` (one timer at a time, the earliest wins). */
static void arm_pump(rt_ctx *cx, llm_prov *p, int64_t due, int64_t now)
{
    if (p->pump_timer && p->pump_due_ns <= due)
        return;
    if (p->pump_timer)
        (void)rt_timer_cancel(cx, p->pump_timer); /* a late tick only pumps once more */
    int64_t ms = ceil_ms(due - now);
    p->pump_seq++;
    p->pump_timer =
        rt_send_after(cx, rt_self(cx), rt_timeout_new(LLM_PUMP_TAG | p->pump_seq), ms < 1 ? 1 : ms);
    p->pump_due_ns = due;
}

static void pump(rt_ctx *cx, llm_prov *p)
{
    /* Bounded: each round starts a transfer (at most max_inflight) or drops a job. */
    while (queued(p) && p->inflight < (uint32_t)p->max_inflight) {
        int64_t now = now_ns(cx);
        if (now < p->paused_until_ns) {
            arm_pump(cx, p, p->paused_until_ns, now);
            return;
        }
        llm_job *j = p->q[LLM_PRIO_MAIN].head ? p->q[LLM_PRIO_MAIN].head : p->q[LLM_PRIO_AUX].head;
        if (!rt_is_alive(cx, j->reply_to)) { /* nobody left to answer: don't spend a call */
            q_remove(p, j);
            job_free(p, j);
            p->st.cancelled++;
            continue;
        }
        int64_t wait = bucket_take(p, now);
        if (wait > 0) {
            arm_pump(cx, p, now + wait, now);
            return;
        }
        q_remove(p, j);
        p->inflight++;
        p->st.attempts++;
        llm__attempt_start(cx, p, j);
    }
}

/* The provider asked everyone to wait until `until`: hold the queue and tell each queued
 * requester (held back by the pause; requests on the wire are not told). */
static void begin_pause(rt_ctx *cx, llm_prov *p, int64_t until, int64_t now, llm_err_kind why)
{
    bool was = now < p->paused_until_ns;
    if (until > p->paused_until_ns)
        p->paused_until_ns = until;
    if (was)
        return;
    p->pause_kind = why;
    p->st.pauses++;
    RT_LOG_LIMITED(RT_LOG_WARN, "llm", LOG_EVERY_MS,
                   "provider paused provider=%s for_ms=%lld queued=%u inflight=%u", p->name,
                   (long long)ceil_ms(until - now), queued(p), p->inflight);
    /* Bounded: the queues hold at most queue_max jobs. */
    for (int q = 0; q < 2; q++)
        for (llm_job *j = p->q[q].head; j; j = j->next)
            tell_waiting(cx, j, wait_words(why), "continuing", ceil_ms(p->paused_until_ns - now));
}

/* ================================================================ retries */

/* Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]. */
static int64_t backoff_ms(llm_prov *p, int attempts)
{
    int n = attempts > 1 ? attempts - 1 : 0;
    int64_t exp = p->backoff_base_ms;
    while (n-- > 0 && exp < p->backoff_cap_ms)
        exp *= 2;
    if (exp > p->backoff_cap_ms)
        exp = p->backoff_cap_ms;
    return exp > 0 ? (int64_t)(rng_next(p) % (uint64_t)(exp + 1)) : 0;
}

static void append_msg(llm_outcome *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append_msg(llm_outcome *o, const char *fmt, ...)
{
    char tail[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof(tail), fmt, ap);
    va_end(ap);
    char *s = rt_xasprintf("%s%s", o->msg ? o->msg : rt_strerror(o->err), tail);
    rt_free(o->msg);
    o->msg = s;
}

/* Decide whether the failed attempt in o is tried again; adds the reason to the text
 * when it is not. */
static bool want_retry(llm_prov *p, llm_job *j, llm_outcome *o)
{
    if (!o->err || o->err == -ECANCELED || o->no_retry || !llm_err_is_retryable(o->kind))
        return false;
    if (j->delivered) { /* invariant 2: the user already saw part of this answer */
        append_msg(o, " (not retried: part of the answer was already shown)");
        return false;
    }
    if (o->retry_after_ms > p->max_retry_after_ms) {
        append_msg(o, " (the provider asks to wait %lld s)", (long long)(o->retry_after_ms / 1000));
        return false;
    }
    if (j->attempts > p->max_retries) {
        if (j->attempts > 1)
            append_msg(o, " (gave up after %d attempts)", j->attempts);
        return false;
    }
    return true;
}

static void schedule_retry(rt_ctx *cx, llm_prov *p, llm_job *j, const llm_outcome *o)
{
    int64_t now = now_ns(cx);
    int64_t delay = backoff_ms(p, j->attempts);
    if (o->retry_after_ms > delay)
        delay = o->retry_after_ms; /* the server knows best when it is longer */
    j->st = LLM_JOB_BACKOFF;       /* held back from here on: its own notice below */
    p->nbackoff++;
    p->st.retries++;
    j->timer_id = rt_send_after(cx, rt_self(cx), rt_timeout_new(j->id), delay);
    tell_waiting(cx, j, wait_words(o->kind), "retrying", delay);
    if ((o->kind == LLM_ERR_RATE_LIMIT || o->kind == LLM_ERR_OVERLOADED) && o->retry_after_ms > 0)
        begin_pause(cx, p, now + o->retry_after_ms * NS_PER_MS, now, o->kind);
    RT_LOG_LIMITED(RT_LOG_WARN, "llm", LOG_EVERY_MS,
                   "retrying provider=%s kind=%s status=%d attempt=%d delay_ms=%lld", p->name,
                   llm_err_name(o->kind), o->http_status, j->attempts, (long long)delay);
    RT_DEBUG("llm", "retry provider=%s job=%llu reason=%s", p->name, (unsigned long long)j->id,
             o->msg ? o->msg : "");
}

/* ================================================================ handlers */

/*
 * A cancel travels on the urgent lane and can overtake its own request (a session
 * interrupted right after asking). Unmatched cancels are remembered in a small ring; a
 * request that arrives afterwards and matches one is answered at once. Late cancels (for
 * requests already answered) land there too and simply age out: tags are never reused.
 */
static bool early_cancelled(llm_prov *p, rt_ref from, uint64_t tag)
{
    for (int i = 0; i < LLM_EARLY_CANCELS; i++)
        if (p->early[i].from == from && p->early[i].tag == tag && from) {
            p->early[i].from = 0;
            return true;
        }
    return false;
}

static void on_request(rt_ctx *cx, llm_prov *p, llm_msg_request *r)
{
    p->st.requests++;
    if (early_cancelled(p, r->reply_to, r->tag)) {
        llm_msg_result *res = llm_result_msg_new(r->tag);
        res->err = -ECANCELED;
        res->errmsg = rt_xstrdup("cancelled");
        p->st.cancelled++;
        rt_send(cx, r->reply_to, &res->hdr);
        return;
    }
    if (queued(p) >= (uint32_t)p->queue_max) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "the provider queue is full (%u requests waiting for %s); try again later",
                 queued(p), p->name);
        refuse(cx, p, r, -EAGAIN, LLM_ERR_OVERLOADED, msg);
        return;
    }
    const char *why = NULL;
    size_t len = 0;
    char *body = llm__body_new(p, r, &len, &why);
    if (!body) {
        refuse(cx, p, r, -EINVAL, LLM_ERR_BAD_REQUEST, why);
        return;
    }
    llm_job *j = rt_xcalloc(1, sizeof(*j));
    j->id = p->next_id++;
    j->reply_to = r->reply_to;
    j->tag = r->tag;
    j->prio = r->priority == LLM_PRIO_MAIN ? LLM_PRIO_MAIN : LLM_PRIO_AUX;
    j->stream = r->stream;
    j->body = body;
    j->body_len = len;
    j->timeout_ms = r->timeout_ms > 0 ? r->timeout_ms : p->timeout_ms;
    j->arrived_ns = now_ns(cx);
    rt_map_put(&p->by_id, j->id, j);
    key_add(p, j);
    q_push(p, j, false);
    if (j->arrived_ns < p->paused_until_ns)
        tell_waiting(cx, j, wait_words(p->pause_kind), "continuing",
                     ceil_ms(p->paused_until_ns - j->arrived_ns));
    pump(cx, p);
}

static void on_cancel(rt_ctx *cx, llm_prov *p, const llm_msg_cancel *c)
{
    llm_job *j = key_find(p, c->from, c->tag);
    if (!j) {
        p->early[p->early_next].from = c->from;
        p->early[p->early_next].tag = c->tag;
        p->early_next = (p->early_next + 1) % LLM_EARLY_CANCELS;
        return;
    }
    answer_cancelled(cx, p, j, "cancelled");
    retire(cx, p, j);
    pump(cx, p);
}

static llm_job *attempt_of(llm_prov *p, uint64_t tag, uint64_t http_id)
{
    llm_job *j = tag && tag < LLM_PUMP_TAG ? rt_map_get(&p->by_id, tag) : NULL;
    if (!j || j->http_id != http_id)
        return NULL;
    return j->st == LLM_JOB_WIRE || j->st == LLM_JOB_DETACHED ? j : NULL;
}

static void on_done(rt_ctx *cx, llm_prov *p, rt_io_msg_http_done *d)
{
    llm_job *j = attempt_of(p, d->tag, d->id);
    if (!j)
        return;
    p->inflight--;
    j->http_id = 0;
    if (j->st == LLM_JOB_DETACHED) {
        job_free(p, j);
        pump(cx, p);
        return;
    }
    llm_outcome o;
    llm__outcome(p, j, d, &o);
    if (o.http_status == 429)
        p->st.rate_limited++;
    else if (o.kind == LLM_ERR_OVERLOADED)
        p->st.overloaded++;
    llm_stream_free(j->sp);
    j->sp = NULL;
    if (want_retry(p, j, &o)) {
        schedule_retry(cx, p, j, &o);
    } else {
        answer(cx, p, j, &o);
        job_free(p, j);
    }
    llm__outcome_fini(&o);
    pump(cx, p);
}

static void on_timeout(rt_ctx *cx, llm_prov *p, const rt_msg_timeout *t)
{
    if (t->tag & LLM_PUMP_TAG) {
        if (t->tag == (LLM_PUMP_TAG | p->pump_seq))
            p->pump_timer = 0;
        pump(cx, p);
        return;
    }
    llm_job *j = rt_map_get(&p->by_id, t->tag);
    if (!j || j->st != LLM_JOB_BACKOFF)
        return; /* cancelled meanwhile */
    p->nbackoff--;
    j->timer_id = 0;
    q_push(p, j, true); /* invariant 4: a retry is older than everything behind it */
    pump(cx, p);
}

static void on_stats(rt_ctx *cx, llm_prov *p, const llm_msg_stats_get *g)
{
    llm_msg_stats *m = RT_MSG_NEW(llm_msg_stats, LLM_MSG_STATS);
    m->tag = g->tag;
    rt_strlcpy(m->name, p->name, sizeof(m->name));
    m->s = p->st;
    m->s.inflight = p->inflight;
    m->s.queued_main = p->q[LLM_PRIO_MAIN].n;
    m->s.queued_aux = p->q[LLM_PRIO_AUX].n;
    m->s.backoff = p->nbackoff;
    int64_t now = now_ns(cx);
    if (now < p->paused_until_ns) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        m->s.paused_for_ms = ceil_ms(p->paused_until_ns - now);
        m->s.paused_until_unix_ms =
            (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / NS_PER_MS + m->s.paused_for_ms;
    }
    rt_send(cx, g->reply_to, &m->hdr);
}

/* Free every job (answered or not) and forget the queues. */
static void drop_all(llm_prov *p)
{
    for (size_t i = 0; i < p->by_id.cap; i++)
        if (p->by_id.keys[i])
            job_release(p->by_id.vals[i]);
    rt_map_fini(&p->by_id);
    rt_map_fini(&p->by_key);
    rt_map_init(&p->by_id);
    rt_map_init(&p->by_key);
    memset(p->q, 0, sizeof(p->q));
    p->inflight = p->nbackoff = 0;
}

/* Invariant 1 at the end: every request still held gets its RESULT now. */
static void on_stop(rt_ctx *cx, llm_prov *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->by_id.cap; i++) {
        llm_job *j = p->by_id.keys[i] ? p->by_id.vals[i] : NULL;
        if (!j)
            continue;
        if (j->st == LLM_JOB_WIRE || j->st == LLM_JOB_DETACHED)
            rt_http_cancel(cx, j->http_id);
        else if (j->st == LLM_JOB_BACKOFF)
            (void)rt_timer_cancel(cx, j->timer_id); /* its tick would be a dead letter */
        if (j->st != LLM_JOB_DETACHED) {
            answer_cancelled(cx, p, j, "the gateway is shutting down");
            n++;
        }
    }
    if (p->pump_timer)
        (void)rt_timer_cancel(cx, p->pump_timer);
    p->pump_timer = 0;
    drop_all(p);
    RT_INFO("llm", "provider stopped provider=%s answered=%zu", p->name, n);
}

static void behave(rt_ctx *cx, void *state, rt_msg *m)
{
    llm_prov *p = state;
    switch (m->type) {
    case LLM_MSG_REQUEST: on_request(cx, p, (llm_msg_request *)m); break;
    case LLM_MSG_CANCEL: on_cancel(cx, p, (llm_msg_cancel *)m); break;
    case LLM_MSG_STATS_GET: on_stats(cx, p, (llm_msg_stats_get *)m); break;
    case RT_IO_MSG_HTTP_HEAD: {
        rt_io_msg_http_head *h = (rt_io_msg_http_head *)m;
        llm_job *j = attempt_of(p, h->tag, h->id);
        if (j)
            llm__on_head(p, j, h);
        break;
    }
    case RT_IO_MSG_HTTP_SSE: {
        rt_io_msg_http_sse *e = (rt_io_msg_http_sse *)m;
        llm_job *j = attempt_of(p, e->tag, e->id);
        if (j)
            llm__on_sse(cx, p, j, e);
        break;
    }
    case RT_IO_MSG_HTTP_DONE: on_done(cx, p, (rt_io_msg_http_done *)m); break;
    case RT_MSG_TIMEOUT: on_timeout(cx, p, (rt_msg_timeout *)m); break;
    case RT_MSG_STOP: on_stop(cx, p); break;
    case RT_MSG_INTERRUPT: break; /* sessions cancel their own requests (LLM_MSG_CANCEL) */
    default: RT_WARN_ONCE("llm", "provider: unexpected message type %#x", m->type); break;
    }
}

/* ================================================================ lifecycle */

static void fini(void *state)
{
    llm_prov *p = state;
    drop_all(p);
    rt_map_fini(&p->by_id);
    rt_map_fini(&p->by_key);
    llm__conf_fini(p);
    rt_free(p->name);
    rt_free(p->base_url);
    rt_free(p->api_key);
    rt_free(p->model);
    rt_free(p->ca_file);
    rt_free(p);
}

static const rt_actor_type provider_type = {"llm", behave, fini, 0};

/* A copy of s without surrounding blanks (a key pasted with a newline), or NULL if empty. */
static char *dup_trim(const char *s)
{
    if (!s)
        return NULL;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    return n ? rt_xstrndup(s, n) : NULL;
}

static void set_limits(llm_prov *p, const llm_provider_opts *o)
{
    p->max_inflight = o->max_inflight > 0 ? o->max_inflight : DEFAULT_MAX_INFLIGHT;
    p->rate_per_s = o->rate_per_s > 0 ? o->rate_per_s : 0;
    p->burst = o->burst > 0 ? o->burst : (p->rate_per_s >= 1 ? (int)p->rate_per_s : 1);
    p->max_retries = o->max_retries > 0   ? o->max_retries
                     : o->max_retries < 0 ? 0
                                          : DEFAULT_MAX_RETRIES;
    p->queue_max = o->queue_max > 0 ? o->queue_max : DEFAULT_QUEUE_MAX;
    p->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    p->idle_timeout_ms = o->idle_timeout_ms > 0 ? o->idle_timeout_ms : DEFAULT_IDLE_MS;
    p->backoff_base_ms = o->backoff_base_ms > 0 ? o->backoff_base_ms : DEFAULT_BACKOFF_BASE_MS;
    p->backoff_cap_ms = o->backoff_cap_ms > 0 ? o->backoff_cap_ms : DEFAULT_BACKOFF_CAP_MS;
    p->max_retry_after_ms =
        o->max_retry_after_ms > 0 ? o->max_retry_after_ms : DEFAULT_MAX_RETRY_AFTER;
}

rt_ref llm_provider_start(rt_ctx *cx, const llm_provider_opts *o)
{
    llm_prov *p = rt_xcalloc(1, sizeof(*p));
    p->api = o->api == LLM_API_ANTHROPIC ? LLM_API_ANTHROPIC : LLM_API_OPENAI;
    p->name = rt_xstrdup(o->name && *o->name ? o->name : "llm");
    p->base_url = dup_trim(o->base_url);
    for (size_t n = p->base_url ? strlen(p->base_url) : 0; n && p->base_url[n - 1] == '/'; n--)
        p->base_url[n - 1] = '\0';
    if (p->base_url && !*p->base_url) {
        rt_free(p->base_url);
        p->base_url = NULL;
    }
    p->api_key = dup_trim(o->api_key);
    p->model = dup_trim(o->model);
    p->ca_file = o->ca_file ? rt_xstrdup(o->ca_file) : NULL;
    set_limits(p, o);
    llm__conf_build(p, o);
    rt_map_init(&p->by_id);
    rt_map_init(&p->by_key);
    p->next_id = 1;
    p->tokens = p->burst;
    p->tokens_ns = rt_now_ns(rt_ctx_runtime(cx));
    p->rng = rt_hash_u64((uint64_t)p->tokens_ns ^ (uint64_t)(uintptr_t)p) | 1;

    char red[32];
    rt_log_redact(p->api_key ? p->api_key : "", red, sizeof(red));
    RT_INFO("llm",
            "provider started provider=%s api=%s url=%.*s key=%s max_inflight=%d rate_per_s=%g "
            "burst=%d max_retries=%d",
            p->name, p->api == LLM_API_ANTHROPIC ? "anthropic" : "openai",
            p->url ? (int)strcspn(p->url, "?#") : 6, p->url ? p->url : "(none)",
            p->api_key ? red : "(none)", p->max_inflight, p->rate_per_s, p->burst, p->max_retries);
    return rt_spawn(cx, &provider_type, p, NULL);
}

rt_msg *llm_stats_get_new(rt_ref reply_to, uint64_t tag)
{
    llm_msg_stats_get *g = RT_MSG_NEW(llm_msg_stats_get, LLM_MSG_STATS_GET);
    g->reply_to = reply_to;
    g->tag = tag;
    return &g->hdr;
}
