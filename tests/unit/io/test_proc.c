/*
 * Subprocesses on the reactor: output and exit as messages, stdin, caps, timeouts and
 * interrupts that leave no process behind, spawn errors, no fd leaks, no zombies, pty mode,
 * and the reactor stopping with children running.
 *
 * A collector actor records what arrives per tag; the test's main thread waits for it with
 * a deadline. Process trees are checked by scanning /proc for their group and session.
 */
#include "rt_proc.h"
#include "rt_alloc.h"
#include "rt_sched.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NREC        64
#define REC_OUT_MAX (512 * 1024)
#define WAIT_MS     20000

/* ------------------------------------------------------------------ the collector */

typedef struct rec {
    char out[2][REC_OUT_MAX]; /* first REC_OUT_MAX bytes per stream */
    _Atomic size_t outlen[2]; /* release: published bytes of out[] */
    uint64_t total[2];        /* bytes received */
    size_t max_chunk;
    uint64_t out_id; /* id of the first OUTPUT (collector only) */
    uint64_t id;     /* rt_proc_spawn's answer (main thread only) */
    int late_output; /* OUTPUT after EXIT: must stay 0 */
    int bad_msgs;    /* wrong id or stream */
    _Atomic int nexit;
    rt_proc_msg_exit exit;
} rec;

static rec recs[NREC];

static void collect(rt_ctx *cx, void *state, rt_msg *m)
{
    rec *all = state;
    if (m->type == RT_PROC_MSG_OUTPUT) {
        rt_proc_msg_output *o = (rt_proc_msg_output *)m;
        rec *r = &all[o->tag];
        if (atomic_load(&r->nexit))
            r->late_output++;
        if (!r->out_id)
            r->out_id = o->id;
        if (o->id != r->out_id || (o->stream != 1 && o->stream != 2) || o->len == 0 ||
            o->data[o->len] != '\0')
            r->bad_msgs++;
        int s = o->stream == 2;
        size_t have = atomic_load_explicit(&r->outlen[s], memory_order_relaxed);
        size_t k = o->len < REC_OUT_MAX - have ? o->len : REC_OUT_MAX - have;
        memcpy(r->out[s] + have, o->data, k);
        r->total[s] += o->len;
        if (o->len > r->max_chunk)
            r->max_chunk = o->len;
        /* release: pairs with the acquire in out_has() */
        atomic_store_explicit(&r->outlen[s], have + k, memory_order_release);
    } else if (m->type == RT_PROC_MSG_EXIT) {
        rt_proc_msg_exit *e = (rt_proc_msg_exit *)m;
        rec *r = &all[e->tag];
        if (r->out_id && e->id != r->out_id)
            r->bad_msgs++;
        r->exit = *e;
        /* release: pairs with the acquire in wait_exit() */
        atomic_fetch_add_explicit(&r->nexit, 1, memory_order_release);
    }
}

static const rt_actor_type collector = {.name = "collector", .behave = collect};

static rt_runtime *rt;
static rt_reactor *re;
static rt_ref coll;

static rt_ctx *ext(void)
{
    return rt_ctx_external(rt);
}

static void setup(void)
{
    rt_options o = {.workers = 2};
    rt = rt_runtime_new(&o);
    re = rt_reactor_start(rt);
    ASSERT_OK(rt_proc_init(re));
    coll = rt_spawn(ext(), &collector, recs, NULL);
    ASSERT_NE(0, coll);
}

static void teardown(void)
{
    rt_reactor_stop(re);
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    for (int i = 0; i < NREC; i++) {
        ASSERT_LE(atomic_load(&recs[i].nexit), 1); /* never a second EXIT */
        ASSERT_EQ(0, recs[i].late_output);
        ASSERT_EQ(0, recs[i].bad_msgs);
    }
    rt_runtime_free(rt);
}

static int64_t now_ms(void)
{
    return rt_reactor_now_ns() / 1000000;
}

static void pause_briefly(void)
{
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
}

