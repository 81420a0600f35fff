/*
 * ag_session — the agent loop as a state machine. See ag_session.h for the contract.
 *
 * A turn moves IDLE → (PROMPT) → PERSIST → LLM → TOOLS → LLM … → IDLE. Every phase waits
 * for exactly one kind of message; anything arriving in the wrong phase is a late reply and
 * is ignored (matched by tag or seq). Rules the code cites:
 *
 *   1. The transcript is always valid for the API: an assistant message with tool_calls is
 *      followed by one tool message per call, in call order, before anything else — even
 *      when the turn is interrupted (cancelled calls get the original's cancellation text).
 *   2. Every message appended to the transcript is sent to the store once (the original
 *      logs each one twice). The user's message is durable before the model sees it; when
 *      the disk has no room for it, it waits for space (ag_save.c) instead of being lost.
 *   3. Inputs that arrive during a turn are kept, in order, and answered together by one
 *      follow-up turn; the running turn is interrupted unless the input was queued.
 *   4. Tool calls of one response run side by side when all of the running ones are
 *      parallel-safe; otherwise one at a time, in the model's order.
 */
#include "ag_session.h"

#include "ag_int.h"
#include "ag_persist.h"
#include "ag_todo.h"
#include "llm_provider.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_timer.h"
#include "rt_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DEFAULT_MAX_ITERATIONS 60
#define MAX_FORMAT_RETRIES     3
#define PREVIEW_MAX            120

static const char CANCELLED_TEXT[] = "[Tool execution cancelled - user interrupted]";
static const char MAX_ITER_PROMPT[] =
    "You've reached the maximum number of tool-calling iterations allowed. Please provide a "
    "final response summarizing what you've found and accomplished so far, without calling "
    "any more tools.";

/* ============================================================ small helpers */

char *ag__dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

const char *ag__jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void set_phase(ag_session *s, int phase, int line)
{
    RT_TRACE("agent", "session %s phase %d -> %d (line %d)", s->session_id, s->phase, phase, line);
    s->phase = phase;
}
#define SET_PHASE(s, p) set_phase((s), (p), __LINE__)

/* ======================================================= the transcript */

cJSON *ag__msg_obj(const char *role, const char *content)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", content ? content : "");
    return m;
}

/* Append m (taken) to the transcript and send it to the store (rule 2). */
void ag__append(rt_ctx *cx, ag_session *s, cJSON *m, uint64_t ack_tag)
{
    const char *role = ag__jstr(m, "role");
    if (!ack_tag && (s->unsaved_in || s->unsaved_out) && role && !strcmp(role, "assistant")) {
        ag_persist_answer(cx, s->store, s->session_id, m, s->unsaved_in, s->unsaved_out);
        s->unsaved_in = s->unsaved_out = 0;
    } else {
        ag_persist_message(cx, s->store, s->session_id, m, ack_tag ? rt_self(cx) : 0, ack_tag);
    }
    cJSON_AddItemToArray(s->messages, m);
}

void ag__append_tool_result(rt_ctx *cx, ag_session *s, const char *call_id, const char *name,
                            const char *content)
{
    cJSON *m = ag__msg_obj("tool", content);
    cJSON_AddStringToObject(m, "tool_call_id", call_id ? call_id : "");
    if (name)
        cJSON_AddStringToObject(m, "name", name);
    ag__append(cx, s, m, 0);
}

/* The messages for a request: system prompt (+ ephemeral), then the transcript, as
 * references into its frozen runs (*keep: what the request must keep alive). */
static cJSON *request_messages(ag_session *s, ag_frozen_keep **keep)
{
    cJSON *arr = cJSON_CreateArray();
    rt_buf sys;
    rt_buf_init(&sys, SIZE_MAX / 2);
    if (s->system_prompt)
        rt_buf_append_str(&sys, s->system_prompt);
    if (s->ephemeral && *s->ephemeral) {
        if (sys.len)
            rt_buf_append_str(&sys, "\n\n");
        rt_buf_append_str(&sys, s->ephemeral);
    }
    if (sys.len)
        cJSON_AddItemToArray(arr, ag__msg_obj("system", rt_buf_cstr(&sys)));
    rt_buf_fini(&sys);
    /* "name" is our bookkeeping only */
    *keep = ag_frozen_refer(&s->frozen, &s->nfrozen, &s->frozen_upto, s->messages, "name", arr);
    return arr;
}

/* ============================================================ turn start */

/* Join the pending inputs into text; true when one of them asks to answer the transcript as
 * it stands (ag_msg_input.unanswered). */
static bool take_pending(ag_session *s, rt_buf *text)
{
    ag_pending *p = s->pending;
    bool unanswered = false;
    s->pending = NULL;
    s->pending_tail = &s->pending;
    s->npending = 0;
    while (p) {
        ag_pending *next = p->next;
        if (p->unanswered) {
            unanswered = true;
            s->sink = p->sink;
            s->input_id = p->input_id;
            rt_free(p->text);
            rt_free(p->sender);
            rt_free(p);
            p = next;
            continue;
        }
        if (text->len)
            rt_buf_append_str(text, "\n");
        if (p->sender)
            rt_buf_printf(text, "[%s] ", p->sender);
        rt_buf_append_str(text, p->text);
        s->sink = p->sink; /* the latest input's sink answers */
        s->input_id = p->input_id;
        rt_free(p->text);
        rt_free(p->sender);
        rt_free(p);
        p = next;
    }
    return unanswered;
}

