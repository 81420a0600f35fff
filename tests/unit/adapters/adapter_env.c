/* adapter_env — see adapter_env.h. */
#include "adapter_env.h"

#include "ag_session.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_http.h"
#include "rt_lws.h"
#include "rt_reactor.h"
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

void tenv_init(tenv *e, bool with_gateway)
{
    memset(e, 0, sizeof(*e));
    rt_options ro = {.workers = 2, .fake_clock = true};
    e->rt = rt_runtime_new(&ro);
    ASSERT_NOT_NULL(e->rt);
    e->re = rt_reactor_start(e->rt);
    ASSERT_NOT_NULL(e->re);
    ASSERT_OK(rt_http_init(e->re));
    int err = 0;
    e->l = rt_lws_start(e->rt, &err);
    ASSERT_NOT_NULL(e->l);
    e->cx = rt_ctx_external(e->rt);
    if (with_gateway)
        e->gw = gwd_start(e->rt);
}

int tenv_server(tenv *e, api_server_opts *o, char *err, size_t errlen)
{
    o->lws = e->l;
    o->reactor = e->re;
    int rc = api_server_start(e->cx, o, &e->srv, err, errlen);
    if (!rc)
        e->port = api_server_port(e->srv);
    return rc;
}

void tenv_server_key(tenv *e, const char *key)
{
    api_server_opts o = {.key = key, .model_name = "hermes-test"};
    char err[512];
    ASSERT_OK(tenv_server(e, &o, err, sizeof(err)));
    ASSERT_GT(e->port, 0);
    if (e->gw) /* announced before the first request (the actor's first message) */
        ASSERT_OK(gwd_wait(e->gw, GWD_UP, 1, WAIT_MS));
}

void tenv_advance_ms(tenv *e, int64_t ms)
{
    ASSERT_OK(rt_clock_advance(e->rt, ms * 1000000));
}

void tenv_fini(tenv *e)
{
    api_server_stop(e->cx, e->srv, 1000);
    ASSERT_OK(rt_wait_quiescent(e->rt, WAIT_MS));
    rt_lws_stop(e->l);
    rt_reactor_stop(e->re);
    ASSERT_OK(rt_wait_quiescent(e->rt, WAIT_MS));
    rt_runtime_free(e->rt);
    gwd_free(e->gw);
    memset(e, 0, sizeof(*e));
}

/* ============================================================ the client */

static char *raw_request(const char *method, const char *path, const char *headers,
                         const char *body)
{
    size_t blen = body ? strlen(body) : 0;
    if (body)
        return rt_xasprintf("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: "
                            "%zu\r\nContent-Type: application/json\r\n\r\n%s",
                            method, path, headers ? headers : "", blen, body);
    return rt_xasprintf("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n", method, path,
                        headers ? headers : "");
}

int treq(int port, const char *method, const char *path, const char *headers, const char *body,
         hc_resp *r)
{
    char *raw = raw_request(method, path, headers, body);
    int rc = hc_roundtrip(port, raw, r);
    rt_free(raw);
    return rc;
}

int treq_send(hc_conn *c, const char *method, const char *path, const char *headers,
              const char *body)
{
    char *raw = raw_request(method, path, headers, body);
    int rc = hc_send(c, raw);
    rt_free(raw);
    return rc;
}

int tread_until(hc_conn *c, const char *needle, char *acc, size_t cap)
{
    size_t len = strlen(acc);
    for (int i = 0; i < 10000 && !strstr(acc, needle); i++) {
        int n = hc_read_some(c, acc + len, cap - len, 1);
        if (n <= 0)
            return -1;
        len += (size_t)n;
    }
    return strstr(acc, needle) ? 0 : -1;
}

/* ============================================================ the agent sink */

#define TSINK_MAX 1024

struct tsink {
    rt_ref ref;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    tsink_ev ev[TSINK_MAX];
};

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

static void tsink_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    tsink *s = state;
    tsink_ev e = {.type = m->type};
    switch (m->type) {
    case AG_MSG_DELTA:
        e.turn = ((ag_msg_delta *)m)->turn;
        e.text = dupn(((ag_msg_delta *)m)->text);
        break;
    case AG_MSG_PROGRESS:
        e.turn = ((ag_msg_progress *)m)->turn;
        e.tool = dupn(((ag_msg_progress *)m)->tool);
        e.text = dupn(((ag_msg_progress *)m)->preview);
        break;
    case AG_MSG_STATUS:
        e.turn = ((ag_msg_status *)m)->turn;
        e.text = dupn(((ag_msg_status *)m)->text);
        break;
    case AG_MSG_DONE: {
        ag_msg_done *d = (ag_msg_done *)m;
        e.turn = d->turn;
        e.text = dupn(d->text);
        e.errmsg = dupn(d->errmsg);
        e.session_id = dupn(d->session_id);
        e.err = d->err;
        e.interrupted = d->interrupted;
        e.completed = d->completed;
        e.input_id = d->input_id;
        e.prompt_tokens = d->prompt_tokens;
        e.completion_tokens = d->completion_tokens;
        break;
    }
    case AG_MSG_CONTROL_REPLY:
        e.err = ((ag_msg_control_reply *)m)->err;
        e.text = dupn(((ag_msg_control_reply *)m)->text);
        break;
    default: return;
    }
    pthread_mutex_lock(&s->mu);
    if (s->n < TSINK_MAX)
        s->ev[s->n++] = e;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static const rt_actor_type tsink_type = {"tsink", tsink_behave, NULL, 0};

tsink *tsink_new(rt_runtime *rt)
{
    tsink *s = rt_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &a);
    pthread_condattr_destroy(&a);
    s->ref = rt_spawn(rt_ctx_external(rt), &tsink_type, s, NULL);
    return s;
}

rt_ref tsink_ref(tsink *s)
{
    return s->ref;
}

static int count_locked(tsink *s, uint32_t type)
{
    int k = 0;
    for (int i = 0; i < s->n; i++)
        k += s->ev[i].type == type;
    return k;
}

int tsink_count(tsink *s, uint32_t type)
{
    pthread_mutex_lock(&s->mu);
    int k = count_locked(s, type);
    pthread_mutex_unlock(&s->mu);
    return k;
}

int tsink_wait(tsink *s, uint32_t type, int n, int64_t timeout_ms)
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

const tsink_ev *tsink_get(tsink *s, uint32_t type, int idx)
{
    const tsink_ev *r = NULL;
    pthread_mutex_lock(&s->mu);
    for (int i = 0, k = 0; i < s->n; i++)
        if (s->ev[i].type == type && k++ == idx) {
            r = &s->ev[i];
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return r;
}

char *tsink_deltas(tsink *s, uint64_t turn)
{
    rt_buf b;
    rt_buf_init(&b, 1 << 20);
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n; i++)
        if (s->ev[i].type == AG_MSG_DELTA && s->ev[i].turn == turn)
            (void)rt_buf_append_str(&b, s->ev[i].text);
    pthread_mutex_unlock(&s->mu);
    return rt_buf_steal(&b, NULL);
}

void tsink_free(tsink *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++) {
        rt_free(s->ev[i].text);
        rt_free(s->ev[i].tool);
        rt_free(s->ev[i].errmsg);
        rt_free(s->ev[i].session_id);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    rt_free(s);
}
