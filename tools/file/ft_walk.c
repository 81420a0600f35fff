/*
 * ft_walk — the built-in directory walk of search_files (see ft_search.h): content search
 * without ripgrep, and the file-name search (target "files").
 *
 * The walk is a stack of directory frames; each frame holds its entries sorted by name
 * (ripgrep's --sort path order), read in one go and closed, so at most one directory is
 * open at a time. A content search reads the current file in 64 KiB chunks and keeps its
 * state between steps, so a step can end anywhere and the job stays responsive.
 *
 * Threads: the search's thread.
 */
#include "ft_glob.h"
#include "ft_search_int.h"
#include "ft_text.h"
#include "rt_alloc.h"
#include "rt_buf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WALK_CHUNK       65536
#define WALK_DIR_ENTRIES 1000000 /* entries read from one directory at most */

typedef struct entry {
    char *name;
    unsigned char type; /* DT_DIR, DT_REG, DT_LNK, ... (resolved when DT_UNKNOWN) */
} entry;

typedef struct frame {
    char *abs, *disp;
    entry *e;
    size_t n, i;
} frame;

typedef struct ctxline {
    uint64_t no;
    char *text;
    size_t n;
} ctxline;

typedef struct scan {
    int fd; /* -1 when no file is open */
    char *disp;
    uint64_t lineno;
    rt_buf line;    /* the line being assembled */
    bool line_over; /* the line passed FT_SEARCH_LINE_MAX: the rest is ignored */
    ctxline *ring;  /* before-context, oldest at head */
    size_t rn, rhead;
    size_t after_left;
    int64_t count;
    bool file_done;
} scan;

typedef struct heap_item {
    int64_t mtime_ns;
    char *path;
} heap_item;

struct ft_walk {
    const ft_search_opts *o;
    ft_regex *re; /* NULL for a file-name search */
    ft_collect *c;
    char *root_abs, *root_disp;
    bool root_pending;
    frame *stack;
    size_t depth, cap;
    scan sc;
    size_t ctx; /* context lines */
    bool done;
    /* --glob */
    const char *glob;
    bool glob_neg, glob_slash;
    /* file-name search */
    heap_item *heap;
    size_t hn, hcap, total;
    char chunk[WALK_CHUNK];
};

/* ----------------------------------------------------------------- frames */

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static char *disp_join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    return rt_xasprintf("%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name);
}

static void push_dir(ft_walk *w, const char *abs, const char *disp)
{
    if (w->depth >= FT_SEARCH_MAX_DEPTH)
        return;
    DIR *d = opendir(abs);
    if (!d)
        return; /* unreadable directories are skipped, as rg and find do */
    frame f = {.abs = rt_xstrdup(abs), .disp = rt_xstrdup(disp)};
    size_t cap = 0;
    struct dirent *de;
    while (f.n < WALK_DIR_ENTRIES && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (f.n == cap) {
            cap = cap ? 2 * cap : 32;
            f.e = rt_xrealloc(f.e, cap * sizeof(f.e[0]));
        }
        unsigned char t = de->d_type;
        if (t == DT_UNKNOWN) {
            struct stat st;
            t = fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ? DT_UNKNOWN
                : S_ISDIR(st.st_mode)                                        ? DT_DIR
                : S_ISREG(st.st_mode)                                        ? DT_REG
                : S_ISLNK(st.st_mode)                                        ? DT_LNK
                                                                             : DT_UNKNOWN;
        }
        f.e[f.n++] = (entry){rt_xstrdup(de->d_name), t};
    }
    closedir(d);
    if (f.n)
        qsort(f.e, f.n, sizeof(f.e[0]), cmp_entry);
    if (w->depth == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->stack = rt_xrealloc(w->stack, w->cap * sizeof(w->stack[0]));
    }
    w->stack[w->depth++] = f;
}

static void pop_dir(ft_walk *w)
{
    frame *f = &w->stack[--w->depth];
    for (size_t i = 0; i < f->n; i++)
        rt_free(f->e[i].name);
    rt_free(f->e);
    rt_free(f->abs);
    rt_free(f->disp);
}

