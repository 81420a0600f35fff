/*
 * The Mattermost adapter (gateway.md §9) against the Mattermost server double: DMs, mention
 * gating, thread roots, per-user sources, attachments both ways, typing, the home channel,
 * posts over the server's limit, 429 with X-RateLimit-* / Retry-After, refused tokens, and the
 * reconnect: WebSocket closed, half-open (black-holed) and a server restart, with exponential
 * backoff 2 s → 60 s plus jitter and posts made meanwhile answered exactly once.
 *
 * The runtime's clock is fake: reconnect delays, heartbeats, rate-limit waits and typing
 * refreshes move only with mte_advance, so the test decides when they happen.
 */
#include "hm_env.h"
#include "mattermost_env.h"

#include "rt_alloc.h"
#include "rt_util.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ============================================================ helpers */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The bot's posts in channel (key), waiting until there are at least n. Asserts. */
static cJSON *bot_posts(mte *e, const char *channel, int n)
{
    char q[128];
    snprintf(q, sizeof(q), "&user=bot&channel=%s", channel);
    cJSON *v = mmd_wait(&e->d, "posts", n, q, MT_WAIT_MS);
    if (!v)
        fprintf(stderr, "timed out waiting for %d bot post(s) in %s\n", n, channel);
    ASSERT_NOT_NULL(v);
    return v;
}

static int bot_count(mte *e, const char *channel)
{
    char q[128];
    snprintf(q, sizeof(q), "&user=bot&channel=%s", channel);
    return mmd_count(&e->d, "posts", q);
}

/* The i-th GW_MSG_EVENT, waiting for it. */
static const mgw_rec *event(mte *e, int i)
{
    ASSERT_OK(mgw_wait(e->gw, MGW_EVENT, i + 1, MT_WAIT_MS));
    const mgw_rec *r = mgw_get(e->gw, MGW_EVENT, i);
    ASSERT_NOT_NULL(r);
    return r;
}

/* Wait until at least n log lines contain needle (a bounded poll with a deadline). */
static int log_wait_n(const char *needle, int n)
{
    for (int i = 0; i < MT_WAIT_MS / 5; i++) {
        if (mte_log_count(needle) >= n)
            return 0;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return mte_log_count(needle) >= n ? 0 : -ETIMEDOUT;
}

/* The delay of the last "reconnecting in X.Ys" line, in ms. */
static int64_t last_delay_ms(void)
{
    char *l = mte_log_find("reconnecting in ");
    ASSERT_NOT_NULL(l);
    double s = -1;
    ASSERT_EQ(sscanf(strstr(l, "reconnecting in ") + 16, "%lfs", &s), 1);
    rt_free(l);
    return (int64_t)(s * 1000.0 + 0.5);
}

/* ============================================================ DMs and channels */

TEST(dm_is_answered_with_post_id_as_message_id)
{
    mte e;
    mte_init(&e);
    mte_up(&e);
    const mgw_rec *up = mgw_get(e.gw, MGW_UP, 0);
    ASSERT_EQ(up->caps.max_message, (size_t)16383);
    ASSERT_TRUE(up->caps.markdown);

    char *pid = mmd_post_id(&e.d, "dm_alice", "alice", "  hello there  ", NULL);
    const mgw_rec *ev = event(&e, 0);
    ASSERT_STR_EQ(ev->chat_type, "dm");
    ASSERT_STR_EQ(ev->chat_id, mmd_id(&e.d, "dm_alice"));
    ASSERT_STR_EQ(ev->user_id, mmd_id(&e.d, "alice"));
    ASSERT_STR_EQ(ev->user_name, "alice");
    ASSERT_STR_EQ(ev->text, "hello there");
    ASSERT_STR_EQ(ev->message_id, pid);
    ASSERT_STR_EQ(ev->reply_to, pid);
    ASSERT_NULL(ev->thread_id);

    cJSON *posts = bot_posts(&e, "dm_alice", 1);
    const cJSON *p = cJSON_GetArrayItem(posts, 0);
    ASSERT_STR_EQ(jstr(p, "message"), "echo: hello there");
    ASSERT_STR_EQ(jstr(p, "root_id"), ""); /* reply mode off: flat */
    cJSON_Delete(posts);

    /* the typing indicator went to the DM while the turn ran */
    cJSON *ty = mmd_wait(&e.d, "typing", 1, NULL, MT_WAIT_MS);
    ASSERT_NOT_NULL(ty);
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(ty, 0), "channel_id"), mmd_id(&e.d, "dm_alice"));
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(ty, 0), "user_id"), mmd_id(&e.d, "bot"));
    cJSON_Delete(ty);

    /* the bot's own post (broadcast back over the WebSocket) is not an event */
    mte_quiet(&e);
    ASSERT_EQ(mgw_count(e.gw, MGW_EVENT), 1);
    rt_free(pid);
    mte_fini(&e);
}

