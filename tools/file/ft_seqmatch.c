/*
 * ft_seqmatch — see ft_seqmatch.h. Comments name the difflib function each part follows.
 */
#include "ft_seqmatch.h"

#include "rt_alloc.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct range {
    size_t alo, ahi, blo, bhi;
} range;

struct ft_sm {
    /* b2j: open addressing from symbol to its run of positions in pos[] (difflib's b2j). */
    uint32_t *hkey, *hstart, *hcnt, *hfill;
    uint64_t *hgen; /* a slot is in use when hgen == gen */
    bool *hpopular;
    size_t hcap;
    uint64_t gen;
    uint32_t *pos; /* positions in b, ascending within each symbol's run */
    size_t pos_cap;
    /* find_longest_match's j2len rows: two buffers, valid where the stamp is the row's. */
    uint32_t *len[2];
    uint64_t *stamp[2];
    size_t row_cap;
    uint64_t row;
    ft_sm_block *blocks;
    size_t nblocks, blocks_cap;
    range *stack;
    size_t stack_cap;
    uint64_t work;
};

ft_sm *ft_sm_new(void)
{
    return rt_xcalloc(1, sizeof(ft_sm));
}

void ft_sm_free(ft_sm *w)
{
    if (!w)
        return;
    rt_free(w->hkey);
    rt_free(w->hstart);
    rt_free(w->hcnt);
    rt_free(w->hfill);
    rt_free(w->hgen);
    rt_free(w->hpopular);
    rt_free(w->pos);
    for (int i = 0; i < 2; i++) {
        rt_free(w->len[i]);
        rt_free(w->stamp[i]);
    }
    rt_free(w->blocks);
    rt_free(w->stack);
    rt_free(w);
}

uint64_t ft_sm_work(const ft_sm *w)
{
    return w->work;
}

static size_t slot_of(const ft_sm *w, uint32_t x)
{
    size_t mask = w->hcap - 1;
    size_t i = (size_t)((x * 0x9E3779B1u) ^ (x >> 16)) & mask;
    while (w->hgen[i] == w->gen && w->hkey[i] != x)
        i = (i + 1) & mask;
    return i;
}

static void grow_table(ft_sm *w, size_t lb)
{
    size_t need = 16;
    while (need < 2 * lb + 2)
        need *= 2;
    if (w->hcap >= need)
        return;
    w->hcap = need;
    rt_free(w->hkey);
    rt_free(w->hstart);
    rt_free(w->hcnt);
    rt_free(w->hfill);
    rt_free(w->hgen);
    rt_free(w->hpopular);
    w->hkey = rt_xmalloc(need * sizeof(uint32_t));
    w->hstart = rt_xmalloc(need * sizeof(uint32_t));
    w->hcnt = rt_xmalloc(need * sizeof(uint32_t));
    w->hfill = rt_xmalloc(need * sizeof(uint32_t));
    w->hgen = rt_xcalloc(need, sizeof(uint64_t));
    w->hpopular = rt_xmalloc(need * sizeof(bool));
    w->gen = 0;
}

/* difflib __chain_b with autojunk: index b, dropping popular symbols when lb >= 200. */
static void index_b(ft_sm *w, const uint32_t *b, size_t lb)
{
    grow_table(w, lb);
    w->gen++;
    if (w->pos_cap < lb + 1) {
        w->pos_cap = lb + 1;
        w->pos = rt_xrealloc(w->pos, w->pos_cap * sizeof(uint32_t));
    }
    for (size_t j = 0; j < lb; j++) {
        size_t s = slot_of(w, b[j]);
        if (w->hgen[s] != w->gen) {
            w->hgen[s] = w->gen;
            w->hkey[s] = b[j];
            w->hcnt[s] = 0;
            w->hstart[s] = UINT32_MAX;
            w->hfill[s] = 0;
        }
        w->hcnt[s]++;
    }
    uint32_t off = 0;
    size_t ntest = lb / 100 + 1;
    for (size_t j = 0; j < lb; j++) {
        size_t s = slot_of(w, b[j]);
        if (w->hstart[s] == UINT32_MAX) {
            w->hstart[s] = off;
            off += w->hcnt[s];
            w->hpopular[s] = lb >= 200 && w->hcnt[s] > ntest;
        }
        w->pos[w->hstart[s] + w->hfill[s]++] = (uint32_t)j;
    }
    w->work += 2 * lb;
}

