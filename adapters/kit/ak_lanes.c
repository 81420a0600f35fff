/*
 * ak_lanes — per-chat send lanes (see ak_lanes.h).
 *
 * Lanes are a list in round-robin order; each lane is a FIFO of entries. Only a lane's head
 * can be busy. Lookups by item walk the lanes' heads (busy items) or every entry (insert
 * after), bounded by nlanes + nitems.
 */
#include "ak_lanes.h"

#include "rt_alloc.h"

#include <errno.h>
#include <string.h>

struct ak_lane_ent {
    ak_lane_ent *next;
    void *item;
    uint64_t delivery;
    bool busy;    /* started and not ended (in flight or waiting for its retry) */
    bool waiting; /* busy, waiting for retry_at */
    bool partial; /* an earlier item of its delivery was sent */
    int64_t retry_at;
};

struct ak_lane {
    ak_lane *next;
    char *key;
    ak_lane_ent *head, *tail;
};

void ak_lanes_init(ak_lanes *l, int parallel, size_t max_items)
{
    memset(l, 0, sizeof(*l));
    l->parallel = parallel > 0 ? parallel : 1;
    l->max_items = max_items > 0 ? max_items : 1;
}

static void lane_unlink(ak_lanes *l, ak_lane *ln)
{
    ak_lane *prev = NULL;
    for (ak_lane *x = l->lanes; x && x != ln; x = x->next) /* bounded: nlanes */
        prev = x;
    if (prev)
        prev->next = ln->next;
    else
        l->lanes = ln->next;
    if (l->lanes_tail == ln)
        l->lanes_tail = prev;
    ln->next = NULL;
}

static void lane_append(ak_lanes *l, ak_lane *ln)
{
    ln->next = NULL;
    if (l->lanes_tail)
        l->lanes_tail->next = ln;
    else
        l->lanes = ln;
    l->lanes_tail = ln;
}

void ak_lanes_fini(ak_lanes *l, void (*free_item)(void *item, void *arg), void *arg)
{
    ak_lane *ln = l->lanes;
    while (ln) {
        ak_lane *nl = ln->next;
        ak_lane_ent *e = ln->head;
        while (e) {
            ak_lane_ent *ne = e->next;
            if (free_item)
                free_item(e->item, arg);
            rt_free(e);
            e = ne;
        }
        rt_free(ln->key);
        rt_free(ln);
        ln = nl;
    }
    int parallel = l->parallel;
    size_t max = l->max_items;
    ak_lanes_init(l, parallel, max);
}

static ak_lane_ent *ent_new(uint64_t delivery, void *item)
{
    ak_lane_ent *e = rt_xcalloc(1, sizeof(*e));
    e->item = item;
    e->delivery = delivery;
    return e;
}

int ak_lanes_push(ak_lanes *l, const char *lane, uint64_t delivery, void *item)
{
    if (!item)
        return -EINVAL;
    if (l->nitems >= l->max_items)
        return -ENOBUFS;
    const char *key = lane ? lane : "";
    ak_lane *ln = l->lanes;
    while (ln && strcmp(ln->key, key) != 0) /* bounded: nlanes */
        ln = ln->next;
    if (!ln) {
        ln = rt_xcalloc(1, sizeof(*ln));
        ln->key = rt_xstrdup(key);
        lane_append(l, ln);
        l->nlanes++;
    }
    ak_lane_ent *e = ent_new(delivery, item);
    if (ln->tail)
        ln->tail->next = e;
    else
        ln->head = e;
    ln->tail = e;
    l->nitems++;
    return 0;
}

int ak_lanes_insert_after(ak_lanes *l, void *after, uint64_t delivery, void *item)
{
    if (!item || !after)
        return -EINVAL;
    for (ak_lane *ln = l->lanes; ln; ln = ln->next) /* bounded: nlanes + nitems */
        for (ak_lane_ent *x = ln->head; x; x = x->next)
            if (x->item == after) {
                if (l->nitems >= l->max_items)
                    return -ENOBUFS;
                ak_lane_ent *e = ent_new(delivery, item);
                e->next = x->next;
                x->next = e;
                if (ln->tail == x)
                    ln->tail = e;
                l->nitems++;
                return 0;
            }
    return -ENOENT;
}

size_t ak_lanes_ready(ak_lanes *l, int64_t now_ns, void **out, size_t cap)
{
    size_t n = 0;
    if (now_ns < l->paused_until)
        return 0;
    for (ak_lane *ln = l->lanes; ln && n < cap && l->nbusy < l->parallel; ln = ln->next) {
        ak_lane_ent *e = ln->head;
        if (e->busy && !(e->waiting && e->retry_at <= now_ns))
            continue; /* in flight, or its retry is not due */
        e->busy = true;
        e->waiting = false;
        e->retry_at = 0;
        l->nbusy++;
        out[n++] = e->item;
    }
    return n;
}

/* The lane whose head is item (busy items are heads), or NULL. */
static ak_lane *lane_of_head(const ak_lanes *l, const void *item)
{
    for (ak_lane *ln = l->lanes; ln; ln = ln->next) /* bounded: nlanes */
        if (ln->head->item == item)
            return ln;
    return NULL;
}

