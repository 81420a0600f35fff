/*
 * test_code — the execute_code tool on a runtime with a reactor and rt_proc: a script's
 * output and exit status, a script calling three Hermes tools over the RPC socket, the
 * allowed-tool and call-limit errors, the output cap, the timeout and an interrupt killing
 * the script's whole process group, python3 missing, and the subagent block.
 */
#include "rt_alloc.h"
#include "rt_proc.h"
#include "rt_sched.h"
#include "test.h"
#include "tool.h"
#include "term_procs.h"
#include "tool_code.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

enum { T_GO = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 0x51) };
#define WAIT_MS 30000

typedef struct go {
    rt_msg hdr;
    char *args;
} go;

static struct {
    rt_runtime *rt;
    rt_reactor *re;
    rt_ref session;
    tool_env *env;
    _Atomic int started;
    _Atomic int done;
    char *result;
    bool interrupted;
    _Atomic int asks;
    char base[512]; /* test_tmpdir() before TMPDIR changes */
} h;

static void drop_go(rt_msg *m)
{
    rt_free(((go *)m)->args);
}

static void session_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type == T_GO) {
        ASSERT_NE(
            0, tool_start_call(cx, tool_find("execute_code"), h.env, 7, "call", ((go *)m)->args));
        atomic_store(&h.started, 1);
    } else if (m->type == TOOL_MSG_RESULT) {
        tool_msg_result *r = (tool_msg_result *)m;
        ASSERT_EQ(7, r->seq);
        h.result = r->result;
        r->result = NULL;
        h.interrupted = r->interrupted;
        atomic_store(&h.done, 1); /* seq_cst: publishes result */
    } else if (m->type == TOOL_MSG_ASK) {
        tool_msg_ask *a = (tool_msg_ask *)m;
        atomic_fetch_add(&h.asks, 1);
        rt_send(cx, a->reply_to, tool_answer_new(TOOL_ANSWER_DENY, NULL));
    }
}
static const rt_actor_type session_type = {"session", session_behave, NULL, 0};

/* Environment changes (setenv) come before this. */
static void setup(void)
{
    snprintf(h.base, sizeof(h.base), "%s", test_tmpdir());
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s/tmp", h.base);
    mkdir(tmp, 0700);
    setenv("TMPDIR", tmp, 1);
    h.rt = rt_runtime_new(NULL);
    h.re = rt_reactor_start(h.rt);
    ASSERT_OK(rt_proc_init(h.re));
    h.env = tool_env_new();
    h.env->cwd = rt_xstrdup(h.base);
    h.env->hermes_home = rt_xstrdup(h.base);
    h.env->task_id = rt_xstrdup("t1");
    h.env->session_key = rt_xstrdup("k1");
    h.env->interactive = true;
    ASSERT_OK(term_procs_start(rt_ctx_external(h.rt)));
    rt_spawn_opts o = {.flags = RT_SPAWN_TRAP_EXIT};
    h.session = rt_spawn(rt_ctx_external(h.rt), &session_type, NULL, &o);
}

static void start(const char *code)
{
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "code", code);
    go *g = RT_MSG_NEW(go, T_GO);
    char *p = cJSON_PrintUnformatted(a);
    g->args = rt_xstrdup(p);
    cJSON_free(p);
    cJSON_Delete(a);
    g->hdr.drop = drop_go;
    rt_send(rt_ctx_external(h.rt), h.session, &g->hdr);
}

static void nap(void)
{
    usleep(2000);
}

static cJSON *wait_result(void)
{
    int64_t t0 = rt_reactor_now_ns();
    while (!atomic_load(&h.done)) {
        ASSERT_LT(rt_reactor_now_ns() - t0, (int64_t)WAIT_MS * 1000000);
        nap();
    }
    cJSON *r = cJSON_Parse(h.result);
    ASSERT_NOT_NULL(r);
    return r;
}

static const char *str(const cJSON *r, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int num(const cJSON *r, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, k);
    ASSERT_TRUE(cJSON_IsNumber(v));
    return v->valueint;
}

/* No sandbox directory is left behind in $TMPDIR. */
static int sandboxes_left(void)
{
    DIR *d = opendir(getenv("TMPDIR"));
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, "hermes_sandbox_", 15) == 0)
            n++;
    closedir(d);
    return n;
}

static void teardown(void)
{
    ASSERT_OK(rt_wait_quiescent(h.rt, 10000));
    rt_reactor_stop(h.re);
    rt_runtime_free(h.rt);
    tool_env_unref(h.env);
    rt_free(h.result);
}

static cJSON *run_code(const char *code)
{
    start(code);
    return wait_result();
}

