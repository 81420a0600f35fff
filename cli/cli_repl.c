/*
 * cli_repl — the interactive `hermes` (repl.h): start-up, the loop, the turns, and the events
 * the bridge hands over (repl_int.h). Behaviour follows the original (agent-core §10.2):
 *
 *   - Enter sends. Text sent while the agent works interrupts it and redirects it: the
 *     session ends the turn and answers everything in one follow-up turn. Slash commands
 *     typed meanwhile wait for the turn to end (except /quit and the ones that only show).
 *   - Ctrl+C: cancels an open question (deny); else, while the agent works, interrupts the
 *     turn (AG_INT_STOP) and a second Ctrl+C within 2 s leaves; when idle, clears the input,
 *     or leaves if it is empty. Ctrl+D on an empty line leaves. SIGTERM or SIGHUP leaves.
 *   - The answer streams into a box as it arrives; tool progress lines come above it.
 *   - On leaving: the exit summary (how to resume), the session ended in state.db
 *     ("cli_close"), "Goodbye! ⚕".
 */
#include "repl_int.h"

#include "ag_session.h"
#include "chat_session.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_signal.h"
#include "rt_util.h"
#include "st_read.h"
#include "st_store.h"
#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define GOLD  "\033[1;33m"
#define RESET "\033[0m"

int64_t repl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t repl_tag(repl *r)
{
    return ++r->next_tag;
}

/* ============================================================ the answer box */

static int box_width(repl *r)
{
    int w = term_cols(r);
    return w < 80 ? w : 80;
}

static void rule(repl *r, const char *left, const char *label, const char *right)
{
    int w = box_width(r);
    char line[1024];
    size_t n = (size_t)snprintf(line, sizeof(line), "%s%s", GOLD, left);
    /* Columns: the corners are one each, "─" + label " ⚕ Hermes " eleven. */
    int used = (*left ? 1 : 0) + (right ? 1 : 0) + (label ? 11 : 0);
    if (label)
        n += (size_t)snprintf(line + n, sizeof(line) - n, "─%s", label);
    for (int i = used; i < w && n + 4 < sizeof(line); i++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, "─");
    snprintf(line + n, sizeof(line) - n, "%s%s", right ? right : "", RESET);
    term_line(r, "%s", line);
}

static void open_box(repl *r)
{
    if (!r->box_open)
        rule(r, "╭", " ⚕ Hermes ", "╮");
    r->box_open = true;
}

static void close_box(repl *r)
{
    if (r->box_open)
        rule(r, "╰", NULL, "╯");
    r->box_open = false;
}

/* ============================================================ events */

static void on_progress(repl *r, repl_ev *e)
{
    const char *tool = e->text ? e->text : "";
    if (r->verbose == 0)
        return;
    if (r->verbose == 1 && strcmp(r->last_tool, tool) == 0)
        return;
    rt_strlcpy(r->last_tool, tool, sizeof(r->last_tool));
    term_line(r, "  ┊ %s%s%s", tool, e->text2 && *e->text2 ? ": " : "", e->text2 ? e->text2 : "");
}

static bool turn_over(repl *r, const repl_ev *e)
{
    if (e->id >= r->last_input)
        return true;
    /* Ctrl+C discarded everything sent before it that was still waiting. */
    return r->stop_upto && r->last_input <= r->stop_upto;
}

static void on_done(repl *r, repl_ev *e)
{
    term_endline(r);
    if (e->text && *e->text && !r->box_open) { /* not streamed */
        open_box(r);
        term_text(r, e->text, strlen(e->text));
        term_endline(r);
    }
    close_box(r);
    bool over = turn_over(r, e);
    if (e->code)
        term_line(r, "Error: %s", e->text2 ? e->text2 : rt_strerror(e->code));
    else if (e->interrupted && !over)
        term_line(r, "⚡ [Interrupted - processing new message]");
    else if (e->interrupted)
        term_line(r, "⚡ Interrupted");
    if (e->text3 && (!r->session_id || strcmp(e->text3, r->session_id) != 0)) {
        rt_free(r->session_id);
        r->session_id = e->text3;
        e->text3 = NULL;
    }
    if (over) {
        r->busy = false;
        r->stop_upto = 0;
        r->last_tool[0] = '\0';
        if (r->nqueued)
            r->break_edit = true; /* run what waited for the turn */
    }
}

static void on_ctrl_c(repl *r)
{
    int64_t now = repl_now_ms();
    if (r->answering) {
        r->answer_cancel = true;
        return;
    }
    if (r->awaiting) {
        r->await_cancel = true;
        return;
    }
    if (r->busy) {
        if (r->last_ctrl_c && now - r->last_ctrl_c < REPL_CTRL_C_MS) {
            term_line(r, "⚡ Force exiting...");
            r->quit = true;
            return;
        }
        r->last_ctrl_c = now;
        term_line(r, "⚡ Interrupting agent... (press Ctrl+C again to force exit)");
        r->stop_upto = r->last_input;
        rt_interrupt(r->cx, r->session, AG_INT_STOP);
        return;
    }
    if (r->editing && !term_input_empty(r)) {
        term_clear_input(r);
        return;
    }
    r->quit = true;
}

