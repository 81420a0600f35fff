/*
 * Schema: created exactly as the original's (sqlite_master compared with a database built from
 * the original's DDL), migration of a version-1 database, our own migrations (idempotent,
 * atomic, never touching the original's tables), file modes, open errors and the doctor check.
 */
#include "st_test.h"

#include "rt_buf.h"

#include <fcntl.h>

/* The text between "-- BEGIN <name>" and "-- END <name>" in a fixture (heap string). */
static char *fixture_section(const char *fixture, const char *name)
{
    char p[512], begin[64], end[64];
    snprintf(p, sizeof(p), "%s/%s", ST_TEST_DATA, fixture);
    snprintf(begin, sizeof(begin), "-- BEGIN %s", name);
    snprintf(end, sizeof(end), "-- END %s", name);
    char *s = slurp(p);
    char *a = strstr(s, begin);
    ASSERT_NOT_NULL(a);
    a += strlen(begin);
    char *b = strstr(a, end);
    ASSERT_NOT_NULL(b);
    char *out = rt_xstrndup(a, (size_t)(b - a));
    rt_free(s);
    return out;
}

/* sqlite_master as one string, our hc_* tables (and their indexes) left out. */
static char *master_dump(sqlite3 *db)
{
    rt_buf b;
    rt_buf_init(&b, 1 << 20);
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_prepare_v2(
                             db,
                             "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master "
                             "WHERE tbl_name NOT LIKE 'hc\\_%' ESCAPE '\\' ORDER BY type, name",
                             -1, &st, NULL));
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int i = 0; i < 4; i++)
            ASSERT_OK(rt_buf_printf(&b, "%s%s", (const char *)sqlite3_column_text(st, i),
                                    i == 3 ? "\n--\n" : " | "));
    }
    sqlite3_finalize(st);
    return rt_buf_steal(&b, NULL);
}

static sqlite3 *open_ours(const char *path)
{
    sqlite3 *db = NULL;
    char msg[ST_ERRMSG_MAX] = "";
    st_open_opts o = {.mode = ST_OPEN_WRITE};
    int err = st_db_open(path, &o, &db, msg, sizeof(msg));
    if (err)
        TEST_FAIL_("st_db_open: %d %s", err, msg);
    err = st_schema_init(db, msg, sizeof(msg));
    if (err)
        TEST_FAIL_("st_schema_init: %d %s", err, msg);
    return db;
}

TEST(ddl_constants_are_the_originals_text)
{
    char *schema = fixture_section("original_v2.sql", "SCHEMA_SQL");
    char *fts = fixture_section("original_v2.sql", "FTS_SQL");
    ASSERT_STR_EQ(schema, st_schema_original_sql);
    ASSERT_STR_EQ(fts, st_schema_original_fts_sql);
    rt_free(schema);
    rt_free(fts);
}

TEST(fresh_schema_matches_the_original_exactly)
{
    const char *orig = tmp_path("orig.db");
    make_fixture_db("original_v2.sql", orig);
    sqlite3 *a = raw_open(orig);
    sqlite3 *b = open_ours(tmp_path("ours.db"));
    char *da = master_dump(a), *dbm = master_dump(b);
    ASSERT_STR_EQ(da, dbm);
    ASSERT_STR_CONTAINS(dbm, "messages_fts_insert");
    ASSERT_STR_CONTAINS(dbm, "messages_fts_update");
    ASSERT_STR_CONTAINS(dbm, "idx_messages_session");
    /* One schema_version row, version 2; our own version beside it. */
    ASSERT_EQ(1, q_int(b, "SELECT count(*) FROM schema_version"));
    int orig_v = 0, ours = 0;
    ASSERT_OK(st_schema_versions(b, &orig_v, &ours));
    ASSERT_EQ(2, orig_v);
    ASSERT_EQ(ST_HC_SCHEMA_VERSION, ours);
    char *jm = q_text(b, "PRAGMA journal_mode");
    ASSERT_STR_EQ("wal", jm);
    ASSERT_EQ(1, q_int(b, "PRAGMA foreign_keys"));
    ASSERT_EQ(1, q_int(b, "PRAGMA synchronous")); /* NORMAL */
    rt_free(jm);
    rt_free(da);
    rt_free(dbm);
    sqlite3_close(a);
    sqlite3_close(b);
}

