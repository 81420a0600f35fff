/*
 * rt_reactor — see rt_reactor.h.
 *
 * The loop: drain the call queue, fire due timers, epoll_wait until the next deadline,
 * dispatch ready fds. The call queue is an intrusive MPSC lane (rt_mbox); only the push
 * that finds `wake_pending` clear pays for the eventfd write (libuv's uv_async_send).
 */
#include "rt_reactor.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_map.h"
#include "rt_mbox.h"
#include "rt_theap.h"
#include "rt_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256

typedef struct call_node {
    rt_qnode q;
    rt_reactor_fn fn;
    void *arg;
} call_node;

typedef struct fd_watch {
    rt_reactor_fd_cb cb;
    void *arg;
    uint64_t gen; /* detects a watch removed and re-added during one dispatch round */
} fd_watch;

typedef struct rtimer {
    rt_theap_node hn;
    uint64_t id;
    rt_reactor_fn fn;
    void *arg;
} rtimer;

typedef struct stop_hook {
    rt_reactor_fn fn;
    void *arg;
    struct stop_hook *next;
} stop_hook;

struct rt_reactor {
    rt_runtime *rt;
    pthread_t thread;
    int epfd;
    int evfd;
    /* any thread */
    rt_qnode *_Atomic qhead; /* call queue, producer end */
    _Atomic bool wake_pending;
    _Atomic bool stop_requested;
    _Atomic bool closed;         /* the final drain has begun: calls run inline (rule below) */
    _Atomic int calls_in_flight; /* callers between their closed check and their push */
    /* reactor thread only */
    rt_qnode *qtail;
    rt_qnode qstub;
    rt_map fds; /* fd + 1 -> fd_watch */
    rt_theap timers;
    rt_map timer_ids; /* id -> rtimer */
    uint64_t next_timer;
    uint64_t watch_gen;
    stop_hook *hooks, **hooks_tail;
    bool stopping;
    struct rt_reactor *retired_next;
};

static pthread_mutex_t retired_lock = PTHREAD_MUTEX_INITIALIZER;
static rt_reactor *retired; /* stopped reactors (guarded by retired_lock) */

int64_t rt_reactor_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

rt_reactor *rt_reactor_of(rt_runtime *rt)
{
    return rt_runtime_slot(rt, RT_SLOT_REACTOR);
}

rt_runtime *rt_reactor_runtime(rt_reactor *r)
{
    return r->rt;
}

rt_ctx *rt_reactor_ctx(rt_reactor *r)
{
    return rt_ctx_external(r->rt);
}

bool rt_reactor_stopping(rt_reactor *r)
{
    return r->stopping;
}

static void wake(rt_reactor *r)
{
    /* acq_rel: only the first caller after the reactor cleared the flag writes. */
    if (atomic_exchange_explicit(&r->wake_pending, true, memory_order_acq_rel))
        return;
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: the reactor will wake anyway. */
    (void)!write(r->evfd, &one, sizeof(one));
}

/*
 * A call after rt_reactor_stop must neither be lost nor touch freed memory. Callers
 * announce themselves in calls_in_flight before checking `closed`; the stopper sets
 * `closed` and waits for the announced callers before its final drain (both seq_cst: the
 * Dekker pattern). A caller that sees `closed` runs fn itself: the modules find no state of
 * theirs and refuse politely (e.g. a DONE with -ENOTCONN). The struct is never freed (it
 * is retired), so a stale pointer stays valid to read.
 */
void rt_reactor_call(rt_reactor *r, rt_reactor_fn fn, void *arg)
{
    atomic_fetch_add_explicit(&r->calls_in_flight, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&r->closed, memory_order_seq_cst)) {
        atomic_fetch_sub_explicit(&r->calls_in_flight, 1, memory_order_seq_cst);
        fn(r, arg);
        return;
    }
    call_node *c = rt_xmalloc(sizeof(*c));
    c->fn = fn;
    c->arg = arg;
    rt_mbox_push(&r->qhead, &c->q);
    wake(r);
    atomic_fetch_sub_explicit(&r->calls_in_flight, 1, memory_order_seq_cst);
}

int rt_reactor_add_fd(rt_reactor *r, int fd, uint32_t events, rt_reactor_fd_cb cb, void *arg)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    fd_watch *w = rt_xmalloc(sizeof(*w));
    w->cb = cb;
    w->arg = arg;
    w->gen = ++r->watch_gen;
    rt_map_put(&r->fds, (uint64_t)fd + 1, w);
    return 0;
}

