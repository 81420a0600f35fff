/*
 * api_turn — a chat completion's way through the API server actor: the event for the
 * gateway, the stream or the answer built from what the gateway sends back, client
 * disconnects and timers. The rules are numbered in api_server.c.
 */
#include "api_int.h"

#include "rt_alloc.h"
#include "rt_httpd.h"
#include "rt_log.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define LOGS        "api_server"
#define DELTAS_MAX  ((size_t)16 << 20)
#define TIMER_GRACE (1ULL << 63) /* timeout tags: grace timers; else keepalive */

/* ============================================================ requests */

static api_req *req_of(api_state *s, uint64_t id)
{
    return id ? rt_map_get(&s->reqs, id) : NULL;
}

void api__free_req(rt_ctx *cx, api_state *s, api_req *r)
{
    rt_map_del(&s->reqs, r->id);
    if (r->http)
        rt_map_del(&s->by_http, r->http);
    if (r->timer && cx)
        rt_timer_cancel(cx, r->timer);
    s->inflight -= 1 + r->nwaiters;
    while (r->waiters) {
        api_waiter *w = r->waiters;
        r->waiters = w->next;
        rt_free(w->origin);
        rt_free(w);
    }
    rt_free(r->origin);
    rt_free(r->session_id);
    rt_free(r->model);
    rt_buf_fini(&r->deltas);
    rt_free(r->final);
    rt_free(r->error);
    rt_free(r->idem_key);
    rt_free(r);
}

static void arm(rt_ctx *cx, api_req *r, uint64_t tag, int64_t ms)
{
    if (r->timer)
        rt_timer_cancel(cx, r->timer);
    r->timer = rt_send_after(cx, rt_self(cx), rt_timeout_new(tag), ms > 0 ? ms : 1);
}

static void stream_out(rt_ctx *cx, api_state *s, api_req *r, char *frame)
{
    if (r->http)
        (void)rt_httpd_stream_write(cx, r->http, frame, strlen(frame)); /* a gone client
                                                                          is dropped */
    rt_free(frame);
    r->last_out_ns = rt_now_ns(s->rt);
}

static void stream_content(rt_ctx *cx, api_state *s, api_req *r, const char *text)
{
    stream_out(cx, s, r, api__chunk_frame(r->cid, r->created, r->model, NULL, text, false, 0, 0));
    r->streamed = true;
}

/* Withdraw a request at the gateway (rule 2). */
static void send_cancel(rt_ctx *cx, api_state *s, api_req *r)
{
    gw_target to = {.chat_id = r->session_id, .request = r->id};
    rt_msg *m = gw_cancel_new(API_SERVER_PLATFORM, &to, r->session_id, rt_self(cx));
    rt_ref gw = rt_whereis(cx, GW_NAME);
    if (!gw) {
        rt_msg_free(m);
        RT_WARN(LOGS, "no gateway to cancel request=%llu", (unsigned long long)r->id);
    } else if (!rt_send(cx, gw, m))
        RT_WARN(LOGS, "no gateway to cancel request=%llu", (unsigned long long)r->id);
    r->cancelled = true;
    arm(cx, r, TIMER_GRACE | r->id, s->cfg.cancel_grace_ms);
}

/* ============================================================ the gateway */

rt_ref api__announce(rt_ctx *cx, api_state *s)
{
    rt_ref gw = rt_whereis(cx, GW_NAME);
    if (gw && gw != s->gateway) {
        gw_caps caps = {
            .max_message = 0, .streams = true, .markdown = true, .progress = true, .api = true};
        if (rt_send(cx, gw, gw_adapter_up_new(API_SERVER_PLATFORM, rt_self(cx), &caps, NULL)))
            s->gateway = gw;
    }
    return gw;
}

/* ============================================================ the chat completion */

typedef struct chat_in {
    const rt_httpd_msg_request *m;
    const char *origin;
    const char *sid_header; /* trimmed X-Hermes-Session-Id, "" when none */
    const char *idem_key;   /* trimmed Idempotency-Key, or NULL */
} chat_in;

/* The event for the gateway; takes system and history out of c. */
static gw_msg_event *event_for(rt_ctx *cx, api_req *r, api_chat *c, bool explicit_sid)
{
    gw_msg_event *e = gw_event_new(API_SERVER_PLATFORM, "dm", r->session_id, "api", c->text);
    e->reply.request = r->id;
    e->session_id = rt_xstrdup(r->session_id);
    e->message_id = rt_xstrdup(r->cid);
    e->internal = true; /* the key (or loopback without one) authenticated it */
    e->adapter = rt_self(cx);
    if (c->system && c->system[0]) {
        e->ephemeral = c->system;
        c->system = NULL;
    }
    if (!explicit_sid) { /* with the header the gateway loads the session's own history */
        e->history = c->history;
        c->history = NULL;
    }
    return e;
}

