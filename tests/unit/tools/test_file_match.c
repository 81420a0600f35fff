/* tools/file pure parts: the fuzzy matcher (every strategy, the original's error texts,
 * replace_all), difflib's ratio and unified diff, the V4A parser and hunk application,
 * globs and the regex translation. Expected values come from running the original's
 * tools/fuzzy_match.py and difflib on the same inputs. */
#include "ft_fuzzy.h"
#include "ft_glob.h"
#include "ft_regex.h"
#include "ft_seqmatch.h"
#include "ft_text.h"
#include "ft_v4a.h"
#include "rt_alloc.h"
#include "test.h"

#include <errno.h>
#include <math.h>

typedef struct fz {
    int rc;
    char *out;
    int strategy;
    size_t count;
    char error[256];
} fz;

static fz run(const char *content, const char *old, const char *new_, bool all)
{
    ft_fuzzy_result r;
    fz f = {0};
    f.rc =
        ft_fuzzy_replace(content, strlen(content), old, strlen(old), new_, strlen(new_), all, &r);
    f.out = r.content;
    f.strategy = r.strategy;
    f.count = r.count;
    memcpy(f.error, r.error, sizeof(f.error));
    return f;
}

#define EXPECT_REPLACE(content, old, new_, all, want, strat)                                       \
    do {                                                                                           \
        fz f_ = run(content, old, new_, all);                                                      \
        ASSERT_EQ(0, f_.rc);                                                                       \
        ASSERT_STR_EQ(want, f_.out);                                                               \
        ASSERT_STR_EQ(strat, ft_fuzzy_strategy_name(f_.strategy));                                 \
        rt_free(f_.out);                                                                           \
    } while (0)

#define EXPECT_ERROR(content, old, new_, all, msg)                                                 \
    do {                                                                                           \
        fz f_ = run(content, old, new_, all);                                                      \
        ASSERT_NE(0, f_.rc);                                                                       \
        ASSERT_NULL(f_.out);                                                                       \
        ASSERT_STR_EQ(msg, f_.error);                                                              \
    } while (0)

static size_t find_count(int strategy, const char *c, const char *p)
{
    ft_matches m = {0};
    ft_fuzzy_find(strategy, c, strlen(c), p, strlen(p), 0, &m);
    size_t n = m.total;
    ft_matches_fini(&m);
    return n;
}

TEST(strategy_exact)
{
    EXPECT_REPLACE("def foo():\n    return 1\n", "return 1", "return 2", false,
                   "def foo():\n    return 2\n", "exact");
}

TEST(strategy_line_trimmed_only)
{
    ASSERT_EQ(0, find_count(1, "  foo  \n  bar\nbaz\n", "foo\nbar"));
    EXPECT_REPLACE("  foo  \n  bar\nbaz\n", "foo\nbar", "X", false, "X\nbaz\n", "line_trimmed");
    /* CRLF files: the span runs to the end of the last line, '\r' included. */
    EXPECT_REPLACE("a\r\nb\r\nc\r\n", "a\nb", "X", false, "X\nc\r\n", "line_trimmed");
}

TEST(strategy_whitespace_normalized_only)
{
    ASSERT_EQ(0, find_count(1, "x = 1\na  =  1\n", "a = 1"));
    ASSERT_EQ(0, find_count(2, "x = 1\na  =  1\n", "a = 1"));
    EXPECT_REPLACE("x = 1\na  =  1\n", "a = 1", "Y", false, "x = 1\nY\n", "whitespace_normalized");
    /* The original's position mapping also eats the blanks after the match. */
    EXPECT_REPLACE("if (a\t&&  b) {\n", "(a && b)", "(c)", false, "if (c){\n",
                   "whitespace_normalized");
}

TEST(strategy_indentation_flexible)
{
    /* Whenever lstrip()ped lines are equal, strip()ped ones are too, so in the chain
     * line_trimmed always wins first; alone, the strategy matches what 1 and 3 miss. */
    const char *c = "    foo\n    bar\nx", *p = "foo\nbar";
    ASSERT_EQ(0, find_count(1, c, p));
    ASSERT_EQ(0, find_count(3, c, p));
    ft_matches m = {0};
    ft_fuzzy_find(4, c, strlen(c), p, strlen(p), 0, &m);
    ASSERT_EQ(1, m.total);
    ASSERT_EQ(0, m.v[0].start);
    ASSERT_EQ(15, m.v[0].end); /* the original: [(0, 15)] */
    ft_matches_fini(&m);
    ASSERT_EQ(0, find_count(4, "foo  \nbar", "foo\nbar")); /* trailing blanks still count */
}

