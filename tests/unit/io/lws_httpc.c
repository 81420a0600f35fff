/* lws_httpc — see lws_httpc.h. Test code. */
#include "lws_httpc.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hc_open(hc_conn *c, int port, int rcvbuf)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct timeval tv = {.tv_sec = HC_TIMEOUT_MS / 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a))) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        errno = e;
        return -1;
    }
    return 0;
}

void hc_close(hc_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

int hc_send(hc_conn *c, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read more into the buffer: bytes read, 0 on EOF, -1 on error or timeout. */
static int fill(hc_conn *c, long long deadline)
{
    if (c->len == sizeof(c->buf))
        return -1;
    long long left = deadline - now_ms();
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (left <= 0 || poll(&p, 1, (int)left) <= 0)
        return -1;
    ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (r < 0)
        return errno == ECONNRESET ? 0 : -1;
    c->len += (size_t)r;
    return (int)r;
}

static void take(hc_conn *c, size_t n, rt_buf *into)
{
    if (into)
        rt_buf_append(into, c->buf, n);
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

int hc_read_head(hc_conn *c, hc_resp *r)
{
    long long deadline = now_ms() + HC_TIMEOUT_MS;
    memset(r, 0, sizeof(*r));
    char *e;
    for (;;) {
        e = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (e)
            break;
        if (fill(c, deadline) <= 0)
            return -1;
    }
    size_t hl = (size_t)(e - c->buf) + 4;
    if (hl >= sizeof(r->head))
        return -1;
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    take(c, hl, NULL);
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    return 0;
}

const char *hc_header(const hc_resp *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *l = p + 2;
        if (!strncasecmp(l, name, nl) && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = strcspn(v, "\r");
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
    }
    return NULL;
}

static int read_chunked(hc_conn *c, rt_buf *b, long long deadline)
{
    for (;;) {
        char *lf;
        while (!(lf = memchr(c->buf, '\n', c->len)))
            if (fill(c, deadline) <= 0)
                return -1;
        size_t sz = strtoul(c->buf, NULL, 16);
        take(c, (size_t)(lf - c->buf) + 1, NULL);
        while (c->len < sz + 2)
            if (fill(c, deadline) <= 0)
                return -1;
        take(c, sz, b);
        take(c, 2, NULL);
        if (!sz)
            return 0;
    }
}

int hc_read(hc_conn *c, hc_resp *r, bool head_only)
{
    if (hc_read_head(c, r))
        return -1;
    long long deadline = now_ms() + HC_TIMEOUT_MS;
    rt_buf b;
    rt_buf_init(&b, 64 << 20);
    char v[64];
    int rc = 0;
    if (head_only || r->status == 204 || r->status == 304) {
        /* no body */
    } else if (hc_header(r, "Transfer-Encoding", v, sizeof(v))) {
        rc = read_chunked(c, &b, deadline);
    } else if (hc_header(r, "Content-Length", v, sizeof(v))) {
        size_t n = strtoul(v, NULL, 10);
        while (rc == 0 && b.len + c->len < n)
            if (c->len == sizeof(c->buf))
                take(c, c->len, &b);
            else if (fill(c, deadline) <= 0)
                rc = -1;
        if (rc == 0)
            take(c, n - b.len, &b);
    } else {
        int k;
        while ((k = fill(c, deadline)) > 0)
            take(c, c->len, &b);
        take(c, c->len, &b);
        rc = k == 0 ? 0 : -1;
    }
    r->body = rt_buf_steal(&b, &r->len);
    return rc;
}

int hc_read_some(hc_conn *c, char *out, size_t cap, size_t n)
{
    long long deadline = now_ms() + HC_TIMEOUT_MS;
    while (c->len < n)
        if (fill(c, deadline) <= 0)
            return -1;
    size_t k = c->len < cap - 1 ? c->len : cap - 1;
    memcpy(out, c->buf, k);
    out[k] = '\0';
    take(c, k, NULL);
    return (int)k;
}

bool hc_wait_closed(hc_conn *c)
{
    long long deadline = now_ms() + HC_TIMEOUT_MS;
    for (;;) {
        c->len = 0;
        int r = fill(c, deadline);
        if (r == 0)
            return true;
        if (r < 0)
            return false;
    }
}

void hc_resp_free(hc_resp *r)
{
    rt_free(r->body);
    r->body = NULL;
}

int hc_roundtrip(int port, const char *raw, hc_resp *r)
{
    hc_conn *c = rt_xmalloc(sizeof(*c));
    int rc = -1;
    if (hc_open(c, port, 0) == 0 && hc_send(c, raw) == 0)
        rc = hc_read(c, r, !strncmp(raw, "HEAD ", 5));
    hc_close(c);
    rt_free(c);
    return rc;
}
