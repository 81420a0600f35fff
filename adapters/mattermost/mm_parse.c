/* mm_parse — see mm_parse.h. */
#include "mm_parse.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TEXT_MAX (4u << 20) /* cap on any text built here */

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t jint(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(v))
        return (int64_t)v->valuedouble;
    int64_t x = 0;
    if (cJSON_IsString(v) && rt_parse_i64(v->valuestring, INT64_MIN, INT64_MAX, &x) == 0)
        return x;
    return 0;
}

/* A non-empty id of sane length, copied; NULL otherwise. */
static char *id_of(const cJSON *o, const char *key, bool *bad)
{
    const char *s = jstr(o, key);
    if (!s || !*s)
        return NULL;
    if (strlen(s) > MM_ID_MAX) {
        *bad = true;
        return NULL;
    }
    return rt_xstrdup(s);
}

/* ================================================================ posts */

int mm_post_from_json(const cJSON *o, mm_post *p)
{
    memset(p, 0, sizeof(*p));
    if (!cJSON_IsObject(o))
        return -EBADMSG;
    bool bad = false;
    p->id = id_of(o, "id", &bad);
    p->channel_id = id_of(o, "channel_id", &bad);
    p->user_id = id_of(o, "user_id", &bad);
    p->root_id = id_of(o, "root_id", &bad);
    const char *msg = jstr(o, "message");
    p->message = rt_xstrdup(msg ? msg : "");
    const char *type = jstr(o, "type");
    p->type = type && *type ? rt_xstrdup(type) : NULL;
    p->create_at = jint(o, "create_at");
    p->update_at = jint(o, "update_at");
    p->delete_at = jint(o, "delete_at");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "file_ids");
    const cJSON *it;
    cJSON_ArrayForEach(it, f)
    {
        if (p->nfiles == MM_FILES_MAX)
            break;
        if (cJSON_IsString(it) && *it->valuestring && strlen(it->valuestring) <= MM_ID_MAX)
            p->file_ids[p->nfiles++] = rt_xstrdup(it->valuestring);
    }
    if (bad || !p->id || !p->channel_id || !p->user_id)
        return -EBADMSG;
    return 0;
}

void mm_post_fini(mm_post *p)
{
    rt_free(p->id);
    rt_free(p->channel_id);
    rt_free(p->user_id);
    rt_free(p->root_id);
    rt_free(p->message);
    rt_free(p->type);
    for (size_t i = 0; i < p->nfiles; i++)
        rt_free(p->file_ids[i]);
    memset(p, 0, sizeof(*p));
}

static int parse_posted(const cJSON *data, mm_wsmsg *m)
{
    const char *raw = jstr(data, "post");
    if (!raw)
        return -EBADMSG;
    cJSON *post = cJSON_Parse(raw); /* data.post is a JSON string holding the post */
    int rc = mm_post_from_json(post, &m->post);
    cJSON_Delete(post);
    if (rc)
        return rc;
    m->has_post = true;
    const char *ct = jstr(data, "channel_type");
    m->channel_type = rt_xstrdup(ct && *ct ? ct : "O");
    const char *sn = jstr(data, "sender_name");
    if (sn && *sn == '@')
        sn++;
    m->sender_name = sn && *sn ? rt_xstrdup(sn) : NULL;
    m->channel_display_name = dupn(jstr(data, "channel_display_name"));
    m->channel_name = dupn(jstr(data, "channel_name"));
    return 0;
}

int mm_wsmsg_parse(const char *data, size_t len, mm_wsmsg *m)
{
    memset(m, 0, sizeof(*m));
    m->seq = m->seq_reply = -1;
    cJSON *j = cJSON_ParseWithLength(data, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return -EBADMSG;
    }
    int rc = 0;
    const char *ev = jstr(j, "event");
    const cJSON *sr = cJSON_GetObjectItemCaseSensitive(j, "seq_reply");
    if (ev) {
        m->kind = MM_WS_EVENT;
        m->event = rt_xstrdup(ev);
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
        if (cJSON_IsNumber(seq))
            m->seq = (int64_t)seq->valuedouble;
        if (strcmp(ev, "posted") == 0)
            rc = parse_posted(cJSON_GetObjectItemCaseSensitive(j, "data"), m);
    } else if (cJSON_IsNumber(sr) || jstr(j, "status")) {
        m->kind = MM_WS_REPLY;
        m->seq_reply = cJSON_IsNumber(sr) ? (int64_t)sr->valuedouble : -1;
        const char *st = jstr(j, "status");
        m->ok = st && strcmp(st, "OK") == 0;
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        m->error_id = dupn(jstr(e, "id"));
    } else {
        rc = -EBADMSG;
    }
    cJSON_Delete(j);
    return rc;
}

