/*
 * st_test.h — helpers shared by the store tests: temporary folders, fixtures, a collector
 * actor that gathers the store's replies for the test thread, and small SQLite queries.
 *
 * Each test case runs in its own forked process, so the collector's state is a plain global
 * guarded by a mutex (the collector runs on worker threads, the test waits on main).
 * Everything is static inline: one copy per test executable, no unused-function warnings.
 */
#ifndef ST_TEST_H
#define ST_TEST_H

#include "st_read.h"
#include "st_schema.h"
#include "st_store.h"

#include "rt_alloc.h"
#include "rt_sched.h"
#include "rt_util.h"
#include "test.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef ST_TEST_DATA
#error "ST_TEST_DATA must name tests/data/store"
#endif

#define WAIT_MS 20000 /* every wait has this deadline */

/* ============================================================ temp folders */

static char tmp_dir[256] __attribute__((unused));

static inline int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static inline void tmp_cleanup(void)
{
    if (tmp_dir[0])
        nftw(tmp_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh folder for this case, removed at exit. Returns "<dir>/<name>" in a static slot. */
static inline const char *tmp_path(const char *name)
{
    static char paths[8][320];
    static int next;
    if (!tmp_dir[0]) {
        snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/hermes-store-test-XXXXXX");
        ASSERT_NOT_NULL(mkdtemp(tmp_dir));
        atexit(tmp_cleanup);
    }
    char *p = paths[next++ % 8];
    snprintf(p, sizeof(paths[0]), "%s/%s", tmp_dir, name);
    return p;
}

/* Whole file into a heap string (test data). */
static inline char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        TEST_FAIL_("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = rt_xmalloc((size_t)n + 1);
    ASSERT_EQ(n, (long)fread(s, 1, (size_t)n, f));
    s[n] = '\0';
    fclose(f);
    return s;
}

/* Create db_path from a fixture script in tests/data/store, as the original would have. */
static inline void make_fixture_db(const char *fixture, const char *db_path)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", ST_TEST_DATA, fixture);
    char *sql = slurp(p);
    sqlite3 *db = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_open(db_path, &db));
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        TEST_FAIL_("fixture %s: %s", fixture, err);
    sqlite3_close(db);
    rt_free(sql);
}

/* ============================================================ SQLite helpers */

static inline sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL));
    sqlite3_busy_timeout(db, WAIT_MS);
    return db;
}

/* One integer from sql (fails the test on error; -1 when no row). */
static inline int64_t q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        TEST_FAIL_("prepare %s: %s", sql, sqlite3_errmsg(db));
    int64_t v = -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE)
        TEST_FAIL_("step %s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return v;
}

/* One text value from sql into a heap string (NULL for no row or NULL). */
static inline char *q_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        TEST_FAIL_("prepare %s: %s", sql, sqlite3_errmsg(db));
    char *v = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = rt_xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

static inline void integrity_ok(const char *path)
{
    sqlite3 *db = raw_open(path);
    char *r = q_text(db, "PRAGMA integrity_check");
    ASSERT_STR_EQ("ok", r);
    rt_free(r);
    sqlite3_close(db);
}

/* ============================================================ collector */

typedef struct col_entry {
    uint32_t type; /* ST_MSG_ACK, ST_MSG_RESULT, ST_MSG_STATS_REPLY */
    uint32_t op;
    uint64_t tag;
    int err;
    int64_t id;
    uint64_t commit;
    int64_t count;
    cJSON *json; /* owned */
    char errmsg[ST_ERRMSG_MAX];
    st_msg_stats stats;
} col_entry;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    col_entry *e;
    size_t n, cap;
    sqlite3 *verify; /* if set: every successful APPEND ack is checked against it */
    int not_durable; /* APPEND acks whose row was not visible when the ack arrived */
} col __attribute__((unused)) = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0, NULL, 0};

static inline bool row_visible(sqlite3 *db, int64_t id)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM messages WHERE id = %lld", (long long)id);
    return q_int(db, sql) == 1;
}

static inline void col_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)cx, (void)state;
    col_entry e;
    memset(&e, 0, sizeof(e));
    e.type = m->type;
    if (m->type == ST_MSG_ACK) {
        st_msg_ack *a = (st_msg_ack *)m;
        e.op = a->op, e.tag = a->tag, e.err = a->err, e.id = a->id, e.commit = a->commit;
        memcpy(e.errmsg, a->errmsg, sizeof(e.errmsg));
    } else if (m->type == ST_MSG_RESULT) {
        st_msg_result *r = (st_msg_result *)m;
        e.op = r->op, e.tag = r->tag, e.err = r->err, e.count = r->count, e.json = r->json;
        r->json = NULL; /* stolen */
        memcpy(e.errmsg, r->errmsg, sizeof(e.errmsg));
    } else if (m->type == ST_MSG_STATS_REPLY) {
        e.stats = *(st_msg_stats *)m;
        e.tag = e.stats.tag;
    } else {
        return;
    }
    pthread_mutex_lock(&col.mu);
    /* Rule 1 of st_store.h: when the ack arrives, another connection sees the row. */
    if (col.verify && e.type == ST_MSG_ACK && e.op == ST_MSG_APPEND && e.err == 0 &&
        !row_visible(col.verify, e.id))
        col.not_durable++;
    if (col.n == col.cap) {
        col.cap = col.cap ? col.cap * 2 : 64;
        col.e = rt_xrealloc(col.e, col.cap * sizeof(*col.e));
    }
    col.e[col.n++] = e;
    pthread_cond_broadcast(&col.cv);
    pthread_mutex_unlock(&col.mu);
}
static const rt_actor_type col_type __attribute__((unused)) = {"collector", col_behave, NULL, 0};

