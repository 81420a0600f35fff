/*
 * mattermost_env — the world the Mattermost adapter tests run in:
 *
 *   mmd   the Mattermost server double (tests/doubles/mattermost_double.py) as a child
 *         process, and a small blocking client for its control port (scripted posts, faults,
 *         waits on what the server saw);
 *   mgw   a stand-in for the gateway actor (registered as GW_NAME): records what the adapter
 *         sends and answers each event the way the real gateway would (typing on, the reply
 *         to the event's target, typing off, turn end), with a scripted reply text;
 *   mte   the two above plus a runtime with a fake clock (timers move only with
 *         mte_advance), the reactor with the HTTP client, the lws service, a private
 *         HERMES_HOME, captured log lines, and the adapter under test.
 *
 * Threads: everything from the test's main thread; mgw records from any thread.
 */
#ifndef MATTERMOST_ENV_H
#define MATTERMOST_ENV_H

#include "gw.h"
#include "mattermost.h"
#include "rt_lws.h"
#include "rt_reactor.h"
#include "rt_sched.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MT_WAIT_MS 10000
#define MT_TOKEN   "mm-test-token-0123456789"

/* ---- the server double ---- */

typedef struct mmd {
    pid_t pid;
    int port;     /* the Mattermost port */
    int ctl_port; /* the control port */
    cJSON *world; /* GET /_test/world */
} mmd;

/* Start the double (before any thread exists: it forks). Asserts success. */
void mmd_start(mmd *d);
void mmd_stop(mmd *d);
/* One control request; *status gets the HTTP status. Returns the parsed JSON body (free with
 * cJSON_Delete) or NULL. */
cJSON *mmd_call(mmd *d, const char *method, const char *path, const char *body, int *status);
/* POST path with body; asserts 200. */
void mmd_do(mmd *d, const char *path, const char *body);
/* The id of a seeded user or channel key ("alice", "town", "dm_alice", "bot"). */
const char *mmd_id(mmd *d, const char *key);
/* A user posts: returns the post (cJSON_Delete it). root_id may be NULL. */
cJSON *mmd_post(mmd *d, const char *channel, const char *user, const char *message,
                const char *root_id);
/* Like mmd_post, returning the new post's id (new string, rt_free). */
char *mmd_post_id(mmd *d, const char *channel, const char *user, const char *message,
                  const char *root_id);
/* Wait until at least n items of what ("posts", "typing", "ws", "requests") match query
 * (e.g. "&user=bot&channel=town"); returns the array (cJSON_Delete), or NULL on timeout. */
cJSON *mmd_wait(mmd *d, const char *what, int n, const char *query, int timeout_ms);
/* How many items of what match query now. */
int mmd_count(mmd *d, const char *what, const char *query);

/* ---- the gateway double ---- */

enum { MGW_UP = 1, MGW_DOWN, MGW_EVENT };

typedef struct mgw_rec {
    int kind;
    gw_caps caps;    /* MGW_UP */
    char *home;      /* MGW_UP */
    char *chat_type; /* MGW_EVENT … */
    char *chat_id;
    char *chat_name;
    char *user_id;
    char *user_name;
    char *thread_id;
    char *text;
    char *message_id;
    char *reply_chat;
    char *reply_thread;
    char *reply_to;
    char *ephemeral;
    int ekind;
    size_t nmedia;
    char *media[4];
    rt_ref adapter;
} mgw_rec;

typedef struct mgw mgw;

mgw *mgw_start(rt_runtime *rt);
/* From now on answer events with text (NULL: "echo: <event text>"); kind is the gw_text_kind.
 * silent: do not answer at all. */
void mgw_reply_with(mgw *g, const char *text, int kind, bool silent);
int mgw_wait(mgw *g, int kind, int n, int64_t timeout_ms);
int mgw_count(mgw *g, int kind);
/* The i-th record of kind (valid until mgw_free), or NULL. */
const mgw_rec *mgw_get(mgw *g, int kind, int i);
void mgw_free(mgw *g);

/* ---- the environment ---- */

typedef struct mte {
    mmd d;
    rt_runtime *rt;
    rt_reactor *re;
    rt_lws *l;
    rt_ctx *cx;
    mgw *gw;
    rt_ref ad;
    char home[512];
    char url[128];
    mattermost_opts o; /* filled by mte_init; tests may change it before mte_start */
} mte;

/* Double, runtime, services, gateway double, log capture, default options (heartbeat 1 h so
 * that clock moves never trigger it, no lock directory). */
void mte_init(mte *e);
/* Start the adapter with e->o; 0 or the error (message in err). */
int mte_start(mte *e, char *err, size_t errlen);
/* Start and wait for GW_MSG_ADAPTER_UP. */
void mte_up(mte *e);
/* Move the fake clock, then wait until the runtime is quiet. */
void mte_advance(mte *e, int64_t ms);
/* Wait until the runtime is quiet (requests in flight done, messages handled). */
void mte_quiet(mte *e);
/* Stop the adapter (if running) and everything else; asserts the runtime went quiet. */
void mte_fini(mte *e);

/* ---- captured log lines ---- */

bool mte_log_has(const char *needle);
/* Wait until a line containing needle was logged; 0 or -ETIMEDOUT. */
int mte_log_wait(const char *needle, int64_t timeout_ms);
/* The last line containing needle (new string) or NULL. */
char *mte_log_find(const char *needle);
int mte_log_count(const char *needle);

#endif /* MATTERMOST_ENV_H */
