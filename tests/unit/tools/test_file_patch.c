/* patch through the tool: replace mode (diff, errors, replace_all, lint), V4A patches
 * (add, update, delete, move, move-to; all-or-nothing), and interrupting a running lint. */
#include "ft_proc.h"
#include "rt_alloc.h"
#include "test.h"
#include "test_file_util.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *print(const cJSON *o)
{
    char *p = cJSON_PrintUnformatted(o);
    char *s = rt_xstrdup(p);
    cJSON_free(p);
    return s;
}

static cJSON *replace(tf_session *s, const char *path, const char *old, const char *new_, bool all)
{
    char *qp = tf_q(path), *qo = tf_q(old), *qn = tf_q(new_);
    char *args = rt_xasprintf("{\"path\":%s,\"old_string\":%s,\"new_string\":%s%s}", qp, qo, qn,
                              all ? ",\"replace_all\":true" : "");
    cJSON *r = tf_call(s, "patch", args);
    rt_free(qp);
    rt_free(qo);
    rt_free(qn);
    rt_free(args);
    return r;
}

static cJSON *v4a(tf_session *s, const char *patch)
{
    char *q = tf_q(patch);
    char *args = rt_xasprintf("{\"mode\":\"patch\",\"patch\":%s}", q);
    cJSON *r = tf_call(s, "patch", args);
    rt_free(q);
    rt_free(args);
    return r;
}

static void expect_file(const char *dir, const char *name, const char *want)
{
    char *f = tf_join(dir, name);
    char *got = tf_read(f);
    if (!want)
        ASSERT_NULL(got);
    else
        ASSERT_STR_EQ(want, got);
    rt_free(got);
    rt_free(f);
}

TEST(replace_mode_result_and_diff)
{
    const char *dir = test_tmpdir();
    char *f = tf_join(dir, "notes.txt");
    tf_write(f, "one\ntwo\nthree\n");
    tf_session *s = tf_open(dir);
    cJSON *r = replace(s, "notes.txt", "two", "2", false);
    char *j = print(r);
    ASSERT_STR_EQ("{\"success\":true,\"diff\":\"--- a/notes.txt\\n+++ b/notes.txt\\n@@ -1,3 +1,3 "
                  "@@\\n one\\n-two\\n+2\\n three\\n\",\"files_modified\":[\"notes.txt\"],"
                  "\"lint\":{\"status\":\"skipped\",\"message\":\"No linter for .txt files\"}}",
                  j);
    rt_free(j);
    cJSON_Delete(r);
    expect_file(dir, "notes.txt", "one\n2\nthree\n");
    tf_close(s);
    rt_free(f);
}