TEST(channels_need_a_mention)
{
    mte e;
    mte_init(&e);
    mte_up(&e);
    cJSON_Delete(mmd_post(&e.d, "town", "alice", "hello everyone", NULL));
    cJSON_Delete(mmd_post(&e.d, "town", "bob", "mail me at bob@hermes.io", NULL));
    cJSON_Delete(mmd_post(&e.d, "town", "bob", "@hermesbot is another bot", NULL));
    char *pid = mmd_post_id(&e.d, "town", "alice", "@hermes what is 2+2?", NULL);
    const mgw_rec *ev = event(&e, 0);
    ASSERT_STR_EQ(ev->message_id, pid); /* the three before were not for the bot */
    ASSERT_STR_EQ(ev->chat_type, "channel");
    ASSERT_STR_EQ(ev->chat_name, "Town Square");
    ASSERT_STR_EQ(ev->text, "what is 2+2?");
    cJSON *posts = bot_posts(&e, "town", 1);
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(posts, 0), "root_id"), "");
    cJSON_Delete(posts);

    /* private channel → group, group message → group; a mention in any case */
    cJSON_Delete(mmd_post(&e.d, "priv", "alice", "no mention here", NULL));
    cJSON_Delete(mmd_post(&e.d, "priv", "alice", "@HERMES: status?", NULL));
    const mgw_rec *ev2 = event(&e, 1);
    ASSERT_STR_EQ(ev2->chat_type, "group");
    ASSERT_STR_EQ(ev2->text, ": status?");
    cJSON_Delete(mmd_post(&e.d, "group", "bob", "ping @hermes", NULL));
    const mgw_rec *ev3 = event(&e, 2);
    ASSERT_STR_EQ(ev3->chat_type, "group");
    ASSERT_STR_EQ(ev3->text, "ping");
    mte_quiet(&e);
    ASSERT_EQ(mgw_count(e.gw, MGW_EVENT), 3);
    rt_free(pid);
    mte_fini(&e);
}

TEST(shared_channel_sources_are_per_user)
{
    mte e;
    mte_init(&e);
    mte_up(&e);
    cJSON_Delete(mmd_post(&e.d, "town", "alice", "@hermes one", NULL));
    (void)event(&e, 0);
    cJSON_Delete(mmd_post(&e.d, "town", "bob", "@hermes two", NULL));
    const mgw_rec *a = event(&e, 0), *b = event(&e, 1);
    ASSERT_STR_EQ(a->chat_id, b->chat_id);
    ASSERT_TRUE(strcmp(a->user_id, b->user_id) != 0);
    gw_source sa = {.platform = "mattermost",
                    .chat_id = a->chat_id,
                    .chat_type = a->chat_type,
                    .user_id = a->user_id,
                    .thread_id = a->thread_id};
    gw_source sb = sa;
    sb.user_id = b->user_id;
    char *ka = gw_session_key(&sa, true, false), *kb = gw_session_key(&sb, true, false);
    ASSERT_TRUE(strcmp(ka, kb) != 0); /* group_sessions_per_user: one session each */
    ASSERT_STR_CONTAINS(ka, a->user_id);
    rt_free(ka);
    rt_free(kb);
    mte_fini(&e);
}

/* ============================================================ threads */

TEST(thread_mode_replies_under_the_root_post)
{
    mte e;
    mte_init(&e);
    e.o.reply_thread = true;
    mte_up(&e);
    char *root = mmd_post_id(&e.d, "town", "alice", "@hermes start a thread", NULL);
    cJSON *posts = bot_posts(&e, "town", 1);
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(posts, 0), "root_id"), root);
    cJSON_Delete(posts);
    ASSERT_NULL(event(&e, 0)->thread_id);

    /* a reply inside the thread: the answer's root_id is the thread's root, not the reply */
    char *reply = mmd_post_id(&e.d, "town", "alice", "@hermes and a follow-up", root);
    const mgw_rec *ev = event(&e, 1);
    ASSERT_STR_EQ(ev->message_id, reply);
    ASSERT_STR_EQ(ev->thread_id, root); /* the thread is its own session */
    posts = bot_posts(&e, "town", 2);
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(posts, 1), "root_id"), root);
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(posts, 1), "message"), "echo: and a follow-up");
    cJSON_Delete(posts);
    ASSERT_FALSE(mte_log_has("thread delivery failed"));

    /* a DM in thread mode is threaded too */
    char *dm = mmd_post_id(&e.d, "dm_bob", "bob", "hi", NULL);
    posts = bot_posts(&e, "dm_bob", 1);
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(posts, 0), "root_id"), dm);
    cJSON_Delete(posts);
    rt_free(root);
    rt_free(reply);
    rt_free(dm);
    mte_fini(&e);
}

TEST(off_mode_answers_a_threaded_message_in_its_thread)
{
    mte e;
    mte_init(&e);
    mte_up(&e);
    char *root = mmd_post_id(&e.d, "town", "bob", "a topic", NULL);
    char *reply = mmd_post_id(&e.d, "town", "alice", "@hermes thoughts?", root);
    cJSON *posts = bot_posts(&e, "town", 1);
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(posts, 0), "root_id"), root);
    cJSON_Delete(posts);
    ASSERT_EQ(mgw_count(e.gw, MGW_EVENT), 1);
    rt_free(root);
    rt_free(reply);
    mte_fini(&e);
}

