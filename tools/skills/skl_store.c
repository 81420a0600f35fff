/*
 * skl_store — see skl_store.h.
 */
#include "skl_store.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"
#include "skl_front.h"
#include "skl_fs.h"
#include "tool_scan.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ================================================================ helpers */

static cJSON *fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static cJSON *fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddFalseToObject(o, "success");
    cJSON_AddStringToObject(o, "error", msg);
    return o;
}

static cJSON *ok(const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "success");
    if (message)
        cJSON_AddStringToObject(o, "message", message);
    return o;
}

static char *read_text(const char *path)
{
    return skl_read_file(path, SKL_READ_MAX, NULL, NULL);
}

static bool dir_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return false;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = false;
    closedir(d);
    return empty;
}

/* A relative path with no "..", no empty component and not absolute. */
static bool safe_relpath(const char *p)
{
    if (!p || !*p || p[0] == '/' || strchr(p, '\\'))
        return false;
    for (const char *c = p; *c;) {
        const char *s = strchr(c, '/');
        size_t n = s ? (size_t)(s - c) : strlen(c);
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return false;
        c += n + (s ? 1 : 0);
    }
    return true;
}

static bool has_dotdot(const char *p)
{
    for (const char *c = p; *c;) {
        const char *s = strchr(c, '/');
        size_t n = s ? (size_t)(s - c) : strlen(c);
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return true;
        c += n + (s ? 1 : 0);
    }
    return false;
}

/* Whether path (which must exist) resolves inside dir (which must exist). */
static bool resolves_within(const char *path, const char *dir)
{
    char rp[PATH_MAX], rd[PATH_MAX];
    if (!realpath(path, rp) || !realpath(dir, rd))
        return false;
    size_t n = strlen(rd);
    return strncmp(rp, rd, n) == 0 && (rp[n] == '/' || rp[n] == '\0');
}

static size_t utf8_prefix(const char *s, size_t chars)
{
    size_t i = 0, c = 0;
    while (s[i]) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (c == chars)
                break;
            c++;
        }
        i++;
    }
    return i;
}

static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

/* ============================================================ the walk */

static int cmp_entry(const void *a, const void *b)
{
    const skl_entry *x = a, *y = b;
    const char *cx = x->category ? x->category : "", *cy = y->category ? y->category : "";
    int c = strcmp(cx, cy);
    return c ? c : strcmp(x->name, y->name);
}

static void add_entry(skl_entry **v, size_t *n, const char *cat, const char *name, const char *dir)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i].name, name) == 0)
            return; /* first one wins */
    *v = rt_xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[*n] = (skl_entry){cat ? rt_xstrdup(cat) : NULL, rt_xstrdup(name), rt_xstrdup(dir)};
    (*n)++;
}

/* Directory entries of path, sorted (so that "first wins" is stable), hidden ones skipped. */
static char **sorted_names(const char *path, size_t *count)
{
    *count = 0;
    DIR *d = opendir(path);
    if (!d)
        return NULL;
    char **v = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < SKL_MAX_SKILLS * 2) {
        if (e->d_name[0] == '.')
            continue;
        v = rt_xrealloc(v, (n + 1) * sizeof(*v));
        v[n++] = rt_xstrdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 1; i < n; i++) /* insertion sort: small lists */
        for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
            char *t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    *count = n;
    return v;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rt_free(v[i]);
    rt_free(v);
}

size_t skl_scan(const char *root, skl_entry **out)
{
    skl_entry *v = NULL;
    size_t n = 0, nt;
    char **top = sorted_names(root, &nt);
    /* top-level skills first, so that they win over a categorised skill of the same name */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < nt && n < SKL_MAX_SKILLS; i++) {
            char *dir = rt_xasprintf("%s/%s", root, top[i]);
            char *md = rt_xasprintf("%s/SKILL.md", dir);
            bool skill = skl_is_file(md);
            if (pass == 0 && skill) {
                add_entry(&v, &n, NULL, top[i], dir);
            } else if (pass == 1 && !skill && skl_is_dir(dir)) {
                size_t nc;
                char **sub = sorted_names(dir, &nc);
                for (size_t j = 0; j < nc && n < SKL_MAX_SKILLS; j++) {
                    char *sd = rt_xasprintf("%s/%s", dir, sub[j]);
                    char *smd = rt_xasprintf("%s/SKILL.md", sd);
                    if (skl_is_file(smd))
                        add_entry(&v, &n, top[i], sub[j], sd);
                    rt_free(smd);
                    rt_free(sd);
                }
                free_names(sub, nc);
            }
            rt_free(md);
            rt_free(dir);
        }
    free_names(top, nt);
    if (n)
        qsort(v, n, sizeof(*v), cmp_entry);
    *out = v;
    return n;
}

void skl_entries_free(skl_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rt_free(v[i].category);
        rt_free(v[i].name);
        rt_free(v[i].dir);
    }
    rt_free(v);
}

