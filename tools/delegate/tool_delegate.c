/*
 * delegate_task — subagents (agent-core §3.6).
 *
 * The call's actor spawns one session actor per task through the host (tool_env.spawn_child)
 * and links each as its child, so the tree is: parent session → this call → child sessions →
 * their tool calls. An interrupt of the parent travels down every link at once (rt_interrupt
 * forwards to children before their behaviours run): children cancel their model requests and
 * their tools kill their processes, and this call answers at once with what it has.
 *
 * Up to delegation.max_concurrent_children tasks per call (default 3), all running at once;
 * each child has its own conversation and task id (its own terminal), the parent's platform,
 * delegation.max_iterations (25) unless the call says otherwise, and a tool list without
 * delegate_task, clarify, memory, send_message and execute_code — removed by tool name, so a
 * preset toolset cannot smuggle them back in (the original's Appendix A bug 8). A child that
 * wants a dangerous command approved asks through this call: the question goes up to the
 * parent's session (and so to the user), one at a time, and the answer comes back down.
 *
 * Only each child's final summary returns: {results: [{task_index, status, summary,
 * api_calls, duration_seconds, error?}], total_duration_seconds}.
 */
#include "tool.h"

#include "ag_session.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAX_DEPTH           2
#define DEFAULT_CONCURRENT  3
#define DEFAULT_ITERATIONS  25
#define SUMMARY_PREVIEW_MAX 80

static const char *const blocked[] = {"delegate_task", "clarify", "memory", "send_message",
                                      "execute_code"};

typedef struct child {
    rt_ref ref;
    int index;
    char *goal;
    char *context;
    char **toolsets; /* NULL-terminated, or NULL: the defaults */
    char *model;
    int max_iterations;
    int64_t started_ns;
    double duration_s;
    bool done;
    int status; /* 0 running, 1 completed, 2 interrupted, 3 failed, 4 error */
    char *summary;
    char *error;
    int api_calls;
} child;

typedef struct pending_ask {
    int child;
    uint64_t ask_id;
    int kind;
    char *text;
    char *description;
} pending_ask;

typedef struct delegate_state {
    child *kids;
    size_t n;
    size_t finished;
    int64_t start_ns;
    pending_ask *asks;
    size_t nasks;
    bool asking; /* the oldest ask is with the parent */
} delegate_state;

static int64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static char **str_list(const cJSON *arr)
{
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0)
        return NULL;
    char **out = rt_xcalloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*out));
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (cJSON_IsString(it) && *it->valuestring)
            out[n++] = rt_xstrdup(it->valuestring);
    }
    return out;
}

static void free_list(char **l)
{
    for (char **p = l; p && *p; p++)
        rt_free(*p);
    rt_free(l);
}

static void free_state(delegate_state *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        child *c = &d->kids[i];
        rt_free(c->goal);
        rt_free(c->context);
        free_list(c->toolsets);
        rt_free(c->model);
        rt_free(c->summary);
        rt_free(c->error);
    }
    rt_free(d->kids);
    for (size_t i = 0; i < d->nasks; i++) {
        rt_free(d->asks[i].text);
        rt_free(d->asks[i].description);
    }
    rt_free(d->asks);
    rt_free(d);
}

static bool is_blocked(const char *name)
{
    for (size_t i = 0; i < RT_ARRAY_LEN(blocked); i++)
        if (strcmp(blocked[i], name) == 0)
            return true;
    return false;
}

/* The child's tools: its toolsets (or delegation.default_toolsets) resolved, minus the
 * blocked names, and only tools the parent itself may use when it names explicit tools. */
static const char **child_tools(const tool_env *env, char **toolsets)
{
    static const char *const defaults[] = {"terminal", "file", "web", NULL};
    const char *const *sets =
        toolsets ? (const char *const *)toolsets
                 : (env->child_toolsets ? (const char *const *)env->child_toolsets : defaults);
    const char **names = tool_resolve(sets, NULL, env, NULL, NULL);
    size_t keep = 0;
    for (size_t i = 0; names[i]; i++)
        if (!is_blocked(names[i]))
            names[keep++] = names[i];
    names[keep] = NULL;
    return names;
}

static const char *status_name(int s)
{
    switch (s) {
    case 1: return "completed";
    case 2: return "interrupted";
    case 3: return "failed";
    case 4: return "error";
    default: return "running";
    }
}

