/*
 * skl_admin — see skl_admin.h.
 */
#include "skl_admin.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"
#include "skl_front.h"
#include "skl_fs.h"
#include "skl_store.h"
#include "tool_scan.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_MAX_DEPTH 8
#define COPY_MAX_FILE  (16u << 20)

static bool ext_in(const char *name, const char *const *exts)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return false;
    for (; *exts; exts++)
        if (strcasecmp(dot, *exts) == 0)
            return true;
    return false;
}

static const char *const binary_exts[] = {".exe", ".dll", ".so",  ".dylib", ".bin", ".dat", ".com",
                                          ".msi", ".dmg", ".app", ".deb",   ".rpm", NULL};
static const char *const scanned_exts[] = {".md",  ".txt", ".py",   ".sh",   ".bash", ".js",
                                           ".ts",  ".rb",  ".yaml", ".yml",  ".json", ".toml",
                                           ".cfg", ".ini", ".conf", ".html", ".css",  ".xml",
                                           ".tex", ".r",   ".jl",   ".pl",   ".php",  NULL};

static void finding(cJSON *out, const char *file, const char *what)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "file", file);
    cJSON_AddStringToObject(f, "finding", what);
    cJSON_AddItemToArray(out, f);
}

typedef struct audit {
    cJSON *out;
    size_t files;
    size_t total;
} audit;

static void audit_dir(audit *a, const char *dir, const char *rel, int depth)
{
    if (depth > COPY_MAX_DEPTH) {
        finding(a->out, rel, "directory nesting too deep");
        return;
    }
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *p = rt_xasprintf("%s/%s", dir, e->d_name);
        char *r = *rel ? rt_xasprintf("%s/%s", rel, e->d_name) : rt_xstrdup(e->d_name);
        struct stat st;
        if (lstat(p, &st) < 0) {
            /* vanished: ignore */
        } else if (S_ISLNK(st.st_mode)) {
            finding(a->out, r, "symlink (not allowed in skills)");
        } else if (S_ISDIR(st.st_mode)) {
            audit_dir(a, p, r, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            a->files++;
            a->total += (size_t)st.st_size;
            if ((size_t)st.st_size > SKL_AUDIT_MAX_FILE)
                finding(a->out, r, "file larger than 256 KB");
            if (ext_in(e->d_name, binary_exts))
                finding(a->out, r, "binary or executable file type");
            else if (ext_in(e->d_name, scanned_exts) || strcmp(e->d_name, "SKILL.md") == 0) {
                size_t len = 0;
                char *text = skl_read_file(p, SKL_AUDIT_MAX_FILE, &len, NULL);
                char ids[256];
                if (text && strlen(text) == len &&
                    tool_scan(text, TOOL_SCAN_CONTEXT, ids, sizeof(ids))) {
                    char *w = rt_xasprintf("suspicious content: %s", ids);
                    finding(a->out, r, w);
                    rt_free(w);
                }
                rt_free(text);
            }
        } else {
            finding(a->out, r, "special file (not a regular file)");
        }
        rt_free(r);
        rt_free(p);
    }
    closedir(d);
}

cJSON *skl_audit(const char *dir)
{
    audit a = {.out = cJSON_CreateArray()};
    audit_dir(&a, dir, "", 0);
    if (a.files > SKL_AUDIT_MAX_FILES)
        finding(a.out, ".", "more than 50 files");
    if (a.total > SKL_AUDIT_MAX_TOTAL)
        finding(a.out, ".", "more than 1 MB in all");
    return a.out;
}

/* Copy regular files and directories (hidden entries and symlinks skipped). 0 or -errno. */
static int copy_tree(const char *src, const char *dst, int depth)
{
    if (depth > COPY_MAX_DEPTH)
        return -ELOOP;
    int rc = skl_mkdir_p(dst);
    if (rc)
        return rc;
    DIR *d = opendir(src);
    if (!d)
        return -errno;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *s = rt_xasprintf("%s/%s", src, e->d_name);
        char *t = rt_xasprintf("%s/%s", dst, e->d_name);
        struct stat st;
        if (lstat(s, &st) == 0 && S_ISDIR(st.st_mode)) {
            rc = copy_tree(s, t, depth + 1);
        } else if (lstat(s, &st) == 0 && S_ISREG(st.st_mode)) {
            size_t len = 0;
            bool trunc = false;
            char *data = skl_read_file(s, COPY_MAX_FILE, &len, &trunc);
            if (!data)
                rc = -errno;
            else if (trunc)
                rc = -EFBIG;
            else
                rc = skl_write_atomic(t, data, len);
            rt_free(data);
        }
        rt_free(t);
        rt_free(s);
    }
    closedir(d);
    return rc;
}

