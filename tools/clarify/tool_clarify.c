/*
 * tool_clarify — the `clarify` tool (agent-core §3.3): ask the user a question, optionally
 * with up to four choices, and return their answer. The session routes the question to
 * whoever is talking to the agent (the terminal, a chat) and applies clarify.timeout.
 */
#include "rt_alloc.h"
#include "tool.h"

#include <ctype.h>
#include <string.h>

#define CLARIFY_MAX_CHOICES 4

static const char TIMEOUT_TEXT[] = "The user did not provide a response within the time limit. "
                                   "Use your best judgement to make the choice and proceed.";

static cJSON *clean_choices(const cJSON *in)
{
    cJSON *out = cJSON_CreateArray();
    const cJSON *c;
    cJSON_ArrayForEach(c, in)
    {
        if (!cJSON_IsString(c) || cJSON_GetArraySize(out) >= CLARIFY_MAX_CHOICES)
            continue;
        const char *s = c->valuestring;
        while (isspace((unsigned char)*s))
            s++;
        size_t n = strlen(s);
        while (n && isspace((unsigned char)s[n - 1]))
            n--;
        if (!n)
            continue;
        char *t = rt_xstrndup(s, n);
        cJSON_AddItemToArray(out, cJSON_CreateString(t));
        rt_free(t);
    }
    return out;
}

static void clarify_start(rt_ctx *cx, tool_run *run)
{
    const char *q = tool_arg_str(run, "question");
    if (!q || !*q) {
        tool_finish_error(cx, run, "question is required");
        return;
    }
    if (!run->env->interactive) {
        tool_finish_error(cx, run, "Clarify tool is not available in this execution context.");
        return;
    }
    cJSON *choices = clean_choices(cJSON_GetObjectItemCaseSensitive(run->args, "choices"));
    run->data = cJSON_Duplicate(choices, 1);
    tool_ask(cx, run, TOOL_ASK_CLARIFY, rt_xstrdup(q), NULL, NULL, choices);
}

static void clarify_msg(rt_ctx *cx, tool_run *run, rt_msg *m)
{
    if (m->type != TOOL_MSG_ANSWER)
        return;
    tool_msg_answer *a = (tool_msg_answer *)m;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "question", tool_arg_str(run, "question"));
    cJSON_AddItemToObject(r, "choices_offered",
                          run->data ? (cJSON *)run->data : cJSON_CreateArray());
    run->data = NULL;
    const char *answer = a->answer == TOOL_ANSWER_TIMEOUT ? TIMEOUT_TEXT : a->text ? a->text : "";
    cJSON_AddStringToObject(r, "user_response", answer);
    tool_finish_json(cx, run, r);
}

static void clarify_interrupt(rt_ctx *cx, tool_run *run)
{
    tool_finish_error(cx, run, "The user cancelled. Use your best judgement to proceed.");
}

static void clarify_cleanup(tool_run *run)
{
    cJSON_Delete(run->data);
    run->data = NULL;
}

const tool_def tool_def_clarify = {
    .name = "clarify",
    .toolset = "clarify",
    .schema = "{\"name\":\"clarify\",\"description\":\"Ask the user a question when you need "
              "their input to continue: a decision, a preference, or missing information. "
              "Offer up to four choices when the answer is one of a few options; leave them out "
              "for an open question. The user can always answer in their own words.\","
              "\"parameters\":{\"type\":\"object\",\"properties\":{\"question\":{\"type\":"
              "\"string\",\"description\":\"The question to ask\"},\"choices\":{\"type\":"
              "\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":4,\"description\":"
              "\"Up to four answer choices (optional)\"}},\"required\":[\"question\"]}}",
    .parallel_safe = false,
    .start = clarify_start,
    .on_msg = clarify_msg,
    .on_interrupt = clarify_interrupt,
    .cleanup = clarify_cleanup,
};
