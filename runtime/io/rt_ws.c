/*
 * rt_ws — see rt_ws.h.
 *
 * A connection (ws_conn) is created by rt_ws_connect on the calling thread, handed to the
 * service thread inside the connect command, and from then on owned by the service thread:
 * it sits in the module's id map and is reached from lws callbacks through the wsi's opaque
 * user data.
 *
 * Rules:
 *   1. The connection is freed, and its CLOSED reported, in exactly one place: finish(),
 *      called from LWS_CALLBACK_WSI_DESTROY (every wsi ends there), or directly when no wsi
 *      was ever created or lws gave up on it synchronously inside
 *      lws_client_connect_via_info (in_connect).
 *   2. The first cause recorded wins: c->err is set once (set_err) by whoever first knows
 *      why the connection ends; later callbacks only fill in what is missing.
 *   3. From inside a callback of the connection's own wsi we close by returning -1; from a
 *      command or a timer we close with lws_set_timeout(LWS_TO_KILL_SYNC), after which the
 *      connection may already be freed.
 */
#include "rt_ws.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_map.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#define WS_DEFAULT_MAX_MESSAGE ((size_t)16 << 20)
#define WS_DEFAULT_MAX_SENDQ   ((size_t)16 << 20)
#define WS_DEFAULT_CONNECT_MS  15000
#define WS_MAX_URL             8192
#define WS_MAX_HEADER_BYTES    16384 /* extra request headers, in total */
#define WS_RX_BUFFER           4096  /* lws frame buffer per connection */
#define WS_WRITE_BATCH         16    /* messages written per writable callback at most */

enum ws_state { WS_ST_CONNECTING, WS_ST_OPEN, WS_ST_CLOSING };

/* One queued message; doubles as the send command while it travels to the service thread. */
typedef struct ws_out {
    rt_lws_cmd cmd;      /* first: the command */
    struct ws_out *next; /* in the connection's send queue */
    uint64_t conn;
    size_t len;
    bool binary;
    unsigned char buf[]; /* LWS_PRE bytes of headroom, then len bytes */
} ws_out;

typedef struct ws_mod ws_mod;

typedef struct ws_conn {
    /* immutable after rt_ws_connect */
    uint64_t id;
    uint64_t tag;
    rt_ref reply_to;
    size_t max_message;
    size_t max_sendq;
    int64_t ping_ns, idle_ns, connect_ns;
    bool tls;
    int port;
    char *host;     /* for DNS and TLS name checks */
    char *host_hdr; /* Host header: host[:port] */
    char *path;     /* path?query */
    char *ca_file;
    char **hdr_names; /* "Name:" */
    char **hdr_vals;
    size_t nhdrs;

    /* service thread */
    rt_lws *l;
    ws_mod *mod;
    struct lws *wsi;
    enum ws_state st;
    bool in_connect; /* inside lws_client_connect_via_info (rule 1) */
    bool wsi_gone;   /* WSI_DESTROY came while in_connect */
    bool busy;       /* holds rt_busy_enter: connecting, or closing on request */
    rt_buf rx;       /* the message being reassembled */
    bool rx_in_msg;
    bool rx_binary;
    ws_out *head, **tail; /* send queue */
    size_t queued;        /* bytes in the send queue */
    bool ping_due;
    bool want_close; /* rt_ws_close while open: close frame after the queue */
    bool close_sent;
    int close_code;
    char close_reason[RT_WS_REASON_MAX];
    lws_sorted_usec_list_t sul; /* connect deadline, pings, idle check */
    int64_t deadline_ns;
    int64_t last_rx_ns;
    int64_t next_ping_ns;
    /* the outcome (rule 2) */
    int err;
    int code;
    int http_status;
    bool peer_closed;
    char reason[RT_WS_REASON_MAX];
    rt_ws_msg_open *open; /* built at PRE_ESTABLISH, sent at ESTABLISHED */
} ws_conn;

typedef struct ws_vhost {
    struct ws_vhost *next;
    char *ca_file; /* NULL: system CAs */
    struct lws_vhost *vh;
} ws_vhost;

struct ws_mod {
    rt_map conns; /* id -> ws_conn */
    ws_vhost *vhosts;
    int nvhosts;
};