static void on_ask(repl *r, repl_ev *e)
{
    if (r->nasks == REPL_MAX_ASKS) { /* cannot happen in practice: deny the surplus */
        rt_send(r->cx, e->from, ag_answer_new(e->id, TOOL_ANSWER_DENY, NULL));
        repl_ev_free(e);
        return;
    }
    r->asks[r->nasks++] = e;
    r->break_edit = true;
}

void repl_dispatch(repl *r, repl_ev *e)
{
    switch (e->kind) {
    case REV_DELTA:
        if (e->text && *e->text) {
            open_box(r);
            term_text(r, e->text, strlen(e->text));
        }
        break;
    case REV_REASONING: break; /* the original shows no reasoning in the CLI */
    case REV_PROGRESS: on_progress(r, e); break;
    case REV_STATUS:
        if (r->verbose > 0)
            term_line(r, "  ┊ %s", e->text ? e->text : "");
        break;
    case REV_ASK: on_ask(r, e); return;
    case REV_DONE: on_done(r, e); break;
    case REV_CTL:
    case REV_STORE:
        if (r->await_tag && e->id == r->await_tag && !r->awaited) {
            r->awaited = e;
            return;
        }
        break; /* a late reply */
    case REV_SIGNAL:
        if (e->code == SIGINT) {
            on_ctrl_c(r);
        } else { /* SIGTERM, SIGHUP: the terminal or the system wants us gone */
            r->quit = true;
            r->answer_cancel = r->await_cancel = true;
        }
        break;
    case REV_BYE: r->bye = true; break;
    default: break;
    }
    repl_ev_free(e);
}

static bool next_event(repl *r, repl_ev **out)
{
    if (r->bye)
        return false;
    repl_ev *e = NULL;
    ssize_t n = read(r->evr, &e, sizeof(e));
    if (n == 0) {
        r->bye = true; /* the bridge is gone */
        return false;
    }
    if (n != (ssize_t)sizeof(e))
        return false; /* EAGAIN (empty) or EINTR; a pointer is never split (8 < PIPE_BUF) */
    e->at_ms = repl_now_ms();
    *out = e;
    return true;
}

void repl_drain(repl *r)
{
    repl_ev *e;
    for (int i = 0; i < 1024 && !r->awaited && next_event(r, &e); i++)
        repl_dispatch(r, e);
    if (r->quit)
        r->break_edit = true;
    term_batch_end(r);
}

repl_ev *repl_await(repl *r, uint64_t tag, int64_t timeout_ms)
{
    r->await_tag = tag;
    r->awaited = NULL;
    r->awaiting = true;
    r->await_cancel = false;
    int64_t deadline = repl_now_ms() + timeout_ms;
    while (!r->awaited && !r->await_cancel && !r->bye) {
        int64_t left = deadline - repl_now_ms();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = r->evr, .events = POLLIN};
        if (poll(&p, 1, left > 1000 ? 1000 : (int)left) > 0)
            repl_drain(r);
    }
    repl_ev *e = r->awaited;
    r->awaited = NULL;
    r->await_tag = 0;
    r->awaiting = false;
    return e;
}

/* ============================================================ the session */

static rt_ref spawn(repl *r, bool resume)
{
    chat_spawn cs = {.session_id = r->session_id,
                     .resume = resume,
                     .model = r->model,
                     .ephemeral = r->system_prompt,
                     .toolsets = r->toolsets,
                     .interactive = true,
                     .allow_extra = (const char *const *)r->allowed};
    chat_strv_free(r->tools);
    r->tools = NULL;
    return chat_spawn_session(r->h, &cs, &r->tools);
}

void repl_new_session(repl *r)
{
    if (r->busy)
        rt_interrupt(r->cx, r->session, AG_INT_STOP);
    rt_stop(r->cx, r->session, RT_EXIT_NORMAL);
    if (r->talked && r->h->store.writer)
        rt_send(r->cx, r->h->store.writer, &st_end_session_new(r->session_id, "new_session")->hdr);
    rt_free(r->session_id);
    r->session_id = ag_new_session_id();
    r->session = spawn(r, false);
    r->busy = r->talked = r->box_open = false;
    r->stop_upto = 0;
    r->started = time(NULL);
}

