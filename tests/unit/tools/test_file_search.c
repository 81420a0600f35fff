/* search_files: ripgrep and the built-in search give the same results; output modes,
 * context, globs, limits and offsets; file-name search newest first; a directory of 10,000
 * files; errors; timeouts and interrupts with a fake rg. */
#include "ft_proc.h"
#include "ft_search.h"
#include "rt_alloc.h"
#include "test.h"
#include "test_file_util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char *print(const cJSON *o)
{
    char *p = cJSON_PrintUnformatted(o);
    char *s = rt_xstrdup(p);
    cJSON_free(p);
    return s;
}

static void put(const char *dir, const char *name, const char *content)
{
    char *f = tf_join(dir, name);
    char *d = rt_xstrdup(f);
    *strrchr(d, '/') = '\0';
    char *cmd = rt_xasprintf("mkdir -p '%s'", d);
    ASSERT_EQ(0, system(cmd));
    tf_write(f, content);
    rt_free(cmd);
    rt_free(d);
    rt_free(f);
}

/* A small project: code, docs, a hidden file, a binary file, .git, a symlink. */
static const char *fixture(void)
{
    const char *dir = test_tmpdir();
    put(dir, "src/main.py", "import os\n\ndef main():\n    print('hello')\n    return 0\n");
    put(dir, "src/util.py", "def helper(x):\n    return x * 2  # hello there\n");
    put(dir, "src/deep/more-1.py", "HELLO = 1\nvalue: 42\nhello\n");
    put(dir, "docs/readme.md", "# Hello\nSay hello to the world.\nhello hello\n");
    put(dir, "notes.txt", "line one\nhello\nline three\nline four\nline five\nline six\nhello\n");
    put(dir, ".hidden/secret.txt", "hello from hidden\n");
    put(dir, ".env", "hello=1\n");
    put(dir, ".git/config", "hello git\n");
    char *bin = tf_join(dir, "data.bin");
    int fd = open(bin, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_EQ(11, write(fd, "hello\0world", 11));
    close(fd);
    char *link = tf_join(dir, "link.py");
    ASSERT_OK(symlink("src/main.py", link));
    rt_free(link);
    rt_free(bin);
    return dir;
}

static char *search(const char *cwd, const char *json_opts, bool builtin)
{
    cJSON *a = cJSON_Parse(json_opts);
    ASSERT_NOT_NULL(a);
    const cJSON *t = cJSON_GetObjectItem(a, "target"), *m = cJSON_GetObjectItem(a, "mode");
    ft_search_opts o = {
        .pattern = cJSON_GetStringValue(cJSON_GetObjectItem(a, "pattern")),
        .path = cJSON_GetStringValue(cJSON_GetObjectItem(a, "path")),
        .file_glob = cJSON_GetStringValue(cJSON_GetObjectItem(a, "glob")),
        .cwd = cwd,
        .target = t && strcmp(t->valuestring, "files") == 0 ? FT_TARGET_FILES : FT_TARGET_CONTENT,
        .mode = !m                                          ? FT_MODE_CONTENT
                : strcmp(m->valuestring, "files_only") == 0 ? FT_MODE_FILES_ONLY
                : strcmp(m->valuestring, "count") == 0      ? FT_MODE_COUNT
                                                            : FT_MODE_CONTENT,
        .limit = cJSON_GetObjectItem(a, "limit") ? cJSON_GetObjectItem(a, "limit")->valueint : 50,
        .offset = cJSON_GetObjectItem(a, "offset") ? cJSON_GetObjectItem(a, "offset")->valueint : 0,
        .context =
            cJSON_GetObjectItem(a, "context") ? cJSON_GetObjectItem(a, "context")->valueint : 0,
        .builtin = builtin,
    };
    cJSON *r = ft_search_run(&o);
    char *s = print(r);
    cJSON_Delete(r);
    cJSON_Delete(a);
    return s;
}

static const char *const parity_cases[] = {
    "{\"pattern\":\"hello\"}",
    "{\"pattern\":\"hello\",\"path\":\"src\"}",
    "{\"pattern\":\"hello\",\"path\":\"src/\"}",
    "{\"pattern\":\"hello\",\"mode\":\"files_only\"}",
    "{\"pattern\":\"hello\",\"mode\":\"count\"}",
    "{\"pattern\":\"hello\",\"context\":1}",
    "{\"pattern\":\"hello\",\"context\":2,\"path\":\"notes.txt\"}",
    "{\"pattern\":\"hello\",\"glob\":\"*.py\"}",
    "{\"pattern\":\"hello\",\"glob\":\"!*.md\"}",
    "{\"pattern\":\"hello\",\"glob\":\"*.{md,txt}\",\"mode\":\"count\"}",
    "{\"pattern\":\"hello\",\"limit\":2}",
    "{\"pattern\":\"hello\",\"limit\":2,\"offset\":3}",
    "{\"pattern\":\"hello\",\"limit\":1,\"offset\":1,\"mode\":\"files_only\"}",
    "{\"pattern\":\"hello\",\"limit\":2,\"offset\":1,\"mode\":\"count\"}",
    "{\"pattern\":\"^\\\\s+return \\\\w+\"}",
    "{\"pattern\":\"\\\\d{2}\"}",
    "{\"pattern\":\"(?i)^hello\"}",
    "{\"pattern\":\"def (main|helper)\\\\(\"}",
    "{\"pattern\":\"[Hh]ello$\"}",
    "{\"pattern\":\"hello\",\"path\":\".hidden\"}",
    "{\"pattern\":\"hello\",\"path\":\"data.bin\"}",
    "{\"pattern\":\"nomatch-anywhere\"}",
    "{\"pattern\":\"hello\",\"path\":\"missing\"}",
};

TEST(ripgrep_and_builtin_give_the_same_results)
{
    if (!ft_proc_have("rg"))
        return; /* Debian's ripgrep is in install-deps.sh --test; without it, nothing to compare */
    const char *dir = fixture();
    for (size_t i = 0; i < sizeof(parity_cases) / sizeof(parity_cases[0]); i++) {
        char *a = search(dir, parity_cases[i], false);
        char *b = search(dir, parity_cases[i], true);
        if (strcmp(a, b) != 0)
            TEST_FAIL_("case %s:\n  rg:      %s\n  builtin: %s", parity_cases[i], a, b);
        rt_free(a);
        rt_free(b);
    }
}

TEST(builtin_results_and_shapes)
{
    const char *dir = fixture();
    char *r = search(dir, "{\"pattern\":\"hello\",\"path\":\"src\"}", true);
    ASSERT_STR_EQ("{\"total_count\":3,\"matches\":[{\"path\":\"src/deep/more-1.py\",\"line\":3,"
                  "\"content\":\"hello\"},{\"path\":\"src/main.py\",\"line\":4,\"content\":\"    "
                  "print('hello')\"},{\"path\":\"src/util.py\",\"line\":2,\"content\":\"    return "
                  "x * 2  # hello there\"}]}",
                  r);
    rt_free(r);
    r = search(dir, "{\"pattern\":\"hello\",\"path\":\"notes.txt\",\"context\":1}", true);
    ASSERT_STR_EQ("{\"total_count\":5,\"matches\":[{\"path\":\"notes.txt\",\"line\":1,\"content\":"
                  "\"line one\"},{\"path\":\"notes.txt\",\"line\":2,\"content\":\"hello\"},"
                  "{\"path\":\"notes.txt\",\"line\":3,\"content\":\"line three\"},{\"path\":"
                  "\"notes.txt\",\"line\":6,\"content\":\"line six\"},{\"path\":\"notes.txt\","
                  "\"line\":7,\"content\":\"hello\"}]}",
                  r);
    rt_free(r);
    r = search(dir, "{\"pattern\":\"hello\",\"mode\":\"count\"}", true);
    ASSERT_STR_EQ("{\"total_count\":7,\"counts\":{\"./docs/readme.md\":2,\"./notes.txt\":2,"
                  "\"./src/deep/more-1.py\":1,\"./src/main.py\":1,\"./src/util.py\":1}}",
                  r);
    rt_free(r);
    r = search(dir, "{\"pattern\":\"hello\",\"mode\":\"files_only\",\"limit\":2}", true);
    ASSERT_STR_EQ("{\"total_count\":3,\"files\":[\"./docs/readme.md\",\"./notes.txt\"],"
                  "\"truncated\":true}",
                  r);
    rt_free(r);
    r = search(dir, "{\"pattern\":\"hello\",\"path\":\"missing\"}", true);
    ASSERT_STR_EQ("{\"total_count\":0,\"error\":\"Path not found: missing\"}", r);
    rt_free(r);
    r = search(dir, "{\"pattern\":\"(unclosed\"}", true);
    ASSERT_STR_CONTAINS(r, "\"error\":\"Search failed: regex parse error");
    rt_free(r);
    if (ft_proc_have("rg")) {
        r = search(dir, "{\"pattern\":\"(unclosed\"}", false);
        ASSERT_STR_CONTAINS(r, "\"error\":\"Search failed: ");
        rt_free(r);
    }
    /* A long line is cut to 500 characters. */
    char *big = rt_xmalloc(3001);
    memset(big, 'x', 3000);
    big[3000] = '\0';
    memcpy(big + 100, "needle", 6);
    put(dir, "wide.txt", big);
    r = search(dir, "{\"pattern\":\"needle\",\"path\":\"wide.txt\"}", true);
    cJSON *o = cJSON_Parse(r);
    const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "matches"), 0);
    ASSERT_EQ(500, strlen(tf_str(m, "content")));
    cJSON_Delete(o);
    rt_free(r);
    rt_free(big);
}

