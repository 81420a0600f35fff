/*
 * tool — the tool registry and the contract every tool implements.
 *
 * Each tool call runs in an actor of its own, spawned by the session and linked to it as a
 * child (rt_link_child). So an interrupt sent to the session reaches every running tool at
 * once through the runtime, a tool may wait on the reactor (subprocesses, HTTP) without
 * blocking anyone, and independent calls of one LLM response can run in parallel.
 *
 * A tool is a tool_def: its name, toolset, JSON schema, an availability check and three
 * callbacks that run inside the call's actor:
 *   start(cx, run)         the call begins; run->args holds the parsed arguments
 *   on_msg(cx, run, m)     any other message: reactor results, timers, approval decisions
 *   on_interrupt(cx, run)  the user interrupted: stop the work (kill the process group…)
 *                          and finish promptly
 * and it ends with exactly one tool_finish(cx, run, result). The result is a string,
 * almost always JSON text, as in the original (agent-core §1.9): the session caps it at
 * 100,000 characters and appends it as a {"role":"tool"} message.
 *
 * Tools with `blocking` set (file reads and writes, directory scans) get a detached actor:
 * a thread of its own, so they may use plain blocking system calls.
 *
 * Threads: the registry is immutable after start-up and may be read from any thread. A
 * tool_run belongs to its call's actor.
 */
#ifndef TOOL_H
#define TOOL_H

#include "rt_actor.h"
#include "rt_msg.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOOL_RESULT_MAX_CHARS 100000

/* What delegate_task asks of the host for one subagent (tools/delegate). */
typedef struct tool_child_req {
    const char *goal;         /* the task (the child's first message, sent by the caller) */
    const char *instructions; /* the child's ephemeral system prompt (task, context, how to
                                 report back) */
    const char *const *tools; /* the child's tool names (blocked ones already removed) */
    const char *model;        /* override, or NULL: the parent's */
    int max_iterations;       /* > 0 */
    int depth;                /* the child's delegate_depth (parent + 1) */
    const struct tool_env *parent;
} tool_child_req;

/* Spawn a subagent session (an ag_session; the caller sends it the goal with itself as the
 * sink): returns its ref, or 0. Called inside the delegate_task call's actor. */
typedef rt_ref (*tool_spawn_child_fn)(rt_ctx *cx, const tool_child_req *req, void *arg);

/*
 * What a tool may know about the session that called it. Immutable once created and
 * shared by reference count between the session and its running calls.
 */
typedef struct tool_env {
    _Atomic int refs;
    char *hermes_home;          /* $HERMES_HOME */
    char *cwd;                  /* working directory for terminal and file tools */
    char *task_id;              /* sandbox key: terminal environment, background processes */
    char *session_key;          /* approvals and background processes are per session key */
    char *session_id;           /* the state.db session */
    char *platform;             /* "cli", "matrix", "api_server", … */
    bool interactive;           /* a person can answer approval and clarify prompts */
    int delegate_depth;         /* 0 for a top-level session */
    int64_t terminal_timeout_s; /* terminal.timeout (180) */
    char **command_allowlist; /* NULL-terminated permanent approvals (config command_allowlist), or
                                 NULL */
    char **enabled_tools;     /* NULL-terminated names loaded for this session */
    rt_ref session;           /* the session actor */
    rt_ref store;             /* the state store actor, 0 if none */
    rt_ref memory;            /* the memory actor, 0 if none */
    tool_spawn_child_fn spawn_child; /* subagents (delegate_task); NULL: not available */
    void *spawn_arg;
    int max_children;      /* delegation.max_concurrent_children (3) */
    int max_tasks;         /* delegation.max_tasks: tasks one call may carry (3) */
    int child_iterations;  /* delegation.max_iterations (25) */
    char **child_toolsets; /* delegation.default_toolsets, NULL-terminated, or NULL */
} tool_env;

tool_env *tool_env_new(void);
tool_env *tool_env_ref(tool_env *e);
void tool_env_unref(tool_env *e);
bool tool_env_has_tool(const tool_env *e, const char *name);

/* One running call; lives in the call's actor. */
typedef struct tool_run {
    rt_ref session; /* where the result goes */
    uint64_t seq;   /* the session's id for this call */
    char *call_id;  /* the model's tool_call id */
    const struct tool_def *def;
    cJSON *args;   /* parsed arguments (an object, possibly empty) */
    tool_env *env; /* referenced */
    void *data;    /* the tool's own per-call state; the tool frees it in finish */
    bool finished;
    bool interrupted;
} tool_run;

typedef struct tool_def {
    const char *name;
    const char *toolset;
    const char *schema; /* JSON: {"name","description","parameters"} */
    bool blocking;      /* run on a detached actor (its own thread) */
    bool parallel_safe; /* may run alongside other parallel-safe calls of one response */
    bool (*available)(const tool_env *env); /* NULL: always */
    void (*start)(rt_ctx *cx, tool_run *run);
    void (*on_msg)(rt_ctx *cx, tool_run *run, rt_msg *m); /* may be NULL */
    void (*on_interrupt)(rt_ctx *cx, tool_run *run);      /* may be NULL */
    void (*cleanup)(tool_run *run); /* frees run->data if the call ends unexpectedly; may be NULL */
} tool_def;

