/*
 * rt_httpd — see rt_httpd.h. The wire format itself (parsing heads, chunk sizes, validating
 * actors' header lines) is in rt_httpd_parse.c; this file is the connection machinery.
 *
 * Objects, all owned by the service thread once started:
 *   rt_httpd  one listening socket (ours, adopted by lws as a raw file so we get POLLIN) and
 *             the connections accepted from it;
 *   hconn     one accepted socket, adopted in lws' raw-socket role; it reads one request at
 *             a time (pipelined input waits in `in`), and owns the output queue;
 *   hout      one piece of output: inline bytes, or a slice of a reply command's buffer.
 * The module state (hmod, one per rt_lws) holds the shared vhost, the id -> hconn map of
 * requests currently owned by actors, and the list of servers.
 *
 * Rules:
 *   1. An hconn is freed in exactly one place, LWS_CALLBACK_WSI_DESTROY (or right after a
 *      failed adoption). That is also where an actor that still owns the connection's
 *      request gets its RT_HTTPD_MSG_GONE (release_req).
 *   2. A request is in `reqs` exactly while an actor owns it (C_ACTOR, C_STREAM); commands
 *      for ids not in the map are late and dropped.
 *   3. Output goes out from LWS_CALLBACK_RAW_WRITEABLE, or straight from a command when lws
 *      holds nothing of ours and the socket is writable (flush_now), at most WRITE_SLICE
 *      bytes at a time; so lws never buffers more than a slice for us. lws calls WRITEABLE
 *      only once its own buffer is empty: a WRITEABLE call that finds our queue empty means
 *      everything is on the wire, and only then may a closing connection shut its write
 *      side down.
 *   4. Closing: from inside a callback of the connection by returning -1; elsewhere with
 *      lws_set_timeout(LWS_TO_KILL_SYNC), after which the hconn may be gone. A connection
 *      that must close after its response lingers: shutdown(SHUT_WR), then read and discard
 *      until the client closes or LINGER_MS pass, so the client is never reset before it has
 *      read the response.
 *   5. Every state has a deadline except streaming: reading a request or idling between
 *      requests (idle_ns, once per phase, not per packet), waiting for the actor (req_ns),
 *      a response that closes (idle_ns), lingering (LINGER_MS).
 */
#include "rt_httpd.h"

#include "rt_alloc.h"
#include "rt_httpd_int.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_map.h"
#include "rt_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#define DEFAULT_MAX_BODY    ((size_t)1 << 20)
#define DEFAULT_MAX_HEADER  ((size_t)16 << 10)
#define DEFAULT_REQ_MS      30000
#define DEFAULT_IDLE_MS     60000
#define DEFAULT_MAX_CONNS   1024
#define DEFAULT_MAX_STREAMQ ((size_t)4 << 20)
#define MAX_CHUNK_LINE      1024
#define ACCEPT_BATCH        64
#define WRITE_SLICE         (64 * 1024)
#define INLINE_BODY_MAX     4096        /* reply bodies up to this are copied next to the head */
#define PIPELINE_MAX        (64 * 1024) /* unparsed input kept while an actor has a request */
#define LINGER_MS           2000
#define CHUNK_PRE           18 /* room for "<hex size>\r\n" before a stream write */
#define STOP_SLACK_MS       10000

enum cstate {
    C_HEAD,       /* reading the request line and header fields */
    C_BODY,       /* Content-Length body */
    C_CHUNK_SIZE, /* chunked body: size line */
    C_CHUNK_DATA, /* chunked body: data */
    C_CHUNK_CRLF, /* chunked body: CRLF after data */
    C_TRAILER,    /* chunked body: trailer fields */
    C_ACTOR,      /* an actor owns the request, no reply started */
    C_STREAM,     /* the actor is streaming the response */
    C_LINGER,     /* response sent, write side shut, waiting for the client to close */
};

enum { OBJ_SERVER = 1, OBJ_CONN = 2 };
enum { PH_OTHER = 0, PH_IDLE, PH_READING }; /* which deadline the timer holds while reading */

typedef struct hout {
    struct hout *next;
    const char *p; /* next byte to write */
    size_t len;    /* bytes left */
    void *owner;   /* freed with the piece (a command buffer), or NULL for inline */
    char data[];
} hout;

typedef struct hroute {
    char *prefix;
    size_t len;
    rt_ref handler;
} hroute;

typedef struct hmod hmod;

typedef struct hconn {
    int kind; /* OBJ_CONN; first, shared with rt_httpd for the lws opaque pointer */
    struct hconn *prev, *next;
    rt_httpd *h;
    struct lws *wsi;
    int fd;
    bool in_adopt, gone_in_adopt; /* adoption in progress / wsi died inside it (rule 1) */
    enum cstate st;
    rt_buf in;   /* bytes received and not yet parsed */
    size_t scan; /* C_HEAD: bytes of `in` already searched for the end of the head */
    rt_buf body; /* the request body being read */
    size_t left; /* C_BODY / C_CHUNK_DATA: body bytes still to come */
    bool rx_off; /* lws rx flow control is off (pipelined input over PIPELINE_MAX) */
    int phase;   /* PH_*: the deadline armed for the reading states */
    /* the current request */
    uint64_t req; /* id while an actor owns it (rule 2), else 0 */
    rt_ref handler;
    rt_httpd_msg_request *msg; /* parsed head, waiting for the body */
    int minor;                 /* HTTP/1.minor */
    bool is_head;              /* HEAD: no body in the response */
    bool keep_alive;
    bool chunked_out; /* the stream uses chunked framing */
    bool stream_body; /* stream writes carry body bytes (not HEAD, not 204/304) */
    int gone_err;     /* why the connection ends, for GONE: -ETIMEDOUT, -ENOBUFS, ... */
    /* output */
    hout *out, **out_tail;
    size_t out_bytes;
    bool close_after; /* close once the output is on the wire */
    bool progress;    /* output moved since the deadline was armed: the client is reading */
    lws_sorted_usec_list_t sul; /* the deadline of rule 5 */
    char peer[INET6_ADDRSTRLEN + 8];
} hconn;

