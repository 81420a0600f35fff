/*
 * test_matrix — the Matrix adapter against the homeserver double (tests/doubles/
 * matrix_double.py) and a gateway stand-in: login, DMs, mentions and threads in rooms,
 * invites, reactions/typing/receipts, media, the sync loop's error handling (500, 429 with
 * retry_after_ms, a rejected token, the homeserver restarting) without a retry storm, the
 * since token across a restart of the bot, and room independence.
 *
 * The adapter's timers run on the runtime's fake clock: a retry happens only when the test
 * moves the clock, so "no storm" is asserted by counting the requests the double saw.
 */
#include "matrix_env.h"
#include "rt_alloc.h"
#include "test.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define ALICE "@alice:localhost"
#define BOB   "@bob:localhost"
#define DM    "!dm:localhost"
#define TOWN  "!town:localhost"

static const char *jstr(const cJSON *o, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* Wait until GET /_double/<what> has n items (asserts). */
static void await_items(mxd *d, const char *what, int n, int timeout_ms)
{
    cJSON *a = mxd_wait(d, what, n, timeout_ms);
    ASSERT_NOT_NULL(a);
    cJSON_Delete(a);
}

/* The bot's m.room.message events in room with body == text. */
static int replies(mxd *d, const char *room, const char *text)
{
    char q[256];
    snprintf(q, sizeof(q), "sent?room=%s&type=m.room.message", room);
    cJSON *a = mxd_wait(d, q, 0, 0);
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        const char *b = jstr(cJSON_GetObjectItem(e, "content"), "body");
        n += b && strcmp(b, text) == 0;
    }
    cJSON_Delete(a);
    return n;
}

/* Wait until the bot sent text to room (n times); asserts. Returns the last such event. */
static cJSON *wait_reply(mxd *d, const char *room, const char *text)
{
    char q[256];
    snprintf(q, sizeof(q), "sent?room=%s&type=m.room.message", room);
    for (int i = 0; i < 500; i++) {
        cJSON *a = mxd_wait(d, q, 1, MX_WAIT_MS);
        ASSERT_NOT_NULL(a);
        cJSON *found = NULL;
        const cJSON *e;
        cJSON_ArrayForEach(e, a)
        {
            const char *b = jstr(cJSON_GetObjectItem(e, "content"), "body");
            if (b && strcmp(b, text) == 0)
                found = (cJSON *)e;
        }
        if (found) {
            cJSON *copy = cJSON_Duplicate(found, true);
            cJSON_Delete(a);
            return copy;
        }
        cJSON_Delete(a);
        const struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    TEST_FAIL_("no reply '%s' in %s", text, room);
}

TEST(dm_answered_with_reactions_typing_receipt)
{
    mxd d = {0};
    mxd_start(&d, 0, test_tmpdir(), false);
    mxd_room(&d, DM, ALICE, true, false);
    mte e;
    mte_init(&e, &d, NULL);
    mte_up(&e);
    ASSERT_EQ(mgw_ups(e.gw), 1);
    gw_caps caps = mgw_caps(e.gw);
    ASSERT_EQ(caps.max_message, 4000); /* the gateway splits longer replies there */
    ASSERT_TRUE(caps.markdown);
    ASSERT_TRUE(caps.acks);
    ASSERT_FALSE(caps.streams);
    /* the first sync has a filter of its own (homeservers cache identical syncs) */
    cJSON *sy = mxd_wait(&d, "requests?label=sync", 1, MX_WAIT_MS);
    ASSERT_NOT_NULL(sy);
    ASSERT_STR_CONTAINS(jstr(cJSON_GetArrayItem(sy, 0), "query"), "not_senders");
    cJSON_Delete(sy);
    char *id = mxd_say(&d, DM, ALICE, "**hello** bot", NULL);
    ASSERT_OK(mgw_wait(e.gw, 1, MX_WAIT_MS));
    const mgw_ev *ev = mgw_get(e.gw, 0);
    ASSERT_STR_EQ(ev->chat_type, "dm");
    ASSERT_STR_EQ(ev->chat_id, DM);
    ASSERT_STR_EQ(ev->user_id, ALICE);
    ASSERT_STR_EQ(ev->user_name, "Alice");
    ASSERT_STR_EQ(ev->text, "**hello** bot");
    ASSERT_STR_EQ(ev->message_id, id); /* the Matrix event id: the idempotency key */
    ASSERT_NULL(ev->thread_id);        /* DMs are not threaded */
    cJSON *r = wait_reply(&d, DM, "Echo: **hello** bot");
    const cJSON *c = cJSON_GetObjectItem(r, "content");
    ASSERT_STR_EQ(jstr(c, "msgtype"), "m.text");
    ASSERT_STR_EQ(jstr(c, "formatted_body"), "Echo: <strong>hello</strong> bot");
    cJSON_Delete(r);
    /* 👀 then its redaction then ✅ */
    cJSON *re = mxd_wait(&d, "sent?type=m.reaction", 2, MX_WAIT_MS);
    ASSERT_NOT_NULL(re);
    const cJSON *eyes = cJSON_GetArrayItem(re, 0), *done = cJSON_GetArrayItem(re, 1);
    const cJSON *rel0 = cJSON_GetObjectItem(cJSON_GetObjectItem(eyes, "content"), "m.relates_to");
    const cJSON *rel1 = cJSON_GetObjectItem(cJSON_GetObjectItem(done, "content"), "m.relates_to");
    ASSERT_STR_EQ(jstr(rel0, "key"), "\xf0\x9f\x91\x80");
    ASSERT_STR_EQ(jstr(rel0, "event_id"), id);
    ASSERT_STR_EQ(jstr(rel1, "key"), "\xe2\x9c\x85");
    cJSON *red = mxd_wait(&d, "sent?type=m.room.redaction", 1, MX_WAIT_MS);
    ASSERT_NOT_NULL(red);
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(red, 0), "redacts"), jstr(eyes, "event_id"));
    cJSON_Delete(red);
    cJSON_Delete(re);
    /* typing on and off, a read receipt for the message */
    cJSON *ty = mxd_wait(&d, "typing", 2, MX_WAIT_MS);
    ASSERT_NOT_NULL(ty);
    ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(ty, 0), "typing")));
    ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(ty, 1), "typing")));
    cJSON_Delete(ty);
    cJSON *rc = mxd_wait(&d, "receipts", 1, MX_WAIT_MS);
    ASSERT_NOT_NULL(rc);
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(rc, 0), "read"), id);
    cJSON_Delete(rc);
    /* a failed turn gets ❌ */
    rt_free(mxd_say(&d, DM, ALICE, "please fail", NULL));
    cJSON *re2 = mxd_wait(&d, "sent?type=m.reaction", 4, MX_WAIT_MS);
    ASSERT_NOT_NULL(re2);
    ASSERT_STR_EQ(
        jstr(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(re2, 3), "content"),
                                 "m.relates_to"),
             "key"),
        "\xe2\x9d\x8c");
    cJSON_Delete(re2);
    /* the bot's own messages, notices and edits never reach the gateway */
    rt_free(mxd_say(&d, DM, ALICE, NULL, "{\"msgtype\":\"m.notice\",\"body\":\"bot notice\"}"));
    mxd_post(&d, DM, ALICE, NULL,
             "{\"msgtype\":\"m.text\",\"body\":\"* edit\",\"m.relates_to\":{\"rel_type\":"
             "\"m.replace\",\"event_id\":\"$x\"}}");
    mxd_post(&d, DM, ALICE, NULL, "{\"msgtype\":\"m.text\"}");              /* no body */
    mxd_post(&d, DM, ALICE, NULL, "{\"msgtype\":\"m.text\",\"body\":[1]}"); /* malformed */
    rt_free(mxd_say(&d, DM, ALICE, "last", NULL));
    ASSERT_OK(mgw_wait(e.gw, 3, MX_WAIT_MS));
    cJSON_Delete(wait_reply(&d, DM, "Echo: last"));
    ASSERT_EQ(mgw_count(e.gw), 3);
    ASSERT_STR_EQ(mgw_get(e.gw, 2)->text, "last");
    int ok = 0, failed = 0; /* every reply acknowledged to the outbox */
    for (int i = 0; i < 500 && ok < 3; i++) {
        mgw_acks(e.gw, &ok, &failed);
        const struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ASSERT_EQ(ok, 3);
    ASSERT_EQ(failed, 0);
    rt_free(id);
    mte_fini(&e, true);
    mxd_stop(&d);
}

