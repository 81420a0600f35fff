/*
 * ak_supervise (adapters/kit): a child that ends abnormally is restarted with back-off and
 * jitter on the runtime's (fake) clock and registers its name again; a normal end or a stop
 * is not restarted; a restart storm gives up; ak_sup_stop stops without a restart; the
 * gateway hears each restart (GW_MSG_ADAPTER_DOWN with restarts / gave_up / detail); a start
 * callback that fails is retried; bad specs are refused.
 */
#include "ak_supervise.h"
#include "gw.h"
#include "rt_alloc.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#define CHILD_NAME "test.supervised"

enum { T_DIE = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1) };

typedef struct die_msg {
    rt_msg hdr;
    int reason;
} die_msg;

/* ---------------------------------------------------------------- the child */

typedef struct child_state {
    int generation; /* which start made it */
} child_state;

static void child_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type == T_DIE)
        rt_exit(cx, ((die_msg *)m)->reason);
}

static const rt_actor_type child_type = {"test.child", child_behave, NULL, sizeof(child_state)};

typedef struct fixture_arg {
    _Atomic int inits;     /* make_init / start calls */
    _Atomic int cleanups;  /* cleanup calls */
    _Atomic int freed;     /* arg_free ran */
    _Atomic int fail_from; /* start: fail calls >= this (1-based), 0: never */
    _Atomic int fail_to;   /* … up to this one */
} fixture_arg;

static void *make_init(void *arg)
{
    fixture_arg *a = arg;
    child_state *s = rt_xmalloc(sizeof(*s));
    s->generation = atomic_fetch_add(&a->inits, 1) + 1;
    return s;
}

static int start_fn(rt_ctx *cx, void *arg, rt_ref *child, char *err, size_t errlen)
{
    fixture_arg *a = arg;
    int n = atomic_fetch_add(&a->inits, 1) + 1;
    int from = atomic_load(&a->fail_from), to = atomic_load(&a->fail_to);
    if (from && n >= from && n <= to) {
        snprintf(err, errlen, "the server said no (call %d)", n);
        return -EIO;
    }
    child_state s = {n};
    rt_spawn_opts o = {.name = CHILD_NAME};
    *child = rt_spawn(cx, &child_type, &s, &o);
    return *child ? 0 : -EEXIST;
}

static void cleanup_fn(rt_ctx *cx, void *arg, rt_ref child)
{
    atomic_fetch_add(&((fixture_arg *)arg)->cleanups, 1);
}

static void arg_free(void *arg)
{
    atomic_store(&((fixture_arg *)arg)->freed, 1);
}

/* ------------------------------------------------------------- the gateway */

typedef struct gw_log {
    pthread_mutex_t lock;
    int downs;
    int restarts; /* the last message's */
    bool gave_up;
    char detail[160];
    char platform[32];
} gw_log;

static void gw_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    gw_log *g = *(gw_log **)state;
    if (m->type != GW_MSG_ADAPTER_DOWN)
        return;
    gw_msg_adapter *a = (gw_msg_adapter *)m;
    pthread_mutex_lock(&g->lock);
    g->downs++;
    g->restarts = a->restarts;
    g->gave_up = a->gave_up;
    snprintf(g->detail, sizeof(g->detail), "%s", a->detail);
    snprintf(g->platform, sizeof(g->platform), "%s", a->platform ? a->platform : "");
    pthread_mutex_unlock(&g->lock);
}

static const rt_actor_type gw_type = {"test.gw", gw_behave, NULL, sizeof(gw_log *)};

static int gw_downs(gw_log *g, int *restarts, bool *gave_up, char *detail, size_t len)
{
    pthread_mutex_lock(&g->lock);
    int n = g->downs;
    if (restarts)
        *restarts = g->restarts;
    if (gave_up)
        *gave_up = g->gave_up;
    if (detail)
        snprintf(detail, len, "%s", g->detail);
    pthread_mutex_unlock(&g->lock);
    return n;
}

