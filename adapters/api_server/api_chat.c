/*
 * api_chat — the chat-completions request and the JSON the API server answers with
 * (gateway.md §10.2-10.3). Pure functions: no I/O, no actor state.
 */
#include "api_int.h"

#include "rt_alloc.h"
#include "rt_util.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

/* ============================================================ content text */

/* Bytes of s[0..n) that fit in `room`, cut so that no UTF-8 sequence is split. */
static size_t utf8_fit(const char *s, size_t n, size_t room)
{
    if (n <= room)
        return n;
    size_t k = room;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return k;
}

/* Append what fits under API__TEXT_MAX. */
static void put(rt_buf *out, const char *s, size_t n)
{
    size_t room = out->len < API__TEXT_MAX ? API__TEXT_MAX - out->len : 0;
    size_t k = utf8_fit(s, n, room);
    if (k)
        (void)rt_buf_append(out, s, k); /* within API__TEXT_MAX, below the buffer's max */
}

/* Python's str() of a scalar the way the original saw it (json numbers, True/False). */
static void put_scalar(rt_buf *out, const cJSON *v)
{
    if (cJSON_IsString(v)) {
        put(out, v->valuestring, strlen(v->valuestring));
    } else if (cJSON_IsBool(v)) {
        put(out, cJSON_IsTrue(v) ? "True" : "False", cJSON_IsTrue(v) ? 4 : 5);
    } else if (!cJSON_IsNull(v) && !cJSON_IsInvalid(v)) {
        char *s = cJSON_PrintUnformatted(v);
        if (s)
            put(out, s, strlen(s));
        cJSON_free(s);
    }
}

/* A part's value counts when Python would find it truthy. */
static bool truthy(const cJSON *v)
{
    if (cJSON_IsString(v))
        return v->valuestring[0] != '\0';
    if (cJSON_IsNumber(v))
        return v->valuedouble != 0;
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    if (cJSON_IsArray(v) || cJSON_IsObject(v))
        return v->child != NULL;
    return false;
}

/* The part's type, trimmed and lower-cased, is one of the text types. */
static bool is_text_part(const cJSON *item)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(item, "type");
    if (!cJSON_IsString(t))
        return false;
    const char *s = t->valuestring;
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    static const char *const kinds[] = {"text", "input_text", "output_text"};
    for (size_t i = 0; i < RT_ARRAY_LEN(kinds); i++)
        if (strlen(kinds[i]) == n && strncasecmp(s, kinds[i], n) == 0)
            return true;
    return false;
}

static void norm(const cJSON *c, rt_buf *out, int depth);

/* One list: parts joined with "\n", stopping once the text is full. */
static void norm_list(const cJSON *list, rt_buf *out, int depth)
{
    size_t parts = 0, seen = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        if (seen++ >= API__PARTS_MAX || out->len >= API__TEXT_MAX)
            break;
        rt_buf part;
        rt_buf_init(&part, API__TEXT_MAX);
        if (cJSON_IsString(item)) {
            put(&part, item->valuestring, strlen(item->valuestring));
        } else if (cJSON_IsObject(item) && is_text_part(item)) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(item, "text");
            if (truthy(t))
                put_scalar(&part, t);
        } else if (cJSON_IsArray(item)) {
            norm(item, &part, depth + 1);
        }
        /* other parts (images, files) are ignored, as the original did */
        if (part.len) {
            if (parts++)
                put(out, "\n", 1);
            put(out, part.data, part.len);
        }
        rt_buf_fini(&part);
    }
}

static void norm(const cJSON *c, rt_buf *out, int depth)
{
    if (depth > API__DEPTH_MAX || !c)
        return;
    if (cJSON_IsArray(c))
        norm_list(c, out, depth);
    else
        put_scalar(out, c);
}

void api__normalize_content(const cJSON *content, rt_buf *out)
{
    norm(content, out, 0);
}

