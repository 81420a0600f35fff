/* matrix_env — see matrix_env.h. */
#include "matrix_env.h"

#include "lws_httpc.h"
#include "rt_alloc.h"
#include "rt_http.h"
#include "rt_log.h"
#include "rt_reactor.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void nap(void)
{
    const struct timespec ts = {0, 5 * 1000000L};
    nanosleep(&ts, NULL);
}

/* ============================================================ the double */

void mxd_start(mxd *d, int port, const char *dir, bool legacy_media)
{
    d->legacy_media = legacy_media;
    if (dir)
        snprintf(d->state, sizeof(d->state), "%s/double_state.json", dir);
    int pfd[2];
    ASSERT_OK(pipe(pfd));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    char portbuf[16];
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    char *argv[8];
    int n = 0;
    argv[n++] = (char *)"/usr/bin/python3";
    argv[n++] = (char *)MATRIX_DOUBLE_PY;
    argv[n++] = (char *)"--port";
    argv[n++] = portbuf;
    if (d->state[0]) {
        argv[n++] = (char *)"--state";
        argv[n++] = d->state;
    }
    if (legacy_media)
        argv[n++] = (char *)"--legacy-media";
    argv[n] = NULL;
    ASSERT_OK(posix_spawn(&d->pid, argv[0], &fa, NULL, argv, environ));
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    char buf[128];
    size_t len = 0;
    int64_t deadline = mono_ms() + MX_WAIT_MS;
    d->port = 0;
    while (!d->port && mono_ms() < deadline && len < sizeof(buf) - 1) {
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t k = read(pfd[0], buf + len, sizeof(buf) - 1 - len);
        if (k <= 0)
            break;
        len += (size_t)k;
        buf[len] = '\0';
        if (strchr(buf, '\n'))
            sscanf(buf, "PORT %d", &d->port);
    }
    close(pfd[0]);
    if (!d->port)
        TEST_FAIL_("the Matrix double did not start (%s)", MATRIX_DOUBLE_PY);
}

void mxd_stop(mxd *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGTERM);
    int st;
    waitpid(d->pid, &st, 0);
    d->pid = 0;
}

cJSON *mxd_call(mxd *d, const char *method, const char *path, const char *body, int *status)
{
    size_t blen = body ? strlen(body) : 0;
    char *raw = rt_xasprintf("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                             "Content-Length: %zu\r\nContent-Type: application/json\r\n\r\n%s",
                             method, path, blen, body ? body : "");
    hc_resp r;
    memset(&r, 0, sizeof(r));
    int rc = hc_roundtrip(d->port, raw, &r);
    rt_free(raw);
    if (status)
        *status = rc == 0 ? r.status : -1;
    cJSON *j = rc == 0 && r.body ? cJSON_Parse(r.body) : NULL;
    if (rc == 0)
        hc_resp_free(&r);
    return j;
}

void mxd_do(mxd *d, const char *path, const char *body)
{
    int st = 0;
    cJSON *j = mxd_call(d, "POST", path, body, &st);
    cJSON_Delete(j);
    ASSERT_EQ(st, 200);
}

void mxd_room(mxd *d, const char *room, const char *members, bool direct, bool invite)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "room_id", room);
    cJSON *m = cJSON_AddArrayToObject(b, "members");
    char *copy = rt_xstrdup(members);
    for (char *p = copy, *c; p && *p; p = c ? c + 1 : NULL) {
        c = strchr(p, ',');
        if (c)
            *c = '\0';
        cJSON_AddItemToArray(m, cJSON_CreateString(p));
    }
    rt_free(copy);
    cJSON_AddBoolToObject(b, "direct", direct);
    cJSON_AddBoolToObject(b, "invite", invite);
    char *s = cJSON_PrintUnformatted(b);
    mxd_do(d, "/_double/room", s);
    cJSON_free(s);
    cJSON_Delete(b);
}

