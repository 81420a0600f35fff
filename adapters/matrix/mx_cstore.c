/*
 * mx_cstore — the SQLite crypto store (see mx_cstore.h).
 */
#include "mx_cstore.h"

#include "rt_alloc.h"
#include "rt_util.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CS_REVISION 10 /* the mautrix revision the layout follows */

struct mx_cs {
    sqlite3 *db;
    char *path;
};

static const char *const schema[] = {
    "CREATE TABLE IF NOT EXISTS crypto_version (version INTEGER)",
    "CREATE TABLE IF NOT EXISTS crypto_account (account_id TEXT PRIMARY KEY, device_id TEXT, "
    "shared BOOLEAN NOT NULL DEFAULT 0, sync_token TEXT, account BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS crypto_olm_session (account_id TEXT, session_id TEXT, "
    "sender_key TEXT NOT NULL, session BLOB NOT NULL, created_at INTEGER, last_decrypted "
    "INTEGER, last_encrypted INTEGER, PRIMARY KEY (account_id, session_id))",
    "CREATE TABLE IF NOT EXISTS crypto_megolm_inbound_session (account_id TEXT, session_id "
    "TEXT, sender_key TEXT NOT NULL, signing_key TEXT, room_id TEXT NOT NULL, session BLOB, "
    "forwarding_chains TEXT, withheld_code TEXT, withheld_reason TEXT, ratchet_safety TEXT, "
    "received_at INTEGER, max_age INTEGER, max_messages INTEGER, is_scheduled BOOLEAN NOT NULL "
    "DEFAULT 0, PRIMARY KEY (account_id, session_id))",
    "CREATE TABLE IF NOT EXISTS crypto_megolm_outbound_session (account_id TEXT, room_id TEXT, "
    "session_id TEXT NOT NULL UNIQUE, session BLOB NOT NULL, shared TEXT NOT NULL, "
    "max_messages INTEGER NOT NULL, message_count INTEGER NOT NULL, max_age INTEGER NOT NULL, "
    "created_at INTEGER NOT NULL, last_used INTEGER NOT NULL, PRIMARY KEY (account_id, "
    "room_id))",
    "CREATE TABLE IF NOT EXISTS crypto_message_index (sender_key CHAR(43), session_id "
    "CHAR(43), \"index\" INTEGER, event_id TEXT NOT NULL, timestamp BIGINT NOT NULL, PRIMARY "
    "KEY (sender_key, session_id, \"index\"))",
    "CREATE TABLE IF NOT EXISTS crypto_device (user_id TEXT, device_id TEXT, identity_key "
    "CHAR(43) NOT NULL, signing_key CHAR(43) NOT NULL, trust SMALLINT NOT NULL, deleted "
    "BOOLEAN NOT NULL, name TEXT NOT NULL, PRIMARY KEY (user_id, device_id))",
    "CREATE TABLE IF NOT EXISTS crypto_tracked_user (user_id TEXT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS crypto_cross_signing_keys (user_id TEXT, usage TEXT, key "
    "CHAR(43) NOT NULL, first_seen_key CHAR(43) NOT NULL, PRIMARY KEY (user_id, usage))",
    "CREATE TABLE IF NOT EXISTS crypto_cross_signing_signatures (signed_user_id TEXT, "
    "signed_key TEXT, signer_user_id TEXT, signer_key TEXT, signature CHAR(88) NOT NULL, "
    "PRIMARY KEY (signed_user_id, signed_key, signer_user_id, signer_key))",
};

