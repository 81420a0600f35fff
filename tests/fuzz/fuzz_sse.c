/*
 * fuzz_sse — libFuzzer target for the SSE parser (runtime/io/rt_sse.c).
 *
 * The first two input bytes pick a per-event cap and a seed for chunk sizes; the rest is
 * the stream. It is parsed twice — whole, and cut into pseudo-random chunks (1..64 bytes,
 * including empty feeds) — and the two event sequences and results must be identical:
 * chunk boundaries must never change what the parser sees. ASan/UBSan catch the rest.
 */
#include "rt_sse.h"

#include "rt_alloc.h"
#include "rt_buf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_ev(void *arg, const rt_sse_event *ev)
{
    rt_buf *out = arg;
    if (ev->data[ev->data_len] != '\0' || strlen(ev->type) == 0)
        abort();
    (void)rt_buf_printf(out, "%zu:%s|%zu:", strlen(ev->type), ev->type, ev->data_len);
    (void)rt_buf_append(out, ev->data, ev->data_len);
    (void)rt_buf_printf(out, "|%s|%lld\n", ev->id, (long long)ev->retry_ms);
    return 0;
}

static int parse(const uint8_t *s, size_t n, size_t max, uint32_t seed, rt_buf *out)
{
    rt_sse p;
    rt_sse_init(&p, max);
    int rc = 0;
    size_t at = 0;
    while (rc == 0 && at < n) {
        size_t len = n - at;
        if (seed) {
            seed = seed * 1103515245u + 12345u;
            len = (seed >> 16) % 65; /* 0..64: empty feeds too */
            if (len > n - at)
                len = n - at;
        }
        rc = rt_sse_feed(&p, s + at, len, on_ev, out);
        at += len;
    }
    rt_sse_fini(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max = 1 + data[0] % 128;
    uint32_t seed = data[1] | 1u; /* never 0: 0 means "whole" */
    rt_buf whole, cut;
    rt_buf_init(&whole, 1 << 24);
    rt_buf_init(&cut, 1 << 24);
    int a = parse(data + 2, size - 2, max, 0, &whole);
    int b = parse(data + 2, size - 2, max, seed, &cut);
    if (a != b || whole.len != cut.len || (whole.len && memcmp(whole.data, cut.data, whole.len)))
        abort();
    rt_buf_fini(&whole);
    rt_buf_fini(&cut);
    return 0;
}
