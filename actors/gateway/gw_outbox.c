/*
 * gw_outbox — replies are written down before they are sent, and sent until a platform took
 * them (issue 13, docs/reliability.md).
 *
 * The chat actors hand their answers (and the gateway its deliveries: cron, send_message) to
 * this actor instead of to the adapter. Each goes into state.db's hc_outbox first; once the
 * row is committed it is sent, in order per chat, one at a time per chat, chats in parallel.
 * An adapter that acknowledges (gw_caps.acks) answers each with GW_MSG_SENT: success deletes
 * the row, a failure is retried with exponential backoff and jitter (or after the platform's
 * Retry-After) until the delivery deadline (gateway.delivery_deadline), after which the reply
 * is given up with a log line, kept as 'failed' in hc_outbox and counted in
 * `hermes gateway status`. For an adapter that does not acknowledge, handing the message over
 * is the end of it. While a platform is not connected its replies wait; at start the replies
 * a previous run did not get out are loaded and sent when their platform connects.
 *
 * Invariants:
 *   1. Per chat (platform, chat id, thread), replies reach the adapter in the order the
 *      outbox received them; the next is sent only when the previous one ended.
 *   2. A reply is sent only after its row is committed (or when there is no store).
 *   3. Every reply ends exactly once: sent (row deleted) or given up (row 'failed'). The END
 *      that records it goes without an ack: when the disk is full the store keeps it and
 *      writes it once there is room (st_store.h rule 4), so a restart does not send again a
 *      reply it had sent. (A PUT the disk refused is sent anyway, with no row: nothing to
 *      resend after a restart either.)
 *
 * Threads: one actor on the pool; gw_outbox_say from any behaviour.
 */
#include "gw_int.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_map.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"
#include "st_read.h"
#include "st_store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum {
    OB_RETRY = RT_MSG_TYPE(RT_MSG_MODULE_GW, 56),       /* ob_tick: a backoff ended */
    OB_ACK_TIMEOUT = RT_MSG_TYPE(RT_MSG_MODULE_GW, 57), /* ob_tick: no GW_MSG_SENT in time */
    OB_STATS_TICK = RT_MSG_TYPE(RT_MSG_MODULE_GW, 58),  /* rt_msg */
};

typedef struct ob_tick {
    rt_msg hdr;
    uint64_t seq;
} ob_tick;

enum { OB_PERSISTING, OB_READY, OB_INFLIGHT, OB_WAITING };

#define OB_MAX_ADAPTERS   16
#define OB_BACKOFF_CAP_MS 60000

typedef struct ob_chat ob_chat;

typedef struct ob_item {
    struct ob_item *next;
    ob_chat *chat;
    uint64_t seq; /* the delivery id adapters echo */
    int64_t row;  /* hc_outbox id; 0: not persisted */
    char *platform;
    gw_target to;
    char *text;
    int kind, part, parts;
    double created; /* epoch seconds */
    int attempts;
    int state;
    uint64_t timer;
} ob_item;

struct ob_chat {
    ob_chat *next_same_hash;
    uint64_t hash;
    char *key; /* platform \x1f chat id \x1f thread id */
    ob_item *head, **tail;
};

typedef struct ob_adapter {
    char *platform;
    rt_ref ref;
    gw_caps caps;
} ob_adapter;

typedef struct outbox {
    rt_ref store;
    int64_t retry_base_ms, deadline_ms, ack_timeout_ms;
    rt_map chats; /* hash(key) → ob_chat chain */
    rt_map items; /* seq → ob_item */
    ob_adapter ad[OB_MAX_ADAPTERS];
    size_t nad;
    uint64_t next_seq;
    size_t pending;
    uint64_t sent, failed;
    char last_error[200];
    bool stats_timer;
    uint64_t rng;
} outbox;

/* ================================================================ messages */

static void drop_put(rt_msg *m)
{
    gw_outbox_put *p = (gw_outbox_put *)m;
    rt_free(p->platform);
    gw_target_fini(&p->to);
    rt_free(p->text);
}

rt_msg *gw_outbox_put_new(const char *platform, const gw_target *to, const char *text, int kind,
                          int part, int parts)
{
    gw_outbox_put *p = RT_MSG_NEW(gw_outbox_put, GW_OUTBOX_PUT);
    p->platform = rt_xstrdup(platform ? platform : "");
    gw_target_copy(&p->to, to);
    p->text = rt_xstrdup(text ? text : "");
    p->kind = kind;
    p->part = part;
    p->parts = parts;
    p->hdr.drop = drop_put;
    return &p->hdr;
}

