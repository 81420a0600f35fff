/*
 * rt_timer — one-shot message timers on a dedicated thread. See rt_timer.h.
 *
 * A binary min-heap (rt_theap) ordered by (deadline, arming order) holds the pending timers;
 * cancellation finds the node through the id map and removes it in O(log n). The thread
 * sleeps on a condition variable until the earliest deadline (or, with a fake clock, until
 * rt_clock_advance kicks it). Due timers are taken out under the lock and sent after it is
 * released (locks are leaves).
 */
#include "rt_timer.h"

#include "rt_alloc.h"
#include "rt_int.h"
#include "rt_log.h"
#include "rt_map.h"
#include "rt_theap.h"
#include "rt_util.h"

#include <errno.h>
#include <time.h>

typedef struct tnode {
    rt_theap_node hn; /* deadline: rt_now_ns() value at which it fires */
    uint64_t id;      /* timer id given to the caller */
    rt_ref to;
    rt_msg *m;          /* owned until sent or cancelled */
    struct tnode *next; /* due list */
} tnode;

struct rt_timers {
    rt_runtime *rt;
    pthread_mutex_t lock; /* leaf lock over everything below */
    pthread_cond_t cond;
    rt_theap heap;
    rt_map by_id;
    uint64_t next_id;
    int firing; /* due timers taken out but not yet sent */
    bool stop;
    bool started;
    pthread_t thread;
};

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
        rt_theap_node *top;
        while ((top = rt_theap_peek(&t->heap)) && top->deadline <= now) {
            tnode *n = (tnode *)top;
            rt_theap_remove(&t->heap, top);
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
        if (!t->heap.n || t->rt->opt.fake_clock) {
            pthread_cond_wait(&t->cond, &t->lock);
        } else {
            struct timespec ts = abs_time(t, rt_theap_peek(&t->heap)->deadline);
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
    rt_theap_init(&t->heap);
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
    for (size_t i = 0; i < t->heap.n; i++) {
        tnode *n = (tnode *)t->heap.v[i];
        rt_msg_free(n->m);
        rt_free(n);
    }
    rt_theap_fini(&t->heap);
    rt_map_fini(&t->by_id);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    rt_free(t);
}

bool rt__timers_idle(rt_timers *t)
{
    pthread_mutex_lock(&t->lock);
    rt_theap_node *top = rt_theap_peek(&t->heap);
    bool idle = t->firing == 0 && (!top || top->deadline > rt_now_ns(t->rt));
    pthread_mutex_unlock(&t->lock);
    return idle;
}

uint64_t rt__timers_pending(rt_timers *t)
{
    pthread_mutex_lock(&t->lock);
    uint64_t n = t->heap.n;
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
    n->hn.deadline = rt_now_ns(cx->rt) + (ms > 0 ? ms : 0) * 1000000;
    pthread_mutex_lock(&t->lock);
    n->id = ++t->next_id;
    rt_theap_push(&t->heap, &n->hn);
    rt_map_put(&t->by_id, n->id, n);
    if (n->hn.idx == 0)
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
        rt_theap_remove(&t->heap, &n->hn);
    pthread_mutex_unlock(&t->lock);
    if (!n)
        return false;
    rt_msg_free(n->m);
    rt_free(n);
    return true;
}
