/* The reactor core: cross-thread calls in order, fd readiness, timers, stop hooks. */
#include "rt_reactor.h"
#include "test.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <unistd.h>

static int seq_seen[1000]; /* written on the reactor thread only */
static int nrecorded;
static _Atomic int nseen; /* published after the write it counts */

static void record(rt_reactor *r, void *arg)
{
    seq_seen[nrecorded++] = (int)(intptr_t)arg;
    atomic_store(&nseen, nrecorded);
}

static void wait_for(_Atomic int *v, int want)
{
    int64_t t0 = rt_reactor_now_ns();
    while (atomic_load(v) < want)
        ASSERT_LT(rt_reactor_now_ns() - t0, 10000000000LL);
}

TEST(calls_run_in_order_on_the_reactor)
{
    rt_runtime *rt = rt_runtime_new(NULL);
    rt_reactor *r = rt_reactor_start(rt);
    ASSERT_TRUE(rt_reactor_of(rt) == r);
    for (int i = 0; i < 1000; i++)
        rt_reactor_call(r, record, (void *)(intptr_t)i);
    wait_for(&nseen, 1000);
    for (int i = 0; i < 1000; i++)
        ASSERT_EQ(i, seq_seen[i]);
    rt_reactor_stop(r);
    ASSERT_NULL(rt_reactor_of(rt));
    rt_runtime_free(rt);
}

static int pipefd[2];
static _Atomic int readable;

static void on_pipe(rt_reactor *r, int fd, uint32_t events, void *arg)
{
    char buf[16];
    if (read(fd, buf, sizeof(buf)) > 0)
        atomic_fetch_add(&readable, 1);
}

static void watch_pipe(rt_reactor *r, void *arg)
{
    ASSERT_OK(rt_reactor_add_fd(r, pipefd[0], EPOLLIN, on_pipe, NULL));
    atomic_store(&nseen, 1);
}

static void unwatch_pipe(rt_reactor *r, void *arg)
{
    rt_reactor_del_fd(r, pipefd[0]);
    atomic_store(&nseen, 2);
}

TEST(fd_readiness_dispatch)
{
    rt_runtime *rt = rt_runtime_new(NULL);
    rt_reactor *r = rt_reactor_start(rt);
    ASSERT_OK(pipe2(pipefd, O_CLOEXEC | O_NONBLOCK));
    rt_reactor_call(r, watch_pipe, NULL);
    wait_for(&nseen, 1);
    ASSERT_EQ(1, write(pipefd[1], "x", 1));
    wait_for(&readable, 1);
    rt_reactor_call(r, unwatch_pipe, NULL);
    wait_for(&nseen, 2);
    rt_reactor_stop(r);
    close(pipefd[0]);
    close(pipefd[1]);
    rt_runtime_free(rt);
}

static int fired_order[4];
static int nfired_local;
static _Atomic int nfired;
static uint64_t cancel_me;

static void fire(rt_reactor *r, void *arg)
{
    fired_order[nfired_local++] = (int)(intptr_t)arg;
    atomic_store(&nfired, nfired_local);
}

static void arm(rt_reactor *r, void *arg)
{
    rt_reactor_timer(r, 30, fire, (void *)3);
    rt_reactor_timer(r, 10, fire, (void *)1);
    cancel_me = rt_reactor_timer(r, 20, fire, (void *)99);
    rt_reactor_timer(r, 20, fire, (void *)2);
    ASSERT_TRUE(rt_reactor_timer_cancel(r, cancel_me));
    ASSERT_FALSE(rt_reactor_timer_cancel(r, cancel_me));
}

TEST(timers_in_order_and_cancel)
{
    rt_runtime *rt = rt_runtime_new(NULL);
    rt_reactor *r = rt_reactor_start(rt);
    int64_t t0 = rt_reactor_now_ns();
    rt_reactor_call(r, arm, NULL);
    wait_for(&nfired, 3);
    ASSERT_GE(rt_reactor_now_ns() - t0, 30000000LL);
    ASSERT_EQ(1, fired_order[0]);
    ASSERT_EQ(2, fired_order[1]);
    ASSERT_EQ(3, fired_order[2]);
    rt_reactor_stop(r);
    ASSERT_EQ(3, atomic_load(&nfired));
    rt_runtime_free(rt);
}

static _Atomic int hooks_ran;
static void hook(rt_reactor *r, void *arg)
{
    ASSERT_TRUE(rt_reactor_stopping(r));
    atomic_fetch_add(&hooks_ran, (int)(intptr_t)arg);
}
static void add_hooks(rt_reactor *r, void *arg)
{
    rt_reactor_on_stop(r, hook, (void *)1);
    rt_reactor_on_stop(r, hook, (void *)10);
    rt_reactor_timer(r, 100000, fire, NULL); /* pending at stop: freed, never fired */
    atomic_store(&nseen, 1);
}

TEST(stop_runs_hooks_and_frees_pending_timers)
{
    rt_runtime *rt = rt_runtime_new(NULL);
    rt_reactor *r = rt_reactor_start(rt);
    rt_reactor_call(r, add_hooks, NULL);
    wait_for(&nseen, 1);
    rt_reactor_stop(r);
    ASSERT_EQ(11, atomic_load(&hooks_ran));
    ASSERT_EQ(0, atomic_load(&nfired));
    rt_runtime_free(rt);
}
