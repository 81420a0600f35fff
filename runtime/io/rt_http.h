/*
 * rt_http — the asynchronous HTTP client: libcurl multi driven by the reactor's epoll loop.
 *
 * An actor fills an rt_http_request and calls rt_http_submit(); the request is copied and
 * handed to the reactor thread, and everything that happens comes back as messages to
 * reply_to. Nothing ever blocks the caller. Per request the receiver sees:
 *
 *   stream modes:  HEAD (once, when the response headers are complete), then SSE events
 *                  (RT_HTTP_STREAM_SSE) or DATA chunks (RT_HTTP_STREAM_RAW) — only for a 2xx
 *                  status; a non-2xx body is buffered (capped) and comes in DONE instead, so
 *                  error bodies such as a 429's JSON can be read;
 *   every mode:    exactly one DONE, always last: success, error, cancel or reactor stop.
 *
 * Invariants:
 *   1. One DONE per submitted request, after every other message of that request (the
 *      reactor is the only sender, on one lane, so order holds).
 *   2. err in DONE is 0 whenever a whole HTTP response arrived, whatever its status. Errors
 *      are -errno: -EINVAL (bad URL, method, header or scheme), -ECONNREFUSED,
 *      -EHOSTUNREACH (unreachable or unresolvable host), -ETIMEDOUT (whole, connect or idle
 *      timeout), -ECONNRESET (the peer closed or reset mid-response), -EPROTO (TLS failure,
 *      malformed response), -E2BIG (body, event or headers over the cap), -ELOOP (too many
 *      redirects), -ECANCELED (rt_http_cancel, receiver gone, client stopping), -ENOTCONN
 *      (no HTTP client attached). errmsg then says what happened in plain words, with
 *      curl's own message; it never contains credentials, query strings or headers.
 *   3. Memory is bounded by max_body: the buffered body, one SSE event, and the stream
 *      bytes delivered to the receiver but not yet handled. When the receiver falls behind
 *      by more than max_body the transfer is paused (TCP flow control pushes back on the
 *      server) and resumes once it has caught up to half that — no caller action needed.
 *   4. One curl multi handle per reactor: connections are kept alive and reused, HTTP/2 is
 *      negotiated over TLS and multiplexed, DNS runs on curl's threaded resolver, proxies
 *      come from the environment (http_proxy, HTTPS_PROXY, NO_PROXY, ...) as libcurl reads
 *      them. TLS is OpenSSL with the system CA store unless ca_file is given.
 *
 * Threads: rt_http_init on the controlling thread; rt_http_submit, rt_http_cancel,
 * rt_http_stats_get and rt_http_header_get from any thread. All curl state lives on the
 * reactor thread.
 */
#ifndef RT_HTTP_H
#define RT_HTTP_H

#include "rt_http_header.h"
#include "rt_actor.h"
#include "rt_reactor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_HTTP_MAX_BODY_DEFAULT  (16u << 20)  /* max_body when 0 */
#define RT_HTTP_MAX_HEADERS_BYTES (256u << 10) /* response header block cap */

typedef enum rt_http_mode {
    RT_HTTP_BUFFER,     /* whole body in DONE */
    RT_HTTP_STREAM_SSE, /* HEAD, SSE events, DONE */
    RT_HTTP_STREAM_RAW, /* HEAD, DATA chunks, DONE */
} rt_http_mode;

typedef struct rt_http_request {
    const char *method;         /* NULL: GET, or POST when a body is set; "HEAD", "PUT", ... */
    const char *url;            /* http:// or https:// only */
    const char *const *headers; /* NULL-terminated "Name: value" lines, or NULL */
    const void *body;           /* request body (sent with Content-Length), or NULL; give a
                                   Content-Type header (the default is form-urlencoded) */
    size_t body_len;
    int64_t timeout_ms;         /* whole transfer; 0 = none */
    int64_t connect_timeout_ms; /* 0 = 10 s */
    int64_t idle_timeout_ms;    /* -ETIMEDOUT when no byte arrives for this long; 0 = none */
    size_t max_body;            /* body / one SSE event / unhandled stream bytes; 0 = 16 MiB */
    int max_redirects;          /* follow up to this many redirects; 0 = do not follow */
    rt_http_mode mode;
    const char *ca_file; /* PEM bundle trusted instead of the system store, or NULL */
    rt_ref reply_to;     /* receives HEAD/SSE/DATA/DONE */
    uint64_t tag;        /* echoed in every message */
} rt_http_request;

/*
 * Attach the HTTP client to a running reactor: creates the curl multi handle on the
 * reactor thread and registers a stop hook that ends every transfer in flight with DONE
 * (-ECANCELED) when the reactor stops. Controlling thread, after rt_reactor_start; waits
 * for the reactor to confirm. 0, -EINVAL (r NULL), -EALREADY, -ENOTSUP (libcurl lacks
 * AsynchDNS, so DNS would block the reactor), -ENOMEM.
 */
int rt_http_init(rt_reactor *r);

/*
 * Start a request. Copies everything in *req (the caller may free it at once); the result
 * comes as messages to req->reply_to, the last being DONE. Returns the request id (never
 * 0), which every message carries. Any thread with its context; never fails synchronously:
 * bad input, a missing reactor or a stopped client are reported in DONE. Keeps
 * rt_wait_quiescent waiting until DONE is sent.
 */
