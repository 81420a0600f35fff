/*
 * The store actors: appends and counters as the original, group commit (N writes, one
 * transaction), acks only after commit, per-write commit mode, FTS over old and new rows,
 * reader actors, concurrent readers while writing, disk full and I/O errors with recovery,
 * restart, clean shutdown, bad input, 10 MB content, invalid UTF-8.
 */
#include "rt_buf.h"
#include "st_test.h"
#include "st_titles.h"

#include <signal.h>
#include <sys/resource.h>

#define S1 "sess-1"

static cJSON *read_json(harness *h, rt_msg *m, int want_err)
{
    col_entry e = h_call(h, m);
    ASSERT_EQ(ST_MSG_RESULT, e.type);
    if (e.err != want_err)
        TEST_FAIL_("read op %#x: err %d (%s), want %d", e.op, e.err, e.errmsg, want_err);
    return e.json; /* owned by the collector */
}

static int64_t read_count(harness *h, uint32_t type, const char *key)
{
    col_entry e = h_call(h, &st_get_new(type, key, 0, 0)->hdr);
    ASSERT_EQ(0, e.err);
    return e.count;
}

static int64_t session_int(const char *path, const char *id, const char *col_name)
{
    sqlite3 *db = raw_open(path);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT %s FROM sessions WHERE id = '%s'", col_name, id);
    int64_t v = q_int(db, sql);
    sqlite3_close(db);
    return v;
}

/* Hold the write lock from another connection so the writer's BEGIN waits: everything sent
 * meanwhile is queued behind the first write, deterministically. */
static sqlite3 *hold_write_lock(const char *path)
{
    sqlite3 *db = raw_open(path);
    ASSERT_EQ(SQLITE_OK, sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL));
    return db;
}

static void release_write_lock(sqlite3 *db)
{
    ASSERT_EQ(SQLITE_OK, sqlite3_exec(db, "COMMIT", NULL, NULL, NULL));
    sqlite3_close(db);
}

TEST(append_and_counters_as_the_original)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    st_msg_create_session *c = st_create_session_new(S1, "matrix");
    c->model = rt_xstrdup("gpt-test");
    c->model_config = rt_xstrdup("{\"temperature\": 0.2}");
    c->user_id = rt_xstrdup("@alice:example.org");
    col_entry e = h_call(&h, &c->hdr);
    ASSERT_EQ(0, e.err);
    ASSERT_GT(e.commit, 0);

    double t0 = st_now_epoch();
    int64_t id1 = h_append(&h, S1, "user", "list the containers");
    st_msg_append *a = st_append_new(S1, "assistant", NULL);
    a->tool_calls = rt_xstrdup("[{\"id\":\"c1\",\"type\":\"function\",\"function\":"
                               "{\"name\":\"terminal\",\"arguments\":\"{}\"}}]");
    a->finish_reason = rt_xstrdup("tool_calls");
    a->token_count = 17;
    a->has_token_count = true;
    e = h_call(&h, &a->hdr);
    ASSERT_EQ(0, e.err);
    int64_t id2 = e.id;
    st_msg_append *t = st_append_new(S1, "tool", "nginx up");
    t->tool_call_id = rt_xstrdup("c1");
    t->tool_name = rt_xstrdup("terminal");
    e = h_call(&h, &t->hdr);
    ASSERT_EQ(0, e.err);
    int64_t id4 = h_append(&h, S1, "assistant", "nginx is running");
    ASSERT_GT(id2, id1);
    ASSERT_GT(id4, e.id);

    /* Empty tool_calls: stored NULL but counted, as the original's "is not None". */
    st_msg_append *z = st_append_new(S1, "assistant", "nothing to call");
    z->tool_calls = rt_xstrdup("[]");
    e = h_call(&h, &z->hdr);
    ASSERT_EQ(0, e.err);

    ASSERT_EQ(5, session_int(h.path, S1, "message_count"));
    ASSERT_EQ(3, session_int(h.path, S1, "tool_call_count"));
    sqlite3 *db = raw_open(h.path);
    ASSERT_EQ(5, q_int(db, "SELECT count(*) FROM messages WHERE session_id = 'sess-1'"));
    ASSERT_EQ(1, q_int(db, "SELECT count(*) FROM messages WHERE tool_calls IS NULL AND "
                           "content = 'nothing to call'"));
    ASSERT_EQ(17, q_int(db, "SELECT token_count FROM messages WHERE finish_reason = 'tool_calls'"));
    /* Times are Unix epoch floats, now-ish, never going back. */
    char *ty = q_text(db, "SELECT typeof(timestamp) FROM messages LIMIT 1");
    ASSERT_STR_EQ("real", ty);
    rt_free(ty);
    ASSERT_EQ(0, q_int(db, "SELECT count(*) FROM messages a JOIN messages b ON b.id = a.id + 1 "
                           "WHERE b.timestamp < a.timestamp"));
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM messages WHERE timestamp < %f - 1", t0);
    ASSERT_EQ(0, q_int(db, sql));
    ASSERT_EQ(1, q_int(db, "SELECT count(*) FROM sessions WHERE typeof(started_at) = 'real' "
                           "AND model_config = '{\"temperature\": 0.2}'"));
    sqlite3_close(db);

    /* The conversation reads back through a reader actor. */
    cJSON *conv = read_json(&h, &st_get_new(ST_MSG_GET_MESSAGES, S1, 0, 0)->hdr, 0);
    ASSERT_EQ(5, cJSON_GetArraySize(conv));
    const cJSON *calls =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(conv, 1), "tool_calls");
    ASSERT_TRUE(cJSON_IsArray(calls));
    h_stop(&h);
}

TEST(session_updates)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    h_create(&h, S1, "cli");
    ASSERT_EQ(0, h_call(&h, &st_set_prompt_new(S1, "You are Hermes.")->hdr).err);
    ASSERT_EQ(0, h_call(&h, &st_add_tokens_new(S1, 100, 7)->hdr).err);
    ASSERT_EQ(0, h_call(&h, &st_add_tokens_new(S1, 20, 3)->hdr).err);
    /* an answer carries the tokens of the call that produced it */
    st_msg_append *a = st_append_new(S1, "assistant", "hello");
    a->input_tokens = 1000;
    a->output_tokens = 40;
    ASSERT_EQ(0, h_call(&h, &a->hdr).err);
    ASSERT_EQ(1, session_int(h.path, S1, "message_count"));
    ASSERT_EQ(0, session_int(h.path, S1, "tool_call_count"));
    ASSERT_EQ(0, h_call(&h, &st_end_session_new(S1, "cli_close")->hdr).err);
    cJSON *s = read_json(&h, &st_get_new(ST_MSG_GET_SESSION, S1, 0, 0)->hdr, 0);
    ASSERT_STR_EQ("You are Hermes.",
                  cJSON_GetObjectItemCaseSensitive(s, "system_prompt")->valuestring);
    ASSERT_EQ(1120, (int)cJSON_GetObjectItemCaseSensitive(s, "input_tokens")->valuedouble);
    ASSERT_EQ(50, (int)cJSON_GetObjectItemCaseSensitive(s, "output_tokens")->valuedouble);
    ASSERT_STR_EQ("cli_close", cJSON_GetObjectItemCaseSensitive(s, "end_reason")->valuestring);
    ASSERT_TRUE(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(s, "ended_at")));
    /* Child session pointing at its parent. */
    st_msg_create_session *c = st_create_session_new("child", "cli");
    c->parent_session_id = rt_xstrdup(S1);
    ASSERT_EQ(0, h_call(&h, &c->hdr).err);
    h_stop(&h);
}

