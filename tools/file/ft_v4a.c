/*
 * ft_v4a — see ft_v4a.h. The marker matchers reproduce the original's regular expressions
 * (re.match, so anchored at the line start) without a regex engine:
 *   \*\*\*\s*Update\s+File:\s*(.+)      \*\*\*\s*Add\s+File:\s*(.+)
 *   \*\*\*\s*Delete\s+File:\s*(.+)      \*\*\*\s*Move\s+File:\s*(.+?)\s*->\s*(.+)
 *   @@\s*(.+?)\s*@@
 * and every captured path is strip()ped.
 */
#include "ft_v4a.h"

#include "ft_fuzzy.h"
#include "ft_text.h"
#include "rt_alloc.h"
#include "rt_buf.h"

#include <errno.h>
#include <string.h>

typedef struct pline {
    const char *p;
    size_t n;
} pline;

static size_t ws_len(const char *s, size_t n)
{
    ft_span t = ft_lstrip((ft_span){s, n});
    return (size_t)(t.p - s);
}

static bool has(const char *s, size_t n, const char *needle)
{
    return memmem(s, n, needle, strlen(needle)) != NULL;
}

static char *strip_dup(const char *s, size_t n)
{
    ft_span t = ft_strip((ft_span){s, n});
    return rt_xstrndup(t.p, t.n);
}

/* "***" \s* kw \s+ "File:" \s*; on a match, rest and rn get what follows "File:". */
static bool marker(pline l, const char *kw, const char **rest, size_t *rn)
{
    if (l.n < 3 || memcmp(l.p, "***", 3) != 0)
        return false;
    size_t i = 3;
    i += ws_len(l.p + i, l.n - i);
    size_t k = strlen(kw);
    if (l.n - i < k || memcmp(l.p + i, kw, k) != 0)
        return false;
    i += k;
    size_t w = ws_len(l.p + i, l.n - i);
    if (!w)
        return false;
    i += w;
    if (l.n - i < 5 || memcmp(l.p + i, "File:", 5) != 0)
        return false;
    i += 5;
    *rest = l.p + i;
    *rn = l.n - i;
    return true;
}

/* (.+) after \s*: needs one character after "File:"; the capture is strip()ped. */
static bool path_marker(pline l, const char *kw, char **path)
{
    const char *r;
    size_t rn;
    if (!marker(l, kw, &r, &rn) || rn == 0)
        return false;
    *path = strip_dup(r, rn);
    return true;
}

/* Lazy (.+?) then \s* sep: the first end e >= from+1 where whitespace then sep follows (and,
 * when need_after, at least one character after sep). Returns e or 0. */
static size_t lazy_until(const char *r, size_t rn, size_t from, const char *sep, bool need_after,
                         size_t *sep_at)
{
    size_t k = strlen(sep);
    for (size_t e = from + 1; e <= rn; e++) {
        size_t f = e + ws_len(r + e, rn - e);
        if (rn - f >= k && memcmp(r + f, sep, k) == 0 && (!need_after || f + k < rn)) {
            *sep_at = f;
            return e;
        }
    }
    return 0;
}

static bool move_marker(pline l, char **src, char **dst)
{
    const char *r;
    size_t rn, f = 0;
    if (!marker(l, "Move", &r, &rn))
        return false;
    size_t w = ws_len(r, rn);
    size_t e = lazy_until(r, rn, w, "->", true, &f);
    if (!e && w) { /* the regex engine gives back the leading \s* and retries */
        w = 0;
        e = lazy_until(r, rn, 0, "->", true, &f);
    }
    if (!e)
        return false;
    *src = strip_dup(r + w, e - w);
    *dst = strip_dup(r + f + 2, rn - f - 2);
    return true;
}

/* The hint of an "@@" line: @@\s*(.+?)\s*@@, else (our addition) the rest after "@@". */
static char *hunk_hint(pline l)
{
    const char *r = l.p + 2;
    size_t rn = l.n - 2, f = 0;
    size_t w = ws_len(r, rn);
    size_t e = lazy_until(r, rn, w, "@@", false, &f);
    if (!e && w) {
        w = 0;
        e = lazy_until(r, rn, 0, "@@", false, &f);
    }
    ft_span h = e ? (ft_span){r + w, e - w} : (ft_span){r, rn};
    if (ft_strip(h).n == 0)
        return NULL; /* nothing but blanks: no usable hint */
    return e ? rt_xstrndup(h.p, h.n) : strip_dup(h.p, h.n);
}

