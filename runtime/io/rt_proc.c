/*
 * rt_proc — see rt_proc.h.
 *
 * A process goes through three phases on the reactor thread:
 *   RUNNING   pidfd, stdout and stderr watched; stdin written as the child takes it.
 *   EXITED    the pidfd fired; the status was read with WNOWAIT, so the zombie still pins
 *             the pid (and with it the process group and session ids) while the pipes are
 *             drained, at most RT_PROC_DRAIN_MS.
 *   finalize  survivors of an interrupted command killed, fds closed, zombie reaped, EXIT
 *             sent, rt_busy_leave, memory freed. Every path ends here exactly once.
 *
 * Shared state (g_lock, a leaf lock):
 *   - g_mods: which reactor has the service attached (read by requests on the reactor
 *     thread, changed by rt_proc_init and the stop hook);
 *   - g_gates: per-process stdin accounting, so that rt_proc_write can refuse at once, on
 *     the caller's thread, what the reactor would not accept.
 * Everything else (the proc structs, their map, the scratch buffer) is reactor-thread only.
 *
 * Children are started with posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK), so no
 * async-signal-safety hazards of our own in the child, and a failed exec or chdir comes
 * back as the return value).
 */
#include "rt_proc.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_map.h"
#include "rt_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define DEFAULT_PATH    "/usr/local/bin:/usr/bin:/bin"
#define READS_PER_WAKE  8    /* chunks read from one fd per readiness event */
#define STOP_WAIT_MS    5000 /* stop hook: longest wait for killed children to die */
#define SCAN_STAT_BYTES 512

/* ------------------------------------------------------------------ shared state */

typedef struct gate {
    size_t queued;  /* bytes accepted by rt_proc_write, not yet written or dropped */
    bool has_stdin; /* stdin_pipe or pty */
    bool closed;    /* no more writes accepted */
} gate;

typedef struct procmod procmod;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static procmod *g_mods; /* under g_lock */
static rt_map g_gates;  /* id -> gate, under g_lock */
static _Atomic uint64_t g_next_id;

/* ------------------------------------------------------------------ reactor-owned state */

struct procmod {
    rt_reactor *r;
    rt_runtime *rt;
    rt_map procs;         /* id -> proc */
    char *scratch;        /* RT_PROC_CHUNK bytes for reads */
    bool sigpipe_blocked; /* on the reactor thread, before the first child */
    procmod *next;        /* g_mods link, under g_lock */
};

typedef struct wchunk {
    struct wchunk *next;
    uint64_t id;  /* target process (routing of the write request) */
    size_t len;   /* bytes in data */
    size_t off;   /* bytes already written */
    bool counted; /* counted in the gate (user data, not our ^D) */
    char data[];
} wchunk;

enum { K_NONE, K_TERM, K_KILL };

typedef struct proc {
    procmod *m;
    uint64_t id;
    uint64_t tag;
    rt_ref reply_to;
    pid_t pid;          /* also pgid and sid; 0 until started */
    int pidfd;          /* -1 once the exit was seen */
    int in_fd;          /* our stdin end; pty: the master; -1 when closed */
    int out_fd;         /* stdout (pty: the master); -1 at EOF */
    int err_fd;         /* stderr; -1 at EOF or when merged */
    int hold_fd;        /* pty master after EOF, unwatched, kept open until finalize */
    bool pty;           /* in_fd == out_fd == the pty master */
    bool in_watched;    /* EPOLLOUT wanted on in_fd */
    bool close_pending; /* close stdin once wq is empty */
    bool exited;        /* status collected (zombie kept until finalize) */
    bool reaped;
    bool swept; /* the stop hook already killed the session */
    bool timed_out;
    bool interrupted;
    int kill_state; /* K_* */
    int err;
    int exit_code;
    int term_signal;
    size_t max_out;
    size_t delivered[2];
    uint64_t dropped[2];
    int64_t t0_ns;
    uint64_t t_timeout, t_escalate, t_drain; /* reactor timer ids, 0 = none */
    wchunk *wq, **wq_tail;                   /* stdin queue */
} proc;

typedef struct spawn_req {
    uint64_t id;
    rt_proc_opts o; /* argv, env and cwd point at the copies below */
    char **argv;
    char **env; /* NULL: inherit */
    char *cwd;
} spawn_req;

typedef struct id_req {
    uint64_t id;
    int op; /* OP_* */
} id_req;

enum { OP_CLOSE_STDIN, OP_INTERRUPT, OP_KILL };

static void on_fd(rt_reactor *r, int fd, uint32_t events, void *arg);
static void on_timeout(rt_reactor *r, void *arg);
static void finalize(proc *p);

/* ------------------------------------------------------------------ registry and gates */

static procmod *mod_find_locked(rt_reactor *r)
{
    for (procmod *m = g_mods; m; m = m->next)
        if (m->r == r)
            return m;
    return NULL;
}

static procmod *mod_find(rt_reactor *r)
{
    pthread_mutex_lock(&g_lock);
    procmod *m = mod_find_locked(r);
    pthread_mutex_unlock(&g_lock);
    return m;
}

