/*
 * gw_media — attachments in the prompt (transcripts, image and document notes) and voice
 * replies, for the chat actors (see "media and voice" in gw_int.h).
 *
 * Invariants:
 *   1. A chat's events reach the agent in arrival order: once an event waits in the queue,
 *      every later event waits behind it, whether it has attachments or not.
 *   2. Each queued event with attachments has exactly one job; the job answers once
 *      (GW_MEDIA_DONE) and ends. A job whose chat has gone just ends.
 *   3. Every upload and download is capped: audio files at 25 MB (vo_audio), document text
 *      at 100 KB, synthesized speech at VO_TTS_MAX_AUDIO.
 *   4. /stop while a job runs (gw_mediaq_cancel) empties the queue: its events are never
 *      answered, its jobs are stopped, and a GW_MEDIA_DONE already on its way matches no
 *      entry (sequence numbers are never reused) and is ignored.
 *
 * Threads: queue functions on the chat's worker; jobs are detached actors (their own thread:
 * they read files); the voice-mode table is locked.
 */
#include "gw_cmds.h"

#include "cron_pyjson.h"
#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_http.h"
#include "rt_log.h"
#include "rt_util.h"
#include "vo_audio.h"

#include <openssl/evp.h>

#include <ctype.h>
#include <stdlib.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define DOC_TEXT_MAX    (100 * 1024) /* the original's MAX_TEXT_INJECT_BYTES */
#define STT_TIMEOUT_MS  120000
#define VOICE_FILE_MAX  (64 * 1024)
#define VOICE_MODE_FILE "gateway_voice_mode.json"
#define LOG             "gateway"

static const char PLACEHOLDER[] = "(The user sent a message with no text content)";

/* =========================================================== classification */

static const char *ext_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    return dot ? dot : "";
}

static bool ext_in(const char *ext, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(ext, list[i]) == 0)
            return true;
    return false;
}

static const char *const image_exts[] = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp"};
static const char *const audio_exts[] = {".ogg", ".oga",  ".opus", ".mp3",  ".wav", ".m4a",
                                         ".aac", ".flac", ".mpga", ".mpeg", ".weba"};
/* the original's _TEXT_EXTENSIONS */
static const char *const text_exts[] = {".txt",  ".md",  ".csv",  ".log", ".json", ".xml",
                                        ".yaml", ".yml", ".toml", ".ini", ".cfg"};

/* What Python's mimetypes.guess_type says for a document's extension, reduced to the part
 * that matters: 't' text/…, 'a' application/…, 0 anything else or unknown. */
static char doc_family(const char *ext)
{
    if (ext_in(ext, text_exts, RT_ARRAY_LEN(text_exts)))
        return 't';
    static const char *const text_more[] = {".html", ".htm", ".css", ".py",  ".c",   ".h",  ".js",
                                            ".tsv",  ".rtx", ".vcf", ".ics", ".srt", ".vtt"};
    static const char *const app[] = {
        ".pdf", ".doc",  ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".odt",  ".ods", ".odp",
        ".rtf", ".zip",  ".gz",   ".tgz", ".tar",  ".7z",  ".rar",  ".epub", ".sh",  ".bin",
        ".exe", ".wasm", ".sql",  ".apk", ".jar",  ".bz2", ".xz",   ".ps",   ".eps", ".dmg"};
    if (ext_in(ext, text_more, RT_ARRAY_LEN(text_more)))
        return 't';
    if (ext_in(ext, app, RT_ARRAY_LEN(app)))
        return 'a';
    return 0;
}

int gw_media_class(const char *path, int kind)
{
    const char *ext = ext_of(path);
    int c = 0;
    if (kind == GW_KIND_PHOTO || ext_in(ext, image_exts, RT_ARRAY_LEN(image_exts)))
        c |= GW_MEDIA_IMAGE;
    /* the original: any audio file, or any file of a voice or audio message */
    if (kind == GW_KIND_VOICE || kind == GW_KIND_AUDIO ||
        (kind != GW_KIND_VIDEO && ext_in(ext, audio_exts, RT_ARRAY_LEN(audio_exts))))
        c |= GW_MEDIA_AUDIO;
    if (kind == GW_KIND_DOCUMENT && doc_family(ext))
        c |= GW_MEDIA_DOC;
    return c;
}

bool gw_media_wants(const gw_msg_event *ev)
{
    for (size_t i = 0; i < ev->nmedia; i++)
        if (ev->media[i] && gw_media_class(ev->media[i], ev->kind))
            return true;
    return false;
}

/* ================================================================ the text */

static void prepend(char **text, const char *prefix)
{
    char *t = *text && **text ? rt_xasprintf("%s\n\n%s", prefix, *text) : rt_xstrdup(prefix);
    rt_free(*text);
    *text = t;
}

