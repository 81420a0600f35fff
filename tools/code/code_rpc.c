/*
 * code_rpc — see code_rpc.h.
 */
#include "code_rpc.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct conn {
    struct code_rpc *rpc;
    int fd;
    uint64_t id;
    rt_buf in;
    rt_buf out;
    bool waiting;  /* a request was handed to the owner and is not answered yet */
    bool closing;  /* close once out is written */
    bool watching; /* fd registered */
} conn;

struct code_rpc {
    rt_reactor *r;
    int lfd;
    char *path;
    rt_ref owner;
    conn *conns[CODE_RPC_MAX_CONNS];
    uint64_t next_id;
};

static void conn_free(conn *c)
{
    if (c->watching)
        rt_reactor_del_fd(c->rpc->r, c->fd);
    close(c->fd);
    rt_buf_fini(&c->in);
    rt_buf_fini(&c->out);
    for (size_t i = 0; i < CODE_RPC_MAX_CONNS; i++)
        if (c->rpc->conns[i] == c)
            c->rpc->conns[i] = NULL;
    rt_free(c);
}

static void drop_req(rt_msg *m)
{
    rt_free(((code_msg_rpc_req *)m)->line);
}

static void flush_out(conn *c);

/* Hand the next complete line to the owner, if none is outstanding. */
static void next_request(conn *c)
{
    if (c->waiting || c->closing)
        return;
    const char *s = rt_buf_cstr(&c->in);
    size_t n = c->in.len;
    const char *nl = n ? memchr(s, '\n', n) : NULL;
    if (!nl) {
        if (n >= CODE_RPC_LINE_MAX) {
            rt_buf_append_str(&c->out, "{\"error\": \"Request too large.\"}\n");
            c->closing = true;
            flush_out(c);
        }
        return;
    }
    code_msg_rpc_req *m = RT_MSG_NEW(code_msg_rpc_req, CODE_MSG_RPC_REQ);
    m->rpc = c->rpc;
    m->conn = c->id;
    size_t len = (size_t)(nl - s);
    if (len && s[len - 1] == '\r')
        len--;
    m->line = rt_xstrndup(s, len);
    m->hdr.drop = drop_req;
    rt_buf_consume(&c->in, (size_t)(nl - s) + 1);
    c->waiting = true;
    rt_send(rt_reactor_ctx(c->rpc->r), c->rpc->owner, &m->hdr);
}

static void flush_out(conn *c)
{
    while (c->out.len) {
        ssize_t w = send(c->fd, rt_buf_cstr(&c->out), c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            rt_reactor_mod_fd(c->rpc->r, c->fd, EPOLLIN | EPOLLOUT);
            return;
        }
        if (w <= 0) {
            conn_free(c);
            return;
        }
        rt_buf_consume(&c->out, (size_t)w);
    }
    if (c->closing) {
        conn_free(c);
        return;
    }
    rt_reactor_mod_fd(c->rpc->r, c->fd, EPOLLIN);
}

static void on_conn(rt_reactor *r, int fd, uint32_t events, void *arg)
{
    (void)r;
    (void)fd;
    conn *c = arg;
    if (events & EPOLLOUT) {
        flush_out(c);
        return; /* c may be gone */
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    char buf[65536];
    for (int rounds = 0; rounds < 64; rounds++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) { /* end of file or error: the script is done with us */
            conn_free(c);
            return;
        }
        if (rt_buf_append(&c->in, buf, (size_t)n) < 0) {
            rt_buf_reset(&c->in);
            rt_buf_append_str(&c->out, "{\"error\": \"Request too large.\"}\n");
            c->closing = true;
            flush_out(c);
            return;
        }
    }
    next_request(c);
}

