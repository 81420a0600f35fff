/*
 * rt_log — see rt_log.h.
 *
 * Each line is formatted into a stack buffer and written with a single write(2), so lines
 * from different threads never interleave. The sink settings are read under a mutex that
 * is a leaf lock (nothing is called out while it is held apart from write(2) itself).
 */
#include "rt_log.h"

#include "rt_alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Atomic int rt_log_threshold_ = RT_LOG_INFO;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = 2;         /* guarded by log_lock */
static char *debug_subsystems; /* guarded by log_lock; NULL = none */
static _Atomic bool debug_all; /* advisory copy of debug_subsystems == "all" */
static void (*capture_sink)(const char *, size_t, void *); /* guarded by log_lock */
static void *capture_arg;

static _Thread_local char thread_tag[24];
static _Thread_local const char *actor_type; /* set around behaviours; formatted lazily */
static _Thread_local uint64_t actor_id;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

int rt_log_set_level_name(const char *name)
{
    static const char *const lower[] = {"error", "warn", "info", "debug", "trace"};
    for (int i = 0; i <= RT_LOG_TRACE; i++) {
        if (strcasecmp(name, lower[i]) == 0 || strcasecmp(name, level_names[i]) == 0) {
            rt_log_set_level(i);
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        rt_log_set_level(RT_LOG_WARN);
        return 0;
    }
    return -EINVAL;
}

void rt_log_set_level(int level)
{
    if (level < RT_LOG_ERROR)
        level = RT_LOG_ERROR;
    if (level > RT_LOG_TRACE)
        level = RT_LOG_TRACE;
    atomic_store_explicit(&rt_log_threshold_, level, memory_order_relaxed);
}

int rt_log_level(void)
{
    return atomic_load_explicit(&rt_log_threshold_, memory_order_relaxed);
}

void rt_log_set_debug(const char *subsystems)
{
    char *copy = (subsystems && *subsystems) ? rt_xstrdup(subsystems) : NULL;
    pthread_mutex_lock(&log_lock);
    char *old = debug_subsystems;
    debug_subsystems = copy;
    atomic_store_explicit(&debug_all, copy && strcmp(copy, "all") == 0, memory_order_relaxed);
    pthread_mutex_unlock(&log_lock);
    rt_free(old);
}

int rt_log_set_file(const char *path)
{
    int fd = 2;
    if (path) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0)
            return -errno;
    }
    pthread_mutex_lock(&log_lock);
    int old = log_fd;
    log_fd = fd;
    pthread_mutex_unlock(&log_lock);
    if (old != 2)
        close(old);
    return 0;
}

void rt_log_capture(void (*sink)(const char *line, size_t len, void *arg), void *arg)
{
    pthread_mutex_lock(&log_lock);
    capture_sink = sink;
    capture_arg = arg;
    pthread_mutex_unlock(&log_lock);
}

void rt_log_set_thread_tag(const char *tag)
{
    snprintf(thread_tag, sizeof(thread_tag), "%s", tag ? tag : "");
}

void rt__log_set_actor(const char *type, uint64_t id)
{
    /* Two stores per actor run: the tag is only formatted when a line is written. */
    actor_type = type;
    actor_id = id;
}

static bool in_list(const char *list, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, item, n) == 0)
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

bool rt__log_enabled(int level, const char *subsys)
{
    if (atomic_load_explicit(&debug_all, memory_order_relaxed))
        return true;
    pthread_mutex_lock(&log_lock);
    bool on = debug_subsystems && in_list(debug_subsystems, subsys);
    pthread_mutex_unlock(&log_lock);
    return on;
}

static size_t format_prefix(char *buf, size_t n, int level, const char *subsys)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int len = snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                       ts.tv_nsec / 1000000, level_names[level], subsys);
    return len < 0 ? 0 : ((size_t)len < n ? (size_t)len : n - 1);
}

void rt__log(int level, const char *subsys, const char *fmt, ...)
{
    char line[2048];
    size_t len = format_prefix(line, sizeof(line), level, subsys);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    va_end(ap);
    if (n > 0)
        len += (size_t)n < sizeof(line) - len ? (size_t)n : sizeof(line) - len - 1;
    if (len < sizeof(line) - 1 && (actor_type || thread_tag[0])) {
        if (actor_type)
            n = snprintf(line + len, sizeof(line) - len, " actor=%s:%llx", actor_type,
                         (unsigned long long)actor_id);
        else
            n = snprintf(line + len, sizeof(line) - len, " thread=%s", thread_tag);
        if (n > 0)
            len += (size_t)n < sizeof(line) - len ? (size_t)n : sizeof(line) - len - 1;
    }
    if (len >= sizeof(line) - 1)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    line[len] = '\0';

    pthread_mutex_lock(&log_lock);
    (void)!write(log_fd, line, len); /* a failed log write has nowhere to be reported */
    if (capture_sink)
        capture_sink(line, len, capture_arg);
    pthread_mutex_unlock(&log_lock);
}

bool rt__log_limit_pass(rt_log_limit *l, int64_t interval_ms, uint64_t *suppressed)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    int64_t next = atomic_load_explicit(&l->next_ns, memory_order_relaxed);
    if (now < next ||
        !atomic_compare_exchange_strong_explicit(&l->next_ns, &next, now + interval_ms * 1000000,
                                                 memory_order_relaxed, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&l->suppressed, 1, memory_order_relaxed);
        return false;
    }
    *suppressed = atomic_exchange_explicit(&l->suppressed, 0, memory_order_relaxed);
    return true;
}

const char *rt_log_redact(const char *secret, char *out, size_t outlen)
{
    if (!outlen)
        return out;
    size_t n = secret ? strlen(secret) : 0;
    if (n < 18)
        snprintf(out, outlen, "***");
    else
        snprintf(out, outlen, "%.6s...%s", secret, secret + n - 4);
    return out;
}
