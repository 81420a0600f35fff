/*
 * bench_gw_load — the HTTP load generator of the gateway benchmark (bench/gateway/run.sh).
 *
 * Plays --conns keep-alive HTTP/1.1 connections against the API server on 127.0.0.1, each one
 * chat completion at a time (POST /v1/chat/completions with "Authorization: Bearer <key>" and
 * "X-Hermes-Session-Id: <prefix>-<n>"), streamed (SSE) or not. One epoll thread; nothing but
 * 127.0.0.1.
 *
 * Modes:
 *   run (default)  closed loop: every connection sends the next turn as soon as its previous
 *                  answer is complete, for --warmup then --seconds seconds. Connection i owns
 *                  the sessions i, i + C, i + 2C, ... < --sessions and takes them in turn, so two
 *                  requests for one session are never in flight together (the gateway would
 *                  queue the second). Counted: answers completed inside the measured window.
 *                  --ramp-ms R spreads the connections' first requests evenly over R ms,
 *                  so that a closed loop against a model with a fixed latency does not move in
 *                  lock-step bursts (real users do not all press enter together).
 *   --create N     N new sessions, one turn each, --conns at a time; then --settle-ms later the
 *                  server's RSS (--pid): what N more idle sessions cost.
 *
 * Added latency = client-observed time (request written → answer complete) − --latency-ms (the
 * model's own latency). With --pid the server's CPU time (utime + stime from /proc/<pid>/stat)
 * over the window gives CPU-µs per turn, and its VmRSS is reported.
 *
 * An answer counts as an error unless it is 200 and complete: a JSON body with "content", or
 * for streams a body ending the event stream with "data: [DONE]".
 *
 * Prints one line:
 *   RESULT bench=gw_load label=... mode=run|create conns=... stream=0|1 sessions=... secs=...
 *          turns=... turns_per_s=... added_p50_ms=... added_p99_ms=... added_p999_ms=...
 *          added_max_ms=... errors=... server_cpu_us_per_turn=... rss_kb=... [rss_before_kb=...
 *          bytes_per_session=...]
 * Exit status: 0, or 1 when any request failed, 2 for bad usage or when nothing could connect.
 */
#include "bench_common.h"

#include "rt_alloc.h"
#include "rt_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define LG_IN_MAX      ((size_t)8 << 20) /* one answer, at most */
#define LG_OUT_MAX     2048
#define LG_MAX_SAMPLES ((size_t)4 << 20)

typedef struct lg_opts {
    int64_t port, pid, conns, sessions, seconds, warmup, stream, latency_ms, create, settle_ms;
    int64_t drain_s, ramp_ms;
    const char *key, *prefix, *label;
} lg_opts;

typedef struct lg_conn {
    int fd;
    int idx;
    bool connecting, busy, want_out;
    bool waiting;     /* connected, its first request not due yet (--ramp-ms) */
    int64_t start_at; /* when its first request is due */
    char out[LG_OUT_MAX];
    size_t out_len, out_off;
    char *in;
    size_t in_len, in_cap;
    int64_t t0;
    int64_t sess;
    uint32_t k; /* run mode: the next of this connection's sessions */
    uint64_t turn;
    /* the answer being read */
    bool head_done, chunked;
    int status;
    int64_t clen;
    size_t body_off, cpos;
} lg_conn;

static struct {
    lg_opts o;
    int ep;
    struct sockaddr_in addr;
    lg_conn *c;
    int64_t warm_end, end;
    bool stopping; /* no new requests */
    int64_t next_create, created;
    int64_t inflight;
    int nwaiting;
    uint64_t turns, errors, status_err, reconnects, incomplete;
    int first_status;
    char first_error[160];
    int64_t *lat;
    size_t nlat;
} L;

static void note_error(const char *what)
{
    L.errors++;
    if (!L.first_error[0])
        snprintf(L.first_error, sizeof(L.first_error), "%s", what);
}

