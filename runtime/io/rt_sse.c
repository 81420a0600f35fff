/*
 * rt_sse — see rt_sse.h. Rule numbers below refer to the list in the header.
 *
 * The parser scans each chunk for line ends. A line that lies wholly inside one chunk is
 * interpreted straight from the caller's buffer; only a line that spans chunks is gathered
 * in p->line. Comment lines are recognised by their first byte and skipped as they stream
 * past, so keep-alive padding costs no memory.
 */
#include "rt_sse.h"

#include <errno.h>
#include <string.h>

static const unsigned char bom_bytes[3] = {0xEF, 0xBB, 0xBF};

void rt_sse_init(rt_sse *p, size_t max_event)
{
    if (max_event == 0)
        max_event = 1;
    p->max = max_event;
    rt_buf_init(&p->line, max_event + RT_SSE_LINE_SLACK);
    rt_buf_init(&p->data, max_event + 1); /* + the "\n" removed at dispatch */
    rt_buf_init(&p->type, max_event);
    rt_buf_init(&p->id, max_event);
    p->retry_ms = -1;
    p->err = 0;
    p->bom = 0;
    p->cr = false;
    p->skip = false;
}

void rt_sse_fini(rt_sse *p)
{
    rt_buf_fini(&p->line);
    rt_buf_fini(&p->data);
    rt_buf_fini(&p->type);
    rt_buf_fini(&p->id);
}

const char *rt_sse_last_id(const rt_sse *p)
{
    return rt_buf_cstr(&p->id);
}

/* Rule 5. */
static int dispatch(rt_sse *p, rt_sse_fn fn, void *arg)
{
    if (p->data.len == 0) {
        rt_buf_reset(&p->type);
        return 0;
    }
    p->data.len--; /* the last "\n" */
    p->data.data[p->data.len] = '\0';
    rt_sse_event ev = {
        .type = p->type.len ? p->type.data : "message",
        .data = p->data.data,
        .data_len = p->data.len,
        .id = rt_buf_cstr(&p->id),
        .retry_ms = p->retry_ms,
    };
    int rc = fn(arg, &ev);
    rt_buf_reset(&p->data);
    rt_buf_reset(&p->type);
    return rc;
}

/* retry: ASCII digits only, else ignored; saturates instead of overflowing. */
static void set_retry(rt_sse *p, const char *v, size_t n)
{
    if (n == 0)
        return;
    int64_t ms = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return;
        int d = v[i] - '0';
        ms = ms > (INT64_MAX - d) / 10 ? INT64_MAX : ms * 10 + d;
    }
    p->retry_ms = ms;
}

static bool field_is(const char *f, size_t n, const char *name)
{
    return strlen(name) == n && memcmp(f, name, n) == 0;
}

/* Rules 3 and 4 for one complete line (without its terminator). */
static int process_line(rt_sse *p, const char *line, size_t len, rt_sse_fn fn, void *arg)
{
    if (len == 0)
        return dispatch(p, fn, arg);
    if (line[0] == ':')
        return 0;
    const char *colon = memchr(line, ':', len);
    size_t flen = colon ? (size_t)(colon - line) : len;
    const char *v = colon ? colon + 1 : line + len;
    size_t vlen = len - (size_t)(v - line);
    if (vlen > 0 && v[0] == ' ') {
        v++;
        vlen--;
    }
    int err = 0;
    if (field_is(line, flen, "data")) {
        err = rt_buf_append(&p->data, v, vlen);
        if (!err)
            err = rt_buf_append(&p->data, "\n", 1);
    } else if (field_is(line, flen, "event")) {
        /* a type with a NUL could never be compared whole (as an id with one, it is ignored) */
        if (!memchr(v, '\0', vlen)) {
            rt_buf_reset(&p->type);
            err = rt_buf_append(&p->type, v, vlen);
        }
    } else if (field_is(line, flen, "id")) {
        if (!memchr(v, '\0', vlen)) {
            rt_buf_reset(&p->id);
            err = rt_buf_append(&p->id, v, vlen);
        }
    } else if (field_is(line, flen, "retry")) {
        set_retry(p, v, vlen);
    }
    return err;
}

/* Rule 2: the parser proper, after the BOM check. */
static int feed_lines(rt_sse *p, const char *s, size_t n, rt_sse_fn fn, void *arg)
{
    size_t i = 0;
    while (i < n) {
        if (p->cr) {
            p->cr = false;
            if (s[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t j = i;
        while (j < n && s[j] != '\n' && s[j] != '\r')
            j++;
        if (!p->skip && p->line.len == 0 && j > i && s[i] == ':')
            p->skip = true; /* a comment: never buffered */
        if (j == n) {
            /* The line goes on in the next chunk. */
            if (!p->skip && rt_buf_append(&p->line, s + i, j - i) < 0)
                return -E2BIG;
            return 0;
        }
        p->cr = s[j] == '\r';
        int rc = 0;
        if (p->skip) {
            p->skip = false;
        } else if (p->line.len == 0) {
            rc = j - i > p->line.max ? -E2BIG : process_line(p, s + i, j - i, fn, arg);
        } else {
            rc = rt_buf_append(&p->line, s + i, j - i);
            if (!rc)
                rc = process_line(p, p->line.data, p->line.len, fn, arg);
            rt_buf_reset(&p->line);
        }
        if (rc)
            return rc;
        i = j + 1;
    }
    return 0;
}

/* Rule 1: match the BOM byte by byte, as it may be split across chunks. */
static int skip_bom(rt_sse *p, const unsigned char **s, size_t *n, rt_sse_fn fn, void *arg)
{
    while (p->bom < 3 && *n > 0) {
        if (**s != bom_bytes[p->bom]) {
            /* Not a BOM: the bytes matched so far are ordinary content. */
            uint8_t k = p->bom;
            p->bom = 3;
            return feed_lines(p, (const char *)bom_bytes, k, fn, arg);
        }
        p->bom++;
        (*s)++;
        (*n)--;
    }
    return 0;
}

int rt_sse_feed(rt_sse *p, const void *buf, size_t len, rt_sse_fn fn, void *arg)
{
    if (p->err)
        return p->err;
    const unsigned char *s = buf;
    int rc = 0;
    if (p->bom < 3)
        rc = skip_bom(p, &s, &len, fn, arg);
    if (!rc)
        rc = feed_lines(p, (const char *)s, len, fn, arg);
    p->err = rc;
    return rc;
}
