/*
 * voice_fake — the OpenAI audio API stand-in (see voice_fake.h).
 */
#include "voice_fake.h"

#include "rt_alloc.h"
#include "rt_httpd.h"
#include "rt_timer.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_LATE = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 40) };

static pthread_mutex_t vlock = PTHREAD_MUTEX_INITIALIZER;
static vfake_rec recs[64];
static int nrecs;
static rt_httpd *srv;

typedef struct late_msg {
    rt_msg hdr;
    uint64_t req;
    char *text;
} late_msg;

static void drop_late(rt_msg *m)
{
    rt_free(((late_msg *)m)->text);
}

static void copy_field(char *dst, size_t n, const char *s, size_t len)
{
    if (len >= n)
        len = n - 1;
    memcpy(dst, s, len);
    dst[len] = '\0';
}

static const char *memfind(const char *h, size_t hl, const char *n)
{
    size_t nl = strlen(n);
    for (size_t i = 0; nl <= hl && i + nl <= hl; i++)
        if (memcmp(h + i, n, nl) == 0)
            return h + i;
    return NULL;
}

/* The value of multipart field name (text) into out; file: its bytes (pointer into body). */
static const char *mp_part(const char *body, size_t len, const char *bd, const char *name,
                           size_t *plen, char *filename, size_t fnlen)
{
    char key[128];
    snprintf(key, sizeof(key), "name=\"%s\"", name);
    const char *k = memfind(body, len, key);
    if (!k)
        return NULL;
    if (filename) {
        const char *fn = memfind(k, len - (size_t)(k - body), "filename=\"");
        if (fn) {
            fn += 10;
            const char *e = memchr(fn, '"', len - (size_t)(fn - body));
            if (e)
                copy_field(filename, fnlen, fn, (size_t)(e - fn));
        }
    }
    const char *start = memfind(k, len - (size_t)(k - body), "\r\n\r\n");
    if (!start)
        return NULL;
    start += 4;
    char end[160];
    snprintf(end, sizeof(end), "\r\n--%s", bd);
    const char *e = memfind(start, len - (size_t)(start - body), end);
    if (!e)
        return NULL;
    *plen = (size_t)(e - start);
    return start;
}

static void reply_json(rt_ctx *cx, uint64_t req, int status, const char *msg)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request\"}}",
             msg);
    const char *const h[] = {"Content-Type: application/json", NULL};
    rt_httpd_reply(cx, req, status, h, body, strlen(body));
}

static void reply_transcript(rt_ctx *cx, uint64_t req, bool text_fmt, const char *t)
{
    if (text_fmt) {
        char *b = rt_xasprintf("%s\n", t);
        const char *const h[] = {"Content-Type: text/plain", NULL};
        rt_httpd_reply(cx, req, 200, h, b, strlen(b));
        rt_free(b);
        return;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "text", t);
    char *b = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    const char *const h[] = {"Content-Type: application/json", NULL};
    rt_httpd_reply(cx, req, 200, h, b, strlen(b));
    cJSON_free(b);
}