struct rt_httpd {
    int kind; /* OBJ_SERVER */
    /* immutable after start */
    rt_lws *l;
    rt_runtime *rt;
    int lfd;
    int port;
    size_t max_body, max_header, max_conns, max_streamq;
    int64_t req_ns, idle_ns;
    hroute *routes; /* longest prefix first */
    size_t nroutes;
    /* service thread */
    hmod *mod;
    struct rt_httpd *next_srv;
    struct lws *listen_wsi;
    hconn *conns;
    size_t nconns;
    bool draining;
    bool lws_gone; /* the service stopped first; read by rt_httpd_stop after the join */
    lws_sorted_usec_list_t grace_sul;  /* rt_httpd_stop's grace period */
    lws_sorted_usec_list_t accept_sul; /* accepting paused after EMFILE */
    rt_lws_wait *stop_wait;
};

struct hmod {
    struct lws_vhost *vh;
    rt_map reqs; /* request id -> hconn (rule 2) */
    uint64_t next_req;
    rt_httpd *servers;
    time_t date_sec;
    char date[64];        /* "Date: ...\r\n" for date_sec (room for gcc's worst case) */
    rt__h1_head *scratch; /* parse space for take_head (service thread, one at a time) */
};

static int httpd_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len);

static const struct lws_protocols httpd_protocols[] = {
    {"hermes-httpd", httpd_callback, 0, 0, 0, NULL, WRITE_SLICE},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ============================================================ small helpers */

static bool body_allowed(int status)
{
    return status != 204 && status != 304;
}

/* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" (RFC 9110 5.6.7), cached per second. Not
 * strftime: the names must be English whatever the process locale. */
static const char *date_line(hmod *m)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    if (now != m->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(m->date, sizeof(m->date), "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
                 days[tm.tm_wday % 7], tm.tm_mday % 100, months[tm.tm_mon % 12],
                 (tm.tm_year + 1900) % 10000, tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100);
        m->date_sec = now;
    }
    return m->date;
}

/* ==================================================================== output */

static void out_push(hconn *c, hout *o)
{
    o->next = NULL;
    *c->out_tail = o;
    c->out_tail = &o->next;
    c->out_bytes += o->len;
}

static hout *out_inline(size_t cap)
{
    hout *o = rt_xmalloc(sizeof(*o) + cap);
    o->p = o->data;
    o->len = 0;
    o->owner = NULL;
    return o;
}

static void out_free_all(hconn *c)
{
    while (c->out) {
        hout *o = c->out;
        c->out = o->next;
        rt_free(o->owner);
        rt_free(o);
    }
    c->out_tail = &c->out;
    c->out_bytes = 0;
}

/* Status line, Date, framing and user headers, then the blank line, into a new piece with
 * room for `extra` more bytes (a small body). */
static hout *format_head(hconn *c, int status, const char *framing, const char *uh, size_t uhlen,
                         size_t extra)
{
    const char *date = date_line(c->h->mod);
    const char *conn = "";
    if (!c->keep_alive)
        conn = "Connection: close\r\n";
    else if (c->minor == 0)
        conn = "Connection: keep-alive\r\n";
    size_t cap = 64 + strlen(date) + strlen(framing) + strlen(conn) + uhlen + 2 + extra;
    hout *o = out_inline(cap);
    int n = snprintf(o->data, cap, "HTTP/1.1 %d %s\r\n%s%s%s", status, rt__h1_reason(status), date,
                     framing, conn);
    RT_VERIFY(n > 0 && (size_t)n < cap);
    memcpy(o->data + n, uh, uhlen);
    memcpy(o->data + n + uhlen, "\r\n", 2);
    o->len = (size_t)n + uhlen + 2;
    return o;
}

static void want_write(hconn *c)
{
    lws_callback_on_writable(c->wsi);
}

/* ================================================================= the timer */

static void conn_timer(lws_sorted_usec_list_t *sul);

/* Arm (ns > 0) or cancel (0) the connection's deadline; what it means depends on the state
 * when it fires (rule 5). */
static void arm_timer(hconn *c, int64_t ns)
{
    c->progress = false;
    if (!ns) {
        lws_sul_cancel(&c->sul);
        return;
    }
    lws_sul_schedule(rt_lws_context(c->h->l), 0, &c->sul, conn_timer, ns / 1000);
}

static void kill_conn(hconn *c)
{
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
}

/* ================================================================= requests */

/* The actor loses the request (guarantee 3 of rt_httpd.h). */
static void release_req(hconn *c, int err)
{
    if (!c->req)
        return;
    rt_map_del(&c->h->mod->reqs, c->req);
    if (err) {
        rt_httpd_msg_gone *g = RT_MSG_NEW(rt_httpd_msg_gone, RT_HTTPD_MSG_GONE);
        g->req = c->req;
        g->err = err;
        rt_send(rt_lws_ctx(c->h->l), c->handler, &g->hdr);
    }
    c->req = 0;
}

static void request_drop(rt_msg *hdr)
{
    rt_httpd_msg_request *m = (rt_httpd_msg_request *)hdr;
    rt_free(m->body);
    rt_free(m->block);
}

/* The connection ends after the response being written. The idle timeout bounds how long a
 * client that does not read may keep it. */
static void set_close_after(hconn *c)
{
    c->close_after = true;
    c->keep_alive = false;
    rt_buf_reset(&c->in);
    arm_timer(c, c->h->idle_ns);
}

/* Queue a complete response with a short text body, outside any actor. */
static void respond_local(hconn *c, int status, bool close)
{
    if (close)
        c->keep_alive = false;
    const char *text = rt__h1_reason(status);
    char framing[96];
    snprintf(framing, sizeof(framing), "Content-Type: text/plain\r\nContent-Length: %zu\r\n",
             strlen(text) + 1);
    hout *o = format_head(c, status, framing, "", 0, strlen(text) + 1);
    if (!c->is_head) {
        memcpy(o->data + o->len, text, strlen(text));
        o->data[o->len + strlen(text)] = '\n';
        o->len += strlen(text) + 1;
    }
    out_push(c, o);
    if (!c->keep_alive)
        set_close_after(c);
    want_write(c);
}