/* ---------------------------------------------------------------- fixture */

typedef struct fx {
    rt_runtime *rt;
    rt_ctx *cx;
    rt_ref gw;
    gw_log log;
    fixture_arg arg;
    ak_sup_stats stats;
    ak_sup_spec spec;
} fx;

static void fx_init(fx *f, bool fake_clock)
{
    memset(f, 0, sizeof(*f));
    rt_options o = {.workers = 2, .fake_clock = fake_clock};
    f->rt = rt_runtime_new(&o);
    f->cx = rt_ctx_external(f->rt);
    pthread_mutex_init(&f->log.lock, NULL);
    gw_log *lp = &f->log;
    f->gw = rt_spawn(f->cx, &gw_type, &lp, NULL);
    f->spec = (ak_sup_spec){
        .platform = "testchat",
        .type = &child_type,
        .make_init = make_init,
        .name = CHILD_NAME,
        .cleanup = cleanup_fn,
        .arg = &f->arg,
        .arg_free = arg_free,
        .gateway = f->gw,
        .stats = &f->stats,
        .min_ms = 1000,
        .max_ms = 60000,
        .stable_ms = 60000,
        .storm_window_ms = 600000,
        .storm_max = 10,
    };
}

static void fx_fini(fx *f)
{
    ASSERT_OK(rt_wait_quiescent(f->rt, 10000));
    rt_runtime_free(f->rt);
    pthread_mutex_destroy(&f->log.lock);
}

