/*
 * rt_ws — WebSocket client connections for actors, on the libwebsockets service thread
 * (rt_lws.h).
 *
 * An actor asks for a connection with rt_ws_connect() and hears about it only through
 * messages sent to opts.reply_to:
 *
 *   RT_WS_MSG_OPEN     the upgrade succeeded (HTTP status and response headers);
 *   RT_WS_MSG_MESSAGE  one complete message: fragments are reassembled, up to max_message
 *                      bytes (a bigger message closes the connection with 1009);
 *   RT_WS_MSG_CLOSED   the connection is over, whatever the cause.
 *
 * Guarantees:
 *   1. Every rt_ws_connect() that returns an id is followed by exactly one RT_WS_MSG_CLOSED
 *      for it: refused, DNS or TLS failure, rejected upgrade, peer close, abrupt disconnect,
 *      idle timeout, local close, overflow or service shutdown. Nothing follows it.
 *   2. OPEN, MESSAGEs and CLOSED arrive in that order. Messages from rt_ws_send() go out in
 *      call order (per calling thread), after the upgrade; rt_ws_close() sends its close
 *      frame after the messages queued before it.
 *   3. Pings go out every ping_interval_ms; pongs from the peer are handled inside. With
 *      idle_timeout_ms set, a connection that receives no frame at all (data, ping or pong)
 *      for that long is dropped and reported with -ETIMEDOUT: this is how a half-open TCP
 *      connection is detected. There is no automatic reconnect: the owner decides.
 *   4. Everything untrusted is bounded: the reassembled message (max_message) and the
 *      unsent data per connection (max_send_queue; overflow drops the connection with
 *      -ENOBUFS rather than growing without limit).
 *
 * Errors in RT_WS_MSG_CLOSED.err: 0 (clean close by either side), -ECONNREFUSED (TCP connect
 * failed), -ETIMEDOUT (connect or idle timeout), -EPROTO (TLS failure, bad upgrade reply),
 * -EACCES (upgrade answered 401/403), -ECONNRESET (connection lost without a close frame),
 * -EMSGSIZE (message over max_message), -ENOBUFS (send queue over max_send_queue),
 * -ECANCELED (rt_ws_close before the connection opened), -EINVAL (bad options),
 * -ENOENT (ca_file unreadable), -ESHUTDOWN (the lws service is stopping or not running).
 *
 * DNS resolution happens on the service thread and blocks it (lws 4.1 without async DNS);
 * fine for a handful of platform connections, a known limit for many distinct hosts.
 *
 * Threads: rt_ws_connect, rt_ws_send and rt_ws_close from any thread (a behaviour with its
 * cx, or any other thread with rt_ctx_external). They never block.
 */
#ifndef RT_WS_H
#define RT_WS_H

#include "rt_actor.h"
#include "rt_lws.h"
#include "rt_msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rt_ws_opts {
    const char *url;            /* ws://host[:port]/path?query or wss://... */
    const char *const *headers; /* extra request headers "Name: value", NULL-terminated */
    const char *ca_file;        /* PEM CA bundle for wss://; NULL: the system's CAs */
    size_t max_message;         /* reassembled message cap; 0 = 16 MiB */
    size_t max_send_queue;      /* unsent bytes cap; 0 = 16 MiB */
    int64_t ping_interval_ms;   /* 0: never ping */
    int64_t idle_timeout_ms;    /* no frame for this long: close with -ETIMEDOUT; 0: never */
    int64_t connect_timeout_ms; /* TCP + TLS + upgrade; 0 = 15 s */
    rt_ref reply_to;            /* receives OPEN / MESSAGE / CLOSED */
    uint64_t tag;               /* copied into every message */
} rt_ws_opts;

enum {
    RT_WS_MSG_OPEN = RT_MSG_TYPE(RT_MSG_MODULE_IO, 0x200),
    RT_WS_MSG_MESSAGE = RT_MSG_TYPE(RT_MSG_MODULE_IO, 0x201),
    RT_WS_MSG_CLOSED = RT_MSG_TYPE(RT_MSG_MODULE_IO, 0x202),
};

#define RT_WS_REASON_MAX 124 /* close reason bytes (RFC 6455: at most 123) + NUL */

/* The upgrade succeeded. */
typedef struct rt_ws_msg_open {
    rt_msg hdr;
    uint64_t conn;
    uint64_t tag;
    int http_status;               /* 101 */
    const rt_http_header *headers; /* the response headers lws recognises; in `block` */
    size_t nheaders;
    void *block; /* owned: holds headers and their strings */
} rt_ws_msg_open;

/* One complete message. data is owned (steal it by setting it to NULL), NUL-terminated for
 * convenience (the NUL is not counted in len). */
typedef struct rt_ws_msg_message {
    rt_msg hdr;
    uint64_t conn;
    uint64_t tag;
    char *data;
    size_t len;
    bool binary;
} rt_ws_msg_message;

/* The connection is over (guarantee 1). */
typedef struct rt_ws_msg_closed {
    rt_msg hdr;
    uint64_t conn;
    uint64_t tag;
    int err;                       /* 0 or -errno, see the list above */
    int code;                      /* close code: the peer's, ours, or 1006 when none */
    int http_status;               /* the upgrade reply's status when it was not 101, or 0 */
    char reason[RT_WS_REASON_MAX]; /* close reason, or what went wrong */
} rt_ws_msg_closed;

/*
 * Open a connection. Copies everything in o. Returns the connection id (never 0), after which
 * exactly one RT_WS_MSG_CLOSED follows (guarantee 1); invalid options or a missing service
 * are reported that way too, with -EINVAL / -ESHUTDOWN. Returns 0, and sends nothing, only
 * when o is NULL or o->reply_to is 0.
 */
uint64_t rt_ws_connect(rt_ctx *cx, const rt_ws_opts *o);

/*
 * Queue one message (copied) for conn. Returns 0 when queued (the connection may still turn
 * out to be gone: its RT_WS_MSG_CLOSED says so and the data is dropped), -EINVAL for conn 0
 * or data NULL with len > 0, -ESHUTDOWN when the service is not running.
 */
int rt_ws_send(rt_ctx *cx, uint64_t conn, const void *data, size_t len, bool binary);

/*
 * Close conn with code (0 means 1000) and an optional reason (at most 123 bytes; longer is
 * cut). Queued messages go out first. Before the connection is open the attempt is
 * abandoned (-ECANCELED in RT_WS_MSG_CLOSED). Returns 0, -EINVAL for a code a client may not
 * send, -ESHUTDOWN when the service is not running.
 */
int rt_ws_close(rt_ctx *cx, uint64_t conn, int code, const char *reason);

#endif /* RT_WS_H */
