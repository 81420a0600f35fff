/*
 * ft_regex — see ft_regex.h.
 */
#include "ft_regex.h"

#include "ft_text.h"
#include "rt_alloc.h"
#include "rt_buf.h"

#include <locale.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct ft_regex {
    regex_t re;
    locale_t loc; /* C.UTF-8, or (locale_t)0 when unavailable */
};

static bool is_special(char c)
{
    return strchr(".[]()*+?{}|^$\\", c) != NULL;
}

static void put_utf8(rt_buf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    (void)rt_buf_append(b, u, n);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* \xHH or \x{H...} at p (p points after 'x'); returns chars consumed, 0 if malformed. */
static size_t parse_hex(const char *p, uint32_t *cp)
{
    uint32_t v = 0;
    if (*p == '{') {
        size_t i = 1;
        while (hexval(p[i]) >= 0 && i < 9)
            v = v * 16 + (uint32_t)hexval(p[i++]);
        if (p[i] != '}' || i == 1 || v > 0x10FFFF)
            return 0;
        *cp = v;
        return i + 1;
    }
    if (hexval(p[0]) < 0 || hexval(p[1]) < 0)
        return 0;
    *cp = (uint32_t)(hexval(p[0]) * 16 + hexval(p[1]));
    return 2;
}

/* The character an escape stands for (\n, \t, \xHH...), or 0 with *len 0 if none. */
static uint32_t escape_char(const char *p, size_t *len)
{
    *len = 1;
    switch (*p) {
    case 'n': return '\n';
    case 't': return '\t';
    case 'r': return '\r';
    case 'f': return '\f';
    case 'v': return '\v';
    case 'x': {
        uint32_t cp;
        size_t n = parse_hex(p + 1, &cp);
        if (n) {
            *len = n + 1;
            return cp;
        }
        break;
    }
    default: break;
    }
    *len = 0;
    return 0;
}

/* One character of a class at p (an escape or a UTF-8 character): its code point in *cp;
 * returns the position after it. */
static const char *class_char(const char *p, uint32_t *cp)
{
    if (*p == '\\' && p[1]) {
        size_t el;
        uint32_t e = escape_char(p + 1, &el);
        if (el) {
            *cp = e;
            return p + 1 + el;
        }
        *cp = (unsigned char)p[1]; /* \] \\ \- \^ ...: the character itself */
        return p + 2;
    }
    return p + ft_utf8_next(p, strlen(p), cp);
}

/* Rebuild [...] starting at p (on '[') as a POSIX bracket: ']' first, '^' and '-' last;
 * returns the position after ']', or NULL when it is not a complete class. */
static const char *put_class(rt_buf *b, const char *p)
{
    rt_buf items;
    rt_buf_init(&items, 1 << 16);
    bool neg = false, close_br = false, dash = false, caret = false;
    p++;
    if (*p == '^') {
        neg = true;
        p++;
    }
    bool first = true;
    while (*p && (*p != ']' || first)) {
        first = false;
        if (p[0] == '[' && p[1] == ':') { /* [:alpha:] passes through */
            const char *e = strstr(p + 2, ":]");
            if (!e)
                break;
            (void)rt_buf_append(&items, p, (size_t)(e + 2 - p));
            p = e + 2;
            continue;
        }
        if (p[0] == '\\' && (p[1] == 'd' || p[1] == 'w' || p[1] == 's')) {
            (void)rt_buf_append_str(&items, p[1] == 'd'   ? "[:digit:]"
                                            : p[1] == 'w' ? "[:alnum:]_"
                                                          : "[:space:]");
            p += 2;
            continue;
        }
        uint32_t lo, hi;
        p = class_char(p, &lo);
        if (*p == '-' && p[1] && p[1] != ']') { /* a range lo-hi */
            p = class_char(p + 1, &hi);
            put_utf8(&items, lo);
            (void)rt_buf_append(&items, "-", 1);
            put_utf8(&items, hi);
            continue;
        }
        if (lo == ']')
            close_br = true;
        else if (lo == '-')
            dash = true;
        else if (lo == '^')
            caret = true;
        else
            put_utf8(&items, lo);
    }
    if (*p != ']') {
        rt_buf_fini(&items);
        return NULL;
    }
    if (!items.len && caret && !close_br && !dash && !neg) {
        (void)rt_buf_append_str(b, "\\^");
    } else {
        (void)rt_buf_append_str(b, neg ? "[^" : "[");
        if (close_br)
            (void)rt_buf_append(b, "]", 1);
        (void)rt_buf_append(b, items.data ? items.data : "", items.len);
        if (caret)
            (void)rt_buf_append(b, "^", 1);
        if (dash)
            (void)rt_buf_append(b, "-", 1);
        (void)rt_buf_append(b, "]", 1);
    }
    rt_buf_fini(&items);
    return p + 1;
}

/* "(?" constructs at p (on '('): returns the position after what was consumed. */
static const char *put_group(rt_buf *b, const char *p, bool *icase)
{
    const char *q = p + 2;
    if (*q == ':') {
        (void)rt_buf_append(b, "(", 1);
        return q + 1;
    }
    if (*q == 'P' && q[1] == '<')
        q++;
    if (*q == '<' && q[1] != '=' && q[1] != '!') { /* named group */
        const char *e = strchr(q, '>');
        if (e) {
            (void)rt_buf_append(b, "(", 1);
            return e + 1;
        }
    }
    /* Flags: (?i) (?im) (?i:...) ... */
    const char *f = q;
    bool neg = false, i_on = false;
    while (*f && strchr("imsUx-", *f)) {
        if (*f == '-')
            neg = true;
        else if (*f == 'i' && !neg)
            i_on = true;
        f++;
    }
    if (f > q && (*f == ')' || *f == ':')) {
        *icase |= i_on;
        if (*f == ':')
            (void)rt_buf_append(b, "(", 1);
        return f + 1;
    }
    (void)rt_buf_append(b, "(", 1); /* look-around etc.: leave "?..." for regcomp to reject */
    return p + 1;
}

char *ft_regex_translate(const char *pat, bool *icase)
{
    rt_buf b;
    rt_buf_init(&b, 1 << 20);
    *icase = false;
    bool after_quant = false;
    for (const char *p = pat; *p;) {
        char c = *p;
        if (c == '?' && after_quant) { /* lazy: same lines match */
            after_quant = false;
            p++;
            continue;
        }
        after_quant = false;
        if (c == '\\' && p[1]) {
            char e = p[1];
            size_t el;
            uint32_t cp = escape_char(p + 1, &el);
            if (el) {
                if (cp < 0x80 && is_special((char)cp))
                    (void)rt_buf_append(&b, "\\", 1);
                put_utf8(&b, cp);
                p += 1 + el;
                continue;
            }
            if (e == 'd' || e == 'D')
                (void)rt_buf_append_str(&b, e == 'd' ? "[0-9]" : "[^0-9]");
            else if (e == 'A')
                (void)rt_buf_append(&b, "^", 1);
            else if (e == 'z')
                (void)rt_buf_append(&b, "$", 1);
            else if (strchr("wWsSbB", e) || is_special(e))
                (void)rt_buf_append(&b, p, 2);
            else
                (void)rt_buf_append(&b, p + 1, 1); /* \- \/ \# ...: the character */
            p += 2;
            continue;
        }
        if (c == '[') {
            const char *q = put_class(&b, p);
            if (q) {
                p = q;
                continue;
            }
        }
        if (c == '(' && p[1] == '?') {
            p = put_group(&b, p, icase);
            continue;
        }
        if (c == '*' || c == '+' || c == '?' || c == '}')
            after_quant = true;
        (void)rt_buf_append(&b, p, 1);
        p++;
    }
    return rt_buf_steal(&b, NULL);
}

/* regcomp has no size limit of its own: refuse what would compile into something huge. */
static bool too_big(const char *pattern, const char *posix, char *msg, size_t msglen)
{
    if (strlen(pattern) > FT_REGEX_MAX_LEN) {
        snprintf(msg, msglen, "regex parse error: pattern longer than %d bytes", FT_REGEX_MAX_LEN);
        return true;
    }
    for (const char *p = posix; (p = strchr(p, '{')) != NULL; p++) {
        long n = 0;
        for (const char *q = p + 1; (*q >= '0' && *q <= '9') || *q == ','; q++) {
            n = *q == ',' ? 0 : n * 10 + (*q - '0');
            if (n > FT_REGEX_MAX_REPEAT) {
                snprintf(msg, msglen, "regex parse error: repetition count over %d",
                         FT_REGEX_MAX_REPEAT);
                return true;
            }
        }
    }
    return false;
}

ft_regex *ft_regex_new(const char *pattern, char *msg, size_t msglen)
{
    bool icase;
    char *posix = ft_regex_translate(pattern, &icase);
    if (too_big(pattern, posix, msg, msglen)) {
        rt_free(posix);
        return NULL;
    }
    ft_regex *re = rt_xcalloc(1, sizeof(*re));
    re->loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    locale_t old = re->loc ? uselocale(re->loc) : (locale_t)0;
    int rc = regcomp(&re->re, posix, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0));
    if (rc != 0) {
        char why[256];
        regerror(rc, &re->re, why, sizeof(why));
        snprintf(msg, msglen, "regex parse error: %s", why);
    }
    if (re->loc)
        uselocale(old);
    rt_free(posix);
    if (rc != 0) {
        if (re->loc)
            freelocale(re->loc);
        rt_free(re);
        return NULL;
    }
    return re;
}

bool ft_regex_search(ft_regex *re, const char *s, size_t n)
{
    locale_t old = re->loc ? uselocale(re->loc) : (locale_t)0;
    regmatch_t m[1] = {{.rm_so = 0, .rm_eo = (regoff_t)n}};
    bool hit = regexec(&re->re, s, 1, m, REG_STARTEND) == 0;
    if (re->loc)
        uselocale(old);
    return hit;
}

void ft_regex_free(ft_regex *re)
{
    if (!re)
        return;
    regfree(&re->re);
    if (re->loc)
        freelocale(re->loc);
    rt_free(re);
}