static void begin_stream(rt_ctx *cx, api_state *s, api_req *r)
{
    api_hdrs h = {0};
    api__hdrs_add(&h, "Content-Type: text/event-stream");
    api__hdrs_add(&h, "Cache-Control: no-cache");
    api__hdrs_add(&h, "X-Accel-Buffering: no");
    api__security_headers(&h);
    api__cors_headers(&s->cfg, r->origin, &h);
    api__hdrs_add(&h, "X-Hermes-Session-Id: %s", r->session_id);
    int rc = rt_httpd_stream_begin(cx, r->http, 200, api__hdrs_list(&h));
    api__hdrs_fini(&h);
    if (rc)
        RT_WARN(LOGS, "stream start failed err=%s", rt_strerror(rc));
    stream_out(cx, s, r,
               api__chunk_frame(r->cid, r->created, r->model, "assistant", NULL, false, 0, 0));
    arm(cx, r, r->id, s->cfg.keepalive_ms);
}

/* Join a running non-streamed request with the same key and fingerprint. */
static bool join_inflight(api_state *s, const chat_in *in, const api_chat *c)
{
    for (size_t i = 0; i < s->reqs.cap; i++) {
        api_req *r = s->reqs.keys[i] ? s->reqs.vals[i] : NULL;
        if (!r || !r->idem_key || r->cancelled || strcmp(r->idem_key, in->idem_key) ||
            memcmp(r->fp, c->fp, API__DIGEST))
            continue;
        api_waiter *w = rt_xcalloc(1, sizeof(*w));
        w->http = in->m->req;
        w->origin = in->origin ? rt_xstrdup(in->origin) : NULL;
        w->next = r->waiters;
        r->waiters = w;
        r->nwaiters++;
        s->inflight++;
        return true;
    }
    return false;
}

static api_req *new_req(api_state *s, const chat_in *in, const api_chat *c, const char *sid)
{
    api_req *r = rt_xcalloc(1, sizeof(*r));
    r->id = ++s->next_id;
    r->http = in->m->req;
    r->stream = c->stream;
    r->origin = in->origin ? rt_xstrdup(in->origin) : NULL;
    r->session_id = rt_xstrdup(sid);
    api__completion_id(r->cid, sizeof(r->cid));
    r->model = rt_xstrdup(c->model ? c->model : s->cfg.model);
    r->created = (int64_t)time(NULL);
    rt_buf_init(&r->deltas, DELTAS_MAX);
    if (!c->stream && in->idem_key) {
        r->idem_key = rt_xstrdup(in->idem_key);
        memcpy(r->fp, c->fp, API__DIGEST);
    }
    rt_map_put(&s->reqs, r->id, r);
    rt_map_put(&s->by_http, r->http, r);
    s->inflight++;
    return r;
}

/* After parsing: the cache, a running twin, or a new turn at the gateway. */
static void start_chat(rt_ctx *cx, api_state *s, const chat_in *in, api_chat *c)
{
    char sid[API__SID_MAX + 1];
    bool explicit_sid = in->sid_header[0] != '\0';
    if (explicit_sid)
        rt_strlcpy(sid, in->sid_header, sizeof(sid));
    else
        api__derive_session_id(c->system, c->first_user, sid, sizeof(sid));
    if (!c->stream && in->idem_key) {
        const char *body, *csid;
        if (api__idem_get(&s->idem, in->idem_key, c->fp, rt_now_ns(s->rt), &body, &csid)) {
            api__reply(cx, s, in->m->req, in->origin, 200, body, csid, NULL);
            return;
        }
        if (join_inflight(s, in, c))
            return;
    }
    rt_ref gw = api__announce(cx, s);
    if (!gw) {
        api__reply_error(cx, s, in->m->req, in->origin, 503, "The gateway is not running",
                         "server_error", "gateway_unavailable", NULL);
        return;
    }
    api_req *r = new_req(s, in, c, sid);
    RT_DEBUG(LOGS, "request=%llu stream=%d session=%s", (unsigned long long)r->id, r->stream,
             r->session_id);
    if (r->stream)
        begin_stream(cx, s, r);
    if (!rt_send(cx, gw, &event_for(cx, r, c, explicit_sid)->hdr)) {
        if (r->stream) {
            (void)rt_httpd_stream_end(cx, r->http);
        } else {
            api__reply_error(cx, s, r->http, r->origin, 503, "The gateway is not running",
                             "server_error", "gateway_unavailable", NULL);
        }
        api__free_req(cx, s, r);
    }
}

