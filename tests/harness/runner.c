/*
 * runner.c — runs the TEST cases of one executable, each in a forked child with a timeout.
 *
 *   test_x              run every case
 *   test_x a b          run cases a and b
 *   test_x --list       list cases
 *   test_x --no-fork a  run a in-process (for gdb)
 * TEST_TIMEOUT (seconds, default 60) bounds each case.
 */
#include "test.h"

#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TESTS 512

static struct {
    const char *name;
    test_fn fn;
} tests[MAX_TESTS];
static int ntests;

void test__register(const char *name, test_fn fn, const char *file)
{
    (void)file;
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

static char tmpdirs[16][256];
static int ntmpdirs;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tmpdirs(void)
{
    for (int i = 0; i < ntmpdirs; i++)
        nftw(tmpdirs[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *test_tmpdir(void)
{
    if (ntmpdirs == 16) {
        fprintf(stderr, "too many tmpdirs in one case\n");
        abort();
    }
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *d = tmpdirs[ntmpdirs];
    snprintf(d, sizeof(tmpdirs[0]), "%s/hermes-test-XXXXXX", base);
    if (!mkdtemp(d)) {
        perror("mkdtemp");
        abort();
    }
    if (ntmpdirs++ == 0)
        atexit(remove_tmpdirs);
    return d;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static bool run_one(int i, bool fork_it, int timeout)
{
    double t0 = now_ms();
    if (!fork_it) {
        tests[i].fn();
        printf("ok   %s (%.0f ms)\n", tests[i].name, now_ms() - t0);
        return true;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return false;
    }
    if (pid == 0) {
        alarm((unsigned)timeout);
        tests[i].fn();
        exit(0); /* exit, not _exit: LeakSanitizer checks at exit */
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        ;
    double ms = now_ms() - t0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        printf("ok   %s (%.0f ms)\n", tests[i].name, ms);
        return true;
    }
    if (WIFSIGNALED(st))
        printf("FAIL %s: %s%s (%.0f ms)\n", tests[i].name, strsignal(WTERMSIG(st)),
               WTERMSIG(st) == SIGALRM ? " (timed out)" : "", ms);
    else
        printf("FAIL %s: exit status %d (%.0f ms)\n", tests[i].name, WEXITSTATUS(st), ms);
    return false;
}

int main(int argc, char **argv)
{
    bool fork_it = true;
    int timeout = 60;
    const char *env = getenv("TEST_TIMEOUT");
    if (env && atoi(env) > 0) /* test code: a bad value just keeps the default */
        timeout = atoi(env);
    int first = 1;
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (strcmp(argv[first], "--list") == 0) {
            for (int i = 0; i < ntests; i++)
                printf("%s\n", tests[i].name);
            return 0;
        }
        if (strcmp(argv[first], "--no-fork") == 0)
            fork_it = false;
    }
    int failed = 0, ran = 0;
    for (int i = 0; i < ntests; i++) {
        bool selected = first == argc;
        for (int a = first; a < argc && !selected; a++)
            selected = strcmp(argv[a], tests[i].name) == 0;
        if (!selected)
            continue;
        ran++;
        if (!run_one(i, fork_it, timeout))
            failed++;
    }
    if (ran == 0) {
        fprintf(stderr, "no test matched\n");
        return 2;
    }
    printf("%d/%d passed\n", ran - failed, ran);
    return failed ? 1 : 0;
}
