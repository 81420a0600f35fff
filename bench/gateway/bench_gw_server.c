/*
 * bench_gw_server — the gateway under test for bench/gateway/run.sh.
 *
 * One process wired the way `hermes gateway run` wires it (cli/cli_gateway.c): the real host
 * (config, runtime, reactor, lws, the state.db store, the prompt builder), the real gateway
 * (router, chat actors, agent sessions; every message persisted) and the real API server
 * with a key on 127.0.0.1, in front of one of two LLMs:
 *
 *   --llm inproc   an in-process scripted model actor in place of the provider: zero latency
 *                  (or --latency-ms), --tokens streamed deltas; --tool-mix PCT of the turns
 *                  first get (at once) a call of the agent's "todo" tool, then after the tool
 *                  ran the answer. Isolates the gateway.
 *   --llm URL      the real provider actor and HTTP client against an OpenAI-compatible
 *                  server at URL (bench_gw_llm): the path users run.
 *
 * A second, in-process adapter (platform "bench") drives load without HTTP and measures
 * interrupts; it needs the in-process model (its timestamps come from the model):
 *
 *   drive N SECS [THINK_MS]
 *                  N chats, each sending its next message as soon as the previous turn ended,
 *                  or after a think time drawn evenly from [0, THINK_MS) (the first messages
 *                  spread evenly over the model's latency), for SECS seconds (the first turn
 *                  of every chat is not recorded); added latency = turn end - message sent -
 *                  the model's latency. Without a think time, closed-loop users of a model
 *                  with a fixed latency fall into step: an answer a few ms late delays that
 *                  user's next message by as much, and within seconds the messages come in
 *                  bursts of up to twice the mean rate (docs/capacity.md).
 *   probe N        N interrupts, one at a time, half /stop (urgent lane) and half a new message
 *                  (normal lane) into a chat whose turn the model holds; latency = event sent by
 *                  the adapter → LLM_MSG_CANCEL at the model ("cancel"), and → the interrupted
 *                  turn's GW_OUT_TURN_END at the adapter ("end").
 *
 * Control on stdin, one command per line; answers on stdout:
 *   rss                  RSS kb=<VmRSS>
 *   stats                STATS model_requests=... actors=... timers_pending=...
 *   heap                 HEAP in_use=<bytes malloc has handed out> rss_kb=... schema_bytes=<what
 *                        one session's parsed tool schemas take> schema_tools=<how many>
 *                        system_prompt_bytes=<its length in the first model request>
 *   drive N SECS [THINK_MS]  OK drive (then runs in the background)
 *   drive_result         RESULT bench=gw_drive ...   (waits for the drive to end), then
 *                        WINDOWS bench=gw_drive window_s=5 p99_ms=a,b,... burst=x,y,...: the
 *                        p99 of the turns sent in each 5 s and how bursty the sends were
 *   probe N              RESULT bench=gw_interrupt ...
 *   quit, or EOF         graceful stop, then PERSISTED sessions=... messages=...
 *
 * Usage: bench_gw_server --home DIR [--llm inproc|URL] [--latency-ms L] [--tokens T]
 *        [--tool-mix PCT] [--workers W] [--key K] [--max-inflight N] [--provider-inflight N]
 *        [--seconds S] [--chat-idle-ms MS]
 * Prints "READY port=P pid=PID" once the API server listens. --seconds (default 600) is a hard
 * bound: the server stops by itself then. Logs go to stderr.
 *
 * Threads: main() is the controlling thread (commands, the probe); the model and the bench
 * adapter are actors on the workers.
 */
#include "bench_common.h"

#include "api_server.h"
#include "gw.h"
#include "hm_config.h"
#include "hm_host.h"
#include "llm_provider.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_lws.h"
#include "rt_map.h"
#include "rt_timer.h"
#include "rt_util.h"
#include "tool.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define BG_KEY_DEFAULT  "bench-key-0123456789abcdef"
#define BG_SLOW_HOLD_MS 60000 /* a held ("slow:") request is answered after this at the latest */
#define BG_KICK_SLICE   500   /* drive: first messages sent per behaviour run */
#define BG_MAX_SAMPLES  (4u << 20)
#define BG_WINDOW_S     5  /* the drive's p99 and burstiness per window this long */
#define BG_SLOT_MS      10 /* sends are counted per slot this long: how bursty the load is */

enum {
    BG_MSG_FIRE = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 0x601),        /* bg_fire: a delayed answer */
    BG_MSG_DRIVE_KICK = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 0x602),  /* rt_msg: send first messages */
    BG_MSG_DRIVE_START = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 0x603), /* bg_fire: a chat's next one */
    BG_TAG_SHUTDOWN = 77,
};

static int64_t now_ns(void)
{
    return bench_now_ns();
}

/* ================================================================ shared state */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;

static struct {
    int64_t latency_ms;
    int64_t tool_mix; /* percent of turns whose first model call asks for a tool */
    int tokens;
    char **tok;      /* the reply, one token each */
    char *reply;     /* the tokens joined */
    size_t *tok_len; /* strlen of each token */
    _Atomic uint64_t requests, cancels, answered, held;
    _Atomic uint64_t system_len; /* the system prompt's length in the first request */
    _Atomic uint64_t tool_calls; /* tool calls asked for (--tool-mix) */
    bool estimate;               /* --context-length: report the prompt's size, not 120 */
} g_model;

/* The probe's view (under g_lock). */
static struct {
    int64_t slow_seen_ns; /* a "slow:" request reached the model */
    int64_t cancel_ns;    /* LLM_MSG_CANCEL for a held request reached the model */
    uint64_t turn_ends;   /* GW_OUT_TURN_END for probe chats */
    int last_outcome;     /* of the latest one */
    int64_t last_end_ns;  /* when it arrived */
    bool shutdown_done;   /* the gateway acknowledged GW_MSG_SHUTDOWN */
} g_probe;