TEST(strategy_escape_normalized_only)
{
    for (int s = 1; s <= 4; s++)
        ASSERT_EQ(0, find_count(s, "foo\nbar\n", "foo\\nbar"));
    EXPECT_REPLACE("foo\nbar\n", "foo\\nbar", "baz", false, "baz\n", "escape_normalized");
    ASSERT_EQ(0, find_count(5, "foo\nbar\n", "foo")); /* nothing to unescape: skipped */
}

TEST(strategy_trimmed_boundary)
{
    /* Shadowed by line_trimmed in the chain, like strategy 4; alone it matches where the
     * first and last lines differ only in surrounding blanks. */
    const char *c = "foo  \nbar\nbaz  \n", *p = "foo\nbar\nbaz";
    ASSERT_EQ(0, find_count(1, c, p));
    ASSERT_EQ(0, find_count(3, c, p));
    ASSERT_EQ(0, find_count(4, c, p));
    ft_matches m = {0};
    ft_fuzzy_find(6, c, strlen(c), p, strlen(p), 0, &m);
    ASSERT_EQ(1, m.total);
    ASSERT_EQ(0, m.v[0].start);
    ASSERT_EQ(15, m.v[0].end);
    ft_matches_fini(&m);
    ASSERT_EQ(0, find_count(6, "foo\n bar\nbaz", "foo\nbar\nbaz")); /* middle lines exact */
}

TEST(strategy_block_anchor_only)
{
    const char *c = "def f():\n    x = compute(1)\n    y = x + 2\n    return y\n";
    const char *p = "def f():\n    x = compute(2)\n    y = x + 3\n    return y";
    for (int s = 1; s <= 6; s++)
        ASSERT_EQ(0, find_count(s, c, p));
    EXPECT_REPLACE(c, p, "def f():\n    return 0", false, "def f():\n    return 0\n",
                   "block_anchor");
    /* Anchors equal but a middle that has nothing in common: no match. */
    ASSERT_EQ(0, find_count(7, "a\nqqqqqqqq\nz", "a\nxy\nz") > 0 ? 1 : 0);
}

TEST(strategy_context_aware_only)
{
    const char *c = "alpha = 1\nbeta = 2\ngamma = 3\ndelta = 4\n";
    const char *p = "alpha = 1\nbeta = 2\nGAMMA\nDELTA";
    for (int s = 1; s <= 7; s++)
        ASSERT_EQ(0, find_count(s, c, p));
    EXPECT_REPLACE(c, p, "Z", false, "Z\n", "context_aware");
    EXPECT_REPLACE("héllo wörld\nzweite Zeile\ndritte\n", "héllo wörld\nzweite Zeile\nDRITTE",
                   "neu", false, "neu\n", "context_aware");
}

TEST(original_error_texts)
{
    EXPECT_ERROR("aaa bbb aaa", "aaa", "ccc", false,
                 "Found 2 matches for old_string. Provide more context to make it unique, or "
                 "use replace_all=True.");
    EXPECT_ERROR("aaaa", "aa", "b", false, /* overlapping occurrences all count */
                 "Found 3 matches for old_string. Provide more context to make it unique, or "
                 "use replace_all=True.");
    EXPECT_ERROR("hello world", "xyz", "abc", false,
                 "Could not find a match for old_string in the file");
    EXPECT_ERROR("abc", "", "x", false, "old_string cannot be empty");
    EXPECT_ERROR("abc", "abc", "abc", false, "old_string and new_string are identical");
}

TEST(replace_all_right_to_left_without_overlaps)
{
    EXPECT_REPLACE("aaa bbb aaa", "aaa", "ccc", true, "ccc bbb ccc", "exact");
    /* Overlapping matches: only non-overlapping ones are replaced (the original corrupted
     * the text here). */
    EXPECT_REPLACE("aaaa", "aa", "b", true, "bb", "exact");
    EXPECT_REPLACE("x\nx\nx\n", " x\nx", "y", true, "y\nx\n", "line_trimmed");
    fz f = run("abab", "ab", "ABC", true);
    ASSERT_EQ(2, f.count);
    ASSERT_STR_EQ("ABCABC", f.out);
    rt_free(f.out);
}

