/*
 * rt_slab — 64-byte-aligned blocks in size classes of 64 bytes (64 … 1024), for actors.
 *
 * Actors are allocated and freed by the hundred thousand and want cache-line alignment;
 * posix_memalign wastes about 100 bytes around each such block. Slabs carve 64 KiB chunks
 * into slots and keep freed slots on per-thread lists (LIFO, warm in cache), spilling to a
 * global list beyond a cap so memory freed on one thread is reused by the others. Chunks
 * are never returned to the system. Larger blocks fall back to posix_memalign.
 *
 * With HERMES_POOL=OFF (RT_POOL=0) every block is its own aligned allocation, so ASan sees
 * each one.
 *
 * Threads: any thread.
 */
#ifndef RT_SLAB_H
#define RT_SLAB_H

#include <stddef.h>

/* A 64-byte-aligned block of at least size bytes (uninitialised). Aborts on OOM. */
void *rt_slab_alloc(size_t size);
/* Free a block from rt_slab_alloc; size must be the size it was allocated with. */
void rt_slab_free(void *p, size_t size);

#endif /* RT_SLAB_H */
