/*
 * http_server — see http_server.h. Test code: simple over clever, every loop bounded by a
 * stop flag or a socket timeout.
 */
#include "http_server.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char hsrv_sse_sample[] = "\xEF\xBB\xBF: hello\r\n"
                               "retry: 3000\r\n"
                               "event: greet\r\ndata: hi\r\ndata: there\r\nid: 1\r\n\r\n"
                               "data: {\"k\": \"v\"}\n\n"
                               "data:x\rdata: y\r\r"
                               ": keepalive\n"
                               "id: 2\nevent: end\ndata: bye\n\n";
const char hsrv_sse_sample_events[] = "greet|hi\nthere|1\n"
                                      "message|{\"k\": \"v\"}|1\n"
                                      "message|x\ny|1\n"
                                      "end|bye|2\n";

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int listen_local(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (fd < 0)
        return -1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static void set_timeouts(int fd, int secs)
{
    struct timeval tv = {.tv_sec = secs};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void wake_fd(int efd)
{
    uint64_t one = 1;
    (void)!write(efd, &one, sizeof(one));
}

/* ================================================================ hsrv */

enum { K_WRITE, K_RESET, K_CLOSE, K_HOLD, K_TICKS, K_NEXT };

typedef struct step {
    int kind;
    char *data;
    size_t len;
    int64_t delay_ms; /* before this step starts (K_TICKS: between ticks) */
} step;

typedef struct conn {
    int fd;
    int idx; /* in s->conns */
    char in[8192];
    size_t inlen;
    step *steps;
    int n, cap, cur; /* the script; idle when cur == n */
    size_t off;      /* bytes of the current write already sent */
    int64_t wake_ns; /* the current step may start then */
    bool gated;      /* held until the gate opens */
    bool out_armed;  /* waiting for EPOLLOUT */
    int ticks;
} conn;

struct hsrv {
    int lfd, efd, ep, port;
    pthread_t th;
    _Atomic bool stop;
    _Atomic int accepted, closed, requests;
    /* server thread only */
    conn **conns;
    int nconns, capconns;
    int gate_waiting, gate_target;
    bool gate_open;
};

static void push(conn *c, int kind, const void *data, size_t len, int64_t delay_ms)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->steps = rt_xrealloc(c->steps, (size_t)c->cap * sizeof(step));
    }
    step *st = &c->steps[c->n++];
    st->kind = kind;
    st->data = len ? rt_xmemdup(data, len) : NULL;
    st->len = len;
    st->delay_ms = delay_ms;
}

static void pushf(conn *c, int64_t delay_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pushf(conn *c, int64_t delay_ms, const char *fmt, ...)
{
    rt_buf b;
    rt_buf_init(&b, 1 << 24);
    va_list ap;
    va_start(ap, fmt);
    (void)rt_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    push(c, K_WRITE, b.data, b.len, delay_ms);
    rt_buf_fini(&b);
}

static void chunk(conn *c, int64_t delay_ms, const char *data, size_t len)
{
    rt_buf b;
    rt_buf_init(&b, 1 << 24);
    (void)rt_buf_printf(&b, "%zx\r\n", len);
    (void)rt_buf_append(&b, data, len);
    (void)rt_buf_append(&b, "\r\n", 2);
    push(c, K_WRITE, b.data, b.len, delay_ms);
    rt_buf_fini(&b);
}

static void script_clear(conn *c)
{
    for (int i = 0; i < c->n; i++)
        rt_free(c->steps[i].data);
    c->n = c->cur = 0;
    c->off = 0;
    c->gated = false;
}

static char *pattern(size_t n)
{
    char *p = rt_xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + i % 26);
    p[n] = '\0';
    return p;
}

static void respond(conn *c, int code, const char *extra, const char *body, size_t blen,
                    int64_t delay_ms)
{
    pushf(c, delay_ms, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", code, blen, extra);
    if (blen)
        push(c, K_WRITE, body, blen, 0);
    push(c, K_NEXT, NULL, 0, 0);
}

static const char sse_head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";

static long num_after(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0)
        return -1;
    char *end = NULL;
    long v = strtol(path + n, &end, 10);
    return end && end != path + n ? v : -1;
}

