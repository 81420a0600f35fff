/*
 * mx_def — Matrix as a gateway platform (gw_adapter.h): reads the settings, starts the
 * adapter actor when MATRIX_HOMESERVER and credentials are set, and stops it, letting queued
 * sends finish for up to the grace period.
 *
 * One Matrix adapter per process: its counters (matrix_stats) are static so that they
 * outlive the actor, which may still be ending when stop returns.
 *
 * Threads: start and stop from the gateway's main thread (never a worker: stop polls).
 */
#include "gw_adapter.h"
#include "hm_config.h"
#include "matrix.h"
#include "rt_log.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>

typedef struct mx_def_handle {
    rt_ref ref;
} mx_def_handle;

static matrix_stats mx_def_stats;
static mx_def_handle mx_def_h;

static int mx_def_start(rt_ctx *cx, const gw_adapter_env *env, void **handle, char *err,
                        size_t errlen)
{
    matrix_opts o;
    int rc = matrix_opts_from_config(env->cfg, env->home, &o, err, errlen);
    if (rc == -ENOENT)
        return 0; /* not configured */
    if (rc)
        return rc;
    o.stats = &mx_def_stats;
    rt_ref ref = 0;
    rc = matrix_start(cx, &o, env->gateway, &ref, err, errlen);
    if (rc == 0)
        RT_INFO("gateway", "Matrix: connecting to %s as %s", o.homeserver,
                o.user_id ? o.user_id : "the access token's user");
    matrix_opts_fini(&o);
    if (rc)
        return rc;
    mx_def_h.ref = ref;
    *handle = &mx_def_h;
    return 1;
}

static void mx_def_stop(rt_ctx *cx, void *handle, int64_t grace_ms)
{
    mx_def_handle *h = handle;
    if (!h || !h->ref)
        return;
    /* queued sends (the last replies, ✅ reactions) get up to grace_ms, at most 10 s */
    int64_t left = grace_ms < 10000 ? grace_ms : 10000;
    const struct timespec step = {0, 20 * 1000000L};
    while (left > 0 && atomic_load_explicit(&mx_def_stats.outbox, memory_order_relaxed) > 0 &&
           atomic_load_explicit(&mx_def_stats.state, memory_order_relaxed) == MATRIX_ST_SYNCING) {
        nanosleep(&step, NULL);
        left -= 20;
    }
    rt_stop(cx, h->ref, RT_EXIT_STOPPED);
    h->ref = 0;
}

const gw_adapter_def matrix_adapter = {
    .platform = MATRIX_PLATFORM,
    .start = mx_def_start,
    .stop = mx_def_stop,
};
