/*
 * hm_yaml — libyaml events → a syntax tree with byte offsets → a cJSON value tree.
 *
 * The syntax tree (ynode) keeps every node's byte span in the source text so hm_yaml_set can
 * splice new text in; the value tree is what the rest of the program reads. libyaml's marks
 * count characters, not bytes, so a sparse table (one entry per 256 characters) maps a mark's
 * character index to a byte offset. The parser is forced to UTF-8: anything else (including
 * UTF-16) is a reader error, which keeps the character/byte mapping exact.
 */
#include "hm_yaml.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define TAG_PREFIX    "tag:yaml.org,2002:"
#define MAX_MAP_KEYS  10000 /* keys in one mapping: lookups are linear, so bound them */
#define EDIT_TEXT_MAX (64u << 20)

enum { YN_SCALAR, YN_MAP, YN_SEQ, YN_ALIAS };

typedef struct ynode {
    int kind;            /* YN_* */
    bool flow;           /* collection written as {…} or […] */
    bool plain;          /* scalar: plain style and implicitly typed */
    bool block_scalar;   /* scalar: | or > */
    size_t start, end;   /* byte span in the text */
    size_t content_end;  /* end of the last real content inside (block collections) */
    int line, col;       /* 0-based position of start */
    char *tag;           /* NULL when untagged */
    char *anchor;        /* &name, or the alias target for YN_ALIAS */
    char *val;           /* scalar text */
    size_t vlen;         /* scalar length */
    struct ynode **kid;  /* map: key, value, key, value…; seq: items */
    size_t nkid, capkid; /* */
} ynode;

/* Character index → byte offset (libyaml marks count characters). */
typedef struct offmap {
    const char *text;
    size_t len;
    size_t *ck; /* byte offset of every 256th character */
    size_t nck;
} offmap;

typedef struct yparse {
    yaml_parser_t p;
    offmap om;
    const char *text;
    size_t len;
    size_t nodes;
    hm_yaml_err *err;
} yparse;

struct hm_pos {
    char *path;
    int line, col; /* 1-based */
    size_t seq;    /* document order, so the last duplicate wins */
};

struct hm_yaml_doc {
    cJSON *root;
    struct hm_pos *pos;
    size_t npos;
    hm_yaml_dup *dups;
    size_t ndups;
};

typedef struct anchor_ref {
    const char *name;
    const ynode *node;
} anchor_ref;

typedef struct yconv {
    anchor_ref *anch;
    size_t nanch, capanch;
    size_t nodes;
    hm_yaml_err *err;
    struct hm_pos *pos;
    size_t npos, cappos;
    hm_yaml_dup *dups;
    size_t ndups, capdups;
} yconv;

static void set_err(hm_yaml_err *err, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_err(hm_yaml_err *err, int line, int col, const char *fmt, ...)
{
    if (!err)
        return;
    err->line = line;
    err->col = col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

/* ---- character index → byte offset ---------------------------------------------------- */

static void offmap_init(offmap *m, const char *t, size_t len)
{
    m->text = t;
    m->len = len;
    m->ck = rt_xmalloc((len / 256 + 2) * sizeof(*m->ck));
    m->nck = 0;
    size_t ci = 0;
    for (size_t b = 0; b < len; b++) {
        if (((unsigned char)t[b] & 0xC0) == 0x80)
            continue;
        if ((ci & 255) == 0)
            m->ck[m->nck++] = b;
        ci++;
    }
}

static size_t offmap_byte(const offmap *m, size_t idx)
{
    size_t k = idx >> 8;
    if (k >= m->nck)
        return m->len;
    size_t b = m->ck[k];
    for (size_t r = idx & 255; r > 0 && b < m->len; r--) {
        b++;
        while (b < m->len && ((unsigned char)m->text[b] & 0xC0) == 0x80)
            b++;
    }
    return b;
}

/* ---- plain scalar resolution (PyYAML's YAML 1.1 implicit resolvers) ------------------- */

static bool is_null_word(const char *s, size_t n)
{
    static const char *const w[] = {"~", "null", "Null", "NULL"};
    if (n == 0)
        return true;
    for (size_t i = 0; i < RT_ARRAY_LEN(w); i++)
        if (strlen(w[i]) == n && memcmp(w[i], s, n) == 0)
            return true;
    return false;
}

/* 1 true, 0 false, -1 not a boolean word. PyYAML accepts three spellings of each word. */
static int bool_word(const char *s, size_t n)
{
    static const char *const t[] = {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
    static const char *const f[] = {"no",    "No",  "NO",  "false", "False",
                                    "FALSE", "off", "Off", "OFF"};
    for (size_t i = 0; i < RT_ARRAY_LEN(t); i++)
        if (strlen(t[i]) == n && memcmp(t[i], s, n) == 0)
            return 1;
    for (size_t i = 0; i < RT_ARRAY_LEN(f); i++)
        if (strlen(f[i]) == n && memcmp(f[i], s, n) == 0)
            return 0;
    return -1;
}

static bool is_dig(char c, int base)
{
    if (base == 2)
        return c == '0' || c == '1';
    if (base == 8)
        return c >= '0' && c <= '7';
    if (base == 16)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    return c >= '0' && c <= '9';
}

static int dig_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c - 'A' + 10;
}

/* Digits with '_' allowed after the first: accumulate into a double (exact below 2^53). */
static bool digits(const char *s, size_t n, int base, bool first_may_be_us, double *out)
{
    double v = 0;
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_' && (i > 0 || first_may_be_us))
            continue;
        if (!is_dig(s[i], base))
            return false;
        v = v * base + dig_val(s[i]);
        any = true;
    }
    *out = v;
    return any;
}

/* [-+]? then 0b…, 0x…, 0[0-7_]+, 0, [1-9][0-9_]*, or sexagesimal [1-9][0-9_]*(:[0-5]?[0-9])+ */
static bool parse_int(const char *s, size_t n, double *out)
{
    double sign = 1, v;
    if (n && (s[0] == '-' || s[0] == '+')) {
        sign = s[0] == '-' ? -1 : 1;
        s++, n--;
    }
    if (n == 0)
        return false;
    if (n > 2 && s[0] == '0' && s[1] == 'b') {
        if (!digits(s + 2, n - 2, 2, true, &v))
            return false;
    } else if (n > 2 && s[0] == '0' && s[1] == 'x') {
        if (!digits(s + 2, n - 2, 16, true, &v))
            return false;
    } else if (s[0] == '0') {
        bool only_us = true;
        for (size_t i = 1; i < n; i++)
            only_us = only_us && s[i] == '_';
        if (only_us) /* "0" or "0_": PyYAML's octal pattern 0[0-7_]+ reads these as 0 */
            v = 0;
        else if (!digits(s + 1, n - 1, 8, true, &v))
            return false;
    } else if (memchr(s, ':', n)) {
        const char *colon = memchr(s, ':', n);
        if (s[0] < '1' || s[0] > '9' || !digits(s, (size_t)(colon - s), 10, false, &v))
            return false;
        const char *p = colon, *end = s + n;
        while (p < end) { /* each ":[0-5]?[0-9]" group */
            p++;
            const char *q = p;
            while (q < end && *q != ':')
                q++;
            size_t gl = (size_t)(q - p);
            if (gl < 1 || gl > 2 || !is_dig(p[gl - 1], 10) ||
                (gl == 2 && (p[0] < '0' || p[0] > '5')))
                return false;
            v = v * 60 + (gl == 2 ? (p[0] - '0') * 10 + (p[1] - '0') : p[0] - '0');
            p = q;
        }
    } else {
        if (s[0] < '1' || s[0] > '9' || !digits(s, n, 10, false, &v))
            return false;
    }
    *out = v == 0 ? 0 : sign * v;
    return true;
}

/* Copy s without '_' into buf (size cap); false if it does not fit. */
static bool strip_us(const char *s, size_t n, char *buf, size_t cap)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_')
            continue;
        if (j + 1 >= cap)
            return false;
        buf[j++] = s[i];
    }
    buf[j] = 0;
    return true;
}

