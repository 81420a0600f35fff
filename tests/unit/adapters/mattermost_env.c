/* mattermost_env — see mattermost_env.h. */
#include "mattermost_env.h"

#include "lws_httpc.h"
#include "rt_alloc.h"
#include "rt_http.h"
#include "rt_log.h"
#include "rt_lws.h"
#include "rt_reactor.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MM_DOUBLE_PATH
#error "MM_DOUBLE_PATH must name tests/doubles/mattermost_double.py"
#endif

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

static void deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static void cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

/* ============================================================ the server double */

void mmd_start(mmd *d)
{
    memset(d, 0, sizeof(*d));
    int out[2], in[2];
    ASSERT_OK(pipe(out));
    ASSERT_OK(pipe(in));
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execl("/usr/bin/python3", "python3", MM_DOUBLE_PATH, "--port", "0", "--control-port", "0",
              "--token", MT_TOKEN, "--exit-on-stdin-eof", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    /* in[1] stays open (leaked on purpose into this test process): the double exits when the
     * test process does, whatever way it ends */
    (void)fcntl(in[1], F_SETFD, FD_CLOEXEC);
    d->pid = pid;
    char line[128];
    size_t len = 0;
    for (int i = 0; i < 200 && len < sizeof(line) - 1; i++) {
        ssize_t n = read(out[0], line + len, 1);
        if (n <= 0)
            break;
        if (line[len++] == '\n')
            break;
    }
    line[len] = '\0';
    close(out[0]);
    ASSERT_EQ(sscanf(line, "PORTS %d %d", &d->port, &d->ctl_port), 2);
    int st = 0;
    d->world = mmd_call(d, "GET", "/_test/world", NULL, &st);
    ASSERT_EQ(st, 200);
    ASSERT_NOT_NULL(d->world);
}

void mmd_stop(mmd *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        int st;
        for (int i = 0; i < 500; i++) {
            if (waitpid(d->pid, &st, WNOHANG) == d->pid)
                break;
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
            if (i == 499) {
                kill(d->pid, SIGKILL);
                waitpid(d->pid, &st, 0);
            }
        }
    }
    cJSON_Delete(d->world);
    memset(d, 0, sizeof(*d));
}

cJSON *mmd_call(mmd *d, const char *method, const char *path, const char *body, int *status)
{
    char *raw;
    if (body)
        raw = rt_xasprintf("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                           "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                           method, path, strlen(body), body);
    else
        raw = rt_xasprintf("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", method,
                           path);
    hc_resp r;
    memset(&r, 0, sizeof(r));
    int rc = hc_roundtrip(d->ctl_port, raw, &r);
    rt_free(raw);
    if (status)
        *status = rc == 0 ? r.status : -1;
    cJSON *j = rc == 0 && r.body ? cJSON_Parse(r.body) : NULL;
    if (rc == 0)
        hc_resp_free(&r);
    return j;
}

void mmd_do(mmd *d, const char *path, const char *body)
{
    int st = 0;
    cJSON *j = mmd_call(d, "POST", path, body, &st);
    cJSON_Delete(j);
    ASSERT_EQ(st, 200);
}

const char *mmd_id(mmd *d, const char *key)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(d->world, "users");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(d->world, "channels");
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(u, key);
    if (!o)
        o = cJSON_GetObjectItemCaseSensitive(c, key);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    return cJSON_IsString(id) ? id->valuestring : key;
}

cJSON *mmd_post(mmd *d, const char *channel, const char *user, const char *message,
                const char *root_id)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "channel", channel);
    cJSON_AddStringToObject(b, "user", user);
    cJSON_AddStringToObject(b, "message", message);
    if (root_id)
        cJSON_AddStringToObject(b, "root_id", root_id);
    char *s = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    int st = 0;
    cJSON *p = mmd_call(d, "POST", "/_test/post", s, &st);
    cJSON_free(s);
    ASSERT_EQ(st, 200);
    ASSERT_NOT_NULL(p);
    return p;
}

