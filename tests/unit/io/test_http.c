/*
 * The HTTP client against loopback servers started by each case (http_server.h): buffered
 * and streamed responses, 1,000 concurrent requests, SSE in tiny chunks, cancel, resets,
 * caps, timeouts, TLS with a CA made at test time, proxies from the environment, bad
 * input, a slow receiver (backpressure) and a reactor stopped with transfers in flight.
 *
 * A collector actor records every message per request id under a mutex; the test thread
 * waits on a condition variable with a deadline, never sleeps.
 */
#include "rt_http.h"

#include "http_server.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_map.h"
#include "rt_util.h"
#include "test.h"

#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 20000 /* generous: sanitizer builds on a shared 2-core machine */

/* ================================================================ the collector */

typedef struct rlog {
    int heads, events, datas, dones, after_done;
    int head_status;
    int status, err, http_version;
    bool reused;
    char *errmsg, *body;
    size_t body_len;
    rt_http_header *headers;
    size_t nheaders;
    int64_t retry_after_s;
    uint64_t rx_bytes;
    rt_buf sse;       /* "type|data|id\n" per event */
    size_t raw_bytes; /* DATA bytes, checked against the server's a..z pattern */
    bool raw_ok;
} rlog;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static rt_map logs;      /* id -> rlog, under mu */
static int ndone;        /* under mu */
static bool gate_closed; /* under mu: the blocking collector holds DATA until opened */

static rlog *log_of(uint64_t id) /* mu held */
{
    rlog *l = rt_map_get(&logs, id);
    if (!l) {
        l = rt_xcalloc(1, sizeof(*l));
        rt_buf_init(&l->sse, 1 << 20);
        l->raw_ok = true;
        rt_map_put(&logs, id, l);
    }
    return l;
}

static void record_done(rlog *l, rt_io_msg_http_done *d)
{
    l->dones++;
    l->err = d->err;
    l->status = d->status;
    l->errmsg = d->errmsg;
    d->errmsg = NULL; /* steal */
    l->body = d->body;
    d->body = NULL;
    l->body_len = d->body_len;
    l->headers = d->headers;
    d->headers = NULL;
    l->nheaders = d->nheaders;
    l->http_version = d->http_version;
    l->reused = d->reused;
    l->retry_after_s = d->retry_after_s;
    l->rx_bytes = d->rx_bytes;
    ndone++;
}

static void record_data(rlog *l, rt_io_msg_http_data *m)
{
    l->datas++;
    for (size_t i = 0; i < m->len; i++)
        if (m->data[i] != (char)('a' + (l->raw_bytes + i) % 26))
            l->raw_ok = false;
    l->raw_bytes += m->len;
}

