/*
 * tg_actor — the Telegram adapter actor: getMe, the getUpdates loop, media downloads, the
 * persisted offset, replies, files, typing, rate limits and backoff.
 *
 * Phases:
 *   ME     getMe in flight (401/404: fatal with TG_BAD_TOKEN_MSG; else retried with backoff)
 *   POLL   getUpdates in flight
 *   BATCH  handing a batch to the gateway, one update at a time (a media update waits for
 *          getFile and the download); then the offset is written and POLL again
 *   WAIT   backoff or retry_after before the next getMe / getUpdates
 *
 * Invariants:
 *   1. Everything here belongs to the actor (one thread: it is detached): no locks.
 *   2. At most one getMe/getUpdates/getFile/download in flight, and one outbound send (the
 *      head of the queue): requests go out one at a time, so a failure cannot multiply.
 *   3. The offset on disk only moves past an update after its event was sent to the gateway.
 *   4. A reply whose DONE carries an older sequence than the current one of its kind is
 *      ignored (stop, restart of the step).
 */
#include "telegram.h"

#include "ak_lanes.h"
#include "ak_timer.h"
#include "gw.h"
#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_http.h"
#include "rt_log.h"
#include "rt_reactor.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define TG_LOG        "telegram"
#define TG_MAX_BODY   (16u << 20) /* JSON answers */
#define TG_OUT_MAX    4096        /* queued outbound items */
#define TG_TYPING_MAX 64
#define TG_SEND_TRIES 3  /* network failures / 5xx one message puts up with */
#define TG_RL_TRIES   10 /* 429s one message puts up with */
#define TG_UPLOAD_MAX (50u << 20)
/* Chats whose messages are on their way at once (per-chat lanes, issue 13). */
#define TG_OUT_PARALLEL 8
/* The Bot API's overall limit (about 30 messages a second): sends are paced to at most this
 * many starts in any second, on top of the 429s' retry_after (which holds every chat). */
#define TG_RATE_PER_S 30

enum { TG_MSG_START = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0B00) };

#define TG_EARLY_POLL_PAUSE_MS 1000 /* after an empty getUpdates that did not wait */

enum tg_phase { PH_INIT = 0, PH_ME, PH_POLL, PH_BATCH, PH_WAIT, PH_FATAL, PH_STOPPED };

/* Request kinds (HTTP tags are kind << 56 | sequence). */
enum { R_ME = 1, R_POLL, R_GETFILE, R_DOWNLOAD, R_SEND, R_TYPING, R_COUNT };
/* Timer kinds (same tag layout, RT_MSG_TIMEOUT). */
enum { T_RETRY = 1, T_OUT, T_TYPING, T_COUNT };

typedef struct tg_out {
    char *chat_id;
    char *thread_id;
    char *reply_to;
    char *text;  /* MarkdownV2, or NULL (plain only) */
    char *plain; /* the text without formatting */
    char *path;  /* a file to send instead of text, or NULL */
    int tries;
    int rl_tries;
    bool plain_mode;
    uint64_t delivery; /* the gateway's outbox entry this message ends (GW_MSG_SENT), or 0 */
    int ack_err;       /* 0, or why it was given up */
    bool ack_permanent;
    uint64_t group;   /* the delivery it belongs to (every part of it), or 0 */
    uint64_t req_seq; /* the R_SEND sequence of its request in flight, 0: none */
    uint64_t http_id; /* that request's rt_http id */
} tg_out;

typedef struct tg_typing {
    char *chat_id;
    char *thread_id;
} tg_typing;

typedef struct tg_adapter {
    tg_opts o;
    char *api;      /* <base>/bot<token>/ */
    char *file_api; /* <base>/file/bot<token>/ */
    char *state_path;
    char *cache_dir;
    rt_ref gateway;
    rt_ref self;
    int phase;
    int64_t bot_id;
    char *bot_username;
    bool announced;
    int64_t offset;
    int64_t state_bot_id;
    uint64_t seq[R_COUNT];
    uint64_t http[R_COUNT]; /* ids in flight (not R_TYPING) */
    ak_timers tm;           /* one slot per timer kind */
    int64_t backoff_ms;
    int64_t poll_started_ns; /* when the getUpdates in flight was sent */
    uint64_t rnd;
    int64_t rl_until_ns; /* 429: nothing goes out before this */
    /* the batch */
    cJSON *batch;
    int batch_i, batch_n;
    int64_t batch_max;
    tg_update cur;
    gw_msg_event *cur_ev;
    /* outbound */
    ak_lanes lanes; /* tg_out items in per-chat lanes (set up on first use) */
    bool lanes_ready;
    int64_t sent_ns[TG_RATE_PER_S]; /* when the last sends started (a ring) */
    size_t sent_next;
    tg_typing typing[TG_TYPING_MAX];
    size_t ntyping;
} tg_adapter;

/* ================================================================ helpers */

static int64_t now_ns(rt_ctx *cx)
{
    return rt_now_ns(rt_ctx_runtime(cx));
}

static rt_ref gateway_of(tg_adapter *a, rt_ctx *cx)
{
    return a->gateway ? a->gateway : rt_whereis(cx, GW_NAME);
}

static int mkdir_p(const char *dir)
{
    char *d = rt_xstrdup(dir);
    int rc = 0;
    for (char *p = d + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = '\0';
            if (mkdir(d, 0700) != 0 && errno != EEXIST)
                rc = -errno;
            *p = c;
            if (!c || rc)
                break;
        }
    }
    rt_free(d);
    return rc;
}

static uint64_t submit(tg_adapter *a, rt_ctx *cx, int kind, const char *url, const char *ctype,
                       const void *body, size_t len, int64_t timeout_ms, size_t max_body)
{
    char *ct = ctype ? rt_xasprintf("Content-Type: %s", ctype) : NULL;
    const char *hdrs[2] = {ct, NULL};
    uint64_t s = ++a->seq[kind];
    rt_http_request hr = {
        .method = body ? "POST" : "GET",
        .url = url,
        .headers = ct ? hdrs : NULL,
        .body = body,
        .body_len = len,
        .timeout_ms = timeout_ms,
        .max_body = max_body,
        .mode = RT_HTTP_BUFFER,
        .reply_to = a->self,
        .tag = ((uint64_t)kind << 56) | s,
    };
    uint64_t id = rt_http_submit(cx, &hr);
    if (kind != R_TYPING && kind != R_SEND) /* sends: one per chat, kept by their item */
        a->http[kind] = id;
    rt_free(ct);
    return id;
}

