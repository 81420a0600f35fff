/*
 * Terminal backends and output shaping, as pure functions: configuration from TERMINAL_*,
 * the exact docker / singularity / ssh / local command lines, shell quoting and the sudo
 * transform as the original does them, and the output cap, noise removal and UTF-8
 * cleaning of tools/terminal/term_output.c.
 */
#include "rt_alloc.h"
#include "rt_buf.h"
#include "term_backend.h"
#include "term_output.h"
#include "test.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static void clear_env(void)
{
    static const char *const vars[] = {
        "TERMINAL_ENV",
        "TERMINAL_CWD",
        "TERMINAL_DOCKER_IMAGE",
        "TERMINAL_SINGULARITY_IMAGE",
        "TERMINAL_SSH_HOST",
        "TERMINAL_SSH_USER",
        "TERMINAL_SSH_PORT",
        "TERMINAL_SSH_KEY",
        "TERMINAL_CONTAINER_CPU",
        "TERMINAL_CONTAINER_MEMORY",
        "TERMINAL_CONTAINER_DISK",
        "TERMINAL_CONTAINER_PERSISTENT",
        "TERMINAL_DOCKER_VOLUMES",
        "TERMINAL_SANDBOX_DIR",
        "TERMINAL_LIFETIME_SECONDS",
        "MSWEA_DOCKER_EXECUTABLE",
        "TERMINAL_SCRATCH_DIR",
        "APPTAINER_CACHEDIR",
    };
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
}

static void expect_argv(char **argv, const char *const *want)
{
    size_t i = 0;
    for (; want[i]; i++) {
        if (!argv[i])
            TEST_FAIL_("argv ends at %zu, want \"%s\"", i, want[i]);
        if (strcmp(argv[i], want[i]) != 0)
            TEST_FAIL_("argv[%zu] = \"%s\", want \"%s\"", i, argv[i], want[i]);
    }
    if (argv[i])
        TEST_FAIL_("argv has extra element %zu \"%s\"", i, argv[i]);
}

/* ------------------------------------------------------------------ config */

TEST(config_defaults_and_errors)
{
    clear_env();
    term_config c;
    char err[256];
    ASSERT_OK(term_config_load(&c, "/h/.hermes", err, sizeof(err)));
    ASSERT_EQ(TERM_BE_LOCAL, c.backend);
    ASSERT_NULL(c.cwd);
    ASSERT_STR_EQ(TERM_DEFAULT_IMAGE, c.docker_image);
    ASSERT_STR_EQ("docker://" TERM_DEFAULT_IMAGE, c.singularity_image);
    ASSERT_STR_EQ("docker", c.docker_exe);
    ASSERT_EQ(22, c.ssh_port);
    ASSERT_TRUE(c.cpu == 1.0);
    ASSERT_EQ(5120, c.memory_mb);
    ASSERT_EQ(51200, c.disk_mb);
    ASSERT_TRUE(c.persistent);
    ASSERT_NULL(c.volumes[0]);
    ASSERT_STR_EQ("/h/.hermes/sandboxes", c.sandbox_dir);
    ASSERT_EQ(300, c.lifetime_s);
    term_config_fini(&c);

    setenv("TERMINAL_ENV", "vagrant", 1);
    ASSERT_EQ(-EINVAL, term_config_load(&c, NULL, err, sizeof(err)));
    ASSERT_STR_EQ("Unknown environment type: vagrant. Use 'local', 'docker', 'singularity', "
                  "'modal', or 'ssh'",
                  err);
    clear_env();
}