TEST(file_name_search_newest_first)
{
    const char *dir = test_tmpdir();
    const char *names[] = {"b.py", "a.py", "sub/c.py", "sub/d.txt", ".hid.py", "node_modules/x.py"};
    for (int i = 0; i < 6; i++) {
        put(dir, names[i], "x\n");
        char *f = tf_join(dir, names[i]);
        struct timespec ts[2] = {{1000000 + i * 10, 0}, {1000000 + i * 10, 0}};
        ASSERT_OK(utimensat(AT_FDCWD, f, ts, 0));
        rt_free(f);
    }
    char *r = search(dir, "{\"pattern\":\"*.py\",\"target\":\"files\"}", true);
    ASSERT_STR_EQ("{\"total_count\":4,\"files\":[\"./.hid.py\",\"./sub/c.py\",\"./a.py\","
                  "\"./b.py\"]}",
                  r);
    rt_free(r);
    r = search(dir, "{\"pattern\":\"**/*.py\",\"target\":\"files\",\"limit\":1,\"offset\":1}",
               true);
    ASSERT_STR_EQ("{\"total_count\":4,\"files\":[\"./sub/c.py\"],\"truncated\":true}", r);
    rt_free(r);
    r = search(dir, "{\"pattern\":\"*.txt\",\"target\":\"files\",\"path\":\"sub\"}", true);
    ASSERT_STR_EQ("{\"total_count\":1,\"files\":[\"sub/d.txt\"]}", r);
    rt_free(r);
    r = search(dir, "{\"pattern\":\"*.rs\",\"target\":\"files\"}", true);
    ASSERT_STR_EQ("{\"total_count\":0}", r);
    rt_free(r);
}

