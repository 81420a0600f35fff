/*
 * st_titles — session titles, /resume, /branch and /insights over state.db.
 * The rules are in st_titles.h.
 */
#include "st_titles.h"

#include "st_read.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAIN_MAX 64 /* compression continuations followed at most */

/* ================================================================ messages */

static void sop_drop(rt_msg *m)
{
    st_msg_sop *s = (st_msg_sop *)m;
    rt_free(s->id);
    rt_free(s->title);
    rt_free(s->new_id);
    rt_free(s->source);
    rt_free(s->user_id);
    rt_free(s->model);
}

st_msg_sop *st_sop_new(int op, const char *id, rt_ref reply_to, uint64_t tag)
{
    st_msg_sop *s = RT_MSG_NEW(st_msg_sop, ST_MSG_SESSION_OP);
    s->op = op;
    s->id = id ? rt_xstrdup(id) : NULL;
    s->req.reply_to = reply_to;
    s->req.tag = tag;
    s->hdr.drop = sop_drop;
    return s;
}

/* ================================================================ sanitize */

static void set_err(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* Decode one UTF-8 sequence at s (n bytes left): the code point and its length, or -1. */
static int utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    int len = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || (size_t)len > n)
        return -1;
    uint32_t v = s[0] & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return -1;
        v = (v << 6) | (s[i] & 0x3f);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return -1;
    *cp = v;
    return len;
}

/* The original's regexes: [\x00-\x08\x0b\x0c\x0e-\x1f\x7f] and the invisible Unicode ones. */
static bool dropped(uint32_t c)
{
    if ((c <= 0x08) || c == 0x0b || c == 0x0c || (c >= 0x0e && c <= 0x1f) || c == 0x7f)
        return true;
    return (c >= 0x200b && c <= 0x200f) || (c >= 0x2028 && c <= 0x202e) ||
           (c >= 0x2060 && c <= 0x2069) || c == 0xfeff || c == 0xfffc ||
           (c >= 0xfff9 && c <= 0xfffb);
}

static bool is_space(uint32_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x202f || c == 0x205f || c == 0x3000;
}

int st_title_sanitize(const char *in, char **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!in)
        in = "";
    size_t n = strlen(in);
    rt_buf b;
    rt_buf_init(&b, n + 1);
    const unsigned char *s = (const unsigned char *)in;
    size_t chars = 0;
    bool pending_space = false;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = utf8_next(s + i, n - i, &cp);
        if (l < 0) {
            rt_buf_fini(&b);
            set_err(err, errlen, "Title is not valid UTF-8");
            return -EILSEQ;
        }
        if (!dropped(cp)) {
            if (is_space(cp)) {
                pending_space = b.len > 0;
            } else {
                if (pending_space) {
                    rt_buf_append(&b, " ", 1);
                    chars++;
                }
                pending_space = false;
                rt_buf_append(&b, (const char *)s + i, (size_t)l);
                chars++;
            }
        }
        i += (size_t)l;
    }
    if (!b.len) {
        rt_buf_fini(&b);
        set_err(err, errlen, "Title is empty after cleanup. Please use printable characters.");
        return -ENODATA;
    }
    if (chars > ST_TITLE_MAX) {
        rt_buf_fini(&b);
        set_err(err, errlen, "Title too long (%zu chars, max %d)", chars, ST_TITLE_MAX);
        return -E2BIG;
    }
    *out = rt_buf_steal(&b, NULL);
    return 0;
}

/* ================================================================ helpers */

static int fail_sql(sqlite3 *db, int rc, char *errmsg, size_t errlen, const char *what)
{
    st_errmsg_format(errmsg, errlen, db, rc, what);
    return st_errno_from_sqlite(rc);
}

static void bind_opt(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : NULL;
}

/* One value from a one-row query with text parameters (NULL: null). -1 on error/no row. */
static int64_t q_int(sqlite3 *db, const char *sql, const char *a, const char *b)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        bind_opt(st, 1, a);
        if (sqlite3_bind_parameter_count(st) > 1)
            bind_opt(st, 2, b);
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