TEST(config_from_the_environment)
{
    clear_env();
    setenv("TERMINAL_ENV", "docker", 1);
    setenv("TERMINAL_CWD", "/Users/me/project", 1); /* a host path: not for a container */
    setenv("TERMINAL_CONTAINER_CPU", "1.5", 1);
    setenv("TERMINAL_CONTAINER_MEMORY", "2048.0", 1);
    setenv("TERMINAL_CONTAINER_DISK", "0", 1);
    setenv("TERMINAL_CONTAINER_PERSISTENT", "False", 1);
    setenv("TERMINAL_DOCKER_VOLUMES", "[\" /data:/data \", 5, \"\", \"nocolon\"]", 1);
    setenv("TERMINAL_SANDBOX_DIR", "/sb", 1);
    setenv("TERMINAL_SSH_PORT", "banana", 1);
    term_config c;
    char err[256];
    ASSERT_OK(term_config_load(&c, NULL, err, sizeof(err)));
    ASSERT_EQ(TERM_BE_DOCKER, c.backend);
    ASSERT_STR_EQ("~", c.cwd);
    ASSERT_TRUE(c.cpu == 1.5);
    ASSERT_EQ(2048, c.memory_mb);
    ASSERT_EQ(0, c.disk_mb);
    ASSERT_FALSE(c.persistent);
    ASSERT_STR_EQ("/data:/data", c.volumes[0]);
    ASSERT_STR_EQ("nocolon", c.volumes[1]);
    ASSERT_NULL(c.volumes[2]);
    ASSERT_STR_EQ("/sb", c.sandbox_dir);
    ASSERT_EQ(22, c.ssh_port);
    term_config *d = term_config_dup(&c);
    ASSERT_STR_EQ("/data:/data", d->volumes[0]);
    term_config_free(d);
    term_config_fini(&c);
    setenv("TERMINAL_DOCKER_VOLUMES", "not json", 1);
    ASSERT_OK(term_config_load(&c, NULL, err, sizeof(err)));
    ASSERT_NULL(c.volumes[0]);
    term_config_fini(&c);
    setenv("TERMINAL_ENV", "SSH", 1); /* case does not matter */
    setenv("TERMINAL_CWD", "/Users/me/project", 1);
    ASSERT_OK(term_config_load(&c, NULL, err, sizeof(err)));
    ASSERT_EQ(TERM_BE_SSH, c.backend);
    ASSERT_STR_EQ("/Users/me/project", c.cwd); /* a remote host may have that path */
    term_config_fini(&c);
    clear_env();
}

/* ------------------------------------------------------------------ docker */

TEST(docker_run_command_line_is_the_originals)
{
    clear_env();
    term_config c;
    char err[64];
    ASSERT_OK(term_config_load(&c, "/hh", err, sizeof(err)));
    char *ws = term_docker_dir(&c, "task/../1", "workspace");
    ASSERT_STR_EQ("/hh/sandboxes/docker/task_.._1/workspace", ws);
    char **argv = term_docker_run_argv(&c, "hermes-0011aabb", "~", ws, "/hh/home", false);
    const char *want[] = {"docker",
                          "run",
                          "-d",
                          "--name",
                          "hermes-0011aabb",
                          "-w",
                          "/root",
                          "--read-only",
                          "--cap-drop",
                          "ALL",
                          "--security-opt",
                          "no-new-privileges",
                          "--pids-limit",
                          "256",
                          "--tmpfs",
                          "/tmp:rw,noexec,nosuid,size=512m",
                          "--tmpfs",
                          "/var/tmp:rw,noexec,nosuid,size=256m",
                          "--tmpfs",
                          "/run:rw,noexec,nosuid,size=64m",
                          "-v",
                          "/hh/sandboxes/docker/task_.._1/workspace:/workspace",
                          "-v",
                          "/hh/home:/root",
                          "--cpus",
                          "1.0",
                          "--memory",
                          "5120m",
                          TERM_DEFAULT_IMAGE,
                          "sleep",
                          "2h",
                          NULL};
    expect_argv(argv, want);
    term_argv_free(argv);
    rt_free(ws);

    /* Not persistent: tmpfs workspaces; disk quota when supported; user volumes last. */
    c.persistent = false;
    c.cpu = 0.5;
    term_argv_free(c.volumes);
    c.volumes = rt_xcalloc(3, sizeof(char *));
    c.volumes[0] = rt_xstrdup("/srv/data:/data:ro");
    c.volumes[1] = rt_xstrdup("bad");
    argv = term_docker_run_argv(&c, "n", "/workspace", NULL, NULL, true);
    const char *want2[] = {"docker",
                           "run",
                           "-d",
                           "--name",
                           "n",
                           "-w",
                           "/workspace",
                           "--read-only",
                           "--cap-drop",
                           "ALL",
                           "--security-opt",
                           "no-new-privileges",
                           "--pids-limit",
                           "256",
                           "--tmpfs",
                           "/tmp:rw,noexec,nosuid,size=512m",
                           "--tmpfs",
                           "/var/tmp:rw,noexec,nosuid,size=256m",
                           "--tmpfs",
                           "/run:rw,noexec,nosuid,size=64m",
                           "--tmpfs",
                           "/workspace:rw,exec,size=10g",
                           "--tmpfs",
                           "/home:rw,exec,size=1g",
                           "--tmpfs",
                           "/root:rw,exec,size=1g",
                           "--cpus",
                           "0.5",
                           "--memory",
                           "5120m",
                           "--storage-opt",
                           "size=51200m",
                           "-v",
                           "/srv/data:/data:ro",
                           TERM_DEFAULT_IMAGE,
                           "sleep",
                           "2h",
                           NULL};
    expect_argv(argv, want2);
    term_argv_free(argv);
    term_config_fini(&c);
}