/* ============================================================ the reconnect */

TEST(posts_during_a_server_restart_are_answered_exactly_once)
{
    mte e;
    mte_init(&e);
    mte_up(&e);
    char *before = mmd_post_id(&e.d, "dm_alice", "alice", "before", NULL);
    cJSON_Delete(bot_posts(&e, "dm_alice", 1));

    mmd_do(&e.d, "/_test/down", "{}");
    ASSERT_OK(mte_log_wait("reconnecting in", MT_WAIT_MS));
    /* written while the bot is away: a DM, a mention, a reply in a thread, one not for it */
    char *p1 = mmd_post_id(&e.d, "dm_alice", "alice", "while away 1", NULL);
    char *p2 = mmd_post_id(&e.d, "town", "bob", "@hermes while away 2", NULL);
    char *p3 = mmd_post_id(&e.d, "dm_alice", "alice", "while away 3", p1);
    cJSON_Delete(mmd_post(&e.d, "town", "carol", "chatter", NULL));
    mmd_do(&e.d, "/_test/up", "{}");
    mte_advance(&e, 2500); /* the first delay: 2 s + at most 20 % */

    cJSON *dm = bot_posts(&e, "dm_alice", 3);
    cJSON *town = bot_posts(&e, "town", 1);
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(dm, 1), "message"), "echo: while away 1");
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(dm, 2), "message"), "echo: while away 3");
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(dm, 2), "root_id"), p1);
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(town, 0), "message"), "echo: while away 2");
    cJSON_Delete(dm);
    cJSON_Delete(town);
    ASSERT_EQ(mgw_count(e.gw, MGW_EVENT), 4);
    ASSERT_STR_EQ(event(&e, 1)->message_id, p1);
    ASSERT_STR_EQ(event(&e, 2)->message_id, p2);
    ASSERT_STR_EQ(event(&e, 3)->message_id, p3);
    ASSERT_EQ(mgw_count(e.gw, MGW_UP), 1); /* announced once: replies kept going meanwhile */

    /* a second drop with nothing new: nothing is answered again */
    mmd_do(&e.d, "/_test/ws/drop", "{\"mode\":\"close\"}");
    ASSERT_OK(log_wait_n("reconnecting in", 2));
    mte_advance(&e, 2500);
    cJSON *w = mmd_wait(&e.d, "ws", 3, NULL, MT_WAIT_MS);
    ASSERT_NOT_NULL(w);
    cJSON_Delete(w);
    mte_quiet(&e);
    cJSON *live = mmd_post(&e.d, "dm_alice", "alice", "after", NULL);
    cJSON_Delete(live);
    cJSON_Delete(bot_posts(&e, "dm_alice", 4));
    mte_quiet(&e);
    ASSERT_EQ(bot_count(&e, "dm_alice"), 4);
    ASSERT_EQ(bot_count(&e, "town"), 1);
    ASSERT_EQ(mgw_count(e.gw, MGW_EVENT), 5);
    rt_free(before);
    rt_free(p1);
    rt_free(p2);
    rt_free(p3);
    mte_fini(&e);
}

TEST(reconnect_backoff_grows_to_60s_with_jitter_and_resets)
{
    mte e;
    mte_init(&e);
    mte_up(&e);
    mmd_do(&e.d, "/_test/down", "{}");
    int64_t want[] = {2000, 4000, 8000, 16000, 32000, 60000, 60000};
    for (int i = 0; i < 7; i++) {
        ASSERT_OK(log_wait_n("reconnecting in", i + 1));
        int64_t d = last_delay_ms();
        ASSERT_GE(d, want[i] - 50);         /* "%.1f" rounding */
        ASSERT_LE(d, want[i] * 6 / 5 + 50); /* at most 20 % jitter */
        if (i == 6)
            break;
        /* just before the delay nothing happens; at the delay the next attempt fails */
        mte_advance(&e, d - 200);
        ASSERT_EQ(mte_log_count("reconnecting in"), i + 1);
        mte_advance(&e, 300);
    }
    /* the server is back: the next attempt connects, and the delay starts over */
    mmd_do(&e.d, "/_test/up", "{}");
    mte_advance(&e, 73000);
    ASSERT_OK(log_wait_n("WebSocket connected and authenticated", 2));
    mte_quiet(&e);
    mmd_do(&e.d, "/_test/ws/drop", "{\"mode\":\"reset\"}");
    ASSERT_OK(log_wait_n("reconnecting in", 8));
    int64_t d = last_delay_ms();
    ASSERT_GE(d, 1950);
    ASSERT_LE(d, 2450);
    ASSERT_EQ(mgw_count(e.gw, MGW_UP), 1);
    ASSERT_EQ(mgw_count(e.gw, MGW_DOWN), 0);
    mte_fini(&e);
}

