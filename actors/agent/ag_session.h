/*
 * ag_session — a conversation: the agent loop as an actor's state machine (agent-core §1).
 *
 * A turn: the user's message is appended and made durable in state.db, the LLM is asked
 * (streamed; deltas go to the turn's sink as they arrive), the tool calls it makes run as
 * linked child actors (independent ones side by side), their results are appended, and the
 * loop repeats until the model answers without tools or the iteration limit is reached (then
 * it is asked once, without tools, for a summary). Nothing in it waits on a worker: every
 * step is a message.
 *
 * Interrupts: an RT_MSG_INTERRUPT (from the gateway's /stop, or from the session itself when
 * a new message arrives mid-turn) reaches every running tool through the links at once; the
 * session cancels its LLM request, records "[Tool execution cancelled - user interrupted]"
 * for every call that had not finished (keeping the transcript valid for the API) and ends
 * the turn. Messages that arrived during the turn are not dropped: they are answered
 * together, in order, by one follow-up turn (AG_INT_STOP discards them, as /stop does).
 *
 * A full disk: the user's message is made durable in state.db before the model sees it. When
 * the store cannot take it because the disk is full or failing (-ENOSPC, -EIO), the session
 * keeps it and writes it again — after 1 s, doubling up to 30 s, on timers — until the store
 * takes it, then the turn runs as usual; the user gets one AG_MSG_STATUS saying the answer
 * waits for disk space. Messages that come meanwhile join the turn (at most AG_PENDING_MAX
 * inputs are kept; later ones are joined to the last). After persist_retry_max_ms the turn
 * ends with "Could not save your message (…). Nothing was sent to the model; please try
 * again.", as it does at once for any other store error. /stop (AG_INT_STOP) drops the waiting
 * message with an AG_MSG_STATUS saying so; shutdown (AG_INT_SHUTDOWN, RT_MSG_STOP) makes one
 * last unacknowledged attempt and leaves the rest to crash recovery.
 *
 * Outputs go to the sink named by the input that started the turn: AG_MSG_DELTA,
 * AG_MSG_PROGRESS, AG_MSG_STATUS, AG_MSG_ASK, and exactly one AG_MSG_DONE per turn.
 *
 * Threads: the constructors from any thread; the session runs on workers.
 */
#ifndef AG_SESSION_H
#define AG_SESSION_H

#include "rt_actor.h"
#include "tool.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

enum {
    /* to the session */
    AG_MSG_INPUT = RT_MSG_TYPE(RT_MSG_MODULE_AG, 1),     /* ag_msg_input */
    AG_MSG_ANSWER = RT_MSG_TYPE(RT_MSG_MODULE_AG, 2),    /* ag_msg_answer */
    AG_MSG_EPHEMERAL = RT_MSG_TYPE(RT_MSG_MODULE_AG, 3), /* ag_msg_text: personality, context */
    AG_MSG_MODEL = RT_MSG_TYPE(RT_MSG_MODULE_AG, 4),     /* ag_msg_text: /model for this session */
    AG_MSG_CONTROL = RT_MSG_TYPE(RT_MSG_MODULE_AG, 5), /* ag_msg_control -> AG_MSG_CONTROL_REPLY */
    /* from the session to the turn's sink */
    AG_MSG_DELTA = RT_MSG_TYPE(RT_MSG_MODULE_AG, 16),         /* ag_msg_delta */
    AG_MSG_PROGRESS = RT_MSG_TYPE(RT_MSG_MODULE_AG, 17),      /* ag_msg_progress */
    AG_MSG_STATUS = RT_MSG_TYPE(RT_MSG_MODULE_AG, 18),        /* ag_msg_status */
    AG_MSG_ASK = RT_MSG_TYPE(RT_MSG_MODULE_AG, 19),           /* ag_msg_ask */
    AG_MSG_DONE = RT_MSG_TYPE(RT_MSG_MODULE_AG, 20),          /* ag_msg_done */
    AG_MSG_CONTROL_REPLY = RT_MSG_TYPE(RT_MSG_MODULE_AG, 21), /* ag_msg_control_reply */
};

