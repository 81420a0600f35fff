/*
 * gw_index — the sessions index (sessions.json, gateway.md §2.2), session ids, the reset
 * policy (§2.5) and the per-platform settings the router and the chat actors read. Pure
 * functions of their arguments (the config snapshot included): no I/O here.
 */
#include "gw_int.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ============================================================ shared */

gw_shared *gw_shared_ref(gw_shared *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void gw_shared_unref(gw_shared *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    hm_config_unref(s->cfg);
    rt_free(s->home);
    rt_free(s->model);
    rt_free(s->provider);
    rt_free(s->base_url);
    rt_free(s->personality_default);
    rt_free(s);
}

/* ====================================================== ids and times */

char *gw_new_session_id(void)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char ts[32];
    strftime(ts, sizeof(ts), "%Y%m%d_%H%M%S", &tm);
    unsigned char r[4];
    if (RAND_bytes(r, sizeof(r)) != 1) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        uint64_t h = rt_hash_u64((uint64_t)t.tv_nsec ^ (uint64_t)(uintptr_t)&t);
        memcpy(r, &h, sizeof(r));
    }
    return rt_xasprintf("%s_%02x%02x%02x%02x", ts, r[0], r[1], r[2], r[3]);
}

char *gw_iso_local(double epoch)
{
    time_t t = (time_t)epoch;
    struct tm tm;
    localtime_r(&t, &tm);
    char buf[40];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    int us = (int)((epoch - floor(epoch)) * 1e6);
    return rt_xasprintf("%s.%06d", buf, us < 0 ? 0 : us % 1000000);
}

double gw_parse_iso_local(const char *s)
{
    if (!s)
        return 0;
    struct tm tm = {0};
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return 0;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    if (t == (time_t)-1)
        return 0;
    double frac = 0;
    if (*rest == '.') {
        double scale = 0.1;
        for (rest++; isdigit((unsigned char)*rest); rest++, scale /= 10)
            frac += (*rest - '0') * scale;
    }
    return (double)t + frac;
}

/* ======================================================== sessions.json */

