/*
 * bench_http — 10,000 HTTP requests in flight at once through the reactor's curl multi.
 *
 * A forked child runs a small epoll HTTP/1.1 server on 127.0.0.1 (its own process, so each
 * side has its own file-descriptor budget). Phase "cold": N requests are submitted at once
 * to /gate, which the server answers only when all N are waiting — so all N connections and
 * transfers really are in flight together — then every one is answered. Phase "warm": N more
 * requests, answered at once, over the kept-alive connections.
 *
 * Usage: bench_http [N]   (default 10000; needs about N + 100 file descriptors)
 * Prints: RESULT bench=http_10k impl=hermes n=... cold_ms=... warm_ms=... peak_rss_kb=...
 */
#include "bench_common.h"
#include "rt_alloc.h"
#include "rt_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* ================================================================ the server (child) */

typedef struct sconn {
    int fd;
    size_t inlen;
    int pending; /* requests parsed, not yet answered */
    char in[4096];
} sconn;

static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static void answer(sconn *c)
{
    for (; c->pending > 0; c->pending--)
        if (send(c->fd, reply, sizeof(reply) - 1, MSG_NOSIGNAL) < 0)
            return; /* the client went away; epoll reports it */
}

/* Count complete requests in c->in (GETs without bodies) and drop their bytes. */
static int parse(sconn *c)
{
    int n = 0;
    for (;;) {
        char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t used = (size_t)(end - c->in) + 4;
        memmove(c->in, c->in + used, c->inlen - used);
        c->inlen -= used;
        n++;
    }
    return n;
}

static void server_loop(int lfd, int gate)
{
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    sconn **all = rt_xcalloc((size_t)gate + 16, sizeof(*all));
    int nall = 0, waiting = 0;
    bool open = false;
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            sconn *c = evs[i].data.ptr;
            if (!c) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0)
                        break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    c = rt_xcalloc(1, sizeof(*c));
                    c->fd = fd;
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                    if (nall < gate + 16)
                        all[nall++] = c;
                }
                continue;
            }
            ssize_t r = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
            if (r <= 0) {
                close(c->fd); /* leaves epoll; the struct stays listed until exit */
                c->fd = -1;
                continue;
            }
            c->inlen += (size_t)r;
            int k = parse(c);
            c->pending += k;
            if (!open) {
                waiting += k;
                open = waiting >= gate;
                if (open)
                    for (int j = 0; j < nall; j++)
                        if (all[j]->fd >= 0)
                            answer(all[j]);
            } else {
                answer(c);
            }
        }
    }
}

static pid_t start_server(int gate, int *port)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 65535) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
        perror("bench_http: listen");
        exit(1);
    }
    *port = ntohs(a.sin_port);
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench_http: fork");
        exit(1);
    }
    if (pid == 0) {
        alarm(BENCH_TIMEOUT_S * 2); /* never outlive a hung parent */
        server_loop(lfd, gate);
        _exit(0);
    }
    close(lfd);
    return pid;
}

/* ================================================================ the client */

typedef struct tally {
    _Atomic int done, errors;
    int target;
    int first_err;
    bench_done sig;
} tally;

static void count_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    tally *t = *(tally **)state;
    if (m->type != RT_IO_MSG_HTTP_DONE)
        return;
    rt_io_msg_http_done *d = (rt_io_msg_http_done *)m;
    if (d->err || d->status != 200) {
        if (atomic_fetch_add(&t->errors, 1) == 0) {
            t->first_err = d->err;
            fprintf(stderr, "bench_http: first error: %s (status %d)\n",
                    d->errmsg ? d->errmsg : "-", d->status);
        }
    }
    if (atomic_fetch_add(&t->done, 1) + 1 == t->target)
        bench_done_post(&t->sig);
}
static const rt_actor_type count_type = {"bench_http", count_behave, NULL, sizeof(tally *)};

static double run_phase(rt_ctx *cx, rt_ref to, tally *t, const char *url, int n)
{
    atomic_store(&t->done, 0);
    t->target = n;
    rt_http_request q = {.url = url, .reply_to = to, .timeout_ms = 60000};
    int64_t t0 = bench_now_ns();
    for (int i = 0; i < n; i++)
        (void)rt_http_submit(cx, &q);
    bench_done_wait(&t->sig, "http_10k");
    return (double)(bench_now_ns() - t0) / 1e6;
}

static int parse_n(int argc, char **argv)
{
    if (argc < 2)
        return 10000;
    char *end = NULL;
    long n = strtol(argv[1], &end, 10);
    if (!end || *end || n < 1 || n > 60000) {
        fprintf(stderr, "usage: bench_http [N in 1..60000]\n");
        exit(2);
    }
    return (int)n;
}

int main(int argc, char **argv)
{
    int n = parse_n(argc, argv);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)n + 100) {
        printf("RESULT bench=http_10k impl=hermes error=nofile_limit_%llu\n",
               (unsigned long long)rl.rlim_cur);
        return 2;
    }
    int port = 0;
    pid_t srv = start_server(n, &port);
    char gate[96], fast[96];
    snprintf(gate, sizeof(gate), "http://127.0.0.1:%d/gate", port);
    snprintf(fast, sizeof(fast), "http://127.0.0.1:%d/fast", port);

    long rss0 = bench_rss_kb();
    rt_runtime *rt = bench_runtime_new(0);
    rt_reactor *r = rt_reactor_start(rt);
    if (rt_http_init(r) != 0) {
        printf("RESULT bench=http_10k impl=hermes error=http_init\n");
        return 1;
    }
    rt_ctx *cx = rt_ctx_external(rt);
    tally *t = rt_xcalloc(1, sizeof(*t));
    bench_done_init(&t->sig);
    rt_ref to = rt_spawn(cx, &count_type, &t, NULL);

    double cold = run_phase(cx, to, t, gate, n);
    long rss_cold = bench_rss_kb();
    double warm = run_phase(cx, to, t, fast, n);
    long peak = bench_peak_rss_kb();

    rt_reactor_stop(r);
    rt_wait_quiescent(rt, 10000);
    rt_runtime_free(rt);
    kill(srv, SIGTERM);
    waitpid(srv, NULL, 0);
    int errors = atomic_load(&t->errors);
    printf("RESULT bench=http_10k impl=hermes n=%d cold_ms=%.1f warm_ms=%.1f "
           "cold_req_per_s=%.0f warm_req_per_s=%.0f peak_rss_kb=%ld kb_per_inflight=%.1f "
           "errors=%d\n",
           n, cold, warm, n / (cold / 1e3), n / (warm / 1e3), peak, (double)(rss_cold - rss0) / n,
           errors);
    bench_done_fini(&t->sig);
    rt_free(t);
    return errors ? 1 : 0;
}
