/*
 * mm_outbound — the gateway's GW_OUT_* messages into posts (gateway.md §9.5).
 *
 * Posts go out one at a time per channel, in the order they were asked for (a reply's chunks
 * stay in order), and up to MM_OUT_PARALLEL channels at once: a channel whose sends are slow
 * or failing holds only its own posts, never another chat's (a 429 still holds everything,
 * mm_rest.c). Where a post goes:
 *   - root_id: the thread of the message answered (always its root, also when that message
 *     was itself a reply inside a thread), or in thread mode a new thread under it;
 *   - a root the server refuses (deleted thread) turns a reply into a flat post prefixed
 *     "⚠️ Mattermost thread delivery failed; posting final reply in channel.";
 *   - a post over the server's limit (a limit lower than MaxPostSize said) is split in
 *     halves until it fits, and the lower limit is announced to the gateway;
 *   - MEDIA:<path> tags become uploaded files (POST /api/v4/files, then a post with the
 *     file id), after the text; a missing file becomes "(file not found: <path>)".
 * Connection-class failures and 5xx answers are retried with backoff (2 s doubling, plus up
 * to 1 s, 8 tries). Never twice (issue 13): every post carries a pending_post_id that is the
 * same on every retry of it (from the outbox delivery and the chunk's index, or a sequence for
 * posts that are no delivery), and the server answers a create whose pending_post_id it saw
 * in the last 30 s (PendingPostIDsCacheTTL) with the post it made, or 500
 * api.post.deduplicate_create_post.pending while the first create is still running. So a post
 * whose answer never came (timeout, reset, 502/504: it may have been made) is retried within
 * MM_PENDING_WINDOW_NS of its first attempt; after that it is given up as "maybe sent" and
 * acked as a permanent failure, so the gateway's outbox does not send it again. The outbox
 * handing over a delivery that is still queued or in flight here (its ack timer ran out) is
 * not queued twice; one finished recently is acked again with its result (ak_lanes).
 */
#include "mm_int.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MEDIA_MAX 8
#define THREAD_FAIL                                                                                \
    "\xe2\x9a\xa0\xef\xb8\x8f Mattermost thread delivery failed; posting final reply in "          \
    "channel.\n\n"
#define SPLITS_MAX 6

static char *dupn(const char *s)
{
    return s && *s ? rt_xstrdup(s) : NULL;
}

static size_t cp_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static void prog_free(mm_prog *p)
{
    rt_free(p->channel);
    rt_free(p->root);
    rt_free(p->post_id);
    rt_free(p->text);
    rt_free(p);
}

/* Free p if it has ended and nothing points at it any more. */
static void prog_release(mm_adapter *a, mm_prog *p)
{
    if (!p->ended || p->refs > 0)
        return;
    for (size_t i = 0; i < a->nprogs; i++)
        if (a->progs[i] == p) {
            a->progs[i] = a->progs[--a->nprogs];
            break;
        }
    prog_free(p);
}

static void out_free_in(mm_adapter *a, mm_out *o)
{
    rt_free(o->pending_id);
    if (o->prog) {
        o->prog->refs--;
        if (a)
            prog_release(a, o->prog);
    }
    rt_free(o->channel);
    rt_free(o->root);
    rt_free(o->text);
    rt_free(o->path);
    rt_free(o->file_id);
    rt_free(o->data);
    rt_free(o);
}

static void out_free(mm_out *o)
{
    out_free_in(NULL, o);
}

static void out_free_cb(void *item, void *arg)
{
    (void)arg;
    out_free(item);
}

static ak_lanes *lanes(mm_adapter *a)
{
    if (!a->lanes_ready) {
        ak_lanes_init(&a->lanes, MM_OUT_PARALLEL, MM_OUT_MAX);
        a->lanes_ready = true;
        a->boot = ak_rand(&a->rnd);
    }
    return &a->lanes;
}

void mm__out_free_all(mm_adapter *a)
{
    if (a->lanes_ready)
        ak_lanes_fini(&a->lanes, out_free_cb, NULL);
    for (size_t i = 0; i < a->nprogs; i++)
        prog_free(a->progs[i]);
    a->nprogs = 0;
}

