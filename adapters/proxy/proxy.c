/*
 * proxy — the proxy session actor. See proxy.h for the contract.
 *
 * States: idle, or one turn in flight (busy) with one rt_http request whose messages carry
 * the turn number as their tag. Rules the code cites:
 *
 *   1. Exactly one AG_MSG_DONE per turn. A turn ends on the request's DONE, or at once when
 *      it is interrupted (the request is cancelled; its late messages no longer match the
 *      turn and are ignored).
 *   2. Inputs that arrive during a turn are kept in order and answered together by one
 *      follow-up turn, started by a message to ourselves so that inputs already queued
 *      behind the one that interrupted the turn join it (as ag_session does).
 *   3. Nothing of the conversation is kept here: the host has it under the session id.
 */
#include "proxy.h"

#include "ag_session.h"
#include "hm_config.h"
#include "llm_wire.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_http.h"
#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define LOGS         "proxy"
#define TEXT_MAX     ((size_t)16 << 20) /* the answer kept for AG_MSG_DONE */
#define EVENT_MAX    ((size_t)4 << 20)  /* one SSE event */
#define ERR_CHARS    300                /* characters of an error body shown */
#define NO_RESPONSE  "(No response from remote agent)"
#define REMOTE_MODEL "hermes-agent"

enum { PX_MSG_FOLLOW_UP = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0B01) };

typedef struct px_pending {
    char *text;
    char *sender;
    rt_ref sink;
    uint64_t input_id;
    struct px_pending *next;
} px_pending;

typedef struct proxy {
    /* immutable after spawn */
    char *endpoint;   /* <url>/v1/chat/completions */
    char *auth;       /* "Authorization: Bearer <key>", or NULL */
    char *sid_header; /* "X-Hermes-Session-Id: <id>" */
    char *session_id;
    char *ca_file;
    int64_t idle_ms, connect_ms;
    /* changes with AG_MSG_EPHEMERAL */
    char *context;
    /* the turn (rule 1) */
    bool busy;
    uint64_t turn;
    uint64_t http; /* the request in flight */
    rt_ref sink;
    uint64_t input_id;
    int status;  /* HTTP status from HEAD, 0 before */
    rt_buf text; /* content so far */
    int64_t prompt_tokens, completion_tokens;
    px_pending *pending, **tail; /* rule 2 */
} proxy;

/* ============================================================ sink messages */

static void drop_delta(rt_msg *m)
{
    rt_free(((ag_msg_delta *)m)->text);
}

static void drop_progress(rt_msg *m)
{
    rt_free(((ag_msg_progress *)m)->tool);
    rt_free(((ag_msg_progress *)m)->preview);
}

static void drop_done(rt_msg *m)
{
    ag_msg_done *d = (ag_msg_done *)m;
    rt_free(d->text);
    rt_free(d->errmsg);
    rt_free(d->session_id);
}

static void drop_control_reply(rt_msg *m)
{
    rt_free(((ag_msg_control_reply *)m)->text);
    cJSON_Delete(((ag_msg_control_reply *)m)->info);
}

static void to_sink(rt_ctx *cx, proxy *p, rt_msg *m)
{
    if (p->sink)
        rt_send(cx, p->sink, m);
    else
        rt_msg_free(m);
}

/* Takes text and errmsg. */
static void send_done(rt_ctx *cx, proxy *p, rt_ref sink, uint64_t input_id, char *text, int err,
                      char *errmsg, bool interrupted, bool completed)
{
    ag_msg_done *d = RT_MSG_NEW(ag_msg_done, AG_MSG_DONE);
    d->turn = p->turn;
    d->input_id = input_id;
    d->text = text;
    d->err = err;
    d->errmsg = errmsg;
    d->interrupted = interrupted;
    d->completed = completed;
    d->api_calls = 0; /* the host's calls; it does not say */
    d->prompt_tokens = p->prompt_tokens;
    d->completion_tokens = p->completion_tokens;
    d->session_id = rt_xstrdup(p->session_id);
    d->hdr.drop = drop_done;
    if (sink)
        rt_send(cx, sink, &d->hdr);
    else
        rt_msg_free(&d->hdr);
}

/* ============================================================ turns */

static void free_pending(proxy *p)
{
    while (p->pending) {
        px_pending *q = p->pending;
        p->pending = q->next;
        rt_free(q->text);
        rt_free(q->sender);
        rt_free(q);
    }
    p->tail = &p->pending;
}