static void on_listen(rt_reactor *r, int fd, uint32_t events, void *arg)
{
    (void)events;
    struct code_rpc *rpc = arg;
    for (int k = 0; k < 16; k++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        size_t slot = CODE_RPC_MAX_CONNS;
        for (size_t i = 0; i < CODE_RPC_MAX_CONNS; i++)
            if (!rpc->conns[i]) {
                slot = i;
                break;
            }
        if (slot == CODE_RPC_MAX_CONNS) {
            close(cfd);
            continue;
        }
        conn *c = rt_xcalloc(1, sizeof(*c));
        c->rpc = rpc;
        c->fd = cfd;
        c->id = ++rpc->next_id;
        rt_buf_init(&c->in, CODE_RPC_LINE_MAX);
        rt_buf_init(&c->out, SIZE_MAX / 2);
        rpc->conns[slot] = c;
        if (rt_reactor_add_fd(r, cfd, EPOLLIN, on_conn, c) < 0) {
            conn_free(c);
            continue;
        }
        c->watching = true;
    }
}

static void do_listen(rt_reactor *r, void *arg)
{
    struct code_rpc *rpc = arg;
    if (rpc->lfd >= 0 && rt_reactor_add_fd(r, rpc->lfd, EPOLLIN, on_listen, rpc) < 0) {
        RT_WARN("tool", "execute_code: cannot watch the RPC socket");
        close(rpc->lfd);
        rpc->lfd = -1;
    }
}

code_rpc *code_rpc_open(rt_reactor *r, const char *path, rt_ref owner, int *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!r || !path || strlen(path) >= sizeof(sa.sun_path)) {
        *err = r && path ? -ENAMETOOLONG : -EINVAL;
        return NULL;
    }
    rt_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = -errno;
        return NULL;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, CODE_RPC_MAX_CONNS) < 0) {
        *err = -errno;
        close(fd);
        return NULL;
    }
    struct code_rpc *rpc = rt_xcalloc(1, sizeof(*rpc));
    rpc->r = r;
    rpc->lfd = fd;
    rpc->path = rt_xstrdup(path);
    rpc->owner = owner;
    rt_reactor_call(r, do_listen, rpc);
    *err = 0;
    return rpc;
}

typedef struct reply_req {
    struct code_rpc *rpc;
    uint64_t conn;
    char *line;
} reply_req;

static void do_reply(rt_reactor *r, void *arg)
{
    (void)r;
    reply_req *q = arg;
    conn *c = NULL;
    for (size_t i = 0; i < CODE_RPC_MAX_CONNS; i++)
        if (q->rpc->conns[i] && q->rpc->conns[i]->id == q->conn)
            c = q->rpc->conns[i];
    if (c) {
        rt_buf_append_str(&c->out, q->line);
        rt_buf_append(&c->out, "\n", 1);
        c->waiting = false;
        flush_out(c);
        /* flush_out may have freed c: look it up again before the next request */
        for (size_t i = 0; i < CODE_RPC_MAX_CONNS; i++)
            if (q->rpc->conns[i] && q->rpc->conns[i]->id == q->conn)
                next_request(q->rpc->conns[i]);
    }
    rt_free(q->line);
    rt_free(q);
}

void code_rpc_reply(code_rpc *rpc, uint64_t conn_id, const char *line)
{
    if (!rpc)
        return;
    reply_req *q = rt_xmalloc(sizeof(*q));
    *q = (reply_req){rpc, conn_id, rt_xstrdup(line ? line : "")};
    rt_reactor_call(rpc->r, do_reply, q);
}

static void do_close(rt_reactor *r, void *arg)
{
    struct code_rpc *rpc = arg;
    for (size_t i = 0; i < CODE_RPC_MAX_CONNS; i++)
        if (rpc->conns[i])
            conn_free(rpc->conns[i]);
    if (rpc->lfd >= 0) {
        rt_reactor_del_fd(r, rpc->lfd);
        close(rpc->lfd);
    }
    unlink(rpc->path);
    rt_free(rpc->path);
    rt_free(rpc);
}

void code_rpc_close(code_rpc *rpc)
{
    if (rpc)
        rt_reactor_call(rpc->r, do_close, rpc);
}
