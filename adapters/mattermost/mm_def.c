/*
 * mm_def — Mattermost as a gateway platform (gw_adapter.h): reads the settings
 * (MATTERMOST_URL + MATTERMOST_TOKEN enable it), starts the adapter actor on the host's
 * reactor and lws service under a supervisor (a dead actor restarts, issue 13), and stops
 * it.
 *
 * Threads: start and stop on the gateway's main thread (they may block briefly).
 */
#include "ak_supervise.h"
#include "gw_adapter.h"
#include "mattermost.h"
#include "rt_alloc.h"
#include "rt_log.h"

#include <errno.h>
#include <stdbool.h>

typedef struct mm_handle {
    rt_ref sup; /* the supervisor (adapters/kit/ak_supervise.h) restarting the actor */
} mm_handle;

/* What a (re)start needs: the settings, owned by the supervisor. The actor reads its state
 * file (the last post seen per channel) in mattermost_start, so a restarted actor catches up
 * on what was posted while it was down. */
typedef struct mm_sup_arg {
    mattermost_opts o;
    rt_ref gateway;
} mm_sup_arg;

static int mm_sup_start(rt_ctx *cx, void *arg, rt_ref *child, char *err, size_t errlen)
{
    mm_sup_arg *a = arg;
    return mattermost_start(cx, &a->o, a->gateway, child, err, errlen);
}

static void mm_sup_free(void *arg)
{
    mm_sup_arg *a = arg;
    mattermost_opts_fini(&a->o);
    rt_free(a);
}

static int mm_def_start(rt_ctx *cx, const gw_adapter_env *env, void **handle, char *err,
                        size_t errlen)
{
    mm_sup_arg *a = rt_xcalloc(1, sizeof(*a));
    int rc = mattermost_opts_from_config(env->cfg, env->home, &a->o, err, errlen);
    if (rc) {
        rt_free(a);
        return rc == -ENOENT ? 0 : rc; /* -ENOENT: not configured */
    }
    a->gateway = env->gateway;
    char *url = rt_xstrdup(a->o.url);
    bool thread = a->o.reply_thread;
    /* detached: mattermost_start reads the state file and takes the identity lock */
    ak_sup_spec spec = {.platform = MATTERMOST_PLATFORM,
                        .start = mm_sup_start,
                        .arg = a,
                        .arg_free = mm_sup_free,
                        .gateway = env->gateway,
                        .detached = true};
    rt_ref sup = 0;
    rc = ak_sup_start(cx, &spec, &sup, err, errlen); /* a is the supervisor's now */
    if (rc == 0)
        RT_INFO("gateway", "Mattermost: starting (server %s, reply mode %s)", url,
                thread ? "thread" : "off");
    rt_free(url);
    if (rc)
        return rc;
    mm_handle *h = rt_xcalloc(1, sizeof(*h));
    h->sup = sup;
    *handle = h;
    return 1;
}

static void mm_def_stop(rt_ctx *cx, void *handle, int64_t grace_ms)
{
    mm_handle *h = handle;
    if (!h)
        return;
    /* the main thread may wait: bounded by grace_ms (at most 5 s) */
    int64_t left = grace_ms <= 0 ? 1000 : grace_ms > 5000 ? 5000 : grace_ms;
    (void)ak_sup_stop(cx, h->sup, left, left);
    rt_free(h);
}

const gw_adapter_def mattermost_adapter = {
    .platform = MATTERMOST_PLATFORM,
    .start = mm_def_start,
    .stop = mm_def_stop,
};
