/*
 * gw — the messaging gateway: what adapters send it and what it sends them.
 *
 * The way a message travels (ARCHITECTURE.md):
 *
 *   adapter ──GW_MSG_EVENT──► gateway ──► chat actor (one per session key) ──► session
 *      ▲                      auth, pairing,  commands, approvals,            the agent
 *      │                      session keys    progress, the reply             loop
 *      └──────── GW_OUT_* (text, deltas, typing, turn end) ◄───────────────────┘
 *
 * Adapters know their platform and this file, nothing else: they decide whether an event is
 * addressed to the bot (DMs, mentions, threads the bot is in — their platform's rules), turn
 * it into a neutral GW_MSG_EVENT, and render the GW_OUT_* messages. A new platform is one new
 * folder under adapters/.
 *
 * Threads: constructors from any thread.
 */
#ifndef GW_H
#define GW_H

#include "rt_actor.h"

#include <cjson/cJSON.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_NAME "hermes.gateway" /* the gateway actor's registered name */

enum {
    /* adapters → gateway */
    GW_MSG_EVENT = RT_MSG_TYPE(RT_MSG_MODULE_GW, 1),        /* gw_msg_event */
    GW_MSG_ADAPTER_UP = RT_MSG_TYPE(RT_MSG_MODULE_GW, 2),   /* gw_msg_adapter */
    GW_MSG_ADAPTER_DOWN = RT_MSG_TYPE(RT_MSG_MODULE_GW, 3), /* gw_msg_adapter */
    /* gateway → adapters */
    GW_OUT_TEXT = RT_MSG_TYPE(RT_MSG_MODULE_GW, 16),     /* gw_out_text */
    GW_OUT_DELTA = RT_MSG_TYPE(RT_MSG_MODULE_GW, 17),    /* gw_out_text (adapters that stream) */
    GW_OUT_TYPING = RT_MSG_TYPE(RT_MSG_MODULE_GW, 18),   /* gw_out_typing */
    GW_OUT_TURN_END = RT_MSG_TYPE(RT_MSG_MODULE_GW, 19), /* gw_out_turn_end */
    /* numbers 32..47 belong to gw_pairing.h, 48..79 to the router and chat actors, 80..95 to
     * delivery (home channels, send_message, cron) */
};

/* Where an event came from (the original's SessionSource, gateway.md §1.5). */
typedef struct gw_source {
    char *platform; /* "matrix", "mattermost", "api_server", … */
    char *chat_id;
    char *chat_name;   /* may be NULL */
    char *chat_type;   /* "dm", "group", "channel", "thread" */
    char *user_id;     /* may be NULL (then the event is dropped unless internal) */
    char *user_name;   /* may be NULL */
    char *thread_id;   /* may be NULL */
    char *user_id_alt; /* may be NULL: used for per-user keys when set */
} gw_source;

/* Where a reply goes: enough for the adapter to address it, opaque to the gateway. */
typedef struct gw_target {
    char *chat_id;
    char *thread_id;  /* may be NULL */
    char *reply_to;   /* platform message id to answer, may be NULL */
    uint64_t request; /* adapter's own correlation (the API server's request), 0 if none */
} gw_target;

enum gw_kind {
    GW_KIND_TEXT = 0,
    GW_KIND_PHOTO,
    GW_KIND_VOICE,
    GW_KIND_AUDIO,
    GW_KIND_VIDEO,
    GW_KIND_DOCUMENT
};

typedef struct gw_msg_event {
    rt_msg hdr;
    gw_source src;
    gw_target reply;  /* how to answer this event */
    char *text;       /* the message (a caption for media) */
    char *message_id; /* platform id: idempotency key */
    char *session_id; /* explicit session (API server's X-Hermes-Session-Id), or NULL */
    int kind;         /* gw_kind */
    char **media;     /* local file paths, nmedia of them */
    size_t nmedia;
    rt_ref adapter;  /* the adapter that sent it (replies go there) */
    bool internal;   /* synthetic event, or one the adapter authenticated itself (the API
                        server's key): skips authorization */
    char *ephemeral; /* an ephemeral system prompt layered over Hermes' own (the API
                        server's system messages), never persisted, or NULL */
    cJSON *history;  /* the conversation before text, as OpenAI messages ({role, content}),
                        used when the session is new (the API server without a session
                        header), or NULL */
} gw_msg_event;

