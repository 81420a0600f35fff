/*
 * cli_chat — `hermes chat -q "question"`: one turn of the agent, its answer streamed to
 * stdout as it arrives, tool progress on stderr, approval and clarify questions asked at
 * the terminal. Exit status: 0 answered, 1 failed (with the reason on stderr), 2 usage,
 * 130 interrupted (Ctrl+C).
 *
 * The printer is a detached actor: it writes to the terminal and reads answers from it,
 * which blocks, so it must not run on a worker.
 */
#include "cli.h"

#include "ag_session.h"
#include "hm_host.h"
#include "llm_wire.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"
#include "rt_reactor.h"
#include "rt_signal.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct chat_result {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status;
} chat_result;

typedef struct printer {
    chat_result *res;
    rt_ref session;
    bool streamed; /* content deltas were printed */
    bool quiet;
    bool interrupted_once;
} printer;

static void finish(printer *p, int status)
{
    pthread_mutex_lock(&p->res->lock);
    p->res->done = true;
    p->res->status = status;
    pthread_cond_signal(&p->res->cond);
    pthread_mutex_unlock(&p->res->lock);
}

/* Read one line from the terminal within timeout_ms; NULL on timeout or end of input. */
static char *read_answer(int64_t timeout_ms)
{
    struct pollfd pfd = {.fd = 0, .events = POLLIN};
    if (poll(&pfd, 1, (int)timeout_ms) <= 0)
        return NULL;
    char line[1024];
    if (!fgets(line, sizeof(line), stdin))
        return NULL;
    line[strcspn(line, "\r\n")] = '\0';
    return rt_xstrdup(line);
}

static int approval_from(const char *a)
{
    if (!a)
        return TOOL_ANSWER_TIMEOUT;
    switch (a[0]) {
    case 'o':
    case 'O':
    case 'y':
    case 'Y': return TOOL_ANSWER_ONCE;
    case 's':
    case 'S': return TOOL_ANSWER_SESSION;
    case 'a':
    case 'A': return TOOL_ANSWER_ALWAYS;
    default: return TOOL_ANSWER_DENY;
    }
}

static void on_ask(rt_ctx *cx, printer *p, ag_msg_ask *a)
{
    if (!isatty(0)) {
        fprintf(stderr, "\n(no terminal to ask: answering no)\n");
        rt_send(cx, p->session, ag_answer_new(a->ask_id, TOOL_ANSWER_DENY, NULL));
        return;
    }
    if (a->kind == TOOL_ASK_APPROVAL) {
        fprintf(stderr,
                "\n\xe2\x9a\xa0\xef\xb8\x8f  This command is potentially dangerous (%s):\n    %s\n"
                "Allow it? [o]nce / [s]ession / [a]lways / [d]eny: ",
                a->description ? a->description : "dangerous", a->text ? a->text : "");
        char *ans = read_answer(a->timeout_ms);
        int answer = approval_from(ans);
        if (answer == TOOL_ANSWER_TIMEOUT)
            fprintf(stderr, "\n(no answer in time: denied)\n");
        rt_send(cx, p->session, ag_answer_new(a->ask_id, answer, NULL));
        rt_free(ans);
        return;
    }
    fprintf(stderr, "\n\xe2\x9d\x93 %s\n", a->text ? a->text : "");
    int i = 1;
    const cJSON *c;
    cJSON_ArrayForEach(c, a->choices)
        fprintf(stderr, "  %d. %s\n", i++, cJSON_IsString(c) ? c->valuestring : "");
    fprintf(stderr, "> ");
    char *ans = read_answer(a->timeout_ms);
    long n = ans ? strtol(ans, NULL, 10) : 0; /* a number picks a choice, else free text */
    const cJSON *pick = n > 0 && n <= 4 ? cJSON_GetArrayItem(a->choices, (int)n - 1) : NULL;
    const char *text = cJSON_IsString(pick) ? pick->valuestring : ans;
    rt_send(cx, p->session,
            ag_answer_new(a->ask_id, ans ? TOOL_ANSWER_TEXT : TOOL_ANSWER_TIMEOUT, text));
    rt_free(ans);
}

static void on_done(printer *p, ag_msg_done *d)
{
    if (d->text && !p->streamed)
        fputs(d->text, stdout);
    if (d->text || p->streamed)
        fputc('\n', stdout);
    fflush(stdout);
    if (d->err) {
        fprintf(stderr, "hermes: %s\n", d->errmsg ? d->errmsg : rt_strerror(d->err));
        finish(p, 1);
    } else if (d->interrupted) {
        fprintf(stderr, "hermes: interrupted\n");
        finish(p, 130);
    } else {
        finish(p, 0);
    }
}