TEST(exec_command_lines)
{
    term_config c = {.backend = TERM_BE_DOCKER};
    term_target *t = term_target_new(&c, "docker", "c0ffee");
    char **argv = term_exec_argv(t, "/workspace", "ls -la", false, false);
    const char *w1[] = {"docker", "exec", "-w",     "/workspace", "c0ffee",
                        "bash",   "-lc",  "ls -la", NULL};
    expect_argv(argv, w1);
    term_argv_free(argv);
    /* docker exec -w does not expand ~: a cd goes in front. */
    argv = term_exec_argv(t, "~/my dir", "make", true, false);
    const char *w2[] = {
        "docker", "exec", "-i", "-w", "/", "c0ffee", "bash", "-lc", "cd ~/'my dir' && make", NULL};
    expect_argv(argv, w2);
    term_argv_free(argv);
    term_target_free(t);

    c.backend = TERM_BE_SINGULARITY;
    t = term_target_new(&c, "apptainer", "hermes_abc");
    argv = term_exec_argv(t, "~", "id", false, false);
    const char *w3[] = {"apptainer", "exec", "--pwd",      "/tmp", "instance://hermes_abc",
                        "bash",      "-c",   "cd ~ && id", NULL};
    expect_argv(argv, w3);
    term_argv_free(argv);
    term_target *d = term_target_dup(t);
    term_target_free(t);
    argv = term_exec_argv(d, "/data", "id", false, true);
    const char *w4[] = {"apptainer",
                        "exec",
                        "--pwd",
                        "/data",
                        "instance://hermes_abc",
                        "bash",
                        "-c",
                        "echo \"HERMES_PID=$$\"; id",
                        NULL};
    expect_argv(argv, w4);
    term_argv_free(argv);
    term_target_free(d);

    c.backend = TERM_BE_LOCAL;
    setenv("SHELL", "/bin/sh", 1);
    t = term_target_new(&c, NULL, NULL);
    argv = term_exec_argv(t, "/x", "echo hi", false, true);
    const char *w5[] = {"/bin/sh", "-lic", "echo hi", NULL};
    expect_argv(argv, w5);
    term_argv_free(argv);
    setenv("SHELL", "relative/shell", 1); /* not absolute: bash, as the original */
    argv = term_exec_argv(t, "/x", "echo hi", false, true);
    const char *w6[] = {access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh", "-lic", "echo hi",
                        NULL};
    expect_argv(argv, w6);
    term_argv_free(argv);
    term_target_free(t);
}

TEST(ssh_command_lines)
{
    term_config c = {.backend = TERM_BE_SSH,
                     .ssh_host = "example.org",
                     .ssh_user = "bob",
                     .ssh_port = 2222,
                     .ssh_key = "/k/id_ed25519",
                     .control_dir = "/tmp/hermes-ssh"};
    term_target *t = term_target_new(&c, NULL, NULL);
    ASSERT_STR_EQ("/tmp/hermes-ssh/bob@example.org:2222.sock", t->ssh_control);
    char **argv = term_exec_argv(t, "/srv/app", "echo 'hi there' && ls", false, false);
    const char *want[] = {"ssh",
                          "-o",
                          "ControlPath=/tmp/hermes-ssh/bob@example.org:2222.sock",
                          "-o",
                          "ControlMaster=auto",
                          "-o",
                          "ControlPersist=300",
                          "-o",
                          "BatchMode=yes",
                          "-o",
                          "StrictHostKeyChecking=accept-new",
                          "-o",
                          "ConnectTimeout=10",
                          "-p",
                          "2222",
                          "-i",
                          "/k/id_ed25519",
                          "bob@example.org",
                          "bash -c 'cd /srv/app && echo '\"'\"'hi there'\"'\"' && ls'",
                          NULL};
    expect_argv(argv, want);
    term_argv_free(argv);
    /* Port 22 and no key: neither -p nor -i; extra args before the destination. */
    c.ssh_port = 22;
    c.ssh_key = NULL;
    term_target *t2 = term_target_new(&c, NULL, NULL);
    const char *extra[] = {"-O", "exit", NULL};
    argv = term_ssh_argv(t2, extra, NULL);
    ASSERT_EQ(16, term_argv_len(argv));
    ASSERT_STR_EQ("-O", argv[13]);
    ASSERT_STR_EQ("exit", argv[14]);
    ASSERT_STR_EQ("bob@example.org", argv[15]);
    term_argv_free(argv);
    term_target_free(t2);
    term_target_free(t);
    char *r = term_ssh_remote("~", "pwd", false);
    ASSERT_STR_EQ("bash -c 'cd ~ && pwd'", r);
    rt_free(r);
    r = term_ssh_remote("/a b", "pwd", true);
    ASSERT_STR_EQ("bash -c 'echo \"HERMES_PID=$$\"; cd '\"'\"'/a b'\"'\"' && pwd'", r);
    rt_free(r);
    r = term_remote_kill_command(42);
    ASSERT_STR_EQ("kill -TERM -42 2>/dev/null || kill -TERM 42 2>/dev/null", r);
    rt_free(r);
}

