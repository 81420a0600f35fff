/*
 * llm_wire — see llm_wire.h.
 *
 * OpenAI chat completions: the neutral format is the wire format, minus our bookkeeping
 * keys (`finish_reason`; `reasoning` is re-sent as `reasoning_content`, agent-core §1.5).
 * Anthropic Messages: system text moves to "system"; assistant tool calls become tool_use
 * blocks; tool results become tool_result blocks inside a user turn; consecutive turns of
 * the same role are merged because the API requires alternation.
 */
#include "llm_wire.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ANTHROPIC_DEFAULT_MAX_TOKENS 8192
#define STREAM_MAX_TOOL_CALLS        128

/* ================================================================ helpers */

static const char *jstr(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A token count from a provider: a non-negative integral number, else 0 (a missing field,
 * null, a string, NaN or something absurd; casting those to int64_t would be undefined). */
static int64_t jcount(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        return 0;
    double d = v->valuedouble;
    return d >= 0 && d < 9.0e15 ? (int64_t)d : 0;
}

static char *print_json(const cJSON *j)
{
    char *p = cJSON_PrintUnformatted(j);
    RT_VERIFY(p); /* cJSON only fails on OOM */
    char *s = rt_xstrdup(p);
    cJSON_free(p);
    return s;
}

static void seterr(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

/* Text of a message's content: a string, or the concatenated text parts of a list. */
static char *content_text(const cJSON *content)
{
    if (cJSON_IsString(content))
        return rt_xstrdup(content->valuestring);
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        const char *t = jstr(part, "text");
        if (t)
            rt_buf_append_str(&b, t);
    }
    return rt_buf_steal(&b, NULL);
}

static void random_hex(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = rt_hash_u64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uintptr_t)out);
    for (size_t i = 0; i < n; i++) {
        out[i] = hex[x & 15];
        x >>= 4;
        if (!x)
            x = rt_hash_u64((uint64_t)i + 0x9e3779b97f4a7c15ULL);
    }
    out[n] = '\0';
}

void llm_result_fini(llm_result *r)
{
    cJSON_Delete(r->message);
    rt_free(r->finish_reason);
    r->message = NULL;
    r->finish_reason = NULL;
}

/* ========================================================= OpenAI request */

/* The request's messages as the OpenAI API wants them. The body is printed and dropped
 * while the request (which owns the messages) lives, so the copy is shallow: each message
 * becomes a new object whose members refer to the original's, minus our bookkeeping
 * (finish_reason) and with reasoning renamed reasoning_content. No content is copied. */
static cJSON *openai_messages(const cJSON *messages)
{
    cJSON *out = cJSON_CreateArray();
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const char *role = jstr(m, "role");
        bool assistant = role && strcmp(role, "assistant") == 0;
        cJSON *c = cJSON_CreateObject();
        cJSON *f;
        cJSON_ArrayForEach(f, m)
        {
            if (!f->string || strcmp(f->string, "finish_reason") == 0)
                continue;
            const char *key = f->string;
            if (strcmp(key, "reasoning") == 0) {
                if (!assistant || !cJSON_IsString(f))
                    continue;
                key = "reasoning_content";
            }
            cJSON_AddItemReferenceToObject(c, key, f);
        }
        cJSON_AddItemToArray(out, c);
    }
    return out;
}

static cJSON *openai_tools(const cJSON *tools)
{
    cJSON *out = cJSON_CreateArray();
    cJSON *t;
    cJSON_ArrayForEach(t, tools)
    {
        cJSON *w = cJSON_CreateObject();
        cJSON_AddStringToObject(w, "type", "function");
        cJSON_AddItemReferenceToObject(w, "function", t); /* shallow, as the messages */
        cJSON_AddItemToArray(out, w);
    }
    return out;
}

