/*
 * term_backend — backend configuration and command lines (see term_backend.h).
 */
#include "term_backend.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_proc.h"
#include "rt_util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const char *term_backend_name(term_backend b)
{
    static const char *const names[] = {"local", "ssh", "docker", "singularity", "modal"};
    return (unsigned)b < RT_ARRAY_LEN(names) ? names[b] : "?";
}

/* ------------------------------------------------------------------ argv lists */

typedef struct argv_b {
    char **v;
    size_t n, cap;
} argv_b;

/* An empty list that already exists (never NULL). */
static void av_init(argv_b *a)
{
    a->v = rt_xcalloc(1, sizeof(*a->v));
    a->n = 0;
    a->cap = 1;
}

static void av_add(argv_b *a, const char *s)
{
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->v = rt_xrealloc(a->v, a->cap * sizeof(*a->v));
    }
    a->v[a->n++] = rt_xstrdup(s);
    a->v[a->n] = NULL;
}

static void av_take(argv_b *a, char *s)
{
    av_add(a, s);
    rt_free(s);
}

void term_argv_free(char **argv)
{
    for (char **p = argv; p && *p; p++)
        rt_free(*p);
    rt_free(argv);
}

size_t term_argv_len(char *const *argv)
{
    size_t n = 0;
    while (argv && argv[n])
        n++;
    return n;
}

char *term_argv_join(char *const *argv)
{
    rt_buf b;
    rt_buf_init(&b, (size_t)1 << 24);
    for (size_t i = 0; argv && argv[i]; i++) {
        char *q = term_shell_quote(argv[i]);
        (void)rt_buf_printf(&b, "%s%s", i ? " " : "", q);
        rt_free(q);
    }
    return rt_buf_steal(&b, NULL);
}

/* ------------------------------------------------------------------ small helpers */

char *term_shell_quote(const char *s)
{
    if (!*s)
        return rt_xstrdup("''");
    bool safe = true;
    for (const char *p = s; *p && safe; p++) {
        unsigned char c = (unsigned char)*p;
        safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c && strchr("_@%+=:,./-", c));
    }
    if (safe)
        return rt_xstrdup(s);
    rt_buf b;
    rt_buf_init(&b, strlen(s) * 5 + 3);
    (void)rt_buf_append(&b, "'", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            (void)rt_buf_append_str(&b, "'\"'\"'");
        else
            (void)rt_buf_append(&b, p, 1);
    }
    (void)rt_buf_append(&b, "'", 1);
    return rt_buf_steal(&b, NULL);
}

void term_fmt_pyfloat(double v, char *out, size_t n)
{
    if (isnan(v) || isinf(v)) {
        snprintf(out, n, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(out, n, "%.*g", p, v);
        if (strtod(out, NULL) == v)
            break;
    }
    if (!strpbrk(out, ".e"))
        snprintf(out + strlen(out), n - strlen(out), ".0");
}

char *term_safe_component(const char *s)
{
    char *r = rt_xstrdup(s && *s ? s : "default");
    for (char *p = r; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            *p = '_';
    }
    if (r[0] == '.')
        r[0] = '_'; /* no ".", "..", or hidden names */
    return r;
}

char *term_which(const char *name)
{
    if (!name || !*name)
        return NULL;
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 ? rt_xstrdup(name) : NULL;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *e = strchr(path, ':');
        size_t n = e ? (size_t)(e - path) : strlen(path);
        char *full = n ? rt_xasprintf("%.*s/%s", (int)n, path, name) : rt_xasprintf("./%s", name);
        if (access(full, X_OK) == 0)
            return full;
        rt_free(full);
        path += n + (e ? 1 : 0);
    }
    return NULL;
}

/* ------------------------------------------------------------------ sudo */

static bool is_word(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c >= 0x80;
}

/* Is there a \bsudo\b at s (start is the string's start, for the left boundary)? */
static bool sudo_at(const char *start, const char *s)
{
    return strncmp(s, "sudo", 4) == 0 && (s == start || !is_word((unsigned char)s[-1])) &&
           !is_word((unsigned char)s[4]);
}

bool term_has_sudo(const char *cmd)
{
    for (const char *s = cmd; s && (s = strstr(s, "sudo")); s++)
        if (sudo_at(cmd, s))
            return true;
    return false;
}

