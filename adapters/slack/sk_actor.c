/*
 * sk_actor — the Slack adapter actor (slack.h): the connection sequence, Socket Mode,
 * inbound events, outbound posts and files, Web API calls with per-method rate limits.
 *
 * The connection sequence (at start and after every drop):
 *
 *   AUTH   auth.test (bot token)            ok:false invalid_auth & co: fatal
 *   OPEN   apps.connections.open (app token) ok:false invalid_auth & co: fatal
 *   WS     the WebSocket to the URL returned
 *   LIVE   "hello": backoff reset, GW_MSG_ADAPTER_UP the first time
 *
 * A "disconnect" frame opens a fresh URL at once (OPEN); a drop or a failed call waits
 * (1 s doubling to 60 s, plus up to 20 % jitter) and starts over at AUTH. The adapter stays
 * announced while it reconnects: replies still go out over the Web API.
 *
 * Every envelope is acknowledged the moment its frame is handled, before the event is
 * looked at. Events are recognised again by "<channel>:<ts>" (the message and app_mention
 * events of one message, Slack's retries, redelivered envelopes) and by envelope id.
 *
 * Catching up (slack.h): the state file is read at start (nothing is written before it was
 * read); every "hello" (LIVE) starts a round over the remembered conversations, one request
 * at a time: pages of conversations.history / .replies are collected, then the messages
 * newer than the conversation's position go through inbound() oldest first. A new "hello"
 * abandons a running round (its answers carry the round's generation and are ignored).
 * Positions move when an event is handed to the gateway, or when a message not taken is
 * handled while no taken one waits (so a position never passes an unsent event).
 */
#include "sk_int.h"

#include "ak_dedupe.h"
#include "ak_event.h"
#include "ak_lanes.h"
#include "ak_opts.h"
#include "ak_text.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_lws.h"
#include "rt_reactor.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"
#include "rt_ws.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum sk_phase {
    SK_PH_INIT = 0,
    SK_PH_AUTH,
    SK_PH_OPEN,
    SK_PH_WS,
    SK_PH_LIVE,
    SK_PH_WAIT,
    SK_PH_FATAL,
    SK_PH_STOPPED,
};

enum sk_timer { SK_T_RECONNECT = 1, SK_T_RATELIMIT, SK_T_OUT, SK_T_SAVE, SK_T_COUNT };

enum sk_req_kind {
    SK_R_AUTH = 1,
    SK_R_OPEN,
    SK_R_POST,
    SK_R_REACT,
    SK_R_DOWNLOAD,
    SK_R_SAVE, /* io: writing a download */
    SK_R_READ, /* io: reading a file to upload */
    SK_R_UPLOAD_URL,
    SK_R_UPLOAD_PUT,
    SK_R_UPLOAD_DONE,
    SK_R_USER,    /* users.info for a display name */
    SK_R_HISTORY, /* conversations.history / .replies while catching up */
    SK_R_STATE,   /* io: reading the state file */
};

typedef struct sk_req {
    struct sk_req *next; /* parked while its method is rate-limited */
    uint64_t tag;
    uint64_t http_id;
    int kind;
    char *method; /* Web API method ("chat.postMessage"), or NULL for a plain URL */
    char *url;
    bool app_token; /* authorise with the app token instead of the bot token */
    char *body;
    size_t body_len;
    const char *ctype;
    size_t max_body;
    int tries;
    void *ctx; /* sk_job or sk_out (invariant 2) */
    size_t idx;
} sk_req;

typedef struct sk_job {
    struct sk_job *next;
    gw_msg_event *ev; /* owned until sent */
    int pending;
    char *paths[4];
    char *mimes[4];
    bool ok[4];
    size_t nfiles;
    char *mk_channel; /* where the message was: its position moves on once it is sent */
    char *mk_ts;
    char *mk_thread; /* or NULL */
    bool mk_dm;
} sk_job;

enum sk_out_what { SK_OUT_TEXT = 1, SK_OUT_FILE };

/* A file goes out in four steps: read it, get an upload URL, upload, complete. */
enum sk_file_step { SK_F_READ = 0, SK_F_URL, SK_F_PUT, SK_F_COMPLETE };

/* Channels whose messages are on their way at once (per-chat lanes, issue 13); the per-method
 * limits (rl_set/park) still hold each request. */
#define SK_OUT_PARALLEL 8

typedef struct sk_out {
    int what;
    char *channel;
    char *thread_ts; /* or NULL */
    char *text;      /* TEXT: mrkdwn */
    char *path;      /* FILE */
    char *data;      /* FILE: bytes */
    size_t len;
    char *upload_url; /* FILE */
    char *file_id;    /* FILE */
    int step;         /* FILE: sk_file_step done so far */
    int tries;
    uint64_t delivery; /* the gateway's outbox entry this message ends (GW_MSG_SENT), or 0 */
    int ack_err;       /* 0, or why it was given up */
    bool ack_permanent;
    uint64_t group; /* the delivery it belongs to (every part of it), or 0 */
} sk_out;

typedef struct sk_rl {
    char method[48];
    int64_t until_ns;
} sk_rl;

typedef struct sk_adapter {
    slack_opts o;
    char *bot_auth; /* "Authorization: Bearer xoxb-…" */
    char *app_auth;
    char *cache_dir;
    rt_ref gateway;
    rt_ref self;
    rt_ref io;

    int phase;
    char *bot_user; /* the bot's user id */
    char *mention;  /* "<@Uxxx>" */
    bool announced;
    uint64_t conn;
    uint64_t conn_gen;
    int64_t backoff_ms;
    uint64_t rnd;
    ak_timers tm; /* one slot per timer kind */

    rt_map reqs;
    uint64_t next_tag;
    sk_rl rl[SK_RL_MAX];
    sk_req *parked, *parked_tail;
    int64_t rl_due_ns; /* when the rate-limit timer fires */

    uint64_t seen[SK_SEEN_MAX]; /* hashes of event keys and envelope ids */
    size_t seen_next;
    uint64_t threads[SK_THREADS_MAX]; /* hashes of "<channel>:<thread_ts>" the bot is in */
    size_t threads_next;
    uint64_t reacted[SK_REACTED_MAX]; /* hashes of "<channel>:<ts>" marked :eyes: */
    char *user_id[SK_USERS_MAX];      /* display names looked up (users.info) */
    char *user_name[SK_USERS_MAX];
    size_t nusers, users_next;
    size_t reacted_next;

    sk_job *jobs, *jobs_tail;
    size_t njobs;

    ak_lanes lanes; /* sk_out items in per-channel lanes (set up on first use) */
    bool lanes_ready;
    bool draining;     /* stop asked: no new events, finish the outbound queue, then end */
    uint64_t accepted; /* events taken so far (inbound tells taken from dropped by it) */

    /* catching up (slack.h): positions, persisted in state_path */
    char *state_path;
    char state_bot[SLACK_ID_MAX]; /* whose positions they are */
    bool state_loaded;            /* read (or found missing): nothing is written before */
    slack_mark marks[SLACK_CATCHUP_CONVERSATIONS];
    size_t nmarks;
    uint64_t mark_clock;
    bool catching;
    uint64_t catch_gen; /* a new "hello" starts over; older answers are ignored */
    slack_mark citems[SLACK_CATCHUP_CONVERSATIONS]; /* this round's conversations */
    size_t nci, ci;
    cJSON *cmsgs; /* the current conversation's messages so far */
    int cpages;
    char *ccursor;
    char coldest[SLACK_TS_MAX];
    bool scope_warned;
} sk_adapter;

/* ================================================================ small helpers */

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

static int64_t now_ns(rt_ctx *cx)
{
    return rt_now_ns(rt_ctx_runtime(cx));
}

/* application/x-www-form-urlencoded value */
static void form_add(rt_buf *b, const char *name, const char *value)
{
    if (!value)
        return;
    if (b->len)
        (void)rt_buf_append_str(b, "&");
    (void)rt_buf_append_str(b, name);
    (void)rt_buf_append_str(b, "=");
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~')
            (void)rt_buf_append(b, p, 1);
        else
            (void)rt_buf_printf(b, "%%%02X", *p);
    }
}

/* ================================================================ requests */

static void req_free(sk_req *r)
{
    if (!r)
        return;
    rt_free(r->method);
    rt_free(r->url);
    rt_free(r->body);
    rt_free(r);
}

static sk_req *req_api(sk_adapter *a, int kind, const char *method, rt_buf *form)
{
    sk_req *r = rt_xcalloc(1, sizeof(*r));
    r->kind = kind;
    r->method = rt_xstrdup(method);
    r->url = rt_xasprintf("%s/%s", a->o.api_base, method);
    if (form) {
        r->body = rt_buf_steal(form, &r->body_len);
        rt_buf_fini(form);
    }
    if (!r->body) {
        r->body = rt_xstrdup("");
        r->body_len = 0;
    }
    r->ctype = "Content-Type: application/x-www-form-urlencoded";
    r->max_body = SK_API_MAX_BODY;
    return r;
}