TEST(singularity_command_lines)
{
    clear_env();
    term_config c;
    char err[64];
    ASSERT_OK(term_config_load(&c, "/hh", err, sizeof(err)));
    char **argv = term_singularity_start_argv(&c, "apptainer", "/cache/img.sif",
                                              "/s/hermes-overlays/overlay-t", "hermes_0123");
    const char *want[] = {"apptainer",
                          "instance",
                          "start",
                          "--containall",
                          "--no-home",
                          "--overlay",
                          "/s/hermes-overlays/overlay-t",
                          "--memory",
                          "5120M",
                          "--cpus",
                          "1.0",
                          "/cache/img.sif",
                          "hermes_0123",
                          NULL};
    expect_argv(argv, want);
    term_argv_free(argv);
    c.persistent = false;
    c.memory_mb = 0;
    c.cpu = 0;
    argv = term_singularity_start_argv(&c, "singularity", "docker://x", NULL, "i");
    const char *want2[] = {"singularity",  "instance",  "start",
                           "--containall", "--no-home", "--writable-tmpfs",
                           "docker://x",   "i",         NULL};
    expect_argv(argv, want2);
    term_argv_free(argv);
    char *sif = term_singularity_sif("/scratch/u", "docker://nikolaik/python-nodejs:py3");
    ASSERT_STR_EQ("/scratch/u/.apptainer/nikolaik-python-nodejs-py3.sif", sif);
    rt_free(sif);
    ASSERT_NULL(term_singularity_sif("/s", "/local/image.sif"));
    setenv("TERMINAL_SCRATCH_DIR", "/my/scratch", 1);
    char *s = term_singularity_scratch(&c);
    ASSERT_STR_EQ("/my/scratch", s);
    rt_free(s);
    term_config_fini(&c);
    clear_env();
}

/* ------------------------------------------------------------------ helpers */

