/*
 * wa_def — WhatsApp as a gateway platform (gw_adapter.h): reads its settings, starts the
 * webhook receiver and the adapter actor under a supervisor (a dead actor restarts with a
 * fresh receiver, issue 13), and stops them.
 */
#include "ak_supervise.h"
#include "gw_adapter.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "whatsapp.h"

#include <errno.h>
#include <stdint.h>

/* What a (re)start needs, owned by the supervisor: the settings, and the webhook server of
 * the running actor (stopped with it, so that a restart can listen again). */
typedef struct wa_sup_arg {
    wa_opts o;
    rt_lws *lws;
    rt_ref gateway;
    wa_server *srv; /* the supervisor's thread only, after the first start */
} wa_sup_arg;

static int wa_sup_start(rt_ctx *cx, void *arg, rt_ref *child, char *err, size_t errlen)
{
    wa_sup_arg *a = arg;
    wa_server *s = NULL;
    int rc = wa_start(cx, a->lws, &a->o, a->gateway, &s, err, errlen);
    if (rc)
        return rc;
    RT_INFO("gateway", "WhatsApp: webhook listening on http://%s:%d%s", a->o.host, wa_port(s),
            a->o.path);
    a->srv = s;
    *child = wa_ref(s);
    return 0;
}

static void wa_sup_stop(rt_ctx *cx, void *arg, rt_ref child, int64_t grace_ms)
{
    wa_sup_arg *a = arg;
    wa_stop(cx, a->srv, grace_ms); /* the server, then the actor */
    a->srv = NULL;
}

static void wa_sup_cleanup(rt_ctx *cx, void *arg, rt_ref child)
{
    wa_sup_arg *a = arg;
    wa_stop(cx, a->srv, 0); /* NULL (stopped already): no-op */
    a->srv = NULL;
}

static void wa_sup_free(void *arg)
{
    wa_sup_arg *a = arg;
    wa_opts_fini(&a->o);
    rt_free(a);
}

static int wa_def_start(rt_ctx *cx, const gw_adapter_env *env, void **handle, char *err,
                        size_t errlen)
{
    wa_sup_arg *a = rt_xcalloc(1, sizeof(*a));
    int rc = wa_opts_from_config(env->cfg, &a->o, err, errlen);
    if (rc) {
        rt_free(a);
        return rc == -ENOENT ? 0 : rc; /* -ENOENT: not enabled */
    }
    a->lws = env->lws;
    a->gateway = env->gateway;
    /* detached: starting and stopping the webhook server wait for the lws service thread */
    ak_sup_spec spec = {.platform = WHATSAPP_PLATFORM,
                        .start = wa_sup_start,
                        .stop = wa_sup_stop,
                        .cleanup = wa_sup_cleanup,
                        .arg = a,
                        .arg_free = wa_sup_free,
                        .gateway = env->gateway,
                        .detached = true};
    rt_ref sup = 0;
    rc = ak_sup_start(cx, &spec, &sup, err, errlen); /* a is the supervisor's now */
    if (rc)
        return rc;
    *handle = (void *)(uintptr_t)sup;
    return 1;
}

static void wa_def_stop(rt_ctx *cx, void *handle, int64_t grace_ms)
{
    int64_t g = grace_ms > 0 && grace_ms < 5000 ? grace_ms : 1000;
    (void)ak_sup_stop(cx, (rt_ref)(uintptr_t)handle, grace_ms, g + 2000);
}

const gw_adapter_def whatsapp_adapter = {
    .platform = WHATSAPP_PLATFORM,
    .start = wa_def_start,
    .stop = wa_def_stop,
};
