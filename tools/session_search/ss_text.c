/*
 * ss_text — see ss_text.h.
 */
#include "ss_text.h"

#include "mem_file.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PHRASE_MARK '\x01' /* stands for a kept "phrase" while the rest is cleaned */

/* ============================================================= sanitising */

static bool is_word(unsigned char c)
{
    return isalnum(c) || c == '_' || c >= 0x80; /* non-ASCII counts as a word character */
}

static bool is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Steps 1 and 2: balanced phrases out (replaced by marks), control characters and FTS5
 * punctuation to spaces. */
static void extract_phrases(const char *q, rt_buf *out, cJSON *phrases)
{
    for (const char *p = q; *p; p++) {
        if (*p == '"') {
            const char *close = strchr(p + 1, '"');
            if (close) {
                char *ph = rt_xstrndup(p, (size_t)(close - p + 1));
                cJSON_AddItemToArray(phrases, cJSON_CreateString(ph));
                rt_free(ph);
                rt_buf_printf(out, "%c%d%c", PHRASE_MARK, cJSON_GetArraySize(phrases) - 1,
                              PHRASE_MARK);
                p = close;
                continue;
            }
        }
        unsigned char c = (unsigned char)*p;
        bool special = c < 0x20 || c == 0x7F || strchr("+{}():\"^", c);
        rt_buf_append(out, special ? " " : p, 1);
    }
}

/* Step 3: one * for a run, none at the start of a word. */
static void fix_stars(const char *s, rt_buf *out)
{
    for (const char *p = s; *p; p++) {
        if (*p == '*') {
            while (p[1] == '*')
                p++;
            size_t len = out->len;
            if (len == 0 || is_space((unsigned char)rt_buf_cstr(out)[len - 1]))
                continue;
        }
        rt_buf_append(out, p, 1);
    }
}

static bool is_operator(const char *w, size_t n)
{
    return (n == 3 && (strncasecmp(w, "AND", 3) == 0 || strncasecmp(w, "NOT", 3) == 0)) ||
           (n == 2 && strncasecmp(w, "OR", 2) == 0);
}

/* Step 4: trim, then drop one leading and one trailing AND/OR/NOT. [*a, *b) is the result. */
static void drop_edge_operators(const char **a, const char **b)
{
    while (*a < *b && is_space((unsigned char)**a))
        (*a)++;
    while (*b > *a && is_space((unsigned char)(*b)[-1]))
        (*b)--;
    const char *w = *a;
    while (w < *b && isalpha((unsigned char)*w))
        w++;
    if (is_operator(*a, (size_t)(w - *a)) && (w == *b || !is_word((unsigned char)*w))) {
        *a = w;
        while (*a < *b && is_space((unsigned char)**a))
            (*a)++;
    }
    const char *e = *b;
    while (e > *a && isalpha((unsigned char)e[-1]))
        e--;
    if (e > *a && is_space((unsigned char)e[-1]) && is_operator(e, (size_t)(*b - e))) {
        *b = e;
        while (*b > *a && is_space((unsigned char)(*b)[-1]))
            (*b)--;
    }
}

/* The end of the word run at p. */
static const char *word_end(const char *p, const char *end)
{
    while (p < end && is_word((unsigned char)*p))
        p++;
    return p;
}

/* Step 5 and 6: words joined by . _ - as "phrases", marks back to their phrases. */
static void quote_joined(const char *a, const char *b, const cJSON *phrases, rt_buf *out)
{
    const char *p = a;
    while (p < b) {
        if (*p == PHRASE_MARK) {
            const char *close = memchr(p + 1, PHRASE_MARK, (size_t)(b - p - 1));
            int64_t idx = 0;
            for (const char *d = p + 1; close && d < close; d++)
                idx = idx * 10 + (*d - '0');
            const cJSON *ph = close ? cJSON_GetArrayItem(phrases, (int)idx) : NULL;
            if (ph)
                rt_buf_append_str(out, ph->valuestring);
            p = close ? close + 1 : b;
            continue;
        }
        if (!is_word((unsigned char)*p) || (p > a && is_word((unsigned char)p[-1]))) {
            rt_buf_append(out, p, 1);
            p++;
            continue;
        }
        const char *e = word_end(p, b);
        /* Python's \w includes "_": \w+(?:[._-]\w+)+ also matches one run of word
         * characters with a "_" that has a character on each side ("x_y", "a__"). */
        int joins = 0;
        for (const char *u = p + 1; u + 1 < e; u++)
            joins += *u == '_';
        while (e + 1 < b && strchr(".-", *e) && is_word((unsigned char)e[1])) {
            e = word_end(e + 1, b);
            joins++;
        }
        if (joins)
            rt_buf_append_str(out, "\"");
        rt_buf_append(out, p, (size_t)(e - p));
        if (joins)
            rt_buf_append_str(out, "\"");
        p = e;
    }
}

