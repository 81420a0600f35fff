/*
 * st_schema — state.db schema, connection set-up, error mapping and the doctor check.
 * See st_schema.h for the rules every migration follows.
 */
#include "st_schema.h"

#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ================================================================ the original's DDL */

/* Byte for byte the original's SCHEMA_SQL, so sqlite_master holds the same text. */
const char st_schema_original_sql[] =
    "\n"
    "CREATE TABLE IF NOT EXISTS schema_version (\n"
    "    version INTEGER NOT NULL\n"
    ");\n"
    "\n"
    "CREATE TABLE IF NOT EXISTS sessions (\n"
    "    id TEXT PRIMARY KEY,\n"
    "    source TEXT NOT NULL,\n"
    "    user_id TEXT,\n"
    "    model TEXT,\n"
    "    model_config TEXT,\n"
    "    system_prompt TEXT,\n"
    "    parent_session_id TEXT,\n"
    "    started_at REAL NOT NULL,\n"
    "    ended_at REAL,\n"
    "    end_reason TEXT,\n"
    "    message_count INTEGER DEFAULT 0,\n"
    "    tool_call_count INTEGER DEFAULT 0,\n"
    "    input_tokens INTEGER DEFAULT 0,\n"
    "    output_tokens INTEGER DEFAULT 0,\n"
    "    FOREIGN KEY (parent_session_id) REFERENCES sessions(id)\n"
    ");\n"
    "\n"
    "CREATE TABLE IF NOT EXISTS messages (\n"
    "    id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    session_id TEXT NOT NULL REFERENCES sessions(id),\n"
    "    role TEXT NOT NULL,\n"
    "    content TEXT,\n"
    "    tool_call_id TEXT,\n"
    "    tool_calls TEXT,\n"
    "    tool_name TEXT,\n"
    "    timestamp REAL NOT NULL,\n"
    "    token_count INTEGER,\n"
    "    finish_reason TEXT\n"
    ");\n"
    "\n"
    "CREATE INDEX IF NOT EXISTS idx_sessions_source ON sessions(source);\n"
    "CREATE INDEX IF NOT EXISTS idx_sessions_parent ON sessions(parent_session_id);\n"
    "CREATE INDEX IF NOT EXISTS idx_sessions_started ON sessions(started_at DESC);\n"
    "CREATE INDEX IF NOT EXISTS idx_messages_session ON messages(session_id, timestamp);\n";

/* Byte for byte the original's FTS_SQL. */
const char st_schema_original_fts_sql[] =
    "\n"
    "CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(\n"
    "    content,\n"
    "    content=messages,\n"
    "    content_rowid=id\n"
    ");\n"
    "\n"
    "CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages BEGIN\n"
    "    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);\n"
    "END;\n"
    "\n"
    "CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages BEGIN\n"
    "    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES('delete', old.id, "
    "old.content);\n"
    "END;\n"
    "\n"
    "CREATE TRIGGER IF NOT EXISTS messages_fts_update AFTER UPDATE ON messages BEGIN\n"
    "    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES('delete', old.id, "
    "old.content);\n"
    "    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);\n"
    "END;\n";

/* ======================================================================= our migrations */

static const char hc_schema_sql[] = "CREATE TABLE IF NOT EXISTS hc_schema (\n"
                                    "    version INTEGER PRIMARY KEY,\n"
                                    "    name TEXT NOT NULL,\n"
                                    "    applied_at REAL NOT NULL\n"
                                    ")";

/*
 * The built-in list. Append only (st_schema.h rules a-c); bump ST_HC_SCHEMA_VERSION with it.
 */
static const char hc_inbound_sql[] =
    "CREATE TABLE hc_inbound (\n"
    "    platform TEXT NOT NULL,\n"
    "    message_id TEXT NOT NULL,\n"
    "    session_key TEXT,\n"
    "    received_at REAL NOT NULL,\n"
    "    PRIMARY KEY (platform, message_id)\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX idx_hc_inbound_received ON hc_inbound(received_at);\n";