static char *normalized(const cJSON *content)
{
    rt_buf b;
    rt_buf_init(&b, API__TEXT_MAX);
    api__normalize_content(content, &b);
    return rt_buf_steal(&b, NULL);
}

/* ============================================================ session ids */

static void sha256(const void *p, size_t n, uint8_t out[API__DIGEST])
{
    unsigned len = API__DIGEST;
    RT_VERIFY(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1);
}

void api__derive_session_id(const char *system, const char *first_user, char *out, size_t outlen)
{
    char *seed = rt_xasprintf("%s\n%s", system ? system : "", first_user ? first_user : "");
    uint8_t d[API__DIGEST];
    sha256(seed, strlen(seed), d);
    rt_free(seed);
    snprintf(out, outlen, "api-%02x%02x%02x%02x%02x%02x%02x%02x", d[0], d[1], d[2], d[3], d[4],
             d[5], d[6], d[7]);
}

bool api__session_id_valid(const char *sid)
{
    size_t n = strlen(sid);
    if (n == 0 || n > API__SID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)sid[i] < 0x20 || sid[i] == 0x7f)
            return false;
    return true;
}

void api__completion_id(char *out, size_t outlen)
{
    uint8_t r[15];
    if (RAND_bytes(r, sizeof(r)) != 1) {
        /* never expected; an id only needs to be unique, not secret */
        uint64_t x = rt_hash_u64((uint64_t)(uintptr_t)out ^ (uint64_t)getpid());
        for (size_t i = 0; i < sizeof(r); i++)
            r[i] = (uint8_t)(rt_hash_u64(x + i) >> 8);
    }
    char hex[31];
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(hex + 2 * i, 3, "%02x", r[i]);
    snprintf(out, outlen, "chatcmpl-%.29s", hex);
}

/* ============================================================ the request */

void api__chat_fini(api_chat *c)
{
    rt_free(c->text);
    rt_free(c->system);
    rt_free(c->first_user);
    rt_free(c->model);
    cJSON_Delete(c->history);
    memset(c, 0, sizeof(*c));
}

static int bad_request(char **errjson, const char *msg, const char *param)
{
    *errjson = api__error_json(msg, NULL, param, NULL);
    return 400;
}

/* Python truthiness of "stream". */
static bool stream_flag(const cJSON *v)
{
    return cJSON_IsTrue(v) || (cJSON_IsNumber(v) && v->valuedouble != 0) ||
           (cJSON_IsString(v) && v->valuestring[0]);
}

static bool blank(const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return *s == '\0';
}

/* Fingerprint for Idempotency-Key: model, messages, tools, tool_choice and stream as sent,
 * and extra (the session header). */
static void fingerprint(const cJSON *root, const char *extra, uint8_t out[API__DIGEST])
{
    static const char *const keys[] = {"model", "messages", "tools", "tool_choice", "stream"};
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    RT_VERIFY(md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1);
    for (size_t i = 0; i < RT_ARRAY_LEN(keys); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, keys[i]);
        char *s = v ? cJSON_PrintUnformatted(v) : NULL;
        const char *p = s ? s : "null";
        EVP_DigestUpdate(md, p, strlen(p) + 1); /* the NUL separates the fields */
        cJSON_free(s);
    }
    EVP_DigestUpdate(md, extra, strlen(extra));
    unsigned len = API__DIGEST;
    RT_VERIFY(EVP_DigestFinal_ex(md, out, &len) == 1);
    EVP_MD_CTX_free(md);
}

