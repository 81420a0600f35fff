/*
 * send_dir — see send_dir.h.
 */
#include "send_dir.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"
#include "st_index.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_FILE_MAX (64u << 20)

const char *const send_platforms[] = {
    "telegram", "discord",        "slack",      "whatsapp",      "signal",   "bluebubbles",
    "qqbot",    "matrix",         "mattermost", "homeassistant", "dingtalk", "feishu",
    "wecom",    "wecom_callback", "weixin",     "email",         "sms",      NULL};

bool send_platform_known(const char *platform)
{
    for (const char *const *p = send_platforms; *p; p++)
        if (strcmp(*p, platform) == 0)
            return true;
    return false;
}

const char *send_home_var(const char *platform, char *buf, size_t n)
{
    if (strcmp(platform, "matrix") == 0)
        return "MATRIX_HOME_ROOM";
    if (strcmp(platform, "mattermost") == 0)
        return "MATTERMOST_HOME_CHANNEL";
    size_t i = 0;
    for (; platform[i] && i + 1 < n; i++)
        buf[i] = (char)toupper((unsigned char)platform[i]);
    buf[i] = '\0';
    rt_strlcpy(buf + i, "_HOME_CHANNEL", n > i ? n - i : 0);
    return buf;
}

static bool all_digits(const char *s, size_t n)
{
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

bool send_parse_ref(const char *platform, const char *ref, char **chat_id, char **thread_id)
{
    *chat_id = *thread_id = NULL;
    /* trimmed: the original's patterns allow surrounding whitespace */
    while (isspace((unsigned char)*ref))
        ref++;
    size_t n = strlen(ref);
    while (n && isspace((unsigned char)ref[n - 1]))
        n--;
    if (strcmp(platform, "telegram") == 0 || strcmp(platform, "discord") == 0) {
        const char *p = ref, *end = ref + n;
        if (p < end && *p == '-')
            p++;
        const char *colon = memchr(p, ':', (size_t)(end - p));
        size_t idlen = (size_t)((colon ? colon : end) - p);
        if (all_digits(p, idlen) && (!colon || all_digits(colon + 1, (size_t)(end - colon - 1)))) {
            *chat_id = rt_xstrndup(ref, (size_t)((colon ? colon : end) - ref));
            if (colon)
                *thread_id = rt_xstrndup(colon + 1, (size_t)(end - colon - 1));
            return true;
        }
    }
    const char *d = ref;
    if (*d == '-')
        d++;
    if (all_digits(d, n - (size_t)(d - ref))) {
        *chat_id = rt_xstrndup(ref, n);
        return true;
    }
    if (strcmp(platform, "matrix") == 0 && n && (ref[0] == '!' || ref[0] == '@')) {
        *chat_id = rt_xstrndup(ref, n);
        return true;
    }
    if (strcmp(platform, "mattermost") == 0 && n == 26) {
        bool ok = true;
        for (size_t i = 0; i < n && ok; i++)
            ok = isdigit((unsigned char)ref[i]) || islower((unsigned char)ref[i]);
        if (ok) {
            *chat_id = rt_xstrndup(ref, n);
            return true;
        }
    }
    return false;
}

static char *read_text(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *text = NULL;
    if (fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size < (off_t)DIR_FILE_MAX) {
        text = rt_xmalloc((size_t)st.st_size + 1);
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, text + got, (size_t)st.st_size - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        text[got] = '\0';
    }
    close(fd);
    return text;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

/* One session's chat into platforms (_build_from_sessions' loop body). */
static void add_session(cJSON *platforms, const cJSON *s)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(s, "origin");
    const char *plat = jstr(o, "platform"), *chat = jstr(o, "chat_id");
    if (!plat || !chat || strcmp(plat, "local") == 0 || strcmp(plat, "api_server") == 0 ||
        strcmp(plat, "webhook") == 0)
        return;
    const char *thread = jstr(o, "thread_id");
    char *id = thread ? rt_xasprintf("%s:%s", chat, thread) : rt_xstrdup(chat);
    cJSON *list = cJSON_GetObjectItemCaseSensitive(platforms, plat);
    if (!list)
        list = cJSON_AddArrayToObject(platforms, plat);
    bool seen = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, list) seen |= strcmp(jstr(e, "id"), id) == 0;
    if (!seen) {
        const char *base = jstr(o, "chat_name")   ? jstr(o, "chat_name")
                           : jstr(o, "user_name") ? jstr(o, "user_name")
                                                  : chat;
        char *name = rt_xstrdup(base);
        if (thread) {
            const char *topic = jstr(o, "chat_topic");
            rt_free(name);
            name = topic ? rt_xasprintf("%s / %s", base, topic)
                         : rt_xasprintf("%s / topic %s", base, thread);
        }
        const char *type = jstr(s, "chat_type") ? jstr(s, "chat_type") : "dm";
        cJSON *ent = cJSON_CreateObject();
        cJSON_AddStringToObject(ent, "id", id);
        cJSON_AddStringToObject(ent, "name", name);
        cJSON_AddStringToObject(ent, "type", type);
        if (thread)
            cJSON_AddStringToObject(ent, "thread_id", thread);
        else
            cJSON_AddNullToObject(ent, "thread_id");
        cJSON_AddItemToArray(list, ent);
        rt_free(name);
    }
    rt_free(id);
}