static char *trimmed(const char *v)
{
    if (!v)
        return NULL;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return rt_xstrndup(v, n);
}

/* Checks that need no parsing: slots, session header, idempotency key. 0 or answered. */
static int chat_precheck(rt_ctx *cx, api_state *s, const chat_in *in)
{
    uint64_t http = in->m->req;
    if (s->inflight >= s->cfg.max_inflight) {
        char msg[128];
        snprintf(msg, sizeof(msg), "Too many requests in flight (limit %zu); retry later",
                 s->cfg.max_inflight);
        api__reply_error(cx, s, http, in->origin, 429, msg, "rate_limit_error",
                         "rate_limit_exceeded", "Retry-After: 1");
        return -1;
    }
    if (in->sid_header[0] && !s->cfg.has_key) {
        RT_WARN(LOGS, "X-Hermes-Session-Id rejected: no API key configured");
        api__reply_error(cx, s, http, in->origin, 403,
                         "Session continuation requires API key authentication. Configure "
                         "API_SERVER_KEY to enable this feature.",
                         NULL, NULL, NULL);
        return -1;
    }
    if (in->sid_header[0] && !api__session_id_valid(in->sid_header)) {
        api__reply_error(cx, s, http, in->origin, 400, "Invalid session ID", NULL, NULL, NULL);
        return -1;
    }
    if (in->idem_key && strlen(in->idem_key) > API__IDEM_KEY_MAX) {
        api__reply_error(cx, s, http, in->origin, 400, "Idempotency-Key is too long (256 at most)",
                         NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

void api__on_chat(rt_ctx *cx, api_state *s, const rt_httpd_msg_request *m, const char *origin)
{
    char *sid = trimmed(rt_httpd_header(m, "X-Hermes-Session-Id"));
    char *idem = trimmed(rt_httpd_header(m, "Idempotency-Key"));
    if (idem && !idem[0]) {
        rt_free(idem);
        idem = NULL;
    }
    chat_in in = {.m = m, .origin = origin, .sid_header = sid ? sid : "", .idem_key = idem};
    if (chat_precheck(cx, s, &in) == 0) {
        api_chat c;
        char *errjson = NULL;
        int st = api__chat_parse(m->body, m->body_len, idem ? in.sid_header : NULL, &c, &errjson);
        if (st) {
            api__reply(cx, s, m->req, origin, st, errjson, NULL, NULL);
            rt_free(errjson);
        } else {
            start_chat(cx, s, &in, &c);
            api__chat_fini(&c);
        }
    }
    rt_free(sid);
    rt_free(idem);
}

/* ============================================================ the gateway's answers */

void api__on_delta(rt_ctx *cx, api_state *s, gw_out_text *t)
{
    api_req *r = req_of(s, t->to.request);
    if (!r || r->cancelled || !t->text)
        return;
    if (r->stream)
        stream_content(cx, s, r, t->text);
    else
        (void)rt_buf_append_str(&r->deltas, t->text); /* past DELTAS_MAX the rest is dropped */
}

static void keep_text(char **dst, const char *text)
{
    if (!*dst) {
        *dst = rt_xstrdup(text);
    } else { /* a reply in several parts */
        char *j = rt_xasprintf("%s%s", *dst, text);
        rt_free(*dst);
        *dst = j;
    }
}

void api__on_text(rt_ctx *cx, api_state *s, gw_out_text *t)
{
    api_req *r = req_of(s, t->to.request);
    if (!r || r->cancelled || !t->text)
        return;
    switch (t->kind) {
    case GW_TEXT_REPLY:
        if (!r->stream)
            keep_text(&r->final, t->text);
        else if (!r->streamed) /* rule 3: a gateway that did not stream */
            stream_content(cx, s, r, t->text);
        break;
    case GW_TEXT_PROGRESS:
        if (r->stream && t->tool && t->tool[0] && t->tool[0] != '_')
            stream_out(cx, s, r, api__progress_frame(t->tool, t->emoji, t->label));
        break;
    case GW_TEXT_ERROR:
        rt_free(r->error);
        r->error = rt_xstrdup(t->text);
        if (r->stream && !r->streamed)
            stream_content(cx, s, r, t->text);
        break;
    default: break; /* notices and questions have no place in a completion */
    }
}

static void finish_stream(rt_ctx *cx, api_state *s, api_req *r, const gw_out_turn_end *e)
{
    stream_out(cx, s, r,
               api__chunk_frame(r->cid, r->created, r->model, NULL, NULL, true, e->prompt_tokens,
                                e->completion_tokens));
    if (r->http) {
        (void)rt_httpd_stream_write(cx, r->http, "data: [DONE]\n\n", 14);
        (void)rt_httpd_stream_end(cx, r->http);
    }
}

static void finish_plain(rt_ctx *cx, api_state *s, api_req *r, const gw_out_turn_end *e)
{
    const char *content = r->final ? r->final : r->deltas.len ? r->deltas.data : NULL;
    const char *sid = e->session_id && e->session_id[0] ? e->session_id : r->session_id;
    char *json;
    int status = 200;
    if (!content && e->outcome == GW_OUTCOME_FAILURE) {
        status = 500;
        json = api__error_json(r->error ? r->error : "Internal server error: the agent failed",
                               "server_error", NULL, NULL);
    } else if (!content && e->outcome == GW_OUTCOME_CANCELLED) {
        status = 503;
        json = api__error_json("The request was cancelled before it completed", "server_error",
                               NULL, "cancelled");
    } else {
        json = api__completion_json(r->cid, r->created, r->model,
                                    content    ? content
                                    : r->error ? r->error
                                               : "",
                                    e->prompt_tokens, e->completion_tokens);
    }
    /* cached before anyone hears the answer, so a retry can never miss it */
    if (status == 200 && r->idem_key)
        api__idem_put(&s->idem, r->idem_key, r->fp, rt_now_ns(s->rt), json, sid);
    if (r->http)
        api__reply(cx, s, r->http, r->origin, status, json, status == 200 ? sid : NULL, NULL);
    for (api_waiter *w = r->waiters; w; w = w->next)
        api__reply(cx, s, w->http, w->origin, status, json, status == 200 ? sid : NULL, NULL);
    rt_free(json);
}

void api__on_turn_end(rt_ctx *cx, api_state *s, gw_out_turn_end *e)
{
    api_req *r = req_of(s, e->to.request);
    if (!r)
        return;
    RT_DEBUG(LOGS, "request=%llu ended outcome=%d", (unsigned long long)r->id, e->outcome);
    if (!r->cancelled) {
        if (r->stream)
            finish_stream(cx, s, r, e);
        else
            finish_plain(cx, s, r, e);
    }
    api__free_req(cx, s, r);
}

/* ============================================================ clients and timers */

void api__on_gone(rt_ctx *cx, api_state *s, rt_httpd_msg_gone *g)
{
    api_req *r = rt_map_get(&s->by_http, g->req);
    if (!r)
        return; /* a waiter (answered with its twin, the late reply is dropped) */
    rt_map_del(&s->by_http, g->req);
    r->http = 0;
    RT_DEBUG(LOGS, "client left request=%llu err=%d", (unsigned long long)r->id, g->err);
    if (!r->stream && (r->idem_key || r->waiters))
        return; /* rule 2: the answer is still wanted */
    if (!r->cancelled)
        send_cancel(cx, s, r);
}

void api__on_timeout(rt_ctx *cx, api_state *s, rt_msg_timeout *t)
{
    api_req *r = req_of(s, t->tag & ~TIMER_GRACE);
    bool grace = (t->tag & TIMER_GRACE) != 0;
    if (!r || grace != r->cancelled)
        return; /* a keep-alive that fired as the request was cancelled: r->timer is not it */
    r->timer = 0;
    if (grace) {
        RT_WARN(LOGS, "no turn end for cancelled request=%llu; slot freed",
                (unsigned long long)r->id);
        api__free_req(cx, s, r);
        return;
    }
    if (!r->stream || !r->http)
        return;
    int64_t ka_ns = s->cfg.keepalive_ms * 1000000;
    int64_t idle = rt_now_ns(s->rt) - r->last_out_ns;
    if (idle >= ka_ns) {
        stream_out(cx, s, r, rt_xstrdup(": keepalive\n\n"));
        idle = 0;
    }
    arm(cx, r, r->id, (ka_ns - idle + 999999) / 1000000);
}

void api__on_stop(rt_ctx *cx, api_state *s)
{
    for (size_t i = 0; i < s->reqs.cap; i++)
        if (s->reqs.keys[i]) {
            api_req *r = s->reqs.vals[i];
            if (!r->cancelled)
                send_cancel(cx, s, r);
        }
}
