/*
 * ag_int — session internals shared by the files of actors/agent only.
 */
#ifndef AG_INT_H
#define AG_INT_H

#include "ag_frozen.h"
#include "ag_prompt.h"
#include "ag_session.h"
#include "llm_provider.h"
#include "rt_map.h"
#include "st_store.h"
#include "tool.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

enum ag_phase {
    AG_PH_IDLE = 0,
    AG_PH_LOADING, /* waiting for the history from the store */
    AG_PH_PROMPT,  /* waiting for the system prompt */
    AG_PH_PERSIST, /* waiting for the store to make the user's message durable */
    AG_PH_LLM,     /* waiting for the model */
    AG_PH_TOOLS,   /* waiting for tool results */
    AG_PH_SUMMARY, /* iteration limit reached: waiting for the tool-less summary */
    AG_PH_COMPRESS /* waiting for the compression summary */
};

/* Internal messages (module AG, 32..63). */
enum {
    AG_MSG_PROMPT_REQ = RT_MSG_TYPE(RT_MSG_MODULE_AG, 32),
    AG_MSG_PROMPT_REPLY = RT_MSG_TYPE(RT_MSG_MODULE_AG, 33),
    AG_MSG_ASK_TIMEOUT = RT_MSG_TYPE(RT_MSG_MODULE_AG, 34),
    AG_MSG_IDLE_TIMEOUT = RT_MSG_TYPE(RT_MSG_MODULE_AG, 35),
    AG_MSG_FOLLOW_UP = RT_MSG_TYPE(RT_MSG_MODULE_AG, 36),
    AG_MSG_SAVE_RETRY = RT_MSG_TYPE(RT_MSG_MODULE_AG, 37), /* rt_msg_timeout (ag_save.c) */
};

/* Where the turn's user message is on its way into state.db (ag_save.c). */
enum ag_save_state {
    AG_SAVE_NONE = 0, /* nothing unsaved (or no store) */
    AG_SAVE_FLIGHT,   /* its append is at the store; the ack will say */
    AG_SAVE_DONE,     /* durable; the turn goes on at the next persist_then_llm */
    AG_SAVE_FAILED,   /* the last attempt failed; decided at the next persist_then_llm */
    AG_SAVE_WAIT      /* the disk is full: a retry timer is armed */
};

/* Pending inputs kept per session; more are joined to the last one (their texts folded
 * together as one turn folds them, ag_session.c take_pending). */
#define AG_PENDING_MAX 16
/* Retries of a message the disk had no room for follow the store's schedule (st_store.h
 * st_backoff: 1 s doubling to 30 s, shared with its exactly-once records), for at most
 * ag_session_opts.persist_retry_max_ms (default below). */
#define AG_SAVE_RETRY_MAX_MS (3600 * 1000)

typedef struct ag_msg_prompt_req {
    rt_msg hdr;
    rt_ref reply_to;
    uint64_t tag;
    ag_prompt_opts opts; /* every string and the tools array owned by the message */
} ag_msg_prompt_req;

typedef struct ag_msg_prompt_reply {
    rt_msg hdr;
    uint64_t tag;
    char *text; /* owned */
} ag_msg_prompt_reply;

/* A request with deep copies of o's strings. */
rt_msg *ag_prompt_req_new(rt_ref reply_to, uint64_t tag, const ag_prompt_opts *o);

typedef struct ag_call {
    uint64_t seq;
    char *id; /* the model's tool_call id */
    char *name;
    char *args; /* JSON text */
    const tool_def *def;
    rt_ref actor; /* 0 until started */
    char *result; /* owned once done */
    bool started;
    bool done;
} ag_call;

typedef struct ag_pending {
    char *text;
    char *sender;
    rt_ref sink;
    uint64_t input_id;
    bool unanswered; /* ag_msg_input.unanswered */
    struct ag_pending *next;
} ag_pending;

typedef struct ag_ask {
    uint64_t id;
    rt_ref tool;  /* the asking call's actor */
    uint64_t seq; /* its call */
    int kind;
    char *pattern_key;
    uint64_t timer;
} ag_ask;

