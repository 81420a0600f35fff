/*
 * slack — the Slack adapter: Socket Mode for what users say, the Web API for what Hermes
 * answers. One actor speaks the reactor's HTTP client (rt_http.h), one WebSocket (rt_ws.h)
 * and the gateway's messages (gw.h), nothing else. docs/slack.md is the user's guide.
 *
 * What it does:
 *   - connects: auth.test with SLACK_BOT_TOKEN (who the bot is; a refused token ends the
 *     adapter with "Slack: authentication failed (invalid_auth) — check SLACK_BOT_TOKEN"),
 *     apps.connections.open with SLACK_APP_TOKEN (a fresh WebSocket URL each time), then the
 *     WebSocket; after the first "hello" it announces itself to the gateway;
 *   - acknowledges every envelope ({"envelope_id": …}) as soon as it arrives, before anything
 *     else is done with it, so Slack's 3 s deadline is always met;
 *   - on "disconnect" (refresh_requested, warning, link_disabled …) and on any drop opens a
 *     fresh URL and reconnects (at once after a disconnect message, with backoff 1 s doubling
 *     to 60 s plus up to 20 % jitter after failures);
 *   - turns message / app_mention events into gw_msg_event: DMs (channel_type im or mpim)
 *     always; channels when the bot is @mentioned, in threads the bot posted in or was
 *     mentioned in, in SLACK_FREE_RESPONSE_CHANNELS, or everywhere with
 *     SLACK_REQUIRE_MENTION=false; the sender's display name comes from users.info
 *     (remembered). message_id is "<channel>:<ts>", the same for the
 *     message and app_mention events of one message and for every redelivery, which are
 *     also recognised here (a bounded memory of recent keys) and answered once;
 *   - files in: url_private_download fetched with the bot token into HERMES_HOME/cache;
 *     files out (MEDIA:<path> tags): files.getUploadURLExternal, the upload, then
 *     files.completeUploadExternal in the same thread;
 *   - replies with chat.postMessage (Markdown rendered as mrkdwn, split at 39000 characters),
 *     in the thread of the message answered (channels always reply in a thread; top-level
 *     DMs are answered top-level), with an :eyes: reaction while working;
 *   - honours 429 answers per Web API method (Retry-After; other methods go on);
 *   - loses nothing across a restart or a Socket Mode outage, as far as Slack allows: for
 *     every conversation it knows (channels and DMs it got messages from, threads it is in;
 *     the SLACK_CATCHUP_CONVERSATIONS most recently active) it remembers the newest ts
 *     handled, in HERMES_HOME/platforms/slack/state.json (0600, written atomically by the
 *     kit's file helper, a second after a change and at stop). After every "hello" it reads
 *     what came since: conversations.history for channels and DMs, conversations.replies for
 *     threads (oldest = that ts, cursor pagination, at most catchup_pages pages of 200 per
 *     conversation, nothing older than catchup_max_age_s), oldest first, through the same
 *     rules as live events. A message seen live and again in history is recognised
 *     (message_id "<channel>:<ts>", here and in the gateway's durable seen set);
 *   - shows no typing indicator: Slack's Web API has none for bots (the :eyes: reaction
 *     says it is working).
 *
 * Threads: slack_opts_from_config and the pure helpers from any thread; slack_start from a
 * non-worker thread with an rt_ctx_external context. The actor runs on workers and never
 * blocks; file I/O goes to a detached helper actor.
 */
#ifndef SLACK_H
#define SLACK_H

#include "rt_actor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hm_config hm_config;

#define SLACK_PLATFORM    "slack"
#define SLACK_API_DEFAULT "https://slack.com/api"
#define SLACK_MAX_MESSAGE 39000 /* Slack accepts 40000 characters; the original's margin */

enum slack_allow_bots { SLACK_BOTS_NONE = 0, SLACK_BOTS_MENTIONS, SLACK_BOTS_ALL };

typedef struct slack_opts {
    char *bot_token;           /* SLACK_BOT_TOKEN (xoxb-) */
    char *app_token;           /* SLACK_APP_TOKEN (xapp-) */
    char *api_base;            /* SLACK_API_BASE (tests), no trailing '/' */
    char *hermes_home;         /* cache lives under it */
    char *home_channel;        /* SLACK_HOME_CHANNEL, or NULL */
    bool require_mention;      /* SLACK_REQUIRE_MENTION (default true) */
    char **free_channels;      /* SLACK_FREE_RESPONSE_CHANNELS, NULL-terminated, or NULL */
    int allow_bots;            /* SLACK_ALLOW_BOTS: slack_allow_bots */
    char *ca_file;             /* PEM bundle trusted instead of the system's, or NULL */
    int64_t backoff_min_ms;    /* 0: 1000 */
    int64_t backoff_max_ms;    /* 0: 60000 */
    int64_t ws_ping_ms;        /* WebSocket ping interval; 0: 30000 */
    int64_t ws_idle_ms;        /* no frame for this long drops the socket; 0: 120000 */
    int64_t http_timeout_ms;   /* Web API calls; 0: 30000 */
    size_t max_file_bytes;     /* largest file downloaded or uploaded; 0: 20 MiB */
    int64_t catchup_max_age_s; /* catch-up reaches back at most this far; 0: 86400; < 0: off */
    int catchup_pages;         /* pages per conversation; 0: 10 */
    int catchup_page_size;     /* messages a page; 0: 200 */
} slack_opts;

