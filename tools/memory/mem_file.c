/*
 * mem_file — see mem_file.h.
 */
#include "mem_file.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MEM_FILE_MAX (1u << 20) /* a memory file larger than this is not ours to load */

void mem_entries_fini(mem_entries *e)
{
    for (size_t i = 0; i < e->n; i++)
        rt_free(e->v[i]);
    rt_free(e->v);
    e->v = NULL;
    e->n = 0;
}

static char *strip_dup(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return rt_xstrndup(s, n);
}

static void add_unique(mem_entries *e, char *entry)
{
    if (!*entry) {
        rt_free(entry);
        return;
    }
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->v[i], entry) == 0) {
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
        add_unique(out, strip_dup(p, n));
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

size_t mem_utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

size_t mem_chars(const mem_entries *e)
{
    char *j = mem_join(e);
    size_t n = mem_utf8_len(j);
    rt_free(j);
    return n;
}

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
    while ((r = read(fd, chunk, sizeof(chunk))) > 0) {
        err = rt_buf_append(&b, chunk, (size_t)r);
        if (err)
            break;
    }
    if (r < 0)
        err = -errno;
    close(fd);
    if (!err)
        mem_parse(rt_buf_cstr(&b), out);
    rt_buf_fini(&b);
    return err;
}

int mem_file_save(const char *path, const mem_entries *e)
{
    char tmp[4096];
    const char *slash = strrchr(path, '/');
    int dl = slash ? (int)(slash - path) : 1;
    const char *dir = slash ? path : ".";
    if (snprintf(tmp, sizeof(tmp), "%.*s/.mem_%d.tmp", dl, dir, (int)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    char *text = mem_join(e);
    int err = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        err = -errno;
        goto out_free;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            err = -errno;
            break;
        }
        off += (size_t)w;
    }
    if (!err && fsync(fd) < 0)
        err = -errno;
    close(fd);
    if (!err && rename(tmp, path) < 0)
        err = -errno;
    if (err)
        unlink(tmp);
out_free:
    rt_free(text);
    return err;
}

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
    unsigned pct = limit ? (unsigned)(cur * 100 / limit) : 0;
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