/* The session actor's state (ag_session.c). */
typedef struct ag_session {
    /* configuration (owned copies) */
    char *session_id, *source, *user_id, *model, *system_message, *ephemeral;
    rt_ref provider, aux_provider, store, reader, prompt_service;
    tool_env *env;
    char **tools;              /* NULL-terminated */
    const cJSON *tool_schemas; /* shared by every session with these tools (tool.h) */
    int max_iterations;
    bool stream, skip_memory, skip_context_files;
    bool compression_enabled;
    double compression_threshold;
    int64_t context_length;
    int64_t idle_timeout_ms;
    int64_t approval_timeout_ms;

    /* conversation */
    cJSON *messages;    /* the transcript, neutral format, no system message */
    ag_frozen **frozen; /* messages[0, frozen_upto) as sent to the model (ag_frozen.h) */
    size_t nfrozen;
    int frozen_upto;     /* -1: the transcript changed other than by appending: refreeze */
    cJSON *seed;         /* opts.history, persisted with the session row, then freed */
    char *system_prompt; /* built once per session (agent-core §1.2) */
    bool session_created;
    cJSON *todos;
    char **approved; /* pattern keys approved for this session */
    size_t napproved;

    /* the turn */
    int phase;
    uint64_t turn;        /* turns started */
    uint64_t status_turn; /* the turn the user was last told the provider is busy in */
    rt_ref sink;
    uint64_t input_id;
    int iterations;
    uint64_t tag; /* tag of the request or persist we wait for */
    uint64_t next_tag;
    ag_call *calls;
    size_t ncalls;
    uint64_t next_seq;
    int invalid_tool_retries, invalid_json_retries, empty_retries;
    char *fallback_text; /* visible text of the last assistant message with tool calls */
    ag_pending *pending, **pending_tail;
    size_t npending;
    rt_map asks; /* ask id → ag_ask */
    uint64_t next_ask;
    uint64_t idle_timer;

    /* making the turn's user message durable (ag_save.c) */
    int save_state;          /* enum ag_save_state */
    int save_idx;            /* the unsaved message's index in messages (save_state != NONE) */
    uint64_t save_tag;       /* tag of the ack of its latest append */
    int save_err;            /* AG_SAVE_FAILED: the error, and the store's sentence */
    char *save_errmsg;       /* owned, or NULL */
    int save_attempts;       /* appends sent this turn for it */
    st_backoff save_backoff; /* since the first failure (rt_now_ns / 1e6); zeroed: none */
    uint64_t save_timer;     /* armed retry (AG_SAVE_WAIT) */
    uint64_t save_gen;       /* the timer's tag: a stale timer is ignored */
    bool save_noticed;       /* this turn told the user it waits for disk space */
    uint64_t create_tag;     /* ack tag of the session row's create in flight, or 0 */
    int create_err;          /* its error (0, or failed: send it again with the retry) */
    int64_t save_max_ms;     /* ag_session_opts.persist_retry_max_ms; < 0: no retries */

    /* accounting */
    int api_calls;
    int64_t prompt_tokens, completion_tokens, last_prompt_tokens;
    int64_t unsaved_in, unsaved_out; /* the last model call's tokens, written with its message
                                        (ag__append) or on their own (on_result) */
    int compressions;
    int compress_head, compress_tail; /* the cut of the compression in flight */
    bool overflow_retried;            /* this turn already compressed after an overflow */
    bool manual_compress;             /* the compression in flight is a /compress */
    rt_ref compress_reply;            /* who gets its AG_CTL_COMPRESS reply, or 0 */
    uint64_t compress_tag;
    int compress_before; /* messages before it */
} ag_session;

/* ag_session.c */
char *ag__dupn(const char *s);
const char *ag__jstr(const cJSON *o, const char *k);
cJSON *ag__msg_obj(const char *role, const char *content);
void ag__append(rt_ctx *cx, ag_session *s, cJSON *m, uint64_t ack_tag);
void ag__append_tool_result(rt_ctx *cx, ag_session *s, const char *call_id, const char *name,
                            const char *content);
