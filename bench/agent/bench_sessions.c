/*
 * bench_sessions — the agent's own costs (issue 4): turn overhead with a zero-latency model
 * (everything but the LLM: the session's state machine, the system prompt, persistence of
 * every message to a real state.db with group commit), and memory per idle and per active
 * session.
 *
 *   turns        TURNS sequential turns in ten-turn conversations, driven by an actor (send
 *                the next input when DONE arrives), then one 200-turn conversation: µs per turn
 *   concurrent   SESSIONS sessions each doing ROUNDS turns at once: turns/s
 *   idle         N sessions that answered one turn and sit idle: RSS bytes per session
 *   active       N sessions each waiting on the model mid-turn: RSS bytes per session
 *
 * Prints RESULT lines (bench/README.md's format). Knobs: BENCH_SESSIONS (10000),
 * BENCH_TURNS (2000), HERMES_WORKERS. Bounded: every phase has a fixed amount of work and a
 * 120 s deadline.
 */
#include "ag_session.h"
#include "llm_provider.h"
#include "rt_alloc.h"
#include "rt_sched.h"
#include "st_store.h"
#include "tool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ the model */

static _Atomic bool hold; /* active phase: keep requests unanswered */
static rt_ref *held_to;
static uint64_t *held_tag;
static _Atomic size_t nheld;

static void model_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type != LLM_MSG_REQUEST)
        return;
    llm_msg_request *q = (llm_msg_request *)m;
    if (atomic_load(&hold)) {
        size_t i = atomic_fetch_add(&nheld, 1);
        held_to[i] = q->reply_to;
        held_tag[i] = q->tag;
        return;
    }
    llm_msg_result *r = llm_result_msg_new(q->tag);
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", "Sure - here is a short answer to your question.");
    r->result.message = msg;
    r->result.finish_reason = rt_xstrdup("stop");
    r->result.usage.prompt_tokens = 120;
    r->result.usage.completion_tokens = 12;
    rt_send(cx, q->reply_to, &r->hdr);
}
static const rt_actor_type model_type = {"model", model_behave, NULL, 0};

/* ------------------------------------------------------------- drivers */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static size_t finished; /* drivers done */

typedef struct driver {
    rt_ref session;
    int left;
} driver;

static void driver_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    driver *d = state;
    if (m->type != AG_MSG_DONE)
        return;
    if (--d->left > 0) {
        rt_send(cx, d->session, ag_input_new("What is the capital of France?", rt_self(cx), 1));
        return;
    }
    pthread_mutex_lock(&lock);
    finished++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}
static const rt_actor_type driver_type = {"driver", driver_behave, NULL, sizeof(driver)};

/* ------------------------------------------------------------- helpers */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static long env_num(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

static void wait_finished(size_t n)
{
    double deadline = now_s() + 120;
    pthread_mutex_lock(&lock);
    while (finished < n) {
        if (now_s() > deadline) {
            fprintf(stderr, "bench_sessions: timed out (%zu of %zu)\n", finished, n);
            exit(1);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&cond, &lock, &ts);
    }
    pthread_mutex_unlock(&lock);
}

typedef struct world {
    rt_runtime *rt;
    rt_ctx *cx;
    rt_ref model, prompts;
    st_store_refs store;
    tool_env *env;
} world;

static rt_ref new_session(world *w)
{
    ag_session_opts o = {.source = "api_server",
                         .provider = w->model,
                         .store = w->store.writer,
                         .store_reader = w->store.readers[0],
                         .prompt_service = w->prompts,
                         .env = w->env,
                         .stream = false};
    return ag_session_spawn(w->cx, &o, NULL);
}

/* Start n sessions, each with a driver doing rounds turns; wait for all. Seconds. */
static double run(world *w, size_t n, int rounds, rt_ref *keep)
{
    finished = 0;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        rt_ref s = new_session(w);
        if (keep)
            keep[i] = s;
        driver d = {.session = s, .left = rounds};
        rt_ref dr = rt_spawn(w->cx, &driver_type, &d, NULL);
        rt_send(w->cx, s, ag_input_new("What is the capital of France?", dr, 1));
    }
    wait_finished(n);
    return now_s() - t0;
}