static void drop_adapter_note(rt_msg *m)
{
    rt_free(((gw_outbox_adapter *)m)->platform);
}

rt_msg *gw_outbox_adapter_new(const char *platform, rt_ref ref, const gw_caps *caps, bool up)
{
    gw_outbox_adapter *a = RT_MSG_NEW(gw_outbox_adapter, GW_OUTBOX_ADAPTER);
    a->platform = rt_xstrdup(platform);
    a->ref = ref;
    if (caps)
        a->caps = *caps;
    a->up = up;
    a->hdr.drop = drop_adapter_note;
    return &a->hdr;
}

void gw_outbox_say(rt_ctx *cx, rt_ref ob, const char *platform, const gw_caps *caps,
                   const gw_target *to, const char *text, int kind)
{
    if (!text)
        return;
    if (!caps->max_message) {
        rt_send(cx, ob, gw_outbox_put_new(platform, to, text, kind, 0, 0));
        return;
    }
    char **parts = gw_chunk(text, caps->max_message);
    int n = 0;
    while (parts[n])
        n++;
    for (int i = 0; i < n; i++)
        rt_send(cx, ob, gw_outbox_put_new(platform, to, parts[i], kind, i + 1, n));
    gw_chunks_free(parts);
}

/* ================================================================= helpers */

