/*
 * st_ckpt — PASSIVE checkpoints of state.db on a connection and thread of their own.
 *
 * See st_ckpt.h for why and for the invariants.
 */
#include "st_ckpt.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "st_schema.h"

#include <sqlite3.h>

struct st_ckpt {
    sqlite3 *db;
    uint64_t done, failed; /* for the log at the end */
};

int st_ckpt_open(const char *path, int busy_timeout_ms, st_ckpt **out, char *errmsg, size_t errlen)
{
    /* A write-mode connection: a checkpoint writes database pages. It runs no SQL. */
    st_open_opts o = {.mode = ST_OPEN_WRITE, .busy_timeout_ms = busy_timeout_ms};
    sqlite3 *db = NULL;
    int err = st_db_open(path, &o, &db, errmsg, errlen);
    if (err)
        return err;
    /* Its own WAL hook would checkpoint on its commits: it makes none, but be explicit. */
    sqlite3_wal_autocheckpoint(db, 0);
    st_ckpt *c = rt_xcalloc(1, sizeof(*c));
    c->db = db;
    *out = c;
    return 0;
}

void st_ckpt_free(st_ckpt *c)
{
    if (!c)
        return;
    if (c->failed)
        RT_DEBUG("store", "state.db checkpoints: %llu done, %llu incomplete",
                 (unsigned long long)c->done, (unsigned long long)c->failed);
    if (sqlite3_close(c->db) != SQLITE_OK)
        RT_ERROR("store", "state.db checkpointer: close failed: %s", sqlite3_errmsg(c->db));
    rt_free(c);
}

static void ckpt_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    st_ckpt *c = state;
    if (m->type != ST_MSG_CKPT)
        return; /* RT_MSG_STOP at the end */
    st_msg_ckpt *q = (st_msg_ckpt *)m;
    int log = 0, done = 0;
    /* PASSIVE: copies what no reader still needs, never waits for (or blocks) anyone. */
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (rc == SQLITE_OK) {
        c->done++;
    } else {
        c->failed++;
        RT_LOG_LIMITED(RT_LOG_WARN, "store", 60000, "state.db checkpoint: %s",
                       sqlite3_errmsg(c->db));
    }
    if (!q->reply_to)
        return;
    st_msg_ckpt *r = RT_MSG_NEW(st_msg_ckpt, ST_MSG_CKPT_DONE);
    r->rc = rc;
    r->log_pages = log;
    r->done_pages = done;
    rt_send_urgent(cx, q->reply_to, &r->hdr); /* ahead of queued writes: the tail stays short */
}

static void ckpt_fini(void *state)
{
    st_ckpt_free(state);
}

static const rt_actor_type ckpt_type = {"store-ckpt", ckpt_behave, ckpt_fini, 0};

rt_ref st_ckpt_spawn(rt_ctx *cx, st_ckpt *c, const char *name)
{
    rt_spawn_opts o = {.flags = RT_SPAWN_DETACHED, .name = name};
    return rt_spawn(cx, &ckpt_type, c, &o);
}
