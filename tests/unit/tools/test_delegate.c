/*
 * delegate_task: a parent session delegates to subagent sessions against a scripted model.
 * Parallelism is shown by structure, not by time: the model holds every child's answer until
 * all of them have asked, which can only finish if the children run at once. Also: summaries
 * come back sorted, blocked tools never reach a child (even through toolsets), the depth
 * limit, bad arguments, an interrupt of the parent reaching every child's running tool, and a
 * child's approval question relayed up to the parent's sink and answered back down.
 */
#include "ag_session.h"
#include "llm_provider.h"
#include "rt_alloc.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "test.h"
#include "tool.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define WAIT_NS 15000000000LL

/* --------------------------------------------------------- a child's tool */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int tool_interrupts, tool_answers, last_answer;

static void echo_start(rt_ctx *cx, tool_run *run)
{
    const char *ask = tool_arg_str(run, "ask");
    if (ask) {
        tool_ask(cx, run, TOOL_ASK_APPROVAL, rt_xstrdup(ask), rt_xstrdup("recursive delete"),
                 rt_xstrdup("rm"), NULL);
        return;
    }
    if (tool_arg_bool(run, "hang", false))
        return; /* until interrupted */
    tool_finish(cx, run, rt_xstrdup("{\"ok\":true}"));
}

static void echo_msg(rt_ctx *cx, tool_run *run, rt_msg *m)
{
    if (m->type != TOOL_MSG_ANSWER)
        return;
    pthread_mutex_lock(&lock);
    tool_answers++;
    last_answer = ((tool_msg_answer *)m)->answer;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    tool_finish(cx, run, rt_xasprintf("{\"answer\":%d}", ((tool_msg_answer *)m)->answer));
}

static void echo_interrupt(rt_ctx *cx, tool_run *run)
{
    pthread_mutex_lock(&lock);
    tool_interrupts++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    tool_finish(cx, run, rt_xstrdup("{\"interrupted\":true}"));
}

const tool_def tool_def_test_echo = {
    .name = "test_echo",
    .toolset = "test", /* only "all" includes it */
    .schema = "{\"name\":\"test_echo\",\"description\":\"echo\",\"parameters\":{\"type\":"
              "\"object\"}}",
    .parallel_safe = true,
    .start = echo_start,
    .on_msg = echo_msg,
    .on_interrupt = echo_interrupt,
};

/* ------------------------------------------------------- the scripted model */

static int barrier;  /* children's first requests are held until this many wait */
static int held_n;   /* held now */
static int max_held; /* most ever held at once */
static char parent_result[16384];
static char child_tools[4][65536];
static int nchild_tools;
static const char *parent_args; /* the delegate_task arguments the parent "model" sends */

typedef struct held {
    rt_ref to;
    uint64_t tag;
    char goal[256];
} held;
static held helds[16];

static const char *last_content(const cJSON *msgs, const char **role)
{
    const cJSON *last = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
    *role = cJSON_GetStringValue(cJSON_GetObjectItem(last, "role"));
    const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(last, "content"));
    return c ? c : "";
}

static bool is_child(const cJSON *msgs)
{
    const char *sys =
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "content"));
    return sys && strstr(sys, "YOUR TASK:");
}

static void reply(rt_ctx *cx, rt_ref to, uint64_t tag, const char *content, const char *calls)
{
    llm_msg_result *r = llm_result_msg_new(tag);
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", content ? content : "");
    if (calls)
        cJSON_AddItemToObject(msg, "tool_calls", cJSON_Parse(calls));
    r->result.message = msg;
    r->result.finish_reason = rt_xstrdup(calls ? "tool_calls" : "stop");
    r->result.usage.prompt_tokens = 10;
    r->result.usage.completion_tokens = 2;
    rt_send(cx, to, &r->hdr);
}

static char *call_json(const char *id, const char *name, const char *args)
{
    cJSON *a = cJSON_CreateArray();
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "id", id);
    cJSON_AddStringToObject(c, "type", "function");
    cJSON *f = cJSON_AddObjectToObject(c, "function");
    cJSON_AddStringToObject(f, "name", name);
    cJSON_AddStringToObject(f, "arguments", args);
    cJSON_AddItemToArray(a, c);
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    char *out = rt_xstrdup(s);
    cJSON_free(s);
    return out;
}