static bool valid_utf8(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 9;
        if (k == 9 || (c == 0) || i + k >= n + (k ? 0 : 1))
            return false;
        for (size_t j = 1; j <= k; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

/* The original's display name of a cached document: the part after "doc_<id>_", with
 * characters other than word characters, '.', '-' and ' ' replaced by '_'. New. */
static char *display_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *u1 = strchr(base, '_');
    const char *u2 = u1 ? strchr(u1 + 1, '_') : NULL;
    char *d = rt_xstrdup(u2 ? u2 + 1 : base);
    for (char *p = d; *p; p++)
        if (!((unsigned char)*p >= 0x80 || isalnum((unsigned char)*p) || strchr("_.- ", *p)))
            *p = '_';
    return d;
}

static void describe_document(char **text, const char *path)
{
    char fam = doc_family(ext_of(path));
    if (!fam)
        return;
    char *name = display_name(path);
    char *note;
    if (fam == 't') {
        char *data = NULL;
        size_t len = 0;
        if (hm_read_file(path, DOC_TEXT_MAX, &data, &len) == 0 && valid_utf8(data, len)) {
            char *inj = rt_xasprintf("[Content of %s]:\n%s", name, data);
            prepend(text, inj);
            rt_free(inj);
        } else {
            RT_DEBUG(LOG, "document %s: content not included (too large or not UTF-8)", path);
        }
        rt_free(data);
        note = rt_xasprintf("[The user sent a text document: '%s'. Its content has been included "
                            "below. The file is also saved at: %s]",
                            name, path);
    } else {
        note = rt_xasprintf("[The user sent a document: '%s'. The file is saved at: %s. Ask the "
                            "user what they'd like you to do with it.]",
                            name, path);
    }
    /* the original: f"{context_note}\n\n{message_text}", even when the text is empty */
    char *t = rt_xasprintf("%s\n\n%s", note, *text ? *text : "");
    rt_free(*text);
    *text = t;
    rt_free(note);
    rt_free(name);
}

char *gw_media_compose(const char *user_text, int kind, char *const *paths, size_t n,
                       const gw_stt_result *stt, bool stt_enabled, bool *no_provider)
{
    char *text = rt_xstrdup(user_text ? user_text : "");
    if (no_provider)
        *no_provider = false;
    rt_buf b;
    /* images: the original's note when no vision model could describe them */
    rt_buf_init(&b, SIZE_MAX / 2);
    for (size_t i = 0; i < n; i++) {
        if (!(gw_media_class(paths[i], kind) & GW_MEDIA_IMAGE))
            continue;
        const gw_stt_result *r = stt ? &stt[i] : NULL;
        if (b.len)
            rt_buf_append_str(&b, "\n\n");
        if (r && r->status == GW_STT_OK && r->transcript)
            rt_buf_printf(&b,
                          "[The user sent an image~ Here's what I can see:\n%s]\n[If you need a "
                          "closer look, use vision_analyze with image_url: %s ~]",
                          r->transcript, paths[i]);
        else if (r && r->status == GW_STT_CRASHED)
            rt_buf_printf(&b,
                          "[The user sent an image but something went wrong when I tried to look "
                          "at it~ You can try examining it yourself with vision_analyze using "
                          "image_url: %s]",
                          paths[i]);
        else
            rt_buf_printf(&b,
                          "[The user sent an image but I couldn't quite see it this time (>_<) You "
                          "can try looking at it yourself with vision_analyze using image_url: "
                          "%s]",
                          paths[i]);
    }
    if (b.len)
        prepend(&text, rt_buf_cstr(&b));
    rt_buf_reset(&b);
    /* audio: transcripts */
    bool any_audio = false;
    for (size_t i = 0; i < n; i++) {
        if (!(gw_media_class(paths[i], kind) & GW_MEDIA_AUDIO))
            continue;
        any_audio = true;
        if (!stt_enabled)
            continue;
        const gw_stt_result *r = stt ? &stt[i] : NULL;
        if (b.len)
            rt_buf_append_str(&b, "\n\n");
        if (r && r->status == GW_STT_OK) {
            rt_buf_printf(&b, "[The user sent a voice message~ Here's what they said: \"%s\"]",
                          r->transcript ? r->transcript : "");
        } else if (r && r->status == GW_STT_NO_PROVIDER) {
            rt_buf_append_str(&b, "[The user sent a voice message but I can't listen to it right "
                                  "now \xe2\x80\x94 no STT provider is configured. A direct "
                                  "message has already been sent to the user with setup "
                                  "instructions.]");
            if (no_provider)
                *no_provider = true;
        } else if (r && r->status == GW_STT_FAILED) {
            rt_buf_printf(&b,
                          "[The user sent a voice message but I had trouble transcribing it~ (%s)]",
                          r->error ? r->error : "unknown error");
        } else {
            rt_buf_append_str(&b, "[The user sent a voice message but something went wrong when I "
                                  "tried to listen to it~ Let them know!]");
        }
    }
    if (any_audio && !stt_enabled) {
        prepend(&text,
                "[The user sent voice message(s), but transcription is disabled in config.]");
    } else if (b.len) {
        /* the Discord placeholder for an empty message is redundant next to a transcript */
        const char *t = text + strspn(text, " \t\r\n");
        size_t tl = strlen(t);
        while (tl && strchr(" \t\r\n", t[tl - 1]))
            tl--;
        if (tl == strlen(PLACEHOLDER) && strncmp(t, PLACEHOLDER, tl) == 0) {
            rt_free(text);
            text = rt_xstrdup("");
        }
        prepend(&text, rt_buf_cstr(&b));
    }
    rt_buf_fini(&b);
    /* documents */
    if (kind == GW_KIND_DOCUMENT)
        for (size_t i = 0; i < n; i++)
            describe_document(&text, paths[i]);
    return text;
}

/* ================================================================ vision */

#define VISION_IMAGE_MAX (20u << 20)
#define VISION_PROMPT                                                                              \
    "Describe everything visible in this image in thorough detail. Include any text, code, "       \
    "data, objects, people, layout, colors, and any other notable visual information."

/* The auxiliary vision model (agent-core §2.4): auxiliary.vision.{base_url,model,api_key}
 * (or AUXILIARY_VISION_BASE_URL / _MODEL / _API_KEY) for a direct endpoint, else OpenRouter
 * with OPENROUTER_API_KEY and google/gemini-3-flash-preview, else none. */
typedef struct vision_cfg {
    char *url; /* …/chat/completions, NULL: no vision model */
    char *model;
    char *key;
    bool openrouter;
} vision_cfg;

static const char *cfg_env(const hm_config *c, const char *var, const char *node)
{
    const char *v = c ? hm_config_getenv(c, var, NULL) : getenv(var);
    if (v && *v)
        return v;
    const cJSON *aux = c ? hm_config_node(c, "auxiliary") : NULL;
    const cJSON *vis = cJSON_IsObject(aux) ? cJSON_GetObjectItemCaseSensitive(aux, "vision") : NULL;
    const cJSON *x = cJSON_IsObject(vis) ? cJSON_GetObjectItemCaseSensitive(vis, node) : NULL;
    return cJSON_IsString(x) && *x->valuestring ? x->valuestring : NULL;
}

static void vision_load(const hm_config *c, vision_cfg *v)
{
    memset(v, 0, sizeof(*v));
    const char *base = cfg_env(c, "AUXILIARY_VISION_BASE_URL", "base_url");
    const char *model = cfg_env(c, "AUXILIARY_VISION_MODEL", "model");
    const char *key = cfg_env(c, "AUXILIARY_VISION_API_KEY", "api_key");
    const char *orkey =
        c ? hm_config_getenv(c, "OPENROUTER_API_KEY", NULL) : getenv("OPENROUTER_API_KEY");
    if (base && *base) {
        size_t n = strlen(base);
        while (n && base[n - 1] == '/')
            n--;
        v->url = rt_xasprintf("%.*s/chat/completions", (int)n, base);
        const char *ok = key ? key : (c ? hm_config_getenv(c, "OPENAI_API_KEY", NULL) : NULL);
        v->key = rt_xstrdup(ok ? ok : "");
        v->model = rt_xstrdup(model ? model : "gpt-4o-mini");
    } else if (orkey && *orkey) {
        v->url = rt_xstrdup("https://openrouter.ai/api/v1/chat/completions");
        v->key = rt_xstrdup(orkey);
        v->model = rt_xstrdup(model ? model : "google/gemini-3-flash-preview");
        v->openrouter = true;
    }
}

static void vision_fini(vision_cfg *v)
{
    rt_free(v->url);
    rt_free(v->model);
    rt_free(v->key);
    memset(v, 0, sizeof(*v));
}

static const char *image_mime(const char *path)
{
    const char *e = ext_of(path);
    return strcasecmp(e, ".png") == 0    ? "image/png"
           : strcasecmp(e, ".gif") == 0  ? "image/gif"
           : strcasecmp(e, ".webp") == 0 ? "image/webp"
           : strcasecmp(e, ".bmp") == 0  ? "image/bmp"
                                         : "image/jpeg";
}

/* The chat completion asking for a description of path (new JSON), or NULL with *err. */
static char *vision_body(const vision_cfg *v, const char *path, char **err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = hm_read_file(path, VISION_IMAGE_MAX, &data, &len);
    if (rc) {
        *err = rt_xasprintf("%s: %s", path, rt_strerror(rc));
        return NULL;
    }
    size_t blen = 4 * ((len + 2) / 3) + 1;
    unsigned char *b64 = rt_xmalloc(blen);
    EVP_EncodeBlock(b64, (const unsigned char *)data, (int)len);
    rt_free(data);
    char *url = rt_xasprintf("data:%s;base64,%s", image_mime(path), (const char *)b64);
    rt_free(b64);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", v->model);
    cJSON *msgs = cJSON_AddArrayToObject(j, "messages");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON *content = cJSON_AddArrayToObject(m, "content");
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "type", "text");
    cJSON_AddStringToObject(t, "text", VISION_PROMPT);
    cJSON_AddItemToArray(content, t);
    cJSON *im = cJSON_CreateObject();
    cJSON_AddStringToObject(im, "type", "image_url");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(im, "image_url"), "url", url);
    cJSON_AddItemToArray(content, im);
    cJSON_AddItemToArray(msgs, m);
    cJSON_AddNumberToObject(j, "temperature", 0.1);
    rt_free(url);
    char *p = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char *out = rt_xstrdup(p);
    cJSON_free(p);
    return out;
}