uint64_t rt_http_submit(rt_ctx *cx, const rt_http_request *req);

/*
 * Stop a request at once: its connection is closed (HTTP/1) or its stream reset (HTTP/2)
 * and DONE follows with -ECANCELED; nothing else is sent for it after that. A no-op if it
 * already finished. Any thread; a cancel issued after rt_http_submit returned (in
 * happens-before order, e.g. later in the same actor) always finds the request.
 */
void rt_http_cancel(rt_ctx *cx, uint64_t id);

/* ---- messages (module RT_MSG_MODULE_IO, 0x100..0x1ff) ---- */

enum {
    RT_IO_MSG_HTTP_HEAD = RT_MSG_TYPE(RT_MSG_MODULE_IO, 0x100),
    RT_IO_MSG_HTTP_SSE = RT_MSG_TYPE(RT_MSG_MODULE_IO, 0x101),
    RT_IO_MSG_HTTP_DATA = RT_MSG_TYPE(RT_MSG_MODULE_IO, 0x102),
    RT_IO_MSG_HTTP_DONE = RT_MSG_TYPE(RT_MSG_MODULE_IO, 0x103),
};

/*
 * Case-insensitive lookup: the value of the first header named name, or NULL. Borrowed from
 * the array. Any thread.
 */
const char *rt_http_header_get(const rt_http_header *h, size_t n, const char *name);

/*
 * Header arrays in messages are one allocation (the array followed by its strings): a
 * receiver may steal `headers` whole and later release it with rt_free.
 */

/* Stream modes: the final response's status and headers, once, before any SSE/DATA. */
typedef struct rt_io_msg_http_head {
    rt_msg hdr;
    uint64_t id;             /* from rt_http_submit */
    uint64_t tag;            /* from the request */
    int status;              /* HTTP status code */
    rt_http_header *headers; /* owned, stealable */
    size_t nheaders;
} rt_io_msg_http_head;

/* RT_HTTP_STREAM_SSE, 2xx only: one parsed event (see rt_sse.h). */
typedef struct rt_io_msg_http_sse {
    rt_msg hdr;
    uint64_t id;
    uint64_t tag;
    char *event;      /* event type ("message" by default); owned, stealable */
    char *data;       /* data lines joined with "\n", NUL-terminated; owned, stealable */
    size_t data_len;  /* bytes in data */
    char *last_id;    /* last event ID so far, or NULL when none; owned, stealable */
    int64_t retry_ms; /* reconnection time the stream set, or -1 */
} rt_io_msg_http_sse;

/* RT_HTTP_STREAM_RAW, 2xx only: the next bytes of the body, in order. */
typedef struct rt_io_msg_http_data {
    rt_msg hdr;
    uint64_t id;
    uint64_t tag;
    char *data; /* owned, stealable; NUL-terminated for convenience */
    size_t len;
} rt_io_msg_http_data;

/* Times from the start of the transfer on the reactor, in microseconds (0: not reached). */
typedef struct rt_http_timing {
    int64_t queue_us;   /* from rt_http_submit to the reactor picking the request up */
    int64_t dns_us;     /* name resolved */
    int64_t connect_us; /* TCP connected (to the host or the proxy) */
    int64_t tls_us;     /* TLS handshake done */
    int64_t ttfb_us;    /* first response byte */
    int64_t total_us;   /* whole transfer */
} rt_http_timing;

/* Always the last message of a request. */
typedef struct rt_io_msg_http_done {
    rt_msg hdr;
    uint64_t id;
    uint64_t tag;
    int err;                 /* 0 or -errno (invariant 2) */
    char *errmsg;            /* NULL when err == 0; owned, stealable */
    int status;              /* HTTP status of the final response, 0 if none arrived */
    rt_http_header *headers; /* the final response's headers; owned, stealable */
    size_t nheaders;
    /* BUFFER mode: the body; stream modes: a non-2xx body. NUL-terminated; NULL when none
     * (or on error). Owned, stealable. */
    char *body;
    size_t body_len;
    uint64_t rx_bytes;     /* body bytes received (after content decoding) */
    int http_version;      /* 10, 11, 20 or 30; 0 if unknown */
    bool reused;           /* the request went over a kept-alive connection */
    int64_t retry_after_s; /* Retry-After in seconds (either form), or 0 */
    rt_http_timing timing;
} rt_io_msg_http_done;

/* ---- statistics ---- */

/* Process-wide counters (advisory; relaxed atomics). */
typedef struct rt_http_stats {
    uint64_t submitted;    /* requests submitted */
    uint64_t completed;    /* DONE messages sent */
    uint64_t active;       /* submitted - completed */
    uint64_t paused;       /* transfers paused now because their receiver is behind */
    uint64_t pauses;       /* times any transfer was paused */
    uint64_t backlog_peak; /* most unhandled stream bytes one transfer ever had */
} rt_http_stats;

/* Snapshot of the counters. Any thread. */
void rt_http_stats_get(rt_http_stats *s);

#endif /* RT_HTTP_H */