static void collect_inbound(void *arg, const char *platform, const char *message_id)
{
    rt_buf *b = arg;
    rt_buf_printf(b, "%s/%s ", platform, message_id);
}

TEST(inbound_keys_are_kept_once_read_back_in_order_and_pruned_after_a_week)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    st_msg_inbound *old = st_inbound_new("matrix", "$old", "agent:main:matrix:dm:!r");
    old->received_at -= ST_INBOUND_KEEP_S + 60;
    ASSERT_EQ(0, h_call(&h, &old->hdr).err);
    ASSERT_EQ(0, h_call(&h, &st_inbound_new("matrix", "$a", NULL)->hdr).err);
    ASSERT_EQ(0, h_call(&h, &st_inbound_new("matrix", "$a", NULL)->hdr).err); /* again: kept once */
    ASSERT_EQ(0, h_call(&h, &st_inbound_new("telegram", "$a", NULL)->hdr).err);
    col_entry e = h_call(&h, &st_inbound_new(NULL, "$b", NULL)->hdr);
    ASSERT_EQ(-EINVAL, e.err);
    ASSERT_STR_CONTAINS(e.errmsg, "platform");

    int err = 0;
    char msg[256];
    st_reader *r = st_reader_open(h.path, &err, msg, sizeof(msg));
    ASSERT_NOT_NULL(r);
    rt_buf b;
    rt_buf_init(&b, 1 << 20);
    ASSERT_OK(st_read_inbound_recent(r, 10, collect_inbound, &b));
    ASSERT_STR_EQ("matrix/$old matrix/$a telegram/$a ", rt_buf_cstr(&b));
    rt_buf_reset(&b);
    ASSERT_OK(st_read_inbound_recent(r, 2, collect_inbound, &b)); /* the newest two */
    ASSERT_STR_EQ("matrix/$a telegram/$a ", rt_buf_cstr(&b));

    /* pruning runs every 1024 updates: the week-old row goes */
    for (int i = 0; i < 1024; i++) {
        char id[32];
        snprintf(id, sizeof(id), "$n%d", i);
        ASSERT_EQ(0, h_call(&h, &st_inbound_new("matrix", id, NULL)->hdr).err);
    }
    rt_buf_reset(&b);
    ASSERT_OK(st_read_inbound_recent(r, 5000, collect_inbound, &b));
    ASSERT_TRUE(strstr(rt_buf_cstr(&b), "$old") == NULL);
    ASSERT_STR_CONTAINS(rt_buf_cstr(&b), "matrix/$n1023 ");
    rt_buf_fini(&b);
    st_reader_free(r);
    h_stop(&h);
}

TEST(truncate_keeps_the_head_and_recounts)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    h_create(&h, S1, "cli");
    h_append(&h, S1, "user", "first question");
    h_append(&h, S1, "assistant", "first answer");
    h_append(&h, S1, "user", "second question");
    st_msg_append *t = st_append_new(S1, "tool", "tool output");
    t->tool_call_id = rt_xstrdup("c1");
    ASSERT_EQ(0, h_call(&h, &t->hdr).err);
    h_append(&h, S1, "assistant", "second answer");
    ASSERT_EQ(5, session_int(h.path, S1, "message_count"));
    ASSERT_EQ(1, session_int(h.path, S1, "tool_call_count"));

    col_entry e = h_call(&h, &st_truncate_new(S1, 2)->hdr);
    ASSERT_EQ(0, e.err);
    ASSERT_EQ(3, e.id); /* three deleted */
    ASSERT_EQ(2, session_int(h.path, S1, "message_count"));
    ASSERT_EQ(0, session_int(h.path, S1, "tool_call_count"));
    cJSON *conv = read_json(&h, &st_get_new(ST_MSG_GET_MESSAGES, S1, 0, 0)->hdr, 0);
    ASSERT_EQ(2, cJSON_GetArraySize(conv));
    ASSERT_STR_EQ(
        "first answer",
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(conv, 1), "content")->valuestring);
    /* FTS follows the delete. */
    sqlite3 *db = raw_open(h.path);
    ASSERT_EQ(0, q_int(db, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH "
                           "'second'"));
    sqlite3_close(db);

    /* Keeping more than there is deletes nothing; bad input gets clear errors. */
    e = h_call(&h, &st_truncate_new(S1, 10)->hdr);
    ASSERT_EQ(0, e.err);
    ASSERT_EQ(0, e.id);
    e = h_call(&h, &st_truncate_new("nope", 0)->hdr);
    ASSERT_EQ(-ENOENT, e.err);
    e = h_call(&h, &st_truncate_new(S1, -1)->hdr);
    ASSERT_EQ(-EINVAL, e.err);
    ASSERT_NOT_NULL(strstr(e.errmsg, "keep"));

    h_stop(&h);
}

/* A burst of appends (well above ST_FTS_DEFER_RATE per 100 ms), acked; n of them. */
static void append_burst(harness *h, const char *sid, int n, const char *word)
{
    size_t base = col_count();
    for (int i = 0; i < n; i++) {
        char body[96];
        snprintf(body, sizeof(body), "%s number %d", word, i);
        h_send(h, &st_append_new(sid, "user", body)->hdr, base + (size_t)i);
    }
    col_wait(base + (size_t)n);
    for (int i = 0; i < n; i++)
        ASSERT_EQ(0, col_at(base + (size_t)i).err);
}

static int64_t fts_count(const char *path, const char *word)
{
    sqlite3 *db = raw_open(path);
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH '%s'",
             word);
    int64_t n = q_int(db, sql);
    sqlite3_close(db);
    return n;
}

static void fts_consistent(const char *path)
{
    sqlite3 *db = raw_open(path);
    ASSERT_EQ(SQLITE_OK, sqlite3_exec(db,
                                      "INSERT INTO messages_fts(messages_fts, rank) "
                                      "VALUES('integrity-check', 1)",
                                      NULL, NULL, NULL));
    sqlite3_close(db);
}

/* The writer indexes what it writes itself (its triggers are off, st_store.c); every other
 * connection keeps the original's triggers; the index agrees with its content either way. */
