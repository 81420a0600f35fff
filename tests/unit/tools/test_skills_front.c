/*
 * test_skills_front — the SKILL.md front matter: the YAML subset reader (mappings,
 * sequences, flow collections, quoting, block scalars), its clear errors on bad YAML, the
 * split of front matter and body, and skill_manage's validation messages.
 */
#include "rt_alloc.h"
#include "skl_front.h"
#include "test.h"

#include <errno.h>
#include <string.h>

static cJSON *yaml_ok(const char *text)
{
    cJSON *v = NULL;
    char err[256];
    int rc = skl_yaml_parse(text, strlen(text), &v, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "unexpected error: %s\n", err);
    ASSERT_EQ(0, rc);
    ASSERT_NOT_NULL(v);
    return v;
}

/* Parse text that must fail; returns the error message (static). */
static const char *yaml_err(const char *text)
{
    static char err[256];
    cJSON *v = (cJSON *)1;
    ASSERT_EQ(-EINVAL, skl_yaml_parse(text, strlen(text), &v, err, sizeof(err)));
    ASSERT_NULL(v);
    ASSERT_GT(strlen(err), 0);
    return err;
}

static const char *str_at(const cJSON *o, const char *path)
{
    const cJSON *cur = o;
    for (const char *k = path; k && *k;) {
        const char *dot = strchr(k, '.');
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)(dot ? (size_t)(dot - k) : strlen(k)), k);
        cur = cJSON_IsArray(cur) ? cJSON_GetArrayItem(cur, key[0] - '0')
                                 : cJSON_GetObjectItemCaseSensitive(cur, key);
        k = dot ? dot + 1 : NULL;
    }
    ASSERT_TRUE(cJSON_IsString(cur));
    return cur->valuestring;
}

TEST(yaml_mappings_sequences_and_scalars)
{
    cJSON *v = yaml_ok("name: my-skill\n"
                       "description: \"Does: things \\\"well\\\"\"  # trailing comment\n"
                       "version: 1.0.0\n"
                       "title: 'it''s fine'\n"
                       "# a comment line\n"
                       "metadata:\n"
                       "  hermes:\n"
                       "    tags: [python, \"auto, mation\", 'x']\n"
                       "    related_skills:\n"
                       "      - one\n"
                       "      - two # comment\n"
                       "platforms:\n"
                       "- linux\n"
                       "- macos\n"
                       "owners:\n"
                       "  - name: ann\n"
                       "    role: dev\n"
                       "  - name: bob\n"
                       "flow: {a: 1, b: [x, y]}\n"
                       "empty:\n"
                       "url: http://example.com:8080/x\n");
    ASSERT_STR_EQ("my-skill", str_at(v, "name"));
    ASSERT_STR_EQ("Does: things \"well\"", str_at(v, "description"));
    ASSERT_STR_EQ("1.0.0", str_at(v, "version"));
    ASSERT_STR_EQ("it's fine", str_at(v, "title"));
    ASSERT_STR_EQ("python", str_at(v, "metadata.hermes.tags.0"));
    ASSERT_STR_EQ("auto, mation", str_at(v, "metadata.hermes.tags.1"));
    ASSERT_STR_EQ("x", str_at(v, "metadata.hermes.tags.2"));
    ASSERT_STR_EQ("two", str_at(v, "metadata.hermes.related_skills.1"));
    ASSERT_STR_EQ("macos", str_at(v, "platforms.1"));
    ASSERT_STR_EQ("dev", str_at(v, "owners.0.role"));
    ASSERT_STR_EQ("bob", str_at(v, "owners.1.name"));
    ASSERT_STR_EQ("1", str_at(v, "flow.a"));
    ASSERT_STR_EQ("y", str_at(v, "flow.b.1"));
    ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(v, "empty")));
    ASSERT_STR_EQ("http://example.com:8080/x", str_at(v, "url"));
    cJSON_Delete(v);
}

TEST(yaml_block_and_multiline_scalars)
{
    cJSON *v = yaml_ok("lit: |\n"
                       "  line one\n"
                       "    indented\n"
                       "\n"
                       "  # not a comment\n"
                       "fold: >-\n"
                       "  folded\n"
                       "  text\n"
                       "plain: first part\n"
                       "  second part\n"
                       "next: x\n");
    ASSERT_STR_EQ("line one\n  indented\n\n# not a comment\n", str_at(v, "lit"));
    ASSERT_STR_EQ("folded text", str_at(v, "fold"));
    ASSERT_STR_EQ("first part second part", str_at(v, "plain"));
    ASSERT_STR_EQ("x", str_at(v, "next"));
    cJSON_Delete(v);
    /* empty text is null; a lone scalar is a string, a lone list an array */
    v = yaml_ok("\n# only a comment\n");
    ASSERT_TRUE(cJSON_IsNull(v));
    cJSON_Delete(v);
    v = yaml_ok("just text");
    ASSERT_TRUE(cJSON_IsString(v));
    cJSON_Delete(v);
    v = yaml_ok("- a\n- b\n");
    ASSERT_EQ(2, cJSON_GetArraySize(v));
    cJSON_Delete(v);
}

