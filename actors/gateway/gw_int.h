/*
 * gw_int — what the files of actors/gateway share, and nobody else: the router's internal
 * messages to and from the chat actors, the settings they share, the sessions index and the
 * small pure helpers (progress lines, the session context block, reset policy).
 *
 * Ownership: gw_shared is immutable once the gateway has started and is shared by reference
 * count between the router and every chat actor (any worker may read it).
 */
#ifndef GW_INT_H
#define GW_INT_H

#include "gw.h"
#include "hm_config.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* ====================================================== shared settings */

enum gw_progress_mode {
    GW_PROGRESS_OFF = 0,
    GW_PROGRESS_NEW,
    GW_PROGRESS_ALL,
    GW_PROGRESS_VERBOSE
};

typedef struct gw_reset_policy {
    int mode;             /* GW_RESET_* */
    int at_hour;          /* 0..23, local */
    int64_t idle_minutes; /* > 0 */
    bool notify;
} gw_reset_policy;

enum { GW_RESET_NONE = 0, GW_RESET_IDLE, GW_RESET_DAILY, GW_RESET_BOTH };

typedef struct gw_shared {
    _Atomic int refs;
    hm_config *cfg;
    char *home;
    gw_spawn_fn spawn;
    void *spawn_arg;
    rt_ref store;
    rt_ref io;     /* the gateway's file writer (gw_io.c) */
    rt_ref outbox; /* replies go through it (gw_outbox.c); 0: straight to the adapter */
    char *model, *provider, *base_url;
    int64_t context_length;
    int64_t chat_idle_ms;
    int64_t approval_timeout_ms; /* approvals.gateway_timeout (300 s) */
    bool group_per_user;         /* group_sessions_per_user */
    bool thread_per_user;        /* thread_sessions_per_user */
    char *personality_default;   /* agent.system_prompt, or NULL */
} gw_shared;

gw_shared *gw_shared_ref(gw_shared *s);
void gw_shared_unref(gw_shared *s);

/* ================================================================ outbox */

/* gw_outbox.c: replies written to state.db before they are sent, and sent until a platform
 * took them (see the file's header). */
#define GW_OUTBOX_NAME "hermes.outbox"
enum {
    GW_OUTBOX_PUT = RT_MSG_TYPE(RT_MSG_MODULE_GW, 52),     /* gw_outbox_put: chat → outbox */
    GW_OUTBOX_ADAPTER = RT_MSG_TYPE(RT_MSG_MODULE_GW, 53), /* gw_outbox_adapter: router → */
    GW_OUTBOX_STATS = RT_MSG_TYPE(RT_MSG_MODULE_GW, 54),   /* gw_outbox_stats: → router */
};
typedef struct gw_outbox_put {
    rt_msg hdr;
    char *platform;
    gw_target to;
    char *text;
    int kind, part, parts;
} gw_outbox_put;
typedef struct gw_outbox_adapter {
    rt_msg hdr;
    char *platform;
    rt_ref ref;
    gw_caps caps;
    bool up;
} gw_outbox_adapter;
typedef struct gw_outbox_stats {
    rt_msg hdr;
    size_t pending;
    uint64_t sent, failed;
    char last_error[200];
} gw_outbox_stats;
typedef struct gw_outbox_opts {
    rt_ref store;           /* 0: nothing is written down (replies still go in order) */
    const char *state_db;   /* load what a previous run left; NULL: nothing */
    int64_t retry_base_ms;  /* first backoff; 0: 1 s (doubling, capped at 60 s) */
    int64_t deadline_ms;    /* give up after; 0: 6 hours */
    int64_t ack_timeout_ms; /* an adapter's GW_MSG_SENT must come by then; 0: 2 minutes */
} gw_outbox_opts;

/* Spawn the outbox (registered as GW_OUTBOX_NAME); 0 if one runs already. */
rt_ref gw_outbox_start(rt_ctx *cx, const gw_outbox_opts *o);
rt_msg *gw_outbox_put_new(const char *platform, const gw_target *to, const char *text, int kind,
                          int part, int parts);
rt_msg *gw_outbox_adapter_new(const char *platform, rt_ref ref, const gw_caps *caps, bool up);
/* Hand text for a chat to the outbox, split as gw_say splits it. */
void gw_outbox_say(rt_ctx *cx, rt_ref outbox, const char *platform, const gw_caps *caps,
                   const gw_target *to, const char *text, int kind);

/* The first n characters of s (whole UTF-8 sequences), with "..." when it was cut. New. */
char *gw_preview(const char *s, size_t n);

