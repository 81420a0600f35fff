/*
 * The terminal and process tools end to end, driven by a fake session on a real runtime,
 * reactor and process registry (local backend; docker through a fake engine on PATH):
 * schemas, output and exit codes, timeouts, the output cap, interrupts that leave no
 * process behind, approvals, sudo, background processes with every process action, and
 * the clear errors of absent engines and unsupported backends.
 */
#include "test_terminal_harness.c"

#include "term_output.h"

#include <signal.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ schemas */

static const cJSON *prop(const cJSON *schema, const char *name)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(schema, "parameters"),
                                         "properties"),
        name);
    if (!p)
        TEST_FAIL_("no parameter %s", name);
    return p;
}

static void expect_prop(const cJSON *schema, const char *name, const char *type)
{
    ASSERT_STR_EQ(type, cJSON_GetObjectItemCaseSensitive(prop(schema, name), "type")->valuestring);
}

TEST(schemas_match_the_original)
{
    cJSON *t = cJSON_Parse(tool_find("terminal")->schema);
    ASSERT_NOT_NULL(t);
    ASSERT_STR_EQ("terminal", th_str(t, "name"));
    ASSERT_STR_CONTAINS(th_str(t, "description"), "read_file");
    expect_prop(t, "command", "string");
    expect_prop(t, "background", "boolean");
    expect_prop(t, "timeout", "integer");
    expect_prop(t, "workdir", "string");
    expect_prop(t, "check_interval", "integer");
    expect_prop(t, "pty", "boolean");
    ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(prop(t, "background"), "default")));
    ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(prop(t, "pty"), "default")));
    ASSERT_EQ(1, th_num(prop(t, "timeout"), "minimum"));
    ASSERT_EQ(30, th_num(prop(t, "check_interval"), "minimum"));
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(t, "parameters"), "properties");
    ASSERT_EQ(6, cJSON_GetArraySize(props));
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(t, "parameters"), "required");
    ASSERT_EQ(1, cJSON_GetArraySize(req));
    ASSERT_STR_EQ("command", cJSON_GetArrayItem(req, 0)->valuestring);
    cJSON_Delete(t);

    cJSON *p = cJSON_Parse(tool_find("process")->schema);
    ASSERT_NOT_NULL(p);
    ASSERT_STR_EQ("process", th_str(p, "name"));
    expect_prop(p, "action", "string");
    expect_prop(p, "session_id", "string");
    expect_prop(p, "data", "string");
    expect_prop(p, "timeout", "integer");
    expect_prop(p, "offset", "integer");
    expect_prop(p, "limit", "integer");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(prop(p, "action"), "enum");
    const char *want[] = {"list", "poll", "log", "wait", "kill", "write", "submit"};
    ASSERT_EQ(7, cJSON_GetArraySize(en));
    for (int i = 0; i < 7; i++)
        ASSERT_STR_EQ(want[i], cJSON_GetArrayItem(en, i)->valuestring);
    ASSERT_EQ(1, th_num(prop(p, "timeout"), "minimum"));
    ASSERT_EQ(1, th_num(prop(p, "limit"), "minimum"));
    req = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "parameters"),
                                           "required");
    ASSERT_EQ(1, cJSON_GetArraySize(req));
    ASSERT_STR_EQ("action", cJSON_GetArrayItem(req, 0)->valuestring);
    cJSON_Delete(p);
    ASSERT_STR_EQ("terminal", tool_find("terminal")->toolset);
    ASSERT_STR_EQ("terminal", tool_find("process")->toolset);
}

/* ------------------------------------------------------------------ foreground */