static void on_request(rt_ctx *cx, rt_httpd_msg_request *m)
{
    vfake_rec r;
    memset(&r, 0, sizeof(r));
    snprintf(r.path, sizeof(r.path), "%s", m->path);
    const char *auth = rt_httpd_header(m, "Authorization");
    const char *ct = rt_httpd_header(m, "Content-Type");
    snprintf(r.auth, sizeof(r.auth), "%s", auth ? auth : "");
    snprintf(r.content_type, sizeof(r.content_type), "%s", ct ? ct : "");
    bool authed = auth && strncmp(auth, "Bearer ", 7) == 0 && auth[7];
    if (strstr(m->path, "/audio/speech")) {
        snprintf(r.json, sizeof(r.json), "%s", m->body);
        pthread_mutex_lock(&vlock);
        if (nrecs < 64)
            recs[nrecs++] = r;
        pthread_mutex_unlock(&vlock);
        if (!authed) {
            reply_json(cx, m->req, 401, "Incorrect API key provided");
            return;
        }
        cJSON *j = cJSON_Parse(m->body);
        const cJSON *in = cJSON_GetObjectItem(j, "input");
        const cJSON *fmt = cJSON_GetObjectItem(j, "response_format");
        if (!cJSON_IsString(in) || strstr(in->valuestring, "FAIL_TTS")) {
            cJSON_Delete(j);
            reply_json(cx, m->req, 500, "scripted speech failure");
            return;
        }
        bool opus = cJSON_IsString(fmt) && strcmp(fmt->valuestring, "opus") == 0;
        char *b = rt_xasprintf("%s%s", opus ? "OggS-fake-opus:" : "ID3-fake-mp3:", in->valuestring);
        cJSON_Delete(j);
        const char *const h[] = {opus ? "Content-Type: audio/ogg" : "Content-Type: audio/mpeg",
                                 NULL};
        rt_httpd_reply(cx, m->req, 200, h, b, strlen(b));
        rt_free(b);
        return;
    }
    if (strstr(m->path, "/chat/completions")) { /* a vision model */
        snprintf(r.json, sizeof(r.json), "%s", m->body);
        pthread_mutex_lock(&vlock);
        if (nrecs < 64)
            recs[nrecs++] = r;
        pthread_mutex_unlock(&vlock);
        if (!authed || strcmp(auth, "Bearer bad-vision") == 0) {
            reply_json(cx, m->req, 401, "Incorrect API key provided");
            return;
        }
        const char *ans = "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                          "\"content\":\"A red square on white.\"},\"finish_reason\":\"stop\"}]}";
        const char *const h[] = {"Content-Type: application/json", NULL};
        rt_httpd_reply(cx, m->req, 200, h, ans, strlen(ans));
        return;
    }
    if (!strstr(m->path, "/audio/transcriptions")) {
        reply_json(cx, m->req, 404, "no such endpoint");
        return;
    }
    const char *bdp = ct ? strstr(ct, "boundary=") : NULL;
    char bd[128] = "";
    if (bdp)
        snprintf(bd, sizeof(bd), "%s", bdp + 9);
    size_t n = 0;
    const char *v = mp_part(m->body, m->body_len, bd, "model", &n, NULL, 0);
    if (v)
        copy_field(r.model, sizeof(r.model), v, n);
    v = mp_part(m->body, m->body_len, bd, "response_format", &n, NULL, 0);
    if (v)
        copy_field(r.format, sizeof(r.format), v, n);
    size_t flen = 0;
    const char *file =
        mp_part(m->body, m->body_len, bd, "file", &flen, r.filename, sizeof(r.filename));
    r.file_len = file ? flen : 0;
    pthread_mutex_lock(&vlock);
    if (nrecs < 64)
        recs[nrecs++] = r;
    pthread_mutex_unlock(&vlock);
    if (!authed) {
        reply_json(cx, m->req, 401, "Incorrect API key provided");
        return;
    }
    if (!file || !r.model[0]) {
        reply_json(cx, m->req, 400, "model and file are required");
        return;
    }
    bool text_fmt = strcmp(r.format, "text") == 0;
    if (flen >= 5 && memcmp(file, "FAIL:", 5) == 0) {
        reply_json(cx, m->req, atoi(file + 5) ? atoi(file + 5) : 500, "scripted failure");
        return;
    }
    char t[512];
    if (flen >= 5 && memcmp(file, "SLOW:", 5) == 0) {
        copy_field(t, sizeof(t), file + 5, flen - 5);
        late_msg *l = RT_MSG_NEW(late_msg, T_LATE);
        l->req = m->req;
        l->text = rt_xasprintf("%c%s", text_fmt ? 't' : 'j', t);
        l->hdr.drop = drop_late;
        rt_send_after(cx, rt_self(cx), &l->hdr, 300);
        return;
    }
    if (flen >= 4 && memcmp(file, "SAY:", 4) == 0)
        copy_field(t, sizeof(t), file + 4, flen - 4);
    else
        snprintf(t, sizeof(t), "(fake transcript of %zu bytes)", flen);
    reply_transcript(cx, m->req, text_fmt, t);
}

static void fake_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type == RT_HTTPD_MSG_REQUEST)
        on_request(cx, (rt_httpd_msg_request *)m);
    else if (m->type == T_LATE) {
        late_msg *l = (late_msg *)m;
        reply_transcript(cx, l->req, l->text[0] == 't', l->text + 1);
    }
}

static const rt_actor_type fake_type = {"voice-fake", fake_behave, NULL, 0};

void vfake_start(rt_runtime *rt, char *url, size_t len)
{
    pthread_mutex_lock(&vlock);
    nrecs = 0;
    pthread_mutex_unlock(&vlock);
    rt_ctx *cx = rt_ctx_external(rt);
    rt_httpd_route route = {"/", rt_spawn(cx, &fake_type, NULL, NULL)};
    rt_httpd_opts ho = {.routes = &route, .nroutes = 1, .max_body = 32u << 20};
    int err = 0;
    srv = rt_httpd_start(rt, &ho, &err);
    ASSERT_NOT_NULL(srv);
    snprintf(url, len, "http://127.0.0.1:%d/v1", rt_httpd_port(srv));
}

void vfake_stop(void)
{
    rt_httpd_stop(srv, 1000);
    srv = NULL;
}

int vfake_count(void)
{
    pthread_mutex_lock(&vlock);
    int n = nrecs;
    pthread_mutex_unlock(&vlock);
    return n;
}

vfake_rec vfake_get(int i)
{
    pthread_mutex_lock(&vlock);
    vfake_rec r = recs[i < nrecs && i >= 0 ? i : 0];
    pthread_mutex_unlock(&vlock);
    return r;
}
