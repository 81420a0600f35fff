/*
 * mem_store — see mem_store.h.
 */
#include "mem_store.h"

#include "mem_file.h"
#include "tool_scan.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PREVIEW_CHARS 80 /* the original's e[:80] in "Multiple entries matched" */

/* Not in the original, whose strings are always Unicode: bytes that are not UTF-8 would make
 * the file unreadable for every later call (mem_file_load refuses it), so they never go in. */
static const char NOT_UTF8[] = "Content is not valid UTF-8 text.";

const char *mem_target_file(const char *target)
{
    if (!target)
        return NULL;
    if (strcmp(target, "memory") == 0)
        return "MEMORY.md";
    if (strcmp(target, "user") == 0)
        return "USER.md";
    return NULL;
}

cJSON *mem_error(const char *text)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", false);
    cJSON_AddStringToObject(o, "error", text);
    return o;
}

/* ================================================================== scan */

/* tool_scan reports curl and wget exfiltration as one finding; the original names them
 * exfil_curl and exfil_wget. This tells them apart once the combined pattern matched. */
static regex_t curl_rx;
static bool curl_rx_ok;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void compile_curl(void)
{
    curl_rx_ok = regcomp(&curl_rx,
                         "curl[[:space:]][^\n]*\\$[{]?[A-Za-z0-9_]*"
                         "(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|API)",
                         REG_EXTENDED | REG_ICASE | REG_NOSUB) == 0;
}

static const struct {
    const char *utf8;
    unsigned cp;
} invisible[] = {
    {"\xe2\x80\x8b", 0x200B}, {"\xe2\x80\x8c", 0x200C}, {"\xe2\x80\x8d", 0x200D},
    {"\xe2\x81\xa0", 0x2060}, {"\xef\xbb\xbf", 0xFEFF}, {"\xe2\x80\xaa", 0x202A},
    {"\xe2\x80\xab", 0x202B}, {"\xe2\x80\xac", 0x202C}, {"\xe2\x80\xad", 0x202D},
    {"\xe2\x80\xae", 0x202E},
};

bool mem_scan(const char *content, char *msg, size_t msglen)
{
    /* The first invisible character in the text (the original checks a set, in no
     * particular order; any one found blocks the entry). */
    const char *first = NULL;
    unsigned cp = 0;
    for (size_t i = 0; i < RT_ARRAY_LEN(invisible); i++) {
        const char *p = strstr(content, invisible[i].utf8);
        if (p && (!first || p < first)) {
            first = p;
            cp = invisible[i].cp;
        }
    }
    if (first) {
        snprintf(msg, msglen,
                 "Blocked: content contains invisible unicode character U+%04X (possible "
                 "injection).",
                 cp);
        return true;
    }
    char ids[256];
    if (!tool_scan(content, TOOL_SCAN_MEMORY, ids, sizeof(ids)))
        return false;
    char *comma = strchr(ids, ',');
    if (comma)
        *comma = '\0'; /* the first finding, in the original's pattern order */
    if (strcmp(ids, "exfil_curl") == 0) {
        pthread_once(&curl_once, compile_curl);
        if (curl_rx_ok && regexec(&curl_rx, content, 0, NULL, 0) != 0)
            rt_strlcpy(ids, "exfil_wget", sizeof(ids));
    }
    snprintf(msg, msglen,
             "Blocked: content matches threat pattern '%s'. Memory entries are injected into the "
             "system prompt and must not contain injection or exfiltration payloads.",
             ids);
    return true;
}

/* ============================================================ responses */

static cJSON *string_array(const mem_entries *e)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < e->n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(e->v[i]));
    return a;
}

static size_t limit_for(const mem_store *s, const char *target)
{
    if (strcmp(target, "user") == 0)
        return s->user_limit ? s->user_limit : MEM_USER_LIMIT;
    return s->memory_limit ? s->memory_limit : MEM_MEMORY_LIMIT;
}

/* The original's _success_response. */
static cJSON *success(const char *target, const mem_entries *e, size_t limit, const char *message)
{
    size_t cur = mem_chars(e);
    char scur[32], slim[32], usage[96];
    mem_format_thousands(cur, scur, sizeof(scur));
    mem_format_thousands(limit, slim, sizeof(slim));
    snprintf(usage, sizeof(usage), "%u%% \xe2\x80\x94 %s/%s chars", mem_pct(cur, limit), scur,
             slim);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddStringToObject(o, "target", target);
    cJSON_AddItemToObject(o, "entries", string_array(e));
    cJSON_AddStringToObject(o, "usage", usage);
    cJSON_AddNumberToObject(o, "entry_count", (double)e->n);
    cJSON_AddStringToObject(o, "message", message);
    return o;
}