char *term_sudo_transform(const char *cmd, const char *password)
{
    if (!cmd || !password || !*password || !term_has_sudo(cmd))
        return NULL;
    char *q = term_shell_quote(password);
    char *with = rt_xasprintf("echo %s | sudo -S -p ''", q);
    explicit_bzero(q, strlen(q)); /* copies of the password do not linger in the heap */
    rt_free(q);
    rt_buf b;
    rt_buf_init(&b, (strlen(cmd) + 1) * (strlen(with) + 1));
    for (const char *s = cmd; *s;) {
        if (sudo_at(cmd, s)) {
            (void)rt_buf_append_str(&b, with);
            s += 4;
        } else {
            (void)rt_buf_append(&b, s++, 1);
        }
    }
    explicit_bzero(with, strlen(with));
    rt_free(with);
    return rt_buf_steal(&b, NULL);
}

/* ------------------------------------------------------------------ config */

static char *env_dup(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? rt_xstrdup(v) : def ? rt_xstrdup(def) : NULL;
}

static int64_t env_i64(const char *name, int64_t def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    double d = strtod(v, &end); /* "5120" and "5120.0" alike, as the config writes them */
    return end != v && !*end && d >= 0 && d < 9e15 ? (int64_t)d : def;
}

static char **parse_volumes(const char *json)
{
    argv_b a;
    av_init(&a);
    cJSON *v = json && *json ? cJSON_Parse(json) : NULL;
    if (json && *json && !cJSON_IsArray(v))
        RT_WARN("terminal", "TERMINAL_DOCKER_VOLUMES is not a JSON list; ignored");
    const cJSON *list = cJSON_IsArray(v) ? v : NULL, *it;
    cJSON_ArrayForEach(it, list)
    {
        if (!cJSON_IsString(it))
            continue;
        const char *s = it->valuestring;
        while (*s == ' ' || *s == '\t')
            s++;
        size_t n = strlen(s);
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n) {
            char *t = rt_xstrndup(s, n);
            av_take(&a, t);
        }
    }
    cJSON_Delete(v);
    return a.v;
}

static bool host_path(const char *cwd)
{
    return strncmp(cwd, "/Users/", 7) == 0 || strncmp(cwd, "C:\\", 3) == 0 ||
           strncmp(cwd, "C:/", 3) == 0;
}

int term_config_load(term_config *c, const char *hermes_home, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    const char *be = getenv("TERMINAL_ENV");
    if (!be || !*be)
        be = "local";
    static const term_backend all[] = {TERM_BE_LOCAL, TERM_BE_SSH, TERM_BE_DOCKER,
                                       TERM_BE_SINGULARITY, TERM_BE_MODAL};
    size_t i = 0;
    while (i < RT_ARRAY_LEN(all) && strcasecmp(be, term_backend_name(all[i])) != 0)
        i++;
    if (i == RT_ARRAY_LEN(all)) {
        snprintf(err, errlen,
                 "Unknown environment type: %s. Use 'local', 'docker', 'singularity', 'modal', "
                 "or 'ssh'",
                 be);
        return -EINVAL;
    }
    c->backend = all[i];
    c->cwd = env_dup("TERMINAL_CWD", c->backend == TERM_BE_LOCAL ? NULL : "~");
    if (c->cwd && c->backend != TERM_BE_LOCAL && c->backend != TERM_BE_SSH && host_path(c->cwd)) {
        RT_INFO("terminal", "ignoring TERMINAL_CWD=%s for the %s backend (a host path)", c->cwd,
                term_backend_name(c->backend));
        rt_free(c->cwd);
        c->cwd = rt_xstrdup("~");
    }
    c->docker_image = env_dup("TERMINAL_DOCKER_IMAGE", TERM_DEFAULT_IMAGE);
    c->singularity_image = env_dup("TERMINAL_SINGULARITY_IMAGE", "docker://" TERM_DEFAULT_IMAGE);
    c->docker_exe = env_dup("MSWEA_DOCKER_EXECUTABLE", "docker");
    c->ssh_host = env_dup("TERMINAL_SSH_HOST", NULL);
    c->ssh_user = env_dup("TERMINAL_SSH_USER", NULL);
    c->ssh_key = env_dup("TERMINAL_SSH_KEY", NULL);
    c->ssh_port = (int)env_i64("TERMINAL_SSH_PORT", 22);
    if (c->ssh_port <= 0 || c->ssh_port > 65535)
        c->ssh_port = 22;
    const char *cpu = getenv("TERMINAL_CONTAINER_CPU");
    char *end = NULL;
    c->cpu = cpu && *cpu ? strtod(cpu, &end) : 1.0;
    if (cpu && *cpu && (end == cpu || *end || !(c->cpu >= 0)))
        c->cpu = 1.0;
    c->memory_mb = env_i64("TERMINAL_CONTAINER_MEMORY", 5120);
    c->disk_mb = env_i64("TERMINAL_CONTAINER_DISK", 51200);
    const char *pers = getenv("TERMINAL_CONTAINER_PERSISTENT");
    c->persistent = !pers || !*pers || strcasecmp(pers, "true") == 0 || strcmp(pers, "1") == 0 ||
                    strcasecmp(pers, "yes") == 0;
    c->volumes = parse_volumes(getenv("TERMINAL_DOCKER_VOLUMES"));
    const char *sb = getenv("TERMINAL_SANDBOX_DIR");
    if (sb && *sb) {
        c->sandbox_dir = rt_xstrdup(sb);
    } else if (hermes_home && *hermes_home) {
        c->sandbox_dir = rt_xasprintf("%s/sandboxes", hermes_home);
    } else {
        const char *home = getenv("HOME");
        c->sandbox_dir = rt_xasprintf("%s/.hermes/sandboxes", home && *home ? home : "/tmp");
    }
    const char *tmp = getenv("TMPDIR");
    c->control_dir = rt_xasprintf("%s/hermes-ssh", tmp && *tmp == '/' ? tmp : "/tmp");
    c->lifetime_s = env_i64("TERMINAL_LIFETIME_SECONDS", 300);
    return 0;
}

