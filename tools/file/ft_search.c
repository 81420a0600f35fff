/*
 * ft_search — see ft_search.h. The built-in walk lives in ft_walk.c.
 */
#include "ft_search.h"

#include "ft_fs.h"
#include "ft_proc.h"
#include "ft_search_int.h"
#include "ft_text.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define RG_RECORD_MAX 65536 /* bytes of one rg output record kept (the rest is dropped) */
#define RG_STDERR_MAX 4096

struct ft_search {
    ft_search_opts o; /* strings point at the copies below */
    char *pattern, *path, *cwd, *glob;
    char *abs;        /* the root for system calls */
    int64_t deadline; /* monotonic ms */
    ft_collect c;
    char *error; /* note added to the result, or NULL */
    bool timed_out;
    /* rg backend */
    ft_proc *rg;
    rt_buf rec;    /* the record being assembled */
    bool rec_full; /* rec hit RG_RECORD_MAX: drop until the terminator */
    /* built-in backend */
    ft_walk *walk;
    ft_regex *re;
};

int64_t ft__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ============================================================== collector */

static bool take(ft_collect *c)
{
    return c->seen > c->offset && c->seen <= c->offset + c->limit;
}

bool ft__collect_line(ft_collect *c, const char *path, size_t pn, uint64_t line, const char *text,
                      size_t n)
{
    if (c->seen >= c->want)
        return false;
    c->seen++;
    if (take(c)) {
        size_t cut = ft_utf8_prefix(text, n, FT_SEARCH_CONTENT_CHARS, NULL);
        char *p = ft_clean_dup(path, pn), *t = ft_clean_dup(text, cut);
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "path", p);
        cJSON_AddNumberToObject(m, "line", (double)line);
        cJSON_AddStringToObject(m, "content", t);
        cJSON_AddItemToArray(c->items, m);
        rt_free(p);
        rt_free(t);
    }
    return c->seen < c->want;
}

bool ft__collect_file(ft_collect *c, const char *path, size_t pn)
{
    if (c->seen >= c->want)
        return false;
    c->seen++;
    if (take(c)) {
        char *p = ft_clean_dup(path, pn);
        cJSON_AddItemToArray(c->items, cJSON_CreateString(p));
        rt_free(p);
    }
    return c->seen < c->want;
}

bool ft__collect_count(ft_collect *c, const char *path, size_t pn, int64_t count)
{
    if (c->seen >= c->want)
        return false;
    c->seen++;
    if (take(c)) {
        char *p = ft_clean_dup(path, pn);
        cJSON_DeleteItemFromObjectCaseSensitive(c->items, p); /* keep keys unique */
        cJSON_AddNumberToObject(c->items, p, (double)count);
        c->count_sum += count;
        rt_free(p);
    }
    return c->seen < c->want;
}

/* ================================================================ results */

__attribute__((format(printf, 1, 2))) static cJSON *error_result(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char *clean = ft_clean_dup(msg, strlen(msg));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "total_count", 0);
    cJSON_AddStringToObject(o, "error", clean);
    rt_free(clean);
    return o;
}

static cJSON *build_result(ft_search *s)
{
    cJSON *o = cJSON_CreateObject();
    ft_collect *c = &s->c;
    bool more = c->seen > c->offset + c->limit;
    if (s->o.target == FT_TARGET_FILES) {
        cJSON *files = NULL;
        size_t total = s->walk ? ft__walk_files(s->walk, c->offset, c->limit, &files) : 0;
        cJSON_AddNumberToObject(o, "total_count", (double)total);
        if (files && cJSON_GetArraySize(files) > 0)
            cJSON_AddItemToObject(o, "files", files);
        else
            cJSON_Delete(files);
        more = total > c->offset + c->limit;
    } else {
        int64_t total = c->mode == FT_MODE_COUNT ? c->count_sum : (int64_t)c->seen;
        cJSON_AddNumberToObject(o, "total_count", (double)total);
        const char *key = c->mode == FT_MODE_CONTENT      ? "matches"
                          : c->mode == FT_MODE_FILES_ONLY ? "files"
                                                          : "counts";
        cJSON *items = c->items;
        c->items = NULL;
        if (cJSON_GetArraySize(items) > 0)
            cJSON_AddItemToObject(o, key, items);
        else
            cJSON_Delete(items);
    }
    if (more || s->timed_out)
        cJSON_AddTrueToObject(o, "truncated");
    if (s->error) {
        char *clean = ft_clean_dup(s->error, strlen(s->error));
        cJSON_AddStringToObject(o, "error", clean);
        rt_free(clean);
    }
    return o;
}

/* ============================================================= rg backend */

