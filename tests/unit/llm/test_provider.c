/*
 * The provider actor against the scripted LLM server (tests/doubles/fake_llm.py, started
 * per case with fork/exec of /usr/bin/python3) and, when it is installed, the real
 * llama.cpp server from shared/peers/llm: streaming and not, tool calls, both APIs,
 * retries and Retry-After, non-retryable errors, malformed and cut-short responses,
 * timeouts, cancel, priorities, the token bucket, the provider-wide pause, the queue cap,
 * stop, bad input, and that the API key never reaches a log line or an error text.
 *
 * A collector actor records every message per tag under a mutex; the test thread waits on
 * a condition variable with a deadline, never sleeps. Timing checks are lower bounds (the
 * provider waited at least as long as the server asked) with generous upper bounds.
 */
#include "llm_provider.h"
#include "llm_provider_int.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_http.h"
#include "rt_log.h"
#include "rt_reactor.h"
#include "rt_sched.h"
#include "rt_util.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 30000 /* generous: sanitizer builds on a shared 2-core machine */
#define KEY     "sk-test-SECRET-0123456789abcdef"
#define MAXTAG  64

/* ================================================================ the collector */

typedef struct rec {
    rt_buf content, reasoning; /* deltas, concatenated */
    int ndeltas;
    int nstatus;
    char *status; /* the last STATUS text */
    int64_t status_retry_ms;
    bool done;
    int seq;          /* order in which results arrived */
    int after_result; /* messages that came after the RESULT (must stay 0) */
    int64_t done_ms;
    int err, kind, http_status, attempts;
    char *errmsg;
    cJSON *message;
    char *finish;
    llm_usage usage;
} rec;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static rec recs[MAXTAG]; /* under mu */
static int nresults;     /* under mu */
static int nstats;       /* under mu */
static llm_provider_stats last_stats;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static rec *rec_of(uint64_t tag) /* mu held */
{
    if (tag >= MAXTAG)
        TEST_FAIL_("unexpected tag %llu", (unsigned long long)tag);
    rec *r = &recs[tag];
    if (!r->content.max) {
        rt_buf_init(&r->content, 1 << 20);
        rt_buf_init(&r->reasoning, 1 << 20);
    }
    return r;
}

static void on_result(llm_msg_result *m)
{
    rec *r = rec_of(m->tag);
    r->after_result += r->done;
    r->done = true;
    r->seq = ++nresults;
    r->done_ms = mono_ms();
    r->err = m->err;
    r->kind = m->kind;
    r->http_status = m->http_status;
    r->attempts = m->attempts;
    r->errmsg = m->errmsg;
    m->errmsg = NULL;
    r->message = m->result.message;
    m->result.message = NULL;
    r->finish = m->result.finish_reason;
    m->result.finish_reason = NULL;
    r->usage = m->result.usage;
}