/* A request that never reaches an actor: error answers and 404s. The connection goes back
 * to reading unless the answer closes it. */
static void answer_locally(hconn *c, int status)
{
    bool close = status != 404 && status != 503;
    respond_local(c, status, close);
    if (c->msg) {
        rt_msg_free(&c->msg->hdr);
        c->msg = NULL;
    }
    rt_buf_reset(&c->body);
    c->st = C_HEAD;
}

static const hroute *route_for(rt_httpd *h, const char *path)
{
    if (!strcmp(path, "*")) /* OPTIONS *: the server as a whole, i.e. the catch-all route */
        path = "/";
    for (size_t i = 0; i < h->nroutes; i++) {
        const hroute *r = &h->routes[i];
        if (strncmp(path, r->prefix, r->len) != 0)
            continue;
        char next = path[r->len];
        if (r->prefix[r->len - 1] == '/' || next == '\0' || next == '/')
            return r;
    }
    return NULL;
}

/* The request is complete: hand it to its actor (or answer 404 / 503 here). */
static void dispatch(hconn *c)
{
    rt_httpd_msg_request *m = c->msg;
    const hroute *r = route_for(c->h, m->path);
    if (!r) {
        answer_locally(c, 404);
        return;
    }
    c->msg = NULL;
    m->body = rt_buf_steal(&c->body, &m->body_len);
    hmod *mod = c->h->mod;
    m->req = ++mod->next_req;
    c->req = m->req;
    c->handler = r->handler;
    rt_map_put(&mod->reqs, c->req, c);
    c->st = C_ACTOR;
    c->phase = PH_OTHER;
    arm_timer(c, c->h->req_ns);
    if (!rt_send(rt_lws_ctx(c->h->l), c->handler, &m->hdr)) {
        release_req(c, 0);
        arm_timer(c, 0);
        answer_locally(c, 503);
    }
}

/* ============================================================ request parsing */

/* Copy the parsed head into one block owned by the message. */
static rt_httpd_msg_request *build_msg(hconn *c, const rt__h1_head *h)
{
    const char *path = h->path;
    size_t plen = h->plen;
    const char *q = memchr(path, '?', plen);
    size_t pathlen = q ? (size_t)(q - path) : plen;
    size_t qlen = q ? plen - pathlen - 1 : 0;
    size_t bytes = h->nf * sizeof(rt_http_header) + h->mlen + pathlen + qlen + strlen(c->peer) + 4;
    for (size_t i = 0; i < h->nf; i++)
        bytes += h->f[i].nlen + h->f[i].vlen + 2;
    char *blk = rt_xmalloc(bytes);
    rt_http_header *hv = (rt_http_header *)(void *)blk;
    char *s = blk + h->nf * sizeof(rt_http_header);
#define PUT(dst, src, n)                                                                           \
    do {                                                                                           \
        (dst) = s;                                                                                 \
        memcpy(s, (src), (n));                                                                     \
        s[(n)] = '\0';                                                                             \
        s += (n) + 1;                                                                              \
    } while (0)
    rt_httpd_msg_request *m = RT_MSG_NEW(rt_httpd_msg_request, RT_HTTPD_MSG_REQUEST);
    PUT(m->method, h->method, h->mlen);
    PUT(m->path, path, pathlen);
    PUT(m->query, q ? q + 1 : "", qlen);
    PUT(m->peer, c->peer, strlen(c->peer));
    for (size_t i = 0; i < h->nf; i++) {
        PUT(hv[i].name, h->f[i].name, h->f[i].nlen);
        PUT(hv[i].value, h->f[i].value, h->f[i].vlen);
    }
#undef PUT
    m->headers = hv;
    m->nheaders = h->nf;
    m->block = blk;
    m->hdr.drop = request_drop;
    return m;
}

/* Parse the head in [p, e) (blank line included). 0, or the status to answer. */
static int take_head(hconn *c, const char *p, const char *e)
{
    rt__h1_head *h = c->h->mod->scratch;
    int st = rt__h1_parse_head(h, p, e, c->h->max_body);
    c->minor = h->minor;
    c->is_head = h->mlen == 4 && !memcmp(h->method, "HEAD", 4);
    c->keep_alive = h->minor == 1 ? !h->close : h->ka && !h->close;
    if (!st) {
        c->msg = build_msg(c, h);
        c->left = h->cl;
        c->st = h->chunked ? C_CHUNK_SIZE : h->cl ? C_BODY : C_HEAD;
        if (h->expect && h->minor == 1 && c->st != C_HEAD) {
            hout *o = out_inline(32);
            o->len = (size_t)snprintf(o->data, 32, "HTTP/1.1 100 Continue\r\n\r\n");
            out_push(c, o);
            want_write(c);
        }
    }
    return st;
}

/* Skip the empty lines a client may send before a request (RFC 9112 2.2). */
static void skip_leading_crlf(hconn *c)
{
    size_t k = 0;
    while (k < c->in.len && (c->in.data[k] == '\r' || c->in.data[k] == '\n'))
        k++;
    if (k)
        rt_buf_consume(&c->in, k);
}

/* C_HEAD: 1 when a head was taken (c->st moved on), 0 for more input, or a status. */
static int step_head(hconn *c)
{
    skip_leading_crlf(c);
    if (!c->in.len)
        return 0;
    const char *b = c->in.data;
    size_t lim = c->in.len < c->h->max_header ? c->in.len : c->h->max_header;
    const char *end = rt__h1_head_end(b, c->scan > 2 ? c->scan - 2 : 0, lim);
    if (!end) {
        c->scan = lim;
        if (c->in.len < c->h->max_header)
            return 0;
        return memchr(b, '\n', c->h->max_header) ? 431 : 414;
    }
    c->scan = 0;
    int st = take_head(c, b, end);
    rt_buf_consume(&c->in, (size_t)(end - b));
    if (st)
        return st;
    if (c->st == C_HEAD) /* no body: the request is complete */
        dispatch(c);
    return 1;
}