static uint64_t spawn(int tag, rt_proc_opts o)
{
    o.reply_to = coll;
    o.tag = (uint64_t)tag;
    uint64_t id = rt_proc_spawn(ext(), &o);
    ASSERT_NE(0, id);
    recs[tag].id = id;
    return id;
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static rec *wait_exit(int tag)
{
    rec *r = &recs[tag];
    int64_t t0 = now_ms();
    while (atomic_load_explicit(&r->nexit, memory_order_acquire) == 0) {
        if (now_ms() - t0 > WAIT_MS)
            TEST_FAIL_("no EXIT for tag %d after %d ms", tag, WAIT_MS);
        pause_briefly();
    }
    ASSERT_EQ(1, atomic_load(&r->nexit));
    ASSERT_EQ(0, r->late_output);
    ASSERT_EQ(0, r->bad_msgs);
    ASSERT_EQ(r->id, r->exit.id);
    return r;
}

static bool out_has(int tag, int stream, const char *needle)
{
    rec *r = &recs[tag];
    size_t len = atomic_load_explicit(&r->outlen[stream - 1], memory_order_acquire);
    return memmem(r->out[stream - 1], len, needle, strlen(needle)) != NULL;
}

static void wait_out(int tag, int stream, const char *needle)
{
    int64_t t0 = now_ms();
    while (!out_has(tag, stream, needle)) {
        if (now_ms() - t0 > WAIT_MS)
            TEST_FAIL_("tag %d never printed \"%s\"", tag, needle);
        pause_briefly();
    }
}

/* The output of a finished process as a string (NUL-terminated copy in out[]). */
static const char *out_str(int tag, int stream)
{
    rec *r = &recs[tag];
    size_t len = atomic_load(&r->outlen[stream - 1]);
    ASSERT_LT(len, REC_OUT_MAX);
    r->out[stream - 1][len] = '\0';
    return r->out[stream - 1];
}

/* ------------------------------------------------------------------ /proc helpers */

typedef struct pstat {
    pid_t pid, ppid, pgrp, sid;
    char state;
} pstat;

static bool read_pstat(const char *pid, pstat *ps)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%s/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    if (!rp)
        return false;
    ps->pid = (pid_t)strtol(buf, NULL, 10);
    return sscanf(rp + 1, " %c %d %d %d", &ps->state, &ps->ppid, &ps->pgrp, &ps->sid) == 4;
}

typedef enum { BY_PGRP, BY_SID, BY_PID, CHILDREN, ZOMBIE_CHILDREN } match_kind;

/* Processes that match; dead ones (zombies) count only for ZOMBIE_CHILDREN. */
static int count_procs(match_kind k, pid_t v)
{
    DIR *d = opendir("/proc");
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        pstat ps;
        if (e->d_name[0] < '1' || e->d_name[0] > '9' || !read_pstat(e->d_name, &ps))
            continue;
        bool live = ps.state != 'Z' && ps.state != 'X';
        switch (k) {
        case BY_PGRP: n += live && ps.pgrp == v; break;
        case BY_SID: n += live && ps.sid == v; break;
        case BY_PID: n += live && ps.pid == v; break;
        case CHILDREN: n += ps.ppid == getpid(); break;
        case ZOMBIE_CHILDREN: n += ps.ppid == getpid() && ps.state == 'Z'; break;
        }
    }
    closedir(d);
    return n;
}

/* A killed process may take a moment to finish dying; wait for it with a deadline. */
static void wait_gone(match_kind k, pid_t v)
{
    int64_t t0 = now_ms();
    int n;
    while ((n = count_procs(k, v)) != 0) {
        if (now_ms() - t0 > WAIT_MS)
            TEST_FAIL_("%d processes left (kind %d, id %d)", n, (int)k, (int)v);
        pause_briefly();
    }
}

static void wait_count_at_least(match_kind k, pid_t v, int want)
{
    int64_t t0 = now_ms();
    while (count_procs(k, v) < want) {
        if (now_ms() - t0 > WAIT_MS)
            TEST_FAIL_("never saw %d processes (kind %d, id %d)", want, (int)k, (int)v);
        pause_briefly();
    }
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own fd */
}

static pid_t first_pid(int tag)
{
    const char *s = out_str(tag, 1);
    long pid = strtol(s, NULL, 10);
    ASSERT_GT(pid, 1);
    return (pid_t)pid;
}

/* ------------------------------------------------------------------ tests */

