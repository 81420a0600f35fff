/*
 * mm_parse — the Mattermost adapter's pure helpers: the wire format (WebSocket frames, posts,
 * post lists, channels, AppError bodies, rate-limit headers), the mention rule, thread roots,
 * outbound text (image markdown, MEDIA: tags, multipart bodies), the persisted state and the
 * reconnect backoff. No I/O, no actors: everything here is tested on its own
 * (tests/unit/adapters/test_mattermost_parse.c).
 *
 * Wire facts relied on (Mattermost server 5.x-10.x):
 *   - WebSocket events are {"event", "data", "broadcast", "seq"}; replies to the client's
 *     actions are {"status": "OK"|"FAIL", "seq_reply", "data"?, "error"?}.
 *   - "posted": data.post is a JSON-encoded string holding the post; data.channel_type is
 *     D (direct), O (open), P (private) or G (group message); data.sender_name is "@name".
 *   - Ids are 26 lowercase base32 characters; times are Unix milliseconds.
 *
 * Threads: every function is re-entrant. Returned strings and arrays are new (rt_free).
 */
#ifndef MM_PARSE_H
#define MM_PARSE_H

#include "rt_http_header.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MM_ID_MAX        64    /* longest id accepted from the wire (real ids have 26 chars) */
#define MM_FILES_MAX     10    /* attachments looked at per post (the server allows 10) */
#define MM_SEEN_MAX      4096  /* ids remembered in the persisted state */
#define MM_SEEN_SLACK_MS 10000 /* posts this much older than the mark are still re-checked */
#define MM_STATE_SAVE_MS 1000  /* the position is written at most this often */

/* ---- posts and events ---------------------------------------------------------------- */

typedef struct mm_post {
    char *id;
    char *channel_id;
    char *user_id;
    char *root_id; /* NULL when the post is not in a thread */
    char *message; /* never NULL */
    char *type;    /* NULL for a user's post; "system_join_channel", … otherwise */
    int64_t create_at, update_at, delete_at;
    char *file_ids[MM_FILES_MAX];
    size_t nfiles;
} mm_post;

/* Fill p from a post object. 0, or -EBADMSG when id, channel_id or user_id is missing or an
 * id is too long. p is zeroed first and must be released with mm_post_fini either way. */
int mm_post_from_json(const cJSON *o, mm_post *p);
void mm_post_fini(mm_post *p);

enum mm_ws_kind { MM_WS_EVENT = 1, MM_WS_REPLY = 2 };

typedef struct mm_wsmsg {
    int kind;          /* mm_ws_kind */
    char *event;       /* MM_WS_EVENT: "hello", "posted", "typing", … */
    int64_t seq;       /* MM_WS_EVENT: the event's sequence number, -1 if absent */
    int64_t seq_reply; /* MM_WS_REPLY: the action answered, -1 if absent */
    bool ok;           /* MM_WS_REPLY: status "OK" */
    char *error_id;    /* MM_WS_REPLY with FAIL: error.id, or NULL */
    /* "posted" only */
    bool has_post;
    mm_post post;
    char *channel_type;         /* "D", "O", "P", "G" ("O" when absent) */
    char *sender_name;          /* without the leading "@", or NULL */
    char *channel_display_name; /* or NULL */
    char *channel_name;         /* or NULL */
} mm_wsmsg;

/*
 * Parse one WebSocket text frame. 0, or -EBADMSG (not JSON, not an object, neither an event
 * nor a reply, or a "posted" event whose post does not parse). m must be released with
 * mm_wsmsg_fini either way.
 */
int mm_wsmsg_parse(const char *data, size_t len, mm_wsmsg *m);
void mm_wsmsg_fini(mm_wsmsg *m);

/*
 * A PostList ({"order": [ids], "posts": {id: post}}) as an array sorted by create_at, oldest
 * first (ties by id). Posts that do not parse are skipped. 0 or -EBADMSG; *out and *n are set on 0
 * (free with mm_posts_free).
 */
int mm_postlist_parse(const char *body, mm_post **out, size_t *n);
void mm_posts_free(mm_post *p, size_t n);

typedef struct mm_channel {
    char *id;
    char *type; /* "D", "O", "P", "G" */
    char *display_name;
    char *name;
    int64_t last_post_at;
} mm_channel;

/* An array of Channel objects. 0 or -EBADMSG (free with mm_channels_free). */
int mm_channels_parse(const char *body, mm_channel **out, size_t *n);
void mm_channels_free(mm_channel *c, size_t n);

/* The ids of a [Team] array: a NULL-terminated new array (free with mm_strv_free), *n of
 * them, or NULL when the body is not an array. */
char **mm_team_ids_parse(const char *body, size_t *n);

/* Mattermost's channel type code → the gateway's chat type: D → "dm", O → "channel",
 * P and G → "group"; anything else → "channel" (the original's map). */
const char *mm_chat_type(const char *code);

/* An AppError body's "id" (new string) or NULL; *message (may be NULL) gets "message". */
char *mm_app_error_id(const char *body, char **message);

/* ---- mentions ------------------------------------------------------------------------ */

