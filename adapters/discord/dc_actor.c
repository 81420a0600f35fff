/*
 * dc_actor — the Discord adapter actor (discord.h): the Gateway session, inbound messages,
 * outbound posts, files and typing, REST with per-route rate limits.
 *
 * The session:
 *
 *   GATEWAY  GET /gateway/bot                401: fatal; other failures: retry later
 *   WS       connect (resume_gateway_url when a session exists), Hello → heartbeat timer
 *            (first beat after interval × random fraction), Identify or Resume
 *   LIVE     READY (session id, resume URL, the bot's id) or RESUMED: announced once
 *
 * A beat whose ack is missing when the next is due, op 7, or a drop: the socket is
 * abandoned and the session resumed on a new one (op 7 and zombies at once, drops after a
 * backoff). op 9: resume or identify after 1–5 s. Fatal close codes end the adapter.
 *
 * Catching up (discord.h): the state file is read at start (nothing is written before it
 * was read); every READY (a new session — a RESUMED replays by itself) starts a round over
 * the remembered channels, one request at a time: GET /channels/{id}/messages?after=<the
 * position, or the age floor>&limit=100; each page (newest first) goes through inbound()
 * oldest first, the next page starts after the page's newest. A new READY abandons a
 * running round (its answers carry the round's generation and are ignored). Positions move
 * when an event is handed to the gateway, or when a message not taken is handled while no
 * taken one waits (so a position never passes an unsent event).
 */
#include "dc_int.h"

#include "ak_dedupe.h"
#include "ak_event.h"
#include "ak_lanes.h"
#include "ak_opts.h"
#include "ak_text.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_http.h"
#include "rt_log.h"
#include "rt_lws.h"
#include "rt_map.h"
#include "rt_reactor.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"
#include "rt_ws.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DC_API_MAX_BODY (4u << 20)
#define DC_WS_MAX       (8u << 20)
#define DC_JOBS_MAX     256
#define DC_OUT_MAX      4096
#define DC_SEEN_MAX     2048
#define DC_CHANS_MAX    2048 /* threads the bot is in */
#define DC_THREADS_MAX  1024 /* known thread → parent */
#define DC_TYPING_MAX   64
#define DC_RL_TRIES     8
#define DC_OUT_TRIES    5
#define DC_OUT_PARALLEL 8 /* channels whose messages are on their way at once */
/* A message whose answer did not come may have been made: it is sent again with the same
 * nonce (enforce_nonce: Discord returns the message it made "in the past few minutes") only
 * this long after its first attempt, else given up as "maybe sent". */
#define DC_NONCE_WINDOW_NS (60LL * 1000000000LL)
#define DC_FILES_MAX       4

enum dc_phase {
    DC_PH_INIT = 0,
    DC_PH_GATEWAY,
    DC_PH_WS,
    DC_PH_LIVE,
    DC_PH_WAIT,
    DC_PH_FATAL,
    DC_PH_STOPPED,
};

enum dc_timer {
    DC_T_RECONNECT = 1,
    DC_T_HEARTBEAT,
    DC_T_RATELIMIT,
    DC_T_OUT,
    DC_T_TYPING,
    DC_T_SAVE, /* the state file, a second after a position moved */
    DC_T_COUNT
};

enum dc_req_kind {
    DC_R_GATEWAY = 1,
    DC_R_POST,
    DC_R_UPLOAD,
    DC_R_TYPING,
    DC_R_DOWNLOAD,
    DC_R_SAVE,    /* io */
    DC_R_READ,    /* io */
    DC_R_THREAD,  /* starting a thread from the message answered (auto_thread) */
    DC_R_HISTORY, /* GET /channels/{id}/messages while catching up */
    DC_R_STATE,   /* io: reading the state file */
};

typedef struct dc_req {
    struct dc_req *next;
    uint64_t tag;
    uint64_t http_id;
    int kind;
    const char *method;
    char *url;
    char *route; /* rate-limit route, or NULL (CDN downloads) */
    char *major;
    char *body;
    size_t body_len;
    char *ctype; /* Content-Type header line */
    size_t max_body;
    int tries;
    void *ctx;
    size_t idx;
} dc_req;

typedef struct dc_job {
    struct dc_job *next;
    gw_msg_event *ev;
    int pending;
    char *paths[DC_FILES_MAX];
    char *mimes[DC_FILES_MAX];
    bool ok[DC_FILES_MAX];
    size_t nfiles;
    discord_mark mark; /* the channel's position once the event is handed over */
} dc_job;

enum dc_out_what { DC_OUT_TEXT = 1, DC_OUT_FILE };

typedef struct dc_out {
    int what;
    char *channel;
    char *reply_to; /* message to reference, or NULL */
    char *text;
    char *path;
    int tries;
    uint64_t delivery; /* the gateway's outbox entry this message ends (GW_MSG_SENT), or 0 */
    int ack_err;       /* 0, or why it was given up */
    bool ack_permanent;
    uint64_t group;       /* the delivery it belongs to (every part of it), or 0 */
    char nonce[24];       /* the same on every attempt of this message */
    int64_t first_try_ns; /* its first attempt, 0: not yet */
    bool maybe_sent;      /* an attempt got no answer: Discord may have made it */
} dc_out;

typedef struct dc_thread {
    uint64_t id; /* hash of tid */
    char *tid;
    char *pid;
} dc_thread;

typedef struct dc_adapter {
    discord_opts o;
    char *auth; /* "Authorization: Bot …" */
    char *cache_dir;
    rt_ref gateway;
    rt_ref self;
    rt_ref io;

    int phase;
    char *gateway_url;
    char *session_id;
    char *resume_url;
    int64_t seq; /* last dispatch sequence, -1: none */
    char *bot_id;
    bool announced;
    uint64_t conn;
    uint64_t conn_gen;
    bool hello;
    bool ack_pending;
    int64_t hb_ms;
    int64_t backoff_ms;
    uint64_t rnd;
    ak_timers tm; /* one slot per timer kind */

    rt_map reqs;
    uint64_t next_tag;
    discord_rl *rl;
    dc_req *parked, *parked_tail;
    int64_t rl_due_ns; /* when the rate-limit timer fires */

    uint64_t seen[DC_SEEN_MAX];
    size_t seen_next;
    uint64_t chans[DC_CHANS_MAX]; /* threads the bot posted or was mentioned in */
    size_t chans_next;
    dc_thread threads[DC_THREADS_MAX];
    size_t nthreads, threads_next;

    dc_job *jobs, *jobs_tail;
    size_t njobs;
    ak_lanes lanes; /* dc_out items in per-channel lanes (set up on first use) */
    bool lanes_ready;
    uint64_t boot;      /* random per start: part of every nonce */
    uint64_t nonce_seq; /* nonces of messages that are no outbox delivery */
    bool draining;      /* stop asked: no new events, finish the outbound queue, then end */
    char *typing[DC_TYPING_MAX];
    size_t ntyping;

    /* catching up (discord.h): positions, persisted in state_path */
    char *state_path;
    char state_bot[DISCORD_ID_MAX]; /* whose positions they are */
    bool state_loaded;              /* read (or found missing): nothing is written before */
    bool state_dirty;
    discord_mark marks[DISCORD_CATCHUP_CHANNELS];
    size_t nmarks;
    uint64_t mark_clock;
    bool catch_due; /* a READY came: a round runs once the positions are known */
    bool catching;
    bool catch_paused;  /* many events still wait: the next request when they have gone */
    uint64_t catch_gen; /* a new READY starts over; older answers are ignored */
    discord_mark citems[DISCORD_CATCHUP_CHANNELS]; /* this round's channels */
    size_t nci, ci;
    int cpages;
    char cafter[DISCORD_ID_MAX]; /* the current request's "after" */
} dc_adapter;

/* ================================================================ helpers */

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