static void printer_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    printer *p = state;
    switch (m->type) {
    case AG_MSG_DELTA: {
        ag_msg_delta *d = (ag_msg_delta *)m;
        if (d->kind == LLM_DELTA_CONTENT && d->text) {
            fputs(d->text, stdout);
            fflush(stdout);
            p->streamed = true;
        }
        break;
    }
    case AG_MSG_PROGRESS:
        if (!p->quiet) {
            ag_msg_progress *g = (ag_msg_progress *)m;
            fprintf(stderr, "  \xe2\x94\x8a %s%s%s\n", g->tool,
                    g->preview && *g->preview ? ": " : "", g->preview ? g->preview : "");
        }
        break;
    case AG_MSG_STATUS:
        if (!p->quiet)
            fprintf(stderr, "  \xe2\x94\x8a %s\n", ((ag_msg_status *)m)->text);
        break;
    case AG_MSG_ASK: on_ask(cx, p, (ag_msg_ask *)m); break;
    case AG_MSG_DONE: on_done(p, (ag_msg_done *)m); break;
    case RT_SIGNAL_MSG_SHUTDOWN:
        /* Ctrl+C: interrupt the turn; a second one gives up at once. */
        if (p->interrupted_once) {
            finish(p, 130);
        } else {
            p->interrupted_once = true;
            rt_interrupt(cx, p->session, AG_INT_STOP);
        }
        break;
    default: break;
    }
}

static const rt_actor_type printer_type = {"printer", printer_behave, NULL, sizeof(printer)};

static void usage(void)
{
    fprintf(stderr, "usage: hermes chat -q \"question\" [--model M] [--provider P] "
                    "[--toolsets a,b] [--quiet]\n");
}

static const char **split_toolsets(char *list)
{
    size_t n = 1;
    for (char *c = list; *c; c++)
        n += *c == ',';
    const char **out = rt_xcalloc(n + 1, sizeof(*out));
    size_t i = 0;
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        out[i++] = t;
    return out;
}

static int run_turn(hm_host *h, const char *question, const char **toolsets, bool quiet)
{
    rt_ctx *cx = rt_ctx_external(h->rt);
    tool_env *env = hm_host_tool_env(h, "cli", getenv("TERMINAL_CWD"), isatty(0));
    const char **names = hm_host_tools(h, "cli", toolsets, env);
    size_t n = 0;
    while (names[n])
        n++;
    env->enabled_tools = rt_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        env->enabled_tools[i] = rt_xstrdup(names[i]);
    ag_session_opts so;
    hm_host_session_opts(h, &so);
    so.source = "cli";
    so.env = env;
    so.tools = names;
    rt_ref session = ag_session_spawn(cx, &so, NULL);
    rt_free(names);
    tool_env_unref(env);

    chat_result res = {.status = 1};
    pthread_mutex_init(&res.lock, NULL);
    pthread_cond_init(&res.cond, NULL);
    printer pinit = {.res = &res, .session = session, .quiet = quiet};
    rt_spawn_opts po = {.flags = RT_SPAWN_DETACHED};
    rt_ref printer_ref = rt_spawn(cx, &printer_type, &pinit, &po);
    (void)rt_signal_watch(h->reactor, printer_ref); /* Ctrl+C reaches the printer */
    rt_send(cx, session, ag_input_new(question, printer_ref, 1));

    pthread_mutex_lock(&res.lock);
    while (!res.done)
        pthread_cond_wait(&res.cond, &res.lock);
    pthread_mutex_unlock(&res.lock);
    return res.status;
}

int cli_chat(int argc, char **argv)
{
    static const struct option opts[] = {{"query", required_argument, NULL, 'q'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"provider", required_argument, NULL, 'p'},
                                         {"toolsets", required_argument, NULL, 't'},
                                         {"quiet", no_argument, NULL, 'Q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *query = NULL, *model = NULL, *provider = NULL;
    char *toolsets = NULL;
    bool quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "q:m:p:t:Qh", opts, NULL)) != -1) {
        switch (c) {
        case 'q': query = optarg; break;
        case 'm': model = optarg; break;
        case 'p': provider = optarg; break;
        case 't': toolsets = optarg; break;
        case 'Q': quiet = true; break;
        case 'h': usage(); return 0;
        default: usage(); return 2;
        }
    }
    if (!query) {
        cli_err("the interactive chat needs a terminal session; use: hermes chat -q \"question\"");
        return 2;
    }
    rt_log_set_level(RT_LOG_WARN); /* the answer goes to stdout; keep stderr for trouble */
    hm_host_opts ho = {
        .ctx = HM_CTX_CLI, .model = model, .provider = provider, .require_provider = true};
    hm_host *h = NULL;
    char err[512];
    int rc = hm_host_start(&ho, &h, err, sizeof(err));
    if (rc) {
        cli_err("%s", err);
        return 1;
    }
    char *ts_copy = toolsets ? rt_xstrdup(toolsets) : NULL;
    const char **ts = ts_copy ? split_toolsets(ts_copy) : NULL;
    int status = run_turn(h, query, ts, quiet);
    rt_free(ts);
    rt_free(ts_copy);
    hm_host_stop(h);
    return status;
}
