/*
 * term_procs — the process registry: one long-lived actor per runtime that owns the
 * background processes started with terminal(background=true) and the terminal sandboxes
 * (docker containers, singularity instances, ssh connections), as the original's
 * tools/process_registry.py and terminal_tool.py environment cache do (agent-core §4.3).
 *
 * Everything is messages: the terminal and process tools ask, the registry answers, and
 * no state is shared. The registry is registered under TERM_PROCS_NAME.
 *
 * Background processes:
 *   1. id "proc_<12 hex>"; a rolling buffer of the last TERM_PROCS_BUFFER_CHARS characters
 *      of merged stdout+stderr (leading shell noise removed); stdin is a pipe (or the pty
 *      in pty mode) for write/submit;
 *   2. at most TERM_PROCS_MAX tracked: the oldest finished ones are pruned first, finished
 *      ones are kept TERM_PROCS_FINISHED_TTL_S after they started (the original's rule),
 *      and a spawn with TERM_PROCS_MAX running is refused;
 *   3. a process is visible only to requests carrying the same session key as its spawn;
 *   4. kill runs the interrupt sequence on the whole process session (SIGTERM, SIGKILL
 *      after 1 s; remote backends also `kill -TERM -<pgid>` inside the sandbox) and records
 *      exit code -15, as the original does;
 *   5. wait never blocks anyone: the registry answers when the process exits, when the
 *      caller's wait time is up (a timer), or when the caller cancels (an interrupt).
 * Each process prints "HERMES_PID=<pid>" (TERM_PID_MARKER) before running the command, so
 * its pid is known at once on every backend, and that line never reaches the buffer.
 *
 * Sandboxes: one per (backend, task id) — per user@host:port for ssh — created on first
 * use with the original's command lines (term_backend.h), shared by every call of that
 * task, and torn down after TERMINAL_LIFETIME_SECONDS without use unless a call or a
 * background process still uses it.
 *
 * Not done: the original's ~/.hermes/processes.json checkpoint (restart recovery of
 * detached processes) — a restart ends our processes' sessions with the reactor.
 *
 * Threads: term_procs_start/term_procs_ref from any thread (a behaviour's cx or an
 * external one); the actor's state is its own.
 */
#ifndef TERM_PROCS_H
#define TERM_PROCS_H

#include "rt_actor.h"
#include "term_backend.h"

#include <stdbool.h>
#include <stdint.h>

#define TERM_PROCS_NAME           "hermes.procs"
#define TERM_PROCS_MAX            64
#define TERM_PROCS_BUFFER_CHARS   200000
#define TERM_PROCS_FINISHED_TTL_S 1800

/* Start the registry unless it runs: 0, or -ENOMEM-like failures never (aborts on OOM).
 * Idempotent and race-free (the name is the lock). The session host calls it at start-up;
 * the tools also call it on first use. */
int term_procs_start(rt_ctx *cx);
/* The registry's ref, starting it if needed (0 only if it could not be started). */
rt_ref term_procs_ref(rt_ctx *cx);

enum {
    TERM_MSG_SPAWN = RT_MSG_TYPE(RT_MSG_MODULE_TOOL, 0x0301),         /* terminal → registry */
    TERM_MSG_SPAWNED = RT_MSG_TYPE(RT_MSG_MODULE_TOOL, 0x0302),       /* registry → terminal */
    TERM_MSG_REQ = RT_MSG_TYPE(RT_MSG_MODULE_TOOL, 0x0303),           /* process → registry */
    TERM_MSG_REPLY = RT_MSG_TYPE(RT_MSG_MODULE_TOOL, 0x0304),         /* registry → process */
    TERM_MSG_SANDBOX = RT_MSG_TYPE(RT_MSG_MODULE_TOOL, 0x0305),       /* terminal → registry */
    TERM_MSG_SANDBOX_READY = RT_MSG_TYPE(RT_MSG_MODULE_TOOL, 0x0306), /* registry → terminal */
};

/* Start a background process. The answer is one TERM_MSG_SPAWNED to reply_to, once its
 * pid is known (or it failed). */
typedef struct term_msg_spawn {
    rt_msg hdr;
    rt_ref reply_to;
    char *command;       /* owned: as the model wrote it (what list/poll show) */
    char *exec;          /* owned: what runs (sudo-transformed: may hold a secret) */
    char *cwd;           /* owned: working directory (local: absolute; remote: as given) */
    char *task_id;       /* owned, may be NULL */
    char *session_key;   /* owned, may be NULL */
    char *mask;          /* owned: a secret to mask in the output (sudo password), or NULL */
    term_target *target; /* owned: where it runs */
    bool pty;            /* local only: a 30x120 pseudo-terminal */
} term_msg_spawn;

typedef struct term_msg_spawned {
    rt_msg hdr;
    char session_id[24]; /* "proc_<12 hex>", "" on error */
    long pid;            /* 0: unknown */
    char *error;         /* owned: why it did not start, or NULL */
} term_msg_spawned;

enum term_action {
    TERM_ACT_LIST = 1,
    TERM_ACT_POLL,
    TERM_ACT_LOG,
    TERM_ACT_WAIT,
    TERM_ACT_KILL,
    TERM_ACT_WRITE,
    TERM_ACT_SUBMIT,
    TERM_ACT_WAIT_CANCEL, /* the caller of a pending wait was interrupted */
};

/* A process-tool request; the answer is one TERM_MSG_REPLY with the same corr (none for a
 * WAIT_CANCEL that finds no pending wait). */
typedef struct term_msg_req {
    rt_msg hdr;
    rt_ref reply_to;
    uint64_t corr;
    int action;            /* term_action */
    char *session_id;      /* owned, may be NULL for list */
    char *data;            /* owned: write/submit data, may be NULL */
    char *session_key;     /* owned: the caller's, may be NULL */
    int64_t timeout_s;     /* wait: requested, <= 0 for none */
    int64_t max_timeout_s; /* wait: the configured cap (terminal timeout) */
    int64_t offset, limit; /* log */
} term_msg_req;

typedef struct term_msg_reply {
    rt_msg hdr;
    uint64_t corr;
    char *json; /* owned: the tool result */
} term_msg_reply;

/* Make sure the sandbox for (config->backend, task_id) exists; answered by one
 * TERM_MSG_SANDBOX_READY. The registry watches reply_to: the sandbox counts as in use
 * until that actor ends. */
typedef struct term_msg_sandbox {
    rt_msg hdr;
    rt_ref reply_to;
    char *task_id;       /* owned, may be NULL ("default") */
    term_config *config; /* owned */
} term_msg_sandbox;

typedef struct term_msg_sandbox_ready {
    rt_msg hdr;
    term_target *target; /* owned; NULL on error */
    char *error;         /* owned: a clear message naming the backend, or NULL */
} term_msg_sandbox_ready;

/* New request messages with their drop set (it frees whatever owned fields are still
 * there). Fill the fields, then rt_send to term_procs_ref(). */
term_msg_spawn *term_spawn_new(void);
term_msg_req *term_req_new(int action);
term_msg_sandbox *term_sandbox_new(void);

#endif /* TERM_PROCS_H */
