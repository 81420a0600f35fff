/*
 * matrix_env — the world the Matrix adapter tests run in:
 *
 *   mxd   the homeserver double (tests/doubles/matrix_double.py) as a child process, and a
 *         blocking client for its control API (rooms, messages, faults, what the bot did);
 *   mgw   a stand-in for the gateway actor: records each GW_MSG_EVENT and answers it the way
 *         the gateway does (typing on, the reply "Echo: <text>" to the event's target with an
 *         outbox delivery id, typing off, turn end: failure when the text contains "fail",
 *         success otherwise; "late": the reply after the turn end, as the outbox may send
 *         it; "mute": no reply; "tools": two tool progress lines before the reply), and counts the
 * adapter's GW_MSG_SENT acknowledgements; mte   the two above plus a runtime with a fake clock
 * (adapter timers move only with mte_advance), the reactor with the HTTP client, a private
 * HERMES_HOME, captured log lines, and the adapter under test.
 *
 * Threads: everything from the test's main thread; mgw records from any thread.
 */
#ifndef MATRIX_ENV_H
#define MATRIX_ENV_H

#include "gw.h"
#include "matrix.h"
#include "rt_reactor.h"
#include "rt_sched.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MX_WAIT_MS 10000
#define MX_BOT     "@bot:localhost"

/* ---- the homeserver double ---- */

typedef struct mxd {
    pid_t pid;
    int port;
    char state[256]; /* its state file (kept across a restart) */
    bool legacy_media;
} mxd;

/* Start the double on port (0: any); its state file in dir (NULL: d->state as it is, so a
 * restart keeps the state). Asserts success. */
void mxd_start(mxd *d, int port, const char *dir, bool legacy_media);
/* SIGTERM (the double saves its state) and reap it. */
void mxd_stop(mxd *d);
/* One control or API request (no auth unless headers say so); returns the parsed body
 * (cJSON_Delete) or NULL; *status gets the HTTP status. */
cJSON *mxd_call(mxd *d, const char *method, const char *path, const char *body, int *status);
/* POST path with body; asserts 200. */
void mxd_do(mxd *d, const char *path, const char *body);
/* A room with members (comma-separated) joined, and the bot joined or invited. */
void mxd_room(mxd *d, const char *room, const char *members, bool direct, bool invite);
/* sender posts body (or a whole content JSON when content is set); the event id (rt_free). */
char *mxd_say(mxd *d, const char *room, const char *sender, const char *body, const char *content);
/* mxd_say without the id. */
void mxd_post(mxd *d, const char *room, const char *sender, const char *body, const char *content);
/* Items of GET /_double/<what> (e.g. "sent?room=!a:localhost&type=m.room.message"). */
int mxd_count(mxd *d, const char *what);
/* Wait until at least n items; returns the array (cJSON_Delete) or NULL after timeout_ms. */
cJSON *mxd_wait(mxd *d, const char *what, int n, int timeout_ms);

/* ---- the gateway stand-in ---- */

typedef struct mgw_ev {
    char *chat_type, *chat_id, *chat_name, *user_id, *user_name, *text, *thread_id;
    char *message_id, *reply_to, *reply_thread;
    int kind;
    size_t nmedia;
    char *media0;
} mgw_ev;

typedef struct mgw mgw;
mgw *mgw_start(rt_runtime *rt);
/* Answer events (default true); false: record only. */
void mgw_set_answer(mgw *g, bool on);
int mgw_count(mgw *g);
int mgw_ups(mgw *g);
/* The capabilities the adapter announced. */
gw_caps mgw_caps(mgw *g);
/* GW_MSG_SENT received so far: successes and failures. */
void mgw_acks(mgw *g, int *ok, int *failed);
/* Wait until n events were recorded; 0 or -ETIMEDOUT. */
int mgw_wait(mgw *g, int n, int64_t timeout_ms);
const mgw_ev *mgw_get(mgw *g, int i);
void mgw_free(mgw *g);

/* ---- the environment ---- */

typedef struct mte {
    rt_runtime *rt;
    rt_reactor *re;
    rt_ctx *cx;
    mgw *gw;
    mxd *d; /* borrowed: the test's double */
    char home[128];
    matrix_opts o; /* defaults for the test; adjust before mte_start */
    matrix_stats st;
    rt_ref ref;
    bool started;
} mte;

/* Runtime, reactor, gateway stand-in and options pointing at d (token login). home: a
 * directory to use (kept across a restart), or NULL for a fresh one. */
void mte_init(mte *e, mxd *d, const char *home);
/* matrix_start; returns its result (err filled). */
int mte_start(mte *e, char *err, size_t errlen);
/* mte_start, then wait until the adapter is syncing. */
void mte_up(mte *e);
void mte_advance(mte *e, int64_t ms);
/* Wait until the stats field (an _Atomic uint64_t or int of e->st) reaches at least v. */
int mte_wait_stat(mte *e, const _Atomic uint64_t *field, uint64_t v, int64_t timeout_ms);
int mte_wait_state(mte *e, int state, int64_t timeout_ms);
/* Stop the adapter and free everything (the home directory stays unless remove). */
void mte_fini(mte *e, bool remove);

/* Captured log lines (from mte_init on): does any contain needle? */
bool mte_logged(const char *needle);
void mte_log_clear(void);

#endif /* MATRIX_ENV_H */
