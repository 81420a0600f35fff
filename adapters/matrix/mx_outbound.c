/*
 * mx_outbound — from the gateway to the homeserver (gateway.md §8.6-8.7): replies, notices,
 * tool progress, processing reactions, typing and files.
 *
 * Every event for a room goes through the room's send queue (invariant 3 of mx_int.h): one
 * request in flight per room, so the chunks of a reply, the 👀 redaction and the ✅ that
 * follows keep their order; rooms send side by side, at most MX_MAX_INFLIGHT at once (the
 * others wait in a ready list). A send is a PUT with a transaction id fixed when it is first
 * tried (for a delivery of the gateway's outbox: fixed by the delivery, so a copy the outbox
 * hands over again reuses it), so a retry after a timeout cannot post twice. 429 waits
 * retry_after_ms, 5xx and network errors back off (send_retry_ms doubling, ≤ 30 s) up to
 * send_attempts; other 4xx are logged and dropped.
 *
 * Reactions (MATRIX_REACTIONS): 👀 when the gateway starts a turn for a message (its typing
 * notice names the message); at the turn's end the 👀 is redacted and ✅ or ❌ added, after
 * the answer (the gateway's outbox may hand the answer over after the turn ended: the
 * reactions then wait for its last part, MX_REACT_HOLD_MS at most); a cancelled turn leaves
 * the 👀. Only messages this adapter handed to the gateway get them.
 *
 * Progress: the lines of one turn accumulate into one message edited in place (m.replace),
 * as the original shows them; a repeated line's " (×N)" replaces the line before it.
 *
 * Threads: runs inside the adapter actor's behaviour.
 */
#include "ak_text.h"
#include "mx_int.h"
#include "mx_olm.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_timer.h"
#include "rt_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SEND_BACKOFF_MAX_MS 30000
#define PROGRESS_MAX        3800         /* a progress message this long starts a new one */
#define FILE_MAX            (100u << 20) /* largest file uploaded */
#define TYPING_TIMEOUT_MS   30000

enum { OP_SEND = 1, OP_REDACT, OP_PROGRESS, OP_FILE };
enum { P_PLAIN = 0, P_EYES = 1 };

struct mx_op {
    mx_op *next;
    int kind;
    int purpose;   /* P_EYES: remember the reaction's id on the message */
    char *type;    /* event type */
    char *content; /* JSON; for progress and files, built when first tried */
    char *txn;     /* fixed at the first attempt */
    char *ref;     /* the inbound message (reactions, redactions), or NULL */
    mx_progress *prog;
    unsigned prog_gen;
    size_t prog_len;   /* progress text length the content shows */
    uint64_t delivery; /* the gateway's outbox entry this send ends (GW_MSG_SENT), or 0 */
    /* files */
    char *path, *caption, *thread, *reply_to;
    const char *msgtype, *mime;
    bool voice;
    int step; /* 0 read, 1 upload, 2 send */
    char *data;
    size_t len;
    cJSON *file; /* encrypted upload: {key, iv, hashes, v} (url added when known), or NULL */
    int attempts;
};

static void kick(mx *m, rt_ctx *cx, mx_room *r);
static void finish_reactions(mx *m, rt_ctx *cx, mx_known *k, int outcome);

/* ================================================================= known */

static mx_known *known_get(mx *m, const char *event_id)
{
    uint64_t h = rt_hash_str(event_id) | 1;
    for (mx_known *k = rt_map_get(&m->known, h); k; k = k->next)
        if (strcmp(k->event_id, event_id) == 0)
            return k;
    return NULL;
}

static void known_forget(mx *m, mx_known *k)
{
    uint64_t h = rt_hash_str(k->event_id) | 1;
    mx_known *head = rt_map_get(&m->known, h), **pp = &head;
    while (*pp && *pp != k)
        pp = &(*pp)->next;
    if (*pp)
        *pp = k->next;
    if (head)
        rt_map_put(&m->known, h, head);
    else
        rt_map_del(&m->known, h);
    rt_free(k->event_id);
    rt_free(k->eyes);
    rt_free(k);
}

