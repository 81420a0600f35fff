/*
 * mx_int — what the files of adapters/matrix share, and nobody else.
 *
 *   mx_actor.c     the actor: start/stop, login (whoami or password, /versions, identity lock,
 *                  filter), the /sync loop, since-token persistence, request bookkeeping
 *   mx_inbound.c   rooms and their state, a sync response's events → the rules → the room's
 *                  inbound queue → the gateway; invites, receipts, media downloads, batching
 *   mx_outbound.c  GW_OUT_* → per-room send queues (one request in flight per room, retries,
 *                  transaction ids); reactions, typing, progress edits, file uploads
 *   mx_rules.c     pure: mentions, gating, threads, reply fallbacks, message kinds
 *   mx_wire.c      pure: URLs, error classification, JSON of state files and the filter
 *   mx_content.c   pure: Markdown → HTML (cmark-gfm), event contents
 *   mx_io.c        the file actor (detached): state files, media cache, uploads, the lock
 *   mx_opts.c      matrix_opts_from_config
 *   mx_crypto.c    the E2EE seam (plain)
 *
 * Invariants of the actor state (mx):
 *   1. Rooms are created on first sight and freed only with the actor, so mx_room pointers
 *      stay valid in requests and timers.
 *   2. A room's inbound items reach the gateway in the order their events came in /sync;
 *      an item waits at the head while its media downloads or while it may still take the
 *      next piece of a batched text.
 *   3. A room has at most one send request in flight; its queue order is the order of
 *      GW_OUT_* messages for it. At most MX_MAX_INFLIGHT rooms send at once.
 *   4. The persisted since token is the newest one whose batch, and every batch before it,
 *      has no item left unhanded (mx->batches).
 *
 * Threads: the actor's state is touched only by its behaviour; the pure helpers anywhere.
 */
#ifndef MX_INT_H
#define MX_INT_H

#include "matrix.h"
#include "mx_crypto.h"

#include "rt_buf.h"
#include "rt_http.h"
#include "rt_map.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MX_LOG            "matrix"
#define MX_MAX_INFLIGHT   32               /* rooms sending at once */
#define MX_SYNC_MAX_BODY  (64u << 20)      /* one /sync response */
#define MX_SMALL_BODY     (1u << 20)       /* other responses */
#define MX_SEND_TIMEOUT   45000            /* per request (the original's 45 s) */
#define MX_SYNC_SLACK_MS  15000            /* client-side timeout = long-poll + this */
#define MX_DEDUP          1000             /* event ids remembered */
#define MX_THREADS_MAX    500              /* thread ids remembered */
#define MX_KNOWN_MAX      4096             /* inbound events remembered for reactions */
#define MX_GRACE_MS       5000             /* start-up grace (first start only) */
#define MX_CATCHUP_MAX_MS (24LL * 3600000) /* older missed messages are not answered */
#define MX_TYPING_MAX_MS  (30LL * 60000)   /* a typing notice left on is dropped after this */
#define MX_TIMELINE_LIMIT 100              /* events per room per sync */
#define MX_REACT_HOLD_MS  10000            /* ✅/❌ wait this long for the answer at most */

/* ================================================================ messages */

enum {
    /* adapter -> file actor */
    MX_IO_WRITE = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x100), /* mx_io_msg */
    MX_IO_READ = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x101),  /* mx_io_msg */
    MX_IO_MEDIA = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x102), /* mx_io_msg: save a download */
    MX_IO_LOCK = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x103),  /* mx_io_msg */
    MX_IO_QUIT = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x104),  /* mx_io_msg: unlock, then end */
    /* file actor -> adapter */
    MX_IO_DONE = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x110), /* mx_io_done */
    /* adapter -> itself */
    MX_MSG_BOOT = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x120),
};

