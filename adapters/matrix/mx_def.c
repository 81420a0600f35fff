/*
 * mx_def — Matrix as a gateway platform (gw_adapter.h): reads the settings, starts the
 * adapter actor (supervised: a dead actor restarts, issue 13) when MATRIX_HOMESERVER and
 * credentials are set, and stops it, letting queued sends finish for up to the grace period.
 *
 * One Matrix adapter per process: its counters (matrix_stats) are static so that they
 * outlive the actor, which may still be ending when stop returns.
 *
 * Threads: start and stop from the gateway's main thread (never a worker: stop polls).
 */
#include "ak_supervise.h"
#include "gw_adapter.h"
#include "hm_config.h"
#include "matrix.h"
#include "rt_alloc.h"
#include "rt_log.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>

typedef struct mx_def_handle {
    rt_ref sup; /* the supervisor (adapters/kit/ak_supervise.h) restarting the actor */
} mx_def_handle;

static matrix_stats mx_def_stats;
static mx_def_handle mx_def_h;

/* What a (re)start needs: the settings, owned by the supervisor. matrix_start reads the
 * since token (and the threads file) from the store, so a restarted actor syncs on from where
 * the last one stopped: nothing in between is lost. */
typedef struct mx_sup_arg {
    matrix_opts o;
    rt_ref gateway;
} mx_sup_arg;

static int mx_sup_start(rt_ctx *cx, void *arg, rt_ref *child, char *err, size_t errlen)
{
    mx_sup_arg *a = arg;
    return matrix_start(cx, &a->o, a->gateway, child, err, errlen);
}

static void mx_sup_free(void *arg)
{
    mx_sup_arg *a = arg;
    matrix_opts_fini(&a->o);
    rt_free(a);
}

static int mx_def_start(rt_ctx *cx, const gw_adapter_env *env, void **handle, char *err,
                        size_t errlen)
{
    mx_sup_arg *a = rt_xcalloc(1, sizeof(*a));
    int rc = matrix_opts_from_config(env->cfg, env->home, &a->o, err, errlen);
    if (rc) {
        rt_free(a);
        return rc == -ENOENT ? 0 : rc; /* -ENOENT: not configured */
    }
    a->o.stats = &mx_def_stats;
    a->gateway = env->gateway;
    char *hs = rt_xstrdup(a->o.homeserver);
    char *who = rt_xstrdup(a->o.user_id ? a->o.user_id : "the access token's user");
    /* detached: matrix_start reads two small state files */
    ak_sup_spec spec = {.platform = MATRIX_PLATFORM,
                        .start = mx_sup_start,
                        .arg = a,
                        .arg_free = mx_sup_free,
                        .gateway = env->gateway,
                        .detached = true};
    rt_ref sup = 0;
    rc = ak_sup_start(cx, &spec, &sup, err, errlen); /* a is the supervisor's now */
    if (rc == 0)
        RT_INFO("gateway", "Matrix: connecting to %s as %s", hs, who);
    rt_free(hs);
    rt_free(who);
    if (rc)
        return rc;
    mx_def_h.sup = sup;
    *handle = &mx_def_h;
    return 1;
}

static void mx_def_stop(rt_ctx *cx, void *handle, int64_t grace_ms)
{
    mx_def_handle *h = handle;
    if (!h || !h->sup)
        return;
    /* queued sends (the last replies, ✅ reactions) get up to grace_ms, at most 10 s */
    int64_t left = grace_ms < 10000 ? grace_ms : 10000;
    const struct timespec step = {0, 20 * 1000000L};
    while (left > 0 && atomic_load_explicit(&mx_def_stats.outbox, memory_order_relaxed) > 0 &&
           atomic_load_explicit(&mx_def_stats.state, memory_order_relaxed) == MATRIX_ST_SYNCING) {
        nanosleep(&step, NULL);
        left -= 20;
    }
    /* the since token is written as the actor stops */
    (void)ak_sup_stop(cx, h->sup, 0, 2000);
    h->sup = 0;
}

const gw_adapter_def matrix_adapter = {
    .platform = MATRIX_PLATFORM,
    .start = mx_def_start,
    .stop = mx_def_stop,
};
