/*
 * mm_actor — the Mattermost adapter actor: dispatch, the connection sequence, the WebSocket,
 * reconnects with backoff, the application-level heartbeat, stop, and mattermost_start.
 *
 * The connection sequence (run at start and after every drop):
 *
 *   AUTH    GET /api/v4/users/me          401/403 (or a URL that is not Mattermost): fatal,
 *                                         with the seed's "Failed to authenticate" message;
 *                                         unreachable or 5xx: reconnect later
 *   CONFIG  GET /api/v4/config/client?format=old   MaxPostSize (16383 when absent)
 *   WS      connect, send the authentication challenge (seq 1)
 *   LIVE    on {"status":"OK","seq_reply":1} or the "hello" event: backoff reset, heartbeat
 *           armed, GW_MSG_ADAPTER_UP the first time, catch-up of what was missed
 *
 * A drop (close, reset, idle timeout, an unanswered heartbeat ping, a gap in the events' seq)
 * leads to WAIT: delay = 2 s doubling to 60 s, plus up to 20 % jitter, then AUTH again. The
 * adapter stays announced to the gateway while it reconnects: replies still go out over REST.
 */
#include "mm_int.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_lws.h"
#include "rt_reactor.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"
#include "rt_ws.h"
#include "hm_env.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ================================================================ helpers */

int64_t mm__now_ns(rt_ctx *cx)
{
    return rt_now_ns(rt_ctx_runtime(cx));
}

rt_ref mm__gateway(mm_adapter *a, rt_ctx *cx)
{
    return a->gateway ? a->gateway : rt_whereis(cx, GW_NAME);
}

static void ws_abandon(mm_adapter *a, rt_ctx *cx)
{
    if (!a->conn)
        return;
    (void)rt_ws_close(cx, a->conn, 1000, NULL); /* its CLOSED is ignored (older gen) */
    a->conn = 0;
    a->conn_gen++;
}

void mm__announce(mm_adapter *a, rt_ctx *cx)
{
    rt_ref gw = mm__gateway(a, cx);
    if (!gw) {
        RT_WARN(MM_LOG, "Mattermost: no gateway to announce the adapter to");
        return;
    }
    gw_caps caps = {.max_message = a->max_post, .markdown = true, .progress = true, .acks = true};
    rt_send(cx, gw, gw_adapter_up_new(MATTERMOST_PLATFORM, a->self, &caps, a->o.home_channel));
    a->announced = true;
}

static void announce_down(mm_adapter *a, rt_ctx *cx)
{
    if (!a->announced)
        return;
    rt_ref gw = mm__gateway(a, cx);
    if (gw)
        rt_send(cx, gw, gw_adapter_down_new(MATTERMOST_PLATFORM, a->self));
    a->announced = false;
}

static void shut(mm_adapter *a, rt_ctx *cx)
{
    for (int k = 1; k < MM_T_COUNT; k++)
        ak_timer_cancel(cx, &a->tm, k);
    ws_abandon(a, cx);
    mm__cancel_all(a, cx);
    announce_down(a, cx);
    a->st_writing = false; /* the final write goes after any in flight */
    mm__state_flush(a, cx);
    if (a->io)
        ak_io_quit(cx, a->io);
    a->io = 0;
}

void mm__fatal(mm_adapter *a, rt_ctx *cx)
{
    if (a->phase == MM_PH_STOPPED || a->phase == MM_PH_FATAL)
        return;
    a->phase = MM_PH_FATAL;
    shut(a, cx);
    RT_ERROR(MM_LOG, "Mattermost: giving up; fix the settings and restart the gateway");
    rt_exit(cx, RT_EXIT_NORMAL); /* not retryable: nothing should restart us */
}

/* ================================================================ connecting */

static void begin_connect(mm_adapter *a, rt_ctx *cx)
{
    a->phase = MM_PH_AUTH;
    mm__submit(a, cx, mm__req_new(a, MM_R_ME, NULL, "/api/v4/users/me"));
}