static char *join_findings(const cJSON *f)
{
    rt_buf b;
    rt_buf_init(&b, 64 * 1024);
    const cJSON *x;
    cJSON_ArrayForEach(x, f)
    {
        rt_buf_printf(&b, "  %s: %s\n",
                      cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "file")),
                      cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "finding")));
    }
    rt_buf_append(&b, "", 0);
    return rt_buf_steal(&b, NULL);
}

int skl_install(const char *root, const char *src, const char *category, bool force, char **report)
{
    if (report)
        *report = NULL;
    char *clean = rt_xstrdup(src);
    for (size_t n = strlen(clean); n > 1 && clean[n - 1] == '/'; n--)
        clean[n - 1] = '\0';
    const char *slash = strrchr(clean, '/');
    const char *name = slash ? slash + 1 : clean;
    char *md = rt_xasprintf("%s/SKILL.md", clean);
    int rc = 0;
    skl_entry *v = NULL;
    size_t n = 0;
    if (!skl_is_file(md)) {
        rc = -ENOENT;
        if (report)
            *report = rt_xasprintf("%s has no SKILL.md", clean);
        goto out;
    }
    if (!skl_name_valid(name) || (category && *category && !skl_name_valid(category))) {
        rc = -EINVAL;
        if (report)
            *report = rt_xasprintf("invalid skill name '%s' or category: use lowercase letters, "
                                   "digits, '.', '_' and '-'",
                                   name);
        goto out;
    }
    n = skl_scan(root, &v);
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0) {
            rc = -EEXIST;
            if (report)
                *report = rt_xasprintf("a skill named '%s' already exists at %s", name, v[i].dir);
            goto out;
        }
    cJSON *f = skl_audit(clean);
    int nf = cJSON_GetArraySize(f);
    if (nf && !force) {
        rc = -EPERM;
        if (report) {
            char *list = join_findings(f);
            *report = rt_xasprintf("blocked by the security audit (%d finding%s):\n%s", nf,
                                   nf == 1 ? "" : "s", list);
            rt_free(list);
        }
        cJSON_Delete(f);
        goto out;
    }
    cJSON_Delete(f);
    char *dst = category && *category ? rt_xasprintf("%s/%s/%s", root, category, name)
                                      : rt_xasprintf("%s/%s", root, name);
    rc = copy_tree(clean, dst, 0);
    if (rc) {
        skl_rm_tree_at(AT_FDCWD, dst, 0);
        if (report)
            *report = rt_xasprintf("copy failed: %s", rt_strerror(rc));
    } else if (report) {
        *report = rt_xasprintf("installed '%s' at %s%s", name, dst,
                               nf ? " (audit findings ignored: --force)" : "");
    }
    rt_free(dst);
out:
    skl_entries_free(v, n);
    rt_free(md);
    rt_free(clean);
    return rc;
}

/* ============================================================ bundled sync */

static bool manifest_has(const char *manifest, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = manifest; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t ln = nl ? (size_t)(nl - l) : strlen(l);
        while (ln && isspace((unsigned char)l[ln - 1]))
            ln--;
        if (ln == n && strncmp(l, name, n) == 0)
            return true;
        l = nl ? nl + 1 : NULL;
    }
    return false;
}

