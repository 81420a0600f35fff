/*
 * test_terminal_harness — a runtime with a reactor, the process registry and a fake
 * session that starts tool calls and answers their asks, for the terminal tool tests.
 * Included (not linked) by test_terminal_tool.c and test_terminal_ssh.c; every case runs
 * in a forked child, so the globals start fresh each time.
 *
 * The session answers approvals with th.answer (TH_HOLD: never) and sudo prompts with
 * th.sudo_text; it records every ask. The main thread waits on results with a deadline.
 */
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_proc.h"
#include "rt_sched.h"
#include "term_procs.h"
#include "test.h"
#include "tool.h"

#include <dirent.h>
#include <signal.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TH_UNUSED  __attribute__((unused))
#define TH_MAX     64   /* asks */
#define TH_CALLS   1024 /* calls per case */
#define TH_WAIT_MS 30000
#define TH_HOLD    (-1)

enum { TH_GO = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 0x77) };

typedef struct th_pstat {
    pid_t pid, ppid, pgrp, sid;
    char state;
} th_pstat;
static bool th_read_pstat(const char *pid, th_pstat *ps);

typedef struct th_go {
    rt_msg hdr;
    int seq;
    int env; /* 0 or 1: which tool_env */
    char tool[32];
    char *args; /* owned */
} th_go;

static struct {
    rt_runtime *rt;
    rt_reactor *re;
    rt_ref session;
    tool_env *env[2];
    int answer;            /* how approvals are answered, or TH_HOLD */
    const char *sudo_text; /* the answer to a sudo prompt */
    /* written by the session actor; published by the release stores below */
    char *results[TH_CALLS];
    bool interrupted[TH_CALLS];
    _Atomic int done[TH_CALLS];
    _Atomic int started[TH_CALLS];
    _Atomic int nasks;
    int ask_kind[TH_MAX];
    char ask_text[TH_MAX][512];
    char ask_desc[TH_MAX][256];
    char ask_key[TH_MAX][128];
    int next_seq; /* main thread only */
} th;

static void th_drop_go(rt_msg *m)
{
    rt_free(((th_go *)m)->args);
}

static void th_session(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type == TH_GO) {
        th_go *g = (th_go *)m;
        const tool_def *d = tool_find(g->tool);
        ASSERT_NOT_NULL(d);
        ASSERT_NE(0, tool_start_call(cx, d, th.env[g->env], (uint64_t)g->seq, "call", g->args));
        /* release: pairs with the acquire in th_wait_started */
        atomic_store_explicit(&th.started[g->seq], 1, memory_order_release);
    } else if (m->type == TOOL_MSG_RESULT) {
        tool_msg_result *r = (tool_msg_result *)m;
        ASSERT_LT(r->seq, TH_CALLS);
        th.results[r->seq] = r->result;
        r->result = NULL;
        th.interrupted[r->seq] = r->interrupted;
        /* release: pairs with the acquire in th_wait */
        atomic_store_explicit(&th.done[r->seq], 1, memory_order_release);
    } else if (m->type == TOOL_MSG_ASK) {
        tool_msg_ask *a = (tool_msg_ask *)m;
        int i = atomic_load_explicit(&th.nasks, memory_order_relaxed);
        ASSERT_LT(i, TH_MAX);
        th.ask_kind[i] = a->kind;
        snprintf(th.ask_text[i], sizeof(th.ask_text[i]), "%s", a->text ? a->text : "");
        snprintf(th.ask_desc[i], sizeof(th.ask_desc[i]), "%s",
                 a->description ? a->description : "");
        snprintf(th.ask_key[i], sizeof(th.ask_key[i]), "%s", a->pattern_key ? a->pattern_key : "");
        /* release: pairs with the acquire in th_asks */
        atomic_store_explicit(&th.nasks, i + 1, memory_order_release);
        if (a->kind == TOOL_ASK_SUDO)
            rt_send(cx, a->reply_to, tool_answer_new(TOOL_ANSWER_TEXT, th.sudo_text));
        else if (th.answer != TH_HOLD)
            rt_send(cx, a->reply_to, tool_answer_new(th.answer, NULL));
    }
}

