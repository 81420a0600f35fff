/*
 * llm_attempt — one HTTP attempt of a provider request: the endpoint and headers, the body,
 * the streamed events, and the judgement of how the attempt ended (llm_outcome). The
 * provider actor (llm_provider.c) decides what to do with the outcome: answer, retry.
 *
 * User-facing texts are built here. Each names the provider and says what happened in
 * plain words; the provider's own error message is used when the body carries one; the
 * API key is masked wherever it appears (llm_provider.h invariant 5).
 *
 * Threads: called from the provider's behaviour only.
 */
#include "llm_provider_int.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ANTHROPIC_VERSION "2023-06-01"

/* ============================================================ configuration */

static bool header_line_ok(const char *line)
{
    const char *colon = line ? strchr(line, ':') : NULL;
    return colon && colon != line && !strpbrk(line, "\r\n");
}

void llm__conf_build(llm_prov *p, const llm_provider_opts *o)
{
    const char *path = p->api == LLM_API_ANTHROPIC ? "/messages" : "/chat/completions";
    if (p->base_url)
        p->url = rt_xasprintf("%s%s", p->base_url, path);
    p->max_completion_tokens = p->base_url && strstr(p->base_url, "api.openai.com");
    p->body_extra = llm__body_extra(p->api, p->base_url, o->reasoning_effort);

    char **h = rt_xcalloc(LLM_MAX_HEADERS + 1, sizeof(*h));
    int n = 0;
    h[n++] = rt_xstrdup("Content-Type: application/json");
    if (p->api == LLM_API_ANTHROPIC) {
        if (p->api_key)
            h[n++] = rt_xasprintf("x-api-key: %s", p->api_key);
        h[n++] = rt_xstrdup("anthropic-version: " ANTHROPIC_VERSION);
    } else if (p->api_key) {
        h[n++] = rt_xasprintf("Authorization: Bearer %s", p->api_key);
    }
    /* agent-core §2.3: OpenRouter attribution */
    if (p->base_url && strcasestr(p->base_url, "openrouter")) {
        h[n++] = rt_xstrdup("HTTP-Referer: https://github.com/NousResearch/hermes-agent");
        h[n++] = rt_xstrdup("X-OpenRouter-Title: Hermes Agent");
        h[n++] = rt_xstrdup("X-OpenRouter-Categories: productivity,cli-agent");
    }
    for (size_t i = 0; o->headers && o->headers[i]; i++) {
        if (!header_line_ok(o->headers[i])) {
            RT_WARN("llm", "provider %s: ignoring extra header %zu: not a \"Name: value\" line",
                    p->name, i + 1);
            continue;
        }
        if (n == LLM_MAX_HEADERS) {
            RT_WARN("llm", "provider %s: more than %d headers; the rest are ignored", p->name,
                    LLM_MAX_HEADERS);
            break;
        }
        h[n++] = rt_xstrdup(o->headers[i]);
    }
    p->headers = h;
}

void llm__conf_fini(llm_prov *p)
{
    for (size_t i = 0; p->headers && p->headers[i]; i++)
        rt_free(p->headers[i]);
    rt_free(p->headers);
    p->headers = NULL;
    rt_free(p->url);
    p->url = NULL;
    cJSON_Delete(p->body_extra);
    p->body_extra = NULL;
}

cJSON *llm__body_extra(llm_api api, const char *base_url, const char *effort)
{
    /* agent-core §1.5: only on OpenRouter and Nous endpoints, never Mistral's. */
    if (api != LLM_API_OPENAI || !base_url || strcasestr(base_url, "api.mistral.ai") ||
        (!strcasestr(base_url, "openrouter") && !strcasestr(base_url, "nousresearch")))
        return NULL;
    static const char *const levels[] = {"xhigh", "high", "medium", "low", "minimal"};
    cJSON *extra = cJSON_CreateObject();
    cJSON *r = cJSON_AddObjectToObject(extra, "reasoning");
    if (effort && strcasecmp(effort, "none") == 0) {
        cJSON_AddFalseToObject(r, "enabled");
    } else {
        const char *level = levels[0]; /* empty or unknown: the original's default, xhigh */
        for (size_t i = 0; effort && i < sizeof(levels) / sizeof(levels[0]); i++)
            if (strcasecmp(effort, levels[i]) == 0)
                level = levels[i];
        cJSON_AddTrueToObject(r, "enabled");
        cJSON_AddStringToObject(r, "effort", level);
    }
    if (strcasestr(base_url, "nousresearch")) {
        cJSON *tags = cJSON_AddArrayToObject(extra, "tags");
        cJSON_AddItemToArray(tags, cJSON_CreateString("product=hermes-agent"));
    }
    return extra;
}

