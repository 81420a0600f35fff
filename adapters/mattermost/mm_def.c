/*
 * mm_def — Mattermost as a gateway platform (gw_adapter.h): reads the settings
 * (MATTERMOST_URL + MATTERMOST_TOKEN enable it), starts the adapter actor on the host's
 * reactor and lws service, and stops it.
 *
 * Threads: start and stop on the gateway's main thread (they may block briefly).
 */
#include "gw_adapter.h"
#include "mattermost.h"
#include "rt_alloc.h"
#include "rt_log.h"

#include <errno.h>
#include <time.h>

typedef struct mm_handle {
    rt_ref ref;
} mm_handle;

static int mm_def_start(rt_ctx *cx, const gw_adapter_env *env, void **handle, char *err,
                        size_t errlen)
{
    mattermost_opts o;
    int rc = mattermost_opts_from_config(env->cfg, env->home, &o, err, errlen);
    if (rc == -ENOENT)
        return 0; /* not configured */
    if (rc)
        return rc;
    rt_ref ref = 0;
    rc = mattermost_start(cx, &o, env->gateway, &ref, err, errlen);
    if (rc == 0)
        RT_INFO("gateway", "Mattermost: starting (server %s, reply mode %s)", o.url,
                o.reply_thread ? "thread" : "off");
    mattermost_opts_fini(&o);
    if (rc)
        return rc;
    mm_handle *h = rt_xcalloc(1, sizeof(*h));
    h->ref = ref;
    *handle = h;
    return 1;
}

static void mm_def_stop(rt_ctx *cx, void *handle, int64_t grace_ms)
{
    mm_handle *h = handle;
    if (!h)
        return;
    if (rt_stop(cx, h->ref, RT_EXIT_STOPPED)) {
        /* the main thread may wait: bounded by grace_ms (at most 5 s) */
        int64_t left = grace_ms <= 0 ? 1000 : grace_ms > 5000 ? 5000 : grace_ms;
        struct timespec ts = {0, 10 * 1000000L};
        for (; left > 0 && rt_is_alive(cx, h->ref); left -= 10)
            nanosleep(&ts, NULL);
    }
    rt_free(h);
}

const gw_adapter_def mattermost_adapter = {
    .platform = MATTERMOST_PLATFORM,
    .start = mm_def_start,
    .stop = mm_def_stop,
};
