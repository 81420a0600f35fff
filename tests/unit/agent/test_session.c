/*
 * The session state machine against a scripted provider actor and a recording sink: the
 * tool loop, parallel and sequential calls, interrupts with follow-ups, /stop, invalid tool
 * retries, the iteration limit, asks, todo, persistence and resume from a real state.db.
 */
#include "ag_int.h"
#include "ag_session.h"
#include "llm_provider.h"
#include "rt_alloc.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "st_read.h"
#include "st_store.h"
#include "test.h"
#include "tool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ----------------------------------------------------------- a test tool */

static void echo_start(rt_ctx *cx, tool_run *run)
{
    int64_t wait = tool_arg_int(run, "wait_ms", 0);
    if (tool_arg_str(run, "ask")) {
        tool_ask(cx, run, TOOL_ASK_APPROVAL, rt_xstrdup(tool_arg_str(run, "ask")),
                 rt_xstrdup("dangerous"), rt_xstrdup("rm"), NULL);
        return;
    }
    if (wait > 0) {
        rt_send_after(cx, rt_self(cx), rt_timeout_new(1), wait);
        return;
    }
    char *r = rt_xasprintf("{\"echo\":\"%s\"}",
                           tool_arg_str(run, "text") ? tool_arg_str(run, "text") : "");
    tool_finish(cx, run, r);
}

static _Atomic int tool_interrupts;

static void echo_msg(rt_ctx *cx, tool_run *run, rt_msg *m)
{
    if (m->type == RT_MSG_TIMEOUT)
        tool_finish(cx, run, rt_xstrdup("{\"waited\":true}"));
    else if (m->type == TOOL_MSG_ANSWER)
        tool_finish(cx, run, rt_xasprintf("{\"answer\":%d}", ((tool_msg_answer *)m)->answer));
}

static void echo_interrupt(rt_ctx *cx, tool_run *run)
{
    atomic_fetch_add(&tool_interrupts, 1);
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

/* ------------------------------------------------- the scripted provider */

typedef struct script {
    const char *content;
    const char *tool_calls; /* JSON array in neutral format, or NULL */
    int err;
    int64_t delay_ms;
    int64_t prompt_tokens; /* 0: 100 */
    int kind;              /* error kind when err is set */
} script;

enum { T_REPLY = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1) };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static script scripts[32];
static int nscripts, next_script;
static int nrequests;
static char last_user[4096];
static int last_nmessages;
static bool last_had_tools;

typedef struct pending_reply {
    rt_msg hdr;
    rt_ref to;
    uint64_t tag;
    int idx;
} pending_reply;

static void send_result(rt_ctx *cx, rt_ref to, uint64_t tag, int idx, int err)
{
    llm_msg_result *r = llm_result_msg_new(tag);
    if (err || idx < 0) {
        r->err = err ? err : -EIO;
        r->errmsg = rt_xstrdup(err == -ECANCELED ? "cancelled" : "scripted failure");
        r->kind = idx >= 0 && scripts[idx].kind ? scripts[idx].kind : LLM_ERR_SERVER;
        rt_send(cx, to, &r->hdr);
        return;
    }
    script *sc = &scripts[idx];
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", sc->content ? sc->content : "");
    if (sc->tool_calls)
        cJSON_AddItemToObject(msg, "tool_calls", cJSON_Parse(sc->tool_calls));
    r->result.message = msg;
    r->result.finish_reason = rt_xstrdup(sc->tool_calls ? "tool_calls" : "stop");
    r->result.usage.prompt_tokens = sc->prompt_tokens ? sc->prompt_tokens : 100;
    r->result.usage.completion_tokens = 10;
    rt_send(cx, to, &r->hdr);
}

typedef struct provider_state {
    uint64_t waiting_tag; /* delayed reply in flight */
    rt_ref waiting_to;
    uint64_t timer;
} provider_state;

