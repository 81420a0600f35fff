/*
 * rt_msg — message envelopes from per-thread freelists.
 *
 * Size classes are multiples of 32 bytes up to 512. Each thread keeps a LIFO freelist per
 * class. Messages often flow one way (the reactor or one busy sender allocates, other
 * threads free), so a list over POOL_CAP spills half of itself to a global list, and an
 * empty list refills from there before calling malloc. Larger messages use malloc.
 *
 * With RT_POOL=0 every envelope is a plain malloc/free so ASan sees each one.
 */
#include "rt_msg.h"

#include "rt_alloc.h"
#include "rt_flist.h"
#include "rt_util.h"

#include <pthread.h>
#include <string.h>

#define POOL_CLASSES 16 /* 32, 64, ..., 512 */
#define POOL_QUANTUM 32
#define POOL_CAP     4096 /* a thread's list beyond this goes to the global stack */

#if RT_POOL
static _Thread_local rt_flist tl_pool[POOL_CLASSES];
static _Thread_local int tl_pool_registered;
static rt_flist_global global_pool[POOL_CLASSES] = {
#define G_ RT_FLIST_GLOBAL_INIT
    G_, G_, G_, G_, G_, G_, G_, G_, G_, G_, G_, G_, G_, G_, G_, G_,
#undef G_
};
static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_thread_exit(void *arg)
{
    (void)arg;
    rt_msg_pool_flush();
}

static void pool_key_init(void)
{
    (void)pthread_key_create(&pool_key, pool_thread_exit); /* failure: lists stay unused */
}

static void pool_register(void)
{
    pthread_once(&pool_once, pool_key_init);
    /* Any non-NULL value makes the destructor run at thread exit. */
    (void)pthread_setspecific(pool_key, tl_pool);
    tl_pool_registered = 1;
}

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
    m = c < POOL_CLASSES ? rt_flist_pop(&tl_pool[c], &global_pool[c]) : NULL;
    if (!m)
        m = rt_xmalloc(c < POOL_CLASSES ? (c + 1) * POOL_QUANTUM : size);
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
    if (c < POOL_CLASSES) {
        if (RT_UNLIKELY(!tl_pool_registered))
            pool_register();
        rt_flist_push(&tl_pool[c], m, POOL_CAP / 2, &global_pool[c]);
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
    /* Keep the memory for other threads rather than returning it to malloc. */
    for (int c = 0; c < POOL_CLASSES; c++)
        rt_flist_release(&tl_pool[c], &global_pool[c]);
#endif
}
