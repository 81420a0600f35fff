/*
 * gw_fixture — the gateway end to end inside one process, shared by the gateway's tests
 * (test_router.c, test_cmds.c): a test adapter (platform "test") in front, the real router,
 * chat actors, agent sessions, pairing store and state.db behind it, and a scripted LLM
 * provider actor at the back; a test tool ("test_echo") that asks for approval.
 *
 * Threads: the test's main thread drives it (start_gateway, msg_in, wait_out, stop_gateway);
 * the model and the adapter are actors and record what they see under `lock`.
 */
#ifndef GW_FIXTURE_H
#define GW_FIXTURE_H

#include "gw.h"
#include "hm_config.h"
#include "rt_actor.h"
#include "st_store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define WAIT_NS 15000000000LL

/* ---- the scripted model: answers in order, then "echo: <last user message>" ---- */
typedef struct script {
    const char *content;    /* NULL: "echo: <last user message>" */
    const char *tool_calls; /* JSON array, or NULL */
    int64_t delay_ms;
} script;

extern pthread_mutex_t lock; /* guards everything below */
extern pthread_cond_t cond;  /* broadcast on every record */
extern script scripts[16];
extern int nscripts, nrequests;
extern char last_user[4096];
extern char all_users[8192]; /* every user message of the last request, joined with | */

/* ---- the adapter: what the gateway sent it ---- */
typedef struct out {
    uint32_t type;
    int kind;
    int outcome;
    char chat[128];
    char text[2048];
    char session[96];
    uint64_t request;
} out;

extern out outs[256];
extern int nouts;
/* Acknowledging adapter (caps.acks): the first ack_failures sends to chat dm-alice fail
 * (-1: all of them). */
extern int ack_failures;
extern const rt_actor_type adapter_type;

/* ---- the fixture ---- */
typedef struct fixture {
    rt_runtime *rt;
    rt_ctx *cx;
    hm_config *cfg;
    st_store_refs store;
    rt_ref model, gateway, adapter;
    char home[512];
} fixture;

extern fixture F;
extern int64_t F_deadline_ms;  /* the outbox's deadline for the next start; 0: default */
extern int64_t F_chat_idle_ms; /* chats end after this long idle; 0: the gateway's default */

/* Forget the scripts and every record. */
void reset_records(void);
/* Start the runtime, store, model, gateway and adapter (fresh: a new HERMES_HOME). */
void start_gateway(fixture *f, bool fresh);
void stop_gateway(fixture *f);
/* An event from the test adapter. */
void msg_in(fixture *f, const char *type, const char *chat, const char *user, const char *thread,
            const char *text);
/* The same event, not sent yet. */
gw_msg_event *msg_new(fixture *f, const char *type, const char *chat, const char *user,
                      const char *thread, const char *text);
/* Wait for the nth (0-based) output matching type/kind/chat/needle (kind < 0, chat or needle
 * NULL: any); its index in outs. Fails the test after WAIT_NS. */
int wait_out(uint32_t type, int kind, const char *chat, const char *needle, int nth);

#endif /* GW_FIXTURE_H */