int rt_reactor_mod_fd(rt_reactor *r, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    return epoll_ctl(r->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void rt_reactor_del_fd(rt_reactor *r, int fd)
{
    fd_watch *w = rt_map_del(&r->fds, (uint64_t)fd + 1);
    if (!w)
        return;
    /* ENOENT/EBADF: the fd was already closed, which removed it from epoll. */
    (void)epoll_ctl(r->epfd, EPOLL_CTL_DEL, fd, NULL);
    rt_free(w);
}

uint64_t rt_reactor_timer(rt_reactor *r, int64_t ms, rt_reactor_fn fn, void *arg)
{
    rtimer *t = rt_xmalloc(sizeof(*t));
    t->hn.deadline = rt_reactor_now_ns() + (ms > 0 ? ms : 0) * 1000000;
    t->id = ++r->next_timer;
    t->fn = fn;
    t->arg = arg;
    rt_theap_push(&r->timers, &t->hn);
    rt_map_put(&r->timer_ids, t->id, t);
    return t->id;
}

bool rt_reactor_timer_cancel(rt_reactor *r, uint64_t id)
{
    rtimer *t = rt_map_del(&r->timer_ids, id);
    if (!t)
        return false;
    rt_theap_remove(&r->timers, &t->hn);
    rt_free(t);
    return true;
}

void rt_reactor_on_stop(rt_reactor *r, rt_reactor_fn fn, void *arg)
{
    stop_hook *h = rt_xmalloc(sizeof(*h));
    h->fn = fn;
    h->arg = arg;
    h->next = NULL;
    *r->hooks_tail = h;
    r->hooks_tail = &h->next;
}

static void drain_calls(rt_reactor *r)
{
    rt_qnode *q;
    while ((q = rt_mbox_pop(&r->qhead, &r->qtail, &r->qstub))) {
        call_node *c = (call_node *)q;
        c->fn(r, c->arg);
        rt_free(c);
    }
}

static void fire_timers(rt_reactor *r)
{
    int64_t now = rt_reactor_now_ns();
    rt_theap_node *top;
    while ((top = rt_theap_peek(&r->timers)) && top->deadline <= now) {
        rtimer *t = (rtimer *)top;
        rt_theap_remove(&r->timers, top);
        rt_map_del(&r->timer_ids, t->id);
        rt_reactor_fn fn = t->fn;
        void *arg = t->arg;
        rt_free(t);
        fn(r, arg);
    }
}

static int next_timeout_ms(rt_reactor *r)
{
    rt_theap_node *top = rt_theap_peek(&r->timers);
    if (!top)
        return -1;
    int64_t d = top->deadline - rt_reactor_now_ns();
    if (d <= 0)
        return 0;
    int64_t ms = (d + 999999) / 1000000;
    return ms > 60000 ? 60000 : (int)ms;
}

static void dispatch(rt_reactor *r, struct epoll_event *ev, int n)
{
    for (int i = 0; i < n; i++) {
        int fd = ev[i].data.fd;
        if (fd == r->evfd) {
            uint64_t v;
            (void)!read(r->evfd, &v, sizeof(v)); /* EAGAIN: nothing to clear */
            /* release: pushes made after this point will write the eventfd again. */
            atomic_store_explicit(&r->wake_pending, false, memory_order_release);
            continue;
        }
        fd_watch *w = rt_map_get(&r->fds, (uint64_t)fd + 1);
        if (w)
            w->cb(r, fd, ev[i].events, w->arg);
    }
}

static void run_stop_hooks(rt_reactor *r)
{
    r->stopping = true;
    stop_hook *h = r->hooks;
    r->hooks = NULL;
    r->hooks_tail = &r->hooks;
    while (h) {
        stop_hook *next = h->next;
        h->fn(r, h->arg);
        rt_free(h);
        h = next;
    }
}

static void *reactor_main(void *arg)
{
    rt_reactor *r = arg;
    pthread_setname_np(pthread_self(), "hermes-reactor");
    rt_log_set_thread_tag("reactor");
    struct epoll_event ev[MAX_EVENTS];
    for (;;) {
        drain_calls(r);
        fire_timers(r);
        if (atomic_load_explicit(&r->stop_requested, memory_order_acquire) && !r->stopping) {
            run_stop_hooks(r);
            drain_calls(r); /* calls queued by the hooks themselves */
            break;
        }
        int n = epoll_wait(r->epfd, ev, MAX_EVENTS, next_timeout_ms(r));
        if (n < 0) {
            if (errno != EINTR)
                RT_ERROR("reactor", "epoll_wait failed: %s", rt_strerror(-errno));
            continue;
        }
        dispatch(r, ev, n);
    }
    rt_msg_pool_flush();
    return NULL;
}

rt_reactor *rt_reactor_start(rt_runtime *rt)
{
    rt_reactor *r = rt_xcalloc(1, sizeof(*r));
    r->rt = rt;
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    r->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    RT_VERIFY(r->epfd >= 0 && r->evfd >= 0);
    rt_mbox_init(&r->qhead, &r->qtail, &r->qstub);
    rt_map_init(&r->fds);
    rt_map_init(&r->timer_ids);
    rt_theap_init(&r->timers);
    r->hooks_tail = &r->hooks;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = r->evfd};
    RT_VERIFY(epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->evfd, &ev) == 0);
    rt_runtime_set_slot(rt, RT_SLOT_REACTOR, r);
    RT_VERIFY(pthread_create(&r->thread, NULL, reactor_main, r) == 0);
    return r;
}

void rt_reactor_stop(rt_reactor *r)
{
    if (!r)
        return;
    rt_runtime_set_slot(r->rt, RT_SLOT_REACTOR, NULL); /* no new lookups find us */
    atomic_store_explicit(&r->stop_requested, true, memory_order_release);
    wake(r);
    pthread_join(r->thread, NULL);
    atomic_store_explicit(&r->closed, true, memory_order_seq_cst);
    while (atomic_load_explicit(&r->calls_in_flight, memory_order_seq_cst) > 0)
        rt_cpu_relax(); /* a caller is between its check and its push: a few instructions */
    /* Calls that raced with the stop run here, on this thread, after the reactor's own. */
    drain_calls(r);
    for (size_t i = 0; i < r->fds.cap; i++)
        if (r->fds.keys[i])
            rt_free(r->fds.vals[i]);
    rt_map_fini(&r->fds);
    for (size_t i = 0; i < r->timers.n; i++)
        rt_free(r->timers.v[i]);
    rt_theap_fini(&r->timers);
    rt_map_fini(&r->timer_ids);
    close(r->evfd);
    close(r->epfd);
    r->evfd = r->epfd = -1;
    /* Retired, not freed: see rt_reactor_call. Reachable from here for LeakSanitizer. */
    pthread_mutex_lock(&retired_lock);
    r->retired_next = retired;
    retired = r;
    pthread_mutex_unlock(&retired_lock);
}
