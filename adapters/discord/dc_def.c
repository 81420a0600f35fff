/*
 * dc_def — the Discord adapter's settings (discord_opts_from_config) and its gateway platform
 * definition (gw_adapter.h).
 */
#include "discord.h"

#include "gw_adapter.h"
#include "hm_config.h"
#include "rt_alloc.h"
#include "rt_log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *getv(const hm_config *cfg, const char *name)
{
    const char *v = hm_config_getenv(cfg, name, NULL);
    return v && *v ? v : NULL;
}

static char *trimdup(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    return rt_xstrndup(s, n);
}

static char **split_list(const char *s)
{
    if (!s || !*s)
        return NULL;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char **v = rt_xcalloc(cap + 1, sizeof(*v));
    size_t n = 0;
    const char *p = s;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        char *item = trimdup(p, len);
        if (*item)
            v[n++] = item;
        else
            rt_free(item);
        p = c ? c + 1 : p + len;
    }
    if (!n) {
        rt_free(v);
        return NULL;
    }
    return v;
}

/* A list from the environment variable, else from config.yaml (a list or a string). */
static char **list_setting(const hm_config *cfg, const char *env, const char *key)
{
    const char *v = getv(cfg, env);
    if (v)
        return split_list(v);
    const char *items[64];
    size_t n = hm_config_list(cfg, key, items, 64);
    if (n == 1 && items[0])
        return split_list(items[0]);
    if (n == 0)
        return NULL;
    n = n > 64 ? 64 : n;
    char **out = rt_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        out[i] = rt_xstrdup(items[i] ? items[i] : "");
    return out;
}

static bool is_false(const char *v)
{
    return strcasecmp(v, "false") == 0 || strcasecmp(v, "0") == 0 || strcasecmp(v, "no") == 0 ||
           strcasecmp(v, "off") == 0;
}

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
    const char *tok = getv(cfg, "DISCORD_BOT_TOKEN");
    if (!tok)
        return -ENOENT;
    o->token = rt_xstrdup(tok);
    if (strncmp(tok, "Bot ", 4) == 0 || strchr(tok, ' ') || strchr(tok, '\n'))
        return bad(o, err, errlen,
                   "Discord: DISCORD_BOT_TOKEN must be the bare token (without \"Bot \" or "
                   "spaces)");
    const char *base = getv(cfg, "DISCORD_API_BASE");
    if (base && strncmp(base, "https://", 8) != 0 && strncmp(base, "http://", 7) != 0)
        return bad(o, err, errlen, "Discord: DISCORD_API_BASE must start with https:// or http://");
    o->api_base = rt_xstrdup(base ? base : DISCORD_API_DEFAULT);
    size_t bl = strlen(o->api_base);
    while (bl > 8 && o->api_base[bl - 1] == '/')
        o->api_base[--bl] = '\0';
    const char *home = hermes_home ? hermes_home : hm_config_home_dir(cfg);
    o->hermes_home = rt_xstrdup(home ? home : ".");
    const char *hc = getv(cfg, "DISCORD_HOME_CHANNEL");
    if (!hc)
        hc = hm_config_str(cfg, "discord.home_channel");
    o->home_channel = hc && *hc ? rt_xstrdup(hc) : NULL;
    const char *rm = getv(cfg, "DISCORD_REQUIRE_MENTION");
    o->require_mention = true;
    if (rm)
        o->require_mention = !is_false(rm);
    else if (hm_config_is_set(cfg, "discord.require_mention"))
        o->require_mention = hm_config_bool(cfg, "discord.require_mention");
    o->free_channels =
        list_setting(cfg, "DISCORD_FREE_RESPONSE_CHANNELS", "discord.free_response_channels");
    o->allowed_channels = list_setting(cfg, "DISCORD_ALLOWED_CHANNELS", "discord.allowed_channels");
    o->ignored_channels = list_setting(cfg, "DISCORD_IGNORED_CHANNELS", "discord.ignored_channels");
    const char *ca = getv(cfg, "DISCORD_CA_FILE");
    o->ca_file = ca ? rt_xstrdup(ca) : NULL;
    return 0;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        rt_free(v[i]);
    rt_free(v);
}

void discord_opts_fini(discord_opts *o)
{
    if (!o)
        return;
    rt_free(o->token);
    rt_free(o->api_base);
    rt_free(o->hermes_home);
    rt_free(o->home_channel);
    strv_free(o->free_channels);
    strv_free(o->allowed_channels);
    strv_free(o->ignored_channels);
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
    discord_drain(cx, h->ref);
    int64_t left = grace_ms <= 0 ? 1000 : grace_ms > 10000 ? 10000 : grace_ms;
    const struct timespec step = {0, 10 * 1000000L};
    for (; left > 0 && rt_is_alive(cx, h->ref); left -= 10)
        nanosleep(&step, NULL);
    (void)rt_stop(cx, h->ref, RT_EXIT_STOPPED); /* false when it ended already */
    rt_free(h);
}

const gw_adapter_def discord_adapter = {
    .platform = DISCORD_PLATFORM,
    .start = dc_def_start,
    .stop = dc_def_stop,
};