TEST(budget_gives_up_cleanly)
{
    /* A tiny budget makes the similarity strategies stop with a clear error. */
    const char *c = "alpha = 1\nbeta = 2\ngamma = 3\ndelta = 4\n";
    ft_matches m = {0};
    ft_fuzzy_find(8, c, strlen(c), "alpha = 1\nbeta = 2\nGAMMA\nDELTA", 31, 1, &m);
    ASSERT_TRUE(m.gave_up);
    ft_matches_fini(&m);
}

/* ------------------------------------------------------------ difflib */

static double ratio(const char *a, const char *b)
{
    ft_u32 ua = {0}, ub = {0};
    ft_utf8_decode(a, strlen(a), &ua);
    ft_utf8_decode(b, strlen(b), &ub);
    ft_sm *w = ft_sm_new();
    double r = ft_sm_ratio(w, ua.v, ua.n, ub.v, ub.n);
    ft_sm_free(w);
    ft_u32_fini(&ua);
    ft_u32_fini(&ub);
    return r;
}

TEST(sequence_matcher_ratio_is_difflibs)
{
    ASSERT_TRUE(
        fabs(ratio("    x = compute(1)\n    y = x + 2", "    x = compute(2)\n    y = x + 3") -
             0.9375) < 1e-12);
    ASSERT_TRUE(fabs(ratio("", "") - 1.0) < 1e-12);
    ASSERT_TRUE(fabs(ratio("abc", "") - 0.0) < 1e-12);
    /* difflib's documented example: ratio 0.75 */
    ASSERT_TRUE(fabs(ratio("abcd", "bcde") - 0.75) < 1e-12);
    /* Autojunk: 'a' is popular in b (300 of 301), yet extension still takes one. */
    char a[8] = "ab", b[302];
    memset(b, 'a', 300);
    b[300] = 'b';
    b[301] = '\0';
    ASSERT_TRUE(fabs(ratio(a, b) - 4.0 / 303) <
                1e-12); /* "ab": the match grows back over the popular a */
}

TEST(unified_diff_layout)
{
    const char *a = "l1\nl2\nl3\nl4\nl5\nl6\nl7\nl8\nl9\n";
    const char *b = "l1\nl2\nl3\nl4\nL5\nl6\nl7\nl8\nl9\n";
    rt_buf out;
    rt_buf_init(&out, 1 << 20);
    ASSERT_OK(ft_unified_diff(a, strlen(a), b, strlen(b), "a/x.txt", "b/x.txt", &out));
    ASSERT_STR_EQ("--- a/x.txt\n+++ b/x.txt\n@@ -2,7 +2,7 @@\n l2\n l3\n l4\n-l5\n+L5\n l6\n l7\n"
                  " l8\n",
                  out.data);
    rt_buf_reset(&out);
    ASSERT_OK(ft_unified_diff("a\n", 2, "a\n", 2, "a/x", "b/x", &out));
    ASSERT_EQ(0, out.len); /* no change, no diff */
    ASSERT_OK(ft_unified_diff("", 0, "new", 3, "a/x", "b/x", &out));
    ASSERT_STR_EQ("--- a/x\n+++ b/x\n@@ -0,0 +1 @@\n+new\n\\ No newline at end of file\n",
                  out.data);
    rt_buf_fini(&out);
    rt_buf small;
    rt_buf_init(&small, 10);
    ASSERT_EQ(-E2BIG, ft_unified_diff(a, strlen(a), b, strlen(b), "a/x", "b/x", &small));
    rt_buf_fini(&small);
}

/* ------------------------------------------------------------ V4A */

TEST(v4a_parse_all_operations)
{
    const char *p = "*** Begin Patch\n"
                    "*** Update File: src/a.py\n"
                    "@@ def main(): @@\n"
                    " def main():\n"
                    "-    return 1\n"
                    "+    return 2\n"
                    "*** Add File: new.txt\n"
                    "+hello\n"
                    "+world\n"
                    "*** Delete File:  old.txt  \n"
                    "*** Move File: a b.txt -> c.txt\n"
                    "*** End Patch\n"
                    "*** Add File: ignored.txt\n";
    ft_v4a_patch v;
    char *err = NULL;
    ASSERT_OK(ft_v4a_parse(p, strlen(p), &v, &err));
    ASSERT_EQ(4, v.n);
    ASSERT_EQ(FT_V4A_UPDATE, v.ops[0].kind);
    ASSERT_STR_EQ("src/a.py", v.ops[0].path);
    ASSERT_EQ(1, v.ops[0].n);
    ASSERT_STR_EQ("def main():", v.ops[0].hunks[0].hint);
    ASSERT_EQ(3, v.ops[0].hunks[0].n);
    ASSERT_EQ('-', v.ops[0].hunks[0].lines[1].prefix);
    ASSERT_STR_EQ("    return 1", v.ops[0].hunks[0].lines[1].text);
    ASSERT_EQ(FT_V4A_ADD, v.ops[1].kind);
    size_t len;
    char *c = ft_v4a_add_content(&v.ops[1], &len);
    ASSERT_STR_EQ("hello\nworld", c); /* no final newline, as the original */
    rt_free(c);
    ASSERT_EQ(FT_V4A_DELETE, v.ops[2].kind);
    ASSERT_STR_EQ("old.txt", v.ops[2].path);
    ASSERT_EQ(FT_V4A_MOVE, v.ops[3].kind);
    ASSERT_STR_EQ("a b.txt", v.ops[3].path);
    ASSERT_STR_EQ("c.txt", v.ops[3].new_path);
    ft_v4a_free(&v);
}