TEST(echo_and_exit_codes)
{
    setup();
    uint64_t a = spawn(0, (rt_proc_opts){.argv = ARGV("echo", "hello")});
    uint64_t b = spawn(1, (rt_proc_opts){.argv = ARGV("sh", "-c", "exit 7")});
    spawn(2, (rt_proc_opts){.argv = ARGV("sh", "-c", "kill -KILL $$")});
    ASSERT_NE(a, b);
    rec *r = wait_exit(0);
    ASSERT_STR_EQ("hello\n", out_str(0, 1));
    ASSERT_EQ(0, r->exit.err);
    ASSERT_EQ(0, r->exit.exit_code);
    ASSERT_EQ(0, r->exit.term_signal);
    ASSERT_GT(r->exit.pid, 0);
    ASSERT_FALSE(r->exit.timed_out || r->exit.interrupted);
    ASSERT_EQ(0, r->exit.bytes_dropped[0] + r->exit.bytes_dropped[1]);
    ASSERT_EQ(a, r->exit.id);
    r = wait_exit(1);
    ASSERT_EQ(7, r->exit.exit_code);
    ASSERT_EQ(0, r->exit.term_signal);
    r = wait_exit(2);
    ASSERT_EQ(-1, r->exit.exit_code);
    ASSERT_EQ(SIGKILL, r->exit.term_signal);
    /* A process in flight keeps the runtime busy until its EXIT has been handled. */
    spawn(3, (rt_proc_opts){.argv = ARGV("sh", "-c", "sleep 0.1; echo late")});
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    ASSERT_EQ(1, atomic_load(&recs[3].nexit));
    ASSERT_STR_EQ("late\n", out_str(3, 1));
    teardown();
}

TEST(stdout_and_stderr_are_separate_unless_merged)
{
    setup();
    const char *const *argv = ARGV("sh", "-c", "echo out; echo err >&2; echo out2");
    spawn(0, (rt_proc_opts){.argv = argv});
    spawn(1, (rt_proc_opts){.argv = argv, .merge_stderr = true});
    wait_exit(0);
    ASSERT_STR_EQ("out\nout2\n", out_str(0, 1));
    ASSERT_STR_EQ("err\n", out_str(0, 2));
    wait_exit(1);
    ASSERT_STR_EQ("out\nerr\nout2\n", out_str(1, 1));
    ASSERT_EQ(0, recs[1].total[1]);
    teardown();
}

TEST(env_and_cwd_are_honoured)
{
    setup();
    char tmpl[] = "/tmp/rt_proc_cwd_XXXXXX";
    ASSERT_NOT_NULL(mkdtemp(tmpl));
    char real[PATH_MAX];
    ASSERT_NOT_NULL(realpath(tmpl, real));
    /* The environment is replaced, not merged, and its PATH finds the program. */
    spawn(0, (rt_proc_opts){.argv = ARGV("env"), .env = ARGV("FOO=bar baz", "PATH=/usr/bin:/bin")});
    spawn(1, (rt_proc_opts){.argv = ARGV("pwd", "-P"), .cwd = tmpl});
    spawn(2,
          (rt_proc_opts){.argv = ARGV("sh", "-c", "echo $FOO"), .env = ARGV("PATH=/nonexistent")});
    wait_exit(0);
    ASSERT_STR_EQ("FOO=bar baz\nPATH=/usr/bin:/bin\n", out_str(0, 1));
    wait_exit(1);
    char want[PATH_MAX + 2];
    snprintf(want, sizeof(want), "%s\n", real);
    ASSERT_STR_EQ(want, out_str(1, 1));
    rec *r = wait_exit(2);
    ASSERT_EQ(-ENOENT, r->exit.err); /* sh is not in that PATH */
    ASSERT_EQ(0, rmdir(tmpl));
    teardown();
}

