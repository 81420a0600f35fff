/*
 * test_telegram — the Telegram adapter's pure parts: MarkdownV2 rendering and escaping,
 * splitting, reading updates and the group rules, the state file.
 */
#include "telegram.h"

#include "rt_alloc.h"
#include "test.h"

#include <errno.h>
#include <string.h>

static void md_is(const char *md, const char *want)
{
    char *got = tg_markdown_v2(md);
    ASSERT_STR_EQ(got, want);
    rt_free(got);
}

TEST(markdown_v2_table)
{
    md_is("hello", "hello");
    md_is("a.b", "a\\.b");
    md_is("1+1=2!", "1\\+1\\=2\\!");
    md_is("(v1.2)", "\\(v1\\.2\\)");
    md_is("**bold**", "*bold*");
    md_is("__bold__", "*bold*");
    md_is("*it*", "_it_");
    md_is("_it_", "_it_");
    md_is("~~gone~~", "~gone~");
    md_is("**bold _and it_**", "*bold _and it_*");
    md_is("snake_case_name", "snake\\_case\\_name");
    md_is("2 * 3 * 4", "2 \\* 3 \\* 4");
    md_is("**unclosed", "\\*\\*unclosed");
    md_is("`a_b*c.`", "`a_b*c.`");
    md_is("`x\\y`", "`x\\\\y`");
    md_is("[a.b](http://x.y/p?q=1)", "[a\\.b](http://x.y/p?q=1)");
    md_is("[t](http://x/a\\b)", "[t](http://x/a\\\\b)");
    md_is("# Title.", "*Title\\.*");
    md_is("## Sub ##", "*Sub*");
    md_is("- item.", "• item\\.");
    md_is("  * nested", "  • nested");
    md_is("> quote.", ">quote\\.");
    md_is("a\\*b", "a\\*b"); /* a Markdown escape stays one */
    md_is("```py\nx = a*b_c.\n```\nafter.", "```py\nx = a*b_c.\n```\nafter\\.");
    md_is("```\nunclosed", "```\nunclosed\n```");
    md_is("```\nhas ` tick\n```", "```\nhas \\` tick\n```");
    /* the same entity never nests; two italics in a row are split by a '\r' (else "__"
     * would read as underline) */
    md_is("*a _b_ c*", "_a \\_b\\_ c_");
    md_is("*a*_b_", "_a_\r_b_");
    md_is("[a [b](http://c)](http://d)", "[a \\[b](http://c)\\]\\(http://d\\)");
    md_is("", "");
}

TEST(escape_every_reserved_character)
{
    char *e = tg_escape_v2("_*[]()~`>#+-=|{}.!\\ ok");
    ASSERT_STR_EQ(e, "\\_\\*\\[\\]\\(\\)\\~\\`\\>\\#\\+\\-\\=\\|\\{\\}\\.\\!\\\\ ok");
    rt_free(e);
    e = tg_escape_v2(NULL);
    ASSERT_STR_EQ(e, "");
    rt_free(e);
}

TEST(utf16_length)
{
    ASSERT_EQ(tg_utf16_len("abc"), 3u);
    ASSERT_EQ(tg_utf16_len("é"), 1u);
    ASSERT_EQ(tg_utf16_len("a\xF0\x9F\x98\x80"), 3u); /* 😀 is a surrogate pair */
    ASSERT_EQ(tg_utf16_len(""), 0u);
}

TEST(short_text_is_one_part)
{
    char **r = NULL, **p = NULL;
    ASSERT_EQ(tg_split("hi there.", TG_MAX_MESSAGE, true, &r, &p), 1u);
    ASSERT_STR_EQ(r[0], "hi there\\.");
    ASSERT_STR_EQ(p[0], "hi there.");
    ASSERT_NULL(r[1]);
    tg_strv_free(r);
    tg_strv_free(p);
}

TEST(long_text_split_within_the_limit_after_escaping)
{
    /* 6000 dots: every one doubles when escaped, so the first cut must shrink */
    char *t = rt_xmalloc(6001);
    memset(t, '.', 6000);
    t[6000] = '\0';
    char **r = NULL, **p = NULL;
    size_t n = tg_split(t, TG_MAX_MESSAGE, true, &r, &p);
    ASSERT_GE(n, 3u);
    size_t dots = 0;
    for (size_t i = 0; i < n; i++) {
        ASSERT_LE(tg_utf16_len(r[i]), (size_t)TG_MAX_MESSAGE);
        ASSERT_LE(tg_utf16_len(p[i]), (size_t)TG_MAX_MESSAGE);
        for (const char *c = p[i]; *c; c++)
            dots += *c == '.';
    }
    ASSERT_GE(dots, 6000u); /* nothing lost (the " (i/n)" marks add a few) */
    ASSERT_NULL(r[n]);
    tg_strv_free(r);
    tg_strv_free(p);
    rt_free(t);
}

