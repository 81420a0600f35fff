/*
 * wa_actor — the WhatsApp adapter actor: answers the webhook's requests (handshake,
 * signature check, notifications → GW_MSG_EVENT) and sends replies through the Graph API.
 *
 * Invariants:
 *   1. Everything in wa_actor belongs to the actor (one worker at a time): no locks.
 *   2. One send in flight (the head of the queue); its DONE is recognised by its tag.
 *   3. A webhook request is answered in the same behaviour that received it.
 *   4. Messages reach the gateway in the order Meta delivered them: one with an attachment
 *      (audio, voice note, image, document, video) waits while a detached fetch actor gets
 *      it (GET <graph>/<media-id> for its URL, then the URL, both with the access token,
 *      at most WA_MEDIA_MAX bytes, saved under cache_dir), and every later message waits
 *      behind it.
 *   5. Every GW_OUT_TEXT with a delivery gets exactly one GW_MSG_SENT (whatsapp.h): its parts
 *      (wa_out with that delivery) are consecutive in the queue and the last carries `last`;
 *      the head's end (head_done) acks after the last part, or at the first failure, when
 *      the rest of its parts leave the queue unsent. Stopping acks nothing: the gateway's
 *      outbox takes back what was in flight when the adapter goes down.
 */
#include "whatsapp.h"

#include "ak_dedupe.h"
#include "ak_lanes.h"
#include "gw.h"
#include "hm_config.h"
#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_http.h"
#include "rt_httpd.h"
#include "rt_log.h"
#include "rt_lws.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"

#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define WA_LOG          "whatsapp"
#define WA_OUT_MAX      4096
#define WA_TRIES        3
#define WA_OUT_PARALLEL 8 /* recipients whose messages are on their way at once */

enum {
    WA_MSG_UPLOADED = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0E03), /* wa_fetched: upload job */
    WA_MSG_START = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0E00),
    WA_MSG_FETCH = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0E01),   /* rt_msg: fetch actor, go */
    WA_MSG_FETCHED = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0E02), /* wa_fetched */
};
#define WA_INQ_MAX 1000

typedef struct wa_fetched {
    rt_msg hdr;
    uint64_t seq;
    char *path; /* the saved file, or NULL */
    char *why;  /* why not, or NULL */
    bool retry; /* uploads: the Graph API failed for now (429, 5xx, network), not the file */
} wa_fetched;

/* A message waiting for its attachment, or behind one. */
typedef struct wa_in {
    gw_msg_event *ev;
    uint64_t seq;
    bool ready;
    char *type; /* for the failure note: "audio", "image", … */
} wa_in;

typedef struct wa_out {
    struct wa_out *next;
    char *to;
    char *text;    /* a text message, or NULL for a file */
    char *path;    /* a MEDIA: file to upload and send, or NULL */
    char *media;   /* the uploaded file's media id, once uploaded */
    char *context; /* the wamid quoted, or NULL */
    int tries;
    bool uploading;
    uint64_t delivery; /* the gateway's outbox entry (invariant 5), or 0 */
    int index;         /* 0-based position among its delivery's parts */
    bool last;         /* the delivery's last part */
    uint64_t tag;      /* its send or upload in flight (HTTP tag / upload seq), 0: none */
    uint64_t http_id;  /* its send in flight */
    bool dropped;      /* an earlier part of its delivery failed: ends unsent when started */
} wa_out;

/* Parts of a delivery that went before one failed: the outbox's next attempt skips them. */
#define WA_SKIP_MAX 64
#define WA_DONE_MAX 512
typedef struct wa_skip {
    uint64_t delivery;
    int sent;
} wa_skip;

typedef struct wa_actor {
    wa_opts o;
    char *auth; /* "Authorization: Bearer …" */
    char *send_url;
    rt_ref gateway;
    rt_ref self;
    bool announced;
    bool stopped;
    ak_lanes lanes; /* wa_out items in per-recipient lanes (set up on first use) */
    bool lanes_ready;
    uint64_t next_tag;
    uint64_t timer_seq;
    uint64_t timer_id;
    wa_in *inq; /* invariant 4 */
    size_t ninq, inq_cap;
    uint64_t fetch_seq;
    wa_skip skip[WA_SKIP_MAX]; /* a ring: the oldest entry is reused */
    size_t skip_next;
    /* deliveries acked as sent lately: a copy the outbox hands over again (its ack came while
     * it was between attempts) is acked again, not posted again */
    uint64_t done[WA_DONE_MAX];
    size_t done_next;
} wa_actor;

struct wa_server {
    rt_httpd *h;
    rt_ref ref;
    int port;
};

static rt_ref gateway_of(wa_actor *a, rt_ctx *cx)
{
    return a->gateway ? a->gateway : rt_whereis(cx, GW_NAME);
}

static void reply_text(rt_ctx *cx, uint64_t req, int status, const char *text)
{
    const char *h[] = {"Content-Type: text/plain; charset=utf-8", NULL};
    (void)rt_httpd_reply(cx, req, status, h, text, strlen(text));
}

/* ---------------------------------------------------------------- inbound */

/* ---- the fetch actor (detached: it writes the file) ---- */

typedef struct wa_fetch {
    rt_ref owner;
    uint64_t seq;
    char *auth;
    char *graph;
    char *media_id;
    char *path;
    uint64_t http;
    int step; /* 0: asking for the URL, 1: downloading */
} wa_fetch;

static void drop_fetched(rt_msg *m)
{
    rt_free(((wa_fetched *)m)->path);
    rt_free(((wa_fetched *)m)->why);
}

