/*
 * st_store — the state store: the one actor that writes ~/.hermes/state.db.
 *
 * The writer is a detached actor (its own thread: SQLite blocks) that owns the only write
 * connection (WAL, foreign_keys=ON, busy timeout, synchronous=NORMAL, statements prepared once).
 * Readers are separate detached actors with read-only connections (st_read.h); start both with
 * st_store_start().
 *
 * Group commit. On the first write after idle the writer opens a transaction (BEGIN IMMEDIATE)
 * and sends itself ST_MSG_FLUSH on the normal lane, where it lands behind every write already
 * queued. Those writes run in the same transaction; on FLUSH it commits and only then sends
 * the acks. So a burst of writes from many sessions costs one commit, and:
 *   1. An ack with err == 0 means the write is committed to the WAL: it survives a crash of
 *      this process (see st_schema.c on synchronous=NORMAL and power loss) and every reader
 *      started after the ack sees it.
 *   2. Acks go out in the order the writes arrived; each write is executed exactly once
 *      (an append is one INSERT: the original's double logging is not reproduced).
 *   3. A write that fails on its own (unknown session, duplicate id, bad input) gets its error
 *      and the others in the transaction commit. A disk error (SQLITE_FULL -> -ENOSPC,
 *      IOERR -> -EIO) rolls the whole transaction back: every write of it is acked with that
 *      error. The store stays up and the next write starts a new transaction.
 *   4. Exactly-once records (issue 13): an ST_MSG_INBOUND, ST_MSG_INBOX_DONE or
 *      ST_MSG_OUTBOX_END sent without reply_to that fails with a retryable disk error
 *      (st_retryable: -ENOSPC, -EIO) is not dropped. The writer keeps it in memory (at most
 *      ST_KEPT_MAX, the oldest given up first) and writes it again at the head of the next
 *      transaction, before every write that came after it, and on its own after a backoff
 *      (st_backoff: 1 s doubling to 30 s) for at most st_store_opts.record_retry_max_ms; then
 *      it is given up with a log line. So a key is never committed later than the message
 *      it guards. ST_MSG_SHUTDOWN and RT_MSG_STOP make one last attempt; if the disk is still
 *      full they release the space reserve (the file "<state.db>-reserve", ST_RESERVE_BYTES
 *      allocated at start when there is room, taken again at the next start) and try once
 *      more, then log, in one line of counts, what could still not be saved. A kept key
 *      comes with its inbox journal row, so a message saved this way is answered after the
 *      restart from the journal. ST_MSG_STATS reports kept and given up.
 *   5. Search. A message is in the search index (messages_fts) when its append is acked, as
 *      long as the writer appends fewer than ST_FTS_DEFER_RATE messages per 100 ms. Above
 *      that it indexes in batches, in their own transaction at most ST_FTS_BATCH_MS later
 *      (a crash leaves them in hc_fts_pending, indexed at the next start); an ST_MSG_SYNC
 *      is acked only when everything before it is indexed too. The index's segments are
 *      merged by the writer in small steps between other writes (FTS5's own automerge is
 *      off while it runs, restored when it stops; st_store.c).
 *
 * Messages (type RT_MSG_MODULE_ST). Every request starts with `rt_msg hdr; st_req req;`. With
 * req.reply_to != 0 the sender gets one ST_MSG_ACK (writes) or one reply of the type named
 * below, echoing req.tag. String fields are owned heap strings (rt_xmalloc'd) that the
 * message's drop frees: use the *_new constructors, which copy, then assign optional fields
 * with rt_xstrdup (or move a heap string in).
 *
 * Threads: the constructors and st_store_reader from any thread; st_store_start and
 * st_store_stop from a non-worker thread (they open files) or a detached actor.
 */
#ifndef ST_STORE_H
#define ST_STORE_H

#include "rt_actor.h"
#include "st_schema.h"

#include <stdbool.h>
#include <stdint.h>

