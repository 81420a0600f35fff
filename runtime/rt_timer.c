/*
 * rt_timer — one-shot message timers on a dedicated thread. See rt_timer.h.
 *
 * A binary min-heap ordered by (deadline, arming sequence) holds the pending timers; each
 * node knows its heap index so cancellation is O(log n) through the id map. The thread
 * sleeps on a condition variable until the earliest deadline (or, with a fake clock, until
 * rt_clock_advance kicks it). Due timers are taken out under the lock and sent after it is
 * released (locks are leaves).
 */
#include "rt_timer.h"

#include "rt_alloc.h"
#include "rt_int.h"
#include "rt_log.h"
#include "rt_map.h"
#include "rt_util.h"

#include <errno.h>
#include <time.h>

typedef struct tnode {
    int64_t deadline; /* rt_now_ns() value at which it fires */
    uint64_t seq;     /* arming order, breaks deadline ties */
    uint64_t id;      /* timer id given to the caller */
    rt_ref to;
    rt_msg *m;          /* owned until sent or cancelled */
    size_t idx;         /* position in the heap */
    struct tnode *next; /* due list */
} tnode;

struct rt_timers {
    rt_runtime *rt;
    pthread_mutex_t lock; /* leaf lock over everything below */
    pthread_cond_t cond;
    tnode **heap;
    size_t n, cap;
    rt_map by_id;
    uint64_t next_id;
    uint64_t seq;
    int firing; /* due timers taken out but not yet sent */
    bool stop;
    bool started;
    pthread_t thread;
};

static bool before(const tnode *a, const tnode *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(rt_timers *t, size_t i, tnode *n)
{
    t->heap[i] = n;
    n->idx = i;
}

static void sift_up(rt_timers *t, size_t i)
{
    tnode *n = t->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(n, t->heap[p]))
            break;
        heap_set(t, i, t->heap[p]);
        i = p;
    }
    heap_set(t, i, n);
}

static void sift_down(rt_timers *t, size_t i)
{
    tnode *n = t->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= t->n)
            break;
        if (c + 1 < t->n && before(t->heap[c + 1], t->heap[c]))
            c++;
        if (!before(t->heap[c], n))
            break;
        heap_set(t, i, t->heap[c]);
        i = c;
    }
    heap_set(t, i, n);
}

static void heap_remove(rt_timers *t, size_t i)
{
    t->n--;
    if (i == t->n)
        return;
    tnode *moved = t->heap[t->n];
    heap_set(t, i, moved);
    sift_down(t, i);
    sift_up(t, moved->idx);
}

static void send_due(rt_timers *t, tnode *due)
{
    rt_ctx *cx = rt_ctx_external(t->rt);
    while (due) {
        tnode *n = due;
        due = n->next;
        rt_send(cx, n->to, n->m);
        rt_free(n);
    }
}

static struct timespec abs_time(rt_timers *t, int64_t deadline)
{
    /* Map an rt_now_ns deadline onto CLOCK_MONOTONIC for the condition variable. */
    int64_t delta = deadline - rt_now_ns(t->rt);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t abs_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (delta > 0 ? delta : 0);
    ts.tv_sec = abs_ns / 1000000000;
    ts.tv_nsec = abs_ns % 1000000000;
    return ts;
}

static void *timer_main(void *arg)
{
    rt_timers *t = arg;
    pthread_setname_np(pthread_self(), "hermes-timer");
    rt_log_set_thread_tag("timer");
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        int64_t now = rt_now_ns(t->rt);
        tnode *due = NULL, **tail = &due;
        while (t->n && t->heap[0]->deadline <= now) {
            tnode *n = t->heap[0];
            heap_remove(t, 0);
            rt_map_del(&t->by_id, n->id);
            n->next = NULL;
            *tail = n;
            tail = &n->next;
        }
        if (due) {
            t->firing++;
            pthread_mutex_unlock(&t->lock);
            send_due(t, due);
            pthread_mutex_lock(&t->lock);
            t->firing--;
            continue;
        }
        if (!t->n || t->rt->opt.fake_clock) {
            pthread_cond_wait(&t->cond, &t->lock);
        } else {
            struct timespec ts = abs_time(t, t->heap[0]->deadline);
            pthread_cond_timedwait(&t->cond, &t->lock, &ts);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

rt_timers *rt__timers_new(rt_runtime *rt)
{
    rt_timers *t = rt_xcalloc(1, sizeof(*t));
    t->rt = rt;
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    rt_map_init(&t->by_id);
    RT_VERIFY(pthread_create(&t->thread, NULL, timer_main, t) == 0);
    t->started = true;
    return t;
}

void rt__timers_stop(rt_timers *t)
{
    if (!t || !t->started)
        return;
    pthread_mutex_lock(&t->lock);
    t->stop = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    t->started = false;
}

void rt__timers_free(rt_timers *t)
{
    if (!t)
        return;
    rt__timers_stop(t);
    for (size_t i = 0; i < t->n; i++) {
        rt_msg_free(t->heap[i]->m);
        rt_free(t->heap[i]);
    }
    rt_free(t->heap);
    rt_map_fini(&t->by_id);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    rt_free(t);
}

bool rt__timers_idle(rt_timers *t)
{
    pthread_mutex_lock(&t->lock);
    bool idle = t->firing == 0 && (t->n == 0 || t->heap[0]->deadline > rt_now_ns(t->rt));
    pthread_mutex_unlock(&t->lock);
    return idle;
}

uint64_t rt__timers_pending(rt_timers *t)
{
    pthread_mutex_lock(&t->lock);
    uint64_t n = t->n;
    pthread_mutex_unlock(&t->lock);
    return n;
}

void rt__timers_kick(rt_timers *t)
{
    pthread_mutex_lock(&t->lock);
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

uint64_t rt_send_after(rt_ctx *cx, rt_ref to, rt_msg *m, int64_t ms)
{
    rt_timers *t = cx->rt->timers;
    tnode *n = rt_xmalloc(sizeof(*n));
    n->to = to;
    n->m = m;
    n->deadline = rt_now_ns(cx->rt) + (ms > 0 ? ms : 0) * 1000000;
    pthread_mutex_lock(&t->lock);
    n->id = ++t->next_id;
    n->seq = ++t->seq;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->heap = rt_xrealloc(t->heap, t->cap * sizeof(t->heap[0]));
    }
    heap_set(t, t->n++, n);
    sift_up(t, n->idx);
    rt_map_put(&t->by_id, n->id, n);
    if (n->idx == 0)
        pthread_cond_signal(&t->cond); /* new earliest deadline */
    uint64_t id = n->id;
    pthread_mutex_unlock(&t->lock);
    return id;
}

bool rt_timer_cancel(rt_ctx *cx, uint64_t timer_id)
{
    rt_timers *t = cx->rt->timers;
    pthread_mutex_lock(&t->lock);
    tnode *n = rt_map_del(&t->by_id, timer_id);
    if (n)
        heap_remove(t, n->idx);
    pthread_mutex_unlock(&t->lock);
    if (!n)
        return false;
    rt_msg_free(n->m);
    rt_free(n);
    return true;
}
