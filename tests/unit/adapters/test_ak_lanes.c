/*
 * ak_lanes (adapters/kit): items of one lane start in order and one at a time; different
 * lanes run in parallel up to the cap; a pause holds every lane until its end; a retry keeps
 * its place at the front of its lane and frees its in-flight slot; delivery ids already queued
 * or recently finished are recognised; a full queue and unknown items get clear errors.
 */
#include "ak_lanes.h"
#include "test.h"

#include <errno.h>
#include <string.h>

/* Items are ints whose address is the handle. */
static int it[64];

static size_t ready(ak_lanes *l, int64_t now, void **out)
{
    return ak_lanes_ready(l, now, out, 64);
}

TEST(order_within_a_lane)
{
    ak_lanes l;
    ak_lanes_init(&l, 8, 100);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(ak_lanes_push(&l, "chat-a", 0, &it[i]), 0);
    void *out[64];
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(ready(&l, 0, out), 1u);
        ASSERT_TRUE(out[0] == &it[i]);
        ASSERT_EQ(ready(&l, 0, out), 0u); /* one at a time in a lane */
        ASSERT_EQ(ak_lanes_done(&l, &it[i]), 0);
    }
    ASSERT_EQ(ak_lanes_count(&l), 0u);
    ASSERT_EQ(ready(&l, 0, out), 0u);
    ak_lanes_fini(&l, NULL, NULL);
}

TEST(lanes_run_in_parallel)
{
    ak_lanes l;
    ak_lanes_init(&l, 8, 100);
    ASSERT_EQ(ak_lanes_push(&l, "slow", 0, &it[0]), 0);
    ASSERT_EQ(ak_lanes_push(&l, "slow", 0, &it[1]), 0);
    ASSERT_EQ(ak_lanes_push(&l, "fast", 0, &it[2]), 0);
    ASSERT_EQ(ak_lanes_push(&l, "fast", 0, &it[3]), 0);
    void *out[64];
    ASSERT_EQ(ready(&l, 0, out), 2u);
    ASSERT_TRUE(out[0] == &it[0] && out[1] == &it[2]);
    /* the fast lane goes on while the slow one's first item is still in flight */
    ASSERT_EQ(ak_lanes_done(&l, &it[2]), 0);
    ASSERT_EQ(ready(&l, 0, out), 1u);
    ASSERT_TRUE(out[0] == &it[3]);
    ASSERT_EQ(ak_lanes_done(&l, &it[3]), 0);
    ASSERT_EQ(ak_lanes_inflight(&l), 1);
    ASSERT_TRUE(ak_lanes_busy(&l, &it[0]));
    ASSERT_FALSE(ak_lanes_busy(&l, &it[1]));
    ASSERT_EQ(ak_lanes_done(&l, &it[0]), 0);
    ASSERT_EQ(ready(&l, 0, out), 1u);
    ASSERT_TRUE(out[0] == &it[1]);
    ak_lanes_fini(&l, NULL, NULL);
}

TEST(at_most_parallel_in_flight)
{
    ak_lanes l;
    ak_lanes_init(&l, 3, 100);
    char name[16];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        ASSERT_EQ(ak_lanes_push(&l, name, 0, &it[i]), 0);
    }
    void *out[64];
    ASSERT_EQ(ready(&l, 0, out), 3u);
    ASSERT_TRUE(out[0] == &it[0] && out[1] == &it[1] && out[2] == &it[2]);
    ASSERT_EQ(ready(&l, 0, out), 0u);
    ASSERT_EQ(ak_lanes_inflight(&l), 3);
    ASSERT_EQ(ak_lanes_done(&l, &it[1]), 0);
    ASSERT_EQ(ready(&l, 0, out), 1u);
    ASSERT_TRUE(out[0] == &it[3]); /* the next lane in arrival order */
    /* cap in the ready call itself */
    ASSERT_EQ(ak_lanes_done(&l, &it[0]), 0);
    ASSERT_EQ(ak_lanes_done(&l, &it[2]), 0);
    ASSERT_EQ(ak_lanes_ready(&l, 0, out, 1), 1u);
    ASSERT_EQ(ak_lanes_inflight(&l), 2);
    ak_lanes_fini(&l, NULL, NULL);
}