/* Poll cond (real time) with a 10 s deadline; the runtime does the work meanwhile. */
#define WAIT_FOR(f, cond)                                                                          \
    do {                                                                                           \
        struct timespec ts_ = {0, 1000000L};                                                       \
        int i_ = 0;                                                                                \
        for (; i_ < 10000 && !(cond); i_++)                                                        \
            nanosleep(&ts_, NULL);                                                                 \
        if (!(cond))                                                                               \
            TEST_FAIL_("timed out waiting for %s", #cond);                                         \
    } while (0)

static void die(fx *f, rt_ref child, int reason)
{
    die_msg *m = RT_MSG_NEW(die_msg, T_DIE);
    m->reason = reason;
    ASSERT_TRUE(rt_send(f->cx, child, &m->hdr));
}

static uint64_t restarts(fx *f)
{
    return atomic_load(&f->stats.restarts);
}

/* Advance the fake clock by ms in steps, letting the runtime settle between them. */
static void advance(fx *f, int64_t ms)
{
    ASSERT_OK(rt_wait_quiescent(f->rt, 10000));
    ASSERT_OK(rt_clock_advance(f->rt, ms * 1000000));
    ASSERT_OK(rt_wait_quiescent(f->rt, 10000));
}

/* The child ends with reason; the restart comes after the back-off for attempt (±20 %). */
static rt_ref crash_and_restart(fx *f, int reason, int attempt)
{
    rt_ref old = rt_whereis(f->cx, CHILD_NAME);
    ASSERT_NE(old, 0);
    uint64_t before = restarts(f);
    die(f, old, reason);
    WAIT_FOR(f, restarts(f) == before + 1);
    ASSERT_OK(rt_wait_quiescent(f->rt, 10000));
    ASSERT_EQ(rt_whereis(f->cx, CHILD_NAME), 0); /* the name went with the old child */
    int64_t base = 1000;
    for (int i = 1; i < attempt; i++)
        base = base * 2 > 60000 ? 60000 : base * 2;
    int64_t lo = base - base / 5, hi = base + base / 5 > 60000 ? 60000 : base + base / 5;
    advance(f, lo - 1);
    ASSERT_EQ(atomic_load(&f->stats.child), 0); /* not before the back-off's lower bound */
    advance(f, hi - lo + 1);
    WAIT_FOR(f, atomic_load(&f->stats.child) != 0);
    rt_ref now = rt_whereis(f->cx, CHILD_NAME);
    ASSERT_NE(now, 0);
    ASSERT_NE(now, old);
    ASSERT_EQ(now, atomic_load(&f->stats.child));
    return now;
}

/* ==================================================================== tests */

TEST(backoff_doubles_with_jitter_up_to_the_ceiling)
{
    uint64_t rng = 12345;
    for (int round = 0; round < 200; round++) {
        int64_t base = 1000;
        for (int attempt = 1; attempt <= 12; attempt++) {
            int64_t d = ak_sup_backoff(attempt, 1000, 60000, &rng);
            ASSERT_GE(d, base - base / 5);
            ASSERT_LE(d, base + base / 5 > 60000 ? 60000 : base + base / 5);
            base = base * 2 > 60000 ? 60000 : base * 2;
        }
    }
    ASSERT_EQ(ak_sup_backoff(1, 1000, 60000, NULL), 1000); /* no rng: no jitter */
    ASSERT_EQ(ak_sup_backoff(7, 1000, 60000, NULL), 60000);
    ASSERT_EQ(ak_sup_backoff(1000000, 1000, 60000, NULL), 60000);
    ASSERT_EQ(ak_sup_backoff(0, 0, 0, NULL), 1); /* nonsense in, sane out */
    ASSERT_EQ(ak_sup_backoff(-3, 500, 100, NULL), 500);
    char buf[32];
    ASSERT_STR_EQ(ak_sup_reason_name(RT_EXIT_ERROR, buf, sizeof(buf)), "error");
    ASSERT_STR_EQ(ak_sup_reason_name(RT_EXIT_USER + 2, buf, sizeof(buf)), "user+2");
    ASSERT_STR_EQ(ak_sup_reason_name(-1, buf, sizeof(buf)), "reason -1");
}

TEST(abnormal_end_restarts_with_backoff_and_name)
{
    fx f;
    fx_init(&f, true);
    rt_ref sup = 0;
    char err[128];
    ASSERT_OK(ak_sup_start(f.cx, &f.spec, &sup, err, sizeof(err)));
    ASSERT_NE(sup, 0);
    ASSERT_EQ(atomic_load(&f.arg.inits), 1);
    rt_ref c1 = rt_whereis(f.cx, CHILD_NAME);
    ASSERT_NE(c1, 0);
    ASSERT_OK(rt_wait_quiescent(f.rt, 10000));

    rt_ref c2 = crash_and_restart(&f, RT_EXIT_ERROR, 1); /* ~1 s */
    ASSERT_NE(c2, c1);
    ASSERT_EQ(atomic_load(&f.arg.inits), 2); /* fresh init state for the new child */
    int rs = 0;
    bool gave = true;
    char detail[160];
    ASSERT_EQ(gw_downs(&f.log, &rs, &gave, detail, sizeof(detail)), 1);
    ASSERT_EQ(rs, 1);
    ASSERT_FALSE(gave);
    ASSERT_STR_CONTAINS(detail, "after error");
    ASSERT_STR_CONTAINS(f.log.platform, "testchat");

    crash_and_restart(&f, RT_EXIT_KILLED, 2);   /* ~2 s: consecutive */
    crash_and_restart(&f, RT_EXIT_USER + 1, 3); /* ~4 s */
    ASSERT_EQ(gw_downs(&f.log, &rs, NULL, detail, sizeof(detail)), 3);
    ASSERT_EQ(rs, 3);
    ASSERT_STR_CONTAINS(detail, "user+1");
    ASSERT_EQ(atomic_load(&f.arg.cleanups), 3); /* once per ended child */

    /* a child that lived stable_ms resets the back-off to the first step */
    advance(&f, 60000);
    crash_and_restart(&f, RT_EXIT_ERROR, 1);
    ASSERT_EQ(restarts(&f), 4);

    ASSERT_TRUE(ak_sup_stop(f.cx, sup, 1000, 5000));
    WAIT_FOR(&f, atomic_load(&f.stats.ended)); /* fini runs just after it leaves the registry */
    ASSERT_EQ(rt_whereis(f.cx, CHILD_NAME), 0);
    ASSERT_EQ(restarts(&f), 4);
    WAIT_FOR(&f, atomic_load(&f.arg.freed) == 1);
    ASSERT_EQ(atomic_load(&f.arg.cleanups), 5);
    fx_fini(&f);
}

TEST(linked_actor_death_restarts)
{
    fx f;
    fx_init(&f, true);
    rt_ref sup = 0;
    ASSERT_OK(ak_sup_start(f.cx, &f.spec, &sup, NULL, 0));
    crash_and_restart(&f, RT_EXIT_LINKED, 1);
    ASSERT_EQ(atomic_load(&f.stats.last_reason), RT_EXIT_LINKED);
    ASSERT_TRUE(ak_sup_stop(f.cx, sup, 1000, 5000));
    WAIT_FOR(&f, atomic_load(&f.stats.ended));
    fx_fini(&f);
}

TEST(normal_or_stopped_end_is_not_restarted)
{
    int reasons[] = {RT_EXIT_NORMAL, RT_EXIT_STOPPED, RT_EXIT_SHUTDOWN};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        fx f;
        fx_init(&f, true);
        rt_ref sup = 0;
        ASSERT_OK(ak_sup_start(f.cx, &f.spec, &sup, NULL, 0));
        ASSERT_OK(rt_wait_quiescent(f.rt, 10000));
        die(&f, rt_whereis(f.cx, CHILD_NAME), reasons[i]);
        WAIT_FOR(&f, atomic_load(&f.stats.ended));
        advance(&f, 120000);
        ASSERT_EQ(restarts(&f), 0);
        ASSERT_EQ(rt_whereis(f.cx, CHILD_NAME), 0);
        ASSERT_EQ(atomic_load(&f.arg.inits), 1);
        ASSERT_EQ(gw_downs(&f.log, NULL, NULL, NULL, 0), 0);
        ASSERT_FALSE(rt_is_alive(f.cx, sup));
        ASSERT_TRUE(ak_sup_stop(f.cx, sup, 1000, 5000)); /* on an ended supervisor: a no-op */
        WAIT_FOR(&f, atomic_load(&f.arg.freed) == 1);
        fx_fini(&f);
    }
}