char *mmd_post_id(mmd *d, const char *channel, const char *user, const char *message,
                  const char *root_id)
{
    cJSON *p = mmd_post(d, channel, user, message, root_id);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(p, "id");
    ASSERT(cJSON_IsString(id));
    char *r = rt_xstrdup(id->valuestring);
    cJSON_Delete(p);
    return r;
}

cJSON *mmd_wait(mmd *d, const char *what, int n, const char *query, int timeout_ms)
{
    if (timeout_ms > HC_TIMEOUT_MS - 1000)
        timeout_ms = HC_TIMEOUT_MS - 1000;
    char *path = rt_xasprintf("/_test/wait?what=%s&n=%d&timeout_ms=%d%s", what, n, timeout_ms,
                              query ? query : "");
    int st = 0;
    cJSON *j = mmd_call(d, "GET", path, NULL, &st);
    rt_free(path);
    if (st != 200) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

int mmd_count(mmd *d, const char *what, const char *query)
{
    char *path = rt_xasprintf("/_test/wait?what=%s&n=0&timeout_ms=0%s", what, query ? query : "");
    int st = 0;
    cJSON *j = mmd_call(d, "GET", path, NULL, &st);
    rt_free(path);
    int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : -1;
    cJSON_Delete(j);
    return n;
}

/* ============================================================ the gateway double */

#define MGW_MAX 512

struct mgw {
    rt_ref ref;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    mgw_rec rec[MGW_MAX];
    char *reply; /* NULL: echo */
    int reply_kind;
    bool silent;
};

static void mgw_record(mgw *g, const mgw_rec *r)
{
    pthread_mutex_lock(&g->mu);
    if (g->n < MGW_MAX)
        g->rec[g->n++] = *r;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void mgw_on_event(rt_ctx *cx, mgw *g, const gw_msg_event *e)
{
    mgw_rec r = {.kind = MGW_EVENT};
    r.chat_type = dupn(e->src.chat_type);
    r.chat_id = dupn(e->src.chat_id);
    r.chat_name = dupn(e->src.chat_name);
    r.user_id = dupn(e->src.user_id);
    r.user_name = dupn(e->src.user_name);
    r.thread_id = dupn(e->src.thread_id);
    r.text = dupn(e->text);
    r.message_id = dupn(e->message_id);
    r.reply_chat = dupn(e->reply.chat_id);
    r.reply_thread = dupn(e->reply.thread_id);
    r.reply_to = dupn(e->reply.reply_to);
    r.ephemeral = dupn(e->ephemeral);
    r.ekind = e->kind;
    r.adapter = e->adapter;
    r.nmedia = e->nmedia;
    for (size_t i = 0; i < e->nmedia && i < 4; i++)
        r.media[i] = dupn(e->media[i]);
    mgw_record(g, &r);

    pthread_mutex_lock(&g->mu);
    bool silent = g->silent;
    char *text = g->reply ? rt_xstrdup(g->reply) : rt_xasprintf("echo: %s", e->text ? e->text : "");
    int kind = g->reply_kind;
    pthread_mutex_unlock(&g->mu);
    if (!silent && e->adapter) {
        rt_send(cx, e->adapter, gw_out_typing_new(&e->reply, true));
        rt_send(cx, e->adapter, gw_out_text_new(GW_OUT_TEXT, &e->reply, text, kind));
        rt_send(cx, e->adapter, gw_out_typing_new(&e->reply, false));
        rt_send(cx, e->adapter, gw_out_turn_end_new(&e->reply, GW_OUTCOME_SUCCESS, "sid"));
    }
    rt_free(text);
}

static void mgw_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    mgw *g = state;
    switch (m->type) {
    case GW_MSG_ADAPTER_UP:
    case GW_MSG_ADAPTER_DOWN: {
        gw_msg_adapter *a = (gw_msg_adapter *)m;
        mgw_rec r = {.kind = m->type == GW_MSG_ADAPTER_UP ? MGW_UP : MGW_DOWN};
        r.caps = a->caps;
        r.home = dupn(a->home_channel);
        r.adapter = a->ref;
        mgw_record(g, &r);
        break;
    }
    case GW_MSG_EVENT: mgw_on_event(cx, g, (gw_msg_event *)m); break;
    default: break;
    }
}

static void mgw_fini(void *state)
{
    (void)state; /* freed by mgw_free */
}

static const rt_actor_type mgw_type = {"mm_gw_double", mgw_behave, mgw_fini, 0};

mgw *mgw_start(rt_runtime *rt)
{
    mgw *g = rt_xcalloc(1, sizeof(*g));
    pthread_mutex_init(&g->mu, NULL);
    cond_init_mono(&g->cv);
    rt_spawn_opts so = {.name = GW_NAME};
    g->ref = rt_spawn(rt_ctx_external(rt), &mgw_type, g, &so);
    ASSERT_NE(g->ref, 0);
    return g;
}

void mgw_reply_with(mgw *g, const char *text, int kind, bool silent)
{
    pthread_mutex_lock(&g->mu);
    rt_free(g->reply);
    g->reply = dupn(text);
    g->reply_kind = kind;
    g->silent = silent;
    pthread_mutex_unlock(&g->mu);
}

static int count_locked(mgw *g, int kind)
{
    int k = 0;
    for (int i = 0; i < g->n; i++)
        k += g->rec[i].kind == kind;
    return k;
}

int mgw_count(mgw *g, int kind)
{
    pthread_mutex_lock(&g->mu);
    int k = count_locked(g, kind);
    pthread_mutex_unlock(&g->mu);
    return k;
}

int mgw_wait(mgw *g, int kind, int n, int64_t timeout_ms)
{
    struct timespec ts;
    deadline_in(&ts, timeout_ms);
    int r = 0;
    pthread_mutex_lock(&g->mu);
    while (count_locked(g, kind) < n && r != ETIMEDOUT)
        r = pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    int ok = count_locked(g, kind) >= n;
    pthread_mutex_unlock(&g->mu);
    return ok ? 0 : -ETIMEDOUT;
}

const mgw_rec *mgw_get(mgw *g, int kind, int idx)
{
    const mgw_rec *r = NULL;
    pthread_mutex_lock(&g->mu);
    for (int i = 0, k = 0; i < g->n; i++)
        if (g->rec[i].kind == kind && k++ == idx) {
            r = &g->rec[i];
            break;
        }
    pthread_mutex_unlock(&g->mu);
    return r;
}

void mgw_free(mgw *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n; i++) {
        mgw_rec *r = &g->rec[i];
        rt_free(r->home);
        rt_free(r->chat_type);
        rt_free(r->chat_id);
        rt_free(r->chat_name);
        rt_free(r->user_id);
        rt_free(r->user_name);
        rt_free(r->thread_id);
        rt_free(r->text);
        rt_free(r->message_id);
        rt_free(r->reply_chat);
        rt_free(r->reply_thread);
        rt_free(r->reply_to);
        rt_free(r->ephemeral);
        for (size_t k = 0; k < 4; k++)
            rt_free(r->media[k]);
    }
    rt_free(g->reply);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    rt_free(g);
}

