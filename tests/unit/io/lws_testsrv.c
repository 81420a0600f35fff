/* lws_testsrv — see lws_testsrv.h. Test code: plain blocking sockets, one thread each. */
#include "lws_testsrv.h"

#include "rt_alloc.h"
#include "rt_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#define TS_MAX_CONNS 64
#define TS_MAX_FRAME (64u << 20)

struct ts_conn {
    ts_server *s;
    int fd;
    SSL *ssl;
    pthread_t thread;
    char req[8192];
    int pongs; /* pongs ts_recv_message skipped */
    _Atomic bool done;
};

struct ts_server {
    int lfd;
    int port;
    ts_script fn;
    void *arg;
    SSL_CTX *tls;
    pthread_t acceptor;
    _Atomic bool stop;
    _Atomic int nconns;
    ts_conn *conns[TS_MAX_CONNS];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ts_pongs(ts_conn *c)
{
    return c->pongs;
}

bool ts_stopping(ts_conn *c)
{
    return atomic_load(&c->s->stop);
}

/* ------------------------------------------------------------------- raw io */

static int wait_readable(ts_conn *c, int64_t deadline)
{
    if (c->ssl && SSL_pending(c->ssl) > 0)
        return 0;
    /* Data already received is still read after ts_stop: scripts may be checking what the
     * client sent last. */
    for (;;) {
        int64_t left = deadline - now_ms();
        bool stopping = ts_stopping(c);
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = poll(&p, 1, stopping || left <= 0 ? 0 : left > 100 ? 100 : (int)left);
        if (n > 0)
            return 0;
        if ((n < 0 && errno != EINTR) || stopping || left <= 0)
            return -1;
    }
}

static int read_some(ts_conn *c, void *p, size_t n, int64_t deadline)
{
    for (;;) {
        if (wait_readable(c, deadline))
            return -1;
        if (!c->ssl) {
            ssize_t r = recv(c->fd, p, n, 0);
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            return r > 0 ? (int)r : -1;
        }
        int r = SSL_read(c->ssl, p, (int)n);
        if (r > 0)
            return r;
        int e = SSL_get_error(c->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return -1;
    }
}

static int read_full(ts_conn *c, void *p, size_t n, int64_t deadline)
{
    char *b = p;
    while (n) {
        int r = read_some(c, b, n, deadline);
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_full(ts_conn *c, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        int r;
        if (c->ssl) {
            r = SSL_write(c->ssl, b, (int)n);
            if (r <= 0)
                return -1;
        } else {
            ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return -1;
            r = (int)w;
        }
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* ---------------------------------------------------------------- websocket */

static void accept_key(const char *key, char out[64])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char buf[256];
    unsigned char sha[SHA_DIGEST_LENGTH];
    snprintf(buf, sizeof(buf), "%s%s", key, guid);
    SHA1((const unsigned char *)buf, strlen(buf), sha);
    EVP_EncodeBlock((unsigned char *)out, sha, SHA_DIGEST_LENGTH);
}

const char *ts_request(ts_conn *c)
{
    return c->req;
}

int ts_handshake(ts_conn *c, int status)
{
    int64_t deadline = now_ms() + TS_IO_TIMEOUT_MS;
    size_t n = 0;
    c->req[0] = '\0';
    while (!strstr(c->req, "\r\n\r\n")) {
        if (n + 1 >= sizeof(c->req))
            return -1;
        int r = read_some(c, c->req + n, 1, deadline); /* byte by byte: no over-read */
        if (r <= 0)
            return -1;
        n += (size_t)r;
        c->req[n] = '\0';
    }
    const char *k = strcasestr(c->req, "\r\nSec-WebSocket-Key:");
    if (!k)
        return -1;
    k += 20;
    while (*k == ' ')
        k++;
    char key[64] = "", acc[64];
    size_t klen = strcspn(k, "\r\n");
    if (klen >= sizeof(key))
        return -1;
    memcpy(key, k, klen);
    accept_key(key, acc);
    char resp[512];
    int len;
    if (status == 101)
        len = snprintf(resp, sizeof(resp),
                       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                       "Server: lws-testsrv\r\n\r\n",
                       acc);
    else
        len =
            snprintf(resp, sizeof(resp),
                     "HTTP/1.1 %d Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
    if (write_full(c, resp, (size_t)len))
        return -1;
    return status == 101 ? 0 : -1;
}

int ts_send_frame(ts_conn *c, int opcode, bool fin, const void *p, size_t n)
{
    unsigned char h[10];
    size_t hl = 2;
    h[0] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        h[1] = (unsigned char)n;
    } else if (n < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    if (write_full(c, h, hl))
        return -1;
    return n ? write_full(c, p, n) : 0;
}

int ts_recv_frame(ts_conn *c, int *opcode, bool *fin, char **data, size_t *n, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    unsigned char h[14];
    if (read_full(c, h, 2, deadline))
        return -1;
    *fin = h[0] & 0x80;
    *opcode = h[0] & 0x0f;
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
        if (read_full(c, h + 2, 2, deadline))
            return -1;
        len = ((uint64_t)h[2] << 8) | h[3];
    } else if (len == 127) {
        if (read_full(c, h + 2, 8, deadline))
            return -1;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | h[2 + i];
    }
    if (len > TS_MAX_FRAME)
        return -1;
    unsigned char mask[4] = {0};
    if ((h[1] & 0x80) && read_full(c, mask, 4, deadline))
        return -1;
    char *d = rt_xmalloc(len + 1);
    if (!d || read_full(c, d, len, deadline)) {
        rt_free(d);
        return -1;
    }
    for (uint64_t i = 0; i < len; i++)
        d[i] ^= (char)mask[i % 4];
    d[len] = '\0';
    *data = d;
    *n = len;
    return 0;
}

int ts_recv_message(ts_conn *c, char **data, size_t *n, int timeout_ms)
{
    char *msg = NULL;
    size_t len = 0;
    int type = -1;
    for (;;) {
        int op;
        bool fin;
        char *d;
        size_t dn;
        if (ts_recv_frame(c, &op, &fin, &d, &dn, timeout_ms)) {
            rt_free(msg);
            return -1;
        }
        if (op == TS_PING) {
            ts_send_frame(c, TS_PONG, true, d, dn);
            rt_free(d);
            continue;
        }
        if (op == TS_PONG) {
            c->pongs++;
            rt_free(d);
            continue;
        }
        if (op == TS_CLOSE) {
            rt_free(msg);
            *data = d;
            *n = dn;
            return TS_CLOSE;
        }
        if (op != TS_CONT)
            type = op;
        char *m2 = rt_xrealloc(msg, len + dn + 1);
        if (!m2) {
            rt_free(d);
            rt_free(msg);
            return -1;
        }
        msg = m2;
        memcpy(msg + len, d, dn);
        len += dn;
        msg[len] = '\0';
        rt_free(d);
        if (fin) {
            *data = msg;
            *n = len;
            return type;
        }
    }
}

int ts_send_close(ts_conn *c, int code, const char *reason)
{
    char b[128];
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 123)
        rl = 123;
    b[0] = (char)(code >> 8);
    b[1] = (char)code;
    memcpy(b + 2, reason ? reason : "", rl);
    return ts_send_frame(c, TS_CLOSE, true, b, rl + 2);
}

void ts_abort(ts_conn *c)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    shutdown(c->fd, SHUT_RDWR);
}

void ts_hold(ts_conn *c)
{
    int64_t deadline = now_ms() + 3 * TS_IO_TIMEOUT_MS;
    char b[512];
    while (!ts_stopping(c) && now_ms() < deadline) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0 && recv(c->fd, b, sizeof(b), MSG_DONTWAIT) == 0)
            return;
    }
}