typedef struct ws_connect_cmd {
    rt_lws_cmd cmd;
    ws_conn *c;
} ws_connect_cmd;

typedef struct ws_close_cmd {
    rt_lws_cmd cmd;
    uint64_t conn;
    int code;
    char reason[RT_WS_REASON_MAX];
} ws_close_cmd;

static _Atomic uint64_t next_conn_id = 1;

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len);

static const struct lws_protocols ws_protocols[] = {
    {"hermes-ws", ws_callback, 0, WS_RX_BUFFER, 0, NULL, 64 * 1024},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ================================================================ conn life */

static void conn_free(ws_conn *c)
{
    lws_sul_cancel(&c->sul);
    if (c->mod)
        rt_map_del(&c->mod->conns, c->id);
    while (c->head) {
        ws_out *o = c->head;
        c->head = o->next;
        rt_free(o);
    }
    if (c->open)
        rt_msg_free(&c->open->hdr);
    rt_buf_fini(&c->rx);
    for (size_t i = 0; i < c->nhdrs; i++) {
        rt_free(c->hdr_names[i]);
        rt_free(c->hdr_vals[i]);
    }
    rt_free(c->hdr_names);
    rt_free(c->hdr_vals);
    rt_free(c->host);
    rt_free(c->host_hdr);
    rt_free(c->path);
    rt_free(c->ca_file);
    rt_free(c);
}

static void set_err(ws_conn *c, int err, int code, const char *why)
{
    if (c->err)
        return; /* rule 2 */
    c->err = err;
    c->code = code;
    rt_strlcpy(c->reason, why ? why : "", sizeof(c->reason));
}

static void busy(ws_conn *c, rt_runtime *rt, bool on)
{
    if (c->busy == on)
        return;
    c->busy = on;
    if (on)
        rt_busy_enter(rt);
    else
        rt_busy_leave(rt);
}

/* Report the outcome (guarantee 1) with ctx, then free c (rule 1). */
static void finish(ws_conn *c, rt_lws *l)
{
    rt_ws_msg_closed *m = RT_MSG_NEW(rt_ws_msg_closed, RT_WS_MSG_CLOSED);
    m->conn = c->id;
    m->tag = c->tag;
    m->http_status = c->http_status;
    if (c->err) {
        m->err = c->err;
        m->code = c->code ? c->code : LWS_CLOSE_STATUS_ABNORMAL_CLOSE;
        rt_strlcpy(m->reason, c->reason, sizeof(m->reason));
    } else if (c->peer_closed) {
        m->code = c->code ? c->code : LWS_CLOSE_STATUS_NO_STATUS;
        rt_strlcpy(m->reason, c->reason, sizeof(m->reason));
    } else if (c->close_sent) {
        m->code = c->close_code;
        rt_strlcpy(m->reason, c->close_reason, sizeof(m->reason));
    } else if (c->st != WS_ST_CONNECTING) {
        m->err = -ECONNRESET;
        m->code = LWS_CLOSE_STATUS_ABNORMAL_CLOSE;
        rt_strlcpy(m->reason, "connection lost", sizeof(m->reason));
    } else {
        m->err = -ECONNREFUSED;
        m->code = LWS_CLOSE_STATUS_ABNORMAL_CLOSE;
        rt_strlcpy(m->reason, "connect failed", sizeof(m->reason));
    }
    RT_DEBUG("ws", "closed conn=%llu err=%d code=%d reason=\"%s\"", (unsigned long long)c->id,
             m->err, m->code, m->reason);
    rt_runtime *rt = rt_lws_runtime(l);
    rt_send(rt_lws_ctx(l), c->reply_to, &m->hdr);
    busy(c, rt, false);
    conn_free(c);
}

/* Close from a command or timer (rule 3). c may be freed on return. */
static void kill_conn(ws_conn *c, rt_lws *l)
{
    if (c->wsi)
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
    else
        finish(c, l);
}

/* ==================================================================== timers */

static void conn_timer(lws_sorted_usec_list_t *sul);

static void arm_timer(ws_conn *c, rt_lws *l)
{
    int64_t due = INT64_MAX;
    if (c->st == WS_ST_CONNECTING) {
        due = c->deadline_ns;
    } else {
        if (c->idle_ns)
            due = c->last_rx_ns + c->idle_ns;
        if (c->ping_ns && c->next_ping_ns < due)
            due = c->next_ping_ns;
    }
    if (due == INT64_MAX) {
        lws_sul_cancel(&c->sul);
        return;
    }
    int64_t us = (due - rt_lws_now_ns()) / 1000;
    lws_sul_schedule(rt_lws_context(l), 0, &c->sul, conn_timer, us > 0 ? us : 1);
}

static void conn_timer(lws_sorted_usec_list_t *sul)
{
    ws_conn *c = lws_container_of(sul, ws_conn, sul);
    rt_lws *l = c->l;
    int64_t now = rt_lws_now_ns();
    if (c->st == WS_ST_CONNECTING) {
        if (now >= c->deadline_ns) {
            set_err(c, -ETIMEDOUT, LWS_CLOSE_STATUS_ABNORMAL_CLOSE, "connect timed out");
            kill_conn(c, l);
            return;
        }
    } else {
        if (c->idle_ns && now - c->last_rx_ns >= c->idle_ns) {
            /* A peer that never acknowledges our close frame does not make the close we
             * asked for an error. */
            if (!c->close_sent)
                set_err(c, -ETIMEDOUT, LWS_CLOSE_STATUS_ABNORMAL_CLOSE, "idle timeout");
            kill_conn(c, l);
            return;
        }
        if (c->ping_ns && now >= c->next_ping_ns && !c->close_sent) {
            c->ping_due = true;
            c->next_ping_ns = now + c->ping_ns;
            lws_callback_on_writable(c->wsi);
        }
    }
    arm_timer(c, l);
}

/* ============================================================ lws callbacks */

/* Map lws' connection-error text to our errno (rt_ws.h); lws 4.1 gives no errno. */
static int cce_errno(const char *s, int http_status)
{
    if (http_status == 401 || http_status == 403)
        return -EACCES;
    if (http_status && http_status != 101)
        return -EPROTO;
    if (!s)
        return -ECONNREFUSED;
    if (strstr(s, "Unable to connect") || strstr(s, "connect failed") || strstr(s, "getaddrinfo") ||
        strstr(s, "Closed before conn"))
        return -ECONNREFUSED;
    if (strstr(s, "Peer hung up") || strstr(s, "read failed"))
        return -ECONNRESET;
    if (strstr(s, "timed out") || strstr(s, "timeout"))
        return -ETIMEDOUT;
    return -EPROTO; /* TLS, handshake (HS: ...) and everything else protocol-level */
}

static void on_connection_error(ws_conn *c, struct lws *wsi, const char *in, size_t len)
{
    char why[RT_WS_REASON_MAX];
    size_t n = in ? strnlen(in, len) : 0;
    if (n >= sizeof(why))
        n = sizeof(why) - 1;
    memcpy(why, in ? in : "", n);
    while (n && (why[n - 1] == '\n' || why[n - 1] == '\r'))
        n--;
    why[n] = '\0';
    if (!c->http_status) {
        int st = (int)lws_http_client_http_response(wsi);
        if (st != 101)
            c->http_status = st;
    }
    set_err(c, cce_errno(why, c->http_status), LWS_CLOSE_STATUS_ABNORMAL_CLOSE, why);
}

static int append_headers(ws_conn *c, struct lws *wsi, void *in, size_t len)
{
    unsigned char **p = in, *end = *p + len;
    for (size_t i = 0; i < c->nhdrs; i++)
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)c->hdr_names[i],
                                        (const unsigned char *)c->hdr_vals[i],
                                        (int)strlen(c->hdr_vals[i]), p, end))
            return -1;
    return 0;
}

