/*
 * tool_patch — the `patch` tool (agent-core §3.3; the original's patch_replace and
 * patch_v4a with tools/fuzzy_match.py and tools/patch_parser.py).
 *
 * mode "replace": the fuzzy matcher (ft_fuzzy) on the file's bytes, the result written
 * back atomically through the write deny list, then
 *   {success:true, diff, files_modified:[path], lint:{...}}   or   {success:false, error}
 * mode "patch": a V4A patch (ft_v4a) → {success, diff, files_modified?, files_created?,
 * files_deleted?, lint?:{path:{...}}, error?}. Argument errors are {"error": ...} alone:
 * "path required", "old_string and new_string required", "patch content required",
 * "Unknown mode: <mode>".
 *
 * A V4A patch is applied in two phases: every operation is first worked out in memory
 * (against an overlay of the files earlier operations of the same patch change), and only
 * if all succeed are the files written, in order. So a patch that fails leaves no file
 * half-patched (the original wrote each operation as it went). The messages are the
 * original's ("Failed to update <path>: Could not apply hunk: ...", joined by "; "), with
 * " (no files were modified)" added. Deletes and moves also go through the deny list
 * (the original used plain rm/mv), and so does the destination of a move.
 *
 * After the edit each changed file is linted (ft_lint), one slice at a time (ft_tool.h),
 * so an interrupt ends the call at once: the edit stands, and a file not yet checked gets
 * {"status":"skipped","message":"Lint interrupted"}.
 *
 * Threads: a detached call actor (blocking file I/O, linters).
 */
#include "ft_fs.h"
#include "ft_fuzzy.h"
#include "ft_lint.h"
#include "ft_seqmatch.h"
#include "ft_text.h"
#include "ft_tool.h"
#include "ft_v4a.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"
#include "tool.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATCH_FILE_MAX ((size_t)32 << 20)  /* files larger than this are not patched */
#define PATCH_DIFF_MAX ((size_t)256 << 10) /* a longer diff is cut */

static const char SCHEMA[] =
    "{\"name\":\"patch\",\"description\":\"Targeted find-and-replace edits in files. Use this"
    " instead of sed/awk in terminal. Uses fuzzy matching (9 strategies) so minor whitespace/"
    "indentation differences won't break it. Returns a unified diff. Auto-runs syntax checks "
    "after editing.\\n\\nReplace mode (default): find a unique string and replace it.\\nPatch"
    " mode: apply V4A multi-file patches for bulk changes.\",\"parameters\":{\"type\":\"objec"
    "t\",\"properties\":{\"mode\":{\"type\":\"string\",\"enum\":[\"replace\",\"patch\"],\"des"
    "cription\":\"Edit mode: 'replace' for targeted find-and-replace, 'patch' for V4A multi-f"
    "ile patches\",\"default\":\"replace\"},\"path\":{\"type\":\"string\",\"description\":\"F"
    "ile path to edit (required for 'replace' mode)\"},\"old_string\":{\"type\":\"string\",\""
    "description\":\"Text to find in the file (required for 'replace' mode). Must be unique i"
    "n the file unless replace_all=true. Include enough surrounding context to ensure uniquen"
    "ess.\"},\"new_string\":{\"type\":\"string\",\"description\":\"Replacement text (required"
    " for 'replace' mode). Can be empty string to delete the matched text.\"},\"replace_all\""
    ":{\"type\":\"boolean\",\"description\":\"Replace all occurrences instead of requiring a "
    "unique match (default: false)\",\"default\":false},\"patch\":{\"type\":\"string\",\"desc"
    "ription\":\"V4A format patch content (required for 'patch' mode). Format:\\n*** Begin Pa"
    "tch\\n*** Update File: path/to/file\\n@@ context hint @@\\n context line\\n-removed line"
    "\\n+added line\\n*** End Patch\"}},\"required\":[\"mode\"]}}";

/* ================================================================== the job */

typedef struct lint_item {
    char *key;  /* the name in the result */
    char *path; /* what the linter is given (display form) */
} lint_item;

typedef struct patch_job {
    bool success;
    rt_buf diff;
    bool diff_cut;                       /* the diff reached PATCH_DIFF_MAX */
    cJSON *modified, *created, *deleted; /* arrays of names */
    char *error;
    bool single; /* replace mode: "lint" is one result, not a map */
    cJSON *lint; /* the single result, or {name: result} */
    lint_item *items;
    size_t n, i;
    ft_lint *cur;
    char *cwd;
} patch_job;

