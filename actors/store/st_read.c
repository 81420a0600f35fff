/*
 * st_read — queries over a read-only state.db connection, and the reader actor.
 * Result shapes and invariants are in st_read.h.
 */
#include "st_read.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum {
    R_SESSION,
    R_MESSAGES,
    R_SESSIONS_ALL,
    R_SESSIONS_SOURCE,
    R_SESSION_COUNT_ALL,
    R_SESSION_COUNT_SOURCE,
    R_MESSAGE_COUNT_ALL,
    R_MESSAGE_COUNT_SESSION,
    R_CONTEXT,
    R_LAST_ROLES,
    R_INBOUND_RECENT,
    R_OUTBOX_PENDING,
    R_INBOX,
    R_USER_SINCE,
    R_COUNT
};

/* The original's queries (hermes_state.py). */
static const char *const read_sql[R_COUNT] = {
    [R_SESSION] = "SELECT * FROM sessions WHERE id = ?",
    [R_MESSAGES] = "SELECT role, content, tool_call_id, tool_calls, tool_name "
                   "FROM messages WHERE session_id = ? ORDER BY timestamp, id",
    [R_SESSIONS_ALL] = "SELECT * FROM sessions ORDER BY started_at DESC LIMIT ? OFFSET ?",
    [R_SESSIONS_SOURCE] = "SELECT * FROM sessions WHERE source = ? "
                          "ORDER BY started_at DESC LIMIT ? OFFSET ?",
    [R_SESSION_COUNT_ALL] = "SELECT COUNT(*) FROM sessions",
    [R_SESSION_COUNT_SOURCE] = "SELECT COUNT(*) FROM sessions WHERE source = ?",
    [R_MESSAGE_COUNT_ALL] = "SELECT COUNT(*) FROM messages",
    [R_MESSAGE_COUNT_SESSION] = "SELECT COUNT(*) FROM messages WHERE session_id = ?",
    /* The last message of every session that had one since ?: what a restart must answer. */
    [R_LAST_ROLES] = "SELECT m.session_id, m.role FROM messages m JOIN (SELECT session_id, "
                     "max(id) AS id FROM messages WHERE timestamp >= ? GROUP BY session_id) l "
                     "ON m.id = l.id",
    [R_INBOUND_RECENT] = "SELECT platform, message_id FROM (SELECT platform, message_id, "
                         "received_at FROM hc_inbound ORDER BY received_at DESC LIMIT ?) "
                         "ORDER BY received_at",
    [R_OUTBOX_PENDING] = "SELECT id, platform, chat_id, thread_id, reply_to, text, kind, part, "
                         "parts, created_at FROM hc_outbox WHERE state = 'pending' ORDER BY id",
    [R_INBOX] = "SELECT platform, message_id, session_key, event_json, received_at FROM hc_inbox "
                "ORDER BY received_at, rowid",
    [R_USER_SINCE] = "SELECT content FROM messages WHERE session_id = ? AND role = 'user' AND "
                     "timestamp >= ? ORDER BY timestamp, id",
    [R_CONTEXT] = "SELECT role, content FROM messages "
                  "WHERE session_id = ? AND id >= ? - 1 AND id <= ? + 1 ORDER BY id",
};

struct st_reader {
    sqlite3 *db;                 /* read-only connection */
    sqlite3_stmt *stmt[R_COUNT]; /* prepared on first use, kept */
    char errmsg[ST_ERRMSG_MAX];  /* the last error, "" after a success */
};

/* ================================================================= plumbing */

static int fail(st_reader *r, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(st_reader *r, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errmsg, sizeof(r->errmsg), fmt, ap);
    va_end(ap);
    return err;
}

static int fail_sqlite(st_reader *r, int rc, const char *what)
{
    st_errmsg_format(r->errmsg, sizeof(r->errmsg), r->db, rc, what);
    return st_errno_from_sqlite(rc);
}

st_reader *st_reader_open(const char *path, int *err, char *errmsg, size_t errlen)
{
    st_open_opts o = {.mode = ST_OPEN_READ_ONLY};
    sqlite3 *db = NULL;
    *err = st_db_open(path, &o, &db, errmsg, errlen);
    if (*err)
        return NULL;
    st_reader *r = rt_xcalloc(1, sizeof(*r));
    r->db = db;
    return r;
}

