/*
 * ckpt_svc — the checkpoint service (see ckpt.h): requests become jobs, a job is a short
 * list of git commands run one after the other through rt_proc, and each job ends with
 * exactly one reply.
 *
 * Invariants:
 *   1. At most one job runs per shadow repository (dir key); later jobs for it wait in
 *      arrival order, jobs for other repositories run meanwhile.
 *   2. A job with a process in flight has proc != 0; its EXIT moves it to the next step or
 *      ends it. Output beyond CKPT_TEXT_MAX is dropped by rt_proc (bounded memory).
 *   3. The (session, turn, directory) seen-set is bounded (SEEN_MAX); forgetting it only
 *      costs a second snapshot in a turn, which is a no-op when nothing changed.
 *
 * Threads: the service is a detached actor; everything here runs on its thread.
 */
#include "ckpt.h"

#include "ag_session.h"
#include "ft_fs.h"
#include "hm_config.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_map.h"
#include "rt_proc.h"
#include "rt_util.h"
#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEEN_MAX       4096
#define ERR_KEEP       (16 * 1024) /* stderr bytes kept for messages */
#define ADD_TIMEOUT_MS (2 * CKPT_GIT_TIMEOUT_MS)

/* The original's default excludes (info/exclude of every shadow repository). */
static const char *const excludes[] = {
    "node_modules/", "dist/",        "build/",    "target/",    "out/",         ".next/",
    ".nuxt/",        "__pycache__/", "*.pyc",     "*.pyo",      ".cache/",      ".pytest_cache/",
    ".mypy_cache/",  ".ruff_cache/", "coverage/", ".coverage",  ".venv/",       "venv/",
    "env/",          ".git/",        ".hg/",      ".svn/",      ".worktrees/",  "*.so",
    "*.dylib",       "*.dll",        "*.o",       "*.a",        "*.jar",        "*.class",
    "*.exe",         "*.obj",        "*.mp4",     "*.mov",      "*.mkv",        "*.webm",
    "*.zip",         "*.tar",        "*.tar.gz",  "*.tgz",      "*.7z",         "*.rar",
    "*.iso",         ".env",         ".env.*",    ".env.local", ".env.*.local", ".DS_Store",
    "Thumbs.db",     "*.log",
};

/* Files that mark a project's root (the original's get_working_dir_for_path). */
static const char *const markers[] = {".git",   "pyproject.toml", "package.json", "Cargo.toml",
                                      "go.mod", "Makefile",       "pom.xml",      ".hg",
                                      "Gemfile"};

enum step {
    S_NONE = 0,
    S_INIT,     /* git init */
    S_ADD,      /* git add -A */
    S_DIFF,     /* git diff --cached --quiet: 0 nothing changed, 1 changes */
    S_COMMIT,   /* git commit */
    S_LOG,      /* git log: the list (LIST), or the N-th hash (ROLLBACK) */
    S_REVPARSE, /* ROLLBACK by hash: does it name a commit? */
    S_CHECKOUT, /* ROLLBACK: git checkout <hash> -- . */
    S_SUBJECT,  /* ROLLBACK: the restored checkpoint's message */
};

typedef struct job {
    struct job *next;
    int op, reply_kind;
    rt_ref reply_to;
    uint64_t tag;
    char *home, *dir, *repo, *reason, *target;
    char *hash;   /* ROLLBACK: the commit to restore */
    uint64_t key; /* the repository (invariant 1) */
    int max;      /* checkpoints listed */
    bool active;
    bool noop; /* a snapshot already taken this turn: answered when the repository is free */
    int step;
    uint64_t proc;
    rt_buf out, err;
    bool taken;
} job;

typedef struct svc {
    char *git;
    job *head, **tail;
    size_t njobs;
    rt_map seen; /* hash(session, dir) → turn + 1 */
    /* config.yaml cache */
    char *cfg_home;
    hm_config *cfg;
    struct stat cfg_st;
    bool cfg_loaded;
} svc;

static void job_free(job *j)
{
    rt_free(j->home);
    rt_free(j->dir);
    rt_free(j->repo);
    rt_free(j->reason);
    rt_free(j->target);
    rt_free(j->hash);
    rt_buf_fini(&j->out);
    rt_buf_fini(&j->err);
    rt_free(j);
}