/* A text value from a one-row query; new string or NULL. */
static char *q_text(sqlite3 *db, const char *sql, const char *a, const char *b)
{
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        bind_opt(st, 1, a);
        if (sqlite3_bind_parameter_count(st) > 1)
            bind_opt(st, 2, b);
        if (sqlite3_step(st) == SQLITE_ROW && col_text(st, 0))
            v = rt_xstrdup(col_text(st, 0));
    }
    sqlite3_finalize(st);
    return v;
}

static int exec_sql(sqlite3 *db, const char *sql, char *errmsg, size_t errlen)
{
    return st_db_exec(db, sql, errmsg, errlen);
}

static void rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* The session (other than id) holding title, new string or NULL. */
static char *title_owner(sqlite3 *db, const char *title, const char *id)
{
    return q_text(db,
                  "SELECT session_id FROM hc_session_titles WHERE title = ?1 AND "
                  "session_id IS NOT ?2",
                  title, id);
}

static int put_title(sqlite3 *db, const char *id, const char *title, char *errmsg, size_t errlen)
{
    char *owner = title_owner(db, title, id);
    if (owner) {
        set_err(errmsg, errlen, "Title '%s' is already in use by session %s", title, owner);
        rt_free(owner);
        return -EEXIST;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "INSERT INTO hc_session_titles (session_id, title, updated_at) "
                                "VALUES (?1, ?2, ?3) ON CONFLICT(session_id) DO UPDATE SET "
                                "title = excluded.title, updated_at = excluded.updated_at",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        bind_opt(st, 1, id);
        bind_opt(st, 2, title);
        sqlite3_bind_double(st, 3, st_now_epoch());
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    int err = rc == SQLITE_OK ? 0 : fail_sql(db, rc, errmsg, errlen, "set the session title");
    sqlite3_finalize(st);
    return err;
}

/* ================================================================ operations */

static int title_set(sqlite3 *db, const st_msg_sop *m, cJSON **out, char *errmsg, size_t errlen)
{
    if (!m->title || !*m->title) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, "DELETE FROM hc_session_titles WHERE session_id = ?", -1,
                                    &st, NULL);
        if (rc == SQLITE_OK) {
            bind_opt(st, 1, m->id);
            rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_OK)
            return fail_sql(db, rc, errmsg, errlen, "clear the session title");
    } else {
        int err = put_title(db, m->id, m->title, errmsg, errlen);
        if (err)
            return err;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", m->id);
    if (m->title && *m->title)
        cJSON_AddStringToObject(o, "title", m->title);
    else
        cJSON_AddNullToObject(o, "title");
    *out = o;
    return 0;
}

static int title_get(sqlite3 *db, const st_msg_sop *m, cJSON **out)
{
    char *t = q_text(db, "SELECT title FROM hc_session_titles WHERE session_id = ?", m->id, NULL);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", m->id);
    if (t)
        cJSON_AddStringToObject(o, "title", t);
    else
        cJSON_AddNullToObject(o, "title");
    rt_free(t);
    *out = o;
    return 0;
}

/* Whether session id may be seen by (source, user_id): no sessions row yet, or the same
 * platform and user (NULL matches anything). */
static const char VISIBLE_SQL[] =
    "(s.id IS NULL OR ((?3 IS NULL OR s.source = ?3) AND (?4 IS NULL OR s.user_id IS NULL OR "
    "s.user_id = ?4)))";

static void bind_scope(sqlite3_stmt *st, const st_msg_sop *m)
{
    bind_opt(st, 3, m->source);
    bind_opt(st, 4, m->user_id);
}

/* LIKE pattern for "<base> #%" with %, _ and \ escaped (new string). */
static char *lineage_pattern(const char *base)
{
    rt_buf b;
    rt_buf_init(&b, strlen(base) * 2 + 8);
    for (const char *p = base; *p; p++) {
        if (*p == '%' || *p == '_' || *p == '\\')
            rt_buf_append(&b, "\\", 1);
        rt_buf_append(&b, p, 1);
    }
    rt_buf_append_str(&b, " #%");
    return rt_buf_steal(&b, NULL);
}

