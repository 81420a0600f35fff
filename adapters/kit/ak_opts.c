/*
 * ak_opts — see ak_opts.h.
 */
#include "ak_opts.h"

#include "hm_config.h"
#include "rt_alloc.h"

#include <string.h>
#include <strings.h>
#include <time.h>

#define AK_YAML_ITEMS 64

const char *ak_getv(const hm_config *cfg, const char *name)
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

char **ak_split_list(const char *s)
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

char **ak_list_setting(const hm_config *cfg, const char *env, const char *key)
{
    const char *v = ak_getv(cfg, env);
    if (v)
        return ak_split_list(v);
    const char *items[AK_YAML_ITEMS];
    size_t n = hm_config_list(cfg, key, items, AK_YAML_ITEMS);
    if (n == 1 && items[0])
        return ak_split_list(items[0]);
    if (n == 0)
        return NULL;
    n = n > AK_YAML_ITEMS ? AK_YAML_ITEMS : n;
    char **out = rt_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        out[i] = rt_xstrdup(items[i] ? items[i] : "");
    return out;
}

bool ak_is_false(const char *v)
{
    return v && (strcasecmp(v, "false") == 0 || strcasecmp(v, "0") == 0 ||
                 strcasecmp(v, "no") == 0 || strcasecmp(v, "off") == 0);
}

bool ak_is_true(const char *v)
{
    return v &&
           (strcasecmp(v, "true") == 0 || strcasecmp(v, "1") == 0 || strcasecmp(v, "yes") == 0);
}

char **ak_strv_dup(char *const *v)
{
    if (!v)
        return NULL;
    size_t n = 0;
    while (v[n])
        n++;
    char **out = rt_xcalloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = rt_xstrdup(v[i]);
    return out;
}

void ak_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        rt_free(v[i]);
    rt_free(v);
}

bool ak_strv_has(char *const *v, const char *s)
{
    for (size_t i = 0; v && s && v[i]; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

void ak_stop_drained(rt_ctx *cx, rt_ref ref, int64_t grace_ms, void (*drain)(rt_ctx *, rt_ref))
{
    if (!ref)
        return;
    if (drain)
        drain(cx, ref);
    int64_t left = grace_ms <= 0 ? 1000 : grace_ms > 10000 ? 10000 : grace_ms;
    const struct timespec step = {0, 10 * 1000000L};
    for (; left > 0 && rt_is_alive(cx, ref); left -= 10)
        nanosleep(&step, NULL);
    (void)rt_stop(cx, ref, RT_EXIT_STOPPED); /* false when it ended already */
}