/* [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*  (sexagesimal float, "1:30.5" = 90.5) */
static bool parse_sexa_float(const char *s, size_t n, double *out)
{
    const char *dot = memchr(s, '.', n), *colon = memchr(s, ':', n);
    if (!dot || !colon || colon > dot)
        return false;
    size_t i = s[0] == '-' || s[0] == '+' ? 1 : 0;
    double v;
    if (i >= n || !is_dig(s[i], 10) || !digits(s + i, (size_t)(colon - s) - i, 10, false, &v))
        return false;
    for (const char *p = colon; p < dot;) { /* each ":[0-5]?[0-9]" group */
        const char *q = p + 1;
        while (q < dot && *q != ':')
            q++;
        size_t gl = (size_t)(q - p - 1);
        if (gl < 1 || gl > 2 || !is_dig(p[gl], 10) || (gl == 2 && (p[1] < '0' || p[1] > '5')))
            return false;
        v = v * 60 + (gl == 2 ? (p[1] - '0') * 10 + (p[2] - '0') : p[1] - '0');
        p = q;
    }
    double frac = 0, scale = 0.1;
    for (const char *p = dot + 1; p < s + n; p++) {
        if (*p == '_')
            continue;
        if (!is_dig(*p, 10))
            return false;
        frac += (*p - '0') * scale;
        scale /= 10;
    }
    *out = (s[0] == '-' ? -1 : 1) * (v + frac);
    return true;
}

static bool parse_float(const char *s, size_t n, double *out)
{
    if (parse_sexa_float(s, n, out))
        return true;
    size_t i = 0;
    bool neg = false;
    if (n && (s[0] == '-' || s[0] == '+'))
        neg = s[0] == '-', i++;
    const char *r = s + i;
    size_t rn = n - i;
    if (rn == 4 && r[0] == '.' &&
        (!memcmp(r + 1, "inf", 3) || !memcmp(r + 1, "Inf", 3) || !memcmp(r + 1, "INF", 3))) {
        *out = neg ? -INFINITY : INFINITY;
        return true;
    }
    if (i == 0 && n == 4 &&
        (!memcmp(s, ".nan", 4) || !memcmp(s, ".NaN", 4) || !memcmp(s, ".NAN", 4))) {
        *out = NAN;
        return true;
    }
    /* [0-9][0-9_]* '.' [0-9_]* exp?   or (unsigned) '.' [0-9_]+ exp?   exp = [eE][-+][0-9]+ */
    size_t j = i;
    bool lead = j < n && s[j] >= '0' && s[j] <= '9';
    if (lead) {
        while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '_'))
            j++;
    } else if (i != 0 || n < 2 || s[1] < '0' || s[1] > '9') {
        return false; /* unsigned ".5" only: a digit must follow the dot */
    }
    if (j >= n || s[j] != '.')
        return false;
    j++;
    size_t frac = j;
    while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '_'))
        j++;
    if (!lead && j == frac)
        return false;
    if (j < n) {
        if ((s[j] != 'e' && s[j] != 'E') || j + 2 >= n + 0 || (s[j + 1] != '+' && s[j + 1] != '-'))
            return false;
        j += 2;
        if (j >= n)
            return false;
        while (j < n && s[j] >= '0' && s[j] <= '9')
            j++;
        if (j != n)
            return false;
    }
    char buf[128];
    if (!strip_us(s, n, buf, sizeof(buf)))
        return false;
    if (strcmp(buf, ".") == 0 || strcmp(buf, "-.") == 0 || strcmp(buf, "+.") == 0)
        return false;
    *out = strtod(buf, NULL);
    return true;
}