/* The newest session compression continued id under, or id itself (new string). */
static char *chain_leaf(sqlite3 *db, const char *id)
{
    char *cur = rt_xstrdup(id);
    for (int i = 0; i < CHAIN_MAX; i++) {
        char *next =
            q_text(db,
                   "SELECT c.id FROM sessions p JOIN sessions c ON c.parent_session_id = p.id "
                   "WHERE p.id = ?1 AND p.end_reason = 'compression' ORDER BY c.started_at "
                   "DESC LIMIT 1",
                   cur, NULL);
        if (!next)
            break;
        rt_free(cur);
        cur = next;
    }
    return cur;
}

static void add_counts(sqlite3 *db, cJSON *o, const char *id)
{
    int64_t all = q_int(db, "SELECT count(*) FROM messages WHERE session_id = ?", id, NULL);
    int64_t users =
        q_int(db, "SELECT count(*) FROM messages WHERE session_id = ? AND role = 'user'", id, NULL);
    cJSON_AddNumberToObject(o, "message_count", (double)(all < 0 ? 0 : all));
    cJSON_AddNumberToObject(o, "user_messages", (double)(users < 0 ? 0 : users));
}

static int title_find(sqlite3 *db, const st_msg_sop *m, cJSON **out, char *errmsg, size_t errlen)
{
    if (!m->title || !*m->title) {
        set_err(errmsg, errlen, "a title is required");
        return -EINVAL;
    }
    char *pat = lineage_pattern(m->title);
    rt_buf sql;
    rt_buf_init(&sql, 4096);
    /* the exact title first, else its most recent numbered variant ("name #3") */
    rt_buf_printf(&sql,
                  "SELECT t.session_id, t.title, (t.title LIKE ?2 ESCAPE '\\') AS numbered "
                  "FROM hc_session_titles t LEFT JOIN sessions s ON s.id = t.session_id "
                  "WHERE (t.title = ?1 OR t.title LIKE ?2 ESCAPE '\\') AND %s "
                  "ORDER BY numbered ASC, COALESCE(s.started_at, t.updated_at) DESC LIMIT 1",
                  VISIBLE_SQL);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, rt_buf_cstr(&sql), -1, &st, NULL);
    rt_buf_fini(&sql);
    if (rc != SQLITE_OK) {
        rt_free(pat);
        return fail_sql(db, rc, errmsg, errlen, "find a session by title");
    }
    bind_opt(st, 1, m->title);
    bind_opt(st, 2, pat);
    bind_scope(st, m);
    rc = sqlite3_step(st);
    int err = 0;
    if (rc == SQLITE_ROW) {
        char *leaf = chain_leaf(db, col_text(st, 0));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", leaf);
        cJSON_AddStringToObject(o, "title", col_text(st, 1));
        add_counts(db, o, leaf);
        rt_free(leaf);
        *out = o;
    } else if (rc == SQLITE_DONE) {
        set_err(errmsg, errlen, "no session titled '%s'", m->title);
        err = -ENOENT;
    } else {
        err = fail_sql(db, rc, errmsg, errlen, "find a session by title");
    }
    sqlite3_finalize(st);
    rt_free(pat);
    return err;
}

static int title_list(sqlite3 *db, const st_msg_sop *m, cJSON **out, char *errmsg, size_t errlen)
{
    rt_buf sql;
    rt_buf_init(&sql, 4096);
    rt_buf_printf(&sql,
                  "SELECT t.session_id, t.title, "
                  "(SELECT count(*) FROM messages WHERE session_id = t.session_id), "
                  "(SELECT count(*) FROM messages WHERE session_id = t.session_id AND "
                  "role = 'user'), "
                  "(SELECT substr(content, 1, 200) FROM messages WHERE session_id = t.session_id "
                  "AND role = 'user' ORDER BY timestamp, id LIMIT 1) "
                  "FROM hc_session_titles t LEFT JOIN sessions s ON s.id = t.session_id "
                  "WHERE ?1 IS NOT NULL AND %s "
                  "ORDER BY COALESCE(s.started_at, t.updated_at) DESC LIMIT ?2",
                  VISIBLE_SQL);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, rt_buf_cstr(&sql), -1, &st, NULL);
    rt_buf_fini(&sql);
    if (rc != SQLITE_OK)
        return fail_sql(db, rc, errmsg, errlen, "list titled sessions");
    sqlite3_bind_int(st, 1, 1);
    sqlite3_bind_int64(st, 2, m->n > 0 && m->n <= ST_LIST_LIMIT_MAX ? m->n : 10);
    bind_scope(st, m);
    cJSON *arr = cJSON_CreateArray();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", col_text(st, 0));
        cJSON_AddStringToObject(o, "title", col_text(st, 1));
        cJSON_AddNumberToObject(o, "message_count", (double)sqlite3_column_int64(st, 2));
        cJSON_AddNumberToObject(o, "user_messages", (double)sqlite3_column_int64(st, 3));
        if (col_text(st, 4))
            cJSON_AddStringToObject(o, "preview", col_text(st, 4));
        cJSON_AddItemToArray(arr, o);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        cJSON_Delete(arr);
        return fail_sql(db, rc, errmsg, errlen, "list titled sessions");
    }
    *out = arr;
    return 0;
}

