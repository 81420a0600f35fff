/*
 * rt_actor — actors: spawn, send, exit, links, monitors and interrupts.
 *
 * An actor is a behaviour function plus state plus a two-lane mailbox. It is known by an
 * rt_ref, a stable 64-bit id that is never a pointer: a send to an actor that has ended is
 * a clean failure counted as a dead letter, never a crash.
 *
 * Guarantees (see docs/runtime.md for the reasoning):
 *   1. A behaviour never runs on two threads at once, and runs only when its mailbox holds
 *      a message. It is scheduled exactly when its mailbox goes from empty to non-empty.
 *   2. Messages from one sender to one receiver on one lane arrive in the order sent.
 *   3. The urgent lane (interrupt, stop, abnormal exit) is drained before the normal lane.
 *   4. An actor handles at most `batch` normal messages per run, then yields the worker.
 *   5. rt_send moves the message: the runtime frees what the receiver does not steal.
 *
 * Threads: functions taking rt_ctx may be called from a behaviour (with its cx) or from
 * any other thread with the context from rt_ctx_external(). Functions that act on "the
 * current actor" (rt_self, rt_exit, rt_link, rt_monitor, rt_trap_exit, rt_register_name)
 * need a behaviour's cx and return -EINVAL / 0 otherwise.
 */
#ifndef RT_ACTOR_H
#define RT_ACTOR_H

#include "rt_msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t rt_ref;      /* 0 is "no actor" */
typedef struct rt_ctx rt_ctx; /* per-thread scheduling context */
typedef struct rt_runtime rt_runtime;

typedef void (*rt_behaviour)(rt_ctx *cx, void *state, rt_msg *m);

typedef struct rt_actor_type {
    const char *name;    /* short name for logs: "session", "gateway" */
    rt_behaviour behave; /* the only entry point; borrows m */
    /* Releases what the state owns; called once when the actor ends (never sends). May be
     * NULL. For state_size == 0 it receives the state pointer given to rt_spawn. */
    void (*fini)(void *state);
    /* Bytes of state the runtime allocates with the actor (zeroed or copied from init).
     * 0: the init pointer passed to rt_spawn becomes the state, owned by the actor. */
    size_t state_size;
} rt_actor_type;

/* Exit reasons. Values >= RT_EXIT_USER are free for callers. */
enum rt_exit_reason {
    RT_EXIT_NORMAL = 0,   /* finished its work; links ignore it unless trapping exits */
    RT_EXIT_STOPPED = 1,  /* asked to stop (rt_stop) */
    RT_EXIT_KILLED = 2,   /* rt_kill: untrappable */
    RT_EXIT_LINKED = 3,   /* a linked actor ended abnormally */
    RT_EXIT_NOPROC = 4,   /* the link or monitor target did not exist */
    RT_EXIT_SHUTDOWN = 5, /* the runtime is shutting down */
    RT_EXIT_ERROR = 6,    /* the actor gave up on an error */
    RT_EXIT_USER = 100,
};

/* Runtime message types (module 0). Behaviours see EXIT (when trapping), DOWN, INTERRUPT,
 * STOP and TIMEOUT; the others are handled by the runtime. */
enum {
    RT_MSG_EXIT = RT_MSG_TYPE(RT_MSG_MODULE_RT, 1),
    RT_MSG_DOWN = RT_MSG_TYPE(RT_MSG_MODULE_RT, 2),
    RT_MSG_INTERRUPT = RT_MSG_TYPE(RT_MSG_MODULE_RT, 3),
    RT_MSG_STOP = RT_MSG_TYPE(RT_MSG_MODULE_RT, 4),
    RT_MSG_TIMEOUT = RT_MSG_TYPE(RT_MSG_MODULE_RT, 5),
    RT_MSG_KILL = RT_MSG_TYPE(RT_MSG_MODULE_RT, 16),
    RT_MSG_LINK = RT_MSG_TYPE(RT_MSG_MODULE_RT, 17),
    RT_MSG_UNLINK = RT_MSG_TYPE(RT_MSG_MODULE_RT, 18),
    RT_MSG_MONITOR = RT_MSG_TYPE(RT_MSG_MODULE_RT, 19),
    RT_MSG_DEMONITOR = RT_MSG_TYPE(RT_MSG_MODULE_RT, 20),
};

/* A linked actor ended. Delivered to trapping actors; others die with it unless normal. */
typedef struct rt_msg_exit {
    rt_msg hdr;
    rt_ref from;
    int reason;
} rt_msg_exit;

