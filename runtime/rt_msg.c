/*
 * rt_msg — message envelopes from per-thread freelists.
 *
 * Size classes are multiples of 32 bytes up to 512. Each thread keeps a LIFO freelist per
 * class, capped at POOL_CAP entries; beyond the cap (or for larger messages) memory goes
 * back to malloc. A message allocated on one thread and freed on another simply moves to
 * the freeing thread's list: with ping-pong traffic both lists stay warm.
 *
 * With RT_POOL=0 every envelope is a plain malloc/free so ASan sees each one.
 */
#include "rt_msg.h"

#include "rt_alloc.h"
#include "rt_util.h"

#include <pthread.h>
#include <string.h>

#define POOL_CLASSES 16 /* 32, 64, ..., 512 */
#define POOL_QUANTUM 32
#define POOL_CAP     4096

typedef struct pool_node pool_node;
struct pool_node {
    pool_node *next;
};

typedef struct pool {
    pool_node *head[POOL_CLASSES];
    uint32_t count[POOL_CLASSES];
} pool;

#if RT_POOL
static _Thread_local pool tl_pool;
static _Thread_local int tl_pool_registered;
static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_thread_exit(void *arg)
{
    (void)arg;
    rt_msg_pool_flush();
}

static void pool_key_init(void)
{
    (void)pthread_key_create(&pool_key, pool_thread_exit); /* failure: lists leak at exit */
}

static void pool_register(void)
{
    pthread_once(&pool_once, pool_key_init);
    /* Any non-NULL value makes the destructor run at thread exit. */
    (void)pthread_setspecific(pool_key, &tl_pool);
    tl_pool_registered = 1;
}
#endif

#if RT_POOL
static inline size_t size_class(size_t size)
{
    return (size + POOL_QUANTUM - 1) / POOL_QUANTUM - 1;
}
#endif

void *rt_msg_new(uint32_t type, size_t size)
{
    RT_ASSERT(size >= sizeof(rt_msg) && size <= UINT32_MAX);
    rt_msg *m;
#if RT_POOL
    size_t c = size_class(size);
    if (c < POOL_CLASSES && tl_pool.head[c]) {
        pool_node *n = tl_pool.head[c];
        tl_pool.head[c] = n->next;
        tl_pool.count[c]--;
        m = (rt_msg *)(void *)n;
    } else {
        m = rt_xmalloc(c < POOL_CLASSES ? (c + 1) * POOL_QUANTUM : size);
    }
#else
    m = rt_xmalloc(size);
#endif
    memset(m, 0, size);
    m->type = type;
    m->size = (uint32_t)size;
    return m;
}

static void envelope_free(rt_msg *m)
{
#if RT_POOL
    size_t c = size_class(m->size);
    if (c < POOL_CLASSES && tl_pool.count[c] < POOL_CAP) {
        if (RT_UNLIKELY(!tl_pool_registered))
            pool_register();
        pool_node *n = (pool_node *)(void *)m;
        n->next = tl_pool.head[c];
        tl_pool.head[c] = n;
        tl_pool.count[c]++;
        return;
    }
#endif
    rt_free(m);
}

void rt_msg_free(rt_msg *m)
{
    if (!m)
        return;
    if (m->drop)
        m->drop(m);
    envelope_free(m);
}

void rt_msg_pool_flush(void)
{
#if RT_POOL
    for (int c = 0; c < POOL_CLASSES; c++) {
        pool_node *n = tl_pool.head[c];
        while (n) {
            pool_node *next = n->next;
            rt_free(n);
            n = next;
        }
        tl_pool.head[c] = NULL;
        tl_pool.count[c] = 0;
    }
#endif
}