static void route_sse(conn *c, const char *path)
{
    long n;
    push(c, K_WRITE, sse_head, sizeof(sse_head) - 1, 0);
    if (!strcmp(path, "/sse/tiny")) {
        size_t len = sizeof(hsrv_sse_sample) - 1;
        for (size_t i = 0, k = 0; i < len; k++) {
            size_t sz = 1 + k % 3 < len - i ? 1 + k % 3 : len - i;
            chunk(c, 1, hsrv_sse_sample + i, sz);
            i += sz;
        }
    } else if (!strcmp(path, "/sse/forever")) {
        push(c, K_TICKS, NULL, 0, 10);
        return;
    } else if (!strcmp(path, "/sse/stall")) {
        chunk(c, 0, "data: first\n\n", 13);
        push(c, K_HOLD, NULL, 0, 0);
        return;
    } else if ((n = num_after(path, "/sse/big/")) >= 0) {
        char *p = pattern((size_t)n);
        rt_buf b;
        rt_buf_init(&b, 1 << 26);
        (void)rt_buf_printf(&b, "data: %s\n\n", p);
        chunk(c, 0, b.data, b.len);
        rt_buf_fini(&b);
        rt_free(p);
    }
    push(c, K_WRITE, "0\r\n\r\n", 5, 0);
    push(c, K_NEXT, NULL, 0, 0);
}

static void route_echo(conn *c, const char *method, const char *path, const char *head,
                       size_t headlen, const char *body, size_t blen)
{
    rt_buf b;
    rt_buf_init(&b, 1 << 24);
    (void)rt_buf_printf(&b, "%s %s\n", method, path);
    (void)rt_buf_append(&b, head, headlen);
    (void)rt_buf_append(&b, "\n", 1);
    (void)rt_buf_append(&b, body, blen);
    respond(c, 200, "", strcmp(method, "HEAD") ? b.data : "", strcmp(method, "HEAD") ? b.len : 0,
            0);
    rt_buf_fini(&b);
}

static void route_big_headers(conn *c)
{
    rt_buf b;
    rt_buf_init(&b, 1 << 24);
    char *pad = pattern(1500);
    for (int i = 0; i < 200; i++)
        (void)rt_buf_printf(&b, "X-Pad-%d: %s\r\n", i, pad);
    respond(c, 200, b.data, "x", 1, 0);
    rt_free(pad);
    rt_buf_fini(&b);
}

static void route_size(conn *c, const char *path)
{
    long n;
    if ((n = num_after(path, "/big/")) >= 0 || (n = num_after(path, "/raw/")) >= 0) {
        char *p = pattern((size_t)n);
        respond(c, 200, "", p, (size_t)n, 0);
        rt_free(p);
    } else if ((n = num_after(path, "/bigc/")) >= 0) {
        char *p = pattern((size_t)n);
        push(c, K_WRITE, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 47, 0);
        for (long i = 0; i < n; i += 16384)
            chunk(c, 0, p + i, (size_t)(n - i < 16384 ? n - i : 16384));
        push(c, K_WRITE, "0\r\n\r\n", 5, 0);
        push(c, K_NEXT, NULL, 0, 0);
        rt_free(p);
    }
}