/* ============================================================== /proc */

static long rss_kb_of(int64_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%" PRId64 "/status", pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            char *end = NULL;
            kb = strtol(line + 6, &end, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* utime + stime of pid in seconds, or -1. */
static double cpu_s_of(int64_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%" PRId64 "/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* after ')' come fields 3..; utime and stime are fields 14 and 15 */
    int field = 2;
    unsigned long long ut = 0, st = 0;
    for (char *q = p + 1; *q; q++) {
        if (*q != ' ')
            continue;
        field++;
        if (field == 14)
            ut = strtoull(q + 1, NULL, 10);
        else if (field == 15) {
            st = strtoull(q + 1, NULL, 10);
            break;
        }
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Busy CPU time of the whole machine in seconds (every CPU; /proc/stat's first line minus
 * idle and iowait), or -1: with the server's own time it shows what other processes took. */
static double machine_busy_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    unsigned long long v[10] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (n < 5)
        return -1;
    unsigned long long busy = 0;
    for (int i = 0; i < 8; i++) /* guest time is already in user */
        if (i != 3 && i != 4)
            busy += v[i];
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* ============================================================== connections */

static void watch(lg_conn *c, bool out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(L.ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = out;
}

static int conn_open(lg_conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&L.addr, sizeof(L.addr)) < 0 && errno != EINPROGRESS) {
        int e = -errno;
        close(c->fd);
        c->fd = -1;
        return e;
    }
    c->connecting = true;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(L.ep, EPOLL_CTL_ADD, c->fd, &ev);
    c->want_out = true;
    return 0;
}

static void reset_answer(lg_conn *c)
{
    c->head_done = c->chunked = false;
    c->status = 0;
    c->clen = -1;
    c->body_off = c->cpos = 0;
}

/* Flush c->out; true when it all went out. */
static bool flush_out(lg_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return false;
            return false; /* the read side sees the error */
        }
        c->out_off += (size_t)n;
    }
    return true;
}

/* The next session for c, or -1 when there is none (create mode: all taken). */
static int64_t next_session(lg_conn *c)
{
    if (L.o.create) {
        if (L.next_create >= L.o.create)
            return -1;
        return L.next_create++;
    }
    int64_t per = (L.o.sessions - c->idx + L.o.conns - 1) / L.o.conns; /* sessions of c */
    if (per <= 0)
        return c->idx % L.o.sessions; /* fewer sessions than connections: shared */
    int64_t s = c->idx + (int64_t)(c->k % (uint32_t)per) * L.o.conns;
    c->k++;
    return s;
}

static void send_next(lg_conn *c)
{
    if (L.stopping || c->busy || c->connecting || c->fd < 0)
        return;
    int64_t s = next_session(c);
    if (s < 0)
        return;
    c->sess = s;
    c->turn++;
    char body[512];
    int blen = snprintf(body, sizeof(body),
                        "{\"model\":\"hermes-agent\",\"stream\":%s,\"messages\":[{\"role\":"
                        "\"user\",\"content\":\"turn %" PRIu64 " of session %" PRId64
                        ": a typical chat line of a couple of dozen words, long enough to look "
                        "like what people write to an agent\"}]}",
                        L.o.stream ? "true" : "false", c->turn, s);
    int n = snprintf(c->out, sizeof(c->out),
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer %s\r\nX-Hermes-Session-Id: %s-%" PRId64 "\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     L.o.key, L.o.prefix, s, blen, body);
    if (n <= 0 || (size_t)n >= sizeof(c->out)) {
        note_error("request too large");
        return;
    }
    c->out_len = (size_t)n;
    c->out_off = 0;
    c->busy = true;
    L.inflight++;
    reset_answer(c);
    c->in_len = 0;
    c->t0 = bench_now_ns();
    bool all = flush_out(c);
    if (all != !c->want_out)
        watch(c, !all);
}

static void conn_close(lg_conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(L.ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    if (c->busy) {
        c->busy = false;
        L.inflight--;
    }
    c->connecting = false;
    c->in_len = 0;
}

/* The connection broke (or the server closed it): count it, reconnect (bounded). */
static void conn_fail(lg_conn *c, const char *why)
{
    bool was_busy = c->busy;
    conn_close(c);
    if (was_busy) {
        note_error(why);
        L.incomplete++;
        if (L.o.create)
            L.created++; /* that session is spent */
    }
    if (L.stopping || L.reconnects >= (uint64_t)L.o.conns * 4)
        return;
    L.reconnects++;
    if (conn_open(c) != 0)
        note_error("reconnect failed");
}

/* ============================================================== answers */

static bool has_token_ci(const char *v, size_t n, const char *tok)
{
    size_t k = strlen(tok);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(v + i, tok, k) == 0)
            return true;
    return false;
}

/* Parse the head once it is complete; -1 on a malformed head. */
static int parse_head(lg_conn *c)
{
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end)
        return 0;
    c->body_off = (size_t)(end - c->in) + 4;
    c->cpos = c->body_off;
    if (c->in_len < 12 || strncmp(c->in, "HTTP/1.", 7) != 0)
        return -1;
    c->status = (c->in[9] - '0') * 100 + (c->in[10] - '0') * 10 + (c->in[11] - '0');
    c->clen = -1;
    const char *p = memchr(c->in, '\n', c->body_off);
    while (p && p + 1 < c->in + c->body_off - 2) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(c->in + c->body_off - line));
        if (!eol)
            break;
        size_t len = (size_t)(eol - line);
        if (len > 15 && strncasecmp(line, "Content-Length:", 15) == 0) {
            char num[32];
            size_t k = 0;
            const char *q = line + 15;
            while (*q == ' ')
                q++;
            while (q < eol && *q >= '0' && *q <= '9' && k + 1 < sizeof(num))
                num[k++] = *q++;
            num[k] = '\0';
            int64_t v = 0;
            if (rt_parse_i64(num, 0, (int64_t)LG_IN_MAX, &v) == 0)
                c->clen = v;
        } else if (len > 18 && strncasecmp(line, "Transfer-Encoding:", 18) == 0 &&
                   has_token_ci(line, len, "chunked")) {
            c->chunked = true;
        }
        p = eol;
    }
    c->head_done = true;
    if (!c->chunked && c->clen < 0)
        return -1; /* close-delimited answers are not expected from rt_httpd */
    return 0;
}

