/*
 * bench_interrupt — interrupt latency while every worker is busy.
 *
 * IL_BUSY_PER_WORKER busy actors per worker each handle an endless stream of self-sent
 * normal messages, every one of them ~20 us of CPU work, so every run is a long batch. One
 * target actor sits idle. The driver (main(), an ordinary thread outside the pool) sends
 * the target an urgent message (rt_send_urgent) every ~1 ms carrying the CLOCK_MONOTONIC
 * time taken just before the send; the target records now - ts. After IL_SAMPLES samples
 * (or IL_MAX_NS of driving, whichever comes first) the target stops the busy actors and
 * reports. Busy actors also end by themselves after IL_BUSY_CAP messages, so nothing can
 * run forever.
 *
 * Reported: p50/p99/p99.9/max of send -> handled (the latency the runtime adds), plus the
 * same measured from the tick the driver aimed for (adds the driver thread's own OS
 * wake-up delay) and how late the driver itself woke up.
 *
 * Prints: RESULT bench=interrupt impl=hermes p50_us=... p99_us=... samples=...
 */
#include "bench_common.h"

#include "rt_alloc.h"
#include "rt_msg.h"
#include "rt_util.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/prctl.h>

#define IL_SAMPLES         5000
#define IL_PERIOD_NS       1000000LL     /* one urgent message per millisecond */
#define IL_MAX_NS          10000000000LL /* stop driving after 10 s whatever the count */
#define IL_WORK_NS         20000         /* CPU work per busy message */
#define IL_BUSY_PER_WORKER 2
#define IL_BUSY_MAX        (2 * RT_MAX_WORKERS)
#define IL_BUSY_CAP        1000000 /* messages per busy actor: 20 s, a safety bound only */

enum {
    IL_MSG_WORK = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1), /* busy actor -> itself */
    IL_MSG_PING = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 2), /* driver -> target, urgent */
};

typedef struct il_msg_ping {
    rt_msg hdr;
    int64_t ts;   /* CLOCK_MONOTONIC just before the send */
    int64_t tick; /* the time the driver aimed to send at */
    int last;     /* the final sample */
} il_msg_ping;

typedef struct il_busy {
    int64_t handled;
} il_busy;

/* The sample arrays are owned by main(); only the target writes them, and main reads them
 * after `done`. */
typedef struct il_target {
    int64_t *lat;  /* send -> handled, ns */
    int64_t *tick; /* aimed tick -> handled, ns */
    int n, cap;
    int nbusy;
    rt_ref busy[IL_BUSY_MAX];
} il_target;

static struct {
    bench_done done;
    int n; /* samples recorded */
} il_result;

static _Atomic int64_t il_busy_handled; /* summed by each busy actor when it ends */

static void il_spin(int64_t ns)
{
    int64_t end = bench_now_ns() + ns;
    while (bench_now_ns() < end)
        rt_cpu_relax();
}

static void busy_fini(void *state)
{
    il_busy *b = state;
    atomic_fetch_add_explicit(&il_busy_handled, b->handled, memory_order_relaxed);
}

static void busy_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    il_busy *b = state;
    if (m->type != IL_MSG_WORK)
        return; /* RT_MSG_STOP: the runtime ends us after this */
    il_spin(IL_WORK_NS);
    if (++b->handled < IL_BUSY_CAP)
        rt_send(cx, rt_self(cx), rt_msg_new(IL_MSG_WORK, sizeof(rt_msg)));
    else
        rt_exit(cx, RT_EXIT_NORMAL);
}
static const rt_actor_type busy_type = {"il_busy", busy_behave, busy_fini, sizeof(il_busy)};

static void target_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    il_target *t = state;
    if (m->type != IL_MSG_PING)
        return;
    const il_msg_ping *p = (const il_msg_ping *)m;
    int64_t now = rt_now_ns(rt_ctx_runtime(cx));
    if (t->n < t->cap) {
        t->lat[t->n] = now - p->ts;
        t->tick[t->n] = now - p->tick;
        t->n++;
    }
    if (!p->last)
        return;
    for (int i = 0; i < t->nbusy; i++)
        rt_stop(cx, t->busy[i], RT_EXIT_NORMAL);
    il_result.n = t->n;
    bench_done_post(&il_result.done);
    rt_exit(cx, RT_EXIT_NORMAL);
}
static const rt_actor_type target_type = {"il_target", target_behave, NULL, sizeof(il_target)};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* q-quantile of n sorted values, in microseconds (nearest rank). */
static double pct_us(const int64_t *v, int n, double q)
{
    if (n <= 0)
        return -1;
    int i = (int)(q * n + 0.5) - 1;
    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1e3;
}

