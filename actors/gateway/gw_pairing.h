/*
 * gw_pairing — DM pairing (gateway.md §3.2, §3.3): the store of pairing codes and approved
 * users that `hermes pairing` and the gateway share, and the actor that answers unknown
 * users in the gateway.
 *
 * The store, in $HERMES_HOME/platforms/pairing/ (the legacy $HERMES_HOME/pairing/ when it
 * exists and is not empty), files exactly as the original writes them (JSON, indent 2,
 * times as float epoch seconds, mode 0600, directory 0700):
 *   <platform>-pending.json   {CODE: {"user_id", "user_name", "created_at"}}
 *   <platform>-approved.json  {user_id: {"user_name", "approved_at"}}
 *   _rate_limits.json         {"<platform>:<user_id>": last_request,
 *                              "_failures:<platform>": n, "_lockout:<platform>": until}
 *   .lock                     (ours) flock'ed around every read-modify-write
 *
 * Invariants:
 *   1. Codes are 8 characters of GW_PAIR_ALPHABET from OpenSSL's CSPRNG; a code lives
 *      GW_PAIR_TTL seconds; a user gets at most one code request per GW_PAIR_RATE_LIMIT
 *      seconds; a platform has at most GW_PAIR_MAX_PENDING codes; GW_PAIR_MAX_FAILURES
 *      failed approvals lock the platform's code generation for GW_PAIR_LOCKOUT seconds and
 *      reset the count (a successful approval resets it too). Codes are never logged.
 *   2. Every change is a read-modify-write under an exclusive flock on .lock, and every file
 *      is replaced atomically (temp file 0600 O_EXCL|O_NOFOLLOW in the same directory, fsync,
 *      rename, fsync of the directory): the CLI approving while the gateway generates never
 *      loses either update, and a reader never sees a half-written file.
 *   3. A missing file is empty. A file that is not a JSON object (or is over GW_PAIR_FILE_MAX)
 *      is treated as empty with a warning; before a change replaces it, it is kept as
 *      <file>.corrupt. Nothing a file holds can crash or hang us.
 *   4. Expired codes are purged on every generate, approve and list.
 *
 * Differences from the original, deliberate: a user who already has a live code and asks
 * again after the rate-limit window gets the same code again instead of a second one (one
 * user cannot fill the platform's three slots); stale rate-limit entries are dropped when the
 * file is rewritten; a successful approval resets the failure count (later upstream does too).
 *
 * Threads: a gw_pairing belongs to one thread at a time (the CLI, or the pairing actor on its
 * own detached thread); its calls block on the file system and the flock. Functions take
 * `now` (epoch seconds, gw_pairing_now()) so tests can move time.
 */
#ifndef GW_PAIRING_H
#define GW_PAIRING_H

#include "gw.h"
#include "gw_auth.h"
#include "rt_actor.h"

#include <stdbool.h>
#include <stddef.h>

#define GW_PAIR_ALPHABET     "ABCDEFGHJKLMNPQRSTUVWXYZ23456789" /* no 0/O, 1/I */
#define GW_PAIR_CODE_LEN     8
#define GW_PAIR_TTL          3600.0     /* seconds a code lives */
#define GW_PAIR_RATE_LIMIT   600.0      /* seconds between one user's code requests */
#define GW_PAIR_LOCKOUT      3600.0     /* seconds code generation stays locked */
#define GW_PAIR_MAX_PENDING  3          /* live codes per platform */
#define GW_PAIR_MAX_FAILURES 5          /* failed approvals before the lockout */
#define GW_PAIR_FILE_MAX     (8u << 20) /* a larger pairing file is treated as corrupt */
#define GW_PAIR_ID_MAX       1024       /* longest user id accepted */
#define GW_PAIR_NAME_MAX     256        /* user names are cut to this many bytes */

typedef struct gw_pairing gw_pairing;

/*
 * Open the store of hermes_home (borrowed): create the pairing directory (0700, with any
 * missing parents) and the lock file. Returns a new store, or NULL with *err (may be NULL) =
 * -EINVAL (hermes_home NULL or empty) or the -errno of mkdir/open.
 */
gw_pairing *gw_pairing_open(const char *hermes_home, int *err);
/* Close the store. NULL is a no-op. */
void gw_pairing_free(gw_pairing *p);
/* The pairing directory in use (borrowed). */
const char *gw_pairing_dir(const gw_pairing *p);

/* Wall-clock time in epoch seconds, as the files store it. */
double gw_pairing_now(void);
/* Is platform usable in a file name: 1-64 of [a-z0-9_-], not starting with '_' or '-'. */
bool gw_pairing_platform_ok(const char *platform);

/*
 * A pairing code for an unknown user (user_name may be NULL). On 0, code holds the code:
 * a new one, or the user's live one. Errors:
 *   -EAGAIN  the user asked within GW_PAIR_RATE_LIMIT seconds: say nothing;
 *   -EBUSY   the platform's generation is locked out, or
 *   -ENOSPC  GW_PAIR_MAX_PENDING codes are pending: tell the user "Too many pairing
 *            requests…"; the rate-limit entry is already recorded, so the next messages
 *            within the window get -EAGAIN (gateway.md §3.2);
 *   -EINVAL  bad platform or user id; -EIO the CSPRNG failed; other -errno from the files.
 */
