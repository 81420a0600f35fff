/*
 * gw_fixture — the gateway end to end inside one process (see gw_fixture.h).
 */
#include "gw_fixture.h"

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

enum { T_REPLY = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1) };

pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
script scripts[16];
int nscripts, next_script, nrequests;
char last_user[4096];
char all_users[8192]; /* every user message of the last request, joined with | */

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

out outs[256];
int nouts;
/* Acknowledging adapter (caps.acks): the first ack_failures sends to chat dm-alice fail
 * (-1: all of them). */
int ack_failures;

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
const rt_actor_type adapter_type = {"test_adapter", adapter_behave, NULL, 0};

/* ------------------------------------------------------------- fixture */

fixture F;
int64_t F_deadline_ms;  /* the outbox's deadline for the next start; 0: default */
int64_t F_chat_idle_ms; /* chats end after this long idle; 0: the gateway's default */

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

void reset_records(void)
{
    pthread_mutex_lock(&lock);
    ack_failures = 0;
    nscripts = next_script = nrequests = 0;
    nouts = 0;
    pthread_mutex_unlock(&lock);
}

void start_gateway(fixture *f, bool fresh)
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
                  .delivery_deadline_ms = F_deadline_ms,
                  .chat_idle_ms = F_chat_idle_ms};
    ASSERT_OK(gw_start(f->cx, &go, &f->gateway, msg, sizeof(msg)));
    f->adapter = rt_spawn(f->cx, &adapter_type, NULL, NULL);
    gw_caps caps = {.max_message = 4000, .progress = true, .markdown = true};
    rt_send(f->cx, f->gateway, gw_adapter_up_new("test", f->adapter, &caps, NULL));
}

void stop_gateway(fixture *f)
{
    ASSERT_OK(rt_wait_quiescent(f->rt, 10000));
    rt_runtime_free(f->rt);
    hm_config_unref(f->cfg);
}

void msg_in(fixture *f, const char *type, const char *chat, const char *user, const char *thread,
            const char *text)
{
    rt_send(f->cx, f->gateway, &msg_new(f, type, chat, user, thread, text)->hdr);
}

gw_msg_event *msg_new(fixture *f, const char *type, const char *chat, const char *user,
                      const char *thread, const char *text)
{
    gw_msg_event *e = gw_event_new("test", type, chat, user, text);
    e->src.user_name = user ? rt_xasprintf("%s-name", user) : NULL;
    if (thread) {
        e->src.thread_id = rt_xstrdup(thread);
        e->reply.thread_id = rt_xstrdup(thread);
    }
    e->adapter = f->adapter;
    return e;
}

/* Wait for the n-th output (0-based count n+1) matching type/kind/chat; its index. */
int wait_out(uint32_t type, int kind, const char *chat, const char *needle, int nth)
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
