/*
 * ft_text — see ft_text.h. UTF-8 is decoded strictly (no overlongs, no surrogates, nothing
 * above U+10FFFF), as Python's decoder does.
 */
#include "ft_text.h"

#include "rt_alloc.h"

#include <errno.h>
#include <string.h>

void ft_u32_fini(ft_u32 *a)
{
    rt_free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

size_t ft_utf8_next(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned c = u[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        goto bad;
    }
    if (n < len)
        goto bad;
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80)
            goto bad;
        v = (v << 6) | (u[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        goto bad;
    *cp = v;
    return len;
bad:
    *cp = 0xDC00 + c; /* c >= 0x80 here: 0xDC80..0xDCFF, one value per bad byte */
    return 1;
}

void ft_utf8_decode(const char *s, size_t n, ft_u32 *a)
{
    if (a->cap < n + 1) {
        a->cap = n + 1;
        a->v = rt_xrealloc(a->v, a->cap * sizeof(a->v[0]));
    }
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += ft_utf8_next(s + i, n - i, &cp);
        a->v[k++] = cp;
    }
    a->n = k;
}

size_t ft_utf8_chars(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; k++) {
        uint32_t cp;
        i += ft_utf8_next(s + i, n - i, &cp);
    }
    return k;
}

size_t ft_utf8_prefix(const char *s, size_t n, size_t max_chars, bool *cut)
{
    size_t i = 0, k = 0;
    while (i < n && k < max_chars) {
        uint32_t cp;
        i += ft_utf8_next(s + i, n - i, &cp);
        k++;
    }
    if (cut)
        *cut = i < n;
    return i;
}

bool ft_is_pyspace(uint32_t c)
{
    if (c < 0x80)
        return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Length of the whitespace character at s (0 if none). */
static size_t space_at(const char *s, size_t n)
{
    unsigned char c = (unsigned char)s[0];
    if (c < 0x80)
        return ft_is_pyspace(c) ? 1 : 0;
    uint32_t cp;
    size_t len = ft_utf8_next(s, n, &cp);
    return ft_is_pyspace(cp) ? len : 0;
}

/* Start of the whitespace character that ends s[0..n), or n if it does not end in one. */
static size_t space_before(const char *s, size_t n)
{
    unsigned char c = (unsigned char)s[n - 1];
    if (c < 0x80)
        return ft_is_pyspace(c) ? n - 1 : n;
    size_t b = n - 1; /* step back over continuation bytes to the lead byte */
    while (b > 0 && n - b < 4 && ((unsigned char)s[b] & 0xC0) == 0x80)
        b--;
    uint32_t cp;
    size_t len = ft_utf8_next(s + b, n - b, &cp);
    return (b + len == n && ft_is_pyspace(cp)) ? b : n;
}

ft_span ft_lstrip(ft_span s)
{
    size_t k;
    while (s.n && (k = space_at(s.p, s.n)) > 0) {
        s.p += k;
        s.n -= k;
    }
    return s;
}

ft_span ft_strip(ft_span s)
{
    s = ft_lstrip(s);
    while (s.n) {
        size_t b = space_before(s.p, s.n);
        if (b == s.n)
            break;
        s.n = b;
    }
    return s;
}

int ft_append_clean(rt_buf *b, const char *s, size_t n)
{
    static const char repl[] = "\xEF\xBF\xBD";
    size_t run = 0; /* start of the pending run of good bytes */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x80) { /* fast path */
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = ft_utf8_next(s + i, n - i, &cp);
        if (cp != 0 && !(cp >= 0xDC80 && cp <= 0xDCFF)) { /* valid UTF-8 never decodes there */
            i += len;
            continue;
        }
        if (rt_buf_append(b, s + run, i - run) < 0 || rt_buf_append(b, repl, 3) < 0)
            return -E2BIG;
        i += len;
        run = i;
    }
    return rt_buf_append(b, s + run, n - run);
}

char *ft_clean_dup(const char *s, size_t n)
{
    rt_buf b;
    rt_buf_init(&b, (n + 1) * 3);
    (void)ft_append_clean(&b, s, n); /* cannot exceed 3 bytes per input byte */
    return rt_buf_steal(&b, NULL);
}

void ft_path_ext(const char *path, char *out, size_t outlen)
{
    out[0] = '\0';
    const char *sep = strrchr(path, '/');
    const char *dot = strrchr(path, '.');
    if (!dot || (sep && dot < sep))
        return;
    /* Leading dots of the name do not start an extension (".bashrc"). */
    const char *name = sep ? sep + 1 : path;
    while (name < dot && *name == '.')
        name++;
    if (name == dot)
        return;
    size_t i = 0;
    for (const char *p = dot; *p && i + 1 < outlen; p++)
        out[i++] = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
    out[i] = '\0';
}

char *ft_path_dirname(const char *path)
{
    const char *sep = strrchr(path, '/');
    if (!sep)
        return rt_xstrdup("");
    size_t n = (size_t)(sep - path) + 1;
    size_t k = n;
    /* Strip trailing slashes unless the head is nothing but slashes. */
    while (k > 0 && path[k - 1] == '/')
        k--;
    return rt_xstrndup(path, k ? k : n);
}

const char *ft_path_basename(const char *path)
{
    const char *sep = strrchr(path, '/');
    return sep ? sep + 1 : path;
}

char *ft_path_join(const char *a, const char *b)
{
    if (b[0] == '/' || a[0] == '\0')
        return rt_xstrdup(b);
    size_t n = strlen(a);
    return rt_xasprintf("%s%s%s", a, a[n - 1] == '/' ? "" : "/", b);
}