static void open_drop(rt_msg *hdr)
{
    rt_ws_msg_open *m = (rt_ws_msg_open *)hdr;
    rt_free(m->block);
}

/* Build the OPEN message while lws still has the response headers (they are freed before
 * ESTABLISHED). Only headers lws knows by name can be listed in 4.1. */
static void capture_open(ws_conn *c, struct lws *wsi)
{
    size_t cnt = 0, bytes = 0;
    for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
        const unsigned char *name = lws_token_to_string((enum lws_token_indexes)t);
        int vlen = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
        size_t nlen = name ? strlen((const char *)name) : 0;
        if (vlen <= 0 || nlen < 2 || name[0] == ':' || name[nlen - 1] != ':')
            continue;
        cnt++;
        bytes += nlen + (size_t)vlen + 2;
    }
    rt_ws_msg_open *m = RT_MSG_NEW(rt_ws_msg_open, RT_WS_MSG_OPEN);
    m->conn = c->id;
    m->tag = c->tag;
    m->http_status = (int)lws_http_client_http_response(wsi);
    char *blk = rt_xmalloc(cnt * sizeof(rt_http_header) + bytes + 1);
    rt_http_header *h = (rt_http_header *)(void *)blk;
    char *s = blk + cnt * sizeof(rt_http_header), *e = s + bytes + 1;
    size_t k = 0;
    for (int t = 0; t < WSI_TOKEN_COUNT && k < cnt; t++) {
        const unsigned char *name = lws_token_to_string((enum lws_token_indexes)t);
        int vlen = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
        size_t nlen = name ? strlen((const char *)name) : 0;
        if (vlen <= 0 || nlen < 2 || name[0] == ':' || name[nlen - 1] != ':')
            continue;
        h[k].name = s;
        memcpy(s, name, nlen - 1);
        s[nlen - 1] = '\0';
        s += nlen;
        h[k].value = s;
        int got = lws_hdr_copy(wsi, s, (int)(e - s), (enum lws_token_indexes)t);
        s += (got > 0 ? got : 0) + 1;
        if (got < 0)
            s[-1] = '\0';
        k++;
    }
    m->headers = h;
    m->nheaders = k;
    m->block = blk;
    m->hdr.drop = open_drop;
    if (c->open)
        rt_msg_free(&c->open->hdr);
    c->open = m;
}