static void grow_rows(ft_sm *w, size_t lb)
{
    if (w->row_cap >= lb + 1)
        return;
    w->row_cap = lb + 1;
    for (int i = 0; i < 2; i++) {
        w->len[i] = rt_xrealloc(w->len[i], w->row_cap * sizeof(uint32_t));
        rt_free(w->stamp[i]);
        w->stamp[i] = rt_xcalloc(w->row_cap, sizeof(uint64_t));
    }
    w->row = 0;
}

/* difflib find_longest_match (no junk: only the non-junk extension loops do anything). */
static ft_sm_block longest(ft_sm *w, const uint32_t *a, const uint32_t *b, const range *r)
{
    size_t besti = r->alo, bestj = r->blo, bestsize = 0;
    w->row += 2; /* no row of an earlier call can pass for the previous row */
    int cur = 0;
    for (size_t i = r->alo; i < r->ahi; i++) {
        uint64_t g = ++w->row;
        uint32_t *plen = w->len[cur ^ 1], *clen = w->len[cur];
        uint64_t *pst = w->stamp[cur ^ 1], *cst = w->stamp[cur];
        size_t s = slot_of(w, a[i]);
        if (w->hgen[s] == w->gen && !w->hpopular[s]) {
            const uint32_t *p = w->pos + w->hstart[s];
            size_t n = w->hcnt[s];
            w->work += n + 1;
            for (size_t t = 0; t < n; t++) {
                size_t j = p[t];
                if (j < r->blo)
                    continue;
                if (j >= r->bhi)
                    break;
                /* j2len[j-1] of the previous row lives at index j, ours at j+1. */
                size_t k = (pst[j] == g - 1 ? plen[j] : 0) + 1;
                clen[j + 1] = (uint32_t)k;
                cst[j + 1] = g;
                if (k > bestsize) {
                    besti = i - k + 1;
                    bestj = j - k + 1;
                    bestsize = k;
                }
            }
        } else {
            w->work++;
        }
        cur ^= 1;
    }
    while (besti > r->alo && bestj > r->blo && a[besti - 1] == b[bestj - 1]) {
        besti--;
        bestj--;
        bestsize++;
    }
    while (besti + bestsize < r->ahi && bestj + bestsize < r->bhi &&
           a[besti + bestsize] == b[bestj + bestsize])
        bestsize++;
    return (ft_sm_block){besti, bestj, bestsize};
}

static void push_block(ft_sm *w, ft_sm_block blk)
{
    if (w->nblocks == w->blocks_cap) {
        w->blocks_cap = w->blocks_cap ? 2 * w->blocks_cap : 64;
        w->blocks = rt_xrealloc(w->blocks, w->blocks_cap * sizeof(w->blocks[0]));
    }
    w->blocks[w->nblocks++] = blk;
}

static void push_range(ft_sm *w, size_t *n, range r)
{
    if (*n == w->stack_cap) {
        w->stack_cap = w->stack_cap ? 2 * w->stack_cap : 64;
        w->stack = rt_xrealloc(w->stack, w->stack_cap * sizeof(w->stack[0]));
    }
    w->stack[(*n)++] = r;
}

static int cmp_block(const void *x, const void *y)
{
    const ft_sm_block *p = x, *q = y;
    return p->a < q->a ? -1 : p->a > q->a ? 1 : 0;
}

size_t ft_sm_blocks(ft_sm *w, const uint32_t *a, size_t la, const uint32_t *b, size_t lb,
                    const ft_sm_block **out)
{
    index_b(w, b, lb);
    grow_rows(w, lb);
    w->nblocks = 0;
    size_t depth = 0;
    push_range(w, &depth, (range){0, la, 0, lb});
    while (depth) {
        range r = w->stack[--depth];
        ft_sm_block x = longest(w, a, b, &r);
        if (!x.size)
            continue;
        push_block(w, x);
        if (r.alo < x.a && r.blo < x.b)
            push_range(w, &depth, (range){r.alo, x.a, r.blo, x.b});
        if (x.a + x.size < r.ahi && x.b + x.size < r.bhi)
            push_range(w, &depth, (range){x.a + x.size, r.ahi, x.b + x.size, r.bhi});
    }
    if (w->nblocks > 1)
        qsort(w->blocks, w->nblocks, sizeof(w->blocks[0]), cmp_block);
    /* Collapse adjacent blocks in place. */
    size_t k = 0;
    ft_sm_block acc = {0, 0, 0};
    for (size_t i = 0; i < w->nblocks; i++) {
        ft_sm_block x = w->blocks[i];
        if (acc.a + acc.size == x.a && acc.b + acc.size == x.b) {
            acc.size += x.size;
        } else {
            if (acc.size)
                w->blocks[k++] = acc;
            acc = x;
        }
    }
    if (acc.size)
        w->blocks[k++] = acc;
    w->nblocks = k;
    push_block(w, (ft_sm_block){la, lb, 0});
    *out = w->blocks;
    return w->nblocks;
}

