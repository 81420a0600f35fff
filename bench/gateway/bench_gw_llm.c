/*
 * bench_gw_llm — a fast scripted OpenAI-compatible LLM for the gateway benchmark, on our own
 * HTTP server (rt_httpd), so the real provider actor and HTTP client are in the measured path.
 *
 *   POST <anything>/chat/completions  answered after --latency-ms (0: at once) with --tokens
 *                                     tokens: Server-Sent Events (a role chunk, one chunk per
 *                                     token, a final chunk with finish_reason and usage, then
 *                                     "data: [DONE]") when the body asks for "stream":true,
 *                                     else one chat.completion JSON
 *   GET <anything>/models             one model, "bench-model"
 *   anything else                     404
 *
 * The answers are built once at start-up and copied out, so the fake costs as little as
 * possible next to the gateway it feeds; all of a stream is written at once (a model with
 * zero latency between tokens).
 *
 * Usage: bench_gw_llm [--port P] [--latency-ms L] [--tokens T] [--seconds S] [--max-conns N]
 * Binds 127.0.0.1:P (0: ephemeral), prints "READY port=P pid=PID", serves until SIGTERM/SIGINT
 * or S seconds (default 600, a hard bound), then prints "SERVED requests=N" and exits.
 *
 * Threads: main() starts and stops; the handler is an actor on the workers.
 */
#include "bench_common.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_httpd.h"
#include "rt_lws.h"
#include "rt_timer.h"
#include "rt_util.h"

#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>

enum { BL_MSG_FIRE = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 0x611) };

typedef struct bl_fire {
    rt_msg hdr;
    uint64_t req;
    bool stream;
} bl_fire;

static struct {
    int64_t latency_ms;
    char *json; /* the non-streamed answer */
    size_t json_len;
    char *sse; /* the whole stream */
    size_t sse_len;
    _Atomic uint64_t requests;
} g;

static const char *const json_hdrs[] = {"Content-Type: application/json", NULL};
static const char *const sse_hdrs[] = {"Content-Type: text/event-stream", "Cache-Control: no-cache",
                                       NULL};

static void answer(rt_ctx *cx, uint64_t req, bool stream)
{
    if (!stream) {
        (void)rt_httpd_reply(cx, req, 200, json_hdrs, g.json, g.json_len);
        return;
    }
    if (rt_httpd_stream_begin(cx, req, 200, sse_hdrs) == 0) {
        (void)rt_httpd_stream_write(cx, req, g.sse, g.sse_len);
        (void)rt_httpd_stream_end(cx, req);
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void on_request(rt_ctx *cx, rt_httpd_msg_request *m)
{
    static const char *const models =
        "{\"object\":\"list\",\"data\":[{\"id\":\"bench-model\",\"object\":\"model\","
        "\"owned_by\":\"bench\"}]}";
    if (!strcmp(m->method, "GET") && ends_with(m->path, "/models")) {
        (void)rt_httpd_reply(cx, m->req, 200, json_hdrs, models, strlen(models));
        return;
    }
    if (strcmp(m->method, "POST") != 0 || !ends_with(m->path, "/chat/completions")) {
        (void)rt_httpd_reply(cx, m->req, 404, json_hdrs, "{\"error\":{\"message\":\"not found\"}}",
                             33);
        return;
    }
    atomic_fetch_add(&g.requests, 1);
    bool stream = strstr(m->body, "\"stream\":true") || strstr(m->body, "\"stream\": true");
    if (g.latency_ms <= 0) {
        answer(cx, m->req, stream);
        return;
    }
    bl_fire *f = RT_MSG_NEW(bl_fire, BL_MSG_FIRE);
    f->req = m->req;
    f->stream = stream;
    (void)rt_send_after(cx, rt_self(cx), &f->hdr, g.latency_ms);
}

static void llm_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type == RT_HTTPD_MSG_REQUEST)
        on_request(cx, (rt_httpd_msg_request *)m);
    else if (m->type == BL_MSG_FIRE)
        answer(cx, ((bl_fire *)m)->req, ((bl_fire *)m)->stream);
    /* RT_HTTPD_MSG_GONE: the late answer is dropped by rt_httpd */
}

static const rt_actor_type llm_type = {"bench_llm", llm_behave, NULL, 0};

