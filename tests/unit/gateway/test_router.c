/*
 * The gateway end to end inside one process: a test adapter (platform "test") in front, the
 * real router, chat actors, agent sessions, pairing store and state.db behind it, and a
 * scripted LLM provider actor at the back. Covers: an answered and persisted DM, unknown
 * users (pairing code in a DM, silence in a group), pairing end to end, per-user and
 * per-thread isolation, a message while a turn runs (one follow-up answers all), /stop,
 * approvals by reply, commands, /sethome and delivery, crash recovery, bad events.
 *
 * "Nothing else arrived" is checked by sending an authorized message afterwards and waiting
 * for its answer: the adapter's mailbox is ordered, so anything earlier would be there.
 */
#include "ag_session.h"
#include "gw.h"
#include "gw_int.h"
#include "gw_pairing.h"
#include "hm_config.h"
#include "hm_env.h"
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
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAIT_NS 15000000000LL

/* ------------------------------------------------------------- a test tool */

static void echo_start(rt_ctx *cx, tool_run *run)
{
    const char *cmd = tool_arg_str(run, "command");
    if (cmd) {
        tool_ask(cx, run, TOOL_ASK_APPROVAL, rt_xstrdup(cmd), rt_xstrdup("recursive delete"),
                 rt_xstrdup("recursive delete"), NULL);
        return;
    }
    tool_finish(cx, run, rt_xstrdup("{\"ok\":true}"));
}

static void echo_msg(rt_ctx *cx, tool_run *run, rt_msg *m)
{
    if (m->type == TOOL_MSG_ANSWER)
        tool_finish(cx, run, rt_xasprintf("{\"answer\":%d}", ((tool_msg_answer *)m)->answer));
}

static void echo_interrupt(rt_ctx *cx, tool_run *run)
{
    tool_finish(cx, run, rt_xstrdup("{\"interrupted\":true}"));
}

const tool_def tool_def_test_echo = {
    .name = "test_echo",
    .toolset = "test",
    .schema = "{\"name\":\"test_echo\",\"description\":\"echo\",\"parameters\":{\"type\":"
              "\"object\"}}",
    .parallel_safe = true,
    .start = echo_start,
    .on_msg = echo_msg,
    .on_interrupt = echo_interrupt,
};

/* ------------------------------------------------------ the scripted model */

typedef struct script {
    const char *content;    /* NULL: "echo: <last user message>" */
    const char *tool_calls; /* JSON array, or NULL */
    int64_t delay_ms;
} script;

enum { T_REPLY = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1) };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static script scripts[16];
static int nscripts, next_script, nrequests;
static char last_user[4096];
static char all_users[8192]; /* every user message of the last request, joined with | */

typedef struct reply_msg {
    rt_msg hdr;
    rt_ref to;
    uint64_t tag;
    char *text;
    int idx;
} reply_msg;

static void drop_reply(rt_msg *m)
{
    rt_free(((reply_msg *)m)->text);
}

static void send_result(rt_ctx *cx, rt_ref to, uint64_t tag, int idx, const char *echo, int err)
{
    llm_msg_result *r = llm_result_msg_new(tag);
    if (err) {
        r->err = err;
        r->errmsg = rt_xstrdup("cancelled");
        rt_send(cx, to, &r->hdr);
        return;
    }
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "assistant");
    const script *sc = idx >= 0 ? &scripts[idx] : NULL;
    if (sc && sc->content)
        cJSON_AddStringToObject(msg, "content", sc->content);
    else if (sc && sc->tool_calls)
        cJSON_AddStringToObject(msg, "content", "");
    else {
        char *t = rt_xasprintf("echo: %s", echo);
        cJSON_AddStringToObject(msg, "content", t);
        rt_free(t);
    }
    if (sc && sc->tool_calls)
        cJSON_AddItemToObject(msg, "tool_calls", cJSON_Parse(sc->tool_calls));
    r->result.message = msg;
    r->result.finish_reason = rt_xstrdup(sc && sc->tool_calls ? "tool_calls" : "stop");
    r->result.usage.prompt_tokens = 50;
    r->result.usage.completion_tokens = 5;
    rt_send(cx, to, &r->hdr);
}

typedef struct model_state {
    uint64_t waiting_tag;
    rt_ref waiting_to;
    uint64_t timer;
} model_state;

