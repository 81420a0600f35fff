/*
 * ak_supervise — a supervisor for an adapter's long-lived actor: a dead connection restarts
 * only itself, never the gateway (issue 13, "Liveness").
 *
 * The supervisor is a small actor. It starts one child from a spec, monitors it (rt_monitor,
 * RT_MSG_DOWN) and, when the child ends abnormally, starts a fresh one after a back-off:
 *
 *   1. Not restarted: RT_EXIT_NORMAL (the adapter finished or gave up on purpose, e.g. bad
 *      credentials), RT_EXIT_STOPPED (someone stopped it) and RT_EXIT_SHUTDOWN, and any end
 *      once ak_sup_stop was called. The supervisor then ends too (normally).
 *   2. Restarted: every other reason (RT_EXIT_ERROR, RT_EXIT_LINKED, RT_EXIT_KILLED,
 *      RT_EXIT_NOPROC, user reasons), and a restart whose start failed.
 *   3. Back-off: min_ms (1 s) doubled per consecutive restart up to max_ms (60 s), with
 *      ±20 % jitter (ak_sup_backoff). A child that lived stable_ms (60 s) resets it.
 *   4. Storm limit: when storm_max (10) restarts already happened within storm_window_ms
 *      (10 min), the next abnormal end is not restarted: the supervisor logs it, tells the
 *      gateway (gave_up) and ends. The rest of the gateway keeps running.
 *   5. Each restart is one log line (platform, reason, attempt, delay; never a secret) and
 *      one GW_MSG_ADAPTER_DOWN to the gateway with restarts / detail set (gw.h), so
 *      `hermes gateway status` can say "restarted N times". The child announces itself
 *      again (GW_MSG_ADAPTER_UP) as the adapter always does.
 *   6. Names: a child spawned with spec.name registers it again; the old registration ends
 *      with the old actor before its RT_MSG_DOWN is sent (runtime/rt_actor.c die()), so the
 *      name is always free when the restart runs.
 *   7. Whatever a child needs across restarts (sync tokens, offsets) it reads from disk in its
 *      own start, exactly as after a gateway restart: start() builds everything afresh.
 *
 * Threads: ak_sup_start and ak_sup_stop from a non-worker thread with an rt_ctx_external
 * context (both wait). The spec's callbacks run in the supervisor's behaviour, the first
 * start too (so that every child is monitored before anything can happen to it): with
 * spec.detached the supervisor has a thread of its own and they may block (adapter start
 * functions that read state files or take locks, stop functions that wait for a drain);
 * without it they run on a worker and must not block.
 */
#ifndef AK_SUPERVISE_H
#define AK_SUPERVISE_H

#include "rt_actor.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AK_SUP_MIN_MS       1000   /* first back-off */
#define AK_SUP_MAX_MS       60000  /* back-off ceiling */
#define AK_SUP_STABLE_MS    60000  /* a child that lived this long resets the back-off */
#define AK_SUP_STORM_MAX    10     /* restarts allowed within the window */
#define AK_SUP_STORM_WINDOW 600000 /* 10 minutes */
#define AK_SUP_STORM_CAP    64     /* storm_max is clamped to this */

enum {
    AK_MSG_SUP_SHUTDOWN = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0F10), /* internal */
};

/* Counters for tests and status pages: written by the supervisor (relaxed atomics), read
 * from any thread. Owned by the caller; must outlive the supervisor. */
typedef struct ak_sup_stats {
    _Atomic uint64_t restarts; /* restarts scheduled so far */
    _Atomic rt_ref child;      /* the running child, 0 while none */
    _Atomic int last_reason;   /* the last abnormal exit reason */
    _Atomic bool gave_up;      /* restart storm: supervision ended */
    _Atomic bool ended;        /* the supervisor has ended */
} ak_sup_stats;

