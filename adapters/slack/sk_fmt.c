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
    f->subtype = jstr(ev, "subtype");
    f->channel = jstr(ev, "channel");
    f->channel_type = jstr(ev, "channel_type");
    f->user = jstr(ev, "user");
    f->bot_id = jstr(ev, "bot_id");
    f->text = jstr(ev, "text");
    f->ts = jstr(ev, "ts");
    f->thread_ts = jstr(ev, "thread_ts");
    f->team = jstr(ev, "team");
    if (!f->team)
        f->team = jstr(payload, "team_id");
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
