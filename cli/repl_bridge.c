/*
 * repl_bridge — the interactive CLI's sink: a detached actor that turns what the session, the
 * store and the signal watch send into repl_ev records and hands them to the main thread
 * through a pipe (repl_int.h, invariant 1).
 *
 * It is detached because the write may block when the main thread is busy (the pipe holds
 * thousands of events, so only a main thread stuck for long would make it wait): a worker must
 * never block. On RT_MSG_STOP it writes REV_BYE, the last thing it writes, and closes the pipe.
 */
#include "repl_int.h"

#include "ag_session.h"
#include "llm_wire.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_signal.h"
#include "st_read.h"
#include "st_store.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

typedef struct bridge {
    int wfd;
    bool closed;
} bridge;

void repl_ev_free(repl_ev *e)
{
    if (!e)
        return;
    rt_free(e->text);
    rt_free(e->text2);
    rt_free(e->text3);
    cJSON_Delete(e->json);
    rt_free(e);
}

static char *steal(char **p)
{
    char *s = *p;
    *p = NULL;
    return s;
}

static void put(bridge *b, repl_ev *e)
{
    if (b->closed) {
        repl_ev_free(e);
        return;
    }
    const char *p = (const char *)&e;
    size_t left = sizeof(e);
    while (left) { /* one write of 8 bytes is atomic on a pipe; the loop is for EINTR */
        ssize_t n = write(b->wfd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            repl_ev_free(e); /* the main thread is gone (EPIPE) */
            b->closed = true;
            return;
        }
        p += n;
        left -= (size_t)n;
    }
}

static repl_ev *ev_new(int kind)
{
    repl_ev *e = rt_xcalloc(1, sizeof(*e));
    e->kind = kind;
    return e;
}

static void on_ask(bridge *b, ag_msg_ask *a)
{
    repl_ev *e = ev_new(REV_ASK);
    e->from = a->from;
    e->id = a->ask_id;
    e->code = a->kind;
    e->text = steal(&a->text);
    e->text2 = steal(&a->description);
    e->json = a->choices;
    a->choices = NULL;
    e->timeout_ms = a->timeout_ms;
    put(b, e);
}

static void on_done(bridge *b, ag_msg_done *d)
{
    repl_ev *e = ev_new(REV_DONE);
    e->id = d->input_id;
    e->code = d->err;
    e->interrupted = d->interrupted;
    e->n = d->api_calls;
    e->text = steal(&d->text);
    e->text2 = steal(&d->errmsg);
    e->text3 = steal(&d->session_id);
    put(b, e);
}

static void on_control_reply(bridge *b, ag_msg_control_reply *c)
{
    repl_ev *e = ev_new(REV_CTL);
    e->id = c->tag;
    e->code = c->err;
    e->n = c->n;
    e->text = steal(&c->text);
    e->json = c->info;
    c->info = NULL;
    put(b, e);
}

static void on_store(bridge *b, rt_msg *m)
{
    repl_ev *e = ev_new(REV_STORE);
    if (m->type == ST_MSG_ACK) {
        st_msg_ack *a = (st_msg_ack *)m;
        e->id = a->tag;
        e->code = a->err;
        if (a->errmsg[0])
            e->text = rt_xstrdup(a->errmsg);
    } else {
        st_msg_result *r = (st_msg_result *)m;
        e->id = r->tag;
        e->code = r->err;
        e->json = r->json;
        r->json = NULL;
        if (r->errmsg[0])
            e->text = rt_xstrdup(r->errmsg);
    }
    put(b, e);
}

static void on_text(bridge *b, int kind, char **text, char **text2)
{
    repl_ev *e = ev_new(kind);
    e->text = steal(text);
    if (text2)
        e->text2 = steal(text2);
    put(b, e);
}

static void bridge_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    bridge *b = state;
    switch (m->type) {
    case AG_MSG_DELTA: {
        ag_msg_delta *d = (ag_msg_delta *)m;
        if (d->text)
            on_text(b, d->kind == LLM_DELTA_CONTENT ? REV_DELTA : REV_REASONING, &d->text, NULL);
        break;
    }
    case AG_MSG_PROGRESS: {
        ag_msg_progress *g = (ag_msg_progress *)m;
        on_text(b, REV_PROGRESS, &g->tool, &g->preview);
        break;
    }
    case AG_MSG_STATUS: on_text(b, REV_STATUS, &((ag_msg_status *)m)->text, NULL); break;
    case AG_MSG_ASK: on_ask(b, (ag_msg_ask *)m); break;
    case AG_MSG_DONE: on_done(b, (ag_msg_done *)m); break;
    case AG_MSG_CONTROL_REPLY: on_control_reply(b, (ag_msg_control_reply *)m); break;
    case ST_MSG_ACK:
    case ST_MSG_RESULT: on_store(b, m); break;
    case RT_SIGNAL_MSG_SHUTDOWN:
    case RT_SIGNAL_MSG_RELOAD: {
        repl_ev *e = ev_new(REV_SIGNAL);
        e->code = ((rt_signal_msg *)m)->signo;
        put(b, e);
        break;
    }
    case RT_MSG_STOP:
        put(b, ev_new(REV_BYE));
        if (!b->closed)
            close(b->wfd);
        b->closed = true;
        break;
    default: break;
    }
}

static void bridge_fini(void *state)
{
    bridge *b = state;
    if (!b->closed)
        close(b->wfd);
}

static const rt_actor_type bridge_type = {"repl_bridge", bridge_behave, bridge_fini,
                                          sizeof(bridge)};

rt_ref repl_bridge_start(rt_ctx *cx, int wfd)
{
    bridge init = {.wfd = wfd};
    rt_spawn_opts so = {.flags = RT_SPAWN_DETACHED};
    return rt_spawn(cx, &bridge_type, &init, &so);
}