void ag__start_llm(rt_ctx *cx, ag_session *s);
void ag__end_turn(rt_ctx *cx, ag_session *s, char *text, int err, char *errmsg, bool interrupted);

/* ag_msgs.c */
void ag__to_sink(rt_ctx *cx, ag_session *s, rt_msg *m);
void ag__send_status(rt_ctx *cx, ag_session *s, const char *text);
void ag__drop_delta(rt_msg *m);
void ag__drop_done(rt_msg *m);
void ag__drop_progress(rt_msg *m);
void ag__drop_ask(rt_msg *m);
rt_msg *ag__control_reply_new(const ag_msg_control *c, int err, int n, char *text, cJSON *info);

/* ag_session.c: after compression, rebuild the prompt and ask the model again. */
void ag__resume_after_compress(rt_ctx *cx, ag_session *s);
/* ag_session.c: a /compress finished (err 0) or was cancelled: reply, back to idle. */
void ag__manual_compress_done(rt_ctx *cx, ag_session *s, int err);

/* ag_compress.c: pure parts (for tests) and the session's steps. */
bool ag_compress_plan(const cJSON *messages, int *head_end, int *tail_start);
char *ag_compress_render(const cJSON *messages, int from, int to);
cJSON *ag_compress_apply(const cJSON *messages, int head_end, int tail_start, const char *summary,
                         const cJSON *todos);
bool ag__should_compress(const ag_session *s);
bool ag__start_compress(rt_ctx *cx, ag_session *s);
void ag__on_compress_result(rt_ctx *cx, ag_session *s, llm_msg_result *r);

/* ag_session.c: the turn's user message is durable: fold what came meanwhile, then ask
 * the model. */
void ag__saved(rt_ctx *cx, ag_session *s);

/* ag_save.c: the turn's user message on its way into state.db. A message the store could not
 * take because the disk is full or failing (-ENOSPC, -EIO) is kept and written again with a
 * backoff until it is taken (then the turn goes on) or persist_retry_max_ms has passed (then
 * the turn ends with the refusal); the user is told once that the answer waits for disk space.
 * Any other error ends the turn with the refusal at once. */
void ag__save_user(rt_ctx *cx, ag_session *s, cJSON *m); /* append m (taken), ack asked */
/* The session row, ack asked; then messages[0, resend_upto) again (refused with a row that
 * failed to be created). */
void ag__save_create(rt_ctx *cx, ag_session *s, int resend_upto);
bool ag__save_on_ack(rt_ctx *cx, ag_session *s, uint64_t tag, int err, const char *errmsg);
void ag__save_continue(rt_ctx *cx, ag_session *s); /* phase PERSIST: go on, wait or refuse */
void ag__save_on_timer(rt_ctx *cx, ag_session *s, rt_msg_timeout *t);
/* The turn ends by interrupt (code AG_INT_*) with the message not known durable: /stop and
 * a new session drop it (with a notice when the user was told it waits); shutdown makes one
 * last attempt and leaves it to the crash-recovery path. */
void ag__save_interrupted(rt_ctx *cx, ag_session *s, int code);
void ag__save_reset(rt_ctx *cx, ag_session *s); /* the turn ended: forget, cancel the timer */
/* Retryable store errors: the disk is full or failing. */
bool ag_save_retryable(int err);

/* ag_calls.c */
void ag__free_calls(ag_session *s);
void ag__clear_asks(rt_ctx *cx, ag_session *s);
void ag__dispatch_calls(rt_ctx *cx, ag_session *s);
void ag__on_tool_result(rt_ctx *cx, ag_session *s, tool_msg_result *r);
void ag__on_tool_progress(rt_ctx *cx, ag_session *s, tool_msg_progress *p);
void ag__on_exit_of_child(rt_ctx *cx, ag_session *s, rt_msg_exit *e);
void ag__on_tool_ask(rt_ctx *cx, ag_session *s, tool_msg_ask *q);
void ag__on_answer(rt_ctx *cx, ag_session *s, ag_msg_answer *m);
void ag__on_ask_timeout(rt_ctx *cx, ag_session *s, rt_msg_timeout *t);

#endif /* AG_INT_H */
