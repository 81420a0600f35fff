/* test_slack_fmt — the Slack adapter's pure helpers: Markdown → mrkdwn, Socket Mode frames. */
#include "rt_alloc.h"
#include "slack.h"
#include "test.h"

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
