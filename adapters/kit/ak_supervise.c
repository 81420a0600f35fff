/*
 * ak_supervise — see ak_supervise.h.
 *
 * State machine of the supervisor actor (one child at a time):
 *
 *   RUNNING  child != 0, monitored ──DOWN abnormal──► WAITING (timer armed)
 *                                  ──DOWN normal────► ends
 *   (first)  AK_MSG_SUP_FIRST: the first start, its outcome handed to ak_sup_start
 *   WAITING  child == 0 ──timer──► start ok: RUNNING / start failed: WAITING again
 *   any      ──AK_MSG_SUP_SHUTDOWN──► stopping: child stopped, the next DOWN ends us
 *            ──RT_MSG_STOP (ak_sup_stop's backstop)──► child stopped, cleanup, ends at once
 */
#include "ak_supervise.h"

#include "ak_timer.h"
#include "gw.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define LOGS "supervise"

enum { AK_MSG_SUP_FIRST = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0F11) };

#define FIRST_WAIT_MS 60000 /* ak_sup_start waits this long for the first start */

enum { FIRST_PENDING = 0, FIRST_DONE = 1, FIRST_ABANDONED = 2 };

/*
 * The first start's outcome, handed from the supervisor to ak_sup_start. The supervisor
 * starts every child itself, the first one too, so that it monitors each before anything
 * else can happen to it (a child that ended before a later rt_monitor would be reported as
 * RT_EXIT_NOPROC, its real reason lost). Shared by the waiting caller and the message that
 * carries it (refs); the supervisor writes rc, child and err, then publishes state.
 */
typedef struct sup_first {
    _Atomic int refs;
    _Atomic int state; /* FIRST_*: acq_rel CAS on both sides (see on_first, ak_sup_start) */
    int rc;
    char err[256];
} sup_first;

typedef struct sup_first_msg {
    rt_msg hdr;
    sup_first *f;
} sup_first_msg;

static void first_unref(sup_first *f)
{
    /* acq_rel: the last owner sees every write of the other before freeing */
    if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        rt_free(f);
}

static void drop_first(rt_msg *m)
{
    first_unref(((sup_first_msg *)m)->f);
}

typedef struct sup_shutdown {
    rt_msg hdr;
    int64_t grace_ms;
} sup_shutdown;

typedef struct sup {
    ak_sup_spec spec;                /* copied; platform and name point at the copies below */
    char *platform;                  /* owned */
    char *name;                      /* owned, or NULL */
    rt_ref child;                    /* 0 while none runs */
    uint64_t mon;                    /* the child's monitor */
    bool need_cleanup;               /* spec.cleanup not yet run for the last child */
    int64_t started_ms;              /* when the child started (monotonic) */
    int attempt;                     /* consecutive restarts without a stable run */
    uint64_t restarts;               /* total restarts */
    int64_t storm[AK_SUP_STORM_CAP]; /* times of the last restarts (ring) */
    size_t storm_n, storm_at;
    uint64_t timer; /* the pending restart timer's id */
    uint64_t gen;   /* its tag; timeouts with another tag are stale */
    bool waiting;   /* a restart is pending */
    bool stopping;  /* ak_sup_stop: nothing is restarted any more */
    uint64_t rng;
} sup;

/* The runtime's clock, so that tests drive back-off and windows with a fake one. */
static int64_t now_ms(rt_ctx *cx)
{
    return rt_now_ns(rt_ctx_runtime(cx)) / 1000000;
}

const char *ak_sup_reason_name(int reason, char *buf, size_t len)
{
    static const char *const names[] = {"normal", "stopped",  "killed", "linked",
                                        "noproc", "shutdown", "error"};
    if (reason >= 0 && reason < (int)(sizeof(names) / sizeof(names[0])))
        snprintf(buf, len, "%s", names[reason]);
    else if (reason >= RT_EXIT_USER)
        snprintf(buf, len, "user+%d", reason - RT_EXIT_USER);
    else
        snprintf(buf, len, "reason %d", reason);
    return buf;
}

