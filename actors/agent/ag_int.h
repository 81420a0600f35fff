/*
 * ag_int — session internals shared by the files of actors/agent only.
 */
#ifndef AG_INT_H
#define AG_INT_H

#include "ag_prompt.h"
#include "ag_session.h"
#include "rt_map.h"
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
};

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

/* Start the detached actor that builds system prompts (it reads files). */
rt_ref ag_prompt_service_start(rt_ctx *cx);
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

#endif /* AG_INT_H */