TEST(half_open_websocket_is_detected_by_the_heartbeat)
{
    mte e;
    mte_init(&e);
    e.o.heartbeat_ms = 30000;
    mte_up(&e);
    mte_advance(&e, 30000); /* a ping, answered */
    ASSERT_OK(mte_log_wait("WebSocket connected", MT_WAIT_MS));
    mmd_do(&e.d, "/_test/ws/drop", "{\"mode\":\"silent\"}");
    char *pid = mmd_post_id(&e.d, "dm_carol", "carol", "are you there?", NULL);
    mte_quiet(&e);
    ASSERT_EQ(mgw_count(e.gw, MGW_EVENT), 0); /* the black hole swallowed the event */
    mte_advance(&e, 30000);                   /* a ping … */
    mte_advance(&e, 30000);                   /* … unanswered: the connection is dead */
    ASSERT_OK(mte_log_wait("no answer to the WebSocket ping", MT_WAIT_MS));
    mte_advance(&e, 2500);
    const mgw_rec *ev = event(&e, 0);
    ASSERT_STR_EQ(ev->message_id, pid);
    cJSON_Delete(bot_posts(&e, "dm_carol", 1));
    mte_quiet(&e);
    ASSERT_EQ(bot_count(&e, "dm_carol"), 1);
    ASSERT_EQ(mgw_count(e.gw, MGW_EVENT), 1);
    rt_free(pid);
    mte_fini(&e);
}

/* ============================================================ server limits */

TEST(rate_limited_posts_wait_for_the_reset)
{
    mte e;
    mte_init(&e);
    mte_up(&e);
    mmd_do(&e.d, "/_test/ratelimit",
           "{\"count\":1,\"reset_s\":5,\"path\":\"/api/v4/posts\",\"method\":\"POST\"}");
    cJSON_Delete(mmd_post(&e.d, "dm_alice", "alice", "first", NULL));
    cJSON_Delete(mmd_post(&e.d, "dm_alice", "alice", "second", NULL));
    ASSERT_OK(mgw_wait(e.gw, MGW_EVENT, 2, MT_WAIT_MS));
    cJSON *r = mmd_wait(&e.d, "requests", 1, "&path=/api/v4/posts&status=429", MT_WAIT_MS);
    ASSERT_NOT_NULL(r);
    cJSON_Delete(r);
    mte_quiet(&e);
    mte_advance(&e, 4000); /* Retry-After: 5 s — still waiting */
    ASSERT_EQ(bot_count(&e, "dm_alice"), 0);
    mte_advance(&e, 1500);
    cJSON *posts = bot_posts(&e, "dm_alice", 2);
    /* in order, each once */
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(posts, 0), "message"), "echo: first");
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(posts, 1), "message"), "echo: second");
    cJSON_Delete(posts);
    mte_quiet(&e);
    ASSERT_EQ(bot_count(&e, "dm_alice"), 2);
    ASSERT_EQ(mmd_count(&e.d, "requests", "&path=/api/v4/posts&status=429"), 1);
    mte_fini(&e);
}

TEST(long_replies_are_split_at_the_servers_limit)
{
    mte e;
    mte_init(&e);
    mmd_do(&e.d, "/_test/config", "{\"advertised\":500,\"enforced\":500}");
    mte_up(&e);
    ASSERT_EQ(mgw_get(e.gw, MGW_UP, 0)->caps.max_message, (size_t)500);
    char big[1300];
    for (size_t i = 0; i < sizeof(big) - 1; i++)
        big[i] = (i % 50 == 49) ? ' ' : (char)('a' + i % 26);
    big[sizeof(big) - 1] = '\0';
    mgw_reply_with(e.gw, big, GW_TEXT_REPLY, false);
    cJSON_Delete(mmd_post(&e.d, "dm_alice", "alice", "long please", NULL));
    cJSON *posts = bot_posts(&e, "dm_alice", 3);
    mte_quiet(&e);
    int n = bot_count(&e, "dm_alice");
    ASSERT_GE(n, 3);
    cJSON_Delete(posts);
    posts = bot_posts(&e, "dm_alice", n);
    for (int i = 0; i < n; i++)
        ASSERT_LE(strlen(jstr(cJSON_GetArrayItem(posts, i), "message")), (size_t)500);
    cJSON_Delete(posts);
    ASSERT_EQ(mmd_count(&e.d, "requests", "&path=/api/v4/posts&status=400"), 0);
    mte_fini(&e);
}

TEST(a_post_over_the_enforced_limit_is_split_not_lost)
{
    mte e;
    mte_init(&e);
    /* the server says 16383 but refuses more than 120 characters */
    mmd_do(&e.d, "/_test/config", "{\"enforced\":120}");
    mte_up(&e);
    char big[301];
    for (size_t i = 0; i < 300; i++)
        big[i] = (i % 20 == 19) ? ' ' : (char)('a' + i % 26);
    big[300] = '\0';
    mgw_reply_with(e.gw, big, GW_TEXT_REPLY, false);
    cJSON_Delete(mmd_post(&e.d, "dm_alice", "alice", "long please", NULL));
    ASSERT_OK(mte_log_wait("refused a post of", MT_WAIT_MS));
    cJSON *posts = bot_posts(&e, "dm_alice", 3);
    cJSON_Delete(posts);
    mte_quiet(&e);
    int n = bot_count(&e, "dm_alice");
    posts = bot_posts(&e, "dm_alice", n);
    size_t letters = 0;
    for (int i = 0; i < n; i++) {
        const char *m = jstr(cJSON_GetArrayItem(posts, i), "message");
        ASSERT_LE(strlen(m), (size_t)120);
        for (; *m; m++)
            letters += *m >= 'a' && *m <= 'z';
    }
    ASSERT_GE(letters, (size_t)285); /* every word of the reply arrived */
    cJSON_Delete(posts);
    /* the gateway learnt the real limit */
    int ups = mgw_count(e.gw, MGW_UP);
    ASSERT_GE(ups, 2);
    ASSERT_LE(mgw_get(e.gw, MGW_UP, ups - 1)->caps.max_message, (size_t)120);
    ASSERT_GE(mgw_get(e.gw, MGW_UP, ups - 1)->caps.max_message, (size_t)60);
    mte_fini(&e);
}

