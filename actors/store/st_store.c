/*
 * st_store — the writer actor: group commit over one SQLite write connection.
 * The protocol and its guarantees are in st_store.h; the schema in st_schema.c.
 *
 * State (plain, touched only by the writer's own thread):
 *   in_txn     a transaction is open, and an ST_MSG_FLUSH sent when it began is queued
 *              behind its first write (unless commit_each), so it is committed at the latest
 *              when that FLUSH arrives; a FLUSH finding no transaction does nothing;
 *   pending    the acks of the writes done in it, in arrival order, sent after COMMIT; an
 *              exactly-once record (st_store.h rule 4) carries its own copy (rec) along;
 *   kept       records whose transaction failed for lack of space, oldest first: replayed
 *              by txn_begin at the head of the next transaction (so before any later write),
 *              or by the retry timer (retry_armed, backoff) when nothing else comes.
 *
 * Search index. The original's schema keeps messages_fts up to date with triggers on
 * messages, and every other connection (the original, the sqlite3 shell, our readers) keeps
 * them. This connection turns triggers off and writes the same index entries itself, in the
 * same transaction (append, truncate; session operations run with the triggers on): SQLite
 * 3.40 gives a statement whose trigger writes to a virtual table a statement savepoint, and
 * FTS5 flushes its pending terms into a new segment at every savepoint, so the trigger made
 * each message a segment of its own to write and merge — 2.5x the cost of the explicit
 * insert, the largest part of the writer's time under load.
 *
 * Even so every commit wrote a new index segment and its bookkeeping: about eleven pages of
 * WAL per commit, most of what the writer wrote at a few thousand turns a second, and the
 * checkpoints that followed stalled it (the capacity benchmark's p99). So above
 * ST_FTS_DEFER_RATE appends per FTS_WINDOW_MS an append records its id in hc_fts_pending
 * (same transaction, one small row) and the entries are written in one batch per
 * ST_FTS_BATCH_MS (or ST_FTS_BATCH_MAX) from there. The batch is written before anything that
 * deletes messages (truncate, session operations: FTS5 must delete what it indexed), before
 * a SYNC is acked and before the writer stops; a crash leaves the ids in hc_fts_pending,
 * indexed when the next writer opens the database.
 *
 * Merging. FTS5 keeps its index as segments and merges them as it writes ("automerge"): for
 * every 64 leaf pages written it merges 64 pages per level of the index, all at once, inside
 * whatever write crossed the line. Under load that made one batch in twenty stall the writer
 * for 25-40 ms of CPU, and every write queued behind it waited (the capacity benchmark's p99
 * at 10,000 users). So while the writer runs, the index's automerge is 0 and the writer
 * merges itself: after each commit that wrote index entries it sends itself
 * ST_MSG_FTS_MERGE, and each one merges up to ST_FTS_MERGE_STEP pages by the same rule as
 * automerge (a level of at least 'usermerge' segments), then sends the next behind the writes
 * queued meanwhile, until a step finds nothing to merge. Outside a transaction a step is one
 * statement in autocommit (not counted as a commit: it acks nothing); inside one it joins it.
 * The setting is persistent (messages_fts_config): the writer puts back what it found when
 * it stops (FTS5's default, 4, when it found none, or found 0, which a run that did not stop
 * cleanly leaves behind); meanwhile FTS5's crisis merge still bounds a level at 16 segments.
 */
#include "st_store.h"

#include "st_ckpt.h"
#include "st_read.h"
#include "st_titles.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

enum {
    S_INSERT_SESSION,
    S_END_SESSION,
    S_SET_PROMPT,
    S_ADD_TOKENS,
    S_INSERT_MESSAGE,
    S_FTS_INSERT,
    S_FTS_PEND,
    S_FTS_CATCH_UP,
    S_FTS_CLEAR,
    S_FTS_MERGE,
    S_BUMP,
    S_TRUNCATE_FTS,
    S_TRUNCATE,
    S_RECOUNT,
    S_INSERT_INBOUND,
    S_PRUNE_INBOUND,
    S_INBOX_PUT,
    S_INBOX_DELETE,
    S_INBOX_PRUNE,
    S_OUTBOX_PUT,
    S_OUTBOX_DELETE,
    S_OUTBOX_FAIL,
    S_OUTBOX_PRUNE,
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_COUNT
};

/* The original's statements (hermes_state.py), with explicit column lists so that columns a
 * later Hermes adds (with defaults) do not disturb them. */
static const char *const stmt_sql[S_COUNT] = {
    [S_INSERT_SESSION] = "INSERT INTO sessions (id, source, user_id, model, model_config, "
                         "system_prompt, parent_session_id, started_at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    [S_END_SESSION] = "UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ?",
    [S_SET_PROMPT] = "UPDATE sessions SET system_prompt = ? WHERE id = ?",
    [S_ADD_TOKENS] = "UPDATE sessions SET input_tokens = input_tokens + ?, "
                     "output_tokens = output_tokens + ? WHERE id = ?",
    [S_INSERT_MESSAGE] = "INSERT INTO messages (session_id, role, content, tool_call_id, "
                         "tool_calls, tool_name, timestamp, token_count, finish_reason) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [S_FTS_INSERT] = "INSERT INTO messages_fts(rowid, content) VALUES (?, ?)",
    [S_FTS_PEND] = "INSERT INTO hc_fts_pending (id) VALUES (?)",
    [S_FTS_CATCH_UP] = "INSERT INTO messages_fts(rowid, content) SELECT m.id, m.content FROM "
                       "hc_fts_pending p JOIN messages m ON m.id = p.id ORDER BY p.id",
    [S_FTS_CLEAR] = "DELETE FROM hc_fts_pending",
    [S_FTS_MERGE] = "INSERT INTO messages_fts(messages_fts, rank) VALUES ('merge', ?)",
    [S_BUMP] = "UPDATE sessions SET message_count = message_count + 1, "
               "tool_call_count = tool_call_count + ?2, input_tokens = input_tokens + ?3, "
               "output_tokens = output_tokens + ?4 WHERE id = ?1",
    [S_TRUNCATE_FTS] = "INSERT INTO messages_fts(messages_fts, rowid, content) SELECT 'delete', "
                       "id, content FROM messages WHERE session_id = ?1 AND id NOT IN (SELECT id "
                       "FROM messages WHERE session_id = ?1 ORDER BY timestamp, id LIMIT ?2)",
    [S_TRUNCATE] = "DELETE FROM messages WHERE session_id = ?1 AND id NOT IN (SELECT id FROM "
                   "messages WHERE session_id = ?1 ORDER BY timestamp, id LIMIT ?2)",
    [S_RECOUNT] = "UPDATE sessions SET message_count = (SELECT COUNT(*) FROM messages WHERE "
                  "session_id = ?1), tool_call_count = (SELECT COUNT(*) FROM messages WHERE "
                  "session_id = ?1 AND (role = 'tool' OR tool_calls IS NOT NULL)) WHERE id = ?1",
    [S_INSERT_INBOUND] = "INSERT OR IGNORE INTO hc_inbound (platform, message_id, session_key, "
                         "received_at) VALUES (?, ?, ?, ?)",
    [S_PRUNE_INBOUND] = "DELETE FROM hc_inbound WHERE received_at < ?",
    [S_INBOX_PUT] = "INSERT INTO hc_inbox (platform, message_id, session_key, event_json, "
                    "received_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (platform, message_id) "
                    "DO UPDATE SET event_json = excluded.event_json",
    [S_INBOX_DELETE] = "DELETE FROM hc_inbox WHERE platform = ? AND message_id = ?",
    [S_INBOX_PRUNE] = "DELETE FROM hc_inbox WHERE received_at < ?",
    [S_OUTBOX_PUT] = "INSERT INTO hc_outbox (platform, chat_id, thread_id, reply_to, text, kind, "
                     "part, parts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [S_OUTBOX_DELETE] = "DELETE FROM hc_outbox WHERE id = ?",
    [S_OUTBOX_FAIL] = "UPDATE hc_outbox SET state = 'failed', attempts = ?, last_error = ? "
                      "WHERE id = ?",
    [S_OUTBOX_PRUNE] = "DELETE FROM hc_outbox WHERE state = 'failed' AND created_at < ?",
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
};

/* An ack waiting for its transaction to commit. */
struct st_pending {
    st_msg_ack *a;
    rt_ref to;   /* the requester's reply_to; 0: log errors, send nothing */
    rt_msg *rec; /* an exactly-once record's own copy (kept if the disk refuses it), or NULL */
};

#define TAG_RECORD_RETRY 1   /* rt_msg_timeout.tag of the kept records' retry timer */
#define TAG_FTS_BATCH    2   /* rt_msg_timeout.tag of the search index batch's timer */
#define FTS_WINDOW_MS    100 /* the append rate is counted over windows this long */
#define FTS_AUTOMERGE    4   /* FTS5's default 'automerge', put back when none was found */