static cJSON *build_openai(const llm_request_spec *s)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "model", s->model ? s->model : "");
    cJSON_AddItemToObject(b, "messages", openai_messages(s->messages));
    if (s->tools && cJSON_GetArraySize(s->tools) > 0)
        cJSON_AddItemToObject(b, "tools", openai_tools(s->tools));
    if (s->max_tokens > 0)
        cJSON_AddNumberToObject(
            b, s->use_max_completion_tokens ? "max_completion_tokens" : "max_tokens",
            (double)s->max_tokens);
    if (s->temperature >= 0)
        cJSON_AddNumberToObject(b, "temperature", s->temperature);
    if (s->stream) {
        cJSON_AddTrueToObject(b, "stream");
        cJSON *so = cJSON_AddObjectToObject(b, "stream_options");
        cJSON_AddTrueToObject(so, "include_usage");
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, s->extra)
    {
        cJSON_DeleteItemFromObjectCaseSensitive(b, e->string);
        cJSON_AddItemToObject(b, e->string, cJSON_Duplicate(e, 1));
    }
    return b;
}

/* ====================================================== Anthropic request */

/* Append a block to the last turn if it has the same role, else start a new turn. */
static void push_block(cJSON *turns, const char *role, cJSON *block)
{
    cJSON *last = cJSON_GetArrayItem(turns, cJSON_GetArraySize(turns) - 1);
    if (!last || strcmp(jstr(last, "role"), role) != 0) {
        last = cJSON_CreateObject();
        cJSON_AddStringToObject(last, "role", role);
        cJSON_AddArrayToObject(last, "content");
        cJSON_AddItemToArray(turns, last);
    }
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(last, "content"), block);
}

static cJSON *text_block(const char *text)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "text");
    cJSON_AddStringToObject(b, "text", text);
    return b;
}

static void anthropic_assistant(cJSON *turns, const cJSON *m)
{
    char *text = content_text(cJSON_GetObjectItemCaseSensitive(m, "content"));
    if (*text)
        push_block(turns, "assistant", text_block(text));
    rt_free(text);
    const cJSON *tc;
    cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        const char *args = jstr(fn, "arguments");
        cJSON *input = args ? cJSON_Parse(args) : NULL;
        if (!cJSON_IsObject(input)) {
            cJSON_Delete(input);
            input = cJSON_CreateObject(); /* the model's invalid JSON: send an empty input */
        }
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "type", "tool_use");
        cJSON_AddStringToObject(b, "id", jstr(tc, "id") ? jstr(tc, "id") : "");
        cJSON_AddStringToObject(b, "name", jstr(fn, "name") ? jstr(fn, "name") : "");
        cJSON_AddItemToObject(b, "input", input);
        push_block(turns, "assistant", b);
    }
}

static cJSON *build_anthropic(const llm_request_spec *s)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "model", s->model ? s->model : "");
    cJSON_AddNumberToObject(
        b, "max_tokens",
        (double)(s->max_tokens > 0 ? s->max_tokens : ANTHROPIC_DEFAULT_MAX_TOKENS));
    rt_buf system;
    rt_buf_init(&system, SIZE_MAX / 2);
    cJSON *turns = cJSON_CreateArray();
    const cJSON *m;
    cJSON_ArrayForEach(m, s->messages)
    {
        const char *role = jstr(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!role)
            continue;
        if (strcmp(role, "system") == 0) {
            char *t = content_text(content);
            if (system.len)
                rt_buf_append_str(&system, "\n\n");
            rt_buf_append_str(&system, t);
            rt_free(t);
        } else if (strcmp(role, "assistant") == 0) {
            anthropic_assistant(turns, m);
        } else if (strcmp(role, "tool") == 0) {
            cJSON *r = cJSON_CreateObject();
            char *t = content_text(content);
            cJSON_AddStringToObject(r, "type", "tool_result");
            cJSON_AddStringToObject(r, "tool_use_id",
                                    jstr(m, "tool_call_id") ? jstr(m, "tool_call_id") : "");
            cJSON_AddStringToObject(r, "content", t);
            rt_free(t);
            push_block(turns, "user", r);
        } else {
            char *t = content_text(content);
            push_block(turns, "user", text_block(*t ? t : " "));
            rt_free(t);
        }
    }
    if (system.len)
        cJSON_AddStringToObject(b, "system", rt_buf_cstr(&system));
    rt_buf_fini(&system);
    cJSON_AddItemToObject(b, "messages", turns);
    if (s->tools && cJSON_GetArraySize(s->tools) > 0) {
        cJSON *tools = cJSON_AddArrayToObject(b, "tools");
        const cJSON *t;
        cJSON_ArrayForEach(t, s->tools)
        {
            cJSON *w = cJSON_CreateObject();
            cJSON_AddStringToObject(w, "name", jstr(t, "name") ? jstr(t, "name") : "");
            if (jstr(t, "description"))
                cJSON_AddStringToObject(w, "description", jstr(t, "description"));
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(t, "parameters");
            cJSON_AddItemToObject(w, "input_schema",
                                  p ? cJSON_Duplicate(p, 1) : cJSON_Parse("{\"type\":\"object\"}"));
            cJSON_AddItemToArray(tools, w);
        }
    }
    if (s->temperature >= 0)
        cJSON_AddNumberToObject(b, "temperature", s->temperature);
    if (s->stream)
        cJSON_AddTrueToObject(b, "stream");
    return b;
}

