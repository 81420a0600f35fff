/*
 * mm_config — the adapter's settings (mattermost_opts_from_config) and the identity lock
 * (gateway.md §11.2): one file per Mattermost identity (server URL + token) in the gateway
 * lock directory, so two gateways never answer as the same bot.
 */
#include "mm_int.h"

#include "hm_config.h"
#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

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

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

/* The variable (environment, then .env) if set and not blank, else NULL. */
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

/* Split a comma list into a NULL-terminated array (blank items dropped), or NULL. */
static char **split_list(const char *s)
{
    if (!s)
        return NULL;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char **v = rt_xcalloc(cap + 1, sizeof(*v));
    size_t n = 0;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char *item = rt_xstrndup(p, len);
        char *t = mm_trim(item);
        rt_free(item);
        if (*t)
            v[n++] = t;
        else
            rt_free(t);
        p += len + (e ? 1 : 0);
    }
    if (!n) {
        rt_free(v);
        return NULL;
    }
    return v;
}

static char **list_of(const cJSON *node)
{
    if (cJSON_IsString(node))
        return split_list(node->valuestring);
    if (!cJSON_IsArray(node) || !cJSON_GetArraySize(node))
        return NULL;
    char **v = rt_xcalloc((size_t)cJSON_GetArraySize(node) + 1, sizeof(*v));
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, node)
    {
        if (cJSON_IsString(it) && *it->valuestring)
            v[n++] = rt_xstrdup(it->valuestring);
        else if (cJSON_IsNumber(it))
            v[n++] = rt_xasprintf("%.0f", it->valuedouble);
    }
    return v;
}

static int64_t seconds_env(const hm_config *cfg, const char *name)
{
    const char *v = envv(cfg, name);
    if (!v)
        return 0;
    char *end = NULL;
    double d = strtod(v, &end);
    if (end == v || d <= 0 || d > 86400) {
        RT_WARN(MM_LOG, "Mattermost: %s=%s is not a number of seconds; ignored", name, v);
        return 0;
    }
    return (int64_t)(d * 1000.0);
}

static void prompts_of(const cJSON *map, mattermost_opts *o)
{
    if (!cJSON_IsObject(map) || !cJSON_GetArraySize(map))
        return;
    size_t cap = (size_t)cJSON_GetArraySize(map);
    o->prompt_channels = rt_xcalloc(cap + 1, sizeof(char *));
    o->prompts = rt_xcalloc(cap + 1, sizeof(char *));
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, map)
    {
        if (!cJSON_IsString(it) || !*it->valuestring)
            continue;
        o->prompt_channels[n] = rt_xstrdup(it->string);
        o->prompts[n++] = rt_xstrdup(it->valuestring);
    }
}

static char *lock_dir_of(const hm_config *cfg)
{
    const char *d = envv(cfg, "HERMES_GATEWAY_LOCK_DIR");
    if (d)
        return rt_xstrdup(d);
    const char *xdg = getenv("XDG_STATE_HOME");
    if (xdg && *xdg)
        return rt_xasprintf("%s/hermes/gateway-locks", xdg);
    const char *home = getenv("HOME");
    return home && *home ? rt_xasprintf("%s/.local/state/hermes/gateway-locks", home) : NULL;
}

static const char *home_channel_of(const hm_config *cfg, const cJSON *plat)
{
    const char *h = envv(cfg, "MATTERMOST_HOME_CHANNEL");
    if (h)
        return h;
    const cJSON *hc = cJSON_GetObjectItemCaseSensitive(plat, "home_channel");
    if (cJSON_IsString(hc) && *hc->valuestring)
        return hc->valuestring;
    return jstr(hc, "chat_id");
}

int mattermost_opts_from_config(const hm_config *cfg, const char *hermes_home, mattermost_opts *o,
                                char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    const cJSON *plat = hm_config_node(cfg, "platforms.mattermost");
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(plat, "extra");
    const char *tok = envv(cfg, "MATTERMOST_TOKEN");
    if (!tok)
        tok = jstr(plat, "token");
    if (!tok)
        return -ENOENT;
    if (hm_is_placeholder_secret(tok))
        return fail(err, errlen, -EINVAL,
                    "MATTERMOST_TOKEN is set to a placeholder value; Mattermost is disabled. "
                    "Put the bot token (or a personal access token) in ~/.hermes/.env");
    const char *url = envv(cfg, "MATTERMOST_URL");
    if (!url)
        url = jstr(extra, "url");
    if (!url)
        return fail(err, errlen, -EINVAL,
                    "MATTERMOST_URL is not set: add your server's address to ~/.hermes/.env "
                    "(MATTERMOST_URL=https://mm.example.com)");
    char *u = mm_trim(url);
    size_t ul = strlen(u);
    while (ul && u[ul - 1] == '/')
        u[--ul] = '\0';
    if (strncasecmp(u, "https://", 8) != 0 && strncasecmp(u, "http://", 7) != 0) {
        int rc = fail(err, errlen, -EINVAL,
                      "MATTERMOST_URL must start with https:// or http:// (it is \"%s\")", u);
        rt_free(u);
        return rc;
    }
    o->url = u;
    o->token = mm_trim(tok);
    o->hermes_home = rt_xstrdup(hermes_home ? hermes_home : hm_config_home_dir(cfg));
    o->lock_dir = lock_dir_of(cfg);

    const char *mode = envv(cfg, "MATTERMOST_REPLY_MODE");
    if (!mode)
        mode = jstr(extra, "reply_mode");
    o->reply_thread = mode && strncasecmp(mode, "thread", 6) == 0 && !mode[6];
    const char *rm = envv(cfg, "MATTERMOST_REQUIRE_MENTION");
    if (rm) /* the original: anything but false/0/no keeps the gate */
        o->require_mention =
            strcasecmp(rm, "false") != 0 && strcmp(rm, "0") != 0 && strcasecmp(rm, "no") != 0;
    else
        o->require_mention = hm_config_bool(cfg, "mattermost.require_mention");
    const char *fr = envv(cfg, "MATTERMOST_FREE_RESPONSE_CHANNELS");
    o->free_channels =
        fr ? split_list(fr) : list_of(hm_config_node(cfg, "mattermost.free_response_channels"));
    const char *home = home_channel_of(cfg, plat);
    o->home_channel = home ? mm_trim(home) : NULL;
    const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(extra, "channel_prompts");
    prompts_of(prompts ? prompts : hm_config_node(cfg, "mattermost.channel_prompts"), o);
    o->http_timeout_ms = seconds_env(cfg, "HERMES_MATTERMOST_HTTP_TIMEOUT");
    o->upload_timeout_ms = seconds_env(cfg, "HERMES_MATTERMOST_UPLOAD_TIMEOUT");
    /* The WebSocket heartbeat: a ping every interval, and a connection whose ping is still
     * unanswered at the next one is replaced (a silent drop is noticed within two). */
    o->heartbeat_ms = seconds_env(cfg, "HERMES_MATTERMOST_HEARTBEAT");
    return 0;
}

