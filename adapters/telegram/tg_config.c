/*
 * tg_config — tg_opts_from_config: the Telegram settings from the environment, .env and
 * config.yaml (telegram.h lists them).
 */
#include "telegram.h"

#include "hm_config.h"
#include "rt_alloc.h"
#include "rt_log.h"

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

static const char *envv(const hm_config *cfg, const char *name)
{
    const char *v = hm_config_getenv(cfg, name, NULL);
    if (!v)
        return NULL;
    for (const char *p = v; *p; p++)
        if (!isspace((unsigned char)*p))
            return v;
    return NULL;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

static char *trim(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return rt_xstrndup(s, n);
}

/* A comma list (string) or a YAML list into a NULL-terminated array, or NULL when empty. */
static char **list_of(const char *s, const cJSON *node)
{
    size_t cap = 1;
    if (s)
        for (const char *p = s; *p; p++)
            cap += *p == ',';
    else if (cJSON_IsArray(node))
        cap += (size_t)cJSON_GetArraySize(node);
    else if (cJSON_IsString(node))
        return list_of(node->valuestring, NULL);
    else
        return NULL;
    char **v = rt_xcalloc(cap + 1, sizeof(char *));
    size_t n = 0;
    if (s) {
        const char *p = s;
        while (*p && n < cap) {
            const char *c = strchr(p, ',');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            char *item = rt_xstrndup(p, len);
            char *t = trim(item);
            rt_free(item);
            if (*t)
                v[n++] = t;
            else
                rt_free(t);
            p = c ? c + 1 : p + len;
        }
    } else {
        const cJSON *it;
        cJSON_ArrayForEach(it, node)
        {
            if (n >= cap)
                break;
            if (cJSON_IsString(it) && *it->valuestring)
                v[n++] = trim(it->valuestring);
            else if (cJSON_IsNumber(it))
                v[n++] = rt_xasprintf("%.0f", it->valuedouble);
        }
    }
    if (!n) {
        rt_free(v);
        return NULL;
    }
    return v;
}

static bool bool_of(const hm_config *cfg, const char *env, const char *path, bool def)
{
    const char *v = envv(cfg, env);
    if (v) {
        char *t = trim(v);
        bool off = strcasecmp(t, "false") == 0 || strcmp(t, "0") == 0 || strcasecmp(t, "no") == 0 ||
                   strcasecmp(t, "off") == 0;
        bool on = strcasecmp(t, "true") == 0 || strcmp(t, "1") == 0 || strcasecmp(t, "yes") == 0 ||
                  strcasecmp(t, "on") == 0;
        rt_free(t);
        return off ? false : on ? true : def;
    }
    const cJSON *n = hm_config_node(cfg, path);
    return cJSON_IsBool(n) ? cJSON_IsTrue(n) : def;
}

int tg_opts_from_config(const hm_config *cfg, const char *hermes_home, tg_opts *o, char *err,
                        size_t errlen)
{
    memset(o, 0, sizeof(*o));
    const cJSON *plat = hm_config_node(cfg, "platforms.telegram");
    const char *tok = envv(cfg, "TELEGRAM_BOT_TOKEN");
    if (!tok)
        tok = jstr(plat, "token");
    if (!tok)
        return -ENOENT;
    if (hm_is_placeholder_secret(tok))
        return fail(err, errlen, -EINVAL,
                    "TELEGRAM_BOT_TOKEN is set to a placeholder value; Telegram is disabled. "
                    "Put the token from @BotFather in ~/.hermes/.env");
    char *t = trim(tok);
    for (const char *p = t; *p; p++)
        if (isspace((unsigned char)*p) || *p == '/' || *p == '?' || *p == '#') {
            rt_free(t);
            return fail(err, errlen, -EINVAL,
                        "TELEGRAM_BOT_TOKEN is not a bot token (it contains spaces or URL "
                        "characters); it looks like 123456:ABC-DEF...");
        }
    o->token = t;
    const char *base = envv(cfg, "TELEGRAM_API_BASE");
    if (base) {
        char *b = trim(base);
        size_t bl = strlen(b);
        while (bl && b[bl - 1] == '/')
            b[--bl] = '\0';
        if (strncasecmp(b, "https://", 8) != 0 && strncasecmp(b, "http://", 7) != 0) {
            int rc =
                fail(err, errlen, -EINVAL,
                     "TELEGRAM_API_BASE must start with https:// or http:// (it is \"%s\")", b);
            rt_free(b);
            tg_opts_fini(o);
            return rc;
        }
        o->api_base = b;
    } else {
        o->api_base = rt_xstrdup(TG_DEFAULT_API);
    }
    const char *home = hermes_home ? hermes_home : hm_config_home_dir(cfg);
    o->hermes_home = home ? rt_xstrdup(home) : NULL;
    const char *hc = envv(cfg, "TELEGRAM_HOME_CHANNEL");
    if (!hc) {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(plat, "home_channel");
        hc = cJSON_IsString(h) && *h->valuestring ? h->valuestring : jstr(h, "chat_id");
    }
    o->home_channel = hc ? trim(hc) : NULL;
    o->require_mention = bool_of(cfg, "TELEGRAM_REQUIRE_MENTION", "telegram.require_mention", true);
    const char *fc = envv(cfg, "TELEGRAM_FREE_RESPONSE_CHATS");
    o->free_chats = list_of(fc, fc ? NULL : hm_config_node(cfg, "telegram.free_response_chats"));
    if (!o->free_chats)
        o->free_chats = list_of(NULL, hm_config_node(cfg, "telegram.free_response_channels"));
    const char *it = envv(cfg, "TELEGRAM_IGNORED_THREADS");
    o->ignored_threads = list_of(it, it ? NULL : hm_config_node(cfg, "telegram.ignored_threads"));
    const cJSON *dlp = hm_config_node(cfg, "telegram.disable_link_previews");
    o->link_previews = !cJSON_IsTrue(dlp);
    return 0;
}

void tg_opts_fini(tg_opts *o)
{
    rt_free(o->token);
    rt_free(o->api_base);
    rt_free(o->hermes_home);
    rt_free(o->home_channel);
    tg_strv_free(o->free_chats);
    tg_strv_free(o->ignored_threads);
    memset(o, 0, sizeof(*o));
}