static void collect(rt_ctx *c, void *state, rt_msg *m)
{
    (void)c;
    (void)state;
    pthread_mutex_lock(&mu);
    switch (m->type) {
    case LLM_MSG_DELTA: {
        llm_msg_delta *d = (llm_msg_delta *)m;
        rec *r = rec_of(d->tag);
        r->after_result += r->done;
        r->ndeltas++;
        ASSERT_OK(
            rt_buf_append_str(d->kind == LLM_DELTA_CONTENT ? &r->content : &r->reasoning, d->text));
        break;
    }
    case LLM_MSG_STATUS: {
        llm_msg_status *s = (llm_msg_status *)m;
        rec *r = rec_of(s->tag);
        r->after_result += r->done;
        r->nstatus++;
        rt_free(r->status);
        r->status = s->text;
        s->text = NULL;
        r->status_retry_ms = s->retry_in_ms;
        break;
    }
    case LLM_MSG_RESULT: on_result((llm_msg_result *)m); break;
    case LLM_MSG_STATS:
        last_stats = ((llm_msg_stats *)m)->s;
        nstats++;
        break;
    default: break;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static const rt_actor_type collector_type = {"collector", collect, NULL, 0};

static struct timespec deadline(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

/* Wait (no sleep) until expr, evaluated under mu, holds. */
#define WAIT_UNTIL(expr)                                                                           \
    do {                                                                                           \
        struct timespec dl_ = deadline(WAIT_MS);                                                   \
        pthread_mutex_lock(&mu);                                                                   \
        while (!(expr)) {                                                                          \
            if (pthread_cond_timedwait(&cv, &mu, &dl_) == ETIMEDOUT && !(expr)) {                  \
                pthread_mutex_unlock(&mu);                                                         \
                TEST_FAIL_("timed out waiting for %s", #expr);                                     \
            }                                                                                      \
        }                                                                                          \
        pthread_mutex_unlock(&mu);                                                                 \
    } while (0)

static rec *wait_result(uint64_t tag)
{
    WAIT_UNTIL(rec_of(tag)->done);
    return &recs[tag];
}

static bool is_done(uint64_t tag)
{
    pthread_mutex_lock(&mu);
    bool d = recs[tag].done;
    pthread_mutex_unlock(&mu);
    return d;
}

/* ================================================================ runtime */

static rt_runtime *rt;
static rt_reactor *re;
static rt_ctx *cx;
static rt_ref col;

static void rt_up(void)
{
    rt_options o = {.workers = 2};
    rt = rt_runtime_new(&o);
    re = rt_reactor_start(rt);
    ASSERT_OK(rt_http_init(re));
    cx = rt_ctx_external(rt);
    col = rt_spawn(cx, &collector_type, NULL, NULL);
}

/* Wait until every message in flight has been handled (transfers included). */
static void settle(void)
{
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
}

static void rt_down(void)
{
    rt_reactor_stop(re);
    re = NULL;
    settle();
    rt_runtime_free(rt);
    rt = NULL;
    for (int i = 0; i < MAXTAG; i++) {
        rt_buf_fini(&recs[i].content);
        rt_buf_fini(&recs[i].reasoning);
        rt_free(recs[i].status);
        rt_free(recs[i].errmsg);
        rt_free(recs[i].finish);
        cJSON_Delete(recs[i].message);
    }
    memset(recs, 0, sizeof(recs));
}

static llm_provider_stats stats_of(rt_ref p)
{
    pthread_mutex_lock(&mu);
    int before = nstats;
    pthread_mutex_unlock(&mu);
    rt_send(cx, p, llm_stats_get_new(col, 0));
    WAIT_UNTIL(nstats > before);
    pthread_mutex_lock(&mu);
    llm_provider_stats s = last_stats;
    pthread_mutex_unlock(&mu);
    return s;
}

/* ================================================================ requests */

typedef struct ask_opts {
    bool stream;
    int prio;
    cJSON *tools; /* taken */
    int64_t timeout_ms;
    int64_t max_tokens;
    const char *model;
    bool no_messages;
} ask_opts;

static void ask_with(rt_ref p, uint64_t tag, const char *user, ask_opts a)
{
    cJSON *msgs = NULL;
    if (!a.no_messages) {
        msgs = cJSON_CreateArray();
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "role", "system");
        cJSON_AddStringToObject(s, "content", "You are a test.");
        cJSON_AddItemToArray(msgs, s);
        cJSON *u = cJSON_CreateObject();
        cJSON_AddStringToObject(u, "role", "user");
        cJSON_AddStringToObject(u, "content", user);
        cJSON_AddItemToArray(msgs, u);
    }
    llm_msg_request *r = llm_request_new(col, tag, msgs, a.tools);
    r->stream = a.stream;
    r->priority = a.prio;
    r->timeout_ms = a.timeout_ms;
    r->max_tokens = a.max_tokens;
    r->model = a.model ? rt_xstrdup(a.model) : NULL;
    rt_send(cx, p, &r->hdr);
}

static void ask(rt_ref p, uint64_t tag, const char *user, bool stream)
{
    ask_with(p, tag, user, (ask_opts){.stream = stream});
}

static void cancel(rt_ref p, uint64_t tag)
{
    rt_send_urgent(cx, p, llm_cancel_new(col, tag));
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k); /* case-insensitive: header names */
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ================================================================ the fake server */

static pid_t fake_pid;
static int fake_port;
static char fake_log[512];
static char fake_url[128];

static const char *doubles_path(const char *file)
{
    static char path[1024];
    const char *here = __FILE__; /* .../tests/unit/llm/test_provider.c */
    const char *cut = strstr(here, "/unit/llm/");
    RT_VERIFY(cut);
    snprintf(path, sizeof(path), "%.*s/doubles/%s", (int)(cut - here), here, file);
    return path;
}

/* Run argv with stdout/stderr to log (or /dev/null); its exit status, or -1. */
static int run_wait(const char *const *argv, const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void dump_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f))
        fprintf(stderr, "  | %s", line);
    if (f)
        fclose(f);
}

static void fake_stop(void)
{
    if (fake_pid > 0) {
        kill(fake_pid, SIGTERM);
        waitpid(fake_pid, NULL, 0);
        fake_pid = 0;
    }
}

static int read_port(const char *file)
{
    FILE *f = fopen(file, "r");
    int port = 0;
    if (f && fscanf(f, "%d", &port) != 1)
        port = 0;
    if (f)
        fclose(f);
    return port;
}

/* Start fake_llm.py; false (after printing why) when python3-aiohttp is missing. Must run
 * before the runtime starts threads (fork). */
static bool fake_start(void)
{
    const char *probe[] = {"/usr/bin/python3", "-c", "import aiohttp", NULL};
    if (run_wait(probe, NULL) != 0)
        return false;
    const char *dir = test_tmpdir();
    char portfile[600];
    snprintf(portfile, sizeof(portfile), "%s/port", dir);
    snprintf(fake_log, sizeof(fake_log), "%s/fake_llm.log", dir);
    int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    ASSERT_GE(in, 0);
    ASSERT_GE(inotify_add_watch(in, dir, IN_MOVED_TO | IN_CLOSE_WRITE), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        int fd = open(fake_log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execl("/usr/bin/python3", "python3", doubles_path("fake_llm.py"), "--port", "0",
              "--port-file", portfile, (char *)NULL);
        _exit(127);
    }
    fake_pid = pid;
    atexit(fake_stop);
    /* Bounded wait for the port file: inotify wakes us, the count caps it at 30 s. */
    for (int i = 0; i < 300 && !(fake_port = read_port(portfile)); i++) {
        struct pollfd pf = {in, POLLIN, 0};
        char ev[4096];
        if (poll(&pf, 1, 100) > 0)
            while (read(in, ev, sizeof(ev)) > 0)
                ;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            fake_pid = 0;
            dump_file(fake_log);
            TEST_FAIL_("fake_llm.py exited before it was ready");
        }
    }
    close(in);
    if (!fake_port) {
        dump_file(fake_log);
        TEST_FAIL_("fake_llm.py did not write its port file in 30 s");
    }
    snprintf(fake_url, sizeof(fake_url), "http://127.0.0.1:%d/v1", fake_port);
    return true;
}

#define NEED_FAKE()                                                                                \
    do {                                                                                           \
        if (!fake_start()) {                                                                       \
            printf("SKIP %s: python3-aiohttp is not installed (apt-get install "                   \
                   "python3-aiohttp), so the scripted LLM server cannot run\n",                    \
                   __func__);                                                                      \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* A blocking HTTP/1.1 exchange with the fake's control API (the test thread only). */
static char *ctl(const char *method, const char *path, const char *body)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fake_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    ASSERT_OK(connect(fd, (struct sockaddr *)&a, sizeof(a)));
    rt_buf b;
    rt_buf_init(&b, 64u << 20);
    ASSERT_OK(rt_buf_printf(&b,
                            "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                            "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                            method, path, body ? strlen(body) : 0, body ? body : ""));
    ASSERT_EQ(write(fd, b.data, b.len), (ssize_t)b.len);
    rt_buf_reset(&b);
    char chunk[65536];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        ASSERT_OK(rt_buf_append(&b, chunk, (size_t)n));
    close(fd);
    const char *txt = rt_buf_cstr(&b);
    const char *sep = strstr(txt, "\r\n\r\n");
    if (strncmp(txt, "HTTP/1.1 200", 12) != 0 || !sep)
        TEST_FAIL_("control request %s %s failed: %.200s", method, path, txt);
    char *out = rt_xstrdup(sep + 4);
    rt_buf_fini(&b);
    return out;
}

static void script(const char *json)
{
    rt_free(ctl("POST", "/_script", json));
}

/* The requests the fake received: [{path, headers, body, time}]. */
static cJSON *received(void)
{
    char *b = ctl("GET", "/_requests", NULL);
    cJSON *j = cJSON_Parse(b);
    rt_free(b);
    ASSERT(cJSON_IsArray(j));
    return j;
}

/* The last user message of received request i. */
static const char *user_of(const cJSON *reqs, int i)
{
    const cJSON *msgs =
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, i), "body"), "messages");
    return jstr(cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1), "content");
}

static double time_of(const cJSON *reqs, int i)
{
    return cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, i), "time"));
}

static llm_provider_opts fake_opts(void)
{
    return (llm_provider_opts){
        .api = LLM_API_OPENAI,
        .name = "fake",
        .base_url = fake_url,
        .api_key = KEY,
        .model = "fake-model",
        .backoff_base_ms = 10,
        .backoff_cap_ms = 50,
    };
}

static const char *content_of(const rec *r)
{
    return jstr(r->message, "content");
}

/* ================================================================ streaming and not */