static cJSON *string_n(const char *s, size_t n)
{
    char *t = rt_xstrndup(s, n);
    cJSON *j = cJSON_CreateString(t);
    rt_free(t);
    RT_VERIFY(j);
    return j;
}

cJSON *hm_yaml_resolve_plain(const char *s, size_t n)
{
    double d;
    if (is_null_word(s, n))
        return cJSON_CreateNull();
    int b = bool_word(s, n);
    if (b >= 0)
        return cJSON_CreateBool(b);
    if (parse_int(s, n, &d) || parse_float(s, n, &d))
        return cJSON_CreateNumber(d);
    return string_n(s, n);
}

/* ---- libyaml events → ynode ----------------------------------------------------------- */

static void yn_free(ynode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nkid; i++)
        yn_free(n->kid[i]);
    rt_free(n->kid);
    rt_free(n->tag);
    rt_free(n->anchor);
    rt_free(n->val);
    rt_free(n);
}

static void yn_push(ynode *n, ynode *k)
{
    if (n->nkid == n->capkid) {
        n->capkid = n->capkid ? n->capkid * 2 : 8;
        n->kid = rt_xrealloc(n->kid, n->capkid * sizeof(*n->kid));
    }
    n->kid[n->nkid++] = k;
}

static void parser_error(yparse *ps)
{
    yaml_parser_t *p = &ps->p;
    if (p->error == YAML_READER_ERROR) {
        int line = 1;
        for (size_t i = 0; i < p->problem_offset && i < ps->len; i++)
            line += ps->text[i] == '\n';
        if (p->problem_value != -1)
            set_err(ps->err, line, 0, "%s (byte 0x%02x at offset %zu)", p->problem,
                    (unsigned)p->problem_value & 0xff, p->problem_offset);
        else
            set_err(ps->err, line, 0, "%s (at offset %zu)", p->problem, p->problem_offset);
        return;
    }
    if (p->error == YAML_MEMORY_ERROR) {
        set_err(ps->err, 0, 0, "out of memory while parsing");
        return;
    }
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
    if (p->context)
        set_err(ps->err, line, col, "%s %s (line %d, column %d)", p->problem ? p->problem : "error",
                p->context, (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    else
        set_err(ps->err, line, col, "%s", p->problem ? p->problem : "syntax error");
}

static bool next_event(yparse *ps, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&ps->p, ev)) {
        parser_error(ps);
        return false;
    }
    return true;
}

static ynode *yn_new(yparse *ps, int kind, const yaml_event_t *ev, const yaml_char_t *anchor,
                     const yaml_char_t *tag)
{
    if (++ps->nodes > HM_YAML_MAX_NODES) {
        set_err(ps->err, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                "document too large: more than %d nodes", HM_YAML_MAX_NODES);
        return NULL;
    }
    ynode *n = rt_xcalloc(1, sizeof(*n));
    n->kind = kind;
    n->start = offmap_byte(&ps->om, ev->start_mark.index);
    n->end = offmap_byte(&ps->om, ev->end_mark.index);
    n->content_end = n->end;
    n->line = (int)ev->start_mark.line;
    n->col = (int)ev->start_mark.column;
    n->anchor = anchor ? rt_xstrdup((const char *)anchor) : NULL;
    n->tag = tag ? rt_xstrdup((const char *)tag) : NULL;
    return n;
}

/* Just after the ':' that follows a key (same line), or the key's end if there is none. */
static size_t colon_after(const char *text, size_t len, size_t key_end)
{
    size_t p = key_end;
    while (p < len && (text[p] == ' ' || text[p] == '\t'))
        p++;
    return p < len && text[p] == ':' ? p + 1 : key_end;
}

static ynode *parse_node(yparse *ps, const yaml_event_t *ev, int depth);

static ynode *parse_collection(yparse *ps, const yaml_event_t *ev, int depth)
{
    bool map = ev->type == YAML_MAPPING_START_EVENT;
    if (depth >= HM_YAML_MAX_DEPTH) {
        set_err(ps->err, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                "nesting deeper than %d levels", HM_YAML_MAX_DEPTH);
        return NULL;
    }
    ynode *n =
        map ? yn_new(ps, YN_MAP, ev, ev->data.mapping_start.anchor, ev->data.mapping_start.tag)
            : yn_new(ps, YN_SEQ, ev, ev->data.sequence_start.anchor, ev->data.sequence_start.tag);
    if (!n)
        return NULL;
    n->flow = map ? ev->data.mapping_start.style == YAML_FLOW_MAPPING_STYLE
                  : ev->data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE;
    n->content_end = n->start;
    for (;;) {
        yaml_event_t e;
        if (!next_event(ps, &e))
            goto fail;
        if (e.type == YAML_MAPPING_END_EVENT || e.type == YAML_SEQUENCE_END_EVENT) {
            n->end = offmap_byte(&ps->om, e.end_mark.index);
            yaml_event_delete(&e);
            break;
        }
        ynode *k = parse_node(ps, &e, depth + 1);
        yaml_event_delete(&e);
        if (!k)
            goto fail;
        yn_push(n, k);
        if (map && n->nkid % 2 == 0) {
            ynode *key = n->kid[n->nkid - 2];
            if (k->kind == YN_SCALAR && k->plain && k->vlen == 0 && !k->tag)
                k->content_end = colon_after(ps->text, ps->len, key->end);
        }
        if (k->content_end > n->content_end)
            n->content_end = k->content_end;
    }
    if (n->flow)
        n->content_end = n->end;
    return n;
fail:
    yn_free(n);
    return NULL;
}

