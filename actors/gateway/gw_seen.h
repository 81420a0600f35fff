/*
 * gw_seen — the platform updates the gateway accepted lately, so that a redelivered update
 * (a Matrix event after a sync token was lost, a Mattermost post fetched again after a
 * reconnect, a Telegram update whose offset was not confirmed) is recognised and never
 * answered twice.
 *
 * A bounded set of 64-bit hashes of (platform, message_id): at most cap of them, the oldest
 * forgotten first. Hashes, not strings: 8 bytes a key, and with 2^17 keys a false "seen" is
 * about one in 10^14 updates. state.db's hc_inbound table (st_store.h ST_MSG_INBOUND) is the
 * durable copy it is loaded from at start.
 *
 * A full disk (issue 13): a key the store could not write stays here (the router adds it
 * before it sends the write) while the store keeps the write and retries it (st_store.h rule
 * 4). The store keeps at most ST_KEPT_MAX such records, fewer than GW_SEEN_DEFAULT_CAP, and
 * every key newer than a kept one is kept too (the retries go oldest first, each transaction
 * starting with them), so a key waiting for space is never among the ones forgotten here.
 *
 * Threads: one owner (the router actor); no locking.
 */
#ifndef GW_SEEN_H
#define GW_SEEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_SEEN_DEFAULT_CAP 131072

typedef struct gw_seen gw_seen;

/* A set holding at most cap keys (cap >= 1). Never NULL. */
gw_seen *gw_seen_new(size_t cap);
void gw_seen_free(gw_seen *s); /* NULL: no-op */

/* The key of an update (never 0). */
uint64_t gw_seen_key(const char *platform, const char *message_id);

bool gw_seen_has(const gw_seen *s, uint64_t key);
/* Remember key, forgetting the oldest when full. false if it was already there (then nothing
 * changes). */
bool gw_seen_add(gw_seen *s, uint64_t key);
size_t gw_seen_count(const gw_seen *s);

#endif /* GW_SEEN_H */
