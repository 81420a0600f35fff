/*
 * The chat commands kept out of gw_chat.c (gw_cmd_*.c), end to end inside one process: the
 * test adapter, the real router and chat actors, agent sessions, state.db and a scripted LLM
 * (the fixture is test_router.c's). /title /resume /branch with their exact replies, their
 * effects in state.db and on what the model is sent next, bad input, a restart; /btw; the
 * info commands.
 */
#include "ag_session.h"
#include "gw.h"
#include "gw_int.h"
#include "gw_pairing.h"
#include "hm_config.h"
#include "hm_env.h"
#include "llm_provider.h"
#include "rt_alloc.h"
#include "rt_http.h"
#include "rt_httpd.h"
#include "rt_lws.h"
#include "rt_reactor.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "st_read.h"
#include "st_store.h"
#include "test.h"
#include "tool.h"

#include <sqlite3.h>
#include <stdatomic.h>

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

__attribute__((unused)) static int count_out(uint32_t type, int kind, const char *chat)
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
__attribute__((unused)) static void wait_requests(int n)
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

__attribute__((unused)) static int count_text(const char *chat, const char *needle)
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
__attribute__((unused)) static void wait_index(void)
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

/* The text of the n-th notice containing needle; the test fails if it is not exactly want. */
static void expect_notice(const char *needle, int nth, const char *want)
{
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", needle, nth);
    ASSERT_STR_EQ(want, out_text(i));
}

static void say_alice(const char *text)
{
    msg_in(&F, "dm", "dm-alice", "alice", NULL, text);
}

/* The session of the n-th finished turn in dm-alice. */
static void turn_session(int nth, char *sid, size_t len)
{
    int i = wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, nth);
    snprintf(sid, len, "%s", outs[i].session);
}

static int64_t db_int(const char *sql)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/state.db", F.home);
    sqlite3 *db = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL));
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_prepare_v2(db, sql, -1, &st, NULL));
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

