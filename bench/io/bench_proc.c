/*
 * bench_proc — subprocess spawn rate through rt_proc.
 *
 * An actor keeps K children of /bin/true in flight and starts the next one on each EXIT
 * until N have ended (stdout and stderr are pipes, each child gets its own session, a
 * pidfd and an EXIT message). Side by side, in the same run, the baseline: bare
 * posix_spawn + waitpid from one thread, K in flight, output to /dev/null — what libc and
 * the kernel cost without us.
 *
 * Usage: bench_proc [N [K]]   (defaults 2000 and 8)
 * Prints: RESULT bench=proc_spawn impl=hermes n=... inflight=... time_ms=... procs_per_s=...
 *         baseline_per_s=... ratio=... peak_rss_kb=...
 */
#include "rt_proc.h"
#include "rt_sched.h"

#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_S 120
#define EXE       "/bin/true"

enum { BP_GO = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 0x300) };

typedef struct bp_state {
    int n;        /* processes to run */
    int k;        /* in flight */
    int started;  /* spawned so far */
    int done;     /* EXITs seen */
    int failures; /* EXITs with err or a non-zero status */
    int64_t t0_ns, t1_ns;
    sem_t *finished; /* posted once when done == n */
} bp_state;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void spawn_one(rt_ctx *cx, bp_state *s)
{
    static const char *const argv[] = {EXE, NULL};
    rt_proc_opts o = {.argv = argv, .reply_to = rt_self(cx), .tag = (uint64_t)s->started};
    s->started++;
    if (rt_proc_spawn(cx, &o) == 0) {
        s->failures++;
        s->done++;
    }
}

static void bp_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    bp_state *s = state;
    if (m->type == BP_GO) {
        s->t0_ns = now_ns();
        while (s->started < s->n && s->started < s->k)
            spawn_one(cx, s);
        return;
    }
    if (m->type != RT_PROC_MSG_EXIT)
        return; /* no output from /bin/true */
    rt_proc_msg_exit *e = (rt_proc_msg_exit *)m;
    if (e->err || e->exit_code != 0)
        s->failures++;
    s->done++;
    if (s->started < s->n)
        spawn_one(cx, s);
    if (s->done == s->n) {
        s->t1_ns = now_ns();
        (void)sem_post(s->finished); /* never blocks; orders our writes before main's reads */
    }
}

static const rt_actor_type bp_type = {.name = "bench_proc", .behave = bp_behave};

/* Bare posix_spawn + waitpid, k in flight: spawns per second. */
static double baseline(int n, int k)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    char *argv[] = {(char *)EXE, NULL};
    int64_t t0 = now_ns();
    int started = 0, running = 0;
    while (started < n || running > 0) {
        while (started < n && running < k) {
            pid_t pid;
            if (posix_spawn(&pid, EXE, &fa, NULL, argv, environ) != 0) {
                perror("bench_proc: posix_spawn");
                exit(1);
            }
            started++;
            running++;
        }
        if (waitpid(-1, NULL, 0) > 0)
            running--;
        else if (errno != EINTR)
            break;
    }
    posix_spawn_file_actions_destroy(&fa);
    return n / ((double)(now_ns() - t0) / 1e9);
}

static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static int arg_int(const char *s, int lo, int hi, const char *what)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || v < lo || v > hi) {
        fprintf(stderr, "bench_proc: %s must be %d..%d\n", what, lo, hi);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? arg_int(argv[1], 1, 10000000, "N") : 2000;
    int k = argc > 2 ? arg_int(argv[2], 1, 4096, "K") : 8;

    rt_options opts = {.workers = 2};
    rt_runtime *rt = rt_runtime_new(&opts);
    rt_reactor *r = rt_reactor_start(rt);
    if (rt_proc_init(r) != 0) {
        fprintf(stderr, "bench_proc: rt_proc_init failed\n");
        return 1;
    }
    sem_t finished;
    sem_init(&finished, 0, 0);
    /* state_size 0: the actor works on this struct; main reads it after the semaphore. */
    bp_state st = {.n = n, .k = k, .finished = &finished};
    rt_ctx *cx = rt_ctx_external(rt);
    rt_ref a = rt_spawn(cx, &bp_type, &st, NULL);
    rt_send(cx, a, rt_msg_new(BP_GO, sizeof(rt_msg)));

    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl); /* sem_timedwait takes a CLOCK_REALTIME deadline */
    dl.tv_sec += TIMEOUT_S;
    while (sem_timedwait(&finished, &dl) != 0) {
        if (errno == EINTR)
            continue;
        printf("RESULT bench=proc_spawn impl=hermes error=timeout_%ds\n", TIMEOUT_S);
        (void)fflush(stdout);
        return 2;
    }
    double secs = (double)(st.t1_ns - st.t0_ns) / 1e9;
    rt_reactor_stop(r);
    rt_runtime_free(rt);
    sem_destroy(&finished);

    double base = baseline(n, k);
    double rate = n / secs;
    printf("RESULT bench=proc_spawn impl=hermes n=%d inflight=%d time_ms=%.1f procs_per_s=%.0f "
           "baseline_per_s=%.0f ratio=%.2f failures=%d peak_rss_kb=%ld\n",
           n, k, secs * 1e3, rate, base, rate / base, st.failures, peak_rss_kb());
    (void)fflush(stdout); /* a lost RESULT line shows up as a failed run */
    return st.failures ? 1 : 0;
}
