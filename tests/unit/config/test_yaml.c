/* hm_yaml: PyYAML-compatible reading, positions, hostile input, quoting and in-place edits. */
#include "cfg_test.h"
#include "hm_yaml.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "test.h"

#include <errno.h>
#include <math.h>

static hm_yaml_doc *parse(const char *s, hm_yaml_err *err)
{
    return hm_yaml_parse(s, strlen(s), err);
}

static const cJSON *get(const hm_yaml_doc *d, const char *a, const char *b)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(hm_yaml_root(d), a);
    return b ? cJSON_GetObjectItemCaseSensitive(n, b) : n;
}

TEST(plain_scalars_resolve_like_pyyaml)
{
    static const struct {
        const char *in;
        int kind; /* 0 null, 1 bool, 2 number, 3 string */
        double num;
    } cases[] = {
        {"~", 0, 0},     {"", 0, 0},         {"null", 0, 0},
        {"NULL", 0, 0},  {"yes", 1, 1},      {"No", 1, 0},
        {"on", 1, 1},    {"OFF", 1, 0},      {"true", 1, 1},
        {"False", 1, 0}, {"y", 3, 0},        {"tRue", 3, 0},
        {"0x1f", 2, 31}, {"017", 2, 15},     {"0o17", 3, 0},
        {"08", 3, 0},    {"1_000", 2, 1000}, {"1:30", 2, 90},
        {"-12", 2, -12}, {"+5", 2, 5},       {"0b101", 2, 5},
        {"0", 2, 0},     {"1.5", 2, 1.5},    {"1.0e+5", 2, 100000},
        {"1e5", 3, 0},   {".5", 2, 0.5},     {"1.", 2, 1},
        {"1.2.3", 3, 0}, {"0.85", 2, 0.85},  {"-.inf", 2, -INFINITY},
        {"abc", 3, 0},   {"180s", 3, 0},     {"1:30.5", 2, 90.5},
        {"0_", 2, 0},    {"._1", 3, 0},      {"-0", 2, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *v = hm_yaml_resolve_plain(cases[i].in, strlen(cases[i].in));
        ASSERT_NOT_NULL(v);
        int kind = cJSON_IsNull(v) ? 0 : cJSON_IsBool(v) ? 1 : cJSON_IsNumber(v) ? 2 : 3;
        if (kind != cases[i].kind)
            TEST_FAIL_("'%s' resolved to kind %d, expected %d", cases[i].in, kind, cases[i].kind);
        if (kind == 1)
            ASSERT_EQ(cases[i].num != 0, cJSON_IsTrue(v));
        if (kind == 2 && !(v->valuedouble == cases[i].num))
            TEST_FAIL_("'%s' = %g, expected %g", cases[i].in, v->valuedouble, cases[i].num);
        if (kind == 3)
            ASSERT_STR_EQ(cases[i].in, v->valuestring);
        cJSON_Delete(v);
    }
}

TEST(quoted_and_tagged_scalars)
{
    hm_yaml_err err;
    hm_yaml_doc *d = parse("a: 'yes'\nb: \"123\"\nc: !!str 1.5\nd: !!int '42'\ne: |\n  x\n  y\n"
                           "f: !!bool 'on'\ng: !!float 3\n",
                           &err);
    ASSERT_NOT_NULL(d);
    ASSERT_STR_EQ("yes", get(d, "a", NULL)->valuestring);
    ASSERT_STR_EQ("123", get(d, "b", NULL)->valuestring);
    ASSERT_STR_EQ("1.5", get(d, "c", NULL)->valuestring);
    ASSERT_EQ(42, get(d, "d", NULL)->valuedouble);
    ASSERT_STR_EQ("x\ny\n", get(d, "e", NULL)->valuestring);
    ASSERT_TRUE(cJSON_IsTrue(get(d, "f", NULL)));
    ASSERT_EQ(3, get(d, "g", NULL)->valuedouble);
    hm_yaml_free(d);
    ASSERT_NULL(parse("a: !!python/object:os.system x\n", &err));
    ASSERT_STR_CONTAINS(err.msg, "unsupported YAML tag");
    ASSERT_NULL(parse("a: !!int abc\n", &err));
    ASSERT_STR_CONTAINS(err.msg, "not a valid !!int");
}

TEST(positions_of_keys)
{
    hm_yaml_err err;
    hm_yaml_doc *d = parse("# c\nterminal:\n  backend: local\n\n  timeout: 60\nmodel: x\n", &err);
    ASSERT_NOT_NULL(d);
    int col;
    ASSERT_EQ(2, hm_yaml_line(d, "terminal", &col));
    ASSERT_EQ(1, col);
    ASSERT_EQ(3, hm_yaml_line(d, "terminal.backend", &col));
    ASSERT_EQ(3, col);
    ASSERT_EQ(5, hm_yaml_line(d, "terminal.timeout", NULL));
    ASSERT_EQ(6, hm_yaml_line(d, "model", NULL));
    ASSERT_EQ(0, hm_yaml_line(d, "nope", NULL));
    hm_yaml_free(d);
    /* positions count lines after multi-byte characters correctly */
    d = parse("é: \"ü\"\nb:\n  c: 1\n", &err);
    ASSERT_NOT_NULL(d);
    ASSERT_EQ(3, hm_yaml_line(d, "b.c", &col));
    ASSERT_EQ(3, col);
    hm_yaml_free(d);
}

TEST(anchors_aliases_and_merge_keys)
{
    hm_yaml_err err;
    hm_yaml_doc *d = parse("base: &b\n  a: 1\n  b: 2\nx:\n  <<: *b\n  b: 3\nl: [&i 7, *i]\n", &err);
    ASSERT_NOT_NULL(d);
    ASSERT_EQ(1, get(d, "x", "a")->valuedouble);
    ASSERT_EQ(3, get(d, "x", "b")->valuedouble); /* explicit keys win over merged ones */
    ASSERT_EQ(7, cJSON_GetArrayItem(get(d, "l", NULL), 1)->valuedouble);
    hm_yaml_free(d);
    ASSERT_NULL(parse("a: *nope\n", &err));
    ASSERT_STR_CONTAINS(err.msg, "undefined alias");
}

TEST(duplicate_keys_last_wins_and_are_reported)
{
    hm_yaml_err err;
    hm_yaml_doc *d = parse("a: 1\nb: 2\na: 3\n", &err);
    ASSERT_NOT_NULL(d);
    ASSERT_EQ(3, get(d, "a", NULL)->valuedouble);
    size_t n;
    const hm_yaml_dup *dup = hm_yaml_dups(d, &n);
    ASSERT_EQ(1, n);
    ASSERT_STR_EQ("a", dup[0].path);
    ASSERT_EQ(3, dup[0].line);
    ASSERT_EQ(1, dup[0].first_line);
    ASSERT_EQ(3, hm_yaml_line(d, "a", NULL));
    hm_yaml_free(d);
}

TEST(syntax_errors_say_where_and_what)
{
    hm_yaml_err err;
    ASSERT_NULL(parse("terminal:\n  backend: local\n   timeout: 3\n", &err));
    ASSERT_EQ(3, err.line);
    ASSERT_GT(err.col, 0);
    ASSERT_STR_CONTAINS(err.msg, "mapping values are not allowed");
    ASSERT_NULL(parse("a:\n\tb: 1\n", &err));
    ASSERT_EQ(2, err.line);
    ASSERT_STR_CONTAINS(err.msg, "cannot start any token");
    ASSERT_NULL(parse("a: [1, 2\nb: 3\n", &err));
    ASSERT_GT(err.line, 0);
    ASSERT_NULL(parse("a: 1\n---\nb: 2\n", &err));
    ASSERT_EQ(2, err.line);
    ASSERT_STR_CONTAINS(err.msg, "single document");
    ASSERT_NULL(parse("a: \"x\\0y\"\n", &err));
    ASSERT_STR_CONTAINS(err.msg, "NUL");
    ASSERT_NULL(parse("? [a, b]\n: c\n", &err));
    ASSERT_STR_CONTAINS(err.msg, "complex mapping keys");
}

TEST(invalid_utf8_is_an_error_with_a_line)
{
    hm_yaml_err err;
    ASSERT_NULL(parse("a: 1\nb: \xff\xfe\n", &err));
    ASSERT_EQ(2, err.line);
    ASSERT_STR_CONTAINS(err.msg, "UTF-8");
    /* UTF-16 (with its byte order mark) is refused, not misread */
    ASSERT_NULL(hm_yaml_parse("\xff\xfe"
                              "a\0:\0 \0"
                              "1\0",
                              10, &err));
}

TEST(deep_nesting_is_refused)
{
    rt_buf b;
    rt_buf_init(&b, 1u << 20);
    for (int i = 0; i < 100000; i++)
        rt_buf_append_str(&b, "[");
    hm_yaml_err err;
    ASSERT_NULL(hm_yaml_parse(rt_buf_cstr(&b), b.len, &err));
    ASSERT_STR_CONTAINS(err.msg, "nesting deeper than");
    rt_buf_reset(&b);
    for (int i = 0; i < 200; i++) { /* block style: "a:\n  a:\n    a: …" */
        for (int s = 0; s < i; s++)
            rt_buf_append_str(&b, " ");
        rt_buf_append_str(&b, "a:\n");
    }
    ASSERT_NULL(hm_yaml_parse(rt_buf_cstr(&b), b.len, &err));
    ASSERT_STR_CONTAINS(err.msg, "nesting deeper than");
    rt_buf_fini(&b);
}

TEST(alias_bombs_are_refused)
{
    rt_buf b;
    rt_buf_init(&b, 1u << 20);
    rt_buf_append_str(&b, "a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (char c = 'b'; c <= 'j'; c++)
        rt_buf_printf(&b, "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", c, c,
                      c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
    hm_yaml_err err;
    ASSERT_NULL(hm_yaml_parse(rt_buf_cstr(&b), b.len, &err));
    ASSERT_STR_CONTAINS(err.msg, "too large");
    rt_buf_fini(&b);
}

TEST(random_bytes_never_crash)
{
    unsigned seed = 12345;
    char buf[512];
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(rand_r(&seed) % sizeof(buf));
        static const char alpha[] = "ab:- \n\t[]{}&*!|>'\"#%@`,?~0x.\xc3\xa9\xff";
        for (size_t i = 0; i < n; i++)
            buf[i] = alpha[rand_r(&seed) % (sizeof(alpha) - 1)];
        hm_yaml_err err;
        hm_yaml_doc *d = hm_yaml_parse(buf, n, &err);
        if (!d)
            ASSERT_TRUE(err.msg[0] != 0);
        hm_yaml_free(d);
    }
}

/* hm_yaml_quote(s) must read back as exactly s, as a value and inside a flow list. */
static void check_roundtrip(const char *s)
{
    char *q = hm_yaml_quote(s);
    char *doc = rt_xasprintf("k: %s\nl: [%s, z]\n", q, q);
    hm_yaml_err err;
    hm_yaml_doc *d = parse(doc, &err);
    if (!d)
        TEST_FAIL_("quote of '%s' gave '%s', which does not parse: %s", s, q, err.msg);
    const cJSON *v = get(d, "k", NULL);
    if (!cJSON_IsString(v) || strcmp(v->valuestring, s) != 0)
        TEST_FAIL_("quote of '%s' gave '%s', which reads back differently", s, q);
    v = cJSON_GetArrayItem(get(d, "l", NULL), 0);
    if (!cJSON_IsString(v) || strcmp(v->valuestring, s) != 0)
        TEST_FAIL_("quote of '%s' gave '%s', which reads back differently in a list", s, q);
    hm_yaml_free(d);
    rt_free(doc);
    rt_free(q);
}

TEST(quoting_round_trips)
{
    static const char *const tricky[] = {
        "",
        "yes",
        "No",
        "123",
        "0x10",
        "1.5",
        "~",
        "null",
        "a: b",
        "#x",
        "x #y",
        " lead",
        "trail ",
        "新しい設定",
        "tab\tin",
        "line\nbreak",
        "q\"uote",
        "back\\slash",
        "- dash",
        "[x]",
        "{y}",
        "a,b",
        "@at",
        "`tick",
        "%pct",
        "!bang",
        "*star",
        "&amp",
        "|pipe",
        ">gt",
        "'sq",
        "\x01\x7f",
        "ls\xe2\x80\xa8ps",
        "anthropic/claude-opus-4.6",
        "1:30",
        "key:",
        "http://x.y/z?a=b#c",
        "\xef\xbb\xbf!bom",
        "nel\xc2\x85",
    };
    for (size_t i = 0; i < sizeof(tricky) / sizeof(tricky[0]); i++)
        check_roundtrip(tricky[i]);
    unsigned seed = 7;
    char s[40];
    for (int round = 0; round < 3000; round++) {
        size_t n = (size_t)(rand_r(&seed) % (sizeof(s) - 1));
        for (size_t i = 0; i < n; i++)
            s[i] = (char)(1 + rand_r(&seed) % 126);
        s[n] = 0;
        check_roundtrip(s);
    }
}

/* Apply one set to text and return the result (or NULL with the error code in *rc). */
static char *set1(const char *text, const char *path, const char *val, int *rc, hm_yaml_err *err)
{
    char buf[256];
    const char *parts[HM_YAML_MAX_PATH];
    snprintf(buf, sizeof(buf), "%s", path);
    int n = hm_yaml_split_path(buf, parts, HM_YAML_MAX_PATH);
    ASSERT_GT(n, 0);
    char *out = NULL;
    size_t len;
    *rc = hm_yaml_set(text, strlen(text), parts, (size_t)n, val, &out, &len, err);
    if (*rc == 0)
        ASSERT_EQ(strlen(out), len);
    return out;
}

static void expect_set(const char *text, const char *path, const char *val, const char *want)
{
    int rc;
    hm_yaml_err err;
    char *out = set1(text, path, val, &rc, &err);
    if (rc)
        TEST_FAIL_("set %s=%s failed: %d %s", path, val, rc, err.msg);
    if (strcmp(out, want) != 0)
        TEST_FAIL_("set %s=%s gave:\n%s\nexpected:\n%s", path, val, out, want);
    rt_free(out);
}

TEST(edit_replaces_values_in_place)
{
    expect_set("a: 1 # one\nb: 2\n", "a", "5", "a: 5 # one\nb: 2\n");
    expect_set("t:\n  x: \"q\"  # c\n", "t.x", "plain", "t:\n  x: plain  # c\n");
    expect_set("a:\nb: 2\n", "a", "x", "a: x\nb: 2\n"); /* null value */
    expect_set("a: # c\nb: 2\n", "a", "x", "a: x # c\nb: 2\n");
    expect_set("a: |\n  text\nb: 2\n", "a", "x", "a: x\nb: 2\n");
    expect_set("l:\n  - a\n  - b\nz: 1\n", "l", "[c]", "l: [c]\nz: 1\n");
    expect_set("l: [a, b] # c\n", "l", "[c, d]", "l: [c, d] # c\n");
}

TEST(edit_creates_nested_keys)
{
    expect_set("", "a.b.c", "1", "a:\n  b:\n    c: 1\n");
    expect_set("# only a comment\n", "x", "1", "# only a comment\nx: 1\n");
    expect_set("a: 1", "b", "2", "a: 1\nb: 2\n"); /* no newline at the end */
    expect_set("t:\n    x: 1\n# tail\n", "t.y", "2", "t:\n    x: 1\n    y: 2\n# tail\n");
    expect_set("t:\n  x: 1\nu: 2\n", "t.n.m", "3", "t:\n  x: 1\n  n:\n    m: 3\nu: 2\n");
    expect_set("t: local # was a string\n", "t.backend", "d", "t:\n  backend: d # was a string\n");
    expect_set("t:\nu: 1\n", "t.backend", "d", "t:\n  backend: d\nu: 1\n");
    expect_set("a: 1\r\nb: 2\r\n", "c", "3", "a: 1\r\nb: 2\r\nc: 3\r\n"); /* keeps CRLF */
    expect_set("a:\n  b: |\n    text\n", "a.c", "1", "a:\n  b: |\n    text\n  c: 1\n");
    expect_set("k: 1\n", "weird key", "v", "k: 1\nweird key: v\n");
    expect_set("k: 1\n", "x", "\"a: b\"", "k: 1\nx: \"a: b\"\n");
}

TEST(edit_refuses_what_it_cannot_do_safely)
{
    int rc;
    hm_yaml_err err;
    ASSERT_NULL(set1("t: {a: 1}\n", "t.b", "2", &rc, &err));
    ASSERT_EQ(-EINVAL, rc);
    ASSERT_STR_CONTAINS(err.msg, "flow-style");
    ASSERT_NULL(set1("t:\n  a: 1\n", "t", "2", &rc, &err));
    ASSERT_EQ(-EINVAL, rc);
    ASSERT_STR_CONTAINS(err.msg, "section");
    ASSERT_NULL(set1("b: &b\n  x: 1\nc: *b\n", "b.x", "2", &rc, &err));
    ASSERT_EQ(-EINVAL, rc);
    ASSERT_STR_CONTAINS(err.msg, "anchor");
    ASSERT_NULL(set1("- a\n- b\n", "x", "1", &rc, &err));
    ASSERT_EQ(-EINVAL, rc);
    ASSERT_NULL(set1("a: [1\n", "a", "2", &rc, &err));
    ASSERT_EQ(-EBADMSG, rc);
    ASSERT_GT(err.line, 0);
    ASSERT_NULL(set1("a: 1\n", "a", "x: y", &rc, &err));
    ASSERT_EQ(-EINVAL, rc);
    ASSERT_NULL(set1("a: 1\n", "a", "x\ny", &rc, &err));
    ASSERT_EQ(-EINVAL, rc);
    char buf[8] = "a..b";
    const char *parts[4];
    ASSERT_EQ(-EINVAL, hm_yaml_split_path(buf, parts, 4));
}
