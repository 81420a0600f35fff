/*
 * The inbox journal (hc_inbox, gw_router.c and gw_chat.c): an accepted update is in state.db
 * from the moment it is accepted until its conversation has it, and a crash in between is
 * answered after the restart, once. The crash is simulated by writing the row a dying gateway
 * leaves (a key in hc_inbound, the event in hc_inbox, nothing in the transcript) into the
 * state.db of a stopped gateway, or by freeing the runtime mid-turn.
 */
#include "gw.h"
#include "gw_fixture.h"
#include "gw_int.h"
#include "rt_alloc.h"
#include "rt_sched.h"
#include "test.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *db_path(void)
{
    static char p[600];
    snprintf(p, sizeof(p), "%s/state.db", F.home);
    return p;
}

/* One integer from state.db through a connection of our own (WAL: the store may run). */
static int q_int(const char *sql)
{
    sqlite3 *db = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_open_v2(db_path(), &db, SQLITE_OPEN_READONLY, NULL));
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_prepare_v2(db, sql, -1, &st, NULL));
    int v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static double now_epoch(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* What a gateway that died right after accepting ev leaves in state.db (it is stopped). */
static void leave_row(gw_msg_event *ev, double received_at, const char *json_override)
{
    char *key = gw_session_key(&ev->src, false, false);
    char *json = json_override ? rt_xstrdup(json_override) : gw_inbox_json(ev, true);
    sqlite3 *db = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_open(db_path(), &db));
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_prepare_v2(db,
                                            "INSERT INTO hc_inbound (platform, message_id, "
                                            "session_key, received_at) VALUES (?, ?, ?, ?)",
                                            -1, &st, NULL));
    sqlite3_bind_text(st, 1, ev->src.platform, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ev->message_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, received_at);
    ASSERT_EQ(SQLITE_DONE, sqlite3_step(st));
    sqlite3_finalize(st);
    ASSERT_EQ(SQLITE_OK, sqlite3_prepare_v2(db,
                                            "INSERT INTO hc_inbox (platform, message_id, "
                                            "session_key, event_json, received_at) VALUES (?, "
                                            "?, ?, ?, ?)",
                                            -1, &st, NULL));
    sqlite3_bind_text(st, 1, ev->src.platform, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ev->message_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, json, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, received_at);
    ASSERT_EQ(SQLITE_DONE, sqlite3_step(st));
    sqlite3_finalize(st);
    sqlite3_close(db);
    rt_free(key);
    rt_free(json);
}

static gw_msg_event *event(const char *chat, const char *user, const char *id, const char *text)
{
    gw_msg_event *e = gw_event_new("test", "dm", chat, user, text);
    e->message_id = rt_xstrdup(id);
    e->src.user_name = rt_xasprintf("%s-name", user);
    return e;
}

static void send_id(const char *chat, const char *user, const char *id, const char *text)
{
    gw_msg_event *e = event(chat, user, id, text);
    e->adapter = F.adapter;
    rt_send(F.cx, F.gateway, &e->hdr);
}

static int count_text(const char *chat, const char *needle)
{
    pthread_mutex_lock(&lock);
    int n = 0;
    for (int i = 0; i < nouts; i++)
        n += outs[i].type == GW_OUT_TEXT && strcmp(outs[i].chat, chat) == 0 &&
             strstr(outs[i].text, needle) != NULL;
    pthread_mutex_unlock(&lock);
    return n;
}

static int requests(void)
{
    pthread_mutex_lock(&lock);
    int n = nrequests;
    pthread_mutex_unlock(&lock);
    return n;
}

static void wait_requests(int n)
{
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    while (requests() < n) {
        if (rt_now_ns(F.rt) > deadline)
            TEST_FAIL_("the model got %d requests, not %d", requests(), n);
        usleep(5000);
    }
}

/* A gateway that answered one message in dm-alice, then stopped cleanly. */
static void first_run(void)
{
    start_gateway(&F, true);
    send_id("dm-alice", "alice", "$first", "first");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: first", 0);
    stop_gateway(&F);
    reset_records();
}