static patch_job *job_new(const tool_run *run)
{
    patch_job *j = rt_xcalloc(1, sizeof(*j));
    rt_buf_init(&j->diff, PATCH_DIFF_MAX + 64);
    j->modified = cJSON_CreateArray();
    j->created = cJSON_CreateArray();
    j->deleted = cJSON_CreateArray();
    j->cwd = run->env && run->env->cwd ? rt_xstrdup(run->env->cwd) : NULL;
    return j;
}

static void job_free(patch_job *j)
{
    if (!j)
        return;
    ft_lint_free(j->cur);
    rt_buf_fini(&j->diff);
    cJSON_Delete(j->modified);
    cJSON_Delete(j->created);
    cJSON_Delete(j->deleted);
    cJSON_Delete(j->lint);
    for (size_t i = 0; i < j->n; i++) {
        rt_free(j->items[i].key);
        rt_free(j->items[i].path);
    }
    rt_free(j->items);
    rt_free(j->error);
    rt_free(j->cwd);
    rt_free(j);
}

static void add_name(cJSON *arr, const char *name)
{
    char *c = ft_clean_dup(name, strlen(name));
    cJSON_AddItemToArray(arr, cJSON_CreateString(c));
    rt_free(c);
}

static void add_lint(patch_job *j, const char *key, const char *path)
{
    for (size_t i = 0; i < j->n; i++)
        if (strcmp(j->items[i].key, key) == 0)
            return; /* one result per name, as the original's dict */
    j->items = rt_xrealloc(j->items, (j->n + 1) * sizeof(j->items[0]));
    j->items[j->n++] = (lint_item){rt_xstrdup(key), rt_xstrdup(path)};
}

static void put_lint(patch_job *j, const char *key, cJSON *res)
{
    if (j->single) {
        cJSON_Delete(j->lint);
        j->lint = res;
        return;
    }
    if (!j->lint)
        j->lint = cJSON_CreateObject();
    char *k = ft_clean_dup(key, strlen(key));
    cJSON_AddItemToObject(j->lint, k, res);
    rt_free(k);
}

/* Append one operation's diff; diffs are joined with "\n" as the original. */
static void add_diff(patch_job *j, const char *text, size_t n, bool first)
{
    if (j->diff_cut)
        return;
    /* Invariant: j->diff.len <= PATCH_DIFF_MAX; the buffer keeps 64 bytes for the marker. */
    rt_buf t;
    rt_buf_init(&t, PATCH_DIFF_MAX - j->diff.len);
    int err = first ? 0 : rt_buf_append(&t, "\n", 1);
    if (!err)
        err = ft_append_clean(&t, text, n);
    (void)rt_buf_append(&j->diff, t.data ? t.data : "", t.len); /* fits: t.len <= room */
    if (err) {
        j->diff_cut = true;
        (void)rt_buf_append_str(&j->diff, "\n... [diff truncated]");
    }
    rt_buf_fini(&t);
}

/* PatchResult.to_dict */
static cJSON *job_result(patch_job *j)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", j->success);
    if (j->diff.len)
        cJSON_AddStringToObject(o, "diff", j->diff.data);
    cJSON **lists[3] = {&j->modified, &j->created, &j->deleted};
    const char *names[3] = {"files_modified", "files_created", "files_deleted"};
    for (int i = 0; i < 3; i++) {
        if (cJSON_GetArraySize(*lists[i]) > 0) {
            cJSON_AddItemToObject(o, names[i], *lists[i]);
            *lists[i] = NULL;
        }
    }
    if (j->lint && cJSON_GetArraySize(j->lint) > 0) {
        cJSON_AddItemToObject(o, "lint", j->lint);
        j->lint = NULL;
    }
    if (j->error) {
        char *e = ft_clean_dup(j->error, strlen(j->error));
        cJSON_AddStringToObject(o, "error", e);
        rt_free(e);
    }
    return o;
}

static cJSON *plain_error(const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    return o;
}