static void finish_all(rt_ctx *cx, tool_run *run)
{
    delegate_state *d = run->data;
    cJSON *out = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(out, "results");
    for (size_t i = 0; i < d->n; i++) {
        child *c = &d->kids[i];
        if (c->ref) {
            rt_unlink(cx, c->ref);
            rt_stop(cx, c->ref, RT_EXIT_NORMAL); /* its work is done (or abandoned) */
            c->ref = 0;
        }
        if (!c->done) {
            c->status = 2;
            c->duration_s = (double)(mono_ns() - c->started_ns) / 1e9;
        }
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "task_index", c->index);
        cJSON_AddStringToObject(r, "status", status_name(c->status));
        cJSON_AddStringToObject(r, "summary", c->summary ? c->summary : "");
        cJSON_AddNumberToObject(r, "api_calls", c->api_calls);
        cJSON_AddNumberToObject(r, "duration_seconds",
                                (double)(int64_t)(c->duration_s * 100) / 100);
        if (c->error)
            cJSON_AddStringToObject(r, "error", c->error);
        cJSON_AddItemToArray(arr, r);
    }
    double total = (double)(mono_ns() - d->start_ns) / 1e9;
    cJSON_AddNumberToObject(out, "total_duration_seconds", (double)(int64_t)(total * 100) / 100);
    tool_finish_json(cx, run, out);
}

static void child_ended(rt_ctx *cx, tool_run *run, child *c)
{
    delegate_state *d = run->data;
    c->done = true;
    c->duration_s = (double)(mono_ns() - c->started_ns) / 1e9;
    if (++d->finished < d->n)
        return;
    finish_all(cx, run);
}

static child *child_of_ref(delegate_state *d, rt_ref ref)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->kids[i].ref == ref)
            return &d->kids[i];
    return NULL;
}

/* ============================================================== asks */

static void next_ask(rt_ctx *cx, tool_run *run)
{
    delegate_state *d = run->data;
    if (d->asking || !d->nasks)
        return;
    pending_ask *a = &d->asks[0];
    d->asking = true;
    char *text = rt_xasprintf("[subagent %d] %s", a->child + 1, a->text ? a->text : "");
    tool_ask(cx, run, a->kind, text, a->description ? rt_xstrdup(a->description) : NULL,
             a->description ? rt_xstrdup(a->description) : NULL, NULL);
}

static void on_child_ask(rt_ctx *cx, tool_run *run, int index, ag_msg_ask *q)
{
    delegate_state *d = run->data;
    child *c = &d->kids[index];
    if (q->kind != TOOL_ASK_APPROVAL) { /* children have no clarify; sudo cannot be relayed */
        rt_send(cx, c->ref, ag_answer_new(q->ask_id, TOOL_ANSWER_DENY, NULL));
        return;
    }
    d->asks = rt_xrealloc(d->asks, (d->nasks + 1) * sizeof(*d->asks));
    d->asks[d->nasks++] = (pending_ask){.child = index,
                                        .ask_id = q->ask_id,
                                        .kind = q->kind,
                                        .text = q->text,
                                        .description = q->description};
    q->text = q->description = NULL;
    next_ask(cx, run);
}

static void on_answer(rt_ctx *cx, tool_run *run, tool_msg_answer *m)
{
    delegate_state *d = run->data;
    if (!d->asking || !d->nasks)
        return;
    pending_ask a = d->asks[0];
    memmove(d->asks, d->asks + 1, (d->nasks - 1) * sizeof(*d->asks));
    d->nasks--;
    d->asking = false;
    child *c = &d->kids[a.child];
    if (c->ref && !c->done)
        rt_send(cx, c->ref, ag_answer_new(a.ask_id, m->answer, m->text));
    rt_free(a.text);
    rt_free(a.description);
    next_ask(cx, run);
}

/* ============================================================= start */

static char *child_prompt(const child *c)
{
    return rt_xasprintf(
        "You are a focused subagent working on a specific delegated task.\n\nYOUR TASK:\n%s\n%s%s%s"
        "\nComplete this task using the tools available to you. When finished, reply with a "
        "concise summary of what you did, what you found, any files you created or changed, "
        "and any issues you ran into. That summary is all the delegating agent will see.",
        c->goal, c->context ? "\nCONTEXT:\n" : "", c->context ? c->context : "",
        c->context ? "\n" : "");
}