TEST(echo_exit_codes_stderr_and_cwd)
{
    th_setup();
    const char *dir = test_tmpdir();
    th.env[0]->cwd = rt_xstrdup(dir);
    char sub[512];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    ASSERT_OK(mkdir(sub, 0755));
    th_start();
    cJSON *r = th_call(0, "terminal", "{\"command\":\"echo hello\"}");
    ASSERT_STR_EQ("hello", th_str(r, "output"));
    ASSERT_EQ(0, th_num(r, "exit_code"));
    ASSERT_TRUE(th_is_null(r, "error"));
    ASSERT_EQ(3, cJSON_GetArraySize(r)); /* exactly {output, exit_code, error} */
    cJSON_Delete(r);
    /* An interactive login shell says "logout" on exit, in the original too. */
    r = th_call(0, "terminal", "{\"command\":\"echo out; echo err >&2; exit 3\"}");
    ASSERT_STR_EQ("out\nerr\nlogout", th_str(r, "output"));
    ASSERT_EQ(3, th_num(r, "exit_code"));
    cJSON_Delete(r);
    r = th_call(0, "terminal", "{\"command\":\"kill -9 $$\"}");
    ASSERT_EQ(-9, th_num(r, "exit_code")); /* a signal, as Python's returncode shows it */
    cJSON_Delete(r);
    r = th_call(0, "terminal", "{\"command\":\"pwd\"}");
    ASSERT_STR_EQ(dir, th_str(r, "output"));
    cJSON_Delete(r);
    r = th_call(0, "terminal", "{\"command\":\"pwd\",\"workdir\":\"sub\"}");
    ASSERT_STR_EQ(sub, th_str(r, "output"));
    cJSON_Delete(r);
    r = th_call(0, "terminal", "{\"command\":\"pwd\",\"workdir\":\"/\"}");
    ASSERT_STR_EQ("/", th_str(r, "output"));
    cJSON_Delete(r);
    r = th_call(0, "terminal", "{\"command\":\"pwd\",\"workdir\":\"/nonexistent/hermes\"}");
    ASSERT_STR_EQ("Execution error: No such file or directory: '/nonexistent/hermes'",
                  th_str(r, "output"));
    ASSERT_EQ(1, th_num(r, "exit_code"));
    cJSON_Delete(r);
    /* Secrets never reach the model. */
    r = th_call(0, "terminal",
                "{\"command\":\"echo OPENAI_API_KEY=sk-proj-abc123def456ghi789jkl012\"}");
    ASSERT_STR_EQ("OPENAI_API_KEY=***", th_str(r, "output"));
    cJSON_Delete(r);
    /* Invalid UTF-8 and NUL bytes still give valid JSON text. */
    r = th_call(0, "terminal", "{\"command\":\"printf 'a\\\\377b\\\\000c'\"}");
    ASSERT_STR_EQ("a\xEF\xBF\xBD"
                  "bc",
                  th_str(r, "output"));
    cJSON_Delete(r);
    th_teardown();
}

TEST(bad_arguments_and_backends_fail_clearly)
{
    th_setup();
    th_start();
    cJSON *r = th_call(0, "terminal", "{}");
    ASSERT_STR_EQ("Failed to execute command: 'command' is required and must be a string",
                  th_str(r, "error"));
    ASSERT_STR_EQ("error", th_str(r, "status"));
    ASSERT_EQ(-1, th_num(r, "exit_code"));
    cJSON_Delete(r);
    r = th_call(0, "terminal", "{\"command\":42}");
    ASSERT_STR_CONTAINS(th_str(r, "error"), "'command' is required");
    cJSON_Delete(r);
    th_teardown();
}

TEST(modal_and_unknown_backends)
{
    setenv("TERMINAL_ENV", "modal", 1);
    th_setup();
    th_start();
    cJSON *r = th_call(0, "terminal", "{\"command\":\"echo hi\"}");
    ASSERT_STR_EQ("Failed to execute command: the modal backend is not supported yet; set "
                  "terminal.backend (TERMINAL_ENV) to local, ssh, docker or singularity",
                  th_str(r, "error"));
    cJSON_Delete(r);
    th_teardown();
    /* The environment is read per call. */
}

TEST(unknown_backend)
{
    setenv("TERMINAL_ENV", "kubernetes", 1);
    th_setup();
    th_start();
    cJSON *r = th_call(0, "terminal", "{\"command\":\"echo hi\"}");
    ASSERT_STR_EQ("Failed to execute command: Unknown environment type: kubernetes. Use 'local', "
                  "'docker', 'singularity', 'modal', or 'ssh'",
                  th_str(r, "error"));
    cJSON_Delete(r);
    th_teardown();
}

TEST(timeout_gives_124_and_kills_the_tree)
{
    th_setup();
    const char *dir = test_tmpdir();
    th_start();
    char pidf[512];
    snprintf(pidf, sizeof(pidf), "%s/pid", dir);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "echo started; echo $$ > %s; sh -c 'sleep 300 & sleep 300'", pidf);
    th.env[0]->interactive = false; /* `sh -c` needs no approval here */
    int64_t t0 = th_now_ms();
    cJSON *r = th_call(0, "terminal", "{\"command\":%s,\"timeout\":1}", th_q(cmd));
    ASSERT_EQ(124, th_num(r, "exit_code"));
    ASSERT_STR_EQ("Command timed out after 1 seconds", th_str(r, "error"));
    ASSERT_STR_EQ("started", th_str(r, "output")); /* what it printed before */
    ASSERT_LT(th_now_ms() - t0, 20000);
    th_wait_sid_gone((pid_t)th_wait_pid_file(pidf));
    cJSON_Delete(r);
    th_teardown();
}