/* POST <api><method> with a JSON body (taken). */
static void call_json(tg_adapter *a, rt_ctx *cx, int kind, const char *method, cJSON *body,
                      int64_t timeout_ms)
{
    char *url = rt_xasprintf("%s%s", a->api, method);
    char *txt = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    submit(a, cx, kind, url, "application/json", txt, strlen(txt), timeout_ms, TG_MAX_BODY);
    cJSON_free(txt);
    rt_free(url);
}

/* A chat id or thread id as JSON: a number when it is one (it always is on Telegram). */
static void add_id(cJSON *o, const char *key, const char *v)
{
    int64_t n = 0;
    if (!v)
        return;
    if (rt_parse_i64(v, INT64_MIN / 2, INT64_MAX / 2, &n) == 0)
        cJSON_AddNumberToObject(o, key, (double)n);
    else
        cJSON_AddStringToObject(o, key, v);
}

/* The Bot API's answer: {"ok":…, "result":…} or {"ok":false,"error_code":…,"description":…,
 * "parameters":{"retry_after":…}}. Returns the parsed tree (caller deletes) or NULL. */
static cJSON *answer(const rt_io_msg_http_done *d, const char **desc, int64_t *retry_after)
{
    cJSON *j = d->body ? cJSON_Parse(d->body) : NULL;
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(j, "description");
    *desc = cJSON_IsString(ds) ? ds->valuestring : NULL;
    const cJSON *ra = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "parameters"), "retry_after");
    *retry_after = cJSON_IsNumber(ra) && ra->valuedouble > 0 && ra->valuedouble < 86400
                       ? (int64_t)ra->valuedouble
                       : d->retry_after_s;
    return j;
}

static bool answer_ok(const cJSON *j)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok"));
}

static int64_t backoff_next(tg_adapter *a)
{
    a->backoff_ms = a->backoff_ms ? a->backoff_ms * 2 : a->o.backoff_min_ms;
    if (a->backoff_ms > a->o.backoff_max_ms)
        a->backoff_ms = a->o.backoff_max_ms;
    return a->backoff_ms + (int64_t)(ak_rand(&a->rnd) % (uint64_t)(a->backoff_ms / 5 + 1));
}

/* ================================================================ state */

static void load_state(tg_adapter *a)
{
    char *text = NULL;
    size_t len = 0;
    if (hm_read_file(a->state_path, 1u << 16, &text, &len) != 0)
        return;
    if (tg_state_parse(text, &a->state_bot_id, &a->offset) != 0) {
        RT_WARN(TG_LOG, "Telegram: %s is not valid; starting from what Telegram still holds",
                a->state_path);
        a->offset = 0;
        a->state_bot_id = 0;
    }
    rt_free(text);
}

static void save_state(tg_adapter *a)
{
    char *dir = rt_xasprintf("%s/platforms/telegram", a->o.hermes_home);
    int rc = mkdir_p(dir);
    rt_free(dir);
    char *s = tg_state_format(a->bot_id, a->offset);
    if (!rc)
        rc = hm_write_atomic(a->state_path, s, strlen(s), 0600);
    if (rc)
        RT_WARN(TG_LOG, "Telegram: could not write %s: %s", a->state_path, rt_strerror(rc));
    rt_free(s);
}

/* ================================================================ start-up and polling */

static void announce(tg_adapter *a, rt_ctx *cx)
{
    rt_ref gw = gateway_of(a, cx);
    if (!gw) {
        RT_WARN(TG_LOG, "Telegram: no gateway to announce the adapter to");
        return;
    }
    gw_caps caps = {
        .max_message = TG_MAX_MESSAGE, .markdown = true, .progress = true, .acks = true};
    rt_send(cx, gw, gw_adapter_up_new(TELEGRAM_PLATFORM, a->self, &caps, a->o.home_channel));
    a->announced = true;
}

static void announce_down(tg_adapter *a, rt_ctx *cx)
{
    if (!a->announced)
        return;
    rt_ref gw = gateway_of(a, cx);
    if (gw)
        rt_send(cx, gw, gw_adapter_down_new(TELEGRAM_PLATFORM, a->self));
    a->announced = false;
}

static void out_free(tg_out *o)
{
    rt_free(o->chat_id);
    rt_free(o->thread_id);
    rt_free(o->reply_to);
    rt_free(o->text);
    rt_free(o->plain);
    rt_free(o->path);
    rt_free(o);
}

typedef struct cancel_arg {
    rt_ctx *cx;
} cancel_arg;

static void cancel_send(void *item, void *arg)
{
    tg_out *o = item;
    if (o->req_seq && o->http_id)
        rt_http_cancel(((cancel_arg *)arg)->cx, o->http_id);
    o->req_seq = 0;
    o->http_id = 0;
}

static void cancel_all(tg_adapter *a, rt_ctx *cx)
{
    if (a->lanes_ready)
        ak_lanes_each(&a->lanes, cancel_send, &(cancel_arg){cx});
    for (int k = 1; k < R_COUNT; k++) {
        if (a->http[k])
            rt_http_cancel(cx, a->http[k]);
        a->http[k] = 0;
        a->seq[k]++; /* whatever still arrives is stale */
    }
    for (int k = 1; k < T_COUNT; k++)
        ak_timer_cancel(cx, &a->tm, k);
}

static void shut(tg_adapter *a, rt_ctx *cx)
{
    size_t n = a->lanes_ready ? ak_lanes_count(&a->lanes) : 0;
    if (n)
        RT_WARN(TG_LOG, "Telegram: stopping with %zu message(s) not delivered", n);
    cancel_all(a, cx);
    announce_down(a, cx);
}

