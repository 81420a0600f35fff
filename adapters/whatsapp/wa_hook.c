/*
 * wa_hook — the webhook's pure parts: the signature check, the subscription handshake, and
 * reading the messages out of a notification (Cloud API "Webhooks" payloads:
 * entry[].changes[].value.{contacts[], messages[]}), and classifying the send endpoint's
 * answers (wa_send_verdict: Meta's error codes, "Error codes" in the Cloud API reference).
 *
 * Pure functions; any thread.
 */
#include "whatsapp.h"

#include "gw.h"
#include "rt_alloc.h"
#include "rt_util.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool wa_signature_ok(const char *secret, const void *body, size_t len, const char *header)
{
    if (!secret || !*secret || !header || strncmp(header, "sha256=", 7) != 0)
        return false;
    const char *hex = header + 7;
    if (strlen(hex) != 64)
        return false;
    unsigned char want[32];
    for (int i = 0; i < 32; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        want[i] = (unsigned char)(hi << 4 | lo);
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), body ? body : (const void *)"", len, mac,
              &mlen) ||
        mlen != 32)
        return false;
    return CRYPTO_memcmp(mac, want, 32) == 0;
}

/* Percent-decode s[0..n) into a new string ('+' is a space). */
static char *unescape(const char *s, size_t n)
{
    char *o = rt_xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            o[k++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        } else {
            o[k++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    o[k] = '\0';
    return o;
}

/* The decoded value of key in a query string, or NULL. */
static char *query_get(const char *q, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = q; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (eq) {
            char *k = unescape(p, (size_t)(eq - p));
            bool hit = strlen(k) == kl && memcmp(k, key, kl) == 0;
            rt_free(k);
            if (hit)
                return unescape(eq + 1, n - (size_t)(eq - p) - 1);
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

char *wa_handshake(const char *query, const char *verify_token)
{
    if (!query || !verify_token || !*verify_token)
        return NULL;
    char *mode = query_get(query, "hub.mode");
    char *tok = query_get(query, "hub.verify_token");
    char *ch = query_get(query, "hub.challenge");
    bool ok = mode && tok && ch && strcmp(mode, "subscribe") == 0 &&
              strlen(tok) == strlen(verify_token) &&
              CRYPTO_memcmp(tok, verify_token, strlen(tok)) == 0;
    rt_free(mode);
    rt_free(tok);
    if (!ok) {
        rt_free(ch);
        return NULL;
    }
    return ch;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *text_of(const cJSON *m)
{
    const char *type = jstr(m, "type");
    if (type && strcmp(type, "text") == 0) {
        const char *b = jstr(cJSON_GetObjectItemCaseSensitive(m, "text"), "body");
        return rt_xstrdup(b ? b : "");
    }
    if (type && strcmp(type, "button") == 0) {
        const char *b = jstr(cJSON_GetObjectItemCaseSensitive(m, "button"), "text");
        return rt_xstrdup(b ? b : "");
    }
    const char *cap = NULL;
    if (type)
        cap = jstr(cJSON_GetObjectItemCaseSensitive(m, type), "caption");
    return rt_xasprintf("%s%s[The user sent a WhatsApp %s message, which this gateway cannot "
                        "read]",
                        cap ? cap : "", cap ? "\n\n" : "", type ? type : "unknown");
}

/* audio (voice when "voice": true), image, document, video: the attachment's fields. */
static void media_of(const cJSON *m, wa_inmsg *x)
{
    static const struct {
        const char *type;
        int kind;
    } kinds[] = {{"audio", GW_KIND_AUDIO},
                 {"voice", GW_KIND_VOICE},
                 {"image", GW_KIND_PHOTO},
                 {"document", GW_KIND_DOCUMENT},
                 {"video", GW_KIND_VIDEO}};
    const char *type = jstr(m, "type");
    for (size_t i = 0; type && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(type, kinds[i].type) != 0)
            continue;
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(m, type);
        const char *id = jstr(o, "id");
        if (!id || !*id)
            return;
        x->media_id = rt_xstrdup(id);
        const char *mime = jstr(o, "mime_type");
        x->mime = mime ? rt_xstrdup(mime) : NULL;
        const char *fn = jstr(o, "filename");
        x->filename = fn ? rt_xstrdup(fn) : NULL;
        const char *cap = jstr(o, "caption");
        x->caption = rt_xstrdup(cap ? cap : "");
        x->kind = kinds[i].kind;
        if (x->kind == GW_KIND_AUDIO && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "voice")))
            x->kind = GW_KIND_VOICE;
        return;
    }
}

static const char *ext_for(const char *mime, int kind)
{
    static const struct {
        const char *mime, *ext;
    } m[] = {{"audio/ogg", ".ogg"},  {"audio/opus", ".ogg"}, {"audio/mpeg", ".mp3"},
             {"audio/mp4", ".m4a"},  {"audio/aac", ".aac"},  {"audio/amr", ".amr"},
             {"image/jpeg", ".jpg"}, {"image/png", ".png"},  {"image/webp", ".webp"},
             {"video/mp4", ".mp4"},  {"video/3gpp", ".3gp"}, {"application/pdf", ".pdf"},
             {"text/plain", ".txt"}};
    for (size_t i = 0; mime && i < sizeof(m) / sizeof(m[0]); i++)
        if (strncasecmp(mime, m[i].mime, strlen(m[i].mime)) == 0)
            return m[i].ext;
    return kind == GW_KIND_PHOTO                            ? ".jpg"
           : kind == GW_KIND_VIDEO                          ? ".mp4"
           : kind == GW_KIND_VOICE || kind == GW_KIND_AUDIO ? ".ogg"
                                                            : ".bin";
}

static void safe_append(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(dst);
    for (; src && *src && n + 1 < cap; src++)
        dst[n++] = (isalnum((unsigned char)*src) || strchr("._-", *src)) ? *src : '_';
    dst[n] = '\0';
}

char *wa_media_name(const wa_inmsg *m)
{
    char name[200] = "";
    const char *prefix = m->kind == GW_KIND_PHOTO      ? "img_"
                         : m->kind == GW_KIND_DOCUMENT ? "doc_"
                         : m->kind == GW_KIND_VIDEO    ? "video_"
                                                       : "audio_";
    rt_strlcpy(name, prefix, sizeof(name));
    char id[64] = "";
    safe_append(id, sizeof(id), m->id); /* the tail of the wamid is the unique part */
    size_t il = strlen(id);
    safe_append(name, sizeof(name), il > 24 ? id + il - 24 : id);
    if (m->kind == GW_KIND_DOCUMENT && m->filename && *m->filename && m->filename[0] != '.') {
        rt_strlcpy(name + strlen(name), "_", sizeof(name) - strlen(name));
        safe_append(name, sizeof(name), m->filename);
    } else {
        rt_strlcpy(name + strlen(name), ext_for(m->mime, m->kind), sizeof(name) - strlen(name));
    }
    return rt_xstrdup(name);
}

int wa_parse_notification(const char *body, wa_inmsg **out)
{
    *out = NULL;
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return -EINVAL;
    }
    int n = 0, cap = 0;
    wa_inmsg *v = NULL;
    const cJSON *entry, *change, *m;
    cJSON_ArrayForEach(entry, cJSON_GetObjectItemCaseSensitive(j, "entry"))
    {
        cJSON_ArrayForEach(change, cJSON_GetObjectItemCaseSensitive(entry, "changes"))
        {
            const cJSON *val = cJSON_GetObjectItemCaseSensitive(change, "value");
            const cJSON *contacts = cJSON_GetObjectItemCaseSensitive(val, "contacts");
            cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(val, "messages"))
            {
                const char *id = jstr(m, "id"), *from = jstr(m, "from");
                if (!id || !*id || !from || !*from || n >= 1000)
                    continue;
                if (n == cap) {
                    cap = cap ? cap * 2 : 4;
                    v = rt_xrealloc(v, (size_t)cap * sizeof(*v));
                }
                wa_inmsg *x = &v[n++];
                x->id = rt_xstrdup(id);
                x->from = rt_xstrdup(from);
                x->name = NULL;
                const cJSON *c;
                cJSON_ArrayForEach(c, contacts)
                {
                    const char *wid = jstr(c, "wa_id");
                    const char *nm = jstr(cJSON_GetObjectItemCaseSensitive(c, "profile"), "name");
                    if (wid && nm && strcmp(wid, from) == 0 && !x->name)
                        x->name = rt_xstrdup(nm);
                }
                x->text = text_of(m);
                x->media_id = x->mime = x->filename = x->caption = NULL;
                x->kind = GW_KIND_TEXT;
                media_of(m, x);
            }
        }
    }
    cJSON_Delete(j);
    *out = v;
    return n;
}