static ynode *parse_node(yparse *ps, const yaml_event_t *ev, int depth)
{
    ynode *n;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        n = yn_new(ps, YN_SCALAR, ev, ev->data.scalar.anchor, ev->data.scalar.tag);
        if (!n)
            return NULL;
        n->val = rt_xmemdup(ev->data.scalar.value, ev->data.scalar.length + 1);
        n->vlen = ev->data.scalar.length;
        n->plain =
            ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && ev->data.scalar.plain_implicit;
        n->block_scalar = ev->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
                          ev->data.scalar.style == YAML_FOLDED_SCALAR_STYLE;
        return n;
    case YAML_ALIAS_EVENT: return yn_new(ps, YN_ALIAS, ev, ev->data.alias.anchor, NULL);
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT: return parse_collection(ps, ev, depth);
    default:
        set_err(ps->err, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                "unexpected YAML event %d", (int)ev->type);
        return NULL;
    }
}

/* Parse the whole stream: exactly one document (or none). *root is NULL for an empty stream. */
static int parse_tree(const char *text, size_t len, ynode **root, hm_yaml_err *err)
{
    yparse ps = {.text = text, .len = len, .err = err};
    *root = NULL;
    if (!yaml_parser_initialize(&ps.p)) {
        set_err(err, 0, 0, "out of memory");
        return -ENOMEM;
    }
    offmap_init(&ps.om, text, len);
    yaml_parser_set_encoding(&ps.p, YAML_UTF8_ENCODING);
    yaml_parser_set_input_string(&ps.p, (const unsigned char *)text, len);
    int rc = -EBADMSG, docs = 0;
    for (;;) {
        yaml_event_t e;
        if (!next_event(&ps, &e))
            goto out;
        yaml_event_type_t t = e.type;
        if (t == YAML_DOCUMENT_START_EVENT && docs++ > 0) {
            set_err(err, (int)e.start_mark.line + 1, (int)e.start_mark.column + 1,
                    "expected a single document, but found another document");
            yaml_event_delete(&e);
            goto out;
        }
        if (t == YAML_SCALAR_EVENT || t == YAML_ALIAS_EVENT || t == YAML_MAPPING_START_EVENT ||
            t == YAML_SEQUENCE_START_EVENT) {
            *root = parse_node(&ps, &e, 0);
            yaml_event_delete(&e);
            if (!*root)
                goto out;
            continue;
        }
        yaml_event_delete(&e);
        if (t == YAML_STREAM_END_EVENT)
            break;
    }
    rc = 0;
out:
    if (rc) {
        yn_free(*root);
        *root = NULL;
    }
    rt_free(ps.om.ck);
    yaml_parser_delete(&ps.p);
    return rc;
}

/* ---- ynode → cJSON -------------------------------------------------------------------- */

static bool count_node(yconv *c, const ynode *n)
{
    if (++c->nodes <= HM_YAML_MAX_NODES)
        return true;
    set_err(c->err, n->line + 1, n->col + 1,
            "document too large: more than %d nodes (after expanding aliases)", HM_YAML_MAX_NODES);
    return false;
}

static cJSON *scalar_value(yconv *c, const ynode *n)
{
    double d;
    if (memchr(n->val, 0, n->vlen)) {
        set_err(c->err, n->line + 1, n->col + 1, "NUL characters are not allowed in values");
        return NULL;
    }
    if (!n->tag || strcmp(n->tag, "!") == 0)
        return n->plain && !n->tag ? hm_yaml_resolve_plain(n->val, n->vlen)
                                   : string_n(n->val, n->vlen);
    const char *t = n->tag;
    if (strncmp(t, TAG_PREFIX, strlen(TAG_PREFIX)) == 0) {
        t += strlen(TAG_PREFIX);
        if (strcmp(t, "str") == 0)
            return string_n(n->val, n->vlen);
        if (strcmp(t, "null") == 0)
            return cJSON_CreateNull();
        if (strcmp(t, "bool") == 0) {
            char low[8] = {0};
            for (size_t i = 0; i < n->vlen && i < sizeof(low) - 1; i++)
                low[i] = (char)(n->val[i] | 0x20);
            int b = n->vlen < sizeof(low) ? bool_word(low, n->vlen) : -1;
            if (b >= 0)
                return cJSON_CreateBool(b);
        } else if (strcmp(t, "int") == 0) {
            if (parse_int(n->val, n->vlen, &d))
                return cJSON_CreateNumber(d);
        } else if (strcmp(t, "float") == 0) {
            if (parse_float(n->val, n->vlen, &d) || parse_int(n->val, n->vlen, &d))
                return cJSON_CreateNumber(d);
        } else {
            goto unsupported;
        }
        set_err(c->err, n->line + 1, n->col + 1, "'%.*s' is not a valid !!%s", (int)n->vlen, n->val,
                t);
        return NULL;
    }
unsupported:
    set_err(c->err, n->line + 1, n->col + 1, "unsupported YAML tag '%s'", n->tag);
    return NULL;
}

static void add_pos(yconv *c, const char *path, const ynode *k)
{
    if (c->npos == c->cappos) {
        c->cappos = c->cappos ? c->cappos * 2 : 64;
        c->pos = rt_xrealloc(c->pos, c->cappos * sizeof(*c->pos));
    }
    c->pos[c->npos] = (struct hm_pos){rt_xstrdup(path), k->line + 1, k->col + 1, c->npos};
    c->npos++;
}

static void add_dup(yconv *c, const char *path, int line, int first)
{
    if (c->ndups == c->capdups) {
        c->capdups = c->capdups ? c->capdups * 2 : 8;
        c->dups = rt_xrealloc(c->dups, c->capdups * sizeof(*c->dups));
    }
    c->dups[c->ndups++] = (hm_yaml_dup){rt_xstrdup(path), line, first};
}

static const ynode *find_anchor(const yconv *c, const char *name)
{
    for (size_t i = c->nanch; i-- > 0;)
        if (strcmp(c->anch[i].name, name) == 0)
            return c->anch[i].node;
    return NULL;
}

static cJSON *conv(yconv *c, const ynode *n, const char *path, int depth);