static void fatal(tg_adapter *a, rt_ctx *cx, const char *msg)
{
    if (a->phase == PH_FATAL || a->phase == PH_STOPPED)
        return;
    RT_ERROR(TG_LOG, "%s", msg);
    RT_ERROR(TG_LOG, "Telegram: giving up; fix the settings and restart the gateway");
    a->phase = PH_FATAL;
    shut(a, cx);
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void get_me(tg_adapter *a, rt_ctx *cx)
{
    a->phase = PH_ME;
    char *url = rt_xasprintf("%sgetMe", a->api);
    submit(a, cx, R_ME, url, NULL, NULL, 0, a->o.http_timeout_ms, TG_MAX_BODY);
    rt_free(url);
}

static void poll_updates(tg_adapter *a, rt_ctx *cx)
{
    a->phase = PH_POLL;
    a->poll_started_ns = now_ns(cx);
    cJSON *b = cJSON_CreateObject();
    if (a->offset > 0)
        cJSON_AddNumberToObject(b, "offset", (double)a->offset);
    cJSON_AddNumberToObject(b, "timeout", a->o.poll_timeout_s);
    cJSON *au = cJSON_AddArrayToObject(b, "allowed_updates");
    cJSON_AddItemToArray(au, cJSON_CreateString("message"));
    call_json(a, cx, R_POLL, "getUpdates", b, ((int64_t)a->o.poll_timeout_s + 15) * 1000);
}

/* Wait ms, then do the step of the phase we were in (getMe before the bot is known). */
static void retry_later(tg_adapter *a, rt_ctx *cx, int64_t ms, const char *what, const char *why)
{
    RT_WARN(TG_LOG, "Telegram: %s failed: %s — retrying in %.1fs", what, why, (double)ms / 1e3);
    a->phase = PH_WAIT;
    ak_timer_arm(cx, a->self, &a->tm, T_RETRY, ms);
}

static void on_retry(tg_adapter *a, rt_ctx *cx)
{
    if (a->phase != PH_WAIT)
        return;
    if (!a->bot_id)
        get_me(a, cx);
    else
        poll_updates(a, cx);
}

/* A failed getMe/getUpdates: 401/404 fatal, 429 retry_after, the rest backoff. */
static void step_failed(tg_adapter *a, rt_ctx *cx, const char *what, rt_io_msg_http_done *d,
                        const char *desc, int64_t retry_after)
{
    char why[320];
    if (d->err) {
        snprintf(why, sizeof(why), "%s", d->errmsg ? d->errmsg : rt_strerror(d->err));
        retry_later(a, cx, backoff_next(a), what, why);
        return;
    }
    if (d->status == 401 || d->status == 404) {
        fatal(a, cx, TG_BAD_TOKEN_MSG);
        return;
    }
    snprintf(why, sizeof(why), "HTTP %d%s%s", d->status, desc ? ": " : "", desc ? desc : "");
    if (d->status == 429) {
        int64_t s = retry_after > 0 ? retry_after : 5;
        a->rl_until_ns = now_ns(cx) + s * 1000000000LL;
        retry_later(a, cx, s * 1000, what, why);
        return;
    }
    if (d->status == 409)
        RT_ERROR(TG_LOG,
                 "Telegram: another program is polling this bot (409 Conflict): only one "
                 "gateway (or getUpdates client, or webhook) may use a bot token at a time");
    retry_later(a, cx, backoff_next(a), what, why);
}

static void on_me(tg_adapter *a, rt_ctx *cx, rt_io_msg_http_done *d)
{
    const char *desc = NULL;
    int64_t ra = 0;
    cJSON *j = answer(d, &desc, &ra);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "result");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(res, "id");
    const cJSON *un = cJSON_GetObjectItemCaseSensitive(res, "username");
    if (d->err || d->status != 200 || !answer_ok(j) || !cJSON_IsNumber(id)) {
        if (!d->err && d->status == 200) /* 200 without a bot: not the Bot API */
            d->status = 404;
        step_failed(a, cx, "getMe", d, desc, ra);
        cJSON_Delete(j);
        return;
    }
    a->bot_id = (int64_t)id->valuedouble;
    rt_free(a->bot_username);
    a->bot_username = rt_xstrdup(cJSON_IsString(un) ? un->valuestring : "");
    cJSON_Delete(j);
    a->backoff_ms = 0;
    if (a->state_bot_id && a->state_bot_id != a->bot_id)
        a->offset = 0; /* another bot's position */
    RT_INFO(TG_LOG, "Telegram: connected as @%s (id %" PRId64 ")", a->bot_username, a->bot_id);
    announce(a, cx);
    poll_updates(a, cx);
}

/* ================================================================ the batch */

static void batch_next(tg_adapter *a, rt_ctx *cx);

static void hand_over(tg_adapter *a, rt_ctx *cx)
{
    gw_msg_event *ev = a->cur_ev;
    a->cur_ev = NULL;
    rt_ref gw = gateway_of(a, cx);
    if (!gw_event_send(cx, gw, ev))
        RT_WARN(TG_LOG, "Telegram: the gateway is gone; update %" PRId64 " dropped",
                a->cur.update_id);
    tg_update_fini(&a->cur);
}

static const char *media_word(int m)
{
    switch (m) {
    case TG_MEDIA_PHOTO: return "a photo";
    case TG_MEDIA_VOICE: return "a voice message";
    case TG_MEDIA_AUDIO: return "an audio file";
    case TG_MEDIA_VIDEO: return "a video";
    default: return "a file";
    }
}

/* Add a line about the attachment to the event's text. */
static void note_media(tg_adapter *a, const char *path, const char *problem)
{
    gw_msg_event *ev = a->cur_ev;
    rt_buf b;
    rt_buf_init(&b, TG_BUF_MAX);
    rt_buf_append_str(&b, ev->text);
    if (*ev->text)
        rt_buf_append_str(&b, "\n\n");
    if (path && a->cur.media != TG_MEDIA_VIDEO) {
        /* photos, voice notes, audio and documents: the gateway describes them in the prompt
         * (transcript, image or document note: gw_media.c) */
        rt_buf_fini(&b);
        return;
    }
    if (path)
        rt_buf_printf(&b, "[The user sent %s, saved at %s]", media_word(a->cur.media), path);
    else
        rt_buf_printf(&b, "[The user sent %s, but it could not be fetched: %s]",
                      media_word(a->cur.media), problem);
    rt_free(ev->text);
    ev->text = rt_buf_steal(&b, NULL);
}

static void media_done(tg_adapter *a, rt_ctx *cx, const char *path, const char *problem)
{
    note_media(a, path, problem);
    if (path) {
        gw_msg_event *ev = a->cur_ev;
        ev->media = rt_xcalloc(1, sizeof(char *));
        ev->media[0] = rt_xstrdup(path);
        ev->nmedia = 1;
    }
    hand_over(a, cx);
    a->batch_i++;
    batch_next(a, cx);
}