#define ST_MAX_READERS    8
#define ST_TEXT_MAX       (64u << 20) /* cap on any one text field; more is -E2BIG */
#define ST_BATCH_MAX      4096        /* writes per transaction before an early commit */
#define ST_KEPT_MAX       16384       /* exactly-once records kept while the disk is full */
#define ST_RESERVE_BYTES  (512 << 10) /* rule 4's space reserve beside state.db */
#define ST_FTS_DEFER_RATE 32          /* appends per 100 ms from which search indexing is batched */
#define ST_FTS_BATCH_MS   50          /* the longest a batched message waits to be searchable */
#define ST_FTS_BATCH_MAX  4096        /* or until this many wait */
#define ST_FTS_MERGE_STEP 16          /* pages of index merging per step (about 1 ms) */

/*
 * The retry schedule for writes refused for lack of space, shared by the writer's kept
 * records (rule 4) and the session's user message (ag_save.c): the first retry after
 * ST_RETRY_FIRST_MS, each next one twice as late, at most ST_RETRY_CAP_MS apart, until max_ms
 * after the first failure. Plain arithmetic: any thread, no locking.
 */
#define ST_RETRY_FIRST_MS      1000
#define ST_RETRY_CAP_MS        30000
#define ST_RECORD_RETRY_MAX_MS (3600 * 1000) /* as agent.persist_retry_max_s's default */

/* Disk errors worth a retry once space is back: -ENOSPC and -EIO. */
bool st_retryable(int err);

typedef struct st_backoff {
    int64_t since_ms; /* the first failure */
    int64_t delay_ms; /* the next delay; 0: no failure yet (a zeroed st_backoff) */
} st_backoff;

/* After a failure at now_ms: the delay before the next attempt (the last one cut to land on
 * the deadline), or -1 when max_ms have passed since the first failure (give up). The first
 * call after a reset starts the clock. */
int64_t st_backoff_next(st_backoff *b, int64_t now_ms, int64_t max_ms);
static inline void st_backoff_reset(st_backoff *b)
{
    b->since_ms = b->delay_ms = 0;
}

enum {
    /* writes: answered with ST_MSG_ACK once committed (or failed) */
    ST_MSG_CREATE_SESSION = RT_MSG_TYPE(RT_MSG_MODULE_ST, 1), /* st_msg_create_session */
    ST_MSG_END_SESSION = RT_MSG_TYPE(RT_MSG_MODULE_ST, 2),    /* st_msg_end_session */
    ST_MSG_SET_PROMPT = RT_MSG_TYPE(RT_MSG_MODULE_ST, 3),     /* st_msg_set_prompt */
    ST_MSG_ADD_TOKENS = RT_MSG_TYPE(RT_MSG_MODULE_ST, 4),     /* st_msg_add_tokens */
    ST_MSG_APPEND = RT_MSG_TYPE(RT_MSG_MODULE_ST, 5),         /* st_msg_append */
    ST_MSG_SYNC = RT_MSG_TYPE(RT_MSG_MODULE_ST, 6),     /* st_msg_ctl: acked when all before are */
    ST_MSG_SHUTDOWN = RT_MSG_TYPE(RT_MSG_MODULE_ST, 7), /* st_msg_ctl: commit, ack, exit */
    /* control: answered at once */
    ST_MSG_SET_QUOTA = RT_MSG_TYPE(RT_MSG_MODULE_ST, 8), /* st_msg_set_quota -> ST_MSG_ACK */
    ST_MSG_STATS = RT_MSG_TYPE(RT_MSG_MODULE_ST, 9),     /* st_msg_ctl -> ST_MSG_STATS_REPLY */
    /* internal */
    ST_MSG_FLUSH = RT_MSG_TYPE(RT_MSG_MODULE_ST, 10),      /* rt_msg: commit the open transaction */
    ST_MSG_FTS_MERGE = RT_MSG_TYPE(RT_MSG_MODULE_ST, 19),  /* rt_msg: one step of index merging */
    ST_MSG_TRUNCATE = RT_MSG_TYPE(RT_MSG_MODULE_ST, 11),   /* st_msg_truncate */
    ST_MSG_INBOUND = RT_MSG_TYPE(RT_MSG_MODULE_ST, 12),    /* st_msg_inbound */
    ST_MSG_OUTBOX_PUT = RT_MSG_TYPE(RT_MSG_MODULE_ST, 13), /* st_msg_outbox: ack id = row */
    ST_MSG_OUTBOX_END = RT_MSG_TYPE(RT_MSG_MODULE_ST, 14), /* st_msg_outbox: sent or given up */
    ST_MSG_INBOX_DONE = RT_MSG_TYPE(RT_MSG_MODULE_ST, 18), /* st_msg_inbound: journal row off */
    /* 15: ST_MSG_SESSION_OP (st_titles.h), answered with ST_MSG_RESULT */
    /* replies */
    ST_MSG_ACK = RT_MSG_TYPE(RT_MSG_MODULE_ST, 16),         /* st_msg_ack */
    ST_MSG_STATS_REPLY = RT_MSG_TYPE(RT_MSG_MODULE_ST, 17), /* st_msg_stats */
    /* reads (st_read.h): 32..47, answered with ST_MSG_RESULT = 48 */
};