static void request_prompt(rt_ctx *cx, ag_session *s)
{
    ag_prompt_opts o = {
        .hermes_home = s->env ? s->env->hermes_home : NULL,
        .cwd = s->env ? s->env->cwd : NULL,
        .platform = s->source,
        .tools = (const char *const *)s->tools,
        .system_message = s->system_message,
        .skip_context_files = s->skip_context_files,
        .skip_memory = s->skip_memory,
        .memory_enabled = true,
        .user_profile_enabled = true,
    };
    s->tag = ++s->next_tag;
    rt_send(cx, s->prompt_service, ag_prompt_req_new(rt_self(cx), s->tag, &o));
    SET_PHASE(s, AG_PH_PROMPT);
}

/* Messages that came while a turn was being prepared (on_interrupt lets them be) join it
 * before the model is first asked, so that one answer covers them all. True if any did. */
static bool fold_pending(rt_ctx *cx, ag_session *s)
{
    if (!s->pending || s->iterations != 0)
        return false;
    rt_buf text;
    rt_buf_init(&text, SIZE_MAX / 2);
    (void)take_pending(s, &text);
    bool any = text.len != 0;
    if (any)
        ag__save_user(cx, s, ag__msg_obj("user", rt_buf_cstr(&text)));
    rt_buf_fini(&text);
    return any;
}

/* The user's message is in the transcript; make it durable, then ask the model. */
static void persist_then_llm(rt_ctx *cx, ag_session *s)
{
    if (!s->store) {
        (void)fold_pending(cx, s);
        ag__start_llm(cx, s);
        return;
    }
    if (s->save_state != AG_SAVE_NONE) { /* its own ack says (ag_save.c) */
        SET_PHASE(s, AG_PH_PERSIST);
        ag__save_continue(cx, s);
        return;
    }
    /* Nothing of the user's unsaved (after compression, a recovered turn): everything sent
     * so far must be durable. */
    s->tag = ++s->next_tag;
    ag_persist_sync(cx, s->store, rt_self(cx), s->tag);
    SET_PHASE(s, AG_PH_PERSIST);
}

/* The role of the transcript's last message, or "". */
static const char *last_role(const ag_session *s)
{
    int n = cJSON_GetArraySize(s->messages);
    const char *r = n ? ag__jstr(cJSON_GetArrayItem(s->messages, n - 1), "role") : NULL;
    return r ? r : "";
}

static void begin_turn(rt_ctx *cx, ag_session *s)
{
    rt_buf text;
    rt_buf_init(&text, SIZE_MAX / 2);
    bool unanswered = take_pending(s, &text);
    s->turn++;
    s->iterations = 0;
    s->overflow_retried = false;
    s->invalid_tool_retries = s->invalid_json_retries = s->empty_retries = 0;
    rt_free(s->fallback_text);
    s->fallback_text = NULL;
    if (s->idle_timer) {
        rt_timer_cancel(cx, s->idle_timer);
        s->idle_timer = 0;
    }
    if (!s->session_created) {
        ag__save_create(cx, s, 0);
        s->session_created = true;
        if (s->seed && cJSON_GetArraySize(s->messages) == 0) {
            cJSON *m;
            while ((m = cJSON_DetachItemFromArray(s->seed, 0)))
                ag__append(cx, s, m, 0);
        }
        cJSON_Delete(s->seed);
        s->seed = NULL;
    } else if (ag_save_retryable(s->create_err)) { /* the disk kept the row out: again */
        ag__save_create(cx, s, cJSON_GetArraySize(s->messages));
    }
    if (!unanswered || text.len) {
        ag__save_user(cx, s, ag__msg_obj("user", rt_buf_cstr(&text)));
    } else if (strcmp(last_role(s), "user") != 0 && strcmp(last_role(s), "tool") != 0) {
        rt_buf_fini(&text); /* answered after all: nothing to do */
        ag__end_turn(cx, s, NULL, -EALREADY, NULL, false);
        return;
    }
    rt_buf_fini(&text);
    if (!s->system_prompt && s->prompt_service)
        request_prompt(cx, s);
    else
        persist_then_llm(cx, s);
}

void ag__resume_after_compress(rt_ctx *cx, ag_session *s)
{
    if (s->prompt_service)
        request_prompt(cx, s); /* then persist_then_llm, then the model */
    else
        ag__start_llm(cx, s);
}

static void on_prompt(rt_ctx *cx, ag_session *s, ag_msg_prompt_reply *m)
{
    if (s->phase != AG_PH_PROMPT || m->tag != s->tag)
        return;
    s->system_prompt = m->text;
    m->text = NULL;
    ag_persist_system_prompt(cx, s->store, s->session_id, s->system_prompt);
    persist_then_llm(cx, s);
}

static void on_persisted(rt_ctx *cx, ag_session *s, uint64_t tag, int err, const char *errmsg)
{
    if (s->phase != AG_PH_PERSIST || tag != s->tag)
        return;
    if (err) {
        /* The message could not be made durable: say so instead of answering from a
         * transcript that would be lost on a restart. */
        char *msg = rt_xasprintf("Could not save your message (%s). Nothing was sent to the "
                                 "model; please try again.",
                                 errmsg && *errmsg ? errmsg : rt_strerror(err));
        ag__end_turn(cx, s, NULL, err, msg, false);
        return;
    }
    ag__saved(cx, s);
}