static void provider_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    provider_state *ps = state;
    if (m->type == LLM_MSG_REQUEST) {
        llm_msg_request *q = (llm_msg_request *)m;
        pthread_mutex_lock(&lock);
        nrequests++;
        last_nmessages = cJSON_GetArraySize(q->messages);
        last_had_tools = q->tools != NULL;
        cJSON *last = cJSON_GetArrayItem(q->messages, last_nmessages - 1);
        const cJSON *c = cJSON_GetObjectItem(last, "content");
        snprintf(last_user, sizeof(last_user), "%s", cJSON_IsString(c) ? c->valuestring : "");
        int idx = next_script < nscripts ? next_script++ : -1;
        pthread_mutex_unlock(&lock);
        if (idx >= 0 && scripts[idx].delay_ms) {
            pending_reply *p = RT_MSG_NEW(pending_reply, T_REPLY);
            p->to = q->reply_to;
            p->tag = q->tag;
            p->idx = idx;
            ps->waiting_tag = q->tag;
            ps->waiting_to = q->reply_to;
            ps->timer = rt_send_after(cx, rt_self(cx), &p->hdr, scripts[idx].delay_ms);
            return;
        }
        send_result(cx, q->reply_to, q->tag, idx, idx >= 0 ? scripts[idx].err : 0);
    } else if (m->type == T_REPLY) {
        pending_reply *p = (pending_reply *)m;
        ps->waiting_tag = 0;
        send_result(cx, p->to, p->tag, p->idx, scripts[p->idx].err);
    } else if (m->type == LLM_MSG_CANCEL) {
        llm_msg_cancel *c = (llm_msg_cancel *)m;
        if (ps->waiting_tag == c->tag) {
            rt_timer_cancel(cx, ps->timer);
            ps->waiting_tag = 0;
            send_result(cx, ps->waiting_to, c->tag, 0, -ECANCELED);
        }
    }
}
static const rt_actor_type provider_type = {"fake_llm", provider_behave, NULL,
                                            sizeof(provider_state)};

/* ------------------------------------------------------ the recording sink */

static int ndone, nprogress, nasks;
static char done_text[8][512];
static bool done_interrupted[8];
static int done_err[8];
static int answer_with = TOOL_ANSWER_DENY;

static void sink_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    rt_ref session = *(rt_ref *)state;
    pthread_mutex_lock(&lock);
    if (m->type == AG_MSG_DONE) {
        ag_msg_done *d = (ag_msg_done *)m;
        if (ndone < 8) {
            snprintf(done_text[ndone], sizeof(done_text[0]), "%s",
                     d->text ? d->text : (d->errmsg ? d->errmsg : ""));
            done_interrupted[ndone] = d->interrupted;
            done_err[ndone] = d->err;
        }
        ndone++;
    } else if (m->type == AG_MSG_PROGRESS) {
        nprogress++;
    } else if (m->type == AG_MSG_ASK) {
        nasks++;
        rt_send(cx, session, ag_answer_new(((ag_msg_ask *)m)->ask_id, answer_with, NULL));
    }
    pthread_mutex_unlock(&lock);
}
static const rt_actor_type sink_type = {"sink", sink_behave, NULL, sizeof(rt_ref)};

/* ------------------------------------------------------------- fixture */

typedef struct fixture {
    rt_runtime *rt;
    rt_ctx *cx;
    rt_ref provider, session, sink;
    tool_env *env;
    st_store_refs store;
} fixture;

static const char *tools_list[] = {"test_echo", "todo", NULL};

static char store_path[512];
static int setup_workers;         /* 0: one per CPU */
static int64_t setup_context_len; /* 0: from the model */

static void setup(fixture *f, bool with_store, bool resume, const char *session_id)
{
    rt_options ro = {.workers = setup_workers};
    f->rt = rt_runtime_new(&ro);
    f->cx = rt_ctx_external(f->rt);
    f->provider = rt_spawn(f->cx, &provider_type, NULL, NULL);
    f->env = tool_env_new();
    f->env->enabled_tools = rt_xcalloc(3, sizeof(char *));
    f->env->enabled_tools[0] = rt_xstrdup("test_echo");
    f->env->enabled_tools[1] = rt_xstrdup("todo");
    f->env->interactive = true;
    memset(&f->store, 0, sizeof(f->store));
    if (with_store) {
        snprintf(store_path, sizeof(store_path), "%s/state.db", test_tmpdir());
        st_store_opts so = {.path = store_path, .readers = 1};
        char err[256];
        ASSERT_OK(st_store_start(f->cx, &so, &f->store, err, sizeof(err)));
    }
    ag_session_opts o = {.session_id = session_id,
                         .provider = f->provider,
                         .store = f->store.writer,
                         .store_reader = f->store.readers[0],
                         .env = f->env,
                         .tools = tools_list,
                         .max_iterations = 4,
                         .resume = resume,
                         .compression_enabled = true,
                         .context_length = setup_context_len};
    f->session = ag_session_spawn(f->cx, &o, NULL);
    f->sink = rt_spawn(f->cx, &sink_type, &f->session, NULL);
}