char *ss_sanitize(const char *query)
{
    cJSON *phrases = cJSON_CreateArray();
    rt_buf s1, s3, out;
    rt_buf_init(&s1, SIZE_MAX / 2);
    rt_buf_init(&s3, SIZE_MAX / 2);
    rt_buf_init(&out, SIZE_MAX / 2);
    extract_phrases(query ? query : "", &s1, phrases);
    fix_stars(rt_buf_cstr(&s1), &s3);
    const char *a = rt_buf_cstr(&s3), *b = a + s3.len;
    drop_edge_operators(&a, &b);
    quote_joined(a, b, phrases, &out);
    rt_buf_fini(&s1);
    rt_buf_fini(&s3);
    cJSON_Delete(phrases);
    char *r = mem_strip(rt_buf_cstr(&out), out.len);
    rt_buf_fini(&out);
    return r;
}

char *ss_quote_terms(const char *query)
{
    rt_buf out;
    rt_buf_init(&out, SIZE_MAX / 2);
    const char *p = query ? query : "";
    while (*p) {
        while (*p && is_space((unsigned char)*p))
            p++;
        const char *start = p;
        while (*p && !is_space((unsigned char)*p))
            p++;
        size_t len = (size_t)(p - start);
        if ((len == 3 && strncmp(start, "AND", 3) == 0) ||
            (len == 2 && strncmp(start, "OR", 2) == 0))
            continue; /* a misplaced AND / OR: the words around it are searched together */
        bool opened = false;
        for (const char *c = start; c < p; c++) {
            if (*c == '"' || (unsigned char)*c < 0x20)
                continue;
            if (!opened)
                rt_buf_append_str(&out, out.len ? " \"" : "\"");
            opened = true;
            rt_buf_append(&out, c, 1);
        }
        if (opened)
            rt_buf_append_str(&out, "\"");
    }
    return rt_buf_steal(&out, NULL);
}

/* ========================================================== transcripts */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void part(rt_buf *b, const char *label, const char *text)
{
    if (b->len)
        rt_buf_append_str(b, "\n\n");
    rt_buf_printf(b, "[%s]: %s", label, text);
}

/* The original's "[TOOL:name]: ..." with long outputs cut to their first and last 250. */
static void tool_part(rt_buf *b, const char *name, const char *content)
{
    size_t n = mem_utf8_len(content);
    if (n <= SS_TOOL_OUTPUT_CHARS) {
        char *label = rt_xasprintf("TOOL:%s", name);
        part(b, label, content);
        rt_free(label);
        return;
    }
    size_t keep = SS_TOOL_OUTPUT_CHARS / 2;
    size_t head = mem_utf8_prefix(content, keep);
    size_t tail = mem_utf8_prefix(content, n - keep);
    if (b->len)
        rt_buf_append_str(b, "\n\n");
    rt_buf_printf(b, "[TOOL:%s]: %.*s\n...[truncated]...\n%s", name, (int)head, content,
                  content + tail);
}

static void assistant_part(rt_buf *b, const cJSON *m, const char *content)
{
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
    if (!cJSON_IsArray(calls) || cJSON_GetArraySize(calls) == 0) {
        part(b, "ASSISTANT", content);
        return;
    }
    rt_buf names;
    rt_buf_init(&names, SIZE_MAX / 2);
    const cJSON *tc;
    cJSON_ArrayForEach(tc, calls)
    {
        if (!cJSON_IsObject(tc))
            continue;
        const char *name = jstr(tc, "name");
        if (!name || !*name) {
            const char *fn = jstr(cJSON_GetObjectItemCaseSensitive(tc, "function"), "name");
            name = fn ? fn : "?";
        }
        rt_buf_printf(&names, "%s%s", names.len ? ", " : "", name);
    }
    if (names.len) {
        char *t = rt_xasprintf("[Called: %s]", rt_buf_cstr(&names));
        part(b, "ASSISTANT", t);
        rt_free(t);
    }
    rt_buf_fini(&names);
    if (*content)
        part(b, "ASSISTANT", content);
}

char *ss_format_conversation(const cJSON *messages)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const char *r = jstr(m, "role");
        char role[32];
        rt_strlcpy(role, r ? r : "unknown", sizeof(role));
        for (char *c = role; *c; c++)
            *c = (char)toupper((unsigned char)*c);
        const char *content = jstr(m, "content");
        content = content ? content : "";
        const char *tool_name = jstr(m, "tool_name");
        if (strcmp(role, "TOOL") == 0 && tool_name && *tool_name)
            tool_part(&b, tool_name, content);
        else if (strcmp(role, "ASSISTANT") == 0)
            assistant_part(&b, m, content);
        else
            part(&b, role, content);
    }
    return rt_buf_steal(&b, NULL);
}

/* The byte offset of the first occurrence of any query word in text, or SIZE_MAX. FTS5
 * operators and syntax characters are not words to look for (the original looked for them
 * too, so "docker OR nginx" centred on the first "or" of the text). */