/* The description in a chat completion (new), or NULL. */
static char *vision_answer(const rt_io_msg_http_done *d)
{
    if (d->err || d->status != 200 || !d->body)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(d->body, d->body_len);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0), "message"),
        "content");
    char *r = NULL;
    if (cJSON_IsString(c)) {
        const char *s = c->valuestring;
        while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
            s++;
        if (*s)
            r = rt_xstrdup(s);
    }
    cJSON_Delete(j);
    return r;
}

/* ================================================================ the job */

typedef struct media_job {
    rt_ref chat;
    uint64_t seq;
    int kind;
    char *text;
    char **paths;
    size_t n;
    hm_config *cfg;
    vo_stt_cfg stt;
    gw_stt_result *res; /* per path: transcript, or an image's description */
    uint64_t *http;
    size_t waiting;
    bool started;
    vision_cfg vis;
} media_job;

static void drop_done(rt_msg *m)
{
    gw_media_done *d = (gw_media_done *)m;
    rt_free(d->text);
    rt_free(d->notice);
}

static void job_finish(rt_ctx *cx, media_job *j)
{
    bool no_provider = false;
    char *text =
        gw_media_compose(j->text, j->kind, j->paths, j->n, j->res, j->stt.enabled, &no_provider);
    gw_media_done *d = RT_MSG_NEW(gw_media_done, GW_MEDIA_DONE);
    d->seq = j->seq;
    d->text = text;
    if (no_provider)
        d->notice = rt_xstrdup(
            "\xf0\x9f\x8e\xa4 I received your voice message but can't transcribe it \xe2\x80\x94 "
            "no speech-to-text provider is configured.\n\nTo enable voice: set "
            "VOICE_TOOLS_OPENAI_KEY (or OPENAI_API_KEY) in ~/.hermes/.env and keep "
            "`stt.enabled: true` in config.yaml, then restart the gateway.");
    d->hdr.drop = drop_done;
    rt_send(cx, j->chat, &d->hdr); /* a chat that has gone: dropped (invariant 2) */
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void job_start(rt_ctx *cx, media_job *j)
{
    j->started = true;
    vo_stt_cfg_load(j->cfg, &j->stt);
    for (size_t i = 0; i < j->n && j->stt.enabled; i++) {
        if (!(gw_media_class(j->paths[i], j->kind) & GW_MEDIA_AUDIO))
            continue;
        gw_stt_result *r = &j->res[i];
        char *err = vo_stt_validate(j->paths[i]);
        if (err) {
            r->status = GW_STT_FAILED;
            r->error = err;
            continue;
        }
        if (!j->stt.api_key) {
            r->status = GW_STT_NO_PROVIDER;
            r->error = vo_stt_no_provider();
            continue;
        }
        vo_http_req hr;
        if (vo_stt_request(&j->stt, j->paths[i], &hr, &err) != 0) {
            r->status = GW_STT_FAILED;
            r->error = err;
            continue;
        }
        rt_http_request req = {.timeout_ms = STT_TIMEOUT_MS,
                               .max_body = 1u << 20,
                               .reply_to = rt_self(cx),
                               .tag = i,
                               .mode = RT_HTTP_BUFFER};
        vo_http_fill(&hr, &req);
        j->http[i] = rt_http_submit(cx, &req);
        vo_http_req_fini(&hr);
        r->status = -1; /* waiting */
        j->waiting++;
    }
    vision_load(j->cfg, &j->vis);
    for (size_t i = 0; i < j->n && j->vis.url; i++) {
        if (!(gw_media_class(j->paths[i], j->kind) & GW_MEDIA_IMAGE) || j->http[i])
            continue;
        char *err = NULL;
        char *body = vision_body(&j->vis, j->paths[i], &err);
        if (!body) {
            RT_WARN(LOG, "Vision auto-analysis error: %s", err);
            rt_free(err);
            j->res[i].status = GW_STT_CRASHED;
            continue;
        }
        char *auth = rt_xasprintf("Authorization: Bearer %s", j->vis.key);
        const char *hdrs[] = {
            auth, "Content-Type: application/json",
            j->vis.openrouter ? "X-OpenRouter-Title: Hermes Agent" : NULL,
            j->vis.openrouter ? "HTTP-Referer: https://hermes-agent.nousresearch.com" : NULL, NULL};
        rt_http_request req = {.method = "POST",
                               .url = j->vis.url,
                               .headers = hdrs,
                               .body = body,
                               .body_len = strlen(body),
                               .timeout_ms = STT_TIMEOUT_MS,
                               .max_body = 1u << 20,
                               .reply_to = rt_self(cx),
                               .tag = i,
                               .mode = RT_HTTP_BUFFER};
        j->http[i] = rt_http_submit(cx, &req);
        rt_free(auth);
        rt_free(body);
        j->res[i].status = -1;
        j->waiting++;
    }
    if (!j->waiting)
        job_finish(cx, j);
}

static void job_http_done(rt_ctx *cx, media_job *j, rt_io_msg_http_done *d)
{
    if (d->tag >= j->n || j->http[d->tag] != d->id)
        return;
    j->http[d->tag] = 0;
    gw_stt_result *r = &j->res[d->tag];
    if (gw_media_class(j->paths[d->tag], j->kind) & GW_MEDIA_IMAGE) {
        r->transcript = vision_answer(d);
        r->status = r->transcript ? GW_STT_OK : GW_STT_FAILED;
        if (!r->transcript)
            RT_WARN(LOG, "vision analysis of %s failed (%s, HTTP %d)", j->paths[d->tag],
                    d->err ? rt_strerror(d->err) : "no description", d->status);
        if (--j->waiting == 0)
            job_finish(cx, j);
        return;
    }
    char *text = NULL, *err = NULL;
    if (vo_stt_parse(&j->stt, d, &text, &err) == 0) {
        r->status = GW_STT_OK;
        r->transcript = text;
        RT_INFO(LOG, "transcribed %s (%s, %zu chars)", j->paths[d->tag], j->stt.model,
                strlen(text));
    } else {
        r->status = GW_STT_FAILED;
        r->error = err;
        RT_WARN(LOG, "transcription of %s failed: %s", j->paths[d->tag], err);
    }
    if (--j->waiting == 0)
        job_finish(cx, j);
}

static void job_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    media_job *j = state;
    if (m->type == GW_MEDIA_START && !j->started)
        job_start(cx, j);
    else if (m->type == RT_IO_MSG_HTTP_DONE)
        job_http_done(cx, j, (rt_io_msg_http_done *)m);
}

