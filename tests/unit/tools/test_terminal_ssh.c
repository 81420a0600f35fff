/*
 * The ssh backend against a real OpenSSH server (Debian's openssh-server) that each case
 * starts on 127.0.0.1 on a free high port, with a host key and a client key generated
 * into the case's temp dir. The client is the real ssh, through a wrapper on PATH that
 * only keeps it away from the user's ~/.ssh (config and known_hosts).
 *
 * Cases skip loudly, saying why, when sshd, ssh or ssh-keygen is missing or sshd cannot
 * start here. At the end of each case the ControlMaster is closed, sshd is stopped, and
 * no process of ours may remain.
 */
#include "test_terminal_harness.c"

#include "rt_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>

static struct {
    char dir[512]; /* everything of this case */
    char user[64]; /* we log in as ourselves */
    char ctl[640]; /* the ControlPath */
    int port;
    pid_t sshd; /* the listener (leader of its own session) */
} sv;

static void on_abort(void);

static const char *find_exe(const char *a, const char *b)
{
    if (access(a, X_OK) == 0)
        return a;
    if (b && access(b, X_OK) == 0)
        return b;
    return NULL;
}

/* Run argv to completion (blocking: the test's own thread), output to log. */
static int run_quiet(const char *const argv[], const char *log)
{
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    ASSERT_EQ(pid, waitpid(pid, &st, 0));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
    socklen_t n = sizeof(a);
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &n));
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static void show_log(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f))
        printf("    %s", line);
    if (f)
        fclose(f);
}