void mattermost_opts_fini(mattermost_opts *o)
{
    if (!o)
        return;
    rt_free(o->url);
    rt_free(o->token);
    rt_free(o->hermes_home);
    rt_free(o->lock_dir);
    mm_strv_free(o->free_channels);
    rt_free(o->home_channel);
    mm_strv_free(o->prompt_channels);
    mm_strv_free(o->prompts);
    rt_free(o->ca_file);
    memset(o, 0, sizeof(*o));
}

/* ================================================================ the identity lock */

/* Field 22 (start time) and field 3 (state) of /proc/<pid>/stat; -1 if unreadable. */
static long long proc_info(pid_t pid, char *state)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p || p[1] != ' ')
        return -1;
    *state = p[2];
    int field = 2;
    for (p++; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    char num[32];
    size_t i = 0;
    while (p[i] && p[i] != ' ' && i + 1 < sizeof(num)) {
        num[i] = p[i];
        i++;
    }
    num[i] = '\0';
    int64_t v = 0;
    return rt_parse_i64(num, 0, INT64_MAX, &v) == 0 ? (long long)v : -1;
}

/* The pid owning a lock file, or 0 when the lock is stale (dead, reused pid, stopped). */
static pid_t lock_owner(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (hm_read_file(path, 64 * 1024, &text, &len) != 0)
        return 0;
    cJSON *j = cJSON_Parse(text);
    rt_free(text);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pid");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "start_time");
    pid_t pid = cJSON_IsNumber(p) ? (pid_t)p->valuedouble : 0;
    long long start = cJSON_IsNumber(st) ? (long long)st->valuedouble : -1;
    cJSON_Delete(j);
    if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH))
        return 0;
    char state = '?';
    long long now = proc_info(pid, &state);
    if ((start >= 0 && now >= 0 && now != start) || state == 'T' || state == 't')
        return 0;
    return pid;
}

static void mkdir_p(const char *dir)
{
    char *copy = rt_xstrdup(dir);
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        (void)mkdir(copy, 0700); /* EEXIST is the usual answer */
        *p = '/';
    }
    (void)mkdir(copy, 0700);
    rt_free(copy);
}

static int write_lock(int fd, const char *hash, const char *url)
{
    char state = '?';
    long long start = proc_info(getpid(), &state);
    char *txt = rt_xasprintf("{\"pid\": %d, \"kind\": \"hermes-gateway\", \"start_time\": %lld, "
                             "\"scope\": \"mattermost\", \"identity_hash\": \"%s\", "
                             "\"metadata\": {\"platform\": \"mattermost\"}}\n",
                             (int)getpid(), start, hash);
    (void)url; /* not written: the lock names the identity by its hash only */
    size_t n = strlen(txt);
    ssize_t w = write(fd, txt, n);
    rt_free(txt);
    return w == (ssize_t)n ? 0 : -EIO;
}

int mm__lock_acquire(const char *dir, const char *url, const char *token, char **path, char *err,
                     size_t errlen)
{
    *path = NULL;
    char *identity = rt_xasprintf("%s\n%s", url, token);
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)identity, strlen(identity), md);
    rt_free(identity);
    char hash[17];
    for (int i = 0; i < 8; i++)
        snprintf(hash + 2 * i, 3, "%02x", md[i]);
    mkdir_p(dir);
    char *p = rt_xasprintf("%s/mattermost-%s.lock", dir, hash);
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        if (fd >= 0) {
            int rc = write_lock(fd, hash, url);
            close(fd);
            if (rc) {
                (void)unlink(p);
                break;
            }
            *path = p;
            return 0;
        }
        if (errno != EEXIST)
            break;
        pid_t owner = lock_owner(p);
        if (owner) {
            rt_free(p);
            return fail(err, errlen, -EBUSY,
                        "Mattermost bot token already in use (PID %d). Stop the other gateway "
                        "first.",
                        (int)owner);
        }
        (void)unlink(p); /* stale: its owner is gone */
    }
    int e = errno ? -errno : -EIO;
    RT_WARN(MM_LOG, "Mattermost: cannot take the identity lock %s: %s", p, rt_strerror(e));
    rt_free(p);
    return 0; /* a lock directory we cannot write does not stop the bot */
}

void mm__lock_release(const char *path)
{
    if (lock_owner(path) == getpid())
        (void)unlink(path);
}