TEST(room_mentions_and_threads)
{
    mxd d = {0};
    mxd_start(&d, 0, test_tmpdir(), false);
    mxd_room(&d, TOWN, ALICE "," BOB, false, false);
    mte e;
    mte_init(&e, &d, NULL);
    mte_up(&e);
    mxd_post(&d, TOWN, ALICE, "hello everyone", NULL); /* no mention: ignored */
    char *m1 = mxd_say(&d, TOWN, ALICE, "@bot:localhost what is 2+2?", NULL);
    ASSERT_OK(mgw_wait(e.gw, 1, MX_WAIT_MS));
    const mgw_ev *ev = mgw_get(e.gw, 0);
    ASSERT_STR_EQ(ev->chat_type, "group");
    ASSERT_STR_EQ(ev->text, "what is 2+2?"); /* the full user id is stripped */
    ASSERT_STR_EQ(ev->thread_id, m1);        /* auto-thread rooted at the message */
    ASSERT_STR_EQ(ev->message_id, m1);
    cJSON *r = wait_reply(&d, TOWN, "Echo: what is 2+2?");
    const cJSON *rel = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "content"), "m.relates_to");
    ASSERT_STR_EQ(jstr(rel, "rel_type"), "m.thread");
    ASSERT_STR_EQ(jstr(rel, "event_id"), m1);
    cJSON_Delete(r);
    /* in the thread the bot is in, no mention is needed */
    char body[512];
    snprintf(body, sizeof(body),
             "{\"msgtype\":\"m.text\",\"body\":\"and 3+3?\",\"m.relates_to\":{\"rel_type\":"
             "\"m.thread\",\"event_id\":\"%s\"}}",
             m1);
    rt_free(mxd_say(&d, TOWN, BOB, NULL, body));
    ASSERT_OK(mgw_wait(e.gw, 2, MX_WAIT_MS));
    ASSERT_STR_EQ(mgw_get(e.gw, 1)->thread_id, m1);
    ASSERT_STR_EQ(mgw_get(e.gw, 1)->user_id, BOB); /* per-user session: the sender */
    /* a thread the bot is not in needs a mention */
    mxd_post(&d, TOWN, BOB, NULL,
             "{\"msgtype\":\"m.text\",\"body\":\"side talk\",\"m.relates_to\":{\"rel_type\":"
             "\"m.thread\",\"event_id\":\"$elsewhere\"}}");
    /* m.mentions, a pill, the localpart */
    mxd_post(&d, TOWN, ALICE, NULL,
             "{\"msgtype\":\"m.text\",\"body\":\"Bot: one\",\"m.mentions\":{\"user_ids\":"
             "[\"@bot:localhost\"]}}");
    mxd_post(&d, TOWN, BOB, NULL,
             "{\"msgtype\":\"m.text\",\"body\":\"Robot: two\",\"format\":"
             "\"org.matrix.custom.html\",\"formatted_body\":\"<a href=\\\"https://matrix.to/#/"
             "@bot:localhost\\\">Robot</a>: two\"}");
    rt_free(mxd_say(&d, TOWN, ALICE, "hey bot, three", NULL));
    rt_free(mxd_say(&d, TOWN, ALICE, "robots are not mentions", NULL));
    ASSERT_OK(mgw_wait(e.gw, 5, MX_WAIT_MS));
    cJSON_Delete(wait_reply(&d, TOWN, "Echo: hey bot, three"));
    ASSERT_EQ(mgw_count(e.gw), 5);
    ASSERT_STR_EQ(mgw_get(e.gw, 2)->text, "Bot: one");
    ASSERT_STR_EQ(mgw_get(e.gw, 3)->text, "Robot: two");
    ASSERT_STR_EQ(mgw_get(e.gw, 4)->text, "hey bot, three");
    /* the thread memory is persisted */
    char path[256];
    snprintf(path, sizeof(path), "%s/matrix_threads.json", e.home);
    struct stat st;
    ASSERT_OK(stat(path, &st));
    rt_free(m1);
    mte_fini(&e, true);
    mxd_stop(&d);
}