void ag__saved(rt_ctx *cx, ag_session *s)
{
    if (fold_pending(cx, s)) { /* made durable first, like the turn's own message */
        persist_then_llm(cx, s);
        return;
    }
    ag__start_llm(cx, s);
}

/* ================================================================ the model */

static void send_request(rt_ctx *cx, ag_session *s, bool with_tools, int priority)
{
    /* The schemas are shared and immutable for the life of the process (tool_schemas_shared):
     * the request refers to them instead of copying ~36 schemas per model call. */
    cJSON *tools =
        with_tools && s->tool_schemas ? cJSON_CreateArrayReference(s->tool_schemas->child) : NULL;
    ag_frozen_keep *keep = NULL;
    cJSON *msgs = request_messages(s, &keep);
    llm_msg_request *r = llm_request_new(rt_self(cx), ++s->next_tag, msgs, tools);
    r->keep = keep;
    r->keep_drop = ag_frozen_keep_drop;
    s->tag = r->tag;
    r->model = ag__dupn(s->model);
    r->stream = s->stream;
    r->priority = priority;
    s->api_calls++;
    rt_send(cx, s->provider, &r->hdr);
}

void ag__start_llm(rt_ctx *cx, ag_session *s)
{
    /* Preflight (the original's too): a conversation whose last request already filled the
     * window past the threshold is compressed before this turn's first request - without
     * tool calls nothing else would ever compress it. The summary's turn comes back here with
     * last_prompt_tokens reset. */
    if (s->iterations == 0 && ag__should_compress(s) && ag__start_compress(cx, s))
        return;
    if (s->iterations >= s->max_iterations) {
        ag__append(cx, s, ag__msg_obj("user", MAX_ITER_PROMPT), 0);
        send_request(cx, s, false, LLM_PRIO_MAIN);
        SET_PHASE(s, AG_PH_SUMMARY);
        return;
    }
    s->iterations++;
    send_request(cx, s, true, LLM_PRIO_MAIN);
    SET_PHASE(s, AG_PH_LLM);
}

static void on_delta(rt_ctx *cx, ag_session *s, llm_msg_delta *d)
{
    if ((s->phase != AG_PH_LLM && s->phase != AG_PH_SUMMARY) || d->tag != s->tag)
        return;
    ag_msg_delta *m = RT_MSG_NEW(ag_msg_delta, AG_MSG_DELTA);
    m->turn = s->turn;
    m->kind = d->kind;
    m->text = d->text;
    d->text = NULL;
    m->hdr.drop = ag__drop_delta;
    ag__to_sink(cx, s, &m->hdr);
}

/* "Waiting for the provider": the provider says it once per request held back; a turn with
 * tool calls makes several requests, and the user hears it once per turn. */
static void on_llm_status(rt_ctx *cx, ag_session *s, llm_msg_status *st)
{
    if (st->tag != s->tag || !st->text || s->status_turn == s->turn)
        return;
    s->status_turn = s->turn;
    ag__send_status(cx, s, st->text);
}

/* Remove <think>…</think> blocks and surrounding whitespace (new string). */
static char *strip_think(const char *text)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    const char *p = text ? text : "";
    for (;;) {
        const char *open = strstr(p, "<think>");
        if (!open) {
            rt_buf_append_str(&b, p);
            break;
        }
        rt_buf_append(&b, p, (size_t)(open - p));
        const char *close = strstr(open, "</think>");
        if (!close)
            break;
        p = close + strlen("</think>");
    }
    char *s = rt_buf_steal(&b, NULL);
    char *start = s;
    while (*start == ' ' || *start == '\n' || *start == '\t' || *start == '\r')
        start++;
    size_t n = strlen(start);
    while (n && (start[n - 1] == ' ' || start[n - 1] == '\n' || start[n - 1] == '\t' ||
                 start[n - 1] == '\r'))
        n--;
    char *out = rt_xstrndup(start, n);
    rt_free(s);
    return out;
}

/* agent-core §1.4 step 11.7a/b: unknown tools and invalid JSON are retried (up to three
 * times) without touching the transcript. Returns true when the response was consumed. */
static bool bad_tool_calls(rt_ctx *cx, ag_session *s, cJSON *tcs)
{
    cJSON *tc;
    cJSON_ArrayForEach(tc, tcs)
    {
        cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        const char *name = ag__jstr(fn, "name");
        if (!name || !tool_env_has_tool(s->env, name)) {
            if (++s->invalid_tool_retries < MAX_FORMAT_RETRIES) {
                s->iterations--; /* a retry is not an iteration */
                ag__start_llm(cx, s);
                return true;
            }
            char *msg = rt_xasprintf("Model generated invalid tool call: %s", name ? name : "?");
            ag__end_turn(cx, s, NULL, -EPROTO, msg, false);
            return true;
        }
        cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
        const char *a = cJSON_IsString(args) ? args->valuestring : "";
        bool blank = strspn(a, " \t\r\n") == strlen(a);
        if (blank) {
            cJSON_ReplaceItemInObjectCaseSensitive(fn, "arguments", cJSON_CreateString("{}"));
            continue;
        }
        cJSON *parsed = cJSON_Parse(a);
        bool ok = cJSON_IsObject(parsed);
        cJSON_Delete(parsed);
        if (ok)
            continue;
        if (++s->invalid_json_retries < MAX_FORMAT_RETRIES) {
            s->iterations--;
            ag__start_llm(cx, s);
            return true;
        }
        s->invalid_json_retries = 0;
        char *note = rt_xasprintf(
            "Your tool call to '%s' had invalid JSON arguments. For tools with no required "
            "parameters, use an empty object: {}. Please either retry the tool call with valid "
            "JSON, or respond without using that tool.",
            name);
        ag__append(cx, s, ag__msg_obj("user", note), 0);
        rt_free(note);
        ag__start_llm(cx, s);
        return true;
    }
    return false;
}