static void model_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    model_state *ms = state;
    if (m->type == LLM_MSG_REQUEST) {
        llm_msg_request *q = (llm_msg_request *)m;
        pthread_mutex_lock(&lock);
        nrequests++;
        int n = cJSON_GetArraySize(q->messages);
        all_users[0] = '\0';
        const cJSON *it;
        cJSON_ArrayForEach(it, q->messages)
        {
            const cJSON *role = cJSON_GetObjectItem(it, "role");
            const cJSON *c = cJSON_GetObjectItem(it, "content");
            if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0 &&
                cJSON_IsString(c)) {
                size_t l = strlen(all_users);
                snprintf(all_users + l, sizeof(all_users) - l, "%s|", c->valuestring);
            }
        }
        const cJSON *c = cJSON_GetObjectItem(cJSON_GetArrayItem(q->messages, n - 1), "content");
        snprintf(last_user, sizeof(last_user), "%s", cJSON_IsString(c) ? c->valuestring : "");
        int idx = next_script < nscripts ? next_script++ : -1;
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
        if (idx >= 0 && scripts[idx].delay_ms) {
            reply_msg *p = RT_MSG_NEW(reply_msg, T_REPLY);
            p->to = q->reply_to;
            p->tag = q->tag;
            p->idx = idx;
            p->text = rt_xstrdup(last_user);
            p->hdr.drop = drop_reply;
            ms->waiting_tag = q->tag;
            ms->waiting_to = q->reply_to;
            ms->timer = rt_send_after(cx, rt_self(cx), &p->hdr, scripts[idx].delay_ms);
            return;
        }
        send_result(cx, q->reply_to, q->tag, idx, last_user, 0);
    } else if (m->type == T_REPLY) {
        reply_msg *p = (reply_msg *)m;
        ms->waiting_tag = 0;
        send_result(cx, p->to, p->tag, p->idx, p->text, 0);
    } else if (m->type == LLM_MSG_CANCEL) {
        llm_msg_cancel *c = (llm_msg_cancel *)m;
        if (ms->waiting_tag == c->tag) {
            rt_timer_cancel(cx, ms->timer);
            ms->waiting_tag = 0;
            send_result(cx, ms->waiting_to, c->tag, -1, "", -ECANCELED);
        }
    }
}
static const rt_actor_type model_type = {"model", model_behave, NULL, sizeof(model_state)};

/* ---------------------------------------------------------- the adapter */

typedef struct out {
    uint32_t type;
    int kind;
    int outcome;
    char chat[128];
    char text[2048];
    char session[96];
    uint64_t request;
} out;

static out outs[256];
static int nouts;
/* Acknowledging adapter (caps.acks): the first ack_failures sends to chat dm-alice fail
 * (-1: all of them). */
static int ack_failures;

static void adapter_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type == GW_OUT_TEXT && ((gw_out_text *)m)->delivery) {
        const char *chat = ((gw_out_text *)m)->to.chat_id;
        pthread_mutex_lock(&lock);
        bool fail = ack_failures != 0 && chat && strcmp(chat, "dm-alice") == 0;
        if (fail && ack_failures > 0)
            ack_failures--;
        pthread_mutex_unlock(&lock);
        rt_send(cx, rt_whereis(cx, GW_NAME),
                gw_sent_new(((gw_out_text *)m)->delivery, fail ? -EIO : 0,
                            fail ? "the homeserver answered 502" : NULL));
    }
    pthread_mutex_lock(&lock);
    if (nouts < 256) {
        out *o = &outs[nouts];
        memset(o, 0, sizeof(*o));
        o->type = m->type;
        if (m->type == GW_OUT_TEXT || m->type == GW_OUT_DELTA) {
            gw_out_text *t = (gw_out_text *)m;
            o->kind = t->kind;
            snprintf(o->chat, sizeof(o->chat), "%s", t->to.chat_id ? t->to.chat_id : "");
            snprintf(o->text, sizeof(o->text), "%s", t->text ? t->text : "");
            nouts++;
        } else if (m->type == GW_OUT_TURN_END) {
            gw_out_turn_end *e = (gw_out_turn_end *)m;
            o->outcome = e->outcome;
            o->request = e->to.request;
            snprintf(o->chat, sizeof(o->chat), "%s", e->to.chat_id ? e->to.chat_id : "");
            snprintf(o->session, sizeof(o->session), "%s", e->session_id ? e->session_id : "");
            nouts++;
        }
    }
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}
static const rt_actor_type adapter_type = {"test_adapter", adapter_behave, NULL, 0};

/* ------------------------------------------------------------- fixture */

typedef struct fixture {
    rt_runtime *rt;
    rt_ctx *cx;
    hm_config *cfg;
    st_store_refs store;
    rt_ref model, gateway, adapter;
    char home[512];
} fixture;

static fixture F;
static int64_t F_deadline_ms; /* the outbox's deadline for the next start; 0: default */

static rt_ref spawn_session(rt_ctx *cx, const gw_session_req *req, void *arg)
{
    fixture *f = arg;
    static const char *tools[] = {"test_echo", NULL};
    tool_env *env = tool_env_new();
    env->enabled_tools = rt_xcalloc(2, sizeof(char *));
    env->enabled_tools[0] = rt_xstrdup("test_echo");
    env->interactive = true;
    ag_session_opts o = {.session_id = req->session_id,
                         .source = req->platform,
                         .user_id = req->user_id,
                         .ephemeral = req->ephemeral,
                         .history = req->history,
                         .provider = f->model,
                         .store = f->store.writer,
                         .store_reader = f->store.readers[0],
                         .env = env,
                         .tools = tools,
                         .resume = req->resume,
                         .stream = req->stream,
                         .approval_timeout_ms = 5000};
    rt_ref r = ag_session_spawn(cx, &o, NULL);
    tool_env_unref(env);
    return r;
}

