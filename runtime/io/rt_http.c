/*
 * rt_http — see rt_http.h. Invariant numbers below refer to the list in the header.
 *
 * Shape: rt_http_submit copies the request into an `xfer` and passes it to the reactor
 * with rt_reactor_call. On the reactor thread the xfer gets a curl easy handle and joins
 * the one multi handle. curl tells us which sockets to watch (on_socket → rt_reactor_*_fd)
 * and when to call it back (on_curl_timer → rt_reactor_timer); the reactor calls
 * curl_multi_socket_action when they fire, and finished transfers are picked up with
 * curl_multi_info_read (check_done → complete). complete() is the only place that sends
 * DONE and frees an xfer, and it is never called from inside a curl callback: callbacks
 * that fail record the error and return a value that makes curl stop the transfer.
 *
 * The client's state (struct http) is reached through a thread-local pointer that is set
 * only on the reactor thread it belongs to, so no lookup needs a lock and work that reaches
 * a stopped reactor (calls drained on the controlling thread after the loop ended) finds
 * no client and is refused politely.
 *
 * Backlog (invariant 3): each SSE/DATA message carries a reference to the transfer's
 * `flow` and the bytes it was charged. Its drop function — run on the receiver's thread
 * once the behaviour has handled it — gives the bytes back and, if the transfer was paused
 * and the backlog fell to half the cap, asks the reactor to resume it. flow->r is cleared
 * under the flow's mutex when the transfer ends, so a drop never calls a reactor that may
 * be gone.
 */
#include "rt_http.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_map.h"
#include "rt_sched.h"
#include "rt_sse.h"
#include "rt_util.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_DEFAULT_MS 10000
#define MSG_OVERHEAD               64 /* backlog bytes charged per stream message */
#define MAX_METHOD_LEN             32
#define ERRMSG_MAX                 512

_Static_assert(sizeof(uintptr_t) >= sizeof(uint64_t), "request ids travel as pointers");

/* ================================================================ process-wide state */

static _Atomic uint64_t next_id = 1;

static struct {
    _Atomic uint64_t submitted, completed, paused, pauses, backlog_peak;
} stats; /* advisory counters: relaxed everywhere */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

typedef struct http http;
/* The client of the reactor running on this thread; NULL on every other thread. */
static _Thread_local http *tls_http;

/* ================================================================ types */

/* Backlog accounting shared between a stream transfer and its messages in flight. */
typedef struct flow {
    pthread_mutex_t mu;
    _Atomic int refs; /* the transfer's + one per message in flight + pending resumes */
    uint64_t xid;     /* immutable */
    size_t high;      /* immutable: pause at this backlog */
    /* under mu */
    rt_reactor *r;  /* NULL once the transfer ended: no more resume calls */
    size_t backlog; /* bytes charged to messages not yet handled */
    bool paused;    /* the transfer wants to be resumed when the backlog drains */
} flow;

struct http {
    rt_reactor *r;
    CURLM *multi;
    uint64_t timer; /* curl's timeout on the reactor, or 0 */
    rt_map xfers;   /* id -> xfer */
    rt_map socks;   /* fd + 1 -> (void *)1 for the sockets we watch */
    bool closing;   /* the stop hook is tearing down: arm no more timers */
};

typedef struct xfer {
    /* ---- the request, copied by rt_http_submit (immutable afterwards) ---- */
    uint64_t id;
    uint64_t tag;
    rt_ref reply_to;
    rt_runtime *rt;
    char *method; /* NULL: GET or POST */
    char *url;
    char **headers; /* NULL-terminated copies, or NULL */
    char *ca_file;
    void *reqbody;
    size_t reqbody_len;
    bool has_body;
    int64_t timeout_ms, connect_timeout_ms, idle_ms;
    size_t max;
    int max_redirects;
    rt_http_mode mode;
    int64_t t_submit_ns;
    /* ---- reactor thread only ---- */
    http *h;
    CURL *easy;
    bool added;                   /* in the multi handle */
    struct curl_slist *slist;     /* request headers for curl */
    char origin[256];             /* scheme://host[:port] for messages: nothing secret */
    char errbuf[CURL_ERROR_SIZE]; /* curl's own words */
    int err;                      /* first error; 0 while all is well */
    char *errmsg;                 /* our text for err, when we caused it */
    rt_buf hbuf;                  /* "name\0value\0" pairs of the current response */
    size_t nh;
    bool head_done; /* the final response's header block is complete */
    bool ok2xx;     /* ... and its status is 2xx */
    int status;
    rt_buf body; /* BUFFER mode, or a non-2xx body in stream modes */
    rt_sse sse;
    flow *fc;            /* stream modes */
    bool curl_paused;    /* we returned CURL_WRITEFUNC_PAUSE and have not resumed */
    uint64_t idle_timer; /* reactor timer id, or 0 */
    int64_t last_rx_ns;  /* last byte received (or start) */
    int64_t t_start_ns;  /* picked up by the reactor */
    uint64_t rx_bytes;
    int http_version;
    bool reused;
    int64_t retry_after_s;
    rt_http_timing timing;
} xfer;

/* Stream messages with their backlog charge (the public struct comes first). */
typedef struct sse_env {
    rt_io_msg_http_sse m;
    flow *fc;
    size_t charge;
} sse_env;

typedef struct data_env {
    rt_io_msg_http_data m;
    flow *fc;
    size_t charge;
} data_env;

/* ================================================================ small helpers */