typedef struct st_writer {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT]; /* prepared once (SQLITE_PREPARE_PERSISTENT) */
    bool commit_each;            /* one transaction per write (the original's way) */
    bool in_txn;                 /* see the file header */
    bool must_abort;             /* a write half-done: the transaction must not commit */
    struct st_pending *pending;  /* acks waiting for COMMIT, in arrival order */
    size_t npending, cap;
    double last_ts;        /* newest message timestamp stored: timestamps never go back */
    int64_t page_size;     /* bytes, for the quota */
    int64_t default_pages; /* PRAGMA max_page_count at open */
    uint64_t commits;      /* counters reported by ST_MSG_STATS */
    uint64_t commit_hooks;
    uint64_t rollbacks;
    uint64_t writes;
    uint64_t write_errors;
    uint64_t max_batch;
    uint64_t inbound_n; /* ST_MSG_INBOUND writes, for pruning */
    /* exactly-once records waiting for space (st_store.h rule 4) */
    rt_msg **kept; /* oldest first */
    size_t nkept, kept_cap;
    int64_t kept_max_ms; /* record_retry_max_ms; < 0: keep none */
    st_backoff backoff;  /* of the kept records, since the first failure */
    bool retry_armed;    /* a TAG_RECORD_RETRY timer is on its way */
    uint64_t given_up;
    char *reserve; /* the space reserve's path (st_store.h rule 4) while it is held, or NULL */
    /* checkpoints (st_ckpt.h): the WAL's size after the last commit, and the actor that
     * folds it into the database off this thread (0: this thread does, like SQLite) */
    int wal_pages;
    rt_ref ckpt;
    bool ckpt_busy;      /* one asked for and not done yet */
    bool ckpt_tail_due;  /* it is done: copy the tail after the next commit */
    uint64_t ckpt_tails; /* tails copied here */
    /* search index (file header): appends counted in the current window, whether the
     * append being applied defers its entry, how many wait in hc_fts_pending, a batch's
     * timer on its way */
    int64_t fts_window_ms;
    int fts_window_n;
    bool fts_defer;
    uint64_t fts_waiting;
    bool fts_timer;
    bool fts_in_txn; /* a batch was written in the open transaction: waiting again if it
                        rolls back (fts_rolled_back) */
    uint64_t fts_batches;
    /* merging (file header): index entries written since the last step that found nothing,
     * a step on its way, a step running outside a transaction (the commit hook does not count
     * it), the automerge to put back at the end (0: it was not changed) */
    bool merge_due;
    bool merge_queued;
    bool merging;
    int automerge_saved;
    uint64_t fts_merges;
} st_writer;

/* ================================================================ constructors */

static void create_session_drop(rt_msg *m)
{
    st_msg_create_session *c = (st_msg_create_session *)m;
    rt_free(c->id);
    rt_free(c->source);
    rt_free(c->user_id);
    rt_free(c->model);
    rt_free(c->model_config);
    rt_free(c->system_prompt);
    rt_free(c->parent_session_id);
}

st_msg_create_session *st_create_session_new(const char *id, const char *source)
{
    st_msg_create_session *m = RT_MSG_NEW(st_msg_create_session, ST_MSG_CREATE_SESSION);
    m->hdr.drop = create_session_drop;
    m->id = rt_xstrdup(id);
    m->source = rt_xstrdup(source);
    return m;
}

static void end_session_drop(rt_msg *m)
{
    st_msg_end_session *e = (st_msg_end_session *)m;
    rt_free(e->id);
    rt_free(e->reason);
}

st_msg_end_session *st_end_session_new(const char *id, const char *reason)
{
    st_msg_end_session *m = RT_MSG_NEW(st_msg_end_session, ST_MSG_END_SESSION);
    m->hdr.drop = end_session_drop;
    m->id = rt_xstrdup(id);
    m->reason = rt_xstrdup(reason);
    return m;
}

static void inbound_drop(rt_msg *m)
{
    st_msg_inbound *i = (st_msg_inbound *)m;
    rt_free(i->platform);
    rt_free(i->message_id);
    rt_free(i->session_key);
    rt_free(i->event_json);
}

st_msg_inbound *st_inbound_new(const char *platform, const char *message_id,
                               const char *session_key)
{
    st_msg_inbound *m = RT_MSG_NEW(st_msg_inbound, ST_MSG_INBOUND);
    m->hdr.drop = inbound_drop;
    m->platform = platform ? rt_xstrdup(platform) : NULL;
    m->message_id = message_id ? rt_xstrdup(message_id) : NULL;
    m->session_key = session_key ? rt_xstrdup(session_key) : NULL;
    m->received_at = st_now_epoch();
    return m;
}

st_msg_inbound *st_inbox_done_new(const char *platform, const char *message_id)
{
    st_msg_inbound *m = st_inbound_new(platform, message_id, NULL);
    m->hdr.type = ST_MSG_INBOX_DONE;
    return m;
}

static void outbox_drop(rt_msg *m)
{
    st_msg_outbox *o = (st_msg_outbox *)m;
    rt_free(o->platform);
    rt_free(o->chat_id);
    rt_free(o->thread_id);
    rt_free(o->reply_to);
    rt_free(o->text);
    rt_free(o->error);
}

st_msg_outbox *st_outbox_new(uint32_t type)
{
    st_msg_outbox *m = RT_MSG_NEW(st_msg_outbox, type);
    m->hdr.drop = outbox_drop;
    return m;
}

static void set_prompt_drop(rt_msg *m)
{
    st_msg_set_prompt *p = (st_msg_set_prompt *)m;
    rt_free(p->id);
    rt_free(p->system_prompt);
}

st_msg_set_prompt *st_set_prompt_new(const char *id, const char *system_prompt)
{
    st_msg_set_prompt *m = RT_MSG_NEW(st_msg_set_prompt, ST_MSG_SET_PROMPT);
    m->hdr.drop = set_prompt_drop;
    m->id = rt_xstrdup(id);
    m->system_prompt = rt_xstrdup(system_prompt);
    return m;
}

static void truncate_drop(rt_msg *m)
{
    rt_free(((st_msg_truncate *)m)->id);
}

st_msg_truncate *st_truncate_new(const char *id, int64_t keep)
{
    st_msg_truncate *m = RT_MSG_NEW(st_msg_truncate, ST_MSG_TRUNCATE);
    m->hdr.drop = truncate_drop;
    m->id = rt_xstrdup(id);
    m->keep = keep;
    return m;
}

static void add_tokens_drop(rt_msg *m)
{
    rt_free(((st_msg_add_tokens *)m)->id);
}

st_msg_add_tokens *st_add_tokens_new(const char *id, int64_t input_tokens, int64_t output_tokens)
{
    st_msg_add_tokens *m = RT_MSG_NEW(st_msg_add_tokens, ST_MSG_ADD_TOKENS);
    m->hdr.drop = add_tokens_drop;
    m->id = rt_xstrdup(id);
    m->input_tokens = input_tokens;
    m->output_tokens = output_tokens;
    return m;
}

static void append_drop(rt_msg *m)
{
    st_msg_append *a = (st_msg_append *)m;
    rt_free(a->session_id);
    rt_free(a->role);
    rt_free(a->content);
    rt_free(a->tool_call_id);
    rt_free(a->tool_calls);
    rt_free(a->tool_name);
    rt_free(a->finish_reason);
}

st_msg_append *st_append_new(const char *session_id, const char *role, const char *content)
{
    st_msg_append *m = RT_MSG_NEW(st_msg_append, ST_MSG_APPEND);
    m->hdr.drop = append_drop;
    m->session_id = rt_xstrdup(session_id);
    m->role = rt_xstrdup(role);
    m->content = rt_xstrdup(content);
    return m;
}

st_msg_ctl *st_ctl_new(uint32_t type, rt_ref reply_to, uint64_t tag)
{
    st_msg_ctl *m = RT_MSG_NEW(st_msg_ctl, type);
    m->req.reply_to = reply_to;
    m->req.tag = tag;
    return m;
}

st_msg_set_quota *st_set_quota_new(int64_t max_bytes)
{
    st_msg_set_quota *m = RT_MSG_NEW(st_msg_set_quota, ST_MSG_SET_QUOTA);
    m->max_bytes = max_bytes;
    return m;
}

/* ====================================================================== acks */

/* Every request struct starts with hdr then req (st_store.h). */
static const st_req *req_of(const rt_msg *m)
{
    return &((const st_msg_ctl *)(const void *)m)->req;
}

static st_msg_ack *ack_new(const rt_msg *m)
{
    const st_req *r = req_of(m);
    st_msg_ack *a = RT_MSG_NEW(st_msg_ack, ST_MSG_ACK);
    a->tag = r->tag;
    a->op = m->type;
    return a;
}