static void on_tool_calls(rt_ctx *cx, ag_session *s, cJSON *msg)
{
    cJSON *tcs = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
    if (bad_tool_calls(cx, s, tcs)) {
        cJSON_Delete(msg);
        return;
    }
    char *visible = strip_think(ag__jstr(msg, "content"));
    if (*visible) {
        rt_free(s->fallback_text);
        s->fallback_text = visible;
    } else {
        rt_free(visible);
    }
    s->ncalls = (size_t)cJSON_GetArraySize(tcs);
    s->calls = rt_xcalloc(s->ncalls ? s->ncalls : 1, sizeof(*s->calls));
    size_t i = 0;
    cJSON *tc;
    cJSON_ArrayForEach(tc, tcs)
    {
        cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        ag_call *c = &s->calls[i++];
        c->seq = ++s->next_seq;
        c->id = ag__dupn(ag__jstr(tc, "id"));
        c->name = ag__dupn(ag__jstr(fn, "name"));
        c->args = ag__dupn(ag__jstr(fn, "arguments"));
        c->def = tool_find(c->name);
    }
    ag__append(cx, s, msg, 0);
    SET_PHASE(s, AG_PH_TOOLS);
    ag__dispatch_calls(cx, s);
}

static void final_answer(rt_ctx *cx, ag_session *s, cJSON *msg)
{
    char *text = strip_think(ag__jstr(msg, "content"));
    if (!*text && s->phase == AG_PH_LLM) {
        if (++s->empty_retries < MAX_FORMAT_RETRIES) {
            rt_free(text);
            cJSON_Delete(msg);
            s->iterations--;
            ag__start_llm(cx, s);
            return;
        }
        if (s->fallback_text) {
            rt_free(text);
            text = s->fallback_text;
            s->fallback_text = NULL;
        }
    }
    ag__append(cx, s, msg, 0);
    if (!*text) {
        rt_free(text);
        ag__end_turn(cx, s, NULL, -EBADMSG,
                     rt_xstrdup("The model returned no response. Try again or use /reset to start "
                                "a fresh session."),
                     false);
        return;
    }
    ag__end_turn(cx, s, text, 0, NULL, false);
}

static char *llm_failure_text(const llm_msg_result *r)
{
    const char *detail = r->errmsg ? r->errmsg : rt_strerror(r->err);
    char cut[320];
    snprintf(cut, sizeof(cut), "%.300s", detail);
    const char *hint = llm_err_hint(r->kind);
    return rt_xasprintf("The request failed: %s\n%s%sTry again or use /reset to start a fresh "
                        "session.",
                        cut, *hint ? hint : "", *hint ? "\n" : "");
}

static const char TOO_LARGE_TEXT[] =
    "\xe2\x9a\xa0\xef\xb8\x8f Session too large for the model's context window.\nUse /compress "
    "to compress the conversation, or /reset to start fresh.";

static void on_result(rt_ctx *cx, ag_session *s, llm_msg_result *r)
{
    if (s->phase == AG_PH_COMPRESS) {
        ag__on_compress_result(cx, s, r);
        return;
    }
    if ((s->phase != AG_PH_LLM && s->phase != AG_PH_SUMMARY) || r->tag != s->tag)
        return;
    if (r->err) {
        if (r->err == -ECANCELED)
            return; /* we cancelled it: the interrupt already ended the turn */
        bool overflow = r->kind == LLM_ERR_CONTEXT_LENGTH || r->kind == LLM_ERR_PAYLOAD_TOO_LARGE;
        if (overflow && !s->overflow_retried) {
            s->overflow_retried = true;
            s->iterations--; /* the retry after compressing is the same iteration */
            if (ag__start_compress(cx, s))
                return;
        }
        ag__end_turn(cx, s, NULL, r->err,
                     overflow ? rt_xstrdup(TOO_LARGE_TEXT) : llm_failure_text(r), false);
        return;
    }
    s->prompt_tokens += r->result.usage.prompt_tokens;
    s->completion_tokens += r->result.usage.completion_tokens;
    s->last_prompt_tokens = r->result.usage.prompt_tokens;
    /* the counters go with the message (one write fewer per call, ag__append) */
    s->unsaved_in = r->result.usage.prompt_tokens;
    s->unsaved_out = r->result.usage.completion_tokens;
    cJSON *msg = r->result.message;
    r->result.message = NULL;
    if (r->result.finish_reason)
        cJSON_AddStringToObject(msg, "finish_reason", r->result.finish_reason);
    if (s->phase == AG_PH_SUMMARY) {
        cJSON_DeleteItemFromObjectCaseSensitive(msg, "tool_calls");
        final_answer(cx, s, msg);
    } else if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(msg, "tool_calls")) > 0) {
        on_tool_calls(cx, s, msg);
    } else {
        final_answer(cx, s, msg);
    }
    /* a message not kept (an empty answer asked again, a malformed call) leaves them here */
    ag_persist_tokens(cx, s->store, s->session_id, s->unsaved_in, s->unsaved_out);
    s->unsaved_in = s->unsaved_out = 0;
}