int main(void)
{
    long sessions = env_num("BENCH_SESSIONS", 10000);
    long turns = env_num("BENCH_TURNS", 2000);
    char dir[] = "/tmp/hermes-bench-sessions-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    setenv("HERMES_HOME", dir, 1);
    world w = {0};
    rt_options ro = {.workers = (int)env_num("HERMES_WORKERS", 0)};
    w.rt = rt_runtime_new(&ro);
    w.cx = rt_ctx_external(w.rt);
    char path[512], err[256];
    snprintf(path, sizeof(path), "%s/state.db", dir);
    st_store_opts so = {.path = path, .readers = 1};
    if (st_store_start(w.cx, &so, &w.store, err, sizeof(err)) != 0) {
        fprintf(stderr, "store: %s\n", err);
        return 1;
    }
    w.model = rt_spawn(w.cx, &model_type, NULL, NULL);
    w.prompts = ag_prompt_service_start(w.cx);
    w.env = tool_env_new();
    w.env->hermes_home = rt_xstrdup(dir);
    w.env->platform = rt_xstrdup("api_server");
    held_to = rt_xcalloc((size_t)sessions, sizeof(*held_to));
    held_tag = rt_xcalloc((size_t)sessions, sizeof(*held_tag));

    /* warm up: the prompt service, SQLite's caches, the allocator */
    run(&w, 50, 5, NULL);

    /* Sequential turns in ten-turn conversations (a fresh session every ten turns): the cost
     * a user's message pays in the agent, not counting the model. A conversation's every turn
     * sends its whole history to the model, so the cost grows with its length: the second
     * line is a 200-turn conversation. */
    double t = 0;
    long convs = turns / 10 > 0 ? turns / 10 : 1;
    for (long i = 0; i < convs; i++)
        t += run(&w, 1, 10, NULL);
    printf("RESULT bench=turn_overhead impl=hermes conversation_turns=10 turns=%ld "
           "us_per_turn=%.1f\n",
           convs * 10, t * 1e6 / (double)(convs * 10));
    t = run(&w, 1, 200, NULL);
    printf("RESULT bench=turn_overhead impl=hermes conversation_turns=200 turns=200 "
           "us_per_turn=%.1f\n",
           t * 1e6 / 200.0);

    size_t conc = 1000;
    int rounds = 10;
    t = run(&w, conc, rounds, NULL);
    printf("RESULT bench=concurrent_turns impl=hermes sessions=%zu turns=%zu turns_per_s=%.0f\n",
           conc, conc * (size_t)rounds, (double)conc * rounds / t);

    (void)rt_wait_quiescent(w.rt, 60000);
    long before = rss_kb();
    rt_ref *keep = rt_xcalloc((size_t)sessions, sizeof(*keep));
    run(&w, (size_t)sessions, 1, keep);
    (void)rt_wait_quiescent(w.rt, 60000);
    long after = rss_kb();
    printf("RESULT bench=idle_sessions impl=hermes sessions=%ld bytes_per_session=%.0f "
           "rss_kb=%ld\n",
           sessions, (double)(after - before) * 1024 / (double)sessions, after);

    atomic_store(&hold, true);
    before = rss_kb();
    finished = 0;
    for (long i = 0; i < sessions; i++) {
        rt_ref s = new_session(&w);
        rt_send(w.cx, s, ag_input_new("What is the capital of France?", 0, 1));
    }
    double deadline = now_s() + 120;
    while (atomic_load(&nheld) < (size_t)sessions && now_s() < deadline)
        usleep(10000);
    (void)rt_wait_quiescent(w.rt, 60000);
    after = rss_kb();
    printf("RESULT bench=active_sessions impl=hermes sessions=%ld bytes_per_session=%.0f "
           "rss_kb=%ld\n",
           sessions, (double)(after - before) * 1024 / (double)sessions, after);
    fflush(stdout);
    _exit(0); /* thousands of sessions hold model requests: skip the orderly teardown */
}