static gw_msg_event *event_of(tg_adapter *a, const tg_update *u)
{
    gw_msg_event *ev =
        gw_event_new(TELEGRAM_PLATFORM, tg_chat_type(u->chat_type), u->chat_id, NULL, u->text);
    ev->src.user_id = rt_xasprintf("%" PRId64, u->from_id);
    ev->src.user_name = u->from_name ? rt_xstrdup(u->from_name) : NULL;
    ev->src.chat_name = u->chat_title ? rt_xstrdup(u->chat_title) : NULL;
    ev->src.thread_id = u->thread_id ? rt_xstrdup(u->thread_id) : NULL;
    ev->reply.thread_id = u->thread_id ? rt_xstrdup(u->thread_id) : NULL;
    ev->reply.reply_to = rt_xasprintf("%" PRId64, u->message_id);
    ev->message_id = rt_xasprintf("%" PRId64, u->update_id);
    ev->adapter = a->self;
    switch (u->media) {
    case TG_MEDIA_PHOTO: ev->kind = GW_KIND_PHOTO; break;
    case TG_MEDIA_VOICE: ev->kind = GW_KIND_VOICE; break;
    case TG_MEDIA_AUDIO: ev->kind = GW_KIND_AUDIO; break;
    case TG_MEDIA_VIDEO: ev->kind = GW_KIND_VIDEO; break;
    case TG_MEDIA_DOCUMENT: ev->kind = GW_KIND_DOCUMENT; break;
    default: ev->kind = GW_KIND_TEXT; break;
    }
    return ev;
}

static void batch_end(tg_adapter *a, rt_ctx *cx)
{
    cJSON_Delete(a->batch);
    a->batch = NULL;
    if (a->batch_max + 1 > a->offset) {
        a->offset = a->batch_max + 1;
        save_state(a); /* invariant 3: every event of the batch was sent */
    }
    poll_updates(a, cx);
}

static void batch_next(tg_adapter *a, rt_ctx *cx)
{
    tg_rules rules = {.require_mention = a->o.require_mention,
                      .free_chats = a->o.free_chats,
                      .ignored_threads = a->o.ignored_threads,
                      .bot_id = a->bot_id};
    while (a->batch_i < a->batch_n) {
        const cJSON *it =
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(a->batch, "result"), a->batch_i);
        tg_update_fini(&a->cur);
        if (tg_update_parse(it, a->bot_username, a->bot_id, &a->cur) != 0) {
            a->batch_i++;
            continue;
        }
        if (a->cur.update_id > a->batch_max)
            a->batch_max = a->cur.update_id;
        if (a->cur.update_id < a->offset || !tg_addressed(&a->cur, &rules)) {
            a->batch_i++;
            continue;
        }
        a->cur_ev = event_of(a, &a->cur);
        if (a->cur.media != TG_MEDIA_NONE) {
            if (a->cur.file_size > (int64_t)a->o.max_file_bytes) {
                media_done(a, cx, NULL, "it is larger than the Bot API's 20 MB download limit");
                return;
            }
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "file_id", a->cur.file_id);
            call_json(a, cx, R_GETFILE, "getFile", b, a->o.http_timeout_ms);
            return; /* continues in on_getfile */
        }
        hand_over(a, cx);
        a->batch_i++;
    }
    tg_update_fini(&a->cur);
    batch_end(a, cx);
}

static void on_poll(tg_adapter *a, rt_ctx *cx, rt_io_msg_http_done *d)
{
    const char *desc = NULL;
    int64_t ra = 0;
    cJSON *j = answer(d, &desc, &ra);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "result");
    if (d->err || d->status != 200 || !answer_ok(j) || !cJSON_IsArray(res)) {
        if (!d->err && d->status == 200)
            d->status = 502; /* not the Bot API's shape: retry with backoff */
        step_failed(a, cx, "getUpdates", d, desc, ra);
        cJSON_Delete(j);
        return;
    }
    a->backoff_ms = 0;
    a->batch = j;
    a->batch_i = 0;
    a->batch_n = cJSON_GetArraySize(res);
    a->batch_max = a->offset - 1;
    if (a->batch_n == 0) {
        cJSON_Delete(j);
        a->batch = NULL;
        /* An empty answer long before the timeout we asked for: a server (or proxy) that
         * does not hold the long poll. Polling again at once would be a request storm
         * (thousands a second); wait a second instead, quietly. */
        int64_t held_ms = (now_ns(cx) - a->poll_started_ns) / 1000000;
        if (held_ms < (int64_t)a->o.poll_timeout_s * 1000 / 2) {
            a->phase = PH_WAIT;
            ak_timer_arm(cx, a->self, &a->tm, T_RETRY, TG_EARLY_POLL_PAUSE_MS);
            return;
        }
        poll_updates(a, cx);
        return;
    }
    a->phase = PH_BATCH;
    batch_next(a, cx);
}

static void on_getfile(tg_adapter *a, rt_ctx *cx, rt_io_msg_http_done *d)
{
    const char *desc = NULL;
    int64_t ra = 0;
    cJSON *j = answer(d, &desc, &ra);
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "result"), "file_path");
    if (d->err || d->status != 200 || !answer_ok(j) || !cJSON_IsString(fp) ||
        strstr(fp->valuestring, "..")) {
        char why[256];
        snprintf(why, sizeof(why), "getFile answered %s%s%s",
                 d->err ? rt_strerror(d->err) : "an error", desc ? ": " : "", desc ? desc : "");
        cJSON_Delete(j);
        media_done(a, cx, NULL, why);
        return;
    }
    char *url = rt_xasprintf("%s%s", a->file_api, fp->valuestring);
    cJSON_Delete(j);
    submit(a, cx, R_DOWNLOAD, url, NULL, NULL, 0, 120000, a->o.max_file_bytes);
    rt_free(url);
}

static void on_download(tg_adapter *a, rt_ctx *cx, rt_io_msg_http_done *d)
{
    if (d->err || d->status != 200 || !d->body) {
        char why[128];
        snprintf(why, sizeof(why), "the download failed (%s)",
                 d->err ? rt_strerror(d->err) : "HTTP error");
        media_done(a, cx, NULL, why);
        return;
    }
    /* a safe file name: the update id and the original name's safe characters */
    const char *name = a->cur.file_name;
    const char *ext = a->cur.media == TG_MEDIA_PHOTO   ? ".jpg"
                      : a->cur.media == TG_MEDIA_VOICE ? ".ogg"
                      : a->cur.media == TG_MEDIA_VIDEO ? ".mp4"
                                                       : "";
    char safe[96];
    size_t n = 0;
    for (const char *p = name ? name : ""; *p && n + 1 < sizeof(safe); p++)
        safe[n++] = (isalnum((unsigned char)*p) || strchr("._-", *p)) ? *p : '_';
    safe[n] = '\0';
    /* documents as the original caches them, doc_<id>_<original name>: the gateway's
     * document note shows the part after the second '_' */
    char *path = rt_xasprintf("%s/%s%" PRId64 "_%s%s", a->cache_dir,
                              a->cur.media == TG_MEDIA_DOCUMENT ? "doc_" : "", a->cur.update_id,
                              n ? safe : "file", n ? "" : ext);
    int rc = mkdir_p(a->cache_dir);
    if (!rc)
        rc = hm_write_atomic(path, d->body, d->body_len, 0600);
    if (rc) {
        char why[160];
        snprintf(why, sizeof(why), "it could not be saved (%s)", rt_strerror(rc));
        media_done(a, cx, NULL, why);
    } else {
        media_done(a, cx, path, NULL);
    }
    rt_free(path);
}