/* The skill directory for name (a directory name, or "category/name"), new string or
 * NULL. */
static char *find_skill(const char *root, const char *name)
{
    if (!name || !*name)
        return NULL;
    if (strchr(name, '/')) {
        if (!safe_relpath(name))
            return NULL;
        char *dir = rt_xasprintf("%s/%s", root, name);
        char *md = rt_xasprintf("%s/SKILL.md", dir);
        bool found = skl_is_file(md) && resolves_within(dir, root);
        rt_free(md);
        if (found)
            return dir;
        rt_free(dir);
        return NULL;
    }
    skl_entry *v;
    size_t n = skl_scan(root, &v);
    char *dir = NULL;
    for (size_t i = 0; i < n && !dir; i++)
        if (strcmp(v[i].name, name) == 0)
            dir = rt_xstrdup(v[i].dir);
    skl_entries_free(v, n);
    return dir;
}

/* ============================================================ skills_list */

/* The meta and description of one SKILL.md (*meta new, returns a new description). */
static char *skill_summary(const char *dir, cJSON **meta)
{
    char *md = rt_xasprintf("%s/SKILL.md", dir);
    char *text = skl_read_file(md, 64 * 1024, NULL, NULL);
    rt_free(md);
    size_t bo = 0;
    cJSON *m = skl_front_read(text ? text : "", &bo);
    char *desc = skl_front_description(m, text ? text + bo : "");
    rt_free(text);
    if (meta)
        *meta = m;
    else
        cJSON_Delete(m);
    return desc;
}

static int command_cmp(const void *a, const void *b)
{
    return strcmp(((const skl_command *)a)->name, ((const skl_command *)b)->name);
}

size_t skl_commands(const char *root, skl_command **out, cJSON **list)
{
    *list = skl_list(root, NULL);
    const cJSON *skills = cJSON_GetObjectItemCaseSensitive(*list, "skills");
    int n = cJSON_GetArraySize(skills);
    skl_command *v = rt_xcalloc(n > 0 ? (size_t)n : 1, sizeof(*v));
    size_t nv = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, skills)
    {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "name"));
        if (!name || !*name)
            continue;
        skl_command *c = &v[nv++];
        size_t k = 0;
        c->name[k++] = '/';
        for (const char *p = name; *p && k + 1 < sizeof(c->name); p++) {
            char ch = (char)tolower((unsigned char)*p);
            c->name[k++] = ch == ' ' || ch == '_' ? '-' : ch;
        }
        c->name[k] = '\0';
        const char *d = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "description"));
        c->desc = d && *d ? d : NULL;
    }
    qsort(v, nv, sizeof(*v), command_cmp);
    size_t keep = 0; /* one command per name, as the original's dict */
    for (size_t i = 0; i < nv; i++)
        if (!keep || strcmp(v[keep - 1].name, v[i].name) != 0)
            v[keep++] = v[i];
    *out = v;
    return keep;
}

cJSON *skl_list(const char *root, const char *category)
{
    skl_entry *v;
    size_t n = skl_scan(root, &v);
    cJSON *skills = cJSON_CreateArray(), *cats = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        if (category && *category && (!v[i].category || strcmp(v[i].category, category) != 0))
            continue;
        cJSON *meta;
        char *desc = skill_summary(v[i].dir, &meta);
        cJSON *s = cJSON_CreateObject();
        /* the name that skill_view resolves: the directory's */
        cJSON_AddStringToObject(s, "name", v[i].name);
        size_t cut = utf8_prefix(desc, SKL_DESCRIPTION_MAX);
        desc[cut] = '\0';
        cJSON_AddStringToObject(s, "description", desc);
        if (v[i].category)
            cJSON_AddStringToObject(s, "category", v[i].category);
        else
            cJSON_AddNullToObject(s, "category");
        cJSON_AddItemToArray(skills, s);
        if (v[i].category) {
            bool seen = false;
            const cJSON *c;
            cJSON_ArrayForEach(c, cats)
            {
                if (strcmp(c->valuestring, v[i].category) == 0)
                    seen = true;
            }
            if (!seen)
                cJSON_AddItemToArray(cats, cJSON_CreateString(v[i].category));
        }
        rt_free(desc);
        cJSON_Delete(meta);
    }
    skl_entries_free(v, n);
    cJSON *o = ok(NULL);
    int count = cJSON_GetArraySize(skills);
    cJSON_AddItemToObject(o, "skills", skills);
    cJSON_AddItemToObject(o, "categories", cats);
    cJSON_AddNumberToObject(o, "count", count);
    if (count == 0)
        cJSON_AddStringToObject(o, "message",
                                category && *category
                                    ? "No skills in that category."
                                    : "No skills installed yet. Create one with skill_manage.");
    else
        cJSON_AddStringToObject(o, "hint",
                                "Load a skill with skill_view(name) for its instructions, "
                                "tags and supporting files.");
    return o;
}