/* ============================================================ captured log lines */

#define LOG_MAX 2048

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_cv;
static char *log_lines[LOG_MAX];
static int log_n;

static void log_sink(const char *line, size_t len, void *arg)
{
    (void)arg;
    char *s = rt_xmalloc(len + 1);
    memcpy(s, line, len);
    s[len] = '\0';
    pthread_mutex_lock(&log_mu);
    if (log_n < LOG_MAX)
        log_lines[log_n++] = s;
    else
        rt_free(s);
    pthread_cond_broadcast(&log_cv);
    pthread_mutex_unlock(&log_mu);
}

static void log_start(void)
{
    cond_init_mono(&log_cv);
    rt_log_capture(log_sink, NULL);
}

static void log_stop(void)
{
    rt_log_capture(NULL, NULL);
    pthread_mutex_lock(&log_mu);
    for (int i = 0; i < log_n; i++)
        rt_free(log_lines[i]);
    log_n = 0;
    pthread_mutex_unlock(&log_mu);
    pthread_cond_destroy(&log_cv);
}

static int log_count_locked(const char *needle)
{
    int k = 0;
    for (int i = 0; i < log_n; i++)
        k += strstr(log_lines[i], needle) != NULL;
    return k;
}

bool mte_log_has(const char *needle)
{
    return mte_log_count(needle) > 0;
}