/* ================================================================ outbound */

static void out_pump(tg_adapter *a, rt_ctx *cx);

static ak_lanes *lanes(tg_adapter *a)
{
    if (!a->lanes_ready) {
        ak_lanes_init(&a->lanes, TG_OUT_PARALLEL, TG_OUT_MAX);
        a->lanes_ready = true;
    }
    return &a->lanes;
}

static void pending_sync(tg_adapter *a)
{
    if (a->o.pending)
        atomic_store_explicit(a->o.pending, a->lanes_ready ? ak_lanes_count(&a->lanes) : 0,
                              memory_order_release);
}

static bool out_push(tg_adapter *a, tg_out *o)
{
    if (ak_lanes_push(lanes(a), o->chat_id, o->group, o) != 0) {
        RT_WARN(TG_LOG, "Telegram: too many messages waiting; one to %s dropped", o->chat_id);
        out_free(o);
        return false;
    }
    pending_sync(a);
    return true;
}

/* Tell the gateway's outbox how a message it handed over went (gw_caps.acks). Outcomes a
 * resend must not change (sent, refused, maybe sent) are remembered (ak_lanes_claim). */
static void ack(tg_adapter *a, rt_ctx *cx, uint64_t delivery, int err, bool permanent)
{
    if (delivery && (!err || permanent))
        ak_lanes_remember(lanes(a), delivery, err, permanent);
    gw_ack(cx, delivery && cx ? gateway_of(a, cx) : 0, delivery, err, permanent, 0,
           err == -ETIMEDOUT && permanent
               ? "Telegram did not answer; the message may have been sent, not sent again"
               : (err ? (permanent ? "Telegram refused the message"
                                   : "Telegram did not take the message")
                      : NULL));
}

/* o is done (sent, or given up): ack, free. */
static void out_pop(tg_adapter *a, rt_ctx *cx, tg_out *o)
{
    if (o->ack_err && !o->ack_permanent && ak_lanes_partial(&a->lanes, o)) {
        RT_ERROR(TG_LOG, "Telegram: part of a reply to chat %s was sent; the rest is given up",
                 o->chat_id);
        o->ack_permanent = true; /* the outbox would send the whole reply again */
    }
    ack(a, cx, o->delivery, o->ack_err, o->ack_permanent);
    ak_lanes_done(&a->lanes, o);
    if (!o->ack_err)
        ak_lanes_part_sent(&a->lanes, o->group);
    out_free(o);
    pending_sync(a);
}

static void out_free_cb(void *item, void *arg)
{
    (void)arg;
    out_free(item);
}

/* "MEDIA:<path>" → the path (quotes and back-ticks removed, ~ expanded), or NULL. */
static char *media_path(const char *line, size_t n)
{
    while (n && (*line == ' ' || *line == '\t')) {
        line++;
        n--;
    }
    if (n < 7 || strncmp(line, "MEDIA:", 6) != 0)
        return NULL;
    line += 6;
    n -= 6;
    while (n && (*line == ' ' || *line == '`' || *line == '"' || *line == '\'')) {
        line++;
        n--;
    }
    while (n && strchr(" `\"'\r", line[n - 1]))
        n--;
    if (!n)
        return NULL;
    if (line[0] == '~' && (n == 1 || line[1] == '/')) {
        const char *h = getenv("HOME");
        if (h)
            return rt_xasprintf("%s%.*s", h, (int)(n - 1), line + 1);
    }
    return rt_xstrndup(line, n);
}

static tg_out *out_new(const gw_target *to)
{
    tg_out *o = rt_xcalloc(1, sizeof(*o));
    o->chat_id = rt_xstrdup(to->chat_id);
    o->thread_id = to->thread_id ? rt_xstrdup(to->thread_id) : NULL;
    return o;
}

static void on_out_text(tg_adapter *a, rt_ctx *cx, gw_out_text *t)
{
    if (!t->text || !t->to.chat_id || !*t->to.chat_id) {
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
    tg_out *last = NULL;
    /* take MEDIA: lines out of the text */
    rt_buf txt;
    rt_buf_init(&txt, TG_BUF_MAX);
    char *paths[16];
    size_t np = 0;
    const char *p = t->text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *mp = media_path(p, n);
        if (mp && np < sizeof(paths) / sizeof(paths[0]))
            paths[np++] = mp;
        else if (mp)
            rt_free(mp);
        else
            (void)rt_buf_append(&txt, p, nl ? n + 1 : n);
        p += nl ? n + 1 : n;
    }
    const char *body = rt_buf_cstr(&txt);
    bool has_text = false;
    for (const char *q = body; *q; q++)
        has_text |= !isspace((unsigned char)*q);
    bool first = t->part <= 1;
    if (has_text) {
        char **r = NULL, **pl = NULL;
        size_t n = tg_split(body, TG_MAX_MESSAGE, true, &r, &pl);
        for (size_t i = 0; i < n; i++) {
            tg_out *o = out_new(&t->to);
            if (first && i == 0 && t->to.reply_to)
                o->reply_to = rt_xstrdup(t->to.reply_to);
            o->text = r[i];
            o->plain = pl[i];
            r[i] = pl[i] = NULL;
            o->group = t->delivery;
            if (out_push(a, o))
                last = o;
        }
        tg_strv_free(r);
        tg_strv_free(pl);
    }
    for (size_t i = 0; i < np; i++) {
        tg_out *o = out_new(&t->to);
        o->path = paths[i];
        o->group = t->delivery;
        if (out_push(a, o))
            last = o;
    }
    rt_buf_fini(&txt);
    if (t->delivery) {
        if (last)
            last->delivery = t->delivery; /* acked when its last message is done */
        else
            ack(a, cx, t->delivery, has_text || np ? -ENOBUFS : 0, false);
    }
    out_pump(a, cx);
}

