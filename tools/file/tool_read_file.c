/*
 * tool_read_file — the `read_file` tool (agent-core §3.3; the original's
 * ShellFileOperations.read_file).
 *
 * Result (ReadResult.to_dict: None, "" and [] are left out, false and 0 are kept):
 *   {content, total_lines, file_size, truncated, hint?, is_binary, is_image}
 * where content is the lines offset..offset+limit-1, each as a 6-wide right-aligned line
 * number, "|", the line (cut at 2000 characters with "... [truncated]"), joined by
 * newlines; hint "Use offset=<end+1> to continue reading (showing <a>-<b> of <total>
 * lines)" when lines remain. Not found: {..., error:"File not found: <path>",
 * similar_files:[<=5]}. Images (by extension) and binary files (by extension or more than
 * 30% control characters in the first 1000 bytes) are not read.
 *
 * Differences from the original, on purpose:
 *   - the file is streamed: lines before offset are skipped, lines after the range are
 *     only counted (holes of sparse files are skipped), so a huge file is never loaded;
 *     the count gives up after READ_COUNT_MS (total_lines is then a lower bound, and the
 *     hint says "at least"); reaching the requested lines may take twice that at most;
 *   - total_lines counts a last line without newline (the original used `wc -l`), and a
 *     final newline does not produce an empty numbered line;
 *   - directories and non-regular files (devices, FIFOs, sockets) get a clear error
 *     instead of "File not found", and nothing blocks on them;
 *   - limit is clamped to 1..2000 and offset to >= 1 (upstream's later fix).
 *
 * Threads: a detached call actor (blocking reads).
 */
#include "ft_fs.h"
#include "ft_text.h"
#include "ft_tool.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"
#include "tool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_MAX_LINES      2000
#define READ_DEFAULT_LIMIT  500
#define READ_MAX_LINE_CHARS 2000
#define READ_LINE_KEEP      (READ_MAX_LINE_CHARS * 4 + 4) /* bytes: >= 2000 characters */
#define READ_CONTENT_MAX    ((size_t)32 << 20)
#define READ_SAMPLE         1000
#define READ_COUNT_MS       10000
#define READ_CHUNK          65536
#define READ_SIMILAR_LS     20
#define READ_SIMILAR_MAX    5

static const char SCHEMA[] =
    "{\"name\":\"read_file\",\"description\":\"Read a text file with line numbers and paginat"
    "ion. Use this instead of cat/head/tail in terminal. Output format: 'LINE_NUM|CONTENT'. S"
    "uggests similar filenames if not found. Use offset and limit for large files. NOTE: Cann"
    "ot read images or binary files — use vision_analyze for images.\",\"parameters\":{\"type"
    "\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description\":\"Path to th"
    "e file to read (absolute, relative, or ~/path)\"},\"offset\":{\"type\":\"integer\",\"des"
    "cription\":\"Line number to start reading from (1-indexed, default: 1)\",\"default\":1,\""
    "minimum\":1},\"limit\":{\"type\":\"integer\",\"description\":\"Maximum number of lines t"
    "o read (default: 500, max: 2000)\",\"default\":500,\"maximum\":2000}},\"required\":[\"pa"
    "th\"]}}";

static const char *const binary_ext[] = {
    ".png",   ".jpg",  ".jpeg",  ".gif",  ".webp", ".bmp",    ".ico",     ".tiff", ".tif",
    ".svg",   ".mp3",  ".mp4",   ".wav",  ".avi",  ".mov",    ".mkv",     ".flac", ".ogg",
    ".webm",  ".zip",  ".tar",   ".gz",   ".bz2",  ".xz",     ".7z",      ".rar",  ".pdf",
    ".doc",   ".docx", ".xls",   ".xlsx", ".ppt",  ".pptx",   ".exe",     ".dll",  ".so",
    ".dylib", ".o",    ".a",     ".pyc",  ".pyo",  ".class",  ".wasm",    ".bin",  ".ttf",
    ".otf",   ".woff", ".woff2", ".eot",  ".db",   ".sqlite", ".sqlite3",
};
static const char *const image_ext[] = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".ico"};

static bool in_list(const char *ext, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ext, list[i]) == 0)
            return true;
    return false;
}