static void job_fini(void *state)
{
    media_job *j = state;
    rt_free(j->text);
    for (size_t i = 0; i < j->n; i++) {
        rt_free(j->paths[i]);
        rt_free(j->res[i].transcript);
        rt_free(j->res[i].error);
    }
    rt_free(j->paths);
    rt_free(j->res);
    rt_free(j->http);
    vo_stt_cfg_fini(&j->stt);
    vision_fini(&j->vis);
    hm_config_unref(j->cfg);
    rt_free(j);
}

static const rt_actor_type job_type = {"media-job", job_behave, job_fini, 0};

/* ================================================================ the queue */

typedef struct mq_entry {
    gw_msg_event *ev;
    uint64_t seq;
    bool ready;
    char *notice;
    rt_ref job; /* describing its attachments, 0 when none (ready) */
} mq_entry;

struct gw_mediaq {
    mq_entry *q;
    size_t n, cap;
    uint64_t next_seq;
    uint64_t voice[16]; /* input ids that were voice messages (a ring; 0: free) */
};

static gw_mediaq *mq_get(gw_mediaq **q)
{
    if (!*q)
        *q = rt_xcalloc(1, sizeof(**q));
    return *q;
}

static rt_ref start_job(rt_ctx *cx, gw_shared *sh, const gw_msg_event *ev, uint64_t seq)
{
    media_job *j = rt_xcalloc(1, sizeof(*j));
    j->chat = rt_self(cx);
    j->seq = seq;
    j->kind = ev->kind;
    j->text = rt_xstrdup(ev->text ? ev->text : "");
    j->n = ev->nmedia;
    j->paths = rt_xcalloc(j->n ? j->n : 1, sizeof(char *));
    j->res = rt_xcalloc(j->n ? j->n : 1, sizeof(*j->res));
    j->http = rt_xcalloc(j->n ? j->n : 1, sizeof(uint64_t));
    for (size_t i = 0; i < j->n; i++)
        j->paths[i] = rt_xstrdup(ev->media[i] ? ev->media[i] : "");
    j->cfg = sh->cfg ? hm_config_ref(sh->cfg) : NULL;
    rt_spawn_opts o = {.flags = RT_SPAWN_DETACHED};
    rt_ref r = rt_spawn(cx, &job_type, j, &o);
    if (!r)
        return 0;
    rt_msg *go = rt_msg_new(GW_MEDIA_START, sizeof(rt_msg));
    return rt_send(cx, r, go) ? r : 0;
}