TEST(runs_a_script_and_captures_its_output)
{
    setup();
    cJSON *r = run_code("import sys\nprint('hello', 6 * 7)\nprint('note', file=sys.stderr)\n");
    ASSERT_STR_EQ("success", str(r, "status"));
    ASSERT_STR_EQ("hello 42\n", str(r, "output"));
    ASSERT_EQ(0, num(r, "tool_calls_made"));
    ASSERT_NULL(cJSON_GetObjectItemCaseSensitive(r, "error"));
    ASSERT_TRUE(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(r, "duration_seconds")));
    cJSON_Delete(r);
    teardown();
    ASSERT_EQ(0, sandboxes_left());
}

TEST(a_failing_script_reports_stderr)
{
    setup();
    cJSON *r = run_code("import sys\nprint('partial')\nsys.stderr.write('boom\\n')\nsys.exit(3)\n");
    ASSERT_STR_EQ("error", str(r, "status"));
    ASSERT_STR_EQ("boom\n", str(r, "error"));
    ASSERT_STR_EQ("partial\n\n--- stderr ---\nboom\n", str(r, "output"));
    cJSON_Delete(r);
    teardown();
}

TEST(exit_code_without_stderr)
{
    setup();
    cJSON *r = run_code("import os\nos._exit(4)\n");
    ASSERT_STR_EQ("error", str(r, "status"));
    ASSERT_STR_EQ("Script exited with code 4", str(r, "error"));
    cJSON_Delete(r);
    teardown();
}

TEST(script_calls_three_tools)
{
    setup();
    cJSON *r = run_code("from hermes_tools import write_file, read_file, search_files\n"
                        "w = write_file('notes/a.txt', 'alpha\\nbeta needle\\n')\n"
                        "print('wrote', 'error' not in w)\n"
                        "r = read_file('notes/a.txt')\n"
                        "print('read', 'beta needle' in r['content'])\n"
                        "s = search_files('needle', path='notes')\n"
                        "print('found', 'a.txt' in str(s))\n");
    if (strcmp(str(r, "status"), "success") != 0)
        fprintf(stderr, "%s\n", h.result);
    ASSERT_STR_EQ("success", str(r, "status"));
    ASSERT_STR_EQ("wrote True\nread True\nfound True\n", str(r, "output"));
    ASSERT_EQ(3, num(r, "tool_calls_made"));
    cJSON_Delete(r);
    char p[700];
    snprintf(p, sizeof(p), "%s/notes/a.txt", h.base);
    ASSERT_EQ(0, access(p, F_OK));
    teardown();
}

TEST(terminal_runs_and_its_approvals_reach_the_session)
{
    setup();
    cJSON *r = run_code("from hermes_tools import terminal\n"
                        "a = terminal('echo from-terminal')\n"
                        "print(a.get('output'), a.get('exit_code'))\n"
                        "b = terminal('rm -rf ./scratch-dir')\n"
                        "print('denied' if b.get('exit_code') != 0 else 'ran', str(b)[:300])\n");
    if (strcmp(str(r, "status"), "success") != 0)
        fprintf(stderr, "%s\n", h.result);
    ASSERT_STR_EQ("success", str(r, "status"));
    ASSERT_STR_CONTAINS(str(r, "output"), "from-terminal 0\n");
    ASSERT_STR_CONTAINS(str(r, "output"), "denied");
    ASSERT_EQ(1, atomic_load(&h.asks)); /* the approval question came to the session */
    ASSERT_EQ(2, num(r, "tool_calls_made"));
    cJSON_Delete(r);
    teardown();
}

TEST(disallowed_tools_and_the_call_limit)
{
    tool_code_set_limits(60, 2);
    setup();
    cJSON *r = run_code("import hermes_tools as h\n"
                        "print(h._call('memory', {'action': 'add'})['error'])\n"
                        "print(hasattr(h, 'memory'))\n"
                        "for i in range(3):\n"
                        "    x = h.read_file('nope-%d.txt' % i)\n"
                        "    print(i, x.get('error', '')[:40] if isinstance(x, dict) else x)\n");
    ASSERT_STR_EQ("success", str(r, "status"));
    const char *out = str(r, "output");
    ASSERT_STR_CONTAINS(out, "Tool 'memory' is not available in execute_code. Available: ");
    ASSERT_STR_CONTAINS(out, "read_file");
    ASSERT_STR_CONTAINS(out, "\nFalse\n");
    ASSERT_STR_CONTAINS(out, "2 Tool call limit reached (2).");
    ASSERT_EQ(2, num(r, "tool_calls_made"));
    cJSON_Delete(r);
    teardown();
}