char *llm__body_new(const llm_prov *p, const llm_msg_request *r, size_t *len, const char **why)
{
    const char *model = r->model && *r->model ? r->model : p->model;
    if (!p->url) {
        *why = "no base URL is configured for this provider (set OPENAI_BASE_URL or "
               "model.base_url)";
        return NULL;
    }
    if (!model || !*model) {
        *why = "no model is configured (set model.default in config.yaml or LLM_MODEL)";
        return NULL;
    }
    if (!cJSON_IsArray(r->messages) || cJSON_GetArraySize(r->messages) == 0) {
        *why = "the request has no messages";
        return NULL;
    }
    if (r->tools && !cJSON_IsArray(r->tools)) {
        *why = "the request's tools are not a list";
        return NULL;
    }
    /* The provider's members, then the request's own over them. */
    const cJSON *extra = cJSON_IsObject(r->extra) ? r->extra : NULL;
    cJSON *merged = NULL;
    if (p->body_extra) {
        merged = cJSON_Duplicate(p->body_extra, 1);
        const cJSON *e;
        cJSON_ArrayForEach(e, extra)
        {
            cJSON_DeleteItemFromObjectCaseSensitive(merged, e->string);
            cJSON_AddItemToObject(merged, e->string, cJSON_Duplicate(e, 1));
        }
        extra = merged;
    }
    llm_request_spec spec = {
        .api = p->api,
        .model = model,
        .messages = r->messages,
        .tools = r->tools && cJSON_GetArraySize(r->tools) > 0 ? r->tools : NULL,
        .extra = extra,
        .max_tokens = r->max_tokens > 0 ? r->max_tokens : 0,
        .temperature = r->temperature,
        .stream = r->stream,
        .use_max_completion_tokens = p->max_completion_tokens,
    };
    char *body = llm_build_body(&spec);
    cJSON_Delete(merged);
    *len = strlen(body);
    return body;
}

/* ============================================================ user-facing text */

char *llm__clean_msg(const llm_prov *p, const char *text)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    size_t klen = p->api_key ? strlen(p->api_key) : 0;
    const char *s = text ? text : "";
    /* Mask first, cut afterwards: a cut can never leave a piece of the key behind. */
    while (*s) {
        if (klen >= 8 && strncmp(s, p->api_key, klen) == 0) {
            rt_buf_append_str(&b, "***");
            s += klen;
            continue;
        }
        char c = (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s;
        rt_buf_append(&b, &c, 1);
        s++;
    }
    if (b.len > LLM_ERRMSG_MAX) {
        size_t cut = LLM_ERRMSG_MAX;
        while (cut > 0 && ((unsigned char)b.data[cut] & 0xC0) == 0x80)
            cut--; /* never split a UTF-8 sequence */
        b.len = cut;
        b.data[cut] = '\0';
        rt_buf_append_str(&b, "...");
    }
    return rt_buf_steal(&b, NULL);
}

int llm__kind_errno(llm_err_kind k)
{
    switch (k) {
    case LLM_ERR_RATE_LIMIT:
    case LLM_ERR_OVERLOADED: return -EAGAIN;
    case LLM_ERR_AUTH:
    case LLM_ERR_PAYMENT: return -EACCES;
    case LLM_ERR_NOT_FOUND: return -ENOENT;
    case LLM_ERR_CONTEXT_LENGTH:
    case LLM_ERR_PAYLOAD_TOO_LARGE: return -E2BIG;
    case LLM_ERR_NETWORK: return -ECONNRESET;
    case LLM_ERR_TIMEOUT: return -ETIMEDOUT;
    case LLM_ERR_MALFORMED: return -EBADMSG;
    case LLM_ERR_SERVER: return -EPROTO;
    default: return -EINVAL;
    }
}

static const char *kind_words(llm_err_kind k)
{
    switch (k) {
    case LLM_ERR_RATE_LIMIT: return "rate limited";
    case LLM_ERR_OVERLOADED: return "overloaded";
    case LLM_ERR_SERVER: return "server error";
    case LLM_ERR_AUTH: return "not authorized";
    case LLM_ERR_PAYMENT: return "payment required";
    case LLM_ERR_NOT_FOUND: return "not found";
    case LLM_ERR_CONTEXT_LENGTH: return "context too long";
    case LLM_ERR_PAYLOAD_TOO_LARGE: return "request too large";
    default: return "request refused";
    }
}

static void set_msg(const llm_prov *p, llm_outcome *o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_msg(const llm_prov *p, llm_outcome *o, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    rt_free(o->msg);
    o->msg = llm__clean_msg(p, tmp);
}

/* The error class of a JSON document carrying an error object (a 2xx body or an in-stream
 * event), or LLM_ERR_NONE when it has none. OpenRouter puts the upstream status in
 * error.code; anything else counts as a server-side failure. */
static llm_err_kind error_object_kind(const char *json)
{
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    llm_err_kind k = LLM_ERR_NONE;
    if (e) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
        int status = cJSON_IsNumber(code) && code->valuedouble >= 400 && code->valuedouble < 600
                         ? (int)code->valuedouble
                         : 500;
        k = llm_classify(status, json, 0);
    }
    cJSON_Delete(root);
    return k;
}