static char *unified(const char *a, size_t an, const char *b, size_t bn, const char *path)
{
    rt_buf out;
    rt_buf_init(&out, PATCH_DIFF_MAX);
    char *from = rt_xasprintf("a/%s", path), *to = rt_xasprintf("b/%s", path);
    (void)ft_unified_diff(a, an, b, bn, from, to, &out); /* cut at the limit: fine */
    rt_free(from);
    rt_free(to);
    return rt_buf_steal(&out, NULL);
}

/* ============================================================ replace mode */

static void fail(patch_job *j, char *msg)
{
    j->success = false;
    rt_free(j->error);
    j->error = msg;
}

static const char *read_reason(int err)
{
    return err == -EFBIG ? " (larger than 32 MiB)" : "";
}

static void do_replace(patch_job *j, const tool_run *run, const char *path, const char *old,
                       const char *new_, bool all)
{
    char *display, *abs;
    ft_tool_path(run, path, &display, &abs);
    char *data = NULL;
    size_t len = 0;
    int err;
    ft_fuzzy_result r = {0};
    if (ft_write_denied(abs)) {
        fail(j, rt_xasprintf(FT_DENY_FMT, display));
        goto out;
    }
    err = ft_read_all(abs, PATCH_FILE_MAX, &data, &len);
    if (err) {
        fail(j, rt_xasprintf("Failed to read file: %s%s", display, read_reason(err)));
        goto out;
    }
    if (ft_fuzzy_replace(data, len, old, strlen(old), new_, strlen(new_), all, &r) != 0) {
        fail(j, rt_xstrdup(r.error));
        goto out;
    }
    char *real = ft_realpath(abs);
    err = ft_write_atomic(real, r.content, r.len, NULL);
    rt_free(real);
    if (err) {
        fail(j, rt_xasprintf("Failed to write changes: Failed to write file: %s: %s", display,
                             rt_strerror(err)));
        goto out;
    }
    char *d = unified(data, len, r.content, r.len, display);
    add_diff(j, d, strlen(d), true);
    rt_free(d);
    add_name(j->modified, display);
    j->success = true;
    j->single = true;
    add_lint(j, display, display);
out:
    ft_fuzzy_result_fini(&r);
    rt_free(data);
    rt_free(display);
    rt_free(abs);
}

/* ============================================================== V4A: plan */

enum { VF_CONTENT = 1, VF_DELETED = 2, VF_ALIAS = 3 };

typedef struct vfile {
    char *real; /* resolved absolute path */
    int state;
    char *data; /* VF_CONTENT */
    size_t len;
    char *alias; /* VF_ALIAS: the file now lives at this disk path */
} vfile;

typedef struct overlay {
    vfile *v;
    size_t n;
} overlay;

enum { ACT_WRITE = 1, ACT_UNLINK = 2, ACT_RENAME = 3 };

typedef struct action {
    int kind;
    char *real, *real2; /* target (and rename destination) */
    char *data;         /* ACT_WRITE: owned */
    size_t len;
} action;

typedef struct plan_op {
    const ft_v4a_op *op;
    const char *verb; /* for "Failed to <verb> <path>" */
    action acts[2];
    int nacts;
    char *diff;
    cJSON *list; /* j->modified / created / deleted, or NULL */
    char *entry; /* the list entry */
    char *lint_key, *lint_path;
    bool done; /* committed */
} plan_op;

static vfile *ov_find(overlay *ov, const char *real)
{
    for (size_t i = ov->n; i-- > 0;)
        if (strcmp(ov->v[i].real, real) == 0)
            return &ov->v[i];
    return NULL;
}

static vfile *ov_set(overlay *ov, const char *real, int state)
{
    vfile *f = ov_find(ov, real);
    if (!f) {
        ov->v = rt_xrealloc(ov->v, (ov->n + 1) * sizeof(ov->v[0]));
        f = &ov->v[ov->n++];
        *f = (vfile){.real = rt_xstrdup(real)};
    }
    rt_free(f->data);
    rt_free(f->alias);
    f->data = f->alias = NULL;
    f->len = 0;
    f->state = state;
    return f;
}

static void ov_free(overlay *ov)
{
    for (size_t i = 0; i < ov->n; i++) {
        rt_free(ov->v[i].real);
        rt_free(ov->v[i].data);
        rt_free(ov->v[i].alias);
    }
    rt_free(ov->v);
}