TEST(free_response_and_no_mention_settings)
{
    mxd d = {0};
    mxd_start(&d, 0, test_tmpdir(), false);
    mxd_room(&d, TOWN, ALICE "," BOB, false, false);
    mxd_room(&d, "!free:localhost", ALICE "," BOB, false, false);
    mte e;
    mte_init(&e, &d, NULL);
    char *rooms[] = {"!free:localhost"};
    e.o.free_rooms = rt_xcalloc(1, sizeof(char *));
    e.o.free_rooms[0] = rt_xstrdup(rooms[0]);
    e.o.nfree_rooms = 1;
    e.o.auto_thread = false;
    mte_up(&e);
    rt_free(mxd_say(&d, TOWN, ALICE, "not for you", NULL));
    rt_free(mxd_say(&d, "!free:localhost", ALICE, "free talk", NULL));
    ASSERT_OK(mgw_wait(e.gw, 1, MX_WAIT_MS));
    cJSON_Delete(wait_reply(&d, "!free:localhost", "Echo: free talk"));
    ASSERT_EQ(mgw_count(e.gw), 1);
    ASSERT_NULL(mgw_get(e.gw, 0)->thread_id); /* MATRIX_AUTO_THREAD=false */
    mte_fini(&e, true);
    /* MATRIX_REQUIRE_MENTION=false: every room message, auto-threaded */
    mte_init(&e, &d, NULL);
    e.o.require_mention = false;
    mte_up(&e);
    mxd_room(&d, "!open:localhost", ALICE "," BOB, false, false);
    char *id = mxd_say(&d, "!open:localhost", BOB, "anyone?", NULL);
    /* (the first start also answers what came in the 5 s before it: "not for you") */
    cJSON_Delete(wait_reply(&d, "!open:localhost", "Echo: anyone?"));
    const mgw_ev *open = NULL;
    for (int i = 0; i < mgw_count(e.gw); i++)
        if (!strcmp(mgw_get(e.gw, i)->chat_id, "!open:localhost"))
            open = mgw_get(e.gw, i);
    ASSERT_NOT_NULL(open);
    ASSERT_STR_EQ(open->text, "anyone?");
    ASSERT_STR_EQ(open->thread_id, id);
    rt_free(id);
    mte_fini(&e, true);
    mxd_stop(&d);
}

TEST(dm_mention_threads)
{
    mxd d = {0};
    mxd_start(&d, 0, test_tmpdir(), false);
    mxd_room(&d, DM, ALICE, true, false);
    mte e;
    mte_init(&e, &d, NULL);
    e.o.dm_mention_threads = true;
    mte_up(&e);
    rt_free(mxd_say(&d, DM, ALICE, "plain", NULL));
    char *id = mxd_say(&d, DM, ALICE, "@bot:localhost in a thread", NULL);
    ASSERT_OK(mgw_wait(e.gw, 2, MX_WAIT_MS));
    ASSERT_NULL(mgw_get(e.gw, 0)->thread_id);
    ASSERT_STR_EQ(mgw_get(e.gw, 1)->thread_id, id);
    rt_free(id);
    mte_fini(&e, true);
    mxd_stop(&d);
}

TEST(invite_is_joined_and_answered)
{
    mxd d = {0};
    mxd_start(&d, 0, test_tmpdir(), false);
    mte e;
    mte_init(&e, &d, NULL);
    mte_up(&e);
    mxd_room(&d, "!new:localhost", ALICE, true, true); /* a DM invite */
    ASSERT_OK(mte_wait_stat(&e, &e.st.joins, 1, MX_WAIT_MS));
    await_items(&d, "requests?label=join", 1, MX_WAIT_MS);
    ASSERT_OK(mte_wait_stat(&e, &e.st.rooms, 1, MX_WAIT_MS));
    rt_free(mxd_say(&d, "!new:localhost", ALICE, "thanks for joining", NULL));
    ASSERT_OK(mgw_wait(e.gw, 1, MX_WAIT_MS));
    ASSERT_STR_EQ(mgw_get(e.gw, 0)->chat_type, "dm");
    cJSON_Delete(wait_reply(&d, "!new:localhost", "Echo: thanks for joining"));
    mte_fini(&e, true);
    mxd_stop(&d);
}

/* Sync requests the double saw. */
static int syncs(mxd *d)
{
    return mxd_count(d, "requests?label=sync");
}

