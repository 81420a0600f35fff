/*
 * test_matrix_rules — the Matrix adapter's pure parts, table-driven: mention detection,
 * gating and threading (gateway.md §8.5), reply fallbacks, message kinds, error
 * classification (status codes, errcodes, retry_after_ms), /versions, the state files,
 * Markdown → HTML and the event contents (§8.6).
 */
#include "hm_config.h"
#include "mx_int.h"
#include "rt_alloc.h"
#include "test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BOT "@hermes:example.org"

static bool mentioned(const char *content)
{
    cJSON *c = cJSON_Parse(content);
    ASSERT_NOT_NULL(c);
    bool yes = mx_is_mentioned(c, BOT, "hermes");
    cJSON_Delete(c);
    return yes;
}

TEST(mention_table)
{
    static const struct {
        const char *content;
        bool want;
    } cases[] = {
        {"{\"body\":\"hello all\"}", false},
        {"{\"body\":\"hi\",\"m.mentions\":{\"user_ids\":[\"@hermes:example.org\"]}}", true},
        {"{\"body\":\"hi\",\"m.mentions\":{\"user_ids\":[\"@other:example.org\"]}}", false},
        {"{\"body\":\"hi\",\"m.mentions\":{\"user_ids\":\"@hermes:example.org\"}}", false},
        {"{\"body\":\"ask @hermes:example.org please\"}", true},
        {"{\"body\":\"Hermes, what time is it?\"}", true},
        {"{\"body\":\"HERMES help\"}", true},
        {"{\"body\":\"hermesbot is another bot\"}", false},
        {"{\"body\":\"xhermes\"}", false},
        {"{\"body\":\"hermes_x\"}", false},
        {"{\"body\":\"(hermes)\"}", true},
        {"{\"body\":\"Hi\",\"formatted_body\":\"<a href=\\\"https://matrix.to/#/"
         "@hermes:example.org\\\">H</a>: hi\"}",
         true},
        {"{\"body\":\"Hi\",\"formatted_body\":\"<a href=\\\"https://matrix.to/#/"
         "%40hermes%3Aexample.org\\\">H</a>\"}",
         true},
        {"{\"body\":\"Hi\",\"formatted_body\":\"<a href=\\\"https://matrix.to/#/"
         "@other:example.org\\\">O</a>\"}",
         false},
        {"{}", false},
        {"{\"body\":42}", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (mentioned(cases[i].content) != cases[i].want)
            TEST_FAIL_("case %zu (%s): want %d", i, cases[i].content, cases[i].want);
    }
    ASSERT_FALSE(mx_is_mentioned(NULL, BOT, "hermes"));
    ASSERT_FALSE(mx_is_mentioned(NULL, NULL, NULL));
}

TEST(route_table)
{
    /* dm, mentioned, free, thread_known, thread?, require, auto, dm_threads →
     * accept, thread (T = the message's thread, E = its event id, - none), strip */
    static const struct {
        bool dm, mentioned, free_room, known;
        const char *thread;
        bool require, autot, dmt;
        bool accept;
        char want_thread;
        bool strip;
    } cases[] = {
        /* DMs: always answered, no thread unless dm_mention_threads + mention */
        {true, false, false, false, NULL, true, true, false, true, '-', false},
        {true, true, false, false, NULL, true, true, false, true, '-', true},
        {true, true, false, false, NULL, true, true, true, true, 'E', true},
        {true, false, false, false, NULL, true, true, true, true, '-', false},
        {true, false, false, false, "$t", true, true, false, true, 'T', false},
        /* rooms: mention required */
        {false, false, false, false, NULL, true, true, false, false, 'E', false},
        {false, true, false, false, NULL, true, true, false, true, 'E', true},
        {false, true, false, false, NULL, true, false, false, true, '-', true},
        /* MATRIX_REQUIRE_MENTION=false: everything, auto-threaded */
        {false, false, false, false, NULL, false, true, false, true, 'E', false},
        {false, true, false, false, NULL, false, true, false, true, 'E', false},
        /* free-response rooms */
        {false, false, true, false, NULL, true, true, false, true, 'E', false},
        {false, false, true, false, NULL, true, false, false, true, '-', false},
        /* threads: a known thread needs no mention, an unknown one does */
        {false, false, false, true, "$t", true, true, false, true, 'T', false},
        {false, false, false, false, "$t", true, true, false, false, 'T', false},
        {false, true, false, false, "$t", true, true, false, true, 'T', true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mx_route_in in = {.dm = cases[i].dm,
                          .mentioned = cases[i].mentioned,
                          .free_room = cases[i].free_room,
                          .thread_known = cases[i].known,
                          .thread = cases[i].thread,
                          .event_id = "$e",
                          .require_mention = cases[i].require,
                          .auto_thread = cases[i].autot,
                          .dm_mention_threads = cases[i].dmt};
        mx_route r = mx_route_decide(&in);
        const char *want = cases[i].want_thread == 'E'   ? "$e"
                           : cases[i].want_thread == 'T' ? "$t"
                                                         : NULL;
        bool thread_ok = (!want && !r.thread) || (want && r.thread && !strcmp(want, r.thread));
        if (r.accept != cases[i].accept || (r.accept && !thread_ok) ||
            r.strip_mention != cases[i].strip)
            TEST_FAIL_("case %zu: accept %d thread %s strip %d", i, r.accept,
                       r.thread ? r.thread : "-", r.strip_mention);
    }
}

TEST(relations_and_kinds)
{
    cJSON *c = cJSON_Parse("{\"msgtype\":\"m.text\",\"body\":\"x\",\"m.relates_to\":{"
                           "\"rel_type\":\"m.thread\",\"event_id\":\"$root\","
                           "\"m.in_reply_to\":{\"event_id\":\"$prev\"}}}");
    ASSERT_STR_EQ(mx_thread_of(c), "$root");
    ASSERT_STR_EQ(mx_reply_to_of(c), "$prev");
    ASSERT_FALSE(mx_is_edit(c));
    cJSON_Delete(c);
    c = cJSON_Parse("{\"m.relates_to\":{\"rel_type\":\"m.replace\",\"event_id\":\"$a\"}}");
    ASSERT_TRUE(mx_is_edit(c));
    ASSERT_NULL(mx_thread_of(c));
    ASSERT_NULL(mx_reply_to_of(c));
    cJSON_Delete(c);
    static const struct {
        const char *content;
        int kind;
    } kinds[] = {
        {"{\"msgtype\":\"m.text\"}", GW_KIND_TEXT},
        {"{\"msgtype\":\"m.image\"}", GW_KIND_PHOTO},
        {"{\"msgtype\":\"m.audio\"}", GW_KIND_AUDIO},
        {"{\"msgtype\":\"m.audio\",\"org.matrix.msc3245.voice\":{}}", GW_KIND_VOICE},
        {"{\"msgtype\":\"m.video\"}", GW_KIND_VIDEO},
        {"{\"msgtype\":\"m.file\"}", GW_KIND_DOCUMENT},
        {"{\"msgtype\":\"m.notice\"}", -1},
        {"{\"msgtype\":\"m.emote\"}", -1},
        {"{\"msgtype\":7}", -1},
        {"{}", -1},
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        c = cJSON_Parse(kinds[i].content);
        ASSERT_EQ(mx_kind_of(c), kinds[i].kind);
        cJSON_Delete(c);
    }
}

TEST(text_helpers)
{
    char *s = mx_strip_reply_fallback("> <@a:x> earlier\n> more\n\nthe answer");
    ASSERT_STR_EQ(s, "the answer");
    rt_free(s);
    s = mx_strip_reply_fallback("no quote");
    ASSERT_STR_EQ(s, "no quote");
    rt_free(s);
    s = mx_strip_reply_fallback("> only a quote");
    ASSERT_STR_EQ(s, "");
    rt_free(s);
    s = mx_strip_user_id("  @hermes:example.org what is @hermes:example.org? ", BOT);
    ASSERT_STR_EQ(s, "what is ?");
    rt_free(s);
    s = mx_localpart("@hermes:example.org");
    ASSERT_STR_EQ(s, "hermes");
    rt_free(s);
    s = mx_localpart("weird");
    ASSERT_STR_EQ(s, "weird");
    rt_free(s);
    s = mx_escape("!room:example.org/$x y");
    ASSERT_STR_EQ(s, "%21room%3Aexample.org%2F%24x%20y");
    rt_free(s);
}

static int classify(int err, int status, const char *body, int64_t *retry, char *code)
{
    rt_io_msg_http_done d;
    memset(&d, 0, sizeof(d));
    d.err = err;
    d.status = status;
    d.body = (char *)body;
    char why[256];
    return mx_classify(&d, why, sizeof(why), retry, code);
}

TEST(classify_errors)
{
    int64_t retry = -1;
    char code[64];
    ASSERT_EQ(classify(0, 200, "{}", &retry, code), MX_OK);
    ASSERT_EQ(classify(-ECANCELED, 0, NULL, &retry, code), MX_CANCEL);
    ASSERT_EQ(classify(-ECONNREFUSED, 0, NULL, &retry, code), MX_RETRY);
    ASSERT_EQ(classify(0, 500, "oops", &retry, code), MX_RETRY);
    ASSERT_EQ(classify(0, 502, NULL, &retry, code), MX_RETRY);
    ASSERT_EQ(classify(0, 429,
                       "{\"errcode\":\"M_LIMIT_EXCEEDED\",\"error\":\"Too Many Requests\","
                       "\"retry_after_ms\":2500}",
                       &retry, code),
              MX_RETRY);
    ASSERT_EQ(retry, 2500);
    ASSERT_STR_EQ(code, "M_LIMIT_EXCEEDED");
    ASSERT_EQ(classify(0, 401, "{\"errcode\":\"M_UNKNOWN_TOKEN\",\"error\":\"x\"}", &retry, code),
              MX_AUTH);
    ASSERT_EQ(classify(0, 401, "{\"errcode\":\"M_MISSING_TOKEN\"}", &retry, code), MX_AUTH);
    ASSERT_EQ(classify(0, 403, "{\"errcode\":\"M_FORBIDDEN\"}", &retry, code), MX_FAIL);
    ASSERT_STR_EQ(code, "M_FORBIDDEN");
    ASSERT_EQ(classify(0, 404, "not json", &retry, code), MX_FAIL);
    ASSERT_EQ(retry, 0);
    ASSERT_EQ(classify(0, 429, "{\"retry_after_ms\":-5}", &retry, code), MX_RETRY);
    ASSERT_EQ(retry, 0);
}

TEST(versions_and_state_files)
{
    ASSERT_TRUE(mx_versions_auth_media("{\"versions\":[\"v1.1\",\"v1.11\"]}"));
    ASSERT_TRUE(mx_versions_auth_media("{\"versions\":[\"v1.12\"]}"));
    ASSERT_TRUE(mx_versions_auth_media("{\"versions\":[\"v2.0\"]}"));
    ASSERT_FALSE(mx_versions_auth_media("{\"versions\":[\"r0.6.1\",\"v1.10\",\"v1.9\"]}"));
    ASSERT_FALSE(mx_versions_auth_media("garbage"));
    ASSERT_FALSE(mx_versions_auth_media(NULL));
    char *j = mx_token_render("https://hs", "@b:hs", "s72_1");
    char *t = mx_token_parse(j, "https://hs", "@b:hs");
    ASSERT_STR_EQ(t, "s72_1");
    rt_free(t);
    ASSERT_NULL(mx_token_parse(j, "https://other", "@b:hs")); /* another homeserver */
    ASSERT_NULL(mx_token_parse(j, "https://hs", "@c:hs"));    /* another account */
    ASSERT_NULL(mx_token_parse("{", "https://hs", "@b:hs"));
    rt_free(j);
    char *ids[] = {"$a", "$b", "$c"};
    j = mx_threads_render(ids, 3);
    size_t n = 0;
    char **back = mx_threads_parse(j, 2, &n); /* capped: the newest kept */
    ASSERT_EQ(n, 2);
    ASSERT_STR_EQ(back[0], "$b");
    ASSERT_STR_EQ(back[1], "$c");
    for (size_t i = 0; i < n; i++)
        rt_free(back[i]);
    rt_free(back);
    rt_free(j);
    ASSERT_NULL(mx_threads_parse("{\"not\":\"an array\"}", 10, &n));
    ASSERT_EQ(n, 0);
}

TEST(markdown_html)
{
    char *h = mx_markdown_html("**bold** and `code`");
    ASSERT_NOT_NULL(h);
    ASSERT_STR_EQ(h, "<strong>bold</strong> and <code>code</code>");
    rt_free(h);
    ASSERT_NULL(mx_markdown_html("plain words")); /* nothing the text does not say */
    h = mx_markdown_html("# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~");
    ASSERT_NOT_NULL(h);
    ASSERT_STR_CONTAINS(h, "<h1>Title</h1>");
    ASSERT_STR_CONTAINS(h, "<table>");
    ASSERT_STR_CONTAINS(h, "<del>gone</del>");
    rt_free(h);
    h = mx_markdown_html("[x](javascript:alert(1)) <script>alert(2)</script> *y*");
    ASSERT_NOT_NULL(h);
    ASSERT_NULL(strstr(h, "javascript:"));
    ASSERT_NULL(strstr(h, "<script>"));
    rt_free(h);
    h = mx_markdown_html("line one\nline **two**");
    ASSERT_STR_CONTAINS(h, "<br />");
    rt_free(h);
    h = mx_markdown_html("```python\nprint(1)\n```");
    ASSERT_STR_CONTAINS(h, "<pre><code class=\"language-python\">");
    rt_free(h);
    char *u = mx_unwrap_images("see ![chart](https://x/c.png) now");
    ASSERT_STR_EQ(u, "see https://x/c.png now");
    rt_free(u);
}

TEST(event_contents)
{
    mx_rel rel = {.thread = "$root", .reply_to = "$msg"};
    char *s = mx_content_text("**hi**", &rel);
    cJSON *c = cJSON_Parse(s);
    ASSERT_STR_EQ(cJSON_GetObjectItem(c, "msgtype")->valuestring, "m.text");
    ASSERT_STR_EQ(cJSON_GetObjectItem(c, "body")->valuestring, "**hi**");
    ASSERT_STR_EQ(cJSON_GetObjectItem(c, "format")->valuestring, "org.matrix.custom.html");
    ASSERT_STR_EQ(cJSON_GetObjectItem(c, "formatted_body")->valuestring, "<strong>hi</strong>");
    cJSON *r = cJSON_GetObjectItem(c, "m.relates_to");
    ASSERT_STR_EQ(cJSON_GetObjectItem(r, "rel_type")->valuestring, "m.thread");
    ASSERT_STR_EQ(cJSON_GetObjectItem(r, "event_id")->valuestring, "$root");
    ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(r, "is_falling_back")));
    ASSERT_STR_EQ(
        cJSON_GetObjectItem(cJSON_GetObjectItem(r, "m.in_reply_to"), "event_id")->valuestring,
        "$msg");
    cJSON_Delete(c);
    rt_free(s);
    s = mx_content_reaction("$m", "\xf0\x9f\x91\x80");
    c = cJSON_Parse(s);
    r = cJSON_GetObjectItem(c, "m.relates_to");
    ASSERT_STR_EQ(cJSON_GetObjectItem(r, "rel_type")->valuestring, "m.annotation");
    ASSERT_STR_EQ(cJSON_GetObjectItem(r, "key")->valuestring, "\xf0\x9f\x91\x80");
    cJSON_Delete(c);
    rt_free(s);
    s = mx_content_media("m.audio", "v.ogg", "mxc://hs/abc", "audio/ogg", 10, true, &rel);
    c = cJSON_Parse(s);
    ASSERT_NOT_NULL(cJSON_GetObjectItem(c, "org.matrix.msc3245.voice"));
    ASSERT_STR_EQ(cJSON_GetObjectItem(c, "url")->valuestring, "mxc://hs/abc");
    cJSON_Delete(c);
    rt_free(s);
    const char *mt, *mime;
    mx_media_type("/x/a.PNG", false, &mt, &mime);
    ASSERT_STR_EQ(mt, "m.image");
    mx_media_type("/x/a.mp3", true, &mt, &mime);
    ASSERT_STR_EQ(mt, "m.audio");
    mx_media_type("/x/a.weird", false, &mt, &mime);
    ASSERT_STR_EQ(mt, "m.file");
    ASSERT_STR_EQ(mime, "application/octet-stream");
}