static const ynode *deref(yconv *c, const ynode *n)
{
    if (n->kind != YN_ALIAS)
        return n;
    const ynode *t = find_anchor(c, n->anchor);
    if (!t)
        set_err(c->err, n->line + 1, n->col + 1, "found undefined alias '%s'", n->anchor);
    return t;
}

/* Merge one "<<" source (a map, or a list of maps) into the pending merge list. */
static bool collect_merge(yconv *c, const ynode *v, const char *path, int depth, cJSON *merged)
{
    const ynode *t = deref(c, v);
    if (!t)
        return false;
    if (t->kind == YN_SEQ) {
        for (size_t i = 0; i < t->nkid; i++)
            if (!collect_merge(c, t->kid[i], path, depth + 1, merged))
                return false;
        return true;
    }
    if (t->kind != YN_MAP) {
        set_err(c->err, v->line + 1, v->col + 1, "'<<' merge expects a mapping or a list of them");
        return false;
    }
    cJSON *m = conv(c, t, path, depth + 1);
    if (!m)
        return false;
    cJSON *it;
    while ((it = m->child)) { /* earlier sources win: add only keys not merged yet */
        cJSON_DetachItemViaPointer(m, it);
        if (cJSON_GetObjectItemCaseSensitive(merged, it->string))
            cJSON_Delete(it);
        else
            cJSON_AddItemToObject(merged, it->string, it);
    }
    cJSON_Delete(m);
    return true;
}

static char *child_path(const char *path, const char *key)
{
    return path[0] ? rt_xasprintf("%s.%s", path, key) : rt_xstrdup(key);
}

static bool map_key(yconv *c, const ynode *k, const ynode **kd)
{
    *kd = deref(c, k);
    if (!*kd)
        return false;
    if ((*kd)->kind != YN_SCALAR) {
        set_err(c->err, k->line + 1, k->col + 1, "complex mapping keys are not supported");
        return false;
    }
    if (memchr((*kd)->val, 0, (*kd)->vlen)) {
        set_err(c->err, k->line + 1, k->col + 1, "NUL characters are not allowed in keys");
        return false;
    }
    return true;
}

static void put_key(yconv *c, cJSON *obj, int *lines, const char *key, cJSON *v, const ynode *k,
                    const char *cpath)
{
    int idx = 0;
    for (cJSON *it = obj->child; it; it = it->next, idx++) {
        if (strcmp(it->string, key) == 0) {
            add_dup(c, cpath, k->line + 1, lines[idx]);
            lines[idx] = k->line + 1;
            cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v);
            return;
        }
    }
    lines[idx] = k->line + 1;
    cJSON_AddItemToObject(obj, key, v);
}

static cJSON *conv_map(yconv *c, const ynode *n, const char *path, int depth)
{
    size_t npairs = n->nkid / 2;
    if (npairs > MAX_MAP_KEYS) {
        set_err(c->err, n->line + 1, n->col + 1, "more than %d keys in one mapping", MAX_MAP_KEYS);
        return NULL;
    }
    cJSON *obj = cJSON_CreateObject(), *merged = NULL;
    int *lines = rt_xcalloc(npairs + 1, sizeof(*lines));
    for (size_t i = 0; i + 1 < n->nkid; i += 2) {
        const ynode *k = n->kid[i], *v = n->kid[i + 1], *kd;
        if (!map_key(c, k, &kd))
            goto fail;
        if (kd->plain && kd->vlen == 2 && memcmp(kd->val, "<<", 2) == 0) {
            if (!merged)
                merged = cJSON_CreateObject();
            if (!collect_merge(c, v, path, depth, merged))
                goto fail;
            continue;
        }
        char *cpath = child_path(path, kd->val);
        add_pos(c, cpath, k);
        cJSON *cv = conv(c, v, cpath, depth + 1);
        if (!cv) {
            rt_free(cpath);
            goto fail;
        }
        put_key(c, obj, lines, kd->val, cv, k, cpath);
        rt_free(cpath);
    }
    if (merged) {
        cJSON *it;
        while ((it = merged->child)) {
            cJSON_DetachItemViaPointer(merged, it);
            if (cJSON_GetObjectItemCaseSensitive(obj, it->string))
                cJSON_Delete(it);
            else
                cJSON_AddItemToObject(obj, it->string, it);
        }
        cJSON_Delete(merged);
    }
    rt_free(lines);
    return obj;
fail:
    cJSON_Delete(merged);
    cJSON_Delete(obj);
    rt_free(lines);
    return NULL;
}

static bool collection_tag_ok(yconv *c, const ynode *n)
{
    if (!n->tag || strcmp(n->tag, "!") == 0)
        return true;
    if (strcmp(n->tag, n->kind == YN_MAP ? TAG_PREFIX "map" : TAG_PREFIX "seq") == 0)
        return true;
    set_err(c->err, n->line + 1, n->col + 1, "unsupported YAML tag '%s'", n->tag);
    return false;
}

static cJSON *conv(yconv *c, const ynode *n, const char *path, int depth)
{
    if (depth > HM_YAML_MAX_DEPTH) {
        set_err(c->err, n->line + 1, n->col + 1, "nesting deeper than %d levels",
                HM_YAML_MAX_DEPTH);
        return NULL;
    }
    if (n->kind == YN_ALIAS) {
        const ynode *t = deref(c, n);
        return t ? conv(c, t, path, depth + 1) : NULL;
    }
    if (!count_node(c, n))
        return NULL;
    cJSON *v = NULL;
    if (n->kind == YN_SCALAR) {
        v = scalar_value(c, n);
    } else if (collection_tag_ok(c, n)) {
        if (n->kind == YN_MAP) {
            v = conv_map(c, n, path, depth);
        } else {
            v = cJSON_CreateArray();
            for (size_t i = 0; i < n->nkid; i++) {
                cJSON *it = conv(c, n->kid[i], path, depth + 1);
                if (!it) {
                    cJSON_Delete(v);
                    return NULL;
                }
                cJSON_AddItemToArray(v, it);
            }
        }
    }
    if (v && n->anchor) {
        if (c->nanch == c->capanch) {
            c->capanch = c->capanch ? c->capanch * 2 : 8;
            c->anch = rt_xrealloc(c->anch, c->capanch * sizeof(*c->anch));
        }
        c->anch[c->nanch++] = (anchor_ref){n->anchor, n};
    }
    return v;
}