TEST(restart_storm_gives_up_and_says_so)
{
    fx f;
    fx_init(&f, true);
    f.spec.storm_max = 3;
    f.spec.storm_window_ms = 600000;
    rt_ref sup = 0;
    ASSERT_OK(ak_sup_start(f.cx, &f.spec, &sup, NULL, 0));
    ASSERT_OK(rt_wait_quiescent(f.rt, 10000));
    for (int i = 1; i <= 3; i++)
        crash_and_restart(&f, RT_EXIT_ERROR, i);
    die(&f, rt_whereis(f.cx, CHILD_NAME), RT_EXIT_ERROR); /* the fourth within 10 min */
    WAIT_FOR(&f, atomic_load(&f.stats.ended));
    ASSERT_TRUE(atomic_load(&f.stats.gave_up));
    advance(&f, 120000);
    ASSERT_EQ(restarts(&f), 3);
    ASSERT_EQ(rt_whereis(f.cx, CHILD_NAME), 0);
    int rs = 0;
    bool gave = false;
    char detail[160];
    ASSERT_EQ(gw_downs(&f.log, &rs, &gave, detail, sizeof(detail)), 4);
    ASSERT_TRUE(gave);
    ASSERT_EQ(rs, 3);
    ASSERT_STR_CONTAINS(detail, "gave up");
    fx_fini(&f);
}