TEST(title_resume_and_branch)
{
    char first[96], second[96], buf[1024];
    start_gateway(&F, true);
    say_alice("first");
    turn_session(0, first, sizeof(first));

    say_alice("/title");
    snprintf(buf, sizeof(buf),
             "\xf0\x9f\x93\x8c Session: `%s`\nNo title set. Usage: `/title My Session Name`",
             first);
    expect_notice("No title set", 0, buf);
    say_alice("/title   Project \t Alpha ");
    expect_notice("Session title set", 0,
                  "\xe2\x9c\x8f\xef\xb8\x8f Session title set: **Project Alpha**");
    say_alice("/title");
    snprintf(buf, sizeof(buf), "\xf0\x9f\x93\x8c Session: `%s`\nTitle: **Project Alpha**", first);
    expect_notice("Title: **", 0, buf);
    /* bad titles */
    char longt[128] = "/title ";
    memset(longt + 7, 'x', 101);
    longt[108] = '\0';
    say_alice(longt);
    expect_notice("Title too long", 0,
                  "\xe2\x9a\xa0\xef\xb8\x8f Title too long (101 chars, max 100)");
    say_alice("/title \xe2\x80\x8b");
    expect_notice("empty after cleanup", 0,
                  "\xe2\x9a\xa0\xef\xb8\x8f Title is empty after cleanup. Please use printable "
                  "characters.");

    /* a second session: the title is taken (any case); it gets its own */
    say_alice("/new");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Session reset!", 0);
    say_alice("second");
    turn_session(1, second, sizeof(second));
    ASSERT_NE(0, strcmp(first, second));
    say_alice("/title project ALPHA");
    snprintf(buf, sizeof(buf),
             "\xe2\x9a\xa0\xef\xb8\x8f Title 'project ALPHA' is already in use by session %s",
             first);
    expect_notice("already in use", 0, buf);
    say_alice("/title Side");
    expect_notice("Session title set", 1, "\xe2\x9c\x8f\xef\xb8\x8f Session title set: **Side**");

    /* /resume: the list, an unknown name, the current one, then back to the first */
    say_alice("/resume");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Named Sessions", 0);
    ASSERT_STR_EQ("\xf0\x9f\x93\x8b **Named Sessions**\n"
                  "\n\xe2\x80\xa2 **Side** (1 message) \xe2\x80\x94 _second_"
                  "\n\xe2\x80\xa2 **Project Alpha** (1 message) \xe2\x80\x94 _first_"
                  "\n\nUsage: `/resume <session name>`",
                  out_text(i));
    say_alice("/resume Nope");
    expect_notice("No session found", 0,
                  "No session found matching '**Nope**'.\nUse `/resume` with no arguments to see "
                  "available sessions.");
    say_alice("/resume Side");
    expect_notice("Already on session", 0, "\xf0\x9f\x93\x8c Already on session **Side**.");
    say_alice("/resume project alpha ");
    expect_notice("Resumed session", 0,
                  "\xe2\x86\xbb Resumed session **Project Alpha** (1 message). Conversation "
                  "restored.");
    say_alice("third");
    turn_session(2, buf, sizeof(buf));
    ASSERT_STR_EQ(first, buf);
    ASSERT_STR_EQ("first|third|", all_users); /* the old transcript was loaded */

    /* /branch copies the transcript (4 rows) and goes over to the copy */
    say_alice("/branch");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Branched to", 0);
    const char *bt = out_text(i);
    ASSERT_STR_CONTAINS(bt, "\xe2\x91\x82 Branched to **Project Alpha #2** (2 messages copied)\n"
                            "Original: `");
    ASSERT_STR_CONTAINS(bt, first);
    ASSERT_STR_CONTAINS(bt, "`\nUse `/resume` to switch back to the original.");
    char branch[96] = "";
    const char *b = strstr(bt, "Branch: `");
    ASSERT_NOT_NULL(b);
    snprintf(branch, sizeof(branch), "%.*s", (int)strcspn(b + 9, "`"), b + 9);
    snprintf(buf, sizeof(buf), "SELECT count(*) FROM messages WHERE session_id = '%s'", branch);
    ASSERT_EQ(4, db_int(buf));
    snprintf(buf, sizeof(buf),
             "SELECT count(*) FROM sessions WHERE id = '%s' AND "
             "parent_session_id = '%s'",
             branch, first);
    ASSERT_EQ(1, db_int(buf));
    say_alice("fourth");
    turn_session(3, buf, sizeof(buf));
    ASSERT_STR_EQ(branch, buf);
    ASSERT_STR_EQ("first|third|fourth|", all_users);
    snprintf(buf, sizeof(buf), "SELECT count(*) FROM messages WHERE session_id = '%s'", first);
    ASSERT_EQ(4, db_int(buf)); /* the original is untouched */
    say_alice("/fork Project Alpha");
    snprintf(buf, sizeof(buf),
             "\xe2\x9a\xa0\xef\xb8\x8f Title 'Project Alpha' is already in use by session %s",
             first);
    expect_notice("already in use", 1, buf);
    stop_gateway(&F);

    /* after a restart: the chat is still on the branch and its title is there */
    start_gateway(&F, false);
    reset_records();
    say_alice("/title");
    snprintf(buf, sizeof(buf), "\xf0\x9f\x93\x8c Session: `%s`\nTitle: **Project Alpha #2**",
             branch);
    expect_notice("Title: **", 0, buf);
    stop_gateway(&F);
}

TEST(branch_needs_a_conversation)
{
    start_gateway(&F, true);
    say_alice("/branch");
    expect_notice("No conversation", 0,
                  "No conversation to branch \xe2\x80\x94 send a message first.");
    say_alice("/resume");
    expect_notice("No named sessions", 0,
                  "No named sessions found.\nUse `/title My Session` to name your current "
                  "session, then `/resume My Session` to return to it later.");
    /* bob cannot resume alice's session by its title */
    say_alice("/title Mine");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Session title set", 0);
    say_alice("hello");
    wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "/resume Mine");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-bob", "No session found", 0);
    ASSERT_STR_CONTAINS(out_text(i), "'**Mine**'");
    stop_gateway(&F);
}

/* Wait until sql counts want rows (the store works behind the replies). */
static void wait_db(const char *sql, int64_t want)
{
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    int64_t v = db_int(sql);
    while (v != want && rt_now_ns(F.rt) < deadline) {
        usleep(10000);
        v = db_int(sql);
    }
    ASSERT_EQ(want, v);
}