static void reset_records(void)
{
    pthread_mutex_lock(&lock);
    ack_failures = 0;
    nscripts = next_script = nrequests = 0;
    nouts = 0;
    pthread_mutex_unlock(&lock);
}

static void start_gateway(fixture *f, bool fresh)
{
    if (fresh) {
        snprintf(f->home, sizeof(f->home), "%s/home", test_tmpdir());
        mkdir(f->home, 0700);
        reset_records();
    }
    setenv("HERMES_HOME", f->home, 1);
    setenv("TEST_ALLOWED_USERS", "alice,bob", 1);
    unsetenv("GATEWAY_ALLOW_ALL_USERS");
    int err = 0;
    ASSERT_OK(hm_config_ensure_home(f->home));
    f->cfg = hm_config_load(f->home, 0, NULL, &err);
    ASSERT_NOT_NULL(f->cfg);
    rt_options ro = {0};
    f->rt = rt_runtime_new(&ro);
    f->cx = rt_ctx_external(f->rt);
    char path[600], msg[256];
    snprintf(path, sizeof(path), "%s/state.db", f->home);
    st_store_opts so = {.path = path, .readers = 1};
    ASSERT_OK(st_store_start(f->cx, &so, &f->store, msg, sizeof(msg)));
    f->model = rt_spawn(f->cx, &model_type, NULL, NULL);
    gw_opts go = {.cfg = f->cfg,
                  .home = f->home,
                  .spawn = spawn_session,
                  .spawn_arg = f,
                  .store = f->store.writer,
                  .state_db = path,
                  .model = "test-model",
                  .provider = "custom",
                  .delivery_retry_ms = 20,
                  .delivery_deadline_ms = F_deadline_ms};
    ASSERT_OK(gw_start(f->cx, &go, &f->gateway, msg, sizeof(msg)));
    f->adapter = rt_spawn(f->cx, &adapter_type, NULL, NULL);
    gw_caps caps = {.max_message = 4000, .progress = true, .markdown = true};
    rt_send(f->cx, f->gateway, gw_adapter_up_new("test", f->adapter, &caps, NULL));
}

static void stop_gateway(fixture *f)
{
    ASSERT_OK(rt_wait_quiescent(f->rt, 10000));
    rt_runtime_free(f->rt);
    hm_config_unref(f->cfg);
}

static void msg_in(fixture *f, const char *type, const char *chat, const char *user,
                   const char *thread, const char *text)
{
    gw_msg_event *e = gw_event_new("test", type, chat, user, text);
    e->src.user_name = user ? rt_xasprintf("%s-name", user) : NULL;
    if (thread) {
        e->src.thread_id = rt_xstrdup(thread);
        e->reply.thread_id = rt_xstrdup(thread);
    }
    e->adapter = f->adapter;
    rt_send(f->cx, f->gateway, &e->hdr);
}

