/*
 * rt_httpd — an HTTP/1.1 server whose requests are answered by actors, on the libwebsockets
 * service thread (rt_lws.h).
 *
 * Each request goes, as one RT_HTTPD_MSG_REQUEST, to the handler actor of the route with
 * the longest matching path prefix; the actor answers from any thread with rt_httpd_reply(),
 * or streams (SSE) with rt_httpd_stream_begin/write/end. Requests for no route get 404
 * without bothering any actor.
 *
 * lws 4.1's own HTTP server cannot answer malformed requests with 400, rejects methods it
 * does not know by dropping the connection, and cannot list arbitrary request headers, so
 * this module takes the sockets in lws' raw role and speaks HTTP/1.1 itself (RFC 9112), with
 * lws doing the polling, buffering and writability. The listening socket is our own, bound on
 * the calling thread, so bind errors come back as errno values.
 *
 * Guarantees:
 *   1. Limits are enforced before any actor sees a request: request line + headers over
 *      max_header → 431 (414 when the request line alone is too long), body over max_body →
 *      413, more than 100 header fields → 431. Malformed requests → 400; unsupported
 *      transfer codings and methods outside GET HEAD POST PUT DELETE PATCH OPTIONS → 501;
 *      HTTP versions other than 1.0/1.1 → 505. Each of these closes the connection.
 *   2. Keep-alive: HTTP/1.1 connections stay open unless either side says "Connection:
 *      close"; pipelined requests are answered in order, one at a time. An idle connection
 *      is closed after idle_timeout_ms; a request that takes longer than that to arrive gets
 *      408. A route whose handler actor has ended answers 503.
 *   3. An actor owns a request from RT_HTTPD_MSG_REQUEST until it replies or ends its stream.
 *      If it has not started a reply within request_timeout_ms the client gets 504; if the
 *      client goes away, the server stops or the stream overflows while the actor owns the
 *      request, the actor gets exactly one RT_HTTPD_MSG_GONE. Nothing follows GONE, and late
 *      replies for such a request are dropped.
 *   4. Streams use chunked framing (HTTP/1.1 clients) or close-delimited framing (1.0).
 *      Unsent bytes per stream are capped at max_stream_queue: a client that does not read
 *      fast enough is dropped (RT_HTTPD_MSG_GONE with -ENOBUFS), nothing grows unbounded.
 *   5. rt_httpd_stop stops accepting at once, closes idle connections, lets requests in
 *      flight finish for up to grace_ms, then closes the rest.
 *
 * Threads: rt_httpd_start/rt_httpd_stop/rt_httpd_port from the controlling thread (they
 * wait for the service thread); the reply and stream functions from any thread, never
 * blocking.
 */
#ifndef RT_HTTPD_H
#define RT_HTTPD_H

#include "rt_actor.h"
#include "rt_lws.h"
#include "rt_msg.h"
#include "rt_sched.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rt_httpd rt_httpd;

typedef struct rt_httpd_route {
    /* "/v1" matches the paths "/v1" and "/v1/...", not "/v1x"; a prefix ending in '/'
     * matches whatever follows it; "/" matches every path (and OPTIONS *). */
    const char *prefix;
    rt_ref handler;
} rt_httpd_route;

typedef struct rt_httpd_opts {
    const char *host;  /* IP address to bind; NULL = "127.0.0.1" */
    int port;          /* 0 = ephemeral (see rt_httpd_port) */
    size_t max_body;   /* 0 = 1 MiB */
    size_t max_header; /* request line + header fields; 0 = 16 KiB */
    const rt_httpd_route *routes;
    size_t nroutes;
    int64_t request_timeout_ms; /* until the actor starts its reply; 0 = 30 s */
    int64_t idle_timeout_ms;    /* keep-alive idle time, and time to read a request; 0 = 60 s */
    size_t max_conns;           /* 0 = 1024; more are accepted and closed at once */
    size_t max_stream_queue;    /* unsent bytes per response; 0 = 4 MiB */
} rt_httpd_opts;

enum {
    RT_HTTPD_MSG_REQUEST = RT_MSG_TYPE(RT_MSG_MODULE_IO, 0x210),
    RT_HTTPD_MSG_GONE = RT_MSG_TYPE(RT_MSG_MODULE_IO, 0x211),
};

/* A request for the handler actor. The strings and the header array live in `block`, which
 * the message owns; body is owned separately (steal it by setting it to NULL). */
typedef struct rt_httpd_msg_request {
    rt_msg hdr;
    uint64_t req;                  /* the id to answer with */
    const char *method;            /* "GET", "POST", ... */
    const char *path;              /* as sent (percent-encoded), without the query */
    const char *query;             /* after '?', "" when none */
    const rt_http_header *headers; /* in arrival order, names as sent */
    size_t nheaders;
    char *body; /* NUL-terminated ("" when none); not counted in body_len */
    size_t body_len;
    const char *peer; /* "127.0.0.1:54321" or "[::1]:54321" */
    void *block;
} rt_httpd_msg_request;

/* The client, a timeout or the server's stop took a request from the actor (guarantee 3). */
typedef struct rt_httpd_msg_gone {
    rt_msg hdr;
    uint64_t req;
    int err; /* -ECONNRESET (client left), -ETIMEDOUT (504 sent), -ENOBUFS, -ESHUTDOWN */
} rt_httpd_msg_gone;

/*
 * Bind host:port, listen, and start serving on rt's lws service. Copies o (routes
 * included). Returns NULL with *err set: -EINVAL (bad options or host not an IP address),
 * -EADDRINUSE, -EACCES, ... from bind, -ESHUTDOWN when rt has no lws service.
 */
rt_httpd *rt_httpd_start(rt_runtime *rt, const rt_httpd_opts *o, int *err);
/* The bound port (useful with port 0). */
int rt_httpd_port(rt_httpd *h);
/* Graceful stop (guarantee 5), then free h. Blocks the calling thread for up to about
 * grace_ms. Call before rt_lws_stop; after it, only frees h. NULL: no-op. */
void rt_httpd_stop(rt_httpd *h, int64_t grace_ms);

/*
 * Answer req: status (200-599), extra headers ("Name: value", NULL-terminated, may be NULL)
 * and a body (copied). The server adds Content-Length, Date and Connection itself and drops
 * any of those (and Transfer-Encoding) given here. Returns 0 once queued (a request that is
 * already gone is dropped silently), -EINVAL for a bad status or a malformed header,
 * -ESHUTDOWN when the service is not running.
 */
int rt_httpd_reply(rt_ctx *cx, uint64_t req, int status, const char *const *headers,
                   const void *body, size_t len);

/* Start a streamed response (e.g. "Content-Type: text/event-stream"); then any number of
 * writes (each copied and sent as it comes), then end. Same returns as rt_httpd_reply. */
int rt_httpd_stream_begin(rt_ctx *cx, uint64_t req, int status, const char *const *headers);
int rt_httpd_stream_write(rt_ctx *cx, uint64_t req, const void *data, size_t len);
int rt_httpd_stream_end(rt_ctx *cx, uint64_t req);

/* The first value of header name (case-insensitive) in m, or NULL. */
const char *rt_httpd_header(const rt_httpd_msg_request *m, const char *name);

#endif /* RT_HTTPD_H */
