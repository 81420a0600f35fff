/*
 * mx_actor — the Matrix adapter actor: start, login, the /sync loop, the since token, stop.
 *
 *   BOOT → LOGIN (whoami, or password login) → VERSIONS (authenticated media?) → LOCK (the
 *   identity lock, on the file actor) → CRYPTO (the E2EE seam connects) → FILTER (upload the
 *   sync filter; inline on failure) → SNAPSHOT (/sync without since: room state, DMs; on a
 *   first start its messages count after the 5 s grace) → GW_MSG_ADAPTER_UP → SYNC (long-poll
 *   forever, from the saved token when there is one)
 *
 * Errors (gateway.md §8.2-8.3 and its "C:" notes): a login that fails on the network, a 5xx
 * or a 429 is retried with back-off (5 s doubling to 5 min; 429: retry_after_ms) and the
 * reason logged; a bad token or password stops the adapter with the original's message. A
 * sync error waits 5 s (429: retry_after_ms), never less; the log says why, the first few
 * times and then once a minute. A rejected token stops the adapter (password logins log in
 * again); a rejected since token starts over from now.
 *
 * The since token (invariant 4 in mx_int.h) is written through the file actor at most once
 * per token_write_ms, and once more on stop.
 *
 * Threads: one actor; matrix_start from any thread.
 */
#include "mx_int.h"

#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_reactor.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define LOGIN_BACKOFF_MAX_MS 300000
#define TOKEN_FILE           "sync_token.json"

static void start_login(mx *m, rt_ctx *cx);
static void start_sync(mx *m, rt_ctx *cx);

/* ================================================================ helpers */

int64_t mx_now_ms(rt_ctx *cx)
{
    return rt_now_ns(rt_ctx_runtime(cx)) / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void mx_stat(mx *m, size_t off, uint64_t add)
{
    if (m->o.stats)
        atomic_fetch_add_explicit((_Atomic uint64_t *)((char *)m->o.stats + off), add,
                                  memory_order_relaxed); /* advisory counters */
}

static void set_state(mx *m, int st)
{
    if (m->o.stats)
        atomic_store_explicit(&m->o.stats->state, st, memory_order_relaxed);
}

char *mx_txn(mx *m)
{
    return rt_xasprintf("%s.%llu", m->txn_prefix, (unsigned long long)++m->seq);
}

rt_ref mx_gateway(mx *m, rt_ctx *cx)
{
    return m->gateway ? m->gateway : rt_whereis(cx, GW_NAME);
}

mx_req *mx_req_new(int kind, mx_room *room, mx_in *item)
{
    mx_req *q = rt_xcalloc(1, sizeof(*q));
    q->kind = kind;
    q->room = room;
    q->item = item;
    return q;
}

uint64_t mx_submit(mx *m, rt_ctx *cx, const char *method, const char *path, const char *body,
                   const char *ctype, size_t body_len, int64_t timeout_ms, size_t max_body,
                   mx_req *req)
{
    char *url = rt_xasprintf("%s%s", m->o.homeserver, path);
    char ct[128];
    snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "application/json");
    const char *headers[3];
    size_t nh = 0;
    if (m->auth)
        headers[nh++] = m->auth;
    if (body)
        headers[nh++] = ct;
    headers[nh] = NULL;
    rt_http_request rq = {
        .method = method,
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = body ? (body_len ? body_len : strlen(body)) : 0,
        .timeout_ms = timeout_ms,
        .max_body = max_body ? max_body : MX_SMALL_BODY,
        .ca_file = m->o.ca_file,
        .reply_to = m->self,
        .tag = (uint64_t)req->kind,
    };
    uint64_t id = rt_http_submit(cx, &rq);
    rt_map_put(&m->reqs, id, req);
    rt_free(url);
    return id;
}

void mx_io_submit(mx *m, rt_ctx *cx, mx_io_msg *io, mx_req *req)
{
    io->tag = ++m->seq;
    io->reply_to = m->self;
    rt_map_put(&m->ioreqs, io->tag, req);
    rt_send(cx, m->io, &io->hdr);
}

static void arm(mx *m, rt_ctx *cx, int kind, uint64_t low, int64_t ms)
{
    rt_send_after(cx, m->self, rt_timeout_new(MX_TAG(kind, low)), ms);
}

/* The adapter gives up: logged by the caller; the file actor ends, the actor too. */
static void flush_token(mx *m, rt_ctx *cx);

static void give_up(mx *m, rt_ctx *cx)
{
    m->st = MX_ST_FAILED;
    set_state(m, MATRIX_ST_FAILED);
    if (m->up) {
        rt_ref gw = mx_gateway(m, cx);
        if (gw)
            rt_send(cx, gw, gw_adapter_down_new(MATRIX_PLATFORM, m->self));
    }
    /* what was handed is handed: a restart (the supervisor's, or the gateway's) must not
     * fetch it again (the throttled token write may still be waiting) */
    flush_token(m, cx);
    mx_io_msg *q = mx_io_new(MX_IO_QUIT, 0, 0);
    if (m->locked) {
        q->path = rt_xstrdup(m->o.lock_dir);
        q->data = rt_xstrdup(m->identity);
    }
    rt_send(cx, m->io, &q->hdr);
    rt_exit(cx, RT_EXIT_ERROR);
}