static void reset_records(void)
{
    pthread_mutex_lock(&lock);
    nscripts = next_script = nrequests = 0;
    ndone = nprogress = nasks = 0;
    pthread_mutex_unlock(&lock);
}

static void teardown(fixture *f)
{
    tool_env_unref(f->env);
    rt_runtime_free(f->rt);
}

static void say(fixture *f, const char *text, uint64_t id)
{
    rt_send(f->cx, f->session, ag_input_new(text, f->sink, id));
}

static void wait_done(fixture *f, int n)
{
    int64_t t0 = rt_now_ns(f->rt);
    for (;;) {
        pthread_mutex_lock(&lock);
        int d = ndone;
        pthread_mutex_unlock(&lock);
        if (d >= n)
            break;
        ASSERT_LT(rt_now_ns(f->rt) - t0, 10000000000LL);
        usleep(1000);
    }
    ASSERT_OK(rt_wait_quiescent(f->rt, 10000));
}

#define TC(id, name, args)                                                                         \
    "{\"id\":\"" id "\",\"type\":\"function\",\"function\":{\"name\":\"" name                      \
    "\",\"arguments\":\"" args "\"}}"

/* ------------------------------------------------------------------ tests */

TEST(plain_answer)
{
    fixture f;
    reset_records();
    scripts[nscripts++] = (script){.content = "hello there"};
    setup(&f, false, false, NULL);
    say(&f, "hi", 1);
    wait_done(&f, 1);
    ASSERT_STR_EQ("hello there", done_text[0]);
    ASSERT_FALSE(done_interrupted[0]);
    ASSERT_STR_EQ("hi", last_user);
    teardown(&f);
}

TEST(tool_loop_parallel_calls_then_answer)
{
    fixture f;
    reset_records();
    scripts[nscripts++] = (script){
        .tool_calls = "[" TC("c1", "test_echo", "{\\\"text\\\":\\\"a\\\"}") "," TC(
            "c2", "test_echo",
            "{\\\"wait_ms\\\":30}") "," TC("c3", "todo",
                                           "{\\\"todos\\\":[{\\\"id\\\":\\\"1\\\",\\\"content\\\":"
                                           "\\\"x\\\",\\\"status\\\":\\\"pending\\\"}]}") "]"};
    scripts[nscripts++] = (script){.content = "all done"};
    setup(&f, false, false, NULL);
    say(&f, "do things", 1);
    wait_done(&f, 1);
    ASSERT_STR_EQ("all done", done_text[0]);
    ASSERT_EQ(2, nrequests);
    /* system? no prompt service: user, assistant(tool_calls), 3 tool results */
    ASSERT_EQ(5, last_nmessages);
    ASSERT_EQ(3, nprogress);
    teardown(&f);
}

TEST(unknown_tool_is_retried_without_touching_the_transcript)
{
    fixture f;
    reset_records();
    scripts[nscripts++] = (script){.tool_calls = "[" TC("c1", "no_such_tool", "{}") "]"};
    scripts[nscripts++] = (script){.content = "fixed"};
    setup(&f, false, false, NULL);
    say(&f, "go", 1);
    wait_done(&f, 1);
    ASSERT_STR_EQ("fixed", done_text[0]);
    ASSERT_EQ(2, nrequests);
    ASSERT_EQ(1, last_nmessages); /* still just the user's message */
    teardown(&f);
}

TEST(iteration_limit_asks_for_a_summary_without_tools)
{
    fixture f;
    reset_records();
    for (int i = 0; i < 4; i++)
        scripts[nscripts++] = (script){.tool_calls = "[" TC("c", "test_echo", "{}") "]"};
    scripts[nscripts++] = (script){.content = "summary of work"};
    setup(&f, false, false, NULL);
    say(&f, "loop", 1);
    wait_done(&f, 1);
    ASSERT_STR_EQ("summary of work", done_text[0]);
    ASSERT_EQ(5, nrequests);
    ASSERT_FALSE(last_had_tools);
    ASSERT_STR_CONTAINS(last_user, "maximum number of tool-calling iterations");
    teardown(&f);
}

/* Delivers two inputs from one behaviour: on a one-worker runtime the session cannot run
 * between them, so both are "messages that arrived during the turn". */