static int step_body(hconn *c)
{
    size_t k = c->in.len < c->left ? c->in.len : c->left;
    if (rt_buf_append(&c->body, c->in.data, k) < 0)
        return 413;
    rt_buf_consume(&c->in, k);
    c->left -= k;
    if (c->left)
        return 0;
    c->st = C_HEAD;
    dispatch(c);
    return 1;
}

static int step_chunk_size(hconn *c)
{
    const char *lf = memchr(c->in.data, '\n', c->in.len);
    if (!lf)
        return c->in.len > MAX_CHUNK_LINE ? 400 : 0;
    size_t v, n = (size_t)(lf - c->in.data);
    int st = rt__h1_chunk_size(c->in.data, n, &v);
    if (st)
        return st;
    rt_buf_consume(&c->in, n + 1);
    if (v > c->h->max_body - c->body.len)
        return 413;
    c->left = v;
    c->st = v ? C_CHUNK_DATA : C_TRAILER;
    return 1;
}

static int step_chunk_data(hconn *c)
{
    size_t k = c->in.len < c->left ? c->in.len : c->left;
    if (rt_buf_append(&c->body, c->in.data, k) < 0)
        return 413;
    rt_buf_consume(&c->in, k);
    c->left -= k;
    if (c->left)
        return 0;
    c->st = C_CHUNK_CRLF;
    return 1;
}

static int step_chunk_crlf(hconn *c)
{
    size_t need = c->in.len && c->in.data[0] == '\n' ? 1 : 2;
    if (c->in.len < need)
        return 0;
    if (need == 2 && memcmp(c->in.data, "\r\n", 2))
        return 400;
    rt_buf_consume(&c->in, need);
    c->st = C_CHUNK_SIZE;
    return 1;
}

/* Trailer fields are read and ignored, max_header bytes of them at most (counted in
 * c->left, which the last chunk left at 0). */
static int step_trailer(hconn *c)
{
    for (;;) {
        const char *lf = memchr(c->in.data, '\n', c->in.len);
        if (!lf)
            return c->left + c->in.len > c->h->max_header ? 431 : 0;
        size_t n = (size_t)(lf - c->in.data) + 1;
        bool blank = n == 1 || (n == 2 && c->in.data[0] == '\r');
        rt_buf_consume(&c->in, n);
        c->left += n;
        if (c->left > c->h->max_header)
            return 431;
        if (blank)
            break;
    }
    c->left = 0;
    c->st = C_HEAD;
    dispatch(c);
    return 1;
}

/* Parse what has arrived, as far as the state allows. Service thread, inside or outside a
 * callback (it never closes the connection itself). */
static void process(hconn *c)
{
    while (!c->close_after) {
        int r;
        switch (c->st) {
        case C_HEAD: r = step_head(c); break;
        case C_BODY: r = step_body(c); break;
        case C_CHUNK_SIZE: r = step_chunk_size(c); break;
        case C_CHUNK_DATA: r = step_chunk_data(c); break;
        case C_CHUNK_CRLF: r = step_chunk_crlf(c); break;
        case C_TRAILER: r = step_trailer(c); break;
        default: r = 0; break;
        }
        if (r > 1) {
            answer_locally(c, r);
            break;
        }
        if (r == 0)
            break;
    }
    /* Reading or idle: one idle_ns deadline per phase, not per packet, so a client that
     * trickles bytes cannot hold the connection forever. */
    if (c->st <= C_TRAILER && !c->close_after) {
        int phase = c->in.len || c->st != C_HEAD || c->msg ? PH_READING : PH_IDLE;
        if (phase != c->phase) {
            c->phase = phase;
            arm_timer(c, c->h->idle_ns);
        }
    }
    /* Pipelined input waits while an actor works; past PIPELINE_MAX stop reading. */
    bool off = (c->st == C_ACTOR || c->st == C_STREAM) && c->in.len >= PIPELINE_MAX;
    if (off != c->rx_off) {
        c->rx_off = off;
        lws_rx_flow_control(c->wsi, off ? 0 : 1);
    }
}

/* ============================================================= the replies */

enum hc_kind { HC_REPLY, HC_BEGIN, HC_WRITE, HC_END };

/* A reply or stream command: one allocation holding the user header block ("Name: value\r\n"
 * lines) and the body, with room around the body for chunk framing. A body piece of the
 * output can point into it (hout.owner). */
typedef struct hcmd {
    rt_lws_cmd cmd;
    uint64_t req;
    enum hc_kind kind;
    int status;
    size_t hlen; /* header block bytes at data */
    size_t blen; /* body bytes at data + hlen + CHUNK_PRE */
    char data[]; /* hlen, CHUNK_PRE, blen, 2 */
} hcmd;

static char *hc_body(hcmd *k)
{
    return k->data + k->hlen + CHUNK_PRE;
}

static hconn *req_conn(rt_lws *l, uint64_t req)
{
    if (rt_lws_stopping(l))
        return NULL;
    hmod *m = rt_lws_module(l, RT_LWS_MOD_HTTPD);
    return m ? rt_map_get(&m->reqs, req) : NULL;
}

static void flush_now(hconn *c);

/* The actor is done with the request: go on with pipelined input, then write. May free c. */
static void finish_response(hconn *c)
{
    release_req(c, 0);
    arm_timer(c, 0);
    c->st = C_HEAD;
    c->phase = PH_OTHER;
    c->is_head = false;
    if (!c->keep_alive || c->h->draining)
        set_close_after(c);
    want_write(c);
    process(c);
    flush_now(c);
}