/* ========================================================== turn end */

static void start_idle_timer(rt_ctx *cx, ag_session *s)
{
    if (s->idle_timeout_ms <= 0)
        return;
    s->idle_timer = rt_send_after(cx, rt_self(cx), rt_msg_new(AG_MSG_IDLE_TIMEOUT, sizeof(rt_msg)),
                                  s->idle_timeout_ms);
}

void ag__end_turn(rt_ctx *cx, ag_session *s, char *text, int err, char *errmsg, bool interrupted)
{
    ag_msg_done *d = RT_MSG_NEW(ag_msg_done, AG_MSG_DONE);
    d->turn = s->turn;
    d->input_id = s->input_id;
    d->text = text;
    d->err = err;
    d->errmsg = errmsg;
    d->interrupted = interrupted;
    d->completed = !err && !interrupted && s->phase != AG_PH_SUMMARY;
    d->api_calls = s->api_calls;
    d->prompt_tokens = s->prompt_tokens;
    d->completion_tokens = s->completion_tokens;
    d->session_id = rt_xstrdup(s->session_id);
    d->hdr.drop = ag__drop_done;
    ag__to_sink(cx, s, &d->hdr);
    ag__free_calls(s);
    ag__clear_asks(cx, s);
    ag__save_reset(cx, s);
    s->tag = 0;
    SET_PHASE(s, AG_PH_IDLE);
    /* Rule 3: everything that came meanwhile, in one turn. The follow-up starts from a
     * normal-lane message to ourselves, so inputs already queued behind the one that
     * interrupted us join it instead of starting turns of their own. */
    if (s->pending)
        rt_send(cx, rt_self(cx), rt_msg_new(AG_MSG_FOLLOW_UP, sizeof(rt_msg)));
    else
        start_idle_timer(cx, s);
}

/* ========================================================== interrupts */

void ag__manual_compress_done(rt_ctx *cx, ag_session *s, int err)
{
    ag_msg_control c = {.op = AG_CTL_COMPRESS, .tag = s->compress_tag};
    cJSON *info = NULL;
    if (!err) {
        info = cJSON_CreateObject();
        cJSON_AddNumberToObject(info, "before", s->compress_before);
        cJSON_AddNumberToObject(info, "after", cJSON_GetArraySize(s->messages));
        cJSON_AddStringToObject(info, "session_id", s->session_id);
    }
    if (s->compress_reply)
        rt_send(cx, s->compress_reply,
                ag__control_reply_new(&c, err, s->compress_before, NULL, info));
    else
        cJSON_Delete(info);
    s->manual_compress = false;
    s->compress_reply = 0;
    s->tag = 0;
    SET_PHASE(s, AG_PH_IDLE);
    if (s->pending)
        rt_send(cx, rt_self(cx), rt_msg_new(AG_MSG_FOLLOW_UP, sizeof(rt_msg)));
    else
        start_idle_timer(cx, s);
}

static void interrupt_turn(rt_ctx *cx, ag_session *s, int code)
{
    if (code == AG_INT_STOP) {
        /* /stop: no follow-up (the original discards the pending message) */
        while (s->pending) {
            ag_pending *p = s->pending;
            s->pending = p->next;
            rt_free(p->text);
            rt_free(p->sender);
            rt_free(p);
        }
        s->pending_tail = &s->pending;
        s->npending = 0;
    }
    ag__save_interrupted(cx, s, code);                      /* a message waiting for disk space */
    if (s->phase == AG_PH_COMPRESS && s->manual_compress) { /* a /compress, not a turn */
        rt_send_urgent(cx, s->aux_provider, llm_cancel_new(rt_self(cx), s->tag));
        ag__manual_compress_done(cx, s, -ECANCELED);
        return;
    }
    switch (s->phase) {
    case AG_PH_LLM:
    case AG_PH_SUMMARY: rt_send_urgent(cx, s->provider, llm_cancel_new(rt_self(cx), s->tag)); break;
    case AG_PH_COMPRESS:
        rt_send_urgent(cx, s->aux_provider, llm_cancel_new(rt_self(cx), s->tag));
        break;
    case AG_PH_TOOLS:
        /* The runtime already forwarded the interrupt to every call actor (they are linked
         * children). Rule 1: unfinished calls get the cancellation text now. */
        for (size_t i = 0; i < s->ncalls; i++) {
            ag_call *c = &s->calls[i];
            if (!c->done) {
                rt_free(c->result);
                c->result = rt_xstrdup(CANCELLED_TEXT);
                c->done = true;
            }
            ag__append_tool_result(cx, s, c->id, c->name, c->result);
        }
        ag__free_calls(s);
        break;
    default: break;
    }
    ag__end_turn(cx, s, NULL, 0, NULL, true);
}

static void on_interrupt(rt_ctx *cx, ag_session *s, rt_msg_interrupt *m)
{
    if (s->phase == AG_PH_IDLE || s->phase == AG_PH_LOADING) {
        if (m->code == AG_INT_STOP)
            interrupt_turn(cx, s, AG_INT_STOP); /* nothing running; clears pending */
        return;
    }
    if (s->phase == AG_PH_PROMPT || s->phase == AG_PH_PERSIST) {
        /* The model has not been asked yet: fold the new input into this turn instead. */
        if (m->code == AG_INT_NEW_MESSAGE)
            return;
    }
    interrupt_turn(cx, s, m->code);
}