/* Walk messages: system texts joined, user/assistant kept in order. 0 or 400. */
static int walk_messages(const cJSON *msgs, api_chat *c, cJSON *conv, char **errjson)
{
    rt_buf sys;
    rt_buf_init(&sys, (size_t)API_SERVER_MAX_BODY * 2);
    bool any_sys = false;
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        if (!cJSON_IsObject(m)) {
            char param[40];
            snprintf(param, sizeof(param), "messages[%d]", i);
            rt_buf_fini(&sys);
            return bad_request(errjson, "Each message must be an object with a role and content",
                               param);
        }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const char *r = cJSON_IsString(role) ? role->valuestring : "";
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!strcmp(r, "system")) {
            char *t = normalized(content);
            if (any_sys)
                (void)rt_buf_append(&sys, "\n", 1);
            (void)rt_buf_append_str(&sys, t); /* bounded by the body size */
            rt_free(t);
            any_sys = true;
        } else if (!strcmp(r, "user") || !strcmp(r, "assistant")) {
            char *t = normalized(content);
            if (!c->first_user && !strcmp(r, "user"))
                c->first_user = rt_xstrdup(t);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "role", r);
            cJSON_AddStringToObject(o, "content", t);
            cJSON_AddItemToArray(conv, o);
            rt_free(t);
        }
        i++;
    }
    c->system = any_sys ? rt_buf_steal(&sys, NULL) : NULL;
    rt_buf_fini(&sys);
    return 0;
}

/* The last conversation message becomes the input; the ones before it the history. */
static int split_input(cJSON *conv, api_chat *c, char **errjson)
{
    int n = cJSON_GetArraySize(conv);
    cJSON *last = n ? cJSON_DetachItemFromArray(conv, n - 1) : NULL;
    const cJSON *t = last ? cJSON_GetObjectItemCaseSensitive(last, "content") : NULL;
    if (!cJSON_IsString(t) || blank(t->valuestring)) {
        cJSON_Delete(last);
        cJSON_Delete(conv);
        return bad_request(errjson, "No user message found in messages", NULL);
    }
    c->text = rt_xstrdup(t->valuestring);
    cJSON_Delete(last);
    if (n > 1)
        c->history = conv;
    else
        cJSON_Delete(conv);
    if (!c->first_user)
        c->first_user = rt_xstrdup("");
    return 0;
}

int api__chat_parse(const char *body, size_t len, const char *fp_extra, api_chat *c, char **errjson)
{
    memset(c, 0, sizeof(*c));
    *errjson = NULL;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bad_request(errjson, "Invalid JSON in request body", NULL);
    }
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!cJSON_IsArray(msgs) || !msgs->child) {
        cJSON_Delete(root);
        return bad_request(errjson, "Missing or invalid 'messages' field", "messages");
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (cJSON_IsString(model) && model->valuestring[0])
        c->model = rt_xstrdup(model->valuestring);
    c->stream = stream_flag(cJSON_GetObjectItemCaseSensitive(root, "stream"));
    if (fp_extra)
        fingerprint(root, fp_extra, c->fp);
    cJSON *conv = cJSON_CreateArray();
    int st = walk_messages(msgs, c, conv, errjson);
    cJSON_Delete(root);
    if (st) {
        cJSON_Delete(conv);
        api__chat_fini(c);
        return st;
    }
    st = split_input(conv, c, errjson);
    if (st)
        api__chat_fini(c);
    return st;
}

/* ============================================================ answers */

char *api__error_json(const char *message, const char *type, const char *param, const char *code)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type ? type : "invalid_request_error");
    if (param)
        cJSON_AddStringToObject(e, "param", param);
    else
        cJSON_AddNullToObject(e, "param");
    if (code)
        cJSON_AddStringToObject(e, "code", code);
    else
        cJSON_AddNullToObject(e, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    char *out = rt_xstrdup(s);
    cJSON_free(s);
    return out;
}

static char *print_free(cJSON *root)
{
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    RT_VERIFY(s != NULL);
    char *out = rt_xstrdup(s);
    cJSON_free(s);
    return out;
}

static void add_usage(cJSON *root, int64_t prompt, int64_t completion)
{
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)completion);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(prompt + completion));
}