/* get_next_title_in_lineage: "<base> #N" (new string). */
static char *next_in_lineage(sqlite3 *db, const char *title)
{
    char *base = rt_xstrdup(title);
    char *hash = strrchr(base, '#');
    if (hash && hash > base + 1 && hash[-1] == ' ' && hash[1]) {
        bool digits = true;
        for (const char *p = hash + 1; *p; p++)
            digits = digits && *p >= '0' && *p <= '9';
        if (digits)
            hash[-1] = '\0';
    }
    char *pat = lineage_pattern(base);
    sqlite3_stmt *st = NULL;
    long long max = 0;
    bool any = false;
    if (sqlite3_prepare_v2(db,
                           "SELECT title FROM hc_session_titles WHERE title = ?1 OR title LIKE ?2 "
                           "ESCAPE '\\'",
                           -1, &st, NULL) == SQLITE_OK) {
        bind_opt(st, 1, base);
        bind_opt(st, 2, pat);
        while (sqlite3_step(st) == SQLITE_ROW) {
            any = true;
            const char *t = col_text(st, 0);
            const char *h = t ? strrchr(t, '#') : NULL;
            int64_t v = 0;
            if (max < 1)
                max = 1;
            if (h && rt_parse_i64(h + 1, 0, INT64_MAX, &v) == 0 && v > max)
                max = v;
        }
    }
    sqlite3_finalize(st);
    rt_free(pat);
    char *r = any ? rt_xasprintf("%s #%lld", base, max + 1) : rt_xstrdup(base);
    rt_free(base);
    return r;
}

