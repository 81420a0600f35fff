/* gw_seen: the bounded set of updates already handled. */
#include "gw_seen.h"
#include "rt_alloc.h"
#include "test.h"

#include <stdlib.h>

TEST(remembers_and_forgets_the_oldest_first)
{
    gw_seen *s = gw_seen_new(3);
    uint64_t a = gw_seen_key("matrix", "$a"), b = gw_seen_key("matrix", "$b"),
             c = gw_seen_key("matrix", "$c"), d = gw_seen_key("matrix", "$d");
    ASSERT_TRUE(gw_seen_add(s, a));
    ASSERT_FALSE(gw_seen_add(s, a)); /* already there */
    ASSERT_TRUE(gw_seen_add(s, b));
    ASSERT_TRUE(gw_seen_add(s, c));
    ASSERT_TRUE(gw_seen_add(s, d)); /* a goes */
    ASSERT_FALSE(gw_seen_has(s, a));
    ASSERT_TRUE(gw_seen_has(s, b) && gw_seen_has(s, c) && gw_seen_has(s, d));
    ASSERT_EQ(3, (int)gw_seen_count(s));
    gw_seen_free(s);
}

TEST(platforms_are_separate)
{
    ASSERT_TRUE(gw_seen_key("matrix", "42") != gw_seen_key("telegram", "42"));
    ASSERT_TRUE(gw_seen_key("ab", "c") != gw_seen_key("a", "bc"));
    ASSERT_TRUE(gw_seen_key("", "") != 0);
}

/* Many keys through a small set, against a plain model of it: deletions with backward
 * shifting must never lose or invent a key. */
TEST(matches_a_model_under_churn)
{
    enum { CAP = 257, N = 200000 };
    gw_seen *s = gw_seen_new(CAP);
    uint64_t *model = rt_xcalloc(N, sizeof(*model));
    srand(7);
    size_t n = 0;
    for (size_t i = 0; i < N; i++) {
        /* keys from a small universe so that repeats happen, hashed to cluster */
        uint64_t k = (uint64_t)(rand() % 2000) + 1;
        bool in_model = false;
        for (size_t j = n > CAP ? n - CAP : 0; j < n; j++)
            in_model |= model[j] == k;
        ASSERT_EQ(in_model, gw_seen_has(s, k));
        bool added = gw_seen_add(s, k);
        ASSERT_EQ(!in_model, added);
        if (added)
            model[n++] = k;
    }
    for (size_t j = n - CAP; j < n; j++)
        ASSERT_TRUE(gw_seen_has(s, model[j]));
    ASSERT_EQ(CAP, (int)gw_seen_count(s));
    rt_free(model);
    gw_seen_free(s);
}
