/*
 * The WebSocket client against a scripted loopback server (lws_testsrv): echo of text and
 * binary messages the server fragments, the message cap, abrupt disconnects, peer close
 * codes, idle timeout against a silent server, refused connections, rejected upgrades,
 * wss:// with a CA made at test time, cancellation, send-queue overflow and shutdown. Every
 * case also checks guarantee 1 of rt_ws.h: exactly one RT_WS_MSG_CLOSED per connect.
 */
#include "rt_lws.h"
#include "rt_ws.h"

#include "lws_sink.h"
#include "lws_testsrv.h"
#include "rt_alloc.h"
#include "rt_util.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WAIT_MS 10000

typedef struct env {
    rt_runtime *rt;
    rt_lws *l;
    rt_ctx *cx;
    sink *s;
} env;

static env setup(void)
{
    env e;
    rt_options o = {.workers = 2};
    e.rt = rt_runtime_new(&o);
    int err = 0;
    e.l = rt_lws_start(e.rt, &err);
    ASSERT_OK(err);
    ASSERT_NOT_NULL(e.l);
    e.cx = rt_ctx_external(e.rt);
    e.s = sink_new(e.rt, NULL, NULL);
    return e;
}

static void teardown(env *e)
{
    rt_lws_stop(e->l);
    ASSERT_OK(rt_wait_quiescent(e->rt, WAIT_MS));
    rt_runtime_free(e->rt);
    sink_free(e->s);
}

static uint64_t connect_to(env *e, const char *scheme, int port, const rt_ws_opts *base)
{
    char url[128];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d/chat?x=1", scheme, port);
    rt_ws_opts o = base ? *base : (rt_ws_opts){0};
    o.url = url;
    o.reply_to = sink_ref(e->s);
    o.tag = 77;
    uint64_t id = rt_ws_connect(e->cx, &o);
    ASSERT_NE(0, id);
    return id;
}

/* After the CLOSED we waited for, nothing else may come for that connection. */
static sink_ev *closed_once(env *e, uint64_t id)
{
    ASSERT_OK(sink_wait(e->s, RT_WS_MSG_CLOSED, 1, WAIT_MS));
    ASSERT_OK(rt_wait_quiescent(e->rt, WAIT_MS));
    sink_ev *c = NULL;
    int n = 0;
    for (int i = 0; i < sink_count(e->s, RT_WS_MSG_CLOSED); i++) {
        sink_ev *x = sink_get(e->s, RT_WS_MSG_CLOSED, i);
        if (x->id == id) {
            c = x;
            n++;
        }
    }
    ASSERT_EQ(1, n);
    /* CLOSED is the last event of the connection. */
    for (int i = sink_count(e->s, 0) - 1; i >= 0; i--) {
        sink_ev *x = sink_get(e->s, 0, i);
        if (x->id == id) {
            ASSERT_EQ(RT_WS_MSG_CLOSED, x->type);
            break;
        }
    }
    return c;
}

/* ============================================================ server scripts */

static _Atomic int script_seen; /* something the script observed, per test */
static _Atomic int pongs_seen;  /* pongs the echo script had received when the client closed */
static pthread_mutex_t note_mu = PTHREAD_MUTEX_INITIALIZER;
static char script_note[512]; /* the first upgrade request a script saw (under note_mu) */

static void note(const char *s)
{
    pthread_mutex_lock(&note_mu);
    if (!script_note[0])
        rt_strlcpy(script_note, s, sizeof(script_note));
    pthread_mutex_unlock(&note_mu);
}

static bool note_has(const char *needle)
{
    pthread_mutex_lock(&note_mu);
    bool r = strstr(script_note, needle) != NULL;
    pthread_mutex_unlock(&note_mu);
    return r;
}

