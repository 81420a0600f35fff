/*
 * matrix — the Matrix adapter (gateway.md §8): one actor speaking the Matrix client-server API
 * (v3, and the newer endpoints the homeserver advertises) through the reactor's HTTP client,
 * and the gateway's neutral messages (actors/gateway/gw.h) on the other side.
 *
 *   homeserver ◄──/sync long-poll, sends, reactions, typing, receipts, media (rt_http)──► actor
 *   actor ──GW_MSG_ADAPTER_UP (once connected), GW_MSG_EVENT (each accepted message)──► gateway
 *   gateway ──GW_OUT_TEXT / GW_OUT_TYPING / GW_OUT_TURN_END──► actor
 *
 * What it does (docs/matrix.md is the user's guide):
 *   1. Logs in with MATRIX_ACCESS_TOKEN (whoami) or MATRIX_USER_ID + MATRIX_PASSWORD, takes the
 *      identity lock (homeserver + user + device, gateway.md §11.2), uploads a sync filter and
 *      long-polls /sync. The since token is persisted (store dir, sync_token.json, 0600,
 *      atomic) only after every event of its batch was handed to the gateway, so messages
 *      sent while the gateway was down are answered after a restart. Sync errors are retried
 *      after 5 s (429: after retry_after_ms) with the reason logged; an auth failure stops the
 *      adapter with a clear error.
 *   2. Auto-joins invites; tells DMs (m.direct, 2-member rooms) from rooms; applies the mention
 *      rules (m.mentions, pills, full user id, localpart), free-response rooms, threads
 *      (MSC3440, remembered in matrix_threads.json), auto-threading and DM mention threads,
 *      text batching, edits/notices/own messages ignored, media downloaded to the cache.
 *   3. Renders replies (Markdown → org.matrix.custom.html with cmark-gfm), in the thread of
 *      the message it answers, with transaction ids (idempotent PUT) and retries on 429/5xx;
 *      👀/✅/❌ processing reactions, typing while a turn runs, read receipts, tool progress
 *      as one message edited in place, media upload (m.image/m.audio/m.video/m.file, the
 *      MSC3245 voice flag).
 *
 * Rooms are independent: each has its own inbound queue (order kept per room, media waits for
 * its download) and outbound queue (one request in flight per room, rooms in parallel). The
 * sync loop never waits for a turn or a send.
 *
 * End-to-end encryption is not in this build; mx_crypto.h is the seam where it plugs in
 * (decrypt before the rules, encrypt before a send, to-device and key traffic from /sync)
 * without touching the gateway.
 *
 * Threads: matrix_opts_from_config/matrix_opts_fini on any thread; matrix_start from any
 * non-worker thread or a behaviour (it only spawns actors and reads two small state files).
 */
#ifndef MATRIX_H
#define MATRIX_H

#include "gw.h"
#include "rt_actor.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MATRIX_PLATFORM    "matrix"
#define MATRIX_MAX_MESSAGE 4000 /* characters per message (the original's chunk limit) */

typedef struct hm_config hm_config;

/* Where the adapter is (matrix_stats.state). */
enum matrix_state {
    MATRIX_ST_STARTING = 0, /* logging in */
    MATRIX_ST_SYNCING = 1,  /* connected: GW_MSG_ADAPTER_UP sent, the sync loop runs */
    MATRIX_ST_FAILED = 2,   /* gave up (bad credentials, identity lock held elsewhere) */
    MATRIX_ST_STOPPED = 3,  /* ended by rt_stop */
};

/* Counters for tests, benchmarks and status pages. Written by the adapter (relaxed atomics),
 * read from any thread; owned by the caller and must outlive the actor. */