TEST(stream_passes_deltas_in_order_then_one_result)
{
    NEED_FAKE();
    rt_up();
    script("[{\"content\": \"alpha beta gamma delta epsilon\", \"reasoning\": \"thinking\"}]");
    llm_provider_opts o = fake_opts();
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "hello", true);
    rec *r = wait_result(1);
    ASSERT_EQ(r->err, 0);
    ASSERT_EQ(r->http_status, 200);
    ASSERT_EQ(r->attempts, 1);
    ASSERT_STR_EQ(rt_buf_cstr(&r->content), "alpha beta gamma delta epsilon");
    ASSERT_STR_EQ(rt_buf_cstr(&r->reasoning), "thinking");
    ASSERT_EQ(r->ndeltas, 6); /* five words and the reasoning */
    ASSERT_STR_EQ(content_of(r), "alpha beta gamma delta epsilon");
    ASSERT_STR_EQ(jstr(r->message, "role"), "assistant");
    ASSERT_STR_EQ(r->finish, "stop");
    ASSERT_GT(r->usage.completion_tokens, 0);
    ASSERT_GT(r->usage.prompt_tokens, 0);
    settle();
    ASSERT_EQ(recs[1].after_result, 0);

    cJSON *reqs = received();
    ASSERT_EQ(cJSON_GetArraySize(reqs), 1);
    const cJSON *q = cJSON_GetArrayItem(reqs, 0);
    ASSERT_STR_EQ(jstr(q, "path"), "/v1/chat/completions");
    const cJSON *h = cJSON_GetObjectItem(q, "headers");
    ASSERT_STR_EQ(jstr(h, "Authorization"), "Bearer " KEY);
    ASSERT_STR_EQ(jstr(h, "Content-Type"), "application/json");
    ASSERT_NULL(jstr(h, "HTTP-Referer")); /* not OpenRouter */
    const cJSON *body = cJSON_GetObjectItem(q, "body");
    ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(body, "stream")));
    ASSERT_STR_EQ(jstr(body, "model"), "fake-model");
    ASSERT_STR_EQ(user_of(reqs, 0), "hello");
    cJSON_Delete(reqs);

    llm_provider_stats s = stats_of(p);
    ASSERT_EQ(s.requests, 1);
    ASSERT_EQ(s.succeeded, 1);
    ASSERT_EQ(s.attempts, 1);
    ASSERT_EQ(s.deltas, 6);
    ASSERT_EQ(s.inflight, 0);
    rt_down();
}

TEST(non_streamed_request_gets_one_result_and_no_deltas)
{
    NEED_FAKE();
    rt_up();
    script("[{\"content\": \"plain answer\", \"reasoning\": \"mulling\", "
           "\"usage\": {\"prompt_tokens\": 11, \"completion_tokens\": 3}}]");
    llm_provider_opts o = fake_opts();
    rt_ref p = llm_provider_start(cx, &o);
    ask_with(p, 1, "hi", (ask_opts){.model = "other-model", .max_tokens = 77});
    rec *r = wait_result(1);
    ASSERT_EQ(r->err, 0);
    ASSERT_STR_EQ(content_of(r), "plain answer");
    ASSERT_STR_EQ(jstr(r->message, "reasoning"), "mulling");
    ASSERT_STR_EQ(r->finish, "stop");
    ASSERT_EQ(r->usage.prompt_tokens, 11);
    ASSERT_EQ(r->usage.completion_tokens, 3);
    settle();
    ASSERT_EQ(recs[1].ndeltas, 0);
    cJSON *reqs = received();
    const cJSON *body = cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 0), "body");
    ASSERT_STR_EQ(jstr(body, "model"), "other-model"); /* the request's model wins */
    ASSERT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItem(body, "max_tokens")), 77);
    ASSERT(!cJSON_IsTrue(cJSON_GetObjectItem(body, "stream")));
    cJSON_Delete(reqs);
    rt_down();
}

static cJSON *tool_schemas(void)
{
    return cJSON_Parse("[{\"name\": \"terminal\", \"description\": \"Run a command\", "
                       "\"parameters\": {\"type\": \"object\", \"properties\": {\"command\": "
                       "{\"type\": \"string\"}}}}, {\"name\": \"read_file\", \"description\": "
                       "\"Read\", \"parameters\": {\"type\": \"object\"}}]");
}

static void check_three_calls(const rec *r)
{
    ASSERT_EQ(r->err, 0);
    ASSERT_STR_EQ(r->finish, "tool_calls");
    const cJSON *tcs = cJSON_GetObjectItem(r->message, "tool_calls");
    ASSERT_EQ(cJSON_GetArraySize(tcs), 3);
    static const char *const names[] = {"terminal", "read_file", "terminal"};
    static const char *const keys[] = {"command", "path", "command"};
    static const char *const vals[] = {"ls", "/etc/hosts", "pwd"};
    for (int i = 0; i < 3; i++) {
        const cJSON *tc = cJSON_GetArrayItem(tcs, i);
        ASSERT_NOT_NULL(jstr(tc, "id"));
        const cJSON *fn = cJSON_GetObjectItem(tc, "function");
        ASSERT_STR_EQ(jstr(fn, "name"), names[i]);
        cJSON *args = cJSON_Parse(jstr(fn, "arguments"));
        ASSERT_STR_EQ(jstr(args, keys[i]), vals[i]);
        cJSON_Delete(args);
    }
}

TEST(several_tool_calls_in_one_response_streamed_and_not)
{
    NEED_FAKE();
    rt_up();
    const char *spec = "{\"tool_calls\": [{\"name\": \"terminal\", \"arguments\": {\"command\": "
                       "\"ls\"}}, {\"name\": \"read_file\", \"arguments\": {\"path\": "
                       "\"/etc/hosts\"}}, {\"name\": \"terminal\", \"arguments\": {\"command\": "
                       "\"pwd\"}}], \"repeat\": 2}";
    char json[1024];
    snprintf(json, sizeof(json), "[%s]", spec);
    script(json);
    llm_provider_opts o = fake_opts();
    rt_ref p = llm_provider_start(cx, &o);
    ask_with(p, 1, "do things", (ask_opts){.tools = tool_schemas()});
    check_three_calls(wait_result(1));
    ask_with(p, 2, "do things", (ask_opts){.tools = tool_schemas(), .stream = true});
    check_three_calls(wait_result(2));
    cJSON *reqs = received();
    const cJSON *tools =
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(reqs, 0), "body"), "tools");
    ASSERT_EQ(cJSON_GetArraySize(tools), 2);
    ASSERT_STR_EQ(jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(tools, 0), "function"), "name"),
                  "terminal");
    cJSON_Delete(reqs);
    rt_down();
}

TEST(anthropic_stream_with_a_tool_call)
{
    NEED_FAKE();
    rt_up();
    script("[{\"content\": \"Let me look.\", \"tool_calls\": [{\"name\": \"terminal\", "
           "\"arguments\": {\"command\": \"ls -la\"}}]}]");
    llm_provider_opts o = fake_opts();
    o.api = LLM_API_ANTHROPIC;
    o.name = "anthropic";
    rt_ref p = llm_provider_start(cx, &o);
    ask_with(p, 1, "list files", (ask_opts){.stream = true, .tools = tool_schemas()});
    rec *r = wait_result(1);
    ASSERT_EQ(r->err, 0);
    ASSERT_STR_EQ(rt_buf_cstr(&r->content), "Let me look.");
    ASSERT_GE(r->ndeltas, 2);
    ASSERT_STR_EQ(content_of(r), "Let me look.");
    ASSERT_STR_EQ(r->finish, "tool_calls");
    const cJSON *tc = cJSON_GetArrayItem(cJSON_GetObjectItem(r->message, "tool_calls"), 0);
    ASSERT_NOT_NULL(jstr(tc, "id"));
    ASSERT_STR_EQ(jstr(cJSON_GetObjectItem(tc, "function"), "name"), "terminal");
    cJSON *args = cJSON_Parse(jstr(cJSON_GetObjectItem(tc, "function"), "arguments"));
    ASSERT_STR_EQ(jstr(args, "command"), "ls -la");
    cJSON_Delete(args);

    cJSON *reqs = received();
    const cJSON *q = cJSON_GetArrayItem(reqs, 0);
    ASSERT_STR_EQ(jstr(q, "path"), "/v1/messages");
    const cJSON *h = cJSON_GetObjectItem(q, "headers");
    ASSERT_STR_EQ(jstr(h, "x-api-key"), KEY);
    ASSERT_STR_EQ(jstr(h, "anthropic-version"), "2023-06-01");
    ASSERT_NULL(jstr(h, "Authorization"));
    const cJSON *body = cJSON_GetObjectItem(q, "body");
    ASSERT_STR_EQ(jstr(body, "system"), "You are a test.");
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(body, "tools"), 0), "name"),
                  "terminal");
    cJSON_Delete(reqs);
    rt_down();
}