static cJSON *errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static cJSON *errorf(const char *fmt, ...)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2); /* the texts quoted are the model's own arguments */
    va_list ap;
    va_start(ap, fmt);
    (void)rt_buf_vprintf(&b, fmt, ap); /* cannot reach the limit above */
    va_end(ap);
    cJSON *o = mem_error(rt_buf_cstr(&b));
    rt_buf_fini(&b);
    return o;
}

/* =============================================================== updates */

enum op_kind { OP_ADD, OP_REPLACE, OP_REMOVE };

typedef struct op {
    enum op_kind kind;
    const char *target;
    const char *content;  /* stripped; ADD, REPLACE */
    const char *old_text; /* stripped; REPLACE, REMOVE */
    size_t limit;
} op;

static cJSON *do_add(const op *o, mem_entries *e, bool *changed)
{
    if (mem_entries_find(e, o->content) >= 0)
        return success(o->target, e, o->limit, "Entry already exists (no duplicate added).");
    size_t cur = mem_chars(e);
    size_t n = mem_utf8_len(o->content);
    size_t total = cur + (e->n ? 3 : 0) + n;
    if (total > o->limit) {
        char scur[32], slim[32];
        mem_format_thousands(cur, scur, sizeof(scur));
        mem_format_thousands(o->limit, slim, sizeof(slim));
        cJSON *r = errorf("Memory at %s/%s chars. Adding this entry (%zu chars) would exceed the "
                          "limit. Replace or remove existing entries first.",
                          scur, slim, n);
        cJSON_AddItemToObject(r, "current_entries", string_array(e));
        char usage[80];
        snprintf(usage, sizeof(usage), "%s/%s", scur, slim);
        cJSON_AddStringToObject(r, "usage", usage);
        return r;
    }
    mem_entries_push(e, o->content);
    *changed = true;
    return success(o->target, e, o->limit, "Entry added.");
}

/* The entry old_text identifies (the original's matching rules), or -1 with *err set. */
static long find_one(const op *o, const mem_entries *e, cJSON **err)
{
    long first = -1;
    bool distinct = false;
    for (size_t i = 0; i < e->n; i++) {
        if (!strstr(e->v[i], o->old_text))
            continue;
        if (first < 0)
            first = (long)i;
        else if (strcmp(e->v[i], e->v[first]) != 0)
            distinct = true;
    }
    if (first < 0) {
        *err = errorf("No entry matched '%s'.", o->old_text);
        return -1;
    }
    if (!distinct)
        return first; /* one match, or identical duplicates: the first */
    *err = errorf("Multiple entries matched '%s'. Be more specific.", o->old_text);
    cJSON *previews = cJSON_CreateArray();
    for (size_t i = 0; i < e->n; i++) {
        if (!strstr(e->v[i], o->old_text))
            continue;
        size_t cut = mem_utf8_prefix(e->v[i], PREVIEW_CHARS);
        char *p = rt_xasprintf("%.*s%s", (int)cut, e->v[i], e->v[i][cut] ? "..." : "");
        cJSON_AddItemToArray(previews, cJSON_CreateString(p));
        rt_free(p);
    }
    cJSON_AddItemToObject(*err, "matches", previews);
    return -1;
}

static cJSON *do_replace(const op *o, mem_entries *e, bool *changed)
{
    cJSON *err = NULL;
    long idx = find_one(o, e, &err);
    if (idx < 0)
        return err;
    size_t total = mem_chars(e) - mem_utf8_len(e->v[idx]) + mem_utf8_len(o->content);
    if (total > o->limit) {
        char stot[32], slim[32];
        mem_format_thousands(total, stot, sizeof(stot));
        mem_format_thousands(o->limit, slim, sizeof(slim));
        return errorf("Replacement would put memory at %s/%s chars. Shorten the new content or "
                      "remove other entries first.",
                      stot, slim);
    }
    rt_free(e->v[idx]);
    e->v[idx] = rt_xstrdup(o->content);
    *changed = true;
    return success(o->target, e, o->limit, "Entry replaced.");
}