TEST(ten_thousand_files_stay_bounded)
{
    const char *dir = test_tmpdir();
    char *many = tf_join(dir, "many");
    ASSERT_OK(mkdir(many, 0755));
    char name[64];
    for (int i = 0; i < 10000; i++) {
        snprintf(name, sizeof(name), "%s/f%05d.txt", many, i);
        int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(6, write(fd, "match\n", 6));
        close(fd);
    }
    char *r = search(dir, "{\"pattern\":\"*.txt\",\"target\":\"files\",\"limit\":5}", true);
    cJSON *o = cJSON_Parse(r);
    ASSERT_EQ(10000, tf_num(o, "total_count"));
    ASSERT_EQ(5, cJSON_GetArraySize(cJSON_GetObjectItem(o, "files")));
    ASSERT_TRUE(tf_bool(o, "truncated"));
    cJSON_Delete(o);
    rt_free(r);
    for (int b = 0; b < 2; b++) {
        if (b == 0 && !ft_proc_have("rg"))
            continue;
        r = search(dir, "{\"pattern\":\"match\",\"limit\":10,\"offset\":20}", b == 1);
        o = cJSON_Parse(r);
        ASSERT_EQ(31, tf_num(o, "total_count")); /* gathering stopped at offset+limit+1 */
        cJSON *m = cJSON_GetObjectItem(o, "matches");
        ASSERT_EQ(10, cJSON_GetArraySize(m));
        ASSERT_STR_EQ("./many/f00020.txt", tf_str(cJSON_GetArrayItem(m, 0), "path"));
        ASSERT_TRUE(tf_bool(o, "truncated"));
        cJSON_Delete(o);
        rt_free(r);
    }
    r = search(dir, "{\"pattern\":\"match\",\"limit\":100000}", true); /* clamped to 1000 */
    o = cJSON_Parse(r);
    ASSERT_EQ(1000, cJSON_GetArraySize(cJSON_GetObjectItem(o, "matches")));
    cJSON_Delete(o);
    rt_free(r);
    rt_free(many);
}