static int branch(sqlite3 *db, const st_msg_sop *m, cJSON **out, char *errmsg, size_t errlen)
{
    if (!m->id || !m->new_id || !m->source) {
        set_err(errmsg, errlen, "branch: id, new_id and source are required");
        return -EINVAL;
    }
    int err = exec_sql(db, "BEGIN IMMEDIATE", errmsg, errlen);
    if (err)
        return err;
    char *title = NULL;
    int64_t copied = 0;
    int64_t n = q_int(db, "SELECT count(*) FROM messages WHERE session_id = ?", m->id, NULL);
    if (n <= 0) {
        set_err(errmsg, errlen, "No conversation to branch \xe2\x80\x94 send a message first.");
        err = -ENODATA;
        goto out;
    }
    if (m->title && *m->title) {
        title = rt_xstrdup(m->title);
    } else {
        char *cur =
            q_text(db, "SELECT title FROM hc_session_titles WHERE session_id = ?", m->id, NULL);
        title = next_in_lineage(db, cur ? cur : "branch");
        rt_free(cur);
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "INSERT INTO sessions (id, source, user_id, model, "
                                "parent_session_id, started_at) VALUES (?, ?, ?, ?, ?, ?)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        bind_opt(st, 1, m->new_id);
        bind_opt(st, 2, m->source);
        bind_opt(st, 3, m->user_id);
        bind_opt(st, 4, m->model);
        bind_opt(st, 5, m->id);
        sqlite3_bind_double(st, 6, st_now_epoch());
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        err = fail_sql(db, rc, errmsg, errlen, "create the branch session");
        goto out;
    }
    rc = sqlite3_prepare_v2(db,
                            "INSERT INTO messages (session_id, role, content, tool_call_id, "
                            "tool_calls, tool_name, timestamp, token_count, finish_reason) "
                            "SELECT ?1, role, content, tool_call_id, tool_calls, tool_name, "
                            "timestamp, token_count, finish_reason FROM messages "
                            "WHERE session_id = ?2 ORDER BY timestamp, id",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        bind_opt(st, 1, m->new_id);
        bind_opt(st, 2, m->id);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        copied = sqlite3_changes(db);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(
            db,
            "UPDATE sessions SET message_count = (SELECT count(*) FROM messages WHERE "
            "session_id = ?1), tool_call_count = (SELECT count(*) FROM messages WHERE "
            "session_id = ?1 AND (role = 'tool' OR tool_calls IS NOT NULL)) WHERE id = ?1",
            -1, &st, NULL);
        if (rc == SQLITE_OK) {
            bind_opt(st, 1, m->new_id);
            rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        }
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_OK) {
        err = fail_sql(db, rc, errmsg, errlen, "copy the transcript");
        goto out;
    }
    err = put_title(db, m->new_id, title, errmsg, errlen);
    if (err)
        goto out;
    err = exec_sql(db, "COMMIT", errmsg, errlen);
out:
    if (err) {
        rollback(db);
        rt_free(title);
        return err;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", m->new_id);
    cJSON_AddStringToObject(o, "parent", m->id);
    cJSON_AddStringToObject(o, "title", title);
    cJSON_AddNumberToObject(o, "copied", (double)copied);
    int64_t users =
        q_int(db, "SELECT count(*) FROM messages WHERE session_id = ? AND role = 'user'", m->new_id,
              NULL);
    cJSON_AddNumberToObject(o, "user_messages", (double)(users < 0 ? 0 : users));
    rt_free(title);
    *out = o;
    return 0;
}

/* [{"name", "count"}] from a two-column query bound with (since, source). */
static int ranked(sqlite3 *db, const char *sql, const st_msg_sop *m, cJSON *into, const char *key)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_double(st, 1, m->since);
    bind_opt(st, 2, m->source);
    cJSON *arr = cJSON_AddArrayToObject(into, key);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", col_text(st, 0) ? col_text(st, 0) : "(unknown)");
        cJSON_AddNumberToObject(o, "count", (double)sqlite3_column_int64(st, 1));
        cJSON_AddItemToArray(arr, o);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

#define IN_WINDOW "s.started_at >= ?1 AND (?2 IS NULL OR s.source = ?2)"

static int insights(sqlite3 *db, const st_msg_sop *m, cJSON **out, char *errmsg, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db,
        "SELECT count(*), COALESCE(sum(s.message_count), 0), COALESCE(sum(s.tool_call_count), 0), "
        "COALESCE(sum(s.input_tokens), 0), COALESCE(sum(s.output_tokens), 0), "
        "(SELECT count(*) FROM messages m JOIN sessions s ON s.id = m.session_id WHERE " IN_WINDOW
        " AND m.role = 'user') FROM sessions s WHERE " IN_WINDOW,
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fail_sql(db, rc, errmsg, errlen, "insights");
    sqlite3_bind_double(st, 1, m->since);
    bind_opt(st, 2, m->source);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        int err = fail_sql(db, rc, errmsg, errlen, "insights");
        sqlite3_finalize(st);
        return err;
    }
    cJSON *o = cJSON_CreateObject();
    static const char *const keys[] = {"sessions",     "messages",      "tool_calls",
                                       "input_tokens", "output_tokens", "user_messages"};
    for (int i = 0; i < 6; i++)
        cJSON_AddNumberToObject(o, keys[i], (double)sqlite3_column_int64(st, i));
    sqlite3_finalize(st);
    rc = ranked(db,
                "SELECT m.tool_name, count(*) AS n FROM messages m JOIN sessions s ON s.id = "
                "m.session_id WHERE " IN_WINDOW " AND m.role = 'tool' AND m.tool_name IS NOT NULL "
                "GROUP BY m.tool_name ORDER BY n DESC, m.tool_name LIMIT 10",
                m, o, "tools");
    if (rc == SQLITE_OK)
        rc = ranked(db,
                    "SELECT s.source, count(*) AS n FROM sessions s WHERE " IN_WINDOW
                    " GROUP BY s.source ORDER BY n DESC, s.source LIMIT 10",
                    m, o, "platforms");
    if (rc == SQLITE_OK)
        rc = ranked(db,
                    "SELECT s.model, count(*) AS n FROM sessions s WHERE " IN_WINDOW
                    " AND s.model IS NOT NULL GROUP BY s.model ORDER BY n DESC, s.model LIMIT 5",
                    m, o, "models");
    if (rc != SQLITE_OK) {
        cJSON_Delete(o);
        return fail_sql(db, rc, errmsg, errlen, "insights");
    }
    *out = o;
    return 0;
}

