/*
 * wa_actor — the WhatsApp adapter actor: answers the webhook's requests (handshake,
 * signature check, notifications → GW_MSG_EVENT) and sends replies through the Graph API.
 *
 * Invariants:
 *   1. Everything in wa_actor belongs to the actor (one worker at a time): no locks.
 *   2. One send in flight (the head of the queue); its DONE is recognised by its tag.
 *   3. A webhook request is answered in the same behaviour that received it.
 */
#include "whatsapp.h"

#include "gw.h"
#include "rt_alloc.h"
#include "rt_http.h"
#include "rt_httpd.h"
#include "rt_log.h"
#include "rt_lws.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define WA_LOG     "whatsapp"
#define WA_OUT_MAX 4096
#define WA_TRIES   3

enum { WA_MSG_START = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0E00) };

typedef struct wa_out {
    struct wa_out *next;
    char *to;
    char *text;
    char *context; /* the wamid quoted, or NULL */
    int tries;
} wa_out;

typedef struct wa_actor {
    wa_opts o;
    char *auth; /* "Authorization: Bearer …" */
    char *send_url;
    rt_ref gateway;
    rt_ref self;
    bool announced;
    bool stopped;
    wa_out *out, *out_tail;
    size_t nout;
    uint64_t out_tag; /* tag of the send in flight, 0: none */
    uint64_t out_http;
    uint64_t next_tag;
    uint64_t timer_seq;
    uint64_t timer_id;
} wa_actor;

struct wa_server {
    rt_httpd *h;
    rt_ref ref;
    int port;
};

static rt_ref gateway_of(wa_actor *a, rt_ctx *cx)
{
    return a->gateway ? a->gateway : rt_whereis(cx, GW_NAME);
}

static void reply_text(rt_ctx *cx, uint64_t req, int status, const char *text)
{
    const char *h[] = {"Content-Type: text/plain; charset=utf-8", NULL};
    (void)rt_httpd_reply(cx, req, status, h, text, strlen(text));
}

/* ---------------------------------------------------------------- inbound */

static void on_notification(wa_actor *a, rt_ctx *cx, rt_httpd_msg_request *m)
{
    const char *sig = rt_httpd_header(m, "X-Hub-Signature-256");
    if (!wa_signature_ok(a->o.app_secret, m->body, m->body_len, sig)) {
        RT_WARN(WA_LOG,
                "WhatsApp: webhook POST from %s refused: %s X-Hub-Signature-256 "
                "(is WHATSAPP_APP_SECRET the app secret of this Meta app?)",
                m->peer, sig ? "wrong" : "no");
        reply_text(cx, m->req, 401, "invalid signature\n");
        return;
    }
    wa_inmsg *v = NULL;
    int n = wa_parse_notification(m->body, &v);
    if (n < 0) {
        reply_text(cx, m->req, 400, "invalid JSON\n");
        return;
    }
    reply_text(cx, m->req, 200, "ok\n"); /* Meta redelivers anything not answered 200 */
    rt_ref gw = gateway_of(a, cx);
    for (int i = 0; i < n; i++) {
        gw_msg_event *ev = gw_event_new(WHATSAPP_PLATFORM, "dm", v[i].from, v[i].from, v[i].text);
        ev->src.user_name = v[i].name ? rt_xstrdup(v[i].name) : NULL;
        ev->src.chat_name = v[i].name ? rt_xstrdup(v[i].name) : NULL;
        ev->message_id = rt_xstrdup(v[i].id);
        ev->reply.reply_to = rt_xstrdup(v[i].id);
        ev->adapter = a->self;
        if (!gw || !rt_send(cx, gw, &ev->hdr))
            RT_WARN(WA_LOG, "WhatsApp: no gateway; message %s dropped", v[i].id);
    }
    wa_inmsgs_free(v, n);
}

static void on_request(wa_actor *a, rt_ctx *cx, rt_httpd_msg_request *m)
{
    if (strcmp(m->path, a->o.path) != 0) {
        reply_text(cx, m->req, 404, "not found\n");
        return;
    }
    if (strcmp(m->method, "GET") == 0) {
        char *ch = wa_handshake(m->query, a->o.verify_token);
        if (!ch) {
            RT_WARN(WA_LOG, "WhatsApp: webhook verification refused (hub.verify_token does not "
                            "match WHATSAPP_VERIFY_TOKEN)");
            reply_text(cx, m->req, 403, "forbidden\n");
            return;
        }
        RT_INFO(WA_LOG, "WhatsApp: webhook verified by Meta");
        reply_text(cx, m->req, 200, ch);
        rt_free(ch);
        return;
    }
    if (strcmp(m->method, "POST") == 0) {
        on_notification(a, cx, m);
        return;
    }
    const char *h[] = {"Allow: GET, POST", NULL};
    (void)rt_httpd_reply(cx, m->req, 405, h, "", 0);
}

/* ---------------------------------------------------------------- outbound */

