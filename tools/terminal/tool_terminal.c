/*
 * tool_terminal — the `terminal` tool (agent-core §3.3, §4.1): run a shell command on the
 * configured backend and return {output, exit_code, error}.
 *
 * One call is one small state machine in the call's actor:
 *   START → [APPROVAL: ask the session] → [SUDO: ask for a password, CLI only]
 *         → [SANDBOX: the registry readies the container / connection]
 *         → RUNNING (foreground: rt_proc, output collected here)
 *           | SPAWNING (background: handed to the process registry)
 * Nothing blocks: the command runs on the reactor, its output and exit arrive as
 * messages, and the timeout is rt_proc's (SIGTERM to the command's whole session, SIGKILL
 * a second later — the original never escalated a timeout, Appendix A 10).
 *
 * Results, as the original shapes them:
 *   ran            {"output": text, "exit_code": n, "error": null}
 *   timed out      {"output": partial text, "exit_code": 124,
 *                   "error": "Command timed out after N seconds"}
 *   interrupted    {"output": text + "\n[Command interrupted — user sent a new message]",
 *                   "exit_code": 130, "error": null}
 *   denied         {"output": "", "exit_code": -1, "error": "BLOCKED: …", "status": "blocked"}
 *   failed         {"output": "", "exit_code": -1, "error": "Failed to execute command: …",
 *                   "status": "error"}
 *   background     {"output": "Background process started", "session_id": "proc_…",
 *                   "pid": n, "exit_code": 0, "error": null}
 * The text is capped, de-noised, stripped and redacted by term_output.
 *
 * On ssh, docker and singularity the command first prints "HERMES_PID=<pid>" (taken out
 * of the output), so an interrupt or a timeout ends it where it runs as well as our
 * client: an interrupt that comes before that line waits up to MARKER_WAIT_MS for it.
 *
 * Approval (agent-core §4.4): docker/singularity/modal run without asking; a command that
 * is not dangerous runs; a pattern in env->command_allowlist runs; a session where nobody
 * can answer (env->interactive false: batch, cron) runs; otherwise the session is asked
 * (TOOL_ASK_APPROVAL with the command, the description and the pattern key) and DENY or
 * TIMEOUT blocks the command. The session remembers SESSION/ALWAYS answers.
 *
 * sudo (agent-core §4.1): when the command has the word sudo and SUDO_PASSWORD is set (or,
 * in the CLI, the user answers TOOL_ASK_SUDO), each sudo becomes
 * `echo <password> | sudo -S -p ''`. The password is never logged and is masked in the
 * output.
 */
#include "redact.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_proc.h"
#include "rt_timer.h"
#include "rt_util.h"
#include "term_approval.h"
#include "term_backend.h"
#include "term_output.h"
#include "term_procs.h"
#include "tool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INTERRUPT_WAIT_MS 5000 /* after an interrupt, the EXIT comes within ~1.2 s */
#define MAX_TIMEOUT_S     (7 * 24 * 3600)
#define OUTPUT_UNLIMITED  ((size_t)1 << 50) /* term_outbuf keeps a bounded window itself */
#define TAG_INTERRUPT     1
#define TAG_MARKER        2
#define MARKER_WAIT_MS    2000 /* an interrupt waits this long for a remote command's pid */