/* The ReadResult fields, in the dataclass's order. */
typedef struct read_result {
    char *content; /* owned, or NULL */
    uint64_t total_lines;
    int64_t file_size;
    bool truncated;
    char *hint; /* owned, or NULL */
    bool is_binary, is_image;
    char *error;    /* owned, or NULL */
    cJSON *similar; /* owned array, or NULL */
} read_result;

static cJSON *to_json(read_result *r)
{
    cJSON *o = cJSON_CreateObject();
    if (r->content && *r->content)
        cJSON_AddStringToObject(o, "content", r->content);
    cJSON_AddNumberToObject(o, "total_lines", (double)r->total_lines);
    cJSON_AddNumberToObject(o, "file_size", (double)r->file_size);
    cJSON_AddBoolToObject(o, "truncated", r->truncated);
    if (r->hint && *r->hint)
        cJSON_AddStringToObject(o, "hint", r->hint);
    cJSON_AddBoolToObject(o, "is_binary", r->is_binary);
    cJSON_AddBoolToObject(o, "is_image", r->is_image);
    if (r->error && *r->error) {
        char *e = ft_clean_dup(r->error, strlen(r->error));
        cJSON_AddStringToObject(o, "error", e);
        rt_free(e);
    }
    if (r->similar && cJSON_GetArraySize(r->similar) > 0) {
        cJSON_AddItemToObject(o, "similar_files", r->similar);
        r->similar = NULL;
    }
    cJSON_Delete(r->similar);
    rt_free(r->content);
    rt_free(r->hint);
    rt_free(r->error);
    return o;
}

/* ------------------------------------------------------------ not found */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static uint32_t lower(uint32_t c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* len(set(a.lower()) & set(b.lower())) >= len(a) * 0.5 */
static bool shares_chars(const char *a, const char *b)
{
    ft_u32 ua = {0}, ub = {0};
    ft_utf8_decode(a, strlen(a), &ua);
    ft_utf8_decode(b, strlen(b), &ub);
    size_t common = 0;
    for (size_t i = 0; i < ua.n; i++) {
        uint32_t c = lower(ua.v[i]);
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++)
            dup = lower(ua.v[k]) == c;
        if (dup)
            continue;
        for (size_t j = 0; j < ub.n; j++)
            if (lower(ub.v[j]) == c) {
                common++;
                break;
            }
    }
    bool ok = (double)common >= (double)ua.n * 0.5;
    ft_u32_fini(&ua);
    ft_u32_fini(&ub);
    return ok;
}

/* The first 20 names `ls -1` would list in the file's directory that share at least half
 * of the name's characters, joined to the directory as shown; at most 5. */
static cJSON *similar_files(const tool_run *run, const char *display)
{
    char *dir = ft_path_dirname(display);
    const char *name = ft_path_basename(display);
    const char *shown = dir[0] ? dir : ".";
    char *abs = ft_abs(run->env ? run->env->cwd : NULL, shown);
    cJSON *out = cJSON_CreateArray();
    DIR *d = opendir(abs);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL && n < 100000) {
        if (de->d_name[0] == '.')
            continue; /* ls -1 hides dot files */
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = rt_xrealloc(names, cap * sizeof(char *));
        }
        names[n++] = rt_xstrdup(de->d_name);
    }
    if (d)
        closedir(d);
    if (n)
        qsort(names, n, sizeof(char *), cmp_str);
    for (size_t i = 0; i < n && i < READ_SIMILAR_LS; i++) {
        if (cJSON_GetArraySize(out) < READ_SIMILAR_MAX && shares_chars(name, names[i])) {
            char *p = ft_path_join(shown, names[i]);
            char *clean = ft_clean_dup(p, strlen(p));
            cJSON_AddItemToArray(out, cJSON_CreateString(clean));
            rt_free(clean);
            rt_free(p);
        }
    }
    for (size_t i = 0; i < n; i++)
        rt_free(names[i]);
    rt_free(names);
    rt_free(abs);
    rt_free(dir);
    return out;
}

/* ------------------------------------------------------------ streaming */