static int64_t rl_until(sk_adapter *a, const char *method)
{
    for (size_t i = 0; i < SK_RL_MAX; i++)
        if (a->rl[i].method[0] && strcmp(a->rl[i].method, method) == 0)
            return a->rl[i].until_ns;
    return 0;
}

static void rl_set(sk_adapter *a, const char *method, int64_t until)
{
    size_t free_i = SK_RL_MAX, oldest = 0;
    for (size_t i = 0; i < SK_RL_MAX; i++) {
        if (a->rl[i].method[0] && strcmp(a->rl[i].method, method) == 0) {
            a->rl[i].until_ns = until;
            return;
        }
        if (!a->rl[i].method[0] && free_i == SK_RL_MAX)
            free_i = i;
        if (a->rl[i].until_ns < a->rl[oldest].until_ns)
            oldest = i;
    }
    size_t i = free_i < SK_RL_MAX ? free_i : oldest;
    rt_strlcpy(a->rl[i].method, method, sizeof(a->rl[i].method));
    a->rl[i].until_ns = until;
}

static void park(sk_adapter *a, rt_ctx *cx, sk_req *r, int64_t until)
{
    r->next = NULL;
    if (a->parked_tail)
        a->parked_tail->next = r;
    else
        a->parked = r;
    a->parked_tail = r;
    int64_t now = now_ns(cx);
    int64_t ms = until > now ? (until - now + 999999) / 1000000 : 0;
    if (!ak_timer_armed(&a->tm, SK_T_RATELIMIT) || until < a->rl_due_ns) {
        a->rl_due_ns = until;
        ak_timer_arm(cx, a->self, &a->tm, SK_T_RATELIMIT, ms);
    }
}

static void submit(sk_adapter *a, rt_ctx *cx, sk_req *r)
{
    if (!r->tag) {
        r->tag = ++a->next_tag;
        rt_map_put(&a->reqs, r->tag, r);
    }
    if (r->method) {
        int64_t until = rl_until(a, r->method);
        if (until > now_ns(cx)) {
            park(a, cx, r, until);
            return;
        }
    }
    const char *hdrs[4] = {NULL, NULL, NULL, NULL};
    size_t nh = 0;
    if (r->kind == SK_R_UPLOAD_PUT)
        hdrs[nh++] = "Content-Type: application/octet-stream";
    else if (r->kind != SK_R_DOWNLOAD)
        hdrs[nh++] = r->ctype;
    if (r->kind != SK_R_UPLOAD_PUT)
        hdrs[nh++] = r->app_token ? a->app_auth : a->bot_auth;
    rt_http_request q = {
        .method = r->kind == SK_R_DOWNLOAD ? "GET" : "POST",
        .url = r->url,
        .headers = hdrs,
        .body = r->kind == SK_R_DOWNLOAD ? NULL : r->body,
        .body_len = r->kind == SK_R_DOWNLOAD ? 0 : r->body_len,
        .timeout_ms = a->o.http_timeout_ms,
        .max_body = r->max_body,
        .max_redirects = r->kind == SK_R_DOWNLOAD ? 3 : 0,
        .ca_file = a->o.ca_file,
        .reply_to = a->self,
        .tag = r->tag,
    };
    r->http_id = rt_http_submit(cx, &q);
}

static sk_req *untrack(sk_adapter *a, uint64_t tag)
{
    return rt_map_del(&a->reqs, tag);
}

static uint64_t track(sk_adapter *a, sk_req *r)
{
    r->tag = ++a->next_tag;
    rt_map_put(&a->reqs, r->tag, r);
    return r->tag;
}

static void on_ratelimit_timer(sk_adapter *a, rt_ctx *cx)
{
    sk_req *list = a->parked;
    a->parked = a->parked_tail = NULL;
    while (list) {
        sk_req *r = list;
        list = r->next;
        r->next = NULL;
        submit(a, cx, r); /* parks again if its method is still limited */
    }
}

static void cancel_all(sk_adapter *a, rt_ctx *cx)
{
    for (size_t i = 0; i < a->reqs.cap; i++) {
        if (!a->reqs.keys[i])
            continue;
        sk_req *r = a->reqs.vals[i];
        if (r->http_id && cx) /* without cx (fini) its DONE just finds no one */
            rt_http_cancel(cx, r->http_id);
        req_free(r);
    }
    rt_map_fini(&a->reqs);
    rt_map_init(&a->reqs);
    a->parked = a->parked_tail = NULL; /* they were in the map too */
}

/* The Web API's answer: the parsed JSON when ok is true, else NULL with *error set to the
 * "error" field (or a description) in buf. */
static cJSON *api_result(const rt_io_msg_http_done *d, char *buf, size_t buflen)
{
    if (d->err) {
        snprintf(buf, buflen, "%s", d->errmsg ? d->errmsg : rt_strerror(d->err));
        return NULL;
    }
    cJSON *j = d->body ? cJSON_Parse(d->body) : NULL;
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(j, "ok");
    if (cJSON_IsTrue(ok))
        return j;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsString(e))
        snprintf(buf, buflen, "%s", e->valuestring);
    else
        snprintf(buf, buflen, "HTTP %d", d->status);
    cJSON_Delete(j);
    return NULL;
}

static bool auth_error(const char *e)
{
    static const char *const fatal[] = {"invalid_auth",
                                        "not_authed",
                                        "account_inactive",
                                        "token_revoked",
                                        "token_expired",
                                        "not_allowed_token_type",
                                        "missing_scope",
                                        "no_permission",
                                        "org_login_required",
                                        "ekm_access_denied",
                                        NULL};
    for (size_t i = 0; fatal[i]; i++)
        if (strcmp(e, fatal[i]) == 0)
            return true;
    return false;
}

static void catch_start(sk_adapter *a, rt_ctx *cx);
static void state_save(sk_adapter *a, rt_ctx *cx);

/* ================================================================ positions */

static slack_mark *mark_find(sk_adapter *a, const char *channel, const char *thread)
{
    for (size_t i = 0; i < a->nmarks; i++)
        if (strcmp(a->marks[i].channel, channel) == 0 &&
            strcmp(a->marks[i].thread, thread ? thread : "") == 0)
            return &a->marks[i];
    return NULL;
}

/* The position of a conversation, made (replacing the least recently active) if new. */
static slack_mark *mark_get(sk_adapter *a, const char *channel, const char *thread)
{
    slack_mark *m = mark_find(a, channel, thread);
    if (m)
        return m;
    if (!*channel || strlen(channel) >= SLACK_ID_MAX || (thread && !slack_ts_ok(thread)))
        return NULL;
    size_t i = 0;
    if (a->nmarks < SLACK_CATCHUP_CONVERSATIONS) {
        i = a->nmarks++;
    } else {
        for (size_t k = 1; k < a->nmarks; k++)
            if (a->marks[k].used < a->marks[i].used)
                i = k;
    }
    m = &a->marks[i];
    memset(m, 0, sizeof(*m));
    rt_strlcpy(m->channel, channel, sizeof(m->channel));
    if (thread)
        rt_strlcpy(m->thread, thread, sizeof(m->thread));
    return m;
}

static void mark_drop(sk_adapter *a, rt_ctx *cx, const char *channel, const char *thread)
{
    slack_mark *m = mark_find(a, channel, thread);
    if (!m)
        return;
    *m = a->marks[--a->nmarks];
    if (!ak_timer_armed(&a->tm, SK_T_SAVE))
        ak_timer_arm(cx, a->self, &a->tm, SK_T_SAVE, 1000);
}

static void state_save(sk_adapter *a, rt_ctx *cx)
{
    if (!a->io || !a->state_loaded) /* never overwrite positions not read yet */
        return;
    char *s = slack_state_format(a->state_bot, a->marks, a->nmarks);
    ak_io_write(cx, a->io, a->state_path, s, strlen(s), 0600, 0, 0);
}

static void mark_advance(sk_adapter *a, rt_ctx *cx, slack_mark *m, const char *ts)
{
    m->used = ++a->mark_clock;
    if (!slack_ts_ok(ts) || (m->last[0] && slack_ts_cmp(ts, m->last) <= 0))
        return;
    rt_strlcpy(m->last, ts, sizeof(m->last));
    if (!ak_timer_armed(&a->tm, SK_T_SAVE)) /* written a second later: one write a burst */
        ak_timer_arm(cx, a->self, &a->tm, SK_T_SAVE, 1000);
}

/* A message was handled (sent to the gateway, or not for the bot): its conversation's
 * position moves on. Thread replies move their thread's position (when the bot is in it),
 * everything else the channel's. */
static void mark_seen(sk_adapter *a, rt_ctx *cx, const char *channel, const char *ts,
                      const char *thread_ts, bool dm)
{
    if (!channel || !ts || a->o.catchup_max_age_s < 0)
        return;
    bool reply = thread_ts && strcmp(thread_ts, ts) != 0;
    slack_mark *m = reply ? mark_find(a, channel, thread_ts) : mark_get(a, channel, NULL);
    if (!m)
        return;
    if (dm)
        m->dm = true;
    mark_advance(a, cx, m, ts);
}

