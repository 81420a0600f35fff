/*
 * gw_router — the gateway actor (registered as GW_NAME): every inbound event passes here.
 *
 *   adapter ──GW_MSG_EVENT──► router: authorization (gw_auth; unknown users go to the
 *                             pairing actor, which sends them back approved or answers them a
 *                             pairing code) → session key (gw_session_key) → the sessions
 *                             index and its reset policy → the chat actor of that key
 *                             (spawned on demand, monitored) ──► gw_chat.c
 *
 * The router also owns: the adapters that are up (GW_MSG_ADAPTER_UP/DOWN, monitored), their
 * home channels (/sethome), delivery to a chat or a home channel (GW_MSG_DELIVER), /status,
 * sessions.json (rewritten through the file writer at most once per second), the runtime
 * status file gateway_state.json, crash recovery (turns a crash left unanswered are answered
 * when their platform comes up), the inbox journal (hc_inbox: an accepted update is written
 * with its key before its conversation sees it; rows a crash left, whose message never
 * reached state.db, are replayed once when their platform comes up; see gw_int.h) and the
 * drain on shutdown.
 *
 * Bounded memory (issue 13): entries of quiet conversations leave memory and sessions.json for
 * state.db's hc_session_index and come back with their conversation's next message (see
 * "cold entries"); over gateway.memory_budget_mb, idle chat actors are asked to leave early
 * (GW_CHAT_EVICT; a chat in a turn declines). Events for a key whose entry is loading or whose
 * chat is being evicted wait in arrival order and are routed when that is settled.
 *
 * /stop, /new and approvals travel to the chat on the urgent lane, ahead of anything queued.
 *
 * Threads: one actor; gw_start runs on the main thread before it (it may block on files).
 */
#include "gw_int.h"

#include "ag_session.h"
#include "gw_auth.h"
#include "gw_cmds.h"
#include "hm_env.h"
#include "gw_pairing.h"
#include "gw_seen.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_map.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"
#include "st_index.h"
#include "st_read.h"
#include "st_store.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_ADAPTERS     16
#define INDEX_WRITE_MS   1000  /* sessions.json at most once a second */
#define INDEX_CHUNK      512   /* entries copied for sessions.json per router turn (~1 ms) */
#define TICK_MS          5000  /* status file refresh */
#define RECOVER_WINDOW_S 86400 /* unanswered turns older than a day are left alone */
#define DRAIN_DEFAULT_S  60

#define WARM_DEFAULT_H 24.0 /* gateway.index_warm_hours when unset or not positive */
enum {
    TAG_INDEX = 1,
    TAG_TICK = 2,
    TAG_DRAIN = 3,
    TAG_INDEX_NOW = 4,
    IO_TAG_INDEX = 10,
    IO_TAG_CLEAN = 11,
    IO_TAG_INDEX_NOW = 12,
    IO_TAG_INDEX_TICK = 13 /* a write of sessions.json nobody waits for */
};
/* rt_msg: router -> itself, copy the next INDEX_CHUNK entries for sessions.json */
enum { GW_ROUTER_FLATTEN = RT_MSG_TYPE(RT_MSG_MODULE_GW, 141) };

typedef struct adapter_ent {
    char *platform;
    rt_ref ref;
    uint64_t mon;
    gw_caps caps;
    char *home;      /* home channel id, or NULL */
    char *home_name; /* its display name, or NULL */
    double since;
} adapter_ent;

/* A platform whose adapter's supervisor (adapters/kit/ak_supervise.h) reported a restart:
 * kept while the platform is down too, for the status file and /status. */
typedef struct sup_ent {
    char *platform;
    int restarts;     /* as last reported */
    bool gave_up;     /* restart storm: the platform stays down until the gateway restarts */
    char detail[160]; /* the supervisor's last words ("restarting in 2.0 s after error") */
} sup_ent;

typedef struct gw_router {
    gw_shared *sh;
    gw_auth *auth;
    rt_ref pairing;
    rt_map by_hash;     /* rt_hash_str(key) → gw_entry chain */
    rt_map by_chat;     /* chat actor ref → gw_entry, while the chat runs */
    gw_entry **entries; /* every entry, for sessions.json */
    size_t n, cap;
    adapter_ent ad[MAX_ADAPTERS];
    size_t nad;
    sup_ent sup[MAX_ADAPTERS]; /* platforms that were restarted by their supervisor */
    size_t nsup;
    char *index_path;
    char *status_path;
    bool index_dirty, index_timer;
    bool index_now_inflight; /* a write for a new session id is with the file writer */
    bool index_now_again;    /* another new session id came meanwhile: write once more */
    bool index_now_timer;    /* waiting out the rendering budget (TAG_INDEX_NOW) */
    int64_t index_last_ns;   /* when the last sessions.json rendering started */
    int64_t index_every_ms;  /* the pause before the next sessions.json write (index_write) */
    /* the sessions.json copy being made, a chunk per router turn (index_write) */
    bool flat_active;
    bool flat_then_now; /* a new session id came meanwhile: index_changed_now afterwards */
    rt_buf flat;
    size_t flat_next; /* the next entries[] index to copy */
    uint32_t flat_gen;
    rt_ref flat_reply;
    uint64_t flat_tag;
    double started_at;
    const char *state; /* gateway_state */
    bool draining;
    bool drain_clean; /* the drain finished in time: .clean_shutdown is written last */
    rt_ref drain_reply;
    uint64_t drain_tag;
    uint64_t events, denied, duplicates;
    gw_outbox_stats outbox; /* as last reported (pending, sent, failed, last_error) */
    gw_seen *seen;          /* updates accepted lately (exactly-once handling) */
    gw_msg_event **replay;  /* journal rows to replay once their platform is up, in order */
    size_t nreplay;
    /* cold entries and the memory budget (see "cold entries" below) */
    rt_ref index;            /* hc_session_index (st_index.h); 0: every entry stays in memory */
    double warm_s;           /* gateway.index_warm_hours, in seconds */
    int64_t budget_bytes;    /* gateway.memory_budget_mb; 0: no budget */
    rt_map loading;          /* rt_hash_str(key) → cold_load chain: reads in flight */
    struct cold_load *loads; /* the same, as one list (for router_fini) */
    uint64_t load_tag;
    int64_t cold_rows; /* keys hc_session_index has a row for */
    uint64_t cold_moved, cold_loaded, cold_waited, cold_bad, evicted, pressure_ticks;
    int64_t rss_kb; /* at the last upkeep */
} gw_router;

/* =============================================================== index */

static uint64_t key_hash(const char *key)
{
    uint64_t h = rt_hash_str(key);
    return h ? h : 1;
}

static gw_entry *find(gw_router *r, const char *key)
{
    for (gw_entry *e = rt_map_get(&r->by_hash, key_hash(key)); e; e = e->next_same_hash)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void insert(gw_router *r, gw_entry *e)
{
    uint64_t h = key_hash(e->key);
    e->next_same_hash = rt_map_get(&r->by_hash, h);
    rt_map_put(&r->by_hash, h, e);
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->entries = rt_xrealloc(r->entries, r->cap * sizeof(*r->entries));
    }
    r->entries[r->n++] = e;
}

/* Take e out of the hash chains (not out of r->entries). */
static void unlink_hash(gw_router *r, gw_entry *e)
{
    uint64_t h = key_hash(e->key);
    gw_entry *head = rt_map_get(&r->by_hash, h);
    if (head == e) {
        if (e->next_same_hash)
            rt_map_put(&r->by_hash, h, e->next_same_hash);
        else
            (void)rt_map_del(&r->by_hash, h);
        return;
    }
    for (gw_entry *p = head; p; p = p->next_same_hash)
        if (p->next_same_hash == e) {
            p->next_same_hash = e->next_same_hash;
            return;
        }
}

/* Events held back, in arrival order: while a cold entry loads, or while its chat is asked
 * to leave memory (GW_CHAT_EVICT). */
typedef struct wait_item {
    gw_msg_event *ev;
    bool replay;
} wait_item;

typedef struct gw_waitq {
    wait_item *v;
    size_t n, cap;
} gw_waitq;

static void waitq_push(gw_waitq *q, gw_msg_event *ev, bool replay)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 4;
        q->v = rt_xrealloc(q->v, q->cap * sizeof(*q->v));
    }
    q->v[q->n++] = (wait_item){ev, replay};
}

static void waitq_fini(gw_waitq *q)
{
    for (size_t i = 0; i < q->n; i++)
        rt_msg_free(&q->v[i].ev->hdr);
    rt_free(q->v);
    memset(q, 0, sizeof(*q));
}

/* A read of hc_session_index in flight for key. */
typedef struct cold_load {
    char *key;
    gw_waitq q;
    struct cold_load *next;                /* same hash */
    struct cold_load *all_prev, *all_next; /* r->loads */
} cold_load;

static cold_load *load_find(gw_router *r, const char *key)
{
    for (cold_load *l = rt_map_get(&r->loading, key_hash(key)); l; l = l->next)
        if (strcmp(l->key, key) == 0)
            return l;
    return NULL;
}

/* The load of key, out of r->loading (the caller frees it with load_free), or NULL. */
static cold_load *load_take(gw_router *r, const char *key)
{
    uint64_t h = key_hash(key);
    cold_load *head = rt_map_get(&r->loading, h), *prev = NULL;
    for (cold_load *l = head; l; prev = l, l = l->next) {
        if (strcmp(l->key, key) != 0)
            continue;
        if (prev)
            prev->next = l->next;
        else if (l->next)
            rt_map_put(&r->loading, h, l->next);
        else
            (void)rt_map_del(&r->loading, h);
        if (l->all_prev)
            l->all_prev->all_next = l->all_next;
        else
            r->loads = l->all_next;
        if (l->all_next)
            l->all_next->all_prev = l->all_prev;
        return l;
    }
    return NULL;
}

