/*
 * rt_lws — the libwebsockets service thread shared by the WebSocket client (rt_ws.h) and the
 * HTTP server (rt_httpd.h).
 *
 * Debian's libwebsockets 4.1 has no external-poll support, so lws cannot hang its sockets on
 * the reactor's epoll; it runs its own poll loop on one thread per runtime instead, with the
 * same contract as the reactor: actors never touch a `struct lws`; they submit commands
 * (any thread, a lock-free MPSC queue plus one coalesced lws_cancel_service() wake-up), the
 * service thread does the I/O, and results come back to actors as messages.
 *
 * Invariants:
 *   1. Every lws call happens on the service thread (lws_cancel_service, documented as
 *      callable from any thread, is the one exception). That includes creating and
 *      destroying the lws context.
 *   2. Commands from one thread run in submission order. Each command runs exactly once:
 *      on the service thread, or, for commands that race with rt_lws_stop, on the stopping
 *      thread after the service thread has gone (then rt_lws_stopping() is true and the
 *      command must not call lws).
 *   3. A submitted command counts as external work (rt_busy_enter) until it has run, so
 *      rt_wait_quiescent() waits for it.
 *
 * Stop order: rt_lws_stop() runs each module's shutdown hook on the service thread (they
 * close their connections and report them), destroys the context there, joins the thread,
 * runs the commands that raced with the stop, then each module's fini hook.
 *
 * Threads: rt_lws_start/rt_lws_stop from the controlling thread (not a worker, not the
 * service thread); rt_lws_of, rt_lws_submit, rt_lws_runtime from any thread; everything
 * marked "service thread" only from lws callbacks and commands.
 */
#ifndef RT_LWS_H
#define RT_LWS_H

#include "rt_http_header.h"
#include "rt_actor.h"
#include "rt_msg.h"
#include "rt_sched.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lws;
struct lws_context;

typedef struct rt_lws rt_lws;

/*
 * Start the service thread, create the lws context on it and attach it to rt
 * (RT_SLOT_LWS). Returns NULL with *err = -EEXIST if rt already has one, -ENOMEM/-EIO when
 * lws cannot create its context. err may be NULL.
 */
rt_lws *rt_lws_start(rt_runtime *rt, int *err);

/*
 * Close every connection (each is reported to its owner as if the peer had gone, with
 * -ESHUTDOWN), destroy the context, stop the thread and free everything. Detaches from rt
 * first, so later rt_ws_ and rt_httpd_ calls fail cleanly with -ESHUTDOWN. Call it when no
 * other thread can be inside an rt_ws_ or rt_httpd_ call any more (typically after
 * rt_shutdown), and before rt_runtime_free. NULL: no-op.
 */
void rt_lws_stop(rt_lws *l);

/* The service attached to rt, or NULL. Any thread. */
rt_lws *rt_lws_of(rt_runtime *rt);
rt_runtime *rt_lws_runtime(rt_lws *l);

/* ---- for modules built on the service (rt_ws.c, rt_httpd.c) ---- */

/* A command: embed as the first member of a module's command struct. fn owns c and frees
 * it. */
typedef struct rt_lws_cmd rt_lws_cmd;
typedef void (*rt_lws_cmd_fn)(rt_lws *l, rt_lws_cmd *c);
struct rt_lws_cmd {
    rt_qnode q; /* queue link; owned by rt_lws */
    rt_lws_cmd_fn fn;
};

/* Queue c to run on the service thread (invariant 2). Takes ownership. Any thread. */
void rt_lws_submit(rt_lws *l, rt_lws_cmd *c);

/* Per-module state slots, so each module keeps its tables without globals. */
enum rt_lws_mod { RT_LWS_MOD_WS = 0, RT_LWS_MOD_HTTPD = 1, RT_LWS_MOD_MAX = 4 };

typedef void (*rt_lws_hook)(rt_lws *l, void *state);
/*
 * Register module state for slot m (service thread, once per module). shutdown runs on the
 * service thread when the service stops, before the context is destroyed; fini runs after
 * the thread has gone and every command has run, and frees state.
 */
void rt_lws_set_module(rt_lws *l, enum rt_lws_mod m, void *state, rt_lws_hook shutdown,
                       rt_lws_hook fini);
/* The state registered for m, or NULL. Service thread (or a command after the stop). */
void *rt_lws_module(rt_lws *l, enum rt_lws_mod m);

/* Service thread only. */
struct lws_context *rt_lws_context(rt_lws *l);
/* The rt_lws that owns wsi's context. Service thread. */
rt_lws *rt_lws_from_wsi(struct lws *wsi);
/* A context for sending messages to actors from the service thread. */
rt_ctx *rt_lws_ctx(rt_lws *l);
/* True once the stop has begun: modules refuse new work and must not create connections. */
bool rt_lws_stopping(rt_lws *l);

/* A one-shot rendezvous for the controlling thread waiting on the service thread. */
typedef struct rt_lws_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int result;
} rt_lws_wait;
void rt_lws_wait_init(rt_lws_wait *w);
void rt_lws_wait_fini(rt_lws_wait *w);
/* Any thread: record result and wake the waiter. */
void rt_lws_wait_signal(rt_lws_wait *w, int result);
/* Block until signalled (returns the result) or -ETIMEDOUT after timeout_ms. */
int rt_lws_wait_for(rt_lws_wait *w, int64_t timeout_ms);

/* Monotonic clock in nanoseconds. Any thread. */
int64_t rt_lws_now_ns(void);

#endif /* RT_LWS_H */