typedef struct relay {
    rt_ref session, sink;
} relay;
static void relay_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    relay *r = state;
    rt_send(cx, r->session, ag_input_new("second", r->sink, 2));
    rt_send(cx, r->session, ag_input_new("third", r->sink, 3));
}
static const rt_actor_type relay_type = {"relay", relay_behave, NULL, sizeof(relay)};

TEST(new_message_interrupts_a_running_tool_and_is_answered_with_the_others)
{
    fixture f;
    reset_records();
    setup_workers = 1;
    scripts[nscripts++] =
        (script){.tool_calls = "[" TC("c1", "test_echo", "{\\\"wait_ms\\\":60000}") "]"};
    scripts[nscripts++] = (script){.content = "answer to both"};
    setup(&f, false, false, NULL);
    say(&f, "first", 1);
    ASSERT_OK(rt_wait_quiescent(f.rt, 10000)); /* the tool now waits on its timer */
    relay rl = {f.session, f.sink};
    rt_send(f.cx, rt_spawn(f.cx, &relay_type, &rl, NULL),
            rt_msg_new(RT_MSG_TYPE(RT_MSG_MODULE_TEST, 9), sizeof(rt_msg)));
    wait_done(&f, 2);
    ASSERT_TRUE(done_interrupted[0]);
    ASSERT_EQ(1, atomic_load(&tool_interrupts));
    ASSERT_STR_EQ("answer to both", done_text[1]);
    ASSERT_STR_EQ("second\nthird", last_user);
    /* user, assistant(tool call), cancelled tool result, user(second+third) */
    ASSERT_EQ(4, last_nmessages);
    teardown(&f);
}

TEST(stop_interrupts_the_model_without_a_follow_up)
{
    fixture f;
    reset_records();
    scripts[nscripts++] = (script){.content = "too late", .delay_ms = 60000};
    setup(&f, false, false, NULL);
    say(&f, "slow one", 1);
    ASSERT_OK(rt_wait_quiescent(f.rt, 10000));
    rt_interrupt(f.cx, f.session, AG_INT_STOP);
    wait_done(&f, 1);
    ASSERT_TRUE(done_interrupted[0]);
    ASSERT_EQ(1, nrequests);
    teardown(&f);
}

TEST(approval_ask_goes_to_the_sink_and_back)
{
    fixture f;
    reset_records();
    answer_with = TOOL_ANSWER_SESSION;
    scripts[nscripts++] =
        (script){.tool_calls = "[" TC("c1", "test_echo", "{\\\"ask\\\":\\\"rm -rf x\\\"}") "]"};
    scripts[nscripts++] =
        (script){.tool_calls = "[" TC("c2", "test_echo", "{\\\"ask\\\":\\\"rm -rf y\\\"}") "]"};
    scripts[nscripts++] = (script){.content = "ok"};
    setup(&f, false, false, NULL);
    say(&f, "clean up", 1);
    wait_done(&f, 1);
    ASSERT_STR_EQ("ok", done_text[0]);
    ASSERT_EQ(1, nasks); /* the second "rm" was approved for the session already */
    teardown(&f);
}

TEST(provider_failure_is_reported_to_the_user)
{
    fixture f;
    reset_records();
    scripts[nscripts++] = (script){.err = -EIO};
    setup(&f, false, false, NULL);
    say(&f, "hi", 1);
    wait_done(&f, 1);
    ASSERT_NE(0, done_err[0]);
    ASSERT_STR_CONTAINS(done_text[0], "The request failed: scripted failure");
    ASSERT_STR_CONTAINS(done_text[0], "/reset");
    teardown(&f);
}

TEST(transcript_is_persisted_once_and_resumed)
{
    fixture f;
    reset_records();
    scripts[nscripts++] =
        (script){.tool_calls = "[" TC("c1", "test_echo", "{\\\"text\\\":\\\"z\\\"}") "]"};
    scripts[nscripts++] = (script){.content = "first answer"};
    setup(&f, true, false, "sess_1");
    say(&f, "remember me", 1);
    wait_done(&f, 1);
    /* A new session actor on the same id picks the conversation up from state.db. */
    rt_kill(f.cx, f.session);
    ASSERT_OK(rt_wait_quiescent(f.rt, 10000));
    scripts[nscripts++] = (script){.content = "second answer"};
    ag_session_opts o = {.session_id = "sess_1",
                         .provider = f.provider,
                         .store = f.store.writer,
                         .store_reader = f.store.readers[0],
                         .env = f.env,
                         .tools = tools_list,
                         .resume = true};
    f.session = ag_session_spawn(f.cx, &o, NULL);
    say(&f, "again", 2);
    wait_done(&f, 2);
    ASSERT_STR_EQ("second answer", done_text[1]);
    /* user, assistant(call), tool, assistant, user */
    ASSERT_EQ(5, last_nmessages);
    ASSERT_STR_EQ("again", last_user);
    teardown(&f);
}