TEST(tool_arguments_and_builtin_override)
{
    const char *dir = fixture();
    ASSERT_OK(setenv("HERMES_SEARCH_BACKEND", "builtin", 1));
    tf_session *s = tf_open(dir);
    cJSON *r = tf_call(s, "search_files",
                       "{\"pattern\":\"hello\",\"target\":\"grep\",\"path\":"
                       "\"docs\",\"output_mode\":\"count\"}");
    char *j = print(r);
    ASSERT_STR_EQ("{\"total_count\":2,\"counts\":{\"docs/readme.md\":2}}", j);
    rt_free(j);
    cJSON_Delete(r);
    r = tf_call(s, "search_files", "{\"pattern\":\"*.md\",\"target\":\"find\"}");
    j = print(r);
    ASSERT_STR_EQ("{\"total_count\":1,\"files\":[\"./docs/readme.md\"]}", j);
    rt_free(j);
    cJSON_Delete(r);
    r = tf_call(s, "search_files", "{\"pattern\":\"hello\",\"limit\":-3,\"offset\":-1}");
    ASSERT_EQ(1, cJSON_GetArraySize(cJSON_GetObjectItem(r, "matches"))); /* limit >= 1 */
    cJSON_Delete(r);
    tf_close(s);
}

/* A fake rg that prints one match, leaves a marker file and hangs. Returns the marker's
 * path (new string). */
static char *fake_rg(void)
{
    const char *bin = test_tmpdir();
    char *rg = tf_join(bin, "rg"), *marker = tf_join(bin, "started");
    char *script = rt_xasprintf("#!/bin/sh\nprintf 'f.txt\\0001:first\\n'\n: > %s\n"
                                "exec sleep 30\n",
                                marker);
    tf_write(rg, script);
    rt_free(script);
    ASSERT_OK(chmod(rg, 0755));
    char *path = rt_xasprintf("%s:%s", bin, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    ASSERT_OK(setenv("PATH", path, 1));
    rt_free(path);
    rt_free(rg);
    return marker;
}

TEST(timeout_keeps_partial_results)
{
    rt_free(fake_rg());
    const char *dir = test_tmpdir();
    ft_search_opts o = {.pattern = "x", .path = ".", .cwd = dir, .limit = 50, .timeout_ms = 300};
    cJSON *r = ft_search_run(&o);
    char *j = print(r);
    ASSERT_STR_EQ("{\"total_count\":1,\"matches\":[{\"path\":\"f.txt\",\"line\":1,\"content\":"
                  "\"first\"}],\"truncated\":true,\"error\":\"Search timed out after 0s; results "
                  "are incomplete\"}",
                  j);
    rt_free(j);
    cJSON_Delete(r);
}

TEST(interrupt_stops_a_running_search)
{
    char *marker = fake_rg();
    const char *dir = test_tmpdir();
    tf_session *s = tf_open(dir);
    tf_start(s, "search_files", "{\"pattern\":\"x\"}");
    for (int i = 0; i < 20000 && access(marker, F_OK) != 0; i++) /* rg is running */
        usleep(1000);
    ASSERT_OK(access(marker, F_OK));
    ASSERT_FALSE(tf_done(s));
    tf_interrupt(s);
    char *res = tf_wait(s);
    ASSERT_TRUE(tf_was_interrupted(s));
    cJSON *r = cJSON_Parse(res);
    ASSERT_STR_EQ("Search interrupted; results are incomplete", tf_str(r, "error"));
    cJSON_Delete(r);
    rt_free(res);
    tf_close(s);
    rt_free(marker);
}