TEST(openrouter_attribution_and_extra_headers)
{
    NEED_FAKE();
    rt_up();
    /* curl resolves *.localhost to the loopback address itself: no DNS, no network */
    char url[160];
    snprintf(url, sizeof(url), "http://openrouter.localhost:%d/api/v1/", fake_port);
    const char *extra[] = {"X-Extra: yes", "not a header line", NULL};
    llm_provider_opts o = fake_opts();
    o.base_url = url;
    o.name = "openrouter";
    o.headers = extra;
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "hi", false);
    rec *r = wait_result(1);
    ASSERT_EQ(r->err, 0);
    ASSERT_STR_EQ(content_of(r), "echo: hi");
    cJSON *reqs = received();
    const cJSON *q = cJSON_GetArrayItem(reqs, 0);
    ASSERT_STR_EQ(jstr(q, "path"), "/api/v1/chat/completions"); /* trailing slash dropped */
    const cJSON *h = cJSON_GetObjectItem(q, "headers");
    ASSERT_STR_EQ(jstr(h, "HTTP-Referer"), "https://github.com/NousResearch/hermes-agent");
    ASSERT_STR_EQ(jstr(h, "X-OpenRouter-Title"), "Hermes Agent");
    ASSERT_STR_EQ(jstr(h, "X-OpenRouter-Categories"), "productivity,cli-agent");
    ASSERT_STR_EQ(jstr(h, "X-Extra"), "yes");
    ASSERT_STR_EQ(jstr(h, "Authorization"), "Bearer " KEY);
    /* agent-core §1.5: OpenRouter gets the reasoning object, xhigh when nothing is set. */
    const cJSON *rs = cJSON_GetObjectItem(cJSON_GetObjectItem(q, "body"), "reasoning");
    ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(rs, "enabled")));
    ASSERT_STR_EQ(jstr(rs, "effort"), "xhigh");
    cJSON_Delete(reqs);
    rt_down();
}

/* agent.reasoning_effort maps to the body's reasoning object on OpenRouter and Nous only. */
TEST(reasoning_effort_goes_to_openrouter_and_nous_only)
{
    cJSON *e = llm__body_extra(LLM_API_OPENAI, "https://openrouter.ai/api/v1", "none");
    ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "reasoning"), "enabled")));
    ASSERT_NULL(cJSON_GetObjectItem(e, "tags"));
    cJSON_Delete(e);
    e = llm__body_extra(LLM_API_OPENAI, "https://inference-api.nousresearch.com/v1", "Low");
    ASSERT_STR_EQ(jstr(cJSON_GetObjectItem(e, "reasoning"), "effort"), "low");
    ASSERT_STR_EQ(cJSON_GetArrayItem(cJSON_GetObjectItem(e, "tags"), 0)->valuestring,
                  "product=hermes-agent");
    cJSON_Delete(e);
    e = llm__body_extra(LLM_API_OPENAI, "https://openrouter.ai/api/v1", "bogus");
    ASSERT_STR_EQ(jstr(cJSON_GetObjectItem(e, "reasoning"), "effort"), "xhigh");
    cJSON_Delete(e);
    ASSERT_NULL(llm__body_extra(LLM_API_OPENAI, "http://127.0.0.1:8080/v1", "high"));
    ASSERT_NULL(llm__body_extra(LLM_API_OPENAI, "https://api.mistral.ai/openrouter", "high"));
    ASSERT_NULL(llm__body_extra(LLM_API_ANTHROPIC, "https://openrouter.ai/api/v1", "high"));
}

/* ================================================================ retries */

TEST(rate_limit_with_retry_after_is_honoured_then_succeeds)
{
    NEED_FAKE();
    rt_up();
    script("[{\"status\": 429, \"headers\": {\"Retry-After\": \"1\"}, \"body\": "
           "\"{\\\"error\\\": {\\\"message\\\": \\\"slow down\\\"}}\"}, {\"content\": \"ok\"}]");
    llm_provider_opts o = fake_opts();
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "hi", true);
    rec *r = wait_result(1);
    ASSERT_EQ(r->err, 0);
    ASSERT_STR_EQ(content_of(r), "ok");
    ASSERT_EQ(r->attempts, 2);
    ASSERT_EQ(r->nstatus, 1);
    ASSERT_STR_CONTAINS(r->status, "Waiting for the provider (rate limited), retrying in 1 s");
    /* backoff here is at most 50 ms: the wait is the server's 1 s */
    ASSERT_EQ(r->status_retry_ms, 1000);
    cJSON *reqs = received();
    ASSERT_EQ(cJSON_GetArraySize(reqs), 2);
    double gap = time_of(reqs, 1) - time_of(reqs, 0);
    ASSERT_GE(gap * 1000, 950);   /* honoured (server clock, 50 ms slack for the timer) */
    ASSERT_LE(gap * 1000, 15000); /* and not wildly more */
    cJSON_Delete(reqs);
    llm_provider_stats s = stats_of(p);
    ASSERT_EQ(s.rate_limited, 1);
    ASSERT_EQ(s.retries, 1);
    ASSERT_EQ(s.pauses, 1);
    ASSERT_EQ(s.succeeded, 1);
    rt_down();
}

TEST(server_errors_are_retried_until_success)
{
    NEED_FAKE();
    rt_up();
    script("[{\"status\": 500, \"body\": \"{\\\"error\\\": {\\\"message\\\": \\\"boom\\\"}}\", "
           "\"repeat\": 2}, {\"content\": \"third time lucky\"}]");
    llm_provider_opts o = fake_opts();
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "hi", false);
    rec *r = wait_result(1);
    ASSERT_EQ(r->err, 0);
    ASSERT_STR_EQ(content_of(r), "third time lucky");
    ASSERT_EQ(r->attempts, 3);
    ASSERT_EQ(r->nstatus, 1); /* one notice for the waiting request, not one per retry */
    ASSERT_STR_CONTAINS(r->status, "(server error), retrying in");
    llm_provider_stats s = stats_of(p);
    ASSERT_EQ(s.retries, 2);
    ASSERT_EQ(s.attempts, 3);
    ASSERT_EQ(s.pauses, 0); /* no Retry-After: only this request waited */
    rt_down();
}

TEST(unauthorized_is_not_retried_and_the_key_is_masked)
{
    NEED_FAKE();
    rt_up();
    script("[{\"status\": 401, \"body\": \"{\\\"error\\\": {\\\"message\\\": \\\"Invalid API key "
           "provided: " KEY "\\\"}}\"}]");
    llm_provider_opts o = fake_opts();
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "hi", true);
    rec *r = wait_result(1);
    ASSERT_EQ(r->err, -EACCES);
    ASSERT_EQ(r->kind, LLM_ERR_AUTH);
    ASSERT_EQ(r->http_status, 401);
    ASSERT_EQ(r->attempts, 1);
    ASSERT_EQ(r->nstatus, 0);
    ASSERT_STR_CONTAINS(r->errmsg, "fake returned HTTP 401: Invalid API key provided: ***");
    ASSERT_NULL(strstr(r->errmsg, "SECRET"));
    settle();
    cJSON *reqs = received();
    ASSERT_EQ(cJSON_GetArraySize(reqs), 1);
    cJSON_Delete(reqs);
    rt_down();
}

