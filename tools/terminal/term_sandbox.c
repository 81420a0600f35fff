/*
 * term_sandbox — the registry's sandboxes: docker containers, singularity instances and
 * ssh ControlMaster connections, created on first use, shared per task, torn down when
 * idle (see term_procs.h).
 *
 * Creation is a short chain of subprocess steps on the reactor, one at a time:
 *   docker       `docker version` (the engine answers) → the --storage-opt probe (once
 *                per registry, only with a disk limit) → `docker run -d …`
 *   singularity  `<exe> --version` → `<exe> build <sif> docker://…` (once, cached SIF;
 *                a failed build falls back to the docker:// URL) → `instance start …`
 *   ssh          `ssh … user@host echo 'SSH connection established'` (becomes the master)
 * Calls that ask while a sandbox is being created wait for the same chain. A failure
 * answers them all with a message naming the backend and forgets the sandbox, so the
 * next call tries again.
 *
 * A sandbox is in use while an actor that asked for it lives (the registry monitors it)
 * or a background process runs in it; after TERMINAL_LIFETIME_SECONDS unused, the sweep
 * removes the container (`docker rm -f`), stops the instance, or closes the master.
 */
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_proc.h"
#include "rt_sched.h"
#include "rt_util.h"
#include "term_output.h"
#include "term_procs_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define STEP_OUT_MAX (64 * 1024)

extern char **environ;

enum {
    STEP_D_VERSION = 1,
    STEP_D_STORAGE,
    STEP_D_RUN,
    STEP_S_VERSION,
    STEP_S_BUILD,
    STEP_S_START,
    STEP_X_CONNECT,
    STEP_READY,
};

typedef struct tp_user {
    rt_ref ref;   /* an actor using the sandbox */
    uint64_t mon; /* our monitor on it */
} tp_user;

struct tp_sandbox {
    char *key;           /* "docker:<task>", "singularity:<task>", "ssh:<control path>" */
    char *task_id;       /* "default" when none */
    term_config *cfg;    /* the first asker's configuration */
    int step;            /* STEP_*; STEP_READY once usable */
    char *exe;           /* the engine / ssh */
    char *container;     /* docker id, singularity instance */
    char *image;         /* singularity: the image to start (SIF or URL) */
    char *sif;           /* singularity: the SIF a build writes, or NULL */
    term_target *target; /* once ready */
    rt_buf out, err;     /* the current step's output */
    int64_t last_used;   /* ns, runtime clock */
    rt_ref *pending;     /* askers waiting for the chain */
    size_t npending, cappending;
    tp_user *users;
    size_t nusers, capusers;
};

/* ================================================================ helpers */

static void rand_hex(char *out, size_t bytes)
{
    unsigned char r[16];
    if (bytes > sizeof(r))
        bytes = sizeof(r);
    if (getrandom(r, bytes, GRND_NONBLOCK) != (ssize_t)bytes) {
        uint64_t x = rt_hash_u64((uint64_t)rt_reactor_now_ns() ^ ((uint64_t)getpid() << 32));
        uint64_t y = rt_hash_u64(x + 1);
        memcpy(r, &x, 8);
        memcpy(r + 8, &y, 8);
    }
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* mkdir -p; 0 or -errno. */
static int mkdir_p(const char *path, mode_t mode)
{
    char *p = rt_xstrdup(path);
    int err = 0;
    for (char *s = p + 1; !err; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST)
            err = -errno;
        *s = c;
        if (!c)
            break;
    }
    rt_free(p);
    return err;
}

static char *step_text(const tp_sandbox *sb)
{
    const rt_buf *b = sb->err.len ? &sb->err : &sb->out;
    char *t = term_utf8_clean(rt_buf_cstr(b), b->len > 500 ? 500 : b->len, NULL);
    term_strip(t);
    return t;
}

static int64_t now_ns(rt_ctx *cx)
{
    return rt_now_ns(rt_ctx_runtime(cx));
}

static void drop_ready(rt_msg *m)
{
    term_msg_sandbox_ready *r = (term_msg_sandbox_ready *)m;
    term_target_free(r->target);
    rt_free(r->error);
}

