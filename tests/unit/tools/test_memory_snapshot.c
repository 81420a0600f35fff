/*
 * The frozen memory snapshot (agent-core §7): a session's system prompt shows MEMORY.md as it
 * was when the session built its prompt; the memory tool changes the file at once (the tool
 * result shows the live list), and only the next session's prompt shows the change.
 *
 * Where the snapshot lives: the session asks the prompt service (ag_prompt_svc.c) for its
 * system prompt once, before its first model call, and keeps the text (ag_session.c,
 * s->system_prompt) until a compression rebuilds it. The memory tool keeps no copy at all.
 * Driven here through a real session, prompt service and memory tool with a scripted model.
 */
#include "ag_int.h"
#include "ag_session.h"
#include "llm_provider.h"
#include "mem_file.h"
#include "rt_alloc.h"
#include "rt_sched.h"
#include "test.h"
#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#define SECT "\xc2\xa7"

/* ------------------------------------------------- the scripted provider */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *scripts[8][2]; /* content, tool_calls (JSON) */
static int nscripts, next_script;
static char systems[8][8192]; /* the system message of each request */
static char lasts[8][8192];   /* the last message of each request */
static int nrequests, ndone;

static void provider_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type != LLM_MSG_REQUEST)
        return;
    llm_msg_request *q = (llm_msg_request *)m;
    pthread_mutex_lock(&lock);
    int i = nrequests++;
    const cJSON *first = cJSON_GetArrayItem(q->messages, 0);
    const cJSON *last = cJSON_GetArrayItem(q->messages, cJSON_GetArraySize(q->messages) - 1);
    const cJSON *role = cJSON_GetObjectItem(first, "role");
    const cJSON *sc = cJSON_GetObjectItem(first, "content");
    const cJSON *lc = cJSON_GetObjectItem(last, "content");
    if (i < 8) {
        snprintf(systems[i], sizeof(systems[i]), "%s",
                 cJSON_IsString(role) && strcmp(role->valuestring, "system") == 0 &&
                         cJSON_IsString(sc)
                     ? sc->valuestring
                     : "");
        snprintf(lasts[i], sizeof(lasts[i]), "%s", cJSON_IsString(lc) ? lc->valuestring : "");
    }
    int idx = next_script < nscripts ? next_script++ : -1;
    pthread_mutex_unlock(&lock);
    llm_msg_result *r = llm_result_msg_new(q->tag);
    if (idx < 0) {
        r->err = -EIO;
        r->errmsg = rt_xstrdup("no script");
        r->kind = LLM_ERR_SERVER;
        rt_send(cx, q->reply_to, &r->hdr);
        return;
    }
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", scripts[idx][0] ? scripts[idx][0] : "");
    if (scripts[idx][1])
        cJSON_AddItemToObject(msg, "tool_calls", cJSON_Parse(scripts[idx][1]));
    r->result.message = msg;
    r->result.finish_reason = rt_xstrdup(scripts[idx][1] ? "tool_calls" : "stop");
    r->result.usage.prompt_tokens = 100;
    r->result.usage.completion_tokens = 10;
    rt_send(cx, q->reply_to, &r->hdr);
}
static const rt_actor_type provider_type = {"fake_llm", provider_behave, NULL, 0};

static void sink_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type != AG_MSG_DONE)
        return;
    pthread_mutex_lock(&lock);
    ndone++;
    pthread_mutex_unlock(&lock);
}
static const rt_actor_type sink_type = {"sink", sink_behave, NULL, 0};

static void wait_done(rt_runtime *rt, int n)
{
    int64_t t0 = rt_now_ns(rt);
    for (;;) {
        pthread_mutex_lock(&lock);
        int d = ndone;
        pthread_mutex_unlock(&lock);
        if (d >= n)
            break;
        ASSERT_LT(rt_now_ns(rt) - t0, 20000000000LL);
        usleep(1000);
    }
    ASSERT_OK(rt_wait_quiescent(rt, 10000));
}