/* What the file actor is asked to do (fields by type). */
typedef struct mx_io_msg {
    rt_msg hdr;
    rt_ref reply_to;
    uint64_t tag;
    char *path; /* WRITE/READ: the file; MEDIA: the cache dir; LOCK/QUIT: the lock dir */
    char *data; /* WRITE/MEDIA: bytes (owned); LOCK: the identity */
    size_t len; /* WRITE/MEDIA: bytes; READ: the most to read */
    int mode;   /* WRITE: file mode */
    char *name; /* MEDIA: the original file name; LOCK: a description for the lock file */
    char *mime; /* MEDIA: the content type */
    int kind;   /* MEDIA: gw_kind */
} mx_io_msg;

typedef struct mx_io_done {
    rt_msg hdr;
    uint64_t tag;
    int err;    /* 0 or -errno */
    char *msg;  /* a sentence when err (owned), or NULL */
    char *path; /* MEDIA: where it was saved (owned) */
    char *data; /* READ: the bytes (owned) */
    size_t len;
    long holder; /* LOCK -EBUSY: the pid holding it */
} mx_io_done;

/* The file actor (detached: it blocks on fsync). Linked to nothing; ends on MX_IO_QUIT. */
rt_ref mx_io_start(rt_ctx *cx);
void mx__drop_io_done(rt_msg *m); /* frees an mx_io_done's fields */
/* A request for the file actor (fields zero; drop set). */
mx_io_msg *mx_io_new(uint32_t type, rt_ref reply_to, uint64_t tag);

/* Identity locks (gateway.md §11.2). Blocking file operations: the file actor calls them.
 * take: 0, -EBUSY (*holder = its pid) or -errno. release: removes our lock file if ours. */
int mx_lock_take(const char *dir, const char *identity, const char *what, long *holder);
void mx_lock_release(const char *dir, const char *identity);
/* "matrix-<16 hex of sha256(identity)>.lock" into buf. */
void mx_lock_name(const char *identity, char *buf, size_t len);

/* Media cache naming (§8.5): images/img_<12 hex>.<ext>, audio/audio_<12 hex>.<ext>,
 * documents/doc_<12 hex>_<name>; legacy image_cache/… when they exist. New string, or NULL
 * when the name is unsafe. */
char *mx_cache_path(const char *cache_dir, int kind, const char *mime, const char *name,
                    const char *hex12);
/* Does data look like an image (magic bytes)? */
bool mx_looks_like_image(const char *data, size_t len);

/* ================================================================== rules */

/* Is the bot mentioned (§8.5): m.mentions.user_ids, the full user id in body, the localpart
 * as a whole word (case-insensitive), a matrix.to pill in formatted_body. */
bool mx_is_mentioned(const cJSON *content, const char *user_id, const char *localpart);
/* "bot" of "@bot:server" (new string), or a copy of the id when it has no such shape. */
char *mx_localpart(const char *user_id);
/* The thread root of an event content (rel_type m.thread), or NULL. Borrowed. */
const char *mx_thread_of(const cJSON *content);
/* The event an event replies to (m.in_reply_to), or NULL. Borrowed. */
const char *mx_reply_to_of(const cJSON *content);
/* Is the content an edit (m.replace)? */
bool mx_is_edit(const cJSON *content);
/* body without the reply fallback ("> …" lines up to the first blank line). New string. */
char *mx_strip_reply_fallback(const char *body);
/* text with every occurrence of user_id removed, trimmed. New string. */
char *mx_strip_user_id(const char *text, const char *user_id);
/* The gateway kind of a msgtype (m.text → TEXT, m.audio + MSC3245 → VOICE, …), -1: ignored. */
int mx_kind_of(const cJSON *content);

/* The routing decision for one message (§8.5 gating and threading). */
typedef struct mx_route_in {
    bool dm;              /* the room is a DM */
    bool mentioned;       /* mx_is_mentioned */
    bool free_room;       /* in MATRIX_FREE_RESPONSE_ROOMS */
    bool thread_known;    /* the message's thread is one the bot is in */
    const char *thread;   /* the message's thread root, or NULL */
    const char *event_id; /* the message's id */
    bool require_mention, auto_thread, dm_mention_threads;
} mx_route_in;
typedef struct mx_route {
    bool accept;
    const char *thread; /* thread for the session and the reply (borrowed from in), or NULL */
    bool strip_mention; /* remove the bot's user id from the text */
} mx_route;
mx_route mx_route_decide(const mx_route_in *in);