void mm__reconnect_later(mm_adapter *a, rt_ctx *cx, const char *why)
{
    if (a->phase == MM_PH_STOPPED || a->phase == MM_PH_FATAL || a->phase == MM_PH_WAIT)
        return;
    ws_abandon(a, cx);
    ak_timer_cancel(cx, &a->tm, MM_T_HEARTBEAT);
    a->backoff_ms = mm_backoff_next(a->backoff_ms, a->o.backoff_min_ms, a->o.backoff_max_ms);
    int64_t ms = mm_backoff_jitter(a->backoff_ms, ak_rand(&a->rnd));
    RT_WARN(MM_LOG, "Mattermost WS error: %s — reconnecting in %.1fs", why, (double)ms / 1000.0);
    a->phase = MM_PH_WAIT;
    ak_timer_arm(cx, a->self, &a->tm, MM_T_RECONNECT, ms);
}

static void ws_connect(mm_adapter *a, rt_ctx *cx)
{
    ws_abandon(a, cx);
    a->phase = MM_PH_WS;
    a->conn_gen++;
    a->seq_next = -1;
    a->send_seq = 1;
    a->ping_pending = false;
    rt_ws_opts wo = {
        .url = a->ws_url,
        .ca_file = a->o.ca_file,
        .max_message = MM_WS_MAX_MESSAGE,
        .ping_interval_ms = a->o.heartbeat_ms,
        .idle_timeout_ms = a->o.ws_idle_ms,
        .reply_to = a->self,
        .tag = a->conn_gen,
    };
    RT_INFO(MM_LOG, "Mattermost: connecting to %s", a->ws_url);
    a->conn = rt_ws_connect(cx, &wo);
}

static void auth_failed(mm_adapter *a, rt_ctx *cx, int status, const char *body)
{
    char *msg = NULL;
    char *id = mm_app_error_id(body, &msg);
    if (status == 401)
        RT_ERROR(MM_LOG,
                 "Mattermost: Failed to authenticate — " MM_AUTH_FAIL_HINT
                 " (HTTP 401 from %s: %s). Try: curl -H \"Authorization: Bearer YOUR_TOKEN\" "
                 "%s/api/v4/users/me",
                 a->o.url, msg ? msg : "unauthorized", a->o.url);
    else if (status == 403)
        RT_ERROR(MM_LOG,
                 "Mattermost: Failed to authenticate — " MM_AUTH_FAIL_HINT
                 " (403 Forbidden: the token is invalid or the bot account is deactivated)");
    else
        RT_ERROR(MM_LOG,
                 "Mattermost: Failed to authenticate — " MM_AUTH_FAIL_HINT
                 " (GET %s/api/v4/users/me answered HTTP %d: is MATTERMOST_URL your server's "
                 "address, with https:// and no trailing slash?)",
                 a->o.url, status);
    rt_free(id);
    rt_free(msg);
    mm__fatal(a, cx);
}

static void on_me(mm_adapter *a, rt_ctx *cx, rt_io_msg_http_done *d)
{
    if (d->err || d->status >= 500 || d->status == 429) {
        char why[256];
        if (d->err)
            snprintf(why, sizeof(why), "cannot reach %s (%s)", a->o.url,
                     d->errmsg ? d->errmsg : rt_strerror(d->err));
        else
            snprintf(why, sizeof(why), "%s answered HTTP %d", a->o.url, d->status);
        mm__reconnect_later(a, cx, why);
        return;
    }
    cJSON *j = d->status == 200 && d->body ? cJSON_Parse(d->body) : NULL;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    const cJSON *un = cJSON_GetObjectItemCaseSensitive(j, "username");
    if (!cJSON_IsString(id) || !*id->valuestring || strlen(id->valuestring) > MM_ID_MAX) {
        cJSON_Delete(j);
        auth_failed(a, cx, d->status, d->body);
        return;
    }
    rt_free(a->bot_id);
    rt_free(a->bot_name);
    a->bot_id = rt_xstrdup(id->valuestring);
    a->bot_name = rt_xstrdup(cJSON_IsString(un) ? un->valuestring : "");
    cJSON_Delete(j);
    RT_INFO(MM_LOG, "Mattermost: authenticated as @%s (%s) on %s", a->bot_name, a->bot_id,
            a->o.url);
    mm__state_check_identity(a);
    a->phase = MM_PH_CONFIG;
    mm__submit(a, cx, mm__req_new(a, MM_R_CONFIG, NULL, "/api/v4/config/client?format=old"));
}

