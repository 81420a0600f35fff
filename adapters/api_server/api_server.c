/*
 * api_server — the adapter actor, its start and its stop. See api_server.h for the contract.
 *
 * One actor owns every request. A chat completion becomes an api_req, found by its own id
 * (the gw_target.request the gateway echoes) and, while a client waits, by the rt_httpd
 * request id. Rules the code cites:
 *
 *   1. An api_req lives from the event sent to the gateway until its GW_OUT_TURN_END, or,
 *      once cancelled, until that turn end or cancel_grace_ms, whichever comes first. It
 *      counts against max_inflight all that time (with the clients waiting on it through an
 *      Idempotency-Key), so cancelled turns still bound the work a client can cause.
 *   2. A client that goes away (RT_HTTPD_MSG_GONE) cancels its request at the gateway
 *      (GW_MSG_CANCEL), except a non-streamed request with an Idempotency-Key or with other
 *      clients waiting on it: its answer is still wanted (a retry picks it up).
 *   3. Streams: the SSE head and the role chunk go out at once; then content chunks for
 *      GW_OUT_DELTA, hermes.tool.progress events for structured progress (tools starting
 *      with '_' skipped), ": keepalive" after keepalive_ms of silence, and at the turn end
 *      the final chunk (finish_reason "stop", usage) and "data: [DONE]". A final text or an
 *      error text is sent as content only when no delta was (a gateway that did not stream).
 *   4. Non-streamed answers use the final GW_TEXT_REPLY text, else the concatenated deltas,
 *      else the error text; a failed or cancelled turn with none of them answers 500 / 503.
 *   5. Message contents are never logged above TRACE; the key is never logged.
 */
#include "api_server.h"

#include "api_int.h"
#include "rt_alloc.h"
#include "rt_httpd.h"
#include "rt_log.h"
#include "rt_lws.h"
#include "rt_reactor.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOGS               "api_server"
#define STATUS_FILE_MAX    ((size_t)1 << 20)
#define DEFAULT_REQUEST_MS (6LL * 3600 * 1000)
#define JSON_CT            "Content-Type: application/json; charset=utf-8"

enum {
    API_MSG_START = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0A01),  /* rt_msg: announce */
    API_MSG_STATUS = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0A02), /* api_msg_status */
};

/* gateway_state.json, read on the reactor thread. */
typedef struct api_msg_status {
    rt_msg hdr;
    uint64_t http;
    char *origin; /* owned, or NULL */
    char *data;   /* owned file contents, or NULL */
    size_t len;
} api_msg_status;

struct api_server {
    rt_runtime *rt;
    rt_httpd *h;
    rt_ref ref;
    int port;
};

/* ============================================================ replies */

static void base_headers(api_state *s, const char *origin, api_hdrs *h)
{
    api__security_headers(h);
    api__cors_headers(&s->cfg, origin, h);
}

/* Answer with a JSON body (or none when json is NULL). extra: one more header, or NULL. */
void api__reply(rt_ctx *cx, api_state *s, uint64_t http, const char *origin, int status,
                const char *json, const char *session_id, const char *extra)
{
    api_hdrs h = {0};
    base_headers(s, origin, &h);
    if (json)
        api__hdrs_add(&h, JSON_CT);
    if (session_id)
        api__hdrs_add(&h, "X-Hermes-Session-Id: %s", session_id);
    if (extra)
        api__hdrs_add(&h, "%s", extra);
    int rc = rt_httpd_reply(cx, http, status, api__hdrs_list(&h), json ? json : "",
                            json ? strlen(json) : 0);
    if (rc)
        RT_WARN(LOGS, "reply failed status=%d err=%s", status, rt_strerror(rc));
    api__hdrs_fini(&h);
}

void api__reply_error(rt_ctx *cx, api_state *s, uint64_t http, const char *origin, int status,
                      const char *msg, const char *type, const char *code, const char *extra)
{
    char *json = api__error_json(msg, type, NULL, code);
    api__reply(cx, s, http, origin, status, json, NULL, extra);
    rt_free(json);
}

/* ============================================================ the other endpoints */

typedef struct status_job {
    rt_runtime *rt;
    rt_ref to;
    char *path;
    uint64_t http;
    char *origin;
} status_job;

static void drop_status(rt_msg *m)
{
    rt_free(((api_msg_status *)m)->origin);
    rt_free(((api_msg_status *)m)->data);
}

