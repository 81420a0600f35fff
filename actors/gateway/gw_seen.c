/*
 * gw_seen — see gw_seen.h.
 *
 * An open-addressed table (linear probing, at most half full, 0 = empty) and a ring of the
 * keys in arrival order. Forgetting the oldest deletes it from the table with backward-shift
 * deletion, so lookups never meet tombstones.
 */
#include "gw_seen.h"

#include "rt_alloc.h"
#include "rt_util.h"
#include "st_store.h"

/* gw_seen.h: a key the store keeps while the disk is full is never forgotten here. */
_Static_assert(ST_KEPT_MAX < GW_SEEN_DEFAULT_CAP, "the store keeps more keys than gw_seen holds");

struct gw_seen {
    uint64_t *slots; /* nslots, a power of two >= 2 * cap */
    size_t mask;
    uint64_t *ring; /* cap keys, oldest at head */
    size_t cap, head, n;
};

gw_seen *gw_seen_new(size_t cap)
{
    if (cap < 1)
        cap = 1;
    gw_seen *s = rt_xcalloc(1, sizeof(*s));
    size_t nslots = 2;
    while (nslots < 2 * cap)
        nslots <<= 1;
    s->slots = rt_xcalloc(nslots, sizeof(*s->slots));
    s->mask = nslots - 1;
    s->ring = rt_xcalloc(cap, sizeof(*s->ring));
    s->cap = cap;
    return s;
}

void gw_seen_free(gw_seen *s)
{
    if (!s)
        return;
    rt_free(s->slots);
    rt_free(s->ring);
    rt_free(s);
}

uint64_t gw_seen_key(const char *platform, const char *message_id)
{
    uint64_t h = rt_hash_u64(rt_hash_str(platform ? platform : "") ^
                             (rt_hash_str(message_id ? message_id : "") * 0x9e3779b97f4a7c15ull));
    return h ? h : 1;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t probe(const gw_seen *s, uint64_t key)
{
    size_t i = (size_t)rt_hash_u64(key) & s->mask;
    while (s->slots[i] && s->slots[i] != key)
        i = (i + 1) & s->mask;
    return i;
}

bool gw_seen_has(const gw_seen *s, uint64_t key)
{
    return key && s->slots[probe(s, key)] == key;
}

/* Remove key from the table, shifting back the entries that probed past its slot. */
static void table_del(gw_seen *s, uint64_t key)
{
    size_t i = probe(s, key);
    if (s->slots[i] != key)
        return;
    s->slots[i] = 0;
    for (size_t j = (i + 1) & s->mask; s->slots[j]; j = (j + 1) & s->mask) {
        size_t home = (size_t)rt_hash_u64(s->slots[j]) & s->mask;
        /* j's entry may move into the hole at i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            s->slots[i] = s->slots[j];
            s->slots[j] = 0;
            i = j;
        }
    }
}

bool gw_seen_add(gw_seen *s, uint64_t key)
{
    if (!key)
        key = 1;
    size_t i = probe(s, key);
    if (s->slots[i] == key)
        return false;
    if (s->n == s->cap) { /* forget the oldest */
        table_del(s, s->ring[s->head]);
        s->ring[s->head] = key;
        s->head = (s->head + 1) % s->cap;
        i = probe(s, key); /* the deletion may have moved the empty slot */
    } else {
        s->ring[(s->head + s->n) % s->cap] = key;
        s->n++;
    }
    s->slots[i] = key;
    return true;
}

size_t gw_seen_count(const gw_seen *s)
{
    return s->n;
}