/* The bot is in the thread rooted at root now: its replies need no mention, and after ts
 * they are caught up. */
static void thread_join(sk_adapter *a, rt_ctx *cx, const char *channel, const char *root,
                        const char *ts)
{
    ak_ring_add(a->threads, SK_THREADS_MAX, &a->threads_next, ak_hash2(channel, root));
    if (a->o.catchup_max_age_s < 0)
        return;
    slack_mark *m = mark_find(a, channel, root);
    if (m) {
        m->used = ++a->mark_clock;
        return;
    }
    m = mark_get(a, channel, root);
    if (m)
        mark_advance(a, cx, m, ts ? ts : root);
}

/* ================================================================ lifecycle */

static void ws_abandon(sk_adapter *a, rt_ctx *cx)
{
    if (!a->conn)
        return;
    (void)rt_ws_close(cx, a->conn, 1000, NULL);
    a->conn = 0;
    a->conn_gen++;
}

static void announce(sk_adapter *a, rt_ctx *cx)
{
    rt_ref gw = ak_gateway_of(cx, a->gateway);
    if (!gw) {
        RT_WARN(SK_LOG, "Slack: no gateway to announce the adapter to");
        return;
    }
    gw_caps caps = {
        .max_message = SLACK_MAX_MESSAGE, .markdown = true, .progress = true, .acks = true};
    rt_send(cx, gw, gw_adapter_up_new(SLACK_PLATFORM, a->self, &caps, a->o.home_channel));
    a->announced = true;
}

static void shut(sk_adapter *a, rt_ctx *cx)
{
    if (ak_timer_armed(&a->tm, SK_T_SAVE))
        state_save(a, cx); /* the last positions, before the helper ends */
    for (int k = 1; k < SK_T_COUNT; k++)
        ak_timer_cancel(cx, &a->tm, k);
    ws_abandon(a, cx);
    cancel_all(a, cx);
    if (a->announced) {
        rt_ref gw = ak_gateway_of(cx, a->gateway);
        if (gw)
            rt_send(cx, gw, gw_adapter_down_new(SLACK_PLATFORM, a->self));
        a->announced = false;
    }
    if (a->io)
        ak_io_quit(cx, a->io);
    a->io = 0;
}

