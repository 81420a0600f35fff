/*
 * The gateway end to end inside one process: a test adapter (platform "test") in front, the
 * real router, chat actors, agent sessions, pairing store and state.db behind it, and a
 * scripted LLM provider actor at the back. Covers: an answered and persisted DM, unknown
 * users (pairing code in a DM, silence in a group), pairing end to end, per-user and
 * per-thread isolation, a message while a turn runs (one follow-up answers all), /stop,
 * approvals by reply, commands, /sethome and delivery, crash recovery, bad events.
 *
 * "Nothing else arrived" is checked by sending an authorized message afterwards and waiting
 * for its answer: the adapter's mailbox is ordered, so anything earlier would be there.
 */
#include "ag_session.h"
#include "gw.h"
#include "gw_fixture.h"
#include "gw_int.h"
#include "gw_pairing.h"
#include "hm_config.h"
#include "hm_env.h"
#include "llm_provider.h"
#include "rt_alloc.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "st_read.h"
#include "st_store.h"
#include "test.h"
#include "tool.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int count_out(uint32_t type, int kind, const char *chat)
{
    pthread_mutex_lock(&lock);
    int n = 0;
    for (int i = 0; i < nouts; i++)
        n += outs[i].type == type && (kind < 0 || outs[i].kind == kind) &&
             (!chat || strcmp(outs[i].chat, chat) == 0);
    pthread_mutex_unlock(&lock);
    return n;
}

/* Wait until the model has had n requests. */
static void wait_requests(int n)
{
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    pthread_mutex_lock(&lock);
    while (nrequests < n) {
        if (rt_now_ns(F.rt) > deadline) {
            pthread_mutex_unlock(&lock);
            TEST_FAIL_("the model got %d requests, not %d", nrequests, n);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&cond, &lock, &ts);
    }
    pthread_mutex_unlock(&lock);
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

/* sessions.json is written within a second of a change. */
static void wait_index(void)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/sessions/sessions.json", F.home);
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    while (access(path, F_OK) != 0 && rt_now_ns(F.rt) < deadline)
        usleep(5000);
    ASSERT_OK(access(path, F_OK));
}

static const char *out_text(int i)
{
    return outs[i].text;
}

#define TC(id, name, args)                                                                         \
    "{\"id\":\"" id "\",\"type\":\"function\",\"function\":{\"name\":\"" name                      \
    "\",\"arguments\":\"" args "\"}}"

/* ------------------------------------------------------------------ tests */

TEST(dm_is_answered_and_persisted)
{
    start_gateway(&F, true);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "hello there");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", NULL, 0);
    ASSERT_STR_EQ("echo: hello there", out_text(i));
    i = wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    ASSERT_EQ(GW_OUTCOME_SUCCESS, outs[i].outcome);
    char session[96];
    snprintf(session, sizeof(session), "%s", outs[i].session);
    ASSERT_EQ(32, (int)strlen(session) + 8); /* YYYYMMDD_HHMMSS_xxxxxxxx */
    /* state.db has both messages; sessions.json knows the key */
    char path[600], msg[256];
    snprintf(path, sizeof(path), "%s/state.db", F.home);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    int err = 0;
    st_reader *r = st_reader_open(path, &err, msg, sizeof(msg));
    ASSERT_NOT_NULL(r);
    cJSON *msgs = NULL;
    ASSERT_OK(st_read_messages(r, session, &msgs));
    ASSERT_EQ(2, cJSON_GetArraySize(msgs));
    cJSON_Delete(msgs);
    st_reader_free(r);
    wait_index();
    stop_gateway(&F);
    snprintf(path, sizeof(path), "%s/sessions/sessions.json", F.home);
    char *text = NULL;
    size_t len = 0;
    ASSERT_OK(hm_read_file(path, 1 << 20, &text, &len));
    ASSERT_STR_CONTAINS(text, "\"agent:main:test:dm:dm-alice\"");
    ASSERT_STR_CONTAINS(text, session);
    struct stat st;
    ASSERT_OK(stat(path, &st));
    ASSERT_EQ(0600, st.st_mode & 0777);
    rt_free(text);
}

