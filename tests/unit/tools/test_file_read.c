/* read_file (and the tools' schemas): line numbering and ranges, long lines, empty,
 * missing (similar_files), binary, image, huge sparse and non-regular files. */
#include "rt_alloc.h"
#include "test.h"
#include "test_file_util.h"
#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static cJSON *read_args(tf_session *s, const char *path, int offset, int limit)
{
    char *q = tf_q(path);
    char *args = offset ? rt_xasprintf("{\"path\":%s,\"offset\":%d,\"limit\":%d}", q, offset, limit)
                        : rt_xasprintf("{\"path\":%s}", q);
    cJSON *r = tf_call(s, "read_file", args);
    rt_free(q);
    rt_free(args);
    return r;
}

static char *print(const cJSON *o)
{
    char *p = cJSON_PrintUnformatted(o);
    char *s = rt_xstrdup(p);
    cJSON_free(p);
    return s;
}

TEST(schemas_are_the_originals)
{
    static const struct {
        const char *name;
        const char *required;
        const char *params[9];
        bool parallel;
    } want[] = {
        {"read_file", "[\"path\"]", {"path", "offset", "limit"}, true},
        {"write_file", "[\"path\",\"content\"]", {"path", "content"}, false},
        {"patch",
         "[\"mode\"]",
         {"mode", "path", "old_string", "new_string", "replace_all", "patch"},
         false},
        {"search_files",
         "[\"pattern\"]",
         {"pattern", "target", "path", "file_glob", "limit", "offset", "output_mode", "context"},
         true},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const tool_def *d = tool_find(want[i].name);
        ASSERT_NOT_NULL(d);
        ASSERT_TRUE(d->blocking);
        ASSERT_EQ(want[i].parallel, d->parallel_safe);
        ASSERT_STR_EQ("file", d->toolset);
        cJSON *s = cJSON_Parse(d->schema);
        ASSERT_NOT_NULL(s);
        ASSERT_STR_EQ(want[i].name, tf_str(s, "name"));
        ASSERT_TRUE(strlen(tf_str(s, "description")) > 50);
        cJSON *p = cJSON_GetObjectItem(s, "parameters");
        char *req = print(cJSON_GetObjectItem(p, "required"));
        ASSERT_STR_EQ(want[i].required, req);
        rt_free(req);
        cJSON *props = cJSON_GetObjectItem(p, "properties");
        int n = 0;
        for (int k = 0; want[i].params[k]; k++, n++)
            ASSERT_NOT_NULL(cJSON_GetObjectItem(props, want[i].params[k]));
        ASSERT_EQ(n, cJSON_GetArraySize(props));
        cJSON_Delete(s);
    }
    /* A few exact details of the original's schemas. */
    cJSON *r = cJSON_Parse(tool_find("read_file")->schema);
    cJSON *lim = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(r, "parameters"), "properties"), "limit");
    ASSERT_EQ(500, tf_num(lim, "default"));
    ASSERT_EQ(2000, tf_num(lim, "maximum"));
    cJSON_Delete(r);
    cJSON *p = cJSON_Parse(tool_find("patch")->schema);
    char *e = print(cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(p, "parameters"), "properties"),
                            "mode"),
        "enum"));
    ASSERT_STR_EQ("[\"replace\",\"patch\"]", e);
    rt_free(e);
    cJSON_Delete(p);
    cJSON *sf = cJSON_Parse(tool_find("search_files")->schema);
    e = print(cJSON_GetObjectItem(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(sf, "parameters"), "properties"),
            "output_mode"),
        "enum"));
    ASSERT_STR_EQ("[\"content\",\"files_only\",\"count\"]", e);
    rt_free(e);
    cJSON_Delete(sf);
}

TEST(line_numbers_ranges_and_hint)
{
    const char *dir = test_tmpdir();
    char *f = tf_join(dir, "a.txt");
    tf_write(f, "alpha\nbeta\ngamma\ndelta\n");
    tf_session *s = tf_open(dir);
    cJSON *r = read_args(s, "a.txt", 0, 0);
    char *j = print(r);
    ASSERT_STR_EQ("{\"content\":\"     1|alpha\\n     2|beta\\n     3|gamma\\n     4|delta\","
                  "\"total_lines\":4,\"file_size\":23,\"truncated\":false,\"is_binary\":false,"
                  "\"is_image\":false}",
                  j);
    rt_free(j);
    cJSON_Delete(r);
    r = read_args(s, "a.txt", 2, 2);
    ASSERT_STR_EQ("     2|beta\n     3|gamma", tf_str(r, "content"));
    ASSERT_TRUE(tf_bool(r, "truncated"));
    ASSERT_STR_EQ("Use offset=4 to continue reading (showing 2-3 of 4 lines)", tf_str(r, "hint"));
    cJSON_Delete(r);
    /* Out-of-range values are clamped: offset 0 → 1, limit 0 → 1, limit 99999 → 2000. */
    r = read_args(s, "a.txt", -5, 0);
    ASSERT_STR_EQ("     1|alpha", tf_str(r, "content"));
    cJSON_Delete(r);
    r = tf_call(s, "read_file", "{\"path\":\"a.txt\",\"limit\":99999,\"offset\":\"3\"}");
    ASSERT_STR_EQ("     3|gamma\n     4|delta", tf_str(r, "content"));
    ASSERT_FALSE(tf_bool(r, "truncated"));
    cJSON_Delete(r);
    /* Past the end: no content, nothing else changes. */
    r = read_args(s, "a.txt", 10, 5);
    ASSERT_NULL(cJSON_GetObjectItem(r, "content"));
    ASSERT_EQ(4, tf_num(r, "total_lines"));
    cJSON_Delete(r);
    /* A last line without newline is a line. */
    tf_write(f, "one\ntwo");
    r = read_args(s, f, 0, 0);
    ASSERT_STR_EQ("     1|one\n     2|two", tf_str(r, "content"));
    ASSERT_EQ(2, tf_num(r, "total_lines"));
    cJSON_Delete(r);
    tf_close(s);
    rt_free(f);
}