/* ---- the document --------------------------------------------------------------------- */

static int pos_cmp(const void *a, const void *b)
{
    const struct hm_pos *x = a, *y = b;
    int r = strcmp(x->path, y->path);
    if (r)
        return r;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void yconv_fini(yconv *c)
{
    for (size_t i = 0; i < c->npos; i++)
        rt_free(c->pos[i].path);
    rt_free(c->pos);
    for (size_t i = 0; i < c->ndups; i++)
        rt_free(c->dups[i].path);
    rt_free(c->dups);
    rt_free(c->anch);
}

/* Convert a syntax tree into *out (a new document). */
static hm_yaml_doc *convert(const ynode *root, hm_yaml_err *err)
{
    yconv c = {.err = err};
    cJSON *v = root ? conv(&c, root, "", 0) : cJSON_CreateNull();
    if (!v) {
        yconv_fini(&c);
        return NULL;
    }
    hm_yaml_doc *d = rt_xcalloc(1, sizeof(*d));
    d->root = v;
    /* Sort positions by path; of equal paths keep the last written (the one that won). */
    if (c.npos)
        qsort(c.pos, c.npos, sizeof(*c.pos), pos_cmp);
    size_t w = 0;
    for (size_t i = 0; i < c.npos; i++) {
        if (i + 1 < c.npos && strcmp(c.pos[i].path, c.pos[i + 1].path) == 0) {
            rt_free(c.pos[i].path);
            continue;
        }
        c.pos[w++] = c.pos[i];
    }
    d->pos = c.pos;
    d->npos = w;
    d->dups = c.dups;
    d->ndups = c.ndups;
    rt_free(c.anch);
    return d;
}

hm_yaml_doc *hm_yaml_parse(const char *text, size_t len, hm_yaml_err *err)
{
    if (err)
        *err = (hm_yaml_err){0};
    ynode *root;
    if (parse_tree(text, len, &root, err))
        return NULL;
    hm_yaml_doc *d = convert(root, err);
    yn_free(root);
    return d;
}

void hm_yaml_free(hm_yaml_doc *d)
{
    if (!d)
        return;
    cJSON_Delete(d->root);
    for (size_t i = 0; i < d->npos; i++)
        rt_free(d->pos[i].path);
    rt_free(d->pos);
    for (size_t i = 0; i < d->ndups; i++)
        rt_free(d->dups[i].path);
    rt_free(d->dups);
    rt_free(d);
}

const cJSON *hm_yaml_root(const hm_yaml_doc *d)
{
    return d->root;
}

cJSON *hm_yaml_take_root(hm_yaml_doc *d)
{
    cJSON *r = d->root;
    d->root = cJSON_CreateNull();
    return r;
}

int hm_yaml_line(const hm_yaml_doc *d, const char *path, int *col)
{
    size_t lo = 0, hi = d->npos;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(d->pos[mid].path, path);
        if (r == 0) {
            if (col)
                *col = d->pos[mid].col;
            return d->pos[mid].line;
        }
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (col)
        *col = 0;
    return 0;
}

const hm_yaml_dup *hm_yaml_dups(const hm_yaml_doc *d, size_t *n)
{
    *n = d->ndups;
    return d->dups;
}

/* ---- writing YAML text ---------------------------------------------------------------- */

/* True when s must be quoted to read back as the same string. Conservative: the result may also
 * sit inside a flow sequence, so flow indicators are quoted too. */
static bool needs_quotes(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || s[0] == ' ' || s[n - 1] == ' ' || strchr("-?:,[]{}#&*!|>'\"%@`", s[0]))
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f || strchr(",[]{}", ch))
            return true;
        if (ch == ':' && (i + 1 == n || s[i + 1] == ' '))
            return true;
        if (ch == '#' && i > 0 && s[i - 1] == ' ')
            return true;
        /* NEL, LS, PS and BOM are line breaks or markers to libyaml */
        if ((ch == 0xC2 && (unsigned char)s[i + 1] == 0x85) ||
            (ch == 0xE2 && (unsigned char)s[i + 1] == 0x80 &&
             ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9)) ||
            (ch == 0xEF && (unsigned char)s[i + 1] == 0xBB && (unsigned char)s[i + 2] == 0xBF))
            return true;
    }
    cJSON *r = hm_yaml_resolve_plain(s, n);
    bool str = cJSON_IsString(r);
    cJSON_Delete(r);
    return !str;
}

char *hm_yaml_quote(const char *s)
{
    if (!needs_quotes(s))
        return rt_xstrdup(s);
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 8);
    rt_buf_append_str(&b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': rt_buf_append_str(&b, "\\\""); break;
        case '\\': rt_buf_append_str(&b, "\\\\"); break;
        case '\n': rt_buf_append_str(&b, "\\n"); break;
        case '\t': rt_buf_append_str(&b, "\\t"); break;
        case '\r': rt_buf_append_str(&b, "\\r"); break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                rt_buf_printf(&b, "\\x%02x", *p);
            } else if (p[0] == 0xC2 && p[1] == 0x85) {
                rt_buf_append_str(&b, "\\N"), p++;
            } else if (p[0] == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9)) {
                rt_buf_append_str(&b, p[2] == 0xA8 ? "\\L" : "\\P"), p += 2;
            } else if (p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) {
                rt_buf_append_str(&b, "\\uFEFF"), p += 2;
            } else {
                rt_buf_append(&b, p, 1);
            }
        }
    }
    rt_buf_append_str(&b, "\"");
    return rt_buf_steal(&b, NULL);
}