TEST(search_index_is_written_by_the_writer_and_by_other_programs)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    h_create(&h, S1, "cli");
    h_append(&h, S1, "user", "where is the walrus");
    h_append(&h, S1, "assistant", "the walrus is in the kelp");
    h_append(&h, S1, "user", "and the narwhal");
    ASSERT_EQ(0, h_call(&h, &st_truncate_new(S1, 2)->hdr).err);
    sqlite3 *db = raw_open(h.path);
    ASSERT_EQ(2, q_int(db, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'walrus'"));
    ASSERT_EQ(0, q_int(db, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'narwhal'"));
    /* another program appends and deletes through the triggers, which are still there */
    ASSERT_EQ(3, q_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND "
                           "name LIKE 'messages_fts_%'"));
    ASSERT_EQ(SQLITE_OK, sqlite3_exec(db,
                                      "INSERT INTO messages (session_id, role, content, "
                                      "timestamp) VALUES ('" S1 "', 'user', 'a pelican', 1)",
                                      NULL, NULL, NULL));
    ASSERT_EQ(1, q_int(db, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'pelican'"));
    fts_consistent(h.path);
    /* session operations copy and delete with plain SQL: the triggers are on for them */
    st_msg_sop *b = st_sop_new(ST_SOP_BRANCH, S1, 0, 0);
    b->new_id = rt_xstrdup("branch");
    b->source = rt_xstrdup("cli");
    ASSERT_EQ(0, h_call(&h, &b->hdr).err);
    ASSERT_EQ(4, q_int(db, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'walrus'"));
    ASSERT_EQ(0, h_call(&h, &st_sop_new(ST_SOP_DELETE, "branch", 0, 0)->hdr).err);
    ASSERT_EQ(2, q_int(db, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'walrus'"));
    sqlite3_close(db);
    /* and off again for the writer's own appends (on, this one would be indexed twice) */
    h_append(&h, S1, "assistant", "pelicans and walruses");
    db = raw_open(h.path);
    ASSERT_EQ(1,
              q_int(db, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'pelicans'"));
    fts_consistent(h.path);
    sqlite3_close(db);
    h_stop(&h);
}

/* Under load search entries are written in batches (st_store.h rule 5): a SYNC returns when
 * every message before it is searchable; without one, the batch's timer gets there. */
TEST(a_burst_is_indexed_in_batches_searchable_after_a_sync_or_the_batch_timer)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    h_create(&h, S1, "cli");
    append_burst(&h, S1, 600, "heron");
    ASSERT_GT(h_stats(&h).search_waiting, 0); /* batched, not written with each message */
    ASSERT_EQ(0, h_call(&h, &st_ctl_new(ST_MSG_SYNC, 0, 0)->hdr).err);
    st_msg_stats st = h_stats(&h);
    ASSERT_EQ(0, st.search_waiting);
    ASSERT_GE(st.search_batches, 1);
    ASSERT_EQ(600, fts_count(h.path, "heron"));
    /* no SYNC: the timer writes the batch within ST_FTS_BATCH_MS */
    append_burst(&h, S1, 400, "egret");
    int64_t deadline = rt_now_ns(h.rt) + (int64_t)WAIT_MS * 1000000;
    while (fts_count(h.path, "egret") < 400 && rt_now_ns(h.rt) < deadline) {
        const struct timespec ms = {0, 20000000};
        nanosleep(&ms, NULL);
    }
    ASSERT_EQ(400, fts_count(h.path, "egret"));
    ASSERT_EQ(0, h_stats(&h).search_waiting);
    /* a truncate with entries still waiting writes them first: FTS5 deletes only what it
     * indexed */
    append_burst(&h, S1, 300, "ibis");
    ASSERT_EQ(0, h_call(&h, &st_truncate_new(S1, 1000)->hdr).err);
    ASSERT_EQ(0, fts_count(h.path, "ibis"));
    ASSERT_EQ(400, fts_count(h.path, "egret"));
    fts_consistent(h.path);
    const char *p = h.path;
    h_stop(&h);
    sqlite3 *db = raw_open(p);
    ASSERT_EQ(0, q_int(db, "SELECT count(*) FROM hc_fts_pending"));
    sqlite3_close(db);
}

/* A crash between a message and its batch leaves its id in hc_fts_pending: the next writer
 * indexes it when it opens the database. And a stop writes the waiting batch first. */
/* A state.db with session S1 in it and no writer on it. */
static const char *db_with_a_session(void)
{
    const char *p = tmp_path("state.db");
    harness h;
    h_start(&h, p);
    h_create(&h, S1, "cli");
    h_stop(&h);
    return p;
}

TEST(messages_a_crash_left_unindexed_are_indexed_at_the_next_start)
{
    const char *p = db_with_a_session();
    harness h;
    /* what a crash leaves: rows stored, their ids waiting, no index entries */
    sqlite3 *db = raw_open(p);
    ASSERT_EQ(SQLITE_OK, sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL));
    ASSERT_EQ(SQLITE_OK, sqlite3_exec(db,
                                      "INSERT INTO messages (session_id, role, content, "
                                      "timestamp) VALUES ('" S1 "', 'user', 'a lost puffin', 1);"
                                      "INSERT INTO hc_fts_pending (id) SELECT max(id) FROM "
                                      "messages",
                                      NULL, NULL, NULL));
    sqlite3_close(db);
    ASSERT_EQ(0, fts_count(p, "puffin"));
    h_start(&h, p);
    ASSERT_EQ(1, fts_count(p, "puffin"));
    ASSERT_EQ(0, h_stats(&h).search_waiting);
    /* a clean stop with a batch waiting writes it */
    append_burst(&h, S1, 300, "gannet");
    h_stop(&h);
    ASSERT_EQ(300, fts_count(p, "gannet"));
    fts_consistent(p);
}

static int64_t fts_automerge(const char *path)
{
    sqlite3 *db = raw_open(path);
    int64_t v = q_int(db, "SELECT v FROM messages_fts_config WHERE k = 'automerge'");
    sqlite3_close(db);
    return v;
}

static void fts_set_automerge(const char *path, int v)
{
    sqlite3 *db = raw_open(path);
    char sql[96];
    snprintf(sql, sizeof(sql),
             "INSERT INTO messages_fts(messages_fts, rank) VALUES ('automerge', %d)", v);
    ASSERT_EQ(SQLITE_OK, sqlite3_exec(db, sql, NULL, NULL, NULL));
    sqlite3_close(db);
}

/* The index's segments (FTS5 numbers a segment's pages from its id << 37; id 0 holds its
 * bookkeeping). */
static int64_t fts_segments(const char *path)
{
    sqlite3 *db = raw_open(path);
    int64_t n = q_int(db, "SELECT count(DISTINCT id >> 37) FROM messages_fts_data WHERE "
                          "id >> 37 > 0");
    sqlite3_close(db);
    return n;
}

/* FTS5's automerge does its merging in one go inside whatever write crosses its line (the
 * capacity benchmark's stalls): while the writer runs it is off and the writer merges in
 * small steps between writes; what the index had is given back at the stop. */
TEST(the_writer_merges_the_search_index_in_steps_and_gives_automerge_back)
{
    const char *p = db_with_a_session();
    harness h;
    fts_set_automerge(p, 8);
    h_start(&h, p);
    ASSERT_EQ(0, fts_automerge(p));
    /* every message its own commit, every commit a segment: 16 of them at a level would be
     * FTS5's crisis merge, so without the writer's steps this leaves 20 or more */
    for (int i = 0; i < 120; i++) {
        char body[64];
        snprintf(body, sizeof(body), "cormorant number %d", i);
        h_append(&h, S1, "user", body);
        ASSERT_EQ(0, h_call(&h, &st_ctl_new(ST_MSG_SYNC, 0, 0)->hdr).err);
    }
    int64_t deadline = rt_now_ns(h.rt) + (int64_t)WAIT_MS * 1000000;
    while (fts_segments(p) > 9 && rt_now_ns(h.rt) < deadline) {
        const struct timespec ms = {0, 20000000};
        nanosleep(&ms, NULL);
    }
    ASSERT_LE(fts_segments(p), 9); /* fewer than 4 at each of at most three levels */
    ASSERT_GT(h_stats(&h).search_merges, 0);
    ASSERT_EQ(120, fts_count(p, "cormorant"));
    fts_consistent(p);
    h_stop(&h);
    ASSERT_EQ(8, fts_automerge(p));
    /* a 0 found at the start is what a run that did not stop leaves: FTS5's default comes back */
    fts_set_automerge(p, 0);
    h_start(&h, p);
    ASSERT_EQ(0, fts_automerge(p));
    h_stop(&h);
    ASSERT_EQ(4, fts_automerge(p));
}

#define GROUP_N 200

TEST(group_commit_puts_a_burst_in_one_transaction)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    h_create(&h, S1, "cli");
    st_msg_stats before = h_stats(&h);

    size_t base = col_count();
    sqlite3 *lock = hold_write_lock(h.path);
    for (int i = 0; i < GROUP_N; i++) {
        char body[64];
        snprintf(body, sizeof(body), "burst message %d", i);
        h_send(&h, &st_append_new(S1, "user", body)->hdr, (uint64_t)i);
    }
    release_write_lock(lock);
    col_wait(base + GROUP_N);

    uint64_t commit = col_at(base).commit;
    ASSERT_GT(commit, 0);
    for (int i = 0; i < GROUP_N; i++) {
        col_entry e = col_at(base + (size_t)i);
        ASSERT_EQ(0, e.err);
        ASSERT_EQ((uint64_t)i, e.tag); /* acks in request order */
        ASSERT_EQ(commit, e.commit);   /* one transaction for all */
        if (i)
            ASSERT_EQ(col_at(base + (size_t)i - 1).id + 1, e.id); /* each written once */
    }
    st_msg_stats after = h_stats(&h);
    ASSERT_EQ(before.commits + 1, after.commits);
    ASSERT_EQ(before.commit_hooks + 1, after.commit_hooks);
    ASSERT_GE(after.max_batch, GROUP_N);
    ASSERT_EQ(GROUP_N, session_int(h.path, S1, "message_count"));
    h_stop(&h);
}

TEST(commit_each_mode_commits_every_write)
{
    harness h;
    st_store_opts o = {.path = tmp_path("state.db"), .commit_each = true};
    h_start_opts(&h, &o);
    h_create(&h, S1, "cli");
    st_msg_stats before = h_stats(&h);
    size_t base = col_count();
    sqlite3 *lock = hold_write_lock(h.path);
    for (int i = 0; i < 20; i++)
        h_send(&h, &st_append_new(S1, "user", "one by one")->hdr, (uint64_t)i);
    release_write_lock(lock);
    col_wait(base + 20);
    st_msg_stats after = h_stats(&h);
    ASSERT_EQ(before.commits + 20, after.commits);
    ASSERT_NE(col_at(base).commit, col_at(base + 19).commit);
    h_stop(&h);
}

/* Several actors append at once; every ack must find its row already committed. */
typedef struct sender {
    rt_ref store, col;
    int id, left;
} sender;

enum { T_GO = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1) };

static void sender_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    sender *s = state;
    for (int i = 0; i < 25 && s->left > 0; i++, s->left--) {
        char body[64];
        snprintf(body, sizeof(body), "sender %d message %d", s->id, s->left);
        st_msg_append *a = st_append_new(S1, "user", body);
        a->req.reply_to = s->col;
        a->req.tag = (uint64_t)s->id;
        rt_send(cx, s->store, &a->hdr);
    }
    if (s->left > 0)
        rt_send(cx, rt_self(cx), rt_msg_new(T_GO, sizeof(rt_msg)));
}
static const rt_actor_type sender_type = {"sender", sender_behave, NULL, sizeof(sender)};

TEST(acks_come_only_after_commit)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    h_create(&h, S1, "cli");
    sqlite3 *verify = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_open_v2(h.path, &verify, SQLITE_OPEN_READONLY, NULL));
    pthread_mutex_lock(&col.mu);
    col.verify = verify;
    pthread_mutex_unlock(&col.mu);
    size_t base = col_count();
    enum { SENDERS = 4, EACH = 250 };
    for (int i = 0; i < SENDERS; i++) {
        sender s = {.store = h.st.writer, .col = h.col, .id = i, .left = EACH};
        rt_ref r = rt_spawn(h.cx, &sender_type, &s, NULL);
        rt_send(h.cx, r, rt_msg_new(T_GO, sizeof(rt_msg)));
    }
    col_wait(base + SENDERS * EACH);
    pthread_mutex_lock(&col.mu);
    int bad = col.not_durable;
    col.verify = NULL;
    pthread_mutex_unlock(&col.mu);
    ASSERT_EQ(0, bad);
    for (size_t i = 0; i < SENDERS * EACH; i++)
        ASSERT_EQ(0, col_at(base + i).err);
    st_msg_stats st = h_stats(&h);
    ASSERT_LT(st.commits, 1 + SENDERS * EACH); /* some sharing happened (no timing assumed) */
    ASSERT_EQ(SENDERS * EACH, session_int(h.path, S1, "message_count"));
    sqlite3_close(verify);
    h_stop(&h);
}

TEST(original_database_keeps_working_and_fts_finds_old_and_new)
{
    const char *p = tmp_path("state.db");
    make_fixture_db("original_v2.sql", p);
    harness h;
    h_start(&h, p);
    /* Append to the original's session; its counters continue. */
    h_append(&h, "20260301_101500_a1b2c3", "user", "now scale the docker swarm to five nodes");
    ASSERT_EQ(5, session_int(p, "20260301_101500_a1b2c3", "message_count"));
    h_create(&h, "new-matrix", "matrix");
    h_append(&h, "new-matrix", "user", "is the docker registry healthy?");

    st_msg_search *s = st_search_new("docker", 0, 0);
    cJSON *hits = read_json(&h, &s->hdr, 0);
    ASSERT_EQ(4, cJSON_GetArraySize(hits)); /* 2 old + 2 new; every source by default */
    int old = 0, fresh = 0;
    const cJSON *hit = NULL;
    cJSON_ArrayForEach(hit, hits)
    {
        const char *snip = cJSON_GetObjectItemCaseSensitive(hit, "snippet")->valuestring;
        ASSERT_STR_CONTAINS(snip, ">>>docker<<<");
        const char *sid = cJSON_GetObjectItemCaseSensitive(hit, "session_id")->valuestring;
        if (strncmp(sid, "2026", 4) == 0)
            old++;
        else
            fresh++;
        ASSERT_TRUE(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(hit, "context")) >= 1);
    }
    ASSERT_EQ(3, old); /* the fixture's two, plus the new message in the old session */
    ASSERT_EQ(1, fresh);

    /* Filters through the actor. */
    s = st_search_new("docker", 0, 0);
    st_search_add_source(s, "matrix");
    st_search_add_role(s, "user");
    hits = read_json(&h, &s->hdr, 0);
    ASSERT_EQ(1, cJSON_GetArraySize(hits));
    /* A syntax error is a clear error reply. */
    col_entry e = h_call(&h, &st_search_new("docker NEAR(", 0, 0)->hdr);
    ASSERT_EQ(-EINVAL, e.err);
    ASSERT_STR_CONTAINS(e.errmsg, "search query: ");
    ASSERT_NULL(e.json);
    /* Other reads. */
    ASSERT_EQ(4, read_count(&h, ST_MSG_SESSION_COUNT, NULL));
    ASSERT_EQ(9, read_count(&h, ST_MSG_MESSAGE_COUNT, NULL));
    ASSERT_EQ(5, read_count(&h, ST_MSG_MESSAGE_COUNT, "20260301_101500_a1b2c3"));
    cJSON *latest = read_json(&h, &st_get_new(ST_MSG_LATEST_SESSION, "matrix", 0, 0)->hdr, 0);
    ASSERT_STR_EQ("new-matrix", cJSON_GetObjectItemCaseSensitive(latest, "id")->valuestring);
    read_json(&h, &st_get_new(ST_MSG_LATEST_SESSION, "discord", 0, 0)->hdr, -ENOENT);
    read_json(&h, &st_get_new(ST_MSG_GET_SESSION, "nope", 0, 0)->hdr, -ENOENT);
    st_msg_get *g = st_get_new(ST_MSG_LIST_SESSIONS, "telegram", 0, 0);
    g->limit = 10;
    ASSERT_EQ(2, cJSON_GetArraySize(read_json(&h, &g->hdr, 0)));
    h_stop(&h);
    integrity_ok(p);

    /* The original's own integrity expectations: the FTS index agrees with its content. */
    sqlite3 *db = raw_open(p);
    ASSERT_EQ(SQLITE_OK, sqlite3_exec(db,
                                      "INSERT INTO messages_fts(messages_fts, rank) "
                                      "VALUES('integrity-check', 1)",
                                      NULL, NULL, NULL));
    sqlite3_close(db);
}

/* Readers in plain threads while the writer commits: WAL lets both run, counts only grow. */
typedef struct reader_arg {
    const char *path;
    _Atomic bool *stop;
    int errors;
    int64_t reads;
} reader_arg;

static void *reader_thread(void *p)
{
    reader_arg *ra = p;
    int err = 0;
    char msg[ST_ERRMSG_MAX];
    st_reader *r = st_reader_open(ra->path, &err, msg, sizeof(msg));
    if (!r) {
        ra->errors++;
        return NULL;
    }
    int64_t last = 0;
    for (int i = 0; i < 100000 && !atomic_load(ra->stop); i++) {
        int64_t n = 0;
        cJSON *hits = NULL;
        st_search_query q = {.query = "concurrent", .limit = 5};
        if (st_read_message_count(r, S1, &n) != 0 || n < last || st_read_search(r, &q, &hits) != 0)
            ra->errors++;
        cJSON_Delete(hits);
        last = n;
        ra->reads++;
    }
    st_reader_free(r);
    return NULL;
}

TEST(readers_run_while_the_writer_writes)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    h_create(&h, S1, "cli");
    _Atomic bool stop = false;
    reader_arg ra[2] = {{.path = h.path, .stop = &stop}, {.path = h.path, .stop = &stop}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(0, pthread_create(&th[i], NULL, reader_thread, &ra[i]));
    size_t base = col_count();
    for (int i = 0; i < 1000; i++)
        h_send(&h, &st_append_new(S1, "user", "concurrent write")->hdr, (uint64_t)i);
    col_wait(base + 1000);
    /* And through the reader actors, interleaved with more writes. */
    for (int i = 0; i < 50; i++) {
        h_send(&h, &st_append_new(S1, "user", "concurrent write")->hdr, 0);
        h_send(&h, &st_get_new(ST_MSG_MESSAGE_COUNT, S1, 0, 0)->hdr, (uint64_t)i);
    }
    col_wait(base + 1100);
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        ASSERT_EQ(0, ra[i].errors);
        ASSERT_GT(ra[i].reads, 0);
    }
    for (size_t i = base; i < base + 1100; i++)
        ASSERT_EQ(0, col_at(i).err);
    ASSERT_EQ(1050, session_int(h.path, S1, "message_count"));
    h_stop(&h);
}

static char *big_text(size_t n, const char *word)
{
    char *s = rt_xmalloc(n + 1);
    size_t wl = strlen(word);
    for (size_t i = 0; i < n; i++)
        s[i] = (i % (wl + 1) == wl) ? ' ' : word[i % (wl + 1)];
    s[n] = '\0';
    return s;
}

TEST(disk_full_is_reported_rolled_back_and_recovered)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    h_create(&h, S1, "cli");
    int64_t kept = h_append(&h, S1, "user", "before the disk filled");
    sqlite3 *db = raw_open(h.path);
    int64_t size = q_int(db, "PRAGMA page_count") * q_int(db, "PRAGMA page_size");
    sqlite3_close(db);

    st_msg_set_quota *q = st_set_quota_new(size + 16 * 1024);
    col_entry e = h_call(&h, &q->hdr);
    ASSERT_EQ(0, e.err);
    ASSERT_GE(e.id, size);

    /* A small write and a big one in the same transaction: the big one fills the "disk",
     * both are rolled back and both acks say so. */
    char *big = big_text(1 << 20, "overflow");
    size_t base = col_count();
    sqlite3 *lock = hold_write_lock(h.path);
    h_send(&h, &st_append_new(S1, "user", "small, same transaction")->hdr, 1);
    st_msg_append *a = st_append_new(S1, "user", NULL);
    a->content = big; /* moved in */
    h_send(&h, &a->hdr, 2);
    release_write_lock(lock);
    col_wait(base + 2);
    col_entry small = col_at(base), full = col_at(base + 1);
    ASSERT_EQ(-ENOSPC, full.err);
    ASSERT_STR_CONTAINS(full.errmsg, "full");
    ASSERT_EQ(-ENOSPC, small.err);
    ASSERT_STR_CONTAINS(small.errmsg, "rolled back with its transaction");
    ASSERT_EQ(0, small.commit);
    st_msg_stats st = h_stats(&h);
    ASSERT_GE(st.rollbacks, 1);

    /* Nothing of the failed transaction is left; the counters agree with the rows. */
    ASSERT_EQ(1, session_int(h.path, S1, "message_count"));
    integrity_ok(h.path);

    /* Room again: the same writes succeed. */
    ASSERT_EQ(0, h_call(&h, &st_set_quota_new(0)->hdr).err);
    a = st_append_new(S1, "user", NULL);
    a->content = big_text(1 << 20, "overflow");
    e = h_call(&h, &a->hdr);
    ASSERT_EQ(0, e.err);
    ASSERT_GT(e.id, kept);
    ASSERT_EQ(2, session_int(h.path, S1, "message_count"));
    h_stop(&h);
    integrity_ok(h.path);
}