static void load_free(cold_load *l)
{
    waitq_fini(&l->q);
    rt_free(l->key);
    rt_free(l);
}

static gw_entry *find_by_chat(gw_router *r, rt_ref chat)
{
    return chat ? rt_map_get(&r->by_chat, chat) : NULL;
}

static double now_epoch(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static void index_changed(rt_ctx *cx, gw_router *r)
{
    r->index_dirty = true;
    if (r->index_timer)
        return;
    r->index_timer = true;
    rt_send_after(cx, rt_self(cx), rt_timeout_new(TAG_INDEX),
                  r->index_every_ms > INDEX_WRITE_MS ? r->index_every_ms : INDEX_WRITE_MS);
}

/* sessions.json is rendered by the file writer, not here: the router only copies the
 * entries' fields into a flat buffer (microseconds per entry; rendering took ~10 µs per
 * entry, 50 ms at 5,000 conversations, and every message waited behind it - the p99 of the
 * capacity benchmark). So that rendering takes at most a twentieth of the writer's time, the
 * next write waits 20 times as long as the last rendering took (at most a minute; index_io_done
 * learns it). Writes without a reply_to of their own report to the router as IO_TAG_INDEX_TICK.
 *
 * Even the copy took 11-22 ms at 10,000 conversations, every message waiting behind it, so it
 * is made INDEX_CHUNK entries per router turn (flat_step, then GW_ROUTER_FLATTEN to itself,
 * behind whatever queued meanwhile). Entries may change, come and go between chunks: each
 * entry is copied as it is when its chunk runs, and stamped with the copy's generation; the
 * cold move compacts r->entries downwards, so an entry can slip below the cursor uncopied -
 * the last step sweeps for entries without the stamp (a compare each). A change after an
 * entry's copy leaves index_dirty set: the next write has it.
 */
static void flat_begin(rt_ctx *cx, gw_router *r, rt_ref reply_to, uint64_t tag)
{
    r->index_dirty = false;
    r->index_last_ns = rt_now_ns(rt_ctx_runtime(cx));
    rt_buf_init(&r->flat, SIZE_MAX / 2);
    r->flat_next = 0;
    if (++r->flat_gen == 0)
        r->flat_gen = 1;
    r->flat_reply = reply_to ? reply_to : rt_self(cx);
    r->flat_tag = reply_to ? tag : IO_TAG_INDEX_TICK;
    r->flat_active = true;
}

static void flat_copy(gw_router *r, gw_entry *e)
{
    if (e->flat_gen == r->flat_gen)
        return;
    e->flat_gen = r->flat_gen;
    gw_index_flatten_one(e, &r->flat);
}

static void index_changed_now(rt_ctx *cx, gw_router *r);

/* The rest of the copy, the sweep, and the copy to the file writer. */
static void flat_finish(rt_ctx *cx, gw_router *r)
{
    if (!r->flat_active)
        return;
    for (size_t i = r->flat_next; i < r->n; i++)
        flat_copy(r, r->entries[i]);
    for (size_t i = 0; i < r->n; i++) /* entries the compaction moved below the cursor */
        flat_copy(r, r->entries[i]);
    r->flat_active = false;
    size_t len = 0;
    char *data = rt_buf_steal(&r->flat, &len);
    gw_io_write_index(cx, r->sh->io, r->index_path, data ? data : rt_xstrdup(""), data ? len : 0,
                      r->flat_reply, r->flat_tag);
    if (r->flat_then_now) {
        r->flat_then_now = false;
        if (r->index_dirty)
            index_changed_now(cx, r);
    }
}

static void flat_step(rt_ctx *cx, gw_router *r)
{
    if (!r->flat_active)
        return;
    size_t end = r->flat_next + INDEX_CHUNK;
    for (; r->flat_next < r->n && r->flat_next < end; r->flat_next++)
        flat_copy(r, r->entries[r->flat_next]);
    if (r->flat_next < r->n)
        rt_send(cx, rt_self(cx), rt_msg_new(GW_ROUTER_FLATTEN, sizeof(rt_msg)));
    else
        flat_finish(cx, r);
}

/* A write of sessions.json, copied a chunk at a time; one copy is made at a time. */
static void index_write(rt_ctx *cx, gw_router *r, rt_ref reply_to, uint64_t tag)
{
    if (r->flat_active) { /* the copy under way goes first; this one after the pause */
        index_changed(cx, r);
        return;
    }
    flat_begin(cx, r, reply_to, tag);
    flat_step(cx, r);
}

/* A write of sessions.json copied at once (stopping, draining): after the copy under way. */
static void index_write_all(rt_ctx *cx, gw_router *r, rt_ref reply_to, uint64_t tag)
{
    while (r->flat_active) /* finishing one may start the write a new session id waited for */
        flat_finish(cx, r);
    flat_begin(cx, r, reply_to, tag);
    flat_finish(cx, r);
}

/* A rendering of sessions.json ended on the file writer: the next one's pause. */
static void index_io_done(gw_router *r, const gw_io_done *d)
{
    r->index_every_ms = d->took_ms * 20 > 60000 ? 60000 : d->took_ms * 20;
}

/*
 * A new conversation or a new session id of one is written out at once instead of within
 * the second (index_changed): a crash in that second would otherwise lose the key → session
 * mapping while the user's message is already in state.db, and the restart could neither
 * continue the conversation nor answer the message (crash recovery walks the index). One
 * such write is with the file writer at a time; new ids meanwhile make one more when it is
 * done, so a burst of new conversations costs a few renderings, not one each. The rendering
 * budget of index_write still holds: when the last rendering asks for a pause that has not
 * passed yet, the write waits for the rest of that pause (milliseconds for a small index;
 * with ~100,000 conversations the window is back to seconds).
 */
static void index_changed_now(rt_ctx *cx, gw_router *r)
{
    r->index_dirty = true;
    if (r->index_now_inflight) {
        r->index_now_again = true;
        return;
    }
    if (r->flat_active) { /* a tick's copy is under way: once it is sent */
        r->flat_then_now = true;
        return;
    }
    int64_t since_ms = (rt_now_ns(rt_ctx_runtime(cx)) - r->index_last_ns) / 1000000;
    if (r->index_last_ns && since_ms < r->index_every_ms) {
        if (!r->index_now_timer) {
            r->index_now_timer = true;
            rt_send_after(cx, rt_self(cx), rt_timeout_new(TAG_INDEX_NOW),
                          r->index_every_ms - since_ms);
        }
        return;
    }
    r->index_now_inflight = true;
    index_write(cx, r, rt_self(cx), IO_TAG_INDEX_NOW);
}

static void index_now_done(rt_ctx *cx, gw_router *r)
{
    r->index_now_inflight = false;
    if (r->index_now_again) {
        r->index_now_again = false;
        if (r->index_dirty)
            index_changed_now(cx, r);
    }
}

/* ============================================================== adapters */

static adapter_ent *adapter_of(gw_router *r, const char *platform)
{
    for (size_t i = 0; i < r->nad; i++)
        if (platform && strcmp(r->ad[i].platform, platform) == 0)
            return &r->ad[i];
    return NULL;
}

static sup_ent *sup_of(gw_router *r, const char *platform)
{
    for (size_t i = 0; i < r->nsup; i++)
        if (platform && strcmp(r->sup[i].platform, platform) == 0)
            return &r->sup[i];
    return NULL;
}

/* One platform's entry in gateway_state.json's "platforms": restarts and, while it is down
 * after a restart, the supervisor's state ("restarting", or "fatal" after a storm). */
static void status_sup(cJSON *e, const sup_ent *s, bool up)
{
    cJSON_AddNumberToObject(e, "restarts", s ? s->restarts : 0);
    if (!s || up)
        return;
    cJSON_AddStringToObject(e, "state", s->gave_up ? "fatal" : "restarting");
    cJSON_AddStringToObject(e, "error_code", s->gave_up ? "restart_storm" : "restarting");
    cJSON_AddStringToObject(e, "error_message", s->detail);
}

static char *context_for(gw_router *r, const gw_source *src)
{
    const char *names[MAX_ADAPTERS], *homes[MAX_ADAPTERS];
    for (size_t i = 0; i < r->nad; i++) {
        names[i] = r->ad[i].platform;
        homes[i] = r->ad[i].home;
    }
    bool shared = src->chat_type && strcmp(src->chat_type, "dm") != 0 && src->thread_id &&
                  !r->sh->thread_per_user;
    return gw_context_block(src, shared, names, homes, r->nad);
}

static void status_write(rt_ctx *cx, gw_router *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "pid", getpid());
    cJSON_AddStringToObject(o, "kind", "hermes-gateway");
    cJSON_AddItemToObject(o, "argv", cJSON_CreateArray());
    cJSON_AddNumberToObject(o, "start_time", r->started_at);
    cJSON_AddStringToObject(o, "gateway_state", r->state);
    cJSON_AddNullToObject(o, "exit_reason");
    cJSON_AddFalseToObject(o, "restart_requested");
    size_t busy = 0, live = 0;
    for (size_t i = 0; i < r->n; i++) {
        busy += r->entries[i]->busy;
        live += r->entries[i]->chat != 0;
    }
    cJSON_AddNumberToObject(o, "active_agents", (double)busy);
    cJSON_AddNumberToObject(o, "sessions_live", (double)live);
    size_t warm_with_row = 0;
    for (size_t i = 0; i < r->n; i++)
        warm_with_row += r->entries[i]->in_cold;
    cJSON_AddNumberToObject(o, "sessions_known",
                            (double)(r->n + (size_t)r->cold_rows - warm_with_row));
    cJSON_AddNumberToObject(o, "sessions_in_memory", (double)r->n);
    cJSON *mem = cJSON_AddObjectToObject(o, "memory");
    cJSON_AddNumberToObject(mem, "rss_kb", (double)r->rss_kb);
    cJSON_AddNumberToObject(mem, "budget_mb", (double)(r->budget_bytes >> 20));
    cJSON_AddNumberToObject(mem, "chats_evicted", (double)r->evicted);
    cJSON_AddNumberToObject(mem, "index_moved_cold", (double)r->cold_moved);
    cJSON_AddNumberToObject(mem, "index_loaded_cold", (double)r->cold_loaded);
    cJSON_AddNumberToObject(mem, "index_waited", (double)r->cold_waited);
    cJSON_AddNumberToObject(mem, "index_corrupt", (double)r->cold_bad);
    cJSON_AddNumberToObject(o, "events", (double)r->events);
    cJSON_AddNumberToObject(o, "denied", (double)r->denied);
    cJSON_AddNumberToObject(o, "duplicates", (double)r->duplicates);
    cJSON *ob = cJSON_AddObjectToObject(o, "outbox");
    cJSON_AddNumberToObject(ob, "pending", (double)r->outbox.pending);
    cJSON_AddNumberToObject(ob, "sent", (double)r->outbox.sent);
    cJSON_AddNumberToObject(ob, "failed", (double)r->outbox.failed);
    if (r->outbox.last_error[0])
        cJSON_AddStringToObject(ob, "last_failure", r->outbox.last_error);
    rt_stats st;
    rt_stats_get(rt_ctx_runtime(cx), &st);
    cJSON_AddNumberToObject(o, "actors", (double)(st.spawned - st.exited));
    cJSON_AddNumberToObject(o, "messages_handled", (double)st.total.msgs);
    cJSON_AddNumberToObject(o, "dead_letters", (double)st.dead_letters);
    cJSON *p = cJSON_AddObjectToObject(o, "platforms");
    for (size_t i = 0; i < r->nad; i++) {
        cJSON *e = cJSON_AddObjectToObject(p, r->ad[i].platform);
        cJSON_AddStringToObject(e, "state", "connected");
        cJSON_AddNullToObject(e, "error_code");
        cJSON_AddNullToObject(e, "error_message");
        cJSON_AddNumberToObject(e, "updated_at", r->ad[i].since);
        if (r->ad[i].home)
            cJSON_AddStringToObject(e, "home_channel", r->ad[i].home);
        status_sup(e, sup_of(r, r->ad[i].platform), true);
    }
    for (size_t i = 0; i < r->nsup; i++)
        if (!adapter_of(r, r->sup[i].platform))
            status_sup(cJSON_AddObjectToObject(p, r->sup[i].platform), &r->sup[i], false);
    cJSON_AddNumberToObject(o, "updated_at", now_epoch());
    char *txt = cJSON_Print(o);
    cJSON_Delete(o);
    char *data = rt_xstrdup(txt);
    cJSON_free(txt);
    gw_io_write(cx, r->sh->io, r->status_path, data, strlen(data), 0644, 0, 0);
}

