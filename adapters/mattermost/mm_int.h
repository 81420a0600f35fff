/*
 * mm_int.h — internals of the Mattermost adapter shared within adapters/mattermost:
 *
 *   mm_parse.c    pure helpers: wire format, mentions, roots, state (mm_parse.h)
 *   mm_config.c   mattermost_opts_from_config, the identity lock
 *   mm_actor.c    the actor: dispatch, connecting, the WebSocket, reconnects, heartbeat,
 *                 mattermost_start
 *   mm_rest.c     REST requests: submission, rate limits (429, X-RateLimit-*), results
 *   mm_inbound.c  posts → gw_msg_event: gating, attachments, catch-up after a reconnect,
 *                 the persisted position
 *   mm_outbound.c GW_OUT_* → posts: roots, splitting, files, typing
 *   (file I/O: the detached helper of adapters/kit/ak_io.h)
 *
 * Invariants:
 *   1. Everything in mm_adapter belongs to the actor and is touched only from its behaviour
 *      (one worker at a time): no locks, no atomics.
 *   2. A request (mm_req) in a->reqs owns nothing that another owner frees: its ctx (a job
 *      or an outbound item) lives until every request pointing at it has completed, because
 *      jobs count their pending requests and the outbound lanes (ak_lanes) only release an
 *      item after the item's request completed.
 *   3. Messages from a WebSocket, a timer or a request that no longer matters (an older
 *      connection, a re-armed timer, an older catch-up) are recognised by their generation
 *      and ignored.
 *
 * Threads: the actor runs on workers; mm_io's actor has its own thread (it blocks on disk).
 */
#ifndef MM_INT_H
#define MM_INT_H

#include "ak_io.h"
#include "ak_lanes.h"
#include "ak_timer.h"
#include "gw.h"
#include "mattermost.h"
#include "mm_parse.h"
#include "rt_http.h"
#include "rt_map.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MM_LOG            "mattermost"
#define MM_REST_MAX_BODY  (8u << 20) /* JSON answers */
#define MM_WS_MAX_MESSAGE (8u << 20)
#define MM_JOBS_MAX       1024 /* inbound posts waiting for lookups or downloads */
#define MM_OUT_MAX        4096 /* outbound posts queued */
#define MM_TYPING_MAX     64
#define MM_PROG_MAX       64   /* progress posts of running turns */
#define MM_PROG_TEXT_MAX  4000 /* a progress post this long: the next lines start a new one */
#define MM_USERS_MAX      1024 /* cached user names */
#define MM_RL_TRIES       8    /* 429s one request puts up with */
#define MM_OUT_TRIES      8    /* transient failures one post puts up with */
#define MM_OUT_PARALLEL   8    /* channels whose posts are on their way at once */
/* A post whose answer did not come (timeout, reset, 502/504) may have been made: it is sent
 * again with the same pending_post_id only while the server still remembers that id (its
 * PendingPostIDsCache keeps one for 30 s), else given up as "maybe sent". */
#define MM_PENDING_WINDOW_NS (25LL * 1000000000LL)
#define MM_TYPING_TTL_NS     (10LL * 60 * 1000000000LL)
#define MM_AUTH_FAIL_HINT    "check MATTERMOST_TOKEN and MATTERMOST_URL"

/* Internal messages (RT_MSG_MODULE_ADAPTER 0x200..0x2ff belong to Mattermost). */
enum {
    MM_MSG_START = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x200), /* rt_msg: begin connecting */
};

/* ---------------------------------------------------------------- the adapter */

enum mm_phase {
    MM_PH_INIT = 0,
    MM_PH_AUTH,    /* GET users/me in flight */
    MM_PH_CONFIG,  /* GET config/client in flight */
    MM_PH_WS,      /* the WebSocket is connecting or authenticating */
    MM_PH_LIVE,    /* hello received */
    MM_PH_WAIT,    /* waiting to reconnect */
    MM_PH_FATAL,   /* gave up (credentials refused) */
    MM_PH_STOPPED, /* RT_MSG_STOP received */
};

