/*
 * mx_opts — the Matrix settings, read the way the original reads them (gateway.md §1.3,
 * §8.1): environment variables first (the process, then ~/.hermes/.env), then config.yaml
 * (platforms.matrix.* and the matrix: section), then the defaults. A setup written only in
 * config.yaml is accepted too (the original refused it: §1.3 "C:").
 *
 * Flag spellings follow the original exactly, because the defaults differ:
 *   MATRIX_REQUIRE_MENTION, MATRIX_REACTIONS   on unless "false", "0" or "no"
 *   MATRIX_AUTO_THREAD                         on only for "true", "1" or "yes"
 *   MATRIX_DM_MENTION_THREADS, MATRIX_ENCRYPTION  on for "true", "1" or "yes"
 */
#include "matrix.h"

#include "hm_config.h"
#include "rt_alloc.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>

enum { ON_UNLESS_FALSE, ON_IF_TRUE };

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && len)
        vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static char *trimmed(const char *s)
{
    if (!s)
        return NULL;
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return n ? rt_xstrndup(s, n) : NULL;
}

/* platforms.matrix.extra.<key> as text (strings; numbers and booleans spelled out). */
static const char *extra_str(const hm_config *cfg, const char *key, char *buf, size_t len)
{
    const cJSON *ex = hm_config_node(cfg, "platforms.matrix.extra");
    const cJSON *v = cJSON_IsObject(ex) ? cJSON_GetObjectItemCaseSensitive(ex, key) : NULL;
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) ? "true" : "false";
    if (cJSON_IsNumber(v)) {
        snprintf(buf, len, "%g", v->valuedouble);
        return buf;
    }
    return NULL;
}

/* The variable, else the extra key: a new trimmed string or NULL. */
static char *setting(const hm_config *cfg, const char *var, const char *extra_key)
{
    char buf[64];
    const char *v = hm_config_getenv(cfg, var, NULL);
    if (!v || !*v)
        v = extra_key ? extra_str(cfg, extra_key, buf, sizeof(buf)) : NULL;
    return trimmed(v);
}

static bool word_in(const char *v, const char *const *words)
{
    char *t = trimmed(v);
    bool yes = false;
    for (size_t i = 0; t && words[i]; i++)
        yes = yes || strcasecmp(t, words[i]) == 0;
    rt_free(t);
    return yes;
}

static bool flag(const hm_config *cfg, const char *var, const char *path, const char *extra_key,
                 bool def, int mode)
{
    static const char *const falses[] = {"false", "0", "no", NULL};
    static const char *const trues[] = {"true", "1", "yes", NULL};
    char buf[64];
    const char *v = hm_config_getenv(cfg, var, NULL);
    if (!v && extra_key)
        v = extra_str(cfg, extra_key, buf, sizeof(buf));
    if (v)
        return mode == ON_UNLESS_FALSE ? !word_in(v, falses) : word_in(v, trues);
    if (path && hm_config_is_set(cfg, path))
        return hm_config_bool(cfg, path);
    return def;
}

static void add_room(matrix_opts *o, const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (!n)
        return;
    o->free_rooms = rt_xrealloc(o->free_rooms, (o->nfree_rooms + 1) * sizeof(*o->free_rooms));
    o->free_rooms[o->nfree_rooms++] = rt_xstrndup(s, n);
}

static void add_rooms_csv(matrix_opts *o, const char *csv)
{
    for (const char *p = csv; p && *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        add_room(o, p, n);
        p = c ? c + 1 : NULL;
    }
}

static void free_rooms(const hm_config *cfg, matrix_opts *o)
{
    const char *v = hm_config_getenv(cfg, "MATRIX_FREE_RESPONSE_ROOMS", NULL);
    if (v) {
        add_rooms_csv(o, v);
        return;
    }
    static const char *const paths[] = {"matrix.free_response_rooms",
                                        "matrix.free_response_channels"};
    for (size_t k = 0; k < RT_ARRAY_LEN(paths); k++) {
        if (!hm_config_is_set(cfg, paths[k]))
            continue;
        const char *list[256];
        size_t n = hm_config_list(cfg, paths[k], list, RT_ARRAY_LEN(list));
        for (size_t i = 0; i < n && i < RT_ARRAY_LEN(list); i++)
            add_rooms_csv(o, list[i]);
        return;
    }
}