/* Every request carries this right after hdr. */
typedef struct st_req {
    rt_ref reply_to; /* who gets the reply; 0: no reply */
    uint64_t tag;    /* echoed in the reply */
} st_req;

/* sessions row; started_at = now. The original's create_session. */
typedef struct st_msg_create_session {
    rt_msg hdr;
    st_req req;
    char *id;                /* required */
    char *source;            /* required: "cli", "matrix", "mattermost", ... */
    char *user_id;           /* optional */
    char *model;             /* optional */
    char *model_config;      /* optional JSON text; must parse; {} / [] / null stored as NULL */
    char *system_prompt;     /* optional */
    char *parent_session_id; /* optional; must name an existing session */
} st_msg_create_session;

/* ended_at = now, end_reason = reason ("compression", "cli_close", "session_reset"). */
typedef struct st_msg_end_session {
    rt_msg hdr;
    st_req req;
    char *id;
    char *reason; /* may be NULL */
} st_msg_end_session;

/*
 * The gateway accepted a platform update: (platform, message_id) goes into hc_inbound (an
 * update already there is left as it is: INSERT OR IGNORE). Rows older than
 * ST_INBOUND_KEEP_S are deleted as new ones arrive. The gateway sends this before it passes
 * the update on, so by the time anything the update caused is committed, its key is too.
 */
#define ST_INBOUND_KEEP_S (7 * 86400)
typedef struct st_msg_inbound {
    rt_msg hdr;
    st_req req;
    char *platform;
    char *message_id;
    char *session_key; /* may be NULL */
    char *event_json;  /* may be NULL: also journal the event in hc_inbox (same transaction) */
    double received_at;
} st_msg_inbound;

/*
 * The inbox journal (hc_inbox): an ST_MSG_INBOUND with event_json also writes (platform,
 * message_id, session_key, event_json, received_at) into hc_inbox in the same transaction as
 * the key; for a key already there only event_json changes (the row keeps its place).
 * ST_MSG_INBOX_DONE (platform, message_id of an st_msg_inbound) deletes that row: the
 * conversation has the message. Rows past ST_INBOUND_KEEP_S are pruned with hc_inbound's.
 */
st_msg_inbound *st_inbox_done_new(const char *platform, const char *message_id);

/*
 * The gateway's outbox (hc_outbox). PUT inserts a reply before it is sent (the ack's id is
 * the row); END with error == NULL deletes the row (the platform took it), with an error
 * marks it 'failed' with attempts and the error (given up; kept ST_INBOUND_KEEP_S for
 * `hermes gateway status`, then deleted).
 */