char *mxd_say(mxd *d, const char *room, const char *sender, const char *body, const char *content)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "room_id", room);
    cJSON_AddStringToObject(b, "sender", sender);
    if (content)
        cJSON_AddItemToObject(b, "content", cJSON_Parse(content));
    else
        cJSON_AddStringToObject(b, "body", body);
    char *s = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    int st = 0;
    cJSON *j = mxd_call(d, "POST", "/_double/message", s, &st);
    cJSON_free(s);
    ASSERT_EQ(st, 200);
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "event_id"));
    ASSERT_NOT_NULL(id);
    char *out = rt_xstrdup(id);
    cJSON_Delete(j);
    return out;
}

void mxd_post(mxd *d, const char *room, const char *sender, const char *body, const char *content)
{
    rt_free(mxd_say(d, room, sender, body, content));
}

int mxd_count(mxd *d, const char *what)
{
    char path[512];
    snprintf(path, sizeof(path), "/_double/%s", what);
    cJSON *j = mxd_call(d, "GET", path, NULL, NULL);
    int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : -1;
    cJSON_Delete(j);
    return n;
}

cJSON *mxd_wait(mxd *d, const char *what, int n, int timeout_ms)
{
    char path[512];
    snprintf(path, sizeof(path), "/_double/%s", what);
    int64_t deadline = mono_ms() + timeout_ms;
    do {
        cJSON *j = mxd_call(d, "GET", path, NULL, NULL);
        if (cJSON_IsArray(j) && cJSON_GetArraySize(j) >= n)
            return j;
        cJSON_Delete(j);
        const struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    } while (mono_ms() < deadline);
    return NULL;
}

/* ====================================================== the gateway stand-in */

struct mgw {
    pthread_mutex_t mu;
    mgw_ev *ev;
    int n, cap;
    int ups;
    gw_caps caps; /* the last GW_MSG_ADAPTER_UP's */
    int acks_ok, acks_failed;
    uint64_t next_delivery;
    _Atomic bool answer;
    rt_ref ref;
};

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

static void answer(rt_ctx *cx, mgw *g, gw_msg_event *e)
{
    gw_target *to = &e->reply;
    bool late = e->text && strstr(e->text, "late"); /* the outbox's answer after the end */
    bool mute = e->text && strstr(e->text, "mute"); /* no answer at all */
    bool fail = e->text && strstr(e->text, "fail");
    rt_send(cx, e->adapter, gw_out_typing_new(to, true));
    if (e->text && strstr(e->text, "tools")) { /* two tool progress lines first */
        rt_send(
            cx, e->adapter,
            gw_out_progress_new(to, "\xf0\x9f\x92\xbb ls", "terminal", "\xf0\x9f\x92\xbb", "ls"));
        rt_send(cx, e->adapter,
                gw_out_progress_new(to, "\xf0\x9f\x93\x96 read file", "read_file",
                                    "\xf0\x9f\x93\x96", "file"));
    }
    char *text = rt_xasprintf("Echo: %s", e->text ? e->text : "");
    gw_out_text *t = (gw_out_text *)gw_out_text_new(GW_OUT_TEXT, to, text, GW_TEXT_REPLY);
    t->delivery = ++g->next_delivery; /* as the gateway's outbox does */
    rt_free(text);
    if (!late && !mute)
        rt_send(cx, e->adapter, &t->hdr);
    rt_send(cx, e->adapter, gw_out_typing_new(to, false));
    rt_send(cx, e->adapter,
            gw_out_turn_end_new(to, fail ? GW_OUTCOME_FAILURE : GW_OUTCOME_SUCCESS, NULL));
    if (late)
        rt_send(cx, e->adapter, &t->hdr);
    else if (mute)
        rt_msg_free(&t->hdr);
}

