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
#include "rt_buf.h"

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

/* ================================================================ inbox */

/*
 * The inbox journal (state.db's hc_inbox, gw_router.c): an accepted platform update is
 * written there with its hc_inbound key, before its conversation sees it, and stays until
 * the conversation has its message (the turn that took it ended, or the chat dealt with it
 * otherwise: a command, an answer to a question). A crash in between leaves the row; the
 * next start replays it (gw_start), unless state.db holds the user's message by then.
 *
 * gw_inbox_json: the event as the journal keeps it (source, reply target, text, message id,
 * kind, media paths; never the adapter ref, API history or ephemeral prompt), a new string;
 * with media false the media paths are left out (the text already describes them: what the
 * chat writes once transcription and descriptions are done). gw_inbox_event: the event back
 * (type GW_MSG_EVENT, adapter 0), or NULL when json is not one.
 * gw_inbox_put: journal ev again, as it is now (media false), for a chat that has composed
 * its text; gw_inbox_done: its row goes. Both do nothing without a store or a message id.
 */
char *gw_inbox_json(const gw_msg_event *ev, bool media);
gw_msg_event *gw_inbox_event(const char *json);
void gw_inbox_put(rt_ctx *cx, rt_ref store, const gw_msg_event *ev, const char *session_key);
void gw_inbox_done(rt_ctx *cx, rt_ref store, const gw_msg_event *ev);

/* ================================================ router <-> chat messages */

enum {
    /* router -> chat: the event (type GW_MSG_EVENT) comes first in the chat's life */
    GW_CHAT_RESET = RT_MSG_TYPE(RT_MSG_MODULE_GW, 48),   /* gw_chat_reset */
    GW_CHAT_RECOVER = RT_MSG_TYPE(RT_MSG_MODULE_GW, 49), /* rt_msg: answer what is pending */
    GW_CHAT_DRAIN = RT_MSG_TYPE(RT_MSG_MODULE_GW, 50),   /* gw_chat_drain */
    /* rt_msg: the memory budget wants the chat gone: end as the idle timeout ends it when
     * idle, else answer GW_CHAT_KEPT (a gw_chat_update of that type) and carry on */
    GW_CHAT_EVICT = RT_MSG_TYPE(RT_MSG_MODULE_GW, 55),
    /* chat -> router */
    GW_CHAT_UPDATE = RT_MSG_TYPE(RT_MSG_MODULE_GW, 64),  /* gw_chat_update */
    GW_CHAT_SETHOME = RT_MSG_TYPE(RT_MSG_MODULE_GW, 65), /* gw_chat_sethome */
    GW_CHAT_KEPT = RT_MSG_TYPE(RT_MSG_MODULE_GW, 67),    /* gw_chat_update: EVICT declined */
    /* internal timers */
    GW_CHAT_TICK = RT_MSG_TYPE(RT_MSG_MODULE_GW, 72),
    /* rt_msg: the router's upkeep now (cold index entries, memory budget), as on its tick */
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
    bool unanswered;       /* a turn to answer once the platform is up */
    bool in_cold;          /* state.db's hc_session_index has a row for the key (maybe stale) */
    bool evicting;         /* GW_CHAT_EVICT sent: events wait in `wait` until DOWN or KEPT */
    struct gw_waitq *wait; /* events held back while evicting (gw_router.c), or NULL */
    uint32_t flat_gen;     /* the sessions.json copy that has it (gw_router.c index_write) */
    struct gw_entry *next_same_hash;
} gw_entry;

/*
 * Cold entries (gw_router.c): an entry without a chat actor whose conversation has been
 * quiet longer than gateway.index_warm_hours, or whose session the reset policy has expired,
 * leaves memory and sessions.json for state.db's hc_session_index (st_index.h), as its
 * sessions.json object; the router brings it back when its conversation speaks again.
 * gw_entry_text: that object as compact JSON (new string). gw_entry_parse: an entry back
 * from such text for key (NULL with a reason in err when it is not one).
 */
char *gw_entry_text(const gw_entry *e);
gw_entry *gw_entry_parse(const char *key, const char *json, char *err, size_t errlen);

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
/* sessions.json rendered off the router: flatten copies the entries' strings and numbers
 * into out (microseconds per entry, nothing shared afterwards); render_flat turns such a
 * copy into exactly what gw_index_render gives (any thread; a malformed copy renders as far
 * as it is whole). */
void gw_index_flatten(gw_entry *const *entries, size_t n, rt_buf *out);
void gw_index_flatten_one(const gw_entry *e, rt_buf *out); /* one entry of such a copy */
char *gw_index_render_flat(const char *flat, size_t len);
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
    GW_IO_INDEX = RT_MSG_TYPE(RT_MSG_MODULE_GW, 82),  /* gw_io_msg: render a flat index, write */
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
    int64_t took_ms; /* GW_IO_INDEX: how long the rendering took */
} gw_io_done;