/* Start sshd; false (and a printed reason) when this machine cannot. */
static bool sshd_start(void)
{
    const char *sshd = find_exe("/usr/sbin/sshd", "/usr/bin/sshd");
    const char *keygen = find_exe("/usr/bin/ssh-keygen", NULL);
    const char *ssh = find_exe("/usr/bin/ssh", NULL);
    if (!sshd || !keygen || !ssh) {
        printf("SKIP: the ssh backend test needs Debian's openssh-server and openssh-client "
               "(sshd=%s ssh-keygen=%s ssh=%s)\n",
               sshd ? sshd : "missing", keygen ? keygen : "missing", ssh ? ssh : "missing");
        return false;
    }
    snprintf(sv.dir, sizeof(sv.dir), "%s", test_tmpdir());
    th_abort_hook = on_abort;
    signal(SIGABRT, th_on_abort);
    ASSERT_OK(chmod(sv.dir, 0700));
    struct passwd *pw = getpwuid(geteuid());
    ASSERT_NOT_NULL(pw);
    snprintf(sv.user, sizeof(sv.user), "%s", pw->pw_name);
    char path[2048], log[1024], cfg[1024], hk[1024], ck[1024], ak[1024];
    snprintf(log, sizeof(log), "%s/sshd.log", sv.dir);
    snprintf(hk, sizeof(hk), "%s/host_key", sv.dir);
    snprintf(ck, sizeof(ck), "%s/client_key", sv.dir);
    snprintf(ak, sizeof(ak), "%s/authorized_keys", sv.dir);
    const char *g1[] = {keygen, "-q", "-t", "ed25519", "-N", "", "-f", hk, NULL};
    const char *g2[] = {keygen, "-q", "-t", "ed25519", "-N", "", "-f", ck, NULL};
    ASSERT_EQ(0, run_quiet(g1, log));
    ASSERT_EQ(0, run_quiet(g2, log));
    snprintf(path, sizeof(path), "%s.pub", ck);
    FILE *in = fopen(path, "r");
    ASSERT_NOT_NULL(in);
    char key[1024] = "";
    ASSERT_NOT_NULL(fgets(key, sizeof(key), in));
    fclose(in);
    th_write_file(ak, key, 0600);
    /* Root's sshd needs its privilege-separation directory (the service creates it). */
    if (geteuid() == 0 && access("/run/sshd", F_OK) != 0 && mkdir("/run/sshd", 0755) != 0) {
        printf("SKIP: sshd needs /run/sshd and it cannot be created: %s\n", rt_strerror(-errno));
        return false;
    }
    sv.port = free_port();
    snprintf(cfg, sizeof(cfg), "%s/sshd_config", sv.dir);
    char text[4096];
    snprintf(text, sizeof(text),
             "Port %d\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\n"
             "PidFile none\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n"
             "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
             "X11Forwarding no\nPrintMotd no\nLogLevel ERROR\n",
             sv.port, hk, ak);
    th_write_file(cfg, text, 0600);
    const char *check[] = {sshd, "-t", "-f", cfg, NULL};
    if (run_quiet(check, log) != 0) {
        printf("SKIP: sshd rejects a minimal configuration here:\n");
        show_log(log);
        return false;
    }
    sv.sshd = fork();
    ASSERT_GE(sv.sshd, 0);
    if (sv.sshd == 0) {
        setsid();
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a crashed case leaves no listener */
        int fd = open(log, O_WRONLY | O_APPEND);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(sshd, sshd, "-D", "-e", "-f", cfg, (char *)NULL);
        _exit(127);
    }
    int64_t t0 = th_now_ms();
    while (!port_open(sv.port)) {
        int st;
        if (waitpid(sv.sshd, &st, WNOHANG) == sv.sshd || th_now_ms() - t0 > 10000) {
            printf("SKIP: sshd did not start on 127.0.0.1:%d:\n", sv.port);
            show_log(log);
            kill(sv.sshd, SIGKILL);
            waitpid(sv.sshd, &st, 0);
            sv.sshd = 0;
            return false;
        }
        th_nap();
    }
    /* The client: the real ssh, kept away from ~/.ssh. ssh takes the first value it gets
     * for an option, so the wrapper's short ControlPersist wins over the backend's 300 s:
     * a master orphaned by a crashed case exits on its own soon. */
    char bin[1024], wrapper[4096], newpath[8192];
    snprintf(bin, sizeof(bin), "%s/bin", sv.dir);
    ASSERT_OK(mkdir(bin, 0755));
    snprintf(path, sizeof(path), "%s/ssh", bin);
    snprintf(wrapper, sizeof(wrapper),
             "#!/bin/sh\nexec %s -F /dev/null -o UserKnownHostsFile=%s/known_hosts "
             "-o GlobalKnownHostsFile=/dev/null -o ControlPersist=20 \"$@\"\n",
             ssh, sv.dir);
    th_write_file(path, wrapper, 0755);
    snprintf(newpath, sizeof(newpath), "%s:%s", bin, getenv("PATH") ? getenv("PATH") : "/bin");
    setenv("PATH", newpath, 1);
    setenv("TMPDIR", sv.dir, 1); /* the control socket goes under <TMPDIR>/hermes-ssh */
    setenv("TERMINAL_ENV", "ssh", 1);
    setenv("TERMINAL_SSH_HOST", "127.0.0.1", 1);
    setenv("TERMINAL_SSH_USER", sv.user, 1);
    char port[16];
    snprintf(port, sizeof(port), "%d", sv.port);
    setenv("TERMINAL_SSH_PORT", port, 1);
    setenv("TERMINAL_SSH_KEY", ck, 1);
    snprintf(sv.ctl, sizeof(sv.ctl), "%s/hermes-ssh/%s@127.0.0.1:%d.sock", sv.dir, sv.user,
             sv.port);
    return true;
}

/* Does any live process mention s on its command line? */
static bool cmdline_mentions(const char *s)
{
    DIR *d = opendir("/proc");
    ASSERT_NOT_NULL(d);
    bool hit = false;
    struct dirent *e;
    while (!hit && (e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9' || strtol(e->d_name, NULL, 10) == getpid())
            continue;
        char path[300], buf[4096];
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        for (ssize_t i = 0; i < n; i++)
            if (!buf[i])
                buf[i] = ' ';
        buf[n] = '\0';
        th_pstat ps;
        hit = strstr(buf, s) && th_read_pstat(e->d_name, &ps) && ps.state != 'Z';
    }
    closedir(d);
    return hit;
}

/* A failed assertion aborts the case: take sshd and the ssh master down with it. */
static void kill_mentioning(const char *s)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        long pid = strtol(e->d_name, NULL, 10);
        if (pid <= 1 || pid == getpid())
            continue;
        char path[300], buf[4096];
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        for (ssize_t i = 0; i < n; i++)
            if (!buf[i])
                buf[i] = ' ';
        if (n > 0) {
            buf[n] = '\0';
            if (strstr(buf, s)) {
                kill(-(pid_t)pid, SIGKILL); /* its group, when it leads one */
                kill((pid_t)pid, SIGKILL);
            }
        }
    }
    if (d)
        closedir(d);
}