/* Everything kept, joined (rule 2); the latest input's sink answers. */
static char *take_pending(proxy *p)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    for (px_pending *q = p->pending; q; q = q->next) {
        if (b.len)
            (void)rt_buf_append(&b, "\n", 1);
        if (q->sender)
            (void)rt_buf_printf(&b, "[%s] ", q->sender);
        (void)rt_buf_append_str(&b, q->text);
        p->sink = q->sink;
        p->input_id = q->input_id;
    }
    free_pending(p);
    return rt_buf_steal(&b, NULL);
}

static char *request_body(const proxy *p, const char *text)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", REMOTE_MODEL);
    cJSON_AddBoolToObject(root, "stream", true);
    cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
    if (p->context && p->context[0]) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "role", "system");
        cJSON_AddStringToObject(s, "content", p->context);
        cJSON_AddItemToArray(msgs, s);
    }
    cJSON *u = cJSON_CreateObject();
    cJSON_AddStringToObject(u, "role", "user");
    cJSON_AddStringToObject(u, "content", text);
    cJSON_AddItemToArray(msgs, u);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    RT_VERIFY(s != NULL);
    char *out = rt_xstrdup(s);
    cJSON_free(s);
    return out;
}

static void begin_turn(rt_ctx *cx, proxy *p)
{
    char *text = take_pending(p);
    char *body = request_body(p, text);
    rt_free(text);
    p->turn++;
    p->busy = true;
    p->status = 0;
    p->prompt_tokens = p->completion_tokens = 0;
    rt_buf_reset(&p->text);
    const char *hdrs[] = {"Content-Type: application/json", p->sid_header, p->auth, NULL};
    rt_http_request rq = {
        .method = "POST",
        .url = p->endpoint,
        .headers = hdrs,
        .body = body,
        .body_len = strlen(body),
        .idle_timeout_ms = p->idle_ms,
        .connect_timeout_ms = p->connect_ms,
        .max_body = EVENT_MAX,
        .mode = RT_HTTP_STREAM_SSE,
        .ca_file = p->ca_file,
        .reply_to = rt_self(cx),
        .tag = p->turn,
    };
    p->http = rt_http_submit(cx, &rq);
    rt_free(body);
    RT_DEBUG(LOGS, "turn=%llu session=%s", (unsigned long long)p->turn, p->session_id);
}

/* End the turn (rule 1). Takes text and errmsg. */
static void end_turn(rt_ctx *cx, proxy *p, char *text, int err, char *errmsg, bool interrupted,
                     bool completed)
{
    send_done(cx, p, p->sink, p->input_id, text, err, errmsg, interrupted, completed);
    p->busy = false;
    p->http = 0;
    rt_buf_reset(&p->text);
    if (p->pending)
        rt_send(cx, rt_self(cx), rt_msg_new(PX_MSG_FOLLOW_UP, sizeof(rt_msg)));
}

static void interrupt_turn(rt_ctx *cx, proxy *p, int code)
{
    if (code == AG_INT_STOP)
        free_pending(p); /* /stop: nothing follows */
    if (!p->busy)
        return;
    rt_http_cancel(cx, p->http); /* the host sees its client leave and stops its agent */
    end_turn(cx, p, NULL, 0, NULL, true, false);
}

static void on_input(rt_ctx *cx, proxy *p, ag_msg_input *in)
{
    if (in->unanswered) {
        /* Nothing to resume here (rule 3): the host answered or will answer on its side. */
        send_done(cx, p, in->sink, in->input_id, NULL, -EALREADY, NULL, false, false);
        return;
    }
    px_pending *q = rt_xcalloc(1, sizeof(*q));
    q->text = in->text ? in->text : rt_xstrdup("");
    q->sender = in->sender;
    in->text = in->sender = NULL;
    q->sink = in->sink;
    q->input_id = in->input_id;
    *p->tail = q;
    p->tail = &q->next;
    if (!p->busy)
        begin_turn(cx, p);
    else if (!in->queue)
        interrupt_turn(cx, p, AG_INT_NEW_MESSAGE);
}

/* ============================================================ the stream */

static bool for_turn(const proxy *p, uint64_t tag)
{
    return p->busy && tag == p->turn;
}