/* ================================================================ replies */

static void drop_done(rt_msg *m)
{
    rt_free(((ckpt_msg_done *)m)->text);
}
static void drop_tool(rt_msg *m)
{
    rt_free(((tool_msg_result *)m)->result);
}
static void drop_ctl(rt_msg *m)
{
    rt_free(((ag_msg_control_reply *)m)->text);
    cJSON_Delete(((ag_msg_control_reply *)m)->info);
}

static void reply(rt_ctx *cx, int kind, rt_ref to, uint64_t tag, int op, int err, bool taken,
                  char *text)
{
    if (!to) {
        rt_free(text);
        return;
    }
    if (kind == CKPT_REPLY_TOOL) {
        tool_msg_result *r = RT_MSG_NEW(tool_msg_result, TOOL_MSG_RESULT);
        r->seq = tag;
        r->result = text;
        r->hdr.drop = drop_tool;
        rt_send(cx, to, &r->hdr);
    } else if (kind == CKPT_REPLY_CONTROL) {
        ag_msg_control_reply *r = RT_MSG_NEW(ag_msg_control_reply, AG_MSG_CONTROL_REPLY);
        r->tag = tag;
        r->err = err;
        r->n = taken;
        r->text = text;
        r->hdr.drop = drop_ctl;
        rt_send(cx, to, &r->hdr);
    } else {
        ckpt_msg_done *d = RT_MSG_NEW(ckpt_msg_done, CKPT_MSG_DONE);
        d->tag = tag;
        d->op = op;
        d->err = err;
        d->taken = taken;
        d->text = text;
        d->hdr.drop = drop_done;
        rt_send(cx, to, &d->hdr);
    }
}

static void reply_req(rt_ctx *cx, const ckpt_msg_req *q, int err, char *text)
{
    reply(cx, q->reply_kind, q->reply_to, q->tag, q->op, err, false, text);
}

/* ================================================================ settings */

/* checkpoints.enabled / max_snapshots of home's config.yaml, loaded again when it changed. */
static void settings(svc *s, const char *home, bool *enabled, int *max)
{
    char *path = rt_xasprintf("%s/config.yaml", home);
    struct stat st;
    bool have = stat(path, &st) == 0;
    rt_free(path);
    if (!have)
        memset(&st, 0, sizeof(st));
    bool same = s->cfg_loaded && s->cfg_home && strcmp(s->cfg_home, home) == 0 &&
                st.st_mtim.tv_sec == s->cfg_st.st_mtim.tv_sec &&
                st.st_mtim.tv_nsec == s->cfg_st.st_mtim.tv_nsec &&
                st.st_size == s->cfg_st.st_size && st.st_ino == s->cfg_st.st_ino;
    if (!same) {
        hm_config_unref(s->cfg);
        rt_free(s->cfg_home);
        int err = 0;
        s->cfg = hm_config_load(home, 0, NULL, &err);
        if (!s->cfg)
            RT_WARN("ckpt", "config.yaml in %s unreadable (%s): checkpoints off", home,
                    rt_strerror(err));
        s->cfg_home = rt_xstrdup(home);
        s->cfg_st = st;
        s->cfg_loaded = true;
    }
    *enabled = s->cfg && hm_config_bool(s->cfg, "checkpoints.enabled");
    int64_t m = s->cfg ? hm_config_int(s->cfg, "checkpoints.max_snapshots") : 0;
    *max = m > 0 ? (int)(m > 10000 ? 10000 : m) : CKPT_MAX_SNAPSHOTS_DEFAULT;
}

/* ================================================================ directories */

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

/* The canonical absolute form of dir (relative to base), or NULL. */
static char *canonical(const char *base, const char *dir)
{
    char *e = ft_expand_user(dir);
    char *a = ft_abs(base, e);
    char *r = ft_realpath(a);
    rt_free(e);
    rt_free(a);
    return r;
}

/* The directory a change to path belongs to: the nearest ancestor with a project marker
 * below $HOME, else the file's own directory (a directory path is taken as it is). */