typedef struct st_msg_outbox {
    rt_msg hdr;
    st_req req;
    int64_t row;                                            /* END */
    char *platform, *chat_id, *thread_id, *reply_to, *text; /* PUT */
    int kind, part, parts;                                  /* PUT */
    int attempts;                                           /* END */
    char *error;                                            /* END: NULL when sent */
} st_msg_outbox;

/* sessions.system_prompt = system_prompt (the assembled prompt snapshot). */
typedef struct st_msg_set_prompt {
    rt_msg hdr;
    st_req req;
    char *id;
    char *system_prompt; /* may be NULL */
} st_msg_set_prompt;

/* input_tokens += input_tokens, output_tokens += output_tokens (incremental). */
typedef struct st_msg_add_tokens {
    rt_msg hdr;
    st_req req;
    char *id;
    int64_t input_tokens;
    int64_t output_tokens;
} st_msg_add_tokens;

/*
 * One messages row (timestamp = now, an epoch float, never earlier than the previous one
 * this writer stored), then message_count += 1 and, when role is "tool" or tool_calls is
 * set, tool_call_count += 1, as the original. The ack's id is the new messages.id.
 */
typedef struct st_msg_append {
    rt_msg hdr;
    st_req req;
    char *session_id;    /* required; unknown -> -ENOENT */
    char *role;          /* required: "user", "assistant", "tool", "system" */
    char *content;       /* may be NULL; stored byte for byte (no UTF-8 check) */
    char *tool_call_id;  /* optional */
    char *tool_calls;    /* optional JSON text (the assistant's tool_calls array); must parse;
                            [] / {} / null stored as NULL but still counted, as the original */
    char *tool_name;     /* optional */
    char *finish_reason; /* optional */
    int64_t token_count; /* stored when has_token_count */
    bool has_token_count;
    int64_t input_tokens; /* added to the session's counters with the message, in the same
                             UPDATE (what ST_MSG_ADD_TOKENS does, one write fewer) */
    int64_t output_tokens;
} st_msg_append;

/*
 * Keep the first `keep` messages of a session (in timestamp, id order) and delete the rest,
 * then recount message_count and tool_call_count: /undo, /retry. The ack's id is the number
 * of messages deleted. An unknown session is -ENOENT.
 */
typedef struct st_msg_truncate {
    rt_msg hdr;
    st_req req;
    char *id;
    int64_t keep; /* >= 0 */
} st_msg_truncate;

/* SYNC, SHUTDOWN and STATS carry nothing else. */
typedef struct st_msg_ctl {
    rt_msg hdr;
    st_req req;
} st_msg_ctl;

/* Cap the database size (PRAGMA max_page_count, per connection, not stored): writes that
 * would grow it further fail with -ENOSPC. 0 restores SQLite's default. The ack's id is the
 * limit now in force, in bytes (never below the current size). */
typedef struct st_msg_set_quota {
    rt_msg hdr;
    st_req req;
    int64_t max_bytes;
} st_msg_set_quota;

/* The answer to every write, SYNC, SHUTDOWN and SET_QUOTA. */
typedef struct st_msg_ack {
    rt_msg hdr;
    uint64_t tag;               /* the request's req.tag */
    uint32_t op;                /* the request's type (ST_MSG_APPEND, ...) */
    int err;                    /* 0 or -errno (see the header comment, rule 3) */
    int64_t id;                 /* APPEND: messages.id; SET_QUOTA: bytes; else 0 */
    uint64_t commit;            /* number of the transaction that made it durable; 0 on error */
    char errmsg[ST_ERRMSG_MAX]; /* "" or a sentence naming the problem */
} st_msg_ack;