static mm_out *out_new(int what, int kind, const char *channel, const char *root)
{
    mm_out *o = rt_xcalloc(1, sizeof(*o));
    o->what = what;
    o->kind = kind;
    o->channel = rt_xstrdup(channel);
    o->root = dupn(root);
    return o;
}

/* The pending_post_id of the index-th post of delivery (0: a post that is no delivery, which
 * gets the next of a sequence). Stable for every retry of the same delivery in this process;
 * the random boot part keeps ids of an earlier run (whose deliveries counted from 1 too) from
 * matching. */
static char *pending_id(mm_adapter *a, uint64_t delivery, size_t index)
{
    lanes(a);
    if (!delivery)
        return rt_xasprintf("hermes-%016llx-n%llu", (unsigned long long)a->boot,
                            (unsigned long long)++a->pend_seq);
    return rt_xasprintf("hermes-%016llx-d%llu-%zu", (unsigned long long)a->boot,
                        (unsigned long long)delivery, index);
}

static bool out_push(mm_adapter *a, mm_out *o)
{
    if (ak_lanes_push(lanes(a), o->channel, o->group, o) != 0) {
        RT_LOG_LIMITED(RT_LOG_WARN, MM_LOG, 10000,
                       "Mattermost: too many posts queued; one dropped");
        out_free(o);
        return false;
    }
    return true;
}

/* Put the texts of chunks (NULL-terminated) in place of item h (keeping its address) and after
 * it in its channel's lane. Each part gets its own pending_post_id, derived from h's (the
 * server forgets the id of a create it refused). */
static void replace_item(mm_adapter *a, mm_out *h, char **chunks)
{
    mm_out *last = h;
    char *base = h->pending_id;
    h->pending_id = base ? rt_xasprintf("%s.0", base) : NULL;
    h->first_try_ns = 0;
    rt_free(h->text);
    h->text = rt_xstrdup(chunks[0]);
    for (size_t i = 1; chunks[i]; i++) {
        mm_out *o = out_new(MM_OUT_TEXT, h->kind, h->channel, h->root);
        o->text = rt_xstrdup(chunks[i]);
        o->splits = h->splits;
        o->flat_retry = h->flat_retry;
        o->group = h->group;
        o->pending_id = base ? rt_xasprintf("%s.%zu", base, i) : NULL;
        if (ak_lanes_insert_after(&a->lanes, last, o->group, o) != 0) {
            RT_LOG_LIMITED(RT_LOG_WARN, MM_LOG, 10000,
                           "Mattermost: too many posts queued; part of a post dropped");
            out_free(o);
            break;
        }
        last = o;
    }
    rt_free(base);
    if (last != h) { /* the message ends with its last part */
        last->delivery = h->delivery;
        h->delivery = 0;
    }
}

/* Queue text (chunked to the post limit) for delivery; *index counts the delivery's posts. */
static void enqueue_text(mm_adapter *a, int kind, const char *channel, const char *root,
                         const char *text, uint64_t delivery, size_t *index)
{
    char *one[2] = {(char *)text, NULL};
    /* GW_MSG_DELIVER and friends are not chunked by the gateway */
    char **chunks = cp_len(text) <= a->max_post ? NULL : gw_chunk(text, a->max_post);
    char **parts = chunks ? chunks : one;
    for (size_t i = 0; parts[i]; i++) {
        mm_out *o = out_new(MM_OUT_TEXT, kind, channel, root);
        o->text = rt_xstrdup(parts[i]);
        o->group = delivery;
        o->pending_id = pending_id(a, delivery, (*index)++);
        out_push(a, o);
    }
    if (chunks)
        gw_chunks_free(chunks);
}