void gw_entry_free(gw_entry *e)
{
    if (!e)
        return;
    rt_free(e->key);
    rt_free(e->session_id);
    rt_free(e->display_name);
    rt_free(e->platform);
    rt_free(e->chat_type);
    gw_source_fini(&e->origin);
    rt_free(e);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *jdup(const cJSON *o, const char *k)
{
    const char *s = jstr(o, k);
    return s ? rt_xstrdup(s) : NULL;
}

static int64_t jint(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static bool jbool(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static void origin_from(gw_source *s, const cJSON *o)
{
    s->platform = jdup(o, "platform");
    s->chat_id = jdup(o, "chat_id");
    s->chat_name = jdup(o, "chat_name");
    s->chat_type = jdup(o, "chat_type");
    s->user_id = jdup(o, "user_id");
    s->user_name = jdup(o, "user_name");
    s->thread_id = jdup(o, "thread_id");
    s->user_id_alt = jdup(o, "user_id_alt");
}

/* One entry from its sessions.json object (key: the member name); NULL without a session id. */
static gw_entry *entry_from(const char *key, const cJSON *it)
{
    if (!cJSON_IsObject(it) || !key || !jstr(it, "session_id"))
        return NULL;
    gw_entry *e = rt_xcalloc(1, sizeof(*e));
    e->key = rt_xstrdup(key);
    e->session_id = jdup(it, "session_id");
    e->created_at = gw_parse_iso_local(jstr(it, "created_at"));
    e->updated_at = gw_parse_iso_local(jstr(it, "updated_at"));
    e->display_name = jdup(it, "display_name");
    e->platform = jdup(it, "platform");
    e->chat_type = jdup(it, "chat_type");
    e->input_tokens = jint(it, "input_tokens");
    e->output_tokens = jint(it, "output_tokens");
    e->total_tokens = jint(it, "total_tokens");
    e->last_prompt_tokens = jint(it, "last_prompt_tokens");
    e->memory_flushed = jbool(it, "memory_flushed");
    e->suspended = jbool(it, "suspended");
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(it, "origin");
    if (cJSON_IsObject(o)) {
        origin_from(&e->origin, o);
        e->has_origin = e->origin.platform && e->origin.chat_id;
    }
    return e;
}

int gw_index_parse(const char *text, gw_entry ***out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    cJSON *root = cJSON_Parse(text);
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "sessions.json is not a JSON object");
        cJSON_Delete(root);
        return -EINVAL;
    }
    size_t cap = (size_t)cJSON_GetArraySize(root);
    gw_entry **v = rt_xcalloc(cap ? cap : 1, sizeof(*v));
    const cJSON *it;
    cJSON_ArrayForEach(it, root)
    {
        gw_entry *e = entry_from(it->string, it);
        if (e) /* skip what we cannot use, as the original skips unknown platforms */
            v[(*n)++] = e;
    }
    cJSON_Delete(root);
    *out = v;
    return 0;
}

gw_entry *gw_entry_parse(const char *key, const char *json, char *err, size_t errlen)
{
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    gw_entry *e = NULL;
    if (!cJSON_IsObject(o))
        snprintf(err, errlen, "not a JSON object");
    else if (!(e = entry_from(key, o)))
        snprintf(err, errlen, "no session_id");
    else if (e->updated_at <= 0 || e->created_at <= 0) {
        snprintf(err, errlen, "no valid created_at/updated_at");
        gw_entry_free(e);
        e = NULL;
    }
    cJSON_Delete(o);
    return e;
}

static void add_str(cJSON *o, const char *k, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static cJSON *origin_json(const gw_source *s)
{
    cJSON *o = cJSON_CreateObject();
    add_str(o, "platform", s->platform);
    add_str(o, "chat_id", s->chat_id);
    add_str(o, "chat_name", s->chat_name);
    add_str(o, "chat_type", s->chat_type);
    add_str(o, "user_id", s->user_id);
    add_str(o, "user_name", s->user_name);
    add_str(o, "thread_id", s->thread_id);
    add_str(o, "chat_topic", NULL);
    if (s->user_id_alt)
        cJSON_AddStringToObject(o, "user_id_alt", s->user_id_alt);
    return o;
}

static cJSON *entry_json(const gw_entry *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "session_key", e->key);
    cJSON_AddStringToObject(o, "session_id", e->session_id);
    char *c = gw_iso_local(e->created_at), *u = gw_iso_local(e->updated_at);
    cJSON_AddStringToObject(o, "created_at", c);
    cJSON_AddStringToObject(o, "updated_at", u);
    rt_free(c);
    rt_free(u);
    add_str(o, "display_name", e->display_name);
    add_str(o, "platform", e->platform);
    add_str(o, "chat_type", e->chat_type);
    cJSON_AddNumberToObject(o, "input_tokens", (double)e->input_tokens);
    cJSON_AddNumberToObject(o, "output_tokens", (double)e->output_tokens);
    cJSON_AddNumberToObject(o, "cache_read_tokens", 0);
    cJSON_AddNumberToObject(o, "cache_write_tokens", 0);
    cJSON_AddNumberToObject(o, "total_tokens", (double)e->total_tokens);
    cJSON_AddNumberToObject(o, "last_prompt_tokens", (double)e->last_prompt_tokens);
    cJSON_AddNullToObject(o, "estimated_cost_usd");
    cJSON_AddStringToObject(o, "cost_status", "unknown");
    cJSON_AddBoolToObject(o, "memory_flushed", e->memory_flushed);
    cJSON_AddBoolToObject(o, "suspended", e->suspended);
    if (e->has_origin)
        cJSON_AddItemToObject(o, "origin", origin_json(&e->origin));
    return o;
}

char *gw_index_render(gw_entry *const *entries, size_t n)
{
    cJSON *root = cJSON_CreateObject();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToObject(root, entries[i]->key, entry_json(entries[i]));
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    char *out = rt_xstrdup(txt ? txt : "{}");
    cJSON_free(txt);
    return out;
}

/* ---- flat copies (gw_index_flatten / gw_index_render_flat) ---- */

typedef struct flat_hdr {
    double created_at, updated_at;
    int64_t input_tokens, output_tokens, total_tokens, last_prompt_tokens;
    uint8_t memory_flushed, suspended, has_origin, pad[5];
} flat_hdr;

#define FLAT_NULL UINT32_MAX

static void flat_str(rt_buf *out, const char *s)
{
    uint32_t len = s ? (uint32_t)strnlen(s, UINT32_MAX - 1) : FLAT_NULL;
    rt_buf_append(out, &len, sizeof(len));
    if (s) {
        rt_buf_append(out, s, len);
        rt_buf_append(out, "", 1);
    }
}

void gw_index_flatten(gw_entry *const *entries, size_t n, rt_buf *out)
{
    for (size_t i = 0; i < n; i++)
        gw_index_flatten_one(entries[i], out);
}

void gw_index_flatten_one(const gw_entry *e, rt_buf *out)
{
    flat_hdr h = {.created_at = e->created_at,
                  .updated_at = e->updated_at,
                  .input_tokens = e->input_tokens,
                  .output_tokens = e->output_tokens,
                  .total_tokens = e->total_tokens,
                  .last_prompt_tokens = e->last_prompt_tokens,
                  .memory_flushed = e->memory_flushed,
                  .suspended = e->suspended,
                  .has_origin = e->has_origin};
    rt_buf_append(out, &h, sizeof(h));
    const gw_source *o = &e->origin;
    const char *strs[] = {e->key,       e->session_id, e->display_name, e->platform,  e->chat_type,
                          o->platform,  o->chat_id,    o->chat_name,    o->chat_type, o->user_id,
                          o->user_name, o->thread_id,  o->user_id_alt};
    for (size_t k = 0; k < RT_ARRAY_LEN(strs); k++)
        flat_str(out, strs[k]);
}

/* The next string of a flat copy (NULL for a NULL one); false when the copy ends early. */
static bool flat_next(const char **p, const char *end, char **s)
{
    uint32_t len;
    if ((size_t)(end - *p) < sizeof(len))
        return false;
    memcpy(&len, *p, sizeof(len));
    *p += sizeof(len);
    if (len == FLAT_NULL) {
        *s = NULL;
        return true;
    }
    if ((size_t)(end - *p) < (size_t)len + 1 || (*p)[len] != '\0')
        return false;
    *s = (char *)*p; /* borrowed: entry_json copies */
    *p += (size_t)len + 1;
    return true;
}

char *gw_index_render_flat(const char *flat, size_t len)
{
    cJSON *root = cJSON_CreateObject();
    const char *p = flat, *end = flat + len;
    while ((size_t)(end - p) >= sizeof(flat_hdr)) {
        flat_hdr h;
        memcpy(&h, p, sizeof(h));
        p += sizeof(h);
        gw_entry e = {.created_at = h.created_at,
                      .updated_at = h.updated_at,
                      .input_tokens = h.input_tokens,
                      .output_tokens = h.output_tokens,
                      .total_tokens = h.total_tokens,
                      .last_prompt_tokens = h.last_prompt_tokens,
                      .memory_flushed = h.memory_flushed,
                      .suspended = h.suspended,
                      .has_origin = h.has_origin};
        gw_source *o = &e.origin;
        char **strs[] = {&e.key,        &e.session_id, &e.display_name, &e.platform,   &e.chat_type,
                         &o->platform,  &o->chat_id,   &o->chat_name,   &o->chat_type, &o->user_id,
                         &o->user_name, &o->thread_id, &o->user_id_alt};
        bool whole = true;
        for (size_t k = 0; k < RT_ARRAY_LEN(strs) && whole; k++)
            whole = flat_next(&p, end, strs[k]);
        if (!whole || !e.key || !e.session_id)
            break;
        cJSON_AddItemToObject(root, e.key, entry_json(&e));
    }
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    char *out = rt_xstrdup(txt ? txt : "{}");
    cJSON_free(txt);
    return out;
}

char *gw_entry_text(const gw_entry *e)
{
    cJSON *o = entry_json(e);
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *out = rt_xstrdup(txt ? txt : "{}");
    cJSON_free(txt);
    return out;
}

/* ======================================================== reset policy */

static int mode_of(const char *m)
{
    if (!m || strcasecmp(m, "both") == 0)
        return GW_RESET_BOTH;
    if (strcasecmp(m, "none") == 0)
        return GW_RESET_NONE;
    if (strcasecmp(m, "idle") == 0)
        return GW_RESET_IDLE;
    if (strcasecmp(m, "daily") == 0)
        return GW_RESET_DAILY;
    return GW_RESET_BOTH;
}

gw_reset_policy gw_reset_policy_for(const hm_config *cfg, const char *platform,
                                    const char *chat_type)
{
    gw_reset_policy p = {
        .mode = mode_of(hm_config_str(cfg, "session_reset.mode")),
        .at_hour = (int)hm_config_env_int(cfg, "session_reset.at_hour", NULL),
        .idle_minutes = hm_config_env_int(cfg, "session_reset.idle_minutes", NULL),
        .notify = hm_config_bool(cfg, "session_reset.notify"),
    };
    if (p.at_hour < 0 || p.at_hour > 23)
        p.at_hour = 4; /* the original's validation */
    if (p.idle_minutes <= 0)
        p.idle_minutes = 1440;
    const char *ex[16];
    size_t n = hm_config_list(cfg, "session_reset.notify_exclude_platforms", ex, 16);
    for (size_t i = 0; i < n && i < 16 && platform; i++)
        if (strcmp(ex[i], platform) == 0)
            p.notify = false;
    (void)chat_type; /* reset_by_type lives only in the legacy gateway.json */
    return p;
}

static void fmt_duration(int64_t minutes, char *buf, size_t len)
{
    int64_t h = minutes / 60, m = minutes % 60;
    if (h && m)
        snprintf(buf, len, "%lldh %lldm", (long long)h, (long long)m);
    else if (h)
        snprintf(buf, len, "%lldh", (long long)h);
    else
        snprintf(buf, len, "%lldm", (long long)m);
}

const char *gw_reset_due(const gw_entry *e, const gw_reset_policy *p, double now, char *buf,
                         size_t len)
{
    if (e->suspended) {
        snprintf(buf, len, "previous session was stopped or interrupted");
        return buf;
    }
    if (p->mode == GW_RESET_NONE || e->updated_at <= 0)
        return NULL;
    if ((p->mode == GW_RESET_IDLE || p->mode == GW_RESET_BOTH) &&
        now > e->updated_at + (double)p->idle_minutes * 60.0) {
        char d[32];
        fmt_duration(p->idle_minutes, d, sizeof(d));
        snprintf(buf, len, "inactive for %s", d);
        return buf;
    }
    if (p->mode == GW_RESET_DAILY || p->mode == GW_RESET_BOTH) {
        time_t t = (time_t)now;
        struct tm tm;
        localtime_r(&t, &tm);
        bool today = tm.tm_hour >= p->at_hour;
        tm.tm_hour = p->at_hour;
        tm.tm_min = tm.tm_sec = 0;
        tm.tm_isdst = -1;
        if (!today)
            tm.tm_mday -= 1;
        double boundary = (double)mktime(&tm);
        if (e->updated_at < boundary) {
            snprintf(buf, len, "daily schedule at %d:00", p->at_hour);
            return buf;
        }
    }
    return NULL;
}

/* ==================================================== progress settings */

static int progress_of(const cJSON *v)
{
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) ? GW_PROGRESS_ALL : GW_PROGRESS_OFF;
    if (!cJSON_IsString(v))
        return -1;
    const char *s = v->valuestring;
    if (strcasecmp(s, "off") == 0 || strcasecmp(s, "false") == 0)
        return GW_PROGRESS_OFF;
    if (strcasecmp(s, "new") == 0)
        return GW_PROGRESS_NEW;
    if (strcasecmp(s, "all") == 0 || strcasecmp(s, "true") == 0)
        return GW_PROGRESS_ALL;
    if (strcasecmp(s, "verbose") == 0)
        return GW_PROGRESS_VERBOSE;
    return -1;
}

