/* hm_env: .env parsing (python-dotenv's grammar), in-place edits, 0600, atomic writes. */
#include "cfg_test.h"
#include "hm_env.h"
#include "test.h"

#include <errno.h>

static hm_env parse(const char *s)
{
    hm_env e;
    hm_env_init(&e);
    hm_env_parse(&e, s, strlen(s));
    return e;
}

TEST(parse_like_python_dotenv)
{
    hm_env e = parse("# comment\n"
                     "A=1\n"
                     "export B=two\n"
                     "  C = spaced  \n"
                     "D='single # not a comment'\n"
                     "E=\"dq\\nline\\t\\\"q\\\"\"\n"
                     "F=bare # a comment\n"
                     "G=a#b\n"
                     "H=\n"
                     "LONELY\n"
                     "I='it\\'s'\n"
                     "J=\"multi\nline\"\n"
                     "K=after\r\n");
    ASSERT_STR_EQ("1", hm_env_get(&e, "A"));
    ASSERT_STR_EQ("two", hm_env_get(&e, "B"));
    ASSERT_STR_EQ("spaced", hm_env_get(&e, "C"));
    ASSERT_STR_EQ("single # not a comment", hm_env_get(&e, "D"));
    ASSERT_STR_EQ("dq\nline\t\"q\"", hm_env_get(&e, "E"));
    ASSERT_STR_EQ("bare", hm_env_get(&e, "F"));
    ASSERT_STR_EQ("a#b", hm_env_get(&e, "G"));
    ASSERT_STR_EQ("", hm_env_get(&e, "H"));
    ASSERT_NULL(hm_env_get(&e, "LONELY"));
    ASSERT_STR_EQ("it's", hm_env_get(&e, "I"));
    ASSERT_STR_EQ("multi\nline", hm_env_get(&e, "J"));
    ASSERT_STR_EQ("after", hm_env_get(&e, "K"));
    ASSERT_EQ(0, e.bad_lines);
    ASSERT_EQ(2, e.v[0].line);
    ASSERT_EQ(3, e.v[1].line);
    hm_env_fini(&e);
}

TEST(bad_lines_are_skipped_and_counted)
{
    hm_env e = parse("A=1\nthis is not ok\nB='unterminated\n''=empty name\nC=3\n");
    ASSERT_STR_EQ("1", hm_env_get(&e, "A"));
    ASSERT_STR_EQ("3", hm_env_get(&e, "C"));
    ASSERT_NULL(hm_env_get(&e, "B"));
    ASSERT_NULL(hm_env_get(&e, ""));
    ASSERT_EQ(3, e.bad_lines);
    ASSERT_EQ(2, e.first_bad);
    hm_env_fini(&e);
}

TEST(interpolation_env_first_then_earlier_lines)
{
    setenv("HM_T_FROM_ENV", "env", 1);
    unsetenv("HM_T_MISSING");
    hm_env e = parse("X=file\nA=${HM_T_FROM_ENV}-${X}\nB=${HM_T_MISSING:-dflt}\nC='${X}'\n"
                     "D=\"${X}\"\nE=${HM_T_MISSING}\nF=${A:B}\n");
    ASSERT_STR_EQ("env-file", hm_env_get(&e, "A"));
    ASSERT_STR_EQ("dflt", hm_env_get(&e, "B"));
    ASSERT_STR_EQ("${X}", hm_env_get(&e, "C")); /* single quotes are literal */
    ASSERT_STR_EQ("file", hm_env_get(&e, "D"));
    ASSERT_STR_EQ("", hm_env_get(&e, "E"));
    ASSERT_STR_EQ("${A:B}", hm_env_get(&e, "F"));
    hm_env_fini(&e);
}

TEST(latin1_files_are_read)
{
    hm_env e = parse("NAME=caf\xe9\n");
    ASSERT_STR_EQ("caf\xc3\xa9", hm_env_get(&e, "NAME"));
    hm_env_fini(&e);
}