static double now_epoch(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static char *chat_key(const char *platform, const gw_target *to)
{
    return rt_xasprintf("%s\x1f%s\x1f%s", platform, to->chat_id ? to->chat_id : "",
                        to->thread_id ? to->thread_id : "");
}

static ob_chat *chat_get(outbox *o, const char *platform, const gw_target *to, bool create)
{
    char *key = chat_key(platform, to);
    uint64_t h = rt_hash_str(key);
    h = h ? h : 1;
    ob_chat *c = rt_map_get(&o->chats, h);
    for (; c; c = c->next_same_hash)
        if (strcmp(c->key, key) == 0)
            break;
    if (c || !create) {
        rt_free(key);
        return c;
    }
    c = rt_xcalloc(1, sizeof(*c));
    c->key = key;
    c->hash = h;
    c->tail = &c->head;
    c->next_same_hash = rt_map_get(&o->chats, h);
    rt_map_put(&o->chats, h, c);
    return c;
}

static void chat_free(outbox *o, ob_chat *c)
{
    ob_chat *first = rt_map_get(&o->chats, c->hash);
    if (first == c) {
        if (c->next_same_hash)
            rt_map_put(&o->chats, c->hash, c->next_same_hash);
        else
            (void)rt_map_del(&o->chats, c->hash);
    } else {
        for (ob_chat *p = first; p; p = p->next_same_hash)
            if (p->next_same_hash == c) {
                p->next_same_hash = c->next_same_hash;
                break;
            }
    }
    rt_free(c->key);
    rt_free(c);
}

static void item_free(ob_item *it)
{
    rt_free(it->platform);
    gw_target_fini(&it->to);
    rt_free(it->text);
    rt_free(it);
}

static ob_adapter *adapter_of(outbox *o, const char *platform)
{
    for (size_t i = 0; i < o->nad; i++)
        if (strcmp(o->ad[i].platform, platform) == 0)
            return &o->ad[i];
    return NULL;
}

static void stats_changed(rt_ctx *cx, outbox *o)
{
    if (o->stats_timer)
        return;
    o->stats_timer = true;
    rt_send_after(cx, rt_self(cx), rt_msg_new(OB_STATS_TICK, sizeof(rt_msg)), 1000);
}

static void send_stats(rt_ctx *cx, outbox *o)
{
    o->stats_timer = false;
    rt_ref gw = rt_whereis(cx, GW_NAME);
    if (!gw)
        return;
    gw_outbox_stats *s = RT_MSG_NEW(gw_outbox_stats, GW_OUTBOX_STATS);
    s->pending = o->pending;
    s->sent = o->sent;
    s->failed = o->failed;
    rt_strlcpy(s->last_error, o->last_error, sizeof(s->last_error));
    rt_send(cx, gw, &s->hdr);
}

static uint64_t tick_after(rt_ctx *cx, uint32_t type, uint64_t seq, int64_t ms)
{
    ob_tick *t = RT_MSG_NEW(ob_tick, type);
    t->seq = seq;
    return rt_send_after(cx, rt_self(cx), &t->hdr, ms > 0 ? ms : 1);
}

static void cancel_timer(rt_ctx *cx, ob_item *it)
{
    if (it->timer) {
        rt_timer_cancel(cx, it->timer);
        it->timer = 0;
    }
}

/* ================================================================ sending */

static void pump(rt_ctx *cx, outbox *o, ob_chat *c);

/* The head of its chat ended (sent, or given up): the row follows, the next one goes. */
static void finish(rt_ctx *cx, outbox *o, ob_item *it, const char *error)
{
    ob_chat *c = it->chat;
    cancel_timer(cx, it);
    if (it->row && o->store) {
        st_msg_outbox *m = st_outbox_new(ST_MSG_OUTBOX_END);
        m->row = it->row;
        m->attempts = it->attempts;
        m->error = error ? rt_xstrdup(error) : NULL;
        rt_send(cx, o->store, &m->hdr);
    }
    if (error) {
        o->failed++;
        snprintf(o->last_error, sizeof(o->last_error), "%s:%s: %s", it->platform,
                 it->to.chat_id ? it->to.chat_id : "", error);
    } else {
        o->sent++;
    }
    c->head = it->next;
    if (!c->head)
        c->tail = &c->head;
    (void)rt_map_del(&o->items, it->seq);
    o->pending--;
    item_free(it);
    stats_changed(cx, o);
    pump(cx, o, c);
}

static void pump(rt_ctx *cx, outbox *o, ob_chat *c)
{
    for (;;) {
        ob_item *it = c->head;
        if (!it) {
            chat_free(o, c);
            return;
        }
        if (it->state != OB_READY)
            return;
        ob_adapter *a = adapter_of(o, it->platform);
        if (!a)
            return; /* waits for GW_OUTBOX_ADAPTER up */
        gw_out_text *t = (gw_out_text *)gw_out_text_new(GW_OUT_TEXT, &it->to, it->text, it->kind);
        t->part = it->part;
        t->parts = it->parts;
        it->attempts++;
        if (!a->caps.acks) {
            rt_send(cx, a->ref, &t->hdr);
            finish(cx, o, it, NULL);
            return; /* finish pumped the rest */
        }
        t->delivery = it->seq;
        rt_send(cx, a->ref, &t->hdr);
        it->state = OB_INFLIGHT;
        it->timer = tick_after(cx, OB_ACK_TIMEOUT, it->seq, o->ack_timeout_ms);
        return;
    }
}

/* A send failed: again after a backoff, or give up at the deadline. */
static void failed(rt_ctx *cx, outbox *o, ob_item *it, const char *why, bool permanent,
                   int64_t retry_after_ms)
{
    cancel_timer(cx, it);
    double age_ms = (now_epoch() - it->created) * 1000.0;
    if (permanent || age_ms >= (double)o->deadline_ms) {
        RT_ERROR("gateway",
                 "a reply to %s:%s was given up after %d attempt(s) over %.0f s: %s (kept in "
                 "state.db hc_outbox)",
                 it->platform, it->to.chat_id ? it->to.chat_id : "", it->attempts, age_ms / 1000.0,
                 why);
        finish(cx, o, it, why);
        return;
    }
    int64_t ms = o->retry_base_ms;
    for (int i = 1; i < it->attempts && ms < OB_BACKOFF_CAP_MS; i++)
        ms *= 2;
    if (ms > OB_BACKOFF_CAP_MS)
        ms = OB_BACKOFF_CAP_MS;
    o->rng = rt_hash_u64(o->rng + it->seq);
    ms = ms / 2 + (int64_t)(o->rng % (uint64_t)(ms / 2 + 1)); /* jitter: [ms/2, ms] */
    if (retry_after_ms > ms)
        ms = retry_after_ms;
    RT_WARN("gateway", "a reply to %s:%s was not sent (%s); trying again in %lld ms", it->platform,
            it->to.chat_id ? it->to.chat_id : "", why, (long long)ms);
    it->state = OB_WAITING;
    it->timer = tick_after(cx, OB_RETRY, it->seq, ms);
}

/* ================================================================ behaviour */

static void on_put(rt_ctx *cx, outbox *o, gw_outbox_put *p)
{
    ob_item *it = rt_xcalloc(1, sizeof(*it));
    it->seq = ++o->next_seq;
    it->platform = p->platform;
    p->platform = NULL;
    it->to = p->to;
    memset(&p->to, 0, sizeof(p->to));
    it->text = p->text;
    p->text = NULL;
    it->kind = p->kind;
    it->part = p->part;
    it->parts = p->parts;
    it->created = now_epoch();
    it->state = o->store ? OB_PERSISTING : OB_READY;
    ob_chat *c = chat_get(o, it->platform, &it->to, true);
    it->chat = c;
    *c->tail = it;
    c->tail = &it->next;
    rt_map_put(&o->items, it->seq, it);
    o->pending++;
    stats_changed(cx, o);
    if (o->store) {
        st_msg_outbox *m = st_outbox_new(ST_MSG_OUTBOX_PUT);
        m->req.reply_to = rt_self(cx);
        m->req.tag = it->seq;
        m->platform = rt_xstrdup(it->platform);
        m->chat_id = rt_xstrdup(it->to.chat_id ? it->to.chat_id : "");
        m->thread_id = it->to.thread_id ? rt_xstrdup(it->to.thread_id) : NULL;
        m->reply_to = it->to.reply_to ? rt_xstrdup(it->to.reply_to) : NULL;
        m->text = rt_xstrdup(it->text);
        m->kind = it->kind;
        m->part = it->part;
        m->parts = it->parts;
        rt_send(cx, o->store, &m->hdr);
        return;
    }
    pump(cx, o, c);
}

static void on_store_ack(rt_ctx *cx, outbox *o, const st_msg_ack *a)
{
    if (a->op != ST_MSG_OUTBOX_PUT)
        return;
    ob_item *it = rt_map_get(&o->items, a->tag);
    if (!it || it->state != OB_PERSISTING)
        return;
    if (a->err)
        RT_WARN("gateway", "a reply could not be written to the outbox (%s): sending it anyway",
                a->errmsg);
    else
        it->row = a->id;
    it->state = OB_READY;
    pump(cx, o, it->chat);
}

static void on_sent(rt_ctx *cx, outbox *o, const gw_msg_sent *s)
{
    ob_item *it = rt_map_get(&o->items, s->delivery);
    if (!it || it->state != OB_INFLIGHT)
        return; /* late: the attempt already timed out, or the adapter went away */
    if (!s->err) {
        finish(cx, o, it, NULL);
        return;
    }
    char why[200];
    snprintf(why, sizeof(why), "%s", s->errmsg[0] ? s->errmsg : rt_strerror(s->err));
    failed(cx, o, it, why, s->permanent, s->retry_after_ms);
}

static void on_tick(rt_ctx *cx, outbox *o, const ob_tick *t, uint32_t type)
{
    ob_item *it = rt_map_get(&o->items, t->seq);
    if (!it)
        return;
    if (type == OB_ACK_TIMEOUT && it->state == OB_INFLIGHT) {
        it->timer = 0;
        failed(cx, o, it, "the adapter did not confirm the send in time", false, 0);
    } else if (type == OB_RETRY && it->state == OB_WAITING) {
        it->timer = 0;
        it->state = OB_READY;
        pump(cx, o, it->chat);
    }
}

/* Every chat of a platform that has its head ready: after the adapter (re)connects. */
static void pump_platform(rt_ctx *cx, outbox *o, const char *platform)
{
    size_t n = 0, cap = 16;
    ob_chat **v = rt_xmalloc(cap * sizeof(*v));
    for (size_t i = 0; i < o->chats.cap; i++) {
        if (!o->chats.keys[i])
            continue;
        for (ob_chat *c = o->chats.vals[i]; c; c = c->next_same_hash)
            if (c->head && strcmp(c->head->platform, platform) == 0) {
                if (n == cap) {
                    cap *= 2;
                    v = rt_xrealloc(v, cap * sizeof(*v));
                }
                v[n++] = c;
            }
    }
    for (size_t i = 0; i < n; i++) /* pump may free a chat: collected first */
        pump(cx, o, v[i]);
    rt_free(v);
}

static void on_adapter(rt_ctx *cx, outbox *o, gw_outbox_adapter *m)
{
    ob_adapter *a = adapter_of(o, m->platform);
    if (m->up) {
        if (!a) {
            if (o->nad == OB_MAX_ADAPTERS)
                return;
            a = &o->ad[o->nad++];
            a->platform = m->platform;
            m->platform = NULL;
        }
        a->ref = m->ref;
        a->caps = m->caps;
        pump_platform(cx, o, a->platform);
        return;
    }
    if (!a || (m->ref && a->ref != m->ref))
        return;
    /* In-flight replies of the platform go again when it is back (at least once). */
    for (size_t i = 0; i < o->items.cap; i++) {
        if (!o->items.keys[i])
            continue;
        ob_item *it = o->items.vals[i];
        if (it->state == OB_INFLIGHT && strcmp(it->platform, a->platform) == 0) {
            cancel_timer(cx, it);
            it->state = OB_READY;
        }
    }
    rt_free(a->platform);
    *a = o->ad[--o->nad];
}

static void outbox_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    outbox *o = *(outbox **)state;
    switch (m->type) {
    case GW_OUTBOX_PUT: on_put(cx, o, (gw_outbox_put *)m); break;
    case GW_OUTBOX_ADAPTER: on_adapter(cx, o, (gw_outbox_adapter *)m); break;
    case GW_MSG_SENT: on_sent(cx, o, (const gw_msg_sent *)m); break;
    case ST_MSG_ACK: on_store_ack(cx, o, (const st_msg_ack *)m); break;
    case OB_RETRY:
    case OB_ACK_TIMEOUT: on_tick(cx, o, (const ob_tick *)m, m->type); break;
    case OB_STATS_TICK: send_stats(cx, o); break;
    default: break;
    }
}