static int64_t now_ns(void)
{
    return rt_reactor_now_ns();
}

static void stat_add(_Atomic uint64_t *c, int64_t d)
{
    atomic_fetch_add_explicit(c, (uint64_t)d, memory_order_relaxed); /* advisory */
}

void rt_http_stats_get(rt_http_stats *s)
{
    s->submitted = atomic_load_explicit(&stats.submitted, memory_order_relaxed);
    s->completed = atomic_load_explicit(&stats.completed, memory_order_relaxed);
    s->active = s->submitted >= s->completed ? s->submitted - s->completed : 0;
    s->paused = atomic_load_explicit(&stats.paused, memory_order_relaxed);
    s->pauses = atomic_load_explicit(&stats.pauses, memory_order_relaxed);
    s->backlog_peak = atomic_load_explicit(&stats.backlog_peak, memory_order_relaxed);
}

const char *rt_http_header_get(const rt_http_header *h, size_t n, const char *name)
{
    for (size_t i = 0; h && name && i < n; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

static const char *method_name(const xfer *x)
{
    return x->method ? x->method : x->has_body ? "POST" : "GET";
}

/* Record the first error of a transfer with our own text. */
static void fail(xfer *x, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(xfer *x, int err, const char *fmt, ...)
{
    if (x->err)
        return;
    char text[ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(text, sizeof(text), fmt, ap); /* truncation is fine for a message */
    va_end(ap);
    x->err = err;
    x->errmsg =
        rt_xasprintf("%s%s%s: %s", method_name(x), x->origin[0] ? " " : "", x->origin, text);
}

/* Pack "name\0value\0" pairs into one block: the array, then the strings. */
static rt_http_header *headers_build(const rt_buf *b, size_t n, size_t *nout)
{
    *nout = 0;
    if (n == 0)
        return NULL;
    size_t arr = n * sizeof(rt_http_header);
    char *block = rt_xmalloc(arr + b->len);
    rt_http_header *h = (rt_http_header *)(void *)block;
    char *s = block + arr;
    memcpy(s, b->data, b->len);
    for (size_t i = 0; i < n; i++) {
        h[i].name = s;
        s += strlen(s) + 1;
        h[i].value = s;
        s += strlen(s) + 1;
    }
    *nout = n;
    return h;
}

/* Look a header up in the pairs collected so far. */
static const char *hbuf_get(const xfer *x, const char *name)
{
    const char *s = x->hbuf.data;
    for (size_t i = 0; i < x->nh; i++) {
        const char *v = s + strlen(s) + 1;
        if (strcasecmp(s, name) == 0)
            return v;
        s = v + strlen(v) + 1;
    }
    return NULL;
}

/* ================================================================ backlog (invariant 3) */

static flow *flow_new(uint64_t xid, rt_reactor *r, size_t high)
{
    flow *f = rt_xcalloc(1, sizeof(*f));
    RT_VERIFY(pthread_mutex_init(&f->mu, NULL) == 0);
    atomic_init(&f->refs, 1);
    f->xid = xid;
    f->high = high ? high : 1;
    f->r = r;
    return f;
}

static flow *flow_ref(flow *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed); /* the caller holds one */
    return f;
}

static void flow_unref(flow *f)
{
    /* acq_rel: the last owner must see every other owner's writes before destroying. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&f->mu);
    rt_free(f);
}

static void flow_charge(flow *f, size_t n)
{
    pthread_mutex_lock(&f->mu);
    f->backlog += n;
    size_t b = f->backlog;
    pthread_mutex_unlock(&f->mu);
    uint64_t peak = atomic_load_explicit(&stats.backlog_peak, memory_order_relaxed);
    while (b > peak &&
           !atomic_compare_exchange_weak_explicit(&stats.backlog_peak, &peak, b,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Reactor: should the transfer stop taking bytes? Marks it paused if so. */
static bool flow_pause_if_full(flow *f)
{
    pthread_mutex_lock(&f->mu);
    bool full = f->backlog >= f->high;
    if (full && !f->paused) {
        f->paused = true;
        stat_add(&stats.paused, 1);
        stat_add(&stats.pauses, 1);
    }
    pthread_mutex_unlock(&f->mu);
    return full;
}

static void resume_on_reactor(rt_reactor *r, void *arg);

/* A stream message was handled (or dropped): give its bytes back. Any thread. */
static void flow_release(flow *f, size_t n)
{
    pthread_mutex_lock(&f->mu);
    f->backlog -= n;
    if (f->paused && f->r && f->backlog <= f->high / 2) {
        f->paused = false;
        stat_add(&stats.paused, -1);
        /* Called under the mutex on purpose: flow_close clears f->r under it before the
         * reactor can go away, so r is alive here. rt_reactor_call only allocates and
         * pushes; it calls no one back. */
        rt_reactor_call(f->r, resume_on_reactor, flow_ref(f));
    }
    pthread_mutex_unlock(&f->mu);
    flow_unref(f);
}

/* Reactor: the transfer ended; drop its reference. */
static void flow_close(flow *f)
{
    pthread_mutex_lock(&f->mu);
    f->r = NULL;
    if (f->paused) {
        f->paused = false;
        stat_add(&stats.paused, -1);
    }
    pthread_mutex_unlock(&f->mu);
    flow_unref(f);
}

/* ================================================================ messages */

static void head_drop(rt_msg *m)
{
    rt_free(((rt_io_msg_http_head *)m)->headers);
}

static void sse_drop(rt_msg *m)
{
    sse_env *e = (sse_env *)m;
    rt_free(e->m.event);
    rt_free(e->m.data);
    rt_free(e->m.last_id);
    flow_release(e->fc, e->charge);
}

static void data_drop(rt_msg *m)
{
    data_env *e = (data_env *)m;
    rt_free(e->m.data);
    flow_release(e->fc, e->charge);
}

static void done_drop(rt_msg *m)
{
    rt_io_msg_http_done *d = (rt_io_msg_http_done *)m;
    rt_free(d->errmsg);
    rt_free(d->headers);
    rt_free(d->body);
}

static char *memdup_z(const void *p, size_t n)
{
    char *s = rt_xmalloc(n + 1);
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Reactor: HEAD for stream modes. false when the receiver is gone. */
static bool send_head(xfer *x)
{
    rt_io_msg_http_head *m = RT_MSG_NEW(rt_io_msg_http_head, RT_IO_MSG_HTTP_HEAD);
    m->hdr.drop = head_drop;
    m->id = x->id;
    m->tag = x->tag;
    m->status = x->status;
    m->headers = headers_build(&x->hbuf, x->nh, &m->nheaders);
    if (rt_send(rt_reactor_ctx(x->h->r), x->reply_to, &m->hdr))
        return true;
    fail(x, -ECANCELED, "the receiver is gone");
    return false;
}

static int on_event(void *arg, const rt_sse_event *ev)
{
    xfer *x = arg;
    sse_env *e = rt_msg_new(RT_IO_MSG_HTTP_SSE, sizeof(*e));
    e->m.hdr.drop = sse_drop;
    e->m.id = x->id;
    e->m.tag = x->tag;
    e->m.event = rt_xstrdup(ev->type);
    e->m.data = memdup_z(ev->data, ev->data_len);
    e->m.data_len = ev->data_len;
    e->m.last_id = ev->id[0] ? rt_xstrdup(ev->id) : NULL;
    e->m.retry_ms = ev->retry_ms;
    e->charge = ev->data_len + MSG_OVERHEAD;
    e->fc = flow_ref(x->fc);
    flow_charge(x->fc, e->charge);
    if (rt_send(rt_reactor_ctx(x->h->r), x->reply_to, &e->m.hdr))
        return 0;
    fail(x, -ECANCELED, "the receiver is gone");
    return -ECANCELED;
}

static bool send_data(xfer *x, const char *p, size_t len)
{
    data_env *e = rt_msg_new(RT_IO_MSG_HTTP_DATA, sizeof(*e));
    e->m.hdr.drop = data_drop;
    e->m.id = x->id;
    e->m.tag = x->tag;
    e->m.data = memdup_z(p, len);
    e->m.len = len;
    e->charge = len + MSG_OVERHEAD;
    e->fc = flow_ref(x->fc);
    flow_charge(x->fc, e->charge);
    if (rt_send(rt_reactor_ctx(x->h->r), x->reply_to, &e->m.hdr))
        return true;
    fail(x, -ECANCELED, "the receiver is gone");
    return false;
}

/* DONE, from whichever thread ends the request; the last thing done for it. */
static void send_done(xfer *x, rt_ctx *cx)
{
    rt_io_msg_http_done *m = RT_MSG_NEW(rt_io_msg_http_done, RT_IO_MSG_HTTP_DONE);
    m->hdr.drop = done_drop;
    m->id = x->id;
    m->tag = x->tag;
    m->err = x->err;
    m->errmsg = x->errmsg;
    x->errmsg = NULL;
    m->status = x->status;
    m->headers = headers_build(&x->hbuf, x->nh, &m->nheaders);
    if (!x->err && (x->mode == RT_HTTP_BUFFER || !x->ok2xx) && x->status > 0)
        m->body = rt_buf_steal(&x->body, &m->body_len);
    m->rx_bytes = x->rx_bytes;
    m->http_version = x->http_version;
    m->reused = x->reused;
    m->retry_after_s = x->retry_after_s;
    m->timing = x->timing;
    RT_DEBUG("http", "done id=%llu %s %s status=%d err=%d total_us=%lld", (unsigned long long)x->id,
             method_name(x), x->origin, x->status, x->err, (long long)x->timing.total_us);
    rt_runtime *rt = x->rt;
    stat_add(&stats.completed, 1);     /* before the send, so a receiver never sees it lag */
    rt_send(cx, x->reply_to, &m->hdr); /* a dead receiver makes it a dead letter: fine */
    rt_busy_leave(rt);
}

/* ================================================================ request copy */

static char **copy_headers(const char *const *h)
{
    if (!h)
        return NULL;
    size_t n = 0;
    while (h[n])
        n++;
    char **c = rt_xcalloc(n + 1, sizeof(*c));
    for (size_t i = 0; i < n; i++)
        c[i] = rt_xstrdup(h[i]);
    return c;
}

static xfer *xfer_new(rt_ctx *cx, const rt_http_request *q)
{
    xfer *x = rt_xcalloc(1, sizeof(*x));
    x->tag = q->tag;
    x->reply_to = q->reply_to;
    x->rt = rt_ctx_runtime(cx);
    x->method = rt_xstrdup(q->method);
    x->url = rt_xstrdup(q->url);
    x->headers = copy_headers(q->headers);
    x->ca_file = rt_xstrdup(q->ca_file);
    x->has_body = q->body != NULL;
    if (q->body) {
        x->reqbody = rt_xmemdup(q->body, q->body_len);
        x->reqbody_len = q->body_len;
    } else {
        x->reqbody_len = q->body_len; /* non-zero without a body: refused in setup */
    }
    x->timeout_ms = q->timeout_ms;
    x->connect_timeout_ms = q->connect_timeout_ms;
    x->idle_ms = q->idle_timeout_ms;
    x->max = q->max_body ? q->max_body : RT_HTTP_MAX_BODY_DEFAULT;
    x->max_redirects = q->max_redirects;
    x->mode = q->mode;
    x->t_submit_ns = now_ns();
    rt_buf_init(&x->hbuf, RT_HTTP_MAX_HEADERS_BYTES);
    rt_buf_init(&x->body, x->max);
    rt_sse_init(&x->sse, x->max);
    return x;
}

static void xfer_free(xfer *x)
{
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->slist);
    if (x->headers)
        for (char **h = x->headers; *h; h++)
            rt_free(*h);
    rt_free(x->headers);
    rt_free(x->method);
    rt_free(x->url);
    rt_free(x->ca_file);
    rt_free(x->reqbody);
    rt_free(x->errmsg);
    rt_buf_fini(&x->hbuf);
    rt_buf_fini(&x->body);
    rt_sse_fini(&x->sse);
    rt_free(x);
}

/* ================================================================ completion */

static int os_errno_to_err(long oserr, const char **what)
{
    switch (oserr) {
    case EHOSTUNREACH:
    case ENETUNREACH: *what = "host unreachable"; return -EHOSTUNREACH;
    case ETIMEDOUT: *what = "connect timed out"; return -ETIMEDOUT;
    default: *what = "connection refused"; return -ECONNREFUSED;
    }
}

/* Map a CURLcode to -errno and a phrase (STYLE 3.7: library codes stop here). */
static int map_curl(xfer *x, CURLcode rc, const char **what)
{
    long oserr = 0;
    switch (rc) {
    case CURLE_OK: *what = ""; return 0;
    case CURLE_UNSUPPORTED_PROTOCOL:
        /* The scheme was checked before the start, so the server sent something that is not
         * HTTP (curl refuses HTTP/0.9) or redirected to another scheme. */
        *what = "the server did not answer in HTTP (or redirected to a non-HTTP scheme)";
        return -EPROTO;
    case CURLE_URL_MALFORMAT: *what = "malformed URL"; return -EINVAL;
    case CURLE_COULDNT_RESOLVE_HOST: *what = "could not resolve host"; return -EHOSTUNREACH;
    case CURLE_COULDNT_RESOLVE_PROXY: *what = "could not resolve proxy"; return -EHOSTUNREACH;
    case CURLE_COULDNT_CONNECT:
        (void)curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &oserr); /* 0 if unknown */
        return os_errno_to_err(oserr, what);
    case CURLE_OPERATION_TIMEDOUT: *what = "timed out"; return -ETIMEDOUT;
    case CURLE_FILESIZE_EXCEEDED: *what = "response body is larger than max_body"; return -E2BIG;
    case CURLE_TOO_MANY_REDIRECTS: *what = "too many redirects"; return -ELOOP;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
        *what = "the connection was closed or reset before the response was complete";
        return -ECONNRESET;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: *what = "TLS failure"; return -EPROTO;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR: *what = "malformed or unsupported response"; return -EPROTO;
    case CURLE_PROXY: *what = "the proxy refused the request"; return -ECONNREFUSED;
    case CURLE_OUT_OF_MEMORY: *what = "out of memory"; return -ENOMEM;
    default: *what = "transfer failed"; return -EIO;
    }
}

static int64_t info_us(CURL *e, CURLINFO what)
{
    curl_off_t v = 0;
    (void)curl_easy_getinfo(e, what, &v); /* stays 0 when not reached */
    return (int64_t)v;
}

/* Reactor: gather status, version, timing and the error of a finished transfer. */
static void collect(xfer *x, CURLcode rc)
{
    CURL *e = x->easy;
    long code = 0, ver = 0, nconn = 0;
    curl_off_t ra = 0;
    (void)curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    (void)curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &ver);
    (void)curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &nconn);
    (void)curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &ra);
    if (!x->status)
        x->status = (int)code;
    x->http_version = ver == CURL_HTTP_VERSION_1_0   ? 10
                      : ver == CURL_HTTP_VERSION_1_1 ? 11
                      : ver == CURL_HTTP_VERSION_2_0 ? 20
                      : ver == CURL_HTTP_VERSION_3   ? 30
                                                     : 0;
    x->reused = x->status > 0 && nconn == 0;
    x->retry_after_s = (int64_t)ra;
    x->timing.dns_us = info_us(e, CURLINFO_NAMELOOKUP_TIME_T);
    x->timing.connect_us = info_us(e, CURLINFO_CONNECT_TIME_T);
    x->timing.tls_us = info_us(e, CURLINFO_APPCONNECT_TIME_T);
    x->timing.ttfb_us = info_us(e, CURLINFO_STARTTRANSFER_TIME_T);
    if (x->err || rc == CURLE_OK)
        return;
    const char *what = NULL;
    x->err = map_curl(x, rc, &what);
    if (rc == CURLE_FILESIZE_EXCEEDED) {
        x->errmsg = rt_xasprintf("%s %s: response body is larger than the %zu-byte limit "
                                 "(max_body)",
                                 method_name(x), x->origin, x->max);
        return;
    }
    x->errmsg = rt_xasprintf("%s %s: %s (curl %d: %s)", method_name(x), x->origin, what, (int)rc,
                             x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
}

/* Reactor: the one place a transfer ends. Never called from inside a curl callback. */
static void complete(http *h, xfer *x, CURLcode rc)
{
    rt_map_del(&h->xfers, x->id);
    if (x->idle_timer)
        rt_reactor_timer_cancel(h->r, x->idle_timer);
    x->idle_timer = 0;
    if (x->easy)
        collect(x, rc);
    if (x->added)
        (void)curl_multi_remove_handle(h->multi, x->easy); /* cannot fail for our handle */
    x->added = false;
    if (x->fc)
        flow_close(x->fc);
    x->fc = NULL;
    x->timing.queue_us = (x->t_start_ns - x->t_submit_ns) / 1000;
    x->timing.total_us = (now_ns() - x->t_start_ns) / 1000;
    send_done(x, rt_reactor_ctx(h->r));
    xfer_free(x);
}

static void check_done(http *h)
{
    for (;;) {
        int left = 0;
        CURLMsg *msg = curl_multi_info_read(h->multi, &left);
        if (!msg)
            break;
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURLcode rc = msg->data.result;
        xfer *x = NULL;
        (void)curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x)
            complete(h, x, rc); /* msg is invalid from here on */
    }
}