static void apply_reply(hconn *c, hcmd *k)
{
    if (c->h->draining)
        c->keep_alive = false;
    bool body = body_allowed(k->status) && !c->is_head && k->blen;
    char framing[48] = "";
    if (body_allowed(k->status))
        snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", k->blen);
    size_t extra = body && k->blen <= INLINE_BODY_MAX ? k->blen : 0;
    hout *o = format_head(c, k->status, framing, k->data, k->hlen, extra);
    memcpy(o->data + o->len, hc_body(k), extra);
    o->len += extra;
    out_push(c, o);
    if (body && !extra) {
        hout *b = rt_xmalloc(sizeof(*b));
        b->p = hc_body(k);
        b->len = k->blen;
        b->owner = k;
        out_push(c, b);
        k = NULL;
    }
    rt_free(k);
    finish_response(c);
}

static void apply_begin(hconn *c, hcmd *k)
{
    if (c->h->draining)
        c->keep_alive = false;
    bool body = body_allowed(k->status);
    c->chunked_out = body && c->minor == 1;
    if (body && !c->chunked_out && !c->is_head)
        c->keep_alive = false; /* HTTP/1.0: the end of the body is the end of the connection */
    hout *o = format_head(c, k->status, c->chunked_out ? "Transfer-Encoding: chunked\r\n" : "",
                          k->data, k->hlen, 0);
    c->stream_body = body && !c->is_head;
    if (!c->stream_body)
        c->chunked_out = false;
    rt_free(k);
    out_push(c, o);
    c->st = C_STREAM;
    arm_timer(c, 0);
    want_write(c);
    flush_now(c);
}

static void apply_write(hconn *c, hcmd *k)
{
    /* An empty chunk would end the stream: skip it, as any write after a bodiless head. */
    if (!k->blen || !c->stream_body) {
        rt_free(k);
        return;
    }
    if (c->out_bytes + k->blen > c->h->max_streamq) {
        rt_free(k);
        RT_DEBUG("httpd", "stream queue over %zu bytes, dropping client peer=%s", c->h->max_streamq,
                 c->peer);
        c->gone_err = -ENOBUFS;
        release_req(c, -ENOBUFS);
        kill_conn(c);
        return;
    }
    hout *b = rt_xmalloc(sizeof(*b));
    b->p = hc_body(k);
    b->len = k->blen;
    if (c->chunked_out) {
        char pre[CHUNK_PRE + 1];
        int n = snprintf(pre, sizeof(pre), "%zx\r\n", k->blen);
        b->p -= n;
        memcpy((char *)b->p, pre, (size_t)n);
        memcpy(hc_body(k) + k->blen, "\r\n", 2);
        b->len += (size_t)n + 2;
    }
    b->owner = k;
    out_push(c, b);
    want_write(c);
    flush_now(c);
}

static void apply_end(hconn *c, hcmd *k)
{
    rt_free(k);
    if (c->chunked_out) {
        hout *o = out_inline(8);
        memcpy(o->data, "0\r\n\r\n", 5);
        o->len = 5;
        out_push(c, o);
    }
    finish_response(c);
}

static void cmd_reply(rt_lws *l, rt_lws_cmd *cmd)
{
    hcmd *k = (hcmd *)cmd;
    hconn *c = req_conn(l, k->req);
    if (!c) {
        rt_free(k); /* the request is gone (rule 2): its owner got or gets GONE */
        return;
    }
    enum cstate need = k->kind == HC_REPLY || k->kind == HC_BEGIN ? C_ACTOR : C_STREAM;
    if (c->st != need) {
        RT_WARN_ONCE("httpd", "reply kind %d out of order for req=%llu", (int)k->kind,
                     (unsigned long long)k->req);
        rt_free(k);
        return;
    }
    switch (k->kind) {
    case HC_REPLY: apply_reply(c, k); break;
    case HC_BEGIN: apply_begin(c, k); break;
    case HC_WRITE: apply_write(c, k); break;
    case HC_END: apply_end(c, k); break;
    }
}

/* =========================================================== lws callbacks */

static void maybe_stopped(rt_httpd *h)
{
    if (!h->draining || h->nconns || h->listen_wsi || !h->stop_wait)
        return;
    lws_sul_cancel(&h->grace_sul);
    lws_sul_cancel(&h->accept_sul);
    for (rt_httpd **pp = &h->mod->servers; *pp; pp = &(*pp)->next_srv)
        if (*pp == h) {
            *pp = h->next_srv;
            break;
        }
    rt_lws_wait *w = h->stop_wait;
    h->stop_wait = NULL;
    rt_lws_wait_signal(w, 0); /* h may be freed from here on */
}

static void conn_free(hconn *c)
{
    rt_httpd *h = c->h;
    lws_sul_cancel(&c->sul);
    release_req(c, c->gone_err ? c->gone_err : -ECONNRESET);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nconns--;
    if (c->msg)
        rt_msg_free(&c->msg->hdr);
    out_free_all(c);
    rt_buf_fini(&c->in);
    rt_buf_fini(&c->body);
    rt_free(c);
    maybe_stopped(h);
}

static void start_linger(hconn *c)
{
    /* Rule 4: everything is on the wire; half-close and wait for the client's FIN. */
    shutdown(c->fd, SHUT_WR);
    c->st = C_LINGER;
    rt_buf_reset(&c->in);
    if (c->rx_off) {
        c->rx_off = false;
        lws_rx_flow_control(c->wsi, 1);
    }
    arm_timer(c, (int64_t)LINGER_MS * 1000000);
}

/* Write up to WRITE_SLICE bytes of the queue. 0, or -1 when the socket failed. */
static int write_some(hconn *c)
{
    size_t budget = WRITE_SLICE;
    while (c->out && budget) {
        hout *o = c->out;
        size_t n = o->len < budget ? o->len : budget;
        if (lws_write(c->wsi, (unsigned char *)o->p, n, LWS_WRITE_RAW) < 0)
            return -1;
        o->p += n;
        o->len -= n;
        c->out_bytes -= n;
        budget -= n;
        c->progress = true;
        if (o->len)
            break;
        c->out = o->next;
        if (!c->out)
            c->out_tail = &c->out;
        rt_free(o->owner);
        rt_free(o);
        if (c->out && lws_send_pipe_choked(c->wsi))
            break;
    }
    if (c->out || c->close_after)
        want_write(c);
    return 0;
}