static int64_t now_ns(rt_ctx *cx)
{
    return rt_now_ns(rt_ctx_runtime(cx));
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ================================================================ requests */

static void req_free(dc_req *r)
{
    if (!r)
        return;
    rt_free(r->url);
    rt_free(r->route);
    rt_free(r->major);
    rt_free(r->body);
    rt_free(r->ctype);
    rt_free(r);
}

/* A REST request on path ("/channels/123/messages"); route names its rate-limit route. */
static dc_req *req_rest(dc_adapter *a, int kind, const char *method, const char *path,
                        const char *route, const char *major)
{
    dc_req *r = rt_xcalloc(1, sizeof(*r));
    r->kind = kind;
    r->method = method;
    r->url = rt_xasprintf("%s%s", a->o.api_base, path);
    r->route = rt_xstrdup(route);
    r->major = rt_xstrdup(major ? major : "");
    r->max_body = DC_API_MAX_BODY;
    return r;
}

static void req_json(dc_req *r, cJSON *body)
{
    char *s = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    r->body = rt_xstrdup(s);
    r->body_len = strlen(s);
    cJSON_free(s);
    r->ctype = rt_xstrdup("Content-Type: application/json");
}

static void park(dc_adapter *a, rt_ctx *cx, dc_req *r, int64_t wait_ns)
{
    r->next = NULL;
    if (a->parked_tail)
        a->parked_tail->next = r;
    else
        a->parked = r;
    a->parked_tail = r;
    int64_t due = now_ns(cx) + wait_ns;
    if (!ak_timer_armed(&a->tm, DC_T_RATELIMIT) || due < a->rl_due_ns) {
        a->rl_due_ns = due;
        ak_timer_arm(cx, a->self, &a->tm, DC_T_RATELIMIT, (wait_ns + 999999) / 1000000);
    }
}

static void submit(dc_adapter *a, rt_ctx *cx, dc_req *r)
{
    if (!r->tag) {
        r->tag = ++a->next_tag;
        rt_map_put(&a->reqs, r->tag, r);
    }
    if (r->route) {
        int64_t w = discord_rl_wait(a->rl, r->route, r->major, now_ns(cx));
        if (w > 0) {
            park(a, cx, r, w);
            return;
        }
    }
    const char *hdrs[4] = {NULL, NULL, NULL, NULL};
    size_t nh = 0;
    if (r->route) { /* the API, never the CDN */
        hdrs[nh++] = a->auth;
        hdrs[nh++] = "User-Agent: DiscordBot (https://github.com/NousResearch/hermes-agent, 1)";
    }
    if (r->ctype)
        hdrs[nh++] = r->ctype;
    rt_http_request q = {
        .method = r->method,
        .url = r->url,
        .headers = hdrs,
        .body = r->body,
        .body_len = r->body_len,
        .timeout_ms = a->o.http_timeout_ms,
        .max_body = r->max_body,
        .max_redirects = r->route ? 0 : 3,
        .ca_file = a->o.ca_file,
        .reply_to = a->self,
        .tag = r->tag,
    };
    r->http_id = rt_http_submit(cx, &q);
}

static uint64_t track(dc_adapter *a, dc_req *r)
{
    r->tag = ++a->next_tag;
    rt_map_put(&a->reqs, r->tag, r);
    return r->tag;
}

static void on_ratelimit_timer(dc_adapter *a, rt_ctx *cx)
{
    dc_req *list = a->parked;
    a->parked = a->parked_tail = NULL;
    while (list) {
        dc_req *r = list;
        list = r->next;
        r->next = NULL;
        submit(a, cx, r);
    }
}

static void cancel_all(dc_adapter *a, rt_ctx *cx)
{
    for (size_t i = 0; i < a->reqs.cap; i++) {
        if (!a->reqs.keys[i])
            continue;
        dc_req *r = a->reqs.vals[i];
        if (r->http_id && cx)
            rt_http_cancel(cx, r->http_id);
        req_free(r);
    }
    rt_map_fini(&a->reqs);
    rt_map_init(&a->reqs);
    a->parked = a->parked_tail = NULL;
}

static double hdr_double(const rt_io_msg_http_done *d, const char *name, double dflt)
{
    const char *v = rt_http_header_get(d->headers, d->nheaders, name);
    if (!v || !*v)
        return dflt;
    char *end = NULL;
    double x = strtod(v, &end);
    return end && end != v ? x : dflt;
}

/* Record what the answer says about the limits. Returns true when r must be sent again
 * (a 429 it may still retry). */
static bool ratelimit_answer(dc_adapter *a, rt_ctx *cx, dc_req *r, rt_io_msg_http_done *d)
{
    if (!r->route || d->err)
        return false;
    const char *bucket = rt_http_header_get(d->headers, d->nheaders, "X-RateLimit-Bucket");
    double rem = hdr_double(d, "X-RateLimit-Remaining", -1);
    double reset = hdr_double(d, "X-RateLimit-Reset-After", -1);
    bool is429 = d->status == 429;
    double retry = 0;
    bool global = false;
    if (is429) {
        const char *g = rt_http_header_get(d->headers, d->nheaders, "X-RateLimit-Global");
        global = g && strcmp(g, "true") == 0;
        cJSON *j = d->body ? cJSON_Parse(d->body) : NULL;
        const cJSON *ra = cJSON_GetObjectItemCaseSensitive(j, "retry_after");
        if (cJSON_IsNumber(ra))
            retry = ra->valuedouble;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "global")))
            global = true;
        cJSON_Delete(j);
        if (retry <= 0)
            retry = d->retry_after_s > 0 ? (double)d->retry_after_s : 1.0;
    }
    discord_rl_update(a->rl, r->route, r->major, bucket, rem >= 0 ? (int64_t)rem : -1, reset, is429,
                      retry, global, now_ns(cx));
    if (is429) {
        RT_WARN(DC_LOG, "Discord: rate-limited on %s (%s); retrying in %.2fs", r->route,
                global ? "global" : "bucket", retry);
        return ++r->tries < DC_RL_TRIES;
    }
    return false;
}

/* ================================================================ positions */

static void state_save(dc_adapter *a, rt_ctx *cx)
{
    if (!a->io || !a->state_loaded) /* never overwrite positions not read yet */
        return;
    a->state_dirty = false;
    char *s = discord_state_format(a->state_bot, a->marks, a->nmarks);
    ak_io_write(cx, a->io, a->state_path, s, strlen(s), 0600, 0, 0);
}

static void state_touch(dc_adapter *a, rt_ctx *cx)
{
    a->state_dirty = true;
    if (a->state_loaded && !ak_timer_armed(&a->tm, DC_T_SAVE)) /* one write a burst */
        ak_timer_arm(cx, a->self, &a->tm, DC_T_SAVE, 1000);
}

static discord_mark *mark_find(dc_adapter *a, const char *channel)
{
    for (size_t i = 0; i < a->nmarks; i++)
        if (strcmp(a->marks[i].channel, channel) == 0)
            return &a->marks[i];
    return NULL;
}

/* The channel of k is at k->last now (positions never move back); a new channel replaces
 * the least recently active one when the table is full. */
static void mark_put(dc_adapter *a, rt_ctx *cx, const discord_mark *k)
{
    if (a->o.catchup_max_age_s < 0 || !discord_id_ok(k->channel) || !discord_id_ok(k->last))
        return;
    discord_mark *m = mark_find(a, k->channel);
    if (!m) {
        size_t i = 0;
        if (a->nmarks < DISCORD_CATCHUP_CHANNELS) {
            i = a->nmarks++;
        } else {
            for (size_t x = 1; x < a->nmarks; x++)
                if (a->marks[x].used < a->marks[i].used)
                    i = x;
        }
        m = &a->marks[i];
        memset(m, 0, sizeof(*m));
        rt_strlcpy(m->channel, k->channel, sizeof(m->channel));
    }
    m->used = ++a->mark_clock;
    if (k->guild[0])
        rt_strlcpy(m->guild, k->guild, sizeof(m->guild));
    if (k->parent[0])
        rt_strlcpy(m->parent, k->parent, sizeof(m->parent));
    if (!m->last[0] || discord_id_cmp(k->last, m->last) > 0) {
        rt_strlcpy(m->last, k->last, sizeof(m->last));
        state_touch(a, cx);
    }
}

static void mark_drop(dc_adapter *a, rt_ctx *cx, const char *channel)
{
    discord_mark *m = mark_find(a, channel);
    if (!m)
        return;
    *m = a->marks[--a->nmarks];
    state_touch(a, cx);
}

/* ================================================================ session */

static void ws_abandon(dc_adapter *a, rt_ctx *cx, int code)
{
    if (!a->conn)
        return;
    (void)rt_ws_close(cx, a->conn, code, NULL);
    a->conn = 0;
    a->conn_gen++;
    ak_timer_cancel(cx, &a->tm, DC_T_HEARTBEAT);
}

static void announce(dc_adapter *a, rt_ctx *cx)
{
    rt_ref gw = ak_gateway_of(cx, a->gateway);
    if (!gw)
        return;
    gw_caps caps = {
        .max_message = DISCORD_MAX_MESSAGE, .markdown = true, .progress = true, .acks = true};
    rt_send(cx, gw, gw_adapter_up_new(DISCORD_PLATFORM, a->self, &caps, a->o.home_channel));
    a->announced = true;
}

static void shut(dc_adapter *a, rt_ctx *cx)
{
    if (a->state_dirty)
        state_save(a, cx); /* the last positions, before the helper ends */
    for (int k = 1; k < DC_T_COUNT; k++)
        ak_timer_cancel(cx, &a->tm, k);
    ws_abandon(a, cx, 1000);
    cancel_all(a, cx);
    if (a->announced) {
        rt_ref gw = ak_gateway_of(cx, a->gateway);
        if (gw)
            rt_send(cx, gw, gw_adapter_down_new(DISCORD_PLATFORM, a->self));
        a->announced = false;
    }
    if (a->io)
        ak_io_quit(cx, a->io);
    a->io = 0;
}