/* ================================================================== wire */

/* Percent-encode one path segment (room ids, event ids, user ids). New string. */
char *mx_escape(const char *s);
/* Does a /versions body list v1.11 or later (authenticated media)? */
bool mx_versions_auth_media(const char *body);

/* What a finished request means. */
enum mx_verdict {
    MX_OK = 0,     /* 2xx */
    MX_RETRY = 1,  /* 429, 5xx, network: try again after *retry_ms */
    MX_AUTH = 2,   /* 401/403 M_UNKNOWN_TOKEN / M_MISSING_TOKEN: credentials are bad */
    MX_FAIL = 3,   /* another 4xx: do not retry */
    MX_CANCEL = 4, /* cancelled (stopping) */
};
/* Classify d; reason (≤ len) says why in plain words ("rate limited (M_LIMIT_EXCEEDED)",
 * "HTTP 502", "connection refused"…); *retry_ms: the server's retry_after_ms / Retry-After,
 * or 0 when it gave none; errcode (may be NULL, ≤ 64) the Matrix errcode or "". */
int mx_classify(const rt_io_msg_http_done *d, char *reason, size_t len, int64_t *retry_ms,
                char *errcode);

/* sync_token.json: {"homeserver", "user_id", "next_batch"} (new string) and back: the token
 * when homeserver and user match, else NULL (new string). */
char *mx_token_render(const char *homeserver, const char *user_id, const char *token);
char *mx_token_parse(const char *json, const char *homeserver, const char *user_id);
/* matrix_threads.json: a JSON array of thread ids. */
char *mx_threads_render(char *const *ids, size_t n);
/* Parsed ids (new array of new strings, *n of them), at most max (the newest). */
char **mx_threads_parse(const char *json, size_t max, size_t *n);
/* The sync filter (new string): messages, encrypted events, members (lazy), names,
 * encryption state, m.direct; no presence, typing or receipts. */
char *mx_filter_json(mx_crypto *c);

/* ================================================================ content */

/* Markdown → HTML (cmark-gfm: tables, strikethrough, autolinks, hard breaks, raw HTML
 * omitted, unsafe links dropped); a single paragraph is unwrapped. New string, or NULL when
 * the HTML says nothing the text does not. */
char *mx_markdown_html(const char *text);
/* ![alt](url) → url (the original sends image links as bare URLs). New string. */
char *mx_unwrap_images(const char *text);

typedef struct mx_rel {
    const char *thread;   /* thread root, or NULL */
    const char *reply_to; /* event answered, or NULL */
    bool quote;           /* add m.in_reply_to outside threads */
} mx_rel;
/* m.text with body + formatted_body and relations. New JSON string. */
char *mx_content_text(const char *text, const mx_rel *rel);
/* An edit (m.replace) of event_id to text. New JSON string. */
char *mx_content_edit(const char *event_id, const char *text, const mx_rel *rel);
/* m.reaction on event_id with key. New JSON string. */
char *mx_content_reaction(const char *event_id, const char *key);
/* A media message. New JSON string. */
char *mx_content_media(const char *msgtype, const char *body, const char *mxc, const char *mime,
                       size_t size, bool voice, const mx_rel *rel);
/* msgtype and MIME of a local file from its extension (voice forces m.audio). Static. */
void mx_media_type(const char *path, bool voice, const char **msgtype, const char **mime);

/* =============================================================== the actor */

typedef struct mx_room mx_room;
typedef struct mx_in mx_in;
typedef struct mx_op mx_op;

/* What an in-flight request is for: HTTP requests (m->reqs, by request id) and file actor
 * requests (m->ioreqs, by tag). */
