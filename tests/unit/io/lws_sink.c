/* lws_sink — see lws_sink.h. */
#include "lws_sink.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_httpd.h"
#include "rt_util.h"
#include "rt_ws.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define SINK_MAX 4096

struct sink {
    rt_ref ref;
    sink_hook hook;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    sink_ev ev[SINK_MAX];
};

static char *join_headers(const rt_http_header *h, size_t n)
{
    rt_buf b;
    rt_buf_init(&b, 1 << 20);
    for (size_t i = 0; i < n; i++)
        rt_buf_printf(&b, "%s: %s\n", h[i].name, h[i].value);
    return rt_buf_steal(&b, NULL);
}

static void copy_ev(sink_ev *e, rt_msg *m)
{
    e->type = m->type;
    switch (m->type) {
    case RT_WS_MSG_OPEN: {
        rt_ws_msg_open *o = (rt_ws_msg_open *)m;
        e->id = o->conn;
        e->tag = o->tag;
        e->status = o->http_status;
        e->headers = join_headers(o->headers, o->nheaders);
        break;
    }
    case RT_WS_MSG_MESSAGE: {
        rt_ws_msg_message *o = (rt_ws_msg_message *)m;
        e->id = o->conn;
        e->tag = o->tag;
        e->binary = o->binary;
        e->data = o->data; /* steal */
        e->len = o->len;
        o->data = NULL;
        break;
    }
    case RT_WS_MSG_CLOSED: {
        rt_ws_msg_closed *o = (rt_ws_msg_closed *)m;
        e->id = o->conn;
        e->tag = o->tag;
        e->err = o->err;
        e->code = o->code;
        e->status = o->http_status;
        rt_strlcpy(e->reason, o->reason, sizeof(e->reason));
        break;
    }
    case RT_HTTPD_MSG_REQUEST: {
        rt_httpd_msg_request *o = (rt_httpd_msg_request *)m;
        e->id = o->req;
        rt_strlcpy(e->method, o->method, sizeof(e->method));
        e->path = rt_xstrdup(o->path);
        e->query = rt_xstrdup(o->query);
        e->headers = join_headers(o->headers, o->nheaders);
        e->peer = rt_xstrdup(o->peer);
        e->data = rt_xmemdup(o->body, o->body_len + 1);
        e->len = o->body_len;
        break;
    }
    case RT_HTTPD_MSG_GONE: {
        rt_httpd_msg_gone *o = (rt_httpd_msg_gone *)m;
        e->id = o->req;
        e->err = o->err;
        break;
    }
    default: break;
    }
}

static void sink_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    sink *s = state;
    if (m->type == RT_MSG_STOP)
        return;
    /* Record first: a test that sees the hook's effect (a response) sees the record too. */
    pthread_mutex_lock(&s->mu);
    if (s->n < SINK_MAX)
        copy_ev(&s->ev[s->n++], m);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->hook)
        s->hook(cx, m, s->arg);
}

static const rt_actor_type sink_type = {"sink", sink_behave, NULL, 0};

sink *sink_new(rt_runtime *rt, sink_hook hook, void *arg)
{
    sink *s = rt_xcalloc(1, sizeof(*s));
    s->hook = hook;
    s->arg = arg;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &a);
    pthread_condattr_destroy(&a);
    s->ref = rt_spawn(rt_ctx_external(rt), &sink_type, s, NULL);
    return s;
}

rt_ref sink_ref(sink *s)
{
    return s->ref;
}

static int count_locked(sink *s, uint32_t type)
{
    int k = 0;
    for (int i = 0; i < s->n; i++)
        if (!type || s->ev[i].type == type)
            k++;
    return k;
}

int sink_count(sink *s, uint32_t type)
{
    pthread_mutex_lock(&s->mu);
    int k = count_locked(s, type);
    pthread_mutex_unlock(&s->mu);
    return k;
}

int sink_wait(sink *s, uint32_t type, int n, int64_t timeout_ms)
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
    pthread_mutex_lock(&s->mu);
    while (count_locked(s, type) < n && r != ETIMEDOUT)
        r = pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    int ok = count_locked(s, type) >= n;
    pthread_mutex_unlock(&s->mu);
    return ok ? 0 : -ETIMEDOUT;
}

sink_ev *sink_get(sink *s, uint32_t type, int idx)
{
    sink_ev *r = NULL;
    pthread_mutex_lock(&s->mu);
    for (int i = 0, k = 0; i < s->n; i++)
        if (!type || s->ev[i].type == type) {
            if (k++ == idx) {
                r = &s->ev[i];
                break;
            }
        }
    pthread_mutex_unlock(&s->mu);
    return r;
}

void sink_free(sink *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++) {
        rt_free(s->ev[i].data);
        rt_free(s->ev[i].path);
        rt_free(s->ev[i].query);
        rt_free(s->ev[i].headers);
        rt_free(s->ev[i].peer);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    rt_free(s);
}