void mx_known_add(mx *m, mx_room *r, const char *event_id)
{
    if (known_get(m, event_id))
        return;
    mx_known *old = m->known_ring[m->known_at];
    if (old)
        known_forget(m, old);
    mx_known *k = rt_xcalloc(1, sizeof(*k));
    k->event_id = rt_xstrdup(event_id);
    k->room = r;
    uint64_t h = rt_hash_str(event_id) | 1;
    k->next = rt_map_get(&m->known, h);
    rt_map_put(&m->known, h, k);
    k->slot = m->known_at;
    m->known_ring[m->known_at] = k;
    m->known_at = (m->known_at + 1) % MX_KNOWN_MAX;
}

/* ==================================================================== ops */

void mx_op_free(mx_op *op)
{
    rt_free(op->type);
    rt_free(op->content);
    rt_free(op->txn);
    rt_free(op->ref);
    rt_free(op->path);
    rt_free(op->caption);
    rt_free(op->thread);
    rt_free(op->reply_to);
    rt_free(op->data);
    cJSON_Delete(op->file);
    rt_free(op);
}

static mx_op *op_new(int kind)
{
    mx_op *op = rt_xcalloc(1, sizeof(*op));
    op->kind = kind;
    return op;
}

/* Tell the gateway's outbox how a reply it handed over went (gw_caps.acks). */
static void ack(mx *m, rt_ctx *cx, mx_op *op, int err, bool permanent, int64_t retry_ms,
                const char *why)
{
    gw_ack(cx, op->delivery ? mx_gateway(m, cx) : 0, op->delivery, err, permanent, retry_ms,
           err ? why : NULL);
    op->delivery = 0;
}

static void outbox(mx *m, int64_t add)
{
    if (m->o.stats)
        atomic_fetch_add_explicit(&m->o.stats->outbox, add, memory_order_relaxed);
}

static void push(mx *m, rt_ctx *cx, mx_room *r, mx_op *op)
{
    outbox(m, 1);
    if (r->op_tail)
        r->op_tail->next = op;
    else
        r->op_head = op;
    r->op_tail = op;
    kick(m, cx, r);
}

static void queue_send_for(mx *m, rt_ctx *cx, mx_room *r, const char *type, char *content,
                           const char *ref, int purpose, uint64_t delivery)
{
    mx_op *op = op_new(OP_SEND);
    op->type = rt_xstrdup(type);
    op->content = content;
    op->ref = ref ? rt_xstrdup(ref) : NULL;
    op->purpose = purpose;
    op->delivery = delivery;
    /* A delivery's message keeps one transaction id for every copy the gateway's outbox hands
     * over (after its ack timer ran out while the message waited here, or after a failure
     * whose last attempt may have been made): the homeserver answers a repeated txn with the
     * event it already made, so the reply is never posted twice (issue 13). Delivery ids
     * belong to one gateway (its outbox counts from 1): the prefix is the epoch of the
     * options the adapter was started from, the same for a restarted adapter (its
     * supervisor's), new for a later gateway, whose ids must not meet an earlier one's. */
    if (delivery)
        op->txn = rt_xasprintf("%s.d%llu", m->dtxn_prefix, (unsigned long long)delivery);
    push(m, cx, r, op);
}

static void queue_send(mx *m, rt_ctx *cx, mx_room *r, const char *type, char *content,
                       const char *ref, int purpose)
{
    queue_send_for(m, cx, r, type, content, ref, purpose, 0);
}