static void collect_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    bool blocking = *(bool *)state;
    pthread_mutex_lock(&mu);
    /* Only the detached collector may wait here: it has a thread of its own. */
    while (blocking && gate_closed && m->type == RT_IO_MSG_HTTP_DATA)
        pthread_cond_wait(&cv, &mu);
    switch (m->type) {
    case RT_IO_MSG_HTTP_HEAD: {
        rt_io_msg_http_head *h = (rt_io_msg_http_head *)m;
        rlog *l = log_of(h->id);
        l->heads++;
        l->head_status = h->status;
        l->after_done += l->dones;
        break;
    }
    case RT_IO_MSG_HTTP_SSE: {
        rt_io_msg_http_sse *e = (rt_io_msg_http_sse *)m;
        rlog *l = log_of(e->id);
        l->events++;
        l->after_done += l->dones;
        (void)rt_buf_printf(&l->sse, "%s|%s|%s\n", e->event, e->data, e->last_id ? e->last_id : "");
        break;
    }
    case RT_IO_MSG_HTTP_DATA: {
        rt_io_msg_http_data *d = (rt_io_msg_http_data *)m;
        rlog *l = log_of(d->id);
        l->after_done += l->dones;
        record_data(l, d);
        break;
    }
    case RT_IO_MSG_HTTP_DONE: {
        rt_io_msg_http_done *d = (rt_io_msg_http_done *)m;
        record_done(log_of(d->id), d);
        break;
    }
    default: break;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static const rt_actor_type collector_type = {"collector", collect_behave, NULL, sizeof(bool)};

/* ================================================================ harness */

static rt_runtime *rt;
static rt_reactor *re;
static rt_ref col;
static rt_ctx *cx;
static hsrv *srv;

static void start_runtime(bool with_http)
{
    rt_map_init(&logs);
    rt_options o = {.workers = 2};
    rt = rt_runtime_new(&o);
    re = rt_reactor_start(rt);
    if (with_http)
        ASSERT_OK(rt_http_init(re));
    cx = rt_ctx_external(rt);
    bool blocking = false;
    col = rt_spawn(cx, &collector_type, &blocking, NULL);
}

static void setup(void)
{
    srv = hsrv_start();
    start_runtime(true);
}

static void free_logs(void)
{
    for (size_t i = 0; i < logs.cap; i++) {
        rlog *l = logs.keys[i] ? logs.vals[i] : NULL;
        if (!l)
            continue;
        rt_free(l->errmsg);
        rt_free(l->body);
        rt_free(l->headers);
        rt_buf_fini(&l->sse);
        rt_free(l);
    }
    rt_map_fini(&logs);
}

static void teardown(void)
{
    if (re)
        rt_reactor_stop(re);
    re = NULL;
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    rt_runtime_free(rt);
    hsrv_stop(srv);
    srv = NULL;
    free_logs();
}

static struct timespec deadline(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

/* Wait (mu held) until pred() holds; fails the test after WAIT_MS. */
#define WAIT_UNTIL(pred)                                                                           \
    do {                                                                                           \
        struct timespec dl_ = deadline(WAIT_MS);                                                   \
        while (!(pred))                                                                            \
            if (pthread_cond_timedwait(&cv, &mu, &dl_) == ETIMEDOUT && !(pred))                    \
                TEST_FAIL_("timed out waiting for %s", #pred);                                     \
    } while (0)

/* A snapshot of a request's log once its DONE has arrived (pointers stay owned by the log). */
static rlog wait_done(uint64_t id)
{
    pthread_mutex_lock(&mu);
    WAIT_UNTIL(log_of(id)->dones > 0);
    rlog l = *log_of(id);
    pthread_mutex_unlock(&mu);
    return l;
}

static rlog snapshot(uint64_t id)
{
    pthread_mutex_lock(&mu);
    rlog l = *log_of(id);
    pthread_mutex_unlock(&mu);
    return l;
}

static void wait_events(uint64_t id, int n)
{
    pthread_mutex_lock(&mu);
    WAIT_UNTIL(log_of(id)->events >= n || log_of(id)->dones > 0);
    ASSERT_EQ(log_of(id)->dones, 0);
    pthread_mutex_unlock(&mu);
}

static void __attribute__((unused)) wait_heads(uint64_t id)
{
    pthread_mutex_lock(&mu);
    WAIT_UNTIL(log_of(id)->heads > 0 || log_of(id)->dones > 0);
    ASSERT_EQ(log_of(id)->heads, 1);
    pthread_mutex_unlock(&mu);
}

/* Poll an atomic counter owned by a server thread, with a deadline (no sleeping). */
static void wait_counter(int (*get)(const void *), const void *obj, int want)
{
    int64_t t0 = rt_reactor_now_ns();
    while (get(obj) < want) {
        if (rt_reactor_now_ns() - t0 > (int64_t)WAIT_MS * 1000000)
            TEST_FAIL_("counter stuck at %d, want %d", get(obj), want);
        sched_yield(); /* leave the CPU to the threads we wait for */
    }
}

static int get_peer_closed(const void *s)
{
    return hsrv_peer_closed(s);
}

static char url_buf[256];
static const char *url(const char *path)
{
    snprintf(url_buf, sizeof(url_buf), "http://127.0.0.1:%d%s", hsrv_port(srv), path);
    return url_buf;
}

static uint64_t get(const char *path, rt_http_mode mode)
{
    rt_http_request q = {.url = url(path), .mode = mode, .reply_to = col};
    return rt_http_submit(cx, &q);
}

/* ================================================================ basic requests */

TEST(get_buffered)
{
    setup();
    uint64_t id = get("/hello", RT_HTTP_BUFFER);
    ASSERT_NE(id, 0);
    rlog l = wait_done(id);
    ASSERT_EQ(l.err, 0);
    ASSERT_NULL(l.errmsg);
    ASSERT_EQ(l.status, 200);
    ASSERT_EQ(l.heads, 0);
    ASSERT_EQ(l.body_len, 11);
    ASSERT_STR_EQ(l.body, "hello world");
    ASSERT_EQ(l.http_version, 11);
    ASSERT_EQ(l.rx_bytes, 11);
    ASSERT_STR_EQ(rt_http_header_get(l.headers, l.nheaders, "content-type"), "text/plain");
    ASSERT_STR_EQ(rt_http_header_get(l.headers, l.nheaders, "CONTENT-LENGTH"), "11");
    ASSERT_NULL(rt_http_header_get(l.headers, l.nheaders, "x-missing"));
    teardown();
}

TEST(header_values_are_trimmed_and_unfolded)
{
    setup();
    rlog l = wait_done(get("/headers/fold", RT_HTTP_BUFFER));
    ASSERT_EQ(l.err, 0);
    ASSERT_STR_EQ(rt_http_header_get(l.headers, l.nheaders, "x-fold"), "first second third");
    ASSERT_STR_EQ(rt_http_header_get(l.headers, l.nheaders, "x-space"), "padded");
    ASSERT_STR_EQ(rt_http_header_get(l.headers, l.nheaders, "content-length"), "1");
    teardown();
}

TEST(keepalive_reuses_the_connection)
{
    setup();
    rlog a = wait_done(get("/hello", RT_HTTP_BUFFER));
    rlog b = wait_done(get("/hello", RT_HTTP_BUFFER));
    ASSERT_EQ(a.status, 200);
    ASSERT_EQ(b.status, 200);
    ASSERT_FALSE(a.reused);
    ASSERT_TRUE(b.reused);
    ASSERT_EQ(hsrv_accepted(srv), 1);
    teardown();
}

TEST(post_sends_method_headers_and_body)
{
    setup();
    const char *hdrs[] = {"Content-Type: application/json", "X-Test: yes", NULL};
    static const char body[] = "{\"q\":1}";
    rt_http_request q = {.url = url("/echo"),
                         .headers = hdrs,
                         .body = body,
                         .body_len = sizeof(body) - 1,
                         .reply_to = col,
                         .tag = 42};
    rlog l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, 0);
    ASSERT_STR_CONTAINS(l.body, "POST /echo\n");
    ASSERT_STR_CONTAINS(l.body, "Content-Type: application/json");
    ASSERT_STR_CONTAINS(l.body, "X-Test: yes");
    ASSERT_STR_CONTAINS(l.body, "Content-Length: 7");
    ASSERT_STR_CONTAINS(l.body, "\n{\"q\":1}");
    ASSERT_TRUE(strstr(l.body, "Expect:") == NULL);

    q.method = "PUT";
    l = wait_done(rt_http_submit(cx, &q));
    ASSERT_STR_CONTAINS(l.body, "PUT /echo\n");
    q.method = "DELETE";
    q.body = NULL;
    q.body_len = 0;
    l = wait_done(rt_http_submit(cx, &q));
    ASSERT_STR_CONTAINS(l.body, "DELETE /echo\n");
    q.method = "HEAD";
    l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, 0);
    ASSERT_EQ(l.status, 200);
    ASSERT_EQ(l.body_len, 0);
    teardown();
}

TEST(redirects_followed_only_when_asked)
{
    setup();
    rlog l = wait_done(get("/redirect", RT_HTTP_BUFFER));
    ASSERT_EQ(l.status, 302);
    ASSERT_STR_EQ(rt_http_header_get(l.headers, l.nheaders, "location"), "/hello");
    rt_http_request q = {.url = url("/redirect"), .max_redirects = 3, .reply_to = col};
    l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, 0);
    ASSERT_EQ(l.status, 200);
    ASSERT_STR_EQ(l.body, "hello world");
    ASSERT_NULL(rt_http_header_get(l.headers, l.nheaders, "location"));
    teardown();
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    ASSERT_OK(getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        ASSERT_OK(setrlimit(RLIMIT_NOFILE, &rl));
    }
    ASSERT_GE(rl.rlim_cur, want);
}

