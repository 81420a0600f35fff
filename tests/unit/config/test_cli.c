/* `hermes config` through the built binary, with HERMES_HOME in a temporary directory. */
#include "cfg_test.h"
#include "rt_buf.h"
#include "test.h"

#include <signal.h>
#include <time.h>

typedef struct run {
    int status; /* exit status, or 128 + signal */
    char *out, *err;
} run;

static void run_free(run *r)
{
    rt_free(r->out);
    rt_free(r->err);
}

/* Run hermes with a clean environment: PATH, HOME and HERMES_HOME = home, sanitizer options,
 * plus env[] ("NAME=value", NULL-terminated, may be NULL). */
static run hermes(const char *home, const char *const *env, const char *const *args)
{
    int po[2], pe[2];
    ASSERT_OK(pipe(po));
    ASSERT_OK(pipe(pe));
    char *envp[32];
    int ne = 0;
    envp[ne++] = rt_xasprintf("HERMES_HOME=%s", home);
    envp[ne++] = rt_xasprintf("HOME=%s", home);
    envp[ne++] = rt_xstrdup("PATH=/usr/bin:/bin");
    static const char *const keep[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                                       "TSAN_OPTIONS"};
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        if (getenv(keep[i]))
            envp[ne++] = rt_xasprintf("%s=%s", keep[i], getenv(keep[i]));
    for (int i = 0; env && env[i]; i++) {
        ASSERT_LT(ne, 30);
        envp[ne++] = rt_xstrdup(env[i]);
    }
    envp[ne] = NULL;
    char *argv[16];
    int na = 0;
    argv[na++] = (char *)HERMES_BIN;
    for (int i = 0; args[i]; i++) {
        ASSERT_LT(na, 15);
        argv[na++] = (char *)args[i];
    }
    argv[na] = NULL;
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]), close(pe[0]), close(po[1]), close(pe[1]);
        execve(HERMES_BIN, argv, envp);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    rt_buf bo, be;
    rt_buf_init(&bo, 1u << 20);
    rt_buf_init(&be, 1u << 20);
    struct pollfd pf[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    for (int spins = 0; open_fds > 0 && spins < 100000; spins++) { /* bounded */
        ASSERT_GE(poll(pf, 2, 20000), 1);
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP)))
                continue;
            char buf[4096];
            ssize_t n = read(pf[i].fd, buf, sizeof(buf));
            if (n <= 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
            } else {
                ASSERT_OK(rt_buf_append(i ? &be : &bo, buf, (size_t)n));
            }
        }
    }
    ASSERT_EQ(0, open_fds);
    int st;
    ASSERT_EQ(pid, waitpid(pid, &st, 0));
    for (int i = 0; i < ne; i++)
        rt_free(envp[i]);
    run r = {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), rt_buf_steal(&bo, NULL),
             rt_buf_steal(&be, NULL)};
    return r;
}

#define HERMES(home, ...) hermes((home), NULL, (const char *const[]){__VA_ARGS__, NULL})

static void expect_ok(run *r)
{
    if (r->status != 0)
        TEST_FAIL_("hermes exited %d\nstdout:\n%s\nstderr:\n%s", r->status, r->out, r->err);
}

