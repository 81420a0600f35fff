/*
 * cli_chat — `hermes chat`: with -q "question", one turn of the agent, its answer streamed to
 * stdout as it arrives, tool progress on stderr, approval and clarify questions asked at the
 * terminal. Exit status: 0 answered, 1 failed (with the reason on stderr), 2 usage, 130
 * interrupted (Ctrl+C). Without -q, on a terminal, the interactive chat (cli_repl.c).
 * `hermes` with no command, or with options first (`hermes --toolsets web`), comes here too
 * (cli_main.c); --list-tools and --list-toolsets print the listings and exit.
 *
 * The printer is a detached actor: it writes to the terminal and reads answers from it,
 * which blocks, so it must not run on a worker.
 */
#include "cli.h"

#include "ag_session.h"
#include "chat_session.h"
#include "hm_host.h"
#include "llm_wire.h"
#include "repl.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"
#include "rt_reactor.h"
#include "rt_signal.h"
#include "st_read.h"

#include <errno.h>
#include <getopt.h>
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
    const char *home; /* HERMES_HOME: "always" answers go to its config.yaml */
} printer;

static void finish(printer *p, int status)
{
    pthread_mutex_lock(&p->res->lock);
    p->res->done = true;
    p->res->status = status;
    pthread_cond_signal(&p->res->cond);
    pthread_mutex_unlock(&p->res->lock);
}

static void on_ask(rt_ctx *cx, printer *p, ag_msg_ask *a)
{
    if (!isatty(0)) {
        fprintf(stderr, "\n(no terminal to ask: answering no)\n");
        rt_send(cx, p->session, ag_answer_new(a->ask_id, TOOL_ANSWER_DENY, NULL));
        return;
    }
    chat_print_ask(stderr, a->kind, a->text, a->description, a->choices, a->timeout_ms);
    char *line = chat_read_line(a->timeout_ms, a->kind == TOOL_ASK_SUDO);
    int answer;
    const char *text;
    chat_parse_answer(a->kind, line, a->choices, &answer, &text);
    if (answer == TOOL_ANSWER_TIMEOUT)
        fprintf(stderr, "\n%s\n", chat_timeout_text(a->kind));
    if (answer == TOOL_ANSWER_ALWAYS) {
        char key[128], msg[512];
        if (chat_allowlist_add(p->home, a->text, key, sizeof(key), msg, sizeof(msg)) == 0)
            fprintf(stderr, "      \xe2\x9c\x93 Pattern '%s' permanently approved\n", key);
        else
            fprintf(stderr, "      (could not save the approval: %s)\n", msg);
    }
    rt_send(cx, p->session, ag_answer_new(a->ask_id, answer, text));
    rt_free(line);
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

static void usage(FILE *f)
{
    fprintf(f, "usage: hermes [chat] [options]          interactive chat (on a terminal)\n"
               "       hermes chat -q \"question\" [options]  one question, the answer on stdout\n"
               "\n"
               "options:\n"
               "  -q, --query TEXT       ask one question and exit\n"
               "  -m, --model MODEL      the model to use\n"
               "      --provider NAME    auto, openrouter, anthropic, ... (default: configured)\n"
               "  -t, --toolsets LIST    comma-separated toolsets, e.g. \"web,terminal\"\n"
               "  -r, --resume ID        continue the session ID\n"
               "  -c, --continue         continue the most recent CLI session\n"
               "      --list-tools       list the tools the chat would load, and exit\n"
               "      --list-toolsets    list the toolsets, and exit\n"
               "  -Q, --quiet            with -q: no tool progress, only the answer\n"
               "  -h, --help             this text\n");
}

static int run_turn(hm_host *h, const char *question, const chat_spawn *cs, bool quiet)
{
    rt_ctx *cx = rt_ctx_external(h->rt);
    rt_ref session = chat_spawn_session(h, cs, NULL);

    chat_result res = {.status = 1};
    pthread_mutex_init(&res.lock, NULL);
    pthread_cond_init(&res.cond, NULL);
    printer pinit = {.res = &res, .session = session, .quiet = quiet, .home = h->home};
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

/* Does the session exist in state.db? (--resume) Prints the reason when not. */
static bool session_exists(hm_host *h, const char *id)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/state.db", h->home);
    int err = 0;
    char msg[256];
    st_reader *r = st_reader_open(path, &err, msg, sizeof(msg));
    cJSON *row = NULL;
    bool ok = r && st_read_session(r, id, &row) == 0 && row;
    if (!ok)
        cli_err("Session not found: %s (see: hermes sessions list)", id);
    cJSON_Delete(row);
    st_reader_free(r);
    return ok;
}

/* The id of the most recent CLI session (--continue), or NULL with the reason printed. */
static char *latest_cli_session(hm_host *h)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/state.db", h->home);
    int err = 0;
    char msg[256];
    st_reader *r = st_reader_open(path, &err, msg, sizeof(msg));
    cJSON *row = NULL;
    char *id = NULL;
    if (r && st_read_latest_session(r, "cli", &row) == 0) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, "id");
        if (cJSON_IsString(v))
            id = rt_xstrdup(v->valuestring);
    }
    if (!id)
        cli_err("no previous CLI session to continue");
    cJSON_Delete(row);
    st_reader_free(r);
    return id;
}

typedef struct chat_args {
    const char *query, *model, *provider, *resume;
    char *toolsets;
    bool quiet, cont, list_tools, list_toolsets;
} chat_args;