/* `hermes config set` rewrites a latin-1 .env by the spans: they must be the file's bytes,
 * not those of the UTF-8 copy the parser reads. */
TEST(latin1_files_are_rewritten_in_place)
{
    char *dir = tmp_dir();
    write_str(dir, ".env",
              "# caf\xe9 \xe9\xe9\n"
              "OPENAI_API_KEY=sk-old\n"
              "NAME=caf\xe9\n");
    char *path = rt_xasprintf("%s/.env", dir);
    ASSERT_OK(hm_env_set_file(path, "OPENAI_API_KEY", "sk-new"));
    char *out = slurp(path);
    ASSERT_STR_EQ("# caf\xe9 \xe9\xe9\n"
                  "OPENAI_API_KEY=sk-new\n"
                  "NAME=caf\xe9\n",
                  out);
    rt_free(out);
    rm_rf(dir, 0);
    rt_free(path);
    rt_free(dir);
}

TEST(apply_does_not_override_the_environment)
{
    setenv("HM_T_A", "from-env", 1);
    unsetenv("HM_T_B");
    hm_env e = parse("HM_T_A=from-file\nHM_T_B=first\nHM_T_B=second\n");
    ASSERT_EQ(1, hm_env_apply(&e, false));
    ASSERT_STR_EQ("from-env", getenv("HM_T_A"));
    ASSERT_STR_EQ("second", getenv("HM_T_B")); /* the last assignment counts */
    ASSERT_EQ(2, hm_env_apply(&e, true));
    ASSERT_STR_EQ("from-file", getenv("HM_T_A"));
    hm_env_fini(&e);
}

TEST(set_creates_the_file_0600)
{
    char *dir = tmp_dir();
    char *path = rt_xasprintf("%s/.env", dir);
    ASSERT_OK(hm_env_set_file(path, "OPENROUTER_API_KEY", "sk-or-v1-secret"));
    struct stat st;
    ASSERT_OK(stat(path, &st));
    ASSERT_EQ(0600, st.st_mode & 0777);
    char *s = slurp(path);
    ASSERT_STR_EQ("OPENROUTER_API_KEY=sk-or-v1-secret\n", s);
    rt_free(s);
    /* a file that was 0644 is made 0600 on the next write */
    ASSERT_OK(chmod(path, 0644));
    ASSERT_OK(hm_env_set_file(path, "B", "2"));
    ASSERT_OK(stat(path, &st));
    ASSERT_EQ(0600, st.st_mode & 0777);
    ASSERT_EQ(0, count_entries_with(dir, ".tmp"));
    rm_rf(dir, 0);
    rt_free(path);
    rt_free(dir);
}

TEST(set_replaces_the_first_assignment_and_keeps_the_rest)
{
    char *dir = tmp_dir();
    char *in = slurp(HM_TEST_DATA "/env_input.env");
    ASSERT_NOT_NULL(in);
    write_str(dir, ".env", in);
    char *path = rt_xasprintf("%s/.env", dir);
    ASSERT_OK(hm_env_set_file(path, "OPENROUTER_API_KEY", "sk-or-new"));
    ASSERT_OK(hm_env_set_file(path, "NEW_KEY_TOKEN", "v"));
    char *out = slurp(path);
    ASSERT_STR_EQ("# Hermes secrets\n"
                  "OPENROUTER_API_KEY=sk-or-new\n"
                  "export TELEGRAM_BOT_TOKEN='tg-token'\n"
                  "\n"
                  "MATRIX_HOMESERVER=\"https://matrix.example.org\"\n"
                  "NEW_KEY_TOKEN=v\n",
                  out);
    hm_env e;
    hm_env_init(&e);
    ASSERT_OK(hm_env_read(&e, path));
    ASSERT_STR_EQ("sk-or-new", hm_env_get(&e, "OPENROUTER_API_KEY"));
    ASSERT_STR_EQ("tg-token", hm_env_get(&e, "TELEGRAM_BOT_TOKEN"));
    hm_env_fini(&e);
    rt_free(out);
    rt_free(in);
    rm_rf(dir, 0);
    rt_free(path);
    rt_free(dir);
}