TEST(stdin_is_written_and_echoed_by_cat)
{
    setup();
    uint64_t id =
        spawn(0, (rt_proc_opts){.argv = ARGV("cat"), .stdin_pipe = true, .max_output = 1 << 20});
    ASSERT_OK(rt_proc_write(ext(), id, "hello ", 6));
    ASSERT_OK(rt_proc_write(ext(), id, "world\n", 6));
    /* More than a pipe holds, so some of it waits for the child to read. */
    enum { BIG = 300 * 1024 };
    char *big = rt_xmalloc(BIG);
    ASSERT_NOT_NULL(big);
    for (int i = 0; i < BIG; i++)
        big[i] = (char)('a' + i % 26);
    for (int i = 0; i < 3; i++)
        ASSERT_OK(rt_proc_write(ext(), id, big + i * (BIG / 3), BIG / 3));
    rt_proc_close_stdin(ext(), id);
    int rc = rt_proc_write(ext(), id, "x", 1); /* cat may even have finished already */
    ASSERT_TRUE(rc == -EPIPE || rc == -ESRCH);
    rec *r = wait_exit(0);
    ASSERT_EQ(0, r->exit.exit_code);
    ASSERT_EQ(12 + BIG, r->total[0]);
    ASSERT_EQ(0, memcmp(r->out[0], "hello world\n", 12));
    ASSERT_EQ(0, memcmp(r->out[0] + 12, big, BIG));
    ASSERT_EQ(-ESRCH, rt_proc_write(ext(), id, "x", 1));
    rt_free(big);
    teardown();
}

TEST(stdin_queue_is_bounded_and_errors_are_clear)
{
    setup();
    uint64_t id = spawn(0, (rt_proc_opts){.argv = ARGV("sleep", "30"), .stdin_pipe = true});
    uint64_t no_in = spawn(1, (rt_proc_opts){.argv = ARGV("sleep", "30")});
    enum { CHUNK = 256 * 1024 };
    char *buf = rt_xcalloc(1, CHUNK);
    ASSERT_NOT_NULL(buf);
    /* sleep never reads: four chunks fill the queue, the fifth cannot fit. */
    for (int i = 0; i < 4; i++)
        ASSERT_OK(rt_proc_write(ext(), id, buf, CHUNK));
    ASSERT_EQ(-EAGAIN, rt_proc_write(ext(), id, buf, CHUNK));
    ASSERT_EQ(-E2BIG, rt_proc_write(ext(), id, buf, RT_PROC_STDIN_MAX + 1));
    ASSERT_EQ(-EBADF, rt_proc_write(ext(), no_in, "x", 1));
    ASSERT_EQ(-EINVAL, rt_proc_write(ext(), 0, "x", 1));
    ASSERT_EQ(-EINVAL, rt_proc_write(ext(), id, NULL, 1));
    ASSERT_EQ(-ESRCH, rt_proc_write(ext(), id + 1000000, "x", 1));
    rt_proc_close_stdin(ext(), id); /* sleep runs on: the refusal is ours, at once */
    ASSERT_EQ(-EPIPE, rt_proc_write(ext(), id, "x", 1));
    rt_proc_kill(ext(), id);
    rt_proc_kill(ext(), no_in);
    rec *r = wait_exit(0);
    ASSERT_EQ(SIGKILL, r->exit.term_signal);
    ASSERT_TRUE(r->exit.interrupted);
    ASSERT_EQ(SIGKILL, wait_exit(1)->exit.term_signal);
    ASSERT_EQ(-ESRCH, rt_proc_write(ext(), id, "x", 1));
    rt_free(buf);
    teardown();
}

TEST(child_closing_stdin_gives_epipe_not_sigpipe)
{
    setup();
    uint64_t id =
        spawn(0, (rt_proc_opts){.argv = ARGV("sh", "-c", "exec 0<&-; echo closed; sleep 30"),
                                .stdin_pipe = true});
    wait_out(0, 1, "closed");
    /* The reactor's write fails with EPIPE (SIGPIPE is not allowed to kill us), and from
     * then on writes are refused at once. */
    int64_t t0 = now_ms();
    int rc;
    while ((rc = rt_proc_write(ext(), id, "x", 1)) != -EPIPE) {
        ASSERT_OK(rc);
        if (now_ms() - t0 > WAIT_MS)
            TEST_FAIL_("writes never failed with -EPIPE");
        pause_briefly();
    }
    rt_proc_kill(ext(), id);
    ASSERT_EQ(SIGKILL, wait_exit(0)->exit.term_signal);
    teardown();
}

static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    ASSERT_NOT_NULL(f);
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