/* Pick the behaviour for one request. */
static void route(hsrv *s, conn *c, const char *method, const char *path, const char *head,
                  size_t headlen, const char *body, size_t blen)
{
    long n;
    if (!strcmp(path, "/hello")) {
        respond(c, 200, "Content-Type: text/plain\r\n", "hello world", 11, 0);
    } else if (!strcmp(path, "/echo")) {
        route_echo(c, method, path, head, headlen, body, blen);
    } else if ((n = num_after(path, "/status/")) >= 0) {
        char b[64];
        int len = snprintf(b, sizeof(b), "{\"error\":\"status %ld\"}", n);
        respond(c, (int)n, "Content-Type: application/json\r\nRetry-After: 7\r\n", b, (size_t)len,
                0);
    } else if (!strncmp(path, "/big/", 5) || !strncmp(path, "/raw/", 5) ||
               !strncmp(path, "/bigc/", 6)) {
        route_size(c, path);
    } else if ((n = num_after(path, "/slow/")) >= 0) {
        respond(c, 200, "", "slow", 4, n);
    } else if ((n = num_after(path, "/gate/")) >= 0) {
        c->gated = true;
        s->gate_target = (int)n;
        if (++s->gate_waiting >= s->gate_target)
            s->gate_open = true;
        respond(c, 200, "", "gate", 4, 0);
    } else if (!strcmp(path, "/reset")) {
        char *p = pattern(1000);
        pushf(c, 0, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n%s", p);
        push(c, K_RESET, NULL, 0, 20);
        rt_free(p);
    } else if (!strcmp(path, "/close-early")) {
        pushf(c, 0, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
        push(c, K_CLOSE, NULL, 0, 20);
    } else if (!strcmp(path, "/empty")) {
        push(c, K_CLOSE, NULL, 0, 0);
    } else if (!strcmp(path, "/garbage")) {
        pushf(c, 0, "SSH-2.0-OpenSSH_9.2\r\nnot http at all\r\n\r\n");
        push(c, K_CLOSE, NULL, 0, 0);
    } else if (!strcmp(path, "/redirect")) {
        respond(c, 302, "Location: /hello\r\n", NULL, 0, 0);
    } else if (!strcmp(path, "/headers/fold")) {
        respond(c, 200, "X-Fold: first\r\n  second\r\n\tthird\r\nX-Space:   padded  \r\n", "f", 1,
                0);
    } else if (!strcmp(path, "/headers/big")) {
        route_big_headers(c);
    } else if (!strncmp(path, "/sse/", 5)) {
        route_sse(c, path);
    } else {
        respond(c, 404, "", "not found", 9, 0);
    }
}

static void conn_close(hsrv *s, conn *c, bool by_peer, bool reset)
{
    if (reset) {
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    if (by_peer)
        atomic_fetch_add(&s->closed, 1);
    close(c->fd); /* also leaves the epoll set */
    s->conns[c->idx] = s->conns[--s->nconns];
    s->conns[c->idx]->idx = c->idx;
    script_clear(c);
    rt_free(c->steps);
    rt_free(c);
}

static void arm_out(hsrv *s, conn *c, bool on)
{
    if (c->out_armed == on)
        return;
    c->out_armed = on;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.ptr = c};
    (void)epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static bool progress(hsrv *s, conn *c);

/* Parse one complete request from c->in if the script is idle, and start its script. */
static bool parse_request(hsrv *s, conn *c)
{
    if (c->cur < c->n)
        return true;
    char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
    if (!end)
        return true;
    size_t headlen = (size_t)(end - c->in) + 4, blen = 0;
    char method[16] = "", path[256] = "";
    char *line_end = memchr(c->in, '\r', headlen);
    char *first = rt_xstrndup(c->in, (size_t)(line_end - c->in));
    if (sscanf(first, "%15s %255s", method, path) != 2)
        rt_strlcpy(path, "/bad", sizeof(path));
    rt_free(first);
    for (char *h = line_end + 2; h < end;) {
        char *eol = memmem(h, (size_t)(end + 2 - h), "\r\n", 2);
        if (!strncasecmp(h, "Content-Length:", 15))
            blen = (size_t)strtoul(h + 15, NULL, 10); /* stops at the CR */
        h = eol + 2;
    }
    if (c->inlen < headlen + blen)
        return true; /* the body is still coming */
    atomic_fetch_add(&s->requests, 1);
    char *hdrs = line_end + 2;
    route(s, c, method, path, hdrs, (size_t)(end + 2 - hdrs), c->in + headlen, blen);
    memmove(c->in, c->in + headlen + blen, c->inlen - headlen - blen);
    c->inlen -= headlen + blen;
    c->wake_ns = mono_ns() + (c->n ? c->steps[0].delay_ms * 1000000 : 0);
    return progress(s, c);
}

static bool run_tick(hsrv *s, conn *c, step *st, int64_t now)
{
    char ev[64], buf[96];
    int n = snprintf(ev, sizeof(ev), "data: tick %d\n\n", c->ticks++);
    int m = snprintf(buf, sizeof(buf), "%x\r\n%s\r\n", n, ev);
    if (send(c->fd, buf, (size_t)m, MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
        conn_close(s, c, true, false);
        return false;
    }
    c->wake_ns = now + st->delay_ms * 1000000;
    return true;
}

/* Run the script as far as time and the socket allow. false: c was closed. */
static bool progress(hsrv *s, conn *c)
{
    int64_t now = mono_ns();
    while (c->cur < c->n) {
        step *st = &c->steps[c->cur];
        if ((c->gated && !s->gate_open) || now < c->wake_ns)
            return true;
        switch (st->kind) {
        case K_WRITE: {
            ssize_t w = send(c->fd, st->data + c->off, st->len - c->off, MSG_NOSIGNAL);
            if (w < 0 && errno == EAGAIN) {
                arm_out(s, c, true);
                return true;
            }
            if (w < 0) {
                conn_close(s, c, true, false);
                return false;
            }
            c->off += (size_t)w;
            if (c->off < st->len) {
                arm_out(s, c, true);
                return true;
            }
            arm_out(s, c, false);
            break;
        }
        case K_RESET: conn_close(s, c, false, true); return false;
        case K_CLOSE: conn_close(s, c, false, false); return false;
        case K_HOLD: return true;
        case K_TICKS: return run_tick(s, c, st, now);
        case K_NEXT: script_clear(c); return parse_request(s, c);
        }
        c->cur++;
        c->off = 0;
        if (c->cur < c->n)
            c->wake_ns = now + c->steps[c->cur].delay_ms * 1000000;
    }
    return true;
}

static void on_readable(hsrv *s, conn *c)
{
    if (c->inlen == sizeof(c->in)) {
        conn_close(s, c, false, false); /* a request too big for this little server */
        return;
    }
    ssize_t r = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
    if (r == 0 || (r < 0 && errno != EAGAIN)) {
        conn_close(s, c, true, false);
        return;
    }
    if (r > 0) {
        c->inlen += (size_t)r;
        (void)parse_request(s, c);
    }
}

static void accept_all(hsrv *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn *c = rt_xcalloc(1, sizeof(*c));
        c->fd = fd;
        if (s->nconns == s->capconns) {
            s->capconns = s->capconns ? s->capconns * 2 : 64;
            s->conns = rt_xrealloc(s->conns, (size_t)s->capconns * sizeof(conn *));
        }
        c->idx = s->nconns;
        s->conns[s->nconns++] = c;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        (void)epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
        atomic_fetch_add(&s->accepted, 1);
    }
}

static int next_wait_ms(hsrv *s)
{
    int64_t now = mono_ns(), best = -1;
    for (int i = 0; i < s->nconns; i++) {
        conn *c = s->conns[i];
        if (c->cur >= c->n || c->out_armed || c->steps[c->cur].kind == K_HOLD ||
            (c->gated && !s->gate_open))
            continue;
        int64_t d = c->wake_ns > now ? (c->wake_ns - now + 999999) / 1000000 : 0;
        if (best < 0 || d < best)
            best = d;
    }
    return best < 0 ? 1000 : (int)best;
}

static void *hsrv_main(void *arg)
{
    hsrv *s = arg;
    struct epoll_event ev[128];
    while (!atomic_load(&s->stop)) {
        int n = epoll_wait(s->ep, ev, 128, next_wait_ms(s));
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == &s->lfd) {
                accept_all(s);
            } else if (ev[i].data.ptr != &s->efd) {
                conn *c = ev[i].data.ptr;
                /* c may have been closed earlier in this round: check it is still listed. */
                bool live = false;
                for (int k = 0; k < s->nconns && !live; k++)
                    live = s->conns[k] == c;
                if (!live)
                    continue;
                if (ev[i].events & EPOLLOUT) {
                    if (!progress(s, c))
                        continue;
                }
                if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    on_readable(s, c);
            }
        }
        for (int i = 0; i < s->nconns; i++) {
            conn *c = s->conns[i];
            if (!progress(s, c))
                i--; /* the last conn moved into slot i */
        }
    }
    return NULL;
}

hsrv *hsrv_start(void)
{
    hsrv *s = rt_xcalloc(1, sizeof(*s));
    s->lfd = listen_local(&s->port);
    s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    RT_VERIFY(s->lfd >= 0 && s->efd >= 0 && s->ep >= 0);
    struct epoll_event e1 = {.events = EPOLLIN, .data.ptr = &s->lfd};
    struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = &s->efd};
    RT_VERIFY(epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &e1) == 0);
    RT_VERIFY(epoll_ctl(s->ep, EPOLL_CTL_ADD, s->efd, &e2) == 0);
    RT_VERIFY(pthread_create(&s->th, NULL, hsrv_main, s) == 0);
    return s;
}