TEST(bad_yaml_gets_a_clear_error_with_its_line)
{
    ASSERT_STR_EQ("line 2: unterminated double-quoted string",
                  yaml_err("name: x\ndescription: \"oops\n"));
    ASSERT_STR_EQ("line 1: unterminated single-quoted string", yaml_err("a: 'b\n"));
    ASSERT_STR_CONTAINS(yaml_err("name: x\ntags: [a, b\n"), "line 2: unterminated flow sequence");
    ASSERT_STR_CONTAINS(yaml_err("m: {a: 1\n"), "unterminated flow mapping");
    ASSERT_STR_EQ("line 3: unexpected indentation", yaml_err("a:\n  b: 1\n    c: 2\n"));
    ASSERT_STR_CONTAINS(yaml_err("name: x\njust words here\n"), "line 2: expected 'key: value'");
    ASSERT_STR_CONTAINS(yaml_err("a: 1\n\tb: 2\n"), "line 2: tab characters");
    ASSERT_STR_CONTAINS(yaml_err("a: &anchor 1\n"), "anchors, aliases and tags");
    ASSERT_STR_CONTAINS(yaml_err("a: *ref\n"), "anchors, aliases and tags");
    ASSERT_STR_CONTAINS(yaml_err("a: \"x\" y\n"), "unexpected text after a quoted string");
    ASSERT_STR_CONTAINS(yaml_err("a:\n  - x\n  k: v\n"), "line 3");
    ASSERT_STR_CONTAINS(yaml_err("a: x\n...\n"), "document markers");
    ASSERT_STR_CONTAINS(yaml_err("a: \"\\u12\"\n"), "bad \\u escape");
    /* nesting is bounded */
    char deep[64];
    memset(deep, '[', 40);
    deep[40] = '\0';
    ASSERT_STR_CONTAINS(yaml_err(deep), "nesting too deep");
    char nested[8192];
    size_t off = 0;
    for (int i = 0; i < 40; i++)
        off += (size_t)snprintf(nested + off, sizeof(nested) - off, "%*sk%d:\n", i * 2, "", i);
    ASSERT_STR_CONTAINS(yaml_err(nested), "nesting too deep");
    /* a NUL byte inside */
    cJSON *v = NULL;
    char err[128];
    ASSERT_EQ(-EINVAL, skl_yaml_parse("a: b\0c", 6, &v, err, sizeof(err)));
    ASSERT_STR_CONTAINS(err, "NUL");
}

TEST(split_finds_front_matter_and_body)
{
    const char *t = "\xEF\xBB\xBF---\nname: x\ndescription: y\n---  \n# Body\ntext\n";
    size_t fo, fl, bo;
    char err[256];
    ASSERT_EQ(0, skl_front_split(t, &fo, &fl, &bo, err, sizeof(err)));
    ASSERT_EQ(6, fo);
    ASSERT_EQ(0, strncmp(t + fo, "\nname: x\ndescription: y", fl));
    ASSERT_EQ(strlen("\nname: x\ndescription: y"), fl);
    ASSERT_STR_EQ("# Body\ntext\n", t + bo);
    ASSERT_EQ(-EINVAL, skl_front_split("# no front matter\n", &fo, &fl, &bo, err, sizeof(err)));
    ASSERT_STR_CONTAINS(err, "must start with YAML frontmatter");
    ASSERT_EQ(-EINVAL, skl_front_split("---\nname: x\n", &fo, &fl, &bo, err, sizeof(err)));
    ASSERT_STR_CONTAINS(err, "not closed");
    /* "---x" is not a closing line */
    ASSERT_EQ(-EINVAL, skl_front_split("---\na: b\n---x\n", &fo, &fl, &bo, err, sizeof(err)));
}

static const char *invalid(const char *content)
{
    static char err[512];
    ASSERT_EQ(-EINVAL, skl_front_validate(content, err, sizeof(err)));
    return err;
}