TEST(malformed_body_is_retried_then_fails_clearly)
{
    NEED_FAKE();
    rt_up();
    script("[{\"body\": \"{not json\", \"repeat\": 3}, {\"content\": \"never reached\"}]");
    llm_provider_opts o = fake_opts();
    o.max_retries = 2;
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "hi", false);
    rec *r = wait_result(1);
    ASSERT_EQ(r->err, -EBADMSG);
    ASSERT_EQ(r->kind, LLM_ERR_MALFORMED);
    ASSERT_EQ(r->http_status, 200);
    ASSERT_EQ(r->attempts, 3);
    ASSERT_EQ(r->nstatus, 1);
    ASSERT_STR_CONTAINS(r->status, "(bad response)");
    ASSERT_STR_CONTAINS(r->errmsg, "the body is not a JSON object");
    ASSERT_STR_CONTAINS(r->errmsg, "gave up after 3 attempts");
    settle();
    cJSON *reqs = received();
    ASSERT_EQ(cJSON_GetArraySize(reqs), 3);
    cJSON_Delete(reqs);
    rt_down();
}

TEST(stream_cut_after_deltas_fails_and_is_not_retried)
{
    NEED_FAKE();
    rt_up();
    /* events: role, then one per word; cut after the role and three words */
    script("[{\"content\": \"one two three four five six\", \"cut_after\": 4}, "
           "{\"content\": \"SHOULD NOT BE SEEN\"}]");
    llm_provider_opts o = fake_opts();
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "hi", true);
    rec *r = wait_result(1);
    ASSERT_NE(r->err, 0);
    ASSERT(r->kind == LLM_ERR_NETWORK || r->kind == LLM_ERR_MALFORMED);
    ASSERT_EQ(r->attempts, 1);
    ASSERT_EQ(r->nstatus, 0);
    ASSERT_STR_EQ(rt_buf_cstr(&r->content), "one two three ");
    ASSERT_STR_CONTAINS(r->errmsg, "not retried: part of the answer was already shown");
    settle();
    cJSON *reqs = received();
    ASSERT_EQ(cJSON_GetArraySize(reqs), 1);
    cJSON_Delete(reqs);
    rt_down();
}

TEST(stream_cut_before_any_delta_is_retried)
{
    NEED_FAKE();
    rt_up();
    script("[{\"content\": \"one two\", \"cut_after\": 1}, {\"content\": \"whole answer\"}]");
    llm_provider_opts o = fake_opts();
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "hi", true);
    rec *r = wait_result(1);
    ASSERT_EQ(r->err, 0);
    ASSERT_EQ(r->attempts, 2);
    ASSERT_STR_EQ(rt_buf_cstr(&r->content), "whole answer"); /* nothing shown twice */
    ASSERT_EQ(r->nstatus, 1);
    rt_down();
}

TEST(slow_first_byte_times_out)
{
    NEED_FAKE();
    rt_up();
    script("[{\"delay_ms\": 5000, \"content\": \"late\", \"repeat\": 2}]");
    llm_provider_opts o = fake_opts();
    o.max_retries = -1;
    o.idle_timeout_ms = 300;
    rt_ref p = llm_provider_start(cx, &o);
    int64_t t0 = mono_ms();
    ask_with(p, 1, "hi", (ask_opts){.timeout_ms = 300}); /* whole-request timeout */
    ask(p, 2, "hi", true);                               /* streamed: idle timeout */
    for (uint64_t t = 1; t <= 2; t++) {
        rec *r = wait_result(t);
        ASSERT_EQ(r->err, -ETIMEDOUT);
        ASSERT_EQ(r->kind, LLM_ERR_TIMEOUT);
        ASSERT_EQ(r->attempts, 1);
        ASSERT_STR_CONTAINS(r->errmsg, "fake did not answer in time");
    }
    pthread_mutex_lock(&mu);
    ASSERT_LT(recs[1].done_ms - t0, 4500); /* both before the 5 s reply could come */
    ASSERT_LT(recs[2].done_ms - t0, 4500);
    pthread_mutex_unlock(&mu);
    rt_down();
}

TEST(a_request_that_hangs_past_its_timeout_is_retried_then_answered)
{
    NEED_FAKE();
    rt_up();
    script("[{\"delay_ms\": 5000, \"content\": \"late\"}, {\"content\": \"second try\"}]");
    llm_provider_opts o = fake_opts();
    o.timeout_ms = 400; /* the provider's default per-attempt timeout */
    rt_ref p = llm_provider_start(cx, &o);
    int64_t t0 = mono_ms();
    ask(p, 1, "hi", false);
    rec *r = wait_result(1);
    ASSERT_EQ(r->err, 0);
    ASSERT_STR_EQ(content_of(r), "second try");
    ASSERT_EQ(r->attempts, 2);
    ASSERT_EQ(r->nstatus, 1);
    ASSERT_STR_CONTAINS(r->status, "(timed out), retrying in");
    pthread_mutex_lock(&mu);
    ASSERT_LT(recs[1].done_ms - t0, 4500); /* did not wait for the hung answer */
    pthread_mutex_unlock(&mu);
    /* the same with no retries left: a clear error, and the provider still serves */
    script("[{\"delay_ms\": 5000, \"content\": \"late\"}]");
    o.max_retries = -1;
    rt_ref q = llm_provider_start(cx, &o);
    ask(q, 2, "hi", false);
    r = wait_result(2);
    ASSERT_EQ(r->err, -ETIMEDOUT);
    ASSERT_EQ(r->kind, LLM_ERR_TIMEOUT);
    ASSERT_STR_CONTAINS(r->errmsg, "fake did not answer in time");
    ask(q, 3, "again", false);
    ASSERT_EQ(wait_result(3)->err, 0);
    rt_down();
}

TEST(waiting_notice_once_per_request_only_while_held_back)
{
    NEED_FAKE();
    rt_up();
    /* Two pauses in a row and server errors between them: the held-back requests are told
     * once each; the one on the wire while the pause begins is not told at all. */
    script("[{\"delay_ms\": 600, \"content\": \"on the wire\"}, "
           "{\"status\": 429, \"headers\": {\"Retry-After\": \"1\"}}, "
           "{\"status\": 500, \"repeat\": 3}, "
           "{\"status\": 429, \"headers\": {\"Retry-After\": \"1\"}}]");
    llm_provider_opts o = fake_opts();
    o.max_inflight = 2;
    o.max_retries = 10;
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "slow", false); /* on the wire for 600 ms */
    ask(p, 2, "second", false);
    WAIT_UNTIL(recs[2].nstatus == 1); /* its 429 paused the provider */
    for (uint64_t t = 3; t <= 5; t++)
        ask(p, t, "later", t % 2 == 0);
    for (uint64_t t = 1; t <= 5; t++)
        ASSERT_EQ(wait_result(t)->err, 0);
    pthread_mutex_lock(&mu);
    ASSERT_EQ(recs[1].nstatus, 0); /* never held back */
    for (int t = 2; t <= 5; t++)
        ASSERT_EQ(recs[t].nstatus, 1);
    pthread_mutex_unlock(&mu);
    llm_provider_stats s = stats_of(p);
    ASSERT_GE(s.retries, 5); /* 429, 3 x 500, 429: five failed attempts */
    ASSERT_EQ(s.pauses, 2);
    rt_down();
}