static void fetch_end(rt_ctx *cx, wa_fetch *f, bool ok, const char *why)
{
    wa_fetched *r = RT_MSG_NEW(wa_fetched, WA_MSG_FETCHED);
    r->seq = f->seq;
    r->path = ok ? rt_xstrdup(f->path) : NULL;
    r->why = ok ? NULL : rt_xstrdup(why);
    r->hdr.drop = drop_fetched;
    rt_send(cx, f->owner, &r->hdr);
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void fetch_get(rt_ctx *cx, wa_fetch *f, const char *url, size_t max)
{
    const char *hdrs[] = {f->auth, NULL};
    rt_http_request hr = {.url = url,
                          .headers = hdrs,
                          .timeout_ms = 120000,
                          .max_body = max,
                          .max_redirects = 3,
                          .reply_to = rt_self(cx)};
    f->http = rt_http_submit(cx, &hr);
}

static int mkdir_p(const char *dir)
{
    char buf[1024];
    if (rt_strlcpy(buf, dir, sizeof(buf)) >= sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    return mkdir(buf, 0700) != 0 && errno != EEXIST ? -errno : 0;
}

static void fetch_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    wa_fetch *f = state;
    if (m->type == WA_MSG_FETCH && !f->http) {
        char *url = rt_xasprintf("%s/%s", f->graph, f->media_id);
        fetch_get(cx, f, url, 1u << 16);
        rt_free(url);
        return;
    }
    if (m->type != RT_IO_MSG_HTTP_DONE || ((rt_io_msg_http_done *)m)->id != f->http)
        return;
    rt_io_msg_http_done *d = (rt_io_msg_http_done *)m;
    char why[200];
    if (d->err || d->status != 200) {
        snprintf(why, sizeof(why), "%s %s",
                 f->step ? "the download failed" : "the Graph API did not give its URL",
                 d->err == -E2BIG ? "(larger than 25 MB)"
                 : d->err         ? rt_strerror(d->err)
                                  : "(HTTP error)");
        if (!d->err)
            snprintf(why + strlen(why), sizeof(why) - strlen(why), " %d", d->status);
        fetch_end(cx, f, false, why);
        return;
    }
    if (f->step == 0) {
        cJSON *j = cJSON_ParseWithLength(d->body ? d->body : "", d->body_len);
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "url");
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(j, "file_size");
        if (!cJSON_IsString(u) || (strncmp(u->valuestring, "https://", 8) != 0 &&
                                   strncmp(u->valuestring, "http://", 7) != 0)) {
            cJSON_Delete(j);
            fetch_end(cx, f, false, "the Graph API gave no media URL");
            return;
        }
        if (cJSON_IsNumber(sz) && sz->valuedouble > (double)WA_MEDIA_MAX) {
            cJSON_Delete(j);
            fetch_end(cx, f, false, "it is larger than 25 MB");
            return;
        }
        f->step = 1;
        fetch_get(cx, f, u->valuestring, WA_MEDIA_MAX);
        cJSON_Delete(j);
        return;
    }
    const char *slash = strrchr(f->path, '/');
    char dir[1024];
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - f->path) : 1, slash ? f->path : ".");
    int rc = mkdir_p(dir);
    if (!rc)
        rc = hm_write_atomic(f->path, d->body ? d->body : "", d->body_len, 0600);
    if (rc) {
        snprintf(why, sizeof(why), "it could not be saved (%s)", rt_strerror(rc));
        fetch_end(cx, f, false, why);
        return;
    }
    fetch_end(cx, f, true, NULL);
}

static void fetch_fini(void *state)
{
    wa_fetch *f = state;
    rt_free(f->auth);
    rt_free(f->graph);
    rt_free(f->media_id);
    rt_free(f->path);
    rt_free(f);
}

static const rt_actor_type fetch_type = {"whatsapp-fetch", fetch_behave, fetch_fini, 0};

/* Hand the ready messages at the head of the queue to the gateway (invariant 4). */
static void inq_flush(wa_actor *a, rt_ctx *cx)
{
    rt_ref gw = gateway_of(a, cx);
    size_t i = 0;
    for (; i < a->ninq && a->inq[i].ready; i++) {
        gw_msg_event *ev = a->inq[i].ev;
        rt_free(a->inq[i].type);
        if (!gw_event_send(cx, gw, ev))
            RT_WARN(WA_LOG, "WhatsApp: no gateway; a message was dropped");
    }
    memmove(a->inq, a->inq + i, (a->ninq - i) * sizeof(*a->inq));
    a->ninq -= i;
}

static void on_fetched(wa_actor *a, rt_ctx *cx, wa_fetched *r)
{
    for (size_t i = 0; i < a->ninq; i++) {
        wa_in *in = &a->inq[i];
        if (in->seq != r->seq || in->ready)
            continue;
        gw_msg_event *ev = in->ev;
        if (r->path) {
            ev->media = rt_xcalloc(1, sizeof(char *));
            ev->media[0] = r->path;
            ev->nmedia = 1;
            r->path = NULL;
        } else {
            RT_WARN(WA_LOG, "WhatsApp: the %s of message %s could not be fetched: %s", in->type,
                    ev->message_id, r->why ? r->why : "?");
            char *t = rt_xasprintf("%s%s[The user sent a WhatsApp %s message, but it could not be "
                                   "fetched: %s]",
                                   ev->text, *ev->text ? "\n\n" : "", in->type,
                                   r->why ? r->why : "unknown error");
            rt_free(ev->text);
            ev->text = t;
            ev->kind = GW_KIND_TEXT;
        }
        in->ready = true;
        break;
    }
    inq_flush(a, cx);
}