/* Past AG_PENDING_MAX pending inputs (the disk full for a long time, a flood during a long
 * turn), join in to the last one, as the follow-up turn would (take_pending). True if so. */
static bool join_last_pending(ag_session *s, ag_msg_input *in)
{
    if (s->npending < AG_PENDING_MAX || in->unanswered)
        return false;
    ag_pending *last = s->pending;
    while (last && last->next)
        last = last->next;
    if (!last || last->unanswered)
        return false;
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_append_str(&b, last->text);
    rt_buf_append_str(&b, "\n");
    if (in->sender)
        rt_buf_printf(&b, "[%s] ", in->sender);
    rt_buf_append_str(&b, in->text ? in->text : "");
    rt_free(last->text);
    last->text = rt_buf_steal(&b, NULL);
    last->sink = in->sink; /* the latest input's sink answers */
    last->input_id = in->input_id;
    return true;
}

static void on_input(rt_ctx *cx, ag_session *s, ag_msg_input *in)
{
    if (join_last_pending(s, in)) {
        if (!in->queue && s->phase != AG_PH_LOADING && s->phase != AG_PH_IDLE)
            rt_interrupt(cx, rt_self(cx), AG_INT_NEW_MESSAGE);
        return;
    }
    ag_pending *p = rt_xcalloc(1, sizeof(*p));
    p->text = in->text;
    p->sender = in->sender;
    in->text = in->sender = NULL;
    p->sink = in->sink;
    p->input_id = in->input_id;
    p->unanswered = in->unanswered;
    *s->pending_tail = p;
    s->pending_tail = &p->next;
    s->npending++;
    if (s->phase == AG_PH_IDLE) {
        begin_turn(cx, s);
        return;
    }
    /* Rule 3. The interrupt goes through the runtime so that it reaches the running tools. */
    if (!in->queue && s->phase != AG_PH_LOADING)
        rt_interrupt(cx, rt_self(cx), AG_INT_NEW_MESSAGE);
}

/* ============================================================== actor */

static bool role_is(const cJSON *m, const char *role)
{
    const char *r = ag__jstr(m, "role");
    return r && strcmp(r, role) == 0;
}

/* Rule 1 after a crash: a transcript that ends in an assistant message with tool calls whose
 * results were never written gets the cancellation text for each missing one. */
static void repair_dangling_calls(rt_ctx *cx, ag_session *s)
{
    int n = cJSON_GetArraySize(s->messages);
    int i = n - 1;
    while (i >= 0 && role_is(cJSON_GetArrayItem(s->messages, i), "tool"))
        i--;
    if (i < 0)
        return;
    const cJSON *calls =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(s->messages, i), "tool_calls");
    const cJSON *tc;
    cJSON_ArrayForEach(tc, calls)
    {
        const char *id = ag__jstr(tc, "id");
        bool found = false;
        for (int j = i + 1; j < n && !found; j++) {
            const char *got = ag__jstr(cJSON_GetArrayItem(s->messages, j), "tool_call_id");
            found = id && got && strcmp(got, id) == 0;
        }
        if (!found)
            ag__append_tool_result(
                cx, s, id, ag__jstr(cJSON_GetObjectItemCaseSensitive(tc, "function"), "name"),
                CANCELLED_TEXT);
    }
}

/* A session loaded again (after its agent rested, or the conversation left memory) keeps
 * the system prompt of its first turn — the frozen memory snapshot, and the prefix a
 * provider's prompt cache holds — and its token counts. Takes prompt. */
static void on_session_row(ag_session *s, char *prompt, int64_t in_tokens, int64_t out_tokens)
{
    if (s->phase != AG_PH_LOADING || s->system_prompt) {
        rt_free(prompt);
        return;
    }
    s->system_prompt = prompt;
    s->prompt_tokens = in_tokens;
    s->completion_tokens = out_tokens;
}

static void on_loaded(rt_ctx *cx, ag_session *s, cJSON *history)
{
    if (s->phase != AG_PH_LOADING)
        return;
    if (cJSON_IsArray(history)) {
        cJSON_Delete(s->messages);
        s->messages = history;
        ag_frozen_reset(&s->frozen, &s->nfrozen, &s->frozen_upto);
        s->todos = ag_todo_hydrate(s->messages);
        /* No rows: the session may not exist yet (its row is created, idempotently, with
         * the first turn). */
        s->session_created = cJSON_GetArraySize(history) > 0;
        repair_dangling_calls(cx, s);
    } else {
        cJSON_Delete(history);
    }
    SET_PHASE(s, AG_PH_IDLE);
    if (s->pending)
        begin_turn(cx, s);
    else
        start_idle_timer(cx, s);
}

/* ============================================================ control */

/* Index of the last user message, or -1. */
static int last_user_index(const ag_session *s)
{
    for (int i = cJSON_GetArraySize(s->messages) - 1; i >= 0; i--) {
        const char *r = ag__jstr(cJSON_GetArrayItem(s->messages, i), "role");
        if (r && strcmp(r, "user") == 0)
            return i;
    }
    return -1;
}

static cJSON *usage_info(const ag_session *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "session_id", s->session_id);
    if (s->model)
        cJSON_AddStringToObject(o, "model", s->model);
    cJSON_AddNumberToObject(o, "messages", cJSON_GetArraySize(s->messages));
    cJSON_AddNumberToObject(o, "api_calls", s->api_calls);
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)s->prompt_tokens);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)s->completion_tokens);
    cJSON_AddNumberToObject(o, "last_prompt_tokens", (double)s->last_prompt_tokens);
    cJSON_AddNumberToObject(o, "context_length", (double)s->context_length);
    cJSON_AddNumberToObject(o, "compressions", s->compressions);
    return o;
}