/* Wait until at least n replies arrived; fails the test at the deadline. */
static inline void col_wait(size_t n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&col.mu);
    while (col.n < n) {
        if (pthread_cond_timedwait(&col.cv, &col.mu, &dl) == ETIMEDOUT) {
            size_t got = col.n;
            pthread_mutex_unlock(&col.mu);
            TEST_FAIL_("timed out waiting for %zu replies (got %zu)", n, got);
        }
    }
    pthread_mutex_unlock(&col.mu);
}

/* A copy of the i-th reply (after col_wait covered it); json stays owned by the collector. */
static inline col_entry col_at(size_t i)
{
    pthread_mutex_lock(&col.mu);
    RT_VERIFY(i < col.n);
    col_entry e = col.e[i];
    pthread_mutex_unlock(&col.mu);
    return e;
}

static inline size_t col_count(void)
{
    pthread_mutex_lock(&col.mu);
    size_t n = col.n;
    pthread_mutex_unlock(&col.mu);
    return n;
}

static inline void col_reset(void)
{
    pthread_mutex_lock(&col.mu);
    for (size_t i = 0; i < col.n; i++)
        cJSON_Delete(col.e[i].json);
    rt_free(col.e);
    col.e = NULL;
    col.n = col.cap = 0;
    col.not_durable = 0;
    pthread_mutex_unlock(&col.mu);
}

/* ============================================================ store fixture */

typedef struct harness {
    rt_runtime *rt;
    rt_ctx *cx;
    rt_ref col;
    st_store_refs st;
    const char *path;
} harness;

static inline void h_start_opts(harness *h, const st_store_opts *o)
{
    rt_options ro = {.workers = 2};
    h->rt = rt_runtime_new(&ro);
    h->cx = rt_ctx_external(h->rt);
    h->col = rt_spawn(h->cx, &col_type, NULL, NULL);
    h->path = o->path;
    char msg[ST_ERRMSG_MAX] = "";
    int err = st_store_start(h->cx, o, &h->st, msg, sizeof(msg));
    if (err)
        TEST_FAIL_("st_store_start: %d %s", err, msg);
}

static inline void h_start(harness *h, const char *path)
{
    st_store_opts o = {.path = path};
    h_start_opts(h, &o);
}

/* Send a request (its req is filled here) and return the reply index it will have. */
static inline void h_send(harness *h, rt_msg *m, uint64_t tag)
{
    st_req *r = &((st_msg_ctl *)(void *)m)->req;
    r->reply_to = h->col;
    r->tag = tag;
    bool read = RT_MSG_MODULE(m->type) == RT_MSG_MODULE_ST && (m->type & 0xffffu) >= 32;
    ASSERT_TRUE(rt_send(h->cx, read ? st_store_reader(&h->st, tag) : h->st.writer, m));
}

/* Send and wait for the one reply; returns it. */
static inline col_entry h_call(harness *h, rt_msg *m)
{
    size_t n = col_count();
    h_send(h, m, n);
    col_wait(n + 1);
    return col_at(n);
}

static inline void h_create(harness *h, const char *id, const char *source)
{
    col_entry e = h_call(h, &st_create_session_new(id, source)->hdr);
    if (e.err)
        TEST_FAIL_("create session %s: %d %s", id, e.err, e.errmsg);
}

static inline int64_t h_append(harness *h, const char *sid, const char *role, const char *content)
{
    col_entry e = h_call(h, &st_append_new(sid, role, content)->hdr);
    if (e.err)
        TEST_FAIL_("append: %d %s", e.err, e.errmsg);
    return e.id;
}

static inline st_msg_stats h_stats(harness *h)
{
    col_entry e = h_call(h, &st_ctl_new(ST_MSG_STATS, 0, 0)->hdr);
    ASSERT_EQ(ST_MSG_STATS_REPLY, e.type);
    return e.stats;
}

/* Shut the store down cleanly (queued writes committed) and free the runtime. */
static inline void h_stop(harness *h)
{
    size_t n = col_count();
    st_store_stop(h->cx, &h->st, h->col, 0xdead);
    col_wait(n + 1);
    ASSERT_EQ(ST_MSG_SHUTDOWN, col_at(col_count() - 1).op);
    ASSERT_OK(rt_wait_quiescent(h->rt, WAIT_MS));
    rt_runtime_free(h->rt);
    col_reset();
    memset(h, 0, sizeof(*h));
}

#endif /* ST_TEST_H */
