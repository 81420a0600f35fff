/*
 * mem_file — see mem_file.h.
 */
#include "mem_file.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ================================================================= UTF-8 */

/* Decode the sequence at s[0..n): the code point, its length in *len (1 for a stray byte,
 * which decodes as 0xFFFD so that it is never whitespace). */
static uint32_t decode(const unsigned char *s, size_t n, size_t *len)
{
    *len = 1;
    if (s[0] < 0x80)
        return s[0];
    size_t want = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 0;
    if (!want || want > n)
        return 0xFFFD;
    uint32_t cp = s[0] & (0x7F >> want);
    for (size_t i = 1; i < want; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0xFFFD;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    *len = want;
    return cp;
}

bool mem_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp = decode(s + i, n - i, &len);
        if (len == 1)
            return false; /* stray continuation, bad lead byte or cut sequence */
        static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

size_t mem_utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

size_t mem_utf8_prefix(const char *s, size_t chars)
{
    size_t i = 0, seen = 0;
    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80 && seen++ == chars)
            break;
    }
    return i;
}

/* Python's str.isspace() set. */
static bool is_py_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

char *mem_strip(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t a = 0, b = n, len;
    while (a < b && is_py_space(decode(s + a, b - a, &len)))
        a += len;
    while (b > a) {
        size_t start = b - 1; /* back up to the lead byte of the last sequence */
        while (start > a && (s[start] & 0xC0) == 0x80 && b - start < 4)
            start--;
        uint32_t cp = decode(s + start, b - start, &len);
        if (start + len != b || !is_py_space(cp))
            break;
        b = start;
    }
    return rt_xstrndup(str + a, b - a);
}

unsigned mem_pct(size_t cur, size_t limit)
{
    if (!limit)
        return 0;
    return (unsigned)(((double)cur / (double)limit) * 100.0);
}

/* =============================================================== entries */

void mem_entries_fini(mem_entries *e)
{
    for (size_t i = 0; i < e->n; i++)
        rt_free(e->v[i]);
    rt_free(e->v);
    e->v = NULL;
    e->n = 0;
}

void mem_entries_push(mem_entries *e, const char *s)
{
    e->v = rt_xrealloc(e->v, (e->n + 1) * sizeof(e->v[0]));
    e->v[e->n++] = rt_xstrdup(s);
}

long mem_entries_find(const mem_entries *e, const char *s)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->v[i], s) == 0)
            return (long)i;
    return -1;
}

static void add_unique(mem_entries *e, char *entry)
{
    if (!*entry || mem_entries_find(e, entry) >= 0) {
        rt_free(entry);
        return;
    }
    e->v = rt_xrealloc(e->v, (e->n + 1) * sizeof(e->v[0]));
    e->v[e->n++] = entry;
}

void mem_parse(const char *text, mem_entries *out)
{
    out->v = NULL;
    out->n = 0;
    const char *p = text ? text : "";
    size_t dl = strlen(MEM_DELIM);
    for (;;) {
        const char *d = strstr(p, MEM_DELIM);
        size_t n = d ? (size_t)(d - p) : strlen(p);
        add_unique(out, mem_strip(p, n));
        if (!d)
            break;
        p = d + dl;
    }
}

char *mem_join(const mem_entries *e)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    for (size_t i = 0; i < e->n; i++) {
        if (i)
            rt_buf_append_str(&b, MEM_DELIM);
        rt_buf_append_str(&b, e->v[i]);
    }
    return rt_buf_steal(&b, NULL);
}

size_t mem_chars(const mem_entries *e)
{
    size_t n = e->n ? (e->n - 1) * 3 : 0; /* each delimiter is three characters */
    for (size_t i = 0; i < e->n; i++)
        n += mem_utf8_len(e->v[i]);
    return n;
}

/* ================================================================ files */

int mem_file_load(const char *path, mem_entries *out)
{
    out->v = NULL;
    out->n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    rt_buf b;
    rt_buf_init(&b, MEM_FILE_MAX);
    char chunk[4096];
    ssize_t r;
    int err = 0;
    while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            err = -errno;
            break;
        }
        err = rt_buf_append(&b, chunk, (size_t)r);
        if (err)
            break;
    }
    close(fd);
    if (!err && (memchr(rt_buf_cstr(&b), '\0', b.len) || !mem_utf8_valid(rt_buf_cstr(&b), b.len)))
        err = -EILSEQ;
    if (!err)
        mem_parse(rt_buf_cstr(&b), out);
    rt_buf_fini(&b);
    return err;
}

static int write_all(int fd, const char *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        off += (size_t)w;
    }
    return 0;
}