double ft_sm_ratio(ft_sm *w, const uint32_t *a, size_t la, const uint32_t *b, size_t lb)
{
    if (la + lb == 0)
        return 1.0;
    const ft_sm_block *bl;
    size_t n = ft_sm_blocks(w, a, la, b, lb, &bl);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += bl[i].size;
    return 2.0 * (double)m / (double)(la + lb);
}

/* ============================================================ unified diff */

typedef struct line_tab {
    size_t *start, *len; /* line i of a text: [start, start+len), newline included */
    size_t n, cap;
} line_tab;

static void split_lines(const char *s, size_t n, line_tab *t)
{
    t->n = 0;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - s) + 1 : n;
        if (t->n == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 64;
            t->start = rt_xrealloc(t->start, t->cap * sizeof(size_t));
            t->len = rt_xrealloc(t->len, t->cap * sizeof(size_t));
        }
        t->start[t->n] = i;
        t->len[t->n++] = e - i;
        i = e;
    }
}

typedef struct intern {
    const char **p;
    size_t *len;
    uint32_t *id;
    size_t cap, next;
} intern;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static uint32_t intern_id(intern *t, const char *s, size_t n)
{
    size_t mask = t->cap - 1, i = (size_t)hash_bytes(s, n) & mask;
    while (t->p[i]) {
        if (t->len[i] == n && memcmp(t->p[i], s, n) == 0)
            return t->id[i];
        i = (i + 1) & mask;
    }
    t->p[i] = s;
    t->len[i] = n;
    t->id[i] = (uint32_t)t->next++;
    return t->id[i];
}

typedef struct opcode {
    char tag; /* 'e'qual, 'r'eplace, 'd'elete, 'i'nsert */
    size_t i1, i2, j1, j2;
} opcode;

/* difflib get_opcodes */
static size_t opcodes(const ft_sm_block *bl, size_t nb, opcode **out)
{
    opcode *v = rt_xmalloc((2 * nb + 1) * sizeof(*v));
    size_t n = 0, i = 0, j = 0;
    for (size_t k = 0; k < nb; k++) {
        size_t ai = bl[k].a, bj = bl[k].b, size = bl[k].size;
        char tag = 0;
        if (i < ai && j < bj)
            tag = 'r';
        else if (i < ai)
            tag = 'd';
        else if (j < bj)
            tag = 'i';
        if (tag)
            v[n++] = (opcode){tag, i, ai, j, bj};
        i = ai + size;
        j = bj + size;
        if (size)
            v[n++] = (opcode){'e', ai, i, bj, j};
    }
    if (n == 0)
        v[n++] = (opcode){'e', 0, 1, 0, 1};
    *out = v;
    return n;
}

static size_t min_sz(size_t x, size_t y)
{
    return x < y ? x : y;
}

static size_t max_sz(size_t x, size_t y)
{
    return x > y ? x : y;
}

/* difflib _format_range_unified */
static int put_range(rt_buf *out, size_t start, size_t stop)
{
    size_t beginning = start + 1, length = stop - start;
    if (length == 1)
        return rt_buf_printf(out, "%zu", beginning);
    if (!length)
        beginning--;
    return rt_buf_printf(out, "%zu,%zu", beginning, length);
}

static int put_line(rt_buf *out, char sign, const char *s, size_t n)
{
    int err = rt_buf_append(out, &sign, 1);
    if (!err)
        err = rt_buf_append(out, s, n);
    if (!err && (n == 0 || s[n - 1] != '\n'))
        err = rt_buf_append_str(out, "\n\\ No newline at end of file\n");
    return err;
}