void mm_wsmsg_fini(mm_wsmsg *m)
{
    rt_free(m->event);
    rt_free(m->error_id);
    mm_post_fini(&m->post);
    rt_free(m->channel_type);
    rt_free(m->sender_name);
    rt_free(m->channel_display_name);
    rt_free(m->channel_name);
    memset(m, 0, sizeof(*m));
}

static int post_cmp(const void *a, const void *b)
{
    const mm_post *x = a, *y = b;
    if (x->create_at != y->create_at)
        return x->create_at < y->create_at ? -1 : 1;
    return strcmp(x->id, y->id);
}

int mm_postlist_parse(const char *body, mm_post **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    const cJSON *posts = cJSON_GetObjectItemCaseSensitive(j, "posts");
    if (!cJSON_IsObject(j) || !(cJSON_IsObject(posts) || cJSON_IsNull(posts) || !posts)) {
        cJSON_Delete(j);
        return -EBADMSG;
    }
    size_t cap = (size_t)cJSON_GetArraySize(posts);
    mm_post *v = rt_xcalloc(cap ? cap : 1, sizeof(*v));
    size_t k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, posts)
    {
        if (k < cap && mm_post_from_json(it, &v[k]) == 0)
            k++;
        else if (k < cap)
            mm_post_fini(&v[k]);
    }
    qsort(v, k, sizeof(*v), post_cmp);
    cJSON_Delete(j);
    *out = v;
    *n = k;
    return 0;
}

void mm_posts_free(mm_post *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mm_post_fini(&p[i]);
    rt_free(p);
}

int mm_channels_parse(const char *body, mm_channel **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    if (!cJSON_IsArray(j)) {
        cJSON_Delete(j);
        return -EBADMSG;
    }
    size_t cap = (size_t)cJSON_GetArraySize(j);
    mm_channel *v = rt_xcalloc(cap ? cap : 1, sizeof(*v));
    size_t k = 0;
    bool bad = false;
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        char *id = id_of(it, "id", &bad);
        if (!id)
            continue;
        v[k].id = id;
        const char *t = jstr(it, "type");
        v[k].type = rt_xstrdup(t && *t ? t : "O");
        v[k].display_name = dupn(jstr(it, "display_name"));
        v[k].name = dupn(jstr(it, "name"));
        v[k].last_post_at = jint(it, "last_post_at");
        k++;
    }
    cJSON_Delete(j);
    *out = v;
    *n = k;
    return 0;
}

void mm_channels_free(mm_channel *c, size_t n)
{
    for (size_t i = 0; c && i < n; i++) {
        rt_free(c[i].id);
        rt_free(c[i].type);
        rt_free(c[i].display_name);
        rt_free(c[i].name);
    }
    rt_free(c);
}

char **mm_team_ids_parse(const char *body, size_t *n)
{
    *n = 0;
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    if (!cJSON_IsArray(j)) {
        cJSON_Delete(j);
        return NULL;
    }
    size_t cap = (size_t)cJSON_GetArraySize(j);
    char **v = rt_xcalloc(cap + 1, sizeof(*v));
    bool bad = false;
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        char *id = id_of(it, "id", &bad);
        if (id)
            v[(*n)++] = id;
    }
    cJSON_Delete(j);
    return v;
}

const char *mm_chat_type(const char *code)
{
    if (code && strcmp(code, "D") == 0)
        return "dm";
    if (code && (strcmp(code, "P") == 0 || strcmp(code, "G") == 0))
        return "group";
    return "channel";
}

char *mm_app_error_id(const char *body, char **message)
{
    if (message)
        *message = NULL;
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    char *id = dupn(jstr(j, "id"));
    if (message)
        *message = dupn(jstr(j, "message"));
    cJSON_Delete(j);
    return id;
}

/* ================================================================ mentions */

/* Characters that continue a word for Mattermost's mention parser (bytes >= 0x80 are parts
 * of non-ASCII letters). */
static bool word_char(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_' || c == ':' || c == '@' || c >= 0x80;
}

static bool trailing_punct(unsigned char c)
{
    return c == '.' || c == '-' || c == '_' || c == ':';
}