char *llm_build_body(const llm_request_spec *spec)
{
    cJSON *b = spec->api == LLM_API_ANTHROPIC ? build_anthropic(spec) : build_openai(spec);
    char *s = print_json(b);
    cJSON_Delete(b);
    return s;
}

/* ================================================== assistant message shape */

/* A neutral assistant message from its parts. Takes ownership of tool_calls (may be NULL)
 * and reasoning_details (may be NULL). */
static cJSON *assistant_message(const char *content, const char *reasoning, cJSON *tool_calls,
                                cJSON *reasoning_details)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "content", content ? content : "");
    if (reasoning && *reasoning)
        cJSON_AddStringToObject(m, "reasoning", reasoning);
    if (reasoning_details)
        cJSON_AddItemToObject(m, "reasoning_details", reasoning_details);
    if (tool_calls && cJSON_GetArraySize(tool_calls) > 0)
        cJSON_AddItemToObject(m, "tool_calls", tool_calls);
    else
        cJSON_Delete(tool_calls);
    return m;
}

static cJSON *tool_call(const char *id, const char *name, const char *args)
{
    char gen[32];
    if (!id || !*id) {
        memcpy(gen, "call_", 5);
        random_hex(gen + 5, 12);
        id = gen;
    }
    cJSON *tc = cJSON_CreateObject();
    cJSON_AddStringToObject(tc, "id", id);
    cJSON_AddStringToObject(tc, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(tc, "function");
    cJSON_AddStringToObject(fn, "name", name ? name : "");
    cJSON_AddStringToObject(fn, "arguments", args ? args : "");
    return tc;
}

/* Join reasoning parts with a blank line, skipping duplicates (agent-core §1.7). */
static void add_reasoning(rt_buf *b, const char *part)
{
    if (!part || !*part || (b->len && strstr(rt_buf_cstr(b), part)))
        return;
    if (b->len)
        rt_buf_append_str(b, "\n\n");
    rt_buf_append_str(b, part);
}

/* ======================================================= complete responses */

static int error_object(const cJSON *root, char *err, size_t errlen)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (!e)
        return 0;
    const char *msg = cJSON_IsString(e) ? e->valuestring : jstr(e, "message");
    if (err && errlen)
        snprintf(err, errlen, "provider error: %s", msg ? msg : "unknown");
    return -EBADMSG;
}

static int parse_openai(const cJSON *root, llm_result *out, char *err, size_t errlen)
{
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *c0 = cJSON_GetArrayItem(choices, 0);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(c0, "message");
    if (!cJSON_IsObject(msg)) {
        seterr(err, errlen, "Invalid API response shape: no choices[0].message");
        return -EBADMSG;
    }
    rt_buf r;
    rt_buf_init(&r, SIZE_MAX / 2);
    add_reasoning(&r, jstr(msg, "reasoning"));
    add_reasoning(&r, jstr(msg, "reasoning_content"));
    const cJSON *rd = cJSON_GetObjectItemCaseSensitive(msg, "reasoning_details"), *d;
    cJSON_ArrayForEach(d, rd)
    {
        const char *t = jstr(d, "summary")
                            ? jstr(d, "summary")
                            : (jstr(d, "content") ? jstr(d, "content") : jstr(d, "text"));
        add_reasoning(&r, t);
    }
    cJSON *tcs = cJSON_CreateArray();
    const cJSON *tc;
    cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"))
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        cJSON_AddItemToArray(tcs,
                             tool_call(jstr(tc, "id"), jstr(fn, "name"), jstr(fn, "arguments")));
    }
    out->message = assistant_message(jstr(msg, "content"), rt_buf_cstr(&r), tcs,
                                     rd ? cJSON_Duplicate(rd, 1) : NULL);
    rt_buf_fini(&r);
    const char *fin = jstr(c0, "finish_reason");
    out->finish_reason = rt_xstrdup(
        fin ? fin
            : (cJSON_GetObjectItemCaseSensitive(out->message, "tool_calls") ? "tool_calls"
                                                                            : "stop"));
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
    out->usage.prompt_tokens = jcount(u, "prompt_tokens");
    out->usage.completion_tokens = jcount(u, "completion_tokens");
    return 0;
}

