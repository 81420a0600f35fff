/*
 * The SSE parser: WHATWG event-stream rules, each sample stream fed whole, split at every
 * byte boundary, split at every pair of boundaries (short streams) and byte by byte, with
 * the same events expected every time; the per-event cap; sticky errors; callback stops.
 */
#include "rt_sse.h"

#include "rt_alloc.h"
#include "test.h"

#include <errno.h>

/* Events rendered as "type|data|id|retry\n" so whole sequences compare as one string. */
typedef struct sink {
    rt_buf out;
    int n;
    int stop_after; /* return 1 from the callback after this many events; 0: never */
} sink;

static int on_ev(void *arg, const rt_sse_event *ev)
{
    sink *s = arg;
    ASSERT_EQ(strlen(ev->data) <= ev->data_len, 1);
    ASSERT_EQ(ev->data[ev->data_len], '\0');
    rt_buf_append_str(&s->out, ev->type);
    rt_buf_append(&s->out, "|", 1);
    rt_buf_append(&s->out, ev->data, ev->data_len);
    rt_buf_printf(&s->out, "|%s|%lld\n", ev->id, (long long)ev->retry_ms);
    s->n++;
    return s->stop_after && s->n >= s->stop_after ? 1 : 0;
}

/* Feed `in` cut at the given offsets (ascending, within the input); returns the final rc. */
static int feed_cuts(const char *in, size_t len, const size_t *cuts, int ncuts, size_t max,
                     char **out)
{
    rt_sse p;
    sink s = {0};
    rt_buf_init(&s.out, 1 << 20);
    rt_sse_init(&p, max);
    size_t at = 0;
    int rc = 0;
    for (int i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        rc = rt_sse_feed(&p, in + at, end - at, on_ev, &s);
        at = end;
    }
    rt_sse_fini(&p);
    *out = rt_buf_steal(&s.out, NULL);
    rt_buf_fini(&s.out);
    return rc;
}

/* The stream must give `want` (and rc) however it is split. */
static void check_stream(const char *in, size_t len, const char *want, int want_rc, size_t max)
{
    char *got = NULL;
    ASSERT_EQ(want_rc, feed_cuts(in, len, NULL, 0, max, &got));
    ASSERT_STR_EQ(want, got);
    rt_free(got);
    for (size_t i = 0; i <= len; i++) {
        size_t cut[1] = {i};
        ASSERT_EQ(want_rc, feed_cuts(in, len, cut, 1, max, &got));
        if (strcmp(want, got) != 0)
            TEST_FAIL_("split at %zu: want \"%s\" got \"%s\"", i, want, got);
        rt_free(got);
    }
    if (len <= 80) {
        for (size_t i = 0; i <= len; i++)
            for (size_t j = i; j <= len; j++) {
                size_t cut[2] = {i, j};
                ASSERT_EQ(want_rc, feed_cuts(in, len, cut, 2, max, &got));
                if (strcmp(want, got) != 0)
                    TEST_FAIL_("split at %zu,%zu: want \"%s\" got \"%s\"", i, j, want, got);
                rt_free(got);
            }
    }
    size_t *bytes = rt_xcalloc(len + 1, sizeof(*bytes));
    for (size_t i = 0; i < len; i++)
        bytes[i] = i + 1;
    ASSERT_EQ(want_rc, feed_cuts(in, len, bytes, len ? (int)len - 1 : 0, max, &got));
    ASSERT_STR_EQ(want, got);
    rt_free(got);
    rt_free(bytes);
}

#define CHECK(in, want)              check_stream((in), sizeof(in) - 1, (want), 0, 1024)
#define CHECK_CAP(in, want, rc, max) check_stream((in), sizeof(in) - 1, (want), (rc), (max))

TEST(basic_event)
{
    CHECK("data: hello\n\n", "message|hello||-1\n");
    CHECK("data:hello\n\n", "message|hello||-1\n");
    CHECK("data:  two spaces\n\n", "message| two spaces||-1\n");
}

TEST(multiline_data_event_and_id)
{
    CHECK("event: add\ndata: 73857293\ndata: 2\nid: 7\n\n", "add|73857293\n2|7|-1\n");
    CHECK("data: a\n\ndata: b\n\n", "message|a||-1\nmessage|b||-1\n");
}

TEST(line_endings_crlf_lf_cr_mixed)
{
    CHECK("data: a\r\n\r\n", "message|a||-1\n");
    CHECK("data: a\r\rdata: b\r\r", "message|a||-1\nmessage|b||-1\n");
    CHECK("data: a\r\ndata: b\n\r\n", "message|a\nb||-1\n");
    /* CR then CR-LF: the line ends, then an empty line dispatches, and the LF is eaten. */
    CHECK("data: x\r\r\ndata: y\n\n", "message|x||-1\nmessage|y||-1\n");
    /* LF then CR: two separate line ends. */
    CHECK("data: x\n\rdata: z\n\n", "message|x||-1\nmessage|z||-1\n");
}

TEST(comments_are_ignored)
{
    CHECK(": keep-alive\n\ndata: x\n: in between\ndata: y\n\n", "message|x\ny||-1\n");
    CHECK(":\r\n:x\rdata: z\r\n\r\n", "message|z||-1\n");
}

TEST(field_without_colon_and_unknown_fields)
{
    /* "data" alone is a data line with an empty value: the event has empty data. */
    CHECK("data\n\n", "message|||-1\n");
    CHECK("data\ndata\n\n", "message|\n||-1\n");
    CHECK("foo: bar\nDATA: no\ndata: z\n\n", "message|z||-1\n");
    /* A colon inside the value stays. */
    CHECK("data: a:b: c\n\n", "message|a:b: c||-1\n");
}