enum mx_rq {
    RQ_LOGIN = 1,
    RQ_VERSIONS,
    RQ_FILTER,
    RQ_SYNC,
    RQ_OP,
    RQ_TYPING,
    RQ_RECEIPT,
    RQ_JOIN,
    RQ_MEDIA,
    RQ_CRYPTO,
    IO_TOKEN,   /* sync_token.json written */
    IO_THREADS, /* matrix_threads.json written */
    IO_MEDIA,   /* a download saved (item) */
    IO_READ,    /* a file to upload read (room) */
    IO_LOCK,    /* the identity lock */
};

typedef struct mx_req {
    int kind;      /* mx_rq */
    mx_room *room; /* RQ_OP, RQ_TYPING, RQ_RECEIPT, RQ_JOIN, RQ_MEDIA */
    mx_in *item;   /* RQ_MEDIA */
} mx_req;

typedef struct mx_member {
    struct mx_member *next; /* hash chain */
    char *user_id;
    char *name; /* display name, or NULL */
    bool joined;
} mx_member;

/* One piece of progress (tool lines) shown as a message edited in place. */
typedef struct mx_progress {
    struct mx_progress *next;
    char *thread;   /* target thread, or NULL */
    char *reply_to; /* target message, or NULL */
    char *event_id; /* the progress message once sent, or NULL */
    rt_buf text;    /* every line so far */
    unsigned gen;   /* bumped when a full message starts a new one */
    bool queued;    /* an op for it waits in the room's queue */
    bool ended;     /* the turn ended: freed when no op refers to it */
} mx_progress;

struct mx_room {
    struct mx_room *next_hash;
    size_t index; /* in m->roomv (timer tags) */
    char *id;
    char *name;             /* m.room.name, or NULL */
    rt_map members;         /* hash(user id) → mx_member chain */
    int64_t summary_joined; /* m.joined_member_count, -1 when unknown */
    int joined_members;     /* joined members seen in state */
    bool joined;            /* the bot is in it */
    bool direct;            /* listed in the bot's m.direct */
    bool direct_hint;       /* the invite said is_direct */
    bool joining;           /* a join is in flight or waiting */
    int join_attempts;
    bool warned_encrypted;
    /* inbound (invariant 2) */
    mx_in *in_head, *in_tail;
    uint64_t batch_gen; /* the batching timer that counts */
    /* outbound (invariant 3) */
    mx_op *op_head, *op_tail;
    bool op_running; /* a request in flight, or the file actor reading */
    bool op_waiting; /* a retry timer is armed */
    bool op_paused;  /* the crypto layer asked to wait */
    bool op_ready;   /* in the ready list */
    struct mx_room *ready_next;
    mx_progress *progress;
    /* typing and receipts */
    int typing;           /* turns running that want typing */
    int64_t typing_since; /* monotonic ms of the first */
    char *receipt_want;   /* the newest event to mark read */
    bool receipt_busy;
};

/* An inbound message on its way to the gateway. */
struct mx_in {
    mx_in *next;
    gw_msg_event *ev; /* owned until handed */
    uint64_t batch;   /* the sync batch it came in */
    int waiting;      /* downloads outstanding */
    bool open;        /* batched text that may still take the next piece */
    size_t last_len;  /* length of the last piece (the split heuristic) */
    int64_t last_ts;  /* origin_server_ts of the last piece (ms), 0: unknown */
    char *mxc;        /* media to download, or NULL */
    char *mime;
    char *filename;
    char *file; /* encrypted media: the event's "file" object (JSON), or NULL */
};

/* A since token waiting for its batch's items (invariant 4). */
typedef struct mx_batch {
    uint64_t seq;
    char *token;
    size_t pending; /* items of this batch not handed yet */
    bool open;      /* still being applied: more items may come */
} mx_batch;

/* An inbound event remembered for reactions. */
typedef struct mx_known {
    struct mx_known *next; /* hash chain */
    char *event_id;
    mx_room *room;
    char *eyes;     /* the 👀 reaction's event id once sent */
    bool eyes_sent; /* 👀 queued */
    bool finished;  /* ✅/❌ queued */
    bool replied;   /* the last part of its answer (or error) was queued */
    bool end_held;  /* its turn ended before the answer came: ✅/❌ wait for it */
    int outcome;    /* the held turn's gw_outcome */
    size_t slot;    /* its index in m->known_ring (timer tags) */
} mx_known;