/* ================================================================ curl callbacks */

/* The header block of a response ended. Returns false to abort the transfer. */
static bool end_of_headers(xfer *x)
{
    long code = 0;
    (void)curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 100 && code < 200)
        return true; /* interim (100 Continue): the real response follows */
    if (x->max_redirects > 0 &&
        (code == 301 || code == 302 || code == 303 || code == 307 || code == 308)) {
        long nred = 0;
        (void)curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_COUNT, &nred);
        if (hbuf_get(x, "location") && nred < x->max_redirects)
            return true; /* curl follows it; the next response is the one that counts */
    }
    x->head_done = true;
    x->status = (int)code;
    x->ok2xx = code >= 200 && code < 300;
    if (x->mode == RT_HTTP_BUFFER)
        return true;
    return send_head(x);
}

/* Append "name\0value\0", or fold a continuation line into the last value. */
static int add_header(xfer *x, const char *p, size_t n)
{
    if (memchr(p, '\0', n))
        return 0; /* a NUL would break the packing; such a header is ignored */
    bool fold = p[0] == ' ' || p[0] == '\t';
    const char *colon = fold ? p : memchr(p, ':', n);
    if (!colon || (!fold && colon == p) || (fold && x->nh == 0))
        return 0; /* not a header line: ignored */
    const char *v = colon + (fold ? 0 : 1), *end = p + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t old = x->hbuf.len;
    int err = 0;
    if (fold) {
        x->hbuf.len--; /* reopen the last value */
        err = rt_buf_append(&x->hbuf, " ", 1);
    } else {
        err = rt_buf_append(&x->hbuf, p, (size_t)(colon - p));
        if (!err)
            err = rt_buf_append(&x->hbuf, "", 1);
    }
    if (!err)
        err = rt_buf_append(&x->hbuf, v, (size_t)(end - v));
    if (!err)
        err = rt_buf_append(&x->hbuf, "", 1);
    if (err) {
        /* Keep only whole pairs: headers_build relies on it. */
        x->hbuf.len = old;
        if (x->hbuf.data) {
            x->hbuf.data[old] = '\0';
            if (old)
                x->hbuf.data[old - 1] = '\0';
        }
        return err;
    }
    x->nh += fold ? 0 : 1;
    return 0;
}

