/*
 * Bounded memory (issue 13), through the whole gateway in one process (gw_fixture.c): a quiet
 * conversation's sessions index entry leaves memory and sessions.json for state.db's
 * hc_session_index and comes back with its fields when the conversation speaks again;
 * messages that arrive while it loads keep their order; a corrupt row starts a fresh session
 * with a clear log and no crash; the reset notice after a long silence still comes; over
 * gateway.memory_budget_mb, idle chats leave memory, busy ones are untouched and an evicted
 * conversation continues with its history and session id.
 *
 * The router's upkeep runs on GW_ROUTER_TICK (sent here) as on its own 5 s tick.
 */
#include "gw.h"
#include "gw_fixture.h"
#include "gw_int.h"
#include "hm_config.h"
#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_sched.h"
#include "send_dir.h"
#include "st_index.h"
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ALICE "agent:main:test:dm:dm-alice"
#define BOB   "agent:main:test:dm:dm-bob"

static void tick(void)
{
    rt_send(F.cx, F.gateway, rt_msg_new(GW_ROUTER_TICK, sizeof(rt_msg)));
}

static char *read_text(const char *name)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", F.home, name);
    char *text = NULL;
    size_t len = 0;
    if (hm_read_file(path, 16 << 20, &text, &len) != 0)
        return NULL;
    return text;
}

/* An install's sessions.json, written before the gateway starts. */
static void write_index_file(const char *text)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/sessions", F.home);
    (void)mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/sessions/sessions.json", F.home);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs(text, f);
    fclose(f);
}

/* Is key in sessions.json? */
static bool in_index_file(const char *key)
{
    char *text = read_text("sessions/sessions.json");
    char needle[200];
    snprintf(needle, sizeof(needle), "\"%s\":", key);
    bool in = text && strstr(text, needle);
    rt_free(text);
    return in;
}

static sqlite3 *db_open(void)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/state.db", F.home);
    sqlite3 *db = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL));
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* key's row of hc_session_index (new string), or NULL. */
static char *cold_row(const char *key)
{
    sqlite3 *db = db_open();
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_prepare_v2(db, "SELECT entry FROM hc_session_index WHERE key = ?",
                                            -1, &st, NULL));
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    char *row = NULL;
    if (sqlite3_step(st) == SQLITE_ROW)
        row = rt_xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return row;
}

static void db_exec(const char *sql, const char *key)
{
    sqlite3 *db = db_open();
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_prepare_v2(db, sql, -1, &st, NULL));
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    ASSERT_EQ(SQLITE_DONE, sqlite3_step(st));
    ASSERT_EQ(1, sqlite3_changes(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* Tick until key's entry is in hc_session_index and no longer in sessions.json. */
static void wait_cold(const char *key)
{
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    for (;;) {
        tick();
        char *row = cold_row(key);
        bool cold = row && !in_index_file(key);
        rt_free(row);
        if (cold)
            return;
        if (rt_now_ns(F.rt) > deadline)
            TEST_FAIL_("%s never went cold", key);
        usleep(50000);
    }
}

/* Tick until gateway_state.json's memory object has name >= want; its value. */
static int64_t wait_stat(const char *name, int64_t want)
{
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS, v = -1;
    for (;;) {
        tick();
        ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
        char *text = read_text("gateway_state.json");
        cJSON *o = text ? cJSON_Parse(text) : NULL;
        rt_free(text);
        const cJSON *n =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "memory"), name);
        v = cJSON_IsNumber(n) ? (int64_t)n->valuedouble : -1;
        cJSON_Delete(o);
        if (v >= want)
            return v;
        if (rt_now_ns(F.rt) > deadline)
            TEST_FAIL_("memory.%s is %lld, never %lld", name, (long long)v, (long long)want);
        usleep(20000);
    }
}