static void on_control(rt_ctx *cx, ag_session *s, ag_msg_control *c)
{
    if (s->phase != AG_PH_IDLE || s->pending) {
        if (c->reply_to)
            rt_send(cx, c->reply_to, ag__control_reply_new(c, -EBUSY, 0, NULL, NULL));
        return;
    }
    if (c->op == AG_CTL_USAGE) {
        if (c->reply_to)
            rt_send(cx, c->reply_to, ag__control_reply_new(c, 0, 0, NULL, usage_info(s)));
        return;
    }
    if (c->op == AG_CTL_COMPRESS) {
        int n = cJSON_GetArraySize(s->messages);
        if (n < 4 || !ag__start_compress(cx, s)) {
            if (c->reply_to)
                rt_send(cx, c->reply_to,
                        ag__control_reply_new(c, n < 4 ? -ENOENT : -ENODATA, n, NULL, NULL));
            return;
        }
        if (s->idle_timer) {
            rt_timer_cancel(cx, s->idle_timer);
            s->idle_timer = 0;
        }
        s->manual_compress = true;
        s->compress_reply = c->reply_to;
        s->compress_tag = c->tag;
        s->compress_before = n;
        return;
    }
    if (c->op != AG_CTL_UNDO && c->op != AG_CTL_RETRY) {
        if (c->reply_to)
            rt_send(cx, c->reply_to, ag__control_reply_new(c, -EINVAL, 0, NULL, NULL));
        return;
    }
    int at = last_user_index(s);
    if (at < 0) {
        if (c->reply_to)
            rt_send(cx, c->reply_to, ag__control_reply_new(c, -ENOENT, 0, NULL, NULL));
        return;
    }
    int removed = cJSON_GetArraySize(s->messages) - at;
    const char *content = ag__jstr(cJSON_GetArrayItem(s->messages, at), "content");
    char *text = rt_xstrdup(content ? content : "");
    while (cJSON_GetArraySize(s->messages) > at)
        cJSON_DeleteItemFromArray(s->messages, at);
    ag_frozen_reset(&s->frozen, &s->nfrozen, &s->frozen_upto);
    ag_persist_truncate(cx, s->store, s->session_id, at);
    cJSON_Delete(s->todos);
    s->todos = ag_todo_hydrate(s->messages);
    if (c->reply_to)
        rt_send(cx, c->reply_to, ag__control_reply_new(c, 0, removed, rt_xstrdup(text), NULL));
    if (c->op == AG_CTL_RETRY) {
        ag_msg_input in = {.text = text, .sink = c->sink, .input_id = c->input_id};
        on_input(cx, s, &in);
        rt_free(in.text);
        rt_free(in.sender);
        return;
    }
    rt_free(text);
}

static void session_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    ag_session *s = *(ag_session **)state;
    switch (m->type) {
    case AG_MSG_INPUT: on_input(cx, s, (ag_msg_input *)m); break;
    case AG_MSG_ANSWER: ag__on_answer(cx, s, (ag_msg_answer *)m); break;
    case AG_MSG_EPHEMERAL:
        rt_free(s->ephemeral);
        s->ephemeral = ((ag_msg_text *)m)->text;
        ((ag_msg_text *)m)->text = NULL;
        break;
    case AG_MSG_MODEL:
        rt_free(s->model);
        s->model = ((ag_msg_text *)m)->text;
        ((ag_msg_text *)m)->text = NULL;
        s->context_length = ag_context_length_for(s->model);
        break;
    case AG_MSG_CONTROL: on_control(cx, s, (ag_msg_control *)m); break;
    case AG_MSG_PROMPT_REPLY: on_prompt(cx, s, (ag_msg_prompt_reply *)m); break;
    case AG_MSG_ASK_TIMEOUT: ag__on_ask_timeout(cx, s, (rt_msg_timeout *)m); break;
    case AG_MSG_SAVE_RETRY: ag__save_on_timer(cx, s, (rt_msg_timeout *)m); break;
    case AG_MSG_FOLLOW_UP:
        if (s->phase == AG_PH_IDLE && s->pending)
            begin_turn(cx, s);
        break;
    case AG_MSG_IDLE_TIMEOUT:
        s->idle_timer = 0;
        /* The store has everything but approvals given "for this session": keep those. */
        if (s->phase == AG_PH_IDLE && !s->pending && !s->napproved)
            rt_exit(cx, RT_EXIT_NORMAL); /* we come back on demand */
        break;
    case LLM_MSG_DELTA: on_delta(cx, s, (llm_msg_delta *)m); break;
    case LLM_MSG_STATUS: on_llm_status(cx, s, (llm_msg_status *)m); break;
    case LLM_MSG_RESULT: on_result(cx, s, (llm_msg_result *)m); break;
    case TOOL_MSG_RESULT: ag__on_tool_result(cx, s, (tool_msg_result *)m); break;
    case TOOL_MSG_PROGRESS: ag__on_tool_progress(cx, s, (tool_msg_progress *)m); break;
    case TOOL_MSG_ASK: ag__on_tool_ask(cx, s, (tool_msg_ask *)m); break;
    case RT_MSG_INTERRUPT: on_interrupt(cx, s, (rt_msg_interrupt *)m); break;
    case RT_MSG_EXIT: ag__on_exit_of_child(cx, s, (rt_msg_exit *)m); break;
    case RT_MSG_STOP:
        if (s->phase != AG_PH_IDLE && s->phase != AG_PH_LOADING)
            interrupt_turn(cx, s, AG_INT_SHUTDOWN);
        break;
    default: {
        uint64_t tag;
        int err;
        const char *errmsg;
        cJSON *history;
        char *prompt;
        int64_t in_tokens, out_tokens;
        if (ag_persist_is_ack(m, &tag, &err, &errmsg)) {
            if (!ag__save_on_ack(cx, s, tag, err, errmsg))
                on_persisted(cx, s, tag, err, errmsg);
        } else if (ag_persist_is_session_row(m, &prompt, &in_tokens, &out_tokens)) {
            on_session_row(s, prompt, in_tokens, out_tokens);
        } else if (ag_persist_is_history(m, &history)) {
            on_loaded(cx, s, history);
        }
        break;
    }
    }
}

