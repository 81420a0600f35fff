/*
 * mx_rules — the original's rules for inbound Matrix messages (gateway.md §8.5), as pure
 * functions of an event's content: mentions, threads, replies, edits, message kinds, and the
 * gating/threading decision. No state, no I/O: tested case by case.
 */
#include "mx_int.h"

#include "rt_alloc.h"
#include "rt_buf.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const cJSON *jget(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = jget(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

char *mx_localpart(const char *user_id)
{
    if (!user_id)
        return rt_xstrdup("");
    const char *s = user_id[0] == '@' ? user_id + 1 : user_id;
    const char *colon = strchr(s, ':');
    return colon ? rt_xstrndup(s, (size_t)(colon - s)) : rt_xstrdup(s);
}

/* A word character as Python's \w sees ASCII (bytes of UTF-8 sequences count as letters). */
static bool word_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c >= 0x80;
}

/* needle in hay as a whole word, ASCII case-insensitive. */
static bool has_word(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    if (!n)
        return false;
    for (const char *p = hay; *p; p++) {
        if (strncasecmp(p, needle, n) != 0)
            continue;
        bool before = p == hay || !word_char((unsigned char)p[-1]);
        bool after = !word_char((unsigned char)p[n]);
        if (before && after)
            return true;
    }
    return false;
}

/* "matrix.to/#/@bot:server" (as Element writes pills) or its percent-encoded form. */
static bool has_pill(const char *html, const char *user_id)
{
    char plain[512];
    snprintf(plain, sizeof(plain), "matrix.to/#/%s", user_id);
    if (strstr(html, plain))
        return true;
    char *enc = mx_escape(user_id);
    snprintf(plain, sizeof(plain), "matrix.to/#/%s", enc);
    rt_free(enc);
    return strcasestr(html, plain) != NULL;
}

bool mx_is_mentioned(const cJSON *content, const char *user_id, const char *localpart)
{
    if (!user_id || !*user_id)
        return false;
    const cJSON *ids = jget(jget(content, "m.mentions"), "user_ids");
    const cJSON *id;
    cJSON_ArrayForEach(id, (cJSON_IsArray(ids) ? ids : NULL))
    {
        if (cJSON_IsString(id) && strcmp(id->valuestring, user_id) == 0)
            return true; /* MSC3952: authoritative */
    }
    const char *body = jstr(content, "body");
    if (body && strstr(body, user_id))
        return true;
    if (body && localpart && has_word(body, localpart))
        return true;
    const char *html = jstr(content, "formatted_body");
    return html && has_pill(html, user_id);
}

const char *mx_thread_of(const cJSON *content)
{
    const cJSON *rel = jget(content, "m.relates_to");
    const char *type = jstr(rel, "rel_type");
    if (!type || strcmp(type, "m.thread") != 0)
        return NULL;
    const char *root = jstr(rel, "event_id");
    return root && *root ? root : NULL;
}

const char *mx_reply_to_of(const cJSON *content)
{
    const char *id = jstr(jget(jget(content, "m.relates_to"), "m.in_reply_to"), "event_id");
    return id && *id ? id : NULL;
}

bool mx_is_edit(const cJSON *content)
{
    const char *type = jstr(jget(content, "m.relates_to"), "rel_type");
    return type && strcmp(type, "m.replace") == 0;
}

char *mx_strip_reply_fallback(const char *body)
{
    if (strncmp(body, "> ", 2) != 0)
        return rt_xstrdup(body);
    const char *p = body;
    while (*p == '>') { /* quoted lines */
        const char *nl = strchr(p, '\n');
        if (!nl)
            return rt_xstrdup("");
        p = nl + 1;
    }
    if (*p == '\n') /* the blank line after the quote */
        p++;
    return rt_xstrdup(p);
}

static char *trim_copy(const char *s, size_t len)
{
    while (len && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    return rt_xstrndup(s, len);
}

char *mx_strip_user_id(const char *text, const char *user_id)
{
    size_t n = user_id ? strlen(user_id) : 0;
    if (!n)
        return trim_copy(text, strlen(text));
    rt_buf b;
    rt_buf_init(&b, strlen(text) + 1);
    const char *p = text;
    for (const char *hit; (hit = strstr(p, user_id)) != NULL; p = hit + n)
        (void)rt_buf_append(&b, p, (size_t)(hit - p)); /* fits: shorter than text */
    (void)rt_buf_append_str(&b, p);
    char *out = trim_copy(rt_buf_cstr(&b), b.len);
    rt_buf_fini(&b);
    return out;
}

int mx_kind_of(const cJSON *content)
{
    const char *t = jstr(content, "msgtype");
    if (!t)
        return -1;
    if (strcmp(t, "m.text") == 0)
        return GW_KIND_TEXT;
    if (strcmp(t, "m.image") == 0)
        return GW_KIND_PHOTO;
    if (strcmp(t, "m.audio") == 0)
        return jget(content, "org.matrix.msc3245.voice") ? GW_KIND_VOICE : GW_KIND_AUDIO;
    if (strcmp(t, "m.video") == 0)
        return GW_KIND_VIDEO;
    if (strcmp(t, "m.file") == 0)
        return GW_KIND_DOCUMENT;
    return -1; /* m.notice (bots), m.emote, stickers, polls, … */
}

mx_route mx_route_decide(const mx_route_in *in)
{
    mx_route r = {0};
    /* DMs are never gated; rooms need a mention unless free or in a thread the bot is in */
    r.accept = in->dm || !in->require_mention || in->free_room ||
               (in->thread && in->thread_known) || in->mentioned;
    r.thread = in->thread;
    if (!r.thread) {
        if (in->dm && in->dm_mention_threads && in->mentioned)
            r.thread = in->event_id;
        else if (!in->dm && in->auto_thread)
            r.thread = in->event_id;
    }
    r.strip_mention = in->mentioned && in->require_mention;
    return r;
}
