/*
 * gw_text — pure text helpers of the gateway: session keys, reply chunking, command
 * parsing (gateway.md §1.5, §1.8, §2.1).
 */
#include "gw.h"
#include "gw_int.h"

#include "rt_alloc.h"
#include "rt_buf.h"

#include <ctype.h>
#include <stdatomic.h>
#include <string.h>

/* ============================================================ session keys */

char *gw_session_key(const gw_source *s, bool per_user, bool thread_per_user)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    const char *type = s->chat_type ? s->chat_type : "dm";
    rt_buf_printf(&b, "agent:main:%s:%s", s->platform ? s->platform : "", type);
    if (strcmp(type, "dm") == 0) {
        if (s->chat_id)
            rt_buf_printf(&b, ":%s", s->chat_id);
        if (s->thread_id)
            rt_buf_printf(&b, ":%s", s->thread_id);
        return rt_buf_steal(&b, NULL);
    }
    if (s->chat_id)
        rt_buf_printf(&b, ":%s", s->chat_id);
    if (s->thread_id)
        rt_buf_printf(&b, ":%s", s->thread_id);
    /* Per-user isolation, switched off inside threads unless thread_sessions_per_user. */
    bool isolate = per_user && (!s->thread_id || thread_per_user);
    const char *who = s->user_id_alt ? s->user_id_alt : s->user_id;
    if (isolate && who)
        rt_buf_printf(&b, ":%s", who);
    return rt_buf_steal(&b, NULL);
}

/* ================================================================ chunking */

/* Byte offset of the first n code points of s (or strlen). */
static size_t cp_offset(const char *s, size_t n)
{
    size_t i = 0, c = 0;
    for (; s[i]; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80 && c++ == n)
            return i;
    return i;
}

