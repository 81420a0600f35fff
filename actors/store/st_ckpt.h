/*
 * st_ckpt — moves state.db's write-ahead log into the database off the writer's thread.
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that crosses 1,000 WAL pages, on the
 * committing connection: the writer stalled for 5-30 ms every few seconds under load, and
 * every turn waiting for its message to be stored waited with it (p99). The writer now
 * turns the automatic checkpoint off (its WAL hook counts pages instead) and asks this
 * detached actor, which has a connection of its own, for a PASSIVE checkpoint whenever the
 * WAL passed ST_CKPT_PAGES; a PASSIVE checkpoint never blocks the writer or the readers.
 *
 * Invariants:
 *   1. At most one checkpoint is asked for at a time (the writer waits for ST_MSG_CKPT_DONE
 *      before asking again), so requests never pile up behind a slow disk.
 *   2. The WAL stays bounded even if this actor falls behind: past ST_CKPT_INLINE_PAGES the
 *      writer checkpoints itself (waiting for this actor's run to end first), as SQLite
 *      would have (st_store.c).
 *
 * Threads: the actor is detached (it blocks on disk); the open/free functions block too and
 * run on the thread that starts the store.
 */
#ifndef ST_CKPT_H
#define ST_CKPT_H

#include "rt_actor.h"

#include <stddef.h>
#include <stdint.h>

#define ST_CKPT_PAGES        1000 /* ask for a checkpoint past this many WAL pages (SQLite's) */
#define ST_CKPT_INLINE_PAGES 4000 /* the writer checkpoints itself past this many */
#define ST_CKPT_WAIT_MS      2000 /* how long it waits for the checkpointer\'s run then */

enum {
    ST_MSG_CKPT = RT_MSG_TYPE(RT_MSG_MODULE_ST, 56),      /* st_msg_ckpt: writer -> ckpt */
    ST_MSG_CKPT_DONE = RT_MSG_TYPE(RT_MSG_MODULE_ST, 57), /* st_msg_ckpt: ckpt -> writer */
};

typedef struct st_msg_ckpt {
    rt_msg hdr;
    rt_ref reply_to; /* CKPT: who gets CKPT_DONE */
    int rc;          /* CKPT_DONE: the SQLite result */
    int log_pages;   /* CKPT_DONE: frames in the WAL, and how many are in the database now */
    int done_pages;
} st_msg_ckpt;

typedef struct st_ckpt st_ckpt;

/* Open a connection to path (which the writer created) for checkpoints. 0 and *out, or
 * -errno with a sentence in errmsg. Blocks on disk. */
int st_ckpt_open(const char *path, int busy_timeout_ms, st_ckpt **out, char *errmsg, size_t errlen);
/* Spawn the detached actor owning c (c is the actor's from here, also on failure). 0 when
 * name is taken. */
rt_ref st_ckpt_spawn(rt_ctx *cx, st_ckpt *c, const char *name);
/* Close a connection that was never spawned. NULL is fine. */
void st_ckpt_free(st_ckpt *c);

#endif /* ST_CKPT_H */