TEST(retry_after_longer_than_the_limit_fails_at_once)
{
    NEED_FAKE();
    rt_up();
    script("[{\"status\": 429, \"headers\": {\"Retry-After\": \"3600\"}}]");
    llm_provider_opts o = fake_opts();
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "hi", false);
    rec *r = wait_result(1);
    ASSERT_EQ(r->err, -EAGAIN);
    ASSERT_EQ(r->kind, LLM_ERR_RATE_LIMIT);
    ASSERT_EQ(r->attempts, 1);
    ASSERT_STR_CONTAINS(r->errmsg, "fake returned HTTP 429 (rate limited)");
    ASSERT_STR_CONTAINS(r->errmsg, "asks to wait 3600 s");
    rt_down();
}

/* ================================================================ cancel and stop */

TEST(cancel_mid_stream_answers_at_once_and_ends_the_transfer)
{
    NEED_FAKE();
    rt_up();
    rt_buf words;
    rt_buf_init(&words, 1 << 16);
    for (int i = 0; i < 100; i++)
        rt_buf_printf(&words, "w%d ", i);
    char json[2048];
    snprintf(json, sizeof(json), "[{\"content\": \"%s\", \"chunk_delay_ms\": 100}]",
             rt_buf_cstr(&words));
    rt_buf_fini(&words);
    script(json); /* ~10 s of stream */
    llm_provider_opts o = fake_opts();
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "hi", true);
    WAIT_UNTIL(recs[1].ndeltas >= 2);
    int64_t t0 = mono_ms();
    cancel(p, 1);
    rec *r = wait_result(1);
    ASSERT_EQ(r->err, -ECANCELED);
    ASSERT_EQ(r->attempts, 1);
    settle(); /* the HTTP client has confirmed the transfer ended */
    ASSERT_LT(mono_ms() - t0, 6000);
    ASSERT_EQ(recs[1].after_result, 0);
    llm_provider_stats s = stats_of(p);
    ASSERT_EQ(s.inflight, 0);
    ASSERT_EQ(s.cancelled, 1);
    cancel(p, 1); /* a late cancel is ignored */
    settle();
    ASSERT_EQ(recs[1].after_result, 0);
    rt_down();
}

TEST(cancel_of_queued_and_backoff_requests_answers_at_once)
{
    NEED_FAKE();
    rt_up();
    script("[{\"delay_ms\": 2000, \"content\": \"slow\"}, {\"status\": 503, \"headers\": "
           "{\"Retry-After\": \"20\"}}]");
    llm_provider_opts o = fake_opts();
    o.max_inflight = 1;
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "first", false);
    ask(p, 2, "second", false);
    ask(p, 3, "third", false);
    ASSERT_EQ(stats_of(p).queued_main, 2); /* the requests have arrived */
    cancel(p, 2);
    rec *r = wait_result(2);
    ASSERT_EQ(r->err, -ECANCELED);
    ASSERT_EQ(r->attempts, 0);
    /* A cancel sent right after its request travels on the urgent lane and may overtake
     * it: either way the request is answered at once and never sent. */
    ask(p, 4, "fourth", false);
    cancel(p, 4);
    r = wait_result(4);
    ASSERT_EQ(r->err, -ECANCELED);
    ASSERT_EQ(r->attempts, 0);
    ASSERT_FALSE(is_done(1)); /* still on the wire */
    ASSERT_EQ(wait_result(1)->err, 0);
    WAIT_UNTIL(recs[3].nstatus == 1); /* 503 with Retry-After 20: waiting in backoff */
    ASSERT_EQ(stats_of(p).backoff, 1);
    cancel(p, 3);
    r = wait_result(3);
    ASSERT_EQ(r->err, -ECANCELED);
    ASSERT_EQ(r->attempts, 1);
    llm_provider_stats s = stats_of(p);
    ASSERT_EQ(s.backoff, 0);
    ASSERT_EQ(s.queued_main, 0);
    ASSERT_EQ(s.cancelled, 3);
    cJSON *reqs = received();
    ASSERT_EQ(cJSON_GetArraySize(reqs), 2); /* "second" and "fourth" never went out */
    ASSERT_STR_EQ(user_of(reqs, 0), "first");
    ASSERT_STR_EQ(user_of(reqs, 1), "third");
    cJSON_Delete(reqs);
    rt_down();
}

TEST(stop_answers_every_request)
{
    NEED_FAKE();
    rt_up();
    script("[{\"delay_ms\": 3000, \"content\": \"slow\"}]");
    llm_provider_opts o = fake_opts();
    o.max_inflight = 1;
    rt_ref p = llm_provider_start(cx, &o);
    for (uint64_t t = 1; t <= 4; t++)
        ask(p, t, "hi", t % 2 == 0);
    ASSERT_EQ(stats_of(p).queued_main, 3);
    rt_stop(cx, p, RT_EXIT_STOPPED);
    for (uint64_t t = 1; t <= 4; t++) {
        rec *r = wait_result(t);
        ASSERT_EQ(r->err, -ECANCELED);
        ASSERT_STR_CONTAINS(r->errmsg, "shutting down");
    }
    pthread_mutex_lock(&mu);
    for (int t = 2; t <= 4; t++)
        ASSERT_LT(recs[t].done_ms - recs[1].done_ms, 2500); /* all at once, not after 3 s */
    pthread_mutex_unlock(&mu);
    settle();
    for (uint64_t t = 1; t <= 4; t++)
        ASSERT_EQ(recs[t].after_result, 0);
    rt_down();
}

/* ================================================================ admission */

TEST(aux_requests_wait_behind_main_ones)
{
    NEED_FAKE();
    rt_up();
    script("[{\"delay_ms\": 1500, \"content\": \"first\"}]"); /* then: echo */
    llm_provider_opts o = fake_opts();
    o.max_inflight = 1;
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "m1", false);
    ASSERT_EQ(stats_of(p).inflight, 1);
    ask_with(p, 2, "a1", (ask_opts){.prio = LLM_PRIO_AUX});
    ask_with(p, 3, "a2", (ask_opts){.prio = LLM_PRIO_AUX});
    ask_with(p, 4, "m2", (ask_opts){.prio = LLM_PRIO_MAIN});
    ask_with(p, 5, "m3", (ask_opts){.prio = LLM_PRIO_MAIN, .stream = true});
    llm_provider_stats s = stats_of(p);
    ASSERT_EQ(s.queued_main, 2);
    ASSERT_EQ(s.queued_aux, 2);
    ASSERT_EQ(s.inflight, 1);
    for (uint64_t t = 1; t <= 5; t++)
        ASSERT_EQ(wait_result(t)->err, 0);
    ASSERT_STR_EQ(content_of(&recs[4]), "echo: m2");
    ASSERT_STR_EQ(content_of(&recs[2]), "echo: a1");
    static const int order[] = {1, 4, 5, 2, 3};
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(recs[order[i]].seq, i + 1);
    cJSON *reqs = received();
    static const char *const users[] = {"m1", "m2", "m3", "a1", "a2"};
    for (int i = 0; i < 5; i++)
        ASSERT_STR_EQ(user_of(reqs, i), users[i]);
    cJSON_Delete(reqs);
    rt_down();
}