TEST(sync_errors_retry_after_5s_without_storm)
{
    mxd d = {0};
    mxd_start(&d, 0, test_tmpdir(), false);
    mxd_room(&d, DM, ALICE, true, false);
    mte e;
    mte_init(&e, &d, NULL);
    mte_up(&e);
    mxd_do(&d, "/_double/fault", "{\"label\":\"sync\",\"status\":500,\"count\":-1}");
    /* the long-poll in flight comes back (2 s), the next one fails */
    ASSERT_OK(mte_wait_stat(&e, &e.st.sync_errors, 1, MX_WAIT_MS));
    ASSERT_OK(rt_wait_quiescent(e.rt, MX_WAIT_MS)); /* nothing in flight: only a timer */
    int n = syncs(&d);
    ASSERT_EQ(atomic_load(&e.st.retry_wait_ms), 5000);
    ASSERT_TRUE(mte_logged("Matrix: sync error: M_UNKNOWN: Internal server error (HTTP 500) — "
                           "retrying in 5s"));
    mte_advance(&e, 4990);
    ASSERT_OK(rt_wait_quiescent(e.rt, MX_WAIT_MS));
    ASSERT_EQ(syncs(&d), n); /* no request before the 5 s are up */
    for (int round = 0; round < 6; round++) {
        mte_advance(&e, 10 + (round ? 4990 : 0));
        ASSERT_OK(mte_wait_stat(&e, &e.st.sync_errors, (uint64_t)round + 2, MX_WAIT_MS));
        ASSERT_OK(rt_wait_quiescent(e.rt, MX_WAIT_MS));
        ASSERT_EQ(syncs(&d), n + round + 1); /* exactly one request per 5 s */
    }
    /* the server heals: the loop resumes and messages flow */
    mxd_do(&d, "/_double/clear_faults", "{}");
    mte_advance(&e, 5000);
    ASSERT_OK(mte_wait_stat(&e, &e.st.syncs, atomic_load(&e.st.syncs) + 1, MX_WAIT_MS));
    rt_free(mxd_say(&d, DM, ALICE, "back?", NULL));
    cJSON_Delete(wait_reply(&d, DM, "Echo: back?"));
    ASSERT_TRUE(mte_logged("Matrix: sync recovered after"));
    mte_fini(&e, true);
    mxd_stop(&d);
}

TEST(sync_429_waits_retry_after_ms)
{
    mxd d = {0};
    mxd_start(&d, 0, test_tmpdir(), false);
    mte e;
    mte_init(&e, &d, NULL);
    mte_up(&e);
    mxd_do(&d, "/_double/fault",
           "{\"label\":\"sync\",\"status\":429,\"retry_after_ms\":8000,\"count\":1}");
    ASSERT_OK(mte_wait_stat(&e, &e.st.sync_errors, 1, MX_WAIT_MS));
    ASSERT_OK(rt_wait_quiescent(e.rt, MX_WAIT_MS));
    ASSERT_EQ(atomic_load(&e.st.retry_wait_ms), 8000);
    ASSERT_TRUE(mte_logged("rate limited (M_LIMIT_EXCEEDED) — retrying in 8s"));
    int n = syncs(&d);
    mte_advance(&e, 7990);
    ASSERT_OK(rt_wait_quiescent(e.rt, MX_WAIT_MS));
    ASSERT_EQ(syncs(&d), n);
    mte_advance(&e, 10);
    await_items(&d, "requests?label=sync", n + 1, MX_WAIT_MS);
    mte_fini(&e, true);
    mxd_stop(&d);
}

TEST(rejected_token_stops_with_a_clear_error)
{
    mxd d = {0};
    mxd_start(&d, 0, test_tmpdir(), false);
    mte e;
    mte_init(&e, &d, NULL);
    mte_up(&e);
    mxd_do(&d, "/_double/tokens", "{\"valid\":false}");
    ASSERT_OK(mte_wait_state(&e, MATRIX_ST_FAILED, MX_WAIT_MS));
    ASSERT_TRUE(mte_logged("the access token was rejected"));
    ASSERT_TRUE(mte_logged("check MATRIX_ACCESS_TOKEN"));
    ASSERT_OK(rt_wait_quiescent(e.rt, MX_WAIT_MS));
    int n = syncs(&d);
    mte_advance(&e, 60000);
    ASSERT_OK(rt_wait_quiescent(e.rt, MX_WAIT_MS));
    ASSERT_EQ(syncs(&d), n); /* given up: no retries */
    mte_fini(&e, true);
    mxd_stop(&d);
}