static char *python_cap_of_yes(size_t n)
{
    size_t total = 2 * n;
    rt_buf b;
    rt_buf_init(&b, total + 256);
    for (size_t i = 0; i < TERM_OUT_HEAD_CHARS; i++)
        (void)rt_buf_append(&b, i % 2 ? "\n" : "y", 1);
    (void)rt_buf_printf(&b,
                        "\n\n... [OUTPUT TRUNCATED - %zu chars omitted out of %zu total] ...\n\n",
                        total - TERM_OUT_MAX_CHARS, total);
    for (size_t i = 0; i + 1 < TERM_OUT_TAIL_CHARS; i++)
        (void)rt_buf_append(&b, i % 2 ? "\n" : "y", 1);
    return rt_buf_steal(&b, NULL);
}

TEST(huge_output_is_capped_exactly_as_the_original)
{
    th_setup();
    th_start();
    /* In a subshell: the interactive shell would add a line about yes's SIGPIPE. */
    cJSON *r = th_call(0, "terminal", "{\"command\":\"(yes | head -c 5000000)\"}");
    char *want = python_cap_of_yes(2500000);
    ASSERT_STR_EQ(want, th_str(r, "output"));
    ASSERT_EQ(0, th_num(r, "exit_code"));
    rt_free(want);
    cJSON_Delete(r);
    th_teardown();
}

TEST(interrupt_kills_the_whole_tree_and_returns_130)
{
    th_setup();
    th.env[0]->interactive = false; /* `sh -c` needs no approval here */
    const char *dir = test_tmpdir();
    th_start();
    char pidf[512], cmd[1024];
    snprintf(pidf, sizeof(pidf), "%s/pid", dir);
    /* The sleepers belong to a child sh, so the interactive bash prints no job lines. */
    snprintf(cmd, sizeof(cmd), "echo working; echo $$ > %s; sh -c 'sleep 300 & sleep 300 & wait'",
             pidf);
    int seq = th_call_async(0, "terminal", "{\"command\":%s}", th_q(cmd));
    pid_t sid = (pid_t)th_wait_pid_file(pidf);
    th_wait_sid_count(sid, 3); /* the shell and both sleepers */
    rt_interrupt(rt_ctx_external(th.rt), th.session, 1);
    cJSON *r = th_wait(seq);
    ASSERT_EQ(130, th_num(r, "exit_code"));
    const char *out = th_str(r, "output");
    ASSERT_EQ(0, strncmp(out, "working\n", 8)); /* no shell noise first */
    const char *note = "\n[Command interrupted — user sent a new message]";
    ASSERT_STR_EQ(note, out + strlen(out) - strlen(note));
    ASSERT_TRUE(th_is_null(r, "error"));
    ASSERT_TRUE(th.interrupted[seq]);
    th_wait_sid_gone(sid);
    cJSON_Delete(r);
    th_teardown();
}

/* ------------------------------------------------------------------ approval */

TEST(dangerous_command_asks_and_deny_blocks_it)
{
    th_setup();
    const char *dir = test_tmpdir();
    char victim[512];
    snprintf(victim, sizeof(victim), "%s/victim", dir);
    ASSERT_OK(mkdir(victim, 0755));
    th.env[0]->cwd = rt_xstrdup(dir);
    const char *cmd = "rm -rf victim";
    th.answer = TOOL_ANSWER_DENY;
    th_start();
    cJSON *r = th_call(0, "terminal", "{\"command\":%s}", th_q(cmd));
    ASSERT_EQ(1, th_asks());
    ASSERT_EQ(TOOL_ASK_APPROVAL, th.ask_kind[0]);
    ASSERT_STR_EQ(cmd, th.ask_text[0]);
    ASSERT_STR_EQ("recursive delete", th.ask_desc[0]);
    ASSERT_STR_EQ("rm\\s+-[^\\s]*r", th.ask_key[0]);
    ASSERT_STR_EQ("", th_str(r, "output"));
    ASSERT_EQ(-1, th_num(r, "exit_code"));
    ASSERT_STR_EQ("blocked", th_str(r, "status"));
    ASSERT_STR_EQ("BLOCKED: User denied this potentially dangerous command (matched 'recursive "
                  "delete' pattern). Do NOT retry this command - the user has explicitly "
                  "rejected it.",
                  th_str(r, "error"));
    ASSERT_OK(access(victim, F_OK)); /* still there */
    cJSON_Delete(r);
    th_teardown();
}

TEST(approval_once_runs_and_timeout_blocks)
{
    th_setup();
    th.answer = TOOL_ANSWER_ONCE;
    th_start();
    cJSON *r = th_call(0, "terminal", "{\"command\":\"bash -c 'echo approved'\"}");
    ASSERT_EQ(1, th_asks());
    ASSERT_STR_EQ("(bash|sh|zsh)\\s+-c\\s+", th.ask_key[0]);
    ASSERT_STR_EQ("approved", th_str(r, "output"));
    ASSERT_EQ(0, th_num(r, "exit_code"));
    cJSON_Delete(r);
    th.answer = TOOL_ANSWER_TIMEOUT; /* read by the session only when the next ask comes */
    r = th_call(0, "terminal", "{\"command\":\"bash -c 'echo nope'\"}");
    ASSERT_EQ(2, th_asks());
    ASSERT_STR_EQ("blocked", th_str(r, "status"));
    cJSON_Delete(r);
    th_teardown();
}

