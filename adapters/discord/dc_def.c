/*
 * dc_def — the Discord adapter's settings (discord_opts_from_config) and its gateway platform
 * definition (gw_adapter.h).
 */
#include "discord.h"

#include "ak_opts.h"
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
    rt_ref ref;
} dc_handle;

static int dc_def_start(rt_ctx *cx, const gw_adapter_env *env, void **handle, char *err,
                        size_t errlen)
{
    discord_opts o;
    int rc = discord_opts_from_config(env->cfg, env->home, &o, err, errlen);
    if (rc == -ENOENT)
        return 0;
    if (rc)
        return rc;
    rt_ref ref = 0;
    rc = discord_start(cx, &o, env->gateway, &ref, err, errlen);
    discord_opts_fini(&o);
    if (rc)
        return rc;
    dc_handle *h = rt_xcalloc(1, sizeof(*h));
    h->ref = ref;
    *handle = h;
    return 1;
}

static void dc_def_stop(rt_ctx *cx, void *handle, int64_t grace_ms)
{
    dc_handle *h = handle;
    if (!h)
        return;
    /* the last replies get up to grace_ms (at most 10 s) to go out; the main thread may
     * wait (this runs after the signal loop, never on a worker) */
    ak_stop_drained(cx, h->ref, grace_ms, discord_drain);
    rt_free(h);
}

const gw_adapter_def discord_adapter = {
    .platform = DISCORD_PLATFORM,
    .start = dc_def_start,
    .stop = dc_def_stop,
};
