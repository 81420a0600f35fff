/*
 * ft_proc — see ft_proc.h.
 */
#include "ft_proc.h"

#include "rt_alloc.h"
#include "rt_buf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct ft_proc {
    pid_t pid;
    int pidfd;   /* -1 once the exit was seen */
    int out_fd;  /* -1 at end of file */
    int err_fd;  /* -1 at end of file or when merged */
    bool exited; /* the pidfd fired */
    bool reaped;
    bool stopped;              /* the sink asked to stop */
    struct timespec exited_at; /* when the pidfd fired */
    int status;
    ft_proc_sink sink;
    void *arg;
    rt_buf err; /* kept stderr */
};

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static int spawn_child(ft_proc *p, const char *const *argv, const char *cwd, int out_w, int err_w)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int err = posix_spawn_file_actions_init(&fa);
    if (err)
        return -err;
    err = posix_spawnattr_init(&at);
    if (err) {
        posix_spawn_file_actions_destroy(&fa);
        return -err;
    }
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    err = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (!err)
        err = posix_spawn_file_actions_adddup2(&fa, out_w, 1);
    if (!err)
        err = posix_spawn_file_actions_adddup2(&fa, err_w, 2);
    if (!err)
        err = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    if (!err && cwd)
        err = posix_spawn_file_actions_addchdir_np(&fa, cwd);
    if (!err)
        err = posix_spawnattr_setsigmask(&at, &none);
    if (!err)
        err = posix_spawnattr_setsigdefault(&at, &all);
    if (!err)
        err = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF);
    if (!err)
        err = posix_spawnp(&p->pid, argv[0], &fa, &at, (char *const *)argv, environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return -err;
}

ft_proc *ft_proc_start(const char *const *argv, const char *cwd, bool merge_stderr, size_t err_max,
                       ft_proc_sink sink, void *arg, int *err)
{
    int out[2] = {-1, -1}, er[2] = {-1, -1};
    *err = 0;
    if (pipe2(out, O_CLOEXEC) != 0 || (!merge_stderr && pipe2(er, O_CLOEXEC) != 0)) {
        *err = -errno;
        close_fd(&out[0]);
        close_fd(&out[1]);
        return NULL;
    }
    ft_proc *p = rt_xcalloc(1, sizeof(*p));
    p->pidfd = -1;
    p->sink = sink;
    p->arg = arg;
    rt_buf_init(&p->err, err_max);
    *err = spawn_child(p, argv, cwd, out[1], merge_stderr ? out[1] : er[1]);
    close_fd(&out[1]);
    close_fd(&er[1]);
    p->out_fd = out[0];
    p->err_fd = er[0];
    if (*err) {
        p->reaped = true; /* nothing was started */
        ft_proc_free(p, NULL);
        return NULL;
    }
    p->pidfd = pidfd_open(p->pid, 0);
    return p;
}

static bool drain(ft_proc *p, int *fd, bool is_err)
{
    char buf[65536];
    ssize_t r = read(*fd, buf, sizeof(buf));
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (r <= 0) {
        close_fd(fd);
        return true;
    }
    if (is_err) {
        size_t room = p->err.max - p->err.len;
        (void)rt_buf_append(&p->err, buf, (size_t)r < room ? (size_t)r : room);
        return true;
    }
    return p->sink ? p->sink(p->arg, buf, (size_t)r) : true;
}

int ft_proc_pump(ft_proc *p, int timeout_ms)
{
    if (p->stopped || (p->out_fd < 0 && p->err_fd < 0 && (p->exited || p->pidfd < 0)))
        return 1;
    struct pollfd fds[3];
    int n = 0, iout = -1, ierr = -1, ipid = -1;
    if (p->out_fd >= 0)
        iout = n, fds[n++] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
    if (p->err_fd >= 0)
        ierr = n, fds[n++] = (struct pollfd){.fd = p->err_fd, .events = POLLIN};
    if (p->pidfd >= 0 && !p->exited)
        ipid = n, fds[n++] = (struct pollfd){.fd = p->pidfd, .events = POLLIN};
    int r = poll(fds, (nfds_t)n, timeout_ms);
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    if (iout >= 0 && fds[iout].revents) {
        if (!drain(p, &p->out_fd, false)) {
            p->stopped = true;
            return 1;
        }
    }
    if (ierr >= 0 && fds[ierr].revents)
        (void)drain(p, &p->err_fd, true);
    if (ipid >= 0 && fds[ipid].revents) {
        p->exited = true;
        clock_gettime(CLOCK_MONOTONIC, &p->exited_at);
    }
    /* Done once both pipes reached end of file, or FT_PROC_DRAIN_MS after the exit if a
     * background job of the child still holds them (it is killed with the group when the
     * caller frees us). */
    if (p->out_fd < 0 && p->err_fd < 0)
        return 1;
    if (p->exited) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t ms = (now.tv_sec - p->exited_at.tv_sec) * 1000 +
                     (now.tv_nsec - p->exited_at.tv_nsec) / 1000000;
        if (ms >= FT_PROC_DRAIN_MS)
            return 1;
    }
    return 0;
}

void ft_proc_kill(ft_proc *p)
{
    if (!p->reaped && p->pid > 0)
        (void)kill(-p->pid, SIGKILL); /* the session leader's pid is the group id */
}

const char *ft_proc_stderr(const ft_proc *p)
{
    return rt_buf_cstr(&p->err);
}

void ft_proc_free(ft_proc *p, int *status)
{
    if (!p)
        return;
    if (!p->reaped) {
        /* Not reaped yet, so the pid (our group id) cannot have been reused: kill whatever
         * is left of the group, then reap the leader. */
        ft_proc_kill(p);
        int st = 0;
        pid_t r;
        while ((r = waitpid(p->pid, &st, 0)) < 0 && errno == EINTR)
            ;
        p->status = r == p->pid ? (WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)) : -1;
        p->reaped = true;
    }
    if (status)
        *status = p->status;
    close_fd(&p->pidfd);
    close_fd(&p->out_fd);
    close_fd(&p->err_fd);
    rt_buf_fini(&p->err);
    rt_free(p);
}

bool ft_proc_have(const char *name)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *s = path; *s;) {
        const char *e = strchr(s, ':');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        char *full = n ? rt_xasprintf("%.*s/%s", (int)n, s, name) : rt_xasprintf("./%s", name);
        struct stat st;
        bool ok = stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0;
        rt_free(full);
        if (ok)
            return true;
        s += n + (e ? 1 : 0);
        if (!e)
            break;
    }
    return false;
}