/* ============================================================ skill_view */

typedef struct linked_kind {
    const char *sub;
    const char *const *ext; /* NULL: every file */
} linked_kind;

static const char *const ext_refs[] = {".md", NULL};
static const char *const ext_tpl[] = {".md", ".py", ".yaml", ".yml", ".json", ".tex", ".sh", NULL};
static const char *const ext_scripts[] = {".py", ".sh", ".bash", ".js", ".ts", ".rb", NULL};
static const linked_kind kinds[] = {
    {"references", ext_refs},
    {"templates", ext_tpl},
    {"assets", NULL},
    {"scripts", ext_scripts},
};

static bool ext_ok(const char *name, const char *const *ext)
{
    if (!ext)
        return true;
    const char *dot = strrchr(name, '.');
    for (; dot && *ext; ext++)
        if (strcmp(dot, *ext) == 0)
            return true;
    return false;
}

/* Files under dir (relative paths prefixed with rel), recursively, sorted. */
static void walk_files(const char *dir, const char *rel, const char *const *ext, cJSON *out,
                       int depth)
{
    if (depth > 4)
        return;
    size_t n;
    char **names = sorted_names(dir, &n);
    for (size_t i = 0; i < n && cJSON_GetArraySize(out) < SKL_MAX_FILES; i++) {
        char *p = rt_xasprintf("%s/%s", dir, names[i]);
        char *r = rt_xasprintf("%s/%s", rel, names[i]);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            walk_files(p, r, ext, out, depth + 1);
        else if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && ext_ok(names[i], ext))
            cJSON_AddItemToArray(out, cJSON_CreateString(r));
        rt_free(r);
        rt_free(p);
    }
    free_names(names, n);
}

