/*
 * mattermost — the Mattermost adapter (gateway.md §9): one actor speaking REST API v4 through
 * the reactor's HTTP client (rt_http.h) and one WebSocket at /api/v4/websocket (rt_ws.h), and
 * the gateway's messages (gw.h), nothing else.
 *
 * What it does (docs/mattermost.md is the user's guide):
 *   - connects: GET /api/v4/users/me (who the bot is), GET /api/v4/config/client?format=old
 *     (MaxPostSize, default 16383), then the WebSocket with the authentication challenge;
 *     after the first "hello" it announces itself to the gateway (GW_MSG_ADAPTER_UP with
 *     caps.max_message = the server's post size limit and the home channel);
 *   - turns "posted" events into gw_msg_event: DMs always, other channels only when the bot
 *     is @mentioned (the rule Mattermost itself uses to highlight a mention), unless
 *     MATTERMOST_REQUIRE_MENTION is off or the channel is a free-response channel; its own
 *     posts and system posts are ignored; attachments are downloaded into ~/.hermes/cache;
 *   - reconnects after any drop with exponential backoff (2 s doubling to 60 s, plus up to
 *     20 % jitter), detects a half-open connection with an application-level ping
 *     ({"action":"ping"}) that must be answered before the next one is due, and after every
 *     reconnect fetches the posts made while it was away (GET /api/v4/channels/{id}/posts
 *     ?since=…) so that nothing is lost and nothing is answered twice: the newest post time
 *     and the ids of recent posts handled are kept in
 *     ~/.hermes/platforms/mattermost/state.json (0600, written atomically);
 *   - posts replies (POST /api/v4/posts), split at the server's limit, in threads as
 *     MATTERMOST_REPLY_MODE says (the thread root is always the root post, also when the
 *     message answered was itself a reply in a thread), uploads files named by MEDIA:<path>
 *     tags (POST /api/v4/files), shows a turn's tool progress as one post that grows
 *     (PUT /api/v4/posts/{id}/patch), shows the typing indicator while a turn runs, and honours
 *     429 answers (X-RateLimit-Reset / Retry-After) and X-RateLimit-Remaining: 0.
 *
 * Threads: mattermost_opts_from_config and mattermost_opts_fini from any thread;
 * mattermost_start from a non-worker thread with its rt_ctx_external context (it reads the
 * small state file and takes the identity lock, both blocking). The actor runs on workers and
 * never blocks; file I/O goes to a detached helper actor.
 */
#ifndef MATTERMOST_H
#define MATTERMOST_H

#include "rt_actor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hm_config hm_config;

#define MATTERMOST_PLATFORM      "mattermost"
#define MATTERMOST_MAX_POST_SIZE 16383 /* the server's default MaxPostSize (characters) */

typedef struct mattermost_opts {
    char *url;                  /* server base URL, http(s)://host[:port][/path], no trailing / */
    char *token;                /* bot token or personal access token */
    char *hermes_home;          /* state and cache live under it */
    char *lock_dir;             /* identity locks; NULL: no lock (tests) */
    bool reply_thread;          /* MATTERMOST_REPLY_MODE=thread */
    bool require_mention;       /* MATTERMOST_REQUIRE_MENTION (default true) */
    char **free_channels;       /* MATTERMOST_FREE_RESPONSE_CHANNELS, NULL-terminated, or NULL */
    char *home_channel;         /* MATTERMOST_HOME_CHANNEL, or NULL */
    char **prompt_channels;     /* channel_prompts: channel ids … */
    char **prompts;             /* … and their ephemeral prompts (parallel, NULL-terminated) */
    char *ca_file;              /* PEM bundle trusted instead of the system's (tests), or NULL */
    int64_t backoff_min_ms;     /* first reconnect delay; 0: 2000 */
    int64_t backoff_max_ms;     /* longest reconnect delay; 0: 60000 */
    int64_t heartbeat_ms;       /* ping interval; 0: 30000 (HERMES_MATTERMOST_HEARTBEAT) */
    int64_t ws_idle_ms;         /* no frame at all for this long drops the socket; 0: 90000 */
    int64_t http_timeout_ms;    /* REST requests; 0: 30000 (HERMES_MATTERMOST_HTTP_TIMEOUT) */
    int64_t upload_timeout_ms;  /* file uploads; 0: 60000 (HERMES_MATTERMOST_UPLOAD_TIMEOUT) */
    int64_t typing_ms;          /* typing indicator refresh while a turn runs; 0: 2000 */
    int64_t catchup_max_age_ms; /* posts older than this are not answered after a reconnect;
                                   0: 24 h */
    size_t max_file_bytes;      /* largest attachment downloaded or uploaded; 0: 32 MiB */
} mattermost_opts;

/*
 * The settings the original reads (gateway.md §1.3, §9.1), environment (and ~/.hermes/.env)
 * first, then config.yaml, so a setup made only in config.yaml works too:
 *   MATTERMOST_TOKEN | platforms.mattermost.token           (required: enables the adapter)
 *   MATTERMOST_URL   | platforms.mattermost.extra.url       (required)
 *   MATTERMOST_REPLY_MODE | platforms.mattermost.extra.reply_mode   (off | thread)
 *   MATTERMOST_REQUIRE_MENTION | mattermost.require_mention  ("false", "0", "no" turn it off)
 *   MATTERMOST_FREE_RESPONSE_CHANNELS | mattermost.free_response_channels
 *   MATTERMOST_HOME_CHANNEL | platforms.mattermost.home_channel (.chat_id)
 *   platforms.mattermost.extra.channel_prompts | mattermost.channel_prompts
 *   HERMES_MATTERMOST_HTTP_TIMEOUT, HERMES_MATTERMOST_UPLOAD_TIMEOUT (seconds)
 *   HERMES_GATEWAY_LOCK_DIR or ${XDG_STATE_HOME:-~/.local/state}/hermes/gateway-locks
 * hermes_home: $HERMES_HOME (NULL: the config's home). Fills o (strings owned: free with
 * mattermost_opts_fini). Returns 0 (enabled), -ENOENT (no token: not enabled) or -EINVAL with
 * a sentence for the user in err (no URL, a URL that is not http(s)://, a placeholder token —
 * the platform is then disabled, as the original did). Any thread.
 */
int mattermost_opts_from_config(const hm_config *cfg, const char *hermes_home, mattermost_opts *o,
                                char *err, size_t errlen);
void mattermost_opts_fini(mattermost_opts *o);

/*
 * Start the adapter actor: it connects asynchronously and sends GW_MSG_ADAPTER_UP to gateway
 * (0: the actor registered as GW_NAME) once the WebSocket is up. A token the server refuses
 * (401/403) is logged with the seed's "Failed to authenticate" message and ends the actor
 * (the gateway then runs without Mattermost); an unreachable server is retried with backoff.
 * rt_stop(*out) ends it cleanly (WebSocket closed, requests cancelled, GW_MSG_ADAPTER_DOWN,
 * state written). o is copied. Needs the reactor with the HTTP client and the lws service
 * attached to the runtime. Returns 0 and *out, or -errno with a sentence in err: -EINVAL (bad
 * options, no reactor/lws), -EBUSY (another gateway uses this bot: "… already in use (PID n).
 * Stop the other gateway first."). Never waits for the network.
 */
int mattermost_start(rt_ctx *cx, const mattermost_opts *o, rt_ref gateway, rt_ref *out, char *err,
                     size_t errlen);

#endif /* MATTERMOST_H */