/* The server answers only once all 1,000 are waiting, so they are truly in flight at once. */
TEST(thousand_concurrent_requests)
{
    raise_nofile(4096);
    setup();
    enum { N = 1000 };
    uint64_t *ids = rt_xcalloc(N, sizeof(*ids));
    for (int i = 0; i < N; i++)
        ids[i] = get("/gate/1000", RT_HTTP_BUFFER);
    pthread_mutex_lock(&mu);
    WAIT_UNTIL(ndone == N);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < N; i++) {
        rlog l = snapshot(ids[i]);
        ASSERT_EQ(l.dones, 1);
        ASSERT_EQ(l.err, 0);
        ASSERT_EQ(l.status, 200);
        ASSERT_STR_EQ(l.body, "gate");
    }
    ASSERT_EQ(hsrv_requests(srv), N);
    rt_http_stats s;
    rt_http_stats_get(&s);
    ASSERT_EQ(s.active, 0);
    rt_free(ids);
    teardown();
}

TEST(wait_quiescent_waits_for_requests)
{
    setup();
    uint64_t id = get("/slow/200", RT_HTTP_BUFFER);
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    rlog l = snapshot(id);
    ASSERT_EQ(l.dones, 1);
    ASSERT_EQ(l.status, 200);
    teardown();
}