static const rt_actor_type th_session_type = {"session", th_session, NULL, 0};

static TH_UNUSED int64_t th_now_ms(void)
{
    return rt_reactor_now_ns() / 1000000;
}

static TH_UNUSED void th_nap(void)
{
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
}

/* A failed assertion aborts the case before th_teardown: take the commands it started
 * (our direct children, each the leader of its own process group) down with it. */
static void (*th_abort_hook)(void); /* more to clean up (the ssh test's sshd) */

static void th_on_abort(int sig)
{
    if (th_abort_hook)
        th_abort_hook();
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        th_pstat ps;
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && th_read_pstat(e->d_name, &ps) &&
            ps.ppid == getpid() && ps.pgrp == ps.pid)
            kill(-ps.pid, SIGKILL);
    }
    if (d)
        closedir(d);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Environment changes (setenv) must come before this: the runtime's threads read it. */
static TH_UNUSED void th_setup(void)
{
    signal(SIGABRT, th_on_abort);
    /* A home of our own: the shells' rc files are the system's, not this user's (whose
     * ~/.bashrc may print things of its own). */
    setenv("HOME", test_tmpdir(), 1);
    for (int i = 0; i < 2; i++) {
        th.env[i] = tool_env_new();
        th.env[i]->session_key = rt_xasprintf("agent:main:test:%d", i);
        th.env[i]->task_id = rt_xasprintf("task-%d", i);
        th.env[i]->interactive = true;
        th.env[i]->platform = rt_xstrdup("cli");
    }
    th.answer = TOOL_ANSWER_DENY;
    th.sudo_text = "";
}

static TH_UNUSED void th_start(void)
{
    rt_options o = {.workers = 2};
    th.rt = rt_runtime_new(&o);
    th.re = rt_reactor_start(th.rt);
    ASSERT_OK(rt_proc_init(th.re));
    ASSERT_OK(term_procs_start(rt_ctx_external(th.rt)));
    ASSERT_OK(term_procs_start(rt_ctx_external(th.rt))); /* idempotent */
    rt_spawn_opts so = {.flags = RT_SPAWN_TRAP_EXIT};
    th.session = rt_spawn(rt_ctx_external(th.rt), &th_session_type, NULL, &so);
    ASSERT_NE(0, th.session);
}

static TH_UNUSED void th_teardown(void)
{
    rt_reactor_stop(th.re);
    ASSERT_OK(rt_wait_quiescent(th.rt, TH_WAIT_MS));
    rt_runtime_free(th.rt);
    for (int i = 0; i < TH_CALLS; i++)
        rt_free(th.results[i]);
    tool_env_unref(th.env[0]);
    tool_env_unref(th.env[1]);
}

/* Start a call of tool with printf-formatted JSON arguments; returns its seq. */
static TH_UNUSED int th_call_async(int env, const char *tool, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static TH_UNUSED int th_call_async(int env, const char *tool, const char *fmt, ...)
{
    th_go *g = RT_MSG_NEW(th_go, TH_GO);
    g->seq = th.next_seq++;
    ASSERT_LT(g->seq, TH_CALLS);
    g->env = env;
    snprintf(g->tool, sizeof(g->tool), "%s", tool);
    va_list ap;
    va_start(ap, fmt);
    char buf[8192];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    g->args = rt_xstrdup(buf);
    g->hdr.drop = th_drop_go;
    int seq = g->seq;
    rt_send(rt_ctx_external(th.rt), th.session, &g->hdr);
    return seq;
}

/* Wait for call seq's result and parse it (the caller deletes it). */
static TH_UNUSED cJSON *th_wait(int seq)
{
    int64_t t0 = th_now_ms();
    while (!atomic_load_explicit(&th.done[seq], memory_order_acquire)) {
        if (th_now_ms() - t0 > TH_WAIT_MS)
            TEST_FAIL_("no result for call %d after %d ms", seq, TH_WAIT_MS);
        th_nap();
    }
    cJSON *j = cJSON_Parse(th.results[seq]);
    if (!j)
        TEST_FAIL_("result %d is not JSON: %s", seq, th.results[seq]);
    return j;
}

static TH_UNUSED cJSON *th_call(int env, const char *tool, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static TH_UNUSED cJSON *th_call(int env, const char *tool, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char buf[8192];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return th_wait(th_call_async(env, tool, "%s", buf));
}

/* The session has started call seq (an interrupt to the session now reaches it). */
static TH_UNUSED void th_wait_started(int seq)
{
    int64_t t0 = th_now_ms();
    while (!atomic_load_explicit(&th.started[seq], memory_order_acquire)) {
        if (th_now_ms() - t0 > TH_WAIT_MS)
            TEST_FAIL_("call %d never started", seq);
        th_nap();
    }
}

static TH_UNUSED int th_asks(void)
{
    return atomic_load_explicit(&th.nasks, memory_order_acquire);
}

static TH_UNUSED void th_wait_asks(int n)
{
    int64_t t0 = th_now_ms();
    while (th_asks() < n) {
        if (th_now_ms() - t0 > TH_WAIT_MS)
            TEST_FAIL_("never saw %d asks", n);
        th_nap();
    }
}

static TH_UNUSED const char *th_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v))
        TEST_FAIL_("\"%s\" is not a string in %s", key, cJSON_PrintUnformatted(o));
    return v->valuestring;
}

