/*
 * dc_fmt — the Discord adapter's pure helpers (discord.h): Gateway payloads, close codes, and
 * the REST rate-limit bookkeeping. No I/O; the rate limiter is owned by one actor.
 */
#include "discord.h"

#include "rt_alloc.h"
#include "rt_util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int discord_payload_parse(const char *data, size_t len, discord_payload *p)
{
    memset(p, 0, sizeof(*p));
    p->s = -1;
    cJSON *j = data ? cJSON_ParseWithLength(data, len) : NULL;
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(j, "op");
    if (!cJSON_IsObject(j) || !cJSON_IsNumber(op)) {
        cJSON_Delete(j);
        return -EINVAL;
    }
    p->op = (int)op->valuedouble;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "s");
    if (cJSON_IsNumber(s) && s->valuedouble >= 0)
        p->s = (int64_t)s->valuedouble;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "t");
    if (cJSON_IsString(t))
        p->t = rt_xstrdup(t->valuestring);
    cJSON *d = cJSON_DetachItemFromObjectCaseSensitive(j, "d");
    p->d = d;
    cJSON_Delete(j);
    return 0;
}

void discord_payload_fini(discord_payload *p)
{
    rt_free(p->t);
    cJSON_Delete(p->d);
    memset(p, 0, sizeof(*p));
}

char *discord_thread_name(const char *content)
{
    char buf[512];
    size_t n = 0;
    bool space = false;
    for (const char *p = content ? content : ""; *p && n + 8 < sizeof(buf);) {
        if (*p == '<' && (p[1] == '@' || p[1] == '#')) {
            const char *e = strchr(p, '>');
            if (e) { /* a mention becomes a space */
                space = n > 0;
                p = e + 1;
                continue;
            }
        }
        unsigned char c = (unsigned char)*p;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            space = n > 0;
            p++;
            continue;
        }
        if (space) {
            buf[n++] = ' ';
            space = false;
        }
        buf[n++] = *p++;
    }
    buf[n] = '\0';
    /* count code points; cut at 80 (77 + "...") */
    size_t cps = 0, cut77 = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)buf[i] & 0xC0) != 0x80) {
            if (cps == 77)
                cut77 = i;
            cps++;
        }
    }
    if (!n)
        return rt_xstrdup("Hermes");
    if (cps > 80) {
        char out[512];
        snprintf(out, sizeof(out), "%.*s...", (int)cut77, buf);
        return rt_xstrdup(out);
    }
    return rt_xstrdup(buf);
}

int discord_close_kind(int code)
{
    switch (code) {
    case 4004: /* authentication failed */
    case 4010: /* invalid shard */
    case 4011: /* sharding required */
    case 4012: /* invalid API version */
    case 4013: /* invalid intents */
    case 4014: /* disallowed intents */ return DISCORD_CLOSE_FATAL;
    case 4007: /* invalid seq */
    case 4009: /* session timed out */ return DISCORD_CLOSE_NEW_SESSION;
    default: return DISCORD_CLOSE_RESUME;
    }
}

const char *discord_close_message(int code)
{
    switch (code) {
    case 4004:
        return "Discord: authentication failed (close code 4004) — the bot token is invalid; "
               "check DISCORD_BOT_TOKEN (Developer Portal → your app → Bot → Reset Token)";
    case 4014:
        return "Discord: privileged intents are not enabled (close code 4014) — enable the "
               "Message Content Intent under Developer Portal → your app → Bot → Privileged "
               "Gateway Intents, then restart the gateway";
    case 4013: return "Discord: invalid intents (close code 4013)";
    case 4012: return "Discord: invalid API version (close code 4012)";
    case 4011:
        return "Discord: sharding required (close code 4011) — the bot is in too many guilds "
               "for one connection";
    case 4010: return "Discord: invalid shard (close code 4010)";
    default: return "Discord: the gateway closed the connection";
    }
}

/* ================================================================ rate limits */

#define RL_ROUTES  64
#define RL_BUCKETS 256

typedef struct rl_route {
    char route[96];
    char bucket[64];
} rl_route;

typedef struct rl_bucket {
    char key[192];     /* bucket (or route) + " " + major */
    int64_t remaining; /* -1: unknown */
    int64_t reset_at;
    int64_t used; /* last use, for eviction */
} rl_bucket;

struct discord_rl {
    rl_route routes[RL_ROUTES];
    size_t nroutes, next_route;
    rl_bucket buckets[RL_BUCKETS];
    size_t nbuckets;
    int64_t global_until;
};

discord_rl *discord_rl_new(void)
{
    return rt_xcalloc(1, sizeof(discord_rl));
}

void discord_rl_free(discord_rl *rl)
{
    rt_free(rl);
}

static const char *bucket_of(const discord_rl *rl, const char *route)
{
    for (size_t i = 0; i < rl->nroutes; i++)
        if (strcmp(rl->routes[i].route, route) == 0)
            return rl->routes[i].bucket;
    return route;
}

static rl_bucket *find(discord_rl *rl, const char *route, const char *major, bool create,
                       int64_t now)
{
    char key[192];
    snprintf(key, sizeof(key), "%s %s", bucket_of(rl, route), major ? major : "");
    size_t oldest = 0;
    for (size_t i = 0; i < rl->nbuckets; i++) {
        if (strcmp(rl->buckets[i].key, key) == 0)
            return &rl->buckets[i];
        if (rl->buckets[i].used < rl->buckets[oldest].used)
            oldest = i;
    }
    if (!create)
        return NULL;
    rl_bucket *b = rl->nbuckets < RL_BUCKETS ? &rl->buckets[rl->nbuckets++] : &rl->buckets[oldest];
    memset(b, 0, sizeof(*b));
    rt_strlcpy(b->key, key, sizeof(b->key));
    b->remaining = -1;
    b->used = now;
    return b;
}