/* Queue ev (invariant 4); m: its attachment to fetch, or NULL. */
static void inq_push(wa_actor *a, rt_ctx *cx, gw_msg_event *ev, const wa_inmsg *m)
{
    if (a->ninq >= WA_INQ_MAX) {
        RT_WARN(WA_LOG, "WhatsApp: too many messages waiting for attachments; %s dropped",
                ev->message_id);
        rt_msg_free(&ev->hdr);
        return;
    }
    if (a->ninq == a->inq_cap) {
        a->inq_cap = a->inq_cap ? a->inq_cap * 2 : 8;
        a->inq = rt_xrealloc(a->inq, a->inq_cap * sizeof(*a->inq));
    }
    wa_in *in = &a->inq[a->ninq++];
    memset(in, 0, sizeof(*in));
    in->ev = ev;
    in->seq = ++a->fetch_seq;
    in->ready = m == NULL;
    if (!m)
        return;
    in->type = rt_xstrdup(m->kind == GW_KIND_PHOTO      ? "image"
                          : m->kind == GW_KIND_DOCUMENT ? "document"
                          : m->kind == GW_KIND_VIDEO    ? "video"
                          : m->kind == GW_KIND_VOICE    ? "voice"
                                                        : "audio");
    wa_fetch *f = rt_xcalloc(1, sizeof(*f));
    f->owner = a->self;
    f->seq = in->seq;
    f->auth = rt_xstrdup(a->auth);
    f->graph = rt_xstrdup(a->o.graph_base);
    f->media_id = rt_xstrdup(m->media_id);
    char *name = wa_media_name(m);
    f->path = rt_xasprintf("%s/%s", a->o.cache_dir ? a->o.cache_dir : ".", name);
    rt_free(name);
    rt_spawn_opts so = {.flags = RT_SPAWN_DETACHED};
    rt_ref r = rt_spawn(cx, &fetch_type, f, &so);
    if (!r || !rt_send(cx, r, rt_msg_new(WA_MSG_FETCH, sizeof(rt_msg)))) {
        wa_fetched fake = {.seq = in->seq, .why = (char *)"the download could not start"};
        on_fetched(a, cx, &fake);
    }
}

static void on_notification(wa_actor *a, rt_ctx *cx, rt_httpd_msg_request *m)
{
    const char *sig = rt_httpd_header(m, "X-Hub-Signature-256");
    if (!wa_signature_ok(a->o.app_secret, m->body, m->body_len, sig)) {
        RT_WARN(WA_LOG,
                "WhatsApp: webhook POST from %s refused: %s X-Hub-Signature-256 "
                "(is WHATSAPP_APP_SECRET the app secret of this Meta app?)",
                m->peer, sig ? "wrong" : "no");
        reply_text(cx, m->req, 401, "invalid signature\n");
        return;
    }
    wa_inmsg *v = NULL;
    int n = wa_parse_notification(m->body, &v);
    if (n < 0) {
        reply_text(cx, m->req, 400, "invalid JSON\n");
        return;
    }
    reply_text(cx, m->req, 200, "ok\n"); /* Meta redelivers anything not answered 200 */
    for (int i = 0; i < n; i++) {
        const wa_inmsg *x = &v[i];
        gw_msg_event *ev = gw_event_new(WHATSAPP_PLATFORM, "dm", x->from, x->from,
                                        x->media_id ? x->caption : x->text);
        ev->src.user_name = x->name ? rt_xstrdup(x->name) : NULL;
        ev->src.chat_name = x->name ? rt_xstrdup(x->name) : NULL;
        ev->message_id = rt_xstrdup(x->id);
        ev->reply.reply_to = rt_xstrdup(x->id);
        ev->adapter = a->self;
        if (x->media_id)
            ev->kind = x->kind;
        inq_push(a, cx, ev, x->media_id ? x : NULL);
    }
    wa_inmsgs_free(v, n);
    inq_flush(a, cx);
}

static void on_request(wa_actor *a, rt_ctx *cx, rt_httpd_msg_request *m)
{
    if (strcmp(m->path, a->o.path) != 0) {
        reply_text(cx, m->req, 404, "not found\n");
        return;
    }
    if (strcmp(m->method, "GET") == 0) {
        char *ch = wa_handshake(m->query, a->o.verify_token);
        if (!ch) {
            RT_WARN(WA_LOG, "WhatsApp: webhook verification refused (hub.verify_token does not "
                            "match WHATSAPP_VERIFY_TOKEN)");
            reply_text(cx, m->req, 403, "forbidden\n");
            return;
        }
        RT_INFO(WA_LOG, "WhatsApp: webhook verified by Meta");
        reply_text(cx, m->req, 200, ch);
        rt_free(ch);
        return;
    }
    if (strcmp(m->method, "POST") == 0) {
        on_notification(a, cx, m);
        return;
    }
    const char *h[] = {"Allow: GET, POST", NULL};
    (void)rt_httpd_reply(cx, m->req, 405, h, "", 0);
}

/* ---------------------------------------------------------------- outbound */

static void out_free(wa_out *o)
{
    rt_free(o->to);
    rt_free(o->text);
    rt_free(o->path);
    rt_free(o->media);
    rt_free(o->context);
    rt_free(o);
}

static ak_lanes *lanes(wa_actor *a)
{
    if (!a->lanes_ready) {
        ak_lanes_init(&a->lanes, WA_OUT_PARALLEL, WA_OUT_MAX);
        a->lanes_ready = true;
    }
    return &a->lanes;
}

static void out_free_cb(void *item, void *arg)
{
    (void)arg;
    out_free(item);
}