void term_config_fini(term_config *c)
{
    if (!c)
        return;
    rt_free(c->cwd);
    rt_free(c->docker_image);
    rt_free(c->singularity_image);
    rt_free(c->docker_exe);
    rt_free(c->ssh_host);
    rt_free(c->ssh_user);
    rt_free(c->ssh_key);
    term_argv_free(c->volumes);
    rt_free(c->sandbox_dir);
    rt_free(c->control_dir);
    memset(c, 0, sizeof(*c));
}

void term_config_free(term_config *c)
{
    term_config_fini(c);
    rt_free(c);
}

static char **dup_list(char *const *v)
{
    argv_b a;
    av_init(&a);
    for (size_t i = 0; v && v[i]; i++)
        av_add(&a, v[i]);
    return a.v;
}

term_config *term_config_dup(const term_config *c)
{
    term_config *d = rt_xmalloc(sizeof(*d));
    *d = *c;
    d->cwd = rt_xstrdup(c->cwd);
    d->docker_image = rt_xstrdup(c->docker_image);
    d->singularity_image = rt_xstrdup(c->singularity_image);
    d->docker_exe = rt_xstrdup(c->docker_exe);
    d->ssh_host = rt_xstrdup(c->ssh_host);
    d->ssh_user = rt_xstrdup(c->ssh_user);
    d->ssh_key = rt_xstrdup(c->ssh_key);
    d->volumes = dup_list(c->volumes);
    d->sandbox_dir = rt_xstrdup(c->sandbox_dir);
    d->control_dir = rt_xstrdup(c->control_dir);
    return d;
}

/* ------------------------------------------------------------------ targets */

term_target *term_target_new(const term_config *c, const char *exe, const char *container)
{
    term_target *t = rt_xcalloc(1, sizeof(*t));
    t->backend = c->backend;
    t->exe = rt_xstrdup(exe);
    t->container = rt_xstrdup(container);
    if (c->backend == TERM_BE_SSH) {
        t->ssh_dest =
            rt_xasprintf("%s@%s", c->ssh_user ? c->ssh_user : "", c->ssh_host ? c->ssh_host : "");
        t->ssh_control = term_ssh_control_path(c->control_dir, c->ssh_user ? c->ssh_user : "",
                                               c->ssh_host ? c->ssh_host : "", c->ssh_port);
        t->ssh_key = rt_xstrdup(c->ssh_key);
        t->ssh_port = c->ssh_port;
        if (!t->exe)
            t->exe = rt_xstrdup("ssh");
    }
    return t;
}

term_target *term_target_dup(const term_target *t)
{
    term_target *d = rt_xcalloc(1, sizeof(*d));
    *d = *t;
    d->exe = rt_xstrdup(t->exe);
    d->ssh_dest = rt_xstrdup(t->ssh_dest);
    d->ssh_control = rt_xstrdup(t->ssh_control);
    d->ssh_key = rt_xstrdup(t->ssh_key);
    d->container = rt_xstrdup(t->container);
    return d;
}

void term_target_free(term_target *t)
{
    if (!t)
        return;
    rt_free(t->exe);
    rt_free(t->ssh_dest);
    rt_free(t->ssh_control);
    rt_free(t->ssh_key);
    rt_free(t->container);
    rt_free(t);
}

/* ------------------------------------------------------------------ command lines */