typedef struct matrix_stats {
    _Atomic int state;       /* matrix_state */
    _Atomic uint64_t logins; /* successful logins */
    _Atomic uint64_t login_errors;
    _Atomic uint64_t syncs;         /* /sync responses processed */
    _Atomic uint64_t sync_errors;   /* failed /sync requests */
    _Atomic uint64_t retry_wait_ms; /* the last retry delay armed after an error */
    _Atomic uint64_t events;        /* events handed to the gateway */
    _Atomic uint64_t dropped;       /* messages the rules dropped (no mention, own, edits…) */
    _Atomic uint64_t sends;         /* events sent (messages, reactions, redactions) */
    _Atomic uint64_t send_retries;
    _Atomic uint64_t send_failures; /* sends given up */
    _Atomic uint64_t joins;         /* invites accepted */
    _Atomic uint64_t token_writes;  /* since token persisted */
    _Atomic uint64_t rooms;         /* joined rooms known */
    _Atomic uint64_t downloads;     /* media files cached */
    _Atomic int64_t outbox;         /* sends queued or in flight, all rooms */
} matrix_stats;

typedef struct matrix_opts {
    char *homeserver;        /* base URL, no trailing slash (MATRIX_HOMESERVER) */
    char *access_token;      /* MATRIX_ACCESS_TOKEN, or NULL for password login */
    char *user_id;           /* MATRIX_USER_ID, or NULL (from whoami) */
    char *password;          /* MATRIX_PASSWORD, or NULL */
    char *device_id;         /* MATRIX_DEVICE_ID (overrides whoami's), or NULL */
    char *recovery_key;      /* MATRIX_RECOVERY_KEY (secret storage; never logged), or NULL */
    bool encryption;         /* MATRIX_ENCRYPTION: not in this build (matrix_start refuses it) */
    bool require_mention;    /* MATRIX_REQUIRE_MENTION (true) */
    bool auto_thread;        /* MATRIX_AUTO_THREAD (true) */
    bool dm_mention_threads; /* MATRIX_DM_MENTION_THREADS (false) */
    bool reactions;          /* MATRIX_REACTIONS (true) */
    char **free_rooms;       /* MATRIX_FREE_RESPONSE_ROOMS */
    size_t nfree_rooms;
    char *home_room;        /* MATRIX_HOME_ROOM (legacy MATRIX_HOME_CHANNEL), or NULL */
    int64_t batch_delay_ms; /* HERMES_MATRIX_TEXT_BATCH_DELAY_SECONDS (0.6 s; 0: off) */
    int64_t batch_split_ms; /* HERMES_MATRIX_TEXT_BATCH_SPLIT_DELAY_SECONDS (2.0 s) */
    char *hermes_home;      /* HERMES_HOME */
    char *store_dir;        /* <home>/platforms/matrix/store (legacy <home>/matrix/store) */
    char *threads_file;     /* <home>/matrix_threads.json */
    char *cache_dir;        /* <home>/cache (images/, audio/, documents/ below it) */
    char *lock_dir;         /* identity locks (HERMES_GATEWAY_LOCK_DIR, XDG_STATE_HOME…);
                               NULL: no lock */
    /* tuning; 0 means the default in brackets */
    int64_t sync_timeout_ms;   /* /sync long-poll timeout [30000] */
    int64_t retry_ms;          /* wait after a sync or login error [5000] */
    int64_t send_retry_ms;     /* first back-off of a failed send [1000], doubling, ≤ 30 s */
    int send_attempts;         /* attempts per send before giving up [8] */
    int64_t token_write_ms;    /* least time between two since-token writes [1000]; -1: 0 */
    int64_t typing_refresh_ms; /* typing re-sent while a turn runs [20000] */
    size_t max_media_bytes;    /* largest inbound file downloaded [50 MiB] */
    char *ca_file;             /* PEM bundle for the homeserver's TLS, or NULL */
    matrix_stats *stats;       /* optional counters (borrowed, must outlive the actor) */
    /* Random hex drawn when the options are made, the same for every (re)start of the adapter
     * from them: the outbox deliveries' transaction ids keep it (mx_outbound.c); "" draws
     * one per start. */
    char delivery_epoch[17];
} matrix_opts;

