/*
 * tg_format — Markdown to Telegram's MarkdownV2, escaping, and splitting long replies.
 *
 * MarkdownV2 (Bot API "Formatting options"): outside entities every one of
 * _ * [ ] ( ) ~ ` > # + - = | { } . ! and \ must be escaped with '\'; inside `code` and
 * ```pre``` only ` and \; inside the (url) of a link only ) and \. An unbalanced marker is
 * an error ("can't parse entities"), so markers we do not recognise are escaped, and a
 * marker without its closing partner on the same line is escaped too.
 *
 * Pure functions; any thread.
 */
#include "telegram.h"

#include "gw.h"
#include "rt_alloc.h"
#include "rt_buf.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

#define TG_MD_DEPTH 4 /* nesting of emphasis handled */

static bool special_v2(char c)
{
    return c && strchr("_*[]()~`>#+-=|{}.!\\", c) != NULL;
}

static void esc_n(rt_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (special_v2(s[i]))
            (void)rt_buf_append(b, "\\", 1);
        (void)rt_buf_append(b, s + i, 1);
    }
}

static void esc_code_n(rt_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '`' || s[i] == '\\')
            (void)rt_buf_append(b, "\\", 1);
        (void)rt_buf_append(b, s + i, 1);
    }
}

static char *buf_take(rt_buf *b)
{
    if (!b->len)
        (void)rt_buf_append(b, "", 0);
    char *s = rt_buf_steal(b, NULL);
    return s ? s : rt_xstrdup("");
}

char *tg_escape_v2(const char *text)
{
    rt_buf b;
    rt_buf_init(&b, TG_BUF_MAX);
    if (text)
        esc_n(&b, text, strlen(text));
    return buf_take(&b);
}

size_t tg_utf16_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if ((*p & 0xC0) == 0x80)
            continue;              /* continuation byte */
        n += (*p >= 0xF0) ? 2 : 1; /* 4-byte sequences are surrogate pairs */
    }
    return n;
}

/* ---------------------------------------------------------------- inline Markdown */

static bool is_word(char c)
{
    return isalnum((unsigned char)c) || ((unsigned char)c & 0x80);
}

/* Find the closing marker mk (length ml) in s[from..n) for an opening at position open:
 * the content must not start or end with a space; '_' must not be inside a word. */
static size_t find_close(const char *s, size_t n, size_t from, const char *mk, size_t ml)
{
    if (from >= n || isspace((unsigned char)s[from]))
        return SIZE_MAX;
    for (size_t i = from + 1; i + ml <= n; i++) {
        if (s[i] == '`') { /* skip code spans inside */
            const char *e = memchr(s + i + 1, '`', n - i - 1);
            if (!e)
                return SIZE_MAX;
            i = (size_t)(e - s);
            continue;
        }
        if (memcmp(s + i, mk, ml) != 0)
            continue;
        if (isspace((unsigned char)s[i - 1]))
            continue;
        if (ml == 1 && i + 1 < n && s[i + 1] == mk[0]) {
            i++; /* a double marker ("**") is not the single one we look for */
            continue;
        }
        if (mk[0] == '_' && i + ml < n && is_word(s[i + ml]))
            continue;
        return i;
    }
    return SIZE_MAX;
}

/* Entities open around the text being converted: the same entity cannot nest in itself. */
enum { IN_BOLD = 1, IN_ITALIC = 2, IN_STRIKE = 4, IN_LINK = 8 };

static void conv_inline(rt_buf *b, const char *s, size_t n, int depth, unsigned in);

/* Emit an entity marker. Two italic markers in a row ("__") would be read as underline
 * (Telegram reads "__" greedily): a '\r' between them is ignored by Telegram and splits them. */
static void put_marker(rt_buf *b, const char *m)
{
    if (m[0] == '_' && b->len) {
        const char *d = rt_buf_cstr(b);
        size_t bs = 0;
        for (size_t k = b->len - 1; k > 0 && d[k - 1] == '\\'; k--)
            bs++;
        if (d[b->len - 1] == '_' && bs % 2 == 0) /* an unescaped '_' before: a marker */
            (void)rt_buf_append(b, "\r", 1);
    }
    rt_buf_append_str(b, m);
}