TEST(btw_answers_beside_the_conversation_one_at_a_time)
{
    char first[96], buf[2048];
    start_gateway(&F, true);
    say_alice("/btw");
    expect_notice("Usage: /btw", 0,
                  "Usage: /btw <question>\nExample: /btw what module owns session title "
                  "sanitization?\n\nAnswers using session context. No tools, not persisted.");
    say_alice("first");
    turn_session(0, first, sizeof(first));
    pthread_mutex_lock(&lock);
    scripts[0] = (script){.delay_ms = 300}; /* the side question takes a while */
    nscripts = 1;
    pthread_mutex_unlock(&lock);
    say_alice("/btw what did I say?");
    expect_notice("/btw: \"what", 0,
                  "\xf0\x9f\x92\xac /btw: \"what did I say?\"\nReply will appear here shortly.");
    say_alice("/btw and again?");
    expect_notice("already running", 0,
                  "A /btw is already running for this chat. Wait for it to finish.");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "/btw: \"what did I say?\"\n\n", 0);
    snprintf(buf, sizeof(buf),
             "\xf0\x9f\x92\xac /btw: \"what did I say?\"\n\necho: [Ephemeral /btw side question. "
             "Answer using the conversation context. No tools available. Be direct and "
             "concise.]\n\nwhat did I say?");
    ASSERT_STR_EQ(buf, out_text(i));
    /* the model saw the conversation so far, then the side question */
    pthread_mutex_lock(&lock);
    ASSERT_STR_CONTAINS(all_users, "first|[Ephemeral /btw side question.");
    pthread_mutex_unlock(&lock);
    /* nothing of it is kept; the conversation goes on without it */
    wait_db("SELECT count(*) FROM sessions WHERE id LIKE 'btw_%'", 0);
    snprintf(buf, sizeof(buf), "SELECT count(*) FROM messages WHERE session_id = '%s'", first);
    ASSERT_EQ(2, db_int(buf));
    say_alice("second");
    turn_session(1, buf, sizeof(buf));
    ASSERT_STR_EQ(first, buf);
    ASSERT_STR_EQ("first|second|", all_users);
    /* the next /btw may run now */
    say_alice("/btw once more");
    expect_notice("/btw: \"once", 0,
                  "\xf0\x9f\x92\xac /btw: \"once more\"\nReply will appear here shortly.");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "/btw: \"once more\"\n\n", 0);
    wait_db("SELECT count(*) FROM sessions WHERE id LIKE 'btw_%'", 0);
    stop_gateway(&F);
}

static char *read_text_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = rt_xcalloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static char *config_text(void)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/config.yaml", F.home);
    char *t = read_text_file(path);
    return t ? t : rt_xstrdup("");
}