/* ================================================================ streams */

TEST(sse_in_tiny_chunks_end_to_end)
{
    setup();
    uint64_t id = get("/sse/tiny", RT_HTTP_STREAM_SSE);
    rlog l = wait_done(id);
    ASSERT_EQ(l.err, 0);
    ASSERT_EQ(l.heads, 1);
    ASSERT_EQ(l.head_status, 200);
    ASSERT_EQ(l.status, 200);
    ASSERT_NULL(l.body);
    ASSERT_EQ(l.events, 4);
    ASSERT_STR_EQ(rt_buf_cstr(&l.sse), hsrv_sse_sample_events);
    ASSERT_EQ(l.after_done, 0);
    ASSERT_STR_EQ(rt_http_header_get(l.headers, l.nheaders, "content-type"), "text/event-stream");
    teardown();
}

TEST(sse_error_status_is_buffered_not_parsed)
{
    setup();
    rlog l = wait_done(get("/status/429", RT_HTTP_STREAM_SSE));
    ASSERT_EQ(l.err, 0);
    ASSERT_EQ(l.heads, 1);
    ASSERT_EQ(l.head_status, 429);
    ASSERT_EQ(l.events, 0);
    ASSERT_EQ(l.status, 429);
    ASSERT_STR_EQ(l.body, "{\"error\":\"status 429\"}");
    ASSERT_STR_EQ(rt_http_header_get(l.headers, l.nheaders, "Retry-After"), "7");
    ASSERT_EQ(l.retry_after_s, 7);
    teardown();
}

TEST(cancel_mid_stream)
{
    setup();
    uint64_t id = get("/sse/forever", RT_HTTP_STREAM_SSE);
    wait_events(id, 3);
    rt_http_cancel(cx, id);
    rlog l = wait_done(id);
    ASSERT_EQ(l.err, -ECANCELED);
    ASSERT_STR_CONTAINS(l.errmsg, "cancelled");
    wait_counter(get_peer_closed, srv, 1); /* the connection really went away */
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    l = snapshot(id);
    ASSERT_EQ(l.dones, 1);
    ASSERT_EQ(l.after_done, 0);
    rt_http_cancel(cx, id); /* finished: a no-op */
    rt_http_cancel(cx, 0);
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    ASSERT_EQ(snapshot(id).dones, 1);
    teardown();
}

TEST(raw_stream_delivers_every_byte)
{
    setup();
    rlog l = wait_done(get("/raw/300000", RT_HTTP_STREAM_RAW));
    ASSERT_EQ(l.err, 0);
    ASSERT_EQ(l.heads, 1);
    ASSERT_EQ(l.raw_bytes, 300000);
    ASSERT_TRUE(l.raw_ok);
    ASSERT_NULL(l.body);
    teardown();
}

/* A detached receiver that stops taking DATA: the transfer pauses instead of queueing the
 * whole body in its mailbox, and resumes when the receiver catches up. */
TEST(slow_receiver_pauses_the_transfer)
{
    setup();
    enum { TOTAL = 4 << 20, CAP = 64 << 10 };
    pthread_mutex_lock(&mu);
    gate_closed = true;
    pthread_mutex_unlock(&mu);
    bool blocking = true;
    rt_spawn_opts so = {.flags = RT_SPAWN_DETACHED};
    rt_ref slow = rt_spawn(cx, &collector_type, &blocking, &so);
    rt_http_request q = {.url = url("/raw/4194304"),
                         .mode = RT_HTTP_STREAM_RAW,
                         .max_body = CAP,
                         .idle_timeout_ms = 300, /* must not fire while we hold it up */
                         .reply_to = slow};
    uint64_t id = rt_http_submit(cx, &q);
    rt_http_stats s;
    int64_t t0 = rt_reactor_now_ns();
    do {
        rt_http_stats_get(&s);
        ASSERT_LT(rt_reactor_now_ns() - t0, (int64_t)WAIT_MS * 1000000);
        sched_yield();
    } while (s.paused == 0);
    /* Held for longer than the idle timeout: pausing must not count as a stalled server. */
    struct timespec dl = deadline(600);
    pthread_mutex_lock(&mu);
    while (pthread_cond_timedwait(&cv, &mu, &dl) != ETIMEDOUT)
        ;
    ASSERT_EQ(log_of(id)->dones, 0);
    gate_closed = false;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    rlog l = wait_done(id);
    ASSERT_EQ(l.err, 0);
    ASSERT_EQ(l.raw_bytes, TOTAL);
    ASSERT_TRUE(l.raw_ok);
    rt_http_stats_get(&s);
    ASSERT_GE(s.pauses, 1);
    ASSERT_EQ(s.paused, 0);
    ASSERT_LE(s.backlog_peak, CAP + 64 * 1024);
    rt_stop(cx, slow, RT_EXIT_NORMAL);
    teardown();
}