/* 1 when the answer is complete, 0 when more is needed, -1 on malformed framing. */
static int answer_complete(lg_conn *c)
{
    if (!c->head_done) {
        if (parse_head(c) < 0)
            return -1;
        if (!c->head_done)
            return 0;
    }
    if (!c->chunked)
        return c->in_len >= c->body_off + (size_t)c->clen ? 1 : 0;
    for (;;) { /* chunk by chunk from cpos */
        char *eol = memmem(c->in + c->cpos, c->in_len - c->cpos, "\r\n", 2);
        if (!eol)
            return 0;
        unsigned long long size = strtoull(c->in + c->cpos, NULL, 16);
        size_t data = (size_t)(eol - c->in) + 2;
        if (size == 0)
            return c->in_len >= data + 2 ? 1 : 0; /* "0\r\n\r\n": no trailers */
        if (size > LG_IN_MAX)
            return -1;
        if (c->in_len < data + size + 2)
            return 0;
        c->cpos = data + (size_t)size + 2;
    }
}

static bool answer_ok(lg_conn *c)
{
    if (c->status != 200) {
        L.status_err++;
        if (!L.first_status)
            L.first_status = c->status;
        char why[64];
        snprintf(why, sizeof(why), "HTTP %d", c->status);
        note_error(why);
        return false;
    }
    const char *body = c->in + c->body_off;
    size_t blen = c->in_len - c->body_off;
    bool ok = L.o.stream ? memmem(body, blen, "data: [DONE]", 12) != NULL
                         : memmem(body, blen, "\"content\"", 9) != NULL;
    if (!ok)
        note_error(L.o.stream ? "stream without [DONE]" : "answer without content");
    return ok;
}