static void on_config(mm_adapter *a, rt_ctx *cx, rt_io_msg_http_done *d)
{
    size_t limit = MATTERMOST_MAX_POST_SIZE;
    cJSON *j = !d->err && d->status == 200 && d->body ? cJSON_Parse(d->body) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "MaxPostSize");
    int64_t n = 0;
    if (cJSON_IsString(v) && rt_parse_i64(v->valuestring, 1, 1 << 24, &n) == 0)
        limit = (size_t)n;
    else if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= (1 << 24))
        limit = (size_t)v->valuedouble;
    cJSON_Delete(j);
    if (a->announced && limit != a->max_post) {
        a->max_post = limit;
        mm__announce(a, cx); /* the server's limit changed */
    }
    a->max_post = limit;
    ws_connect(a, cx);
}

void mm__connect_result(mm_adapter *a, rt_ctx *cx, mm_req *r, rt_io_msg_http_done *d)
{
    if (r->kind == MM_R_ME && a->phase == MM_PH_AUTH)
        on_me(a, cx, d);
    else if (r->kind == MM_R_CONFIG && a->phase == MM_PH_CONFIG)
        on_config(a, cx, d);
}

/* ================================================================ the WebSocket */

static void ws_send_json(mm_adapter *a, rt_ctx *cx, cJSON *o)
{
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (a->conn)
        (void)rt_ws_send(cx, a->conn, txt, strlen(txt), false);
    cJSON_free(txt);
}

static void ws_action(mm_adapter *a, rt_ctx *cx, const char *action, cJSON *data)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "seq", (double)a->send_seq++);
    cJSON_AddStringToObject(o, "action", action);
    if (data)
        cJSON_AddItemToObject(o, "data", data);
    ws_send_json(a, cx, o);
}

static void go_live(mm_adapter *a, rt_ctx *cx)
{
    if (a->phase != MM_PH_WS)
        return;
    a->phase = MM_PH_LIVE;
    a->backoff_ms = 0;
    RT_INFO(MM_LOG, "Mattermost: WebSocket connected and authenticated");
    ak_timer_arm(cx, a->self, &a->tm, MM_T_HEARTBEAT, a->o.heartbeat_ms);
    if (!a->announced)
        mm__announce(a, cx);
    mm__catchup_start(a, cx);
}

static void on_ws_open(mm_adapter *a, rt_ctx *cx, rt_ws_msg_open *m)
{
    if (m->tag != a->conn_gen || m->conn != a->conn)
        return;
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "token", a->o.token);
    ws_action(a, cx, "authentication_challenge", data);
}

static void on_ws_event(mm_adapter *a, rt_ctx *cx, mm_wsmsg *w)
{
    if (strcmp(w->event, "hello") == 0)
        go_live(a, cx);
    if (w->seq >= 0) {
        bool gap = a->seq_next >= 0 && w->seq > a->seq_next;
        a->seq_next = w->seq + 1;
        if (gap && a->phase == MM_PH_LIVE) {
            RT_WARN(MM_LOG, "Mattermost: WebSocket events were missed (seq gap); catching up");
            mm__catchup_start(a, cx);
        }
    }
    if (w->has_post && a->phase == MM_PH_LIVE)
        mm__inbound_ws(a, cx, w);
}