/* Timers: the tag is (kind << 56) | sequence; only the latest sequence of a kind counts. */
enum mm_timer {
    MM_T_RECONNECT = 1,
    MM_T_HEARTBEAT,
    MM_T_RATELIMIT,
    MM_T_OUT,
    MM_T_TYPING,
    MM_T_CATCHUP,
    MM_T_STATE, /* the next write of the persisted position (at most one per MM_STATE_SAVE_MS) */
    MM_T_COUNT
};

enum mm_req_kind {
    MM_R_ME = 1,
    MM_R_CONFIG,
    MM_R_CHANNELS,      /* GET users/{id}/channels */
    MM_R_TEAMS,         /* GET users/{id}/teams (older servers) */
    MM_R_TEAM_CHANNELS, /* GET users/{id}/teams/{tid}/channels */
    MM_R_POSTS_SINCE,
    MM_R_USER,
    MM_R_FILE_INFO,
    MM_R_FILE_GET,
    MM_R_FILE_SAVE, /* not HTTP: the io actor writing a download */
    MM_R_POST,
    MM_R_UPLOAD,
    MM_R_FILE_READ, /* not HTTP: the io actor reading a file to upload */
    MM_R_TYPING,
    MM_R_PATCH, /* PUT posts/{id}/patch: a progress post updated */
};

typedef struct mm_req {
    struct mm_req *next; /* parked list while rate-limited */
    uint64_t tag;        /* key in a->reqs */
    uint64_t http_id;    /* rt_http id while in flight, 0 otherwise */
    int kind;            /* mm_req_kind */
    uint64_t gen;        /* catch-up generation for catch-up requests */
    void *ctx;           /* mm_job or mm_out (invariant 2) */
    size_t idx;          /* attachment index for file requests */
    char *method;        /* NULL: GET */
    char *path;          /* "/api/v4/…" */
    char *body;
    size_t body_len;
    char *ctype;        /* Content-Type of body */
    int64_t timeout_ms; /* whole request */
    size_t max_body;
    int tries; /* 429s so far */
    char *aux; /* kind-specific: a file's name, a user id */
} mm_req;

typedef struct mm_job {
    struct mm_job *next;
    gw_msg_event *ev; /* ready to send; owned */
    int pending;      /* requests still running for it */
    int64_t at;       /* the post's create_at */
    char *mimes[MM_FILES_MAX];
    char *paths[MM_FILES_MAX];
    size_t nfiles;
    char *file_name[MM_FILES_MAX]; /* from file info */
} mm_job;

enum mm_out_what { MM_OUT_TEXT = 1, MM_OUT_FILE, MM_OUT_PROG };

/*
 * A turn's tool progress shown as one post that grows (POST once, then PUT …/patch with the
 * whole text), like the original's edited progress message. One per reply target while its
 * turn runs; a post that would pass the size limit is left as it is and the next lines start
 * a new one. An ended one (its turn is over, or it is full) is freed when the last queued
 * update pointing at it is done.
 */
typedef struct mm_prog {
    char *channel;
    char *root;    /* thread root, or NULL */
    char *post_id; /* the progress post, once created */
    char *text;    /* everything shown so far (and about to be) */
    size_t len;
    int refs;    /* queued updates (mm_out) pointing at it */
    bool queued; /* an update is waiting in the queue (it will carry the latest text) */
    bool ended;
} mm_prog;

typedef struct mm_out {
    int what;      /* mm_out_what */
    int kind;      /* gw_text_kind */
    char *channel; /* channel id */
    char *root;    /* root post id, or NULL */
    char *text;    /* TEXT: the message */
    char *path;    /* FILE: local path */
    char *file_id; /* FILE: after the upload */
    char *data;    /* FILE: bytes read */
    size_t len;
    int tries;         /* transient failures */
    int splits;        /* times split for the size limit */
    bool flat_retry;   /* posted flat after a broken thread root */
    mm_prog *prog;     /* PROG: the progress post to create or update (holds a ref) */
    uint64_t delivery; /* the gateway's outbox entry this post ends (GW_MSG_SENT), or 0 */
    int ack_err;       /* 0, or why the post was given up */
    bool ack_permanent;
    uint64_t group;       /* the delivery the item belongs to (every chunk of it), or 0 */
    char *pending_id;     /* POST: pending_post_id, the same on every retry of this post */
    int64_t first_try_ns; /* when its pending_post_id was first sent, 0: not yet */
    bool maybe_sent;      /* an attempt got no answer: the server may have made it */
} mm_out;

