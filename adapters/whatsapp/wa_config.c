/*
 * wa_config — wa_opts_from_config: the WhatsApp settings from the environment and .env
 * (whatsapp.h lists them).
 */
#include "whatsapp.h"

#include "hm_config.h"
#include "rt_alloc.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* The variable, trimmed, or NULL when unset or blank (new string). */
static char *envv(const hm_config *cfg, const char *name)
{
    const char *v = hm_config_getenv(cfg, name, NULL);
    if (!v)
        return NULL;
    while (isspace((unsigned char)*v))
        v++;
    size_t n = strlen(v);
    while (n && isspace((unsigned char)v[n - 1]))
        n--;
    return n ? rt_xstrndup(v, n) : NULL;
}

static bool truthy(const char *v)
{
    return v && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0 ||
                 strcasecmp(v, "on") == 0);
}

int wa_opts_from_config(const hm_config *cfg, wa_opts *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    char *en = envv(cfg, "WHATSAPP_ENABLED");
    bool on = truthy(en);
    rt_free(en);
    if (!on)
        return -ENOENT;
    char *mode = envv(cfg, "WHATSAPP_MODE");
    bool bridge = mode && strcasecmp(mode, "bridge") == 0;
    bool bad_mode = mode && !bridge && strcasecmp(mode, "cloud") != 0 &&
                    strcasecmp(mode, "cloud_api") != 0 && strcasecmp(mode, "business") != 0;
    if (bad_mode) {
        int rc = fail(err, errlen, -EINVAL,
                      "WhatsApp: WHATSAPP_MODE must be \"cloud\" (the Business Cloud API), not "
                      "\"%s\"",
                      mode);
        rt_free(mode);
        return rc;
    }
    rt_free(mode);
    o->access_token = envv(cfg, "WHATSAPP_ACCESS_TOKEN");
    o->phone_number_id = envv(cfg, "WHATSAPP_PHONE_NUMBER_ID");
    if (bridge || (!o->access_token && !o->phone_number_id)) {
        wa_opts_fini(o);
        return fail(err, errlen, -ENOTSUP, "%s", WA_BRIDGE_MSG);
    }
    o->app_secret = envv(cfg, "WHATSAPP_APP_SECRET");
    o->verify_token = envv(cfg, "WHATSAPP_VERIFY_TOKEN");
    const char *missing = !o->access_token      ? "WHATSAPP_ACCESS_TOKEN"
                          : !o->phone_number_id ? "WHATSAPP_PHONE_NUMBER_ID"
                          : !o->app_secret      ? "WHATSAPP_APP_SECRET"
                          : !o->verify_token    ? "WHATSAPP_VERIFY_TOKEN"
                                                : NULL;
    if (missing) {
        wa_opts_fini(o);
        return fail(err, errlen, -EINVAL,
                    "WhatsApp: %s is not set; the Business Cloud API needs WHATSAPP_ACCESS_TOKEN, "
                    "WHATSAPP_PHONE_NUMBER_ID, WHATSAPP_APP_SECRET and WHATSAPP_VERIFY_TOKEN",
                    missing);
    }
    if (hm_is_placeholder_secret(o->access_token)) {
        wa_opts_fini(o);
        return fail(err, errlen, -EINVAL,
                    "WHATSAPP_ACCESS_TOKEN is set to a placeholder value; WhatsApp is disabled");
    }
    for (const char *p = o->phone_number_id; *p; p++)
        if (!isdigit((unsigned char)*p)) {
            wa_opts_fini(o);
            return fail(err, errlen, -EINVAL,
                        "WhatsApp: WHATSAPP_PHONE_NUMBER_ID must be the numeric ID from the "
                        "app's WhatsApp > API Setup page (not the phone number itself)");
        }
    o->graph_base = envv(cfg, "WHATSAPP_GRAPH_API_BASE");
    if (!o->graph_base)
        o->graph_base = rt_xstrdup(WA_DEFAULT_GRAPH);
    size_t gl = strlen(o->graph_base);
    while (gl && o->graph_base[gl - 1] == '/')
        o->graph_base[--gl] = '\0';
    if (strncasecmp(o->graph_base, "https://", 8) != 0 &&
        strncasecmp(o->graph_base, "http://", 7) != 0) {
        wa_opts_fini(o);
        return fail(err, errlen, -EINVAL,
                    "WhatsApp: WHATSAPP_GRAPH_API_BASE must start with https:// or http://");
    }
    o->host = envv(cfg, "WHATSAPP_WEBHOOK_HOST");
    if (!o->host)
        o->host = rt_xstrdup("127.0.0.1");
    o->path = envv(cfg, "WHATSAPP_WEBHOOK_PATH");
    if (!o->path)
        o->path = rt_xstrdup("/whatsapp/webhook");
    if (o->path[0] != '/') {
        wa_opts_fini(o);
        return fail(err, errlen, -EINVAL, "WhatsApp: WHATSAPP_WEBHOOK_PATH must start with /");
    }
    o->port = WA_DEFAULT_PORT;
    char *port = envv(cfg, "WHATSAPP_WEBHOOK_PORT");
    if (port) {
        int64_t p = 0;
        int rc = rt_parse_i64(port, 0, 65535, &p);
        rt_free(port);
        if (rc) {
            wa_opts_fini(o);
            return fail(err, errlen, -EINVAL,
                        "WhatsApp: WHATSAPP_WEBHOOK_PORT must be a port number (0-65535)");
        }
        o->port = (int)p;
    }
    o->home_channel = envv(cfg, "WHATSAPP_HOME_CHANNEL");
    const char *home = cfg ? hm_config_home_dir(cfg) : NULL;
    o->cache_dir = rt_xasprintf("%s/cache/whatsapp", home ? home : ".");
    return 0;
}

void wa_opts_fini(wa_opts *o)
{
    rt_free(o->access_token);
    rt_free(o->phone_number_id);
    rt_free(o->app_secret);
    rt_free(o->verify_token);
    rt_free(o->graph_base);
    rt_free(o->host);
    rt_free(o->path);
    rt_free(o->home_channel);
    rt_free(o->cache_dir);
    memset(o, 0, sizeof(*o));
}