enum mx_st {
    MX_ST_LOGIN = 0, /* whoami or password login */
    MX_ST_VERSIONS,  /* /versions (authenticated media?) */
    MX_ST_LOCK,      /* the identity lock */
    MX_ST_CRYPTO,    /* the crypto layer connects */
    MX_ST_FILTER,    /* uploading the filter */
    MX_ST_SNAPSHOT,  /* the first sync (room state), no since */
    MX_ST_SYNC,      /* the loop */
    MX_ST_FAILED,
};

typedef struct mx {
    /* settings (immutable after start) */
    matrix_opts o; /* strings owned */
    rt_ref gateway;
    rt_ref self;
    rt_ref io;
    mx_crypto *crypto;
    char *txn_prefix;
    char *dtxn_prefix; /* outbox deliveries: from matrix_opts.delivery_epoch */
    /* identity */
    char *token;
    char *user_id, *device_id, *localpart;
    char *auth; /* "Authorization: Bearer …" */
    bool auth_media;
    char *filter_id; /* uploaded filter, or NULL (inline) */
    char *filter_inline;
    /* the connection */
    int st;
    int attempts;     /* consecutive login or sync failures */
    uint64_t sync_id; /* the /sync in flight, 0 when none */
    bool retry_armed;
    char *since;      /* next_batch of the last sync handled */
    char *safe;       /* the newest token whose items were all handed (invariant 4) */
    char *saved;      /* the token on disk (from the last start or write) */
    char *saved_json; /* sync_token.json as read at start (parsed once the user is known) */
    bool locked;      /* the identity lock is ours */
    char *identity;   /* what the lock is for */
    rt_ctx *cx;       /* the behaviour's context, for the crypto hooks (valid during a run) */
    bool catchup;     /* the loop starts from a saved token */
    bool up;          /* GW_MSG_ADAPTER_UP sent */
    bool stopping;
    int64_t start_wall_ms;
    /* requests in flight: HTTP id → mx_req, file actor tag → mx_req */
    rt_map reqs;
    rt_map ioreqs;
    /* rooms (invariant 1) */
    rt_map rooms;
    mx_room **roomv;
    size_t nrooms, roomcap;
    mx_room *ready_head, *ready_tail;
    size_t inflight;
    /* inbound */
    uint64_t batch_seq;
    mx_batch *batches;
    size_t nbatches, batchcap;
    uint64_t dedup[MX_DEDUP];
    size_t dedup_at;
    rt_map dedup_set;
    char **threads; /* participated threads, oldest first */
    size_t nthreads;
    rt_map thread_set;
    bool threads_dirty, threads_writing;
    bool token_writing, token_timer;
    int64_t token_written_ms;
    /* reactions */
    rt_map known;
    mx_known *known_ring[MX_KNOWN_MAX];
    size_t known_at;
    /* typing */
    bool typing_timer;
    /* drain */
    rt_ref drain_to;
    uint64_t drain_tag;
    uint64_t seq; /* transaction ids and tags */
} mx;

/* ---- mx_actor.c ---- */
/* Submit a request to the homeserver: path below the base URL, body JSON (or NULL), extra
 * header (or NULL); registers req (taken) under the returned id. */
uint64_t mx_submit(mx *m, rt_ctx *cx, const char *method, const char *path, const char *body,
                   const char *ctype, size_t body_len, int64_t timeout_ms, size_t max_body,
                   mx_req *req);