/* The text of the i-th output (copied under the lock). */
static void out_copy(int i, char *buf, size_t len)
{
    pthread_mutex_lock(&lock);
    snprintf(buf, len, "%s", outs[i].text);
    pthread_mutex_unlock(&lock);
}

static void start(double warm_hours, int budget_mb, int64_t chat_idle_ms, bool fresh)
{
    char v[64];
    snprintf(v, sizeof(v), "%g", warm_hours);
    setenv("GATEWAY_INDEX_WARM_HOURS", v, 1);
    snprintf(v, sizeof(v), "%d", budget_mb);
    setenv("GATEWAY_MEMORY_BUDGET_MB", v, 1);
    F_chat_idle_ms = chat_idle_ms;
    start_gateway(&F, fresh);
}

/* alice says hello and is answered; her session id into session. */
static void alice_hello(char *session, size_t len)
{
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "hello");
    int i = wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    pthread_mutex_lock(&lock);
    snprintf(session, len, "%s", outs[i].session);
    pthread_mutex_unlock(&lock);
    ASSERT_TRUE(strlen(session) > 10);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000)); /* the chat's token report reached the router */
}

static bool collect(void *arg, const char *key, const char *entry, double updated_at)
{
    (void)entry;
    (void)updated_at;
    char *keys = arg;
    size_t len = strlen(keys);
    snprintf(keys + len, 64 - len, "%s,", key);
    return true;
}

static char caught[4][128];
static int ncaught;

static void catcher_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)cx;
    (void)state;
    if (m->type != ST_MSG_INDEX_ROW)
        return;
    const st_msg_index_row *r = (const st_msg_index_row *)m;
    pthread_mutex_lock(&lock);
    if (ncaught < 4)
        snprintf(caught[ncaught++], sizeof(caught[0]), "%s", r->entry ? r->entry : "-");
    pthread_mutex_unlock(&lock);
}

static const rt_actor_type catcher_type = {"catcher", catcher_behave, NULL, 0};

/* ------------------------------------------------------------------ tests */

TEST(a_quiet_entry_goes_cold_and_comes_back_with_its_fields)
{
    start(0.0002, 0, 200, true); /* entries go cold 0.72 s after the chat left */
    char session[96];
    alice_hello(session, sizeof(session));
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/status");
    int i = wait_out(GW_OUT_TEXT, -1, "dm-alice", "Session ID", 0);
    char before[2048];
    out_copy(i, before, sizeof(before));
    ASSERT_STR_CONTAINS(before, session);
    ASSERT_STR_CONTAINS(before, "**Tokens:** 55");

    wait_cold(ALICE);
    char *row = cold_row(ALICE);
    ASSERT_STR_CONTAINS(row, session);
    ASSERT_STR_CONTAINS(row, "\"input_tokens\":50");
    ASSERT_STR_CONTAINS(row, "\"chat_id\":\"dm-alice\""); /* the origin */
    rt_free(row);
    /* send_message's channel directory still knows the chat */
    cJSON *dir = send_directory(F.home);
    char *dtext = cJSON_PrintUnformatted(dir);
    ASSERT_STR_CONTAINS(dtext, "\"test\":[{\"id\":\"dm-alice\"");
    cJSON_free(dtext);
    cJSON_Delete(dir);

    /* /status from the cold entry: the same session, creation time and tokens */
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/status");
    i = wait_out(GW_OUT_TEXT, -1, "dm-alice", "Session ID", 1);
    char after[2048];
    out_copy(i, after, sizeof(after));
    ASSERT_STR_CONTAINS(after, session);
    ASSERT_STR_CONTAINS(after, "**Tokens:** 55");
    const char *cb = strstr(before, "**Created:**"), *ca = strstr(after, "**Created:**");
    ASSERT_NOT_NULL(cb);
    ASSERT_NOT_NULL(ca);
    ASSERT_EQ(0, strncmp(cb, ca, 30));

    /* the conversation goes on: history intact, same session id, back in sessions.json */
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "again");
    i = wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 1);
    pthread_mutex_lock(&lock);
    ASSERT_STR_EQ(session, outs[i].session);
    ASSERT_STR_CONTAINS(all_users, "hello|again");
    pthread_mutex_unlock(&lock);
    ASSERT_TRUE(wait_stat("index_loaded_cold", 1) >= 1);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    while (!in_index_file(ALICE) && rt_now_ns(F.rt) < deadline)
        usleep(20000);
    ASSERT_TRUE(in_index_file(ALICE));
    stop_gateway(&F);
}