/* Counters of the writer, since it started. */
typedef struct st_msg_stats {
    rt_msg hdr;
    uint64_t tag;
    uint64_t commits;        /* successful COMMITs */
    uint64_t commit_hooks;   /* commits seen by sqlite3_commit_hook (a cross-check) */
    uint64_t rollbacks;      /* transactions rolled back after a disk error */
    uint64_t writes;         /* write requests executed */
    uint64_t write_errors;   /* write requests acked with an error */
    uint64_t max_batch;      /* most writes in one transaction */
    uint64_t kept;           /* exactly-once records kept now, waiting for space (rule 4) */
    uint64_t given_up;       /* records given up: past record_retry_max_ms or ST_KEPT_MAX */
    uint64_t search_batches; /* batches of messages indexed for search (st_store.c) */
    uint64_t search_waiting; /* messages stored and not indexed yet */
    uint64_t search_merges;  /* steps of index merging that did work (st_store.c) */
} st_msg_stats;

/* Constructors: copy the strings given (NULL stays NULL), set hdr.drop. Never NULL. */
st_msg_create_session *st_create_session_new(const char *id, const char *source);
st_msg_end_session *st_end_session_new(const char *id, const char *reason);
st_msg_set_prompt *st_set_prompt_new(const char *id, const char *system_prompt);
st_msg_truncate *st_truncate_new(const char *id, int64_t keep);
st_msg_add_tokens *st_add_tokens_new(const char *id, int64_t input_tokens, int64_t output_tokens);
st_msg_append *st_append_new(const char *session_id, const char *role, const char *content);
/* type: ST_MSG_SYNC, ST_MSG_SHUTDOWN or ST_MSG_STATS. */
st_msg_ctl *st_ctl_new(uint32_t type, rt_ref reply_to, uint64_t tag);
st_msg_set_quota *st_set_quota_new(int64_t max_bytes);
st_msg_inbound *st_inbound_new(const char *platform, const char *message_id,
                               const char *session_key);
/* type ST_MSG_OUTBOX_PUT (the strings copied) or ST_MSG_OUTBOX_END (row, attempts, error). */
st_msg_outbox *st_outbox_new(uint32_t type);

typedef struct st_store_opts {
    const char *path;    /* state.db; required */
    int readers;         /* reader actors, 1..ST_MAX_READERS; 0: 2 */
    int busy_timeout_ms; /* 0: ST_BUSY_TIMEOUT_MS */
    bool sync_full;      /* synchronous=FULL: an fsync per commit (power-loss safe) */
    bool commit_each;    /* one transaction per write, like the original (benchmarks) */
    const char *name;    /* register the writer under name and readers as name.rN; NULL: none */
    int64_t record_retry_max_ms; /* rule 4: how long kept records are retried; 0:
                                    ST_RECORD_RETRY_MAX_MS; < 0: none are kept */
} st_store_opts;

typedef struct st_store_refs {
    rt_ref writer;
    int nreaders;
    rt_ref readers[ST_MAX_READERS];
    rt_ref checkpointer; /* folds the WAL into the database off the writer (st_ckpt.h) */
} st_store_refs;

/*
 * Open (creating if needed, mode 0600) and upgrade state.db, then spawn the writer and the
 * readers as detached actors. Blocks on disk. Returns 0 and the refs, or -errno with a
 * sentence in errmsg (nothing is left running then).
 */
int st_store_start(rt_ctx *cx, const st_store_opts *o, st_store_refs *out, char *errmsg,
                   size_t errlen);

/* The reader for key (e.g. rt_hash_str(session_id) or a request counter): spreads reads. */
rt_ref st_store_reader(const st_store_refs *s, uint64_t key);

/* Ask everything to end: ST_MSG_SHUTDOWN to the writer (normal lane, so the writes queued
 * before it are committed first; acked to reply_to with tag if reply_to != 0) and
 * RT_MSG_STOP to the readers. */
void st_store_stop(rt_ctx *cx, const st_store_refs *s, rt_ref reply_to, uint64_t tag);

#endif /* ST_STORE_H */