/* ============================================================ credentials */

TEST(a_bad_token_fails_to_authenticate)
{
    mte e;
    mte_init(&e);
    e.o.token = "wrong-token";
    char err[256];
    ASSERT_OK(mte_start(&e, err, sizeof(err)));
    ASSERT_OK(mte_log_wait("Failed to authenticate", MT_WAIT_MS));
    char *l = mte_log_find("Failed to authenticate");
    ASSERT_STR_CONTAINS(l, "check MATTERMOST_TOKEN and MATTERMOST_URL");
    ASSERT_STR_CONTAINS(l, "401");
    ASSERT_TRUE(strstr(l, "wrong-token") == NULL); /* never the secret */
    rt_free(l);
    for (int i = 0; i < 1000 && rt_is_alive(e.cx, e.ad); i++) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ASSERT_FALSE(rt_is_alive(e.cx, e.ad)); /* gave up: not retried */
    mte_advance(&e, 120000);
    ASSERT_EQ(mmd_count(&e.d, "requests", "&path=/api/v4/users/me"), 1);
    ASSERT_EQ(mgw_count(e.gw, MGW_UP), 0);
    e.ad = 0;
    mte_fini(&e);
}

TEST(a_403_is_explained)
{
    mte e;
    mte_init(&e);
    mmd_do(&e.d, "/_test/fail", "{\"count\":1,\"status\":403,\"path\":\"/api/v4/users/me\"}");
    char err[256];
    ASSERT_OK(mte_start(&e, err, sizeof(err)));
    ASSERT_OK(mte_log_wait("Failed to authenticate", MT_WAIT_MS));
    ASSERT_TRUE(mte_log_has("403 Forbidden"));
    e.ad = 0;
    mte_fini(&e);

    /* a channel the bot may not post in */
    mte_init(&e);
    mte_up(&e);
    gw_target to = {.chat_id = (char *)mmd_id(&e.d, "nobot")};
    rt_send(e.cx, e.ad, gw_out_text_new(GW_OUT_TEXT, &to, "hello?", GW_TEXT_REPLY));
    ASSERT_OK(mte_log_wait("403 Forbidden", MT_WAIT_MS));
    char *l = mte_log_find("403 Forbidden");
    ASSERT_STR_CONTAINS(l, "Add Members");
    rt_free(l);
    /* the queue goes on */
    cJSON_Delete(mmd_post(&e.d, "dm_alice", "alice", "still there?", NULL));
    cJSON_Delete(bot_posts(&e, "dm_alice", 1));
    mte_fini(&e);
}

TEST(websocket_upgrade_refused_with_401_stops_reconnecting)
{
    mte e;
    mte_init(&e);
    mmd_do(&e.d, "/_test/reject_ws", "{\"status\":401}");
    char err[256];
    ASSERT_OK(mte_start(&e, err, sizeof(err)));
    ASSERT_OK(mte_log_wait("stopping reconnect", MT_WAIT_MS));
    mte_advance(&e, 120000);
    ASSERT_EQ(mmd_count(&e.d, "requests", "&path=/api/v4/users/me"), 1);
    e.ad = 0;
    mte_fini(&e);
}

TEST(start_errors_are_sentences)
{
    mte e;
    mte_init(&e);
    char err[256] = "";
    e.o.url = "mm.example.com";
    ASSERT_EQ(mte_start(&e, err, sizeof(err)), -EINVAL);
    ASSERT_STR_CONTAINS(err, "MATTERMOST_URL");
    e.o.url = e.url;
    e.o.token = "";
    ASSERT_EQ(mte_start(&e, err, sizeof(err)), -EINVAL);
    e.ad = 0;
    mte_fini(&e);
}

/* ============================================================ files, home, typing */

