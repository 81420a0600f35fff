/* gw_double — see gw_double.h. */
#include "gw_double.h"

#include "api_server.h"
#include "rt_alloc.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define MAX_RECS 1024
#define MAX_HELD 64

enum { GWD_MSG_RELEASE = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 0x0A01) };

typedef struct held {
    gw_target to;
    rt_ref adapter;
    char *session_id;
    bool deaf; /* ignores GW_MSG_CANCEL */
} held;

struct gwd {
    rt_ref ref;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    gwd_rec rec[MAX_RECS];
    /* actor only */
    held held[MAX_HELD];
    int nheld;
};

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

static void record(gwd *g, const gwd_rec *r)
{
    pthread_mutex_lock(&g->mu);
    if (g->n < MAX_RECS)
        g->rec[g->n++] = *r;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void send_text(rt_ctx *cx, rt_ref to_actor, const gw_target *to, uint32_t type,
                      const char *text, int kind)
{
    rt_send(cx, to_actor, gw_out_text_new(type, to, text, kind));
}

static void send_end(rt_ctx *cx, rt_ref adapter, const gw_target *to, int outcome, const char *sid)
{
    gw_out_turn_end *e = (gw_out_turn_end *)gw_out_turn_end_new(to, outcome, sid);
    if (outcome == GW_OUTCOME_SUCCESS) {
        e->prompt_tokens = 11;
        e->completion_tokens = 7;
    }
    rt_send(cx, adapter, &e->hdr);
}

static void hold(gwd *g, const gw_msg_event *e, bool deaf)
{
    if (g->nheld >= MAX_HELD)
        return;
    held *h = &g->held[g->nheld++];
    gw_target_copy(&h->to, &e->reply);
    h->adapter = e->adapter;
    h->session_id = dupn(e->session_id);
    h->deaf = deaf;
}

static void answer(rt_ctx *cx, gwd *g, const gw_msg_event *e)
{
    const gw_target *to = &e->reply;
    rt_ref a = e->adapter;
    const char *t = e->text ? e->text : "";
    if (!strncmp(t, "hang", 4)) {
        send_text(cx, a, to, GW_OUT_DELTA, "partial", GW_TEXT_REPLY);
        hold(g, e, false);
    } else if (!strncmp(t, "silent", 6)) {
        hold(g, e, false);
    } else if (!strncmp(t, "deaf", 4)) {
        hold(g, e, true);
    } else if (!strncmp(t, "fail", 4)) {
        send_text(cx, a, to, GW_OUT_TEXT, "⚠️ boom", GW_TEXT_ERROR);
        send_end(cx, a, to, GW_OUTCOME_FAILURE, e->session_id);
    } else if (!strncmp(t, "empty", 5)) {
        send_end(cx, a, to, GW_OUTCOME_SUCCESS, e->session_id);
    } else if (!strncmp(t, "final", 5)) {
        send_text(cx, a, to, GW_OUT_TEXT, "Final only", GW_TEXT_REPLY);
        send_end(cx, a, to, GW_OUTCOME_SUCCESS, e->session_id);
    } else {
        rt_send(cx, a, gw_out_typing_new(to, true));
        send_text(cx, a, to, GW_OUT_DELTA, "Echo: ", GW_TEXT_REPLY);
        rt_send(cx, a, gw_out_progress_new(to, "💻 ls -la", "terminal", "💻", "ls -la"));
        rt_send(cx, a, gw_out_progress_new(to, "💭 thinking", "_thinking", "💭", "thinking"));
        send_text(cx, a, to, GW_OUT_TEXT, "⚙️ plain progress line", GW_TEXT_PROGRESS);
        send_text(cx, a, to, GW_OUT_DELTA, t, GW_TEXT_REPLY);
        char *full = rt_xasprintf("Echo: %s", t);
        send_text(cx, a, to, GW_OUT_TEXT, full, GW_TEXT_REPLY);
        rt_free(full);
        send_end(cx, a, to, GW_OUTCOME_SUCCESS, e->session_id);
    }
}

static void on_event(rt_ctx *cx, gwd *g, gw_msg_event *e)
{
    gwd_rec r = {.kind = GWD_EVENT};
    r.platform = dupn(e->src.platform);
    r.chat_type = dupn(e->src.chat_type);
    r.chat_id = dupn(e->src.chat_id);
    r.user_id = dupn(e->src.user_id);
    r.text = dupn(e->text);
    r.session_id = dupn(e->session_id);
    r.ephemeral = dupn(e->ephemeral);
    r.message_id = dupn(e->message_id);
    r.internal = e->internal;
    r.request = e->reply.request;
    r.adapter = e->adapter;
    if (e->history) {
        char *h = cJSON_PrintUnformatted(e->history);
        r.history = dupn(h);
        cJSON_free(h);
    }
    record(g, &r);
    answer(cx, g, e);
}

static void unhold(gwd *g, int i)
{
    gw_target_fini(&g->held[i].to);
    rt_free(g->held[i].session_id);
    g->held[i] = g->held[--g->nheld];
}

static void on_cancel(rt_ctx *cx, gwd *g, gw_msg_cancel *c)
{
    gwd_rec r = {.kind = GWD_CANCEL};
    r.platform = dupn(c->platform);
    r.chat_id = dupn(c->to.chat_id);
    r.session_id = dupn(c->session_id);
    r.request = c->to.request;
    r.adapter = c->adapter;
    record(g, &r);
    for (int i = 0; i < g->nheld; i++)
        if (g->held[i].to.request == c->to.request && g->held[i].adapter == c->adapter &&
            !g->held[i].deaf) {
            send_end(cx, c->adapter, &c->to, GW_OUTCOME_CANCELLED, g->held[i].session_id);
            unhold(g, i);
            break;
        }
}

static void on_release(rt_ctx *cx, gwd *g)
{
    while (g->nheld) {
        held *h = &g->held[0];
        send_text(cx, h->adapter, &h->to, GW_OUT_TEXT, "released", GW_TEXT_REPLY);
        send_end(cx, h->adapter, &h->to, GW_OUTCOME_SUCCESS, h->session_id);
        unhold(g, 0);
    }
}

static void gwd_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    gwd *g = state;
    switch (m->type) {
    case GW_MSG_ADAPTER_UP:
    case GW_MSG_ADAPTER_DOWN: {
        gw_msg_adapter *a = (gw_msg_adapter *)m;
        gwd_rec r = {.kind = m->type == GW_MSG_ADAPTER_UP ? GWD_UP : GWD_DOWN};
        r.platform = dupn(a->platform);
        r.adapter = a->ref;
        r.caps = a->caps;
        record(g, &r);
        break;
    }
    case GW_MSG_EVENT: on_event(cx, g, (gw_msg_event *)m); break;
    case GW_MSG_CANCEL: on_cancel(cx, g, (gw_msg_cancel *)m); break;
    case GWD_MSG_RELEASE: on_release(cx, g); break;
    default: break;
    }
}