void st_reader_free(st_reader *r)
{
    if (!r)
        return;
    for (int i = 0; i < R_COUNT; i++)
        sqlite3_finalize(r->stmt[i]);
    if (sqlite3_close(r->db) != SQLITE_OK)
        RT_ERROR("store", "state.db reader: close failed: %s", sqlite3_errmsg(r->db));
    rt_free(r);
}

const char *st_reader_errmsg(const st_reader *r)
{
    return r->errmsg;
}

/* The cached statement i, bound to nothing yet; NULL with errmsg on failure. */
static sqlite3_stmt *stmt_get(st_reader *r, int i, int *err)
{
    if (!r->stmt[i]) {
        int rc = sqlite3_prepare_v3(r->db, read_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &r->stmt[i],
                                    NULL);
        if (rc != SQLITE_OK) {
            *err = fail_sqlite(r, rc, "state.db query");
            return NULL;
        }
    }
    return r->stmt[i];
}

/* Invariant 1: no statement stays active between calls. */
static void stmt_done(sqlite3_stmt *st)
{
    (void)sqlite3_reset(st); /* the step's rc was already handled */
    sqlite3_clear_bindings(st);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC); /* s outlives the statement's use */
    else
        sqlite3_bind_null(st, i);
}

/* A column as JSON: numbers, strings, null. */
static cJSON *column_json(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: return cJSON_CreateNumber((double)sqlite3_column_int64(st, i));
    case SQLITE_FLOAT: return cJSON_CreateNumber(sqlite3_column_double(st, i));
    case SQLITE_TEXT:
    case SQLITE_BLOB: return cJSON_CreateString((const char *)sqlite3_column_text(st, i));
    default: return cJSON_CreateNull();
    }
}

/* The current row as an object keyed by column name ("rows as dicts"). */
static cJSON *row_object(sqlite3_stmt *st)
{
    cJSON *o = cJSON_CreateObject();
    int n = sqlite3_column_count(st);
    for (int i = 0; i < n; i++)
        cJSON_AddItemToObject(o, sqlite3_column_name(st, i), column_json(st, i));
    return o;
}

/* Every row of a bound statement as objects appended to arr; resets the statement. */
static int rows_into(st_reader *r, sqlite3_stmt *st, cJSON *arr)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cJSON_AddItemToArray(arr, row_object(st));
    int err = rc == SQLITE_DONE ? 0 : fail_sqlite(r, rc, "state.db query");
    stmt_done(st);
    return err;
}

static int clamp_limit(int limit)
{
    if (limit <= 0)
        return ST_SEARCH_DEFAULT;
    return limit > ST_LIST_LIMIT_MAX ? ST_LIST_LIMIT_MAX : limit;
}

/* ================================================================== queries */

int st_read_session(st_reader *r, const char *id, cJSON **out)
{
    int err = 0;
    *out = NULL;
    r->errmsg[0] = '\0';
    if (!id)
        return fail(r, -EINVAL, "get session: id is required");
    sqlite3_stmt *st = stmt_get(r, R_SESSION, &err);
    if (!st)
        return err;
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = row_object(st);
    else if (rc == SQLITE_DONE)
        err = fail(r, -ENOENT, "no session '%.64s'", id);
    else
        err = fail_sqlite(r, rc, "get session");
    stmt_done(st);
    return err;
}

/* One row of R_MESSAGES in the original's conversation format. */
static cJSON *conversation_item(sqlite3_stmt *st)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "role", column_json(st, 0));
    cJSON_AddItemToObject(o, "content", column_json(st, 1));
    const char *call_id = (const char *)sqlite3_column_text(st, 2);
    if (call_id && *call_id)
        cJSON_AddStringToObject(o, "tool_call_id", call_id);
    const char *name = (const char *)sqlite3_column_text(st, 4);
    if (name && *name)
        cJSON_AddStringToObject(o, "tool_name", name);
    const char *calls = (const char *)sqlite3_column_text(st, 3);
    cJSON *decoded = calls && *calls ? cJSON_Parse(calls) : NULL;
    if (decoded) /* the original skips tool_calls it cannot decode */
        cJSON_AddItemToObject(o, "tool_calls", decoded);
    return o;
}