bool gw_mediaq_intake(rt_ctx *cx, gw_mediaq **qp, gw_shared *sh, gw_msg_event *ev)
{
    bool wants = gw_media_wants(ev);
    if (!wants && (!*qp || !(*qp)->n))
        return false;
    gw_mediaq *q = mq_get(qp);
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 4;
        q->q = rt_xrealloc(q->q, q->cap * sizeof(*q->q));
    }
    mq_entry *e = &q->q[q->n++];
    memset(e, 0, sizeof(*e));
    e->seq = ++q->next_seq;
    e->ev = gw_event_take(ev, GW_MSG_EVENT);
    e->ready = !wants;
    if (wants && !(e->job = start_job(cx, sh, e->ev, e->seq))) {
        RT_WARN(LOG, "could not start the attachment job; the message goes on as it is");
        e->ready = true;
    }
    return true;
}

void gw_mediaq_done(gw_mediaq *q, gw_media_done *d)
{
    for (size_t i = 0; q && i < q->n; i++) {
        mq_entry *e = &q->q[i];
        if (e->seq != d->seq || e->ready)
            continue;
        rt_free(e->ev->text);
        e->ev->text = d->text;
        d->text = NULL;
        e->notice = d->notice;
        d->notice = NULL;
        e->ready = true;
        e->job = 0;
        return;
    }
}

