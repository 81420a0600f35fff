/*
 * tg_def — Telegram as a gateway platform (gw_adapter.h): reads its settings, starts the
 * adapter actor under a supervisor (a dead actor restarts, issue 13), and stops it.
 */
#include "ak_supervise.h"
#include "gw_adapter.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "telegram.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

typedef struct tg_handle {
    rt_ref sup;             /* the supervisor (adapters/kit/ak_supervise.h) */
    _Atomic size_t pending; /* replies the actor has not delivered yet */
} tg_handle;

/* What a (re)start needs: the settings, owned by the supervisor (o.pending points into the
 * handle, which outlives every actor). tg_start reads the update offset from the state
 * file, so a restarted actor asks getUpdates from where the last one left off. */
typedef struct tg_sup_arg {
    tg_opts o;
    rt_ref gateway;
} tg_sup_arg;

static int tg_sup_start(rt_ctx *cx, void *arg, rt_ref *child, char *err, size_t errlen)
{
    tg_sup_arg *a = arg;
    return tg_start(cx, &a->o, a->gateway, child, err, errlen);
}

static void tg_sup_free(void *arg)
{
    tg_sup_arg *a = arg;
    tg_opts_fini(&a->o);
    rt_free(a);
}

static int tg_def_start(rt_ctx *cx, const gw_adapter_env *env, void **handle, char *err,
                        size_t errlen)
{
    tg_sup_arg *a = rt_xcalloc(1, sizeof(*a));
    int rc = tg_opts_from_config(env->cfg, env->home, &a->o, err, errlen);
    if (rc) {
        rt_free(a);
        return rc == -ENOENT ? 0 : rc; /* -ENOENT: not configured */
    }
    tg_handle *h = rt_xcalloc(1, sizeof(*h));
    atomic_init(&h->pending, 0);
    a->o.pending = &h->pending;
    a->gateway = env->gateway;
    char *api = rt_xstrdup(a->o.api_base);
    ak_sup_spec spec = {.platform = TELEGRAM_PLATFORM,
                        .start = tg_sup_start,
                        .arg = a,
                        .arg_free = tg_sup_free,
                        .gateway = env->gateway,
                        .detached = true};              /* tg_start: a non-worker thread */
    rc = ak_sup_start(cx, &spec, &h->sup, err, errlen); /* a is the supervisor's now */
    if (rc == 0)
        RT_INFO("gateway", "Telegram: starting (Bot API at %s)", api);
    rt_free(api);
    if (rc) {
        rt_free(h);
        return rc;
    }
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
    for (; left > 0 && rt_is_alive(cx, h->sup) &&
           atomic_load_explicit(&h->pending, memory_order_acquire) > 0;
         left -= 10)
        nanosleep(&ts, NULL);
    left = left < 1000 ? 1000 : left;
    if (ak_sup_stop(cx, h->sup, left, left)) /* else an actor may still write h->pending: */
        rt_free(h);                          /* leave it (rare, at exit) */
}

const gw_adapter_def telegram_adapter = {
    .platform = TELEGRAM_PLATFORM,
    .start = tg_def_start,
    .stop = tg_def_stop,
};