typedef struct cold_walk {
    cJSON *platforms;
    const cJSON *warm; /* sessions.json: its entries win over a stale cold row */
} cold_walk;

static bool add_cold(void *arg, const char *key, const char *entry, double updated_at)
{
    (void)updated_at;
    cold_walk *w = arg;
    if (cJSON_GetObjectItemCaseSensitive(w->warm, key))
        return true;
    cJSON *s = cJSON_Parse(entry);
    if (cJSON_IsObject(s))
        add_session(w->platforms, s);
    cJSON_Delete(s);
    return true;
}

/* _build_from_sessions for every platform found in sessions.json, and in the entries that
 * quiet conversations left there for state.db's hc_session_index (st_index.h). */
static cJSON *from_sessions(const char *home)
{
    cJSON *platforms = cJSON_CreateObject();
    char *path = rt_xasprintf("%s/sessions/sessions.json", home);
    char *text = read_text(path);
    rt_free(path);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    rt_free(text);
    const cJSON *s;
    cJSON_ArrayForEach(s, root) add_session(platforms, s);
    char *db = rt_xasprintf("%s/state.db", home);
    cold_walk w = {platforms, root};
    (void)st_index_each(db, NULL, add_cold, &w); /* none yet, or unreadable: sessions.json's */
    rt_free(db);
    cJSON_Delete(root);
    return platforms;
}

cJSON *send_directory(const char *home)
{
    char *path = rt_xasprintf("%s/channel_directory.json", home);
    char *text = read_text(path);
    rt_free(path);
    cJSON *dir = text ? cJSON_Parse(text) : NULL;
    rt_free(text);
    if (cJSON_IsObject(dir) && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(dir, "platforms")))
        return dir;
    cJSON_Delete(dir);
    dir = cJSON_CreateObject();
    cJSON_AddNullToObject(dir, "updated_at");
    cJSON_AddItemToObject(dir, "platforms", from_sessions(home));
    return dir;
}

/* _channel_target_name */
static char *target_name(const char *platform, const cJSON *ch)
{
    const char *name = jstr(ch, "name") ? jstr(ch, "name") : "";
    if (strcmp(platform, "discord") == 0 && jstr(ch, "guild"))
        return rt_xasprintf("#%s", name);
    if (strcmp(platform, "discord") != 0 && jstr(ch, "type"))
        return rt_xasprintf("%s (%s)", name, jstr(ch, "type"));
    return rt_xstrdup(name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Python's str.title() for a platform name ("matrix" → "Matrix", "wecom_callback" →
 * "Wecom_Callback"). */
static void title(const char *s, char *out, size_t n)
{
    bool start = true;
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (char)(start ? toupper(c) : tolower(c));
        start = !isalpha(c);
    }
    out[i] = '\0';
}

static void discord_lines(rt_buf *b, const cJSON *channels)
{
    /* grouped by guild (sorted), DMs last, as the original */
    const char *guilds[256];
    size_t ng = 0;
    const cJSON *ch;
    cJSON_ArrayForEach(ch, channels)
    {
        const char *g = jstr(ch, "guild");
        bool seen = false;
        for (size_t i = 0; g && i < ng; i++)
            seen |= strcmp(guilds[i], g) == 0;
        if (g && !seen && ng < RT_ARRAY_LEN(guilds))
            guilds[ng++] = g;
    }
    qsort(guilds, ng, sizeof(guilds[0]), cmp_str);
    for (size_t i = 0; i < ng; i++) {
        (void)rt_buf_printf(b, "Discord (%s):\n", guilds[i]);
        cJSON_ArrayForEach(ch, channels)
        {
            const char *g = jstr(ch, "guild");
            if (g && strcmp(g, guilds[i]) == 0) {
                char *t = target_name("discord", ch);
                (void)rt_buf_printf(b, "  discord:%s\n", t);
                rt_free(t);
            }
        }
    }
    bool dms = false;
    cJSON_ArrayForEach(ch, channels)
    {
        if (jstr(ch, "guild"))
            continue;
        if (!dms)
            (void)rt_buf_append_str(b, "Discord (DMs):\n");
        dms = true;
        char *t = target_name("discord", ch);
        (void)rt_buf_printf(b, "  discord:%s\n", t);
        rt_free(t);
    }
    (void)rt_buf_append_str(b, "\n");
}