static void on_answer(lg_conn *c)
{
    int64_t t = bench_now_ns();
    bool ok = answer_ok(c);
    c->busy = false;
    L.inflight--;
    if (L.o.create) {
        L.created++;
        if (ok)
            L.turns++;
    } else if (t >= L.warm_end && t <= L.end) {
        if (ok) {
            L.turns++;
            if (L.nlat < LG_MAX_SAMPLES)
                L.lat[L.nlat++] = t - c->t0 - L.o.latency_ms * 1000000;
        }
    }
    c->in_len = 0;
    send_next(c);
}

static void on_readable(lg_conn *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < 16384) {
            if (c->in_cap >= LG_IN_MAX) {
                conn_fail(c, "answer too large");
                return;
            }
            c->in_cap = c->in_cap ? c->in_cap * 2 : 65536;
            c->in = rt_xrealloc(c->in, c->in_cap);
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n == 0) {
            conn_fail(c, "server closed the connection");
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            conn_fail(c, "connection error");
            return;
        }
        if (!c->busy) {
            conn_fail(c, "bytes without a request");
            return;
        }
        c->in_len += (size_t)n;
    }
    if (!c->busy)
        return;
    int st = answer_complete(c);
    if (st < 0)
        conn_fail(c, "malformed answer");
    else if (st > 0)
        on_answer(c);
}

static void on_event(lg_conn *c, uint32_t events)
{
    if (c->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            conn_fail(c, "connect failed");
            return;
        }
        c->connecting = false;
        watch(c, false);
        if (bench_now_ns() < c->start_at && !c->waiting) {
            c->waiting = true;
            L.nwaiting++;
        } else if (!c->waiting) {
            send_next(c);
        }
        return;
    }
    if (events & EPOLLOUT) {
        if (flush_out(c))
            watch(c, false);
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        on_readable(c);
}

/* ============================================================== main */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(double p)
{
    if (!L.nlat)
        return -1;
    size_t i = (size_t)(p * (double)(L.nlat - 1) + 0.5);
    return (double)L.lat[i] / 1e6;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: bench_gw_load --port P [--pid SERVER_PID] [--key K] [--conns C] [--sessions M]\n"
        "       [--seconds D] [--warmup W] [--stream 0|1] [--latency-ms L] [--prefix ID]\n"
        "       [--create N] [--settle-ms MS] [--drain-s S] [--ramp-ms R] [--label NAME]\n");
    exit(2);
}

