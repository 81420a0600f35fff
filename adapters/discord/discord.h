/*
 * discord — the Discord adapter: the Gateway WebSocket (v10) for what users say, REST v10 for
 * what Hermes answers. One actor speaks the reactor's HTTP client (rt_http.h), one WebSocket
 * (rt_ws.h) and the gateway's messages (gw.h). docs/discord.md is the user's guide.
 *
 * What it does:
 *   - connects: GET /gateway/bot (a refused token ends the adapter with "Discord: the bot
 *     token was refused (401 Unauthorized) — check DISCORD_BOT_TOKEN"), the WebSocket with
 *     ?v=10&encoding=json, Hello → heartbeats every heartbeat_interval (the first after a
 *     random fraction of it), Identify with the intents GUILDS, GUILD_MESSAGES,
 *     DIRECT_MESSAGES and MESSAGE_CONTENT; READY gives the session id and the
 *     resume_gateway_url; then it announces itself to the gateway;
 *   - keeps the session: op 1 (heartbeat now), op 7 (reconnect and Resume), op 9 (invalid
 *     session: Resume when resumable, else a new Identify after 1–5 s), op 11 (ack); a
 *     heartbeat whose ack has not come when the next is due marks the connection a zombie:
 *     it is closed and the session resumed on a fresh one (resume_gateway_url, session id,
 *     last sequence), so no event is lost; close codes 4004 (authentication failed), 4010–
 *     4014 (shard, version, intents — 4014 is the Message Content intent not enabled) end
 *     the adapter with a message saying what to fix, 4007/4009 start a new session, any
 *     other drop resumes after a backoff (1 s doubling to 60 s, up to 20 % jitter);
 *   - turns MESSAGE_CREATE into gw_msg_event: DMs always; guild channels when the bot is
 *     @mentioned or the message replies to the bot, in threads the bot is in, in
 *     DISCORD_FREE_RESPONSE_CHANNELS or everywhere with DISCORD_REQUIRE_MENTION=false
 *     (DISCORD_ALLOWED_CHANNELS / DISCORD_IGNORED_CHANNELS filter first); message_id is
 *     the Discord message id; attachments are downloaded into HERMES_HOME/cache;
 *   - auto-threads (DISCORD_AUTO_THREAD, default on, the original's rule): a message it
 *     answers in a guild text channel — not in a thread, not in a free-response channel or
 *     DISCORD_NO_THREAD_CHANNELS — gets a public thread started from it (POST
 *     /channels/{channel}/messages/{message}/threads, named after the message, 80
 *     characters at most, "Hermes" when empty) and the answer goes there; the event carries
 *     chat_type "thread", chat_id the channel and thread_id the thread, like every later
 *     message in that thread (which needs no mention: the bot is in it), so they share one
 *     session (threads the bot started count as threads it is in, also when GUILD_CREATE
 *     lists them after a restart). When the thread cannot be made (no Create Public
 *     Threads permission…) the answer goes to the channel as before;
 *   - replies with POST /channels/{id}/messages (split at 2000 characters, as a reply to the
 *     message answered in guilds, mentions disabled), uploads MEDIA:<path> files
 *     (multipart), shows the typing indicator (POST /channels/{id}/typing, renewed every 8 s);
 *   - catches up after a new session (READY, not RESUMED: a gateway restart, an invalid
 *     session): the newest message handled per channel (DMs, guild channels and threads the
 *     bot answered in, DISCORD_CATCHUP_CHANNELS at most) is kept in
 *     HERMES_HOME/platforms/discord/state.json (0600, written atomically); what came after it
 *     (DISCORD_CATCHUP_PAGES pages of 100 at most, nothing older than 24 h) is fetched with
 *     GET /channels/{id}/messages?after= and goes through the same rules as live messages,
 *     oldest first, with the same message ids (the gateway drops what it saw already); a
 *     channel answering 403/404 is forgotten;
 *   - honours the REST rate limits: per route buckets from X-RateLimit-Bucket / -Remaining
 *     / -Reset-After (a request waits when its bucket is empty), 429 retry_after, and the
 *     global limit (X-RateLimit-Global).
 *
 * Threads: discord_opts_from_config and the pure helpers from any thread; discord_start from
 * a non-worker thread with an rt_ctx_external context. The actor never blocks; file I/O goes
 * to a detached helper actor.
 */
#ifndef DISCORD_H
#define DISCORD_H

#include "rt_actor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hm_config hm_config;

#define DISCORD_PLATFORM    "discord"
#define DISCORD_API_DEFAULT "https://discord.com/api/v10"
#define DISCORD_MAX_MESSAGE 2000

/* Gateway intents (GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT). */
#define DISCORD_INTENTS ((1 << 0) | (1 << 9) | (1 << 12) | (1 << 15))

typedef struct discord_opts {
    char *token;               /* DISCORD_BOT_TOKEN */
    char *api_base;            /* DISCORD_API_BASE (tests), no trailing '/' */
    char *hermes_home;         /* cache lives under it */
    char *home_channel;        /* DISCORD_HOME_CHANNEL, or NULL */
    bool require_mention;      /* DISCORD_REQUIRE_MENTION (default true) */
    char **free_channels;      /* DISCORD_FREE_RESPONSE_CHANNELS, or NULL */
    char **allowed_channels;   /* DISCORD_ALLOWED_CHANNELS (only these), or NULL */
    char **ignored_channels;   /* DISCORD_IGNORED_CHANNELS, or NULL */
    bool auto_thread;          /* DISCORD_AUTO_THREAD (default true): answer in a new thread */
    char **no_thread_channels; /* DISCORD_NO_THREAD_CHANNELS: never auto-thread there */
    char *ca_file;             /* PEM bundle instead of the system's, or NULL */
    int64_t backoff_min_ms;    /* 0: 1000 */
    int64_t backoff_max_ms;    /* 0: 60000 */
    int64_t http_timeout_ms;   /* 0: 30000 */
    int64_t typing_ms;         /* typing renewal; 0: 8000 */
    size_t max_file_bytes;     /* largest attachment; 0: 25 MiB */
    int64_t catchup_max_age_s; /* catching up: oldest message replayed; 0: 86400, < 0: off */
    int catchup_pages;         /* pages of 100 per channel; 0: DISCORD_CATCHUP_PAGES */
} discord_opts;