int64_t discord_rl_wait(discord_rl *rl, const char *route, const char *major, int64_t now)
{
    if (now < rl->global_until)
        return rl->global_until - now;
    rl_bucket *b = find(rl, route, major, false, now);
    if (!b)
        return 0;
    b->used = now;
    if (b->remaining >= 0 && now >= b->reset_at)
        b->remaining = -1; /* the window is over: unknown until the next answer */
    if (b->remaining == 0)
        return b->reset_at - now;
    if (b->remaining > 0)
        b->remaining--;
    return 0;
}

void discord_rl_update(discord_rl *rl, const char *route, const char *major, const char *bucket,
                       int64_t remaining, double reset_after_s, bool is429, double retry_after_s,
                       bool global, int64_t now)
{
    if (bucket && *bucket) {
        size_t i = 0;
        for (; i < rl->nroutes; i++)
            if (strcmp(rl->routes[i].route, route) == 0)
                break;
        if (i == rl->nroutes) {
            if (rl->nroutes < RL_ROUTES)
                rl->nroutes++;
            else
                i = rl->next_route++ % RL_ROUTES;
            rt_strlcpy(rl->routes[i].route, route, sizeof(rl->routes[i].route));
        }
        rt_strlcpy(rl->routes[i].bucket, bucket, sizeof(rl->routes[i].bucket));
    }
    if (retry_after_s > 3600)
        retry_after_s = 3600;
    if (reset_after_s > 3600)
        reset_after_s = 3600;
    if (is429 && global) {
        rl->global_until = now + (int64_t)(retry_after_s * 1e9);
        return;
    }
    rl_bucket *b = find(rl, route, major, true, now);
    b->used = now;
    if (is429) {
        b->remaining = 0;
        b->reset_at = now + (int64_t)((retry_after_s > 0 ? retry_after_s : 1.0) * 1e9);
        return;
    }
    if (remaining >= 0 && reset_after_s >= 0) {
        b->remaining = remaining;
        b->reset_at = now + (int64_t)(reset_after_s * 1e9);
    }
}

/* ================================================================ catching up */

bool discord_id_ok(const char *s)
{
    if (!s || !*s || strlen(s) >= DISCORD_ID_MAX)
        return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

int discord_id_cmp(const char *a, const char *b)
{
    while (*a == '0' && a[1])
        a++;
    while (*b == '0' && b[1])
        b++;
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    int c = strcmp(a, b);
    return c < 0 ? -1 : c > 0;
}

void discord_snowflake_at(int64_t unix_ms, char *out, size_t outlen)
{
    int64_t d = unix_ms - DISCORD_EPOCH_MS;
    if (d < 0)
        d = 0;
    snprintf(out, outlen, "%llu", (unsigned long long)((uint64_t)d << 22));
}

char *discord_state_format(const char *bot_user, const discord_mark *m, size_t n)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "bot_user", bot_user ? bot_user : "");
    cJSON *arr = cJSON_AddArrayToObject(j, "channels");
    for (size_t i = 0; i < n; i++) {
        if (!discord_id_ok(m[i].channel) || !discord_id_ok(m[i].last))
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "channel", m[i].channel);
        if (m[i].guild[0])
            cJSON_AddStringToObject(o, "guild", m[i].guild);
        if (m[i].parent[0])
            cJSON_AddStringToObject(o, "parent", m[i].parent);
        cJSON_AddStringToObject(o, "last", m[i].last);
        cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char *out = rt_xasprintf("%s\n", s);
    cJSON_free(s);
    return out;
}

/* An optional id field: absent is "", a bad one fails. */
static bool opt_id(const cJSON *o, const char *k, char *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    out[0] = '\0';
    if (!v)
        return true;
    if (!cJSON_IsString(v) || !discord_id_ok(v->valuestring))
        return false;
    rt_strlcpy(out, v->valuestring, DISCORD_ID_MAX);
    return true;
}

int discord_state_parse(const char *text, char *bot_user, size_t bulen, discord_mark *m, size_t max,
                        size_t *n)
{
    *n = 0;
    if (bulen)
        bot_user[0] = '\0';
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    const cJSON *bu = cJSON_GetObjectItemCaseSensitive(j, "bot_user");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "channels");
    if (!cJSON_IsObject(j) || !cJSON_IsString(bu) || !cJSON_IsArray(arr)) {
        cJSON_Delete(j);
        return -EINVAL;
    }
    rt_strlcpy(bot_user, bu->valuestring, bulen);
    const cJSON *o;
    cJSON_ArrayForEach(o, arr)
    {
        if (*n >= max)
            break;
        discord_mark k;
        memset(&k, 0, sizeof(k));
        if (!opt_id(o, "channel", k.channel) || !k.channel[0] || !opt_id(o, "last", k.last) ||
            !k.last[0] || !opt_id(o, "guild", k.guild) || !opt_id(o, "parent", k.parent))
            continue; /* a damaged entry is skipped, the rest kept */
        m[(*n)++] = k;
    }
    cJSON_Delete(j);
    return 0;
}
