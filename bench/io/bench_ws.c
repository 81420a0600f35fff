/*
 * bench_ws — 1,000 WebSocket client connections through rt_ws: what an idle connection costs
 * in resident memory, and how many echo round trips per second the client side sustains.
 *
 * A forked child runs a libwebsockets echo server on 127.0.0.1 (its own process, so the
 * memory we measure is the client's alone). The parent opens N connections, one actor per
 * connection (as an adapter would have), and measures:
 *   connect_ms            time until every connection reported RT_WS_MSG_OPEN;
 *   idle_kb_per_conn      (RSS with N idle connections - RSS before) / N;
 *   msgs_per_s            echo round trips per second over BENCH_WS_SECONDS (default 5),
 *                         every actor keeping one 64-byte message in flight;
 *   close_ms              time until every connection reported RT_WS_MSG_CLOSED.
 *
 * Usage: bench_ws [N]   (default 1000)
 * Prints: RESULT bench=ws_1k impl=hermes conns=... connect_ms=... idle_kb_per_conn=...
 *         msgs_per_s=... close_ms=... peak_rss_kb=...
 */
#include "bench_common.h"
#include "rt_alloc.h"
#include "rt_lws.h"
#include "rt_util.h"
#include "rt_ws.h"

#include <libwebsockets.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define MSG_BYTES 64

/* ============================================================ echo server (child) */

typedef struct echo_pss {
    unsigned char buf[LWS_PRE + 4096];
    size_t len;
    bool binary;
    bool pending;
} echo_pss;

static int echo_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    echo_pss *p = user;
    switch (reason) {
    case LWS_CALLBACK_RECEIVE:
        if (lws_is_first_fragment(wsi))
            p->len = 0;
        if (p->len + len > sizeof(p->buf) - LWS_PRE)
            return -1;
        memcpy(p->buf + LWS_PRE + p->len, in, len);
        p->len += len;
        p->binary = lws_frame_is_binary(wsi);
        if (lws_is_final_fragment(wsi)) {
            p->pending = true;
            lws_rx_flow_control(wsi, 0); /* one message in flight per connection */
            lws_callback_on_writable(wsi);
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!p->pending)
            return 0;
        p->pending = false;
        if (lws_write(wsi, p->buf + LWS_PRE, p->len,
                      p->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < 0)
            return -1;
        lws_rx_flow_control(wsi, 1);
        return 0;
    default: return 0;
    }
}

static const struct lws_protocols echo_protocols[] = {
    {"echo", echo_cb, sizeof(echo_pss), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static volatile sig_atomic_t child_stop;

static void on_term(int sig)
{
    (void)sig;
    child_stop = 1;
}

static void run_server(int port_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGTERM, on_term);
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.port = 0;
    ci.iface = "127.0.0.1";
    ci.protocols = echo_protocols;
    ci.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    struct lws_context *ctx = lws_create_context(&ci);
    if (!ctx)
        _exit(1);
    int port = lws_get_vhost_listen_port(lws_get_vhost_by_name(ctx, "default"));
    if (write(port_fd, &port, sizeof(port)) != sizeof(port))
        _exit(1);
    close(port_fd);
    while (!child_stop)
        if (lws_service(ctx, 0) < 0)
            break;
    lws_context_destroy(ctx);
    _exit(0);
}

/* ============================================================ clients (parent) */

enum {
    B_GO = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 0x400),
    B_CLOSE = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 0x401)
};

static _Atomic int n_open, n_closed, n_failed;
static _Atomic uint64_t n_echoes;
static _Atomic bool running;
static bench_done all_open, all_closed;
static int n_conns;

typedef struct client {
    uint64_t conn;
} client;

static void send_one(rt_ctx *cx, client *c)
{
    static const char payload[MSG_BYTES] =
        "0123456789012345678901234567890123456789012345678901234";
    rt_ws_send(cx, c->conn, payload, sizeof(payload), false);
}

static void client_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    client *c = state;
    switch (m->type) {
    case RT_WS_MSG_OPEN:
        c->conn = ((rt_ws_msg_open *)m)->conn;
        if (atomic_fetch_add(&n_open, 1) + 1 == n_conns)
            bench_done_post(&all_open);
        break;
    case B_GO: send_one(cx, c); break;
    case B_CLOSE: rt_ws_close(cx, c->conn, 1000, "bye"); break;
    case RT_WS_MSG_MESSAGE:
        /* relaxed: a counter read once at the end of the phase. */
        atomic_fetch_add_explicit(&n_echoes, 1, memory_order_relaxed);
        if (atomic_load_explicit(&running, memory_order_relaxed))
            send_one(cx, c);
        break;
    case RT_WS_MSG_CLOSED: {
        rt_ws_msg_closed *cl = (rt_ws_msg_closed *)m;
        if (cl->err) {
            if (atomic_fetch_add(&n_failed, 1) == 0)
                fprintf(stderr, "bench_ws: connection failed: %s (%s)\n", rt_strerror(cl->err),
                        cl->reason);
            if (!c->conn && atomic_fetch_add(&n_open, 1) + 1 == n_conns)
                bench_done_post(&all_open); /* do not wait for it */
        }
        if (atomic_fetch_add(&n_closed, 1) + 1 == n_conns)
            bench_done_post(&all_closed);
        break;
    }
    default: break;
    }
}