/* Wait for the n-th output (0-based count n+1) matching type/kind/chat; its index. */
static int wait_out(uint32_t type, int kind, const char *chat, const char *needle, int nth)
{
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    pthread_mutex_lock(&lock);
    for (;;) {
        int seen = 0;
        for (int i = 0; i < nouts; i++) {
            out *o = &outs[i];
            if (o->type != type || (kind >= 0 && o->kind != kind) ||
                (chat && strcmp(o->chat, chat) != 0) || (needle && !strstr(o->text, needle)))
                continue;
            if (seen++ == nth) {
                pthread_mutex_unlock(&lock);
                return i;
            }
        }
        if (rt_now_ns(F.rt) > deadline) {
            pthread_mutex_unlock(&lock);
            for (int i = 0; i < nouts; i++)
                fprintf(stderr, "  out[%d] type=%#x kind=%d chat=%s text=%s\n", i, outs[i].type,
                        outs[i].kind, outs[i].chat, outs[i].text);
            TEST_FAIL_("timed out waiting for output type %#x kind %d chat %s needle %s", type,
                       kind, chat ? chat : "*", needle ? needle : "*");
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
}

static int count_out(uint32_t type, int kind, const char *chat)
{
    pthread_mutex_lock(&lock);
    int n = 0;
    for (int i = 0; i < nouts; i++)
        n += outs[i].type == type && (kind < 0 || outs[i].kind == kind) &&
             (!chat || strcmp(outs[i].chat, chat) == 0);
    pthread_mutex_unlock(&lock);
    return n;
}

/* Wait until the model has had n requests. */
static void wait_requests(int n)
{
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    pthread_mutex_lock(&lock);
    while (nrequests < n) {
        if (rt_now_ns(F.rt) > deadline) {
            pthread_mutex_unlock(&lock);
            TEST_FAIL_("the model got %d requests, not %d", nrequests, n);
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

static int count_text(const char *chat, const char *needle)
{
    pthread_mutex_lock(&lock);
    int n = 0;
    for (int i = 0; i < nouts; i++)
        n += outs[i].type == GW_OUT_TEXT && strcmp(outs[i].chat, chat) == 0 &&
             strstr(outs[i].text, needle) != NULL;
    pthread_mutex_unlock(&lock);
    return n;
}

/* sessions.json is written within a second of a change. */
static void wait_index(void)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/sessions/sessions.json", F.home);
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    while (access(path, F_OK) != 0 && rt_now_ns(F.rt) < deadline)
        usleep(5000);
    ASSERT_OK(access(path, F_OK));
}

static const char *out_text(int i)
{
    return outs[i].text;
}

#define TC(id, name, args)                                                                         \
    "{\"id\":\"" id "\",\"type\":\"function\",\"function\":{\"name\":\"" name                      \
    "\",\"arguments\":\"" args "\"}}"

/* ------------------------------------------------------------------ tests */

TEST(dm_is_answered_and_persisted)
{
    start_gateway(&F, true);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "hello there");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", NULL, 0);
    ASSERT_STR_EQ("echo: hello there", out_text(i));
    i = wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    ASSERT_EQ(GW_OUTCOME_SUCCESS, outs[i].outcome);
    char session[96];
    snprintf(session, sizeof(session), "%s", outs[i].session);
    ASSERT_EQ(32, (int)strlen(session) + 8); /* YYYYMMDD_HHMMSS_xxxxxxxx */
    /* state.db has both messages; sessions.json knows the key */
    char path[600], msg[256];
    snprintf(path, sizeof(path), "%s/state.db", F.home);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    int err = 0;
    st_reader *r = st_reader_open(path, &err, msg, sizeof(msg));
    ASSERT_NOT_NULL(r);
    cJSON *msgs = NULL;
    ASSERT_OK(st_read_messages(r, session, &msgs));
    ASSERT_EQ(2, cJSON_GetArraySize(msgs));
    cJSON_Delete(msgs);
    st_reader_free(r);
    wait_index();
    stop_gateway(&F);
    snprintf(path, sizeof(path), "%s/sessions/sessions.json", F.home);
    char *text = NULL;
    size_t len = 0;
    ASSERT_OK(hm_read_file(path, 1 << 20, &text, &len));
    ASSERT_STR_CONTAINS(text, "\"agent:main:test:dm:dm-alice\"");
    ASSERT_STR_CONTAINS(text, session);
    struct stat st;
    ASSERT_OK(stat(path, &st));
    ASSERT_EQ(0600, st.st_mode & 0777);
    rt_free(text);
}

TEST(unknown_users_get_a_code_in_dms_and_silence_in_groups)
{
    start_gateway(&F, true);
    msg_in(&F, "group", "room-1", "mallory", NULL, "hi all");
    msg_in(&F, "dm", "dm-mallory", "mallory", NULL, "let me in");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-mallory", "pairing code", 0);
    ASSERT_STR_CONTAINS(out_text(i), "Hi~ I don't recognize you yet!");
    ASSERT_STR_CONTAINS(out_text(i), "hermes pairing approve test ");
    /* an event with no user id is dropped silently, so is one with no platform */
    msg_in(&F, "dm", "dm-x", NULL, NULL, "anonymous");
    gw_msg_event *bad = gw_event_new(NULL, "dm", "c", "alice", "no platform");
    rt_send(F.cx, F.gateway, &bad->hdr);
    /* then an authorized message: its answer proves nothing else came before it */
    msg_in(&F, "group", "room-1", "alice", NULL, "ping");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "room-1", "echo: ping", 0);
    ASSERT_EQ(1, count_out(GW_OUT_TEXT, GW_TEXT_REPLY, "room-1"));
    ASSERT_EQ(0, count_text("room-1", "pairing"));
    ASSERT_EQ(0, count_out(GW_OUT_TEXT, -1, "dm-x"));
    pthread_mutex_lock(&lock);
    ASSERT_EQ(1, nrequests);
    pthread_mutex_unlock(&lock);
    stop_gateway(&F);
}

TEST(pairing_end_to_end)
{
    start_gateway(&F, true);
    msg_in(&F, "dm", "dm-carol", "carol", NULL, "hello?");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-carol", "pairing code", 0);
    const char *p = strstr(out_text(i), "`hermes pairing approve test ");
    ASSERT_NOT_NULL(p);
    char code[16] = "";
    snprintf(code, sizeof(code), "%.8s", p + strlen("`hermes pairing approve test "));
    /* the owner approves, as `hermes pairing approve` would from another process */
    int err = 0;
    gw_pairing *store = gw_pairing_open(F.home, &err);
    ASSERT_NOT_NULL(store);
    char *uid = NULL, *uname = NULL;
    ASSERT_OK(gw_pairing_approve(store, "test", code, gw_pairing_now(), &uid, &uname));
    ASSERT_STR_EQ("carol", uid);
    rt_free(uid);
    rt_free(uname);
    gw_pairing_free(store);
    msg_in(&F, "dm", "dm-carol", "carol", NULL, "now?");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-carol", NULL, 0);
    ASSERT_STR_EQ("echo: now?", out_text(i));
    stop_gateway(&F);
}

TEST(groups_are_per_user_and_threads_are_shared)
{
    start_gateway(&F, true);
    msg_in(&F, "group", "room", "alice", NULL, "a1");
    wait_out(GW_OUT_TURN_END, -1, "room", NULL, 0);
    msg_in(&F, "group", "room", "bob", NULL, "b1");
    wait_out(GW_OUT_TURN_END, -1, "room", NULL, 1);
    /* bob's request holds only his own message */
    ASSERT_STR_EQ("b1|", all_users);
    msg_in(&F, "group", "room", "alice", NULL, "a2");
    wait_out(GW_OUT_TURN_END, -1, "room", NULL, 2);
    ASSERT_STR_EQ("a1|a2|", all_users);
    /* in a thread both talk in one session, each message prefixed with its sender */
    msg_in(&F, "group", "room", "alice", "t1", "in thread");
    wait_out(GW_OUT_TURN_END, -1, "room", NULL, 3);
    msg_in(&F, "group", "room", "bob", "t1", "me too");
    int i = wait_out(GW_OUT_TURN_END, -1, "room", NULL, 4);
    ASSERT_STR_EQ("[alice-name] in thread|[bob-name] me too|", all_users);
    int j = wait_out(GW_OUT_TURN_END, -1, "room", NULL, 3);
    ASSERT_STR_EQ(outs[i].session, outs[j].session);
    stop_gateway(&F);
}

TEST(messages_during_a_turn_are_answered_together)
{
    start_gateway(&F, true);
    scripts[nscripts++] = (script){.content = "too late", .delay_ms = 3000};
    /* the follow-up is slow too, so "three" lands during it or before it starts: either way
     * one answer covers everything */
    scripts[nscripts++] = (script){.delay_ms = 300};
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "one");
    /* wait until the model has the first one */
    wait_requests(1);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "two");
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "three");
    int ack = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Interrupting current task", 0);
    ASSERT_GE(ack, 0);
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", NULL, 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    /* one answer for all three, the model saw every message in order */
    ASSERT_EQ(1, count_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice"));
    ASSERT_NULL(strstr(out_text(i), "too late"));
    ASSERT_STR_CONTAINS(all_users, "one|");
    ASSERT_STR_CONTAINS(all_users, "two");
    ASSERT_STR_CONTAINS(all_users, "three");
    ASSERT_LT((int)(strstr(all_users, "two") - all_users),
              (int)(strstr(all_users, "three") - all_users));
    /* the acknowledgement went out once */
    ASSERT_EQ(1, count_text("dm-alice", "Interrupting"));
    stop_gateway(&F);
}

