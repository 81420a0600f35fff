/*
 * mx_inbound — from a /sync response to the gateway (gateway.md §8.4-8.5).
 *
 * For each joined room: its state (name, members and display names, the joined count of the
 * summary) is applied, then each timeline message goes through the original's filters (own
 * messages, duplicates, the start-up grace, edits, notices, redactions, unknown kinds), the
 * E2EE seam (encrypted events), and the rules (mx_rules.c: mentions, gating, threads). An
 * accepted message becomes a GW_MSG_EVENT in the room's inbound queue (invariant 2 of
 * mx_int.h): media wait there for their download, plain text for the batching quiet period
 * (pieces from one sender in one thread are joined with "\n"); the head goes to the gateway as
 * soon as it is ready. Invites are accepted, m.direct marks DMs, read receipts follow the
 * newest accepted message.
 *
 * Threads: runs inside the adapter actor's behaviour.
 */
#include "mx_int.h"
#include "mx_olm.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_timer.h"
#include "rt_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define JOIN_ATTEMPTS 6

static const cJSON *jget(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = jget(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static uint64_t hkey(const char *s)
{
    uint64_t h = rt_hash_str(s);
    return h ? h : 1;
}

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ================================================================== rooms */

mx_room *mx_room_get(mx *m, const char *id, bool create)
{
    uint64_t h = hkey(id);
    mx_room *head = rt_map_get(&m->rooms, h);
    for (mx_room *r = head; r; r = r->next_hash)
        if (strcmp(r->id, id) == 0)
            return r;
    if (!create)
        return NULL;
    mx_room *r = rt_xcalloc(1, sizeof(*r));
    r->id = rt_xstrdup(id);
    r->summary_joined = -1;
    rt_map_init(&r->members);
    r->next_hash = head;
    rt_map_put(&m->rooms, h, r);
    if (m->nrooms == m->roomcap) {
        m->roomcap = m->roomcap ? m->roomcap * 2 : 64;
        m->roomv = rt_xrealloc(m->roomv, m->roomcap * sizeof(*m->roomv));
    }
    r->index = m->nrooms;
    m->roomv[m->nrooms++] = r;
    return r;
}

static mx_member *member_get(mx_room *r, const char *user, bool create)
{
    uint64_t h = hkey(user);
    mx_member *head = rt_map_get(&r->members, h);
    for (mx_member *p = head; p; p = p->next)
        if (strcmp(p->user_id, user) == 0)
            return p;
    if (!create)
        return NULL;
    mx_member *p = rt_xcalloc(1, sizeof(*p));
    p->user_id = rt_xstrdup(user);
    p->next = head;
    rt_map_put(&r->members, h, p);
    return p;
}

bool mx_room_is_dm(const mx_room *r)
{
    int64_t joined = r->summary_joined >= 0 ? r->summary_joined : r->joined_members;
    if (r->direct || joined == 2)
        return true;
    return joined <= 1 && r->direct_hint; /* invited as a DM, members not known yet */
}

static void in_free(mx_in *it)
{
    if (it->ev)
        rt_msg_free(&it->ev->hdr);
    rt_free(it->mxc);
    rt_free(it->mime);
    rt_free(it->filename);
    rt_free(it->file);
    rt_free(it);
}

void mx_room_free(mx_room *r)
{
    for (size_t i = 0; i < r->members.cap; i++) {
        mx_member *p = r->members.keys[i] ? r->members.vals[i] : NULL;
        while (p) {
            mx_member *next = p->next;
            rt_free(p->user_id);
            rt_free(p->name);
            rt_free(p);
            p = next;
        }
    }
    rt_map_fini(&r->members);
    for (mx_in *it = r->in_head, *next; it; it = next) {
        next = it->next;
        in_free(it);
    }
    rt_free(r->id);
    rt_free(r->name);
    rt_free(r->receipt_want);
    rt_free(r);
}

void mx_inbound_fini(mx *m)
{
    for (size_t i = 0; i < m->nrooms; i++)
        mx_room_free(m->roomv[i]);
    rt_free(m->roomv);
    rt_map_fini(&m->rooms);
    rt_map_fini(&m->dedup_set);
    for (size_t i = 0; i < m->nthreads; i++)
        rt_free(m->threads[i]);
    rt_free(m->threads);
    rt_map_fini(&m->thread_set);
}

/* =================================================================== state */

static void apply_member(mx *m, mx_room *r, const cJSON *ev)
{
    const char *user = jstr(ev, "state_key");
    const cJSON *c = jget(ev, "content");
    const char *ms = jstr(c, "membership");
    if (!user || !ms)
        return;
    mx_member *p = member_get(r, user, true);
    bool joined = strcmp(ms, "join") == 0;
    if (joined != p->joined)
        r->joined_members += joined ? 1 : -1;
    p->joined = joined;
    const char *name = jstr(c, "displayname");
    rt_free(p->name);
    p->name = name && *name ? rt_xstrdup(name) : NULL;
    if (m->user_id && strcmp(user, m->user_id) == 0 && !joined && r->joined) {
        r->joined = false; /* kicked, banned or left */
        MX_STAT(m, rooms, (uint64_t)-1);
    }
}

static void apply_state(mx *m, mx_room *r, const cJSON *ev)
{
    const char *type = jstr(ev, "type");
    if (!type || !jstr(ev, "state_key"))
        return;
    if (strcmp(type, "m.room.member") == 0) {
        apply_member(m, r, ev);
    } else if (strcmp(type, "m.room.name") == 0) {
        const char *name = jstr(jget(ev, "content"), "name");
        rt_free(r->name);
        r->name = name && *name ? rt_xstrdup(name) : NULL;
    }
}

static void apply_direct(mx *m, const cJSON *content)
{
    for (size_t i = 0; i < m->nrooms; i++)
        m->roomv[i]->direct = false;
    const cJSON *user;
    cJSON_ArrayForEach(user, (cJSON_IsObject(content) ? content : NULL))
    {
        const cJSON *id;
        cJSON_ArrayForEach(id, (cJSON_IsArray(user) ? user : NULL))
        {
            if (cJSON_IsString(id))
                mx_room_get(m, id->valuestring, true)->direct = true;
        }
    }
}

/* ================================================================= threads */

bool mx_thread_known(mx *m, const char *thread)
{
    const char *s = rt_map_get(&m->thread_set, hkey(thread) | 1);
    return s && strcmp(s, thread) == 0;
}

static void threads_write(mx *m, rt_ctx *cx)
{
    if (!m->threads_dirty || m->threads_writing || !m->o.threads_file)
        return;
    m->threads_dirty = false;
    m->threads_writing = true;
    mx_io_msg *q = mx_io_new(MX_IO_WRITE, 0, 0);
    q->path = rt_xstrdup(m->o.threads_file);
    q->data = mx_threads_render(m->threads, m->nthreads);
    q->len = strlen(q->data);
    q->mode = 0600;
    mx_io_submit(m, cx, q, mx_req_new(IO_THREADS, NULL, NULL));
}

static void remember_thread(mx *m, rt_ctx *cx, const char *thread)
{
    if (mx_thread_known(m, thread))
        return;
    if (m->nthreads == MX_THREADS_MAX) { /* forget the oldest */
        rt_map_del(&m->thread_set, hkey(m->threads[0]) | 1);
        rt_free(m->threads[0]);
        memmove(m->threads, m->threads + 1, (m->nthreads - 1) * sizeof(*m->threads));
        m->nthreads--;
    }
    char *id = rt_xstrdup(thread);
    m->threads[m->nthreads++] = id;
    rt_map_put(&m->thread_set, hkey(id) | 1, id);
    m->threads_dirty = true;
    threads_write(m, cx);
}

/* ============================================================ to the gateway */

static mx_batch *batch_of(mx *m, uint64_t seq)
{
    for (size_t i = 0; seq && i < m->nbatches; i++)
        if (m->batches[i].seq == seq)
            return &m->batches[i];
    return NULL;
}

/* Hand every ready item at the head of r's queue to the gateway (invariant 2). */
static void pump(mx *m, rt_ctx *cx, mx_room *r)
{
    bool handed = false;
    while (r->in_head && !r->in_head->waiting && !r->in_head->open) {
        mx_in *it = r->in_head;
        r->in_head = it->next;
        if (!r->in_head)
            r->in_tail = NULL;
        rt_ref gw = mx_gateway(m, cx);
        gw_msg_event *ev = it->ev;
        it->ev = NULL;
        if (gw) {
            RT_DEBUG(MX_LOG, "Matrix: %s in %s from %s handed to the gateway", ev->message_id,
                     r->id, ev->src.user_id);
            gw_event_send(cx, gw, ev);
            MX_STAT(m, events, 1);
        } else {
            RT_WARN_ONCE(MX_LOG, "Matrix: no gateway: messages are dropped");
            rt_msg_free(&ev->hdr);
        }
        if (it->batch)
            mx_batch_done(m, it->batch);
        in_free(it);
        handed = true;
    }
    if (handed)
        mx_after_handed(m, cx);
}

static void arm_batch(mx *m, rt_ctx *cx, mx_room *r, size_t last_len)
{
    int64_t ms = last_len >= 3900 ? m->o.batch_split_ms : m->o.batch_delay_ms;
    r->batch_gen = (r->batch_gen + 1) & 0xFFFFF;
    uint64_t low = ((uint64_t)r->index << 20) | r->batch_gen;
    rt_send_after(cx, m->self, rt_timeout_new(MX_TAG(TM_BATCH, low)), ms);
}

void mx_on_batch_timer(mx *m, rt_ctx *cx, uint64_t low)
{
    size_t idx = (size_t)(low >> 20);
    if (idx >= m->nrooms)
        return;
    mx_room *r = m->roomv[idx];
    if ((low & 0xFFFFF) != r->batch_gen)
        return; /* a newer piece restarted the quiet period */
    for (mx_in *it = r->in_head; it; it = it->next)
        it->open = false;
    pump(m, cx, r);
}

static bool same_source(const gw_msg_event *a, const gw_msg_event *b)
{
    const char *ta = a->src.thread_id, *tb = b->src.thread_id;
    return strcmp(a->src.user_id, b->src.user_id) == 0 &&
           ((!ta && !tb) || (ta && tb && strcmp(ta, tb) == 0));
}

/* Were the two pieces sent within the quiet period of each other? A sync after a restart or
 * an outage delivers minutes of messages at once: only quick follow-ups are one message (an
 * answered one joined to a new one would make the new one look answered: it would be lost). */
static bool sent_together(const mx *m, const mx_in *tail, int64_t ts)
{
    int64_t window = tail->last_len >= 3900 ? m->o.batch_split_ms : m->o.batch_delay_ms;
    return !tail->last_ts || !ts || (ts >= tail->last_ts && ts - tail->last_ts <= window);
}

/* Queue an event (taken) for the gateway; ts: its origin_server_ts (0: unknown). */
static void enqueue(mx *m, rt_ctx *cx, mx_room *r, gw_msg_event *ev, uint64_t batch, bool batchable,
                    int64_t ts, mx_in **out)
{
    size_t len = strlen(ev->text);
    mx_in *tail = r->in_tail;
    if (batchable && tail && tail->open && tail->ev && same_source(tail->ev, ev) &&
        sent_together(m, tail, ts)) {
        char *joined = rt_xasprintf("%s\n%s", tail->ev->text, ev->text);
        rt_free(tail->ev->text);
        tail->ev->text = joined;
        tail->last_len = len;
        tail->last_ts = ts;
        rt_msg_free(&ev->hdr); /* its batch stays behind tail's (invariant 4) */
        arm_batch(m, cx, r, len);
        *out = NULL;
        return;
    }
    for (mx_in *it = r->in_head; it; it = it->next)
        it->open = false; /* anything else ends the pieces before it */
    mx_in *it = rt_xcalloc(1, sizeof(*it));
    it->ev = ev;
    it->batch = batch;
    mx_batch *b = batch_of(m, batch);
    if (b)
        b->pending++;
    else
        it->batch = 0;
    if (batchable) {
        it->open = true;
        it->last_len = len;
        it->last_ts = ts;
        arm_batch(m, cx, r, len);
    }
    if (r->in_tail)
        r->in_tail->next = it;
    else
        r->in_head = it;
    r->in_tail = it;
    *out = it;
}

/* =================================================================== media */

/* mxc://server/id → the download path (authenticated media when the server has it). */
static char *media_path(mx *m, const char *mxc)
{
    if (!mxc || strncmp(mxc, "mxc://", 6) != 0)
        return NULL;
    const char *server = mxc + 6, *slash = strchr(server, '/');
    if (!slash || slash == server || !slash[1] || strchr(slash + 1, '/'))
        return NULL;
    char *srv = rt_xstrndup(server, (size_t)(slash - server));
    char *es = mx_escape(srv), *ei = mx_escape(slash + 1);
    char *path = rt_xasprintf(m->auth_media ? "/_matrix/client/v1/media/download/%s/%s"
                                            : "/_matrix/media/v3/download/%s/%s",
                              es, ei);
    rt_free(srv);
    rt_free(es);
    rt_free(ei);
    return path;
}

static void media_failed(mx *m, rt_ctx *cx, mx_in *it, mx_room *r, const char *why)
{
    RT_WARN(MX_LOG,
            "Matrix: cannot fetch the attachment of %s in %s: %s; passing the caption "
            "only",
            it->ev ? it->ev->message_id : "?", r->id, why);
    it->waiting = 0;
    pump(m, cx, r);
}

static void start_download(mx *m, rt_ctx *cx, mx_room *r, mx_in *it, const cJSON *content)
{
    const char *url = jstr(content, "url");
    if (!url)
        url = jstr(jget(content, "file"), "url"); /* encrypted media: decrypted in mx_on_media */
    const cJSON *info = jget(content, "info");
    const cJSON *size = jget(info, "size");
    const char *mime = jstr(info, "mimetype");
    char *path = media_path(m, url);
    if (!path)
        return;
    if (cJSON_IsNumber(size) && size->valuedouble > (double)m->o.max_media_bytes) {
        RT_WARN(MX_LOG, "Matrix: attachment in %s is larger than %zu bytes; not downloaded", r->id,
                m->o.max_media_bytes);
        rt_free(path);
        return;
    }
    it->mxc = rt_xstrdup(url);
    it->mime = mime ? rt_xstrdup(mime) : NULL;
    const cJSON *file = jget(content, "file");
    if (!jstr(content, "url") && cJSON_IsObject(file)) {
        char *t = cJSON_PrintUnformatted(file);
        it->file = rt_xstrdup(t ? t : "{}");
        cJSON_free(t);
    }
    const char *body = jstr(content, "filename");
    it->filename = rt_xstrdup(body ? body : (jstr(content, "body") ? jstr(content, "body") : ""));
    it->waiting = 1;
    mx_submit(m, cx, "GET", path, NULL, NULL, 0, 120000, m->o.max_media_bytes,
              mx_req_new(RQ_MEDIA, r, it));
    rt_free(path);
}

void mx_on_media(mx *m, rt_ctx *cx, mx_req *q, rt_io_msg_http_done *d)
{
    char why[256];
    int64_t retry;
    int v = mx_classify(d, why, sizeof(why), &retry, NULL);
    if (v == MX_CANCEL)
        return;
    mx_in *it = q->item;
    if (v != MX_OK || !d->body) {
        media_failed(m, cx, it, q->room, why);
        return;
    }
    if (it->file) { /* AES-256-CTR with the event's key; the SHA-256 must match (§8.5) */
        cJSON *f = cJSON_Parse(it->file);
        unsigned char *plain = NULL;
        int rc = mx_attach_decrypt(f, (const unsigned char *)d->body, d->body_len, &plain);
        cJSON_Delete(f);
        if (rc) {
            media_failed(m, cx, it, q->room,
                         rc == -EBADMSG ? "the encrypted attachment's SHA-256 does not match"
                                        : "the encrypted attachment lacks key, iv or hash");
            return;
        }
        memcpy(d->body, plain, d->body_len); /* same length (CTR) */
        rt_free(plain);
    }
    mx_io_msg *io = mx_io_new(MX_IO_MEDIA, 0, 0);
    io->path = rt_xstrdup(m->o.cache_dir);
    io->data = d->body;
    io->len = d->body_len;
    d->body = NULL;
    io->name = rt_xstrdup(it->filename ? it->filename : "");
    io->mime = it->mime ? rt_xstrdup(it->mime) : NULL;
    io->kind = it->ev ? it->ev->kind : GW_KIND_DOCUMENT;
    mx_io_submit(m, cx, io, mx_req_new(IO_MEDIA, q->room, it));
}

void mx_on_media_saved(mx *m, rt_ctx *cx, mx_req *q, mx_io_done *d)
{
    mx_in *it = q->item;
    if (d->err) {
        media_failed(m, cx, it, q->room, d->msg ? d->msg : rt_strerror(d->err));
        return;
    }
    if (it->ev) {
        it->ev->media = rt_xcalloc(1, sizeof(char *));
        it->ev->media[0] = d->path;
        it->ev->nmedia = 1;
        d->path = NULL;
    }
    MX_STAT(m, downloads, 1);
    it->waiting = 0;
    pump(m, cx, q->room);
}

/* ================================================================ messages */

static bool is_free_room(mx *m, const char *room)
{
    for (size_t i = 0; i < m->o.nfree_rooms; i++)
        if (strcmp(m->o.free_rooms[i], room) == 0)
            return true;
    return false;
}

static bool seen(mx *m, const char *event_id)
{
    uint64_t h = hkey(event_id);
    if (rt_map_get(&m->dedup_set, h))
        return true;
    uint64_t old = m->dedup[m->dedup_at];
    if (old)
        rt_map_del(&m->dedup_set, old);
    m->dedup[m->dedup_at] = h;
    m->dedup_at = (m->dedup_at + 1) % MX_DEDUP;
    rt_map_put(&m->dedup_set, h, (void *)1);
    return false;
}

static void dropped(mx *m, const char *room, const char *event_id, const char *why)
{
    MX_STAT(m, dropped, 1);
    RT_DEBUG(MX_LOG, "Matrix: %s in %s ignored: %s", event_id ? event_id : "event", room, why);
}

/* The original's filters before the rules (§8.5 1-5). NULL: keep; else why it goes. */
static const char *filter(mx *m, const cJSON *ev, const cJSON *content)
{
    const cJSON *ts = jget(ev, "origin_server_ts");
    int64_t t = cJSON_IsNumber(ts) ? (int64_t)ts->valuedouble : 0;
    int64_t now = wall_ms();
    if (m->st == MX_ST_SNAPSHOT && t < m->start_wall_ms - MX_GRACE_MS)
        return "older than the start-up (history)";
    if (t && t < now - MX_CATCHUP_MAX_MS)
        return "older than a day";
    if (jget(jget(ev, "unsigned"), "redacted_because") || !cJSON_IsObject(content) ||
        !content->child)
        return "redacted";
    if (mx_is_edit(content))
        return "an edit";
    const char *mt = jstr(content, "msgtype");
    if (mt && strcmp(mt, "m.notice") == 0)
        return "a notice (bots)";
    if (mx_kind_of(content) < 0)
        return "not a kind the bot handles";
    const char *body = jstr(content, "body");
    if (mx_kind_of(content) == GW_KIND_TEXT && (!body || !*body))
        return "empty";
    return NULL;
}

static char *message_text(const cJSON *content, bool strip_mention, const char *user_id)
{
    const char *body = jstr(content, "body");
    if (mx_kind_of(content) != GW_KIND_TEXT)
        return rt_xstrdup(body ? body : "");
    char *t = mx_reply_to_of(content) && !mx_thread_of(content) ? mx_strip_reply_fallback(body)
                                                                : rt_xstrdup(body);
    if (!strip_mention)
        return t;
    char *s = mx_strip_user_id(t, user_id);
    rt_free(t);
    return s;
}

static gw_msg_event *make_event(mx *m, rt_ctx *cx, mx_room *r, const cJSON *ev,
                                const cJSON *content, const mx_route *rt, bool dm)
{
    const char *sender = jstr(ev, "sender"), *id = jstr(ev, "event_id");
    char *text = message_text(content, rt->strip_mention, m->user_id);
    gw_msg_event *e = gw_event_new(MATRIX_PLATFORM, dm ? "dm" : "group", r->id, sender, text);
    rt_free(text);
    mx_member *p = member_get(r, sender, false);
    e->src.user_name = p && p->name ? rt_xstrdup(p->name) : mx_localpart(sender);
    e->src.chat_name = r->name ? rt_xstrdup(r->name) : NULL;
    if (rt->thread) {
        e->src.thread_id = rt_xstrdup(rt->thread);
        e->reply.thread_id = rt_xstrdup(rt->thread);
    }
    e->reply.reply_to = rt_xstrdup(id);
    e->message_id = rt_xstrdup(id);
    e->kind = mx_kind_of(content);
    e->adapter = rt_self(cx);
    return e;
}

static void on_message(mx *m, rt_ctx *cx, mx_room *r, const cJSON *ev, uint64_t batch)
{
    const char *sender = jstr(ev, "sender"), *id = jstr(ev, "event_id");
    const cJSON *content = jget(ev, "content");
    if (!sender || !id)
        return;
    if (m->user_id && strcmp(sender, m->user_id) == 0)
        return; /* our own */
    if (seen(m, id))
        return;
    const char *why = filter(m, ev, content);
    if (why) {
        dropped(m, r->id, id, why);
        return;
    }
    mx_route_in in = {
        .dm = mx_room_is_dm(r),
        .mentioned = mx_is_mentioned(content, m->user_id, m->localpart),
        .free_room = is_free_room(m, r->id),
        .thread = mx_thread_of(content),
        .event_id = id,
        .require_mention = m->o.require_mention,
        .auto_thread = m->o.auto_thread,
        .dm_mention_threads = m->o.dm_mention_threads,
    };
    in.thread_known = in.thread && mx_thread_known(m, in.thread);
    mx_route rt = mx_route_decide(&in);
    if (!rt.accept) {
        dropped(m, r->id, id, "not addressed to the bot (no mention)");
        return;
    }
    if (rt.thread)
        remember_thread(m, cx, rt.thread);
    gw_msg_event *e = make_event(m, cx, r, ev, content, &rt, in.dm);
    int kind = e->kind;
    bool batchable = kind == GW_KIND_TEXT && e->text[0] != '/' && m->o.batch_delay_ms > 0;
    mx_known_add(m, r, id);
    mx_in *it = NULL;
    const cJSON *ts = jget(ev, "origin_server_ts");
    enqueue(m, cx, r, e, batch, batchable, cJSON_IsNumber(ts) ? (int64_t)ts->valuedouble : 0, &it);
    if (it && kind != GW_KIND_TEXT)
        start_download(m, cx, r, it, content);
    rt_free(r->receipt_want);
    r->receipt_want = rt_xstrdup(id);
    pump(m, cx, r);
}

static void on_timeline(mx *m, rt_ctx *cx, mx_room *r, const cJSON *ev, uint64_t batch)
{
    const char *type = jstr(ev, "type");
    if (!type)
        return;
    if (strcmp(type, "m.room.encrypted") == 0) {
        const char *sender = jstr(ev, "sender");
        if (sender && m->user_id && strcmp(sender, m->user_id) == 0)
            return;
        cJSON *plain = NULL;
        int rc = mx_crypto_decrypt(m->crypto, r->id, ev, &plain);
        if (rc == 0 && plain) {
            on_message(m, cx, r, plain, batch);
            cJSON_Delete(plain);
        } else if (rc != -EAGAIN) {
            MX_STAT(m, dropped, 1); /* the crypto layer said why, unless it is off */
            if (rc == -ENOTSUP && !r->warned_encrypted)
                RT_WARN(MX_LOG,
                        "Matrix: encrypted message in %s ignored: MATRIX_ENCRYPTION is off "
                        "(set MATRIX_ENCRYPTION=true, or use an unencrypted room)",
                        r->id);
            if (rc == -ENOTSUP)
                r->warned_encrypted = true;
        }
        return;
    }
    if (strcmp(type, "m.room.message") == 0)
        on_message(m, cx, r, ev, batch);
}

void mx_redeliver(mx *m, rt_ctx *cx, const char *room_id, cJSON *ev)
{
    mx_room *r = mx_room_get(m, room_id, true);
    on_message(m, cx, r, ev, 0);
    cJSON_Delete(ev);
    mx_send_receipt(m, cx, r);
}

/* ================================================================= invites */

static void start_join(mx *m, rt_ctx *cx, mx_room *r)
{
    r->joining = true;
    char *id = mx_escape(r->id);
    char *path = rt_xasprintf("/_matrix/client/v3/join/%s", id);
    mx_submit(m, cx, "POST", path, "{}", NULL, 0, MX_SEND_TIMEOUT, 0, mx_req_new(RQ_JOIN, r, NULL));
    rt_free(path);
    rt_free(id);
}

void mx_join_retry(mx *m, rt_ctx *cx, mx_room *r)
{
    if (!m->stopping && r->joining && !r->joined)
        start_join(m, cx, r);
}

void mx_on_join(mx *m, rt_ctx *cx, mx_room *r, rt_io_msg_http_done *d)
{
    char why[256];
    int64_t retry = 0;
    int v = mx_classify(d, why, sizeof(why), &retry, NULL);
    if (v == MX_CANCEL)
        return;
    if (v == MX_OK) {
        MX_STAT(m, joins, 1);
        RT_INFO(MX_LOG, "Matrix: joined %s (invited)", r->id);
        return; /* the next sync brings the room */
    }
    if (v == MX_RETRY && ++r->join_attempts < JOIN_ATTEMPTS) {
        int64_t wait = retry > 0 ? retry : m->o.retry_ms << (r->join_attempts - 1);
        RT_WARN(MX_LOG, "Matrix: joining %s failed: %s — retrying in %llds", r->id, why,
                (long long)((wait + 999) / 1000));
        rt_send_after(cx, m->self, rt_timeout_new(MX_TAG(TM_JOIN, r->index)), wait);
        return;
    }
    RT_WARN(MX_LOG, "Matrix: cannot join %s: %s", r->id, why);
    r->joining = false;
}

static void on_invite(mx *m, rt_ctx *cx, const char *room_id, const cJSON *room)
{
    mx_room *r = mx_room_get(m, room_id, true);
    const cJSON *evs = jget(jget(room, "invite_state"), "events"), *ev;
    cJSON_ArrayForEach(ev, (cJSON_IsArray(evs) ? evs : NULL))
    {
        const char *type = jstr(ev, "type"), *key = jstr(ev, "state_key");
        if (type && key && m->user_id && strcmp(type, "m.room.member") == 0 &&
            strcmp(key, m->user_id) == 0 && cJSON_IsTrue(jget(jget(ev, "content"), "is_direct")))
            r->direct_hint = true;
        if (type && strcmp(type, "m.room.name") == 0)
            apply_state(m, r, ev);
    }
    if (r->joined || r->joining)
        return;
    r->join_attempts = 0;
    RT_INFO(MX_LOG, "Matrix: invited to %s; joining", room_id);
    start_join(m, cx, r);
}

/* ================================================================ receipts */

void mx_send_receipt(mx *m, rt_ctx *cx, mx_room *r)
{
    if (!r->receipt_want || r->receipt_busy || m->stopping)
        return;
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "m.fully_read", r->receipt_want);
    cJSON_AddStringToObject(b, "m.read", r->receipt_want);
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    char *id = mx_escape(r->id);
    char *path = rt_xasprintf("/_matrix/client/v3/rooms/%s/read_markers", id);
    mx_submit(m, cx, "POST", path, body, NULL, 0, MX_SEND_TIMEOUT, 0,
              mx_req_new(RQ_RECEIPT, r, NULL));
    r->receipt_busy = true;
    rt_free(r->receipt_want);
    r->receipt_want = NULL;
    rt_free(path);
    rt_free(id);
    cJSON_free(body);
}

void mx_on_receipt(mx *m, rt_ctx *cx, mx_room *r, rt_io_msg_http_done *d)
{
    r->receipt_busy = false;
    if (d->err == -ECANCELED)
        return;
    if (d->err || d->status >= 300)
        RT_DEBUG(MX_LOG, "Matrix: read receipt in %s failed (HTTP %d)", r->id, d->status);
    mx_send_receipt(m, cx, r);
}

/* ==================================================================== sync */

static void apply_joined(mx *m, rt_ctx *cx, const char *room_id, const cJSON *room, bool state_only,
                         uint64_t batch)
{
    mx_room *r = mx_room_get(m, room_id, true);
    if (!r->joined) {
        r->joined = true;
        MX_STAT(m, rooms, 1);
    }
    r->joining = false;
    const cJSON *n = jget(jget(room, "summary"), "m.joined_member_count");
    if (cJSON_IsNumber(n))
        r->summary_joined = (int64_t)n->valuedouble;
    const cJSON *evs = jget(jget(room, "state"), "events"), *ev;
    cJSON_ArrayForEach(ev, (cJSON_IsArray(evs) ? evs : NULL)) apply_state(m, r, ev);
    const cJSON *tl = jget(room, "timeline");
    evs = jget(tl, "events");
    cJSON_ArrayForEach(ev, (cJSON_IsArray(evs) ? evs : NULL))
    {
        if (jstr(ev, "state_key"))
            apply_state(m, r, ev);
        else if (!state_only)
            on_timeline(m, cx, r, ev, batch);
    }
    if (!state_only && cJSON_IsTrue(jget(tl, "limited")) && m->st == MX_ST_SYNC && m->catchup)
        RT_WARN(MX_LOG,
                "Matrix: %s had more new messages than one sync carries (%d); the "
                "oldest were skipped",
                r->id, MX_TIMELINE_LIMIT);
    mx_send_receipt(m, cx, r);
}

void mx_sync_apply(mx *m, rt_ctx *cx, const cJSON *sync, bool state_only, uint64_t batch)
{
    const cJSON *evs = jget(jget(sync, "account_data"), "events"), *ev;
    cJSON_ArrayForEach(ev, (cJSON_IsArray(evs) ? evs : NULL))
    {
        const char *type = jstr(ev, "type");
        if (type && strcmp(type, "m.direct") == 0)
            apply_direct(m, jget(ev, "content"));
    }
    const cJSON *rooms = jget(sync, "rooms"), *room;
    cJSON_ArrayForEach(room, jget(rooms, "join"))
    {
        if (room->string)
            apply_joined(m, cx, room->string, room, state_only, batch);
    }
    cJSON_ArrayForEach(room, jget(rooms, "invite"))
    {
        if (room->string)
            on_invite(m, cx, room->string, room);
    }
    cJSON_ArrayForEach(room, jget(rooms, "leave"))
    {
        mx_room *r = room->string ? mx_room_get(m, room->string, false) : NULL;
        if (r && r->joined) {
            r->joined = false;
            MX_STAT(m, rooms, (uint64_t)-1);
        }
    }
}