/* o (started) is over: out of its lane and freed. */
static void out_pop(wa_actor *a, wa_out *o)
{
    ak_lanes_done(&a->lanes, o);
    out_free(o);
}

static int64_t now_ns(rt_ctx *cx)
{
    return rt_now_ns(rt_ctx_runtime(cx));
}

/* ---- files: MEDIA:<path> lines are uploaded (POST <graph>/<phone-id>/media) by a detached
 * upload actor (it reads the file), then sent as audio / image / video / document ---- */

static const char *media_type_of(const char *path, const char **mime)
{
    static const struct {
        const char *ext, *type, *mime;
    } m[] = {{".ogg", "audio", "audio/ogg"},    {".opus", "audio", "audio/ogg"},
             {".mp3", "audio", "audio/mpeg"},   {".m4a", "audio", "audio/mp4"},
             {".aac", "audio", "audio/aac"},    {".amr", "audio", "audio/amr"},
             {".jpg", "image", "image/jpeg"},   {".jpeg", "image", "image/jpeg"},
             {".png", "image", "image/png"},    {".mp4", "video", "video/mp4"},
             {".3gp", "video", "video/3gpp"},   {".pdf", "document", "application/pdf"},
             {".txt", "document", "text/plain"}};
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    for (size_t i = 0; dot && i < sizeof(m) / sizeof(m[0]); i++)
        if (strcasecmp(dot, m[i].ext) == 0) {
            *mime = m[i].mime;
            return m[i].type;
        }
    *mime = "application/octet-stream";
    return "document";
}

typedef struct wa_upload {
    rt_ref owner;
    uint64_t seq;
    char *auth;
    char *url;
    char *path;
    uint64_t http;
} wa_upload;

static void upload_end(rt_ctx *cx, wa_upload *u, const char *media_id, const char *why, bool retry)
{
    wa_fetched *r = RT_MSG_NEW(wa_fetched, WA_MSG_UPLOADED);
    r->seq = u->seq;
    r->retry = retry;
    r->path = media_id ? rt_xstrdup(media_id) : NULL; /* the media id */
    r->why = why ? rt_xstrdup(why) : NULL;
    r->hdr.drop = drop_fetched;
    rt_send(cx, u->owner, &r->hdr);
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void upload_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    wa_upload *u = state;
    if (m->type == WA_MSG_FETCH && !u->http) {
        char *data = NULL;
        size_t len = 0;
        int rc = hm_read_file(u->path, WA_MEDIA_MAX, &data, &len);
        if (rc) {
            char why[300];
            snprintf(why, sizeof(why), "%s: %s", u->path, rt_strerror(rc));
            upload_end(cx, u, NULL, why, false);
            return;
        }
        const char *mime = NULL;
        (void)media_type_of(u->path, &mime);
        char bd[48];
        snprintf(bd, sizeof(bd), "hermeswa%016llx", (unsigned long long)(u->seq * 2654435761u));
        const char *slash = strrchr(u->path, '/');
        const char *base = slash ? slash + 1 : u->path;
        char *head = rt_xasprintf(
            "--%s\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n"
            "--%s\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\n%s\r\n"
            "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
            "Content-Type: %s\r\n\r\n",
            bd, bd, mime, bd, strpbrk(base, "\"\r\n") ? "file" : base, mime);
        char *tail = rt_xasprintf("\r\n--%s--\r\n", bd);
        size_t hl = strlen(head), tl = strlen(tail);
        char *body = rt_xmalloc(hl + len + tl);
        memcpy(body, head, hl);
        memcpy(body + hl, data, len);
        memcpy(body + hl + len, tail, tl);
        rt_free(head);
        rt_free(tail);
        rt_free(data);
        char *ct = rt_xasprintf("Content-Type: multipart/form-data; boundary=%s", bd);
        const char *hdrs[] = {u->auth, ct, NULL};
        rt_http_request hr = {.method = "POST",
                              .url = u->url,
                              .headers = hdrs,
                              .body = body,
                              .body_len = hl + len + tl,
                              .timeout_ms = 120000,
                              .max_body = 1u << 20,
                              .reply_to = rt_self(cx)};
        u->http = rt_http_submit(cx, &hr);
        rt_free(body);
        rt_free(ct);
        return;
    }
    if (m->type != RT_IO_MSG_HTTP_DONE || ((rt_io_msg_http_done *)m)->id != u->http)
        return;
    rt_io_msg_http_done *d = (rt_io_msg_http_done *)m;
    cJSON *j = d->body ? cJSON_ParseWithLength(d->body, d->body_len) : NULL;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (!d->err && d->status == 200 && cJSON_IsString(id) && *id->valuestring) {
        upload_end(cx, u, id->valuestring, NULL, false);
    } else {
        char why[200];
        if (d->err)
            snprintf(why, sizeof(why), "the upload failed (%s)", rt_strerror(d->err));
        else
            snprintf(why, sizeof(why), "the upload failed (HTTP %d)", d->status);
        upload_end(cx, u, NULL, why, d->err || d->status == 429 || d->status >= 500);
    }
    cJSON_Delete(j);
}

static void upload_fini(void *state)
{
    wa_upload *u = state;
    rt_free(u->auth);
    rt_free(u->url);
    rt_free(u->path);
    rt_free(u);
}

static const rt_actor_type upload_type = {"whatsapp-upload", upload_behave, upload_fini, 0};

static void pump(wa_actor *a, rt_ctx *cx);

/* ---- acknowledgements (invariant 5) ---- */