/* Echo every message back in three fragments, with a ping between two of them. */
static void echo_fragmented(ts_conn *c, void *arg)
{
    if (ts_handshake(c, 101))
        return;
    note(ts_request(c));
    for (;;) {
        char *d;
        size_t n;
        int op = ts_recv_message(c, &d, &n, TS_IO_TIMEOUT_MS);
        if (op < 0)
            return;
        if (op == TS_CLOSE) {
            atomic_store(&pongs_seen, ts_pongs(c));
            ts_send_frame(c, TS_CLOSE, true, d, n);
            rt_free(d);
            return;
        }
        size_t a = n / 3, b = 2 * n / 3;
        ts_send_frame(c, op, false, d, a);
        ts_send_frame(c, TS_PING, true, "p", 1);
        ts_send_frame(c, TS_CONT, false, d + a, b - a);
        ts_send_frame(c, TS_CONT, true, d + b, n - b);
        rt_free(d);
        atomic_fetch_add(&script_seen, 1);
    }
}

TEST(echo_text_and_binary_reassembled)
{
    env e = setup();
    ts_server *srv = ts_start(echo_fragmented, NULL, NULL, NULL);
    static const char *const hdrs[] = {"X-Test: one", "Authorization: Bearer abc", NULL};
    rt_ws_opts o = {.headers = hdrs};
    uint64_t id = connect_to(&e, "ws", ts_port(srv), &o);
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_OPEN, 1, WAIT_MS));
    sink_ev *op = sink_get(e.s, RT_WS_MSG_OPEN, 0);
    ASSERT_EQ(id, op->id);
    ASSERT_EQ(77, op->tag);
    ASSERT_EQ(101, op->status);
    ASSERT_STR_CONTAINS(op->headers, "upgrade: websocket");

    size_t big = 200000;
    unsigned char *bin = rt_xmalloc(big);
    for (size_t i = 0; i < big; i++)
        bin[i] = (unsigned char)(i * 7);
    ASSERT_OK(rt_ws_send(e.cx, id, "hello, world", 12, false));
    ASSERT_OK(rt_ws_send(e.cx, id, bin, big, true));
    ASSERT_OK(rt_ws_send(e.cx, id, "", 0, false));
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_MESSAGE, 3, WAIT_MS));
    sink_ev *m0 = sink_get(e.s, RT_WS_MSG_MESSAGE, 0);
    sink_ev *m1 = sink_get(e.s, RT_WS_MSG_MESSAGE, 1);
    sink_ev *m2 = sink_get(e.s, RT_WS_MSG_MESSAGE, 2);
    ASSERT_FALSE(m0->binary);
    ASSERT_EQ(12, m0->len);
    ASSERT_STR_EQ("hello, world", m0->data);
    ASSERT_TRUE(m1->binary);
    ASSERT_EQ(big, m1->len);
    ASSERT_EQ(0, memcmp(bin, m1->data, big));
    ASSERT_EQ(0, m2->len);
    ASSERT_FALSE(m2->binary);
    rt_free(bin);
    /* The script noted the request before echoing anything. */
    ASSERT_TRUE(note_has("GET /chat?x=1 HTTP/1.1\r\n"));
    ASSERT_TRUE(note_has("\r\nX-Test: one\r\n"));
    ASSERT_TRUE(note_has("\r\nAuthorization: Bearer abc\r\n"));
    ASSERT_TRUE(note_has("\r\nHost: 127.0.0.1:"));

    ASSERT_OK(rt_ws_close(e.cx, id, 1000, "done"));
    sink_ev *c = closed_once(&e, id);
    ASSERT_EQ(0, c->err);
    ASSERT_EQ(1000, c->code);
    ASSERT_STR_EQ("done", c->reason);
    /* The server pinged inside each of the 3 fragmented messages; lws answered each one. */
    ASSERT_EQ(3, atomic_load(&pongs_seen));
    ts_stop(srv);
    teardown(&e);
}

