/*
 * tg_def — Telegram as a gateway platform (gw_adapter.h): reads its settings, starts the
 * adapter actor, and stops it.
 */
#include "gw_adapter.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "telegram.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

typedef struct tg_handle {
    rt_ref ref;
    _Atomic size_t pending; /* replies the actor has not delivered yet */
} tg_handle;

static int tg_def_start(rt_ctx *cx, const gw_adapter_env *env, void **handle, char *err,
                        size_t errlen)
{
    tg_opts o;
    int rc = tg_opts_from_config(env->cfg, env->home, &o, err, errlen);
    if (rc == -ENOENT)
        return 0; /* not configured */
    if (rc)
        return rc;
    tg_handle *h = rt_xcalloc(1, sizeof(*h));
    atomic_init(&h->pending, 0);
    o.pending = &h->pending;
    rt_ref ref = 0;
    rc = tg_start(cx, &o, env->gateway, &ref, err, errlen);
    if (rc == 0)
        RT_INFO("gateway", "Telegram: starting (Bot API at %s)", o.api_base);
    tg_opts_fini(&o);
    if (rc) {
        rt_free(h);
        return rc;
    }
    h->ref = ref;
    *handle = h;
    return 1;
}

static void tg_def_stop(rt_ctx *cx, void *handle, int64_t grace_ms)
{
    tg_handle *h = handle;
    if (!h)
        return;
    /* the main thread may wait: bounded by grace_ms (at most 5 s) — first for the replies
     * still queued (the gateway's shutdown notices among them), then for the actor to end */
    int64_t left = grace_ms <= 0 ? 1000 : grace_ms > 5000 ? 5000 : grace_ms;
    struct timespec ts = {0, 10 * 1000000L};
    for (; left > 0 && rt_is_alive(cx, h->ref) &&
           atomic_load_explicit(&h->pending, memory_order_acquire) > 0;
         left -= 10)
        nanosleep(&ts, NULL);
    bool dead = true;
    if (rt_stop(cx, h->ref, RT_EXIT_STOPPED)) {
        left = left < 1000 ? 1000 : left;
        for (; left > 0 && rt_is_alive(cx, h->ref); left -= 10)
            nanosleep(&ts, NULL);
        dead = !rt_is_alive(cx, h->ref);
    }
    if (dead) /* else the actor may still write h->pending: leave it (rare, at exit) */
        rt_free(h);
}

const gw_adapter_def telegram_adapter = {
    .platform = TELEGRAM_PLATFORM,
    .start = tg_def_start,
    .stop = tg_def_stop,
};