TEST(long_lines_are_cut_at_2000_characters)
{
    const char *dir = test_tmpdir();
    char *f = tf_join(dir, "long.txt");
    char *line = rt_xmalloc(3 * 2500 + 8);
    size_t k = 0;
    for (int i = 0; i < 2500; i++) { /* 2500 characters of two bytes each */
        line[k++] = '\xc3';
        line[k++] = '\xa9';
    }
    memcpy(line + k, "\nshort\n", 8);
    tf_write(f, line);
    tf_session *s = tf_open(dir);
    cJSON *r = read_args(s, "long.txt", 0, 0);
    const char *c = tf_str(r, "content");
    ASSERT_EQ(0, strncmp(c, "     1|\xc3\xa9", 9));
    const char *cut = strstr(c, "... [truncated]\n     2|short");
    ASSERT_NOT_NULL(cut);
    ASSERT_EQ(7 + 2000 * 2, cut - c); /* exactly 2000 characters kept */
    cJSON_Delete(r);
    tf_close(s);
    rt_free(line);
    rt_free(f);
}

TEST(empty_missing_and_similar_files)
{
    const char *dir = test_tmpdir();
    char *e = tf_join(dir, "empty.txt");
    tf_write(e, "");
    char *c1 = tf_join(dir, "config.yaml"), *c2 = tf_join(dir, "config.yml");
    char *o = tf_join(dir, "zzz.bin");
    tf_write(c1, "a: 1\n");
    tf_write(c2, "a: 1\n");
    tf_write(o, "x");
    tf_session *s = tf_open(dir);
    cJSON *r = read_args(s, e, 0, 0);
    char *j = print(r);
    ASSERT_STR_EQ("{\"total_lines\":0,\"file_size\":0,\"truncated\":false,\"is_binary\":false,"
                  "\"is_image\":false}",
                  j);
    rt_free(j);
    cJSON_Delete(r);
    r = read_args(s, "confg.yaml", 0, 0);
    j = print(r);
    ASSERT_STR_EQ("{\"total_lines\":0,\"file_size\":0,\"truncated\":false,\"is_binary\":false,"
                  "\"is_image\":false,\"error\":\"File not found: confg.yaml\","
                  "\"similar_files\":[\"./config.yaml\",\"./config.yml\"]}",
                  j);
    rt_free(j);
    cJSON_Delete(r);
    char *abs = tf_join(dir, "confg.yaml");
    r = read_args(s, abs, 0, 0);
    cJSON *sim = cJSON_GetObjectItem(r, "similar_files");
    ASSERT_EQ(2, cJSON_GetArraySize(sim));
    ASSERT_STR_EQ(c1, cJSON_GetArrayItem(sim, 0)->valuestring);
    cJSON_Delete(r);
    r = read_args(s, "nodir/x.txt", 0, 0);
    ASSERT_STR_EQ("File not found: nodir/x.txt", tf_str(r, "error"));
    ASSERT_NULL(cJSON_GetObjectItem(r, "similar_files"));
    cJSON_Delete(r);
    r = tf_call(s, "read_file", "{}");
    ASSERT_STR_EQ("path is required", tf_str(r, "error"));
    cJSON_Delete(r);
    tf_close(s);
    rt_free(abs);
    rt_free(e);
    rt_free(c1);
    rt_free(c2);
    rt_free(o);
}