static int add_task(delegate_state *d, const cJSON *task, const tool_run *run, size_t i)
{
    const cJSON *goal = cJSON_GetObjectItemCaseSensitive(task, "goal");
    if (!cJSON_IsString(goal) || !*goal->valuestring)
        return -EINVAL;
    child *c = &d->kids[d->n++];
    c->index = (int)i;
    c->goal = rt_xstrdup(goal->valuestring);
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(task, "context");
    c->context = cJSON_IsString(ctx) && *ctx->valuestring ? rt_xstrdup(ctx->valuestring) : NULL;
    c->toolsets = str_list(cJSON_GetObjectItemCaseSensitive(task, "toolsets"));
    if (!c->toolsets)
        c->toolsets = str_list(cJSON_GetObjectItemCaseSensitive(run->args, "toolsets"));
    const char *model = tool_arg_str(run, "model");
    c->model = model && *model ? rt_xstrdup(model) : NULL;
    int64_t it = tool_arg_int(run, "max_iterations", 0);
    c->max_iterations =
        it > 0 ? (int)(it > 200 ? 200 : it)
               : (run->env->child_iterations > 0 ? run->env->child_iterations : DEFAULT_ITERATIONS);
    return 0;
}

static void delegate_start(rt_ctx *cx, tool_run *run)
{
    const tool_env *env = run->env;
    if (env->delegate_depth >= MAX_DEPTH) {
        tool_finish_error(cx, run,
                          "Delegation depth limit reached (%d). Subagents cannot spawn further "
                          "subagents.",
                          MAX_DEPTH);
        return;
    }
    if (!env->spawn_child) {
        tool_finish_error(cx, run, "Delegation is not available in this execution context.");
        return;
    }
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(run->args, "tasks");
    const char *goal = tool_arg_str(run, "goal");
    int max = env->max_children > 0 ? env->max_children : DEFAULT_CONCURRENT;
    size_t ntasks = cJSON_IsArray(tasks) ? (size_t)cJSON_GetArraySize(tasks) : 0;
    if (!ntasks && !(goal && *goal)) {
        tool_finish_error(cx, run, "Provide either 'goal' (single task) or 'tasks' (batch).");
        return;
    }
    if (ntasks > (size_t)max) {
        tool_finish_error(cx, run,
                          "Too many tasks: %zu given, at most %d run at once "
                          "(delegation.max_concurrent_children). Split the work into batches.",
                          ntasks, max);
        return;
    }
    delegate_state *d = rt_xcalloc(1, sizeof(*d));
    run->data = d;
    d->kids = rt_xcalloc(ntasks ? ntasks : 1, sizeof(*d->kids));
    if (ntasks) {
        for (size_t i = 0; i < ntasks; i++) {
            if (add_task(d, cJSON_GetArrayItem(tasks, (int)i), run, i) != 0) {
                tool_finish_error(cx, run, "Task %zu is missing a 'goal'.", i);
                return;
            }
        }
    } else {
        cJSON *one = cJSON_CreateObject();
        cJSON_AddStringToObject(one, "goal", goal);
        const char *ctx = tool_arg_str(run, "context");
        if (ctx)
            cJSON_AddStringToObject(one, "context", ctx);
        add_task(d, one, run, 0);
        cJSON_Delete(one);
    }
    rt_trap_exit(cx, true); /* a crashed child is a failed task, not a crashed call */
    d->start_ns = mono_ns();
    for (size_t i = 0; i < d->n; i++) {
        child *c = &d->kids[i];
        const char **names = child_tools(env, c->toolsets);
        char *prompt = child_prompt(c);
        tool_child_req req = {.goal = c->goal,
                              .instructions = prompt,
                              .tools = names,
                              .model = c->model,
                              .max_iterations = c->max_iterations,
                              .depth = env->delegate_depth + 1,
                              .parent = env};
        c->started_ns = mono_ns();
        c->ref = env->spawn_child(cx, &req, env->spawn_arg);
        rt_free(prompt);
        rt_free(names);
        if (!c->ref) {
            c->status = 4;
            c->error = rt_xstrdup("the subagent could not be started");
            child_ended(cx, run, c);
            if (run->finished)
                return;
            continue;
        }
        rt_link_child(cx, c->ref);
        /* the goal is the child's message; its task prompt is its ephemeral system prompt */
        rt_send(cx, c->ref, ag_input_new(c->goal, rt_self(cx), (uint64_t)i + 1));
    }
    tool_progress(cx, run, "%zu subagent%s working", d->n, d->n == 1 ? "" : "s");
}

/* ========================================================= messages */

static void on_done(rt_ctx *cx, tool_run *run, ag_msg_done *m)
{
    delegate_state *d = run->data;
    size_t i = (size_t)m->input_id - 1;
    if (i >= d->n || d->kids[i].done)
        return;
    child *c = &d->kids[i];
    c->api_calls = m->api_calls;
    if (m->interrupted) {
        c->status = 2;
    } else if (m->text && *m->text && m->completed) {
        c->status = 1;
    } else if (m->text && *m->text) {
        c->status = 3; /* the iteration limit: its summary still counts */
        c->error = rt_xstrdup("the subagent reached its iteration limit");
    } else {
        c->status = 3;
        c->error = rt_xstrdup(m->errmsg ? m->errmsg : "the subagent returned no summary");
    }
    c->summary = m->text;
    m->text = NULL;
    child_ended(cx, run, c);
}