static int on_writable(hconn *c)
{
    if (!c->out) {
        if (c->close_after && c->st != C_LINGER)
            start_linger(c); /* rule 3 */
        return 0;
    }
    return write_some(c);
}

/* From a command, not a callback: write what is queued now instead of waiting a poll round
 * for WRITEABLE, but only when lws holds nothing of ours and the socket takes more (what
 * lws_send_pipe_choked checks), so rule 3's bound still holds. Must be the caller's last use
 * of c: a failed write frees it. */
static void flush_now(hconn *c)
{
    if (!c->out || lws_send_pipe_choked(c->wsi))
        return;
    if (write_some(c) < 0)
        kill_conn(c);
}

static int on_rx(hconn *c, const void *in, size_t len)
{
    if (c->st == C_LINGER || c->close_after)
        return 0; /* the response that closes the connection is out or on its way */
    if (rt_buf_append(&c->in, in, len) < 0)
        return -1; /* cannot happen with rx flow control; close rather than grow */
    process(c);
    return 0;
}

static void conn_timer(lws_sorted_usec_list_t *sul)
{
    hconn *c = lws_container_of(sul, hconn, sul);
    switch (c->st) {
    case C_ACTOR:
        RT_DEBUG("httpd", "request timed out req=%llu peer=%s", (unsigned long long)c->req,
                 c->peer);
        release_req(c, -ETIMEDOUT);
        c->st = C_HEAD;
        c->phase = PH_OTHER;
        respond_local(c, 504, false);
        process(c);
        break;
    case C_STREAM: break;
    case C_LINGER: kill_conn(c); break;
    default:
        if (c->out && c->progress) {
            c->progress = false; /* still writing to a client that reads: not idle */
            arm_timer(c, c->h->idle_ns);
            return;
        }
        if (c->phase == PH_READING && !c->close_after && !c->out) {
            answer_locally(c, 408);
            return;
        }
        kill_conn(c); /* idle keep-alive, or a client that stopped reading its response */
        break;
    }
}

static void on_conn_destroy(hconn *c, struct lws *wsi)
{
    lws_set_opaque_user_data(wsi, NULL);
    c->wsi = NULL;
    if (c->in_adopt) {
        c->gone_in_adopt = true; /* freed by adopt_conn (rule 1) */
        return;
    }
    conn_free(c);
}

static void pause_accept(rt_httpd *h);

static void adopt_conn(rt_httpd *h, int fd, const struct sockaddr_storage *sa)
{
    hconn *c = rt_xcalloc(1, sizeof(*c));
    c->kind = OBJ_CONN;
    c->h = h;
    c->fd = fd;
    c->out_tail = &c->out;
    rt_buf_init(&c->in, h->max_header + PIPELINE_MAX + 256 * 1024);
    rt_buf_init(&c->body, h->max_body);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
    } else if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        port = ntohs(a->sin_port);
    }
    snprintf(c->peer, sizeof(c->peer), sa->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* latency only */
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    lws_adopt_desc_t d;
    memset(&d, 0, sizeof(d));
    d.vh = h->mod->vh;
    d.type = LWS_ADOPT_SOCKET;
    d.fd.sockfd = fd;
    d.vh_prot_name = httpd_protocols[0].name;
    d.opaque = c;
    c->in_adopt = true;
    c->wsi = lws_adopt_descriptor_vhost_via_info(&d);
    c->in_adopt = false;
    if (!c->wsi || c->gone_in_adopt) {
        conn_free(c); /* lws closed fd */
        return;
    }
    process(c); /* arms the idle timer */
}

static void accept_some(rt_httpd *h)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof(sa);
        int fd = accept4(h->lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                RT_LOG_LIMITED(RT_LOG_WARN, "httpd", 10000, "accept failed: %s",
                               rt_strerror(-errno));
                pause_accept(h);
            }
            return;
        }
        if (h->draining || h->nconns >= h->max_conns) {
            close(fd);
            continue;
        }
        adopt_conn(h, fd, &sa);
    }
}

static void resume_accept(lws_sorted_usec_list_t *sul)
{
    rt_httpd *h = lws_container_of(sul, rt_httpd, accept_sul);
    if (h->listen_wsi && !h->draining)
        lws_rx_flow_control(h->listen_wsi, 1);
}

/* Out of descriptors: stop polling the listener for a moment instead of spinning on it. */
static void pause_accept(rt_httpd *h)
{
    lws_rx_flow_control(h->listen_wsi, 0);
    lws_sul_schedule(rt_lws_context(h->l), 0, &h->accept_sul, resume_accept, 100 * 1000);
}

static int server_callback(rt_httpd *h, struct lws *wsi, enum lws_callback_reasons reason)
{
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE: accept_some(h); return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        lws_set_opaque_user_data(wsi, NULL);
        h->listen_wsi = NULL;
        maybe_stopped(h);
        return 0;
    default: return 0;
    }
}

static int httpd_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len)
{
    int *kind = wsi ? lws_get_opaque_user_data(wsi) : NULL;
    if (!kind)
        return 0;
    if (*kind == OBJ_SERVER)
        return server_callback((rt_httpd *)(void *)kind, wsi, reason);
    hconn *c = (hconn *)(void *)kind;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX: return on_rx(c, in, len);
    case LWS_CALLBACK_RAW_WRITEABLE: return on_writable(c);
    case LWS_CALLBACK_WSI_DESTROY: on_conn_destroy(c, wsi); return 0;
    default: return 0;
    }
}

/* ============================================================ start and stop */