static int transcript(sqlite3 *db, const st_msg_sop *m, cJSON **out, char *errmsg, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT role, content FROM messages WHERE session_id = ? AND "
                                "role IN ('user', 'assistant') AND content IS NOT NULL AND "
                                "content != '' ORDER BY timestamp, id",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fail_sql(db, rc, errmsg, errlen, "read the transcript");
    bind_opt(st, 1, m->id);
    cJSON *arr = cJSON_CreateArray();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", col_text(st, 0));
        cJSON_AddStringToObject(o, "content", col_text(st, 1));
        cJSON_AddItemToArray(arr, o);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        cJSON_Delete(arr);
        return fail_sql(db, rc, errmsg, errlen, "read the transcript");
    }
    *out = arr;
    return 0;
}

static int delete_session(sqlite3 *db, const st_msg_sop *m, cJSON **out, char *errmsg,
                          size_t errlen)
{
    static const char *const sql[] = {
        "DELETE FROM messages WHERE session_id = ?",
        "DELETE FROM hc_session_titles WHERE session_id = ?",
        "DELETE FROM sessions WHERE id = ?",
    };
    int err = exec_sql(db, "BEGIN IMMEDIATE", errmsg, errlen);
    if (err)
        return err;
    int64_t deleted = 0;
    for (size_t i = 0; i < RT_ARRAY_LEN(sql) && !err; i++) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, sql[i], -1, &st, NULL);
        if (rc == SQLITE_OK) {
            bind_opt(st, 1, m->id);
            rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        }
        if (i == 0)
            deleted = sqlite3_changes(db);
        sqlite3_finalize(st);
        if (rc != SQLITE_OK)
            err = fail_sql(db, rc, errmsg, errlen, "delete the session");
    }
    if (!err)
        err = exec_sql(db, "COMMIT", errmsg, errlen);
    if (err) {
        rollback(db);
        return err;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddNumberToObject(o, "deleted", (double)deleted);
    *out = o;
    return 0;
}

int st_sop_exec(sqlite3 *db, const st_msg_sop *m, cJSON **out, char *errmsg, size_t errlen)
{
    *out = NULL;
    if (errmsg && errlen)
        errmsg[0] = '\0';
    bool needs_id = m->op == ST_SOP_TITLE_SET || m->op == ST_SOP_TITLE_GET ||
                    m->op == ST_SOP_TRANSCRIPT || m->op == ST_SOP_DELETE;
    if (needs_id && (!m->id || !*m->id)) {
        set_err(errmsg, errlen, "a session id is required");
        return -EINVAL;
    }
    switch (m->op) {
    case ST_SOP_TITLE_SET: return title_set(db, m, out, errmsg, errlen);
    case ST_SOP_TITLE_GET: return title_get(db, m, out);
    case ST_SOP_TITLE_FIND: return title_find(db, m, out, errmsg, errlen);
    case ST_SOP_TITLE_LIST: return title_list(db, m, out, errmsg, errlen);
    case ST_SOP_BRANCH: return branch(db, m, out, errmsg, errlen);
    case ST_SOP_INSIGHTS: return insights(db, m, out, errmsg, errlen);
    case ST_SOP_TRANSCRIPT: return transcript(db, m, out, errmsg, errlen);
    case ST_SOP_DELETE: return delete_session(db, m, out, errmsg, errlen);
    default: set_err(errmsg, errlen, "unknown session operation %d", m->op); return -EINVAL;
    }
}