TEST(allowlist_and_non_interactive_skip_the_ask)
{
    th_setup();
    th.env[0]->command_allowlist = rt_xcalloc(2, sizeof(char *));
    th.env[0]->command_allowlist[0] = rt_xstrdup("(bash|sh|zsh)\\s+-c\\s+");
    th.env[1]->interactive = false; /* batch, cron */
    th.answer = TOOL_ANSWER_DENY;
    th_start();
    cJSON *r = th_call(0, "terminal", "{\"command\":\"sh -c 'echo listed'\"}");
    ASSERT_STR_EQ("listed", th_str(r, "output"));
    cJSON_Delete(r);
    r = th_call(1, "terminal", "{\"command\":\"sh -c 'echo batch'\"}");
    ASSERT_STR_EQ("batch", th_str(r, "output"));
    cJSON_Delete(r);
    ASSERT_EQ(0, th_asks());
    th_teardown();
}

TEST(interrupt_while_waiting_for_approval)
{
    th_setup();
    th.answer = TH_HOLD;
    th_start();
    int seq = th_call_async(0, "terminal", "{\"command\":\"bash -c 'echo never'\"}");
    th_wait_asks(1);
    rt_interrupt(rt_ctx_external(th.rt), th.session, 1);
    cJSON *r = th_wait(seq);
    ASSERT_EQ(130, th_num(r, "exit_code"));
    ASSERT_STR_EQ("[Command interrupted — user sent a new message]", th_str(r, "output"));
    ASSERT_TRUE(th.interrupted[seq]);
    cJSON_Delete(r);
    th_teardown();
}

/* ------------------------------------------------------------------ sudo */

static void fake_sudo(const char *dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/sudo", dir);
    th_write_file(path, "#!/bin/sh\nread pw\necho \"sudo-got:$pw args:$*\"\n", 0755);
}

TEST(sudo_password_from_the_environment_is_piped_and_masked)
{
    const char *dir = test_tmpdir();
    fake_sudo(dir);
    setenv("SUDO_PASSWORD", "s3cret-pass", 1);
    th_setup();
    th_start();
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "PATH=%s:$PATH; sudo -n true", dir);
    cJSON *r = th_call(0, "terminal", "{\"command\":%s}", th_q(cmd));
    ASSERT_STR_EQ("sudo-got:*** args:-S -p  -n true", th_str(r, "output"));
    ASSERT(!strstr(th.results[0], "s3cret"));
    ASSERT_EQ(0, th_asks());
    cJSON_Delete(r);
    th_teardown();
}

TEST(sudo_password_is_asked_for_in_the_cli)
{
    const char *dir = test_tmpdir();
    fake_sudo(dir);
    unsetenv("SUDO_PASSWORD");
    th_setup();
    th.sudo_text = "typed-pass";
    th_start();
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "PATH=%s:$PATH; sudo id", dir);
    cJSON *r = th_call(0, "terminal", "{\"command\":%s}", th_q(cmd));
    ASSERT_EQ(1, th_asks());
    ASSERT_EQ(TOOL_ASK_SUDO, th.ask_kind[0]);
    ASSERT_STR_EQ("sudo-got:*** args:-S -p  id", th_str(r, "output"));
    cJSON_Delete(r);
    th_teardown();
}

TEST(sudo_tip_in_messaging_sessions)
{
    unsetenv("SUDO_PASSWORD");
    th_setup();
    rt_free(th.env[0]->platform);
    th.env[0]->platform = rt_xstrdup("matrix");
    th_start();
    cJSON *r = th_call(0, "terminal", "{\"command\":\"echo 'sudo: a password is required'\"}");
    ASSERT_EQ(0, th_asks()); /* nobody is asked for a password over chat */
    ASSERT_STR_EQ("sudo: a password is required\n\n\n💡 Tip: To enable sudo over messaging, add "
                  "SUDO_PASSWORD to ~/.hermes/.env on the agent machine.",
                  th_str(r, "output"));
    cJSON_Delete(r);
    th_teardown();
}

/* ------------------------------------------------------------------ background */

static cJSON *poll_until(int env, const char *id, const char *needle)
{
    int64_t t0 = th_now_ms();
    for (;;) {
        cJSON *p = th_call(env, "process", "{\"action\":\"poll\",\"session_id\":\"%s\"}", id);
        if (strstr(th_str(p, "output_preview"), needle))
            return p;
        cJSON_Delete(p);
        if (th_now_ms() - t0 > TH_WAIT_MS)
            TEST_FAIL_("process %s never printed %s", id, needle);
        th_nap();
    }
}

