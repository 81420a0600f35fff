/* Buffers, blobs, the u64 map, number parsing, log redaction and rate limiting. */
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_map.h"
#include "rt_util.h"
#include "test.h"

#include <errno.h>

TEST(buf_limit_is_hard)
{
    rt_buf b;
    rt_buf_init(&b, 10);
    ASSERT_OK(rt_buf_append_str(&b, "hello"));
    ASSERT_OK(rt_buf_append_str(&b, "world"));
    ASSERT_EQ(-E2BIG, rt_buf_append_str(&b, "!"));
    ASSERT_EQ(10, b.len);
    ASSERT_STR_EQ("helloworld", rt_buf_cstr(&b));
    rt_buf_consume(&b, 5);
    ASSERT_STR_EQ("world", rt_buf_cstr(&b));
    ASSERT_EQ(-E2BIG, rt_buf_printf(&b, "%s", "123456"));
    ASSERT_OK(rt_buf_printf(&b, "%d", 12345));
    ASSERT_STR_EQ("world12345", rt_buf_cstr(&b));
    size_t n;
    char *s = rt_buf_steal(&b, &n);
    ASSERT_EQ(10, n);
    ASSERT_STR_EQ("world12345", s);
    ASSERT_EQ(0, b.len);
    rt_free(s);
    rt_buf_fini(&b);
}

TEST(blob_refcount)
{
    rt_blob *b = rt_blob_new("abc", 3);
    ASSERT_EQ(2, rt_blob_ref(b)->refs);
    rt_blob_unref(b);
    ASSERT_STR_EQ("abc", b->data);
    rt_blob_unref(b);
    rt_blob_unref(NULL);
}

TEST(map_put_get_delete_many)
{
    rt_map m;
    rt_map_init(&m);
    for (uint64_t k = 1; k <= 100000; k++)
        rt_map_put(&m, k * 7919, (void *)(uintptr_t)k);
    ASSERT_EQ(100000, m.n);
    for (uint64_t k = 1; k <= 100000; k += 2)
        ASSERT_EQ(k, (uintptr_t)rt_map_del(&m, k * 7919));
    ASSERT_EQ(50000, m.n);
    for (uint64_t k = 1; k <= 100000; k++) {
        void *v = rt_map_get(&m, k * 7919);
        if (k % 2)
            ASSERT_NULL(v);
        else
            ASSERT_EQ(k, (uintptr_t)v);
    }
    ASSERT_NULL(rt_map_del(&m, 3));
    rt_map_fini(&m);
}

TEST(parse_numbers_and_bools)
{
    int64_t v;
    bool b;
    ASSERT_OK(rt_parse_i64("42", 0, 100, &v));
    ASSERT_EQ(42, v);
    ASSERT_EQ(-EINVAL, rt_parse_i64("42x", 0, 100, &v));
    ASSERT_EQ(-EINVAL, rt_parse_i64("", 0, 100, &v));
    ASSERT_EQ(-ERANGE, rt_parse_i64("101", 0, 100, &v));
    ASSERT_EQ(-ERANGE, rt_parse_i64("99999999999999999999", 0, INT64_MAX, &v));
    ASSERT_OK(rt_parse_bool("TRUE", &b));
    ASSERT_TRUE(b);
    ASSERT_OK(rt_parse_bool("off", &b));
    ASSERT_FALSE(b);
    ASSERT_EQ(-EINVAL, rt_parse_bool("maybe", &b));
}

TEST(redact_masks_secrets)
{
    char out[64];
    ASSERT_STR_EQ("***", rt_log_redact("short-secret", out, sizeof(out)));
    ASSERT_STR_EQ("sk-abc...wxyz",
                  rt_log_redact("sk-abcdefghijklmnopqrstuvwxyz", out, sizeof(out)));
    ASSERT_STR_EQ("***", rt_log_redact(NULL, out, sizeof(out)));
}

static int captured;
static char last_line[512];
static void capture(const char *line, size_t len, void *arg)
{
    (void)arg;
    captured++;
    snprintf(last_line, sizeof(last_line), "%.*s", (int)len, line);
}

TEST(log_levels_and_rate_limit)
{
    rt_log_capture(capture, NULL);
    rt_log_set_level(RT_LOG_WARN);
    RT_INFO("test", "hidden");
    ASSERT_EQ(0, captured);
    RT_WARN("test", "shown key=%d", 7);
    ASSERT_EQ(1, captured);
    ASSERT_STR_CONTAINS(last_line, "WARN  test: shown key=7");
    for (int i = 0; i < 100; i++)
        RT_LOG_LIMITED(RT_LOG_WARN, "test", 60000, "flapping");
    ASSERT_EQ(2, captured);
    rt_log_set_debug("mx");
    rt_log_set_level(RT_LOG_DEBUG);
    RT_DEBUG("sched", "not enabled");
    ASSERT_EQ(2, captured);
    RT_DEBUG("mx", "enabled");
    ASSERT_EQ(3, captured);
    ASSERT_EQ(-EINVAL, rt_log_set_level_name("loud"));
    ASSERT_OK(rt_log_set_level_name("error"));
    ASSERT_EQ(RT_LOG_ERROR, rt_log_level());
    rt_log_set_debug(NULL);
    rt_log_capture(NULL, NULL);
}

TEST(strerror_names)
{
    ASSERT_STR_EQ("too large", rt_strerror(-E2BIG));
    ASSERT_STR_EQ("timed out", rt_strerror(-ETIMEDOUT));
}