/* ======================================================== since token */

static char *token_path(mx *m)
{
    return rt_xasprintf("%s/%s", m->o.store_dir, TOKEN_FILE);
}

static void write_token(mx *m, rt_ctx *cx)
{
    mx_io_msg *q = mx_io_new(MX_IO_WRITE, 0, 0);
    q->path = token_path(m);
    q->data = mx_token_render(m->o.homeserver, m->user_id, m->safe);
    q->len = strlen(q->data);
    q->mode = 0600;
    rt_free(m->saved);
    m->saved = rt_xstrdup(m->safe);
    m->token_writing = true;
    m->token_written_ms = mx_now_ms(cx);
    mx_io_submit(m, cx, q, mx_req_new(IO_TOKEN, NULL, NULL));
}

static void maybe_persist(mx *m, rt_ctx *cx)
{
    if (!m->safe || (m->saved && strcmp(m->safe, m->saved) == 0) || m->token_writing || !m->user_id)
        return;
    int64_t every = m->o.token_write_ms;
    int64_t wait = m->token_written_ms + every - mx_now_ms(cx);
    if (m->token_written_ms && every > 0 && wait > 0) {
        if (!m->token_timer) {
            m->token_timer = true;
            arm(m, cx, TM_TOKEN, 0, wait);
        }
        return;
    }
    write_token(m, cx);
}

/* Write the handed-up-to token now if it is not on disk yet (ending: no throttle). */
static void flush_token(mx *m, rt_ctx *cx)
{
    if (m->safe && m->user_id && (!m->saved || strcmp(m->safe, m->saved) != 0))
        write_token(m, cx);
}

void mx_after_handed(mx *m, rt_ctx *cx)
{
    maybe_persist(m, cx);
}

/* Batches whose items are all handed give their token to m->safe, oldest first. */
static void batches_advance(mx *m)
{
    size_t k = 0;
    while (k < m->nbatches && !m->batches[k].open && m->batches[k].pending == 0) {
        rt_free(m->safe);
        m->safe = m->batches[k].token;
        k++;
    }
    if (k) {
        memmove(m->batches, m->batches + k, (m->nbatches - k) * sizeof(*m->batches));
        m->nbatches -= k;
    }
}

void mx_batch_done(mx *m, uint64_t batch)
{
    for (size_t i = 0; i < m->nbatches; i++)
        if (m->batches[i].seq == batch && m->batches[i].pending) {
            m->batches[i].pending--;
            break;
        }
    batches_advance(m);
}

static uint64_t batch_open(mx *m, const char *token)
{
    if (m->nbatches == m->batchcap) {
        m->batchcap = m->batchcap ? m->batchcap * 2 : 8;
        m->batches = rt_xrealloc(m->batches, m->batchcap * sizeof(*m->batches));
    }
    mx_batch *b = &m->batches[m->nbatches++];
    b->seq = ++m->batch_seq;
    b->token = rt_xstrdup(token);
    b->pending = 0;
    b->open = true;
    return b->seq;
}

static void batch_close(mx *m, uint64_t seq)
{
    for (size_t i = 0; i < m->nbatches; i++)
        if (m->batches[i].seq == seq)
            m->batches[i].open = false;
    batches_advance(m);
}

/* ================================================================== login */

static void login_failed(mx *m, rt_ctx *cx, int verdict, const char *why, int64_t retry_ms)
{
    MX_STAT(m, login_errors, 1);
    char who[256];
    if (m->o.access_token)
        snprintf(who, sizeof(who),
                 "Matrix: whoami failed — check MATRIX_ACCESS_TOKEN and "
                 "MATRIX_HOMESERVER");
    else
        snprintf(who, sizeof(who),
                 "Matrix: Failed to authenticate as %s — check MATRIX_USER_ID, MATRIX_PASSWORD "
                 "and MATRIX_HOMESERVER",
                 m->o.user_id);
    if (verdict != MX_RETRY) {
        RT_ERROR(MX_LOG, "%s: %s (%s). The Matrix adapter stops.", who, why, m->o.homeserver);
        give_up(m, cx);
        return;
    }
    int64_t wait = m->o.retry_ms << (m->attempts < 6 ? m->attempts : 6);
    if (wait > LOGIN_BACKOFF_MAX_MS)
        wait = LOGIN_BACKOFF_MAX_MS;
    if (retry_ms > wait)
        wait = retry_ms;
    m->attempts++;
    RT_WARN(MX_LOG, "%s: %s (%s) — retrying in %llds", who, why, m->o.homeserver,
            (long long)((wait + 999) / 1000));
    if (m->o.stats)
        atomic_store_explicit(&m->o.stats->retry_wait_ms, (uint64_t)wait, memory_order_relaxed);
    m->retry_armed = true;
    arm(m, cx, TM_RETRY, 0, wait);
}