/* ------------------------------------------------------------ building ops */

typedef struct parser {
    ft_v4a_patch *out;
    ft_v4a_op *op;     /* the open operation (last of out->ops), or NULL */
    ft_v4a_hunk *hunk; /* its open hunk (not yet in op->hunks), or NULL */
    bool *implicit;    /* per line of the open hunk: came from an empty patch line */
    size_t implicit_cap;
} parser;

static void hunk_free(ft_v4a_hunk *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        rt_free(h->lines[i].text);
    rt_free(h->lines);
    rt_free(h->hint);
}

/* Close the open hunk: trim implicit empty lines at both ends, keep it if lines remain. */
static void close_hunk(parser *ps)
{
    ft_v4a_hunk *h = ps->hunk;
    ps->hunk = NULL;
    if (!h)
        return;
    size_t lo = 0, hi = h->n;
    while (hi > lo && ps->implicit[hi - 1])
        rt_free(h->lines[--hi].text);
    while (lo < hi && ps->implicit[lo])
        rt_free(h->lines[lo++].text);
    memmove(h->lines, h->lines + lo, (hi - lo) * sizeof(h->lines[0]));
    h->n = hi - lo;
    if (!h->n || !ps->op) {
        h->n = 0;
        hunk_free(h);
        rt_free(h);
        return;
    }
    ft_v4a_op *op = ps->op;
    if (op->n == op->cap) {
        op->cap = op->cap ? 2 * op->cap : 4;
        op->hunks = rt_xrealloc(op->hunks, op->cap * sizeof(op->hunks[0]));
    }
    op->hunks[op->n++] = *h;
    rt_free(h);
}

static void new_hunk(parser *ps, char *hint)
{
    close_hunk(ps);
    ps->hunk = rt_xcalloc(1, sizeof(ft_v4a_hunk));
    ps->hunk->hint = hint;
}

static void add_line(parser *ps, char prefix, const char *s, size_t n, bool implicit)
{
    if (!ps->hunk)
        new_hunk(ps, NULL);
    ft_v4a_hunk *h = ps->hunk;
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 16;
        h->lines = rt_xrealloc(h->lines, h->cap * sizeof(h->lines[0]));
    }
    if (ps->implicit_cap < h->cap) {
        ps->implicit_cap = h->cap;
        ps->implicit = rt_xrealloc(ps->implicit, ps->implicit_cap * sizeof(bool));
    }
    ps->implicit[h->n] = implicit;
    h->lines[h->n++] = (ft_v4a_line){prefix, rt_xstrndup(s, n), n};
}

/* Close the open op (with its hunk) and open a new one; stays open unless `closed`. */
static void open_op(parser *ps, ft_v4a_kind kind, char *path, char *new_path, bool closed)
{
    close_hunk(ps);
    ft_v4a_patch *p = ps->out;
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 8;
        p->ops = rt_xrealloc(p->ops, p->cap * sizeof(p->ops[0]));
    }
    p->ops[p->n] = (ft_v4a_op){.kind = kind, .path = path, .new_path = new_path};
    ps->op = closed ? NULL : &p->ops[p->n];
    p->n++;
    if (kind == FT_V4A_ADD)
        new_hunk(ps, NULL); /* the original opens an empty hunk for Add File */
}

static void hunk_line(parser *ps, pline l)
{
    char c = l.p[0];
    if (c == '+' || c == '-' || c == ' ')
        add_line(ps, c, l.p + 1, l.n - 1, false);
    else if (c == '\\')
        return; /* "\ No newline at end of file" */
    else
        add_line(ps, ' ', l.p, l.n, false);
}

