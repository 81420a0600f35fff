/*
 * lws_sink — a test actor that records the rt_ws / rt_httpd messages it receives, and lets
 * the test's main thread wait for them with a deadline (no sleeping).
 *
 * Every recorded event is a deep copy, so tests read it after the message is gone. An
 * optional hook runs inside the actor after the event is recorded (to answer HTTP requests,
 * for instance).
 *
 * Threads: sink_new/sink_free on the main thread; waits and reads from any thread.
 */
#ifndef LWS_SINK_H
#define LWS_SINK_H

#include "rt_actor.h"
#include "rt_sched.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sink_ev {
    uint32_t type;
    uint64_t id; /* ws conn or httpd req */
    uint64_t tag;
    int err;
    int code;   /* ws close code */
    int status; /* ws http status */
    bool binary;
    char *data; /* ws message data or request body */
    size_t len;
    char reason[128];
    char method[16];
    char *path;
    char *query;
    char *headers; /* "name: value\n" lines */
    char *peer;
} sink_ev;

typedef struct sink sink;
typedef void (*sink_hook)(rt_ctx *cx, rt_msg *m, void *arg);

sink *sink_new(rt_runtime *rt, sink_hook hook, void *arg);
rt_ref sink_ref(sink *s);
/* Wait until at least n events of type (0: any type) were recorded; 0 or -ETIMEDOUT. */
int sink_wait(sink *s, uint32_t type, int n, int64_t timeout_ms);
int sink_count(sink *s, uint32_t type);
/* The i-th event of type (0: any), or NULL. Stays valid until sink_free. */
sink_ev *sink_get(sink *s, uint32_t type, int i);
/* Free the records (the actor must have ended: call after rt_runtime_free). */
void sink_free(sink *s);

#endif /* LWS_SINK_H */
