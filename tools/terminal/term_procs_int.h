/*
 * term_procs_int — the process registry's state, shared by term_procs.c (the actor and
 * background processes) and term_sandbox.c (sandboxes). Folder-private.
 *
 * Every subprocess the registry starts is a tp_job in `jobs`, keyed by its rt_proc id, so
 * OUTPUT and EXIT messages find their owner. An owner that goes away first (a pruned
 * process) clears job->owner; the job itself lives until its EXIT.
 *
 * Threads: the registry actor only.
 */
#ifndef TERM_PROCS_INT_H
#define TERM_PROCS_INT_H

#include "rt_buf.h"
#include "rt_map.h"
#include "term_procs.h"

#include <time.h>

enum { TP_JOB_BG = 1, TP_JOB_SBX, TP_JOB_FIRE };

typedef struct tp_job {
    int kind;    /* TP_JOB_* */
    void *owner; /* tp_proc / tp_sandbox, NULL when gone or fire-and-forget */
} tp_job;

/* Timer tags: kind in the top byte, an id below. */
#define TP_TAG_WAIT  (1ull << 56)
#define TP_TAG_SPAWN (2ull << 56)
#define TP_TAG_SWEEP (3ull << 56)
#define TP_TAG_MASK  (0xffull << 56)

typedef struct tp_sandbox tp_sandbox;

typedef struct tp_state {
    struct tp_proc *procs[TERM_PROCS_MAX]; /* background processes, oldest first */
    size_t nprocs;
    rt_map jobs;             /* rt_proc id → tp_job* */
    struct tp_waiter *waits; /* pending process(action="wait") calls */
    size_t nwaits, capwaits;
    tp_sandbox **sbx; /* sandboxes */
    size_t nsbx, capsbx;
    uint64_t next_id; /* waiter and process sequence numbers */
    int storage_opt;  /* docker --storage-opt support: 0 unknown, 1 no, 2 yes */
    bool sweep_armed; /* a TP_TAG_SWEEP timer is pending */
} tp_state;

/* Register a subprocess the registry started. */
tp_job *tp__job_add(tp_state *st, uint64_t rid, int kind, void *owner);
/* Start a subprocess whose result does not matter (teardown, remote kill). */
void tp__fire(rt_ctx *cx, tp_state *st, char **argv, int64_t timeout_ms);
/* Is a background process still running in this sandbox (same backend and task, or the
 * same ssh connection)? */
bool tp__sandbox_busy(const tp_state *st, const term_target *t, const char *task_id);
/* Arm the sweep timer if it is not pending. */
void tp__arm_sweep(rt_ctx *cx, tp_state *st);

/* term_sandbox.c */
void tp__sbx_request(rt_ctx *cx, tp_state *st, term_msg_sandbox *m);
void tp__sbx_output(tp_sandbox *sb, const rt_msg *m);
void tp__sbx_exit(rt_ctx *cx, tp_state *st, tp_sandbox *sb, const rt_msg *m);
void tp__sbx_down(tp_state *st, rt_ref ref);
/* Tear down idle sandboxes; returns true while any remain (keep sweeping). */
bool tp__sbx_sweep(rt_ctx *cx, tp_state *st);
void tp__sbx_free_all(tp_state *st);

#endif /* TERM_PROCS_INT_H */
