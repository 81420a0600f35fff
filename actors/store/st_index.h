/*
 * st_index — the cold part of the gateway's sessions index, in state.db's hc_session_index
 * (migration 6: key PRIMARY KEY, session_id, platform, entry, updated_at).
 *
 * The gateway keeps the sessions index entries of recent conversations in memory and in
 * sessions.json (the original's format); an entry idle long enough (gateway.index_warm_hours,
 * or its session expired by the reset policy) moves here, and comes back when its
 * conversation speaks again. `entry` is the entry's sessions.json object as JSON text, so a
 * row reads exactly like the sessions.json entry it was. A row may be stale while its entry
 * is warm again: readers that see both take the sessions.json one.
 *
 * The index actor owns a write connection of its own (WAL: the store writer and the readers
 * go on beside it; SQLite's busy timeout orders the two writers). Requests:
 *   ST_MSG_INDEX_PUT  rows in one transaction (INSERT OR REPLACE); ST_MSG_ACK to req.reply_to
 *                     (id = rows written) when asked for.
 *   ST_MSG_INDEX_GET  one key -> one ST_MSG_INDEX_ROW (entry NULL when there is none), in the
 *                     order the requests came; a GET after a PUT of the same sender sees it.
 *
 * Threads: the actor is detached (it blocks on SQLite). The constructors from any thread;
 * st_index_start and the synchronous readers (st_index_count, st_index_each) block on disk:
 * a non-worker thread, a detached actor or a CLI command.
 */
#ifndef ST_INDEX_H
#define ST_INDEX_H

#include "st_store.h"

#include <stddef.h>
#include <stdint.h>

enum {
    ST_MSG_INDEX_PUT = RT_MSG_TYPE(RT_MSG_MODULE_ST, 24), /* st_msg_index_put */
    ST_MSG_INDEX_GET = RT_MSG_TYPE(RT_MSG_MODULE_ST, 25), /* st_msg_index_get */
    ST_MSG_INDEX_ROW = RT_MSG_TYPE(RT_MSG_MODULE_ST, 26), /* st_msg_index_row: GET's answer */
};

#define ST_INDEX_ENTRY_MAX (1u << 20) /* one entry's JSON; bigger rows are refused/ignored */

typedef struct st_index_row {
    char *key;        /* required */
    char *session_id; /* may be NULL */
    char *platform;   /* may be NULL */
    char *entry;      /* required: the sessions.json object, JSON text */
    double updated_at;
} st_index_row;

typedef struct st_msg_index_put {
    rt_msg hdr;
    st_req req;
    size_t n, cap;
    st_index_row *rows; /* owned; freed by drop */
} st_msg_index_put;

typedef struct st_msg_index_get {
    rt_msg hdr;
    st_req req;
    char *key;
} st_msg_index_get;

typedef struct st_msg_index_row {
    rt_msg hdr;
    uint64_t tag;
    int err;     /* 0, or -errno when the table could not be read (entry NULL) */
    char *key;   /* the key asked for */
    char *entry; /* the row's entry JSON, or NULL when there is none */
    char errmsg[ST_ERRMSG_MAX];
} st_msg_index_row;

/* An empty PUT; add rows with st_index_put_add (strings copied, NULL allowed except key and
 * entry). Never NULL. */
st_msg_index_put *st_index_put_new(void);
void st_index_put_add(st_msg_index_put *m, const char *key, const char *session_id,
                      const char *platform, const char *entry, double updated_at);
/* A GET for key (copied). Never NULL. */
st_msg_index_get *st_index_get_new(const char *key, rt_ref reply_to, uint64_t tag);

/*
 * Open state.db at path (its schema brought up to date), spawn the index actor (detached,
 * registered under name unless NULL). Returns its ref, or 0 with a sentence in errmsg.
 */
rt_ref st_index_start(rt_ctx *cx, const char *path, const char *name, char *errmsg, size_t errlen);

/* Rows in hc_session_index of the state.db at path: 0 and *n, -ENOENT without the file, or
 * -errno (a database without the table counts 0 rows). */
int st_index_count(const char *path, int64_t *n);

/*
 * Every row (platform NULL) or every row of platform, most recently updated first, to cb
 * (key, entry JSON, updated_at; borrowed for the call); cb returns false to stop. Same
 * returns as st_index_count.
 */
typedef bool (*st_index_cb)(void *arg, const char *key, const char *entry, double updated_at);
int st_index_each(const char *path, const char *platform, st_index_cb cb, void *arg);

#endif /* ST_INDEX_H */