static void fatal(sk_adapter *a, rt_ctx *cx)
{
    if (a->phase == SK_PH_STOPPED || a->phase == SK_PH_FATAL)
        return;
    a->phase = SK_PH_FATAL;
    shut(a, cx);
    RT_ERROR(SK_LOG, "Slack: giving up; fix the settings and restart the gateway");
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void begin_auth(sk_adapter *a, rt_ctx *cx)
{
    a->phase = SK_PH_AUTH;
    submit(a, cx, req_api(a, SK_R_AUTH, "auth.test", NULL));
}

static void begin_open(sk_adapter *a, rt_ctx *cx)
{
    a->phase = SK_PH_OPEN;
    sk_req *r = req_api(a, SK_R_OPEN, "apps.connections.open", NULL);
    r->app_token = true;
    submit(a, cx, r);
}

static void reconnect_later(sk_adapter *a, rt_ctx *cx, const char *why)
{
    if (a->phase == SK_PH_STOPPED || a->phase == SK_PH_FATAL || a->phase == SK_PH_WAIT ||
        a->draining)
        return;
    ws_abandon(a, cx);
    int64_t b = a->backoff_ms ? a->backoff_ms * 2 : a->o.backoff_min_ms;
    if (b > a->o.backoff_max_ms)
        b = a->o.backoff_max_ms;
    a->backoff_ms = b;
    int64_t ms = b + (int64_t)(ak_rand(&a->rnd) % (uint64_t)(b / 5 + 1));
    RT_WARN(SK_LOG, "Slack: %s — reconnecting in %.1fs", why, (double)ms / 1000.0);
    a->phase = SK_PH_WAIT;
    ak_timer_arm(cx, a->self, &a->tm, SK_T_RECONNECT, ms);
}

static void on_auth(sk_adapter *a, rt_ctx *cx, rt_io_msg_http_done *d)
{
    char e[256];
    cJSON *j = api_result(d, e, sizeof(e));
    if (!j) {
        if (!d->err && d->status < 500 && d->status != 429 && auth_error(e)) {
            RT_ERROR(SK_LOG,
                     "Slack: authentication failed (%s) — check SLACK_BOT_TOKEN (the Bot User "
                     "OAuth Token, xoxb-…, from OAuth & Permissions)",
                     e);
            fatal(a, cx);
            return;
        }
        char why[320];
        snprintf(why, sizeof(why), "auth.test failed (%s)", e);
        reconnect_later(a, cx, why);
        return;
    }
    const cJSON *uid = cJSON_GetObjectItemCaseSensitive(j, "user_id");
    const cJSON *un = cJSON_GetObjectItemCaseSensitive(j, "user");
    const cJSON *team = cJSON_GetObjectItemCaseSensitive(j, "team");
    if (!cJSON_IsString(uid) || !*uid->valuestring) {
        cJSON_Delete(j);
        reconnect_later(a, cx, "auth.test answered without a user_id");
        return;
    }
    rt_free(a->bot_user);
    rt_free(a->mention);
    a->bot_user = rt_xstrdup(uid->valuestring);
    a->mention = rt_xasprintf("<@%s>", a->bot_user);
    if (a->state_loaded && a->state_bot[0] && strcmp(a->state_bot, a->bot_user) != 0) {
        RT_WARN(SK_LOG, "Slack: %s belongs to another bot (%s); not catching up from it",
                a->state_path, a->state_bot);
        a->nmarks = 0;
    }
    rt_strlcpy(a->state_bot, a->bot_user, sizeof(a->state_bot));
    RT_INFO(SK_LOG, "Slack: authenticated as @%s (%s) in workspace %s",
            cJSON_IsString(un) ? un->valuestring : "?", a->bot_user,
            cJSON_IsString(team) ? team->valuestring : "?");
    cJSON_Delete(j);
    begin_open(a, cx);
}

static void ws_connect(sk_adapter *a, rt_ctx *cx, const char *url)
{
    ws_abandon(a, cx);
    a->phase = SK_PH_WS;
    a->conn_gen++;
    rt_ws_opts wo = {
        .url = url,
        .ca_file = a->o.ca_file,
        .max_message = SK_WS_MAX,
        .ping_interval_ms = a->o.ws_ping_ms,
        .idle_timeout_ms = a->o.ws_idle_ms,
        .reply_to = a->self,
        .tag = a->conn_gen,
    };
    RT_DEBUG(SK_LOG, "Slack: opening the Socket Mode connection");
    a->conn = rt_ws_connect(cx, &wo);
}

static void on_open(sk_adapter *a, rt_ctx *cx, rt_io_msg_http_done *d)
{
    char e[256];
    cJSON *j = api_result(d, e, sizeof(e));
    if (!j) {
        if (!d->err && d->status < 500 && d->status != 429 && auth_error(e)) {
            RT_ERROR(SK_LOG,
                     "Slack: apps.connections.open failed (%s) — check SLACK_APP_TOKEN (an "
                     "App-Level Token, xapp-…, with the connections:write scope) and that "
                     "Socket Mode is enabled for the app",
                     e);
            fatal(a, cx);
            return;
        }
        char why[320];
        snprintf(why, sizeof(why), "apps.connections.open failed (%s)", e);
        reconnect_later(a, cx, why);
        return;
    }
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(j, "url");
    if (!cJSON_IsString(url) ||
        (strncmp(url->valuestring, "wss://", 6) != 0 && strncmp(url->valuestring, "ws://", 5))) {
        cJSON_Delete(j);
        reconnect_later(a, cx, "apps.connections.open answered without a WebSocket URL");
        return;
    }
    ws_connect(a, cx, url->valuestring);
    cJSON_Delete(j);
}

/* ================================================================ outbound */

static void out_free(sk_out *o)
{
    if (!o)
        return;
    rt_free(o->channel);
    rt_free(o->thread_ts);
    rt_free(o->text);
    rt_free(o->path);
    rt_free(o->data);
    rt_free(o->upload_url);
    rt_free(o->file_id);
    rt_free(o);
}

static ak_lanes *lanes(sk_adapter *a)
{
    if (!a->lanes_ready) {
        ak_lanes_init(&a->lanes, SK_OUT_PARALLEL, SK_OUT_MAX);
        a->lanes_ready = true;
    }
    return &a->lanes;
}

static void out_free_cb(void *item, void *arg)
{
    (void)arg;
    out_free(item);
}

static bool out_push(sk_adapter *a, sk_out *o)
{
    if (ak_lanes_push(lanes(a), o->channel, o->group, o) != 0) {
        RT_LOG_LIMITED(RT_LOG_WARN, SK_LOG, 10000, "Slack: outbound queue full, message dropped");
        out_free(o);
        return false;
    }
    return true;
}

static void out_pump(sk_adapter *a, rt_ctx *cx);
static void drained_check(sk_adapter *a, rt_ctx *cx);

/* Tell the gateway's outbox how a message it handed over went (gw_caps.acks). Outcomes a
 * resend must not change (sent, refused, maybe sent) are remembered (ak_lanes_claim). */
static void ack(sk_adapter *a, rt_ctx *cx, uint64_t delivery, int err, bool permanent)
{
    if (delivery && (!err || permanent))
        ak_lanes_remember(lanes(a), delivery, err, permanent);
    gw_ack(cx, delivery ? ak_gateway_of(cx, a->gateway) : 0, delivery, err, permanent, 0,
           err == -ETIMEDOUT && permanent
               ? "Slack did not answer; the message may have been posted, not sent again"
               : (err ? (permanent ? "Slack refused the message" : "Slack did not take the message")
                      : NULL));
}

/* o failed for good: remember why for the outbox (then out_pop drops it). */
static void out_fail(sk_out *o, bool permanent)
{
    o->ack_err = -EIO;
    o->ack_permanent = permanent;
}

/* o is finished (sent or given up): ack, free, start what may go. */
static void out_pop(sk_adapter *a, rt_ctx *cx, sk_out *o)
{
    if (o->ack_err && !o->ack_permanent && ak_lanes_partial(&a->lanes, o)) {
        RT_ERROR(SK_LOG, "Slack: part of a reply to %s was posted; the rest is given up",
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

static void out_retry(sk_adapter *a, rt_ctx *cx, sk_out *o, const char *why)
{
    if (++o->tries >= SK_OUT_TRIES) {
        RT_WARN(SK_LOG, "Slack: giving up on a message to %s: %s", o->channel, why);
        out_fail(o, false);
        out_pop(a, cx, o);
        return;
    }
    RT_WARN(SK_LOG, "Slack: sending to %s failed (%s); retrying", o->channel, why);
    ak_lanes_retry(&a->lanes, o, now_ns(cx) + (1000LL << (o->tries - 1)) * 1000000);
    out_pump(a, cx);
}

/* A request that makes a message (chat.postMessage, files.completeUploadExternal) got no
 * answer that says whether it did (timeout, connection dropped, a proxy's 502/504). Slack
 * has no idempotency key, so sending it again could post it twice: it is given up as "maybe
 * sent" and acked as permanent, so the gateway's outbox does not send it again either. */
static bool maybe_made(const rt_io_msg_http_done *d)
{
    if (d->err)
        return d->err == -ETIMEDOUT || d->err == -ECONNRESET || d->err == -EPIPE;
    return d->status == 502 || d->status == 504;
}

static void out_maybe_sent(sk_adapter *a, rt_ctx *cx, sk_out *o, const char *method,
                           const char *why)
{
    RT_ERROR(SK_LOG,
             "Slack: %s to %s got no answer (%s); the message may have been posted, so it is "
             "not sent again",
             method, o->channel, why);
    o->ack_err = -ETIMEDOUT;
    o->ack_permanent = true;
    out_pop(a, cx, o);
}

static void post_text(sk_adapter *a, rt_ctx *cx, sk_out *o)
{
    rt_buf f;
    rt_buf_init(&f, SIZE_MAX / 2);
    form_add(&f, "channel", o->channel);
    form_add(&f, "text", o->text);
    form_add(&f, "thread_ts", o->thread_ts);
    form_add(&f, "mrkdwn", "true");
    sk_req *r = req_api(a, SK_R_POST, "chat.postMessage", &f);
    r->ctx = o;
    submit(a, cx, r);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void file_step(sk_adapter *a, rt_ctx *cx, sk_out *o)
{
    if (o->step == SK_F_READ) {
        sk_req *r = rt_xcalloc(1, sizeof(*r));
        r->kind = SK_R_READ;
        r->ctx = o;
        ak_io_read(cx, a->io, o->path, a->o.max_file_bytes, a->self, track(a, r));
    } else if (o->step == SK_F_URL) {
        rt_buf f;
        rt_buf_init(&f, 8192);
        char len[32];
        snprintf(len, sizeof(len), "%zu", o->len);
        form_add(&f, "filename", base_name(o->path));
        form_add(&f, "length", len);
        sk_req *r = req_api(a, SK_R_UPLOAD_URL, "files.getUploadURLExternal", &f);
        r->ctx = o;
        submit(a, cx, r);
    } else if (o->step == SK_F_PUT) {
        sk_req *r = rt_xcalloc(1, sizeof(*r));
        r->kind = SK_R_UPLOAD_PUT;
        r->url = rt_xstrdup(o->upload_url);
        r->body = rt_xmalloc(o->len + 1);
        memcpy(r->body, o->data ? o->data : "", o->len);
        r->body_len = o->len;
        r->max_body = SK_API_MAX_BODY;
        r->ctx = o;
        submit(a, cx, r);
    } else {
        cJSON *files = cJSON_CreateArray();
        cJSON *f1 = cJSON_CreateObject();
        cJSON_AddStringToObject(f1, "id", o->file_id);
        cJSON_AddStringToObject(f1, "title", base_name(o->path));
        cJSON_AddItemToArray(files, f1);
        char *fj = cJSON_PrintUnformatted(files);
        cJSON_Delete(files);
        rt_buf f;
        rt_buf_init(&f, SIZE_MAX / 2);
        form_add(&f, "files", fj);
        form_add(&f, "channel_id", o->channel);
        form_add(&f, "thread_ts", o->thread_ts);
        cJSON_free(fj);
        sk_req *r = req_api(a, SK_R_UPLOAD_DONE, "files.completeUploadExternal", &f);
        r->ctx = o;
        submit(a, cx, r);
    }
}

/* Start what may go: the first message of each channel that has none on its way, up to
 * SK_OUT_PARALLEL channels at once (ak_lanes). Arms the retry timer. */
static void out_pump(sk_adapter *a, rt_ctx *cx)
{
    if (!a->lanes_ready || a->phase == SK_PH_STOPPED || a->phase == SK_PH_FATAL)
        return;
    void *go[SK_OUT_PARALLEL];
    size_t n = ak_lanes_ready(&a->lanes, now_ns(cx), go, SK_OUT_PARALLEL);
    for (size_t i = 0; i < n; i++) {
        sk_out *o = go[i];
        if (o->what == SK_OUT_TEXT)
            post_text(a, cx, o);
        else
            file_step(a, cx, o);
    }
    int64_t now = now_ns(cx), next = ak_lanes_next_due(&a->lanes, now);
    if (next)
        ak_timer_arm(cx, a->self, &a->tm, SK_T_OUT, (next - now + 999999) / 1000000);
    else
        ak_timer_cancel(cx, &a->tm, SK_T_OUT);
}

static void drained_check(sk_adapter *a, rt_ctx *cx)
{
    if (!a->draining || (a->lanes_ready && ak_lanes_count(&a->lanes)) ||
        a->phase == SK_PH_STOPPED || a->phase == SK_PH_FATAL)
        return;
    a->phase = SK_PH_STOPPED;
    shut(a, cx);
    RT_INFO(SK_LOG, "Slack: disconnected");
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void on_drain(sk_adapter *a, rt_ctx *cx)
{
    if (a->draining)
        return;
    a->draining = true;
    ws_abandon(a, cx); /* no new events */
    ak_timer_cancel(cx, &a->tm, SK_T_RECONNECT);
    drained_check(a, cx);
}

static void on_out_timer(sk_adapter *a, rt_ctx *cx)
{
    out_pump(a, cx);
}

static sk_out *out_new(int what, const char *channel, const char *thread_ts)
{
    sk_out *o = rt_xcalloc(1, sizeof(*o));
    o->what = what;
    o->channel = rt_xstrdup(channel);
    o->thread_ts = thread_ts && *thread_ts ? rt_xstrdup(thread_ts) : NULL;
    return o;
}

/* Reactions are not ordered with the posts: they go at once (their own rate limit). */
static void react(sk_adapter *a, rt_ctx *cx, const char *channel, const char *ts, bool add,
                  const char *name)
{
    rt_buf f;
    rt_buf_init(&f, 4096);
    form_add(&f, "channel", channel);
    form_add(&f, "timestamp", ts);
    form_add(&f, "name", name);
    submit(a, cx, req_api(a, SK_R_REACT, add ? "reactions.add" : "reactions.remove", &f));
}

static void on_out_text(sk_adapter *a, rt_ctx *cx, gw_out_text *t)
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
    sk_out *last = NULL;
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
        char *mk = slack_mrkdwn(body);
        char **parts = strlen(mk) > SK_POST_LIMIT ? gw_chunk(mk, SK_POST_LIMIT) : NULL;
        if (parts) {
            for (size_t i = 0; parts[i]; i++) {
                sk_out *o = out_new(SK_OUT_TEXT, t->to.chat_id, t->to.thread_id);
                o->text = rt_xstrdup(parts[i]);
                o->group = t->delivery;
                if (out_push(a, o))
                    last = o;
            }
            gw_chunks_free(parts);
            rt_free(mk);
        } else {
            sk_out *o = out_new(SK_OUT_TEXT, t->to.chat_id, t->to.thread_id);
            o->text = mk;
            o->group = t->delivery;
            if (out_push(a, o))
                last = o;
        }
    }
    rt_buf_fini(&rest);
    for (size_t i = 0; i < np; i++) {
        sk_out *o = out_new(SK_OUT_FILE, t->to.chat_id, t->to.thread_id);
        o->path = paths[i];
        o->group = t->delivery;
        if (out_push(a, o))
            last = o;
    }
    if (t->delivery) {
        if (last)
            last->delivery = t->delivery; /* acked when its last part is done */
        else
            ack(a, cx, t->delivery, *t->text ? -ENOBUFS : 0, false);
    }
    out_pump(a, cx);
}

static void on_turn_end(sk_adapter *a, rt_ctx *cx, gw_out_turn_end *t)
{
    if (!t->to.chat_id || !t->to.reply_to)
        return;
    uint64_t h = ak_hash2(t->to.chat_id, t->to.reply_to);
    for (size_t i = 0; i < SK_REACTED_MAX; i++) {
        if (a->reacted[i] != h)
            continue;
        a->reacted[i] = 0;
        react(a, cx, t->to.chat_id, t->to.reply_to, false, "eyes");
        if (t->outcome == GW_OUTCOME_SUCCESS)
            react(a, cx, t->to.chat_id, t->to.reply_to, true, "white_check_mark");
        return;
    }
}

static void outbound_result(sk_adapter *a, rt_ctx *cx, sk_req *r, rt_io_msg_http_done *d)
{
    sk_out *o = r->ctx;
    if (!a->lanes_ready || !ak_lanes_busy(&a->lanes, o))
        return; /* not started any more: cannot happen, but never touch a freed item */
    char e[256];
    bool transient = d->err || d->status >= 500;
    if (r->kind == SK_R_UPLOAD_PUT) {
        if (!d->err && d->status >= 200 && d->status < 300) {
            o->step = SK_F_COMPLETE;
            file_step(a, cx, o);
        } else {
            RT_WARN(SK_LOG, "Slack: uploading %s failed (%s)", o->path,
                    d->err ? rt_strerror(d->err) : "HTTP error");
            out_fail(o, !transient);
            out_pop(a, cx, o);
        }
        return;
    }
    cJSON *j = api_result(d, e, sizeof(e));
    if (!j) {
        if ((r->kind == SK_R_POST || r->kind == SK_R_UPLOAD_DONE) && maybe_made(d)) {
            out_maybe_sent(a, cx, o, r->method, e);
        } else if (transient) {
            if (r->kind == SK_R_UPLOAD_DONE) {
                rt_free(o->upload_url);
                rt_free(o->file_id);
                o->upload_url = o->file_id = NULL;
                o->step = SK_F_URL; /* start the upload over */
            }
            out_retry(a, cx, o, e);
        } else {
            RT_WARN(SK_LOG, "Slack: %s to %s failed: %s", r->method, o->channel, e);
            out_fail(o, true);
            out_pop(a, cx, o);
        }
        return;
    }
    if (r->kind == SK_R_POST) {
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(j, "ts");
        const char *pts = cJSON_IsString(ts) ? ts->valuestring : NULL;
        if (o->thread_ts)
            thread_join(a, cx, o->channel, o->thread_ts, pts);
        else if (pts) /* a top-level DM answer: replies to it count, nothing to catch up */
            ak_ring_add(a->threads, SK_THREADS_MAX, &a->threads_next, ak_hash2(o->channel, pts));
        out_pop(a, cx, o);
    } else if (r->kind == SK_R_UPLOAD_URL) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "upload_url");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "file_id");
        if (!cJSON_IsString(u) || !cJSON_IsString(id)) {
            RT_WARN(SK_LOG, "Slack: files.getUploadURLExternal answered without a URL");
            out_pop(a, cx, o);
        } else {
            rt_free(o->upload_url);
            rt_free(o->file_id);
            o->upload_url = rt_xstrdup(u->valuestring);
            o->file_id = rt_xstrdup(id->valuestring);
            o->step = SK_F_PUT;
            file_step(a, cx, o);
        }
    } else {
        out_pop(a, cx, o); /* completeUploadExternal */
    }
    cJSON_Delete(j);
}

static void outbound_read(sk_adapter *a, rt_ctx *cx, sk_req *r, ak_io_done *d)
{
    sk_out *o = r->ctx;
    if (!a->lanes_ready || !ak_lanes_busy(&a->lanes, o))
        return;
    if (d->err) {
        RT_WARN(SK_LOG, "Slack: cannot send %s: %s", o->path, rt_strerror(d->err));
        sk_out *n = out_new(SK_OUT_TEXT, o->channel, o->thread_ts);
        n->text = rt_xasprintf("⚠️ File not found or unreadable: %s", base_name(o->path));
        n->group = o->group;
        /* the notice goes right after o, and ends the delivery instead */
        if (ak_lanes_insert_after(&a->lanes, o, n->group, n) == 0) {
            n->delivery = o->delivery;
            o->delivery = 0;
        } else {
            out_free(n);
        }
        out_pop(a, cx, o);
        return;
    }
    o->data = d->data;
    d->data = NULL;
    o->len = d->len;
    o->step = SK_F_URL;
    file_step(a, cx, o);
}

/* ================================================================ inbound */

static void job_free(sk_job *j)
{
    if (j->ev)
        rt_msg_free(&j->ev->hdr);
    rt_free(j->mk_channel);
    rt_free(j->mk_ts);
    rt_free(j->mk_thread);
    for (size_t i = 0; i < j->nfiles; i++) {
        rt_free(j->paths[i]);
        rt_free(j->mimes[i]);
    }
    rt_free(j);
}

static void jobs_flush(sk_adapter *a, rt_ctx *cx)
{
    /* events go to the gateway in arrival order, each once its files are in */
    while (a->jobs && a->jobs->pending == 0) {
        sk_job *j = a->jobs;
        a->jobs = j->next;
        if (!a->jobs)
            a->jobs_tail = NULL;
        a->njobs--;
        gw_msg_event *ev = j->ev;
        j->ev = NULL;
        ak_event_attach(ev, j->paths, j->mimes, j->ok, j->nfiles);
        rt_ref gw = ak_gateway_of(cx, a->gateway);
        gw_event_send(cx, gw, ev);
        mark_seen(a, cx, j->mk_channel, j->mk_ts, j->mk_thread, j->mk_dm);
        job_free(j);
    }
}

/* Remove every "<@BOT>" from text (in place) and trim. */
static void strip_mention(char *text, const char *mention)
{
    size_t ml = strlen(mention);
    char *p;
    while ((p = strstr(text, mention)))
        memmove(p, p + ml, strlen(p + ml) + 1);
    size_t n = strlen(text);
    while (n && isspace((unsigned char)text[n - 1]))
        text[--n] = '\0';
    size_t k = 0;
    while (text[k] && isspace((unsigned char)text[k]))
        k++;
    memmove(text, text + k, n - k + 1);
}

/* Slack sends text with &, <, > escaped: give the agent what the user typed. */
static void unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if (strncmp(r, "&amp;", 5) == 0) {
            *w++ = '&';
            r += 5;
        } else if (strncmp(r, "&lt;", 4) == 0) {
            *w++ = '<';
            r += 4;
        } else if (strncmp(r, "&gt;", 4) == 0) {
            *w++ = '>';
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

static const char *user_name_of(const sk_adapter *a, const char *id)
{
    for (size_t i = 0; i < a->nusers; i++)
        if (strcmp(a->user_id[i], id) == 0)
            return a->user_name[i];
    return NULL;
}

static void user_name_put(sk_adapter *a, const char *id, const char *name)
{
    if (user_name_of(a, id))
        return;
    size_t i = a->nusers < SK_USERS_MAX ? a->nusers++ : a->users_next++ % SK_USERS_MAX;
    rt_free(a->user_id[i]);
    rt_free(a->user_name[i]);
    a->user_id[i] = rt_xstrdup(id);
    a->user_name[i] = rt_xstrdup(name);
}

/* users.info answered: the job's user gets a name (display name, real name, handle, or the
 * id itself when the app may not read profiles — remembered so it is asked once). */
static void inbound_user(sk_adapter *a, rt_ctx *cx, sk_job *j, rt_io_msg_http_done *d)
{
    char e[128];
    cJSON *res = api_result(d, e, sizeof(e));
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(res, "user");
    const cJSON *prof = cJSON_GetObjectItemCaseSensitive(u, "profile");
    const char *cands[] = {
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(prof, "display_name")),
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(prof, "real_name")),
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(u, "real_name")),
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(u, "name")),
    };
    const char *name = NULL;
    for (size_t i = 0; i < 4 && !name; i++)
        if (cands[i] && *cands[i] && strlen(cands[i]) < 128)
            name = cands[i];
    const char *id = j->ev->src.user_id;
    if (!name && !res)
        RT_DEBUG(SK_LOG, "Slack: users.info failed (%s); using the user id", e);
    if (!d->err && d->status < 500) /* transient failures are asked again next time */
        user_name_put(a, id, name ? name : id);
    rt_free(j->ev->src.user_name);
    j->ev->src.user_name = rt_xstrdup(name ? name : id);
    cJSON_Delete(res);
    j->pending--;
    jobs_flush(a, cx);
}