static void on_ws_message(mm_adapter *a, rt_ctx *cx, rt_ws_msg_message *m)
{
    if (m->tag != a->conn_gen || m->conn != a->conn)
        return;
    a->ping_pending = false; /* anything at all proves the connection alive */
    mm_wsmsg w;
    if (mm_wsmsg_parse(m->data, m->len, &w) != 0) {
        RT_DEBUG(MM_LOG, "Mattermost: unparsable WebSocket frame ignored");
        mm_wsmsg_fini(&w);
        return;
    }
    if (w.kind == MM_WS_REPLY && w.seq_reply == 1) {
        if (w.ok) {
            go_live(a, cx);
        } else {
            RT_ERROR(MM_LOG, "Mattermost: WebSocket authentication refused (%s)",
                     w.error_id ? w.error_id : "FAIL");
            mm__reconnect_later(a, cx, "authentication refused");
        }
    } else if (w.kind == MM_WS_EVENT) {
        on_ws_event(a, cx, &w);
    }
    mm_wsmsg_fini(&w);
}

static void on_ws_closed(mm_adapter *a, rt_ctx *cx, rt_ws_msg_closed *m)
{
    if (m->tag != a->conn_gen || m->conn != a->conn)
        return;
    a->conn = 0;
    if (m->err == -EACCES || m->http_status == 401 || m->http_status == 403) {
        RT_ERROR(MM_LOG, "Mattermost WS auth failed (HTTP %d) — stopping reconnect",
                 m->http_status ? m->http_status : 401);
        mm__fatal(a, cx);
        return;
    }
    char why[200];
    if (m->http_status)
        snprintf(why, sizeof(why),
                 "the WebSocket upgrade was answered HTTP %d (a reverse proxy needs the "
                 "WebSocket upgrade headers for /api/v4/websocket)",
                 m->http_status);
    else
        snprintf(why, sizeof(why), "%s (%s, code %d)", m->reason[0] ? m->reason : "closed",
                 m->err ? rt_strerror(m->err) : "clean close", m->code);
    mm__reconnect_later(a, cx, why);
}

static void on_heartbeat(mm_adapter *a, rt_ctx *cx)
{
    if (a->phase != MM_PH_LIVE || !a->conn)
        return;
    if (a->ping_pending) {
        mm__reconnect_later(a, cx, "no answer to the WebSocket ping (the connection is dead)");
        return;
    }
    a->ping_pending = true;
    ws_action(a, cx, "ping", NULL);
    ak_timer_arm(cx, a->self, &a->tm, MM_T_HEARTBEAT, a->o.heartbeat_ms);
}

/* ================================================================ dispatch */

static void on_timeout(mm_adapter *a, rt_ctx *cx, rt_msg_timeout *t)
{
    int kind = ak_timer_fired(&a->tm, t); /* 0: re-armed or cancelled since */
    if (!kind)
        return;
    if (a->phase == MM_PH_STOPPED || a->phase == MM_PH_FATAL)
        return;
    switch (kind) {
    case MM_T_RECONNECT:
        if (a->phase == MM_PH_WAIT)
            begin_connect(a, cx);
        break;
    case MM_T_HEARTBEAT: on_heartbeat(a, cx); break;
    case MM_T_RATELIMIT: mm__on_ratelimit_timer(a, cx); break;
    case MM_T_OUT: mm__on_out_timer(a, cx); break;
    case MM_T_TYPING: mm__on_typing_timer(a, cx); break;
    case MM_T_CATCHUP: mm__on_catchup_timer(a, cx); break;
    case MM_T_STATE: mm__state_save(a, cx); break;
    default: break;
    }
}

static void on_io_done(mm_adapter *a, rt_ctx *cx, ak_io_done *d)
{
    if (d->tag == 0) {
        mm__state_written(a, cx);
        return;
    }
    mm_req *r = mm__untrack(a, d->tag);
    if (!r)
        return;
    if (r->kind == MM_R_FILE_SAVE)
        mm__inbound_io(a, cx, r, d);
    else
        mm__outbound_io(a, cx, r, d);
    mm__req_free(r);
}