static void fatal(dc_adapter *a, rt_ctx *cx)
{
    if (a->phase == DC_PH_STOPPED || a->phase == DC_PH_FATAL)
        return;
    a->phase = DC_PH_FATAL;
    shut(a, cx);
    RT_ERROR(DC_LOG, "Discord: giving up; fix the settings and restart the gateway");
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void clear_session(dc_adapter *a)
{
    rt_free(a->session_id);
    rt_free(a->resume_url);
    a->session_id = a->resume_url = NULL;
    a->seq = -1;
}

static void ws_connect(dc_adapter *a, rt_ctx *cx)
{
    ws_abandon(a, cx, 1000);
    const char *base = a->session_id && a->resume_url ? a->resume_url : a->gateway_url;
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    char *url = rt_xasprintf("%.*s/?v=10&encoding=json", (int)n, base);
    a->phase = DC_PH_WS;
    a->hello = false;
    a->ack_pending = false;
    a->conn_gen++;
    rt_ws_opts wo = {
        .url = url,
        .ca_file = a->o.ca_file,
        .max_message = DC_WS_MAX,
        .reply_to = a->self,
        .tag = a->conn_gen,
    };
    RT_DEBUG(DC_LOG, "Discord: connecting to the gateway (%s)", a->session_id ? "resume" : "new");
    a->conn = rt_ws_connect(cx, &wo);
    rt_free(url);
}

static void begin_gateway(dc_adapter *a, rt_ctx *cx)
{
    if (a->gateway_url) { /* known: straight to the WebSocket */
        ws_connect(a, cx);
        return;
    }
    a->phase = DC_PH_GATEWAY;
    dc_req *r = req_rest(a, DC_R_GATEWAY, "GET", "/gateway/bot", "GET /gateway/bot", NULL);
    submit(a, cx, r);
}

static void reconnect_later(dc_adapter *a, rt_ctx *cx, const char *why, int64_t fixed_ms)
{
    if (a->phase == DC_PH_STOPPED || a->phase == DC_PH_FATAL || a->phase == DC_PH_WAIT ||
        a->draining)
        return;
    ws_abandon(a, cx, 4000);
    int64_t ms = fixed_ms;
    if (ms < 0) {
        int64_t b = a->backoff_ms ? a->backoff_ms * 2 : a->o.backoff_min_ms;
        if (b > a->o.backoff_max_ms)
            b = a->o.backoff_max_ms;
        a->backoff_ms = b;
        ms = b + (int64_t)(ak_rand(&a->rnd) % (uint64_t)(b / 5 + 1));
    }
    RT_WARN(DC_LOG, "Discord: %s — reconnecting in %.1fs", why, (double)ms / 1000.0);
    a->phase = DC_PH_WAIT;
    ak_timer_arm(cx, a->self, &a->tm, DC_T_RECONNECT, ms);
}

static void on_gateway(dc_adapter *a, rt_ctx *cx, rt_io_msg_http_done *d)
{
    if (!d->err && (d->status == 401 || d->status == 403)) {
        RT_ERROR(DC_LOG,
                 "Discord: the bot token was refused (%d %s) — check DISCORD_BOT_TOKEN "
                 "(Developer Portal → your app → Bot → Reset Token)",
                 d->status, d->status == 401 ? "Unauthorized" : "Forbidden");
        fatal(a, cx);
        return;
    }
    cJSON *j = !d->err && d->status == 200 && d->body ? cJSON_Parse(d->body) : NULL;
    const char *url = jstr(j, "url");
    if (!url || (strncmp(url, "wss://", 6) != 0 && strncmp(url, "ws://", 5) != 0)) {
        char why[256];
        snprintf(why, sizeof(why), "GET /gateway/bot failed (%s)",
                 d->err ? rt_strerror(d->err) : "no gateway URL in the answer");
        cJSON_Delete(j);
        reconnect_later(a, cx, why, -1);
        return;
    }
    rt_free(a->gateway_url);
    a->gateway_url = rt_xstrdup(url);
    cJSON_Delete(j);
    ws_connect(a, cx);
}

static void ws_send_json(dc_adapter *a, rt_ctx *cx, cJSON *o)
{
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (a->conn)
        (void)rt_ws_send(cx, a->conn, txt, strlen(txt), false);
    cJSON_free(txt);
}

static void send_heartbeat(dc_adapter *a, rt_ctx *cx)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "op", 1);
    if (a->seq >= 0)
        cJSON_AddNumberToObject(o, "d", (double)a->seq);
    else
        cJSON_AddNullToObject(o, "d");
    ws_send_json(a, cx, o);
    a->ack_pending = true;
}

static void on_heartbeat_timer(dc_adapter *a, rt_ctx *cx)
{
    if (!a->conn || !a->hello)
        return;
    if (a->ack_pending) {
        /* zombie: resume on a fresh connection at once */
        RT_WARN(DC_LOG, "Discord: no heartbeat ACK from the gateway; reconnecting (resume)");
        ws_abandon(a, cx, 4000);
        ws_connect(a, cx);
        return;
    }
    send_heartbeat(a, cx);
    ak_timer_arm(cx, a->self, &a->tm, DC_T_HEARTBEAT, a->hb_ms);
}

static void identify(dc_adapter *a, rt_ctx *cx)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *d;
    if (a->session_id) {
        cJSON_AddNumberToObject(o, "op", 6);
        d = cJSON_AddObjectToObject(o, "d");
        cJSON_AddStringToObject(d, "token", a->o.token);
        cJSON_AddStringToObject(d, "session_id", a->session_id);
        cJSON_AddNumberToObject(d, "seq", (double)(a->seq < 0 ? 0 : a->seq));
    } else {
        cJSON_AddNumberToObject(o, "op", 2);
        d = cJSON_AddObjectToObject(o, "d");
        cJSON_AddStringToObject(d, "token", a->o.token);
        cJSON_AddNumberToObject(d, "intents", DISCORD_INTENTS);
        cJSON *p = cJSON_AddObjectToObject(d, "properties");
        cJSON_AddStringToObject(p, "os", "linux");
        cJSON_AddStringToObject(p, "browser", "hermes");
        cJSON_AddStringToObject(p, "device", "hermes");
    }
    ws_send_json(a, cx, o);
}

static void go_live(dc_adapter *a, rt_ctx *cx, bool resumed)
{
    a->phase = DC_PH_LIVE;
    a->backoff_ms = 0;
    RT_INFO(DC_LOG, "Discord: %s", resumed ? "session resumed" : "connected to the gateway");
    if (!a->announced)
        announce(a, cx);
}

static void remember_thread(dc_adapter *a, const char *tid, const char *pid)
{
    if (!tid || !pid)
        return;
    uint64_t h = ak_hash(tid);
    for (size_t i = 0; i < a->nthreads; i++)
        if (a->threads[i].id == h)
            return;
    size_t i = a->nthreads < DC_THREADS_MAX ? a->nthreads++ : a->threads_next++ % DC_THREADS_MAX;
    rt_free(a->threads[i].tid);
    rt_free(a->threads[i].pid);
    a->threads[i].id = h;
    a->threads[i].tid = rt_xstrdup(tid);
    a->threads[i].pid = rt_xstrdup(pid);
}

static const char *thread_parent(const dc_adapter *a, const char *channel)
{
    uint64_t h = ak_hash(channel);
    for (size_t i = 0; i < a->nthreads; i++)
        if (a->threads[i].id == h && strcmp(a->threads[i].tid, channel) == 0)
            return a->threads[i].pid;
    return NULL;
}

/* A thread channel object: remembered with its parent; one the bot started (its
 * auto-threads) is one the bot is in, so its messages need no mention — also after a
 * restart, when GUILD_CREATE lists the active threads again. */
static void thread_seen(dc_adapter *a, const cJSON *th)
{
    const char *tid = jstr(th, "id");
    remember_thread(a, tid, jstr(th, "parent_id"));
    const char *owner = jstr(th, "owner_id");
    if (tid && owner && a->bot_id && strcmp(owner, a->bot_id) == 0)
        ak_ring_add(a->chans, DC_CHANS_MAX, &a->chans_next, ak_hash(tid));
}

static void inbound(dc_adapter *a, rt_ctx *cx, const cJSON *m);
static void catch_start(dc_adapter *a, rt_ctx *cx);
static void catch_request(dc_adapter *a, rt_ctx *cx);

static void on_dispatch(dc_adapter *a, rt_ctx *cx, const char *t, const cJSON *d)
{
    if (strcmp(t, "READY") == 0) {
        const char *sid = jstr(d, "session_id");
        const char *rurl = jstr(d, "resume_gateway_url");
        const char *uid = jstr(cJSON_GetObjectItemCaseSensitive(d, "user"), "id");
        if (!sid || !uid) {
            reconnect_later(a, cx, "READY without a session", -1);
            return;
        }
        rt_free(a->session_id);
        rt_free(a->resume_url);
        rt_free(a->bot_id);
        a->session_id = rt_xstrdup(sid);
        a->resume_url = rurl ? rt_xstrdup(rurl) : NULL;
        a->bot_id = rt_xstrdup(uid);
        RT_INFO(DC_LOG, "Discord: logged in as %s (%s)",
                jstr(cJSON_GetObjectItemCaseSensitive(d, "user"), "username")
                    ? jstr(cJSON_GetObjectItemCaseSensitive(d, "user"), "username")
                    : "?",
                uid);
        if (a->state_loaded && a->state_bot[0] && strcmp(a->state_bot, uid) != 0) {
            RT_WARN(DC_LOG, "Discord: %s belongs to another bot (%s); not catching up from it",
                    a->state_path, a->state_bot);
            a->nmarks = 0;
            state_touch(a, cx);
        }
        rt_strlcpy(a->state_bot, uid, sizeof(a->state_bot));
        go_live(a, cx, false);
        a->catch_due = true; /* a new session: what came meanwhile was not replayed */
        catch_start(a, cx);
    } else if (strcmp(t, "RESUMED") == 0) {
        go_live(a, cx, true);
    } else if (strcmp(t, "MESSAGE_CREATE") == 0) {
        if (a->phase == DC_PH_LIVE || a->phase == DC_PH_WS) /* a Resume replays before RESUMED */
            inbound(a, cx, d);
    } else if (strcmp(t, "THREAD_CREATE") == 0 || strcmp(t, "THREAD_UPDATE") == 0) {
        thread_seen(a, d);
    } else if (strcmp(t, "GUILD_CREATE") == 0) {
        const cJSON *th;
        cJSON_ArrayForEach(th, cJSON_GetObjectItemCaseSensitive(d, "threads"))
        {
            thread_seen(a, th); /* the active threads: after a restart too */
        }
    }
}

static void on_ws_message(dc_adapter *a, rt_ctx *cx, rt_ws_msg_message *m)
{
    if (m->tag != a->conn_gen || m->conn != a->conn)
        return;
    discord_payload p;
    if (discord_payload_parse(m->data, m->len, &p) != 0) {
        RT_DEBUG(DC_LOG, "Discord: unparsable gateway payload ignored");
        discord_payload_fini(&p);
        return;
    }
    const cJSON *d = p.d;
    switch (p.op) {
    case 10: { /* Hello */
        const cJSON *hi = cJSON_GetObjectItemCaseSensitive(d, "heartbeat_interval");
        a->hb_ms = cJSON_IsNumber(hi) && hi->valuedouble >= 100 ? (int64_t)hi->valuedouble : 41250;
        a->hello = true;
        a->ack_pending = false;
        ak_timer_arm(cx, a->self, &a->tm, DC_T_HEARTBEAT,
                     (int64_t)(ak_rand(&a->rnd) % (uint64_t)a->hb_ms));
        identify(a, cx);
        break;
    }
    case 11: a->ack_pending = false; break;
    case 1:
        send_heartbeat(a, cx);
        a->ack_pending = false; /* an answer to a request: not a missed ack */
        break;
    case 7:
        RT_INFO(DC_LOG, "Discord: the gateway asked to reconnect; resuming");
        ws_abandon(a, cx, 4000);
        ws_connect(a, cx);
        break;
    case 9:
        if (!cJSON_IsTrue(d))
            clear_session(a);
        reconnect_later(a, cx, "invalid session",
                        1000 + (int64_t)(ak_rand(&a->rnd) % 4001)); /* 1–5 s, as Discord asks */
        break;
    case 0:
        if (p.s >= 0)
            a->seq = p.s;
        if (p.t && d)
            on_dispatch(a, cx, p.t, d);
        break;
    default: break;
    }
    discord_payload_fini(&p);
}