static bool same_str(const char *x, const char *y)
{
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

/* The live progress post of a target, or NULL. */
static mm_prog *prog_find(mm_adapter *a, const char *channel, const char *root)
{
    for (size_t i = 0; i < a->nprogs; i++) {
        mm_prog *p = a->progs[i];
        if (!p->ended && strcmp(p->channel, channel) == 0 && same_str(p->root, root))
            return p;
    }
    return NULL;
}

/* The turn of a target is over: its progress post (if any) stays as it is. */
static void prog_end(mm_adapter *a, const char *channel, const char *root)
{
    mm_prog *p = prog_find(a, channel, root);
    if (p) {
        p->ended = true;
        prog_release(a, p);
    }
}

/* Progress lines: appended to the target's progress post (created or patched in queue
 * order). False when they should go out as an ordinary post instead (too many turns). */
static bool progress(mm_adapter *a, const char *channel, const char *root, const char *text)
{
    size_t tl = strlen(text);
    size_t cap = a->max_post < MM_PROG_TEXT_MAX ? a->max_post : MM_PROG_TEXT_MAX;
    if (tl + 1 > cap)
        return false;
    mm_prog *p = prog_find(a, channel, root);
    if (p && p->len + 1 + tl > cap) { /* full: the next lines start a new post */
        p->ended = true;
        prog_release(a, p);
        p = NULL;
    }
    if (!p) {
        if (a->nprogs == MM_PROG_MAX)
            return false;
        p = rt_xcalloc(1, sizeof(*p));
        p->channel = rt_xstrdup(channel);
        p->root = dupn(root);
        a->progs[a->nprogs++] = p;
    }
    p->text = rt_xrealloc(p->text, p->len + tl + 2);
    if (p->len)
        p->text[p->len++] = '\n';
    memcpy(p->text + p->len, text, tl + 1);
    p->len += tl;
    if (p->queued)
        return true; /* the update waiting in the queue will carry these lines */
    mm_out *o = out_new(MM_OUT_PROG, GW_TEXT_PROGRESS, channel, root);
    o->pending_id = pending_id(a, 0, 0);
    o->prog = p;
    p->refs++;
    if (out_push(a, o))
        p->queued = true;
    return true;
}

/* Tell the gateway's outbox how a message it handed over went (gw_caps.acks). Outcomes a
 * resend must not change (sent, refused, maybe sent) are remembered, so a copy the outbox
 * hands over again is acked without posting (ak_lanes_claim). */
static void ack(mm_adapter *a, rt_ctx *cx, uint64_t delivery, int err, bool permanent)
{
    if (delivery && (!err || permanent))
        ak_lanes_remember(lanes(a), delivery, err, permanent);
    gw_ack(cx, delivery ? mm__gateway(a, cx) : 0, delivery, err, permanent, 0,
           err == -ETIMEDOUT && permanent
               ? "Mattermost did not answer; the post may have been made, not sent again"
               : (err ? (permanent ? "Mattermost refused the post"
                                   : "Mattermost did not take the post")
                      : NULL));
}

typedef struct find_last_arg {
    uint64_t group;
    mm_out **last;
} find_last_arg;

/* ak_lanes_each: the last item queued for a delivery (its lane keeps queue order). */
static void find_last(void *item, void *arg)
{
    find_last_arg *f = arg;
    mm_out *o = item;
    if (f->group && o->group == f->group)
        *f->last = o;
}

void mm__on_out_text(mm_adapter *a, rt_ctx *cx, gw_out_text *t)
{
    if (!t->text || !t->to.chat_id || !*t->to.chat_id) {
        ack(a, cx, t->delivery, -EINVAL, true);
        return;
    }
    int prev_err = 0;
    bool prev_permanent = false;
    switch (ak_lanes_claim(lanes(a), t->delivery, &prev_err, &prev_permanent)) {
    case AK_LANES_QUEUED:
        RT_DEBUG(MM_LOG, "Mattermost: delivery %llu is already on its way; not queued again",
                 (unsigned long long)t->delivery);
        return; /* its ack answers the copy too */
    case AK_LANES_DONE: ack(a, cx, t->delivery, prev_err, prev_permanent); return;
    default: break;
    }
    size_t queued = ak_lanes_count(&a->lanes);
    size_t index = 0;
    mm_out *last = NULL;
    const char *root = mm_reply_root(a->o.reply_thread, t->to.thread_id, t->to.reply_to);
    if (t->kind == GW_TEXT_PROGRESS) {
        char *body = mm_format(t->text);
        bool done = !*body || progress(a, t->to.chat_id, root, body);
        if (!done)
            enqueue_text(a, t->kind, t->to.chat_id, root, body, 0, &index);
        rt_free(body);
        mm__out_pump(a, cx);
        return;
    }
    char **paths = NULL;
    char *text;
    if (t->kind == GW_TEXT_REPLY || t->kind == GW_TEXT_NOTICE)
        text = mm_extract_media(t->text, a->user_home, &paths, MEDIA_MAX);
    else
        text = rt_xstrdup(t->text);
    char *body = mm_format(text);
    rt_free(text);
    if (*body)
        enqueue_text(a, t->kind, t->to.chat_id, root, body, t->delivery, &index);
    rt_free(body);
    for (size_t i = 0; paths && paths[i]; i++) {
        mm_out *o = out_new(MM_OUT_FILE, t->kind, t->to.chat_id, root);
        o->path = rt_xstrdup(paths[i]);
        o->group = t->delivery;
        o->pending_id = pending_id(a, t->delivery, index++);
        out_push(a, o);
    }
    mm_strv_free(paths);
    ak_lanes_each(&a->lanes, find_last, &(find_last_arg){t->delivery, &last});
    if (t->delivery) {
        if (ak_lanes_count(&a->lanes) > queued && last)
            last->delivery = t->delivery; /* acked when its last post is done */
        else if (*t->text)
            ack(a, cx, t->delivery, -ENOBUFS, false); /* the queue is full: again later */
        else
            ack(a, cx, t->delivery, 0, false); /* nothing to post */
    }
    mm__out_pump(a, cx);
}

/* ================================================================ sending */

static void send_post(mm_adapter *a, rt_ctx *cx, mm_out *o)
{
    mm_req *r = mm__req_new(a, MM_R_POST, "POST", "/api/v4/posts");
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "channel_id", o->channel);
    cJSON_AddStringToObject(b, "message", o->what != MM_OUT_FILE && o->text ? o->text : "");
    if (o->root)
        cJSON_AddStringToObject(b, "root_id", o->root);
    if (o->pending_id) {
        cJSON_AddStringToObject(b, "pending_post_id", o->pending_id);
        if (!o->first_try_ns)
            o->first_try_ns = mm__now_ns(cx);
    }
    if (o->file_id) {
        cJSON *ids = cJSON_AddArrayToObject(b, "file_ids");
        cJSON_AddItemToArray(ids, cJSON_CreateString(o->file_id));
    }
    mm__req_json(r, b);
    r->ctx = o;
    mm__submit(a, cx, r);
}

