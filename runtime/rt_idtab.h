/*
 * rt_idtab — the ref → actor registry (internal to the runtime).
 *
 * Refs are handed out in two spaces:
 *   - Workers take blocks of RT_IDTAB_PAGE consecutive ids, aligned to the block size, from
 *     one counter. Each block has a page: a direct array of RT_IDTAB_PAGE actor pointers,
 *     found through a small liburcu hash table keyed by the block's first id. Spawning is a
 *     store into the page (no hash-chain walk, no table growth in the spawn path: a million
 *     spawns add 245 pages, not a million nodes); a lookup is one hash probe for the page
 *     and one load.
 *   - Other threads (external and detached ones, which come and go and would abandon
 *     partly used blocks) take single ids at RT_IDTAB_EXT_BASE and above, registered one by
 *     one in a liburcu hash table, as before.
 * A page counts the ids of its block that are not yet retired (spawned and ended, or never
 * used because a spawn failed); the last retirement unlinks it and frees it after an RCU
 * grace period, so a long-running process keeps pages only for blocks with live actors
 * (plus each worker's current block).
 *
 * Ids are never reused: a stale ref finds no page, an empty slot, or (ext) no node.
 *
 * Threads: lookups and registrations run inside an RCU read-side section (workers are
 * always online; external threads go through rt__ext_enter). A page's slots are written
 * only by the worker that owns the block (spawn) and the thread ending the actor (clear);
 * readers load them with acquire, pairing with the release store at spawn.
 */
#ifndef RT_IDTAB_H
#define RT_IDTAB_H

#include "rt_int.h"

#include <stdbool.h>
#include <stdint.h>

#define RT_IDTAB_PAGE 4096u /* ids per worker block and page */
#define RT_IDTAB_EXT_BASE                                                                          \
    (UINT64_C(1) << 52) /* first id of the single-id space (refs stay                              \
                         below 2^53: exact as JSON numbers) */

/* Create the tables (rt->idpages, rt->by_id_ext) and the counters. At runtime creation. */
void rt_idtab_init(rt_runtime *rt);

/* Free the tables; every page must already be gone (rt_idtab_take_all). At teardown. */
void rt_idtab_fini(rt_runtime *rt);

/* A fresh id for an actor spawned on cx (a worker's block, or the single-id space). Inside
 * a read-side section. */
uint64_t rt_idtab_next(rt_ctx *cx);

/* A unique number that is no actor's id (monitor ids). Any thread. */
uint64_t rt_idtab_token(rt_runtime *rt);

/* Publish a: a->id came from rt_idtab_next on this cx. Release: a's fields are visible to
 * whoever finds it. Inside a read-side section. */
void rt_idtab_publish(rt_ctx *cx, rt_actor *a);

/* Give back an id from rt_idtab_next that was never published (a failed spawn). */
void rt_idtab_forget(rt_ctx *cx, uint64_t id);

/* The actor registered as id, or NULL. Inside a read-side section; the pointer stays valid
 * until the section ends. */
rt_actor *rt_idtab_find(rt_runtime *rt, uint64_t id);

/* Unregister a (it is ending). Inside a read-side section. */
void rt_idtab_remove(rt_runtime *rt, rt_actor *a);

/* Unregister every actor and return them as a list through qnext. Only when no other
 * thread uses the runtime (teardown); frees every page at once. */
rt_actor *rt_idtab_take_all(rt_runtime *rt);

#endif /* RT_IDTAB_H */