TEST(io_error_from_the_filesystem_then_recovery)
{
    /* A file size limit makes the kernel refuse the WAL's growth (EFBIG): a real write
     * error under SQLite, in this forked case only. */
    signal(SIGXFSZ, SIG_IGN);
    harness h;
    h_start(&h, tmp_path("state.db"));
    h_create(&h, S1, "cli");
    h_append(&h, S1, "user", "before the limit");
    char wal[400];
    snprintf(wal, sizeof(wal), "%s-wal", h.path);
    struct stat sw, sd;
    ASSERT_EQ(0, stat(wal, &sw));
    ASSERT_EQ(0, stat(h.path, &sd));
    struct rlimit old;
    ASSERT_EQ(0, getrlimit(RLIMIT_FSIZE, &old));
    off_t cur = sw.st_size > sd.st_size ? sw.st_size : sd.st_size;
    struct rlimit lim = {.rlim_cur = (rlim_t)cur + 8192, .rlim_max = old.rlim_max};
    ASSERT_EQ(0, setrlimit(RLIMIT_FSIZE, &lim));

    st_msg_append *a = st_append_new(S1, "user", NULL);
    a->content = big_text(1 << 20, "refused");
    col_entry e = h_call(&h, &a->hdr);
    ASSERT_EQ(0, setrlimit(RLIMIT_FSIZE, &old));
    ASSERT_TRUE(e.err == -EIO || e.err == -ENOSPC);
    ASSERT_TRUE(strstr(e.errmsg, "disk") != NULL);
    ASSERT_EQ(1, session_int(h.path, S1, "message_count"));

    a = st_append_new(S1, "user", NULL);
    a->content = big_text(1 << 20, "accepted");
    e = h_call(&h, &a->hdr);
    if (e.err)
        TEST_FAIL_("after the limit was lifted: %d %s", e.err, e.errmsg);
    ASSERT_EQ(2, session_int(h.path, S1, "message_count"));
    h_stop(&h);
    integrity_ok(h.path);
}

