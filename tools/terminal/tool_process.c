/*
 * tool_process — the `process` tool (agent-core §3.3, §4.3): list, poll, log, wait, kill,
 * write and submit for background processes started by terminal(background=true).
 *
 * The call is one request to the process registry (term_procs) and its one reply, which
 * is the result. `wait` is answered by the registry when the process ends or the wait
 * time (clamped to the terminal timeout) is up; an interrupt cancels it, and the
 * registry then answers {"status": "interrupted", …}. The call watches the registry, so
 * a registry that is gone gives a clean error instead of a hang.
 *
 * Errors as the original words them: {"error": "session_id is required for <action>"},
 * {"error": "Unknown process action: <a>. Use: list, poll, log, wait, kill, write,
 * submit"}, {"status": "not_found", "error": "No process with ID <id>"}.
 */
#include "rt_alloc.h"
#include "term_procs.h"
#include "tool.h"

#include <string.h>

#define CORR 1

/* The original's schema: parameter names, types, enum and minimums unchanged. */
static const char process_schema[] =
    "{\"name\":\"process\",\"description\":\"Manage background processes started with"
    " terminal(background=true). Actions: 'list' (show all), 'poll' (check status + n"
    "ew output), 'log' (full output with pagination), 'wait' (block until done or tim"
    "eout), 'kill' (terminate), 'write' (send raw stdin data without newline), 'submi"
    "t' (send data + Enter, for answering prompts).\",\"parameters\":{\"type\":\"obje"
    "ct\",\"properties\":{\"action\":{\"type\":\"string\",\"enum\":[\"list\",\"poll\""
    ",\"log\",\"wait\",\"kill\",\"write\",\"submit\"],\"description\":\"Action to per"
    "form on background processes\"},\"session_id\":{\"type\":\"string\",\"descriptio"
    "n\":\"Process session ID (from terminal background output). Required for all act"
    "ions except 'list'.\"},\"data\":{\"type\":\"string\",\"description\":\"Text to s"
    "end to process stdin (for 'write' and 'submit' actions)\"},\"timeout\":{\"type\""
    ":\"integer\",\"description\":\"Max seconds to block for 'wait' action. Returns p"
    "artial output on timeout.\",\"minimum\":1},\"offset\":{\"type\":\"integer\",\"de"
    "scription\":\"Line offset for 'log' action (default: last 200 lines)\"},\"limit\""
    ":{\"type\":\"integer\",\"description\":\"Max lines to return for 'log' action\","
    "\"minimum\":1}},\"required\":[\"action\"]}}";

typedef struct proc_call {
    rt_ref procs;   /* the registry */
    int action;     /* term_action */
    bool cancelled; /* a WAIT_CANCEL was sent */
} proc_call;

static int parse_action(const char *a)
{
    static const char *const names[] = {"list", "poll", "log", "wait", "kill", "write", "submit"};
    for (int i = 0; a && i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (strcmp(a, names[i]) == 0)
            return TERM_ACT_LIST + i;
    return 0;
}

static void send_cancel(rt_ctx *cx, tool_run *run, proc_call *pc)
{
    pc->cancelled = true;
    term_msg_req *m = term_req_new(TERM_ACT_WAIT_CANCEL);
    m->reply_to = rt_self(cx);
    m->corr = CORR;
    m->session_key = rt_xstrdup(run->env->session_key);
    rt_send(cx, pc->procs, &m->hdr);
}

static void proc_start(rt_ctx *cx, tool_run *run)
{
    proc_call *pc = rt_xcalloc(1, sizeof(*pc));
    run->data = pc;
    const char *action = tool_arg_str(run, "action");
    pc->action = parse_action(action);
    if (!pc->action) {
        tool_finish_error(cx, run,
                          "Unknown process action: %.200s. Use: list, poll, log, wait, kill, "
                          "write, submit",
                          action ? action : "");
        return;
    }
    const char *sid = tool_arg_str(run, "session_id");
    if (pc->action != TERM_ACT_LIST && (!sid || !*sid)) {
        tool_finish_error(cx, run, "session_id is required for %s", action);
        return;
    }
    pc->procs = term_procs_ref(cx);
    if (!pc->procs) {
        tool_finish_error(cx, run, "The process registry is not running.");
        return;
    }
    (void)rt_monitor(cx, pc->procs);
    term_msg_req *m = term_req_new(pc->action);
    m->reply_to = rt_self(cx);
    m->corr = CORR;
    m->session_id = rt_xstrdup(sid);
    m->data = rt_xstrdup(tool_arg_str(run, "data") ? tool_arg_str(run, "data") : "");
    m->session_key = rt_xstrdup(run->env->session_key);
    m->timeout_s = tool_arg_int(run, "timeout", 0);
    m->max_timeout_s = run->env->terminal_timeout_s > 0 ? run->env->terminal_timeout_s : 180;
    m->offset = tool_arg_int(run, "offset", 0);
    m->limit = tool_arg_int(run, "limit", 200);
    rt_send(cx, pc->procs, &m->hdr);
    if (run->interrupted && pc->action == TERM_ACT_WAIT)
        send_cancel(cx, run, pc); /* the interrupt came before the call started */
}

static void proc_msg(rt_ctx *cx, tool_run *run, rt_msg *m)
{
    proc_call *pc = run->data;
    if (m->type == TERM_MSG_REPLY) {
        term_msg_reply *r = (term_msg_reply *)m;
        char *json = r->json;
        r->json = NULL;
        tool_finish(cx, run, json);
    } else if (m->type == RT_MSG_DOWN && ((rt_msg_down *)m)->ref == pc->procs) {
        tool_finish_error(cx, run, "The process registry stopped.");
    }
}

static void proc_interrupt(rt_ctx *cx, tool_run *run)
{
    proc_call *pc = run->data;
    /* Before the start (the interrupt lane is served first), proc_start sees
     * run->interrupted; the other actions are answered at once anyway. */
    if (!pc || !pc->procs || pc->action != TERM_ACT_WAIT || pc->cancelled)
        return;
    send_cancel(cx, run, pc);
}

static void proc_cleanup(tool_run *run)
{
    rt_free(run->data);
    run->data = NULL;
}

const tool_def tool_def_process = {
    .name = "process",
    .toolset = "terminal",
    .schema = process_schema,
    .parallel_safe = false,
    .start = proc_start,
    .on_msg = proc_msg,
    .on_interrupt = proc_interrupt,
    .cleanup = proc_cleanup,
};