/* Send text to a chat through its adapter: split with gw_chunk at caps->max_message (not for
 * programs: caps->api), each part numbered. adapter 0 or text NULL: nothing. */
void gw_say(rt_ctx *cx, rt_ref adapter, const gw_caps *caps, const gw_target *to, const char *text,
            int kind);

/*
 * /background <prompt>: run prompt in a fresh session of its own, beside the chat's, and send
 * its answer to `to` when it ends ("✅ Background task complete …" or "❌ Background task <id>
 * failed: …"). Nobody is asked anything: approvals are denied, clarify questions get no
 * answer. Writes the task id (bg_HHMMSS_<6 hex>) to id. Returns 0, or -EAGAIN when the
 * session could not be spawned.
 */
int gw_bg_start(rt_ctx *cx, gw_shared *sh, rt_ref adapter, const gw_caps *caps, const gw_target *to,
                const gw_source *origin, const char *prompt, char id[32]);

/* The tool progress mode of platform (display.platforms.<p>.tool_progress, the legacy
 * overrides, display.tool_progress, HERMES_TOOL_PROGRESS(_MODE), the built-in defaults). */
int gw_progress_mode(const hm_config *cfg, const char *platform);
/* The reset policy for platform and chat type (session_reset, SESSION_IDLE_MINUTES,
 * SESSION_RESET_HOUR, validated as the original). */
gw_reset_policy gw_reset_policy_for(const hm_config *cfg, const char *platform,
                                    const char *chat_type);

/* ================================================ router <-> chat messages */

enum {
    /* router -> chat: the event (type GW_MSG_EVENT) comes first in the chat's life */
    GW_CHAT_RESET = RT_MSG_TYPE(RT_MSG_MODULE_GW, 48),   /* gw_chat_reset */
    GW_CHAT_RECOVER = RT_MSG_TYPE(RT_MSG_MODULE_GW, 49), /* rt_msg: answer what is pending */
    GW_CHAT_DRAIN = RT_MSG_TYPE(RT_MSG_MODULE_GW, 50),   /* gw_chat_drain */
    /* chat -> router */
    GW_CHAT_UPDATE = RT_MSG_TYPE(RT_MSG_MODULE_GW, 64),  /* gw_chat_update */
    GW_CHAT_SETHOME = RT_MSG_TYPE(RT_MSG_MODULE_GW, 65), /* gw_chat_sethome */
    /* internal timers */
    GW_CHAT_TICK = RT_MSG_TYPE(RT_MSG_MODULE_GW, 72),
    GW_ROUTER_TICK = RT_MSG_TYPE(RT_MSG_MODULE_GW, 73),
};

/* Begin a new session: /new from the router's reset policy (reason is the user-facing
 * reason, NULL for a silent reset). */
typedef struct gw_chat_reset {
    rt_msg hdr;
    char *session_id; /* the new id */
    char *reason;     /* "daily schedule at 4:00", … or NULL */
    bool notify;
} gw_chat_reset;

/* Stop accepting turns: notify (once) and interrupt the running turn with code. */
typedef struct gw_chat_drain {
    rt_msg hdr;
    char *notice; /* sent to the chat when a turn is running, or NULL */
    int code;     /* interrupt code, 0: let the turn finish */
} gw_chat_drain;

/* A conversation's facts for sessions.json, sent whenever they change. */
typedef struct gw_chat_update {
    rt_msg hdr;
    char *key;
    char *session_id;
    int64_t input_tokens, output_tokens, last_prompt_tokens;
    bool busy;  /* a turn is running */
    bool reset; /* a new session began (/new) */
} gw_chat_update;

typedef struct gw_chat_sethome {
    rt_msg hdr;
    gw_target to; /* where to confirm */
    char *platform;
    char *chat_id;
    char *chat_name;
    char *thread_id;
} gw_chat_sethome;

/* The chat actor of one session key (gw_chat.c). */
typedef struct gw_chat_init {
    gw_shared *shared; /* referenced by the chat */
    const char *key;
    const gw_source *origin;
    rt_ref adapter;
    gw_caps caps;
    const char *session_id;
    bool existing;         /* the session may be in state.db */
    const char *context;   /* the session context block (§2.8), or NULL */
    const char *home_hint; /* "📬 No home channel…" for a fresh session, or NULL */
    int progress_mode;
} gw_chat_init;

rt_ref gw_chat_spawn(rt_ctx *cx, const gw_chat_init *init);