TEST(stop_interrupts_without_a_follow_up)
{
    start_gateway(&F, true);
    scripts[nscripts++] = (script){.content = "never", .delay_ms = 5000};
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "long task");
    wait_requests(1);
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "/stop");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-bob", "Stopped. You can continue this session.", 0);
    int i = wait_out(GW_OUT_TURN_END, -1, "dm-bob", NULL, 0);
    ASSERT_EQ(GW_OUTCOME_CANCELLED, outs[i].outcome);
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "/stop");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-bob", "No active task to stop.", 0);
    /* the session goes on */
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "again");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-bob", NULL, 0);
    ASSERT_STR_EQ("echo: again", out_text(i));
    ASSERT_EQ(1, count_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-bob"));
    stop_gateway(&F);
}

TEST(dangerous_commands_wait_for_yes_or_no)
{
    start_gateway(&F, true);
    scripts[nscripts++] = (script){
        .tool_calls = "[" TC("c1", "test_echo", "{\\\"command\\\":\\\"rm -rf /tmp/x\\\"}") "]"};
    scripts[nscripts++] = (script){.content = "deleted"};
    scripts[nscripts++] = (script){
        .tool_calls = "[" TC("c2", "test_echo", "{\\\"command\\\":\\\"rm -rf /tmp/y\\\"}") "]"};
    scripts[nscripts++] = (script){.content = "kept"};
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "clean up");
    int i =
        wait_out(GW_OUT_TEXT, GW_TEXT_ASK, "dm-alice", "Dangerous command requires approval", 0);
    ASSERT_STR_CONTAINS(out_text(i), "rm -rf /tmp/x");
    ASSERT_STR_CONTAINS(out_text(i), "Reason: recursive delete");
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "Yes");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Command approved", 0);
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", NULL, 0);
    ASSERT_STR_EQ("deleted", out_text(i));
    ASSERT_STR_CONTAINS(last_user, "\"answer\":1"); /* TOOL_ANSWER_ONCE reached the tool */

    msg_in(&F, "dm", "dm-alice", "alice", NULL, "and the other");
    wait_out(GW_OUT_TEXT, GW_TEXT_ASK, "dm-alice", "rm -rf /tmp/y", 0);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "n");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Command denied.", 0);
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", NULL, 1);
    ASSERT_STR_EQ("kept", out_text(i));
    /* with nothing pending, /approve says so and "yes" is an ordinary message */
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/approve");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "No pending command to approve.", 0);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "yes");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", NULL, 2);
    ASSERT_STR_EQ("echo: yes", out_text(i));
    stop_gateway(&F);
}