/* {references:[…], …} with the non-empty kinds, or NULL when there is none. */
static cJSON *linked_files(const char *dir, bool all)
{
    cJSON *o = cJSON_CreateObject();
    bool any = false;
    for (size_t k = 0; k < RT_ARRAY_LEN(kinds); k++) {
        char *sub = rt_xasprintf("%s/%s", dir, kinds[k].sub);
        cJSON *arr = cJSON_CreateArray();
        walk_files(sub, kinds[k].sub, all ? NULL : kinds[k].ext, arr, 0);
        rt_free(sub);
        if (cJSON_GetArraySize(arr)) {
            cJSON_AddItemToObject(o, kinds[k].sub, arr);
            any = true;
        } else {
            cJSON_Delete(arr);
        }
    }
    if (!any) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static bool looks_binary(const char *s, size_t n)
{
    return memchr(s, '\0', n < 8192 ? n : 8192) != NULL;
}

static cJSON *view_file(const char *root, const char *name, const char *dir, const char *fp)
{
    (void)root;
    if (!safe_relpath(fp))
        return fail("Invalid file path '%s': it must be relative to the skill directory and "
                    "may not contain '..'.",
                    fp);
    char *path = rt_xasprintf("%s/%s", dir, fp);
    cJSON *r;
    if (!skl_is_file(path)) {
        r = fail("File '%s' not found in skill '%s'.", fp, name);
        cJSON *lf = linked_files(dir, true);
        cJSON_AddItemToObject(r, "available_files", lf ? lf : cJSON_CreateNull());
        cJSON_AddStringToObject(r, "hint", "Use one of the available_files paths as file_path.");
    } else if (!resolves_within(path, dir)) {
        r = fail("Access denied: '%s' resolves outside the skill directory.", fp);
    } else {
        size_t len = 0;
        bool trunc = false;
        char *text = skl_read_file(path, SKL_READ_MAX, &len, &trunc);
        if (!text) {
            r = fail("Could not read '%s': %s", fp, rt_strerror(-errno));
        } else {
            r = ok(NULL);
            cJSON_AddStringToObject(r, "name", name);
            cJSON_AddStringToObject(r, "file", fp);
            const char *dot = strrchr(fp, '.');
            const char *slash = strrchr(fp, '/');
            cJSON_AddStringToObject(r, "file_type", dot && (!slash || dot > slash) ? dot : "");
            if (looks_binary(text, len)) {
                struct stat st;
                long long size = stat(path, &st) == 0 ? (long long)st.st_size : (long long)len;
                char *ph = rt_xasprintf("[Binary file: %s, size: %lld bytes]",
                                        slash ? slash + 1 : fp, size);
                cJSON_AddStringToObject(r, "content", ph);
                cJSON_AddTrueToObject(r, "is_binary");
                rt_free(ph);
            } else {
                cJSON_AddStringToObject(r, "content", text);
                if (trunc)
                    cJSON_AddTrueToObject(r, "truncated");
            }
            rt_free(text);
        }
    }
    rt_free(path);
    return r;
}

static cJSON *not_found(const char *root, const char *name)
{
    cJSON *r = fail("Skill '%s' not found.", name);
    skl_entry *v;
    size_t n = skl_scan(root, &v);
    cJSON *names = cJSON_CreateArray();
    for (size_t i = 0; i < n && i < 20; i++)
        cJSON_AddItemToArray(names, cJSON_CreateString(v[i].name));
    skl_entries_free(v, n);
    cJSON_AddItemToObject(r, "available_skills", names);
    cJSON_AddStringToObject(r, "hint", "Use skills_list to see all available skills.");
    return r;
}

cJSON *skl_view(const char *root, const char *name, const char *file_path)
{
    if (!name || !*name)
        return fail("Skill name is required.");
    char *dir = find_skill(root, name);
    char *legacy = NULL;
    if (!dir && !strchr(name, '/')) {
        legacy = rt_xasprintf("%s/%s.md", root, name);
        if (!skl_is_file(legacy)) {
            rt_free(legacy);
            legacy = NULL;
        }
    }
    if (!dir && !legacy)
        return not_found(root, name);
    if (file_path && *file_path && dir) {
        cJSON *r = view_file(root, name, dir, file_path);
        rt_free(dir);
        return r;
    }
    char *md = dir ? rt_xasprintf("%s/SKILL.md", dir) : rt_xstrdup(legacy);
    char *text = read_text(md);
    if (!text) {
        cJSON *r = fail("Could not read the skill '%s': %s", name, rt_strerror(-errno));
        rt_free(md);
        rt_free(dir);
        rt_free(legacy);
        return r;
    }
    size_t bo = 0;
    cJSON *meta = skl_front_read(text, &bo);
    char *desc = skl_front_description(meta, text + bo);
    const char *slash = dir ? strrchr(dir, '/') : NULL;
    cJSON *r = ok(NULL);
    cJSON_AddStringToObject(r, "name", slash ? slash + 1 : name);
    cJSON_AddStringToObject(r, "description", desc);
    cJSON_AddItemToObject(r, "tags", skl_front_list(meta, "tags"));
    cJSON_AddItemToObject(r, "related_skills", skl_front_list(meta, "related_skills"));
    cJSON_AddStringToObject(r, "content", text);
    size_t rl = strlen(root);
    cJSON_AddStringToObject(r, "path",
                            strncmp(md, root, rl) == 0 && md[rl] == '/' ? md + rl + 1 : md);
    cJSON *lf = dir ? linked_files(dir, false) : NULL;
    if (lf) {
        cJSON_AddItemToObject(r, "linked_files", lf);
        cJSON_AddStringToObject(r, "usage_hint",
                                "Supporting files are listed in linked_files; load one with "
                                "skill_view(name, file_path) when the instructions call for "
                                "it.");
    } else {
        cJSON_AddNullToObject(r, "linked_files");
    }
    const cJSON *comp = cJSON_GetObjectItemCaseSensitive(meta, "compatibility");
    if (comp)
        cJSON_AddItemToObject(r, "compatibility", cJSON_Duplicate(comp, true));
    const cJSON *md_meta = cJSON_GetObjectItemCaseSensitive(meta, "metadata");
    if (cJSON_IsObject(md_meta))
        cJSON_AddItemToObject(r, "metadata", cJSON_Duplicate(md_meta, true));
    rt_free(desc);
    cJSON_Delete(meta);
    rt_free(text);
    rt_free(md);
    rt_free(dir);
    rt_free(legacy);
    return r;
}

/* ============================================================ skill_manage */

static const char *const allowed_subdirs[] = {"assets", "references", "scripts", "templates"};

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static cJSON *scan_block(const char *text)
{
    char ids[256];
    if (text && tool_scan(text, TOOL_SCAN_CONTEXT, ids, sizeof(ids)))
        return fail("Security scan blocked this skill (findings: %s). Remove the flagged "
                    "content and try again.",
                    ids);
    return NULL;
}

static cJSON *size_check(const char *content, const char *label)
{
    size_t chars = utf8_chars(content, strlen(content));
    if (chars > SKL_CONTENT_MAX)
        return fail("%s content is %zu characters (limit: %d). Split it into a smaller SKILL.md "
                    "with supporting files in references/ or templates/.",
                    label, chars, SKL_CONTENT_MAX);
    return NULL;
}

static const char *file_path_error(const char *fp, char *buf, size_t len)
{
    if (!fp || !*fp)
        return "file_path is required.";
    if (has_dotdot(fp))
        return "Path traversal ('..') is not allowed.";
    if (fp[0] == '/' || strchr(fp, '\\')) {
        snprintf(buf, len, "file_path must be relative to the skill directory. Got: '%s'", fp);
        return buf;
    }
    const char *slash = strchr(fp, '/');
    size_t first = slash ? (size_t)(slash - fp) : strlen(fp);
    bool allowed = false;
    for (size_t i = 0; i < RT_ARRAY_LEN(allowed_subdirs); i++)
        if (strlen(allowed_subdirs[i]) == first && strncmp(fp, allowed_subdirs[i], first) == 0)
            allowed = true;
    if (!allowed) {
        snprintf(buf, len,
                 "File must be under one of: assets, references, scripts, templates. "
                 "Got: '%s'",
                 fp);
        return buf;
    }
    if (!slash || !slash[1]) {
        snprintf(buf, len, "Provide a file path, not just a directory. Example: '%.*s/myfile.md'",
                 (int)first, fp);
        return buf;
    }
    return NULL;
}

static cJSON *missing_skill(const char *name, const char *suffix)
{
    return fail("Skill '%s' not found. Use skills_list() to see available skills.%s", name,
                suffix ? suffix : "");
}

static cJSON *act_create(const char *root, const char *name, const char *content,
                         const char *category)
{
    char err[512];
    if (!skl_name_valid(name)) {
        if (strlen(name) > SKL_NAME_MAX)
            return fail("Skill name exceeds %d characters.", SKL_NAME_MAX);
        return fail("Invalid skill name '%s'. Use lowercase letters, numbers, hyphens, dots, and "
                    "underscores. Must start with a letter or digit.",
                    name);
    }
    if (category && *category && !skl_name_valid(category))
        return fail("Invalid category '%s'. Use lowercase letters, numbers, hyphens, dots, and "
                    "underscores; a category is a single directory name.",
                    category);
    if (skl_front_validate(content, err, sizeof(err)) < 0)
        return fail("%s", err);
    cJSON *e = size_check(content, "SKILL.md");
    if (!e)
        e = scan_block(content);
    if (e)
        return e;
    char *existing = find_skill(root, name);
    if (existing) {
        cJSON *r = fail("A skill named '%s' already exists at %s.", name, existing);
        rt_free(existing);
        return r;
    }
    char *rel = category && *category ? rt_xasprintf("%s/%s", category, name) : rt_xstrdup(name);
    char *dir = rt_xasprintf("%s/%s", root, rel);
    char *md = rt_xasprintf("%s/SKILL.md", dir);
    int rc = skl_mkdir_p(dir);
    if (!rc && !resolves_within(dir, root)) { /* a category that is a link out of root */
        rmdir(dir);
        rc = -EXDEV;
    }
    if (!rc)
        rc = skl_write_atomic(md, content, strlen(content));
    cJSON *r;
    if (rc == -EXDEV) {
        r = fail("Refusing to create '%s': the category directory lies outside the skills "
                 "directory.",
                 rel);
    } else if (rc) {
        r = fail("Could not write %s: %s", md, rt_strerror(rc));
    } else {
        char *msg = rt_xasprintf("Skill '%s' created.", name);
        r = ok(msg);
        rt_free(msg);
        cJSON_AddStringToObject(r, "path", rel);
        cJSON_AddStringToObject(r, "skill_md", md);
        if (category && *category)
            cJSON_AddStringToObject(r, "category", category);
        char *hint = rt_xasprintf("Add supporting files with skill_manage(action='write_file', "
                                  "name='%s', file_path='references/example.md', "
                                  "file_content='...').",
                                  name);
        cJSON_AddStringToObject(r, "hint", hint);
        rt_free(hint);
    }
    rt_free(md);
    rt_free(dir);
    rt_free(rel);
    return r;
}

static cJSON *act_edit(const char *root, const char *name, const char *content)
{
    char err[512];
    if (skl_front_validate(content, err, sizeof(err)) < 0)
        return fail("%s", err);
    cJSON *e = size_check(content, "SKILL.md");
    if (!e)
        e = scan_block(content);
    if (e)
        return e;
    char *dir = find_skill(root, name);
    if (!dir)
        return missing_skill(name, NULL);
    char *md = rt_xasprintf("%s/SKILL.md", dir);
    int rc = skl_write_atomic(md, content, strlen(content));
    cJSON *r;
    if (rc) {
        r = fail("Could not write %s: %s", md, rt_strerror(rc));
    } else {
        char *msg = rt_xasprintf("Skill '%s' updated (full rewrite).", name);
        r = ok(msg);
        rt_free(msg);
        cJSON_AddStringToObject(r, "path", dir);
    }
    rt_free(md);
    rt_free(dir);
    return r;
}

static size_t count_matches(const char *hay, const char *needle)
{
    size_t n = 0, nl = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + nl, needle))
        n++;
    return n;
}