static void mod_remove(procmod *m)
{
    pthread_mutex_lock(&g_lock);
    for (procmod **pp = &g_mods; *pp; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    pthread_mutex_unlock(&g_lock);
}

static void gate_add(uint64_t id, bool has_stdin)
{
    gate *g = rt_xcalloc(1, sizeof(*g));
    g->has_stdin = has_stdin;
    pthread_mutex_lock(&g_lock);
    rt_map_put(&g_gates, id, g);
    pthread_mutex_unlock(&g_lock);
}

static void gate_del(uint64_t id)
{
    pthread_mutex_lock(&g_lock);
    gate *g = rt_map_del(&g_gates, id);
    pthread_mutex_unlock(&g_lock);
    rt_free(g);
}

static int gate_reserve(uint64_t id, size_t len)
{
    int err = 0;
    pthread_mutex_lock(&g_lock);
    gate *g = rt_map_get(&g_gates, id);
    if (!g)
        err = -ESRCH;
    else if (!g->has_stdin)
        err = -EBADF;
    else if (g->closed)
        err = -EPIPE;
    else if (g->queued + len > RT_PROC_STDIN_MAX)
        err = -EAGAIN;
    else
        g->queued += len;
    pthread_mutex_unlock(&g_lock);
    return err;
}

static void gate_release(uint64_t id, size_t n, bool close)
{
    if (n == 0 && !close)
        return;
    pthread_mutex_lock(&g_lock);
    gate *g = rt_map_get(&g_gates, id);
    if (g) {
        g->queued -= n < g->queued ? n : g->queued;
        g->closed |= close;
    }
    pthread_mutex_unlock(&g_lock);
}

/* ------------------------------------------------------------------ messages */

static void output_drop(rt_msg *m)
{
    rt_free(((rt_proc_msg_output *)m)->data);
}

static void send_exit(rt_ctx *cx, rt_ref to, uint64_t id, uint64_t tag, int err, const proc *p)
{
    rt_proc_msg_exit *e = RT_MSG_NEW(rt_proc_msg_exit, RT_PROC_MSG_EXIT);
    e->id = id;
    e->tag = tag;
    e->err = err;
    e->exit_code = -1;
    if (p) {
        e->pid = p->pid;
        e->exit_code = p->exit_code;
        e->term_signal = p->term_signal;
        e->timed_out = p->timed_out;
        e->interrupted = p->interrupted;
        e->bytes_dropped[0] = p->dropped[0];
        e->bytes_dropped[1] = p->dropped[1];
        if (p->t0_ns)
            e->duration_ms = (rt_reactor_now_ns() - p->t0_ns) / 1000000;
    }
    /* A reply_to that has ended makes this a dead letter: freed and counted, nothing more. */
    (void)rt_send(cx, to, &e->hdr);
}

/* Hand n bytes of stream s (1 or 2) to the owner, within max_out; count the rest. */
static void deliver(proc *p, int s, const char *buf, size_t n)
{
    size_t room = p->max_out - p->delivered[s - 1];
    size_t k = n < room ? n : room;
    p->dropped[s - 1] += n - k;
    if (k == 0)
        return;
    p->delivered[s - 1] += k;
    rt_proc_msg_output *o = RT_MSG_NEW(rt_proc_msg_output, RT_PROC_MSG_OUTPUT);
    o->hdr.drop = output_drop;
    o->id = p->id;
    o->tag = p->tag;
    o->stream = s;
    o->data = rt_xmalloc(k + 1);
    memcpy(o->data, buf, k);
    o->data[k] = '\0';
    o->len = k;
    (void)rt_send(rt_reactor_ctx(p->m->r), p->reply_to, &o->hdr);
}

/* ------------------------------------------------------------------ signals to a session */

/* Read the process group and session of pid from /proc/<pid>/stat. */
static int read_stat_ids(const char *pid, pid_t *pgrp, pid_t *sid)
{
    char path[64], buf[SCAN_STAT_BYTES];
    if (snprintf(path, sizeof(path), "/proc/%s/stat", pid) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -EIO;
    buf[n] = '\0';
    /* "pid (comm) state ppid pgrp session ...": comm may hold anything but ends at the
     * last ')'. */
    const char *rp = strrchr(buf, ')');
    int g = 0, s = 0;
    if (!rp || sscanf(rp + 1, " %*c %*d %d %d", &g, &s) != 2)
        return -EPROTO;
    *pgrp = g;
    *sid = s;
    return 0;
}

/*
 * Send sig1 (then sig2, if non-zero) to every process of the sessions in sids[0..n). Each
 * session's main group goes by kill(-sid); a /proc scan finds the job-control groups an
 * interactive shell may have made inside it. Every sid is pinned by our unreaped child, so
 * the numbers cannot name someone else's group.
 */
static void signal_sessions(const pid_t *sids, size_t n, int sig1, int sig2)
{
    for (size_t i = 0; i < n; i++) {
        RT_VERIFY(sids[i] > 0);     /* kill(0) or kill(-1) would hit our own group or everyone */
        (void)kill(-sids[i], sig1); /* ESRCH: only our zombie was left, nothing to do */
        if (sig2)
            (void)kill(-sids[i], sig2);
    }
    DIR *d = opendir("/proc");
    if (!d) {
        RT_WARN_ONCE("proc", "cannot scan /proc for job-control groups: %s", rt_strerror(-errno));
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        pid_t g, s;
        if (read_stat_ids(e->d_name, &g, &s) != 0 || g == s)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (s != sids[i])
                continue;
            (void)kill(-g, sig1); /* the job's whole group, as the shell would */
            if (sig2)
                (void)kill(-g, sig2);
        }
    }
    closedir(d);
}

static void signal_proc(proc *p, int sig1, int sig2)
{
    pid_t sid = p->pid;
    signal_sessions(&sid, 1, sig1, sig2);
}

/* ------------------------------------------------------------------ starting a child */

static void strv_free(char **v)
{
    if (!v)
        return;
    for (char **s = v; *s; s++)
        rt_free(*s);
    rt_free(v);
}

static char **strv_dup(const char *const *v)
{
    if (!v)
        return NULL;
    size_t n = 0;
    while (v[n])
        n++;
    char **c = rt_xcalloc(n + 1, sizeof(*c));
    for (size_t i = 0; i < n; i++)
        c[i] = rt_xstrdup(v[i]);
    return c;
}

static void req_free(spawn_req *q)
{
    strv_free(q->argv);
    strv_free(q->env);
    rt_free(q->cwd);
    rt_free(q);
}

static const char *path_of(char *const *env)
{
    if (!env) {
        const char *p = getenv("PATH");
        return p ? p : DEFAULT_PATH;
    }
    for (char *const *e = env; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            return *e + 5;
    return DEFAULT_PATH;
}

/* execvp's search: a name with a '/' is used as is; otherwise the first executable
 * regular file in PATH. -EACCES if only non-executable candidates were found. */
static int resolve_exe(const char *name, const char *path, char *out, size_t outlen)
{
    if (!*name)
        return -ENOENT;
    if (strchr(name, '/'))
        return rt_strlcpy(out, name, outlen) < outlen ? 0 : -ENAMETOOLONG;
    int err = -ENOENT;
    const char *p = path;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
        int w = dlen ? snprintf(out, outlen, "%.*s/%s", (int)dlen, p, name)
                     : snprintf(out, outlen, "./%s", name); /* empty entry: cwd */
        struct stat st;
        if (w > 0 && (size_t)w < outlen && stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(out, X_OK) == 0)
                return 0;
            err = -EACCES;
        }
        if (!colon)
            return err;
        p = colon + 1;
    }
}

