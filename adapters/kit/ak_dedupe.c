/*
 * ak_dedupe — see ak_dedupe.h.
 */
#include "ak_dedupe.h"

#include "gw.h"

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME  1099511628211ULL

static uint64_t fnv(uint64_t h, const char *s)
{
    for (const char *p = s; p && *p; p++)
        h = (h ^ (unsigned char)*p) * FNV_PRIME;
    return h;
}

uint64_t ak_hash(const char *s)
{
    return fnv(FNV_OFFSET, s) | 1;
}

uint64_t ak_hash2(const char *a, const char *b)
{
    uint64_t h = fnv(FNV_OFFSET, a);
    h = (h ^ ':') * FNV_PRIME;
    return fnv(h, b) | 1;
}

bool ak_ring_has(const uint64_t *ring, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        if (ring[i] == h)
            return true;
    return false;
}

void ak_ring_add(uint64_t *ring, size_t n, size_t *next, uint64_t h)
{
    if (!n || ak_ring_has(ring, n, h))
        return;
    ring[*next % n] = h;
    *next = (*next % n + 1) % n;
}

bool ak_ring_del(uint64_t *ring, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        if (ring[i] == h) {
            ring[i] = 0;
            return true;
        }
    }
    return false;
}

rt_ref ak_gateway_of(rt_ctx *cx, rt_ref gw)
{
    return gw ? gw : rt_whereis(cx, GW_NAME);
}
