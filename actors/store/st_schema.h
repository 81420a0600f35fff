/*
 * st_schema — the schema of ~/.hermes/state.db, how connections to it are opened, SQLite
 * result codes turned into -errno, and the health check `hermes doctor` runs.
 *
 * Two schemas live in one file:
 *   1. The original Hermes's tables, created with its exact DDL (hermes_state.py, SCHEMA_SQL
 *      and FTS_SQL, SCHEMA_VERSION 2): schema_version, sessions, messages, their indexes, the
 *      external-content FTS5 table messages_fts and its three triggers. Its init logic is
 *      replayed exactly, including the v1 -> v2 migration (ALTER TABLE messages ADD COLUMN
 *      finish_reason). An existing state.db opens and keeps working; an original Hermes can
 *      open ours.
 *   2. Our own additions, as numbered migrations recorded in the table hc_schema. Rules for
 *      every migration (they keep rule 1 true):
 *        a. additive only: CREATE TABLE / CREATE INDEX of tables named hc_*; never ALTER,
 *           DROP or write the original's tables, never touch schema_version (its version
 *           numbers belong to the original and its later releases, which migrate from it);
 *        b. versions strictly increase and are never reused or edited once released;
 *        c. each runs in its own IMMEDIATE transaction together with its hc_schema row, so a
 *           crash or a concurrent opener sees it applied fully or not at all.
 *      A database from a newer build (hc_schema beyond what we know) still opens: every
 *      migration is additive, so our statements keep working.
 *
 * Threads: every function may be called from any thread; a sqlite3 handle must be used by one
 * thread at a time (connections are opened with SQLITE_OPEN_NOMUTEX).
 */
#ifndef ST_SCHEMA_H
#define ST_SCHEMA_H

#include <sqlite3.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_ORIGINAL_SCHEMA_VERSION 2     /* schema_version.version the original writes */
#define ST_HC_SCHEMA_VERSION       7     /* the newest hc_schema version this build knows */
#define ST_ERRMSG_MAX              256   /* inline error text in replies and check results */
#define ST_BUSY_TIMEOUT_MS         10000 /* the original's sqlite3.connect(timeout=10.0) */

/* The original's DDL, byte for byte (hermes_state.py SCHEMA_SQL and FTS_SQL at the baseline). */
extern const char st_schema_original_sql[];
extern const char st_schema_original_fts_sql[];

/* One of our migrations (rules a-c above). sql may hold several statements, or be NULL. */
typedef struct st_migration {
    int version;      /* > 0, strictly increasing along a list */
    const char *name; /* what it adds, for hc_schema and the logs */
    const char *sql;  /* additive DDL only */
} st_migration;

enum st_open_mode {
    ST_OPEN_WRITE,     /* create the file (0600) and its folder if missing; the writer */
    ST_OPEN_READ_ONLY, /* the file must exist; readers, doctor */
};

typedef struct st_open_opts {
    enum st_open_mode mode;
    int busy_timeout_ms; /* 0: ST_BUSY_TIMEOUT_MS */
    bool sync_full;      /* writer: PRAGMA synchronous=FULL instead of NORMAL */
} st_open_opts;

/*
 * Open path and configure the connection: WAL, foreign_keys=ON, busy timeout, extended result
 * codes and (writer) synchronous=NORMAL or FULL. The writer also creates the parent folder
 * (0700) if missing and the file with mode 0600, and narrows an existing file (and its -wal
 * and -shm) to 0600: it holds conversations. Does not create the schema (st_schema_init).
 * Returns 0 and the connection in *out (close with sqlite3_close), or -errno with a sentence
 * in errmsg: -ENOENT (read-only and no such file), -EACCES, -EBADMSG (not a database), -EIO.
 * Blocks on disk: not for a behaviour running on a worker.
 */
int st_db_open(const char *path, const st_open_opts *o, sqlite3 **out, char *errmsg, size_t errlen);

/*
 * Create or upgrade the schema on a writer connection: the original's init (tables, v1 -> v2
 * migration, FTS5 table and triggers) in one transaction, then our built-in migrations.
 * Idempotent. Returns 0 or -errno with errmsg (-ENOTSUP when SQLite lacks FTS5).
 */
int st_schema_init(sqlite3 *db, char *errmsg, size_t errlen);

/*
 * Apply the migrations of list[0..n) that hc_schema does not record yet (rules a-c). Creates
 * hc_schema if needed. A failing migration is rolled back and stops the run: returns its
 * -errno with "migration N (name) failed: ..." in errmsg; earlier ones stay applied.
 * -EINVAL if the list is not strictly increasing. Exposed so tests can run their own lists.
 */
int st_schema_migrate(sqlite3 *db, const st_migration *list, size_t n, char *errmsg, size_t errlen);

/* Read schema_version.version (-1 if the table or row is missing) and the newest hc_schema
 * version (0 if none). Either pointer may be NULL. Returns 0 or -errno. */
int st_schema_versions(sqlite3 *db, int *original, int *ours);

/* Map a SQLite result code (primary or extended) to 0 or -errno:
 * FULL -ENOSPC, IOERR -EIO, CORRUPT/NOTADB -EBADMSG, BUSY/LOCKED -EBUSY, READONLY -EROFS,
 * PERM/AUTH -EACCES, NOMEM -ENOMEM, TOOBIG -E2BIG, CONSTRAINT_FOREIGNKEY -ENOENT,
 * CONSTRAINT_PRIMARYKEY/UNIQUE -EEXIST, other CONSTRAINT/MISMATCH/RANGE/ERROR -EINVAL,
 * INTERRUPT -ECANCELED, CANTOPEN -ENOENT, anything else -EIO. */
int st_errno_from_sqlite(int rc);

/* Write "<what>: <sqlite message> (<result code name>)" into buf, with a hint for disk full
 * and I/O errors. Call right after the failing call, before db is used again. */
void st_errmsg_format(char *buf, size_t len, sqlite3 *db, int rc, const char *what);

/* Run sql (one or more statements, no results) and map errors like st_errmsg_format. */
int st_db_exec(sqlite3 *db, const char *sql, char *errmsg, size_t errlen);

/* Unix epoch seconds as a float, like the original's time.time(). */
double st_now_epoch(void);

/* What `hermes doctor` reports about state.db. */
typedef struct st_check {
    int err;                     /* 0 healthy, else -errno of the first problem found */
    char problem[ST_ERRMSG_MAX]; /* that problem in a sentence, "" when healthy */
    char journal_mode[16];       /* "wal" expected */
    int original_version;        /* schema_version.version, -1 if missing */
    int hc_version;              /* newest hc_schema version, 0 if none */
    bool has_fts;                /* messages_fts exists */
    int64_t sessions;            /* rows in sessions */
    int64_t messages;            /* rows in messages */
    int64_t file_bytes;          /* size of the main file */
    unsigned mode;               /* permission bits of the main file */
} st_check;

/*
 * Open path read-only and check it: PRAGMA quick_check, journal mode WAL, schema version,
 * FTS5 table present, file mode 0600. Fills *out (out->err and out->problem name the first
 * problem) and returns out->err. Never creates or changes the file. Blocks on disk.
 */
int st_store_check(const char *path, st_check *out);

#endif /* ST_SCHEMA_H */