static void start_login(mx *m, rt_ctx *cx)
{
    m->st = MX_ST_LOGIN;
    if (m->o.access_token) {
        mx_submit(m, cx, "GET", "/_matrix/client/v3/account/whoami", NULL, NULL, 0, MX_SEND_TIMEOUT,
                  0, mx_req_new(RQ_LOGIN, NULL, NULL));
        return;
    }
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "m.login.password");
    cJSON *id = cJSON_AddObjectToObject(b, "identifier");
    cJSON_AddStringToObject(id, "type", "m.id.user");
    cJSON_AddStringToObject(id, "user", m->o.user_id);
    cJSON_AddStringToObject(b, "password", m->o.password);
    if (m->o.device_id)
        cJSON_AddStringToObject(b, "device_id", m->o.device_id);
    cJSON_AddStringToObject(b, "initial_device_display_name", "Hermes Agent");
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    rt_free(m->auth); /* a new login: no stale token */
    m->auth = NULL;
    mx_submit(m, cx, "POST", "/_matrix/client/v3/login", body, NULL, 0, MX_SEND_TIMEOUT, 0,
              mx_req_new(RQ_LOGIN, NULL, NULL));
    cJSON_free(body);
}

static void start_versions(mx *m, rt_ctx *cx)
{
    m->st = MX_ST_VERSIONS;
    mx_submit(m, cx, "GET", "/_matrix/client/versions", NULL, NULL, 0, MX_SEND_TIMEOUT, 0,
              mx_req_new(RQ_VERSIONS, NULL, NULL));
}

static void set_identity(mx *m, const char *user, const char *device, const char *token)
{
    if (token) {
        rt_free(m->token);
        m->token = rt_xstrdup(token);
    }
    rt_free(m->auth);
    m->auth = rt_xasprintf("Authorization: Bearer %s", m->token);
    if (m->user_id && strcmp(m->user_id, user) != 0)
        RT_WARN(MX_LOG, "Matrix: the access token belongs to %s, not %s", user, m->user_id);
    rt_free(m->user_id);
    m->user_id = rt_xstrdup(user);
    rt_free(m->localpart);
    m->localpart = mx_localpart(user);
    rt_free(m->device_id);
    m->device_id = device ? rt_xstrdup(device) : NULL;
}

static void on_login(mx *m, rt_ctx *cx, rt_io_msg_http_done *d)
{
    char why[256];
    int64_t retry = 0;
    int v = mx_classify(d, why, sizeof(why), &retry, NULL);
    if (v == MX_CANCEL)
        return;
    if (v != MX_OK) {
        login_failed(m, cx, v, why, retry);
        return;
    }
    cJSON *j = cJSON_Parse(d->body ? d->body : "");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "user_id");
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(j, "device_id");
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "access_token");
    if (!cJSON_IsString(u) || (!m->o.access_token && !cJSON_IsString(tok))) {
        cJSON_Delete(j);
        login_failed(m, cx, MX_FAIL, "the homeserver's answer has no user_id", 0);
        return;
    }
    const char *device = cJSON_IsString(dev) ? dev->valuestring : NULL;
    if (m->o.access_token && m->o.device_id)
        device = m->o.device_id; /* MATRIX_DEVICE_ID overrides whoami's (§8.2) */
    set_identity(m, u->valuestring, device, cJSON_IsString(tok) ? tok->valuestring : NULL);
    cJSON_Delete(j);
    m->attempts = 0;
    MX_STAT(m, logins, 1);
    RT_INFO(MX_LOG, "Matrix: logged in as %s (device %s) on %s", m->user_id,
            m->device_id ? m->device_id : "?", m->o.homeserver);
    if (m->up) { /* a new token after a rejected one: the loop goes on */
        m->st = MX_ST_SYNC;
        start_sync(m, cx);
        return;
    }
    start_versions(m, cx);
}

static void start_crypto(mx *m)
{
    m->st = MX_ST_CRYPTO;
    mx_crypto_connect(m->crypto, m->user_id, m->device_id);
}

static void start_lock(mx *m, rt_ctx *cx)
{
    m->st = MX_ST_LOCK;
    if (!m->o.lock_dir) {
        start_crypto(m);
        return;
    }
    /* password logins without MATRIX_DEVICE_ID get a new device each start: the account
     * itself is the identity then (two gateways on one bot would answer twice) */
    const char *device = m->o.access_token || m->o.device_id ? m->device_id : NULL;
    rt_free(m->identity);
    m->identity = rt_xasprintf("%s|%s|%s", m->o.homeserver, m->user_id, device ? device : "");
    mx_io_msg *q = mx_io_new(MX_IO_LOCK, 0, 0);
    q->path = rt_xstrdup(m->o.lock_dir);
    q->data = rt_xstrdup(m->identity);
    q->name =
        rt_xasprintf("%s (device %s) on %s", m->user_id, device ? device : "any", m->o.homeserver);
    mx_io_submit(m, cx, q, mx_req_new(IO_LOCK, NULL, NULL));
}