/*
 * The settings the original reads (gateway.md §1.3, §8.1), environment first (process, then
 * ~/.hermes/.env), then config.yaml (platforms.matrix.token / .extra.{homeserver, user_id,
 * password, device_id, encryption}, matrix.{require_mention, free_response_rooms,
 * auto_thread, dm_mention_threads, reactions}), then the defaults. hermes_home may be NULL
 * (cfg's home). Returns 0 (enabled, o filled: free with matrix_opts_fini), -ENOENT (Matrix is
 * not configured: no homeserver, no access token, no password), or -EINVAL with a sentence in
 * err (a homeserver without credentials, no homeserver, a URL that is not http(s), a placeholder
 * token or password, a password without MATRIX_USER_ID, a malformed user id, a bad batch delay).
 * Any thread.
 */
int matrix_opts_from_config(const hm_config *cfg, const char *hermes_home, matrix_opts *o,
                            char *err, size_t errlen);
/* Free the strings of o (o itself is the caller's). NULL fields are fine. */
void matrix_opts_fini(matrix_opts *o);

/*
 * Start the adapter: reads the persisted since token and thread memory (small files), spawns
 * the adapter actor and its file writer (a detached actor), and returns at once; the actor
 * logs in through the reactor and sends GW_MSG_ADAPTER_UP to `gateway` (0: the actor
 * registered as GW_NAME) once its first sync is done. Login failures are logged with the
 * original's messages ("Matrix: whoami failed — check MATRIX_ACCESS_TOKEN and
 * MATRIX_HOMESERVER: …", "Matrix: Failed to authenticate …") and retried with back-off when
 * retryable (network, 5xx, 429). o is copied. The reactor with the HTTP client must be
 * running (rt_http_init). Returns 0 with *out, -EINVAL with err (missing homeserver or
 * credentials, no reactor), or -ENOTSUP with err when o->encryption is set (end-to-end
 * encryption is not in this build yet: issue 8). rt_stop(out) ends it cleanly: the long-poll is
 * cancelled and the since token persisted.
 */
int matrix_start(rt_ctx *cx, const matrix_opts *o, rt_ref gateway, rt_ref *out, char *err,
                 size_t errlen);

/* The platform's entry for `hermes gateway run` (gw_adapter.h), defined in mx_def.c. */
typedef struct gw_adapter_def gw_adapter_def;
extern const gw_adapter_def matrix_adapter;

/* ---- messages the adapter accepts besides gw.h's (module ADAPTER, 0x100..0x1ff) ---- */

enum {
    /* Send a file to a chat: uploaded to the content repository and posted as m.image /
     * m.audio / m.video / m.file by its extension (voice: m.audio with the MSC3245 flag).
     * Proposed for gw.h as GW_OUT_MEDIA (what MEDIA: tags become). */
    MATRIX_MSG_SEND_FILE = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x140), /* matrix_msg_file */
    /* Wait until every queued send has finished (or deadline_ms passed), then reply_to gets
     * rt_msg_timeout(tag). For a graceful stop: drain, then rt_stop. */
    MATRIX_MSG_DRAIN = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x141), /* matrix_msg_drain */
};

typedef struct matrix_msg_file {
    rt_msg hdr;
    gw_target to;  /* room, thread, reply_to */
    char *path;    /* local file (read by the adapter's file actor) */
    char *caption; /* body text, or NULL (the file name) */
    bool voice;    /* an audio file sent as a voice message */
} matrix_msg_file;

typedef struct matrix_msg_drain {
    rt_msg hdr;
    rt_ref reply_to;
    uint64_t tag;
    int64_t deadline_ms; /* 0: 10 s */
} matrix_msg_drain;

/* Constructors (copy their arguments; drops set). Any thread. */
rt_msg *matrix_file_new(const gw_target *to, const char *path, const char *caption, bool voice);
rt_msg *matrix_drain_new(rt_ref reply_to, uint64_t tag, int64_t deadline_ms);

/* For `hermes doctor`: one line with the libolm version and the health of the E2EE crypto
 * store in store_dir (<store>/crypto.db: integrity check, schema revision) into out; false
 * when the store exists but is damaged. Blocking (opens the database); any thread. */
bool matrix_e2ee_status(const char *store_dir, char *out, size_t len);

#endif /* MATRIX_H */