TEST(commands)
{
    start_gateway(&F, true);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "first");
    int i = wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    char first[96];
    snprintf(first, sizeof(first), "%s", outs[i].session);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/help");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Hermes Commands", 0);
    ASSERT_STR_CONTAINS(out_text(i), "`/new` -- Start a new session");
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/status");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Hermes Gateway Status", 0);
    ASSERT_STR_CONTAINS(out_text(i), first);
    ASSERT_STR_CONTAINS(out_text(i), "**Agent Running:** No");
    ASSERT_STR_CONTAINS(out_text(i), "**Connected Platforms:** test");
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/frobnicate now");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Unknown command `/frobnicate`", 0);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/etc/passwd is a file");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", NULL, 1);
    ASSERT_STR_EQ("echo: /etc/passwd is a file", out_text(i));
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/undo");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Undid 2 message(s)", 0);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/retry");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", NULL, 2);
    ASSERT_STR_EQ("echo: first", out_text(i));
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/model other-model");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Model switched to `other-model`", 0);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/new");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Session reset! Starting fresh.", 0);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "fresh start");
    i = wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 3);
    ASSERT_NE(0, strcmp(first, outs[i].session));
    ASSERT_STR_EQ("fresh start|", all_users);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/usage");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Session Token Usage", 0);
    ASSERT_STR_CONTAINS(out_text(i), "API calls: 1");
    stop_gateway(&F);
}

TEST(sethome_then_delivery)
{
    start_gateway(&F, true);
    /* a fresh session on a platform without a home channel gets the hint once */
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "hi");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "No home channel is set for Test", 0);
    wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    rt_ref me = F.adapter; /* the delivery result comes back to a collector */
    (void)me;
    msg_in(&F, "group", "ops-room", "alice", NULL, "/sethome");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "ops-room", "Home channel set to", 0);
    ASSERT_STR_CONTAINS(out_text(i), "(ID: ops-room)");
    rt_send(F.cx, F.gateway, gw_deliver_new("test", NULL, NULL, "cron says hi", 0, 0));
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "ops-room", "cron says hi", 0);
    ASSERT_GE(i, 0);
    stop_gateway(&F);
    char path[600];
    snprintf(path, sizeof(path), "%s/.env", F.home);
    char *text = NULL;
    size_t len = 0;
    ASSERT_OK(hm_read_file(path, 1 << 20, &text, &len));
    ASSERT_STR_CONTAINS(text, "TEST_HOME_CHANNEL=ops-room");
    rt_free(text);
}

TEST(a_message_left_unanswered_by_a_crash_is_answered_after_restart)
{
    start_gateway(&F, true);
    /* the model never answers the first run's message: a crash then */
    scripts[nscripts++] = (script){.content = "lost", .delay_ms = 60000};
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "are you there?");
    wait_requests(1);
    wait_index();          /* then "crash" */
    rt_runtime_free(F.rt); /* no drain, no clean shutdown */
    hm_config_unref(F.cfg);

    reset_records();
    start_gateway(&F, false);
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-bob", NULL, 0);
    ASSERT_STR_EQ("echo: are you there?", out_text(i));
    pthread_mutex_lock(&lock);
    ASSERT_EQ(1, nrequests);
    pthread_mutex_unlock(&lock);
    stop_gateway(&F);
}

TEST(shutdown_drains_and_marks_a_clean_stop)
{
    start_gateway(&F, true);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "quick");
    wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    rt_ref self = F.adapter; /* the adapter collects the done tick too */
    rt_send(F.cx, F.gateway, gw_shutdown_new(self, 77, 2000));
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    char path[600];
    snprintf(path, sizeof(path), "%s/.clean_shutdown", F.home);
    ASSERT_OK(access(path, F_OK));
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "late");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Gateway is shutting down", 0);
    stop_gateway(&F);
}

/* An API adapter: requests on one session wait for each other; a withdrawn one ends
 * cancelled whether it was waiting or running. */
