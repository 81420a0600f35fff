/*
 * rt_sched — workers, run queues, stealing, parking, and the runtime's lifecycle.
 *
 * Where a runnable actor waits (rt_actor.c rule 1 keeps it in exactly one place):
 *   - w->next: the actor a worker's behaviour just woke. The worker runs it as soon as the
 *     current run ends. No fence, no wake-up: ping-pong never touches shared queues. Only
 *     spinning thieves that found nothing else may take it.
 *   - w->dq: actors pushed out of the next slot; owner LIFO, thieves FIFO.
 *   - rt->inject: actors woken by non-worker threads, and actors that used up their batch
 *     while other local work waits (FIFO, so a busy actor cannot starve the others).
 *   - rt->urgent: actors woken by an urgent message. Every worker looks here before each
 *     run and, through rt__urgent_pending, between messages of a run.
 *
 * Parking (after Go's scheduler). `nspinning` counts workers looking for work, `nidle` the
 * workers on the idle stack.
 *   P1. Whoever makes stealable work visible calls rt__wake_if_needed: a seq_cst fence,
 *       then if some worker is idle and none is spinning, it claims nspinning 0 -> 1 and
 *       wakes one sleeper, which starts out spinning. So at most one sleeper is woken per
 *       burst; the woken one wakes the next only if it sees more work (stop_spinning).
 *   P2. A worker about to sleep first lists itself idle (nidle++), stops spinning, issues a
 *       seq_cst fence and re-checks every queue. With P1's fence, either the waker sees it
 *       idle or it sees the work (the Dekker pattern again).
 *   P3. A waker pops the sleeper and sets its futex word under idle_lock; the futex wake
 *       itself happens after unlocking, and a stale wake is harmless.
 *
 * Threads: worker_main on its own thread; the rest as stated in rt_sched.h.
 */
#include "rt_sched.h"

#include "rt_alloc.h"
#include "rt_idtab.h"
#include "rt_int.h"
#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_BATCH       64
#define DEFAULT_SPIN_ROUNDS 16
#define INJECT_EVERY        61 /* ticks between forced looks at the global queues */

/* ==================================================================== futex */

