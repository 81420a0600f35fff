/* The tool registry: toolset resolution, schemas, and the call actor — results, parallel
 * calls, interrupts reaching a running call through the session link, and asks. */
#include "rt_alloc.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "test.h"
#include "tool.h"

#include <stdatomic.h>
#include <unistd.h>

/* test_echo: {"text": s} → {"echo": s}; {"wait_ms": n} waits first (interruptible);
 * {"ask": q} asks a clarify question and echoes the answer. */
static void echo_start(rt_ctx *cx, tool_run *run)
{
    int64_t wait = tool_arg_int(run, "wait_ms", 0);
    const char *ask = tool_arg_str(run, "ask");
    if (ask) {
        tool_ask(cx, run, TOOL_ASK_CLARIFY, rt_xstrdup(ask), NULL, NULL, NULL);
        return;
    }
    if (wait > 0) {
        rt_send_after(cx, rt_self(cx), rt_timeout_new(1), wait);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "echo", tool_arg_str(run, "text") ? tool_arg_str(run, "text") : "");
    tool_finish_json(cx, run, o);
}

static void echo_msg(rt_ctx *cx, tool_run *run, rt_msg *m)
{
    if (m->type == RT_MSG_TIMEOUT) {
        tool_finish(cx, run, rt_xstrdup("{\"waited\":true}"));
    } else if (m->type == TOOL_MSG_ANSWER) {
        tool_msg_answer *a = (tool_msg_answer *)m;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "user_response", a->text ? a->text : "");
        tool_finish_json(cx, run, o);
    }
}

static void echo_interrupt(rt_ctx *cx, tool_run *run)
{
    tool_finish(cx, run, rt_xstrdup("{\"interrupted\":true}"));
}

const tool_def tool_def_test_echo = {
    .name = "test_echo",
    .toolset = "test",
    .schema =
        "{\"name\":\"test_echo\",\"description\":\"echo\",\"parameters\":{\"type\":\"object\"}}",
    .parallel_safe = true,
    .start = echo_start,
    .on_msg = echo_msg,
    .on_interrupt = echo_interrupt,
};

TEST(only_linked_tools_resolve)
{
    const char *en[] = {"hermes-cli", NULL};
    const char **names = tool_resolve(en, NULL, NULL, NULL, NULL);
    /* Only tools linked into this binary resolve; test_echo is in no preset. */
    for (const char **n = names; *n; n++)
        ASSERT(strcmp(*n, "test_echo") != 0 && tool_find(*n) != NULL);
    rt_free(names);
    const char *all[] = {"all", NULL};
    names = tool_resolve(all, NULL, NULL, NULL, NULL);
    int n_all = 0, has_echo = 0;
    for (const char **n = names; *n; n++, n_all++)
        has_echo += strcmp(*n, "test_echo") == 0;
    ASSERT_EQ(1, has_echo);
    for (int i = 1; i < n_all; i++)
        ASSERT_LT(strcmp(names[i - 1], names[i]), 0); /* sorted for the model */
    cJSON *s = tool_schemas(names);
    ASSERT_EQ(n_all, cJSON_GetArraySize(s));
    cJSON_Delete(s);
    rt_free(names);
    const char **ts = tool_toolset_tools("debugging");
    int n = 0;
    for (const char **t = ts; *t; t++)
        n++;
    ASSERT_EQ(8, n); /* terminal, process + web (2) + file (4) */
    rt_free(ts);
}

static int unknown_seen;
static void on_unknown(const char *name, void *arg)
{
    unknown_seen++;
}

TEST(unknown_toolsets_are_reported)
{
    const char *en[] = {"file", "bogus", NULL};
    const char **names = tool_resolve(en, NULL, NULL, on_unknown, NULL);
    ASSERT_EQ(1, unknown_seen);
    rt_free(names);
}

/* A fake session: starts calls on T_GO, collects results. */
enum { T_GO = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1), T_INT = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 2) };
typedef struct go_msg {
    rt_msg hdr;
    char args[3][64];
    int n;
} go_msg;

static _Atomic int results;
static char result_text[3][128];
static _Atomic int interrupted_flags;
static tool_env *env;

