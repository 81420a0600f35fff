/*
 * dc_def — the Discord adapter's settings (discord_opts_from_config) and its gateway platform
 * definition (gw_adapter.h).
 */
#include "discord.h"

#include "ak_opts.h"
#include "ak_supervise.h"
#include "gw_adapter.h"
#include "hm_config.h"
#include "rt_alloc.h"
#include "rt_log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int bad(discord_opts *o, char *err, size_t errlen, const char *msg)
{
    discord_opts_fini(o);
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return -EINVAL;
}

int discord_opts_from_config(const hm_config *cfg, const char *hermes_home, discord_opts *o,
                             char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    const char *tok = ak_getv(cfg, "DISCORD_BOT_TOKEN");
    if (!tok)
        return -ENOENT;
    o->token = rt_xstrdup(tok);
    if (strncmp(tok, "Bot ", 4) == 0 || strchr(tok, ' ') || strchr(tok, '\n'))
        return bad(o, err, errlen,
                   "Discord: DISCORD_BOT_TOKEN must be the bare token (without \"Bot \" or "
                   "spaces)");
    const char *base = ak_getv(cfg, "DISCORD_API_BASE");
    if (base && strncmp(base, "https://", 8) != 0 && strncmp(base, "http://", 7) != 0)
        return bad(o, err, errlen, "Discord: DISCORD_API_BASE must start with https:// or http://");
    o->api_base = rt_xstrdup(base ? base : DISCORD_API_DEFAULT);
    size_t bl = strlen(o->api_base);
    while (bl > 8 && o->api_base[bl - 1] == '/')
        o->api_base[--bl] = '\0';
    const char *home = hermes_home ? hermes_home : hm_config_home_dir(cfg);
    o->hermes_home = rt_xstrdup(home ? home : ".");
    const char *hc = ak_getv(cfg, "DISCORD_HOME_CHANNEL");
    if (!hc)
        hc = hm_config_str(cfg, "discord.home_channel");
    o->home_channel = hc && *hc ? rt_xstrdup(hc) : NULL;
    const char *rm = ak_getv(cfg, "DISCORD_REQUIRE_MENTION");
    o->require_mention = true;
    if (rm)
        o->require_mention = !ak_is_false(rm);
    else if (hm_config_is_set(cfg, "discord.require_mention"))
        o->require_mention = hm_config_bool(cfg, "discord.require_mention");
    o->free_channels =
        ak_list_setting(cfg, "DISCORD_FREE_RESPONSE_CHANNELS", "discord.free_response_channels");
    o->allowed_channels =
        ak_list_setting(cfg, "DISCORD_ALLOWED_CHANNELS", "discord.allowed_channels");
    o->ignored_channels =
        ak_list_setting(cfg, "DISCORD_IGNORED_CHANNELS", "discord.ignored_channels");
    /* the original: only true/1/yes keep it on */
    const char *at = ak_getv(cfg, "DISCORD_AUTO_THREAD");
    if (at)
        o->auto_thread = ak_is_true(at);
    else if (hm_config_is_set(cfg, "discord.auto_thread"))
        o->auto_thread = hm_config_bool(cfg, "discord.auto_thread");
    else
        o->auto_thread = true;
    o->no_thread_channels =
        ak_list_setting(cfg, "DISCORD_NO_THREAD_CHANNELS", "discord.no_thread_channels");
    const char *ca = ak_getv(cfg, "DISCORD_CA_FILE");
    o->ca_file = ca ? rt_xstrdup(ca) : NULL;
    return 0;
}

void discord_opts_fini(discord_opts *o)
{
    if (!o)
        return;
    rt_free(o->token);
    rt_free(o->api_base);
    rt_free(o->hermes_home);
    rt_free(o->home_channel);
    ak_strv_free(o->free_channels);
    ak_strv_free(o->allowed_channels);
    ak_strv_free(o->ignored_channels);
    ak_strv_free(o->no_thread_channels);
    rt_free(o->ca_file);
    memset(o, 0, sizeof(*o));
}

typedef struct dc_handle {
    rt_ref sup; /* the supervisor (adapters/kit/ak_supervise.h) restarting the actor */
} dc_handle;

/* What a (re)start needs: the settings, owned by the supervisor. */
typedef struct dc_sup_arg {
    discord_opts o;
    rt_ref gateway;
} dc_sup_arg;

static int dc_sup_start(rt_ctx *cx, void *arg, rt_ref *child, char *err, size_t errlen)
{
    dc_sup_arg *a = arg;
    return discord_start(cx, &a->o, a->gateway, child, err, errlen);
}

/* The last replies get up to grace_ms (at most 10 s) to go out; runs in the (detached)
 * supervisor, which may wait. */
static void dc_sup_stop(rt_ctx *cx, void *arg, rt_ref child, int64_t grace_ms)
{
    ak_stop_drained(cx, child, grace_ms, discord_drain);
}

static void dc_sup_free(void *arg)
{
    dc_sup_arg *a = arg;
    discord_opts_fini(&a->o);
    rt_free(a);
}

static int dc_def_start(rt_ctx *cx, const gw_adapter_env *env, void **handle, char *err,
                        size_t errlen)
{
    dc_sup_arg *a = rt_xcalloc(1, sizeof(*a));
    int rc = discord_opts_from_config(env->cfg, env->home, &a->o, err, errlen);
    if (rc) {
        rt_free(a);
        return rc == -ENOENT ? 0 : rc; /* -ENOENT: not configured */
    }
    a->gateway = env->gateway;
    ak_sup_spec spec = {.platform = DISCORD_PLATFORM,
                        .start = dc_sup_start,
                        .stop = dc_sup_stop,
                        .arg = a,
                        .arg_free = dc_sup_free,
                        .gateway = env->gateway,
                        .detached = true}; /* discord_start: a non-worker thread */
    rt_ref sup = 0;
    rc = ak_sup_start(cx, &spec, &sup, err, errlen); /* a is the supervisor's now */
    if (rc)
        return rc;
    dc_handle *h = rt_xcalloc(1, sizeof(*h));
    h->sup = sup;
    *handle = h;
    return 1;
}

static void dc_def_stop(rt_ctx *cx, void *handle, int64_t grace_ms)
{
    dc_handle *h = handle;
    if (!h)
        return;
    /* the supervisor drains the actor (at most 10 s); the main thread waits for it (this
     * runs after the signal loop, never on a worker) */
    int64_t drain = grace_ms <= 0 ? 1000 : grace_ms > 10000 ? 10000 : grace_ms;
    (void)ak_sup_stop(cx, h->sup, grace_ms, drain + 2000);
    rt_free(h);
}

const gw_adapter_def discord_adapter = {
    .platform = DISCORD_PLATFORM,
    .start = dc_def_start,
    .stop = dc_def_stop,
};
