/*
 * bench_delegate — delegate_task fan-out (issue 10): a parent session delegates N tasks at once
 * to N child sessions (each its own agent loop on the pool, linked to the parent) in front of
 * a scripted model that answers every child after BENCH_LLM_MS.
 *
 *   wall        time from the parent's input to its answer, over the model's latency: 1.0
 *               would be perfect parallelism (every child waits its latency at the same time)
 *   interrupt   the same fan-out with children the model never answers; the parent is
 *               interrupted (/stop) once all N children asked the model: time until every
 *               child actor has ended ("quiet")
 *
 * For N = 3, 30, 300 (BENCH_FANOUT="3 30 300"). Prints RESULT lines. Bounded: every wait has
 * a 60 s deadline.
 */
#include "ag_session.h"
#include "llm_provider.h"
#include "rt_alloc.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "tool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { T_ANSWER = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1) };

typedef struct answer_msg {
    rt_msg hdr;
    rt_ref to;
    uint64_t tag;
} answer_msg;

static int64_t llm_ms = 1000;
static _Atomic bool children_hang;
static _Atomic int child_requests;
static _Atomic int64_t parent_done_ns;
static char *parent_args;

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void reply(rt_ctx *cx, rt_ref to, uint64_t tag, const char *content, const char *calls)
{
    llm_msg_result *r = llm_result_msg_new(tag);
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", content);
    if (calls)
        cJSON_AddItemToObject(msg, "tool_calls", cJSON_Parse(calls));
    r->result.message = msg;
    r->result.finish_reason = rt_xstrdup(calls ? "tool_calls" : "stop");
    rt_send(cx, to, &r->hdr);
}

static bool is_child(const cJSON *msgs)
{
    const char *sys =
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "content"));
    return sys && strstr(sys, "YOUR TASK:");
}

static void model_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type == T_ANSWER) {
        answer_msg *a = (answer_msg *)m;
        reply(cx, a->to, a->tag, "child summary", NULL);
        return;
    }
    if (m->type == LLM_MSG_CANCEL) {
        llm_msg_cancel *c = (llm_msg_cancel *)m;
        llm_msg_result *r = llm_result_msg_new(c->tag);
        r->err = -ECANCELED;
        rt_send(cx, c->from, &r->hdr);
        return;
    }
    if (m->type != LLM_MSG_REQUEST)
        return;
    llm_msg_request *q = (llm_msg_request *)m;
    int n = cJSON_GetArraySize(q->messages);
    const char *role =
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(q->messages, n - 1), "role"));
    if (!is_child(q->messages)) {
        if (role && strcmp(role, "tool") == 0) {
            atomic_store(&parent_done_ns, now_ns());
            reply(cx, q->reply_to, q->tag, "parent done", NULL);
        } else {
            reply(cx, q->reply_to, q->tag, "", parent_args);
        }
        return;
    }
    atomic_fetch_add(&child_requests, 1);
    if (atomic_load(&children_hang))
        return; /* answered only by a cancel */
    answer_msg *a = RT_MSG_NEW(answer_msg, T_ANSWER);
    a->to = q->reply_to;
    a->tag = q->tag;
    rt_send_after(cx, rt_self(cx), &a->hdr, llm_ms);
}
static const rt_actor_type model_type = {"model", model_behave, NULL, 0};

static rt_ref model;

static rt_ref spawn_child(rt_ctx *cx, const tool_child_req *req, void *arg)
{
    (void)arg;
    tool_env *env = tool_env_new();
    env->delegate_depth = req->depth;
    ag_session_opts o = {.provider = model,
                         .env = env,
                         .tools = req->tools,
                         .ephemeral = req->instructions,
                         .max_iterations = req->max_iterations};
    rt_ref r = ag_session_spawn(cx, &o, NULL);
    tool_env_unref(env);
    return r;
}

static void sink_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)cx, (void)state, (void)m;
}
static const rt_actor_type sink_type = {"sink", sink_behave, NULL, 0};