static void parse_args(int argc, char **argv, lg_opts *o)
{
    *o = (lg_opts){.conns = 64,
                   .sessions = 1000,
                   .seconds = 8,
                   .warmup = 2,
                   .settle_ms = 1500,
                   .drain_s = 15,
                   .key = "bench-key-0123456789abcdef",
                   .prefix = "bench",
                   .label = "run"};
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            usage();
        const char *a = argv[i], *v = argv[i + 1];
        int rc = 0;
        if (!strcmp(a, "--port"))
            rc = rt_parse_i64(v, 1, 65535, &o->port);
        else if (!strcmp(a, "--pid"))
            rc = rt_parse_i64(v, 1, INT32_MAX, &o->pid);
        else if (!strcmp(a, "--conns"))
            rc = rt_parse_i64(v, 1, 60000, &o->conns);
        else if (!strcmp(a, "--sessions"))
            rc = rt_parse_i64(v, 1, 10000000, &o->sessions);
        else if (!strcmp(a, "--seconds"))
            rc = rt_parse_i64(v, 1, 3600, &o->seconds);
        else if (!strcmp(a, "--warmup"))
            rc = rt_parse_i64(v, 0, 600, &o->warmup);
        else if (!strcmp(a, "--stream"))
            rc = rt_parse_i64(v, 0, 1, &o->stream);
        else if (!strcmp(a, "--latency-ms"))
            rc = rt_parse_i64(v, 0, 3600000, &o->latency_ms);
        else if (!strcmp(a, "--create"))
            rc = rt_parse_i64(v, 1, 10000000, &o->create);
        else if (!strcmp(a, "--settle-ms"))
            rc = rt_parse_i64(v, 0, 600000, &o->settle_ms);
        else if (!strcmp(a, "--ramp-ms"))
            rc = rt_parse_i64(v, 0, 600000, &o->ramp_ms);
        else if (!strcmp(a, "--drain-s"))
            rc = rt_parse_i64(v, 1, 3600, &o->drain_s);
        else if (!strcmp(a, "--key"))
            o->key = v;
        else if (!strcmp(a, "--prefix"))
            o->prefix = v;
        else if (!strcmp(a, "--label"))
            o->label = v;
        else
            usage();
        if (rc)
            usage();
    }
    if (!o->port || strlen(o->key) > 200 || strlen(o->prefix) > 100)
        usage();
}