static size_t cp_len(const char *s, size_t bytes)
{
    size_t c = 0;
    for (size_t i = 0; i < bytes && s[i]; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

/* Is position `at` inside an inline code span of s[0..at)? (odd count of unescaped `) */
static bool in_inline_code(const char *s, size_t at)
{
    int ticks = 0;
    for (size_t i = 0; i < at; i++)
        if (s[i] == '`' && (i == 0 || s[i - 1] != '\\'))
            ticks++;
    return ticks % 2 == 1;
}

/* The language of the fenced block open at the end of s[0..len), or NULL when none is open
 * (returns a pointer into s and its length). */
static const char *open_fence(const char *s, size_t len, size_t *lang_len)
{
    const char *lang = NULL;
    bool open = false;
    for (size_t i = 0; i + 2 < len; i++) {
        if ((i == 0 || s[i - 1] == '\n') && strncmp(s + i, "```", 3) == 0) {
            open = !open;
            if (open) {
                lang = s + i + 3;
                *lang_len = strcspn(lang, "\n");
                if (lang + *lang_len > s + len)
                    *lang_len = (size_t)(s + len - lang);
            }
        }
    }
    return open ? lang : NULL;
}

static size_t choose_cut(const char *s, size_t window)
{
    size_t nl = 0, sp = 0;
    for (size_t i = 0; i < window; i++) {
        if (s[i] == '\n')
            nl = i;
        else if (s[i] == ' ')
            sp = i;
    }
    size_t cut = (nl && nl >= window / 2) ? nl : (sp ? sp : window);
    if (in_inline_code(s, cut)) {
        /* Move before the opening back-tick of the span, if that is not too far back. */
        size_t tick = cut;
        while (tick > 0 && s[tick] != '`')
            tick--;
        size_t back = tick;
        while (back > 0 && s[back] != ' ' && s[back] != '\n')
            back--;
        if (back > window / 4)
            cut = back;
    }
    return cut ? cut : window;
}

char **gw_chunk(const char *text, size_t max)
{
    const char *src = text ? text : "";
    size_t n = 0, cap = 4;
    char **out = rt_xcalloc(cap, sizeof(*out));
    if (!max || cp_len(src, strlen(src)) <= max) {
        out[0] = rt_xstrdup(src);
        return out;
    }
    const size_t indicator = 10; /* room for " (i/n)" */
    char *carry_lang = NULL;     /* a fence to reopen at the start of the next chunk */
    const char *p = src;
    while (*p) {
        rt_buf b;
        rt_buf_init(&b, SIZE_MAX / 2);
        if (carry_lang)
            rt_buf_printf(&b, "```%s\n", carry_lang);
        size_t reserve = indicator + (carry_lang ? strlen(carry_lang) + 4 : 0) + 4;
        size_t room = max > reserve + 16 ? max - reserve : 16; /* tiny limits still progress */
        size_t window = cp_offset(p, room);
        size_t cut = p[window] ? choose_cut(p, window) : window;
        rt_buf_append(&b, p, cut);
        rt_free(carry_lang);
        carry_lang = NULL;
        size_t lang_len = 0;
        const char *lang = open_fence(rt_buf_cstr(&b), b.len, &lang_len);
        if (lang && p[cut]) {
            carry_lang = rt_xstrndup(lang, lang_len);
            rt_buf_append_str(&b, "\n```");
        }
        if (n + 2 > cap) {
            cap *= 2;
            out = rt_xrealloc(out, cap * sizeof(*out));
        }
        out[n++] = rt_buf_steal(&b, NULL);
        out[n] = NULL;
        p += cut;
        while (*p == ' ' || *p == '\n' || *p == '\t')
            p++;
    }
    rt_free(carry_lang);
    if (n > 1)
        for (size_t i = 0; i < n; i++) {
            char *t = rt_xasprintf("%s (%zu/%zu)", out[i], i + 1, n);
            rt_free(out[i]);
            out[i] = t;
        }
    return out;
}

void gw_chunks_free(char **chunks)
{
    for (char **c = chunks; c && *c; c++)
        rt_free(*c);
    rt_free(chunks);
}

char *gw_preview(const char *s, size_t n)
{
    size_t i = 0, chars = 0;
    for (; s[i]; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80 && chars++ == n)
            break;
    return rt_xasprintf("%.*s%s", (int)i, s, s[i] ? "..." : "");
}

void gw_say(rt_ctx *cx, rt_ref adapter, const gw_caps *caps, const gw_target *to, const char *text,
            int kind)
{
    if (!adapter || !text)
        return;
    if (!caps->max_message || caps->api) {
        rt_send(cx, adapter, gw_out_text_new(GW_OUT_TEXT, to, text, kind));
        return;
    }
    char **parts = gw_chunk(text, caps->max_message);
    int n = 0;
    while (parts[n])
        n++;
    for (int i = 0; i < n; i++) {
        gw_out_text *t = (gw_out_text *)gw_out_text_new(GW_OUT_TEXT, to, parts[i], kind);
        t->part = i + 1;
        t->parts = n;
        rt_send(cx, adapter, &t->hdr);
    }
    gw_chunks_free(parts);
}

/* ================================================================ commands */

bool gw_parse_command(const char *text, char **buf, const char **name, const char **args)
{
    *buf = NULL;
    if (!text || text[0] != '/')
        return false;
    char *t = rt_xstrdup(text + 1);
    size_t nlen = strcspn(t, " \t\n");
    char *rest = t + nlen;
    if (*rest) {
        *rest++ = '\0';
        while (*rest == ' ' || *rest == '\t' || *rest == '\n')
            rest++;
    }
    char *at = strchr(t, '@');
    if (at)
        *at = '\0'; /* /help@hermes_bot */
    /* "/etc/passwd" and friends are paths, not commands. */
    if (!*t || strchr(t, '/')) {
        rt_free(t);
        return false;
    }
    for (char *c = t; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    *buf = t;
    *name = t;
    *args = rest;
    return true;
}

bool gw_command_is_urgent(const char *text)
{
    char *buf = NULL;
    const char *name = NULL, *args = NULL;
    bool urgent = false;
    if (gw_parse_command(text, &buf, &name, &args))
        urgent = strcmp(name, "stop") == 0 || strcmp(name, "approve") == 0 ||
                 strcmp(name, "deny") == 0 || strcmp(name, "new") == 0 ||
                 strcmp(name, "reset") == 0;
    rt_free(buf);
    return urgent;
}

void gw_event_seq(gw_msg_event *ev)
{
    static atomic_uint_fast64_t next;
    if (!ev->seq)
        ev->seq = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) + 1;
}

bool gw_event_send(rt_ctx *cx, rt_ref gateway, gw_msg_event *ev)
{
    if (!gateway) {
        rt_msg_free(&ev->hdr);
        return false;
    }
    gw_event_seq(ev); /* before the lanes part: this is the order the user sent them in */
    if (gw_command_is_urgent(ev->text))
        return rt_send_urgent(cx, gateway, &ev->hdr);
    return rt_send(cx, gateway, &ev->hdr);
}

/* ============================================================ progress */

const char *gw_tool_emoji(const char *tool)
{
    static const struct {
        const char *name, *emoji;
    } table[] = {
        {"terminal", "\xf0\x9f\x92\xbb"},
        {"web_search", "\xf0\x9f\x94\x8d"},
        {"web_extract", "\xf0\x9f\x93\x84"},
        {"read_file", "\xf0\x9f\x93\x96"},
        {"write_file", "\xe2\x9c\x8d\xef\xb8\x8f"},
        {"patch", "\xf0\x9f\x94\xa7"},
        {"search_files", "\xf0\x9f\x94\x8e"},
        {"execute_code", "\xf0\x9f\x90\x8d"},
        {"delegate_task", "\xf0\x9f\x94\x80"},
        {"memory", "\xf0\x9f\xa7\xa0"},
        {"todo", "\xf0\x9f\x93\x8b"},
        {"send_message", "\xf0\x9f\x93\xa8"},
        {"cronjob", "\xe2\x8f\xb0"},
        {"clarify", "\xe2\x9d\x93"},
        {"vision_analyze", "\xf0\x9f\x91\x81\xef\xb8\x8f"},
        {"text_to_speech", "\xf0\x9f\x94\x8a"},
        {"skills", "\xf0\x9f\x93\x9a"},
        {"skill_view", "\xf0\x9f\x93\x9a"},
        {"skills_list", "\xf0\x9f\x93\x9a"},
        {"process", "\xe2\x9a\x99\xef\xb8\x8f"},
        {"session_search", "\xf0\x9f\x94\x8d"},
    };
    for (size_t i = 0; tool && i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(table[i].name, tool) == 0)
            return table[i].emoji;
    return "\xe2\x9a\x99\xef\xb8\x8f"; /* ⚙️ */
}

#define PREVIEW_CAP 40 /* gateway.md §7.1: previews in chats without tool_preview_length */

char *gw_progress_line(const char *tool, const char *preview, int mode, const char **emoji,
                       char **label)
{
    const char *e = gw_tool_emoji(tool);
    if (emoji)
        *emoji = e;
    char *cut = NULL;
    if (preview && *preview) {
        size_t n = strlen(preview);
        size_t cps = cp_len(preview, n);
        if (mode != GW_PROGRESS_VERBOSE && cps > PREVIEW_CAP) {
            size_t at = cp_offset(preview, PREVIEW_CAP - 3);
            cut = rt_xasprintf("%.*s...", (int)at, preview);
        } else {
            cut = rt_xstrdup(preview);
        }
    }
    char *line =
        cut ? rt_xasprintf("%s %s: \"%s\"", e, tool, cut) : rt_xasprintf("%s %s...", e, tool);
    if (label)
        *label = cut;
    else
        rt_free(cut);
    return line;
}

/* ====================================================== session context */

static void platform_title(rt_buf *b, const char *p)
{
    if (!p || !*p)
        return;
    if (strcmp(p, "api_server") == 0) {
        rt_buf_append_str(b, "API Server");
        return;
    }
    rt_buf_printf(b, "%c%s", toupper((unsigned char)p[0]), p + 1);
}

char *gw_context_block(const gw_source *src, bool shared_thread, const char *const *platforms,
                       const char *const *homes, size_t nplatforms)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_append_str(&b, "## Current Session Context\n\n**Source:** ");
    platform_title(&b, src->platform);
    const char *type = src->chat_type ? src->chat_type : "dm";
    const char *name = src->chat_name ? src->chat_name : src->chat_id;
    const char *who = src->user_name ? src->user_name : src->user_id;
    rt_buf_append_str(&b, " (");
    if (strcmp(type, "dm") == 0)
        rt_buf_printf(&b, "DM with %s", who ? who : "user");
    else if (strcmp(type, "group") == 0 || strcmp(type, "channel") == 0)
        rt_buf_printf(&b, "%s: %s", type, name ? name : "");
    else
        rt_buf_append_str(&b, name ? name : type);
    if (src->thread_id)
        rt_buf_printf(&b, ", thread: %s", src->thread_id);
    rt_buf_append_str(&b, ")\n");
    if (shared_thread)
        rt_buf_append_str(&b, "**Session type:** Multi-user thread \xe2\x80\x94 messages are "
                              "prefixed with [sender name]. Multiple users may participate.\n");
    else if (src->user_name)
        rt_buf_printf(&b, "**User:** %s\n", src->user_name);
    else if (src->user_id)
        rt_buf_printf(&b, "**User ID:** %s\n", src->user_id);
    rt_buf_append_str(&b, "**Connected Platforms:** local (files on this machine)");
    for (size_t i = 0; i < nplatforms; i++) {
        rt_buf_append_str(&b, ", ");
        rt_buf_printf(&b, "%s: Connected \xe2\x9c\x93", platforms[i]);
    }
    rt_buf_append_str(&b, "\n");
    bool any_home = false;
    for (size_t i = 0; i < nplatforms; i++) {
        if (!homes || !homes[i])
            continue;
        if (!any_home)
            rt_buf_append_str(&b, "**Home Channels:**\n");
        any_home = true;
        rt_buf_printf(&b, "  - %s: %s\n", platforms[i], homes[i]);
    }
    rt_buf_append_str(&b, "\n**Delivery options for scheduled tasks:**\n"
                          "- \"origin\" \xe2\x86\x92 back to this chat\n"
                          "- \"local\" \xe2\x86\x92 save to files only (~/.hermes/cron/output/)\n");
    for (size_t i = 0; i < nplatforms; i++)
        if (homes && homes[i])
            rt_buf_printf(&b, "- \"%s\" \xe2\x86\x92 the %s home channel\n", platforms[i],
                          platforms[i]);
    rt_buf_append_str(&b, "*For explicit targets, use \"platform:chat_id\" format.*\n");
    return rt_buf_steal(&b, NULL);
}
