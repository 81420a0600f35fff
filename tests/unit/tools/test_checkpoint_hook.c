/*
 * The session's checkpoint hook (actors/agent/ag_calls.c): a write_file in a turn with
 * checkpoints enabled leaves a checkpoint of the file's content from before the write (so the
 * snapshot finished before the tool ran); with checkpoints off nothing is made. A scripted
 * provider actor asks for the tool call; the real write_file tool and the real checkpoint
 * service (with git) do the rest.
 */
#include "ag_session.h"
#include "ckpt.h"
#include "llm_provider.h"
#include "rt_alloc.h"
#include "rt_proc.h"
#include "rt_reactor.h"
#include "rt_sched.h"
#include "test.h"
#include "tool.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 60000

static _Atomic int nrequests, ndone, nlist;
static char list_text[8192];

/* First request: write_file a.txt; then a plain answer. */
static void provider_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type != LLM_MSG_REQUEST)
        return;
    llm_msg_request *q = (llm_msg_request *)m;
    int n = atomic_fetch_add(&nrequests, 1);
    llm_msg_result *r = llm_result_msg_new(q->tag);
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "assistant");
    if (n == 0) {
        cJSON_AddStringToObject(msg, "content", "");
        cJSON_AddItemToObject(
            msg, "tool_calls",
            cJSON_Parse("[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":"
                        "\"write_file\",\"arguments\":\"{\\\"path\\\":\\\"a.txt\\\","
                        "\\\"content\\\":\\\"new\\\\n\\\"}\"}}]"));
    } else {
        cJSON_AddStringToObject(msg, "content", "done");
    }
    r->result.message = msg;
    r->result.finish_reason = rt_xstrdup(n == 0 ? "tool_calls" : "stop");
    r->result.usage.prompt_tokens = 100;
    r->result.usage.completion_tokens = 10;
    rt_send(cx, q->reply_to, &r->hdr);
}
static const rt_actor_type provider_type = {"fake_llm", provider_behave, NULL, 0};

static void sink_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type == AG_MSG_DONE) {
        atomic_fetch_add(&ndone, 1);
    } else if (m->type == CKPT_MSG_DONE) {
        ckpt_msg_done *d = (ckpt_msg_done *)m;
        snprintf(list_text, sizeof(list_text), "%s", d->text ? d->text : "");
        atomic_fetch_add(&nlist, 1); /* seq_cst: publishes list_text */
    }
}
static const rt_actor_type sink_type = {"sink", sink_behave, NULL, 0};

static struct {
    rt_runtime *rt;
    rt_reactor *re;
    rt_ctx *cx;
    char home[512], dir[512];
} h;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wait_for(_Atomic int *v, int n)
{
    int64_t t0 = now_ms();
    while (atomic_load(v) < n) {
        ASSERT_LT(now_ms() - t0, WAIT_MS);
        usleep(1000);
    }
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs(text, f);
    fclose(f);
}