int mte_log_count(const char *needle)
{
    pthread_mutex_lock(&log_mu);
    int k = log_count_locked(needle);
    pthread_mutex_unlock(&log_mu);
    return k;
}

int mte_log_wait(const char *needle, int64_t timeout_ms)
{
    struct timespec ts;
    deadline_in(&ts, timeout_ms);
    int r = 0;
    pthread_mutex_lock(&log_mu);
    while (!log_count_locked(needle) && r != ETIMEDOUT)
        r = pthread_cond_timedwait(&log_cv, &log_mu, &ts);
    int ok = log_count_locked(needle) > 0;
    pthread_mutex_unlock(&log_mu);
    return ok ? 0 : -ETIMEDOUT;
}

char *mte_log_find(const char *needle)
{
    char *r = NULL;
    pthread_mutex_lock(&log_mu);
    for (int i = log_n - 1; i >= 0 && !r; i--)
        if (strstr(log_lines[i], needle))
            r = rt_xstrdup(log_lines[i]);
    pthread_mutex_unlock(&log_mu);
    return r;
}

/* ============================================================ the environment */

void mte_init(mte *e)
{
    memset(e, 0, sizeof(*e));
    mmd_start(&e->d); /* forks: before any thread */
    log_start();
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
    e->gw = mgw_start(e->rt);
    snprintf(e->home, sizeof(e->home), "%s", test_tmpdir());
    snprintf(e->url, sizeof(e->url), "http://127.0.0.1:%d", e->d.port);
    e->o.url = e->url;
    e->o.token = MT_TOKEN;
    e->o.hermes_home = e->home;
    e->o.require_mention = true;
    e->o.heartbeat_ms = 3600 * 1000;
    e->o.ws_idle_ms = 3600 * 1000;
}

int mte_start(mte *e, char *err, size_t errlen)
{
    return mattermost_start(e->cx, &e->o, 0, &e->ad, err, errlen);
}

void mte_up(mte *e)
{
    char err[512] = "";
    int rc = mte_start(e, err, sizeof(err));
    if (rc)
        fprintf(stderr, "mattermost_start: %s\n", err);
    ASSERT_OK(rc);
    ASSERT_OK(mgw_wait(e->gw, MGW_UP, 1, MT_WAIT_MS));
    /* the first catch-up (which sets the starting mark) has finished */
    mte_quiet(e);
}

void mte_advance(mte *e, int64_t ms)
{
    ASSERT_OK(rt_clock_advance(e->rt, ms * 1000000));
    mte_quiet(e);
}

void mte_quiet(mte *e)
{
    ASSERT_OK(rt_wait_quiescent(e->rt, MT_WAIT_MS));
}

void mte_fini(mte *e)
{
    if (e->ad) {
        rt_stop(e->cx, e->ad, RT_EXIT_STOPPED);
        for (int i = 0; i < 1000 && rt_is_alive(e->cx, e->ad); i++) {
            struct timespec ts = {0, 5 * 1000000L};
            nanosleep(&ts, NULL);
        }
        ASSERT_FALSE(rt_is_alive(e->cx, e->ad));
    }
    ASSERT_OK(rt_wait_quiescent(e->rt, MT_WAIT_MS));
    rt_lws_stop(e->l);
    rt_reactor_stop(e->re);
    ASSERT_OK(rt_wait_quiescent(e->rt, MT_WAIT_MS));
    rt_runtime_free(e->rt);
    mgw_free(e->gw);
    log_stop();
    mmd_stop(&e->d);
    memset(e, 0, sizeof(*e));
}