int hsrv_port(const hsrv *s)
{
    return s->port;
}

int hsrv_accepted(const hsrv *s)
{
    return atomic_load(&s->accepted);
}

int hsrv_peer_closed(const hsrv *s)
{
    return atomic_load(&s->closed);
}

int hsrv_requests(const hsrv *s)
{
    return atomic_load(&s->requests);
}

void hsrv_stop(hsrv *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, true);
    wake_fd(s->efd);
    pthread_join(s->th, NULL);
    while (s->nconns > 0)
        conn_close(s, s->conns[0], false, false);
    rt_free(s->conns);
    close(s->lfd);
    close(s->efd);
    close(s->ep);
    rt_free(s);
}

/* ================================================================ tsrv */

struct tsrv {
    int lfd, efd, port;
    pthread_t th;
    SSL_CTX *ctx;
    _Atomic int served, fails;
};

/* Wait until fd is readable or the stop eventfd fires. */
static bool wait_readable(int fd, int efd)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = efd, .events = POLLIN}};
    for (;;) {
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        return n > 0 && !(p[1].revents & POLLIN);
    }
}

static int accept_blocking(int lfd)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        set_timeouts(fd, 5);
    return fd;
}

static void tls_serve(tsrv *s, int fd)
{
    SSL *ssl = SSL_new(s->ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) <= 0) {
        atomic_fetch_add(&s->fails, 1);
    } else {
        char buf[8192];
        size_t len = 0;
        while (len < sizeof(buf) - 1) {
            int r = SSL_read(ssl, buf + len, (int)(sizeof(buf) - 1 - len));
            if (r <= 0)
                break;
            len += (size_t)r;
            if (memmem(buf, len, "\r\n\r\n", 4))
                break;
        }
        static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n"
                                   "\r\nsecure";
        if (SSL_write(ssl, resp, (int)sizeof(resp) - 1) > 0)
            atomic_fetch_add(&s->served, 1);
        (void)SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    ERR_clear_error();
    close(fd);
}