/* The drive (its samples are written by the adapter actor, read by main after done). */
typedef struct bg_drive {
    int n;
    int64_t start_ns, warm_ns, end_ns, latency_ns;
    int64_t think_ms; /* a user's pause before the next message: even in [0, think_ms) */
    int64_t *sent_ns;
    uint32_t *round;
    int kicked;
    int active;
    int64_t *samples;
    int32_t *sample_s; /* each sample's send time: whole seconds after the window opened */
    size_t nsamples;
    uint64_t window_turns; /* turns that ended inside the measured window, whenever sent */
    uint64_t turns, failures;
    uint32_t *slot_sends; /* messages sent in each BG_SLOT_MS since the start */
    size_t nslots;
    bool running, done;
} bg_drive;

static bg_drive g_drive;

static void signal_all(void)
{
    pthread_cond_broadcast(&g_cond);
}

/* Wait on g_cond (g_lock held) until pred() or the deadline (monotonic ns); false on timeout. */
static bool wait_until(bool (*pred)(void *), void *arg, int64_t deadline_ns)
{
    while (!pred(arg)) {
        int64_t left = deadline_ns - now_ns();
        if (left <= 0)
            return false;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t step = left < 50000000 ? left : 50000000; /* re-check every 50 ms */
        ts.tv_nsec += (long)step;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        (void)pthread_cond_timedwait(&g_cond, &g_lock, &ts);
    }
    return true;
}

/* ================================================================ the model */

typedef struct bg_pend {
    rt_ref to;
    uint64_t tag;
    uint64_t timer;
    bool stream;
    bool slow;
    int64_t prompt_tokens;
} bg_pend;

typedef struct bg_fire {
    rt_msg hdr;
    uint64_t key;
} bg_fire;

typedef struct bg_model {
    rt_map pend; /* key(to, tag) -> bg_pend */
} bg_model;

static uint64_t pend_key(rt_ref to, uint64_t tag)
{
    uint64_t x = to * 0x9E3779B97F4A7C15ull ^ (tag + 0x632BE59BD9B4E019ull);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return x ? x : 1;
}

/* The prompt's size in tokens as a provider would count it, about 4 characters each (only
 * with --context-length: then the agent's context compression sees real sizes). */
static int64_t prompt_tokens_of(const cJSON *messages)
{
    if (!g_model.estimate)
        return 120;
    size_t chars = 0;
    int n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        chars += cJSON_IsString(c) ? strlen(c->valuestring) : 0;
        n++;
    }
    return (int64_t)(chars / 4) + 4 * n;
}

static void model_answer(rt_ctx *cx, rt_ref to, uint64_t tag, bool stream, int err,
                         int64_t prompt_tokens)
{
    llm_msg_result *r = llm_result_msg_new(tag);
    if (err) {
        r->err = err;
        r->errmsg = rt_xstrdup("cancelled");
        rt_send(cx, to, &r->hdr);
        return;
    }
    if (stream)
        for (int i = 0; i < g_model.tokens; i++)
            rt_send(cx, to,
                    llm_delta_new(tag, LLM_DELTA_CONTENT, g_model.tok[i], g_model.tok_len[i]));
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", g_model.reply);
    r->result.message = msg;
    r->result.finish_reason = rt_xstrdup("stop");
    r->result.usage.prompt_tokens = prompt_tokens > 0 ? prompt_tokens : 120;
    r->result.usage.completion_tokens = g_model.tokens;
    rt_send(cx, to, &r->hdr);
    atomic_fetch_add(&g_model.answered, 1);
}

/* Answer at once with one call of the agent's own "todo" tool (no I/O, no approval): the
 * agent runs it and calls the model again with the result. */