TEST(emoji_count_double_toward_the_limit)
{
    /* 3000 emoji = 6000 UTF-16 units: two parts at least, none over 4096 units */
    size_t n1 = 3000, one = 4;
    char *t = rt_xmalloc(n1 * one + 1);
    for (size_t i = 0; i < n1; i++)
        memcpy(t + i * one, "\xF0\x9F\x98\x80", one);
    t[n1 * one] = '\0';
    char **p = NULL;
    size_t n = tg_split(t, TG_MAX_MESSAGE, false, NULL, &p);
    ASSERT_GE(n, 2u);
    for (size_t i = 0; i < n; i++)
        ASSERT_LE(tg_utf16_len(p[i]), (size_t)TG_MAX_MESSAGE);
    tg_strv_free(p);
    rt_free(t);
}

/* ---- updates and the group rules ---- */

#define BOT_ID 7000001

static bool addressed_json(const char *json, bool require_mention, char **free_chats,
                           char **ignored)
{
    cJSON *u = cJSON_Parse(json);
    ASSERT_NOT_NULL(u);
    tg_update up;
    ASSERT_OK(tg_update_parse(u, "hermes_test_bot", BOT_ID, &up));
    tg_rules r = {.require_mention = require_mention,
                  .free_chats = free_chats,
                  .ignored_threads = ignored,
                  .bot_id = BOT_ID};
    bool a = tg_addressed(&up, &r);
    tg_update_fini(&up);
    cJSON_Delete(u);
    return a;
}

#define GROUP_MSG(extra)                                                                           \
    "{\"update_id\":5,\"message\":{\"message_id\":9,\"chat\":{\"id\":-100,\"type\":"               \
    "\"supergroup\",\"title\":\"T\"},\"from\":{\"id\":42,\"is_bot\":false,\"first_name\":"         \
    "\"Ann\"}," extra "}}"

TEST(private_chats_always_groups_on_a_mention)
{
    ASSERT_TRUE(addressed_json("{\"update_id\":1,\"message\":{\"message_id\":1,\"chat\":{"
                               "\"id\":42,\"type\":\"private\"},\"from\":{\"id\":42},"
                               "\"text\":\"hi\"}}",
                               true, NULL, NULL));
    ASSERT_FALSE(addressed_json(GROUP_MSG("\"text\":\"just chatting\""), true, NULL, NULL));
    ASSERT_TRUE(addressed_json(GROUP_MSG("\"text\":\"just chatting\""), false, NULL, NULL));
    char *free_chats[] = {"-100", NULL};
    ASSERT_TRUE(addressed_json(GROUP_MSG("\"text\":\"x\""), true, free_chats, NULL));
    /* @mention, case-insensitive */
    ASSERT_TRUE(addressed_json(GROUP_MSG("\"text\":\"@Hermes_Test_Bot hi\",\"entities\":[{"
                                         "\"type\":\"mention\",\"offset\":0,\"length\":16}]"),
                               true, NULL, NULL));
    /* another bot's mention */
    ASSERT_FALSE(addressed_json(GROUP_MSG("\"text\":\"@other_bot hi\",\"entities\":[{\"type\":"
                                          "\"mention\",\"offset\":0,\"length\":10}]"),
                                true, NULL, NULL));
    /* the name without an entity (inside a code span) is not a mention */
    ASSERT_FALSE(addressed_json(GROUP_MSG("\"text\":\"@hermes_test_bot\""), true, NULL, NULL));
    /* UTF-16 offsets: the emoji before the mention counts two units */
    ASSERT_TRUE(addressed_json(GROUP_MSG("\"text\":\"\xF0\x9F\x98\x80 @hermes_test_bot\","
                                         "\"entities\":[{\"type\":\"mention\",\"offset\":3,"
                                         "\"length\":16}]"),
                               true, NULL, NULL));
    /* an entity outside the text is ignored */
    ASSERT_FALSE(addressed_json(GROUP_MSG("\"text\":\"hi\",\"entities\":[{\"type\":\"mention\","
                                          "\"offset\":1,\"length\":99}]"),
                                true, NULL, NULL));
    /* text_mention of the bot's user */
    ASSERT_TRUE(addressed_json(GROUP_MSG("\"text\":\"Hermes look\",\"entities\":[{\"type\":"
                                         "\"text_mention\",\"offset\":0,\"length\":6,\"user\":"
                                         "{\"id\":7000001}}]"),
                               true, NULL, NULL));
    /* /command@bot and /command@other */
    ASSERT_TRUE(addressed_json(GROUP_MSG("\"text\":\"/new@hermes_test_bot\",\"entities\":[{"
                                         "\"type\":\"bot_command\",\"offset\":0,\"length\":20}]"),
                               true, NULL, NULL));
    ASSERT_FALSE(addressed_json(GROUP_MSG("\"text\":\"/new@other_bot\",\"entities\":[{\"type\":"
                                          "\"bot_command\",\"offset\":0,\"length\":14}]"),
                                true, NULL, NULL));
    /* a reply to the bot */
    ASSERT_TRUE(addressed_json(GROUP_MSG("\"text\":\"and?\",\"reply_to_message\":{\"message_id\""
                                         ":3,\"from\":{\"id\":7000001,\"is_bot\":true}}"),
                               true, NULL, NULL));
    ASSERT_FALSE(addressed_json(GROUP_MSG("\"text\":\"and?\",\"reply_to_message\":{\"message_id\""
                                          ":3,\"from\":{\"id\":43}}"),
                                true, NULL, NULL));
}

