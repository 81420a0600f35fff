/*
 * rt_httpd_parse — the HTTP/1.1 wire format for rt_httpd (see rt_httpd_int.h): request heads
 * (RFC 9112 2-6), chunk-size lines (RFC 9112 7.1), reason phrases, and the validation of
 * header lines given by actors. Pure functions over caller-owned bytes.
 */
#include "rt_httpd_int.h"

#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

const char *rt__h1_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

bool rt__h1_is_tchar(int ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Next line of [p, e): returns its end (before CRLF or LF) and sets *next; NULL on a bare
 * CR inside the line. */
static const char *line_end(const char *p, const char *e, const char **next)
{
    const char *lf = memchr(p, '\n', (size_t)(e - p));
    if (!lf)
        lf = e;
    const char *end = lf > p && lf[-1] == '\r' ? lf - 1 : lf;
    if (memchr(p, '\r', (size_t)(end - p)))
        return NULL;
    *next = lf < e ? lf + 1 : e;
    return end;
}

static int parse_request_line(rt__h1_head *h, const char *p, const char *e)
{
    const char *sp1 = memchr(p, ' ', (size_t)(e - p));
    if (!sp1 || sp1 == p)
        return 400;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(e - sp1 - 1));
    if (!sp2 || sp2 == sp1 + 1)
        return 400;
    for (const char *q = p; q < sp1; q++)
        if (!rt__h1_is_tchar((unsigned char)*q))
            return 400;
    for (const char *q = sp1 + 1; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return 400;
    size_t vlen = (size_t)(e - sp2 - 1);
    const char *v = sp2 + 1;
    if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || !isdigit((unsigned char)v[5]) || v[6] != '.' ||
        !isdigit((unsigned char)v[7]))
        return 400;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return 505;
    h->method = p;
    h->mlen = (size_t)(sp1 - p);
    h->target = sp1 + 1;
    h->tlen = (size_t)(sp2 - sp1 - 1);
    h->minor = v[7] - '0';
    return 0;
}

static bool value_is(const rt__h1_field *f, const char *s)
{
    return f->vlen == strlen(s) && !strncasecmp(f->value, s, f->vlen);
}

static bool name_is(const rt__h1_field *f, const char *s)
{
    return f->nlen == strlen(s) && !strncasecmp(f->name, s, f->nlen);
}

/* Connection: a comma list of options. */
static void parse_connection(rt__h1_head *h, const rt__h1_field *f)
{
    const char *p = f->value, *e = f->value + f->vlen;
    while (p < e) {
        const char *c = memchr(p, ',', (size_t)(e - p));
        const char *te = c ? c : e;
        while (p < te && (*p == ' ' || *p == '\t'))
            p++;
        const char *ve = te;
        while (ve > p && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (ve - p == 5 && !strncasecmp(p, "close", 5))
            h->close = true;
        if (ve - p == 10 && !strncasecmp(p, "keep-alive", 10))
            h->ka = true;
        p = te + 1;
    }
}

/* The framing fields (RFC 9112 6): 0 or the status to answer. */
static int parse_semantics(rt__h1_head *h, size_t max_body)
{
    for (size_t i = 0; i < h->nf; i++) {
        const rt__h1_field *f = &h->f[i];
        if (name_is(f, "host")) {
            h->hosts++;
        } else if (name_is(f, "content-length")) {
            if (!f->vlen || f->vlen > 18)
                return f->vlen ? 413 : 400;
            size_t v = 0;
            for (size_t k = 0; k < f->vlen; k++) {
                if (!isdigit((unsigned char)f->value[k]))
                    return 400;
                v = v * 10 + (size_t)(f->value[k] - '0');
            }
            if (h->has_cl && v != h->cl)
                return 400;
            h->has_cl = true;
            h->cl = v;
        } else if (name_is(f, "transfer-encoding")) {
            if (!value_is(f, "chunked") || h->chunked)
                return f->vlen >= 7 && !strncasecmp(f->value + f->vlen - 7, "chunked", 7) ? 501
                                                                                          : 400;
            h->chunked = true;
        } else if (name_is(f, "connection")) {
            parse_connection(h, f);
        } else if (name_is(f, "expect")) {
            if (!value_is(f, "100-continue"))
                return 417;
            h->expect = true;
        }
    }
    if ((h->chunked && (h->has_cl || h->minor == 0)) || (h->minor == 1 && h->hosts != 1) ||
        h->hosts > 1)
        return 400;
    if (h->has_cl && h->cl > max_body)
        return 413;
    return 0;
}

static int parse_fields(rt__h1_head *h, const char *p, const char *e)
{
    while (p < e) {
        const char *next, *le = line_end(p, e, &next);
        if (!le)
            return 400;
        if (le == p)
            break; /* the blank line */
        if (*p == ' ' || *p == '\t')
            return 400; /* obs-fold */
        if (h->nf == RT__H1_MAX_FIELDS)
            return 431;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (!colon || colon == p)
            return 400;
        for (const char *q = p; q < colon; q++)
            if (!rt__h1_is_tchar((unsigned char)*q))
                return 400;
        const char *v = colon + 1, *ve = le;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *q = v; q < ve; q++)
            if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
                return 400;
        h->f[h->nf++] = (rt__h1_field){p, v, (size_t)(colon - p), (size_t)(ve - v)};
        p = next;
    }
    return 0;
}