/* The original's schema: parameter names, types, defaults and minimums unchanged. */
static const char terminal_schema[] =
    "{\"name\":\"terminal\",\"description\":\"Run shell commands on a Linux environme"
    "nt. The filesystem persists between calls.\\n\\nDo NOT use cat/head/tail to read"
    " files — use read_file.\\nDo NOT use grep/rg/find to search — use search_files.\\n"
    "Do NOT use ls to list directories — use search_files(target='files').\\nDo NOT u"
    "se sed/awk to edit files — use patch.\\nDo NOT use echo or a cat heredoc to crea"
    "te files — use write_file.\\nKeep terminal for builds, installs, git, processes,"
    " scripts, network, package managers and anything else that needs a shell.\\n\\nF"
    "oreground (default): the call returns AS SOON AS the command ends, however high "
    "the timeout. Use timeout=300 for long builds or scripts — a fast command still r"
    "eturns in seconds. Prefer foreground for everything that finishes.\\nBackground:"
    " ONLY for long-running servers, watchers or processes that never exit. backgroun"
    "d=true gives a session_id; then process(action=\\\"wait\\\") blocks until it is "
    "done and returns at once on completion, like foreground. Use process(action=\\\""
    "poll\\\") only for a progress check without blocking.\\nDo NOT use background fo"
    "r scripts, builds or installs — foreground with a generous timeout is always bet"
    "ter (fewer calls, immediate results).\\nWorking directory: use 'workdir' for a p"
    "er-command cwd.\\nPTY mode: set pty=true for interactive CLI tools (Codex, Claud"
    "e Code, a Python REPL).\\n\\nDo NOT run vim/nano/interactive tools without pty=t"
    "rue — without a pseudo-terminal they hang. Pipe git output to cat if it might pa"
    "ge.\\n\",\"parameters\":{\"type\":\"object\",\"properties\":{\"command\":{\"type"
    "\":\"string\",\"description\":\"The command to execute on the VM\"},\"background"
    "\":{\"type\":\"boolean\",\"description\":\"ONLY for servers/watchers that never "
    "exit. For scripts, builds and installs use foreground with a timeout instead (it"
    " returns as soon as the command ends).\",\"default\":false},\"timeout\":{\"type\""
    ":\"integer\",\"description\":\"Max seconds to wait (default: 180). Returns AS SO"
    "ON AS the command finishes — set it high for long tasks, you will not wait longe"
    "r than needed.\",\"minimum\":1},\"workdir\":{\"type\":\"string\",\"description\""
    ":\"Working directory for this command (absolute path). Defaults to the session w"
    "orking directory.\"},\"check_interval\":{\"type\":\"integer\",\"description\":\""
    "Seconds between automatic status checks of a background process (gateway/messagi"
    "ng only, minimum 30). When set, progress is reported proactively.\",\"minimum\":"
    "30},\"pty\":{\"type\":\"boolean\",\"description\":\"Run in a pseudo-terminal (PT"
    "Y) for interactive CLI tools such as Codex, Claude Code or a Python REPL. Only w"
    "orks with the local and SSH backends. Default: false.\",\"default\":false}},\"re"
    "quired\":[\"command\"]}}";

typedef enum {
    ST_START,
    ST_APPROVAL, /* waiting for the session's approval answer */
    ST_SUDO,     /* waiting for a sudo password */
    ST_SANDBOX,  /* waiting for the registry's sandbox */
    ST_RUNNING,  /* the foreground command runs */
    ST_STOPPING, /* interrupted: waiting for its EXIT */
    ST_SPAWNING, /* waiting for the registry's background spawn */
} tstate;

typedef struct term_call {
    tstate st;
    term_config cfg;
    bool have_cfg;
    char *command;       /* as the model wrote it */
    char *exec;          /* what runs (sudo-transformed), NULL: command */
    char *password;      /* the sudo password in use (masked in output), or NULL */
    char *cwd;           /* resolved working directory */
    int64_t timeout_s;   /* foreground timeout */
    int64_t check_every; /* check_interval argument, 0 if none */
    bool background, pty;
    term_target *target; /* where it runs, once known */
    uint64_t rid;        /* the foreground rt_proc */
    term_outbuf out;     /* its output */
    term_marker mk;      /* remote backends: the command's pid, out of the output */
    bool remote_killed;  /* the remote kill was sent */
    bool stop_pending;   /* interrupted before the remote pid was known */
    rt_ref procs;        /* the registry, once asked */
} term_call;

/* ================================================================ results */

static void finish_result(rt_ctx *cx, tool_run *run, const char *output, int exit_code,
                          const char *error, const char *status)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "output", output ? output : "");
    cJSON_AddNumberToObject(o, "exit_code", exit_code);
    if (error)
        cJSON_AddStringToObject(o, "error", error);
    else
        cJSON_AddNullToObject(o, "error");
    if (status)
        cJSON_AddStringToObject(o, "status", status);
    tool_finish_json(cx, run, o);
}

static void finish_failed(rt_ctx *cx, tool_run *run, const char *why)
{
    char msg[1200];
    snprintf(msg, sizeof(msg), "Failed to execute command: %s", why);
    finish_result(cx, run, "", -1, msg, "error");
}

static bool is_cli(const tool_env *e)
{
    return !e->platform || strcmp(e->platform, "cli") == 0;
}

/* ================================================================ set-up */