static char *replace(const char *hay, const char *old, const char *new_s, bool all)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    size_t ol = strlen(old);
    const char *p = hay;
    for (const char *q = strstr(p, old); q; q = all ? strstr(p, old) : NULL) {
        rt_buf_append(&b, p, (size_t)(q - p));
        rt_buf_append_str(&b, new_s);
        p = q + ol;
    }
    rt_buf_append_str(&b, p);
    rt_buf_append(&b, "", 0);
    return rt_buf_steal(&b, NULL);
}

static cJSON *act_patch(const char *root, const char *name, const char *old_s, const char *new_s,
                        const char *fp, bool all)
{
    char buf[512];
    char *dir = find_skill(root, name);
    if (!dir)
        return missing_skill(name, NULL);
    char *target;
    const char *label = fp && *fp ? fp : "SKILL.md";
    if (fp && *fp && strcmp(fp, "SKILL.md") != 0) {
        const char *e = file_path_error(fp, buf, sizeof(buf));
        if (e) {
            rt_free(dir);
            return fail("%s", e);
        }
        target = rt_xasprintf("%s/%s", dir, fp);
    } else {
        target = rt_xasprintf("%s/SKILL.md", dir);
        fp = NULL;
    }
    cJSON *r = NULL;
    char *text = NULL, *out = NULL;
    if (!skl_is_file(target)) {
        r = fail("File not found: %s", label);
        goto done;
    }
    if (!resolves_within(target, dir)) {
        r = fail("Access denied: '%s' resolves outside the skill directory.", label);
        goto done;
    }
    size_t len = 0;
    bool trunc = false;
    text = skl_read_file(target, SKL_READ_MAX, &len, &trunc);
    if (!text || trunc || strlen(text) != len) {
        r = fail("Cannot patch %s: it is unreadable, binary or larger than %u bytes.", label,
                 SKL_READ_MAX);
        goto done;
    }
    size_t matches = count_matches(text, old_s);
    if (matches == 0) {
        r = fail("Could not find the text to replace in %s (exact match required).", label);
        size_t cut = utf8_prefix(text, 500);
        char *pv = rt_xasprintf("%.*s%s", (int)cut, text, text[cut] ? "..." : "");
        cJSON_AddStringToObject(r, "file_preview", pv);
        rt_free(pv);
        goto done;
    }
    if (matches > 1 && !all) {
        r = fail("Found %zu matches for old_string in %s. Add more surrounding context to make "
                 "it unique, or set replace_all=true.",
                 matches, label);
        cJSON_AddNumberToObject(r, "match_count", (double)matches);
        goto done;
    }
    out = replace(text, old_s, new_s, all);
    if ((r = size_check(out, label)))
        goto done;
    if (!fp && skl_front_validate(out, buf, sizeof(buf)) < 0) {
        r = fail("Patch would break SKILL.md structure: %s", buf);
        goto done;
    }
    if ((r = scan_block(out)))
        goto done;
    int rc = skl_write_atomic(target, out, strlen(out));
    if (rc) {
        r = fail("Could not write %s: %s", label, rt_strerror(rc));
        goto done;
    }
    size_t done_n = all ? matches : 1;
    char *msg = rt_xasprintf("Patched %s in skill '%s' (%zu replacement%s).", label, name, done_n,
                             done_n > 1 ? "s" : "");
    r = ok(msg);
    rt_free(msg);
done:
    rt_free(out);
    rt_free(text);
    rt_free(target);
    rt_free(dir);
    return r;
}