TEST(restart_keeps_everything)
{
    const char *p = tmp_path("state.db");
    harness h;
    h_start(&h, p);
    h_create(&h, S1, "cli");
    int64_t last = 0;
    for (int i = 0; i < 10; i++)
        last = h_append(&h, S1, i % 2 ? "assistant" : "user", "persist me across restarts");
    h_stop(&h);

    h_start(&h, p);
    ASSERT_EQ(10, read_count(&h, ST_MSG_MESSAGE_COUNT, S1));
    int64_t next = h_append(&h, S1, "user", "after the restart");
    ASSERT_EQ(last + 1, next);
    cJSON *hits = read_json(&h, &st_search_new("persist", 0, 0)->hdr, 0);
    ASSERT_EQ(10, cJSON_GetArraySize(hits));
    ASSERT_EQ(11, session_int(p, S1, "message_count"));
    h_stop(&h);
    integrity_ok(p);
}

TEST(shutdown_commits_every_queued_write_first)
{
    const char *p = tmp_path("state.db");
    harness h;
    h_start(&h, p);
    h_create(&h, S1, "cli");
    size_t base = col_count();
    for (int i = 0; i < 500; i++)
        h_send(&h, &st_append_new(S1, "user", "queued before shutdown")->hdr, (uint64_t)i);
    st_store_stop(h.cx, &h.st, h.col, 999);
    col_wait(base + 501);
    for (size_t i = 0; i < 500; i++)
        ASSERT_EQ(0, col_at(base + i).err);
    col_entry last = col_at(base + 500);
    ASSERT_EQ(ST_MSG_SHUTDOWN, last.op);
    ASSERT_EQ(999, last.tag);
    ASSERT_OK(rt_wait_quiescent(h.rt, WAIT_MS));
    ASSERT_FALSE(rt_is_alive(h.cx, h.st.writer));
    /* A write after shutdown is a dead letter, not a crash. */
    ASSERT_FALSE(rt_send(h.cx, h.st.writer, &st_append_new(S1, "user", "late")->hdr));
    rt_runtime_free(h.rt);
    col_reset();
    ASSERT_EQ(500, session_int(p, S1, "message_count"));
}

