/*
 * sk_fmt — the Slack adapter's pure helpers: Markdown → mrkdwn and the Socket Mode frame
 * parser (slack.h). No state, no I/O.
 *
 * The mrkdwn conversion works line by line: lines inside a ``` fence are copied as they
 * are; a heading line becomes bold; every other line is scanned once, left to right, with
 * code spans, links and Slack entities recognised before escaping and emphasis, which is the
 * order the original's placeholder passes give.
 */
#include "slack.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define MRKDWN_MAX (64u << 20)

static bool starts(const char *s, const char *e, const char *p)
{
    size_t n = strlen(p);
    return (size_t)(e - s) >= n && memcmp(s, p, n) == 0;
}

/* First occurrence of needle in [s, e), or NULL. */
static const char *find(const char *s, const char *e, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = s; p + n <= e; p++)
        if (memcmp(p, needle, n) == 0)
            return p;
    return NULL;
}

static void put(rt_buf *b, const char *s, size_t n)
{
    (void)rt_buf_append(b, s, n);
}

/* Escape &, <, > in [s, e) (keeping the three entities already escaped). */
static void esc(rt_buf *b, const char *s, const char *e)
{
    for (const char *p = s; p < e; p++) {
        if (*p == '&') {
            if (starts(p, e, "&amp;")) {
                put(b, p, 5);
                p += 4;
            } else if (starts(p, e, "&lt;") || starts(p, e, "&gt;")) {
                put(b, p, 4);
                p += 3;
            } else {
                put(b, "&amp;", 5);
            }
        } else if (*p == '<') {
            put(b, "&lt;", 4);
        } else if (*p == '>') {
            put(b, "&gt;", 4);
        } else {
            put(b, p, 1);
        }
    }
}

/* A Slack entity or manual link at p: <@…>, <#…>, <!…>, <http(s)|mailto|tel:…>. Returns the
 * end (past '>') or NULL. */
static const char *entity_end(const char *p, const char *e)
{
    if (p + 2 >= e || *p != '<')
        return NULL;
    const char *q = p + 1;
    if (!(*q == '@' || *q == '#' || *q == '!' || starts(q, e, "http://") ||
          starts(q, e, "https://") || starts(q, e, "mailto:") || starts(q, e, "tel:")))
        return NULL;
    const char *gt = memchr(q, '>', (size_t)(e - q));
    if (!gt || gt == q + 1 || memchr(q, '\n', (size_t)(gt - q)))
        return NULL;
    return gt + 1;
}

/* [label](url) at p: fills the parts and returns the end, or NULL. */
static const char *link_end(const char *p, const char *e, const char **l0, const char **l1,
                            const char **u0, const char **u1)
{
    if (*p != '[')
        return NULL;
    const char *q = p + 1;
    while (q < e && *q != ']' && *q != '[' && *q != '\n')
        q++;
    if (q >= e || *q != ']' || q == p + 1 || q + 1 >= e || q[1] != '(')
        return NULL;
    *l0 = p + 1;
    *l1 = q;
    const char *u = q + 2;
    int depth = 0;
    for (const char *r = u; r < e && *r != '\n'; r++) {
        if (*r == '(') {
            if (++depth > 1)
                return NULL;
        } else if (*r == ')') {
            if (depth == 0) {
                while (u < r && (*u == ' ' || *u == '\t'))
                    u++;
                const char *ue = r;
                while (ue > u && (ue[-1] == ' ' || ue[-1] == '\t'))
                    ue--;
                if (ue - u >= 2 && *u == '<' && ue[-1] == '>') {
                    u++;
                    ue--;
                }
                *u0 = u;
                *u1 = ue;
                return r + 1;
            }
            depth--;
        }
    }
    return NULL;
}

static void inline_md(rt_buf *b, const char *s, const char *e, bool emph);

/* Emphasis with marker m (e.g. "**") at p: the closing marker on the same line with a
 * non-empty inner part. Returns the closing marker's position or NULL. */
static const char *emph_close(const char *p, const char *e, const char *m)
{
    size_t n = strlen(m);
    const char *in = p + n;
    const char *c = find(in, e, m);
    if (!c || c == in)
        return NULL;
    return c;
}