/* Reactor thread: read gateway_state.json (small, local) and hand it to the actor. */
static void read_status(rt_reactor *re, void *arg)
{
    status_job *j = arg;
    api_msg_status *m = RT_MSG_NEW(api_msg_status, API_MSG_STATUS);
    m->hdr.drop = drop_status;
    m->http = j->http;
    m->origin = j->origin;
    int fd = open(j->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        rt_buf b;
        rt_buf_init(&b, STATUS_FILE_MAX);
        char chunk[4096];
        ssize_t n;
        while ((n = read(fd, chunk, sizeof(chunk))) > 0)
            if (rt_buf_append(&b, chunk, (size_t)n) < 0)
                break;
        close(fd);
        m->data = rt_buf_steal(&b, &m->len);
    }
    rt_send(rt_reactor_ctx(re), j->to, &m->hdr); /* the drop frees the strings if it ended */
    rt_busy_leave(j->rt);
    rt_free(j->path);
    rt_free(j);
}

static void on_health_detailed(rt_ctx *cx, api_state *s, uint64_t http, const char *origin)
{
    if (!s->cfg.status_path || !s->cfg.reactor) {
        char *json = api__health_detailed_json(NULL, 0);
        api__reply(cx, s, http, origin, 200, json, NULL, NULL);
        rt_free(json);
        return;
    }
    status_job *j = rt_xcalloc(1, sizeof(*j));
    j->rt = s->rt;
    j->to = rt_self(cx);
    j->path = rt_xstrdup(s->cfg.status_path);
    j->http = http;
    j->origin = origin ? rt_xstrdup(origin) : NULL;
    rt_busy_enter(s->rt);
    rt_reactor_call(s->cfg.reactor, read_status, j);
}

static void on_status(rt_ctx *cx, api_state *s, api_msg_status *m)
{
    char *json = api__health_detailed_json(m->data, m->len);
    api__reply(cx, s, m->http, m->origin, 200, json, NULL, NULL);
    rt_free(json);
}

static bool has_prefix_path(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    return !strncmp(path, prefix, n) && (path[n] == '\0' || path[n] == '/');
}

/* Route an authenticated-or-public request. */
static void route(rt_ctx *cx, api_state *s, const rt_httpd_msg_request *m, const char *origin)
{
    const char *p = m->path;
    bool get = !strcmp(m->method, "GET") || !strcmp(m->method, "HEAD");
    bool post = !strcmp(m->method, "POST");
    bool health = !strcmp(p, "/health") || !strcmp(p, "/v1/health");
    if (health || !strcmp(p, "/health/detailed")) { /* no auth (gateway.md §10.1) */
        if (!get)
            api__reply_error(cx, s, m->req, origin, 405, "Method not allowed", NULL, NULL,
                             "Allow: GET, HEAD");
        else if (health)
            api__reply(cx, s, m->req, origin, 200,
                       "{\"status\":\"ok\",\"platform\":\"hermes-agent\"}", NULL, NULL);
        else
            on_health_detailed(cx, s, m->req, origin);
        return;
    }
    if (!api__auth_ok(&s->cfg, rt_httpd_header(m, "Authorization"))) {
        api__reply_error(cx, s, m->req, origin, 401, "Invalid API key", NULL, "invalid_api_key",
                         NULL);
        return;
    }
    if (!strcmp(p, "/v1/models")) {
        if (!get) {
            api__reply_error(cx, s, m->req, origin, 405, "Method not allowed", NULL, NULL,
                             "Allow: GET, HEAD");
            return;
        }
        char *json = api__models_json(s->cfg.model, (int64_t)time(NULL));
        api__reply(cx, s, m->req, origin, 200, json, NULL, NULL);
        rt_free(json);
    } else if (!strcmp(p, "/v1/chat/completions")) {
        if (post)
            api__on_chat(cx, s, m, origin);
        else
            api__reply_error(cx, s, m->req, origin, 405, "Method not allowed", NULL, NULL,
                             "Allow: POST");
    } else if (has_prefix_path(p, "/v1/responses") || has_prefix_path(p, "/v1/runs") ||
               has_prefix_path(p, "/api/jobs")) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%.100s is not implemented by this server yet", p);
        api__reply_error(cx, s, m->req, origin, 501, msg, NULL, "not_implemented", NULL);
    } else {
        api__reply_error(cx, s, m->req, origin, 404, "Not found", NULL, "not_found", NULL);
    }
}