TEST(provider_reasoning_fast_update_insights_help)
{
    unsetenv("OPENROUTER_API_KEY");
    unsetenv("OPENAI_BASE_URL");
    unsetenv("OPENAI_API_KEY");
    setenv("ANTHROPIC_API_KEY", "sk-ant-secret-123456", 1);
    start_gateway(&F, true);
    say_alice("/provider");
    expect_notice("Current provider", 0,
                  "\xf0\x9f\x94\x8c **Current provider:** Custom endpoint (OpenAI-compatible) "
                  "(`custom`)\n\n**Available providers:**"
                  "\n\xe2\x9d\x8c `openrouter` \xe2\x80\x94 OpenRouter"
                  "\n\xe2\x9d\x8c `custom` \xe2\x80\x94 Custom endpoint (OpenAI-compatible) "
                  "\xe2\x86\x90 active"
                  "\n\xe2\x9c\x85 `anthropic` \xe2\x80\x94 Anthropic"
                  "\n\nSwitch: `hermes config set model.provider <name>`, then `/restart`"
                  "\nSetup: `hermes config set OPENROUTER_API_KEY ...` (or `OPENAI_BASE_URL`, "
                  "`ANTHROPIC_API_KEY`)");

    say_alice("/reasoning");
    expect_notice("Reasoning Settings", 0,
                  "\xf0\x9f\xa7\xa0 **Reasoning Settings**\n\n**Effort:** `xhigh`\n**Display:** "
                  "off\n\n_Usage:_ `/reasoning <none|minimal|low|medium|high|xhigh|show|hide>`");
    say_alice("/reasoning HIGH");
    expect_notice("Reasoning effort set", 0,
                  "\xf0\x9f\xa7\xa0 \xe2\x9c\x93 Reasoning effort set to `high` (saved to config)");
    char *cfg = config_text();
    ASSERT_STR_CONTAINS(cfg, "reasoning_effort: high");
    rt_free(cfg);
    say_alice("/reasoning show");
    expect_notice("Reasoning display", 0,
                  "\xf0\x9f\xa7\xa0 \xe2\x9c\x93 Reasoning display: **ON** for **test**");
    cfg = config_text();
    ASSERT_STR_CONTAINS(cfg, "show_reasoning: true");
    ASSERT_STR_CONTAINS(cfg, "reasoning_effort: high"); /* the earlier edit is kept */
    rt_free(cfg);
    say_alice("/reasoning loud");
    expect_notice("Unknown argument", 0,
                  "\xe2\x9a\xa0\xef\xb8\x8f Unknown argument: `loud`\n\n**Valid levels:** none, "
                  "minimal, low, medium, high, xhigh\n**Display:** show, hide");

    say_alice("/verbose");
    expect_notice("/verbose", 0,
                  "The `/verbose` command is not enabled for messaging platforms.\n\nEnable it "
                  "in `config.yaml`:\n```yaml\ndisplay:\n  tool_progress_command: true\n```");
    say_alice("/fast");
    expect_notice("Priority Processing", 0,
                  "\xe2\x9a\xa1 Priority Processing: **Normal**\n_This build's LLM client does not "
                  "request priority processing (OpenAI service tier / Anthropic fast mode) yet._");
    say_alice("/fast sideways");
    expect_notice("Usage: `/fast", 0, "Usage: `/fast [normal|fast|status]`");

    say_alice("/update");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Updating Hermes", 0);
    ASSERT_STR_CONTAINS(out_text(i), "\ngit pull\nscripts/install-deps.sh\ncmake --build build "
                                     "-j\"$(nproc)\"\nbuild/hermes gateway restart\n```");

    say_alice("hello");
    wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    say_alice("/insights");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Hermes Insights", 0);
    ASSERT_STR_CONTAINS(out_text(i), "\xf0\x9f\x93\x8a **Hermes Insights** \xe2\x80\x94 last 30 "
                                     "days\n\n**Sessions:** 1\n**Messages:** 2 (1 from users)\n"
                                     "**Tool calls:** 0\n**Tokens:** ");
    ASSERT_STR_CONTAINS(out_text(i), "**Platforms:** test (1)");
    say_alice("/insights 7 --source matrix");
    expect_notice("last 7 days", 0,
                  "\xf0\x9f\x93\x8a **Hermes Insights** \xe2\x80\x94 last 7 days on matrix\n\nNo "
                  "sessions in this period.");
    say_alice("/insights 0");
    expect_notice("Invalid --days", 0, "Invalid --days value: 0 (1 to 3650)");
    say_alice("/insights lots");
    expect_notice("Usage: `/insights", 0, "Usage: `/insights [days] [--source <platform>]`");

    say_alice("/debug");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Debug report written", 0);
    ASSERT_STR_CONTAINS(out_text(i), "(secrets redacted).\nThis build does not upload it anywhere "
                                     "unless `debug.paste_url` is set");
    const char *d = strstr(out_text(i), "`");
    ASSERT_NOT_NULL(d);
    char path[700];
    snprintf(path, sizeof(path), "%.*s", (int)strcspn(d + 1, "`"), d + 1);
    ASSERT_TRUE(strncmp(path, F.home, strlen(F.home)) == 0);
    char *report = read_text_file(path);
    ASSERT_NOT_NULL(report);
    ASSERT_STR_CONTAINS(report, "ANTHROPIC_API_KEY: set");
    ASSERT_TRUE(strstr(report, "sk-ant-secret") == NULL);
    rt_free(report);

    say_alice("/help");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Hermes Commands", 0);
    static const char *const listed[] = {"`/title [name]` -- ",
                                         "`/resume [name]` -- ",
                                         "(alias: `/fork`)",
                                         "`/btw <question>`",
                                         "`/provider` -- ",
                                         "`/reasoning [level|show|hide]`",
                                         "`/fast [normal|fast|status]`",
                                         "`/verbose` -- ",
                                         "`/insights [days]`",
                                         "`/restart` -- ",
                                         "`/debug` -- ",
                                         "`/update` -- ",
                                         "`/new` -- "};
    for (size_t k = 0; k < sizeof(listed) / sizeof(listed[0]); k++)
        ASSERT_STR_CONTAINS(out_text(i), listed[k]);
    say_alice("/rollback");
    expect_notice("not available", 0, "`/rollback` is not available in this gateway yet.");
    stop_gateway(&F);
    unsetenv("ANTHROPIC_API_KEY");
}