static void session_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type == T_GO) {
        go_msg *g = (go_msg *)m;
        for (int i = 0; i < g->n; i++)
            ASSERT_NE(0, tool_start_call(cx, tool_find("test_echo"), env, (uint64_t)i, "call_x",
                                         g->args[i]));
    } else if (m->type == TOOL_MSG_RESULT) {
        tool_msg_result *r = (tool_msg_result *)m;
        snprintf(result_text[r->seq], sizeof(result_text[0]), "%s", r->result);
        if (r->interrupted)
            atomic_fetch_add(&interrupted_flags, 1);
        atomic_fetch_add(&results, 1);
    } else if (m->type == TOOL_MSG_ASK) {
        tool_msg_ask *a = (tool_msg_ask *)m;
        ASSERT_EQ(TOOL_ASK_CLARIFY, a->kind);
        rt_send(cx, a->reply_to, tool_answer_new(TOOL_ANSWER_TEXT, "blue"));
    }
}
static const rt_actor_type session_type = {"session", session_behave, NULL, 0};

/* Wait until n results are in (timers due later do not count as activity, so quiescence
 * alone is not enough). */
static void wait_results(rt_runtime *rt, int n)
{
    int64_t t0 = rt_now_ns(rt);
    while (atomic_load(&results) < n) {
        ASSERT_LT(rt_now_ns(rt) - t0, 10000000000LL);
        usleep(1000);
    }
    ASSERT_OK(rt_wait_quiescent(rt, 10000));
}

static rt_ref start_session(rt_runtime *rt)
{
    env = tool_env_new();
    rt_spawn_opts o = {.flags = RT_SPAWN_TRAP_EXIT};
    return rt_spawn(rt_ctx_external(rt), &session_type, NULL, &o);
}

TEST(parallel_calls_and_results)
{
    rt_runtime *rt = rt_runtime_new(NULL);
    rt_ref s = start_session(rt);
    go_msg *g = RT_MSG_NEW(go_msg, T_GO);
    g->n = 3;
    snprintf(g->args[0], 64, "{\"text\":\"a\"}");
    snprintf(g->args[1], 64, "{\"wait_ms\":20}");
    snprintf(g->args[2], 64, "not json"); /* the session's job to validate; here: {} */
    rt_send(rt_ctx_external(rt), s, &g->hdr);
    wait_results(rt, 3);
    ASSERT_EQ(3, atomic_load(&results));
    ASSERT_STR_EQ("{\"echo\":\"a\"}", result_text[0]);
    ASSERT_STR_EQ("{\"waited\":true}", result_text[1]);
    ASSERT_STR_EQ("{\"echo\":\"\"}", result_text[2]);
    tool_env_unref(env);
    rt_runtime_free(rt);
}

TEST(interrupt_reaches_running_call_through_the_link)
{
    rt_runtime *rt = rt_runtime_new(NULL);
    rt_ref s = start_session(rt);
    go_msg *g = RT_MSG_NEW(go_msg, T_GO);
    g->n = 1;
    snprintf(g->args[0], 64, "{\"wait_ms\":60000}");
    rt_send(rt_ctx_external(rt), s, &g->hdr);
    ASSERT_OK(rt_wait_quiescent(rt, 10000)); /* the call is now waiting on its timer */
    ASSERT_EQ(0, atomic_load(&results));
    rt_interrupt(rt_ctx_external(rt), s, 1);
    wait_results(rt, 1);
    ASSERT_EQ(1, atomic_load(&results));
    ASSERT_EQ(1, atomic_load(&interrupted_flags));
    ASSERT_STR_EQ("{\"interrupted\":true}", result_text[0]);
    tool_env_unref(env);
    rt_runtime_free(rt);
}

TEST(ask_and_answer)
{
    rt_runtime *rt = rt_runtime_new(NULL);
    rt_ref s = start_session(rt);
    go_msg *g = RT_MSG_NEW(go_msg, T_GO);
    g->n = 1;
    snprintf(g->args[0], 64, "{\"ask\":\"favourite colour?\"}");
    rt_send(rt_ctx_external(rt), s, &g->hdr);
    ASSERT_OK(rt_wait_quiescent(rt, 10000));
    ASSERT_EQ(1, atomic_load(&results));
    ASSERT_STR_EQ("{\"user_response\":\"blue\"}", result_text[0]);
    tool_env_unref(env);
    rt_runtime_free(rt);
}

/* Sessions with one tool set share one parsed copy of its schemas. */
TEST(schemas_are_shared_per_tool_set)
{
    static const char *a[] = {"read_file", "write_file", NULL};
    static const char *b[] = {"read_file", NULL};
    const cJSON *x = tool_schemas_shared(a);
    ASSERT_TRUE(x == tool_schemas_shared(a));
    ASSERT_TRUE(x != tool_schemas_shared(b));
    cJSON *fresh = tool_schemas(a);
    ASSERT_TRUE(cJSON_Compare(x, fresh, 1));
    cJSON_Delete(fresh);
    ASSERT_EQ(1, cJSON_GetArraySize(tool_schemas_shared(b)));
}