char *api__completion_json(const char *id, int64_t created, const char *model, const char *content,
                           int64_t prompt_tokens, int64_t completion_tokens)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", id);
    cJSON_AddStringToObject(root, "object", "chat.completion");
    cJSON_AddNumberToObject(root, "created", (double)created);
    cJSON_AddStringToObject(root, "model", model);
    cJSON *ch = cJSON_AddArrayToObject(root, "choices");
    cJSON *c0 = cJSON_CreateObject();
    cJSON_AddNumberToObject(c0, "index", 0);
    cJSON *msg = cJSON_AddObjectToObject(c0, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", content ? content : "");
    cJSON_AddStringToObject(c0, "finish_reason", "stop");
    cJSON_AddItemToArray(ch, c0);
    add_usage(root, prompt_tokens, completion_tokens);
    return print_free(root);
}

char *api__chunk_frame(const char *id, int64_t created, const char *model, const char *role,
                       const char *content, bool final, int64_t prompt_tokens,
                       int64_t completion_tokens)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", id);
    cJSON_AddStringToObject(root, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(root, "created", (double)created);
    cJSON_AddStringToObject(root, "model", model);
    cJSON *ch = cJSON_AddArrayToObject(root, "choices");
    cJSON *c0 = cJSON_CreateObject();
    cJSON_AddNumberToObject(c0, "index", 0);
    cJSON *delta = cJSON_AddObjectToObject(c0, "delta");
    if (role)
        cJSON_AddStringToObject(delta, "role", role);
    if (content)
        cJSON_AddStringToObject(delta, "content", content);
    if (final)
        cJSON_AddStringToObject(c0, "finish_reason", "stop");
    else
        cJSON_AddNullToObject(c0, "finish_reason");
    cJSON_AddItemToArray(ch, c0);
    if (final)
        add_usage(root, prompt_tokens, completion_tokens);
    char *json = print_free(root);
    char *frame = rt_xasprintf("data: %s\n\n", json);
    rt_free(json);
    return frame;
}

char *api__progress_frame(const char *tool, const char *emoji, const char *label)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "tool", tool);
    cJSON_AddStringToObject(root, "emoji", emoji ? emoji : "");
    cJSON_AddStringToObject(root, "label", label ? label : tool);
    char *json = print_free(root);
    char *frame = rt_xasprintf("event: hermes.tool.progress\ndata: %s\n\n", json);
    rt_free(json);
    return frame;
}

char *api__models_json(const char *model, int64_t now)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", model);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)now);
    cJSON_AddStringToObject(m, "owned_by", "hermes");
    cJSON_AddArrayToObject(m, "permission");
    cJSON_AddStringToObject(m, "root", model);
    cJSON_AddNullToObject(m, "parent");
    cJSON_AddItemToArray(data, m);
    return print_free(root);
}

/* Copy key from the status file, or add dflt (NULL: JSON null). */
static void copy_or(cJSON *dst, const cJSON *src, const char *key, cJSON *dflt)
{
    const cJSON *v = src ? cJSON_GetObjectItemCaseSensitive(src, key) : NULL;
    if (v) {
        cJSON_AddItemToObject(dst, key, cJSON_Duplicate(v, 1));
        cJSON_Delete(dflt);
    } else {
        cJSON_AddItemToObject(dst, key, dflt ? dflt : cJSON_CreateNull());
    }
}

char *api__health_detailed_json(const char *status_file, size_t len)
{
    cJSON *st = status_file ? cJSON_ParseWithLength(status_file, len) : NULL;
    if (st && !cJSON_IsObject(st)) {
        cJSON_Delete(st);
        st = NULL;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "status", "ok");
    cJSON_AddStringToObject(root, "platform", "hermes-agent");
    copy_or(root, st, "gateway_state", NULL);
    copy_or(root, st, "platforms", cJSON_CreateObject());
    copy_or(root, st, "active_agents", cJSON_CreateNumber(0));
    copy_or(root, st, "exit_reason", NULL);
    copy_or(root, st, "updated_at", NULL);
    cJSON_AddNumberToObject(root, "pid", (double)getpid());
    cJSON_Delete(st);
    return print_free(root);
}