static void ack_fail(st_msg_ack *a, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ack_fail(st_msg_ack *a, int err, const char *fmt, ...)
{
    va_list ap;
    a->err = err;
    va_start(ap, fmt);
    vsnprintf(a->errmsg, sizeof(a->errmsg), fmt, ap);
    va_end(ap);
}

static void ack_fail_sqlite(st_writer *w, st_msg_ack *a, int rc, const char *what)
{
    a->err = st_errno_from_sqlite(rc);
    st_errmsg_format(a->errmsg, sizeof(a->errmsg), w->db, rc, what);
}

static bool is_write(uint32_t op)
{
    return (op >= ST_MSG_CREATE_SESSION && op <= ST_MSG_APPEND) || op == ST_MSG_TRUNCATE;
}

/* Send an ack to `to` (with to == 0: log an error, send nothing); commit is the number of
 * the transaction that made the write durable. */
static void ack_send(st_writer *w, rt_ctx *cx, st_msg_ack *a, rt_ref to, uint64_t commit)
{
    a->commit = a->err ? 0 : commit;
    if (a->err && is_write(a->op)) {
        w->write_errors++;
        RT_LOG_LIMITED(RT_LOG_WARN, "store", 1000, "write failed op=%u err=%d: %s", a->op & 0xffffu,
                       a->err, a->errmsg);
    }
    if (to)
        rt_send(cx, to, &a->hdr); /* false: the requester ended; the ack is freed */
    else
        rt_msg_free(&a->hdr);
}

static void pending_push(st_writer *w, st_msg_ack *a, rt_ref to, rt_msg *rec)
{
    if (w->npending == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        w->pending = rt_xrealloc(w->pending, w->cap * sizeof(*w->pending));
    }
    w->pending[w->npending++] = (struct st_pending){a, to, rec};
}

/* ================================================= exactly-once records (rule 4) */

bool st_retryable(int err)
{
    return err == -ENOSPC || err == -EIO;
}

int64_t st_backoff_next(st_backoff *b, int64_t now_ms, int64_t max_ms)
{
    if (b->delay_ms <= 0) { /* the first failure */
        b->since_ms = now_ms;
        b->delay_ms = ST_RETRY_FIRST_MS;
    }
    int64_t waited = now_ms - b->since_ms;
    if (waited >= max_ms)
        return -1;
    int64_t delay = b->delay_ms;
    if (delay > max_ms - waited)
        delay = max_ms - waited; /* the last attempt at the deadline */
    b->delay_ms = b->delay_ms > ST_RETRY_CAP_MS / 2 ? ST_RETRY_CAP_MS : b->delay_ms * 2;
    return delay;
}

static int64_t mono_ms(rt_ctx *cx)
{
    return rt_now_ns(rt_ctx_runtime(cx)) / 1000000;
}

/* A write the writer keeps if the disk refuses it: one nobody waits an ack for. */
static bool is_record(const st_writer *w, const rt_msg *m)
{
    return w->kept_max_ms >= 0 &&
           (m->type == ST_MSG_INBOUND || m->type == ST_MSG_INBOX_DONE ||
            m->type == ST_MSG_OUTBOX_END) &&
           !req_of(m)->reply_to;
}

/* The writer's own copy of record m (borrowed): m's strings move over. */
static rt_msg *record_take(rt_msg *m)
{
    if (m->type == ST_MSG_OUTBOX_END) {
        st_msg_outbox *o = (st_msg_outbox *)m, *c = st_outbox_new(ST_MSG_OUTBOX_END);
        c->row = o->row;
        c->attempts = o->attempts;
        c->error = o->error;
        o->error = NULL;
        return &c->hdr;
    }
    st_msg_inbound *i = (st_msg_inbound *)m, *c = st_inbound_new(NULL, NULL, NULL);
    c->hdr.type = m->type;
    c->platform = i->platform;
    c->message_id = i->message_id;
    c->session_key = i->session_key;
    c->event_json = i->event_json;
    i->platform = i->message_id = i->session_key = i->event_json = NULL;
    c->received_at = i->received_at;
    return &c->hdr;
}

static void kept_push(st_writer *w, rt_msg *rec)
{
    if (w->nkept == ST_KEPT_MAX) { /* the oldest goes: memory stays bounded */
        rt_msg_free(w->kept[0]);
        memmove(w->kept, w->kept + 1, (w->nkept - 1) * sizeof(*w->kept));
        w->nkept--;
        w->given_up++;
        RT_LOG_LIMITED(RT_LOG_ERROR, "store", 10000,
                       "state.db: more than %d exactly-once records wait for disk space: the "
                       "oldest are given up",
                       ST_KEPT_MAX);
    }
    if (w->nkept == w->kept_cap) {
        w->kept_cap = w->kept_cap ? w->kept_cap * 2 : 16;
        w->kept = rt_xrealloc(w->kept, w->kept_cap * sizeof(*w->kept));
    }
    w->kept[w->nkept++] = rec;
}

/* What the kept records are, for the log: keys (with their journal rows), journal clears,
 * outbox marks. */
static void kept_counts(const st_writer *w, size_t n[3])
{
    n[0] = n[1] = n[2] = 0;
    for (size_t i = 0; i < w->nkept; i++)
        n[w->kept[i]->type == ST_MSG_INBOUND ? 0 : w->kept[i]->type == ST_MSG_INBOX_DONE ? 1 : 2]++;
}

static void kept_drop_all(st_writer *w)
{
    for (size_t i = 0; i < w->nkept; i++)
        rt_msg_free(w->kept[i]);
    w->given_up += w->nkept;
    w->nkept = 0;
}

/* The end of one write: the ack goes out; a record is freed once committed, kept when the
 * disk refused it, and dropped (logged) for any other error. */
static void settle(st_writer *w, rt_ctx *cx, st_msg_ack *a, rt_ref to, rt_msg *rec, uint64_t commit)
{
    int err = a->err;
    if (rec && err && !st_retryable(err))
        RT_LOG_LIMITED(RT_LOG_WARN, "store", 1000, "an exactly-once record was refused: %s",
                       a->errmsg);
    ack_send(w, cx, a, to, commit);
    if (rec && err && st_retryable(err))
        kept_push(w, rec);
    else if (rec)
        rt_msg_free(rec);
}

/* ============================================================== transactions */

static int step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    (void)sqlite3_reset(st); /* repeats rc, already taken */
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int apply(st_writer *w, rt_msg *m, st_msg_ack *a);
static bool is_fatal(st_writer *w, int rc);
static void txn_abort(st_writer *w, rt_ctx *cx, st_msg_ack *cause, rt_ref cause_to,
                      rt_msg *cause_rec);

/* A transaction that wrote a search batch ended: rolled back, its ids wait in
 * hc_fts_pending again (a truncate must not delete entries that are not there). */
static void fts_txn_ended(st_writer *w, bool committed)
{
    if (w->fts_in_txn && !committed && !w->fts_waiting)
        w->fts_waiting = 1; /* at least: the batch's query takes every row there is */
    w->fts_in_txn = false;
}

/* Rule 4: the kept records go first in a transaction that just began, ahead of the write
 * that began it (a). On a disk error the transaction is rolled back, the records are kept
 * again, and a gets the error. */
static int replay_kept(st_writer *w, rt_ctx *cx, st_msg_ack *a)
{
    size_t n = w->nkept;
    if (!n)
        return SQLITE_OK;
    rt_msg **v = w->kept;
    w->kept = NULL;
    w->nkept = w->kept_cap = 0;
    int rc = SQLITE_OK;
    size_t i = 0;
    for (; i < n; i++) {
        st_msg_ack *ra = ack_new(v[i]);
        rc = apply(w, v[i], ra);
        if (rc != SQLITE_OK && (is_fatal(w, rc) || w->must_abort)) {
            w->must_abort = false;
            ack_fail(a, ra->err ? ra->err : -EIO, "rolled back with its transaction: %s",
                     ra->errmsg);
            txn_abort(w, cx, ra, 0, v[i]); /* the earlier ones are kept again, then v[i] */
            break;
        }
        pending_push(w, ra, 0, v[i]);
    }
    for (size_t j = i + 1; j < n; j++) /* not tried: kept, in order */
        kept_push(w, v[j]);
    rt_free(v);
    return i < n ? (rc != SQLITE_OK ? rc : SQLITE_IOERR) : SQLITE_OK;
}

/* Index entries were committed: the next merge step, unless one is on its way. */
static void merge_kick(st_writer *w, rt_ctx *cx)
{
    if (!w->merge_due || w->merge_queued)
        return;
    w->merge_queued = rt_send(cx, rt_self(cx), rt_msg_new(ST_MSG_FTS_MERGE, sizeof(rt_msg)));
}

static int txn_begin(st_writer *w, rt_ctx *cx, st_msg_ack *a)
{
    if (w->in_txn)
        return SQLITE_OK;
    /* A transaction we think is closed but SQLite kept open (a failed ROLLBACK after a failed
     * COMMIT) would make every BEGIN fail from now on: end it first. */
    if (!sqlite3_get_autocommit(w->db))
        (void)step_reset(w->stmt[S_ROLLBACK]); /* BEGIN below reports what still fails */
    int rc = step_reset(w->stmt[S_BEGIN]);
    if (rc != SQLITE_OK) {
        ack_fail_sqlite(w, a, rc, "cannot start a transaction on state.db");
        return rc;
    }
    w->in_txn = true;
    if (!w->commit_each) /* lands behind the writes already queued: they share the txn */
        rt_send(cx, rt_self(cx), rt_msg_new(ST_MSG_FLUSH, sizeof(rt_msg)));
    return replay_kept(w, cx, a);
}

/* PASSIVE copies what it can without waiting; FULL (a flood outran the checkpointer) waits
 * for it, up to the busy timeout, and copies everything: the log cannot grow without end. */
static void checkpoint_here(st_writer *w, int mode)
{
    int rc = sqlite3_wal_checkpoint_v2(w->db, NULL, mode, NULL, NULL);
    /* Only one connection checkpoints at a time, and SQLite does not wait for that lock: in
     * a flood, wait here for the checkpointer's run to end (this is the writer's own thread;
     * writing on would only grow the log), at most ST_CKPT_WAIT_MS. */
    for (int i = 0; rc == SQLITE_BUSY && mode == SQLITE_CHECKPOINT_FULL && i < ST_CKPT_WAIT_MS;
         i++) {
        const struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
        rc = sqlite3_wal_checkpoint_v2(w->db, NULL, mode, NULL, NULL);
    }
    if (rc != SQLITE_OK)
        RT_LOG_LIMITED(RT_LOG_WARN, "store", 60000, "state.db checkpoint: %s",
                       sqlite3_errmsg(w->db));
}

/*
 * After a commit (st_ckpt.h). A WAL past ST_CKPT_PAGES goes to the checkpointer, one request
 * at a time. It copies the log as it was when it started; what was appended meanwhile is
 * copied here afterwards (a short tail), so that the next transaction starts the log over —
 * under a steady stream of commits it would otherwise never be complete at a transaction's
 * start and would grow without end. Past ST_CKPT_INLINE_PAGES, or without a checkpointer,
 * this thread checkpoints as SQLite's automatic checkpoint did.
 */
static void maybe_checkpoint(st_writer *w, rt_ctx *cx)
{
    if (w->ckpt_tail_due) {
        w->ckpt_tail_due = false;
        w->ckpt_tails++;
        checkpoint_here(w, SQLITE_CHECKPOINT_PASSIVE);
        return;
    }
    if (w->wal_pages < ST_CKPT_PAGES)
        return;
    if (w->ckpt_busy) { /* it falls behind a flood of commits: bound the log here */
        if (w->wal_pages >= ST_CKPT_INLINE_PAGES)
            checkpoint_here(w, SQLITE_CHECKPOINT_FULL);
        return;
    }
    if (w->ckpt && w->wal_pages < ST_CKPT_INLINE_PAGES) {
        st_msg_ckpt *q = RT_MSG_NEW(st_msg_ckpt, ST_MSG_CKPT);
        q->reply_to = rt_self(cx);
        w->ckpt_busy = rt_send(cx, w->ckpt, &q->hdr);
        if (w->ckpt_busy)
            return;
        w->ckpt = 0; /* gone: from now on, here */
    }
    checkpoint_here(w, w->wal_pages >= ST_CKPT_INLINE_PAGES ? SQLITE_CHECKPOINT_FULL
                                                            : SQLITE_CHECKPOINT_PASSIVE);
}

static void on_ckpt_done(st_writer *w, rt_ctx *cx)
{
    w->ckpt_busy = false;
    w->ckpt_tail_due = true;
    if (!w->in_txn)
        maybe_checkpoint(w, cx); /* else after the open transaction's commit */
}

/* Commit, then send the acks (rule 1: an ack means committed). */
static void txn_commit(st_writer *w, rt_ctx *cx)
{
    if (!w->in_txn)
        return;
    int rc = step_reset(w->stmt[S_COMMIT]);
    char why[ST_ERRMSG_MAX] = "";
    int err = 0;
    if (rc == SQLITE_OK) {
        w->commits++;
    } else {
        err = st_errno_from_sqlite(rc);
        st_errmsg_format(why, sizeof(why), w->db, rc, "commit failed, the batch was rolled back");
        if (!sqlite3_get_autocommit(w->db))
            (void)step_reset(w->stmt[S_ROLLBACK]); /* the COMMIT error is what we report */
        w->rollbacks++;
    }
    w->in_txn = false;
    fts_txn_ended(w, err == 0);
    if (w->npending > w->max_batch)
        w->max_batch = w->npending;
    bool had_records = false;
    for (size_t i = 0; i < w->npending; i++) {
        st_msg_ack *a = w->pending[i].a;
        if (err && !a->err) {
            a->err = err;
            rt_strlcpy(a->errmsg, why, sizeof(a->errmsg));
        }
        had_records |= w->pending[i].rec != NULL;
        settle(w, cx, a, w->pending[i].to, w->pending[i].rec, w->commits);
    }
    w->npending = 0;
    if (!err && had_records && !w->nkept && w->backoff.delay_ms) {
        RT_INFO("store", "state.db has room again: the exactly-once records kept meanwhile "
                         "are saved");
        st_backoff_reset(&w->backoff);
    }
    if (!err)
        maybe_checkpoint(w, cx);
    if (!err)
        merge_kick(w, cx);
}

/* A disk-level error (rule 3): roll back everything and fail every write of the txn. */
static bool is_fatal(st_writer *w, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_NOMEM:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN: return true;
    default: return sqlite3_get_autocommit(w->db) != 0; /* SQLite ended the txn itself */
    }
}