rt_ref gw_io_start(rt_ctx *cx);
void gw_io_write(rt_ctx *cx, rt_ref io, const char *path, char *data_taken, size_t len, int mode,
                 rt_ref reply_to, uint64_t tag);
/* Render a flattened index (gw_index_flatten, taken) and write it to path, 0600. */
void gw_io_write_index(rt_ctx *cx, rt_ref io, const char *path, char *flat_taken, size_t len,
                       rt_ref reply_to, uint64_t tag);
void gw_io_setenv(rt_ctx *cx, rt_ref io, const char *path, const char *key, const char *value,
                  rt_ref reply_to, uint64_t tag);

/* ============================================ commands in files of their own */

/*
 * The chat commands kept out of gw_chat.c (gw_cmd_session.c: /title /resume /branch;
 * gw_cmd_info.c: /provider /insights /reasoning /verbose /fast /restart /debug /update;
 * gw_cmd_btw.c: /btw). They run on the chat actor's worker, through the services below;
 * their state hangs off the chat (*st, created on first use, freed with gw_cmds_free).
 */
typedef struct gw_chat gw_chat;
typedef struct gw_cmds gw_cmds;
struct rt_buf;

/* Handle command name (lower-cased, alias or canonical) with args: true when it is one of
 * these (a reply was sent or is on its way), false to let gw_chat.c look at it. */
bool gw_cmds_handle(rt_ctx *cx, gw_chat *c, gw_cmds **st, gw_msg_event *ev, const char *name,
                    const char *args);
/* A message for the commands (ST_MSG_RESULT of a store request, a /btw answer): true when
 * it was theirs. */
bool gw_cmds_on_msg(rt_ctx *cx, gw_chat *c, gw_cmds **st, rt_msg *m);
/* Append their /help lines ("\n`/name args` -- description (alias: `/a`)"). */
void gw_cmds_help(struct rt_buf *b);
void gw_cmds_free(gw_cmds *st);

/* gw_cmd_info.c (called by the dispatcher in gw_cmd_session.c). */
bool gw_cmd_info_handle(rt_ctx *cx, gw_chat *c, gw_cmds **st, gw_msg_event *ev, const char *name,
                        const char *args);
/* gw_cmd_btw.c: /btw <question>, and its answer. */
void gw_cmd_btw(rt_ctx *cx, gw_chat *c, gw_cmds **st, const gw_msg_event *ev, const char *args);
bool gw_cmd_btw_on_msg(rt_ctx *cx, gw_chat *c, gw_cmds **st, rt_msg *m);

/* /restart (gw_cmd_info.c): the restart in progress is registered under this name; after
 * its notice, gw_restart_fn runs (tests replace it). The default stops the gateway as SIGTERM
 * does (drain, platforms stopped) and, at exit, exits with status 75 under systemd
 * (INVOCATION_ID set) or re-executes /proc/self/exe with the same arguments. */
#define GW_RESTART_NAME "hermes.gateway.restart"
typedef void (*gw_restart_hook)(void);
extern gw_restart_hook gw_restart_fn;
void gw_restart_default(void);

/* Services of the chat actor (gw_chat.c) for them; on the chat's worker only. */
/* The /help text: "📖 **Hermes Commands**\n" and one "\n`/name args` -- …" line per command
 * (new string; any thread). */
char *gw_chat_help_text(void);
const char *gw_chat_session_id(const gw_chat *c);
const gw_source *gw_chat_origin(const gw_chat *c);
gw_shared *gw_chat_shared(const gw_chat *c);
bool gw_chat_busy(const gw_chat *c);
rt_ref gw_chat_adapter(const gw_chat *c);
const gw_caps *gw_chat_caps(const gw_chat *c);
const char *gw_chat_model(const gw_chat *c); /* the /model override or the default; may be NULL */
void gw_chat_say(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *text, int kind);
int gw_chat_progress_mode(const gw_chat *c);
void gw_chat_set_progress_mode(gw_chat *c, int mode);
/* Go over to session_id, an existing session of state.db (/resume, /branch): a running turn
 * is interrupted, the agent stopped; the next message loads the transcript of session_id;
 * the sessions index follows. */
void gw_chat_switch_session(rt_ctx *cx, gw_chat *c, const char *session_id);

/* ================================================== media and voice (gw_media.c) */