/* Interrupt codes (rt_interrupt's code). */
enum {
    AG_INT_STOP = 1,        /* /stop: end the turn, drop messages that came during it */
    AG_INT_NEW_MESSAGE = 2, /* a new message arrived: end the turn, answer everything */
    AG_INT_SHUTDOWN = 3,    /* the gateway is stopping */
};

typedef struct ag_msg_input {
    rt_msg hdr;
    char *text;        /* owned: what the user said */
    char *sender;      /* owned: display name in shared sessions, or NULL */
    rt_ref sink;       /* where this turn's output goes */
    uint64_t input_id; /* the caller's id, echoed in AG_MSG_DONE */
    bool queue;        /* /queue: wait for the running turn instead of interrupting it */
    bool unanswered;   /* answer the transcript as it stands instead of adding text: its
                          last message is the user's, left unanswered by a crash or restart
                          (AG_MSG_DONE with err -EALREADY if it was answered after all) */
} ag_msg_input;

typedef struct ag_msg_text {
    rt_msg hdr;
    char *text; /* owned; NULL clears */
} ag_msg_text;

typedef struct ag_msg_delta {
    rt_msg hdr;
    uint64_t turn;
    int kind;   /* LLM_DELTA_CONTENT / LLM_DELTA_REASONING */
    char *text; /* owned */
} ag_msg_delta;

typedef struct ag_msg_progress {
    rt_msg hdr;
    uint64_t turn;
    rt_ref from;   /* the session (a sink serving several sessions tells them apart) */
    char *tool;    /* owned: tool name */
    char *preview; /* owned: a short summary of the arguments, or a tool's progress line */
} ag_msg_progress;

typedef struct ag_msg_status {
    rt_msg hdr;
    uint64_t turn;
    char *text; /* owned: e.g. "Waiting for the provider (rate limited), retrying in 4 s" */
} ag_msg_status;

typedef struct ag_msg_ask {
    rt_msg hdr;
    uint64_t turn;
    rt_ref from;        /* the session that asks */
    uint64_t ask_id;    /* to echo in AG_MSG_ANSWER */
    int kind;           /* TOOL_ASK_APPROVAL / _CLARIFY / _SUDO */
    char *text;         /* owned: the command or the question */
    char *description;  /* owned: why approval is needed, or NULL */
    cJSON *choices;     /* owned: clarify choices, or NULL */
    int64_t timeout_ms; /* after which the session answers TOOL_ANSWER_TIMEOUT itself */
} ag_msg_ask;

typedef struct ag_msg_answer {
    rt_msg hdr;
    uint64_t ask_id;
    int answer; /* tool_answer */
    char *text; /* owned, or NULL */
} ag_msg_answer;

typedef struct ag_msg_done {
    rt_msg hdr;
    uint64_t turn;
    uint64_t input_id; /* the last input this turn answered */
    char *text;        /* owned: the final answer, or NULL (interrupted, failed) */
    int err;           /* 0 or -errno */
    char *errmsg;      /* owned user-facing error text, or NULL */
    bool interrupted;
    bool completed; /* answered within the iteration limit */
    int api_calls;
    int64_t prompt_tokens;
    int64_t completion_tokens;
    char *session_id; /* owned: the session's id now (compression may have split it) */
} ag_msg_done;

/*
 * Commands about the conversation itself, for the gateway's /undo, /retry and /usage. They
 * are answered only while no turn runs (else -EBUSY): one AG_MSG_CONTROL_REPLY to reply_to.
 *   AG_CTL_UNDO   remove the last user message and everything after it (transcript and
 *                 state.db); reply n = messages removed, text = the removed user message;
 *                 -ENOENT when there is no user message.
 *   AG_CTL_RETRY  the same, then send the removed message again as a new input whose
 *                 output goes to sink (input_id echoed): a turn starts; reply as for UNDO.
 *   AG_CTL_USAGE  reply info = {session_id, model, messages, api_calls, prompt_tokens,
 *                 completion_tokens, last_prompt_tokens, context_length, compressions}.
 *   AG_CTL_COMPRESS  compress the middle of the conversation now (/compress), as when the
 *                 context fills up (the session continues under a new id); the reply comes
 *                 when the summary is in: n = messages before, info = {before, after,
 *                 session_id}; -ENOENT with fewer than 4 messages, -ENODATA when nothing
 *                 lies between the kept head and tail, -ECANCELED when interrupted first.
 */
