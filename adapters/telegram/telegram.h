/*
 * telegram — the Telegram adapter: the Bot API (https://core.telegram.org/bots/api) over the
 * reactor's HTTP client (rt_http.h), and the gateway's messages (gw.h), nothing else.
 * docs/telegram.md is the user's guide.
 *
 * What it does:
 *   - getMe at start (a token Telegram refuses ends the adapter with TG_BAD_TOKEN_MSG);
 *   - long-polls getUpdates (timeout 30, allowed_updates ["message"]) and turns each message
 *     addressed to the bot into one GW_MSG_EVENT with message_id = the update_id: private
 *     chats always; groups only when the bot is @mentioned (a "mention" entity naming it, a
 *     "text_mention" of its user, a "/command@botname"), when the message replies to one of
 *     the bot's messages, or in a free-response chat (TELEGRAM_REQUIRE_MENTION=false answers
 *     every group message); forum topics (message_thread_id) are threads;
 *   - photos, documents, voice notes, audio and video are fetched (getFile + download, at most
 *     20 MB, the Bot API's limit) into $HERMES_HOME/cache/telegram/ and their paths added to
 *     the event (and named in its text, since there is no speech-to-text in this build);
 *   - the position (the next update_id wanted) is kept in
 *     $HERMES_HOME/platforms/telegram/state.json (0600, written atomically) and written only
 *     after the whole batch was handed to the gateway: updates that arrive while the gateway
 *     is down are answered after it starts, once (a crash between the hand-over and the write
 *     redelivers the batch, and the gateway drops the repeats by message_id);
 *   - replies: Markdown rendered to MarkdownV2 (plain text again when Telegram answers 400
 *     "can't parse entities"), split at 4096 UTF-16 units, the first part answering the
 *     message; MEDIA:<path> lines are sent as photo / voice / audio / video / document;
 *     "typing" (sendChatAction) every 4 s while a turn runs;
 *   - 429 answers: nothing is sent before parameters.retry_after has passed; network errors
 *     and 5xx: exponential backoff (1 s doubling to 60 s, plus up to 20 % jitter), one
 *     request at a time, so there is no retry storm.
 *
 * Threads: tg_opts_from_config / tg_opts_fini and the pure helpers from any thread; tg_start
 * from a non-worker thread. The adapter is one actor with its own thread (RT_SPAWN_DETACHED):
 * it writes its small state file and the downloads itself.
 */
#ifndef TELEGRAM_H
#define TELEGRAM_H

#include "rt_actor.h"

#include <cjson/cJSON.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hm_config hm_config;

#define TELEGRAM_PLATFORM "telegram"
#define TG_MAX_MESSAGE    4096 /* Bot API: text length in UTF-16 units */
#define TG_DEFAULT_API    "https://api.telegram.org"
#define TG_BUF_MAX        (64u << 20) /* cap of any text or upload body built here */
#define TG_BAD_TOKEN_MSG                                                                           \
    "Telegram rejected the bot token (401 Unauthorized): check TELEGRAM_BOT_TOKEN — it is the "  \
    "token @BotFather gave you, like 123456:ABC-DEF..."

typedef struct tg_opts {
    char *token;             /* TELEGRAM_BOT_TOKEN (required) */
    char *api_base;          /* TELEGRAM_API_BASE, no trailing '/'; default TG_DEFAULT_API */
    char *hermes_home;       /* state and cache live under it */
    char *home_channel;      /* TELEGRAM_HOME_CHANNEL, or NULL */
    bool require_mention;    /* TELEGRAM_REQUIRE_MENTION (default true) */
    char **free_chats;       /* TELEGRAM_FREE_RESPONSE_CHATS, NULL-terminated, or NULL */
    char **ignored_threads;  /* TELEGRAM_IGNORED_THREADS, NULL-terminated, or NULL */
    bool link_previews;      /* !telegram.disable_link_previews */
    int poll_timeout_s;      /* getUpdates timeout; 0: 30 */
    int64_t backoff_min_ms;  /* 0: 1000 */
    int64_t backoff_max_ms;  /* 0: 60000 */
    int64_t typing_ms;       /* sendChatAction refresh; 0: 4000 */
    int64_t http_timeout_ms; /* other requests; 0: 30000 */
    size_t max_file_bytes;   /* largest download / upload; 0: 20 MiB (in) */
    /* Optional: kept equal to the number of replies not yet delivered (queued or in flight),
     * so a host can let them drain before stopping the actor; must outlive the actor. */
    _Atomic size_t *pending;
} tg_opts;

