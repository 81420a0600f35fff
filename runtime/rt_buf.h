/*
 * rt_buf — bounded growable byte buffers (curl dynbuf) and immutable refcounted blobs.
 *
 * Every buffer fed from outside has a hard maximum fixed at init; appending past it
 * returns -E2BIG and leaves the buffer unchanged. Contents are always NUL-terminated
 * (the terminator is not counted in len and not counted against max).
 *
 * rt_blob is for fan-out: immutable once created, shared by reference count, so one LLM
 * reply can go to two adapters without copying.
 *
 * Threads: an rt_buf belongs to one owner at a time. rt_blob_ref/unref are safe from any
 * thread.
 */
#ifndef RT_BUF_H
#define RT_BUF_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

typedef struct rt_buf {
    char *data; /* NULL until the first append; NUL-terminated after */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated (excluding the terminator slot) */
    size_t max; /* hard limit on len */
} rt_buf;

void rt_buf_init(rt_buf *b, size_t max);
void rt_buf_fini(rt_buf *b);
/* Drop the contents but keep the allocation. */
void rt_buf_reset(rt_buf *b);
/* Append n bytes; 0 or -E2BIG. */
int rt_buf_append(rt_buf *b, const void *p, size_t n);
int rt_buf_append_str(rt_buf *b, const char *s);
int rt_buf_printf(rt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int rt_buf_vprintf(rt_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Remove the first n bytes (n <= len). */
void rt_buf_consume(rt_buf *b, size_t n);
/* Take the contents as a heap string (never NULL); the buffer is left empty. Free with rt_free. */
char *rt_buf_steal(rt_buf *b, size_t *len);
/* Pointer to the contents, "" when empty. Borrowed until the next change. */
const char *rt_buf_cstr(const rt_buf *b);

typedef struct rt_blob {
    _Atomic unsigned refs; /* starts at 1 */
    size_t len;
    char data[]; /* len bytes, then a NUL */
} rt_blob;

/* New blob with a copy of p[0..n) and one reference. */
rt_blob *rt_blob_new(const void *p, size_t n);
/* New blob that takes the contents of b (b is left empty). */
rt_blob *rt_blob_from_buf(rt_buf *b);
rt_blob *rt_blob_ref(rt_blob *bl);
void rt_blob_unref(rt_blob *bl);

#endif /* RT_BUF_H */