TEST(compression_plan_keeps_tool_calls_with_their_results)
{
    /* user, a(call), tool, a(call), tool, tool, a(call), tool, tool, a */
    cJSON *m = cJSON_Parse("[{\"role\":\"user\"},{\"role\":\"assistant\"},{\"role\":\"tool\"},"
                           "{\"role\":\"assistant\"},{\"role\":\"tool\"},{\"role\":\"tool\"},"
                           "{\"role\":\"assistant\"},{\"role\":\"tool\"},{\"role\":\"tool\"},"
                           "{\"role\":\"assistant\"}]");
    int head, tail;
    ASSERT_TRUE(ag_compress_plan(m, &head, &tail));
    ASSERT_EQ(3, head); /* user, a, tool */
    ASSERT_EQ(6, tail); /* 10-4 = 6 is an assistant: kept */
    cJSON_Delete(m);
    m = cJSON_Parse("[{\"role\":\"user\"},{\"role\":\"assistant\"},{\"role\":\"tool\"},"
                    "{\"role\":\"tool\"},{\"role\":\"assistant\"},{\"role\":\"tool\"},"
                    "{\"role\":\"tool\"},{\"role\":\"tool\"},{\"role\":\"user\"}]");
    /* The head keeps both results of its call (ends at 4), the tail walks back to the
     * assistant at 4: nothing is left in between, so there is nothing to compress. */
    ASSERT_FALSE(ag_compress_plan(m, &head, &tail));
    cJSON_Delete(m);
}

TEST(compression_replaces_the_middle_and_splits_the_session)
{
    fixture f;
    reset_records();
    setup_workers = 0;
    setup_context_len = 1000; /* threshold 0.85: 850 tokens */
    for (int i = 0; i < 3; i++)
        scripts[nscripts++] = (script){.tool_calls = "[" TC("c", "test_echo", "{}") "]"};
    scripts[nscripts++] =
        (script){.tool_calls = "[" TC("c", "test_echo", "{}") "]", .prompt_tokens = 900};
    scripts[nscripts++] = (script){.content = "[CONTEXT SUMMARY]: earlier echoes happened"};
    scripts[nscripts++] = (script){.content = "done after compression"};
    setup(&f, true, false, "sess_c");
    say(&f, "work a lot", 1);
    wait_done(&f, 1);
    setup_context_len = 0;
    ASSERT_STR_EQ("done after compression", done_text[0]);
    ASSERT_EQ(6, nrequests);
    /* user, a1, t1, summary, a3, t3, a4, t4, and (4 iterations used) the request for a
     * final summary */
    ASSERT_EQ(9, last_nmessages);
    ASSERT_STR_CONTAINS(last_user, "maximum number of tool-calling iterations");
    ASSERT_OK(rt_wait_quiescent(f.rt, 10000));
    st_store_stop(f.cx, &f.store, 0, 0);
    ASSERT_OK(rt_wait_quiescent(f.rt, 10000));
    /* state.db: the old session ended for compression; a child continues it with the
     * compressed transcript (summary included) and the final answer. */
    int err;
    char errmsg[256];
    st_reader *r = st_reader_open(store_path, &err, errmsg, sizeof(errmsg));
    ASSERT_NOT_NULL(r);
    cJSON *sessions = NULL;
    ASSERT_OK(st_read_sessions(r, NULL, 10, 0, &sessions));
    ASSERT_EQ(2, cJSON_GetArraySize(sessions));
    const char *child = NULL;
    int ended_for_compression = 0;
    cJSON *row;
    cJSON_ArrayForEach(row, sessions)
    {
        const cJSON *parent = cJSON_GetObjectItem(row, "parent_session_id");
        const cJSON *reason = cJSON_GetObjectItem(row, "end_reason");
        if (cJSON_IsString(parent) && strcmp(parent->valuestring, "sess_c") == 0)
            child = cJSON_GetObjectItem(row, "id")->valuestring;
        if (cJSON_IsString(reason) && strcmp(reason->valuestring, "compression") == 0)
            ended_for_compression++;
    }
    ASSERT_EQ(1, ended_for_compression);
    ASSERT_NOT_NULL(child);
    cJSON *msgs = NULL;
    ASSERT_OK(st_read_messages(r, child, &msgs));
    ASSERT_EQ(10, cJSON_GetArraySize(msgs)); /* 8 compressed, the limit note, the answer */
    ASSERT_STR_CONTAINS(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 3), "content")->valuestring,
                        "[CONTEXT SUMMARY]: earlier echoes happened");
    cJSON_Delete(msgs);
    cJSON_Delete(sessions);
    st_reader_free(r);
    teardown(&f);
}