/* ============================================================ the attempt */

void llm__attempt_start(rt_ctx *cx, llm_prov *p, llm_job *j)
{
    rt_http_request rq = {
        .method = "POST",
        .url = p->url,
        .headers = (const char *const *)p->headers,
        .body = j->body,
        .body_len = j->body_len,
        .timeout_ms = j->timeout_ms,
        .idle_timeout_ms = j->stream ? p->idle_timeout_ms : 0,
        .max_body = LLM_BODY_MAX,
        .mode = j->stream ? RT_HTTP_STREAM_SSE : RT_HTTP_BUFFER,
        .ca_file = p->ca_file,
        .reply_to = rt_self(cx),
        .tag = j->id,
    };
    j->head_status = 0;
    j->stream_done = false;
    j->delivered = false;
    j->streamed_bytes = 0;
    j->fail_err = 0;
    j->fail_kind = LLM_ERR_NONE;
    rt_free(j->fail_msg);
    j->fail_msg = NULL;
    llm_stream_free(j->sp);
    j->sp = j->stream ? llm_stream_new(p->api) : NULL;
    j->st = LLM_JOB_WIRE;
    j->attempts++;
    j->http_id = rt_http_submit(cx, &rq);
    RT_DEBUG("llm", "attempt provider=%s job=%llu http=%llu attempt=%d stream=%d bytes=%zu",
             p->name, (unsigned long long)j->id, (unsigned long long)j->http_id, j->attempts,
             (int)j->stream, j->body_len);
}

void llm__on_head(llm_prov *p, llm_job *j, const rt_io_msg_http_head *h)
{
    (void)p;
    j->head_status = h->status;
}

/* End the attempt early (the transfer is cancelled); the outcome is decided at DONE. */
static void fail_attempt(rt_ctx *cx, llm_prov *p, llm_job *j, int err, llm_err_kind kind,
                         const char *msg)
{
    j->fail_err = err;
    j->fail_kind = kind;
    rt_free(j->fail_msg);
    j->fail_msg = llm__clean_msg(p, msg);
    rt_http_cancel(cx, j->http_id);
}

typedef struct delta_ctx {
    rt_ctx *cx;
    llm_prov *p;
    llm_job *j;
    bool gone; /* the requester has ended */
} delta_ctx;

static void pass_delta(void *arg, int kind, const char *text, size_t len)
{
    delta_ctx *d = arg;
    if (d->gone)
        return;
    if (!rt_send(d->cx, d->j->reply_to, llm_delta_new(d->j->tag, kind, text, len))) {
        d->gone = true;
        return;
    }
    d->j->delivered = true;
    d->p->st.deltas++;
}

void llm__on_sse(rt_ctx *cx, llm_prov *p, llm_job *j, const rt_io_msg_http_sse *e)
{
    if (j->st != LLM_JOB_WIRE || !j->sp || j->fail_err || j->stream_done)
        return;
    j->streamed_bytes += e->data_len;
    if (j->streamed_bytes > LLM_STREAM_MAX) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%s: the streamed response is larger than %u MiB", p->name,
                 LLM_STREAM_MAX >> 20);
        fail_attempt(cx, p, j, -E2BIG, LLM_ERR_MALFORMED, msg);
        return;
    }
    char err[256] = "";
    delta_ctx dc = {cx, p, j, false};
    int rc = llm_stream_event(j->sp, e->event, e->data, pass_delta, &dc, err, sizeof(err));
    if (dc.gone) {
        llm__job_detach(cx, p, j);
        return;
    }
    if (rc == 1) {
        j->stream_done = true;
    } else if (rc < 0) {
        llm_err_kind k = error_object_kind(e->data);
        char msg[512];
        snprintf(msg, sizeof(msg), "%s: %s", p->name, err);
        fail_attempt(cx, p, j, k ? llm__kind_errno(k) : -EBADMSG, k ? k : LLM_ERR_MALFORMED, msg);
    }
}

/* ============================================================ the outcome */

void llm__outcome_fini(llm_outcome *o)
{
    rt_free(o->msg);
    o->msg = NULL;
    llm_result_fini(&o->result);
}

