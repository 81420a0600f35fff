/*
 * rt_reactor — the I/O thread: one epoll loop on which the HTTP client (libcurl multi),
 * subprocesses and signals hang their file descriptors and timeouts.
 *
 * Actors never touch sockets or pipes. They hand a request to the reactor with
 * rt_reactor_call() (any thread; a lock-free queue plus one coalesced eventfd write), the
 * reactor does the waiting, and the results come back to the asking actor as messages sent
 * from the reactor thread (rt_reactor_ctx). Modules keep their state owned by the reactor
 * thread, so they need no locks.
 *
 * The WebSocket client and HTTP server use libwebsockets, whose Debian build has no
 * external-poll support; they run their own service thread (see rt_lws.h) with the same
 * message-only contract.
 *
 * Threads: rt_reactor_start/stop from the controlling thread; rt_reactor_call and
 * rt_reactor_of from any thread; everything else on the reactor thread only.
 */
#ifndef RT_REACTOR_H
#define RT_REACTOR_H

#include "rt_actor.h"
#include "rt_sched.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct rt_reactor rt_reactor;

/* Start the reactor thread and attach it to rt (RT_SLOT_REACTOR). */
rt_reactor *rt_reactor_start(rt_runtime *rt);
/* Run the stop hooks on the reactor thread (modules cancel and report their work), stop
 * the thread and free the reactor. Call before rt_runtime_free. NULL: no-op. */
void rt_reactor_stop(rt_reactor *r);
/* The reactor attached to rt, or NULL. */
rt_reactor *rt_reactor_of(rt_runtime *rt);
rt_runtime *rt_reactor_runtime(rt_reactor *r);

typedef void (*rt_reactor_fn)(rt_reactor *r, void *arg);
/* Run fn(r, arg) on the reactor thread, in call order per calling thread. Any thread.
 * If the reactor is stopping, fn still runs (modules then refuse the work politely). */
void rt_reactor_call(rt_reactor *r, rt_reactor_fn fn, void *arg);

/* ---- reactor thread only ---- */

/* A context for sending messages from the reactor thread. */
rt_ctx *rt_reactor_ctx(rt_reactor *r);
bool rt_reactor_stopping(rt_reactor *r);

typedef void (*rt_reactor_fd_cb)(rt_reactor *r, int fd, uint32_t events, void *arg);
/* Watch fd for EPOLLIN/EPOLLOUT/...; one watcher per fd. 0 or -errno. */
int rt_reactor_add_fd(rt_reactor *r, int fd, uint32_t events, rt_reactor_fd_cb cb, void *arg);
int rt_reactor_mod_fd(rt_reactor *r, int fd, uint32_t events);
/* Stop watching (the caller closes the fd). Safe to call from inside the fd's callback. */
void rt_reactor_del_fd(rt_reactor *r, int fd);

/* One-shot timer on the real monotonic clock (never the fake test clock). Returns an id. */
uint64_t rt_reactor_timer(rt_reactor *r, int64_t ms, rt_reactor_fn fn, void *arg);
bool rt_reactor_timer_cancel(rt_reactor *r, uint64_t id);

/* Called on the reactor thread when the reactor stops, in registration order. */
void rt_reactor_on_stop(rt_reactor *r, rt_reactor_fn fn, void *arg);

/* Monotonic nanoseconds (real clock). Any thread. */
int64_t rt_reactor_now_ns(void);

#endif /* RT_REACTOR_H */