TEST(token_bucket_paces_requests_in_order)
{
    NEED_FAKE();
    rt_up();
    llm_provider_opts o = fake_opts();
    o.rate_per_s = 5; /* one request every 200 ms */
    o.burst = 1;
    rt_ref p = llm_provider_start(cx, &o);
    char user[16];
    for (uint64_t t = 1; t <= 5; t++) {
        snprintf(user, sizeof(user), "r%d", (int)t);
        ask(p, t, user, false);
    }
    for (uint64_t t = 1; t <= 5; t++)
        ASSERT_EQ(wait_result(t)->err, 0);
    cJSON *reqs = received();
    ASSERT_EQ(cJSON_GetArraySize(reqs), 5);
    for (int i = 0; i < 5; i++) {
        snprintf(user, sizeof(user), "r%d", i + 1);
        ASSERT_STR_EQ(user_of(reqs, i), user); /* FIFO */
        if (i)
            ASSERT_GE(time_of(reqs, i), time_of(reqs, i - 1));
    }
    /* 4 tokens at 200 ms: at least ~0.8 s from first to last (lower bound only) */
    ASSERT_GE((time_of(reqs, 4) - time_of(reqs, 0)) * 1000, 550);
    cJSON_Delete(reqs);
    llm_provider_stats s = stats_of(p);
    ASSERT_EQ(s.attempts, 5);
    ASSERT_EQ(s.succeeded, 5);
    rt_down();
}

TEST(rate_limit_storm_pauses_the_whole_provider)
{
    NEED_FAKE();
    rt_up();
    script("[{\"status\": 429, \"headers\": {\"Retry-After\": \"2\"}, \"body\": "
           "\"{\\\"error\\\": {\\\"message\\\": \\\"Rate limit exceeded\\\", \\\"code\\\": "
           "429}}\"}]");
    llm_provider_opts o = fake_opts();
    o.max_inflight = 8;
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "first", false);
    WAIT_UNTIL(recs[1].nstatus == 1); /* the 429 arrived: the provider is paused */
    for (uint64_t t = 2; t <= 6; t++)
        ask(p, t, "later", t % 2 == 0);
    llm_provider_stats s = stats_of(p);
    ASSERT_EQ(s.queued_main, 5); /* held in the provider, none failed, none sent */
    ASSERT_EQ(s.inflight, 0);
    ASSERT_EQ(s.backoff, 1);
    ASSERT_GT(s.paused_for_ms, 0);
    ASSERT_LE(s.paused_for_ms, 2000);
    ASSERT_GT(s.paused_until_unix_ms, 0);
    for (uint64_t t = 1; t <= 6; t++)
        ASSERT_EQ(wait_result(t)->err, 0);
    pthread_mutex_lock(&mu);
    for (int t = 1; t <= 6; t++) {
        ASSERT_EQ(recs[t].nstatus, 1); /* each requester told once */
        ASSERT_STR_CONTAINS(recs[t].status, "Waiting for the provider (rate limited)");
    }
    ASSERT_STR_CONTAINS(recs[2].status, "continuing in 2 s");
    pthread_mutex_unlock(&mu);
    cJSON *reqs = received();
    ASSERT_EQ(cJSON_GetArraySize(reqs), 7);
    for (int i = 1; i < 7; i++)
        ASSERT_GE((time_of(reqs, i) - time_of(reqs, 0)) * 1000, 1900);
    cJSON_Delete(reqs);
    s = stats_of(p);
    ASSERT_EQ(s.pauses, 1);
    ASSERT_EQ(s.rate_limited, 1);
    ASSERT_EQ(s.paused_for_ms, 0);
    rt_down();
}

TEST(full_queue_fails_fast)
{
    NEED_FAKE();
    rt_up();
    script("[{\"delay_ms\": 1500, \"content\": \"slow\"}]");
    llm_provider_opts o = fake_opts();
    o.max_inflight = 1;
    o.queue_max = 2;
    rt_ref p = llm_provider_start(cx, &o);
    for (uint64_t t = 1; t <= 4; t++)
        ask(p, t, "hi", false);
    rec *r = wait_result(4);
    ASSERT_EQ(r->err, -EAGAIN);
    ASSERT_EQ(r->kind, LLM_ERR_OVERLOADED);
    ASSERT_STR_CONTAINS(r->errmsg, "the provider queue is full (2 requests waiting for fake)");
    ASSERT_FALSE(is_done(1));
    for (uint64_t t = 1; t <= 3; t++)
        ASSERT_EQ(wait_result(t)->err, 0);
    ASSERT_EQ(stats_of(p).rejected, 1);
    rt_down();
}

/* ================================================================ bad input */

TEST(bad_requests_and_options_get_clear_errors)
{
    rt_up();
    llm_provider_opts o = {.name = "nourl", .model = "m"};
    rt_ref nourl = llm_provider_start(cx, &o);
    ask(nourl, 1, "hi", false);
    o = (llm_provider_opts){.name = "nomodel", .base_url = "http://127.0.0.1:1/v1"};
    rt_ref nomodel = llm_provider_start(cx, &o);
    ask(nomodel, 2, "hi", true);
    ask_with(nomodel, 3, "hi", (ask_opts){.model = "m", .no_messages = true});
    o = (llm_provider_opts){
        .name = "ftp", .base_url = "ftp://127.0.0.1/v1", .model = "m", .max_retries = 3};
    rt_ref ftp = llm_provider_start(cx, &o);
    ask(ftp, 4, "hi", false);
    rt_send(cx, ftp, rt_timeout_new(12345)); /* stray messages are ignored */
    rt_msg *odd = rt_msg_new(RT_MSG_TYPE(RT_MSG_MODULE_TEST, 99), sizeof(rt_msg));
    rt_send(cx, ftp, odd);

    rec *r = wait_result(1);
    ASSERT_EQ(r->err, -EINVAL);
    ASSERT_EQ(r->kind, LLM_ERR_BAD_REQUEST);
    ASSERT_STR_CONTAINS(r->errmsg, "no base URL is configured");
    r = wait_result(2);
    ASSERT_STR_CONTAINS(r->errmsg, "no model is configured");
    r = wait_result(3);
    ASSERT_STR_CONTAINS(r->errmsg, "the request has no messages");
    r = wait_result(4);
    ASSERT_EQ(r->err, -EINVAL);
    ASSERT_EQ(r->kind, LLM_ERR_BAD_REQUEST);
    ASSERT_EQ(r->attempts, 1); /* not retried */
    ASSERT_STR_CONTAINS(r->errmsg, "the request to ftp could not be made");
    ask(ftp, 5, "still alive?", false);
    ASSERT_EQ(wait_result(5)->attempts, 1);
    ASSERT_EQ(stats_of(nourl).rejected, 1);
    rt_down();
}