TEST(v4a_parse_errors_and_quirks)
{
    ft_v4a_patch v;
    char *err = NULL;
    ASSERT_EQ(-EINVAL, ft_v4a_parse("*** Begin Patch\n*** End Patch\n", 30, &v, &err));
    ASSERT_STR_CONTAINS(err, "no file operations found");
    rt_free(err);
    const char *e = "*** Update File:  \n-x\n+y\n";
    ASSERT_EQ(-EINVAL, ft_v4a_parse(e, strlen(e), &v, &err));
    ASSERT_STR_CONTAINS(err, "empty file path");
    rt_free(err);
    /* No begin marker, "@@ hint" without a closing @@, "Move to", empty context lines. */
    const char *q = "*** Update File: f.c\n@@ int main\n a\n\n-b\n+B\n\n*** Move to: g.c\n";
    ASSERT_OK(ft_v4a_parse(q, strlen(q), &v, &err));
    ASSERT_EQ(1, v.n);
    ASSERT_STR_EQ("g.c", v.ops[0].new_path);
    ASSERT_STR_EQ("int main", v.ops[0].hunks[0].hint);
    ASSERT_EQ(4, v.ops[0].hunks[0].n); /* a, "", -b, +B: the trailing empty line is dropped */
    ASSERT_EQ(0, v.ops[0].hunks[0].lines[1].len);
    ft_v4a_free(&v);
}

static char *apply(const char *patch, const char *content, char **err)
{
    ft_v4a_patch v;
    char *perr = NULL;
    ASSERT_OK(ft_v4a_parse(patch, strlen(patch), &v, &perr));
    char *out = NULL;
    size_t n;
    *err = NULL;
    (void)ft_v4a_apply_update(&v.ops[0], content, strlen(content), &out, &n, err);
    ft_v4a_free(&v);
    return out;
}

TEST(v4a_apply_update)
{
    char *err;
    char *out = apply("*** Update File: a\n def run():\n-    return 1\n+    return 2\n",
                      "x = 0\ndef run():\n    return 1\n", &err);
    ASSERT_STR_EQ("x = 0\ndef run():\n    return 2\n", out);
    rt_free(out);
    /* Addition-only hunks: after the hint's line, else at the end. */
    out = apply("*** Update File: a\n@@ def main(): @@\n+    x = 1\n", "def main():\n    pass\n",
                &err);
    ASSERT_STR_EQ("def main():\n    x = 1\n    pass\n", out);
    rt_free(out);
    out = apply("*** Update File: a\n+def new_func():\n+    return True\n", "existing = True\n",
                &err);
    ASSERT_STR_EQ("existing = True\ndef new_func():\n    return True\n", out);
    rt_free(out);
    /* A hunk that does not apply. */
    out = apply("*** Update File: a\n nope\n-x\n+y\n", "completely different\n", &err);
    ASSERT_NULL(out);
    ASSERT_STR_EQ("Could not apply hunk: Could not find a match for old_string in the file", err);
    rt_free(err);
    /* Ambiguous without the hint; the hint's window makes it unique. */
    const char *two = "def a():\n    return 1\n" /* padding keeps the windows apart */
                      "#.............................................................\n"
                      "#.............................................................\n"
                      "#.............................................................\n"
                      "#.............................................................\n"
                      "#.............................................................\n"
                      "#.............................................................\n"
                      "#.............................................................\n"
                      "#.............................................................\n"
                      "def b():\n    return 1\n";
    out = apply("*** Update File: a\n@@ def b(): @@\n-    return 1\n+    return 2\n", two, &err);
    ASSERT_NOT_NULL(out);
    ASSERT_STR_CONTAINS(out, "def a():\n    return 1\n");
    ASSERT_STR_CONTAINS(out, "def b():\n    return 2\n");
    rt_free(out);
}