TEST(init_is_idempotent_and_the_originals_init_changes_nothing)
{
    const char *p = tmp_path("state.db");
    sqlite3 *db = open_ours(p);
    char *before = master_dump(db);
    int changes = sqlite3_total_changes(db);
    char msg[ST_ERRMSG_MAX];
    ASSERT_OK(st_schema_init(db, msg, sizeof(msg)));
    /* What an original Hermes does when it opens our file: SCHEMA_SQL, version probe, FTS. */
    ASSERT_EQ(SQLITE_OK, sqlite3_exec(db, st_schema_original_sql, NULL, NULL, NULL));
    ASSERT_EQ(2, q_int(db, "SELECT version FROM schema_version LIMIT 1"));
    ASSERT_EQ(SQLITE_OK, sqlite3_exec(db, "SELECT * FROM messages_fts LIMIT 0", NULL, NULL, NULL));
    ASSERT_EQ(changes, sqlite3_total_changes(db));
    char *after = master_dump(db);
    ASSERT_STR_EQ(before, after);
    rt_free(before);
    rt_free(after);
    sqlite3_close(db);
}

TEST(migrates_a_version_1_database_to_2)
{
    const char *p = tmp_path("v1.db");
    make_fixture_db("original_v1.sql", p);
    sqlite3 *raw = raw_open(p);
    ASSERT_EQ(0, q_int(raw, "SELECT count(*) FROM pragma_table_info('messages') "
                            "WHERE name = 'finish_reason'"));
    sqlite3_close(raw);

    sqlite3 *db = open_ours(p);
    ASSERT_EQ(2, q_int(db, "SELECT version FROM schema_version LIMIT 1"));
    ASSERT_EQ(1, q_int(db, "SELECT count(*) FROM schema_version"));
    ASSERT_EQ(1, q_int(db, "SELECT count(*) FROM pragma_table_info('messages') "
                           "WHERE name = 'finish_reason'"));
    /* Old rows intact, still searchable, new column NULL. */
    ASSERT_EQ(7, q_int(db, "SELECT count(*) FROM messages"));
    ASSERT_EQ(7, q_int(db, "SELECT count(*) FROM messages WHERE finish_reason IS NULL"));
    ASSERT_EQ(2, q_int(db, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'docker'"));
    ASSERT_EQ(4, q_int(db, "SELECT message_count FROM sessions "
                           "WHERE id = '20260301_101500_a1b2c3'"));
    /* The new column takes writes. */
    ASSERT_EQ(SQLITE_OK, sqlite3_exec(db,
                                      "INSERT INTO messages (session_id, role, content, timestamp, "
                                      "finish_reason) VALUES ('20260301_101500_a1b2c3', "
                                      "'assistant', 'done', 1772360200.0, 'stop')",
                                      NULL, NULL, NULL));
    /* A second open migrates nothing. */
    char msg[ST_ERRMSG_MAX];
    int changes = sqlite3_total_changes(db);
    ASSERT_OK(st_schema_init(db, msg, sizeof(msg)));
    ASSERT_EQ(changes, sqlite3_total_changes(db));
    sqlite3_close(db);
    integrity_ok(p);
}

/* Our own list starts with the built-in migrations (open_ours applied them). */
static const st_migration test_list_ok[] = {
    {1, "baseline", NULL},
    {2, "hc_inbound", NULL},
    {3, "hc_outbox", NULL},
    {4, "hc_session_titles", NULL},
    {5, "hc_inbox", NULL},
    {6, "hc_session_index", NULL},
    {7, "hc_fts_pending", NULL},
    {8, "test table",
     "CREATE TABLE IF NOT EXISTS hc_test (k TEXT PRIMARY KEY);"
     "CREATE INDEX IF NOT EXISTS hc_test_k ON hc_test(k);"},
};

static const st_migration test_list_bad[] = {
    {1, "baseline", NULL},
    {2, "hc_inbound", NULL},
    {3, "hc_outbox", NULL},
    {4, "hc_session_titles", NULL},
    {5, "hc_inbox", NULL},
    {6, "hc_session_index", NULL},
    {7, "hc_fts_pending", NULL},
    {8, "test table", "CREATE TABLE IF NOT EXISTS hc_test (k TEXT PRIMARY KEY);"},
    {9, "half broken", "CREATE TABLE hc_half (x); CREATE TABLE hc_broken (;"},
};

static const st_migration test_list_unordered[] = {
    {2, "b", NULL},
    {2, "again", NULL},
};

TEST(migrations_apply_once_atomically_and_leave_the_original_alone)
{
    const char *p = tmp_path("state.db");
    sqlite3 *db = open_ours(p);
    char *orig_before = master_dump(db);
    char msg[ST_ERRMSG_MAX] = "";
    ASSERT_EQ(1, q_int(db, "SELECT count(*) FROM sqlite_master WHERE name = "
                           "'hc_session_titles'"));
    ASSERT_EQ(1, q_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'hc_inbox'"));
    ASSERT_EQ(1, q_int(db, "SELECT count(*) FROM sqlite_master WHERE name = "
                           "'hc_session_index'"));
    ASSERT_EQ(1, q_int(db, "SELECT count(*) FROM sqlite_master WHERE name = "
                           "'idx_hc_session_index_platform'"));
    ASSERT_OK(st_schema_migrate(db, test_list_ok, 8, msg, sizeof(msg)));
    ASSERT_EQ(8, q_int(db, "SELECT max(version) FROM hc_schema"));
    ASSERT_EQ(1, q_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'hc_test'"));
    /* Again: nothing to do, no new rows. */
    ASSERT_OK(st_schema_migrate(db, test_list_ok, 8, msg, sizeof(msg)));
    ASSERT_EQ(8, q_int(db, "SELECT count(*) FROM hc_schema"));

    /* A failing migration is rolled back whole and named in the error. */
    int err = st_schema_migrate(db, test_list_bad, 9, msg, sizeof(msg));
    ASSERT_EQ(-EINVAL, err);
    ASSERT_STR_CONTAINS(msg, "migration 9 (half broken) failed");
    ASSERT_EQ(8, q_int(db, "SELECT max(version) FROM hc_schema"));
    ASSERT_EQ(0, q_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'hc_half'"));

    ASSERT_EQ(-EINVAL, st_schema_migrate(db, test_list_unordered, 2, msg, sizeof(msg)));
    ASSERT_STR_CONTAINS(msg, "strictly increasing");

    /* The original's objects are untouched by all of it. */
    char *orig_after = master_dump(db);
    ASSERT_STR_EQ(orig_before, orig_after);
    ASSERT_EQ(2, q_int(db, "SELECT version FROM schema_version"));
    sqlite3_close(db);

    /* A database from a newer build (hc_schema 99) still opens. */
    sqlite3 *raw = raw_open(p);
    ASSERT_EQ(SQLITE_OK, sqlite3_exec(raw, "INSERT INTO hc_schema VALUES (99, 'future', 0)", NULL,
                                      NULL, NULL));
    sqlite3_close(raw);
    db = open_ours(p);
    int ours = 0;
    ASSERT_OK(st_schema_versions(db, NULL, &ours));
    ASSERT_EQ(99, ours);
    sqlite3_close(db);
    rt_free(orig_before);
    rt_free(orig_after);
}

static unsigned mode_of(const char *p)
{
    struct stat sb;
    ASSERT_EQ(0, stat(p, &sb));
    return (unsigned)(sb.st_mode & 0777);
}

TEST(files_are_created_0600_and_existing_ones_narrowed)
{
    umask(022);
    const char *dir = tmp_path("home");
    char p[512], side[600];
    snprintf(p, sizeof(p), "%s/state.db", dir); /* the folder does not exist yet */
    sqlite3 *db = open_ours(p);
    ASSERT_EQ(0700u, mode_of(dir));
    ASSERT_EQ(0600u, mode_of(p));
    ASSERT_EQ(SQLITE_OK, sqlite3_exec(db,
                                      "INSERT INTO sessions (id, source, started_at) "
                                      "VALUES ('s', 'cli', 1)",
                                      NULL, NULL, NULL));
    snprintf(side, sizeof(side), "%s-wal", p);
    ASSERT_EQ(0600u, mode_of(side));
    snprintf(side, sizeof(side), "%s-shm", p);
    ASSERT_EQ(0600u, mode_of(side));
    sqlite3_close(db);

    /* An original's file, world-readable: narrowed on open. */
    const char *old = tmp_path("old.db");
    make_fixture_db("original_v2.sql", old);
    ASSERT_EQ(0, chmod(old, 0644));
    db = open_ours(old);
    ASSERT_EQ(0600u, mode_of(old));
    sqlite3_close(db);
}

TEST(open_errors_are_clear)
{
    char msg[ST_ERRMSG_MAX] = "";
    int err = 0;
    /* Reader on a missing file. */
    st_reader *r = st_reader_open(tmp_path("missing.db"), &err, msg, sizeof(msg));
    ASSERT_NULL(r);
    ASSERT_EQ(-ENOENT, err);
    ASSERT_STR_CONTAINS(msg, "no state database at");
    /* A file that is not a database. */
    const char *junk = tmp_path("junk.db");
    FILE *f = fopen(junk, "w");
    ASSERT_NOT_NULL(f);
    for (int i = 0; i < 256; i++)
        fputs("this is not an SQLite database\n", f);
    fclose(f);
    sqlite3 *db = NULL;
    st_open_opts o = {.mode = ST_OPEN_WRITE};
    err = st_db_open(junk, &o, &db, msg, sizeof(msg));
    ASSERT_EQ(-EBADMSG, err);
    ASSERT_NULL(db);
    ASSERT_STR_CONTAINS(msg, "not a database");
    r = st_reader_open(junk, &err, msg, sizeof(msg));
    ASSERT_NULL(r);
    ASSERT_EQ(-EBADMSG, err);
    /* A folder where the file should be; an empty path. */
    const char *dir = tmp_path("adir");
    ASSERT_EQ(0, mkdir(dir, 0700));
    ASSERT_NE(0, st_db_open(dir, &o, &db, msg, sizeof(msg)));
    ASSERT_NULL(db);
    ASSERT_EQ(-EINVAL, st_db_open("", &o, &db, msg, sizeof(msg)));
}

TEST(reader_opens_a_closed_database_without_its_wal)
{
    const char *p = tmp_path("state.db");
    sqlite3 *db = open_ours(p);
    ASSERT_EQ(SQLITE_OK, sqlite3_exec(db,
                                      "INSERT INTO sessions (id, source, started_at) "
                                      "VALUES ('s1', 'cli', 1)",
                                      NULL, NULL, NULL));
    sqlite3_close(db); /* the last connection: -wal and -shm are removed */
    char side[400];
    snprintf(side, sizeof(side), "%s-wal", p);
    ASSERT_NE(0, access(side, F_OK));
    int err = 0;
    char msg[ST_ERRMSG_MAX];
    st_reader *r = st_reader_open(p, &err, msg, sizeof(msg));
    if (!r)
        TEST_FAIL_("reader: %d %s", err, msg);
    int64_t n = 0;
    ASSERT_OK(st_read_session_count(r, NULL, &n));
    ASSERT_EQ(1, n);
    st_reader_free(r);
}

TEST(doctor_check_reports_health_and_problems)
{
    const char *p = tmp_path("state.db");
    make_fixture_db("original_v2.sql", p);
    ASSERT_EQ(0, chmod(p, 0600));
    sqlite3 *db = open_ours(p);
    sqlite3_close(db);
    st_check c;
    ASSERT_OK(st_store_check(p, &c));
    ASSERT_STR_EQ("", c.problem);
    ASSERT_STR_EQ("wal", c.journal_mode);
    ASSERT_EQ(2, c.original_version);
    ASSERT_EQ(ST_HC_SCHEMA_VERSION, c.hc_version);
    ASSERT_TRUE(c.has_fts);
    ASSERT_EQ(3, c.sessions);
    ASSERT_EQ(7, c.messages);
    ASSERT_EQ(0600u, c.mode);

    /* World-readable. */
    ASSERT_EQ(0, chmod(p, 0644));
    ASSERT_EQ(-EACCES, st_store_check(p, &c));
    ASSERT_STR_CONTAINS(c.problem, "readable by other users");

    /* A version-1 file (not yet opened by hermes). */
    const char *v1 = tmp_path("v1.db");
    make_fixture_db("original_v1.sql", v1);
    ASSERT_EQ(-EINVAL, st_store_check(v1, &c));
    ASSERT_STR_CONTAINS(c.problem, "schema version 1");

    /* Missing, and corrupt. */
    ASSERT_EQ(-ENOENT, st_store_check(tmp_path("none.db"), &c));
    ASSERT_STR_CONTAINS(c.problem, "no state database");
    const char *bad = tmp_path("bad.db");
    make_fixture_db("original_v2.sql", bad);
    int fd = open(bad, O_WRONLY);
    ASSERT_GE(fd, 0);
    char junk[4096];
    memset(junk, 0x5a, sizeof(junk));
    ASSERT_EQ((ssize_t)sizeof(junk), pwrite(fd, junk, sizeof(junk), 4096 * 2)); /* page 3 */
    close(fd);
    ASSERT_NE(0, st_store_check(bad, &c));
    ASSERT_TRUE(c.problem[0] != '\0');
}

TEST(errno_mapping)
{
    ASSERT_EQ(0, st_errno_from_sqlite(SQLITE_DONE));
    ASSERT_EQ(-ENOSPC, st_errno_from_sqlite(SQLITE_FULL));
    ASSERT_EQ(-EIO, st_errno_from_sqlite(SQLITE_IOERR_WRITE));
    ASSERT_EQ(-ENOENT, st_errno_from_sqlite(SQLITE_CONSTRAINT_FOREIGNKEY));
    ASSERT_EQ(-EEXIST, st_errno_from_sqlite(SQLITE_CONSTRAINT_PRIMARYKEY));
    ASSERT_EQ(-EINVAL, st_errno_from_sqlite(SQLITE_CONSTRAINT_NOTNULL));
    ASSERT_EQ(-EBUSY, st_errno_from_sqlite(SQLITE_BUSY_SNAPSHOT));
    ASSERT_EQ(-EBADMSG, st_errno_from_sqlite(SQLITE_NOTADB));
    char buf[ST_ERRMSG_MAX];
    st_errmsg_format(buf, sizeof(buf), NULL, SQLITE_FULL, "append message");
    ASSERT_STR_CONTAINS(buf, "append message: database or disk is full");
    ASSERT_STR_CONTAINS(buf, "disk holding state.db is full");
}