static const char hc_outbox_sql[] = "CREATE TABLE hc_outbox (\n"
                                    "    id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
                                    "    platform TEXT NOT NULL,\n"
                                    "    chat_id TEXT NOT NULL,\n"
                                    "    thread_id TEXT,\n"
                                    "    reply_to TEXT,\n"
                                    "    text TEXT NOT NULL,\n"
                                    "    kind INTEGER NOT NULL DEFAULT 0,\n"
                                    "    part INTEGER NOT NULL DEFAULT 0,\n"
                                    "    parts INTEGER NOT NULL DEFAULT 0,\n"
                                    "    created_at REAL NOT NULL,\n"
                                    "    state TEXT NOT NULL DEFAULT 'pending',\n"
                                    "    attempts INTEGER NOT NULL DEFAULT 0,\n"
                                    "    last_error TEXT\n"
                                    ");\n"
                                    "CREATE INDEX idx_hc_outbox_state ON hc_outbox(state, id);\n";

/* Session titles (/title, /resume, /branch). The original keeps them in a sessions.title
 * column (its schema v6); ours may not ALTER the original's tables (rule a), so they live
 * here, keyed by the session id (no foreign key: a chat may name its session before the
 * first message has created the sessions row). Unique without regard to ASCII case. */
static const char hc_session_titles_sql[] =
    "CREATE TABLE hc_session_titles (\n"
    "    session_id TEXT PRIMARY KEY,\n"
    "    title TEXT NOT NULL UNIQUE COLLATE NOCASE,\n"
    "    updated_at REAL NOT NULL\n"
    ");\n"
    "CREATE INDEX idx_hc_session_titles_updated ON hc_session_titles(updated_at DESC);\n";

/* The inbox journal: an accepted update that may still have to reach the conversation (the
 * event, replayable, without secrets), from the moment its hc_inbound key is written until
 * the conversation has its message (or dealt with it otherwise). A crash in between leaves
 * the row, and the next start replays it. */
static const char hc_inbox_sql[] = "CREATE TABLE hc_inbox (\n"
                                   "    platform TEXT NOT NULL,\n"
                                   "    message_id TEXT NOT NULL,\n"
                                   "    session_key TEXT,\n"
                                   "    event_json TEXT NOT NULL,\n"
                                   "    received_at REAL NOT NULL,\n"
                                   "    PRIMARY KEY (platform, message_id)\n"
                                   ");\n"
                                   "CREATE INDEX idx_hc_inbox_received ON hc_inbox(received_at);\n";

/* The gateway's sessions index entries that left memory (st_index.h): one row per session
 * key, the entry as sessions.json writes it (JSON text), with its session id and platform
 * beside it for the lookups that must find cold conversations too. */
static const char hc_session_index_sql[] =
    "CREATE TABLE hc_session_index (\n"
    "    key TEXT PRIMARY KEY,\n"
    "    session_id TEXT,\n"
    "    platform TEXT,\n"
    "    entry TEXT NOT NULL,\n"
    "    updated_at REAL NOT NULL\n"
    ");\n"
    "CREATE INDEX idx_hc_session_index_platform ON hc_session_index(platform, updated_at);\n"
    "CREATE INDEX idx_hc_session_index_session ON hc_session_index(session_id);\n";

/* Messages the writer stored without their search index entries yet (st_store.c, "Search
 * index"): it indexes them in batches under load, and what a crash left here at the next
 * start. */
static const char hc_fts_pending_sql[] = "CREATE TABLE hc_fts_pending (id INTEGER PRIMARY KEY);\n";

static const st_migration builtin_migrations[] = {
    {1, "baseline: the original Hermes schema v2 (sessions, messages, messages_fts)", NULL},
    {2, "hc_inbound: the platform updates the gateway accepted (exactly-once handling)",
     hc_inbound_sql},
    {3, "hc_outbox: replies written before they are sent, until the platform took them",
     hc_outbox_sql},
    {4, "hc_session_titles: session titles for /title, /resume and /branch", hc_session_titles_sql},
    {5, "hc_inbox: accepted updates not yet in their conversation (replayed after a crash)",
     hc_inbox_sql},
    {6, "hc_session_index: sessions index entries idle long enough to leave the gateway's memory",
     hc_session_index_sql},
    {7, "hc_fts_pending: stored messages whose search index entries are written in batches",
     hc_fts_pending_sql},
};
_Static_assert(RT_ARRAY_LEN(builtin_migrations) == ST_HC_SCHEMA_VERSION,
               "ST_HC_SCHEMA_VERSION names the last built-in migration");

/* ======================================================================== errors */