/* Child-side fds must not be 0..2 (when the parent runs with those closed), or one dup2 in
 * the file actions would clobber another. */
static int lift_fd(int fd)
{
    if (fd > 2)
        return fd;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int err = nfd < 0 ? -errno : 0;
    close(fd);
    return nfd < 0 ? err : nfd;
}

static int make_pipe(int *ours, int *theirs, bool ours_is_write)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    *ours = ours_is_write ? fds[1] : fds[0];
    int t = lift_fd(ours_is_write ? fds[0] : fds[1]);
    if (t < 0) {
        close(*ours);
        *ours = -1;
        return t;
    }
    *theirs = t;
    /* Our end only: O_NONBLOCK lives on the open file description, which the child does
     * not share (its end is the other description of the pipe). */
    (void)fcntl(*ours, F_SETFL, fcntl(*ours, F_GETFL) | O_NONBLOCK);
    return 0;
}

static int open_pty(int *master, char *slave, size_t n)
{
    int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int err = 0;
    if (grantpt(fd) < 0 || unlockpt(fd) < 0)
        err = -errno;
    else
        err = -ptsname_r(fd, slave, n);
    struct winsize ws = {.ws_row = RT_PROC_PTY_ROWS, .ws_col = RT_PROC_PTY_COLS};
    if (!err && ioctl(fd, TIOCSWINSZ, &ws) < 0)
        err = -errno;
    if (err) {
        close(fd);
        return err;
    }
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    *master = fd;
    return 0;
}

/* Our ends go into p; the child's ends into theirs[0..2] (-1 when unused). */
static int setup_pipes(proc *p, const rt_proc_opts *o, posix_spawn_file_actions_t *fa,
                       int theirs[3])
{
    int err = 0;
    if (o->stdin_pipe) {
        err = make_pipe(&p->in_fd, &theirs[0], true);
        if (!err)
            err = posix_spawn_file_actions_adddup2(fa, theirs[0], 0);
    } else {
        err = posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
    }
    if (!err)
        err = make_pipe(&p->out_fd, &theirs[1], false);
    if (!err)
        err = posix_spawn_file_actions_adddup2(fa, theirs[1], 1);
    if (!err && o->merge_stderr)
        err = posix_spawn_file_actions_adddup2(fa, theirs[1], 2);
    if (!err && !o->merge_stderr) {
        err = make_pipe(&p->err_fd, &theirs[2], false);
        if (!err)
            err = posix_spawn_file_actions_adddup2(fa, theirs[2], 2);
    }
    return err > 0 ? -err : err; /* posix_spawn_* return positive error numbers */
}

