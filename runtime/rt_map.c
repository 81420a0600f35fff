/*
 * rt_map — see rt_map.h.
 */
#include "rt_map.h"

#include "rt_alloc.h"
#include "rt_util.h"

#include <stdbool.h>
#include <string.h>

void rt_map_init(rt_map *m)
{
    memset(m, 0, sizeof(*m));
}

void rt_map_fini(rt_map *m)
{
    rt_free(m->keys);
    rt_free(m->vals);
    memset(m, 0, sizeof(*m));
}

static size_t slot_of(const rt_map *m, uint64_t key)
{
    return (size_t)rt_hash_u64(key) & (m->cap - 1);
}

static void grow(rt_map *m)
{
    size_t old_cap = m->cap;
    uint64_t *ok = m->keys;
    void **ov = m->vals;
    m->cap = old_cap ? old_cap * 2 : 16;
    m->keys = rt_xcalloc(m->cap, sizeof(*m->keys));
    m->vals = rt_xcalloc(m->cap, sizeof(*m->vals));
    m->n = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (ok[i])
            rt_map_put(m, ok[i], ov[i]);
    rt_free(ok);
    rt_free(ov);
}

void rt_map_put(rt_map *m, uint64_t key, void *val)
{
    RT_ASSERT(key != 0);
    if ((m->n + 1) * 4 > m->cap * 3)
        grow(m);
    size_t i = slot_of(m, key);
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        m->n++;
    m->keys[i] = key;
    m->vals[i] = val;
}

void *rt_map_get(const rt_map *m, uint64_t key)
{
    if (!m->cap || !key)
        return NULL;
    for (size_t i = slot_of(m, key); m->keys[i]; i = (i + 1) & (m->cap - 1))
        if (m->keys[i] == key)
            return m->vals[i];
    return NULL;
}

void *rt_map_del(rt_map *m, uint64_t key)
{
    if (!m->cap || !key)
        return NULL;
    size_t i = slot_of(m, key);
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        return NULL;
    void *val = m->vals[i];
    m->n--;
    /* Backward-shift: pull later members of the probe run into the hole. */
    for (size_t j = (i + 1) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1)) {
        size_t home = slot_of(m, m->keys[j]);
        /* Move j into i unless its home lies cyclically in (i, j]. */
        bool stay = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (stay)
            continue;
        m->keys[i] = m->keys[j];
        m->vals[i] = m->vals[j];
        i = j;
    }
    m->keys[i] = 0;
    m->vals[i] = NULL;
    return val;
}
