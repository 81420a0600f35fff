/*
 * rt_lws — see rt_lws.h.
 *
 * The loop: run one lws_service() round (one poll), then drain the command queue. The queue
 * is an intrusive MPSC lane (rt_mbox); only the push that finds `wake_pending` clear pays for
 * lws_cancel_service() (a pipe write), as in the reactor.
 *
 * Wake-up rules (numbered so the code can cite them):
 *   1. A producer links its node, then exchanges wake_pending to true; if it was false the
 *      producer calls lws_cancel_service().
 *   2. The consumer exchanges wake_pending to false (acquire) before popping. A push whose
 *      exchange saw "true" is therefore visible to that pop, and a push that lands after the
 *      pop finds "false" and wakes the loop again.
 *   3. lws_cancel_service() must not race with lws_context_destroy(): a producer counts
 *      itself in `wakers` and re-checks `ctx_closing`; the service thread sets ctx_closing,
 *      then waits for wakers to reach zero before destroying the context.
 */
#include "rt_lws.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_mbox.h"
#include "rt_util.h"

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

#define SERV_BUF_SIZE (32 * 1024) /* bytes lws reads per socket per round */

struct rt_lws {
    /* immutable after start */
    rt_runtime *rt;
    pthread_t thread;
    struct lws_context *ctx; /* published to producers by the start rendezvous */

    /* any thread (atomic) */
    alignas(RT_CACHELINE) rt_qnode *_Atomic qhead; /* command queue, producer end */
    _Atomic bool wake_pending;                     /* rules 1-2 */
    _Atomic bool stop_requested;
    _Atomic bool ctx_closing; /* rule 3 */
    _Atomic int wakers;       /* rule 3 */

    /* service thread; after the join, the stopping thread */
    alignas(RT_CACHELINE) rt_qnode *qtail;
    rt_qnode qstub;
    bool stopping;
    struct {
        void *state;
        rt_lws_hook shutdown, fini;
    } mod[RT_LWS_MOD_MAX];
    rt_lws_wait started; /* result of creating the context */
};

/* ================================================================ rendezvous */

void rt_lws_wait_init(rt_lws_wait *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &a);
    pthread_condattr_destroy(&a);
    w->done = false;
    w->result = 0;
}