static int setup_pty(proc *p, posix_spawn_file_actions_t *fa)
{
    char slave[128];
    int err = open_pty(&p->out_fd, slave, sizeof(slave));
    if (err)
        return err;
    p->in_fd = p->out_fd;
    /* The child is a session leader without a terminal (setsid runs before the file
     * actions), so opening the slave without O_NOCTTY makes it the controlling terminal,
     * with the child's group in the foreground. */
    err = posix_spawn_file_actions_addopen(fa, 0, slave, O_RDWR, 0);
    if (!err)
        err = posix_spawn_file_actions_adddup2(fa, 0, 1);
    if (!err)
        err = posix_spawn_file_actions_adddup2(fa, 0, 2);
    return -err;
}

static int setup_attr(posix_spawnattr_t *at)
{
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    int err = posix_spawnattr_setsigmask(at, &none);
    if (!err) /* ignored signals survive exec: put every one back to its default */
        err = posix_spawnattr_setsigdefault(at, &all);
    if (!err)
        err = posix_spawnattr_setflags(at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                               POSIX_SPAWN_SETSIGDEF);
    return -err;
}

static void close_fd(rt_reactor *r, int *fd)
{
    if (*fd < 0)
        return;
    rt_reactor_del_fd(r, *fd); /* no-op when not watched */
    close(*fd);
    *fd = -1;
}

static void close_ours(proc *p)
{
    rt_reactor *r = p->m->r;
    if (p->pty)
        p->in_fd = -1; /* the same fd as out_fd */
    close_fd(r, &p->in_fd);
    close_fd(r, &p->out_fd);
    close_fd(r, &p->err_fd);
    close_fd(r, &p->hold_fd);
    close_fd(r, &p->pidfd);
    p->in_watched = false;
}

static int watch(proc *p)
{
    rt_reactor *r = p->m->r;
    p->pidfd = pidfd_open(p->pid, 0); /* always close-on-exec */
    if (p->pidfd < 0)
        return -errno;
    int err = rt_reactor_add_fd(r, p->pidfd, EPOLLIN, on_fd, p);
    if (!err)
        err = rt_reactor_add_fd(r, p->out_fd, EPOLLIN, on_fd, p);
    if (!err && p->err_fd >= 0)
        err = rt_reactor_add_fd(r, p->err_fd, EPOLLIN, on_fd, p);
    return err;
}

static int spawn_child(proc *p, spawn_req *q, const char *exe)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int theirs[3] = {-1, -1, -1};
    int err = -posix_spawn_file_actions_init(&fa);
    if (err)
        return err;
    err = -posix_spawnattr_init(&at);
    if (err)
        goto out_fa;
    err = q->o.pty ? setup_pty(p, &fa) : setup_pipes(p, &q->o, &fa, theirs);
    if (!err) /* belt and braces behind O_CLOEXEC: fds other threads opened without it */
        err = -posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    if (!err && q->cwd)
        err = -posix_spawn_file_actions_addchdir_np(&fa, q->cwd);
    if (!err)
        err = setup_attr(&at);
    if (!err) {
        char **env = q->env ? q->env : environ;
        err = -posix_spawn(&p->pid, exe, &fa, &at, q->argv, env);
        if (err)
            p->pid = 0;
    }
    for (int i = 0; i < 3; i++)
        if (theirs[i] >= 0)
            close(theirs[i]);
    posix_spawnattr_destroy(&at);
out_fa:
    posix_spawn_file_actions_destroy(&fa);
    return err;
}

static int start(proc *p, spawn_req *q)
{
    char exe[PATH_MAX];
    int err = resolve_exe(q->argv[0], path_of(q->env), exe, sizeof(exe));
    if (!err)
        err = spawn_child(p, q, exe);
    if (err) {
        close_ours(p);
        return err;
    }
    p->t0_ns = rt_reactor_now_ns();
    err = watch(p);
    if (err) {
        RT_WARN("proc", "cannot watch child pid=%d: %s", (int)p->pid, rt_strerror(err));
        (void)kill(-p->pid, SIGKILL);
        while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        p->pid = 0;
        close_ours(p);
        return err;
    }
    if (q->o.timeout_ms > 0)
        p->t_timeout = rt_reactor_timer(p->m->r, q->o.timeout_ms, on_timeout, p);
    return 0;
}

/* ------------------------------------------------------------------ stdin */

static void wq_drop(proc *p)
{
    size_t n = 0;
    while (p->wq) {
        wchunk *c = p->wq;
        p->wq = c->next;
        if (c->counted)
            n += c->len - c->off;
        rt_free(c);
    }
    p->wq_tail = &p->wq;
    gate_release(p->id, n, true);
}

