/*
 * ft_fuzzy — see ft_fuzzy.h. Each strategy follows the function of the same name in the
 * original's tools/fuzzy_match.py.
 */
#include "ft_fuzzy.h"

#include "ft_seqmatch.h"
#include "ft_text.h"
#include "rt_alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const names[FT_FUZZY_NSTRATEGIES + 1] = {
    "none",
    "exact",
    "line_trimmed",
    "whitespace_normalized",
    "indentation_flexible",
    "escape_normalized",
    "trimmed_boundary",
    "block_anchor",
    "context_aware",
};

const char *ft_fuzzy_strategy_name(int i)
{
    return (i >= 1 && i <= FT_FUZZY_NSTRATEGIES) ? names[i] : names[0];
}

void ft_matches_fini(ft_matches *m)
{
    rt_free(m->v);
    *m = (ft_matches){0};
}

/* Record a match; matches arrive with ascending starts. Overlapping ones are counted only. */
static void add_match(ft_matches *m, size_t s, size_t e)
{
    m->total++;
    if (m->n && s < m->v[m->n - 1].end)
        return;
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 16;
        m->v = rt_xrealloc(m->v, m->cap * sizeof(m->v[0]));
    }
    m->v[m->n++] = (ft_match){s, e};
}

/* ------------------------------------------------------------------ lines */

typedef struct lines {
    ft_span *raw;  /* each line without its '\n' (Python's str.split('\n')) */
    ft_span *norm; /* the same line normalised by the strategy */
    size_t n;
    size_t *start; /* byte offset of each line in the text */
} lines;

static void split(const char *s, size_t n, lines *l)
{
    size_t count = 1;
    for (const char *p = s; (p = memchr(p, '\n', (size_t)(s + n - p))) != NULL; p++)
        count++;
    l->n = count;
    l->raw = rt_xmalloc(count * sizeof(ft_span));
    l->norm = rt_xmalloc(count * sizeof(ft_span));
    l->start = rt_xmalloc(count * sizeof(size_t));
    size_t i = 0, k = 0;
    for (;;) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - s) : n;
        l->start[k] = i;
        l->raw[k] = (ft_span){s + i, e - i};
        l->norm[k] = l->raw[k];
        k++;
        if (!nl)
            break;
        i = e + 1;
    }
}

static void lines_fini(lines *l)
{
    rt_free(l->raw);
    rt_free(l->norm);
    rt_free(l->start);
}

static void normalise(lines *l, ft_span (*fn)(ft_span))
{
    for (size_t i = 0; i < l->n; i++)
        l->norm[i] = fn(l->raw[i]);
}

