/* Chase-Lev deque: sequential semantics, and a stress run with concurrent thieves in which
 * every item must be taken exactly once. */
#include "rt_alloc.h"
#include "rt_deque.h"
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>

TEST(lifo_for_owner_fifo_for_thief)
{
    rt_deque d;
    rt_deque_init(&d, 4);
    for (uintptr_t i = 1; i <= 100; i++) /* forces several grows */
        rt_deque_push(&d, (void *)i);
    ASSERT_EQ(1, (uintptr_t)rt_deque_steal(&d));
    ASSERT_EQ(100, (uintptr_t)rt_deque_take(&d));
    ASSERT_EQ(2, (uintptr_t)rt_deque_steal(&d));
    for (uintptr_t i = 99; i >= 3; i--)
        ASSERT_EQ(i, (uintptr_t)rt_deque_take(&d));
    ASSERT_NULL(rt_deque_take(&d));
    ASSERT_NULL(rt_deque_steal(&d));
    rt_deque_fini(&d);
}

#define ITEMS   2000000
#define THIEVES 3

static rt_deque sd;
/* Items are 2..ITEMS+1: the value 1 is RT_DEQUE_ABORT. */
static _Atomic uint8_t *seen;
static _Atomic bool owner_done;
static _Atomic uint64_t stolen;

static void mark(uintptr_t v)
{
    uint8_t prev = atomic_fetch_add_explicit(&seen[v], 1, memory_order_relaxed);
    if (prev != 0) {
        fprintf(stderr, "item %lu taken twice\n", (unsigned long)v);
        abort();
    }
}

static void *thief(void *arg)
{
    (void)arg;
    for (;;) {
        void *p = rt_deque_steal(&sd);
        if (p == RT_DEQUE_ABORT)
            continue;
        if (p) {
            mark((uintptr_t)p);
            atomic_fetch_add_explicit(&stolen, 1, memory_order_relaxed);
            continue;
        }
        if (atomic_load_explicit(&owner_done, memory_order_acquire) &&
            !rt_deque_maybe_nonempty(&sd))
            return NULL;
    }
}

TEST(stress_concurrent_stealers_no_loss_no_duplicate)
{
    seen = rt_xcalloc(ITEMS + 2, 1);
    rt_deque_init(&sd, 16);
    pthread_t th[THIEVES];
    for (int i = 0; i < THIEVES; i++)
        pthread_create(&th[i], NULL, thief, NULL);
    uintptr_t next = 2;
    /* The owner pushes in bursts and takes some back, racing the thieves for the last item. */
    while (next <= ITEMS + 1) {
        for (int k = 0; k < 64 && next <= ITEMS + 1; k++)
            rt_deque_push(&sd, (void *)next++);
        for (int k = 0; k < 40; k++) {
            void *p = rt_deque_take(&sd);
            if (!p)
                break;
            mark((uintptr_t)p);
        }
    }
    void *p;
    while ((p = rt_deque_take(&sd)))
        mark((uintptr_t)p);
    atomic_store_explicit(&owner_done, true, memory_order_release);
    for (int i = 0; i < THIEVES; i++)
        pthread_join(th[i], NULL);
    for (uintptr_t i = 2; i <= ITEMS + 1; i++)
        if (seen[i] != 1)
            TEST_FAIL_("item %lu seen %d times", (unsigned long)i, seen[i]);
    ASSERT_GT(stolen, 0); /* the thieves really competed */
    rt_deque_fini(&sd);
    rt_free((void *)seen);
}