/* No more stdin: the child closed its end, or we closed ours. */
static void stdin_done(proc *p)
{
    wq_drop(p);
    if (p->in_fd < 0)
        return;
    if (p->pty) {
        if (p->in_watched)
            (void)rt_reactor_mod_fd(p->m->r, p->out_fd, EPOLLIN);
        p->in_fd = -1; /* the master stays open for output */
    } else {
        close_fd(p->m->r, &p->in_fd);
    }
    p->in_watched = false;
}

static void want_writable(proc *p, bool on)
{
    if (on == p->in_watched)
        return;
    rt_reactor *r = p->m->r;
    int err = 0;
    if (p->pty)
        err = rt_reactor_mod_fd(r, p->in_fd, EPOLLIN | (on ? EPOLLOUT : 0));
    else if (on)
        err = rt_reactor_add_fd(r, p->in_fd, EPOLLOUT, on_fd, p);
    else
        rt_reactor_del_fd(r, p->in_fd);
    if (err) {
        RT_WARN("proc", "stdin watch failed pid=%d: %s", (int)p->pid, rt_strerror(err));
        stdin_done(p);
        return;
    }
    p->in_watched = on;
}

/* A write to a pipe whose reader is gone raises SIGPIPE on this thread, where it is
 * blocked (rt_proc_init); take it back so it does not stay pending. */
static void consume_sigpipe(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    struct timespec zero = {0, 0};
    (void)sigtimedwait(&s, NULL, &zero); /* EAGAIN: none pending (it was ignored) */
}

static void flush_stdin(proc *p)
{
    size_t done = 0;
    while (p->wq && p->in_fd >= 0) {
        wchunk *c = p->wq;
        ssize_t n = write(p->in_fd, c->data + c->off, c->len - c->off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            want_writable(p, true);
            break;
        }
        if (n < 0) { /* EPIPE (pipe) or EIO (pty): the child will not read any more */
            if (errno == EPIPE)
                consume_sigpipe();
            gate_release(p->id, done, false);
            stdin_done(p);
            return;
        }
        c->off += (size_t)n;
        if (c->counted)
            done += (size_t)n;
        if (c->off == c->len) {
            p->wq = c->next;
            if (!p->wq)
                p->wq_tail = &p->wq;
            rt_free(c);
        }
    }
    gate_release(p->id, done, false);
    if (!p->wq && p->in_fd >= 0) {
        want_writable(p, false);
        if (p->close_pending)
            stdin_done(p);
    }
}

static void wq_push(proc *p, wchunk *c)
{
    c->next = NULL;
    *p->wq_tail = c;
    p->wq_tail = &c->next;
    if (!p->in_watched)
        flush_stdin(p);
}

/* ------------------------------------------------------------------ output and exit */

static void close_out(proc *p, int s)
{
    if (s == 2) {
        close_fd(p->m->r, &p->err_fd);
        return;
    }
    if (p->pty && p->out_fd >= 0) { /* the master carries stdin too */
        wq_drop(p);
        p->in_fd = -1;
        p->in_watched = false;
        /* Closing the master hangs the terminal up: SIGHUP to the session. At EOF the
         * leader may still be between closing its terminal fds and exit() (GNU cat closes
         * them itself), so keep the master open, unwatched, until the end. */
        rt_reactor_del_fd(p->m->r, p->out_fd);
        p->hold_fd = p->out_fd;
        p->out_fd = -1;
        return;
    }
    close_fd(p->m->r, &p->out_fd);
}

/* Read what stream s has, at most `reads` chunks. EOF (or EIO, a pty whose slave side
 * closed) closes the stream. */
static void read_stream(proc *p, int s, int reads)
{
    char *buf = p->m->scratch;
    for (int i = 0; i < reads; i++) {
        int fd = s == 1 ? p->out_fd : p->err_fd;
        if (fd < 0)
            return;
        ssize_t n = read(fd, buf, RT_PROC_CHUNK);
        if (n > 0) {
            deliver(p, s, buf, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return; /* EINTR: level-triggered, the next round reads on */
        if (n < 0 && errno != EIO)
            RT_WARN("proc", "read failed pid=%d stream=%d: %s", (int)p->pid, s,
                    rt_strerror(-errno));
        close_out(p, s);
        return;
    }
}

static void record_status(proc *p, const siginfo_t *si)
{
    if (si->si_code == CLD_EXITED) {
        p->exit_code = si->si_status;
        p->term_signal = 0;
    } else {
        p->exit_code = -1;
        p->term_signal = si->si_status;
    }
}

static void on_drain_timeout(rt_reactor *r, void *arg)
{
    proc *p = arg;
    p->t_drain = 0;
    /* A background job still holds the pipes: take what is there and let go. */
    read_stream(p, 1, READS_PER_WAKE);
    read_stream(p, 2, READS_PER_WAKE);
    close_out(p, 1);
    close_out(p, 2);
    finalize(p);
}

/* After the leader's exit, pipes still open mean a job of its session holds them: read on
 * for RT_PROC_DRAIN_MS. Not while SIGTERM's grace runs (K_TERM): those jobs get the whole
 * grace, and the escalation arms the drain after its SIGKILL. */
static void arm_drain(proc *p)
{
    if (p->exited && (p->out_fd >= 0 || p->err_fd >= 0) && p->kill_state != K_TERM && !p->t_drain)
        p->t_drain = rt_reactor_timer(p->m->r, RT_PROC_DRAIN_MS, on_drain_timeout, p);
}

/* The pidfd fired: collect the status but keep the zombie (WNOWAIT), see the top. */
static void on_leader_exit(proc *p)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
        /* ECHILD: someone else reaped our child (wait(-1) or SIGCHLD ignored elsewhere). */
        RT_WARN("proc", "child pid=%d reaped behind our back: %s", (int)p->pid,
                rt_strerror(-errno));
        p->reaped = true;
        p->exit_code = -1;
    } else if (si.si_pid == 0) {
        return; /* not yet */
    } else {
        record_status(p, &si);
    }
    p->exited = true;
    close_fd(p->m->r, &p->pidfd);
    arm_drain(p);
}