/* Create the progress post, or replace its text with everything so far. */
static void send_progress(mm_adapter *a, rt_ctx *cx, mm_out *o)
{
    mm_prog *p = o->prog;
    p->queued = false; /* lines from now on need another update */
    rt_free(o->text);
    o->text = rt_xstrdup(p->text ? p->text : "");
    if (!p->post_id) {
        send_post(a, cx, o);
        return;
    }
    char *path = rt_xasprintf("/api/v4/posts/%s/patch", p->post_id);
    mm_req *r = mm__req_new(a, MM_R_PATCH, "PUT", path);
    rt_free(path);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "message", o->text);
    mm__req_json(r, b);
    r->ctx = o;
    mm__submit(a, cx, r);
}

static void send_upload(mm_adapter *a, rt_ctx *cx, mm_out *o)
{
    char boundary[48];
    snprintf(boundary, sizeof(boundary), "hermes%016llx%016llx",
             (unsigned long long)ak_rand(&a->rnd), (unsigned long long)ak_rand(&a->rnd));
    const char *name = strrchr(o->path, '/') ? strrchr(o->path, '/') + 1 : o->path;
    mm_req *r = mm__req_new(a, MM_R_UPLOAD, "POST", "/api/v4/files");
    r->body =
        mm_multipart(boundary, o->channel, name, mm_mime_for(name), o->data, o->len, &r->body_len);
    r->ctype = rt_xasprintf("multipart/form-data; boundary=%s", boundary);
    r->timeout_ms = a->o.upload_timeout_ms;
    r->ctx = o;
    rt_free(o->data); /* the body holds it now */
    o->data = NULL;
    o->len = 0;
    mm__submit(a, cx, r);
}

