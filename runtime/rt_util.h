/*
 * rt_util — small helpers every module uses: asserts, container_of, error names,
 * bounded string copies, checked number parsing, and sanitizer annotations.
 *
 * Threads: everything here is re-entrant and may be called from any thread.
 */
#ifndef RT_UTIL_H
#define RT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_LIKELY(x)                      __builtin_expect(!!(x), 1)
#define RT_UNLIKELY(x)                    __builtin_expect(!!(x), 0)
#define RT_ARRAY_LEN(a)                   (sizeof(a) / sizeof((a)[0]))
#define RT_CONTAINER_OF(ptr, type, field) ((type *)(void *)((char *)(ptr)-offsetof(type, field)))
#define RT_CACHELINE                      64

void rt__assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* Debug-only invariant check (pony_assert). */
#ifdef NDEBUG
#define RT_ASSERT(x) ((void)0)
#else
#define RT_ASSERT(x) ((x) ? (void)0 : rt__assert_fail(#x, __FILE__, __LINE__))
#endif
/* Always-on check for cases where continuing would corrupt memory (serverAssert). */
#define RT_VERIFY(x) (RT_LIKELY(x) ? (void)0 : rt__assert_fail(#x, __FILE__, __LINE__))

/* Name of a negative errno value returned by our commands ("-ENOENT" → "No such file..."). */
const char *rt_strerror(int neg_errno);

/* Copy src into dst (size n), always NUL-terminated; returns strlen(src) like BSD strlcpy. */
size_t rt_strlcpy(char *dst, const char *src, size_t n);

/* Parse a whole decimal string into *out; -EINVAL if not a number, -ERANGE if outside [lo,hi]. */
int rt_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);
/* Parse a boolean the way the original reads env vars: true/1/yes/on and false/0/no/off. */
int rt_parse_bool(const char *s, bool *out);

/* Spin-wait hint for busy loops. */
static inline void rt_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/*
 * ThreadSanitizer cannot see synchronization done inside uninstrumented libraries (liburcu's
 * grace periods and lock-free hash table) or by futexes. These annotations state the
 * happens-before edges those libraries guarantee; they compile to nothing without TSan.
 */
#if defined(RT_TSAN)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define RT_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define RT_TSAN_RELEASE(p) __tsan_release((void *)(p))
#else
#define RT_TSAN_ACQUIRE(p) ((void)(p))
#define RT_TSAN_RELEASE(p) ((void)(p))
#endif

/* 64-bit mixer (splitmix64 finalizer) for hashing ids. */
static inline uint64_t rt_hash_u64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}
/* FNV-1a over a NUL-terminated string, mixed. */
uint64_t rt_hash_str(const char *s);

#endif /* RT_UTIL_H */