static void progress_free(mx_room *r, mx_progress *p)
{
    for (mx_progress **pp = &r->progress; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    rt_free(p->thread);
    rt_free(p->reply_to);
    rt_free(p->event_id);
    rt_buf_fini(&p->text);
    rt_free(p);
}

static void slot_release(mx *m, rt_ctx *cx)
{
    m->inflight--;
    while (m->inflight < MX_MAX_INFLIGHT && m->ready_head) {
        mx_room *r = m->ready_head;
        m->ready_head = r->ready_next;
        if (!m->ready_head)
            m->ready_tail = NULL;
        r->ready_next = NULL;
        r->op_ready = false;
        kick(m, cx, r);
    }
}

/* The head op is done (sent, given up or skipped). */
static void finish(mx *m, rt_ctx *cx, mx_room *r, bool had_slot)
{
    mx_op *op = r->op_head;
    r->op_head = op->next;
    if (!r->op_head)
        r->op_tail = NULL;
    if (op->kind == OP_PROGRESS && op->prog) {
        mx_progress *p = op->prog;
        p->queued = false;
        if (p->ended)
            progress_free(r, p);
    }
    mx_op_free(op);
    outbox(m, -1);
    r->op_running = false;
    if (had_slot)
        slot_release(m, cx);
    kick(m, cx, r);
    mx_drain_check(m, cx);
}

/* ============================================================ executing */

/* /_matrix/client/v3/rooms/<room>/<verb>/<a>/<b>, every segment escaped. */
static char *room_path(const mx_room *r, const char *verb, const char *a, const char *b)
{
    char *room = mx_escape(r->id);
    char *ea = mx_escape(a), *eb = mx_escape(b);
    char *path = rt_xasprintf("/_matrix/client/v3/rooms/%s/%s/%s/%s", room, verb, ea, eb);
    rt_free(room);
    rt_free(ea);
    rt_free(eb);
    return path;
}

static void put_event(mx *m, rt_ctx *cx, mx_room *r, mx_op *op)
{
    char *type = NULL, *content = NULL;
    int rc = mx_crypto_encrypt(m->crypto, r->id, op->type, op->content, &type, &content);
    if (rc == -EAGAIN) { /* the crypto layer resumes the room */
        r->op_paused = true;
        r->op_running = false;
        slot_release(m, cx);
        return;
    }
    if (rc != 0) { /* cannot be encrypted: never sent in clear instead */
        RT_WARN(MX_LOG, "Matrix: cannot encrypt a message for %s (%s); not sent", r->id,
                rt_strerror(rc));
        MX_STAT(m, send_failures, 1);
        ack(m, cx, op, rc, true, 0, "end-to-end encryption failed");
        finish(m, cx, r, true);
        return;
    }
    char *path = room_path(r, "send", type, op->txn);
    mx_submit(m, cx, "PUT", path, content, NULL, 0, MX_SEND_TIMEOUT, 0, mx_req_new(RQ_OP, r, NULL));
    rt_free(path);
    rt_free(type);
    rt_free(content);
}

/* Fill the content of a progress op from its message's text (once). */
static bool progress_content(mx_op *op)
{
    mx_progress *p = op->prog;
    if (op->content)
        return true;
    if (!p || !p->text.len)
        return false;
    mx_rel rel = {.thread = p->thread, .reply_to = p->reply_to};
    op->type = rt_xstrdup("m.room.message");
    op->content = p->event_id ? mx_content_edit(p->event_id, rt_buf_cstr(&p->text), &rel)
                              : mx_content_text(rt_buf_cstr(&p->text), &rel);
    op->prog_gen = p->gen;
    op->prog_len = p->text.len;
    return true;
}

static void upload(mx *m, rt_ctx *cx, mx_room *r, mx_op *op)
{
    const char *slash = strrchr(op->path, '/');
    char *name = mx_escape(slash ? slash + 1 : op->path);
    char *path = rt_xasprintf("/_matrix/media/v3/upload?filename=%s", name);
    if (!op->file && mx_crypto_room_encrypted(m->crypto, r->id)) {
        unsigned char *enc = NULL; /* the server only ever sees ciphertext */
        mx_attach_encrypt((const unsigned char *)op->data, op->len, &enc, &op->file);
        if (op->len)
            memcpy(op->data, enc, op->len);
        rt_free(enc);
    }
    mx_submit(m, cx, "POST", path, op->data, op->file ? "application/octet-stream" : op->mime,
              op->len, 120000, 0, mx_req_new(RQ_OP, r, NULL));
    rt_free(path);
    rt_free(name);
}

/* Start the head op; false when it has nothing to do (skipped). */
static bool exec(mx *m, rt_ctx *cx, mx_room *r, mx_op *op)
{
    if (!op->txn)
        op->txn = mx_txn(m);
    switch (op->kind) {
    case OP_SEND: put_event(m, cx, r, op); return true;
    case OP_PROGRESS:
        if (!progress_content(op))
            return false;
        put_event(m, cx, r, op);
        return true;
    case OP_REDACT: {
        mx_known *k = op->ref ? known_get(m, op->ref) : NULL;
        if (!k || !k->eyes)
            return false; /* the 👀 never made it */
        char *path = room_path(r, "redact", k->eyes, op->txn);
        mx_submit(m, cx, "PUT", path, "{}", NULL, 0, MX_SEND_TIMEOUT, 0,
                  mx_req_new(RQ_OP, r, NULL));
        rt_free(path);
        return true;
    }
    case OP_FILE:
        if (op->step == 0) {
            mx_io_msg *q = mx_io_new(MX_IO_READ, 0, 0);
            q->path = rt_xstrdup(op->path);
            q->len = FILE_MAX;
            mx_io_submit(m, cx, q, mx_req_new(IO_READ, r, NULL));
        } else if (op->step == 1) {
            upload(m, cx, r, op);
        } else {
            put_event(m, cx, r, op);
        }
        return true;
    default: return false;
    }
}

static void kick(mx *m, rt_ctx *cx, mx_room *r)
{
    while (r->op_head && !r->op_running && !r->op_waiting && !r->op_paused) {
        if (m->inflight >= MX_MAX_INFLIGHT) {
            if (!r->op_ready) {
                r->op_ready = true;
                if (m->ready_tail)
                    m->ready_tail->ready_next = r;
                else
                    m->ready_head = r;
                m->ready_tail = r;
            }
            return;
        }
        r->op_running = true;
        m->inflight++;
        if (exec(m, cx, r, r->op_head))
            return;
        finish(m, cx, r, true); /* skipped: the loop continues in finish's kick */
        return;
    }
}

void mx_room_resume(mx *m, rt_ctx *cx, mx_room *r)
{
    r->op_paused = false;
    kick(m, cx, r);
}

void mx_on_op_timer(mx *m, rt_ctx *cx, uint64_t low)
{
    if (low >= m->nrooms)
        return;
    mx_room *r = m->roomv[low];
    r->op_waiting = false;
    kick(m, cx, r);
}

/* ============================================================== results */

static void op_ok(mx *m, mx_room *r, mx_op *op, const char *body)
{
    cJSON *j = cJSON_Parse(body ? body : "");
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "event_id"));
    if (op->purpose == P_EYES && id) {
        mx_known *k = known_get(m, op->ref);
        if (k) {
            rt_free(k->eyes);
            k->eyes = rt_xstrdup(id);
        }
    }
    if (op->kind == OP_PROGRESS && op->prog && id && op->prog_gen == op->prog->gen &&
        !op->prog->event_id)
        op->prog->event_id = rt_xstrdup(id);
    if (op->kind == OP_FILE && op->step == 1) {
        const char *uri = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "content_uri"));
        mx_rel rel = {.thread = op->thread, .reply_to = op->reply_to};
        const char *slash = strrchr(op->path, '/');
        const char *caption = op->caption ? op->caption : (slash ? slash + 1 : op->path);
        op->content =
            uri ? mx_content_media(op->msgtype, caption, uri, op->mime, op->len, op->voice, &rel)
                : NULL;
        if (uri && op->file) { /* encrypted: the URL lives in "file" with the key */
            cJSON *c = cJSON_Parse(op->content);
            cJSON_DeleteItemFromObjectCaseSensitive(c, "url");
            cJSON *f = op->file;
            op->file = NULL;
            cJSON_AddStringToObject(f, "url", uri);
            cJSON_AddItemToObject(c, "file", f);
            char *t = cJSON_PrintUnformatted(c);
            cJSON_Delete(c);
            rt_free(op->content);
            op->content = rt_xstrdup(t);
            cJSON_free(t);
        }
        op->type = rt_xstrdup("m.room.message");
        rt_free(op->data);
        op->data = NULL;
        op->step = uri ? 2 : 3;
        rt_free(op->txn);
        op->txn = NULL; /* the event gets its own transaction */
    }
    cJSON_Delete(j);
}