size_t gw_mediaq_cancel(rt_ctx *cx, gw_mediaq *q, rt_ref store, rt_ref adapter,
                        const char *session_id)
{
    bool describing = false;
    for (size_t i = 0; q && i < q->n; i++)
        describing |= !q->q[i].ready;
    if (!describing)
        return 0; /* nothing is being described: the queue drains by itself */
    size_t n = q->n;
    for (size_t i = 0; i < n; i++) {
        mq_entry *e = &q->q[i];
        if (e->job) /* its answer, if one is on its way, matches no entry any more */
            (void)rt_stop(cx, e->job, RT_EXIT_STOPPED);
        RT_INFO(LOG, "/stop: %s message %.80s dropped before it reached the agent",
                e->ready ? "a waiting" : "an attachment's",
                e->ev->message_id ? e->ev->message_id : "(no id)");
        gw_inbox_done(cx, store, e->ev); /* answered: crash recovery must not run it */
        if (adapter)
            rt_send(cx, adapter,
                    gw_out_turn_end_new(&e->ev->reply, GW_OUTCOME_CANCELLED, session_id));
        rt_msg_free(&e->ev->hdr);
        rt_free(e->notice);
    }
    q->n = 0;
    return n;
}

gw_msg_event *gw_mediaq_pop(gw_mediaq *q, char **notice)
{
    *notice = NULL;
    if (!q || !q->n || !q->q[0].ready)
        return NULL;
    gw_msg_event *ev = q->q[0].ev;
    *notice = q->q[0].notice;
    memmove(q->q, q->q + 1, (q->n - 1) * sizeof(*q->q));
    q->n--;
    return ev;
}

bool gw_mediaq_pending(const gw_mediaq *q)
{
    return q && q->n;
}

void gw_mediaq_free(gw_mediaq *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++) {
        rt_msg_free(&q->q[i].ev->hdr);
        rt_free(q->q[i].notice);
    }
    rt_free(q->q);
    rt_free(q);
}

void gw_mediaq_voice_input(gw_mediaq **qp, uint64_t input_id)
{
    gw_mediaq *q = mq_get(qp);
    for (size_t i = 0; i < RT_ARRAY_LEN(q->voice); i++)
        if (!q->voice[i]) {
            q->voice[i] = input_id;
            return;
        }
    q->voice[input_id % RT_ARRAY_LEN(q->voice)] = input_id; /* full: forget an old one */
}

bool gw_mediaq_take_voice(gw_mediaq *q, uint64_t upto)
{
    bool any = false;
    for (size_t i = 0; q && i < RT_ARRAY_LEN(q->voice); i++)
        if (q->voice[i] && q->voice[i] <= upto) {
            q->voice[i] = 0;
            any = true;
        }
    return any;
}

/* ============================================================ voice modes */

static pthread_mutex_t vm_lock = PTHREAD_MUTEX_INITIALIZER;
static cJSON *vm_table; /* {chat_id: mode} as loaded and changed */
static char *vm_home;   /* whose file vm_table holds */

static bool valid_mode(const char *m)
{
    return strcmp(m, "off") == 0 || strcmp(m, "voice_only") == 0 || strcmp(m, "all") == 0;
}

static char *vm_path(const char *home)
{
    return rt_xasprintf("%s/%s", home ? home : ".", VOICE_MODE_FILE);
}