int hm_yaml_split_path(char *buf, const char **parts, size_t max)
{
    size_t n = 0;
    char *p = buf;
    for (;;) {
        char *dot = strchr(p, '.');
        if (dot)
            *dot = 0;
        if (!*p || n == max)
            return -EINVAL;
        parts[n++] = p;
        if (!dot)
            break;
        p = dot + 1;
    }
    return (int)n;
}

/* ---- in-place edits ------------------------------------------------------------------- */

/* Replace text[a, b) with ins. */
typedef struct splice {
    size_t a, b;
    rt_buf ins;
    const char *eol; /* "\n", or "\r\n" when the file uses CRLF line ends */
} splice;

/* The start of the line after the one holding pos (pos itself if it starts a line). */
static size_t line_end_after(const char *text, size_t len, size_t pos)
{
    if (pos > 0 && text[pos - 1] == '\n')
        return pos;
    const char *nl = pos < len ? memchr(text + pos, '\n', len - pos) : NULL;
    return nl ? (size_t)(nl - text) + 1 : len;
}

/* "key:" lines for path[from..n), nested, the last one carrying the value. */
static void emit_lines(rt_buf *b, const char *eol, const char *const *path, size_t from, size_t n,
                       int indent, const char *val, bool lead_nl)
{
    for (size_t j = from; j < n; j++) {
        if (j > from || lead_nl)
            rt_buf_append_str(b, eol);
        for (int s = 0; s < indent + 2 * (int)(j - from); s++)
            rt_buf_append_str(b, " ");
        char *key = hm_yaml_quote(path[j]);
        rt_buf_printf(b, "%s:", key);
        rt_free(key);
        if (j + 1 == n)
            rt_buf_printf(b, " %s", val);
    }
}

static bool is_empty_scalar(const ynode *v)
{
    return v->kind == YN_SCALAR && v->plain && v->vlen == 0 && !v->tag && !v->anchor;
}

/* Append the new lines at the end of block mapping m (or of the file when m is NULL). */
static void plan_insert(const char *text, size_t len, const ynode *m, const char *const *path,
                        size_t from, size_t n, const char *val, splice *sp)
{
    int indent = m && m->nkid ? m->kid[0]->col : 0;
    size_t p = m ? line_end_after(text, len, m->content_end) : len;
    if (p == len && len && text[len - 1] != '\n')
        rt_buf_append_str(&sp->ins, sp->eol);
    emit_lines(&sp->ins, sp->eol, path, from, n, indent, val, false);
    rt_buf_append_str(&sp->ins, sp->eol);
    sp->a = sp->b = p;
}

/* The key is there and is the last path component: replace its value. */
static int plan_replace(const char *text, size_t len, const ynode *k, const ynode *v, size_t colon,
                        const char *val, splice *sp, hm_yaml_err *err)
{
    (void)text, (void)len;
    if (is_empty_scalar(v)) {
        sp->a = sp->b = colon;
        rt_buf_printf(&sp->ins, " %s", val);
    } else if (v->kind == YN_SCALAR || v->kind == YN_ALIAS) {
        sp->a = v->start;
        sp->b = v->end;
        rt_buf_append_str(&sp->ins, val);
        if (v->block_scalar)
            rt_buf_append_str(&sp->ins, sp->eol);
    } else if (v->kind == YN_SEQ) {
        sp->a = v->flow ? v->start : colon;
        sp->b = v->flow ? v->end : v->content_end;
        rt_buf_printf(&sp->ins, v->flow ? "%s" : " %s", val);
    } else {
        set_err(err, k->line + 1, k->col + 1,
                "'%s' is a section (a mapping of keys); set one of its keys instead", k->val);
        return -EINVAL;
    }
    return 0;
}

static int plan_edit(const char *text, size_t len, const ynode *root, const char *const *path,
                     size_t npath, const char *val, splice *sp, hm_yaml_err *err)
{
    const ynode *m = root;
    if (!m || is_empty_scalar(m)) {
        plan_insert(text, len, NULL, path, 0, npath, val, sp);
        return 0;
    }
    for (size_t i = 0; i < npath; i++) {
        if (m->kind != YN_MAP || m->flow) {
            if (i == 0)
                set_err(err, m->line + 1, m->col + 1,
                        "the top level of the file is not a block mapping of keys");
            else
                set_err(err, m->line + 1, m->col + 1,
                        "'%s' is written in flow style ({...}); edit the file by hand",
                        path[i - 1]);
            return -EINVAL;
        }
        const ynode *k = NULL, *v = NULL;
        for (size_t j = 0; j + 1 < m->nkid; j += 2) {
            const ynode *kk = m->kid[j];
            if (kk->kind == YN_SCALAR && kk->vlen == strlen(path[i]) &&
                memcmp(kk->val, path[i], kk->vlen) == 0)
                k = kk, v = m->kid[j + 1];
        }
        if (!k) {
            plan_insert(text, len, m, path, i, npath, val, sp);
            return 0;
        }
        size_t colon = colon_after(text, len, k->end);
        if (colon == k->end) {
            set_err(err, k->line + 1, k->col + 1, "cannot edit key '%s' in place", k->val);
            return -EINVAL;
        }
        if (i + 1 == npath)
            return plan_replace(text, len, k, v, colon, val, sp, err);
        if (v->kind == YN_MAP && !v->flow) {
            m = v;
            continue;
        }
        if (v->kind != YN_SCALAR || v->anchor) {
            set_err(err, v->line + 1, v->col + 1,
                    "'%s' holds %s; cannot add keys under it in place", k->val,
                    v->kind == YN_SEQ   ? "a list"
                    : v->kind == YN_MAP ? "a flow-style mapping"
                                        : "an anchored or aliased value");
            return -EINVAL;
        }
        /* A scalar (or nothing) where a mapping is needed: it becomes the mapping, as the
         * original's `hermes config set` replaced non-dict values with {}. */
        sp->a = colon;
        sp->b = is_empty_scalar(v) ? colon : v->end;
        emit_lines(&sp->ins, sp->eol, path, i + 1, npath, k->col + 2, val, true);
        if (v->block_scalar)
            rt_buf_append_str(&sp->ins, sp->eol);
        return 0;
    }
    return -EINVAL; /* not reached: the loop returns for the last component */
}