static void send_ready(rt_ctx *cx, rt_ref to, const tp_sandbox *sb, const char *error)
{
    term_msg_sandbox_ready *r = RT_MSG_NEW(term_msg_sandbox_ready, TERM_MSG_SANDBOX_READY);
    if (error)
        r->error = rt_xstrdup(error);
    else
        r->target = term_target_dup(sb->target);
    r->hdr.drop = drop_ready;
    rt_send(cx, to, &r->hdr);
}

static void free_sandbox(tp_sandbox *sb)
{
    rt_free(sb->key);
    rt_free(sb->task_id);
    term_config_free(sb->cfg);
    rt_free(sb->exe);
    rt_free(sb->container);
    rt_free(sb->image);
    rt_free(sb->sif);
    term_target_free(sb->target);
    rt_buf_fini(&sb->out);
    rt_buf_fini(&sb->err);
    rt_free(sb->pending);
    rt_free(sb->users);
    rt_free(sb);
}

static void remove_sandbox(rt_ctx *cx, tp_state *st, tp_sandbox *sb)
{
    for (size_t i = 0; i < st->nsbx; i++)
        if (st->sbx[i] == sb) {
            memmove(&st->sbx[i], &st->sbx[i + 1], (st->nsbx - i - 1) * sizeof(st->sbx[0]));
            st->nsbx--;
            break;
        }
    for (size_t i = 0; i < sb->nusers; i++)
        rt_demonitor(cx, sb->users[i].ref, sb->users[i].mon);
    /* A running step's job still points here: detach it. */
    for (size_t i = 0; i < st->jobs.cap; i++)
        if (st->jobs.keys[i] && ((tp_job *)st->jobs.vals[i])->owner == sb)
            ((tp_job *)st->jobs.vals[i])->owner = NULL;
    free_sandbox(sb);
}