static void inline_md(rt_buf *b, const char *s, const char *e, bool emph)
{
    const char *p = s;
    while (p < e) {
        const char *q;
        const char *l0, *l1, *u0, *u1;
        if (*p == '`') {
            const char *close = NULL;
            if (starts(p, e, "```")) {
                close = find(p + 3, e, "```");
                q = close ? close + 3 : NULL;
            } else {
                close = memchr(p + 1, '`', (size_t)(e - p - 1));
                q = close && close > p + 1 ? close + 1 : NULL;
            }
            if (q) {
                put(b, p, (size_t)(q - p));
                p = q;
                continue;
            }
        } else if (*p == '[' && (q = link_end(p, e, &l0, &l1, &u0, &u1))) {
            put(b, "<", 1);
            put(b, u0, (size_t)(u1 - u0));
            put(b, "|", 1);
            put(b, l0, (size_t)(l1 - l0));
            put(b, ">", 1);
            p = q;
            continue;
        } else if (*p == '<' && (q = entity_end(p, e))) {
            put(b, p, (size_t)(q - p));
            p = q;
            continue;
        } else if (emph && *p == '*') {
            const char *c;
            if (starts(p, e, "***") && (c = emph_close(p, e, "***"))) {
                put(b, "*_", 2);
                inline_md(b, p + 3, c, false);
                put(b, "_*", 2);
                p = c + 3;
                continue;
            }
            if (starts(p, e, "**") && (c = emph_close(p, e, "**"))) {
                put(b, "*", 1);
                inline_md(b, p + 2, c, false);
                put(b, "*", 1);
                p = c + 2;
                continue;
            }
            if (!starts(p, e, "**") && (p == s || p[-1] != '*') &&
                (c = memchr(p + 1, '*', (size_t)(e - p - 1))) && c > p + 1 &&
                (c + 1 >= e || c[1] != '*')) {
                put(b, "_", 1);
                inline_md(b, p + 1, c, false);
                put(b, "_", 1);
                p = c + 1;
                continue;
            }
            /* a lone '*' (or a run of them) stays */
            const char *r = p;
            while (r < e && *r == '*')
                r++;
            put(b, p, (size_t)(r - p));
            p = r;
            continue;
        } else if (emph && starts(p, e, "~~")) {
            const char *c = emph_close(p, e, "~~");
            if (c) {
                put(b, "~", 1);
                inline_md(b, p + 2, c, false);
                put(b, "~", 1);
                p = c + 2;
                continue;
            }
        }
        /* plain text up to the next special character */
        q = p + 1;
        while (q < e && !strchr("`[<*~&>", *q))
            q++;
        esc(b, p, q);
        p = q;
    }
}

/* "# Title" … "###### Title": returns the title's start, or NULL. */
static const char *heading(const char *s, const char *e)
{
    const char *p = s;
    while (p < e && *p == '#' && p - s < 7)
        p++;
    size_t n = (size_t)(p - s);
    if (n < 1 || n > 6 || p >= e || (*p != ' ' && *p != '\t'))
        return NULL;
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    return p < e ? p : NULL;
}

static bool fence_line(const char *s, const char *e)
{
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    return starts(s, e, "```");
}

/* Lines with an opening ``` and no closing one on the same line toggle the fence. */
static bool toggles_fence(const char *s, const char *e)
{
    int n = 0;
    for (const char *p = s; (p = find(p, e, "```")); p += 3)
        n++;
    return n % 2 == 1;
}

char *slack_mrkdwn(const char *md)
{
    if (!md)
        return rt_xstrdup("");
    rt_buf b;
    rt_buf_init(&b, MRKDWN_MAX);
    bool fence = false;
    const char *p = md;
    const char *end = md + strlen(md);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (fence) {
            put(&b, p, (size_t)(le - p));
            if (toggles_fence(p, le))
                fence = false;
        } else if (fence_line(p, le) && toggles_fence(p, le)) {
            put(&b, p, (size_t)(le - p));
            fence = true;
        } else {
            const char *h = heading(p, le);
            if (h) {
                const char *he = le;
                while (he > h && (he[-1] == ' ' || he[-1] == '\t' || he[-1] == '\r'))
                    he--;
                /* drop ** markers inside a heading: it is bold already */
                rt_buf inner;
                rt_buf_init(&inner, MRKDWN_MAX);
                for (const char *r = h; r < he; r++) {
                    if (starts(r, he, "**")) {
                        r++;
                        continue;
                    }
                    put(&inner, r, 1);
                }
                const char *is = rt_buf_cstr(&inner);
                put(&b, "*", 1);
                inline_md(&b, is, is + inner.len, false);
                put(&b, "*", 1);
                rt_buf_fini(&inner);
            } else {
                const char *q = p;
                while (q < le && *q == '>')
                    q++;
                if (q > p && q < le && (*q == ' ' || *q == '\t')) {
                    put(&b, p, (size_t)(q - p + 1)); /* a quote marker stays a quote */
                    q++;
                } else {
                    q = p;
                }
                inline_md(&b, q, le, true);
            }
        }
        if (nl)
            put(&b, "\n", 1);
        p = nl ? nl + 1 : end;
    }
    size_t len = 0;
    char *out = rt_buf_steal(&b, &len);
    rt_buf_fini(&b);
    return out ? out : rt_xstrdup("");
}