static void ack(wa_actor *a, rt_ctx *cx, uint64_t delivery, const wa_verdict *v)
{
    if (!delivery)
        return;
    gw_ack(cx, gateway_of(a, cx), delivery, v ? v->err : 0, v && v->permanent,
           v ? v->retry_after_ms : 0, v && v->err ? v->why : NULL);
}

static wa_skip *skip_find(wa_actor *a, uint64_t delivery)
{
    for (size_t i = 0; delivery && i < WA_SKIP_MAX; i++)
        if (a->skip[i].delivery == delivery)
            return &a->skip[i];
    return NULL;
}

typedef struct drop_arg {
    uint64_t delivery;
    const wa_out *except;
} drop_arg;

static void drop_rest(void *item, void *arg)
{
    wa_out *o = item;
    drop_arg *d = arg;
    if (o != d->except && o->delivery == d->delivery)
        o->dropped = true;
}

/* o (started) ended: v NULL or v->err 0 when it went (or was given up on its own, a file that
 * cannot be read), else how it failed; maybe_sent: it got no answer that says whether it
 * went (the Cloud API has no idempotency key), so the outbox's next attempt skips it too —
 * never posted twice. Then what may go next. */
static void head_done(wa_actor *a, rt_ctx *cx, wa_out *o, const wa_verdict *v, bool maybe_sent)
{
    uint64_t del = o->delivery;
    if (del && v && v->err) {
        wa_skip *k = skip_find(a, del);
        if (!k && (o->index > 0 || maybe_sent)) {
            k = &a->skip[a->skip_next];
            a->skip_next = (a->skip_next + 1) % WA_SKIP_MAX;
            k->delivery = del;
        }
        if (k) /* the parts before this one went (and this one may have) */
            k->sent = o->index + (maybe_sent ? 1 : 0);
        ack(a, cx, del, v);
        ak_lanes_each(&a->lanes, drop_rest, &(drop_arg){del, o}); /* the rest of it, unsent */
        out_pop(a, o);
    } else {
        if (del && o->last) {
            wa_skip *k = skip_find(a, del);
            if (k)
                k->delivery = 0;
            ak_ring_add(a->done, WA_DONE_MAX, &a->done_next, del);
            ack(a, cx, del, NULL);
        }
        out_pop(a, o);
    }
    pump(a, cx);
}

typedef struct find_arg {
    uint64_t tag;
    wa_out *found;
} find_arg;

static void find_tag(void *item, void *arg)
{
    wa_out *o = item;
    find_arg *f = arg;
    if (o->tag && o->tag == f->tag)
        f->found = o;
}

/* The started item whose send or upload carries tag, or NULL (stale). */
static wa_out *out_by_tag(wa_actor *a, uint64_t tag)
{
    find_arg f = {tag, NULL};
    if (tag && a->lanes_ready)
        ak_lanes_each(&a->lanes, find_tag, &f);
    return f.found;
}

static void on_uploaded(wa_actor *a, rt_ctx *cx, wa_fetched *r)
{
    wa_out *o = out_by_tag(a, r->seq);
    if (!o || !o->uploading)
        return;
    o->uploading = false;
    o->tag = 0;
    if (r->path) {
        o->media = r->path;
        r->path = NULL;
        ak_lanes_again(&a->lanes, o); /* now the message itself */
        pump(a, cx);
        return;
    }
    if (o->delivery && r->retry) {
        wa_verdict v = {.err = -EIO};
        snprintf(v.why, sizeof(v.why), "%s", r->why ? r->why : "the upload failed");
        RT_WARN(WA_LOG, "WhatsApp: a file for %s was not sent (%s); the gateway will try again",
                o->to, v.why);
        head_done(a, cx, o, &v, false);
        return;
    }
    RT_WARN(WA_LOG, "WhatsApp: a file for %s could not be sent: %s", o->to, r->why ? r->why : "?");
    head_done(a, cx, o, NULL, false);
}

/* Start the head file's upload; false when it could not start (the head is dropped). */
static bool upload_head(wa_actor *a, rt_ctx *cx, wa_out *o)
{
    wa_upload *u = rt_xcalloc(1, sizeof(*u));
    u->owner = a->self;
    u->seq = o->tag = ++a->next_tag;
    u->auth = rt_xstrdup(a->auth);
    u->url = rt_xasprintf("%s/%s/media", a->o.graph_base, a->o.phone_number_id);
    u->path = rt_xstrdup(o->path);
    rt_spawn_opts so = {.flags = RT_SPAWN_DETACHED};
    rt_ref r = rt_spawn(cx, &upload_type, u, &so);
    if (!r || !rt_send(cx, r, rt_msg_new(WA_MSG_FETCH, sizeof(rt_msg)))) {
        o->tag = 0;
        return false;
    }
    o->uploading = true;
    return true;
}