int ak_lanes_done(ak_lanes *l, void *item)
{
    ak_lane *ln = lane_of_head(l, item);
    if (!ln || !ln->head->busy)
        return -ENOENT;
    ak_lane_ent *e = ln->head;
    if (!e->waiting)
        l->nbusy--;
    ln->head = e->next;
    if (!ln->head)
        ln->tail = NULL;
    rt_free(e);
    l->nitems--;
    lane_unlink(l, ln);
    if (ln->head) {
        lane_append(l, ln); /* round robin: the other lanes go first */
    } else {
        rt_free(ln->key);
        rt_free(ln);
        l->nlanes--;
    }
    return 0;
}

int ak_lanes_retry(ak_lanes *l, void *item, int64_t at_ns)
{
    ak_lane *ln = lane_of_head(l, item);
    if (!ln || !ln->head->busy)
        return -ENOENT;
    ak_lane_ent *e = ln->head;
    if (!e->waiting)
        l->nbusy--;
    e->waiting = true;
    e->retry_at = at_ns;
    return 0;
}

int ak_lanes_again(ak_lanes *l, void *item)
{
    ak_lane *ln = lane_of_head(l, item);
    if (!ln || !ln->head->busy)
        return -ENOENT;
    ak_lane_ent *e = ln->head;
    if (!e->waiting)
        l->nbusy--;
    e->busy = false;
    e->waiting = false;
    e->retry_at = 0;
    return 0;
}

void ak_lanes_pause(ak_lanes *l, int64_t until_ns)
{
    if (until_ns > l->paused_until)
        l->paused_until = until_ns;
}

int64_t ak_lanes_next_due(const ak_lanes *l, int64_t now_ns)
{
    int64_t next = 0;
    bool waits = false; /* something would start, or retry, at the pause's end */
    for (const ak_lane *ln = l->lanes; ln; ln = ln->next) { /* bounded: nlanes */
        const ak_lane_ent *e = ln->head;
        if (!e->busy || e->waiting)
            waits = true;
        if (e->waiting && e->retry_at > now_ns && (!next || e->retry_at < next))
            next = e->retry_at;
    }
    if (l->paused_until > now_ns && waits) {
        if (!next || next < l->paused_until)
            next = l->paused_until;
    }
    return next;
}

enum ak_lanes_claim ak_lanes_claim(const ak_lanes *l, uint64_t delivery, int *err, bool *permanent)
{
    if (!delivery)
        return AK_LANES_NEW;
    for (const ak_lane *ln = l->lanes; ln; ln = ln->next) /* bounded: nlanes + nitems */
        for (const ak_lane_ent *e = ln->head; e; e = e->next)
            if (e->delivery == delivery)
                return AK_LANES_QUEUED;
    for (size_t i = 0; i < AK_LANES_RECENT; i++)
        if (l->recent[i].delivery == delivery) {
            if (err)
                *err = l->recent[i].err;
            if (permanent)
                *permanent = l->recent[i].permanent;
            return AK_LANES_DONE;
        }
    return AK_LANES_NEW;
}

void ak_lanes_remember(ak_lanes *l, uint64_t delivery, int err, bool permanent)
{
    if (!delivery)
        return;
    for (size_t i = 0; i < AK_LANES_RECENT; i++)
        if (l->recent[i].delivery == delivery) {
            l->recent[i].err = err;
            l->recent[i].permanent = permanent;
            return;
        }
    l->recent[l->recent_next] = (ak_lanes_done_rec){delivery, err, permanent};
    l->recent_next = (l->recent_next + 1) % AK_LANES_RECENT;
}

void ak_lanes_part_sent(ak_lanes *l, uint64_t delivery)
{
    if (!delivery)
        return;
    for (ak_lane *ln = l->lanes; ln; ln = ln->next) /* bounded: nlanes + nitems */
        for (ak_lane_ent *e = ln->head; e; e = e->next)
            if (e->delivery == delivery)
                e->partial = true;
}

bool ak_lanes_partial(const ak_lanes *l, const void *item)
{
    for (const ak_lane *ln = l->lanes; ln; ln = ln->next)
        for (const ak_lane_ent *e = ln->head; e; e = e->next)
            if (e->item == item)
                return e->partial;
    return false;
}

bool ak_lanes_has(const ak_lanes *l, const void *item)
{
    for (const ak_lane *ln = l->lanes; ln; ln = ln->next)
        for (const ak_lane_ent *e = ln->head; e; e = e->next)
            if (e->item == item)
                return true;
    return false;
}

bool ak_lanes_busy(const ak_lanes *l, const void *item)
{
    const ak_lane *ln = lane_of_head(l, item);
    return ln && ln->head->busy;
}

size_t ak_lanes_count(const ak_lanes *l)
{
    return l->nitems;
}

int ak_lanes_inflight(const ak_lanes *l)
{
    return l->nbusy;
}

void ak_lanes_each(const ak_lanes *l, void (*fn)(void *item, void *arg), void *arg)
{
    for (const ak_lane *ln = l->lanes; ln; ln = ln->next)
        for (const ak_lane_ent *e = ln->head; e; e = e->next)
            fn(e->item, arg);
}