static void outbox_fini(void *state)
{
    outbox *o = *(outbox **)state;
    for (size_t i = 0; i < o->items.cap; i++)
        if (o->items.keys[i])
            item_free(o->items.vals[i]);
    for (size_t i = 0; i < o->chats.cap; i++) {
        if (!o->chats.keys[i])
            continue;
        for (ob_chat *c = o->chats.vals[i], *next; c; c = next) {
            next = c->next_same_hash;
            rt_free(c->key);
            rt_free(c);
        }
    }
    rt_map_fini(&o->items);
    rt_map_fini(&o->chats);
    for (size_t i = 0; i < o->nad; i++)
        rt_free(o->ad[i].platform);
    rt_free(o);
}

static const rt_actor_type outbox_type = {"gateway.outbox", outbox_behave, outbox_fini,
                                          sizeof(outbox *)};

/* ================================================================== start */

static void load_row(void *arg, const st_outbox_row *row)
{
    outbox *o = arg;
    ob_item *it = rt_xcalloc(1, sizeof(*it));
    it->seq = ++o->next_seq;
    it->row = row->id;
    it->platform = rt_xstrdup(row->platform);
    it->to.chat_id = rt_xstrdup(row->chat_id);
    it->to.thread_id = row->thread_id ? rt_xstrdup(row->thread_id) : NULL;
    it->to.reply_to = row->reply_to ? rt_xstrdup(row->reply_to) : NULL;
    it->text = rt_xstrdup(row->text);
    it->kind = row->kind;
    it->part = row->part;
    it->parts = row->parts;
    it->created = row->created_at;
    it->state = OB_READY;
    ob_chat *c = chat_get(o, it->platform, &it->to, true);
    it->chat = c;
    *c->tail = it;
    c->tail = &it->next;
    rt_map_put(&o->items, it->seq, it);
    o->pending++;
}