char *send_directory_display(const cJSON *dir)
{
    const cJSON *platforms = cJSON_GetObjectItemCaseSensitive(dir, "platforms");
    const char *names[64];
    size_t n = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, platforms)
    {
        if (cJSON_GetArraySize(p) > 0 && p->string && n < RT_ARRAY_LEN(names))
            names[n++] = p->string;
    }
    if (!n)
        return rt_xstrdup("No messaging platforms connected or no channels discovered yet.");
    qsort(names, n, sizeof(names[0]), cmp_str);
    rt_buf b;
    rt_buf_init(&b, DIR_FILE_MAX);
    (void)rt_buf_append_str(&b, "Available messaging targets:\n\n");
    for (size_t i = 0; i < n; i++) {
        const cJSON *channels = cJSON_GetObjectItemCaseSensitive(platforms, names[i]);
        if (strcmp(names[i], "discord") == 0) {
            discord_lines(&b, channels);
            continue;
        }
        char t[64];
        title(names[i], t, sizeof(t));
        (void)rt_buf_printf(&b, "%s:\n", t);
        const cJSON *ch;
        cJSON_ArrayForEach(ch, channels)
        {
            char *tn = target_name(names[i], ch);
            (void)rt_buf_printf(&b, "  %s:%s\n", names[i], tn);
            rt_free(tn);
        }
        (void)rt_buf_append_str(&b, "\n");
    }
    (void)rt_buf_append_str(&b, "Use these as the \"target\" parameter when sending.\n"
                                "Bare platform name (e.g. \"telegram\") sends to home channel.");
    return rt_buf_steal(&b, NULL);
}

/* _normalize_channel_query: without leading '#', stripped, lower-cased. New string. */
static char *norm(const char *s)
{
    while (*s == '#')
        s++;
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    char *o = rt_xstrndup(s, n);
    for (char *c = o; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return o;
}

static bool norm_eq(const char *a, const char *q)
{
    if (!a)
        return false;
    char *na = norm(a);
    bool eq = strcmp(na, q) == 0;
    rt_free(na);
    return eq;
}

char *send_resolve_name(const cJSON *dir, const char *platform, const char *name)
{
    const cJSON *channels = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(dir, "platforms"), platform);
    if (!cJSON_GetArraySize(channels))
        return NULL;
    char *q = norm(name);
    const cJSON *ch, *hit = NULL;
    cJSON_ArrayForEach(ch, channels)
    {
        char *t = target_name(platform, ch);
        /* the name, the label send_message(action='list') shows, or (a fix) the id itself */
        bool eq = norm_eq(jstr(ch, "name"), q) || norm_eq(t, q) || norm_eq(jstr(ch, "id"), q);
        rt_free(t);
        if (eq) {
            hit = ch;
            break;
        }
    }
    if (!hit && strchr(q, '/')) {
        char *slash = strrchr(q, '/');
        *slash = '\0';
        cJSON_ArrayForEach(ch, channels)
        {
            if (norm_eq(jstr(ch, "guild"), q) && norm_eq(jstr(ch, "name"), slash + 1)) {
                hit = ch;
                break;
            }
        }
        *slash = '/';
    }
    if (!hit) {
        int matches = 0;
        cJSON_ArrayForEach(ch, channels)
        {
            char *nn = jstr(ch, "name") ? norm(jstr(ch, "name")) : rt_xstrdup("");
            if (strncmp(nn, q, strlen(q)) == 0) {
                matches++;
                hit = ch;
            }
            rt_free(nn);
        }
        if (matches != 1)
            hit = NULL;
    }
    rt_free(q);
    return hit && jstr(hit, "id") ? rt_xstrdup(jstr(hit, "id")) : NULL;
}