TEST(bots_and_ignored_topics_are_not_answered)
{
    ASSERT_FALSE(addressed_json("{\"update_id\":1,\"message\":{\"message_id\":1,\"chat\":{"
                                "\"id\":42,\"type\":\"private\"},\"from\":{\"id\":43,\"is_bot\":"
                                "true},\"text\":\"hi\"}}",
                                true, NULL, NULL));
    char *ignored[] = {"77", NULL};
    const char *topic = GROUP_MSG("\"text\":\"@hermes_test_bot\",\"entities\":[{\"type\":"
                                  "\"mention\",\"offset\":0,\"length\":16}],"
                                  "\"is_topic_message\":true,\"message_thread_id\":77");
    ASSERT_TRUE(addressed_json(topic, true, NULL, NULL));
    ASSERT_FALSE(addressed_json(topic, true, NULL, ignored));
    cJSON *u = cJSON_Parse(topic);
    tg_update up;
    ASSERT_OK(tg_update_parse(u, "hermes_test_bot", BOT_ID, &up));
    ASSERT_STR_EQ(up.thread_id, "77");
    ASSERT_STR_EQ(up.chat_id, "-100");
    ASSERT_STR_EQ(tg_chat_type(up.chat_type), "group");
    ASSERT_EQ(up.message_id, 9);
    ASSERT_EQ(up.update_id, 5);
    tg_update_fini(&up);
    cJSON_Delete(u);
}

TEST(media_and_bad_updates)
{
    cJSON *u = cJSON_Parse(
        "{\"update_id\":8,\"message\":{\"message_id\":1,\"chat\":{\"id\":42,\"type\":"
        "\"private\"},\"from\":{\"id\":42,\"username\":\"ann\"},\"caption\":\"look\",\"photo\":"
        "[{\"file_id\":\"small\"},{\"file_id\":\"big\",\"file_size\":1234}]}}");
    tg_update up;
    ASSERT_OK(tg_update_parse(u, "hermes_test_bot", BOT_ID, &up));
    ASSERT_EQ(up.media, TG_MEDIA_PHOTO);
    ASSERT_STR_EQ(up.file_id, "big");
    ASSERT_EQ(up.file_size, 1234);
    ASSERT_STR_EQ(up.text, "look");
    ASSERT_STR_EQ(up.from_name, "ann");
    tg_update_fini(&up);
    cJSON_Delete(u);

    u = cJSON_Parse("[1,2]");
    ASSERT_EQ(tg_update_parse(u, "b", 1, &up), -EINVAL);
    tg_update_fini(&up);
    cJSON_Delete(u);
    u = cJSON_Parse("{\"update_id\":3,\"edited_message\":{}}");
    ASSERT_OK(tg_update_parse(u, "b", 1, &up));
    ASSERT_FALSE(up.has_message);
    tg_rules r = {.require_mention = true};
    ASSERT_FALSE(tg_addressed(&up, &r));
    tg_update_fini(&up);
    cJSON_Delete(u);
}

TEST(state_round_trip)
{
    char *s = tg_state_format(7000001, 123456789012LL);
    int64_t b = 0, o = 0;
    ASSERT_OK(tg_state_parse(s, &b, &o));
    ASSERT_EQ(b, 7000001);
    ASSERT_EQ(o, 123456789012LL);
    rt_free(s);
    ASSERT_EQ(tg_state_parse("{\"offset\":\"x\"}", &b, &o), -EINVAL);
    ASSERT_EQ(tg_state_parse("not json", &b, &o), -EINVAL);
    ASSERT_EQ(tg_state_parse("{\"offset\":-5}", &b, &o), -EINVAL);
    ASSERT_EQ(tg_state_parse(NULL, &b, &o), -EINVAL);
}