static size_t on_header(char *p, size_t size, size_t nitems, void *ud)
{
    xfer *x = ud;
    size_t len = size * nitems, n = len;
    x->last_rx_ns = now_ns();
    if (x->err)
        return 0;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* A new response begins (interim, redirect or final): forget the previous one. */
        rt_buf_reset(&x->hbuf);
        x->nh = 0;
        return len;
    }
    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
        n--;
    if (x->head_done)
        return len; /* trailers: ignored */
    if (n == 0)
        return end_of_headers(x) ? len : 0;
    if (add_header(x, p, n) < 0) {
        fail(x, -E2BIG, "response headers exceed %u bytes", RT_HTTP_MAX_HEADERS_BYTES);
        return 0;
    }
    return len;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t len = size * nmemb;
    if (x->err)
        return 0;
    if (!x->head_done && !end_of_headers(x))
        return 0;
    if (x->mode == RT_HTTP_BUFFER || !x->ok2xx) {
        if (rt_buf_append(&x->body, p, len) < 0) {
            fail(x, -E2BIG, "response body is larger than the %zu-byte limit (max_body)", x->max);
            return 0;
        }
        x->rx_bytes += len;
        x->last_rx_ns = now_ns();
        return len;
    }
    if (flow_pause_if_full(x->fc)) {
        x->curl_paused = true; /* curl hands us this same chunk again on resume */
        return CURL_WRITEFUNC_PAUSE;
    }
    x->rx_bytes += len;
    x->last_rx_ns = now_ns();
    if (x->mode == RT_HTTP_STREAM_RAW)
        return send_data(x, p, len) ? len : 0;
    int rc = rt_sse_feed(&x->sse, p, len, on_event, x);
    if (rc == -E2BIG)
        fail(x, -E2BIG, "an SSE event or line is larger than the %zu-byte limit (max_body)",
             x->max);
    return rc ? 0 : len;
}