int st_errno_from_sqlite(int rc)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_FOREIGNKEY: return -ENOENT;
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE: return -EEXIST;
    case SQLITE_IOERR_NOMEM: return -ENOMEM;
    default: break;
    }
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE: return 0;
    case SQLITE_FULL: return -ENOSPC;
    case SQLITE_IOERR: return -EIO;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return -EBADMSG;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return -EBUSY;
    case SQLITE_READONLY: return -EROFS;
    case SQLITE_PERM:
    case SQLITE_AUTH: return -EACCES;
    case SQLITE_NOMEM: return -ENOMEM;
    case SQLITE_TOOBIG: return -E2BIG;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_ERROR: return -EINVAL;
    case SQLITE_INTERRUPT: return -ECANCELED;
    case SQLITE_CANTOPEN: return -ENOENT;
    default: return -EIO;
    }
}

void st_errmsg_format(char *buf, size_t len, sqlite3 *db, int rc, const char *what)
{
    const char *code = sqlite3_errstr(rc);
    const char *msg = db ? sqlite3_errmsg(db) : code;
    const char *hint = "";
    if ((rc & 0xff) == SQLITE_FULL)
        hint = "; the disk holding state.db is full or its size limit was reached";
    else if ((rc & 0xff) == SQLITE_IOERR)
        hint = "; the disk holding state.db failed a read or write";
    if (!buf || len == 0)
        return;
    if (strcmp(msg, code) == 0)
        snprintf(buf, len, "%s: %s (sqlite %d)%s", what, msg, rc, hint);
    else
        snprintf(buf, len, "%s: %s (%s, sqlite %d)%s", what, msg, code, rc, hint);
}