static const char *anthropic_finish(const char *stop)
{
    if (!stop)
        return "stop";
    if (strcmp(stop, "end_turn") == 0 || strcmp(stop, "stop_sequence") == 0)
        return "stop";
    if (strcmp(stop, "tool_use") == 0)
        return "tool_calls";
    if (strcmp(stop, "max_tokens") == 0)
        return "length";
    return stop;
}

static int parse_anthropic(const cJSON *root, llm_result *out, char *err, size_t errlen)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
    if (!cJSON_IsArray(content)) {
        seterr(err, errlen, "Invalid API response shape: no content array");
        return -EBADMSG;
    }
    rt_buf text, reasoning;
    rt_buf_init(&text, SIZE_MAX / 2);
    rt_buf_init(&reasoning, SIZE_MAX / 2);
    cJSON *tcs = cJSON_CreateArray();
    const cJSON *b;
    cJSON_ArrayForEach(b, content)
    {
        const char *type = jstr(b, "type");
        if (!type)
            continue;
        if (strcmp(type, "text") == 0 && jstr(b, "text")) {
            rt_buf_append_str(&text, jstr(b, "text"));
        } else if (strcmp(type, "thinking") == 0) {
            add_reasoning(&reasoning, jstr(b, "thinking"));
        } else if (strcmp(type, "tool_use") == 0) {
            const cJSON *input = cJSON_GetObjectItemCaseSensitive(b, "input");
            char *args = input ? print_json(input) : rt_xstrdup("{}");
            cJSON_AddItemToArray(tcs, tool_call(jstr(b, "id"), jstr(b, "name"), args));
            rt_free(args);
        }
    }
    out->message = assistant_message(rt_buf_cstr(&text), rt_buf_cstr(&reasoning), tcs, NULL);
    rt_buf_fini(&text);
    rt_buf_fini(&reasoning);
    out->finish_reason = rt_xstrdup(anthropic_finish(jstr(root, "stop_reason")));
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
    out->usage.prompt_tokens = jcount(u, "input_tokens");
    out->usage.completion_tokens = jcount(u, "output_tokens");
    return 0;
}

int llm_parse_response(llm_api api, const char *body, size_t len, llm_result *out, char *err,
                       size_t errlen)
{
    memset(out, 0, sizeof(*out));
    cJSON *root = body ? cJSON_ParseWithLength(body, len) : NULL;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        seterr(err, errlen, "Invalid API response: the body is not a JSON object");
        return -EBADMSG;
    }
    int rc = error_object(root, err, errlen);
    if (rc == 0)
        rc = api == LLM_API_ANTHROPIC ? parse_anthropic(root, out, err, errlen)
                                      : parse_openai(root, out, err, errlen);
    cJSON_Delete(root);
    return rc;
}

/* ========================================================= streamed responses */

typedef struct stream_tc {
    char *id;
    char *name;
    rt_buf args;
} stream_tc;

struct llm_stream {
    llm_api api;
    rt_buf content;
    rt_buf reasoning;
    stream_tc tc[STREAM_MAX_TOOL_CALLS];
    int ntc;             /* highest index used + 1 */
    int cur_block_tc;    /* Anthropic: tool slot of the open tool_use block, or -1 */
    int cur_block_kind;  /* Anthropic: 0 text, 1 thinking, 2 tool_use */
    char *finish_reason; /* set when the provider says why it stopped */
    bool done;
    llm_usage usage;
};