static int on_close_socket(void *clientp, curl_socket_t fd)
{
    http *h = clientp;
    if (rt_map_del(&h->socks, (uint64_t)fd + 1))
        rt_reactor_del_fd(h->r, fd);
    return close(fd);
}

static void on_fd(rt_reactor *r, int fd, uint32_t events, void *arg)
{
    http *h = arg;
    int flags = 0, running = 0;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
        flags |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (events & EPOLLERR)
        flags |= CURL_CSELECT_ERR;
    (void)curl_multi_socket_action(h->multi, fd, flags, &running); /* errors end transfers */
    check_done(h);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    http *h = userp;
    uint64_t key = (uint64_t)fd + 1;
    if (what == CURL_POLL_REMOVE) {
        if (rt_map_del(&h->socks, key))
            rt_reactor_del_fd(h->r, fd);
        return 0;
    }
    uint32_t ev = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    if (rt_map_get(&h->socks, key)) {
        if (rt_reactor_mod_fd(h->r, fd, ev) == 0)
            return 0;
        /* The number was closed and reused behind our back: watch it afresh. */
        rt_map_del(&h->socks, key);
        rt_reactor_del_fd(h->r, fd);
    }
    int err = rt_reactor_add_fd(h->r, fd, ev, on_fd, h);
    if (err) {
        RT_WARN("http", "cannot watch socket fd=%d: %s", fd, rt_strerror(err));
        return -1;
    }
    rt_map_put(&h->socks, key, (void *)1);
    return 0;
}