static void spawn_chat(rt_ctx *cx, gw_router *r, gw_entry *e, adapter_ent *a, bool fresh)
{
    char *ctx = context_for(r, &e->origin);
    char *hint = NULL;
    if (fresh && a && !a->home && !a->caps.api) {
        char title[64];
        snprintf(title, sizeof(title), "%c%s", toupper((unsigned char)e->platform[0]),
                 e->platform + 1);
        hint = rt_xasprintf("\xf0\x9f\x93\xac No home channel is set for %s. A home channel is "
                            "where Hermes delivers cron job results and cross-platform "
                            "messages.\n\nType /sethome to make this chat your home channel, or "
                            "ignore to skip.",
                            title);
    }
    gw_chat_init in = {
        .shared = r->sh,
        .key = e->key,
        .origin = &e->origin,
        .adapter = a ? a->ref : 0,
        .caps = a ? a->caps : (gw_caps){0},
        .session_id = e->session_id,
        .existing = !fresh,
        .context = ctx,
        .home_hint = hint,
        .progress_mode = gw_progress_mode(r->sh->cfg, e->platform),
    };
    e->chat = gw_chat_spawn(cx, &in);
    e->chat_mon = rt_monitor(cx, e->chat);
    if (e->chat)
        rt_map_put(&r->by_chat, e->chat, e);
    rt_free(ctx);
    rt_free(hint);
}

static void recover_platform(rt_ctx *cx, gw_router *r, adapter_ent *a)
{
    for (size_t i = 0; i < r->n; i++) {
        gw_entry *e = r->entries[i];
        if (!e->unanswered || !e->platform || strcmp(e->platform, a->platform) != 0 ||
            !e->has_origin)
            continue;
        e->unanswered = false;
        if (!e->chat)
            spawn_chat(cx, r, e, a, false);
        rt_send(cx, e->chat, rt_msg_new(GW_CHAT_RECOVER, sizeof(rt_msg)));
    }
}

static void replay_platform(rt_ctx *cx, gw_router *r, adapter_ent *a);

static void on_adapter_up(rt_ctx *cx, gw_router *r, gw_msg_adapter *m)
{
    adapter_ent *a = adapter_of(r, m->platform);
    if (!a) {
        if (r->nad == MAX_ADAPTERS) {
            RT_ERROR("gateway", "too many adapters; %s ignored", m->platform);
            return;
        }
        a = &r->ad[r->nad++];
        memset(a, 0, sizeof(*a));
        a->platform = rt_xstrdup(m->platform);
    } else if (a->mon) {
        rt_demonitor(cx, a->ref, a->mon);
    }
    a->ref = m->ref;
    a->mon = rt_monitor(cx, m->ref);
    a->caps = m->caps;
    if (r->sh->outbox)
        rt_send(cx, r->sh->outbox, gw_outbox_adapter_new(m->platform, m->ref, &m->caps, true));
    a->since = now_epoch();
    if (m->home_channel) {
        rt_free(a->home);
        a->home = rt_xstrdup(m->home_channel);
    }
    RT_INFO("gateway", "%s connected", m->platform);
    status_write(cx, r);
    recover_platform(cx, r, a);
    replay_platform(cx, r, a);
}

static void adapter_gone(rt_ctx *cx, gw_router *r, size_t i)
{
    RT_WARN("gateway", "%s disconnected", r->ad[i].platform);
    if (r->sh->outbox)
        rt_send(cx, r->sh->outbox,
                gw_outbox_adapter_new(r->ad[i].platform, r->ad[i].ref, NULL, false));
    rt_free(r->ad[i].platform);
    rt_free(r->ad[i].home);
    rt_free(r->ad[i].home_name);
    r->ad[i] = r->ad[--r->nad];
    status_write(cx, r);
}

/* A supervisor's word on a platform it restarts (or gave up on): remembered for status. */
static void note_restart(gw_router *r, const gw_msg_adapter *m)
{
    sup_ent *s = sup_of(r, m->platform);
    if (!s) {
        if (r->nsup == MAX_ADAPTERS || !m->platform)
            return;
        s = &r->sup[r->nsup++];
        memset(s, 0, sizeof(*s));
        s->platform = rt_xstrdup(m->platform);
    }
    s->restarts = m->restarts;
    s->gave_up = m->gave_up;
    rt_strlcpy(s->detail, m->detail, sizeof(s->detail));
}

static void on_adapter_down(rt_ctx *cx, gw_router *r, gw_msg_adapter *m)
{
    if (m->restarts > 0 || m->gave_up) {
        note_restart(r, m);
        if (!adapter_of(r, m->platform) || adapter_of(r, m->platform)->ref != m->ref)
            status_write(cx, r); /* else adapter_gone below writes it */
    }
    for (size_t i = 0; i < r->nad; i++)
        if (r->ad[i].ref == m->ref) {
            rt_demonitor(cx, r->ad[i].ref, r->ad[i].mon);
            adapter_gone(cx, r, i);
            return;
        }
}

/* =============================================================== events */

static bool is_status(const char *text)
{
    char *buf = NULL;
    const char *name = NULL, *args = NULL;
    bool st = gw_parse_command(text, &buf, &name, &args) && strcmp(name, "status") == 0;
    rt_free(buf);
    return st;
}

static void fmt_local(double epoch, char *buf, size_t len)
{
    time_t t = (time_t)epoch;
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M", &tm);
}

static void reply_status(rt_ctx *cx, gw_router *r, gw_entry *e, gw_msg_event *ev)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    char created[32], active[32];
    fmt_local(e->created_at, created, sizeof(created));
    fmt_local(e->updated_at, active, sizeof(active));
    rt_buf_printf(&b,
                  "**Created:** %s\n**Last Activity:** %s\n**Tokens:** %lld\n**Agent Running:** "
                  "%s\n\n**Connected Platforms:** ",
                  created, active, (long long)(e->input_tokens + e->output_tokens),
                  e->busy ? "Yes \xe2\x9a\xa1" : "No");
    for (size_t i = 0; i < r->nad; i++) {
        const sup_ent *s = sup_of(r, r->ad[i].platform);
        rt_buf_printf(&b, "%s%s", i ? ", " : "", r->ad[i].platform);
        if (s && s->restarts)
            rt_buf_printf(&b, " (restarted %d time%s)", s->restarts, s->restarts == 1 ? "" : "s");
    }
    /* the optional title line comes from state.db: gw_status_reply asks for it (gw_cmd_info.c) */
    char *head = rt_xasprintf(
        "\xf0\x9f\x93\x8a **Hermes Gateway Status**\n\n**Session ID:** `%s`\n", e->session_id);
    gw_status_reply(cx, r->sh->store, ev->adapter, &ev->reply, e->session_id, head,
                    rt_buf_cstr(&b));
    rt_free(head);
    rt_buf_fini(&b);
}

