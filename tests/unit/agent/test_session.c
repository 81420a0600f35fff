/*
 * The session state machine against a scripted provider actor and a recording sink: the
 * tool loop, parallel and sequential calls, interrupts with follow-ups, /stop, invalid tool
 * retries, the iteration limit, asks, todo, persistence and resume from a real state.db, and
 * a full disk: the user's message kept and saved again until there is room (ag_save.c), on a
 * fake clock, against the real store with a size limit and a store double.
 */
#include "ag_int.h"
#include "ag_session.h"
#include "llm_provider.h"
#include "rt_alloc.h"
#include "rt_buf.h"
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
#include <time.h>
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
    bool held;             /* the provider first says it is waiting (LLM_MSG_STATUS) */
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
        if (idx >= 0 && scripts[idx].held)
            rt_send(cx, q->reply_to,
                    llm_status_new(q->tag, "\xe2\x8f\xb3 Waiting for the provider", 1000, 1));
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

static int ndone, nprogress, nasks, nstatus;
static char status_text[8][512];
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
    } else if (m->type == AG_MSG_STATUS) {
        ag_msg_status *st = (ag_msg_status *)m;
        if (nstatus < 8)
            snprintf(status_text[nstatus], sizeof(status_text[0]), "%s", st->text ? st->text : "");
        nstatus++;
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
static bool setup_fake_clock;     /* timers move only with rt_clock_advance */
static bool setup_store_double;   /* the session's store is store_double (below) */
static int64_t setup_retry_max_ms;
static const rt_actor_type store_double_type;

static void setup(fixture *f, bool with_store, bool resume, const char *session_id)
{
    rt_options ro = {.workers = setup_workers, .fake_clock = setup_fake_clock};
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
    } else if (setup_store_double) {
        f->store.writer = rt_spawn(f->cx, &store_double_type, NULL, NULL);
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
                         .context_length = setup_context_len,
                         .persist_retry_max_ms = setup_retry_max_ms};
    f->session = ag_session_spawn(f->cx, &o, NULL);
    f->sink = rt_spawn(f->cx, &sink_type, &f->session, NULL);
}