/* Start o: its upload, or the message. False when it ended at once (popped). */
static bool out_start(wa_actor *a, rt_ctx *cx, wa_out *o)
{
    if (o->dropped) { /* an earlier part of its delivery failed (acked then) */
        out_pop(a, o);
        return false;
    }
    if (o->path && !o->media) {
        if (!upload_head(a, cx, o)) {
            wa_verdict v = {.err = -ENOMEM};
            snprintf(v.why, sizeof(v.why), "the upload could not start");
            head_done(a, cx, o, o->delivery ? &v : NULL, false);
            return false;
        }
        return true;
    }
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "messaging_product", "whatsapp");
    cJSON_AddStringToObject(b, "recipient_type", "individual");
    cJSON_AddStringToObject(b, "to", o->to);
    if (o->media) {
        const char *mime = NULL;
        const char *type = media_type_of(o->path, &mime);
        cJSON_AddStringToObject(b, "type", type);
        cJSON *f = cJSON_AddObjectToObject(b, type);
        cJSON_AddStringToObject(f, "id", o->media);
        if (strcmp(type, "document") == 0) {
            const char *slash = strrchr(o->path, '/');
            cJSON_AddStringToObject(f, "filename", slash ? slash + 1 : o->path);
        }
    } else {
        cJSON_AddStringToObject(b, "type", "text");
        cJSON *t = cJSON_AddObjectToObject(b, "text");
        cJSON_AddBoolToObject(t, "preview_url", false);
        cJSON_AddStringToObject(t, "body", o->text);
    }
    if (o->context)
        cJSON_AddStringToObject(cJSON_AddObjectToObject(b, "context"), "message_id", o->context);
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    const char *hdrs[] = {a->auth, "Content-Type: application/json", NULL};
    o->tag = ++a->next_tag;
    rt_http_request hr = {.method = "POST",
                          .url = a->send_url,
                          .headers = hdrs,
                          .body = body,
                          .body_len = strlen(body),
                          .timeout_ms = 30000,
                          .max_body = 1u << 20,
                          .reply_to = a->self,
                          .tag = o->tag};
    o->http_id = rt_http_submit(cx, &hr);
    cJSON_free(body);
    return true;
}

/* Start what may go: the first message of each recipient that has none on its way, up to
 * WA_OUT_PARALLEL at once (ak_lanes); a recipient's messages keep their order. Arms the
 * retry timer. */
static void pump(wa_actor *a, rt_ctx *cx)
{
    if (!a->lanes_ready || a->stopped)
        return;
    for (int round = 0; round < 64; round++) { /* bounded: items that end at once */
        void *go[WA_OUT_PARALLEL];
        size_t n = ak_lanes_ready(&a->lanes, now_ns(cx), go, WA_OUT_PARALLEL);
        bool ended = false;
        for (size_t i = 0; i < n; i++)
            ended |= !out_start(a, cx, go[i]);
        if (!ended)
            break;
    }
    int64_t now = now_ns(cx), next = ak_lanes_next_due(&a->lanes, now);
    if (a->timer_id) {
        (void)rt_timer_cancel(cx, a->timer_id);
        a->timer_id = 0;
    }
    if (next)
        a->timer_id = rt_send_after(cx, a->self, rt_timeout_new(++a->timer_seq),
                                    (next - now + 999999) / 1000000);
}

static void on_done(wa_actor *a, rt_ctx *cx, rt_io_msg_http_done *d)
{
    wa_out *o = out_by_tag(a, d->tag);
    if (!o)
        return; /* stale */
    o->tag = 0;
    o->http_id = 0;
    wa_verdict v;
    wa_send_verdict(d->err, d->status, d->body, d->body_len, d->retry_after_s, &v);
    /* no answer that says whether it went: it is not sent again (by us or the outbox) */
    bool unsure = d->err ? (d->err == -ETIMEDOUT || d->err == -ECONNRESET || d->err == -EPIPE)
                         : (d->status == 502 || d->status == 504);
    if (d->status == 401 || (v.code == 190 && !d->err))
        RT_ERROR(WA_LOG, "WhatsApp: the Graph API refused WHATSAPP_ACCESS_TOKEN (401); it may "
                         "have expired — create a permanent System User token");
    if (o->delivery) { /* the gateway's outbox retries (invariant 5) */
        if (v.err == 0)
            RT_DEBUG(WA_LOG, "WhatsApp: part %d of a reply to %s sent", o->index + 1, o->to);
        else if (unsure)
            RT_ERROR(WA_LOG,
                     "WhatsApp: a message to %s got no answer (%s); it may have been sent, so "
                     "it is not sent again",
                     o->to, v.why);
        else if (v.permanent)
            RT_ERROR(WA_LOG, "WhatsApp: Meta refused a message to %s (%s)%s", o->to, v.why,
                     v.code == 131047 ? " — more than 24 hours since the user last wrote: "
                                        "WhatsApp then allows only template messages"
                                      : "");
        else
            RT_WARN(WA_LOG,
                    "WhatsApp: a message to %s was not sent (%s); the gateway will try "
                    "again",
                    o->to, v.why);
        head_done(a, cx, o, &v, unsure);
        return;
    }
    if (!d->err && d->status >= 200 && d->status < 300) {
        head_done(a, cx, o, NULL, false);
        return;
    }
    bool retry = !v.permanent && v.err != -EACCES && !unsure;
    if (retry && ++o->tries <= WA_TRIES) {
        int64_t ms = v.retry_after_ms > 0 ? v.retry_after_ms : a->o.backoff_ms << (o->tries - 1);
        RT_WARN(WA_LOG, "WhatsApp: sending failed (%s); retrying in %.1fs", v.why,
                (double)ms / 1e3);
        ak_lanes_retry(&a->lanes, o, now_ns(cx) + ms * 1000000); /* its recipient waits */
        pump(a, cx);
        return;
    }
    RT_WARN(WA_LOG, "WhatsApp: a message to %s could not be sent (%s)", o->to, v.why);
    head_done(a, cx, o, NULL, false);
}

/* A "MEDIA:<path>" line (quotes and back-ticks removed) → the path (new), or NULL. */
static char *media_line(const char *line, size_t n)
{
    while (n && (*line == ' ' || *line == '\t')) {
        line++;
        n--;
    }
    if (n < 7 || strncmp(line, "MEDIA:", 6) != 0)
        return NULL;
    line += 6;
    n -= 6;
    while (n && strchr(" `\"'", *line)) {
        line++;
        n--;
    }
    while (n && strchr(" `\"'\r", line[n - 1]))
        n--;
    return n && line[0] == '/' ? rt_xstrndup(line, n) : NULL;
}