TEST(attachments_are_downloaded_for_the_agent)
{
    mte e;
    mte_init(&e);
    mte_up(&e);
    /* "PNG" bytes, base64 */
    cJSON *f = mmd_call(&e.d, "POST", "/_test/file",
                        "{\"user\":\"alice\",\"channel\":\"dm_alice\",\"name\":\"cat.PNG\","
                        "\"mime\":\"image/png\",\"data_b64\":\"iVBORw0KGgpjYXQ=\"}",
                        NULL);
    ASSERT_NOT_NULL(f);
    char *body = rt_xasprintf("{\"channel\":\"dm_alice\",\"user\":\"alice\",\"message\":"
                              "\"what is this?\",\"file_ids\":[\"%s\"]}",
                              jstr(f, "id"));
    cJSON_Delete(f);
    mmd_do(&e.d, "/_test/post", body);
    rt_free(body);
    const mgw_rec *ev = event(&e, 0);
    ASSERT_EQ(ev->ekind, GW_KIND_PHOTO);
    ASSERT_EQ(ev->nmedia, (size_t)1);
    ASSERT_STR_CONTAINS(ev->media[0], e.home);
    ASSERT_STR_CONTAINS(ev->media[0], ".png");
    FILE *fp = fopen(ev->media[0], "rb");
    ASSERT_NOT_NULL(fp);
    char buf[32] = "";
    size_t n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    ASSERT_EQ(n, (size_t)11);
    ASSERT_EQ(memcmp(buf, "\x89PNG\r\n\x1a\ncat", 11), 0);
    ASSERT_STR_EQ(ev->text, "what is this?");
    mte_fini(&e);
}

TEST(media_tags_are_uploaded_as_files)
{
    mte e;
    mte_init(&e);
    e.o.reply_thread = true;
    mte_up(&e);
    char *path = rt_xasprintf("%s/report.txt", e.home);
    FILE *fp = fopen(path, "w");
    ASSERT_NOT_NULL(fp);
    fputs("quarterly numbers\n", fp);
    fclose(fp);
    char *reply = rt_xasprintf("Here it is.\nMEDIA:%s\nMEDIA:%s/missing.pdf", path, e.home);
    mgw_reply_with(e.gw, reply, GW_TEXT_REPLY, false);
    char *pid = mmd_post_id(&e.d, "town", "alice", "@hermes the report?", NULL);
    cJSON *posts = bot_posts(&e, "town", 3);
    const cJSON *p0 = cJSON_GetArrayItem(posts, 0), *p1 = cJSON_GetArrayItem(posts, 1),
                *p2 = cJSON_GetArrayItem(posts, 2);
    ASSERT_STR_EQ(jstr(p0, "message"), "Here it is.");
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(p1, "file_ids");
    ASSERT_EQ(cJSON_GetArraySize(ids), 1);
    ASSERT_STR_EQ(jstr(p1, "root_id"), pid);
    ASSERT_STR_CONTAINS(jstr(p2, "message"), "(file not found:");
    ASSERT_STR_CONTAINS(jstr(p2, "message"), "missing.pdf");
    char *fpath =
        rt_xasprintf("/api/v4/files/%s", cJSON_GetArrayItem(ids, 0)->valuestring); /* uploaded */
    cJSON_Delete(posts);
    ASSERT_EQ(mmd_count(&e.d, "requests", "&path=/api/v4/files&status=201"), 1);
    rt_free(fpath);
    rt_free(reply);
    rt_free(path);
    rt_free(pid);
    mte_fini(&e);
}

TEST(home_channel_and_sethome)
{
    mte e;
    mte_init(&e);
    e.o.home_channel = (char *)"homehomehomehomehomehome00";
    mte_up(&e);
    ASSERT_STR_EQ(mgw_get(e.gw, MGW_UP, 0)->home, "homehomehomehomehomehome00");
    /* /sethome reaches the gateway from a channel even without a mention */
    char *pid = mmd_post_id(&e.d, "town", "alice", "/sethome", NULL);
    const mgw_rec *ev = event(&e, 0);
    ASSERT_STR_EQ(ev->text, "/sethome");
    ASSERT_STR_EQ(ev->chat_id, mmd_id(&e.d, "town"));
    ASSERT_STR_EQ(ev->message_id, pid);
    /* other commands in a channel still need the mention */
    cJSON_Delete(mmd_post(&e.d, "town", "alice", "/status", NULL));
    cJSON_Delete(mmd_post(&e.d, "town", "alice", "@hermes /status", NULL));
    ASSERT_STR_EQ(event(&e, 1)->text, "/status");
    mte_quiet(&e);
    ASSERT_EQ(mgw_count(e.gw, MGW_EVENT), 2);
    rt_free(pid);
    mte_fini(&e);
}

