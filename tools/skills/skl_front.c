/*
 * skl_front — SKILL.md front matter: the YAML subset reader, splitting and validation.
 * See skl_front.h.
 */
#include "skl_front.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ================================================================= lines */

typedef struct yline {
    const char *s; /* text after the indentation, right-trimmed */
    size_t n;
    int indent;
    int lineno;
    bool blank;   /* only whitespace */
    bool comment; /* first non-blank character is '#' */
} yline;

typedef struct yparser {
    yline *l;
    size_t nl;
    size_t i;
    char *err;
    size_t errlen;
    bool failed;
} yparser;

__attribute__((format(printf, 3, 4))) static void yerr(yparser *p, int lineno, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "line %d: %s", lineno, msg);
}

static bool skippable(const yline *l)
{
    return l->blank || l->comment;
}

/* The next line that is not blank or a comment, or NULL. Advances p->i to it. */
static yline *next_line(yparser *p)
{
    while (p->i < p->nl && skippable(&p->l[p->i]))
        p->i++;
    return p->i < p->nl ? &p->l[p->i] : NULL;
}

static bool is_seq_item(const yline *l)
{
    return l->n >= 1 && l->s[0] == '-' && (l->n == 1 || l->s[1] == ' ');
}

/* ================================================================ scalars */

static char *trim_dup(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return rt_xstrndup(s, n);
}

/* A plain scalar ends at " #" (a comment). */
static size_t plain_len(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t'))
            return i;
    return n;
}

static void put_utf8(rt_buf *b, unsigned cp)
{
    char o[4];
    size_t k;
    if (cp < 0x80) {
        o[0] = (char)cp;
        k = 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        k = 2;
    } else {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        k = 3;
    }
    rt_buf_append(b, o, k);
}

/* A quoted scalar starting at s[*pos] (the quote); advances *pos past the closing quote.
 * Returns a new string or NULL (error set). */