static void *tsrv_main(void *arg)
{
    tsrv *s = arg;
    while (wait_readable(s->lfd, s->efd)) {
        int fd = accept_blocking(s->lfd);
        if (fd >= 0)
            tls_serve(s, fd);
    }
    return NULL;
}

tsrv *tsrv_start(const char *cert, const char *key)
{
    tsrv *s = rt_xcalloc(1, sizeof(*s));
    s->ctx = SSL_CTX_new(TLS_server_method());
    if (!s->ctx || SSL_CTX_use_certificate_chain_file(s->ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(s->ctx, key, SSL_FILETYPE_PEM) != 1) {
        SSL_CTX_free(s->ctx);
        rt_free(s);
        return NULL;
    }
    s->lfd = listen_local(&s->port);
    s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    RT_VERIFY(s->lfd >= 0 && s->efd >= 0);
    RT_VERIFY(pthread_create(&s->th, NULL, tsrv_main, s) == 0);
    return s;
}

int tsrv_port(const tsrv *s)
{
    return s->port;
}

int tsrv_served(const tsrv *s)
{
    return atomic_load(&s->served);
}

int tsrv_handshake_failures(const tsrv *s)
{
    return atomic_load(&s->fails);
}

void tsrv_stop(tsrv *s)
{
    if (!s)
        return;
    wake_fd(s->efd);
    pthread_join(s->th, NULL);
    SSL_CTX_free(s->ctx);
    close(s->lfd);
    close(s->efd);
    rt_free(s);
}

/* ================================================================ psrv */

struct psrv {
    int lfd, efd, port;
    pthread_t th;
    _Atomic int connects, forwards;
};

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Shuttle bytes both ways until either side closes or the server stops. */
static void relay(psrv *s, int a, int b)
{
    char buf[16384];
    for (;;) {
        struct pollfd p[3] = {{.fd = a, .events = POLLIN},
                              {.fd = b, .events = POLLIN},
                              {.fd = s->efd, .events = POLLIN}};
        if (poll(p, 3, 10000) <= 0 || (p[2].revents & POLLIN))
            return;
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = read(p[i].fd, buf, sizeof(buf));
            if (r <= 0 || !write_all(i == 0 ? b : a, buf, (size_t)r))
                return;
        }
    }
}