typedef struct ak_sup_spec {
    const char *platform; /* required: for logs and the gateway ("mattermost") */
    /*
     * How to start one child; either start, or type (+ make_init, name, spawn_flags).
     * start: spawn the child any way the adapter likes (its public *_start function),
     * 0 and *child, or -errno with a sentence in err (a failed restart counts as an
     * abnormal end and is retried with back-off).
     */
    int (*start)(rt_ctx *cx, void *arg, rt_ref *child, char *err, size_t errlen);
    const rt_actor_type *type;
    /* Fresh init for rt_spawn each time (NULL: none). For type->state_size == 0 it becomes
     * the child's state (the child owns it); otherwise it is copied and the supervisor frees
     * it with rt_free, so it must come from rt_xmalloc. */
    void *(*make_init)(void *arg);
    const char *name;     /* the child registers this name (copied), or NULL */
    uint32_t spawn_flags; /* RT_SPAWN_DETACHED, … for the child (not LINK: it is monitored) */
    /* Optional: end a live child gracefully within grace_ms on ak_sup_stop (a drain). The
     * child must end by itself or be stopped by it. NULL: rt_stop(child, RT_EXIT_STOPPED). */
    void (*stop)(rt_ctx *cx, void *arg, rt_ref child, int64_t grace_ms);
    /* Optional: after a child ended (before a restart, and when the supervisor ends),
     * release what start made besides the actor (a listening socket). */
    void (*cleanup)(rt_ctx *cx, void *arg, rt_ref child);
    void *arg;                   /* given to the callbacks; owned by the supervisor */
    void (*arg_free)(void *arg); /* frees arg when the supervisor ends (may be NULL) */
    rt_ref gateway;              /* told about restarts; 0: the actor registered as GW_NAME */
    bool detached;               /* the supervisor gets its own thread (callbacks may block) */
    ak_sup_stats *stats;         /* or NULL */
    /* 0: the defaults above (tests shorten them). */
    int64_t min_ms, max_ms, stable_ms, storm_window_ms;
    int storm_max;
} ak_sup_spec;

/*
 * Start the supervisor; it starts the first child and monitors it, and this call waits for
 * that first start (at most 60 s). Takes ownership of spec->arg in every case (arg_free runs
 * when the supervisor ends, on failure too, possibly just after this returns); spec is
 * copied. 0 and *sup, or the first start's -errno with its sentence in err (-EINVAL: a spec
 * without platform or without start/type; -ETIMEDOUT: the first start took too long).
 */
int ak_sup_start(rt_ctx *cx, const ak_sup_spec *spec, rt_ref *sup, char *err, size_t errlen);

/*
 * Stop supervising without a restart: the supervisor stops the child (spec.stop with
 * grace_ms, else rt_stop), waits for its end, runs cleanup and ends. Blocks the calling
 * (non-worker) thread until the supervisor ended, at most wait_ms (≤ 0: 5 s); then it stops
 * the supervisor (which stops the child once more) and waits up to one more second. Safe on
 * a supervisor that has ended already (after a storm, or a normal end of its child).
 * Returns true when the supervisor ended by itself in time (its child has ended then too),
 * false when it had to be stopped (the child may still be ending).
 */
bool ak_sup_stop(rt_ctx *cx, rt_ref sup, int64_t grace_ms, int64_t wait_ms);

/*
 * The delay before restart number `attempt` (1-based: consecutive restarts without a stable
 * run): min_ms · 2^(attempt-1) capped at max_ms, then ±20 % jitter from *rng (xorshift
 * state, non-zero), never above max_ms nor below 1. Pure.
 */
int64_t ak_sup_backoff(int attempt, int64_t min_ms, int64_t max_ms, uint64_t *rng);

/* "normal", "stopped", "killed", "linked", "noproc", "shutdown", "error", or "user+N" /
 * "reason N" into buf (returned). */
const char *ak_sup_reason_name(int reason, char *buf, size_t len);

#endif /* AK_SUPERVISE_H */