static void on_established(ws_conn *c, struct lws *wsi, rt_lws *l)
{
    c->st = WS_ST_OPEN;
    c->last_rx_ns = rt_lws_now_ns();
    c->next_ping_ns = c->last_rx_ns + c->ping_ns;
    rt_ws_msg_open *m = c->open;
    c->open = NULL;
    if (!m) {
        m = RT_MSG_NEW(rt_ws_msg_open, RT_WS_MSG_OPEN);
        m->conn = c->id;
        m->tag = c->tag;
        m->http_status = 101;
    }
    rt_send(rt_lws_ctx(l), c->reply_to, &m->hdr);
    busy(c, rt_lws_runtime(l), false);
    arm_timer(c, l);
    if (c->head)
        lws_callback_on_writable(wsi);
}

static void message_drop(rt_msg *hdr)
{
    rt_ws_msg_message *m = (rt_ws_msg_message *)hdr;
    rt_free(m->data);
}

static int on_receive(ws_conn *c, struct lws *wsi, rt_lws *l, const void *in, size_t len)
{
    c->last_rx_ns = rt_lws_now_ns();
    if (!c->rx_in_msg) {
        c->rx_in_msg = true;
        c->rx_binary = lws_frame_is_binary(wsi) != 0;
    }
    if (rt_buf_append(&c->rx, in, len) < 0) {
        set_err(c, -EMSGSIZE, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big");
        static const char why[] = "message too big";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why,
                         sizeof(why) - 1);
        return -1;
    }
    if (!lws_is_final_fragment(wsi))
        return 0;
    rt_ws_msg_message *m = RT_MSG_NEW(rt_ws_msg_message, RT_WS_MSG_MESSAGE);
    m->conn = c->id;
    m->tag = c->tag;
    m->binary = c->rx_binary;
    m->data = rt_buf_steal(&c->rx, &m->len);
    m->hdr.drop = message_drop;
    c->rx_in_msg = false;
    rt_send(rt_lws_ctx(l), c->reply_to, &m->hdr);
    return 0;
}

static void on_peer_close(ws_conn *c, const unsigned char *in, size_t len)
{
    c->peer_closed = true;
    if (c->err)
        return;
    c->code = len >= 2 ? (in[0] << 8) | in[1] : LWS_CLOSE_STATUS_NO_STATUS;
    size_t n = len > 2 ? len - 2 : 0;
    if (n >= sizeof(c->reason))
        n = sizeof(c->reason) - 1;
    memcpy(c->reason, in + 2, n);
    c->reason[n] = '\0';
}