TEST(bad_token_or_password_at_start)
{
    mxd d = {0};
    mxd_start(&d, 0, test_tmpdir(), false);
    mte e;
    mte_init(&e, &d, NULL);
    rt_free(e.o.access_token);
    e.o.access_token = rt_xstrdup("wrong-token");
    char err[512];
    ASSERT_OK(mte_start(&e, err, sizeof(err)));
    ASSERT_OK(mte_wait_state(&e, MATRIX_ST_FAILED, MX_WAIT_MS));
    ASSERT_TRUE(mte_logged("Matrix: whoami failed — check MATRIX_ACCESS_TOKEN and "
                           "MATRIX_HOMESERVER: M_UNKNOWN_TOKEN"));
    ASSERT_EQ(mgw_ups(e.gw), 0);
    mte_fini(&e, true);
    /* password login: a wrong password */
    mte_init(&e, &d, NULL);
    rt_free(e.o.access_token);
    e.o.access_token = NULL;
    e.o.user_id = rt_xstrdup(MX_BOT);
    e.o.password = rt_xstrdup("nope");
    ASSERT_OK(mte_start(&e, err, sizeof(err)));
    ASSERT_OK(mte_wait_state(&e, MATRIX_ST_FAILED, MX_WAIT_MS));
    ASSERT_TRUE(mte_logged("Matrix: Failed to authenticate as @bot:localhost"));
    mte_fini(&e, true);
    /* the right password logs in (with MATRIX_DEVICE_ID) */
    mte_init(&e, &d, NULL);
    rt_free(e.o.access_token);
    e.o.access_token = NULL;
    e.o.user_id = rt_xstrdup(MX_BOT);
    e.o.password = rt_xstrdup("bot-pass");
    e.o.device_id = rt_xstrdup("HERMESDEV");
    mte_up(&e);
    ASSERT_TRUE(mte_logged("(device HERMESDEV)"));
    mte_fini(&e, true);
    /* MATRIX_ENCRYPTION starts the E2EE layer (the double speaks the keys API) */
    mte_init(&e, &d, NULL);
    e.o.encryption = true;
    mte_up(&e);
    ASSERT_TRUE(mte_logged("Matrix: E2EE enabled (store: "));
    mte_fini(&e, true);
    /* a homeserver nobody listens on: retried, not fatal */
    mte_init(&e, &d, NULL);
    rt_free(e.o.homeserver);
    e.o.homeserver = rt_xstrdup("http://127.0.0.1:1");
    ASSERT_OK(mte_start(&e, err, sizeof(err)));
    ASSERT_OK(mte_wait_stat(&e, &e.st.login_errors, 1, MX_WAIT_MS));
    ASSERT_TRUE(mte_logged("whoami failed"));
    ASSERT_EQ(atomic_load(&e.st.state), MATRIX_ST_STARTING);
    mte_fini(&e, true);
    mxd_stop(&d);
}

TEST(since_token_survives_a_restart_of_the_bot)
{
    mxd d = {0};
    mxd_start(&d, 0, test_tmpdir(), false);
    mxd_room(&d, DM, ALICE, true, false);
    mte e;
    mte_init(&e, &d, NULL);
    char home[128];
    snprintf(home, sizeof(home), "%s", e.home);
    mte_up(&e);
    rt_free(mxd_say(&d, DM, ALICE, "one", NULL));
    cJSON_Delete(wait_reply(&d, DM, "Echo: one"));
    ASSERT_OK(mte_wait_stat(&e, &e.st.token_writes, 1, MX_WAIT_MS));
    mte_fini(&e, false);
    /* the gateway is down: two messages */
    rt_free(mxd_say(&d, DM, ALICE, "two", NULL));
    rt_free(mxd_say(&d, DM, ALICE, "three", NULL));
    mte_init(&e, &d, home);
    mte_up(&e);
    ASSERT_OK(mgw_wait(e.gw, 2, MX_WAIT_MS));
    cJSON_Delete(wait_reply(&d, DM, "Echo: three"));
    ASSERT_TRUE(mte_logged("resuming from the saved sync position"));
    rt_free(mxd_say(&d, DM, ALICE, "four", NULL));
    cJSON_Delete(wait_reply(&d, DM, "Echo: four"));
    ASSERT_EQ(mgw_count(e.gw), 3);
    ASSERT_STR_EQ(mgw_get(e.gw, 0)->text, "two");
    ASSERT_STR_EQ(mgw_get(e.gw, 1)->text, "three");
    ASSERT_STR_EQ(mgw_get(e.gw, 2)->text, "four");
    /* answered exactly once each */
    ASSERT_EQ(replies(&d, DM, "Echo: one"), 1);
    ASSERT_EQ(replies(&d, DM, "Echo: two"), 1);
    ASSERT_EQ(replies(&d, DM, "Echo: three"), 1);
    mte_fini(&e, true);
    mxd_stop(&d);
}

TEST(homeserver_restart_under_the_bot)
{
    mxd d = {0};
    mxd_start(&d, 0, test_tmpdir(), false);
    mxd_room(&d, DM, ALICE, true, false);
    mte e;
    mte_init(&e, &d, NULL);
    mte_up(&e);
    rt_free(mxd_say(&d, DM, ALICE, "before", NULL));
    cJSON_Delete(wait_reply(&d, DM, "Echo: before"));
    int port = d.port;
    mxd_stop(&d); /* the homeserver goes away (state saved) */
    ASSERT_OK(mte_wait_stat(&e, &e.st.sync_errors, 1, MX_WAIT_MS));
    ASSERT_OK(rt_wait_quiescent(e.rt, MX_WAIT_MS));
    uint64_t errs = atomic_load(&e.st.sync_errors);
    mte_advance(&e, 4990);
    ASSERT_OK(rt_wait_quiescent(e.rt, MX_WAIT_MS));
    ASSERT_EQ(atomic_load(&e.st.sync_errors), errs); /* no storm while it is down */
    mxd_start(&d, port, NULL, false);                /* the same state file */
    rt_free(mxd_say(&d, DM, ALICE, "after", NULL));
    uint64_t ok = atomic_load(&e.st.syncs);
    for (int i = 0; i < 5 && atomic_load(&e.st.syncs) == ok; i++) {
        mte_advance(&e, 5000);
        mte_wait_stat(&e, &e.st.syncs, ok + 1, 2000);
    }
    cJSON_Delete(wait_reply(&d, DM, "Echo: after"));
    ASSERT_EQ(replies(&d, DM, "Echo: before"), 1);
    ASSERT_EQ(replies(&d, DM, "Echo: after"), 1);
    mte_fini(&e, true);
    mxd_stop(&d);
}

