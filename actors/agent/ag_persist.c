/*
 * ag_persist — see ag_persist.h. The neutral message maps onto a messages row as the
 * original stores it: tool_calls as JSON text, tool results with tool_call_id (and
 * tool_name from our bookkeeping "name" key), the finish reason of assistant messages.
 */
#include "ag_persist.h"

#include "rt_alloc.h"
#include "st_read.h"
#include "st_store.h"

#include <string.h>

#define HISTORY_TAG UINT64_C(0x68697374) /* "hist": the session has one load in flight */
#define ROW_TAG     UINT64_C(0x726f7773) /* "rows": its session row, asked for first */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

void ag_persist_create_session(rt_ctx *cx, rt_ref store, rt_ref ack_to, uint64_t tag,
                               const char *id, const char *source, const char *user_id,
                               const char *model)
{
    if (!store)
        return;
    st_msg_create_session *m = st_create_session_new(id, source);
    m->req.reply_to = ack_to;
    m->req.tag = tag;
    m->user_id = dupn(user_id);
    m->model = dupn(model);
    rt_send(cx, store, &m->hdr);
}

void ag_persist_create_child(rt_ctx *cx, rt_ref store, const char *id, const char *source,
                             const char *user_id, const char *model, const char *parent_id)
{
    if (!store)
        return;
    st_msg_create_session *m = st_create_session_new(id, source);
    m->user_id = dupn(user_id);
    m->model = dupn(model);
    m->parent_session_id = dupn(parent_id);
    rt_send(cx, store, &m->hdr);
}

void ag_persist_truncate(rt_ctx *cx, rt_ref store, const char *id, int64_t keep)
{
    if (store)
        rt_send(cx, store, &st_truncate_new(id, keep)->hdr);
}

void ag_persist_end_session(rt_ctx *cx, rt_ref store, const char *id, const char *reason)
{
    if (store)
        rt_send(cx, store, &st_end_session_new(id, reason)->hdr);
}

void ag_persist_system_prompt(rt_ctx *cx, rt_ref store, const char *id, const char *prompt)
{
    if (store)
        rt_send(cx, store, &st_set_prompt_new(id, prompt)->hdr);
}

void ag_persist_tokens(rt_ctx *cx, rt_ref store, const char *id, int64_t in, int64_t out)
{
    if (store && (in || out))
        rt_send(cx, store, &st_add_tokens_new(id, in, out)->hdr);
}

static st_msg_append *append_new(const char *id, const cJSON *msg)
{
    const char *role = jstr(msg, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    st_msg_append *m = st_append_new(id, role ? role : "user",
                                     cJSON_IsString(content) ? content->valuestring : NULL);
    m->tool_call_id = dupn(jstr(msg, "tool_call_id"));
    m->tool_name = dupn(jstr(msg, "name"));
    m->finish_reason = dupn(jstr(msg, "finish_reason"));
    const cJSON *tcs = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
    if (cJSON_IsArray(tcs) && cJSON_GetArraySize(tcs) > 0) {
        char *p = cJSON_PrintUnformatted(tcs);
        m->tool_calls = rt_xstrdup(p ? p : "[]");
        cJSON_free(p);
    }
    return m;
}

void ag_persist_message(rt_ctx *cx, rt_ref store, const char *id, const cJSON *msg, rt_ref ack_to,
                        uint64_t tag)
{
    if (!store)
        return;
    st_msg_append *m = append_new(id, msg);
    m->req.reply_to = ack_to;
    m->req.tag = tag;
    rt_send(cx, store, &m->hdr);
}

void ag_persist_answer(rt_ctx *cx, rt_ref store, const char *id, const cJSON *msg, int64_t in,
                       int64_t out)
{
    if (!store)
        return;
    st_msg_append *m = append_new(id, msg);
    m->input_tokens = in;
    m->output_tokens = out;
    rt_send(cx, store, &m->hdr);
}

void ag_persist_sync(rt_ctx *cx, rt_ref store, rt_ref reply_to, uint64_t tag)
{
    if (store)
        rt_send(cx, store, &st_ctl_new(ST_MSG_SYNC, reply_to, tag)->hdr);
}

void ag_persist_load(rt_ctx *cx, rt_ref reader, const char *id, rt_ref reply_to)
{
    if (!reader)
        return;
    rt_send(cx, reader, &st_get_new(ST_MSG_GET_SESSION, id, reply_to, ROW_TAG)->hdr);
    rt_send(cx, reader, &st_get_new(ST_MSG_GET_MESSAGES, id, reply_to, HISTORY_TAG)->hdr);
}

bool ag_persist_is_session_row(rt_msg *m, char **system_prompt, int64_t *input_tokens,
                               int64_t *output_tokens)
{
    if (m->type != ST_MSG_RESULT || ((st_msg_result *)m)->tag != ROW_TAG)
        return false;
    st_msg_result *r = (st_msg_result *)m;
    *system_prompt = NULL;
    *input_tokens = *output_tokens = 0;
    if (r->err || !cJSON_IsObject(r->json))
        return true;
    const char *sp = jstr(r->json, "system_prompt");
    if (sp && *sp)
        *system_prompt = rt_xstrdup(sp);
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(r->json, "input_tokens");
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(r->json, "output_tokens");
    *input_tokens = cJSON_IsNumber(in) ? (int64_t)in->valuedouble : 0;
    *output_tokens = cJSON_IsNumber(out) ? (int64_t)out->valuedouble : 0;
    return true;
}

bool ag_persist_is_ack(rt_msg *m, uint64_t *tag, int *err, const char **errmsg)
{
    if (m->type != ST_MSG_ACK)
        return false;
    st_msg_ack *a = (st_msg_ack *)m;
    *tag = a->tag;
    *err = a->err;
    *errmsg = a->errmsg;
    return true;
}

/* The store returns the original's conversation format; keep what the API needs. */
static cJSON *to_transcript(cJSON *rows)
{
    cJSON *out = cJSON_CreateArray();
    cJSON *r;
    cJSON_ArrayForEach(r, rows)
    {
        const char *role = jstr(r, "role");
        if (!role || strcmp(role, "system") == 0)
            continue;
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", role);
        const char *content = jstr(r, "content");
        cJSON_AddStringToObject(m, "content", content ? content : "");
        if (jstr(r, "tool_call_id"))
            cJSON_AddStringToObject(m, "tool_call_id", jstr(r, "tool_call_id"));
        if (jstr(r, "tool_name"))
            cJSON_AddStringToObject(m, "name", jstr(r, "tool_name"));
        const cJSON *tcs = cJSON_GetObjectItemCaseSensitive(r, "tool_calls");
        if (cJSON_IsArray(tcs) && cJSON_GetArraySize(tcs) > 0)
            cJSON_AddItemToObject(m, "tool_calls", cJSON_Duplicate(tcs, 1));
        cJSON_AddItemToArray(out, m);
    }
    return out;
}

bool ag_persist_is_history(rt_msg *m, cJSON **history)
{
    if (m->type != ST_MSG_RESULT || ((st_msg_result *)m)->tag != HISTORY_TAG)
        return false;
    st_msg_result *r = (st_msg_result *)m;
    *history = (!r->err && cJSON_IsArray(r->json)) ? to_transcript(r->json) : NULL;
    return true;
}