static void on_ws_closed(dc_adapter *a, rt_ctx *cx, rt_ws_msg_closed *m)
{
    if (m->tag != a->conn_gen || m->conn != a->conn)
        return;
    a->conn = 0;
    ak_timer_cancel(cx, &a->tm, DC_T_HEARTBEAT);
    int kind = discord_close_kind(m->code);
    if (kind == DISCORD_CLOSE_FATAL) {
        RT_ERROR(DC_LOG, "%s", discord_close_message(m->code));
        fatal(a, cx);
        return;
    }
    if (kind == DISCORD_CLOSE_NEW_SESSION)
        clear_session(a);
    char why[200];
    snprintf(why, sizeof(why), "gateway connection closed (code %d%s%s)", m->code,
             m->reason[0] ? ": " : "", m->reason);
    reconnect_later(a, cx, why, -1);
}

/* ================================================================ outbound */

static void out_free(dc_out *o)
{
    if (!o)
        return;
    rt_free(o->channel);
    rt_free(o->reply_to);
    rt_free(o->text);
    rt_free(o->path);
    rt_free(o);
}

static ak_lanes *lanes(dc_adapter *a)
{
    if (!a->lanes_ready) {
        ak_lanes_init(&a->lanes, DC_OUT_PARALLEL, DC_OUT_MAX);
        a->lanes_ready = true;
        a->boot = ak_rand(&a->rnd);
    }
    return &a->lanes;
}

static void out_free_cb(void *item, void *arg)
{
    (void)arg;
    out_free(item);
}

/* The nonce of the index-th message of delivery (0: the next of a sequence): the same for
 * every attempt and every copy the outbox hands over again in this process; the boot part
 * keeps an earlier run's from matching. At most 25 characters (Discord's limit). */
static void set_nonce(dc_adapter *a, dc_out *o, uint64_t delivery, size_t index)
{
    lanes(a);
    uint64_t k = delivery ? rt_hash_u64(delivery * 0x9E3779B97F4A7C15ULL + index)
                          : rt_hash_u64(++a->nonce_seq) ^ 0x5bd1e995ULL;
    snprintf(o->nonce, sizeof(o->nonce), "h%016llx", (unsigned long long)(k ^ a->boot));
}

static void out_push(dc_adapter *a, dc_out *o)
{
    if (ak_lanes_push(lanes(a), o->channel, o->group, o) != 0) {
        RT_LOG_LIMITED(RT_LOG_WARN, DC_LOG, 10000, "Discord: outbound queue full, dropped");
        out_free(o);
    }
}

static void out_pump(dc_adapter *a, rt_ctx *cx);
static void drained_check(dc_adapter *a, rt_ctx *cx);

/* Tell the gateway's outbox how a message it handed over went (gw_caps.acks). Outcomes a
 * resend must not change (sent, refused, maybe sent) are remembered (ak_lanes_claim). */
static void ack(dc_adapter *a, rt_ctx *cx, uint64_t delivery, int err, bool permanent)
{
    if (delivery && (!err || permanent))
        ak_lanes_remember(lanes(a), delivery, err, permanent);
    gw_ack(cx, delivery ? ak_gateway_of(cx, a->gateway) : 0, delivery, err, permanent, 0,
           err == -ETIMEDOUT && permanent
               ? "Discord did not answer; the message may have been posted, not sent again"
               : (err ? (permanent ? "Discord refused the message"
                                   : "Discord did not take the message")
                      : NULL));
}

/* o is finished (sent or given up): ack, free, start what may go. */
static void out_pop(dc_adapter *a, rt_ctx *cx, dc_out *o)
{
    if (o->ack_err && !o->ack_permanent && ak_lanes_partial(&a->lanes, o)) {
        RT_ERROR(DC_LOG, "Discord: part of a reply to %s was posted; the rest is given up",
                 o->channel);
        o->ack_permanent = true; /* the outbox would send the whole reply again */
    }
    ack(a, cx, o->delivery, o->ack_err, o->ack_permanent);
    ak_lanes_done(&a->lanes, o);
    if (!o->ack_err)
        ak_lanes_part_sent(&a->lanes, o->group);
    out_free(o);
    out_pump(a, cx);
    drained_check(a, cx);
}

/* o goes again at once (changed). */
static void out_again(dc_adapter *a, rt_ctx *cx, dc_out *o)
{
    ak_lanes_again(&a->lanes, o);
    out_pump(a, cx);
}

static char *channel_path(const char *channel, const char *rest)
{
    return rt_xasprintf("/channels/%s%s", channel, rest);
}

/* nonce + enforce_nonce: Discord answers a create whose nonce it saw from this bot in the
 * past few minutes with the message it made, instead of making another. */
static void add_nonce(rt_ctx *cx, cJSON *b, dc_out *o)
{
    if (!o->nonce[0])
        return;
    cJSON_AddStringToObject(b, "nonce", o->nonce);
    cJSON_AddTrueToObject(b, "enforce_nonce");
    if (!o->first_try_ns)
        o->first_try_ns = now_ns(cx);
}

static void post_text(dc_adapter *a, rt_ctx *cx, dc_out *o)
{
    char *path = channel_path(o->channel, "/messages");
    dc_req *r = req_rest(a, DC_R_POST, "POST", path, "POST /channels/{id}/messages", o->channel);
    rt_free(path);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "content", o->text);
    add_nonce(cx, b, o);
    cJSON *am = cJSON_AddObjectToObject(b, "allowed_mentions");
    cJSON_AddArrayToObject(am, "parse");
    cJSON_AddFalseToObject(am, "replied_user");
    if (o->reply_to) {
        cJSON *ref = cJSON_AddObjectToObject(b, "message_reference");
        cJSON_AddStringToObject(ref, "message_id", o->reply_to);
        cJSON_AddFalseToObject(ref, "fail_if_not_exists");
    }
    req_json(r, b);
    r->ctx = o;
    submit(a, cx, r);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void post_file(dc_adapter *a, rt_ctx *cx, dc_out *o, char *data, size_t len)
{
    char name[128];
    size_t n = 0;
    for (const char *p = base_name(o->path); *p && n + 1 < sizeof(name); p++)
        name[n++] = ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\') ? '_' : *p;
    name[n] = '\0';
    if (!n)
        rt_strlcpy(name, "file", sizeof(name));
    char boundary[48];
    snprintf(boundary, sizeof(boundary), "hermes%016llx", (unsigned long long)ak_rand(&a->rnd));
    cJSON *pj = cJSON_CreateObject();
    cJSON *atts = cJSON_AddArrayToObject(pj, "attachments");
    cJSON *a0 = cJSON_CreateObject();
    cJSON_AddNumberToObject(a0, "id", 0);
    cJSON_AddStringToObject(a0, "filename", name);
    cJSON_AddItemToArray(atts, a0);
    add_nonce(cx, pj, o);
    if (o->reply_to) {
        cJSON *ref = cJSON_AddObjectToObject(pj, "message_reference");
        cJSON_AddStringToObject(ref, "message_id", o->reply_to);
        cJSON_AddFalseToObject(ref, "fail_if_not_exists");
    }
    char *pjs = cJSON_PrintUnformatted(pj);
    cJSON_Delete(pj);
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    (void)rt_buf_printf(&b,
                        "--%s\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n"
                        "Content-Type: application/json\r\n\r\n%s\r\n--%s\r\n"
                        "Content-Disposition: form-data; name=\"files[0]\"; filename=\"%s\"\r\n"
                        "Content-Type: application/octet-stream\r\n\r\n",
                        boundary, pjs, boundary, name);
    cJSON_free(pjs);
    (void)rt_buf_append(&b, data, len);
    (void)rt_buf_printf(&b, "\r\n--%s--\r\n", boundary);
    char *path = channel_path(o->channel, "/messages");
    dc_req *r = req_rest(a, DC_R_UPLOAD, "POST", path, "POST /channels/{id}/messages", o->channel);
    rt_free(path);
    r->body = rt_buf_steal(&b, &r->body_len);
    rt_buf_fini(&b);
    r->ctype = rt_xasprintf("Content-Type: multipart/form-data; boundary=%s", boundary);
    r->ctx = o;
    submit(a, cx, r);
}

static void out_start(dc_adapter *a, rt_ctx *cx, dc_out *o)
{
    if (o->what == DC_OUT_TEXT) {
        post_text(a, cx, o);
    } else {
        dc_req *r = rt_xcalloc(1, sizeof(*r));
        r->kind = DC_R_READ;
        r->ctx = o;
        ak_io_read(cx, a->io, o->path, a->o.max_file_bytes, a->self, track(a, r));
    }
}

/* Start what may go: the first message of each channel that has none on its way, up to
 * DC_OUT_PARALLEL channels at once (ak_lanes); the route buckets and the global limit still
 * hold requests back in submit (discord_rl). Arms the retry timer. */
