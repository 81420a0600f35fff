/*
 * vo_audio — the OpenAI audio API's requests and answers (see vo_audio.h).
 */
#include "vo_audio.h"

#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#define ERR_BODY_CHARS 300

static const char *const stt_formats[] = {".aac",  ".flac", ".m4a", ".mp3", ".mp4",
                                          ".mpeg", ".mpga", ".ogg", ".wav", ".webm"};

/* =============================================================== settings */

static const char *env_of(const hm_config *c, const char *name)
{
    const char *v = c ? hm_config_getenv(c, name, NULL) : getenv(name);
    return v && *v ? v : NULL;
}

static const char *node_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

static char *trimmed_dup(const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return rt_xstrndup(s, n);
}

/* VOICE_TOOLS_OPENAI_KEY, then OPENAI_API_KEY (new), or NULL. */
static char *audio_key(const hm_config *c)
{
    const char *k = env_of(c, "VOICE_TOOLS_OPENAI_KEY");
    if (!k)
        k = env_of(c, "OPENAI_API_KEY");
    if (!k)
        return NULL;
    char *t = trimmed_dup(k);
    if (!*t) {
        rt_free(t);
        return NULL;
    }
    return t;
}

static char *base_of(const char *url)
{
    size_t n = strlen(url);
    while (n && url[n - 1] == '/')
        n--;
    return rt_xstrndup(url, n);
}

void vo_stt_cfg_load(const hm_config *c, vo_stt_cfg *out)
{
    memset(out, 0, sizeof(*out));
    out->enabled = c ? hm_config_bool(c, "stt.enabled") : true;
    const cJSON *oa = c ? hm_config_node(c, "stt.openai") : NULL;
    const char *env_base = env_of(c, "STT_OPENAI_BASE_URL");
    const char *cfg_key = node_str(oa, "api_key");
    if (cfg_key) {
        out->api_key = rt_xstrdup(cfg_key);
        const char *b = node_str(oa, "base_url");
        out->base_url = base_of(b ? b : env_base ? env_base : VO_OPENAI_BASE);
    } else {
        out->api_key = audio_key(c);
        out->base_url = base_of(env_base ? env_base : VO_OPENAI_BASE);
    }
    const char *m = node_str(oa, "model");
    if (!m && c && hm_config_is_set(c, "stt.model"))
        m = hm_config_str(c, "stt.model");
    if (!m)
        m = env_of(c, "STT_OPENAI_MODEL");
    out->model = rt_xstrdup(m && *m ? m : "whisper-1");
}

void vo_stt_cfg_fini(vo_stt_cfg *c)
{
    rt_free(c->api_key);
    rt_free(c->base_url);
    rt_free(c->model);
    memset(c, 0, sizeof(*c));
}

