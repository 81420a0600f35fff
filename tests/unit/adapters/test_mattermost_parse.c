/*
 * The Mattermost adapter's pure helpers (mm_parse.h): WebSocket frames with the post as a
 * JSON string, channel types, the mention rule, thread roots, the backoff, rate-limit waits,
 * the persisted state, URLs, and bad input.
 */
#include "mm_parse.h"

#include "hm_config.h"
#include "mattermost.h"
#include "rt_alloc.h"
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char POSTED[] =
    "{\"event\":\"posted\",\"data\":{\"channel_display_name\":\"Town Square\","
    "\"channel_name\":\"town-square\",\"channel_type\":\"O\",\"post\":\"{\\\"id\\\":"
    "\\\"p1p1p1p1p1p1p1p1p1p1p1p1p1\\\",\\\"create_at\\\":1700000000123,\\\"update_at\\\":"
    "1700000000123,\\\"delete_at\\\":0,\\\"user_id\\\":\\\"uuuuuuuuuuuuuuuuuuuuuuuuuu\\\","
    "\\\"channel_id\\\":\\\"cccccccccccccccccccccccccc\\\",\\\"root_id\\\":\\\"\\\","
    "\\\"message\\\":\\\"@hermes hi\\\",\\\"type\\\":\\\"\\\",\\\"file_ids\\\":[\\\"f1\\\"]}\","
    "\"sender_name\":\"@alice\",\"set_online\":true,\"team_id\":\"t\"},"
    "\"broadcast\":{\"omit_users\":null,\"user_id\":\"\",\"channel_id\":\"c\",\"team_id\":\"\"},"
    "\"seq\":7}";

TEST(posted_event_with_post_as_json_string)
{
    mm_wsmsg m;
    ASSERT_OK(mm_wsmsg_parse(POSTED, strlen(POSTED), &m));
    ASSERT_EQ(m.kind, MM_WS_EVENT);
    ASSERT_STR_EQ(m.event, "posted");
    ASSERT_EQ(m.seq, 7);
    ASSERT_TRUE(m.has_post);
    ASSERT_STR_EQ(m.post.id, "p1p1p1p1p1p1p1p1p1p1p1p1p1");
    ASSERT_STR_EQ(m.post.message, "@hermes hi");
    ASSERT_NULL(m.post.root_id);
    ASSERT_NULL(m.post.type);
    ASSERT_EQ(m.post.create_at, 1700000000123LL);
    ASSERT_EQ(m.post.nfiles, (size_t)1);
    ASSERT_STR_EQ(m.channel_type, "O");
    ASSERT_STR_EQ(m.sender_name, "alice");
    ASSERT_STR_EQ(m.channel_display_name, "Town Square");
    mm_wsmsg_fini(&m);
}

TEST(replies_hello_and_bad_frames)
{
    mm_wsmsg m;
    const char *ok = "{\"status\":\"OK\",\"seq_reply\":1}";
    ASSERT_OK(mm_wsmsg_parse(ok, strlen(ok), &m));
    ASSERT_EQ(m.kind, MM_WS_REPLY);
    ASSERT_EQ(m.seq_reply, 1);
    ASSERT_TRUE(m.ok);
    mm_wsmsg_fini(&m);
    const char *fail = "{\"status\":\"FAIL\",\"seq_reply\":2,\"error\":{\"id\":\"x.y\"}}";
    ASSERT_OK(mm_wsmsg_parse(fail, strlen(fail), &m));
    ASSERT_FALSE(m.ok);
    ASSERT_STR_EQ(m.error_id, "x.y");
    mm_wsmsg_fini(&m);
    const char *hello = "{\"event\":\"hello\",\"data\":{\"server_version\":\"9\"},\"seq\":0}";
    ASSERT_OK(mm_wsmsg_parse(hello, strlen(hello), &m));
    ASSERT_STR_EQ(m.event, "hello");
    ASSERT_EQ(m.seq, 0);
    ASSERT_FALSE(m.has_post);
    mm_wsmsg_fini(&m);
    const char *bad[] = {"",
                         "[]",
                         "not json",
                         "{\"x\":1}",
                         "{\"event\":\"posted\",\"data\":{\"post\":\"{broken\"}}",
                         "{\"event\":\"posted\",\"data\":{\"post\":\"{\\\"id\\\":\\\"a\\\"}\"}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_EQ(mm_wsmsg_parse(bad[i], strlen(bad[i]), &m), -EBADMSG);
        mm_wsmsg_fini(&m);
    }
}

TEST(channel_types)
{
    ASSERT_STR_EQ(mm_chat_type("D"), "dm");
    ASSERT_STR_EQ(mm_chat_type("O"), "channel");
    ASSERT_STR_EQ(mm_chat_type("P"), "group");
    ASSERT_STR_EQ(mm_chat_type("G"), "group");
    ASSERT_STR_EQ(mm_chat_type(NULL), "channel");
    ASSERT_STR_EQ(mm_chat_type("Z"), "channel");
}