static void read_file(mm_adapter *a, rt_ctx *cx, mm_out *o)
{
    mm_req *r = mm__req_new(a, MM_R_FILE_READ, NULL, NULL);
    r->ctx = o;
    uint64_t tag = mm__track(a, r);
    ak_io_read(cx, a->io, o->path, a->o.max_file_bytes, a->self, tag);
}

static void out_start(mm_adapter *a, rt_ctx *cx, mm_out *o)
{
    if (o->what == MM_OUT_PROG)
        send_progress(a, cx, o);
    else if (o->what == MM_OUT_TEXT || o->file_id)
        send_post(a, cx, o);
    else if (o->data)
        send_upload(a, cx, o);
    else
        read_file(a, cx, o);
}

/* The retry timer: due when ak_lanes says something waits on time, else disarmed. */
static void arm_out_timer(mm_adapter *a, rt_ctx *cx)
{
    int64_t now = mm__now_ns(cx);
    int64_t next = ak_lanes_next_due(lanes(a), now);
    if (!next) {
        ak_timer_cancel(cx, &a->tm, MM_T_OUT);
        return;
    }
    int64_t ms = (next - now + 999999) / 1000000;
    ak_timer_arm(cx, a->self, &a->tm, MM_T_OUT, ms > 0 ? ms : 1);
}

/*
 * Start what may go (ak_lanes): the first post of each channel that has none on its way, up
 * to MM_OUT_PARALLEL channels at once. Submitting never answers synchronously, so the lanes do
 * not change under the loop.
 */
void mm__out_pump(mm_adapter *a, rt_ctx *cx)
{
    if (!a->lanes_ready || a->phase == MM_PH_STOPPED || !a->io)
        return;
    void *go[MM_OUT_PARALLEL];
    size_t n = ak_lanes_ready(&a->lanes, mm__now_ns(cx), go, MM_OUT_PARALLEL);
    for (size_t i = 0; i < n; i++)
        out_start(a, cx, go[i]);
    arm_out_timer(a, cx);
}

/* Item o is finished (sent, or given up on): acknowledge it, free it, start what may go. */
static void out_next(mm_adapter *a, rt_ctx *cx, mm_out *o)
{
    if (o->ack_err && !o->ack_permanent && ak_lanes_partial(&a->lanes, o)) {
        RT_ERROR(MM_LOG,
                 "Mattermost: part of a reply to %s was posted; the rest is given up, not sent "
                 "again",
                 o->channel);
        o->ack_permanent = true; /* the outbox would send the whole reply again */
    }
    ack(a, cx, o->delivery, o->ack_err, o->ack_permanent);
    ak_lanes_done(&a->lanes, o);
    if (!o->ack_err)
        ak_lanes_part_sent(&a->lanes, o->group);
    out_free_in(a, o);
    mm__out_pump(a, cx);
}

/* Item o goes again (after a change, or at once). */
static void out_again(mm_adapter *a, rt_ctx *cx, mm_out *o)
{
    ak_lanes_again(&a->lanes, o);
    mm__out_pump(a, cx);
}

void mm__on_out_timer(mm_adapter *a, rt_ctx *cx)
{
    mm__out_pump(a, cx);
}

/* An answer that does not say whether the post was made: no answer in time, the connection
 * dropped after sending, a proxy's 502/504. */
static bool ambiguous(rt_io_msg_http_done *d)
{
    if (d->err)
        return d->err == -ETIMEDOUT || d->err == -ECONNRESET || d->err == -EPIPE;
    return d->status == 502 || d->status == 504;
}

static bool retryable(rt_io_msg_http_done *d)
{
    if (d->err)
        return d->err == -ECONNREFUSED || d->err == -ECONNRESET || d->err == -EHOSTUNREACH ||
               d->err == -ETIMEDOUT || d->err == -EPIPE;
    return d->status == 500 || d->status == 502 || d->status == 503 || d->status == 504;
}

/* o may have been made and cannot be asked about again safely: give it up without the
 * outbox sending it again (permanent), and say so. */