static void out_pump(dc_adapter *a, rt_ctx *cx)
{
    if (!a->lanes_ready || a->phase == DC_PH_STOPPED || a->phase == DC_PH_FATAL)
        return;
    void *go[DC_OUT_PARALLEL];
    size_t n = ak_lanes_ready(&a->lanes, now_ns(cx), go, DC_OUT_PARALLEL);
    for (size_t i = 0; i < n; i++)
        out_start(a, cx, go[i]);
    int64_t now = now_ns(cx), next = ak_lanes_next_due(&a->lanes, now);
    if (next)
        ak_timer_arm(cx, a->self, &a->tm, DC_T_OUT, (next - now + 999999) / 1000000);
    else
        ak_timer_cancel(cx, &a->tm, DC_T_OUT);
}

static void drained_check(dc_adapter *a, rt_ctx *cx)
{
    if (!a->draining || (a->lanes_ready && ak_lanes_count(&a->lanes)) ||
        a->phase == DC_PH_STOPPED || a->phase == DC_PH_FATAL)
        return;
    a->phase = DC_PH_STOPPED;
    shut(a, cx);
    RT_INFO(DC_LOG, "Discord: disconnected");
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void on_drain(dc_adapter *a, rt_ctx *cx)
{
    if (a->draining)
        return;
    a->draining = true;
    ws_abandon(a, cx, 1000); /* no new events */
    ak_timer_cancel(cx, &a->tm, DC_T_RECONNECT);
    ak_timer_cancel(cx, &a->tm, DC_T_TYPING);
    drained_check(a, cx);
}

static void on_out_timer(dc_adapter *a, rt_ctx *cx)
{
    out_pump(a, cx);
}

/* An answer that does not say whether the message was made: no answer in time, the
 * connection dropped after sending, a proxy's 502/504. */
static bool ambiguous(const rt_io_msg_http_done *d)
{
    if (d->err)
        return d->err == -ETIMEDOUT || d->err == -ECONNRESET || d->err == -EPIPE;
    return d->status == 502 || d->status == 504;
}

static void out_retry(dc_adapter *a, rt_ctx *cx, dc_out *o, const rt_io_msg_http_done *d,
                      const char *why)
{
    if (ambiguous(d))
        o->maybe_sent = true;
    int64_t now = now_ns(cx), ms = 1000LL << o->tries;
    bool late = o->maybe_sent && (!o->nonce[0] || !o->first_try_ns ||
                                  now + ms * 1000000 > o->first_try_ns + DC_NONCE_WINDOW_NS);
    if (o->maybe_sent && (late || o->tries + 1 >= DC_OUT_TRIES)) {
        RT_ERROR(DC_LOG,
                 "Discord: a message to %s got no answer (%s); it may have been posted, so it "
                 "is not sent again",
                 o->channel, why);
        o->ack_err = -ETIMEDOUT;
        o->ack_permanent = true; /* the outbox must not send it again either */
        out_pop(a, cx, o);
        return;
    }
    if (++o->tries >= DC_OUT_TRIES) {
        RT_WARN(DC_LOG, "Discord: giving up on a message to %s: %s", o->channel, why);
        o->ack_err = -EIO; /* the gateway's outbox tries again later */
        out_pop(a, cx, o);
        return;
    }
    RT_WARN(DC_LOG, "Discord: sending to %s failed (%s); retrying", o->channel, why);
    ak_lanes_retry(&a->lanes, o, now + ms * 1000000); /* its channel waits */
    out_pump(a, cx);
}

static dc_out *out_new(int what, const gw_target *to)
{
    dc_out *o = rt_xcalloc(1, sizeof(*o));
    o->what = what;
    o->channel = rt_xstrdup(to->chat_id);
    o->reply_to = to->reply_to && *to->reply_to ? rt_xstrdup(to->reply_to) : NULL;
    return o;
}

/* Characters (code points) in s. */
static size_t u8len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void on_out_text(dc_adapter *a, rt_ctx *cx, gw_out_text *t)
{
    if (!t->to.chat_id || !t->text) {
        ack(a, cx, t->delivery, -EINVAL, true);
        return;
    }
    int prev_err = 0;
    bool prev_permanent = false;
    switch (ak_lanes_claim(lanes(a), t->delivery, &prev_err, &prev_permanent)) {
    case AK_LANES_QUEUED: return; /* already on its way: its ack answers this copy too */
    case AK_LANES_DONE: ack(a, cx, t->delivery, prev_err, prev_permanent); return;
    default: break;
    }
    dc_out *last = NULL;
    size_t index = 0;
    rt_buf rest;
    rt_buf_init(&rest, SIZE_MAX / 2);
    char *paths[8];
    size_t np = 0;
    const char *p = t->text;
    const char *end = p + strlen(p);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        char *m = ak_media_line(p, le);
        if (m && np < 8) {
            paths[np++] = m;
        } else {
            rt_free(m);
            (void)rt_buf_append(&rest, p, (size_t)(le - p) + (nl ? 1 : 0));
        }
        p = nl ? nl + 1 : end;
    }
    while (rest.len && (rest.data[rest.len - 1] == '\n' || rest.data[rest.len - 1] == ' '))
        rest.data[--rest.len] = '\0';
    const char *body = rt_buf_cstr(&rest);
    while (*body == '\n')
        body++;
    if (*body) {
        if (u8len(body) > DISCORD_MAX_MESSAGE) {
            char **parts = gw_chunk(body, DISCORD_MAX_MESSAGE);
            for (size_t i = 0; parts[i]; i++) {
                dc_out *o = out_new(DC_OUT_TEXT, &t->to);
                o->text = rt_xstrdup(parts[i]);
                if (i) { /* only the first part answers the message */
                    rt_free(o->reply_to);
                    o->reply_to = NULL;
                }
                o->group = t->delivery;
                set_nonce(a, o, t->delivery, index++);
                last = o;
                out_push(a, o);
            }
            gw_chunks_free(parts);
        } else {
            dc_out *o = out_new(DC_OUT_TEXT, &t->to);
            o->text = rt_xstrdup(body);
            if (t->part > 1) { /* the gateway split it: only the first part is a reply */
                rt_free(o->reply_to);
                o->reply_to = NULL;
            }
            o->group = t->delivery;
            set_nonce(a, o, t->delivery, index++);
            last = o;
            out_push(a, o);
        }
    }
    rt_buf_fini(&rest);
    for (size_t i = 0; i < np; i++) {
        dc_out *o = out_new(DC_OUT_FILE, &t->to);
        o->path = paths[i];
        o->group = t->delivery;
        set_nonce(a, o, t->delivery, index++);
        last = o;
        out_push(a, o);
    }
    if (last && !ak_lanes_has(&a->lanes, last))
        last = NULL; /* the queue was full: dropped */
    if (t->delivery) {
        if (last)
            last->delivery = t->delivery; /* acked when its last part is done */
        else
            ack(a, cx, t->delivery, *t->text ? -ENOBUFS : 0, false);
    }
    out_pump(a, cx);
}

static void outbound_result(dc_adapter *a, rt_ctx *cx, dc_req *r, rt_io_msg_http_done *d)
{
    dc_out *o = r->ctx;
    if (!a->lanes_ready || !ak_lanes_busy(&a->lanes, o))
        return;
    if (!d->err && d->status >= 200 && d->status < 300) {
        if (thread_parent(a, o->channel))
            ak_ring_add(a->chans, DC_CHANS_MAX, &a->chans_next, ak_hash(o->channel));
        out_pop(a, cx, o);
        return;
    }
    char why[200];
    if (d->err)
        snprintf(why, sizeof(why), "%s", d->errmsg ? d->errmsg : rt_strerror(d->err));
    else
        snprintf(why, sizeof(why), "HTTP %d: %.120s", d->status, d->body ? d->body : "");
    if (d->err || d->status >= 500) {
        out_retry(a, cx, o, d, why);
    } else if (d->status == 400 && o->reply_to) {
        rt_free(o->reply_to); /* the message answered is gone: post without the reference */
        o->reply_to = NULL;
        out_again(a, cx, o);
    } else {
        RT_WARN(DC_LOG, "Discord: posting to %s failed: %s", o->channel, why);
        if (d->status == 403)
            RT_WARN(DC_LOG, "Discord: the bot lacks Send Messages / Attach Files in %s",
                    o->channel);
        o->ack_err = o->maybe_sent ? -ETIMEDOUT : -EIO;
        o->ack_permanent = true;
        out_pop(a, cx, o);
    }
}

static void outbound_read(dc_adapter *a, rt_ctx *cx, dc_req *r, ak_io_done *d)
{
    dc_out *o = r->ctx;
    if (!a->lanes_ready || !ak_lanes_busy(&a->lanes, o))
        return;
    if (d->err) {
        RT_WARN(DC_LOG, "Discord: cannot send %s: %s", o->path, rt_strerror(d->err));
        o->what = DC_OUT_TEXT;
        o->text = rt_xasprintf("⚠️ File not found or unreadable: %s", base_name(o->path));
        out_again(a, cx, o);
        return;
    }
    post_file(a, cx, o, d->data, d->len);
}

/* ---- typing ---- */

static void typing_post(dc_adapter *a, rt_ctx *cx, const char *channel)
{
    char *path = channel_path(channel, "/typing");
    dc_req *r = req_rest(a, DC_R_TYPING, "POST", path, "POST /channels/{id}/typing", channel);
    rt_free(path);
    r->body = rt_xstrdup("");
    submit(a, cx, r);
}

static void typing_set(dc_adapter *a, rt_ctx *cx, const char *channel, bool on)
{
    for (size_t i = 0; i < a->ntyping; i++) {
        if (strcmp(a->typing[i], channel) != 0)
            continue;
        if (!on) {
            rt_free(a->typing[i]);
            a->typing[i] = a->typing[--a->ntyping];
        }
        return;
    }
    if (!on || a->ntyping >= DC_TYPING_MAX)
        return;
    a->typing[a->ntyping++] = rt_xstrdup(channel);
    typing_post(a, cx, channel);
    if (!ak_timer_armed(&a->tm, DC_T_TYPING))
        ak_timer_arm(cx, a->self, &a->tm, DC_T_TYPING, a->o.typing_ms);
}