TEST(replace_mode_errors)
{
    const char *dir = test_tmpdir();
    char *f = tf_join(dir, "x.txt");
    tf_write(f, "aaa bbb aaa\n");
    tf_session *s = tf_open(dir);
    cJSON *r = replace(s, "x.txt", "aaa", "ccc", false);
    char *j = print(r);
    ASSERT_STR_EQ("{\"success\":false,\"error\":\"Found 2 matches for old_string. Provide more "
                  "context to make it unique, or use replace_all=True.\"}",
                  j);
    rt_free(j);
    cJSON_Delete(r);
    r = replace(s, "x.txt", "zzz", "ccc", false);
    ASSERT_STR_EQ("Could not find a match for old_string in the file", tf_str(r, "error"));
    cJSON_Delete(r);
    r = replace(s, "missing.txt", "a", "b", false);
    ASSERT_STR_EQ("Failed to read file: missing.txt", tf_str(r, "error"));
    cJSON_Delete(r);
    r = replace(s, "x.txt", "", "b", false);
    ASSERT_STR_EQ("old_string cannot be empty", tf_str(r, "error"));
    cJSON_Delete(r);
    static const struct {
        const char *args, *err;
    } bad[] = {
        {"{\"old_string\":\"a\",\"new_string\":\"b\"}", "path required"},
        {"{\"path\":\"x.txt\",\"old_string\":\"a\"}", "old_string and new_string required"},
        {"{\"mode\":\"patch\"}", "patch content required"},
        {"{\"mode\":\"rewrite\"}", "Unknown mode: rewrite"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = tf_call(s, "patch", bad[i].args);
        j = print(r);
        char *want = rt_xasprintf("{\"error\":\"%s\"}", bad[i].err);
        ASSERT_STR_EQ(want, j);
        rt_free(want);
        rt_free(j);
        cJSON_Delete(r);
    }
    expect_file(dir, "x.txt", "aaa bbb aaa\n");
    r = replace(s, "x.txt", "aaa", "ccc", true);
    ASSERT_TRUE(tf_bool(r, "success"));
    cJSON_Delete(r);
    expect_file(dir, "x.txt", "ccc bbb ccc\n");
    tf_close(s);
    rt_free(f);
}

TEST(replace_mode_fuzzy_keeps_mode_and_bytes)
{
    const char *dir = test_tmpdir();
    char *f = tf_join(dir, "run.sh");
    /* Invalid UTF-8 elsewhere in the file must survive byte for byte. */
    tf_write(f, "#!/bin/sh\n    if true;  then\n        echo hi\n    fi\n# \xff\xfe\n");
    ASSERT_OK(chmod(f, 0700));
    tf_session *s = tf_open(dir);
    cJSON *r = replace(s, "run.sh", "if true; then\n    echo hi\nfi", "echo bye", false);
    ASSERT_TRUE(tf_bool(r, "success"));
    cJSON_Delete(r);
    expect_file(dir, "run.sh", "#!/bin/sh\necho bye\n# \xff\xfe\n");
    struct stat st;
    ASSERT_OK(stat(f, &st));
    ASSERT_EQ(0700, st.st_mode & 07777);
    tf_close(s);
    rt_free(f);
}

TEST(lint_after_edit)
{
    if (!ft_proc_have("python") && !ft_proc_have("python3"))
        return; /* no Python here: nothing to check */
    const char *dir = test_tmpdir();
    char *f = tf_join(dir, "m.py");
    tf_write(f, "def f():\n    return 1\n");
    tf_session *s = tf_open(dir);
    cJSON *r = replace(s, "m.py", "return 1", "return 2", false);
    cJSON *lint = cJSON_GetObjectItem(r, "lint");
    ASSERT_STR_EQ("ok", tf_str(lint, "status"));
    ASSERT_STR_EQ("", tf_str(lint, "output"));
    cJSON_Delete(r);
    r = replace(s, "m.py", "return 2", "return (", false);
    lint = cJSON_GetObjectItem(r, "lint");
    ASSERT_TRUE(tf_bool(r, "success"));
    ASSERT_STR_EQ("error", tf_str(lint, "status"));
    ASSERT_STR_CONTAINS(tf_str(lint, "output"), "SyntaxError");
    cJSON_Delete(r);
    tf_close(s);
    rt_free(f);
}

TEST(v4a_add_update_delete_move)
{
    const char *dir = test_tmpdir();
    char *a = tf_join(dir, "a.txt"), *old = tf_join(dir, "old.txt"), *mv = tf_join(dir, "mv.txt");
    tf_write(a, "def run():\n    return 1\n\nx = 0\n");
    tf_write(old, "bye\n");
    tf_write(mv, "moving\n");
    tf_session *s = tf_open(dir);
    cJSON *r = v4a(s, "*** Begin Patch\n"
                      "*** Update File: a.txt\n"
                      "@@ def run(): @@\n"
                      " def run():\n"
                      "-    return 1\n"
                      "+    return 2\n"
                      "*** Add File: pkg/new.txt\n"
                      "+hello\n"
                      "+world\n"
                      "*** Delete File: old.txt\n"
                      "*** Delete File: never.txt\n"
                      "*** Move File: mv.txt -> dest/mv2.txt\n"
                      "*** End Patch");
    char *j = print(r);
    ASSERT_STR_EQ(
        "{\"success\":true,\"diff\":\"--- a/a.txt\\n+++ b/a.txt\\n@@ -1,4 +1,4 @@\\n def "
        "run():\\n-    return 1\\n+    return 2\\n \\n x = 0\\n\\n--- /dev/null\\n+++ "
        "b/pkg/new.txt\\n+hello\\n+world\\n--- a/old.txt\\n+++ /dev/null\\n# File deleted\\n# "
        "never.txt already deleted or doesn't exist\\n# Moved: mv.txt -> dest/mv2.txt\","
        "\"files_modified\":[\"a.txt\",\"mv.txt -> dest/mv2.txt\"],\"files_created\":"
        "[\"pkg/new.txt\"],\"files_deleted\":[\"old.txt\",\"never.txt\"],\"lint\":{\"a.txt\":"
        "{\"status\":\"skipped\",\"message\":\"No linter for .txt files\"},\"pkg/new.txt\":"
        "{\"status\":\"skipped\",\"message\":\"No linter for .txt files\"}}}",
        j);
    rt_free(j);
    cJSON_Delete(r);
    expect_file(dir, "a.txt", "def run():\n    return 2\n\nx = 0\n");
    expect_file(dir, "pkg/new.txt", "hello\nworld");
    expect_file(dir, "old.txt", NULL);
    expect_file(dir, "mv.txt", NULL);
    expect_file(dir, "dest/mv2.txt", "moving\n");
    /* Operations see the effect of earlier ones in the same patch; "Move to" renames. */
    r = v4a(s, "*** Begin Patch\n*** Add File: t.txt\n+one\n+two\n"
               "*** Update File: t.txt\n-two\n+TWO\n*** Move to: u.txt\n*** End Patch");
    ASSERT_TRUE(tf_bool(r, "success"));
    cJSON_Delete(r);
    expect_file(dir, "t.txt", NULL);
    expect_file(dir, "u.txt", "one\nTWO");
    tf_close(s);
    rt_free(a);
    rt_free(old);
    rt_free(mv);
}

TEST(v4a_failure_changes_nothing)
{
    const char *dir = test_tmpdir();
    char *a = tf_join(dir, "a.py"), *b = tf_join(dir, "b.py");
    tf_write(a, "def good():\n    return 1\n");
    tf_write(b, "completely different content\n");
    tf_session *s = tf_open(dir);
    cJSON *r = v4a(s, "*** Begin Patch\n*** Update File: a.py\n def good():\n-    return 1\n"
                      "+    return 2\n*** Update File: b.py\n THIS LINE DOES NOT EXIST\n-    old\n"
                      "+    new\n*** Update File: c.py\n-x\n+y\n*** End Patch");
    char *j = print(r);
    ASSERT_STR_EQ("{\"success\":false,\"error\":\"Failed to update b.py: Could not apply hunk: "
                  "Could not find a match for old_string in the file; Failed to update c.py: "
                  "Cannot read file: File not found: c.py (no files were modified)\"}",
                  j);
    rt_free(j);
    cJSON_Delete(r);
    expect_file(dir, "a.py", "def good():\n    return 1\n");
    r = v4a(s, "no markers at all");
    ASSERT_STR_CONTAINS(tf_str(r, "error"), "Failed to parse patch: no file operations found");
    cJSON_Delete(r);
    tf_close(s);
    rt_free(a);
    rt_free(b);
}

TEST(interrupt_stops_a_running_linter)
{
    /* A fake `python` that records its pid and hangs: the patch is applied, the lint is
     * running, the user interrupts. */
    const char *bin = test_tmpdir();
    const char *dir = test_tmpdir();
    char *py = tf_join(bin, "python"), *pidf = tf_join(dir, "lint.pid");
    char *script = rt_xasprintf("#!/bin/sh\necho $$ > %s.tmp && mv %s.tmp %s\nexec sleep 30\n",
                                pidf, pidf, pidf);
    tf_write(py, script);
    ASSERT_OK(chmod(py, 0755));
    char *path = rt_xasprintf("%s:%s", bin, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    ASSERT_OK(setenv("PATH", path, 1));
    char *f = tf_join(dir, "m.py");
    tf_write(f, "x = 1\n");
    tf_session *s = tf_open(dir);
    tf_start(s, "patch", "{\"path\":\"m.py\",\"old_string\":\"x = 1\",\"new_string\":\"x = 2\"}");
    char *pid_text = NULL;
    for (int i = 0; i < 20000 && !(pid_text = tf_read(pidf)); i++) /* wait for the linter */
        usleep(1000);
    ASSERT_NOT_NULL(pid_text);
    ASSERT_FALSE(tf_done(s));
    tf_interrupt(s);
    char *res = tf_wait(s);
    ASSERT_TRUE(tf_was_interrupted(s));
    cJSON *r = cJSON_Parse(res);
    ASSERT_TRUE(tf_bool(r, "success")); /* the edit stands */
    cJSON *lint = cJSON_GetObjectItem(r, "lint");
    ASSERT_STR_EQ("skipped", tf_str(lint, "status"));
    ASSERT_STR_EQ("Lint interrupted", tf_str(lint, "message"));
    cJSON_Delete(r);
    rt_free(res);
    expect_file(dir, "m.py", "x = 2\n");
    /* The linter's process is gone (killed and reaped). */
    pid_t pid = (pid_t)strtol(pid_text, NULL, 10);
    ASSERT_GT(pid, 0);
    ASSERT_EQ(-1, kill(pid, 0));
    tf_close(s);
    rt_free(pid_text);
    rt_free(f);
    rt_free(path);
    rt_free(script);
    rt_free(pidf);
    rt_free(py);
}