int gw_pairing_generate(gw_pairing *p, const char *platform, const char *user_id,
                        const char *user_name, double now, char code[GW_PAIR_CODE_LEN + 1]);

/*
 * Approve a code (trimmed and upper-cased here): the user moves from pending to approved.
 * On 0, *user_id and *user_name (either out-pointer may be NULL) get new strings (rt_free;
 * the name may be ""). -ENOENT: no such live code — this counts a failure toward the
 * lockout. -EINVAL: bad platform (not counted). Other -errno from the files.
 */
int gw_pairing_approve(gw_pairing *p, const char *platform, const char *code, double now,
                       char **user_id, char **user_name);

/* Remove an approved user. 0, -ENOENT (not approved), -EINVAL, or -errno. */
int gw_pairing_revoke(gw_pairing *p, const char *platform, const char *user_id);

/* Has the user been approved on platform? Cheap: the approved file is re-read only when its
 * identity, size or times change, so another process's approval counts at once. */
bool gw_pairing_is_approved(gw_pairing *p, const char *platform, const char *user_id);

/* Is the platform's code generation locked out at now? *until (may be NULL) gets the end. */
bool gw_pairing_is_locked_out(gw_pairing *p, const char *platform, double now, double *until);

typedef struct gw_pair_entry {
    char *platform;
    char *code; /* pending codes; NULL for approved users */
    char *user_id;
    char *user_name; /* "" when unknown */
    double when;     /* created_at (pending) or approved_at (approved); 0 if missing */
} gw_pair_entry;

typedef struct gw_pair_list {
    gw_pair_entry *pending; /* by platform name, then file order */
    size_t npending;
    gw_pair_entry *approved;
    size_t napproved;
} gw_pair_list;

/* Every platform's live pending codes (expired ones are purged first) and approved users.
 * 0 or -errno; fill *out, free it with gw_pair_list_fini (also after an error). */
int gw_pairing_list(gw_pairing *p, double now, gw_pair_list *out);
void gw_pair_list_fini(gw_pair_list *l);

/* Empty every platform's pending file. Returns how many entries there were, or -errno. */
int gw_pairing_clear_pending(gw_pairing *p);

/* ---- the pairing actor ----------------------------------------------------------------- */

#define GW_PAIRING_NAME "hermes.gateway.pairing" /* the actor's registered name */

enum {
    /* gateway → pairing actor: gw_pair_check */
    GW_PAIR_CHECK = RT_MSG_TYPE(RT_MSG_MODULE_GW, 32),
    /* pairing actor → reply_to: the checked event (a gw_msg_event), its user approved */
    GW_PAIR_ALLOWED = RT_MSG_TYPE(RT_MSG_MODULE_GW, 33),
    /* gateway → pairing actor: gw_pair_set_auth (a reload brought new settings) */
    GW_PAIR_SET_AUTH = RT_MSG_TYPE(RT_MSG_MODULE_GW, 34),
};

/* An event gw_auth_check called GW_AUTH_UNKNOWN. */
typedef struct gw_pair_check {
    rt_msg hdr;
    gw_msg_event *event; /* owned (type GW_MSG_EVENT); freed by drop unless stolen */
    rt_ref reply_to;     /* gets GW_PAIR_ALLOWED */
} gw_pair_check;

typedef struct gw_pair_set_auth {
    rt_msg hdr;
    gw_auth *auth; /* one reference, owned */
} gw_pair_set_auth;

/* A GW_PAIR_CHECK holding everything lent held (gw_event_take: lent keeps empty fields). */
rt_msg *gw_pair_check_new(gw_msg_event *lent, rt_ref reply_to);
/* A GW_PAIR_SET_AUTH holding a new reference to auth. */
rt_msg *gw_pair_set_auth_new(const gw_auth *auth);

/*
 * Start the pairing actor (detached: it blocks on files), registered as GW_PAIRING_NAME. It
 * takes its own reference to auth and copies hermes_home; the store is opened on its thread.
 *
 * For each GW_PAIR_CHECK: a user approved on the event's platform → the event goes back to
 * reply_to as GW_PAIR_ALLOWED. Otherwise a warning is logged (user and platform, never the
 * text) and, only in DMs ("dm") whose platform's behaviour is "pair", the user gets the
 * original's pairing message or "Too many pairing requests…" as GW_OUT_TEXT
 * (GW_TEXT_NOTICE) at the event's adapter, addressed to event->reply. Groups, channels,
 * "ignore" and rate-limited users get silence.
 *
 * Returns the actor's ref, or 0 with *err (may be NULL) = -EINVAL (bad arguments) or
 * -EEXIST (one is already registered). Any thread.
 */
rt_ref gw_pairing_start(rt_ctx *cx, const char *hermes_home, const gw_auth *auth, int *err);

/* The exact texts the actor sends (gateway.md §3.2). Returns a new string (rt_free). */
char *gw_pairing_code_text(const char *platform, const char *code);
#define GW_PAIR_TOO_MANY_TEXT "Too many pairing requests right now~ Please try again later!"

#endif /* GW_PAIRING_H */