enum { OPT_LIST_TOOLS = 256, OPT_LIST_TOOLSETS, OPT_PROVIDER };

/* 0 parsed, 1 --help shown, 2 usage error (reported). */
static int parse_args(int argc, char **argv, chat_args *a)
{
    static const struct option opts[] = {{"query", required_argument, NULL, 'q'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"provider", required_argument, NULL, OPT_PROVIDER},
                                         {"toolsets", required_argument, NULL, 't'},
                                         {"resume", required_argument, NULL, 'r'},
                                         {"continue", no_argument, NULL, 'c'},
                                         {"list-tools", no_argument, NULL, OPT_LIST_TOOLS},
                                         {"list-toolsets", no_argument, NULL, OPT_LIST_TOOLSETS},
                                         {"quiet", no_argument, NULL, 'Q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":q:m:p:t:r:cQh", opts, NULL)) != -1) {
        switch (c) {
        case 'q': a->query = optarg; break;
        case 'm': a->model = optarg; break;
        case 'p':
        case OPT_PROVIDER: a->provider = optarg; break;
        case 't': a->toolsets = optarg; break;
        case 'r': a->resume = optarg; break;
        case 'c': a->cont = true; break;
        case 'Q': a->quiet = true; break;
        case OPT_LIST_TOOLS: a->list_tools = true; break;
        case OPT_LIST_TOOLSETS: a->list_toolsets = true; break;
        case 'h': usage(stdout); return 1;
        case ':':
            cli_err("option '%s' needs a value", argv[optind - 1]);
            usage(stderr);
            return 2;
        default:
            if (optopt)
                cli_err("unknown option '-%c'", optopt);
            else
                cli_err("unknown option '%s'", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        cli_err("unexpected argument '%s'", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (a->query && !*a->query) {
        cli_err("the question (-q) is empty");
        return 2;
    }
    if (a->resume && a->cont) {
        cli_err("--resume and --continue do not go together");
        return 2;
    }
    return 0;
}

/* --list-tools / --list-toolsets: the listings, without starting the agent. */
static int list(const chat_args *a, const char *const *ts)
{
    hm_host_opts ho = {.ctx = HM_CTX_CLI, .model = a->model, .provider = a->provider};
    hm_host *h = NULL;
    char err[512];
    if (hm_host_start(&ho, &h, err, sizeof(err)) != 0) {
        cli_err("%s", err);
        return 1;
    }
    if (a->list_tools) {
        tool_env *env = hm_host_tool_env(h, "cli", getenv("TERMINAL_CWD"), false);
        const char **names = hm_host_tools(h, "cli", ts, env);
        chat_print_tools(stdout, (char *const *)names);
        rt_free(names);
        tool_env_unref(env);
    }
    if (a->list_toolsets)
        chat_print_toolsets(stdout, h->cfg, ts);
    fflush(stdout);
    hm_host_stop(h);
    return 0;
}

int cli_chat(int argc, char **argv)
{
    chat_args a = {0};
    int prc = parse_args(argc, argv, &a);
    if (prc)
        return prc == 1 ? 0 : 2;
    char *ts_copy = a.toolsets ? rt_xstrdup(a.toolsets) : NULL;
    const char **ts = ts_copy ? chat_split_list(ts_copy) : NULL;
    const char *bad = ts ? chat_unknown_toolset(ts) : NULL;
    int status = 2;
    if (ts && !ts[0]) {
        cli_err("--toolsets needs at least one toolset name (see: hermes --list-toolsets)");
        goto out;
    }
    if (bad) {
        cli_err("unknown toolset '%s' (see: hermes --list-toolsets)", bad);
        goto out;
    }
    if (a.list_tools || a.list_toolsets) {
        rt_log_set_level(RT_LOG_WARN);
        status = list(&a, ts);
        goto out;
    }
    bool interactive = !a.query;
    if (interactive && !(isatty(0) && isatty(1))) {
        cli_err("the interactive chat needs a terminal session; use: hermes chat -q \"question\"");
        goto out;
    }
    rt_log_set_level(RT_LOG_WARN);        /* the answer goes to stdout; keep stderr for trouble */
    setenv("HERMES_INTERACTIVE", "1", 1); /* as the original's CLI: the cronjob tools' check */
    hm_host_opts ho = {
        .ctx = HM_CTX_CLI, .model = a.model, .provider = a.provider, .require_provider = true};
    hm_host *h = NULL;
    char err[512];
    if (hm_host_start(&ho, &h, err, sizeof(err)) != 0) {
        cli_err("%s", err);
        status = 1;
        goto out;
    }
    char *resume = a.resume ? rt_xstrdup(a.resume) : a.cont ? latest_cli_session(h) : NULL;
    status = 1;
    if ((a.cont && !resume) || (a.resume && !session_exists(h, a.resume))) {
        status = 1;
    } else if (interactive) {
        repl_opts ro = {.toolsets = ts, .resume_id = resume};
        status = repl_run(h, &ro);
    } else {
        chat_spawn cs = {.session_id = resume,
                         .resume = resume != NULL,
                         .toolsets = ts,
                         .interactive = isatty(0)};
        status = run_turn(h, a.query, &cs, a.quiet);
    }
    rt_free(resume);
    hm_host_stop(h);
out:
    rt_free(ts);
    rt_free(ts_copy);
    return status;
}