static bool try_emph(rt_buf *b, const char *s, size_t n, size_t *i, int depth, unsigned in)
{
    static const struct {
        const char *md;
        const char *v2;
        unsigned bit;
    } marks[] = {{"**", "*", IN_BOLD},
                 {"__", "*", IN_BOLD},
                 {"~~", "~", IN_STRIKE},
                 {"*", "_", IN_ITALIC},
                 {"_", "_", IN_ITALIC}};
    if (depth >= TG_MD_DEPTH)
        return false;
    for (size_t k = 0; k < sizeof(marks) / sizeof(marks[0]); k++) {
        size_t ml = strlen(marks[k].md);
        if (*i + ml > n || memcmp(s + *i, marks[k].md, ml) != 0)
            continue;
        if (in & marks[k].bit)
            return false; /* already inside this entity: the marker is literal */
        if (marks[k].md[0] == '_' && *i > 0 && is_word(s[*i - 1]))
            return false; /* snake_case */
        size_t c = find_close(s, n, *i + ml, marks[k].md, ml);
        if (c == SIZE_MAX)
            return false;
        put_marker(b, marks[k].v2);
        conv_inline(b, s + *i + ml, c - *i - ml, depth + 1, in | marks[k].bit);
        put_marker(b, marks[k].v2);
        *i = c + ml;
        return true;
    }
    return false;
}

static bool try_code(rt_buf *b, const char *s, size_t n, size_t *i)
{
    const char *e = memchr(s + *i + 1, '`', n - *i - 1);
    if (!e || e == s + *i + 1)
        return false;
    size_t end = (size_t)(e - s);
    rt_buf_append_str(b, "`");
    esc_code_n(b, s + *i + 1, end - *i - 1);
    rt_buf_append_str(b, "`");
    *i = end + 1;
    return true;
}

static bool try_link(rt_buf *b, const char *s, size_t n, size_t *i, int depth, unsigned in)
{
    if (in & IN_LINK)
        return false;
    const char *rb = memchr(s + *i + 1, ']', n - *i - 1);
    if (!rb || (size_t)(rb - s) + 1 >= n || rb[1] != '(')
        return false;
    size_t ts = *i + 1, te = (size_t)(rb - s);
    size_t us = te + 2;
    const char *rp = memchr(s + us, ')', n - us);
    if (!rp || rp == s + us)
        return false;
    size_t ue = (size_t)(rp - s);
    for (size_t k = us; k < ue; k++)
        if (isspace((unsigned char)s[k]))
            return false;
    rt_buf_append_str(b, "[");
    if (depth < TG_MD_DEPTH)
        conv_inline(b, s + ts, te - ts, depth + 1, in | IN_LINK);
    else
        esc_n(b, s + ts, te - ts);
    rt_buf_append_str(b, "](");
    for (size_t k = us; k < ue; k++) {
        if (s[k] == ')' || s[k] == '\\')
            (void)rt_buf_append(b, "\\", 1);
        (void)rt_buf_append(b, s + k, 1);
    }
    rt_buf_append_str(b, ")");
    *i = ue + 1;
    return true;
}

static void conv_inline(rt_buf *b, const char *s, size_t n, int depth, unsigned in)
{
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '\\' && i + 1 < n && special_v2(s[i + 1])) { /* a Markdown escape */
            esc_n(b, s + i + 1, 1);
            i += 2;
            continue;
        }
        if (c == '`' && try_code(b, s, n, &i))
            continue;
        if (c == '[' && try_link(b, s, n, &i, depth, in))
            continue;
        if ((c == '*' || c == '_' || c == '~') && try_emph(b, s, n, &i, depth, in))
            continue;
        esc_n(b, s + i, 1);
        i++;
    }
}

/* ---------------------------------------------------------------- blocks */

static bool fence_line(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && i < 3 && s[i] == ' ')
        i++;
    return n - i >= 3 && memcmp(s + i, "```", 3) == 0;
}

