/*
 * llm_msgs — constructors and drop functions for the provider's messages (llm_provider.h).
 */
#include "llm_provider.h"
#include "rt_alloc.h"

static void drop_request(rt_msg *m)
{
    llm_msg_request *r = (llm_msg_request *)m;
    rt_free(r->model);
    cJSON_Delete(r->messages);
    if (r->keep_drop)
        r->keep_drop(r->keep);
    cJSON_Delete(r->tools);
    cJSON_Delete(r->extra);
}

llm_msg_request *llm_request_new(rt_ref reply_to, uint64_t tag, cJSON *messages, cJSON *tools)
{
    llm_msg_request *r = RT_MSG_NEW(llm_msg_request, LLM_MSG_REQUEST);
    r->reply_to = reply_to;
    r->tag = tag;
    r->messages = messages;
    r->tools = tools;
    r->temperature = -1;
    r->hdr.drop = drop_request;
    return r;
}

rt_msg *llm_cancel_new(rt_ref from, uint64_t tag)
{
    llm_msg_cancel *c = RT_MSG_NEW(llm_msg_cancel, LLM_MSG_CANCEL);
    c->from = from;
    c->tag = tag;
    return &c->hdr;
}

static void drop_result(rt_msg *m)
{
    llm_msg_result *r = (llm_msg_result *)m;
    rt_free(r->errmsg);
    llm_result_fini(&r->result);
}

llm_msg_result *llm_result_msg_new(uint64_t tag)
{
    llm_msg_result *r = RT_MSG_NEW(llm_msg_result, LLM_MSG_RESULT);
    r->tag = tag;
    r->hdr.drop = drop_result;
    return r;
}

static void drop_delta(rt_msg *m)
{
    rt_free(((llm_msg_delta *)m)->text);
}

rt_msg *llm_delta_new(uint64_t tag, int kind, const char *text, size_t len)
{
    llm_msg_delta *d = RT_MSG_NEW(llm_msg_delta, LLM_MSG_DELTA);
    d->tag = tag;
    d->kind = kind;
    d->text = rt_xstrndup(text, len);
    d->hdr.drop = drop_delta;
    return &d->hdr;
}

static void drop_status(rt_msg *m)
{
    rt_free(((llm_msg_status *)m)->text);
}

rt_msg *llm_status_new(uint64_t tag, const char *text, int64_t retry_in_ms, int attempt)
{
    llm_msg_status *s = RT_MSG_NEW(llm_msg_status, LLM_MSG_STATUS);
    s->tag = tag;
    s->text = rt_xstrdup(text ? text : "");
    s->retry_in_ms = retry_in_ms;
    s->attempt = attempt;
    s->hdr.drop = drop_status;
    return &s->hdr;
}