void rt_lws_wait_fini(rt_lws_wait *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

void rt_lws_wait_signal(rt_lws_wait *w, int result)
{
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->result = result;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int rt_lws_wait_for(rt_lws_wait *w, int64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = ts.tv_nsec + (timeout_ms % 1000) * 1000000;
    ts.tv_sec += (time_t)(timeout_ms / 1000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    int r = 0;
    pthread_mutex_lock(&w->mu);
    while (!w->done && r != ETIMEDOUT)
        r = pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    int res = w->done ? w->result : -ETIMEDOUT;
    pthread_mutex_unlock(&w->mu);
    return res;
}

int64_t rt_lws_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ================================================================= accessors */

rt_lws *rt_lws_of(rt_runtime *rt)
{
    return rt_runtime_slot(rt, RT_SLOT_LWS);
}

rt_runtime *rt_lws_runtime(rt_lws *l)
{
    return l->rt;
}

struct lws_context *rt_lws_context(rt_lws *l)
{
    return l->ctx;
}

rt_lws *rt_lws_from_wsi(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

rt_ctx *rt_lws_ctx(rt_lws *l)
{
    return rt_ctx_external(l->rt);
}

bool rt_lws_stopping(rt_lws *l)
{
    return l->stopping;
}

void rt_lws_set_module(rt_lws *l, enum rt_lws_mod m, void *state, rt_lws_hook shutdown,
                       rt_lws_hook fini)
{
    RT_VERIFY(m < RT_LWS_MOD_MAX && !l->mod[m].state);
    l->mod[m].state = state;
    l->mod[m].shutdown = shutdown;
    l->mod[m].fini = fini;
}

void *rt_lws_module(rt_lws *l, enum rt_lws_mod m)
{
    RT_ASSERT(m < RT_LWS_MOD_MAX);
    return l->mod[m].state;
}

/* ================================================================== commands */

static void kick(rt_lws *l)
{
    /* seq_cst: Dekker pairing with the ctx_closing store / wakers load in destroy_ctx. */
    atomic_fetch_add_explicit(&l->wakers, 1, memory_order_seq_cst);
    if (!atomic_load_explicit(&l->ctx_closing, memory_order_seq_cst))
        lws_cancel_service(l->ctx);
    /* release: pairs with the acquire load of wakers in destroy_ctx. */
    atomic_fetch_sub_explicit(&l->wakers, 1, memory_order_release);
}

static void wake(rt_lws *l)
{
    /* acq_rel: rule 1; the release half publishes the link made by rt_mbox_push. */
    if (!atomic_exchange_explicit(&l->wake_pending, true, memory_order_acq_rel))
        kick(l);
}

void rt_lws_submit(rt_lws *l, rt_lws_cmd *c)
{
    rt_busy_enter(l->rt); /* invariant 3; left in drain() */
    rt_mbox_push(&l->qhead, &c->q);
    wake(l);
}

static void drain(rt_lws *l)
{
    /* acq_rel: rule 2; acquire pairs with the producers' exchange in wake(). */
    atomic_exchange_explicit(&l->wake_pending, false, memory_order_acq_rel);
    rt_qnode *q;
    while ((q = rt_mbox_pop(&l->qhead, &l->qtail, &l->qstub))) {
        rt_lws_cmd *c = (rt_lws_cmd *)q;
        c->fn(l, c);
        rt_busy_leave(l->rt);
    }
}

/* ============================================================ service thread */

static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    if (level & LLL_ERR)
        RT_WARN("lws", "%.*s", (int)n, line);
    else
        RT_DEBUG("lws", "%.*s", (int)n, line);
}

/* The control vhost: gives the context a first protocol (lws asks protocols[0] of the first
 * vhost for the service thread id) and receives the cancel-service broadcasts, which need
 * no handling since the loop drains after every round. */
static int ctl_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols ctl_protocols[] = {
    {"hermes-ctl", ctl_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static int create_ctx(rt_lws *l)
{
    struct lws_context_creation_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.port = CONTEXT_PORT_NO_LISTEN;
    ci.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    ci.user = l;
    ci.count_threads = 1;
    ci.pt_serv_buf_size = SERV_BUF_SIZE;
    ci.timeout_secs = 20; /* lws' own connect timeout; rt_ws arms a shorter one itself */
    l->ctx = lws_create_context(&ci);
    if (!l->ctx) {
        RT_ERROR("lws", "lws_create_context failed");
        return -EIO;
    }
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof(vi));
    vi.port = CONTEXT_PORT_NO_LISTEN;
    vi.protocols = ctl_protocols;
    vi.vhost_name = "hermes-ctl";
    if (!lws_create_vhost(l->ctx, &vi)) {
        RT_ERROR("lws", "lws_create_vhost(ctl) failed");
        lws_context_destroy(l->ctx);
        l->ctx = NULL;
        return -EIO;
    }
    return 0;
}

static void destroy_ctx(rt_lws *l)
{
    /* seq_cst: rule 3, the other half of the Dekker pairing in kick(). */
    atomic_store_explicit(&l->ctx_closing, true, memory_order_seq_cst);
    /* seq_cst load (acquire half pairs with the release decrement in kick()); a waker is inside
     * lws_cancel_service for a few microseconds at most. */
    while (atomic_load_explicit(&l->wakers, memory_order_seq_cst) > 0)
        rt_cpu_relax();
    lws_context_destroy(l->ctx);
}

static void *lws_main(void *arg)
{
    rt_lws *l = arg;
    pthread_setname_np(pthread_self(), "hermes-lws");
    rt_log_set_thread_tag("lws");
    int err = create_ctx(l);
    rt_lws_wait_signal(&l->started, err);
    if (err)
        return NULL;
    drain(l);
    /* acquire: pairs with the release store in rt_lws_stop. */
    while (!atomic_load_explicit(&l->stop_requested, memory_order_acquire)) {
        if (lws_service(l->ctx, 0) < 0) {
            RT_ERROR("lws", "lws_service failed; the service thread stops");
            break;
        }
        drain(l);
    }
    l->stopping = true;
    drain(l); /* commands that arrived with the stop: refused by their modules */
    for (int m = 0; m < RT_LWS_MOD_MAX; m++)
        if (l->mod[m].shutdown)
            l->mod[m].shutdown(l, l->mod[m].state);
    drain(l);
    destroy_ctx(l);
    drain(l);
    rt_msg_pool_flush();
    return NULL;
}

rt_lws *rt_lws_start(rt_runtime *rt, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    *err = 0;
    if (rt_lws_of(rt)) {
        *err = -EEXIST;
        return NULL;
    }
    lws_set_log_level(LLL_ERR | LLL_WARN | LLL_NOTICE, lws_log_emit);
    rt_lws *l = rt_xaligned(RT_CACHELINE, sizeof(*l)); /* alignas groups need it */
    memset(l, 0, sizeof(*l));
    l->rt = rt;
    rt_mbox_init(&l->qhead, &l->qtail, &l->qstub);
    rt_lws_wait_init(&l->started);
    if (pthread_create(&l->thread, NULL, lws_main, l) != 0) {
        *err = -EAGAIN;
        goto out_free;
    }
    /* The service thread signals once the context exists; generous bound because OpenSSL
     * initialisation can be slow under sanitizers. */
    int r = rt_lws_wait_for(&l->started, 60000);
    RT_VERIFY(r != -ETIMEDOUT);
    if (r) {
        pthread_join(l->thread, NULL);
        *err = r;
        goto out_free;
    }
    rt_runtime_set_slot(rt, RT_SLOT_LWS, l);
    return l;

out_free:
    rt_lws_wait_fini(&l->started);
    rt_free(l);
    return NULL;
}

void rt_lws_stop(rt_lws *l)
{
    if (!l)
        return;
    rt_runtime_set_slot(l->rt, RT_SLOT_LWS, NULL);
    /* release: pairs with the acquire load in lws_main. */
    atomic_store_explicit(&l->stop_requested, true, memory_order_release);
    kick(l);
    pthread_join(l->thread, NULL);
    /* Commands that raced with the stop run here; rt_lws_stopping() tells them. */
    drain(l);
    for (int m = 0; m < RT_LWS_MOD_MAX; m++)
        if (l->mod[m].fini)
            l->mod[m].fini(l, l->mod[m].state);
    rt_lws_wait_fini(&l->started);
    rt_free(l);
}