static char *tasks_json(int n)
{
    cJSON *tasks = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *t = cJSON_CreateObject();
        char g[32];
        snprintf(g, sizeof(g), "task %d", i);
        cJSON_AddStringToObject(t, "goal", g);
        cJSON_AddItemToArray(tasks, t);
    }
    cJSON *args = cJSON_CreateObject();
    cJSON_AddItemToObject(args, "tasks", tasks);
    char *a = cJSON_PrintUnformatted(args);
    cJSON_Delete(args);
    cJSON *calls = cJSON_CreateArray();
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "id", "d1");
    cJSON_AddStringToObject(c, "type", "function");
    cJSON *f = cJSON_AddObjectToObject(c, "function");
    cJSON_AddStringToObject(f, "name", "delegate_task");
    cJSON_AddStringToObject(f, "arguments", a);
    cJSON_AddItemToArray(calls, c);
    cJSON_free(a);
    char *s = cJSON_PrintUnformatted(calls);
    cJSON_Delete(calls);
    char *out = rt_xstrdup(s);
    cJSON_free(s);
    return out;
}

static int64_t live_actors(rt_runtime *rt)
{
    rt_stats st;
    rt_stats_get(rt, &st);
    return (int64_t)(st.spawned - st.exited);
}

/* One fan-out of n; hang: the children never get an answer and the parent is stopped. */
static void run(int n, bool hang)
{
    atomic_store(&children_hang, hang);
    atomic_store(&child_requests, 0);
    atomic_store(&parent_done_ns, 0);
    rt_free(parent_args);
    parent_args = tasks_json(n);
    const char *w = getenv("HERMES_WORKERS");
    rt_options ro = {.workers = w ? (int)strtol(w, NULL, 10) : 0};
    rt_runtime *rt = rt_runtime_new(&ro);
    rt_ctx *cx = rt_ctx_external(rt);
    model = rt_spawn(cx, &model_type, NULL, NULL);
    tool_env *env = tool_env_new();
    env->spawn_child = spawn_child;
    env->max_children = n;
    static const char *tools[] = {"delegate_task", NULL};
    env->enabled_tools = rt_xcalloc(2, sizeof(char *));
    env->enabled_tools[0] = rt_xstrdup("delegate_task");
    ag_session_opts o = {.provider = model, .env = env, .tools = tools, .max_iterations = 5};
    rt_ref parent = ag_session_spawn(cx, &o, NULL);
    tool_env_unref(env);
    rt_ref sink = rt_spawn(cx, &sink_type, NULL, NULL);
    (void)rt_wait_quiescent(rt, 10000);
    int64_t base = live_actors(rt);
    int64_t t0 = now_ns(), deadline = t0 + 60 * 1000000000LL;
    rt_send(cx, parent, ag_input_new("go", sink, 1));
    if (!hang) {
        while (!atomic_load(&parent_done_ns) && now_ns() < deadline)
            usleep(200);
        int64_t wall = atomic_load(&parent_done_ns) - t0;
        printf("RESULT bench=fanout impl=hermes children=%d llm_ms=%lld wall_ms=%.1f "
               "wall_over_llm=%.3f\n",
               n, (long long)llm_ms, (double)wall / 1e6, (double)wall / 1e6 / (double)llm_ms);
    } else {
        while (atomic_load(&child_requests) < n && now_ns() < deadline)
            usleep(200);
        int64_t grown = live_actors(rt);
        int64_t s0 = now_ns();
        rt_interrupt(cx, parent, AG_INT_STOP);
        while (live_actors(rt) > base && now_ns() < deadline)
            usleep(50);
        int64_t quiet = now_ns() - s0;
        printf("RESULT bench=fanout_interrupt impl=hermes children=%d actors_during=%lld "
               "interrupt_to_quiet_ms=%.3f left=%lld\n",
               n, (long long)(grown - base), (double)quiet / 1e6,
               (long long)(live_actors(rt) - base));
    }
    fflush(stdout);
    (void)rt_wait_quiescent(rt, 10000);
    rt_runtime_free(rt);
}

int main(void)
{
    if (getenv("BENCH_LLM_MS"))
        llm_ms = strtoll(getenv("BENCH_LLM_MS"), NULL, 10);
    const char *list = getenv("BENCH_FANOUT") ? getenv("BENCH_FANOUT") : "3 30 300";
    char *copy = rt_xstrdup(list), *save = NULL;
    for (char *tok = strtok_r(copy, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
        int n = (int)strtol(tok, NULL, 10);
        if (n < 1 || n > 5000)
            continue;
        run(n, false);
        run(n, true);
    }
    rt_free(copy);
    rt_free(parent_args);
    return 0;
}