static int exec_sql(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

int mx_cs_open(const char *dir, mx_cs **out, char *err, size_t errlen)
{
    *out = NULL;
    /* mkdir -p with 0700 for what we create */
    char tmp[4096];
    if (rt_strlcpy(tmp, dir, sizeof(tmp)) >= sizeof(tmp)) {
        snprintf(err, errlen, "store path too long");
        return -ENAMETOOLONG;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        (void)mkdir(tmp, 0700);
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
        int e = -errno;
        snprintf(err, errlen, "cannot create %s: %s", dir, rt_strerror(e));
        return e;
    }
    char *legacy = rt_xasprintf("%s/crypto_store.pickle", dir);
    (void)unlink(legacy);
    rt_free(legacy);
    char *path = rt_xasprintf("%s/crypto.db", dir);
    mode_t old = umask(077);
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    umask(old);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "no memory");
        sqlite3_close(db);
        rt_free(path);
        return -EIO;
    }
    (void)chmod(path, 0600);
    sqlite3_busy_timeout(db, 5000);
    bool ok = exec_sql(db, "PRAGMA journal_mode=WAL") == 0 &&
              exec_sql(db, "PRAGMA synchronous=NORMAL") == 0;
    for (size_t i = 0; ok && i < sizeof(schema) / sizeof(schema[0]); i++)
        ok = exec_sql(db, schema[i]) == 0;
    if (ok) {
        sqlite3_stmt *st = NULL;
        int64_t v = -1;
        if (sqlite3_prepare_v2(db, "SELECT version FROM crypto_version LIMIT 1", -1, &st, NULL) ==
                SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        if (v < 0) {
            char sql[96];
            snprintf(sql, sizeof(sql), "INSERT INTO crypto_version (version) VALUES (%d)",
                     CS_REVISION);
            ok = exec_sql(db, sql) == 0;
        } else if (v > CS_REVISION) {
            snprintf(err, errlen, "%s has crypto store revision %lld, newer than this build (%d)",
                     path, (long long)v, CS_REVISION);
            sqlite3_close(db);
            rt_free(path);
            return -EPROTO;
        }
    }
    if (!ok) {
        snprintf(err, errlen, "cannot set up %s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        rt_free(path);
        return -EIO;
    }
    /* the WAL side files carry the same secrets */
    char *wal = rt_xasprintf("%s-wal", path), *shm = rt_xasprintf("%s-shm", path);
    (void)chmod(wal, 0600);
    (void)chmod(shm, 0600);
    rt_free(wal);
    rt_free(shm);
    mx_cs *cs = rt_xcalloc(1, sizeof(*cs));
    cs->db = db;
    cs->path = path;
    *out = cs;
    return 0;
}

void mx_cs_close(mx_cs *cs)
{
    if (!cs)
        return;
    sqlite3_close(cs->db);
    rt_free(cs->path);
    rt_free(cs);
}

const char *mx_cs_path(const mx_cs *cs)
{
    return cs->path;
}

bool mx_cs_check_file(const char *path, char *out, size_t len)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(out, len, "%s: cannot open (%s)", path, db ? sqlite3_errmsg(db) : "no memory");
        sqlite3_close(db);
        return false;
    }
    sqlite3_stmt *st = NULL;
    bool ok = false;
    int64_t rev = -1;
    char res[200] = "not a database";
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        snprintf(res, sizeof(res), "%s", r ? r : "?");
        ok = r && strcmp(r, "ok") == 0;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (ok &&
        sqlite3_prepare_v2(db, "SELECT version FROM crypto_version LIMIT 1", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        rev = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (ok && (rev < 0 || rev > CS_REVISION)) {
        snprintf(out, len, "%s: unknown crypto store revision %lld", path, (long long)rev);
        return false;
    }
    if (ok)
        snprintf(out, len, "%s: ok (revision %lld)", path, (long long)rev);
    else
        snprintf(out, len, "%s: %s", path, res);
    return ok;
}

/* ------------------------------------------------------------- statements */

static sqlite3_stmt *prep(mx_cs *cs, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(cs->db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    return st;
}

static void bind_s(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static char *col_s(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? rt_xstrdup((const char *)t) : NULL;
}

static int done(sqlite3_stmt *st)
{
    if (!st)
        return -EIO;
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

int mx_cs_account_load(mx_cs *cs, const char *account_id, char **pickle, char **device,
                       bool *shared)
{
    sqlite3_stmt *st =
        prep(cs, "SELECT account, device_id, shared FROM crypto_account WHERE account_id=?");
    if (!st)
        return -EIO;
    bind_s(st, 1, account_id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? -ENOENT : -EIO;
    }
    *pickle = col_s(st, 0);
    *device = col_s(st, 1);
    *shared = sqlite3_column_int(st, 2) != 0;
    sqlite3_finalize(st);
    return *pickle ? 0 : -EIO;
}

int mx_cs_account_save(mx_cs *cs, const char *account_id, const char *device, bool shared,
                       const char *pickle)
{
    sqlite3_stmt *st = prep(cs, "INSERT INTO crypto_account (account_id, device_id, shared, "
                                "account) VALUES (?,?,?,?) ON CONFLICT (account_id) DO UPDATE "
                                "SET device_id=excluded.device_id, shared=excluded.shared, "
                                "account=excluded.account");
    if (!st)
        return -EIO;
    bind_s(st, 1, account_id);
    bind_s(st, 2, device);
    sqlite3_bind_int(st, 3, shared);
    bind_s(st, 4, pickle);
    return done(st);
}

int mx_cs_olm_save(mx_cs *cs, const char *account_id, const char *sender_key,
                   const char *session_id, const char *pickle, int64_t now_ms)
{
    sqlite3_stmt *st =
        prep(cs, "INSERT INTO crypto_olm_session (account_id, session_id, sender_key, session, "
                 "created_at, last_decrypted, last_encrypted) VALUES (?,?,?,?,?,?,?) ON CONFLICT "
                 "(account_id, session_id) DO UPDATE SET session=excluded.session, "
                 "last_decrypted=excluded.last_decrypted");
    if (!st)
        return -EIO;
    bind_s(st, 1, account_id);
    bind_s(st, 2, session_id);
    bind_s(st, 3, sender_key);
    bind_s(st, 4, pickle);
    sqlite3_bind_int64(st, 5, now_ms);
    sqlite3_bind_int64(st, 6, now_ms);
    sqlite3_bind_int64(st, 7, now_ms);
    return done(st);
}

int mx_cs_olm_each(mx_cs *cs, const char *account_id, mx_cs_olm_fn fn, void *arg)
{
    sqlite3_stmt *st = prep(cs, "SELECT sender_key, session_id, session, last_decrypted FROM "
                                "crypto_olm_session WHERE account_id=? ORDER BY created_at");
    if (!st)
        return -EIO;
    bind_s(st, 1, account_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        const char *id = (const char *)sqlite3_column_text(st, 1);
        const char *p = (const char *)sqlite3_column_text(st, 2);
        if (k && id && p)
            fn(arg, k, id, p, sqlite3_column_int64(st, 3));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

int mx_cs_in_save(mx_cs *cs, const char *account_id, const char *room_id, const char *session_id,
                  const char *sender_key, const char *signing_key, const char *pickle,
                  int64_t now_ms)
{
    sqlite3_stmt *st =
        prep(cs, "INSERT INTO crypto_megolm_inbound_session (account_id, session_id, sender_key, "
                 "signing_key, room_id, session, forwarding_chains, received_at) VALUES "
                 "(?,?,?,?,?,?,'',?) ON CONFLICT (account_id, session_id) DO UPDATE SET "
                 "session=excluded.session");
    if (!st)
        return -EIO;
    bind_s(st, 1, account_id);
    bind_s(st, 2, session_id);
    bind_s(st, 3, sender_key);
    bind_s(st, 4, signing_key);
    bind_s(st, 5, room_id);
    bind_s(st, 6, pickle);
    sqlite3_bind_int64(st, 7, now_ms);
    return done(st);
}

int mx_cs_in_load(mx_cs *cs, const char *account_id, const char *room_id, const char *session_id,
                  char **sender_key, char **signing_key, char **pickle)
{
    sqlite3_stmt *st = prep(cs, "SELECT sender_key, signing_key, session FROM "
                                "crypto_megolm_inbound_session WHERE account_id=? AND "
                                "session_id=? AND room_id=?");
    if (!st)
        return -EIO;
    bind_s(st, 1, account_id);
    bind_s(st, 2, session_id);
    bind_s(st, 3, room_id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? -ENOENT : -EIO;
    }
    *sender_key = col_s(st, 0);
    *signing_key = col_s(st, 1);
    *pickle = col_s(st, 2);
    sqlite3_finalize(st);
    if (!*sender_key || !*pickle) {
        rt_free(*sender_key);
        rt_free(*signing_key);
        rt_free(*pickle);
        *sender_key = *signing_key = *pickle = NULL;
        return -EIO;
    }
    return 0;
}

int mx_cs_out_save(mx_cs *cs, const char *account_id, const char *room_id, const mx_cs_out *o)
{
    sqlite3_stmt *st =
        prep(cs, "INSERT OR REPLACE INTO crypto_megolm_outbound_session (account_id, room_id, "
                 "session_id, session, shared, max_messages, message_count, max_age, created_at, "
                 "last_used) VALUES (?,?,?,?,?,?,?,?,?,?)");
    if (!st)
        return -EIO;
    bind_s(st, 1, account_id);
    bind_s(st, 2, room_id);
    bind_s(st, 3, o->session_id);
    bind_s(st, 4, o->pickle);
    bind_s(st, 5, o->shared ? o->shared : "[]");
    sqlite3_bind_int64(st, 6, o->max_messages);
    sqlite3_bind_int64(st, 7, o->message_count);
    sqlite3_bind_int64(st, 8, o->max_age);
    sqlite3_bind_int64(st, 9, o->created_at);
    sqlite3_bind_int64(st, 10, o->created_at);
    return done(st);
}

int mx_cs_out_load(mx_cs *cs, const char *account_id, const char *room_id, mx_cs_out *o)
{
    memset(o, 0, sizeof(*o));
    sqlite3_stmt *st = prep(cs, "SELECT session_id, session, shared, max_messages, "
                                "message_count, max_age, created_at FROM "
                                "crypto_megolm_outbound_session WHERE account_id=? AND room_id=?");
    if (!st)
        return -EIO;
    bind_s(st, 1, account_id);
    bind_s(st, 2, room_id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? -ENOENT : -EIO;
    }
    o->session_id = col_s(st, 0);
    o->pickle = col_s(st, 1);
    o->shared = col_s(st, 2);
    o->max_messages = sqlite3_column_int64(st, 3);
    o->message_count = sqlite3_column_int64(st, 4);
    o->max_age = sqlite3_column_int64(st, 5);
    o->created_at = sqlite3_column_int64(st, 6);
    sqlite3_finalize(st);
    if (!o->session_id || !o->pickle) {
        mx_cs_out_fini(o);
        return -EIO;
    }
    return 0;
}

int mx_cs_out_delete(mx_cs *cs, const char *account_id, const char *room_id)
{
    sqlite3_stmt *st = prep(cs, "DELETE FROM crypto_megolm_outbound_session WHERE "
                                "account_id=? AND room_id=?");
    if (!st)
        return -EIO;
    bind_s(st, 1, account_id);
    bind_s(st, 2, room_id);
    return done(st);
}

void mx_cs_out_fini(mx_cs_out *o)
{
    rt_free(o->session_id);
    rt_free(o->pickle);
    rt_free(o->shared);
    memset(o, 0, sizeof(*o));
}

int mx_cs_index_check(mx_cs *cs, const char *sender_key, const char *session_id, uint32_t index,
                      const char *event_id, int64_t ts)
{
    sqlite3_stmt *st = prep(cs, "SELECT event_id FROM crypto_message_index WHERE sender_key=? "
                                "AND session_id=? AND \"index\"=?");
    if (!st)
        return -EIO;
    bind_s(st, 1, sender_key);
    bind_s(st, 2, session_id);
    sqlite3_bind_int64(st, 3, index);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *seen = (const char *)sqlite3_column_text(st, 0);
        bool same = seen && strcmp(seen, event_id) == 0;
        sqlite3_finalize(st);
        return same ? 0 : -EEXIST;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return -EIO;
    st = prep(cs, "INSERT INTO crypto_message_index (sender_key, session_id, \"index\", "
                  "event_id, timestamp) VALUES (?,?,?,?,?)");
    if (!st)
        return -EIO;
    bind_s(st, 1, sender_key);
    bind_s(st, 2, session_id);
    sqlite3_bind_int64(st, 3, index);
    bind_s(st, 4, event_id);
    sqlite3_bind_int64(st, 5, ts);
    return done(st);
}