static void txn_abort(st_writer *w, rt_ctx *cx, st_msg_ack *cause, rt_ref cause_to,
                      rt_msg *cause_rec)
{
    if (!sqlite3_get_autocommit(w->db))
        (void)step_reset(w->stmt[S_ROLLBACK]); /* cause holds the error we report */
    w->in_txn = false;
    fts_txn_ended(w, false);
    w->rollbacks++;
    for (size_t i = 0; i < w->npending; i++) {
        st_msg_ack *a = w->pending[i].a;
        if (!a->err)
            ack_fail(a, cause->err, "rolled back with its transaction: %s", cause->errmsg);
        settle(w, cx, a, w->pending[i].to, w->pending[i].rec, 0);
    }
    w->npending = 0;
    settle(w, cx, cause, cause_to, cause_rec, 0);
}

/* ==================================================================== writes */

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC); /* the message outlives the step */
    else
        sqlite3_bind_null(st, i);
}

/* JSON text from a caller: 1 store it, 0 Python-falsy (store NULL), -1 not JSON. */
static int json_check(const char *s)
{
    cJSON *j = cJSON_ParseWithOpts(s, NULL, true);
    if (!j)
        return -1;
    bool falsy = cJSON_IsNull(j) || cJSON_IsFalse(j) ||
                 ((cJSON_IsArray(j) || cJSON_IsObject(j)) && !j->child) ||
                 (cJSON_IsString(j) && !*j->valuestring) ||
                 (cJSON_IsNumber(j) && j->valuedouble == 0);
    cJSON_Delete(j);
    return falsy ? 0 : 1;
}

static int create_session(st_writer *w, st_msg_create_session *m, st_msg_ack *a)
{
    sqlite3_stmt *st = w->stmt[S_INSERT_SESSION];
    bind_text(st, 1, m->id);
    bind_text(st, 2, m->source);
    bind_text(st, 3, m->user_id);
    bind_text(st, 4, m->model);
    bind_text(st, 5, m->model_config && json_check(m->model_config) > 0 ? m->model_config : NULL);
    bind_text(st, 6, m->system_prompt);
    bind_text(st, 7, m->parent_session_id);
    sqlite3_bind_double(st, 8, st_now_epoch());
    int rc = step_reset(st);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
        ack_fail(a, -ENOENT, "create session '%.64s': unknown parent session '%.64s'", m->id,
                 m->parent_session_id ? m->parent_session_id : "");
    } else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
        ack_fail(a, -EEXIST, "create session '%.64s': a session with this id exists", m->id);
    } else if (rc != SQLITE_OK) {
        ack_fail_sqlite(w, a, rc, "create session");
    }
    return rc;
}

/* UPDATE ... WHERE id = ?: no row is -ENOENT (the original ignores it silently). */
static int update_session(st_writer *w, sqlite3_stmt *st, const char *id, st_msg_ack *a,
                          const char *what)
{
    int rc = step_reset(st);
    if (rc != SQLITE_OK)
        ack_fail_sqlite(w, a, rc, what);
    else if (sqlite3_changes(w->db) == 0)
        ack_fail(a, -ENOENT, "%s: unknown session '%.64s'", what, id);
    return rc;
}

static int end_session(st_writer *w, st_msg_end_session *m, st_msg_ack *a)
{
    sqlite3_stmt *st = w->stmt[S_END_SESSION];
    sqlite3_bind_double(st, 1, st_now_epoch());
    bind_text(st, 2, m->reason);
    bind_text(st, 3, m->id);
    return update_session(w, st, m->id, a, "end session");
}

/* One accepted update; every 1024th also deletes the rows past ST_INBOUND_KEEP_S. */
static int inbound(st_writer *w, st_msg_inbound *m, st_msg_ack *a)
{
    sqlite3_stmt *st = w->stmt[S_INSERT_INBOUND];
    bind_text(st, 1, m->platform);
    bind_text(st, 2, m->message_id);
    bind_text(st, 3, m->session_key);
    sqlite3_bind_double(st, 4, m->received_at);
    int rc = step_reset(st);
    if (rc != SQLITE_OK) {
        ack_fail_sqlite(w, a, rc, "record an inbound update");
        return rc;
    }
    if (m->event_json) {
        st = w->stmt[S_INBOX_PUT];
        bind_text(st, 1, m->platform);
        bind_text(st, 2, m->message_id);
        bind_text(st, 3, m->session_key);
        bind_text(st, 4, m->event_json);
        sqlite3_bind_double(st, 5, m->received_at);
        rc = step_reset(st);
        if (rc != SQLITE_OK) {
            ack_fail_sqlite(w, a, rc, "journal an inbound update");
            return rc;
        }
    }
    if ((++w->inbound_n & 1023) == 1) {
        const int prune[] = {S_PRUNE_INBOUND, S_INBOX_PRUNE};
        for (size_t i = 0; i < RT_ARRAY_LEN(prune); i++) {
            st = w->stmt[prune[i]];
            sqlite3_bind_double(st, 1, m->received_at - ST_INBOUND_KEEP_S);
            rc = step_reset(st);
            if (rc != SQLITE_OK) {
                ack_fail_sqlite(w, a, rc, "prune old inbound updates");
                return rc;
            }
        }
    }
    return SQLITE_OK;
}