/* Does text[at] (an '@') start a mention of name? Returns the length of "@name" or 0. */
static size_t mention_at(const char *text, size_t at, const char *name)
{
    size_t nl = name ? strlen(name) : 0;
    if (!nl || (at > 0 && word_char((unsigned char)text[at - 1])))
        return 0;
    if (strncasecmp(text + at + 1, name, nl) != 0)
        return 0;
    /* the rest of the word may only be trailing punctuation */
    size_t i = at + 1 + nl;
    while (word_char((unsigned char)text[i])) {
        if (!trailing_punct((unsigned char)text[i]))
            return 0;
        i++;
    }
    return 1 + nl;
}

static size_t mention_any(const char *text, size_t at, const char *username, const char *user_id)
{
    size_t n = mention_at(text, at, username);
    return n ? n : mention_at(text, at, user_id);
}

bool mm_mentions(const char *text, const char *username, const char *user_id)
{
    if (!text)
        return false;
    for (size_t i = 0; text[i]; i++)
        if (text[i] == '@' && mention_any(text, i, username, user_id))
            return true;
    return false;
}

char *mm_trim(const char *s)
{
    if (!s)
        return rt_xstrdup("");
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return rt_xstrndup(s, n);
}

char *mm_strip_mentions(const char *text, const char *username, const char *user_id)
{
    if (!text)
        return rt_xstrdup("");
    rt_buf b;
    rt_buf_init(&b, TEXT_MAX);
    size_t i = 0, from = 0;
    while (text[i]) {
        size_t n = text[i] == '@' ? mention_any(text, i, username, user_id) : 0;
        if (n) {
            (void)rt_buf_append(&b, text + from, i - from);
            i += n;
            from = i;
        } else {
            i++;
        }
    }
    (void)rt_buf_append(&b, text + from, i - from);
    char *out = mm_trim(rt_buf_cstr(&b));
    rt_buf_fini(&b);
    return out;
}

/* ================================================================ replies */

const char *mm_reply_root(bool thread_mode, const char *thread_id, const char *reply_to)
{
    if (thread_id && *thread_id)
        return thread_id;
    if (thread_mode && reply_to && *reply_to)
        return reply_to;
    return NULL;
}

char *mm_format(const char *text)
{
    rt_buf b;
    rt_buf_init(&b, TEXT_MAX);
    const char *p = text ? text : "";
    while (*p) {
        if (p[0] == '!' && p[1] == '[') {
            const char *close = strchr(p + 2, ']');
            if (close && !memchr(p + 2, '\n', (size_t)(close - p - 2)) && close[1] == '(') {
                const char *end = strchr(close + 2, ')');
                if (end && end > close + 2 && !memchr(close + 2, '\n', (size_t)(end - close - 2))) {
                    (void)rt_buf_append(&b, close + 2, (size_t)(end - close - 2));
                    p = end + 1;
                    continue;
                }
            }
        }
        (void)rt_buf_append(&b, p, 1);
        p++;
    }
    size_t len = 0;
    return rt_buf_steal(&b, &len);
}

void mm_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        rt_free(v[i]);
    rt_free(v);
}

static bool is_quote(char c)
{
    return c == '"' || c == '\'' || c == '`';
}

/* One MEDIA: tag at p (which points at "MEDIA:"): its path (new string) and the end of the
 * tag, or NULL when no path follows. */
static char *media_path_at(const char *p, const char **end)
{
    const char *s = p + 6;
    while (*s == ' ' || *s == '\t')
        s++;
    const char *e;
    if (is_quote(*s)) {
        char q = *s++;
        e = strchr(s, q);
        if (!e || memchr(s, '\n', (size_t)(e - s)))
            return NULL;
        *end = e + 1;
    } else {
        e = s;
        while (*e && !isspace((unsigned char)*e) && !is_quote(*e))
            e++;
        *end = e;
    }
    if (e == s)
        return NULL;
    return rt_xstrndup(s, (size_t)(e - s));
}