TEST(mentions)
{
    const char *id = "bbbbbbbbbbbbbbbbbbbbbbbbbb";
    ASSERT_TRUE(mm_mentions("@hermes hi", "hermes", id));
    ASSERT_TRUE(mm_mentions("hi @HERMES", "hermes", id));
    ASSERT_TRUE(mm_mentions("@hermes: hi", "hermes", id));
    ASSERT_TRUE(mm_mentions("(@hermes)", "hermes", id));
    ASSERT_TRUE(mm_mentions("@bbbbbbbbbbbbbbbbbbbbbbbbbb hi", "hermes", id));
    ASSERT_FALSE(mm_mentions("hermes hi", "hermes", id));
    ASSERT_FALSE(mm_mentions("@hermesbot hi", "hermes", id));
    ASSERT_FALSE(mm_mentions("bob@hermes.io", "hermes", id));
    ASSERT_FALSE(mm_mentions("", "hermes", id));
    ASSERT_FALSE(mm_mentions("@hermes", NULL, NULL));
    char *s = mm_strip_mentions("  @hermes what is @Hermes up to? ", "hermes", id);
    ASSERT_STR_EQ(s, "what is  up to?");
    rt_free(s);
}

TEST(reply_roots_are_never_a_reply)
{
    /* top-level message */
    ASSERT_NULL(mm_reply_root(false, NULL, "post"));
    ASSERT_STR_EQ(mm_reply_root(true, NULL, "post"), "post");
    ASSERT_STR_EQ(mm_reply_root(true, "", "post"), "post");
    /* a reply inside a thread: always the thread's root, in both modes */
    ASSERT_STR_EQ(mm_reply_root(true, "root", "reply"), "root");
    ASSERT_STR_EQ(mm_reply_root(false, "root", "reply"), "root");
    ASSERT_NULL(mm_reply_root(true, NULL, NULL));
}

TEST(backoff_doubles_to_the_cap_with_bounded_jitter)
{
    int64_t want[] = {2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
    int64_t d = 0;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        d = mm_backoff_next(d, 2000, 60000);
        ASSERT_EQ(d, want[i]);
    }
    uint64_t rnd = 88172645463325252ULL;
    for (int i = 0; i < 1000; i++) {
        rnd ^= rnd << 13;
        rnd ^= rnd >> 7;
        rnd ^= rnd << 17;
        int64_t j = mm_backoff_jitter(60000, rnd);
        ASSERT_GE(j, 60000);
        ASSERT_LE(j, 72000);
    }
}

TEST(ratelimit_waits)
{
    rt_http_header h[3] = {
        {"X-RateLimit-Limit", "10"}, {"X-RateLimit-Remaining", "0"}, {"X-RateLimit-Reset", "5"}};
    ASSERT_EQ(mm_ratelimit_wait_ms(429, h, 3, 0), 5000);
    ASSERT_EQ(mm_ratelimit_wait_ms(429, h, 3, 9), 9000);
    ASSERT_EQ(mm_ratelimit_wait_ms(429, NULL, 0, 0), 1000);
    ASSERT_EQ(mm_ratelimit_wait_ms(429, NULL, 0, 3600), 60000);
    ASSERT_EQ(mm_ratelimit_wait_ms(200, h, 3, 0), 5000); /* remaining 0 */
    h[1].value = "4";
    ASSERT_EQ(mm_ratelimit_wait_ms(200, h, 3, 0), 0);
    h[2].value = "garbage";
    ASSERT_EQ(mm_ratelimit_wait_ms(429, h, 3, 0), 1000);
}

TEST(state_round_trip_and_bad_state)
{
    mm_state s;
    mm_state_init(&s);
    s.server = rt_xstrdup("https://mm.example.com");
    s.user_id = rt_xstrdup("bot");
    s.mark = 1700000000000;
    mm_state_add(&s, "a", 1700000000001);
    mm_state_add(&s, "b", 1700000000002);
    mm_state_add(&s, "a", 1700000000001);
    ASSERT_EQ(s.n, (size_t)2);
    char *j = mm_state_json(&s);
    mm_state t;
    mm_state_init(&t);
    ASSERT_OK(mm_state_parse(j, &t));
    ASSERT_EQ(t.mark, 1700000000000LL);
    ASSERT_TRUE(mm_state_has(&t, "a"));
    ASSERT_TRUE(mm_state_has(&t, "b"));
    ASSERT_FALSE(mm_state_has(&t, "c"));
    mm_state_prune(&t, 1700000000002);
    ASSERT_FALSE(mm_state_has(&t, "a"));
    ASSERT_TRUE(mm_state_has(&t, "b"));
    rt_free(j);
    mm_state_fini(&t);
    mm_state_fini(&s);
    mm_state_init(&t);
    ASSERT_EQ(mm_state_parse("{not json", &t), -EBADMSG);
    mm_state_fini(&t);
    for (int i = 0; i < MM_SEEN_MAX + 10; i++) {
        char id[16];
        snprintf(id, sizeof(id), "id%d", i);
        mm_state_add(&s, id, i);
    }
    ASSERT_LE(s.n, (size_t)MM_SEEN_MAX);
    ASSERT_TRUE(mm_state_has(&s, "id4100"));
    mm_state_fini(&s);
}