TEST(unknown_users_get_a_code_in_dms_and_silence_in_groups)
{
    start_gateway(&F, true);
    msg_in(&F, "group", "room-1", "mallory", NULL, "hi all");
    msg_in(&F, "dm", "dm-mallory", "mallory", NULL, "let me in");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-mallory", "pairing code", 0);
    ASSERT_STR_CONTAINS(out_text(i), "Hi~ I don't recognize you yet!");
    ASSERT_STR_CONTAINS(out_text(i), "hermes pairing approve test ");
    /* an event with no user id is dropped silently, so is one with no platform */
    msg_in(&F, "dm", "dm-x", NULL, NULL, "anonymous");
    gw_msg_event *bad = gw_event_new(NULL, "dm", "c", "alice", "no platform");
    rt_send(F.cx, F.gateway, &bad->hdr);
    /* then an authorized message: its answer proves nothing else came before it */
    msg_in(&F, "group", "room-1", "alice", NULL, "ping");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "room-1", "echo: ping", 0);
    ASSERT_EQ(1, count_out(GW_OUT_TEXT, GW_TEXT_REPLY, "room-1"));
    ASSERT_EQ(0, count_text("room-1", "pairing"));
    ASSERT_EQ(0, count_out(GW_OUT_TEXT, -1, "dm-x"));
    pthread_mutex_lock(&lock);
    ASSERT_EQ(1, nrequests);
    pthread_mutex_unlock(&lock);
    stop_gateway(&F);
}

TEST(pairing_end_to_end)
{
    start_gateway(&F, true);
    msg_in(&F, "dm", "dm-carol", "carol", NULL, "hello?");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-carol", "pairing code", 0);
    const char *p = strstr(out_text(i), "`hermes pairing approve test ");
    ASSERT_NOT_NULL(p);
    char code[16] = "";
    snprintf(code, sizeof(code), "%.8s", p + strlen("`hermes pairing approve test "));
    /* the owner approves, as `hermes pairing approve` would from another process */
    int err = 0;
    gw_pairing *store = gw_pairing_open(F.home, &err);
    ASSERT_NOT_NULL(store);
    char *uid = NULL, *uname = NULL;
    ASSERT_OK(gw_pairing_approve(store, "test", code, gw_pairing_now(), &uid, &uname));
    ASSERT_STR_EQ("carol", uid);
    rt_free(uid);
    rt_free(uname);
    gw_pairing_free(store);
    msg_in(&F, "dm", "dm-carol", "carol", NULL, "now?");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-carol", NULL, 0);
    ASSERT_STR_EQ("echo: now?", out_text(i));
    stop_gateway(&F);
}

TEST(groups_are_per_user_and_threads_are_shared)
{
    start_gateway(&F, true);
    msg_in(&F, "group", "room", "alice", NULL, "a1");
    wait_out(GW_OUT_TURN_END, -1, "room", NULL, 0);
    msg_in(&F, "group", "room", "bob", NULL, "b1");
    wait_out(GW_OUT_TURN_END, -1, "room", NULL, 1);
    /* bob's request holds only his own message */
    ASSERT_STR_EQ("b1|", all_users);
    msg_in(&F, "group", "room", "alice", NULL, "a2");
    wait_out(GW_OUT_TURN_END, -1, "room", NULL, 2);
    ASSERT_STR_EQ("a1|a2|", all_users);
    /* in a thread both talk in one session, each message prefixed with its sender */
    msg_in(&F, "group", "room", "alice", "t1", "in thread");
    wait_out(GW_OUT_TURN_END, -1, "room", NULL, 3);
    msg_in(&F, "group", "room", "bob", "t1", "me too");
    int i = wait_out(GW_OUT_TURN_END, -1, "room", NULL, 4);
    ASSERT_STR_EQ("[alice-name] in thread|[bob-name] me too|", all_users);
    int j = wait_out(GW_OUT_TURN_END, -1, "room", NULL, 3);
    ASSERT_STR_EQ(outs[i].session, outs[j].session);
    stop_gateway(&F);
}

TEST(messages_during_a_turn_are_answered_together)
{
    start_gateway(&F, true);
    scripts[nscripts++] = (script){.content = "too late", .delay_ms = 3000};
    /* the follow-up is slow too, so "three" lands during it or before it starts: either way
     * one answer covers everything */
    scripts[nscripts++] = (script){.delay_ms = 300};
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "one");
    /* wait until the model has the first one */
    wait_requests(1);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "two");
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "three");
    int ack = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Interrupting current task", 0);
    ASSERT_GE(ack, 0);
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", NULL, 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    /* one answer for all three, the model saw every message in order */
    ASSERT_EQ(1, count_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice"));
    ASSERT_NULL(strstr(out_text(i), "too late"));
    ASSERT_STR_CONTAINS(all_users, "one|");
    ASSERT_STR_CONTAINS(all_users, "two");
    ASSERT_STR_CONTAINS(all_users, "three");
    ASSERT_LT((int)(strstr(all_users, "two") - all_users),
              (int)(strstr(all_users, "three") - all_users));
    /* the acknowledgement went out once */
    ASSERT_EQ(1, count_text("dm-alice", "Interrupting"));
    stop_gateway(&F);
}

