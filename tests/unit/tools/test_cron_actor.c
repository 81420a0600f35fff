/*
 * The cron actor against a scripted model and a gateway double: a due job runs in a fresh
 * session of its own with the job's prompt, its answer is saved as a run report, delivered
 * (wrapped) to the platform's home channel or a named chat with GW_MSG_DELIVER, and recorded
 * in jobs.json; a late job catches up once; [SILENT] answers and failed deliveries; the tick
 * lock — held by another process the tick is skipped, and two processes ticking the same
 * home at once run a due job exactly once.
 */
#include "ag_session.h"
#include "cron.h"
#include "cron_jobs.h"
#include "cron_sched.h"
#include "llm_provider.h"
#include "rt_alloc.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "test.h"
#include "tool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define US      1000000LL
#define WAIT_NS 20000000000LL

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

/* ------------------------------------------------------------ the model */

static const char *answer = "Disk usage is fine.";
static int64_t answer_delay_ms; /* hold each answer this long (the two-process race) */
static int nrequests, nsessions;
static char last_prompt[8192], last_platform[32];

static void reply(rt_ctx *cx, rt_ref to, uint64_t tag)
{
    llm_msg_result *r = llm_result_msg_new(tag);
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", answer);
    r->result.message = msg;
    r->result.finish_reason = rt_xstrdup("stop");
    r->result.usage.prompt_tokens = 10;
    r->result.usage.completion_tokens = 2;
    if (answer_delay_ms)
        rt_send_after(cx, to, &r->hdr, answer_delay_ms);
    else
        rt_send(cx, to, &r->hdr);
}

static void model_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type != LLM_MSG_REQUEST)
        return;
    llm_msg_request *q = (llm_msg_request *)m;
    const cJSON *last = cJSON_GetArrayItem(q->messages, cJSON_GetArraySize(q->messages) - 1);
    const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(last, "content"));
    pthread_mutex_lock(&lock);
    nrequests++;
    snprintf(last_prompt, sizeof(last_prompt), "%s", c ? c : "");
    pthread_mutex_unlock(&lock);
    reply(cx, q->reply_to, q->tag);
}
static const rt_actor_type model_type = {"model", model_behave, NULL, 0};

/* --------------------------------------------------- the gateway double */

static int ndelivered;
static char delivered_text[8192], delivered_platform[32], delivered_chat[128];
static bool delivered_home;

static void gw_drop_delivered(rt_msg *m)
{
    rt_free(((gw_msg_delivered *)m)->chat_id);
}

static void gw_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type != GW_MSG_DELIVER)
        return;
    gw_msg_deliver *d = (gw_msg_deliver *)m;
    gw_msg_delivered *r = RT_MSG_NEW(gw_msg_delivered, GW_MSG_DELIVERED);
    r->tag = d->tag;
    r->hdr.drop = gw_drop_delivered;
    if (strcmp(d->platform, "matrix") != 0) {
        r->err = -ENOENT;
        snprintf(r->errmsg, sizeof(r->errmsg), "%s is not connected", d->platform);
    } else {
        r->chat_id = rt_xstrdup(d->chat_id ? d->chat_id : "!home:example.org");
        pthread_mutex_lock(&lock);
        ndelivered++;
        snprintf(delivered_text, sizeof(delivered_text), "%s", d->text);
        snprintf(delivered_platform, sizeof(delivered_platform), "%s", d->platform);
        snprintf(delivered_chat, sizeof(delivered_chat), "%s", d->chat_id ? d->chat_id : "");
        delivered_home = !d->chat_id;
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
    }
    rt_send(cx, d->reply_to, &r->hdr);
}
static const rt_actor_type gw_type = {"gw-double", gw_behave, NULL, 0};

/* -------------------------------------------------------- tick replies */

static int nticked, last_ran, last_err;

static void sink_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)cx, (void)state;
    if (m->type != CRON_MSG_TICKED)
        return;
    cron_msg_ticked *t = (cron_msg_ticked *)m;
    pthread_mutex_lock(&lock);
    nticked++;
    last_ran = t->ran;
    last_err = t->err;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}
static const rt_actor_type sink_type = {"sink", sink_behave, NULL, 0};

/* -------------------------------------------------------------- fixture */

static rt_runtime *rt;
static rt_ctx *ext;
static rt_ref model, gw, sink, cron;
static char *home;