/* A turn in which the model writes a.txt ("old" → "new"). */
static void run_turn(bool enabled)
{
    snprintf(h.home, sizeof(h.home), "%s/hermes", test_tmpdir());
    snprintf(h.dir, sizeof(h.dir), "%s/project", test_tmpdir());
    mkdir(h.home, 0700);
    mkdir(h.dir, 0700);
    char p[1200];
    snprintf(p, sizeof(p), "%s/userhome", test_tmpdir());
    mkdir(p, 0700);
    setenv("HOME", p, 1); /* before any thread */
    if (enabled) {
        snprintf(p, sizeof(p), "%s/config.yaml", h.home);
        write_text(p, "checkpoints:\n  enabled: true\n");
    }
    snprintf(p, sizeof(p), "%s/a.txt", h.dir);
    write_text(p, "old\n");

    h.rt = rt_runtime_new(NULL);
    h.re = rt_reactor_start(h.rt);
    ASSERT_OK(rt_proc_init(h.re));
    h.cx = rt_ctx_external(h.rt);
    tool_env *env = tool_env_new();
    env->hermes_home = rt_xstrdup(h.home);
    env->cwd = rt_xstrdup(h.dir);
    env->enabled_tools = rt_xcalloc(2, sizeof(char *));
    env->enabled_tools[0] = rt_xstrdup("write_file");
    static const char *tools[] = {"write_file", NULL};
    rt_ref provider = rt_spawn(h.cx, &provider_type, NULL, NULL);
    ag_session_opts o = {.provider = provider, .env = env, .tools = tools, .max_iterations = 4};
    rt_ref session = ag_session_spawn(h.cx, &o, NULL);
    rt_ref sink = rt_spawn(h.cx, &sink_type, NULL, NULL);
    rt_send(h.cx, session, ag_input_new("write it", sink, 1));
    wait_for(&ndone, 1);
    ASSERT_OK(rt_wait_quiescent(h.rt, WAIT_MS));
    ASSERT_EQ(2, atomic_load(&nrequests));
    char buf[32] = {0};
    FILE *f = fopen(p, "r");
    ASSERT_NOT_NULL(f);
    ASSERT_GT(fread(buf, 1, sizeof(buf) - 1, f), 0);
    fclose(f);
    ASSERT_STR_EQ("new\n", buf); /* the tool ran */

    /* what the checkpoints say (asked with checkpoints forced on, to see any that exist) */
    ckpt_msg_req *q = ckpt_req_new(CKPT_OP_LIST, h.home, h.dir);
    q->enabled = 1;
    q->reply_to = sink;
    ASSERT_TRUE(ckpt_request_send(h.cx, q));
    wait_for(&nlist, 1);
    tool_env_unref(env);
}

static void finish(void)
{
    rt_reactor_stop(h.re);
    rt_runtime_free(h.rt);
}

TEST(write_file_leaves_a_checkpoint_of_the_old_content)
{
    run_turn(true);
    ASSERT_STR_CONTAINS(list_text, "  1. ");
    ASSERT_STR_CONTAINS(list_text, "before write_file");
    ASSERT_NULL(strstr(list_text, "  2. ")); /* one snapshot in the turn */
    /* restoring it gives the content from before the write */
    atomic_store(&nlist, 0);
    ckpt_msg_req *q = ckpt_req_new(CKPT_OP_ROLLBACK, h.home, h.dir);
    q->enabled = 1;
    q->target = rt_xstrdup("1");
    rt_ref sink = rt_spawn(h.cx, &sink_type, NULL, NULL);
    q->reply_to = sink;
    ASSERT_TRUE(ckpt_request_send(h.cx, q));
    wait_for(&nlist, 1);
    ASSERT_STR_CONTAINS(list_text, "Restored to checkpoint");
    char p[1200], buf[32] = {0};
    snprintf(p, sizeof(p), "%s/a.txt", h.dir);
    FILE *f = fopen(p, "r");
    ASSERT_NOT_NULL(f);
    ASSERT_GT(fread(buf, 1, sizeof(buf) - 1, f), 0);
    fclose(f);
    ASSERT_STR_EQ("old\n", buf);
    finish();
}

TEST(disabled_leaves_no_checkpoint)
{
    run_turn(false);
    ASSERT_STR_CONTAINS(list_text, "No checkpoints found for ");
    char real[512], hx[CKPT_HASH_HEX + 1], p[1200];
    ASSERT_NOT_NULL(realpath(h.dir, real));
    ckpt_dir_hash(real, hx);
    snprintf(p, sizeof(p), "%s/checkpoints/%s", h.home, hx);
    ASSERT_NE(0, access(p, F_OK));
    finish();
}

TEST(without_git_the_tool_still_runs)
{
    setenv("PATH", "/nonexistent", 1); /* before any thread: git cannot be found */
    run_turn(true);                    /* asserts the write happened */
    ASSERT_STR_CONTAINS(list_text, "No checkpoints found for ");
    finish();
}
