/*
 * mx_content — what the adapter puts in the events it sends (gateway.md §8.6): m.text with a
 * Markdown body and its HTML rendering (cmark-gfm), thread and reply relations, edits,
 * reactions and media messages.
 *
 * Markdown: cmark-gfm with the GitHub extensions (tables, strikethrough, autolinks, the tag
 * filter), newlines as hard breaks (the original's nl2br), raw HTML omitted and unsafe link
 * schemes (javascript:, vbscript:, file:, data: except images) dropped — cmark's safe mode.
 * A rendering that is one paragraph is unwrapped from <p>…</p>, as the original did.
 *
 * Threads: any; the extension registry is filled once (pthread_once) and read-only after.
 */
#include "mx_int.h"

#include "rt_alloc.h"
#include "rt_buf.h"

#include <cmark-gfm-core-extensions.h>
#include <cmark-gfm.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

/* ================================================================ markdown */

static void *cm_calloc(size_t n, size_t size)
{
    return rt_xcalloc(n, size);
}

static void *cm_realloc(void *p, size_t n)
{
    return rt_xrealloc(p, n);
}

static void cm_free(void *p)
{
    rt_free(p);
}

static cmark_mem cm_mem = {cm_calloc, cm_realloc, cm_free};
static pthread_once_t cm_once = PTHREAD_ONCE_INIT;

static void cm_register(void)
{
    cmark_gfm_core_extensions_ensure_registered();
}

static char *render(const char *text)
{
    static const char *const exts[] = {"table", "strikethrough", "autolink", "tagfilter"};
    int opts = CMARK_OPT_HARDBREAKS;
    pthread_once(&cm_once, cm_register);
    cmark_parser *p = cmark_parser_new_with_mem(opts, &cm_mem);
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        cmark_syntax_extension *e = cmark_find_syntax_extension(exts[i]);
        if (e)
            cmark_parser_attach_syntax_extension(p, e);
    }
    cmark_parser_feed(p, text, strlen(text));
    cmark_node *doc = cmark_parser_finish(p);
    char *html =
        cmark_render_html_with_mem(doc, opts, cmark_parser_get_syntax_extensions(p), &cm_mem);
    cmark_node_free(doc);
    cmark_parser_free(p);
    return html; /* from cm_mem: rt_free */
}

/* "<p>x</p>\n" → "x" when it is the only paragraph; trailing newlines dropped. */
static void unwrap(char *html)
{
    size_t n = strlen(html);
    while (n && html[n - 1] == '\n')
        html[--n] = '\0';
    if (n < 7 || strncmp(html, "<p>", 3) != 0 || strcmp(html + n - 4, "</p>") != 0)
        return;
    html[n - 4] = '\0';
    if (strstr(html + 3, "<p>") || strstr(html + 3, "</p>")) {
        html[n - 4] = '<'; /* more than one paragraph: keep it whole */
        return;
    }
    memmove(html, html + 3, n - 4 - 3 + 1);
}

char *mx_markdown_html(const char *text)
{
    if (!text || !*text)
        return NULL;
    char *html = render(text);
    unwrap(html);
    if (strcmp(html, text) == 0) {
        rt_free(html);
        return NULL;
    }
    return html;
}

char *mx_unwrap_images(const char *text)
{
    rt_buf b;
    rt_buf_init(&b, strlen(text) + 1);
    const char *p = text;
    for (const char *s; (s = strstr(p, "![")) != NULL;) {
        const char *close = strstr(s + 2, "](");
        const char *end = close ? strchr(close + 2, ')') : NULL;
        const char *nl = strchr(s, '\n');
        if (!end || (nl && nl < end) ||
            (strncmp(close + 2, "http://", 7) != 0 && strncmp(close + 2, "https://", 8) != 0)) {
            (void)rt_buf_append(&b, p, (size_t)(s + 2 - p));
            p = s + 2;
            continue;
        }
        (void)rt_buf_append(&b, p, (size_t)(s - p));
        (void)rt_buf_append(&b, close + 2, (size_t)(end - close - 2));
        p = end + 1;
    }
    (void)rt_buf_append_str(&b, p);
    return rt_buf_steal(&b, NULL);
}

/* =============================================================== contents */

static char *print(cJSON *o)
{
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *out = rt_xstrdup(txt);
    cJSON_free(txt);
    return out;
}

/* m.relates_to for a reply (§8.6): in a thread, rel_type m.thread with the reply fallback
 * (is_falling_back + m.in_reply_to, for clients without threads); outside one, a quote of the
 * message answered when asked for. */
static void add_rel(cJSON *c, const mx_rel *rel)
{
    if (!rel || (!rel->thread && !(rel->reply_to && rel->quote)))
        return;
    cJSON *r = cJSON_AddObjectToObject(c, "m.relates_to");
    if (rel->thread) {
        cJSON_AddStringToObject(r, "rel_type", "m.thread");
        cJSON_AddStringToObject(r, "event_id", rel->thread);
        cJSON_AddTrueToObject(r, "is_falling_back");
    }
    const char *to = rel->reply_to ? rel->reply_to : rel->thread;
    cJSON *irt = cJSON_AddObjectToObject(r, "m.in_reply_to");
    cJSON_AddStringToObject(irt, "event_id", to);
}

