/*
 * ak_dedupe — the small memories an adapter keeps to recognise what it has seen: a ring of
 * 64-bit hashes (recent message keys, threads the bot is in, messages it reacted to), the
 * FNV-1a hash those keys are made of, and where the adapter's events go (the gateway it was
 * given, else the one registered as GW_NAME).
 *
 * A ring holds at most n hashes; adding to a full ring forgets the oldest. A hash is never 0
 * (0 marks an empty slot), so ak_hash* set the low bit.
 *
 * Threads: a ring belongs to its adapter actor (no locking); ak_hash* are pure.
 */
#ifndef AK_DEDUPE_H
#define AK_DEDUPE_H

#include "rt_actor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* FNV-1a of s (NULL: ""), never 0. */
uint64_t ak_hash(const char *s);
/* FNV-1a of "a:b" (NULL parts: ""), never 0 — "<channel>:<ts>" keys without a buffer. */
uint64_t ak_hash2(const char *a, const char *b);

/* Whether h is among the n slots of ring. */
bool ak_ring_has(const uint64_t *ring, size_t n, uint64_t h);
/* Remember h (nothing when it is there already), replacing the oldest slot; *next is the
 * ring's write position (starts at 0). */
void ak_ring_add(uint64_t *ring, size_t n, size_t *next, uint64_t h);
/* Forget h (its slot becomes empty). Returns whether it was there. */
bool ak_ring_del(uint64_t *ring, size_t n, uint64_t h);

/* The gateway the adapter reports to: gw when set (tests), else whoever is registered as
 * GW_NAME, else 0. Any actor. */
rt_ref ak_gateway_of(rt_ctx *cx, rt_ref gw);

#endif /* AK_DEDUPE_H */