TEST(background_process_and_every_process_action)
{
    th_setup();
    th_start();
    cJSON *r = th_call(0, "terminal",
                       "{\"command\":\"echo hello; read line; echo got:$line; sleep 300\","
                       "\"background\":true,\"check_interval\":5}");
    ASSERT_STR_EQ("Background process started", th_str(r, "output"));
    ASSERT_EQ(0, th_num(r, "exit_code"));
    ASSERT_TRUE(th_is_null(r, "error"));
    ASSERT_STR_EQ("Requested 5s raised to minimum 30s", th_str(r, "check_interval_note"));
    char id[32];
    snprintf(id, sizeof(id), "%s", th_str(r, "session_id"));
    ASSERT_EQ(17, strlen(id));
    ASSERT_EQ(0, strncmp(id, "proc_", 5));
    ASSERT_EQ(12, strspn(id + 5, "0123456789abcdef"));
    pid_t pid = (pid_t)th_num(r, "pid");
    cJSON_Delete(r);
    /* The pid is the command's own: the leader of its session. */
    char name[32];
    snprintf(name, sizeof(name), "%d", (int)pid);
    th_pstat ps;
    ASSERT_TRUE(th_read_pstat(name, &ps));
    ASSERT_EQ(pid, ps.sid);

    cJSON *p = poll_until(0, id, "hello");
    ASSERT_STR_EQ("running", th_str(p, "status"));
    ASSERT_STR_EQ(id, th_str(p, "session_id"));
    ASSERT_STR_EQ("echo hello; read line; echo got:$line; sleep 300", th_str(p, "command"));
    ASSERT_EQ(pid, th_num(p, "pid"));
    ASSERT_STR_EQ("hello\n", th_str(p, "output_preview")); /* no shell noise, no marker */
    ASSERT_NULL(cJSON_GetObjectItemCaseSensitive(p, "exit_code"));
    cJSON_Delete(p);

    r = th_call(0, "process", "{\"action\":\"submit\",\"session_id\":\"%s\",\"data\":\"abc\"}", id);
    ASSERT_STR_EQ("ok", th_str(r, "status"));
    ASSERT_EQ(4, th_num(r, "bytes_written"));
    cJSON_Delete(r);
    cJSON_Delete(poll_until(0, id, "got:abc"));

    r = th_call(0, "process", "{\"action\":\"log\",\"session_id\":\"%s\"}", id);
    ASSERT_STR_EQ("hello\ngot:abc", th_str(r, "output"));
    ASSERT_EQ(2, th_num(r, "total_lines"));
    ASSERT_STR_EQ("2 lines", th_str(r, "showing"));
    cJSON_Delete(r);
    r = th_call(0, "process", "{\"action\":\"log\",\"session_id\":\"%s\",\"offset\":1,\"limit\":5}",
                id);
    ASSERT_STR_EQ("got:abc", th_str(r, "output"));
    ASSERT_STR_EQ("1 lines", th_str(r, "showing"));
    cJSON_Delete(r);

    r = th_call(0, "process", "{\"action\":\"list\"}");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(r, "processes");
    ASSERT_EQ(1, cJSON_GetArraySize(list));
    const cJSON *e = cJSON_GetArrayItem(list, 0);
    ASSERT_STR_EQ(id, th_str(e, "session_id"));
    ASSERT_STR_EQ("running", th_str(e, "status"));
    ASSERT_EQ(19, strlen(th_str(e, "started_at"))); /* 2026-01-02T03:04:05 */
    ASSERT_NOT_NULL(cJSON_GetObjectItemCaseSensitive(e, "cwd"));
    ASSERT_NOT_NULL(cJSON_GetObjectItemCaseSensitive(e, "uptime_seconds"));
    ASSERT_STR_CONTAINS(th_str(e, "output_preview"), "got:abc");
    cJSON_Delete(r);

    r = th_call(0, "process", "{\"action\":\"wait\",\"session_id\":\"%s\",\"timeout\":1}", id);
    ASSERT_STR_EQ("timeout", th_str(r, "status"));
    ASSERT_STR_EQ("Waited 1s, process still running", th_str(r, "timeout_note"));
    ASSERT_STR_CONTAINS(th_str(r, "output"), "got:abc");
    cJSON_Delete(r);

    r = th_call(0, "process", "{\"action\":\"kill\",\"session_id\":\"%s\"}", id);
    ASSERT_STR_EQ("killed", th_str(r, "status"));
    ASSERT_STR_EQ(id, th_str(r, "session_id"));
    cJSON_Delete(r);
    th_wait_sid_gone(pid);
    r = th_call(0, "process", "{\"action\":\"poll\",\"session_id\":\"%s\"}", id);
    ASSERT_STR_EQ("exited", th_str(r, "status"));
    ASSERT_EQ(-15, th_num(r, "exit_code"));
    cJSON_Delete(r);
    r = th_call(0, "process", "{\"action\":\"kill\",\"session_id\":\"%s\"}", id);
    ASSERT_STR_EQ("already_exited", th_str(r, "status"));
    ASSERT_EQ(-15, th_num(r, "exit_code"));
    cJSON_Delete(r);
    r = th_call(0, "process", "{\"action\":\"wait\",\"session_id\":\"%s\"}", id);
    ASSERT_STR_EQ("exited", th_str(r, "status"));
    ASSERT_EQ(-15, th_num(r, "exit_code"));
    cJSON_Delete(r);
    r = th_call(0, "process", "{\"action\":\"write\",\"session_id\":\"%s\",\"data\":\"x\"}", id);
    ASSERT_STR_EQ("already_exited", th_str(r, "status"));
    ASSERT_STR_EQ("Process has already finished", th_str(r, "error"));
    cJSON_Delete(r);
    th_teardown();
}