TEST(binary_and_image_files)
{
    const char *dir = test_tmpdir();
    char *b = tf_join(dir, "data.raw");
    int fd = open(b, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char junk[600];
    for (int i = 0; i < 600; i++)
        junk[i] = (char)(i % 3 == 0 ? 'a' : i % 7); /* mostly control bytes and NULs */
    ASSERT_EQ(600, write(fd, junk, sizeof(junk)));
    close(fd);
    char *so = tf_join(dir, "lib.so"), *png = tf_join(dir, "pic.PNG");
    tf_write(so, "plain text but a binary extension\n");
    tf_write(png, "not really a png");
    tf_session *s = tf_open(dir);
    cJSON *r = read_args(s, b, 0, 0);
    char *j = print(r);
    ASSERT_STR_EQ("{\"total_lines\":0,\"file_size\":600,\"truncated\":false,\"is_binary\":true,"
                  "\"is_image\":false,\"error\":\"Binary file - cannot display as text. Use "
                  "appropriate tools to handle this file type.\"}",
                  j);
    rt_free(j);
    cJSON_Delete(r);
    r = read_args(s, so, 0, 0);
    ASSERT_TRUE(tf_bool(r, "is_binary"));
    cJSON_Delete(r);
    r = read_args(s, png, 0, 0);
    ASSERT_TRUE(tf_bool(r, "is_image"));
    ASSERT_TRUE(tf_bool(r, "is_binary"));
    ASSERT_EQ(16, tf_num(r, "file_size"));
    ASSERT_STR_CONTAINS(tf_str(r, "hint"), "vision_analyze");
    ASSERT_NULL(cJSON_GetObjectItem(r, "error"));
    cJSON_Delete(r);
    /* A text file with a few control characters (under 30%) is text; NUL becomes U+FFFD. */
    tf_write(b, "ok\x01 line\nnext\n");
    r = read_args(s, b, 0, 0);
    ASSERT_STR_EQ("     1|ok\x01 line\n     2|next", tf_str(r, "content"));
    cJSON_Delete(r);
    tf_close(s);
    rt_free(b);
    rt_free(so);
    rt_free(png);
}

TEST(huge_sparse_file_is_streamed)
{
    const char *dir = test_tmpdir();
    char *f = tf_join(dir, "huge.log");
    int fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    char line[64];
    for (int i = 1; i <= 2000; i++) {
        int n = snprintf(line, sizeof(line), "line %d\n", i);
        ASSERT_EQ(n, write(fd, line, (size_t)n));
    }
    const off_t size = (off_t)100 << 20;
    ASSERT_OK(ftruncate(fd, size));
    ASSERT_EQ(12, pwrite(fd, "tail1\ntail2\n", 12, size - 12));
    close(fd);
    tf_session *s = tf_open(dir);
    cJSON *r = read_args(s, "huge.log", 1, 3);
    ASSERT_STR_EQ("     1|line 1\n     2|line 2\n     3|line 3", tf_str(r, "content"));
    ASSERT_EQ(2002, tf_num(r, "total_lines")); /* the hole is part of line 2001 */
    ASSERT_EQ((double)size, tf_num(r, "file_size"));
    ASSERT_STR_EQ("Use offset=4 to continue reading (showing 1-3 of 2002 lines)",
                  tf_str(r, "hint"));
    cJSON_Delete(r);
    r = read_args(s, "huge.log", 2000, 10);
    const char *c = tf_str(r, "content");
    ASSERT_EQ(0, strncmp(c, "  2000|line 2000\n  2001|\xef\xbf\xbd", 26));
    ASSERT_STR_CONTAINS(c, "... [truncated]\n  2002|tail2");
    ASSERT_FALSE(tf_bool(r, "truncated"));
    cJSON_Delete(r);
    tf_close(s);
    /* Streamed, never loaded: this process stayed far below the file's 100 MB. */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    ASSERT_LT(ru.ru_maxrss, 64 * 1024);
    rt_free(f);
}

TEST(directories_and_non_regular_files_are_refused)
{
    const char *dir = test_tmpdir();
    char *fifo = tf_join(dir, "pipe");
    ASSERT_OK(mkfifo(fifo, 0600));
    tf_session *s = tf_open(dir);
    cJSON *r = read_args(s, dir, 0, 0);
    ASSERT_STR_CONTAINS(tf_str(r, "error"), "it is a directory");
    cJSON_Delete(r);
    r = read_args(s, "pipe", 0, 0); /* would block forever if opened for reading */
    ASSERT_STR_EQ("Cannot read 'pipe': it is a FIFO, not a regular file.", tf_str(r, "error"));
    cJSON_Delete(r);
    r = read_args(s, "/dev/zero", 0, 0); /* endless */
    ASSERT_STR_CONTAINS(tf_str(r, "error"), "a character device");
    cJSON_Delete(r);
    /* /proc/self/mem looks like an empty regular file; reading it fails cleanly. */
    r = read_args(s, "/proc/self/mem", 0, 0);
    ASSERT_STR_CONTAINS(tf_str(r, "error"), "Failed to read file");
    cJSON_Delete(r);
    tf_close(s);
    rt_free(fifo);
}

TEST(home_expansion)
{
    const char *home = test_tmpdir();
    ASSERT_OK(setenv("HOME", home, 1));
    char *f = tf_join(home, "notes.md");
    tf_write(f, "# hi\n");
    tf_session *s = tf_open("/");
    cJSON *r = read_args(s, "~/notes.md", 0, 0);
    ASSERT_STR_EQ("     1|# hi", tf_str(r, "content"));
    cJSON_Delete(r);
    r = read_args(s, "~/nope.md", 0, 0);
    char *want = rt_xasprintf("File not found: %s/nope.md", home);
    ASSERT_STR_EQ(want, tf_str(r, "error"));
    rt_free(want);
    cJSON_Delete(r);
    tf_close(s);
    rt_free(f);
}