static const rt_actor_type client_type = {"ws_client", client_behave, NULL, sizeof(client)};

static void raise_fd_limit(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)need) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)need ? rl.rlim_max : (rlim_t)need;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void wait_quiet_rss_settle(void)
{
    struct timespec ts = {0, 300 * 1000000};
    nanosleep(&ts, NULL); /* a benchmark, not a test: let late allocations land */
}

int main(int argc, char **argv)
{
    int64_t n = 1000, seconds = 5;
    if ((argc > 1 && rt_parse_i64(argv[1], 1, 100000, &n)) ||
        (getenv("BENCH_WS_SECONDS") &&
         rt_parse_i64(getenv("BENCH_WS_SECONDS"), 1, 600, &seconds))) {
        fprintf(stderr, "usage: bench_ws [connections]  (BENCH_WS_SECONDS=5)\n");
        return 2;
    }
    n_conns = (int)n;
    raise_fd_limit(n_conns + 256);
    int pfd[2];
    if (pipe(pfd))
        return 1;
    pid_t child = fork();
    if (child == 0) {
        close(pfd[0]);
        run_server(pfd[1]);
    }
    close(pfd[1]);
    int port = 0;
    if (read(pfd[0], &port, sizeof(port)) != sizeof(port) || port <= 0) {
        fprintf(stderr, "bench_ws: echo server did not start\n");
        return 1;
    }
    close(pfd[0]);

    rt_runtime *rt = bench_runtime_new(0);
    int err = 0;
    rt_lws *l = rt_lws_start(rt, &err);
    if (!l)
        return 1;
    rt_ctx *cx = rt_ctx_external(rt);
    bench_done_init(&all_open);
    bench_done_init(&all_closed);
    rt_ref *actors = rt_xcalloc((size_t)n_conns, sizeof(rt_ref));
    for (int i = 0; i < n_conns; i++)
        actors[i] = rt_spawn(cx, &client_type, NULL, NULL);
    wait_quiet_rss_settle();
    long rss0 = bench_rss_kb();

    char url[64];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", port);
    int64_t t0 = bench_now_ns();
    for (int i = 0; i < n_conns; i++) {
        rt_ws_opts o = {.url = url, .reply_to = actors[i], .tag = (uint64_t)i};
        rt_ws_connect(cx, &o);
    }
    bench_done_wait(&all_open, "ws_1k");
    int64_t t1 = bench_now_ns();
    wait_quiet_rss_settle();
    long rss1 = bench_rss_kb();

    atomic_store(&running, true);
    int64_t b0 = bench_now_ns();
    for (int i = 0; i < n_conns; i++)
        rt_send(cx, actors[i], rt_msg_new(B_GO, sizeof(rt_msg)));
    struct timespec run = {(time_t)seconds, 0};
    nanosleep(&run, NULL);
    uint64_t echoes = atomic_load(&n_echoes);
    int64_t b1 = bench_now_ns();
    atomic_store(&running, false);
    rt_wait_quiescent(rt, 10000);

    int64_t c0 = bench_now_ns();
    for (int i = 0; i < n_conns; i++)
        rt_send(cx, actors[i], rt_msg_new(B_CLOSE, sizeof(rt_msg)));
    bench_done_wait(&all_closed, "ws_1k");
    int64_t c1 = bench_now_ns();
    rt_lws_stop(l);

    printf("RESULT bench=ws_1k impl=hermes conns=%d failed=%d connect_ms=%.1f "
           "idle_kb_per_conn=%.1f msgs_per_s=%.0f close_ms=%.1f peak_rss_kb=%ld\n",
           n_conns, atomic_load(&n_failed), (double)(t1 - t0) / 1e6,
           (double)(rss1 - rss0) / n_conns, (double)echoes * 1e9 / (double)(b1 - b0),
           (double)(c1 - c0) / 1e6, bench_peak_rss_kb());
    fflush(stdout);
    rt_shutdown(rt, RT_SHUTDOWN_DRAIN, 10000);
    rt_runtime_free(rt);
    rt_free(actors);
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
    bench_done_fini(&all_open);
    bench_done_fini(&all_closed);
    return atomic_load(&n_failed) ? 1 : 0;
}