TEST(slow_room_does_not_delay_others)
{
    mxd d = {0};
    mxd_start(&d, 0, test_tmpdir(), false);
    mxd_room(&d, "!a:localhost", ALICE, true, false);
    mxd_room(&d, "!b:localhost", BOB, true, false);
    mte e;
    mte_init(&e, &d, NULL);
    e.o.reactions = false;
    mte_up(&e);
    /* every send into room A takes 3 s */
    mxd_do(&d, "/_double/fault",
           "{\"label\":\"send\",\"room\":\"!a:localhost\",\"delay_ms\":3000,\"count\":-1}");
    rt_free(mxd_say(&d, "!a:localhost", ALICE, "slow one", NULL));
    ASSERT_OK(mgw_wait(e.gw, 1, MX_WAIT_MS));
    rt_free(mxd_say(&d, "!b:localhost", BOB, "quick one", NULL));
    cJSON_Delete(wait_reply(&d, "!b:localhost", "Echo: quick one"));
    ASSERT_EQ(replies(&d, "!a:localhost", "Echo: slow one"), 0); /* A is still sending */
    cJSON_Delete(wait_reply(&d, "!a:localhost", "Echo: slow one"));
    mte_fini(&e, true);
    mxd_stop(&d);
}

TEST(media_in_authenticated_and_legacy)
{
    for (int legacy = 0; legacy < 2; legacy++) {
        mxd d = {0};
        mxd_start(&d, 0, NULL, legacy);
        mxd_room(&d, DM, ALICE, true, false);
        mte e;
        mte_init(&e, &d, NULL);
        mte_up(&e);
        static const char png[] = "\x89PNG\r\n\x1a\n0000IHDR";
        int st = 0;
        size_t blen = sizeof(png) - 1;
        (void)blen;
        cJSON *up = mxd_call(&d, "POST", "/_double/media", "\x89PNG\r\n\x1a\nxxxxIHDR", &st);
        ASSERT_EQ(st, 200);
        char content[512];
        snprintf(content, sizeof(content),
                 "{\"msgtype\":\"m.image\",\"body\":\"cat.png\",\"url\":\"%s\",\"info\":{"
                 "\"mimetype\":\"image/png\",\"size\":16}}",
                 jstr(up, "content_uri"));
        cJSON_Delete(up);
        char *id = mxd_say(&d, DM, ALICE, NULL, content);
        ASSERT_OK(mgw_wait(e.gw, 1, MX_WAIT_MS));
        const mgw_ev *ev = mgw_get(e.gw, 0);
        ASSERT_EQ(ev->kind, GW_KIND_PHOTO);
        ASSERT_STR_EQ(ev->message_id, id);
        ASSERT_EQ(ev->nmedia, 1);
        struct stat sb;
        ASSERT_OK(stat(ev->media0, &sb));
        cJSON *dl = mxd_wait(&d, "requests?label=download", 1, MX_WAIT_MS);
        ASSERT_NOT_NULL(dl);
        const char *path = jstr(cJSON_GetArrayItem(dl, 0), "path");
        ASSERT_STR_CONTAINS(path, legacy ? "/_matrix/media/v3/download/"
                                         : "/_matrix/client/v1/media/download/");
        cJSON_Delete(dl);
        rt_free(id);
        mte_fini(&e, true);
        mxd_stop(&d);
    }
}

TEST(outbound_file_upload_and_voice)
{
    mxd d = {0};
    mxd_start(&d, 0, NULL, false);
    mxd_room(&d, DM, ALICE, true, false);
    mte e;
    mte_init(&e, &d, NULL);
    mte_up(&e);
    char path[256];
    snprintf(path, sizeof(path), "%s/reply.ogg", e.home);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs("OggS fake voice", f);
    fclose(f);
    gw_target to = {.chat_id = DM};
    rt_send(e.cx, e.ref, matrix_file_new(&to, path, NULL, true));
    cJSON *s = mxd_wait(&d, "sent?type=m.room.message", 1, MX_WAIT_MS);
    ASSERT_NOT_NULL(s);
    const cJSON *c = cJSON_GetObjectItem(cJSON_GetArrayItem(s, 0), "content");
    ASSERT_STR_EQ(jstr(c, "msgtype"), "m.audio");
    ASSERT_NOT_NULL(cJSON_GetObjectItem(c, "org.matrix.msc3245.voice"));
    ASSERT_STR_CONTAINS(jstr(c, "url"), "mxc://localhost/");
    cJSON_Delete(s);
    /* a missing file becomes the original's text */
    rt_send(e.cx, e.ref, matrix_file_new(&to, "/nonexistent/x.png", NULL, false));
    char want[300];
    snprintf(want, sizeof(want), "(file not found: %s)", "/nonexistent/x.png");
    cJSON *r = wait_reply(&d, DM, want);
    cJSON_Delete(r);
    /* The agent's MEDIA: lines become files after the text (audio as voice messages). */
    char *text = rt_xasprintf("Here it is.\nMEDIA:%s\n", path);
    rt_send(e.cx, e.ref, gw_out_text_new(GW_OUT_TEXT, &to, text, GW_TEXT_REPLY));
    rt_free(text);
    cJSON *both = mxd_wait(&d, "sent?type=m.room.message", 4, MX_WAIT_MS);
    ASSERT_NOT_NULL(both);
    int n = cJSON_GetArraySize(both);
    const cJSON *t2 = cJSON_GetObjectItem(cJSON_GetArrayItem(both, n - 2), "content");
    const cJSON *v2 = cJSON_GetObjectItem(cJSON_GetArrayItem(both, n - 1), "content");
    ASSERT_STR_EQ(jstr(t2, "body"), "Here it is.");
    ASSERT_STR_EQ(jstr(v2, "msgtype"), "m.audio");
    ASSERT_NOT_NULL(cJSON_GetObjectItem(v2, "org.matrix.msc3245.voice"));
    cJSON_Delete(both);
    mte_fini(&e, true);
    mxd_stop(&d);
}