static rt_ref spawn_session(rt_ctx *cx, const gw_session_req *req, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    nsessions++;
    snprintf(last_platform, sizeof(last_platform), "%s", req->platform);
    pthread_mutex_unlock(&lock);
    tool_env *env = tool_env_new();
    env->platform = rt_xstrdup(req->platform);
    env->session_id = rt_xstrdup(req->session_id);
    ag_session_opts o = {.provider = model,
                         .env = env,
                         .session_id = req->session_id,
                         .source = req->platform,
                         .max_iterations = 3,
                         .skip_memory = true,
                         .skip_context_files = true};
    rt_ref r = ag_session_spawn(cx, &o, NULL);
    tool_env_unref(env);
    return r;
}

static void start(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    nrequests = nsessions = ndelivered = nticked = 0;
    last_ran = last_err = 0;
    delivered_text[0] = '\0';
    home = rt_xasprintf("%s/hermes", test_tmpdir());
    rt_options ro = {0};
    rt = rt_runtime_new(&ro);
    ext = rt_ctx_external(rt);
    model = rt_spawn(ext, &model_type, NULL, NULL);
    gw = rt_spawn(ext, &gw_type, NULL, NULL);
    sink = rt_spawn(ext, &sink_type, NULL, NULL);
    cron_opts o = {.home = home,
                   .spawn = spawn_session,
                   .tick_ms = 3600000, /* only the test's ticks */
                   .gateway = gw,
                   .deliver_timeout_ms = 10000};
    char err[256];
    ASSERT_OK(cron_start(ext, &o, &cron, err, sizeof(err)));
    ASSERT_NE(0, cron);
}

static void stop(void)
{
    rt_stop(ext, cron, RT_EXIT_NORMAL);
    ASSERT_OK(rt_wait_quiescent(rt, 10000));
    rt_runtime_free(rt);
    rt_free(home);
}

static void wait_until(const int *counter, int n)
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

/* Tick and wait for its result; returns the jobs it ran (-1: skipped). */
static int tick(void)
{
    pthread_mutex_lock(&lock);
    int n = nticked;
    pthread_mutex_unlock(&lock);
    rt_send(ext, cron, cron_tick_new(sink, 7));
    wait_until(&nticked, n + 1);
    pthread_mutex_lock(&lock);
    int ran = last_ran;
    pthread_mutex_unlock(&lock);
    return ran;
}

/* A job that fell due a minute ago. */
static char *due_job(const char *schedule_minutes, const char *deliver, const cJSON *origin)
{
    char err[512], sched[32];
    snprintf(sched, sizeof(sched), "every %sm", schedule_minutes);
    int64_t m = strtoll(schedule_minutes, NULL, 10);
    cron_new_job nj = {.prompt = "Check the disk usage of /srv",
                       .schedule = sched,
                       .name = "disk check",
                       .deliver = deliver,
                       .origin = origin};
    cJSON *job = NULL;
    ASSERT_OK(
        cron_job_create(home, &nj, cron_now_us() - (m + 1) * 60 * US, &job, err, sizeof(err)));
    char *id = rt_xstrdup(cJSON_GetStringValue(cJSON_GetObjectItem(job, "id")));
    cJSON_Delete(job);
    return id;
}

static cJSON *get_job(const char *id)
{
    char err[512];
    cJSON *job = NULL;
    ASSERT_OK(cron_job_get(home, id, &job, err, sizeof(err)));
    return job;
}