/* ------------------------------------------------ control: undo, retry, usage */

static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER;
static int nctl, ctl_err, ctl_n;
static char ctl_text[256];
static cJSON *ctl_info;

static void ctl_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)cx, (void)state;
    if (m->type != AG_MSG_CONTROL_REPLY)
        return;
    ag_msg_control_reply *r = (ag_msg_control_reply *)m;
    pthread_mutex_lock(&ctl_lock);
    nctl++;
    ctl_err = r->err;
    ctl_n = r->n;
    snprintf(ctl_text, sizeof(ctl_text), "%s", r->text ? r->text : "");
    cJSON_Delete(ctl_info);
    ctl_info = r->info;
    r->info = NULL;
    pthread_mutex_unlock(&ctl_lock);
}
static const rt_actor_type ctl_type = {"ctl", ctl_behave, NULL, 0};

static void control(fixture *f, rt_ref to, int op, rt_ref sink, uint64_t input_id)
{
    pthread_mutex_lock(&ctl_lock);
    int before = nctl;
    pthread_mutex_unlock(&ctl_lock);
    ag_msg_control *c = (ag_msg_control *)ag_control_new(op, to, 7);
    c->sink = sink;
    c->input_id = input_id;
    rt_send(f->cx, f->session, &c->hdr);
    int64_t t0 = rt_now_ns(f->rt);
    for (;;) {
        pthread_mutex_lock(&ctl_lock);
        int n = nctl;
        pthread_mutex_unlock(&ctl_lock);
        if (n > before)
            break;
        ASSERT_LT(rt_now_ns(f->rt) - t0, 10000000000LL);
        usleep(1000);
    }
}

static int stored_messages(const char *session_id)
{
    int err = 0;
    char errmsg[256];
    st_reader *r = st_reader_open(store_path, &err, errmsg, sizeof(errmsg));
    ASSERT_NOT_NULL(r);
    cJSON *msgs = NULL;
    ASSERT_OK(st_read_messages(r, session_id, &msgs));
    int n = cJSON_GetArraySize(msgs);
    cJSON_Delete(msgs);
    st_reader_free(r);
    return n;
}

TEST(undo_retry_and_usage)
{
    fixture f;
    reset_records();
    scripts[nscripts++] = (script){.content = "one"};
    scripts[nscripts++] =
        (script){.tool_calls = "[" TC("c1", "test_echo", "{\\\"text\\\":\\\"z\\\"}") "]"};
    scripts[nscripts++] = (script){.content = "two"};
    scripts[nscripts++] = (script){.content = "two again"};
    setup(&f, true, false, "sess_u");
    rt_ref ctl = rt_spawn(f.cx, &ctl_type, NULL, NULL);
    say(&f, "first", 1);
    wait_done(&f, 1);
    say(&f, "second question", 2);
    wait_done(&f, 2);
    ASSERT_EQ(6, stored_messages("sess_u"));

    control(&f, ctl, AG_CTL_USAGE, 0, 0);
    ASSERT_EQ(0, ctl_err);
    ASSERT_EQ(6, (int)cJSON_GetObjectItem(ctl_info, "messages")->valuedouble);
    ASSERT_EQ(3, (int)cJSON_GetObjectItem(ctl_info, "api_calls")->valuedouble);
    ASSERT_EQ(30, (int)cJSON_GetObjectItem(ctl_info, "completion_tokens")->valuedouble);

    /* /retry: the last user message and its answer go, the message is asked again. */
    control(&f, ctl, AG_CTL_RETRY, f.sink, 3);
    ASSERT_EQ(0, ctl_err);
    ASSERT_EQ(4, ctl_n); /* user, assistant(call), tool, assistant */
    ASSERT_STR_EQ("second question", ctl_text);
    wait_done(&f, 3);
    ASSERT_STR_EQ("two again", done_text[2]);
    ASSERT_STR_EQ("second question", last_user);
    ASSERT_EQ(3, last_nmessages); /* first, one, second question */
    ASSERT_EQ(4, stored_messages("sess_u"));

    /* /undo twice, then nothing left. */
    control(&f, ctl, AG_CTL_UNDO, 0, 0);
    ASSERT_EQ(2, ctl_n);
    ASSERT_STR_EQ("second question", ctl_text);
    control(&f, ctl, AG_CTL_UNDO, 0, 0);
    ASSERT_EQ(2, ctl_n);
    ASSERT_STR_EQ("first", ctl_text);
    control(&f, ctl, AG_CTL_UNDO, 0, 0);
    ASSERT_EQ(-ENOENT, ctl_err);
    ASSERT_OK(rt_wait_quiescent(f.rt, 10000));
    ASSERT_EQ(0, stored_messages("sess_u"));
    cJSON_Delete(ctl_info);
    ctl_info = NULL;
    teardown(&f);
}

