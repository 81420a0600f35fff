/*
 * test_skills_cli — `hermes skills list|inspect` (cli/cli_skills.c) on a scratch
 * $HERMES_HOME: grouping by category, the category filter, inspect, and usage errors.
 */
#include "rt_alloc.h"
#include "test.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_skills(int argc, char **argv);

static char out_path[512];
static char base[400]; /* test_tmpdir() makes a new directory per call: call it once */

static const char *tmp(void)
{
    if (!base[0])
        snprintf(base, sizeof(base), "%s", test_tmpdir());
    return base;
}

/* Run cli_skills with stdout sent to a file; returns its exit status, *out the output. */
static int run(char **out, int argc, const char *const *argv)
{
    snprintf(out_path, sizeof(out_path), "%s/out.txt", tmp());
    fflush(stdout);
    int saved = dup(1);
    int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    dup2(fd, 1);
    close(fd);
    int rc = cli_skills(argc, (char **)argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    fd = open(out_path, O_RDONLY);
    char *buf = rt_xmalloc(65536);
    ssize_t n = read(fd, buf, 65535);
    close(fd);
    buf[n < 0 ? 0 : n] = '\0';
    *out = buf;
    return rc;
}

static void put_skill(const char *home, const char *rel, const char *desc)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/skills", home);
    mkdir(p, 0700);
    const char *slash = strchr(rel, '/');
    if (slash) {
        snprintf(p, sizeof(p), "%s/skills/%.*s", home, (int)(slash - rel), rel);
        mkdir(p, 0700);
    }
    snprintf(p, sizeof(p), "%s/skills/%s", home, rel);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/skills/%s/SKILL.md", home, rel);
    FILE *f = fopen(p, "w");
    ASSERT_NOT_NULL(f);
    fprintf(f, "---\nname: x\ndescription: %s\n---\nBody of %s\n", desc, rel);
    fclose(f);
}

TEST(list_and_inspect)
{
    char home[512];
    snprintf(home, sizeof(home), "%s/h", tmp());
    mkdir(home, 0700);
    setenv("HERMES_HOME", home, 1);
    char *out;
    const char *a0[] = {"skills", "list", NULL};
    ASSERT_EQ(0, run(&out, 2, a0));
    ASSERT_STR_CONTAINS(out, "No skills installed");
    rt_free(out);
    put_skill(home, "mlops/vllm", "Serve models");
    put_skill(home, "alpha", "Top level");
    ASSERT_EQ(0, run(&out, 2, a0));
    ASSERT_STR_CONTAINS(out, "general:\n  alpha");
    ASSERT_STR_CONTAINS(out, "Top level");
    ASSERT_STR_CONTAINS(out, "\nmlops:\n  vllm");
    ASSERT_STR_CONTAINS(out, "2 skills in ");
    rt_free(out);
    const char *a1[] = {"skills", "list", "--category", "mlops", NULL};
    ASSERT_EQ(0, run(&out, 4, a1));
    ASSERT_NULL(strstr(out, "alpha"));
    ASSERT_STR_CONTAINS(out, "1 skill in ");
    rt_free(out);
    const char *a2[] = {"skills", "inspect", "vllm", NULL};
    ASSERT_EQ(0, run(&out, 3, a2));
    ASSERT_STR_CONTAINS(out, "vllm  (mlops/vllm/SKILL.md)");
    ASSERT_STR_CONTAINS(out, "Body of mlops/vllm");
    rt_free(out);
    const char *a3[] = {"skills", "inspect", "ghost", NULL};
    ASSERT_EQ(1, run(&out, 3, a3));
    rt_free(out);
    const char *a4[] = {"skills", "fly", NULL};
    ASSERT_EQ(2, run(&out, 2, a4));
    rt_free(out);
    const char *a5[] = {"skills", "list", "--bogus", NULL};
    ASSERT_EQ(2, run(&out, 3, a5));
    rt_free(out);
    const char *a6[] = {"skills", NULL};
    ASSERT_EQ(2, run(&out, 1, a6));
    rt_free(out);
}

TEST(install_from_a_local_checkout)
{
    char home[512], src[600], p[800];
    snprintf(home, sizeof(home), "%s/h", tmp());
    mkdir(home, 0700);
    setenv("HERMES_HOME", home, 1);
    snprintf(src, sizeof(src), "%s/checkout/my-tool", tmp());
    snprintf(p, sizeof(p), "%s/checkout", tmp());
    mkdir(p, 0700);
    mkdir(src, 0700);
    snprintf(p, sizeof(p), "%s/.git", src);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/SKILL.md", src);
    FILE *f = fopen(p, "w");
    fprintf(f, "---\nname: my-tool\ndescription: Tooling\n---\nDo the thing.\n");
    fclose(f);
    char *out;
    const char *a[] = {"skills", "install", src, "--category", "dev", NULL};
    ASSERT_EQ(0, run(&out, 5, a));
    ASSERT_STR_CONTAINS(out, "installed 'my-tool'");
    rt_free(out);
    snprintf(p, sizeof(p), "%s/skills/dev/my-tool/SKILL.md", home);
    ASSERT_EQ(0, access(p, F_OK));
    snprintf(p, sizeof(p), "%s/skills/dev/my-tool/.git", home);
    ASSERT_NE(0, access(p, F_OK));
    /* again: it exists */
    ASSERT_EQ(1, run(&out, 5, a));
    rt_free(out);
    const char *b[] = {"skills", "install", NULL};
    ASSERT_EQ(2, run(&out, 2, b));
    rt_free(out);
}