TEST(restarts_spread_over_the_window_are_no_storm)
{
    fx f;
    fx_init(&f, true);
    f.spec.storm_max = 2;
    f.spec.storm_window_ms = 100000;
    rt_ref sup = 0;
    ASSERT_OK(ak_sup_start(f.cx, &f.spec, &sup, NULL, 0));
    ASSERT_OK(rt_wait_quiescent(f.rt, 10000));
    crash_and_restart(&f, RT_EXIT_ERROR, 1);
    crash_and_restart(&f, RT_EXIT_ERROR, 2);
    advance(&f, 100000); /* both restarts leave the window (and the back-off resets) */
    crash_and_restart(&f, RT_EXIT_ERROR, 1);
    ASSERT_FALSE(atomic_load(&f.stats.gave_up));
    ASSERT_EQ(restarts(&f), 3);
    ASSERT_TRUE(ak_sup_stop(f.cx, sup, 1000, 5000));
    fx_fini(&f);
}

TEST(stop_ends_child_without_restart)
{
    fx f;
    fx_init(&f, false); /* the real clock: nothing may restart while we wait */
    rt_ref sup = 0;
    ASSERT_OK(ak_sup_start(f.cx, &f.spec, &sup, NULL, 0));
    rt_ref c = rt_whereis(f.cx, CHILD_NAME);
    ASSERT_NE(c, 0);
    ASSERT_TRUE(ak_sup_stop(f.cx, sup, 1000, 5000));
    ASSERT_FALSE(rt_is_alive(f.cx, sup));
    ASSERT_FALSE(rt_is_alive(f.cx, c));
    WAIT_FOR(&f, atomic_load(&f.stats.ended));
    ASSERT_EQ(restarts(&f), 0);
    ASSERT_EQ(atomic_load(&f.arg.inits), 1);
    ASSERT_EQ(atomic_load(&f.arg.cleanups), 1);
    ASSERT_EQ(gw_downs(&f.log, NULL, NULL, NULL, 0), 0);
    fx_fini(&f);
}

TEST(stop_while_a_restart_is_pending)
{
    fx f;
    fx_init(&f, true);
    rt_ref sup = 0;
    ASSERT_OK(ak_sup_start(f.cx, &f.spec, &sup, NULL, 0));
    ASSERT_OK(rt_wait_quiescent(f.rt, 10000));
    die(&f, rt_whereis(f.cx, CHILD_NAME), RT_EXIT_ERROR);
    WAIT_FOR(&f, restarts(&f) == 1);
    ASSERT_TRUE(ak_sup_stop(f.cx, sup, 1000, 5000));
    WAIT_FOR(&f, atomic_load(&f.stats.ended));
    advance(&f, 120000); /* the cancelled timer never starts a child */
    ASSERT_EQ(rt_whereis(f.cx, CHILD_NAME), 0);
    ASSERT_EQ(atomic_load(&f.arg.inits), 1);
    fx_fini(&f);
}

/* A graceful stop hook (the adapters' drain) is used instead of rt_stop. */
static _Atomic int stop_hook_calls;
static void stop_hook(rt_ctx *cx, void *arg, rt_ref child, int64_t grace_ms)
{
    atomic_fetch_add(&stop_hook_calls, 1);
    die_msg *m = RT_MSG_NEW(die_msg, T_DIE);
    m->reason = RT_EXIT_NORMAL; /* "drained": ends by itself */
    rt_send(cx, child, &m->hdr);
}

TEST(stop_uses_the_drain_hook)
{
    fx f;
    fx_init(&f, false);
    f.spec.stop = stop_hook;
    f.spec.detached = true;
    rt_ref sup = 0;
    ASSERT_OK(ak_sup_start(f.cx, &f.spec, &sup, NULL, 0));
    rt_ref c = rt_whereis(f.cx, CHILD_NAME);
    ASSERT_TRUE(ak_sup_stop(f.cx, sup, 1000, 5000));
    ASSERT_EQ(atomic_load(&stop_hook_calls), 1);
    ASSERT_FALSE(rt_is_alive(f.cx, c));
    WAIT_FOR(&f, atomic_load(&f.stats.ended));
    ASSERT_EQ(restarts(&f), 0);
    fx_fini(&f);
}