static void give_up_maybe_sent(mm_adapter *a, rt_ctx *cx, mm_out *o, rt_io_msg_http_done *d)
{
    RT_ERROR(MM_LOG,
             "Mattermost: a post to %s got no answer (%s); it may have been made, so it is not "
             "sent again",
             o->channel, d->err ? rt_strerror(d->err) : "server error");
    o->ack_err = -ETIMEDOUT;
    o->ack_permanent = true;
    out_next(a, cx, o);
}

static void retry_later(mm_adapter *a, rt_ctx *cx, mm_out *o, rt_io_msg_http_done *d)
{
    bool unsure = ambiguous(d) || (o->maybe_sent && d->status == 500);
    if (unsure)
        o->maybe_sent = true;
    if (o->maybe_sent && !o->pending_id) { /* nothing makes a second create safe */
        give_up_maybe_sent(a, cx, o, d);
        return;
    }
    if (o->tries >= MM_OUT_TRIES) {
        if (o->maybe_sent) {
            give_up_maybe_sent(a, cx, o, d);
            return;
        }
        RT_ERROR(MM_LOG, "Mattermost: a post to %s failed %d times (%s); giving up", o->channel,
                 o->tries, d->err ? rt_strerror(d->err) : "server error");
        o->ack_err = d->err ? d->err : -EIO; /* the gateway's outbox tries again later */
        out_next(a, cx, o);
        return;
    }
    o->tries++;
    int64_t ms = 2000LL << (o->tries - 1 < 5 ? o->tries - 1 : 5);
    ms = (ms > 60000 ? 60000 : ms) + (int64_t)(ak_rand(&a->rnd) % 1000);
    int64_t now = mm__now_ns(cx);
    if (o->maybe_sent) {
        /* ask again soon, while the server still knows the pending_post_id */
        ms = 1000 + (int64_t)(ak_rand(&a->rnd) % 1000);
        if (o->first_try_ns && now + ms * 1000000 > o->first_try_ns + MM_PENDING_WINDOW_NS) {
            give_up_maybe_sent(a, cx, o, d);
            return;
        }
    }
    RT_WARN(MM_LOG, "Mattermost: posting to %s failed (%s); retry %d in %.1fs", o->channel,
            d->err ? rt_strerror(d->err) : "server error", o->tries, (double)ms / 1000.0);
    ak_lanes_retry(&a->lanes, o, now + ms * 1000000); /* its channel waits */
    arm_out_timer(a, cx);
}

/* Did the server refuse the post's root_id (a deleted or unknown thread)? */
static bool root_refused(int status, const char *id, const char *msg)
{
    if (status != 400 && status != 404)
        return false;
    const char *s[2] = {id, msg};
    for (int i = 0; i < 2; i++)
        if (s[i] && (strcasestr(s[i], "root_id") || strcasestr(s[i], "rootid") ||
                     strcasestr(s[i], "root id")))
            return true;
    return false;
}

static bool too_long(int status, const char *id, const char *msg)
{
    return status == 400 && ((id && (strstr(id, "is_valid.msg") || strstr(id, "message_length"))) ||
                             (msg && strcasestr(msg, "longer than")));
}

static void split_item(mm_adapter *a, rt_ctx *cx, mm_out *o)
{
    size_t n = cp_len(o->text);
    size_t limit = n / 2 > 0 ? n / 2 : 1;
    if (o->splits >= SPLITS_MAX || n < 2) {
        RT_ERROR(MM_LOG,
                 "Mattermost: the server refuses a post of %zu characters as too long; "
                 "dropped",
                 n);
        out_next(a, cx, o);
        return;
    }
    RT_WARN(MM_LOG,
            "Mattermost: the server refused a post of %zu characters as too long; "
            "sending it in parts of at most %zu",
            n, limit);
    o->splits++;
    char **chunks = gw_chunk(o->text, limit);
    replace_item(a, o, chunks);
    gw_chunks_free(chunks);
    if (limit < a->max_post) { /* the real limit is lower than MaxPostSize said */
        a->max_post = limit;
        if (a->announced)
            mm__announce(a, cx);
    }
    out_again(a, cx, o);
}