TEST(urls_and_formatting)
{
    char *u = mm_ws_url("https://mm.example.com");
    ASSERT_STR_EQ(u, "wss://mm.example.com/api/v4/websocket");
    rt_free(u);
    u = mm_ws_url("http://127.0.0.1:8065/mm");
    ASSERT_STR_EQ(u, "ws://127.0.0.1:8065/mm/api/v4/websocket");
    rt_free(u);
    ASSERT_NULL(mm_ws_url("ftp://x"));
    char *f = mm_format("look ![a cat](https://x.test/cat.png) here");
    ASSERT_STR_EQ(f, "look https://x.test/cat.png here");
    rt_free(f);
    char **paths = NULL;
    char *t = mm_extract_media("done\nMEDIA:/tmp/report.pdf", "/home/u", &paths, 8);
    ASSERT_STR_EQ(t, "done");
    ASSERT_NOT_NULL(paths);
    ASSERT_STR_EQ(paths[0], "/tmp/report.pdf");
    ASSERT_NULL(paths[1]);
    rt_free(t);
    mm_strv_free(paths);
    char *n = mm_safe_name("../../etc/pass wd");
    ASSERT_STR_EQ(n, "pass_wd");
    rt_free(n);
    n = mm_safe_name("..");
    ASSERT_TRUE(strcmp(n, "..") != 0 && *n);
    rt_free(n);
}

/* ============================================================ settings */

static int opts_from_env(const char *dotenv, mattermost_opts *o, char *err, size_t errlen)
{
    /* only .env counts here (single-threaded: unsetenv is safe) */
    const char *vars[] = {"MATTERMOST_URL",
                          "MATTERMOST_TOKEN",
                          "MATTERMOST_REPLY_MODE",
                          "MATTERMOST_HOME_CHANNEL",
                          "MATTERMOST_REQUIRE_MENTION",
                          "MATTERMOST_FREE_RESPONSE_CHANNELS",
                          "HERMES_HOME"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    const char *home = test_tmpdir();
    char *path = rt_xasprintf("%s/.env", home);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs(dotenv, f);
    fclose(f);
    rt_free(path);
    int e = 0;
    hm_config *cfg = hm_config_load(home, 0, NULL, &e);
    ASSERT_NOT_NULL(cfg);
    int rc = mattermost_opts_from_config(cfg, home, o, err, errlen);
    hm_config_unref(cfg);
    return rc;
}

TEST(settings_from_dotenv)
{
    mattermost_opts o;
    char err[256] = "";
    ASSERT_OK(opts_from_env("MATTERMOST_URL=https://mm.example.com/\n"
                            "MATTERMOST_TOKEN=abcdefghijklmnopqrstuvwxyz\n"
                            "MATTERMOST_REPLY_MODE=thread\n"
                            "MATTERMOST_HOME_CHANNEL=homechan\n"
                            "MATTERMOST_FREE_RESPONSE_CHANNELS=c1,c2\n",
                            &o, err, sizeof(err)));
    ASSERT_STR_EQ(o.url, "https://mm.example.com");
    ASSERT_STR_EQ(o.token, "abcdefghijklmnopqrstuvwxyz");
    ASSERT_TRUE(o.reply_thread);
    ASSERT_TRUE(o.require_mention); /* the default */
    ASSERT_STR_EQ(o.home_channel, "homechan");
    ASSERT_NOT_NULL(o.free_channels);
    ASSERT_STR_EQ(o.free_channels[0], "c1");
    ASSERT_STR_EQ(o.free_channels[1], "c2");
    ASSERT_NULL(o.free_channels[2]);
    mattermost_opts_fini(&o);

    ASSERT_OK(opts_from_env("MATTERMOST_URL=http://10.0.0.5:8065\n"
                            "MATTERMOST_TOKEN=abcdefghijklmnopqrstuvwxyz\n"
                            "MATTERMOST_REQUIRE_MENTION=no\n",
                            &o, err, sizeof(err)));
    ASSERT_FALSE(o.reply_thread); /* default: off */
    ASSERT_FALSE(o.require_mention);
    ASSERT_NULL(o.home_channel);
    mattermost_opts_fini(&o);
}

TEST(settings_errors)
{
    mattermost_opts o;
    char err[256] = "";
    ASSERT_EQ(opts_from_env("MATTERMOST_URL=https://mm.example.com\n", &o, err, sizeof(err)),
              -ENOENT); /* no token: not configured */
    ASSERT_EQ(opts_from_env("MATTERMOST_TOKEN=abcdefghijklmnopqrstuvwxyz\n", &o, err, sizeof(err)),
              -EINVAL);
    ASSERT_STR_CONTAINS(err, "MATTERMOST_URL is not set");
    ASSERT_EQ(opts_from_env("MATTERMOST_URL=mm.example.com\n"
                            "MATTERMOST_TOKEN=abcdefghijklmnopqrstuvwxyz\n",
                            &o, err, sizeof(err)),
              -EINVAL);
    ASSERT_STR_CONTAINS(err, "https://");
}