static int ov_read(overlay *ov, const char *real, char **data, size_t *len)
{
    vfile *f = ov_find(ov, real);
    if (f && f->state == VF_DELETED)
        return -ENOENT;
    if (f && f->state == VF_CONTENT) {
        *data = rt_xmemdup(f->data, f->len + 1);
        (*data)[f->len] = '\0';
        *len = f->len;
        return 0;
    }
    return ft_read_all(f ? f->alias : real, PATCH_FILE_MAX, data, len);
}

/* 1 file, 2 directory, 0 missing — as the patch so far has left it. */
static int ov_kind(overlay *ov, const char *real)
{
    vfile *f = ov_find(ov, real);
    if (f)
        return f->state == VF_DELETED ? 0 : 1;
    struct stat st;
    if (lstat(real, &st) != 0)
        return 0;
    return S_ISDIR(st.st_mode) ? 2 : 1;
}

typedef struct paths {
    char *display, *abs, *real; /* real: symlinks resolved, the last one too */
    char *link;                 /* the last component kept (delete and move act on links) */
} paths;

static void paths_of(const tool_run *run, const char *p, paths *out)
{
    ft_tool_path(run, p, &out->display, &out->abs);
    out->real = ft_realpath(out->abs);
    char *dir = ft_path_dirname(out->abs);
    char *rdir = ft_realpath(dir[0] ? dir : "/");
    out->link = ft_path_join(rdir, ft_path_basename(out->abs));
    rt_free(dir);
    rt_free(rdir);
}

static void paths_fini(paths *p)
{
    rt_free(p->display);
    rt_free(p->abs);
    rt_free(p->real);
    rt_free(p->link);
}

static char *denied(const char *verb, const char *name, const paths *p)
{
    return rt_xasprintf("Failed to %s %s: " FT_DENY_FMT, verb, name, p->display);
}

static char *plan_add(const tool_run *run, overlay *ov, plan_op *po)
{
    const ft_v4a_op *op = po->op;
    paths p;
    paths_of(run, op->path, &p);
    char *err = NULL;
    if (ft_write_denied(p.abs)) {
        err = denied("add", op->path, &p);
        goto out;
    }
    if (ov_kind(ov, p.real) == 2) {
        err = rt_xasprintf("Failed to add %s: Is a directory", op->path);
        goto out;
    }
    size_t len;
    char *content = ft_v4a_add_content(op, &len);
    rt_buf d;
    rt_buf_init(&d, PATCH_DIFF_MAX);
    (void)rt_buf_printf(&d, "--- /dev/null\n+++ b/%s\n", op->path);
    for (size_t h = 0, first = 1; h < op->n; h++)
        for (size_t i = 0; i < op->hunks[h].n; i++) {
            const ft_v4a_line *l = &op->hunks[h].lines[i];
            if (l->prefix != '+')
                continue;
            (void)rt_buf_append_str(&d, first ? "+" : "\n+");
            (void)rt_buf_append(&d, l->text, l->len);
            first = 0;
        }
    po->diff = rt_buf_steal(&d, NULL);
    vfile *f = ov_set(ov, p.real, VF_CONTENT);
    f->data = rt_xmemdup(content, len + 1);
    f->len = len;
    po->acts[po->nacts++] = (action){ACT_WRITE, rt_xstrdup(p.real), NULL, content, len};
    po->entry = rt_xstrdup(op->path);
    po->lint_key = rt_xstrdup(op->path);
    po->lint_path = rt_xstrdup(p.display);
out:
    paths_fini(&p);
    return err;
}

static char *plan_delete(const tool_run *run, overlay *ov, plan_op *po)
{
    const ft_v4a_op *op = po->op;
    paths p;
    paths_of(run, op->path, &p);
    char *err = NULL;
    if (ft_write_denied(p.abs)) {
        err = denied("delete", op->path, &p);
    } else if (ov_kind(ov, p.link) == 0) {
        po->diff = rt_xasprintf("# %s already deleted or doesn't exist", op->path);
        po->entry = rt_xstrdup(op->path);
    } else if (ov_kind(ov, p.link) == 2) {
        err = rt_xasprintf("Failed to delete %s: Is a directory", op->path);
    } else {
        po->diff = rt_xasprintf("--- a/%s\n+++ /dev/null\n# File deleted", op->path);
        po->entry = rt_xstrdup(op->path);
        po->acts[po->nacts++] = (action){ACT_UNLINK, rt_xstrdup(p.link), NULL, NULL, 0};
        ov_set(ov, p.link, VF_DELETED);
    }
    paths_fini(&p);
    return err;
}