static char *expand_tilde(const char *p)
{
    const char *home = getenv("HOME");
    if (home && *home && (strcmp(p, "~") == 0 || strncmp(p, "~/", 2) == 0))
        return rt_xasprintf("%s%s", home, p + 1);
    return rt_xstrdup(p);
}

/* local: workdir (absolute, or relative to the session's cwd) > the session's cwd >
 * TERMINAL_CWD > our cwd. Other backends: workdir > TERMINAL_CWD > "~" (paths there are
 * the sandbox's, not ours). */
static char *resolve_cwd(const tool_run *run, const term_config *c, const char *workdir)
{
    if (c->backend != TERM_BE_LOCAL)
        return rt_xstrdup(workdir && *workdir ? workdir : c->cwd ? c->cwd : "~");
    char here[4096];
    const char *base = run->env->cwd && *run->env->cwd ? run->env->cwd : c->cwd;
    if (!base || !*base)
        base = getcwd(here, sizeof(here)) ? here : "/";
    char *b = expand_tilde(base);
    if (!workdir || !*workdir)
        return b;
    char *w = expand_tilde(workdir);
    if (w[0] == '/') {
        rt_free(b);
        return w;
    }
    char *j = rt_xasprintf("%s/%s", b, w);
    rt_free(b);
    rt_free(w);
    return j;
}

static void launch(rt_ctx *cx, tool_run *run, term_call *c);

static bool ask_registry(rt_ctx *cx, tool_run *run, term_call *c)
{
    if (!c->procs) {
        c->procs = term_procs_ref(cx);
        if (!c->procs) {
            finish_failed(cx, run, "the process registry is not running");
            return false;
        }
        (void)rt_monitor(cx, c->procs); /* a DOWN ends a wait on it cleanly */
    }
    return true;
}

static void get_sandbox(rt_ctx *cx, tool_run *run, term_call *c)
{
    if (c->cfg.backend == TERM_BE_LOCAL) {
        c->target = term_target_new(&c->cfg, NULL, NULL);
        launch(cx, run, c);
        return;
    }
    if (!ask_registry(cx, run, c))
        return;
    term_msg_sandbox *m = term_sandbox_new();
    m->reply_to = rt_self(cx);
    m->task_id = rt_xstrdup(run->env->task_id);
    m->config = term_config_dup(&c->cfg);
    c->st = ST_SANDBOX;
    rt_send(cx, c->procs, &m->hdr);
}

static void use_password(term_call *c, const char *pw)
{
    rt_free(c->exec);
    c->exec = term_sudo_transform(c->command, pw);
    c->password = rt_xstrdup(pw);
}

static void check_sudo(rt_ctx *cx, tool_run *run, term_call *c)
{
    if (term_has_sudo(c->command)) {
        const char *pw = getenv("SUDO_PASSWORD");
        if (pw && *pw) {
            use_password(c, pw);
        } else if (run->env->interactive && is_cli(run->env)) {
            c->st = ST_SUDO;
            tool_ask(cx, run, TOOL_ASK_SUDO, rt_xstrdup("sudo password"),
                     rt_xstrdup("The command uses sudo. Enter the sudo password (input hidden; "
                                "it is kept for this session), or leave it empty to run the "
                                "command without one."),
                     NULL, NULL);
            return;
        }
    }
    get_sandbox(cx, run, c);
}

static void check_approval(rt_ctx *cx, tool_run *run, term_call *c)
{
    char key[128];
    const char *desc;
    term_backend b = c->cfg.backend;
    if (b == TERM_BE_DOCKER || b == TERM_BE_SINGULARITY || b == TERM_BE_MODAL ||
        !term_is_dangerous(c->command, key, sizeof(key), &desc) ||
        term_key_allowed(run->env->command_allowlist, key) || !run->env->interactive) {
        check_sudo(cx, run, c);
        return;
    }
    RT_INFO("terminal", "dangerous command needs approval pattern=%s", key);
    c->st = ST_APPROVAL;
    tool_ask(cx, run, TOOL_ASK_APPROVAL, rt_xstrdup(c->command), rt_xstrdup(desc), rt_xstrdup(key),
             NULL);
}