static int method_status(const rt__h1_head *h)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < RT_ARRAY_LEN(known); i++)
        if (h->mlen == strlen(known[i]) && !memcmp(h->method, known[i], h->mlen))
            return 0;
    return 501;
}

/* Origin form "/p?q", absolute form "http://host/p?q" (reduced to its path), or "*". */
static int target_path(const rt__h1_head *h, const char **path, size_t *len)
{
    const char *t = h->target;
    size_t n = h->tlen;
    if (n == 1 && *t == '*')
        return h->mlen == 7 && !memcmp(h->method, "OPTIONS", 7) ? (*path = t, *len = n, 0) : 400;
    if (n >= 7 && (!strncasecmp(t, "http://", 7) || (n >= 8 && !strncasecmp(t, "https://", 8)))) {
        const char *a = t + (t[4] == ':' ? 7 : 8), *s = memchr(a, '/', (size_t)(t + n - a));
        *path = s ? s : "/";
        *len = s ? (size_t)(t + n - s) : 1;
        return 0;
    }
    if (*t != '/')
        return 400;
    *path = t;
    *len = n;
    return 0;
}

/* Copy the parsed head into one block owned by the message. */
/* Parse the head [p, e) (blank line included) into h. 0, or the status to answer. The
 * checks run in order, so h holds what was parsed before a failure (the version, say). */
int rt__h1_parse_head(rt__h1_head *h, const char *p, const char *e, size_t max_body)
{
    memset(h, 0, offsetof(rt__h1_head, f));
    const char *next, *le = line_end(p, e, &next);
    int st = le ? parse_request_line(h, p, le) : 400;
    if (!st)
        st = parse_fields(h, next, e);
    if (!st)
        st = parse_semantics(h, max_body);
    if (!st)
        st = method_status(h);
    if (!st)
        st = target_path(h, &h->path, &h->plen);
    return st;
}

/* The end of the head (just past the blank line) in b[0..lim), searching from `from`. */
const char *rt__h1_head_end(const char *b, size_t from, size_t lim)
{
    for (size_t i = from; i < lim; i++) {
        if (b[i] != '\n')
            continue;
        if ((i >= 1 && b[i - 1] == '\n') || (i >= 2 && b[i - 1] == '\r' && b[i - 2] == '\n'))
            return b + i + 1;
    }
    return NULL;
}

int rt__h1_chunk_size(const char *p, size_t n, size_t *size)
{
    size_t v = 0, i = 0;
    for (; i < n && isxdigit((unsigned char)p[i]); i++) {
        if (i == 15)
            return 413;
        int ch = tolower((unsigned char)p[i]);
        v = v * 16 + (size_t)(isdigit(ch) ? ch - '0' : ch - 'a' + 10);
    }
    if (i == 0 || (i < n && p[i] != ';' && p[i] != '\r' && p[i] != ' ' && p[i] != '\t'))
        return 400;
    *size = v;
    return 0;
}

static bool framing_header(const char *h, size_t nlen)
{
    static const char *const names[] = {"content-length", "transfer-encoding", "connection",
                                        "date"};
    for (size_t i = 0; i < RT_ARRAY_LEN(names); i++)
        if (nlen == strlen(names[i]) && !strncasecmp(h, names[i], nlen))
            return true;
    return false;
}

/* Validate "Name: value" lines; count the bytes of the block (framing headers dropped) or,
 * with out, write it. -EINVAL when one is malformed. */
long rt__h1_header_block(const char *const *hdrs, char *out)
{
    size_t total = 0;
    for (size_t i = 0; hdrs && hdrs[i]; i++) {
        const char *h = hdrs[i], *colon = strchr(h, ':');
        if (!colon || colon == h)
            return -EINVAL;
        for (const char *p = h; p < colon; p++)
            if (!rt__h1_is_tchar((unsigned char)*p))
                return -EINVAL;
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        for (const char *p = v; *p; p++)
            if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
                return -EINVAL;
        if (framing_header(h, (size_t)(colon - h)))
            continue;
        size_t nl = (size_t)(colon - h), vl = strlen(v);
        if (out) {
            memcpy(out + total, h, nl);
            memcpy(out + total + nl, ": ", 2);
            memcpy(out + total + nl + 2, v, vl);
            memcpy(out + total + nl + 2 + vl, "\r\n", 2);
        }
        total += nl + vl + 4;
    }
    return (long)total;
}