TEST(typing_is_refreshed_while_a_turn_runs)
{
    mte e;
    mte_init(&e);
    mte_up(&e);
    mgw_reply_with(e.gw, NULL, GW_TEXT_REPLY, true); /* the turn never ends */
    cJSON_Delete(mmd_post(&e.d, "dm_bob", "bob", "think hard", NULL));
    ASSERT_OK(mgw_wait(e.gw, MGW_EVENT, 1, MT_WAIT_MS));
    /* nothing answers: send typing ourselves as the gateway would */
    const mgw_rec *ev = event(&e, 0);
    gw_target to = {.chat_id = ev->reply_chat, .reply_to = ev->reply_to};
    rt_send(e.cx, e.ad, gw_out_typing_new(&to, true));
    cJSON *t = mmd_wait(&e.d, "typing", 1, NULL, MT_WAIT_MS);
    ASSERT_NOT_NULL(t);
    cJSON_Delete(t);
    /* every 2 s a refresh. A refresh is best effort (a lost request is not retried) and CI
     * once saw none within the wait on a loaded machine, cause unknown: three periods to show
     * one. A lost timer still fails here. */
    t = NULL;
    int periods = 0;
    while (periods < 3 && !t) {
        mte_advance(&e, 2000);
        periods++;
        t = mmd_wait(&e.d, "typing", 2, NULL, MT_WAIT_MS / 3);
    }
    ASSERT_NOT_NULL(t);
    cJSON_Delete(t);
    rt_send(e.cx, e.ad, gw_out_turn_end_new(&to, GW_OUTCOME_SUCCESS, NULL));
    mte_quiet(&e);
    mte_advance(&e, 10000);
    /* the first typing and one refresh per period before the turn ended, at most (a late or
     * lost one only lowers it); five more periods passed after it: none of them sent one */
    ASSERT_LE(mmd_count(&e.d, "typing", NULL), 1 + periods);
    mte_fini(&e);
}

TEST(posts_while_the_gateway_was_stopped_are_answered_after_a_restart)
{
    mte e;
    mte_init(&e);
    mte_up(&e);
    cJSON_Delete(mmd_post(&e.d, "dm_alice", "alice", "first", NULL));
    cJSON_Delete(bot_posts(&e, "dm_alice", 1));
    mte_quiet(&e);
    rt_stop(e.cx, e.ad, RT_EXIT_STOPPED);
    for (int i = 0; i < 1000 && rt_is_alive(e.cx, e.ad); i++) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ASSERT_FALSE(rt_is_alive(e.cx, e.ad));
    ASSERT_OK(mgw_wait(e.gw, MGW_DOWN, 1, MT_WAIT_MS));
    mte_quiet(&e);
    char *state = rt_xasprintf("%s/platforms/mattermost/state.json", e.home);
    struct stat st;
    int found = -1;
    for (int i = 0; i < 1000 && (found = stat(state, &st)) != 0; i++) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ASSERT_OK(found);
    ASSERT_EQ(st.st_mode & 0777, 0600u);

    char *p = mmd_post_id(&e.d, "dm_alice", "alice", "while the gateway was down", NULL);
    char *q = mmd_post_id(&e.d, "town", "bob", "@hermes you missed this", NULL);
    char err[256];
    ASSERT_OK(mte_start(&e, err, sizeof(err)));
    ASSERT_OK(mgw_wait(e.gw, MGW_UP, 2, MT_WAIT_MS));
    ASSERT_STR_EQ(event(&e, 1)->message_id, p);
    ASSERT_STR_EQ(event(&e, 2)->message_id, q);
    cJSON_Delete(bot_posts(&e, "dm_alice", 2));
    cJSON_Delete(bot_posts(&e, "town", 1));
    mte_quiet(&e);
    ASSERT_EQ(mgw_count(e.gw, MGW_EVENT), 3); /* "first" was not answered again */
    ASSERT_EQ(bot_count(&e, "dm_alice"), 2);
    rt_free(state);
    rt_free(p);
    rt_free(q);
    mte_fini(&e);
}

/* The state file's text once it exists and contains needle (or doesn't, want false). */
static bool state_has(const mte *e, const char *needle)
{
    char *path = rt_xasprintf("%s/platforms/mattermost/state.json", e->home);
    char *text = NULL;
    size_t len = 0;
    bool has = hm_read_file(path, 4u << 20, &text, &len) == 0 && strstr(text, needle);
    rt_free(text);
    rt_free(path);
    return has;
}

/* Wait (bounded) until the state file contains needle. */
static bool state_wait(const mte *e, const char *needle)
{
    for (int i = 0; i < MT_WAIT_MS / 5 && !state_has(e, needle); i++) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return state_has(e, needle);
}

TEST(the_position_is_written_at_most_once_a_second)
{
    /* Writing it for every post cost O(recent posts) each (a profile at 400 users found a
     * third of the gateway's CPU there); a second of position is all a crash may lose. */
    mte e;
    mte_init(&e);
    mte_up(&e);
    char *first = mmd_post_id(&e.d, "dm_alice", "alice", "first", NULL);
    cJSON_Delete(bot_posts(&e, "dm_alice", 1));
    mte_quiet(&e);
    mte_advance(&e, 1000);
    ASSERT_TRUE(state_wait(&e, first)); /* written within a second */
    char *last = NULL;
    for (int i = 0; i < 10; i++) {
        rt_free(last);
        last = mmd_post_id(&e.d, "dm_alice", "alice", "more", NULL);
        cJSON_Delete(bot_posts(&e, "dm_alice", 2 + i));
    }
    mte_quiet(&e);
    ASSERT_EQ(mgw_count(e.gw, MGW_EVENT), 11);
    ASSERT_FALSE(state_has(&e, last)); /* the fake clock has not moved: not written yet */
    mte_advance(&e, 1000);
    ASSERT_TRUE(state_wait(&e, last));
    rt_free(first);
    rt_free(last);
    mte_fini(&e);
}