char *mm_extract_media(const char *text, const char *home, char ***paths, size_t max_paths)
{
    *paths = NULL;
    size_t n = 0;
    rt_buf b;
    rt_buf_init(&b, TEXT_MAX);
    const char *p = text ? text : "";
    while (*p) {
        if (strncmp(p, "[[audio_as_voice]]", 18) == 0) {
            p += 18;
            continue;
        }
        const char *end = NULL;
        char *path = strncmp(p, "MEDIA:", 6) == 0 ? media_path_at(p, &end) : NULL;
        if (!path) {
            (void)rt_buf_append(&b, p, 1);
            p++;
            continue;
        }
        /* a quote or back-tick right before the tag belongs to it, as does one right after */
        if (b.len && is_quote(b.data[b.len - 1]))
            b.data[--b.len] = '\0';
        if (is_quote(*end))
            end++;
        p = end;
        if (path[0] == '~' && path[1] == '/' && home) {
            char *full = rt_xasprintf("%s%s", home, path + 1);
            rt_free(path);
            path = full;
        }
        if (n < max_paths) {
            *paths = rt_xrealloc(*paths, (n + 2) * sizeof(**paths));
            (*paths)[n++] = path;
            (*paths)[n] = NULL;
        } else {
            rt_free(path);
        }
    }
    char *out = mm_trim(rt_buf_cstr(&b));
    rt_buf_fini(&b);
    return out;
}

const char *mm_mime_for(const char *name)
{
    static const struct {
        const char *ext, *mime;
    } map[] = {
        {"png", "image/png"},         {"jpg", "image/jpeg"},        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},         {"webp", "image/webp"},       {"svg", "image/svg+xml"},
        {"mp3", "audio/mpeg"},        {"ogg", "audio/ogg"},         {"opus", "audio/opus"},
        {"wav", "audio/x-wav"},       {"m4a", "audio/mp4"},         {"flac", "audio/flac"},
        {"mp4", "video/mp4"},         {"mov", "video/quicktime"},   {"webm", "video/webm"},
        {"mkv", "video/x-matroska"},  {"avi", "video/x-msvideo"},   {"pdf", "application/pdf"},
        {"txt", "text/plain"},        {"md", "text/markdown"},      {"csv", "text/csv"},
        {"json", "application/json"}, {"html", "text/html"},        {"zip", "application/zip"},
        {"gz", "application/gzip"},   {"tar", "application/x-tar"}, {"py", "text/x-python"},
    };
    const char *dot = name ? strrchr(name, '.') : NULL;
    const char *slash = name ? strrchr(name, '/') : NULL;
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < RT_ARRAY_LEN(map); i++)
            if (strcasecmp(dot + 1, map[i].ext) == 0)
                return map[i].mime;
    return "application/octet-stream";
}

char *mm_multipart(const char *boundary, const char *channel_id, const char *filename,
                   const char *mime, const void *data, size_t dlen, size_t *len)
{
    char *fname = mm_safe_name(filename);
    char *head = rt_xasprintf("--%s\r\nContent-Disposition: form-data; name=\"channel_id\"\r\n\r\n"
                              "%s\r\n--%s\r\nContent-Disposition: form-data; name=\"files\"; "
                              "filename=\"%s\"\r\nContent-Type: %s\r\n\r\n",
                              boundary, channel_id, boundary, fname, mime);
    char *tail = rt_xasprintf("\r\n--%s--\r\n", boundary);
    size_t hl = strlen(head), tl = strlen(tail);
    char *out = rt_xmalloc(hl + dlen + tl + 1);
    memcpy(out, head, hl);
    if (dlen)
        memcpy(out + hl, data, dlen);
    memcpy(out + hl + dlen, tail, tl + 1);
    *len = hl + dlen + tl;
    rt_free(fname);
    rt_free(head);
    rt_free(tail);
    return out;
}

char *mm_upload_file_id(const char *body)
{
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    const cJSON *infos = cJSON_GetObjectItemCaseSensitive(j, "file_infos");
    bool bad = false;
    char *id = id_of(cJSON_GetArrayItem(infos, 0), "id", &bad);
    cJSON_Delete(j);
    return id;
}

char *mm_safe_name(const char *name)
{
    const char *base = name ? strrchr(name, '/') : NULL;
    base = base ? base + 1 : (name ? name : "");
    size_t n = strlen(base);
    if (n > 100)
        base += n - 100; /* keep the end: the extension matters */
    char *out = rt_xstrdup(base);
    for (char *p = out; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
            *p = '_';
    if (!*out || strcmp(out, ".") == 0 || strcmp(out, "..") == 0) {
        rt_free(out);
        out = rt_xstrdup("file");
    }
    return out;
}

/* ================================================================ state */

void mm_state_init(mm_state *s)
{
    memset(s, 0, sizeof(*s));
}

void mm_state_fini(mm_state *s)
{
    rt_free(s->server);
    rt_free(s->user_id);
    rt_free(s->seen);
    memset(s, 0, sizeof(*s));
}

int mm_state_parse(const char *json, mm_state *s)
{
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return -EBADMSG;
    }
    rt_free(s->server);
    rt_free(s->user_id);
    s->server = dupn(jstr(j, "server"));
    s->user_id = dupn(jstr(j, "user_id"));
    s->mark = jint(j, "last_post_at");
    s->n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "seen"))
    {
        const cJSON *id = cJSON_GetArrayItem(it, 0), *at = cJSON_GetArrayItem(it, 1);
        if (cJSON_IsString(id) && cJSON_IsNumber(at) && strlen(id->valuestring) <= MM_ID_MAX)
            mm_state_add(s, id->valuestring, (int64_t)at->valuedouble);
    }
    cJSON_Delete(j);
    return 0;
}