TEST(failed_restart_is_retried)
{
    fx f;
    fx_init(&f, true);
    f.spec.type = NULL;
    f.spec.make_init = NULL;
    f.spec.name = NULL;
    f.spec.start = start_fn;
    f.spec.detached = true;
    atomic_store(&f.arg.fail_from, 2); /* the first two restarts fail */
    atomic_store(&f.arg.fail_to, 3);
    rt_ref sup = 0;
    ASSERT_OK(ak_sup_start(f.cx, &f.spec, &sup, NULL, 0));
    ASSERT_OK(rt_wait_quiescent(f.rt, 10000));
    die(&f, rt_whereis(f.cx, CHILD_NAME), RT_EXIT_ERROR);
    WAIT_FOR(&f, restarts(&f) == 1);
    advance(&f, 1200); /* restart 1 fails → restart 2 in ~2 s */
    WAIT_FOR(&f, restarts(&f) == 2);
    advance(&f, 2400); /* fails again → restart 3 in ~4 s */
    WAIT_FOR(&f, restarts(&f) == 3);
    ASSERT_EQ(atomic_load(&f.stats.child), 0);
    advance(&f, 4800);
    WAIT_FOR(&f, atomic_load(&f.stats.child) != 0);
    ASSERT_EQ(atomic_load(&f.arg.inits), 4);
    char detail[160];
    gw_downs(&f.log, NULL, NULL, detail, sizeof(detail));
    ASSERT_STR_CONTAINS(detail, "start failed");
    ASSERT_TRUE(ak_sup_stop(f.cx, sup, 1000, 5000));
    WAIT_FOR(&f, atomic_load(&f.stats.ended));
    fx_fini(&f);
}

TEST(first_start_failure_and_bad_specs_are_errors)
{
    fx f;
    fx_init(&f, false);
    f.spec.type = NULL;
    f.spec.make_init = NULL;
    f.spec.start = start_fn;
    atomic_store(&f.arg.fail_from, 1);
    atomic_store(&f.arg.fail_to, 1);
    rt_ref sup = 77;
    char err[128];
    ASSERT_EQ(ak_sup_start(f.cx, &f.spec, &sup, err, sizeof(err)), -EIO);
    ASSERT_EQ(sup, 0);
    ASSERT_STR_CONTAINS(err, "the server said no");
    WAIT_FOR(&f, atomic_load(&f.arg.freed) == 1); /* arg taken in every case */
    ASSERT_TRUE(atomic_load(&f.stats.ended) || !atomic_load(&f.stats.child));

    atomic_store(&f.arg.freed, 0);
    ak_sup_spec bad = f.spec;
    bad.platform = NULL;
    ASSERT_EQ(ak_sup_start(f.cx, &bad, &sup, err, sizeof(err)), -EINVAL);
    ASSERT_EQ(atomic_load(&f.arg.freed), 1);
    bad = f.spec;
    bad.start = NULL;
    ASSERT_EQ(ak_sup_start(f.cx, &bad, &sup, err, sizeof(err)), -EINVAL);
    ASSERT_EQ(ak_sup_start(f.cx, NULL, &sup, err, sizeof(err)), -EINVAL);

    /* a name already taken: the start fails cleanly */
    fx_fini(&f);
    fx_init(&f, false);
    child_state cs = {0};
    rt_spawn_opts o = {.name = CHILD_NAME};
    rt_ref squatter = rt_spawn(f.cx, &child_type, &cs, &o);
    ASSERT_NE(squatter, 0);
    ASSERT_EQ(ak_sup_start(f.cx, &f.spec, &sup, err, sizeof(err)), -EEXIST);
    ASSERT_STR_CONTAINS(err, "name taken");
    WAIT_FOR(&f, atomic_load(&f.arg.freed) == 1);
    rt_stop(f.cx, squatter, RT_EXIT_STOPPED);
    ASSERT_TRUE(ak_sup_stop(f.cx, 0, 0, 0)); /* no supervisor: no-op */
    fx_fini(&f);
}