int gw_progress_mode(const hm_config *cfg, const char *platform)
{
    char path[160];
    snprintf(path, sizeof(path), "display.platforms.%s.tool_progress", platform);
    int m = progress_of(hm_config_node(cfg, path));
    if (m >= 0)
        return m;
    snprintf(path, sizeof(path), "display.tool_progress_overrides.%s", platform);
    if ((m = progress_of(hm_config_node(cfg, path))) >= 0)
        return m;
    if (hm_config_is_set(cfg, "display.tool_progress") &&
        (m = progress_of(hm_config_node(cfg, "display.tool_progress"))) >= 0)
        return m;
    /* The deprecated variables, honoured when config.yaml says nothing (gateway.md §7.1). */
    const char *envp = hm_config_getenv(cfg, "HERMES_TOOL_PROGRESS", NULL);
    bool off = false;
    if (envp && *envp && rt_parse_bool(envp, &off) == 0 && !off)
        return GW_PROGRESS_OFF;
    const char *envm = hm_config_getenv(cfg, "HERMES_TOOL_PROGRESS_MODE", NULL);
    if (envm && *envm) {
        cJSON *s = cJSON_CreateString(envm);
        m = progress_of(s);
        cJSON_Delete(s);
        if (m >= 0)
            return m;
    }
    if (strcmp(platform, "matrix") == 0 || strcmp(platform, "mattermost") == 0)
        return GW_PROGRESS_NEW;
    if (strcmp(platform, "webhook") == 0 || strcmp(platform, "email") == 0 ||
        strcmp(platform, "sms") == 0)
        return GW_PROGRESS_OFF;
    return GW_PROGRESS_ALL;
}

const char *gw_home_var(const char *platform, char *buf, size_t len)
{
    if (strcmp(platform, "matrix") == 0)
        return "MATRIX_HOME_ROOM";
    if (strcmp(platform, "mattermost") == 0)
        return "MATTERMOST_HOME_CHANNEL";
    size_t i = 0;
    for (; platform[i] && i + 1 < len; i++)
        buf[i] = (char)toupper((unsigned char)platform[i]);
    buf[i] = '\0';
    rt_strlcpy(buf + i, "_HOME_CHANNEL", len > i ? len - i : 0);
    return buf;
}