typedef struct reader {
    int fd;
    int64_t size;    /* st_size (0 for most /proc files) */
    uint64_t offset; /* first line wanted (1-based) */
    uint64_t end;    /* last line wanted */
    uint64_t line;   /* number of the line being read (1-based) */
    uint64_t total;  /* complete lines seen */
    rt_buf out;      /* rendered lines */
    char *keep;      /* the current in-range line's first READ_LINE_KEEP bytes */
    size_t kept;
    bool dropped; /* the current line had more bytes than kept */
    bool pending; /* bytes of a line without newline seen */
    bool partial; /* the count stopped early */
    int err;
} reader;

static void render_line(reader *r)
{
    bool cut = false;
    size_t n = ft_utf8_prefix(r->keep, r->kept, READ_MAX_LINE_CHARS, &cut);
    cut |= r->dropped;
    if (r->out.len)
        (void)rt_buf_append(&r->out, "\n", 1);
    (void)rt_buf_printf(&r->out, "%6llu|", (unsigned long long)r->line);
    (void)ft_append_clean(&r->out, r->keep, n);
    if (cut)
        (void)rt_buf_append_str(&r->out, "... [truncated]");
    r->kept = 0;
    r->dropped = false;
}

static bool in_range(const reader *r)
{
    return r->line >= r->offset && r->line <= r->end;
}

static void take_bytes(reader *r, const char *p, size_t n)
{
    if (!in_range(r) || r->dropped)
        return;
    size_t room = READ_LINE_KEEP - r->kept;
    if (n > room) {
        n = room;
        r->dropped = true;
    }
    memcpy(r->keep + r->kept, p, n);
    r->kept += n;
}

static void feed(reader *r, const char *p, size_t n)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        if (!nl) {
            take_bytes(r, p, n);
            r->pending = true;
            return;
        }
        take_bytes(r, p, (size_t)(nl - p));
        if (in_range(r))
            render_line(r);
        r->total++;
        r->line++;
        r->pending = false;
        n -= (size_t)(nl - p) + 1;
        p = nl + 1;
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Skip a hole of a sparse file when the bytes there (zeros, no newline) do not matter:
 * before the range, after it, or past the kept part of a line. */
static off_t skip_hole(reader *r, off_t pos)
{
    if (r->size < (int64_t)READ_CHUNK || pos >= r->size)
        return pos;
    if (in_range(r) && !r->dropped)
        return pos;
    off_t data = lseek(r->fd, pos, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) { /* a hole up to the end */
            r->pending = true;
            r->dropped |= in_range(r);
            return (off_t)r->size;
        }
        return pos;
    }
    if (data > pos) {
        r->pending = true; /* the zeros belong to the current line */
        r->dropped |= in_range(r);
    }
    return data;
}

static void stream(reader *r)
{
    char *buf = rt_xmalloc(READ_CHUNK);
    off_t pos = 0;
    int64_t deadline = now_ms() + READ_COUNT_MS;
    for (;;) {
        off_t next = skip_hole(r, pos);
        if (next != pos && lseek(r->fd, next, SEEK_SET) < 0)
            break;
        pos = next;
        ssize_t k = read(r->fd, buf, READ_CHUNK);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            r->err = -errno;
            break;
        }
        if (k == 0)
            break;
        pos += k;
        feed(r, buf, (size_t)k);
        if (now_ms() > deadline) {
            if (r->line > r->end) {
                r->partial = true; /* the range is done; only the count is cut short */
            } else if (now_ms() > deadline + READ_COUNT_MS) {
                r->err = -ETIMEDOUT; /* still not at the requested lines */
            } else {
                continue;
            }
            break;
        }
    }
    if (r->pending && !r->partial && !r->err) { /* a last line without newline */
        if (in_range(r))
            render_line(r);
        r->total++;
    }
    rt_free(buf);
}

/* ------------------------------------------------------------ the tool */

static bool looks_binary(int fd)
{
    char s[READ_SAMPLE];
    ssize_t n = pread(fd, s, sizeof(s), 0);
    if (n <= 0)
        return false;
    size_t chars = 0, ctrl = 0;
    for (size_t i = 0; i < (size_t)n;) {
        uint32_t cp;
        i += ft_utf8_next(s + i, (size_t)n - i, &cp);
        chars++;
        ctrl += cp < 32 && cp != '\n' && cp != '\r' && cp != '\t';
    }
    return (double)ctrl / (double)chars > 0.30;
}

