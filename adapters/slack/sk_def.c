/*
 * sk_def — the Slack adapter's settings (slack_opts_from_config) and its gateway platform
 * definition (gw_adapter.h): start reads the settings and spawns the actor, stop ends it.
 */
#include "slack.h"

#include "ak_opts.h"
#include "ak_supervise.h"
#include "gw_adapter.h"
#include "hm_config.h"
#include "rt_alloc.h"
#include "rt_log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int bad(slack_opts *o, char *err, size_t errlen, const char *msg)
{
    slack_opts_fini(o);
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return -EINVAL;
}

int slack_opts_from_config(const hm_config *cfg, const char *hermes_home, slack_opts *o, char *err,
                           size_t errlen)
{
    memset(o, 0, sizeof(*o));
    const char *bot = ak_getv(cfg, "SLACK_BOT_TOKEN");
    if (!bot)
        return -ENOENT;
    const char *app = ak_getv(cfg, "SLACK_APP_TOKEN");
    o->bot_token = rt_xstrdup(bot);
    o->app_token = app ? rt_xstrdup(app) : NULL;
    if (!app)
        return bad(o, err, errlen,
                   "Slack: SLACK_APP_TOKEN not set (Socket Mode needs an App-Level Token, "
                   "xapp-…, from Basic Information → App-Level Tokens)");
    if (strncmp(bot, "xapp-", 5) == 0)
        return bad(o, err, errlen,
                   "Slack: SLACK_BOT_TOKEN holds an app token (xapp-…); it must be the Bot User "
                   "OAuth Token (xoxb-…)");
    if (strncmp(app, "xoxb-", 5) == 0 || strncmp(app, "xoxp-", 5) == 0)
        return bad(o, err, errlen,
                   "Slack: SLACK_APP_TOKEN holds a bot or user token; it must be the App-Level "
                   "Token (xapp-…)");
    const char *base = ak_getv(cfg, "SLACK_API_BASE");
    if (base && strncmp(base, "https://", 8) != 0 && strncmp(base, "http://", 7) != 0)
        return bad(o, err, errlen, "Slack: SLACK_API_BASE must start with https:// or http://");
    o->api_base = rt_xstrdup(base ? base : SLACK_API_DEFAULT);
    size_t bl = strlen(o->api_base);
    while (bl > 8 && o->api_base[bl - 1] == '/')
        o->api_base[--bl] = '\0';
    const char *home = hermes_home ? hermes_home : hm_config_home_dir(cfg);
    o->hermes_home = rt_xstrdup(home ? home : ".");
    const char *hc = ak_getv(cfg, "SLACK_HOME_CHANNEL");
    if (!hc)
        hc = hm_config_str(cfg, "slack.home_channel");
    o->home_channel = hc && *hc ? rt_xstrdup(hc) : NULL;
    const char *rm = ak_getv(cfg, "SLACK_REQUIRE_MENTION");
    o->require_mention = true;
    if (rm)
        o->require_mention = !ak_is_false(rm);
    else if (hm_config_is_set(cfg, "slack.require_mention"))
        o->require_mention = hm_config_bool(cfg, "slack.require_mention");
    o->free_channels =
        ak_list_setting(cfg, "SLACK_FREE_RESPONSE_CHANNELS", "slack.free_response_channels");
    const char *ab = ak_getv(cfg, "SLACK_ALLOW_BOTS");
    if (!ab && hm_config_is_set(cfg, "slack.allow_bots"))
        ab = hm_config_bool(cfg, "slack.allow_bots") ? "all" : "none";
    if (ab) {
        if (strcasecmp(ab, "mentions") == 0)
            o->allow_bots = SLACK_BOTS_MENTIONS;
        else if (strcasecmp(ab, "all") == 0 || strcasecmp(ab, "true") == 0 ||
                 strcasecmp(ab, "1") == 0 || strcasecmp(ab, "yes") == 0 ||
                 strcasecmp(ab, "on") == 0)
            o->allow_bots = SLACK_BOTS_ALL;
    }
    const char *ca = ak_getv(cfg, "SLACK_CA_FILE");
    o->ca_file = ca ? rt_xstrdup(ca) : NULL;
    return 0;
}

void slack_opts_fini(slack_opts *o)
{
    if (!o)
        return;
    rt_free(o->bot_token);
    rt_free(o->app_token);
    rt_free(o->api_base);
    rt_free(o->hermes_home);
    rt_free(o->home_channel);
    ak_strv_free(o->free_channels);
    rt_free(o->ca_file);
    memset(o, 0, sizeof(*o));
}

/* ================================================================ the platform */

typedef struct sk_handle {
    rt_ref sup; /* the supervisor (adapters/kit/ak_supervise.h) restarting the actor */
} sk_handle;

/* What a (re)start needs: the settings, owned by the supervisor. */
typedef struct sk_sup_arg {
    slack_opts o;
    rt_ref gateway;
} sk_sup_arg;

static int sk_sup_start(rt_ctx *cx, void *arg, rt_ref *child, char *err, size_t errlen)
{
    sk_sup_arg *a = arg;
    return slack_start(cx, &a->o, a->gateway, child, err, errlen);
}

/* The last replies get up to grace_ms (at most 10 s) to go out; runs in the (detached)
 * supervisor, which may wait. */
static void sk_sup_stop(rt_ctx *cx, void *arg, rt_ref child, int64_t grace_ms)
{
    ak_stop_drained(cx, child, grace_ms, slack_drain);
}

static void sk_sup_free(void *arg)
{
    sk_sup_arg *a = arg;
    slack_opts_fini(&a->o);
    rt_free(a);
}

static int sk_def_start(rt_ctx *cx, const gw_adapter_env *env, void **handle, char *err,
                        size_t errlen)
{
    sk_sup_arg *a = rt_xcalloc(1, sizeof(*a));
    int rc = slack_opts_from_config(env->cfg, env->home, &a->o, err, errlen);
    if (rc) {
        rt_free(a);
        return rc == -ENOENT ? 0 : rc; /* -ENOENT: not configured */
    }
    a->gateway = env->gateway;
    ak_sup_spec spec = {.platform = SLACK_PLATFORM,
                        .start = sk_sup_start,
                        .stop = sk_sup_stop,
                        .arg = a,
                        .arg_free = sk_sup_free,
                        .gateway = env->gateway,
                        .detached = true}; /* slack_start: a non-worker thread */
    rt_ref sup = 0;
    rc = ak_sup_start(cx, &spec, &sup, err, errlen); /* a is the supervisor's now */
    if (rc)
        return rc;
    sk_handle *h = rt_xcalloc(1, sizeof(*h));
    h->sup = sup;
    *handle = h;
    return 1;
}

static void sk_def_stop(rt_ctx *cx, void *handle, int64_t grace_ms)
{
    sk_handle *h = handle;
    if (!h)
        return;
    /* the supervisor drains the actor (at most 10 s); the main thread waits for it (this
     * runs after the signal loop, never on a worker) */
    int64_t drain = grace_ms <= 0 ? 1000 : grace_ms > 10000 ? 10000 : grace_ms;
    (void)ak_sup_stop(cx, h->sup, grace_ms, drain + 2000);
    rt_free(h);
}

const gw_adapter_def slack_adapter = {
    .platform = SLACK_PLATFORM,
    .start = sk_def_start,
    .stop = sk_def_stop,
};