static void reset_records(void)
{
    pthread_mutex_lock(&lock);
    nscripts = next_script = nrequests = 0;
    ndone = nprogress = nasks = nstatus = 0;
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

/* Real time, also under the fake clock. */
static int64_t real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wait_done(fixture *f, int n)
{
    int64_t t0 = real_ms();
    for (;;) {
        pthread_mutex_lock(&lock);
        int d = ndone;
        pthread_mutex_unlock(&lock);
        if (d >= n)
            break;
        ASSERT_LT(real_ms() - t0, 10000);
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

TEST(waiting_for_the_provider_is_said_once_per_turn)
{
    fixture f;
    reset_records();
    /* turn 1: two requests, both held back by the provider; turn 2: one, held back */
    scripts[nscripts++] = (script){
        .tool_calls = "[" TC("c1", "test_echo", "{\\\"text\\\":\\\"a\\\"}") "]", .held = true};
    scripts[nscripts++] = (script){.content = "first", .held = true};
    scripts[nscripts++] = (script){.content = "second", .held = true};
    setup(&f, false, false, NULL);
    say(&f, "one", 1);
    wait_done(&f, 1);
    ASSERT_STR_EQ("first", done_text[0]);
    ASSERT_EQ(2, nrequests);
    ASSERT_EQ(1, nstatus);
    ASSERT_STR_CONTAINS(status_text[0], "Waiting for the provider");
    say(&f, "two", 2);
    wait_done(&f, 2);
    ASSERT_EQ(2, nstatus); /* a new turn is told again */
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

/* A reader on the test's state.db. */
static st_reader *store_reader(void)
{
    int err = 0;
    char errmsg[256];
    st_reader *r = st_reader_open(store_path, &err, errmsg, sizeof(errmsg));
    ASSERT_NOT_NULL(r);
    return r;
}

static int stored_messages(const char *session_id)
{
    st_reader *r = store_reader();
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

/* ------------------------------------------------------ a full disk (ag_save.c) */

/* The store double: the first dbl_fail_creates creates fail with -ENOSPC, the first
 * dbl_fail_appends appends of user messages with dbl_err; appends to a session whose row
 * does not exist fail with -ENOENT, as the real store's foreign key does. */
static int dbl_fail_creates, dbl_fail_appends, dbl_err;
static _Atomic int dbl_creates, dbl_user_appends, dbl_user_saved;

static void dbl_ack(rt_ctx *cx, rt_msg *m, int err, const char *errmsg)
{
    const st_req *req = &((st_msg_ctl *)m)->req; /* every request: hdr, then req */
    if (!req->reply_to)
        return;
    st_msg_ack *a = RT_MSG_NEW(st_msg_ack, ST_MSG_ACK);
    a->tag = req->tag;
    a->op = m->type;
    a->err = err;
    snprintf(a->errmsg, sizeof(a->errmsg), "%s", err ? errmsg : "");
    rt_send(cx, req->reply_to, &a->hdr);
}

static void store_double_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    bool *created = state;
    if (m->type == ST_MSG_CREATE_SESSION) {
        int n = atomic_fetch_add(&dbl_creates, 1) + 1;
        int err = n <= dbl_fail_creates ? -ENOSPC : (*created ? -EEXIST : 0);
        if (!err)
            *created = true;
        dbl_ack(cx, m, err, "create session: database or disk is full");
    } else if (m->type == ST_MSG_APPEND) {
        st_msg_append *a = (st_msg_append *)m;
        bool user = a->role && strcmp(a->role, "user") == 0;
        int n = user ? atomic_fetch_add(&dbl_user_appends, 1) + 1 : 0;
        int err = 0;
        if (!*created)
            err = -ENOENT;
        else if (user && n <= dbl_fail_appends)
            err = dbl_err;
        if (user && !err)
            atomic_fetch_add(&dbl_user_saved, 1);
        dbl_ack(cx, m, err,
                err == -ENOENT ? "append: unknown session" : "append: scripted failure");
    } else if (m->type >= ST_MSG_CREATE_SESSION && m->type <= ST_MSG_SYNC) {
        dbl_ack(cx, m, 0, "");
    }
}
static const rt_actor_type store_double_type = {"store_double", store_double_behave, NULL,
                                                sizeof(bool)};

/* The real store's counters, through a probe actor. */
static _Atomic int nstats;
static _Atomic uint64_t stat_writes, stat_errors;

static void probe_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type != ST_MSG_STATS_REPLY)
        return;
    st_msg_stats *r = (st_msg_stats *)m;
    atomic_store(&stat_writes, r->writes);
    atomic_store(&stat_errors, r->write_errors);
    atomic_fetch_add(&nstats, 1);
}
static const rt_actor_type probe_type = {"stats_probe", probe_behave, NULL, 0};

static void store_stats(fixture *f, rt_ref probe, uint64_t *writes, uint64_t *errors)
{
    int before = atomic_load(&nstats);
    rt_send(f->cx, f->store.writer, &st_ctl_new(ST_MSG_STATS, probe, 1)->hdr);
    int64_t t0 = real_ms();
    while (atomic_load(&nstats) == before) {
        ASSERT_LT(real_ms() - t0, 10000);
        usleep(1000);
    }
    *writes = atomic_load(&stat_writes);
    *errors = atomic_load(&stat_errors);
}

/* Wait until the store has failed n writes, then until the session has handled the ack
 * (its retry timer is armed when the runtime is quiet). */
static void wait_write_errors(fixture *f, rt_ref probe, uint64_t n)
{
    int64_t t0 = real_ms();
    for (;;) {
        uint64_t w, e;
        store_stats(f, probe, &w, &e);
        ASSERT_LE(e, n);
        if (e == n)
            break;
        ASSERT_LT(real_ms() - t0, 10000);
        usleep(1000);
    }
    ASSERT_OK(rt_wait_quiescent(f->rt, 10000));
}

static void advance_ms(fixture *f, int64_t ms)
{
    ASSERT_OK(rt_clock_advance(f->rt, ms * 1000000));
    ASSERT_OK(rt_wait_quiescent(f->rt, 10000));
}

static int get_counter(int *p)
{
    pthread_mutex_lock(&lock);
    int v = *p;
    pthread_mutex_unlock(&lock);
    return v;
}

/* Wait for the status notice (sent once the retry timer is armed). */
static void wait_status(int n)
{
    int64_t t0 = real_ms();
    while (get_counter(&nstatus) < n) {
        ASSERT_LT(real_ms() - t0, 10000);
        usleep(1000);
    }
}

/* A user message far bigger than what the size limit leaves. */
static char *big_message(const char *token)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_append_str(&b, token);
    for (int i = 0; i < 8000; i++)
        rt_buf_append_str(&b, " filler");
    return rt_buf_steal(&b, NULL);
}

/* Messages of a session with exactly this content, in state.db. */
static int stored_with_content(const char *session_id, const char *content)
{
    st_reader *r = store_reader();
    cJSON *msgs = NULL;
    ASSERT_OK(st_read_messages(r, session_id, &msgs));
    int n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *c = cJSON_GetObjectItem(m, "content");
        n += cJSON_IsString(c) && strcmp(c->valuestring, content) == 0;
    }
    cJSON_Delete(msgs);
    st_reader_free(r);
    return n;
}