llm_stream *llm_stream_new(llm_api api)
{
    llm_stream *s = rt_xcalloc(1, sizeof(*s));
    s->api = api;
    rt_buf_init(&s->content, SIZE_MAX / 2);
    rt_buf_init(&s->reasoning, SIZE_MAX / 2);
    for (int i = 0; i < STREAM_MAX_TOOL_CALLS; i++)
        rt_buf_init(&s->tc[i].args, SIZE_MAX / 2);
    s->cur_block_tc = -1;
    return s;
}

void llm_stream_free(llm_stream *s)
{
    if (!s)
        return;
    rt_buf_fini(&s->content);
    rt_buf_fini(&s->reasoning);
    for (int i = 0; i < STREAM_MAX_TOOL_CALLS; i++) {
        rt_free(s->tc[i].id);
        rt_free(s->tc[i].name);
        rt_buf_fini(&s->tc[i].args);
    }
    rt_free(s->finish_reason);
    rt_free(s);
}

static void set_str(char **dst, const char *v)
{
    if (!v)
        return;
    rt_free(*dst);
    *dst = rt_xstrdup(v);
}

static void emit(llm_stream *s, int kind, const char *text, llm_delta_cb cb, void *arg)
{
    if (!text || !*text)
        return;
    rt_buf_append_str(kind == LLM_DELTA_CONTENT ? &s->content : &s->reasoning, text);
    if (cb)
        cb(arg, kind, text, strlen(text));
}

static int openai_tool_delta(llm_stream *s, const cJSON *d, char *err, size_t errlen)
{
    const cJSON *tc;
    cJSON_ArrayForEach(tc, d)
    {
        const cJSON *ix = cJSON_GetObjectItemCaseSensitive(tc, "index");
        int i = cJSON_IsNumber(ix) ? ix->valueint : s->ntc - (s->ntc > 0);
        if (i < 0 || i >= STREAM_MAX_TOOL_CALLS) {
            seterr(err, errlen, "stream: tool call index out of range");
            return -EBADMSG;
        }
        if (i >= s->ntc)
            s->ntc = i + 1;
        set_str(&s->tc[i].id, jstr(tc, "id"));
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        set_str(&s->tc[i].name, jstr(fn, "name"));
        const char *a = jstr(fn, "arguments");
        if (a)
            rt_buf_append_str(&s->tc[i].args, a);
    }
    return 0;
}

static int openai_event(llm_stream *s, const cJSON *root, llm_delta_cb cb, void *arg, char *err,
                        size_t errlen)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(u)) {
        s->usage.prompt_tokens = jcount(u, "prompt_tokens");
        s->usage.completion_tokens = jcount(u, "completion_tokens");
    }
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    if (!c0)
        return 0; /* usage-only chunk */
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(c0, "delta");
    emit(s, LLM_DELTA_CONTENT, jstr(d, "content"), cb, arg);
    emit(s, LLM_DELTA_REASONING, jstr(d, "reasoning"), cb, arg);
    emit(s, LLM_DELTA_REASONING, jstr(d, "reasoning_content"), cb, arg);
    int rc = openai_tool_delta(s, cJSON_GetObjectItemCaseSensitive(d, "tool_calls"), err, errlen);
    if (rc)
        return rc;
    set_str(&s->finish_reason, jstr(c0, "finish_reason"));
    return 0;
}