TEST(messages_sent_before_open_arrive_in_order)
{
    env e = setup();
    ts_server *srv = ts_start(echo_fragmented, NULL, NULL, NULL);
    uint64_t id = connect_to(&e, "ws", ts_port(srv), NULL);
    for (int i = 0; i < 200; i++) {
        char b[16];
        int n = snprintf(b, sizeof(b), "m%03d", i);
        ASSERT_OK(rt_ws_send(e.cx, id, b, (size_t)n, false));
    }
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_MESSAGE, 200, WAIT_MS));
    for (int i = 0; i < 200; i++) {
        char b[16];
        snprintf(b, sizeof(b), "m%03d", i);
        ASSERT_STR_EQ(b, sink_get(e.s, RT_WS_MSG_MESSAGE, i)->data);
    }
    ASSERT_EQ(1, sink_count(e.s, RT_WS_MSG_OPEN));
    ts_stop(srv); /* the server goes away without a close frame */
    sink_ev *c = closed_once(&e, id);
    ASSERT_EQ(-ECONNRESET, c->err);
    ASSERT_EQ(1006, c->code);
    teardown(&e);
}

/* Send a message of arg bytes in 4 KiB fragments, then wait for the client's close. */
static void send_sized(ts_conn *c, void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    if (ts_handshake(c, 101))
        return;
    char *d = rt_xcalloc(1, n + 1);
    memset(d, 'x', n);
    for (size_t off = 0; off < n || off == 0; off += 4096) {
        size_t k = n - off < 4096 ? n - off : 4096;
        if (ts_send_frame(c, off ? TS_CONT : TS_TEXT, off + k >= n, d + off, k))
            break;
        if (off + k >= n)
            break;
    }
    rt_free(d);
    char *m;
    size_t mn;
    int op = ts_recv_message(c, &m, &mn, TS_IO_TIMEOUT_MS);
    if (op == TS_CLOSE && mn >= 2) {
        atomic_store(&script_seen, ((unsigned char)m[0] << 8) | (unsigned char)m[1]);
        ts_send_frame(c, TS_CLOSE, true, m, mn);
    }
    if (op >= 0)
        rt_free(m);
}

TEST(message_at_cap_passes_and_over_cap_closes_1009)
{
    env e = setup();
    rt_ws_opts o = {.max_message = 64 * 1024};
    ts_server *ok = ts_start(send_sized, (void *)(uintptr_t)(64 * 1024), NULL, NULL);
    uint64_t a = connect_to(&e, "ws", ts_port(ok), &o);
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_MESSAGE, 1, WAIT_MS));
    ASSERT_EQ(64 * 1024, sink_get(e.s, RT_WS_MSG_MESSAGE, 0)->len);
    ASSERT_OK(rt_ws_close(e.cx, a, 0, NULL));
    ASSERT_EQ(0, closed_once(&e, a)->err);
    ts_stop(ok);

    atomic_store(&script_seen, 0);
    ts_server *big = ts_start(send_sized, (void *)(uintptr_t)(64 * 1024 + 1), NULL, NULL);
    uint64_t b = connect_to(&e, "ws", ts_port(big), &o);
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_CLOSED, 2, WAIT_MS));
    sink_ev *c = closed_once(&e, b);
    ASSERT_EQ(-EMSGSIZE, c->err);
    ASSERT_EQ(1009, c->code);
    ASSERT_EQ(1, sink_count(e.s, RT_WS_MSG_MESSAGE)); /* only the first connection's */
    ts_stop(big);
    ASSERT_EQ(1009, atomic_load(&script_seen)); /* the server got our close frame */
    teardown(&e);
}

static void one_message_then_reset(ts_conn *c, void *arg)
{
    if (ts_handshake(c, 101))
        return;
    ts_send_frame(c, TS_TEXT, true, "bye", 3);
    ts_send_frame(c, TS_TEXT, false, "half", 4); /* an unfinished message, then RST */
    ts_abort(c);
}

TEST(abrupt_disconnect_reports_econnreset)
{
    env e = setup();
    ts_server *srv = ts_start(one_message_then_reset, NULL, NULL, NULL);
    uint64_t id = connect_to(&e, "ws", ts_port(srv), NULL);
    sink_ev *c = closed_once(&e, id);
    ASSERT_EQ(-ECONNRESET, c->err);
    ASSERT_EQ(1006, c->code);
    ASSERT_EQ(1, sink_count(e.s, RT_WS_MSG_MESSAGE));
    ASSERT_STR_EQ("bye", sink_get(e.s, RT_WS_MSG_MESSAGE, 0)->data);
    ts_stop(srv);
    teardown(&e);
}