static void kill_all(rt_httpd *h, int err, bool only_idle)
{
    size_t n = 0;
    hconn **v = rt_xmalloc((h->nconns + 1) * sizeof(*v));
    for (hconn *c = h->conns; c; c = c->next) {
        bool busy = c->st == C_ACTOR || c->st == C_STREAM || c->out || c->st == C_LINGER;
        if (only_idle && busy) {
            c->keep_alive = false; /* its response says so and closes (guarantee 5) */
            if (c->st != C_ACTOR && c->st != C_STREAM && !c->close_after) {
                set_close_after(c);
                want_write(c);
            }
            continue;
        }
        v[n++] = c;
    }
    /* Killing frees conns and may end the stop (maybe_stopped): h is not touched after the
     * last kill. */
    for (size_t i = 0; i < n; i++) {
        v[i]->gone_err = err;
        kill_conn(v[i]);
    }
    rt_free(v);
}

static void grace_over(lws_sorted_usec_list_t *sul)
{
    rt_httpd *h = lws_container_of(sul, rt_httpd, grace_sul);
    kill_all(h, -ESHUTDOWN, false);
}

static void httpd_shutdown(rt_lws *l, void *state)
{
    hmod *m = state;
    for (rt_httpd *h = m->servers; h; h = h->next_srv) {
        h->lws_gone = true;
        h->stop_wait = NULL;
        lws_sul_cancel(&h->grace_sul);
        lws_sul_cancel(&h->accept_sul);
        if (h->listen_wsi)
            lws_set_timeout(h->listen_wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
        kill_all(h, -ESHUTDOWN, false);
    }
}

static void httpd_fini(rt_lws *l, void *state)
{
    hmod *m = state;
    rt_map_fini(&m->reqs);
    rt_free(m->scratch);
    rt_free(m);
}

static hmod *mod_get(rt_lws *l)
{
    hmod *m = rt_lws_module(l, RT_LWS_MOD_HTTPD);
    if (m)
        return m;
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof(vi));
    vi.port = CONTEXT_PORT_NO_LISTEN;
    vi.protocols = httpd_protocols;
    vi.vhost_name = "hermes-httpd";
    struct lws_vhost *vh = lws_create_vhost(rt_lws_context(l), &vi);
    if (!vh)
        return NULL;
    m = rt_xcalloc(1, sizeof(*m));
    m->vh = vh;
    m->scratch = rt_xmalloc(sizeof(*m->scratch));
    rt_map_init(&m->reqs);
    rt_lws_set_module(l, RT_LWS_MOD_HTTPD, m, httpd_shutdown, httpd_fini);
    return m;
}

typedef struct ctl_cmd {
    rt_lws_cmd cmd;
    rt_httpd *h;
    rt_lws_wait *w;
    int64_t grace_ms;
} ctl_cmd;

static void cmd_start(rt_lws *l, rt_lws_cmd *cmd)
{
    ctl_cmd *k = (ctl_cmd *)cmd;
    rt_httpd *h = k->h;
    rt_lws_wait *w = k->w;
    rt_free(k);
    hmod *m = rt_lws_stopping(l) ? NULL : mod_get(l);
    if (!m) {
        close(h->lfd);
        rt_lws_wait_signal(w, rt_lws_stopping(l) ? -ESHUTDOWN : -EIO);
        return;
    }
    h->mod = m;
    lws_adopt_desc_t d;
    memset(&d, 0, sizeof(d));
    d.vh = m->vh;
    d.type = LWS_ADOPT_RAW_FILE_DESC;
    d.fd.filefd = h->lfd;
    d.vh_prot_name = httpd_protocols[0].name;
    d.opaque = h;
    h->listen_wsi = lws_adopt_descriptor_vhost_via_info(&d);
    if (!h->listen_wsi) {
        rt_lws_wait_signal(w, -EIO); /* lws closed the fd */
        return;
    }
    h->next_srv = m->servers;
    m->servers = h;
    rt_lws_wait_signal(w, 0);
}

static void cmd_stop(rt_lws *l, rt_lws_cmd *cmd)
{
    ctl_cmd *k = (ctl_cmd *)cmd;
    rt_httpd *h = k->h;
    rt_lws_wait *w = k->w;
    int64_t grace = k->grace_ms;
    rt_free(k);
    if (h->lws_gone || rt_lws_stopping(l)) {
        rt_lws_wait_signal(w, 0);
        return;
    }
    h->draining = true;
    h->stop_wait = w;
    lws_sul_cancel(&h->accept_sul);
    lws_sul_schedule(rt_lws_context(l), 0, &h->grace_sul, grace_over, grace * 1000);
    /* The listener goes last: while it lives the stop cannot complete, so h stays valid
     * through kill_all (maybe_stopped). */
    kill_all(h, -ESHUTDOWN, true);
    if (h->listen_wsi)
        lws_set_timeout(h->listen_wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
    else
        maybe_stopped(h);
}

static int bind_listener(const rt_httpd_opts *o, int *port)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } a;
    memset(&a, 0, sizeof(a));
    const char *host = o->host ? o->host : "127.0.0.1";
    int fam = AF_INET;
    socklen_t al = sizeof(a.v4);
    if (inet_pton(AF_INET, host, &a.v4.sin_addr) == 1) {
        a.v4.sin_family = AF_INET;
        a.v4.sin_port = htons((uint16_t)o->port);
    } else if (inet_pton(AF_INET6, host, &a.v6.sin6_addr) == 1) {
        fam = AF_INET6;
        al = sizeof(a.v6);
        a.v6.sin6_family = AF_INET6;
        a.v6.sin6_port = htons((uint16_t)o->port);
    } else {
        return -EINVAL;
    }
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* REUSEADDR only skips TIME_WAIT leftovers; a live listener still gives EADDRINUSE. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        (fam == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one))) ||
        bind(fd, &a.sa, al) || listen(fd, 511) || getsockname(fd, &a.sa, &al)) {
        int err = -errno;
        close(fd);
        return err;
    }
    *port = ntohs(fam == AF_INET ? a.v4.sin_port : a.v6.sin6_port);
    return fd;
}