static char *parse_quoted(yparser *p, int lineno, const char *s, size_t n, size_t *pos)
{
    char q = s[*pos];
    rt_buf b;
    rt_buf_init(&b, n + 1);
    size_t i = *pos + 1;
    for (; i < n; i++) {
        char c = s[i];
        if (q == '\'' && c == '\'') {
            if (i + 1 < n && s[i + 1] == '\'') {
                rt_buf_append(&b, "'", 1);
                i++;
                continue;
            }
            break;
        }
        if (q == '"' && c == '"')
            break;
        if (q == '"' && c == '\\' && i + 1 < n) {
            char e = s[++i];
            switch (e) {
            case 'n': rt_buf_append(&b, "\n", 1); break;
            case 't': rt_buf_append(&b, "\t", 1); break;
            case 'r': rt_buf_append(&b, "\r", 1); break;
            case '0': rt_buf_append(&b, "", 0); break;
            case 'u': {
                unsigned cp = 0;
                size_t k = 0;
                for (; k < 4 && i + 1 < n && isxdigit((unsigned char)s[i + 1]); k++) {
                    char h = s[++i];
                    cp = cp * 16 +
                         (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
                }
                if (k != 4) {
                    yerr(p, lineno, "bad \\u escape in a double-quoted string");
                    rt_buf_fini(&b);
                    return NULL;
                }
                put_utf8(&b, cp);
                break;
            }
            default: rt_buf_append(&b, &e, 1); break;
            }
            continue;
        }
        rt_buf_append(&b, &c, 1);
    }
    if (i >= n) {
        yerr(p, lineno, "unterminated %s-quoted string", q == '"' ? "double" : "single");
        rt_buf_fini(&b);
        return NULL;
    }
    *pos = i + 1;
    rt_buf_append(&b, "", 0);
    return rt_buf_steal(&b, NULL);
}

static cJSON *parse_flow(yparser *p, int lineno, const char *s, size_t n, size_t *pos, int depth);

/* One item of a flow collection: a nested collection, a quoted or a plain scalar ending at
 * ',' or the closing bracket. */
static cJSON *flow_item(yparser *p, int lineno, const char *s, size_t n, size_t *pos, int depth,
                        const char *stops)
{
    while (*pos < n && s[*pos] == ' ')
        (*pos)++;
    if (*pos >= n) {
        yerr(p, lineno, "unterminated flow collection");
        return NULL;
    }
    char c = s[*pos];
    if (c == '[' || c == '{')
        return parse_flow(p, lineno, s, n, pos, depth + 1);
    if (c == '"' || c == '\'') {
        char *v = parse_quoted(p, lineno, s, n, pos);
        if (!v)
            return NULL;
        cJSON *j = cJSON_CreateString(v);
        rt_free(v);
        return j;
    }
    size_t st = *pos;
    while (*pos < n && !strchr(stops, s[*pos]))
        (*pos)++;
    char *v = trim_dup(s + st, *pos - st);
    cJSON *j = cJSON_CreateString(v);
    rt_free(v);
    return j;
}

/* A flow sequence or mapping starting at s[*pos] ('[' or '{'). */
static cJSON *parse_flow(yparser *p, int lineno, const char *s, size_t n, size_t *pos, int depth)
{
    if (depth > SKL_YAML_MAX_DEPTH) {
        yerr(p, lineno, "nesting too deep");
        return NULL;
    }
    bool map = s[*pos] == '{';
    char close = map ? '}' : ']';
    cJSON *out = map ? cJSON_CreateObject() : cJSON_CreateArray();
    (*pos)++;
    for (;;) {
        while (*pos < n && s[*pos] == ' ')
            (*pos)++;
        if (*pos >= n)
            break;
        if (s[*pos] == close) {
            (*pos)++;
            return out;
        }
        if (map) {
            cJSON *k = flow_item(p, lineno, s, n, pos, depth, ":,}");
            if (!k)
                break;
            cJSON *v;
            if (*pos < n && s[*pos] == ':') {
                (*pos)++;
                v = flow_item(p, lineno, s, n, pos, depth, ",}");
            } else {
                v = cJSON_CreateNull();
            }
            if (!v) {
                cJSON_Delete(k);
                break;
            }
            cJSON_DeleteItemFromObjectCaseSensitive(out, k->valuestring);
            cJSON_AddItemToObject(out, k->valuestring, v);
            cJSON_Delete(k);
        } else {
            cJSON *v = flow_item(p, lineno, s, n, pos, depth, ",]");
            if (!v)
                break;
            cJSON_AddItemToArray(out, v);
        }
        while (*pos < n && s[*pos] == ' ')
            (*pos)++;
        if (*pos < n && s[*pos] == ',')
            (*pos)++;
        else if (*pos < n && s[*pos] != close) {
            yerr(p, lineno, "expected ',' or '%c' in a flow collection", close);
            break;
        }
    }
    if (!p->failed)
        yerr(p, lineno, "unterminated flow %s (missing '%c')", map ? "mapping" : "sequence", close);
    cJSON_Delete(out);
    return NULL;
}

/* The end of a value on one line: only blanks or a comment may follow. */
static bool rest_is_empty(const char *s, size_t n, size_t pos)
{
    while (pos < n && (s[pos] == ' ' || s[pos] == '\t'))
        pos++;
    return pos >= n || s[pos] == '#';
}

/* A block scalar (| or >) whose header is hdr; its lines are those after the current
 * line that are blank or indented deeper than parent. */
static cJSON *parse_block_scalar(yparser *p, const yline *at, int parent, const char *hdr,
                                 size_t hn)
{
    bool literal = hdr[0] == '|';
    char chomp = 'c';
    for (size_t k = 1; k < hn && hdr[k] != ' ' && hdr[k] != '#'; k++) {
        if (hdr[k] == '-' || hdr[k] == '+')
            chomp = hdr[k];
        else if (!isdigit((unsigned char)hdr[k])) {
            yerr(p, at->lineno, "bad block scalar header '%.*s'", (int)hn, hdr);
            return NULL;
        }
    }
    p->i++;
    int bind = -1;
    rt_buf b;
    rt_buf_init(&b, SKL_FRONT_MAX_BYTES);
    size_t pending_nl = 0;
    bool first = true;
    while (p->i < p->nl) {
        yline *l = &p->l[p->i];
        if (l->blank) {
            pending_nl++;
            p->i++;
            continue;
        }
        if (l->indent <= parent)
            break;
        if (bind < 0)
            bind = l->indent;
        if (l->indent < bind)
            break;
        if (!first) {
            if (literal)
                for (size_t k = 0; k <= pending_nl; k++)
                    rt_buf_append(&b, "\n", 1);
            else if (pending_nl)
                for (size_t k = 0; k < pending_nl; k++)
                    rt_buf_append(&b, "\n", 1);
            else
                rt_buf_append(&b, " ", 1);
        }
        pending_nl = 0;
        first = false;
        for (int k = bind; k < l->indent; k++)
            rt_buf_append(&b, " ", 1);
        rt_buf_append(&b, l->s, l->n);
        p->i++;
    }
    if (!first && chomp != '-')
        rt_buf_append(&b, "\n", 1);
    if (!first && chomp == '+')
        for (size_t k = 0; k < pending_nl; k++)
            rt_buf_append(&b, "\n", 1);
    rt_buf_append(&b, "", 0);
    char *v = rt_buf_steal(&b, NULL);
    cJSON *j = cJSON_CreateString(v);
    rt_free(v);
    return j;
}

static long key_colon(const char *s, size_t n);

/* An inline value (after "key:" or "- ") on line at; plain scalars take continuation lines
 * indented deeper than parent. Advances past the lines used. */
static cJSON *parse_inline(yparser *p, yline *at, int parent, const char *s, size_t n, int depth)
{
    char c = s[0];
    if (c == '|' || c == '>')
        return parse_block_scalar(p, at, parent, s, n);
    if (c == '&' || c == '*' || c == '!') {
        yerr(p, at->lineno, "anchors, aliases and tags are not supported");
        return NULL;
    }
    if (c == '[' || c == '{') {
        size_t pos = 0;
        cJSON *v = parse_flow(p, at->lineno, s, n, &pos, depth);
        if (v && !rest_is_empty(s, n, pos)) {
            yerr(p, at->lineno, "unexpected text after a flow collection");
            cJSON_Delete(v);
            return NULL;
        }
        p->i++;
        return v;
    }
    if (c == '"' || c == '\'') {
        size_t pos = 0;
        char *v = parse_quoted(p, at->lineno, s, n, &pos);
        if (!v)
            return NULL;
        if (!rest_is_empty(s, n, pos)) {
            yerr(p, at->lineno, "unexpected text after a quoted string");
            rt_free(v);
            return NULL;
        }
        p->i++;
        cJSON *j = cJSON_CreateString(v);
        rt_free(v);
        return j;
    }
    rt_buf b;
    rt_buf_init(&b, SKL_FRONT_MAX_BYTES);
    char *first = trim_dup(s, plain_len(s, n));
    rt_buf_append_str(&b, first);
    rt_free(first);
    p->i++;
    /* continuation lines of a multi-line plain scalar */
    while (p->i < p->nl) {
        yline *l = &p->l[p->i];
        if (l->blank || l->comment || l->indent <= parent)
            break;
        if (key_colon(l->s, l->n) >= 0) { /* "key: value" cannot continue a plain scalar */
            yerr(p, l->lineno, "unexpected indentation");
            rt_buf_fini(&b);
            return NULL;
        }
        char *more = trim_dup(l->s, plain_len(l->s, l->n));
        rt_buf_printf(&b, " %s", more);
        rt_free(more);
        p->i++;
    }
    rt_buf_append(&b, "", 0);
    char *v = rt_buf_steal(&b, NULL);
    cJSON *j = cJSON_CreateString(v);
    rt_free(v);
    return j;
}

/* ================================================================ blocks */

static cJSON *parse_block(yparser *p, int indent, int depth);

/* The colon that ends a mapping key on this line (followed by a blank or the end), or -1. */
static long key_colon(const char *s, size_t n)
{
    size_t i = 0;
    if (n && (s[0] == '"' || s[0] == '\'')) {
        char q = s[0];
        for (i = 1; i < n && s[i] != q; i++)
            ;
        if (i >= n)
            return -1;
        i++;
        while (i < n && s[i] == ' ')
            i++;
        return i < n && s[i] == ':' && (i + 1 == n || s[i + 1] == ' ') ? (long)i : -1;
    }
    for (; i < n; i++) {
        if (s[i] == '#' && i > 0 && s[i - 1] == ' ')
            return -1;
        if (s[i] == ':' && (i + 1 == n || s[i + 1] == ' ' || s[i + 1] == '\t'))
            return (long)i;
    }
    return -1;
}

/* The value of a key (or a "- " item) whose inline text is empty: a nested block, a
 * sequence at the same indentation (mappings only), or null. */
static cJSON *nested_value(yparser *p, const yline *at, bool allow_same_seq, int depth)
{
    p->i++;
    yline *nx = next_line(p);
    if (nx && nx->indent > at->indent)
        return parse_block(p, nx->indent, depth + 1);
    if (nx && allow_same_seq && nx->indent == at->indent && is_seq_item(nx))
        return parse_block(p, nx->indent, depth + 1);
    return cJSON_CreateNull();
}

static cJSON *parse_map(yparser *p, int indent, int depth)
{
    cJSON *obj = cJSON_CreateObject();
    yline *l;
    while (!p->failed && (l = next_line(p)) && l->indent >= indent) {
        if (l->indent > indent) {
            yerr(p, l->lineno, "unexpected indentation");
            break;
        }
        if (is_seq_item(l)) {
            yerr(p, l->lineno, "a list item where 'key: value' was expected");
            break;
        }
        long colon = key_colon(l->s, l->n);
        if (colon < 0) {
            yerr(p, l->lineno, "expected 'key: value', got '%.*s'", (int)(l->n > 60 ? 60 : l->n),
                 l->s);
            break;
        }
        char *key;
        if (l->s[0] == '"' || l->s[0] == '\'') {
            size_t pos = 0;
            key = parse_quoted(p, l->lineno, l->s, (size_t)colon, &pos);
            if (!key)
                break;
        } else {
            key = trim_dup(l->s, (size_t)colon);
        }
        const char *v = l->s + colon + 1;
        size_t vn = l->n - (size_t)colon - 1;
        while (vn && (*v == ' ' || *v == '\t'))
            v++, vn--;
        cJSON *val = (vn == 0 || *v == '#') ? nested_value(p, l, true, depth)
                                            : parse_inline(p, l, indent, v, vn, depth);
        if (!val) {
            rt_free(key);
            break;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
        cJSON_AddItemToObject(obj, key, val);
        rt_free(key);
    }
    if (p->failed) {
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}

static cJSON *parse_seq(yparser *p, int indent, int depth)
{
    cJSON *arr = cJSON_CreateArray();
    yline *l;
    while (!p->failed && (l = next_line(p)) && l->indent >= indent) {
        if (l->indent > indent) {
            yerr(p, l->lineno, "unexpected indentation");
            break;
        }
        if (!is_seq_item(l))
            break; /* the enclosing mapping continues */
        const char *r = l->s + 1;
        size_t rn = l->n - 1;
        while (rn && *r == ' ')
            r++, rn--;
        cJSON *val;
        if (rn == 0 || *r == '#') {
            val = nested_value(p, l, false, depth);
        } else if ((*r != '"' && *r != '\'' && *r != '[' && *r != '{' && key_colon(r, rn) >= 0) ||
                   (rn >= 1 && r[0] == '-' && (rn == 1 || r[1] == ' '))) {
            /* "- key: value" or "- - item": the rest is a block at its own column */
            l->indent += (int)(r - l->s);
            l->s = r;
            l->n = rn;
            val = parse_block(p, l->indent, depth + 1);
        } else {
            val = parse_inline(p, l, indent, r, rn, depth);
        }
        if (!val)
            break;
        cJSON_AddItemToArray(arr, val);
    }
    if (p->failed) {
        cJSON_Delete(arr);
        return NULL;
    }
    return arr;
}

static cJSON *parse_block(yparser *p, int indent, int depth)
{
    yline *l = next_line(p);
    if (depth > SKL_YAML_MAX_DEPTH) {
        yerr(p, l ? l->lineno : 0, "nesting too deep");
        return NULL;
    }
    if (!l)
        return cJSON_CreateNull();
    if (is_seq_item(l))
        return parse_seq(p, indent, depth);
    /* a single scalar at the top (not "key: value") */
    if (depth == 0 && key_colon(l->s, l->n) < 0) {
        cJSON *v = parse_inline(p, l, -1, l->s, l->n, depth);
        return v;
    }
    return parse_map(p, indent, depth);
}

int skl_yaml_parse(const char *text, size_t len, cJSON **out, char *err, size_t errlen)
{
    *out = NULL;
    if (errlen)
        err[0] = '\0';
    if (len > SKL_FRONT_MAX_BYTES) {
        snprintf(err, errlen, "front matter too large (%zu bytes)", len);
        return -EINVAL;
    }
    if (memchr(text, '\0', len)) {
        snprintf(err, errlen, "NUL byte in the front matter");
        return -EINVAL;
    }
    yparser p = {.err = err, .errlen = errlen};
    size_t cap = 16;
    p.l = rt_xmalloc(cap * sizeof(*p.l));
    int lineno = 0;
    for (size_t off = 0; off < len;) {
        const char *s = text + off;
        const char *nl = memchr(s, '\n', len - off);
        size_t n = nl ? (size_t)(nl - s) : len - off;
        off += n + (nl ? 1 : 0);
        lineno++;
        if (p.nl == cap) {
            cap *= 2;
            p.l = rt_xrealloc(p.l, cap * sizeof(*p.l));
        }
        yline *l = &p.l[p.nl++];
        int ind = 0;
        while ((size_t)ind < n && s[ind] == ' ')
            ind++;
        size_t m = n;
        while (m > (size_t)ind && isspace((unsigned char)s[m - 1]))
            m--;
        *l = (yline){.s = s + ind, .n = m - (size_t)ind, .indent = ind, .lineno = lineno};
        l->blank = l->n == 0;
        l->comment = !l->blank && l->s[0] == '#';
        if (!l->blank && !l->comment && l->s[0] == '\t')
            yerr(&p, lineno, "tab characters are not allowed in indentation");
        if (!l->blank && l->indent == 0 && l->n >= 3 &&
            (memcmp(l->s, "---", 3) == 0 || memcmp(l->s, "...", 3) == 0) &&
            (l->n == 3 || l->s[3] == ' '))
            yerr(&p, lineno, "document markers are not allowed in the front matter");
    }
    cJSON *v = NULL;
    if (!p.failed) {
        yline *first = next_line(&p);
        v = parse_block(&p, first ? first->indent : 0, 0);
        yline *rest = p.failed ? NULL : next_line(&p);
        if (rest) {
            yerr(&p, rest->lineno,
                 rest->indent > 0 ? "unexpected indentation" : "unexpected text after the value");
        }
    }
    rt_free(p.l);
    if (p.failed || !v) {
        cJSON_Delete(v);
        if (!p.failed)
            snprintf(err, errlen, "invalid YAML");
        return -EINVAL;
    }
    *out = v;
    return 0;
}

/* ============================================================== SKILL.md */

static size_t bom_len(const char *t)
{
    return memcmp(t, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

int skl_front_split(const char *text, size_t *fm_off, size_t *fm_len, size_t *body_off, char *err,
                    size_t errlen)
{
    size_t b = bom_len(text);
    if (strncmp(text + b, "---", 3) != 0) {
        snprintf(err, errlen,
                 "SKILL.md must start with YAML frontmatter (---). See existing skills for "
                 "format.");
        return -EINVAL;
    }
    const char *start = text + b + 3;
    for (const char *q = strstr(start, "\n---"); q; q = strstr(q + 1, "\n---")) {
        const char *e = q + 4;
        while (*e == ' ' || *e == '\t' || *e == '\r')
            e++;
        if (*e == '\n') {
            *fm_off = (size_t)(start - text);
            *fm_len = (size_t)(q - start);
            *body_off = (size_t)(e + 1 - text);
            return 0;
        }
    }
    snprintf(err, errlen,
             "SKILL.md frontmatter is not closed. Ensure you have a closing '---' line.");
    return -EINVAL;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

static bool all_space(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return false;
    return true;
}

int skl_front_validate(const char *content, char *err, size_t errlen)
{
    if (!content || all_space(content)) {
        snprintf(err, errlen, "Content cannot be empty.");
        return -EINVAL;
    }
    size_t fo, fl, bo;
    if (skl_front_split(content, &fo, &fl, &bo, err, errlen) < 0)
        return -EINVAL;
    cJSON *meta = NULL;
    char yerrs[300];
    if (skl_yaml_parse(content + fo, fl, &meta, yerrs, sizeof(yerrs)) < 0) {
        /* the front matter's line 1 is the rest of the opening "---" line: report lines of
         * the SKILL.md itself, which are the same numbers */
        snprintf(err, errlen, "YAML frontmatter parse error: %s", yerrs);
        return -EINVAL;
    }
    int rc = -EINVAL;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(meta, "description");
    if (!cJSON_IsObject(meta))
        snprintf(err, errlen, "Frontmatter must be a YAML mapping (key: value pairs).");
    else if (!cJSON_GetObjectItemCaseSensitive(meta, "name"))
        snprintf(err, errlen, "Frontmatter must include 'name' field.");
    else if (!d)
        snprintf(err, errlen, "Frontmatter must include 'description' field.");
    else if (cJSON_IsString(d) && utf8_chars(d->valuestring) > SKL_DESCRIPTION_MAX)
        snprintf(err, errlen, "Description exceeds %d characters.", SKL_DESCRIPTION_MAX);
    else if (all_space(content + bo))
        snprintf(err, errlen,
                 "SKILL.md must have content after the frontmatter (instructions, procedures, "
                 "etc.).");
    else
        rc = 0;
    cJSON_Delete(meta);
    return rc;
}

/* The naive reading: top-level "key: value" lines, quotes stripped. */
static cJSON *naive_meta(const char *s, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t off = 0; off < n;) {
        const char *l = s + off;
        const char *nl = memchr(l, '\n', n - off);
        size_t ln = nl ? (size_t)(nl - l) : n - off;
        off += ln + (nl ? 1 : 0);
        const char *c = memchr(l, ':', ln);
        if (!c || l[0] == ' ' || l[0] == '\t' || l[0] == '#' || l[0] == '-')
            continue;
        char *k = trim_dup(l, (size_t)(c - l));
        char *v = trim_dup(c + 1, ln - (size_t)(c + 1 - l));
        size_t vn = strlen(v);
        if (vn >= 2 && (v[0] == '"' || v[0] == '\'') && v[vn - 1] == v[0]) {
            memmove(v, v + 1, vn - 2);
            v[vn - 2] = '\0';
        }
        if (*k && !cJSON_GetObjectItemCaseSensitive(o, k))
            cJSON_AddStringToObject(o, k, v);
        rt_free(k);
        rt_free(v);
    }
    return o;
}

cJSON *skl_front_read(const char *text, size_t *body_off)
{
    size_t fo, fl, bo;
    char err[300];
    if (skl_front_split(text, &fo, &fl, &bo, err, sizeof(err)) < 0) {
        *body_off = bom_len(text);
        return cJSON_CreateObject();
    }
    *body_off = bo;
    cJSON *meta = NULL;
    if (skl_yaml_parse(text + fo, fl, &meta, err, sizeof(err)) == 0 && cJSON_IsObject(meta))
        return meta;
    cJSON_Delete(meta);
    return naive_meta(text + fo, fl);
}

char *skl_front_description(const cJSON *meta, const char *body)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(meta, "description");
    if (cJSON_IsString(d))
        return trim_dup(d->valuestring, strlen(d->valuestring));
    for (const char *l = body; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        char *t = trim_dup(l, n);
        if (*t && *t != '#')
            return t;
        rt_free(t);
        l = nl ? nl + 1 : NULL;
    }
    return rt_xstrdup("");
}

static void add_split(cJSON *arr, const char *s)
{
    while (*s) {
        const char *c = strchr(s, ',');
        size_t n = c ? (size_t)(c - s) : strlen(s);
        char *t = trim_dup(s, n);
        size_t tn = strlen(t);
        char *u = t;
        if (tn && (u[0] == '[')) /* "[a, b]" left as a string by the naive reading */
            u++, tn--;
        if (tn && u[tn - 1] == ']')
            u[--tn] = '\0';
        char *w = trim_dup(u, strlen(u));
        if (*w)
            cJSON_AddItemToArray(arr, cJSON_CreateString(w));
        rt_free(w);
        rt_free(t);
        s += n + (c ? 1 : 0);
    }
}

cJSON *skl_front_list(const cJSON *meta, const char *key)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(meta, "metadata");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(md, "hermes");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, key);
    if (!v || cJSON_IsNull(v))
        v = cJSON_GetObjectItemCaseSensitive(meta, key);
    cJSON *out = cJSON_CreateArray();
    if (cJSON_IsArray(v)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v)
        {
            if (cJSON_IsString(e) && *e->valuestring)
                cJSON_AddItemToArray(out, cJSON_CreateString(e->valuestring));
        }
    } else if (cJSON_IsString(v)) {
        add_split(out, v->valuestring);
    }
    return out;
}

bool skl_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > SKL_NAME_MAX)
        return false;
    if (!islower((unsigned char)name[0]) && !isdigit((unsigned char)name[0]))
        return false;
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!islower(c) && !isdigit(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}