TEST(wait_returns_when_the_process_exits)
{
    th_setup();
    th_start();
    cJSON *r = th_call(0, "terminal",
                       "{\"command\":\"sleep 0.3; echo done; (exit 4)\",\"background\":true}");
    char id[32];
    snprintf(id, sizeof(id), "%s", th_str(r, "session_id"));
    cJSON_Delete(r);
    int64_t t0 = th_now_ms();
    r = th_call(0, "process", "{\"action\":\"wait\",\"session_id\":\"%s\",\"timeout\":60}", id);
    ASSERT_LT(th_now_ms() - t0, 30000); /* not the 60 s */
    ASSERT_STR_EQ("exited", th_str(r, "status"));
    ASSERT_EQ(4, th_num(r, "exit_code"));
    ASSERT_STR_EQ("done\n", th_str(r, "output"));
    cJSON_Delete(r);
    th_teardown();
}

TEST(wait_is_clamped_and_interruptible)
{
    th_setup();
    th.env[0]->terminal_timeout_s = 1;
    th_start();
    cJSON *r = th_call(0, "terminal", "{\"command\":\"sleep 300\",\"background\":true}");
    char id[32];
    snprintf(id, sizeof(id), "%s", th_str(r, "session_id"));
    cJSON_Delete(r);
    r = th_call(0, "process", "{\"action\":\"wait\",\"session_id\":\"%s\",\"timeout\":5}", id);
    ASSERT_STR_EQ("timeout", th_str(r, "status"));
    ASSERT_STR_EQ("Requested wait of 5s was clamped to configured limit of 1s",
                  th_str(r, "timeout_note"));
    cJSON_Delete(r);
    th.env[1]->terminal_timeout_s = 600;
    rt_free(th.env[1]->session_key);
    th.env[1]->session_key = rt_xstrdup(th.env[0]->session_key);
    int seq = th_call_async(1, "process", "{\"action\":\"wait\",\"session_id\":\"%s\"}", id);
    th_wait_started(seq); /* before or after it reached the registry: both end the same */
    rt_interrupt(rt_ctx_external(th.rt), th.session, 1);
    r = th_wait(seq);
    ASSERT_STR_EQ("interrupted", th_str(r, "status"));
    ASSERT_STR_EQ("User sent a new message -- wait interrupted", th_str(r, "note"));
    ASSERT_TRUE(th.interrupted[seq]);
    cJSON_Delete(r);
    th_teardown();
}

TEST(process_errors_and_session_isolation)
{
    th_setup();
    th_start();
    cJSON *r = th_call(0, "process", "{\"action\":\"poll\"}");
    ASSERT_STR_EQ("session_id is required for poll", th_str(r, "error"));
    cJSON_Delete(r);
    r = th_call(0, "process", "{\"action\":\"bogus\"}");
    ASSERT_STR_EQ("Unknown process action: bogus. Use: list, poll, log, wait, kill, write, submit",
                  th_str(r, "error"));
    cJSON_Delete(r);
    r = th_call(0, "process", "{}");
    ASSERT_STR_CONTAINS(th_str(r, "error"), "Unknown process action: .");
    cJSON_Delete(r);
    r = th_call(0, "process", "{\"action\":\"poll\",\"session_id\":\"proc_000000000000\"}");
    ASSERT_STR_EQ("not_found", th_str(r, "status"));
    ASSERT_STR_EQ("No process with ID proc_000000000000", th_str(r, "error"));
    cJSON_Delete(r);
    /* Another session key sees nothing of ours. */
    r = th_call(0, "terminal", "{\"command\":\"sleep 300\",\"background\":true}");
    char id[32];
    snprintf(id, sizeof(id), "%s", th_str(r, "session_id"));
    cJSON_Delete(r);
    r = th_call(1, "process", "{\"action\":\"kill\",\"session_id\":\"%s\"}", id);
    ASSERT_STR_EQ("not_found", th_str(r, "status"));
    cJSON_Delete(r);
    r = th_call(1, "process", "{\"action\":\"list\"}");
    ASSERT_EQ(0, cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "processes")));
    cJSON_Delete(r);
    r = th_call(0, "process", "{\"action\":\"list\"}");
    ASSERT_EQ(1, cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "processes")));
    cJSON_Delete(r);
    th_teardown();
}