static void mgw_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    mgw *g = state;
    if (m->type == GW_MSG_ADAPTER_UP) {
        pthread_mutex_lock(&g->mu);
        g->ups++;
        g->caps = ((gw_msg_adapter *)m)->caps;
        pthread_mutex_unlock(&g->mu);
        return;
    }
    if (m->type == GW_MSG_SENT) {
        gw_msg_sent *s = (gw_msg_sent *)m;
        pthread_mutex_lock(&g->mu);
        if (s->err)
            g->acks_failed++;
        else
            g->acks_ok++;
        pthread_mutex_unlock(&g->mu);
        return;
    }
    if (m->type != GW_MSG_EVENT)
        return;
    gw_msg_event *e = (gw_msg_event *)m;
    mgw_ev r = {
        .chat_type = dupn(e->src.chat_type),
        .chat_id = dupn(e->src.chat_id),
        .chat_name = dupn(e->src.chat_name),
        .user_id = dupn(e->src.user_id),
        .user_name = dupn(e->src.user_name),
        .text = dupn(e->text),
        .thread_id = dupn(e->src.thread_id),
        .message_id = dupn(e->message_id),
        .reply_to = dupn(e->reply.reply_to),
        .reply_thread = dupn(e->reply.thread_id),
        .kind = e->kind,
        .nmedia = e->nmedia,
        .media0 = e->nmedia ? dupn(e->media[0]) : NULL,
    };
    pthread_mutex_lock(&g->mu);
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 16;
        g->ev = rt_xrealloc(g->ev, (size_t)g->cap * sizeof(*g->ev));
    }
    g->ev[g->n++] = r;
    pthread_mutex_unlock(&g->mu);
    if (atomic_load(&g->answer))
        answer(cx, g, e);
}

static const rt_actor_type mgw_type = {"mx_gw_double", mgw_behave, NULL, 0};

mgw *mgw_start(rt_runtime *rt)
{
    mgw *g = rt_xcalloc(1, sizeof(*g));
    pthread_mutex_init(&g->mu, NULL);
    atomic_store(&g->answer, true);
    rt_spawn_opts so = {.name = GW_NAME};
    g->ref = rt_spawn(rt_ctx_external(rt), &mgw_type, g, &so);
    return g;
}

void mgw_set_answer(mgw *g, bool on)
{
    atomic_store(&g->answer, on);
}

int mgw_count(mgw *g)
{
    pthread_mutex_lock(&g->mu);
    int n = g->n;
    pthread_mutex_unlock(&g->mu);
    return n;
}

int mgw_ups(mgw *g)
{
    pthread_mutex_lock(&g->mu);
    int n = g->ups;
    pthread_mutex_unlock(&g->mu);
    return n;
}

gw_caps mgw_caps(mgw *g)
{
    pthread_mutex_lock(&g->mu);
    gw_caps c = g->caps;
    pthread_mutex_unlock(&g->mu);
    return c;
}

void mgw_acks(mgw *g, int *ok, int *failed)
{
    pthread_mutex_lock(&g->mu);
    *ok = g->acks_ok;
    *failed = g->acks_failed;
    pthread_mutex_unlock(&g->mu);
}

int mgw_wait(mgw *g, int n, int64_t timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    while (mgw_count(g) < n) {
        if (mono_ms() >= deadline)
            return -ETIMEDOUT;
        nap();
    }
    return 0;
}

const mgw_ev *mgw_get(mgw *g, int i)
{
    pthread_mutex_lock(&g->mu);
    const mgw_ev *e = i >= 0 && i < g->n ? &g->ev[i] : NULL;
    pthread_mutex_unlock(&g->mu);
    return e;
}

void mgw_free(mgw *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n; i++) {
        mgw_ev *e = &g->ev[i];
        rt_free(e->chat_type);
        rt_free(e->chat_id);
        rt_free(e->chat_name);
        rt_free(e->user_id);
        rt_free(e->user_name);
        rt_free(e->text);
        rt_free(e->thread_id);
        rt_free(e->message_id);
        rt_free(e->reply_to);
        rt_free(e->reply_thread);
        rt_free(e->media0);
    }
    rt_free(g->ev);
    pthread_mutex_destroy(&g->mu);
    rt_free(g);
}

/* ================================================================ the log */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char *log_text;
static size_t log_len;

static void log_sink(const char *line, size_t len, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&log_mu);
    if (log_len + len + 2 < (4u << 20)) {
        log_text = rt_xrealloc(log_text, log_len + len + 2);
        memcpy(log_text + log_len, line, len);
        log_len += len;
        log_text[log_len++] = '\n';
        log_text[log_len] = '\0';
    }
    pthread_mutex_unlock(&log_mu);
}

bool mte_logged(const char *needle)
{
    pthread_mutex_lock(&log_mu);
    bool yes = log_text && strstr(log_text, needle);
    pthread_mutex_unlock(&log_mu);
    return yes;
}