static char *project_dir(const char *base, const char *path)
{
    char *abs = canonical(base, path);
    if (!abs)
        return NULL;
    if (is_dir(abs))
        return abs;
    char *slash = strrchr(abs, '/');
    if (slash)
        *slash = '\0';
    if (!*abs)
        return (rt_free(abs), rt_xstrdup("/"));
    char *home = ft_home();
    char *check = rt_xstrdup(abs);
    for (int depth = 0; depth < 256 && strcmp(check, "/") && strcmp(check, home); depth++) {
        for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
            char *m = rt_xasprintf("%s/%s", check, markers[i]);
            bool found = exists(m);
            rt_free(m);
            if (found) {
                rt_free(abs);
                rt_free(home);
                return check;
            }
        }
        char *up = strrchr(check, '/');
        if (!up)
            break;
        if (up == check)
            up[1] = '\0';
        else
            *up = '\0';
    }
    rt_free(check);
    rt_free(home);
    return abs;
}

/* "/" and $HOME are too broad to snapshot (the original's rule). */
static bool too_broad(const char *dir)
{
    char *home = ft_home();
    char *h = ft_realpath(home);
    bool broad = strcmp(dir, "/") == 0 || strcmp(dir, home) == 0 || (h && strcmp(dir, h) == 0);
    rt_free(home);
    rt_free(h);
    return broad;
}

static char *repo_of(const char *home, const char *dir)
{
    char hx[CKPT_HASH_HEX + 1];
    ckpt_dir_hash(dir, hx);
    return rt_xasprintf("%s/checkpoints/%s", home, hx);
}

/* Write text to path (replacing it). 0 or -errno. */
static int put_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t n = strlen(text), off = 0;
    int rc = 0;
    while (off < n) {
        ssize_t w = write(fd, text + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = w < 0 ? -errno : -EIO;
            break;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0 && !rc)
        rc = -errno;
    return rc;
}

/* The marker and the excludes of a freshly made repository. 0 or -errno. */
static int repo_files(const job *j)
{
    char *p = rt_xasprintf("%s/HERMES_WORKDIR", j->repo);
    char *t = rt_xasprintf("%s\n", j->dir);
    int rc = put_file(p, t);
    rt_free(p);
    rt_free(t);
    if (rc)
        return rc;
    p = rt_xasprintf("%s/info", j->repo);
    rc = ft_mkdirs(p, NULL);
    rt_free(p);
    if (rc)
        return rc;
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    for (size_t i = 0; i < sizeof(excludes) / sizeof(excludes[0]); i++)
        rt_buf_printf(&b, "%s\n", excludes[i]);
    p = rt_xasprintf("%s/info/exclude", j->repo);
    rc = put_file(p, rt_buf_cstr(&b));
    rt_free(p);
    rt_buf_fini(&b);
    return rc;
}

/* ================================================================ git */