static cJSON *act_delete(const char *root, const char *name)
{
    char *dir = find_skill(root, name);
    if (!dir)
        return missing_skill(name, NULL);
    struct stat st;
    cJSON *r;
    if (lstat(dir, &st) < 0 || S_ISLNK(st.st_mode) || !resolves_within(dir, root)) {
        r = fail("Refusing to delete '%s': the skill directory is a symlink or lies outside the "
                 "skills directory.",
                 dir);
        rt_free(dir);
        return r;
    }
    int rc = skl_rm_tree_at(AT_FDCWD, dir, 0);
    if (rc) {
        r = fail("Could not delete skill '%s': %s", name, rt_strerror(rc));
    } else {
        /* an emptied category directory goes too (never the root) */
        char *slash = strrchr(dir, '/');
        *slash = '\0';
        if (strcmp(dir, root) != 0 && dir_empty(dir))
            rmdir(dir);
        char *msg = rt_xasprintf("Skill '%s' deleted.", name);
        r = ok(msg);
        rt_free(msg);
    }
    rt_free(dir);
    return r;
}

static cJSON *act_write_file(const char *root, const char *name, const char *fp,
                             const char *content)
{
    char buf[512];
    const char *e = file_path_error(fp, buf, sizeof(buf));
    if (e)
        return fail("%s", e);
    size_t bytes = strlen(content);
    if (bytes > SKL_FILE_MAX)
        return fail("File content is %zu bytes (limit: %d bytes / 1 MiB). Split it into smaller "
                    "files.",
                    bytes, SKL_FILE_MAX);
    cJSON *r = size_check(content, fp);
    if (!r)
        r = scan_block(content);
    if (r)
        return r;
    char *dir = find_skill(root, name);
    if (!dir)
        return missing_skill(name, " Create it first with action='create'.");
    char *target = rt_xasprintf("%s/%s", dir, fp);
    char *parent = rt_xstrdup(target);
    *strrchr(parent, '/') = '\0';
    int rc = skl_mkdir_p(parent);
    if (!rc && !resolves_within(parent, dir)) {
        r = fail("Access denied: '%s' resolves outside the skill directory.", fp);
    } else if (!rc && skl_is_dir(target)) {
        r = fail("'%s' is a directory.", fp);
    } else {
        struct stat st;
        if (!rc && lstat(target, &st) == 0 && S_ISLNK(st.st_mode))
            unlink(target); /* replace a link by a file: never write through it */
        if (!rc)
            rc = skl_write_atomic(target, content, bytes);
        if (rc) {
            r = fail("Could not write '%s': %s", fp, rt_strerror(rc));
        } else {
            char *msg = rt_xasprintf("File '%s' written to skill '%s'.", fp, name);
            r = ok(msg);
            rt_free(msg);
            cJSON_AddStringToObject(r, "path", target);
        }
    }
    rt_free(parent);
    rt_free(target);
    rt_free(dir);
    return r;
}