/* The chain failed: every asker hears why; the sandbox is forgotten. */
static void fail(rt_ctx *cx, tp_state *st, tp_sandbox *sb, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(rt_ctx *cx, tp_state *st, tp_sandbox *sb, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    RT_WARN("terminal", "sandbox %s: %s", sb->key, msg);
    for (size_t i = 0; i < sb->npending; i++)
        send_ready(cx, sb->pending[i], NULL, msg);
    sb->npending = 0;
    remove_sandbox(cx, st, sb);
}

static void ready(rt_ctx *cx, tp_state *st, tp_sandbox *sb)
{
    sb->step = STEP_READY;
    sb->target = term_target_new(sb->cfg, sb->exe, sb->container);
    for (size_t i = 0; i < sb->npending; i++)
        send_ready(cx, sb->pending[i], sb, NULL);
    sb->npending = 0;
    sb->last_used = now_ns(cx);
    RT_INFO("terminal", "sandbox %s ready (%s)", sb->key, sb->container ? sb->container : "-");
    tp__arm_sweep(cx, st);
}

/* Start one step; takes argv. extra_env: NULL-terminated "K=V" added to the environment. */
static void run_step(rt_ctx *cx, tp_state *st, tp_sandbox *sb, int step, char **argv,
                     int64_t timeout_ms, const char *const *extra_env)
{
    sb->step = step;
    rt_buf_reset(&sb->out);
    rt_buf_reset(&sb->err);
    char **env = NULL;
    if (extra_env) {
        size_t n = 0, k = 0, x = 0;
        while (environ && environ[n])
            n++;
        while (extra_env[x])
            x++;
        env = rt_xcalloc(n + x + 1, sizeof(*env));
        for (size_t i = 0; i < n; i++)
            env[k++] = environ[i];
        for (size_t i = 0; i < x; i++)
            env[k++] = (char *)extra_env[i];
    }
    rt_proc_opts o = {
        .argv = (const char *const *)argv,
        .env = (const char *const *)env,
        .timeout_ms = timeout_ms,
        .max_output = STEP_OUT_MAX,
        .reply_to = rt_self(cx),
    };
    uint64_t rid = rt_proc_spawn(cx, &o);
    rt_free(env);
    term_argv_free(argv);
    if (rid)
        tp__job_add(st, rid, TP_JOB_SBX, sb);
    else
        fail(cx, st, sb, "could not start the %s backend's helper command", sb->exe);
}

static char **argv_of(const char *a, const char *b, const char *c, const char *d)
{
    const char *in[] = {a, b, c, d};
    char **v = rt_xcalloc(5, sizeof(*v));
    for (size_t i = 0, k = 0; i < 4; i++)
        if (in[i])
            v[k++] = rt_xstrdup(in[i]);
    return v;
}

/* ================================================================ docker */

static void docker_run(rt_ctx *cx, tp_state *st, tp_sandbox *sb)
{
    char *ws = term_docker_dir(sb->cfg, sb->task_id, "workspace");
    char *home = term_docker_dir(sb->cfg, sb->task_id, "home");
    int err = 0;
    if (sb->cfg->persistent && ((err = mkdir_p(ws, 0755)) || (err = mkdir_p(home, 0755)))) {
        fail(cx, st, sb, "Docker backend: cannot create the workspace under %s: %s",
             sb->cfg->sandbox_dir, rt_strerror(err));
    } else {
        char name[32] = "hermes-";
        rand_hex(name + 7, 4);
        char **argv =
            term_docker_run_argv(sb->cfg, name, sb->cfg->cwd, ws, home, st->storage_opt == 2);
        run_step(cx, st, sb, STEP_D_RUN, argv, 300000, NULL); /* may pull the image */
    }
    rt_free(ws);
    rt_free(home);
}

static void docker_storage_probe(rt_ctx *cx, tp_state *st, tp_sandbox *sb)
{
    if (sb->cfg->disk_mb <= 0 || st->storage_opt) {
        docker_run(cx, st, sb);
        return;
    }
    char *q = term_shell_quote(sb->exe);
    char *script = rt_xasprintf(
        "d=$(%s info --format '{{.Driver}}' 2>/dev/null); [ \"$d\" = overlay2 ] || exit 1; "
        "id=$(%s create --storage-opt size=1m hello-world 2>/dev/null) || exit 1; "
        "%s rm \"$id\" >/dev/null 2>&1; exit 0",
        q, q, q);
    run_step(cx, st, sb, STEP_D_STORAGE, argv_of("/bin/sh", "-c", script, NULL), 60000, NULL);
    rt_free(script);
    rt_free(q);
}

static void docker_step_done(rt_ctx *cx, tp_state *st, tp_sandbox *sb, const rt_proc_msg_exit *e)
{
    bool ok = !e->err && e->exit_code == 0;
    if (sb->step == STEP_D_VERSION) {
        if (e->err == -ENOENT) {
            fail(cx, st, sb,
                 "Docker backend unavailable: '%s' was not found on PATH. Install Docker or set "
                 "terminal.backend (TERMINAL_ENV) to local.",
                 sb->exe);
        } else if (!ok) {
            char *t = step_text(sb);
            fail(cx, st, sb, "Docker backend unavailable: `%s version` failed: %s", sb->exe,
                 *t             ? t
                 : e->timed_out ? "timed out"
                                : "no output");
            rt_free(t);
        } else {
            docker_storage_probe(cx, st, sb);
        }
    } else if (sb->step == STEP_D_STORAGE) {
        st->storage_opt = ok ? 2 : 1;
        if (!ok)
            RT_WARN("terminal", "docker storage driver has no per-container disk quota "
                                "(needs overlay2 on XFS with pquota): running without one");
        docker_run(cx, st, sb);
    } else {
        /* STEP_D_RUN: the id is the last line docker printed on stdout. */
        char *t = term_utf8_clean(rt_buf_cstr(&sb->out), sb->out.len, NULL);
        term_strip(t);
        char *nl = strrchr(t, '\n');
        const char *id = nl ? nl + 1 : t;
        if (!ok || !*id) {
            char *why = step_text(sb);
            fail(cx, st, sb, "Docker backend: could not start a container: %s",
                 *why           ? why
                 : e->timed_out ? "timed out"
                                : "no container id");
            rt_free(why);
        } else {
            sb->container = rt_xstrdup(id);
            ready(cx, st, sb);
        }
        rt_free(t);
    }
}

/* ================================================================ singularity */

static void singularity_start(rt_ctx *cx, tp_state *st, tp_sandbox *sb)
{
    char *overlay = NULL;
    int err = 0;
    if (sb->cfg->persistent) {
        char *scratch = term_singularity_scratch(sb->cfg);
        char *task = term_safe_component(sb->task_id);
        overlay = rt_xasprintf("%s/hermes-overlays/overlay-%s", scratch, task);
        rt_free(task);
        rt_free(scratch);
        err = mkdir_p(overlay, 0755);
    }
    if (err) {
        fail(cx, st, sb, "Singularity backend: cannot create the overlay %s: %s", overlay,
             rt_strerror(err));
    } else {
        char inst[32] = "hermes_";
        rand_hex(inst + 7, 6);
        sb->container = rt_xstrdup(inst);
        char **argv = term_singularity_start_argv(sb->cfg, sb->exe, sb->image, overlay, inst);
        run_step(cx, st, sb, STEP_S_START, argv, 120000, NULL);
    }
    rt_free(overlay);
}

/* Use a cached SIF, or build one (once), or run the image as given. */
static void singularity_image(rt_ctx *cx, tp_state *st, tp_sandbox *sb)
{
    const char *img = sb->cfg->singularity_image;
    char *scratch = term_singularity_scratch(sb->cfg);
    char *sif = term_singularity_sif(scratch, img);
    rt_free(scratch);
    sb->image = rt_xstrdup(img);
    if (!sif) {
        singularity_start(cx, st, sb);
        return;
    }
    if (access(sif, R_OK) == 0) {
        rt_free(sb->image);
        sb->image = sif;
        singularity_start(cx, st, sb);
        return;
    }
    char *dir = rt_xstrdup(sif);
    *strrchr(dir, '/') = '\0';
    char *tmp = rt_xasprintf("%s/tmp", dir);
    (void)mkdir_p(tmp, 0755); /* a failure shows up as a failed build */
    char *e1 = rt_xasprintf("APPTAINER_TMPDIR=%s", tmp);
    char *e2 = rt_xasprintf("APPTAINER_CACHEDIR=%s", dir);
    const char *extra[] = {e1, e2, NULL};
    RT_INFO("terminal", "building SIF image %s from %s (one-time setup)", sif, img);
    sb->sif = sif;
    run_step(cx, st, sb, STEP_S_BUILD, argv_of(sb->exe, "build", sif, img), 600000, extra);
    rt_free(e1);
    rt_free(e2);
    rt_free(tmp);
    rt_free(dir);
}

static void singularity_step_done(rt_ctx *cx, tp_state *st, tp_sandbox *sb,
                                  const rt_proc_msg_exit *e)
{
    bool ok = !e->err && e->exit_code == 0;
    if (sb->step == STEP_S_VERSION) {
        if (!ok) {
            char *t = step_text(sb);
            fail(cx, st, sb, "Singularity backend unavailable: `%s --version` failed: %s", sb->exe,
                 *t ? t : rt_strerror(e->err ? e->err : -EIO));
            rt_free(t);
        } else {
            singularity_image(cx, st, sb);
        }
    } else if (sb->step == STEP_S_BUILD) {
        if (ok) {
            rt_free(sb->image);
            sb->image = sb->sif;
            sb->sif = NULL;
        } else {
            RT_WARN("terminal", "SIF build failed, using %s directly", sb->image);
            (void)unlink(sb->sif); /* no half-written image in the cache */
        }
        singularity_start(cx, st, sb);
    } else {
        if (!ok) {
            char *t = step_text(sb);
            fail(cx, st, sb, "Singularity backend: could not start an instance: %s",
                 *t             ? t
                 : e->timed_out ? "timed out"
                                : "no output");
            rt_free(t);
        } else {
            ready(cx, st, sb);
        }
    }
}

/* ================================================================ the chain */

static void start_chain(rt_ctx *cx, tp_state *st, tp_sandbox *sb)
{
    term_config *c = sb->cfg;
    switch (c->backend) {
    case TERM_BE_DOCKER:
        sb->exe = rt_xstrdup(c->docker_exe);
        run_step(cx, st, sb, STEP_D_VERSION, argv_of(sb->exe, "version", NULL, NULL), 15000, NULL);
        break;
    case TERM_BE_SINGULARITY: {
        char *a = term_which("apptainer");
        char *s = a ? NULL : term_which("singularity");
        if (!a && !s) {
            fail(cx, st, sb,
                 "Singularity backend unavailable: neither 'apptainer' nor 'singularity' was "
                 "found on PATH.");
            return;
        }
        sb->exe = rt_xstrdup(a ? "apptainer" : "singularity");
        rt_free(a);
        rt_free(s);
        run_step(cx, st, sb, STEP_S_VERSION, argv_of(sb->exe, "--version", NULL, NULL), 15000,
                 NULL);
        break;
    }
    case TERM_BE_SSH: {
        if (!c->ssh_host || !c->ssh_user) {
            fail(cx, st, sb, "SSH environment requires ssh_host and ssh_user to be configured");
            return;
        }
        sb->exe = rt_xstrdup("ssh");
        (void)mkdir_p(c->control_dir, 0700); /* a failure shows up in ssh's own error */
        term_target *t = term_target_new(c, sb->exe, NULL);
        char **argv = term_ssh_argv(t, NULL, "echo 'SSH connection established'");
        term_target_free(t);
        run_step(cx, st, sb, STEP_X_CONNECT, argv, 15000, NULL);
        break;
    }
    default:
        fail(cx, st, sb, "the %s backend has no sandbox", term_backend_name(c->backend));
        break;
    }
}

static void ssh_step_done(rt_ctx *cx, tp_state *st, tp_sandbox *sb, const rt_proc_msg_exit *e)
{
    if (e->err == -ENOENT) {
        fail(cx, st, sb, "SSH backend unavailable: 'ssh' was not found on PATH.");
    } else if (e->timed_out) {
        char dest[512];
        snprintf(dest, sizeof(dest), "%s@%s", sb->cfg->ssh_user, sb->cfg->ssh_host);
        fail(cx, st, sb, "SSH connection to %s timed out", dest);
    } else if (e->err || e->exit_code != 0) {
        char *t = step_text(sb);
        fail(cx, st, sb, "SSH connection failed: %s", *t ? t : rt_strerror(e->err));
        rt_free(t);
    } else {
        ready(cx, st, sb);
    }
}

void tp__sbx_output(tp_sandbox *sb, const rt_msg *m)
{
    const rt_proc_msg_output *o = (const rt_proc_msg_output *)m;
    rt_buf *b = o->stream == RT_PROC_STDERR ? &sb->err : &sb->out;
    (void)rt_buf_append(b, o->data, o->len); /* over the cap: the rest is not needed */
}

void tp__sbx_exit(rt_ctx *cx, tp_state *st, tp_sandbox *sb, const rt_msg *m)
{
    const rt_proc_msg_exit *e = (const rt_proc_msg_exit *)m;
    switch (sb->step) {
    case STEP_D_VERSION:
    case STEP_D_STORAGE:
    case STEP_D_RUN: docker_step_done(cx, st, sb, e); break;
    case STEP_S_VERSION:
    case STEP_S_BUILD:
    case STEP_S_START: singularity_step_done(cx, st, sb, e); break;
    case STEP_X_CONNECT: ssh_step_done(cx, st, sb, e); break;
    default: break;
    }
}

/* ================================================================ requests and use */

static char *sandbox_key(const term_config *c, const char *task)
{
    if (c->backend == TERM_BE_SSH)
        return rt_xasprintf("ssh:%s@%s:%d", c->ssh_user ? c->ssh_user : "",
                            c->ssh_host ? c->ssh_host : "", c->ssh_port);
    return rt_xasprintf("%s:%s", term_backend_name(c->backend), task);
}

void tp__sbx_request(rt_ctx *cx, tp_state *st, term_msg_sandbox *m)
{
    const char *task = m->task_id && *m->task_id ? m->task_id : "default";
    char *key = sandbox_key(m->config, task);
    tp_sandbox *sb = NULL;
    for (size_t i = 0; i < st->nsbx && !sb; i++)
        if (strcmp(st->sbx[i]->key, key) == 0)
            sb = st->sbx[i];
    bool fresh = !sb;
    if (fresh) {
        sb = rt_xcalloc(1, sizeof(*sb));
        sb->key = key;
        key = NULL;
        sb->task_id = rt_xstrdup(task);
        sb->cfg = m->config;
        m->config = NULL;
        rt_buf_init(&sb->out, STEP_OUT_MAX);
        rt_buf_init(&sb->err, STEP_OUT_MAX);
        if (st->nsbx == st->capsbx) {
            st->capsbx = st->capsbx ? st->capsbx * 2 : 8;
            st->sbx = rt_xrealloc(st->sbx, st->capsbx * sizeof(st->sbx[0]));
        }
        st->sbx[st->nsbx++] = sb;
    }
    rt_free(key);
    if (sb->nusers == sb->capusers) {
        sb->capusers = sb->capusers ? sb->capusers * 2 : 4;
        sb->users = rt_xrealloc(sb->users, sb->capusers * sizeof(sb->users[0]));
    }
    sb->users[sb->nusers].ref = m->reply_to;
    sb->users[sb->nusers].mon = rt_monitor(cx, m->reply_to);
    sb->nusers++;
    sb->last_used = now_ns(cx);
    if (sb->step == STEP_READY) {
        send_ready(cx, m->reply_to, sb, NULL);
        return;
    }
    if (sb->npending == sb->cappending) {
        sb->cappending = sb->cappending ? sb->cappending * 2 : 4;
        sb->pending = rt_xrealloc(sb->pending, sb->cappending * sizeof(sb->pending[0]));
    }
    sb->pending[sb->npending++] = m->reply_to;
    if (fresh)
        start_chain(cx, st, sb); /* may fail at once and free sb */
}

void tp__sbx_down(tp_state *st, rt_ref ref)
{
    for (size_t i = 0; i < st->nsbx; i++) {
        tp_sandbox *sb = st->sbx[i];
        for (size_t k = 0; k < sb->nusers; k++) {
            if (sb->users[k].ref != ref)
                continue;
            sb->users[k] = sb->users[--sb->nusers];
            return; /* last_used was set when it asked; the sweep measures from there */
        }
    }
}

static void teardown(rt_ctx *cx, tp_state *st, tp_sandbox *sb)
{
    char **argv = NULL;
    switch (sb->cfg->backend) {
    case TERM_BE_DOCKER: argv = argv_of(sb->exe, "rm", "-f", sb->container); break;
    case TERM_BE_SINGULARITY: argv = argv_of(sb->exe, "instance", "stop", sb->container); break;
    case TERM_BE_SSH: {
        const char *extra[] = {"-O", "exit", NULL};
        argv = term_ssh_argv(sb->target, extra, NULL);
        break;
    }
    default: break;
    }
    RT_INFO("terminal", "sandbox %s idle: tearing it down", sb->key);
    if (argv)
        tp__fire(cx, st, argv, 60000);
}

bool tp__sbx_sweep(rt_ctx *cx, tp_state *st)
{
    int64_t now = now_ns(cx);
    for (size_t i = 0; i < st->nsbx;) {
        tp_sandbox *sb = st->sbx[i];
        if (sb->step != STEP_READY) {
            i++;
            continue;
        }
        if (sb->nusers || tp__sandbox_busy(st, sb->target, sb->task_id))
            sb->last_used = now; /* in use: the idle time starts when that ends */
        if (now - sb->last_used <= sb->cfg->lifetime_s * 1000000000) {
            i++;
            continue;
        }
        teardown(cx, st, sb);
        remove_sandbox(cx, st, sb);
    }
    return st->nsbx > 0;
}

void tp__sbx_free_all(tp_state *st)
{
    for (size_t i = 0; i < st->nsbx; i++)
        free_sandbox(st->sbx[i]);
    rt_free(st->sbx);
    st->sbx = NULL;
    st->nsbx = st->capsbx = 0;
}