static TH_UNUSED double th_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        TEST_FAIL_("\"%s\" is not a number in %s", key, cJSON_PrintUnformatted(o));
    return v->valuedouble;
}

static TH_UNUSED bool th_is_null(const cJSON *o, const char *key)
{
    return cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* JSON-escape s for embedding in a format string argument (static buffer per call). */
static TH_UNUSED const char *th_q(const char *s)
{
    static char bufs[4][4096];
    static int k;
    char *b = bufs[k++ % 4];
    cJSON *j = cJSON_CreateString(s);
    char *p = cJSON_PrintUnformatted(j);
    snprintf(b, sizeof(bufs[0]), "%s", p);
    cJSON_free(p);
    cJSON_Delete(j);
    return b;
}

/* ------------------------------------------------------------------ /proc */

static bool th_read_pstat(const char *pid, th_pstat *ps)
{
    char path[300], buf[512];
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

/* Live (not zombie) processes in session sid. */
static TH_UNUSED int th_count_sid(pid_t sid)
{
    DIR *d = opendir("/proc");
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        th_pstat ps;
        if (e->d_name[0] < '1' || e->d_name[0] > '9' || !th_read_pstat(e->d_name, &ps))
            continue;
        n += ps.sid == sid && ps.state != 'Z' && ps.state != 'X';
    }
    closedir(d);
    return n;
}

static TH_UNUSED void th_wait_sid_count(pid_t sid, int at_least)
{
    int64_t t0 = th_now_ms();
    while (th_count_sid(sid) < at_least) {
        if (th_now_ms() - t0 > TH_WAIT_MS)
            TEST_FAIL_("session %d never had %d processes", (int)sid, at_least);
        th_nap();
    }
}

static TH_UNUSED void th_wait_sid_gone(pid_t sid)
{
    int64_t t0 = th_now_ms();
    int n;
    while ((n = th_count_sid(sid)) != 0) {
        if (th_now_ms() - t0 > TH_WAIT_MS)
            TEST_FAIL_("%d processes left in session %d", n, (int)sid);
        th_nap();
    }
}

/* Wait for a file to hold a number (a pid a command wrote). */
static TH_UNUSED long th_wait_pid_file(const char *path)
{
    int64_t t0 = th_now_ms();
    for (;;) {
        FILE *f = fopen(path, "r");
        long pid = 0;
        if (f) {
            if (fscanf(f, "%ld", &pid) != 1)
                pid = 0;
            fclose(f);
        }
        if (pid > 1)
            return pid;
        if (th_now_ms() - t0 > TH_WAIT_MS)
            TEST_FAIL_("no pid in %s", path);
        th_nap();
    }
}

static TH_UNUSED void th_write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs(text, f);
    fclose(f);
    ASSERT_OK(chmod(path, mode));
}