static void inbound_rules(sk_adapter *a, rt_ctx *cx, slack_frame *f)
{
    if (!f->channel || !f->ts || !a->bot_user)
        return;
    if (f->subtype && strcmp(f->subtype, "file_share") != 0 &&
        strcmp(f->subtype, "thread_broadcast") != 0 && strcmp(f->subtype, "bot_message") != 0)
        return; /* edits, deletions, joins, topic changes … */
    if (f->user && strcmp(f->user, a->bot_user) == 0)
        return; /* our own message */
    const char *text0 = f->text ? f->text : "";
    bool mentioned = strstr(text0, a->mention) != NULL;
    if (f->bot_id || (f->subtype && strcmp(f->subtype, "bot_message") == 0)) {
        if (a->o.allow_bots == SLACK_BOTS_NONE ||
            (a->o.allow_bots == SLACK_BOTS_MENTIONS && !mentioned))
            return;
    }
    if (!f->user)
        return;
    uint64_t key = ak_hash2(f->channel, f->ts);
    if (ak_ring_has(a->seen, SK_SEEN_MAX, key)) {
        RT_DEBUG(SK_LOG, "Slack: %s:%s seen already", f->channel, f->ts);
        return;
    }
    bool dm = f->channel_type
                  ? (strcmp(f->channel_type, "im") == 0 || strcmp(f->channel_type, "mpim") == 0)
                  : f->channel[0] == 'D';
    bool reply = f->thread_ts && strcmp(f->thread_ts, f->ts) != 0;
    if (!dm && !mentioned && a->o.require_mention && !ak_strv_has(a->o.free_channels, f->channel)) {
        if (!reply || !ak_ring_has(a->threads, SK_THREADS_MAX, ak_hash2(f->channel, f->thread_ts)))
            return;
    }
    ak_ring_add(a->seen, SK_SEEN_MAX, &a->seen_next, key);
    if (mentioned && f->thread_ts)
        thread_join(a, cx, f->channel, f->thread_ts, f->ts);
    if (a->njobs >= SK_JOBS_MAX) {
        RT_LOG_LIMITED(RT_LOG_WARN, SK_LOG, 10000, "Slack: too many messages waiting; dropped");
        return;
    }
    char *text = rt_xstrdup(text0);
    if (mentioned)
        strip_mention(text, a->mention);
    unescape(text);
    const char *thread = dm ? f->thread_ts : (f->thread_ts ? f->thread_ts : f->ts);
    gw_msg_event *ev = gw_event_new(SLACK_PLATFORM, dm ? "dm" : "group", f->channel, f->user, text);
    rt_free(text);
    ev->src.thread_id = dupn(thread);
    ev->src.chat_name = rt_xstrdup(f->channel);
    ev->reply.thread_id = dupn(thread);
    ev->reply.reply_to = rt_xstrdup(f->ts);
    ev->message_id = rt_xasprintf("%s:%s", f->channel, f->ts);
    ev->adapter = a->self;
    sk_job *j = rt_xcalloc(1, sizeof(*j));
    j->ev = ev;
    j->mk_channel = rt_xstrdup(f->channel);
    j->mk_ts = rt_xstrdup(f->ts);
    j->mk_thread = dupn(f->thread_ts);
    j->mk_dm = dm;
    a->accepted++;
    const char *name = user_name_of(a, f->user);
    if (name) {
        ev->src.user_name = rt_xstrdup(name);
    } else {
        rt_buf uf;
        rt_buf_init(&uf, 1024);
        form_add(&uf, "user", f->user);
        sk_req *r = req_api(a, SK_R_USER, "users.info", &uf);
        r->ctx = j;
        j->pending++;
        submit(a, cx, r);
    }
    for (size_t i = 0; i < f->nfiles; i++) {
        if (f->file_size[i] > (int64_t)a->o.max_file_bytes) {
            RT_WARN(SK_LOG, "Slack: %s is larger than %zu bytes; not downloaded",
                    f->file_name[i] ? f->file_name[i] : "a file", a->o.max_file_bytes);
            continue;
        }
        size_t k = j->nfiles++;
        char *nm = ak_safe_name(f->file_name[i], k);
        j->paths[k] = rt_xasprintf("%s/slack_%s_%zu_%s", a->cache_dir, f->ts, k, nm);
        rt_free(nm);
        j->mimes[k] = dupn(f->file_mime[i]);
        sk_req *r = rt_xcalloc(1, sizeof(*r));
        r->kind = SK_R_DOWNLOAD;
        r->url = rt_xstrdup(f->file_url[i]);
        r->max_body = a->o.max_file_bytes;
        r->ctx = j;
        r->idx = k;
        j->pending++;
        submit(a, cx, r);
    }
    if (a->jobs_tail)
        a->jobs_tail->next = j;
    else
        a->jobs = j;
    a->jobs_tail = j;
    a->njobs++;
    if (dm || mentioned) {
        ak_ring_add(a->reacted, SK_REACTED_MAX, &a->reacted_next, key);
        react(a, cx, f->channel, f->ts, true, "eyes");
    }
    jobs_flush(a, cx);
}