int64_t ak_sup_backoff(int attempt, int64_t min_ms, int64_t max_ms, uint64_t *rng)
{
    if (min_ms < 1)
        min_ms = 1;
    if (max_ms < min_ms)
        max_ms = min_ms;
    int64_t d = min_ms;
    for (int i = 1; i < attempt && d < max_ms; i++)
        d = d > max_ms / 2 ? max_ms : d * 2;
    if (d > max_ms)
        d = max_ms;
    int64_t span = d * 2 / 5; /* ±20 % */
    if (span > 0 && rng && *rng)
        d = d - span / 2 + (int64_t)(ak_rand(rng) % (uint64_t)(span + 1));
    if (d > max_ms)
        d = max_ms;
    return d < 1 ? 1 : d;
}

/* ============================================================== starting */

static int start_child(rt_ctx *cx, const ak_sup_spec *s, const char *name, rt_ref *child, char *err,
                       size_t errlen)
{
    *child = 0;
    if (s->start) {
        int rc = s->start(cx, s->arg, child, err, errlen);
        if (rc == 0 && !*child)
            rc = -ECHILD;
        if (rc && !err[0])
            snprintf(err, errlen, "%s", rt_strerror(rc));
        return rc;
    }
    void *init = s->make_init ? s->make_init(s->arg) : NULL;
    rt_spawn_opts o = {.flags = s->spawn_flags & ~(uint32_t)RT_SPAWN_LINK, .name = name};
    *child = rt_spawn(cx, s->type, init, &o);
    if (s->type->state_size > 0)
        rt_free(init);
    if (!*child) {
        snprintf(err, errlen, "could not spawn %s%s%s", s->type->name ? s->type->name : "actor",
                 name ? ": name taken: " : "", name ? name : "");
        return -EEXIST;
    }
    return 0;
}

static void stats_child(sup *s, rt_ref child)
{
    if (s->spec.stats)
        atomic_store_explicit(&s->spec.stats->child, child, memory_order_relaxed);
}

static void run_cleanup(sup *s, rt_ctx *cx, rt_ref child)
{
    if (!s->need_cleanup)
        return;
    s->need_cleanup = false;
    if (s->spec.cleanup)
        s->spec.cleanup(cx, s->spec.arg, child);
}

/* The gateway hears of a restart (or of giving up): GW_MSG_ADAPTER_DOWN with the count. */
static void tell_gateway(sup *s, rt_ctx *cx, rt_ref old, bool gave_up, const char *detail)
{
    rt_ref gw = s->spec.gateway ? s->spec.gateway : rt_whereis(cx, GW_NAME);
    if (!gw)
        return;
    gw_msg_adapter *m = (gw_msg_adapter *)gw_adapter_down_new(s->platform, old);
    m->restarts = s->restarts > (uint64_t)INT32_MAX ? INT32_MAX : (int)s->restarts;
    m->gave_up = gave_up;
    rt_strlcpy(m->detail, detail, sizeof(m->detail));
    (void)rt_send(cx, gw, &m->hdr); /* false: the gateway has gone (shutdown) */
}

static void finish(sup *s, rt_ctx *cx)
{
    run_cleanup(s, cx, s->child);
    rt_exit(cx, RT_EXIT_NORMAL);
}

/* ============================================================= restarting */

/* Restarts within the storm window (the ring keeps the last storm_max). */
static int storm_count(const sup *s, int64_t now)
{
    int n = 0;
    for (size_t i = 0; i < s->storm_n; i++)
        if (now - s->storm[i] < s->spec.storm_window_ms)
            n++;
    return n;
}

static void give_up(sup *s, rt_ctx *cx, rt_ref old, const char *why)
{
    char detail[160];
    snprintf(detail, sizeof(detail), "gave up after %llu restarts (%d within %lld min; last: %s)",
             (unsigned long long)s->restarts, s->spec.storm_max,
             (long long)(s->spec.storm_window_ms / 60000), why);
    RT_ERROR(LOGS,
             "%s: the adapter ended (%s) after %d restarts within %lld s: giving up; the rest "
             "of the gateway keeps running (restart the gateway to retry)",
             s->platform, why, s->spec.storm_max, (long long)(s->spec.storm_window_ms / 1000));
    if (s->spec.stats)
        atomic_store_explicit(&s->spec.stats->gave_up, true, memory_order_relaxed);
    tell_gateway(s, cx, old, true, detail);
    finish(s, cx);
}