static void model_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type == LLM_MSG_CANCEL) {
        llm_msg_cancel *c = (llm_msg_cancel *)m;
        pthread_mutex_lock(&lock);
        for (int i = 0; i < held_n; i++) {
            if (helds[i].tag != c->tag)
                continue;
            llm_msg_result *r = llm_result_msg_new(c->tag);
            r->err = -ECANCELED;
            rt_send(cx, helds[i].to, &r->hdr);
            helds[i] = helds[--held_n];
            break;
        }
        pthread_mutex_unlock(&lock);
        return;
    }
    if (m->type != LLM_MSG_REQUEST)
        return;
    llm_msg_request *q = (llm_msg_request *)m;
    const char *role = NULL;
    const char *text = last_content(q->messages, &role);
    pthread_mutex_lock(&lock);
    if (!is_child(q->messages)) {
        if (role && strcmp(role, "tool") == 0) {
            snprintf(parent_result, sizeof(parent_result), "%s", text);
            pthread_cond_broadcast(&cond);
            pthread_mutex_unlock(&lock);
            reply(cx, q->reply_to, q->tag, "parent done", NULL);
            return;
        }
        pthread_mutex_unlock(&lock);
        char *calls = call_json("d1", "delegate_task", parent_args);
        reply(cx, q->reply_to, q->tag, "", calls);
        rt_free(calls);
        return;
    }
    /* a child */
    if (nchild_tools < 4) {
        char *t = q->tools ? cJSON_PrintUnformatted(q->tools) : NULL;
        snprintf(child_tools[nchild_tools++], sizeof(child_tools[0]), "%s", t ? t : "");
        cJSON_free(t);
    }
    if (role && strcmp(role, "tool") == 0) {
        pthread_mutex_unlock(&lock);
        reply(cx, q->reply_to, q->tag, "child finished its tool", NULL);
        return;
    }
    if (strncmp(text, "hang:", 5) == 0 || strncmp(text, "ask:", 4) == 0) {
        pthread_mutex_unlock(&lock);
        char *calls = call_json("c1", "test_echo",
                                text[0] == 'h' ? "{\"hang\":true}" : "{\"ask\":\"rm -rf /tmp/z\"}");
        reply(cx, q->reply_to, q->tag, "", calls);
        rt_free(calls);
        return;
    }
    held *h = &helds[held_n++];
    h->to = q->reply_to;
    h->tag = q->tag;
    snprintf(h->goal, sizeof(h->goal), "%s", text);
    if (held_n > max_held)
        max_held = held_n;
    if (held_n < barrier) {
        pthread_mutex_unlock(&lock);
        return;
    }
    /* everyone is here at once: answer them all */
    held copy[16];
    int n = held_n;
    memcpy(copy, helds, sizeof(copy));
    held_n = 0;
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n; i++) {
        char *s = rt_xasprintf("summary of %s", copy[i].goal);
        reply(cx, copy[i].to, copy[i].tag, s, NULL);
        rt_free(s);
    }
}
static const rt_actor_type model_type = {"model", model_behave, NULL, 0};

/* --------------------------------------------------------- parent's sink */

static int ndone, nasks;
static char done_text[512];
static bool done_interrupted;
static rt_ref parent_session;

static void sink_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    pthread_mutex_lock(&lock);
    if (m->type == AG_MSG_DONE) {
        ag_msg_done *d = (ag_msg_done *)m;
        snprintf(done_text, sizeof(done_text), "%s", d->text ? d->text : "");
        done_interrupted = d->interrupted;
        ndone++;
    } else if (m->type == AG_MSG_ASK) {
        ag_msg_ask *a = (ag_msg_ask *)m;
        nasks++;
        if (strstr(a->text, "[subagent 1] rm -rf /tmp/z"))
            rt_send(cx, parent_session, ag_answer_new(a->ask_id, TOOL_ANSWER_ONCE, NULL));
    }
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}
static const rt_actor_type sink_type = {"sink", sink_behave, NULL, 0};