/* "cd" argument for cwd: "~" and "~/…" keep the tilde unquoted so the shell expands it. */
static char *cd_arg(const char *cwd)
{
    if (strcmp(cwd, "~") == 0)
        return rt_xstrdup("~");
    if (strncmp(cwd, "~/", 2) == 0) {
        char *q = term_shell_quote(cwd + 2);
        char *r = rt_xasprintf("~/%s", q);
        rt_free(q);
        return r;
    }
    return term_shell_quote(cwd);
}

static bool tilde(const char *cwd)
{
    return strcmp(cwd, "~") == 0 || strncmp(cwd, "~/", 2) == 0;
}

char *term_ssh_control_path(const char *dir, const char *user, const char *host, int port)
{
    return rt_xasprintf("%s/%s@%s:%d.sock", dir, user, host, port);
}

#define MARK_CMD "echo \"" TERM_PID_MARKER "$$\"; "

char *term_remote_kill_command(long pid)
{
    return rt_xasprintf("kill -TERM -%ld 2>/dev/null || kill -TERM %ld 2>/dev/null", pid, pid);
}

char *term_ssh_remote(const char *cwd, const char *cmd, bool marker)
{
    char *cd = cd_arg(cwd && *cwd ? cwd : "~");
    char *inner = rt_xasprintf("%scd %s && %s", marker ? MARK_CMD : "", cd, cmd);
    char *q = term_shell_quote(inner);
    char *r = rt_xasprintf("bash -c %s", q);
    rt_free(cd);
    rt_free(inner);
    rt_free(q);
    return r;
}

char **term_ssh_argv(const term_target *t, const char *const *extra, const char *remote)
{
    argv_b a = {0};
    av_add(&a, t->exe ? t->exe : "ssh");
    av_add(&a, "-o");
    av_take(&a, rt_xasprintf("ControlPath=%s", t->ssh_control ? t->ssh_control : ""));
    static const char *const opts[] = {"ControlMaster=auto", "ControlPersist=300", "BatchMode=yes",
                                       "StrictHostKeyChecking=accept-new", "ConnectTimeout=10"};
    for (size_t i = 0; i < RT_ARRAY_LEN(opts); i++) {
        av_add(&a, "-o");
        av_add(&a, opts[i]);
    }
    if (t->ssh_port != 22) {
        av_add(&a, "-p");
        av_take(&a, rt_xasprintf("%d", t->ssh_port));
    }
    if (t->ssh_key && *t->ssh_key) {
        av_add(&a, "-i");
        av_add(&a, t->ssh_key);
    }
    for (size_t i = 0; extra && extra[i]; i++)
        av_add(&a, extra[i]);
    av_add(&a, t->ssh_dest ? t->ssh_dest : "");
    if (remote)
        av_add(&a, remote);
    return a.v;
}

char **term_exec_argv(const term_target *t, const char *cwd, const char *cmd, bool stdin_open,
                      bool marker)
{
    argv_b a = {0};
    const char *wd = cwd && *cwd ? cwd : "~";
    char *cmd2 = NULL;
    switch (t->backend) {
    case TERM_BE_SSH: {
        char *remote = term_ssh_remote(wd, cmd, marker);
        char **v = term_ssh_argv(t, NULL, remote);
        rt_free(remote);
        return v;
    }
    case TERM_BE_DOCKER:
    case TERM_BE_SINGULARITY: {
        bool docker = t->backend == TERM_BE_DOCKER;
        if (tilde(wd)) {
            char *cd = cd_arg(wd);
            cmd2 = rt_xasprintf("%scd %s && %s", marker ? MARK_CMD : "", cd, cmd);
            rt_free(cd);
            wd = docker ? "/" : "/tmp";
        } else if (marker) {
            cmd2 = rt_xasprintf(MARK_CMD "%s", cmd);
        }
        av_add(&a, t->exe);
        av_add(&a, "exec");
        if (docker && stdin_open)
            av_add(&a, "-i");
        av_add(&a, docker ? "-w" : "--pwd");
        av_add(&a, wd);
        if (docker)
            av_add(&a, t->container ? t->container : "");
        else
            av_take(&a, rt_xasprintf("instance://%s", t->container ? t->container : ""));
        av_add(&a, "bash");
        av_add(&a, docker ? "-lc" : "-c");
        av_add(&a, cmd2 ? cmd2 : cmd);
        rt_free(cmd2);
        return a.v;
    }
    default: {
        const char *sv[4];
        rt_proc_shell_argv(sv, cmd, RT_PROC_SHELL_LOGIN | RT_PROC_SHELL_INTERACTIVE);
        for (int i = 0; i < 3; i++)
            av_add(&a, sv[i]);
        return a.v;
    }
    }
}

