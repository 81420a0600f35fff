/*
 * rt_timer — one-shot timers that deliver a message.
 *
 * A binary heap ordered by deadline (ties in arming order) on a dedicated timer thread, and
 * an id map for O(log n) cancellation, so 100,000 pending timers cost a few MB and
 * microseconds. A timer that fires sends its message like any other sender (normal lane).
 *
 * Threads: any thread.
 */
#ifndef RT_TIMER_H
#define RT_TIMER_H

#include "rt_actor.h"

#include <stdbool.h>
#include <stdint.h>

/* Deliver m to `to` after ms milliseconds. Takes ownership of m. Returns the timer id
 * (never 0). If the receiver has ended by then, m is a dead letter. */
uint64_t rt_send_after(rt_ctx *cx, rt_ref to, rt_msg *m, int64_t ms);
/* Cancel: true if the timer had not fired (its message is freed), false otherwise. */
bool rt_timer_cancel(rt_ctx *cx, uint64_t timer_id);

#endif /* RT_TIMER_H */