static void term_start(rt_ctx *cx, tool_run *run)
{
    term_call *c = rt_xcalloc(1, sizeof(*c));
    run->data = c;
    term_outbuf_init(&c->out);
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(run->args, "command");
    if (!cJSON_IsString(cmd)) {
        finish_failed(cx, run, "'command' is required and must be a string");
        return;
    }
    c->command = rt_xstrdup(cmd->valuestring);
    char err[512];
    if (term_config_load(&c->cfg, run->env->hermes_home, err, sizeof(err)) != 0) {
        finish_failed(cx, run, err);
        return;
    }
    c->have_cfg = true;
    if (c->cfg.backend == TERM_BE_MODAL) {
        finish_failed(cx, run,
                      "the modal backend is not supported yet; set terminal.backend "
                      "(TERMINAL_ENV) to local, ssh, docker or singularity");
        return;
    }
    int64_t def = run->env->terminal_timeout_s > 0 ? run->env->terminal_timeout_s : 180;
    int64_t t = tool_arg_int(run, "timeout", 0);
    c->timeout_s = t > 0 ? t : def;
    if (c->timeout_s > MAX_TIMEOUT_S)
        c->timeout_s = MAX_TIMEOUT_S;
    c->background = tool_arg_bool(run, "background", false);
    c->pty = tool_arg_bool(run, "pty", false) && c->cfg.backend == TERM_BE_LOCAL;
    c->check_every = tool_arg_int(run, "check_interval", 0);
    c->cwd = resolve_cwd(run, &c->cfg, tool_arg_str(run, "workdir"));
    check_approval(cx, run, c);
}

/* ================================================================ running */

static void spawn_background(rt_ctx *cx, tool_run *run, term_call *c)
{
    if (!ask_registry(cx, run, c))
        return;
    term_msg_spawn *m = term_spawn_new();
    m->reply_to = rt_self(cx);
    m->command = rt_xstrdup(c->command);
    m->exec = rt_xstrdup(c->exec ? c->exec : c->command);
    m->cwd = rt_xstrdup(c->cwd);
    m->task_id = rt_xstrdup(run->env->task_id);
    m->session_key = rt_xstrdup(run->env->session_key);
    m->mask = rt_xstrdup(c->password);
    m->target = term_target_dup(c->target);
    m->pty = c->pty;
    c->st = ST_SPAWNING;
    rt_send(cx, c->procs, &m->hdr);
}

static void launch(rt_ctx *cx, tool_run *run, term_call *c)
{
    if (c->background) {
        spawn_background(cx, run, c);
        return;
    }
    bool local = c->target->backend == TERM_BE_LOCAL;
    char **argv = term_exec_argv(c->target, c->cwd, c->exec ? c->exec : c->command, false, !local);
    c->mk.done = local; /* only remote commands print the marker */
    rt_proc_opts o = {
        .argv = (const char *const *)argv,
        .cwd = local ? c->cwd : NULL,
        .timeout_ms = c->timeout_s * 1000,
        .max_output = OUTPUT_UNLIMITED,
        .merge_stderr = true,
        .reply_to = rt_self(cx),
    };
    c->rid = rt_proc_spawn(cx, &o);
    term_argv_free(argv);
    if (!c->rid) {
        finish_failed(cx, run, "the command could not be started");
        return;
    }
    c->st = ST_RUNNING;
}

static const char *backend_error_prefix(term_backend b)
{
    switch (b) {
    case TERM_BE_SSH: return "SSH execution error";
    case TERM_BE_DOCKER: return "Docker execution error";
    case TERM_BE_SINGULARITY: return "Singularity execution error";
    default: return "Execution error";
    }
}

static void out_sink(void *arg, const char *p, size_t n)
{
    term_outbuf_append(arg, p, n);
}

/*
 * Our client (ssh, docker exec) is gone, but the command it started may live on where it
 * runs: end its process group there too. Fire and forget: the reply goes to an actor that
 * is about to finish (a dead letter), the kill itself runs to the end on the reactor.
 */
static void kill_remote(rt_ctx *cx, term_call *c)
{
    if (c->remote_killed || !c->mk.pid || c->target->backend == TERM_BE_LOCAL)
        return;
    c->remote_killed = true;
    char *cmd = term_remote_kill_command(c->mk.pid);
    char **argv = term_exec_argv(c->target, "/", cmd, false, false);
    rt_proc_opts o = {.argv = (const char *const *)argv,
                      .timeout_ms = 15000,
                      .max_output = 4096,
                      .merge_stderr = true,
                      .reply_to = rt_self(cx)};
    (void)rt_proc_spawn(cx, &o);
    term_argv_free(argv);
    rt_free(cmd);
}

