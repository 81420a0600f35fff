/*
 * tg_update — reading the Bot API's Update objects, the group rules, and the state file.
 *
 * Message entities count UTF-16 code units (Bot API "MessageEntity"); utf16_span turns such
 * an (offset, length) into bytes of the UTF-8 text, refusing spans outside the text.
 *
 * Pure functions; any thread.
 */
#include "telegram.h"

#include "rt_alloc.h"
#include "rt_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const cJSON *jget(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = jget(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An integer field (Telegram ids fit in 52 bits, so a double holds them exactly). */
static bool jint(const cJSON *o, const char *k, int64_t *out)
{
    const cJSON *v = jget(o, k);
    if (!cJSON_IsNumber(v) || v->valuedouble != v->valuedouble || v->valuedouble > 9.0e15 ||
        v->valuedouble < -9.0e15)
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

/* Byte span of UTF-16 units [off, off+len) in s; false if outside. */
static bool utf16_span(const char *s, int64_t off, int64_t len, size_t *bs, size_t *be)
{
    if (off < 0 || len <= 0)
        return false;
    int64_t u = 0;
    size_t i = 0, n = strlen(s);
    bool got_start = false;
    while (i <= n) {
        if (!got_start && u == off) {
            *bs = i;
            got_start = true;
        }
        if (got_start && u == off + len) {
            *be = i;
            return true;
        }
        if (i == n || u > off + len)
            break;
        unsigned char c = (unsigned char)s[i];
        size_t cl = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        u += cl == 4 ? 2 : 1;
        i += cl;
        if (i > n)
            break;
    }
    return false;
}

static void scan_entities(const cJSON *ents, const char *text, const char *bot_username,
                          int64_t bot_id, tg_update *out)
{
    const cJSON *e;
    size_t ulen = bot_username ? strlen(bot_username) : 0;
    cJSON_ArrayForEach(e, ents)
    {
        const char *type = jstr(e, "type");
        int64_t off = 0, len = 0, uid = 0;
        if (!type || !jint(e, "offset", &off) || !jint(e, "length", &len))
            continue;
        if (strcmp(type, "text_mention") == 0) {
            if (jint(jget(e, "user"), "id", &uid) && bot_id && uid == bot_id)
                out->mentions_bot = true;
            continue;
        }
        bool mention = strcmp(type, "mention") == 0;
        bool command = strcmp(type, "bot_command") == 0;
        if ((!mention && !command) || !ulen)
            continue;
        size_t bs = 0, be = 0;
        if (!utf16_span(text, off, len, &bs, &be))
            continue;
        const char *at = memchr(text + bs, '@', be - bs);
        if (!at)
            continue; /* "/cmd" without a bot name: not a mention */
        size_t nl = (size_t)(text + be - at - 1);
        if (nl == ulen && strncasecmp(at + 1, bot_username, ulen) == 0)
            out->mentions_bot = true;
    }
}

static int media_of(const cJSON *m, tg_update *out)
{
    static const struct {
        const char *key;
        int media;
    } kinds[] = {{"voice", TG_MEDIA_VOICE},       {"audio", TG_MEDIA_AUDIO},
                 {"video", TG_MEDIA_VIDEO},       {"video_note", TG_MEDIA_VIDEO},
                 {"document", TG_MEDIA_DOCUMENT}, {"photo", TG_MEDIA_PHOTO}};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        const cJSON *v = jget(m, kinds[k].key);
        if (!v)
            continue;
        if (cJSON_IsArray(v)) { /* photo: sizes, smallest first; take the largest */
            int n = cJSON_GetArraySize(v);
            v = n > 0 ? cJSON_GetArrayItem(v, n - 1) : NULL;
        }
        const char *fid = jstr(v, "file_id");
        if (!fid || !*fid)
            continue;
        out->media = kinds[k].media;
        out->file_id = rt_xstrdup(fid);
        out->file_name = dupn(jstr(v, "file_name"));
        if (!jint(v, "file_size", &out->file_size))
            out->file_size = 0;
        return 0;
    }
    return 0;
}

