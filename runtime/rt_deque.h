/*
 * rt_deque — Chase-Lev work-stealing deque of pointers, in the C11 formulation of
 * Lê, Pop, Cohen and Zappa Nardelli (PPoPP 2013), growing on demand.
 *
 * The owner pushes and takes at the bottom (LIFO); thieves steal from the top (FIFO, the
 * oldest item). Grown arrays are kept until rt_deque_fini because a thief may still be
 * reading the old one.
 *
 * Threads: init/fini/push/take on the owning worker only; steal and size from any thread.
 */
#ifndef RT_DEQUE_H
#define RT_DEQUE_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct rt_deque_arr rt_deque_arr;

typedef struct rt_deque {
    alignas(64) _Atomic int64_t top;    /* thieves advance it with CAS */
    alignas(64) _Atomic int64_t bottom; /* written by the owner only */
    _Atomic(rt_deque_arr *) arr;        /* current array; replaced by the owner on growth */
} rt_deque;

/* Sentinel returned by rt_deque_steal when it lost a race; try again or elsewhere. */
#define RT_DEQUE_ABORT ((void *)1)

void rt_deque_init(rt_deque *d, int64_t capacity);
void rt_deque_fini(rt_deque *d);
void rt_deque_push(rt_deque *d, void *p);
/* Owner: the newest item, or NULL when empty. */
void *rt_deque_take(rt_deque *d);
/* Thief: the oldest item, NULL when empty, RT_DEQUE_ABORT when it lost a race. */
void *rt_deque_steal(rt_deque *d);
/* Advisory: does it look non-empty right now? */
bool rt_deque_maybe_nonempty(rt_deque *d);

#endif /* RT_DEQUE_H */