static int on_writable(ws_conn *c, struct lws *wsi)
{
    if (c->ping_due) {
        unsigned char ping[LWS_PRE + 1];
        c->ping_due = false;
        if (lws_write(wsi, ping + LWS_PRE, 0, LWS_WRITE_PING) < 0)
            return -1;
    }
    for (int i = 0; c->head && i < WS_WRITE_BATCH; i++) {
        if (i && lws_send_pipe_choked(wsi))
            break;
        ws_out *o = c->head;
        c->head = o->next;
        if (!c->head)
            c->tail = &c->head;
        c->queued -= o->len;
        int n =
            lws_write(wsi, o->buf + LWS_PRE, o->len, o->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        rt_free(o);
        if (n < 0)
            return -1;
    }
    if (c->head) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (!c->want_close || c->close_sent)
        return 0;
    c->close_sent = true;
    c->st = WS_ST_CLOSING;
    lws_close_reason(wsi, (enum lws_close_status)c->close_code, (unsigned char *)c->close_reason,
                     strlen(c->close_reason));
    return -1;
}

static void on_destroy(ws_conn *c, struct lws *wsi, rt_lws *l)
{
    lws_set_opaque_user_data(wsi, NULL);
    c->wsi = NULL;
    if (c->in_connect) {
        c->wsi_gone = true; /* finished by cmd_connect (rule 1) */
        return;
    }
    finish(c, l);
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    ws_conn *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;
    if (!c)
        return 0;
    rt_lws *l = rt_lws_from_wsi(wsi);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: return append_headers(c, wsi, in, len);
    case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH: capture_open(c, wsi); return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED: on_established(c, wsi, l); return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE: return on_receive(c, wsi, l, in, len);
    case LWS_CALLBACK_CLIENT_RECEIVE_PONG: c->last_rx_ns = rt_lws_now_ns(); return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: on_peer_close(c, in, len); return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE: return on_writable(c, wsi);
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: on_connection_error(c, wsi, in, len); return 0;
    case LWS_CALLBACK_WSI_DESTROY: on_destroy(c, wsi, l); return 0;
    default: return 0;
    }
}

/* ================================================================== commands */

static void ws_shutdown(rt_lws *l, void *state)
{
    ws_mod *m = state;
    /* Killing a connection removes it from the map: collect the ids first. */
    size_t n = 0;
    uint64_t *ids = rt_xmalloc((m->conns.n + 1) * sizeof(*ids));
    for (size_t i = 0; i < m->conns.cap; i++)
        if (m->conns.keys[i])
            ids[n++] = m->conns.keys[i];
    for (size_t i = 0; i < n; i++) {
        ws_conn *c = rt_map_get(&m->conns, ids[i]);
        if (!c)
            continue;
        set_err(c, -ESHUTDOWN, LWS_CLOSE_STATUS_GOINGAWAY, "shutting down");
        kill_conn(c, l);
    }
    rt_free(ids);
}

static void ws_fini(rt_lws *l, void *state)
{
    ws_mod *m = state;
    while (m->vhosts) {
        ws_vhost *v = m->vhosts;
        m->vhosts = v->next;
        rt_free(v->ca_file);
        rt_free(v);
    }
    rt_map_fini(&m->conns);
    rt_free(m);
}

static ws_mod *mod_get(rt_lws *l)
{
    ws_mod *m = rt_lws_module(l, RT_LWS_MOD_WS);
    if (!m) {
        m = rt_xcalloc(1, sizeof(*m));
        rt_map_init(&m->conns);
        rt_lws_set_module(l, RT_LWS_MOD_WS, m, ws_shutdown, ws_fini);
    }
    return m;
}

