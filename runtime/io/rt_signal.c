/*
 * rt_signal — see rt_signal.h.
 *
 * The signalfd is created on the controlling thread (so errors come back at once) and
 * handed to the reactor with rt_reactor_call; from then on it belongs to the reactor
 * thread, which closes it in its stop hook and releases the one-watch-per-process flag.
 */
#include "rt_signal.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define READS_PER_WAKE 16

static const int watched[] = {SIGINT, SIGTERM, SIGHUP};

/* One watch per process; set by rt_signal_watch, cleared when its reactor lets go. */
static _Atomic bool g_watching;

typedef struct sigwatch {
    int fd;
    rt_ref root;
} sigwatch;

static void watched_set(sigset_t *s)
{
    sigemptyset(s);
    for (size_t i = 0; i < RT_ARRAY_LEN(watched); i++)
        sigaddset(s, watched[i]);
}

int rt_signals_block(void)
{
    sigset_t s;
    watched_set(&s);
    int err = pthread_sigmask(SIG_BLOCK, &s, NULL);
    if (err)
        return -err;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGPIPE, &sa, NULL) < 0 ? -errno : 0;
}

/* glibc's internal signals (SIGCANCEL 32, SIGSETXID 33): no public call can block them, so
 * a thread blocking them is inside pthread_create's start-up (or posix_spawn), with a mask
 * it is about to replace. */
#define GLIBC_INTERNAL_BITS (3ULL << 31)
#define SETTLE_TRIES        500 /* x 2 ms: how long to wait for threads still starting */

enum { TH_UNBLOCKED, TH_BLOCKED, TH_STARTING };

/* What the thread whose status file is at path does with the watched signals; -errno if
 * the file cannot be read (the thread may just have ended). */
static int thread_mask_state(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    char line[256];
    int rc = -EPROTO;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "SigBlk:", 7) != 0)
            continue;
        char *end = NULL;
        errno = 0;
        unsigned long long mask = strtoull(line + 7, &end, 16);
        if (errno || end == line + 7)
            break;
        rc = TH_BLOCKED;
        for (size_t i = 0; i < RT_ARRAY_LEN(watched); i++)
            if (!(mask & (1ULL << (watched[i] - 1))))
                rc = TH_UNBLOCKED;
        if ((mask & GLIBC_INTERNAL_BITS) == GLIBC_INTERNAL_BITS)
            rc = TH_STARTING;
        break;
    }
    fclose(f);
    return rc;
}

/* One pass over the threads: TH_UNBLOCKED if one does not block, TH_STARTING if one is
 * still starting, else TH_BLOCKED; -errno if the task list cannot be read. */
static int scan_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -errno;
    int state = TH_BLOCKED;
    struct dirent *e;
    while (state != TH_UNBLOCKED && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[sizeof("/proc/self/task//status") + sizeof(e->d_name)];
        snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
        int st = thread_mask_state(path);
        if (st == TH_UNBLOCKED)
            RT_ERROR("signal", "thread %s does not block SIGINT/SIGTERM/SIGHUP", e->d_name);
        if (st == TH_UNBLOCKED || st == TH_STARTING)
            state = st;
    }
    closedir(d);
    return state;
}

/* Every thread of the process blocks the watched signals (invariant 1). Threads caught in
 * their start-up are looked at again once they run (bounded wait). Falls back to the
 * calling thread's mask when /proc cannot be read. */
static bool all_threads_block(void)
{
    for (int i = 0; i < SETTLE_TRIES; i++) {
        int st = scan_threads();
        if (st == TH_BLOCKED)
            return true;
        if (st == TH_UNBLOCKED)
            return false;
        if (st < 0)
            break;
        struct timespec ts = {0, 2000000}; /* controlling thread at start-up: may wait */
        nanosleep(&ts, NULL);
    }
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    for (size_t i = 0; i < RT_ARRAY_LEN(watched); i++)
        if (!sigismember(&cur, watched[i]))
            return false;
    return true;
}

static void release(sigwatch *w)
{
    close(w->fd);
    rt_free(w);
    /* release: a later rt_signal_watch sees the fd closed before it takes the flag. */
    atomic_store_explicit(&g_watching, false, memory_order_release);
}

static void on_signal(rt_reactor *r, int fd, uint32_t events, void *arg)
{
    sigwatch *w = arg;
    for (int i = 0; i < READS_PER_WAKE; i++) {
        struct signalfd_siginfo si;
        ssize_t n = read(fd, &si, sizeof(si));
        if (n != (ssize_t)sizeof(si))
            return; /* EAGAIN: all read (a signalfd never returns a partial record) */
        int signo = (int)si.ssi_signo;
        RT_INFO("signal", "received signo=%d sender=%u", signo, si.ssi_pid);
        rt_signal_msg *m = RT_MSG_NEW(rt_signal_msg, signo == SIGHUP ? RT_SIGNAL_MSG_RELOAD
                                                                     : RT_SIGNAL_MSG_SHUTDOWN);
        m->signo = signo;
        m->sender = (int)si.ssi_pid;
        bool ok = signo == SIGHUP ? rt_send(rt_reactor_ctx(r), w->root, &m->hdr)
                                  : rt_send_urgent(rt_reactor_ctx(r), w->root, &m->hdr);
        if (!ok)
            RT_WARN("signal", "signo=%d: the root actor has ended; signal dropped", signo);
    }
}

static void on_stop(rt_reactor *r, void *arg)
{
    sigwatch *w = arg;
    rt_reactor_del_fd(r, w->fd);
    release(w);
}

static void watch_on_reactor(rt_reactor *r, void *arg)
{
    sigwatch *w = arg;
    if (rt_reactor_stopping(r)) {
        release(w);
        return;
    }
    int err = rt_reactor_add_fd(r, w->fd, EPOLLIN, on_signal, w);
    if (err) {
        RT_ERROR("signal", "cannot watch the signalfd: %s", rt_strerror(err));
        release(w);
        return;
    }
    rt_reactor_on_stop(r, on_stop, w);
}

int rt_signal_watch(rt_reactor *r, rt_ref root)
{
    if (!r || !root)
        return -EINVAL;
    if (!all_threads_block()) {
        RT_ERROR("signal", "signals not blocked everywhere: call rt_signals_block() in main() "
                           "before any thread starts");
        return -EINVAL;
    }
    bool expected = false;
    /* acquire: pairs with the release in release(). */
    if (!atomic_compare_exchange_strong_explicit(&g_watching, &expected, true, memory_order_acquire,
                                                 memory_order_relaxed))
        return -EBUSY;
    sigset_t s;
    watched_set(&s);
    int fd = signalfd(-1, &s, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) {
        int err = -errno;
        atomic_store_explicit(&g_watching, false, memory_order_relaxed);
        return err;
    }
    sigwatch *w = rt_xmalloc(sizeof(*w));
    w->fd = fd;
    w->root = root;
    rt_reactor_call(r, watch_on_reactor, w);
    return 0;
}