static void on_start(mm_adapter *a, rt_ctx *cx)
{
    if (a->phase != MM_PH_INIT)
        return;
    a->io = ak_io_start(cx, "Mattermost");
    begin_connect(a, cx);
}

static void behave(rt_ctx *cx, void *state, rt_msg *m)
{
    mm_adapter *a = state;
    a->self = rt_self(cx);
    if (a->phase == MM_PH_FATAL)
        return;
    if (a->phase == MM_PH_STOPPED && m->type != RT_MSG_STOP)
        return;
    switch (m->type) {
    case MM_MSG_START: on_start(a, cx); break;
    case RT_IO_MSG_HTTP_DONE: mm__on_http_done(a, cx, (rt_io_msg_http_done *)m); break;
    case RT_WS_MSG_OPEN: on_ws_open(a, cx, (rt_ws_msg_open *)m); break;
    case RT_WS_MSG_MESSAGE: on_ws_message(a, cx, (rt_ws_msg_message *)m); break;
    case RT_WS_MSG_CLOSED: on_ws_closed(a, cx, (rt_ws_msg_closed *)m); break;
    case RT_MSG_TIMEOUT: on_timeout(a, cx, (rt_msg_timeout *)m); break;
    case AK_MSG_IO_DONE: on_io_done(a, cx, (ak_io_done *)m); break;
    case GW_OUT_TEXT: mm__on_out_text(a, cx, (gw_out_text *)m); break;
    case GW_OUT_TYPING: mm__on_out_typing(a, cx, (gw_out_typing *)m); break;
    case GW_OUT_TURN_END: mm__on_turn_end(a, cx, (gw_out_turn_end *)m); break;
    case GW_OUT_DELTA: break; /* we post whole messages */
    case RT_MSG_STOP:
        if (a->phase != MM_PH_STOPPED) {
            a->phase = MM_PH_STOPPED;
            shut(a, cx);
            RT_INFO(MM_LOG, "Mattermost: disconnected");
        }
        break;
    case RT_MSG_EXIT:
    case RT_MSG_DOWN:
    case RT_MSG_INTERRUPT: break;
    default: RT_WARN_ONCE(MM_LOG, "Mattermost: unexpected message type %#x", m->type); break;
    }
}

static void adapter_free(void *state)
{
    mm_adapter *a = state;
    mm__cancel_all(a, NULL);
    rt_map_fini(&a->reqs);
    mm__jobs_free(a);
    mm__catchup_reset(a);
    mm__out_free_all(a);
    for (size_t i = 0; i < a->ntyping; i++) {
        rt_free(a->typing[i].channel);
        rt_free(a->typing[i].parent);
    }
    for (size_t i = 0; i < a->nusers; i++) {
        rt_free(a->users[i].id);
        rt_free(a->users[i].name);
    }
    mm_state_fini(&a->st);
    if (a->lock_path)
        mm__lock_release(a->lock_path);
    rt_free(a->lock_path);
    rt_free(a->ws_url);
    rt_free(a->auth_header);
    rt_free(a->state_path);
    rt_free(a->cache_dir);
    rt_free(a->user_home);
    rt_free(a->bot_id);
    rt_free(a->bot_name);
    mattermost_opts_fini(&a->o);
    rt_free(a);
}

static const rt_actor_type mm_type = {"mattermost", behave, adapter_free, 0};

/* ================================================================ start */

static char **strv_dup(char *const *v)
{
    if (!v)
        return NULL;
    size_t n = 0;
    while (v[n])
        n++;
    char **out = rt_xcalloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = rt_xstrdup(v[i]);
    return out;
}

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