static bool span_eq(ft_span a, ft_span b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Whole-line span of lines [i, i+m): start of line i to the end of line i+m-1. */
static void add_lines(ft_matches *out, const lines *c, size_t clen, size_t i, size_t m)
{
    size_t s = c->start[i];
    size_t e = c->start[i + m - 1] + c->raw[i + m - 1].n;
    add_match(out, s, e < clen ? e : clen);
}

/* _find_normalized_matches: blocks whose normalised lines equal the pattern's. */
static void block_equal(const lines *c, size_t clen, const lines *p, ft_matches *out)
{
    if (p->n > c->n)
        return;
    for (size_t i = 0; i + p->n <= c->n; i++) {
        size_t j = 0;
        while (j < p->n && span_eq(c->norm[i + j], p->norm[j]))
            j++;
        if (j == p->n)
            add_lines(out, c, clen, i, p->n);
    }
}

/* --------------------------------------------------------------- strategies */

static void s_exact(const char *c, size_t cn, const char *p, size_t pn, ft_matches *out)
{
    if (!pn || pn > cn)
        return;
    for (size_t at = 0; at + pn <= cn;) {
        const char *hit = memmem(c + at, cn - at, p, pn);
        if (!hit)
            break;
        size_t pos = (size_t)(hit - c);
        add_match(out, pos, pos + pn);
        at = pos + 1;
    }
}

static void s_line_norm(const char *c, size_t cn, const char *p, size_t pn, ft_span (*fn)(ft_span),
                        ft_matches *out)
{
    lines lc, lp;
    split(c, cn, &lc);
    split(p, pn, &lp);
    normalise(&lc, fn);
    normalise(&lp, fn);
    block_equal(&lc, cn, &lp, out);
    lines_fini(&lc);
    lines_fini(&lp);
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* re.sub(r'[ \t]+', ' ', s) */
static char *collapse(const char *s, size_t n, size_t *outn)
{
    char *o = rt_xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (is_blank(s[i])) {
            while (i < n && is_blank(s[i]))
                i++;
            o[k++] = ' ';
        } else {
            o[k++] = s[i++];
        }
    }
    o[k] = '\0';
    *outn = k;
    return o;
}

/* First index with map[i] >= x (map is non-decreasing), or n. */
static size_t lower_bound(const uint32_t *map, size_t n, size_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (map[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* _map_normalized_positions, step for step (its quirks included). */
static void map_back(const char *o, size_t on, const char *nz, size_t nn, const ft_matches *nm,
                     ft_matches *out)
{
    uint32_t *map = rt_xmalloc((on + 1) * sizeof(uint32_t));
    size_t oi = 0, ni = 0;
    while (oi < on && ni < nn) {
        map[oi] = (uint32_t)ni;
        if (o[oi] == nz[ni]) {
            oi++, ni++;
        } else if (is_blank(o[oi]) && nz[ni] == ' ') {
            oi++;
            if (oi < on && !is_blank(o[oi]))
                ni++;
        } else {
            oi++;
        }
    }
    while (oi < on)
        map[oi++] = (uint32_t)nn;
    for (size_t k = 0; k < nm->n; k++) {
        size_t ns = nm->v[k].start, ne = nm->v[k].end;
        size_t s = lower_bound(map, on, ns); /* first orig position at or after ns */
        size_t e;
        size_t last = lower_bound(map, on, ne); /* one past the last position mapped to ne-1 */
        if (ne > 0 && last > 0 && map[last - 1] == ne - 1)
            e = last;
        else
            e = s + (ne - ns);
        while (e < on && is_blank(o[e]))
            e++;
        add_match(out, s, e < on ? e : on);
    }
    rt_free(map);
}

static void s_whitespace(const char *c, size_t cn, const char *p, size_t pn, ft_matches *out)
{
    size_t ncn, npn;
    char *nc = collapse(c, cn, &ncn), *np = collapse(p, pn, &npn);
    /* Every normalised match is mapped back, overlapping ones included, as the original. */
    ft_matches all = {0};
    for (size_t at = 0; npn && at + npn <= ncn;) {
        const char *hit = memmem(nc + at, ncn - at, np, npn);
        if (!hit)
            break;
        size_t pos = (size_t)(hit - nc);
        if (all.n == all.cap) {
            all.cap = all.cap ? 2 * all.cap : 16;
            all.v = rt_xrealloc(all.v, all.cap * sizeof(all.v[0]));
        }
        all.v[all.n++] = (ft_match){pos, pos + npn};
        at = pos + 1;
    }
    if (all.n)
        map_back(c, cn, nc, ncn, &all, out);
    ft_matches_fini(&all);
    rt_free(nc);
    rt_free(np);
}

static void s_escape(const char *c, size_t cn, const char *p, size_t pn, ft_matches *out)
{
    static const char from[3] = {'n', 't', 'r'}, to[3] = {'\n', '\t', '\r'};
    char *u = rt_xmemdup(p, pn);
    size_t un = pn;
    for (int pass = 0; pass < 3; pass++) { /* three chained str.replace() calls */
        size_t k = 0;
        for (size_t i = 0; i < un; i++) {
            if (u[i] == '\\' && i + 1 < un && u[i + 1] == from[pass]) {
                u[k++] = to[pass];
                i++;
            } else {
                u[k++] = u[i];
            }
        }
        un = k;
    }
    if (!(un == pn && memcmp(u, p, pn) == 0))
        s_exact(c, cn, u, un, out);
    rt_free(u);
}

static void s_trimmed_boundary(const char *c, size_t cn, const char *p, size_t pn, ft_matches *out)
{
    lines lc, lp;
    split(c, cn, &lc);
    split(p, pn, &lp);
    size_t m = lp.n;
    lp.norm[0] = ft_strip(lp.raw[0]);
    if (m > 1)
        lp.norm[m - 1] = ft_strip(lp.raw[m - 1]);
    for (size_t i = 0; m <= lc.n && i + m <= lc.n; i++) {
        if (!span_eq(ft_strip(lc.raw[i]), lp.norm[0]))
            continue;
        size_t j = 1;
        while (j + 1 < m && span_eq(lc.raw[i + j], lp.raw[j]))
            j++;
        if (m > 1 && (j + 1 != m || !span_eq(ft_strip(lc.raw[i + m - 1]), lp.norm[m - 1])))
            continue;
        add_lines(out, &lc, cn, i, m);
    }
    lines_fini(&lc);
    lines_fini(&lp);
}

static void s_block_anchor(const char *c, size_t cn, const char *p, size_t pn, uint64_t budget,
                           ft_matches *out)
{
    lines lc, lp;
    split(c, cn, &lc);
    split(p, pn, &lp);
    size_t m = lp.n;
    if (m < 2 || m > lc.n)
        goto out;
    ft_span first = ft_strip(lp.raw[0]), last = ft_strip(lp.raw[m - 1]);
    ft_sm *w = ft_sm_new();
    ft_u32 ua = {0}, ub = {0};
    if (m > 2) { /* the pattern's middle lines, joined by '\n': a contiguous range */
        const char *ps = lp.raw[1].p, *pe = lp.raw[m - 2].p + lp.raw[m - 2].n;
        ft_utf8_decode(ps, (size_t)(pe - ps), &ub);
    }
    for (size_t i = 0; i + m <= lc.n; i++) {
        if (!span_eq(ft_strip(lc.raw[i]), first) || !span_eq(ft_strip(lc.raw[i + m - 1]), last))
            continue;
        double sim = 1.0;
        if (m > 2) {
            const char *cs = lc.raw[i + 1].p, *ce = lc.raw[i + m - 2].p + lc.raw[i + m - 2].n;
            ft_utf8_decode(cs, (size_t)(ce - cs), &ua);
            sim = ft_sm_ratio(w, ua.v, ua.n, ub.v, ub.n);
            if (ft_sm_work(w) > budget) {
                out->gave_up = true;
                break;
            }
        }
        if (sim >= 0.70)
            add_lines(out, &lc, cn, i, m);
    }
    ft_u32_fini(&ua);
    ft_u32_fini(&ub);
    ft_sm_free(w);
out:
    lines_fini(&lc);
    lines_fini(&lp);
}

/* One cached answer per (pattern line, distinct stripped content line): 0 unknown, 1 no, 2 yes. */
typedef struct ctx_cache {
    uint8_t *v;
    size_t ids; /* distinct content lines */
} ctx_cache;

/* Give each distinct stripped content line an id (content lines repeat a lot in code). */
static uint32_t *line_ids(const lines *c, size_t *nids)
{
    size_t cap = 16;
    while (cap < 2 * c->n + 2)
        cap *= 2;
    uint32_t *slot = rt_xmalloc(cap * sizeof(uint32_t));
    memset(slot, 0xFF, cap * sizeof(uint32_t));
    uint32_t *ids = rt_xmalloc(c->n * sizeof(uint32_t));
    size_t next = 0;
    for (size_t i = 0; i < c->n; i++) {
        ft_span s = c->norm[i];
        uint64_t h = 1469598103934665603ULL;
        for (size_t k = 0; k < s.n; k++)
            h = (h ^ (unsigned char)s.p[k]) * 1099511628211ULL;
        size_t at = (size_t)h & (cap - 1);
        while (slot[at] != UINT32_MAX && !span_eq(c->norm[slot[at]], s))
            at = (at + 1) & (cap - 1);
        if (slot[at] == UINT32_MAX) {
            slot[at] = (uint32_t)i;
            ids[i] = (uint32_t)next++;
        } else {
            ids[i] = ids[slot[at]];
        }
    }
    rt_free(slot);
    *nids = next;
    return ids;
}

typedef struct ctx_state {
    const lines *c, *p;
    ft_u32 *pcp; /* each pattern line's stripped code points */
    ft_u32 tmp;
    ft_sm *w;
    uint32_t *ids;
    ctx_cache cache;
} ctx_state;

/* SequenceMatcher(None, p_line.strip(), c_line.strip()).ratio() >= 0.80 */
static bool similar(ctx_state *st, size_t j, size_t ci)
{
    uint8_t *slot = NULL;
    if (st->cache.v) {
        slot = &st->cache.v[j * st->cache.ids + st->ids[ci]];
        if (*slot)
            return *slot == 2;
    }
    const ft_u32 *a = &st->pcp[j];
    ft_span cs = st->c->norm[ci];
    size_t lb = ft_utf8_chars(cs.p, cs.n);
    bool yes = false;
    /* real_quick_ratio() is an upper bound of ratio(): skip hopeless pairs. */
    size_t mn = a->n < lb ? a->n : lb;
    if (a->n + lb == 0 || 2.0 * (double)mn / (double)(a->n + lb) >= 0.80) {
        ft_utf8_decode(cs.p, cs.n, &st->tmp);
        yes = ft_sm_ratio(st->w, a->v, a->n, st->tmp.v, st->tmp.n) >= 0.80;
    }
    if (slot)
        *slot = yes ? 2 : 1;
    return yes;
}

static void s_context_aware(const char *c, size_t cn, const char *p, size_t pn, uint64_t budget,
                            ft_matches *out)
{
    lines lc, lp;
    split(c, cn, &lc);
    split(p, pn, &lp);
    normalise(&lc, ft_strip);
    normalise(&lp, ft_strip);
    size_t m = lp.n;
    if (m > lc.n)
        goto out;
    ctx_state st = {.c = &lc, .p = &lp, .w = ft_sm_new()};
    st.pcp = rt_xcalloc(m, sizeof(ft_u32));
    for (size_t j = 0; j < m; j++)
        ft_utf8_decode(lp.norm[j].p, lp.norm[j].n, &st.pcp[j]);
    size_t nids;
    st.ids = line_ids(&lc, &nids);
    if (nids && m <= ((size_t)32 << 20) / nids) {
        st.cache.ids = nids;
        st.cache.v = rt_xcalloc(m * nids, 1);
    }
    size_t need = (m + 1) / 2; /* high >= m * 0.5 */
    for (size_t i = 0; i + m <= lc.n && !out->gave_up; i++) {
        size_t high = 0;
        for (size_t j = 0; j < m && high < need && high + (m - j) >= need; j++) {
            high += similar(&st, j, i + j);
            if (ft_sm_work(st.w) > budget) {
                out->gave_up = true;
                break;
            }
        }
        if (high >= need && !out->gave_up)
            add_lines(out, &lc, cn, i, m);
    }
    for (size_t j = 0; j < m; j++)
        ft_u32_fini(&st.pcp[j]);
    rt_free(st.pcp);
    ft_u32_fini(&st.tmp);
    rt_free(st.ids);
    rt_free(st.cache.v);
    ft_sm_free(st.w);
out:
    lines_fini(&lc);
    lines_fini(&lp);
}

void ft_fuzzy_find(int strategy, const char *c, size_t cn, const char *p, size_t pn,
                   uint64_t budget, ft_matches *m)
{
    if (!budget)
        budget = FT_FUZZY_WORK_BUDGET;
    switch (strategy) {
    case 1: s_exact(c, cn, p, pn, m); break;
    case 2: s_line_norm(c, cn, p, pn, ft_strip, m); break;
    case 3: s_whitespace(c, cn, p, pn, m); break;
    case 4: s_line_norm(c, cn, p, pn, ft_lstrip, m); break;
    case 5: s_escape(c, cn, p, pn, m); break;
    case 6: s_trimmed_boundary(c, cn, p, pn, m); break;
    case 7: s_block_anchor(c, cn, p, pn, budget, m); break;
    case 8: s_context_aware(c, cn, p, pn, budget, m); break;
    default: break;
    }
}

static void splice(const char *c, size_t cn, const ft_matches *m, const char *nw, size_t nn,
                   ft_fuzzy_result *r)
{
    size_t len = cn;
    for (size_t k = 0; k < m->n; k++)
        len = len - (m->v[k].end - m->v[k].start) + nn;
    char *o = rt_xmalloc(len + 1);
    size_t at = 0, w = 0;
    for (size_t k = 0; k < m->n; k++) {
        memcpy(o + w, c + at, m->v[k].start - at);
        w += m->v[k].start - at;
        memcpy(o + w, nw, nn);
        w += nn;
        at = m->v[k].end;
    }
    memcpy(o + w, c + at, cn - at);
    w += cn - at;
    o[w] = '\0';
    r->content = o;
    r->len = w;
}

int ft_fuzzy_replace(const char *content, size_t clen, const char *old, size_t olen,
                     const char *new_, size_t nlen, bool replace_all, ft_fuzzy_result *r)
{
    *r = (ft_fuzzy_result){0};
    if (!olen) {
        snprintf(r->error, sizeof(r->error), "old_string cannot be empty");
        return -EINVAL;
    }
    if (olen == nlen && memcmp(old, new_, olen) == 0) {
        snprintf(r->error, sizeof(r->error), "old_string and new_string are identical");
        return -EINVAL;
    }
    bool gave_up = false;
    for (int s = 1; s <= FT_FUZZY_NSTRATEGIES; s++) {
        ft_matches m = {0};
        ft_fuzzy_find(s, content, clen, old, olen, 0, &m);
        gave_up |= m.gave_up;
        if (!m.total) {
            ft_matches_fini(&m);
            continue;
        }
        if (m.total > 1 && !replace_all) {
            snprintf(r->error, sizeof(r->error),
                     "Found %zu matches for old_string. Provide more context to make it unique, "
                     "or use replace_all=True.",
                     m.total);
            ft_matches_fini(&m);
            return -EINVAL;
        }
        splice(content, clen, &m, new_, nlen, r);
        r->count = m.n;
        r->strategy = s;
        ft_matches_fini(&m);
        return 0;
    }
    snprintf(r->error, sizeof(r->error), "Could not find a match for old_string in the file%s",
             gave_up ? " (fuzzy matching stopped early: the file is too large to compare)" : "");
    return -EINVAL;
}

void ft_fuzzy_result_fini(ft_fuzzy_result *r)
{
    rt_free(r->content);
    r->content = NULL;
}