static cJSON *act_remove_file(const char *root, const char *name, const char *fp)
{
    char buf[512];
    const char *e = file_path_error(fp, buf, sizeof(buf));
    if (e)
        return fail("%s", e);
    char *dir = find_skill(root, name);
    if (!dir)
        return missing_skill(name, NULL);
    char *target = rt_xasprintf("%s/%s", dir, fp);
    struct stat st;
    cJSON *r;
    if (lstat(target, &st) < 0 || S_ISDIR(st.st_mode)) {
        r = fail("File '%s' not found in skill '%s'.", fp, name);
        cJSON *lf = linked_files(dir, true);
        cJSON_AddItemToObject(r, "available_files", lf ? lf : cJSON_CreateNull());
    } else {
        char *parent = rt_xstrdup(target);
        *strrchr(parent, '/') = '\0';
        if (!resolves_within(parent, dir)) {
            r = fail("Access denied: '%s' resolves outside the skill directory.", fp);
        } else if (unlink(target) < 0) {
            r = fail("Could not remove '%s': %s", fp, rt_strerror(-errno));
        } else {
            if (dir_empty(parent) && strcmp(parent, dir) != 0)
                rmdir(parent);
            char *msg = rt_xasprintf("File '%s' removed from skill '%s'.", fp, name);
            r = ok(msg);
            rt_free(msg);
        }
        rt_free(parent);
    }
    rt_free(target);
    rt_free(dir);
    return r;
}

cJSON *skl_manage(const char *root, const cJSON *args)
{
    const char *action = jstr(args, "action");
    const char *name = jstr(args, "name");
    const char *content = jstr(args, "content");
    const char *fp = jstr(args, "file_path");
    const cJSON *ra = cJSON_GetObjectItemCaseSensitive(args, "replace_all");
    bool all = cJSON_IsTrue(ra) || (cJSON_IsString(ra) && strcmp(ra->valuestring, "true") == 0);
    if (!action || !*action)
        return fail("action is required. Use: create, edit, patch, delete, write_file, "
                    "remove_file");
    if (!name || !*name)
        return fail("Skill name is required.");
    if (skl_mkdir_p(root) < 0)
        return fail("Could not create the skills directory %s.", root);
    if (strcmp(action, "create") == 0) {
        if (!content || !*content)
            return fail("content is required for 'create'. Provide the full SKILL.md text "
                        "(frontmatter + body).");
        return act_create(root, name, content, jstr(args, "category"));
    }
    if (strcmp(action, "edit") == 0) {
        if (!content || !*content)
            return fail("content is required for 'edit'. Provide the full updated SKILL.md "
                        "text.");
        return act_edit(root, name, content);
    }
    if (strcmp(action, "patch") == 0) {
        const char *o = jstr(args, "old_string"), *n = jstr(args, "new_string");
        if (!o || !*o)
            return fail("old_string is required for 'patch'. Provide the text to find.");
        if (!n)
            return fail("new_string is required for 'patch'. Use an empty string to delete the "
                        "matched text.");
        return act_patch(root, name, o, n, fp, all);
    }
    if (strcmp(action, "delete") == 0)
        return act_delete(root, name);
    if (strcmp(action, "write_file") == 0) {
        if (!fp || !*fp)
            return fail("file_path is required for 'write_file'. Example: "
                        "'references/api-guide.md'");
        const char *fc = jstr(args, "file_content");
        if (!fc)
            return fail("file_content is required for 'write_file'.");
        return act_write_file(root, name, fp, fc);
    }
    if (strcmp(action, "remove_file") == 0) {
        if (!fp || !*fp)
            return fail("file_path is required for 'remove_file'.");
        return act_remove_file(root, name, fp);
    }
    return fail("Unknown action '%s'. Use: create, edit, patch, delete, write_file, remove_file",
                action);
}

