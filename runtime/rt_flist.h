/*
 * rt_flist — per-thread freelists that trade whole lists with a global stack in O(1).
 *
 * Used by the message pool and the actor slab. Memory often flows one way between threads
 * (one thread allocates, another frees), so a thread whose list grows past its cap hands
 * the entire list over as one batch, and a thread whose list is empty takes one batch back:
 * one mutex operation and no list walking per batch.
 *
 * Threads: an rt_flist belongs to one thread; rt_flist_global is shared (leaf mutex).
 */
#ifndef RT_FLIST_H
#define RT_FLIST_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Overlaid on free blocks, which are at least 32 bytes. */
typedef struct rt_fnode {
    struct rt_fnode *next;       /* within a list */
    struct rt_fnode *batch_next; /* first node of the next batch (global stack only) */
    uint32_t batch_n;            /* nodes in the batch this node heads */
} rt_fnode;

/* Two halves, so that handing memory over never throws away the warm part: frees go to
 * `hot`; when hot is full, the older `cold` half goes to the global stack and hot becomes
 * cold. Allocations take from hot, then cold, then a global batch. */
typedef struct rt_flist {
    rt_fnode *hot, *cold;
    uint32_t nhot, ncold;
} rt_flist;

typedef struct rt_flist_global {
    pthread_mutex_t lock;
    rt_fnode *batches; /* guarded by lock */
} rt_flist_global;

#define RT_FLIST_GLOBAL_INIT                                                                       \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, NULL                                                            \
    }

static inline void rt_flist__give(rt_fnode *first, uint32_t n, rt_flist_global *g)
{
    first->batch_n = n;
    pthread_mutex_lock(&g->lock);
    first->batch_next = g->batches;
    g->batches = first;
    pthread_mutex_unlock(&g->lock);
}

/* Free p into the list; half_cap bounds each half. */
static inline void rt_flist_push(rt_flist *l, void *p, uint32_t half_cap, rt_flist_global *g)
{
    rt_fnode *n = p;
    n->next = l->hot;
    l->hot = n;
    if (++l->nhot <= half_cap)
        return;
    if (l->cold)
        rt_flist__give(l->cold, l->ncold, g);
    l->cold = l->hot;
    l->ncold = l->nhot;
    l->hot = NULL;
    l->nhot = 0;
}

/* A block, or NULL when this thread and the global stack have none. */
static inline void *rt_flist_pop(rt_flist *l, rt_flist_global *g)
{
    if (!l->hot) {
        if (l->cold) {
            l->hot = l->cold;
            l->nhot = l->ncold;
            l->cold = NULL;
            l->ncold = 0;
        } else {
            pthread_mutex_lock(&g->lock);
            rt_fnode *b = g->batches;
            if (b)
                g->batches = b->batch_next;
            pthread_mutex_unlock(&g->lock);
            if (!b)
                return NULL;
            l->hot = b;
            l->nhot = b->batch_n;
        }
    }
    rt_fnode *n = l->hot;
    l->hot = n->next;
    l->nhot--;
    return n;
}

/* Hand everything to g (thread exit). */
static inline void rt_flist_release(rt_flist *l, rt_flist_global *g)
{
    if (l->hot)
        rt_flist__give(l->hot, l->nhot, g);
    if (l->cold)
        rt_flist__give(l->cold, l->ncold, g);
    l->hot = l->cold = NULL;
    l->nhot = l->ncold = 0;
}

#endif /* RT_FLIST_H */