/* One message, live or caught up: through the rules; one not taken still moves its
 * conversation's position (unless taken ones wait before it). */
static void inbound(sk_adapter *a, rt_ctx *cx, slack_frame *f)
{
    uint64_t before = a->accepted;
    inbound_rules(a, cx, f);
    if (a->accepted == before && !a->jobs && f->channel && f->ts) {
        bool dm = f->channel_type
                      ? (strcmp(f->channel_type, "im") == 0 || strcmp(f->channel_type, "mpim") == 0)
                      : f->channel[0] == 'D';
        mark_seen(a, cx, f->channel, f->ts, f->thread_ts, dm);
    }
}

static void inbound_download(sk_adapter *a, rt_ctx *cx, sk_req *r, rt_io_msg_http_done *d)
{
    sk_job *j = r->ctx;
    const char *ct = rt_http_header_get(d->headers, d->nheaders, "Content-Type");
    if (d->err || d->status != 200 || !d->body || (ct && strncmp(ct, "text/html", 9) == 0)) {
        RT_WARN(SK_LOG,
                "Slack: downloading an attachment failed (%s); does the app have the "
                "files:read scope?",
                d->err ? rt_strerror(d->err) : "not the file");
        j->pending--;
        jobs_flush(a, cx);
        return;
    }
    sk_req *w = rt_xcalloc(1, sizeof(*w));
    w->kind = SK_R_SAVE;
    w->ctx = j;
    w->idx = r->idx;
    char *data = d->body;
    d->body = NULL;
    ak_io_write(cx, a->io, j->paths[r->idx], data, d->body_len, 0600, a->self, track(a, w));
}

/* ================================================================ catching up */

static int64_t wall_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec;
}

static void catch_reset(sk_adapter *a)
{
    cJSON_Delete(a->cmsgs);
    a->cmsgs = NULL;
    rt_free(a->ccursor);
    a->ccursor = NULL;
    a->cpages = 0;
    a->coldest[0] = '\0';
}

/* Ask for the next page of the current conversation, or finish the round. */
static void catch_request(sk_adapter *a, rt_ctx *cx)
{
    if (a->ci >= a->nci) {
        a->catching = false;
        RT_INFO(SK_LOG, "Slack: caught up");
        return;
    }
    const slack_mark *it = &a->citems[a->ci];
    if (!a->coldest[0]) {
        snprintf(a->coldest, sizeof(a->coldest), "%lld.000000",
                 (long long)(wall_s() - a->o.catchup_max_age_s));
        if (slack_ts_cmp(it->last, a->coldest) > 0)
            rt_strlcpy(a->coldest, it->last, sizeof(a->coldest));
    }
    rt_buf f;
    rt_buf_init(&f, 4096);
    form_add(&f, "channel", it->channel);
    if (it->thread[0])
        form_add(&f, "ts", it->thread);
    form_add(&f, "oldest", a->coldest);
    form_add(&f, "inclusive", "false");
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", a->o.catchup_page_size);
    form_add(&f, "limit", lim);
    form_add(&f, "cursor", a->ccursor);
    sk_req *r = req_api(a, SK_R_HISTORY,
                        it->thread[0] ? "conversations.replies" : "conversations.history", &f);
    r->idx = a->catch_gen;
    submit(a, cx, r);
}

static void catch_start(sk_adapter *a, rt_ctx *cx)
{
    if (!a->state_loaded || a->phase != SK_PH_LIVE || a->o.catchup_max_age_s < 0 || a->draining)
        return;
    a->catch_gen++; /* a round still running is abandoned: this one covers it */
    catch_reset(a);
    a->nci = a->ci = 0;
    for (size_t i = 0; i < a->nmarks; i++)
        if (a->marks[i].last[0])
            a->citems[a->nci++] = a->marks[i];
    a->catching = a->nci > 0;
    if (!a->catching)
        return;
    RT_INFO(SK_LOG, "Slack: catching up on %zu conversation(s)", a->nci);
    catch_request(a, cx);
}

