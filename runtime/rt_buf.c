/*
 * rt_buf — see rt_buf.h.
 */
#include "rt_buf.h"

#include "rt_alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void rt_buf_init(rt_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void rt_buf_fini(rt_buf *b)
{
    rt_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void rt_buf_reset(rt_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int reserve(rt_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return -E2BIG;
    size_t need = b->len + extra;
    if (need <= b->cap && b->data)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > b->max / 2 ? b->max : cap * 2;
    if (cap < need)
        cap = need;
    b->data = rt_xrealloc(b->data, cap + 1);
    b->cap = cap;
    return 0;
}

int rt_buf_append(rt_buf *b, const void *p, size_t n)
{
    int err = reserve(b, n);
    if (err)
        return err;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int rt_buf_append_str(rt_buf *b, const char *s)
{
    return rt_buf_append(b, s, strlen(s));
}

int rt_buf_vprintf(rt_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return -EINVAL;
    int err = reserve(b, (size_t)n);
    if (err)
        return err;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int rt_buf_printf(rt_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int err = rt_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return err;
}

void rt_buf_consume(rt_buf *b, size_t n)
{
    if (n >= b->len) {
        rt_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *rt_buf_steal(rt_buf *b, size_t *len)
{
    char *s = b->data ? b->data : rt_xstrdup("");
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

const char *rt_buf_cstr(const rt_buf *b)
{
    return b->data ? b->data : "";
}

rt_blob *rt_blob_new(const void *p, size_t n)
{
    rt_blob *bl = rt_xmalloc(sizeof(*bl) + n + 1);
    atomic_init(&bl->refs, 1);
    bl->len = n;
    if (n)
        memcpy(bl->data, p, n);
    bl->data[n] = '\0';
    return bl;
}

rt_blob *rt_blob_from_buf(rt_buf *b)
{
    rt_blob *bl = rt_blob_new(b->data, b->len);
    rt_buf_reset(b);
    return bl;
}

rt_blob *rt_blob_ref(rt_blob *bl)
{
    /* relaxed: taking a new reference needs no ordering (the caller already holds one). */
    atomic_fetch_add_explicit(&bl->refs, 1, memory_order_relaxed);
    return bl;
}

void rt_blob_unref(rt_blob *bl)
{
    if (!bl)
        return;
    /* acq_rel: the release orders our reads before the free; the acquire in the last
     * dropper pairs with every other dropper's release. */
    if (atomic_fetch_sub_explicit(&bl->refs, 1, memory_order_acq_rel) == 1)
        rt_free(bl);
}