TEST(bad_inputs_get_clear_errors_and_the_store_goes_on)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    h_create(&h, S1, "cli");
    struct {
        rt_msg *m;
        int err;
        const char *text;
    } cases[] = {
        {&st_append_new(NULL, "user", "x")->hdr, -EINVAL, "session_id is required"},
        {&st_append_new(S1, NULL, "x")->hdr, -EINVAL, "role is required"},
        {&st_append_new("no-such-session", "user", "x")->hdr, -ENOENT, "unknown session"},
        {&st_create_session_new(S1, "cli")->hdr, -EEXIST, "exists"},
        {&st_create_session_new(NULL, "cli")->hdr, -EINVAL, "id is required"},
        {&st_create_session_new("s2", NULL)->hdr, -EINVAL, "source is required"},
        {&st_end_session_new("no-such-session", "x")->hdr, -ENOENT, "unknown session"},
        {&st_add_tokens_new("no-such-session", 1, 1)->hdr, -ENOENT, "unknown session"},
        {&st_set_prompt_new(NULL, "p")->hdr, -EINVAL, "id is required"},
    };
    st_msg_append *bad_json = st_append_new(S1, "assistant", "x");
    bad_json->tool_calls = rt_xstrdup("[{\"id\": ");
    st_msg_create_session *orphan = st_create_session_new("orphan", "cli");
    orphan->parent_session_id = rt_xstrdup("no-such-parent");
    st_msg_create_session *bad_cfg = st_create_session_new("cfg", "cli");
    bad_cfg->model_config = rt_xstrdup("{oops");
    for (size_t i = 0; i < RT_ARRAY_LEN(cases); i++) {
        col_entry e = h_call(&h, cases[i].m);
        if (e.err != cases[i].err || !strstr(e.errmsg, cases[i].text))
            TEST_FAIL_("case %zu: err %d \"%s\", want %d \"%s\"", i, e.err, e.errmsg, cases[i].err,
                       cases[i].text);
    }
    col_entry e = h_call(&h, &bad_json->hdr);
    ASSERT_EQ(-EINVAL, e.err);
    ASSERT_STR_CONTAINS(e.errmsg, "tool_calls is not valid JSON");
    e = h_call(&h, &orphan->hdr);
    ASSERT_EQ(-ENOENT, e.err);
    ASSERT_STR_CONTAINS(e.errmsg, "unknown parent session");
    e = h_call(&h, &bad_cfg->hdr);
    ASSERT_EQ(-EINVAL, e.err);

    /* A failing write inside a batch does not take the others down. */
    size_t base = col_count();
    sqlite3 *lock = hold_write_lock(h.path);
    h_send(&h, &st_append_new(S1, "user", "good 1")->hdr, 1);
    h_send(&h, &st_append_new("no-such-session", "user", "bad")->hdr, 2);
    h_send(&h, &st_append_new(S1, "user", "good 2")->hdr, 3);
    release_write_lock(lock);
    col_wait(base + 3);
    ASSERT_EQ(0, col_at(base).err);
    ASSERT_EQ(-ENOENT, col_at(base + 1).err);
    ASSERT_EQ(0, col_at(base + 2).err);
    ASSERT_EQ(col_at(base).commit, col_at(base + 2).commit);
    ASSERT_EQ(2, session_int(h.path, S1, "message_count"));

    /* Unknown message types are ignored; the store still answers. */
    rt_send(h.cx, h.st.writer, rt_msg_new(RT_MSG_TYPE(RT_MSG_MODULE_ST, 999), sizeof(rt_msg)));
    h_append(&h, S1, "user", "still here");
    st_msg_stats st = h_stats(&h);
    ASSERT_GE(st.write_errors, RT_ARRAY_LEN(cases) + 4);
    h_stop(&h);
}