static void on_timeout(rt_reactor *r, void *arg)
{
    http *h = arg;
    int running = 0;
    h->timer = 0;
    (void)curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

static int on_curl_timer(CURLM *m, long ms, void *userp)
{
    http *h = userp;
    if (h->timer)
        rt_reactor_timer_cancel(h->r, h->timer);
    h->timer = 0;
    if (ms >= 0 && !h->closing)
        h->timer = rt_reactor_timer(h->r, ms, on_timeout, h);
    return 0;
}

/* ================================================================ timers, resume, cancel */

static void on_idle(rt_reactor *r, void *arg)
{
    xfer *x = arg;
    x->idle_timer = 0;
    int64_t quiet_ms = (now_ns() - x->last_rx_ns) / 1000000;
    if (x->curl_paused || quiet_ms < x->idle_ms) {
        /* Paused by us (the receiver is behind): the server is not to blame. */
        int64_t wait = x->curl_paused ? x->idle_ms : x->idle_ms - quiet_ms;
        x->idle_timer = rt_reactor_timer(r, wait, on_idle, x);
        return;
    }
    fail(x, -ETIMEDOUT, "no data received for %lld ms (idle_timeout_ms)", (long long)quiet_ms);
    complete(x->h, x, CURLE_OK);
}

static void resume_on_reactor(rt_reactor *r, void *arg)
{
    flow *f = arg;
    http *h = tls_http;
    xfer *x = h ? rt_map_get(&h->xfers, f->xid) : NULL;
    if (x && x->fc == f && x->curl_paused) {
        x->curl_paused = false;
        x->last_rx_ns = now_ns();
        /* Delivers the held chunk through on_write (which may pause again). */
        (void)curl_easy_pause(x->easy, CURLPAUSE_CONT); /* errors surface as the result */
        check_done(h);
    }
    flow_unref(f);
}

static void cancel_on_reactor(rt_reactor *r, void *arg)
{
    http *h = tls_http;
    xfer *x = h ? rt_map_get(&h->xfers, (uint64_t)(uintptr_t)arg) : NULL;
    if (!x)
        return; /* already finished */
    fail(x, -ECANCELED, "cancelled");
    complete(h, x, CURLE_OK);
}

void rt_http_cancel(rt_ctx *cx, uint64_t id)
{
    rt_reactor *r = cx ? rt_reactor_of(rt_ctx_runtime(cx)) : NULL;
    if (!r || id == 0)
        return;
    rt_reactor_call(r, cancel_on_reactor, (void *)(uintptr_t)id);
}

/* ================================================================ setup */

static bool is_token(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !strchr("!#$%&'*+-.^_`|~", c))
            return false;
    }
    return true;
}