/* A session's token counters in state.db (after everything sent before is durable). */
static int64_t stored_tokens(fixture *f, const char *session_id, const char *col)
{
    ASSERT_OK(rt_wait_quiescent(f->rt, 10000));
    st_reader *r = store_reader();
    cJSON *row = NULL;
    ASSERT_OK(st_read_session(r, session_id, &row));
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, col);
    int64_t n = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
    cJSON_Delete(row);
    st_reader_free(r);
    return n;
}

/* Each model call's tokens reach the session's counters: with the message it produced, or on
 * their own when that message is not kept (a call of an unknown tool, asked again). */
TEST(every_model_calls_tokens_are_counted_once)
{
    fixture f;
    reset_records();
    scripts[nscripts++] = (script){.tool_calls = "[" TC("c1", "no_such_tool", "{}") "]"};
    scripts[nscripts++] = (script){.content = "fixed", .prompt_tokens = 250};
    setup(&f, true, false, "sess_tok");
    say(&f, "go", 1);
    wait_done(&f, 1);
    ASSERT_STR_EQ("fixed", done_text[0]);
    ASSERT_EQ(1, stored_with_content("sess_tok", "fixed"));
    ASSERT_EQ(350, stored_tokens(&f, "sess_tok", "input_tokens"));
    ASSERT_EQ(20, stored_tokens(&f, "sess_tok", "output_tokens"));
    teardown(&f);
}

/* Set the real store's size limit: 1 byte means "no room beyond what is there", 0 lifts it. */
static void disk_quota(fixture *f, int64_t bytes)
{
    rt_send(f->cx, f->store.writer, &st_set_quota_new(bytes)->hdr);
}

/* The disk fills up: the message is kept, retried after 1 s, then 2 s, saved on the third
 * attempt once there is room, then answered once, together with what came meanwhile; the
 * user is told once; state.db has it once. */
TEST(disk_full_message_is_saved_on_the_third_attempt_and_answered_once)
{
    fixture f;
    reset_records();
    scripts[nscripts++] = (script){.content = "first answer"};
    scripts[nscripts++] = (script){.content = "answer after the disk full"};
    setup_fake_clock = true;
    setup(&f, true, false, "sess_d");
    rt_ref probe = rt_spawn(f.cx, &probe_type, NULL, NULL);
    say(&f, "hello", 1);
    wait_done(&f, 1);

    disk_quota(&f, 1);
    char *big = big_message("tokA");
    say(&f, big, 2);
    wait_write_errors(&f, probe, 1); /* attempt 1 */
    wait_status(1);
    ASSERT_STR_CONTAINS(status_text[0], "disk");
    ASSERT_STR_CONTAINS(status_text[0], "full");
    ASSERT_EQ(1, get_counter(&ndone));
    ASSERT_EQ(1, get_counter(&nrequests));
    say(&f, "tokB meanwhile", 3); /* joins the waiting turn */

    uint64_t w1, e1, w2, e2;
    store_stats(&f, probe, &w1, &e1);
    advance_ms(&f, 999); /* not yet */
    store_stats(&f, probe, &w2, &e2);
    ASSERT_EQ(w1, w2);
    advance_ms(&f, 1);
    wait_write_errors(&f, probe, 2); /* attempt 2, after 1 s */
    store_stats(&f, probe, &w1, &e1);
    advance_ms(&f, 1999); /* the backoff doubled: not yet */
    store_stats(&f, probe, &w2, &e2);
    ASSERT_EQ(w1, w2);
    ASSERT_EQ(1, get_counter(&ndone));

    disk_quota(&f, 0); /* space again */
    advance_ms(&f, 1); /* attempt 3 */
    wait_done(&f, 2);
    ASSERT_STR_EQ("answer after the disk full", done_text[1]);
    ASSERT_EQ(0, done_err[1]);
    ASSERT_EQ(2, ndone);
    ASSERT_EQ(2, nrequests);
    ASSERT_EQ(1, nstatus);                      /* one notice, not one per retry */
    ASSERT_STR_EQ("tokB meanwhile", last_user); /* folded in after the saved message */
    ASSERT_EQ(4, last_nmessages);               /* hello, first answer, the big one, tokB */
    store_stats(&f, probe, &w1, &e1);
    ASSERT_EQ(2, e1); /* the third attempt succeeded */
    ASSERT_EQ(1, stored_with_content("sess_d", big));
    ASSERT_EQ(1, stored_with_content("sess_d", "tokB meanwhile"));
    ASSERT_EQ(5, stored_messages("sess_d")); /* hello, first answer, big, tokB, answer */
    rt_free(big);
    teardown(&f);
}