TEST(huge_content_and_invalid_utf8_are_stored_as_given)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    h_create(&h, S1, "cli");
    size_t n = 10u << 20;
    char *big = big_text(n, "lorem");
    memcpy(big + n / 2, " zebra ", 7);
    st_msg_append *a = st_append_new(S1, "tool", NULL);
    a->content = big;
    col_entry e = h_call(&h, &a->hdr);
    ASSERT_EQ(0, e.err);

    const char bytes[] = "caf\xc3\xa9 \xff\xfe broken \xc3 end";
    h_append(&h, S1, "user", bytes);

    sqlite3 *db = raw_open(h.path);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT length(CAST(content AS BLOB)) FROM messages WHERE id = %lld",
             (long long)e.id);
    ASSERT_EQ((int64_t)n, q_int(db, sql));
    sqlite3_close(db);

    cJSON *conv = read_json(&h, &st_get_new(ST_MSG_GET_MESSAGES, S1, 0, 0)->hdr, 0);
    ASSERT_EQ(2, cJSON_GetArraySize(conv));
    const char *c0 =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(conv, 0), "content")->valuestring;
    ASSERT_EQ(n, strlen(c0));
    const char *c1 =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(conv, 1), "content")->valuestring;
    ASSERT_EQ(0, memcmp(bytes, c1, sizeof(bytes)));
    cJSON *hits = read_json(&h, &st_search_new("zebra", 0, 0)->hdr, 0);
    ASSERT_EQ(1, cJSON_GetArraySize(hits));
    hits = read_json(&h, &st_search_new("broken", 0, 0)->hdr, 0);
    ASSERT_EQ(1, cJSON_GetArraySize(hits));

    /* Over the store's own limit: refused before SQLite sees it. */
    st_msg_append *too = st_append_new(S1, "tool", NULL);
    too->content = big_text(ST_TEXT_MAX + 1, "x");
    e = h_call(&h, &too->hdr);
    ASSERT_EQ(-E2BIG, e.err);
    h_stop(&h);
}

TEST(start_errors)
{
    rt_options ro = {.workers = 1};
    rt_runtime *rt = rt_runtime_new(&ro);
    rt_ctx *cx = rt_ctx_external(rt);
    st_store_refs refs;
    char msg[ST_ERRMSG_MAX] = "";
    st_store_opts o = {.path = "/proc/definitely/not/here/state.db"};
    ASSERT_NE(0, st_store_start(cx, &o, &refs, msg, sizeof(msg)));
    ASSERT_TRUE(msg[0] != '\0');
    ASSERT_EQ(0, refs.writer);
    o.path = tmp_path("state.db");
    o.readers = 99;
    ASSERT_EQ(-EINVAL, st_store_start(cx, &o, &refs, msg, sizeof(msg)));
    /* A name already taken: nothing is left running. */
    o.readers = 1;
    o.name = "store";
    ASSERT_OK(st_store_start(cx, &o, &refs, msg, sizeof(msg)));
    st_store_refs dup;
    ASSERT_EQ(-EEXIST, st_store_start(cx, &o, &dup, msg, sizeof(msg)));
    ASSERT_EQ(refs.writer, rt_whereis(cx, "store"));
    st_store_stop(cx, &refs, 0, 0);
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    ASSERT_EQ(0, rt_whereis(cx, "store"));
    rt_runtime_free(rt);
}

/* ============================================ exactly-once records (st_store.h rule 4) */

TEST(backoff_doubles_from_one_second_to_thirty_and_ends_at_the_deadline)
{
    st_backoff b = {0};
    const int64_t want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
    int64_t now = 5000;
    for (size_t i = 0; i < RT_ARRAY_LEN(want); i++) {
        int64_t d = st_backoff_next(&b, now, 3600 * 1000);
        ASSERT_EQ(want[i], d);
        now += d;
    }
    ASSERT_EQ(5000, b.since_ms);
    /* the last attempt lands on the deadline, then it is over */
    st_backoff_reset(&b);
    ASSERT_EQ(1000, st_backoff_next(&b, 0, 2500));
    ASSERT_EQ(1500, st_backoff_next(&b, 1000, 2500)); /* 2000 cut to the deadline */
    ASSERT_EQ(-1, st_backoff_next(&b, 2500, 2500));
    ASSERT_EQ(-1, st_backoff_next(&b, 9999, 2500));
    st_backoff_reset(&b); /* a new episode starts the clock again */
    ASSERT_EQ(1000, st_backoff_next(&b, 9999, 2500));
    ASSERT_TRUE(st_retryable(-ENOSPC));
    ASSERT_TRUE(st_retryable(-EIO));
    ASSERT_FALSE(st_retryable(-EINVAL));
    ASSERT_FALSE(st_retryable(0));
}

static int64_t db_count(const char *path, const char *sql)
{
    sqlite3 *db = raw_open(path);
    int64_t v = q_int(db, sql);
    sqlite3_close(db);
    return v;
}