static int count_reports(const char *id)
{
    char *dir = rt_xasprintf("%s/cron/output/%s", home, id);
    DIR *d = opendir(dir);
    rt_free(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".md") != NULL;
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------- tests */

TEST(a_due_job_runs_in_its_own_session_and_reaches_the_home_channel)
{
    start();
    char *id = due_job("60", "matrix", NULL);
    ASSERT_EQ(1, tick());
    ASSERT_EQ(1, nsessions);
    ASSERT_STR_EQ("cron", last_platform);
    ASSERT_STR_CONTAINS(last_prompt, "[SYSTEM: You are running as a scheduled cron job.");
    ASSERT_STR_CONTAINS(last_prompt, "Check the disk usage of /srv");
    ASSERT_EQ(1, ndelivered);
    ASSERT_STR_EQ("matrix", delivered_platform);
    ASSERT_TRUE(delivered_home);
    char want[256];
    snprintf(want, sizeof(want),
             "Cronjob Response: disk check\n(job_id: %s)\n-------------\n\n"
             "Disk usage is fine.\n\nTo stop or manage this job, send me a "
             "new message (e.g. \"stop reminder disk check\").",
             id);
    ASSERT_STR_EQ(want, delivered_text);
    ASSERT_EQ(1, count_reports(id));
    cJSON *job = get_job(id);
    ASSERT_STR_EQ("ok", cJSON_GetStringValue(cJSON_GetObjectItem(job, "last_status")));
    ASSERT_EQ(
        1, (int)cJSON_GetObjectItem(cJSON_GetObjectItem(job, "repeat"), "completed")->valuedouble);
    ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(job, "last_delivery_error")));
    int64_t next, now = cron_now_us();
    int32_t off;
    ASSERT_OK(cron_iso_parse(cJSON_GetStringValue(cJSON_GetObjectItem(job, "next_run_at")), &next,
                             &off, NULL));
    ASSERT_GT(next, now + 50 * 60 * US); /* about an hour from now */
    cJSON_Delete(job);
    /* caught up once: the next tick has nothing to do */
    ASSERT_EQ(0, tick());
    ASSERT_EQ(1, nsessions);
    ASSERT_EQ(1, ndelivered);
    rt_free(id);
    stop();
}

TEST(a_named_chat_a_silent_answer_and_a_failed_delivery)
{
    start();
    cJSON *origin = cJSON_Parse("{\"platform\":\"matrix\",\"chat_id\":\"!ops:example.org\","
                                "\"chat_name\":\"Ops\",\"thread_id\":null}");
    char *to_origin = due_job("30", NULL, origin); /* deliver defaults to origin */
    cJSON_Delete(origin);
    ASSERT_EQ(1, tick());
    ASSERT_EQ(1, ndelivered);
    ASSERT_FALSE(delivered_home);
    ASSERT_STR_EQ("!ops:example.org", delivered_chat);

    char *unplugged = due_job("30", "mattermost", NULL);
    ASSERT_EQ(1, tick());
    ASSERT_EQ(1, ndelivered);
    cJSON *job = get_job(unplugged);
    ASSERT_STR_EQ("ok", cJSON_GetStringValue(cJSON_GetObjectItem(job, "last_status")));
    ASSERT_STR_EQ("platform 'mattermost' not configured/enabled",
                  cJSON_GetStringValue(cJSON_GetObjectItem(job, "last_delivery_error")));
    cJSON_Delete(job);

    answer = "[SILENT]";
    char *quiet = due_job("30", "matrix", NULL);
    ASSERT_EQ(1, tick());
    answer = "Disk usage is fine.";
    ASSERT_EQ(1, ndelivered); /* not delivered, but saved */
    ASSERT_EQ(1, count_reports(quiet));
    job = get_job(quiet);
    ASSERT_STR_EQ("ok", cJSON_GetStringValue(cJSON_GetObjectItem(job, "last_status")));
    cJSON_Delete(job);
    rt_free(to_origin);
    rt_free(unplugged);
    rt_free(quiet);
    stop();
}

/* Hold .tick.lock from another process until told to let go. */
static pid_t lock_holder(const char *path, int *release_fd)
{
    int up[2], down[2];
    ASSERT_OK(pipe(up));
    ASSERT_OK(pipe(down));
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int fd = open(path, O_RDWR | O_CREAT, 0600);
        if (fd < 0 || flock(fd, LOCK_EX) != 0)
            _exit(2);
        char c = 'x';
        if (write(up[1], &c, 1) != 1)
            _exit(3);
        (void)!read(down[0], &c, 1); /* until the parent writes or dies */
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    char c;
    ASSERT_EQ(1, read(up[0], &c, 1));
    close(up[0]);
    *release_fd = down[1];
    return pid;
}

TEST(a_tick_is_skipped_while_another_process_holds_the_lock)
{
    start();
    char *id = due_job("60", "matrix", NULL);
    char *path = cron_path(home, ".tick.lock");
    int release;
    pid_t pid = lock_holder(path, &release);
    ASSERT_EQ(-1, tick());
    ASSERT_EQ(-EWOULDBLOCK, last_err);
    ASSERT_EQ(0, nsessions);
    ASSERT_EQ(0, ndelivered);
    char c = 'x';
    ASSERT_EQ(1, write(release, &c, 1));
    close(release);
    int st;
    ASSERT_EQ(pid, waitpid(pid, &st, 0));
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_EQ(1, tick());
    ASSERT_EQ(1, ndelivered);
    rt_free(path);
    rt_free(id);
    stop();
}