int st_read_messages(st_reader *r, const char *session_id, cJSON **out)
{
    int err = 0;
    *out = NULL;
    r->errmsg[0] = '\0';
    if (!session_id)
        return fail(r, -EINVAL, "get messages: session_id is required");
    sqlite3_stmt *st = stmt_get(r, R_MESSAGES, &err);
    if (!st)
        return err;
    bind_text(st, 1, session_id);
    cJSON *arr = cJSON_CreateArray();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cJSON_AddItemToArray(arr, conversation_item(st));
    if (rc != SQLITE_DONE) {
        err = fail_sqlite(r, rc, "get messages");
        cJSON_Delete(arr);
        arr = NULL;
    }
    stmt_done(st);
    *out = arr;
    return err;
}

static int list_sessions(st_reader *r, const char *source, int limit, int offset, cJSON **out)
{
    int err = 0;
    sqlite3_stmt *st = stmt_get(r, source ? R_SESSIONS_SOURCE : R_SESSIONS_ALL, &err);
    if (!st)
        return err;
    int i = 1;
    if (source)
        bind_text(st, i++, source);
    sqlite3_bind_int(st, i++, limit);
    sqlite3_bind_int(st, i, offset < 0 ? 0 : offset);
    cJSON *arr = cJSON_CreateArray();
    err = rows_into(r, st, arr);
    if (err) {
        cJSON_Delete(arr);
        arr = NULL;
    }
    *out = arr;
    return err;
}

int st_read_sessions(st_reader *r, const char *source, int limit, int offset, cJSON **out)
{
    *out = NULL;
    r->errmsg[0] = '\0';
    return list_sessions(r, source, clamp_limit(limit), offset, out);
}

int st_read_latest_session(st_reader *r, const char *source, cJSON **out)
{
    cJSON *arr = NULL;
    *out = NULL;
    r->errmsg[0] = '\0';
    int err = list_sessions(r, source, 1, 0, &arr);
    if (err)
        return err;
    cJSON *first = cJSON_DetachItemFromArray(arr, 0);
    cJSON_Delete(arr);
    if (!first)
        return fail(r, -ENOENT, "no session%s%.64s", source ? " from " : "", source ? source : "");
    *out = first;
    return 0;
}

static int count(st_reader *r, int which, const char *key, int64_t *out)
{
    int err = 0;
    *out = 0;
    r->errmsg[0] = '\0';
    sqlite3_stmt *st = stmt_get(r, which, &err);
    if (!st)
        return err;
    if (key)
        bind_text(st, 1, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        err = fail_sqlite(r, rc, "count");
    stmt_done(st);
    return err;
}

int st_read_session_count(st_reader *r, const char *source, int64_t *out)
{
    return count(r, source ? R_SESSION_COUNT_SOURCE : R_SESSION_COUNT_ALL, source, out);
}

int st_read_message_count(st_reader *r, const char *session_id, int64_t *out)
{
    return count(r, session_id ? R_MESSAGE_COUNT_SESSION : R_MESSAGE_COUNT_ALL, session_id, out);
}

int st_read_unanswered(st_reader *r, double since, cJSON **out)
{
    int err = 0;
    *out = NULL;
    r->errmsg[0] = '\0';
    sqlite3_stmt *st = stmt_get(r, R_LAST_ROLES, &err);
    if (!st)
        return err;
    sqlite3_bind_double(st, 1, since);
    cJSON *arr = cJSON_CreateArray();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *role = (const char *)sqlite3_column_text(st, 1);
        const char *id = (const char *)sqlite3_column_text(st, 0);
        if (id && role && (strcmp(role, "user") == 0 || strcmp(role, "tool") == 0))
            cJSON_AddItemToArray(arr, cJSON_CreateString(id));
    }
    if (rc != SQLITE_DONE) {
        err = fail_sqlite(r, rc, "list unanswered sessions");
        cJSON_Delete(arr);
    } else {
        *out = arr;
    }
    stmt_done(st);
    return err;
}

int st_read_inbound_recent(st_reader *r, size_t limit, st_inbound_fn fn, void *arg)
{
    int err = 0;
    r->errmsg[0] = '\0';
    sqlite3_stmt *st = stmt_get(r, R_INBOUND_RECENT, &err);
    if (!st)
        return err;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(limit > INT64_MAX ? INT64_MAX : limit));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *platform = (const char *)sqlite3_column_text(st, 0);
        const char *id = (const char *)sqlite3_column_text(st, 1);
        if (platform && id)
            fn(arg, platform, id);
    }
    if (rc != SQLITE_DONE)
        err = fail_sqlite(r, rc, "list recent inbound updates");
    stmt_done(st);
    return err;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