static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

static void proxy_serve(psrv *s, int fd)
{
    char buf[8192];
    size_t len = 0;
    while (len < sizeof(buf) - 1 && !memmem(buf, len, "\r\n\r\n", 4)) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            return;
        len += (size_t)r;
    }
    buf[len] = '\0';
    char *eol = strstr(buf, "\r\n");
    if (!eol)
        return;
    *eol = '\0';
    int port = 0;
    if (sscanf(buf, "CONNECT 127.0.0.1:%d", &port) == 1) {
        int t = connect_local(port);
        if (t < 0) {
            (void)write_all(fd, "HTTP/1.1 502 Bad Gateway\r\n\r\n", 28);
            return;
        }
        atomic_fetch_add(&s->connects, 1);
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        if (write_all(fd, ok, sizeof(ok) - 1))
            relay(s, fd, t);
        close(t);
        return;
    }
    char body[600];
    int blen = snprintf(body, sizeof(body), "proxied %.500s", buf);
    char head[128];
    int hlen = snprintf(head, sizeof(head),
                        "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", blen);
    atomic_fetch_add(&s->forwards, 1);
    if (write_all(fd, head, (size_t)hlen))
        (void)write_all(fd, body, (size_t)blen);
}

static void *psrv_main(void *arg)
{
    psrv *s = arg;
    while (wait_readable(s->lfd, s->efd)) {
        int fd = accept_blocking(s->lfd);
        if (fd >= 0) {
            proxy_serve(s, fd);
            close(fd);
        }
    }
    return NULL;
}

psrv *psrv_start(void)
{
    psrv *s = rt_xcalloc(1, sizeof(*s));
    s->lfd = listen_local(&s->port);
    s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    RT_VERIFY(s->lfd >= 0 && s->efd >= 0);
    RT_VERIFY(pthread_create(&s->th, NULL, psrv_main, s) == 0);
    return s;
}

int psrv_port(const psrv *s)
{
    return s->port;
}

int psrv_connects(const psrv *s)
{
    return atomic_load(&s->connects);
}

int psrv_forwards(const psrv *s)
{
    return atomic_load(&s->forwards);
}

void psrv_stop(psrv *s)
{
    if (!s)
        return;
    wake_fd(s->efd);
    pthread_join(s->th, NULL);
    close(s->lfd);
    close(s->efd);
    rt_free(s);
}

/* ================================================================ certificates */

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc == 0 ? 0 : -1;
}

int tls_make_certs(char *dir, size_t dirlen)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, dirlen, "%s/hermes-http-tls-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    char path[512];
    snprintf(path, sizeof(path), "%s/ext.cnf", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
          "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
          f);
    fclose(f);
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    if (run("openssl req -x509 %s -keyout %s/ca.key -out %s/ca.pem -days 2 "
            "-subj /CN=hermes-test-ca -addext basicConstraints=critical,CA:TRUE "
            "-addext keyUsage=critical,keyCertSign >/dev/null 2>&1",
            ec, dir, dir) ||
        run("openssl req %s -keyout %s/srv.key -out %s/srv.csr -subj /CN=127.0.0.1 "
            ">/dev/null 2>&1",
            ec, dir, dir) ||
        run("openssl x509 -req -in %s/srv.csr -CA %s/ca.pem -CAkey %s/ca.key "
            "-CAcreateserial -out %s/srv.pem -days 2 -extfile %s/ext.cnf >/dev/null 2>&1",
            dir, dir, dir, dir, dir))
        return -1;
    return 0;
}