enum { AG_CTL_UNDO = 1, AG_CTL_RETRY = 2, AG_CTL_USAGE = 3, AG_CTL_COMPRESS = 4 };

typedef struct ag_msg_control {
    rt_msg hdr;
    int op;
    rt_ref reply_to;
    uint64_t tag;
    rt_ref sink; /* RETRY: the new turn's sink */
    uint64_t input_id;
} ag_msg_control;

typedef struct ag_msg_control_reply {
    rt_msg hdr;
    int op;
    uint64_t tag;
    int err; /* 0 or -errno */
    int n;
    char *text;  /* owned, or NULL */
    cJSON *info; /* owned, or NULL */
} ag_msg_control_reply;

/* Constructors (strings copied, drop set). */
rt_msg *ag_input_new(const char *text, rt_ref sink, uint64_t input_id);
rt_msg *ag_answer_new(uint64_t ask_id, int answer, const char *text);
rt_msg *ag_text_new(uint32_t type, const char *text);
rt_msg *ag_control_new(int op, rt_ref reply_to, uint64_t tag);

typedef struct ag_session_opts {
    const char *session_id;     /* state.db id; NULL: a new YYYYMMDD_HHMMSS_<6 hex> id */
    const char *source;         /* platform: "cli", "matrix", …; NULL: "cli" */
    const char *user_id;        /* or NULL */
    const char *model;          /* NULL: the provider's default */
    const char *system_message; /* the caller's system message (agent-core §1.2 part 3) */
    const char *ephemeral;      /* ephemeral system prompt: never persisted */
    rt_ref provider;            /* the main LLM provider */
    rt_ref aux_provider;        /* summaries and compression; 0: the main provider */
    rt_ref store;               /* state store writer; 0: nothing is persisted */
    rt_ref store_reader;        /* state store reader (resume); 0: none */
    rt_ref prompt_service;      /* builds system prompts (blocking file reads) */
    const cJSON *history;       /* the conversation so far when the session is new (the API
                                   server's request messages): copied, persisted first */
    tool_env *env;              /* referenced by the session */
    const char *const *tools;   /* resolved tool names; NULL: no tools */
    int max_iterations;         /* 0: 60 */
    bool stream;                /* stream deltas to the sink */
    bool resume;                /* load the history of session_id from the store first */
    bool skip_memory;
    bool skip_context_files;
    bool compression_enabled;
    double compression_threshold; /* 0: 0.85 */
    int64_t context_length;       /* 0: from the model name */
    int64_t idle_timeout_ms;      /* end the actor after this long idle; 0: never */
    int64_t approval_timeout_ms;  /* an unanswered approval is a timeout after this; 0: 60 s
                                     (the gateway passes approvals.gateway_timeout) */
    int64_t persist_retry_max_ms; /* how long a message the disk has no room for waits for
                                     space before it is refused; 0: 1 hour, < 0: refused at
                                     once (agent.persist_retry_max_s) */
} ag_session_opts;

/* Spawn a session. opts and its strings are copied. so may be NULL. */
rt_ref ag_session_spawn(rt_ctx *cx, const ag_session_opts *opts, const rt_spawn_opts *so);

/* Start the detached actor that builds system prompts for sessions (it reads SOUL.md,
 * memory and context files, so it must not run on a worker): ag_session_opts.prompt_service. */
rt_ref ag_prompt_service_start(rt_ctx *cx);

/* The model's context window from its name (agent-core §5 table), default 128,000. */
int64_t ag_context_length_for(const char *model);

/* A new session id: YYYYMMDD_HHMMSS_<6 hex>, local time (new string). */
char *ag_new_session_id(void);

#endif /* AG_SESSION_H */