rt_ref gw_outbox_start(rt_ctx *cx, const gw_outbox_opts *opts)
{
    outbox *o = rt_xcalloc(1, sizeof(*o));
    o->store = opts->store;
    o->retry_base_ms = opts->retry_base_ms > 0 ? opts->retry_base_ms : 1000;
    o->deadline_ms = opts->deadline_ms > 0 ? opts->deadline_ms : 6 * 3600 * 1000LL;
    o->ack_timeout_ms = opts->ack_timeout_ms > 0 ? opts->ack_timeout_ms : 120000;
    o->rng = rt_hash_u64((uint64_t)now_epoch() ^ (uint64_t)(uintptr_t)o);
    rt_map_init(&o->chats);
    rt_map_init(&o->items);
    if (opts->state_db && o->store) {
        int err = 0;
        char msg[256];
        st_reader *rd = st_reader_open(opts->state_db, &err, msg, sizeof(msg));
        if (!rd) {
            RT_WARN("gateway", "cannot read the outbox from state.db: %s", msg);
        } else {
            if (st_read_outbox_pending(rd, load_row, o) != 0)
                RT_WARN("gateway", "cannot read the outbox from state.db: %s",
                        st_reader_errmsg(rd));
            st_reader_free(rd);
        }
        if (o->pending)
            RT_INFO("gateway",
                    "%zu reply(ies) the last run did not get out are waiting for their "
                    "platforms",
                    o->pending);
    }
    rt_spawn_opts so = {.name = GW_OUTBOX_NAME};
    return rt_spawn(cx, &outbox_type, &o, &so);
}
