/* test_slack_fmt — the Slack adapter's pure helpers: Markdown → mrkdwn, Socket Mode frames,
 * history messages, ts order, the state file; and the adapter kit's rings and lists. */
#include "ak_dedupe.h"
#include "ak_opts.h"
#include "ak_text.h"
#include "rt_alloc.h"
#include "slack.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <string.h>

static void check(const char *md, const char *want)
{
    char *got = slack_mrkdwn(md);
    if (strcmp(got, want) != 0)
        TEST_FAIL_("mrkdwn(%s)\n  got  [%s]\n  want [%s]", md, got, want);
    rt_free(got);
}

TEST(mrkdwn_table)
{
    static const char *const t[][2] = {
        {"", ""},
        {"plain text", "plain text"},
        {"**bold**", "*bold*"},
        {"*italic*", "_italic_"},
        {"_italic_", "_italic_"},
        {"***both***", "*_both_*"},
        {"~~gone~~", "~gone~"},
        {"# Title", "*Title*"},
        {"### **Bold** title  ", "*Bold title*"},
        {"#nospace", "#nospace"},
        {"[Hermes](https://example.com/a_(b))", "<https://example.com/a_(b)|Hermes>"},
        {"[x](<https://e.com>)", "<https://e.com|x>"},
        {"a < b & c > d", "a &lt; b &amp; c &gt; d"},
        {"already &amp; &lt;ok&gt;", "already &amp; &lt;ok&gt;"},
        {"hi <@U123> and <#C1|general> <!here>", "hi <@U123> and <#C1|general> <!here>"},
        {"see <https://x.y/z|site>", "see <https://x.y/z|site>"},
        {"`**not bold** <x>`", "`**not bold** <x>`"},
        {"```\n**raw** <x>\n```\n**after**", "```\n**raw** <x>\n```\n*after*"},
        {"```py\na*b*c\n```", "```py\na*b*c\n```"},
        {"> quoted **text**", "> quoted *text*"},
        {"2 * 3 * 4", "2 _ 3 _ 4"},
        {"a ** b", "a ** b"},
        {"line1\n\n- item *one*\n", "line1\n\n- item _one_\n"},
        {"**a** and **b**", "*a* and *b*"},
        {"**unclosed", "**unclosed"},
        {"[not a link] (x)", "[not a link] (x)"},
        {"emoji ✅ **ok**", "emoji ✅ *ok*"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        check(t[i][0], t[i][1]);
    char *n = slack_mrkdwn(NULL);
    ASSERT_STR_EQ(n, "");
    rt_free(n);
}

TEST(mrkdwn_survives_hostile_input)
{
    /* long runs of markers and unbalanced brackets: bounded output, no crash */
    size_t n = 200000;
    char *s = rt_xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        s[i] = "*[`~<&>(\n#_"[i % 11];
    s[n] = '\0';
    char *out = slack_mrkdwn(s);
    ASSERT_NOT_NULL(out);
    ASSERT_LT(strlen(out), 6 * n);
    rt_free(out);
    rt_free(s);
}

TEST(frame_events_api_message)
{
    const char *j =
        "{\"envelope_id\":\"e1\",\"type\":\"events_api\",\"retry_attempt\":2,"
        "\"payload\":{\"team_id\":\"T1\",\"event_id\":\"Ev1\",\"type\":\"event_callback\","
        "\"event\":{\"type\":\"message\",\"channel\":\"D1\",\"channel_type\":\"im\","
        "\"user\":\"U1\",\"text\":\"hi\",\"ts\":\"1.2\",\"thread_ts\":\"1.0\","
        "\"files\":[{\"name\":\"a.png\",\"mimetype\":\"image/png\",\"size\":3,"
        "\"url_private\":\"http://x/a\",\"url_private_download\":\"http://x/a?d=1\"},"
        "{\"name\":\"nourl\"}]}}}";
    slack_frame f;
    ASSERT_OK(slack_frame_parse(j, strlen(j), &f));
    ASSERT_STR_EQ(f.type, "events_api");
    ASSERT_STR_EQ(f.envelope_id, "e1");
    ASSERT_EQ(f.retry_attempt, 2);
    ASSERT_TRUE(f.has_event);
    ASSERT_STR_EQ(f.event_type, "message");
    ASSERT_STR_EQ(f.event_id, "Ev1");
    ASSERT_STR_EQ(f.channel, "D1");
    ASSERT_STR_EQ(f.channel_type, "im");
    ASSERT_STR_EQ(f.user, "U1");
    ASSERT_STR_EQ(f.ts, "1.2");
    ASSERT_STR_EQ(f.thread_ts, "1.0");
    ASSERT_STR_EQ(f.team, "T1");
    ASSERT_EQ(f.nfiles, 1u);
    ASSERT_STR_EQ(f.file_url[0], "http://x/a?d=1");
    ASSERT_STR_EQ(f.file_mime[0], "image/png");
    ASSERT_EQ(f.file_size[0], 3);
    slack_frame_fini(&f);
}

TEST(frame_disconnect_and_others)
{
    const char *j = "{\"type\":\"disconnect\",\"reason\":\"refresh_requested\"}";
    slack_frame f;
    ASSERT_OK(slack_frame_parse(j, strlen(j), &f));
    ASSERT_STR_EQ(f.type, "disconnect");
    ASSERT_STR_EQ(f.reason, "refresh_requested");
    ASSERT_NULL(f.envelope_id);
    ASSERT_FALSE(f.has_event);
    slack_frame_fini(&f);
    /* a reaction event is not a message: acked but not an event for us */
    j = "{\"envelope_id\":\"e2\",\"type\":\"events_api\",\"payload\":{\"event\":"
        "{\"type\":\"reaction_added\"}}}";
    ASSERT_OK(slack_frame_parse(j, strlen(j), &f));
    ASSERT_STR_EQ(f.envelope_id, "e2");
    ASSERT_FALSE(f.has_event);
    slack_frame_fini(&f);
}

TEST(frame_bad_input)
{
    static const char *const bad[] = {"", "nope", "[]", "{}", "{\"type\":5}", "{\"type\":", "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        slack_frame f;
        ASSERT_EQ(slack_frame_parse(bad[i], strlen(bad[i]), &f), -EINVAL);
        slack_frame_fini(&f);
    }
    slack_frame f;
    ASSERT_EQ(slack_frame_parse(NULL, 0, &f), -EINVAL);
    slack_frame_fini(&f);
    /* wrong types inside are ignored, not trusted */
    const char *j = "{\"type\":\"events_api\",\"envelope_id\":7,\"payload\":{\"event\":"
                    "{\"type\":\"message\",\"channel\":[1],\"files\":{\"a\":1}}}}";
    ASSERT_OK(slack_frame_parse(j, strlen(j), &f));
    ASSERT_NULL(f.envelope_id);
    ASSERT_TRUE(f.has_event);
    ASSERT_NULL(f.channel);
    ASSERT_EQ(f.nfiles, 0u);
    slack_frame_fini(&f);
}

TEST(ts_order)
{
    ASSERT_EQ(slack_ts_cmp("1700000000.000100", "1700000000.000200"), -1);
    ASSERT_EQ(slack_ts_cmp("1700000001.000000", "1700000000.999999"), 1);
    ASSERT_EQ(slack_ts_cmp("999999999.000000", "1700000000.000000"), -1); /* not strcmp */
    ASSERT_EQ(slack_ts_cmp("1700000000.1", "1700000000.100000"), 0);
    ASSERT_EQ(slack_ts_cmp("0", "1.000001"), -1);
    ASSERT_EQ(slack_ts_cmp(NULL, "1"), -1);
    ASSERT_TRUE(slack_ts_ok("1700000000.000100"));
    ASSERT_FALSE(slack_ts_ok("1700000000.000100.1"));
    ASSERT_FALSE(slack_ts_ok("17000x"));
    ASSERT_FALSE(slack_ts_ok(""));
    ASSERT_FALSE(slack_ts_ok(".5"));
    ASSERT_FALSE(slack_ts_ok("123456789012345678901234567890"));
}

TEST(state_file_round_trip_and_bad_input)
{
    slack_mark m[3] = {
        {.channel = "D1", .last = "1700000000.000100", .dm = true},
        {.channel = "C1", .thread = "1700000000.000001", .last = "1700000000.000009"},
        {.channel = "C2"}}; /* no position: not written */
    char *s = slack_state_format("UBOT", m, 3);
    slack_mark got[4];
    size_t n = 9;
    char bot[32];
    ASSERT_OK(slack_state_parse(s, bot, sizeof(bot), got, 4, &n));
    rt_free(s);
    ASSERT_STR_EQ(bot, "UBOT");
    ASSERT_EQ(n, 2u);
    ASSERT_STR_EQ(got[0].channel, "D1");
    ASSERT_TRUE(got[0].dm);
    ASSERT_STR_EQ(got[0].thread, "");
    ASSERT_STR_EQ(got[1].thread, "1700000000.000001");
    ASSERT_STR_EQ(got[1].last, "1700000000.000009");
    ASSERT_FALSE(got[1].dm);
    static const char *const bad[] = {NULL,
                                      "",
                                      "[]",
                                      "{\"bot_user\":1,\"conversations\":[]}",
                                      "{\"bot_user\":\"U\"}",
                                      "{\"conversations\":[]}",
                                      "{"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ASSERT_EQ(slack_state_parse(bad[i], bot, sizeof(bot), got, 4, &n), -EINVAL);
    /* damaged entries are skipped, the rest kept; max is respected */
    const char *mixed =
        "{\"bot_user\":\"UBOT\",\"conversations\":[{\"channel\":\"C\\\"x\",\"last_ts\":\"1.0\"},"
        "{\"channel\":\"C1\",\"last_ts\":\"abc\"},{\"channel\":\"C2\",\"last_ts\":\"2.5\","
        "\"thread_ts\":7},{\"channel\":\"C3\",\"last_ts\":\"3.5\"},7,"
        "{\"channel\":\"C4\",\"last_ts\":\"4.5\"},{\"channel\":\"C5\",\"last_ts\":\"5.5\"}]}";
    ASSERT_OK(slack_state_parse(mixed, bot, sizeof(bot), got, 2, &n));
    ASSERT_EQ(n, 2u);
    ASSERT_STR_EQ(got[0].channel, "C3");
    ASSERT_STR_EQ(got[1].channel, "C4");
}

TEST(history_messages_become_frames)
{
    cJSON *m = cJSON_Parse("{\"type\":\"message\",\"user\":\"UALICE\",\"text\":\"<@UBOT> hi\","
                           "\"ts\":\"1700000000.000100\",\"thread_ts\":\"1700000000.000001\","
                           "\"files\":[{\"url_private_download\":\"https://x/f\","
                           "\"name\":\"a.txt\",\"mimetype\":\"text/plain\",\"size\":3}]}");
    slack_frame f;
    ASSERT_OK(slack_message_parse(m, "C1", false, &f));
    ASSERT_STR_EQ(f.channel, "C1");
    ASSERT_STR_EQ(f.channel_type, "channel");
    ASSERT_STR_EQ(f.event_type, "message");
    ASSERT_STR_EQ(f.user, "UALICE");
    ASSERT_STR_EQ(f.thread_ts, "1700000000.000001");
    ASSERT_EQ(f.nfiles, 1u);
    slack_frame_fini(&f);
    ASSERT_OK(slack_message_parse(m, "D1", true, &f));
    ASSERT_STR_EQ(f.channel_type, "im");
    slack_frame_fini(&f);
    cJSON_Delete(m);
    static const char *const bad[] = {"{\"type\":\"message\"}", "{\"type\":\"channel_join\"}", "[]",
                                      "{\"ts\":\"1.0\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        m = cJSON_Parse(bad[i]);
        ASSERT_EQ(slack_message_parse(m, "C1", false, &f), -EINVAL);
        slack_frame_fini(&f);
        cJSON_Delete(m);
    }
    ASSERT_EQ(slack_message_parse(NULL, "C1", false, &f), -EINVAL);
    slack_frame_fini(&f);
}

TEST(kit_rings_hashes_and_lists)
{
    uint64_t ring[3] = {0};
    size_t next = 0;
    uint64_t a = ak_hash2("C1", "1.0"), b = ak_hash2("C1", "1.1"), c = ak_hash("x");
    ASSERT_NE(a, b);
    ASSERT_NE(a, 0u);
    ASSERT_NE(ak_hash(NULL), 0u);
    ASSERT_NE(ak_hash2("C1:", "1.0"), 0u);
    ak_ring_add(ring, 3, &next, a);
    ak_ring_add(ring, 3, &next, a); /* once */
    ak_ring_add(ring, 3, &next, b);
    ak_ring_add(ring, 3, &next, c);
    ASSERT_TRUE(ak_ring_has(ring, 3, a));
    ak_ring_add(ring, 3, &next, ak_hash("y")); /* full: the oldest goes */
    ASSERT_FALSE(ak_ring_has(ring, 3, a));
    ASSERT_TRUE(ak_ring_has(ring, 3, b));
    ASSERT_TRUE(ak_ring_del(ring, 3, b));
    ASSERT_FALSE(ak_ring_has(ring, 3, b));
    ASSERT_FALSE(ak_ring_del(ring, 3, b));
    char **v = ak_split_list(" a, b ,,c ");
    ASSERT_NOT_NULL(v);
    ASSERT_STR_EQ(v[0], "a");
    ASSERT_STR_EQ(v[1], "b");
    ASSERT_STR_EQ(v[2], "c");
    ASSERT_NULL(v[3]);
    ASSERT_TRUE(ak_strv_has(v, "b"));
    ASSERT_FALSE(ak_strv_has(v, "d"));
    ASSERT_FALSE(ak_strv_has(v, NULL));
    char **w = ak_strv_dup(v);
    ASSERT_STR_EQ(w[2], "c");
    ak_strv_free(v);
    ak_strv_free(w);
    ASSERT_NULL(ak_split_list(" , ,"));
    ASSERT_NULL(ak_split_list(NULL));
    ASSERT_NULL(ak_strv_dup(NULL));
    ASSERT_TRUE(ak_is_false("OFF"));
    ASSERT_FALSE(ak_is_false("on"));
    ASSERT_FALSE(ak_is_false(NULL));
    ASSERT_TRUE(ak_is_true("Yes"));
    ASSERT_FALSE(ak_is_true("on")); /* the original's words only */
    static const char *const media[][2] = {
        {"MEDIA:/tmp/a.png", "/tmp/a.png"},
        {"  MEDIA: \"/tmp/b c.ogg\" \r", "/tmp/b c.ogg"},
        {"MEDIA:`/x`", "/x"},
        {"see MEDIA:/tmp/a.png", NULL},
        {"MEDIA:", NULL},
        {"MEDIA:  ", NULL},
    };
    for (size_t i = 0; i < sizeof(media) / sizeof(media[0]); i++) {
        const char *l = media[i][0];
        char *m = ak_media_line(l, l + strlen(l));
        if (media[i][1])
            ASSERT_STR_EQ(m, media[i][1]);
        else
            ASSERT_NULL(m);
        rt_free(m);
    }
    char *n = ak_safe_name("a/../my report (1).pdf", 0);
    ASSERT_STR_EQ(n, "a_.._my_report__1_.pdf");
    rt_free(n);
    n = ak_safe_name("../etc/passwd", 0); /* never a dot name */
    ASSERT_STR_EQ(n, "file0");
    rt_free(n);
    n = ak_safe_name(".hidden", 3);
    ASSERT_STR_EQ(n, "file3");
    rt_free(n);
    n = ak_safe_name(NULL, 1);
    ASSERT_STR_EQ(n, "file1");
    rt_free(n);
}