void wa_inmsgs_free(wa_inmsg *v, int n)
{
    for (int i = 0; i < n; i++) {
        rt_free(v[i].id);
        rt_free(v[i].from);
        rt_free(v[i].name);
        rt_free(v[i].text);
        rt_free(v[i].media_id);
        rt_free(v[i].mime);
        rt_free(v[i].filename);
        rt_free(v[i].caption);
    }
    rt_free(v);
}

/* ---------------------------------------------------------------- send answers */

static bool code_in(int code, const int *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == code)
            return true;
    return false;
}

void wa_send_verdict(int err, int status, const char *body, size_t len, int64_t retry_after_s,
                     wa_verdict *v)
{
    /* Throttling (Meta: "Throttling errors", answered 429 or 400) and transient server
     * errors: the same message goes through later. */
    static const int throttled[] = {4, 80007, 130429, 131048, 131056};
    static const int transient[] = {2, 131000, 131016};
    static const int auth[] = {0, 10, 190};
    memset(v, 0, sizeof(*v));
    if (retry_after_s > 0)
        v->retry_after_ms = (retry_after_s < 3600 ? retry_after_s : 3600) * 1000;
    if (err) {
        v->err = err;
        snprintf(v->why, sizeof(v->why), "%s%s", rt_strerror(err),
                 err == -ETIMEDOUT ? " (the message may have been sent)" : "");
        return;
    }
    cJSON *j = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    if (status >= 200 && status < 300) {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, 0), "id");
        if (!cJSON_IsString(id) || !*id->valuestring) {
            v->err = -EIO;
            snprintf(v->why, sizeof(v->why), "HTTP %d without a message id", status);
        }
        cJSON_Delete(j);
        return;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
    const cJSON *det = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(e, "error_data"), "details");
    bool has_code = cJSON_IsNumber(code);
    v->code = has_code ? (int)code->valuedouble : 0;
    int n = snprintf(v->why, sizeof(v->why), "HTTP %d", status);
    if (n > 0 && (size_t)n < sizeof(v->why) && cJSON_IsString(msg))
        n += snprintf(v->why + n, sizeof(v->why) - (size_t)n, " %s", msg->valuestring);
    else if (n > 0 && (size_t)n < sizeof(v->why) && has_code)
        n += snprintf(v->why + n, sizeof(v->why) - (size_t)n, " (#%d)", v->code);
    if (n > 0 && (size_t)n < sizeof(v->why) && cJSON_IsString(det) && *det->valuestring)
        snprintf(v->why + n, sizeof(v->why) - (size_t)n, ": %s", det->valuestring);
    cJSON_Delete(j);
    if (status == 429 || (has_code && code_in(v->code, throttled, 5)))
        v->err = -EAGAIN;
    else if (status >= 500 || status == 408 || (has_code && code_in(v->code, transient, 3)))
        v->err = -EIO;
    else if (status == 401 || status == 403 ||
             (has_code && (code_in(v->code, auth, 3) || (v->code >= 200 && v->code <= 299))))
        v->err = -EACCES;
    else {
        v->err = -EPERM;
        v->permanent = true;
    }
}