/* ================================================================ frames */

static char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring ? rt_xstrdup(v->valuestring) : NULL;
}

void slack_frame_fini(slack_frame *f)
{
    rt_free(f->type);
    rt_free(f->envelope_id);
    rt_free(f->reason);
    rt_free(f->event_type);
    rt_free(f->event_id);
    rt_free(f->subtype);
    rt_free(f->channel);
    rt_free(f->channel_type);
    rt_free(f->user);
    rt_free(f->bot_id);
    rt_free(f->text);
    rt_free(f->ts);
    rt_free(f->thread_ts);
    rt_free(f->team);
    for (size_t i = 0; i < f->nfiles; i++) {
        rt_free(f->file_url[i]);
        rt_free(f->file_name[i]);
        rt_free(f->file_mime[i]);
    }
    memset(f, 0, sizeof(*f));
}

/* The message fields of ev (an event, or a message from conversations.history/replies). */
static void message_fields(const cJSON *ev, slack_frame *f)
{
    f->subtype = jstr(ev, "subtype");
    f->channel = jstr(ev, "channel");
    f->channel_type = jstr(ev, "channel_type");
    f->user = jstr(ev, "user");
    f->bot_id = jstr(ev, "bot_id");
    f->text = jstr(ev, "text");
    f->ts = jstr(ev, "ts");
    f->thread_ts = jstr(ev, "thread_ts");
    f->team = jstr(ev, "team");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(ev, "files");
    const cJSON *fi;
    cJSON_ArrayForEach(fi, files)
    {
        if (f->nfiles >= sizeof(f->file_url) / sizeof(f->file_url[0]))
            break;
        char *url = jstr(fi, "url_private_download");
        if (!url)
            url = jstr(fi, "url_private");
        if (!url)
            continue;
        size_t i = f->nfiles++;
        f->file_url[i] = url;
        f->file_name[i] = jstr(fi, "name");
        f->file_mime[i] = jstr(fi, "mimetype");
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(fi, "size");
        f->file_size[i] = cJSON_IsNumber(sz) ? (int64_t)sz->valuedouble : -1;
    }
}

static void parse_event(const cJSON *payload, slack_frame *f)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(payload, "event");
    if (!cJSON_IsObject(ev))
        return;
    char *type = jstr(ev, "type");
    if (!type || (strcmp(type, "message") != 0 && strcmp(type, "app_mention") != 0)) {
        rt_free(type);
        return;
    }
    f->has_event = true;
    f->event_type = type;
    f->event_id = jstr(payload, "event_id");
    message_fields(ev, f);
    if (!f->team)
        f->team = jstr(payload, "team_id");
}

int slack_message_parse(const void *msg, const char *channel, bool dm, slack_frame *f)
{
    memset(f, 0, sizeof(*f));
    const cJSON *m = msg;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
    if (!cJSON_IsObject(m) || !channel || !cJSON_IsString(type) ||
        strcmp(type->valuestring, "message") != 0)
        return -EINVAL;
    f->type = rt_xstrdup("history");
    f->has_event = true;
    f->event_type = rt_xstrdup("message");
    message_fields(m, f);
    rt_free(f->channel);
    f->channel = rt_xstrdup(channel);
    if (!f->channel_type)
        f->channel_type = rt_xstrdup(dm ? "im" : "channel");
    if (!f->ts) {
        slack_frame_fini(f);
        return -EINVAL;
    }
    return 0;
}