static void maybe_finalize(proc *p)
{
    if (p->exited && p->out_fd < 0 && p->err_fd < 0)
        finalize(p);
}

static void on_fd(rt_reactor *r, int fd, uint32_t events, void *arg)
{
    proc *p = arg;
    if (fd == p->pidfd) {
        on_leader_exit(p);
        maybe_finalize(p);
        return;
    }
    if (fd == p->in_fd && p->in_watched && (events & (EPOLLOUT | EPOLLERR)))
        flush_stdin(p);
    if (fd == p->out_fd && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        read_stream(p, 1, READS_PER_WAKE);
    else if (fd == p->err_fd && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        read_stream(p, 2, READS_PER_WAKE);
    maybe_finalize(p); /* last: may free p */
}

static void cancel_timer(rt_reactor *r, uint64_t *t)
{
    if (*t)
        (void)rt_reactor_timer_cancel(r, *t);
    *t = 0;
}

static void reap(proc *p, bool block)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    int flags = WEXITED | (block ? 0 : WNOHANG);
    int rc;
    while ((rc = waitid(P_PID, (id_t)p->pid, &si, flags)) < 0 && errno == EINTR)
        ;
    if (rc == 0 && si.si_pid != 0) {
        if (!p->exited)
            record_status(p, &si);
        p->exited = true;
        p->reaped = true;
    } else if (rc < 0) {
        p->reaped = true; /* ECHILD: nothing left to reap */
    } else {
        RT_WARN("proc", "child pid=%d did not die; left unreaped", (int)p->pid);
    }
}

/* Every path ends here exactly once; p is freed. */
static void finalize(proc *p)
{
    procmod *m = p->m;
    rt_reactor *r = m->r;
    /* An interrupted command ends with its leader: kill what remains of its session
     * while the zombie still pins the ids. */
    if (p->pid > 0 && p->kill_state != K_NONE && !p->swept && !p->reaped)
        signal_proc(p, SIGKILL, 0);
    cancel_timer(r, &p->t_timeout);
    cancel_timer(r, &p->t_escalate);
    cancel_timer(r, &p->t_drain);
    wq_drop(p);
    close_ours(p);
    if (p->pid > 0 && !p->reaped)
        reap(p, p->exited);
    gate_del(p->id);
    rt_map_del(&m->procs, p->id);
    send_exit(rt_reactor_ctx(r), p->reply_to, p->id, p->tag, p->err, p);
    RT_DEBUG("proc", "end id=%llu pid=%d err=%d code=%d sig=%d", (unsigned long long)p->id,
             (int)p->pid, p->err, p->exit_code, p->term_signal);
    rt_busy_leave(m->rt); /* after the EXIT: quiescence waits for it */
    rt_free(p);
}

/* ------------------------------------------------------------------ interrupt and kill */

static void on_escalate(rt_reactor *r, void *arg)
{
    proc *p = arg;
    p->t_escalate = 0;
    p->kill_state = K_KILL;
    signal_proc(p, SIGKILL, 0);
    arm_drain(p);
}

static void start_term(proc *p)
{
    if (p->kill_state != K_NONE)
        return;
    p->kill_state = K_TERM;
    cancel_timer(p->m->r, &p->t_drain); /* the grace below replaces it */
    /* SIGCONT after SIGTERM, so a stopped job wakes up to handle it (systemd does this). */
    signal_proc(p, SIGTERM, SIGCONT);
    p->t_escalate = rt_reactor_timer(p->m->r, RT_PROC_KILL_GRACE_MS, on_escalate, p);
}

static void on_timeout(rt_reactor *r, void *arg)
{
    proc *p = arg;
    p->t_timeout = 0;
    p->timed_out = true;
    start_term(p);
}

static void kill_now(proc *p)
{
    cancel_timer(p->m->r, &p->t_escalate);
    if (p->kill_state == K_KILL)
        return;
    p->kill_state = K_KILL;
    signal_proc(p, SIGKILL, 0);
    arm_drain(p);
}

/* ------------------------------------------------------------------ reactor-side requests */

static void refuse(rt_reactor *r, spawn_req *q, int err)
{
    send_exit(rt_reactor_ctx(r), q->o.reply_to, q->id, q->o.tag, err, NULL);
    gate_del(q->id);
    rt_busy_leave(rt_reactor_runtime(r));
    req_free(q);
}

/* Writes to a child's closed stdin must fail with EPIPE, not kill the process: block
 * SIGPIPE on the reactor thread, the only one writing to children. (A spawn from another
 * thread may overtake rt_proc_init's call, hence the flag rather than init alone.) */
static void block_sigpipe(procmod *m)
{
    if (m->sigpipe_blocked)
        return;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    m->sigpipe_blocked = true;
}

static void spawn_on_reactor(rt_reactor *r, void *arg)
{
    spawn_req *q = arg;
    procmod *m = mod_find(r);
    if (!m || rt_reactor_stopping(r)) {
        refuse(r, q, rt_reactor_stopping(r) ? -ECANCELED : -ENOTCONN);
        return;
    }
    block_sigpipe(m);
    proc *p = rt_xcalloc(1, sizeof(*p));
    p->m = m;
    p->id = q->id;
    p->tag = q->o.tag;
    p->reply_to = q->o.reply_to;
    p->pidfd = p->in_fd = p->out_fd = p->err_fd = p->hold_fd = -1;
    p->pty = q->o.pty;
    p->exit_code = -1;
    p->max_out = q->o.max_output ? q->o.max_output : RT_PROC_MAX_OUTPUT_DEFAULT;
    p->wq_tail = &p->wq;
    rt_map_put(&m->procs, p->id, p);
    p->err = start(p, q);
    if (p->err) {
        RT_DEBUG("proc", "spawn failed id=%llu: %s", (unsigned long long)p->id,
                 rt_strerror(p->err));
        req_free(q);
        finalize(p);
        return;
    }
    RT_DEBUG("proc", "started id=%llu pid=%d exe=%s", (unsigned long long)p->id, (int)p->pid,
             q->argv[0]);
    req_free(q);
}

static void write_on_reactor(rt_reactor *r, void *arg)
{
    wchunk *c = arg;
    procmod *m = mod_find(r);
    proc *p = m ? rt_map_get(&m->procs, c->id) : NULL;
    if (!p || p->in_fd < 0 || p->close_pending) {
        gate_release(c->id, c->len, false); /* no-op when the process is gone */
        rt_free(c);
        return;
    }
    wq_push(p, c);
}

static void id_on_reactor(rt_reactor *r, void *arg)
{
    id_req *q = arg;
    procmod *m = mod_find(r);
    proc *p = m ? rt_map_get(&m->procs, q->id) : NULL;
    int op = q->op;
    rt_free(q);
    if (!p)
        return;
    switch (op) {
    case OP_CLOSE_STDIN:
        if (p->in_fd < 0 || p->close_pending)
            break;
        p->close_pending = true;
        if (p->pty) { /* a terminal has no half-close: send its EOF character */
            wchunk *c = rt_xcalloc(1, sizeof(*c) + 1);
            c->id = p->id;
            c->len = 1;
            c->data[0] = 4; /* VEOF, ^D */
            c->next = NULL;
            *p->wq_tail = c;
            p->wq_tail = &c->next;
            if (!p->in_watched)
                flush_stdin(p);
        } else if (!p->wq) {
            stdin_done(p);
        }
        break;
    case OP_INTERRUPT:
        p->interrupted = true;
        start_term(p);
        break;
    case OP_KILL:
        p->interrupted = true;
        kill_now(p);
        break;
    default: RT_WARN_ONCE("proc", "unknown request %d", op); break;
    }
}

/* ------------------------------------------------------------------ stop hook and init */

/* The reactor is stopping: kill every session, wait (bounded) for the children, report. */
static void on_reactor_stop(rt_reactor *r, void *arg)
{
    procmod *m = arg;
    mod_remove(m); /* requests from now on are refused with -ECANCELED */
    size_t n = 0, nsids = 0;
    proc **ps = rt_xcalloc(m->procs.n + 1, sizeof(*ps));
    pid_t *sids = rt_xcalloc(m->procs.n + 1, sizeof(*sids));
    for (size_t i = 0; i < m->procs.cap; i++) {
        if (!m->procs.keys[i])
            continue;
        proc *p = m->procs.vals[i];
        ps[n++] = p;
        if (!p->reaped) /* only a pinned id may be signalled (see the top) */
            sids[nsids++] = p->pid;
        if (!p->exited) {
            p->interrupted = true;
            p->err = -ECANCELED;
        }
        p->swept = true;
    }
    signal_sessions(sids, nsids, SIGKILL, 0);
    int64_t deadline = rt_reactor_now_ns() + (int64_t)STOP_WAIT_MS * 1000000;
    for (size_t i = 0; i < n; i++) {
        proc *p = ps[i];
        if (!p->exited && p->pidfd >= 0) {
            int64_t left_ms = (deadline - rt_reactor_now_ns()) / 1000000;
            struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
            if (left_ms > 0)
                (void)poll(&pf, 1, (int)left_ms); /* timeout: reaped without blocking below */
        }
        /* Everyone in the session is dead or dying: what they wrote is in the pipes. */
        read_stream(p, 1, READS_PER_WAKE * 4);
        read_stream(p, 2, READS_PER_WAKE * 4);
        finalize(p);
    }
    rt_free(sids);
    rt_free(ps);
    rt_map_fini(&m->procs);
    rt_free(m->scratch);
    rt_free(m);
}

static void init_on_reactor(rt_reactor *r, void *arg)
{
    procmod *m = arg;
    if (rt_reactor_stopping(r)) { /* attached too late: nothing can have started */
        mod_remove(m);
        rt_map_fini(&m->procs);
        rt_free(m->scratch);
        rt_free(m);
        return;
    }
    block_sigpipe(m);
    rt_reactor_on_stop(r, on_reactor_stop, m);
}

int rt_proc_init(rt_reactor *r)
{
    if (!r)
        return -EINVAL;
    pthread_mutex_lock(&g_lock);
    if (mod_find_locked(r)) {
        pthread_mutex_unlock(&g_lock);
        return -EEXIST;
    }
    procmod *m = rt_xcalloc(1, sizeof(*m));
    m->r = r;
    m->rt = rt_reactor_runtime(r);
    rt_map_init(&m->procs);
    m->scratch = rt_xmalloc(RT_PROC_CHUNK);
    m->next = g_mods;
    g_mods = m;
    pthread_mutex_unlock(&g_lock);
    rt_reactor_call(r, init_on_reactor, m);
    return 0;
}

/* ------------------------------------------------------------------ any-thread API */

uint64_t rt_proc_spawn(rt_ctx *cx, const rt_proc_opts *o)
{
    if (!cx || !o || !o->argv || !o->argv[0] || !o->reply_to)
        return 0;
    /* relaxed: ids only need to be unique */
    uint64_t id = atomic_fetch_add_explicit(&g_next_id, 1, memory_order_relaxed) + 1;
    rt_runtime *rt = rt_ctx_runtime(cx);
    rt_reactor *r = rt_reactor_of(rt);
    if (!r) {
        send_exit(cx, o->reply_to, id, o->tag, -ENOTCONN, NULL);
        return id;
    }
    spawn_req *q = rt_xcalloc(1, sizeof(*q));
    q->id = id;
    q->o = *o;
    q->argv = strv_dup(o->argv);
    q->env = strv_dup(o->env);
    q->cwd = rt_xstrdup(o->cwd);
    q->o.argv = (const char *const *)q->argv;
    q->o.env = (const char *const *)q->env;
    q->o.cwd = q->cwd;
    gate_add(id, o->stdin_pipe || o->pty);
    rt_busy_enter(rt);
    rt_reactor_call(r, spawn_on_reactor, q);
    return id;
}

int rt_proc_write(rt_ctx *cx, uint64_t id, const void *data, size_t len)
{
    if (!cx || id == 0 || (!data && len))
        return -EINVAL;
    if (len > RT_PROC_STDIN_MAX)
        return -E2BIG;
    rt_reactor *r = rt_reactor_of(rt_ctx_runtime(cx));
    if (!r)
        return -ESRCH;
    int err = gate_reserve(id, len);
    if (err || len == 0)
        return err;
    wchunk *c = rt_xmalloc(sizeof(*c) + len);
    c->next = NULL;
    c->id = id;
    c->len = len;
    c->off = 0;
    c->counted = true;
    memcpy(c->data, data, len);
    rt_reactor_call(r, write_on_reactor, c);
    return 0;
}

static void id_call(rt_ctx *cx, uint64_t id, int op)
{
    rt_reactor *r = cx && id ? rt_reactor_of(rt_ctx_runtime(cx)) : NULL;
    if (!r)
        return;
    id_req *q = rt_xmalloc(sizeof(*q));
    q->id = id;
    q->op = op;
    rt_reactor_call(r, id_on_reactor, q);
}

void rt_proc_close_stdin(rt_ctx *cx, uint64_t id)
{
    if (id)
        gate_release(id, 0, true); /* later writes fail with -EPIPE at once */
    id_call(cx, id, OP_CLOSE_STDIN);
}

void rt_proc_interrupt(rt_ctx *cx, uint64_t id)
{
    id_call(cx, id, OP_INTERRUPT);
}

void rt_proc_kill(rt_ctx *cx, uint64_t id)
{
    id_call(cx, id, OP_KILL);
}

const char *const *rt_proc_shell_argv(const char *out[4], const char *cmd, unsigned flags)
{
    static const char *const opt[4] = {"-c", "-lc", "-ic", "-lic"};
    static const char *const fallback[] = {"/bin/bash", "/usr/bin/bash", "/bin/sh"};
    const char *sh = getenv("SHELL");
    for (size_t i = 0; !sh || sh[0] != '/' || access(sh, X_OK) != 0; i++)
        sh = fallback[i]; /* /bin/sh is always there (POSIX) */
    out[0] = sh;
    out[1] = opt[flags & 3u];
    out[2] = cmd;
    out[3] = NULL;
    return out;
}