static void on_post_failed(mm_adapter *a, rt_ctx *cx, mm_out *o, rt_io_msg_http_done *d)
{
    char *msg = NULL;
    char *id = d->err ? NULL : mm_app_error_id(d->body, &msg);
    if (o->what == MM_OUT_TEXT && too_long(d->status, id, msg)) {
        split_item(a, cx, o);
    } else if (o->root && !o->flat_retry && o->kind != GW_TEXT_PROGRESS &&
               root_refused(d->status, id, msg)) {
        RT_WARN(MM_LOG, "Mattermost: thread %s refused (%s); posting flat in %s", o->root,
                msg ? msg : "invalid root", o->channel);
        rt_free(o->root);
        o->root = NULL;
        o->flat_retry = true;
        if (o->what == MM_OUT_TEXT) {
            char *t = rt_xasprintf(THREAD_FAIL "%s", o->text);
            rt_free(o->text);
            o->text = t;
        }
        out_again(a, cx, o);
    } else if (retryable(d)) {
        retry_later(a, cx, o, d);
    } else {
        if (d->status == 403)
            RT_ERROR(MM_LOG,
                     "Mattermost: 403 Forbidden posting in channel %s — the bot is not a member "
                     "of the channel or may not post there (channel name → Add Members); if "
                     "this happens everywhere, check MATTERMOST_TOKEN and that the bot account "
                     "is active",
                     o->channel);
        else if (d->status == 401)
            RT_ERROR(
                MM_LOG,
                "Mattermost: Failed to authenticate (HTTP 401) posting in %s — " MM_AUTH_FAIL_HINT,
                o->channel);
        else
            RT_ERROR(MM_LOG, "Mattermost: posting in %s failed: %s (%s)", o->channel,
                     d->err ? rt_strerror(d->err) : "HTTP error",
                     msg ? msg : (id ? id : "no details"));
        o->ack_err = d->err ? d->err : -EIO;
        o->ack_permanent = !d->err && d->status >= 400 && d->status < 500;
        out_next(a, cx, o);
    }
    rt_free(id);
    rt_free(msg);
}

void mm__outbound_result(mm_adapter *a, rt_ctx *cx, mm_req *r, rt_io_msg_http_done *d)
{
    mm_out *o = r->ctx;
    if (!a->lanes_ready || !ak_lanes_busy(&a->lanes, o))
        return; /* cannot happen (invariant 2); be safe */
    bool ok = !d->err && d->status >= 200 && d->status < 300;
    if (o->what == MM_OUT_PROG) {
        if (ok && r->kind == MM_R_POST && !o->prog->post_id) {
            cJSON *j = cJSON_Parse(d->body ? d->body : "");
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
            if (cJSON_IsString(id) && *id->valuestring)
                o->prog->post_id = rt_xstrdup(id->valuestring);
            cJSON_Delete(j);
        } else if (!ok && !retryable(d)) {
            /* the post is gone (deleted) or cannot be edited: the next lines start anew */
            RT_DEBUG(MM_LOG, "Mattermost: progress update failed (HTTP %d)", d->status);
            rt_free(o->prog->post_id);
            o->prog->post_id = NULL;
        }
        if (ok || !retryable(d))
            out_next(a, cx, o);
        else
            retry_later(a, cx, o, d);
        return;
    }
    if (r->kind == MM_R_POST) {
        if (ok)
            out_next(a, cx, o);
        else
            on_post_failed(a, cx, o, d);
        return;
    }
    /* MM_R_UPLOAD */
    char *fid = ok ? mm_upload_file_id(d->body) : NULL;
    if (fid) {
        o->file_id = fid;
        o->maybe_sent = false; /* a second upload only left an unused file */
        o->tries = 0;
        out_again(a, cx, o);
    } else if (retryable(d)) {
        rt_free(o->data); /* read again on the retry */
        o->data = NULL;
        retry_later(a, cx, o, d);
    } else {
        RT_ERROR(MM_LOG, "Mattermost: uploading %s failed: %s", o->path,
                 d->err ? rt_strerror(d->err)
                        : (d->status == 413 ? "file too large" : "HTTP error"));
        out_next(a, cx, o);
    }
}

