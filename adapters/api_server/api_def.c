/*
 * api_def — the API server as a gateway platform (gw_adapter.h): reads its settings, starts
 * it on the host's lws service, logs where it listens, and stops it.
 */
#include "api_server.h"
#include "gw_adapter.h"
#include "rt_log.h"

static int api_def_start(rt_ctx *cx, const gw_adapter_env *env, void **handle, char *err,
                         size_t errlen)
{
    api_server_opts o;
    int on = api_server_opts_from_config(env->cfg, &o, err, errlen);
    if (on <= 0)
        return on;
    o.lws = env->lws;
    o.reactor = env->reactor;
    api_server *srv = NULL;
    int rc = api_server_start(cx, &o, &srv, err, errlen);
    if (rc == 0)
        RT_INFO("gateway", "API server listening on %s:%d", o.host ? o.host : "127.0.0.1",
                api_server_port(srv));
    api_server_opts_fini(&o);
    if (rc)
        return rc;
    *handle = srv;
    return 1;
}

static void api_def_stop(rt_ctx *cx, void *handle, int64_t grace_ms)
{
    api_server_stop(cx, handle, grace_ms);
}

const gw_adapter_def api_server_adapter = {
    .platform = API_SERVER_PLATFORM,
    .start = api_def_start,
    .stop = api_def_stop,
};