/* A progress message that changed while its op was out needs another. */
static void progress_follow_up(mx *m, rt_ctx *cx, mx_room *r, mx_op *op)
{
    mx_progress *p = op->prog;
    if (op->kind != OP_PROGRESS || !p || p->text.len == op->prog_len) /* ended too: shown */
        return;
    mx_op *next = op_new(OP_PROGRESS);
    next->prog = p;
    p->queued = true;
    op->prog = NULL; /* finish must not clear queued */
    push(m, cx, r, next);
}

static void op_failed(mx *m, rt_ctx *cx, mx_room *r, mx_op *op, int v, const char *why,
                      const char *code)
{
    MX_STAT(m, send_failures, 1);
    if (strcmp(code, "M_DUPLICATE_ANNOTATION") == 0) /* that reaction is there already */
        RT_DEBUG(MX_LOG, "Matrix: reaction in %s already present", r->id);
    else if (strcmp(code, "M_FORBIDDEN") == 0 || strcmp(code, "M_NOT_FOUND") == 0)
        RT_ERROR(MX_LOG, "Matrix: cannot send to %s: %s — is the bot in that room? Invite it.",
                 r->id, why);
    else if (v == MX_RETRY)
        RT_ERROR(MX_LOG, "Matrix: message delivery to %s failed after %d attempts: %s", r->id,
                 op->attempts, why);
    else
        RT_ERROR(MX_LOG, "Matrix: sending to %s failed: %s", r->id, why);
    (void)cx;
}