/* A post found by the catch-up, with the index of its channel in cu_ch. */
typedef struct mm_cu_post {
    mm_post p;
    size_t ch;
} mm_cu_post;

typedef struct mm_typing {
    char *channel;
    char *parent; /* thread root, or NULL */
    int64_t since_ns;
} mm_typing;

typedef struct mm_user {
    char *id;
    char *name;
} mm_user;

typedef struct mm_adapter {
    /* ---- settings (fixed after start) ---- */
    mattermost_opts o; /* deep copy, defaults filled in */
    char *ws_url;
    char *auth_header; /* "Authorization: Bearer …" */
    char *state_path;  /* ~/.hermes/platforms/mattermost/state.json */
    char *cache_dir;   /* ~/.hermes/cache */
    char *user_home;   /* $HOME, for "~/" in MEDIA: tags, or NULL */
    char *lock_path;   /* the identity lock we hold, or NULL */
    rt_ref gateway;    /* 0: look up GW_NAME */
    rt_ref self;
    rt_ref io;

    /* ---- connection ---- */
    int phase; /* mm_phase */
    char *bot_id;
    char *bot_name;
    size_t max_post; /* the server's limit in characters */
    bool announced;  /* GW_MSG_ADAPTER_UP sent */
    uint64_t conn;   /* current WebSocket, 0: none */
    uint64_t conn_gen;
    int64_t seq_next;   /* the next event seq expected, -1: none yet */
    int64_t send_seq;   /* our next action seq */
    bool ping_pending;  /* an application ping is unanswered */
    int64_t backoff_ms; /* the last reconnect delay (0: none since the last success) */
    uint64_t rnd;       /* xorshift state (jitter, boundaries, file names) */
    ak_timers tm;       /* one slot per timer kind */

    /* ---- requests ---- */
    rt_map reqs; /* tag → mm_req */
    uint64_t next_tag;
    int64_t rl_until_ns; /* nothing is sent before this (rate limit) */
    mm_req *parked, *parked_tail;

    /* ---- inbound ---- */
    mm_job *jobs, *jobs_tail;
    size_t njobs;
    mm_state st;     /* the persisted position */
    bool st_dirty;   /* changed since the last write was sent */
    bool st_writing; /* a write is in flight */
    bool st_saved;   /* a write was sent (st_saved_ns is when) */
    int64_t st_saved_ns;
    int64_t handled_max; /* newest create_at handed to the gateway */
    bool catching_up;
    uint64_t cu_gen;
    mm_channel *cu_ch;
    size_t cu_n, cu_next;
    char **cu_teams;
    size_t cu_nteams, cu_team_next;
    int64_t cu_since;
    mm_cu_post *cu_posts; /* found so far (owned) */
    size_t cu_np, cu_cap;
    int64_t cu_retry_ms; /* delay before retrying a failed catch-up */
    mm_user users[MM_USERS_MAX];
    size_t nusers, users_next;

    /* ---- outbound ---- */
    ak_lanes lanes; /* mm_out items in per-channel lanes (set up on first use) */
    bool lanes_ready;
    uint64_t boot;     /* random per start: part of every pending_post_id */
    uint64_t pend_seq; /* pending_post_ids of posts that are no outbox delivery */
    mm_typing typing[MM_TYPING_MAX];
    size_t ntyping;
    mm_prog *progs[MM_PROG_MAX]; /* live and ended-but-referenced progress posts */
    size_t nprogs;
} mm_adapter;

/* ---- mm_config.c: the identity lock (gateway.md §11.2) ---- */
/* Take dir/mattermost-<sha256(url, token)[:16]>.lock for this process. 0 (also when the
 * directory cannot be written: logged, not fatal) with *path set (NULL if none), or -EBUSY
 * with the original's message when a live gateway holds it. Blocking (start-up). */
