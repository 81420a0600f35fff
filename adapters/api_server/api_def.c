/*
 * api_def — the API server as a gateway platform (gw_adapter.h): reads its settings, starts
 * it on the host's lws service under a supervisor (a dead actor restarts with a fresh server,
 * issue 13), logs where it listens, and stops it.
 */
#include "api_server.h"
#include "ak_supervise.h"
#include "gw_adapter.h"
#include "rt_alloc.h"
#include "rt_log.h"

#include <stdint.h>

/* What a (re)start needs, owned by the supervisor: the settings, and the server of the
 * running actor (stopped with it, so that a restart can listen again). */
typedef struct api_sup_arg {
    api_server_opts o;
    api_server *srv; /* the supervisor's thread only, after the first start */
} api_sup_arg;

static int api_sup_start(rt_ctx *cx, void *arg, rt_ref *child, char *err, size_t errlen)
{
    api_sup_arg *a = arg;
    api_server *srv = NULL;
    int rc = api_server_start(cx, &a->o, &srv, err, errlen);
    if (rc)
        return rc;
    RT_INFO("gateway", "API server listening on %s:%d", a->o.host ? a->o.host : "127.0.0.1",
            api_server_port(srv));
    a->srv = srv;
    *child = api_server_ref(srv);
    return 0;
}

static void api_sup_stop(rt_ctx *cx, void *arg, rt_ref child, int64_t grace_ms)
{
    api_sup_arg *a = arg;
    api_server_stop(cx, a->srv, grace_ms); /* requests in flight, then the actor */
    a->srv = NULL;
}

static void api_sup_cleanup(rt_ctx *cx, void *arg, rt_ref child)
{
    api_sup_arg *a = arg;
    api_server_stop(cx, a->srv, 0); /* NULL (stopped already): no-op */
    a->srv = NULL;
}

static void api_sup_free(void *arg)
{
    api_sup_arg *a = arg;
    api_server_opts_fini(&a->o);
    rt_free(a);
}

static int api_def_start(rt_ctx *cx, const gw_adapter_env *env, void **handle, char *err,
                         size_t errlen)
{
    api_sup_arg *a = rt_xcalloc(1, sizeof(*a));
    int on = api_server_opts_from_config(env->cfg, &a->o, err, errlen);
    if (on <= 0) {
        rt_free(a);
        return on;
    }
    a->o.lws = env->lws;
    a->o.reactor = env->reactor;
    /* detached: starting and stopping the server wait for the lws service thread */
    ak_sup_spec spec = {.platform = API_SERVER_PLATFORM,
                        .start = api_sup_start,
                        .stop = api_sup_stop,
                        .cleanup = api_sup_cleanup,
                        .arg = a,
                        .arg_free = api_sup_free,
                        .gateway = env->gateway,
                        .detached = true};
    rt_ref sup = 0;
    int rc = ak_sup_start(cx, &spec, &sup, err, errlen); /* a is the supervisor's now */
    if (rc)
        return rc;
    *handle = (void *)(uintptr_t)sup;
    return 1;
}

static void api_def_stop(rt_ctx *cx, void *handle, int64_t grace_ms)
{
    int64_t g = grace_ms > 0 ? grace_ms : 0;
    (void)ak_sup_stop(cx, (rt_ref)(uintptr_t)handle, grace_ms, g + 3000);
}

const gw_adapter_def api_server_adapter = {
    .platform = API_SERVER_PLATFORM,
    .start = api_def_start,
    .stop = api_def_stop,
};
