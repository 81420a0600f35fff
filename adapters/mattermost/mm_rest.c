/*
 * mm_rest — the adapter's REST requests: every call to the server goes through mm__submit,
 * which adds the bearer token, hands the request to the reactor's HTTP client and remembers
 * it under a tag until its DONE comes back.
 *
 * Rate limits (Mattermost's throttled limiter): a 429 parks the request and everything
 * submitted after it until the time the answer names (Retry-After / X-RateLimit-Reset, at
 * least 1 s) and then sends them again in order; an answer saying X-RateLimit-Remaining: 0
 * holds new requests until X-RateLimit-Reset, so the limit is not hit in the first place.
 * Typing indicators are not worth waiting for: they are dropped while rate-limited.
 */
#include "mm_int.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_timer.h"
#include "rt_util.h"

#include <errno.h>
#include <string.h>

mm_req *mm__req_new(mm_adapter *a, int kind, const char *method, const char *path)
{
    (void)a;
    mm_req *r = rt_xcalloc(1, sizeof(*r));
    r->kind = kind;
    r->method = method ? rt_xstrdup(method) : NULL;
    r->path = path ? rt_xstrdup(path) : NULL;
    r->timeout_ms = a->o.http_timeout_ms;
    r->max_body = MM_REST_MAX_BODY;
    return r;
}

void mm__req_free(mm_req *r)
{
    if (!r)
        return;
    rt_free(r->method);
    rt_free(r->path);
    rt_free(r->body);
    rt_free(r->ctype);
    rt_free(r->aux);
    rt_free(r);
}

void mm__req_json(mm_req *r, cJSON *body)
{
    char *txt = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    rt_free(r->body);
    r->body = rt_xstrdup(txt);
    r->body_len = strlen(r->body);
    cJSON_free(txt);
    rt_free(r->ctype);
    r->ctype = rt_xstrdup("application/json");
}

uint64_t mm__track(mm_adapter *a, mm_req *r)
{
    r->tag = ++a->next_tag;
    rt_map_put(&a->reqs, r->tag, r);
    return r->tag;
}

mm_req *mm__untrack(mm_adapter *a, uint64_t tag)
{
    return tag ? rt_map_del(&a->reqs, tag) : NULL;
}

static void park(mm_adapter *a, rt_ctx *cx, mm_req *r)
{
    r->next = NULL;
    if (a->parked_tail)
        a->parked_tail->next = r;
    else
        a->parked = r;
    a->parked_tail = r;
    int64_t ms = (a->rl_until_ns - mm__now_ns(cx) + 999999) / 1000000;
    if (!ak_timer_armed(&a->tm, MM_T_RATELIMIT))
        ak_timer_arm(cx, a->self, &a->tm, MM_T_RATELIMIT, ms > 0 ? ms : 1);
}

static void send_now(mm_adapter *a, rt_ctx *cx, mm_req *r)
{
    char *url = rt_xasprintf("%s%s", a->o.url, r->path);
    char *ctype = r->ctype ? rt_xasprintf("Content-Type: %s", r->ctype) : NULL;
    const char *hdrs[4] = {a->auth_header, "X-Requested-With: XMLHttpRequest", ctype, NULL};
    rt_http_request hr = {
        .method = r->method,
        .url = url,
        .headers = hdrs,
        .body = r->body,
        .body_len = r->body_len,
        .timeout_ms = r->timeout_ms,
        .max_body = r->max_body,
        .mode = RT_HTTP_BUFFER,
        .ca_file = a->o.ca_file,
        .reply_to = a->self,
        .tag = r->tag,
    };
    r->http_id = rt_http_submit(cx, &hr);
    rt_free(url);
    rt_free(ctype);
}

void mm__submit(mm_adapter *a, rt_ctx *cx, mm_req *r)
{
    if (!r->tag)
        mm__track(a, r);
    r->http_id = 0;
    if (a->parked || mm__now_ns(cx) < a->rl_until_ns) {
        if (r->kind == MM_R_TYPING) { /* stale by the time it could go */
            mm__req_free(mm__untrack(a, r->tag));
            return;
        }
        park(a, cx, r);
        return;
    }
    send_now(a, cx, r);
}

void mm__on_ratelimit_timer(mm_adapter *a, rt_ctx *cx)
{
    if (mm__now_ns(cx) < a->rl_until_ns) { /* a later answer pushed the limit further */
        int64_t ms = (a->rl_until_ns - mm__now_ns(cx) + 999999) / 1000000;
        ak_timer_arm(cx, a->self, &a->tm, MM_T_RATELIMIT, ms > 0 ? ms : 1);
        return;
    }
    mm_req *list = a->parked;
    a->parked = a->parked_tail = NULL;
    while (list) {
        mm_req *r = list;
        list = r->next;
        r->next = NULL;
        if (a->parked) { /* a 429 came back meanwhile: keep the order */
            park(a, cx, r);
            continue;
        }
        send_now(a, cx, r);
    }
}

static void rate_limited(mm_adapter *a, rt_ctx *cx, int64_t wait_ms)
{
    int64_t until = mm__now_ns(cx) + wait_ms * 1000000;
    if (until > a->rl_until_ns)
        a->rl_until_ns = until;
}

void mm__on_http_done(mm_adapter *a, rt_ctx *cx, rt_io_msg_http_done *d)
{
    mm_req *r = rt_map_get(&a->reqs, d->tag);
    if (!r || r->http_id != d->id)
        return; /* cancelled, or an older attempt */
    r->http_id = 0;
    int64_t wait =
        d->err ? 0 : mm_ratelimit_wait_ms(d->status, d->headers, d->nheaders, d->retry_after_s);
    if (d->status == 429 && r->kind != MM_R_TYPING && r->tries < MM_RL_TRIES) {
        r->tries++;
        rate_limited(a, cx, wait);
        RT_LOG_LIMITED(RT_LOG_WARN, MM_LOG, 10000,
                       "Mattermost: rate limited (HTTP 429) on %s %s — waiting %.1fs",
                       r->method ? r->method : "GET", r->path, (double)wait / 1000.0);
        park(a, cx, r);
        return;
    }
    if (wait > 0)
        rate_limited(a, cx, wait);
    rt_map_del(&a->reqs, r->tag);
    if (d->status >= 400 && d->status != 404)
        RT_DEBUG(MM_LOG, "Mattermost: %s %s → %d: %.200s", r->method ? r->method : "GET", r->path,
                 d->status, d->body ? d->body : "");
    switch (r->kind) {
    case MM_R_POST:
    case MM_R_PATCH:
    case MM_R_UPLOAD: mm__outbound_result(a, cx, r, d); break;
    case MM_R_TYPING: break;
    case MM_R_ME:
    case MM_R_CONFIG: mm__connect_result(a, cx, r, d); break;
    default: mm__inbound_result(a, cx, r, d); break;
    }
    mm__req_free(r);
}

void mm__cancel_all(mm_adapter *a, rt_ctx *cx)
{
    for (size_t i = 0; i < a->reqs.cap; i++) {
        if (!a->reqs.keys[i])
            continue;
        mm_req *r = a->reqs.vals[i];
        if (r->http_id && cx) /* without cx (fini) its DONE just finds no one */
            rt_http_cancel(cx, r->http_id);
        mm__req_free(r);
    }
    rt_map_fini(&a->reqs);
    rt_map_init(&a->reqs);
    a->parked = a->parked_tail = NULL; /* they were in the map too */
}