TEST(messages_that_arrive_while_the_entry_loads_keep_their_order)
{
    start(0.0002, 0, 200, true);
    char session[96];
    alice_hello(session, sizeof(session));
    wait_cold(ALICE);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "one");
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "two");
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "three");
    /* each answered, in order; the model saw them in order behind "hello" */
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    for (;;) {
        pthread_mutex_lock(&lock);
        bool all = strstr(all_users, "three") != NULL;
        pthread_mutex_unlock(&lock);
        if (all)
            break;
        ASSERT_TRUE(rt_now_ns(F.rt) < deadline);
        usleep(10000);
    }
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    pthread_mutex_lock(&lock);
    const char *h = strstr(all_users, "hello"), *o = strstr(all_users, "one"),
               *t = strstr(all_users, "two"), *th = strstr(all_users, "three");
    ASSERT_TRUE(h && o && t && th && h < o && o < t && t < th);
    int last = -1;
    for (int i = 0; i < nouts; i++)
        if (outs[i].type == GW_OUT_TURN_END && strcmp(outs[i].chat, "dm-alice") == 0)
            last = i;
    ASSERT_TRUE(last >= 0);
    ASSERT_STR_EQ(session, outs[last].session);
    pthread_mutex_unlock(&lock);
    ASSERT_TRUE(wait_stat("index_waited", 1) >= 1); /* "one" at least waited for the load */
    stop_gateway(&F);
}

TEST(a_corrupt_cold_row_starts_a_fresh_session)
{
    start(0.0002, 0, 200, true);
    char session[96];
    alice_hello(session, sizeof(session));
    wait_cold(ALICE);
    stop_gateway(&F);
    db_exec("UPDATE hc_session_index SET entry = '{not json' WHERE key = ?", ALICE);

    reset_records();
    start(0.0002, 0, 200, false);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "after");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", NULL, 0);
    char reply[2048];
    out_copy(i, reply, sizeof(reply));
    ASSERT_STR_EQ("echo: after", reply);
    i = wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    pthread_mutex_lock(&lock);
    ASSERT_TRUE(strcmp(session, outs[i].session) != 0); /* a fresh session */
    ASSERT_STR_EQ("after|", all_users);                 /* without the old history */
    pthread_mutex_unlock(&lock);
    ASSERT_EQ(1, wait_stat("index_corrupt", 1));

    /* a row of another shape: no session id, no times */
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    stop_gateway(&F);
    db_exec("UPDATE hc_session_index SET entry = '{\"session_id\":7,\"origin\":[]}' WHERE key = ?",
            ALICE);
    /* sessions.json forgets alice, so the row is read again */
    char path[700];
    snprintf(path, sizeof(path), "%s/sessions/sessions.json", F.home);
    ASSERT_OK(unlink(path));
    reset_records();
    start(0.0002, 0, 200, false);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "later");
    wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    pthread_mutex_lock(&lock);
    ASSERT_STR_EQ("later|", all_users);
    pthread_mutex_unlock(&lock);
    stop_gateway(&F);
}