int main(int argc, char **argv)
{
    parse_args(argc, argv, &L.o);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)L.o.conns + 32) {
            printf("RESULT bench=gw_load label=%s error=nofile_limit_%llu\n", L.o.label,
                   (unsigned long long)rl.rlim_cur);
            return 2;
        }
    }
    L.addr.sin_family = AF_INET;
    L.addr.sin_port = htons((uint16_t)L.o.port);
    L.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    L.ep = epoll_create1(EPOLL_CLOEXEC);
    L.lat = rt_xmalloc(LG_MAX_SAMPLES * sizeof(int64_t));
    L.c = rt_xcalloc((size_t)L.o.conns, sizeof(lg_conn));

    long rss_before = L.o.pid ? rss_kb_of(L.o.pid) : -1;
    int64_t t_start = bench_now_ns();
    L.warm_end = L.o.create ? t_start : t_start + L.o.warmup * 1000000000LL;
    L.end = L.o.create ? INT64_MAX : L.warm_end + L.o.seconds * 1000000000LL;
    /* create mode: bounded by the drain time per 1,000 sessions */
    int64_t hard_end = L.o.create ? t_start + (L.o.drain_s + L.o.create / 100) * 1000000000LL
                                  : L.end + L.o.drain_s * 1000000000LL;
    double cpu0 = -1, self0 = self_cpu_s(), mach0 = machine_busy_s();
    bool window_open = L.o.create != 0;
    if (window_open && L.o.pid)
        cpu0 = cpu_s_of(L.o.pid);

    int opened = 0;
    for (int i = 0; i < L.o.conns; i++) {
        L.c[i].idx = i;
        L.c[i].fd = -1;
        L.c[i].start_at = t_start + L.o.ramp_ms * 1000000LL * i / L.o.conns;
        if (conn_open(&L.c[i]) == 0)
            opened++;
    }
    if (!opened) {
        printf("RESULT bench=gw_load label=%s error=cannot_connect\n", L.o.label);
        return 2;
    }
    struct epoll_event evs[512];
    for (;;) {
        int64_t now = bench_now_ns();
        if (!window_open && now >= L.warm_end) {
            window_open = true;
            if (L.o.pid)
                cpu0 = cpu_s_of(L.o.pid);
            self0 = self_cpu_s();
            mach0 = machine_busy_s();
        }
        if (!L.o.create && now >= L.end)
            L.stopping = true;
        if (L.o.create && L.created >= L.o.create)
            break;
        if (L.stopping && L.inflight == 0)
            break;
        if (now >= hard_end) {
            note_error("drain timeout");
            break;
        }
        if (L.nwaiting > 0) /* --ramp-ms: first requests that are due */
            for (int i = 0; i < L.o.conns; i++) {
                lg_conn *c = &L.c[i];
                if (c->waiting && now >= c->start_at) {
                    c->waiting = false;
                    L.nwaiting--;
                    send_next(c);
                }
            }
        int n = epoll_wait(L.ep, evs, 512, L.nwaiting > 0 ? 2 : 20);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
    }
    int64_t t_done = bench_now_ns();
    double cpu1 = L.o.pid ? cpu_s_of(L.o.pid) : -1, self1 = self_cpu_s(), mach1 = machine_busy_s();
    double wall = (double)(t_done - (L.o.create ? t_start : L.warm_end)) / 1e9;
    uint64_t unfinished = (uint64_t)L.inflight;
    for (int i = 0; i < L.o.conns; i++) {
        conn_close(&L.c[i]);
        rt_free(L.c[i].in);
    }
    if (unfinished)
        L.errors += unfinished; /* a create that did not finish; a run's late answers */

    double secs = L.o.create ? (double)(t_done - t_start) / 1e9 : (double)L.o.seconds;
    qsort(L.lat, L.nlat, sizeof(int64_t), cmp_i64);
    printf("RESULT bench=gw_load label=%s mode=%s conns=%" PRId64 " stream=%" PRId64
           " sessions=%" PRId64 " latency_ms=%" PRId64 " secs=%.2f turns=%" PRIu64
           " turns_per_s=%.0f added_p50_ms=%.3f added_p99_ms=%.3f added_p999_ms=%.3f "
           "added_max_ms=%.3f errors=%" PRIu64 " http_errors=%" PRIu64 " reconnects=%" PRIu64,
           L.o.label, L.o.create ? "create" : "run", L.o.conns, L.o.stream,
           L.o.create ? L.o.create : L.o.sessions, L.o.latency_ms, secs, L.turns,
           (double)L.turns / secs, pct_ms(0.50), pct_ms(0.99), pct_ms(0.999),
           L.nlat ? (double)L.lat[L.nlat - 1] / 1e6 : -1.0, L.errors, L.status_err, L.reconnects);
    if (L.o.pid && cpu0 >= 0 && cpu1 >= 0 && L.turns)
        printf(" server_cpu_s=%.2f server_cpu_us_per_turn=%.0f server_cores=%.2f", cpu1 - cpu0,
               (cpu1 - cpu0) * 1e6 / (double)L.turns, (cpu1 - cpu0) / wall);
    printf(" client_cores=%.2f", (self1 - self0) / wall);
    if (mach0 >= 0 && mach1 >= 0)
        printf(" machine_cores_busy=%.2f of=%ld", (mach1 - mach0) / wall,
               sysconf(_SC_NPROCESSORS_ONLN));
    if (L.o.create && L.o.pid) {
        struct timespec ts = {(time_t)(L.o.settle_ms / 1000),
                              (long)(L.o.settle_ms % 1000) * 1000000};
        nanosleep(&ts, NULL); /* let the store commit and the queues drain */
        long rss_after = rss_kb_of(L.o.pid);
        printf(" rss_before_kb=%ld rss_kb=%ld bytes_per_session=%.0f", rss_before, rss_after,
               (double)(rss_after - rss_before) * 1024.0 / (double)L.o.create);
    } else if (L.o.pid) {
        printf(" rss_kb=%ld", rss_kb_of(L.o.pid));
    }
    if (L.first_error[0]) {
        char e[sizeof(L.first_error)];
        size_t k = 0;
        for (const char *p = L.first_error; *p && k + 1 < sizeof(e); p++)
            e[k++] = *p == ' ' ? '_' : *p;
        e[k] = '\0';
        printf(" first_error=%s", e);
    }
    printf("\n");
    fflush(stdout);
    rt_free(L.lat);
    rt_free(L.c);
    close(L.ep);
    return L.errors ? 1 : 0;
}