mx_req *mx_req_new(int kind, mx_room *room, mx_in *item);
/* Send a file actor request (io: filled by the caller, tag set here), registering req. */
void mx_io_submit(mx *m, rt_ctx *cx, mx_io_msg *io, mx_req *req);
void mx_after_handed(mx *m, rt_ctx *cx); /* an item reached the gateway: maybe persist */
void mx_batch_done(mx *m, uint64_t batch);
int64_t mx_now_ms(rt_ctx *cx); /* the runtime's monotonic clock (fake in tests) */
char *mx_txn(mx *m);           /* a new transaction id */
rt_ref mx_gateway(mx *m, rt_ctx *cx);
void mx_stat(mx *m, size_t field_offset, uint64_t add);
#define MX_STAT(m, field, n) mx_stat((m), offsetof(matrix_stats, field), (n))

/* timer tags (rt_timeout_new): kind in the top byte, a room or generation below */
enum {
    TM_RETRY = 1,  /* login or sync retry */
    TM_TOKEN = 2,  /* since-token write */
    TM_TYPING = 3, /* typing refresh */
    TM_OP = 4,     /* a room's send retry (room index below) */
    TM_BATCH = 5,  /* a room's batching quiet period (room index, generation) */
    TM_DRAIN = 6,  /* drain deadline */
    TM_JOIN = 7,   /* a join retry (room index) */
    TM_REACT = 8,  /* held ✅/❌ are posted anyway (known ring slot) */
};
#define MX_TAG(kind, low) (((uint64_t)(kind) << 56) | ((uint64_t)(low) & ((1ULL << 56) - 1)))
#define MX_TAG_KIND(tag)  ((int)((tag) >> 56))
#define MX_TAG_LOW(tag)   ((tag) & ((1ULL << 56) - 1))

/* ---- mx_inbound.c ---- */
mx_room *mx_room_get(mx *m, const char *id, bool create);
bool mx_room_is_dm(const mx_room *r);
void mx_room_free(mx_room *r);
/* Handle a sync response: state, messages (unless state_only), invites, m.direct. */
void mx_sync_apply(mx *m, rt_ctx *cx, const cJSON *sync, bool state_only, uint64_t batch);
void mx_on_media(mx *m, rt_ctx *cx, mx_req *q, rt_io_msg_http_done *d);
void mx_on_media_saved(mx *m, rt_ctx *cx, mx_req *q, mx_io_done *d);
void mx_on_join(mx *m, rt_ctx *cx, mx_room *r, rt_io_msg_http_done *d);
void mx_join_retry(mx *m, rt_ctx *cx, mx_room *r);
void mx_on_receipt(mx *m, rt_ctx *cx, mx_room *r, rt_io_msg_http_done *d);
void mx_on_batch_timer(mx *m, rt_ctx *cx, uint64_t low);
void mx_redeliver(mx *m, rt_ctx *cx, const char *room_id, cJSON *ev);
bool mx_thread_known(mx *m, const char *thread);
void mx_inbound_fini(mx *m);

/* ---- mx_outbound.c ---- */
void mx_on_out_text(mx *m, rt_ctx *cx, gw_out_text *t);
void mx_on_out_typing(mx *m, rt_ctx *cx, gw_out_typing *t);
void mx_on_turn_end(mx *m, rt_ctx *cx, gw_out_turn_end *t);
void mx_on_file(mx *m, rt_ctx *cx, matrix_msg_file *f);
void mx_on_drain(mx *m, rt_ctx *cx, matrix_msg_drain *d);
void mx_on_op_done(mx *m, rt_ctx *cx, mx_room *r, rt_io_msg_http_done *d);
void mx_on_op_read(mx *m, rt_ctx *cx, mx_room *r, mx_io_done *d);
void mx_on_op_timer(mx *m, rt_ctx *cx, uint64_t low);
void mx_on_typing_timer(mx *m, rt_ctx *cx);
void mx_on_react_timer(mx *m, rt_ctx *cx, uint64_t slot);
void mx_room_resume(mx *m, rt_ctx *cx, mx_room *r);
void mx_known_add(mx *m, mx_room *r, const char *event_id);
void mx_send_receipt(mx *m, rt_ctx *cx, mx_room *r);
void mx_drain_check(mx *m, rt_ctx *cx);
void mx_op_free(mx_op *op);
void mx_outbound_fini(mx *m);

#endif /* MX_INT_H */