TEST(stop_interrupts_without_a_follow_up)
{
    start_gateway(&F, true);
    scripts[nscripts++] = (script){.content = "never", .delay_ms = 5000};
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "long task");
    wait_requests(1);
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "/stop");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-bob", "Stopped. You can continue this session.", 0);
    int i = wait_out(GW_OUT_TURN_END, -1, "dm-bob", NULL, 0);
    ASSERT_EQ(GW_OUTCOME_CANCELLED, outs[i].outcome);
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "/stop");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-bob", "No active task to stop.", 0);
    /* the session goes on */
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "again");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-bob", NULL, 0);
    ASSERT_STR_EQ("echo: again", out_text(i));
    ASSERT_EQ(1, count_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-bob"));
    stop_gateway(&F);
}

/* The user sends a message, then /stop; on the urgent lane the stop overtakes the message
 * somewhere in the gateway. The stop still covers it: it is never answered, and the session
 * goes on. */
TEST(stop_covers_a_message_it_overtook)
{
    start_gateway(&F, true);
    scripts[nscripts++] = (script){.content = "never", .delay_ms = 5000};
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "long task");
    wait_requests(1);
    gw_msg_event *before = msg_new(&F, "dm", "dm-bob", "bob", NULL, "sent before the stop");
    gw_event_seq(before); /* received now, delivered after the stop below */
    ASSERT_TRUE(gw_event_send(F.cx, F.gateway, msg_new(&F, "dm", "dm-bob", "bob", NULL, "/stop")));
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-bob", "Stopped. You can continue this session.", 0);
    rt_send(F.cx, F.gateway, &before->hdr);
    int i = wait_out(GW_OUT_TURN_END, -1, "dm-bob", NULL, 1);
    ASSERT_EQ(GW_OUTCOME_CANCELLED, outs[i].outcome);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(1, nrequests); /* the model never saw it */
    ASSERT_EQ(0, count_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-bob"));
    /* a message sent after the stop is answered */
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "again");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-bob", NULL, 0);
    ASSERT_STR_EQ("echo: again", out_text(i));
    stop_gateway(&F);
}

TEST(dangerous_commands_wait_for_yes_or_no)
{
    start_gateway(&F, true);
    scripts[nscripts++] = (script){
        .tool_calls = "[" TC("c1", "test_echo", "{\\\"command\\\":\\\"rm -rf /tmp/x\\\"}") "]"};
    scripts[nscripts++] = (script){.content = "deleted"};
    scripts[nscripts++] = (script){
        .tool_calls = "[" TC("c2", "test_echo", "{\\\"command\\\":\\\"rm -rf /tmp/y\\\"}") "]"};
    scripts[nscripts++] = (script){.content = "kept"};
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "clean up");
    int i =
        wait_out(GW_OUT_TEXT, GW_TEXT_ASK, "dm-alice", "Dangerous command requires approval", 0);
    ASSERT_STR_CONTAINS(out_text(i), "rm -rf /tmp/x");
    ASSERT_STR_CONTAINS(out_text(i), "Reason: recursive delete");
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "Yes");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Command approved", 0);
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", NULL, 0);
    ASSERT_STR_EQ("deleted", out_text(i));
    ASSERT_STR_CONTAINS(last_user, "\"answer\":1"); /* TOOL_ANSWER_ONCE reached the tool */

    msg_in(&F, "dm", "dm-alice", "alice", NULL, "and the other");
    wait_out(GW_OUT_TEXT, GW_TEXT_ASK, "dm-alice", "rm -rf /tmp/y", 0);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "n");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Command denied.", 0);
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", NULL, 1);
    ASSERT_STR_EQ("kept", out_text(i));
    /* with nothing pending, /approve says so and "yes" is an ordinary message */
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/approve");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "No pending command to approve.", 0);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "yes");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", NULL, 2);
    ASSERT_STR_EQ("echo: yes", out_text(i));
    stop_gateway(&F);
}