static void close_with_4001(ts_conn *c, void *arg)
{
    if (ts_handshake(c, 101))
        return;
    ts_send_close(c, 4001, "going away now");
    char *m;
    size_t n;
    if (ts_recv_message(c, &m, &n, TS_IO_TIMEOUT_MS) == TS_CLOSE) {
        atomic_store(&script_seen, n >= 2 ? ((unsigned char)m[0] << 8) | (unsigned char)m[1] : 1);
        rt_free(m);
    }
}

TEST(peer_close_code_and_reason)
{
    env e = setup();
    ts_server *srv = ts_start(close_with_4001, NULL, NULL, NULL);
    uint64_t id = connect_to(&e, "ws", ts_port(srv), NULL);
    sink_ev *c = closed_once(&e, id);
    ASSERT_EQ(0, c->err);
    ASSERT_EQ(4001, c->code);
    ASSERT_STR_EQ("going away now", c->reason);
    ASSERT_EQ(1, sink_count(e.s, RT_WS_MSG_OPEN));
    ts_stop(srv);
    ASSERT_EQ(4001, atomic_load(&script_seen)); /* lws echoed the close */
    teardown(&e);
}

/* Read frames (pings included) and never answer anything: a peer gone half-open. */
static void silent(ts_conn *c, void *arg)
{
    if (ts_handshake(c, 101))
        return;
    while (!ts_stopping(c)) {
        int op;
        bool fin;
        char *d;
        size_t n;
        if (ts_recv_frame(c, &op, &fin, &d, &n, 200) == 0) {
            if (op == TS_PING)
                atomic_fetch_add(&script_seen, 1);
            rt_free(d);
        }
    }
}

TEST(idle_timeout_when_server_goes_silent)
{
    env e = setup();
    atomic_store(&script_seen, 0);
    ts_server *srv = ts_start(silent, NULL, NULL, NULL);
    rt_ws_opts o = {.ping_interval_ms = 40, .idle_timeout_ms = 300};
    uint64_t id = connect_to(&e, "ws", ts_port(srv), &o);
    sink_ev *c = closed_once(&e, id);
    ASSERT_EQ(-ETIMEDOUT, c->err);
    ASSERT_EQ(1, sink_count(e.s, RT_WS_MSG_OPEN));
    ASSERT_GE(atomic_load(&script_seen), 2); /* pings went out and got no pong */
    ts_stop(srv);
    teardown(&e);
}

/* Answer pings and count them; never acknowledge a close frame. */
static void pong_counter(ts_conn *c, void *arg)
{
    if (ts_handshake(c, 101))
        return;
    while (!ts_stopping(c)) {
        int op;
        bool fin;
        char *d;
        size_t n;
        if (ts_recv_frame(c, &op, &fin, &d, &n, 200) == 0) {
            if (op == TS_PING) {
                ts_send_frame(c, TS_PONG, true, d, n);
                atomic_fetch_add(&script_seen, 1);
            }
            rt_free(d);
        }
    }
}

TEST(pongs_keep_an_idle_connection_alive)
{
    env e = setup();
    atomic_store(&script_seen, 0);
    ts_server *srv = ts_start(pong_counter, NULL, NULL, NULL);
    rt_ws_opts o = {.ping_interval_ms = 20, .idle_timeout_ms = 150};
    uint64_t id = connect_to(&e, "ws", ts_port(srv), &o);
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_OPEN, 1, WAIT_MS));
    /* 25 answered pings span several idle timeouts: the connection must survive them. */
    for (int i = 0; i < 1000 && atomic_load(&script_seen) < 25; i++)
        ASSERT_NE(0, sink_wait(e.s, RT_WS_MSG_CLOSED, 1, 10));
    ASSERT_GE(atomic_load(&script_seen), 25);
    ASSERT_EQ(0, sink_count(e.s, RT_WS_MSG_CLOSED));
    /* The server ignores our close frame: the idle timeout bounds the wait for its ack, and
     * the close we asked for is still a clean one. */
    ASSERT_OK(rt_ws_close(e.cx, id, 1001, NULL));
    sink_ev *c = closed_once(&e, id);
    ASSERT_EQ(0, c->err);
    ASSERT_EQ(1001, c->code);
    ts_stop(srv);
    teardown(&e);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &al));
    close(fd);
    return ntohs(a.sin_port);
}