static const char *msg_ts(const cJSON *m)
{
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(m, "ts");
    return cJSON_IsString(ts) ? ts->valuestring : "";
}

static int by_ts(const void *x, const void *y)
{
    const cJSON *const *a = x;
    const cJSON *const *b = y;
    return slack_ts_cmp(msg_ts(*a), msg_ts(*b));
}

/* The current conversation is read: what came after its position goes through the rules,
 * oldest first; then the next conversation. */
static void catch_item_done(sk_adapter *a, rt_ctx *cx)
{
    slack_mark it = a->citems[a->ci];
    size_t n = a->cmsgs ? (size_t)cJSON_GetArraySize(a->cmsgs) : 0;
    if (n) {
        cJSON **v = rt_xcalloc(n, sizeof(*v));
        size_t k = 0;
        cJSON *m;
        cJSON_ArrayForEach(m, a->cmsgs)
        {
            if (k < n)
                v[k++] = m;
        }
        qsort(v, k, sizeof(*v), by_ts);
        for (size_t i = 0; i < k; i++) {
            if (slack_ts_cmp(msg_ts(v[i]), it.last) <= 0)
                continue; /* the thread's root, or handled before */
            slack_frame f;
            if (slack_message_parse(v[i], it.channel, it.dm, &f) == 0)
                inbound(a, cx, &f);
            slack_frame_fini(&f);
        }
        rt_free(v);
    }
    catch_reset(a);
    a->ci++;
    catch_request(a, cx);
}

static void on_history(sk_adapter *a, rt_ctx *cx, sk_req *r, rt_io_msg_http_done *d)
{
    if (!a->catching || r->idx != a->catch_gen || a->ci >= a->nci)
        return; /* a round abandoned since */
    const slack_mark *it = &a->citems[a->ci];
    char e[256];
    cJSON *j = api_result(d, e, sizeof(e));
    if (!j) {
        if (strcmp(e, "not_in_channel") == 0 || strcmp(e, "channel_not_found") == 0 ||
            strcmp(e, "thread_not_found") == 0 || strcmp(e, "is_archived") == 0) {
            RT_INFO(SK_LOG, "Slack: %s%s%s is gone for the bot (%s); no longer caught up",
                    it->channel, it->thread[0] ? " thread " : "", it->thread, e);
            mark_drop(a, cx, it->channel, it->thread[0] ? it->thread : NULL);
        } else if (strcmp(e, "missing_scope") == 0) {
            if (!a->scope_warned)
                RT_WARN(SK_LOG,
                        "Slack: catching up needs the channels:history, "
                        "groups:history, im:history and mpim:history scopes "
                        "(%s answered missing_scope); messages sent while Hermes was "
                        "away are not answered",
                        r->method);
            a->scope_warned = true;
        } else {
            RT_WARN(SK_LOG, "Slack: catching up on %s failed (%s)", it->channel, e);
        }
        catch_item_done(a, cx);
        return;
    }
    if (!a->cmsgs)
        a->cmsgs = cJSON_CreateArray();
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    cJSON *m = cJSON_IsArray(msgs) ? msgs->child : NULL;
    while (m) {
        cJSON *next = m->next;
        if (cJSON_IsObject(m))
            cJSON_AddItemToArray(a->cmsgs, cJSON_DetachItemViaPointer(msgs, m));
        m = next;
    }
    a->cpages++;
    const char *cur = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "response_metadata"), "next_cursor"));
    bool more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "has_more")) && cur && *cur;
    if (more && a->cpages < a->o.catchup_pages) {
        rt_free(a->ccursor);
        a->ccursor = rt_xstrdup(cur);
        cJSON_Delete(j);
        catch_request(a, cx);
        return;
    }
    if (more)
        RT_WARN(SK_LOG,
                "Slack: more than %d pages came in %s while Hermes was away; catching up stops "
                "there",
                a->o.catchup_pages, it->channel);
    cJSON_Delete(j);
    catch_item_done(a, cx);
}

/* The state file was read (or is missing): the positions are known. */
static void on_state_read(sk_adapter *a, rt_ctx *cx, ak_io_done *d)
{
    if (d->err == 0) {
        size_t n = 0;
        char bot[SLACK_ID_MAX];
        if (slack_state_parse(d->data, bot, sizeof(bot), a->marks, SLACK_CATCHUP_CONVERSATIONS,
                              &n) == 0) {
            a->nmarks = n;
            for (size_t i = 0; i < n; i++) {
                a->marks[i].used = ++a->mark_clock;
                if (a->marks[i].thread[0])
                    ak_ring_add(a->threads, SK_THREADS_MAX, &a->threads_next,
                                ak_hash2(a->marks[i].channel, a->marks[i].thread));
            }
            if (a->bot_user && bot[0] && strcmp(bot, a->bot_user) != 0) {
                RT_WARN(SK_LOG, "Slack: %s belongs to another bot (%s); not catching up from it",
                        a->state_path, bot);
                a->nmarks = 0;
            } else if (!a->bot_user) {
                rt_strlcpy(a->state_bot, bot, sizeof(a->state_bot));
            }
        } else {
            RT_WARN(SK_LOG, "Slack: %s is damaged; starting without catch-up positions",
                    a->state_path);
        }
    } else if (d->err != -ENOENT) {
        RT_WARN(SK_LOG, "Slack: cannot read %s: %s", a->state_path, rt_strerror(d->err));
    }
    a->state_loaded = true;
    catch_start(a, cx);
}

/* ================================================================ Socket Mode */

static void ws_ack(sk_adapter *a, rt_ctx *cx, const char *envelope_id)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "{\"envelope_id\":\"%s\"}", envelope_id);
    if (n > 0 && (size_t)n < sizeof(buf) && a->conn)
        (void)rt_ws_send(cx, a->conn, buf, (size_t)n, false);
}

static bool id_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 128)
        return false;
    for (const char *p = s; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            return false;
    return true;
}

static void on_ws_message(sk_adapter *a, rt_ctx *cx, rt_ws_msg_message *m)
{
    if (m->tag != a->conn_gen || m->conn != a->conn)
        return;
    slack_frame f;
    if (slack_frame_parse(m->data, m->len, &f) != 0) {
        RT_DEBUG(SK_LOG, "Slack: unparsable Socket Mode frame ignored");
        slack_frame_fini(&f);
        return;
    }
    if (id_ok(f.envelope_id))
        ws_ack(a, cx, f.envelope_id); /* first: the 3 s deadline */
    if (strcmp(f.type, "hello") == 0) {
        if (a->phase == SK_PH_WS) {
            a->phase = SK_PH_LIVE;
            a->backoff_ms = 0;
            RT_INFO(SK_LOG, "Slack: Socket Mode connected");
            if (!a->announced)
                announce(a, cx);
            catch_start(a, cx); /* what came while there was no connection */
        }
    } else if (strcmp(f.type, "disconnect") == 0) {
        const char *why = f.reason ? f.reason : "unknown";
        if (strcmp(why, "link_disabled") == 0) {
            RT_ERROR(SK_LOG, "Slack: Socket Mode was disabled for this app (link_disabled); "
                             "enable it under Settings → Socket Mode");
            char msg[96];
            snprintf(msg, sizeof(msg), "Slack asked to disconnect (%s)", why);
            reconnect_later(a, cx, msg);
        } else {
            RT_INFO(SK_LOG, "Slack: asked to reconnect (%s); opening a fresh connection", why);
            ws_abandon(a, cx);
            begin_open(a, cx);
        }
    } else if (strcmp(f.type, "events_api") == 0 && f.has_event && a->phase == SK_PH_LIVE) {
        uint64_t eh = f.envelope_id ? ak_hash2("envelope", f.envelope_id) : 0;
        if (eh && ak_ring_has(a->seen, SK_SEEN_MAX, eh)) {
            RT_DEBUG(SK_LOG, "Slack: envelope %s delivered again", f.envelope_id);
        } else {
            if (eh)
                ak_ring_add(a->seen, SK_SEEN_MAX, &a->seen_next, eh);
            inbound(a, cx, &f);
        }
    }
    slack_frame_fini(&f);
}

static void on_ws_closed(sk_adapter *a, rt_ctx *cx, rt_ws_msg_closed *m)
{
    if (m->tag != a->conn_gen || m->conn != a->conn)
        return;
    a->conn = 0;
    char why[200];
    if (m->http_status)
        snprintf(why, sizeof(why), "the Socket Mode upgrade was answered HTTP %d", m->http_status);
    else
        snprintf(why, sizeof(why), "Socket Mode connection lost: %s (%s, code %d)",
                 m->reason[0] ? m->reason : "closed", m->err ? rt_strerror(m->err) : "clean",
                 m->code);
    reconnect_later(a, cx, why);
}

/* ================================================================ dispatch */