/* The client vhost for a CA bundle (lws keeps one client TLS context per vhost). */
static struct lws_vhost *vhost_get(ws_mod *m, rt_lws *l, const char *ca_file, int *err)
{
    for (ws_vhost *v = m->vhosts; v; v = v->next)
        if ((!v->ca_file && !ca_file) || (v->ca_file && ca_file && !strcmp(v->ca_file, ca_file)))
            return v->vh;
    if (ca_file && access(ca_file, R_OK) != 0) {
        *err = -errno;
        return NULL;
    }
    char name[32];
    snprintf(name, sizeof(name), "hermes-ws-%d", m->nvhosts);
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof(vi));
    vi.port = CONTEXT_PORT_NO_LISTEN;
    vi.protocols = ws_protocols;
    vi.vhost_name = name;
    vi.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    vi.client_ssl_ca_filepath = ca_file;
    struct lws_vhost *vh = lws_create_vhost(rt_lws_context(l), &vi);
    if (!vh) {
        *err = -EPROTO;
        return NULL;
    }
    ws_vhost *v = rt_xcalloc(1, sizeof(*v));
    v->ca_file = rt_xstrdup(ca_file);
    v->vh = vh;
    v->next = m->vhosts;
    m->vhosts = v;
    m->nvhosts++;
    return vh;
}

static void start_connect(ws_conn *c, rt_lws *l)
{
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = rt_lws_context(l);
    ci.address = c->host;
    ci.port = c->port;
    ci.ssl_connection = c->tls ? LCCSCF_USE_SSL : 0;
    ci.path = c->path;
    ci.host = c->host_hdr;
    ci.origin = NULL;
    ci.protocol = NULL;
    ci.ietf_version_or_minus_one = -1;
    ci.local_protocol_name = ws_protocols[0].name;
    ci.alpn = "http/1.1";
    ci.opaque_user_data = c;
    int err = 0;
    ci.vhost = vhost_get(c->mod, l, c->ca_file, &err);
    if (!ci.vhost) {
        set_err(c, err, LWS_CLOSE_STATUS_ABNORMAL_CLOSE,
                err == -EPROTO ? "TLS setup failed" : "ca_file unreadable");
        finish(c, l);
        return;
    }
    c->deadline_ns = rt_lws_now_ns() + c->connect_ns;
    arm_timer(c, l);
    c->in_connect = true;
    struct lws *wsi = lws_client_connect_via_info(&ci);
    c->in_connect = false;
    if (!wsi || c->wsi_gone) {
        /* lws gave up synchronously and suppressed CONNECTION_ERROR (rule 1). */
        set_err(c, -ECONNREFUSED, LWS_CLOSE_STATUS_ABNORMAL_CLOSE, "connect failed");
        finish(c, l);
        return;
    }
    c->wsi = wsi;
}

static void cmd_connect(rt_lws *l, rt_lws_cmd *cmd)
{
    ws_connect_cmd *k = (ws_connect_cmd *)cmd;
    ws_conn *c = k->c;
    rt_free(k);
    if (rt_lws_stopping(l)) {
        set_err(c, -ESHUTDOWN, LWS_CLOSE_STATUS_GOINGAWAY, "shutting down");
        finish(c, l);
        return;
    }
    c->l = l;
    c->mod = mod_get(l);
    rt_map_put(&c->mod->conns, c->id, c);
    busy(c, rt_lws_runtime(l), true);
    start_connect(c, l);
}

static ws_conn *conn_lookup(rt_lws *l, uint64_t id)
{
    if (rt_lws_stopping(l))
        return NULL;
    ws_mod *m = rt_lws_module(l, RT_LWS_MOD_WS);
    return m ? rt_map_get(&m->conns, id) : NULL;
}

static void cmd_send(rt_lws *l, rt_lws_cmd *cmd)
{
    ws_out *o = (ws_out *)cmd;
    ws_conn *c = conn_lookup(l, o->conn);
    if (!c || c->want_close || c->st == WS_ST_CLOSING) {
        rt_free(o); /* the connection is gone or going; its CLOSED tells the owner */
        return;
    }
    if (o->len > c->max_sendq - c->queued) {
        rt_free(o);
        set_err(c, -ENOBUFS, LWS_CLOSE_STATUS_ABNORMAL_CLOSE, "send queue full");
        kill_conn(c, l);
        return;
    }
    o->next = NULL;
    *c->tail = o;
    c->tail = &o->next;
    c->queued += o->len;
    if (c->st == WS_ST_OPEN)
        lws_callback_on_writable(c->wsi);
}