static const char *kind_of(mode_t m)
{
    return S_ISCHR(m)    ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

static void read_regular(reader *r, read_result *res, const char *ext)
{
    if (in_list(ext, binary_ext, RT_ARRAY_LEN(binary_ext)) || looks_binary(r->fd)) {
        res->is_binary = true;
        res->error = rt_xstrdup(
            "Binary file - cannot display as text. Use appropriate tools to handle this file "
            "type.");
        return;
    }
    rt_buf_init(&r->out, READ_CONTENT_MAX);
    r->keep = rt_xmalloc(READ_LINE_KEEP);
    r->line = 1;
    stream(r);
    rt_free(r->keep);
    if (r->err) {
        rt_buf_fini(&r->out);
        res->error = rt_xasprintf("Failed to read file: %s", rt_strerror(r->err));
        return;
    }
    res->content = rt_buf_steal(&r->out, NULL);
    res->total_lines = r->total;
    res->truncated = r->total > r->end || r->partial;
    if (res->truncated)
        res->hint =
            rt_xasprintf("Use offset=%llu to continue reading (showing %llu-%llu of %s%llu lines)",
                         (unsigned long long)r->end + 1, (unsigned long long)r->offset,
                         (unsigned long long)r->end, r->partial ? "at least " : "",
                         (unsigned long long)r->total);
}

static void do_read(const tool_run *run, const char *display, const char *abs, int64_t offset,
                    int64_t limit, read_result *res)
{
    struct stat st;
    if (stat(abs, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            res->error = rt_xasprintf("File not found: %s", display);
            res->similar = similar_files(run, display);
        } else {
            res->error = rt_xasprintf("Failed to read file: %s: %s", display, rt_strerror(-errno));
        }
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        res->error = rt_xasprintf("Cannot read '%s': it is a directory. Use search_files with "
                                  "target='files' to list its files.",
                                  display);
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        res->error = rt_xasprintf("Cannot read '%s': it is %s, not a regular file.", display,
                                  kind_of(st.st_mode));
        return;
    }
    res->file_size = st.st_size;
    char ext[32];
    ft_path_ext(display, ext, sizeof(ext));
    if (in_list(ext, image_ext, RT_ARRAY_LEN(image_ext))) {
        res->is_image = res->is_binary = true;
        res->hint = rt_xstrdup("Image file detected. Automatically redirected to vision_analyze "
                               "tool. Use vision_analyze with this file path to inspect the "
                               "image contents.");
        return;
    }
    /* O_NONBLOCK: if the path was swapped for a FIFO since stat, open does not hang. */
    reader r = {.fd = open(abs, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)};
    if (r.fd < 0) {
        res->error = rt_xasprintf("Failed to read file: %s: %s", display, rt_strerror(-errno));
        return;
    }
    if (fstat(r.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        res->error = rt_xasprintf("Cannot read '%s': not a regular file.", display);
    } else {
        r.size = st.st_size;
        r.offset = (uint64_t)offset;
        r.end = (uint64_t)(offset + limit - 1);
        read_regular(&r, res, ext);
    }
    close(r.fd);
}

static void read_start(rt_ctx *cx, tool_run *run)
{
    const char *path = tool_arg_str(run, "path");
    int64_t offset = tool_arg_int(run, "offset", 1);
    int64_t limit = tool_arg_int(run, "limit", READ_DEFAULT_LIMIT);
    if (offset < 1)
        offset = 1;
    if (offset > INT32_MAX)
        offset = INT32_MAX;
    if (limit < 1)
        limit = 1;
    if (limit > READ_MAX_LINES)
        limit = READ_MAX_LINES;
    read_result res = {0};
    if (!path || !*path) {
        res.error = rt_xstrdup("path is required");
    } else {
        char *display, *abs;
        ft_tool_path(run, path, &display, &abs);
        do_read(run, display, abs, offset, limit, &res);
        rt_free(display);
        rt_free(abs);
    }
    tool_finish_json(cx, run, to_json(&res));
}

const tool_def tool_def_read_file = {
    .name = "read_file",
    .toolset = "file",
    .schema = SCHEMA,
    .blocking = true,
    .parallel_safe = true,
    .start = read_start,
};