/* The child (old) ended abnormally after living `lived` ms: restart it after a back-off, or
 * give up on a storm. */
static void schedule_restart(sup *s, rt_ctx *cx, rt_ref old, int64_t lived, const char *why)
{
    int64_t now = now_ms(cx);
    if (lived >= s->spec.stable_ms)
        s->attempt = 0;
    if (storm_count(s, now) >= s->spec.storm_max) {
        give_up(s, cx, old, why);
        return;
    }
    s->attempt++;
    s->restarts++;
    s->storm[s->storm_at] = now;
    s->storm_at = (s->storm_at + 1) % (size_t)s->spec.storm_max;
    if (s->storm_n < (size_t)s->spec.storm_max)
        s->storm_n++;
    int64_t delay = ak_sup_backoff(s->attempt, s->spec.min_ms, s->spec.max_ms, &s->rng);
    RT_WARN(LOGS, "%s: the adapter ended (%s); restart %llu (attempt %d) in %lld ms", s->platform,
            why, (unsigned long long)s->restarts, s->attempt, (long long)delay);
    if (s->spec.stats) {
        atomic_store_explicit(&s->spec.stats->restarts, s->restarts, memory_order_relaxed);
        stats_child(s, 0);
    }
    char detail[160];
    snprintf(detail, sizeof(detail), "restarting in %.1f s after %s", (double)delay / 1000.0, why);
    tell_gateway(s, cx, old, false, detail);
    s->waiting = true;
    s->timer = rt_send_after(cx, rt_self(cx), rt_timeout_new(++s->gen), delay);
}

static void on_timeout(sup *s, rt_ctx *cx, const rt_msg_timeout *t)
{
    if (!s->waiting || t->tag != s->gen || s->stopping)
        return;
    s->waiting = false;
    char err[256] = "";
    rt_ref child = 0;
    int rc = start_child(cx, &s->spec, s->name, &child, err, sizeof(err));
    if (rc) {
        RT_WARN(LOGS, "%s: the restart failed: %s", s->platform, err);
        char why[200];
        snprintf(why, sizeof(why), "start failed: %s", rt_strerror(rc));
        schedule_restart(s, cx, 0, 0, why);
        return;
    }
    s->child = child;
    s->need_cleanup = true;
    s->started_ms = now_ms(cx);
    s->mon = rt_monitor(cx, child);
    stats_child(s, child);
    RT_INFO(LOGS, "%s: the adapter was restarted (restart %llu)", s->platform,
            (unsigned long long)s->restarts);
}

static void on_down(sup *s, rt_ctx *cx, const rt_msg_down *d)
{
    if (d->ref != s->child || d->mon != s->mon)
        return; /* a child we no longer watch */
    rt_ref old = s->child;
    s->child = 0;
    s->mon = 0;
    stats_child(s, 0);
    run_cleanup(s, cx, old);
    if (s->stopping) {
        finish(s, cx);
        return;
    }
    char why[32];
    ak_sup_reason_name(d->reason, why, sizeof(why));
    if (d->reason == RT_EXIT_NORMAL || d->reason == RT_EXIT_STOPPED ||
        d->reason == RT_EXIT_SHUTDOWN) {
        RT_INFO(LOGS, "%s: the adapter ended (%s); not restarted", s->platform, why);
        finish(s, cx);
        return;
    }
    if (s->spec.stats)
        atomic_store_explicit(&s->spec.stats->last_reason, d->reason, memory_order_relaxed);
    schedule_restart(s, cx, old, now_ms(cx) - s->started_ms, why);
}

static void begin_stop(sup *s, rt_ctx *cx)
{
    s->stopping = true;
    if (s->waiting) {
        (void)rt_timer_cancel(cx, s->timer); /* false: it fired; on_timeout ignores it */
        s->waiting = false;
    }
}

