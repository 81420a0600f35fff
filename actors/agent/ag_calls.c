/*
 * ag_calls — a session's tool calls and the questions they ask (approvals, clarify).
 * Rule 4 of ag_session.c: calls of one response run side by side when every running one
 * is parallel-safe, otherwise one at a time in the model's order. Results are appended in
 * call order once all are in (rule 1).
 *
 * Checkpoints (tools/checkpoint): a call that changes files (write_file, patch, a destructive
 * terminal command) starts only after the checkpoint service has answered its snapshot
 * request (at most one snapshot per turn and directory; nothing when checkpoints are off).
 * Meanwhile the call counts as started, without an actor; the answer is a TOOL_MSG_RESULT
 * whose seq carries CKPT_SEQ_FLAG.
 */
#include "ag_int.h"
#include "ag_persist.h"
#include "ag_todo.h"
#include "ckpt.h"
#include "rt_alloc.h"
#include "rt_timer.h"

#include <string.h>

#define CLARIFY_TIMEOUT_MS 120000
#define PREVIEW_MAX        120

/* ========================================================= calls and asks */

void ag__free_calls(ag_session *s)
{
    for (size_t i = 0; i < s->ncalls; i++) {
        rt_free(s->calls[i].id);
        rt_free(s->calls[i].name);
        rt_free(s->calls[i].args);
        rt_free(s->calls[i].result);
    }
    rt_free(s->calls);
    s->calls = NULL;
    s->ncalls = 0;
}

static void free_ask(rt_ctx *cx, ag_ask *a)
{
    if (a->timer)
        rt_timer_cancel(cx, a->timer);
    rt_free(a->pattern_key);
    rt_free(a);
}

/* Forget every open ask (the turn ended); their call actors are gone or going. */
void ag__clear_asks(rt_ctx *cx, ag_session *s)
{
    for (size_t i = 0; i < s->asks.cap; i++)
        if (s->asks.keys[i])
            free_ask(cx, s->asks.vals[i]);
    rt_map_fini(&s->asks);
    rt_map_init(&s->asks);
}

static bool is_approved(const ag_session *s, const char *key)
{
    for (size_t i = 0; key && i < s->napproved; i++)
        if (strcmp(s->approved[i], key) == 0)
            return true;
    return false;
}

static void approve(ag_session *s, const char *key)
{
    if (!key || is_approved(s, key))
        return;
    s->approved = rt_xrealloc(s->approved, (s->napproved + 1) * sizeof(*s->approved));
    s->approved[s->napproved++] = rt_xstrdup(key);
}

/* ================================================================ tools */

static char *preview_of(const ag_call *c)
{
    cJSON *a = c->args ? cJSON_Parse(c->args) : NULL;
    const cJSON *first = a && a->child ? a->child : NULL;
    char *v = NULL;
    if (cJSON_IsString(first))
        v = rt_xstrdup(first->valuestring);
    else if (first) {
        char *p = cJSON_PrintUnformatted(first);
        v = rt_xstrdup(p ? p : "");
        cJSON_free(p);
    }
    cJSON_Delete(a);
    if (!v)
        return rt_xstrdup("");
    if (strlen(v) > PREVIEW_MAX)
        memcpy(v + PREVIEW_MAX - 3, "...", 4);
    return v;
}

static void progress(rt_ctx *cx, ag_session *s, const char *tool, char *preview)
{
    ag_msg_progress *p = RT_MSG_NEW(ag_msg_progress, AG_MSG_PROGRESS);
    p->from = rt_self(cx);
    p->turn = s->turn;
    p->tool = rt_xstrdup(tool);
    p->preview = preview;
    p->hdr.drop = ag__drop_progress;
    ag__to_sink(cx, s, &p->hdr);
}

static bool call_running(const ag_session *s, size_t *nrunning, bool *unsafe_running)
{
    *nrunning = 0;
    *unsafe_running = false;
    for (size_t i = 0; i < s->ncalls; i++)
        if (s->calls[i].started && !s->calls[i].done) {
            (*nrunning)++;
            if (!s->calls[i].def || !s->calls[i].def->parallel_safe)
                *unsafe_running = true;
        }
    return *nrunning > 0;
}

static void launch_call(rt_ctx *cx, ag_session *s, ag_call *c)
{
    c->actor = tool_start_call(cx, c->def, s->env, c->seq, c->id, c->args);
    if (!c->actor) {
        c->result = rt_xasprintf("{\"error\":\"Unknown tool: %s\"}", c->name);
        c->done = true;
    }
}