static gw_entry *entry_for(rt_ctx *cx, gw_router *r, gw_msg_event *ev, const char *key,
                           adapter_ent *a, bool *fresh)
{
    double now = now_epoch();
    gw_entry *e = find(r, key);
    *fresh = false;
    bool new_id = !e;
    if (!e) {
        e = rt_xcalloc(1, sizeof(*e));
        e->key = rt_xstrdup(key);
        e->session_id = ev->session_id ? rt_xstrdup(ev->session_id) : gw_new_session_id();
        e->created_at = now;
        e->platform = rt_xstrdup(ev->src.platform);
        e->chat_type = rt_xstrdup(ev->src.chat_type ? ev->src.chat_type : "dm");
        e->display_name = ev->src.chat_name ? rt_xstrdup(ev->src.chat_name) : NULL;
        gw_source_copy(&e->origin, &ev->src);
        e->has_origin = ev->src.chat_id != NULL;
        insert(r, e);
        *fresh = ev->session_id == NULL; /* an explicit id may already be in state.db */
    } else if (!ev->session_id) {
        gw_reset_policy p = gw_reset_policy_for(r->sh->cfg, e->platform, e->chat_type);
        char why[96];
        const char *reason = e->busy ? NULL : gw_reset_due(e, &p, now, why, sizeof(why));
        if (reason) {
            bool had_activity = e->input_tokens + e->output_tokens > 0;
            bool notify = e->suspended || (p.notify && had_activity);
            char *old = e->session_id;
            e->session_id = gw_new_session_id();
            e->created_at = now;
            e->suspended = false;
            e->memory_flushed = false;
            e->input_tokens = e->output_tokens = e->total_tokens = e->last_prompt_tokens = 0;
            if (e->chat) {
                rt_send(cx, e->chat, gw_chat_reset_new(e->session_id, reason, notify));
            } else {
                if (r->sh->store)
                    rt_send(cx, r->sh->store, &st_end_session_new(old, "session_reset")->hdr);
                *fresh = true;
                if (notify && a)
                    rt_send(
                        cx, a->ref,
                        gw_out_text_new(GW_OUT_TEXT, &ev->reply,
                                        "\xe2\x97\x90 Session automatically reset. Conversation "
                                        "history cleared.\nAdjust reset timing in config.yaml "
                                        "under session_reset.",
                                        GW_TEXT_NOTICE));
            }
            RT_INFO("gateway", "session %s reset (%s)", old, reason);
            rt_free(old);
            new_id = true;
        }
        /* the origin follows the conversation (names change, threads move) */
        gw_source_fini(&e->origin);
        gw_source_copy(&e->origin, &ev->src);
        e->has_origin = ev->src.chat_id != NULL;
    }
    e->updated_at = now;
    if (new_id)
        index_changed_now(cx, r);
    else
        index_changed(cx, r);
    return e;
}

/*
 * Exactly-once handling: an update from a platform that names itself (message_id) is
 * remembered when it is accepted, in memory and in state.db's hc_inbound. The store gets the
 * key before anything the update causes (the chat actor, the session, their writes), so when
 * a restart finds the user's message in state.db, it finds its key too, and the platform's
 * redelivery of the update is dropped here instead of being answered a second time. The API
 * server's requests are left alone: Idempotency-Key is the API's own mechanism (api_idem.c).
 */
static bool is_duplicate(gw_router *r, const gw_msg_event *ev, bool api)
{
    if (api || !ev->message_id || !*ev->message_id)
        return false;
    if (!gw_seen_has(r->seen, gw_seen_key(ev->src.platform, ev->message_id)))
        return false;
    r->duplicates++;
    RT_INFO("gateway", "%s update %.80s was already handled: not answering it again",
            ev->src.platform, ev->message_id);
    return true;
}

static void remember(rt_ctx *cx, gw_router *r, const gw_msg_event *ev, const char *key, bool api,
                     bool journal)
{
    if (api || !ev->message_id || !*ev->message_id)
        return;
    (void)gw_seen_add(r->seen, gw_seen_key(ev->src.platform, ev->message_id));
    if (!r->sh->store)
        return;
    st_msg_inbound *m = st_inbound_new(ev->src.platform, ev->message_id, key);
    if (journal) { /* the inbox journal row, in the same store write as the key */
        m->event_json = gw_inbox_json(ev, true);
        if (strlen(m->event_json) > ST_TEXT_MAX) { /* the store would refuse the key too */
            rt_free(m->event_json);
            m->event_json = NULL;
        }
    }
    rt_send(cx, r->sh->store, &m->hdr);
}

/* ======================================================== inbox journal */

static void json_str(cJSON *o, const char *name, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, name, v);
}

static char *json_dup(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? rt_xstrdup(v->valuestring) : NULL;
}

char *gw_inbox_json(const gw_msg_event *ev, bool media)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *src = cJSON_AddObjectToObject(o, "src");
    json_str(src, "platform", ev->src.platform);
    json_str(src, "chat_id", ev->src.chat_id);
    json_str(src, "chat_name", ev->src.chat_name);
    json_str(src, "chat_type", ev->src.chat_type);
    json_str(src, "user_id", ev->src.user_id);
    json_str(src, "user_name", ev->src.user_name);
    json_str(src, "thread_id", ev->src.thread_id);
    json_str(src, "user_id_alt", ev->src.user_id_alt);
    cJSON *to = cJSON_AddObjectToObject(o, "reply");
    json_str(to, "chat_id", ev->reply.chat_id);
    json_str(to, "thread_id", ev->reply.thread_id);
    json_str(to, "reply_to", ev->reply.reply_to);
    json_str(o, "text", ev->text);
    json_str(o, "message_id", ev->message_id);
    json_str(o, "session_id", ev->session_id);
    cJSON_AddNumberToObject(o, "kind", ev->kind);
    cJSON_AddBoolToObject(o, "internal", ev->internal);
    cJSON *m = cJSON_AddArrayToObject(o, "media");
    for (size_t i = 0; media && i < ev->nmedia; i++)
        if (ev->media[i])
            cJSON_AddItemToArray(m, cJSON_CreateString(ev->media[i]));
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *out = rt_xstrdup(txt ? txt : "{}");
    cJSON_free(txt);
    return out;
}

gw_msg_event *gw_inbox_event(const char *json)
{
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(o, "src");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(o, "reply");
    char *platform = cJSON_IsObject(src) ? json_dup(src, "platform") : NULL;
    if (!platform || !cJSON_IsObject(to)) {
        rt_free(platform);
        cJSON_Delete(o);
        return NULL;
    }
    gw_msg_event *ev = gw_event_new(NULL, NULL, NULL, NULL, NULL);
    ev->src.platform = platform;
    ev->src.chat_id = json_dup(src, "chat_id");
    ev->src.chat_name = json_dup(src, "chat_name");
    ev->src.chat_type = json_dup(src, "chat_type");
    ev->src.user_id = json_dup(src, "user_id");
    ev->src.user_name = json_dup(src, "user_name");
    ev->src.thread_id = json_dup(src, "thread_id");
    ev->src.user_id_alt = json_dup(src, "user_id_alt");
    ev->reply.chat_id = json_dup(to, "chat_id");
    ev->reply.thread_id = json_dup(to, "thread_id");
    ev->reply.reply_to = json_dup(to, "reply_to");
    char *text = json_dup(o, "text");
    if (text) {
        rt_free(ev->text);
        ev->text = text;
    }
    ev->message_id = json_dup(o, "message_id");
    ev->session_id = json_dup(o, "session_id");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "kind");
    ev->kind = cJSON_IsNumber(k) ? k->valueint : GW_KIND_TEXT;
    ev->internal = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "internal"));
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "media");
    int n = cJSON_IsArray(m) ? cJSON_GetArraySize(m) : 0;
    if (n > 0) {
        ev->media = rt_xcalloc((size_t)n, sizeof(*ev->media));
        const cJSON *it;
        cJSON_ArrayForEach(it, m)
        {
            if (cJSON_IsString(it))
                ev->media[ev->nmedia++] = rt_xstrdup(it->valuestring);
        }
    }
    cJSON_Delete(o);
    return ev;
}

void gw_inbox_put(rt_ctx *cx, rt_ref store, const gw_msg_event *ev, const char *session_key)
{
    if (!store || !ev->message_id || !*ev->message_id || !ev->src.platform)
        return;
    char *json = gw_inbox_json(ev, false);
    if (strlen(json) > ST_TEXT_MAX) { /* too big to keep: the first row stays */
        rt_free(json);
        return;
    }
    st_msg_inbound *m = st_inbound_new(ev->src.platform, ev->message_id, session_key);
    m->event_json = json;
    rt_send(cx, store, &m->hdr);
}

void gw_inbox_done(rt_ctx *cx, rt_ref store, const gw_msg_event *ev)
{
    if (!store || !ev->message_id || !*ev->message_id || !ev->src.platform)
        return;
    rt_send(cx, store, &st_inbox_done_new(ev->src.platform, ev->message_id)->hdr);
}

/* An authorized event whose entry is in memory (or does not exist yet): to its conversation.
 * replay: a journal row of the last run (its key is known already, its row is there);
 * remembered: its key went to hc_inbound when it arrived (it waited for its entry). */