static size_t first_term(const char *text, const char *query)
{
    size_t best = SIZE_MAX;
    const char *p = query;
    char term[256];
    while (*p) {
        while (*p && is_space((unsigned char)*p))
            p++;
        const char *start = p;
        while (*p && !is_space((unsigned char)*p))
            p++;
        size_t n = 0;
        for (const char *c = start; c < p && n + 1 < sizeof(term); c++)
            if (!strchr("\"()*^+{}:", *c))
                term[n++] = *c;
        term[n] = '\0';
        if (!n || strcmp(term, "AND") == 0 || strcmp(term, "OR") == 0 || strcmp(term, "NOT") == 0 ||
            strcmp(term, "NEAR") == 0)
            continue;
        const char *hit = strcasestr(text, term);
        if (hit && (size_t)(hit - text) < best)
            best = (size_t)(hit - text);
    }
    return best;
}

static size_t chars_in(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

char *ss_truncate_around(const char *text, const char *query, size_t max_chars)
{
    size_t total = mem_utf8_len(text);
    if (total <= max_chars)
        return rt_xstrdup(text);
    size_t at = first_term(text, query ? query : "");
    size_t first = at == SIZE_MAX ? 0 : chars_in(text, at);
    size_t half = max_chars / 2;
    size_t start = first > half ? first - half : 0;
    size_t end = start + max_chars < total ? start + max_chars : total;
    if (end - start < max_chars)
        start = end > max_chars ? end - max_chars : 0;
    size_t bs = mem_utf8_prefix(text, start), be = mem_utf8_prefix(text, end);
    return rt_xasprintf("%s%.*s%s", start > 0 ? "...[earlier conversation truncated]...\n\n" : "",
                        (int)(be - bs), text + bs,
                        end < total ? "\n\n...[later conversation truncated]..." : "");
}

void ss_format_when(double ts, char *out, size_t outlen)
{
    if (!isfinite(ts) || ts < 0 || ts > 253402300799.0) { /* year 9999 */
        rt_strlcpy(out, "unknown", outlen);
        return;
    }
    time_t t = (time_t)ts;
    struct tm tm;
    if (!localtime_r(&t, &tm) || strftime(out, outlen, "%B %d, %Y at %I:%M %p", &tm) == 0)
        rt_strlcpy(out, "unknown", outlen);
}

/* ============================================================ summaries */

static const char SUMMARY_SYSTEM[] =
    "You are reviewing a past conversation transcript to help recall what happened. "
    "Summarize the conversation with a focus on the search topic. Include:\n"
    "1. What the user asked about or wanted to accomplish\n"
    "2. What actions were taken and what the outcomes were\n"
    "3. Key decisions, solutions found, or conclusions reached\n"
    "4. Any specific commands, files, URLs, or technical details that were important\n"
    "5. Anything left unresolved or notable\n\n"
    "Be thorough but concise. Preserve specific details (commands, paths, error messages) "
    "that would be useful to recall. Write in past tense as a factual recap.";

cJSON *ss_summary_messages(const char *query, const char *source, const char *when,
                           const char *transcript)
{
    char *user = rt_xasprintf("Search topic: %s\nSession source: %s\nSession date: %s\n\n"
                              "CONVERSATION TRANSCRIPT:\n%s\n\n"
                              "Summarize this conversation with focus on: %s",
                              query, source ? source : "unknown", when, transcript, query);
    cJSON *msgs = cJSON_CreateArray();
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "role", "system");
    cJSON_AddStringToObject(s, "content", SUMMARY_SYSTEM);
    cJSON_AddItemToArray(msgs, s);
    cJSON *u = cJSON_CreateObject();
    cJSON_AddStringToObject(u, "role", "user");
    cJSON_AddStringToObject(u, "content", user);
    cJSON_AddItemToArray(msgs, u);
    rt_free(user);
    return msgs;
}

char *ss_raw_preview(const char *transcript, const char *query, const cJSON *snippets)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_append_str(&b, "[Raw preview \xe2\x80\x94 summarization unavailable]");
    if (cJSON_GetArraySize(snippets) > 0) {
        rt_buf_append_str(&b, "\nMatching messages:");
        const cJSON *s;
        cJSON_ArrayForEach(s, snippets)
        {
            const char *role = jstr(s, "role"), *tool = jstr(s, "tool_name");
            char label[96];
            snprintf(label, sizeof(label), "%s", role ? role : "unknown");
            for (char *c = label; *c; c++)
                *c = (char)toupper((unsigned char)*c);
            if (tool && *tool && strcmp(label, "TOOL") == 0)
                snprintf(label, sizeof(label), "TOOL:%s", tool);
            const char *text = jstr(s, "snippet");
            rt_buf_printf(&b, "\n[%s]: %s", label, text ? text : "");
        }
    }
    char *window = ss_truncate_around(transcript ? transcript : "", query, SS_PREVIEW_CHARS);
    if (*window)
        rt_buf_printf(&b, "\nTranscript:\n%s", window);
    else
        rt_buf_append_str(&b, "\nNo preview available.");
    rt_free(window);
    return rt_buf_steal(&b, NULL);
}