/* A monitored actor ended (normal lane, after everything it sent before ending). */
typedef struct rt_msg_down {
    rt_msg hdr;
    rt_ref ref;   /* the actor that ended */
    uint64_t mon; /* the id rt_monitor returned */
    int reason;
} rt_msg_down;

/* Stop what you are doing. Already forwarded to this actor's children when it arrives. */
typedef struct rt_msg_interrupt {
    rt_msg hdr;
    rt_ref from;
    int code;
} rt_msg_interrupt;

/* Delivered once, then the actor ends with `reason` (the behaviour cleans up here). */
typedef struct rt_msg_stop {
    rt_msg hdr;
    int reason;
} rt_msg_stop;

/* Timer tick with no payload: rt_send_after(cx, ref, rt_timeout_new(tag), ms). */
typedef struct rt_msg_timeout {
    rt_msg hdr;
    uint64_t tag;
} rt_msg_timeout;
rt_msg *rt_timeout_new(uint64_t tag);

/* Spawn options. */
enum {
    RT_SPAWN_LINK = 1u << 0,      /* link the new actor as a child of the calling actor */
    RT_SPAWN_TRAP_EXIT = 1u << 1, /* the new actor receives RT_MSG_EXIT instead of dying */
    /* The actor gets a thread of its own and may block in its behaviour (SQLite, a large
     * file scan). Costs a thread: for a handful of service actors only. */
    RT_SPAWN_DETACHED = 1u << 2,
};
typedef struct rt_spawn_opts {
    uint32_t flags;   /* RT_SPAWN_* */
    const char *name; /* register under this name (must be unique), or NULL */
} rt_spawn_opts;

/*
 * Create an actor of type t. If t->state_size > 0 the state is allocated with the actor and
 * filled from init (t->state_size bytes) or zeroed when init is NULL; otherwise init itself
 * becomes the state and the actor owns it (t->fini frees it). The actor runs when its first
 * message arrives. Returns its ref, or 0 if opts->name is already taken (the state is then
 * released with t->fini).
 */
rt_ref rt_spawn(rt_ctx *cx, const rt_actor_type *t, void *init, const rt_spawn_opts *opts);

/* Send on the normal / urgent lane. Takes ownership of m in every case. Returns false when
 * the receiver is known to have ended (m is freed and counted as a dead letter). */
bool rt_send(rt_ctx *cx, rt_ref to, rt_msg *m);
bool rt_send_urgent(rt_ctx *cx, rt_ref to, rt_msg *m);

/* The running actor's ref (0 outside a behaviour). */
rt_ref rt_self(rt_ctx *cx);
/* The runtime of this context. */
rt_runtime *rt_ctx_runtime(rt_ctx *cx);
/* End the running actor with reason once its behaviour returns. */
void rt_exit(rt_ctx *cx, int reason);
/* Receive RT_MSG_EXIT from linked actors instead of ending with them. */
void rt_trap_exit(rt_ctx *cx, bool on);

/* Ask an actor to stop: it receives RT_MSG_STOP (urgent), then ends with reason. */
bool rt_stop(rt_ctx *cx, rt_ref to, int reason);
/* End an actor at once (RT_EXIT_KILLED); its behaviour is not called. */
bool rt_kill(rt_ctx *cx, rt_ref to);
/* Send RT_MSG_INTERRUPT on the urgent lane; it travels on to the target's children, and
 * theirs, before each behaviour sees it. */
bool rt_interrupt(rt_ctx *cx, rt_ref to, int code);

/* Link the running actor with `other` both ways: an abnormal exit of either ends the
 * other (or reaches it as RT_MSG_EXIT when it traps exits). */
int rt_link(rt_ctx *cx, rt_ref other);
/* Like rt_link, and the running actor becomes child's parent: interrupts flow down. */
int rt_link_child(rt_ctx *cx, rt_ref child);
int rt_unlink(rt_ctx *cx, rt_ref other);
/* Watch target: the running actor gets RT_MSG_DOWN when it ends (at once with
 * RT_EXIT_NOPROC if it does not exist). Returns the monitor id (never 0), or 0 when called
 * outside a behaviour. */
uint64_t rt_monitor(rt_ctx *cx, rt_ref target);
void rt_demonitor(rt_ctx *cx, rt_ref target, uint64_t mon);

/* Register the running actor under a unique name until it ends: 0, -EEXIST or -EINVAL. */
int rt_register_name(rt_ctx *cx, const char *name);
/* The ref registered under name, or 0. */
rt_ref rt_whereis(rt_ctx *cx, const char *name);
/* Does the actor exist (advisory: it may end right after)? */
bool rt_is_alive(rt_ctx *cx, rt_ref ref);

#endif /* RT_ACTOR_H */
