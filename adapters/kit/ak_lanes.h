/*
 * ak_lanes — an adapter's outgoing sends in per-chat lanes (issue 13: a slow chat must not
 * delay another chat, and one reply must never be posted twice).
 *
 * The adapter owns its items (posts, uploads, edits); ak_lanes only orders them:
 *   - a lane is a chat (any string key: channel id, chat id, "channel:thread"); the items of
 *     one lane start one at a time, in the order they were queued (a reply's chunks stay in
 *     order, a retry keeps its place at the front of its lane);
 *   - at most `parallel` lanes have an item in flight at once (ak_lanes_ready hands out no
 *     more); an item waiting for its retry holds its lane but not an in-flight slot;
 *   - a pause (a 429 / global rate limit with a deadline) holds every lane: nothing starts
 *     before it ends (what is in flight finishes);
 *   - delivery de-duplication: every item carries the gateway outbox delivery id it belongs to
 *     (0: none). ak_lanes_claim tells whether a delivery is new, already queued or in flight
 *     (the outbox resent it after its ack timer ran out while it waited here: do not queue it
 *     again, the pending ack answers both), or finished recently (ack again with the
 *     remembered result, do not send again). Finished deliveries are remembered in a ring of
 *     AK_LANES_RECENT (the adapter calls ak_lanes_remember when it acks an outcome a resend
 *     must not change: sent, refused, maybe sent — not a failure the outbox should retry);
 *   - partly sent deliveries (ak_lanes_part_sent / ak_lanes_partial): once a part of a
 *     delivery is posted, the rest must not fail retryably (the outbox resends whole
 *     deliveries).
 *
 * Invariants: an item is in exactly one lane; a busy item is the head of its lane; nbusy
 * (items in flight, not waiting) <= parallel; nitems <= max_items; lanes without items are
 * freed. Every walk is bounded by nitems + nlanes.
 *
 * Threads: an ak_lanes belongs to its adapter actor (no locking). Time is whatever clock the
 * adapter passes (monotonic ns), so tests drive it by hand.
 */
#ifndef AK_LANES_H
#define AK_LANES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AK_LANES_RECENT 512 /* finished deliveries remembered */

typedef struct ak_lane ak_lane;
typedef struct ak_lane_ent ak_lane_ent;

typedef struct ak_lanes_done_rec {
    uint64_t delivery; /* 0: empty slot */
    int err;
    bool permanent;
} ak_lanes_done_rec;

typedef struct ak_lanes {
    ak_lane *lanes, *lanes_tail; /* lanes with items, in round-robin order */
    size_t nlanes, nitems, max_items;
    int parallel, nbusy;
    int64_t paused_until; /* nothing starts before this (0: no pause) */
    ak_lanes_done_rec recent[AK_LANES_RECENT];
    size_t recent_next;
} ak_lanes;

/* What ak_lanes_claim found for a delivery. */
enum ak_lanes_claim {
    AK_LANES_NEW = 0, /* not known: queue it */
    AK_LANES_QUEUED,  /* queued or in flight: drop the copy, the pending ack answers */
    AK_LANES_DONE,    /* finished recently: ack again with *err / *permanent, don't send */
};

/* Set up l: at most parallel (>= 1) lanes in flight, max_items (>= 1) items queued. */
void ak_lanes_init(ak_lanes *l, int parallel, size_t max_items);
/* Forget everything; free_item(item, arg) is called for every queued item (may be NULL). */
void ak_lanes_fini(ak_lanes *l, void (*free_item)(void *item, void *arg), void *arg);

/* Queue item (not owned; non-NULL, not queued already) at the end of lane (copied; NULL: "").
 * delivery: the outbox delivery it belongs to (0: none). 0, or -ENOBUFS when max_items are
 * queued (nothing queued; the caller still owns and frees item), -EINVAL on a NULL item. */
int ak_lanes_push(ak_lanes *l, const char *lane, uint64_t delivery, void *item);
/* Queue item in after's lane right after after (a post split in parts). 0, -ENOBUFS,
 * -ENOENT (after is not queued), -EINVAL. */
int ak_lanes_insert_after(ak_lanes *l, void *after, uint64_t delivery, void *item);

/* Items to start now (at most cap): the head of every lane that has nothing busy, in lane
 * order, while fewer than parallel are in flight and no pause holds (now_ns >= the pause's
 * end); due retries (retry_at <= now_ns) become startable. Each returned item is marked busy;
 * the adapter must end it with ak_lanes_done, ak_lanes_retry or ak_lanes_again. */
size_t ak_lanes_ready(ak_lanes *l, int64_t now_ns, void **out, size_t cap);

/* item (busy) is finished, sent or given up: removed; its lane moves to the back of the
 * round-robin (fairness). The caller acks and frees item. 0 or -ENOENT. */
int ak_lanes_done(ak_lanes *l, void *item);
/* item (busy) failed and goes again at at_ns: it keeps its lane's front (the lane's later
 * items wait) but frees its in-flight slot. 0 or -ENOENT. */
int ak_lanes_retry(ak_lanes *l, void *item, int64_t at_ns);
/* item (busy) goes again at once (changed: split, re-rooted, uploaded): startable by the next
 * ak_lanes_ready. 0 or -ENOENT. */
int ak_lanes_again(ak_lanes *l, void *item);

/* Hold every lane until until_ns (a later pause wins; an earlier one changes nothing). */
void ak_lanes_pause(ak_lanes *l, int64_t until_ns);
/* When (after now_ns) the adapter should call ak_lanes_ready again for items waiting on time:
 * the earliest retry still to come or the pause's end (when something waits for it); 0 when
 * nothing waits on time. Times already reached are not returned (ak_lanes_ready took what it
 * could; the cap frees up only through ak_lanes_done/_retry/_again, after which the adapter
 * calls ak_lanes_ready anyway), so arming a timer for it never spins. */
int64_t ak_lanes_next_due(const ak_lanes *l, int64_t now_ns);

/* Delivery de-duplication (see the header). delivery 0 is always AK_LANES_NEW. err/permanent
 * may be NULL. */
enum ak_lanes_claim ak_lanes_claim(const ak_lanes *l, uint64_t delivery, int *err, bool *permanent);
/* Remember how delivery (!= 0) ended (the ack sent to the outbox). */
void ak_lanes_remember(ak_lanes *l, uint64_t delivery, int err, bool permanent);

/* Partly sent deliveries: an item of delivery was posted, so the rest of it must not be acked
 * as a retryable failure (the outbox would send the whole delivery again, posting that part
 * twice). ak_lanes_part_sent marks the delivery's items still queued; ak_lanes_partial tells
 * whether item is such a rest (false for an unknown item). */
void ak_lanes_part_sent(ak_lanes *l, uint64_t delivery);
bool ak_lanes_partial(const ak_lanes *l, const void *item);

/* Whether item is queued; whether it is busy (in flight or waiting for its retry). */
bool ak_lanes_has(const ak_lanes *l, const void *item);
bool ak_lanes_busy(const ak_lanes *l, const void *item);
/* Items queued, items in flight (not counting waits for a retry). */
size_t ak_lanes_count(const ak_lanes *l);
int ak_lanes_inflight(const ak_lanes *l);
/* Call fn(item, arg) for every queued item, lane by lane, in order (fn must not change l). */
void ak_lanes_each(const ak_lanes *l, void (*fn)(void *item, void *arg), void *arg);

#endif /* AK_LANES_H */