/* The old tree with just path set to value: what the edited text must parse to. */
static cJSON *expected_tree(const cJSON *old, const char *const *path, size_t npath,
                            const cJSON *value)
{
    cJSON *root = cJSON_Duplicate(old, true);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        root = cJSON_CreateObject();
    }
    cJSON *cur = root;
    for (size_t i = 0; i + 1 < npath; i++) {
        cJSON *ch = cJSON_GetObjectItemCaseSensitive(cur, path[i]);
        if (!cJSON_IsObject(ch)) {
            cJSON *m = cJSON_CreateObject();
            if (ch)
                cJSON_ReplaceItemInObjectCaseSensitive(cur, path[i], m);
            else
                cJSON_AddItemToObject(cur, path[i], m);
            ch = m;
        }
        cur = ch;
    }
    cJSON *v = cJSON_Duplicate(value, true);
    if (cJSON_GetObjectItemCaseSensitive(cur, path[npath - 1]))
        cJSON_ReplaceItemInObjectCaseSensitive(cur, path[npath - 1], v);
    else
        cJSON_AddItemToObject(cur, path[npath - 1], v);
    return root;
}

/* Parse value_yaml: a scalar or a flow sequence. Returns its value or NULL with *err set. */
static cJSON *parse_value(const char *value_yaml, hm_yaml_err *err)
{
    if (strpbrk(value_yaml, "\r\n")) {
        set_err(err, 0, 0, "the value must be on one line");
        return NULL;
    }
    ynode *vr;
    hm_yaml_err verr = {0};
    if (parse_tree(value_yaml, strlen(value_yaml), &vr, &verr)) {
        set_err(err, 0, 0, "invalid value '%s': %s", value_yaml, verr.msg);
        return NULL;
    }
    cJSON *v = NULL;
    if (vr && (vr->kind == YN_SCALAR || (vr->kind == YN_SEQ && vr->flow)) && !vr->anchor) {
        hm_yaml_doc *vd = convert(vr, &verr);
        if (vd) {
            v = hm_yaml_take_root(vd);
            hm_yaml_free(vd);
        } else {
            set_err(err, 0, 0, "invalid value '%s': %s", value_yaml, verr.msg);
        }
    } else {
        set_err(err, 0, 0, "the value must be a single value or a [flow, list]");
    }
    yn_free(vr);
    return v;
}

static int verify_edit(const char *nt, size_t nlen, const hm_yaml_doc *old, const char *const *path,
                       size_t npath, const cJSON *value, hm_yaml_err *err)
{
    hm_yaml_err perr = {0};
    hm_yaml_doc *nd = hm_yaml_parse(nt, nlen, &perr);
    if (!nd) {
        set_err(err, perr.line, perr.col, "the edited file would not parse (%s)", perr.msg);
        return -EINVAL;
    }
    cJSON *want = expected_tree(hm_yaml_root(old), path, npath, value);
    bool same = cJSON_Compare(want, hm_yaml_root(nd), true);
    cJSON_Delete(want);
    hm_yaml_free(nd);
    if (!same) {
        set_err(err, 0, 0,
                "the edit would also change other values (is the key shared through a YAML "
                "anchor or merge?)");
        return -EINVAL;
    }
    return 0;
}

int hm_yaml_set(const char *text, size_t len, const char *const *path, size_t npath,
                const char *value_yaml, char **out, size_t *out_len, hm_yaml_err *err)
{
    *out = NULL;
    if (out_len)
        *out_len = 0;
    if (err)
        *err = (hm_yaml_err){0};
    if (npath == 0 || npath > HM_YAML_MAX_PATH || len > EDIT_TEXT_MAX) {
        set_err(err, 0, 0, npath ? "document or path too large" : "empty key");
        return -EINVAL;
    }
    cJSON *value = parse_value(value_yaml, err);
    if (!value)
        return -EINVAL;
    int rc = -EBADMSG;
    ynode *root = NULL;
    hm_yaml_doc *old = NULL;
    splice sp = {0};
    const char *nl = memchr(text, '\n', len);
    sp.eol = nl && nl > text && nl[-1] == '\r' ? "\r\n" : "\n";
    rt_buf_init(&sp.ins, EDIT_TEXT_MAX);
    if (parse_tree(text, len, &root, err))
        goto out;
    old = convert(root, err);
    if (!old)
        goto out;
    rc = plan_edit(text, len, root, path, npath, value_yaml, &sp, err);
    if (rc)
        goto out;
    rt_buf nb;
    rt_buf_init(&nb, EDIT_TEXT_MAX + sp.ins.len);
    rt_buf_append(&nb, text, sp.a);
    rt_buf_append(&nb, rt_buf_cstr(&sp.ins), sp.ins.len);
    rt_buf_append(&nb, text + sp.b, len - sp.b);
    rc = verify_edit(rt_buf_cstr(&nb), nb.len, old, path, npath, value, err);
    if (rc == 0) {
        size_t n;
        *out = rt_buf_steal(&nb, &n);
        if (out_len)
            *out_len = n;
    }
    rt_buf_fini(&nb);
out:
    rt_buf_fini(&sp.ins);
    hm_yaml_free(old);
    yn_free(root);
    cJSON_Delete(value);
    return rc;
}