TEST(pause_holds_every_lane)
{
    ak_lanes l;
    ak_lanes_init(&l, 8, 100);
    ASSERT_EQ(ak_lanes_push(&l, "a", 0, &it[0]), 0);
    ASSERT_EQ(ak_lanes_push(&l, "b", 0, &it[1]), 0);
    void *out[64];
    ASSERT_EQ(ready(&l, 100, out), 2u);
    ak_lanes_pause(&l, 5000);
    ak_lanes_pause(&l, 1000); /* an earlier end changes nothing */
    ASSERT_EQ(ak_lanes_done(&l, &it[0]), 0);
    ASSERT_EQ(ak_lanes_push(&l, "a", 0, &it[2]), 0);
    ASSERT_EQ(ak_lanes_push(&l, "c", 0, &it[3]), 0);
    ASSERT_EQ(ak_lanes_next_due(&l, 200), 5000);
    ASSERT_EQ(ready(&l, 200, out), 0u);
    ASSERT_EQ(ready(&l, 4999, out), 0u);
    ASSERT_EQ(ready(&l, 5000, out), 2u); /* a and c; b is still in flight */
    ASSERT_TRUE(out[0] == &it[2] || out[1] == &it[2]);
    ASSERT_EQ(ak_lanes_next_due(&l, 5000), 0);
    ak_lanes_fini(&l, NULL, NULL);
}

TEST(a_retry_keeps_its_lane_in_order)
{
    ak_lanes l;
    ak_lanes_init(&l, 1, 100);
    ASSERT_EQ(ak_lanes_push(&l, "a", 0, &it[0]), 0);
    ASSERT_EQ(ak_lanes_push(&l, "a", 0, &it[1]), 0);
    ASSERT_EQ(ak_lanes_push(&l, "b", 0, &it[2]), 0);
    void *out[64];
    ASSERT_EQ(ready(&l, 0, out), 1u);
    ASSERT_TRUE(out[0] == &it[0]);
    ASSERT_EQ(ak_lanes_retry(&l, &it[0], 1000), 0);
    ASSERT_TRUE(ak_lanes_busy(&l, &it[0]));
    ASSERT_EQ(ak_lanes_inflight(&l), 0); /* the wait frees the slot ... */
    ASSERT_EQ(ready(&l, 10, out), 1u);
    ASSERT_TRUE(out[0] == &it[2]); /* ... for another lane, never for a's next item */
    ASSERT_EQ(ak_lanes_next_due(&l, 10), 1000);
    ASSERT_EQ(ready(&l, 2000, out), 0u);       /* due, but the cap (1) is taken by b */
    ASSERT_EQ(ak_lanes_next_due(&l, 2000), 0); /* no spinning timer for it */
    ASSERT_EQ(ak_lanes_done(&l, &it[2]), 0);
    ASSERT_EQ(ready(&l, 2000, out), 1u);
    ASSERT_TRUE(out[0] == &it[0]);            /* the retry before its lane's next item */
    ASSERT_EQ(ak_lanes_again(&l, &it[0]), 0); /* changed: at once */
    ASSERT_EQ(ready(&l, 2000, out), 1u);
    ASSERT_TRUE(out[0] == &it[0]);
    ASSERT_EQ(ak_lanes_done(&l, &it[0]), 0);
    ASSERT_EQ(ready(&l, 2000, out), 1u);
    ASSERT_TRUE(out[0] == &it[1]);
    ak_lanes_fini(&l, NULL, NULL);
}

TEST(split_items_go_after_their_original)
{
    ak_lanes l;
    ak_lanes_init(&l, 4, 100);
    ASSERT_EQ(ak_lanes_push(&l, "a", 7, &it[0]), 0);
    ASSERT_EQ(ak_lanes_push(&l, "a", 8, &it[1]), 0);
    void *out[64];
    ASSERT_EQ(ready(&l, 0, out), 1u);
    ASSERT_EQ(ak_lanes_insert_after(&l, &it[0], 7, &it[5]), 0);
    ASSERT_EQ(ak_lanes_insert_after(&l, &it[5], 7, &it[6]), 0);
    ASSERT_EQ(ak_lanes_insert_after(&l, &it[9], 7, &it[7]), -ENOENT);
    ASSERT_EQ(ak_lanes_again(&l, &it[0]), 0);
    int want[] = {0, 5, 6, 1};
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(ready(&l, 0, out), 1u);
        ASSERT_TRUE(out[0] == &it[want[i]]);
        ASSERT_EQ(ak_lanes_done(&l, out[0]), 0);
    }
    ak_lanes_fini(&l, NULL, NULL);
}

