/*
 * wa_def — WhatsApp as a gateway platform (gw_adapter.h): reads its settings, starts the
 * webhook receiver and the adapter actor, and stops them.
 */
#include "gw_adapter.h"
#include "rt_log.h"
#include "whatsapp.h"

#include <errno.h>

static int wa_def_start(rt_ctx *cx, const gw_adapter_env *env, void **handle, char *err,
                        size_t errlen)
{
    wa_opts o;
    int rc = wa_opts_from_config(env->cfg, &o, err, errlen);
    if (rc == -ENOENT)
        return 0; /* not enabled */
    if (rc)
        return rc;
    wa_server *s = NULL;
    rc = wa_start(cx, env->lws, &o, env->gateway, &s, err, errlen);
    if (rc == 0)
        RT_INFO("gateway", "WhatsApp: webhook listening on http://%s:%d%s", o.host, wa_port(s),
                o.path);
    wa_opts_fini(&o);
    if (rc)
        return rc;
    *handle = s;
    return 1;
}

static void wa_def_stop(rt_ctx *cx, void *handle, int64_t grace_ms)
{
    wa_stop(cx, handle, grace_ms);
}

const gw_adapter_def whatsapp_adapter = {
    .platform = WHATSAPP_PLATFORM,
    .start = wa_def_start,
    .stop = wa_def_stop,
};
