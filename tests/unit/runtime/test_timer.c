/* Timers on a fake clock: order (including ties), cancel, and 100,000 pending timers. */
#include "rt_actor.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "test.h"

#include <stdatomic.h>

static _Atomic int fired[16];
static _Atomic int nfired;

static void rec_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type != RT_MSG_TIMEOUT)
        return;
    int i = atomic_fetch_add(&nfired, 1);
    if (i < 16)
        atomic_store(&fired[i], (int)((rt_msg_timeout *)m)->tag);
}
static const rt_actor_type rec_type = {"rec", rec_behave, NULL, 0};

static rt_runtime *fake_rt(void)
{
    rt_options o = {.workers = 2, .fake_clock = true};
    return rt_runtime_new(&o);
}

TEST(timers_fire_in_deadline_order)
{
    rt_runtime *rt = fake_rt();
    rt_ctx *cx = rt_ctx_external(rt);
    rt_ref a = rt_spawn(cx, &rec_type, NULL, NULL);
    rt_send_after(cx, a, rt_timeout_new(30), 30);
    rt_send_after(cx, a, rt_timeout_new(10), 10);
    rt_send_after(cx, a, rt_timeout_new(20), 20);
    rt_send_after(cx, a, rt_timeout_new(21), 20); /* same deadline: arming order */
    ASSERT_OK(rt_wait_quiescent(rt, 5000));
    ASSERT_EQ(0, atomic_load(&nfired));
    ASSERT_OK(rt_clock_advance(rt, 15 * 1000000));
    ASSERT_OK(rt_wait_quiescent(rt, 5000));
    ASSERT_EQ(1, atomic_load(&nfired));
    ASSERT_EQ(10, atomic_load(&fired[0]));
    ASSERT_OK(rt_clock_advance(rt, 20 * 1000000));
    ASSERT_OK(rt_wait_quiescent(rt, 5000));
    ASSERT_EQ(4, atomic_load(&nfired));
    ASSERT_EQ(20, atomic_load(&fired[1]));
    ASSERT_EQ(21, atomic_load(&fired[2]));
    ASSERT_EQ(30, atomic_load(&fired[3]));
    rt_runtime_free(rt);
}

TEST(cancel_before_and_after_firing)
{
    rt_runtime *rt = fake_rt();
    rt_ctx *cx = rt_ctx_external(rt);
    rt_ref a = rt_spawn(cx, &rec_type, NULL, NULL);
    uint64_t t1 = rt_send_after(cx, a, rt_timeout_new(1), 10);
    uint64_t t2 = rt_send_after(cx, a, rt_timeout_new(2), 10);
    ASSERT_NE(t1, t2);
    ASSERT_TRUE(rt_timer_cancel(cx, t1));
    ASSERT_FALSE(rt_timer_cancel(cx, t1));
    ASSERT_OK(rt_clock_advance(rt, 10 * 1000000));
    ASSERT_OK(rt_wait_quiescent(rt, 5000));
    ASSERT_EQ(1, atomic_load(&nfired));
    ASSERT_EQ(2, atomic_load(&fired[0]));
    ASSERT_FALSE(rt_timer_cancel(cx, t2)); /* already fired */
    rt_runtime_free(rt);
}

TEST(hundred_thousand_pending_timers)
{
    rt_runtime *rt = fake_rt();
    rt_ctx *cx = rt_ctx_external(rt);
    rt_ref a = rt_spawn(cx, &rec_type, NULL, NULL);
    static uint64_t ids[100000];
    for (int i = 0; i < 100000; i++)
        ids[i] =
            rt_send_after(cx, a, rt_timeout_new(100 + (uint64_t)i), 1000 + (i * 7919) % 100000);
    rt_stats st;
    rt_stats_get(rt, &st);
    ASSERT_EQ(100000, st.timers_pending);
    for (int i = 0; i < 100000; i += 2)
        ASSERT_TRUE(rt_timer_cancel(cx, ids[i]));
    rt_stats_get(rt, &st);
    ASSERT_EQ(50000, st.timers_pending);
    ASSERT_OK(rt_clock_advance(rt, 200000LL * 1000000));
    ASSERT_OK(rt_wait_quiescent(rt, 30000));
    ASSERT_EQ(50000, atomic_load(&nfired));
    rt_runtime_free(rt);
}

TEST(timer_to_dead_actor_is_a_dead_letter)
{
    rt_runtime *rt = fake_rt();
    rt_ctx *cx = rt_ctx_external(rt);
    rt_ref a = rt_spawn(cx, &rec_type, NULL, NULL);
    rt_send_after(cx, a, rt_timeout_new(1), 5);
    rt_kill(cx, a);
    ASSERT_OK(rt_wait_quiescent(rt, 5000));
    ASSERT_OK(rt_clock_advance(rt, 5 * 1000000));
    ASSERT_OK(rt_wait_quiescent(rt, 5000));
    rt_stats st;
    rt_stats_get(rt, &st);
    ASSERT_EQ(1, st.dead_letters);
    ASSERT_EQ(0, atomic_load(&nfired));
    rt_runtime_free(rt);
}

TEST(real_clock_timer_fires)
{
    rt_options o = {.workers = 1};
    rt_runtime *rt = rt_runtime_new(&o);
    rt_ctx *cx = rt_ctx_external(rt);
    rt_ref a = rt_spawn(cx, &rec_type, NULL, NULL);
    int64_t t0 = rt_now_ns(rt);
    rt_send_after(cx, a, rt_timeout_new(5), 20);
    while (atomic_load(&nfired) == 0)
        ASSERT_LT(rt_now_ns(rt) - t0, 5000000000LL);
    ASSERT_GE(rt_now_ns(rt) - t0, 20000000LL);
    rt_runtime_free(rt);
}