TEST(shell_quote_is_shlex_quote)
{
    static const char *const cases[][2] = {
        {"", "''"},
        {"abc", "abc"},
        {"a-b_c.d/e:f,g@h%i+j=k", "a-b_c.d/e:f,g@h%i+j=k"},
        {"a b", "'a b'"},
        {"it's", "'it'\"'\"'s'"},
        {"$HOME", "'$HOME'"},
        {"é", "'é'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *q = term_shell_quote(cases[i][0]);
        ASSERT_STR_EQ(cases[i][1], q);
        rt_free(q);
    }
}

TEST(pyfloat_format)
{
    char b[64];
    term_fmt_pyfloat(1, b, sizeof(b));
    ASSERT_STR_EQ("1.0", b);
    term_fmt_pyfloat(0.5, b, sizeof(b));
    ASSERT_STR_EQ("0.5", b);
    term_fmt_pyfloat(2.25, b, sizeof(b));
    ASSERT_STR_EQ("2.25", b);
    term_fmt_pyfloat(0.1, b, sizeof(b));
    ASSERT_STR_EQ("0.1", b);
    term_fmt_pyfloat(16, b, sizeof(b));
    ASSERT_STR_EQ("16.0", b);
}

TEST(sudo_transform)
{
    ASSERT_FALSE(term_has_sudo("visudo; sudoers; pseudo"));
    ASSERT_TRUE(term_has_sudo("sudo apt update"));
    ASSERT_TRUE(term_has_sudo("ls && sudo -n true"));
    ASSERT_NULL(term_sudo_transform("ls", "pw"));
    ASSERT_NULL(term_sudo_transform("sudo ls", ""));
    ASSERT_NULL(term_sudo_transform("sudo ls", NULL));
    char *t = term_sudo_transform("sudo apt update && sudo apt install x; visudo", "p'w d");
    ASSERT_STR_EQ("echo 'p'\"'\"'w d' | sudo -S -p '' apt update && echo 'p'\"'\"'w d' | sudo -S "
                  "-p '' apt install x; visudo",
                  t);
    rt_free(t);
}

TEST(which_and_safe_component)
{
    char *p = term_which("sh");
    ASSERT_NOT_NULL(p);
    ASSERT_EQ('/', p[0]);
    rt_free(p);
    ASSERT_NULL(term_which("no-such-program-hermes-xyz"));
    ASSERT_NULL(term_which(""));
    char *s = term_safe_component("../a b/c");
    ASSERT_STR_EQ("_._a_b_c", s);
    rt_free(s);
    s = term_safe_component(NULL);
    ASSERT_STR_EQ("default", s);
    rt_free(s);
    char *argv[] = {"a b", "c", NULL};
    char *j = term_argv_join(argv);
    ASSERT_STR_EQ("'a b' c", j);
    rt_free(j);
    ASSERT_STR_EQ("ssh", term_backend_name(TERM_BE_SSH));
}

/* ------------------------------------------------------------------ output */

/* The original's cap over a string of n copies of "y\n" (ASCII: chars == bytes). */
static char *python_cap_of_yes(size_t n)
{
    size_t total = 2 * n;
    rt_buf b;
    rt_buf_init(&b, total + 256);
    for (size_t i = 0; i < TERM_OUT_HEAD_CHARS; i++)
        (void)rt_buf_append(&b, i % 2 ? "\n" : "y", 1);
    (void)rt_buf_printf(&b,
                        "\n\n... [OUTPUT TRUNCATED - %zu chars omitted out of %zu total] ...\n\n",
                        total - TERM_OUT_MAX_CHARS, total);
    for (size_t i = 0; i < TERM_OUT_TAIL_CHARS; i++)
        (void)rt_buf_append(&b, i % 2 ? "\n" : "y", 1);
    /* .strip() takes the final newline */
    b.len--;
    b.data[b.len] = '\0';
    return rt_buf_steal(&b, NULL);
}

TEST(cap_matches_the_original_for_small_and_huge_output)
{
    /* Exactly at the cap: untouched. */
    term_outbuf ob;
    term_outbuf_init(&ob);
    char *chunk = rt_xmalloc(65536);
    for (size_t i = 0; i < 65536; i++)
        chunk[i] = i % 2 ? '\n' : 'y';
    term_outbuf_append(&ob, chunk, TERM_OUT_MAX_CHARS);
    char *r = term_outbuf_finish(&ob, NULL);
    ASSERT_EQ(TERM_OUT_MAX_CHARS - 1, strlen(r)); /* only the final newline stripped */
    rt_free(r);
    term_outbuf_fini(&ob);
    /* 5,000,000 bytes in 64 KiB chunks, as `yes | head -c 5000000` prints them. */
    size_t total = 5000000, done = 0;
    term_outbuf_init(&ob);
    while (done < total) {
        size_t k = total - done < 65536 ? total - done : 65536;
        term_outbuf_append(&ob, chunk, k);
        done += k;
    }
    ASSERT_LT(ob.head_len, (size_t)TERM_OUT_HEAD_BYTES + 1);
    r = term_outbuf_finish(&ob, NULL);
    char *want = python_cap_of_yes(total / 2);
    ASSERT_STR_EQ(want, r);
    rt_free(want);
    rt_free(r);
    /* The same output through term_cap_output directly. */
    term_outbuf_fini(&ob);
    /* In between (whole in head + ring, still over the cap). */
    term_outbuf_init(&ob);
    for (done = 0; done < 400000; done += 40000)
        term_outbuf_append(&ob, chunk, 40000);
    r = term_outbuf_finish(&ob, NULL);
    want = python_cap_of_yes(200000);
    ASSERT_STR_EQ(want, r);
    rt_free(want);
    rt_free(r);
    term_outbuf_fini(&ob);
    rt_free(chunk);
}

TEST(multibyte_characters_are_counted_as_characters)
{
    /* 60,000 'é' (2 bytes each): 10,000 characters over the cap. */
    size_t n = 60000;
    rt_buf b;
    rt_buf_init(&b, 2 * n + 1);
    for (size_t i = 0; i < n; i++)
        (void)rt_buf_append(&b, "é", 2);
    char *capped = term_cap_output(b.data, b.len);
    ASSERT_STR_CONTAINS(capped, "[OUTPUT TRUNCATED - 10000 chars omitted out of 60000 total]");
    ASSERT_EQ(2 * 50000 + strlen("\n\n... [OUTPUT TRUNCATED - 10000 chars omitted out of 60000 "
                                 "total] ...\n\n"),
              strlen(capped));
    rt_free(capped);
    rt_buf_fini(&b);
}

TEST(noise_lines_notes_tips_and_masks)
{
    const char *raw = "bash: cannot set terminal process group (-1): Inappropriate ioctl for "
                      "device\nbash: no job control in this shell\nhello\nbash: no job control "
                      "in this shell\n";
    term_outbuf ob;
    term_outbuf_init(&ob);
    term_outbuf_append(&ob, raw, strlen(raw));
    char *r = term_outbuf_finish(&ob, &(term_finish_opts){.strip_noise = true});
    ASSERT_STR_EQ("hello\nbash: no job control in this shell", r); /* only leading lines */
    rt_free(r);
    r = term_outbuf_finish(&ob, &(term_finish_opts){.note = TERM_NOTE_INTERRUPTED});
    ASSERT_STR_CONTAINS(r, "bash: cannot set terminal");
    ASSERT_STR_CONTAINS(r, "shell\n\n[Command interrupted — user sent a new message]");
    rt_free(r);
    term_outbuf_fini(&ob);

    term_outbuf_init(&ob);
    const char *s = "pw=hunter22 sudo: a password is required\n";
    term_outbuf_append(&ob, s, strlen(s));
    r = term_outbuf_finish(&ob, &(term_finish_opts){.sudo_tip = true, .mask = "hunter22"});
    ASSERT_STR_EQ("pw=*** sudo: a password is required\n\n\n💡 Tip: To enable sudo over "
                  "messaging, add SUDO_PASSWORD to ~/.hermes/.env on the agent machine.",
                  r);
    rt_free(r);
    term_outbuf_fini(&ob);

    /* Noise only: nothing left. Empty output: "". */
    char only[] = "bash: no job control in this shell";
    ASSERT_EQ(0, term_strip_noise(only, strlen(only)));
    term_outbuf_init(&ob);
    r = term_outbuf_finish(&ob, NULL);
    ASSERT_STR_EQ("", r);
    rt_free(r);
    term_outbuf_fini(&ob);
}

TEST(secrets_in_output_are_redacted)
{
    term_outbuf ob;
    term_outbuf_init(&ob);
    const char *s = "OPENAI_API_KEY=sk-proj-abc123def456ghi789jkl012\n";
    term_outbuf_append(&ob, s, strlen(s));
    char *r = term_outbuf_finish(&ob, NULL);
    ASSERT_STR_EQ("OPENAI_API_KEY=***", r);
    rt_free(r);
    term_outbuf_fini(&ob);
}

TEST(utf8_cleaning)
{
    size_t n;
    char *c = term_utf8_clean("a\xff"
                              "b\0c\xe2\x82"
                              "d\xf0\x9f\x98\x80\xed\xa0\x80",
                              15, &n);
    /* \xff → U+FFFD; NUL dropped; truncated € → one U+FFFD; 😀 kept; a surrogate is 3. */
    ASSERT_STR_EQ("a\xEF\xBF\xBD"
                  "bc\xEF\xBF\xBD"
                  "d\xf0\x9f\x98\x80\xEF\xBF\xBD\xEF\xBF\xBD"
                  "\xEF\xBF\xBD",
                  c);
    ASSERT_EQ(strlen(c), n);
    rt_free(c);
    ASSERT_EQ(3, term_utf8_count("aéb", 4));
    ASSERT_EQ(3, term_utf8_prefix("aéb", 4, 2));
    ASSERT_EQ(1, term_utf8_suffix("aéb", 4, 2));
    char *m = term_mask_secret("abc abcd xabcdx", "abcd");
    ASSERT_STR_EQ("abc *** x***x", m);
    rt_free(m);
    m = term_mask_secret("abc", "ab"); /* too short to mask safely */
    ASSERT_STR_EQ("abc", m);
    rt_free(m);
    char ws[] = " \t\n x y \x1c\n";
    ASSERT_STR_EQ("x y", term_strip(ws));
}