static void model_tool_call(rt_ctx *cx, rt_ref to, uint64_t tag)
{
    uint64_t n = atomic_fetch_add(&g_model.tool_calls, 1);
    char id[32];
    snprintf(id, sizeof(id), "call_bench_%" PRIu64, n);
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", "");
    cJSON *tcs = cJSON_AddArrayToObject(msg, "tool_calls");
    cJSON *tc = cJSON_CreateObject();
    cJSON_AddStringToObject(tc, "id", id);
    cJSON_AddStringToObject(tc, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(tc, "function");
    cJSON_AddStringToObject(fn, "name", "todo");
    cJSON_AddStringToObject(fn, "arguments",
                            "{\"todos\":[{\"id\":\"1\",\"content\":\"answer the bench\","
                            "\"status\":\"in_progress\"}],\"merge\":true}");
    cJSON_AddItemToArray(tcs, tc);
    llm_msg_result *r = llm_result_msg_new(tag);
    r->result.message = msg;
    r->result.finish_reason = rt_xstrdup("tool_calls");
    r->result.usage.prompt_tokens = 120;
    r->result.usage.completion_tokens = 20;
    rt_send(cx, to, &r->hdr);
}

static const char *last_role(const cJSON *messages)
{
    const cJSON *last = cJSON_GetArrayItem(messages, cJSON_GetArraySize(messages) - 1);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(last, "role");
    return cJSON_IsString(r) ? r->valuestring : "";
}

/* The last message's text decides: "slow:" is held until cancelled, "fast:" is answered at
 * once, anything else after the configured latency. */
static const char *last_text(const cJSON *messages)
{
    const cJSON *last = cJSON_GetArrayItem(messages, cJSON_GetArraySize(messages) - 1);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(last, "content");
    return cJSON_IsString(c) ? c->valuestring : "";
}

static void model_request(rt_ctx *cx, bg_model *ms, llm_msg_request *q)
{
    atomic_fetch_add(&g_model.requests, 1);
    if (!atomic_load(&g_model.system_len)) {
        const cJSON *first = cJSON_GetArrayItem(q->messages, 0);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(first, "role");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(first, "content");
        if (cJSON_IsString(role) && !strcmp(role->valuestring, "system") && cJSON_IsString(c))
            atomic_store(&g_model.system_len, strlen(c->valuestring));
    }
    const char *text = last_text(q->messages);
    uint64_t nreq = atomic_load(&g_model.requests);
    if (g_model.tool_mix > 0 && q->tools && !strcmp(last_role(q->messages), "user") &&
        strncmp(text, "slow:", 5) != 0 && (nreq * 37) % 100 < (uint64_t)g_model.tool_mix) {
        model_tool_call(cx, q->reply_to, q->tag);
        return;
    }
    bool slow = strncmp(text, "slow:", 5) == 0;
    int64_t delay = strncmp(text, "fast:", 5) == 0 ? 0 : g_model.latency_ms;
    if (slow)
        delay = BG_SLOW_HOLD_MS;
    if (delay <= 0) {
        model_answer(cx, q->reply_to, q->tag, q->stream, 0, prompt_tokens_of(q->messages));
        return;
    }
    uint64_t key = pend_key(q->reply_to, q->tag);
    if (rt_map_get(&ms->pend, key)) { /* a (to, tag) collision: do not hold it */
        model_answer(cx, q->reply_to, q->tag, q->stream, 0, prompt_tokens_of(q->messages));
        return;
    }
    bg_pend *p = rt_xcalloc(1, sizeof(*p));
    p->to = q->reply_to;
    p->tag = q->tag;
    p->stream = q->stream;
    p->slow = slow;
    p->prompt_tokens = prompt_tokens_of(q->messages);
    bg_fire *f = RT_MSG_NEW(bg_fire, BG_MSG_FIRE);
    f->key = key;
    p->timer = rt_send_after(cx, rt_self(cx), &f->hdr, delay);
    rt_map_put(&ms->pend, key, p);
    atomic_fetch_add(&g_model.held, 1);
    if (slow) {
        pthread_mutex_lock(&g_lock);
        g_probe.slow_seen_ns = now_ns();
        signal_all();
        pthread_mutex_unlock(&g_lock);
    }
}

static void model_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    bg_model *ms = state;
    if (m->type == LLM_MSG_REQUEST) {
        model_request(cx, ms, (llm_msg_request *)m);
    } else if (m->type == BG_MSG_FIRE) {
        bg_pend *p = rt_map_del(&ms->pend, ((bg_fire *)m)->key);
        if (p) {
            atomic_fetch_sub(&g_model.held, 1);
            model_answer(cx, p->to, p->tag, p->stream, 0, p->prompt_tokens);
            rt_free(p);
        }
    } else if (m->type == LLM_MSG_CANCEL) {
        int64_t t = now_ns();
        llm_msg_cancel *c = (llm_msg_cancel *)m;
        bg_pend *p = rt_map_del(&ms->pend, pend_key(c->from, c->tag));
        atomic_fetch_add(&g_model.cancels, 1);
        if (!p)
            return; /* already answered */
        atomic_fetch_sub(&g_model.held, 1);
        if (p->slow) {
            pthread_mutex_lock(&g_lock);
            g_probe.cancel_ns = t;
            signal_all();
            pthread_mutex_unlock(&g_lock);
        }
        (void)rt_timer_cancel(cx, p->timer);
        model_answer(cx, p->to, p->tag, p->stream, -ECANCELED, 0);
        rt_free(p);
    } else if (m->type == LLM_MSG_STATS_GET) {
        llm_msg_stats_get *g = (llm_msg_stats_get *)m;
        llm_msg_stats *s = RT_MSG_NEW(llm_msg_stats, LLM_MSG_STATS);
        s->tag = g->tag;
        rt_strlcpy(s->name, "bench-model", sizeof(s->name));
        rt_send(cx, g->reply_to, &s->hdr);
    }
}

static void model_fini(void *state)
{
    bg_model *ms = state;
    for (size_t i = 0; i < ms->pend.cap; i++)
        if (ms->pend.keys[i])
            rt_free(ms->pend.vals[i]);
    rt_map_fini(&ms->pend);
}

static const rt_actor_type model_type = {"bench_model", model_behave, model_fini, sizeof(bg_model)};

static void model_text_init(int tokens)
{
    static const char *const words[] = {"The ",   "gateway ", "answered ", "this ",  "turn ",
                                        "from ",  "a ",       "scripted ", "model ", "with ",
                                        "fixed ", "tokens ",  "so ",       "that ",  "only ",
                                        "our ",   "own ",     "cost ",     "shows. "};
    size_t nw = sizeof(words) / sizeof(words[0]);
    g_model.tokens = tokens;
    g_model.tok = rt_xcalloc((size_t)tokens + 1, sizeof(char *));
    g_model.tok_len = rt_xcalloc((size_t)tokens + 1, sizeof(size_t));
    size_t total = 1;
    for (int i = 0; i < tokens; i++) {
        g_model.tok[i] = rt_xstrdup(words[(size_t)i % nw]);
        g_model.tok_len[i] = strlen(g_model.tok[i]);
        total += g_model.tok_len[i];
    }
    g_model.reply = rt_xmalloc(total);
    size_t off = 0;
    for (int i = 0; i < tokens; i++) {
        memcpy(g_model.reply + off, g_model.tok[i], g_model.tok_len[i]);
        off += g_model.tok_len[i];
    }
    g_model.reply[off] = '\0';
    if (!tokens) { /* an empty answer is an error for the agent: say something */
        rt_free(g_model.reply);
        g_model.reply = rt_xstrdup("ok");
    }
}

/* ================================================================ the bench adapter */

typedef struct bg_adapter {
    rt_ref gateway;
} bg_adapter;