static void on_http_done(sk_adapter *a, rt_ctx *cx, rt_io_msg_http_done *d)
{
    sk_req *r = untrack(a, d->tag);
    if (!r)
        return;
    r->http_id = 0;
    if (!d->err && d->status == 429 && r->method && r->tries < SK_RL_TRIES) {
        int64_t s = d->retry_after_s > 0 ? d->retry_after_s : 1;
        if (s > 600)
            s = 600;
        r->tries++;
        RT_WARN(SK_LOG, "Slack: %s rate-limited; retrying in %llds", r->method, (long long)s);
        rl_set(a, r->method, now_ns(cx) + s * 1000000000LL);
        rt_map_put(&a->reqs, r->tag, r);
        submit(a, cx, r);
        return;
    }
    switch (r->kind) {
    case SK_R_AUTH:
        if (a->phase == SK_PH_AUTH)
            on_auth(a, cx, d);
        break;
    case SK_R_OPEN:
        if (a->phase == SK_PH_OPEN)
            on_open(a, cx, d);
        break;
    case SK_R_DOWNLOAD: inbound_download(a, cx, r, d); break;
    case SK_R_USER: inbound_user(a, cx, r->ctx, d); break;
    case SK_R_HISTORY: on_history(a, cx, r, d); break;
    case SK_R_REACT:
        if (d->err || d->status != 200 || !d->body || !strstr(d->body, "\"ok\":true"))
            RT_DEBUG(SK_LOG, "Slack: %s failed (already reacted, or no reactions:write)",
                     r->method);
        break;
    default: outbound_result(a, cx, r, d); break;
    }
    req_free(r);
}

static void on_io_done(sk_adapter *a, rt_ctx *cx, ak_io_done *d)
{
    sk_req *r = untrack(a, d->tag);
    if (!r)
        return;
    if (r->kind == SK_R_STATE) {
        on_state_read(a, cx, d);
    } else if (r->kind == SK_R_SAVE) {
        sk_job *j = r->ctx;
        j->ok[r->idx] = d->err == 0;
        j->pending--;
        jobs_flush(a, cx);
    } else {
        outbound_read(a, cx, r, d);
    }
    req_free(r);
}

static void on_timeout(sk_adapter *a, rt_ctx *cx, rt_msg_timeout *t)
{
    int kind = ak_timer_fired(&a->tm, t); /* 0: re-armed or cancelled since */
    if (!kind)
        return;
    switch (kind) {
    case SK_T_RECONNECT:
        if (a->phase == SK_PH_WAIT)
            begin_auth(a, cx);
        break;
    case SK_T_RATELIMIT: on_ratelimit_timer(a, cx); break;
    case SK_T_OUT: on_out_timer(a, cx); break;
    case SK_T_SAVE: state_save(a, cx); break;
    default: break;
    }
}

static void behave(rt_ctx *cx, void *state, rt_msg *m)
{
    sk_adapter *a = state;
    a->self = rt_self(cx);
    if (a->phase == SK_PH_FATAL)
        return;
    if (a->phase == SK_PH_STOPPED && m->type != RT_MSG_STOP)
        return;
    switch (m->type) {
    case SK_MSG_START:
        if (a->phase == SK_PH_INIT) {
            a->io = ak_io_start(cx, "Slack");
            if (a->o.catchup_max_age_s >= 0) {
                sk_req *r = rt_xcalloc(1, sizeof(*r));
                r->kind = SK_R_STATE;
                ak_io_read(cx, a->io, a->state_path, 1u << 20, a->self, track(a, r));
            }
            begin_auth(a, cx);
        }
        break;
    case RT_IO_MSG_HTTP_DONE: on_http_done(a, cx, (rt_io_msg_http_done *)m); break;
    case RT_WS_MSG_OPEN: break; /* Slack speaks first ("hello") */
    case RT_WS_MSG_MESSAGE: on_ws_message(a, cx, (rt_ws_msg_message *)m); break;
    case RT_WS_MSG_CLOSED: on_ws_closed(a, cx, (rt_ws_msg_closed *)m); break;
    case RT_MSG_TIMEOUT: on_timeout(a, cx, (rt_msg_timeout *)m); break;
    case AK_MSG_IO_DONE: on_io_done(a, cx, (ak_io_done *)m); break;
    case GW_OUT_TEXT: on_out_text(a, cx, (gw_out_text *)m); break;
    case GW_OUT_TURN_END: on_turn_end(a, cx, (gw_out_turn_end *)m); break;
    case GW_OUT_TYPING: /* bots have no typing indicator: the :eyes: reaction says it */
    case GW_OUT_DELTA: break;
    case SK_MSG_DRAIN: on_drain(a, cx); break;
    case RT_MSG_STOP:
        if (a->phase != SK_PH_STOPPED) {
            a->phase = SK_PH_STOPPED;
            shut(a, cx);
            RT_INFO(SK_LOG, "Slack: disconnected");
        }
        break;
    case RT_MSG_EXIT:
    case RT_MSG_DOWN:
    case RT_MSG_INTERRUPT: break;
    default: RT_WARN_ONCE(SK_LOG, "Slack: unexpected message type %#x", m->type); break;
    }
}

static void adapter_free(void *state)
{
    sk_adapter *a = state;
    cancel_all(a, NULL);
    rt_map_fini(&a->reqs);
    while (a->jobs) {
        sk_job *j = a->jobs;
        a->jobs = j->next;
        job_free(j);
    }
    if (a->lanes_ready)
        ak_lanes_fini(&a->lanes, out_free_cb, NULL);
    rt_free(a->bot_auth);
    rt_free(a->app_auth);
    rt_free(a->cache_dir);
    rt_free(a->bot_user);
    for (size_t i = 0; i < a->nusers; i++) {
        rt_free(a->user_id[i]);
        rt_free(a->user_name[i]);
    }
    rt_free(a->mention);
    rt_free(a->state_path);
    catch_reset(a);
    slack_opts_fini(&a->o);
    rt_free(a);
}

static const rt_actor_type sk_type = {"slack", behave, adapter_free, 0};

/* ================================================================ start */

static int fail(char *err, size_t errlen, int rc, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return rc;
}

int slack_start(rt_ctx *cx, const slack_opts *o, rt_ref gateway, rt_ref *out, char *err,
                size_t errlen)
{
    if (!o || !out || !o->bot_token || !*o->bot_token || !o->app_token || !*o->app_token ||
        !o->hermes_home)
        return fail(err, errlen, -EINVAL,
                    "Slack: SLACK_BOT_TOKEN, SLACK_APP_TOKEN and HERMES_HOME are required");
    rt_runtime *rt = rt_ctx_runtime(cx);
    if (!rt_reactor_of(rt) || !rt_lws_of(rt))
        return fail(err, errlen, -EINVAL,
                    "Slack: the HTTP client and the WebSocket service are not running");
    sk_adapter *a = rt_xcalloc(1, sizeof(*a));
    a->o = *o;
    a->o.bot_token = rt_xstrdup(o->bot_token);
    a->o.app_token = rt_xstrdup(o->app_token);
    a->o.api_base = rt_xstrdup(o->api_base ? o->api_base : SLACK_API_DEFAULT);
    a->o.hermes_home = rt_xstrdup(o->hermes_home);
    a->o.home_channel = o->home_channel && *o->home_channel ? rt_xstrdup(o->home_channel) : NULL;
    a->o.free_channels = ak_strv_dup(o->free_channels);
    a->o.ca_file = dupn(o->ca_file);
#define DEF(f, v)                                                                                  \
    if (a->o.f <= 0)                                                                               \
    a->o.f = (v)
    DEF(backoff_min_ms, 1000);
    DEF(backoff_max_ms, 60000);
    DEF(ws_ping_ms, 30000);
    DEF(ws_idle_ms, 120000);
    DEF(http_timeout_ms, 30000);
    DEF(catchup_pages, 10);
    DEF(catchup_page_size, 200);
#undef DEF
    if (a->o.catchup_max_age_s == 0)
        a->o.catchup_max_age_s = 86400;
    if (!a->o.max_file_bytes)
        a->o.max_file_bytes = 20u << 20;
    if (a->o.backoff_max_ms < a->o.backoff_min_ms)
        a->o.backoff_max_ms = a->o.backoff_min_ms;
    a->bot_auth = rt_xasprintf("Authorization: Bearer %s", o->bot_token);
    a->app_auth = rt_xasprintf("Authorization: Bearer %s", o->app_token);
    a->cache_dir = rt_xasprintf("%s/cache", o->hermes_home);
    a->state_path = rt_xasprintf("%s/platforms/slack/state.json", o->hermes_home);
    a->gateway = gateway;
    a->rnd = rt_hash_u64((uint64_t)getpid() ^ (uint64_t)rt_reactor_now_ns() ^ (uintptr_t)a) | 1;
    rt_map_init(&a->reqs);
    rt_ref ref = rt_spawn(cx, &sk_type, a, NULL);
    if (!ref)
        return fail(err, errlen, -ENOMEM, "Slack: could not start the adapter actor");
    rt_send(cx, ref, rt_msg_new(SK_MSG_START, sizeof(rt_msg)));
    *out = ref;
    return 0;
}

void slack_drain(rt_ctx *cx, rt_ref ref)
{
    rt_send(cx, ref, rt_msg_new(SK_MSG_DRAIN, sizeof(rt_msg)));
}
