/*
 * st_index — hc_session_index, the cold part of the gateway's sessions index (st_index.h).
 */
#include "st_index.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct st_index {
    sqlite3 *db;
    sqlite3_stmt *put, *get;
    char *path;
} st_index;

/* ============================================================== messages */

static void drop_put(rt_msg *m)
{
    st_msg_index_put *p = (st_msg_index_put *)m;
    for (size_t i = 0; i < p->n; i++) {
        rt_free(p->rows[i].key);
        rt_free(p->rows[i].session_id);
        rt_free(p->rows[i].platform);
        rt_free(p->rows[i].entry);
    }
    rt_free(p->rows);
}

static void drop_get(rt_msg *m)
{
    rt_free(((st_msg_index_get *)m)->key);
}

static void drop_row(rt_msg *m)
{
    st_msg_index_row *r = (st_msg_index_row *)m;
    rt_free(r->key);
    rt_free(r->entry);
}

static char *dup_or_null(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

st_msg_index_put *st_index_put_new(void)
{
    st_msg_index_put *m = RT_MSG_NEW(st_msg_index_put, ST_MSG_INDEX_PUT);
    m->hdr.drop = drop_put;
    return m;
}

void st_index_put_add(st_msg_index_put *m, const char *key, const char *session_id,
                      const char *platform, const char *entry, double updated_at)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->rows = rt_xrealloc(m->rows, m->cap * sizeof(*m->rows));
    }
    m->rows[m->n++] = (st_index_row){
        .key = rt_xstrdup(key),
        .session_id = dup_or_null(session_id),
        .platform = dup_or_null(platform),
        .entry = rt_xstrdup(entry),
        .updated_at = updated_at,
    };
}

st_msg_index_get *st_index_get_new(const char *key, rt_ref reply_to, uint64_t tag)
{
    st_msg_index_get *m = RT_MSG_NEW(st_msg_index_get, ST_MSG_INDEX_GET);
    m->hdr.drop = drop_get;
    m->key = rt_xstrdup(key);
    m->req.reply_to = reply_to;
    m->req.tag = tag;
    return m;
}

/* ================================================================ actor */

static int prepare(st_index *x, sqlite3_stmt **st, const char *sql, char *errmsg, size_t errlen)
{
    if (*st)
        return 0;
    int rc = sqlite3_prepare_v3(x->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK) {
        st_errmsg_format(errmsg, errlen, x->db, rc, "hc_session_index");
        return st_errno_from_sqlite(rc);
    }
    return 0;
}

static int put_rows(st_index *x, const st_msg_index_put *m, char *errmsg, size_t errlen)
{
    int err = prepare(x, &x->put,
                      "INSERT OR REPLACE INTO hc_session_index "
                      "(key, session_id, platform, entry, updated_at) VALUES (?, ?, ?, ?, ?)",
                      errmsg, errlen);
    if (err)
        return err;
    if ((err = st_db_exec(x->db, "BEGIN IMMEDIATE", errmsg, errlen)) != 0)
        return err;
    for (size_t i = 0; i < m->n && !err; i++) {
        const st_index_row *r = &m->rows[i];
        if (!r->key || !r->entry || strlen(r->entry) > ST_INDEX_ENTRY_MAX)
            continue; /* the constructor never makes these; a caller's bug costs one row */
        sqlite3_bind_text(x->put, 1, r->key, -1, SQLITE_STATIC);
        sqlite3_bind_text(x->put, 2, r->session_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(x->put, 3, r->platform, -1, SQLITE_STATIC);
        sqlite3_bind_text(x->put, 4, r->entry, -1, SQLITE_STATIC);
        sqlite3_bind_double(x->put, 5, r->updated_at);
        int rc = sqlite3_step(x->put);
        if (rc != SQLITE_DONE) {
            st_errmsg_format(errmsg, errlen, x->db, rc, "hc_session_index: insert");
            err = st_errno_from_sqlite(rc);
        }
        sqlite3_reset(x->put);
        sqlite3_clear_bindings(x->put);
    }
    if (err) {
        char ignore[ST_ERRMSG_MAX];
        (void)st_db_exec(x->db, "ROLLBACK", ignore, sizeof(ignore));
        return err;
    }
    return st_db_exec(x->db, "COMMIT", errmsg, errlen);
}

static void on_put(rt_ctx *cx, st_index *x, st_msg_index_put *m)
{
    st_msg_ack *a = RT_MSG_NEW(st_msg_ack, ST_MSG_ACK);
    a->op = ST_MSG_INDEX_PUT;
    a->tag = m->req.tag;
    a->err = put_rows(x, m, a->errmsg, sizeof(a->errmsg));
    a->id = a->err ? 0 : (int64_t)m->n;
    if (a->err)
        RT_ERROR("store", "%zu sessions index entries could not be written to state.db: %s", m->n,
                 a->errmsg);
    if (m->req.reply_to)
        rt_send(cx, m->req.reply_to, &a->hdr);
    else
        rt_msg_free(&a->hdr);
}

static void on_get(rt_ctx *cx, st_index *x, st_msg_index_get *m)
{
    st_msg_index_row *r = RT_MSG_NEW(st_msg_index_row, ST_MSG_INDEX_ROW);
    r->hdr.drop = drop_row;
    r->tag = m->req.tag;
    r->key = m->key;
    m->key = NULL;
    r->err = prepare(x, &x->get, "SELECT entry FROM hc_session_index WHERE key = ?", r->errmsg,
                     sizeof(r->errmsg));
    if (!r->err && r->key) {
        sqlite3_bind_text(x->get, 1, r->key, -1, SQLITE_STATIC);
        int rc = sqlite3_step(x->get);
        if (rc == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(x->get, 0);
            int len = sqlite3_column_bytes(x->get, 0);
            if (t && (size_t)len <= ST_INDEX_ENTRY_MAX)
                r->entry = rt_xstrndup((const char *)t, (size_t)len);
            else if (t) /* the reader treats it as a corrupt row */
                r->entry = rt_xstrdup("");
        } else if (rc != SQLITE_DONE) {
            st_errmsg_format(r->errmsg, sizeof(r->errmsg), x->db, rc, "hc_session_index: read");
            r->err = st_errno_from_sqlite(rc);
        }
        sqlite3_reset(x->get);
        sqlite3_clear_bindings(x->get);
    }
    if (m->req.reply_to)
        rt_send(cx, m->req.reply_to, &r->hdr);
    else
        rt_msg_free(&r->hdr);
}

static void index_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    st_index *x = *(st_index **)state;
    switch (m->type) {
    case ST_MSG_INDEX_PUT: on_put(cx, x, (st_msg_index_put *)m); break;
    case ST_MSG_INDEX_GET: on_get(cx, x, (st_msg_index_get *)m); break;
    default: break;
    }
}