TEST(connection_refused)
{
    env e = setup();
    uint64_t id = connect_to(&e, "ws", free_port(), NULL);
    sink_ev *c = closed_once(&e, id);
    ASSERT_EQ(-ECONNREFUSED, c->err);
    ASSERT_EQ(0, sink_count(e.s, RT_WS_MSG_OPEN));
    teardown(&e);
}

static void reject_401(ts_conn *c, void *arg)
{
    ts_handshake(c, 401);
}

TEST(upgrade_rejected_with_401)
{
    env e = setup();
    ts_server *srv = ts_start(reject_401, NULL, NULL, NULL);
    uint64_t id = connect_to(&e, "ws", ts_port(srv), NULL);
    sink_ev *c = closed_once(&e, id);
    ASSERT_EQ(-EACCES, c->err);
    ASSERT_EQ(401, c->status);
    ts_stop(srv);
    teardown(&e);
}

/* Accept, then say nothing until the client leaves or the server stops. */
static void mute(ts_conn *c, void *arg)
{
    ts_hold(c);
}

TEST(connect_timeout_when_upgrade_never_answered)
{
    env e = setup();
    ts_server *srv = ts_start(mute, NULL, NULL, NULL);
    rt_ws_opts o = {.connect_timeout_ms = 200};
    uint64_t id = connect_to(&e, "ws", ts_port(srv), &o);
    sink_ev *c = closed_once(&e, id);
    ASSERT_EQ(-ETIMEDOUT, c->err);
    ts_stop(srv);
    teardown(&e);
}

TEST(close_before_open_cancels)
{
    env e = setup();
    ts_server *srv = ts_start(mute, NULL, NULL, NULL);
    uint64_t id = connect_to(&e, "ws", ts_port(srv), NULL);
    ASSERT_OK(rt_ws_close(e.cx, id, 1000, "never mind"));
    sink_ev *c = closed_once(&e, id);
    ASSERT_EQ(-ECANCELED, c->err);
    ASSERT_EQ(0, sink_count(e.s, RT_WS_MSG_OPEN));
    ts_stop(srv);
    teardown(&e);
}

TEST(send_queue_overflow_drops_the_connection)
{
    env e = setup();
    ts_server *srv = ts_start(mute, NULL, NULL, NULL);
    rt_ws_opts o = {.max_send_queue = 1000};
    uint64_t id = connect_to(&e, "ws", ts_port(srv), &o);
    char buf[600] = {0};
    ASSERT_OK(rt_ws_send(e.cx, id, buf, sizeof(buf), true)); /* queued until open */
    ASSERT_OK(rt_ws_send(e.cx, id, buf, sizeof(buf), true)); /* 1200 > 1000 */
    sink_ev *c = closed_once(&e, id);
    ASSERT_EQ(-ENOBUFS, c->err);
    ts_stop(srv);
    teardown(&e);
}

/* The harness removes test_tmpdir() directories when the case ends. */
static const char *make_cert_dir(void)
{
    const char *dir = test_tmpdir();
    ASSERT_OK(ts_make_certs(dir));
    return dir;
}