/* An outbox delivery resent after the adapter restarted (its first send may have been made)
 * keeps its transaction id: the homeserver answers with the event already made. */
static int acks_ok(mte *e)
{
    int ok = 0, failed = 0;
    mgw_acks(e->gw, &ok, &failed);
    return ok;
}

TEST(a_delivery_keeps_its_transaction_id_across_a_restart)
{
    mxd d = {0};
    mxd_start(&d, 0, NULL, false);
    mxd_room(&d, DM, ALICE, true, false);
    mte e;
    mte_init(&e, &d, NULL);
    e.o.reactions = false;
    snprintf(e.o.delivery_epoch, sizeof(e.o.delivery_epoch), "0123456789abcdef");
    mte_up(&e);
    gw_target to = {.chat_id = DM};
    rt_msg *m = gw_out_text_new(GW_OUT_TEXT, &to, "only once", GW_TEXT_REPLY);
    ((gw_out_text *)m)->delivery = 42;
    rt_send(e.cx, e.ref, m);
    cJSON *s = mxd_wait(&d, "sent?type=m.room.message", 1, MX_WAIT_MS);
    ASSERT_EQ(1, cJSON_GetArraySize(s));
    char *txn = rt_xstrdup(jstr(cJSON_GetArrayItem(s, 0), "txn"));
    cJSON_Delete(s);
    for (int i = 0; i < 1000 && acks_ok(&e) < 1; i++)
        nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
    ASSERT_EQ(1, acks_ok(&e));
    /* the adapter stops and starts again (as its supervisor restarts it) */
    rt_stop(e.cx, e.ref, RT_EXIT_STOPPED);
    ASSERT_OK(mte_wait_state(&e, MATRIX_ST_STOPPED, MX_WAIT_MS));
    ASSERT_OK(rt_wait_quiescent(e.rt, MX_WAIT_MS));
    mte_up(&e);
    m = gw_out_text_new(GW_OUT_TEXT, &to, "only once", GW_TEXT_REPLY);
    ((gw_out_text *)m)->delivery = 42;
    rt_send(e.cx, e.ref, m);
    for (int i = 0; i < 1000 && acks_ok(&e) < 2; i++)
        nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
    ASSERT_EQ(2, acks_ok(&e));
    s = mxd_wait(&d, "sent?type=m.room.message", 0, 0);
    ASSERT_EQ(1, cJSON_GetArraySize(s)); /* posted once */
    cJSON_Delete(s);
    ASSERT_STR_EQ("hd0123456789abcdef.d42", txn);
    rt_free(txn);
    mte_fini(&e, true);
    mxd_stop(&d);
}

TEST(refused_reply_is_acknowledged_as_failed)
{
    mxd d = {0};
    mxd_start(&d, 0, NULL, false);
    mxd_room(&d, DM, ALICE, true, false);
    mte e;
    mte_init(&e, &d, NULL);
    e.o.reactions = false;
    mte_up(&e);
    mxd_do(&d, "/_double/fault",
           "{\"label\":\"send\",\"status\":403,\"errcode\":\"M_FORBIDDEN\",\"error\":"
           "\"not allowed\",\"count\":1}");
    rt_free(mxd_say(&d, DM, ALICE, "refused", NULL));
    int ok = 0, failed = 0;
    for (int i = 0; i < 1000 && !failed; i++) {
        mgw_acks(e.gw, &ok, &failed);
        const struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ASSERT_EQ(failed, 1);
    ASSERT_EQ(ok, 0);
    ASSERT_TRUE(mte_logged("is the bot in that room? Invite it."));
    ASSERT_EQ(mxd_count(&d, "requests?label=send"), 1); /* a 403 is not retried */
    mte_fini(&e, true);
    mxd_stop(&d);
}

/* Wait (bounded) until the adapter sent a read receipt for event id. */
static bool marked_read(mxd *d, const char *id)
{
    bool read = false;
    for (int i = 0; i < 500 && !read; i++) {
        cJSON *rc = mxd_wait(d, "receipts", 1, MX_WAIT_MS);
        const cJSON *it;
        cJSON_ArrayForEach(it, rc) read =
            read || (jstr(it, "read") && !strcmp(jstr(it, "read"), id));
        cJSON_Delete(rc);
    }
    return read;
}

TEST(text_batching_joins_quick_pieces)
{
    mxd d = {0};
    mxd_start(&d, 0, NULL, false);
    mxd_room(&d, DM, ALICE, true, false);
    mte e;
    mte_init(&e, &d, NULL);
    e.o.batch_delay_ms = 600;
    e.o.batch_split_ms = 2000;
    mte_up(&e);
    rt_free(mxd_say(&d, DM, ALICE, "part one", NULL));
    char *id2 = mxd_say(&d, DM, ALICE, "part two", NULL);
    ASSERT_TRUE(marked_read(&d, id2)); /* the adapter has both once it marked the second */
    rt_free(id2);
    ASSERT_EQ(mgw_count(e.gw), 0); /* the quiet period has not passed */
    mte_advance(&e, 600);
    ASSERT_OK(mgw_wait(e.gw, 1, MX_WAIT_MS));
    ASSERT_STR_EQ(mgw_get(e.gw, 0)->text, "part one\npart two");
    mxd_post(&d, DM, ALICE, "/help", NULL); /* commands are not batched */
    ASSERT_OK(mgw_wait(e.gw, 2, MX_WAIT_MS));
    ASSERT_STR_EQ(mgw_get(e.gw, 1)->text, "/help");
    mte_fini(&e, true);
    mxd_stop(&d);
}

/* A sync after a restart delivers minutes of messages at once: pieces whose send times are
 * further apart than the quiet period stay separate messages (joined, an already answered one
 * would make the new one look answered). */
static char *say_at(mxd *d, const char *text, int64_t ts)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"room_id\":\"%s\",\"sender\":\"%s\",\"body\":\"%s\",\"ts\":%lld}", DM, ALICE, text,
             (long long)ts);
    int st = 0;
    cJSON *j = mxd_call(d, "POST", "/_double/message", body, &st);
    ASSERT_EQ(200, st);
    char *id = rt_xstrdup(jstr(j, "event_id"));
    cJSON_Delete(j);
    return id;
}