static void cmd_close(rt_lws *l, rt_lws_cmd *cmd)
{
    ws_close_cmd *k = (ws_close_cmd *)cmd;
    ws_conn *c = conn_lookup(l, k->conn);
    if (!c || c->want_close || c->st == WS_ST_CLOSING) {
        rt_free(k);
        return;
    }
    if (c->st == WS_ST_CONNECTING) {
        set_err(c, -ECANCELED, k->code, "closed before open");
        rt_free(k);
        kill_conn(c, l);
        return;
    }
    c->want_close = true;
    c->close_code = k->code;
    rt_strlcpy(c->close_reason, k->reason, sizeof(c->close_reason));
    rt_free(k);
    busy(c, rt_lws_runtime(l), true);
    lws_callback_on_writable(c->wsi);
}

/* ================================================================ public API */

static bool is_tchar(int ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Split "Name: value" into "Name:" and "value"; false when malformed. */
static bool split_header(const char *h, char **name, char **val)
{
    const char *colon = strchr(h, ':');
    if (!colon || colon == h)
        return false;
    for (const char *p = h; p < colon; p++)
        if (!is_tchar((unsigned char)*p))
            return false;
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            return false;
    *name = rt_xstrndup(h, (size_t)(colon - h) + 1);
    *val = rt_xstrdup(v);
    return true;
}

static int parse_headers(ws_conn *c, const char *const *headers)
{
    size_t n = 0, bytes = 0;
    while (headers && headers[n]) {
        bytes += strlen(headers[n]) + 4;
        n++;
    }
    if (bytes > WS_MAX_HEADER_BYTES)
        return -EINVAL;
    c->hdr_names = rt_xcalloc(n + 1, sizeof(char *));
    c->hdr_vals = rt_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        if (!split_header(headers[i], &c->hdr_names[c->nhdrs], &c->hdr_vals[c->nhdrs]))
            return -EINVAL;
        c->nhdrs++;
    }
    return 0;
}

/* ws[s]://host[:port][/path][?query]; no user info. Pure: no lws calls off the service
 * thread. */
static int parse_url(ws_conn *c, const char *url)
{
    if (!url || strnlen(url, WS_MAX_URL + 1) > WS_MAX_URL)
        return -EINVAL;
    const char *p;
    if (!strncasecmp(url, "ws://", 5)) {
        p = url + 5;
        c->port = 80;
    } else if (!strncasecmp(url, "wss://", 6)) {
        p = url + 6;
        c->tls = true;
        c->port = 443;
    } else {
        return -EINVAL;
    }
    size_t alen = strcspn(p, "/?#");
    const char *hs = p, *he;
    bool v6 = *p == '[';
    if (v6) {
        he = memchr(p, ']', alen);
        if (!he || he == p + 1)
            return -EINVAL;
        hs = p + 1;
        p = he + 1;
    } else {
        he = p + strcspn(p, ":/?#");
        p = he;
    }
    if (he == hs || memchr(hs, '@', (size_t)(he - hs)))
        return -EINVAL;
    for (const char *q = hs; q < he; q++)
        if (!isalnum((unsigned char)*q) && !strchr(".-_:", *q))
            return -EINVAL;
    if (*p == ':') {
        char digits[8];
        size_t plen = strcspn(p + 1, "/?#");
        int64_t v;
        if (plen == 0 || plen >= sizeof(digits))
            return -EINVAL;
        memcpy(digits, p + 1, plen);
        digits[plen] = '\0';
        if (rt_parse_i64(digits, 1, 65535, &v))
            return -EINVAL;
        c->port = (int)v;
        p += plen + 1;
    }
    if (*p && *p != '/' && *p != '?' && *p != '#')
        return -EINVAL;
    size_t rlen = strcspn(p, "#");
    for (size_t i = 0; i < rlen; i++)
        if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f)
            return -EINVAL;
    c->host = rt_xstrndup(hs, (size_t)(he - hs));
    char port[8] = "";
    if (c->port != (c->tls ? 443 : 80))
        snprintf(port, sizeof(port), ":%d", c->port);
    c->host_hdr = rt_xasprintf(v6 ? "[%s]%s" : "%s%s", c->host, port);
    c->path = *p == '/' ? rt_xstrndup(p, rlen) : rt_xasprintf("/%.*s", (int)rlen, p);
    return 0;
}