/* Ask for a snapshot before a call that changes files; true when the call waits for it. */
static bool snapshot_first(rt_ctx *cx, ag_session *s, const ag_call *c)
{
    char *path = NULL;
    if (!c->def || !s->env || !s->env->hermes_home ||
        !ckpt_call_changes_files(c->name, c->args, &path))
        return false;
    ckpt_msg_req *q = ckpt_req_new(CKPT_OP_SNAPSHOT, s->env->hermes_home, s->env->cwd);
    q->path = path;
    q->reason = ckpt_call_reason(c->name, c->args);
    q->reply_kind = CKPT_REPLY_TOOL;
    q->reply_to = rt_self(cx);
    q->tag = c->seq | CKPT_SEQ_FLAG;
    q->session = rt_self(cx);
    q->turn = s->turn;
    return ckpt_request_send(cx, q); /* unreachable service: the call runs without */
}

/* Run a call the session handles itself, or start its actor (after its snapshot). */
static void start_call(rt_ctx *cx, ag_session *s, ag_call *c)
{
    c->started = true;
    progress(cx, s, c->name, preview_of(c));
    if (strcmp(c->name, "todo") == 0) {
        c->result = ag_todo_apply(&s->todos, c->args);
        c->done = true;
        return;
    }
    if (snapshot_first(cx, s, c))
        return; /* launched when the service answers (ag__on_tool_result) */
    launch_call(cx, s, c);
}

static bool all_done(const ag_session *s)
{
    for (size_t i = 0; i < s->ncalls; i++)
        if (!s->calls[i].done)
            return false;
    return true;
}

static char *capped(char *result)
{
    size_t chars = 0, i = 0;
    for (; result[i]; i++)
        if (((unsigned char)result[i] & 0xC0) != 0x80 && ++chars > TOOL_RESULT_MAX_CHARS)
            break;
    if (!result[i])
        return result;
    size_t total = chars;
    for (size_t j = i; result[j]; j++)
        if (((unsigned char)result[j] & 0xC0) != 0x80)
            total++;
    total--; /* the character at i was counted twice */
    char *out = rt_xasprintf("%.*s\n\n[Truncated: tool response was %zu chars, exceeding the "
                             "100,000 char limit]",
                             (int)i, result, total);
    rt_free(result);
    return out;
}

static void tools_finished(rt_ctx *cx, ag_session *s)
{
    for (size_t i = 0; i < s->ncalls; i++) {
        ag_call *c = &s->calls[i];
        c->result = capped(c->result ? c->result : rt_xstrdup(""));
        ag__append_tool_result(cx, s, c->id, c->name, c->result);
    }
    ag__free_calls(s);
    ag__clear_asks(cx, s);
    if (ag__should_compress(s) && ag__start_compress(cx, s))
        return; /* the model is asked again once the summary is in */
    ag__start_llm(cx, s);
}

/* Start what may start now (rule 4); finish the round when everything is done. */
void ag__dispatch_calls(rt_ctx *cx, ag_session *s)
{
    for (size_t i = 0; i < s->ncalls; i++) {
        ag_call *c = &s->calls[i];
        if (c->started)
            continue;
        size_t nrunning;
        bool unsafe_running;
        call_running(s, &nrunning, &unsafe_running);
        bool safe = c->def && c->def->parallel_safe;
        if (nrunning > 0 && (unsafe_running || !safe))
            break; /* wait for the running ones */
        start_call(cx, s, c);
        if (!safe && !c->done)
            break; /* one unsafe call at a time */
    }
    if (all_done(s))
        tools_finished(cx, s);
}

static ag_call *call_by_seq(ag_session *s, uint64_t seq)
{
    for (size_t i = 0; i < s->ncalls; i++)
        if (s->calls[i].seq == seq)
            return &s->calls[i];
    return NULL;
}