char *mm_state_json(const mm_state *s)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "version", 1);
    if (s->server)
        cJSON_AddStringToObject(j, "server", s->server);
    if (s->user_id)
        cJSON_AddStringToObject(j, "user_id", s->user_id);
    cJSON_AddNumberToObject(j, "last_post_at", (double)s->mark);
    cJSON *seen = cJSON_AddArrayToObject(j, "seen");
    for (size_t i = 0; i < s->n; i++) {
        cJSON *e = cJSON_CreateArray();
        cJSON_AddItemToArray(e, cJSON_CreateString(s->seen[i].id));
        cJSON_AddItemToArray(e, cJSON_CreateNumber((double)s->seen[i].at));
        cJSON_AddItemToArray(seen, e);
    }
    char *txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char *out = rt_xstrdup(txt);
    cJSON_free(txt);
    return out;
}

bool mm_state_has(const mm_state *s, const char *id)
{
    for (size_t i = 0; id && i < s->n; i++)
        if (strcmp(s->seen[i].id, id) == 0)
            return true;
    return false;
}

void mm_state_add(mm_state *s, const char *id, int64_t at)
{
    if (!id || strlen(id) > MM_ID_MAX || mm_state_has(s, id))
        return;
    if (s->n == MM_SEEN_MAX) {
        /* forget the oldest */
        size_t old = 0;
        for (size_t i = 1; i < s->n; i++)
            if (s->seen[i].at < s->seen[old].at)
                old = i;
        s->seen[old] = s->seen[--s->n];
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 32;
        s->seen = rt_xrealloc(s->seen, s->cap * sizeof(*s->seen));
    }
    rt_strlcpy(s->seen[s->n].id, id, sizeof(s->seen[s->n].id));
    s->seen[s->n].at = at;
    s->n++;
}

void mm_state_prune(mm_state *s, int64_t t)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->seen[i].at >= t)
            s->seen[k++] = s->seen[i];
    s->n = k;
}

/* ================================================================ timing */

int64_t mm_backoff_next(int64_t cur, int64_t min, int64_t max)
{
    if (cur <= 0)
        return min;
    return cur >= max / 2 ? max : cur * 2;
}

int64_t mm_backoff_jitter(int64_t delay, uint64_t rnd)
{
    return delay + (int64_t)(rnd % (uint64_t)(delay / 5 + 1));
}

static int64_t header_int(const rt_http_header *h, size_t n, const char *name)
{
    for (size_t i = 0; h && i < n; i++) {
        if (strcasecmp(h[i].name, name) != 0)
            continue;
        int64_t v = 0;
        return rt_parse_i64(h[i].value, 0, INT64_MAX, &v) == 0 ? v : -1;
    }
    return -1;
}

int64_t mm_ratelimit_wait_ms(int status, const rt_http_header *h, size_t n, int64_t retry_after_s)
{
    int64_t reset = header_int(h, n, "X-RateLimit-Reset");
    int64_t wait_s = 0;
    if (status == 429) {
        wait_s = retry_after_s > reset ? retry_after_s : reset;
        if (wait_s < 1)
            wait_s = 1;
    } else if (header_int(h, n, "X-RateLimit-Remaining") == 0 && reset > 0) {
        wait_s = reset;
    }
    if (wait_s > 60)
        wait_s = 60;
    return wait_s * 1000;
}

char *mm_ws_url(const char *base)
{
    if (!base)
        return NULL;
    if (strncasecmp(base, "https://", 8) == 0)
        return rt_xasprintf("wss://%s/api/v4/websocket", base + 8);
    if (strncasecmp(base, "http://", 7) == 0)
        return rt_xasprintf("ws://%s/api/v4/websocket", base + 7);
    return NULL;
}