static void on_versions(mx *m, rt_ctx *cx, rt_io_msg_http_done *d)
{
    if (d->err == -ECANCELED)
        return;
    m->auth_media = d->err == 0 && d->status == 200 && mx_versions_auth_media(d->body);
    RT_DEBUG(MX_LOG, "Matrix: media through %s",
             m->auth_media ? "/_matrix/client/v1/media" : "/_matrix/media/v3 (legacy)");
    start_lock(m, cx);
}

static void on_lock(mx *m, rt_ctx *cx, mx_io_done *d)
{
    if (d->err == -EBUSY) {
        RT_ERROR(MX_LOG,
                 "Matrix: identity %s (device %s) on %s already in use (PID %ld). Stop the "
                 "other gateway first.",
                 m->user_id, m->device_id ? m->device_id : "any", m->o.homeserver, d->holder);
        give_up(m, cx);
        return;
    }
    if (d->err)
        RT_WARN(MX_LOG, "Matrix: cannot take the identity lock in %s (%s); continuing without it",
                m->o.lock_dir, d->msg ? d->msg : rt_strerror(d->err));
    else
        m->locked = true;
    start_crypto(m);
}

static void start_filter(mx *m, rt_ctx *cx)
{
    m->st = MX_ST_FILTER;
    char *user = mx_escape(m->user_id);
    char *path = rt_xasprintf("/_matrix/client/v3/user/%s/filter", user);
    mx_submit(m, cx, "POST", path, m->filter_inline, NULL, 0, MX_SEND_TIMEOUT, 0,
              mx_req_new(RQ_FILTER, NULL, NULL));
    rt_free(path);
    rt_free(user);
}

static void crypto_ready(void *arg, int err, const char *msg)
{
    mx *m = arg;
    if (m->st != MX_ST_CRYPTO)
        return;
    if (err) {
        RT_ERROR(MX_LOG, "Matrix: failed to create E2EE client: %s", msg ? msg : rt_strerror(err));
        give_up(m, m->cx);
        return;
    }
    start_filter(m, m->cx);
}

static void on_filter(mx *m, rt_ctx *cx, rt_io_msg_http_done *d)
{
    if (d->err == -ECANCELED)
        return;
    cJSON *j = d->err == 0 && d->status == 200 ? cJSON_Parse(d->body) : NULL;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "filter_id");
    if (cJSON_IsString(id) && id->valuestring[0]) {
        m->filter_id = rt_xstrdup(id->valuestring);
    } else {
        RT_INFO(MX_LOG,
                "Matrix: the homeserver did not take the sync filter (HTTP %d); "
                "sending it with each sync",
                d->status);
    }
    cJSON_Delete(j);
    rt_free(m->saved);
    m->saved = mx_token_parse(m->saved_json, m->o.homeserver, m->user_id);
    m->catchup = m->saved != NULL;
    if (m->saved) {
        m->safe = rt_xstrdup(m->saved);
        RT_INFO(MX_LOG, "Matrix: resuming from the saved sync position: messages sent while "
                        "the gateway was down will be answered");
    }
    m->st = MX_ST_SNAPSHOT;
    start_sync(m, cx);
}

/* ==================================================================== sync */

static void start_sync(mx *m, rt_ctx *cx)
{
    if (m->stopping || m->sync_id)
        return;
    bool snapshot = m->st == MX_ST_SNAPSHOT;
    const char *since = snapshot ? NULL : m->since;
    char *filter;
    if (snapshot) {
        /* Homeservers cache /sync answers by request (Synapse: 2 minutes), so a restart
         * asking the same initial sync again would get an old snapshot, and then replay
         * what happened since as new. A filter of its own makes each start's first sync
         * a new request: it excludes a sender that cannot exist. */
        cJSON *f = cJSON_Parse(m->filter_inline);
        cJSON *tl = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(f, "room"),
                                                     "timeline");
        char marker[96];
        snprintf(marker, sizeof(marker), "@hermes-snapshot-%s:invalid", m->txn_prefix);
        if (cJSON_IsObject(tl)) {
            cJSON *ns = cJSON_AddArrayToObject(tl, "not_senders");
            cJSON_AddItemToArray(ns, cJSON_CreateString(marker));
        }
        char *txt = cJSON_PrintUnformatted(f);
        cJSON_Delete(f);
        filter = mx_escape(txt ? txt : m->filter_inline);
        cJSON_free(txt);
    } else {
        filter = mx_escape(m->filter_id ? m->filter_id : m->filter_inline);
    }
    char *s = since ? mx_escape(since) : NULL;
    int64_t timeout = snapshot ? 0 : m->o.sync_timeout_ms;
    char *path = rt_xasprintf("/_matrix/client/v3/sync?filter=%s&timeout=%lld%s%s", filter,
                              (long long)timeout, s ? "&since=" : "", s ? s : "");
    m->sync_id = mx_submit(m, cx, "GET", path, NULL, NULL, 0, timeout + MX_SYNC_SLACK_MS,
                           MX_SYNC_MAX_BODY, mx_req_new(RQ_SYNC, NULL, NULL));
    rt_free(path);
    rt_free(s);
    rt_free(filter);
}