TEST(the_reset_notice_comes_after_a_cold_entry_returns)
{
    start(0.0002, 0, 200, true);
    char session[96];
    alice_hello(session, sizeof(session));
    wait_cold(ALICE);
    stop_gateway(&F);
    /* alice's last activity was long ago: the idle policy (24 h) has expired her session */
    db_exec("UPDATE hc_session_index SET entry = json_set(entry, '$.updated_at', "
            "'2020-01-01T00:00:00.000000') WHERE key = ?",
            ALICE);

    reset_records();
    start(0.0002, 0, 200, false);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "anyone home?");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Session automatically reset", 0);
    int i = wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    pthread_mutex_lock(&lock);
    ASSERT_TRUE(strcmp(session, outs[i].session) != 0);
    ASSERT_STR_EQ("anyone home?|", all_users);
    pthread_mutex_unlock(&lock);
    stop_gateway(&F);
}

TEST(an_existing_sessions_json_loads_and_its_quiet_entries_move_to_state_db)
{
    start(24, 0, 0, true);
    stop_gateway(&F);
    /* an install's file: alice quiet since 2020, bob active now */
    char *now = gw_iso_local((double)time(NULL));
    char *text = rt_xasprintf(
        "{\"" ALICE "\": {\"session_key\": \"" ALICE "\", \"session_id\": "
        "\"20200101_000000_aaaaaaaa\", \"created_at\": \"2020-01-01T00:00:00.000000\", "
        "\"updated_at\": \"2020-01-01T00:00:00.000000\", \"platform\": \"test\", "
        "\"chat_type\": \"dm\", \"input_tokens\": 10, \"output_tokens\": 2, "
        "\"origin\": {\"platform\": \"test\", \"chat_id\": \"dm-alice\", \"chat_type\": "
        "\"dm\", \"user_id\": \"alice\"}},"
        " \"" BOB "\": {\"session_key\": \"" BOB "\", \"session_id\": "
        "\"20200101_000000_bbbbbbbb\", \"created_at\": \"%s\", \"updated_at\": \"%s\", "
        "\"platform\": \"test\", \"chat_type\": \"dm\", \"origin\": {\"platform\": "
        "\"test\", \"chat_id\": \"dm-bob\", \"chat_type\": \"dm\", \"user_id\": \"bob\"}}}",
        now, now);
    rt_free(now);
    write_index_file(text);
    rt_free(text);

    reset_records();
    start(24, 0, 0, false);
    wait_cold(ALICE); /* her session has expired: she goes on the first upkeep */
    char *row = cold_row(ALICE);
    ASSERT_STR_CONTAINS(row, "20200101_000000_aaaaaaaa");
    rt_free(row);
    ASSERT_TRUE(in_index_file(BOB)); /* bob stays */
    row = cold_row(BOB);
    ASSERT_NULL(row);
    /* alice's next message: the reset notice, as if her entry had stayed */
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "back");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Session automatically reset", 0);
    /* bob's conversation goes on in his session */
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "hi");
    int i = wait_out(GW_OUT_TURN_END, -1, "dm-bob", NULL, 0);
    pthread_mutex_lock(&lock);
    ASSERT_STR_EQ("20200101_000000_bbbbbbbb", outs[i].session);
    pthread_mutex_unlock(&lock);
    stop_gateway(&F);
}

/* Keys in sessions.json (-1 when it cannot be read); *has: whether it has key. */
static int index_keys(const char *key, bool *has)
{
    char *text = read_text("sessions/sessions.json");
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    rt_free(text);
    int n = cJSON_IsObject(o) ? cJSON_GetArraySize(o) : -1;
    if (has)
        *has = key && cJSON_GetObjectItemCaseSensitive(o, key) != NULL;
    cJSON_Delete(o);
    return n;
}