/* Load home's file once (the original reads it at start-up); vm_lock held. */
static void vm_load_locked(const char *home)
{
    const char *h = home ? home : ".";
    if (vm_table && vm_home && strcmp(vm_home, h) == 0)
        return;
    cJSON_Delete(vm_table);
    rt_free(vm_home);
    vm_home = rt_xstrdup(h);
    vm_table = cJSON_CreateObject();
    char *path = vm_path(home);
    char *data = NULL;
    size_t len = 0;
    if (hm_read_file(path, VOICE_FILE_MAX, &data, &len) == 0) {
        cJSON *j = cJSON_ParseWithLength(data, len);
        const cJSON *it;
        if (cJSON_IsObject(j))
            cJSON_ArrayForEach(it, j)
            {
                if (cJSON_IsString(it) && valid_mode(it->valuestring) && it->string)
                    cJSON_AddStringToObject(vm_table, it->string, it->valuestring);
            }
        cJSON_Delete(j);
    }
    rt_free(data);
    rt_free(path);
}

const char *gw_voice_mode(gw_shared *sh, const char *chat_id, char *buf, size_t len)
{
    const char *r = NULL;
    pthread_mutex_lock(&vm_lock);
    vm_load_locked(sh->home);
    const cJSON *v = chat_id ? cJSON_GetObjectItemCaseSensitive(vm_table, chat_id) : NULL;
    if (cJSON_IsString(v)) {
        rt_strlcpy(buf, v->valuestring, len);
        r = buf;
    }
    pthread_mutex_unlock(&vm_lock);
    return r;
}

static void vm_set(rt_ctx *cx, gw_shared *sh, const char *chat_id, const char *mode)
{
    pthread_mutex_lock(&vm_lock);
    vm_load_locked(sh->home);
    cJSON_DeleteItemFromObjectCaseSensitive(vm_table, chat_id);
    cJSON_AddStringToObject(vm_table, chat_id, mode);
    char *json = cron_pyjson(vm_table, 2, true); /* json.dumps(…, indent=2) */
    pthread_mutex_unlock(&vm_lock);
    char *path = vm_path(sh->home);
    if (sh->io) {
        size_t n = strlen(json);
        gw_io_write(cx, sh->io, path, json, n, 0600, 0, 0);
    } else {
        int rc = hm_write_atomic(path, json, strlen(json), 0600);
        if (rc)
            RT_WARN(LOG, "Failed to save voice modes: %s", rt_strerror(rc));
        rt_free(json);
    }
    rt_free(path);
}

char *gw_voice_command(rt_ctx *cx, gw_shared *sh, const char *chat_id, const char *args)
{
    char a[32];
    size_t n = 0;
    const char *p = args ? args : "";
    while (*p && isspace((unsigned char)*p))
        p++;
    for (; *p && n + 1 < sizeof(a); p++)
        a[n++] = (char)tolower((unsigned char)*p);
    while (n && isspace((unsigned char)a[n - 1]))
        n--;
    a[n] = '\0';
    const char *id = chat_id ? chat_id : "";
    if (strcmp(a, "on") == 0 || strcmp(a, "enable") == 0) {
        vm_set(cx, sh, id, "voice_only");
        return rt_xstrdup("Voice mode enabled.\nI'll reply with voice when you send voice "
                          "messages.\nUse /voice tts to get voice replies for all messages.");
    }
    if (strcmp(a, "off") == 0 || strcmp(a, "disable") == 0) {
        vm_set(cx, sh, id, "off");
        return rt_xstrdup("Voice mode disabled. Text-only replies.");
    }
    if (strcmp(a, "tts") == 0) {
        vm_set(cx, sh, id, "all");
        return rt_xstrdup("Auto-TTS enabled.\nAll replies will include a voice message.");
    }
    if (strcmp(a, "channel") == 0 || strcmp(a, "join") == 0 || strcmp(a, "leave") == 0)
        return rt_xstrdup("Voice channels are not supported on this platform.");
    char buf[16];
    const char *mode = gw_voice_mode(sh, id, buf, sizeof(buf));
    if (!mode)
        mode = "off";
    if (strcmp(a, "status") == 0) {
        const char *label = strcmp(mode, "voice_only") == 0 ? "On (voice reply to voice messages)"
                            : strcmp(mode, "all") == 0      ? "TTS (voice reply to all messages)"
                                                            : "Off (text only)";
        return rt_xasprintf("Voice mode: %s", label);
    }
    /* anything else toggles: off → on, on/all → off */
    if (strcmp(mode, "off") == 0) {
        vm_set(cx, sh, id, "voice_only");
        return rt_xstrdup("Voice mode enabled.");
    }
    vm_set(cx, sh, id, "off");
    return rt_xstrdup("Voice mode disabled.");
}

/* ============================================================ voice reply */

typedef struct tts_job {
    rt_ref adapter;
    gw_target to;
    char *text;
    char *home;
    hm_config *cfg;
    vo_tts_cfg tts;
    char *path;
    uint64_t http;
} tts_job;