static cJSON *do_remove(const op *o, mem_entries *e, bool *changed)
{
    cJSON *err = NULL;
    long idx = find_one(o, e, &err);
    if (idx < 0)
        return err;
    rt_free(e->v[idx]);
    memmove(&e->v[idx], &e->v[idx + 1], (e->n - (size_t)idx - 1) * sizeof(e->v[0]));
    e->n--;
    *changed = true;
    return success(o->target, e, o->limit, "Entry removed.");
}

static const char *load_reason(int err)
{
    switch (err) {
    case -EILSEQ: return "it is not UTF-8 text (left unchanged; fix or remove it by hand)";
    case -E2BIG: return "it is larger than 1 MiB (left unchanged)";
    default: return rt_strerror(err);
    }
}

/* Lock the target's file, re-read it, apply o, rewrite it if it changed, unlock. */
static cJSON *locked_update(const mem_store *s, const op *o)
{
    char *path = rt_xasprintf("%s/%s", s->dir, mem_target_file(o->target));
    cJSON *r = NULL;
    int fd = -1;
    int err = mem_dir_ensure(s->dir);
    if (err) {
        r = errorf("Failed to write memory file %s: %s", path, rt_strerror(err));
        goto out_free;
    }
    err = mem_file_lock(path, s->lock_timeout_ms ? s->lock_timeout_ms : MEM_LOCK_TIMEOUT_MS, &fd);
    if (err) {
        r = errorf("Failed to lock memory file %s: %s", path,
                   err == -ETIMEDOUT ? "another writer held it too long; try again"
                                     : rt_strerror(err));
        goto out_free;
    }
    mem_entries e;
    err = mem_file_load(path, &e);
    if (err) {
        r = errorf("Failed to read memory file %s: %s", path, load_reason(err));
        goto out_unlock;
    }
    bool changed = false;
    switch (o->kind) {
    case OP_ADD: r = do_add(o, &e, &changed); break;
    case OP_REPLACE: r = do_replace(o, &e, &changed); break;
    case OP_REMOVE: r = do_remove(o, &e, &changed); break;
    }
    if (changed) {
        err = mem_file_save(path, &e);
        if (err) {
            cJSON_Delete(r);
            r = errorf("Failed to write memory file %s: %s", path, rt_strerror(err));
        }
    }
    mem_entries_fini(&e);
out_unlock:
    mem_file_unlock(fd);
out_free:
    rt_free(path);
    return r;
}

cJSON *mem_store_add(const mem_store *s, const char *target, const char *content)
{
    char *c = mem_strip(content, strlen(content));
    cJSON *r;
    char msg[512];
    if (!*c)
        r = mem_error("Content cannot be empty.");
    else if (!mem_utf8_valid(c, strlen(c)))
        r = mem_error(NOT_UTF8);
    else if (mem_scan(c, msg, sizeof(msg)))
        r = mem_error(msg);
    else
        r = locked_update(s, &(op){OP_ADD, target, c, NULL, limit_for(s, target)});
    rt_free(c);
    return r;
}

cJSON *mem_store_replace(const mem_store *s, const char *target, const char *old_text,
                         const char *content)
{
    char *old = mem_strip(old_text, strlen(old_text));
    char *c = mem_strip(content, strlen(content));
    cJSON *r;
    char msg[512];
    if (!*old)
        r = mem_error("old_text cannot be empty.");
    else if (!*c)
        r = mem_error("new_content cannot be empty. Use 'remove' to delete entries.");
    else if (!mem_utf8_valid(c, strlen(c)))
        r = mem_error(NOT_UTF8);
    else if (mem_scan(c, msg, sizeof(msg)))
        r = mem_error(msg);
    else
        r = locked_update(s, &(op){OP_REPLACE, target, c, old, limit_for(s, target)});
    rt_free(old);
    rt_free(c);
    return r;
}

cJSON *mem_store_remove(const mem_store *s, const char *target, const char *old_text)
{
    char *old = mem_strip(old_text, strlen(old_text));
    cJSON *r;
    if (!*old)
        r = mem_error("old_text cannot be empty.");
    else
        r = locked_update(s, &(op){OP_REMOVE, target, NULL, old, limit_for(s, target)});
    rt_free(old);
    return r;
}