static void on_shutdown(sup *s, rt_ctx *cx, const sup_shutdown *m)
{
    begin_stop(s, cx);
    if (!s->child) {
        finish(s, cx);
        return;
    }
    /* the child's DOWN (still to come, monitored) ends us */
    if (s->spec.stop)
        s->spec.stop(cx, s->spec.arg, s->child, m->grace_ms);
    else
        (void)rt_stop(cx, s->child, RT_EXIT_STOPPED);
}

/* The first start (see sup_first): the caller of ak_sup_start learns its outcome. */
static void on_first(sup *s, rt_ctx *cx, sup_first *f)
{
    rt_ref child = 0;
    int rc = s->stopping ? -ECANCELED
                         : start_child(cx, &s->spec, s->name, &child, f->err, sizeof(f->err));
    if (rc == 0) {
        s->child = child;
        s->need_cleanup = true;
        s->started_ms = now_ms(cx);
        s->mon = rt_monitor(cx, child);
        stats_child(s, child);
    }
    f->rc = rc;
    int expect = FIRST_PENDING;
    /* acq_rel: publishes rc and err to ak_sup_start's acquire; fails when it gave up */
    bool told = atomic_compare_exchange_strong_explicit(&f->state, &expect, FIRST_DONE,
                                                        memory_order_acq_rel, memory_order_acquire);
    if (rc) {
        finish(s, cx); /* nothing to supervise */
        return;
    }
    if (!told) { /* the caller stopped waiting: it holds no handle to stop us with */
        RT_WARN(LOGS, "%s: the adapter started too late: stopped", s->platform);
        s->stopping = true;
        (void)rt_stop(cx, child, RT_EXIT_STOPPED);
    }
}

static void sup_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    sup *s = state;
    switch (m->type) {
    case AK_MSG_SUP_FIRST: on_first(s, cx, ((sup_first_msg *)m)->f); break;
    case RT_MSG_DOWN: on_down(s, cx, (const rt_msg_down *)m); break;
    case RT_MSG_TIMEOUT: on_timeout(s, cx, (const rt_msg_timeout *)m); break;
    case AK_MSG_SUP_SHUTDOWN: on_shutdown(s, cx, (const sup_shutdown *)m); break;
    case RT_MSG_STOP: /* ak_sup_stop's backstop: we end after this */
        begin_stop(s, cx);
        if (s->child)
            (void)rt_stop(cx, s->child, RT_EXIT_STOPPED);
        run_cleanup(s, cx, s->child);
        break;
    default: RT_WARN_ONCE(LOGS, "supervisor: unexpected message type %u", m->type); break;
    }
}

static void sup_fini(void *state)
{
    sup *s = state;
    if (s->spec.stats) {
        atomic_store_explicit(&s->spec.stats->child, 0, memory_order_relaxed);
        atomic_store_explicit(&s->spec.stats->ended, true, memory_order_release);
    }
    if (s->spec.arg_free)
        s->spec.arg_free(s->spec.arg);
    rt_free(s->platform);
    rt_free(s->name);
}

static const rt_actor_type sup_type = {"supervisor", sup_behave, sup_fini, sizeof(sup)};

/* ============================================================ public API */

static void defaults(ak_sup_spec *s)
{
    s->min_ms = s->min_ms > 0 ? s->min_ms : AK_SUP_MIN_MS;
    s->max_ms = s->max_ms > 0 ? s->max_ms : AK_SUP_MAX_MS;
    s->max_ms = s->max_ms < s->min_ms ? s->min_ms : s->max_ms;
    s->stable_ms = s->stable_ms > 0 ? s->stable_ms : AK_SUP_STABLE_MS;
    s->storm_window_ms = s->storm_window_ms > 0 ? s->storm_window_ms : AK_SUP_STORM_WINDOW;
    s->storm_max = s->storm_max > 0 ? s->storm_max : AK_SUP_STORM_MAX;
    s->storm_max = s->storm_max > AK_SUP_STORM_CAP ? AK_SUP_STORM_CAP : s->storm_max;
}