/* ------------------------------------------------------------------- server */

static void *conn_main(void *arg)
{
    ts_conn *c = arg;
    if (c->s->tls) {
        c->ssl = SSL_new(c->s->tls);
        SSL_set_fd(c->ssl, c->fd);
        if (SSL_accept(c->ssl) != 1) {
            atomic_store(&c->done, true);
            return NULL; /* the client refused our certificate: part of some tests */
        }
    }
    c->s->fn(c, c->s->arg);
    if (c->ssl)
        SSL_shutdown(c->ssl);
    atomic_store(&c->done, true);
    return NULL;
}

static void *accept_main(void *arg)
{
    ts_server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->lfd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        int n = atomic_load(&s->nconns);
        if (n >= TS_MAX_CONNS) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        ts_conn *c = rt_xcalloc(1, sizeof(*c));
        c->s = s;
        c->fd = fd;
        s->conns[n] = c;
        atomic_store(&s->nconns, n + 1);
        pthread_create(&c->thread, NULL, conn_main, c);
    }
    return NULL;
}

ts_server *ts_start(ts_script fn, void *arg, const char *cert, const char *key)
{
    ts_server *s = rt_xcalloc(1, sizeof(*s));
    s->fn = fn;
    s->arg = arg;
    if (cert) {
        s->tls = SSL_CTX_new(TLS_server_method());
        if (SSL_CTX_use_certificate_chain_file(s->tls, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(s->tls, key, SSL_FILETYPE_PEM) != 1) {
            SSL_CTX_free(s->tls);
            rt_free(s);
            return NULL;
        }
    }
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) || listen(s->lfd, 128) ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al)) {
        close(s->lfd);
        if (s->tls)
            SSL_CTX_free(s->tls);
        rt_free(s);
        return NULL;
    }
    s->port = ntohs(a.sin_port);
    pthread_create(&s->acceptor, NULL, accept_main, s);
    return s;
}

int ts_port(ts_server *s)
{
    return s->port;
}

int ts_accepted(ts_server *s)
{
    return atomic_load(&s->nconns);
}

void ts_stop(ts_server *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->acceptor, NULL);
    close(s->lfd);
    int n = atomic_load(&s->nconns);
    for (int i = 0; i < n; i++)
        shutdown(s->conns[i]->fd, SHUT_RDWR);
    for (int i = 0; i < n; i++) {
        ts_conn *c = s->conns[i];
        pthread_join(c->thread, NULL);
        if (c->ssl)
            SSL_free(c->ssl);
        close(c->fd);
        rt_free(c);
    }
    if (s->tls)
        SSL_CTX_free(s->tls);
    rt_free(s);
}

/* ------------------------------------------------------------------ certs */

static int run(const char *cmd)
{
    int r = system(cmd);
    if (r != 0)
        fprintf(stderr, "command failed (%d): %s\n", r, cmd);
    return r == 0 ? 0 : -1;
}

int ts_make_certs(const char *d)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout ca-key.pem -out ca.pem -days 2 -subj /CN=hermes-test-ca "
             ">/dev/null 2>&1 && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout other-key.pem -out other-ca.pem -days 2 -subj /CN=hermes-other-ca "
             ">/dev/null 2>&1 && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout key.pem -out req.pem -subj /CN=127.0.0.1 >/dev/null 2>&1 && "
             "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext.cnf && "
             "openssl x509 -req -in req.pem -CA ca.pem -CAkey ca-key.pem -CAcreateserial "
             "-out cert.pem -days 2 -extfile ext.cnf >/dev/null 2>&1",
             d);
    return run(cmd);
}
