/*
 * ak_timer — the timers an adapter actor keeps: one slot per kind (reconnect, rate limit,
 * typing, …), re-arming a kind replaces its pending timer, and a timeout that fires after
 * its slot was re-armed or cancelled is recognised and ignored. Plus the small random
 * numbers adapters need for jitter and multipart boundaries.
 *
 * A timer is an RT_MSG_TIMEOUT to the adapter with tag kind << 56 | generation.
 *
 * Threads: the owning actor's behaviour only (no locking).
 */
#ifndef AK_TIMER_H
#define AK_TIMER_H

#include "rt_actor.h"
#include "rt_timer.h"

#include <stdbool.h>
#include <stdint.h>

#define AK_TIMER_KINDS 16 /* kinds 1..15 */

typedef struct ak_timers {
    uint64_t gen[AK_TIMER_KINDS]; /* the live timer's generation, 0: none */
    uint64_t id[AK_TIMER_KINDS];  /* its rt_timer id, for cancelling */
    uint64_t seq;
} ak_timers;

/* Arm kind (1..AK_TIMER_KINDS-1) to fire at self after ms (< 0: at once), replacing it. */
void ak_timer_arm(rt_ctx *cx, rt_ref self, ak_timers *t, int kind, int64_t ms);
void ak_timer_cancel(rt_ctx *cx, ak_timers *t, int kind);
static inline bool ak_timer_armed(const ak_timers *t, int kind)
{
    return t->gen[kind] != 0;
}
/* The kind of a fired timeout when it is its slot's live timer (the slot is then free), or 0
 * (re-armed or cancelled since, or not one of ours). */
int ak_timer_fired(ak_timers *t, const rt_msg_timeout *m);

/* xorshift64*: *state must start non-zero. */
uint64_t ak_rand(uint64_t *state);

#endif /* AK_TIMER_H */