static void on_content(rt_ctx *cx, proxy *p, const cJSON *chunk)
{
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(chunk, "choices");
    const cJSON *c0 = cJSON_IsArray(choices) ? choices->child : NULL;
    const cJSON *delta = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "delta") : NULL;
    const cJSON *content = delta ? cJSON_GetObjectItemCaseSensitive(delta, "content") : NULL;
    if (cJSON_IsString(content) && content->valuestring[0]) {
        (void)rt_buf_append_str(&p->text, content->valuestring); /* past TEXT_MAX: dropped */
        ag_msg_delta *d = RT_MSG_NEW(ag_msg_delta, AG_MSG_DELTA);
        d->turn = p->turn;
        d->kind = LLM_DELTA_CONTENT;
        d->text = rt_xstrdup(content->valuestring);
        d->hdr.drop = drop_delta;
        to_sink(cx, p, &d->hdr);
    }
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(chunk, "usage");
    const cJSON *pt = usage ? cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens") : NULL;
    const cJSON *ct = usage ? cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens") : NULL;
    if (cJSON_IsNumber(pt))
        p->prompt_tokens = (int64_t)pt->valuedouble;
    if (cJSON_IsNumber(ct))
        p->completion_tokens = (int64_t)ct->valuedouble;
}

static void on_progress(rt_ctx *cx, proxy *p, const cJSON *ev)
{
    const cJSON *tool = cJSON_GetObjectItemCaseSensitive(ev, "tool");
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(ev, "label");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(ev, "status");
    if (!cJSON_IsString(tool) || !tool->valuestring[0])
        return;
    if (cJSON_IsString(status) && strcmp(status->valuestring, "running") != 0)
        return; /* later hosts also announce completions: one line per call is enough */
    ag_msg_progress *m = RT_MSG_NEW(ag_msg_progress, AG_MSG_PROGRESS);
    m->turn = p->turn;
    m->tool = rt_xstrdup(tool->valuestring);
    m->preview = rt_xstrdup(cJSON_IsString(label) ? label->valuestring : tool->valuestring);
    m->hdr.drop = drop_progress;
    to_sink(cx, p, &m->hdr);
}

static void on_sse(rt_ctx *cx, proxy *p, rt_io_msg_http_sse *m)
{
    if (!for_turn(p, m->tag) || !m->data)
        return;
    bool progress = m->event && !strcmp(m->event, "hermes.tool.progress");
    if (!progress && m->event && strcmp(m->event, "message") != 0)
        return; /* other custom events */
    if (!progress && !strcmp(m->data, "[DONE]"))
        return; /* the stream ends right after; DONE follows */
    cJSON *j = cJSON_ParseWithLength(m->data, m->data_len);
    if (cJSON_IsObject(j)) {
        if (progress)
            on_progress(cx, p, j);
        else
            on_content(cx, p, j);
    } else {
        RT_LOG_LIMITED(RT_LOG_WARN, LOGS, 60000, "unparsable event from the host");
    }
    cJSON_Delete(j);
}

/* The first n characters (UTF-8 code points) of s. */
static char *first_chars(const char *s, size_t len, size_t n)
{
    size_t i = 0, chars = 0;
    for (; i < len; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80 && chars++ == n)
            break;
    }
    return rt_xstrndup(s, i);
}

static void on_done(rt_ctx *cx, proxy *p, rt_io_msg_http_done *d)
{
    if (!for_turn(p, d->tag))
        return;
    int status = d->status ? d->status : p->status;
    if (status && status != 200) {
        char *head = first_chars(d->body ? d->body : "", d->body ? d->body_len : 0, ERR_CHARS);
        char *msg = rt_xasprintf("⚠️ Proxy error (%d): %s", status, head);
        rt_free(head);
        RT_WARN(LOGS, "host answered status=%d", status);
        end_turn(cx, p, NULL, -EPROTO, msg, false, false);
    } else if (d->err) {
        RT_WARN(LOGS, "request failed err=%s", rt_strerror(d->err));
        if (p->text.len) { /* the partial answer is kept, as the original did */
            end_turn(cx, p, rt_buf_steal(&p->text, NULL), 0, NULL, false, false);
        } else {
            char *msg = rt_xasprintf("⚠️ Proxy connection error: %s",
                                     d->errmsg ? d->errmsg : rt_strerror(d->err));
            end_turn(cx, p, NULL, d->err, msg, false, false);
        }
    } else {
        char *text = p->text.len ? rt_buf_steal(&p->text, NULL) : rt_xstrdup(NO_RESPONSE);
        end_turn(cx, p, text, 0, NULL, false, true);
    }
}

/* ============================================================ the actor */