TEST(connection_refused_is_retried_then_reported)
{
    /* port 1 on the loopback: nothing listens there */
    rt_up();
    llm_provider_opts o = {.name = "down",
                           .base_url = "http://127.0.0.1:1/v1",
                           .model = "m",
                           .max_retries = 1,
                           .backoff_base_ms = 5};
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "hi", true);
    rec *r = wait_result(1);
    ASSERT_EQ(r->err, -ECONNREFUSED);
    ASSERT_EQ(r->kind, LLM_ERR_NETWORK);
    ASSERT_EQ(r->attempts, 2);
    ASSERT_EQ(r->nstatus, 1);
    ASSERT_STR_CONTAINS(r->status, "(connection failed), retrying in");
    ASSERT_STR_CONTAINS(r->errmsg, "could not reach down");
    ASSERT_STR_CONTAINS(r->errmsg, "gave up after 2 attempts");
    rt_down();
}

/* ================================================================ logs */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static rt_buf logbuf;

static void log_sink(const char *line, size_t len, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&log_mu);
    (void)rt_buf_append(&logbuf, line, len); /* capped: a full buffer stops growing */
    pthread_mutex_unlock(&log_mu);
}

TEST(the_api_key_never_reaches_the_logs)
{
    NEED_FAKE();
    rt_buf_init(&logbuf, 8u << 20);
    rt_log_capture(log_sink, NULL);
    rt_log_set_level(RT_LOG_TRACE);
    rt_log_set_debug("all");
    rt_up();
    script("[{\"status\": 500, \"body\": \"{\\\"error\\\": {\\\"message\\\": \\\"bad key " KEY
           "\\\"}}\"}, {\"content\": \"fine\"}, {\"status\": 401, \"body\": \"{\\\"error\\\": "
           "{\\\"message\\\": \\\"Invalid API key " KEY "\\\"}}\"}]");
    llm_provider_opts o = fake_opts();
    rt_ref p = llm_provider_start(cx, &o);
    ask(p, 1, "hi", true);
    ASSERT_EQ(wait_result(1)->err, 0);
    ask(p, 2, "hi", false);
    ASSERT_EQ(wait_result(2)->kind, LLM_ERR_AUTH);
    ASSERT_NULL(strstr(recs[2].errmsg, KEY));
    settle();
    rt_down();
    rt_log_capture(NULL, NULL);
    const char *logs = rt_buf_cstr(&logbuf);
    ASSERT_STR_CONTAINS(logs, "provider started provider=fake"); /* the capture works */
    ASSERT_STR_CONTAINS(logs, "retrying provider=fake kind=server_error status=500");
    ASSERT_NULL(strstr(logs, KEY));
    ASSERT_NULL(strstr(logs, "SECRET"));
    ASSERT_NULL(strstr(logs, "Bearer"));
    rt_buf_fini(&logbuf);
}

/* ================================================================ the real llama.cpp server */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &len));
    close(fd);
    return ntohs(a.sin_port);
}

/* Why the llama.cpp peer cannot run here, or NULL when it can be tried. */
static const char *llama_missing(const char *peers, const char *sid)
{
    static char why[1200];
    struct stat st;
    char path[1024];
    snprintf(path, sizeof(path), "%s/start.sh", peers);
    if (stat(path, &st) != 0)
        return snprintf(why, sizeof(why), "%s not found (set HERMES_PEERS_LLM)", path), why;
    snprintf(path, sizeof(path), "%s/usr/bin/llama-server", sid);
    if (stat(path, &st) != 0)
        return snprintf(why, sizeof(why),
                        "%s not found: the peer is not installed (run %s/install.sh as root)", path,
                        peers),
               why;
    if (geteuid() != 0)
        return "starting llama-server needs root (chroot)";
    return NULL;
}

/* A watchdog that runs stop.sh when the write end of its pipe closes — at the end of the
 * test or when the test dies — so llama-server never outlives it. */
static pid_t llama_watchdog(const char *peers, int *wfd)
{
    int pfd[2];
    ASSERT_OK(pipe2(pfd, O_CLOEXEC));
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        close(pfd[1]);
        char c;
        for (;;) { /* nothing is ever written: this waits for EOF */
            ssize_t n = read(pfd[0], &c, 1);
            if (n == 0 || (n < 0 && errno != EINTR))
                break;
        }
        char stop[1024];
        snprintf(stop, sizeof(stop), "%s/stop.sh", peers);
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execl("/bin/bash", "bash", stop, (char *)NULL);
        _exit(127);
    }
    close(pfd[0]);
    *wfd = pfd[1];
    return pid;
}

static void llama_check(const rec *r, bool stream)
{
    if (r->err)
        TEST_FAIL_("llama-server request failed: %s", r->errmsg);
    ASSERT_STR_EQ(jstr(r->message, "role"), "assistant");
    ASSERT(cJSON_IsString(cJSON_GetObjectItem(r->message, "content")));
    ASSERT_NOT_NULL(r->finish);
    ASSERT(!strcmp(r->finish, "stop") || !strcmp(r->finish, "length"));
    if (stream)
        ASSERT_STR_EQ(rt_buf_cstr(&r->content), content_of(r)); /* deltas add up */
    else
        ASSERT_GT(r->usage.prompt_tokens, 0);
}

TEST(llama_server_end_to_end)
{
    const char *peers =
        getenv("HERMES_PEERS_LLM") ? getenv("HERMES_PEERS_LLM") : "/work/shared/peers/llm";
    const char *sid = getenv("SID_ROOT") ? getenv("SID_ROOT") : "/opt/peers/sid-root";
    const char *why = llama_missing(peers, sid);
    if (why) {
        printf("SKIP llama_server_end_to_end: %s\n", why);
        return;
    }
    const char *dir = test_tmpdir();
    char run[600], log[600], port[16], start[1024];
    snprintf(run, sizeof(run), "%s/run", dir);
    snprintf(log, sizeof(log), "%s/llama.log", dir);
    snprintf(port, sizeof(port), "%d", free_port());
    snprintf(start, sizeof(start), "%s/start.sh", peers);
    setenv("LLM_RUN", run, 1);
    setenv("LLM_PORT", port, 1);
    setenv("LLM_CTX", "4096", 1);
    setenv("LLM_NPREDICT", "16", 1);
    int wfd = -1;
    pid_t dog = llama_watchdog(peers, &wfd);
    const char *argv[] = {"/bin/bash", start, NULL};
    if (run_wait(argv, log) != 0) {
        dump_file(log);
        close(wfd);
        waitpid(dog, NULL, 0);
        printf("SKIP llama_server_end_to_end: llama-server did not start (log above)\n");
        return;
    }
    rt_up();
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%s/v1", port);
    llm_provider_opts o = {.name = "llama",
                           .base_url = url,
                           .model = "tiny-random",
                           .max_retries = 1,
                           .timeout_ms = 60000};
    rt_ref p = llm_provider_start(cx, &o);
    ask_with(p, 1, "Say hello.", (ask_opts){.stream = true, .max_tokens = 8});
    llama_check(wait_result(1), true);
    ask_with(p, 2, "Say hello.", (ask_opts){.max_tokens = 8});
    llama_check(wait_result(2), false);
    printf("llama-server: streamed %d deltas, %lld completion tokens\n", recs[1].ndeltas,
           (long long)recs[2].usage.completion_tokens);
    rt_down();
    close(wfd); /* the watchdog runs stop.sh */
    waitpid(dog, NULL, 0);
}