TEST(paths)
{
    char *home = tmp_dir();
    run r = HERMES(home, "config", "path");
    expect_ok(&r);
    char *want = rt_xasprintf("%s/config.yaml\n", home);
    ASSERT_STR_EQ(want, r.out);
    rt_free(want);
    run_free(&r);
    r = HERMES(home, "config", "env-path");
    expect_ok(&r);
    want = rt_xasprintf("%s/.env\n", home);
    ASSERT_STR_EQ(want, r.out);
    rt_free(want);
    run_free(&r);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(secrets_go_to_dotenv_0600_and_are_never_shown)
{
    static const char secret[] = "sk-or-v1-9f8e7d6c5b4a39281706f5e4d3c2b1a0";
    char *home = tmp_dir();
    run r = HERMES(home, "config", "set", "OPENROUTER_API_KEY", secret);
    expect_ok(&r);
    ASSERT_STR_CONTAINS(r.out, "✓ Set OPENROUTER_API_KEY in ");
    ASSERT_FALSE(strstr(r.out, secret));
    run_free(&r);
    char *env = slurp2(home, ".env");
    ASSERT_NOT_NULL(env);
    ASSERT_STR_EQ("OPENROUTER_API_KEY=sk-or-v1-9f8e7d6c5b4a39281706f5e4d3c2b1a0\n", env);
    rt_free(env);
    char *p = rt_xasprintf("%s/.env", home);
    struct stat st;
    ASSERT_OK(stat(p, &st));
    ASSERT_EQ(0600, st.st_mode & 0777);
    rt_free(p);
    ASSERT_NULL(slurp2(home, "config.yaml")); /* nothing went into config.yaml */
    /* the original's quirk, fixed: OPENAI_API_KEY and home channels also go to .env */
    r = HERMES(home, "config", "set", "OPENAI_API_KEY", "sk-proj-abcdefghijklmnopqrstuvwxyz");
    expect_ok(&r);
    run_free(&r);
    r = HERMES(home, "config", "set", "MATRIX_HOME_ROOM", "!room:example.org");
    expect_ok(&r);
    run_free(&r);
    r = HERMES(home, "config", "set", "github_token", "ghp_abcdefghijklmnopqrstuvwxyz0123");
    expect_ok(&r); /* lower-case names of known variables are upper-cased, as before */
    run_free(&r);
    ASSERT_NULL(slurp2(home, "config.yaml"));
    /* a secret written into config.yaml by hand is masked too */
    write_str(home, "config.yaml", "model:\n  api_key: sk-yaml-secret-0123456789abcdef\n");
    r = HERMES(home, "config");
    expect_ok(&r);
    ASSERT_FALSE(strstr(r.out, secret));
    ASSERT_FALSE(strstr(r.out, "sk-proj-abcdefghijklmnopqrstuvwxyz"));
    ASSERT_FALSE(strstr(r.out, "ghp_abcdefghijklmnopqrstuvwxyz0123"));
    ASSERT_FALSE(strstr(r.out, "sk-yaml-secret-0123456789abcdef"));
    ASSERT_STR_CONTAINS(r.out, "sk-or-...b1a0");
    ASSERT_STR_CONTAINS(r.out, "sk-yam...cdef");
    ASSERT_STR_CONTAINS(r.out, "!room:example.org"); /* not a secret */
    ASSERT_STR_CONTAINS(r.out, "OPENROUTER_API_KEY");
    ASSERT_FALSE(strstr(r.err, secret));
    run_free(&r);
    env = slurp2(home, ".env");
    ASSERT_STR_CONTAINS(env, "OPENAI_API_KEY=sk-proj-");
    ASSERT_STR_CONTAINS(env, "MATRIX_HOME_ROOM=!room:example.org\n");
    ASSERT_STR_CONTAINS(env, "GITHUB_TOKEN=ghp_");
    rt_free(env);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(golden_edits_keep_comments)
{
    char *home = tmp_dir();
    char *in = slurp(HM_TEST_DATA "/set_input.yaml");
    write_str(home, "config.yaml", in);
    static const char *const sets[][2] = {
        {"terminal.backend", "docker"},    {"terminal.timeout", "300"},
        {"memory.nudge_interval", "0"},    {"tts.elevenlabs.voice_id", "abc"},
        {"code_execution.timeout", "600"}, {"model", "anthropic/claude-sonnet-4"},
        {"display.tool_progress", "new"},  {"toolsets", "[web, terminal]"},
        {"timezone", "Europe/Berlin"},     {"agent.system_prompt", "You are: careful #1"},
        {"compression.threshold", "0.5"},  {"stt.enabled", "no"},
    };
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        run r = HERMES(home, "config", "set", sets[i][0], sets[i][1]);
        expect_ok(&r);
        run_free(&r);
    }
    char *got = slurp2(home, "config.yaml");
    char *want = slurp(HM_TEST_DATA "/set_expected.yaml");
    ASSERT_STR_EQ(want, got);
    rt_free(got);
    rt_free(want);
    got = slurp2(home, ".env"); /* terminal.backend and .timeout are mirrored, as before */
    want = slurp(HM_TEST_DATA "/set_expected.env");
    ASSERT_STR_EQ(want, got);
    rt_free(got);
    rt_free(want);
    /* only the files we expect: no temporary files left behind */
    ASSERT_EQ(0, count_entries_with(home, ".tmp"));
    ASSERT_EQ(0, count_entries_with(home, "XXXXXX"));
    run r = HERMES(home, "config", "check");
    expect_ok(&r);
    run_free(&r);
    rt_free(in);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(routing_terminal_timeout_to_yaml_and_mirror)
{
    char *home = tmp_dir();
    run r = HERMES(home, "config", "set", "terminal.timeout", "240");
    expect_ok(&r);
    ASSERT_STR_CONTAINS(r.out, "✓ Set terminal.timeout = 240 in ");
    run_free(&r);
    char *y = slurp2(home, "config.yaml"), *e = slurp2(home, ".env");
    ASSERT_STR_EQ("terminal:\n  timeout: 240\n", y);
    ASSERT_STR_EQ("TERMINAL_TIMEOUT=240\n", e);
    rt_free(y);
    rt_free(e);
    /* a secret config key goes to .env as its variable */
    r = HERMES(home, "config", "set", "terminal.sudo_password", "hunter2-correct-horse");
    expect_ok(&r);
    ASSERT_STR_CONTAINS(r.out, "SUDO_PASSWORD");
    ASSERT_FALSE(strstr(r.out, "hunter2-correct-horse"));
    run_free(&r);
    y = slurp2(home, "config.yaml");
    ASSERT_FALSE(strstr(y, "hunter2"));
    rt_free(y);
    e = slurp2(home, ".env");
    ASSERT_STR_CONTAINS(e, "SUDO_PASSWORD=hunter2-correct-horse\n");
    rt_free(e);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(unknown_and_mistyped_keys_are_refused)
{
    char *home = tmp_dir();
    write_str(home, "config.yaml", "terminal:\n  backend: local\n");
    run r = HERMES(home, "config", "set", "terminal.bakend", "docker");
    ASSERT_EQ(1, r.status);
    ASSERT_STR_CONTAINS(r.err, "unknown key 'terminal.bakend' (did you mean 'terminal.backend'?)");
    run_free(&r);
    r = HERMES(home, "config", "set", "terminal.timeout", "soon");
    ASSERT_EQ(1, r.status);
    ASSERT_STR_CONTAINS(r.err, "'terminal.timeout' should be an integer, not 'soon'");
    run_free(&r);
    r = HERMES(home, "config", "set", "terminal", "docker");
    ASSERT_EQ(1, r.status);
    ASSERT_STR_CONTAINS(r.err, "section");
    run_free(&r);
    r = HERMES(home, "config", "set", "MATRIX_ACCES_TOKEN", "x");
    ASSERT_EQ(1, r.status);
    ASSERT_STR_CONTAINS(r.err, "did you mean 'MATRIX_ACCESS_TOKEN'?");
    run_free(&r);
    r = HERMES(home, "config", "set", "PATH", "/tmp/evil");
    ASSERT_EQ(1, r.status);
    ASSERT_STR_CONTAINS(r.err, "refusing to write PATH");
    run_free(&r);
    char *y = slurp2(home, "config.yaml");
    ASSERT_STR_EQ("terminal:\n  backend: local\n", y); /* untouched */
    rt_free(y);
    ASSERT_NULL(slurp2(home, ".env"));
    r = HERMES(home, "config", "set", "terminal.bakend", "docker", "--force");
    expect_ok(&r);
    run_free(&r);
    y = slurp2(home, "config.yaml");
    ASSERT_STR_EQ("terminal:\n  backend: local\n  bakend: docker\n", y);
    rt_free(y);
    r = HERMES(home, "config", "set", "only-one-arg");
    ASSERT_EQ(2, r.status);
    ASSERT_STR_CONTAINS(r.err, "Usage: hermes config set KEY VALUE");
    run_free(&r);
    r = HERMES(home, "config", "frobnicate");
    ASSERT_EQ(2, r.status);
    ASSERT_STR_CONTAINS(r.out, "Unknown config command: frobnicate");
    run_free(&r);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(check_exit_codes_and_messages)
{
    char *home = tmp_dir();
    run r = HERMES(home, "config", "check");
    expect_ok(&r);
    ASSERT_STR_CONTAINS(r.out, "No errors");
    run_free(&r);
    write_str(home, "config.yaml", "terminal:\n  backend: local\n  bakend: docker\n");
    write_str(home, ".env", "MATRIX_ACCESS_TOKEN=changeme\n");
    r = HERMES(home, "config", "check");
    ASSERT_EQ(1, r.status);
    ASSERT_STR_CONTAINS(r.out, "config.yaml:3: unknown key 'terminal.bakend' (did you mean "
                               "'terminal.backend'?)");
    ASSERT_STR_CONTAINS(r.out, "MATRIX_ACCESS_TOKEN is set to a placeholder value");
    ASSERT_STR_CONTAINS(r.out, "2 error(s)");
    run_free(&r);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(bad_yaml_is_reported_and_never_overwritten)
{
    char *home = tmp_dir();
    static const char bad[] = "terminal:\n  backend: local\n   timeout: 3\n";
    write_str(home, "config.yaml", bad);
    run r = HERMES(home, "config");
    ASSERT_EQ(1, r.status);
    char *want = rt_xasprintf("%s/config.yaml:3:", home);
    ASSERT_STR_CONTAINS(r.err, want);
    ASSERT_STR_CONTAINS(r.err, "mapping values are not allowed");
    run_free(&r);
    r = HERMES(home, "config", "set", "terminal.timeout", "5");
    ASSERT_EQ(1, r.status);
    ASSERT_STR_CONTAINS(r.err, want);
    run_free(&r);
    r = HERMES(home, "config", "check");
    ASSERT_EQ(1, r.status);
    run_free(&r);
    char *y = slurp2(home, "config.yaml");
    ASSERT_STR_EQ(bad, y);
    rt_free(y);
    /* invalid UTF-8 in the file */
    write_str(home, "config.yaml", "a: \xff\n");
    r = HERMES(home, "config", "check");
    ASSERT_EQ(1, r.status);
    ASSERT_STR_CONTAINS(r.err, "UTF-8");
    run_free(&r);
    rt_free(want);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(show_reports_sources)
{
    char *home = tmp_dir();
    write_str(home, "config.yaml", "terminal:\n  backend: docker\n  timeout: 60\n");
    write_str(home, ".env", "TERMINAL_TIMEOUT=90\n");
    const char *const env[] = {"CONTEXT_COMPRESSION_THRESHOLD=0.7", NULL};
    run r = hermes(home, env, (const char *const[]){"config", NULL});
    expect_ok(&r);
    ASSERT_STR_CONTAINS(r.out, "terminal.backend");
    ASSERT_STR_CONTAINS(r.out, "config.yaml:2");
    ASSERT_STR_CONTAINS(r.out, ".env TERMINAL_TIMEOUT");
    ASSERT_STR_CONTAINS(r.out, "env CONTEXT_COMPRESSION_THRESHOLD");
    ASSERT_STR_CONTAINS(r.out, "anthropic/claude-opus-4.6 (default)");
    run_free(&r);
    rm_rf(home, 0);
    rt_free(home);
}
