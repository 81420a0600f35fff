/*
 * rt_map — open-addressing hash map from non-zero uint64 keys to pointers.
 *
 * Linear probing with backward-shift deletion (no tombstones), grown at 3/4 load. For
 * single-owner tables inside one actor or under one lock; not thread-safe.
 */
#ifndef RT_MAP_H
#define RT_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_map {
    uint64_t *keys; /* 0 = empty */
    void **vals;
    size_t cap; /* power of two, or 0 before first insert */
    size_t n;
} rt_map;

void rt_map_init(rt_map *m);
void rt_map_fini(rt_map *m);
/* Insert or replace; key must be non-zero. */
void rt_map_put(rt_map *m, uint64_t key, void *val);
void *rt_map_get(const rt_map *m, uint64_t key);
/* Remove and return the value, or NULL. */
void *rt_map_del(rt_map *m, uint64_t key);

/* Iterate: for (size_t i = 0; i < m->cap; i++) if (m->keys[i]) ... */

#endif /* RT_MAP_H */