static void delegate_msg(rt_ctx *cx, tool_run *run, rt_msg *m)
{
    delegate_state *d = run->data;
    if (!d)
        return;
    switch (m->type) {
    case AG_MSG_DONE: on_done(cx, run, (ag_msg_done *)m); break;
    case AG_MSG_ASK: {
        ag_msg_ask *q = (ag_msg_ask *)m;
        child *c = child_of_ref(d, q->from);
        if (c && !c->done)
            on_child_ask(cx, run, (int)(c - d->kids), q);
        else
            rt_send(cx, q->from, ag_answer_new(q->ask_id, TOOL_ANSWER_DENY, NULL));
        break;
    }
    case AG_MSG_PROGRESS: {
        ag_msg_progress *p = (ag_msg_progress *)m;
        child *c = child_of_ref(d, p->from);
        if (c && p->tool)
            tool_progress(cx, run, "[%d] %s%s%s", c->index + 1, p->tool,
                          p->preview && *p->preview ? ": " : "", p->preview ? p->preview : "");
        break;
    }
    case TOOL_MSG_ANSWER: on_answer(cx, run, (tool_msg_answer *)m); break;
    case RT_MSG_EXIT: {
        rt_msg_exit *e = (rt_msg_exit *)m;
        child *c = child_of_ref(d, e->from);
        if (!c || c->done || e->reason == RT_EXIT_NORMAL)
            break;
        c->ref = 0;
        c->status = 4;
        c->error = rt_xstrdup("the subagent stopped unexpectedly");
        child_ended(cx, run, c);
        break;
    }
    default: break;
    }
}

static void delegate_interrupt(rt_ctx *cx, tool_run *run)
{
    /* The runtime already passed the interrupt to every child (they are linked children):
     * their model requests are cancelled and their tools are dying. Answer now. */
    if (run->data)
        finish_all(cx, run);
    else
        tool_finish_error(cx, run, "interrupted");
}

static void delegate_cleanup(tool_run *run)
{
    free_state(run->data);
    run->data = NULL;
}

const tool_def tool_def_delegate_task = {
    .name = "delegate_task",
    .toolset = "delegation",
    .schema =
        "{\"name\":\"delegate_task\",\"description\":\"Hand one task, or a batch of tasks that "
        "run in parallel, to subagents. Each subagent starts with a fresh conversation, its own "
        "terminal session and a restricted set of tools, and works until it can report back. "
        "You receive only each subagent's final summary, never its intermediate tool output, "
        "so delegating keeps your own context small.\\n\\nUse 'goal' (with optional 'context' "
        "and 'toolsets') for one task, or 'tasks' for a batch that runs at once (up to "
        "delegation.max_concurrent_children, 3 by default). Give each subagent everything it "
        "needs in 'goal' and 'context': it cannot see this conversation. Subagents cannot "
        "delegate further, ask the user questions, edit memory, send messages or run "
        "execute_code.\",\"parameters\":{\"type\":\"object\",\"properties\":{\"goal\":{\"type\":"
        "\"string\",\"description\":\"What the subagent should accomplish (single-task "
        "mode).\"},\"context\":{\"type\":\"string\",\"description\":\"Background the subagent "
        "needs: file paths, constraints, what was already tried.\"},\"toolsets\":{\"type\":"
        "\"array\",\"items\":{\"type\":\"string\"},\"description\":\"Toolsets for the subagent "
        "(default: terminal, file, web).\"},\"tasks\":{\"type\":\"array\",\"description\":"
        "\"Several tasks to run in parallel (batch mode).\",\"items\":{\"type\":\"object\","
        "\"properties\":{\"goal\":{\"type\":\"string\"},\"context\":{\"type\":\"string\"},"
        "\"toolsets\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},\"required\":["
        "\"goal\"]}},\"model\":{\"type\":\"string\",\"description\":\"A different model for the "
        "subagents (default: yours).\"},\"max_iterations\":{\"type\":\"integer\",\"description\":"
        "\"Tool-calling turns each subagent may take (default 25).\"}}}}",
    .parallel_safe = false,
    .start = delegate_start,
    .on_msg = delegate_msg,
    .on_interrupt = delegate_interrupt,
    .cleanup = delegate_cleanup,
};