/* A store error that is not the disk (here a corrupt database) is not retried: the refusal,
 * at once, no notice, nothing sent to the model; the refused message is not in the
 * conversation afterwards. */
TEST(store_error_that_is_not_the_disk_keeps_the_refusal)
{
    fixture f;
    reset_records();
    scripts[nscripts++] = (script){.content = "answer to the next one"};
    setup_fake_clock = true;
    setup_store_double = true;
    dbl_fail_appends = 1;
    dbl_err = -EBADMSG;
    setup(&f, false, false, "sess_e");
    say(&f, "refused", 1);
    wait_done(&f, 1);
    ASSERT_EQ(-EBADMSG, done_err[0]);
    ASSERT_STR_CONTAINS(done_text[0], "Could not save your message (append: scripted failure)");
    ASSERT_STR_CONTAINS(done_text[0], "please try again");
    ASSERT_EQ(0, nrequests);
    ASSERT_EQ(0, nstatus);
    advance_ms(&f, 60000); /* no retry comes */
    ASSERT_EQ(1, atomic_load(&dbl_user_appends));
    ASSERT_EQ(1, get_counter(&ndone));

    say(&f, "next", 2);
    wait_done(&f, 2);
    ASSERT_STR_EQ("answer to the next one", done_text[1]);
    ASSERT_EQ(1, last_nmessages); /* "refused" is gone */
    ASSERT_EQ(1, atomic_load(&dbl_user_saved));
    teardown(&f);
}

/* A new session on a full disk: its row cannot be created, so the message is refused as
 * belonging to an unknown session; that counts as the disk, and both are written again. */
TEST(new_session_on_a_full_disk_is_created_when_space_returns)
{
    fixture f;
    reset_records();
    scripts[nscripts++] = (script){.content = "answered"};
    setup_fake_clock = true;
    setup_store_double = true;
    dbl_fail_creates = 1;
    setup(&f, false, false, "sess_n");
    say(&f, "first words", 1);
    wait_status(1);
    ASSERT_EQ(0, get_counter(&ndone));
    advance_ms(&f, 1000);
    wait_done(&f, 1);
    ASSERT_STR_EQ("answered", done_text[0]);
    ASSERT_EQ(2, atomic_load(&dbl_creates));
    ASSERT_EQ(2, atomic_load(&dbl_user_appends));
    ASSERT_EQ(1, atomic_load(&dbl_user_saved));
    ASSERT_EQ(1, nrequests);
    teardown(&f);
}

/* /stop while the message waits for space: dropped with a notice, never retried, never
 * answered, not in the conversation. */
TEST(stop_while_waiting_for_disk_space_drops_the_message)
{
    fixture f;
    reset_records();
    scripts[nscripts++] = (script){.content = "first answer"};
    scripts[nscripts++] = (script){.content = "answer to next"};
    setup_fake_clock = true;
    setup(&f, true, false, "sess_s");
    rt_ref probe = rt_spawn(f.cx, &probe_type, NULL, NULL);
    say(&f, "hello", 1);
    wait_done(&f, 1);
    disk_quota(&f, 1);
    char *big = big_message("tokS");
    say(&f, big, 2);
    wait_write_errors(&f, probe, 1);
    wait_status(1);

    rt_interrupt(f.cx, f.session, AG_INT_STOP);
    wait_done(&f, 2);
    ASSERT_TRUE(done_interrupted[1]);
    ASSERT_EQ(2, nstatus);
    ASSERT_STR_CONTAINS(status_text[1], "dropped");
    disk_quota(&f, 0);
    uint64_t w1, e1, w2, e2;
    store_stats(&f, probe, &w1, &e1);
    advance_ms(&f, 120000);
    store_stats(&f, probe, &w2, &e2);
    ASSERT_EQ(w1, w2); /* no retry after the stop */
    ASSERT_EQ(1, get_counter(&nrequests));

    say(&f, "next", 3);
    wait_done(&f, 3);
    ASSERT_STR_EQ("answer to next", done_text[2]);
    ASSERT_EQ(3, last_nmessages); /* hello, first answer, next */
    ASSERT_EQ(0, stored_with_content("sess_s", big));
    ASSERT_EQ(4, stored_messages("sess_s"));
    rt_free(big);
    teardown(&f);
}