repl_ev *repl_control(repl *r, int op)
{
    uint64_t tag = repl_tag(r);
    ag_msg_control *c = (ag_msg_control *)ag_control_new(op, r->bridge, tag);
    if (op == AG_CTL_RETRY) {
        c->sink = r->bridge;
        c->input_id = r->last_input = ++r->next_input;
    }
    rt_send(r->cx, r->session, &c->hdr);
    return repl_await(r, tag, REPL_AWAIT_MS);
}

cJSON *repl_fetch_messages(repl *r)
{
    st_store_refs *s = &r->h->store;
    if (!s->writer) {
        term_line(r, "(x_x) No session store.");
        return NULL;
    }
    /* Everything the session wrote before now is committed once this is acked. */
    uint64_t tag = repl_tag(r);
    rt_send(r->cx, s->writer, &st_ctl_new(ST_MSG_SYNC, r->bridge, tag)->hdr);
    repl_ev_free(repl_await(r, tag, REPL_AWAIT_MS));
    tag = repl_tag(r);
    st_msg_get *g = st_get_new(ST_MSG_GET_MESSAGES, r->session_id, r->bridge, tag);
    rt_send(r->cx, st_store_reader(s, rt_hash_str(r->session_id)), &g->hdr);
    repl_ev *e = repl_await(r, tag, REPL_AWAIT_MS);
    cJSON *msgs = NULL;
    if (!e)
        term_line(r, "(x_x) The session store did not answer.");
    else if (e->code)
        term_line(r, "(x_x) Cannot read the conversation: %s",
                  e->text ? e->text : rt_strerror(e->code));
    else if (cJSON_IsArray(e->json))
        msgs = e->json, e->json = NULL;
    repl_ev_free(e);
    return msgs;
}

/* ============================================================ turns */

void repl_send_message(repl *r, const char *text)
{
    if (!r->busy) {
        rule(r, "", NULL, NULL);
        r->busy = true;
        r->box_open = false;
        r->stop_upto = 0;
        r->last_ctrl_c = 0;
        r->last_tool[0] = '\0';
    } else {
        term_line(r, "⚡ New message detected, interrupting...");
    }
    r->talked = true;
    r->last_input = ++r->next_input;
    rt_send(r->cx, r->session, ag_input_new(text, r->bridge, r->last_input));
}

/* "always": into config.yaml's command_allowlist, and known to later sessions of this run. */
static void approve_always(repl *r, const char *command)
{
    char key[128] = "", msg[512];
    int rc = chat_allowlist_add(r->h->home, command, key, sizeof(key), msg, sizeof(msg));
    if (rc) {
        term_line(r, "      (x_x) Could not save the approval: %s", msg);
        if (rc != -EINVAL || !*key)
            return;
    } else {
        term_line(r, "      ✓ Pattern '%s' permanently approved (command_allowlist)", key);
    }
    if (r->nallowed >= 256)
        return;
    r->allowed = rt_xrealloc(r->allowed, (r->nallowed + 2) * sizeof(char *));
    r->allowed[r->nallowed++] = rt_xstrdup(key);
    r->allowed[r->nallowed] = NULL;
}

static void answer_ask(repl *r)
{
    repl_ev *a = r->asks[0];
    memmove(r->asks, r->asks + 1, --r->nasks * sizeof(r->asks[0]));
    term_endline(r);
    chat_print_ask(r->out, a->code, a->text, a->text2, a->json, a->timeout_ms);
    char *line = term_read_answer(r, a->at_ms + a->timeout_ms, a->code == TOOL_ASK_SUDO);
    int answer;
    const char *text;
    chat_parse_answer(a->code, line, a->json, &answer, &text);
    if (r->answer_cancel) {
        answer = a->code == TOOL_ASK_APPROVAL ? TOOL_ANSWER_DENY : TOOL_ANSWER_TIMEOUT;
        text = NULL;
        term_line(r, "\n      ✗ Cancelled");
    } else if (!line) {
        term_line(r, "\n%s", chat_timeout_text(a->code));
    } else if (answer == TOOL_ANSWER_ALWAYS) {
        approve_always(r, a->text);
    }
    rt_send(r->cx, a->from, ag_answer_new(a->id, answer, text));
    rt_free(line);
    repl_ev_free(a);
}