/* The conversation has the update's message: its journal row goes. */
static int inbox_done(st_writer *w, st_msg_inbound *m, st_msg_ack *a)
{
    sqlite3_stmt *st = w->stmt[S_INBOX_DELETE];
    bind_text(st, 1, m->platform);
    bind_text(st, 2, m->message_id);
    int rc = step_reset(st);
    if (rc != SQLITE_OK)
        ack_fail_sqlite(w, a, rc, "clear an inbox journal row");
    return rc;
}

static int outbox_put(st_writer *w, st_msg_outbox *m, st_msg_ack *a)
{
    sqlite3_stmt *st = w->stmt[S_OUTBOX_PUT];
    bind_text(st, 1, m->platform);
    bind_text(st, 2, m->chat_id);
    bind_text(st, 3, m->thread_id);
    bind_text(st, 4, m->reply_to);
    bind_text(st, 5, m->text);
    sqlite3_bind_int(st, 6, m->kind);
    sqlite3_bind_int(st, 7, m->part);
    sqlite3_bind_int(st, 8, m->parts);
    sqlite3_bind_double(st, 9, st_now_epoch());
    int rc = step_reset(st);
    if (rc != SQLITE_OK) {
        ack_fail_sqlite(w, a, rc, "write a reply to the outbox");
        return rc;
    }
    a->id = sqlite3_last_insert_rowid(w->db);
    return SQLITE_OK;
}

static int outbox_end(st_writer *w, st_msg_outbox *m, st_msg_ack *a)
{
    sqlite3_stmt *st;
    if (!m->error) {
        st = w->stmt[S_OUTBOX_DELETE];
        sqlite3_bind_int64(st, 1, m->row);
    } else {
        st = w->stmt[S_OUTBOX_FAIL];
        sqlite3_bind_int(st, 1, m->attempts);
        bind_text(st, 2, m->error);
        sqlite3_bind_int64(st, 3, m->row);
    }
    int rc = step_reset(st);
    if (rc == SQLITE_OK && m->error) {
        st = w->stmt[S_OUTBOX_PRUNE];
        sqlite3_bind_double(st, 1, st_now_epoch() - ST_INBOUND_KEEP_S);
        rc = step_reset(st);
    }
    if (rc != SQLITE_OK)
        ack_fail_sqlite(w, a, rc, "update the outbox");
    return rc;
}

static int set_prompt(st_writer *w, st_msg_set_prompt *m, st_msg_ack *a)
{
    sqlite3_stmt *st = w->stmt[S_SET_PROMPT];
    bind_text(st, 1, m->system_prompt);
    bind_text(st, 2, m->id);
    return update_session(w, st, m->id, a, "update system prompt");
}

/* The waiting messages' search entries, in the open transaction. */
static int fts_index_waiting(st_writer *w)
{
    if (!w->fts_waiting)
        return SQLITE_OK;
    int rc = step_reset(w->stmt[S_FTS_CATCH_UP]);
    if (rc == SQLITE_OK)
        rc = step_reset(w->stmt[S_FTS_CLEAR]);
    if (rc == SQLITE_OK) {
        w->fts_waiting = 0;
        w->fts_in_txn = true;
        w->fts_batches++;
        w->merge_due = true;
    }
    return rc;
}

/* Delete, then recount; the recount's UPDATE names an unknown session (-ENOENT). */
static int truncate_messages(st_writer *w, st_msg_truncate *m, st_msg_ack *a)
{
    int rc = fts_index_waiting(w); /* FTS5 deletes only what it indexed */
    for (int s = S_TRUNCATE_FTS; s <= S_TRUNCATE && rc == SQLITE_OK; s++) {
        sqlite3_stmt *st = w->stmt[s]; /* the index entries first, while the rows are there */
        bind_text(st, 1, m->id);
        sqlite3_bind_int64(st, 2, m->keep);
        rc = step_reset(st);
    }
    if (rc != SQLITE_OK) {
        ack_fail_sqlite(w, a, rc, "truncate messages");
        w->must_abort = true; /* perhaps the index entries went but the rows did not */
        return rc;
    }
    a->id = sqlite3_changes(w->db);
    w->merge_due |= a->id > 0; /* the index's deletions are entries too */
    sqlite3_stmt *st = w->stmt[S_RECOUNT];
    bind_text(st, 1, m->id);
    rc = update_session(w, st, m->id, a, "truncate messages");
    if (rc != SQLITE_OK && a->id > 0)
        w->must_abort = true; /* rows gone but counters stale: commit neither */
    return rc;
}

static int add_tokens(st_writer *w, st_msg_add_tokens *m, st_msg_ack *a)
{
    sqlite3_stmt *st = w->stmt[S_ADD_TOKENS];
    sqlite3_bind_int64(st, 1, m->input_tokens);
    sqlite3_bind_int64(st, 2, m->output_tokens);
    bind_text(st, 3, m->id);
    return update_session(w, st, m->id, a, "update token counts");
}

/* One INSERT, then the counters, as the original's append_message (exactly once). */
static int append(st_writer *w, st_msg_append *m, st_msg_ack *a)
{
    sqlite3_stmt *st = w->stmt[S_INSERT_MESSAGE];
    double now = st_now_epoch();
    if (now < w->last_ts) /* the wall clock stepped back: keep ORDER BY timestamp, id true */
        now = w->last_ts;
    bind_text(st, 1, m->session_id);
    bind_text(st, 2, m->role);
    bind_text(st, 3, m->content);
    bind_text(st, 4, m->tool_call_id);
    bind_text(st, 5, m->tool_calls && json_check(m->tool_calls) > 0 ? m->tool_calls : NULL);
    bind_text(st, 6, m->tool_name);
    sqlite3_bind_double(st, 7, now);
    if (m->has_token_count)
        sqlite3_bind_int64(st, 8, m->token_count);
    else
        sqlite3_bind_null(st, 8);
    bind_text(st, 9, m->finish_reason);
    int rc = step_reset(st);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
        ack_fail(a, -ENOENT, "append message: unknown session '%.64s' (FOREIGN KEY constraint)",
                 m->session_id);
        return rc;
    }
    if (rc != SQLITE_OK) {
        ack_fail_sqlite(w, a, rc, "append message");
        return rc;
    }
    a->id = sqlite3_last_insert_rowid(w->db);
    w->last_ts = now;
    /* what the trigger would have done, or the id for the next batch (file header) */
    sqlite3_stmt *fts = w->stmt[w->fts_defer ? S_FTS_PEND : S_FTS_INSERT];
    sqlite3_bind_int64(fts, 1, a->id);
    if (!w->fts_defer)
        bind_text(fts, 2, m->content);
    rc = step_reset(fts);
    if (rc == SQLITE_OK && !w->fts_defer)
        w->merge_due = true;
    if (rc == SQLITE_OK && w->fts_defer && ++w->fts_waiting >= ST_FTS_BATCH_MAX)
        rc = fts_index_waiting(w);
    if (rc != SQLITE_OK) {
        ack_fail_sqlite(w, a, rc, "append message: indexing it for search");
        w->must_abort = true;
        return rc;
    }
    bool tool = strcmp(m->role, "tool") == 0 || m->tool_calls != NULL;
    sqlite3_stmt *bump = w->stmt[S_BUMP];
    bind_text(bump, 1, m->session_id);
    sqlite3_bind_int(bump, 2, tool);
    sqlite3_bind_int64(bump, 3, m->input_tokens);
    sqlite3_bind_int64(bump, 4, m->output_tokens);
    rc = step_reset(bump);
    if (rc != SQLITE_OK) {
        /* The row is in but its counters are not: commit neither (exactly once, rule 2). */
        ack_fail_sqlite(w, a, rc, "append message: updating the session counters");
        w->must_abort = true;
    }
    return rc;
}

/* Checks that need no database: required fields, sizes, JSON. 0 or -errno with a filled. */
static int require(st_msg_ack *a, const char *what, const char *field, const char *v)
{
    if (v && *v)
        return 0;
    ack_fail(a, -EINVAL, "%s: %s is required", what, field);
    return -EINVAL;
}

static int check_texts(st_msg_ack *a, const char *what, const char *const *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i] && strnlen(t[i], ST_TEXT_MAX + 1) > ST_TEXT_MAX) {
            ack_fail(a, -E2BIG, "%s: a text field is over the limit of %u bytes", what,
                     ST_TEXT_MAX);
            return -E2BIG;
        }
    }
    return 0;
}

static int check_json(st_msg_ack *a, const char *what, const char *field, const char *v)
{
    if (!v || json_check(v) >= 0)
        return 0;
    ack_fail(a, -EINVAL, "%s: %s is not valid JSON", what, field);
    return -EINVAL;
}

static int validate_create(const st_msg_create_session *c, st_msg_ack *a)
{
    const char *what = "create session";
    const char *t[] = {c->id,           c->source,        c->user_id,          c->model,
                       c->model_config, c->system_prompt, c->parent_session_id};
    int err = require(a, what, "id", c->id);
    if (!err)
        err = require(a, what, "source", c->source);
    if (!err)
        err = check_texts(a, what, t, RT_ARRAY_LEN(t));
    if (!err)
        err = check_json(a, what, "model_config", c->model_config);
    return err;
}