static void rg_record(ft_search *s, const char *r, size_t n)
{
    ft_collect *c = &s->c;
    if (c->mode == FT_MODE_FILES_ONLY) {
        if (n)
            (void)ft__collect_file(c, r, n);
        return;
    }
    const char *z = memchr(r, '\0', n);
    if (!z)
        return; /* "--" separators, warnings */
    size_t pn = (size_t)(z - r), i = pn + 1;
    uint64_t num = 0;
    size_t digits = 0;
    while (i < n && r[i] >= '0' && r[i] <= '9' && digits < 19) {
        num = num * 10 + (uint64_t)(r[i++] - '0');
        digits++;
    }
    if (!digits)
        return;
    if (c->mode == FT_MODE_COUNT) {
        if (i == n)
            (void)ft__collect_count(c, r, pn, (int64_t)num);
        return;
    }
    if (i < n && (r[i] == ':' || r[i] == '-'))
        (void)ft__collect_line(c, r, pn, num, r + i + 1, n - i - 1);
}

static bool rg_sink(void *arg, const char *data, size_t n)
{
    ft_search *s = arg;
    char term = s->c.mode == FT_MODE_FILES_ONLY ? '\0' : '\n';
    while (n && s->c.seen < s->c.want) {
        const char *e = memchr(data, term, n);
        size_t k = e ? (size_t)(e - data) : n;
        if (!s->rec_full && rt_buf_append(&s->rec, data, k) < 0) {
            size_t room = s->rec.max - s->rec.len;
            (void)rt_buf_append(&s->rec, data, room);
            s->rec_full = true;
        }
        if (!e)
            break;
        rg_record(s, s->rec.data ? s->rec.data : "", s->rec.len);
        rt_buf_reset(&s->rec);
        s->rec_full = false;
        data += k + 1;
        n -= k + 1;
    }
    return s->c.seen < s->c.want;
}

static bool rg_wanted(const ft_search_opts *o)
{
    const char *force = getenv("HERMES_SEARCH_BACKEND");
    if (o->builtin || (force && strcmp(force, "builtin") == 0))
        return false;
    return ft_proc_have("rg");
}

bool ft_search_uses_rg(const ft_search_opts *o)
{
    return o->target == FT_TARGET_CONTENT && rg_wanted(o);
}

static int rg_start(ft_search *s)
{
    const char *argv[24];
    char ctx[24];
    int k = 0;
    argv[k++] = "rg";
    argv[k++] = "--no-config";
    argv[k++] = "--color";
    argv[k++] = "never";
    argv[k++] = "--line-number";
    argv[k++] = "--no-heading";
    argv[k++] = "--with-filename";
    argv[k++] = "--null";
    argv[k++] = "--sort";
    argv[k++] = "path";
    if (s->o.context > 0) {
        snprintf(ctx, sizeof(ctx), "%lld", (long long)s->o.context);
        argv[k++] = "-C";
        argv[k++] = ctx;
    }
    if (s->glob) {
        argv[k++] = "--glob";
        argv[k++] = s->glob;
    }
    if (s->c.mode == FT_MODE_FILES_ONLY)
        argv[k++] = "-l";
    else if (s->c.mode == FT_MODE_COUNT)
        argv[k++] = "-c";
    argv[k++] = "-e";
    argv[k++] = s->pattern;
    argv[k++] = "--";
    argv[k++] = s->path;
    argv[k] = NULL;
    rt_buf_init(&s->rec, RG_RECORD_MAX);
    int err;
    s->rg = ft_proc_start(argv, s->cwd, false, RG_STDERR_MAX, rg_sink, s, &err);
    return s->rg ? 0 : err;
}

/* rg ended (or we stopped it): an error only when it failed and found nothing. */
static void rg_finish(ft_search *s, bool stopped_by_us)
{
    int status = 0;
    char *err = rt_xstrdup(ft_proc_stderr(s->rg));
    ft_proc_free(s->rg, &status);
    s->rg = NULL;
    if (!stopped_by_us && status == 2 && s->c.seen == 0 && !s->error) {
        ft_span t = ft_strip((ft_span){err, strlen(err)});
        s->error = rt_xasprintf("Search failed: %.*s", (int)t.n, t.p);
    }
    rt_free(err);
}

/* ================================================================= the job */

static void copy_opts(ft_search *s, const ft_search_opts *o)
{
    s->o = *o;
    s->pattern = rt_xstrdup(o->pattern ? o->pattern : "");
    s->path = rt_xstrdup(o->path && *o->path ? o->path : ".");
    s->cwd = o->cwd && *o->cwd ? rt_xstrdup(o->cwd) : NULL;
    s->glob = o->file_glob && *o->file_glob ? rt_xstrdup(o->file_glob) : NULL;
    s->o.pattern = s->pattern;
    s->o.path = s->path;
    s->o.cwd = s->cwd;
    s->o.file_glob = s->glob;
    if (s->o.limit < 1)
        s->o.limit = 1;
    if (s->o.limit > FT_SEARCH_LIMIT_MAX)
        s->o.limit = FT_SEARCH_LIMIT_MAX;
    if (s->o.offset < 0)
        s->o.offset = 0;
    if (s->o.offset > INT32_MAX)
        s->o.offset = INT32_MAX;
    if (s->o.context < 0)
        s->o.context = 0;
    if (s->o.context > FT_SEARCH_CONTEXT_MAX)
        s->o.context = FT_SEARCH_CONTEXT_MAX;
    if (s->o.mode < FT_MODE_CONTENT || s->o.mode > FT_MODE_COUNT)
        s->o.mode = FT_MODE_CONTENT;
    int64_t t = o->timeout_ms > 0 ? o->timeout_ms : FT_SEARCH_TIMEOUT_MS;
    s->deadline = ft__now_ms() + t;
    s->c.mode = s->o.target == FT_TARGET_FILES ? FT_MODE_FILES_ONLY : s->o.mode;
    s->c.offset = (size_t)s->o.offset;
    s->c.limit = (size_t)s->o.limit;
    s->c.want = s->c.offset + s->c.limit + 1;
    s->c.items = s->c.mode == FT_MODE_COUNT ? cJSON_CreateObject() : cJSON_CreateArray();
}