static int anthropic_event(llm_stream *s, const char *type, const cJSON *root, llm_delta_cb cb,
                           void *arg, char *err, size_t errlen)
{
    if (strcmp(type, "message_start") == 0) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(root, "message"), "usage");
        s->usage.prompt_tokens = jcount(u, "input_tokens");
    } else if (strcmp(type, "content_block_start") == 0) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "content_block");
        const char *bt = jstr(b, "type");
        s->cur_block_tc = -1;
        s->cur_block_kind = 0;
        if (bt && strcmp(bt, "tool_use") == 0) {
            if (s->ntc >= STREAM_MAX_TOOL_CALLS) {
                seterr(err, errlen, "stream: too many tool calls");
                return -EBADMSG;
            }
            s->cur_block_tc = s->ntc++;
            s->cur_block_kind = 2;
            set_str(&s->tc[s->cur_block_tc].id, jstr(b, "id"));
            set_str(&s->tc[s->cur_block_tc].name, jstr(b, "name"));
        } else if (bt && strcmp(bt, "thinking") == 0) {
            s->cur_block_kind = 1;
        }
    } else if (strcmp(type, "content_block_delta") == 0) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "delta");
        const char *dt = jstr(d, "type");
        if (dt && strcmp(dt, "text_delta") == 0)
            emit(s, LLM_DELTA_CONTENT, jstr(d, "text"), cb, arg);
        else if (dt && strcmp(dt, "thinking_delta") == 0)
            emit(s, LLM_DELTA_REASONING, jstr(d, "thinking"), cb, arg);
        else if (dt && strcmp(dt, "input_json_delta") == 0 && s->cur_block_tc >= 0 &&
                 jstr(d, "partial_json"))
            rt_buf_append_str(&s->tc[s->cur_block_tc].args, jstr(d, "partial_json"));
    } else if (strcmp(type, "message_delta") == 0) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "delta");
        if (jstr(d, "stop_reason"))
            set_str(&s->finish_reason, anthropic_finish(jstr(d, "stop_reason")));
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
        if (cJSON_GetObjectItemCaseSensitive(u, "output_tokens"))
            s->usage.completion_tokens = jcount(u, "output_tokens");
    } else if (strcmp(type, "message_stop") == 0) {
        s->done = true;
        return 1;
    }
    return 0;
}

int llm_stream_event(llm_stream *s, const char *event, const char *data, llm_delta_cb cb, void *arg,
                     char *err, size_t errlen)
{
    if (!data)
        return 0;
    if (s->api == LLM_API_OPENAI && strcmp(data, "[DONE]") == 0) {
        s->done = true;
        return 1;
    }
    cJSON *root = cJSON_Parse(data);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        seterr(err, errlen, "stream: an event is not valid JSON");
        return -EBADMSG;
    }
    int rc = error_object(root, err, errlen);
    if (rc == 0) {
        if (s->api == LLM_API_ANTHROPIC) {
            const char *type = jstr(root, "type") ? jstr(root, "type") : event;
            rc = type ? anthropic_event(s, type, root, cb, arg, err, errlen) : 0;
        } else {
            rc = openai_event(s, root, cb, arg, err, errlen);
        }
    }
    cJSON_Delete(root);
    return rc;
}

int llm_stream_finish(llm_stream *s, llm_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    /* OpenAI-compatible servers sometimes end without [DONE] but with a finish reason. */
    if (!s->finish_reason) {
        seterr(err, errlen, "the response stream ended before the model finished");
        return -EBADMSG;
    }
    cJSON *tcs = cJSON_CreateArray();
    for (int i = 0; i < s->ntc; i++)
        if (s->tc[i].name)
            cJSON_AddItemToArray(
                tcs, tool_call(s->tc[i].id, s->tc[i].name, rt_buf_cstr(&s->tc[i].args)));
    out->message =
        assistant_message(rt_buf_cstr(&s->content), rt_buf_cstr(&s->reasoning), tcs, NULL);
    out->finish_reason = rt_xstrdup(s->finish_reason);
    out->usage = s->usage;
    return 0;
}

/* ========================================================= error handling */

static bool contains_ci(const char *hay, const char *needle)
{
    return hay && strcasestr(hay, needle) != NULL;
}

llm_err_kind llm_classify(int http_status, const char *body, int transport_err)
{
    if (transport_err == -ETIMEDOUT)
        return LLM_ERR_TIMEOUT;
    if (transport_err && transport_err != -E2BIG && http_status == 0)
        return LLM_ERR_NETWORK;
    /* Context overflow is reported with several statuses; look at the words first. */
    static const char *const ctx_words[] = {
        "context length",          "maximum context",   "token limit",
        "too many tokens",         "reduce the length", "exceeds the limit",
        "context_length_exceeded", "prompt is too long"};
    if (http_status >= 400)
        for (size_t i = 0; i < RT_ARRAY_LEN(ctx_words); i++)
            if (contains_ci(body, ctx_words[i]))
                return LLM_ERR_CONTEXT_LENGTH;
    if (http_status == 413 || contains_ci(body, "request entity too large") ||
        contains_ci(body, "payload too large"))
        return LLM_ERR_PAYLOAD_TOO_LARGE;
    if (http_status == 429)
        return LLM_ERR_RATE_LIMIT;
    if (http_status == 529 || contains_ci(body, "overloaded_error"))
        return LLM_ERR_OVERLOADED;
    if (http_status == 401 || http_status == 403)
        return LLM_ERR_AUTH;
    if (http_status == 402)
        return LLM_ERR_PAYMENT;
    if (http_status == 404)
        return LLM_ERR_NOT_FOUND;
    if (http_status >= 500)
        return LLM_ERR_SERVER;
    if (http_status >= 400) {
        if (contains_ci(body, "is not a valid model") || contains_ci(body, "model not found") ||
            contains_ci(body, "invalid model"))
            return LLM_ERR_NOT_FOUND;
        if (contains_ci(body, "invalid api key") || contains_ci(body, "invalid_api_key"))
            return LLM_ERR_AUTH;
        return LLM_ERR_BAD_REQUEST;
    }
    if (transport_err == -E2BIG)
        return LLM_ERR_MALFORMED;
    return transport_err ? LLM_ERR_NETWORK : LLM_ERR_NONE;
}