TEST(huge_output_is_capped_and_counted)
{
    setup();
    long rss0 = peak_rss_kb();
    spawn(0, (rt_proc_opts){.argv = ARGV("sh", "-c", "yes | head -c 50000000")});
    spawn(1, (rt_proc_opts){.argv = ARGV("sh", "-c", "head -c 5000 /dev/zero >&2"),
                            .max_output = 1000});
    rec *r = wait_exit(0);
    ASSERT_EQ(0, r->exit.exit_code);
    ASSERT_EQ(RT_PROC_MAX_OUTPUT_DEFAULT, r->total[0]);
    ASSERT_EQ(50000000 - RT_PROC_MAX_OUTPUT_DEFAULT, r->exit.bytes_dropped[0]);
    ASSERT_LE(r->max_chunk, RT_PROC_CHUNK);
    ASSERT_EQ(0, memcmp(r->out[0], "y\ny\ny\n", 6));
    /* 50 MB went through; memory did not follow it. */
    ASSERT_LT(peak_rss_kb() - rss0, 32 * 1024);
    r = wait_exit(1);
    ASSERT_EQ(1000, r->total[1]);
    ASSERT_EQ(4000, r->exit.bytes_dropped[1]);
    ASSERT_EQ(0, r->exit.bytes_dropped[0]);
    teardown();
}

static const char *const tree_argv[] = {"sh", "-c", "echo $$; sleep 100 & sleep 100 & wait", NULL};

TEST(tree_is_killed_on_timeout)
{
    setup();
    spawn(0, (rt_proc_opts){.argv = tree_argv, .timeout_ms = 300});
    rec *r = wait_exit(0);
    ASSERT_TRUE(r->exit.timed_out);
    ASSERT_FALSE(r->exit.interrupted);
    ASSERT_EQ(SIGTERM, r->exit.term_signal);
    pid_t pid = first_pid(0);
    ASSERT_EQ(pid, r->exit.pid);
    wait_gone(BY_PGRP, pid);
    ASSERT_EQ(0, count_procs(ZOMBIE_CHILDREN, 0));
    teardown();
}

TEST(tree_is_killed_on_interrupt)
{
    setup();
    uint64_t id = spawn(0, (rt_proc_opts){.argv = tree_argv});
    wait_out(0, 1, "\n");
    pid_t pid = first_pid(0);
    wait_count_at_least(BY_PGRP, pid, 3); /* sh and two sleeps */
    /* Its own session and group. */
    char name[32];
    snprintf(name, sizeof(name), "%d", (int)pid);
    pstat ps;
    ASSERT_TRUE(read_pstat(name, &ps));
    ASSERT_EQ(pid, ps.pgrp);
    ASSERT_EQ(pid, ps.sid);
    rt_proc_interrupt(ext(), id);
    rec *r = wait_exit(0);
    ASSERT_TRUE(r->exit.interrupted);
    ASSERT_FALSE(r->exit.timed_out);
    ASSERT_EQ(SIGTERM, r->exit.term_signal);
    wait_gone(BY_SID, pid);
    ASSERT_EQ(0, count_procs(ZOMBIE_CHILDREN, 0));
    teardown();
}

TEST(job_control_groups_of_the_session_are_killed_too)
{
    if (access("/bin/bash", X_OK) != 0) {
        printf("skip: no bash\n");
        return;
    }
    setup();
    /* set -m: the background job gets a process group of its own inside the session. */
    uint64_t id =
        spawn(0, (rt_proc_opts){.argv = ARGV("bash", "-c", "set -m; sleep 100 & echo $!; wait")});
    wait_out(0, 1, "\n");
    pid_t job = first_pid(0);
    char name[32];
    snprintf(name, sizeof(name), "%d", (int)job);
    pstat ps;
    ASSERT_TRUE(read_pstat(name, &ps));
    ASSERT_NE(ps.pgrp, ps.sid);
    rt_proc_interrupt(ext(), id);
    rec *r = wait_exit(0);
    ASSERT_EQ(ps.sid, r->exit.pid);
    wait_gone(BY_PID, job);
    wait_gone(BY_SID, ps.sid);
    teardown();
}

