/*
 * mx_wire — pure helpers for the Matrix wire: path escaping, /versions, what a finished
 * request means (retry, auth failure, give up), the state files' JSON and the sync filter.
 */
#include "mx_int.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

char *mx_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = rt_xmalloc(n * 3 + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

bool mx_versions_auth_media(const char *body)
{
    cJSON *j = cJSON_Parse(body ? body : "");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "versions");
    bool yes = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, (cJSON_IsArray(v) ? v : NULL))
    {
        int major = 0, minor = 0;
        if (cJSON_IsString(e) && sscanf(e->valuestring, "v%d.%d", &major, &minor) == 2 &&
            (major > 1 || (major == 1 && minor >= 11)))
            yes = true;
    }
    cJSON_Delete(j);
    return yes;
}

/* errcode, error and retry_after_ms of a Matrix error body. */
static void error_body(const char *body, char *code, size_t clen, char *text, size_t tlen,
                       int64_t *retry_ms)
{
    code[0] = text[0] = '\0';
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "errcode");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "retry_after_ms");
    if (cJSON_IsString(c))
        rt_strlcpy(code, c->valuestring, clen);
    if (cJSON_IsString(t))
        rt_strlcpy(text, t->valuestring, tlen);
    if (cJSON_IsNumber(r) && r->valuedouble > 0 && r->valuedouble < 86400000.0)
        *retry_ms = (int64_t)r->valuedouble;
    cJSON_Delete(j);
}

int mx_classify(const rt_io_msg_http_done *d, char *reason, size_t len, int64_t *retry_ms,
                char *errcode)
{
    char code[64], text[160];
    *retry_ms = 0;
    if (errcode)
        errcode[0] = '\0';
    if (d->err == -ECANCELED) {
        snprintf(reason, len, "cancelled");
        return MX_CANCEL;
    }
    if (d->err) {
        snprintf(reason, len, "%s", d->errmsg ? d->errmsg : rt_strerror(d->err));
        return MX_RETRY;
    }
    if (d->status >= 200 && d->status < 300) {
        snprintf(reason, len, "HTTP %d", d->status);
        return MX_OK;
    }
    error_body(d->body, code, sizeof(code), text, sizeof(text), retry_ms);
    if (errcode)
        rt_strlcpy(errcode, code, 64);
    if (!*retry_ms && d->retry_after_s > 0)
        *retry_ms = d->retry_after_s * 1000;
    if (code[0] && text[0])
        snprintf(reason, len, "%s: %s (HTTP %d)", code, text, d->status);
    else if (code[0])
        snprintf(reason, len, "%s (HTTP %d)", code, d->status);
    else
        snprintf(reason, len, "HTTP %d", d->status);
    if (d->status == 429) {
        snprintf(reason, len, "rate limited (%s)", code[0] ? code : "HTTP 429");
        return MX_RETRY;
    }
    if (d->status >= 500 || d->status == 408)
        return MX_RETRY;
    if (d->status == 401 || strcmp(code, "M_UNKNOWN_TOKEN") == 0 ||
        strcmp(code, "M_MISSING_TOKEN") == 0)
        return MX_AUTH;
    return MX_FAIL;
}

/* ============================================================ state files */

char *mx_token_render(const char *homeserver, const char *user_id, const char *token)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "homeserver", homeserver ? homeserver : "");
    cJSON_AddStringToObject(o, "user_id", user_id ? user_id : "");
    cJSON_AddStringToObject(o, "next_batch", token ? token : "");
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *out = rt_xstrdup(txt);
    cJSON_free(txt);
    return out;
}

char *mx_token_parse(const char *json, const char *homeserver, const char *user_id)
{
    cJSON *j = cJSON_Parse(json ? json : "");
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(j, "homeserver");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "user_id");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "next_batch");
    char *out = NULL;
    if (cJSON_IsString(hs) && cJSON_IsString(u) && cJSON_IsString(t) && t->valuestring[0] &&
        homeserver && strcmp(hs->valuestring, homeserver) == 0 &&
        (!user_id || strcmp(u->valuestring, user_id) == 0))
        out = rt_xstrdup(t->valuestring);
    cJSON_Delete(j);
    return out;
}

char *mx_threads_render(char *const *ids, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(ids[i]));
    char *txt = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    char *out = rt_xstrdup(txt);
    cJSON_free(txt);
    return out;
}

char **mx_threads_parse(const char *json, size_t max, size_t *n)
{
    *n = 0;
    cJSON *a = cJSON_Parse(json ? json : "");
    if (!cJSON_IsArray(a)) {
        cJSON_Delete(a);
        return NULL;
    }
    size_t total = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) total += cJSON_IsString(e) && e->valuestring[0];
    size_t skip = total > max ? total - max : 0; /* keep the newest */
    char **out = rt_xcalloc(total - skip + 1, sizeof(*out));
    cJSON_ArrayForEach(e, a)
    {
        if (!cJSON_IsString(e) || !e->valuestring[0])
            continue;
        if (skip) {
            skip--;
            continue;
        }
        out[(*n)++] = rt_xstrdup(e->valuestring);
    }
    cJSON_Delete(a);
    return out;
}

/* ================================================================= filter */

static cJSON *types(const char *const *t, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(t[i]));
    return a;
}

static void add_not_all(cJSON *o, const char *key)
{
    static const char *const all[] = {"*"};
    cJSON *f = cJSON_AddObjectToObject(o, key);
    cJSON_AddItemToObject(f, "not_types", types(all, 1));
}

char *mx_filter_json(mx_crypto *c)
{
    static const char *const state[] = {"m.room.member", "m.room.name", "m.room.encryption",
                                        "m.room.create"};
    static const char *const timeline[] = {"m.room.message", "m.room.encrypted", "m.room.member",
                                           "m.room.name", "m.room.encryption"};
    static const char *const account[] = {"m.direct"};
    cJSON *f = cJSON_CreateObject();
    add_not_all(f, "presence");
    cJSON *ad = cJSON_AddObjectToObject(f, "account_data");
    cJSON_AddItemToObject(ad, "types", types(account, RT_ARRAY_LEN(account)));
    cJSON *room = cJSON_AddObjectToObject(f, "room");
    cJSON *st = cJSON_AddObjectToObject(room, "state");
    cJSON_AddItemToObject(st, "types", types(state, RT_ARRAY_LEN(state)));
    cJSON_AddTrueToObject(st, "lazy_load_members");
    cJSON *tl = cJSON_AddObjectToObject(room, "timeline");
    cJSON_AddItemToObject(tl, "types", types(timeline, RT_ARRAY_LEN(timeline)));
    cJSON_AddNumberToObject(tl, "limit", MX_TIMELINE_LIMIT);
    cJSON_AddTrueToObject(tl, "lazy_load_members");
    add_not_all(room, "ephemeral");
    add_not_all(room, "account_data");
    if (c)
        mx_crypto_filter(c, f);
    char *txt = cJSON_PrintUnformatted(f);
    cJSON_Delete(f);
    char *out = rt_xstrdup(txt);
    cJSON_free(txt);
    return out;
}