static void out_push(wa_actor *a, wa_out *o)
{
    if (ak_lanes_push(lanes(a), o->to, o->delivery, o) != 0) /* room was checked */
        out_free(o);
}

static wa_out *out_new(const char *to)
{
    wa_out *o = rt_xcalloc(1, sizeof(*o));
    o->to = rt_xstrdup(to);
    return o;
}

static void on_out_text(wa_actor *a, rt_ctx *cx, gw_out_text *t)
{
    if (!t->text || !t->to.chat_id || !*t->to.chat_id) {
        wa_verdict v = {.err = -EINVAL, .permanent = true};
        snprintf(v.why, sizeof(v.why), "no recipient or no text");
        ack(a, cx, t->delivery, &v);
        return;
    }
    if (t->delivery) {
        /* the outbox hands a delivery over again when its ack timer ran out: one still queued
         * here is not queued twice (its ack answers both), one sent lately is acked again */
        if (ak_lanes_claim(lanes(a), t->delivery, NULL, NULL) == AK_LANES_QUEUED)
            return;
        if (ak_ring_has(a->done, WA_DONE_MAX, t->delivery)) {
            ack(a, cx, t->delivery, NULL);
            return;
        }
    }
    /* MEDIA:<path> lines become files, sent after the text */
    char *paths[8];
    size_t np = 0;
    char *kept = rt_xstrdup(t->text);
    char *k = kept;
    for (const char *p = t->text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *mp = media_line(p, n);
        if (mp && np < sizeof(paths) / sizeof(paths[0])) {
            paths[np++] = mp;
        } else {
            rt_free(mp);
            memmove(k, p, nl ? n + 1 : n);
            k += nl ? n + 1 : n;
        }
        p += nl ? n + 1 : n;
    }
    while (k > kept && strchr(" \t\r\n", k[-1])) /* the lines taken out leave a tail */
        k--;
    *k = '\0';
    bool has_text = false;
    for (const char *q = kept; *q; q++)
        has_text |= !strchr(" \t\r\n", *q);
    char **parts = has_text ? gw_chunk(kept, WA_MAX_MESSAGE) : NULL;
    rt_free(kept);
    /* the parts, in order, in a list of their own first */
    wa_out *head = NULL, **tail = &head;
    size_t n = 0;
    for (size_t i = 0; parts && parts[i]; i++, n++) {
        wa_out *o = out_new(t->to.chat_id);
        /* WhatsApp's bold is *x*: models write **x** */
        char *s = rt_xstrdup(parts[i]);
        char *w = s;
        for (const char *r = s; *r; r++) {
            if (r[0] == '*' && r[1] == '*')
                r++;
            *w++ = *r;
        }
        *w = '\0';
        o->text = s;
        if (i == 0 && t->part <= 1 && t->to.reply_to)
            o->context = rt_xstrdup(t->to.reply_to);
        *tail = o;
        tail = &o->next;
    }
    gw_chunks_free(parts);
    for (size_t i = 0; i < np; i++, n++) {
        wa_out *o = out_new(t->to.chat_id);
        o->path = paths[i];
        *tail = o;
        tail = &o->next;
    }
    /* a delivery the outbox sends again after a failure: the parts that went are skipped */
    wa_skip *sk = skip_find(a, t->delivery);
    int skip = sk ? sk->sent : 0;
    for (int i = 0; head && i < skip; i++) {
        wa_out *o = head;
        head = o->next;
        out_free(o);
        n--;
    }
    if (ak_lanes_count(lanes(a)) + n > WA_OUT_MAX) {
        RT_WARN(WA_LOG, "WhatsApp: too many messages waiting; %s dropped",
                t->delivery ? "a reply (the gateway will try again)" : "one");
        while (head) {
            wa_out *o = head;
            head = o->next;
            out_free(o);
        }
        wa_verdict v = {.err = -ENOBUFS};
        snprintf(v.why, sizeof(v.why), "the adapter's send queue is full");
        ack(a, cx, t->delivery, &v); /* sk stays: what went is still remembered */
        return;
    }
    if (sk) /* head_done makes a new one if this attempt fails too */
        sk->delivery = 0;
    if (!head) { /* nothing (left) to send */
        ack(a, cx, t->delivery, NULL);
        return;
    }
    int index = skip;
    for (wa_out *o = head, *next; o; o = next) {
        next = o->next;
        o->next = NULL;
        o->delivery = t->delivery;
        o->index = index++;
        o->last = next == NULL;
        out_push(a, o);
    }
    pump(a, cx);
}

/* ---------------------------------------------------------------- dispatch */

static void cancel_send(void *item, void *arg)
{
    wa_out *o = item;
    if (o->http_id)
        rt_http_cancel(arg, o->http_id);
    o->http_id = 0;
    o->tag = 0;
}