TEST(commands)
{
    start_gateway(&F, true);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "first");
    int i = wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    char first[96];
    snprintf(first, sizeof(first), "%s", outs[i].session);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/help");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Hermes Commands", 0);
    ASSERT_STR_CONTAINS(out_text(i), "`/new` -- Start a new session");
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/status");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Hermes Gateway Status", 0);
    ASSERT_STR_CONTAINS(out_text(i), first);
    ASSERT_STR_CONTAINS(out_text(i), "**Agent Running:** No");
    ASSERT_STR_CONTAINS(out_text(i), "**Connected Platforms:** test");
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/frobnicate now");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Unknown command `/frobnicate`", 0);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/etc/passwd is a file");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", NULL, 1);
    ASSERT_STR_EQ("echo: /etc/passwd is a file", out_text(i));
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/undo");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Undid 2 message(s)", 0);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/retry");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", NULL, 2);
    ASSERT_STR_EQ("echo: first", out_text(i));
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/model other-model");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Model switched to `other-model`", 0);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/new");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Session reset! Starting fresh.", 0);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "fresh start");
    i = wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 3);
    ASSERT_NE(0, strcmp(first, outs[i].session));
    ASSERT_STR_EQ("fresh start|", all_users);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/usage");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Session Token Usage", 0);
    ASSERT_STR_CONTAINS(out_text(i), "API calls: 1");
    stop_gateway(&F);
}

TEST(sethome_then_delivery)
{
    start_gateway(&F, true);
    /* a fresh session on a platform without a home channel gets the hint once */
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "hi");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "No home channel is set for Test", 0);
    wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    rt_ref me = F.adapter; /* the delivery result comes back to a collector */
    (void)me;
    msg_in(&F, "group", "ops-room", "alice", NULL, "/sethome");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "ops-room", "Home channel set to", 0);
    ASSERT_STR_CONTAINS(out_text(i), "(ID: ops-room)");
    rt_send(F.cx, F.gateway, gw_deliver_new("test", NULL, NULL, "cron says hi", 0, 0));
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "ops-room", "cron says hi", 0);
    ASSERT_GE(i, 0);
    stop_gateway(&F);
    char path[600];
    snprintf(path, sizeof(path), "%s/.env", F.home);
    char *text = NULL;
    size_t len = 0;
    ASSERT_OK(hm_read_file(path, 1 << 20, &text, &len));
    ASSERT_STR_CONTAINS(text, "TEST_HOME_CHANNEL=ops-room");
    rt_free(text);
}

TEST(a_message_left_unanswered_by_a_crash_is_answered_after_restart)
{
    start_gateway(&F, true);
    /* the model never answers the first run's message: a crash then */
    scripts[nscripts++] = (script){.content = "lost", .delay_ms = 60000};
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "are you there?");
    wait_requests(1);
    wait_index();          /* then "crash" */
    rt_runtime_free(F.rt); /* no drain, no clean shutdown */
    hm_config_unref(F.cfg);

    reset_records();
    start_gateway(&F, false);
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-bob", NULL, 0);
    ASSERT_STR_EQ("echo: are you there?", out_text(i));
    pthread_mutex_lock(&lock);
    ASSERT_EQ(1, nrequests);
    pthread_mutex_unlock(&lock);
    stop_gateway(&F);
}

TEST(shutdown_drains_and_marks_a_clean_stop)
{
    start_gateway(&F, true);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "quick");
    wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    rt_ref self = F.adapter; /* the adapter collects the done tick too */
    rt_send(F.cx, F.gateway, gw_shutdown_new(self, 77, 2000));
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    char path[600];
    snprintf(path, sizeof(path), "%s/.clean_shutdown", F.home);
    ASSERT_OK(access(path, F_OK));
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "late");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Gateway is shutting down", 0);
    stop_gateway(&F);
}

/* An API adapter: requests on one session wait for each other; a withdrawn one ends
 * cancelled whether it was waiting or running. */