/* Record in the overlay that src's file now lives at dst. */
static void ov_move(overlay *ov, const char *src, const char *dst)
{
    vfile *f = ov_find(ov, src);
    if (f && f->state == VF_CONTENT) {
        char *data = f->data;
        size_t len = f->len;
        f->data = NULL;
        ov_set(ov, src, VF_DELETED);
        vfile *g = ov_set(ov, dst, VF_CONTENT);
        g->data = data;
        g->len = len;
        return;
    }
    char *from = f && f->state == VF_ALIAS ? rt_xstrdup(f->alias) : rt_xstrdup(src);
    ov_set(ov, src, VF_DELETED);
    ov_set(ov, dst, VF_ALIAS)->alias = from;
}

static char *plan_move(const tool_run *run, overlay *ov, plan_op *po)
{
    const ft_v4a_op *op = po->op;
    paths s, d;
    paths_of(run, op->path, &s);
    paths_of(run, op->new_path, &d);
    char *err = NULL;
    if (ft_write_denied(s.abs)) {
        err = denied("move", op->path, &s);
    } else if (ft_write_denied(d.abs)) {
        err = denied("move", op->path, &d);
    } else if (ov_kind(ov, s.link) == 0) {
        err = rt_xasprintf("Failed to move %s: No such file or directory", op->path);
    } else {
        /* mv: into an existing directory */
        char *dst = ov_kind(ov, d.real) == 2 ? ft_path_join(d.real, ft_path_basename(s.link))
                                             : rt_xstrdup(d.real);
        if (ft_write_denied(dst)) {
            err = rt_xasprintf("Failed to move %s: " FT_DENY_FMT, op->path, dst);
            rt_free(dst);
        } else {
            po->acts[po->nacts++] = (action){ACT_RENAME, rt_xstrdup(s.link), dst, NULL, 0};
            ov_move(ov, s.link, dst);
            po->diff = rt_xasprintf("# Moved: %s -> %s", op->path, op->new_path);
            po->entry = rt_xasprintf("%s -> %s", op->path, op->new_path);
        }
    }
    paths_fini(&s);
    paths_fini(&d);
    return err;
}

static char *plan_update(const tool_run *run, overlay *ov, plan_op *po)
{
    const ft_v4a_op *op = po->op;
    paths p, d = {0};
    paths_of(run, op->path, &p);
    if (op->new_path)
        paths_of(run, op->new_path, &d);
    char *err = NULL, *data = NULL, *out = NULL, *why = NULL;
    size_t len = 0, outlen = 0;
    if (ft_write_denied(p.abs)) {
        err = denied("update", op->path, &p);
        goto done;
    }
    if (op->new_path && ft_write_denied(d.abs)) {
        err = denied("update", op->path, &d);
        goto done;
    }
    int rc = ov_read(ov, p.real, &data, &len);
    if (rc) {
        err = rc == -ENOENT
                  ? rt_xasprintf("Failed to update %s: Cannot read file: File not found: %s",
                                 op->path, p.display)
                  : rt_xasprintf("Failed to update %s: Cannot read file: %s%s", op->path,
                                 rt_strerror(rc), read_reason(rc));
        goto done;
    }
    if (ft_v4a_apply_update(op, data, len, &out, &outlen, &why) != 0) {
        err = rt_xasprintf("Failed to update %s: %s", op->path, why);
        goto done;
    }
    po->diff = unified(data, len, out, outlen, op->path);
    const char *target = op->new_path ? d.real : p.real;
    vfile *f = ov_set(ov, target, VF_CONTENT);
    f->data = rt_xmemdup(out, outlen + 1);
    f->len = outlen;
    po->acts[po->nacts++] = (action){ACT_WRITE, rt_xstrdup(target), NULL, out, outlen};
    out = NULL;
    if (op->new_path && strcmp(d.real, p.real) != 0) {
        po->acts[po->nacts++] = (action){ACT_UNLINK, rt_xstrdup(p.real), NULL, NULL, 0};
        ov_set(ov, p.real, VF_DELETED);
        po->entry = rt_xasprintf("%s -> %s", op->path, op->new_path);
    } else {
        po->entry = rt_xstrdup(op->path);
    }
    po->lint_key = rt_xstrdup(op->new_path ? op->new_path : op->path);
    po->lint_path = rt_xstrdup(op->new_path ? d.display : p.display);
done:
    rt_free(why);
    rt_free(out);
    rt_free(data);
    paths_fini(&p);
    if (op->new_path)
        paths_fini(&d);
    return err;
}