TEST(set_appends_after_a_missing_newline_and_keeps_crlf)
{
    char *dir = tmp_dir();
    char *path = rt_xasprintf("%s/.env", dir);
    write_str(dir, ".env", "A=1");
    ASSERT_OK(hm_env_set_file(path, "B", "2"));
    char *out = slurp(path);
    ASSERT_STR_EQ("A=1\nB=2\n", out);
    rt_free(out);
    write_str(dir, ".env", "A=1\r\nC=3\r\n");
    ASSERT_OK(hm_env_set_file(path, "A", "9"));
    ASSERT_OK(hm_env_set_file(path, "D", "4"));
    out = slurp(path);
    ASSERT_STR_EQ("A=9\r\nC=3\r\nD=4\r\n", out);
    rt_free(out);
    rm_rf(dir, 0);
    rt_free(path);
    rt_free(dir);
}

TEST(awkward_values_round_trip)
{
    static const char *const vals[] = {
        "plain",  "has space", " lead",   "trail ",      "x #not comment", "${NOT_EXPANDED}",
        "'q'",    "\"dq\"",    "it's",    "back\\slash", "multi\nline",    "",
        "#start", "=equals",   "tab\tin", "unicodé ✓",
    };
    char *dir = tmp_dir();
    char *path = rt_xasprintf("%s/.env", dir);
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        ASSERT_OK(hm_env_set_file(path, "K", vals[i]));
        hm_env e;
        hm_env_init(&e);
        ASSERT_OK(hm_env_read(&e, path));
        if (strcmp(hm_env_get(&e, "K"), vals[i]) != 0)
            TEST_FAIL_("value '%s' read back as '%s'", vals[i], hm_env_get(&e, "K"));
        ASSERT_EQ(1, e.n);
        hm_env_fini(&e);
    }
    rm_rf(dir, 0);
    rt_free(path);
    rt_free(dir);
}

TEST(set_refuses_bad_names_and_huge_files)
{
    char *dir = tmp_dir();
    char *path = rt_xasprintf("%s/.env", dir);
    ASSERT_EQ(-EINVAL, hm_env_set_file(path, "1BAD", "x"));
    ASSERT_EQ(-EINVAL, hm_env_set_file(path, "A-B", "x"));
    ASSERT_EQ(-EINVAL, hm_env_set_file(path, "", "x"));
    size_t big = HM_ENV_MAX_BYTES + 10;
    char *junk = rt_xmalloc(big);
    memset(junk, '#', big);
    write_file(dir, ".env", junk, big);
    ASSERT_EQ(-E2BIG, hm_env_set_file(path, "A", "1"));
    hm_env e;
    hm_env_init(&e);
    ASSERT_EQ(-E2BIG, hm_env_read(&e, path));
    ASSERT_EQ(-ENOENT, hm_env_read(&e, "/nonexistent/hm/.env"));
    hm_env_fini(&e);
    ASSERT_EQ(0, count_entries_with(dir, ".tmp"));
    rt_free(junk);
    rm_rf(dir, 0);
    rt_free(path);
    rt_free(dir);
}

TEST(atomic_write_failure_leaves_nothing)
{
    ASSERT_EQ(-ENOENT, hm_write_atomic("/nonexistent-dir-hm/x", "a", 1, 0600));
    char *dir = tmp_dir();
    char *path = rt_xasprintf("%s/sub", dir);
    ASSERT_OK(mkdir(path, 0700)); /* renaming a file over a directory fails */
    ASSERT_NE(0, hm_write_atomic(path, "a", 1, 0600));
    ASSERT_EQ(0, count_entries_with(dir, ".tmp"));
    rm_rf(dir, 0);
    rt_free(path);
    rt_free(dir);
}