static void conv_line(rt_buf *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    size_t h = 0;
    while (i + h < n && s[i + h] == '#' && h < 7)
        h++;
    if (h >= 1 && h <= 6 && i + h < n && s[i + h] == ' ') { /* heading → bold line */
        size_t st = i + h + 1;
        size_t en = n;
        while (en > st && (s[en - 1] == ' ' || s[en - 1] == '#'))
            en--;
        rt_buf_append_str(b, "*");
        conv_inline(b, s + st, en - st, 1, IN_BOLD);
        rt_buf_append_str(b, "*");
        return;
    }
    if (i < n && s[i] == '>') { /* quote */
        size_t st = i + 1;
        if (st < n && s[st] == ' ')
            st++;
        rt_buf_append_str(b, ">");
        conv_inline(b, s + st, n - st, 0, 0);
        return;
    }
    if (i + 1 < n && (s[i] == '-' || s[i] == '*' || s[i] == '+') && s[i + 1] == ' ') {
        (void)rt_buf_append(b, s, i); /* keep the indentation */
        rt_buf_append_str(b, "• ");
        conv_inline(b, s + i + 2, n - i - 2, 0, 0);
        return;
    }
    conv_inline(b, s, n, 0, 0);
}

char *tg_markdown_v2(const char *md)
{
    rt_buf b;
    rt_buf_init(&b, TG_BUF_MAX);
    const char *p = md ? md : "";
    bool in_fence = false;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (fence_line(p, n)) {
            const char *f = strstr(p, "```");
            if (!in_fence) {
                rt_buf_append_str(&b, "```");
                /* the language: letters, digits, + - _ # only (anything else would break it) */
                for (const char *q = f + 3; q < p + n; q++)
                    if (isalnum((unsigned char)*q) || strchr("+-_#", *q))
                        (void)rt_buf_append(&b, q, 1);
                in_fence = true;
            } else {
                rt_buf_append_str(&b, "```");
                in_fence = false;
            }
        } else if (in_fence) {
            esc_code_n(&b, p, n);
        } else {
            conv_line(&b, p, n);
        }
        if (!nl)
            break;
        rt_buf_append_str(&b, "\n");
        p = nl + 1;
    }
    if (in_fence) /* an unclosed fence: close it, or Telegram refuses the whole message */
        rt_buf_append_str(&b, b.len && rt_buf_cstr(&b)[b.len - 1] == '\n' ? "```" : "\n```");
    return buf_take(&b);
}

/* ---------------------------------------------------------------- splitting */

void tg_strv_free(char **v)
{
    if (!v)
        return;
    for (size_t i = 0; v[i]; i++)
        rt_free(v[i]);
    rt_free(v);
}

size_t tg_split(const char *text, size_t max, bool v2, char ***rendered, char ***plain)
{
    if (!max)
        max = TG_MAX_MESSAGE;
    size_t limit = max;
    for (int round = 0;; round++) {
        char **parts = gw_chunk(text ? text : "", limit);
        size_t n = 0;
        while (parts && parts[n])
            n++;
        char **r = v2 ? rt_xcalloc(n + 1, sizeof(char *)) : NULL;
        char **pl = rt_xcalloc(n + 1, sizeof(char *));
        bool fits = true;
        for (size_t i = 0; i < n; i++) {
            pl[i] = rt_xstrdup(parts[i]);
            if (tg_utf16_len(pl[i]) > max)
                fits = false;
            if (v2) {
                r[i] = tg_markdown_v2(parts[i]);
                if (tg_utf16_len(r[i]) > max)
                    fits = false;
            }
        }
        gw_chunks_free(parts);
        if (fits || limit <= 64 || round >= 12) {
            if (n == 0) { /* an empty text is one empty message */
                tg_strv_free(pl);
                tg_strv_free(r);
                pl = rt_xcalloc(2, sizeof(char *));
                pl[0] = rt_xstrdup("");
                r = v2 ? rt_xcalloc(2, sizeof(char *)) : NULL;
                if (r)
                    r[0] = rt_xstrdup("");
                n = 1;
            }
            *plain = pl;
            if (rendered)
                *rendered = r;
            else
                tg_strv_free(r);
            return n;
        }
        tg_strv_free(r);
        tg_strv_free(pl);
        limit = limit * 3 / 4; /* escaping or surrogate pairs made a part too long */
    }
}
