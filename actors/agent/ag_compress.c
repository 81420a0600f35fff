/*
 * ag_compress — context compression (agent-core §5).
 *
 * When the last request's prompt reached the threshold (0.85 of the model's context window)
 * after a round of tools, or the provider said the context is too long, the middle of the
 * transcript is replaced by a summary written by the auxiliary model: the first three and
 * the last four messages stay verbatim. Unlike the original, the cut never separates an
 * assistant's tool calls from their results (the transcript must stay valid for the API).
 *
 * Then the session splits in state.db as the original does: the old session ends with reason
 * "compression" and a new one starts with parent_session_id = the old id. We also write the
 * compressed transcript into the new session (the original does not), so a session that is
 * evicted and resumed continues from the summary. The system prompt is rebuilt (a new
 * memory snapshot) and the todo list is re-injected.
 */
#include "ag_int.h"
#include "ag_persist.h"
#include "ag_todo.h"
#include "llm_provider.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"

#include <errno.h>
#include <string.h>

#define PROTECT_FIRST      3
#define PROTECT_LAST       4
#define SUMMARY_TOKENS     500
#define SUMMARY_TIMEOUT_MS 30000
#define SUMMARY_PREFIX     "[CONTEXT SUMMARY]:"
#define RENDER_MAX         2000

static bool role_is(const cJSON *m, const char *role)
{
    const char *r = ag__jstr(m, "role");
    return r && strcmp(r, role) == 0;
}

bool ag_compress_plan(const cJSON *messages, int *head_end, int *tail_start)
{
    int n = cJSON_GetArraySize(messages);
    if (n <= PROTECT_FIRST + PROTECT_LAST + 1)
        return false;
    int h = PROTECT_FIRST;
    while (h < n && role_is(cJSON_GetArrayItem(messages, h), "tool"))
        h++; /* keep the results of a head assistant's tool calls with it */
    int t = n - PROTECT_LAST;
    while (t > h && role_is(cJSON_GetArrayItem(messages, t), "tool"))
        t--; /* start the tail at the assistant that made the calls */
    if (t - h < 1)
        return false;
    *head_end = h;
    *tail_start = t;
    return true;
}

char *ag_compress_render(const cJSON *messages, int from, int to)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    for (int i = from; i < to; i++) {
        const cJSON *m = cJSON_GetArrayItem(messages, i);
        const char *role = ag__jstr(m, "role") ? ag__jstr(m, "role") : "?";
        const char *content = ag__jstr(m, "content") ? ag__jstr(m, "content") : "";
        if (b.len)
            rt_buf_append_str(&b, "\n\n");
        rt_buf_append_str(&b, "[");
        for (const char *p = role; *p; p++)
            rt_buf_printf(&b, "%c", (*p >= 'a' && *p <= 'z') ? *p - 'a' + 'A' : *p);
        rt_buf_append_str(&b, "]: ");
        size_t len = strlen(content);
        if (len > RENDER_MAX) {
            rt_buf_append(&b, content, 1000);
            rt_buf_append_str(&b, "\n...[truncated]...\n");
            rt_buf_append_str(&b, content + len - 500);
        } else {
            rt_buf_append_str(&b, content);
        }
        const cJSON *tcs = cJSON_GetObjectItemCaseSensitive(m, "tool_calls"), *tc;
        if (cJSON_GetArraySize(tcs) > 0) {
            rt_buf_append_str(&b, " [Tool calls: ");
            bool first = true;
            cJSON_ArrayForEach(tc, tcs)
            {
                const char *name =
                    ag__jstr(cJSON_GetObjectItemCaseSensitive(tc, "function"), "name");
                rt_buf_printf(&b, "%s%s", first ? "" : ", ", name ? name : "?");
                first = false;
            }
            rt_buf_append_str(&b, "]");
        }
    }
    return rt_buf_steal(&b, NULL);
}

/* The summary with the required prefix (new string). */
static char *with_prefix(const char *text)
{
    const char *t = text ? text : "";
    while (*t == ' ' || *t == '\n')
        t++;
    if (strncmp(t, SUMMARY_PREFIX, strlen(SUMMARY_PREFIX)) == 0)
        return rt_xstrdup(t);
    return rt_xasprintf("%s %s", SUMMARY_PREFIX, t);
}