/*
 * Is the bot mentioned? The rule Mattermost uses to highlight a mention: an "@" that starts a
 * word (start of text, or after a character that is not a letter, digit, '.', '-', '_', ':'
 * or '@'), followed by the bot's username or user id, case-insensitively; the word may run on
 * only with '.', '-', '_' or ':' ("@hermes:", "@hermes." count; "@hermesbot", "@hermes.dev",
 * "bob@hermes.io" do not). username or user_id may be NULL/empty.
 */
bool mm_mentions(const char *text, const char *username, const char *user_id);

/* text without its mentions of the bot (the "@name" part; what follows stays), with
 * surrounding whitespace trimmed. New string. */
char *mm_strip_mentions(const char *text, const char *username, const char *user_id);

/* A copy of s with leading and trailing whitespace removed. */
char *mm_trim(const char *s);

/* ---- replies ------------------------------------------------------------------------- */

/*
 * The root_id for a reply, or NULL for a flat post. thread_id is the thread the message being
 * answered was in (its root post), reply_to that message's id. A message inside a thread is
 * always answered inside that thread; in thread mode a top-level message gets a thread rooted
 * at it. Never returns the id of a reply (the original did, and the server refuses it with
 * "Invalid RootId parameter").
 */
const char *mm_reply_root(bool thread_mode, const char *thread_id, const char *reply_to);

/* Outbound text the original's way: "![alt](url)" becomes the bare URL (Mattermost previews
 * image URLs). New string. */
char *mm_format(const char *text);

/*
 * Take the MEDIA:<path> tags (optionally quoted or back-ticked; "~/" expanded with home) and
 * the [[audio_as_voice]] directive out of text. Returns the remaining text (trimmed, new
 * string) and fills *paths (NULL-terminated new array of new strings, or NULL) with at most
 * max_paths paths.
 */
char *mm_extract_media(const char *text, const char *home, char ***paths, size_t max_paths);
void mm_strv_free(char **v);

/* MIME type guessed from a file name's extension ("application/octet-stream" if unknown). */
const char *mm_mime_for(const char *name);

/* A multipart/form-data body with the fields channel_id and files (one file). New buffer,
 * *len bytes. boundary must not occur in the data (a random 32-hex string). */
char *mm_multipart(const char *boundary, const char *channel_id, const char *filename,
                   const char *mime, const void *data, size_t dlen, size_t *len);

/* The file id of a POST /api/v4/files answer (file_infos[0].id), new string, or NULL. */
char *mm_upload_file_id(const char *body);

/* A name safe for the cache directory: the last path component, with characters other than
 * [A-Za-z0-9._-] replaced by '_', at most 100 bytes, never "", "." or "..". New string. */
char *mm_safe_name(const char *name);

/* ---- the persisted state -------------------------------------------------------------- */

typedef struct mm_seen {
    char id[MM_ID_MAX + 1];
    int64_t at; /* the post's create_at */
} mm_seen;

/*
 * Where the adapter is in the server's history: every post created before mark - SLACK has
 * been handled; posts created after that which were handled are in seen.
 */
typedef struct mm_state {
    char *server;  /* base URL the state belongs to, or NULL */
    char *user_id; /* the bot's id, or NULL */
    int64_t mark;  /* create_at of the newest post handled; 0: none yet */
    mm_seen *seen;
    size_t n, cap;
} mm_state;

void mm_state_init(mm_state *s);
void mm_state_fini(mm_state *s);
/* Parse the state file's JSON into s (initialised). 0 or -EBADMSG (s left empty). */
int mm_state_parse(const char *json, mm_state *s);
/* The state file's JSON (new string). */
char *mm_state_json(const mm_state *s);
bool mm_state_has(const mm_state *s, const char *id);
/* Remember id (no-op if present); beyond MM_SEEN_MAX the oldest entries go. */
void mm_state_add(mm_state *s, const char *id, int64_t at);
/* Forget ids of posts created before t. */
void mm_state_prune(mm_state *s, int64_t t);

/* ---- timing ---------------------------------------------------------------------------- */

/* The delay after cur: cur * 2 capped at max (cur 0: min). */
int64_t mm_backoff_next(int64_t cur, int64_t min, int64_t max);
/* delay plus a jitter in [0, delay/5] drawn from rnd. */
int64_t mm_backoff_jitter(int64_t delay, uint64_t rnd);

/*
 * How long a rate-limited client must wait, in ms, from a response: for 429 the larger of
 * Retry-After (retry_after_s, already parsed) and X-RateLimit-Reset (seconds), at least 1 s;
 * for other statuses X-RateLimit-Reset when X-RateLimit-Remaining is 0; else 0. Capped at
 * 60 s.
 */
int64_t mm_ratelimit_wait_ms(int status, const rt_http_header *h, size_t n, int64_t retry_after_s);

/* The WebSocket URL for a base URL: http → ws, https → wss, + "/api/v4/websocket". NULL if
 * the base is not http(s)://. */
char *mm_ws_url(const char *base);

#endif /* MM_PARSE_H */