/* ----------------------------------------------------------------- fixture */

static rt_runtime *rt;
static rt_ctx *ext;
static rt_ref model;

static rt_ref spawn_child(rt_ctx *cx, const tool_child_req *req, void *arg)
{
    (void)arg;
    tool_env *env = tool_env_new();
    env->delegate_depth = req->depth;
    size_t n = 0;
    while (req->tools && req->tools[n])
        n++;
    env->enabled_tools = rt_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        env->enabled_tools[i] = rt_xstrdup(req->tools[i]);
    ag_session_opts o = {.provider = model,
                         .env = env,
                         .tools = req->tools,
                         .ephemeral = req->instructions,
                         .max_iterations = req->max_iterations};
    rt_ref r = ag_session_spawn(cx, &o, NULL);
    tool_env_unref(env);
    return r;
}

static void setup(int depth, const char *args, int bar)
{
    pthread_mutex_lock(&lock);
    barrier = bar;
    held_n = max_held = ndone = nasks = nchild_tools = 0;
    tool_interrupts = tool_answers = 0;
    parent_result[0] = '\0';
    parent_args = args;
    pthread_mutex_unlock(&lock);
    rt_options ro = {0};
    rt = rt_runtime_new(&ro);
    ext = rt_ctx_external(rt);
    model = rt_spawn(ext, &model_type, NULL, NULL);
    tool_env *env = tool_env_new();
    env->delegate_depth = depth;
    env->spawn_child = spawn_child;
    env->max_children = 3;
    env->interactive = true;
    static const char *tools[] = {"delegate_task", NULL};
    env->enabled_tools = rt_xcalloc(2, sizeof(char *));
    env->enabled_tools[0] = rt_xstrdup("delegate_task");
    ag_session_opts o = {.provider = model, .env = env, .tools = tools, .max_iterations = 5};
    parent_session = ag_session_spawn(ext, &o, NULL);
    tool_env_unref(env);
    rt_ref sink = rt_spawn(ext, &sink_type, NULL, NULL);
    rt_send(ext, parent_session, ag_input_new("go", sink, 1));
}

static void wait_until(int *counter, int n)
{
    int64_t deadline = rt_now_ns(rt) + WAIT_NS;
    pthread_mutex_lock(&lock);
    while (*counter < n) {
        if (rt_now_ns(rt) > deadline) {
            pthread_mutex_unlock(&lock);
            TEST_FAIL_("timed out: %d < %d", *counter, n);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&cond, &lock, &ts);
    }
    pthread_mutex_unlock(&lock);
}

static void teardown(void)
{
    ASSERT_OK(rt_wait_quiescent(rt, 10000));
    rt_runtime_free(rt);
}

/* ------------------------------------------------------------------- tests */

TEST(a_batch_runs_at_once_and_returns_sorted_summaries)
{
    setup(0,
          "{\"tasks\":[{\"goal\":\"alpha\"},{\"goal\":\"beta\",\"context\":\"b ctx\"},"
          "{\"goal\":\"gamma\"}]}",
          3);
    wait_until(&ndone, 1);
    ASSERT_STR_EQ("parent done", done_text);
    ASSERT_EQ(3, max_held); /* all three children waited on the model at the same time */
    cJSON *r = cJSON_Parse(parent_result);
    ASSERT_NOT_NULL(r);
    const cJSON *results = cJSON_GetObjectItem(r, "results");
    ASSERT_EQ(3, cJSON_GetArraySize(results));
    const char *goals[] = {"alpha", "beta", "gamma"};
    for (int i = 0; i < 3; i++) {
        const cJSON *x = cJSON_GetArrayItem(results, i);
        ASSERT_EQ(i, (int)cJSON_GetNumberValue(cJSON_GetObjectItem(x, "task_index")));
        ASSERT_STR_EQ("completed", cJSON_GetStringValue(cJSON_GetObjectItem(x, "status")));
        char want[64];
        snprintf(want, sizeof(want), "summary of %s", goals[i]);
        ASSERT_STR_EQ(want, cJSON_GetStringValue(cJSON_GetObjectItem(x, "summary")));
        ASSERT_EQ(1, (int)cJSON_GetNumberValue(cJSON_GetObjectItem(x, "api_calls")));
    }
    ASSERT_TRUE(cJSON_IsNumber(cJSON_GetObjectItem(r, "total_duration_seconds")));
    cJSON_Delete(r);
    teardown();
}