TEST(stream_to_a_dead_receiver_is_abandoned)
{
    setup();
    bool blocking = false;
    rt_ref gone = rt_spawn(cx, &collector_type, &blocking, NULL);
    rt_stop(cx, gone, RT_EXIT_NORMAL);
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    rt_http_request q = {.url = url("/sse/forever"), .mode = RT_HTTP_STREAM_SSE, .reply_to = gone};
    (void)rt_http_submit(cx, &q);
    wait_counter(get_peer_closed, srv, 1);
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    rt_http_stats s;
    rt_http_stats_get(&s);
    ASSERT_EQ(s.active, 0);
    teardown();
}

/* An actor drives the request itself: submits on GO, cancels after its second event, and
 * forwards everything to the collector — the way sessions will use the client. */
enum { T_GO = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1) };

typedef struct driver {
    rt_ref col;
    char url[128];
    uint64_t id;
    int events;
} driver;

static void driver_behave(rt_ctx *dcx, void *state, rt_msg *m)
{
    driver *d = state;
    if (m->type == T_GO) {
        rt_http_request q = {.url = d->url, .mode = RT_HTTP_STREAM_SSE, .reply_to = rt_self(dcx)};
        d->id = rt_http_submit(dcx, &q);
        return;
    }
    if (m->type == RT_IO_MSG_HTTP_SSE && ++d->events == 2)
        rt_http_cancel(dcx, d->id);
    collect_behave(dcx, &(bool){false}, m); /* record it as the collector would */
}
static const rt_actor_type driver_type = {"driver", driver_behave, NULL, sizeof(driver)};

TEST(an_actor_submits_and_cancels)
{
    setup();
    driver d = {.col = col};
    rt_strlcpy(d.url, url("/sse/forever"), sizeof(d.url));
    rt_ref a = rt_spawn(cx, &driver_type, &d, NULL);
    rt_send(cx, a, rt_msg_new(T_GO, sizeof(rt_msg)));
    pthread_mutex_lock(&mu);
    WAIT_UNTIL(ndone == 1);
    pthread_mutex_unlock(&mu);
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    /* The only request is the actor's; find its log. */
    rlog l = {0};
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < logs.cap; i++)
        if (logs.keys[i])
            l = *(rlog *)logs.vals[i];
    pthread_mutex_unlock(&mu);
    ASSERT_EQ(l.err, -ECANCELED);
    ASSERT_EQ(l.heads, 1);
    ASSERT_GE(l.events, 2);
    ASSERT_EQ(l.after_done, 0);
    rt_stop(cx, a, RT_EXIT_NORMAL);
    teardown();
}

/* A host name goes through curl's threaded resolver (never the reactor thread). */
TEST(names_resolve_off_the_reactor)
{
    setup();
    char u[96];
    snprintf(u, sizeof(u), "http://localhost:%d/hello", hsrv_port(srv));
    rt_http_request q = {.url = u, .reply_to = col};
    rlog l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, 0);
    ASSERT_STR_EQ(l.body, "hello world");
    teardown();
}

/* ================================================================ failures */

TEST(server_reset_mid_body)
{
    setup();
    rlog l = wait_done(get("/reset", RT_HTTP_BUFFER));
    ASSERT_EQ(l.err, -ECONNRESET);
    ASSERT_EQ(l.status, 200);
    ASSERT_NULL(l.body);
    ASSERT_STR_CONTAINS(l.errmsg, "GET http://127.0.0.1:");
    ASSERT_STR_CONTAINS(l.errmsg, "reset");
    l = wait_done(get("/reset", RT_HTTP_STREAM_RAW));
    ASSERT_EQ(l.err, -ECONNRESET);
    ASSERT_EQ(l.heads, 1);
    ASSERT_EQ(l.raw_bytes, 1000);
    l = wait_done(get("/close-early", RT_HTTP_BUFFER));
    ASSERT_EQ(l.err, -ECONNRESET);
    l = wait_done(get("/empty", RT_HTTP_BUFFER));
    ASSERT_EQ(l.err, -ECONNRESET);
    ASSERT_EQ(l.status, 0);
    teardown();
}

TEST(garbage_response_is_a_protocol_error)
{
    setup();
    rlog l = wait_done(get("/garbage", RT_HTTP_BUFFER));
    ASSERT_EQ(l.err, -EPROTO);
    ASSERT_STR_CONTAINS(l.errmsg, "curl");
    teardown();
}