/* ------------------------------------------------------------------ globs */

/* The path a glob with a '/' is matched against: relative to the working directory. */
static const char *rel_path(const ft_walk *w, const char *disp)
{
    while (disp[0] == '.' && disp[1] == '/')
        disp += 2;
    const char *cwd = w->o->cwd;
    size_t n = cwd ? strlen(cwd) : 0;
    if (disp[0] == '/' && n && strncmp(disp, cwd, n) == 0 && disp[n] == '/')
        return disp + n + 1;
    return disp;
}

static bool glob_ok(const ft_walk *w, const char *name, const char *disp, bool is_dir)
{
    if (!w->glob)
        return true;
    if (is_dir && !w->glob_neg)
        return true; /* whitelist globs never stop the descent (rg) */
    bool m = ft_glob_match(w->glob, w->glob_slash ? rel_path(w, disp) : name);
    return w->glob_neg ? !m : m;
}

/* ---------------------------------------------------------- content scan */

static void ring_clear(ft_walk *w)
{
    scan *s = &w->sc;
    for (size_t i = 0; i < s->rn; i++)
        rt_free(s->ring[(s->rhead + i) % w->ctx].text);
    s->rn = s->rhead = 0;
}

static void scan_close(ft_walk *w)
{
    scan *s = &w->sc;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    if (w->ctx)
        ring_clear(w);
    rt_free(s->disp);
    s->disp = NULL;
    rt_buf_reset(&s->line);
}

static void scan_open(ft_walk *w, const char *abs, const char *disp)
{
    scan *s = &w->sc;
    s->fd = open(abs, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (s->fd < 0)
        return;
    struct stat st;
    if (fstat(s->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(s->fd);
        s->fd = -1;
        return;
    }
    s->disp = rt_xstrdup(disp);
    s->lineno = 0;
    s->line_over = false;
    s->after_left = 0;
    s->count = 0;
    s->file_done = false;
}

static void ring_push(ft_walk *w, uint64_t no, const char *text, size_t n)
{
    scan *s = &w->sc;
    size_t cut = ft_utf8_prefix(text, n, FT_SEARCH_CONTENT_CHARS, NULL);
    ctxline l = {no, rt_xmemdup(text, cut), cut};
    if (s->rn == w->ctx) { /* full: drop the oldest */
        rt_free(s->ring[s->rhead].text);
        s->ring[s->rhead] = l;
        s->rhead = (s->rhead + 1) % w->ctx;
    } else {
        s->ring[(s->rhead + s->rn++) % w->ctx] = l;
    }
}

/* One complete line: match it and hand matches (and context) to the collector. */
static void on_line(ft_walk *w, const char *text, size_t n)
{
    scan *s = &w->sc;
    ft_collect *c = w->c;
    uint64_t no = ++s->lineno;
    bool hit = ft_regex_search(w->re, text, n);
    size_t pn = strlen(s->disp);
    if (c->mode == FT_MODE_FILES_ONLY) {
        if (hit) {
            if (!ft__collect_file(c, s->disp, pn))
                w->done = true;
            s->file_done = true;
        }
        return;
    }
    if (c->mode == FT_MODE_COUNT) {
        s->count += hit;
        return;
    }
    bool more = true;
    if (hit) {
        for (size_t i = 0; i < s->rn && more; i++) {
            ctxline *l = &s->ring[(s->rhead + i) % w->ctx];
            more = ft__collect_line(c, s->disp, pn, l->no, l->text, l->n);
        }
        if (w->ctx)
            ring_clear(w);
        if (more)
            more = ft__collect_line(c, s->disp, pn, no, text, n);
        s->after_left = w->ctx;
    } else if (s->after_left) {
        s->after_left--;
        more = ft__collect_line(c, s->disp, pn, no, text, n);
    } else if (w->ctx) {
        ring_push(w, no, text, n);
    }
    if (!more)
        w->done = true;
}

static void line_bytes(ft_walk *w, const char *p, size_t n)
{
    scan *s = &w->sc;
    if (s->line_over)
        return;
    size_t room = FT_SEARCH_LINE_MAX - s->line.len;
    if (n > room) {
        n = room;
        s->line_over = true;
    }
    (void)rt_buf_append(&s->line, p, n); /* fits: the buffer's max is the line limit */
}

static void end_line(ft_walk *w)
{
    scan *s = &w->sc;
    on_line(w, s->line.data ? s->line.data : "", s->line.len);
    rt_buf_reset(&s->line);
    s->line_over = false;
}

/* Read and search one chunk of the current file. */
static void scan_chunk(ft_walk *w)
{
    scan *s = &w->sc;
    ssize_t r = read(s->fd, w->chunk, sizeof(w->chunk));
    if (r < 0 && errno == EINTR)
        return;
    if (r <= 0) {
        if (r == 0 && (s->line.len || s->line_over))
            end_line(w); /* a last line without newline */
        if (w->c->mode == FT_MODE_COUNT && s->count > 0 && !w->done)
            if (!ft__collect_count(w->c, s->disp, strlen(s->disp), s->count))
                w->done = true;
        s->file_done = true;
        return;
    }
    if (memchr(w->chunk, '\0', (size_t)r)) {
        s->file_done = true; /* binary: rg stops searching the file here */
        return;
    }
    const char *p = w->chunk, *end = w->chunk + r;
    while (p < end && !s->file_done && !w->done) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            line_bytes(w, p, (size_t)(end - p));
            break;
        }
        line_bytes(w, p, (size_t)(nl - p));
        end_line(w);
        p = nl + 1;
    }
}

