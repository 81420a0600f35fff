/*
 * rt_theap — binary min-heap of deadlines, for timer queues.
 *
 * Users embed rt_theap_node in their own timer struct. Ties in deadline keep insertion
 * order. Each node knows its position, so removing an arbitrary node is O(log n).
 * Not thread-safe: one owner (or one lock) per heap.
 */
#ifndef RT_THEAP_H
#define RT_THEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_theap_node {
    int64_t deadline; /* ns on the owner's clock */
    uint64_t seq;     /* insertion order, set by push */
    size_t idx;       /* position in the heap, maintained by the heap */
} rt_theap_node;

typedef struct rt_theap {
    rt_theap_node **v;
    size_t n, cap;
    uint64_t seq;
} rt_theap;

void rt_theap_init(rt_theap *h);
void rt_theap_fini(rt_theap *h); /* frees the array, not the nodes */
void rt_theap_push(rt_theap *h, rt_theap_node *n);
/* The earliest node, or NULL. */
rt_theap_node *rt_theap_peek(const rt_theap *h);
void rt_theap_remove(rt_theap *h, rt_theap_node *n);

#endif /* RT_THEAP_H */
