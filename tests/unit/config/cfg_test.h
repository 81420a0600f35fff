/*
 * cfg_test.h — helpers for the config tests: temporary homes, files, and running the built
 * `hermes` binary with a clean environment.
 */
#ifndef CFG_TEST_H
#define CFG_TEST_H

#include "rt_alloc.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A new empty directory under /tmp (removed by rm_rf). */
static inline char *tmp_dir(void)
{
    char tmpl[] = "/tmp/hm_cfg_XXXXXX";
    char *d = mkdtemp(tmpl);
    ASSERT_NOT_NULL(d);
    return rt_xstrdup(d);
}

static inline void rm_rf(const char *path, int depth)
{
    ASSERT_LT(depth, 16);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char *p = rt_xasprintf("%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                rm_rf(p, depth + 1);
            else
                unlink(p);
            rt_free(p);
        }
        closedir(d);
        rmdir(path);
    }
}

static inline void write_file(const char *dir, const char *name, const char *text, size_t len)
{
    char *p = rt_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ(len, fwrite(text, 1, len, f));
    ASSERT_EQ(0, fclose(f));
    rt_free(p);
}

static inline void write_str(const char *dir, const char *name, const char *text)
{
    write_file(dir, name, text, strlen(text));
}

/* The whole file, NUL-terminated; NULL if it does not exist. */
static inline char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    ASSERT_EQ(0, fseek(f, 0, SEEK_END));
    long n = ftell(f);
    ASSERT_GE(n, 0);
    ASSERT_EQ(0, fseek(f, 0, SEEK_SET));
    char *b = rt_xmalloc((size_t)n + 1);
    ASSERT_EQ((size_t)n, fread(b, 1, (size_t)n, f));
    b[n] = 0;
    fclose(f);
    return b;
}

static inline char *slurp2(const char *dir, const char *name)
{
    char *p = rt_xasprintf("%s/%s", dir, name);
    char *s = slurp(p);
    rt_free(p);
    return s;
}

/* How many names in dir contain needle. */
static inline int count_entries_with(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, needle) != NULL;
    closedir(d);
    return n;
}

#endif /* CFG_TEST_H */