static void index_free(st_index *x)
{
    if (!x)
        return;
    sqlite3_finalize(x->put);
    sqlite3_finalize(x->get);
    if (x->db && sqlite3_close(x->db) != SQLITE_OK)
        RT_ERROR("store", "state.db index connection: close failed");
    rt_free(x->path);
    rt_free(x);
}

static void index_fini(void *state)
{
    index_free(*(st_index **)state);
}

static const rt_actor_type index_type = {"store.index", index_behave, index_fini,
                                         sizeof(st_index *)};

rt_ref st_index_start(rt_ctx *cx, const char *path, const char *name, char *errmsg, size_t errlen)
{
    st_index *x = rt_xcalloc(1, sizeof(*x));
    st_open_opts o = {.mode = ST_OPEN_WRITE};
    if (st_db_open(path, &o, &x->db, errmsg, errlen) != 0 ||
        st_schema_init(x->db, errmsg, errlen) != 0) {
        index_free(x);
        return 0;
    }
    x->path = rt_xstrdup(path);
    rt_spawn_opts so = {.flags = RT_SPAWN_DETACHED, .name = name};
    rt_ref ref = rt_spawn(cx, &index_type, &x, &so);
    if (!ref)
        snprintf(errmsg, errlen, "the sessions index actor %s runs already", name ? name : "");
    return ref;
}

/* ======================================================== synchronous reads */

static int open_ro(const char *path, sqlite3 **db)
{
    char msg[ST_ERRMSG_MAX];
    if (access(path, F_OK) != 0)
        return -ENOENT;
    st_open_opts o = {.mode = ST_OPEN_READ_ONLY};
    return st_db_open(path, &o, db, msg, sizeof(msg));
}

static bool no_table(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool none = true;
    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                           "name = 'hc_session_index'",
                           -1, &st, NULL) == SQLITE_OK)
        none = sqlite3_step(st) != SQLITE_ROW;
    sqlite3_finalize(st);
    return none;
}

int st_index_count(const char *path, int64_t *n)
{
    *n = 0;
    sqlite3 *db = NULL;
    int err = open_ro(path, &db);
    if (err)
        return err;
    if (!no_table(db)) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM hc_session_index", -1, &st, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
            *n = sqlite3_column_int64(st, 0);
        else
            err = st_errno_from_sqlite(rc);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return err;
}

int st_index_each(const char *path, const char *platform, st_index_cb cb, void *arg)
{
    sqlite3 *db = NULL;
    int err = open_ro(path, &db);
    if (err)
        return err;
    if (!no_table(db)) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db,
                                    platform ? "SELECT key, entry, updated_at FROM "
                                               "hc_session_index WHERE platform = ? "
                                               "ORDER BY updated_at DESC"
                                             : "SELECT key, entry, updated_at FROM "
                                               "hc_session_index ORDER BY updated_at DESC",
                                    -1, &st, NULL);
        if (rc == SQLITE_OK && platform)
            sqlite3_bind_text(st, 1, platform, -1, SQLITE_STATIC);
        while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *k = (const char *)sqlite3_column_text(st, 0);
            const char *e = (const char *)sqlite3_column_text(st, 1);
            if (k && e && !cb(arg, k, e, sqlite3_column_double(st, 2))) {
                rc = SQLITE_DONE;
                break;
            }
            rc = SQLITE_OK;
        }
        if (rc != SQLITE_DONE)
            err = st_errno_from_sqlite(rc);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return err;
}