static void build_answers(int tokens)
{
    static const char *const words[] = {"The ",   "gateway ", "answered ", "this ",  "turn ",
                                        "from ",  "a ",       "scripted ", "model ", "with ",
                                        "fixed ", "tokens ",  "so ",       "that ",  "only ",
                                        "our ",   "own ",     "cost ",     "shows. "};
    size_t nw = sizeof(words) / sizeof(words[0]);
    static const char head[] =
        "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
        "\"model\":\"bench-model\",\"choices\":[{\"index\":0,";
    rt_buf content, sse;
    rt_buf_init(&content, (size_t)1 << 30);
    rt_buf_init(&sse, (size_t)1 << 30);
    rt_buf_printf(&sse,
                  "data: %s\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                  "\"finish_reason\":null}]}\n\n",
                  head);
    for (int i = 0; i < tokens; i++) {
        const char *w = words[(size_t)i % nw];
        rt_buf_append_str(&content, w);
        rt_buf_printf(&sse, "data: %s\"delta\":{\"content\":\"%s\"},\"finish_reason\":null}]}\n\n",
                      head, w);
    }
    if (!tokens)
        rt_buf_append_str(&content, "ok");
    rt_buf_printf(&sse,
                  "data: %s\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":"
                  "120,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\ndata: [DONE]\n\n",
                  head, tokens, 120 + tokens);
    g.sse = rt_buf_steal(&sse, &g.sse_len);
    rt_buf json;
    rt_buf_init(&json, (size_t)1 << 30);
    rt_buf_printf(
        &json,
        "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"created\":1700000000,"
        "\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
        "\"assistant\",\"content\":\"%s\"},\"finish_reason\":\"stop\"}],\"usage\":{"
        "\"prompt_tokens\":120,\"completion_tokens\":%d,\"total_tokens\":%d}}",
        rt_buf_cstr(&content), tokens, 120 + tokens);
    g.json = rt_buf_steal(&json, &g.json_len);
    rt_buf_fini(&content);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_gw_llm [--port P] [--latency-ms L] [--tokens T] [--seconds S] "
                    "[--max-conns N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int64_t port = 0, tokens = 8, seconds = 600, max_conns = 20000;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            usage();
        const char *a = argv[i], *v = argv[i + 1];
        int rc = 0;
        if (!strcmp(a, "--port"))
            rc = rt_parse_i64(v, 0, 65535, &port);
        else if (!strcmp(a, "--latency-ms"))
            rc = rt_parse_i64(v, 0, 3600000, &g.latency_ms);
        else if (!strcmp(a, "--tokens"))
            rc = rt_parse_i64(v, 0, 100000, &tokens);
        else if (!strcmp(a, "--seconds"))
            rc = rt_parse_i64(v, 1, 86400, &seconds);
        else if (!strcmp(a, "--max-conns"))
            rc = rt_parse_i64(v, 1, 1000000, &max_conns);
        else
            usage();
        if (rc)
            usage();
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    build_answers((int)tokens);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts: all inherit it */
    rt_runtime *rt = bench_runtime_new(0);
    int err = 0;
    rt_lws *l = rt_lws_start(rt, &err);
    if (!l) {
        fprintf(stderr, "bench_gw_llm: lws: %s\n", rt_strerror(err));
        return 1;
    }
    rt_ctx *cx = rt_ctx_external(rt);
    rt_httpd_route route = {"/", rt_spawn(cx, &llm_type, NULL, NULL)};
    rt_httpd_opts o = {.port = (int)port,
                       .routes = &route,
                       .nroutes = 1,
                       .max_conns = (size_t)max_conns,
                       .request_timeout_ms = g.latency_ms + 60000};
    rt_httpd *h = rt_httpd_start(rt, &o, &err);
    if (!h) {
        fprintf(stderr, "bench_gw_llm: %s\n", rt_strerror(err));
        return 1;
    }
    printf("READY port=%d pid=%d latency_ms=%" PRId64 " tokens=%" PRId64 "\n", rt_httpd_port(h),
           (int)getpid(), g.latency_ms, tokens);
    fflush(stdout);
    struct timespec ts = {(time_t)seconds, 0};
    sigtimedwait(&set, NULL, &ts);
    rt_httpd_stop(h, 1000);
    rt_lws_stop(l);
    rt_shutdown(rt, RT_SHUTDOWN_DRAIN, 5000);
    rt_runtime_free(rt);
    printf("SERVED requests=%" PRIu64 "\n", atomic_load(&g.requests));
    rt_free(g.json);
    rt_free(g.sse);
    return 0;
}