/*
 * Read DISCORD_BOT_TOKEN, DISCORD_HOME_CHANNEL, DISCORD_REQUIRE_MENTION |
 * discord.require_mention, DISCORD_FREE_RESPONSE_CHANNELS, DISCORD_ALLOWED_CHANNELS,
 * DISCORD_IGNORED_CHANNELS, DISCORD_AUTO_THREAD (true/1/yes), DISCORD_NO_THREAD_CHANNELS
 * (and their discord.* keys), DISCORD_API_BASE (tests). 0
 * (enabled; discord_opts_fini), -ENOENT (no token: not enabled) or -EINVAL with a sentence.
 */
int discord_opts_from_config(const hm_config *cfg, const char *hermes_home, discord_opts *o,
                             char *err, size_t errlen);
void discord_opts_fini(discord_opts *o);

/* Start the adapter actor (see slack_start: same contract). */
int discord_start(rt_ctx *cx, const discord_opts *o, rt_ref gateway, rt_ref *out, char *err,
                  size_t errlen);

/*
 * Ask the adapter to finish: it stops taking events (the WebSocket is closed), sends what is
 * queued (the last replies), then ends by itself (GW_MSG_ADAPTER_DOWN). rt_stop ends it at
 * once instead. Any thread with its context.
 */
void discord_drain(rt_ctx *cx, rt_ref ref);

/* ---- pure helpers (tested) ---- */

#define DISCORD_ID_MAX            33 /* a snowflake: at most 32 digits */
#define DISCORD_CATCHUP_CHANNELS  100
#define DISCORD_CATCHUP_PAGES     5
#define DISCORD_CATCHUP_PAGE_SIZE 100
#define DISCORD_EPOCH_MS          1420070400000LL

/* A channel's position: the newest message handled there (last), its guild ("" for a DM) and,
 * for a thread, its parent channel. */
typedef struct discord_mark {
    char channel[DISCORD_ID_MAX];
    char guild[DISCORD_ID_MAX];
    char parent[DISCORD_ID_MAX];
    char last[DISCORD_ID_MAX];
    uint64_t used; /* recency, for forgetting the least recently active */
} discord_mark;

/* Whether s is a snowflake (1–32 digits). */
bool discord_id_ok(const char *s);
/* Order of two snowflakes as numbers (-1, 0, 1). */
int discord_id_cmp(const char *a, const char *b);
/* The smallest snowflake of the millisecond unix_ms (decimal into out). */
void discord_snowflake_at(int64_t unix_ms, char *out, size_t outlen);

/* The state file: {"bot_user": …, "channels": [{"channel", "guild"?, "parent"?, "last"}]}.
 * format returns a new string (rt_free). parse fills at most max marks (damaged entries are
 * skipped) and the bot user: 0, or -EINVAL when it is not such a file. */
char *discord_state_format(const char *bot_user, const discord_mark *m, size_t n);
int discord_state_parse(const char *text, char *bot_user, size_t bulen, discord_mark *m, size_t max,
                        size_t *n);

/* A Gateway payload {op, d, s, t}: d is kept as a cJSON tree (owned). */
typedef struct discord_payload {
    int op;
    int64_t s; /* -1 when null */
    char *t;   /* dispatch event name, or NULL */
    void *d;   /* cJSON *, or NULL */
} discord_payload;

int discord_payload_parse(const char *data, size_t len, discord_payload *p);
void discord_payload_fini(discord_payload *p);

/* The name of a thread started from a message (new string): mentions (<@…>, <@!…>, <#…>,
 * <@&…>) removed, whitespace collapsed, at most 80 characters (77 and "..." when longer),
 * "Hermes" when nothing is left. */
char *discord_thread_name(const char *content);

/* What a close code means for the session. */
enum discord_close { DISCORD_CLOSE_RESUME = 0, DISCORD_CLOSE_NEW_SESSION, DISCORD_CLOSE_FATAL };
int discord_close_kind(int code);
/* The user's sentence for a fatal close code (static). */
const char *discord_close_message(int code);

/*
 * Rate limits (https://discord.com/developers/docs/topics/rate-limits): routes map to buckets
 * (the X-RateLimit-Bucket hash); a bucket is counted per major parameter (the channel id).
 * route is "METHOD /path/with/{major}" as the caller spells it, major the channel id.
 */
typedef struct discord_rl discord_rl;
discord_rl *discord_rl_new(void);
void discord_rl_free(discord_rl *rl);
/* ns to wait before route may be sent at now; 0 means go (and one request is counted). */
int64_t discord_rl_wait(discord_rl *rl, const char *route, const char *major, int64_t now);
/* A response's headers: bucket (or NULL), remaining (-1 if absent), reset_after_s (< 0 if
 * absent); for a 429: retry_after_s and global. */
void discord_rl_update(discord_rl *rl, const char *route, const char *major, const char *bucket,
                       int64_t remaining, double reset_after_s, bool is429, double retry_after_s,
                       bool global, int64_t now);

#endif /* DISCORD_H */