#define SLACK_CATCHUP_CONVERSATIONS 100 /* conversations remembered for catching up */
#define SLACK_TS_MAX                24  /* "1700000000.000100" and room */
#define SLACK_ID_MAX                24  /* channel and user ids */

/* A conversation's position: the newest ts handled in a channel/DM (thread empty) or in a
 * thread the bot is in (thread = its root ts). */
typedef struct slack_mark {
    char channel[SLACK_ID_MAX];
    char thread[SLACK_TS_MAX];
    char last[SLACK_TS_MAX];
    bool dm;
    uint64_t used; /* recency, for forgetting the least recently active */
} slack_mark;

/*
 * Read the settings: SLACK_BOT_TOKEN, SLACK_APP_TOKEN, SLACK_HOME_CHANNEL,
 * SLACK_REQUIRE_MENTION | slack.require_mention, SLACK_FREE_RESPONSE_CHANNELS |
 * slack.free_response_channels, SLACK_ALLOW_BOTS | slack.allow_bots (none | mentions | all),
 * SLACK_API_BASE (for tests), environment and ~/.hermes/.env first, then config.yaml.
 * Returns 0 (enabled; free o with slack_opts_fini), -ENOENT (no SLACK_BOT_TOKEN: not
 * enabled, o empty) or -EINVAL with a sentence in err (the app token missing, a token of the
 * wrong kind, a bad API base). Any thread.
 */
int slack_opts_from_config(const hm_config *cfg, const char *hermes_home, slack_opts *o, char *err,
                           size_t errlen);
void slack_opts_fini(slack_opts *o);

/*
 * Start the adapter actor; it connects asynchronously and announces itself to gateway (0:
 * the actor registered as GW_NAME). rt_stop(*out) ends it (WebSocket closed, requests
 * cancelled, GW_MSG_ADAPTER_DOWN). o is copied. Needs the reactor with the HTTP client and
 * the lws service attached to the runtime. 0, or -EINVAL with a sentence in err.
 */
int slack_start(rt_ctx *cx, const slack_opts *o, rt_ref gateway, rt_ref *out, char *err,
                size_t errlen);

/*
 * Ask the adapter to finish: it stops taking events (the WebSocket is closed), sends what is
 * queued (the last replies), then ends by itself (GW_MSG_ADAPTER_DOWN). rt_stop ends it at
 * once instead. Any thread with its context.
 */
void slack_drain(rt_ctx *cx, rt_ref ref);

/* ---- pure helpers (tested) ---- */

/*
 * Markdown → Slack mrkdwn, the original's rules: fenced and inline code untouched; &, <, >
 * escaped (existing &amp; &lt; &gt; kept); [label](url) → <url|label>; Slack entities
 * (<@U…>, <#C…>, <!here>, <https://…>) kept; "# Title" → *Title*; ***x*** → *_x_*;
 * **x** → *x*; *x* → _x_; ~~x~~ → ~x~; "> " quotes kept. Returns a new string (rt_free).
 */
char *slack_mrkdwn(const char *md);

/* One Socket Mode frame, parsed. Strings owned (slack_frame_fini). */
typedef struct slack_frame {
    char *type;        /* "hello", "disconnect", "events_api", "slash_commands", … */
    char *envelope_id; /* or NULL */
    char *reason;      /* disconnect reason, or NULL */
    int retry_attempt; /* events_api */
    /* events_api with an event of type message or app_mention: */
    bool has_event;
    char *event_type; /* "message" / "app_mention" */
    char *event_id;   /* the event_callback's event_id, or NULL */
    char *subtype;    /* or NULL */
    char *channel;
    char *channel_type; /* "im", "mpim", "channel", "group", or NULL */
    char *user;
    char *bot_id; /* or NULL */
    char *text;
    char *ts;
    char *thread_ts; /* or NULL */
    char *team;      /* or NULL */
    /* files: url_private_download (or url_private), name, mimetype, size */
    size_t nfiles;
    char *file_url[4];
    char *file_name[4];
    char *file_mime[4];
    int64_t file_size[4];
} slack_frame;

/* Parse data (len bytes). 0, or -EINVAL for something that is not a JSON object with a type
 * (f is then empty but safe to fini). */
int slack_frame_parse(const char *data, size_t len, slack_frame *f);
void slack_frame_fini(slack_frame *f);

/* A message object of conversations.history / conversations.replies (a cJSON *) as a frame
 * with an event of type message in channel. 0, or -EINVAL (not a message, no ts). */
int slack_message_parse(const void *msg, const char *channel, bool dm, slack_frame *f);

/* Whether ts looks like a Slack ts (digits, at most one dot, < SLACK_TS_MAX characters). */
bool slack_ts_ok(const char *ts);
/* Order of two ts ("1700000000.000100" < "1700000000.000200" < "1700000001.000000"). */
int slack_ts_cmp(const char *a, const char *b);

/* The state file: {"bot_user": …, "conversations": [{"channel", "thread_ts"?, "last_ts",
 * "dm"?}]}. format returns a new string (rt_free). parse fills at most max marks (entries
 * with bad ids or ts are skipped) and the bot user: 0, or -EINVAL when it is not such a
 * file. */
char *slack_state_format(const char *bot_user, const slack_mark *m, size_t n);
int slack_state_parse(const char *text, char *bot_user, size_t bulen, slack_mark *m, size_t max,
                      size_t *n);

#endif /* SLACK_H */