/* Content-Length limit on bodies (the original's body_limit_middleware). 0 or answered. */
static int body_limit(rt_ctx *cx, api_state *s, const rt_httpd_msg_request *m, const char *origin)
{
    const char *cl = rt_httpd_header(m, "Content-Length");
    int64_t n = 0;
    if (cl && rt_parse_i64(cl, 0, INT64_MAX, &n) != 0) {
        api__reply_error(cx, s, m->req, origin, 400, "Invalid Content-Length header.", NULL,
                         "invalid_content_length", NULL);
        return -1;
    }
    if (n > API_SERVER_MAX_BODY || m->body_len > API_SERVER_MAX_BODY) {
        api__reply_error(cx, s, m->req, origin, 413, "Request body too large.", NULL,
                         "body_too_large", NULL);
        return -1;
    }
    return 0;
}

static void on_request(rt_ctx *cx, api_state *s, const rt_httpd_msg_request *m)
{
    const char *origin = rt_httpd_header(m, "Origin");
    int oc = api__origin_check(&s->cfg, origin);
    if (oc == API_ORIGIN_FORBIDDEN) {
        api__reply(cx, s, m->req, NULL, 403, NULL, NULL, NULL);
        return;
    }
    if (!strcmp(m->method, "OPTIONS")) { /* CORS preflight */
        api__reply(cx, s, m->req, origin, oc == API_ORIGIN_OK ? 200 : 403, NULL, NULL, NULL);
        return;
    }
    bool has_body =
        !strcmp(m->method, "POST") || !strcmp(m->method, "PUT") || !strcmp(m->method, "PATCH");
    if (has_body && body_limit(cx, s, m, origin))
        return;
    route(cx, s, m, origin);
}

static void api_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    api_state *s = *(api_state **)state;
    switch (m->type) {
    case RT_HTTPD_MSG_REQUEST: on_request(cx, s, (rt_httpd_msg_request *)m); break;
    case RT_HTTPD_MSG_GONE: api__on_gone(cx, s, (rt_httpd_msg_gone *)m); break;
    case GW_OUT_DELTA: api__on_delta(cx, s, (gw_out_text *)m); break;
    case GW_OUT_TEXT: api__on_text(cx, s, (gw_out_text *)m); break;
    case GW_OUT_TURN_END: api__on_turn_end(cx, s, (gw_out_turn_end *)m); break;
    case GW_OUT_TYPING: break; /* nothing to show */
    case API_MSG_STATUS: on_status(cx, s, (api_msg_status *)m); break;
    case API_MSG_START: (void)api__announce(cx, s); break;
    case RT_MSG_TIMEOUT: api__on_timeout(cx, s, (rt_msg_timeout *)m); break;
    case RT_MSG_STOP: api__on_stop(cx, s); break;
    default: RT_WARN_ONCE(LOGS, "unexpected message type=%#x", m->type); break;
    }
}

static void api_fini(void *state)
{
    api_state *s = *(api_state **)state;
    while (s->reqs.n) {
        for (size_t i = 0; i < s->reqs.cap; i++)
            if (s->reqs.keys[i]) {
                api__free_req(NULL, s, s->reqs.vals[i]);
                break;
            }
    }
    rt_map_fini(&s->reqs);
    rt_map_fini(&s->by_http);
    api__idem_fini(&s->idem);
    api__cfg_fini(&s->cfg);
    rt_free(s);
}

static const rt_actor_type api_type = {"api_server", api_behave, api_fini, sizeof(api_state *)};

/* ============================================================ start and stop */

