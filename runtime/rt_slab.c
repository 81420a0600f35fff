/*
 * rt_slab — see rt_slab.h.
 */
#include "rt_slab.h"

#include "rt_alloc.h"
#include "rt_flist.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define SLOT      64
#define CLASSES   16 /* 64 … 1024 */
#define CHUNK     (64 * 1024)
#define LOCAL_CAP 8192 /* slots per class kept on a thread before handing them over */

#if RT_POOL
typedef struct cache {
    rt_flist free[CLASSES];
    char *bump;  /* unused tail of this thread's current chunk */
    size_t left; /* bytes left at bump */
} cache;

static _Thread_local cache tl;
static _Thread_local int tl_registered;

static rt_flist_global global_free[CLASSES] = {
#define G_ RT_FLIST_GLOBAL_INIT
    G_, G_, G_, G_, G_, G_, G_, G_, G_, G_, G_, G_, G_, G_, G_, G_,
#undef G_
};
static pthread_mutex_t chunk_lock = PTHREAD_MUTEX_INITIALIZER;
static void *chunks; /* every chunk, linked through its first word: keeps them reachable
                        for LeakSanitizer (guarded by chunk_lock) */
static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void thread_exit(void *arg)
{
    (void)arg;
    for (int c = 0; c < CLASSES; c++)
        rt_flist_release(&tl.free[c], &global_free[c]);
}

static void key_init(void)
{
    (void)pthread_key_create(&exit_key, thread_exit); /* failure: lists stay unused at exit */
}

static void register_thread(void)
{
    pthread_once(&key_once, key_init);
    (void)pthread_setspecific(exit_key, &tl);
    tl_registered = 1;
}

static void *carve(size_t bytes)
{
    if (tl.left < bytes) {
        char *chunk = rt_xaligned(SLOT, CHUNK);
        pthread_mutex_lock(&chunk_lock);
        *(void **)chunk = chunks;
        chunks = chunk;
        pthread_mutex_unlock(&chunk_lock);
        /* The remainder of the old chunk (< one slot of this class) is abandoned. */
        tl.bump = chunk + SLOT;
        tl.left = CHUNK - SLOT;
    }
    void *p = tl.bump;
    tl.bump += bytes;
    tl.left -= bytes;
    return p;
}
#endif /* RT_POOL */

void *rt_slab_alloc(size_t size)
{
#if RT_POOL
    size_t c = size ? (size + SLOT - 1) / SLOT - 1 : 0;
    if (c < CLASSES) {
        if (!tl_registered)
            register_thread();
        void *p = rt_flist_pop(&tl.free[c], &global_free[c]);
        return p ? p : carve((c + 1) * SLOT);
    }
#endif
    return rt_xaligned(64, size);
}

void rt_slab_free(void *p, size_t size)
{
    if (!p)
        return;
#if RT_POOL
    size_t c = size ? (size + SLOT - 1) / SLOT - 1 : 0;
    if (c < CLASSES) {
        if (!tl_registered)
            register_thread();
        rt_flist_push(&tl.free[c], p, LOCAL_CAP / 2, &global_free[c]);
        return;
    }
#endif
    (void)size;
    rt_free(p);
}