void vo_tts_cfg_load(const hm_config *c, vo_tts_cfg *out)
{
    memset(out, 0, sizeof(*out));
    const char *p = c ? hm_config_str(c, "tts.provider") : NULL;
    char *prov = trimmed_dup(p && *p ? p : "edge");
    for (char *q = prov; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    out->provider = prov;
    out->api_key = audio_key(c);
    const cJSON *oa = c ? hm_config_node(c, "tts.openai") : NULL;
    const char *b = node_str(oa, "base_url");
    const char *env_base = env_of(c, "TTS_OPENAI_BASE_URL");
    out->base_url = base_of(b ? b : env_base ? env_base : VO_OPENAI_BASE);
    const char *m = node_str(oa, "model");
    out->model = rt_xstrdup(m ? m : "gpt-4o-mini-tts");
    const char *v = node_str(oa, "voice");
    out->voice = rt_xstrdup(v ? v : "alloy");
    out->speed = 1.0;
    const cJSON *sp = cJSON_IsObject(oa) ? cJSON_GetObjectItemCaseSensitive(oa, "speed") : NULL;
    const cJSON *tts = c ? hm_config_node(c, "tts") : NULL;
    if (!cJSON_IsNumber(sp) && cJSON_IsObject(tts))
        sp = cJSON_GetObjectItemCaseSensitive(tts, "speed");
    if (cJSON_IsNumber(sp) && sp->valuedouble > 0)
        out->speed = sp->valuedouble;
}

void vo_tts_cfg_fini(vo_tts_cfg *c)
{
    rt_free(c->provider);
    rt_free(c->api_key);
    rt_free(c->base_url);
    rt_free(c->model);
    rt_free(c->voice);
    memset(c, 0, sizeof(*c));
}

void vo_http_req_fini(vo_http_req *r)
{
    rt_free(r->url);
    rt_free(r->body);
    for (size_t i = 0; i < RT_ARRAY_LEN(r->hdr); i++)
        rt_free(r->hdr[i]);
    memset(r, 0, sizeof(*r));
}

void vo_http_fill(const vo_http_req *r, rt_http_request *req)
{
    req->method = "POST";
    req->url = r->url;
    req->headers = (const char *const *)r->hdr;
    req->body = r->body;
    req->body_len = r->len;
}

/* ============================================================== utilities */

char *vo_utf8_prefix(const char *s, size_t n)
{
    size_t i = 0, chars = 0;
    while (s[i] && chars < n) {
        i++;
        while (((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        chars++;
    }
    return rt_xstrndup(s, i);
}

static uint64_t rand64(void)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        r = rt_hash_u64((uint64_t)t.tv_nsec ^ ((uint64_t)t.tv_sec << 32) ^ (uintptr_t)&t);
    }
    return r;
}

static const char *ext_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    return dot && dot[1] ? dot : "";
}

/* ===================================================================== STT */

char *vo_stt_validate(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return rt_xasprintf("Audio file not found: %s", path);
    if (!S_ISREG(st.st_mode))
        return rt_xasprintf("Path is not a file: %s", path);
    const char *ext = ext_of(path);
    bool ok = false;
    for (size_t i = 0; i < RT_ARRAY_LEN(stt_formats) && !ok; i++)
        ok = strcasecmp(ext, stt_formats[i]) == 0;
    if (!ok) {
        rt_buf b;
        rt_buf_init(&b, 4096);
        rt_buf_printf(&b, "Unsupported format: %s. Supported: ", ext);
        for (size_t i = 0; i < RT_ARRAY_LEN(stt_formats); i++)
            rt_buf_printf(&b, "%s%s", i ? ", " : "", stt_formats[i]);
        return rt_buf_steal(&b, NULL);
    }
    if (st.st_size > VO_STT_MAX_FILE)
        return rt_xasprintf("File too large: %.1fMB (max %dMB)",
                            (double)st.st_size / (1024.0 * 1024.0),
                            VO_STT_MAX_FILE / (1024 * 1024));
    return NULL;
}

char *vo_stt_no_provider(void)
{
    return rt_xstrdup(
        "No STT provider available. Install faster-whisper for free local transcription, "
        "configure HERMES_LOCAL_STT_COMMAND or install a local whisper CLI, set GROQ_API_KEY "
        "for free Groq Whisper, set MISTRAL_API_KEY for Mistral Voxtral Transcribe, or set "
        "VOICE_TOOLS_OPENAI_KEY or OPENAI_API_KEY for the OpenAI Whisper API.");
}

static const char *audio_mime(const char *ext)
{
    static const struct {
        const char *ext, *mime;
    } m[] = {{".ogg", "audio/ogg"},   {".mp3", "audio/mpeg"},  {".mpeg", "audio/mpeg"},
             {".mpga", "audio/mpeg"}, {".wav", "audio/wav"},   {".m4a", "audio/mp4"},
             {".mp4", "audio/mp4"},   {".webm", "audio/webm"}, {".aac", "audio/aac"},
             {".flac", "audio/flac"}};
    for (size_t i = 0; i < RT_ARRAY_LEN(m); i++)
        if (strcasecmp(ext, m[i].ext) == 0)
            return m[i].mime;
    return "application/octet-stream";
}

static void mp_field(rt_buf *b, const char *bd, const char *name, const char *value)
{
    rt_buf_printf(b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", bd, name,
                  value);
}

static bool whisper_text(const vo_stt_cfg *c)
{
    return strcmp(c->model, "whisper-1") == 0;
}

int vo_stt_request(const vo_stt_cfg *c, const char *path, vo_http_req *out, char **err)
{
    memset(out, 0, sizeof(*out));
    *err = NULL;
    char *data = NULL;
    size_t len = 0;
    int rc = hm_read_file(path, VO_STT_MAX_FILE, &data, &len);
    if (rc) {
        *err = rc == -EACCES ? rt_xasprintf("Permission denied: %s", path)
                             : rt_xasprintf("Transcription failed: %s", rt_strerror(rc));
        return rc;
    }
    char bd[48];
    snprintf(bd, sizeof(bd), "----hermes%016" PRIx64 "%08" PRIx32, rand64(), (uint32_t)rand64());
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    rt_buf b;
    rt_buf_init(&b, (size_t)VO_STT_MAX_FILE + 64 * 1024);
    mp_field(&b, bd, "model", c->model);
    mp_field(&b, bd, "response_format", whisper_text(c) ? "text" : "json");
    rt_buf_printf(&b, "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"", bd);
    for (const char *q = base; *q; q++) /* quotes and line breaks would end the header */
        (void)rt_buf_append(&b, strchr("\"\r\n\\", *q) ? "_" : q, 1);
    rt_buf_printf(&b, "\"\r\nContent-Type: %s\r\n\r\n", audio_mime(ext_of(path)));
    (void)rt_buf_append(&b, data, len);
    rt_buf_printf(&b, "\r\n--%s--\r\n", bd);
    rt_free(data);
    out->len = b.len;
    out->body = rt_buf_steal(&b, NULL);
    out->url = rt_xasprintf("%s/audio/transcriptions", c->base_url);
    out->hdr[0] = rt_xasprintf("Authorization: Bearer %s", c->api_key ? c->api_key : "");
    out->hdr[1] = rt_xasprintf("Content-Type: multipart/form-data; boundary=%s", bd);
    out->hdr[2] = rt_xstrdup("Accept: application/json, text/plain");
    return 0;
}

/* The transport's or the server's failure in the original's words (new), or NULL. */
static char *http_failure(const rt_io_msg_http_done *d)
{
    if (d->err == -ETIMEDOUT)
        return rt_xasprintf("Request timeout: %s", d->errmsg ? d->errmsg : "timed out");
    if (d->err)
        return rt_xasprintf("Connection error: %s", d->errmsg ? d->errmsg : rt_strerror(d->err));
    if (d->status < 200 || d->status > 299) {
        char *excerpt = vo_utf8_prefix(d->body ? d->body : "", ERR_BODY_CHARS);
        for (char *p = excerpt; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        char *e = rt_xasprintf("API error: Error code: %d - %s", d->status, excerpt);
        rt_free(excerpt);
        return e;
    }
    return NULL;
}

int vo_stt_parse(const vo_stt_cfg *c, const rt_io_msg_http_done *d, char **text, char **err)
{
    *text = NULL;
    *err = http_failure(d);
    if (*err)
        return d->err ? d->err : -EPROTO;
    const char *body = d->body ? d->body : "";
    cJSON *j = NULL;
    const char *ct = rt_http_header_get(d->headers, d->nheaders, "Content-Type");
    bool json = !whisper_text(c) || (ct && strstr(ct, "json"));
    if (json) {
        j = cJSON_ParseWithLength(body, d->body_len);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
        if (cJSON_IsString(t)) {
            *text = trimmed_dup(t->valuestring);
            cJSON_Delete(j);
            return 0;
        }
        cJSON_Delete(j);
        if (!whisper_text(c)) {
            *err = rt_xstrdup("Transcription failed: the answer had no text");
            return -EPROTO;
        }
    }
    *text = trimmed_dup(body);
    return 0;
}

/* ===================================================================== TTS */

char *vo_tts_unavailable(const vo_tts_cfg *c)
{
    if (strcmp(c->provider, "openai") != 0)
        return rt_xasprintf(
            "TTS provider '%s' is not available in this build: set tts.provider: openai in "
            "config.yaml (with VOICE_TOOLS_OPENAI_KEY or OPENAI_API_KEY in ~/.hermes/.env)",
            c->provider);
    if (!c->api_key)
        return rt_xstrdup("TTS configuration error (openai): Neither VOICE_TOOLS_OPENAI_KEY nor "
                          "OPENAI_API_KEY is set");
    return NULL;
}

void vo_tts_request(const vo_tts_cfg *c, const char *text, bool opus, vo_http_req *out)
{
    memset(out, 0, sizeof(*out));
    char *input = vo_utf8_prefix(text, VO_TTS_MAX_TEXT);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", c->model);
    cJSON_AddStringToObject(j, "voice", c->voice);
    cJSON_AddStringToObject(j, "input", input);
    cJSON_AddStringToObject(j, "response_format", opus ? "opus" : "mp3");
    if (c->speed != 1.0)
        cJSON_AddNumberToObject(j, "speed",
                                c->speed < 0.25 ? 0.25 : (c->speed > 4.0 ? 4.0 : c->speed));
    out->body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    rt_free(input);
    out->len = strlen(out->body);
    /* cJSON allocates with the runtime's allocator hooks? Copy to be sure. */
    char *copy = rt_xstrndup(out->body, out->len);
    cJSON_free(out->body);
    out->body = copy;
    out->url = rt_xasprintf("%s/audio/speech", c->base_url);
    out->hdr[0] = rt_xasprintf("Authorization: Bearer %s", c->api_key ? c->api_key : "");
    out->hdr[1] = rt_xstrdup("Content-Type: application/json");
    out->hdr[2] = rt_xasprintf("x-idempotency-key: %016" PRIx64 "%016" PRIx64, rand64(), rand64());
}

int vo_tts_parse(const rt_io_msg_http_done *d, char **err)
{
    *err = http_failure(d);
    if (*err) {
        char *e = rt_xasprintf("TTS generation failed (openai): %s", *err);
        rt_free(*err);
        *err = e;
        return d->err ? d->err : -EPROTO;
    }
    if (!d->body || !d->body_len) {
        *err = rt_xstrdup("TTS generation produced no output (provider: openai)");
        return -ENODATA;
    }
    return 0;
}

static int mkdirs(const char *path)
{
    char buf[4096];
    if (rt_strlcpy(buf, path, sizeof(buf)) >= sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

char *vo_tts_output_path(const char *home, bool opus)
{
    char *dir = rt_xasprintf("%s/cache/audio", home);
    struct stat st;
    char *legacy = rt_xasprintf("%s/audio_cache", home);
    if (stat(dir, &st) != 0 && stat(legacy, &st) == 0 && S_ISDIR(st.st_mode)) {
        rt_free(dir);
        dir = legacy;
        legacy = NULL;
    }
    rt_free(legacy);
    if (mkdirs(dir) != 0) {
        rt_free(dir);
        return NULL;
    }
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char ts[32];
    strftime(ts, sizeof(ts), "%Y%m%d_%H%M%S", &tm);
    char *p = rt_xasprintf("%s/tts_%s_%06" PRIx32 ".%s", dir, ts, (uint32_t)(rand64() & 0xffffff),
                           opus ? "ogg" : "mp3");
    rt_free(dir);
    return p;
}

/* ======================================================= markdown cleanup */

/* Replace every non-overlapping "open inner close" (inner ≥ min_inner bytes, no newline when
 * one_line) by inner, or by repl when repl is set. */
static char *sub_delim(const char *s, const char *open, const char *close, size_t min_inner,
                       bool one_line, const char *repl)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    size_t lo = strlen(open), lc = strlen(close);
    const char *p = s;
    while (*p) {
        if (strncmp(p, open, lo) == 0) {
            const char *in = p + lo;
            const char *q = in + min_inner;
            bool bad = false;
            for (const char *r = in; r < q; r++)
                if (!*r || (one_line && *r == '\n'))
                    bad = true;
            const char *hit = NULL;
            while (!bad && *q) {
                if (strncmp(q, close, lc) == 0) {
                    hit = q;
                    break;
                }
                if (one_line && *q == '\n')
                    break;
                q++;
            }
            if (hit) {
                if (repl)
                    rt_buf_append_str(&b, repl);
                else
                    (void)rt_buf_append(&b, in, (size_t)(hit - in));
                p = hit + lc;
                continue;
            }
        }
        (void)rt_buf_append(&b, p, 1);
        p++;
    }
    return rt_buf_steal(&b, NULL);
}

/* \[([^\]]+)\]\([^)]+\) → \1 */
static char *sub_links(const char *s)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    const char *p = s;
    while (*p) {
        if (*p == '[') {
            const char *e = strchr(p + 1, ']');
            if (e && e > p + 1 && e[1] == '(' && e[2] && e[2] != ')') {
                const char *c = strchr(e + 2, ')');
                if (c) {
                    (void)rt_buf_append(&b, p + 1, (size_t)(e - p - 1));
                    p = c + 1;
                    continue;
                }
            }
        }
        (void)rt_buf_append(&b, p, 1);
        p++;
    }
    return rt_buf_steal(&b, NULL);
}

static char *sub_urls(const char *s)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    const char *p = s;
    while (*p) {
        size_t n = strncmp(p, "https://", 8) == 0 ? 8 : strncmp(p, "http://", 7) == 0 ? 7 : 0;
        if (n && p[n] && !isspace((unsigned char)p[n])) {
            p += n;
            while (*p && !isspace((unsigned char)*p))
                p++;
            continue;
        }
        (void)rt_buf_append(&b, p, 1);
        p++;
    }
    return rt_buf_steal(&b, NULL);
}

/* ^#+\s* and ^\s*[-*]\s+ (multi-line), ---+, \n{3,} → \n\n */
static char *sub_lines(const char *s)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    const char *p = s;
    bool bol = true;
    while (*p) {
        if (bol && *p == '#') {
            while (*p == '#')
                p++;
            while (*p && isspace((unsigned char)*p))
                p++;
            continue;
        }
        if (bol) {
            const char *q = p;
            while (*q && isspace((unsigned char)*q))
                q++;
            if ((*q == '-' || *q == '*') && q[1] && isspace((unsigned char)q[1])) {
                q++;
                while (*q && isspace((unsigned char)*q))
                    q++;
                p = q;
                bol = false;
                continue;
            }
        }
        if (strncmp(p, "---", 3) == 0) {
            while (*p == '-')
                p++;
            bol = false;
            continue;
        }
        bol = *p == '\n';
        (void)rt_buf_append(&b, p, 1);
        p++;
    }
    char *t = rt_buf_steal(&b, NULL);
    /* \n{3,} → \n\n */
    rt_buf_init(&b, SIZE_MAX / 2);
    for (p = t; *p;) {
        if (p[0] == '\n' && p[1] == '\n' && p[2] == '\n') {
            while (*p == '\n')
                p++;
            rt_buf_append_str(&b, "\n\n");
            continue;
        }
        (void)rt_buf_append(&b, p, 1);
        p++;
    }
    rt_free(t);
    return rt_buf_steal(&b, NULL);
}

char *vo_strip_markdown(const char *text)
{
    char *a = sub_delim(text, "```", "```", 0, false, " ");
    char *b = sub_links(a);
    rt_free(a);
    a = sub_urls(b);
    rt_free(b);
    b = sub_delim(a, "**", "**", 1, true, NULL);
    rt_free(a);
    a = sub_delim(b, "*", "*", 1, true, NULL);
    rt_free(b);
    b = sub_delim(a, "`", "`", 1, true, NULL);
    rt_free(a);
    a = sub_lines(b);
    rt_free(b);
    b = trimmed_dup(a);
    rt_free(a);
    return b;
}

char *vo_strip_simple(const char *text)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    for (const char *p = text; *p; p++)
        if (!strchr("*_`#[]()", *p))
            (void)rt_buf_append(&b, p, 1);
    char *all = rt_buf_steal(&b, NULL);
    char *cut = vo_utf8_prefix(all, VO_TTS_MAX_TEXT);
    rt_free(all);
    char *t = trimmed_dup(cut);
    rt_free(cut);
    return t;
}