static void drive_send(rt_ctx *cx, bg_adapter *a, int i)
{
    char chat[32], user[32], text[96];
    snprintf(chat, sizeof(chat), "drive-%d", i);
    snprintf(user, sizeof(user), "u%d", i);
    snprintf(text, sizeof(text), "drive message %u of chat %d: what is on my calendar today?",
             g_drive.round[i], i);
    gw_msg_event *e = gw_event_new("bench", "dm", chat, user, text);
    e->internal = true;
    e->adapter = rt_self(cx);
    g_drive.sent_ns[i] = now_ns();
    size_t slot = (size_t)((g_drive.sent_ns[i] - g_drive.start_ns) / (BG_SLOT_MS * 1000000LL));
    if (slot < g_drive.nslots)
        g_drive.slot_sends[slot]++;
    g_drive.round[i]++;
    rt_send(cx, a->gateway, &e->hdr);
}

static void drive_turn_end(rt_ctx *cx, bg_adapter *a, int i, int outcome)
{
    bg_drive *d = &g_drive;
    if (!d->running || i < 0 || i >= d->n)
        return;
    int64_t t = now_ns();
    d->turns++;
    if (outcome != GW_OUTCOME_SUCCESS)
        d->failures++;
    if (t >= d->warm_ns && t <= d->end_ns)
        d->window_turns++;
    if (d->sent_ns[i] >= d->warm_ns && t <= d->end_ns && d->nsamples < BG_MAX_SAMPLES) {
        d->sample_s[d->nsamples] = (int32_t)((d->sent_ns[i] - d->warm_ns) / 1000000000LL);
        d->samples[d->nsamples++] = t - d->sent_ns[i] - d->latency_ns;
    }
    if (t < d->end_ns) {
        if (d->think_ms <= 0) {
            drive_send(cx, a, i);
            return;
        }
        bg_fire *f = RT_MSG_NEW(bg_fire, BG_MSG_DRIVE_START);
        f->key = (uint64_t)i;
        uint64_t pause = rt_hash_u64(((uint64_t)i << 32) ^ d->round[i]) % (uint64_t)d->think_ms;
        (void)rt_send_after(cx, rt_self(cx), &f->hdr, (int64_t)pause);
        return;
    }
    if (--d->active == 0) {
        pthread_mutex_lock(&g_lock);
        d->running = false;
        d->done = true;
        signal_all();
        pthread_mutex_unlock(&g_lock);
    }
}

static void adapter_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    bg_adapter *a = state;
    if (m->type == BG_MSG_DRIVE_KICK) {
        int stop = g_drive.kicked + BG_KICK_SLICE;
        /* with a model latency the first messages are spread over it, so that the chats do
         * not move in lock-step bursts */
        for (; g_drive.kicked < g_drive.n && g_drive.kicked < stop; g_drive.kicked++) {
            int64_t delay = g_model.latency_ms * g_drive.kicked / g_drive.n;
            if (delay <= 0) {
                drive_send(cx, a, g_drive.kicked);
                continue;
            }
            bg_fire *f = RT_MSG_NEW(bg_fire, BG_MSG_DRIVE_START);
            f->key = (uint64_t)g_drive.kicked;
            (void)rt_send_after(cx, rt_self(cx), &f->hdr, delay);
        }
        if (g_drive.kicked < g_drive.n)
            rt_send(cx, rt_self(cx), rt_msg_new(BG_MSG_DRIVE_KICK, sizeof(rt_msg)));
    } else if (m->type == BG_MSG_DRIVE_START) {
        uint64_t i = ((bg_fire *)m)->key;
        if (g_drive.running && i < (uint64_t)g_drive.n)
            drive_send(cx, a, (int)i);
    } else if (m->type == GW_OUT_TURN_END) {
        gw_out_turn_end *e = (gw_out_turn_end *)m;
        const char *chat = e->to.chat_id ? e->to.chat_id : "";
        if (strncmp(chat, "drive-", 6) == 0) {
            int64_t i = -1;
            if (rt_parse_i64(chat + 6, 0, INT32_MAX, &i) == 0)
                drive_turn_end(cx, a, (int)i, e->outcome);
        } else if (strncmp(chat, "probe-", 6) == 0) {
            pthread_mutex_lock(&g_lock);
            g_probe.turn_ends++;
            g_probe.last_outcome = e->outcome;
            g_probe.last_end_ns = now_ns();
            signal_all();
            pthread_mutex_unlock(&g_lock);
        }
    } else if (m->type == RT_MSG_TIMEOUT && ((rt_msg_timeout *)m)->tag == BG_TAG_SHUTDOWN) {
        pthread_mutex_lock(&g_lock);
        g_probe.shutdown_done = true;
        signal_all();
        pthread_mutex_unlock(&g_lock);
    }
    /* GW_OUT_TEXT / GW_OUT_TYPING: the replies themselves are not needed */
}

static const rt_actor_type adapter_type = {"bench_adapter", adapter_behave, NULL,
                                           sizeof(bg_adapter)};

/* ================================================================ commands */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *v, size_t n, double p)
{
    if (!n)
        return -1;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

static long proc_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            int64_t v = 0;
            char *p = line + 6;
            while (*p == ' ' || *p == '\t')
                p++;
            char num[32];
            size_t k = 0;
            while (p[k] >= '0' && p[k] <= '9' && k + 1 < sizeof(num)) {
                num[k] = p[k];
                k++;
            }
            num[k] = '\0';
            if (rt_parse_i64(num, 0, INT64_MAX, &v) == 0)
                kb = (long)v;
            break;
        }
    }
    fclose(f);
    return kb;
}

typedef struct bg_server {
    hm_host *host;
    rt_ctx *cx;
    rt_ref gateway, adapter, model;
    api_server *api;
    bool inproc;
} bg_server;

static bool drive_done(void *arg)
{
    (void)arg;
    return g_drive.done;
}