void ag__on_tool_result(rt_ctx *cx, ag_session *s, tool_msg_result *r)
{
    if (r->seq & CKPT_SEQ_FLAG) { /* the snapshot before a call is done (or failed): go on */
        ag_call *w = s->phase == AG_PH_TOOLS ? call_by_seq(s, r->seq & ~CKPT_SEQ_FLAG) : NULL;
        if (!w || w->done || w->actor || !w->started)
            return; /* the turn was interrupted meanwhile */
        launch_call(cx, s, w);
        ag__dispatch_calls(cx, s);
        return;
    }
    ag_call *c = s->phase == AG_PH_TOOLS ? call_by_seq(s, r->seq) : NULL;
    if (!c || c->done)
        return; /* a late result after an interrupt */
    c->result = r->result;
    r->result = NULL;
    c->done = true;
    ag__dispatch_calls(cx, s);
}

void ag__on_tool_progress(rt_ctx *cx, ag_session *s, tool_msg_progress *p)
{
    ag_call *c = s->phase == AG_PH_TOOLS ? call_by_seq(s, p->seq) : NULL;
    if (!c)
        return;
    progress(cx, s, c->name, p->text);
    p->text = NULL;
}

/* A call that ended without a result (crashed, killed) must not stall the round. */
void ag__on_exit_of_child(rt_ctx *cx, ag_session *s, rt_msg_exit *e)
{
    if (e->reason == RT_EXIT_NORMAL || s->phase != AG_PH_TOOLS)
        return;
    for (size_t i = 0; i < s->ncalls; i++) {
        ag_call *c = &s->calls[i];
        if (c->actor == e->from && !c->done) {
            c->result = rt_xasprintf("{\"error\":\"Tool execution failed: the %s call ended "
                                     "unexpectedly\"}",
                                     c->name);
            c->done = true;
        }
    }
    ag__dispatch_calls(cx, s);
}

/* ================================================================= asks */

static void answer_tool(rt_ctx *cx, ag_ask *a, int answer, const char *text)
{
    rt_send(cx, a->tool, tool_answer_new(answer, text));
}

void ag__on_tool_ask(rt_ctx *cx, ag_session *s, tool_msg_ask *q)
{
    if (s->phase != AG_PH_TOOLS || !call_by_seq(s, q->seq)) {
        rt_send(cx, q->reply_to, tool_answer_new(TOOL_ANSWER_DENY, NULL));
        return;
    }
    if (q->kind == TOOL_ASK_APPROVAL && is_approved(s, q->pattern_key)) {
        rt_send(cx, q->reply_to, tool_answer_new(TOOL_ANSWER_ONCE, NULL));
        return;
    }
    ag_ask *a = rt_xcalloc(1, sizeof(*a));
    a->id = ++s->next_ask;
    a->tool = q->reply_to;
    a->seq = q->seq;
    a->kind = q->kind;
    a->pattern_key = q->pattern_key;
    q->pattern_key = NULL;
    int64_t timeout = q->kind == TOOL_ASK_APPROVAL ? s->approval_timeout_ms : CLARIFY_TIMEOUT_MS;
    rt_msg_timeout *t = RT_MSG_NEW(rt_msg_timeout, AG_MSG_ASK_TIMEOUT);
    t->tag = a->id;
    a->timer = rt_send_after(cx, rt_self(cx), &t->hdr, timeout);
    rt_map_put(&s->asks, a->id, a);

    ag_msg_ask *m = RT_MSG_NEW(ag_msg_ask, AG_MSG_ASK);
    m->from = rt_self(cx);
    m->turn = s->turn;
    m->ask_id = a->id;
    m->kind = q->kind;
    m->text = q->text;
    m->description = q->description;
    m->choices = q->choices;
    q->text = q->description = NULL;
    q->choices = NULL;
    m->timeout_ms = timeout;
    m->hdr.drop = ag__drop_ask;
    ag__to_sink(cx, s, &m->hdr);
}

void ag__on_answer(rt_ctx *cx, ag_session *s, ag_msg_answer *m)
{
    ag_ask *a = rt_map_del(&s->asks, m->ask_id);
    if (!a)
        return; /* answered already, timed out, or the turn is over */
    if (m->answer == TOOL_ANSWER_SESSION || m->answer == TOOL_ANSWER_ALWAYS)
        approve(s, a->pattern_key);
    answer_tool(cx, a, m->answer, m->text);
    free_ask(cx, a);
}

void ag__on_ask_timeout(rt_ctx *cx, ag_session *s, rt_msg_timeout *t)
{
    ag_ask *a = rt_map_del(&s->asks, t->tag);
    if (!a)
        return;
    a->timer = 0; /* it fired */
    answer_tool(cx, a, TOOL_ANSWER_TIMEOUT, NULL);
    free_ask(cx, a);
}