TEST(text_batching_keeps_pieces_sent_minutes_apart_separate)
{
    mxd d = {0};
    mxd_start(&d, 0, NULL, false);
    mxd_room(&d, DM, ALICE, true, false);
    mte e;
    mte_init(&e, &d, NULL);
    e.o.batch_delay_ms = 600;
    e.o.batch_split_ms = 2000;
    mte_up(&e);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    rt_free(say_at(&d, "said before the outage", ms - 5 * 60 * 1000));
    rt_free(say_at(&d, "said after it", ms - 1000));
    char *id3 = say_at(&d, "and a quick follow-up", ms - 900);
    ASSERT_TRUE(marked_read(&d, id3)); /* the adapter has all three once it marked the last */
    rt_free(id3);
    mte_advance(&e, 600);
    ASSERT_OK(mgw_wait(e.gw, 2, MX_WAIT_MS));
    ASSERT_STR_EQ(mgw_get(e.gw, 0)->text, "said before the outage");
    ASSERT_STR_EQ(mgw_get(e.gw, 1)->text, "said after it\nand a quick follow-up");
    mte_fini(&e, true);
    mxd_stop(&d);
}

/* Position of the first event of the bot in room matching type (and reaction key). */
static int position(mxd *d, const char *room, const char *type, const char *key)
{
    char q[256];
    snprintf(q, sizeof(q), "sent?room=%s", room);
    cJSON *a = mxd_wait(d, q, 0, 0);
    int i = 0, at = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        const cJSON *rel = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "content"), "m.relates_to");
        if (at < 0 && !strcmp(jstr(e, "type"), type) && (!key || !strcmp(jstr(rel, "key"), key)))
            at = i;
        i++;
    }
    cJSON_Delete(a);
    return at;
}

TEST(reactions_follow_a_late_answer)
{
    mxd d = {0};
    mxd_start(&d, 0, NULL, false);
    mxd_room(&d, DM, ALICE, true, false);
    mte e;
    mte_init(&e, &d, NULL);
    mte_up(&e);
    mxd_post(&d, DM, ALICE, "late answer please", NULL);
    cJSON_Delete(wait_reply(&d, DM, "Echo: late answer please"));
    await_items(&d, "sent?type=m.reaction", 2, MX_WAIT_MS);
    int reply = position(&d, DM, "m.room.message", NULL);
    int done = position(&d, DM, "m.reaction", "\xe2\x9c\x85");
    ASSERT_GE(reply, 0);
    ASSERT_GT(done, reply); /* ✅ after the answer, although the turn ended first */
    /* no answer at all: the ✅ comes after MX_REACT_HOLD_MS */
    mxd_post(&d, DM, ALICE, "mute", NULL);
    await_items(&d, "sent?type=m.reaction", 3, MX_WAIT_MS); /* 👀 */
    ASSERT_EQ(mxd_count(&d, "sent?type=m.reaction"), 3);    /* no ✅ yet */
    cJSON *four = NULL; /* (the turn end may still be on its way: move the clock until) */
    for (int i = 0; i < 20 && !four; i++) {
        mte_advance(&e, 10000);
        four = mxd_wait(&d, "sent?type=m.reaction", 4, 500);
    }
    ASSERT_NOT_NULL(four);
    cJSON_Delete(four);
    mte_fini(&e, true);
    mxd_stop(&d);
}

TEST(tool_progress_is_one_message_edited_in_place)
{
    mxd d = {0};
    mxd_start(&d, 0, NULL, false);
    mxd_room(&d, DM, ALICE, true, false);
    mte e;
    mte_init(&e, &d, NULL);
    e.o.reactions = false;
    mte_up(&e);
    mxd_post(&d, DM, ALICE, "use tools", NULL);
    cJSON_Delete(wait_reply(&d, DM, "Echo: use tools"));
    cJSON *all = mxd_wait(&d, "sent?type=m.room.message", 2, MX_WAIT_MS);
    ASSERT_NOT_NULL(all);
    int originals = 0;
    const char *last = NULL;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, all)
    {
        const cJSON *c = cJSON_GetObjectItem(ev, "content");
        const char *body = jstr(c, "body");
        const cJSON *rel = cJSON_GetObjectItem(c, "m.relates_to");
        if (!strcmp(body, "Echo: use tools"))
            continue;
        if (rel && jstr(rel, "rel_type") && !strcmp(jstr(rel, "rel_type"), "m.replace")) {
            last = jstr(cJSON_GetObjectItem(c, "m.new_content"), "body");
        } else {
            originals++;
            if (!last)
                last = body;
        }
    }
    ASSERT_EQ(originals, 1); /* one progress message, edited */
    ASSERT_STR_EQ(last, "\xf0\x9f\x92\xbb ls\n\xf0\x9f\x93\x96 read file");
    cJSON_Delete(all);
    mte_fini(&e, true);
    mxd_stop(&d);
}