static void queue_command(repl *r, const char *line)
{
    if (r->nqueued == REPL_MAX_QUEUED) {
        term_line(r, "(._.) Too many commands waiting; %s was dropped.", line);
        return;
    }
    r->queued[r->nqueued++] = rt_xstrdup(line);
    term_line(r, "⏳ %s will run when the agent is done.", line);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

static void handle_line(repl *r, char *line)
{
    char *text = trim(line);
    if (!*text)
        return;
    hist_add(r, text);
    if (text[0] != '/')
        repl_send_message(r, text);
    else if (r->busy && !repl_command_runs_busy(text))
        queue_command(r, text);
    else
        repl_command(r, text);
}

static void loop(repl *r)
{
    while (!r->quit && !r->bye) {
        if (r->nasks) {
            answer_ask(r);
            continue;
        }
        if (!r->busy && r->nqueued) {
            char *c = r->queued[0];
            memmove(r->queued, r->queued + 1, --r->nqueued * sizeof(r->queued[0]));
            repl_command(r, c);
            rt_free(c);
            continue;
        }
        char *line = term_read_line(r);
        if (!line) {
            if (r->eof)
                r->quit = true;
            continue;
        }
        handle_line(r, line);
        rt_free(line);
    }
}

/* ============================================================ start and end */

static void set_locale(void)
{
    if (!setlocale(LC_CTYPE, "") || MB_CUR_MAX == 1)
        (void)setlocale(LC_CTYPE, "C.UTF-8"); /* libedit needs a UTF-8 locale for ❯ and ⚕ */
}

static int verbose_level(const hm_config *cfg)
{
    const cJSON *v = hm_config_node(cfg, "display.tool_progress");
    if (cJSON_IsFalse(v))
        return 0;
    const char *s = cJSON_IsString(v) ? v->valuestring : "all";
    if (strcasecmp(s, "off") == 0 || strcasecmp(s, "false") == 0)
        return 0;
    if (strcasecmp(s, "new") == 0)
        return 1;
    if (strcasecmp(s, "verbose") == 0)
        return 3;
    return 2;
}

/* Stop the bridge and free whatever it still wrote (it writes nothing after REV_BYE). */
static void stop_bridge(repl *r)
{
    rt_stop(r->cx, r->bridge, RT_EXIT_NORMAL);
    int64_t deadline = repl_now_ms() + 5000;
    while (!r->bye && repl_now_ms() < deadline) {
        struct pollfd p = {.fd = r->evr, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        repl_ev *e;
        while (next_event(r, &e)) {
            if (e->kind == REV_BYE)
                r->bye = true;
            repl_ev_free(e);
        }
    }
}

static void cleanup(repl *r)
{
    for (size_t i = 0; i < r->nasks; i++)
        repl_ev_free(r->asks[i]);
    for (size_t i = 0; i < r->nqueued; i++)
        rt_free(r->queued[i]);
    repl_ev_free(r->awaited);
    chat_strv_free(r->tools);
    chat_strv_free(r->allowed);
    rt_free(r->session_id);
    rt_free(r->model);
    rt_free(r->system_prompt);
    rt_free(r->hist_path);
    if (r->evr >= 0)
        close(r->evr);
}

static void leave(repl *r)
{
    if (r->busy)
        rt_interrupt(r->cx, r->session, AG_INT_STOP);
    r->busy = false;
    term_endline(r);
    repl_summary(r);
    if (r->talked && r->h->store.writer)
        rt_send(r->cx, r->h->store.writer, &st_end_session_new(r->session_id, "cli_close")->hdr);
    term_line(r, "\nGoodbye! ⚕");
}

static int start(repl *r, hm_host *h, const repl_opts *o)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    r->evr = fds[0];
    (void)fcntl(r->evr, F_SETFL, O_NONBLOCK);
    r->bridge = repl_bridge_start(r->cx, fds[1]);
    int rc = rt_signal_watch(h->reactor, r->bridge);
    if (rc)
        RT_WARN("cli", "Ctrl+C will not reach the chat: %s", rt_strerror(rc));
    r->model = rt_xstrdup(h->model ? h->model : "");
    r->system_prompt = rt_xstrdup(chat_system_prompt(h));
    r->session_id = o->resume_id ? rt_xstrdup(o->resume_id) : ag_new_session_id();
    r->session = spawn(r, o->resume_id != NULL);
    r->talked = o->resume_id != NULL;
    r->verbose = verbose_level(h->cfg);
    return term_init(r);
}

int repl_run(hm_host *h, const repl_opts *o)
{
    repl r = {.h = h, .cx = rt_ctx_external(h->rt), .evr = -1, .toolsets = o->toolsets};
    r.started = time(NULL);
    r.started_ms = repl_now_ms();
    set_locale();
    /* Log lines would tear the screen apart: they go to a file while the chat runs. */
    char *log = rt_xasprintf("%s/logs/cli.log", h->home);
    bool logfile = rt_log_set_file(log) == 0;
    rt_free(log);
    int rc = start(&r, h, o);
    if (rc) {
        fprintf(stderr, "hermes: cannot start the interactive chat: %s\n", rt_strerror(rc));
    } else {
        hist_load(&r);
        repl_banner(&r);
        if (o->resume_id)
            term_line(&r, "↻ Resumed session %s", o->resume_id);
        loop(&r);
        leave(&r);
    }
    term_fini(&r);
    if (r.bridge)
        stop_bridge(&r);
    cleanup(&r);
    if (logfile)
        (void)rt_log_set_file(NULL);
    return rc ? 1 : 0;
}