/* Report a connect that never reached the service thread (guarantee 1). */
static void report_early(rt_ctx *cx, const rt_ws_opts *o, uint64_t id, int err, const char *why)
{
    rt_ws_msg_closed *m = RT_MSG_NEW(rt_ws_msg_closed, RT_WS_MSG_CLOSED);
    m->conn = id;
    m->tag = o->tag;
    m->err = err;
    m->code = LWS_CLOSE_STATUS_ABNORMAL_CLOSE;
    rt_strlcpy(m->reason, why, sizeof(m->reason));
    rt_send(cx, o->reply_to, &m->hdr);
}

uint64_t rt_ws_connect(rt_ctx *cx, const rt_ws_opts *o)
{
    if (!o || !o->reply_to)
        return 0;
    /* relaxed: ids only need to be unique. */
    uint64_t id = atomic_fetch_add_explicit(&next_conn_id, 1, memory_order_relaxed);
    rt_lws *l = rt_lws_of(rt_ctx_runtime(cx));
    if (!l) {
        report_early(cx, o, id, -ESHUTDOWN, "lws service not running");
        return id;
    }
    ws_conn *c = rt_xcalloc(1, sizeof(*c));
    c->id = id;
    c->tag = o->tag;
    c->reply_to = o->reply_to;
    c->tail = &c->head;
    if (parse_url(c, o->url) || parse_headers(c, o->headers) || o->ping_interval_ms < 0 ||
        o->idle_timeout_ms < 0 || o->connect_timeout_ms < 0) {
        conn_free(c);
        report_early(cx, o, id, -EINVAL, "invalid options");
        return id;
    }
    c->max_message = o->max_message ? o->max_message : WS_DEFAULT_MAX_MESSAGE;
    c->max_sendq = o->max_send_queue ? o->max_send_queue : WS_DEFAULT_MAX_SENDQ;
    c->ping_ns = o->ping_interval_ms * 1000000;
    c->idle_ns = o->idle_timeout_ms * 1000000;
    c->connect_ns =
        (o->connect_timeout_ms ? o->connect_timeout_ms : WS_DEFAULT_CONNECT_MS) * 1000000;
    c->ca_file = rt_xstrdup(o->ca_file);
    rt_buf_init(&c->rx, c->max_message);
    ws_connect_cmd *k = rt_xmalloc(sizeof(*k));
    k->cmd.fn = cmd_connect;
    k->c = c;
    rt_lws_submit(l, &k->cmd);
    return id;
}

int rt_ws_send(rt_ctx *cx, uint64_t conn, const void *data, size_t len, bool binary)
{
    if (!conn || (!data && len))
        return -EINVAL;
    rt_lws *l = rt_lws_of(rt_ctx_runtime(cx));
    if (!l)
        return -ESHUTDOWN;
    ws_out *o = rt_xmalloc(sizeof(*o) + LWS_PRE + len);
    o->cmd.fn = cmd_send;
    o->next = NULL;
    o->conn = conn;
    o->len = len;
    o->binary = binary;
    if (len)
        memcpy(o->buf + LWS_PRE, data, len);
    rt_lws_submit(l, &o->cmd);
    return 0;
}

static bool close_code_ok(int code)
{
    return code == 1000 || code == 1001 || code == 1002 || code == 1003 ||
           (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
}

int rt_ws_close(rt_ctx *cx, uint64_t conn, int code, const char *reason)
{
    if (!code)
        code = LWS_CLOSE_STATUS_NORMAL;
    if (!conn || !close_code_ok(code))
        return -EINVAL;
    rt_lws *l = rt_lws_of(rt_ctx_runtime(cx));
    if (!l)
        return -ESHUTDOWN;
    ws_close_cmd *k = rt_xmalloc(sizeof(*k));
    k->cmd.fn = cmd_close;
    k->conn = conn;
    k->code = code;
    rt_strlcpy(k->reason, reason ? reason : "", sizeof(k->reason));
    rt_lws_submit(l, &k->cmd);
    return 0;
}