/* One process of the race: its own runtime and cron actor on the shared home; exits with
 * the number of jobs its tick ran (0 when skipped). */
static void racer(const char *shared_home, int go_fd)
{
    char c;
    if (read(go_fd, &c, 1) != 1)
        _exit(90);
    answer_delay_ms = 300; /* the run stays in flight while the other process ticks */
    nrequests = nsessions = ndelivered = nticked = 0;
    rt_options ro = {0};
    rt = rt_runtime_new(&ro);
    ext = rt_ctx_external(rt);
    model = rt_spawn(ext, &model_type, NULL, NULL);
    gw = rt_spawn(ext, &gw_type, NULL, NULL);
    sink = rt_spawn(ext, &sink_type, NULL, NULL);
    home = rt_xstrdup(shared_home);
    cron_opts o = {.home = home, .spawn = spawn_session, .tick_ms = 3600000, .gateway = gw};
    char err[256];
    if (cron_start(ext, &o, &cron, err, sizeof(err)))
        _exit(91);
    int ran = tick();
    stop();
    _exit(ran < 0 ? 0 : ran);
}

TEST(two_processes_ticking_at_once_run_a_due_job_once)
{
    setenv("TZ", "UTC", 1);
    tzset();
    home = rt_xasprintf("%s/hermes", test_tmpdir());
    char *id = due_job("60", "matrix", NULL);
    int go[2];
    ASSERT_OK(pipe(go));
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        ASSERT_GE(pids[i], 0);
        if (pids[i] == 0) {
            close(go[1]);
            racer(home, go[0]);
        }
    }
    close(go[0]);
    ASSERT_EQ(2, write(go[1], "gg", 2));
    close(go[1]);
    int total = 0;
    for (int i = 0; i < 2; i++) {
        int st;
        ASSERT_EQ(pids[i], waitpid(pids[i], &st, 0));
        ASSERT_TRUE(WIFEXITED(st));
        ASSERT_LE(WEXITSTATUS(st), 1);
        total += WEXITSTATUS(st);
    }
    ASSERT_EQ(1, total);
    ASSERT_EQ(1, count_reports(id));
    char err[512];
    cJSON *job = NULL;
    ASSERT_OK(cron_job_get(home, id, &job, err, sizeof(err)));
    ASSERT_EQ(
        1, (int)cJSON_GetObjectItem(cJSON_GetObjectItem(job, "repeat"), "completed")->valuedouble);
    cJSON_Delete(job);
    rt_free(id);
    rt_free(home);
}

TEST(bad_options_are_refused)
{
    rt_runtime *r = rt_runtime_new(NULL);
    char err[256] = "";
    rt_ref ref = 0;
    cron_opts o = {.home = NULL, .spawn = spawn_session};
    ASSERT_EQ(-EINVAL, cron_start(rt_ctx_external(r), &o, &ref, err, sizeof(err)));
    ASSERT_STR_CONTAINS(err, "required");
    o.home = test_tmpdir();
    o.spawn = NULL;
    ASSERT_EQ(-EINVAL, cron_start(rt_ctx_external(r), &o, &ref, err, sizeof(err)));
    o.spawn = spawn_session;
    o.tick_ms = 3600000;
    ASSERT_OK(cron_start(rt_ctx_external(r), &o, &ref, err, sizeof(err)));
    rt_ref second = 0;
    ASSERT_EQ(-EEXIST, cron_start(rt_ctx_external(r), &o, &second, err, sizeof(err)));
    rt_stop(rt_ctx_external(r), ref, RT_EXIT_NORMAL);
    ASSERT_OK(rt_wait_quiescent(r, 10000));
    rt_runtime_free(r);
}

/* ------------------------------------------------- the tools, as the agent calls them */

enum { T_GO = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1) };

static tool_env *tenv;
static const char *tcalls[4][2]; /* tool name, arguments */
static int ntcalls, ntresults;
static char tresults[4][4096];