/* The pattern of a file-name search: the original keeps only the last path component. */
static const char *name_pattern(const char *p)
{
    if (strncmp(p, "**/", 3) != 0 && !strchr(p, '/'))
        return p;
    const char *slash = strrchr(p, '/');
    return slash ? slash + 1 : p;
}

static cJSON *begin(ft_search *s)
{
    struct stat st;
    s->abs = ft_abs(s->cwd, s->path);
    if (stat(s->abs, &st) != 0)
        return error_result("Path not found: %s", s->path);
    if (s->glob && strlen(s->glob) > FT_SEARCH_GLOB_MAX)
        return error_result("%s", "file_glob is too long");
    if (s->o.target == FT_TARGET_FILES) {
        if (strlen(s->pattern) > FT_SEARCH_GLOB_MAX)
            return error_result("%s", "pattern is too long");
        char *np = rt_xstrdup(name_pattern(s->pattern));
        rt_free(s->pattern);
        s->pattern = np;
        s->o.pattern = np;
        s->walk = ft__walk_new(&s->o, s->abs, s->path, NULL, &s->c);
        return NULL;
    }
    if (rg_wanted(&s->o)) {
        int err = rg_start(s);
        if (err)
            return error_result("Search failed: could not run rg: %s", rt_strerror(err));
        return NULL;
    }
    char msg[512];
    s->re = ft_regex_new(s->pattern, msg, sizeof(msg));
    if (!s->re)
        return error_result("Search failed: %s", msg);
    s->walk = ft__walk_new(&s->o, s->abs, s->path, s->re, &s->c);
    return NULL;
}

ft_search *ft_search_start(const ft_search_opts *o, cJSON **result)
{
    ft_search *s = rt_xcalloc(1, sizeof(*s));
    copy_opts(s, o);
    *result = begin(s);
    if (*result) {
        ft_search_free(s);
        return NULL;
    }
    return s;
}

bool ft_search_step(ft_search *s, int slice_ms, cJSON **result)
{
    int64_t now = ft__now_ms();
    int64_t until = now + slice_ms;
    bool over = now >= s->deadline;
    if (until > s->deadline)
        until = s->deadline;
    bool done = false;
    if (!over && s->rg) {
        while (!done && now < until) { /* drain as much as the slice allows */
            int r = ft_proc_pump(s->rg, (int)(until - now));
            if (r != 0) {
                rg_finish(s, s->c.seen >= s->c.want);
                done = true;
            }
            now = ft__now_ms();
        }
    } else if (!over && s->walk) {
        done = ft__walk_step(s->walk, until);
    }
    if (!done && ft__now_ms() >= s->deadline) {
        s->timed_out = true;
        rt_free(s->error);
        s->error = rt_xasprintf(
            "Search timed out after %llds; results are incomplete",
            (long long)((s->o.timeout_ms > 0 ? s->o.timeout_ms : FT_SEARCH_TIMEOUT_MS) / 1000));
        done = true;
    }
    if (!done)
        return false;
    *result = build_result(s);
    return true;
}

cJSON *ft_search_stop(ft_search *s, const char *why)
{
    if (s->rg) {
        ft_proc_free(s->rg, NULL);
        s->rg = NULL;
    }
    rt_free(s->error);
    s->error = rt_xstrdup(why);
    return build_result(s);
}

void ft_search_free(ft_search *s)
{
    if (!s)
        return;
    ft_proc_free(s->rg, NULL);
    rt_buf_fini(&s->rec);
    ft__walk_free(s->walk);
    ft_regex_free(s->re);
    cJSON_Delete(s->c.items);
    rt_free(s->pattern);
    rt_free(s->path);
    rt_free(s->cwd);
    rt_free(s->glob);
    rt_free(s->abs);
    rt_free(s->error);
    rt_free(s);
}

cJSON *ft_search_run(const ft_search_opts *o)
{
    cJSON *res = NULL;
    ft_search *s = ft_search_start(o, &res);
    while (s && !ft_search_step(s, 1000, &res))
        ;
    ft_search_free(s);
    return res;
}