TEST(verbose_cycles_and_saves_per_platform)
{
    snprintf(F.home, sizeof(F.home), "%s/home", test_tmpdir());
    mkdir(F.home, 0700);
    char path[600];
    snprintf(path, sizeof(path), "%s/config.yaml", F.home);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs("# mine\ndisplay:\n  tool_progress_command: true\n", f);
    fclose(f);
    reset_records();
    start_gateway(&F, false);
    say_alice("/verbose"); /* "test" starts at all */
    expect_notice("Tool progress", 0,
                  "\xe2\x9a\x99\xef\xb8\x8f Tool progress: **VERBOSE** \xe2\x80\x94 full args and "
                  "results.\n_(saved for **test**: this chat now, the platform's other chats "
                  "after a restart)_");
    char *cfg = config_text();
    ASSERT_STR_CONTAINS(cfg, "# mine\n");
    ASSERT_STR_CONTAINS(cfg, "tool_progress: verbose");
    rt_free(cfg);
    say_alice("/verbose");
    expect_notice("Tool progress", 1,
                  "\xe2\x9a\x99\xef\xb8\x8f Tool progress: **OFF** \xe2\x80\x94 no tool activity "
                  "shown.\n_(saved for **test**: this chat now, the platform's other chats after "
                  "a restart)_");
    cfg = config_text();
    ASSERT_STR_CONTAINS(cfg, "tool_progress: \"off\""); /* a string, not YAML's false */
    rt_free(cfg);
    stop_gateway(&F);
}

static atomic_int restarted;
static void fake_restart(void)
{
    atomic_fetch_add(&restarted, 1);
}

static void idle_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)cx, (void)state, (void)m;
}
static const rt_actor_type idle_type = {"idle", idle_behave, NULL, 0};

TEST(restart_says_so_then_restarts_once)
{
    gw_restart_fn = fake_restart;
    start_gateway(&F, true);
    /* a restart already under way */
    rt_spawn_opts o = {.name = GW_RESTART_NAME};
    rt_ref other = rt_spawn(F.cx, &idle_type, NULL, &o);
    ASSERT_NE(0, other);
    say_alice("/restart");
    expect_notice("already in progress", 0, "\xe2\x8f\xb3 Gateway restart already in progress...");
    rt_stop(F.cx, other, RT_EXIT_NORMAL);
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    while (rt_whereis(F.cx, GW_RESTART_NAME) && rt_now_ns(F.rt) < deadline)
        usleep(1000);
    say_alice("/restart");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "Restarting gateway", 0);
    ASSERT_STR_EQ("\xe2\x99\xbb Restarting gateway. If you aren't notified within 60 seconds, "
                  "restart from the console with `hermes gateway restart`.",
                  out_text(i));
    deadline = rt_now_ns(F.rt) + WAIT_NS;
    while (atomic_load(&restarted) == 0 && rt_now_ns(F.rt) < deadline)
        usleep(1000);
    ASSERT_EQ(1, atomic_load(&restarted));
    /* while it runs, another /restart is refused */
    say_alice("/restart");
    expect_notice("already in progress", 1, "\xe2\x8f\xb3 Gateway restart already in progress...");
    ASSERT_EQ(1, atomic_load(&restarted));
    stop_gateway(&F);
}

/* ------------------------------------------------------ /debug with a paste service */

static char pasted[8192];

static void paste_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type != RT_HTTPD_MSG_REQUEST)
        return;
    rt_httpd_msg_request *q = (rt_httpd_msg_request *)m;
    pthread_mutex_lock(&lock);
    snprintf(pasted, sizeof(pasted), "%s %s\n%s", q->method, q->path, q->body);
    pthread_mutex_unlock(&lock);
    const char *const hdrs[] = {"Content-Type: text/plain", NULL};
    static const char link[] = "https://paste.example/abc\nexpires in 6 hours\n";
    rt_httpd_reply(cx, q->req, 200, hdrs, link, sizeof(link) - 1);
}
static const rt_actor_type paste_type = {"paste", paste_behave, NULL, 0};

/* Start the gateway with debug.paste_url = url and the HTTP client on its reactor. */
static rt_reactor *start_with_paste_url(const char *url)
{
    snprintf(F.home, sizeof(F.home), "%s/home", test_tmpdir());
    mkdir(F.home, 0700);
    char path[600];
    snprintf(path, sizeof(path), "%s/config.yaml", F.home);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fprintf(f, "debug:\n  paste_url: %s\n", url);
    fclose(f);
    reset_records();
    start_gateway(&F, false);
    rt_reactor *r = rt_reactor_start(F.rt);
    ASSERT_NOT_NULL(r);
    ASSERT_OK(rt_http_init(r));
    return r;
}

static void stop_with_reactor(rt_reactor *r)
{
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    rt_reactor_stop(r);
    rt_runtime_free(F.rt);
    hm_config_unref(F.cfg);
}