static void parse_line(parser *ps, pline l)
{
    char *a = NULL, *b = NULL;
    if (path_marker(l, "Update", &a)) {
        open_op(ps, FT_V4A_UPDATE, a, NULL, false);
    } else if (path_marker(l, "Add", &a)) {
        open_op(ps, FT_V4A_ADD, a, NULL, false);
    } else if (path_marker(l, "Delete", &a)) {
        open_op(ps, FT_V4A_DELETE, a, NULL, true);
    } else if (move_marker(l, &a, &b)) {
        open_op(ps, FT_V4A_MOVE, a, b, true);
    } else if (l.n >= 2 && memcmp(l.p, "@@", 2) == 0) {
        if (ps->op)
            new_hunk(ps, hunk_hint(l));
    } else if (ps->op && ps->op->kind == FT_V4A_UPDATE && l.n > 12 &&
               memcmp(l.p, "*** Move to:", 12) == 0) {
        rt_free(ps->op->new_path);
        ps->op->new_path = strip_dup(l.p + 12, l.n - 12);
    } else if (l.n >= 15 && memcmp(l.p, "*** End of File", 15) == 0) {
        return;
    } else if (ps->op && l.n) {
        hunk_line(ps, l);
    } else if (ps->op && ps->hunk) {
        add_line(ps, ' ', "", 0, true);
    }
}

static int validate(const ft_v4a_patch *p, char **err)
{
    if (!p->n) {
        *err = rt_xstrdup("no file operations found (expected '*** Update File:', "
                          "'*** Add File:', '*** Delete File:' or '*** Move File:' lines)");
        return -EINVAL;
    }
    for (size_t i = 0; i < p->n; i++) {
        const ft_v4a_op *op = &p->ops[i];
        if (!op->path[0] || (op->kind == FT_V4A_MOVE && !op->new_path[0]) ||
            (op->new_path && !op->new_path[0])) {
            *err = rt_xasprintf("operation %zu has an empty file path", i + 1);
            return -EINVAL;
        }
    }
    return 0;
}

int ft_v4a_parse(const char *text, size_t len, ft_v4a_patch *out, char **err)
{
    *out = (ft_v4a_patch){0};
    *err = NULL;
    size_t nl = 1;
    for (size_t i = 0; i < len; i++)
        nl += text[i] == '\n';
    pline *ls = rt_xmalloc(nl * sizeof(pline));
    size_t k = 0;
    for (size_t i = 0;;) {
        const char *e = memchr(text + i, '\n', len - i);
        size_t end = e ? (size_t)(e - text) : len;
        ls[k++] = (pline){text + i, end - i};
        if (!e)
            break;
        i = end + 1;
    }
    /* Boundaries: the last begin marker before the first end marker. */
    size_t start = 0, end = k;
    bool have_start = false;
    for (size_t i = 0; i < k; i++) {
        if (has(ls[i].p, ls[i].n, "*** Begin Patch") || has(ls[i].p, ls[i].n, "***Begin Patch")) {
            start = i;
            have_start = true;
        } else if (has(ls[i].p, ls[i].n, "*** End Patch") ||
                   has(ls[i].p, ls[i].n, "***End Patch")) {
            end = i;
            break;
        }
    }
    parser ps = {.out = out};
    for (size_t i = have_start ? start + 1 : 0; i < end; i++)
        parse_line(&ps, ls[i]);
    close_hunk(&ps);
    rt_free(ps.implicit);
    rt_free(ls);
    int rc = validate(out, err);
    if (rc)
        ft_v4a_free(out);
    return rc;
}

void ft_v4a_free(ft_v4a_patch *p)
{
    for (size_t i = 0; i < p->n; i++) {
        ft_v4a_op *op = &p->ops[i];
        for (size_t h = 0; h < op->n; h++)
            hunk_free(&op->hunks[h]);
        rt_free(op->hunks);
        rt_free(op->path);
        rt_free(op->new_path);
    }
    rt_free(p->ops);
    *p = (ft_v4a_patch){0};
}

/* ------------------------------------------------------------- applying */

/* Lines of h whose prefix is in `which`, joined by '\n'. */
static char *join_lines(const ft_v4a_hunk *h, const char *which, size_t *len, size_t *count)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (!strchr(which, h->lines[i].prefix))
            continue;
        if (n++)
            (void)rt_buf_append(&b, "\n", 1); /* no limit: cannot fail */
        (void)rt_buf_append(&b, h->lines[i].text, h->lines[i].len);
    }
    if (count)
        *count = n;
    return rt_buf_steal(&b, len);
}

char *ft_v4a_add_content(const ft_v4a_op *op, size_t *len)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    size_t n = 0;
    for (size_t h = 0; h < op->n; h++)
        for (size_t i = 0; i < op->hunks[h].n; i++) {
            const ft_v4a_line *l = &op->hunks[h].lines[i];
            if (l->prefix != '+')
                continue;
            if (n++)
                (void)rt_buf_append(&b, "\n", 1);
            (void)rt_buf_append(&b, l->text, l->len);
        }
    return rt_buf_steal(&b, len);
}