TEST(a_large_sessions_json_is_copied_in_chunks_and_misses_nobody)
{
    /* The router copies sessions.json's entries INDEX_CHUNK at a time (gw_router.c), the
     * quiet ones leaving for state.db between chunks if a tick lands there: every round
     * below starts a copy (a new conversation) and sends a tick right behind it. Whatever
     * the interleaving, the file ends with exactly the conversations in memory (the end
     * state only: an entry one copy missed would be in the next; the sweep that keeps a
     * single copy whole is not observable from here). */
    enum { N = 3000, ROUNDS = 6 };
    start(24, 0, 0, true);
    stop_gateway(&F);
    char *now = gw_iso_local((double)time(NULL));
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_append(&b, "{", 1);
    for (int i = 0; i < N; i++) {
        const char *at = i % 2 ? "2020-01-01T00:00:00.000000" : now; /* odd ones are quiet */
        char *e = rt_xasprintf(
            "%s\"agent:main:test:dm:u%d\": {\"session_key\": \"agent:main:test:dm:u%d\", "
            "\"session_id\": \"20200101_000000_%08x\", \"created_at\": \"%s\", "
            "\"updated_at\": \"%s\", \"platform\": \"test\", \"chat_type\": \"dm\", "
            "\"origin\": {\"platform\": \"test\", \"chat_id\": \"u%d\", \"chat_type\": "
            "\"dm\", \"user_id\": \"u%d\"}}",
            i ? ", " : "", i, i, (unsigned)i, at, at, i, i);
        rt_buf_append(&b, e, strlen(e));
        rt_free(e);
    }
    rt_buf_append(&b, "}", 1);
    rt_free(now);
    write_index_file(b.data);
    rt_buf_fini(&b);

    reset_records();
    start(24, 0, 0, false);
    for (int k = 0; k < ROUNDS; k++) {
        char chat[32];
        snprintf(chat, sizeof(chat), "new%d", k);
        msg_in(&F, "dm", chat, "alice", NULL, "hello");
        tick();
        (void)wait_out(GW_OUT_TURN_END, -1, chat, NULL, 0);
    }
    /* until the file has settled: every active and new conversation, no quiet one */
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    int n = -1;
    bool last = false;
    while ((n = index_keys("agent:main:test:dm:new5", &last)) != N / 2 + ROUNDS || !last) {
        if (rt_now_ns(F.rt) > deadline)
            TEST_FAIL_("sessions.json has %d conversations, not %d", n, N / 2 + ROUNDS);
        tick();
        usleep(50000);
    }
    for (int i = 0; i < N; i++) {
        char key[64];
        bool has = false;
        snprintf(key, sizeof(key), "agent:main:test:dm:u%d", i);
        if (i % 500 == 0 || i % 500 == 1) { /* a sample: parsing the file is not cheap */
            (void)index_keys(key, &has);
            ASSERT_EQ(has, i % 2 == 0);
        }
    }
    stop_gateway(&F);
    ASSERT_EQ(index_keys(NULL, NULL), N / 2 + ROUNDS); /* and after the final write */
}

TEST(over_budget_idle_chats_leave_memory_and_busy_ones_stay)
{
    start(24, 1, 0, true); /* 1 MB: always over; chats idle for 10 minutes otherwise */
    scripts[0] = (script){.content = NULL};
    scripts[1] = (script){.content = "slow answer", .delay_ms = 2500};
    nscripts = 2;
    char session[96];
    alice_hello(session, sizeof(session));
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "think hard");
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    for (;;) { /* bob's turn is with the model */
        pthread_mutex_lock(&lock);
        int n = nrequests;
        pthread_mutex_unlock(&lock);
        if (n >= 2)
            break;
        ASSERT_TRUE(rt_now_ns(F.rt) < deadline);
        usleep(5000);
    }
    /* alice's chat leaves, and her entry with it; bob's turn runs on */
    wait_cold(ALICE);
    ASSERT_TRUE(wait_stat("chats_evicted", 1) >= 1);
    ASSERT_TRUE(in_index_file(BOB));
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-bob", NULL, 0);
    char reply[2048];
    out_copy(i, reply, sizeof(reply));
    ASSERT_STR_EQ("slow answer", reply);
    i = wait_out(GW_OUT_TURN_END, -1, "dm-bob", NULL, 0);
    ASSERT_EQ(GW_OUTCOME_SUCCESS, outs[i].outcome);

    /* alice comes back: same session, history intact */
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "still there?");
    i = wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 1);
    pthread_mutex_lock(&lock);
    ASSERT_STR_EQ(session, outs[i].session);
    ASSERT_STR_CONTAINS(all_users, "hello|still there?");
    pthread_mutex_unlock(&lock);
    stop_gateway(&F);
}