static char *home_room(const hm_config *cfg)
{
    char *v = setting(cfg, "MATRIX_HOME_ROOM", NULL);
    if (!v)
        v = setting(cfg, "MATRIX_HOME_CHANNEL", NULL); /* legacy, written by /sethome */
    if (v)
        return v;
    const cJSON *hc = hm_config_node(cfg, "platforms.matrix.home_channel");
    if (cJSON_IsString(hc))
        return trimmed(hc->valuestring);
    const cJSON *id = cJSON_IsObject(hc) ? cJSON_GetObjectItemCaseSensitive(hc, "chat_id") : NULL;
    return cJSON_IsString(id) ? trimmed(id->valuestring) : NULL;
}

/* A delay in seconds (the original's float()) → ms; -1 when it does not parse. */
static int64_t seconds_ms(const hm_config *cfg, const char *var, int64_t def)
{
    const char *v = hm_config_getenv(cfg, var, NULL);
    if (!v || !*v)
        return def;
    char *end = NULL;
    double d = strtod(v, &end);
    while (end && isspace((unsigned char)*end))
        end++;
    if (!end || end == v || *end || !isfinite(d) || d < 0 || d > 600)
        return -1;
    return (int64_t)llround(d * 1000.0);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void paths(const hm_config *cfg, const char *home, matrix_opts *o)
{
    o->hermes_home = rt_xstrdup(home);
    char *legacy = rt_xasprintf("%s/matrix/store", home);
    if (is_dir(legacy)) {
        o->store_dir = legacy;
    } else {
        rt_free(legacy);
        o->store_dir = rt_xasprintf("%s/platforms/matrix/store", home);
    }
    o->threads_file = rt_xasprintf("%s/matrix_threads.json", home);
    o->cache_dir = rt_xasprintf("%s/cache", home);
    const char *dir = hm_config_getenv(cfg, "HERMES_GATEWAY_LOCK_DIR", NULL);
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *h = getenv("HOME");
    if (dir && *dir)
        o->lock_dir = rt_xstrdup(dir);
    else if (xdg && *xdg)
        o->lock_dir = rt_xasprintf("%s/hermes/gateway-locks", xdg);
    else if (h && *h)
        o->lock_dir = rt_xasprintf("%s/.local/state/hermes/gateway-locks", h);
}

static int credentials(const hm_config *cfg, matrix_opts *o, char *err, size_t errlen)
{
    o->access_token = setting(cfg, "MATRIX_ACCESS_TOKEN", NULL);
    if (!o->access_token) {
        const char *t = hm_config_str(cfg, "platforms.matrix.token");
        o->access_token = trimmed(t);
    }
    o->password = setting(cfg, "MATRIX_PASSWORD", "password");
    o->homeserver = setting(cfg, "MATRIX_HOMESERVER", "homeserver");
    if (!o->access_token && !o->password) {
        if (!o->homeserver)
            return -ENOENT; /* Matrix is not configured at all */
        return fail(err, errlen,
                    "Matrix: need MATRIX_ACCESS_TOKEN or MATRIX_USER_ID + "
                    "MATRIX_PASSWORD");
    }
    o->user_id = setting(cfg, "MATRIX_USER_ID", "user_id");
    o->device_id = setting(cfg, "MATRIX_DEVICE_ID", "device_id");
    o->recovery_key = setting(cfg, "MATRIX_RECOVERY_KEY", NULL);
    if (!o->homeserver)
        return fail(err, errlen,
                    "Matrix: MATRIX_HOMESERVER is not set — give the homeserver's base URL, "
                    "e.g. MATRIX_HOMESERVER=https://matrix.example.org");
    size_t n = strlen(o->homeserver);
    while (n > 1 && o->homeserver[n - 1] == '/')
        o->homeserver[--n] = '\0';
    if (strncmp(o->homeserver, "http://", 7) != 0 && strncmp(o->homeserver, "https://", 8) != 0)
        return fail(err, errlen,
                    "Matrix: MATRIX_HOMESERVER must start with https:// or http:// (got '%s')",
                    o->homeserver);
    if (o->access_token && hm_is_placeholder_secret(o->access_token))
        return fail(err, errlen,
                    "Matrix: MATRIX_ACCESS_TOKEN is a placeholder value; Matrix is disabled. "
                    "Set the bot's real access token (see docs/matrix.md)");
    if (!o->access_token && hm_is_placeholder_secret(o->password))
        return fail(err, errlen,
                    "Matrix: MATRIX_PASSWORD is a placeholder value; Matrix is disabled. Set "
                    "the bot's real password or an access token");
    if (!o->access_token && !o->user_id)
        return fail(err, errlen,
                    "Matrix: need MATRIX_ACCESS_TOKEN or MATRIX_USER_ID + "
                    "MATRIX_PASSWORD");
    if (o->user_id && (o->user_id[0] != '@' || !strchr(o->user_id, ':')))
        return fail(err, errlen,
                    "Matrix: MATRIX_USER_ID must be a full user id like @hermes:example.org "
                    "(got '%s')",
                    o->user_id);
    return 0;
}

int matrix_opts_from_config(const hm_config *cfg, const char *hermes_home, matrix_opts *o,
                            char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    if (err && errlen)
        err[0] = '\0';
    int rc = credentials(cfg, o, err, errlen);
    if (rc)
        goto out_fini;
    unsigned char rnd[8] = {0};
    (void)!getrandom(rnd, sizeof(rnd), 0);
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(o->delivery_epoch + 2 * i, 3, "%02x", rnd[i]);
    o->encryption = flag(cfg, "MATRIX_ENCRYPTION", NULL, "encryption", false, ON_IF_TRUE);
    o->require_mention =
        flag(cfg, "MATRIX_REQUIRE_MENTION", "matrix.require_mention", NULL, true, ON_UNLESS_FALSE);
    o->auto_thread = flag(cfg, "MATRIX_AUTO_THREAD", "matrix.auto_thread", NULL, true, ON_IF_TRUE);
    o->dm_mention_threads = flag(cfg, "MATRIX_DM_MENTION_THREADS", "matrix.dm_mention_threads",
                                 NULL, false, ON_IF_TRUE);
    o->reactions = flag(cfg, "MATRIX_REACTIONS", "matrix.reactions", NULL, true, ON_UNLESS_FALSE);
    free_rooms(cfg, o);
    o->home_room = home_room(cfg);
    o->batch_delay_ms = seconds_ms(cfg, "HERMES_MATRIX_TEXT_BATCH_DELAY_SECONDS", 600);
    o->batch_split_ms = seconds_ms(cfg, "HERMES_MATRIX_TEXT_BATCH_SPLIT_DELAY_SECONDS", 2000);
    if (o->batch_delay_ms < 0 || o->batch_split_ms < 0) {
        rc = fail(err, errlen,
                  "Matrix: HERMES_MATRIX_TEXT_BATCH_DELAY_SECONDS and "
                  "HERMES_MATRIX_TEXT_BATCH_SPLIT_DELAY_SECONDS must be numbers of seconds "
                  "(0 to 600)");
        goto out_fini;
    }
    const char *home = hermes_home ? hermes_home : hm_config_home_dir(cfg);
    paths(cfg, home ? home : ".", o);
    return 0;
out_fini:
    matrix_opts_fini(o);
    return rc;
}

void matrix_opts_fini(matrix_opts *o)
{
    if (!o)
        return;
    rt_free(o->homeserver);
    rt_free(o->access_token);
    rt_free(o->user_id);
    rt_free(o->password);
    rt_free(o->device_id);
    if (o->recovery_key)
        memset(o->recovery_key, 0, strlen(o->recovery_key));
    rt_free(o->recovery_key);
    for (size_t i = 0; i < o->nfree_rooms; i++)
        rt_free(o->free_rooms[i]);
    rt_free(o->free_rooms);
    rt_free(o->home_room);
    rt_free(o->hermes_home);
    rt_free(o->store_dir);
    rt_free(o->threads_file);
    rt_free(o->cache_dir);
    rt_free(o->lock_dir);
    rt_free(o->ca_file);
    memset(o, 0, sizeof(*o));
}