int tg_update_parse(const cJSON *u, const char *bot_username, int64_t bot_id, tg_update *out)
{
    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(u) || !jint(u, "update_id", &out->update_id))
        return -EINVAL;
    const cJSON *m = jget(u, "message");
    const cJSON *chat = jget(m, "chat");
    const cJSON *from = jget(m, "from");
    int64_t cid = 0;
    if (!cJSON_IsObject(m) || !jint(chat, "id", &cid) || !jint(from, "id", &out->from_id) ||
        !jint(m, "message_id", &out->message_id))
        return 0; /* not a message we handle (a service update, a channel post) */
    out->has_message = true;
    char num[32];
    snprintf(num, sizeof(num), "%" PRId64, cid);
    out->chat_id = rt_xstrdup(num);
    out->chat_type = rt_xstrdup(jstr(chat, "type") ? jstr(chat, "type") : "private");
    const char *title = jstr(chat, "title");
    if (!title)
        title = jstr(chat, "first_name");
    out->chat_title = dupn(title);
    int64_t tid = 0;
    if (cJSON_IsTrue(jget(m, "is_topic_message")) && jint(m, "message_thread_id", &tid)) {
        snprintf(num, sizeof(num), "%" PRId64, tid);
        out->thread_id = rt_xstrdup(num);
    }
    out->from_is_bot = cJSON_IsTrue(jget(from, "is_bot"));
    const char *un = jstr(from, "username");
    if (un && *un) {
        out->from_name = rt_xstrdup(un);
    } else {
        const char *fn = jstr(from, "first_name"), *ln = jstr(from, "last_name");
        out->from_name = fn ? (ln ? rt_xasprintf("%s %s", fn, ln) : rt_xstrdup(fn)) : NULL;
    }
    const char *text = jstr(m, "text");
    const cJSON *ents = jget(m, "entities");
    if (!text) {
        text = jstr(m, "caption");
        ents = jget(m, "caption_entities");
    }
    out->text = rt_xstrdup(text ? text : "");
    scan_entities(ents, out->text, bot_username, bot_id, out);
    int64_t rid = 0;
    const cJSON *rep = jget(m, "reply_to_message");
    /* a reply inside a forum topic carries the topic's first message as reply_to_message:
     * that is not a reply to the bot unless the bot wrote it */
    if (bot_id && jint(jget(rep, "from"), "id", &rid) && rid == bot_id)
        out->replies_to_bot = true;
    return media_of(m, out);
}

void tg_update_fini(tg_update *u)
{
    rt_free(u->chat_id);
    rt_free(u->chat_type);
    rt_free(u->chat_title);
    rt_free(u->thread_id);
    rt_free(u->from_name);
    rt_free(u->text);
    rt_free(u->file_id);
    rt_free(u->file_name);
    memset(u, 0, sizeof(*u));
}

static bool in_list(char *const *v, const char *s)
{
    for (size_t i = 0; v && s && v[i]; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

bool tg_addressed(const tg_update *u, const tg_rules *r)
{
    if (!u->has_message || u->from_is_bot || (r->bot_id && u->from_id == r->bot_id))
        return false;
    if (strcmp(u->chat_type, "private") == 0)
        return true;
    if (strcmp(u->chat_type, "channel") == 0)
        return false;
    if (u->thread_id && in_list(r->ignored_threads, u->thread_id))
        return false;
    if (u->mentions_bot || u->replies_to_bot)
        return true;
    return !r->require_mention || in_list(r->free_chats, u->chat_id);
}

const char *tg_chat_type(const char *t)
{
    if (!t || strcmp(t, "private") == 0)
        return "dm";
    if (strcmp(t, "channel") == 0)
        return "channel";
    return "group";
}

int tg_state_parse(const char *text, int64_t *bot_id, int64_t *offset)
{
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    int64_t b = 0, o = 0;
    bool ok = cJSON_IsObject(j) && jint(j, "offset", &o) && o >= 0;
    if (ok && !jint(j, "bot_id", &b))
        b = 0;
    cJSON_Delete(j);
    if (!ok)
        return -EINVAL;
    *bot_id = b;
    *offset = o;
    return 0;
}

char *tg_state_format(int64_t bot_id, int64_t offset)
{
    return rt_xasprintf("{\"bot_id\":%" PRId64 ",\"offset\":%" PRId64 "}\n", bot_id, offset);
}