TEST(body_over_the_cap)
{
    setup();
    rt_http_request q = {.url = url("/big/1024"), .max_body = 1024, .reply_to = col};
    rlog l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, 0);
    ASSERT_EQ(l.body_len, 1024);
    /* Content-Length over the cap: refused before the body is read. */
    q.url = url("/big/1025");
    l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, -E2BIG);
    ASSERT_NULL(l.body);
    ASSERT_STR_CONTAINS(l.errmsg, "larger than the 1024-byte limit");
    /* Chunked, size unknown up front: cut off while buffering. */
    q.url = url("/bigc/2000000");
    q.max_body = 1 << 20;
    l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, -E2BIG);
    ASSERT_STR_CONTAINS(l.errmsg, "larger than the 1048576-byte limit (max_body)");
    /* One SSE event over the cap. */
    q.url = url("/sse/big/5000");
    q.max_body = 1024;
    q.mode = RT_HTTP_STREAM_SSE;
    l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, -E2BIG);
    ASSERT_EQ(l.events, 0);
    ASSERT_STR_CONTAINS(l.errmsg, "SSE event");
    /* Headers over their own cap. */
    l = wait_done(get("/headers/big", RT_HTTP_BUFFER));
    ASSERT_EQ(l.err, -E2BIG);
    ASSERT_STR_CONTAINS(l.errmsg, "headers");
    teardown();
}

TEST(slow_first_byte_against_timeout)
{
    setup();
    rt_http_request q = {.url = url("/slow/5000"), .timeout_ms = 200, .reply_to = col};
    rlog l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, -ETIMEDOUT);
    ASSERT_STR_CONTAINS(l.errmsg, "timed out");
    q.url = url("/slow/100");
    q.timeout_ms = 10000;
    l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, 0);
    ASSERT_STR_EQ(l.body, "slow");
    /* idle_timeout covers the wait for the first byte too. */
    q.url = url("/slow/5000");
    q.timeout_ms = 0;
    q.idle_timeout_ms = 150;
    l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, -ETIMEDOUT);
    ASSERT_STR_CONTAINS(l.errmsg, "idle");
    teardown();
}

TEST(idle_timeout_on_a_stalled_stream)
{
    setup();
    rt_http_request q = {.url = url("/sse/stall"),
                         .mode = RT_HTTP_STREAM_SSE,
                         .idle_timeout_ms = 200,
                         .reply_to = col};
    rlog l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, -ETIMEDOUT);
    ASSERT_STR_CONTAINS(l.errmsg, "no data received");
    ASSERT_EQ(l.heads, 1);
    ASSERT_EQ(l.events, 1);
    ASSERT_STR_EQ(rt_buf_cstr(&l.sse), "message|first|\n");
    /* A stream that keeps talking (a tick every 10 ms) outlives a 300 ms idle timeout. */
    q.url = url("/sse/forever");
    q.idle_timeout_ms = 300;
    uint64_t id = rt_http_submit(cx, &q);
    wait_events(id, 60);
    rt_http_cancel(cx, id);
    ASSERT_EQ(wait_done(id).err, -ECANCELED);
    teardown();
}

TEST(connection_refused)
{
    setup();
    /* A bound socket that never listens: the kernel answers SYN with RST. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &alen));
    char u[64];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/", ntohs(a.sin_port));
    rt_http_request q = {.url = u, .reply_to = col};
    rlog l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, -ECONNREFUSED);
    ASSERT_EQ(l.status, 0);
    ASSERT_STR_CONTAINS(l.errmsg, "connection refused");
    close(fd);
    teardown();
}

static void expect_einval(rt_http_request q, const char *text)
{
    q.reply_to = col;
    rlog l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, -EINVAL);
    ASSERT_STR_CONTAINS(l.errmsg, text);
    ASSERT_EQ(l.status, 0);
}

TEST(bad_input_gets_a_clear_error)
{
    setup();
    expect_einval((rt_http_request){.url = "http://[::1"}, "malformed URL");
    expect_einval((rt_http_request){.url = "not a url"}, "malformed URL");
    expect_einval((rt_http_request){.url = ""}, "no URL");
    expect_einval((rt_http_request){.url = NULL}, "no URL");
    expect_einval((rt_http_request){.url = "ftp://127.0.0.1/x"}, "unsupported URL scheme");
    expect_einval((rt_http_request){.url = "file:///etc/passwd"}, "unsupported URL scheme");
    const char *crlf[] = {"X-A: b\r\nX-Injected: 1", NULL};
    expect_einval((rt_http_request){.url = url("/hello"), .headers = crlf}, "request header 1");
    const char *nocolon[] = {"Fine: yes", "broken", NULL};
    expect_einval((rt_http_request){.url = url("/hello"), .headers = nocolon}, "request header 2");
    expect_einval((rt_http_request){.url = url("/hello"), .method = "GE T"}, "invalid method");
    expect_einval((rt_http_request){.url = url("/hello"), .body_len = 5}, "body is NULL");
    expect_einval((rt_http_request){.url = url("/hello"), .timeout_ms = -1}, "negative");
    expect_einval((rt_http_request){.url = url("/hello"), .mode = (rt_http_mode)7}, "mode");
    /* Credentials and queries never appear in messages. */
    char u[128];
    snprintf(u, sizeof(u), "ftp://user:s3cret@127.0.0.1/p?key=s3cret");
    rt_http_request q = {.url = u, .reply_to = col};
    rlog l = wait_done(rt_http_submit(cx, &q));
    ASSERT_TRUE(strstr(l.errmsg, "s3cret") == NULL);
    /* And nothing was sent to the server for any of them. */
    ASSERT_EQ(hsrv_requests(srv), 0);
    teardown();
}