TEST(background_job_of_a_finished_command_is_left_running)
{
    setup();
    /* The job holds the stdout pipe: the EXIT waits RT_PROC_DRAIN_MS for it, then the pipe
     * is let go. A command that ends by itself keeps its background jobs: they are the
     * user's, not an interrupted command's leftovers. */
    spawn(0, (rt_proc_opts){.argv = ARGV("sh", "-c", "sleep 30 & echo $!")});
    rec *r = wait_exit(0);
    ASSERT_EQ(0, r->exit.exit_code);
    ASSERT_FALSE(r->exit.interrupted);
    pid_t job = first_pid(0);
    ASSERT_EQ(1, count_procs(BY_PID, job));
    ASSERT_EQ(0, count_procs(ZOMBIE_CHILDREN, 0));
    ASSERT_OK(kill(job, SIGKILL)); /* not ours any more: clean up by hand */
    wait_gone(BY_PID, job);
    teardown();
}

TEST(sigkill_follows_when_sigterm_is_trapped)
{
    setup();
    uint64_t id =
        spawn(0, (rt_proc_opts){.argv = ARGV("sh", "-c", "trap '' TERM; echo $$; sleep 30")});
    wait_out(0, 1, "\n");
    pid_t pid = first_pid(0);
    int64_t t0 = now_ms();
    rt_proc_interrupt(ext(), id);
    rec *r = wait_exit(0);
    ASSERT_GE(now_ms() - t0, RT_PROC_KILL_GRACE_MS - 100); /* the grace was given */
    ASSERT_EQ(SIGKILL, r->exit.term_signal);
    ASSERT_TRUE(r->exit.interrupted);
    wait_gone(BY_SID, pid);
    teardown();
}

TEST(jobs_of_an_interrupted_command_get_the_whole_grace)
{
    setup();
    /* The leader dies of SIGTERM at once; its job ignores SIGTERM and holds the pipe. It
     * is given the full grace, then killed, and only then does the EXIT come. */
    uint64_t id = spawn(0, (rt_proc_opts){.argv = ARGV("sh", "-c",
                                                       "(trap '' TERM; echo ready; sleep 30) & "
                                                       "echo $$; wait")});
    wait_out(0, 1, "ready");
    wait_out(0, 1, "\n");
    int64_t t0 = now_ms();
    rt_proc_interrupt(ext(), id);
    rec *r = wait_exit(0);
    ASSERT_GE(now_ms() - t0, RT_PROC_KILL_GRACE_MS - 100);
    ASSERT_EQ(SIGTERM, r->exit.term_signal); /* the leader's own end */
    wait_gone(BY_SID, r->exit.pid);
    teardown();
}

TEST(kill_is_immediate_and_unknown_ids_are_ignored)
{
    setup();
    uint64_t id = spawn(0, (rt_proc_opts){.argv = ARGV("sleep", "30")});
    rt_proc_kill(ext(), id);
    rec *r = wait_exit(0);
    ASSERT_EQ(SIGKILL, r->exit.term_signal);
    ASSERT_TRUE(r->exit.interrupted);
    /* Late or bogus requests are harmless. */
    rt_proc_kill(ext(), id);
    rt_proc_interrupt(ext(), id);
    rt_proc_close_stdin(ext(), id);
    rt_proc_interrupt(ext(), 0);
    rt_proc_kill(ext(), 123456789);
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    teardown();
}

TEST(spawn_errors_arrive_as_exit)
{
    setup();
    char tmpl[] = "/tmp/rt_proc_noexec_XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    close(fd);
    spawn(0, (rt_proc_opts){.argv = ARGV("no-such-program-rt-proc")});
    spawn(1, (rt_proc_opts){.argv = ARGV("/nonexistent/prog")});
    spawn(2, (rt_proc_opts){.argv = ARGV(tmpl)});
    spawn(3, (rt_proc_opts){.argv = ARGV("true"), .cwd = "/nonexistent-dir"});
    spawn(4, (rt_proc_opts){.argv = ARGV("")});
    ASSERT_EQ(-ENOENT, wait_exit(0)->exit.err);
    ASSERT_EQ(-ENOENT, wait_exit(1)->exit.err);
    ASSERT_EQ(-EACCES, wait_exit(2)->exit.err);
    ASSERT_EQ(-ENOENT, wait_exit(3)->exit.err);
    ASSERT_EQ(-ENOENT, wait_exit(4)->exit.err);
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(0, recs[i].exit.pid);
        ASSERT_EQ(-1, recs[i].exit.exit_code);
        ASSERT_EQ(0, recs[i].total[0] + recs[i].total[1]);
    }
    /* Invalid requests are refused at once, with no message. */
    ASSERT_EQ(0, rt_proc_spawn(ext(), NULL));
    ASSERT_EQ(0, rt_proc_spawn(ext(), &(rt_proc_opts){.reply_to = coll}));
    ASSERT_EQ(0, rt_proc_spawn(ext(), &(rt_proc_opts){.argv = ARGV(NULL), .reply_to = coll}));
    ASSERT_EQ(0, rt_proc_spawn(ext(), &(rt_proc_opts){.argv = ARGV("true")}));
    ASSERT_EQ(-EEXIST, rt_proc_init(re));
    ASSERT_EQ(-EINVAL, rt_proc_init(NULL));
    ASSERT_EQ(0, unlink(tmpl));
    teardown();
}