static void set_msg(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_msg(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

int st_db_exec(sqlite3 *db, const char *sql, char *errmsg, size_t errlen)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return 0;
    st_errmsg_format(errmsg, errlen, db, rc, "state.db");
    return st_errno_from_sqlite(rc);
}

double st_now_epoch(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ======================================================================== opening */

/* mkdir the parent folder if missing (one level, 0700), as the original's mkdir(exist_ok). */
static int ensure_parent(const char *path, char *errmsg, size_t errlen)
{
    char dir[PATH_MAX];
    if (rt_strlcpy(dir, path, sizeof(dir)) >= sizeof(dir)) {
        set_msg(errmsg, errlen, "state.db path is too long");
        return -ENAMETOOLONG;
    }
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0; /* relative name in the current folder, or a file in / */
    *slash = '\0';
    if (mkdir(dir, 0700) == 0 || errno == EEXIST)
        return 0;
    int err = -errno;
    set_msg(errmsg, errlen, "cannot create folder %s for state.db: %s", dir, rt_strerror(err));
    return err;
}

/* Narrow group/other bits of path to nothing; ignore a missing file. */
static void narrow_mode(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || !(sb.st_mode & 077))
        return;
    if (chmod(path, sb.st_mode & 0700) != 0)
        RT_WARN("store", "cannot narrow mode of %s to owner-only: errno=%d", path, errno);
}

/* Create the file 0600 before SQLite does (it would use 0644 & ~umask), and narrow an
 * existing one: it holds conversations. SQLite gives -wal and -shm the main file's mode.
 * An existing file is never opened here: closing a descriptor of it would drop every POSIX
 * lock this process holds on it, those of the SQLite connections already open included
 * (the writer's, while a second write connection opens): another process closing its own
 * connection would then take the file for unused and delete the WAL under us. */
static int prepare_file(const char *path, char *errmsg, size_t errlen)
{
    int err = ensure_parent(path, errmsg, errlen);
    if (err)
        return err;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int fd = errno == ENOENT ? open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
        if (fd < 0 && errno != EEXIST) {
            err = -errno;
            set_msg(errmsg, errlen, "cannot open state database %s: %s", path, rt_strerror(err));
            return err;
        }
        if (fd >= 0)
            close(fd); /* new: nobody holds a lock on it yet */
        if (stat(path, &sb) != 0) {
            err = -errno;
            set_msg(errmsg, errlen, "cannot open state database %s: %s", path, rt_strerror(err));
            return err;
        }
    }
    if (!S_ISREG(sb.st_mode)) {
        set_msg(errmsg, errlen, "state database %s is not a regular file", path);
        return -EINVAL;
    }
    narrow_mode(path);
    char side[PATH_MAX];
    snprintf(side, sizeof(side), "%s-wal", path);
    narrow_mode(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    narrow_mode(side);
    return 0;
}

/* PRAGMA journal_mode=WAL; returns the mode now in force. */
static int set_wal(sqlite3 *db, char *mode, size_t modelen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            rt_strlcpy(mode, t ? (const char *)t : "", modelen);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static int configure(sqlite3 *db, const st_open_opts *o, char *errmsg, size_t errlen)
{
    sqlite3_busy_timeout(db, o->busy_timeout_ms > 0 ? o->busy_timeout_ms : ST_BUSY_TIMEOUT_MS);
    if (o->mode == ST_OPEN_READ_ONLY) {
        /* Touch the schema now so "not a database" is reported at open, not on first use. */
        return st_db_exec(db, "SELECT count(*) FROM sqlite_master", errmsg, errlen);
    }
    char mode[16] = "";
    int rc = set_wal(db, mode, sizeof(mode));
    if (rc != SQLITE_OK) {
        st_errmsg_format(errmsg, errlen, db, rc, "cannot switch state.db to WAL mode");
        return st_errno_from_sqlite(rc);
    }
    if (strcmp(mode, "wal") != 0) /* e.g. a filesystem without shared memory: still works */
        RT_WARN("store", "state.db journal_mode=%s, not wal: readers will wait for writes", mode);
    /*
     * synchronous=NORMAL in WAL mode: a commit appends to the WAL without an fsync; the WAL is
     * synced at checkpoints. A committed transaction survives a crash of this process (it is
     * in the OS page cache); a power loss or kernel crash may lose the last transactions
     * committed before it, but never corrupts the database. FULL syncs the WAL on every commit
     * (st_open_opts.sync_full) and costs an fsync per group commit.
     */
    const char *sync = o->sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
    int err = st_db_exec(db, sync, errmsg, errlen);
    if (!err)
        err = st_db_exec(db, "PRAGMA foreign_keys=ON", errmsg, errlen);
    return err;
}

int st_db_open(const char *path, const st_open_opts *o, sqlite3 **out, char *errmsg, size_t errlen)
{
    *out = NULL;
    if (!path || !*path) {
        set_msg(errmsg, errlen, "no state database path given");
        return -EINVAL;
    }
    int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    if (o->mode == ST_OPEN_WRITE) {
        int err = prepare_file(path, errmsg, errlen);
        if (err)
            return err;
        flags |= SQLITE_OPEN_READWRITE;
    } else {
        struct stat sb;
        if (stat(path, &sb) != 0) {
            int err = -errno;
            set_msg(errmsg, errlen, "no state database at %s: %s", path, rt_strerror(err));
            return err;
        }
        flags |= SQLITE_OPEN_READONLY;
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        int sys = db ? sqlite3_system_errno(db) : 0;
        st_errmsg_format(errmsg, errlen, db, rc, "cannot open state.db");
        sqlite3_close(db);
        return sys > 0 ? -sys : st_errno_from_sqlite(rc);
    }
    int err = configure(db, o, errmsg, errlen);
    if (err) {
        sqlite3_close(db);
        return err;
    }
    *out = db;
    return 0;
}

/* ================================================================ schema creation */

/* One integer from a query, or def when there is no row. Returns the SQLite rc. */
static int query_int(sqlite3 *db, const char *sql, int64_t def, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    *out = def;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) != SQLITE_NULL)
            *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static bool has_column(sqlite3 *db, const char *table, const char *column)
{
    char sql[160];
    int64_t n = 0;
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM pragma_table_info('%s') WHERE name = '%s'",
             table, column);
    return query_int(db, sql, 0, &n) == SQLITE_OK && n > 0;
}

