/*
 * rt_mbox — intrusive multi-producer single-consumer queue (Vyukov), used for both lanes
 * of every actor mailbox.
 *
 * The producer end (head) and the consumer end (tail, stub) are passed separately so the
 * actor can keep them on different cache lines.
 *
 * Invariants:
 *   1. push is wait-free: one atomic exchange, then one store linking the previous node.
 *   2. Between those two steps the queue is "inconsistent": pop may return NULL although a
 *      message is committed. rt_mbox_is_empty() reports such a queue as NOT empty, so the
 *      consumer never goes idle while a committed message is unlinked (rt_actor.c rule 2).
 *   3. The queue is empty exactly when head == tail == stub.
 *
 * Threads: push from any thread; pop and is_empty from the single consumer only.
 */
#ifndef RT_MBOX_H
#define RT_MBOX_H

#include "rt_msg.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

static inline void rt_mbox_init(rt_qnode *_Atomic *head, rt_qnode **tail, rt_qnode *stub)
{
    atomic_init(&stub->next, NULL);
    atomic_init(head, stub);
    *tail = stub;
}

static inline void rt_mbox_push(rt_qnode *_Atomic *head, rt_qnode *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    /* seq_cst: takes part in the Dekker pairing with the actor's sched word (rt_actor.c
     * rule 2); its release half also orders the store above before the link below. */
    rt_qnode *prev = atomic_exchange_explicit(head, n, memory_order_seq_cst);
    /* release: publishes the message body; pairs with the acquire loads in rt_mbox_pop. */
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

static inline rt_qnode *rt_mbox_pop(rt_qnode *_Atomic *head, rt_qnode **tailp, rt_qnode *stub)
{
    rt_qnode *tail = *tailp;
    /* acquire: pairs with the release link in rt_mbox_push. */
    rt_qnode *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == stub) {
        if (!next)
            return NULL;
        *tailp = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        *tailp = next;
        return tail;
    }
    /* tail is the last linked node. If head moved on, a producer is mid-push (rule 2). */
    if (tail != atomic_load_explicit(head, memory_order_acquire))
        return NULL;
    /* Re-insert the stub so that tail can be handed out. */
    rt_mbox_push(head, stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        *tailp = next;
        return tail;
    }
    return NULL;
}

static inline bool rt_mbox_is_empty(rt_qnode *_Atomic *head, rt_qnode *tail, rt_qnode *stub)
{
    /* seq_cst: the other half of the Dekker pairing (rt_actor.c rule 2). */
    return tail == stub && atomic_load_explicit(head, memory_order_seq_cst) == stub;
}

#endif /* RT_MBOX_H */