rt_msg *gw_chat_update_new(const char *key, const char *session_id);
rt_msg *gw_chat_reset_new(const char *session_id, const char *reason, bool notify);
rt_msg *gw_chat_drain_new(const char *notice, int code);
void gw__drop_sethome(rt_msg *m);
void gw__drop_delivered(rt_msg *m);

/* ======================================================= sessions index */

/* One sessions.json entry (gateway.md §2.2). */
typedef struct gw_entry {
    char *key;
    char *session_id;
    double created_at, updated_at; /* epoch seconds */
    char *display_name;
    char *platform;
    char *chat_type;
    int64_t input_tokens, output_tokens, total_tokens, last_prompt_tokens;
    bool memory_flushed;
    bool suspended;
    gw_source origin;
    bool has_origin;
    /* runtime only */
    rt_ref chat;
    uint64_t chat_mon;
    bool busy;
    bool unanswered; /* a turn to answer once the platform is up */
    struct gw_entry *next_same_hash;
} gw_entry;

/* YYYYMMDD_HHMMSS_<8 hex>, local time, 8 hex from the CSPRNG (new string). */
char *gw_new_session_id(void);
/* ISO-8601 local time without zone, as the original writes (new string). */
char *gw_iso_local(double epoch);
double gw_parse_iso_local(const char *s); /* 0 when it does not parse */

/* sessions.json <-> entries. load: 0 with *out an array of n entries (caller frees each
 * with gw_entry_free and the array with rt_free), -ENOENT without a file, or -errno/-EINVAL
 * with err filled (a corrupt file is renamed aside by the caller). */
int gw_index_parse(const char *text, gw_entry ***out, size_t *n, char *err, size_t errlen);
char *gw_index_render(gw_entry *const *entries, size_t n); /* pretty JSON (new string) */
void gw_entry_free(gw_entry *e);

/* Why entry e must start over at now (a reason for the user), or NULL to keep it. */
const char *gw_reset_due(const gw_entry *e, const gw_reset_policy *p, double now, char *buf,
                         size_t len);

/* ================================================================ texts */

/* The session context block (§2.8). platforms: connected platform names; homes: parallel
 * home channel ids (NULL when none). New string. */
char *gw_context_block(const gw_source *src, bool shared_thread, const char *const *platforms,
                       const char *const *homes, size_t nplatforms);

/* A progress line for a tool start (§7.2): "<emoji> <tool>: \"<preview>\"" (new string);
 * emoji (static) and label (new string, may be NULL) are also returned. */
char *gw_progress_line(const char *tool, const char *preview, int mode, const char **emoji,
                       char **label);
const char *gw_tool_emoji(const char *tool);

/* The home channel variable of a platform: MATRIX_HOME_ROOM, MATTERMOST_HOME_CHANNEL,
 * <PLATFORM>_HOME_CHANNEL otherwise (static or into buf). */
const char *gw_home_var(const char *platform, char *buf, size_t len);

/* The gateway's file writer: a detached actor writing sessions.json, the status file and
 * .env keys (gw_io.c). */
enum {
    GW_IO_WRITE = RT_MSG_TYPE(RT_MSG_MODULE_GW, 76),  /* gw_io_msg: atomic write */
    GW_IO_SETENV = RT_MSG_TYPE(RT_MSG_MODULE_GW, 77), /* gw_io_msg: key=value into .env */
    GW_IO_DONE = RT_MSG_TYPE(RT_MSG_MODULE_GW, 78),   /* gw_io_done */
    GW_IO_TRIM = RT_MSG_TYPE(RT_MSG_MODULE_GW, 79),   /* rt_msg: give freed memory back */
};
typedef struct gw_io_msg {
    rt_msg hdr;
    char *path;
    char *data; /* WRITE: the bytes; SETENV: the value */
    char *key;  /* SETENV */
    size_t len;
    int mode;
    rt_ref reply_to;
    uint64_t tag;
} gw_io_msg;
typedef struct gw_io_done {
    rt_msg hdr;
    uint64_t tag;
    int err;
} gw_io_done;

rt_ref gw_io_start(rt_ctx *cx);
void gw_io_write(rt_ctx *cx, rt_ref io, const char *path, char *data_taken, size_t len, int mode,
                 rt_ref reply_to, uint64_t tag);
void gw_io_setenv(rt_ctx *cx, rt_ref io, const char *path, const char *key, const char *value,
                  rt_ref reply_to, uint64_t tag);

#endif /* GW_INT_H */