/* The numeric address to bind for host (a name resolves to its first address). */
static int bind_address(const char *host, char *out, size_t outlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return -EINVAL;
    int rc =
        getnameinfo(res->ai_addr, res->ai_addrlen, out, (socklen_t)outlen, NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    return rc ? -EINVAL : 0;
}

static int check_security(const api_server_opts *o, const char *host, char *err, size_t errlen)
{
    bool has_key = o->key && o->key[0];
    if (!api__is_network_accessible(host))
        return 0;
    if (!has_key) {
        snprintf(err, errlen,
                 "Refusing to start: binding to %s requires API_SERVER_KEY. Set API_SERVER_KEY "
                 "or use the default 127.0.0.1.",
                 host);
        return -EPERM;
    }
    if (!api__key_usable(o->key)) {
        snprintf(err, errlen,
                 "Refusing to start: API_SERVER_KEY is set to a placeholder value. Generate a "
                 "real secret (e.g. `openssl rand -hex 32`) and set API_SERVER_KEY before "
                 "exposing the API server on %s.",
                 host);
        return -EPERM;
    }
    return 0;
}

static rt_ref spawn_actor(rt_ctx *cx, rt_runtime *rt, const api_server_opts *o)
{
    api_state *s = rt_xcalloc(1, sizeof(*s));
    api__cfg_init(&s->cfg, o);
    s->rt = rt;
    rt_map_init(&s->reqs);
    rt_map_init(&s->by_http);
    api__idem_init(&s->idem);
    return rt_spawn(cx, &api_type, &s, NULL);
}

int api_server_start(rt_ctx *cx, const api_server_opts *o, api_server **out, char *err,
                     size_t errlen)
{
    char dummy[1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    *out = NULL;
    if (!o || !o->lws) {
        snprintf(err, errlen, "API server: no HTTP server service (lws) is running");
        return -EINVAL;
    }
    const char *host = o->host && o->host[0] ? o->host : "127.0.0.1";
    int rc = check_security(o, host, err, errlen);
    if (rc)
        return rc;
    if (o->port < 0 || o->port > 65535) {
        snprintf(err, errlen, "API server: port %d is not in 0..65535", o->port);
        return -EINVAL;
    }
    if (o->port && api__port_in_use(o->port)) {
        snprintf(err, errlen,
                 "Port %d already in use. Set a different port in config.yaml: "
                 "platforms.api_server.port",
                 o->port);
        return -EADDRINUSE;
    }
    char addr[INET6_ADDRSTRLEN + 1];
    if (bind_address(host, addr, sizeof(addr))) {
        snprintf(err, errlen, "API server: cannot resolve host %s", host);
        return -EINVAL;
    }
    rt_runtime *rt = rt_lws_runtime(o->lws);
    rt_ref ref = spawn_actor(cx, rt, o);
    rt_httpd_route route = {"/", ref};
    rt_httpd_opts ho = {
        .host = addr,
        .port = o->port,
        .routes = &route,
        .nroutes = 1,
        .request_timeout_ms =
            o->request_timeout_ms > 0 ? o->request_timeout_ms : DEFAULT_REQUEST_MS,
        /* room for every completion allowed in flight, plus clients asking for /health,
         * /v1/models or waiting their turn (the server's own default is 1,024) */
        .max_conns = 2 * o->max_inflight + 64 > 1024 ? 2 * o->max_inflight + 64 : 1024,
    };
    rt_httpd *h = rt_httpd_start(rt, &ho, &rc);
    if (!h) {
        snprintf(err, errlen, "Failed to start API server on %s:%d: %s", host, o->port,
                 rt_strerror(rc));
        rt_stop(cx, ref, RT_EXIT_STOPPED);
        return rc ? rc : -EIO;
    }
    api_server *srv = rt_xcalloc(1, sizeof(*srv));
    srv->rt = rt;
    srv->h = h;
    srv->ref = ref;
    srv->port = rt_httpd_port(h);
    rt_send(cx, ref, rt_msg_new(API_MSG_START, sizeof(rt_msg)));
    if (!o->key || !o->key[0])
        RT_WARN(LOGS, "no API key configured (API_SERVER_KEY / "
                      "platforms.api_server.key); all requests are accepted without "
                      "authentication");
    RT_INFO(LOGS, "listening on http://%s:%d (model: %s)", host, srv->port,
            o->model_name && o->model_name[0] ? o->model_name : "hermes-agent");
    *out = srv;
    return 0;
}

rt_ref api_server_ref(const api_server *s)
{
    return s->ref;
}

int api_server_port(const api_server *s)
{
    return s->port;
}

void api_server_stop(rt_ctx *cx, api_server *s, int64_t grace_ms)
{
    if (!s)
        return;
    rt_ref gw = rt_whereis(cx, GW_NAME);
    if (gw)
        rt_send(cx, gw, gw_adapter_down_new(API_SERVER_PLATFORM, s->ref));
    rt_httpd_stop(s->h, grace_ms);
    rt_stop(cx, s->ref, RT_EXIT_STOPPED);
    RT_INFO(LOGS, "stopped");
    rt_free(s);
}