void mx_on_op_done(mx *m, rt_ctx *cx, mx_room *r, rt_io_msg_http_done *d)
{
    mx_op *op = r->op_head;
    if (!op || !r->op_running)
        return;
    char why[256], code[64];
    int64_t retry = 0;
    int v = mx_classify(d, why, sizeof(why), &retry, code);
    if (v == MX_OK) {
        MX_STAT(m, sends, 1);
        bool uploaded = op->kind == OP_FILE && op->step == 1;
        op_ok(m, r, op, d->body);
        if (uploaded && op->step == 2) {
            exec(m, cx, r, op); /* the event after the upload */
            return;
        }
        ack(m, cx, op, 0, false, 0, NULL);
        progress_follow_up(m, cx, r, op);
        finish(m, cx, r, true);
        return;
    }
    if (v == MX_RETRY && !m->stopping && ++op->attempts < m->o.send_attempts) {
        int64_t wait = m->o.send_retry_ms << (op->attempts - 1 < 5 ? op->attempts - 1 : 5);
        if (wait > SEND_BACKOFF_MAX_MS)
            wait = SEND_BACKOFF_MAX_MS;
        if (retry > wait)
            wait = retry;
        MX_STAT(m, send_retries, 1);
        RT_DEBUG(MX_LOG, "Matrix: send to %s failed (%s); retry %d in %lld ms", r->id, why,
                 op->attempts, (long long)wait);
        r->op_running = false;
        r->op_waiting = true;
        slot_release(m, cx);
        rt_send_after(cx, m->self, rt_timeout_new(MX_TAG(TM_OP, r->index)), wait);
        return;
    }
    if (v != MX_CANCEL) { /* cancelled (stopping): no ack, the outbox sends it again later */
        op_failed(m, cx, r, op, v, why, code);
        ack(m, cx, op, v == MX_RETRY ? -EIO : -EPERM, v != MX_RETRY, retry, why);
    }
    finish(m, cx, r, true);
}

void mx_on_op_read(mx *m, rt_ctx *cx, mx_room *r, mx_io_done *d)
{
    mx_op *op = r->op_head;
    if (!op || op->kind != OP_FILE || op->step != 0)
        return;
    if (d->err) {
        RT_WARN(MX_LOG, "Matrix: cannot send %s: %s", op->path, d->msg ? d->msg : "unreadable");
        mx_op *text = op_new(OP_SEND); /* the original's text in place of the file */
        text->type = rt_xstrdup("m.room.message");
        char *line = rt_xasprintf("(file not found: %s)", op->path);
        mx_rel rel = {.thread = op->thread, .reply_to = op->reply_to};
        text->content = mx_content_text(line, &rel);
        rt_free(line);
        text->next = op->next; /* replaces the file op at the head */
        r->op_head = text;
        if (r->op_tail == op)
            r->op_tail = text;
        mx_op_free(op);
        r->op_running = false;
        slot_release(m, cx);
        kick(m, cx, r);
        return;
    }
    op->data = d->data;
    op->len = d->len;
    d->data = NULL;
    op->step = 1;
    exec(m, cx, r, op);
}

/* =========================================================== from the gateway */

static bool quote_in(mx_room *r, const gw_target *to, int part)
{
    /* §12.1 item 12: reply in the thread; outside threads quote the message answered only in
     * shared rooms (DMs need no quote), and only with the first part of a split reply */
    return !to->thread_id && to->reply_to && part <= 1 && !mx_room_is_dm(r);
}

/* "line (×N)" → the length of "line" */
static size_t base_len(const char *line, size_t n)
{
    const char *mark = NULL;
    for (const char *p = line; p + 4 < line + n; p++)
        if (p[0] == ' ' && p[1] == '(' && (unsigned char)p[2] == 0xC3 &&
            (unsigned char)p[3] == 0x97)
            mark = p;
    return mark && line[n - 1] == ')' ? (size_t)(mark - line) : n;
}