/* ---- messages (RT_MSG_MODULE_TOOL) ---- */
enum {
    TOOL_MSG_START = RT_MSG_TYPE(RT_MSG_MODULE_TOOL, 1),    /* session → call actor */
    TOOL_MSG_RESULT = RT_MSG_TYPE(RT_MSG_MODULE_TOOL, 2),   /* call actor → session */
    TOOL_MSG_PROGRESS = RT_MSG_TYPE(RT_MSG_MODULE_TOOL, 3), /* call actor → session */
    TOOL_MSG_ASK = RT_MSG_TYPE(RT_MSG_MODULE_TOOL, 4), /* call actor → session: approval, clarify */
    TOOL_MSG_ANSWER = RT_MSG_TYPE(RT_MSG_MODULE_TOOL, 5), /* session → call actor */
};

typedef struct tool_msg_result {
    rt_msg hdr;
    uint64_t seq;
    char *result;     /* owned JSON text */
    bool interrupted; /* the call stopped because of an interrupt */
} tool_msg_result;

typedef struct tool_msg_progress {
    rt_msg hdr;
    uint64_t seq;
    char *text; /* owned: a short status line for progress displays */
} tool_msg_progress;

enum tool_ask_kind { TOOL_ASK_APPROVAL = 1, TOOL_ASK_CLARIFY = 2, TOOL_ASK_SUDO = 3 };

typedef struct tool_msg_ask {
    rt_msg hdr;
    uint64_t seq;      /* the asking call */
    rt_ref reply_to;   /* the call actor */
    int kind;          /* tool_ask_kind */
    char *text;        /* owned: the command (approval) or the question (clarify) */
    char *description; /* owned: why approval is needed, or NULL */
    char *pattern_key; /* owned: approval family ("rm", "chmod"), or NULL */
    cJSON *choices;    /* owned: clarify choices (array of strings), or NULL */
} tool_msg_ask;

enum tool_answer {
    TOOL_ANSWER_DENY = 0,
    TOOL_ANSWER_ONCE = 1,
    TOOL_ANSWER_SESSION = 2,
    TOOL_ANSWER_ALWAYS = 3,
    TOOL_ANSWER_TEXT = 4,    /* clarify / sudo: see text */
    TOOL_ANSWER_TIMEOUT = 5, /* nobody answered in time */
};

typedef struct tool_msg_answer {
    rt_msg hdr;
    int answer; /* tool_answer */
    char *text; /* owned: the user's text for TEXT, or NULL */
} tool_msg_answer;

/* A new answer message (text copied, may be NULL), for the session to send to the asking
 * call's actor. */
rt_msg *tool_answer_new(int answer, const char *text);

/* ---- for tools ---- */

/* Finish the call: send the result to the session (takes ownership of result, a
 * NUL-terminated heap string) and end the call's actor. Exactly once per call. */
void tool_finish(rt_ctx *cx, tool_run *run, char *result);
/* Finish with {"error": text}. */
void tool_finish_error(rt_ctx *cx, tool_run *run, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Finish with a cJSON object (consumed). */
void tool_finish_json(rt_ctx *cx, tool_run *run, cJSON *obj);
/* Send a progress line to the session (not required). */
void tool_progress(rt_ctx *cx, tool_run *run, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Ask the session a question (approval, clarify, sudo); the answer arrives at on_msg as
 * TOOL_MSG_ANSWER. Takes ownership of the strings and choices. */
void tool_ask(rt_ctx *cx, tool_run *run, int kind, char *text, char *description, char *pattern_key,
              cJSON *choices);

/* Argument helpers: the string at key, or NULL; an integer with default; a bool with default. */
const char *tool_arg_str(const tool_run *run, const char *key);
int64_t tool_arg_int(const tool_run *run, const char *key, int64_t def);
bool tool_arg_bool(const tool_run *run, const char *key, bool def);

/* ---- for the session ---- */

/* The definition named name, or NULL. */
const tool_def *tool_find(const char *name);
/*
 * Start a call: spawn its actor linked as a child of the calling actor (the session) and
 * hand it the arguments (args: the model's JSON text; invalid JSON is the caller's problem,
 * NULL or empty means {}). The result arrives as TOOL_MSG_RESULT with seq. Returns the
 * call actor's ref, or 0 when the name is unknown (no message will come).
 */
rt_ref tool_start_call(rt_ctx *cx, const tool_def *def, tool_env *env, uint64_t seq,
                       const char *call_id, const char *args_json);

/* ---- registry and toolsets ---- */

/* Every known tool, NULL-terminated, in registration order. */
const tool_def *const *tool_all(void);

/*
 * Resolve toolset names (with `includes`, `all`/`*`, legacy names) into the sorted,
 * de-duplicated list of tool names whose availability check passes for env. Unknown
 * toolset names are reported through unknown (may be NULL). Returns a NULL-terminated heap
 * array of borrowed names; free the array with rt_free.
 */
const char **tool_resolve(const char *const *enabled, const char *const *disabled,
                          const tool_env *env, void (*unknown)(const char *name, void *arg),
                          void *arg);
/* The tools array for an LLM request ([{name, description, parameters}...]) for names. */
cJSON *tool_schemas(const char *const *names);
/*
 * The same array, shared: built once per distinct list of names and kept for the life of the
 * process, so ten thousand sessions with one tool set hold one copy. Read-only (callers
 * duplicate what they send); any thread.
 */
const cJSON *tool_schemas_shared(const char *const *names);
/* Toolset names, NULL-terminated (for `hermes tools`). */
const char *const *tool_toolset_names(void);
/* The tools a toolset expands to (for `hermes tools`), NULL-terminated heap array. */
const char **tool_toolset_tools(const char *name);

#endif /* TOOL_H */