/* Wait (polling: the caller is not a worker) for the supervisor's first start. */
static int wait_first(sup_first *f, char *err, size_t errlen)
{
    const struct timespec step = {0, 1000000L};
    for (int64_t left = FIRST_WAIT_MS; left > 0; left--) {
        /* acquire: pairs with the acq_rel CAS in on_first */
        if (atomic_load_explicit(&f->state, memory_order_acquire) == FIRST_DONE)
            break;
        nanosleep(&step, NULL);
    }
    int expect = FIRST_PENDING;
    if (atomic_compare_exchange_strong_explicit(&f->state, &expect, FIRST_ABANDONED,
                                                memory_order_acq_rel, memory_order_acquire)) {
        snprintf(err, errlen, "supervise: the adapter did not start within %d s",
                 FIRST_WAIT_MS / 1000);
        return -ETIMEDOUT;
    }
    if (f->rc)
        snprintf(err, errlen, "%s", f->err[0] ? f->err : rt_strerror(f->rc));
    return f->rc;
}

int ak_sup_start(rt_ctx *cx, const ak_sup_spec *spec, rt_ref *out, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (out)
        *out = 0;
    if (!spec || !out || !spec->platform || (!spec->start && !spec->type)) {
        snprintf(err, errlen, "supervise: a spec needs a platform and a start or a type");
        if (spec && spec->arg_free)
            spec->arg_free(spec->arg);
        return -EINVAL;
    }
    sup init;
    memset(&init, 0, sizeof(init));
    init.spec = *spec;
    defaults(&init.spec);
    init.platform = rt_xstrdup(spec->platform);
    init.name = spec->name ? rt_xstrdup(spec->name) : NULL;
    init.spec.platform = init.platform;
    init.spec.name = init.name;
    init.rng =
        ((uint64_t)now_ms(cx) * 0x9E3779B97F4A7C15ull) ^ (uint64_t)(uintptr_t)spec ^ 0x5DEECE66Dull;
    if (!init.rng)
        init.rng = 1;
    if (spec->stats) {
        atomic_store_explicit(&spec->stats->child, 0, memory_order_relaxed);
        atomic_store_explicit(&spec->stats->ended, false, memory_order_relaxed);
    }
    rt_spawn_opts so = {.flags = spec->detached ? RT_SPAWN_DETACHED : 0};
    rt_ref s = rt_spawn(cx, &sup_type, &init, &so); /* owns init's pointers from here */
    if (!s) { /* unnamed: cannot happen (its fini has released arg) */
        snprintf(err, errlen, "supervise: could not spawn the supervisor");
        return -ENOMEM;
    }
    sup_first *f = rt_xcalloc(1, sizeof(*f));
    atomic_init(&f->refs, 2); /* this call and the message */
    atomic_init(&f->state, FIRST_PENDING);
    sup_first_msg *m = RT_MSG_NEW(sup_first_msg, AK_MSG_SUP_FIRST);
    m->f = f;
    m->hdr.drop = drop_first;
    int rc = rt_send(cx, s, &m->hdr) ? wait_first(f, err, errlen) : -ESRCH;
    first_unref(f);
    if (rc == 0)
        *out = s;
    return rc; /* on failure the supervisor ends by itself and frees arg */
}

bool ak_sup_stop(rt_ctx *cx, rt_ref sup_ref, int64_t grace_ms, int64_t wait_ms)
{
    if (!sup_ref || !rt_is_alive(cx, sup_ref))
        return true;
    sup_shutdown *m = RT_MSG_NEW(sup_shutdown, AK_MSG_SUP_SHUTDOWN);
    m->grace_ms = grace_ms;
    (void)rt_send(cx, sup_ref, &m->hdr); /* false: it has just ended */
    int64_t wait = wait_ms > 0 ? wait_ms : 5000;
    int64_t left = wait;
    const struct timespec step = {0, 10 * 1000000L};
    for (; left > 0 && rt_is_alive(cx, sup_ref); left -= 10)
        nanosleep(&step, NULL);
    if (!rt_stop(cx, sup_ref, RT_EXIT_STOPPED))
        return true;
    RT_WARN(LOGS, "an adapter did not stop within %lld ms: stopped", (long long)wait);
    for (left = 1000; left > 0 && rt_is_alive(cx, sup_ref); left -= 10)
        nanosleep(&step, NULL);
    return false;
}
