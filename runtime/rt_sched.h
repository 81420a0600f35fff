/*
 * rt_sched — the runtime instance: a work-stealing pool of workers that run actors.
 *
 * One worker per online CPU by default, each with a Chase-Lev deque and a "next" slot for
 * the actor it just woke (kept off the deque so ping-pong never touches shared queues). A
 * global injection queue takes actors woken from non-worker threads, and a global urgent
 * queue takes actors woken by urgent messages; every worker checks the urgent queue between
 * messages, so an interrupt waits for at most one message of other work. Idle workers spin
 * briefly, then park on a futex; at most one sleeper is woken per burst of new work. With
 * nothing to do the process uses no CPU.
 *
 * Threads: rt_runtime_new/rt_shutdown/rt_runtime_free from one controlling thread that is not a
 * worker; rt_ctx_external and rt_stats_get from any thread.
 */
#ifndef RT_SCHED_H
#define RT_SCHED_H

#include "rt_actor.h"

#include <stdbool.h>
#include <stdint.h>

#define RT_MAX_WORKERS 256

typedef struct rt_options {
    int workers;          /* 0: HERMES_WORKERS, else one per online CPU */
    uint32_t batch;       /* normal messages per run before yielding; 0: 64 */
    uint32_t spin_rounds; /* steal rounds before an idle worker parks; 0: default */
    bool fake_clock;      /* time moves only through rt_clock_advance (tests) */
} rt_options;

/* Create the runtime and start its workers and timer thread. NULL opts: defaults. */
rt_runtime *rt_runtime_new(const rt_options *opts);

/* A context for the calling non-worker thread (registered with RCU on first use and
 * unregistered at thread exit). Valid for this thread and this runtime only. */
rt_ctx *rt_ctx_external(rt_runtime *rt);

/*
 * Wait until no actor is runnable: every worker parked, the injection and urgent queues
 * empty, no timer due and no registered external activity (rt_busy_enter). Timers that are
 * due later do not count. Returns 0, or -ETIMEDOUT after timeout_ms.
 */
int rt_wait_quiescent(rt_runtime *rt, int64_t timeout_ms);

/* External work in flight that will produce messages (reactor requests, subprocesses):
 * keeps rt_wait_quiescent waiting. Any thread. */
void rt_busy_enter(rt_runtime *rt);
void rt_busy_leave(rt_runtime *rt);

enum rt_shutdown_mode {
    RT_SHUTDOWN_DRAIN, /* wait for quiescence (up to timeout), then stop the workers */
    RT_SHUTDOWN_DROP,  /* stop the workers after their current run */
};
/* Stop the workers. Actors still alive are ended by rt_runtime_free (fini runs, mail is dropped).
 */
int rt_shutdown(rt_runtime *rt, enum rt_shutdown_mode mode, int64_t timeout_ms);

/* Shut down (DROP) if needed, end every remaining actor, free everything. NULL: no-op. */
void rt_runtime_free(rt_runtime *rt);

typedef struct rt_worker_stats {
    uint64_t msgs;   /* messages handled */
    uint64_t runs;   /* actor runs (batches) */
    uint64_t steals; /* actors taken from other workers */
    uint64_t parks;  /* times the worker went to sleep */
    uint64_t spills; /* actors moved from the next slot to the deque */
} rt_worker_stats;

typedef struct rt_stats {
    int workers;
    rt_worker_stats total;
    rt_worker_stats per[RT_MAX_WORKERS];
    uint64_t spawned;        /* actors created */
    uint64_t exited;         /* actors ended */
    uint64_t dead_letters;   /* messages that reached no one */
    uint64_t timers_pending; /* timers armed and not yet fired */
    uint64_t id_pages;       /* registry pages held (4,096 refs each, 32 KB; rt_idtab.h) */
} rt_stats;

/* Advisory snapshot of the counters. */
void rt_stats_get(rt_runtime *rt, rt_stats *s);
int rt_workers(rt_runtime *rt);

/*
 * Per-runtime attachment points for services built on the runtime (the I/O reactor, the
 * WebSocket/HTTP-server bridge). Set once at start-up by the controlling thread, before any
 * actor can look them up; read from any thread afterwards.
 */
enum rt_slot { RT_SLOT_REACTOR = 0, RT_SLOT_LWS = 1, RT_SLOT_APP = 2, RT_SLOT_MAX = 8 };
void rt_runtime_set_slot(rt_runtime *rt, enum rt_slot slot, void *p);
void *rt_runtime_slot(rt_runtime *rt, enum rt_slot slot);

/* Monotonic time in nanoseconds (fake when opts.fake_clock). Any thread. */
int64_t rt_now_ns(rt_runtime *rt);
/* Tests: move the fake clock forward; due timers fire. -EINVAL without a fake clock. */
int rt_clock_advance(rt_runtime *rt, int64_t ns);

#endif /* RT_SCHED_H */
