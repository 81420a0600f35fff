/*
 * repl_hist — the input history of the interactive CLI, in $HERMES_HOME/.hermes_history.
 *
 * The file has the original's format (prompt_toolkit's FileHistory), so a user's history
 * carries over both ways: each entry is appended as
 *
 *     \n# 2026-03-01 12:00:00.123456\n+first line\n+second line\n
 *
 * and read back as the '+' lines of a block joined with newlines. The file is created 0600
 * (what you type may be private) and only ever appended to; at most the last HIST_READ_MAX
 * bytes are read and the newest 1000 entries kept in memory (term_init sets the size).
 *
 * Threads: main thread (blocking file I/O).
 */
#include "repl_int.h"

#include "hm_config.h"
#include "rt_alloc.h"
#include "rt_buf.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HIST_READ_MAX (4u << 20)

static void enter(repl *r, rt_buf *entry)
{
    if (!entry->len)
        return;
    /* The '+' lines each end in "\n": the entry is them joined, without the last one. */
    entry->data[--entry->len] = '\0';
    HistEvent ev;
    if (entry->len)
        history(r->hist, &ev, H_ENTER, entry->data);
    rt_buf_reset(entry);
}

static void parse(repl *r, char *text, size_t len, bool from_middle)
{
    rt_buf entry;
    rt_buf_init(&entry, HIST_READ_MAX);
    char *p = text, *end = text + len;
    if (from_middle) { /* skip the block we came into halfway */
        char *nl = memchr(p, '\n', len);
        p = nl ? nl + 1 : end;
        while (p < end && *p == '+') {
            nl = memchr(p, '\n', (size_t)(end - p));
            p = nl ? nl + 1 : end;
        }
    }
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *next = nl ? nl + 1 : end;
        if (*p == '+') {
            (void)rt_buf_append(&entry, p + 1, (size_t)(next - p - 1));
            if (!nl)
                (void)rt_buf_append(&entry, "\n", 1);
        } else {
            enter(r, &entry);
        }
        p = next;
    }
    enter(r, &entry);
    rt_buf_fini(&entry);
}

void hist_load(repl *r)
{
    r->hist_path = hm_config_file(r->h->home, ".hermes_history");
    int fd = open(r->hist_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return;
    }
    off_t from = st.st_size > (off_t)HIST_READ_MAX ? st.st_size - (off_t)HIST_READ_MAX : 0;
    size_t want = (size_t)(st.st_size - from);
    char *buf = rt_xmalloc(want + 1);
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(fd, buf + got, want - got, from + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    parse(r, buf, got, from > 0);
    rt_free(buf);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -errno;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

void hist_add(repl *r, const char *line)
{
    HistEvent ev;
    history(r->hist, &ev, H_ENTER, line);
    if (!r->hist_path)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    char stamp[64];
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
    rt_buf b;
    rt_buf_init(&b, REPL_LINE_MAX * 2);
    (void)rt_buf_printf(&b, "\n# %s.%06ld\n", stamp, (long)(ts.tv_nsec / 1000));
    for (const char *p = line;;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        (void)rt_buf_append(&b, "+", 1);
        (void)rt_buf_append(&b, p, n);
        (void)rt_buf_append(&b, "\n", 1);
        if (!nl)
            break;
        p = nl + 1;
    }
    int fd = open(r->hist_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
        (void)fchmod(fd, 0600); /* an older file may be readable by others */
        (void)write_all(fd, b.data, b.len);
        close(fd);
    }
    rt_buf_fini(&b);
}