/* ============================================================ the index */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

static uint64_t stamp(uint64_t h, const char *path)
{
    struct stat st;
    h = fnv(h, path, strlen(path) + 1);
    if (stat(path, &st) == 0) {
        int64_t v[4] = {(int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec,
                        (int64_t)st.st_size, (int64_t)st.st_ino};
        h = fnv(h, v, sizeof(v));
    } else {
        h = fnv(h, "-", 1);
    }
    return h;
}

/* The signature of everything the index depends on. */
static uint64_t signature(const char *root)
{
    uint64_t h = stamp(1469598103934665603ull, root);
    size_t nt;
    char **top = sorted_names(root, &nt);
    for (size_t i = 0; i < nt; i++) {
        char *dir = rt_xasprintf("%s/%s", root, top[i]);
        h = stamp(h, dir);
        char *md = rt_xasprintf("%s/SKILL.md", dir);
        char *dm = rt_xasprintf("%s/DESCRIPTION.md", dir);
        h = stamp(stamp(h, md), dm);
        rt_free(dm);
        rt_free(md);
        size_t nc;
        char **sub = skl_is_dir(dir) ? sorted_names(dir, &nc) : (nc = 0, NULL);
        for (size_t j = 0; j < nc; j++) {
            char *smd = rt_xasprintf("%s/%s/SKILL.md", dir, sub[j]);
            h = stamp(h, smd);
            rt_free(smd);
        }
        free_names(sub, nc);
        rt_free(dir);
    }
    free_names(top, nt);
    return h;
}

static char *build_index(const char *root)
{
    skl_entry *v;
    size_t n = skl_scan(root, &v);
    if (!n)
        return NULL;
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_append_str(
        &b, "## Skills (mandatory)\nBefore replying, scan the skills below. If one matches the "
            "task, load it with skill_view(name) and follow it. If a skill turns out to be "
            "wrong or out of date, fix it with skill_manage(action='patch').\n\n"
            "<available_skills>\n");
    /* top-level skills belong to "general"; the entries are sorted with NULL first, so
     * re-sort them by the displayed category */
    for (size_t i = 0; i < n; i++)
        if (!v[i].category)
            v[i].category = rt_xstrdup("general");
    qsort(v, n, sizeof(*v), cmp_entry);
    const char *cat = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!cat || strcmp(cat, v[i].category) != 0) {
            cat = v[i].category;
            char *dpath = rt_xasprintf("%s/%s/DESCRIPTION.md", root, cat);
            char *dt = skl_read_file(dpath, 64 * 1024, NULL, NULL);
            rt_free(dpath);
            char *cdesc = NULL;
            if (dt) {
                size_t bo;
                cJSON *m = skl_front_read(dt, &bo);
                const char *d = jstr(m, "description");
                cdesc = d ? rt_xstrdup(d) : NULL;
                cJSON_Delete(m);
                rt_free(dt);
            }
            if (cdesc && *cdesc)
                rt_buf_printf(&b, "  %s: %s\n", cat, cdesc);
            else
                rt_buf_printf(&b, "  %s:\n", cat);
            rt_free(cdesc);
        }
        char *d = skill_summary(v[i].dir, NULL);
        for (char *c = d; *c; c++) /* one line per skill */
            if (*c == '\n' || *c == '\r')
                *c = ' ';
        size_t cut = utf8_prefix(d, SKL_INDEX_DESC);
        rt_buf_printf(&b, "    - %s: %.*s%s\n", v[i].name, (int)cut, d, d[cut] ? "..." : "");
        rt_free(d);
    }
    rt_buf_append_str(&b, "</available_skills>\n\nIf none match, proceed normally without "
                          "loading a skill.");
    skl_entries_free(v, n);
    rt_buf_append(&b, "", 0);
    return rt_buf_steal(&b, NULL);
}

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static char *cache_root;
static uint64_t cache_sig;
static char *cache_text; /* NULL: no skills */
static bool cache_valid;

char *skl_index(const char *root)
{
    uint64_t sig = signature(root);
    pthread_mutex_lock(&cache_mu);
    if (cache_valid && cache_sig == sig && strcmp(cache_root, root) == 0) {
        char *out = cache_text ? rt_xstrdup(cache_text) : NULL;
        pthread_mutex_unlock(&cache_mu);
        return out;
    }
    pthread_mutex_unlock(&cache_mu);
    char *text = build_index(root);
    pthread_mutex_lock(&cache_mu);
    rt_free(cache_root);
    rt_free(cache_text);
    cache_root = rt_xstrdup(root);
    cache_text = text ? rt_xstrdup(text) : NULL;
    cache_sig = sig;
    cache_valid = true;
    pthread_mutex_unlock(&cache_mu);
    return text;
}