bool llm_err_is_retryable(llm_err_kind k)
{
    switch (k) {
    case LLM_ERR_RATE_LIMIT:
    case LLM_ERR_OVERLOADED:
    case LLM_ERR_SERVER:
    case LLM_ERR_NETWORK:
    case LLM_ERR_TIMEOUT:
    case LLM_ERR_MALFORMED: return true;
    default: return false;
    }
}

const char *llm_err_name(llm_err_kind k)
{
    static const char *const names[] = {
        "none",    "rate_limit", "overloaded",        "server_error",   "auth",
        "payment", "not_found",  "bad_request",       "context_length", "payload_too_large",
        "network", "timeout",    "malformed_response"};
    return (size_t)k < RT_ARRAY_LEN(names) ? names[k] : "unknown";
}

const char *llm_err_hint(llm_err_kind k)
{
    switch (k) {
    case LLM_ERR_RATE_LIMIT:
        return "The provider is rate limiting requests. Wait a moment and try again.";
    case LLM_ERR_OVERLOADED: return "The provider is overloaded right now. Try again shortly.";
    case LLM_ERR_SERVER: return "The provider had a server error. Try again shortly.";
    case LLM_ERR_AUTH:
        return "The provider rejected the API key. Check OPENROUTER_API_KEY / OPENAI_API_KEY / "
               "ANTHROPIC_API_KEY with `hermes config`.";
    case LLM_ERR_PAYMENT:
        return "The provider says the account is out of credits (402). Top up or switch models.";
    case LLM_ERR_NOT_FOUND:
        return "The model or endpoint was not found. Check the model name and OPENAI_BASE_URL.";
    case LLM_ERR_BAD_REQUEST: return "The provider refused the request (400).";
    case LLM_ERR_CONTEXT_LENGTH:
        return "The conversation no longer fits the model's context window. Use /compress or "
               "/reset.";
    case LLM_ERR_PAYLOAD_TOO_LARGE: return "The request was too large for the provider (413).";
    case LLM_ERR_NETWORK:
        return "Could not reach the provider. Check OPENAI_BASE_URL and your network.";
    case LLM_ERR_TIMEOUT: return "The provider did not answer in time.";
    case LLM_ERR_MALFORMED: return "The provider sent an incomplete or malformed response.";
    default: return "";
    }
}

char *llm_error_message(const char *body)
{
    cJSON *root = body ? cJSON_Parse(body) : NULL;
    if (!root)
        return NULL;
    char *msg = NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsString(e))
        msg = rt_xstrdup(e->valuestring);
    else if (jstr(e, "message"))
        msg = rt_xstrdup(jstr(e, "message"));
    else if (jstr(root, "message"))
        msg = rt_xstrdup(jstr(root, "message"));
    cJSON_Delete(root);
    return msg;
}

int64_t llm_retry_after_ms(const char *value, int64_t now_unix_s)
{
    if (!value)
        return -1;
    while (isspace((unsigned char)*value))
        value++;
    if (isdigit((unsigned char)*value)) {
        char *end = NULL;
        double secs = strtod(value, &end);
        if (end == value || secs < 0 || secs > 86400)
            return -1;
        return (int64_t)(secs * 1000.0);
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end)
        return -1;
    int64_t when = (int64_t)timegm(&tm);
    return when > now_unix_s ? (when - now_unix_s) * 1000 : 0;
}