/*
 * The settings (environment, then ~/.hermes/.env, then config.yaml):
 *   TELEGRAM_BOT_TOKEN | platforms.telegram.token      (required: enables the adapter)
 *   TELEGRAM_HOME_CHANNEL | platforms.telegram.home_channel(.chat_id)
 *   TELEGRAM_REQUIRE_MENTION | telegram.require_mention
 *   TELEGRAM_FREE_RESPONSE_CHATS | telegram.free_response_chats (comma list)
 *   TELEGRAM_IGNORED_THREADS | telegram.ignored_threads
 *   telegram.disable_link_previews
 *   TELEGRAM_API_BASE (testing, or a self-hosted telegram-bot-api server)
 * Returns 0 (enabled), -ENOENT (no token: not enabled) or -EINVAL with a sentence in err (a
 * placeholder token, a bad TELEGRAM_API_BASE). o owns its strings: tg_opts_fini.
 */
int tg_opts_from_config(const hm_config *cfg, const char *hermes_home, tg_opts *o, char *err,
                        size_t errlen);
void tg_opts_fini(tg_opts *o);

/*
 * Start the adapter actor (detached). It sends GW_MSG_ADAPTER_UP to gateway (0: the actor
 * registered as GW_NAME) once getMe succeeded, then polls. rt_stop(*out) ends it (requests
 * cancelled, GW_MSG_ADAPTER_DOWN). o is copied. Needs the reactor with the HTTP client.
 * 0, or -EINVAL with a sentence in err. Never waits for the network.
 */
int tg_start(rt_ctx *cx, const tg_opts *o, rt_ref gateway, rt_ref *out, char *err, size_t errlen);

/* ---- pure helpers (tg_format.c, tg_update.c; tested) ---- */

/* Escape text for MarkdownV2 outside entities (every one of _*[]()~`>#+-=|{}.! and \). */
char *tg_escape_v2(const char *text);

/* Common Markdown (what models write) → MarkdownV2: **b** and __b__ → *b*, *i* and _i_ →
 * _i_, ~~s~~ → ~s~, `code`, ``` fences ```, [text](url), "# heading" → *heading*, "- item"
 * → "• item", "> quote"; everything else escaped. New string. */
char *tg_markdown_v2(const char *md);

/* Length in UTF-16 code units (what Telegram counts). */
size_t tg_utf16_len(const char *s);

/*
 * Split text into messages for Telegram: parts of at most max UTF-16 units once rendered
 * (MarkdownV2 when v2, else as is). *v2 and *plain get parallel NULL-terminated arrays (v2
 * NULL when !v2): the rendered part and its plain source (sent when Telegram cannot parse the
 * rendered one). Returns the number of parts (≥ 1).
 */
size_t tg_split(const char *text, size_t max, bool v2, char ***rendered, char ***plain);
void tg_strv_free(char **v);

/* One message from an update, as far as the adapter needs it. */
enum tg_media {
    TG_MEDIA_NONE = 0,
    TG_MEDIA_PHOTO,
    TG_MEDIA_DOCUMENT,
    TG_MEDIA_VOICE,
    TG_MEDIA_AUDIO,
    TG_MEDIA_VIDEO
};

typedef struct tg_update {
    int64_t update_id;
    bool has_message; /* a "message" with a chat and a sender */
    int64_t message_id;
    char *chat_id;
    char *chat_type; /* Telegram's: private, group, supergroup, channel */
    char *chat_title;
    char *thread_id; /* message_thread_id of a forum topic message, or NULL */
    int64_t from_id;
    bool from_is_bot;
    char *from_name; /* @username, else first (and last) name */
    char *text;      /* text or caption ("" if none) */
    bool mentions_bot;
    bool replies_to_bot;
    int media; /* tg_media */
    char *file_id;
    char *file_name; /* documents, or NULL */
    int64_t file_size;
} tg_update;

/* Parse update u; bot_username (without '@') and bot_id decide mentions_bot/replies_to_bot.
 * 0, or -EINVAL when u is not an update (no update_id). out is filled either way (fini it). */
int tg_update_parse(const cJSON *u, const char *bot_username, int64_t bot_id, tg_update *out);
void tg_update_fini(tg_update *u);

typedef struct tg_rules {
    bool require_mention;
    char *const *free_chats;      /* NULL-terminated or NULL */
    char *const *ignored_threads; /* NULL-terminated or NULL */
    int64_t bot_id;
} tg_rules;

/* Whether the bot answers this message: private chats always; groups on a mention, a reply
 * to the bot or a free-response chat; never its own or other bots' messages. */
bool tg_addressed(const tg_update *u, const tg_rules *r);

/* The gateway's chat_type for a Telegram chat type: "dm", "group" or "channel". */
const char *tg_chat_type(const char *telegram_type);

/* state.json: {"bot_id":…, "offset":…}. Parse: 0 and the fields, or -EINVAL. Format: a new
 * string. */
int tg_state_parse(const char *text, int64_t *bot_id, int64_t *offset);
char *tg_state_format(int64_t bot_id, int64_t offset);

#endif /* TELEGRAM_H */