static const char *upload_method(const char *path, const char **field)
{
    const char *dot = strrchr(path, '.');
    const char *e = dot ? dot + 1 : "";
    static const struct {
        const char *exts;
        const char *method;
        const char *field;
    } m[] = {{"|ogg|opus|", "sendVoice", "voice"},
             {"|mp3|wav|m4a|flac|aac|", "sendAudio", "audio"},
             {"|mp4|mov|avi|mkv|webm|3gp|", "sendVideo", "video"},
             {"|jpg|jpeg|png|webp|", "sendPhoto", "photo"}};
    char key[16];
    size_t n = 0;
    for (; e[n] && n + 3 < sizeof(key); n++)
        key[n + 1] = (char)tolower((unsigned char)e[n]);
    key[0] = '|';
    key[n + 1] = '|';
    key[n + 2] = '\0';
    for (size_t i = 0; n && !e[n] && i < sizeof(m) / sizeof(m[0]); i++)
        if (strstr(m[i].exts, key)) {
            *field = m[i].field;
            return m[i].method;
        }
    *field = "document";
    return "sendDocument";
}

static void mp_field(rt_buf *b, const char *bd, const char *name, const char *value)
{
    rt_buf_printf(b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", bd, name,
                  value);
}

/* Send the head file as multipart/form-data; false if it cannot be read. */
static bool send_file(tg_adapter *a, rt_ctx *cx, tg_out *o)
{
    char *data = NULL;
    size_t len = 0;
    int rc = hm_read_file(o->path, TG_UPLOAD_MAX, &data, &len);
    if (rc) {
        RT_WARN(TG_LOG, "Telegram: cannot send %s: %s", o->path, rt_strerror(rc));
        return false;
    }
    const char *field = NULL;
    const char *method = upload_method(o->path, &field);
    char bd[40];
    snprintf(bd, sizeof(bd), "hermes%016" PRIx64, ak_rand(&a->rnd));
    const char *slash = strrchr(o->path, '/');
    const char *base = slash ? slash + 1 : o->path;
    rt_buf b;
    rt_buf_init(&b, TG_BUF_MAX);
    mp_field(&b, bd, "chat_id", o->chat_id);
    if (o->thread_id)
        mp_field(&b, bd, "message_thread_id", o->thread_id);
    rt_buf_printf(&b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"", bd,
                  field);
    for (const char *q = base; *q; q++) /* quotes and line breaks would end the header */
        (void)rt_buf_append(&b, strchr("\"\r\n\\", *q) ? "_" : q, 1);
    rt_buf_printf(&b, "\"\r\nContent-Type: application/octet-stream\r\n\r\n");
    (void)rt_buf_append(&b, data, len);
    rt_buf_printf(&b, "\r\n--%s--\r\n", bd);
    rt_free(data);
    char *ct = rt_xasprintf("multipart/form-data; boundary=%s", bd);
    char *url = rt_xasprintf("%s%s", a->api, method);
    size_t blen = b.len;
    char *body = rt_buf_steal(&b, NULL);
    o->http_id = submit(a, cx, R_SEND, url, ct, body, blen, 120000, TG_MAX_BODY);
    o->req_seq = a->seq[R_SEND];
    rt_free(body);
    rt_free(url);
    rt_free(ct);
    return true;
}

/* Pacing for the overall limit: 0 when a send may start now (and it is counted), else when
 * the oldest of the last TG_RATE_PER_S starts leaves the one-second window. */
static int64_t rate_wait(tg_adapter *a, int64_t now)
{
    int64_t oldest = a->sent_ns[a->sent_next];
    if (oldest && now - oldest < 1000000000LL)
        return oldest + 1000000000LL;
    a->sent_ns[a->sent_next] = now;
    a->sent_next = (a->sent_next + 1) % TG_RATE_PER_S;
    return 0;
}

static void out_send(tg_adapter *a, rt_ctx *cx, tg_out *o)
{
    cJSON *b = cJSON_CreateObject();
    add_id(b, "chat_id", o->chat_id);
    add_id(b, "message_thread_id", o->thread_id);
    bool v2 = o->text && !o->plain_mode;
    cJSON_AddStringToObject(b, "text", v2 ? o->text : o->plain);
    if (v2)
        cJSON_AddStringToObject(b, "parse_mode", "MarkdownV2");
    if (o->reply_to) {
        add_id(b, "reply_to_message_id", o->reply_to);
        cJSON_AddBoolToObject(b, "allow_sending_without_reply", true);
    }
    if (!a->o.link_previews)
        cJSON_AddBoolToObject(b, "disable_web_page_preview", true);
    char *url = rt_xasprintf("%ssendMessage", a->api);
    char *txt = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    o->http_id = submit(a, cx, R_SEND, url, "application/json", txt, strlen(txt),
                        a->o.http_timeout_ms, TG_MAX_BODY);
    o->req_seq = a->seq[R_SEND];
    cJSON_free(txt);
    rt_free(url);
}

/* Start what may go: the first message of each chat that has none on its way, up to
 * TG_OUT_PARALLEL chats at once (ak_lanes), paced to TG_RATE_PER_S starts a second; a 429
 * holds every chat (ak_lanes_pause). Arms T_OUT for retries, the pause and the pacing. */
static void out_pump(tg_adapter *a, rt_ctx *cx)
{
    if (!a->lanes_ready || a->phase == PH_STOPPED || a->phase == PH_FATAL)
        return;
    for (int round = 0; round < TG_OUT_PARALLEL; round++) { /* bounded: files that fail */
        void *go[TG_OUT_PARALLEL];
        size_t n = ak_lanes_ready(&a->lanes, now_ns(cx), go, TG_OUT_PARALLEL);
        bool popped = false;
        for (size_t i = 0; i < n; i++) {
            tg_out *o = go[i];
            int64_t until = rate_wait(a, now_ns(cx));
            if (until) { /* over the overall rate: everything waits a moment */
                for (size_t k = i; k < n; k++)
                    ak_lanes_again(&a->lanes, go[k]);
                ak_lanes_pause(&a->lanes, until);
                break;
            }
            if (o->path) {
                if (!send_file(a, cx, o)) {
                    out_pop(a, cx, o);
                    popped = true;
                }
                continue;
            }
            out_send(a, cx, o);
        }
        if (!popped)
            break;
    }
    int64_t now = now_ns(cx), next = ak_lanes_next_due(&a->lanes, now);
    if (next)
        ak_timer_arm(cx, a->self, &a->tm, T_OUT, (next - now + 999999) / 1000000);
    else
        ak_timer_cancel(cx, &a->tm, T_OUT);
}