TEST(a_message_accepted_but_never_stored_is_answered_once_after_restart)
{
    first_run();
    gw_msg_event *ev = event("dm-alice", "alice", "$lost", "did you get this?");
    leave_row(ev, now_epoch() - 5, NULL);
    rt_msg_free(&ev->hdr);
    ASSERT_EQ(1, q_int("SELECT count(*) FROM hc_inbox"));

    start_gateway(&F, false);
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: did you get this?", 0);
    ASSERT_STR_EQ("echo: did you get this?", outs[i].text);
    /* the platform's redelivery is a duplicate now; a marker shows the chat goes on */
    send_id("dm-alice", "alice", "$lost", "did you get this?");
    send_id("dm-alice", "alice", "$marker", "marker");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: marker", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(1, count_text("dm-alice", "echo: did you get this?"));
    ASSERT_EQ(2, requests());
    /* the conversation went on: the replayed message joined the first run's transcript */
    pthread_mutex_lock(&lock);
    ASSERT_STR_CONTAINS(all_users, "first");
    pthread_mutex_unlock(&lock);
    stop_gateway(&F);
    ASSERT_EQ(0, q_int("SELECT count(*) FROM hc_inbox"));
    ASSERT_EQ(1, q_int("SELECT count(*) FROM messages WHERE role = 'user' AND content = "
                       "'did you get this?'"));

    /* and only once: another restart has nothing left to replay */
    reset_records();
    start_gateway(&F, false);
    send_id("dm-alice", "alice", "$marker2", "marker2");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: marker2", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(0, count_text("dm-alice", "did you get this?"));
    ASSERT_EQ(1, requests());
    stop_gateway(&F);
}

TEST(the_journal_holds_a_message_until_its_turn_ends_and_then_nothing)
{
    start_gateway(&F, true);
    scripts[nscripts++] = (script){.content = "slow answer", .delay_ms = 1500};
    send_id("dm-alice", "alice", "$a1", "one");
    wait_requests(1);
    /* while the turn runs the row is there (the key and the event in one transaction) */
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    while (q_int("SELECT count(*) FROM hc_inbox WHERE message_id = '$a1'") != 1 &&
           rt_now_ns(F.rt) < deadline)
        usleep(5000);
    ASSERT_EQ(1, q_int("SELECT count(*) FROM hc_inbox WHERE message_id = '$a1'"));
    ASSERT_EQ(1, q_int("SELECT count(*) FROM hc_inbound WHERE message_id = '$a1'"));
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "slow answer", 0);
    /* commands, /status and answered messages leave nothing behind */
    send_id("dm-alice", "alice", "$a2", "/help");
    send_id("dm-alice", "alice", "$a3", "/status");
    send_id("dm-alice", "alice", "$a4", "two");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: two", 0);
    wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 1);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    stop_gateway(&F);
    ASSERT_EQ(0, q_int("SELECT count(*) FROM hc_inbox"));
    ASSERT_EQ(4, q_int("SELECT count(*) FROM hc_inbound WHERE message_id LIKE '$a%'"));
}

TEST(a_stored_message_cut_by_a_crash_is_answered_once_not_replayed_as_well)
{
    start_gateway(&F, true);
    scripts[nscripts++] = (script){.content = "lost", .delay_ms = 60000};
    send_id("dm-bob", "bob", "$b1", "are you there?");
    wait_requests(1); /* the message is stored (the model is asked after that) */
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    rt_runtime_free(F.rt); /* the crash: the journal row and the stored message both stay */
    hm_config_unref(F.cfg);
    ASSERT_EQ(1, q_int("SELECT count(*) FROM hc_inbox"));

    reset_records();
    start_gateway(&F, false);
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-bob", "echo: are you there?", 0);
    send_id("dm-bob", "bob", "$b2", "marker");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-bob", "echo: marker", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(1, count_text("dm-bob", "echo: are you there?"));
    ASSERT_EQ(2, requests()); /* the recovered turn and the marker */
    stop_gateway(&F);
    ASSERT_EQ(0, q_int("SELECT count(*) FROM hc_inbox"));
    ASSERT_EQ(1, q_int("SELECT count(*) FROM messages WHERE role = 'user' AND content = "
                       "'are you there?'"));
}