static int validate_append(const st_msg_append *p, st_msg_ack *a)
{
    const char *what = "append message";
    const char *t[] = {p->session_id, p->role,      p->content,      p->tool_call_id,
                       p->tool_calls, p->tool_name, p->finish_reason};
    int err = require(a, what, "session_id", p->session_id);
    if (!err)
        err = require(a, what, "role", p->role);
    if (!err)
        err = check_texts(a, what, t, RT_ARRAY_LEN(t));
    if (!err)
        err = check_json(a, what, "tool_calls", p->tool_calls);
    return err;
}

/* id plus one optional text (end reason, system prompt). */
static int validate_update(const char *id, const char *text, st_msg_ack *a)
{
    const char *t[] = {id, text};
    int err = require(a, "session update", "id", id);
    if (!err)
        err = check_texts(a, "session update", t, RT_ARRAY_LEN(t));
    return err;
}

static int validate(const rt_msg *m, st_msg_ack *a)
{
    switch (m->type) {
    case ST_MSG_CREATE_SESSION: return validate_create((const void *)m, a);
    case ST_MSG_APPEND: return validate_append((const void *)m, a);
    case ST_MSG_END_SESSION: {
        const st_msg_end_session *e = (const void *)m;
        return validate_update(e->id, e->reason, a);
    }
    case ST_MSG_SET_PROMPT: {
        const st_msg_set_prompt *p = (const void *)m;
        return validate_update(p->id, p->system_prompt, a);
    }
    case ST_MSG_ADD_TOKENS:
        return validate_update(((const st_msg_add_tokens *)(const void *)m)->id, NULL, a);
    case ST_MSG_INBOUND:
    case ST_MSG_INBOX_DONE: {
        const st_msg_inbound *i = (const void *)m;
        int err = require(a, "inbound update", "platform", i->platform);
        if (!err)
            err = require(a, "inbound update", "message_id", i->message_id);
        if (!err) {
            const char *t[] = {i->platform, i->message_id, i->session_key, i->event_json};
            err = check_texts(a, "inbound update", t, RT_ARRAY_LEN(t));
        }
        return err;
    }
    case ST_MSG_OUTBOX_PUT: {
        const st_msg_outbox *o = (const void *)m;
        int err = require(a, "outbox", "platform", o->platform);
        if (!err)
            err = require(a, "outbox", "chat_id", o->chat_id);
        if (!err)
            err = require(a, "outbox", "text", o->text);
        if (!err) {
            const char *t[] = {o->platform, o->chat_id, o->thread_id, o->reply_to, o->text};
            err = check_texts(a, "outbox", t, RT_ARRAY_LEN(t));
        }
        return err;
    }
    case ST_MSG_OUTBOX_END: {
        const st_msg_outbox *o = (const void *)m;
        const char *t[] = {o->error};
        return check_texts(a, "outbox", t, RT_ARRAY_LEN(t));
    }
    case ST_MSG_TRUNCATE: {
        const st_msg_truncate *t = (const void *)m;
        if (t->keep < 0) {
            ack_fail(a, -EINVAL, "truncate messages: keep must not be negative");
            return -EINVAL;
        }
        return validate_update(t->id, NULL, a);
    }
    default: return 0;
    }
}

static int apply(st_writer *w, rt_msg *m, st_msg_ack *a)
{
    switch (m->type) {
    case ST_MSG_CREATE_SESSION: return create_session(w, (st_msg_create_session *)m, a);
    case ST_MSG_END_SESSION: return end_session(w, (st_msg_end_session *)m, a);
    case ST_MSG_SET_PROMPT: return set_prompt(w, (st_msg_set_prompt *)m, a);
    case ST_MSG_ADD_TOKENS: return add_tokens(w, (st_msg_add_tokens *)m, a);
    case ST_MSG_APPEND: return append(w, (st_msg_append *)m, a);
    case ST_MSG_TRUNCATE: return truncate_messages(w, (st_msg_truncate *)m, a);
    case ST_MSG_INBOUND: return inbound(w, (st_msg_inbound *)m, a);
    case ST_MSG_INBOX_DONE: return inbox_done(w, (st_msg_inbound *)m, a);
    case ST_MSG_OUTBOX_PUT: return outbox_put(w, (st_msg_outbox *)m, a);
    case ST_MSG_OUTBOX_END: return outbox_end(w, (st_msg_outbox *)m, a);
    default: return SQLITE_OK;
    }
}

/* The next batch's timer, unless one is on its way. */
static void fts_timer_arm(st_writer *w, rt_ctx *cx)
{
    if (w->fts_timer)
        return;
    w->fts_timer = true;
    rt_send_after(cx, rt_self(cx), rt_timeout_new(TAG_FTS_BATCH), ST_FTS_BATCH_MS);
}

/* An append is coming: batch its search entry when appends come faster than
 * ST_FTS_DEFER_RATE per window, and make sure a batch's timer is on its way then. */
static void fts_count_append(st_writer *w, rt_ctx *cx)
{
    int64_t now = mono_ms(cx);
    if (now - w->fts_window_ms >= FTS_WINDOW_MS) {
        w->fts_window_ms = now;
        w->fts_window_n = 0;
    }
    w->fts_defer = ++w->fts_window_n > ST_FTS_DEFER_RATE && !w->commit_each;
    if (w->fts_defer || w->fts_waiting)
        fts_timer_arm(w, cx);
}

/* Write the waiting search entries now, in the open transaction or a new one (committed by
 * its FLUSH). A disk error fails the transaction's writes (rule 3); the ids stay waiting. */
static void fts_flush(st_writer *w, rt_ctx *cx)
{
    if (!w->fts_waiting)
        return;
    st_msg_ack *a = RT_MSG_NEW(st_msg_ack, ST_MSG_ACK); /* nobody is told */
    if (txn_begin(w, cx, a) == SQLITE_OK) {
        int rc = fts_index_waiting(w);
        if (rc != SQLITE_OK) {
            ack_fail_sqlite(w, a, rc, "indexing messages for search");
            RT_LOG_LIMITED(RT_LOG_WARN, "store", 10000, "%s", a->errmsg);
            txn_abort(w, cx, a, 0, NULL);
            a = NULL; /* txn_abort settled it */
        }
    }
    if (a)
        rt_msg_free(&a->hdr);
    if (w->fts_waiting) /* again later */
        fts_timer_arm(w, cx);
}

static void on_write(st_writer *w, rt_ctx *cx, rt_msg *m)
{
    st_msg_ack *a = ack_new(m);
    rt_ref to = req_of(m)->reply_to;
    rt_msg *rec = is_record(w, m) ? record_take(m) : NULL; /* rule 4: kept if refused */
    if (rec)
        m = rec;
    w->writes++;
    if (m->type == ST_MSG_APPEND)
        fts_count_append(w, cx);
    if (validate(m, a) == 0 && txn_begin(w, cx, a) == SQLITE_OK) {
        int rc = apply(w, m, a);
        if (rc != SQLITE_OK && (is_fatal(w, rc) || w->must_abort)) {
            w->must_abort = false;
            txn_abort(w, cx, a, to, rec);
            return;
        }
    }
    if (w->in_txn)
        pending_push(w, a, to, rec);
    else
        settle(w, cx, a, to, rec, w->commits); /* failed before any transaction began */
    if (w->in_txn && (w->commit_each || w->npending >= ST_BATCH_MAX))
        txn_commit(w, cx);
}

/* ================================================================== control */

static void on_sync(st_writer *w, rt_ctx *cx, rt_msg *m)
{
    fts_flush(w, cx); /* rule 5: searchable too */
    st_msg_ack *a = ack_new(m);
    if (w->in_txn)
        pending_push(w, a, req_of(m)->reply_to, NULL); /* acked with the writes before it */
    else
        ack_send(w, cx, a, req_of(m)->reply_to, w->commits);
}

static void on_set_quota(st_writer *w, rt_ctx *cx, st_msg_set_quota *m)
{
    st_msg_ack *a = ack_new(&m->hdr);
    int64_t pages = w->default_pages;
    if (m->max_bytes > 0)
        pages = (m->max_bytes + w->page_size - 1) / w->page_size;
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", (long long)pages);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(w->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        a->id = sqlite3_column_int64(st, 0) * w->page_size;
    else
        ack_fail_sqlite(w, a, rc, "set the size limit");
    sqlite3_finalize(st);
    ack_send(w, cx, a, m->req.reply_to, w->commits);
}

static void on_stats(st_writer *w, rt_ctx *cx, rt_msg *m)
{
    const st_req *r = req_of(m);
    if (!r->reply_to)
        return;
    st_msg_stats *s = RT_MSG_NEW(st_msg_stats, ST_MSG_STATS_REPLY);
    s->tag = r->tag;
    s->commits = w->commits;
    s->commit_hooks = w->commit_hooks;
    s->rollbacks = w->rollbacks;
    s->writes = w->writes;
    s->write_errors = w->write_errors;
    s->max_batch = w->max_batch;
    s->kept = w->nkept;
    s->given_up = w->given_up;
    s->search_batches = w->fts_batches;
    s->search_waiting = w->fts_waiting;
    s->search_merges = w->fts_merges;
    rt_send(cx, r->reply_to, &s->hdr);
}

static void sop_result_drop(rt_msg *m)
{
    cJSON_Delete(((st_msg_result *)m)->json);
}

/* A session operation (st_titles.h): the open batch is committed first, so the operation
 * sees every write before it and runs in a transaction of its own. */