/* An answer that does not say whether the message was sent: no answer in time, the
 * connection dropped after sending, a proxy's 502/504. The Bot API has no idempotency key,
 * so such a message is not sent again (by us or, acked as permanent, by the outbox). */
static bool maybe_sent(const rt_io_msg_http_done *d)
{
    if (d->err)
        return d->err == -ETIMEDOUT || d->err == -ECONNRESET || d->err == -EPIPE;
    return d->status == 502 || d->status == 504;
}

static void on_send(tg_adapter *a, rt_ctx *cx, tg_out *o, rt_io_msg_http_done *d)
{
    o->req_seq = 0;
    o->http_id = 0;
    const char *desc = NULL;
    int64_t ra = 0;
    cJSON *j = answer(d, &desc, &ra);
    if (!d->err && d->status == 200 && answer_ok(j)) {
        cJSON_Delete(j);
        out_pop(a, cx, o);
        out_pump(a, cx);
        return;
    }
    if (!d->err && d->status == 429 && ++o->rl_tries <= TG_RL_TRIES) {
        int64_t s = ra > 0 ? ra : 5;
        RT_WARN(TG_LOG, "Telegram: rate limited (429); waiting %" PRId64 " s as asked", s);
        a->rl_until_ns = now_ns(cx) + s * 1000000000LL;
        ak_lanes_pause(&a->lanes, a->rl_until_ns); /* every chat waits */
        ak_lanes_again(&a->lanes, o);
    } else if (!d->err && d->status == 400 && desc && strcasestr(desc, "can't parse entities") &&
               !o->plain_mode && o->text) {
        RT_WARN(TG_LOG, "Telegram: MarkdownV2 refused (%s); sending plain text", desc);
        o->plain_mode = true;
        ak_lanes_again(&a->lanes, o);
    } else if (maybe_sent(d)) {
        RT_ERROR(TG_LOG,
                 "Telegram: a message to chat %s got no answer (%s); it may have been sent, so "
                 "it is not sent again",
                 o->chat_id, d->err ? rt_strerror(d->err) : "bad gateway");
        o->ack_err = -ETIMEDOUT;
        o->ack_permanent = true;
        out_pop(a, cx, o);
    } else if ((d->err || d->status >= 500) && ++o->tries <= TG_SEND_TRIES) {
        int64_t ms = 2000LL << (o->tries - 1);
        ms += (int64_t)(ak_rand(&a->rnd) % 1000);
        RT_WARN(TG_LOG, "Telegram: sending failed (%s); retrying in %.1fs",
                d->err ? rt_strerror(d->err)
                : desc ? desc
                       : "server error",
                (double)ms / 1e3);
        ak_lanes_retry(&a->lanes, o, now_ns(cx) + ms * 1000000LL); /* its chat waits */
    } else {
        RT_WARN(TG_LOG, "Telegram: a message to chat %s could not be sent (%s%s%s)", o->chat_id,
                d->err ? rt_strerror(d->err) : "HTTP error", desc ? ": " : "", desc ? desc : "");
        o->ack_err = d->err ? d->err : -EIO;
        o->ack_permanent = !d->err && d->status >= 400 && d->status < 500 && d->status != 429;
        out_pop(a, cx, o);
    }
    cJSON_Delete(j);
    out_pump(a, cx);
}

typedef struct find_send_arg {
    uint64_t seq;
    tg_out *found;
} find_send_arg;

static void find_send(void *item, void *arg)
{
    find_send_arg *f = arg;
    tg_out *o = item;
    if (o->req_seq && o->req_seq == f->seq)
        f->found = o;
}

/* ---- typing ---- */

static bool same(const char *x, const char *y)
{
    return x == y || (x && y && strcmp(x, y) == 0);
}

static void send_typing(tg_adapter *a, rt_ctx *cx, const tg_typing *t)
{
    cJSON *b = cJSON_CreateObject();
    add_id(b, "chat_id", t->chat_id);
    add_id(b, "message_thread_id", t->thread_id);
    cJSON_AddStringToObject(b, "action", "typing");
    call_json(a, cx, R_TYPING, "sendChatAction", b, a->o.http_timeout_ms);
}

static void typing_off(tg_adapter *a, const gw_target *to)
{
    for (size_t i = 0; i < a->ntyping; i++)
        if (same(a->typing[i].chat_id, to->chat_id) &&
            same(a->typing[i].thread_id, to->thread_id)) {
            rt_free(a->typing[i].chat_id);
            rt_free(a->typing[i].thread_id);
            a->typing[i] = a->typing[--a->ntyping];
            return;
        }
}

static void on_typing(tg_adapter *a, rt_ctx *cx, gw_out_typing *t)
{
    if (!t->to.chat_id)
        return;
    typing_off(a, &t->to);
    if (!t->on || a->ntyping >= TG_TYPING_MAX)
        return;
    tg_typing *ty = &a->typing[a->ntyping++];
    ty->chat_id = rt_xstrdup(t->to.chat_id);
    ty->thread_id = t->to.thread_id ? rt_xstrdup(t->to.thread_id) : NULL;
    if (now_ns(cx) >= a->rl_until_ns)
        send_typing(a, cx, ty);
    if (!ak_timer_armed(&a->tm, T_TYPING))
        ak_timer_arm(cx, a->self, &a->tm, T_TYPING, a->o.typing_ms);
}

static void on_typing_timer(tg_adapter *a, rt_ctx *cx)
{
    if (!a->ntyping)
        return;
    if (now_ns(cx) >= a->rl_until_ns)
        for (size_t i = 0; i < a->ntyping; i++)
            send_typing(a, cx, &a->typing[i]);
    ak_timer_arm(cx, a->self, &a->tm, T_TYPING, a->o.typing_ms);
}

/* ================================================================ dispatch */

static void on_done(tg_adapter *a, rt_ctx *cx, rt_io_msg_http_done *d)
{
    int kind = (int)(d->tag >> 56);
    uint64_t s = d->tag & ((1ULL << 56) - 1);
    if (kind == R_SEND) { /* one per chat: the item whose request it answers */
        find_send_arg f = {s, NULL};
        if (a->lanes_ready)
            ak_lanes_each(&a->lanes, find_send, &f);
        if (f.found)
            on_send(a, cx, f.found, d);
        return; /* else cancelled: stale */
    }
    if (kind <= 0 || kind >= R_COUNT || kind == R_TYPING || s != a->seq[kind])
        return; /* typing answers do not matter; stale ones are ignored (invariant 4) */
    a->http[kind] = 0;
    switch (kind) {
    case R_ME:
        if (a->phase == PH_ME)
            on_me(a, cx, d);
        break;
    case R_POLL:
        if (a->phase == PH_POLL)
            on_poll(a, cx, d);
        break;
    case R_GETFILE:
        if (a->phase == PH_BATCH && a->cur_ev)
            on_getfile(a, cx, d);
        break;
    case R_DOWNLOAD:
        if (a->phase == PH_BATCH && a->cur_ev)
            on_download(a, cx, d);
        break;
    default: break;
    }
}