TEST(api_requests_queue_and_cancel)
{
    start_gateway(&F, true);
    rt_ref api = rt_spawn(F.cx, &adapter_type, NULL, NULL);
    gw_caps caps = {.api = true, .streams = true, .progress = true};
    rt_send(F.cx, F.gateway, gw_adapter_up_new("api_server", api, &caps, NULL));
    scripts[nscripts++] = (script){.content = "slow one", .delay_ms = 5000};
    for (uint64_t req = 1; req <= 3; req++) {
        char text[16];
        snprintf(text, sizeof(text), "q%llu", (unsigned long long)req);
        gw_msg_event *e = gw_event_new("api_server", "dm", "sess-a", "api", text);
        e->session_id = rt_xstrdup("sess-a");
        e->internal = true;
        e->reply.request = req;
        e->adapter = api;
        rt_send(F.cx, F.gateway, &e->hdr);
        if (req == 1)
            wait_requests(1);
    }
    /* withdraw the waiting second one, then the running first one */
    gw_target t2 = {.chat_id = "sess-a", .request = 2};
    rt_send(F.cx, F.gateway, gw_cancel_new("api_server", &t2, "sess-a", api));
    int i = wait_out(GW_OUT_TURN_END, -1, "sess-a", NULL, 0);
    ASSERT_EQ(2, (int)outs[i].request);
    ASSERT_EQ(GW_OUTCOME_CANCELLED, outs[i].outcome);
    gw_target t1 = {.chat_id = "sess-a", .request = 1};
    rt_send(F.cx, F.gateway, gw_cancel_new("api_server", &t1, "sess-a", api));
    i = wait_out(GW_OUT_TURN_END, -1, "sess-a", NULL, 1);
    ASSERT_EQ(1, (int)outs[i].request);
    ASSERT_EQ(GW_OUTCOME_CANCELLED, outs[i].outcome);
    /* the third runs after them, alone, and is answered */
    i = wait_out(GW_OUT_TURN_END, -1, "sess-a", NULL, 2);
    ASSERT_EQ(3, (int)outs[i].request);
    ASSERT_EQ(GW_OUTCOME_SUCCESS, outs[i].outcome);
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "sess-a", NULL, 0);
    ASSERT_STR_EQ("echo: q3", out_text(i));
    ASSERT_EQ(1, count_out(GW_OUT_TEXT, GW_TEXT_REPLY, "sess-a"));
    /* a cancel for something unknown is ignored */
    gw_target t9 = {.chat_id = "sess-a", .request = 99};
    rt_send(F.cx, F.gateway, gw_cancel_new("api_server", &t9, "sess-a", api));
    stop_gateway(&F);
}

/* An event the platform names (message_id), as adapters send them. */
static void msg_in_id(fixture *f, const char *chat, const char *user, const char *id,
                      const char *text)
{
    gw_msg_event *e = gw_event_new("test", "dm", chat, user, text);
    e->message_id = rt_xstrdup(id);
    e->adapter = f->adapter;
    rt_send(f->cx, f->gateway, &e->hdr);
}

TEST(a_redelivered_update_is_answered_once_also_after_a_restart)
{
    start_gateway(&F, true);
    msg_in_id(&F, "dm-alice", "alice", "$ev1", "hi");
    wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    msg_in_id(&F, "dm-alice", "alice", "$ev1", "hi"); /* redelivered */
    msg_in_id(&F, "dm-alice", "alice", "$ev2", "second");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: second", 0);
    ASSERT_EQ(1, count_text("dm-alice", "echo: hi"));

    /* a turn the crash interrupts: its update comes again after the restart */
    scripts[nscripts++] = (script){.content = "lost", .delay_ms = 60000};
    msg_in_id(&F, "dm-alice", "alice", "$ev3", "are you there?");
    wait_requests(3);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000)); /* the store has what it was sent */
    wait_index();
    rt_runtime_free(F.rt); /* the crash: no drain */
    hm_config_unref(F.cfg);

    reset_records();
    start_gateway(&F, false);
    msg_in_id(&F, "dm-alice", "alice", "$ev1", "hi");             /* old news */
    msg_in_id(&F, "dm-alice", "alice", "$ev3", "are you there?"); /* answered by recovery */
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: are you there?", 0);
    (void)i;
    msg_in_id(&F, "dm-alice", "alice", "$ev4", "marker");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: marker", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(0, count_text("dm-alice", "echo: hi"));
    ASSERT_EQ(1, count_text("dm-alice", "echo: are you there?"));
    pthread_mutex_lock(&lock);
    ASSERT_EQ(2, nrequests); /* the recovered turn and the marker */
    pthread_mutex_unlock(&lock);
    stop_gateway(&F);
}