static void cmd_drive(bg_server *s, int64_t n, int64_t secs, int64_t think_ms)
{
    if (!s->inproc) {
        printf("ERROR drive needs --llm inproc\n");
        return;
    }
    pthread_mutex_lock(&g_lock);
    bool busy = g_drive.running;
    pthread_mutex_unlock(&g_lock);
    if (busy) {
        printf("ERROR a drive is running\n");
        return;
    }
    bg_drive *d = &g_drive;
    rt_free(d->sent_ns);
    rt_free(d->round);
    rt_free(d->samples);
    rt_free(d->sample_s);
    rt_free(d->slot_sends);
    memset(d, 0, sizeof(*d));
    d->n = (int)n;
    d->sent_ns = rt_xcalloc((size_t)n, sizeof(int64_t));
    d->round = rt_xcalloc((size_t)n, sizeof(uint32_t));
    d->samples = rt_xmalloc(BG_MAX_SAMPLES * sizeof(int64_t));
    d->sample_s = rt_xmalloc(BG_MAX_SAMPLES * sizeof(int32_t));
    d->nslots = (size_t)(secs * 1000 / BG_SLOT_MS + 1);
    d->slot_sends = rt_xcalloc(d->nslots, sizeof(uint32_t));
    d->latency_ns = g_model.latency_ms * 1000000;
    d->think_ms = think_ms;
    d->start_ns = now_ns();
    /* the first round (spawning chats and sessions) is not recorded */
    int64_t warm = 2 * d->latency_ns + 1000000000LL; /* spread over one latency, then a turn */
    if (warm > secs * 1000000000LL / 3)
        warm = secs * 1000000000LL / 3;
    d->warm_ns = d->start_ns + warm;
    d->end_ns = d->start_ns + secs * 1000000000LL;
    d->active = (int)n;
    d->running = true;
    rt_send(s->cx, s->adapter, rt_msg_new(BG_MSG_DRIVE_KICK, sizeof(rt_msg)));
    printf("OK drive n=%" PRId64 " secs=%" PRId64 " think_ms=%" PRId64 "\n", n, secs, think_ms);
}

/* Per BG_WINDOW_S of the measured window, in order: the p99 of the turns sent in it (a p99
 * that grows with the transcripts or the database shows as a rising line), and its busiest
 * BG_SLOT_MS of sends against its mean (1: an even load; users of a fixed-latency model
 * that a stall delayed together stay together, and this grows). */
static void print_windows(const bg_drive *d, size_t n)
{
    int32_t last = 0;
    for (size_t k = 0; k < n; k++)
        last = d->sample_s[k] > last ? d->sample_s[k] : last;
    int nw = n ? last / BG_WINDOW_S + 1 : 0;
    int64_t *v = rt_xmalloc((n ? n : 1) * sizeof(int64_t));
    printf("WINDOWS bench=gw_drive window_s=%d p99_ms=", BG_WINDOW_S);
    for (int w = 0; w < nw; w++) {
        size_t m = 0;
        for (size_t k = 0; k < n; k++)
            if (d->sample_s[k] / BG_WINDOW_S == w)
                v[m++] = d->samples[k];
        qsort(v, m, sizeof(int64_t), cmp_i64);
        printf("%s%.1f", w ? "," : "", pct_ms(v, m, 0.99));
    }
    rt_free(v);
    /* slots of the measured window only: a last window cut short by the drive's end is
     * compared with its own mean */
    size_t per = BG_WINDOW_S * 1000 / BG_SLOT_MS;
    size_t first = (size_t)((d->warm_ns - d->start_ns) / (BG_SLOT_MS * 1000000LL));
    size_t end = (size_t)((d->end_ns - d->start_ns) / (BG_SLOT_MS * 1000000LL));
    if (end > d->nslots)
        end = d->nslots;
    printf(" burst=");
    for (int w = 0; w < nw; w++) {
        uint64_t sum = 0, max = 0, slots = 0;
        for (size_t k = first + (size_t)w * per; k < first + (size_t)(w + 1) * per && k < end;
             k++, slots++) {
            sum += d->slot_sends[k];
            max = d->slot_sends[k] > max ? d->slot_sends[k] : max;
        }
        printf("%s%.1f", w ? "," : "", sum ? (double)max * (double)slots / (double)sum : 0.0);
    }
    printf("\n");
}

static void cmd_drive_result(void)
{
    pthread_mutex_lock(&g_lock);
    bool ok =
        wait_until(drive_done, NULL, g_drive.end_ns + g_drive.latency_ns * 2 + 30 * 1000000000LL);
    pthread_mutex_unlock(&g_lock);
    bg_drive *d = &g_drive;
    if (!d->n) {
        printf("ERROR no drive\n");
        return;
    }
    /* after a timeout the adapter may still be writing: copy what it has */
    size_t n = d->nsamples;
    int64_t *v = rt_xmalloc((n ? n : 1) * sizeof(int64_t));
    memcpy(v, d->samples, n * sizeof(int64_t));
    qsort(v, n, sizeof(int64_t), cmp_i64);
    double secs = (double)(d->end_ns - d->warm_ns) / 1e9;
    printf("RESULT bench=gw_drive sessions=%d latency_ms=%" PRId64 " think_ms=%" PRId64
           " secs=%.1f turns=%" PRIu64
           " recorded=%zu turns_per_s=%.0f added_p50_ms=%.3f added_p99_ms=%.3f "
           "added_p999_ms=%.3f added_max_ms=%.3f failures=%" PRIu64 " rss_kb=%ld%s\n",
           d->n, g_model.latency_ms, d->think_ms, secs, d->turns, n, (double)d->window_turns / secs,
           pct_ms(v, n, 0.50), pct_ms(v, n, 0.99), pct_ms(v, n, 0.999),
           n ? (double)v[n - 1] / 1e6 : -1.0, d->failures, proc_rss_kb(),
           ok ? "" : " error=drive_timeout");
    rt_free(v);
    print_windows(d, n);
}