static void on_timeout(tg_adapter *a, rt_ctx *cx, rt_msg_timeout *t)
{
    int kind = ak_timer_fired(&a->tm, t); /* 0: re-armed or cancelled since */
    if (!kind)
        return;
    switch (kind) {
    case T_RETRY: on_retry(a, cx); break;
    case T_OUT: out_pump(a, cx); break;
    case T_TYPING: on_typing_timer(a, cx); break;
    default: break;
    }
}

static void behave(rt_ctx *cx, void *state, rt_msg *m)
{
    tg_adapter *a = state;
    a->self = rt_self(cx);
    if (a->phase == PH_FATAL)
        return;
    if (a->phase == PH_STOPPED && m->type != RT_MSG_STOP)
        return;
    switch (m->type) {
    case TG_MSG_START:
        if (a->phase == PH_INIT)
            get_me(a, cx);
        break;
    case RT_IO_MSG_HTTP_DONE: on_done(a, cx, (rt_io_msg_http_done *)m); break;
    case RT_MSG_TIMEOUT: on_timeout(a, cx, (rt_msg_timeout *)m); break;
    case GW_OUT_TEXT: on_out_text(a, cx, (gw_out_text *)m); break;
    case GW_OUT_TYPING: on_typing(a, cx, (gw_out_typing *)m); break;
    case GW_OUT_TURN_END: typing_off(a, &((gw_out_turn_end *)m)->to); break;
    case GW_OUT_DELTA: break; /* whole messages only */
    case RT_MSG_STOP:
        if (a->phase != PH_STOPPED) {
            a->phase = PH_STOPPED;
            shut(a, cx);
            RT_INFO(TG_LOG, "Telegram: disconnected");
        }
        break;
    case RT_MSG_EXIT:
    case RT_MSG_DOWN:
    case RT_MSG_INTERRUPT: break;
    default: RT_WARN_ONCE(TG_LOG, "Telegram: unexpected message type %#x", m->type); break;
    }
}

static void adapter_free(void *state)
{
    tg_adapter *a = state;
    if (a->lanes_ready) /* no acks: the gateway's outbox sends them again when it is back */
        ak_lanes_fini(&a->lanes, out_free_cb, NULL);
    for (size_t i = 0; i < a->ntyping; i++) {
        rt_free(a->typing[i].chat_id);
        rt_free(a->typing[i].thread_id);
    }
    if (a->cur_ev)
        rt_msg_free(&a->cur_ev->hdr);
    tg_update_fini(&a->cur);
    cJSON_Delete(a->batch);
    rt_free(a->api);
    rt_free(a->file_api);
    rt_free(a->state_path);
    rt_free(a->cache_dir);
    rt_free(a->bot_username);
    tg_opts_fini(&a->o);
    rt_free(a);
}

static const rt_actor_type tg_type = {"telegram", behave, adapter_free, 0};

/* ================================================================ start */

static char **strv_dup(char *const *v)
{
    if (!v)
        return NULL;
    size_t n = 0;
    while (v[n])
        n++;
    char **out = rt_xcalloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = rt_xstrdup(v[i]);
    return out;
}

static char *dupn(const char *s)
{
    return s && *s ? rt_xstrdup(s) : NULL;
}

static int fail(char *err, size_t errlen, int rc, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return rc;
}

int tg_start(rt_ctx *cx, const tg_opts *o, rt_ref gateway, rt_ref *out, char *err, size_t errlen)
{
    if (!o || !out || !o->token || !*o->token || !o->hermes_home || !*o->hermes_home)
        return fail(err, errlen, -EINVAL, "Telegram: the bot token and HERMES_HOME are required");
    if (!rt_reactor_of(rt_ctx_runtime(cx)))
        return fail(err, errlen, -EINVAL, "Telegram: the HTTP client is not running");
    tg_adapter *a = rt_xcalloc(1, sizeof(*a));
    a->o = *o;
    a->o.token = rt_xstrdup(o->token);
    a->o.api_base = rt_xstrdup(o->api_base && *o->api_base ? o->api_base : TG_DEFAULT_API);
    a->o.hermes_home = rt_xstrdup(o->hermes_home);
    a->o.home_channel = dupn(o->home_channel);
    a->o.free_chats = strv_dup(o->free_chats);
    a->o.ignored_threads = strv_dup(o->ignored_threads);
    if (a->o.poll_timeout_s <= 0)
        a->o.poll_timeout_s = 30;
    if (a->o.backoff_min_ms <= 0)
        a->o.backoff_min_ms = 1000;
    if (a->o.backoff_max_ms < a->o.backoff_min_ms)
        a->o.backoff_max_ms = a->o.backoff_min_ms > 60000 ? a->o.backoff_min_ms : 60000;
    if (a->o.typing_ms <= 0)
        a->o.typing_ms = 4000;
    if (a->o.http_timeout_ms <= 0)
        a->o.http_timeout_ms = 30000;
    if (!a->o.max_file_bytes)
        a->o.max_file_bytes = 20u << 20;
    a->api = rt_xasprintf("%s/bot%s/", a->o.api_base, a->o.token);
    a->file_api = rt_xasprintf("%s/file/bot%s/", a->o.api_base, a->o.token);
    a->state_path = rt_xasprintf("%s/platforms/telegram/state.json", a->o.hermes_home);
    a->cache_dir = rt_xasprintf("%s/cache/telegram", a->o.hermes_home);
    a->gateway = gateway;
    a->rnd = rt_hash_u64((uint64_t)getpid() ^ (uint64_t)rt_reactor_now_ns() ^ (uintptr_t)a) | 1;
    load_state(a);
    rt_spawn_opts so = {.flags = RT_SPAWN_DETACHED};
    rt_ref ref = rt_spawn(cx, &tg_type, a, &so);
    if (!ref)
        return fail(err, errlen, -ENOMEM, "Telegram: could not start the adapter actor");
    rt_send(cx, ref, rt_msg_new(TG_MSG_START, sizeof(rt_msg)));
    *out = ref;
    return 0;
}