int st_read_inbox(st_reader *r, st_inbox_fn fn, void *arg)
{
    int err = 0;
    r->errmsg[0] = '\0';
    sqlite3_stmt *st = stmt_get(r, R_INBOX, &err);
    if (!st)
        return err;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        st_inbox_row row = {
            .platform = col_text(st, 0),
            .message_id = col_text(st, 1),
            .session_key = col_text(st, 2),
            .event_json = col_text(st, 3),
            .received_at = sqlite3_column_double(st, 4),
        };
        if (row.platform && row.message_id && row.event_json)
            fn(arg, &row);
    }
    if (rc != SQLITE_DONE)
        err = fail_sqlite(r, rc, "list the inbox journal");
    stmt_done(st);
    return err;
}

int st_read_user_since(st_reader *r, const char *session_id, double since, cJSON **out)
{
    int err = 0;
    *out = NULL;
    r->errmsg[0] = '\0';
    if (!session_id)
        return fail(r, -EINVAL, "no session id");
    sqlite3_stmt *st = stmt_get(r, R_USER_SINCE, &err);
    if (!st)
        return err;
    sqlite3_bind_text(st, 1, session_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 2, since);
    cJSON *arr = cJSON_CreateArray();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *c = col_text(st, 0);
        cJSON_AddItemToArray(arr, cJSON_CreateString(c ? c : ""));
    }
    if (rc != SQLITE_DONE) {
        err = fail_sqlite(r, rc, "list a session's user messages");
        cJSON_Delete(arr);
    } else {
        *out = arr;
    }
    stmt_done(st);
    return err;
}

int st_read_outbox_pending(st_reader *r, st_outbox_fn fn, void *arg)
{
    int err = 0;
    r->errmsg[0] = '\0';
    sqlite3_stmt *st = stmt_get(r, R_OUTBOX_PENDING, &err);
    if (!st)
        return err;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        st_outbox_row row = {
            .id = sqlite3_column_int64(st, 0),
            .platform = col_text(st, 1),
            .chat_id = col_text(st, 2),
            .thread_id = col_text(st, 3),
            .reply_to = col_text(st, 4),
            .text = col_text(st, 5),
            .kind = sqlite3_column_int(st, 6),
            .part = sqlite3_column_int(st, 7),
            .parts = sqlite3_column_int(st, 8),
            .created_at = sqlite3_column_double(st, 9),
        };
        if (row.platform && row.chat_id && row.text)
            fn(arg, &row);
    }
    if (rc != SQLITE_DONE)
        err = fail_sqlite(r, rc, "list the outbox");
    stmt_done(st);
    return err;
}

/* =================================================================== search */

/* The first n characters (UTF-8 sequences; stray bytes count as one) of s, as a string. */
static cJSON *prefix_chars(const char *s, size_t n)
{
    size_t i = 0, chars = 0;
    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80 && chars++ == n)
            break;
    }
    char *cut = rt_xstrndup(s, i);
    cJSON *j = cJSON_CreateString(cut);
    rt_free(cut);
    return j;
}

/* The original: messages of the hit's session with id in [id-1, id+1], content cut to 200
 * characters; [] when the lookup fails. */
static cJSON *hit_context(st_reader *r, const char *session_id, int64_t id)
{
    int err = 0;
    cJSON *arr = cJSON_CreateArray();
    sqlite3_stmt *st = stmt_get(r, R_CONTEXT, &err);
    if (!st)
        return arr;
    bind_text(st, 1, session_id);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_int64(st, 3, id);
    while (sqlite3_step(st) == SQLITE_ROW) { /* an error ends the list early, as "except: []" */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "role", column_json(st, 0));
        const char *c = (const char *)sqlite3_column_text(st, 1);
        cJSON_AddItemToObject(o, "content", prefix_chars(c ? c : "", ST_CONTEXT_CHARS));
        cJSON_AddItemToArray(arr, o);
    }
    stmt_done(st);
    return arr;
}

static void append_in(rt_buf *b, const char *column, size_t n)
{
    if (n == 0)
        return;
    (void)rt_buf_printf(b, " AND %s IN (", column); /* the buffer has room: see search_sql */
    for (size_t i = 0; i < n; i++)
        (void)rt_buf_append_str(b, i ? ", ?" : "?");
    (void)rt_buf_append_str(b, ")");
}