/* "1700000000.000100": digits, one dot, digits; at most SLACK_TS_MAX - 1 characters. */
bool slack_ts_ok(const char *ts)
{
    if (!ts || !*ts || strlen(ts) >= SLACK_TS_MAX)
        return false;
    int dots = 0;
    for (const char *p = ts; *p; p++) {
        if (*p == '.')
            dots++;
        else if (*p < '0' || *p > '9')
            return false;
    }
    return dots <= 1 && ts[0] != '.';
}

int slack_ts_cmp(const char *a, const char *b)
{
    a = a ? a : "";
    b = b ? b : "";
    const char *da = strchr(a, '.'), *db = strchr(b, '.');
    size_t ia = da ? (size_t)(da - a) : strlen(a), ib = db ? (size_t)(db - b) : strlen(b);
    while (ia > 1 && *a == '0') {
        a++;
        ia--;
    }
    while (ib > 1 && *b == '0') {
        b++;
        ib--;
    }
    if (ia != ib)
        return ia < ib ? -1 : 1;
    int c = strncmp(a, b, ia);
    if (c)
        return c < 0 ? -1 : 1;
    const char *fa = da ? da + 1 : "", *fb = db ? db + 1 : "";
    /* fractions: compare digit by digit, a missing digit is 0 */
    while (*fa || *fb) {
        char x = *fa ? *fa++ : '0', y = *fb ? *fb++ : '0';
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

static bool id_ok(const char *s)
{
    if (!s || !*s || strlen(s) >= SLACK_ID_MAX)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z')))
            return false;
    return true;
}

char *slack_state_format(const char *bot_user, const slack_mark *m, size_t n)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "bot_user", bot_user ? bot_user : "");
    cJSON *arr = cJSON_AddArrayToObject(j, "conversations");
    for (size_t i = 0; i < n; i++) {
        if (!m[i].channel[0] || !m[i].last[0])
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "channel", m[i].channel);
        if (m[i].thread[0])
            cJSON_AddStringToObject(o, "thread_ts", m[i].thread);
        cJSON_AddStringToObject(o, "last_ts", m[i].last);
        if (m[i].dm)
            cJSON_AddTrueToObject(o, "dm");
        cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char *out = rt_xasprintf("%s\n", s);
    cJSON_free(s);
    return out;
}

int slack_state_parse(const char *text, char *bot_user, size_t bulen, slack_mark *m, size_t max,
                      size_t *n)
{
    *n = 0;
    if (bulen)
        bot_user[0] = '\0';
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    const cJSON *bu = cJSON_GetObjectItemCaseSensitive(j, "bot_user");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "conversations");
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
        const cJSON *ch = cJSON_GetObjectItemCaseSensitive(o, "channel");
        const cJSON *th = cJSON_GetObjectItemCaseSensitive(o, "thread_ts");
        const cJSON *last = cJSON_GetObjectItemCaseSensitive(o, "last_ts");
        if (!cJSON_IsString(ch) || !id_ok(ch->valuestring) || !cJSON_IsString(last) ||
            !slack_ts_ok(last->valuestring) ||
            (th && (!cJSON_IsString(th) || !slack_ts_ok(th->valuestring))))
            continue; /* a damaged entry is skipped, the rest kept */
        slack_mark *k = &m[(*n)++];
        memset(k, 0, sizeof(*k));
        rt_strlcpy(k->channel, ch->valuestring, sizeof(k->channel));
        if (th)
            rt_strlcpy(k->thread, th->valuestring, sizeof(k->thread));
        rt_strlcpy(k->last, last->valuestring, sizeof(k->last));
        k->dm = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "dm"));
    }
    cJSON_Delete(j);
    return 0;
}

int slack_frame_parse(const char *data, size_t len, slack_frame *f)
{
    memset(f, 0, sizeof(*f));
    cJSON *j = data ? cJSON_ParseWithLength(data, len) : NULL;
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return -EINVAL;
    }
    f->type = jstr(j, "type");
    if (!f->type) {
        cJSON_Delete(j);
        return -EINVAL;
    }
    f->envelope_id = jstr(j, "envelope_id");
    f->reason = jstr(j, "reason");
    const cJSON *ra = cJSON_GetObjectItemCaseSensitive(j, "retry_attempt");
    f->retry_attempt = cJSON_IsNumber(ra) ? (int)ra->valuedouble : 0;
    if (strcmp(f->type, "events_api") == 0)
        parse_event(cJSON_GetObjectItemCaseSensitive(j, "payload"), f);
    cJSON_Delete(j);
    return 0;
}