static char *concat3(const char *a, size_t an, const char *b, size_t bn, const char *c, size_t cn,
                     size_t *len)
{
    char *o = rt_xmalloc(an + bn + cn + 1);
    memcpy(o, a, an);
    memcpy(o + an, b, bn);
    memcpy(o + an + bn, c, cn);
    o[an + bn + cn] = '\0';
    *len = an + bn + cn;
    return o;
}

/* A hunk of '+' lines only: after the line holding the hint, else at the end. */
static char *insert_only(const ft_v4a_hunk *h, const char *cur, size_t n, size_t *outn)
{
    size_t in;
    char *ins = join_lines(h, "+", &in, NULL);
    const char *hit = h->hint ? memmem(cur, n, h->hint, strlen(h->hint)) : NULL;
    char *o;
    if (hit) {
        const char *eol = memchr(hit, '\n', (size_t)(cur + n - hit));
        size_t tn;
        char *tail = eol ? concat3(ins, in, "\n", 1, eol + 1, (size_t)(cur + n - eol - 1), &tn)
                         : concat3("\n", 1, ins, in, "", 0, &tn);
        size_t head = eol ? (size_t)(eol + 1 - cur) : n;
        o = concat3(cur, head, tail, tn, "", 0, outn);
        rt_free(tail);
    } else {
        size_t keep = n;
        while (keep && cur[keep - 1] == '\n')
            keep--;
        char *t;
        size_t tn;
        t = concat3("\n", 1, ins, in, "\n", 1, &tn);
        o = concat3(cur, keep, t, tn, "", 0, outn);
        rt_free(t);
    }
    rt_free(ins);
    return o;
}

/* Retry in the window around the hint's first occurrence. */
static int hint_retry(const ft_v4a_hunk *h, const char *cur, size_t n, const char *pat, size_t pn,
                      const char *rep, size_t rn, char **out, size_t *outn)
{
    const char *hit = h->hint ? memmem(cur, n, h->hint, strlen(h->hint)) : NULL;
    if (!hit)
        return -ENOENT;
    size_t pos = (size_t)(hit - cur);
    size_t ws = pos > 500 ? pos - 500 : 0;
    size_t we = n - pos > 2000 ? pos + 2000 : n;
    ft_fuzzy_result r;
    if (ft_fuzzy_replace(cur + ws, we - ws, pat, pn, rep, rn, false, &r) != 0)
        return -ENOENT;
    size_t tn;
    char *t = concat3(r.content, r.len, cur + we, n - we, "", 0, &tn);
    *out = concat3(cur, ws, t, tn, "", 0, outn);
    rt_free(t);
    ft_fuzzy_result_fini(&r);
    return 0;
}

int ft_v4a_apply_update(const ft_v4a_op *op, const char *content, size_t len, char **out,
                        size_t *outlen, char **err)
{
    char *cur = rt_xmemdup(content, len + 1);
    cur[len] = '\0';
    size_t n = len;
    *err = NULL;
    for (size_t k = 0; k < op->n; k++) {
        const ft_v4a_hunk *h = &op->hunks[k];
        size_t pn, rn, nsearch;
        char *pat = join_lines(h, " -", &pn, &nsearch);
        char *rep = join_lines(h, " +", &rn, NULL);
        char *next = NULL;
        size_t nn = 0;
        if (!nsearch) {
            next = insert_only(h, cur, n, &nn);
        } else if (pn == rn && memcmp(pat, rep, pn) == 0) {
            /* Context only: nothing to change (the original failed with "identical"). */
        } else {
            ft_fuzzy_result r;
            if (ft_fuzzy_replace(cur, n, pat, pn, rep, rn, false, &r) == 0) {
                next = r.content;
                nn = r.len;
            } else if (hint_retry(h, cur, n, pat, pn, rep, rn, &next, &nn) != 0) {
                *err = rt_xasprintf("Could not apply hunk: %s", r.error);
            }
        }
        rt_free(pat);
        rt_free(rep);
        if (*err) {
            rt_free(cur);
            return -EINVAL;
        }
        if (next) {
            rt_free(cur);
            cur = next;
            n = nn;
        }
    }
    *out = cur;
    *outlen = n;
    return 0;
}