static void on_control(rt_ctx *cx, ag_msg_control *c)
{
    ag_msg_control_reply *r = RT_MSG_NEW(ag_msg_control_reply, AG_MSG_CONTROL_REPLY);
    r->op = c->op;
    r->tag = c->tag;
    r->err = -ENOTSUP;
    r->text = rt_xstrdup("Not available in proxy mode: the remote host keeps the conversation.");
    r->hdr.drop = drop_control_reply;
    if (c->reply_to)
        rt_send(cx, c->reply_to, &r->hdr);
    else
        rt_msg_free(&r->hdr);
}

static void proxy_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    proxy *p = *(proxy **)state;
    switch (m->type) {
    case AG_MSG_INPUT: on_input(cx, p, (ag_msg_input *)m); break;
    case PX_MSG_FOLLOW_UP:
        if (!p->busy && p->pending)
            begin_turn(cx, p);
        break;
    case RT_IO_MSG_HTTP_HEAD:
        if (for_turn(p, ((rt_io_msg_http_head *)m)->tag))
            p->status = ((rt_io_msg_http_head *)m)->status;
        break;
    case RT_IO_MSG_HTTP_SSE: on_sse(cx, p, (rt_io_msg_http_sse *)m); break;
    case RT_IO_MSG_HTTP_DONE: on_done(cx, p, (rt_io_msg_http_done *)m); break;
    case RT_MSG_INTERRUPT: interrupt_turn(cx, p, ((rt_msg_interrupt *)m)->code); break;
    case RT_MSG_STOP: interrupt_turn(cx, p, AG_INT_SHUTDOWN); break;
    case AG_MSG_EPHEMERAL:
        rt_free(p->context);
        p->context = ((ag_msg_text *)m)->text;
        ((ag_msg_text *)m)->text = NULL;
        break;
    case AG_MSG_CONTROL: on_control(cx, (ag_msg_control *)m); break;
    case AG_MSG_MODEL: /* the host chooses its model */
    case AG_MSG_ANSWER: /* approvals are not relayed to the host */ break;
    default: RT_WARN_ONCE(LOGS, "unexpected message type=%#x", m->type); break;
    }
}

static void proxy_fini(void *state)
{
    proxy *p = *(proxy **)state;
    free_pending(p);
    rt_free(p->endpoint);
    rt_free(p->auth);
    rt_free(p->sid_header);
    rt_free(p->session_id);
    rt_free(p->ca_file);
    rt_free(p->context);
    rt_buf_fini(&p->text);
    rt_free(p);
}

static const rt_actor_type proxy_type = {"proxy", proxy_behave, proxy_fini, sizeof(proxy *)};

/* url without its trailing slashes, or NULL when it is not http(s). */
static char *base_url(const char *url)
{
    if (!url || (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0))
        return NULL;
    size_t n = strlen(url);
    while (n && url[n - 1] == '/')
        n--;
    return rt_xstrndup(url, n);
}

rt_ref proxy_session_spawn(rt_ctx *cx, const proxy_opts *o, const rt_spawn_opts *so)
{
    char *base = o ? base_url(o->url) : NULL;
    if (!base || !o->session_id || !o->session_id[0] || strpbrk(o->session_id, "\r\n")) {
        rt_free(base);
        return 0;
    }
    proxy *p = rt_xcalloc(1, sizeof(*p));
    p->endpoint = rt_xasprintf("%s/v1/chat/completions", base);
    rt_free(base);
    if (o->key && o->key[0])
        p->auth = rt_xasprintf("Authorization: Bearer %s", o->key);
    p->sid_header = rt_xasprintf("X-Hermes-Session-Id: %s", o->session_id);
    p->session_id = rt_xstrdup(o->session_id);
    p->ca_file = o->ca_file ? rt_xstrdup(o->ca_file) : NULL;
    p->context = o->context ? rt_xstrdup(o->context) : NULL;
    p->idle_ms = o->idle_timeout_ms > 0 ? o->idle_timeout_ms : PROXY_IDLE_TIMEOUT_MS;
    p->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 0;
    rt_buf_init(&p->text, TEXT_MAX);
    p->tail = &p->pending;
    return rt_spawn(cx, &proxy_type, &p, so);
}

int proxy_opts_from_config(const hm_config *cfg, proxy_opts *o)
{
    memset(o, 0, sizeof(*o));
    const char *url = hm_config_env_str(cfg, "gateway.proxy_url", NULL);
    const char *key = hm_config_getenv(cfg, "GATEWAY_PROXY_KEY", NULL);
    if (!url || !url[0] || !strcmp(url, "/"))
        return 0;
    o->url = url;
    o->key = key && key[0] ? key : NULL;
    return 1;
}