void mte_log_clear(void)
{
    pthread_mutex_lock(&log_mu);
    log_len = 0;
    if (log_text)
        log_text[0] = '\0';
    pthread_mutex_unlock(&log_mu);
}

/* ============================================================ environment */

void mte_init(mte *e, mxd *d, const char *home)
{
    memset(e, 0, sizeof(*e));
    rt_log_capture(log_sink, NULL);
    e->d = d;
    if (home) {
        snprintf(e->home, sizeof(e->home), "%s", home);
    } else {
        snprintf(e->home, sizeof(e->home), "%s/home", test_tmpdir());
        mkdir(e->home, 0700);
    }
    rt_options ro = {.workers = 2, .fake_clock = true};
    e->rt = rt_runtime_new(&ro);
    ASSERT_NOT_NULL(e->rt);
    e->re = rt_reactor_start(e->rt);
    ASSERT_NOT_NULL(e->re);
    ASSERT_OK(rt_http_init(e->re));
    e->cx = rt_ctx_external(e->rt);
    e->gw = mgw_start(e->rt);
    matrix_opts *o = &e->o;
    o->homeserver = rt_xasprintf("http://127.0.0.1:%d", d->port);
    o->access_token = rt_xstrdup("bot-token");
    o->require_mention = true;
    o->auto_thread = true;
    o->reactions = true;
    o->hermes_home = rt_xstrdup(e->home);
    o->store_dir = rt_xstrdup(e->home);
    o->threads_file = rt_xasprintf("%s/matrix_threads.json", e->home);
    o->cache_dir = rt_xasprintf("%s/cache", e->home);
    o->sync_timeout_ms = 2000;
    o->token_write_ms = -1;
    o->send_retry_ms = 1000;
    o->stats = &e->st;
}

int mte_start(mte *e, char *err, size_t errlen)
{
    int rc = matrix_start(e->cx, &e->o, 0, &e->ref, err, errlen);
    e->started = rc == 0;
    return rc;
}

void mte_up(mte *e)
{
    char err[512] = "";
    int ups = e->gw ? mgw_ups(e->gw) : 0;
    ASSERT_OK(mte_start(e, err, sizeof(err)));
    ASSERT_OK(mte_wait_state(e, MATRIX_ST_SYNCING, MX_WAIT_MS));
    /* the adapter is syncing once it has sent GW_MSG_ADAPTER_UP; the gateway double, an
     * actor of its own, may not have counted it yet */
    int64_t deadline = mono_ms() + MX_WAIT_MS;
    while (e->gw && mgw_ups(e->gw) <= ups && mono_ms() < deadline) {
        const struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

void mte_advance(mte *e, int64_t ms)
{
    ASSERT_OK(rt_clock_advance(e->rt, ms * 1000000));
}

int mte_wait_stat(mte *e, const _Atomic uint64_t *field, uint64_t v, int64_t timeout_ms)
{
    (void)e;
    int64_t deadline = mono_ms() + timeout_ms;
    while (atomic_load(field) < v) {
        if (mono_ms() >= deadline)
            return -ETIMEDOUT;
        nap();
    }
    return 0;
}

int mte_wait_state(mte *e, int state, int64_t timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    while (atomic_load(&e->st.state) != state) {
        if (mono_ms() >= deadline)
            return -ETIMEDOUT;
        nap();
    }
    return 0;
}

void mte_fini(mte *e, bool remove)
{
    (void)remove;
    if (e->started && atomic_load(&e->st.state) != MATRIX_ST_FAILED)
        rt_stop(e->cx, e->ref, RT_EXIT_STOPPED);
    rt_wait_quiescent(e->rt, MX_WAIT_MS);
    rt_reactor_stop(e->re);
    rt_wait_quiescent(e->rt, MX_WAIT_MS);
    rt_runtime_free(e->rt);
    mgw_free(e->gw);
    matrix_opts_fini(&e->o);
    rt_log_capture(NULL, NULL);
    pthread_mutex_lock(&log_mu);
    rt_free(log_text);
    log_text = NULL;
    log_len = 0;
    pthread_mutex_unlock(&log_mu);
    memset(e, 0, sizeof(*e));
}
