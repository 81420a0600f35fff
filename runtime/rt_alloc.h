/*
 * rt_alloc — the only place that calls malloc/free (STYLE 3.4).
 *
 * We are a server, not a library: a failed fixed-size allocation logs and aborts.
 * Untrusted sizes are checked by their callers against hard limits before they get here.
 *
 * Threads: every function may be called from any thread.
 */
#ifndef RT_ALLOC_H
#define RT_ALLOC_H

#include <stddef.h>

/* Allocate n bytes; aborts on failure. Never returns NULL (n == 0 allocates 1 byte). */
void *rt_xmalloc(size_t n);
/* Allocate and zero count*size bytes; aborts on failure or overflow. */
void *rt_xcalloc(size_t count, size_t size);
/* Resize p (which may be NULL) to n bytes; aborts on failure. */
void *rt_xrealloc(void *p, size_t n);
/* Duplicate a NUL-terminated string; NULL in gives NULL out. */
char *rt_xstrdup(const char *s);
/* Duplicate at most n bytes of s and NUL-terminate. */
char *rt_xstrndup(const char *s, size_t n);
/* Duplicate n bytes of memory (n may be 0). */
void *rt_xmemdup(const void *p, size_t n);
/* Allocate size bytes aligned to align (a power of two); aborts on failure. Free with rt_free. */
void *rt_xaligned(size_t align, size_t size);
/* Free p; rt_free(NULL) is a no-op. */
void rt_free(void *p);

/* printf into a new heap string; aborts on OOM. */
char *rt_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* RT_ALLOC_H */