/* Stop the foreground command: where it runs (if remote), then our client, whose whole
 * session gets SIGTERM and, a second later, SIGKILL. The EXIT follows. */
static void stop_now(rt_ctx *cx, term_call *c)
{
    c->stop_pending = false;
    kill_remote(cx, c);
    rt_proc_interrupt(cx, c->rid);
    rt_send_after(cx, rt_self(cx), rt_timeout_new(TAG_INTERRUPT), INTERRUPT_WAIT_MS);
}

static void on_exit_msg(rt_ctx *cx, tool_run *run, term_call *c, const rt_proc_msg_exit *e)
{
    term_backend b = c->target->backend;
    term_marker_flush(&c->mk, out_sink, &c->out);
    if (run->interrupted || e->timed_out)
        kill_remote(cx, c);
    if (e->err && !run->interrupted) {
        char msg[1200];
        if (e->err == -ENOENT) /* the shell is checked first: the directory is missing */
            snprintf(msg, sizeof(msg), "%s: No such file or directory: '%s'",
                     backend_error_prefix(b), b == TERM_BE_LOCAL ? c->cwd : c->target->exe);
        else
            snprintf(msg, sizeof(msg), "%s: %s (working directory '%s')", backend_error_prefix(b),
                     rt_strerror(e->err), c->cwd);
        finish_result(cx, run, msg, 1, NULL, NULL);
        return;
    }
    /* Leading shell noise goes in every case (the original kept it in an interrupted
     * command's output; it says nothing). */
    term_finish_opts fo = {.mask = c->password,
                           .strip_noise = b == TERM_BE_LOCAL,
                           .sudo_tip = !is_cli(run->env) && run->env->platform != NULL};
    int code;
    char tmo[96];
    const char *error = NULL;
    if (run->interrupted) {
        fo.note = b == TERM_BE_LOCAL ? TERM_NOTE_INTERRUPTED : TERM_NOTE_INTERRUPTED_REMOTE;
        code = 130;
    } else if (e->timed_out) {
        snprintf(tmo, sizeof(tmo), "Command timed out after %lld seconds", (long long)c->timeout_s);
        error = tmo;
        code = 124;
    } else {
        code = e->exit_code >= 0 ? e->exit_code : -e->term_signal;
    }
    char *out = term_outbuf_finish(&c->out, &fo);
    RT_DEBUG("terminal", "command ended exit_code=%d bytes=%llu", code,
             (unsigned long long)c->out.total_bytes);
    finish_result(cx, run, out, code, error, NULL);
    rt_free(out);
}

static void on_spawned(rt_ctx *cx, tool_run *run, term_call *c, const term_msg_spawned *s)
{
    if (s->error) {
        finish_result(cx, run, "", -1, s->error, NULL);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "output", "Background process started");
    cJSON_AddStringToObject(o, "session_id", s->session_id);
    if (s->pid > 0)
        cJSON_AddNumberToObject(o, "pid", (double)s->pid);
    else
        cJSON_AddNullToObject(o, "pid");
    cJSON_AddNumberToObject(o, "exit_code", 0);
    cJSON_AddNullToObject(o, "error");
    if (c->check_every > 0 && c->check_every < 30) {
        char note[96];
        snprintf(note, sizeof(note), "Requested %llds raised to minimum 30s",
                 (long long)c->check_every);
        cJSON_AddStringToObject(o, "check_interval_note", note);
    }
    tool_finish_json(cx, run, o);
}

static void on_answer(rt_ctx *cx, tool_run *run, term_call *c, const tool_msg_answer *a)
{
    if (c->st == ST_APPROVAL) {
        if (a->answer == TOOL_ANSWER_ONCE || a->answer == TOOL_ANSWER_SESSION ||
            a->answer == TOOL_ANSWER_ALWAYS) {
            check_sudo(cx, run, c);
            return;
        }
        char key[128];
        const char *desc = NULL;
        term_is_dangerous(c->command, key, sizeof(key), &desc);
        char *msg = term_blocked_message(desc);
        finish_result(cx, run, "", -1, msg, "blocked");
        rt_free(msg);
    } else if (c->st == ST_SUDO) {
        if (a->answer == TOOL_ANSWER_TEXT && a->text && *a->text)
            use_password(c, a->text);
        get_sandbox(cx, run, c);
    }
}