/* The disk stays full past persist_retry_max_ms: the refusal, after one notice. */
TEST(waiting_for_disk_space_ends_with_the_refusal_after_the_maximum_wait)
{
    fixture f;
    reset_records();
    scripts[nscripts++] = (script){.content = "first answer"};
    scripts[nscripts++] = (script){.content = "answer to next"};
    setup_fake_clock = true;
    setup_retry_max_ms = 10000;
    setup(&f, true, false, "sess_w");
    rt_ref probe = rt_spawn(f.cx, &probe_type, NULL, NULL);
    say(&f, "hello", 1);
    wait_done(&f, 1);
    disk_quota(&f, 1);
    char *big = big_message("tokW");
    say(&f, big, 2);
    wait_write_errors(&f, probe, 1);
    /* retries at 1, 3, 7 s, then the last one at the deadline, 10 s */
    int64_t t = 0;
    for (int64_t step = 1000; get_counter(&ndone) < 2 && t < 10000;) {
        advance_ms(&f, step);
        t += step;
        step = step * 2 > 10000 - t ? 10000 - t : step * 2;
        if (t < 10000)
            ASSERT_EQ(1, get_counter(&ndone));
    }
    wait_done(&f, 2);
    ASSERT_EQ(10000, t);
    ASSERT_EQ(-ENOSPC, done_err[1]);
    ASSERT_STR_CONTAINS(done_text[1], "Could not save your message");
    ASSERT_STR_CONTAINS(done_text[1], "full");
    ASSERT_STR_CONTAINS(done_text[1], "please try again");
    ASSERT_EQ(1, nstatus);
    uint64_t w, e;
    store_stats(&f, probe, &w, &e);
    ASSERT_EQ(5, e); /* at 0, 1, 3, 7 and 10 s */
    ASSERT_EQ(1, nrequests);

    disk_quota(&f, 0);
    say(&f, "next", 3);
    wait_done(&f, 3);
    ASSERT_STR_EQ("answer to next", done_text[2]);
    ASSERT_EQ(3, last_nmessages);
    ASSERT_EQ(0, stored_with_content("sess_w", big));
    rt_free(big);
    teardown(&f);
}

/* Many messages while the disk is full: all of them answered by one turn, in order, however
 * many there are (beyond AG_PENDING_MAX they are joined as they come). */
TEST(many_messages_while_the_disk_is_full_join_one_turn)
{
    fixture f;
    reset_records();
    scripts[nscripts++] = (script){.content = "all at once"};
    setup_fake_clock = true;
    setup_store_double = true;
    dbl_fail_appends = 1;
    dbl_err = -ENOSPC;
    setup(&f, false, false, "sess_p");
    say(&f, "m00", 1);
    wait_status(1);
    enum { N = AG_PENDING_MAX + 8 };
    for (int i = 1; i <= N; i++) {
        char t[16];
        snprintf(t, sizeof(t), "m%02d", i);
        say(&f, t, (uint64_t)i + 1);
    }
    ASSERT_OK(rt_wait_quiescent(f.rt, 10000));
    ASSERT_EQ(0, get_counter(&ndone));
    advance_ms(&f, 1000);
    wait_done(&f, 1);
    ASSERT_STR_EQ("all at once", done_text[0]);
    ASSERT_EQ(1, nrequests);
    ASSERT_EQ(2, last_nmessages); /* m00, then the others as one message */
    rt_buf want;
    rt_buf_init(&want, 4096);
    for (int i = 1; i <= N; i++)
        rt_buf_printf(&want, "%sm%02d", i > 1 ? "\n" : "", i);
    ASSERT_STR_EQ(rt_buf_cstr(&want), last_user);
    rt_buf_fini(&want);
    ASSERT_EQ(3, atomic_load(&dbl_user_appends)); /* m00 twice, the joined rest once */
    ASSERT_EQ(2, atomic_load(&dbl_user_saved));
    teardown(&f);
}