static void on_session_op(st_writer *w, rt_ctx *cx, st_msg_sop *m)
{
    fts_flush(w, cx); /* the triggers below delete index entries: everything must be in */
    txn_commit(w, cx);
    st_msg_result *res = RT_MSG_NEW(st_msg_result, ST_MSG_RESULT);
    res->hdr.drop = sop_result_drop;
    res->tag = m->req.tag;
    res->op = m->hdr.type;
    /* these copy and delete transcripts with plain SQL: the index follows by its triggers
     * (turning them on and off again re-prepares the writer's statements, once) */
    (void)sqlite3_db_config(w->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 1, NULL);
    res->err = st_sop_exec(w->db, m, &res->json, res->errmsg, sizeof(res->errmsg));
    (void)sqlite3_db_config(w->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL);
    if (m->op == ST_SOP_BRANCH || m->op == ST_SOP_DELETE) {
        w->merge_due = true; /* copies and deletions went through the index's triggers */
        merge_kick(w, cx);
    }
    if (m->op == ST_SOP_TITLE_SET || m->op == ST_SOP_BRANCH || m->op == ST_SOP_DELETE)
        w->writes++;
    if (res->err && m->op != ST_SOP_TITLE_FIND)
        RT_LOG_LIMITED(RT_LOG_INFO, "store", 1000, "session operation %d: %s", m->op, res->errmsg);
    if (m->req.reply_to)
        rt_send(cx, m->req.reply_to, &res->hdr);
    else
        rt_msg_free(&res->hdr);
}

/* Write the kept records now, in a transaction of their own. */
static void kept_retry(st_writer *w, rt_ctx *cx)
{
    if (!w->nkept || w->in_txn)
        return; /* in a transaction they went first already */
    st_msg_ack *a = RT_MSG_NEW(st_msg_ack, ST_MSG_ACK); /* nobody is told */
    if (txn_begin(w, cx, a) == SQLITE_OK)
        txn_commit(w, cx);
    rt_msg_free(&a->hdr);
}

/* Kept records and no timer: the next retry after the backoff, or give up past the limit. */
static void retry_arm(st_writer *w, rt_ctx *cx)
{
    bool first = w->backoff.delay_ms <= 0;
    int64_t delay = st_backoff_next(&w->backoff, mono_ms(cx), w->kept_max_ms);
    if (delay < 0) {
        size_t n[3];
        kept_counts(w, n);
        RT_ERROR("store",
                 "state.db had no room for %lld s: given up %zu inbound key(s), %zu inbox "
                 "journal clear(s) and %zu outbox mark(s); a restart may answer those messages "
                 "or send those replies again",
                 (long long)(w->kept_max_ms / 1000), n[0], n[1], n[2]);
        kept_drop_all(w);
        st_backoff_reset(&w->backoff);
        return;
    }
    if (first)
        RT_WARN(
            "store",
            "state.db has no room (the disk is full): keeping exactly-once records (%zu so far) "
            "in memory and writing them again for up to %lld s",
            w->nkept, (long long)(w->kept_max_ms / 1000));
    w->retry_armed = true;
    rt_send_after(cx, rt_self(cx), rt_timeout_new(TAG_RECORD_RETRY), delay > 0 ? delay : 1);
}

/* Stopping: what is open is committed, the kept records get one last attempt, and what
 * still cannot be saved is named in one line (counts only). */
static void last_attempt(st_writer *w, rt_ctx *cx)
{
    fts_flush(w, cx);
    txn_commit(w, cx);
    kept_retry(w, cx);
    if (w->nkept && w->reserve) { /* what the reserve is for: room for these, now */
        RT_WARN("store",
                "the disk is still full: releasing the space reserve to save %zu exactly-once "
                "record(s) before stopping",
                w->nkept);
        (void)unlink(w->reserve);
        rt_free(w->reserve);
        w->reserve = NULL;
        kept_retry(w, cx);
    }
    if (!w->nkept)
        return;
    size_t n[3];
    kept_counts(w, n);
    RT_ERROR("store",
             "stopping with state.db still full: %zu inbound key(s), %zu inbox journal "
             "clear(s) and %zu outbox mark(s) could not be saved; after a restart those "
             "messages may be answered, or those replies sent, again",
             n[0], n[1], n[2]);
    kept_drop_all(w);
}

/* One step of merging the index's segments (file header), in the open transaction or as a
 * statement of its own; the next one goes behind the writes that came meanwhile. A step that
 * fails is not retried until index entries are written again. */
static void on_fts_merge(st_writer *w, rt_ctx *cx)
{
    w->merge_queued = false;
    if (!w->merge_due)
        return;
    sqlite3_stmt *st = w->stmt[S_FTS_MERGE];
    sqlite3_bind_int(st, 1, ST_FTS_MERGE_STEP);
    int before = sqlite3_total_changes(w->db);
    bool own = !w->in_txn;
    w->merging = own;
    int rc = step_reset(st);
    w->merging = false;
    if (rc != SQLITE_OK) {
        w->merge_due = false;
        RT_LOG_LIMITED(RT_LOG_DEBUG, "store", 60000, "state.db: merging the search index: %s",
                       sqlite3_errstr(rc));
        if (w->in_txn && is_fatal(w, rc)) {
            st_msg_ack *a = RT_MSG_NEW(st_msg_ack, ST_MSG_ACK); /* nobody is told */
            ack_fail_sqlite(w, a, rc, "merging the search index");
            txn_abort(w, cx, a, 0, NULL);
        }
        return;
    }
    /* FTS5 tells that a step found work only by the rows it changed: 2 or more */
    if (sqlite3_total_changes(w->db) - before < 2) {
        w->merge_due = false;
        return;
    }
    w->fts_merges++;
    if (own)
        maybe_checkpoint(w, cx);
    merge_kick(w, cx);
}

static void writer_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    st_writer *w = state;
    switch (m->type) {
    case ST_MSG_CREATE_SESSION:
    case ST_MSG_END_SESSION:
    case ST_MSG_SET_PROMPT:
    case ST_MSG_ADD_TOKENS:
    case ST_MSG_TRUNCATE:
    case ST_MSG_INBOUND:
    case ST_MSG_INBOX_DONE:
    case ST_MSG_OUTBOX_PUT:
    case ST_MSG_OUTBOX_END:
    case ST_MSG_APPEND: on_write(w, cx, m); break;
    case ST_MSG_FLUSH: txn_commit(w, cx); break;
    case ST_MSG_FTS_MERGE: on_fts_merge(w, cx); break;
    case ST_MSG_SYNC: on_sync(w, cx, m); break;
    case ST_MSG_SET_QUOTA: on_set_quota(w, cx, (st_msg_set_quota *)m); break;
    case ST_MSG_STATS: on_stats(w, cx, m); break;
    case ST_MSG_SESSION_OP: on_session_op(w, cx, (st_msg_sop *)m); break;
    case ST_MSG_SHUTDOWN:
        last_attempt(w, cx);
        ack_send(w, cx, ack_new(m), req_of(m)->reply_to, w->commits);
        rt_exit(cx, RT_EXIT_NORMAL);
        return;
    case RT_MSG_STOP: last_attempt(w, cx); return; /* queued writes behind it are dropped */
    case RT_MSG_TIMEOUT:
        if (((rt_msg_timeout *)m)->tag == TAG_RECORD_RETRY) {
            w->retry_armed = false;
            kept_retry(w, cx);
        } else if (((rt_msg_timeout *)m)->tag == TAG_FTS_BATCH) {
            w->fts_timer = false;
            fts_flush(w, cx);
        }
        break;
    case ST_MSG_CKPT_DONE: on_ckpt_done(w, cx); break;
    default: RT_WARN_ONCE("store", "store writer: unexpected message type %#x", m->type); break;
    }
    if (w->nkept && !w->retry_armed)
        retry_arm(w, cx);
}

static void automerge_give_back(st_writer *w);

static void writer_free(st_writer *w)
{
    if (w->in_txn && step_reset(w->stmt[S_COMMIT]) != SQLITE_OK)
        RT_ERROR("store", "state.db: final commit failed: %s", sqlite3_errmsg(w->db));
    for (size_t i = 0; i < w->npending; i++) {
        rt_msg_free(&w->pending[i].a->hdr); /* nobody can be told any more */
        rt_msg_free(w->pending[i].rec);
    }
    rt_free(w->pending);
    for (size_t i = 0; i < w->nkept; i++)
        rt_msg_free(w->kept[i]);
    rt_free(w->kept);
    rt_free(w->reserve); /* the file stays for the next start */
    if (w->db)
        automerge_give_back(w);
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(w->stmt[i]);
    /* Fold the WAL into the main file now: the readers may close after us, and a read-only
     * connection cannot checkpoint, which would leave the WAL behind. */
    int rc = w->db ? sqlite3_wal_checkpoint_v2(w->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL)
                   : SQLITE_OK;
    if (rc != SQLITE_OK)
        RT_DEBUG("store", "state.db: final checkpoint incomplete: %s", sqlite3_errmsg(w->db));
    if (w->db && sqlite3_close(w->db) != SQLITE_OK)
        RT_ERROR("store", "state.db: close failed: %s", sqlite3_errmsg(w->db));
    rt_free(w);
}

/* Runs once when the writer ends (no sends): commits what is open, closes the connection. */
static void writer_fini(void *state)
{
    writer_free(state);
}

static const rt_actor_type writer_type = {"store", writer_behave, writer_fini, 0};