/* Parse the URL; fill x->origin with scheme://host[:port] (no user, path or query). */
static int check_url(xfer *x)
{
    if (!x->url || !x->url[0]) {
        fail(x, -EINVAL, "no URL given");
        return -EINVAL;
    }
    CURLU *u = curl_url();
    if (!u)
        return -ENOMEM;
    char *scheme = NULL, *host = NULL, *port = NULL;
    int err = 0;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, x->url, 0);
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (uc == CURLUE_OK && strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        (void)snprintf(x->origin, sizeof(x->origin), "%s:", scheme);
        fail(x, -EINVAL, "unsupported URL scheme \"%s\" (only http and https)", scheme);
        err = -EINVAL;
    }
    if (!err && uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    if (!err && uc == CURLUE_OK && curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
        port = NULL; /* none given */
    if (!err && uc != CURLUE_OK) {
        rt_strlcpy(x->origin, "(malformed URL)", sizeof(x->origin));
        fail(x, -EINVAL, "malformed URL: %s", curl_url_strerror(uc));
        err = -EINVAL;
    } else if (!err) {
        (void)snprintf(x->origin, sizeof(x->origin), "%s://%s%s%s", scheme, host, port ? ":" : "",
                       port ? port : "");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return err;
}

/* Validate the rest of the request and build the header list. */
static int check_request(xfer *x)
{
    if (x->method && !is_token(x->method, MAX_METHOD_LEN)) {
        fail(x, -EINVAL, "invalid method");
        return -EINVAL;
    }
    if (!x->has_body && x->reqbody_len) {
        fail(x, -EINVAL, "body_len is %zu but body is NULL", x->reqbody_len);
        return -EINVAL;
    }
    if (x->timeout_ms < 0 || x->connect_timeout_ms < 0 || x->idle_ms < 0 || x->max_redirects < 0 ||
        (unsigned)x->mode > RT_HTTP_STREAM_RAW) {
        fail(x, -EINVAL, "negative timeout or redirect count, or unknown mode");
        return -EINVAL;
    }
    for (size_t i = 0; x->headers && x->headers[i]; i++) {
        const char *line = x->headers[i];
        const char *colon = strchr(line, ':');
        if (!colon || colon == line || strpbrk(line, "\r\n")) {
            fail(x, -EINVAL, "request header %zu is not a single \"Name: value\" line", i + 1);
            return -EINVAL;
        }
        x->slist = curl_slist_append(x->slist, line);
        if (!x->slist)
            return -ENOMEM;
    }
    if (x->has_body) /* no 100-continue round trip for large bodies */
        x->slist = curl_slist_append(x->slist, "Expect:");
    return 0;
}

#define SETOPT(e, opt, val) (curl_easy_setopt((e), (opt), (val)) == CURLE_OK)

static bool set_method(xfer *x)
{
    CURL *e = x->easy;
    const char *m = x->method;
    bool ok = true;
    bool send_body =
        x->has_body || (m && (!strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH")));
    if (send_body) {
        ok = ok && SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->reqbody_len);
        ok = ok && SETOPT(e, CURLOPT_POSTFIELDS, x->reqbody ? (char *)x->reqbody : "");
    }
    if (m && !strcmp(m, "HEAD"))
        ok = ok && SETOPT(e, CURLOPT_NOBODY, 1L);
    else if (m && strcmp(m, send_body ? "POST" : "GET") != 0)
        ok = ok && SETOPT(e, CURLOPT_CUSTOMREQUEST, m);
    return ok;
}

static bool set_options(xfer *x)
{
    CURL *e = x->easy;
    int64_t cto = x->connect_timeout_ms ? x->connect_timeout_ms : CONNECT_TIMEOUT_DEFAULT_MS;
    bool https = strncasecmp(x->origin, "https:", 6) == 0;
    bool ok = SETOPT(e, CURLOPT_URL, x->url);
    ok = ok && SETOPT(e, CURLOPT_PRIVATE, (char *)x);
    ok = ok && SETOPT(e, CURLOPT_NOSIGNAL, 1L);
    ok = ok && SETOPT(e, CURLOPT_ERRORBUFFER, x->errbuf);
    ok = ok && SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
    ok = ok && SETOPT(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    ok = ok && SETOPT(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    ok = ok && SETOPT(e, CURLOPT_PIPEWAIT, https ? 1L : 0L); /* wait to multiplex on h2 */
    ok = ok && SETOPT(e, CURLOPT_TCP_KEEPALIVE, 1L);
    ok = ok && SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cto);
    ok = ok && SETOPT(e, CURLOPT_TIMEOUT_MS, (long)x->timeout_ms);
    ok = ok && SETOPT(e, CURLOPT_FOLLOWLOCATION, x->max_redirects > 0 ? 1L : 0L);
    ok = ok && SETOPT(e, CURLOPT_MAXREDIRS, (long)x->max_redirects);
    ok = ok && SETOPT(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    ok = ok && SETOPT(e, CURLOPT_USERAGENT, "hermes");
    ok = ok && SETOPT(e, CURLOPT_HEADERFUNCTION, on_header);
    ok = ok && SETOPT(e, CURLOPT_HEADERDATA, x);
    ok = ok && SETOPT(e, CURLOPT_WRITEFUNCTION, on_write);
    ok = ok && SETOPT(e, CURLOPT_WRITEDATA, x);
    ok = ok && SETOPT(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    ok = ok && SETOPT(e, CURLOPT_CLOSESOCKETDATA, x->h);
    if (x->slist)
        ok = ok && SETOPT(e, CURLOPT_HTTPHEADER, x->slist);
    if (x->mode == RT_HTTP_BUFFER) {
        ok = ok && SETOPT(e, CURLOPT_ACCEPT_ENCODING, ""); /* every decoder curl has */
        ok = ok && SETOPT(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max);
    }
    if (x->ca_file) {
        ok = ok && SETOPT(e, CURLOPT_CAINFO, x->ca_file);
        ok = ok && SETOPT(e, CURLOPT_CAPATH, (char *)NULL); /* this bundle only */
    }
    /* No CURLOPT_PROXY / CURLOPT_NOPROXY: libcurl then reads http_proxy, HTTPS_PROXY,
     * NO_PROXY, ... from the environment (invariant 4). */
    return ok && set_method(x);
}

static void start_on_reactor(rt_reactor *r, void *arg)
{
    xfer *x = arg;
    http *h = tls_http;
    if (!h) {
        /* A stopped or never-attached client: refuse politely (DONE, nothing else). */
        bool stopping = rt_reactor_stopping(r);
        fail(x, stopping ? -ECANCELED : -ENOTCONN,
             stopping ? "the HTTP client is stopping" : "no HTTP client (rt_http_init)");
        send_done(x, rt_reactor_ctx(r));
        xfer_free(x);
        return;
    }
    x->h = h;
    x->t_start_ns = x->last_rx_ns = now_ns();
    rt_map_put(&h->xfers, x->id, x);
    int err = check_url(x);
    if (!err)
        err = check_request(x);
    if (!err) {
        x->easy = curl_easy_init();
        if (!x->easy || !set_options(x))
            fail(x, -ENOMEM, "cannot set up the transfer");
    }
    if (x->err || err) {
        if (!x->err)
            fail(x, err, "cannot set up the transfer");
        complete(h, x, CURLE_OK);
        return;
    }
    if (x->mode != RT_HTTP_BUFFER)
        x->fc = flow_new(x->id, r, x->max);
    if (curl_multi_add_handle(h->multi, x->easy) != CURLM_OK) {
        fail(x, -ENOMEM, "cannot add the transfer to the multi handle");
        complete(h, x, CURLE_OK);
        return;
    }
    x->added = true;
    if (x->idle_ms > 0)
        x->idle_timer = rt_reactor_timer(r, x->idle_ms, on_idle, x);
    RT_DEBUG("http", "start id=%llu %s %s mode=%d", (unsigned long long)x->id, method_name(x),
             x->origin, (int)x->mode);
}

uint64_t rt_http_submit(rt_ctx *cx, const rt_http_request *req)
{
    RT_VERIFY(cx && req);
    xfer *x = xfer_new(cx, req);
    x->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed); /* unique only */
    uint64_t id = x->id;
    stat_add(&stats.submitted, 1);
    rt_busy_enter(x->rt);
    rt_reactor *r = rt_reactor_of(x->rt);
    if (!r) {
        fail(x, -ENOTCONN, "no I/O reactor is running");
        send_done(x, cx);
        xfer_free(x);
        return id;
    }
    rt_reactor_call(r, start_on_reactor, x); /* publishes *x to the reactor thread */
    return id;
}

/* ================================================================ attach / stop */

static void on_reactor_stop(rt_reactor *r, void *arg)
{
    http *h = arg;
    size_t n = 0;
    xfer **all = rt_xcalloc(h->xfers.n + 1, sizeof(xfer *));
    for (size_t i = 0; i < h->xfers.cap; i++)
        if (h->xfers.keys[i])
            all[n++] = h->xfers.vals[i];
    for (size_t i = 0; i < n; i++) {
        fail(all[i], -ECANCELED, "the HTTP client is stopping (reactor stop)");
        complete(h, all[i], CURLE_OK);
    }
    rt_free(all);
    h->closing = true;
    if (h->timer)
        rt_reactor_timer_cancel(r, h->timer);
    h->timer = 0;
    (void)curl_multi_cleanup(h->multi); /* closes the cached connections */
    for (size_t i = 0; i < h->socks.cap; i++)
        if (h->socks.keys[i])
            rt_reactor_del_fd(r, (int)(h->socks.keys[i] - 1));
    rt_map_fini(&h->socks);
    rt_map_fini(&h->xfers);
    tls_http = NULL;
    rt_free(h);
}

typedef struct attach {
    sem_t done;
    int err;
} attach;

static void attach_on_reactor(rt_reactor *r, void *arg)
{
    attach *a = arg;
    if (rt_reactor_stopping(r) || tls_http) {
        a->err = tls_http ? -EALREADY : -ECANCELED;
        sem_post(&a->done);
        return;
    }
    CURLM *m = curl_multi_init();
    if (!m) {
        a->err = -ENOMEM;
        sem_post(&a->done);
        return;
    }
    http *h = rt_xcalloc(1, sizeof(*h));
    h->r = r;
    h->multi = m;
    rt_map_init(&h->xfers);
    rt_map_init(&h->socks);
    bool ok = curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket) == CURLM_OK &&
              curl_multi_setopt(m, CURLMOPT_SOCKETDATA, h) == CURLM_OK &&
              curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_curl_timer) == CURLM_OK &&
              curl_multi_setopt(m, CURLMOPT_TIMERDATA, h) == CURLM_OK &&
              curl_multi_setopt(m, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX) == CURLM_OK;
    RT_VERIFY(ok); /* these options exist in every libcurl we accept (Deps.cmake) */
    tls_http = h;
    rt_reactor_on_stop(r, on_reactor_stop, h);
    a->err = 0;
    sem_post(&a->done); /* release: h is published to the reactor thread only */
}

static void curl_setup(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int rt_http_init(rt_reactor *r)
{
    if (!r)
        return -EINVAL;
    pthread_once(&curl_once, curl_setup);
    if (curl_init_rc != CURLE_OK) {
        RT_ERROR("http", "curl_global_init failed: %s", curl_easy_strerror(curl_init_rc));
        return -ENOMEM;
    }
    const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    if (!(vi->features & CURL_VERSION_ASYNCHDNS)) {
        RT_ERROR("http",
                 "libcurl %s resolves names synchronously (no AsynchDNS); refusing to "
                 "block the reactor",
                 vi->version);
        return -ENOTSUP;
    }
    attach a;
    RT_VERIFY(sem_init(&a.done, 0, 0) == 0);
    a.err = 0;
    rt_reactor_call(r, attach_on_reactor, &a);
    while (sem_wait(&a.done) != 0)
        ; /* EINTR only */
    sem_destroy(&a.done);
    return a.err;
}