static void on_abort(void)
{
    if (sv.sshd > 0)
        kill(-sv.sshd, SIGKILL);
    if (sv.ctl[0])
        kill_mentioning(sv.ctl);
    if (sv.dir[0])
        kill_mentioning(sv.dir); /* remote commands that outlived the case */
}

static void sshd_stop(void)
{
    char ssh[1024], ctl[1024], dest[128], log[1024];
    snprintf(ssh, sizeof(ssh), "%s/bin/ssh", sv.dir);
    snprintf(ctl, sizeof(ctl), "ControlPath=%s", sv.ctl);
    snprintf(dest, sizeof(dest), "%s@127.0.0.1", sv.user);
    snprintf(log, sizeof(log), "%s/stop.log", sv.dir);
    const char *exit_master[] = {ssh, "-o", ctl, "-O", "exit", dest, NULL};
    (void)run_quiet(exit_master, log); /* fails harmlessly when no master runs */
    int64_t t0 = th_now_ms();
    while (cmdline_mentions(sv.ctl)) {
        if (th_now_ms() - t0 > TH_WAIT_MS)
            TEST_FAIL_("the ssh ControlMaster %s did not exit", sv.ctl);
        th_nap();
    }
    kill(-sv.sshd, SIGTERM);
    int st;
    ASSERT_EQ(sv.sshd, waitpid(sv.sshd, &st, 0));
    t0 = th_now_ms();
    while (cmdline_mentions(sv.dir)) {
        if (th_now_ms() - t0 > TH_WAIT_MS)
            TEST_FAIL_("processes of %s are left behind", sv.dir);
        th_nap();
    }
}

TEST(ssh_runs_commands_with_cwd_exit_codes_and_quoting)
{
    if (!sshd_start())
        return;
    th_setup();
    th_start();
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "echo hi; pwd");
    cJSON *r = th_call(0, "terminal", "{\"command\":%s,\"workdir\":%s}", th_q(cmd), th_q(sv.dir));
    char want[1024];
    snprintf(want, sizeof(want), "hi\n%s", sv.dir);
    ASSERT_STR_EQ(want, th_str(r, "output"));
    ASSERT_EQ(0, th_num(r, "exit_code"));
    ASSERT_TRUE(th_is_null(r, "error"));
    cJSON_Delete(r);
    r = th_call(0, "terminal", "{\"command\":\"echo \\\"it's 'quoted'\\\"; exit 7\"}");
    ASSERT_STR_EQ("it's 'quoted'", th_str(r, "output"));
    ASSERT_EQ(7, th_num(r, "exit_code"));
    cJSON_Delete(r);
    /* The default cwd is the remote home; the connection is the one master. */
    r = th_call(0, "terminal",
                "{\"command\":\"test \\\"$(pwd)\\\" = \\\"$HOME\\\" && echo home-ok\"}");
    ASSERT_STR_EQ("home-ok", th_str(r, "output"));
    cJSON_Delete(r);
    ASSERT_OK(access(sv.ctl, F_OK));
    r = th_call(0, "terminal",
                "{\"command\":\"echo GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123\"}");
    ASSERT_STR_EQ("GITHUB_TOKEN=***", th_str(r, "output"));
    cJSON_Delete(r);
    th_teardown();
    sshd_stop();
}

