/*
 * rt_log — one line per event, level checked before arguments are evaluated.
 *
 * Format:  2026-11-21T17:26:00.123Z WARN  sched: message key=value [actor=session:1f3a]
 * The actor tag is added by the runtime when the line is written from inside a behaviour.
 *
 * Levels ERROR, WARN and INFO obey the global threshold. DEBUG and TRACE also need the
 * subsystem to be enabled (HERMES_LOG_DEBUG="sched,mx" or "all"). TRACE is compiled out
 * of NDEBUG builds. Never pass secrets: mask them with rt_log_redact() first, and log
 * message bodies only at TRACE.
 *
 * Threads: every function may be called from any thread.
 */
#ifndef RT_LOG_H
#define RT_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rt_log_level { RT_LOG_ERROR = 0, RT_LOG_WARN, RT_LOG_INFO, RT_LOG_DEBUG, RT_LOG_TRACE };

/* Current threshold; read relaxed on every log call (advisory). */
extern _Atomic int rt_log_threshold_;

/* Set the threshold ("error", "warn", "info", "debug", "trace"); returns -EINVAL on a bad name. */
int rt_log_set_level_name(const char *name);
void rt_log_set_level(int level);
int rt_log_level(void);
/* Comma-separated subsystems for DEBUG/TRACE, or "all". Copies the string. */
void rt_log_set_debug(const char *subsystems);
/* Send log lines to path (created 0600, appended) as well as... instead of stderr. NULL: stderr. */
int rt_log_set_file(const char *path);
/* Make every line also go to a capture buffer (tests). NULL stops capturing. */
void rt_log_capture(void (*sink)(const char *line, size_t len, void *arg), void *arg);

/* Name the thread for log lines that do not come from an actor ("reactor", "timer"). */
void rt_log_set_thread_tag(const char *tag);
/* Set by the scheduler around each behaviour; NULL clears. type must outlive the run. */
void rt__log_set_actor(const char *type, uint64_t id);

bool rt__log_enabled(int level, const char *subsys);
void rt__log(int level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define RT_LOG(level, subsys, ...)                                                                 \
    do {                                                                                           \
        if ((level) <= atomic_load_explicit(&rt_log_threshold_, memory_order_relaxed) &&           \
            ((level) < RT_LOG_DEBUG || rt__log_enabled((level), (subsys))))                        \
            rt__log((level), (subsys), __VA_ARGS__);                                               \
    } while (0)

#define RT_ERROR(subsys, ...) RT_LOG(RT_LOG_ERROR, subsys, __VA_ARGS__)
#define RT_WARN(subsys, ...)  RT_LOG(RT_LOG_WARN, subsys, __VA_ARGS__)
#define RT_INFO(subsys, ...)  RT_LOG(RT_LOG_INFO, subsys, __VA_ARGS__)
#define RT_DEBUG(subsys, ...) RT_LOG(RT_LOG_DEBUG, subsys, __VA_ARGS__)
#ifdef NDEBUG
#define RT_TRACE(subsys, ...)                                                                      \
    do {                                                                                           \
    } while (0)
#else
#define RT_TRACE(subsys, ...) RT_LOG(RT_LOG_TRACE, subsys, __VA_ARGS__)
#endif

/* Log once per call site (kernel WARN_ON_ONCE). */
#define RT_WARN_ONCE(subsys, ...)                                                                  \
    do {                                                                                           \
        static atomic_flag once_ = ATOMIC_FLAG_INIT;                                               \
        if (!atomic_flag_test_and_set_explicit(&once_, memory_order_relaxed))                      \
            RT_WARN(subsys, __VA_ARGS__);                                                          \
    } while (0)

/*
 * Rate-limited logging for repeated external failures (a flapping homeserver, LLM 429s):
 * at most one line per interval_ms per call site; the next line that gets through says how
 * many were suppressed.
 */
typedef struct rt_log_limit {
    _Atomic int64_t next_ns;     /* earliest time the next line may be written */
    _Atomic uint64_t suppressed; /* lines dropped since the last one written */
} rt_log_limit;
bool rt__log_limit_pass(rt_log_limit *l, int64_t interval_ms, uint64_t *suppressed);
#define RT_LOG_LIMITED(level, subsys, interval_ms, fmt, ...)                                       \
    do {                                                                                           \
        static rt_log_limit lim_;                                                                  \
        uint64_t sup_;                                                                             \
        if ((level) <= atomic_load_explicit(&rt_log_threshold_, memory_order_relaxed) &&           \
            rt__log_limit_pass(&lim_, (interval_ms), &sup_))                                       \
            rt__log((level), (subsys), fmt " (suppressed=%llu)", ##__VA_ARGS__,                    \
                    (unsigned long long)sup_);                                                     \
    } while (0)

/*
 * Mask a secret for logs: under 18 characters becomes "***", otherwise the first 6 and
 * last 4 characters around "...". Writes into out (always NUL-terminated); returns out.
 */
const char *rt_log_redact(const char *secret, char *out, size_t outlen);

#endif /* RT_LOG_H */