/* Poll the writer's counters until kept and given_up are as wanted (deadline WAIT_MS). */
static st_msg_stats wait_kept(harness *h, uint64_t kept, uint64_t given_up)
{
    st_msg_stats st = {.tag = 0};
    for (int i = 0; i < WAIT_MS / 10; i++) {
        st = h_stats(h);
        if (st.kept == kept && st.given_up == given_up)
            return st;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    TEST_FAIL_("kept %llu given up %llu, want %llu and %llu", (unsigned long long)st.kept,
               (unsigned long long)st.given_up, (unsigned long long)kept,
               (unsigned long long)given_up);
    return st;
}

/* The database as it is now, as its quota: any write that needs a page more fails. */
static void fill_quota(harness *h)
{
    sqlite3 *db = raw_open(h->path);
    int64_t size = q_int(db, "PRAGMA page_count") * q_int(db, "PRAGMA page_size");
    sqlite3_close(db);
    ASSERT_EQ(0, h_call(h, &st_set_quota_new(size)->hdr).err);
}

/* Three fire-and-forget records in one transaction the full disk rolls back: the key with
 * its journal row (too big for the space left), an outbox "sent" mark and a journal clear. */
static void send_records_while_full(harness *h, int64_t row)
{
    char *big = big_text(256 << 10, "journal");
    sqlite3 *lock = hold_write_lock(h->path);
    st_msg_inbound *in = st_inbound_new("mattermost", "post-2", "agent:main:mattermost:dm:c");
    in->event_json = big; /* moved in */
    ASSERT_TRUE(rt_send(h->cx, h->st.writer, &in->hdr));
    st_msg_outbox *end = st_outbox_new(ST_MSG_OUTBOX_END);
    end->row = row;
    ASSERT_TRUE(rt_send(h->cx, h->st.writer, &end->hdr));
    ASSERT_TRUE(rt_send(h->cx, h->st.writer, &st_inbox_done_new("mattermost", "post-1")->hdr));
    release_write_lock(lock);
}

/* Before the disk fills: a journal row to clear later and an outbox row to mark sent. */
static int64_t records_setup(harness *h)
{
    h_create(h, S1, "mattermost");
    st_msg_inbound *in = st_inbound_new("mattermost", "post-1", "agent:main:mattermost:dm:c");
    in->event_json = rt_xstrdup("{\"text\":\"hello\"}");
    ASSERT_EQ(0, h_call(h, &in->hdr).err);
    st_msg_outbox *put = st_outbox_new(ST_MSG_OUTBOX_PUT);
    put->platform = rt_xstrdup("mattermost");
    put->chat_id = rt_xstrdup("c");
    put->text = rt_xstrdup("the answer");
    col_entry e = h_call(h, &put->hdr);
    ASSERT_EQ(0, e.err);
    ASSERT_GT(e.id, 0);
    return e.id;
}

TEST(records_refused_by_a_full_disk_are_kept_and_written_before_anything_after_them)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    int64_t row = records_setup(&h);
    fill_quota(&h);
    send_records_while_full(&h, row);
    wait_kept(&h, 3, 0);
    /* nothing of them is in state.db */
    ASSERT_EQ(0, db_count(h.path, "SELECT count(*) FROM hc_inbound WHERE message_id='post-2'"));
    ASSERT_EQ(1, db_count(h.path, "SELECT count(*) FROM hc_outbox"));
    ASSERT_EQ(1, db_count(h.path, "SELECT count(*) FROM hc_inbox WHERE message_id='post-1'"));
    /* the user's message is refused too (its session retries it, ag_save.c) */
    st_msg_append *m = st_append_new(S1, "user", NULL);
    m->content = big_text(256 << 10, "m"); /* moved in */
    col_entry e = h_call(&h, &m->hdr);
    ASSERT_EQ(-ENOSPC, e.err);
    wait_kept(&h, 3, 0);

    /* Room again: the next write commits only together with the records, after them. */
    ASSERT_EQ(0, h_call(&h, &st_set_quota_new(0)->hdr).err);
    int64_t id = h_append(&h, S1, "user", "the message of post-2");
    ASSERT_GT(id, 0);
    ASSERT_EQ(1, db_count(h.path, "SELECT count(*) FROM hc_inbound WHERE message_id='post-2'"));
    ASSERT_EQ(1, db_count(h.path, "SELECT count(*) FROM hc_inbox WHERE message_id='post-2'"));
    ASSERT_EQ(0, db_count(h.path, "SELECT count(*) FROM hc_inbox WHERE message_id='post-1'"));
    ASSERT_EQ(0, db_count(h.path, "SELECT count(*) FROM hc_outbox"));
    st_msg_stats st = wait_kept(&h, 0, 0);
    ASSERT_GE(st.rollbacks, 2);
    h_stop(&h);
    integrity_ok(h.path);
}

TEST(kept_records_are_written_by_the_retry_timer_when_nothing_else_comes)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    int64_t row = records_setup(&h);
    fill_quota(&h);
    send_records_while_full(&h, row);
    wait_kept(&h, 3, 0);
    ASSERT_EQ(0, h_call(&h, &st_set_quota_new(0)->hdr).err); /* no write: the timer's turn */
    wait_kept(&h, 0, 0);
    ASSERT_EQ(1, db_count(h.path, "SELECT count(*) FROM hc_inbound WHERE message_id='post-2'"));
    ASSERT_EQ(0, db_count(h.path, "SELECT count(*) FROM hc_outbox"));
    ASSERT_EQ(0, db_count(h.path, "SELECT count(*) FROM hc_inbox WHERE message_id='post-1'"));
    h_stop(&h);
}

TEST(shutdown_makes_a_last_attempt_and_a_disk_still_full_loses_only_the_records)
{
    /* space back just before the stop: the last attempt saves them (or the timer did) */
    harness h;
    h_start(&h, tmp_path("a.db"));
    int64_t row = records_setup(&h);
    fill_quota(&h);
    send_records_while_full(&h, row);
    wait_kept(&h, 3, 0);
    ASSERT_EQ(0, h_call(&h, &st_set_quota_new(0)->hdr).err);
    const char *a = h.path;
    h_stop(&h);
    ASSERT_EQ(1, db_count(a, "SELECT count(*) FROM hc_inbound WHERE message_id='post-2'"));
    ASSERT_EQ(0, db_count(a, "SELECT count(*) FROM hc_outbox"));

    /* still full at the stop: the space reserve beside state.db is released for one more
     * try (it cannot lift a quota: logged and dropped), state.db intact, nothing leaks */
    h_start(&h, tmp_path("b.db"));
    char reserve[400];
    snprintf(reserve, sizeof(reserve), "%s-reserve", h.path);
    struct stat sb;
    ASSERT_OK(stat(reserve, &sb));
    ASSERT_GE(sb.st_blocks * 512, ST_RESERVE_BYTES); /* allocated, not just sized */
    row = records_setup(&h);
    fill_quota(&h);
    send_records_while_full(&h, row);
    wait_kept(&h, 3, 0);
    const char *b = h.path;
    h_stop(&h);
    ASSERT_EQ(-1, stat(reserve, &sb));
    ASSERT_EQ(0, db_count(b, "SELECT count(*) FROM hc_inbound WHERE message_id='post-2'"));
    ASSERT_EQ(1, db_count(b, "SELECT count(*) FROM hc_outbox"));
    integrity_ok(b);
    /* the next start takes it again */
    h_start(&h, b);
    ASSERT_OK(stat(reserve, &sb));
    h_stop(&h);
}

TEST(records_are_given_up_after_the_retry_limit_and_not_kept_when_asked_not_to)
{
    harness h;
    st_store_opts o = {.path = tmp_path("a.db"), .record_retry_max_ms = 1500};
    h_start_opts(&h, &o);
    int64_t row = records_setup(&h);
    fill_quota(&h);
    send_records_while_full(&h, row);
    wait_kept(&h, 0, 3); /* after 1 s and the last attempt at 1.5 s */
    ASSERT_EQ(0, h_call(&h, &st_set_quota_new(0)->hdr).err);
    h_append(&h, S1, "user", "later");
    ASSERT_EQ(0, db_count(o.path, "SELECT count(*) FROM hc_inbound WHERE message_id='post-2'"));
    h_stop(&h);

    st_store_opts none = {.path = tmp_path("b.db"), .record_retry_max_ms = -1};
    h_start_opts(&h, &none);
    row = records_setup(&h);
    fill_quota(&h);
    send_records_while_full(&h, row);
    (void)h_call(&h, &st_append_new(S1, "assistant", "x")->hdr); /* behind them: acked after */
    st_msg_stats st = h_stats(&h);
    ASSERT_EQ(0, st.kept);
    ASSERT_EQ(0, st.given_up);
    h_stop(&h);
}

TEST(a_record_someone_waits_for_is_acked_with_its_error_not_kept)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    records_setup(&h);
    fill_quota(&h);
    st_msg_inbound *in = st_inbound_new("mattermost", "post-3", NULL);
    in->event_json = big_text(256 << 10, "journal");
    col_entry e = h_call(&h, &in->hdr);
    ASSERT_EQ(-ENOSPC, e.err);
    st_msg_stats st = h_stats(&h);
    ASSERT_EQ(0, st.kept);
    /* bad input is refused, not kept */
    ASSERT_TRUE(rt_send(h.cx, h.st.writer, &st_inbound_new(NULL, "post-4", NULL)->hdr));
    st = h_stats(&h);
    ASSERT_EQ(0, st.kept);
    h_stop(&h);
}