static void progress_merge(mx_progress *p, const char *text)
{
    const char *nl = strchr(text, '\n');
    size_t first = nl ? (size_t)(nl - text) : strlen(text);
    if (p->text.len) {
        const char *all = rt_buf_cstr(&p->text);
        const char *last_nl = strrchr(all, '\n');
        const char *last = last_nl ? last_nl + 1 : all;
        size_t last_n = p->text.len - (size_t)(last - all);
        size_t a = base_len(last, last_n), b = base_len(text, first);
        if (a == b && memcmp(last, text, a) == 0) /* the same tool repeated: "(×N)" */
            p->text.len = (size_t)(last - all);
        else
            (void)rt_buf_append_str(&p->text, "\n");
    }
    (void)rt_buf_append_str(&p->text, text);
}

static void progress_add(mx *m, rt_ctx *cx, mx_room *r, const gw_target *to, const char *text)
{
    mx_progress *p = r->progress;
    for (; p; p = p->next) {
        bool st = (!p->thread && !to->thread_id) ||
                  (p->thread && to->thread_id && strcmp(p->thread, to->thread_id) == 0);
        bool sr = (!p->reply_to && !to->reply_to) ||
                  (p->reply_to && to->reply_to && strcmp(p->reply_to, to->reply_to) == 0);
        if (st && sr && !p->ended)
            break;
    }
    if (!p) {
        p = rt_xcalloc(1, sizeof(*p));
        p->thread = to->thread_id ? rt_xstrdup(to->thread_id) : NULL;
        p->reply_to = to->reply_to ? rt_xstrdup(to->reply_to) : NULL;
        rt_buf_init(&p->text, 64u << 10);
        p->next = r->progress;
        r->progress = p;
    }
    if (p->text.len + strlen(text) > PROGRESS_MAX) { /* full: the next lines start anew */
        rt_buf_reset(&p->text);
        rt_free(p->event_id);
        p->event_id = NULL;
        p->gen++;
    }
    progress_merge(p, text);
    if (p->queued)
        return;
    p->queued = true;
    mx_op *op = op_new(OP_PROGRESS);
    op->prog = p;
    push(m, cx, r, op);
}

/* Every audio file goes as a voice message (gateway.md §8: send_voice for each audio
 * extension, with the MSC3245 flag). */
static bool audio_ext(const char *path)
{
    static const char *const ext[] = {".ogg", ".opus", ".mp3", ".wav", ".m4a"};
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < RT_ARRAY_LEN(ext); i++)
        if (strcasecmp(dot, ext[i]) == 0)
            return true;
    return false;
}

/* Split the agent's MEDIA:<path> lines (files to send, at most MX_MEDIA_MAX) from the text;
 * the rest of the text into body (trimmed). */
#define MX_MEDIA_MAX 8
static size_t split_media(const char *text, rt_buf *body, char **paths)
{
    size_t np = 0;
    const char *p = text, *end = text + strlen(text);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        char *path = ak_media_line(p, le);
        if (path && np < MX_MEDIA_MAX) {
            paths[np++] = path;
        } else {
            rt_free(path);
            (void)rt_buf_append(body, p, (size_t)(le - p) + (nl ? 1 : 0));
        }
        p = nl ? nl + 1 : end;
    }
    while (body->len && (body->data[body->len - 1] == '\n' || body->data[body->len - 1] == ' '))
        body->data[--body->len] = '\0';
    return np;
}