/* The folder of path ("." when it has none) into out. */
static int dir_of(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    int n = 0;
    if (!slash)
        n = snprintf(out, outlen, ".");
    else if (slash == path)
        n = snprintf(out, outlen, "/");
    else
        n = snprintf(out, outlen, "%.*s", (int)(slash - path), path);
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int mem_file_save(const char *path, const mem_entries *e)
{
    char dir[4096], tmp[4200];
    int err = dir_of(path, dir, sizeof(dir));
    if (err)
        return err;
    if (snprintf(tmp, sizeof(tmp), "%s/.mem_XXXXXX.tmp", dir) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    /* mkostemps: a unique name per call (two targets in one folder, two threads, two
     * processes never share a temp file), created 0600. */
    int fd = mkostemps(tmp, 4, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char *text = mem_join(e);
    err = write_all(fd, text, strlen(text));
    rt_free(text);
    if (!err && fchmod(fd, 0600) < 0)
        err = -errno;
    if (!err && fsync(fd) < 0)
        err = -errno;
    if (close(fd) < 0 && !err)
        err = -errno;
    if (!err && rename(tmp, path) < 0)
        err = -errno;
    if (err) {
        unlink(tmp);
        return err;
    }
    /* Make the rename itself durable; a failure here leaves a complete file either way. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd); /* best effort, see above */
        close(dfd);
    }
    return 0;
}

int mem_dir_ensure(const char *dir)
{
    char p[4096];
    if (!dir || !*dir)
        return -EINVAL;
    if (rt_strlcpy(p, dir, sizeof(p)) >= sizeof(p))
        return -ENAMETOOLONG;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    for (char *s = p + 1;; s++) {
        bool end = *s == '\0';
        if (*s != '/' && !end)
            continue;
        *s = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            return -errno;
        if (end)
            break;
        *s = '/';
    }
    struct stat st;
    if (stat(p, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int mem_file_lock(const char *path, int timeout_ms, int *out)
{
    *out = -1;
    char lock[4200];
    if (snprintf(lock, sizeof(lock), "%s.lock", path) >= (int)sizeof(lock))
        return -ENAMETOOLONG;
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    /* Holders keep the lock for one read, one write and an fsync: poll with a short,
     * growing pause rather than block without bound on a holder that hangs. */
    int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    long pause_us = 200;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            break;
        int e = errno;
        if (e != EWOULDBLOCK && e != EINTR) {
            close(fd);
            return -e;
        }
        if (mono_ms() >= deadline) {
            close(fd);
            return -ETIMEDOUT;
        }
        struct timespec ts = {0, pause_us * 1000};
        nanosleep(&ts, NULL);
        if (pause_us < 5000)
            pause_us *= 2;
    }
    *out = fd;
    return 0;
}

void mem_file_unlock(int fd)
{
    if (fd < 0)
        return;
    (void)flock(fd, LOCK_UN); /* close releases it too; unlock first for clarity */
    close(fd);
}

/* ============================================================ rendering */

void mem_format_thousands(size_t n, char *out, size_t outlen)
{
    char digits[32];
    int len = snprintf(digits, sizeof(digits), "%zu", n);
    size_t o = 0;
    for (int i = 0; i < len && o + 1 < outlen; i++) {
        if (i && (len - i) % 3 == 0 && o + 1 < outlen)
            out[o++] = ',';
        if (o + 1 < outlen)
            out[o++] = digits[i];
    }
    out[o] = '\0';
}

char *mem_render_block(const char *target, const mem_entries *e, size_t limit)
{
    if (!e->n)
        return NULL;
    size_t cur = mem_chars(e);
    char scur[32], slim[32];
    mem_format_thousands(cur, scur, sizeof(scur));
    mem_format_thousands(limit, slim, sizeof(slim));
    unsigned pct = mem_pct(cur, limit);
    const char *title = strcmp(target, "user") == 0 ? "USER PROFILE (who the user is)"
                                                    : "MEMORY (your personal notes)";
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    for (int i = 0; i < 46; i++)
        rt_buf_append_str(&b, "\xe2\x95\x90"); /* U+2550 ═ */
    rt_buf_printf(&b, "\n%s [%u%% \xe2\x80\x94 %s/%s chars]\n", title, pct, scur, slim);
    for (int i = 0; i < 46; i++)
        rt_buf_append_str(&b, "\xe2\x95\x90");
    rt_buf_append_str(&b, "\n");
    char *joined = mem_join(e);
    rt_buf_append_str(&b, joined);
    rt_free(joined);
    return rt_buf_steal(&b, NULL);
}
