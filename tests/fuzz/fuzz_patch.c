/*
 * fuzz_patch — libFuzzer target for the patch tool's pure parts: the fuzzy matcher
 * (tools/file/ft_fuzzy.c with ft_seqmatch.c), the V4A parser and hunk application
 * (ft_v4a.c), the unified diff, and search_files' glob matcher and regex translation
 * (ft_glob.c, ft_regex.c; the translation only, not regcomp).
 *
 * Input: byte 0 picks the part and flags; the rest is cut at NUL bytes into the pieces
 * each part needs (content, old, new / patch, file / glob, name). Checked besides what
 * ASan and UBSan catch: every strategy's matches lie inside the content, ascend and do
 * not overlap; a successful replace_all of an exact match equals a plain left-to-right
 * replacement; ratios lie in [0, 1]; a diff always ends with a newline.
 *
 * Build (from the repository root):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iruntime -Itools/file \
 *     tests/fuzz/fuzz_patch.c tools/file/ft_fuzzy.c tools/file/ft_seqmatch.c \
 *     tools/file/ft_text.c tools/file/ft_v4a.c tools/file/ft_glob.c tools/file/ft_regex.c \
 *     runtime/rt_buf.c runtime/rt_alloc.c runtime/rt_log.c runtime/rt_util.c -lpthread \
 *     -o fuzz_patch
 *   ./fuzz_patch -max_total_time=60 -max_len=4096
 */
#include "ft_fuzzy.h"
#include "ft_glob.h"
#include "ft_regex.h"
#include "ft_seqmatch.h"
#include "ft_text.h"
#include "ft_v4a.h"
#include "rt_alloc.h"
#include "rt_buf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PIECES 3

/* Split s[0..n) at NUL bytes into up to MAX_PIECES NUL-terminated copies. */
static size_t pieces(const char *s, size_t n, char **out, size_t *len)
{
    size_t k = 0, at = 0;
    while (k < MAX_PIECES) {
        const char *z = k + 1 < MAX_PIECES ? memchr(s + at, '\0', n - at) : NULL;
        size_t e = z ? (size_t)(z - s) : n;
        out[k] = rt_xmalloc(e - at + 1); /* the last piece may hold NUL bytes */
        memcpy(out[k], s + at, e - at);
        out[k][e - at] = '\0';
        len[k] = e - at;
        k++;
        if (!z)
            break;
        at = e + 1;
    }
    for (size_t i = k; i < MAX_PIECES; i++) {
        out[i] = rt_xstrdup("");
        len[i] = 0;
    }
    return k;
}

static void check_strategies(const char *c, size_t cn, const char *p, size_t pn)
{
    for (int s = 1; s <= FT_FUZZY_NSTRATEGIES; s++) {
        ft_matches m = {0};
        ft_fuzzy_find(s, c, cn, p, pn, 20000000, &m);
        if (m.n > m.total)
            abort();
        for (size_t i = 0; i < m.n; i++) {
            if (m.v[i].start > m.v[i].end || m.v[i].end > cn)
                abort();
            if (i && m.v[i].start < m.v[i - 1].end)
                abort();
        }
        ft_matches_fini(&m);
    }
}

static void check_exact_all(const char *c, size_t cn, const char *o, size_t on, const char *nw,
                            size_t nn, const ft_fuzzy_result *r)
{
    if (r->strategy != 1)
        return;
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    for (size_t i = 0; i < cn;) {
        if (i + on <= cn && memcmp(c + i, o, on) == 0) {
            (void)rt_buf_append(&b, nw, nn);
            i += on;
        } else {
            (void)rt_buf_append(&b, c + i, 1);
            i++;
        }
    }
    if (b.len != r->len || (b.len && memcmp(b.data, r->content, b.len) != 0))
        abort();
    rt_buf_fini(&b);
}

static void fuzz_replace(const char *s, size_t n, bool all)
{
    char *p[MAX_PIECES];
    size_t l[MAX_PIECES];
    pieces(s, n, p, l);
    check_strategies(p[0], l[0], p[1], l[1]);
    ft_fuzzy_result r;
    if (ft_fuzzy_replace(p[0], l[0], p[1], l[1], p[2], l[2], all, &r) == 0) {
        if (!r.content || r.content[r.len] != '\0' || !r.count)
            abort();
        if (all)
            check_exact_all(p[0], l[0], p[1], l[1], p[2], l[2], &r);
        rt_buf d;
        rt_buf_init(&d, 1 << 20);
        if (ft_unified_diff(p[0], l[0], r.content, r.len, "a/x", "b/x", &d) == 0 && d.len &&
            d.data[d.len - 1] != '\n')
            abort();
        rt_buf_fini(&d);
    } else if (!r.error[0] || r.content) {
        abort();
    }
    ft_fuzzy_result_fini(&r);
    ft_u32 a = {0}, b = {0};
    ft_utf8_decode(p[0], l[0], &a);
    ft_utf8_decode(p[1], l[1], &b);
    ft_sm *w = ft_sm_new();
    double q = ft_sm_ratio(w, a.v, a.n, b.v, b.n);
    if (!(q >= 0.0 && q <= 1.0))
        abort();
    ft_sm_free(w);
    ft_u32_fini(&a);
    ft_u32_fini(&b);
    for (int i = 0; i < MAX_PIECES; i++)
        rt_free(p[i]);
}

static void fuzz_v4a(const char *s, size_t n)
{
    char *p[MAX_PIECES];
    size_t l[MAX_PIECES];
    pieces(s, n, p, l);
    ft_v4a_patch v;
    char *err = NULL;
    if (ft_v4a_parse(p[0], l[0], &v, &err) != 0) {
        if (!err)
            abort();
        rt_free(err);
    } else {
        for (size_t i = 0; i < v.n; i++) {
            size_t len;
            char *c = ft_v4a_add_content(&v.ops[i], &len);
            rt_free(c);
            if (v.ops[i].kind != FT_V4A_UPDATE)
                continue;
            char *out = NULL, *why = NULL;
            size_t on = 0;
            int rc = ft_v4a_apply_update(&v.ops[i], p[1], l[1], &out, &on, &why);
            if ((rc == 0) != (out != NULL) || (rc != 0 && !why))
                abort();
            rt_free(out);
            rt_free(why);
        }
        ft_v4a_free(&v);
    }
    for (int i = 0; i < MAX_PIECES; i++)
        rt_free(p[i]);
}

static void fuzz_glob(const char *s, size_t n)
{
    char *p[MAX_PIECES];
    size_t l[MAX_PIECES];
    pieces(s, n, p, l);
    (void)ft_glob_match(p[0], p[1]);
    bool icase;
    char *t = ft_regex_translate(p[2], &icase);
    rt_free(t);
    for (int i = 0; i < MAX_PIECES; i++)
        rt_free(p[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 4) {
    case 0: fuzz_replace(s, n, false); break;
    case 1: fuzz_replace(s, n, true); break;
    case 2: fuzz_v4a(s, n); break;
    default: fuzz_glob(s, n); break;
    }
    return 0;
}
