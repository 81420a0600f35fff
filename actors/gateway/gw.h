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
    GW_MSG_CANCEL = RT_MSG_TYPE(RT_MSG_MODULE_GW, 20),      /* gw_msg_cancel */
    GW_MSG_SENT = RT_MSG_TYPE(RT_MSG_MODULE_GW, 21),        /* gw_msg_sent */
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
    uint64_t seq;    /* the order the gateway received it in (gw_event_seq), 0 before: a
                        /stop covers every message received before it, even one it overtook
                        on the urgent lane */
} gw_msg_event;

/*
 * An adapter withdraws an event it sent (its client went away: the API server's request).
 * The gateway drops the event if it is still waiting, or interrupts the turn answering it;
 * either way the event gets its one GW_OUT_TURN_END, outcome GW_OUTCOME_CANCELLED, addressed
 * to `to`. Unknown requests are ignored.
 */
#define GW_HAVE_CANCEL 1
typedef struct gw_msg_cancel {
    rt_msg hdr;
    char *platform;   /* the event's platform */
    gw_target to;     /* the event's reply target (chat_id and request identify it) */
    char *session_id; /* the event's session_id, or NULL */
    rt_ref adapter;   /* the adapter that sent the event */
} gw_msg_cancel;

/* What an adapter can do; sent once with GW_MSG_ADAPTER_UP. */
typedef struct gw_caps {
    size_t max_message; /* longest message the platform accepts (characters), 0: unlimited */
    bool streams;       /* wants GW_OUT_DELTA (the API server); others get the final text */
    bool markdown;      /* renders Markdown */
    bool progress;      /* tool progress messages are welcome */
    bool acks;          /* answers every GW_OUT_TEXT whose `delivery` is set with one
                           GW_MSG_SENT to the gateway, once the platform took it or refused
                           it: replies are then retried by the gateway's outbox until they
                           land */
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
    /* Set by an adapter's supervisor (adapters/kit/ak_supervise.h) on GW_MSG_ADAPTER_DOWN
     * when the adapter's actor ended abnormally; zero/empty in adapters' own messages. */
    int restarts;     /* restarts of this platform's adapter so far (this one included) */
    bool gave_up;     /* restart storm: the supervisor stopped restarting it */
    char detail[160]; /* for status: "restarting in 2 s after error", or "" */
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
    uint64_t delivery; /* != 0: an outbox entry; adapters with caps.acks answer GW_MSG_SENT */
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

/*
 * An adapter's answer (to the gateway, GW_NAME) to a GW_OUT_TEXT with a delivery id
 * (caps.acks). err 0: the platform
 * has it. Otherwise the outbox retries with backoff (at the earliest after retry_after_ms, if
 * the platform said so) unless permanent (the platform refused the message itself: a 4xx
 * other than 408/429), until its delivery deadline.
 */
typedef struct gw_msg_sent {
    rt_msg hdr;
    uint64_t delivery;
    int err; /* 0 or -errno */
    bool permanent;
    int64_t retry_after_ms; /* 0: the outbox's own backoff */
    char errmsg[160];
} gw_msg_sent;

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
rt_msg *gw_cancel_new(const char *platform, const gw_target *to, const char *session_id,
                      rt_ref adapter);
rt_msg *gw_out_text_new(uint32_t type, const gw_target *to, const char *text, int kind);
rt_msg *gw_out_progress_new(const gw_target *to, const char *line, const char *tool,
                            const char *emoji, const char *label);
rt_msg *gw_out_typing_new(const gw_target *to, bool on);
rt_msg *gw_out_turn_end_new(const gw_target *to, int outcome, const char *session_id);
/* errmsg may be NULL (truncated to fit). */
rt_msg *gw_sent_new(uint64_t delivery, int err, const char *errmsg);
/* An adapter's whole answer: GW_MSG_SENT for delivery to gateway (nothing when either is 0);
 * errmsg NULL with err: rt_strerror(err). */
void gw_ack(rt_ctx *cx, rt_ref gateway, uint64_t delivery, int err, bool permanent,
            int64_t retry_after_ms, const char *errmsg);

/* ---- delivery: cron, send_message, notifications (gateway.md §6) ---- */

enum {
    GW_MSG_DELIVER = RT_MSG_TYPE(RT_MSG_MODULE_GW, 80),   /* gw_msg_deliver */
    GW_MSG_DELIVERED = RT_MSG_TYPE(RT_MSG_MODULE_GW, 81), /* gw_msg_delivered */
};

/* Send text to a chat: platform's chat_id (thread_id optional), or the platform's home
 * channel when chat_id is NULL. reply_to (if set) gets GW_MSG_DELIVERED with tag. */
typedef struct gw_msg_deliver {
    rt_msg hdr;
    char *platform;
    char *chat_id;
    char *thread_id;
    char *text;
    rt_ref reply_to;
    uint64_t tag;
} gw_msg_deliver;

typedef struct gw_msg_delivered {
    rt_msg hdr;
    uint64_t tag;
    int err; /* 0, -ENOENT (no such platform connected), -EDESTADDRREQ (no home) */
    char errmsg[160];
    char *chat_id; /* where it went (the home channel when none was given), or NULL */
} gw_msg_delivered;

rt_msg *gw_deliver_new(const char *platform, const char *chat_id, const char *thread_id,
                       const char *text, rt_ref reply_to, uint64_t tag);

/* ---- starting the gateway ---- */

/* The chat a /restart came from, for the next start (the original's file name). */
#define GW_RESTART_NOTIFY_FILE ".restart_notify.json"

/*
 * After a /restart: when home/.restart_notify.json exists, tell that chat "♻ Gateway
 * restarted successfully. Your session continues." once its platform is connected (tried
 * every second for two minutes), then remove the file. Call once the gateway and the
 * adapters are started; returns at once (an actor does the waiting). Any thread.
 */
void gw_restart_notify(rt_ctx *cx, const char *home, rt_ref gateway);

/* What the gateway asks of its host for one conversation's agent. */
typedef struct gw_session_req {
    const char *session_id;
    const char *session_key;
    const char *platform;
    const char *user_id;   /* may be NULL */
    const char *ephemeral; /* the session context block and overlays, or NULL */
    const cJSON *history;  /* a new session's earlier conversation, or NULL */
    const char *model;     /* a /model override, or NULL */
    bool resume;           /* the session may exist in state.db: load it first */
    bool stream;           /* deltas wanted */
    bool side;             /* a side question (/btw): no tools, nothing persisted */
} gw_session_req;

/* Spawn the agent for a conversation (an ag_session, or a proxy session speaking the same
 * messages): called on workers, concurrently; returns 0 on failure. */
typedef rt_ref (*gw_spawn_fn)(rt_ctx *cx, const gw_session_req *req, void *arg);

typedef struct hm_config hm_config;

typedef struct gw_opts {
    hm_config *cfg;    /* referenced by the gateway */
    const char *home;  /* HERMES_HOME */
    gw_spawn_fn spawn; /* required */
    void *spawn_arg;
    rt_ref store;           /* state.db writer (session ends), 0: none */
    const char *state_db;   /* path, for the start-up scan of unanswered turns; NULL: none */
    const char *model;      /* for /status, /new */
    const char *provider;   /* provider name */
    const char *base_url;   /* shown for local endpoints */
    int64_t context_length; /* 0: from the model */
    int64_t chat_idle_ms;   /* a conversation's actors leave memory after this long idle;
                               0: 10 minutes */
    /* The outbox (docs/reliability.md): replies are written to state.db and retried until
     * the platform took them. Tests shorten its clock. */
    int64_t delivery_retry_ms;    /* first backoff; 0: 1 s */
    int64_t delivery_deadline_ms; /* give up after; 0: gateway.delivery_deadline (6 h) */
    int64_t delivery_ack_ms;      /* an adapter must confirm a send by then; 0: 2 minutes */
} gw_opts;

/*
 * Start the gateway actor (registered as GW_NAME) with its helpers (pairing, file writer).
 * Loads sessions.json and lists the turns a crash left unanswered (they are answered when
 * their platform's adapter comes up). 0, or -errno with err filled. From the main thread.
 */
int gw_start(rt_ctx *cx, const gw_opts *o, rt_ref *out, char *err, size_t errlen);

/*
 * Graceful stop: new turns are refused ("⏳ Gateway is shutting down…"), running turns get
 * drain_ms (0: 60 s, agent.restart_drain_timeout) to finish, the rest are interrupted with a
 * notice; sessions.json and the status file are written, and .clean_shutdown when the drain
 * finished in time. reply_to then gets an rt_msg_timeout with tag (GW_MSG_SHUTDOWN_DONE is
 * its type's meaning: the gateway actor may be stopped now).
 */
enum { GW_MSG_SHUTDOWN = RT_MSG_TYPE(RT_MSG_MODULE_GW, 74) };
typedef struct gw_shutdown {
    rt_msg hdr;
    rt_ref reply_to;
    uint64_t tag;
    int64_t drain_ms;
} gw_shutdown;
rt_msg *gw_shutdown_new(rt_ref reply_to, uint64_t tag, int64_t drain_ms);

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

/* True for the commands that overtake queued messages: /stop, /approve, /deny, /new and
 * /reset (an interrupt must land at once, however busy the gateway is). */
bool gw_command_is_urgent(const char *text);

/*
 * Hand an inbound chat event to the gateway: the commands above go on the urgent lane, ahead
 * of every event still queued in the router's mailbox (under load that queue is where an
 * interrupt used to wait); everything else keeps its order. Takes ownership of ev; false when
 * gateway is 0 or has ended (ev freed). Any thread. The API server sends its requests with
 * rt_send: they queue behind each other by design.
 */
bool gw_event_send(rt_ctx *cx, rt_ref gateway, gw_msg_event *ev);

/* Stamp ev->seq with the next arrival number, unless it has one (gw_event_send stamps; the
 * router stamps what was sent to it without). Any thread. */
void gw_event_seq(gw_msg_event *ev);

#endif /* GW_H */