typedef struct probe_wait {
    uint64_t ends;
} probe_wait;

static bool slow_seen(void *arg)
{
    (void)arg;
    return g_probe.slow_seen_ns != 0;
}
static bool cancel_seen(void *arg)
{
    (void)arg;
    return g_probe.cancel_ns != 0;
}
static bool ends_reached(void *arg)
{
    return g_probe.turn_ends >= ((probe_wait *)arg)->ends;
}

static void probe_send(bg_server *s, int chat, const char *text)
{
    char id[32];
    snprintf(id, sizeof(id), "probe-%d", chat);
    gw_msg_event *e = gw_event_new("bench", "dm", id, "prober", text);
    e->internal = true;
    e->adapter = s->adapter;
    gw_event_send(s->cx, s->gateway, e); /* as every adapter sends: /stop on the urgent lane */
}

/* One sample: a held turn in chat, then an interrupt (/stop, or a new message). Returns false
 * on a timeout. */
static bool probe_one(bg_server *s, int i, bool stop, int64_t *cancel_ns, int64_t *end_ns)
{
    int chat = i % 16;
    char text[64];
    pthread_mutex_lock(&g_lock);
    g_probe.slow_seen_ns = g_probe.cancel_ns = 0;
    uint64_t ends0 = g_probe.turn_ends;
    pthread_mutex_unlock(&g_lock);
    snprintf(text, sizeof(text), "slow: probe %d", i);
    probe_send(s, chat, text);
    pthread_mutex_lock(&g_lock);
    bool ok = wait_until(slow_seen, NULL, now_ns() + 10 * 1000000000LL);
    pthread_mutex_unlock(&g_lock);
    if (!ok)
        return false;
    snprintf(text, sizeof(text), "fast: follow-up %d", i);
    int64_t t0 = now_ns();
    probe_send(s, chat, stop ? "/stop" : text);
    pthread_mutex_lock(&g_lock);
    ok = wait_until(cancel_seen, NULL, now_ns() + 10 * 1000000000LL);
    *cancel_ns = g_probe.cancel_ns - t0;
    /* the held turn ends (cancelled); a new message then gets its own answer */
    probe_wait w = {ends0 + 1};
    ok = ok && wait_until(ends_reached, &w, now_ns() + 10 * 1000000000LL);
    *end_ns = g_probe.last_end_ns - t0;
    if (ok && !stop) {
        w.ends = ends0 + 2;
        ok = wait_until(ends_reached, &w, now_ns() + 10 * 1000000000LL);
    }
    pthread_mutex_unlock(&g_lock);
    return ok;
}

static void cmd_probe(bg_server *s, int64_t n)
{
    if (!s->inproc) {
        printf("ERROR probe needs --llm inproc\n");
        return;
    }
    int64_t *c[2], *e[2];
    size_t k[2] = {0, 0};
    for (int j = 0; j < 2; j++) {
        c[j] = rt_xcalloc((size_t)n, sizeof(int64_t));
        e[j] = rt_xcalloc((size_t)n, sizeof(int64_t));
    }
    int timeouts = 0;
    int64_t t_start = now_ns();
    for (int64_t i = 0; i < n; i++) {
        int j = (int)(i % 2); /* 0: /stop, 1: new message */
        int64_t cn = 0, en = 0;
        if (!probe_one(s, (int)i, j == 0, &cn, &en)) {
            timeouts++;
            if (timeouts > 3)
                break;
            continue;
        }
        c[j][k[j]] = cn;
        e[j][k[j]] = en;
        k[j]++;
        if (now_ns() - t_start > 60 * 1000000000LL)
            break; /* bounded */
    }
    static const char *const names[2] = {"stop", "newmsg"};
    printf("RESULT bench=gw_interrupt");
    for (int j = 0; j < 2; j++) {
        qsort(c[j], k[j], sizeof(int64_t), cmp_i64);
        qsort(e[j], k[j], sizeof(int64_t), cmp_i64);
        printf(" %s_n=%zu %s_cancel_p50_us=%.1f %s_cancel_p99_us=%.1f %s_cancel_max_us=%.1f "
               "%s_end_p50_us=%.1f %s_end_p99_us=%.1f",
               names[j], k[j], names[j], pct_ms(c[j], k[j], 0.5) * 1e3, names[j],
               pct_ms(c[j], k[j], 0.99) * 1e3, names[j], k[j] ? (double)c[j][k[j] - 1] / 1e3 : -1.0,
               names[j], pct_ms(e[j], k[j], 0.5) * 1e3, names[j], pct_ms(e[j], k[j], 0.99) * 1e3);
        rt_free(c[j]);
        rt_free(e[j]);
    }
    printf(" timeouts=%d\n", timeouts);
}

static void cmd_stats(bg_server *s)
{
    rt_stats st;
    rt_stats_get(s->host->rt, &st);
    printf("STATS model_requests=%" PRIu64 " model_answered=%" PRIu64 " model_cancels=%" PRIu64
           " model_held=%" PRIu64 " actors=%" PRIu64 " spawned=%" PRIu64 " msgs=%" PRIu64
           " timers_pending=%" PRIu64 " dead_letters=%" PRIu64 " tool_calls=%" PRIu64
           " rss_kb=%ld\n",
           atomic_load(&g_model.requests), atomic_load(&g_model.answered),
           atomic_load(&g_model.cancels), atomic_load(&g_model.held), st.spawned - st.exited,
           st.spawned, st.total.msgs, st.timers_pending, st.dead_letters,
           atomic_load(&g_model.tool_calls), proc_rss_kb());
}

/* Bytes the allocator has handed out (glibc's view; the bench's only non-portable bit). */
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* The heap in use, and what one agent session's own copy of the tool schemas costs (every
 * session parses them at spawn: ag_session.c, tool_schemas()). */
