/* The MPSC mailbox lane: emptiness rules and per-producer FIFO under concurrent pushes. */
#include "rt_alloc.h"
#include "rt_mbox.h"
#include "test.h"

#include <pthread.h>

typedef struct item {
    rt_msg hdr;
    int producer;
    int seq;
} item;

static rt_qnode *_Atomic head;
static rt_qnode *tail;
static rt_qnode stub;

TEST(empty_and_order)
{
    rt_mbox_init(&head, &tail, &stub);
    ASSERT_TRUE(rt_mbox_is_empty(&head, tail, &stub));
    ASSERT_NULL(rt_mbox_pop(&head, &tail, &stub));
    item a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.seq = 1;
    b.seq = 2;
    rt_mbox_push(&head, &a.hdr.q);
    ASSERT_FALSE(rt_mbox_is_empty(&head, tail, &stub));
    rt_mbox_push(&head, &b.hdr.q);
    ASSERT_EQ(1, ((item *)rt_mbox_pop(&head, &tail, &stub))->seq);
    ASSERT_FALSE(rt_mbox_is_empty(&head, tail, &stub));
    ASSERT_EQ(2, ((item *)rt_mbox_pop(&head, &tail, &stub))->seq);
    ASSERT_TRUE(rt_mbox_is_empty(&head, tail, &stub));
    ASSERT_NULL(rt_mbox_pop(&head, &tail, &stub));
    rt_mbox_push(&head, &a.hdr.q);
    ASSERT_EQ(1, ((item *)rt_mbox_pop(&head, &tail, &stub))->seq);
    ASSERT_TRUE(rt_mbox_is_empty(&head, tail, &stub));
}

#define PRODUCERS 4
#define PER       250000

static void *producer(void *arg)
{
    int p = (int)(intptr_t)arg;
    for (int i = 0; i < PER; i++) {
        item *it = rt_xmalloc(sizeof(*it));
        it->producer = p;
        it->seq = i;
        rt_mbox_push(&head, &it->hdr.q);
    }
    return NULL;
}

TEST(per_producer_fifo_under_contention)
{
    rt_mbox_init(&head, &tail, &stub);
    pthread_t th[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        pthread_create(&th[i], NULL, producer, (void *)(intptr_t)i);
    int next[PRODUCERS] = {0};
    int got = 0;
    while (got < PRODUCERS * PER) {
        item *it = (item *)rt_mbox_pop(&head, &tail, &stub);
        if (!it)
            continue;
        if (it->seq != next[it->producer])
            TEST_FAIL_("producer %d: got %d, expected %d", it->producer, it->seq,
                       next[it->producer]);
        next[it->producer]++;
        got++;
        rt_free(it);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    ASSERT_TRUE(rt_mbox_is_empty(&head, tail, &stub));
}