TEST(background_in_a_pty_and_a_failed_start)
{
    th_setup();
    th_start();
    cJSON *r = th_call(0, "terminal",
                       "{\"command\":\"tty; read x; echo got$x; sleep 300\",\"background\":true,"
                       "\"pty\":true}");
    char id[32];
    snprintf(id, sizeof(id), "%s", th_str(r, "session_id"));
    ASSERT_GT(th_num(r, "pid"), 1);
    cJSON_Delete(r);
    cJSON_Delete(poll_until(0, id, "/dev/pts/"));
    r = th_call(0, "process", "{\"action\":\"submit\",\"session_id\":\"%s\",\"data\":\"42\"}", id);
    ASSERT_STR_EQ("ok", th_str(r, "status"));
    cJSON_Delete(r);
    cJSON_Delete(poll_until(0, id, "got42"));
    r = th_call(0, "terminal",
                "{\"command\":\"echo x\",\"background\":true,\"workdir\":\"/nonexistent/dir\"}");
    ASSERT_EQ(-1, th_num(r, "exit_code"));
    ASSERT_STR_EQ("Failed to start background process: No such file or directory: "
                  "'/nonexistent/dir'",
                  th_str(r, "error"));
    cJSON_Delete(r);
    th_teardown();
}

/* ------------------------------------------------------------------ docker */

/* A docker stand-in: logs its arguments, answers version/info/run/rm, and runs `exec`
 * commands locally (after a cd to -w). */
static const char fake_docker[] =
    "#!/bin/sh\n"
    "echo \"$*\" >> \"$FAKE_DOCKER_LOG\"\n"
    "case \"$1\" in\n"
    "version) [ -n \"$FAKE_DOCKER_DOWN\" ] && { echo 'Client: fake'; echo 'Cannot connect to "
    "the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2; "
    "exit 1; }; echo 'Client: fake'; exit 0;;\n"
    "info) echo overlay2; exit 0;;\n"
    "create) echo 'no quota here' >&2; exit 1;;\n"
    "run) echo 'Unable to find image locally' >&2; echo fakecontainer0123; exit 0;;\n"
    "rm) exit 0;;\n"
    "exec) shift; while [ \"$1\" != bash ]; do if [ \"$1\" = -w ]; then shift; cd \"$1\" || "
    "exit 125; fi; shift; done; exec \"$@\";;\n"
    "esac\n"
    "exit 1\n";

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    ASSERT_NOT_NULL(f);
    rt_buf b;
    rt_buf_init(&b, 1 << 20);
    char line[4096];
    while (fgets(line, sizeof(line), f))
        (void)rt_buf_append_str(&b, line);
    fclose(f);
    return rt_buf_steal(&b, NULL);
}

static const char *setup_fake_docker(bool down)
{
    const char *dir = test_tmpdir();
    char path[512], log[512], sb[512], newpath[4096];
    snprintf(path, sizeof(path), "%s/docker", dir);
    th_write_file(path, fake_docker, 0755);
    snprintf(log, sizeof(log), "%s/log", dir);
    snprintf(sb, sizeof(sb), "%s/sandboxes", dir);
    setenv("FAKE_DOCKER_LOG", log, 1);
    if (down)
        setenv("FAKE_DOCKER_DOWN", "1", 1);
    setenv("TERMINAL_SANDBOX_DIR", sb, 1);
    setenv("TERMINAL_ENV", "docker", 1);
    snprintf(newpath, sizeof(newpath), "%s:%s", dir, getenv("PATH"));
    setenv("PATH", newpath, 1);
    return dir;
}