/* The driver is measurement apparatus, not the system under test: with both cores busy, a
 * normal thread may wake up to a scheduler tick late. SCHED_FIFO (when permitted) keeps the
 * pacing on time; the default timer slack (50 us) is cut for the same reason. Neither changes
 * the send -> handled latency. Returns true when the driver runs SCHED_FIFO. */
static bool driver_setup(void)
{
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); /* best effort: only pacing */
    struct sched_param sp = {.sched_priority = 1};
    return pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
}

/* The driver: one urgent ping per period, paced on absolute deadlines. Returns pings sent. */
static int drive(rt_runtime *rt, rt_ref target, int64_t *late)
{
    rt_ctx *cx = rt_ctx_external(rt);
    int64_t t0 = bench_now_ns();
    int i;
    for (i = 0; i < IL_SAMPLES; i++) {
        int64_t tick = t0 + (int64_t)(i + 1) * IL_PERIOD_NS;
        struct timespec ts = {.tv_sec = tick / 1000000000, .tv_nsec = tick % 1000000000};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        il_msg_ping *p = RT_MSG_NEW(il_msg_ping, IL_MSG_PING);
        p->tick = tick;
        p->ts = bench_now_ns();
        p->last = i == IL_SAMPLES - 1 || p->ts - t0 >= IL_MAX_NS;
        late[i] = p->ts - tick;
        int last = p->last;
        rt_send_urgent(cx, target, &p->hdr);
        if (last)
            return i + 1;
    }
    return i;
}

int main(void)
{
    rt_runtime *rt = bench_runtime_new(0);
    rt_ctx *cx = rt_ctx_external(rt);
    bench_done_init(&il_result.done);
    int nbusy = IL_BUSY_PER_WORKER * rt_workers(rt);
    if (nbusy > IL_BUSY_MAX)
        nbusy = IL_BUSY_MAX;

    /* The target state is large (the busy refs), so it is built on the heap and copied in. */
    il_target *init = rt_xcalloc(1, sizeof(*init));
    int64_t *lat = rt_xcalloc(IL_SAMPLES, sizeof(int64_t));
    int64_t *tick = rt_xcalloc(IL_SAMPLES, sizeof(int64_t));
    int64_t *late = rt_xcalloc(IL_SAMPLES, sizeof(int64_t));
    init->lat = lat;
    init->tick = tick;
    init->cap = IL_SAMPLES;
    init->nbusy = nbusy;
    for (int i = 0; i < nbusy; i++)
        init->busy[i] = rt_spawn(cx, &busy_type, NULL, NULL);
    rt_ref target = rt_spawn(cx, &target_type, init, NULL);
    for (int i = 0; i < nbusy; i++)
        rt_send(cx, init->busy[i], rt_msg_new(IL_MSG_WORK, sizeof(rt_msg)));
    rt_free(init);

    bool driver_rt = driver_setup();
    int64_t t0 = bench_now_ns();
    int sent = drive(rt, target, late);
    bench_done_wait(&il_result.done, "interrupt");
    int64_t elapsed = bench_now_ns() - t0;
    if (rt_wait_quiescent(rt, 10000) != 0)
        (void)fprintf(stderr, "interrupt: busy actors still running 10 s after the stop\n");

    int n = il_result.n;
    qsort(lat, (size_t)n, sizeof(int64_t), cmp_i64);
    qsort(tick, (size_t)n, sizeof(int64_t), cmp_i64);
    qsort(late, (size_t)sent, sizeof(int64_t), cmp_i64);
    int64_t busy_msgs = atomic_load_explicit(&il_busy_handled, memory_order_relaxed);
    printf("RESULT bench=interrupt impl=hermes p50_us=%.1f p99_us=%.1f p999_us=%.1f "
           "max_us=%.1f samples=%d tick_p50_us=%.1f tick_p99_us=%.1f driver_late_p99_us=%.1f "
           "elapsed_ms=%.0f busy=%d busy_msgs=%" PRId64 " busy_util=%.2f driver_rt=%d workers=%d\n",
           pct_us(lat, n, 0.50), pct_us(lat, n, 0.99), pct_us(lat, n, 0.999), pct_us(lat, n, 1.0),
           n, pct_us(tick, n, 0.50), pct_us(tick, n, 0.99), pct_us(late, sent, 0.99),
           (double)elapsed / 1e6, nbusy, busy_msgs,
           (double)busy_msgs * IL_WORK_NS / ((double)elapsed * rt_workers(rt)), driver_rt ? 1 : 0,
           rt_workers(rt));
    (void)fflush(stdout); /* a lost RESULT line shows up as a failed run */
    rt_runtime_free(rt);
    rt_free(lat);
    rt_free(tick);
    rt_free(late);
    bench_done_fini(&il_result.done);
    return n == sent ? 0 : 1;
}