/* The original's query with IN lists sized to the filters. */
static char *search_sql(const st_search_query *q)
{
    rt_buf b;
    rt_buf_init(&b, 4096 + 3 * (q->nsources + q->nroles));
    (void)rt_buf_append_str(
        &b, "SELECT m.id AS id, m.session_id AS session_id, m.role AS role, "
            "snippet(messages_fts, 0, '>>>', '<<<', '...', 40) AS snippet, "
            "m.timestamp AS timestamp, m.tool_name AS tool_name, s.source AS source, "
            "s.model AS model, s.started_at AS session_started "
            "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
            "JOIN sessions s ON s.id = m.session_id WHERE messages_fts MATCH ?");
    append_in(&b, "s.source", q->nsources);
    append_in(&b, "m.role", q->nroles);
    (void)rt_buf_append_str(&b, " ORDER BY rank LIMIT ? OFFSET ?");
    return rt_buf_steal(&b, NULL);
}

static bool is_blank(const char *s)
{
    for (; *s; s++) {
        if (!isspace((unsigned char)*s))
            return false;
    }
    return true;
}

static int search_error(st_reader *r, int rc)
{
    const char *msg = sqlite3_errmsg(r->db);
    if ((rc & 0xff) == SQLITE_ERROR)
        return fail(r, -EINVAL,
                    "search query: %s (FTS5 syntax: words, \"phrases\", AND/OR/NOT, "
                    "prefix*)",
                    msg);
    return fail_sqlite(r, rc, "search");
}

static int search_rows(st_reader *r, sqlite3_stmt *st, const st_search_query *q, cJSON *arr)
{
    int i = 1;
    bind_text(st, i++, q->query);
    for (size_t k = 0; k < q->nsources; k++)
        bind_text(st, i++, q->sources[k]);
    for (size_t k = 0; k < q->nroles; k++)
        bind_text(st, i++, q->roles[k]);
    sqlite3_bind_int(st, i++, clamp_limit(q->limit));
    sqlite3_bind_int(st, i, q->offset < 0 ? 0 : q->offset);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cJSON_AddItemToArray(arr, row_object(st));
    return rc == SQLITE_DONE ? 0 : search_error(r, rc);
}

int st_read_search(st_reader *r, const st_search_query *q, cJSON **out)
{
    *out = NULL;
    r->errmsg[0] = '\0';
    if (!q->query || is_blank(q->query)) {
        *out = cJSON_CreateArray();
        return 0;
    }
    if (strnlen(q->query, ST_QUERY_MAX + 1) > ST_QUERY_MAX)
        return fail(r, -E2BIG, "search query is longer than %d bytes", ST_QUERY_MAX);
    if (q->nsources > 64 || q->nroles > 64)
        return fail(r, -E2BIG, "search: at most 64 sources and 64 roles");
    /* One read transaction: hits and their context come from the same snapshot. */
    int rc = sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return fail_sqlite(r, rc, "search");
    char *sql = search_sql(q);
    sqlite3_stmt *st = NULL;
    cJSON *arr = cJSON_CreateArray();
    rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
    int err = rc == SQLITE_OK ? search_rows(r, st, q, arr) : search_error(r, rc);
    sqlite3_finalize(st);
    rt_free(sql);
    for (cJSON *hit = arr->child; hit && !err; hit = hit->next) {
        cJSON *sid = cJSON_GetObjectItemCaseSensitive(hit, "session_id");
        cJSON *id = cJSON_GetObjectItemCaseSensitive(hit, "id");
        if (cJSON_IsString(sid) && cJSON_IsNumber(id))
            cJSON_AddItemToObject(hit, "context",
                                  hit_context(r, sid->valuestring, (int64_t)id->valuedouble));
    }
    (void)sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL); /* read-only: ends the snapshot */
    if (err) {
        cJSON_Delete(arr);
        return err;
    }
    *out = arr;
    return 0;
}

/* ============================================================= reader actor */

static void get_drop(rt_msg *m)
{
    rt_free(((st_msg_get *)m)->key);
}