static const char *slurp(const char *path)
{
    static char buf[8192];
    int fd = open(path, O_RDONLY);
    ASSERT(fd >= 0);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    ASSERT(n >= 0);
    buf[n] = '\0';
    return buf;
}

static rt_ref new_session(rt_ctx *cx, rt_ref provider, rt_ref prompts, tool_env *env)
{
    static const char *const tools[] = {"memory", NULL};
    ag_session_opts o = {.provider = provider,
                         .prompt_service = prompts,
                         .env = env,
                         .tools = tools,
                         .max_iterations = 4};
    return ag_session_spawn(cx, &o, NULL);
}

TEST(the_prompt_keeps_the_snapshot_while_the_file_changes)
{
    char home[512], dir[600], path[700];
    snprintf(home, sizeof(home), "%s/home", test_tmpdir());
    snprintf(dir, sizeof(dir), "%s/memories", home);
    snprintf(path, sizeof(path), "%s/MEMORY.md", dir);
    ASSERT_OK(mem_dir_ensure(dir));
    mem_entries e = {0};
    mem_entries_push(&e, "likes tea");
    ASSERT_OK(mem_file_save(path, &e));
    mem_entries_fini(&e);

    scripts[nscripts][0] = NULL;
    scripts[nscripts++][1] = "[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":"
                             "\"memory\",\"arguments\":\"{\\\"action\\\":\\\"add\\\","
                             "\\\"target\\\":\\\"memory\\\",\\\"content\\\":\\\"uses vim\\\"}\"}}]";
    scripts[nscripts++][0] = "saved";
    scripts[nscripts++][0] = "still here";
    scripts[nscripts++][0] = "fresh session";

    rt_runtime *rt = rt_runtime_new(NULL);
    rt_ctx *cx = rt_ctx_external(rt);
    rt_ref provider = rt_spawn(cx, &provider_type, NULL, NULL);
    rt_ref prompts = ag_prompt_service_start(cx);
    rt_ref sink = rt_spawn(cx, &sink_type, NULL, NULL);
    tool_env *env = tool_env_new();
    env->hermes_home = rt_xstrdup(home);
    env->enabled_tools = rt_xcalloc(2, sizeof(char *));
    env->enabled_tools[0] = rt_xstrdup("memory");

    rt_ref s1 = new_session(cx, provider, prompts, env);
    rt_send(cx, s1, ag_input_new("remember that I use vim", sink, 1));
    wait_done(rt, 1);
    rt_send(cx, s1, ag_input_new("and now?", sink, 2));
    wait_done(rt, 2);
    ASSERT_EQ(3, nrequests);

    /* The tool wrote the file at once and answered with the live list. */
    ASSERT_STR_EQ("likes tea\n" SECT "\nuses vim", slurp(path));
    ASSERT_STR_CONTAINS(lasts[1], "\"message\":\"Entry added.\"");
    ASSERT_STR_CONTAINS(lasts[1], "\"entries\":[\"likes tea\",\"uses vim\"]");
    /* Every request of the session carries the snapshot taken before the change. */
    for (int i = 0; i < 3; i++) {
        ASSERT_STR_CONTAINS(systems[i], "MEMORY (your personal notes) [0% \xe2\x80\x94 9/2,200 "
                                        "chars]");
        ASSERT_STR_CONTAINS(systems[i], "likes tea");
        ASSERT_NULL(strstr(systems[i], "uses vim"));
        ASSERT_STR_EQ(systems[0], systems[i]);
    }
    /* The next session starts from the file as it is now. */
    rt_ref s2 = new_session(cx, provider, prompts, env);
    rt_send(cx, s2, ag_input_new("hello again", sink, 3));
    wait_done(rt, 3);
    ASSERT_EQ(4, nrequests);
    ASSERT_STR_CONTAINS(systems[3], "MEMORY (your personal notes) [0% \xe2\x80\x94 20/2,200 "
                                    "chars]");
    ASSERT_STR_CONTAINS(systems[3], "likes tea\n" SECT "\nuses vim");

    tool_env_unref(env);
    rt_runtime_free(rt);
}