/* ================================================================ lifecycle */

TEST(reactor_stop_ends_every_transfer)
{
    setup();
    enum { N = 12 };
    uint64_t ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = get(i % 2 ? "/sse/forever" : "/slow/30000",
                     i % 2 ? RT_HTTP_STREAM_SSE : RT_HTTP_BUFFER);
    for (int i = 1; i < N; i += 2)
        wait_events(ids[i], 1);
    rt_reactor_stop(re);
    re = NULL;
    for (int i = 0; i < N; i++) {
        rlog l = wait_done(ids[i]);
        ASSERT_EQ(l.err, -ECANCELED);
        ASSERT_STR_CONTAINS(l.errmsg, "stopping");
    }
    /* After the stop: refused politely, still exactly one DONE. */
    uint64_t late = get("/hello", RT_HTTP_BUFFER);
    rlog l = wait_done(late);
    ASSERT_EQ(l.err, -ENOTCONN);
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    for (int i = 0; i < N; i++)
        ASSERT_EQ(snapshot(ids[i]).dones, 1);
    rt_http_stats s;
    rt_http_stats_get(&s);
    ASSERT_EQ(s.active, 0);
    teardown();
}

TEST(no_client_attached)
{
    srv = hsrv_start();
    start_runtime(false);
    rlog l = wait_done(get("/hello", RT_HTTP_BUFFER));
    ASSERT_EQ(l.err, -ENOTCONN);
    ASSERT_STR_CONTAINS(l.errmsg, "rt_http_init");
    ASSERT_OK(rt_http_init(re));
    ASSERT_EQ(rt_http_init(re), -EALREADY);
    ASSERT_EQ(rt_http_init(NULL), -EINVAL);
    l = wait_done(get("/hello", RT_HTTP_BUFFER));
    ASSERT_EQ(l.err, 0);
    teardown();
}

/* ================================================================ TLS and proxies */

static char certdir[256];

static tsrv *tls_setup(void)
{
    ASSERT_OK(tls_make_certs(certdir, sizeof(certdir)));
    char cert[320], key[320];
    snprintf(cert, sizeof(cert), "%s/srv.pem", certdir);
    snprintf(key, sizeof(key), "%s/srv.key", certdir);
    tsrv *t = tsrv_start(cert, key);
    ASSERT_NOT_NULL(t);
    return t;
}

TEST(tls_with_the_test_ca_and_without)
{
    tsrv *t = tls_setup();
    setup();
    char u[64], ca[320];
    snprintf(u, sizeof(u), "https://127.0.0.1:%d/", tsrv_port(t));
    snprintf(ca, sizeof(ca), "%s/ca.pem", certdir);
    rt_http_request q = {.url = u, .ca_file = ca, .reply_to = col};
    rlog l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, 0);
    ASSERT_EQ(l.status, 200);
    ASSERT_STR_EQ(l.body, "secure");
    /* The system store does not know the test CA. */
    q.ca_file = NULL;
    l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, -EPROTO);
    ASSERT_STR_CONTAINS(l.errmsg, "TLS");
    ASSERT_STR_CONTAINS(l.errmsg, "certificate");
    teardown();
    ASSERT_EQ(tsrv_served(t), 1);
    ASSERT_GE(tsrv_handshake_failures(t), 1);
    tsrv_stop(t);
    tls_remove_certs(certdir);
}