/*
 * What the original's prompt preparation does with attachments (gateway.md §1.6.1 step 6),
 * and its voice replies (§1.8 step 5, /voice in §4):
 *
 *   - voice / audio files are transcribed (tools/voice, the OpenAI transcription API) and the
 *     transcript goes in front of the text: [The user sent a voice message~ Here's what they
 *     said: "…"], or the original's note when that fails, is disabled or has no key;
 *   - images are described by the auxiliary vision model when one is configured
 *     (auxiliary.vision.* / AUXILIARY_VISION_*, or OpenRouter), as an OpenAI-style image_url
 *     part; else, or when that fails, the original's note naming the cached file;
 *   - documents get the bracketed note naming the cached file; text files (.txt .md .csv
 *     .log .json …, at most 100 KB of UTF-8) have their content included.
 *
 * That work reads files and waits for HTTP, so it runs in a detached job actor per event;
 * the chat keeps its events in arrival order in a gw_mediaq and hands each to the agent only
 * when every event before it is ready: a voice note followed by a text reaches the agent in
 * that order. Voice replies are synthesized by a job of their own and sent to the adapter as
 * a "MEDIA:<path>" line (an .ogg voice note).
 *
 * Threads: the queue belongs to its chat actor; the voice-mode table is process-wide and
 * locked (any worker).
 */
enum {
    GW_MEDIA_START = RT_MSG_TYPE(RT_MSG_MODULE_GW, 69), /* rt_msg: chat -> job, begin */
    GW_MEDIA_DONE = RT_MSG_TYPE(RT_MSG_MODULE_GW, 70),  /* gw_media_done: job -> chat */
};

typedef struct gw_media_done {
    rt_msg hdr;
    uint64_t seq; /* the queue entry it answers */
    char *text;   /* the prompt text, attachments described */
    char *notice; /* to tell the user first (no speech-to-text configured), or NULL */
} gw_media_done;

typedef struct gw_mediaq gw_mediaq;

/* True when ev has attachments the prompt must describe (gw_media_compose). */
bool gw_media_wants(const gw_msg_event *ev);

/*
 * Take ev into the chat's queue (created on first use) when it has attachments or events
 * wait before it: starts its job (attachments) and returns true; the caller then delivers
 * whatever gw_mediaq_pop gives. False: nothing waits and ev needs no work — deliver it now.
 */
bool gw_mediaq_intake(rt_ctx *cx, gw_mediaq **q, gw_shared *sh, gw_msg_event *ev);
/* A job's answer (GW_MEDIA_DONE): marks its entry ready. */
void gw_mediaq_done(gw_mediaq *q, gw_media_done *d);
/* The oldest entry when it is ready (the caller owns it and frees it with rt_msg_free), else
 * NULL. *notice gets the entry's notice (new, or NULL). */
gw_msg_event *gw_mediaq_pop(gw_mediaq *q, char **notice);
/* Entries waiting (the chat must not go idle while jobs run). */
bool gw_mediaq_pending(const gw_mediaq *q);
void gw_mediaq_free(gw_mediaq *q);
/* Remember that input id was a voice message; gw_mediaq_take_voice says whether an input up
 * to id was one (and forgets those). */
void gw_mediaq_voice_input(gw_mediaq **q, uint64_t input_id);
bool gw_mediaq_take_voice(gw_mediaq *q, uint64_t upto);

/*
 * The prompt text for user_text and its attachments, as the original builds it. Pure apart
 * from reading document files (blocking: job actors and tests). stt: the transcription
 * outcome per audio path (parallel to paths; NULL entries are skipped), see gw_media.c.
 */
typedef struct gw_stt_result {
    int status;       /* GW_STT_OK, GW_STT_FAILED, GW_STT_NO_PROVIDER */
    char *transcript; /* OK */
    char *error;      /* FAILED: the error sentence */
} gw_stt_result;
enum { GW_STT_OK = 0, GW_STT_FAILED = 1, GW_STT_NO_PROVIDER = 2, GW_STT_CRASHED = 3 };
enum { GW_MEDIA_IMAGE = 1, GW_MEDIA_AUDIO = 2, GW_MEDIA_DOC = 4 };
/* What path is for an event of kind: GW_MEDIA_* bits (0: nothing to describe). */
int gw_media_class(const char *path, int kind);
char *gw_media_compose(const char *user_text, int kind, char *const *paths, size_t n,
                       const gw_stt_result *stt, bool stt_enabled, bool *no_provider);

/* /voice [on|off|tts|status]: the reply text (new); the mode is saved in
 * <home>/gateway_voice_mode.json through the gateway's file writer. */
char *gw_voice_command(rt_ctx *cx, gw_shared *sh, const char *chat_id, const char *args);
/* The chat's voice mode: "off", "voice_only", "all", or NULL when never set. Copies into buf. */
const char *gw_voice_mode(gw_shared *sh, const char *chat_id, char *buf, size_t len);
/*
 * After a turn's answer: synthesize it and send it to adapter as a voice note when the
 * chat's mode says so (voice_input: the turn answered a voice message). Asynchronous.
 */
void gw_voice_reply(rt_ctx *cx, gw_shared *sh, rt_ref adapter, const gw_caps *caps,
                    const char *platform, const char *chat_id, const gw_target *to,
                    const char *text, bool voice_input);

#endif /* GW_INT_H */