static void announce(mx *m, rt_ctx *cx)
{
    if (m->up)
        return;
    m->up = true;
    set_state(m, MATRIX_ST_SYNCING);
    gw_caps caps = {
        .max_message = MATRIX_MAX_MESSAGE, .markdown = true, .progress = true, .acks = true};
    rt_ref gw = mx_gateway(m, cx);
    if (gw)
        rt_send(cx, gw, gw_adapter_up_new(MATRIX_PLATFORM, m->self, &caps, m->o.home_room));
    else
        RT_WARN(MX_LOG, "Matrix: no gateway to announce the adapter to");
    RT_INFO(MX_LOG, "Matrix: connected as %s, %zu room(s) joined", m->user_id, m->nrooms);
}

static void sync_error(mx *m, rt_ctx *cx, const char *why, int64_t retry_ms)
{
    m->attempts++;
    MX_STAT(m, sync_errors, 1);
    int64_t wait = retry_ms > m->o.retry_ms ? retry_ms : m->o.retry_ms;
    if (m->attempts <= 3 || m->attempts % 12 == 0)
        RT_WARN(MX_LOG, "Matrix: sync error: %s — retrying in %llds%s", why,
                (long long)((wait + 999) / 1000), m->attempts > 3 ? " (still failing)" : "");
    if (m->o.stats)
        atomic_store_explicit(&m->o.stats->retry_wait_ms, (uint64_t)wait, memory_order_relaxed);
    m->retry_armed = true;
    arm(m, cx, TM_RETRY, 0, wait);
}

static void sync_ok(mx *m, rt_ctx *cx, cJSON *j, const char *next)
{
    bool snapshot = m->st == MX_ST_SNAPSHOT;
    bool state_only = snapshot && m->catchup;
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(j, "rooms");
    RT_DEBUG(MX_LOG, "Matrix: sync %s: %d joined, %d invited room(s) in it%s", next,
             cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rooms, "join")),
             cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rooms, "invite")),
             snapshot ? " (the first)" : "");
    uint64_t seq = state_only ? 0 : batch_open(m, next);
    mx_crypto_on_sync(m->crypto, j);
    mx_sync_apply(m, cx, j, state_only, seq);
    if (!state_only) {
        rt_free(m->since);
        m->since = rt_xstrdup(next);
        batch_close(m, seq);
    } else if (!m->since) {
        m->since = rt_xstrdup(m->saved);
    }
    if (m->attempts)
        RT_INFO(MX_LOG, "Matrix: sync recovered after %d error(s)", m->attempts);
    m->attempts = 0;
    MX_STAT(m, syncs, 1);
    if (snapshot) {
        m->st = MX_ST_SYNC;
        announce(m, cx);
    }
    maybe_persist(m, cx);
    start_sync(m, cx);
}

static void on_sync(mx *m, rt_ctx *cx, rt_io_msg_http_done *d)
{
    m->sync_id = 0;
    char why[256], code[64];
    int64_t retry = 0;
    int v = mx_classify(d, why, sizeof(why), &retry, code);
    if (v == MX_CANCEL || m->stopping)
        return;
    if (v == MX_OK) {
        cJSON *j = cJSON_Parse(d->body ? d->body : "");
        const cJSON *next = cJSON_GetObjectItemCaseSensitive(j, "next_batch");
        if (cJSON_IsString(next) && next->valuestring[0]) {
            sync_ok(m, cx, j, next->valuestring);
            cJSON_Delete(j);
            return;
        }
        cJSON_Delete(j);
        sync_error(m, cx, "the homeserver's answer is not a sync response", 0);
        return;
    }
    if (v == MX_AUTH) {
        if (!m->o.access_token) {
            RT_WARN(MX_LOG, "Matrix: the homeserver rejected the session (%s); logging in again",
                    why);
            start_login(m, cx);
            return;
        }
        RT_ERROR(MX_LOG,
                 "Matrix: sync failed: the access token was rejected (%s). The Matrix adapter "
                 "stops — check MATRIX_ACCESS_TOKEN (docs/matrix.md, troubleshooting).",
                 why);
        give_up(m, cx);
        return;
    }
    if (v == MX_FAIL && m->since && m->st == MX_ST_SYNC) {
        RT_WARN(MX_LOG,
                "Matrix: the homeserver rejected the sync position (%s); starting "
                "over from now",
                why);
        rt_free(m->since);
        m->since = NULL;
        m->catchup = false;
        m->st = MX_ST_SNAPSHOT;
        start_sync(m, cx);
        return;
    }
    sync_error(m, cx, why, retry);
}

/* =================================================================== timers */