TEST(a_voice_note_accepted_before_its_transcription_is_answered_after_restart)
{
    unsetenv("VOICE_TOOLS_OPENAI_KEY");
    unsetenv("OPENAI_API_KEY");
    first_run();
    char *path = rt_xasprintf("%s/7_voice.ogg", F.home);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs("OggS not really", f);
    fclose(f);
    gw_msg_event *ev = event("dm-alice", "alice", "$voice", "");
    ev->kind = GW_KIND_VOICE;
    ev->media = rt_xcalloc(1, sizeof(*ev->media));
    ev->media[0] = path;
    ev->nmedia = 1;
    leave_row(ev, now_epoch() - 3, NULL); /* as the router wrote it: media, no transcript */
    rt_msg_free(&ev->hdr);

    start_gateway(&F, false);
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "voice message", 0);
    ASSERT_STR_CONTAINS(outs[i].text, "echo: [The user sent a voice message");
    send_id("dm-alice", "alice", "$m", "marker");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: marker", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(1, count_text("dm-alice", "echo: [The user sent a voice message"));
    ASSERT_EQ(2, requests());
    stop_gateway(&F);
    ASSERT_EQ(0, q_int("SELECT count(*) FROM hc_inbox"));
}

TEST(rows_older_than_a_day_and_rows_that_do_not_parse_are_dropped)
{
    first_run();
    gw_msg_event *old = event("dm-alice", "alice", "$old", "from the day before yesterday");
    leave_row(old, now_epoch() - 2 * 86400, NULL);
    rt_msg_free(&old->hdr);
    gw_msg_event *bad = event("dm-alice", "alice", "$bad", "x");
    leave_row(bad, now_epoch() - 1, "{\"src\": 42, \"text\": ");
    rt_msg_free(&bad->hdr);
    ASSERT_EQ(2, q_int("SELECT count(*) FROM hc_inbox"));

    start_gateway(&F, false);
    send_id("dm-alice", "alice", "$m", "marker");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: marker", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(0, count_text("dm-alice", "day before yesterday"));
    ASSERT_EQ(1, requests());
    stop_gateway(&F);
    ASSERT_EQ(0, q_int("SELECT count(*) FROM hc_inbox"));
}

TEST(the_journal_json_round_trips_and_rejects_garbage)
{
    gw_msg_event *ev = event("c1", "u1", "$x", "hello \"there\"");
    ev->src.thread_id = rt_xstrdup("t1");
    ev->reply.thread_id = rt_xstrdup("t1");
    ev->reply.reply_to = rt_xstrdup("$x");
    ev->kind = GW_KIND_VOICE;
    ev->media = rt_xcalloc(2, sizeof(*ev->media));
    ev->media[0] = rt_xstrdup("/tmp/a.ogg");
    ev->media[1] = rt_xstrdup("/tmp/b.ogg");
    ev->nmedia = 2;
    char *json = gw_inbox_json(ev, true);
    gw_msg_event *back = gw_inbox_event(json);
    ASSERT_NOT_NULL(back);
    ASSERT_STR_EQ("test", back->src.platform);
    ASSERT_STR_EQ("c1", back->src.chat_id);
    ASSERT_STR_EQ("u1", back->src.user_id);
    ASSERT_STR_EQ("u1-name", back->src.user_name);
    ASSERT_STR_EQ("t1", back->src.thread_id);
    ASSERT_STR_EQ("t1", back->reply.thread_id);
    ASSERT_STR_EQ("$x", back->reply.reply_to);
    ASSERT_STR_EQ("hello \"there\"", back->text);
    ASSERT_STR_EQ("$x", back->message_id);
    ASSERT_EQ(GW_KIND_VOICE, back->kind);
    ASSERT_EQ(2, (int)back->nmedia);
    ASSERT_STR_EQ("/tmp/b.ogg", back->media[1]);
    ASSERT_EQ(0, (int)back->adapter);
    rt_free(json);
    rt_msg_free(&back->hdr);
    json = gw_inbox_json(ev, false); /* composed: the media are in the text already */
    back = gw_inbox_event(json);
    ASSERT_NOT_NULL(back);
    ASSERT_EQ(0, (int)back->nmedia);
    rt_free(json);
    rt_msg_free(&back->hdr);
    rt_msg_free(&ev->hdr);
    ASSERT_NULL(gw_inbox_event(NULL));
    ASSERT_NULL(gw_inbox_event(""));
    ASSERT_NULL(gw_inbox_event("[1,2]"));
    ASSERT_NULL(gw_inbox_event("{\"src\":{},\"reply\":{}}"));
    ASSERT_NULL(gw_inbox_event("{\"src\":{\"platform\":\"x\"}}"));
}