static void on_typing_timer(dc_adapter *a, rt_ctx *cx)
{
    for (size_t i = 0; i < a->ntyping; i++)
        typing_post(a, cx, a->typing[i]);
    if (a->ntyping)
        ak_timer_arm(cx, a->self, &a->tm, DC_T_TYPING, a->o.typing_ms);
}

/* ================================================================ inbound */

static void job_free(dc_job *j)
{
    if (j->ev)
        rt_msg_free(&j->ev->hdr);
    for (size_t i = 0; i < j->nfiles; i++) {
        rt_free(j->paths[i]);
        rt_free(j->mimes[i]);
    }
    rt_free(j);
}

static void jobs_flush(dc_adapter *a, rt_ctx *cx)
{
    while (a->jobs && a->jobs->pending == 0) {
        dc_job *j = a->jobs;
        a->jobs = j->next;
        if (!a->jobs)
            a->jobs_tail = NULL;
        a->njobs--;
        gw_msg_event *ev = j->ev;
        j->ev = NULL;
        ak_event_attach(ev, j->paths, j->mimes, j->ok, j->nfiles);
        rt_ref gw = ak_gateway_of(cx, a->gateway);
        gw_event_send(cx, gw, ev);
        mark_put(a, cx, &j->mark);
        job_free(j);
    }
    if (a->catch_paused && a->catching && a->njobs <= DC_JOBS_MAX / 4) {
        a->catch_paused = false;
        catch_request(a, cx);
    }
}

static void strip(char *text, const char *needle)
{
    size_t ml = strlen(needle);
    char *p;
    while ((p = strstr(text, needle)))
        memmove(p, p + ml, strlen(p + ml) + 1);
}

static void trim(char *text)
{
    size_t n = strlen(text);
    while (n && isspace((unsigned char)text[n - 1]))
        text[--n] = '\0';
    size_t k = 0;
    while (text[k] && isspace((unsigned char)text[k]))
        k++;
    memmove(text, text + k, n - k + 1);
}

static bool id_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 32)
        return false;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

/* A message for the bot becomes a job (true); anything else is left (false). */
static bool inbound_take(dc_adapter *a, rt_ctx *cx, const cJSON *m)
{
    const char *id = jstr(m, "id");
    const char *channel = jstr(m, "channel_id");
    const cJSON *author = cJSON_GetObjectItemCaseSensitive(m, "author");
    const char *uid = jstr(author, "id");
    if (!id_ok(id) || !id_ok(channel) || !uid || !a->bot_id)
        return false;
    if (strcmp(uid, a->bot_id) == 0 ||
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(author, "bot")))
        return false; /* ourselves, other bots */
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
    if (cJSON_IsNumber(type) && type->valuedouble != 0 && type->valuedouble != 19)
        return false; /* joins, pins, thread notices … */
    uint64_t key = ak_hash(id);
    if (ak_ring_has(a->seen, DC_SEEN_MAX, key))
        return false;
    const char *guild = jstr(m, "guild_id");
    bool dm = guild == NULL;
    const char *parent = dm ? NULL : thread_parent(a, channel);
    if (!dm) {
        if (ak_strv_has(a->o.ignored_channels, channel) ||
            ak_strv_has(a->o.ignored_channels, parent))
            return false;
        if (a->o.allowed_channels && !ak_strv_has(a->o.allowed_channels, channel) &&
            !ak_strv_has(a->o.allowed_channels, parent))
            return false;
    }
    const char *content = jstr(m, "content");
    if (!content)
        content = "";
    char m1[48], m2[48];
    snprintf(m1, sizeof(m1), "<@%s>", a->bot_id);
    snprintf(m2, sizeof(m2), "<@!%s>", a->bot_id);
    bool mentioned = strstr(content, m1) || strstr(content, m2);
    const cJSON *mm;
    cJSON_ArrayForEach(mm, cJSON_GetObjectItemCaseSensitive(m, "mentions"))
    {
        const char *mid = jstr(mm, "id");
        if (mid && strcmp(mid, a->bot_id) == 0)
            mentioned = true;
    }
    const char *ref_author =
        jstr(cJSON_GetObjectItemCaseSensitive(
                 cJSON_GetObjectItemCaseSensitive(m, "referenced_message"), "author"),
             "id");
    bool reply_to_bot = ref_author && strcmp(ref_author, a->bot_id) == 0;
    if (!dm && !mentioned && !reply_to_bot && a->o.require_mention &&
        !ak_strv_has(a->o.free_channels, channel) && !ak_strv_has(a->o.free_channels, parent) &&
        !(parent && ak_ring_has(a->chans, DC_CHANS_MAX, ak_hash(channel))))
        return false;
    ak_ring_add(a->seen, DC_SEEN_MAX, &a->seen_next, key);
    if (mentioned && parent)
        ak_ring_add(a->chans, DC_CHANS_MAX, &a->chans_next, ak_hash(channel));
    if (a->njobs >= DC_JOBS_MAX) {
        RT_LOG_LIMITED(RT_LOG_WARN, DC_LOG, 10000, "Discord: too many messages waiting; dropped");
        return false;
    }
    char *text = rt_xstrdup(content);
    strip(text, m1);
    strip(text, m2);
    trim(text);
    gw_msg_event *ev = gw_event_new(DISCORD_PLATFORM,
                                    dm       ? "dm"
                                    : parent ? "thread"
                                             : "group",
                                    parent ? parent : channel, uid, text);
    rt_free(text);
    const char *uname = jstr(author, "global_name");
    if (!uname)
        uname = jstr(author, "username");
    ev->src.user_name = dupn(uname);
    ev->src.thread_id = parent ? rt_xstrdup(channel) : NULL;
    rt_free(ev->reply.chat_id);
    ev->reply.chat_id = rt_xstrdup(channel);
    ev->reply.reply_to = dm ? NULL : rt_xstrdup(id);
    ev->message_id = rt_xstrdup(id);
    ev->adapter = a->self;
    dc_job *j = rt_xcalloc(1, sizeof(*j));
    j->ev = ev;
    rt_strlcpy(j->mark.channel, channel, sizeof(j->mark.channel));
    rt_strlcpy(j->mark.last, id, sizeof(j->mark.last));
    if (guild && discord_id_ok(guild))
        rt_strlcpy(j->mark.guild, guild, sizeof(j->mark.guild));
    if (parent && discord_id_ok(parent))
        rt_strlcpy(j->mark.parent, parent, sizeof(j->mark.parent));
    const cJSON *att;
    cJSON_ArrayForEach(att, cJSON_GetObjectItemCaseSensitive(m, "attachments"))
    {
        const char *url = jstr(att, "url");
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(att, "size");
        if (j->nfiles >= DC_FILES_MAX || !url ||
            (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0))
            continue;
        if (cJSON_IsNumber(size) && size->valuedouble > (double)a->o.max_file_bytes) {
            RT_WARN(DC_LOG, "Discord: an attachment is larger than %zu bytes; not downloaded",
                    a->o.max_file_bytes);
            continue;
        }
        size_t k = j->nfiles++;
        char *nm = ak_safe_name(jstr(att, "filename"), k);
        j->paths[k] = rt_xasprintf("%s/discord_%s_%zu_%s", a->cache_dir, id, k, nm);
        rt_free(nm);
        j->mimes[k] = dupn(jstr(att, "content_type"));
        dc_req *r = rt_xcalloc(1, sizeof(*r));
        r->kind = DC_R_DOWNLOAD;
        r->method = "GET";
        r->url = rt_xstrdup(url);
        r->max_body = a->o.max_file_bytes;
        r->ctx = j;
        r->idx = k;
        j->pending++;
        submit(a, cx, r);
    }
    /* auto_thread: a message answered in a guild channel (not a thread, not a
     * free-response or no-thread channel) gets a thread of its own, and the answer goes there */
    if (!dm && !parent && a->o.auto_thread && !ak_strv_has(a->o.free_channels, channel) &&
        !ak_strv_has(a->o.no_thread_channels, channel)) {
        char *path = rt_xasprintf("/channels/%s/messages/%s/threads", channel, id);
        dc_req *r = req_rest(a, DC_R_THREAD, "POST", path,
                             "POST /channels/{id}/messages/{id}/threads", channel);
        rt_free(path);
        cJSON *b = cJSON_CreateObject();
        char *name = discord_thread_name(content);
        cJSON_AddStringToObject(b, "name", name);
        rt_free(name);
        cJSON_AddNumberToObject(b, "auto_archive_duration", 1440);
        req_json(r, b);
        r->ctx = j;
        j->pending++;
        submit(a, cx, r);
    }
    if (a->jobs_tail)
        a->jobs_tail->next = j;
    else
        a->jobs = j;
    a->jobs_tail = j;
    a->njobs++;
    jobs_flush(a, cx);
    return true;
}

/* A message, live or caught up: taken, or — when no taken one waits (a position never
 * passes an unsent event) — its channel's position moves past it. */
static void inbound(dc_adapter *a, rt_ctx *cx, const cJSON *m)
{
    if (inbound_take(a, cx, m) || a->njobs)
        return;
    const char *ch = jstr(m, "channel_id");
    const char *id = jstr(m, "id");
    if (!ch || !discord_id_ok(id) || !mark_find(a, ch))
        return;
    discord_mark k;
    memset(&k, 0, sizeof(k));
    rt_strlcpy(k.channel, ch, sizeof(k.channel));
    rt_strlcpy(k.last, id, sizeof(k.last));
    mark_put(a, cx, &k);
}

/* The thread for an auto-threaded message: on success the event moves into it (the thread's
 * session, the answer posted there); on failure it is answered in the channel. */