TEST(output_is_capped)
{
    setup();
    cJSON *r = run_code("print('x' * 60000)\n");
    ASSERT_STR_EQ("success", str(r, "status"));
    const char *out = str(r, "output");
    const char *note = "\n[output truncated at 50KB]";
    ASSERT_EQ(CODE_STDOUT_MAX + strlen(note), strlen(out));
    ASSERT_STR_EQ(note, out + CODE_STDOUT_MAX);
    cJSON_Delete(r);
    teardown();
}

/* The pid the script wrote to pidfile, waiting for it to appear. */
static pid_t read_pid(const char *pidfile)
{
    int64_t t0 = rt_reactor_now_ns();
    for (;;) {
        FILE *f = fopen(pidfile, "r");
        long pid = 0;
        if (f) {
            int n = fscanf(f, "%ld", &pid);
            fclose(f);
            if (n == 1 && pid > 0)
                return (pid_t)pid;
        }
        ASSERT_LT(rt_reactor_now_ns() - t0, (int64_t)WAIT_MS * 1000000);
        nap();
    }
}

/* Whether pid is gone (or a zombie nobody reaped yet). */
static bool dead(pid_t pid)
{
    char p[64], buf[512];
    snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

static void wait_dead(pid_t pid)
{
    int64_t t0 = rt_reactor_now_ns();
    while (!dead(pid)) {
        ASSERT_LT(rt_reactor_now_ns() - t0, (int64_t)WAIT_MS * 1000000);
        nap();
    }
}

static char *sleeper_script(const char *pidfile)
{
    return rt_xasprintf("import subprocess, time\n"
                        "p = subprocess.Popen(['sleep', '60'])\n"
                        "open(%s, 'w').write(str(p.pid))\n"
                        "print('started', flush=True)\n"
                        "time.sleep(60)\n",
                        pidfile);
}

TEST(timeout_kills_the_script_and_its_children)
{
    tool_code_set_limits(1, 0);
    setup();
    char pidfile[700], quoted[800];
    snprintf(pidfile, sizeof(pidfile), "%s/pid", h.base);
    snprintf(quoted, sizeof(quoted), "'%s'", pidfile);
    char *code = sleeper_script(quoted);
    start(code);
    rt_free(code);
    pid_t child = read_pid(pidfile);
    cJSON *r = wait_result();
    ASSERT_STR_EQ("timeout", str(r, "status"));
    ASSERT_STR_EQ("Script timed out after 1s and was killed.", str(r, "error"));
    ASSERT_STR_EQ("started\n", str(r, "output"));
    wait_dead(child);
    cJSON_Delete(r);
    teardown();
    ASSERT_EQ(0, sandboxes_left());
}

TEST(interrupt_kills_the_process_group)
{
    setup();
    char pidfile[700], quoted[800];
    snprintf(pidfile, sizeof(pidfile), "%s/pid", h.base);
    snprintf(quoted, sizeof(quoted), "'%s'", pidfile);
    char *code = sleeper_script(quoted);
    start(code);
    rt_free(code);
    pid_t child = read_pid(pidfile);
    ASSERT_FALSE(dead(child));
    rt_interrupt(rt_ctx_external(h.rt), h.session, 1);
    cJSON *r = wait_result();
    ASSERT_STR_EQ("interrupted", str(r, "status"));
    ASSERT_STR_CONTAINS(str(r, "output"),
                        "\n[execution interrupted \xe2\x80\x94 user sent a new message]");
    ASSERT_TRUE(h.interrupted);
    wait_dead(child);
    cJSON_Delete(r);
    teardown();
    ASSERT_EQ(0, sandboxes_left());
}

TEST(python_missing_gives_a_clear_error)
{
    setenv("PATH", "/nonexistent-bin", 1);
    setup();
    cJSON *r = run_code("print(1)\n");
    ASSERT_STR_EQ("error", str(r, "status"));
    ASSERT_STR_CONTAINS(str(r, "error"), "Python 3 is not available: 'python3' was not found");
    cJSON_Delete(r);
    teardown();
    ASSERT_EQ(0, sandboxes_left());
}

TEST(bad_arguments_and_subagents)
{
    setup();
    start("");
    cJSON *r = wait_result();
    ASSERT_STR_EQ("No code provided.", str(r, "error"));
    cJSON_Delete(r);
    teardown();
    const tool_def *d = tool_find("execute_code");
    ASSERT_NOT_NULL(d);
    ASSERT_STR_EQ("code_execution", d->toolset);
    cJSON *sch = cJSON_Parse(d->schema);
    ASSERT_STR_EQ("execute_code", str(sch, "name"));
    cJSON_Delete(sch);
    tool_env *sub = tool_env_new();
    sub->delegate_depth = 1;
    ASSERT_FALSE(d->available(sub));
    sub->delegate_depth = 0;
    ASSERT_TRUE(d->available(sub));
    tool_env_unref(sub);
}