TEST(control_during_a_turn_is_busy)
{
    fixture f;
    reset_records();
    scripts[nscripts++] = (script){.content = "slow", .delay_ms = 300};
    setup(&f, false, false, NULL);
    rt_ref ctl = rt_spawn(f.cx, &ctl_type, NULL, NULL);
    say(&f, "go", 1);
    control(&f, ctl, AG_CTL_UNDO, 0, 0);
    ASSERT_EQ(-EBUSY, ctl_err);
    wait_done(&f, 1);
    ASSERT_STR_EQ("slow", done_text[0]);
    teardown(&f);
}

TEST(unanswered_message_is_answered_after_a_restart)
{
    fixture f;
    reset_records();
    setup(&f, true, false, "sess_r");
    /* A crash after the user's message was stored and a tool call began: the transcript
     * ends with an assistant tool call and no result. */
    rt_kill(f.cx, f.session);
    ASSERT_OK(rt_wait_quiescent(f.rt, 10000));
    st_msg_create_session *c = st_create_session_new("sess_r", "matrix");
    rt_send(f.cx, f.store.writer, &c->hdr);
    rt_send(f.cx, f.store.writer, &st_append_new("sess_r", "user", "please list files")->hdr);
    st_msg_append *a = st_append_new("sess_r", "assistant", "");
    a->tool_calls = rt_xstrdup("[" TC("c9", "test_echo", "{}") "]");
    rt_send(f.cx, f.store.writer, &a->hdr);
    rt_send(f.cx, f.store.writer, &st_ctl_new(ST_MSG_SYNC, 0, 0)->hdr);
    ASSERT_OK(rt_wait_quiescent(f.rt, 10000));

    scripts[nscripts++] = (script){.content = "here they are"};
    ag_session_opts o = {.session_id = "sess_r",
                         .provider = f.provider,
                         .store = f.store.writer,
                         .store_reader = f.store.readers[0],
                         .env = f.env,
                         .tools = tools_list,
                         .resume = true};
    f.session = ag_session_spawn(f.cx, &o, NULL);
    ag_msg_input *in = (ag_msg_input *)ag_input_new(NULL, f.sink, 5);
    in->unanswered = true;
    rt_send(f.cx, f.session, &in->hdr);
    wait_done(&f, 1);
    ASSERT_STR_EQ("here they are", done_text[0]);
    /* user, assistant(call), the repaired cancelled result; no new user message */
    ASSERT_EQ(3, last_nmessages);
    ASSERT_STR_EQ("[Tool execution cancelled - user interrupted]", last_user);
    ASSERT_EQ(4, stored_messages("sess_r"));

    /* Asking again finds it answered. */
    in = (ag_msg_input *)ag_input_new(NULL, f.sink, 6);
    in->unanswered = true;
    rt_send(f.cx, f.session, &in->hdr);
    wait_done(&f, 2);
    ASSERT_EQ(-EALREADY, done_err[1]);
    ASSERT_EQ(1, nrequests);
    teardown(&f);
}