/* Issue 13: a drain does not wait for a turn that only waits for disk space (the chat parks
 * it: no interrupt, its journal row kept), and the exactly-once records the full disk refused
 * (the key and the journal row) are kept by the store and written by its last attempt at
 * SHUTDOWN once there is room: the restart answers the message once from the journal, and the
 * platform's redelivery of it is recognised. */
TEST(a_drain_does_not_wait_for_a_turn_waiting_for_disk_space_and_its_message_survives)
{
    first_run();
    start_gateway(&F, false);
    int64_t size = (int64_t)q_int("PRAGMA page_count") * q_int("PRAGMA page_size");
    rt_send(F.cx, F.store.writer, &st_set_quota_new(size)->hdr); /* the disk is full now */
    char text[16 << 10];
    for (size_t i = 0; i < sizeof(text) - 1; i++)
        text[i] = "bigmsg "[i % 7];
    text[sizeof(text) - 1] = '\0';
    send_id("dm-alice", "alice", "$full", text);
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "The disk holding Hermes' data is full", 0);
    ASSERT_EQ(0, q_int("SELECT count(*) FROM hc_inbound WHERE message_id = '$full'"));

    /* a drain of 60 s ends at once: .clean_shutdown appears long before */
    rt_send(F.cx, F.gateway, gw_shutdown_new(F.adapter, 77, 60000));
    char path[600];
    snprintf(path, sizeof(path), "%s/.clean_shutdown", F.home);
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    while (access(path, F_OK) != 0 && rt_now_ns(F.rt) < deadline)
        usleep(5000);
    ASSERT_OK(access(path, F_OK));
    ASSERT_EQ(0, count_text("dm-alice", "will be interrupted"));

    /* room again, then the store stops at once (before the session's retry): its last
     * attempt writes the key with the journal row */
    rt_send(F.cx, F.store.writer, &st_set_quota_new(0)->hdr);
    st_store_stop(F.cx, &F.store, 0, 0);
    stop_gateway(&F);
    ASSERT_EQ(1, q_int("SELECT count(*) FROM hc_inbound WHERE message_id = '$full'"));
    ASSERT_EQ(1, q_int("SELECT count(*) FROM hc_inbox WHERE message_id = '$full'"));
    ASSERT_EQ(0, q_int("SELECT count(*) FROM messages WHERE content LIKE 'bigmsg%'"));

    /* the restart answers it once; the platform's redelivery is a duplicate */
    reset_records();
    start_gateway(&F, false);
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: bigmsg", 0);
    send_id("dm-alice", "alice", "$full", text);
    send_id("dm-alice", "alice", "$marker", "marker");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: marker", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(1, count_text("dm-alice", "echo: bigmsg"));
    stop_gateway(&F);
    ASSERT_EQ(1, q_int("SELECT count(*) FROM messages WHERE content LIKE 'bigmsg%'"));
    ASSERT_EQ(0, q_int("SELECT count(*) FROM hc_inbox"));
}