TEST(deliveries_are_not_queued_twice)
{
    ak_lanes l;
    ak_lanes_init(&l, 4, 100);
    int err = 1;
    bool perm = true;
    ASSERT_EQ(ak_lanes_claim(&l, 0, NULL, NULL), AK_LANES_NEW);
    ASSERT_EQ(ak_lanes_claim(&l, 42, &err, &perm), AK_LANES_NEW);
    ASSERT_EQ(ak_lanes_push(&l, "a", 42, &it[0]), 0);
    ASSERT_EQ(ak_lanes_claim(&l, 42, &err, &perm), AK_LANES_QUEUED);
    void *out[64];
    ASSERT_EQ(ready(&l, 0, out), 1u);
    ASSERT_EQ(ak_lanes_claim(&l, 42, &err, &perm), AK_LANES_QUEUED); /* in flight */
    ASSERT_EQ(ak_lanes_done(&l, &it[0]), 0);
    ak_lanes_remember(&l, 42, -ETIMEDOUT, true);
    ASSERT_EQ(ak_lanes_claim(&l, 42, &err, &perm), AK_LANES_DONE);
    ASSERT_EQ(err, -ETIMEDOUT);
    ASSERT_TRUE(perm);
    ak_lanes_remember(&l, 42, 0, false); /* updated, not a second slot */
    ASSERT_EQ(ak_lanes_claim(&l, 42, &err, &perm), AK_LANES_DONE);
    ASSERT_EQ(err, 0);
    ASSERT_FALSE(perm);
    /* the ring forgets the oldest */
    for (uint64_t d = 1000; d < 1000 + AK_LANES_RECENT; d++)
        ak_lanes_remember(&l, d, 0, false);
    ASSERT_EQ(ak_lanes_claim(&l, 42, NULL, NULL), AK_LANES_NEW);
    ASSERT_EQ(ak_lanes_claim(&l, 1000 + AK_LANES_RECENT - 1, NULL, NULL), AK_LANES_DONE);
    ak_lanes_fini(&l, NULL, NULL);
}

static void count_free(void *item, void *arg)
{
    (void)item;
    (*(int *)arg)++;
}

TEST(bad_input_and_a_full_queue)
{
    ak_lanes l;
    ak_lanes_init(&l, 0, 2); /* parallel 0 means 1 */
    ASSERT_EQ(ak_lanes_push(&l, "a", 0, NULL), -EINVAL);
    ASSERT_EQ(ak_lanes_push(&l, NULL, 0, &it[0]), 0); /* NULL lane: "" */
    ASSERT_EQ(ak_lanes_push(&l, "b", 0, &it[1]), 0);
    ASSERT_EQ(ak_lanes_push(&l, "c", 0, &it[2]), -ENOBUFS);
    ASSERT_EQ(ak_lanes_insert_after(&l, &it[0], 0, &it[3]), -ENOBUFS);
    ASSERT_EQ(ak_lanes_insert_after(&l, NULL, 0, &it[3]), -EINVAL);
    ASSERT_EQ(ak_lanes_done(&l, &it[0]), -ENOENT);     /* not started */
    ASSERT_EQ(ak_lanes_retry(&l, &it[9], 5), -ENOENT); /* unknown */
    ASSERT_EQ(ak_lanes_again(&l, &it[9]), -ENOENT);
    void *out[64];
    ASSERT_EQ(ready(&l, 0, out), 1u); /* parallel 1 */
    ASSERT_TRUE(ak_lanes_has(&l, &it[1]));
    ASSERT_FALSE(ak_lanes_has(&l, &it[2]));
    int freed = 0;
    ak_lanes_fini(&l, count_free, &freed);
    ASSERT_EQ(freed, 2);
    ASSERT_EQ(ak_lanes_count(&l), 0u);
    ASSERT_EQ(ready(&l, 0, out), 0u);
}

TEST(many_lanes_round_robin)
{
    /* a lane with many items does not starve the others: after each of its items it goes to
     * the back */
    ak_lanes l;
    ak_lanes_init(&l, 1, 100);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(ak_lanes_push(&l, "busy", 0, &it[i]), 0);
    ASSERT_EQ(ak_lanes_push(&l, "quiet", 0, &it[10]), 0);
    void *out[64];
    ASSERT_EQ(ready(&l, 0, out), 1u);
    ASSERT_TRUE(out[0] == &it[0]);
    ASSERT_EQ(ak_lanes_done(&l, &it[0]), 0);
    ASSERT_EQ(ready(&l, 0, out), 1u);
    ASSERT_TRUE(out[0] == &it[10]);
    ak_lanes_fini(&l, NULL, NULL);
}

TEST(a_delivery_sent_in_part_is_marked)
{
    ak_lanes l;
    ak_lanes_init(&l, 4, 100);
    ASSERT_EQ(ak_lanes_push(&l, "a", 5, &it[0]), 0);
    ASSERT_EQ(ak_lanes_push(&l, "a", 5, &it[1]), 0);
    ASSERT_EQ(ak_lanes_push(&l, "b", 6, &it[2]), 0);
    ASSERT_FALSE(ak_lanes_partial(&l, &it[1]));
    void *out[64];
    ASSERT_EQ(ready(&l, 0, out), 2u);
    ASSERT_EQ(ak_lanes_done(&l, &it[0]), 0);
    ak_lanes_part_sent(&l, 5);
    ak_lanes_part_sent(&l, 0); /* no delivery: nothing */
    ASSERT_TRUE(ak_lanes_partial(&l, &it[1]));
    ASSERT_FALSE(ak_lanes_partial(&l, &it[2])); /* another delivery */
    ASSERT_FALSE(ak_lanes_partial(&l, &it[9])); /* unknown */
    ak_lanes_fini(&l, NULL, NULL);
}