static void tts_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    tts_job *j = state;
    if (m->type == GW_MEDIA_START && !j->http) {
        vo_tts_cfg_load(j->cfg, &j->tts);
        char *why = vo_tts_unavailable(&j->tts);
        j->path = why ? NULL : vo_tts_output_path(j->home, true);
        if (why || !j->path) {
            RT_WARN(LOG, "Auto voice reply TTS failed: %s",
                    why ? why : "the audio folder could not be created");
            rt_free(why);
            rt_exit(cx, RT_EXIT_NORMAL);
            return;
        }
        vo_http_req hr;
        vo_tts_request(&j->tts, j->text, true, &hr);
        rt_http_request req = {.timeout_ms = VO_TTS_TIMEOUT_MS,
                               .max_body = VO_TTS_MAX_AUDIO,
                               .reply_to = rt_self(cx),
                               .mode = RT_HTTP_BUFFER};
        vo_http_fill(&hr, &req);
        j->http = rt_http_submit(cx, &req);
        vo_http_req_fini(&hr);
        return;
    }
    if (m->type != RT_IO_MSG_HTTP_DONE || ((rt_io_msg_http_done *)m)->id != j->http)
        return;
    rt_io_msg_http_done *d = (rt_io_msg_http_done *)m;
    char *err = NULL;
    int rc = vo_tts_parse(d, &err);
    if (!rc)
        rc = hm_write_atomic(j->path, d->body, d->body_len, 0600);
    if (rc) {
        RT_WARN(LOG, "Auto voice reply failed: %s", err ? err : rt_strerror(rc));
        rt_free(err);
    } else {
        char *line = rt_xasprintf("MEDIA:%s", j->path);
        rt_send(cx, j->adapter, gw_out_text_new(GW_OUT_TEXT, &j->to, line, GW_TEXT_REPLY));
        rt_free(line);
    }
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void tts_fini(void *state)
{
    tts_job *j = state;
    gw_target_fini(&j->to);
    rt_free(j->text);
    rt_free(j->home);
    rt_free(j->path);
    vo_tts_cfg_fini(&j->tts);
    hm_config_unref(j->cfg);
    rt_free(j);
}

static const rt_actor_type tts_type = {"voice-reply", tts_behave, tts_fini, 0};

/* Platforms whose adapters send "MEDIA:<path>" lines as files (voice notes for .ogg). */
static bool sends_media(const char *platform)
{
    static const char *const p[] = {"telegram",   "discord",  "slack",
                                    "mattermost", "whatsapp", "matrix"};
    for (size_t i = 0; platform && i < RT_ARRAY_LEN(p); i++)
        if (strcmp(platform, p[i]) == 0)
            return true;
    return false;
}

void gw_voice_reply(rt_ctx *cx, gw_shared *sh, rt_ref adapter, const gw_caps *caps,
                    const char *platform, const char *chat_id, const gw_target *to,
                    const char *text, bool voice_input)
{
    if (!adapter || !to || !text || !*text || (caps && caps->api) || !chat_id)
        return;
    if (strncmp(text, "Error:", 6) == 0 || strstr(text, "MEDIA:"))
        return; /* an error, or the agent sent its own audio (text_to_speech) */
    char buf[16];
    const char *mode = gw_voice_mode(sh, chat_id, buf, sizeof(buf));
    bool want =
        (mode && strcmp(mode, "all") == 0) || (voice_input && (!mode || strcmp(mode, "off") != 0));
    if (!want)
        return;
    /* the original's check_tts_requirements: without a usable provider a voice message
     * just gets text; a mode the user chose explicitly is worth a warning */
    vo_tts_cfg tc;
    vo_tts_cfg_load(sh->cfg, &tc);
    char *why = vo_tts_unavailable(&tc);
    vo_tts_cfg_fini(&tc);
    if (why) {
        if (mode && strcmp(mode, "off") != 0)
            RT_WARN(LOG, "Auto voice reply TTS failed: %s", why);
        rt_free(why);
        return;
    }
    if (!sends_media(platform)) {
        RT_DEBUG(LOG, "no voice reply on %s: its adapter does not send audio files yet",
                 platform ? platform : "?");
        return;
    }
    /* voice input: the adapters' auto-TTS cleanup; /voice tts: the runner's markdown strip */
    char *speech = voice_input ? vo_strip_simple(text) : NULL;
    if (!speech) {
        char *cut = vo_utf8_prefix(text, VO_TTS_MAX_TEXT);
        speech = vo_strip_markdown(cut);
        rt_free(cut);
    }
    if (!*speech) {
        rt_free(speech);
        return;
    }
    tts_job *j = rt_xcalloc(1, sizeof(*j));
    j->adapter = adapter;
    gw_target_copy(&j->to, to);
    rt_free(j->to.reply_to);
    j->to.reply_to = NULL;
    j->text = speech;
    j->home = rt_xstrdup(sh->home ? sh->home : ".");
    j->cfg = sh->cfg ? hm_config_ref(sh->cfg) : NULL;
    rt_spawn_opts o = {.flags = RT_SPAWN_DETACHED};
    rt_ref r = rt_spawn(cx, &tts_type, j, &o);
    if (r)
        rt_send(cx, r, rt_msg_new(GW_MEDIA_START, sizeof(rt_msg)));
}