static void futex_wait(_Atomic uint32_t *word, uint32_t val)
{
    /* EINTR and EAGAIN simply make the caller re-check the word. */
    (void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word)
{
    (void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* ============================================================ global FIFOs */

static void fifo_init(rt_actor_fifo *f)
{
    pthread_mutex_init(&f->lock, NULL);
    f->head = f->tail = NULL;
    atomic_init(&f->n, 0);
}

static void fifo_fini(rt_actor_fifo *f)
{
    pthread_mutex_destroy(&f->lock);
}

static void fifo_push(rt_actor_fifo *f, rt_actor *a)
{
    pthread_mutex_lock(&f->lock);
    a->qnext = NULL;
    if (f->tail)
        f->tail->qnext = a;
    else
        f->head = a;
    f->tail = a;
    /* seq_cst: counted before the pusher's P1 fence, read after the parker's P2 fence. */
    atomic_fetch_add_explicit(&f->n, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&f->lock);
}

static rt_actor *fifo_pop(rt_actor_fifo *f)
{
    /* advisory: skip the lock when it looks empty; a push we miss wakes someone (P1). */
    if (atomic_load_explicit(&f->n, memory_order_relaxed) == 0)
        return NULL;
    pthread_mutex_lock(&f->lock);
    rt_actor *a = f->head;
    if (a) {
        f->head = a->qnext;
        if (!f->head)
            f->tail = NULL;
        atomic_fetch_sub_explicit(&f->n, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&f->lock);
    return a;
}

/* ============================================================ the boost ring */

/* Rule 5 of rt_actor.c. A full ring drops the id: the actor still runs from its queue, and
 * SCHED|BOOST is cleared by that run's claim. */
void rt__boost_push(rt_runtime *rt, uint64_t id)
{
    rt_boost_ring *b = &rt->boost;
    pthread_mutex_lock(&b->lock);
    uint32_t n = atomic_load_explicit(&b->n, memory_order_relaxed);
    if (n < RT_BOOST_MAX) {
        b->ids[(b->head + n) % RT_BOOST_MAX] = id;
        /* seq_cst: counted before the pusher's P1 fence, read after the parker's P2 fence. */
        atomic_store_explicit(&b->n, n + 1, memory_order_seq_cst);
    }
    pthread_mutex_unlock(&b->lock);
    rt__wake_if_needed(rt);
}

rt_actor *rt__boost_take(rt_runtime *rt)
{
    rt_boost_ring *b = &rt->boost;
    while (atomic_load_explicit(&b->n, memory_order_relaxed)) {
        uint64_t id = 0;
        pthread_mutex_lock(&b->lock);
        uint32_t n = atomic_load_explicit(&b->n, memory_order_relaxed);
        if (n) {
            id = b->ids[b->head];
            b->head = (b->head + 1) % RT_BOOST_MAX;
            atomic_store_explicit(&b->n, n - 1, memory_order_relaxed);
        }
        pthread_mutex_unlock(&b->lock);
        if (!id)
            return NULL;
        /* A worker is an RCU reader until its next quiescent state, after the run. */
        rt_actor *a = rt__lookup(rt, id);
        uint32_t s = RT_AS_SCHED | RT_AS_BOOST;
        /* acq_rel: as the claim of a queued run (rt_actor.c). */
        if (a &&
            atomic_compare_exchange_strong_explicit(&a->sched, &s, RT_AS_SCHED | RT_AS_RUN,
                                                    memory_order_acq_rel, memory_order_relaxed))
            return a;
        /* stale: it ran from its queue meanwhile, or ended */
    }
    return NULL;
}

/* ================================================================ waking */

static rt_worker *idle_pop(rt_runtime *rt)
{
    pthread_mutex_lock(&rt->idle_lock);
    rt_worker *v = rt->idle_top;
    if (v) {
        rt->idle_top = v->idle_next;
        v->idle_listed = false;
        rt->nparked--;
        atomic_fetch_sub_explicit(&rt->nidle, 1, memory_order_seq_cst);
        /* release: pairs with the acquire load in park() (P3). */
        atomic_store_explicit(&v->wake, 1, memory_order_release);
    }
    pthread_mutex_unlock(&rt->idle_lock);
    return v;
}

void rt__wake_if_needed(rt_runtime *rt)
{
    /* seq_cst fence: P1, pairs with the fence in park(). */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&rt->nidle, memory_order_relaxed) == 0)
        return;
    int zero = 0;
    if (!atomic_compare_exchange_strong_explicit(&rt->nspinning, &zero, 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return; /* a spinner will find the work */
    rt_worker *v = idle_pop(rt);
    if (!v) {
        atomic_fetch_sub_explicit(&rt->nspinning, 1, memory_order_seq_cst);
        return;
    }
    futex_wake(&v->wake);
}

bool rt__urgent_pending(rt_runtime *rt)
{
    /* advisory: a relaxed look between messages; the pop takes the lock. */
    return atomic_load_explicit(&rt->urgent.n, memory_order_relaxed) != 0 ||
           atomic_load_explicit(&rt->boost.n, memory_order_relaxed) != 0;
}

void rt__schedule(rt_ctx *cx, rt_actor *a, bool urgent)
{
    rt_runtime *rt = cx->rt;
    if (a->det) {
        rt__detached_wake(a);
        return;
    }
    if (urgent || !cx->w) {
        fifo_push(urgent ? &rt->urgent : &rt->inject, a);
        rt__wake_if_needed(rt);
        return;
    }
    rt_worker *w = cx->w;
    /* acq_rel: release publishes the actor to a thief taking the slot; acquire gets the
     * previous occupant from whoever put it there. */
    rt_actor *old = atomic_exchange_explicit(&w->next, a, memory_order_acq_rel);
    if (old) {
        rt_deque_push(&w->dq, old);
        atomic_store_explicit(&w->n_spills,
                              atomic_load_explicit(&w->n_spills, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        rt__wake_if_needed(rt);
    }
}

void rt__reschedule(rt_worker *w, rt_actor *a)
{
    rt_runtime *rt = w->rt;
    /* Only work on this worker: run it again without touching shared queues (Pony). Only
     * the owner ever stores into its next slot, so the check-then-store cannot race. */
    if (!atomic_load_explicit(&w->next, memory_order_relaxed) && !rt_deque_maybe_nonempty(&w->dq) &&
        !atomic_load_explicit(&rt->inject.n, memory_order_relaxed) && !rt__urgent_pending(rt)) {
        atomic_store_explicit(&w->next, a, memory_order_release);
        return;
    }
    fifo_push(&rt->inject, a);
    rt__wake_if_needed(rt);
}

/* ============================================================ the worker loop */

static uint32_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return (uint32_t)(x >> 32);
}

static void count(_Atomic uint64_t *c)
{
    /* owner-written counter, read by others relaxed (advisory). */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static rt_actor *find_local(rt_worker *w)
{
    rt_runtime *rt = w->rt;
    rt_actor *a;
    if (RT_UNLIKELY(rt__urgent_pending(rt))) {
        if ((a = rt__boost_take(rt))) {
            w->boosted = true;
            return a;
        }
        if ((a = fifo_pop(&rt->urgent)))
            return a;
    }
    if (RT_UNLIKELY(++w->tick % INJECT_EVERY == 0)) {
        rt__flush_dead(w);
        if (atomic_load_explicit(&rt->grave, memory_order_relaxed))
            rt__reap(&w->cx);
        if ((a = fifo_pop(&rt->inject)))
            return a;
    }
    if (atomic_load_explicit(&w->next, memory_order_relaxed) &&
        (a = atomic_exchange_explicit(&w->next, NULL, memory_order_acq_rel)))
        return a;
    if (rt_deque_maybe_nonempty(&w->dq) && (a = rt_deque_take(&w->dq)))
        return a;
    return fifo_pop(&rt->inject);
}

static rt_actor *try_steal(rt_worker *w, bool take_next)
{
    rt_runtime *rt = w->rt;
    int n = rt->nworkers;
    int start = (int)(xorshift(&w->rng) % (uint32_t)n);
    for (int i = 0; i < n; i++) {
        rt_worker *v = rt->workers[(start + i) % n];
        if (v == w)
            continue;
        void *p = NULL;
        for (int tries = 0; tries < 4; tries++) {
            p = rt_deque_steal(&v->dq);
            if (p != RT_DEQUE_ABORT)
                break;
        }
        if (p == RT_DEQUE_ABORT)
            p = NULL;
        if (!p && take_next && atomic_load_explicit(&v->next, memory_order_relaxed))
            p = atomic_exchange_explicit(&v->next, NULL, memory_order_acq_rel);
        if (p) {
            count(&w->n_steals);
            return p;
        }
    }
    rt_actor *a = rt__boost_take(rt);
    if (a) {
        w->boosted = true;
        return a;
    }
    a = fifo_pop(&rt->urgent);
    return a ? a : fifo_pop(&rt->inject);
}

static void stop_spinning(rt_worker *w)
{
    rt_runtime *rt = w->rt;
    w->spinning = false;
    /* seq_cst: P1 bookkeeping. The last spinner to find work passes the search on, but only
     * when there is visibly more work to find. */
    if (atomic_fetch_sub_explicit(&rt->nspinning, 1, memory_order_seq_cst) == 1 &&
        (rt_deque_maybe_nonempty(&w->dq) ||
         atomic_load_explicit(&rt->inject.n, memory_order_relaxed) || rt__urgent_pending(rt)))
        rt__wake_if_needed(rt);
}

static bool work_visible(rt_runtime *rt)
{
    if (atomic_load_explicit(&rt->stopping, memory_order_relaxed) ||
        atomic_load_explicit(&rt->inject.n, memory_order_relaxed) ||
        atomic_load_explicit(&rt->urgent.n, memory_order_relaxed) ||
        atomic_load_explicit(&rt->boost.n, memory_order_relaxed) ||
        atomic_load_explicit(&rt->grave, memory_order_relaxed))
        return true;
    for (int i = 0; i < rt->nworkers; i++)
        if (rt_deque_maybe_nonempty(&rt->workers[i]->dq))
            return true;
    return false;
}

static void park(rt_worker *w)
{
    rt_runtime *rt = w->rt;
    rt__flush_dead(w); /* nothing of ours waits for reclamation while we sleep */
    pthread_mutex_lock(&rt->idle_lock);
    atomic_store_explicit(&w->wake, 0, memory_order_relaxed);
    w->idle_next = rt->idle_top;
    rt->idle_top = w;
    w->idle_listed = true;
    atomic_fetch_add_explicit(&rt->nidle, 1, memory_order_seq_cst);
    if (++rt->nparked == rt->nworkers && rt->quiet_waiters)
        pthread_cond_broadcast(&rt->quiet_cond);
    pthread_mutex_unlock(&rt->idle_lock);
    if (w->spinning) {
        w->spinning = false;
        atomic_fetch_sub_explicit(&rt->nspinning, 1, memory_order_seq_cst);
    }
    /* seq_cst fence: P2, pairs with the fence in rt__wake_if_needed. */
    atomic_thread_fence(memory_order_seq_cst);
    if (work_visible(rt)) {
        pthread_mutex_lock(&rt->idle_lock);
        if (w->idle_listed) {
            rt_worker **pp = &rt->idle_top;
            while (*pp != w)
                pp = &(*pp)->idle_next;
            *pp = w->idle_next;
            w->idle_listed = false;
            rt->nparked--;
            atomic_fetch_sub_explicit(&rt->nidle, 1, memory_order_seq_cst);
        } else {
            w->spinning = true; /* a waker popped us and counted us as spinning */
        }
        pthread_mutex_unlock(&rt->idle_lock);
        return;
    }
    count(&w->n_parks);
    urcu_qsbr_thread_offline(); /* a sleeping worker must not hold up grace periods */
    /* acquire: pairs with the release store in idle_pop (P3). */
    while (atomic_load_explicit(&w->wake, memory_order_acquire) == 0)
        futex_wait(&w->wake, 0);
    urcu_qsbr_thread_online();
    w->spinning = true; /* counted by the waker (P1) */
}

static rt_actor *find_work(rt_worker *w)
{
    rt_runtime *rt = w->rt;
    for (;;) {
        rt_actor *a = find_local(w);
        if (a) {
            if (w->spinning)
                stop_spinning(w);
            return a;
        }
        if (atomic_load_explicit(&rt->stopping, memory_order_relaxed))
            return NULL;
        if (atomic_load_explicit(&rt->grave, memory_order_relaxed)) {
            rt__reap(&w->cx); /* may wake actors: look again */
            continue;
        }
        if (!w->spinning) {
            /* Go's limit: at most half the busy workers spin. */
            int busy = rt->nworkers - atomic_load_explicit(&rt->nidle, memory_order_relaxed);
            if (2 * atomic_load_explicit(&rt->nspinning, memory_order_relaxed) < busy) {
                w->spinning = true;
                atomic_fetch_add_explicit(&rt->nspinning, 1, memory_order_seq_cst);
            }
        }
        for (uint32_t r = 0; w->spinning && r < rt->opt.spin_rounds; r++) {
            a = try_steal(w, r >= rt->opt.spin_rounds / 2);
            if (a) {
                stop_spinning(w);
                return a;
            }
            if (atomic_load_explicit(&rt->stopping, memory_order_relaxed))
                break;
            for (int i = 0; i < 64; i++)
                rt_cpu_relax();
        }
        park(w);
    }
}

void rt__rcu_quiescent(rt_runtime *rt)
{
    RT_TSAN_RELEASE(&rt->rcu_hb); /* acquired by grave_cb after the grace period */
    urcu_qsbr_quiescent_state();
}

static void *worker_main(void *arg)
{
    rt_worker *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "hermes-w%d", w->index);
    pthread_setname_np(pthread_self(), name);
    rt_log_set_thread_tag(name);
    urcu_qsbr_register_thread();
    for (;;) {
        rt_actor *a = find_work(w);
        if (!a)
            break;
        if (w->boosted) { /* rule 5: it keeps its place in its run queue */
            w->boosted = false;
            rt__run_boosted(&w->cx, a);
        } else {
            int r = rt__run_actor(&w->cx, a);
            if (r == RT_RUN_MORE) {
                rt__reschedule(w, a);
            } else if (r == RT_RUN_BUSY) { /* a boosted run has it: queue it again */
                fifo_push(&w->rt->inject, a);
                rt__wake_if_needed(w->rt);
            }
        }
        rt__rcu_quiescent(w->rt);
    }
    rt__flush_dead(w);
    urcu_qsbr_unregister_thread();
    rt_msg_pool_flush();
    return NULL;
}

/* ========================================================= detached actors */

static void *detached_main(void *arg)
{
    rt_detached *d = arg;
    rt_runtime *rt = d->cx.rt;
    char name[16];
    snprintf(name, sizeof(name), "hm-%.12s", d->a->type->name);
    pthread_setname_np(pthread_self(), name);
    rt_log_set_thread_tag(name);
    urcu_qsbr_register_thread();
    urcu_qsbr_thread_offline();
    for (;;) {
        /* acquire: pairs with the release store in rt__detached_wake. */
        while (atomic_load_explicit(&d->wake, memory_order_acquire) == 0 &&
               !atomic_load_explicit(&rt->stopping, memory_order_acquire))
            futex_wait(&d->wake, 0);
        if (atomic_load_explicit(&rt->stopping, memory_order_acquire))
            break;
        /* Reset before running: the next IDLE -> SCHED transition sets it again. */
        atomic_store_explicit(&d->wake, 0, memory_order_relaxed);
        urcu_qsbr_thread_online();
        int r;
        do {
            r = rt__run_actor(&d->cx, d->a);
            rt__rcu_quiescent(rt);
        } while (r == RT_RUN_MORE && !atomic_load_explicit(&rt->stopping, memory_order_relaxed));
        urcu_qsbr_thread_offline();
        if (r != RT_RUN_MORE)
            atomic_fetch_sub_explicit(&rt->busy, 1, memory_order_seq_cst);
        if (r == RT_RUN_EXITED)
            break;
    }
    urcu_qsbr_unregister_thread();
    rt_msg_pool_flush();
    return NULL;
}

void rt__detached_start(rt_runtime *rt, rt_actor *a)
{
    rt_detached *d = rt_xcalloc(1, sizeof(*d));
    d->a = a;
    d->cx.rt = rt;
    d->cx.gen = rt->gen;
    d->cx.online = true;
    a->det = d;
    pthread_mutex_lock(&rt->detached_lock);
    d->next = rt->detached;
    rt->detached = d;
    pthread_mutex_unlock(&rt->detached_lock);
    RT_VERIFY(pthread_create(&d->thread, NULL, detached_main, d) == 0);
}

void rt__detached_wake(rt_actor *a)
{
    rt_detached *d = a->det;
    /* Counted busy from the wake-up until it goes idle, for rt_wait_quiescent. */
    atomic_fetch_add_explicit(&d->cx.rt->busy, 1, memory_order_seq_cst);
    /* release: the actor's state written by its previous run and the sender's push are
     * visible to the detached thread (acquire in detached_main). */
    atomic_store_explicit(&d->wake, 1, memory_order_release);
    futex_wake(&d->wake);
}

static void detached_join_all(rt_runtime *rt)
{
    pthread_mutex_lock(&rt->detached_lock);
    rt_detached *list = rt->detached;
    rt->detached = NULL;
    pthread_mutex_unlock(&rt->detached_lock);
    for (rt_detached *d = list; d; d = d->next)
        futex_wake(&d->wake);
    while (list) {
        rt_detached *next = list->next;
        pthread_join(list->thread, NULL);
        rt_free(list);
        list = next;
    }
}

/* =============================================================== lifecycle */

static _Atomic uint64_t rt_generation;

static int default_workers(void)
{
    const char *env = getenv("HERMES_WORKERS");
    int64_t n;
    if (env && rt_parse_i64(env, 1, RT_MAX_WORKERS, &n) == 0)
        return (int)n;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 0 ? (int)cpus : 1;
}

rt_runtime *rt_runtime_new(const rt_options *opts)
{
    rt_runtime *rt = rt_xaligned(RT_CACHELINE, sizeof(*rt));
    memset(rt, 0, sizeof(*rt));
    if (opts)
        rt->opt = *opts;
    if (rt->opt.workers <= 0)
        rt->opt.workers = default_workers();
    if (rt->opt.workers > RT_MAX_WORKERS)
        rt->opt.workers = RT_MAX_WORKERS;
    if (!rt->opt.batch)
        rt->opt.batch = DEFAULT_BATCH;
    if (!rt->opt.spin_rounds)
        rt->opt.spin_rounds = DEFAULT_SPIN_ROUNDS;
    rt->nworkers = rt->opt.workers;
    rt->gen = atomic_fetch_add_explicit(&rt_generation, 1, memory_order_relaxed) + 1;
    rt_idtab_init(rt);
    rt->by_name = cds_lfht_new_flavor(1 << 8, 1 << 8, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
                                      &urcu_qsbr_flavor, NULL);
    RT_VERIFY(rt->by_name);

    pthread_mutex_init(&rt->idle_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rt->quiet_cond, &ca);
    pthread_condattr_destroy(&ca);
    fifo_init(&rt->inject);
    fifo_init(&rt->urgent);
    pthread_mutex_init(&rt->boost.lock, NULL);
    rt->boost.head = 0;
    atomic_init(&rt->boost.n, 0);
    pthread_mutex_init(&rt->detached_lock, NULL);

    rt->workers = rt_xcalloc((size_t)rt->nworkers, sizeof(rt->workers[0]));
    for (int i = 0; i < rt->nworkers; i++) {
        rt_worker *w = rt_xaligned(RT_CACHELINE, sizeof(*w));
        memset(w, 0, sizeof(*w));
        rt_deque_init(&w->dq, 256);
        w->index = i;
        w->rt = rt;
        w->rng = rt_hash_u64((uint64_t)i + 1) | 1;
        w->cx.rt = rt;
        w->cx.w = w;
        w->cx.online = true;
        w->cx.gen = rt->gen;
        rt->workers[i] = w;
    }
    rt->timers = rt__timers_new(rt);
    for (int i = 0; i < rt->nworkers; i++)
        RT_VERIFY(pthread_create(&rt->workers[i]->thread, NULL, worker_main, rt->workers[i]) == 0);
    return rt;
}

int rt_workers(rt_runtime *rt)
{
    return rt->nworkers;
}

static bool queues_quiet(rt_runtime *rt)
{
    return atomic_load_explicit(&rt->inject.n, memory_order_seq_cst) == 0 &&
           atomic_load_explicit(&rt->urgent.n, memory_order_seq_cst) == 0 &&
           atomic_load_explicit(&rt->boost.n, memory_order_seq_cst) == 0 &&
           atomic_load_explicit(&rt->busy, memory_order_seq_cst) == 0;
}

int rt_wait_quiescent(rt_runtime *rt, int64_t timeout_ms)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t deadline = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec + timeout_ms * 1000000;
    int err = 0;
    for (;;) {
        bool timers_idle = rt__timers_idle(rt->timers);
        pthread_mutex_lock(&rt->idle_lock);
        bool quiet = timers_idle && rt->nparked == rt->nworkers && queues_quiet(rt);
        if (!quiet) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            int64_t t = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
            if (t >= deadline) {
                err = -ETIMEDOUT;
            } else {
                /* Re-check at least every millisecond: timers and queues do not signal. */
                int64_t until = t + 1000000 < deadline ? t + 1000000 : deadline;
                struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
                rt->quiet_waiters++;
                pthread_cond_timedwait(&rt->quiet_cond, &rt->idle_lock, &ts);
                rt->quiet_waiters--;
            }
        }
        pthread_mutex_unlock(&rt->idle_lock);
        if (quiet || err)
            return err;
    }
}

void rt_busy_enter(rt_runtime *rt)
{
    atomic_fetch_add_explicit(&rt->busy, 1, memory_order_seq_cst);
}

void rt_busy_leave(rt_runtime *rt)
{
    atomic_fetch_sub_explicit(&rt->busy, 1, memory_order_seq_cst);
}

int rt_shutdown(rt_runtime *rt, enum rt_shutdown_mode mode, int64_t timeout_ms)
{
    if (rt->joined)
        return 0;
    int err = 0;
    if (mode == RT_SHUTDOWN_DRAIN)
        err = rt_wait_quiescent(rt, timeout_ms);
    atomic_store_explicit(&rt->stopping, true, memory_order_seq_cst);
    rt_worker *woken = NULL;
    pthread_mutex_lock(&rt->idle_lock);
    while (rt->idle_top) {
        rt_worker *v = rt->idle_top;
        rt->idle_top = v->idle_next;
        v->idle_listed = false;
        v->idle_next = woken;
        woken = v;
        rt->nparked--;
        atomic_fetch_sub_explicit(&rt->nidle, 1, memory_order_seq_cst);
        atomic_store_explicit(&v->wake, 1, memory_order_release);
    }
    pthread_mutex_unlock(&rt->idle_lock);
    for (int i = 0; i < rt->nworkers; i++)
        futex_wake(&rt->workers[i]->wake);
    for (int i = 0; i < rt->nworkers; i++)
        pthread_join(rt->workers[i]->thread, NULL);
    detached_join_all(rt);
    rt->joined = true;
    rt__timers_stop(rt->timers);
    return err;
}

void rt_runtime_free(rt_runtime *rt)
{
    if (!rt)
        return;
    rt_shutdown(rt, RT_SHUTDOWN_DROP, 0);
    rt__timers_free(rt->timers);
    rt->timers = NULL;
    /* Every pending call_rcu has run: the graveyard is complete. */
    urcu_qsbr_barrier();
    rt_ctx *cx = rt_ctx_external(rt);
    bool entered = rt__ext_enter(cx);
    rt__reap(cx);
    rt__ext_leave(cx, entered);
    rt__destroy_all(rt);
    urcu_qsbr_barrier();
    rt_idtab_fini(rt);
    RT_VERIFY(cds_lfht_destroy(rt->by_name, NULL) == 0);
    for (int i = 0; i < rt->nworkers; i++) {
        rt_deque_fini(&rt->workers[i]->dq);
        rt_free(rt->workers[i]);
    }
    rt_free(rt->workers);
    fifo_fini(&rt->inject);
    fifo_fini(&rt->urgent);
    pthread_mutex_destroy(&rt->boost.lock);
    pthread_cond_destroy(&rt->quiet_cond);
    pthread_mutex_destroy(&rt->idle_lock);
    pthread_mutex_destroy(&rt->detached_lock);
    rt_free(rt);
}

void rt_stats_get(rt_runtime *rt, rt_stats *s)
{
    memset(s, 0, sizeof(*s));
    s->workers = rt->nworkers;
    for (int i = 0; i < rt->nworkers && i < RT_MAX_WORKERS; i++) {
        rt_worker *w = rt->workers[i];
        rt_worker_stats *p = &s->per[i];
        p->msgs = atomic_load_explicit(&w->n_msgs, memory_order_relaxed);
        p->runs = atomic_load_explicit(&w->n_runs, memory_order_relaxed);
        p->steals = atomic_load_explicit(&w->n_steals, memory_order_relaxed);
        p->parks = atomic_load_explicit(&w->n_parks, memory_order_relaxed);
        p->spills = atomic_load_explicit(&w->n_spills, memory_order_relaxed);
        s->total.msgs += p->msgs;
        s->total.runs += p->runs;
        s->total.steals += p->steals;
        s->total.parks += p->parks;
        s->total.spills += p->spills;
        s->spawned += atomic_load_explicit(&w->n_spawned, memory_order_relaxed);
        s->exited += atomic_load_explicit(&w->n_exited, memory_order_relaxed);
    }
    s->spawned += atomic_load_explicit(&rt->ext_spawned, memory_order_relaxed);
    s->id_pages = atomic_load_explicit(&rt->id_pages, memory_order_relaxed);
    s->exited += atomic_load_explicit(&rt->ext_exited, memory_order_relaxed);
    s->dead_letters = atomic_load_explicit(&rt->dead_letters, memory_order_relaxed);
    s->timers_pending = rt->timers ? rt__timers_pending(rt->timers) : 0;
}

/* ==================================================================== slots */

void rt_runtime_set_slot(rt_runtime *rt, enum rt_slot slot, void *p)
{
    RT_VERIFY(slot < RT_SLOT_MAX);
    /* release: pairs with the acquire in rt_runtime_slot. */
    atomic_store_explicit(&rt->slots[slot], p, memory_order_release);
}

void *rt_runtime_slot(rt_runtime *rt, enum rt_slot slot)
{
    RT_VERIFY(slot < RT_SLOT_MAX);
    return atomic_load_explicit(&rt->slots[slot], memory_order_acquire);
}

/* ==================================================================== clock */

int64_t rt_now_ns(rt_runtime *rt)
{
    if (rt->opt.fake_clock)
        return atomic_load_explicit(&rt->fake_now, memory_order_acquire);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int rt_clock_advance(rt_runtime *rt, int64_t ns)
{
    if (!rt->opt.fake_clock || ns < 0)
        return -EINVAL;
    /* release: a timer armed after this sees the new time (acquire in rt_now_ns). */
    atomic_fetch_add_explicit(&rt->fake_now, ns, memory_order_acq_rel);
    rt__timers_kick(rt->timers);
    return 0;
}
