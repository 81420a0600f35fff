/*
 * Signals as messages: SIGHUP -> RELOAD, SIGTERM/SIGINT -> SHUTDOWN, sent to the test
 * process itself; refusal when some thread does not block them; one watch at a time; and
 * children started by rt_proc get a clean signal state back.
 */
#include "rt_proc.h"
#include "rt_signal.h"
#include "rt_sched.h"
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 20000
#define MAXREC  8

typedef struct sigrec {
    uint32_t type[MAXREC];
    int signo[MAXREC];
    int sender[MAXREC];
    _Atomic int n; /* release: entries below n are written */
    char out[4096];
    size_t outlen;
    _Atomic int exited;
} sigrec;

static sigrec rec;

static void collect(rt_ctx *cx, void *state, rt_msg *m)
{
    sigrec *r = state;
    if (m->type == RT_SIGNAL_MSG_SHUTDOWN || m->type == RT_SIGNAL_MSG_RELOAD) {
        rt_signal_msg *s = (rt_signal_msg *)m;
        int i = atomic_load_explicit(&r->n, memory_order_relaxed);
        if (i >= MAXREC)
            return;
        r->type[i] = m->type;
        r->signo[i] = s->signo;
        r->sender[i] = s->sender;
        atomic_store_explicit(&r->n, i + 1, memory_order_release);
    } else if (m->type == RT_PROC_MSG_OUTPUT) {
        rt_proc_msg_output *o = (rt_proc_msg_output *)m;
        size_t k =
            o->len < sizeof(r->out) - 1 - r->outlen ? o->len : sizeof(r->out) - 1 - r->outlen;
        memcpy(r->out + r->outlen, o->data, k);
        r->outlen += k;
        r->out[r->outlen] = '\0';
    } else if (m->type == RT_PROC_MSG_EXIT) {
        atomic_store_explicit(&r->exited, 1, memory_order_release);
    }
}

static const rt_actor_type collector = {.name = "sigcollector", .behave = collect};

static void wait_n(_Atomic int *v, int want)
{
    int64_t t0 = rt_reactor_now_ns();
    while (atomic_load_explicit(v, memory_order_acquire) < want) {
        if (rt_reactor_now_ns() - t0 > (int64_t)WAIT_MS * 1000000)
            TEST_FAIL_("waited %d ms for %d events", WAIT_MS, want);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void expect(int i, uint32_t type, int signo)
{
    wait_n(&rec.n, i + 1);
    ASSERT_EQ(type, rec.type[i]);
    ASSERT_EQ(signo, rec.signo[i]);
    ASSERT_EQ(getpid(), rec.sender[i]);
}

TEST(signals_become_messages)
{
    ASSERT_OK(rt_signals_block()); /* before any thread */
    rt_options o = {.workers = 2};
    rt_runtime *rt = rt_runtime_new(&o);
    rt_reactor *r = rt_reactor_start(rt);
    rt_ref root = rt_spawn(rt_ctx_external(rt), &collector, &rec, NULL);
    ASSERT_OK(rt_signal_watch(r, root));
    ASSERT_EQ(-EBUSY, rt_signal_watch(r, root));

    /* Standard signals do not queue, so send one, see it arrive, send the next. */
    ASSERT_OK(kill(getpid(), SIGHUP));
    expect(0, RT_SIGNAL_MSG_RELOAD, SIGHUP);
    ASSERT_OK(kill(getpid(), SIGTERM));
    expect(1, RT_SIGNAL_MSG_SHUTDOWN, SIGTERM);
    ASSERT_OK(kill(getpid(), SIGINT));
    expect(2, RT_SIGNAL_MSG_SHUTDOWN, SIGINT);

    /* SIGPIPE is ignored: a write to a pipe without reader just fails. */
    int fds[2];
    ASSERT_OK(pipe(fds));
    close(fds[0]);
    ASSERT_EQ(-1, write(fds[1], "x", 1));
    ASSERT_EQ(EPIPE, errno);
    close(fds[1]);

    /* The watch ends with its reactor; a new reactor may watch again. */
    rt_reactor_stop(r);
    r = rt_reactor_start(rt);
    ASSERT_OK(rt_signal_watch(r, root));
    ASSERT_OK(kill(getpid(), SIGHUP));
    expect(3, RT_SIGNAL_MSG_RELOAD, SIGHUP);
    rt_reactor_stop(r);
    rt_runtime_free(rt);
}

TEST(watch_refuses_unless_every_thread_blocks_the_signals)
{
    rt_options o = {.workers = 2};
    rt_runtime *rt = rt_runtime_new(&o);
    rt_reactor *r = rt_reactor_start(rt);
    rt_ref root = rt_spawn(rt_ctx_external(rt), &collector, &rec, NULL);
    ASSERT_EQ(-EINVAL, rt_signal_watch(NULL, root));
    ASSERT_EQ(-EINVAL, rt_signal_watch(r, 0));
    /* Nothing blocked at all. */
    ASSERT_EQ(-EINVAL, rt_signal_watch(r, root));
    /* Blocked here, but too late: the workers and the reactor started without it. */
    ASSERT_OK(rt_signals_block());
    ASSERT_EQ(-EINVAL, rt_signal_watch(r, root));
    rt_reactor_stop(r);
    rt_runtime_free(rt);
}

TEST(children_get_an_empty_mask_and_default_dispositions)
{
    ASSERT_OK(rt_signals_block());
    rt_options o = {.workers = 2};
    rt_runtime *rt = rt_runtime_new(&o);
    rt_reactor *r = rt_reactor_start(rt);
    ASSERT_OK(rt_proc_init(r));
    rt_ref root = rt_spawn(rt_ctx_external(rt), &collector, &rec, NULL);
    const char *const argv[] = {"cat", "/proc/self/status", NULL};
    rt_proc_opts po = {.argv = argv, .reply_to = root};
    ASSERT_NE(0, rt_proc_spawn(rt_ctx_external(rt), &po));
    wait_n(&rec.exited, 1);
    ASSERT_STR_CONTAINS(rec.out, "SigBlk:\t0000000000000000\n");
    /* Nothing ignored, SIGPIPE included (the parent ignores it). glibc's posix_spawn
     * leaves its two internal real-time signals (32 and 33) ignored; they are not ours. */
    const char *ign = strstr(rec.out, "SigIgn:");
    ASSERT_NOT_NULL(ign);
    unsigned long long mask = strtoull(ign + 7, NULL, 16);
    ASSERT_EQ(0, mask & ~(3ULL << 31));
    rt_reactor_stop(r);
    rt_runtime_free(rt);
}