TEST(history_seeds_a_new_session_and_is_persisted)
{
    fixture f;
    reset_records();
    scripts[nscripts++] = (script){.content = "Paris, still"};
    rt_options ro = {0};
    f.rt = rt_runtime_new(&ro);
    f.cx = rt_ctx_external(f.rt);
    f.provider = rt_spawn(f.cx, &provider_type, NULL, NULL);
    f.env = tool_env_new();
    snprintf(store_path, sizeof(store_path), "%s/state.db", test_tmpdir());
    st_store_opts so = {.path = store_path, .readers = 1};
    char err[256];
    ASSERT_OK(st_store_start(f.cx, &so, &f.store, err, sizeof(err)));
    cJSON *hist = cJSON_Parse("[{\"role\":\"user\",\"content\":\"capital of France?\"},"
                              "{\"role\":\"assistant\",\"content\":\"Paris\"}]");
    ag_session_opts o = {.session_id = "api-1",
                         .source = "api_server",
                         .provider = f.provider,
                         .store = f.store.writer,
                         .store_reader = f.store.readers[0],
                         .env = f.env,
                         .history = hist,
                         .resume = true};
    f.session = ag_session_spawn(f.cx, &o, NULL);
    cJSON_Delete(hist);
    f.sink = rt_spawn(f.cx, &sink_type, &f.session, NULL);
    say(&f, "and now?", 1);
    wait_done(&f, 1);
    ASSERT_STR_EQ("Paris, still", done_text[0]);
    ASSERT_EQ(3, last_nmessages);
    ASSERT_EQ(4, stored_messages("api-1"));
    teardown(&f);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Thousands of sessions created in one second must not share an id (the original's random
 * six hex digits collide: the store then refuses the second session). */
TEST(session_ids_are_unique_under_load)
{
    enum { N = 50000 };
    char **ids = rt_xcalloc(N, sizeof(*ids));
    for (size_t i = 0; i < N; i++) {
        ids[i] = ag_new_session_id();
        ASSERT_EQ(strlen(ids[i]), strlen("20261121_203459_8ab9c1"));
        ASSERT_EQ(ids[i][8], '_');
        ASSERT_EQ(ids[i][15], '_');
    }
    qsort(ids, N, sizeof(*ids), cmp_str);
    for (size_t i = 1; i < N; i++)
        ASSERT_TRUE(strcmp(ids[i - 1], ids[i]) != 0);
    for (size_t i = 0; i < N; i++)
        rt_free(ids[i]);
    rt_free(ids);
}

/* /compress: on demand, answered when the summary is in; too little to compress is -ENOENT;
 * a message sent meanwhile waits for it and is then answered from the compressed history. */
TEST(compress_on_demand)
{
    fixture f;
    reset_records();
    for (int i = 0; i < 5; i++)
        scripts[nscripts++] = (script){.content = "an answer"};
    setup(&f, true, false, "sess_m");
    rt_ref ctl = rt_spawn(f.cx, &ctl_type, NULL, NULL);
    say(&f, "q1", 1);
    wait_done(&f, 1);
    control(&f, ctl, AG_CTL_COMPRESS, 0, 0);
    ASSERT_EQ(-ENOENT, ctl_err); /* two messages */
    for (int i = 2; i <= 5; i++) {
        char q[8];
        snprintf(q, sizeof(q), "q%d", i);
        say(&f, q, (uint64_t)i);
        wait_done(&f, i);
    }
    int before = nrequests;
    scripts[nscripts++] = (script){.content = "[CONTEXT SUMMARY]: q1 to q3 were asked"};
    control(&f, ctl, AG_CTL_COMPRESS, 0, 0);
    ASSERT_EQ(0, ctl_err);
    ASSERT_EQ(10, ctl_n);
    ASSERT_EQ(10, (int)cJSON_GetObjectItem(ctl_info, "before")->valuedouble);
    int after = (int)cJSON_GetObjectItem(ctl_info, "after")->valuedouble;
    ASSERT_TRUE(after < 10);
    ASSERT_TRUE(strcmp(cJSON_GetObjectItem(ctl_info, "session_id")->valuestring, "sess_m") != 0);
    cJSON_Delete(ctl_info);
    ctl_info = NULL;
    ASSERT_EQ(before + 1, nrequests); /* the summary, nothing else */
    say(&f, "q6", 6);
    wait_done(&f, 6);
    ASSERT_EQ(after + 1, last_nmessages);
    teardown(&f);
}