TEST(docker_backend_runs_the_hardened_container_and_skips_approval)
{
    const char *dir = setup_fake_docker(false);
    th_setup();
    th.answer = TOOL_ANSWER_DENY; /* would block if it were asked */
    th_start();
    cJSON *r = th_call(0, "terminal", "{\"command\":\"rm -rf /nonexistent-hermes; echo in-box\"}");
    ASSERT_STR_EQ("in-box", th_str(r, "output"));
    ASSERT_EQ(0, th_num(r, "exit_code"));
    cJSON_Delete(r);
    r = th_call(0, "terminal", "{\"command\":\"pwd\",\"workdir\":\"/tmp\"}");
    ASSERT_STR_EQ("/tmp", th_str(r, "output"));
    cJSON_Delete(r);
    ASSERT_EQ(0, th_asks());
    char log[512];
    snprintf(log, sizeof(log), "%s/log", dir);
    char *all = read_all(log);
    ASSERT_STR_CONTAINS(all, "version\n");
    ASSERT_STR_CONTAINS(all, "run -d --name hermes-");
    ASSERT_STR_CONTAINS(all, " -w /root --read-only --cap-drop ALL --security-opt "
                             "no-new-privileges --pids-limit 256 --tmpfs "
                             "/tmp:rw,noexec,nosuid,size=512m --tmpfs "
                             "/var/tmp:rw,noexec,nosuid,size=256m --tmpfs "
                             "/run:rw,noexec,nosuid,size=64m -v ");
    ASSERT_STR_CONTAINS(all, "/sandboxes/docker/task-0/workspace:/workspace -v ");
    ASSERT_STR_CONTAINS(all, "/sandboxes/docker/task-0/home:/root --cpus 1.0 --memory 5120m "
                             "nikolaik/python-nodejs:python3.11-nodejs20 sleep 2h\n");
    const char *run = strstr(all, "run -d");
    ASSERT_NOT_NULL(run);
    ASSERT(!memmem(run, strcspn(run, "\n"), "--storage-opt", 13)); /* the probe said no */
    ASSERT_STR_CONTAINS(all,
                        "exec -w / fakecontainer0123 bash -lc echo \"HERMES_PID=$$\"; cd ~ && rm");
    ASSERT_STR_CONTAINS(all, "exec -w /tmp fakecontainer0123 bash -lc echo \"HERMES_PID=$$\"; pwd");
    /* One container for both calls of the task. */
    const char *first = strstr(all, "run -d");
    ASSERT(!strstr(first + 1, "run -d"));
    rt_free(all);
    char ws[512];
    snprintf(ws, sizeof(ws), "%s/sandboxes/docker/task-0/workspace", dir);
    ASSERT_OK(access(ws, F_OK));
    th_teardown();
}

TEST(docker_background_process)
{
    setup_fake_docker(false);
    th_setup();
    th_start();
    cJSON *r = th_call(0, "terminal",
                       "{\"command\":\"echo in-bg; read x; echo got$x; sleep 300\","
                       "\"background\":true}");
    char id[32];
    snprintf(id, sizeof(id), "%s", th_str(r, "session_id"));
    ASSERT_GT(th_num(r, "pid"), 1);
    cJSON_Delete(r);
    cJSON_Delete(poll_until(0, id, "in-bg"));
    r = th_call(0, "process", "{\"action\":\"submit\",\"session_id\":\"%s\",\"data\":\"7\"}", id);
    ASSERT_STR_EQ("ok", th_str(r, "status"));
    cJSON_Delete(r);
    cJSON_Delete(poll_until(0, id, "got7"));
    r = th_call(0, "process", "{\"action\":\"kill\",\"session_id\":\"%s\"}", id);
    ASSERT_STR_EQ("killed", th_str(r, "status"));
    cJSON_Delete(r);
    th_teardown();
}

TEST(docker_engine_down_or_absent_fails_clearly)
{
    setup_fake_docker(true);
    th_setup();
    th_start();
    cJSON *r = th_call(0, "terminal", "{\"command\":\"echo hi\"}");
    ASSERT_STR_EQ("Failed to execute command: Docker backend unavailable: `docker version` "
                  "failed: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                  "Is the docker daemon running?",
                  th_str(r, "error"));
    ASSERT_STR_EQ("error", th_str(r, "status"));
    cJSON_Delete(r);
    th_teardown();
}

TEST(docker_absent_from_path)
{
    const char *dir = test_tmpdir(); /* an empty PATH entry: no docker anywhere */
    setenv("PATH", dir, 1);
    setenv("TERMINAL_ENV", "docker", 1);
    th_setup();
    th_start();
    cJSON *r = th_call(0, "terminal", "{\"command\":\"echo hi\"}");
    ASSERT_STR_EQ("Failed to execute command: Docker backend unavailable: 'docker' was not found "
                  "on PATH. Install Docker or set terminal.backend (TERMINAL_ENV) to local.",
                  th_str(r, "error"));
    cJSON_Delete(r);
    th_teardown();
}

TEST(singularity_absent_from_path)
{
    const char *dir = test_tmpdir();
    setenv("PATH", dir, 1);
    setenv("TERMINAL_ENV", "singularity", 1);
    th_setup();
    th_start();
    cJSON *r = th_call(0, "terminal", "{\"command\":\"echo hi\"}");
    ASSERT_STR_EQ("Failed to execute command: Singularity backend unavailable: neither "
                  "'apptainer' nor 'singularity' was found on PATH.",
                  th_str(r, "error"));
    cJSON_Delete(r);
    th_teardown();
}