void mx_on_out_text(mx *m, rt_ctx *cx, gw_out_text *t)
{
    if (!t->to.chat_id || !t->text) {
        mx_op bad = {.delivery = t->delivery};
        ack(m, cx, &bad, -EINVAL, true, 0, "no room or no text");
        return;
    }
    mx_room *r = mx_room_get(m, t->to.chat_id, true);
    if (t->kind == GW_TEXT_PROGRESS) {
        progress_add(m, cx, r, &t->to, t->text);
        return;
    }
    rt_buf body;
    rt_buf_init(&body, SIZE_MAX / 2);
    char *paths[MX_MEDIA_MAX];
    size_t np = split_media(t->text, &body, paths);
    const char *text = rt_buf_cstr(&body);
    while (*text == '\n')
        text++;
    mx_rel rel = {.thread = t->to.thread_id,
                  .reply_to = t->to.reply_to,
                  .quote = quote_in(r, &t->to, t->part)};
    if (*text || !np)
        queue_send_for(m, cx, r, "m.room.message", mx_content_text(text, &rel), NULL, P_PLAIN,
                       t->delivery);
    for (size_t i = 0; i < np; i++) { /* after the text, in order; the last one acks when alone */
        mx_op *op = op_new(OP_FILE);
        op->path = paths[i];
        op->thread = t->to.thread_id ? rt_xstrdup(t->to.thread_id) : NULL;
        op->voice = audio_ext(op->path);
        mx_media_type(op->path, op->voice, &op->msgtype, &op->mime);
        if (!*text && i + 1 == np)
            op->delivery = t->delivery;
        push(m, cx, r, op);
    }
    rt_buf_fini(&body);
    bool answer = t->kind == GW_TEXT_REPLY || t->kind == GW_TEXT_ERROR;
    mx_known *k = answer && t->to.reply_to ? known_get(m, t->to.reply_to) : NULL;
    if (k && t->part >= t->parts) { /* the last (or only) part */
        k->replied = true;
        if (k->end_held)
            finish_reactions(m, cx, k, k->outcome);
    }
}

static void send_typing(mx *m, rt_ctx *cx, mx_room *r, bool on)
{
    if (!m->user_id || m->stopping)
        return;
    char *room = mx_escape(r->id), *user = mx_escape(m->user_id);
    char *path = rt_xasprintf("/_matrix/client/v3/rooms/%s/typing/%s", room, user);
    char body[64];
    if (on)
        snprintf(body, sizeof(body), "{\"typing\":true,\"timeout\":%d}", TYPING_TIMEOUT_MS);
    else
        snprintf(body, sizeof(body), "{\"typing\":false}");
    mx_submit(m, cx, "PUT", path, body, NULL, 0, MX_SEND_TIMEOUT, 0,
              mx_req_new(RQ_TYPING, r, NULL));
    rt_free(path);
    rt_free(room);
    rt_free(user);
}

void mx_on_typing_timer(mx *m, rt_ctx *cx)
{
    m->typing_timer = false;
    bool any = false;
    int64_t now = mx_now_ms(cx);
    for (size_t i = 0; i < m->nrooms; i++) {
        mx_room *r = m->roomv[i];
        if (!r->typing)
            continue;
        if (now - r->typing_since > MX_TYPING_MAX_MS) {
            r->typing = 0; /* a turn end that never came */
            send_typing(m, cx, r, false);
            continue;
        }
        send_typing(m, cx, r, true);
        any = true;
    }
    if (any && !m->stopping) {
        m->typing_timer = true;
        rt_send_after(cx, m->self, rt_timeout_new(MX_TAG(TM_TYPING, 0)), m->o.typing_refresh_ms);
    }
}

void mx_on_out_typing(mx *m, rt_ctx *cx, gw_out_typing *t)
{
    if (!t->to.chat_id)
        return;
    mx_room *r = mx_room_get(m, t->to.chat_id, true);
    if (!t->on) {
        if (r->typing > 0 && --r->typing == 0)
            send_typing(m, cx, r, false);
        return;
    }
    if (r->typing++ == 0) {
        r->typing_since = mx_now_ms(cx);
        send_typing(m, cx, r, true);
        if (!m->typing_timer) {
            m->typing_timer = true;
            rt_send_after(cx, m->self, rt_timeout_new(MX_TAG(TM_TYPING, 0)),
                          m->o.typing_refresh_ms);
        }
    }
    /* a turn starts for this message: 👀 (§8.7) */
    mx_known *k = t->to.reply_to && m->o.reactions ? known_get(m, t->to.reply_to) : NULL;
    if (!k || k->eyes_sent || k->finished)
        return;
    k->eyes_sent = true;
    queue_send(m, cx, k->room, "m.reaction", mx_content_reaction(k->event_id, "\xf0\x9f\x91\x80"),
               k->event_id, P_EYES);
}