TEST(wss_with_a_test_ca)
{
    env e = setup();
    const char *dir = make_cert_dir();
    char cert[256], key[256], ca[256], other[256];
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(other, sizeof(other), "%s/other-ca.pem", dir);
    ts_server *srv = ts_start(echo_fragmented, NULL, cert, key);
    ASSERT_NOT_NULL(srv);

    rt_ws_opts good = {.ca_file = ca};
    uint64_t a = connect_to(&e, "wss", ts_port(srv), &good);
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_OPEN, 1, WAIT_MS));
    ASSERT_OK(rt_ws_send(e.cx, a, "secret", 6, false));
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_MESSAGE, 1, WAIT_MS));
    ASSERT_STR_EQ("secret", sink_get(e.s, RT_WS_MSG_MESSAGE, 0)->data);
    ASSERT_OK(rt_ws_close(e.cx, a, 1000, NULL));
    ASSERT_EQ(0, closed_once(&e, a)->err);

    /* A CA that did not sign the server's certificate, then the system CAs. */
    rt_ws_opts bad = {.ca_file = other};
    uint64_t b = connect_to(&e, "wss", ts_port(srv), &bad);
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_CLOSED, 2, WAIT_MS));
    ASSERT_EQ(-EPROTO, closed_once(&e, b)->err);
    uint64_t c = connect_to(&e, "wss", ts_port(srv), NULL);
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_CLOSED, 3, WAIT_MS));
    ASSERT_EQ(-EPROTO, closed_once(&e, c)->err);

    /* A CA file that does not exist. */
    rt_ws_opts missing = {.ca_file = "/nonexistent/ca.pem"};
    uint64_t d = connect_to(&e, "wss", ts_port(srv), &missing);
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_CLOSED, 4, WAIT_MS));
    ASSERT_EQ(-ENOENT, closed_once(&e, d)->err);
    ASSERT_EQ(1, sink_count(e.s, RT_WS_MSG_OPEN));
    ts_stop(srv);
    teardown(&e);
}

TEST(bad_options_are_reported_not_crashed_on)
{
    env e = setup();
    static const char *const bad_hdr[] = {"NoColonHere", NULL};
    static const char *const crlf_hdr[] = {"X-A: b\r\nX-Injected: 1", NULL};
    const char *urls[] = {"http://127.0.0.1/",  "ws://",       "ws://:80/",
                          "ws://h:99999/",      "ws://h:0/",   "ws://a b/",
                          "ws://u@h/",          "wss://[::1/", "ws://h/pa th",
                          "ws://127.0.0.1:1x/", NULL};
    int n = 0;
    for (int i = 0; urls[i]; i++) {
        rt_ws_opts o = {.url = urls[i], .reply_to = sink_ref(e.s)};
        ASSERT_NE(0, rt_ws_connect(e.cx, &o));
        n++;
    }
    rt_ws_opts h1 = {.url = "ws://127.0.0.1:1/", .headers = bad_hdr, .reply_to = sink_ref(e.s)};
    rt_ws_opts h2 = {.url = "ws://127.0.0.1:1/", .headers = crlf_hdr, .reply_to = sink_ref(e.s)};
    rt_ws_opts neg = {.url = "ws://127.0.0.1:1/", .idle_timeout_ms = -1, .reply_to = sink_ref(e.s)};
    ASSERT_NE(0, rt_ws_connect(e.cx, &h1));
    ASSERT_NE(0, rt_ws_connect(e.cx, &h2));
    ASSERT_NE(0, rt_ws_connect(e.cx, &neg));
    n += 3;
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_CLOSED, n, WAIT_MS));
    ASSERT_OK(rt_wait_quiescent(e.rt, WAIT_MS));
    ASSERT_EQ(n, sink_count(e.s, RT_WS_MSG_CLOSED));
    for (int i = 0; i < n; i++)
        ASSERT_EQ(-EINVAL, sink_get(e.s, RT_WS_MSG_CLOSED, i)->err);

    ASSERT_EQ(0, rt_ws_connect(e.cx, NULL));
    rt_ws_opts noreply = {.url = "ws://127.0.0.1:1/"};
    ASSERT_EQ(0, rt_ws_connect(e.cx, &noreply));
    ASSERT_EQ(-EINVAL, rt_ws_send(e.cx, 0, "x", 1, false));
    ASSERT_EQ(-EINVAL, rt_ws_send(e.cx, 5, NULL, 1, false));
    ASSERT_EQ(-EINVAL, rt_ws_close(e.cx, 5, 1005, NULL));
    ASSERT_EQ(-EINVAL, rt_ws_close(e.cx, 5, 999, NULL));
    ASSERT_OK(rt_ws_send(e.cx, 123456789, "x", 1, false)); /* unknown conn: dropped */
    ASSERT_OK(rt_ws_close(e.cx, 123456789, 1000, NULL));
    ASSERT_OK(rt_wait_quiescent(e.rt, WAIT_MS));
    ASSERT_EQ(n, sink_count(e.s, 0));
    teardown(&e);
}