/* ------------------------------------------------------------ globs, regex, text */

TEST(globs_like_ripgrep)
{
    ASSERT_TRUE(ft_glob_match("*.py", "a.py"));
    ASSERT_FALSE(ft_glob_match("*.py", "a.pyc"));
    ASSERT_FALSE(ft_glob_match("*.py", "dir/a.py")); /* '*' stays in one component */
    ASSERT_TRUE(ft_glob_match("**/*.py", "dir/sub/a.py"));
    ASSERT_TRUE(ft_glob_match("**/*.py", "a.py"));
    ASSERT_TRUE(ft_glob_match("src/**", "src/a/b.c"));
    ASSERT_TRUE(ft_glob_match("*.{c,h}", "x.h"));
    ASSERT_FALSE(ft_glob_match("*.{c,h}", "x.hpp"));
    ASSERT_TRUE(ft_glob_match("[a-c]?.txt", "bx.txt"));
    ASSERT_FALSE(ft_glob_match("[!a-c]?.txt", "bx.txt"));
    ASSERT_TRUE(ft_glob_match("\\*.txt", "*.txt"));
    ASSERT_TRUE(ft_glob_match("?.txt", "é.txt")); /* one character, two bytes */
    /* A pathological pattern ends (the step budget), with no match. */
    ASSERT_FALSE(ft_glob_match("*a*a*a*a*a*a*a*a*a*a*a*b",
                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

static bool rx(const char *pat, const char *line)
{
    char msg[256];
    ft_regex *re = ft_regex_new(pat, msg, sizeof(msg));
    ASSERT_NOT_NULL(re);
    bool hit = ft_regex_search(re, line, strlen(line));
    ft_regex_free(re);
    return hit;
}

TEST(rust_regex_translated_for_regcomp)
{
    ASSERT_TRUE(rx("\\d+", "abc 123"));
    ASSERT_FALSE(rx("\\d", "abc"));
    ASSERT_TRUE(rx("^\\s*def \\w+\\(", "    def foo(x):"));
    ASSERT_TRUE(rx("(?i)hello", "HeLLo there"));
    ASSERT_TRUE(rx("a.*?b", "a xx b"));
    ASSERT_TRUE(rx("(?:ab)+c", "ababc"));
    ASSERT_TRUE(rx("[\\d_]+x", "1_2x"));
    ASSERT_TRUE(rx("[]a]", "]"));
    ASSERT_TRUE(rx("x\\-y", "x-y"));
    ASSERT_TRUE(rx("\\x41", "A"));
    ASSERT_TRUE(rx("^.{3}$", "é€x")); /* '.' is a character (C.UTF-8) */
    ASSERT_TRUE(rx("foo|bar", "a bar"));
    bool icase;
    char *t = ft_regex_translate("\\d{2,}?\\.[^\\s]", &icase);
    ASSERT_STR_EQ("[0-9]{2,}\\.[^[:space:]]", t);
    rt_free(t);
    char msg[256];
    ASSERT_NULL(ft_regex_new("a(", msg, sizeof(msg)));
    ASSERT_STR_CONTAINS(msg, "regex parse error");
}

TEST(text_helpers_match_python)
{
    ft_span s = ft_strip((ft_span){"\t \xc2\xa0x y\xe3\x80\x80\r\n", 12});
    ASSERT_EQ(3, s.n); /* NBSP and IDEOGRAPHIC SPACE are whitespace to Python */
    char ext[16];
    ft_path_ext("a/b.TAR.GZ", ext, sizeof(ext));
    ASSERT_STR_EQ(".gz", ext);
    ft_path_ext("dir.d/.bashrc", ext, sizeof(ext));
    ASSERT_STR_EQ("", ext);
    char *d = ft_path_dirname("/a/b/");
    ASSERT_STR_EQ("/a/b", d);
    rt_free(d);
    d = ft_path_dirname("/x");
    ASSERT_STR_EQ("/", d);
    rt_free(d);
    char *c = ft_clean_dup("a\0b\xff", 4);
    ASSERT_STR_EQ("a\xef\xbf\xbd"
                  "b\xef\xbf\xbd",
                  c);
    rt_free(c);
    bool cut;
    ASSERT_EQ(4, ft_utf8_prefix("\xc3\xa9\xc3\xa9\xc3\xa9", 6, 2, &cut));
    ASSERT_TRUE(cut);
}
