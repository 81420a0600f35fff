/*
 * rt_util — see rt_util.h.
 */
#include "rt_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void rt__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "hermes: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

const char *rt_strerror(int neg_errno)
{
    int e = neg_errno < 0 ? -neg_errno : neg_errno;
    switch (e) {
    case 0: return "success";
    case ENOMEM: return "out of memory";
    case EAGAIN: return "resource temporarily unavailable";
    case EINVAL: return "invalid argument";
    case E2BIG: return "too large";
    case EPROTO: return "protocol error";
    case ETIMEDOUT: return "timed out";
    case ECONNRESET: return "connection reset";
    case ECONNREFUSED: return "connection refused";
    case ECANCELED: return "cancelled";
    case EBADMSG: return "malformed message";
    case ENOENT: return "not found";
    case EEXIST: return "already exists";
    case ESRCH: return "no such actor";
    case EPIPE: return "broken pipe";
    case EACCES: return "permission denied";
    case EPERM: return "not permitted";
    case ERANGE: return "out of range";
    case EBUSY: return "busy";
    case ENOSPC: return "no space left on device";
    case EIO: return "input/output error";
    case EHOSTUNREACH: return "host unreachable";
    case ENOTSUP: return "not supported";
    default: break;
    }
    /* strerrordesc_np is thread-safe and returns static text (glibc >= 2.32). */
    const char *d = strerrordesc_np(e);
    return d ? d : "unknown error";
}

size_t rt_strlcpy(char *dst, const char *src, size_t n)
{
    size_t len = strlen(src);
    if (n) {
        size_t c = len < n - 1 ? len : n - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return len;
}

int rt_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s)
        return -EINVAL;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0')
        return -EINVAL;
    if (errno == ERANGE || v < lo || v > hi)
        return -ERANGE;
    *out = v;
    return 0;
}

int rt_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on", "y"};
    static const char *const no[] = {"false", "0", "no", "off", "n", ""};
    if (!s)
        return -EINVAL;
    for (size_t i = 0; i < RT_ARRAY_LEN(yes); i++)
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, 0;
    for (size_t i = 0; i < RT_ARRAY_LEN(no); i++)
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, 0;
    return -EINVAL;
}

uint64_t rt_hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return rt_hash_u64(h);
}