int skl_sync_bundled(const char *src, const char *root)
{
    int rc = skl_mkdir_p(root);
    if (rc)
        return rc;
    char *mpath = rt_xasprintf("%s/.bundled_manifest", root);
    char *old = skl_read_file(mpath, 1u << 20, NULL, NULL);
    rt_buf m;
    rt_buf_init(&m, SIZE_MAX / 2);
    if (old) {
        rt_buf_append_str(&m, old);
        if (m.len && rt_buf_cstr(&m)[m.len - 1] != '\n')
            rt_buf_append(&m, "\n", 1);
    }
    size_t start_len = m.len;
    skl_entry *v;
    size_t n = skl_scan(src, &v);
    int copied = 0;
    for (size_t i = 0; i < n; i++) {
        if (manifest_has(rt_buf_cstr(&m), v[i].name))
            continue; /* offered before: the user's deletions and edits stick */
        char *dst = v[i].category ? rt_xasprintf("%s/%s/%s", root, v[i].category, v[i].name)
                                  : rt_xasprintf("%s/%s", root, v[i].name);
        struct stat st;
        if (lstat(dst, &st) < 0 && copy_tree(v[i].dir, dst, 0) == 0)
            copied++;
        rt_free(dst);
        rt_buf_printf(&m, "%s\n", v[i].name);
    }
    /* category descriptions */
    for (size_t i = 0; i < n; i++) {
        if (!v[i].category)
            continue;
        char *s = rt_xasprintf("%s/%s/DESCRIPTION.md", src, v[i].category);
        char *t = rt_xasprintf("%s/%s/DESCRIPTION.md", root, v[i].category);
        struct stat st;
        char *tdir = rt_xasprintf("%s/%s", root, v[i].category);
        if (skl_is_file(s) && lstat(t, &st) < 0 && skl_is_dir(tdir)) {
            size_t len = 0;
            char *data = skl_read_file(s, 1u << 20, &len, NULL);
            if (data)
                skl_write_atomic(t, data, len);
            rt_free(data);
        }
        rt_free(tdir);
        rt_free(t);
        rt_free(s);
    }
    skl_entries_free(v, n);
    if (m.len != start_len || !old)
        rc = skl_write_atomic(mpath, rt_buf_cstr(&m), m.len);
    rt_buf_fini(&m);
    rt_free(old);
    rt_free(mpath);
    return rc ? rc : copied;
}

/* ============================================================ /<skill> */

/* The command form of a name: lowercase, spaces and '_' become '-'. */
static void command_form(const char *name, char *out, size_t n)
{
    size_t i = 0;
    for (; name[i] && i + 1 < n; i++) {
        char c = (char)tolower((unsigned char)name[i]);
        out[i] = c == ' ' || c == '_' ? '-' : c;
    }
    out[i] = '\0';
}

char *skl_invoke_message(const char *root, const char *name, const char *text)
{
    if (!name || !*name)
        return NULL;
    char want[128];
    command_form(name, want, sizeof(want));
    skl_entry *v;
    size_t n = skl_scan(root, &v);
    const skl_entry *hit = NULL;
    for (size_t i = 0; i < n && !hit; i++) {
        char form[128];
        command_form(v[i].name, form, sizeof(form));
        if (strcmp(v[i].name, name) == 0 || strcmp(form, want) == 0)
            hit = &v[i];
    }
    char *msg = NULL;
    if (hit) {
        cJSON *view = skl_view(root, hit->name, NULL);
        const char *content =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(view, "content"));
        if (content) {
            rt_buf b;
            rt_buf_init(&b, SIZE_MAX / 2);
            rt_buf_printf(&b,
                          "[SYSTEM: The user has invoked the \"%s\" skill, indicating they want "
                          "you to follow its instructions. The full skill content is loaded "
                          "below.]\n\n%s",
                          hit->name, content);
            const cJSON *lf = cJSON_GetObjectItemCaseSensitive(view, "linked_files");
            if (cJSON_IsObject(lf)) {
                rt_buf_append_str(&b, "\n\n[This skill has supporting files you can load with "
                                      "skill_view(name, file_path):]\n");
                const cJSON *kind, *f;
                cJSON_ArrayForEach(kind, lf)
                {
                    cJSON_ArrayForEach(f, kind)
                    {
                        rt_buf_printf(&b, "- %s\n", f->valuestring);
                    }
                }
            }
            if (text && *text)
                rt_buf_printf(&b,
                              "\n\nThe user has provided the following instruction alongside "
                              "the skill invocation: %s",
                              text);
            rt_buf_append(&b, "", 0);
            msg = rt_buf_steal(&b, NULL);
        }
        cJSON_Delete(view);
    }
    skl_entries_free(v, n);
    return msg;
}