void tls_remove_certs(const char *dir)
{
    static const char *const names[] = {"ext.cnf", "ca.key",    "ca.pem",   "ca.srl",
                                        "srv.key", "srv.csr",   "srv.pem",  "nginx.conf",
                                        "big.bin", "error.log", "nginx.pid"};
    char path[512];
    for (size_t i = 0; i < RT_ARRAY_LEN(names); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        (void)unlink(path);
    }
    (void)rmdir(dir);
}

/* ================================================================ nginx (HTTP/2) */

static const char *find_nginx(void)
{
    static const char *const paths[] = {"/usr/sbin/nginx", "/usr/local/sbin/nginx",
                                        "/usr/bin/nginx"};
    for (size_t i = 0; i < RT_ARRAY_LEN(paths); i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

static int write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

int ngx_start(const char *dir, int *port)
{
    const char *bin = find_nginx();
    if (!bin)
        return 0;
    int lfd = listen_local(port);
    if (lfd < 0)
        return -1;
    char path[512];
    rt_buf conf;
    rt_buf_init(&conf, 1 << 16);
    (void)rt_buf_printf(
        &conf,
        /* A master process: nginx 1.22 crashes with inherited sockets without one. Workers
         * keep root's identity when we are root, so they can read the 0700 directory. */
        "%sdaemon off; worker_processes 1; pid %s/nginx.pid;\n"
        "error_log %s/error.log warn;\nevents { worker_connections 256; }\n"
        "http { access_log off; client_body_temp_path %s; proxy_temp_path %s;\n"
        "  fastcgi_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;\n"
        "  server { listen 127.0.0.1:%d ssl http2; root %s;\n"
        "    ssl_certificate %s/srv.pem; ssl_certificate_key %s/srv.key;\n"
        "    location = /h2 { default_type text/plain; return 200 \"h2 ok\"; }\n"
        "    location = /sse { default_type text/event-stream;\n"
        "      return 200 \"data: one\\n\\ndata: two\\n\\n\"; }\n"
        "  }\n}\n",
        geteuid() == 0 ? "user root;\n" : "", dir, dir, dir, dir, dir, dir, dir, *port, dir, dir,
        dir);
    snprintf(path, sizeof(path), "%s/nginx.conf", dir);
    int err = write_file(path, conf.data, conf.len);
    rt_buf_fini(&conf);
    char *big = pattern(1 << 20);
    snprintf(path, sizeof(path), "%s/big.bin", dir);
    err = err ? err : write_file(path, big, 1 << 20);
    rt_free(big);
    if (err) {
        close(lfd);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        /* The child only arranges fds and execs; nginx goes when the test process does. */
        (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fl = fcntl(lfd, F_GETFL);
        (void)fcntl(lfd, F_SETFL, fl & ~O_NONBLOCK);
        /* dup2 clears close-on-exec on the copy; when lfd already is 3, clear it here. */
        if (lfd == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(lfd, 3) < 0)
            _exit(127);
        int devnull = open("/dev/null", O_WRONLY);
        (void)dup2(devnull, 1);
        (void)dup2(devnull, 2);
        char conf_path[512], err_path[512];
        snprintf(conf_path, sizeof(conf_path), "%s/nginx.conf", dir);
        snprintf(err_path, sizeof(err_path), "%s/error.log", dir);
        char *const argv[] = {(char *)bin, "-p", (char *)dir, "-c",
                              conf_path,   "-e", err_path,    NULL};
        char *const envp[] = {"NGINX=3;", NULL};
        execve(bin, argv, envp);
        _exit(127);
    }
    close(lfd); /* nginx holds its own copy */
    return pid > 0 ? (int)pid : -1;
}

void ngx_stop(int pid)
{
    if (pid <= 0)
        return;
    (void)kill(pid, SIGTERM);
    (void)waitpid(pid, NULL, 0);
}