TEST(background_tasks_answer_beside_the_conversation)
{
    start_gateway(&F, true);
    scripts[nscripts++] = (script){.delay_ms = 400}; /* the background turn takes its time */
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/background summarize this");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Background task started", 0);
    ASSERT_STR_CONTAINS(out_text(i), "\"summarize this\"\nTask ID: bg_");
    wait_requests(1);
    /* the conversation goes on meanwhile */
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "hello");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: hello", 0);
    ASSERT_EQ(0, count_text("dm-alice", "Background task complete"));
    i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "Background task complete", 0);
    ASSERT_STR_CONTAINS(out_text(i), "Prompt: \"summarize this\"\n\necho: summarize this");
    /* its own session, not the conversation's */
    pthread_mutex_lock(&lock);
    ASSERT_TRUE(strstr(all_users, "summarize this") == NULL || strstr(all_users, "hello") == NULL);
    pthread_mutex_unlock(&lock);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "/bg");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Usage: /background <prompt>", 0);
    stop_gateway(&F);
}

TEST(compress_on_demand)
{
    start_gateway(&F, true);
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "m1");
    wait_out(GW_OUT_TURN_END, -1, "dm-bob", NULL, 0);
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "/compress");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-bob", "Not enough conversation to compress", 0);
    for (int i = 2; i <= 5; i++) {
        char m[8];
        snprintf(m, sizeof(m), "m%d", i);
        msg_in(&F, "dm", "dm-bob", "bob", NULL, m);
        wait_out(GW_OUT_TURN_END, -1, "dm-bob", NULL, i - 1);
    }
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "/compress");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-bob", "Compressed: 10 \xe2\x86\x92 ", 0);
    (void)i;
    /* the conversation goes on from the compressed history */
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "after");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-bob", "echo: after", 0);
    stop_gateway(&F);
}

/* The test adapter announces that it acknowledges sends (caps.acks). */
static void adapter_acks(fixture *f)
{
    gw_caps caps = {.max_message = 4000, .progress = true, .markdown = true, .acks = true};
    rt_send(f->cx, f->gateway, gw_adapter_up_new("test", f->adapter, &caps, NULL));
}

TEST(replies_are_retried_in_order_until_the_platform_takes_them)
{
    start_gateway(&F, true);
    adapter_acks(&F);
    pthread_mutex_lock(&lock);
    ack_failures = 2; /* the first answer fails twice */
    pthread_mutex_unlock(&lock);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "one");
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "other chat");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: one", 0); /* fails */
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "two");               /* its answer queues behind */
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: two", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(3, count_text("dm-alice", "echo: one"));
    ASSERT_EQ(1, count_text("dm-alice", "echo: two"));
    ASSERT_EQ(1, count_text("dm-bob", "echo: other chat"));
    /* order: no "two" before the last "one" */
    int last_one = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: one", 2);
    ASSERT_TRUE(last_one < i);
    stop_gateway(&F);
}

TEST(replies_wait_for_their_platform_also_across_a_restart)
{
    start_gateway(&F, true);
    adapter_acks(&F);
    scripts[nscripts++] = (script){.delay_ms = 200};
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "while you are away");
    wait_requests(1);
    rt_send(F.cx, F.gateway, gw_adapter_down_new("test", F.adapter)); /* the platform goes */
    wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);               /* the answer is in */
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(0, count_text("dm-alice", "echo: while you are away"));
    rt_runtime_free(F.rt); /* and the gateway crashes */
    hm_config_unref(F.cfg);

    reset_records();
    start_gateway(&F, false); /* the platform is back with the gateway */
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: while you are away", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(1, count_text("dm-alice", "echo: while you are away"));
    pthread_mutex_lock(&lock);
    ASSERT_EQ(0, nrequests); /* delivered from the outbox, not answered again */
    pthread_mutex_unlock(&lock);
    stop_gateway(&F);
}

static int outbox_rows(const char *state)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/state.db", F.home);
    sqlite3 *db = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL));
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_prepare_v2(db, "SELECT count(*) FROM hc_outbox WHERE state = ?",
                                            -1, &st, NULL));
    sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
    ASSERT_EQ(SQLITE_ROW, sqlite3_step(st));
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

TEST(a_reply_the_platform_never_takes_is_given_up_at_the_deadline)
{
    F_deadline_ms = 300;
    start_gateway(&F, true);
    F_deadline_ms = 0;
    adapter_acks(&F);
    pthread_mutex_lock(&lock);
    ack_failures = -1; /* always */
    pthread_mutex_unlock(&lock);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "doomed");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: doomed", 0);
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    while (outbox_rows("failed") == 0 && rt_now_ns(F.rt) < deadline)
        usleep(20000);
    ASSERT_EQ(1, outbox_rows("failed"));
    ASSERT_EQ(0, outbox_rows("pending"));
    /* later replies of the chat are not held up by it */
    pthread_mutex_lock(&lock);
    ack_failures = 0;
    pthread_mutex_unlock(&lock);
    msg_in(&F, "dm", "dm-alice", "alice", NULL, "fine");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "echo: fine", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(0, outbox_rows("pending"));
    stop_gateway(&F);
}