TEST(event_without_data_is_not_dispatched)
{
    CHECK("event: x\n\ndata: y\n\n", "message|y||-1\n");
    CHECK("event: x\nid: 4\n\ndata: y\n\n", "message|y|4|-1\n");
}

TEST(id_persists_resets_and_rejects_nul)
{
    CHECK("id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
          "message|a|1|-1\nmessage|b|1|-1\nmessage|c||-1\n");
    static const char nul[] = "id: 9\ndata: a\n\nid: x\0y\ndata: b\n\n";
    check_stream(nul, sizeof(nul) - 1, "message|a|9|-1\nmessage|b|9|-1\n", 0, 1024);
}

TEST(retry_digits_only)
{
    CHECK("retry: 1500\ndata: a\n\n", "message|a||1500\n");
    CHECK("retry: 15x\ndata: a\n\n", "message|a||-1\n");
    CHECK("retry:\ndata: a\n\nretry: 20\n\ndata: b\n\n", "message|a||-1\nmessage|b||20\n");
    CHECK("retry: 99999999999999999999999\ndata: a\n\n", "message|a||9223372036854775807\n");
}

TEST(bom_only_at_the_start)
{
    CHECK("\xEF\xBB\xBF"
          "data: a\n\n",
          "message|a||-1\n");
    CHECK("\xEF\xBB\xBF:comment\ndata: a\n\n", "message|a||-1\n");
    CHECK("data: \xEF\xBB\xBF"
          "b\n\n",
          "message|\xEF\xBB\xBF"
          "b||-1\n");
    /* A second BOM makes the field name unknown, so that line is ignored. */
    CHECK("\xEF\xBB\xBF\xEF\xBB\xBF"
          "data: a\n\ndata: b\n\n",
          "message|b||-1\n");
    /* A partial BOM is content: "\xEF\xBB" + "data" is an unknown field. */
    CHECK("\xEF\xBB"
          "data: a\n\ndata: c\n\n",
          "message|c||-1\n");
}

TEST(unfinished_event_is_discarded)
{
    CHECK("data: a\n\ndata: b\n", "message|a||-1\n");
    CHECK("data: a\n\ndata: b", "message|a||-1\n");
    CHECK("", "");
}

TEST(data_may_contain_nul_bytes)
{
    static const char in[] = "data: a\0b\n\n";
    char *got = NULL;
    ASSERT_EQ(0, feed_cuts(in, sizeof(in) - 1, NULL, 0, 64, &got));
    ASSERT_EQ(0, memcmp(got, "message|a\0b||-1\n", 16));
    rt_free(got);
}

TEST(cap_on_data_and_lines)
{
    /* Exactly at the cap (8 bytes of data) passes; one more fails. */
    CHECK_CAP("data: 12345678\n\n", "message|12345678||-1\n", 0, 8);
    CHECK_CAP("data: 1234\ndata: 567\n\n", "message|1234\n567||-1\n", 0, 8);
    CHECK_CAP("data: a\n\ndata: 123456789\n\n", "message|a||-1\n", -E2BIG, 8);
    CHECK_CAP("data: 1234\ndata: 5678\n\n", "", -E2BIG, 8);
    /* A long unknown-field line goes over the line cap too. */
    CHECK_CAP("data: a\n\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n", "message|a||-1\n", -E2BIG, 8);
    /* Comments are skipped, never buffered: any length is fine. */
    CHECK_CAP(": xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\ndata: ok\n\n", "message|ok||-1\n", 0,
              8);
}

TEST(error_is_sticky_and_callback_can_stop)
{
    rt_sse p;
    sink s = {0};
    rt_buf_init(&s.out, 4096);
    rt_sse_init(&p, 4);
    ASSERT_EQ(-E2BIG, rt_sse_feed(&p, "data: 123456\n\n", 14, on_ev, &s));
    ASSERT_EQ(-E2BIG, rt_sse_feed(&p, "data: a\n\n", 9, on_ev, &s));
    ASSERT_EQ(0, s.n);
    rt_sse_fini(&p);

    rt_sse_init(&p, 64);
    s.stop_after = 1;
    ASSERT_EQ(1, rt_sse_feed(&p, "data: a\n\ndata: b\n\n", 18, on_ev, &s));
    ASSERT_EQ(1, s.n);
    ASSERT_EQ(1, rt_sse_feed(&p, "data: c\n\n", 9, on_ev, &s));
    ASSERT_EQ(1, s.n);
    rt_sse_fini(&p);
    rt_buf_fini(&s.out);
}

TEST(last_id_accessor)
{
    rt_sse p;
    sink s = {0};
    rt_buf_init(&s.out, 4096);
    rt_sse_init(&p, 64);
    ASSERT_STR_EQ("", rt_sse_last_id(&p));
    ASSERT_OK(rt_sse_feed(&p, "id: abc\n\n", 9, on_ev, &s));
    ASSERT_STR_EQ("abc", rt_sse_last_id(&p));
    ASSERT_EQ(0, s.n);
    rt_sse_fini(&p);
    rt_buf_fini(&s.out);
}

/* A realistic LLM stream (OpenAI chat completions style) split every possible way. */
TEST(llm_stream_every_split)
{
    static const char in[] = ": OPENROUTER PROCESSING\r\n\r\n"
                             "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n"
                             "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n"
                             "event: usage\ndata: {\"tokens\":3}\nid: u1\n\n"
                             "data: [DONE]\n\n";
    static const char want[] = "message|{\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}||-1\n"
                               "message|{\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}||-1\n"
                               "usage|{\"tokens\":3}|u1|-1\n"
                               "message|[DONE]|u1|-1\n";
    check_stream(in, sizeof(in) - 1, want, 0, 4096);
}