TEST(no_service_means_eshutdown)
{
    rt_runtime *rt = rt_runtime_new(NULL);
    rt_ctx *cx = rt_ctx_external(rt);
    sink *s = sink_new(rt, NULL, NULL);
    rt_ws_opts o = {.url = "ws://127.0.0.1:1/", .reply_to = sink_ref(s)};
    ASSERT_NE(0, rt_ws_connect(cx, &o));
    ASSERT_OK(sink_wait(s, RT_WS_MSG_CLOSED, 1, WAIT_MS));
    ASSERT_EQ(-ESHUTDOWN, sink_get(s, RT_WS_MSG_CLOSED, 0)->err);
    ASSERT_EQ(-ESHUTDOWN, rt_ws_send(cx, 1, "x", 1, false));
    ASSERT_EQ(-ESHUTDOWN, rt_ws_close(cx, 1, 1000, NULL));
    int err = 0;
    rt_lws *l = rt_lws_start(rt, &err);
    ASSERT_NOT_NULL(l);
    ASSERT_NULL(rt_lws_start(rt, &err));
    ASSERT_EQ(-EEXIST, err);
    rt_lws_stop(l);
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    rt_runtime_free(rt);
    sink_free(s);
}

TEST(shutdown_reports_every_connection)
{
    env e = setup();
    ts_server *srv = ts_start(echo_fragmented, NULL, NULL, NULL);
    ts_server *quiet = ts_start(mute, NULL, NULL, NULL);
    uint64_t ids[4];
    for (int i = 0; i < 3; i++)
        ids[i] = connect_to(&e, "ws", ts_port(srv), NULL);
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_OPEN, 3, WAIT_MS));
    ids[3] = connect_to(&e, "ws", ts_port(quiet), NULL); /* still connecting at stop */
    for (int i = 0; i < 200 && ts_accepted(quiet) < 1; i++)
        ASSERT_NE(0, sink_wait(e.s, RT_WS_MSG_CLOSED, 1, 10));
    rt_lws_stop(e.l);
    e.l = NULL;
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_CLOSED, 4, WAIT_MS));
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(-ESHUTDOWN, closed_once(&e, ids[i])->err);
    ASSERT_EQ(-ESHUTDOWN, rt_ws_send(e.cx, ids[0], "x", 1, false));
    ts_stop(srv);
    ts_stop(quiet);
    teardown(&e);
}

TEST(many_connections_echo_concurrently)
{
    env e = setup();
    ts_server *srv = ts_start(echo_fragmented, NULL, NULL, NULL);
    enum { N = 40 };
    uint64_t ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = connect_to(&e, "ws", ts_port(srv), NULL);
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_OPEN, N, WAIT_MS));
    for (int i = 0; i < N; i++)
        ASSERT_OK(rt_ws_send(e.cx, ids[i], "ping", 4, false));
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_MESSAGE, N, WAIT_MS));
    for (int i = 0; i < N; i++)
        ASSERT_OK(rt_ws_close(e.cx, ids[i], 1000, NULL));
    ASSERT_OK(sink_wait(e.s, RT_WS_MSG_CLOSED, N, WAIT_MS));
    for (int i = 0; i < N; i++)
        ASSERT_EQ(0, closed_once(&e, ids[i])->err);
    ts_stop(srv);
    teardown(&e);
}