/* ------------------------------------------------------- file-name search */

static bool newer(const heap_item *a, const heap_item *b)
{
    if (a->mtime_ns != b->mtime_ns)
        return a->mtime_ns > b->mtime_ns;
    return strcmp(a->path, b->path) > 0; /* sort -rn's last resort: the whole line, reversed */
}

static void sift_down(heap_item *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && newer(&h[m], &h[l]))
            m = l;
        if (r < n && newer(&h[m], &h[r]))
            m = r;
        if (m == i)
            return;
        heap_item t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void keep_newest(ft_walk *w, const char *abs, const char *disp)
{
    struct stat st;
    if (stat(abs, &st) != 0)
        return;
    w->total++;
    heap_item it = {(int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec, NULL};
    size_t k = w->c->offset + w->c->limit;
    if (w->hn < k) {
        if (w->hn == w->hcap) {
            w->hcap = w->hcap ? 2 * w->hcap : 64;
            w->heap = rt_xrealloc(w->heap, w->hcap * sizeof(w->heap[0]));
        }
        it.path = rt_xstrdup(disp);
        size_t i = w->hn++;
        w->heap[i] = it;
        while (i && newer(&w->heap[(i - 1) / 2], &w->heap[i])) { /* sift up: min at root */
            heap_item t = w->heap[i];
            w->heap[i] = w->heap[(i - 1) / 2];
            w->heap[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
        return;
    }
    it.path = (char *)disp;
    if (!newer(&it, &w->heap[0]))
        return;
    rt_free(w->heap[0].path);
    it.path = rt_xstrdup(disp);
    w->heap[0] = it;
    sift_down(w->heap, w->hn, 0);
}

static int cmp_newest(const void *a, const void *b)
{
    return newer(a, b) ? -1 : newer(b, a) ? 1 : 0;
}

size_t ft__walk_files(ft_walk *w, size_t offset, size_t limit, cJSON **files)
{
    if (w->hn > 1)
        qsort(w->heap, w->hn, sizeof(w->heap[0]), cmp_newest);
    *files = cJSON_CreateArray();
    for (size_t i = offset; i < w->hn && i < offset + limit; i++) {
        char *p = ft_clean_dup(w->heap[i].path, strlen(w->heap[i].path));
        cJSON_AddItemToArray(*files, cJSON_CreateString(p));
        rt_free(p);
    }
    return w->total;
}

/* ------------------------------------------------------------------- walk */

static bool skip_dir(const ft_walk *w, const char *name)
{
    if (strcmp(name, ".git") == 0 || strcmp(name, "node_modules") == 0)
        return true;
    return w->re && name[0] == '.'; /* content search: hidden directories, as rg */
}

/* A regular file found by the walk (or given as the root). */
static void on_file(ft_walk *w, const char *abs, const char *disp, const char *name, bool root)
{
    if (!w->re) {
        if (fnmatch(w->o->pattern, name, 0) == 0)
            keep_newest(w, abs, disp);
        return;
    }
    if (!root && (name[0] == '.' || !glob_ok(w, name, disp, false)))
        return;
    scan_open(w, abs, disp);
}

static void visit(ft_walk *w, frame *f)
{
    entry *e = &f->e[f->i++];
    if (e->type != DT_DIR && e->type != DT_REG)
        return; /* symlinks are not followed; sockets, fifos, devices are not searched */
    char *abs = ft_path_join(f->abs, e->name);
    char *disp = disp_join(f->disp, e->name);
    if (e->type == DT_DIR) {
        if (!skip_dir(w, e->name) && (!w->re || glob_ok(w, e->name, disp, true)))
            push_dir(w, abs, disp);
    } else {
        on_file(w, abs, disp, e->name, false);
    }
    rt_free(abs);
    rt_free(disp);
}

static void start_root(ft_walk *w)
{
    w->root_pending = false;
    struct stat st;
    if (stat(w->root_abs, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode))
        push_dir(w, w->root_abs, w->root_disp);
    else if (S_ISREG(st.st_mode))
        on_file(w, w->root_abs, w->root_disp, ft_path_basename(w->root_disp), true);
}

bool ft__walk_step(ft_walk *w, int64_t until_ms)
{
    while (!w->done) {
        if (w->sc.fd >= 0) {
            scan_chunk(w);
            if (w->sc.file_done || w->done)
                scan_close(w);
        } else if (w->root_pending) {
            start_root(w);
        } else if (!w->depth) {
            w->done = true;
            break;
        } else {
            frame *f = &w->stack[w->depth - 1];
            if (f->i == f->n)
                pop_dir(w);
            else
                visit(w, f);
        }
        if (ft__now_ms() >= until_ms)
            break;
    }
    return w->done;
}

ft_walk *ft__walk_new(const ft_search_opts *o, const char *abs, const char *disp, ft_regex *re,
                      ft_collect *c)
{
    ft_walk *w = rt_xcalloc(1, sizeof(*w));
    w->o = o;
    w->re = re;
    w->c = c;
    w->root_abs = rt_xstrdup(abs);
    w->root_disp = rt_xstrdup(disp);
    w->root_pending = true;
    w->sc.fd = -1;
    rt_buf_init(&w->sc.line, FT_SEARCH_LINE_MAX);
    if (re) {
        w->ctx = c->mode == FT_MODE_CONTENT ? (size_t)o->context : 0;
        if (w->ctx)
            w->sc.ring = rt_xcalloc(w->ctx, sizeof(ctxline));
        if (o->file_glob) {
            w->glob_neg = o->file_glob[0] == '!';
            w->glob = o->file_glob + (w->glob_neg ? 1 : 0);
            w->glob_slash = strchr(w->glob, '/') != NULL;
        }
    }
    return w;
}

void ft__walk_free(ft_walk *w)
{
    if (!w)
        return;
    scan_close(w);
    rt_buf_fini(&w->sc.line);
    rt_free(w->sc.ring);
    while (w->depth)
        pop_dir(w);
    rt_free(w->stack);
    for (size_t i = 0; i < w->hn; i++)
        rt_free(w->heap[i].path);
    rt_free(w->heap);
    rt_free(w->root_abs);
    rt_free(w->root_disp);
    rt_free(w);
}