static void thread_result(dc_adapter *a, rt_ctx *cx, dc_req *r, rt_io_msg_http_done *d)
{
    dc_job *j = r->ctx;
    gw_msg_event *ev = j->ev;
    const char *tid = NULL;
    cJSON *body = d->body ? cJSON_Parse(d->body) : NULL;
    if (!d->err && d->status >= 200 && d->status < 300) {
        tid = jstr(body, "id");
    } else if (!d->err && d->status == 400) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(body, "code");
        if (cJSON_IsNumber(code) && code->valuedouble == 160004) /* one exists already */
            tid = ev->message_id; /* a thread started from a message has the message's id */
    }
    if (tid && id_ok(tid)) {
        remember_thread(a, tid, ev->src.chat_id);
        ak_ring_add(a->chans, DC_CHANS_MAX, &a->chans_next, ak_hash(tid));
        discord_mark k = j->mark; /* the thread's messages are caught up after its start */
        rt_strlcpy(k.channel, tid, sizeof(k.channel));
        rt_strlcpy(k.parent, ev->src.chat_id, sizeof(k.parent));
        rt_strlcpy(k.last, tid, sizeof(k.last));
        mark_put(a, cx, &k);
        rt_free(ev->src.chat_type);
        ev->src.chat_type = rt_xstrdup("thread");
        rt_free(ev->src.thread_id);
        ev->src.thread_id = rt_xstrdup(tid);
        rt_free(ev->reply.chat_id);
        ev->reply.chat_id = rt_xstrdup(tid);
        rt_free(ev->reply.reply_to); /* the thread starts with the message answered */
        ev->reply.reply_to = NULL;
    } else {
        RT_LOG_LIMITED(RT_LOG_WARN, DC_LOG, 10000,
                       "Discord: could not start a thread in %s (%s); answering in the channel "
                       "— does the bot have Create Public Threads?",
                       ev->src.chat_id,
                       d->err             ? rt_strerror(d->err)
                       : d->status == 403 ? "403 Forbidden"
                                          : "refused");
    }
    cJSON_Delete(body);
    j->pending--;
    jobs_flush(a, cx);
}

static void inbound_download(dc_adapter *a, rt_ctx *cx, dc_req *r, rt_io_msg_http_done *d)
{
    dc_job *j = r->ctx;
    if (d->err || d->status != 200 || !d->body) {
        RT_WARN(DC_LOG, "Discord: downloading an attachment failed (%s)",
                d->err ? rt_strerror(d->err) : "HTTP error");
        j->pending--;
        jobs_flush(a, cx);
        return;
    }
    dc_req *w = rt_xcalloc(1, sizeof(*w));
    w->kind = DC_R_SAVE;
    w->ctx = j;
    w->idx = r->idx;
    char *data = d->body;
    d->body = NULL;
    ak_io_write(cx, a->io, j->paths[r->idx], data, d->body_len, 0600, a->self, track(a, w));
}

/* ================================================================ catching up */

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void catch_request(dc_adapter *a, rt_ctx *cx)
{
    if (a->ci >= a->nci || a->draining || a->phase == DC_PH_STOPPED) {
        a->catching = false;
        return;
    }
    if (a->njobs > DC_JOBS_MAX / 2) { /* a page may add 100: never past DC_JOBS_MAX */
        a->catch_paused = true;
        return;
    }
    const discord_mark *it = &a->citems[a->ci];
    if (!a->cafter[0]) { /* the position, or the age floor when it is older */
        char floor[DISCORD_ID_MAX];
        discord_snowflake_at(wall_ms() - a->o.catchup_max_age_s * 1000, floor, sizeof(floor));
        rt_strlcpy(a->cafter, discord_id_cmp(it->last, floor) >= 0 ? it->last : floor,
                   sizeof(a->cafter));
    }
    char *path = rt_xasprintf("/channels/%s/messages?after=%s&limit=%d", it->channel, a->cafter,
                              DISCORD_CATCHUP_PAGE_SIZE);
    dc_req *r = req_rest(a, DC_R_HISTORY, "GET", path, "GET /channels/{id}/messages", it->channel);
    rt_free(path);
    r->idx = a->catch_gen;
    submit(a, cx, r);
}

static void catch_next(dc_adapter *a, rt_ctx *cx)
{
    a->ci++;
    a->cpages = 0;
    a->cafter[0] = '\0';
    catch_request(a, cx);
}

/* After a READY, once the positions are known: a round over the remembered channels. */
static void catch_start(dc_adapter *a, rt_ctx *cx)
{
    if (!a->catch_due || !a->state_loaded || a->phase != DC_PH_LIVE || a->draining ||
        a->o.catchup_max_age_s < 0)
        return;
    a->catch_due = false;
    a->catch_gen++; /* a round still running is abandoned: this one covers it */
    memcpy(a->citems, a->marks, a->nmarks * sizeof(a->marks[0]));
    a->nci = a->nmarks;
    a->ci = 0;
    a->cpages = 0;
    a->cafter[0] = '\0';
    a->catch_paused = false;
    a->catching = a->nci > 0;
    if (!a->catching)
        return;
    RT_INFO(DC_LOG, "Discord: catching up on %zu channel(s)", a->nci);
    catch_request(a, cx);
}

static int by_id(const void *x, const void *y)
{
    const cJSON *const *p = x;
    const cJSON *const *q = y;
    return discord_id_cmp(jstr(*p, "id"), jstr(*q, "id"));
}

/* A page of GET /channels/{id}/messages: its messages go through inbound() oldest first. */
static void catch_result(dc_adapter *a, rt_ctx *cx, dc_req *r, rt_io_msg_http_done *d)
{
    if (!a->catching || r->idx != a->catch_gen || a->ci >= a->nci)
        return;
    if (a->draining) { /* stopping: no new events */
        a->catching = false;
        return;
    }
    const discord_mark *it = &a->citems[a->ci];
    if (d->err || d->status != 200) {
        if (!d->err && (d->status == 403 || d->status == 404)) {
            RT_WARN(DC_LOG,
                    "Discord: channel %s is gone or the bot cannot read it any more (%d %s); "
                    "forgetting it",
                    it->channel, d->status, d->status == 403 ? "Missing Access" : "Not Found");
            mark_drop(a, cx, it->channel);
        } else {
            RT_WARN(DC_LOG, "Discord: catching up on %s failed (%s)", it->channel,
                    d->err ? rt_strerror(d->err) : "HTTP error");
        }
        catch_next(a, cx);
        return;
    }
    cJSON *j = d->body ? cJSON_ParseWithLength(d->body, d->body_len) : NULL;
    if (!cJSON_IsArray(j)) {
        RT_WARN(DC_LOG, "Discord: catching up on %s: not a list of messages", it->channel);
        cJSON_Delete(j);
        catch_next(a, cx);
        return;
    }
    cJSON *page[DISCORD_CATCHUP_PAGE_SIZE];
    size_t n = 0, total = 0;
    cJSON *m;
    cJSON_ArrayForEach(m, j)
    {
        total++;
        const char *id = jstr(m, "id");
        const char *ch = jstr(m, "channel_id");
        if (n >= DISCORD_CATCHUP_PAGE_SIZE || !cJSON_IsObject(m) || !discord_id_ok(id) || !ch ||
            strcmp(ch, it->channel) != 0 || discord_id_cmp(id, a->cafter) <= 0)
            continue;
        page[n++] = m;
    }
    qsort(page, n, sizeof(page[0]), by_id); /* Discord lists them newest first */
    char newest[DISCORD_ID_MAX] = "";
    for (size_t i = 0; i < n; i++) {
        if (it->guild[0] && !jstr(page[i], "guild_id")) /* REST messages carry no guild_id */
            cJSON_AddStringToObject(page[i], "guild_id", it->guild);
        rt_strlcpy(newest, jstr(page[i], "id"), sizeof(newest));
        inbound(a, cx, page[i]);
    }
    cJSON_Delete(j);
    if (total >= DISCORD_CATCHUP_PAGE_SIZE && newest[0]) {
        if (++a->cpages < a->o.catchup_pages) {
            rt_strlcpy(a->cafter, newest, sizeof(a->cafter));
            catch_request(a, cx);
            return;
        }
        RT_WARN(DC_LOG,
                "Discord: more than %d messages came in %s while Hermes was away; catching up "
                "stops there",
                a->o.catchup_pages * DISCORD_CATCHUP_PAGE_SIZE, it->channel);
    }
    catch_next(a, cx);
}

/* The state file was read (or is missing): the positions are known. */
static void on_state_read(dc_adapter *a, rt_ctx *cx, ak_io_done *d)
{
    bool had = a->nmarks > 0; /* made before the file was read: to be written */
    if (d->err == 0) {
        char bot[DISCORD_ID_MAX];
        discord_mark *tmp = rt_xcalloc(DISCORD_CATCHUP_CHANNELS, sizeof(*tmp));
        size_t n = 0;
        if (discord_state_parse(d->data, bot, sizeof(bot), tmp, DISCORD_CATCHUP_CHANNELS, &n)) {
            RT_WARN(DC_LOG, "Discord: %s is damaged; starting without catch-up positions",
                    a->state_path);
        } else if (bot[0] && a->state_bot[0] && strcmp(bot, a->state_bot) != 0) {
            RT_WARN(DC_LOG, "Discord: %s belongs to another bot (%s); not catching up from it",
                    a->state_path, bot);
        } else {
            if (!a->state_bot[0])
                rt_strlcpy(a->state_bot, bot, sizeof(a->state_bot));
            for (size_t i = 0; i < n; i++) {
                mark_put(a, cx, &tmp[i]);
                if (tmp[i].parent[0]) { /* a thread the bot answered in: it is in it */
                    remember_thread(a, tmp[i].channel, tmp[i].parent);
                    ak_ring_add(a->chans, DC_CHANS_MAX, &a->chans_next, ak_hash(tmp[i].channel));
                }
            }
        }
        rt_free(tmp);
    } else if (d->err != -ENOENT) {
        RT_WARN(DC_LOG, "Discord: cannot read %s: %s; starting without catch-up positions",
                a->state_path, rt_strerror(d->err));
    }
    a->state_loaded = true;
    a->state_dirty = had;
    if (had)
        state_touch(a, cx);
    catch_start(a, cx);
}

