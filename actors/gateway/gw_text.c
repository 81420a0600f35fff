/*
 * gw_text — pure text helpers of the gateway: session keys, reply chunking, command
 * parsing (gateway.md §1.5, §1.8, §2.1).
 */
#include "gw.h"

#include "rt_alloc.h"
#include "rt_buf.h"

#include <ctype.h>
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