static void add_text(cJSON *c, const char *text, const char *prefix)
{
    char *html = mx_markdown_html(text);
    cJSON_AddStringToObject(c, "msgtype", "m.text");
    if (prefix) {
        char *b = rt_xasprintf("%s%s", prefix, text);
        cJSON_AddStringToObject(c, "body", b);
        rt_free(b);
    } else {
        cJSON_AddStringToObject(c, "body", text);
    }
    if (html) {
        cJSON_AddStringToObject(c, "format", "org.matrix.custom.html");
        if (prefix) {
            char *h = rt_xasprintf("%s%s", prefix, html);
            cJSON_AddStringToObject(c, "formatted_body", h);
            rt_free(h);
        } else {
            cJSON_AddStringToObject(c, "formatted_body", html);
        }
    }
    rt_free(html);
}

char *mx_content_text(const char *text, const mx_rel *rel)
{
    cJSON *c = cJSON_CreateObject();
    char *plain = mx_unwrap_images(text);
    add_text(c, plain, NULL);
    rt_free(plain);
    add_rel(c, rel);
    return print(c);
}

char *mx_content_edit(const char *event_id, const char *text, const mx_rel *rel)
{
    cJSON *c = cJSON_CreateObject();
    add_text(c, text, "* ");
    cJSON *nc = cJSON_AddObjectToObject(c, "m.new_content");
    add_text(nc, text, NULL);
    cJSON *r = cJSON_AddObjectToObject(c, "m.relates_to");
    cJSON_AddStringToObject(r, "rel_type", "m.replace");
    cJSON_AddStringToObject(r, "event_id", event_id);
    (void)rel; /* an edit keeps the original's relations */
    return print(c);
}

char *mx_content_reaction(const char *event_id, const char *key)
{
    cJSON *c = cJSON_CreateObject();
    cJSON *r = cJSON_AddObjectToObject(c, "m.relates_to");
    cJSON_AddStringToObject(r, "rel_type", "m.annotation");
    cJSON_AddStringToObject(r, "event_id", event_id);
    cJSON_AddStringToObject(r, "key", key);
    return print(c);
}

char *mx_content_media(const char *msgtype, const char *body, const char *mxc, const char *mime,
                       size_t size, bool voice, const mx_rel *rel)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "msgtype", msgtype);
    cJSON_AddStringToObject(c, "body", body);
    cJSON_AddStringToObject(c, "url", mxc);
    cJSON *info = cJSON_AddObjectToObject(c, "info");
    cJSON_AddStringToObject(info, "mimetype", mime);
    cJSON_AddNumberToObject(info, "size", (double)size);
    if (voice)
        cJSON_AddObjectToObject(c, "org.matrix.msc3245.voice");
    add_rel(c, rel);
    return print(c);
}

typedef struct ext_type {
    const char *ext;
    const char *msgtype;
    const char *mime;
} ext_type;

void mx_media_type(const char *path, bool voice, const char **msgtype, const char **mime)
{
    static const ext_type table[] = {
        {".jpg", "m.image", "image/jpeg"},      {".jpeg", "m.image", "image/jpeg"},
        {".png", "m.image", "image/png"},       {".gif", "m.image", "image/gif"},
        {".webp", "m.image", "image/webp"},     {".ogg", "m.audio", "audio/ogg"},
        {".opus", "m.audio", "audio/ogg"},      {".mp3", "m.audio", "audio/mpeg"},
        {".wav", "m.audio", "audio/wav"},       {".m4a", "m.audio", "audio/mp4"},
        {".mp4", "m.video", "video/mp4"},       {".mov", "m.video", "video/quicktime"},
        {".avi", "m.video", "video/x-msvideo"}, {".mkv", "m.video", "video/x-matroska"},
        {".webm", "m.video", "video/webm"},     {".3gp", "m.video", "video/3gpp"},
        {".pdf", "m.file", "application/pdf"},  {".txt", "m.file", "text/plain"},
        {".md", "m.file", "text/markdown"},     {".json", "m.file", "application/json"},
        {".csv", "m.file", "text/csv"},         {".zip", "m.file", "application/zip"},
    };
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    *msgtype = "m.file";
    *mime = "application/octet-stream";
    if (dot && (!slash || dot > slash)) {
        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
            if (strcasecmp(dot, table[i].ext) == 0) {
                *msgtype = table[i].msgtype;
                *mime = table[i].mime;
                break;
            }
    }
    if (voice && strcmp(*msgtype, "m.audio") != 0) {
        *msgtype = "m.audio";
        if (strncmp(*mime, "audio/", 6) != 0)
            *mime = "audio/ogg";
    }
}
