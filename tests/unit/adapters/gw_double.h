/*
 * gw_double — a stand-in for the gateway actor in adapter tests: registered as GW_NAME, it
 * records what adapters send (GW_MSG_ADAPTER_UP/DOWN, GW_MSG_EVENT, GW_MSG_CANCEL) and
 * answers each event the way the real gateway answers an adapter with caps.api, chosen by
 * the event's text:
 *
 *   default    GW_OUT_TYPING on, GW_OUT_DELTA "Echo: ", progress (terminal, 💻, "ls -la"),
 *              progress "_thinking" (internal), a progress line without structured fields,
 *              GW_OUT_DELTA <text>, the full GW_TEXT_REPLY "Echo: <text>", GW_OUT_TURN_END
 *              success with session_id = the event's and usage 11 / 7
 *   "hang…"    GW_OUT_DELTA "partial", then holds the request
 *   "silent…"  holds the request without a word
 *   "deaf…"    holds it and ignores GW_MSG_CANCEL for it
 *   "fail…"    GW_TEXT_ERROR "⚠️ boom", GW_OUT_TURN_END failure
 *   "final…"   only the GW_TEXT_REPLY "Final only" (no deltas), then success
 *   "empty…"   only GW_OUT_TURN_END success
 *
 * A held request ends with GW_OUT_TURN_END cancelled when a GW_MSG_CANCEL names it, or with
 * GW_TEXT_REPLY "released" + success when the test calls gwd_release.
 *
 * Threads: gwd_start/gwd_free on the test's main thread; waits and reads from any thread.
 */
#ifndef GW_DOUBLE_H
#define GW_DOUBLE_H

#include "gw.h"
#include "rt_sched.h"

#include <stdbool.h>
#include <stdint.h>

enum { GWD_UP = 1, GWD_DOWN, GWD_EVENT, GWD_CANCEL, GWD_KINDS };

typedef struct gwd_rec {
    int kind;
    char *platform;
    char *chat_type;
    char *chat_id;
    char *user_id;
    char *text;
    char *session_id;
    char *ephemeral;
    char *history; /* printed JSON, or NULL */
    char *message_id;
    bool internal;
    uint64_t request;
    rt_ref adapter;
    gw_caps caps; /* GWD_UP */
} gwd_rec;

typedef struct gwd gwd;

gwd *gwd_start(rt_runtime *rt);
/* Wait until n records of kind exist; 0 or -ETIMEDOUT. */
int gwd_wait(gwd *g, int kind, int n, int64_t timeout_ms);
int gwd_count(gwd *g, int kind);
/* The i-th record of kind, or NULL; valid until gwd_free. */
const gwd_rec *gwd_get(gwd *g, int kind, int i);
/* Finish every held request with "released". */
void gwd_release(gwd *g, rt_ctx *cx);
/* Free the records (after rt_runtime_free). */
void gwd_free(gwd *g);

#endif /* GW_DOUBLE_H */