/* The original's _init_schema, step by step, inside the caller's transaction. */
static int original_init(sqlite3 *db, char *errmsg, size_t errlen)
{
    int err = st_db_exec(db, st_schema_original_sql, errmsg, errlen);
    if (err)
        return err;
    int64_t version = -1;
    int rc = query_int(db, "SELECT version FROM schema_version LIMIT 1", -1, &version);
    if (rc != SQLITE_OK) {
        st_errmsg_format(errmsg, errlen, db, rc, "cannot read schema_version");
        return st_errno_from_sqlite(rc);
    }
    if (version < 0) {
        err = st_db_exec(db, "INSERT INTO schema_version (version) VALUES (2)", errmsg, errlen);
    } else if (version < 2) {
        /* v2 added finish_reason; the original ignores "duplicate column", we check first. */
        if (!has_column(db, "messages", "finish_reason"))
            err = st_db_exec(db, "ALTER TABLE messages ADD COLUMN finish_reason TEXT", errmsg,
                             errlen);
        if (!err)
            err = st_db_exec(db, "UPDATE schema_version SET version = 2", errmsg, errlen);
        if (!err)
            RT_INFO("store", "state.db schema upgraded from version %lld to 2", (long long)version);
    }
    if (err)
        return err;
    /* The original creates the FTS objects when this probe fails. */
    sqlite3_stmt *probe = NULL;
    rc = sqlite3_prepare_v2(db, "SELECT * FROM messages_fts LIMIT 0", -1, &probe, NULL);
    sqlite3_finalize(probe);
    if (rc == SQLITE_OK)
        return 0;
    err = st_db_exec(db, st_schema_original_fts_sql, errmsg, errlen);
    if (err && strstr(errmsg ? errmsg : "", "no such module")) {
        set_msg(errmsg, errlen, "this SQLite library has no FTS5: state.db needs it for search");
        return -ENOTSUP;
    }
    return err;
}

int st_schema_init(sqlite3 *db, char *errmsg, size_t errlen)
{
    int err = st_db_exec(db, "BEGIN IMMEDIATE", errmsg, errlen);
    if (err)
        return err;
    err = original_init(db, errmsg, errlen);
    if (!err)
        err = st_db_exec(db, "COMMIT", errmsg, errlen);
    if (err) {
        if (!sqlite3_get_autocommit(db))
            (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL); /* the first error is reported */
        return err;
    }
    return st_schema_migrate(db, builtin_migrations, RT_ARRAY_LEN(builtin_migrations), errmsg,
                             errlen);
}

static int record_migration(sqlite3 *db, const st_migration *m)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db, "INSERT INTO hc_schema (version, name, applied_at) VALUES (?, ?, ?)", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int(st, 1, m->version);
    sqlite3_bind_text(st, 2, m->name ? m->name : "", -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 3, st_now_epoch());
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Apply one migration in its own transaction unless another opener got there first (rule c). */
static int apply_migration(sqlite3 *db, const st_migration *m, char *errmsg, size_t errlen)
{
    char what[160];
    snprintf(what, sizeof(what), "migration %d (%s) failed", m->version, m->name ? m->name : "");
    int err = st_db_exec(db, "BEGIN IMMEDIATE", errmsg, errlen);
    if (err)
        return err;
    int64_t cur = 0;
    int rc = query_int(db, "SELECT max(version) FROM hc_schema", 0, &cur);
    if (rc == SQLITE_OK && cur >= m->version) {
        (void)sqlite3_exec(db, "COMMIT", NULL, NULL, NULL); /* read-only txn: cannot fail */
        return 0;
    }
    if (rc == SQLITE_OK && m->sql)
        rc = sqlite3_exec(db, m->sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = record_migration(db, m);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        st_errmsg_format(errmsg, errlen, db, rc, what);
        if (!sqlite3_get_autocommit(db))
            (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL); /* rc is what we report */
        return st_errno_from_sqlite(rc);
    }
    RT_INFO("store", "state.db migration %d applied: %s", m->version, m->name ? m->name : "");
    return 0;
}

int st_schema_migrate(sqlite3 *db, const st_migration *list, size_t n, char *errmsg, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i].version <= 0 || (i > 0 && list[i].version <= list[i - 1].version)) {
            set_msg(errmsg, errlen, "migration list is not strictly increasing at entry %zu", i);
            return -EINVAL;
        }
    }
    int err = st_db_exec(db, hc_schema_sql, errmsg, errlen);
    if (err)
        return err;
    int64_t cur = 0;
    int rc = query_int(db, "SELECT max(version) FROM hc_schema", 0, &cur);
    if (rc != SQLITE_OK) {
        st_errmsg_format(errmsg, errlen, db, rc, "cannot read hc_schema");
        return st_errno_from_sqlite(rc);
    }
    for (size_t i = 0; i < n; i++) {
        if (list[i].version <= cur)
            continue;
        err = apply_migration(db, &list[i], errmsg, errlen);
        if (err)
            return err;
    }
    if (n > 0 && cur > list[n - 1].version)
        RT_WARN("store",
                "state.db schema %lld is newer than this build's %d: opening anyway "
                "(migrations are additive)",
                (long long)cur, list[n - 1].version);
    return 0;
}