static void behave(rt_ctx *cx, void *state, rt_msg *m)
{
    wa_actor *a = state;
    a->self = rt_self(cx);
    if (a->stopped && m->type != RT_HTTPD_MSG_REQUEST)
        return;
    switch (m->type) {
    case WA_MSG_START: {
        rt_ref gw = gateway_of(a, cx);
        gw_caps caps = {
            .max_message = WA_MAX_MESSAGE, .markdown = false, .progress = true, .acks = true};
        if (gw) {
            rt_send(cx, gw,
                    gw_adapter_up_new(WHATSAPP_PLATFORM, a->self, &caps, a->o.home_channel));
            a->announced = true;
        }
        break;
    }
    case RT_HTTPD_MSG_REQUEST:
        if (a->stopped)
            reply_text(cx, ((rt_httpd_msg_request *)m)->req, 503, "stopping\n");
        else
            on_request(a, cx, (rt_httpd_msg_request *)m);
        break;
    case RT_IO_MSG_HTTP_DONE: on_done(a, cx, (rt_io_msg_http_done *)m); break;
    case WA_MSG_FETCHED: on_fetched(a, cx, (wa_fetched *)m); break;
    case WA_MSG_UPLOADED: on_uploaded(a, cx, (wa_fetched *)m); break;
    case RT_MSG_TIMEOUT:
        if (((rt_msg_timeout *)m)->tag == a->timer_seq) {
            a->timer_id = 0;
            pump(a, cx);
        }
        break;
    case GW_OUT_TEXT: on_out_text(a, cx, (gw_out_text *)m); break;
    case GW_OUT_DELTA:
    case GW_OUT_TYPING:
    case GW_OUT_TURN_END:
    case RT_HTTPD_MSG_GONE: break;
    case RT_MSG_STOP:
        a->stopped = true;
        if (a->lanes_ready)
            ak_lanes_each(&a->lanes, cancel_send, cx);
        if (a->timer_id)
            (void)rt_timer_cancel(cx, a->timer_id);
        if (a->announced) {
            rt_ref gw = gateway_of(a, cx);
            if (gw)
                rt_send(cx, gw, gw_adapter_down_new(WHATSAPP_PLATFORM, a->self));
        }
        break;
    default: break;
    }
}

static void actor_free(void *state)
{
    wa_actor *a = state;
    if (a->lanes_ready)
        ak_lanes_fini(&a->lanes, out_free_cb, NULL);
    for (size_t i = 0; i < a->ninq; i++) {
        rt_msg_free(&a->inq[i].ev->hdr);
        rt_free(a->inq[i].type);
    }
    rt_free(a->inq);
    rt_free(a->auth);
    rt_free(a->send_url);
    wa_opts_fini(&a->o);
    rt_free(a);
}

static const rt_actor_type wa_type = {"whatsapp", behave, actor_free, 0};

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

int wa_start(rt_ctx *cx, rt_lws *lws, const wa_opts *o, rt_ref gateway, wa_server **out, char *err,
             size_t errlen)
{
    if (!lws || !o || !o->access_token || !o->phone_number_id || !o->app_secret ||
        !o->verify_token || !o->path || !out) {
        snprintf(err, errlen, "WhatsApp: incomplete settings or no HTTP service");
        return -EINVAL;
    }
    wa_actor *a = rt_xcalloc(1, sizeof(*a));
    a->o.access_token = dupn(o->access_token);
    a->o.phone_number_id = dupn(o->phone_number_id);
    a->o.app_secret = dupn(o->app_secret);
    a->o.verify_token = dupn(o->verify_token);
    a->o.graph_base = dupn(o->graph_base ? o->graph_base : WA_DEFAULT_GRAPH);
    a->o.host = dupn(o->host ? o->host : "127.0.0.1");
    a->o.path = dupn(o->path);
    a->o.home_channel = dupn(o->home_channel);
    if (o->cache_dir) {
        a->o.cache_dir = dupn(o->cache_dir);
    } else {
        char *home = hm_config_home();
        a->o.cache_dir = rt_xasprintf("%s/cache/whatsapp", home);
        rt_free(home);
    }
    a->o.port = o->port;
    a->o.backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 2000;
    a->auth = rt_xasprintf("Authorization: Bearer %s", o->access_token);
    a->send_url = rt_xasprintf("%s/%s/messages", a->o.graph_base, a->o.phone_number_id);
    a->gateway = gateway;
    char host[64];
    snprintf(host, sizeof(host), "%s", a->o.host);
    rt_runtime *rt = rt_lws_runtime(lws);
    rt_ref ref = rt_spawn(cx, &wa_type, a, NULL);
    if (!ref) {
        snprintf(err, errlen, "WhatsApp: could not start the adapter actor");
        return -ENOMEM;
    }
    rt_httpd_route route = {"/", ref};
    rt_httpd_opts ho = {
        .host = host, .port = o->port, .routes = &route, .nroutes = 1, .max_body = 1u << 20};
    int rc = 0;
    rt_httpd *h = rt_httpd_start(rt, &ho, &rc);
    if (!h) {
        snprintf(err, errlen, "WhatsApp: cannot listen for the webhook on %s:%d: %s", host, o->port,
                 rt_strerror(rc));
        rt_stop(cx, ref, RT_EXIT_STOPPED);
        return rc ? rc : -EIO;
    }
    wa_server *s = rt_xcalloc(1, sizeof(*s));
    s->h = h;
    s->ref = ref;
    s->port = rt_httpd_port(h);
    rt_send(cx, ref, rt_msg_new(WA_MSG_START, sizeof(rt_msg)));
    *out = s;
    return 0;
}

int wa_port(const wa_server *s)
{
    return s ? s->port : 0;
}

rt_ref wa_ref(const wa_server *s)
{
    return s ? s->ref : 0;
}

void wa_stop(rt_ctx *cx, wa_server *s, int64_t grace_ms)
{
    if (!s)
        return;
    rt_httpd_stop(s->h, grace_ms > 0 && grace_ms < 5000 ? grace_ms : 1000);
    rt_stop(cx, s->ref, RT_EXIT_STOPPED);
    rt_free(s);
}