static void cmd_heap(void)
{
    const char **names = tool_toolset_tools("hermes-api-server");
    size_t n = 0;
    while (names && names[n])
        n++;
    size_t before = heap_in_use();
    cJSON *schemas = tool_schemas(names);
    size_t after = heap_in_use();
    cJSON_Delete(schemas);
    rt_free(names);
    printf(
        "HEAP in_use=%zu rss_kb=%ld schema_bytes=%zu schema_tools=%zu system_prompt_bytes=%" PRIu64
        "\n",
        heap_in_use(), proc_rss_kb(), after > before ? after - before : 0, n,
        atomic_load(&g_model.system_len));
}

/* One command line. false: quit. */
static bool run_command(bg_server *s, const char *line)
{
    char cmd[32] = "";
    char a1[32] = "", a2[32] = "", a3[32] = "";
    if (sscanf(line, "%31s %31s %31s %31s", cmd, a1, a2, a3) < 1)
        return true;
    int64_t n = 0, secs = 0, think = 0;
    if (!strcmp(cmd, "quit"))
        return false;
    if (!strcmp(cmd, "rss"))
        printf("RSS kb=%ld\n", proc_rss_kb());
    else if (!strcmp(cmd, "stats"))
        cmd_stats(s);
    else if (!strcmp(cmd, "heap"))
        cmd_heap();
    else if (!strcmp(cmd, "drive") && rt_parse_i64(a1, 1, 1000000, &n) == 0 &&
             rt_parse_i64(a2, 1, 3600, &secs) == 0 &&
             (!*a3 || rt_parse_i64(a3, 0, 600000, &think) == 0))
        cmd_drive(s, n, secs, think);
    else if (!strcmp(cmd, "drive_result"))
        cmd_drive_result();
    else if (!strcmp(cmd, "probe") && rt_parse_i64(a1, 1, 100000, &n) == 0)
        cmd_probe(s, n);
    else
        printf("ERROR unknown command: %s\n", line);
    fflush(stdout);
    return true;
}

/* Read commands from stdin until quit, EOF or the deadline (lines longer than the buffer are
 * cut). */
static void command_loop(bg_server *s, int64_t deadline_ns)
{
    char buf[1024];
    size_t len = 0;
    for (;;) {
        char *nl;
        while ((nl = memchr(buf, '\n', len)) != NULL) {
            *nl = '\0';
            bool go_on = run_command(s, buf);
            size_t used = (size_t)(nl - buf) + 1;
            memmove(buf, buf + used, len - used);
            len -= used;
            if (!go_on)
                return;
        }
        if (len == sizeof(buf))
            len = 0; /* an overlong line: dropped */
        int64_t left_ms = (deadline_ns - now_ns()) / 1000000;
        if (left_ms <= 0) {
            fprintf(stderr, "bench_gw_server: --seconds reached, stopping\n");
            return;
        }
        struct pollfd p = {.fd = 0, .events = POLLIN};
        int r = poll(&p, 1, left_ms > 1000 ? 1000 : (int)left_ms);
        if (r < 0 && errno != EINTR)
            return;
        if (r <= 0)
            continue;
        ssize_t got = read(0, buf + len, sizeof(buf) - len);
        if (got <= 0)
            return; /* EOF */
        len += (size_t)got;
    }
}

/* ================================================================ start and stop */

typedef struct bg_opts {
    const char *home;
    const char *llm; /* "inproc" or a base URL */
    int64_t latency_ms, tokens, tool_mix, workers, max_inflight, provider_inflight, seconds;
    int64_t chat_idle_ms;
    int64_t context_length; /* model.context_length in config.yaml (0: none) */
    const char *key;
} bg_opts;

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_gw_server --home DIR [--llm inproc|URL] [--latency-ms L] [--tokens T]\n"
            "       [--tool-mix PCT] [--workers W] [--key K] [--max-inflight N] "
            "[--provider-inflight N] "
            "[--seconds S] [--chat-idle-ms MS] [--context-length TOKENS]\n");
    exit(2);
}

static void parse_args(int argc, char **argv, bg_opts *o)
{
    *o = (bg_opts){
        .llm = "inproc", .tokens = 8, .max_inflight = 20000, .seconds = 600, .key = BG_KEY_DEFAULT};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        int rc = 0;
        if (!strcmp(a, "--home"))
            o->home = v;
        else if (!strcmp(a, "--llm"))
            o->llm = v;
        else if (!strcmp(a, "--key"))
            o->key = v;
        else if (!strcmp(a, "--latency-ms"))
            rc = rt_parse_i64(v, 0, 3600000, &o->latency_ms);
        else if (!strcmp(a, "--chat-idle-ms"))
            rc = rt_parse_i64(v, 1, 86400000, &o->chat_idle_ms);
        else if (!strcmp(a, "--context-length"))
            rc = rt_parse_i64(v, 1000, 10000000, &o->context_length);
        else if (!strcmp(a, "--tool-mix"))
            rc = rt_parse_i64(v, 0, 100, &o->tool_mix);
        else if (!strcmp(a, "--tokens"))
            rc = rt_parse_i64(v, 0, 100000, &o->tokens);
        else if (!strcmp(a, "--workers"))
            rc = rt_parse_i64(v, 0, RT_MAX_WORKERS, &o->workers);
        else if (!strcmp(a, "--max-inflight"))
            rc = rt_parse_i64(v, 1, 1000000, &o->max_inflight);
        else if (!strcmp(a, "--provider-inflight"))
            rc = rt_parse_i64(v, 0, 1000000, &o->provider_inflight);
        else if (!strcmp(a, "--seconds"))
            rc = rt_parse_i64(v, 1, 86400, &o->seconds);
        else
            usage();
        if (rc)
            usage();
        i++;
    }
    if (!o->home)
        usage();
}

