/*
 * gw_auth — who may talk to the bot: the allowlists and allow-all flags of the environment
 * and the unauthorized_dm_behavior of config.yaml (gateway.md §3.1, §3.2), as one immutable
 * snapshot taken at start-up (or at a reload).
 *
 * The original's order (_is_user_authorized), and how it maps onto gw_auth_check:
 *   1. platforms "homeassistant" and "webhook"          → ALLOW (authenticated elsewhere)
 *   2. no user id                                       → DENY (dropped silently)
 *   3. <PLATFORM>_ALLOW_ALL_USERS truthy                → ALLOW
 *   4. approved through pairing on this platform        → ALLOW   (the caller: gw_pairing)
 *   5. neither <PLATFORM>_ALLOWED_USERS nor GATEWAY_ALLOWED_USERS set
 *                                → ALLOW if GATEWAY_ALLOW_ALL_USERS truthy, else deny
 *   6. union of both lists: "*" or the exact user id (case-sensitive), or the part of the id
 *      before its first '@' when it has one            → ALLOW, else deny
 * Steps 5-6 only ever allow, and step 4 allows regardless of the lists, so "deny" there is
 * GW_AUTH_UNKNOWN: the caller asks the pairing store (step 4) and denies or offers pairing
 * only if the user was not approved. The outcome is the original's for every input.
 *
 * "Truthy" is the original's test for these flags: "true", "1" or "yes", case-insensitive,
 * nothing else (not "on", not " true"). A list counts as set when its value is not empty
 * after trimming; items are trimmed and empty items dropped, so ", ," is a list that is set
 * and allows no one (and then GATEWAY_ALLOW_ALL_USERS does not apply — the original's rule).
 *
 * Variables are read through hm_config_getenv (the process environment, then ~/.hermes/.env).
 * Per-platform variables are found by scanning both for names ending in _ALLOWED_USERS or
 * _ALLOW_ALL_USERS, so any platform works, not only a fixed list; "MATRIX_ALLOWED_USERS"
 * belongs to platform "matrix", "API_SERVER_ALLOWED_USERS" to "api_server".
 *
 * unauthorized_dm_behavior ("pair" or "ignore", trimmed and case-insensitive; anything else
 * falls back to the next level): config.yaml `<platform>: {unauthorized_dm_behavior: …}`, then
 * `platforms.<platform>.extra.unauthorized_dm_behavior`, then the top-level key, then "pair".
 *
 * Threads: gw_auth_new reads the environment (call it where getenv(3) is safe: start-up or a
 * reload, never concurrently with setenv). A gw_auth is immutable and reference counted:
 * gw_auth_check/gw_auth_dm_pairs from any thread, no I/O, no locks, no allocation.
 */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include "gw.h"
#include "hm_config.h"

#include <stdbool.h>

enum gw_auth_result {
    GW_AUTH_DENY = 0,    /* no user id: drop silently, no pairing */
    GW_AUTH_ALLOW = 1,   /* allowed by a list or a flag */
    GW_AUTH_UNKNOWN = 2, /* not allowed by the lists: allowed only if pairing approved it */
};

typedef struct gw_auth gw_auth;

/*
 * Snapshot the authorization settings of cfg (borrowed; NULL: the process environment only,
 * and behaviour "pair" everywhere). Returns a new gw_auth with one reference. Never NULL.
 */
gw_auth *gw_auth_new(const hm_config *cfg);
/* Another reference (any thread). */
gw_auth *gw_auth_ref(const gw_auth *a);
/* Drop a reference; the last one frees. NULL is a no-op. Any thread. */
void gw_auth_free(gw_auth *a);

/* One of enum gw_auth_result for the sender of an event (src borrowed). Internal events
 * (gw_msg_event.internal) skip authorization: that is the caller's business. */
int gw_auth_check(const gw_auth *a, const gw_source *src);

/* True if unauthorized DMs on platform get a pairing code ("pair"), false for "ignore". */
bool gw_auth_dm_pairs(const gw_auth *a, const char *platform);

/* True if some user can get in without pairing: an allowlist or an allow-all flag is set
 * for some platform or globally (the gateway warns at start-up when not). */
bool gw_auth_has_lists(const gw_auth *a);

/* The original's truthy test for env flags: "true", "1", "yes", case-insensitive. */
bool gw_auth_truthy(const char *v);

#endif /* GW_AUTH_H */