static void deliver_event(rt_ctx *cx, gw_router *r, gw_msg_event *ev, const char *key, bool replay,
                          bool remembered)
{
    adapter_ent *a = adapter_of(r, ev->src.platform);
    bool api = a && a->caps.api;
    bool fresh = false;
    gw_entry *e = entry_for(cx, r, ev, key, a, &fresh);
    bool status = !api && is_status(ev->text);
    if (!remembered && !r->draining && !replay) /* refused while draining: a redelivery after
                                                   the restart is answered */
        remember(cx, r, ev, key, api, !status); /* /status is answered here and now */
    if (status) {
        reply_status(cx, r, e, ev);
        return;
    }
    if (r->draining) {
        rt_send(cx, ev->adapter,
                gw_out_text_new(GW_OUT_TEXT, &ev->reply,
                                "\xe2\x8f\xb3 Gateway is shutting down and is not accepting new "
                                "work right now.",
                                GW_TEXT_NOTICE));
        rt_send(cx, ev->adapter, gw_out_turn_end_new(&ev->reply, GW_OUTCOME_CANCELLED, NULL));
        return;
    }
    if (!e->chat)
        spawn_chat(cx, r, e, a, fresh);
    gw_msg_event *fwd = gw_event_take(ev, GW_MSG_EVENT);
    if (!api && gw_command_is_urgent(fwd->text))
        rt_send_urgent(cx, e->chat, &fwd->hdr);
    else
        rt_send(cx, e->chat, &fwd->hdr);
}

/* Where an event for key must wait, or NULL when it can go on now: behind a load of its cold
 * entry (started here when the key is not in memory and hc_session_index may have it), or
 * behind the eviction of its chat. */
static gw_waitq *waitq_for(rt_ctx *cx, gw_router *r, const char *key)
{
    gw_entry *e = find(r, key);
    if (e) {
        if (!e->evicting)
            return NULL;
        if (!e->wait)
            e->wait = rt_xcalloc(1, sizeof(*e->wait));
        return e->wait;
    }
    cold_load *l = load_find(r, key);
    if (l)
        return &l->q;
    if (!r->index || r->cold_rows <= 0)
        return NULL; /* nothing ever left memory: a key not here is a new conversation */
    l = rt_xcalloc(1, sizeof(*l));
    l->key = rt_xstrdup(key);
    uint64_t h = key_hash(key);
    l->next = rt_map_get(&r->loading, h);
    rt_map_put(&r->loading, h, l);
    l->all_next = r->loads;
    if (r->loads)
        r->loads->all_prev = l;
    r->loads = l;
    rt_send(cx, r->index, &st_index_get_new(key, rt_self(cx), ++r->load_tag)->hdr);
    return &l->q;
}

/* The events q held back, to their conversation in order. */
static void waitq_release(rt_ctx *cx, gw_router *r, gw_waitq *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++) {
        deliver_event(cx, r, q->v[i].ev, key, q->v[i].replay, true);
        rt_msg_free(&q->v[i].ev->hdr);
    }
    q->n = 0;
}

/* An authorized event: to its conversation. replay: a journal row of the last run (its key
 * is known already, its row is there). */
static void route_event(rt_ctx *cx, gw_router *r, gw_msg_event *ev, bool replay)
{
    adapter_ent *a = adapter_of(r, ev->src.platform);
    if (!ev->adapter && a)
        ev->adapter = a->ref;
    if (!ev->adapter) {
        RT_WARN("gateway", "event from %s with no adapter to answer it: dropped",
                ev->src.platform ? ev->src.platform : "?");
        return;
    }
    bool api = a && a->caps.api;
    if (!replay && is_duplicate(r, ev, api))
        return;
    char *key = gw_session_key(&ev->src, r->sh->group_per_user, r->sh->thread_per_user);
    gw_waitq *q = waitq_for(cx, r, key);
    if (q) {
        /* its key is remembered now, so a redelivery meanwhile is known as one */
        if (!r->draining && !replay)
            remember(cx, r, ev, key, api, !(!api && is_status(ev->text)));
        waitq_push(q, gw_event_take(ev, GW_MSG_EVENT), replay);
        r->cold_waited++;
    } else {
        deliver_event(cx, r, ev, key, replay, false);
    }
    rt_free(key);
}

static void route(rt_ctx *cx, gw_router *r, gw_msg_event *ev)
{
    route_event(cx, r, ev, false);
}

/* The journal rows of platform a (gw_start kept them), in received order. */
static void replay_platform(rt_ctx *cx, gw_router *r, adapter_ent *a)
{
    size_t keep = 0;
    for (size_t i = 0; i < r->nreplay; i++) {
        gw_msg_event *ev = r->replay[i];
        if (strcmp(ev->src.platform, a->platform) != 0) {
            r->replay[keep++] = ev;
            continue;
        }
        RT_INFO("gateway",
                "%s update %.80s was accepted but never reached its conversation: "
                "passing it on now",
                ev->src.platform, ev->message_id ? ev->message_id : "?");
        ev->adapter = a->ref;
        route_event(cx, r, ev, true);
        rt_msg_free(&ev->hdr);
    }
    r->nreplay = keep;
}

static void on_event(rt_ctx *cx, gw_router *r, gw_msg_event *ev)
{
    r->events++;
    gw_event_seq(ev);
    if (!ev->src.platform) {
        RT_WARN_ONCE("gateway", "an event without a platform was dropped");
        return;
    }
    if (!ev->internal) {
        int v = gw_auth_check(r->auth, &ev->src);
        if (v == GW_AUTH_DENY) {
            r->denied++;
            return; /* no user id: silently */
        }
        if (v == GW_AUTH_UNKNOWN) {
            rt_send(cx, r->pairing, gw_pair_check_new(ev, rt_self(cx)));
            return;
        }
    }
    route(cx, r, ev);
}

static void on_cancel(rt_ctx *cx, gw_router *r, gw_msg_cancel *m)
{
    gw_source src = {.platform = m->platform, .chat_type = "dm", .chat_id = m->to.chat_id};
    char *key = gw_session_key(&src, r->sh->group_per_user, r->sh->thread_per_user);
    gw_entry *e = find(r, key);
    rt_free(key);
    if (e && e->chat) /* urgent: ahead of whatever the chat still has queued */
        rt_send_urgent(cx, e->chat, gw_cancel_new(m->platform, &m->to, m->session_id, m->adapter));
}

static void on_chat_update(rt_ctx *cx, gw_router *r, gw_chat_update *u)
{
    gw_entry *e = find(r, u->key);
    if (!e)
        return;
    bool new_id = strcmp(e->session_id, u->session_id) != 0;
    if (new_id) {
        rt_free(e->session_id);
        e->session_id = u->session_id;
        u->session_id = NULL;
        if (u->reset)
            e->created_at = now_epoch();
    }
    e->input_tokens = u->input_tokens;
    e->output_tokens = u->output_tokens;
    e->total_tokens = u->input_tokens + u->output_tokens;
    e->last_prompt_tokens = u->last_prompt_tokens;
    e->busy = u->busy;
    e->updated_at = now_epoch();
    if (new_id)
        index_changed_now(cx, r);
    else
        index_changed(cx, r);
    if (r->draining && r->drain_reply) {
        for (size_t i = 0; i < r->n; i++)
            if (r->entries[i]->busy && r->entries[i]->chat)
                return;
        rt_send(cx, rt_self(cx), rt_timeout_new(TAG_DRAIN)); /* everyone is done */
    }
}

static void on_sethome(rt_ctx *cx, gw_router *r, gw_chat_sethome *h)
{
    adapter_ent *a = adapter_of(r, h->platform);
    if (!a)
        return;
    rt_free(a->home);
    a->home = rt_xstrdup(h->chat_id);
    rt_free(a->home_name);
    a->home_name = h->chat_name ? rt_xstrdup(h->chat_name) : NULL;
    char buf[96];
    const char *var = gw_home_var(h->platform, buf, sizeof(buf));
    char *env = rt_xasprintf("%s/.env", r->sh->home);
    gw_io_setenv(cx, r->sh->io, env, var, h->chat_id, 0, 0);
    rt_free(env);
    char *msg = rt_xasprintf("\xe2\x9c\x85 Home channel set to **%s** (ID: %s).\nCron jobs and "
                             "cross-platform messages will be delivered here.",
                             h->chat_name ? h->chat_name : h->chat_id, h->chat_id);
    rt_send(cx, a->ref, gw_out_text_new(GW_OUT_TEXT, &h->to, msg, GW_TEXT_NOTICE));
    rt_free(msg);
    status_write(cx, r);
}

static void on_deliver(rt_ctx *cx, gw_router *r, gw_msg_deliver *d)
{
    gw_msg_delivered *res = RT_MSG_NEW(gw_msg_delivered, GW_MSG_DELIVERED);
    res->tag = d->tag;
    adapter_ent *a = adapter_of(r, d->platform);
    const char *chat = d->chat_id ? d->chat_id : (a ? a->home : NULL);
    if (!a) {
        res->err = -ENOENT;
        snprintf(res->errmsg, sizeof(res->errmsg), "platform '%s' is not connected",
                 d->platform ? d->platform : "");
    } else if (!chat) {
        res->err = -EDESTADDRREQ;
        snprintf(res->errmsg, sizeof(res->errmsg), "no home channel is set for %s", d->platform);
    } else {
        gw_target t = {.chat_id = (char *)chat, .thread_id = d->thread_id};
        if (r->sh->outbox && !a->caps.api)
            gw_outbox_say(cx, r->sh->outbox, d->platform, &a->caps, &t, d->text, GW_TEXT_NOTICE);
        else
            rt_send(cx, a->ref, gw_out_text_new(GW_OUT_TEXT, &t, d->text, GW_TEXT_NOTICE));
        res->chat_id = rt_xstrdup(chat);
    }
    res->hdr.drop = gw__drop_delivered;
    if (d->reply_to)
        rt_send(cx, d->reply_to, &res->hdr);
    else
        rt_msg_free(&res->hdr);
}