TEST(no_fd_leaks_and_the_child_sees_only_0_1_2)
{
    setup();
    /* An fd opened without O_CLOEXEC (as a careless library might) must not reach it. */
    int stray = open("/dev/null", O_RDONLY);
    ASSERT_GE(stray, 3);
    int before = count_fds();
    const char *const *ls = ARGV("sh", "-c", "ls -1 /proc/$$/fd");
    spawn(0, (rt_proc_opts){.argv = ls});
    uint64_t in = spawn(1, (rt_proc_opts){.argv = ls, .stdin_pipe = true, .merge_stderr = true});
    spawn(2, (rt_proc_opts){.argv = ls, .pty = true});
    spawn(3, (rt_proc_opts){.argv = ARGV("no-such-program-rt-proc")});
    spawn(4, (rt_proc_opts){.argv = tree_argv, .timeout_ms = 50});
    (void)rt_proc_write(ext(), in, "x", 1); /* may find it gone: either way no leak */
    wait_exit(0);
    ASSERT_STR_EQ("0\n1\n2\n", out_str(0, 1));
    wait_exit(1);
    ASSERT_STR_EQ("0\n1\n2\n", out_str(1, 1));
    wait_exit(2);
    ASSERT_STR_EQ("0\r\n1\r\n2\r\n", out_str(2, 1));
    wait_exit(3);
    wait_exit(4);
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    ASSERT_EQ(before, count_fds());
    close(stray);
    teardown();
}

TEST(no_zombies_are_left)
{
    setup();
    for (int i = 0; i < 20; i++)
        spawn(i, (rt_proc_opts){.argv = ARGV("true")});
    spawn(20, (rt_proc_opts){.argv = tree_argv, .timeout_ms = 100});
    uint64_t k = spawn(21, (rt_proc_opts){.argv = ARGV("sleep", "30")});
    rt_proc_interrupt(ext(), k);
    for (int i = 0; i < 22; i++)
        wait_exit(i);
    ASSERT_EQ(0, count_procs(ZOMBIE_CHILDREN, 0));
    ASSERT_EQ(0, count_procs(CHILDREN, 0));
    teardown();
}

TEST(pty_mode_gives_a_terminal)
{
    setup();
    spawn(0, (rt_proc_opts){.argv = ARGV("sh", "-c",
                                         "[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo isatty; "
                                         ": </dev/tty && echo ctty; stty size; echo err >&2"),
                            .pty = true});
    rec *r = wait_exit(0);
    ASSERT_EQ(0, r->exit.exit_code);
    ASSERT_TRUE(out_has(0, 1, "isatty\r\n"));
    ASSERT_TRUE(out_has(0, 1, "ctty\r\n")); /* it is the controlling terminal */
    ASSERT_TRUE(out_has(0, 1, "30 120\r\n"));
    ASSERT_TRUE(out_has(0, 1, "err\r\n")); /* one stream */
    ASSERT_EQ(0, r->total[1]);
    /* Input goes through the terminal; ^D at the start of a line ends it. cat closes its
     * terminal fds before exiting: the master must not hang up (SIGHUP) in that window. */
    uint64_t id = spawn(1, (rt_proc_opts){.argv = ARGV("cat"), .pty = true});
    ASSERT_OK(rt_proc_write(ext(), id, "ping\n", 5));
    wait_out(1, 1, "ping\r\nping\r\n"); /* the terminal's echo, then cat's copy */
    rt_proc_close_stdin(ext(), id);
    r = wait_exit(1);
    ASSERT_EQ(0, r->exit.err);
    ASSERT_EQ(0, r->exit.term_signal);
    ASSERT_EQ(0, r->exit.exit_code);
    ASSERT_FALSE(r->exit.interrupted);
    teardown();
}