int st_schema_versions(sqlite3 *db, int *original, int *ours)
{
    int64_t v = -1;
    if (original) {
        int rc = query_int(db, "SELECT version FROM schema_version LIMIT 1", -1, &v);
        *original = rc == SQLITE_OK ? (int)v : -1;
        if (rc != SQLITE_OK && !strstr(sqlite3_errmsg(db), "no such table"))
            return st_errno_from_sqlite(rc);
    }
    if (ours) {
        int rc = query_int(db, "SELECT max(version) FROM hc_schema", 0, &v);
        *ours = rc == SQLITE_OK ? (int)v : 0;
        if (rc != SQLITE_OK && !strstr(sqlite3_errmsg(db), "no such table"))
            return st_errno_from_sqlite(rc);
    }
    return 0;
}

/* ======================================================================== doctor */

static void check_fail(st_check *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void check_fail(st_check *c, int err, const char *fmt, ...)
{
    if (c->err)
        return; /* the first problem is the one reported */
    c->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->problem, sizeof(c->problem), fmt, ap);
    va_end(ap);
}

static void check_quick(sqlite3 *db, st_check *c)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (!t || strcmp(t, "ok") != 0)
            check_fail(c, -EBADMSG, "integrity check failed: %s", t ? t : "(no result)");
    } else {
        char msg[ST_ERRMSG_MAX];
        st_errmsg_format(msg, sizeof(msg), db, rc, "integrity check could not run");
        check_fail(c, st_errno_from_sqlite(rc), "%s", msg);
    }
    sqlite3_finalize(st);
}

static void check_journal(sqlite3 *db, st_check *c)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        rt_strlcpy(c->journal_mode, t ? t : "", sizeof(c->journal_mode));
    }
    sqlite3_finalize(st);
    if (strcmp(c->journal_mode, "wal") != 0)
        check_fail(c, -EINVAL, "journal mode is '%s', expected 'wal' (hermes sets it on start)",
                   c->journal_mode);
}

int st_store_check(const char *path, st_check *out)
{
    memset(out, 0, sizeof(*out));
    out->original_version = -1;
    struct stat sb;
    if (!path || stat(path, &sb) != 0) {
        int err = path ? -errno : -EINVAL;
        check_fail(out, err, "no state database at %s: %s", path ? path : "(null)",
                   rt_strerror(err));
        return out->err;
    }
    out->file_bytes = (int64_t)sb.st_size;
    out->mode = (unsigned)(sb.st_mode & 0777);
    sqlite3 *db = NULL;
    char msg[ST_ERRMSG_MAX] = "";
    st_open_opts o = {.mode = ST_OPEN_READ_ONLY};
    int err = st_db_open(path, &o, &db, msg, sizeof(msg));
    if (err) {
        check_fail(out, err, "%s", msg);
        return out->err;
    }
    check_quick(db, out);
    check_journal(db, out);
    (void)st_schema_versions(db, &out->original_version, &out->hc_version); /* -1/0 stay */
    if (out->original_version < 0)
        check_fail(out, -EINVAL, "no schema_version table: not a Hermes state database");
    else if (out->original_version < ST_ORIGINAL_SCHEMA_VERSION)
        check_fail(out, -EINVAL, "schema version %d is older than %d (hermes upgrades it on start)",
                   out->original_version, ST_ORIGINAL_SCHEMA_VERSION);
    int64_t n = 0;
    out->has_fts = query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'messages_fts'",
                             0, &n) == SQLITE_OK &&
                   n > 0;
    if (!out->has_fts)
        check_fail(out, -EINVAL, "the full-text index messages_fts is missing");
    (void)query_int(db, "SELECT count(*) FROM sessions", 0, &out->sessions); /* 0 if missing */
    (void)query_int(db, "SELECT count(*) FROM messages", 0, &out->messages);
    if (out->mode & 077)
        check_fail(out, -EACCES, "state.db is readable by other users (mode %04o, want 0600)",
                   out->mode);
    sqlite3_close(db);
    return out->err;
}