static void term_msg(rt_ctx *cx, tool_run *run, rt_msg *m)
{
    term_call *c = run->data;
    switch (m->type) {
    case RT_PROC_MSG_OUTPUT: {
        const rt_proc_msg_output *o = (const rt_proc_msg_output *)m;
        if (o->id == c->rid)
            term_marker_feed(&c->mk, o->data, o->len, out_sink, &c->out);
        if (c->stop_pending && c->mk.done)
            stop_now(cx, c); /* the remote pid is known now */
        break;
    }
    case RT_PROC_MSG_EXIT:
        if (((const rt_proc_msg_exit *)m)->id == c->rid &&
            (c->st == ST_RUNNING || c->st == ST_STOPPING))
            on_exit_msg(cx, run, c, (const rt_proc_msg_exit *)m);
        break;
    case TOOL_MSG_ANSWER: on_answer(cx, run, c, (const tool_msg_answer *)m); break;
    case TERM_MSG_SANDBOX_READY: {
        term_msg_sandbox_ready *r = (term_msg_sandbox_ready *)m;
        if (c->st != ST_SANDBOX)
            break;
        if (r->error) {
            finish_failed(cx, run, r->error);
            break;
        }
        c->target = r->target;
        r->target = NULL;
        launch(cx, run, c);
        break;
    }
    case TERM_MSG_SPAWNED:
        if (c->st == ST_SPAWNING)
            on_spawned(cx, run, c, (const term_msg_spawned *)m);
        break;
    case RT_MSG_DOWN:
        if (((const rt_msg_down *)m)->ref == c->procs &&
            (c->st == ST_SANDBOX || c->st == ST_SPAWNING))
            finish_failed(cx, run, "the process registry stopped");
        break;
    case RT_MSG_TIMEOUT:
        if (((rt_msg_timeout *)m)->tag == TAG_MARKER) {
            if (c->stop_pending)
                stop_now(cx, c);           /* no pid came: stop our client at least */
        } else if (c->st == ST_STOPPING) { /* the EXIT did not come: answer with what we have */
            char *out = term_outbuf_finish(&c->out, &(term_finish_opts){
                                                        .note = TERM_NOTE_INTERRUPTED,
                                                        .strip_noise = true,
                                                        .mask = c->password,
                                                    });
            finish_result(cx, run, out, 130, NULL, NULL);
            rt_free(out);
        }
        break;
    default: break;
    }
}

static void term_interrupt(rt_ctx *cx, tool_run *run)
{
    term_call *c = run->data;
    switch (c ? c->st : ST_START) {
    case ST_RUNNING:
        c->st = ST_STOPPING;
        if (!c->mk.done) {
            /* A remote command's pid is still on its way: stopping our client now would
             * leave the command running where it is. Wait a moment for the pid. */
            c->stop_pending = true;
            rt_send_after(cx, rt_self(cx), rt_timeout_new(TAG_MARKER), MARKER_WAIT_MS);
        } else {
            stop_now(cx, c);
        }
        break;
    case ST_STOPPING: break;
    case ST_SPAWNING:
        finish_result(cx, run, "", 130,
                      "Interrupted while the background process was starting; it may be "
                      "running: see process(action='list')",
                      NULL);
        break;
    default: finish_result(cx, run, &TERM_NOTE_INTERRUPTED[1], 130, NULL, NULL); break;
    }
}

static void term_cleanup(tool_run *run)
{
    term_call *c = run->data;
    if (!c)
        return;
    if (c->have_cfg)
        term_config_fini(&c->cfg);
    rt_free(c->command);
    if (c->exec)
        explicit_bzero(c->exec, strlen(c->exec));
    rt_free(c->exec);
    if (c->password)
        explicit_bzero(c->password, strlen(c->password));
    rt_free(c->password);
    rt_free(c->cwd);
    term_target_free(c->target);
    term_outbuf_fini(&c->out);
    rt_free(c);
    run->data = NULL;
}

const tool_def tool_def_terminal = {
    .name = "terminal",
    .toolset = "terminal",
    .schema = terminal_schema,
    .parallel_safe = false,
    .start = term_start,
    .on_msg = term_msg,
    .on_interrupt = term_interrupt,
    .cleanup = term_cleanup,
};
