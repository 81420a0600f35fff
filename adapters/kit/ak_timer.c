/*
 * ak_timer — see ak_timer.h.
 */
#include "ak_timer.h"

#define GEN_MASK ((1ULL << 56) - 1)

void ak_timer_cancel(rt_ctx *cx, ak_timers *t, int kind)
{
    if (t->id[kind])
        (void)rt_timer_cancel(cx, t->id[kind]); /* false: already fired, ignored by gen */
    t->gen[kind] = 0;
    t->id[kind] = 0;
}

void ak_timer_arm(rt_ctx *cx, rt_ref self, ak_timers *t, int kind, int64_t ms)
{
    ak_timer_cancel(cx, t, kind);
    t->gen[kind] = ++t->seq & GEN_MASK;
    uint64_t tag = ((uint64_t)kind << 56) | t->gen[kind];
    t->id[kind] = rt_send_after(cx, self, rt_timeout_new(tag), ms < 0 ? 0 : ms);
}

int ak_timer_fired(ak_timers *t, const rt_msg_timeout *m)
{
    int kind = (int)(m->tag >> 56);
    if (kind <= 0 || kind >= AK_TIMER_KINDS || !t->gen[kind] || t->gen[kind] != (m->tag & GEN_MASK))
        return 0;
    t->gen[kind] = 0;
    t->id[kind] = 0;
    return kind;
}

uint64_t ak_rand(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ULL;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}