/* ============================================================ V4A: commit */

static int copy_then_unlink(const char *from, const char *to)
{
    char *data;
    size_t len;
    struct stat st;
    if (lstat(from, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EXDEV;
    int err = ft_read_all(from, (size_t)1 << 40, &data, &len);
    if (err)
        return err;
    err = ft_write_atomic(to, data, len, NULL);
    rt_free(data);
    if (!err) {
        (void)chmod(to, st.st_mode & 07777); /* best effort, like mv */
        if (unlink(from) != 0)
            err = -errno;
    }
    return err;
}

static int run_action(const action *a)
{
    switch (a->kind) {
    case ACT_WRITE: return ft_write_atomic(a->real, a->data, a->len, NULL);
    case ACT_UNLINK: return unlink(a->real) == 0 || errno == ENOENT ? 0 : -errno;
    case ACT_RENAME: {
        char *dir = ft_path_dirname(a->real2);
        int err = ft_mkdirs(dir, NULL);
        rt_free(dir);
        if (err)
            return err;
        if (rename(a->real, a->real2) == 0)
            return 0;
        return errno == EXDEV ? copy_then_unlink(a->real, a->real2) : -errno;
    }
    default: return -EINVAL;
    }
}

static void plan_free(plan_op *po)
{
    for (int i = 0; i < po->nacts; i++) {
        rt_free(po->acts[i].real);
        rt_free(po->acts[i].real2);
        rt_free(po->acts[i].data);
    }
    rt_free(po->diff);
    rt_free(po->entry);
    rt_free(po->lint_key);
    rt_free(po->lint_path);
}

static void commit(patch_job *j, plan_op *ops, size_t n)
{
    rt_buf errs;
    rt_buf_init(&errs, 1 << 20);
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        plan_op *po = &ops[i];
        int err = 0;
        for (int k = 0; k < po->nacts && !err; k++)
            err = run_action(&po->acts[k]);
        if (err) {
            (void)rt_buf_printf(&errs, "%sFailed to %s %s: %s", errs.len ? "; " : "", po->verb,
                                po->op->path, rt_strerror(err));
            continue;
        }
        po->done = true;
        if (po->list)
            add_name(po->list, po->entry);
        if (po->diff) {
            add_diff(j, po->diff, strlen(po->diff), first);
            first = false;
        }
    }
    j->success = errs.len == 0;
    if (errs.len)
        j->error = rt_buf_steal(&errs, NULL);
    rt_buf_fini(&errs);
    /* Lint: modified files first, then created ones, as the original. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++) {
            plan_op *po = &ops[i];
            bool want = pass == 0 ? po->list == j->modified : po->list == j->created;
            if (want && po->done && po->lint_key)
                add_lint(j, po->lint_key, po->lint_path);
        }
}

static void do_v4a(patch_job *j, const tool_run *run, const char *text)
{
    ft_v4a_patch p;
    char *perr = NULL;
    if (ft_v4a_parse(text, strlen(text), &p, &perr) != 0) {
        fail(j, rt_xasprintf("Failed to parse patch: %s", perr));
        rt_free(perr);
        return;
    }
    plan_op *ops = rt_xcalloc(p.n, sizeof(plan_op));
    overlay ov = {0};
    rt_buf errs;
    rt_buf_init(&errs, 1 << 20);
    for (size_t i = 0; i < p.n; i++) {
        plan_op *po = &ops[i];
        po->op = &p.ops[i];
        char *err = NULL;
        switch (po->op->kind) {
        case FT_V4A_ADD:
            po->verb = "add", po->list = j->created;
            err = plan_add(run, &ov, po);
            break;
        case FT_V4A_DELETE:
            po->verb = "delete", po->list = j->deleted;
            err = plan_delete(run, &ov, po);
            break;
        case FT_V4A_MOVE:
            po->verb = "move", po->list = j->modified;
            err = plan_move(run, &ov, po);
            break;
        default:
            po->verb = "update", po->list = j->modified;
            err = plan_update(run, &ov, po);
            break;
        }
        if (err)
            (void)rt_buf_printf(&errs, "%s%s", errs.len ? "; " : "", err);
        rt_free(err);
    }
    if (errs.len)
        fail(j, rt_xasprintf("%s (no files were modified)", errs.data));
    else
        commit(j, ops, p.n);
    rt_buf_fini(&errs);
    for (size_t i = 0; i < p.n; i++)
        plan_free(&ops[i]);
    rt_free(ops);
    ov_free(&ov);
    ft_v4a_free(&p);
}

/* ============================================================== the tool */

static void finish(rt_ctx *cx, tool_run *run)
{
    patch_job *j = run->data;
    cJSON *res = job_result(j);
    tool_finish_json(cx, run, res); /* cleanup frees the job */
}

/* Run lints until one needs time (then ask for a step) or all are done (then finish). */
static void lint_some(rt_ctx *cx, tool_run *run, int slice_ms)
{
    patch_job *j = run->data;
    while (j->i < j->n || j->cur) {
        cJSON *res = NULL;
        if (!j->cur) {
            j->cur = ft_lint_start(j->cwd, j->items[j->i].path, &res);
            if (!j->cur) {
                put_lint(j, j->items[j->i++].key, res);
                continue;
            }
        }
        if (!ft_lint_step(j->cur, slice_ms, &res)) {
            ft_tool_step(cx);
            return;
        }
        ft_lint_free(j->cur);
        j->cur = NULL;
        put_lint(j, j->items[j->i++].key, res);
    }
    finish(cx, run);
}

static void patch_start(rt_ctx *cx, tool_run *run)
{
    const char *mode = tool_arg_str(run, "mode");
    if (!mode)
        mode = "replace";
    if (strcmp(mode, "replace") != 0 && strcmp(mode, "patch") != 0) {
        char *m = rt_xasprintf("Unknown mode: %s", mode);
        tool_finish_json(cx, run, plain_error(m));
        rt_free(m);
        return;
    }
    patch_job *j = job_new(run);
    if (strcmp(mode, "replace") == 0) {
        const char *path = tool_arg_str(run, "path");
        const char *old = tool_arg_str(run, "old_string");
        const char *new_ = tool_arg_str(run, "new_string");
        if (!path || !*path || !old || !new_) {
            job_free(j);
            tool_finish_json(cx, run,
                             plain_error(!path || !*path ? "path required"
                                                         : "old_string and new_string required"));
            return;
        }
        do_replace(j, run, path, old, new_, tool_arg_bool(run, "replace_all", false));
    } else {
        const char *text = tool_arg_str(run, "patch");
        if (!text || !*text) {
            job_free(j);
            tool_finish_json(cx, run, plain_error("patch content required"));
            return;
        }
        do_v4a(j, run, text);
    }
    run->data = j;
    lint_some(cx, run, FT_STEP_SLICE_MS);
}

static void patch_msg(rt_ctx *cx, tool_run *run, rt_msg *m)
{
    if (m->type == FT_MSG_STEP && run->data)
        lint_some(cx, run, FT_STEP_SLICE_MS);
}

static void patch_interrupt(rt_ctx *cx, tool_run *run)
{
    patch_job *j = run->data;
    if (!j)
        return;
    ft_lint_free(j->cur);
    j->cur = NULL;
    for (; j->i < j->n; j->i++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "status", "skipped");
        cJSON_AddStringToObject(s, "message", "Lint interrupted");
        put_lint(j, j->items[j->i].key, s);
    }
    finish(cx, run);
}

static void patch_cleanup(tool_run *run)
{
    job_free(run->data);
    run->data = NULL;
}

const tool_def tool_def_patch = {
    .name = "patch",
    .toolset = "file",
    .schema = SCHEMA,
    .blocking = true,
    .parallel_safe = false,
    .start = patch_start,
    .on_msg = patch_msg,
    .on_interrupt = patch_interrupt,
    .cleanup = patch_cleanup,
};