static void out_free(wa_out *o)
{
    rt_free(o->to);
    rt_free(o->text);
    rt_free(o->context);
    rt_free(o);
}

static void out_pop(wa_actor *a)
{
    wa_out *o = a->out;
    if (!o)
        return;
    a->out = o->next;
    if (!a->out)
        a->out_tail = NULL;
    a->nout--;
    out_free(o);
}

static void pump(wa_actor *a, rt_ctx *cx)
{
    if (a->out_tag || a->timer_id || !a->out || a->stopped)
        return;
    wa_out *o = a->out;
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "messaging_product", "whatsapp");
    cJSON_AddStringToObject(b, "recipient_type", "individual");
    cJSON_AddStringToObject(b, "to", o->to);
    cJSON_AddStringToObject(b, "type", "text");
    cJSON *t = cJSON_AddObjectToObject(b, "text");
    cJSON_AddBoolToObject(t, "preview_url", false);
    cJSON_AddStringToObject(t, "body", o->text);
    if (o->context)
        cJSON_AddStringToObject(cJSON_AddObjectToObject(b, "context"), "message_id", o->context);
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    const char *hdrs[] = {a->auth, "Content-Type: application/json", NULL};
    a->out_tag = ++a->next_tag;
    rt_http_request hr = {.method = "POST",
                          .url = a->send_url,
                          .headers = hdrs,
                          .body = body,
                          .body_len = strlen(body),
                          .timeout_ms = 30000,
                          .max_body = 1u << 20,
                          .reply_to = a->self,
                          .tag = a->out_tag};
    a->out_http = rt_http_submit(cx, &hr);
    cJSON_free(body);
}

static void on_done(wa_actor *a, rt_ctx *cx, rt_io_msg_http_done *d)
{
    if (d->tag != a->out_tag || !a->out)
        return;
    a->out_tag = 0;
    a->out_http = 0;
    wa_out *o = a->out;
    if (!d->err && d->status >= 200 && d->status < 300) {
        out_pop(a);
        pump(a, cx);
        return;
    }
    bool retry = (d->err && d->err != -ETIMEDOUT) || d->status == 429 || d->status >= 500;
    if (retry && ++o->tries <= WA_TRIES) {
        int64_t ms =
            d->retry_after_s > 0 ? d->retry_after_s * 1000 : a->o.backoff_ms << (o->tries - 1);
        RT_WARN(WA_LOG, "WhatsApp: sending failed (%s); retrying in %.1fs",
                d->err             ? rt_strerror(d->err)
                : d->status == 429 ? "429 rate limited"
                                   : "server error",
                (double)ms / 1e3);
        a->timer_id = rt_send_after(cx, a->self, rt_timeout_new(++a->timer_seq), ms);
        return;
    }
    char detail[200] = "";
    if (d->body)
        snprintf(detail, sizeof(detail), ": %.180s", d->body);
    RT_WARN(WA_LOG, "WhatsApp: a message to %s could not be sent (%s%s)", o->to,
            d->err ? rt_strerror(d->err) : "HTTP error", detail);
    if (d->status == 401)
        RT_ERROR(WA_LOG, "WhatsApp: the Graph API refused WHATSAPP_ACCESS_TOKEN (401); it may "
                         "have expired — create a permanent System User token");
    out_pop(a);
    pump(a, cx);
}

static void on_out_text(wa_actor *a, rt_ctx *cx, gw_out_text *t)
{
    if (!t->text || !t->to.chat_id || !*t->text)
        return;
    char **parts = gw_chunk(t->text, WA_MAX_MESSAGE);
    for (size_t i = 0; parts && parts[i]; i++) {
        if (a->nout >= WA_OUT_MAX) {
            RT_WARN(WA_LOG, "WhatsApp: too many messages waiting; one dropped");
            break;
        }
        wa_out *o = rt_xcalloc(1, sizeof(*o));
        o->to = rt_xstrdup(t->to.chat_id);
        /* WhatsApp's bold is *x*: models write **x** */
        char *s = rt_xstrdup(parts[i]);
        char *w = s;
        for (const char *r = s; *r; r++) {
            if (r[0] == '*' && r[1] == '*')
                r++;
            *w++ = *r;
        }
        *w = '\0';
        o->text = s;
        if (i == 0 && t->part <= 1 && t->to.reply_to)
            o->context = rt_xstrdup(t->to.reply_to);
        if (a->out_tail)
            a->out_tail->next = o;
        else
            a->out = o;
        a->out_tail = o;
        a->nout++;
    }
    gw_chunks_free(parts);
    pump(a, cx);
}

/* ---------------------------------------------------------------- dispatch */