TEST(children_never_get_the_blocked_tools)
{
    setup(0,
          "{\"goal\":\"look around\",\"toolsets\":[\"delegation\",\"clarify\",\"memory\","
          "\"hermes-cli\",\"all\"]}",
          1);
    wait_until(&ndone, 1);
    ASSERT_EQ(1, nchild_tools);
    ASSERT_STR_CONTAINS(child_tools[0], "\"test_echo\"");
    const char *blocked[] = {"\"delegate_task\"", "\"clarify\"", "\"memory\"", "\"send_message\"",
                             "\"execute_code\""};
    for (size_t i = 0; i < 5; i++)
        if (strstr(child_tools[0], blocked[i]))
            TEST_FAIL_("a child got %s: %s", blocked[i], child_tools[0]);
    teardown();
}

TEST(depth_limit_and_bad_arguments)
{
    setup(2, "{\"goal\":\"x\"}", 1);
    wait_until(&ndone, 1);
    ASSERT_STR_CONTAINS(parent_result, "Delegation depth limit reached (2)");
    teardown();

    setup(0, "{}", 1);
    wait_until(&ndone, 1);
    ASSERT_STR_CONTAINS(parent_result, "Provide either 'goal' (single task) or 'tasks' (batch).");
    teardown();

    setup(0, "{\"tasks\":[{\"goal\":\"a\"},{\"context\":\"no goal\"}]}", 1);
    wait_until(&ndone, 1);
    ASSERT_STR_CONTAINS(parent_result, "Task 1 is missing a 'goal'.");
    teardown();

    setup(0, "{\"tasks\":[{\"goal\":\"a\"},{\"goal\":\"b\"},{\"goal\":\"c\"},{\"goal\":\"d\"}]}",
          1);
    wait_until(&ndone, 1);
    ASSERT_STR_CONTAINS(parent_result, "Too many tasks: 4 given, at most 3");
    teardown();
}

TEST(interrupting_the_parent_stops_every_child_tool)
{
    setup(0,
          "{\"toolsets\":[\"all\"],\"tasks\":[{\"goal\":\"hang: one\"},{\"goal\":\"hang: "
          "two\"},{\"goal\":\"hang: three\"}]}",
          99);
    /* every child is inside its hanging tool: 3 child requests answered with the call */
    int64_t deadline = rt_now_ns(rt) + WAIT_NS;
    for (;;) {
        pthread_mutex_lock(&lock);
        int n = nchild_tools;
        pthread_mutex_unlock(&lock);
        if (n >= 3)
            break;
        ASSERT_LT(rt_now_ns(rt), deadline);
        usleep(1000);
    }
    ASSERT_OK(rt_wait_quiescent(rt, 10000)); /* the tools have started and wait */
    rt_interrupt(ext, parent_session, AG_INT_STOP);
    wait_until(&tool_interrupts, 3);
    wait_until(&ndone, 1);
    ASSERT_TRUE(done_interrupted);
    teardown();
}

TEST(a_childs_approval_question_goes_up_and_the_answer_comes_down)
{
    setup(0, "{\"goal\":\"ask: please\",\"toolsets\":[\"all\"]}", 1);
    wait_until(&tool_answers, 1);
    ASSERT_EQ(TOOL_ANSWER_ONCE, last_answer);
    wait_until(&ndone, 1);
    ASSERT_EQ(1, nasks);
    ASSERT_STR_CONTAINS(parent_result, "\"status\":\"completed\"");
    ASSERT_STR_CONTAINS(parent_result, "child finished its tool");
    teardown();
}