static int route_cmp(const void *a, const void *b)
{
    const hroute *x = a, *y = b;
    return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

static int check_opts(const rt_httpd_opts *o)
{
    if (!o || o->port < 0 || o->port > 65535 || o->request_timeout_ms < 0 ||
        o->idle_timeout_ms < 0 || (o->nroutes && !o->routes))
        return -EINVAL;
    for (size_t i = 0; i < o->nroutes; i++)
        if (!o->routes[i].prefix || o->routes[i].prefix[0] != '/' || !o->routes[i].handler)
            return -EINVAL;
    return 0;
}

static void httpd_free(rt_httpd *h)
{
    for (size_t i = 0; i < h->nroutes; i++)
        rt_free(h->routes[i].prefix);
    rt_free(h->routes);
    rt_free(h);
}

rt_httpd *rt_httpd_start(rt_runtime *rt, const rt_httpd_opts *o, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    *err = check_opts(o);
    if (*err)
        return NULL;
    rt_lws *l = rt_lws_of(rt);
    if (!l) {
        *err = -ESHUTDOWN;
        return NULL;
    }
    rt_httpd *h = rt_xcalloc(1, sizeof(*h));
    h->kind = OBJ_SERVER;
    h->l = l;
    h->rt = rt;
    h->max_body = o->max_body ? o->max_body : DEFAULT_MAX_BODY;
    h->max_header = o->max_header ? o->max_header : DEFAULT_MAX_HEADER;
    h->max_conns = o->max_conns ? o->max_conns : DEFAULT_MAX_CONNS;
    h->max_streamq = o->max_stream_queue ? o->max_stream_queue : DEFAULT_MAX_STREAMQ;
    h->req_ns = (o->request_timeout_ms ? o->request_timeout_ms : DEFAULT_REQ_MS) * 1000000;
    h->idle_ns = (o->idle_timeout_ms ? o->idle_timeout_ms : DEFAULT_IDLE_MS) * 1000000;
    h->routes = rt_xcalloc(o->nroutes + 1, sizeof(hroute));
    h->nroutes = o->nroutes;
    for (size_t i = 0; i < o->nroutes; i++) {
        h->routes[i].prefix = rt_xstrdup(o->routes[i].prefix);
        h->routes[i].len = strlen(o->routes[i].prefix);
        h->routes[i].handler = o->routes[i].handler;
    }
    qsort(h->routes, h->nroutes, sizeof(hroute), route_cmp);
    h->lfd = bind_listener(o, &h->port);
    if (h->lfd < 0) {
        *err = h->lfd;
        httpd_free(h);
        return NULL;
    }
    rt_lws_wait w;
    rt_lws_wait_init(&w);
    ctl_cmd *k = rt_xmalloc(sizeof(*k));
    k->cmd.fn = cmd_start;
    k->h = h;
    k->w = &w;
    rt_lws_submit(l, &k->cmd);
    int r = rt_lws_wait_for(&w, 60000);
    RT_VERIFY(r != -ETIMEDOUT); /* the service thread is wedged: nothing sane to do */
    rt_lws_wait_fini(&w);
    if (r) {
        *err = r;
        httpd_free(h);
        return NULL;
    }
    return h;
}

int rt_httpd_port(rt_httpd *h)
{
    return h->port;
}

void rt_httpd_stop(rt_httpd *h, int64_t grace_ms)
{
    if (!h)
        return;
    if (grace_ms < 0)
        grace_ms = 0;
    if (!h->lws_gone) {
        rt_lws_wait w;
        rt_lws_wait_init(&w);
        ctl_cmd *k = rt_xmalloc(sizeof(*k));
        k->cmd.fn = cmd_stop;
        k->h = h;
        k->w = &w;
        k->grace_ms = grace_ms;
        rt_lws_submit(h->l, &k->cmd);
        int r = rt_lws_wait_for(&w, grace_ms + LINGER_MS + STOP_SLACK_MS);
        RT_VERIFY(r != -ETIMEDOUT);
        rt_lws_wait_fini(&w);
    }
    httpd_free(h);
}

/* ========================================================== the public API */

static int submit(rt_ctx *cx, uint64_t req, enum hc_kind kind, int status, const char *const *hdrs,
                  const void *body, size_t len)
{
    if (!req || (!body && len))
        return -EINVAL;
    long hlen = rt__h1_header_block(hdrs, NULL);
    if (hlen < 0)
        return (int)hlen;
    rt_lws *l = rt_lws_of(rt_ctx_runtime(cx));
    if (!l)
        return -ESHUTDOWN;
    hcmd *k = rt_xmalloc(sizeof(*k) + (size_t)hlen + CHUNK_PRE + len + 2);
    k->cmd.fn = cmd_reply;
    k->req = req;
    k->kind = kind;
    k->status = status;
    k->hlen = (size_t)hlen;
    k->blen = len;
    rt__h1_header_block(hdrs, k->data);
    if (len)
        memcpy(hc_body(k), body, len);
    rt_lws_submit(l, &k->cmd);
    return 0;
}

int rt_httpd_reply(rt_ctx *cx, uint64_t req, int status, const char *const *headers,
                   const void *body, size_t len)
{
    if (status < 200 || status > 599)
        return -EINVAL;
    return submit(cx, req, HC_REPLY, status, headers, body, len);
}

int rt_httpd_stream_begin(rt_ctx *cx, uint64_t req, int status, const char *const *headers)
{
    if (status < 200 || status > 599)
        return -EINVAL;
    return submit(cx, req, HC_BEGIN, status, headers, NULL, 0);
}

int rt_httpd_stream_write(rt_ctx *cx, uint64_t req, const void *data, size_t len)
{
    return submit(cx, req, HC_WRITE, 0, NULL, data, len);
}

int rt_httpd_stream_end(rt_ctx *cx, uint64_t req)
{
    return submit(cx, req, HC_END, 0, NULL, NULL, 0);
}

const char *rt_httpd_header(const rt_httpd_msg_request *m, const char *name)
{
    for (size_t i = 0; i < m->nheaders; i++)
        if (!strcasecmp(m->headers[i].name, name))
            return m->headers[i].value;
    return NULL;
}