static int git(rt_ctx *cx, svc *s, job *j, int step, const char *const *args, int64_t timeout)
{
    const char *argv[24];
    size_t n = 0;
    argv[n++] = s->git;
    static const char *const cfg[] = {
        "-c", "user.name=Hermes Checkpoint", "-c", "user.email=hermes@local",
        "-c", "commit.gpgsign=false",        "-c", "core.quotepath=false"};
    for (size_t i = 0; i < sizeof(cfg) / sizeof(cfg[0]); i++)
        argv[n++] = cfg[i];
    for (size_t i = 0; args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const char *path = getenv("PATH");
    const char *home = getenv("HOME");
    char *e_dir = rt_xasprintf("GIT_DIR=%s", j->repo);
    char *e_wt = rt_xasprintf("GIT_WORK_TREE=%s", j->dir);
    char *e_path = rt_xasprintf("PATH=%s", path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    char *e_home = rt_xasprintf("HOME=%s", home && *home ? home : "/");
    const char *env[] = {e_dir,
                         e_wt,
                         e_path,
                         e_home,
                         "GIT_CONFIG_GLOBAL=/dev/null",
                         "GIT_CONFIG_SYSTEM=/dev/null",
                         "GIT_CONFIG_NOSYSTEM=1",
                         "GIT_TERMINAL_PROMPT=0",
                         "LC_ALL=C",
                         NULL};
    rt_buf_reset(&j->out);
    rt_buf_reset(&j->err);
    rt_proc_opts o = {.argv = argv,
                      .cwd = j->dir,
                      .env = env,
                      .timeout_ms = timeout,
                      .max_output = CKPT_TEXT_MAX,
                      .reply_to = rt_self(cx),
                      .tag = (uint64_t)(uintptr_t)j};
    j->step = step;
    j->proc = rt_proc_spawn(cx, &o);
    rt_free(e_dir);
    rt_free(e_wt);
    rt_free(e_path);
    rt_free(e_home);
    return j->proc ? 0 : -EINVAL;
}

/* ================================================================ the job list */

static void start_job(rt_ctx *cx, svc *s, job *j);

static bool key_active(const svc *s, uint64_t key)
{
    for (const job *k = s->head; k; k = k->next)
        if (k->active && k->key == key)
            return true;
    return false;
}

/* End j: reply, unlink, free, and start the next job of its repository (invariant 1). */
static void finish(rt_ctx *cx, svc *s, job *j, int err, char *text)
{
    reply(cx, j->reply_kind, j->reply_to, j->tag, j->op, err, j->taken, text);
    job **pp = &s->head;
    while (*pp && *pp != j)
        pp = &(*pp)->next;
    if (*pp)
        *pp = j->next;
    if (s->tail == &j->next)
        s->tail = pp;
    s->njobs--;
    uint64_t key = j->key;
    job_free(j);
    for (job *k = s->head; k; k = k->next)
        if (!k->active && k->key == key) {
            start_job(cx, s, k);
            return;
        }
}

static void fail(rt_ctx *cx, svc *s, job *j, int err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void fail(rt_ctx *cx, svc *s, job *j, int err, const char *fmt, ...)
{
    rt_buf b;
    rt_buf_init(&b, CKPT_TEXT_MAX);
    rt_buf_append_str(&b, "\xe2\x9d\x8c "); /* ❌ */
    va_list ap;
    va_start(ap, fmt);
    rt_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    RT_DEBUG("ckpt", "op=%d dir=%s: %s", j->op, j->dir ? j->dir : "?", rt_buf_cstr(&b));
    finish(cx, s, j, err, rt_buf_steal(&b, NULL));
}

static char *errtext(job *j)
{
    const char *e = rt_buf_cstr(&j->err);
    size_t n = strlen(e);
    while (n && (e[n - 1] == '\n' || e[n - 1] == ' '))
        n--;
    return n ? rt_xasprintf("%.*s", (int)(n > 400 ? 400 : n), e) : rt_xstrdup("no details");
}

/* ================================================================ steps */

static void step_add(rt_ctx *cx, svc *s, job *j)
{
    static const char *const a[] = {"add", "-A", NULL};
    if (git(cx, s, j, S_ADD, a, ADD_TIMEOUT_MS))
        fail(cx, s, j, -EINVAL, "Could not start git");
}

static void step_checkout(rt_ctx *cx, svc *s, job *j)
{
    const char *a[] = {"checkout", j->hash, "--", ".", NULL};
    if (git(cx, s, j, S_CHECKOUT, a, ADD_TIMEOUT_MS))
        fail(cx, s, j, -EINVAL, "Could not start git");
}

/* A snapshot (also the pre-rollback one): create the repository if needed, then add. */
static void begin_snapshot(rt_ctx *cx, svc *s, job *j)
{
    char *head = rt_xasprintf("%s/HEAD", j->repo);
    bool have = exists(head);
    rt_free(head);
    if (have) {
        step_add(cx, s, j);
        return;
    }
    int rc = ft_mkdirs(j->repo, NULL);
    if (rc) {
        fail(cx, s, j, rc, "Could not create %s: %s", j->repo, rt_strerror(rc));
        return;
    }
    static const char *const a[] = {"init", "-q", NULL};
    if (git(cx, s, j, S_INIT, a, CKPT_GIT_TIMEOUT_MS))
        fail(cx, s, j, -EINVAL, "Could not start git");
}

static void begin_log(rt_ctx *cx, svc *s, job *j)
{
    char n[24];
    snprintf(n, sizeof(n), "%d", j->max);
    const char *a[] = {"log", "--format=%x1e%H%x1f%h%x1f%aI%x1f%P%x1f%s", "--shortstat", "-n", n,
                       NULL};
    if (git(cx, s, j, S_LOG, a, CKPT_GIT_TIMEOUT_MS))
        fail(cx, s, j, -EINVAL, "Could not start git");
}

static void start_job(rt_ctx *cx, svc *s, job *j)
{
    j->active = true;
    if (j->noop) {
        finish(cx, s, j, 0, NULL);
        return;
    }
    if (j->op == CKPT_OP_SNAPSHOT) {
        begin_snapshot(cx, s, j);
        return;
    }
    char *head = rt_xasprintf("%s/HEAD", j->repo);
    bool have = exists(head);
    rt_free(head);
    if (!have) {
        if (j->op == CKPT_OP_ROLLBACK && !j->hash)
            finish(cx, s, j, -ENOENT, rt_xasprintf("No checkpoints found for %s", j->dir));
        else if (j->op == CKPT_OP_ROLLBACK)
            fail(cx, s, j, -ENOENT, "No checkpoints exist for this directory");
        else
            finish(cx, s, j, 0, rt_xasprintf("No checkpoints found for %s", j->dir));
        return;
    }
    if (j->op == CKPT_OP_LIST || !j->hash) {
        begin_log(cx, s, j);
        return;
    }
    char *spec = rt_xasprintf("%s^{commit}", j->hash);
    const char *a[] = {"rev-parse", "--verify", "--quiet", spec, NULL};
    int rc = git(cx, s, j, S_REVPARSE, a, CKPT_GIT_TIMEOUT_MS);
    rt_free(spec);
    if (rc)
        fail(cx, s, j, -EINVAL, "Could not start git");
}

/* ---- the list ---- */

typedef struct entry {
    char *hash, *shorth, *date, *subject;
    bool root;
    long files, ins, del;
} entry;

static long stat_num(const char *s, const char *word)
{
    const char *p = strstr(s, word);
    if (!p)
        return 0;
    while (p > s && p[-1] == ' ')
        p--;
    while (p > s && p[-1] >= '0' && p[-1] <= '9')
        p--;
    return strtol(p, NULL, 10);
}

/* Split git log's output (records start with 0x1e, fields end with 0x1f) into entries;
 * returns how many (at most cap). Fields point into text (modified). */
static size_t parse_log(char *text, entry *v, size_t cap)
{
    size_t n = 0;
    char *rec = strchr(text, '\x1e');
    while (rec && n < cap) {
        char *next = strchr(rec + 1, '\x1e');
        if (next)
            *next = '\0';
        char *f[5] = {0};
        char *p = rec + 1;
        for (int i = 0; i < 4 && p; i++) {
            f[i] = p;
            p = strchr(p, '\x1f');
            if (p)
                *p++ = '\0';
        }
        f[4] = p;
        char *rest = p ? strchr(p, '\n') : NULL;
        if (rest)
            *rest++ = '\0';
        if (f[0] && f[4]) {
            entry *e = &v[n++];
            e->hash = f[0];
            e->shorth = f[1];
            e->date = f[2];
            e->root = !f[3] || !*f[3];
            e->subject = f[4];
            e->files = rest ? stat_num(rest, " file") : 0;
            e->ins = rest ? stat_num(rest, " insertion") : 0;
            e->del = rest ? stat_num(rest, " deletion") : 0;
        }
        rec = next;
    }
    return n;
}

static char *format_list(const char *dir, const entry *v, size_t n)
{
    if (!n)
        return rt_xasprintf("No checkpoints found for %s", dir);
    rt_buf b;
    rt_buf_init(&b, CKPT_TEXT_MAX);
    rt_buf_printf(&b, "\xf0\x9f\x93\xb8 Checkpoints for %s:\n", dir); /* 📸 */
    for (size_t i = 0; i < n; i++) {
        const entry *e = &v[i];
        char when[32];
        const char *t = strchr(e->date, 'T');
        if (t)
            snprintf(when, sizeof(when), "%.*s %.5s", (int)(t - e->date), e->date, t + 1);
        else
            snprintf(when, sizeof(when), "%s", e->date);
        rt_buf_printf(&b, "\n  %zu. %s  %s  %s", i + 1, e->shorth, when, e->subject);
        if (e->files && !e->root)
            rt_buf_printf(&b, "  (%ld file%s, +%ld/-%ld)", e->files, e->files != 1 ? "s" : "",
                          e->ins, e->del);
    }
    rt_buf_append_str(&b, "\n\n  /rollback <N>             restore to checkpoint N");
    return rt_buf_steal(&b, NULL);
}

static void on_log(rt_ctx *cx, svc *s, job *j, int code)
{
    entry *v = rt_xcalloc((size_t)j->max + 1, sizeof(*v));
    char *text = rt_buf_steal(&j->out, NULL);
    rt_buf_init(&j->out, CKPT_TEXT_MAX);
    size_t n = code == 0 ? parse_log(text, v, (size_t)j->max) : 0; /* 128: no commit yet */
    if (j->op == CKPT_OP_LIST) {
        finish(cx, s, j, 0, format_list(j->dir, v, n));
    } else if (!n) {
        finish(cx, s, j, -ENOENT, rt_xasprintf("No checkpoints found for %s", j->dir));
    } else {
        int64_t k = 0;
        rt_parse_i64(j->target, INT64_MIN, INT64_MAX, &k);
        if (k < 1 || (uint64_t)k > n) {
            finish(cx, s, j, -EINVAL, rt_xasprintf("Invalid checkpoint number. Use 1-%zu.", n));
        } else {
            j->hash = rt_xstrdup(v[k - 1].hash);
            rt_free(j->reason);
            j->reason = rt_xasprintf("pre-rollback snapshot (restoring to %.8s)", j->hash);
            step_add(cx, s, j);
        }
    }
    rt_free(text);
    rt_free(v);
}

/* ---- an exit ---- */

static void on_step(rt_ctx *cx, svc *s, job *j, int code)
{
    switch (j->step) {
    case S_INIT: {
        if (code != 0)
            goto git_failed;
        int rc = repo_files(j);
        if (rc) {
            fail(cx, s, j, rc, "Could not prepare %s: %s", j->repo, rt_strerror(rc));
            return;
        }
        step_add(cx, s, j);
        return;
    }
    case S_ADD: {
        if (code != 0)
            goto git_failed;
        static const char *const a[] = {"diff", "--cached", "--quiet", NULL};
        if (git(cx, s, j, S_DIFF, a, CKPT_GIT_TIMEOUT_MS))
            fail(cx, s, j, -EINVAL, "Could not start git");
        return;
    }
    case S_DIFF: {
        if (code == 0) { /* nothing changed since the last checkpoint */
            if (j->op == CKPT_OP_ROLLBACK)
                step_checkout(cx, s, j);
            else
                finish(cx, s, j, 0, NULL);
            return;
        }
        if (code != 1)
            goto git_failed;
        const char *a[] = {"commit",
                           "-q",
                           "--no-verify",
                           "--no-gpg-sign",
                           "--allow-empty-message",
                           "-m",
                           j->reason ? j->reason : "",
                           NULL};
        if (git(cx, s, j, S_COMMIT, a, CKPT_GIT_TIMEOUT_MS))
            fail(cx, s, j, -EINVAL, "Could not start git");
        return;
    }
    case S_COMMIT:
        if (code != 0)
            goto git_failed;
        j->taken = true;
        RT_DEBUG("ckpt", "checkpoint in %s: %s", j->dir, j->reason ? j->reason : "");
        if (j->op == CKPT_OP_ROLLBACK)
            step_checkout(cx, s, j);
        else
            finish(cx, s, j, 0, NULL);
        return;
    case S_LOG:
        if (code != 0 && code != 128)
            goto git_failed;
        on_log(cx, s, j, code);
        return;
    case S_REVPARSE: {
        const char *out = rt_buf_cstr(&j->out);
        size_t n = strcspn(out, "\n");
        if (code != 0 || n < 4) {
            fail(cx, s, j, -ENOENT, "Checkpoint '%s' not found", j->hash);
            return;
        }
        char *full = rt_xasprintf("%.*s", (int)n, out);
        rt_free(j->hash);
        j->hash = full;
        rt_free(j->reason);
        j->reason = rt_xasprintf("pre-rollback snapshot (restoring to %.8s)", j->hash);
        step_add(cx, s, j);
        return;
    }
    case S_CHECKOUT: {
        if (code != 0) {
            char *e = errtext(j);
            fail(cx, s, j, -EIO, "Restore failed: %s", e);
            rt_free(e);
            return;
        }
        const char *a[] = {"log", "--format=%s", "-1", j->hash, NULL};
        if (git(cx, s, j, S_SUBJECT, a, CKPT_GIT_TIMEOUT_MS))
            fail(cx, s, j, -EINVAL, "Could not start git");
        return;
    }
    case S_SUBJECT: {
        const char *out = rt_buf_cstr(&j->out);
        int n = (int)strcspn(out, "\n");
        finish(cx, s, j, 0,
               rt_xasprintf("\xe2\x9c\x85 Restored to checkpoint %.8s: %.*s\nA pre-rollback "
                            "snapshot was saved automatically.",
                            j->hash, code == 0 ? n : 7, code == 0 ? out : "unknown"));
        return;
    }
    default: return;
    }
git_failed : {
    char *e = errtext(j);
    fail(cx, s, j, -EIO, "git failed (exit %d): %s", code, e);
    rt_free(e);
}
}

static job *job_of_proc(svc *s, uint64_t id)
{
    for (job *j = s->head; j; j = j->next)
        if (j->proc == id)
            return j;
    return NULL;
}

static void on_output(svc *s, rt_proc_msg_output *o)
{
    job *j = job_of_proc(s, o->id);
    if (!j)
        return;
    if (o->stream == RT_PROC_STDOUT)
        (void)rt_buf_append(&j->out, o->data, o->len); /* -E2BIG: the rest is not needed */
    else
        (void)rt_buf_append(&j->err, o->data, o->len);
}

static void on_exit_msg(rt_ctx *cx, svc *s, rt_proc_msg_exit *e)
{
    job *j = job_of_proc(s, e->id);
    if (!j)
        return;
    j->proc = 0;
    if (e->err == -ENOENT) {
        fail(cx, s, j, -ENOENT, "Checkpoints need git, which is not installed (or not on PATH): %s",
             s->git);
    } else if (e->err) {
        fail(cx, s, j, e->err, "Could not run git: %s", rt_strerror(e->err));
    } else if (e->timed_out) {
        fail(cx, s, j, -ETIMEDOUT, "git timed out after %d s", CKPT_GIT_TIMEOUT_MS / 1000);
    } else if (e->term_signal) {
        fail(cx, s, j, -EINTR, "git was stopped by signal %d", e->term_signal);
    } else {
        on_step(cx, s, j, e->exit_code);
    }
}

/* ================================================================ requests */

/* The working directory a snapshot request names, or NULL (reason in *why). */
static char *snapshot_dir(const ckpt_msg_req *q)
{
    const char *base = q->dir && *q->dir ? q->dir : NULL;
    if (q->path && *q->path)
        return project_dir(base, q->path);
    if (!base)
        return NULL;
    return canonical(NULL, base);
}

static bool seen_before(svc *s, const ckpt_msg_req *q, const char *dir)
{
    if (!q->session)
        return false;
    uint64_t key = rt_hash_u64(q->session) ^ rt_hash_str(dir);
    if (!key)
        key = 1;
    void *v = rt_map_get(&s->seen, key);
    if (v && (uint64_t)(uintptr_t)v == q->turn + 1)
        return true;
    if (s->seen.n >= SEEN_MAX && !v) { /* invariant 3 */
        rt_map_fini(&s->seen);
        rt_map_init(&s->seen);
    }
    rt_map_put(&s->seen, key, (void *)(uintptr_t)(q->turn + 1));
    return false;
}

static void on_request(rt_ctx *cx, svc *s, ckpt_msg_req *q)
{
    if (!q->home || !*q->home) {
        reply_req(cx, q, -EINVAL, rt_xstrdup("\xe2\x9d\x8c No Hermes home directory"));
        return;
    }
    bool enabled;
    int max;
    settings(s, q->home, &enabled, &max);
    if (q->enabled >= 0)
        enabled = q->enabled != 0;
    if (q->max_snapshots > 0)
        max = q->max_snapshots;
    if (!enabled) {
        reply_req(cx, q, -ENOTSUP,
                  q->op == CKPT_OP_SNAPSHOT ? NULL : rt_xstrdup(CKPT_DISABLED_TEXT));
        return;
    }
    char why[160];
    bool by_hash = false;
    if (q->op == CKPT_OP_ROLLBACK) {
        int64_t k;
        if (!ckpt_target_is_number(q->target, max, &k)) {
            if (!ckpt_hash_is_valid(q->target, why, sizeof(why))) {
                reply_req(cx, q, -EINVAL, rt_xasprintf("\xe2\x9d\x8c %s", why));
                return;
            }
            by_hash = true;
        }
    }
    char *dir =
        q->op == CKPT_OP_SNAPSHOT ? snapshot_dir(q) : (q->dir ? canonical(NULL, q->dir) : NULL);
    if (!dir || !is_dir(dir)) {
        reply_req(cx, q, -ENOENT,
                  q->op == CKPT_OP_SNAPSHOT
                      ? NULL
                      : rt_xasprintf("\xe2\x9d\x8c Working directory not found: %s",
                                     dir ? dir : (q->dir ? q->dir : "(none)")));
        rt_free(dir);
        return;
    }
    if (q->op == CKPT_OP_SNAPSHOT && too_broad(dir)) {
        rt_free(dir);
        reply_req(cx, q, 0, NULL);
        return;
    }
    /* Taken this turn: the answer waits for a snapshot still running there (invariant 1). */
    bool noop = q->op == CKPT_OP_SNAPSHOT && seen_before(s, q, dir);
    if (s->njobs >= CKPT_QUEUE_MAX) {
        rt_free(dir);
        reply_req(cx, q, -EAGAIN, rt_xstrdup("\xe2\x9d\x8c Too many checkpoint requests"));
        return;
    }
    job *j = rt_xcalloc(1, sizeof(*j));
    j->op = q->op;
    j->reply_kind = q->reply_kind;
    j->reply_to = q->reply_to;
    j->tag = q->tag;
    j->home = rt_xstrdup(q->home);
    j->dir = dir;
    j->repo = repo_of(q->home, dir);
    j->key = rt_hash_str(j->repo);
    j->reason = q->reason ? rt_xstrdup(q->reason) : rt_xstrdup("auto");
    j->target = q->target ? rt_xstrdup(q->target) : NULL;
    j->hash = by_hash ? rt_xstrdup(q->target) : NULL;
    j->max = max;
    j->noop = noop;
    rt_buf_init(&j->out, CKPT_TEXT_MAX);
    rt_buf_init(&j->err, ERR_KEEP);
    *s->tail = j;
    s->tail = &j->next;
    s->njobs++;
    if (!key_active(s, j->key))
        start_job(cx, s, j);
}

/* ================================================================ the actor */

static void svc_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    svc *s = state;
    switch (m->type) {
    case CKPT_MSG_REQ: on_request(cx, s, (ckpt_msg_req *)m); break;
    case RT_PROC_MSG_OUTPUT: on_output(s, (rt_proc_msg_output *)m); break;
    case RT_PROC_MSG_EXIT: on_exit_msg(cx, s, (rt_proc_msg_exit *)m); break;
    default: break;
    }
}

/* Jobs still open when the service ends get no reply: their askers are going too (the
 * runtime is stopping). */
static void svc_fini(void *state)
{
    svc *s = state;
    while (s->head) {
        job *j = s->head;
        s->head = j->next;
        job_free(j);
    }
    rt_map_fini(&s->seen);
    hm_config_unref(s->cfg);
    rt_free(s->cfg_home);
    rt_free(s->git);
    rt_free(s);
}

static const rt_actor_type svc_type = {"checkpoints", svc_behave, svc_fini, 0};

static svc *svc_new(const char *git)
{
    svc *s = rt_xcalloc(1, sizeof(*s));
    s->git = rt_xstrdup(git && *git ? git : "git");
    s->tail = &s->head;
    rt_map_init(&s->seen);
    return s;
}

rt_ref ckpt_service_spawn(rt_ctx *cx, const char *git)
{
    rt_spawn_opts o = {.flags = RT_SPAWN_DETACHED};
    return rt_spawn(cx, &svc_type, svc_new(git), &o);
}

rt_ref ckpt_service(rt_ctx *cx)
{
    rt_ref ref = rt_whereis(cx, CKPT_SERVICE_NAME);
    if (ref)
        return ref;
    rt_spawn_opts o = {.flags = RT_SPAWN_DETACHED, .name = CKPT_SERVICE_NAME};
    ref = rt_spawn(cx, &svc_type, svc_new(NULL), &o);
    return ref ? ref : rt_whereis(cx, CKPT_SERVICE_NAME); /* another thread won the race */
}