static int put_group(rt_buf *out, const opcode *g, size_t ng, const char *a, const line_tab *ta,
                     const char *b, const line_tab *tb)
{
    int err = rt_buf_append_str(out, "@@ -");
    if (!err)
        err = put_range(out, g[0].i1, g[ng - 1].i2);
    if (!err)
        err = rt_buf_append_str(out, " +");
    if (!err)
        err = put_range(out, g[0].j1, g[ng - 1].j2);
    if (!err)
        err = rt_buf_append_str(out, " @@\n");
    for (size_t k = 0; k < ng && !err; k++) {
        const opcode *o = &g[k];
        if (o->tag == 'e') {
            for (size_t i = o->i1; i < o->i2 && !err; i++)
                err = put_line(out, ' ', a + ta->start[i], ta->len[i]);
            continue;
        }
        if (o->tag == 'r' || o->tag == 'd')
            for (size_t i = o->i1; i < o->i2 && !err; i++)
                err = put_line(out, '-', a + ta->start[i], ta->len[i]);
        if (o->tag == 'r' || o->tag == 'i')
            for (size_t j = o->j1; j < o->j2 && !err; j++)
                err = put_line(out, '+', b + tb->start[j], tb->len[j]);
    }
    return err;
}

/* difflib get_grouped_opcodes(3) + unified_diff's output loop. */
static int put_groups(rt_buf *out, opcode *c, size_t nc, const char *a, const line_tab *ta,
                      const char *b, const line_tab *tb, const char *from, const char *to)
{
    const size_t n = 3, nn = 2 * n;
    if (c[0].tag == 'e') {
        c[0].i1 = max_sz(c[0].i1, c[0].i2 >= n ? c[0].i2 - n : 0);
        c[0].j1 = max_sz(c[0].j1, c[0].j2 >= n ? c[0].j2 - n : 0);
    }
    if (c[nc - 1].tag == 'e') {
        c[nc - 1].i2 = min_sz(c[nc - 1].i2, c[nc - 1].i1 + n);
        c[nc - 1].j2 = min_sz(c[nc - 1].j2, c[nc - 1].j1 + n);
    }
    opcode *group = rt_xmalloc((nc + 1) * sizeof(*group));
    size_t ng = 0;
    bool started = false;
    int err = 0;
    for (size_t k = 0; k < nc && !err; k++) {
        opcode o = c[k];
        if (o.tag == 'e' && o.i2 - o.i1 > nn) {
            group[ng++] = (opcode){'e', o.i1, min_sz(o.i2, o.i1 + n), o.j1, min_sz(o.j2, o.j1 + n)};
            if (!started) {
                started = true;
                err = rt_buf_printf(out, "--- %s\n+++ %s\n", from, to);
            }
            if (!err)
                err = put_group(out, group, ng, a, ta, b, tb);
            ng = 0;
            o.i1 = max_sz(o.i1, o.i2 - n);
            o.j1 = max_sz(o.j1, o.j2 - n);
        }
        group[ng++] = o;
    }
    if (!err && ng && !(ng == 1 && group[0].tag == 'e')) {
        if (!started)
            err = rt_buf_printf(out, "--- %s\n+++ %s\n", from, to);
        if (!err)
            err = put_group(out, group, ng, a, ta, b, tb);
    }
    rt_free(group);
    return err;
}

int ft_unified_diff(const char *a, size_t la, const char *b, size_t lb, const char *fromfile,
                    const char *tofile, rt_buf *out)
{
    line_tab ta = {0}, tb = {0};
    split_lines(a, la, &ta);
    split_lines(b, lb, &tb);
    intern it = {0};
    it.cap = 16;
    while (it.cap < 2 * (ta.n + tb.n) + 2)
        it.cap *= 2;
    it.p = rt_xcalloc(it.cap, sizeof(it.p[0]));
    it.len = rt_xmalloc(it.cap * sizeof(it.len[0]));
    it.id = rt_xmalloc(it.cap * sizeof(it.id[0]));
    uint32_t *ia = rt_xmalloc((ta.n + 1) * sizeof(uint32_t));
    uint32_t *ib = rt_xmalloc((tb.n + 1) * sizeof(uint32_t));
    for (size_t i = 0; i < ta.n; i++)
        ia[i] = intern_id(&it, a + ta.start[i], ta.len[i]);
    for (size_t j = 0; j < tb.n; j++)
        ib[j] = intern_id(&it, b + tb.start[j], tb.len[j]);

    ft_sm *w = ft_sm_new();
    const ft_sm_block *bl;
    size_t nb = ft_sm_blocks(w, ia, ta.n, ib, tb.n, &bl);
    opcode *codes;
    size_t nc = opcodes(bl, nb, &codes);
    int err = put_groups(out, codes, nc, a, &ta, b, &tb, fromfile, tofile);

    rt_free(codes);
    ft_sm_free(w);
    rt_free(ia);
    rt_free(ib);
    rt_free(it.p);
    rt_free(it.len);
    rt_free(it.id);
    rt_free(ta.start);
    rt_free(ta.len);
    rt_free(tb.start);
    rt_free(tb.len);
    return err;
}
