/*
 * rt_alloc — allocation wrappers. See rt_alloc.h.
 */
#include "rt_alloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void oom(size_t n)
{
    /* No logging machinery here: it might allocate. One write(2), then abort. */
    char line[96];
    int len = snprintf(line, sizeof(line), "hermes: out of memory allocating %zu bytes\n", n);
    if (len > 0)
        (void)!write(2, line, (size_t)len); /* best effort: we abort next */
    abort();
}

void *rt_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *rt_xcalloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        oom(SIZE_MAX);
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        oom(count * size);
    return p;
}

void *rt_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *rt_xstrdup(const char *s)
{
    if (!s)
        return NULL;
    return rt_xmemdup(s, strlen(s) + 1);
}

char *rt_xstrndup(const char *s, size_t n)
{
    if (!s)
        return NULL;
    size_t len = strnlen(s, n);
    char *p = rt_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *rt_xmemdup(const void *p, size_t n)
{
    void *q = rt_xmalloc(n);
    if (n)
        memcpy(q, p, n);
    return q;
}

void *rt_xaligned(size_t align, size_t size)
{
    void *p = NULL;
    if (posix_memalign(&p, align, size ? size : align) != 0)
        oom(size);
    return p;
}

void rt_free(void *p)
{
    free(p);
}

char *rt_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    char *s = rt_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}