/* ================================================================ dispatch */

static void on_http_done(dc_adapter *a, rt_ctx *cx, rt_io_msg_http_done *d)
{
    dc_req *r = rt_map_del(&a->reqs, d->tag);
    if (!r)
        return;
    r->http_id = 0;
    if (ratelimit_answer(a, cx, r, d)) {
        rt_map_put(&a->reqs, r->tag, r);
        submit(a, cx, r);
        return;
    }
    switch (r->kind) {
    case DC_R_GATEWAY:
        if (a->phase == DC_PH_GATEWAY)
            on_gateway(a, cx, d);
        break;
    case DC_R_DOWNLOAD: inbound_download(a, cx, r, d); break;
    case DC_R_TYPING: break;
    case DC_R_THREAD: thread_result(a, cx, r, d); break;
    case DC_R_HISTORY: catch_result(a, cx, r, d); break;
    default: outbound_result(a, cx, r, d); break;
    }
    req_free(r);
}

static void on_io_done(dc_adapter *a, rt_ctx *cx, ak_io_done *d)
{
    dc_req *r = rt_map_del(&a->reqs, d->tag);
    if (!r)
        return;
    if (r->kind == DC_R_SAVE) {
        dc_job *j = r->ctx;
        j->ok[r->idx] = d->err == 0;
        j->pending--;
        jobs_flush(a, cx);
    } else if (r->kind == DC_R_STATE) {
        on_state_read(a, cx, d);
    } else {
        outbound_read(a, cx, r, d);
    }
    req_free(r);
}

static void on_timeout(dc_adapter *a, rt_ctx *cx, rt_msg_timeout *t)
{
    int kind = ak_timer_fired(&a->tm, t); /* 0: re-armed or cancelled since */
    if (!kind)
        return;
    switch (kind) {
    case DC_T_RECONNECT:
        if (a->phase == DC_PH_WAIT)
            begin_gateway(a, cx);
        break;
    case DC_T_HEARTBEAT: on_heartbeat_timer(a, cx); break;
    case DC_T_RATELIMIT: on_ratelimit_timer(a, cx); break;
    case DC_T_OUT: on_out_timer(a, cx); break;
    case DC_T_TYPING: on_typing_timer(a, cx); break;
    case DC_T_SAVE:
        if (a->state_dirty)
            state_save(a, cx);
        break;
    default: break;
    }
}

static void behave(rt_ctx *cx, void *state, rt_msg *m)
{
    dc_adapter *a = state;
    a->self = rt_self(cx);
    if (a->phase == DC_PH_FATAL)
        return;
    if (a->phase == DC_PH_STOPPED && m->type != RT_MSG_STOP)
        return;
    switch (m->type) {
    case DC_MSG_START:
        if (a->phase == DC_PH_INIT) {
            a->io = ak_io_start(cx, "Discord");
            if (a->o.catchup_max_age_s >= 0) { /* the positions, before anything is written */
                dc_req *r = rt_xcalloc(1, sizeof(*r));
                r->kind = DC_R_STATE;
                ak_io_read(cx, a->io, a->state_path, 1u << 20, a->self, track(a, r));
            }
            begin_gateway(a, cx);
        }
        break;
    case RT_IO_MSG_HTTP_DONE: on_http_done(a, cx, (rt_io_msg_http_done *)m); break;
    case RT_WS_MSG_OPEN: break; /* the gateway speaks first (Hello) */
    case RT_WS_MSG_MESSAGE: on_ws_message(a, cx, (rt_ws_msg_message *)m); break;
    case RT_WS_MSG_CLOSED: on_ws_closed(a, cx, (rt_ws_msg_closed *)m); break;
    case RT_MSG_TIMEOUT: on_timeout(a, cx, (rt_msg_timeout *)m); break;
    case AK_MSG_IO_DONE: on_io_done(a, cx, (ak_io_done *)m); break;
    case GW_OUT_TEXT: on_out_text(a, cx, (gw_out_text *)m); break;
    case GW_OUT_TYPING: {
        gw_out_typing *t = (gw_out_typing *)m;
        if (t->to.chat_id)
            typing_set(a, cx, t->to.chat_id, t->on);
        break;
    }
    case GW_OUT_TURN_END: {
        gw_out_turn_end *t = (gw_out_turn_end *)m;
        if (t->to.chat_id)
            typing_set(a, cx, t->to.chat_id, false);
        break;
    }
    case GW_OUT_DELTA: break;
    case DC_MSG_DRAIN: on_drain(a, cx); break;
    case RT_MSG_STOP:
        if (a->phase != DC_PH_STOPPED) {
            a->phase = DC_PH_STOPPED;
            shut(a, cx);
            RT_INFO(DC_LOG, "Discord: disconnected");
        }
        break;
    case RT_MSG_EXIT:
    case RT_MSG_DOWN:
    case RT_MSG_INTERRUPT: break;
    default: RT_WARN_ONCE(DC_LOG, "Discord: unexpected message type %#x", m->type); break;
    }
}

static void adapter_free(void *state)
{
    dc_adapter *a = state;
    cancel_all(a, NULL);
    rt_map_fini(&a->reqs);
    discord_rl_free(a->rl);
    while (a->jobs) {
        dc_job *j = a->jobs;
        a->jobs = j->next;
        job_free(j);
    }
    if (a->lanes_ready)
        ak_lanes_fini(&a->lanes, out_free_cb, NULL);
    for (size_t i = 0; i < a->ntyping; i++)
        rt_free(a->typing[i]);
    for (size_t i = 0; i < a->nthreads; i++) {
        rt_free(a->threads[i].tid);
        rt_free(a->threads[i].pid);
    }
    rt_free(a->auth);
    rt_free(a->cache_dir);
    rt_free(a->gateway_url);
    rt_free(a->session_id);
    rt_free(a->resume_url);
    rt_free(a->bot_id);
    rt_free(a->state_path);
    discord_opts_fini(&a->o);
    rt_free(a);
}

static const rt_actor_type dc_type = {"discord", behave, adapter_free, 0};

/* ================================================================ start */

static int fail(char *err, size_t errlen, int rc, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return rc;
}

int discord_start(rt_ctx *cx, const discord_opts *o, rt_ref gateway, rt_ref *out, char *err,
                  size_t errlen)
{
    if (!o || !out || !o->token || !*o->token || !o->hermes_home)
        return fail(err, errlen, -EINVAL,
                    "Discord: DISCORD_BOT_TOKEN and HERMES_HOME are required");
    rt_runtime *rt = rt_ctx_runtime(cx);
    if (!rt_reactor_of(rt) || !rt_lws_of(rt))
        return fail(err, errlen, -EINVAL,
                    "Discord: the HTTP client and the WebSocket service are not running");
    dc_adapter *a = rt_xcalloc(1, sizeof(*a));
    a->o = *o;
    a->o.token = rt_xstrdup(o->token);
    a->o.api_base = rt_xstrdup(o->api_base ? o->api_base : DISCORD_API_DEFAULT);
    a->o.hermes_home = rt_xstrdup(o->hermes_home);
    a->o.home_channel = o->home_channel && *o->home_channel ? rt_xstrdup(o->home_channel) : NULL;
    a->o.free_channels = ak_strv_dup(o->free_channels);
    a->o.allowed_channels = ak_strv_dup(o->allowed_channels);
    a->o.ignored_channels = ak_strv_dup(o->ignored_channels);
    a->o.no_thread_channels = ak_strv_dup(o->no_thread_channels);
    a->o.ca_file = dupn(o->ca_file);
#define DEF(f, v)                                                                                  \
    if (a->o.f <= 0)                                                                               \
    a->o.f = (v)
    DEF(backoff_min_ms, 1000);
    DEF(backoff_max_ms, 60000);
    DEF(http_timeout_ms, 30000);
    DEF(typing_ms, 8000);
#undef DEF
    if (!a->o.catchup_pages)
        a->o.catchup_pages = DISCORD_CATCHUP_PAGES;
    if (!a->o.catchup_max_age_s)
        a->o.catchup_max_age_s = 86400;
    if (!a->o.max_file_bytes)
        a->o.max_file_bytes = 25u << 20;
    if (a->o.backoff_max_ms < a->o.backoff_min_ms)
        a->o.backoff_max_ms = a->o.backoff_min_ms;
    a->auth = rt_xasprintf("Authorization: Bot %s", o->token);
    a->cache_dir = rt_xasprintf("%s/cache", o->hermes_home);
    a->state_path = rt_xasprintf("%s/platforms/discord/state.json", o->hermes_home);
    a->gateway = gateway;
    a->seq = -1;
    a->rl = discord_rl_new();
    a->rnd = rt_hash_u64((uint64_t)getpid() ^ (uint64_t)rt_reactor_now_ns() ^ (uintptr_t)a) | 1;
    rt_map_init(&a->reqs);
    rt_ref ref = rt_spawn(cx, &dc_type, a, NULL);
    if (!ref)
        return fail(err, errlen, -ENOMEM, "Discord: could not start the adapter actor");
    rt_send(cx, ref, rt_msg_new(DC_MSG_START, sizeof(rt_msg)));
    *out = ref;
    return 0;
}

void discord_drain(rt_ctx *cx, rt_ref ref)
{
    rt_send(cx, ref, rt_msg_new(DC_MSG_DRAIN, sizeof(rt_msg)));
}