TEST(debug_posts_the_redacted_report_to_the_configured_url)
{
    setenv("ANTHROPIC_API_KEY", "sk-ant-secret-123456", 1);
    rt_options ro = {.workers = 1};
    rt_runtime *prt = rt_runtime_new(&ro);
    int err = 0;
    rt_lws *l = rt_lws_start(prt, &err);
    ASSERT_NOT_NULL(l);
    rt_httpd_route route = {"/", rt_spawn(rt_ctx_external(prt), &paste_type, NULL, NULL)};
    rt_httpd_opts ho = {.routes = &route, .nroutes = 1};
    rt_httpd *h = rt_httpd_start(prt, &ho, &err);
    ASSERT_NOT_NULL(h);
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/paste", rt_httpd_port(h));
    rt_reactor *r = start_with_paste_url(url);

    say_alice("/debug");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Debug report", 0);
    char want[800];
    snprintf(want, sizeof(want),
             "\xf0\x9f\x90\x9b Debug report uploaded: https://paste.example/abc\n(also written to "
             "`%s/logs/debug-",
             F.home);
    ASSERT_STR_CONTAINS(out_text(i), want);
    ASSERT_STR_CONTAINS(out_text(i), ".txt`, secrets redacted)");
    pthread_mutex_lock(&lock);
    ASSERT_STR_CONTAINS(pasted, "POST /paste\nHermes debug report (");
    ASSERT_STR_CONTAINS(pasted, "ANTHROPIC_API_KEY: set");
    ASSERT_TRUE(strstr(pasted, "sk-ant-secret") == NULL);
    pthread_mutex_unlock(&lock);
    stop_with_reactor(r);

    rt_httpd_stop(h, 1000);
    rt_lws_stop(l);
    ASSERT_OK(rt_wait_quiescent(prt, 10000));
    rt_runtime_free(prt);
    unsetenv("ANTHROPIC_API_KEY");
}

TEST(debug_says_where_the_report_is_when_the_upload_fails)
{
    rt_reactor *r = start_with_paste_url("http://127.0.0.1:1/paste"); /* nobody listens */
    say_alice("/debug");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "could not be uploaded", 0);
    ASSERT_STR_CONTAINS(out_text(i), "\xe2\x9a\xa0\xef\xb8\x8f The debug report could not be "
                                     "uploaded (");
    char want[700];
    snprintf(want, sizeof(want), "). It is written to `%s/logs/debug-", F.home);
    ASSERT_STR_CONTAINS(out_text(i), want);
    stop_with_reactor(r);
}

TEST(commands_pages_through_everything_help_lists)
{
    start_gateway(&F, true);
    say_alice("/help");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Hermes Commands", 0);
    int n = 0;
    for (const char *p = strstr(out_text(i), "\n`/"); p; p = strstr(p + 1, "\n`/"))
        n++;
    ASSERT_GT(n, 20);
    int pages = (n + 19) / 20;
    char want[256];
    say_alice("/commands");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "**Commands** (", 0);
    snprintf(want, sizeof(want),
             "\xf0\x9f\x93\x9a **Commands** (%d total, page 1/%d)\n\n`/new` -- ", n, pages);
    ASSERT_TRUE(strncmp(out_text(i), want, strlen(want)) == 0);
    snprintf(want, sizeof(want), "\n\nnext \xe2\x86\x92 `/commands 2`");
    ASSERT_STR_CONTAINS(out_text(i), want);
    int lines = 0;
    for (const char *p = strstr(out_text(i), "\n`/"); p; p = strstr(p + 1, "\n`/"))
        lines++;
    ASSERT_EQ(20, lines);
    say_alice("/commands 99");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "**Commands** (", 1);
    snprintf(want, sizeof(want), "(%d total, page %d/%d)", n, pages, pages);
    ASSERT_STR_CONTAINS(out_text(i), want);
    snprintf(want, sizeof(want), "`/commands %d` \xe2\x86\x90 prev", pages - 1);
    ASSERT_STR_CONTAINS(out_text(i), want);
    snprintf(want, sizeof(want), "\n_(Requested page 99 was out of range, showing page %d.)_",
             pages);
    ASSERT_STR_CONTAINS(out_text(i), want);
    ASSERT_STR_CONTAINS(out_text(i), "`/update` -- "); /* the last one */
    say_alice("/commands two");
    expect_notice("Usage: `/commands", 0, "Usage: `/commands [page]`");
    stop_gateway(&F);
}