/* ======================================================== cold entries */

/*
 * An entry leaves memory (and sessions.json) for hc_session_index when nothing runs for it
 * (no chat actor, no turn, nothing unanswered, nothing waiting) and its conversation has been
 * quiet longer than gateway.index_warm_hours, or the reset policy has expired its session
 * (the next message starts a new one anyway); under memory pressure every such entry goes.
 * The rows go in one write per upkeep; a message for a key not in memory reads the row
 * (waitq_for) and the entry comes back as it was: the reset policy, /status, /resume and
 * the token counts see the same fields. A row that does not parse is logged and the
 * conversation starts a fresh session.
 */
static void on_cold_row(rt_ctx *cx, gw_router *r, st_msg_index_row *m)
{
    cold_load *l = m->key ? load_take(r, m->key) : NULL;
    if (!l)
        return;
    bool had_row = m->entry != NULL;
    if (m->err) {
        RT_WARN("gateway",
                "cannot read the sessions index entry of %s from state.db (%s): the "
                "conversation starts a fresh session",
                l->key, m->errmsg);
    } else if (m->entry && !find(r, l->key)) {
        char why[96] = "";
        gw_entry *e = gw_entry_parse(l->key, m->entry, why, sizeof(why));
        if (e) {
            e->in_cold = true;
            insert(r, e);
            r->cold_loaded++;
            index_changed_now(cx, r); /* back in sessions.json without waiting */
        } else {
            r->cold_bad++;
            RT_WARN("gateway",
                    "the sessions index entry of %s in state.db is corrupt (%s): the "
                    "conversation starts a fresh session",
                    l->key, why);
        }
    }
    waitq_release(cx, r, &l->q, l->key);
    gw_entry *e = find(r, l->key);
    if (e && had_row)
        e->in_cold = true; /* its row is overwritten when it leaves again */
    load_free(l);
}

typedef struct policy_cache {
    const char *platform;
    gw_reset_policy p;
} policy_cache;

/* Move the entries that may go (all idle ones under pressure) to hc_session_index. */
static size_t move_cold(rt_ctx *cx, gw_router *r, bool pressure, double now)
{
    if (!r->index)
        return 0;
    policy_cache pc[16];
    size_t npc = 0, keep = 0, moved = 0;
    st_msg_index_put *put = NULL;
    for (size_t i = 0; i < r->n; i++) {
        gw_entry *e = r->entries[i];
        bool go = !e->chat && !e->busy && !e->unanswered && !e->evicting && !e->wait &&
                  e->session_id && e->key;
        if (go && !pressure && now - e->updated_at <= r->warm_s) {
            const gw_reset_policy *p = NULL;
            for (size_t k = 0; k < npc && !p; k++)
                if (pc[k].platform && e->platform && strcmp(pc[k].platform, e->platform) == 0)
                    p = &pc[k].p;
            gw_reset_policy tmp;
            if (!p) {
                tmp = gw_reset_policy_for(r->sh->cfg, e->platform, e->chat_type);
                if (npc < RT_ARRAY_LEN(pc) && e->platform)
                    pc[npc++] = (policy_cache){e->platform, tmp};
                p = &tmp;
            }
            char why[96];
            go = gw_reset_due(e, p, now, why, sizeof(why)) != NULL;
        }
        if (!go) {
            r->entries[keep++] = e;
            continue;
        }
        if (!put)
            put = st_index_put_new();
        char *txt = gw_entry_text(e);
        st_index_put_add(put, e->key, e->session_id, e->platform, txt, e->updated_at);
        rt_free(txt);
        if (!e->in_cold)
            r->cold_rows++;
        unlink_hash(r, e);
        gw_entry_free(e);
        moved++;
    }
    r->n = keep;
    if (r->cap > 64 && r->n < r->cap / 4) { /* give the array back as the index shrinks */
        r->cap /= 2;
        r->entries = rt_xrealloc(r->entries, r->cap * sizeof(*r->entries));
    }
    if (put) {
        rt_send(cx, r->index, &put->hdr); /* before any read of these keys (same sender) */
        r->cold_moved += moved;
        index_changed(cx, r);
    }
    return moved;
}

/* The process's resident set, in KB (0 when /proc cannot tell). */
static int64_t rss_kb_now(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    unsigned long long size = 0, resident = 0;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return 0;
    long page = sysconf(_SC_PAGESIZE);
    return (int64_t)(resident * (unsigned long long)(page > 0 ? page : 4096) / 1024);
}

static int by_last_activity(const void *a, const void *b)
{
    double x = (*(gw_entry *const *)a)->updated_at, y = (*(gw_entry *const *)b)->updated_at;
    return x < y ? -1 : x > y;
}

/* Over gateway.memory_budget_mb: the idle half of the chat actors (least recently active
 * first) end as the idle timeout ends them, and every idle entry leaves memory. Chats in a
 * turn are left alone. One log line per upkeep under pressure. */
static void check_budget(rt_ctx *cx, gw_router *r, double now)
{
    r->rss_kb = rss_kb_now();
    if (r->budget_bytes <= 0 || r->rss_kb * 1024 <= r->budget_bytes)
        return;
    r->pressure_ticks++;
    gw_entry **idle = NULL;
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        gw_entry *e = r->entries[i];
        if (e->chat && !e->busy && !e->evicting && !e->wait) {
            if (!idle)
                idle = rt_xcalloc(r->n, sizeof(*idle));
            idle[n++] = e;
        }
    }
    if (n)
        qsort(idle, n, sizeof(*idle), by_last_activity);
    size_t k = (n + 1) / 2;
    for (size_t i = 0; i < k; i++) {
        idle[i]->evicting = true;
        rt_send(cx, idle[i]->chat, rt_msg_new(GW_CHAT_EVICT, sizeof(rt_msg)));
    }
    rt_free(idle);
    r->evicted += k;
    size_t moved = move_cold(cx, r, true, now);
    if (!k && !moved)
        return; /* nothing idle left to let go: said once, when it went */
    RT_WARN("gateway",
            "memory budget: RSS %lld MB is over gateway.memory_budget_mb (%lld MB): %zu of %zu "
            "idle conversation(s) leave memory, %zu sessions index entries moved to state.db",
            (long long)(r->rss_kb / 1024), (long long)(r->budget_bytes >> 20), k, n, moved);
    rt_send(cx, r->sh->io, rt_msg_new(GW_IO_TRIM, sizeof(rt_msg)));
}

/* The router's upkeep (its tick, or GW_ROUTER_TICK). */
static void upkeep(rt_ctx *cx, gw_router *r)
{
    double now = now_epoch();
    if (!r->draining)
        check_budget(cx, r, now);
    if (!r->draining)
        (void)move_cold(cx, r, false, now);
}

/* GW_CHAT_KEPT: the chat was busy when asked to leave; what waited goes to it now. */
static void on_chat_kept(rt_ctx *cx, gw_router *r, gw_chat_update *u)
{
    gw_entry *e = u->key ? find(r, u->key) : NULL;
    if (!e || !e->evicting)
        return;
    e->evicting = false;
    if (e->wait) {
        gw_waitq *q = e->wait;
        e->wait = NULL;
        waitq_release(cx, r, q, e->key);
        waitq_fini(q);
        rt_free(q);
    }
}

/* ============================================================ shutdown */

static void finish_drain(rt_ctx *cx, gw_router *r, bool timed_out)
{
    for (size_t i = 0; i < r->n; i++) {
        gw_entry *e = r->entries[i];
        if (e->chat && e->busy)
            rt_send_urgent(cx, e->chat,
                           gw_chat_drain_new("\xe2\x9a\xa0\xef\xb8\x8f Gateway shutting down "
                                             "\xe2\x80\x94 Your current task will be interrupted.",
                                             AG_INT_SHUTDOWN));
    }
    r->state = "stopped";
    r->drain_clean = !timed_out;
    status_write(cx, r);
    index_write_all(cx, r, rt_self(cx), IO_TAG_INDEX);
    if (r->drain_clean) {
        /* written after the index (the writer keeps order): its presence says both landed */
        char *p = rt_xasprintf("%s/.clean_shutdown", r->sh->home);
        gw_io_write(cx, r->sh->io, p, rt_xstrdup(""), 0, 0600, rt_self(cx), IO_TAG_CLEAN);
        rt_free(p);
    }
}

static void on_shutdown(rt_ctx *cx, gw_router *r, gw_shutdown *s)
{
    if (r->draining)
        return;
    r->draining = true;
    r->drain_reply = s->reply_to;
    r->drain_tag = s->tag;
    r->state = "draining";
    status_write(cx, r);
    size_t running = 0;
    for (size_t i = 0; i < r->n; i++) {
        gw_entry *e = r->entries[i];
        if (!e->chat)
            continue;
        rt_send(cx, e->chat, gw_chat_drain_new(NULL, 0)); /* refuse new turns, finish this one */
        running += e->busy;
    }
    if (!running)
        finish_drain(cx, r, false);
    else
        rt_send_after(cx, rt_self(cx), rt_timeout_new(TAG_DRAIN + 100),
                      s->drain_ms > 0 ? s->drain_ms : DRAIN_DEFAULT_S * 1000);
}