TEST(http_proxy_from_the_environment)
{
    psrv *p = psrv_start();
    char px[64];
    snprintf(px, sizeof(px), "http://127.0.0.1:%d", psrv_port(p));
    ASSERT_OK(setenv("http_proxy", px, 1));
    ASSERT_OK(unsetenv("NO_PROXY"));
    ASSERT_OK(unsetenv("no_proxy"));
    setup();
    rlog l = wait_done(get("/hello", RT_HTTP_BUFFER));
    ASSERT_EQ(l.err, 0);
    ASSERT_STR_CONTAINS(l.body, "proxied GET http://127.0.0.1:");
    ASSERT_EQ(psrv_forwards(p), 1);
    ASSERT_EQ(hsrv_requests(srv), 0);
    teardown();
    psrv_stop(p);
}

TEST(no_proxy_bypasses_the_proxy)
{
    psrv *p = psrv_start();
    char px[64];
    snprintf(px, sizeof(px), "http://127.0.0.1:%d", psrv_port(p));
    ASSERT_OK(setenv("http_proxy", px, 1));
    ASSERT_OK(setenv("NO_PROXY", "127.0.0.1", 1));
    setup();
    rlog l = wait_done(get("/hello", RT_HTTP_BUFFER));
    ASSERT_EQ(l.err, 0);
    ASSERT_STR_EQ(l.body, "hello world");
    ASSERT_EQ(psrv_forwards(p), 0);
    teardown();
    psrv_stop(p);
}

TEST(https_proxy_tunnels_with_connect)
{
    tsrv *t = tls_setup();
    psrv *p = psrv_start();
    char px[64];
    snprintf(px, sizeof(px), "http://127.0.0.1:%d", psrv_port(p));
    ASSERT_OK(setenv("HTTPS_PROXY", px, 1));
    ASSERT_OK(unsetenv("NO_PROXY"));
    ASSERT_OK(unsetenv("no_proxy"));
    setup();
    char u[64], ca[320];
    snprintf(u, sizeof(u), "https://127.0.0.1:%d/", tsrv_port(t));
    snprintf(ca, sizeof(ca), "%s/ca.pem", certdir);
    rt_http_request q = {.url = u, .ca_file = ca, .reply_to = col};
    rlog l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, 0);
    ASSERT_STR_EQ(l.body, "secure");
    ASSERT_EQ(psrv_connects(p), 1);
    teardown();
    psrv_stop(p);
    tsrv_stop(t);
    tls_remove_certs(certdir);
}

/* HTTP/2 where offered: nginx (when installed) speaks h2 over TLS. Concurrent requests
 * wait for the first connection and share it (CURLPIPE_MULTIPLEX + PIPEWAIT). */
TEST(http2_multiplexes_over_tls)
{
    ASSERT_OK(tls_make_certs(certdir, sizeof(certdir)));
    int port = 0;
    int pid = ngx_start(certdir, &port);
    if (pid == 0) {
        printf("skipped: nginx is not installed (no HTTP/2 server to test against)\n");
        tls_remove_certs(certdir);
        return;
    }
    ASSERT_GT(pid, 0);
    setup();
    enum { N = 20 };
    char u[96], ca[320];
    snprintf(ca, sizeof(ca), "%s/ca.pem", certdir);
    snprintf(u, sizeof(u), "https://127.0.0.1:%d/h2", port);
    rt_http_request q = {.url = u, .ca_file = ca, .reply_to = col};
    uint64_t ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = rt_http_submit(cx, &q);
    int fresh = 0;
    for (int i = 0; i < N; i++) {
        rlog l = wait_done(ids[i]);
        ASSERT_EQ(l.err, 0);
        ASSERT_EQ(l.status, 200);
        ASSERT_EQ(l.http_version, 20);
        ASSERT_STR_EQ(l.body, "h2 ok");
        fresh += !l.reused;
    }
    ASSERT_EQ(fresh, 1); /* one connection, N streams */

    snprintf(u, sizeof(u), "https://127.0.0.1:%d/sse", port);
    q.mode = RT_HTTP_STREAM_SSE;
    rlog l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, 0);
    ASSERT_EQ(l.heads, 1);
    ASSERT_STR_EQ(rt_buf_cstr(&l.sse), "message|one|\nmessage|two|\n");

    snprintf(u, sizeof(u), "https://127.0.0.1:%d/big.bin", port);
    q.mode = RT_HTTP_STREAM_RAW;
    q.max_body = 64 << 10;
    l = wait_done(rt_http_submit(cx, &q));
    ASSERT_EQ(l.err, 0);
    ASSERT_EQ(l.http_version, 20);
    ASSERT_EQ(l.raw_bytes, 1 << 20);
    ASSERT_TRUE(l.raw_ok);
    teardown();
    ngx_stop(pid);
    tls_remove_certs(certdir);
}