static void gwd_fini(void *state)
{
    gwd *g = state;
    while (g->nheld)
        unhold(g, 0);
}

static const rt_actor_type gwd_type = {"gw_double", gwd_behave, gwd_fini, 0};

gwd *gwd_start(rt_runtime *rt)
{
    gwd *g = rt_xcalloc(1, sizeof(*g));
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &a);
    pthread_condattr_destroy(&a);
    rt_spawn_opts so = {.name = GW_NAME};
    g->ref = rt_spawn(rt_ctx_external(rt), &gwd_type, g, &so);
    return g;
}

static int count_locked(gwd *g, int kind)
{
    int k = 0;
    for (int i = 0; i < g->n; i++)
        k += g->rec[i].kind == kind;
    return k;
}

int gwd_count(gwd *g, int kind)
{
    pthread_mutex_lock(&g->mu);
    int k = count_locked(g, kind);
    pthread_mutex_unlock(&g->mu);
    return k;
}

int gwd_wait(gwd *g, int kind, int n, int64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(timeout_ms / 1000);
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    int r = 0;
    pthread_mutex_lock(&g->mu);
    while (count_locked(g, kind) < n && r != ETIMEDOUT)
        r = pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    int ok = count_locked(g, kind) >= n;
    pthread_mutex_unlock(&g->mu);
    return ok ? 0 : -ETIMEDOUT;
}

const gwd_rec *gwd_get(gwd *g, int kind, int idx)
{
    const gwd_rec *r = NULL;
    pthread_mutex_lock(&g->mu);
    for (int i = 0, k = 0; i < g->n; i++)
        if (g->rec[i].kind == kind && k++ == idx) {
            r = &g->rec[i];
            break;
        }
    pthread_mutex_unlock(&g->mu);
    return r;
}

void gwd_release(gwd *g, rt_ctx *cx)
{
    rt_send(cx, g->ref, rt_msg_new(GWD_MSG_RELEASE, sizeof(rt_msg)));
}

void gwd_free(gwd *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n; i++) {
        gwd_rec *r = &g->rec[i];
        rt_free(r->platform);
        rt_free(r->chat_type);
        rt_free(r->chat_id);
        rt_free(r->user_id);
        rt_free(r->text);
        rt_free(r->session_id);
        rt_free(r->ephemeral);
        rt_free(r->history);
        rt_free(r->message_id);
    }
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    rt_free(g);
}