static int64_t retry_after_of(const rt_io_msg_http_done *d)
{
    const char *ms = rt_http_header_get(d->headers, d->nheaders, "retry-after-ms");
    int64_t v = -1;
    if (ms && rt_parse_i64(ms, 0, 86400000, &v) == 0)
        return v;
    const char *ra = rt_http_header_get(d->headers, d->nheaders, "retry-after");
    if (ra && (v = llm_retry_after_ms(ra, (int64_t)time(NULL))) >= 0)
        return v;
    return d->retry_after_s > 0 ? d->retry_after_s * 1000 : -1;
}

static void transport_error(llm_prov *p, llm_job *j, const rt_io_msg_http_done *d, llm_outcome *o)
{
    const char *what = d->errmsg ? d->errmsg : rt_strerror(d->err);
    o->err = d->err;
    switch (d->err) {
    case -ECANCELED:
        o->kind = LLM_ERR_NONE;
        o->no_retry = true;
        set_msg(p, o, "the request to %s was stopped: the gateway is shutting down", p->name);
        return;
    case -EINVAL:
        o->kind = LLM_ERR_BAD_REQUEST;
        o->no_retry = true;
        set_msg(p, o, "the request to %s could not be made: %s (check the base URL)", p->name,
                what);
        return;
    case -ENOTCONN:
        o->kind = LLM_ERR_NETWORK;
        o->no_retry = true;
        set_msg(p, o, "the HTTP client is not running, so %s cannot be reached", p->name);
        return;
    default: break;
    }
    o->kind = llm_classify(o->http_status, NULL, d->err);
    if (o->kind == LLM_ERR_NONE)
        o->kind = LLM_ERR_NETWORK;
    if (o->kind == LLM_ERR_TIMEOUT)
        set_msg(p, o, "%s did not answer in time (%s)", p->name, what);
    else if (j->head_status || o->http_status)
        set_msg(p, o, "the connection to %s broke off mid-response (%s)", p->name, what);
    else
        set_msg(p, o, "could not reach %s (%s)", p->name, what);
}

static void http_error(llm_prov *p, const rt_io_msg_http_done *d, llm_outcome *o)
{
    int status = o->http_status;
    if (status < 400) { /* a redirect we do not follow, or an odd status */
        o->kind = LLM_ERR_BAD_REQUEST;
        o->err = -EPROTO;
        o->no_retry = true;
        set_msg(p, o, "%s answered HTTP %d instead of a completion (check the base URL)", p->name,
                status);
        return;
    }
    o->kind = llm_classify(status, d->body, 0);
    if (o->kind == LLM_ERR_NONE)
        o->kind = LLM_ERR_BAD_REQUEST;
    o->err = llm__kind_errno(o->kind);
    char *pm = llm_error_message(d->body);
    if (pm && *pm)
        set_msg(p, o, "%s returned HTTP %d: %s", p->name, status, pm);
    else
        set_msg(p, o, "%s returned HTTP %d (%s)", p->name, status, kind_words(o->kind));
    rt_free(pm);
}

static void parse_body(llm_prov *p, const rt_io_msg_http_done *d, llm_outcome *o)
{
    char err[256] = "";
    if (llm_parse_response(p->api, d->body, d->body_len, &o->result, err, sizeof(err)) == 0)
        return;
    llm_result_fini(&o->result);
    llm_err_kind k = error_object_kind(d->body);
    o->kind = k ? k : LLM_ERR_MALFORMED;
    o->err = k ? llm__kind_errno(k) : -EBADMSG;
    set_msg(p, o, "%s: %s", p->name, err);
}

static bool finish_stream(llm_prov *p, llm_job *j, llm_outcome *o)
{
    char err[256] = "";
    if (llm_stream_finish(j->sp, &o->result, err, sizeof(err)) == 0)
        return true;
    llm_result_fini(&o->result);
    o->kind = LLM_ERR_MALFORMED;
    o->err = -EBADMSG;
    set_msg(p, o, "%s: %s", p->name, err);
    return false;
}

void llm__outcome(llm_prov *p, llm_job *j, rt_io_msg_http_done *d, llm_outcome *o)
{
    memset(o, 0, sizeof(*o));
    o->http_status = d->status ? d->status : j->head_status;
    o->retry_after_ms = retry_after_of(d);
    if (j->fail_err) { /* decided mid-stream */
        o->err = j->fail_err;
        o->kind = j->fail_kind;
        o->msg = j->fail_msg;
        j->fail_msg = NULL;
        return;
    }
    bool ok2xx = o->http_status >= 200 && o->http_status < 300;
    if (j->stream && ok2xx && (j->stream_done || d->err == 0)) {
        /* A stream that said it was complete stands even if the connection broke after. */
        if (finish_stream(p, j, o) || d->err == 0)
            return;
        rt_free(o->msg);
        o->msg = NULL;
    }
    if (d->err)
        transport_error(p, j, d, o);
    else if (!ok2xx)
        http_error(p, d, o);
    else
        parse_body(p, d, o);
}