TEST(ssh_interrupt_and_timeout_end_the_remote_command_too)
{
    if (!sshd_start())
        return;
    th_setup();
    th_start();
    char pidf[1024], cmd[2048];
    snprintf(pidf, sizeof(pidf), "%s/remote.pid", sv.dir);
    snprintf(cmd, sizeof(cmd), "echo remote; echo $$ > %s; sleep 300 & sleep 300 & wait", pidf);
    int seq = th_call_async(0, "terminal", "{\"command\":%s}", th_q(cmd));
    pid_t sid = (pid_t)th_wait_pid_file(pidf);
    th_wait_sid_count(sid, 3);
    rt_interrupt(rt_ctx_external(th.rt), th.session, 1);
    cJSON *r = th_wait(seq);
    ASSERT_EQ(130, th_num(r, "exit_code"));
    /* "remote" may still be on its way through the connection when our client is
     * stopped; the note is always there. */
    const char *out = th_str(r, "output");
    if (strcmp(out, "[Command interrupted]") != 0)
        ASSERT_STR_EQ("remote\n\n[Command interrupted]", out);
    cJSON_Delete(r);
    th_wait_sid_gone(sid); /* the remote shell and its sleepers, not only our client */
    ASSERT_OK(unlink(pidf));
    r = th_call(0, "terminal", "{\"command\":%s,\"timeout\":1}", th_q(cmd));
    ASSERT_EQ(124, th_num(r, "exit_code"));
    ASSERT_STR_EQ("Command timed out after 1 seconds", th_str(r, "error"));
    out = th_str(r, "output");
    if (*out)
        ASSERT_STR_EQ("remote", out);
    cJSON_Delete(r);
    th_wait_sid_gone((pid_t)th_wait_pid_file(pidf));
    th_teardown();
    sshd_stop();
}

TEST(ssh_background_process)
{
    if (!sshd_start())
        return;
    th_setup();
    th_start();
    cJSON *r = th_call(0, "terminal",
                       "{\"command\":\"echo bg-remote; read x; echo got$x; sleep 300\","
                       "\"background\":true}");
    char id[32];
    snprintf(id, sizeof(id), "%s", th_str(r, "session_id"));
    pid_t pid = (pid_t)th_num(r, "pid"); /* the remote pid (same machine here) */
    ASSERT_GT(pid, 1);
    cJSON_Delete(r);
    int64_t t0 = th_now_ms();
    for (;;) {
        r = th_call(0, "process", "{\"action\":\"poll\",\"session_id\":\"%s\"}", id);
        bool seen = strstr(th_str(r, "output_preview"), "bg-remote") != NULL;
        cJSON_Delete(r);
        if (seen)
            break;
        ASSERT_LT(th_now_ms() - t0, TH_WAIT_MS);
        th_nap();
    }
    r = th_call(0, "process", "{\"action\":\"submit\",\"session_id\":\"%s\",\"data\":\"5\"}", id);
    ASSERT_STR_EQ("ok", th_str(r, "status"));
    cJSON_Delete(r);
    r = th_call(0, "process", "{\"action\":\"wait\",\"session_id\":\"%s\",\"timeout\":1}", id);
    ASSERT_STR_EQ("timeout", th_str(r, "status"));
    cJSON_Delete(r);
    r = th_call(0, "process", "{\"action\":\"kill\",\"session_id\":\"%s\"}", id);
    ASSERT_STR_EQ("killed", th_str(r, "status"));
    cJSON_Delete(r);
    char name[32];
    snprintf(name, sizeof(name), "%d", (int)pid);
    th_pstat ps;
    if (th_read_pstat(name, &ps))
        th_wait_sid_gone(ps.sid);
    th_teardown();
    sshd_stop();
}

TEST(ssh_connection_failure_is_clear)
{
    if (!sshd_start())
        return;
    /* A port nobody listens on. */
    char port[16];
    snprintf(port, sizeof(port), "%d", free_port());
    setenv("TERMINAL_SSH_PORT", port, 1);
    th_setup();
    th_start();
    cJSON *r = th_call(0, "terminal", "{\"command\":\"echo hi\"}");
    ASSERT_STR_CONTAINS(th_str(r, "error"), "Failed to execute command: SSH connection failed: ");
    ASSERT_STR_CONTAINS(th_str(r, "error"), "Connection refused");
    ASSERT_STR_EQ("error", th_str(r, "status"));
    cJSON_Delete(r);
    th_teardown();
    sshd_stop();
}

TEST(ssh_needs_host_and_user)
{
    setenv("TERMINAL_ENV", "ssh", 1);
    unsetenv("TERMINAL_SSH_HOST");
    unsetenv("TERMINAL_SSH_USER");
    th_setup();
    th_start();
    cJSON *r = th_call(0, "terminal", "{\"command\":\"echo hi\"}");
    ASSERT_STR_EQ("Failed to execute command: SSH environment requires ssh_host and ssh_user to "
                  "be configured",
                  th_str(r, "error"));
    cJSON_Delete(r);
    th_teardown();
}