int mm__lock_acquire(const char *dir, const char *url, const char *token, char **path, char *err,
                     size_t errlen);
/* Remove the lock if this process holds it. */
void mm__lock_release(const char *path);

/* ---- mm_actor.c ---- */
rt_ref mm__gateway(mm_adapter *a, rt_ctx *cx);
/* Arm timer kind after ms (re-arming forgets the previous one). */
int64_t mm__now_ns(rt_ctx *cx);
/* Give up for good: log, tell the gateway, end the actor. */
void mm__fatal(mm_adapter *a, rt_ctx *cx);
/* The connection failed: wait (backoff + jitter) and start over. why is logged. */
void mm__reconnect_later(mm_adapter *a, rt_ctx *cx, const char *why);
/* Announce (again) to the gateway. */
void mm__announce(mm_adapter *a, rt_ctx *cx);
/* Results of GET users/me and GET config/client. */
void mm__connect_result(mm_adapter *a, rt_ctx *cx, mm_req *r, rt_io_msg_http_done *d);

/* ---- mm_rest.c ---- */
mm_req *mm__req_new(mm_adapter *a, int kind, const char *method, const char *path);
/* Submit (or park while rate-limited). Takes r. */
void mm__submit(mm_adapter *a, rt_ctx *cx, mm_req *r);
/* Register a non-HTTP request (io) and return its tag. Takes r. */
uint64_t mm__track(mm_adapter *a, mm_req *r);
mm_req *mm__untrack(mm_adapter *a, uint64_t tag);
void mm__req_free(mm_req *r);
void mm__on_http_done(mm_adapter *a, rt_ctx *cx, rt_io_msg_http_done *d);
void mm__on_ratelimit_timer(mm_adapter *a, rt_ctx *cx);
/* Cancel everything in flight (stop; cx NULL: just forget it, from fini). */
void mm__cancel_all(mm_adapter *a, rt_ctx *cx);
/* A JSON body for r (takes the cJSON tree). */
void mm__req_json(mm_req *r, cJSON *body);

/* ---- mm_inbound.c ---- */
void mm__inbound_ws(mm_adapter *a, rt_ctx *cx, mm_wsmsg *m);
void mm__catchup_start(mm_adapter *a, rt_ctx *cx);
void mm__on_catchup_timer(mm_adapter *a, rt_ctx *cx);
void mm__inbound_result(mm_adapter *a, rt_ctx *cx, mm_req *r, rt_io_msg_http_done *d);
void mm__inbound_io(mm_adapter *a, rt_ctx *cx, mm_req *r, ak_io_done *d);
/* The bot's identity is known: forget a state that belongs to another server or bot. */
void mm__state_check_identity(mm_adapter *a);
void mm__state_save(mm_adapter *a, rt_ctx *cx);
/* The same at once, however recent the last write (stopping). */
void mm__state_flush(mm_adapter *a, rt_ctx *cx);
void mm__state_written(mm_adapter *a, rt_ctx *cx);
void mm__jobs_free(mm_adapter *a);
void mm__catchup_reset(mm_adapter *a);

/* ---- mm_outbound.c ---- */
void mm__on_out_text(mm_adapter *a, rt_ctx *cx, gw_out_text *t);
void mm__on_out_typing(mm_adapter *a, rt_ctx *cx, gw_out_typing *t);
void mm__on_turn_end(mm_adapter *a, rt_ctx *cx, gw_out_turn_end *t);
void mm__outbound_result(mm_adapter *a, rt_ctx *cx, mm_req *r, rt_io_msg_http_done *d);
void mm__outbound_io(mm_adapter *a, rt_ctx *cx, mm_req *r, ak_io_done *d);
void mm__out_pump(mm_adapter *a, rt_ctx *cx);
void mm__on_out_timer(mm_adapter *a, rt_ctx *cx);
void mm__on_typing_timer(mm_adapter *a, rt_ctx *cx);
void mm__out_free_all(mm_adapter *a);

#endif /* MM_INT_H */