/* ============================================================== actor */

static void on_timeout(rt_ctx *cx, gw_router *r, uint64_t tag)
{
    switch (tag) {
    case TAG_INDEX:
        r->index_timer = false;
        if (r->index_dirty)
            index_write(cx, r, 0, 0);
        break;
    case TAG_INDEX_NOW:
        r->index_now_timer = false;
        if (r->index_dirty)
            index_changed_now(cx, r);
        break;
    case TAG_TICK:
        upkeep(cx, r);
        /* Conversations and resting agents leave memory all the time: the writer hands what
         * glibc keeps back to the system when that is worth it (gw_io.c). */
        rt_send(cx, r->sh->io, rt_msg_new(GW_IO_TRIM, sizeof(rt_msg)));
        if (!r->draining) {
            status_write(cx, r);
            rt_send_after(cx, rt_self(cx), rt_timeout_new(TAG_TICK), TICK_MS);
        }
        break;
    case TAG_DRAIN: /* every turn finished */
        if (r->drain_reply && strcmp(r->state, "draining") == 0)
            finish_drain(cx, r, false);
        break;
    case TAG_DRAIN + 100: /* the drain timed out */
        if (strcmp(r->state, "draining") == 0)
            finish_drain(cx, r, true);
        break;
    default: break;
    }
}

/* The file writer finished the index (and, after a clean drain, .clean_shutdown). */
static void drain_step(rt_ctx *cx, gw_router *r, uint64_t io_tag)
{
    if (io_tag == IO_TAG_INDEX && r->drain_clean)
        return; /* .clean_shutdown comes next */
    if (r->drain_reply) {
        rt_send(cx, r->drain_reply, rt_timeout_new(r->drain_tag));
        r->drain_reply = 0;
    }
}

static void router_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    gw_router *r = *(gw_router **)state;
    switch (m->type) {
    case GW_MSG_EVENT: on_event(cx, r, (gw_msg_event *)m); break;
    case GW_PAIR_ALLOWED: route(cx, r, (gw_msg_event *)m); break;
    case GW_MSG_ADAPTER_UP: on_adapter_up(cx, r, (gw_msg_adapter *)m); break;
    case GW_MSG_SENT: /* an adapter's answer about an outbox entry */
        if (r->sh->outbox) {
            const gw_msg_sent *s = (const gw_msg_sent *)m;
            gw_ack(cx, r->sh->outbox, s->delivery, s->err, s->permanent, s->retry_after_ms,
                   s->errmsg);
        }
        break;
    case GW_OUTBOX_STATS: {
        const gw_outbox_stats *s = (const gw_outbox_stats *)m;
        r->outbox.pending = s->pending;
        r->outbox.sent = s->sent;
        r->outbox.failed = s->failed;
        rt_strlcpy(r->outbox.last_error, s->last_error, sizeof(r->outbox.last_error));
        break;
    }
    case GW_MSG_ADAPTER_DOWN: on_adapter_down(cx, r, (gw_msg_adapter *)m); break;
    case GW_CHAT_UPDATE: on_chat_update(cx, r, (gw_chat_update *)m); break;
    case GW_CHAT_KEPT: on_chat_kept(cx, r, (gw_chat_update *)m); break;
    case ST_MSG_INDEX_ROW: on_cold_row(cx, r, (st_msg_index_row *)m); break;
    case GW_ROUTER_TICK:
        upkeep(cx, r);
        status_write(cx, r);
        break;
    case GW_CHAT_SETHOME: on_sethome(cx, r, (gw_chat_sethome *)m); break;
    case GW_MSG_DELIVER: on_deliver(cx, r, (gw_msg_deliver *)m); break;
    case GW_MSG_CANCEL: on_cancel(cx, r, (gw_msg_cancel *)m); break;
    case GW_MSG_SHUTDOWN: on_shutdown(cx, r, (gw_shutdown *)m); break;
    case GW_IO_DONE: {
        const gw_io_done *d = (const gw_io_done *)m;
        if (d->tag == IO_TAG_INDEX_NOW || d->tag == IO_TAG_INDEX_TICK || d->tag == IO_TAG_INDEX)
            index_io_done(r, d);
        if (d->tag == IO_TAG_INDEX_NOW)
            index_now_done(cx, r);
        else if (d->tag != IO_TAG_INDEX_TICK)
            drain_step(cx, r, d->tag);
        break;
    }
    case RT_MSG_TIMEOUT: on_timeout(cx, r, ((rt_msg_timeout *)m)->tag); break;
    case RT_MSG_DOWN: {
        rt_msg_down *d = (rt_msg_down *)m;
        gw_entry *e = find_by_chat(r, d->ref);
        if (e) {
            (void)rt_map_del(&r->by_chat, e->chat);
            e->chat = 0;
            e->chat_mon = 0;
            e->busy = false;
            e->evicting = false;
            if (e->wait) { /* events that came while it was asked to leave: a new chat */
                gw_waitq *q = e->wait;
                e->wait = NULL;
                waitq_release(cx, r, q, e->key);
                waitq_fini(q);
                rt_free(q);
            }
            break;
        }
        for (size_t i = 0; i < r->nad; i++)
            if (r->ad[i].ref == d->ref) {
                adapter_gone(cx, r, i);
                break;
            }
        break;
    }
    case GW_ROUTER_FLATTEN: flat_step(cx, r); break;
    case RT_MSG_STOP:
        if (r->index_dirty || r->flat_active)
            index_write_all(cx, r, 0, 0);
        if (r->index)
            rt_stop(cx, r->index, RT_EXIT_NORMAL);
        break;
    default: break;
    }
}

static void router_fini(void *state)
{
    gw_router *r = *(gw_router **)state;
    for (size_t i = 0; i < r->n; i++) {
        if (r->entries[i]->wait) {
            waitq_fini(r->entries[i]->wait);
            rt_free(r->entries[i]->wait);
        }
        gw_entry_free(r->entries[i]);
    }
    rt_free(r->entries);
    rt_map_fini(&r->by_hash);
    while (r->loads) {
        cold_load *l = r->loads;
        r->loads = l->all_next;
        load_free(l);
    }
    rt_map_fini(&r->loading);
    rt_map_fini(&r->by_chat);
    for (size_t i = 0; i < r->nad; i++) {
        rt_free(r->ad[i].platform);
        rt_free(r->ad[i].home);
        rt_free(r->ad[i].home_name);
    }
    for (size_t i = 0; i < r->nsup; i++)
        rt_free(r->sup[i].platform);
    gw_auth_free(r->auth);
    gw_seen_free(r->seen);
    for (size_t i = 0; i < r->nreplay; i++)
        rt_msg_free(&r->replay[i]->hdr);
    rt_free(r->replay);
    if (r->flat_active)
        rt_buf_fini(&r->flat);
    rt_free(r->index_path);
    rt_free(r->status_path);
    gw_shared_unref(r->sh);
    rt_free(r);
}

static const rt_actor_type router_type = {"gateway", router_behave, router_fini,
                                          sizeof(gw_router *)};

/* ============================================================== start */

static int fail(char *err, size_t len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t len, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return code;
}

/* sessions.json into r (a corrupt file is kept aside as sessions.json.corrupt). */
static void load_index(gw_router *r)
{
    char *text = NULL;
    size_t len = 0;
    int rc = hm_read_file(r->index_path, 64u << 20, &text, &len);
    if (rc) {
        if (rc != -ENOENT)
            RT_WARN("gateway", "cannot read %s: %s", r->index_path, rt_strerror(rc));
        return;
    }
    gw_entry **v = NULL;
    size_t n = 0;
    char err[160];
    if (gw_index_parse(text, &v, &n, err, sizeof(err)) != 0) {
        char *aside = rt_xasprintf("%s.corrupt", r->index_path);
        RT_ERROR("gateway", "%s: %s; moved aside to %s, starting with an empty index",
                 r->index_path, err, aside);
        (void)rename(r->index_path, aside);
        rt_free(aside);
    }
    for (size_t i = 0; i < n; i++)
        insert(r, v[i]);
    rt_free(v);
    rt_free(text);
}

/* Mark the entries whose last turn a crash left unanswered. */
static void scan_unanswered(gw_router *r, const char *state_db)
{
    if (!state_db || access(state_db, F_OK) != 0 || !r->n)
        return;
    int err = 0;
    char msg[256];
    st_reader *rd = st_reader_open(state_db, &err, msg, sizeof(msg));
    if (!rd) {
        RT_WARN("gateway", "cannot scan state.db for unanswered messages: %s", msg);
        return;
    }
    cJSON *ids = NULL;
    if (st_read_unanswered(rd, now_epoch() - RECOVER_WINDOW_S, &ids) == 0) {
        const cJSON *id;
        size_t marked = 0;
        cJSON_ArrayForEach(id, ids)
        {
            for (size_t i = 0; i < r->n; i++)
                if (strcmp(r->entries[i]->session_id, id->valuestring) == 0) {
                    r->entries[i]->unanswered = true;
                    marked++;
                }
        }
        if (marked)
            RT_INFO("gateway",
                    "%zu conversation(s) have a message the last run did not answer; "
                    "answering once their platform is up",
                    marked);
    }
    cJSON_Delete(ids);
    st_reader_free(rd);
}

typedef struct inbox_load {
    rt_ctx *cx;
    gw_router *r;
    st_reader *rd;
    double since;
    size_t replay, stored, old, bad;
} inbox_load;

/* Does state.db hold the user's message of ev (a user message of its conversation stored
 * since it was received that contains its text)? An event that still names its media was
 * never composed, so never given to the agent: the chat journals the composed text (media
 * described, paths left out) before it passes the event on. */