TEST(validation_messages)
{
    char err[512];
    ASSERT_EQ(0, skl_front_validate("---\nname: a\ndescription: b\n---\nBody\n", err, sizeof(err)));
    ASSERT_STR_EQ("Content cannot be empty.", invalid("  \n"));
    ASSERT_STR_CONTAINS(invalid("# Title\n"), "must start with YAML frontmatter (---)");
    ASSERT_STR_CONTAINS(invalid("---\nname: a\n"), "frontmatter is not closed");
    ASSERT_STR_EQ("YAML frontmatter parse error: line 3: unterminated double-quoted string",
                  invalid("---\nname: a\ndescription: \"b\n---\nBody\n"));
    ASSERT_STR_CONTAINS(invalid("---\n- a\n- b\n---\nBody\n"), "must be a YAML mapping");
    ASSERT_STR_CONTAINS(invalid("---\n---\nBody\n"), "must be a YAML mapping");
    ASSERT_STR_EQ("Frontmatter must include 'name' field.",
                  invalid("---\ndescription: b\n---\nBody\n"));
    ASSERT_STR_EQ("Frontmatter must include 'description' field.",
                  invalid("---\nname: a\n---\nBody\n"));
    ASSERT_STR_CONTAINS(invalid("---\nname: a\ndescription: b\n---\n  \n"),
                        "must have content after the frontmatter");
    char *big = rt_xmalloc(1200);
    memset(big, 'd', 1100);
    big[1100] = '\0';
    char *c = rt_xasprintf("---\nname: a\ndescription: %s\n---\nBody\n", big);
    ASSERT_STR_EQ("Description exceeds 1024 characters.", invalid(c));
    rt_free(c);
    /* 1024 multi-byte characters are fine (characters, not bytes) */
    char *u = rt_xmalloc(1024 * 2 + 1);
    for (int i = 0; i < 1024; i++)
        memcpy(u + 2 * i, "\xC3\xA9", 2);
    u[2048] = '\0';
    c = rt_xasprintf("---\nname: a\ndescription: %s\n---\nBody\n", u);
    ASSERT_EQ(0, skl_front_validate(c, err, sizeof(err)));
    rt_free(c);
    rt_free(u);
    rt_free(big);
}

TEST(lenient_read_descriptions_and_lists)
{
    size_t bo;
    /* bad YAML falls back to the naive key: value lines */
    const char *t = "---\nname: x\ndescription: 'quoted desc'\ntags: a, b ,c\nbad: \"open\n---\n"
                    "body\n";
    cJSON *m = skl_front_read(t, &bo);
    ASSERT_STR_EQ("x", str_at(m, "name"));
    ASSERT_STR_EQ("quoted desc", str_at(m, "description"));
    cJSON *tags = skl_front_list(m, "tags");
    ASSERT_EQ(3, cJSON_GetArraySize(tags));
    ASSERT_STR_EQ("c", cJSON_GetArrayItem(tags, 2)->valuestring);
    cJSON_Delete(tags);
    ASSERT_STR_EQ("body\n", t + bo);
    cJSON_Delete(m);
    /* no description: the first body line that is not a heading */
    t = "---\nname: y\nmetadata:\n  hermes:\n    tags: [k8s]\n---\n# Title\n\n  First "
        "line.\nmore\n";
    m = skl_front_read(t, &bo);
    char *d = skl_front_description(m, t + bo);
    ASSERT_STR_EQ("First line.", d);
    rt_free(d);
    tags = skl_front_list(m, "tags");
    ASSERT_EQ(1, cJSON_GetArraySize(tags));
    ASSERT_STR_EQ("k8s", cJSON_GetArrayItem(tags, 0)->valuestring);
    cJSON_Delete(tags);
    cJSON_Delete(m);
    /* no front matter at all */
    m = skl_front_read("plain text\n", &bo);
    ASSERT_EQ(0, cJSON_GetArraySize(m));
    ASSERT_EQ(0, bo);
    cJSON_Delete(m);
}

TEST(name_rules)
{
    ASSERT_TRUE(skl_name_valid("my-skill"));
    ASSERT_TRUE(skl_name_valid("0x.v2_beta"));
    ASSERT_FALSE(skl_name_valid(""));
    ASSERT_FALSE(skl_name_valid("-lead"));
    ASSERT_FALSE(skl_name_valid(".hidden"));
    ASSERT_FALSE(skl_name_valid("Upper"));
    ASSERT_FALSE(skl_name_valid("a/b"));
    ASSERT_FALSE(skl_name_valid("a b"));
    char n[80];
    memset(n, 'a', 64);
    n[64] = '\0';
    ASSERT_TRUE(skl_name_valid(n));
    n[64] = 'a';
    n[65] = '\0';
    ASSERT_FALSE(skl_name_valid(n));
}