st_msg_get *st_get_new(uint32_t type, const char *key, rt_ref reply_to, uint64_t tag)
{
    st_msg_get *m = RT_MSG_NEW(st_msg_get, type);
    m->hdr.drop = get_drop;
    m->key = rt_xstrdup(key);
    m->req.reply_to = reply_to;
    m->req.tag = tag;
    return m;
}

static void search_drop(rt_msg *m)
{
    st_msg_search *s = (st_msg_search *)m;
    rt_free(s->query);
    for (size_t i = 0; i < s->nsources; i++)
        rt_free(s->sources[i]);
    for (size_t i = 0; i < s->nroles; i++)
        rt_free(s->roles[i]);
    rt_free(s->sources);
    rt_free(s->roles);
}

st_msg_search *st_search_new(const char *query, rt_ref reply_to, uint64_t tag)
{
    st_msg_search *m = RT_MSG_NEW(st_msg_search, ST_MSG_SEARCH);
    m->hdr.drop = search_drop;
    m->query = rt_xstrdup(query);
    m->req.reply_to = reply_to;
    m->req.tag = tag;
    return m;
}

static void add_str(char ***arr, size_t *n, const char *s)
{
    *arr = rt_xrealloc(*arr, (*n + 1) * sizeof(**arr));
    (*arr)[(*n)++] = rt_xstrdup(s ? s : "");
}

void st_search_add_source(st_msg_search *m, const char *source)
{
    add_str(&m->sources, &m->nsources, source);
}

void st_search_add_role(st_msg_search *m, const char *role)
{
    add_str(&m->roles, &m->nroles, role);
}

static void result_drop(rt_msg *m)
{
    cJSON_Delete(((st_msg_result *)m)->json);
}

static int on_search(st_reader *r, const st_msg_search *m, cJSON **out)
{
    st_search_query q = {.query = m->query,
                         .sources = (const char *const *)m->sources,
                         .nsources = m->nsources,
                         .roles = (const char *const *)m->roles,
                         .nroles = m->nroles,
                         .limit = m->limit,
                         .offset = m->offset};
    return st_read_search(r, &q, out);
}

static int answer(st_reader *r, const rt_msg *m, st_msg_result *res)
{
    const st_msg_get *g = (const st_msg_get *)(const void *)m;
    switch (m->type) {
    case ST_MSG_GET_SESSION: return st_read_session(r, g->key, &res->json);
    case ST_MSG_GET_MESSAGES: return st_read_messages(r, g->key, &res->json);
    case ST_MSG_SEARCH: return on_search(r, (const st_msg_search *)(const void *)m, &res->json);
    case ST_MSG_LIST_SESSIONS: return st_read_sessions(r, g->key, g->limit, g->offset, &res->json);
    case ST_MSG_LATEST_SESSION: return st_read_latest_session(r, g->key, &res->json);
    case ST_MSG_SESSION_COUNT: return st_read_session_count(r, g->key, &res->count);
    case ST_MSG_MESSAGE_COUNT: return st_read_message_count(r, g->key, &res->count);
    default: return -EINVAL;
    }
}

static void reader_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    st_reader *r = state;
    if (m->type < ST_MSG_GET_SESSION || m->type > ST_MSG_MESSAGE_COUNT) {
        if (m->type != RT_MSG_STOP)
            RT_WARN_ONCE("store", "store reader: unexpected message type %#x", m->type);
        return;
    }
    /* st_msg_get and st_msg_search both start with hdr, req. */
    const st_req *req = &((const st_msg_get *)(const void *)m)->req;
    if (!req->reply_to)
        return; /* nobody to tell */
    st_msg_result *res = RT_MSG_NEW(st_msg_result, ST_MSG_RESULT);
    res->hdr.drop = result_drop;
    res->tag = req->tag;
    res->op = m->type;
    res->err = answer(r, m, res);
    if (res->err)
        rt_strlcpy(res->errmsg, st_reader_errmsg(r), sizeof(res->errmsg));
    rt_send(cx, req->reply_to, &res->hdr); /* false: the asker ended; res is freed */
}

static void reader_fini(void *state)
{
    st_reader_free(state);
}

static const rt_actor_type reader_type = {"store-rd", reader_behave, reader_fini, 0};

rt_ref st_reader_spawn(rt_ctx *cx, st_reader *r, const char *name)
{
    rt_spawn_opts o = {.flags = RT_SPAWN_DETACHED, .name = name};
    return rt_spawn(cx, &reader_type, r, &o);
}