static void on_timeout(mx *m, rt_ctx *cx, uint64_t tag)
{
    switch (MX_TAG_KIND(tag)) {
    case TM_RETRY:
        m->retry_armed = false;
        if (m->stopping)
            break;
        if (m->st == MX_ST_LOGIN)
            start_login(m, cx);
        else if (m->st == MX_ST_SNAPSHOT || m->st == MX_ST_SYNC)
            start_sync(m, cx);
        break;
    case TM_TOKEN:
        m->token_timer = false;
        maybe_persist(m, cx);
        break;
    case TM_TYPING: mx_on_typing_timer(m, cx); break;
    case TM_OP: mx_on_op_timer(m, cx, MX_TAG_LOW(tag)); break;
    case TM_BATCH: mx_on_batch_timer(m, cx, MX_TAG_LOW(tag)); break;
    case TM_JOIN:
        if (MX_TAG_LOW(tag) < m->nrooms)
            mx_join_retry(m, cx, m->roomv[MX_TAG_LOW(tag)]);
        break;
    case TM_REACT: mx_on_react_timer(m, cx, MX_TAG_LOW(tag)); break;
    case TM_DRAIN:
        if (m->drain_to) {
            rt_send(cx, m->drain_to, rt_timeout_new(m->drain_tag));
            m->drain_to = 0;
        }
        break;
    default: break;
    }
}

/* ==================================================================== stop */

static void on_stop(mx *m, rt_ctx *cx)
{
    m->stopping = true;
    if (m->st != MX_ST_FAILED)
        set_state(m, MATRIX_ST_STOPPED);
    /* the long-poll and downloads would keep the process waiting: cancel them; sends in
     * flight finish on the reactor */
    for (size_t i = 0; i < m->reqs.cap; i++) {
        mx_req *q = m->reqs.keys[i] ? m->reqs.vals[i] : NULL;
        if (q && (q->kind == RQ_SYNC || q->kind == RQ_MEDIA || q->kind == RQ_LOGIN))
            rt_http_cancel(cx, m->reqs.keys[i]);
    }
    flush_token(m, cx);
    mx_io_msg *q = mx_io_new(MX_IO_QUIT, 0, 0);
    if (m->locked) {
        q->path = rt_xstrdup(m->o.lock_dir);
        q->data = rt_xstrdup(m->identity);
    }
    rt_send(cx, m->io, &q->hdr);
}

/* ================================================================== dispatch */

static void on_http(mx *m, rt_ctx *cx, rt_io_msg_http_done *d)
{
    mx_req *q = rt_map_del(&m->reqs, d->id);
    if (!q)
        return;
    switch (q->kind) {
    case RQ_LOGIN: on_login(m, cx, d); break;
    case RQ_VERSIONS: on_versions(m, cx, d); break;
    case RQ_FILTER: on_filter(m, cx, d); break;
    case RQ_SYNC: on_sync(m, cx, d); break;
    case RQ_OP: mx_on_op_done(m, cx, q->room, d); break;
    case RQ_TYPING:
        if (d->err || d->status >= 300)
            RT_DEBUG(MX_LOG, "Matrix: typing notice failed (HTTP %d)", d->status);
        break;
    case RQ_RECEIPT: mx_on_receipt(m, cx, q->room, d); break;
    case RQ_JOIN: mx_on_join(m, cx, q->room, d); break;
    case RQ_MEDIA: mx_on_media(m, cx, q, d); break;
    case RQ_CRYPTO: mx_crypto_on_http(m->crypto, d); break;
    default: break;
    }
    rt_free(q);
}

static void on_io(mx *m, rt_ctx *cx, mx_io_done *d)
{
    mx_req *q = rt_map_del(&m->ioreqs, d->tag);
    if (!q)
        return;
    switch (q->kind) {
    case IO_TOKEN:
        m->token_writing = false;
        if (!d->err)
            MX_STAT(m, token_writes, 1);
        if (!m->stopping)
            maybe_persist(m, cx);
        break;
    case IO_THREADS: m->threads_writing = false; break;
    case IO_LOCK: on_lock(m, cx, d); break;
    case IO_MEDIA: mx_on_media_saved(m, cx, q, d); break;
    case IO_READ: mx_on_op_read(m, cx, q->room, d); break;
    default: break;
    }
    rt_free(q);
}