TEST(many_in_parallel_each_gets_its_own_output)
{
    setup();
    for (int i = 0; i < 40; i++) {
        char arg[16];
        snprintf(arg, sizeof(arg), "%d", i * 7);
        spawn(i, (rt_proc_opts){.argv = ARGV("sh", "-c", "echo $1; echo $1 >&2", "sh", arg)});
    }
    for (int i = 0; i < 40; i++) {
        char want[32];
        snprintf(want, sizeof(want), "%d\n", i * 7);
        ASSERT_EQ(0, wait_exit(i)->exit.exit_code);
        ASSERT_STR_EQ(want, out_str(i, 1));
        ASSERT_STR_EQ(want, out_str(i, 2));
    }
    teardown();
}

TEST(reactor_stop_kills_running_children_and_reports)
{
    setup();
    pid_t pids[3];
    for (int i = 0; i < 3; i++)
        spawn(i, (rt_proc_opts){.argv = tree_argv});
    for (int i = 0; i < 3; i++) {
        wait_out(i, 1, "\n");
        pids[i] = first_pid(i);
        wait_count_at_least(BY_PGRP, pids[i], 3);
    }
    spawn(3, (rt_proc_opts){.argv = ARGV("sleep", "30")}); /* may or may not have started */
    rt_reactor_stop(re);
    re = NULL;
    for (int i = 0; i < 4; i++) {
        rec *r = wait_exit(i);
        ASSERT_EQ(-ECANCELED, r->exit.err);
        if (i < 3) {
            ASSERT_TRUE(r->exit.interrupted);
            ASSERT_EQ(SIGKILL, r->exit.term_signal);
            ASSERT_EQ(pids[i], r->exit.pid);
        }
    }
    for (int i = 0; i < 3; i++)
        wait_gone(BY_SID, pids[i]);
    ASSERT_EQ(0, count_procs(ZOMBIE_CHILDREN, 0));
    teardown();
}

TEST(without_the_service_spawns_fail_cleanly)
{
    rt_options o = {.workers = 1};
    rt = rt_runtime_new(&o);
    coll = rt_spawn(ext(), &collector, recs, NULL);
    /* No reactor at all. */
    spawn(0, (rt_proc_opts){.argv = ARGV("true")});
    ASSERT_EQ(-ENOTCONN, wait_exit(0)->exit.err);
    /* A reactor without rt_proc_init. */
    re = rt_reactor_start(rt);
    spawn(1, (rt_proc_opts){.argv = ARGV("true")});
    ASSERT_EQ(-ENOTCONN, wait_exit(1)->exit.err);
    teardown();
}

TEST(shell_argv_helper)
{
    const char *argv[4];
    setenv("SHELL", "/bin/sh", 1);
    rt_proc_shell_argv(argv, "echo hi", 0);
    ASSERT_STR_EQ("/bin/sh", argv[0]);
    ASSERT_STR_EQ("-c", argv[1]);
    ASSERT_STR_EQ("echo hi", argv[2]);
    ASSERT_NULL(argv[3]);
    rt_proc_shell_argv(argv, "x", RT_PROC_SHELL_LOGIN | RT_PROC_SHELL_INTERACTIVE);
    ASSERT_STR_EQ("-lic", argv[1]);
    setenv("SHELL", "not-absolute", 1); /* falls back to bash, like the original */
    rt_proc_shell_argv(argv, "x", RT_PROC_SHELL_LOGIN);
    ASSERT_STR_EQ(access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh", argv[0]);
    ASSERT_STR_EQ("-lc", argv[1]);
    setup();
    spawn(0, (rt_proc_opts){.argv = rt_proc_shell_argv(argv, "echo hi from $0", 0)});
    wait_exit(0);
    char want[64];
    snprintf(want, sizeof(want), "hi from %s\n", argv[0]);
    ASSERT_STR_EQ(want, out_str(0, 1));
    teardown();
}