/* The temporary HERMES_HOME: config that gives the bench platforms the API server's tools. */
static void prepare_home(const bg_opts *o)
{
    mkdir(o->home, 0700);
    char path[1024];
    snprintf(path, sizeof(path), "%s/config.yaml", o->home);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench_gw_server: cannot write %s\n", path);
        exit(1);
    }
    fputs("model:\n  default: bench-model\n  provider: custom\n", f);
    if (o->context_length > 0) /* the agent compresses at 85 % of it (docs/capacity.md soak) */
        fprintf(f, "  context_length: %lld\n", (long long)o->context_length);
    fputs("platform_toolsets:\n  api_server: [hermes-api-server]\n"
          "  bench: [hermes-api-server]\n",
          f);
    fclose(f);
    setenv("HERMES_HOME", o->home, 1);
    setenv("HERMES_INFERENCE_PROVIDER", "custom", 1);
    setenv("OPENAI_BASE_URL", strcmp(o->llm, "inproc") ? o->llm : "http://127.0.0.1:9/v1", 1);
    setenv("OPENAI_API_KEY", "bench-llm-key", 1);
    setenv("MESSAGING_CWD", o->home, 1);
    setenv("GATEWAY_ALLOW_ALL_USERS", "false", 1);
    if (!getenv("HERMES_LOG_LEVEL"))
        setenv("HERMES_LOG_LEVEL", "warning", 1);
}

static bool shutdown_acked(void *arg)
{
    (void)arg;
    return g_probe.shutdown_done;
}

static void count_persisted(const char *home)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/state.db", home);
    sqlite3 *db = NULL;
    long long sessions = -1, messages = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db,
                               "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) "
                               "FROM messages)",
                               -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
            sessions = sqlite3_column_int64(st, 0);
            messages = sqlite3_column_int64(st, 1);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    printf("PERSISTED sessions=%lld messages=%lld\n", sessions, messages);
}

int main(int argc, char **argv)
{
    bg_opts o;
    parse_args(argc, argv, &o);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    prepare_home(&o);
    g_model.latency_ms = o.latency_ms;
    g_model.estimate = o.context_length > 0;
    g_model.tool_mix = o.tool_mix;
    model_text_init((int)o.tokens);

    bg_server s = {.inproc = strcmp(o.llm, "inproc") == 0};
    hm_host_opts ho = {
        .ctx = HM_CTX_GATEWAY, .home = o.home, .lws = true, .workers = (int)o.workers};
    char msg[512];
    int rc = hm_host_start(&ho, &s.host, msg, sizeof(msg));
    if (rc) {
        fprintf(stderr, "bench_gw_server: host: %s\n", msg);
        return 1;
    }
    s.cx = rt_ctx_external(s.host->rt);
    if (s.inproc) {
        s.model = rt_spawn(s.cx, &model_type, NULL, NULL);
        s.host->provider = s.model; /* hm_host_session_opts hands this to every session */
    } else if (o.provider_inflight > 0) {
        llm_provider_opts po = s.host->popts;
        po.max_inflight = (int)o.provider_inflight;
        s.host->provider = llm_provider_start(s.cx, &po);
    }
    char *state_db = hm_config_file(o.home, "state.db");
    gw_opts go = {
        .cfg = s.host->cfg,
        .home = s.host->home,
        .spawn = hm_host_spawn_session,
        .spawn_arg = s.host,
        .store = s.host->store.writer,
        .state_db = state_db,
        .model = s.host->model,
        .provider = s.host->provider_name,
        .base_url = s.host->popts.base_url,
        .chat_idle_ms = o.chat_idle_ms, /* 0: the gateway's default (10 minutes) */
    };
    rc = gw_start(s.cx, &go, &s.gateway, msg, sizeof(msg));
    rt_free(state_db);
    if (rc) {
        fprintf(stderr, "bench_gw_server: gateway: %s\n", msg);
        hm_host_stop(s.host);
        return 1;
    }
    bg_adapter ad = {.gateway = s.gateway};
    s.adapter = rt_spawn(s.cx, &adapter_type, &ad, NULL);
    gw_caps caps = {.max_message = 4000, .markdown = true};
    rt_send(s.cx, s.gateway, gw_adapter_up_new("bench", s.adapter, &caps, "bench-home"));

    api_server_opts ao = {.host = "127.0.0.1",
                          .port = 0,
                          .key = o.key,
                          .hermes_home = s.host->home,
                          .max_inflight = (size_t)o.max_inflight,
                          .reactor = s.host->reactor,
                          .lws = s.host->lws};
    rc = api_server_start(s.cx, &ao, &s.api, msg, sizeof(msg));
    if (rc) {
        fprintf(stderr, "bench_gw_server: API server: %s\n", msg);
        hm_host_stop(s.host);
        return 1;
    }
    printf("READY port=%d pid=%d llm=%s latency_ms=%" PRId64 " tokens=%" PRId64 " workers=%d\n",
           api_server_port(s.api), (int)getpid(), s.inproc ? "inproc" : "http", o.latency_ms,
           o.tokens, rt_workers(s.host->rt));
    fflush(stdout);

    command_loop(&s, now_ns() + o.seconds * 1000000000LL);

    /* Stop the way `hermes gateway` stops: the API server, then the gateway's drain. */
    api_server_stop(s.cx, s.api, 1000);
    rt_send(s.cx, s.gateway, gw_shutdown_new(s.adapter, BG_TAG_SHUTDOWN, 2000));
    pthread_mutex_lock(&g_lock);
    (void)wait_until(shutdown_acked, NULL, now_ns() + 10 * 1000000000LL);
    pthread_mutex_unlock(&g_lock);
    rt_stop(s.cx, s.gateway, RT_EXIT_STOPPED);
    char *home = rt_xstrdup(o.home);
    hm_host_stop(s.host); /* the store commits everything queued first */
    count_persisted(home);
    rt_free(home);
    fflush(stdout);
    return 0;
}