/* Redact the 👀 and react ✅ or ❌ (§8.7). */
static void finish_reactions(mx *m, rt_ctx *cx, mx_known *k, int outcome)
{
    k->end_held = false;
    k->finished = true;
    if (k->eyes_sent) {
        mx_op *op = op_new(OP_REDACT);
        op->ref = rt_xstrdup(k->event_id);
        push(m, cx, k->room, op);
    }
    const char *key = outcome == GW_OUTCOME_SUCCESS ? "\xe2\x9c\x85" : "\xe2\x9d\x8c";
    queue_send(m, cx, k->room, "m.reaction", mx_content_reaction(k->event_id, key), NULL, P_PLAIN);
}

void mx_on_turn_end(mx *m, rt_ctx *cx, gw_out_turn_end *t)
{
    mx_room *r = t->to.chat_id ? mx_room_get(m, t->to.chat_id, false) : NULL;
    for (mx_progress *p = r ? r->progress : NULL, *next; p; p = next) {
        next = p->next;
        bool st = (!p->thread && !t->to.thread_id) ||
                  (p->thread && t->to.thread_id && strcmp(p->thread, t->to.thread_id) == 0);
        if (!st)
            continue;
        p->ended = true; /* the next turn's lines start a new message */
        if (!p->queued)
            progress_free(r, p);
    }
    mx_known *k = t->to.reply_to && m->o.reactions ? known_get(m, t->to.reply_to) : NULL;
    if (!k || k->finished || k->end_held || t->outcome == GW_OUTCOME_CANCELLED)
        return; /* cancelled: the 👀 stays (§8.7) */
    if (!k->replied) {
        /* the gateway's outbox may hand the answer over after the turn ended: ✅/❌ follow
         * the answer, as in the original, or come after MX_REACT_HOLD_MS anyway */
        k->end_held = true;
        k->outcome = t->outcome;
        rt_send_after(cx, m->self, rt_timeout_new(MX_TAG(TM_REACT, k->slot)), MX_REACT_HOLD_MS);
        return;
    }
    finish_reactions(m, cx, k, t->outcome);
}

void mx_on_react_timer(mx *m, rt_ctx *cx, uint64_t slot)
{
    mx_known *k = slot < MX_KNOWN_MAX ? m->known_ring[slot] : NULL;
    if (k && k->end_held)
        finish_reactions(m, cx, k, k->outcome);
}

void mx_on_file(mx *m, rt_ctx *cx, matrix_msg_file *f)
{
    if (!f->to.chat_id || !f->path)
        return;
    mx_room *r = mx_room_get(m, f->to.chat_id, true);
    mx_op *op = op_new(OP_FILE);
    op->path = f->path;
    f->path = NULL;
    op->caption = f->caption;
    f->caption = NULL;
    op->thread = f->to.thread_id ? rt_xstrdup(f->to.thread_id) : NULL;
    op->reply_to = f->to.reply_to ? rt_xstrdup(f->to.reply_to) : NULL;
    op->voice = f->voice;
    mx_media_type(op->path, f->voice, &op->msgtype, &op->mime);
    push(m, cx, r, op);
}

/* =================================================================== drain */

void mx_drain_check(mx *m, rt_ctx *cx)
{
    if (!m->drain_to || m->inflight)
        return;
    for (size_t i = 0; i < m->nrooms; i++)
        if (m->roomv[i]->op_head)
            return;
    rt_send(cx, m->drain_to, rt_timeout_new(m->drain_tag));
    m->drain_to = 0;
}

void mx_on_drain(mx *m, rt_ctx *cx, matrix_msg_drain *d)
{
    m->drain_to = d->reply_to;
    m->drain_tag = d->tag;
    rt_send_after(cx, m->self, rt_timeout_new(MX_TAG(TM_DRAIN, 0)),
                  d->deadline_ms > 0 ? d->deadline_ms : 10000);
    mx_drain_check(m, cx);
}

void mx_outbound_fini(mx *m)
{
    for (size_t i = 0; i < m->nrooms; i++) {
        mx_room *r = m->roomv[i];
        for (mx_op *op = r->op_head, *next; op; op = next) {
            next = op->next;
            mx_op_free(op);
            outbox(m, -1);
        }
        r->op_head = r->op_tail = NULL;
        while (r->progress)
            progress_free(r, r->progress);
    }
    for (size_t i = 0; i < MX_KNOWN_MAX; i++)
        if (m->known_ring[i])
            known_forget(m, m->known_ring[i]);
    rt_map_fini(&m->known);
}