char *term_docker_dir(const term_config *c, const char *task_id, const char *leaf)
{
    char *task = term_safe_component(task_id);
    char *d = rt_xasprintf("%s/docker/%s/%s", c->sandbox_dir, task, leaf);
    rt_free(task);
    return d;
}

char **term_docker_run_argv(const term_config *c, const char *name, const char *cwd, const char *ws,
                            const char *home, bool storage_opt)
{
    static const char *const security[] = {
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
    };
    argv_b a = {0};
    av_add(&a, c->docker_exe ? c->docker_exe : "docker");
    av_add(&a, "run");
    av_add(&a, "-d");
    av_add(&a, "--name");
    av_add(&a, name);
    av_add(&a, "-w");
    av_add(&a, cwd && *cwd && !tilde(cwd) ? cwd : "/root");
    for (size_t i = 0; i < RT_ARRAY_LEN(security); i++)
        av_add(&a, security[i]);
    if (c->persistent) {
        av_add(&a, "-v");
        av_take(&a, rt_xasprintf("%s:/workspace", ws));
        av_add(&a, "-v");
        av_take(&a, rt_xasprintf("%s:/root", home));
    } else {
        static const char *const tmp[] = {"--tmpfs", "/workspace:rw,exec,size=10g",
                                          "--tmpfs", "/home:rw,exec,size=1g",
                                          "--tmpfs", "/root:rw,exec,size=1g"};
        for (size_t i = 0; i < RT_ARRAY_LEN(tmp); i++)
            av_add(&a, tmp[i]);
    }
    if (c->cpu > 0) {
        char f[64];
        term_fmt_pyfloat(c->cpu, f, sizeof(f));
        av_add(&a, "--cpus");
        av_add(&a, f);
    }
    if (c->memory_mb > 0) {
        av_add(&a, "--memory");
        av_take(&a, rt_xasprintf("%lldm", (long long)c->memory_mb));
    }
    if (c->disk_mb > 0 && storage_opt) {
        av_add(&a, "--storage-opt");
        av_take(&a, rt_xasprintf("size=%lldm", (long long)c->disk_mb));
    }
    for (char **v = c->volumes; v && *v; v++) {
        if (!strchr(*v, ':')) {
            RT_WARN("terminal", "docker volume '%s' has no colon; skipped", *v);
            continue;
        }
        av_add(&a, "-v");
        av_add(&a, *v);
    }
    av_add(&a, c->docker_image ? c->docker_image : TERM_DEFAULT_IMAGE);
    av_add(&a, "sleep");
    av_add(&a, "2h");
    return a.v;
}

char *term_singularity_scratch(const term_config *c)
{
    const char *s = getenv("TERMINAL_SCRATCH_DIR");
    if (s && *s)
        return rt_xstrdup(s);
    if (access("/scratch", W_OK) == 0) {
        const char *user = getenv("USER");
        return rt_xasprintf("/scratch/%s/hermes-agent", user && *user ? user : "hermes");
    }
    return rt_xasprintf("%s/singularity", c->sandbox_dir);
}

char *term_singularity_sif(const char *scratch, const char *image)
{
    if (strncmp(image, "docker://", 9) != 0)
        return NULL;
    char *name = rt_xstrdup(image + 9);
    for (char *p = name; *p; p++)
        if (*p == '/' || *p == ':')
            *p = '-';
    const char *cache = getenv("APPTAINER_CACHEDIR");
    char *r = cache && *cache ? rt_xasprintf("%s/%s.sif", cache, name)
                              : rt_xasprintf("%s/.apptainer/%s.sif", scratch, name);
    rt_free(name);
    return r;
}

char **term_singularity_start_argv(const term_config *c, const char *exe, const char *image,
                                   const char *overlay, const char *instance)
{
    argv_b a = {0};
    av_add(&a, exe);
    av_add(&a, "instance");
    av_add(&a, "start");
    av_add(&a, "--containall");
    av_add(&a, "--no-home");
    if (c->persistent && overlay) {
        av_add(&a, "--overlay");
        av_add(&a, overlay);
    } else {
        av_add(&a, "--writable-tmpfs");
    }
    if (c->memory_mb > 0) {
        av_add(&a, "--memory");
        av_take(&a, rt_xasprintf("%lldM", (long long)c->memory_mb));
    }
    if (c->cpu > 0) {
        char f[64];
        term_fmt_pyfloat(c->cpu, f, sizeof(f));
        av_add(&a, "--cpus");
        av_add(&a, f);
    }
    av_add(&a, image);
    av_add(&a, instance);
    return a.v;
}