/* What an adapter can do; sent once with GW_MSG_ADAPTER_UP. */
typedef struct gw_caps {
    size_t max_message; /* longest message the platform accepts (characters), 0: unlimited */
    bool streams;       /* wants GW_OUT_DELTA (the API server); others get the final text */
    bool markdown;      /* renders Markdown */
    bool progress;      /* tool progress messages are welcome */
    bool api;           /* a program, not a person (the API server): no slash commands, a
                           message during a turn waits for it instead of interrupting it,
                           dangerous commands are refused ("approval required") since nobody
                           can answer an approval question */
} gw_caps;

typedef struct gw_msg_adapter {
    rt_msg hdr;
    char *platform;
    rt_ref ref;
    gw_caps caps;
    char *home_channel; /* the platform's home channel from its settings, or NULL */
} gw_msg_adapter;

enum gw_text_kind {
    GW_TEXT_REPLY = 0,    /* the agent's answer (or a chunk of it) */
    GW_TEXT_PROGRESS = 1, /* a tool progress line */
    GW_TEXT_NOTICE = 2,   /* command replies, status, pairing codes */
    GW_TEXT_ERROR = 3,    /* a failure the user should see */
    GW_TEXT_ASK = 4,      /* an approval or clarify question waiting for a reply */
};

typedef struct gw_out_text {
    rt_msg hdr;
    gw_target to;
    char *text;
    int kind; /* gw_text_kind */
    int part; /* 1-based chunk number of a split reply */
    int parts;
    /* GW_TEXT_PROGRESS only, for adapters that show progress their own way (the API
     * server's hermes.tool.progress event); text is the rendered line. May be NULL. */
    char *tool;
    char *emoji;
    char *label;
} gw_out_text;

typedef struct gw_out_typing {
    rt_msg hdr;
    gw_target to;
    bool on;
} gw_out_typing;

enum gw_outcome { GW_OUTCOME_SUCCESS = 0, GW_OUTCOME_FAILURE = 1, GW_OUTCOME_CANCELLED = 2 };

typedef struct gw_out_turn_end {
    rt_msg hdr;
    gw_target to;
    int outcome;           /* gw_outcome */
    char *session_id;      /* the session that answered (the API server returns it) */
    int64_t prompt_tokens; /* this turn's usage, 0 if unknown */
    int64_t completion_tokens;
} gw_out_turn_end;

/* ---- constructors (copy their arguments; drops set) ---- */

gw_msg_event *gw_event_new(const char *platform, const char *chat_type, const char *chat_id,
                           const char *user_id, const char *text);
/* A new event of the given type holding everything from's fields held (from keeps empty
 * fields, so its drop frees nothing): how an actor passes on an event it was lent. */
gw_msg_event *gw_event_take(gw_msg_event *from, uint32_t type);
void gw_source_copy(gw_source *dst, const gw_source *src);
void gw_source_fini(gw_source *s);
void gw_target_copy(gw_target *dst, const gw_target *src);
void gw_target_fini(gw_target *t);
rt_msg *gw_adapter_up_new(const char *platform, rt_ref ref, const gw_caps *caps,
                          const char *home_channel);
rt_msg *gw_adapter_down_new(const char *platform, rt_ref ref);
rt_msg *gw_out_text_new(uint32_t type, const gw_target *to, const char *text, int kind);
rt_msg *gw_out_progress_new(const gw_target *to, const char *line, const char *tool,
                            const char *emoji, const char *label);
rt_msg *gw_out_typing_new(const gw_target *to, bool on);
rt_msg *gw_out_turn_end_new(const gw_target *to, int outcome, const char *session_id);

/* ---- pure helpers (tested) ---- */

/*
 * The session key, exactly as the original builds it (gateway.md §2.1):
 * agent:main:<platform>:<chat_type>:<chat_id>[:<thread_id>][:<user_id>]. per_user is
 * group_sessions_per_user (true), thread_per_user is thread_sessions_per_user (false).
 */
char *gw_session_key(const gw_source *s, bool per_user, bool thread_per_user);

/*
 * Split text into chunks of at most max characters the original's way (gateway.md §1.8):
 * cut at the last newline (unless in the first half), else the last space, else hard; keep
 * inline code spans whole; close and reopen fenced code blocks across chunks; add " (i/n)"
 * when there is more than one. Returns a NULL-terminated array of new strings.
 */
char **gw_chunk(const char *text, size_t max);
void gw_chunks_free(char **chunks);

/* A slash command: name (lower-cased, @botname removed) and args, or false if text is not a
 * command ("/etc/passwd" is not one). name/args point into a copy owned by *buf. */
bool gw_parse_command(const char *text, char **buf, const char **name, const char **args);

#endif /* GW_H */