static void behave(rt_ctx *cx, void *state, rt_msg *msg)
{
    mx *m = state;
    m->cx = cx;
    switch (msg->type) {
    case MX_MSG_BOOT:
        m->self = rt_self(cx);
        start_login(m, cx);
        break;
    case RT_IO_MSG_HTTP_DONE: on_http(m, cx, (rt_io_msg_http_done *)msg); break;
    case MX_IO_DONE: on_io(m, cx, (mx_io_done *)msg); break;
    case GW_OUT_TEXT: mx_on_out_text(m, cx, (gw_out_text *)msg); break;
    case GW_OUT_TYPING: mx_on_out_typing(m, cx, (gw_out_typing *)msg); break;
    case GW_OUT_TURN_END: mx_on_turn_end(m, cx, (gw_out_turn_end *)msg); break;
    case GW_OUT_DELTA: break; /* Matrix is buffer-only (§7.3): the final text comes */
    case MATRIX_MSG_SEND_FILE: mx_on_file(m, cx, (matrix_msg_file *)msg); break;
    case MATRIX_MSG_DRAIN: mx_on_drain(m, cx, (matrix_msg_drain *)msg); break;
    case RT_MSG_TIMEOUT: on_timeout(m, cx, ((rt_msg_timeout *)msg)->tag); break;
    case RT_MSG_STOP: on_stop(m, cx); break;
    default: RT_WARN_ONCE(MX_LOG, "matrix: unexpected message type %#x", msg->type); break;
    }
    m->cx = NULL;
}

/* ================================================================ start, fini */

static void free_map_vals(rt_map *map)
{
    for (size_t i = 0; i < map->cap; i++)
        if (map->keys[i])
            rt_free(map->vals[i]);
    rt_map_fini(map);
}

static void fini(void *state)
{
    mx *m = state;
    mx_outbound_fini(m);
    mx_inbound_fini(m);
    free_map_vals(&m->reqs);
    free_map_vals(&m->ioreqs);
    for (size_t i = 0; i < m->nbatches; i++)
        rt_free(m->batches[i].token);
    rt_free(m->batches);
    mx_crypto_free(m->crypto);
    matrix_opts_fini(&m->o);
    rt_free(m->txn_prefix);
    rt_free(m->dtxn_prefix);
    rt_free(m->token);
    rt_free(m->user_id);
    rt_free(m->device_id);
    rt_free(m->localpart);
    rt_free(m->auth);
    rt_free(m->filter_id);
    rt_free(m->filter_inline);
    rt_free(m->since);
    rt_free(m->safe);
    rt_free(m->saved);
    rt_free(m->saved_json);
    rt_free(m->identity);
    rt_free(m);
}

static const rt_actor_type mx_type = {"matrix", behave, fini, 0};

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

static void copy_opts(matrix_opts *d, const matrix_opts *s)
{
    *d = *s;
    d->homeserver = dupn(s->homeserver);
    d->access_token = dupn(s->access_token);
    d->user_id = dupn(s->user_id);
    d->password = dupn(s->password);
    d->device_id = dupn(s->device_id);
    d->recovery_key = dupn(s->recovery_key);
    d->free_rooms = s->nfree_rooms ? rt_xcalloc(s->nfree_rooms, sizeof(char *)) : NULL;
    for (size_t i = 0; i < s->nfree_rooms; i++)
        d->free_rooms[i] = rt_xstrdup(s->free_rooms[i]);
    d->home_room = dupn(s->home_room);
    d->hermes_home = dupn(s->hermes_home);
    d->store_dir = s->store_dir ? rt_xstrdup(s->store_dir) : rt_xstrdup(".");
    d->threads_file = dupn(s->threads_file);
    d->cache_dir = s->cache_dir ? rt_xstrdup(s->cache_dir) : rt_xstrdup("./cache");
    d->lock_dir = dupn(s->lock_dir);
    d->ca_file = dupn(s->ca_file);
    d->sync_timeout_ms = s->sync_timeout_ms > 0 ? s->sync_timeout_ms : 30000;
    d->retry_ms = s->retry_ms > 0 ? s->retry_ms : 5000;
    d->send_retry_ms = s->send_retry_ms > 0 ? s->send_retry_ms : 1000;
    d->send_attempts = s->send_attempts > 0 ? s->send_attempts : 8;
    d->token_write_ms = s->token_write_ms > 0 ? s->token_write_ms : (s->token_write_ms ? 0 : 1000);
    d->typing_refresh_ms = s->typing_refresh_ms > 0 ? s->typing_refresh_ms : 20000;
    d->max_media_bytes = s->max_media_bytes ? s->max_media_bytes : (50u << 20);
}

/* Read the state files (small; start-up). */
static void load_state(mx *m)
{
    char *path = token_path(m), *text = NULL;
    size_t len = 0;
    if (hm_read_file(path, 64 * 1024, &text, &len) == 0)
        m->saved_json = text;
    rt_free(path);
    m->threads = rt_xcalloc(MX_THREADS_MAX, sizeof(char *));
    if (!m->o.threads_file || hm_read_file(m->o.threads_file, 1u << 20, &text, &len) != 0)
        return;
    size_t n = 0;
    char **ids = mx_threads_parse(text, MX_THREADS_MAX, &n);
    rt_free(text);
    for (size_t i = 0; i < n; i++) {
        m->threads[m->nthreads++] = ids[i];
        rt_map_put(&m->thread_set, rt_hash_str(ids[i]) | 1, ids[i]);
    }
    rt_free(ids);
}

static void redeliver_hook(void *arg, const char *room_id, cJSON *ev)
{
    mx *m = arg;
    mx_redeliver(m, m->cx, room_id, ev);
}