static void clear_matrix_env(void)
{
    static const char *const vars[] = {"MATRIX_HOMESERVER",
                                       "MATRIX_ACCESS_TOKEN",
                                       "MATRIX_USER_ID",
                                       "MATRIX_PASSWORD",
                                       "MATRIX_DEVICE_ID",
                                       "MATRIX_ENCRYPTION",
                                       "MATRIX_REQUIRE_MENTION",
                                       "MATRIX_FREE_RESPONSE_ROOMS",
                                       "MATRIX_AUTO_THREAD",
                                       "MATRIX_DM_MENTION_THREADS",
                                       "MATRIX_REACTIONS",
                                       "MATRIX_HOME_ROOM",
                                       "MATRIX_HOME_CHANNEL",
                                       "HERMES_MATRIX_TEXT_BATCH_DELAY_SECONDS",
                                       "HERMES_MATRIX_TEXT_BATCH_SPLIT_DELAY_SECONDS"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
}

static int opts(const char *home, matrix_opts *o, char *err, size_t len)
{
    int e = 0;
    hm_config *cfg = hm_config_load(home, 0, NULL, &e);
    ASSERT_NOT_NULL(cfg);
    int rc = matrix_opts_from_config(cfg, home, o, err, len);
    hm_config_unref(cfg);
    return rc;
}

TEST(options_defaults_and_errors)
{
    const char *home = test_tmpdir();
    clear_matrix_env();
    matrix_opts o;
    char err[512];
    ASSERT_EQ(opts(home, &o, err, sizeof(err)), -ENOENT); /* not configured */
    setenv("MATRIX_HOMESERVER", "https://matrix.example.org", 1);
    ASSERT_EQ(opts(home, &o, err, sizeof(err)), -EINVAL); /* a homeserver, no credentials */
    ASSERT_STR_CONTAINS(err, "Matrix: need MATRIX_ACCESS_TOKEN or MATRIX_USER_ID + "
                             "MATRIX_PASSWORD");
    unsetenv("MATRIX_HOMESERVER");
    setenv("MATRIX_ACCESS_TOKEN", "syt_realtoken_0123456789", 1);
    ASSERT_EQ(opts(home, &o, err, sizeof(err)), -EINVAL);
    ASSERT_STR_CONTAINS(err, "MATRIX_HOMESERVER is not set");
    setenv("MATRIX_HOMESERVER", "matrix.example.org", 1);
    ASSERT_EQ(opts(home, &o, err, sizeof(err)), -EINVAL);
    ASSERT_STR_CONTAINS(err, "must start with https://");
    setenv("MATRIX_HOMESERVER", "https://matrix.example.org//", 1);
    ASSERT_OK(opts(home, &o, err, sizeof(err)));
    ASSERT_STR_EQ(o.homeserver, "https://matrix.example.org"); /* trailing / removed */
    ASSERT_TRUE(o.require_mention);
    ASSERT_TRUE(o.auto_thread);
    ASSERT_TRUE(o.reactions);
    ASSERT_FALSE(o.dm_mention_threads);
    ASSERT_FALSE(o.encryption);
    ASSERT_EQ(o.nfree_rooms, 0);
    ASSERT_EQ(o.batch_delay_ms, 600);
    ASSERT_EQ(o.batch_split_ms, 2000);
    ASSERT_STR_CONTAINS(o.store_dir, "/platforms/matrix/store");
    matrix_opts_fini(&o);
    /* the original's spellings: REQUIRE_MENTION/REACTIONS off only for false/0/no,
     * AUTO_THREAD on only for true/1/yes */
    setenv("MATRIX_REQUIRE_MENTION", "off", 1);
    setenv("MATRIX_REACTIONS", "No", 1);
    setenv("MATRIX_AUTO_THREAD", "on", 1);
    setenv("MATRIX_DM_MENTION_THREADS", "yes", 1);
    setenv("MATRIX_FREE_RESPONSE_ROOMS", " !a:x , !b:x ,, ", 1);
    setenv("MATRIX_HOME_ROOM", "!home:x", 1);
    setenv("HERMES_MATRIX_TEXT_BATCH_DELAY_SECONDS", "0", 1);
    ASSERT_OK(opts(home, &o, err, sizeof(err)));
    ASSERT_TRUE(o.require_mention);
    ASSERT_FALSE(o.reactions);
    ASSERT_FALSE(o.auto_thread);
    ASSERT_TRUE(o.dm_mention_threads);
    ASSERT_EQ(o.nfree_rooms, 2);
    ASSERT_STR_EQ(o.free_rooms[0], "!a:x");
    ASSERT_STR_EQ(o.free_rooms[1], "!b:x");
    ASSERT_STR_EQ(o.home_room, "!home:x");
    ASSERT_EQ(o.batch_delay_ms, 0);
    matrix_opts_fini(&o);
    setenv("HERMES_MATRIX_TEXT_BATCH_DELAY_SECONDS", "soon", 1);
    ASSERT_EQ(opts(home, &o, err, sizeof(err)), -EINVAL);
    ASSERT_STR_CONTAINS(err, "must be numbers of seconds");
    unsetenv("HERMES_MATRIX_TEXT_BATCH_DELAY_SECONDS");
    /* password login needs the user id, in full */
    unsetenv("MATRIX_ACCESS_TOKEN");
    setenv("MATRIX_PASSWORD", "a-real-password-123", 1);
    ASSERT_EQ(opts(home, &o, err, sizeof(err)), -EINVAL);
    ASSERT_STR_CONTAINS(err, "need MATRIX_ACCESS_TOKEN or MATRIX_USER_ID + MATRIX_PASSWORD");
    setenv("MATRIX_USER_ID", "hermes", 1);
    ASSERT_EQ(opts(home, &o, err, sizeof(err)), -EINVAL);
    ASSERT_STR_CONTAINS(err, "must be a full user id");
    setenv("MATRIX_USER_ID", "@hermes:example.org", 1);
    setenv("MATRIX_ENCRYPTION", "true", 1);
    ASSERT_OK(opts(home, &o, err, sizeof(err)));
    ASSERT_TRUE(o.encryption); /* read; E2EE itself: test_matrix_crypto* */
    ASSERT_STR_EQ(o.password, "a-real-password-123");
    matrix_opts_fini(&o);
    clear_matrix_env();
}

TEST(media_cache_paths)
{
    char *p = mx_cache_path("/c", GW_KIND_PHOTO, "image/jpeg", "x.jpg", "0123456789ab");
    ASSERT_NOT_NULL(p);
    ASSERT_STR_CONTAINS(p, "/c/images/img_0123456789ab.jpg");
    rt_free(p);
    p = mx_cache_path("/c", GW_KIND_DOCUMENT, "application/pdf", "report.pdf", "0123456789ab");
    ASSERT_NOT_NULL(p);
    ASSERT_STR_CONTAINS(p, "/c/documents/doc_0123456789ab_report.pdf");
    rt_free(p);
    p = mx_cache_path("/c", GW_KIND_DOCUMENT, NULL, "../../etc/passwd", "0123456789ab");
    ASSERT_TRUE(p == NULL || strstr(p, "..") == NULL); /* no way out of the cache */
    rt_free(p);
    ASSERT_TRUE(mx_looks_like_image("\x89PNG\r\n\x1a\n0000", 12));
    ASSERT_TRUE(mx_looks_like_image("\xff\xd8\xff\xe0", 4));
    ASSERT_FALSE(mx_looks_like_image("<html>", 6));
    ASSERT_FALSE(mx_looks_like_image("", 0));
}