void mm__outbound_io(mm_adapter *a, rt_ctx *cx, mm_req *r, ak_io_done *d)
{
    mm_out *o = r->ctx;
    if (!a->lanes_ready || !ak_lanes_busy(&a->lanes, o))
        return;
    if (d->err == 0) {
        o->data = d->data;
        o->len = d->len;
        d->data = NULL;
        if (!o->data)
            o->data = rt_xstrdup("");
        out_again(a, cx, o);
        return;
    }
    /* the original's texts for files that cannot be sent */
    const char *name = strrchr(o->path, '/') ? strrchr(o->path, '/') + 1 : o->path;
    char *t = d->err == -E2BIG ? rt_xasprintf("(file too large to send: %s)", name)
                               : rt_xasprintf("(file not found: %s)", o->path);
    RT_WARN(MM_LOG, "Mattermost: cannot send %s: %s", o->path, rt_strerror(d->err));
    o->what = MM_OUT_TEXT;
    o->text = t;
    out_again(a, cx, o);
}

/* ================================================================ typing */

static void send_typing(mm_adapter *a, rt_ctx *cx, const mm_typing *t)
{
    if (!a->bot_id)
        return;
    char *path = rt_xasprintf("/api/v4/users/%s/typing", a->bot_id);
    mm_req *r = mm__req_new(a, MM_R_TYPING, "POST", path);
    rt_free(path);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "channel_id", t->channel);
    cJSON_AddStringToObject(b, "parent_id", t->parent ? t->parent : "");
    mm__req_json(r, b);
    r->timeout_ms = 10000;
    mm__submit(a, cx, r);
}

static bool same(const char *x, const char *y)
{
    return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

static void typing_remove(mm_adapter *a, size_t i)
{
    rt_free(a->typing[i].channel);
    rt_free(a->typing[i].parent);
    a->typing[i] = a->typing[--a->ntyping];
}

void mm__on_out_typing(mm_adapter *a, rt_ctx *cx, gw_out_typing *t)
{
    if (!t->to.chat_id || !*t->to.chat_id)
        return;
    const char *parent = mm_reply_root(a->o.reply_thread, t->to.thread_id, t->to.reply_to);
    for (size_t i = 0; i < a->ntyping; i++) {
        if (strcmp(a->typing[i].channel, t->to.chat_id) == 0 && same(a->typing[i].parent, parent)) {
            if (!t->on)
                typing_remove(a, i);
            return;
        }
    }
    if (!t->on || a->ntyping == MM_TYPING_MAX)
        return;
    mm_typing *e = &a->typing[a->ntyping++];
    e->channel = rt_xstrdup(t->to.chat_id);
    e->parent = dupn(parent);
    e->since_ns = mm__now_ns(cx);
    send_typing(a, cx, e);
    if (!ak_timer_armed(&a->tm, MM_T_TYPING))
        ak_timer_arm(cx, a->self, &a->tm, MM_T_TYPING, a->o.typing_ms);
}

void mm__on_turn_end(mm_adapter *a, rt_ctx *cx, gw_out_turn_end *t)
{
    (void)cx;
    if (!t->to.chat_id)
        return;
    const char *parent = mm_reply_root(a->o.reply_thread, t->to.thread_id, t->to.reply_to);
    prog_end(a, t->to.chat_id, parent);
    for (size_t i = 0; i < a->ntyping; i++)
        if (strcmp(a->typing[i].channel, t->to.chat_id) == 0 && same(a->typing[i].parent, parent)) {
            typing_remove(a, i);
            return;
        }
}

void mm__on_typing_timer(mm_adapter *a, rt_ctx *cx)
{
    int64_t now = mm__now_ns(cx);
    for (size_t i = 0; i < a->ntyping;) {
        if (now - a->typing[i].since_ns > MM_TYPING_TTL_NS) { /* the turn's end never came */
            typing_remove(a, i);
            continue;
        }
        send_typing(a, cx, &a->typing[i]);
        i++;
    }
    if (a->ntyping)
        ak_timer_arm(cx, a->self, &a->tm, MM_T_TYPING, a->o.typing_ms);
}