TEST(api_requests_queue_and_cancel)
{
    start_gateway(&F, true);
    rt_ref api = rt_spawn(F.cx, &adapter_type, NULL, NULL);
    gw_caps caps = {.api = true, .streams = true, .progress = true};
    rt_send(F.cx, F.gateway, gw_adapter_up_new("api_server", api, &caps, NULL));
    scripts[nscripts++] = (script){.content = "slow one", .delay_ms = 5000};
    for (uint64_t req = 1; req <= 3; req++) {
        char text[16];
        snprintf(text, sizeof(text), "q%llu", (unsigned long long)req);
        gw_msg_event *e = gw_event_new("api_server", "dm", "sess-a", "api", text);
        e->session_id = rt_xstrdup("sess-a");
        e->internal = true;
        e->reply.request = req;
        e->adapter = api;
        rt_send(F.cx, F.gateway, &e->hdr);
        if (req == 1)
            wait_requests(1);
    }
    /* withdraw the waiting second one, then the running first one */
    gw_target t2 = {.chat_id = "sess-a", .request = 2};
    rt_send(F.cx, F.gateway, gw_cancel_new("api_server", &t2, "sess-a", api));
    int i = wait_out(GW_OUT_TURN_END, -1, "sess-a", NULL, 0);
    ASSERT_EQ(2, (int)outs[i].request);
    ASSERT_EQ(GW_OUTCOME_CANCELLED, outs[i].outcome);
    gw_target t1 = {.chat_id = "sess-a", .request = 1};
    rt_send(F.cx, F.gateway, gw_cancel_new("api_server", &t1, "sess-a", api));
    i = wait_out(GW_OUT_TURN_END, -1, "sess-a", NULL, 1);
    ASSERT_EQ(1, (int)outs[i].request);
    ASSERT_EQ(GW_OUTCOME_CANCELLED, outs[i].outcome);
    /* the third runs after them, alone, and is answered */
    i = wait_out(GW_OUT_TURN_END, -1, "sess-a", NULL, 2);
    ASSERT_EQ(3, (int)outs[i].request);
    ASSERT_EQ(GW_OUTCOME_SUCCESS, outs[i].outcome);
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "sess-a", NULL, 0);
    ASSERT_STR_EQ("echo: q3", out_text(i));
    ASSERT_EQ(1, count_out(GW_OUT_TEXT, GW_TEXT_REPLY, "sess-a"));
    /* a cancel for something unknown is ignored */
    gw_target t9 = {.chat_id = "sess-a", .request = 99};
    rt_send(F.cx, F.gateway, gw_cancel_new("api_server", &t9, "sess-a", api));
    stop_gateway(&F);
}

/* An event the platform names (message_id), as adapters send them. */
static void msg_in_id(fixture *f, const char *chat, const char *user, const char *id,
                      const char *text)
{
    gw_msg_event *e = gw_event_new("test", "dm", chat, user, text);
    e->message_id = rt_xstrdup(id);
    e->adapter = f->adapter;
    rt_send(f->cx, f->gateway, &e->hdr);
}

TEST(a_redelivered_update_is_answered_once_also_after_a_restart)
{
    start_gateway(&F, true);
    msg_in_id(&F, "dm-alice", "alice", "$ev1", "hi");
    wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    msg_in_id(&F, "dm-alice", "alice", "$ev1", "hi"); /* redelivered */
    msg_in_id(&F, "dm-alice", "alice", "$ev2", "second");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: second", 0);
    ASSERT_EQ(1, count_text("dm-alice", "echo: hi"));

    /* a turn the crash interrupts: its update comes again after the restart */
    scripts[nscripts++] = (script){.content = "lost", .delay_ms = 60000};
    msg_in_id(&F, "dm-alice", "alice", "$ev3", "are you there?");
    wait_requests(3);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000)); /* the store has what it was sent */
    wait_index();
    rt_runtime_free(F.rt); /* the crash: no drain */
    hm_config_unref(F.cfg);

    reset_records();
    start_gateway(&F, false);
    msg_in_id(&F, "dm-alice", "alice", "$ev1", "hi");             /* old news */
    msg_in_id(&F, "dm-alice", "alice", "$ev3", "are you there?"); /* answered by recovery */
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: are you there?", 0);
    (void)i;
    msg_in_id(&F, "dm-alice", "alice", "$ev4", "marker");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: marker", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(0, count_text("dm-alice", "echo: hi"));
    ASSERT_EQ(1, count_text("dm-alice", "echo: are you there?"));
    pthread_mutex_lock(&lock);
    ASSERT_EQ(2, nrequests); /* the recovered turn and the marker */
    pthread_mutex_unlock(&lock);
    stop_gateway(&F);
}

TEST(background_tasks_answer_beside_the_conversation)
{
    start_gateway(&F, true);
    scripts[nscripts++] = (script){.delay_ms = 400}; /* the background turn takes its time */
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/background summarize this");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Background task started", 0);
    ASSERT_STR_CONTAINS(out_text(i), "\"summarize this\"\nTask ID: bg_");
    wait_requests(1);
    /* the conversation goes on meanwhile */
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "hello");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: hello", 0);
    ASSERT_EQ(0, count_text("dm-alice", "Background task complete"));
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "Background task complete", 0);
    ASSERT_STR_CONTAINS(out_text(i), "Prompt: \"summarize this\"\n\necho: summarize this");
    /* its own session, not the conversation's */
    pthread_mutex_lock(&lock);
    ASSERT_TRUE(strstr(all_users, "summarize this") == NULL || strstr(all_users, "hello") == NULL);
    pthread_mutex_unlock(&lock);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/bg");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Usage: /background <prompt>", 0);
    stop_gateway(&F);
}