static bool inbox_persisted(inbox_load *l, const st_inbox_row *row, const gw_msg_event *ev)
{
    gw_entry *e = row->session_key ? find(l->r, row->session_key) : NULL;
    if (!e || ev->nmedia)
        return false;
    cJSON *msgs = NULL;
    if (st_read_user_since(l->rd, e->session_id, row->received_at - 1.0, &msgs) != 0)
        return false;
    /* the text without surrounding white space (the session may trim it) */
    const char *t = ev->text ? ev->text : "";
    while (*t && isspace((unsigned char)*t))
        t++;
    size_t n = strlen(t);
    while (n && isspace((unsigned char)t[n - 1]))
        n--;
    bool found = false;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        if (!n || memmem(m->valuestring, strlen(m->valuestring), t, n)) {
            found = true;
            break;
        }
    }
    cJSON_Delete(msgs);
    return found;
}

static void inbox_row_cb(void *arg, const st_inbox_row *row)
{
    inbox_load *l = arg;
    gw_router *r = l->r;
    gw_msg_event *ev = row->received_at >= l->since ? gw_inbox_event(row->event_json) : NULL;
    if (ev && !inbox_persisted(l, row, ev)) {
        if (r->nreplay % 16 == 0)
            r->replay = rt_xrealloc(r->replay, (r->nreplay + 16) * sizeof(*r->replay));
        r->replay[r->nreplay++] = ev;
        l->replay++;
        return;
    }
    if (ev) {
        l->stored++; /* crash recovery (scan_unanswered) answers it if need be */
    } else if (row->received_at < l->since) {
        l->old++;
        RT_WARN("gateway",
                "%s update %.80s was accepted more than a day ago and never reached its "
                "conversation: dropped",
                row->platform, row->message_id);
    } else {
        l->bad++;
        RT_WARN("gateway", "the inbox journal row of %s update %.80s does not parse: dropped",
                row->platform, row->message_id);
    }
    rt_msg_free(ev ? &ev->hdr : NULL);
    if (r->sh->store)
        rt_send(l->cx, r->sh->store, &st_inbox_done_new(row->platform, row->message_id)->hdr);
}

/* The inbox journal the last run left: events to replay when their platform is up. */
static void load_inbox(rt_ctx *cx, gw_router *r, const char *state_db)
{
    if (!state_db || access(state_db, F_OK) != 0)
        return;
    int err = 0;
    char msg[256];
    st_reader *rd = st_reader_open(state_db, &err, msg, sizeof(msg));
    if (!rd) {
        RT_WARN("gateway", "cannot read the inbox journal from state.db: %s", msg);
        return;
    }
    inbox_load l = {.cx = cx, .r = r, .rd = rd, .since = now_epoch() - RECOVER_WINDOW_S};
    if (st_read_inbox(rd, inbox_row_cb, &l) != 0)
        RT_WARN("gateway", "cannot read the inbox journal from state.db: %s", st_reader_errmsg(rd));
    if (l.replay || l.stored)
        RT_INFO("gateway",
                "inbox journal: %zu message(s) the last run accepted but never passed on "
                "(answering once their platform is up), %zu already stored",
                l.replay, l.stored);
    st_reader_free(rd);
}

static void seen_add_cb(void *arg, const char *platform, const char *message_id)
{
    (void)gw_seen_add(arg, gw_seen_key(platform, message_id));
}

/* The updates accepted before this start (the most recent GW_SEEN_DEFAULT_CAP). */
static void load_seen(gw_router *r, const char *state_db)
{
    if (!state_db || access(state_db, F_OK) != 0)
        return;
    int err = 0;
    char msg[256];
    st_reader *rd = st_reader_open(state_db, &err, msg, sizeof(msg));
    if (!rd) {
        RT_WARN("gateway", "cannot read the updates already handled from state.db: %s", msg);
        return;
    }
    if (st_read_inbound_recent(rd, GW_SEEN_DEFAULT_CAP, seen_add_cb, r->seen) != 0)
        RT_WARN("gateway", "cannot read the updates already handled from state.db: %s",
                st_reader_errmsg(rd));
    st_reader_free(rd);
}

int gw_start(rt_ctx *cx, const gw_opts *o, rt_ref *out, char *err, size_t errlen)
{
    if (!o->spawn || !o->cfg || !o->home)
        return fail(err, errlen, -EINVAL, "gateway: spawn, cfg and home are required");
    gw_shared *sh = rt_xcalloc(1, sizeof(*sh));
    atomic_init(&sh->refs, 1);
    sh->cfg = hm_config_ref(o->cfg);
    sh->home = rt_xstrdup(o->home);
    sh->spawn = o->spawn;
    sh->spawn_arg = o->spawn_arg;
    sh->store = o->store;
    sh->model = o->model ? rt_xstrdup(o->model) : NULL;
    sh->provider = o->provider ? rt_xstrdup(o->provider) : NULL;
    sh->base_url = o->base_url ? rt_xstrdup(o->base_url) : NULL;
    sh->context_length = o->context_length;
    sh->chat_idle_ms = o->chat_idle_ms > 0 ? o->chat_idle_ms : 10 * 60 * 1000;
    sh->approval_timeout_ms = hm_config_int(o->cfg, "approvals.gateway_timeout") * 1000;
    sh->group_per_user = hm_config_bool(o->cfg, "group_sessions_per_user");
    sh->thread_per_user = hm_config_bool(o->cfg, "thread_sessions_per_user");
    const char *sp = hm_config_env_str(o->cfg, "agent.system_prompt", NULL);
    sh->personality_default = sp && *sp ? rt_xstrdup(sp) : NULL;
    sh->io = gw_io_start(cx);
    gw_outbox_opts oo = {
        .store = o->store,
        .state_db = o->state_db,
        .retry_base_ms = o->delivery_retry_ms,
        .deadline_ms = o->delivery_deadline_ms > 0
                           ? o->delivery_deadline_ms
                           : hm_config_env_int(o->cfg, "gateway.delivery_deadline", NULL) * 1000,
        .ack_timeout_ms = o->delivery_ack_ms,
    };
    sh->outbox = gw_outbox_start(cx, &oo);

    gw_router *r = rt_xcalloc(1, sizeof(*r));
    r->sh = sh;
    rt_map_init(&r->by_hash);
    rt_map_init(&r->by_chat);
    rt_map_init(&r->loading);
    r->index_path = rt_xasprintf("%s/sessions/sessions.json", o->home);
    r->status_path = rt_xasprintf("%s/gateway_state.json", o->home);
    r->started_at = now_epoch();
    r->state = "running";
    load_index(r);
    double warm_h = hm_config_env_double(o->cfg, "gateway.index_warm_hours", NULL);
    r->warm_s = (warm_h > 0 ? warm_h : WARM_DEFAULT_H) * 3600.0;
    int64_t budget_mb = hm_config_env_int(o->cfg, "gateway.memory_budget_mb", NULL);
    r->budget_bytes = budget_mb > 0 ? budget_mb << 20 : 0;
    if (o->state_db && o->store) { /* cold entries live in state.db beside the transcripts */
        char msg[256];
        r->index = st_index_start(cx, o->state_db, NULL, msg, sizeof(msg));
        if (!r->index)
            RT_WARN("gateway",
                    "the sessions index stays in memory: cannot open state.db for it: %s", msg);
        else if (st_index_count(o->state_db, &r->cold_rows) != 0)
            r->cold_rows = 1; /* unknown: look keys up */
    }
    scan_unanswered(r, o->state_db);
    load_inbox(cx, r, o->state_db);
    r->seen = gw_seen_new(GW_SEEN_DEFAULT_CAP);
    load_seen(r, o->state_db);
    char *clean = rt_xasprintf("%s/.clean_shutdown", o->home);
    (void)unlink(clean); /* present only while we are stopped cleanly */
    rt_free(clean);

    r->auth = gw_auth_new(o->cfg);
    if (!gw_auth_has_lists(r->auth))
        RT_WARN("gateway", "No user allowlists configured. All unauthorized users will be "
                           "denied. Set GATEWAY_ALLOWED_USERS or <PLATFORM>_ALLOWED_USERS, or "
                           "approve users with `hermes pairing approve`.");
    int perr = 0;
    r->pairing = gw_pairing_start(cx, o->home, r->auth, &perr);
    if (!r->pairing) {
        if (r->index)
            rt_stop(cx, r->index, RT_EXIT_NORMAL);
        router_fini(&r);
        return fail(err, errlen, perr ? perr : -EIO,
                    "gateway: cannot open the pairing store under %s/platforms/pairing: %s",
                    o->home, rt_strerror(perr ? perr : -EIO));
    }
    rt_spawn_opts so = {.flags = RT_SPAWN_TRAP_EXIT, .name = GW_NAME};
    rt_ref index = r->index;
    rt_ref ref = rt_spawn(cx, &router_type, &r, &so);
    if (!ref && index)
        rt_stop(cx, index, RT_EXIT_NORMAL);
    if (!ref)
        return fail(err, errlen, -EEXIST, "gateway: another gateway actor is running");
    rt_send(cx, ref, rt_timeout_new(TAG_TICK));
    *out = ref;
    return 0;
}

rt_msg *gw_shutdown_new(rt_ref reply_to, uint64_t tag, int64_t drain_ms)
{
    gw_shutdown *s = RT_MSG_NEW(gw_shutdown, GW_MSG_SHUTDOWN);
    s->reply_to = reply_to;
    s->tag = tag;
    s->drain_ms = drain_ms;
    return &s->hdr;
}