static void resume_hook(void *arg, const char *room_id)
{
    mx *m = arg;
    mx_room *r = mx_room_get(m, room_id, false);
    if (r)
        mx_room_resume(m, m->cx, r);
}

static uint64_t submit_hook(void *arg, const char *method, const char *path, const char *body)
{
    mx *m = arg;
    return mx_submit(m, m->cx, method, path, body, NULL, 0, MX_SEND_TIMEOUT, 0,
                     mx_req_new(RQ_CRYPTO, NULL, NULL));
}

static int start_fail(char *err, size_t len, const char *msg)
{
    if (err && len)
        snprintf(err, len, "%s", msg);
    return -EINVAL;
}

int matrix_start(rt_ctx *cx, const matrix_opts *o, rt_ref gateway, rt_ref *out, char *err,
                 size_t errlen)
{
    if (!o || !o->homeserver)
        return start_fail(err, errlen, "Matrix: MATRIX_HOMESERVER is not set");
    if (!o->access_token && !(o->user_id && o->password))
        return start_fail(err, errlen,
                          "Matrix: need MATRIX_ACCESS_TOKEN or MATRIX_USER_ID + MATRIX_PASSWORD");
    if (!rt_reactor_of(rt_ctx_runtime(cx)))
        return start_fail(err, errlen, "Matrix: the I/O reactor is not running");
    mx *m = rt_xcalloc(1, sizeof(*m));
    copy_opts(&m->o, o);
    m->gateway = gateway;
    m->start_wall_ms = wall_ms();
    rt_map_init(&m->reqs);
    rt_map_init(&m->ioreqs);
    rt_map_init(&m->rooms);
    rt_map_init(&m->dedup_set);
    rt_map_init(&m->thread_set);
    rt_map_init(&m->known);
    if (o->access_token)
        m->token = rt_xstrdup(o->access_token);
    if (m->token)
        m->auth = rt_xasprintf("Authorization: Bearer %s", m->token);
    if (o->user_id)
        m->user_id = rt_xstrdup(o->user_id);
    unsigned char rnd[4] = {0};
    (void)!getrandom(rnd, sizeof(rnd), 0); /* uniqueness across restarts; the time helps too */
    m->txn_prefix = rt_xasprintf("hm%llx%02x%02x%02x%02x", (unsigned long long)m->start_wall_ms,
                                 rnd[0], rnd[1], rnd[2], rnd[3]);
    /* outbox deliveries (mx_outbound.c): the options' epoch survives a supervised restart;
     * delivery ids start over with every gateway, whose options draw a new one */
    m->dtxn_prefix = o->delivery_epoch[0] ? rt_xasprintf("hd%.16s", o->delivery_epoch)
                                          : rt_xasprintf("hd%llx%02x%02x%02x%02x",
                                                         (unsigned long long)m->start_wall_ms,
                                                         rnd[0], rnd[1], rnd[2], rnd[3]);
    mx_crypto_env env = {.arg = m,
                         .submit = submit_hook,
                         .redeliver = redeliver_hook,
                         .resume = resume_hook,
                         .ready = crypto_ready};
    m->crypto = mx_crypto_new(&env, m->o.store_dir, o->encryption);
    mx_crypto_configure(m->crypto, o->device_id, o->recovery_key);
    m->filter_inline = mx_filter_json(m->crypto);
    load_state(m);
    set_state(m, MATRIX_ST_STARTING);
    m->io = mx_io_start(cx);
    /* With E2EE the actor writes its crypto store (SQLite) inside its behaviour: it gets a
     * thread of its own, so those writes never hold up a worker. */
    rt_spawn_opts so = {.flags = o->encryption ? RT_SPAWN_DETACHED : 0};
    rt_ref ref = rt_spawn(cx, &mx_type, m, &so);
    rt_send(cx, ref, rt_msg_new(MX_MSG_BOOT, sizeof(rt_msg)));
    *out = ref;
    return 0;
}

/* ============================================================ constructors */

static void drop_file(rt_msg *msg)
{
    matrix_msg_file *f = (matrix_msg_file *)msg;
    gw_target_fini(&f->to);
    rt_free(f->path);
    rt_free(f->caption);
}

rt_msg *matrix_file_new(const gw_target *to, const char *path, const char *caption, bool voice)
{
    matrix_msg_file *f = RT_MSG_NEW(matrix_msg_file, MATRIX_MSG_SEND_FILE);
    gw_target_copy(&f->to, to);
    f->path = dupn(path);
    f->caption = dupn(caption);
    f->voice = voice;
    f->hdr.drop = drop_file;
    return &f->hdr;
}

rt_msg *matrix_drain_new(rt_ref reply_to, uint64_t tag, int64_t deadline_ms)
{
    matrix_msg_drain *d = RT_MSG_NEW(matrix_msg_drain, MATRIX_MSG_DRAIN);
    d->reply_to = reply_to;
    d->tag = tag;
    d->deadline_ms = deadline_ms;
    return &d->hdr;
}
