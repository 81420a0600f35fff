/*
 * rt_deque — see rt_deque.h. Memory orders follow Lê et al., Figure 1, with two changes
 * that are equivalent on the C11 model but visible to ThreadSanitizer (which ignores
 * stand-alone fences): push publishes with a release store to bottom instead of a release
 * fence plus relaxed store, and steal reads bottom with acquire.
 */
#include "rt_deque.h"

#include "rt_alloc.h"

#include <stddef.h>

struct rt_deque_arr {
    int64_t cap;           /* power of two */
    rt_deque_arr *retired; /* older, smaller arrays still reachable by late thieves */
    _Atomic(void *) slot[];
};

static rt_deque_arr *arr_new(int64_t cap)
{
    rt_deque_arr *a = rt_xmalloc(sizeof(*a) + (size_t)cap * sizeof(a->slot[0]));
    a->cap = cap;
    a->retired = NULL;
    for (int64_t i = 0; i < cap; i++)
        atomic_init(&a->slot[i], NULL);
    return a;
}

void rt_deque_init(rt_deque *d, int64_t capacity)
{
    int64_t cap = 16;
    while (cap < capacity)
        cap *= 2;
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    atomic_init(&d->arr, arr_new(cap));
}

void rt_deque_fini(rt_deque *d)
{
    rt_deque_arr *a = atomic_load_explicit(&d->arr, memory_order_relaxed);
    while (a) {
        rt_deque_arr *old = a->retired;
        rt_free(a);
        a = old;
    }
    atomic_store_explicit(&d->arr, NULL, memory_order_relaxed);
}

static rt_deque_arr *grow(rt_deque *d, rt_deque_arr *a, int64_t t, int64_t b)
{
    rt_deque_arr *n = arr_new(a->cap * 2);
    for (int64_t i = t; i < b; i++) {
        void *p = atomic_load_explicit(&a->slot[i & (a->cap - 1)], memory_order_relaxed);
        atomic_store_explicit(&n->slot[i & (n->cap - 1)], p, memory_order_relaxed);
    }
    n->retired = a;
    /* release: a thief that loads the new array must see its copied slots. */
    atomic_store_explicit(&d->arr, n, memory_order_release);
    return n;
}

void rt_deque_push(rt_deque *d, void *p)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    /* acquire: pairs with the thieves' CAS on top, so slots they took are free for reuse. */
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    rt_deque_arr *a = atomic_load_explicit(&d->arr, memory_order_relaxed);
    if (b - t > a->cap - 1)
        a = grow(d, a, t, b);
    atomic_store_explicit(&a->slot[b & (a->cap - 1)], p, memory_order_relaxed);
    /* release: publishes the slot (and the item it points to) to thieves; pairs with the
     * acquire load of bottom in rt_deque_steal. */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
}

void *rt_deque_take(rt_deque *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    rt_deque_arr *a = atomic_load_explicit(&d->arr, memory_order_relaxed);
    atomic_store_explicit(&d->bottom, b, memory_order_relaxed);
    /* seq_cst fence: orders our bottom store before the top load, against the thieves'
     * fence between their top and bottom loads (the Dekker core of Chase-Lev). */
    atomic_thread_fence(memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    void *p = NULL;
    if (t <= b) {
        p = atomic_load_explicit(&a->slot[b & (a->cap - 1)], memory_order_relaxed);
        if (t == b) {
            /* Last item: race the thieves for it. seq_cst pairs with their CAS. */
            if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                         memory_order_relaxed))
                p = NULL;
            atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        }
    } else {
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    }
    return p;
}

void *rt_deque_steal(rt_deque *d)
{
    /* acquire: pairs with other thieves' CAS and the owner's CAS on top. */
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    /* seq_cst fence: pairs with the fence in rt_deque_take. */
    atomic_thread_fence(memory_order_seq_cst);
    /* acquire: pairs with the release store of bottom in rt_deque_push. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_acquire);
    if (t >= b)
        return NULL;
    /* acquire: pairs with the release store in grow(). */
    rt_deque_arr *a = atomic_load_explicit(&d->arr, memory_order_acquire);
    void *p = atomic_load_explicit(&a->slot[t & (a->cap - 1)], memory_order_relaxed);
    /* seq_cst: only one of the thieves and the owner gets index t. */
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return RT_DEQUE_ABORT;
    return p;
}

bool rt_deque_maybe_nonempty(rt_deque *d)
{
    /* advisory: used only to decide whether to look harder. */
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    return b > t;
}
