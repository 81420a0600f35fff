/*
 * mx_cstore — the E2EE crypto store of the Matrix adapter: SQLite at <store>/crypto.db
 * (gateway.md §8.10; table and column names follow the mautrix crypto-store schema the
 * original uses, so the layout is recognisable).
 *
 * What it keeps: the Olm account (libolm pickle, encrypted with the pickle key by libolm
 * before it gets here), Olm sessions, Megolm inbound sessions, the room's outbound Megolm
 * session, and the message indexes seen per Megolm session (replay protection). The file is
 * created 0600 in a 0700 directory; pickles are opaque text (never logged).
 *
 * Invariants: one row per (account, session id) in each session table; a message index row
 * (sender key, session id, index) is written once and names the first event seen with it.
 *
 * Threads: a store is used by one thread at a time (the adapter actor). Calls block on
 * SQLite (small, local writes in WAL mode with synchronous=NORMAL).
 */
#ifndef MX_CSTORE_H
#define MX_CSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mx_cs mx_cs;

/* Open (creating dir 0700 and crypto.db 0600 as needed) and migrate. 0, or -errno with a
 * sentence in err. A legacy crypto_store.pickle in dir is deleted (the original does). */
int mx_cs_open(const char *dir, mx_cs **out, char *err, size_t errlen);
void mx_cs_close(mx_cs *cs); /* NULL-safe */
/* The database path (borrowed). */
const char *mx_cs_path(const mx_cs *cs);

/* Read-only health check of the crypto.db at path (doctor): quick_check and the schema
 * revision, a sentence in out. Changes nothing. */
bool mx_cs_check_file(const char *path, char *out, size_t len);

/* The account of account_id: 0 and new strings (*device may be NULL), -ENOENT, -EIO. */
int mx_cs_account_load(mx_cs *cs, const char *account_id, char **pickle, char **device,
                       bool *shared);
int mx_cs_account_save(mx_cs *cs, const char *account_id, const char *device, bool shared,
                       const char *pickle);

/* Olm sessions: save (insert or replace) and walk every session of the account. */
int mx_cs_olm_save(mx_cs *cs, const char *account_id, const char *sender_key,
                   const char *session_id, const char *pickle, int64_t now_ms);
typedef void (*mx_cs_olm_fn)(void *arg, const char *sender_key, const char *session_id,
                             const char *pickle, int64_t last_used);
int mx_cs_olm_each(mx_cs *cs, const char *account_id, mx_cs_olm_fn fn, void *arg);

/* Megolm inbound sessions by (room, session id). load: 0 and new strings, or -ENOENT. */
int mx_cs_in_save(mx_cs *cs, const char *account_id, const char *room_id, const char *session_id,
                  const char *sender_key, const char *signing_key, const char *pickle,
                  int64_t now_ms);
int mx_cs_in_load(mx_cs *cs, const char *account_id, const char *room_id, const char *session_id,
                  char **sender_key, char **signing_key, char **pickle);

/* The room's outbound Megolm session (one per room). shared: a JSON array of "user|device". */
typedef struct mx_cs_out {
    char *session_id, *pickle, *shared;
    int64_t message_count, created_at, max_messages, max_age;
} mx_cs_out;
int mx_cs_out_save(mx_cs *cs, const char *account_id, const char *room_id, const mx_cs_out *o);
int mx_cs_out_load(mx_cs *cs, const char *account_id, const char *room_id, mx_cs_out *o);
int mx_cs_out_delete(mx_cs *cs, const char *account_id, const char *room_id);
void mx_cs_out_fini(mx_cs_out *o);

/* Replay check: 0 when (sender key, session, index) is new (recorded with event_id) or was
 * seen with this same event id; -EEXIST when another event used it; -EIO. */
int mx_cs_index_check(mx_cs *cs, const char *sender_key, const char *session_id, uint32_t index,
                      const char *event_id, int64_t ts);

#endif /* MX_CSTORE_H */