static void copy_opts(mattermost_opts *d, const mattermost_opts *s)
{
    *d = *s;
    d->url = dupn(s->url);
    d->token = dupn(s->token);
    d->hermes_home = dupn(s->hermes_home);
    d->lock_dir = dupn(s->lock_dir);
    d->free_channels = strv_dup(s->free_channels);
    d->home_channel = dupn(s->home_channel && *s->home_channel ? s->home_channel : NULL);
    d->prompt_channels = strv_dup(s->prompt_channels);
    d->prompts = strv_dup(s->prompts);
    d->ca_file = dupn(s->ca_file);
#define DEF(f, v)                                                                                  \
    if (d->f <= 0)                                                                                 \
    d->f = (v)
    DEF(backoff_min_ms, 2000);
    DEF(backoff_max_ms, 60000);
    DEF(heartbeat_ms, 30000);
    DEF(ws_idle_ms, 90000);
    DEF(http_timeout_ms, 30000);
    DEF(upload_timeout_ms, 60000);
    DEF(typing_ms, 2000);
    DEF(catchup_max_age_ms, 24LL * 3600 * 1000);
#undef DEF
    if (!d->max_file_bytes)
        d->max_file_bytes = 32u << 20;
    if (d->backoff_max_ms < d->backoff_min_ms)
        d->backoff_max_ms = d->backoff_min_ms;
}

static int fail(char *err, size_t errlen, int rc, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return rc;
}

static void load_state(mm_adapter *a)
{
    char *text = NULL;
    size_t len = 0;
    if (hm_read_file(a->state_path, 4u << 20, &text, &len) != 0)
        return; /* first start: nothing to catch up with */
    if (mm_state_parse(text, &a->st) != 0)
        RT_WARN(MM_LOG, "Mattermost: %s is not valid; starting from the present", a->state_path);
    else if (a->st.server && strcmp(a->st.server, a->o.url) != 0)
        mm_state_fini(&a->st); /* another server's history */
    rt_free(text);
}

int mattermost_start(rt_ctx *cx, const mattermost_opts *o, rt_ref gateway, rt_ref *out, char *err,
                     size_t errlen)
{
    if (!o || !out || !o->token || !*o->token || !o->hermes_home)
        return fail(err, errlen, -EINVAL, "Mattermost: the token and HERMES_HOME are required");
    char *ws = mm_ws_url(o->url);
    if (!ws)
        return fail(err, errlen, -EINVAL,
                    "Mattermost: MATTERMOST_URL must start with https:// or http://");
    rt_runtime *rt = rt_ctx_runtime(cx);
    if (!rt_reactor_of(rt) || !rt_lws_of(rt)) {
        rt_free(ws);
        return fail(err, errlen, -EINVAL,
                    "Mattermost: the HTTP client and the WebSocket service are not running");
    }
    mm_adapter *a = rt_xcalloc(1, sizeof(*a));
    copy_opts(&a->o, o);
    a->ws_url = ws;
    a->gateway = gateway;
    a->auth_header = rt_xasprintf("Authorization: Bearer %s", o->token);
    a->state_path = rt_xasprintf("%s/platforms/mattermost/state.json", o->hermes_home);
    a->cache_dir = rt_xasprintf("%s/cache", o->hermes_home);
    a->user_home = getenv("HOME") ? rt_xstrdup(getenv("HOME")) : NULL;
    a->max_post = MATTERMOST_MAX_POST_SIZE;
    a->seq_next = -1;
    a->rnd = rt_hash_u64((uint64_t)getpid() ^ (uint64_t)rt_reactor_now_ns() ^ (uintptr_t)a) | 1;
    rt_map_init(&a->reqs);
    mm_state_init(&a->st);
    if (a->o.lock_dir) {
        int rc = mm__lock_acquire(a->o.lock_dir, a->o.url, a->o.token, &a->lock_path, err, errlen);
        if (rc) {
            adapter_free(a);
            return rc;
        }
    }
    load_state(a);
    rt_ref ref = rt_spawn(cx, &mm_type, a, NULL);
    if (!ref) /* the state was released by rt_spawn */
        return fail(err, errlen, -ENOMEM, "Mattermost: could not start the adapter actor");
    rt_send(cx, ref, rt_msg_new(MM_MSG_START, sizeof(rt_msg)));
    *out = ref;
    return 0;
}