static void session_fini(void *state)
{
    ag_session *s = *(ag_session **)state;
    rt_free(s->session_id);
    rt_free(s->source);
    rt_free(s->user_id);
    rt_free(s->model);
    rt_free(s->system_message);
    rt_free(s->ephemeral);
    tool_env_unref(s->env);
    for (char **t = s->tools; t && *t; t++)
        rt_free(*t);
    rt_free(s->tools);
    cJSON_Delete(s->messages);
    ag_frozen_reset(&s->frozen, &s->nfrozen, &s->frozen_upto);
    cJSON_Delete(s->seed);
    cJSON_Delete(s->todos);
    rt_free(s->system_prompt);
    for (size_t i = 0; i < s->napproved; i++)
        rt_free(s->approved[i]);
    rt_free(s->approved);
    ag__free_calls(s);
    while (s->pending) {
        ag_pending *p = s->pending;
        s->pending = p->next;
        rt_free(p->text);
        rt_free(p->sender);
        rt_free(p);
    }
    for (size_t i = 0; i < s->asks.cap; i++)
        if (s->asks.keys[i]) {
            ag_ask *a = s->asks.vals[i];
            rt_free(a->pattern_key);
            rt_free(a);
        }
    rt_map_fini(&s->asks);
    rt_free(s->fallback_text);
    rt_free(s->save_errmsg);
    rt_free(s);
}

static const rt_actor_type session_type = {"session", session_behave, session_fini,
                                           sizeof(ag_session *)};

static char **copy_names(const char *const *names)
{
    size_t n = 0;
    while (names && names[n])
        n++;
    char **out = rt_xcalloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = rt_xstrdup(names[i]);
    return out;
}

rt_ref ag_session_spawn(rt_ctx *cx, const ag_session_opts *o, const rt_spawn_opts *so)
{
    ag_session *s = rt_xcalloc(1, sizeof(*s));
    s->session_id = o->session_id ? rt_xstrdup(o->session_id) : ag_new_session_id();
    s->source = rt_xstrdup(o->source ? o->source : "cli");
    s->user_id = ag__dupn(o->user_id);
    s->model = ag__dupn(o->model);
    s->system_message = ag__dupn(o->system_message);
    s->ephemeral = ag__dupn(o->ephemeral);
    s->provider = o->provider;
    s->aux_provider = o->aux_provider ? o->aux_provider : o->provider;
    s->store = o->store;
    s->reader = o->store_reader;
    s->prompt_service = o->prompt_service;
    s->env = o->env ? tool_env_ref(o->env) : tool_env_new();
    s->tools = copy_names(o->tools);
    s->tool_schemas =
        o->tools && o->tools[0] ? tool_schemas_shared((const char *const *)s->tools) : NULL;
    s->max_iterations = o->max_iterations > 0 ? o->max_iterations : DEFAULT_MAX_ITERATIONS;
    s->stream = o->stream;
    s->skip_memory = o->skip_memory;
    s->skip_context_files = o->skip_context_files;
    s->compression_enabled = o->compression_enabled;
    s->compression_threshold = o->compression_threshold > 0 ? o->compression_threshold : 0.85;
    s->context_length = o->context_length > 0 ? o->context_length : ag_context_length_for(s->model);
    s->idle_timeout_ms = o->idle_timeout_ms;
    s->approval_timeout_ms = o->approval_timeout_ms > 0 ? o->approval_timeout_ms : 60000;
    s->messages = cJSON_CreateArray();
    s->seed = o->history ? cJSON_Duplicate(o->history, 1) : NULL;
    s->pending_tail = &s->pending;
    s->save_idx = -1;
    s->save_max_ms = o->persist_retry_max_ms ? o->persist_retry_max_ms : AG_SAVE_RETRY_MAX_MS;
    rt_map_init(&s->asks);
    /* Loading starts before anyone can message the actor (the state is ours until then). */
    s->phase = o->resume && s->reader ? AG_PH_LOADING : AG_PH_IDLE;

    rt_spawn_opts opts = so ? *so : (rt_spawn_opts){0};
    opts.flags |= RT_SPAWN_TRAP_EXIT; /* a crashed tool call must not take the session */
    rt_ref ref = rt_spawn(cx, &session_type, &s, &opts);
    if (!ref)
        return 0; /* name taken: session_fini already ran on the state */
    if (o->resume && o->store_reader)
        ag_persist_load(cx, o->store_reader, o->session_id ? o->session_id : "", ref);
    return ref;
}