TEST(remaining_zero_holds_the_next_request_until_the_reset)
{
    mte e;
    mte_init(&e);
    mte_up(&e);
    mmd_do(&e.d, "/_test/remaining0", "{\"reset_s\":3,\"path\":\"/api/v4/posts\"}");
    cJSON_Delete(mmd_post(&e.d, "dm_alice", "alice", "one", NULL));
    cJSON_Delete(bot_posts(&e, "dm_alice", 1)); /* answered with Remaining: 0, Reset: 3 */
    mte_quiet(&e);
    cJSON_Delete(mmd_post(&e.d, "dm_alice", "alice", "two", NULL));
    ASSERT_OK(mgw_wait(e.gw, MGW_EVENT, 2, MT_WAIT_MS));
    mte_quiet(&e);
    ASSERT_EQ(bot_count(&e, "dm_alice"), 1); /* held: the limit is not hit */
    mte_advance(&e, 3100);
    cJSON_Delete(bot_posts(&e, "dm_alice", 2));
    ASSERT_EQ(mmd_count(&e.d, "requests", "&path=/api/v4/posts&status=429"), 0);
    mte_fini(&e);
}

TEST(system_posts_and_unknown_events_are_ignored)
{
    mte e;
    mte_init(&e);
    mte_up(&e);
    mmd_do(&e.d, "/_test/post",
           "{\"channel\":\"dm_alice\",\"user\":\"alice\",\"message\":\"alice joined\","
           "\"type\":\"system_join_channel\"}");
    cJSON_Delete(mmd_post(&e.d, "dm_alice", "alice", "", NULL)); /* nothing to answer */
    char *pid = mmd_post_id(&e.d, "dm_alice", "alice", "real one", NULL);
    ASSERT_STR_EQ(event(&e, 0)->message_id, pid);
    cJSON_Delete(bot_posts(&e, "dm_alice", 1));
    mte_quiet(&e);
    ASSERT_EQ(mgw_count(e.gw, MGW_EVENT), 1);
    rt_free(pid);
    mte_fini(&e);
}

TEST(a_refused_thread_root_falls_back_to_a_flat_post)
{
    mte e;
    mte_init(&e);
    e.o.reply_thread = true;
    mte_up(&e);
    mmd_do(&e.d, "/_test/fail",
           "{\"count\":1,\"status\":400,\"path\":\"/api/v4/posts\",\"method\":\"POST\","
           "\"body\":\"{\\\"id\\\":\\\"api.post.create_post.root_id.app_error\\\","
           "\\\"message\\\":\\\"Invalid RootId parameter.\\\",\\\"status_code\\\":400}\"}");
    cJSON_Delete(mmd_post(&e.d, "town", "alice", "@hermes hi", NULL));
    cJSON *posts = bot_posts(&e, "town", 1);
    const cJSON *p = cJSON_GetArrayItem(posts, 0);
    ASSERT_STR_EQ(jstr(p, "root_id"), "");
    ASSERT_STR_CONTAINS(jstr(p, "message"),
                        "Mattermost thread delivery failed; posting final reply in channel.");
    ASSERT_STR_CONTAINS(jstr(p, "message"), "echo: hi");
    cJSON_Delete(posts);
    mte_fini(&e);
}

TEST(tool_progress_is_one_post_that_grows)
{
    mte e;
    mte_init(&e);
    mte_up(&e);
    gw_target to = {.chat_id = (char *)mmd_id(&e.d, "dm_alice")};
    rt_send(e.cx, e.ad, gw_out_text_new(GW_OUT_TEXT, &to, "💻 ls -la", GW_TEXT_PROGRESS));
    rt_send(e.cx, e.ad, gw_out_text_new(GW_OUT_TEXT, &to, "📖 read_file", GW_TEXT_PROGRESS));
    rt_send(e.cx, e.ad, gw_out_text_new(GW_OUT_TEXT, &to, "🔍 search", GW_TEXT_PROGRESS));
    rt_send(e.cx, e.ad, gw_out_text_new(GW_OUT_TEXT, &to, "done", GW_TEXT_REPLY));
    cJSON_Delete(bot_posts(&e, "dm_alice", 2));
    mte_quiet(&e);
    cJSON *posts = bot_posts(&e, "dm_alice", 2);
    ASSERT_EQ(cJSON_GetArraySize(posts), 2);
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(posts, 0), "message"), "💻 ls -la\n📖 read_file\n🔍 search");
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(posts, 1), "message"), "done");
    cJSON_Delete(posts);
    ASSERT_GE(mmd_count(&e.d, "requests", "&path=/api/v4/posts/"), 1); /* …/patch */
    /* the next turn's progress is a new post */
    rt_send(e.cx, e.ad, gw_out_turn_end_new(&to, GW_OUTCOME_SUCCESS, NULL));
    rt_send(e.cx, e.ad, gw_out_text_new(GW_OUT_TEXT, &to, "💻 pwd", GW_TEXT_PROGRESS));
    posts = bot_posts(&e, "dm_alice", 3);
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(posts, 2), "message"), "💻 pwd");
    cJSON_Delete(posts);
    mte_fini(&e);
}