cJSON *ag_compress_apply(const cJSON *messages, int head_end, int tail_start, const char *summary,
                         const cJSON *todos)
{
    cJSON *out = cJSON_CreateArray();
    for (int i = 0; i < head_end; i++)
        cJSON_AddItemToArray(out, cJSON_Duplicate(cJSON_GetArrayItem(messages, i), 1));
    char *s = with_prefix(summary);
    cJSON_AddItemToArray(out, ag__msg_obj("user", s));
    rt_free(s);
    int n = cJSON_GetArraySize(messages);
    for (int i = tail_start; i < n; i++)
        cJSON_AddItemToArray(out, cJSON_Duplicate(cJSON_GetArrayItem(messages, i), 1));
    char *inj = ag_todo_injection(todos);
    if (inj) {
        cJSON_AddItemToArray(out, ag__msg_obj("user", inj));
        rt_free(inj);
    }
    return out;
}

/* ================================================================ the session */

bool ag__should_compress(const ag_session *s)
{
    if (!s->compression_enabled || s->context_length <= 0)
        return false;
    int head, tail;
    return (double)s->last_prompt_tokens >= s->compression_threshold * (double)s->context_length &&
           ag_compress_plan(s->messages, &head, &tail);
}

bool ag__start_compress(rt_ctx *cx, ag_session *s)
{
    int head, tail;
    if (!ag_compress_plan(s->messages, &head, &tail))
        return false;
    char *rendered = ag_compress_render(s->messages, head, tail);
    char *prompt = rt_xasprintf(
        "Summarize the conversation turns below so that the summary can replace them in the "
        "history. Write from a neutral point of view and cover the actions taken, the key "
        "results, the decisions made, and any data, file names and outputs that matter. Aim "
        "for about %d tokens. Output only the summary, starting with \"" SUMMARY_PREFIX "\".\n\n"
        "---\n\n%s",
        SUMMARY_TOKENS, rendered);
    rt_free(rendered);
    cJSON *msgs = cJSON_CreateArray();
    cJSON_AddItemToArray(msgs, ag__msg_obj("user", prompt));
    rt_free(prompt);
    llm_msg_request *r = llm_request_new(rt_self(cx), ++s->next_tag, msgs, NULL);
    r->priority = LLM_PRIO_AUX;
    r->max_tokens = 2 * SUMMARY_TOKENS;
    r->temperature = 0.3;
    r->timeout_ms = SUMMARY_TIMEOUT_MS;
    s->tag = r->tag;
    s->compress_head = head;
    s->compress_tail = tail;
    RT_INFO("agent", "compressing session %s: %d messages, last prompt %lld tokens", s->session_id,
            cJSON_GetArraySize(s->messages), (long long)s->last_prompt_tokens);
    rt_send(cx, s->aux_provider, &r->hdr);
    s->phase = AG_PH_COMPRESS;
    return true;
}

/* End the old session row, start a child one and write the compressed transcript there. */
static void split_session(rt_ctx *cx, ag_session *s)
{
    char *old = s->session_id;
    s->session_id = ag_new_session_id();
    ag_persist_end_session(cx, s->store, old, "compression");
    ag_persist_create_child(cx, s->store, s->session_id, s->source, s->user_id, s->model, old);
    const cJSON *m;
    cJSON_ArrayForEach(m, s->messages) ag_persist_message(cx, s->store, s->session_id, m, 0, 0);
    rt_free(old);
}

void ag__on_compress_result(rt_ctx *cx, ag_session *s, llm_msg_result *r)
{
    if (s->phase != AG_PH_COMPRESS || r->tag != s->tag)
        return;
    const char *summary = NULL;
    char *fallback = NULL;
    if (!r->err)
        summary = ag__jstr(r->result.message, "content");
    if (!summary || !*summary) {
        fallback = rt_xasprintf("(summary unavailable: %d earlier messages were removed to fit "
                                "the context window)",
                                s->compress_tail - s->compress_head);
        summary = fallback;
        RT_WARN("agent", "compression summary failed for %s: %s", s->session_id,
                r->errmsg ? r->errmsg : "empty answer");
    }
    cJSON *fresh =
        ag_compress_apply(s->messages, s->compress_head, s->compress_tail, summary, s->todos);
    rt_free(fallback);
    cJSON_Delete(s->messages);
    s->messages = fresh;
    ag_frozen_reset(&s->frozen, &s->nfrozen, &s->frozen_upto);
    s->last_prompt_tokens = 0;
    s->compressions++;
    split_session(cx, s);
    /* A new frozen memory snapshot: the system prompt is rebuilt before the next call. */
    rt_free(s->system_prompt);
    s->system_prompt = NULL;
    if (s->manual_compress)
        ag__manual_compress_done(cx, s, 0);
    else
        ag__resume_after_compress(cx, s);
}