TEST(compress_on_demand)
{
    start_gateway(&F, true);
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "m1");
    wait_out(GW_OUT_TURN_END, -1, "dm-bob", NULL, 0);
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "/compress");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-bob", "Not enough conversation to compress", 0);
    for (int i = 2; i <= 5; i++) {
        char m[8];
        snprintf(m, sizeof(m), "m%d", i);
        msg_in(&F, "dm", "dm-bob", "bob", NULL, m);
        wait_out(GW_OUT_TURN_END, -1, "dm-bob", NULL, i - 1);
    }
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "/compress");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-bob", "Compressed: 10 \xe2\x86\x92 ", 0);
    (void)i;
    /* the conversation goes on from the compressed history */
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "after");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-bob", "echo: after", 0);
    stop_gateway(&F);
}

/* The test adapter announces that it acknowledges sends (caps.acks). */
static void adapter_acks(fixture *f)
{
    gw_caps caps = {.max_message = 4000, .progress = true, .markdown = true, .acks = true};
    rt_send(f->cx, f->gateway, gw_adapter_up_new("test", f->adapter, &caps, NULL));
}

TEST(replies_are_retried_in_order_until_the_platform_takes_them)
{
    start_gateway(&F, true);
    adapter_acks(&F);
    pthread_mutex_lock(&lock);
    ack_failures = 2; /* the first answer fails twice */
    pthread_mutex_unlock(&lock);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "one");
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "other chat");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: one", 0); /* fails */
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "two");               /* its answer queues behind */
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: two", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(3, count_text("dm-alice", "echo: one"));
    ASSERT_EQ(1, count_text("dm-alice", "echo: two"));
    ASSERT_EQ(1, count_text("dm-bob", "echo: other chat"));
    /* order: no "two" before the last "one" */
    int last_one = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: one", 2);
    ASSERT_TRUE(last_one < i);
    stop_gateway(&F);
}

TEST(replies_wait_for_their_platform_also_across_a_restart)
{
    start_gateway(&F, true);
    adapter_acks(&F);
    scripts[nscripts++] = (script){.delay_ms = 200};
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "while you are away");
    wait_requests(1);
    rt_send(F.cx, F.gateway, gw_adapter_down_new("test", F.adapter)); /* the platform goes */
    wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);               /* the answer is in */
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(0, count_text("dm-alice", "echo: while you are away"));
    rt_runtime_free(F.rt); /* and the gateway crashes */
    hm_config_unref(F.cfg);

    reset_records();
    start_gateway(&F, false); /* the platform is back with the gateway */
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: while you are away", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(1, count_text("dm-alice", "echo: while you are away"));
    pthread_mutex_lock(&lock);
    ASSERT_EQ(0, nrequests); /* delivered from the outbox, not answered again */
    pthread_mutex_unlock(&lock);
    stop_gateway(&F);
}

static int outbox_rows(const char *state)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/state.db", F.home);
    sqlite3 *db = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL));
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_prepare_v2(db, "SELECT count(*) FROM hc_outbox WHERE state = ?",
                                            -1, &st, NULL));
    sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
    ASSERT_EQ(SQLITE_ROW, sqlite3_step(st));
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

TEST(a_reply_the_platform_never_takes_is_given_up_at_the_deadline)
{
    F_deadline_ms = 300;
    start_gateway(&F, true);
    F_deadline_ms = 0;
    adapter_acks(&F);
    pthread_mutex_lock(&lock);
    ack_failures = -1; /* always */
    pthread_mutex_unlock(&lock);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "doomed");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: doomed", 0);
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    while (outbox_rows("failed") == 0 && rt_now_ns(F.rt) < deadline)
        usleep(20000);
    ASSERT_EQ(1, outbox_rows("failed"));
    ASSERT_EQ(0, outbox_rows("pending"));
    /* later replies of the chat are not held up by it */
    pthread_mutex_lock(&lock);
    ack_failures = 0;
    pthread_mutex_unlock(&lock);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "fine");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: fine", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(0, outbox_rows("pending"));
    stop_gateway(&F);
}
