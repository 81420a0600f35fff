/*
 * test.h — the unit-test harness (after libuv's task.h).
 *
 *   TEST(name) { ASSERT_EQ(2, 1 + 1); }
 *
 * Each case runs in its own forked child with an alarm() timeout, so a crash, a hang or a
 * leak (under LSan) fails that case alone. Failed asserts print both operands and abort.
 * Run `./test_x --list` to list cases, `./test_x name...` to run some.
 */
#ifndef TEST_H
#define TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*test_fn)(void);

/* A fresh directory for this case, removed (recursively) when the case ends. */
const char *test_tmpdir(void);
void test__register(const char *name, test_fn fn, const char *file);

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void test_reg_##name(void)                                 \
    {                                                                                              \
        test__register(#name, test_##name, __FILE__);                                              \
    }                                                                                              \
    static void test_##name(void)

#define TEST_FAIL_(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        fflush(stderr);                                                                            \
        abort();                                                                                   \
    } while (0)

#define ASSERT_CMP_(a, op, b)                                                                      \
    do {                                                                                           \
        int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                                              \
        if (!(a_ op b_))                                                                           \
            TEST_FAIL_("assertion failed: %s %s %s (%" PRId64 " vs %" PRId64 ")", #a, #op, #b, a_, \
                       b_);                                                                        \
    } while (0)

#define ASSERT(x)                                                                                  \
    do {                                                                                           \
        if (!(x))                                                                                  \
            TEST_FAIL_("assertion failed: %s", #x);                                                \
    } while (0)
#define ASSERT_TRUE(x)  ASSERT(x)
#define ASSERT_FALSE(x) ASSERT(!(x))
#define ASSERT_EQ(a, b) ASSERT_CMP_(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_CMP_(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_CMP_(a, <, b)
#define ASSERT_LE(a, b) ASSERT_CMP_(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_CMP_(a, >, b)
#define ASSERT_GE(a, b) ASSERT_CMP_(a, >=, b)
#define ASSERT_NULL(p)                                                                             \
    do {                                                                                           \
        if ((p) != NULL)                                                                           \
            TEST_FAIL_("expected NULL: %s", #p);                                                   \
    } while (0)
#define ASSERT_NOT_NULL(p)                                                                         \
    do {                                                                                           \
        if ((p) == NULL)                                                                           \
            TEST_FAIL_("unexpected NULL: %s", #p);                                                 \
    } while (0)
#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            TEST_FAIL_("strings differ: %s vs %s (\"%s\" vs \"%s\")", #a, #b, a_ ? a_ : "(null)",  \
                       b_ ? b_ : "(null)");                                                        \
    } while (0)
#define ASSERT_STR_CONTAINS(hay, needle)                                                           \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!h_ || !strstr(h_, n_))                                                                \
            TEST_FAIL_("%s does not contain \"%s\" (\"%s\")", #hay, n_, h_ ? h_ : "(null)");       \
    } while (0)
/* For commands returning 0 / -errno. */
#define ASSERT_OK(x)                                                                               \
    do {                                                                                           \
        int r_ = (int)(x);                                                                         \
        if (r_ != 0)                                                                               \
            TEST_FAIL_("%s failed: %d", #x, r_);                                                   \
    } while (0)

#endif /* TEST_H */