TEST(a_message_for_a_chat_being_evicted_waits_for_it_and_is_answered)
{
    start(24, 1, 0, true);
    char session[96];
    alice_hello(session, sizeof(session));
    /* the eviction and alice's next words cross: she is answered either way */
    tick();
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "quick one");
    int i = wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 1);
    pthread_mutex_lock(&lock);
    ASSERT_STR_EQ(session, outs[i].session);
    ASSERT_STR_CONTAINS(all_users, "hello|quick one");
    pthread_mutex_unlock(&lock);
    stop_gateway(&F);
}

TEST(the_index_store_reads_what_it_wrote_and_refuses_garbage)
{
    const char *dir = test_tmpdir();
    char path[600], msg[256];
    snprintf(path, sizeof(path), "%s/idx.db", dir);
    int64_t n = -1;
    ASSERT_EQ(-ENOENT, st_index_count(path, &n));
    rt_options ro = {0};
    rt_runtime *rt = rt_runtime_new(&ro);
    rt_ctx *cx = rt_ctx_external(rt);
    rt_ref x = st_index_start(cx, path, NULL, msg, sizeof(msg));
    ASSERT_TRUE(x != 0);
    st_msg_index_put *p = st_index_put_new();
    st_index_put_add(p, "k1", "s1", "telegram", "{\"session_id\":\"s1\"}", 10);
    st_index_put_add(p, "k2", NULL, "slack", "{}", 20);
    rt_send(cx, x, &p->hdr);
    ASSERT_OK(rt_wait_quiescent(rt, 10000));
    ASSERT_OK(st_index_count(path, &n));
    ASSERT_EQ(2, n);
    char keys[64] = "";
    ASSERT_OK(st_index_each(path, NULL, collect, keys));
    ASSERT_STR_EQ("k2,k1,", keys); /* most recent first */
    keys[0] = '\0';
    ASSERT_OK(st_index_each(path, "telegram", collect, keys));
    ASSERT_STR_EQ("k1,", keys);
    /* a GET answers with the row, or none */
    rt_ref me = rt_spawn(cx, &catcher_type, NULL, NULL);
    rt_send(cx, x, &st_index_get_new("k1", me, 5)->hdr);
    rt_send(cx, x, &st_index_get_new("nope", me, 6)->hdr);
    ASSERT_OK(rt_wait_quiescent(rt, 10000));
    pthread_mutex_lock(&lock);
    ASSERT_EQ(2, ncaught);
    ASSERT_STR_EQ("{\"session_id\":\"s1\"}", caught[0]);
    ASSERT_STR_EQ("-", caught[1]);
    pthread_mutex_unlock(&lock);
    rt_stop(cx, x, RT_EXIT_NORMAL);
    ASSERT_OK(rt_wait_quiescent(rt, 10000));
    rt_runtime_free(rt);
    /* not a database: a clear error, no actor */
    snprintf(path, sizeof(path), "%s/bad.db", dir);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs("this is not sqlite, just text long enough to be read as a header....", f);
    fclose(f);
    rt = rt_runtime_new(&ro);
    cx = rt_ctx_external(rt);
    msg[0] = '\0';
    ASSERT_EQ(0, (int)st_index_start(cx, path, NULL, msg, sizeof(msg)));
    ASSERT_TRUE(msg[0] != '\0');
    rt_runtime_free(rt);
}