static void caller_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type == T_GO) {
        /* one at a time: each call starts when the previous one answered */
        ASSERT_NE(0, tool_start_call(cx, tool_find(tcalls[0][0]), tenv, 0, "c", tcalls[0][1]));
    } else if (m->type == TOOL_MSG_RESULT) {
        tool_msg_result *r = (tool_msg_result *)m;
        pthread_mutex_lock(&lock);
        snprintf(tresults[r->seq], sizeof(tresults[0]), "%s", r->result);
        int next = ++ntresults;
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
        if (next < ntcalls)
            ASSERT_NE(0, tool_start_call(cx, tool_find(tcalls[next][0]), tenv, (uint64_t)next, "c",
                                         tcalls[next][1]));
    }
}
static const rt_actor_type caller_type = {"caller", caller_behave, NULL, 0};

TEST(the_cron_tools_take_the_chats_origin)
{
    setenv("TZ", "UTC", 1);
    tzset();
    home = rt_xasprintf("%s/hermes", test_tmpdir());
    char *dir = rt_xasprintf("%s/sessions", home);
    ASSERT_OK(mkdir(home, 0700));
    ASSERT_OK(mkdir(dir, 0700));
    char *path = rt_xasprintf("%s/sessions.json", dir);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs("{\"agent:main:matrix:group:!ops:example.org\": {\"session_id\": \"s1\", \"origin\": "
          "{\"platform\": \"matrix\", \"chat_id\": \"!ops:example.org\", \"chat_name\": "
          "\"Ops\", \"thread_id\": \"$t1\"}}}",
          f);
    fclose(f);
    tenv = tool_env_new();
    tenv->hermes_home = rt_xstrdup(home);
    tenv->platform = rt_xstrdup("matrix");
    tenv->session_key = rt_xstrdup("agent:main:matrix:group:!ops:example.org");
    tcalls[0][0] = "schedule_cronjob";
    tcalls[0][1] = "{\"prompt\":\"Post the standup reminder\",\"schedule\":\"0 9 * * 1-5\"}";
    tcalls[1][0] = "list_cronjobs";
    tcalls[1][1] = "{}";
    tcalls[2][0] = "schedule_cronjob";
    tcalls[2][1] = "{\"prompt\":\"x\"}";
    tcalls[3][0] = "remove_cronjob";
    tcalls[3][1] = "{\"job_id\":\"nope\"}";
    ntcalls = 4;
    ntresults = 0;
    rt = rt_runtime_new(NULL);
    ext = rt_ctx_external(rt);
    rt_spawn_opts o = {.flags = RT_SPAWN_TRAP_EXIT};
    rt_ref c = rt_spawn(ext, &caller_type, NULL, &o);
    rt_send(ext, c, rt_msg_new(T_GO, sizeof(rt_msg)));
    wait_until(&ntresults, 4);
    ASSERT_OK(rt_wait_quiescent(rt, 10000));
    rt_runtime_free(rt);
    ASSERT_STR_CONTAINS(tresults[0], "\"success\": true");
    ASSERT_STR_CONTAINS(tresults[0], "\"deliver\": \"origin\"");
    ASSERT_STR_CONTAINS(tresults[0], "\"repeat\": \"forever\"");
    ASSERT_STR_CONTAINS(tresults[1], "\"count\": 1");
    ASSERT_STR_CONTAINS(tresults[1], "\"prompt_preview\": \"Post the standup reminder\"");
    ASSERT_STR_CONTAINS(tresults[2], "\"success\": false");
    ASSERT_STR_CONTAINS(tresults[2], "Invalid schedule ''");
    ASSERT_STR_CONTAINS(tresults[3], "Job with ID 'nope' not found.");
    /* the origin is stored with the job */
    char err[512];
    cJSON *jobs = NULL;
    ASSERT_OK(cron_job_list(home, true, &jobs, err, sizeof(err)));
    const cJSON *origin = cJSON_GetObjectItem(cJSON_GetArrayItem(jobs, 0), "origin");
    ASSERT_STR_EQ("!ops:example.org", cJSON_GetStringValue(cJSON_GetObjectItem(origin, "chat_id")));
    ASSERT_STR_EQ("$t1", cJSON_GetStringValue(cJSON_GetObjectItem(origin, "thread_id")));
    cJSON_Delete(jobs);
    /* a cron run cannot schedule more cron jobs */
    rt_free(tenv->platform);
    tenv->platform = rt_xstrdup("cron");
    ASSERT_FALSE(tool_find("schedule_cronjob")->available(tenv));
    ASSERT_FALSE(tool_find("list_cronjobs")->available(tenv));
    ASSERT_FALSE(tool_find("remove_cronjob")->available(tenv));
    tool_env_unref(tenv);
    rt_free(path);
    rt_free(dir);
    rt_free(home);
}