/* ==================================================================== start */

/* Instead of SQLite's automatic checkpoint (which this hook replaces): only note the size. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    ((st_writer *)arg)->wal_pages = pages; /* the writer's own thread, after COMMIT */
    return SQLITE_OK;
}

static int commit_hook(void *arg)
{
    st_writer *w = arg; /* the writer's own thread, inside COMMIT */
    if (!w->merging)    /* a merge step of its own acks nothing: not a commit of ours */
        w->commit_hooks++;
    return 0; /* 0: let the commit proceed */
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static int automerge_set(sqlite3 *db, int v)
{
    char sql[96];
    snprintf(sql, sizeof(sql),
             "INSERT INTO messages_fts(messages_fts, rank) VALUES ('automerge', %d)", v);
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* Merging is the writer's while it runs (file header): automerge off, the value found kept
 * for automerge_give_back. Without it FTS5 merges as usual; the writer's steps are harmless. */
static void automerge_take(st_writer *w)
{
    int64_t v = 0;
    if (pragma_int(w->db, "SELECT v FROM messages_fts_config WHERE k = 'automerge'", &v) !=
            SQLITE_OK ||
        v <= 0 || v > 64)
        v = FTS_AUTOMERGE;
    if (automerge_set(w->db, 0) != SQLITE_OK) {
        RT_WARN("store", "state.db: the search index keeps FTS5's own merging: %s",
                sqlite3_errmsg(w->db));
        return;
    }
    w->automerge_saved = (int)v;
}

static void automerge_give_back(st_writer *w)
{
    if (!w->automerge_saved || !sqlite3_get_autocommit(w->db))
        return; /* a transaction still open is rolled back by the close: the next start fixes it */
    if (automerge_set(w->db, w->automerge_saved) != SQLITE_OK)
        RT_WARN("store", "state.db: could not turn the search index's automerge back on: %s",
                sqlite3_errmsg(w->db));
}

/* Rule 4's space reserve beside state.db: ST_RESERVE_BYTES allocated, or nothing (no room,
 * a filesystem without fallocate: then there is no reserve, and that is all). */
static char *reserve_take(const char *db_path)
{
    char *p = rt_xasprintf("%s-reserve", db_path);
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    int rc = fd < 0 ? errno : posix_fallocate(fd, 0, ST_RESERVE_BYTES);
    if (fd >= 0)
        close(fd);
    if (rc) {
        RT_DEBUG("store", "state.db: no space reserve (%s)", rt_strerror(-rc));
        if (fd >= 0)
            (void)unlink(p);
        rt_free(p);
        return NULL;
    }
    return p;
}

/* Messages a crash left without their search entries (hc_fts_pending): indexed now. */
static int fts_recover(st_writer *w)
{
    int64_t n = 0;
    if (pragma_int(w->db, "SELECT count(*) FROM hc_fts_pending", &n) != SQLITE_OK || n == 0)
        return 0; /* a read error shows again, with its message, at the first write */
    w->fts_waiting = (uint64_t)n;
    int rc = step_reset(w->stmt[S_BEGIN]);
    if (rc == SQLITE_OK)
        rc = fts_index_waiting(w);
    if (rc == SQLITE_OK)
        rc = step_reset(w->stmt[S_COMMIT]);
    w->fts_in_txn = false;
    if (rc != SQLITE_OK) { /* the disk is full, say: the first batch after starting tries again */
        w->fts_waiting = (uint64_t)n;
        char why[ST_ERRMSG_MAX];
        st_errmsg_format(why, sizeof(why), w->db, rc,
                         "state.db: indexing the messages the last run left unindexed");
        RT_WARN("store", "%s", why);
        if (!sqlite3_get_autocommit(w->db))
            (void)step_reset(w->stmt[S_ROLLBACK]);
        return 0;
    }
    RT_INFO("store", "indexed %lld message(s) for search that the last run had not", (long long)n);
    return 0;
}

static int writer_open(const st_store_opts *o, st_writer **out, char *errmsg, size_t errlen)
{
    st_open_opts oo = {
        .mode = ST_OPEN_WRITE, .busy_timeout_ms = o->busy_timeout_ms, .sync_full = o->sync_full};
    st_writer *w = rt_xcalloc(1, sizeof(*w));
    w->commit_each = o->commit_each;
    w->kept_max_ms = o->record_retry_max_ms < 0    ? -1
                     : o->record_retry_max_ms == 0 ? ST_RECORD_RETRY_MAX_MS
                                                   : o->record_retry_max_ms;
    int err = st_db_open(o->path, &oo, &w->db, errmsg, errlen);
    if (!err)
        err = st_schema_init(w->db, errmsg, errlen);
    /* Search indexing without the triggers (file header): every other program's connection
     * keeps them. */
    if (!err && sqlite3_db_config(w->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL) != SQLITE_OK) {
        st_errmsg_format(errmsg, errlen, w->db, sqlite3_errcode(w->db),
                         "state.db: turning the writer's triggers off");
        err = -EIO;
    }
    for (int i = 0; i < S_COUNT && !err; i++) {
        int rc = sqlite3_prepare_v3(w->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &w->stmt[i],
                                    NULL);
        if (rc != SQLITE_OK) {
            st_errmsg_format(errmsg, errlen, w->db, rc, "state.db: preparing a statement");
            err = st_errno_from_sqlite(rc);
        }
    }
    if (!err && (pragma_int(w->db, "PRAGMA page_size", &w->page_size) != SQLITE_OK ||
                 pragma_int(w->db, "PRAGMA max_page_count", &w->default_pages) != SQLITE_OK ||
                 w->page_size <= 0)) {
        st_errmsg_format(errmsg, errlen, w->db, sqlite3_errcode(w->db), "state.db: page size");
        err = -EIO;
    }
    if (err) {
        writer_free(w);
        return err;
    }
    if (!err)
        automerge_take(w);
    if (!err)
        err = fts_recover(w);
    if (err) {
        writer_free(w);
        return err;
    }
    sqlite3_commit_hook(w->db, commit_hook, w);
    if (w->kept_max_ms >= 0 && strcmp(o->path, ":memory:") != 0)
        w->reserve = reserve_take(o->path);
    sqlite3_wal_hook(w->db, wal_hook, w); /* checkpoints: maybe_checkpoint */
    *out = w;
    return 0;
}

static void set_msg(char *buf, size_t len, const char *s)
{
    if (buf && len)
        rt_strlcpy(buf, s, len);
}

int st_store_start(rt_ctx *cx, const st_store_opts *o, st_store_refs *out, char *errmsg,
                   size_t errlen)
{
    memset(out, 0, sizeof(*out));
    int n = o->readers ? o->readers : 2;
    if (n < 1 || n > ST_MAX_READERS) {
        set_msg(errmsg, errlen, "store: readers must be 1..8");
        return -EINVAL;
    }
    st_writer *w = NULL;
    int err = writer_open(o, &w, errmsg, errlen);
    if (err)
        return err;
    st_ckpt *ck = NULL;
    if ((err = st_ckpt_open(o->path, o->busy_timeout_ms, &ck, errmsg, errlen))) {
        writer_free(w);
        return err;
    }
    /* Readers open after the writer: the file, its schema and its -wal/-shm exist. */
    st_reader *r[ST_MAX_READERS] = {0};
    for (int i = 0; i < n && !err; i++)
        r[i] = st_reader_open(o->path, &err, errmsg, errlen);
    if (err) {
        for (int i = 0; i < n; i++)
            st_reader_free(r[i]);
        st_ckpt_free(ck);
        writer_free(w);
        return err;
    }
    char ckname[96];
    if (o->name)
        snprintf(ckname, sizeof(ckname), "%s.ckpt", o->name);
    out->checkpointer = w->ckpt = st_ckpt_spawn(cx, ck, o->name ? ckname : NULL);
    rt_spawn_opts so = {.flags = RT_SPAWN_DETACHED, .name = o->name};
    out->writer = rt_spawn(cx, &writer_type, w, &so); /* w is the actor's now */
    for (int i = 0; i < n; i++) {
        char name[96];
        if (o->name)
            snprintf(name, sizeof(name), "%s.r%d", o->name, i);
        out->readers[i] = out->writer ? st_reader_spawn(cx, r[i], o->name ? name : NULL)
                                      : (st_reader_free(r[i]), 0);
        out->nreaders += out->readers[i] != 0;
    }
    if (!out->writer || out->nreaders != n || !out->checkpointer) {
        set_msg(errmsg, errlen, "store: the actor name is already taken");
        st_store_stop(cx, out, 0, 0);
        memset(out, 0, sizeof(*out));
        return -EEXIST;
    }
    return 0;
}

rt_ref st_store_reader(const st_store_refs *s, uint64_t key)
{
    return s->nreaders > 0 ? s->readers[key % (uint64_t)s->nreaders] : 0;
}

void st_store_stop(rt_ctx *cx, const st_store_refs *s, rt_ref reply_to, uint64_t tag)
{
    if (s->writer)
        rt_send(cx, s->writer, &st_ctl_new(ST_MSG_SHUTDOWN, reply_to, tag)->hdr);
    for (int i = 0; i < ST_MAX_READERS; i++) {
        if (s->readers[i])
            rt_stop(cx, s->readers[i], RT_EXIT_NORMAL);
    }
    if (s->checkpointer)
        rt_stop(cx, s->checkpointer, RT_EXIT_NORMAL);
}