static void behave(rt_ctx *cx, void *state, rt_msg *m)
{
    wa_actor *a = state;
    a->self = rt_self(cx);
    if (a->stopped && m->type != RT_HTTPD_MSG_REQUEST)
        return;
    switch (m->type) {
    case WA_MSG_START: {
        rt_ref gw = gateway_of(a, cx);
        gw_caps caps = {.max_message = WA_MAX_MESSAGE, .markdown = false, .progress = true};
        if (gw) {
            rt_send(cx, gw,
                    gw_adapter_up_new(WHATSAPP_PLATFORM, a->self, &caps, a->o.home_channel));
            a->announced = true;
        }
        break;
    }
    case RT_HTTPD_MSG_REQUEST:
        if (a->stopped)
            reply_text(cx, ((rt_httpd_msg_request *)m)->req, 503, "stopping\n");
        else
            on_request(a, cx, (rt_httpd_msg_request *)m);
        break;
    case RT_IO_MSG_HTTP_DONE: on_done(a, cx, (rt_io_msg_http_done *)m); break;
    case RT_MSG_TIMEOUT:
        if (((rt_msg_timeout *)m)->tag == a->timer_seq) {
            a->timer_id = 0;
            pump(a, cx);
        }
        break;
    case GW_OUT_TEXT: on_out_text(a, cx, (gw_out_text *)m); break;
    case GW_OUT_DELTA:
    case GW_OUT_TYPING:
    case GW_OUT_TURN_END:
    case RT_HTTPD_MSG_GONE: break;
    case RT_MSG_STOP:
        a->stopped = true;
        if (a->out_http)
            rt_http_cancel(cx, a->out_http);
        if (a->timer_id)
            (void)rt_timer_cancel(cx, a->timer_id);
        if (a->announced) {
            rt_ref gw = gateway_of(a, cx);
            if (gw)
                rt_send(cx, gw, gw_adapter_down_new(WHATSAPP_PLATFORM, a->self));
        }
        break;
    default: break;
    }
}

static void actor_free(void *state)
{
    wa_actor *a = state;
    while (a->out)
        out_pop(a);
    rt_free(a->auth);
    rt_free(a->send_url);
    wa_opts_fini(&a->o);
    rt_free(a);
}

static const rt_actor_type wa_type = {"whatsapp", behave, actor_free, 0};

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

int wa_start(rt_ctx *cx, rt_lws *lws, const wa_opts *o, rt_ref gateway, wa_server **out, char *err,
             size_t errlen)
{
    if (!lws || !o || !o->access_token || !o->phone_number_id || !o->app_secret ||
        !o->verify_token || !o->path || !out) {
        snprintf(err, errlen, "WhatsApp: incomplete settings or no HTTP service");
        return -EINVAL;
    }
    wa_actor *a = rt_xcalloc(1, sizeof(*a));
    a->o.access_token = dupn(o->access_token);
    a->o.phone_number_id = dupn(o->phone_number_id);
    a->o.app_secret = dupn(o->app_secret);
    a->o.verify_token = dupn(o->verify_token);
    a->o.graph_base = dupn(o->graph_base ? o->graph_base : WA_DEFAULT_GRAPH);
    a->o.host = dupn(o->host ? o->host : "127.0.0.1");
    a->o.path = dupn(o->path);
    a->o.home_channel = dupn(o->home_channel);
    a->o.port = o->port;
    a->o.backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 2000;
    a->auth = rt_xasprintf("Authorization: Bearer %s", o->access_token);
    a->send_url = rt_xasprintf("%s/%s/messages", a->o.graph_base, a->o.phone_number_id);
    a->gateway = gateway;
    char host[64];
    snprintf(host, sizeof(host), "%s", a->o.host);
    rt_runtime *rt = rt_lws_runtime(lws);
    rt_ref ref = rt_spawn(cx, &wa_type, a, NULL);
    if (!ref) {
        snprintf(err, errlen, "WhatsApp: could not start the adapter actor");
        return -ENOMEM;
    }
    rt_httpd_route route = {"/", ref};
    rt_httpd_opts ho = {
        .host = host, .port = o->port, .routes = &route, .nroutes = 1, .max_body = 1u << 20};
    int rc = 0;
    rt_httpd *h = rt_httpd_start(rt, &ho, &rc);
    if (!h) {
        snprintf(err, errlen, "WhatsApp: cannot listen for the webhook on %s:%d: %s", host, o->port,
                 rt_strerror(rc));
        rt_stop(cx, ref, RT_EXIT_STOPPED);
        return rc ? rc : -EIO;
    }
    wa_server *s = rt_xcalloc(1, sizeof(*s));
    s->h = h;
    s->ref = ref;
    s->port = rt_httpd_port(h);
    rt_send(cx, ref, rt_msg_new(WA_MSG_START, sizeof(rt_msg)));
    *out = s;
    return 0;
}

int wa_port(const wa_server *s)
{
    return s ? s->port : 0;
}

void wa_stop(rt_ctx *cx, wa_server *s, int64_t grace_ms)
{
    if (!s)
        return;
    rt_httpd_stop(s->h, grace_ms > 0 && grace_ms < 5000 ? grace_ms : 1000);
    rt_stop(cx, s->ref, RT_EXIT_STOPPED);
    rt_free(s);
}
