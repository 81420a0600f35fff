/*
 * gw_pairing — the pairing store (files, flock, atomic replace) and the pairing actor.
 * gw_pairing.h has the file formats, the invariants and the threading rules.
 */
#include "gw_pairing.h"

#include "hm_config.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_util.h"

#include <openssl/rand.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCK_NAME     ".lock"
#define RATE_NAME     "_rate_limits.json"
#define PENDING_SFX   "-pending.json"
#define APPROVED_SFX  "-approved.json"
#define PLATFORM_MAX  64   /* longest platform name */
#define CODE_IN_MAX   64   /* longer "codes" are simply not found */
#define MAX_PLATFORMS 1024 /* platforms listed from the directory */
#define WRITE_MAX     (4 * GW_PAIR_FILE_MAX)

typedef struct acache {
    char *platform;
    bool valid; /* the fields below describe the file as last read */
    dev_t dev;  /* */
    ino_t ino;  /* 0: the file did not exist */
    off_t size; /* */
    struct timespec mtim, ctim;
    cJSON *users; /* the approved object */
} acache;

struct gw_pairing {
    char *dir;    /* the pairing directory */
    int lock_fd;  /* dir/.lock, flock'ed around changes */
    unsigned seq; /* temp file names */
    acache *cache;
    size_t ncache;
};

/* ---- small helpers ----------------------------------------------------------------------- */

double gw_pairing_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool gw_pairing_platform_ok(const char *platform)
{
    if (!platform || !*platform || *platform == '_' || *platform == '-')
        return false;
    size_t n = 0;
    for (const char *s = platform; *s; s++, n++)
        if (n >= PLATFORM_MAX ||
            !(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_' || *s == '-'))
            return false;
    return true;
}

static int path_of(const gw_pairing *p, char *buf, const char *platform, const char *suffix)
{
    int n = snprintf(buf, PATH_MAX, "%s/%s%s", p->dir, platform, suffix);
    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

static int mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    if (rt_strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp))
        return -ENAMETOOLONG;
    for (char *s = tmp + 1;; s++) {
        if (*s != '/' && *s)
            continue;
        char c = *s;
        *s = 0;
        if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
            return -errno;
        *s = c;
        if (!c)
            break;
    }
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static bool dir_has_content(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return false;
    bool any = false;
    struct dirent *e;
    while (!any && (e = readdir(d)))
        any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return any;
}

static void lock(gw_pairing *p)
{
    while (flock(p->lock_fd, LOCK_EX) < 0 && errno == EINTR)
        ;
}

static void unlock(gw_pairing *p)
{
    (void)flock(p->lock_fd, LOCK_UN); /* closing would release it too; nothing to do on error */
}

/* The longest prefix of s of at most max bytes that ends on a UTF-8 boundary. */
static char *cut_utf8(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    return rt_xstrndup(s, n);
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- reading and writing the JSON files ------------------------------------------------- */

/*
 * Read a JSON object. Missing → empty object; unreadable, too large or not an object →
 * empty object, a warning, *corrupt = true (invariant 3). *st (may be NULL) gets the file's
 * fstat (st_ino = 0 when missing). Never NULL.
 */
static cJSON *read_obj(const char *path, struct stat *st, bool *corrupt)
{
    struct stat sb = {0};
    *corrupt = false;
    if (st)
        memset(st, 0, sizeof(*st));
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) {
            RT_WARN("gw", "pairing: cannot read %s (%s); treating it as empty", path,
                    rt_strerror(-errno));
            *corrupt = errno != EACCES; /* a file we may not read is not ours to replace */
        }
        return cJSON_CreateObject();
    }
    cJSON *o = NULL;
    char *buf = NULL;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > (off_t)GW_PAIR_FILE_MAX)
        goto out_bad;
    buf = rt_xmalloc((size_t)sb.st_size + 1);
    size_t len = 0;
    while (len < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + len, (size_t)sb.st_size - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    const char *b = buf;
    if (len >= 3 && memcmp(b, "\xEF\xBB\xBF", 3) == 0) { /* the original reads utf-8-sig */
        b += 3;
        len -= 3;
    }
    o = cJSON_ParseWithLength(b, len);
    if (!cJSON_IsObject(o))
        goto out_bad;
    if (st)
        *st = sb;
    rt_free(buf);
    close(fd);
    return o;
out_bad:
    RT_WARN("gw", "pairing: %s is not a JSON object; treating it as empty", path);
    *corrupt = true;
    cJSON_Delete(o);
    rt_free(buf);
    close(fd);
    if (st)
        *st = sb;
    return cJSON_CreateObject();
}

/* Keep a corrupt file as <path>.corrupt before a change replaces it (invariant 3). */
static void keep_corrupt(const char *path, bool corrupt)
{
    char bak[PATH_MAX];
    if (!corrupt || snprintf(bak, sizeof(bak), "%s.corrupt", path) >= (int)sizeof(bak))
        return;
    if (rename(path, bak) == 0)
        RT_WARN("gw", "pairing: kept the unreadable %s as %s", path, bak);
}

/* A locked read for a change: the object, with a corrupt file moved aside. */
static cJSON *read_for_change(const char *path)
{
    bool corrupt;
    cJSON *o = read_obj(path, NULL, &corrupt);
    keep_corrupt(path, corrupt);
    return o;
}

/* A JSON writer over a bounded buffer; err sticks at the first failed append. */
typedef struct jw {
    rt_buf b;
    int err;
} jw;

static void put(jw *w, const char *s, size_t n)
{
    if (!w->err)
        w->err = rt_buf_append(&w->b, s, n);
}

static void puts_(jw *w, const char *s)
{
    put(w, s, strlen(s));
}

/* JSON string as Python's json.dumps(ensure_ascii=False) writes it. */
static void put_str(jw *w, const char *s)
{
    put(w, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *e = NULL;
        char u[8];
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        default: break;
        }
        if (!e && c < 0x20) {
            snprintf(u, sizeof(u), "\\u%04x", c);
            e = u;
        }
        if (e)
            puts_(w, e);
        else
            put(w, s, 1);
    }
    put(w, "\"", 1);
}

/* Times are floats (Python's repr); failure counts are ints. */
static void put_num(jw *w, double d, const char *key)
{
    char t[64];
    if (isnan(d))
        snprintf(t, sizeof(t), "NaN");
    else if (isinf(d))
        snprintf(t, sizeof(t), d < 0 ? "-Infinity" : "Infinity");
    else if (key && strncmp(key, "_failures:", 10) == 0 && d == floor(d) && fabs(d) < 1e15)
        snprintf(t, sizeof(t), "%lld", (long long)d);
    else
        hm_fmt_double(d, t, sizeof(t));
    puts_(w, t);
}

static void indent(jw *w, int depth)
{
    for (int i = 0; i < depth; i++)
        put(w, "  ", 2);
}

/* json.dumps(v, indent=2, ensure_ascii=False). */
static void put_val(jw *w, const cJSON *v, int depth)
{
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        bool obj = cJSON_IsObject(v);
        if (!v->child) {
            puts_(w, obj ? "{}" : "[]");
            return;
        }
        puts_(w, obj ? "{\n" : "[\n");
        for (const cJSON *c = v->child; c && !w->err; c = c->next) {
            indent(w, depth + 1);
            if (obj) {
                put_str(w, c->string ? c->string : "");
                puts_(w, ": ");
            }
            if (cJSON_IsNumber(c))
                put_num(w, c->valuedouble, c->string);
            else
                put_val(w, c, depth + 1);
            puts_(w, c->next ? ",\n" : "\n");
        }
        indent(w, depth);
        puts_(w, obj ? "}" : "]");
    } else if (cJSON_IsString(v)) {
        put_str(w, v->valuestring);
    } else if (cJSON_IsNumber(v)) {
        put_num(w, v->valuedouble, NULL);
    } else if (cJSON_IsBool(v)) {
        puts_(w, cJSON_IsTrue(v) ? "true" : "false");
    } else {
        puts_(w, "null");
    }
}

static int write_all(int fd, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        off += (size_t)w;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int err = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return err;
}

/* Replace path with data: temp file (0600, O_EXCL|O_NOFOLLOW) in the same directory, fsync,
 * rename, fsync the directory (invariant 2). */
static int write_atomic(gw_pairing *p, const char *path, const char *data, size_t len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char tmp[PATH_MAX];
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 2; tries++) {
        if (snprintf(tmp, sizeof(tmp), "%s/.%s.%d.%u.tmp", p->dir, base, (int)getpid(), p->seq++) >=
            (int)sizeof(tmp))
            return -ENAMETOOLONG;
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            return -errno;
        if (fd < 0)
            (void)unlink(tmp); /* a leftover of a crashed process with our pid */
    }
    if (fd < 0)
        return -EEXIST;
    int err = fchmod(fd, 0600) < 0 ? -errno : 0;
    if (!err)
        err = write_all(fd, data, len);
    if (!err && fsync(fd) < 0)
        err = -errno;
    if (close(fd) < 0 && !err)
        err = -errno;
    if (!err && rename(tmp, path) < 0)
        err = -errno;
    if (err) {
        (void)unlink(tmp);
        RT_ERROR("gw", "pairing: cannot write %s: %s", path, rt_strerror(err));
        return err;
    }
    return fsync_dir(p->dir);
}

static int write_obj(gw_pairing *p, const char *path, const cJSON *o)
{
    jw w = {.err = 0};
    rt_buf_init(&w.b, WRITE_MAX);
    put_val(&w, o, 0);
    int err = w.err ? w.err : write_atomic(p, path, rt_buf_cstr(&w.b), w.b.len);
    if (w.err)
        RT_ERROR("gw", "pairing: %s would be too large (%s); not written", path,
                 rt_strerror(w.err));
    rt_buf_fini(&w.b);
    return err;
}

/* ---- open / close -------------------------------------------------------------------------- */

gw_pairing *gw_pairing_open(const char *hermes_home, int *err)
{
    int e = 0;
    char *dir = NULL;
    if (!hermes_home || !*hermes_home) {
        e = -EINVAL;
        goto out;
    }
    char *legacy = rt_xasprintf("%s/pairing", hermes_home);
    if (dir_has_content(legacy))
        dir = legacy;
    else {
        rt_free(legacy);
        dir = rt_xasprintf("%s/platforms/pairing", hermes_home);
    }
    e = mkdirs(dir);
    if (e)
        goto out;
    struct stat st;
    if (stat(dir, &st) == 0 && (st.st_mode & 077))
        (void)chmod(dir, 0700); /* it holds who may talk to the bot: owner only */
    char *lp = rt_xasprintf("%s/" LOCK_NAME, dir);
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    e = fd < 0 ? -errno : 0;
    rt_free(lp);
    if (e)
        goto out;
    gw_pairing *p = rt_xcalloc(1, sizeof(*p));
    p->dir = dir;
    p->lock_fd = fd;
    if (err)
        *err = 0;
    return p;
out:
    rt_free(dir);
    if (err)
        *err = e;
    return NULL;
}

void gw_pairing_free(gw_pairing *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->ncache; i++) {
        rt_free(p->cache[i].platform);
        cJSON_Delete(p->cache[i].users);
    }
    rt_free(p->cache);
    close(p->lock_fd);
    rt_free(p->dir);
    rt_free(p);
}

const char *gw_pairing_dir(const gw_pairing *p)
{
    return p->dir;
}

/* ---- pending codes and rate limits -------------------------------------------------------- */

/* Drop expired and malformed pending entries (invariant 4). True if any were dropped. */
static bool purge_pending(cJSON *pending, double now)
{
    bool changed = false;
    cJSON *e = pending->child;
    while (e) {
        cJSON *next = e->next;
        const cJSON *at = cJSON_GetObjectItemCaseSensitive(e, "created_at");
        if (!cJSON_IsObject(e) || !str(e, "user_id") || !cJSON_IsNumber(at) ||
            !(now - at->valuedouble <= GW_PAIR_TTL)) {
            cJSON_Delete(cJSON_DetachItemViaPointer(pending, e));
            changed = true;
        }
        e = next;
    }
    return changed;
}

/* Drop per-user entries older than the rate-limit window and lockouts that have ended. */
static void purge_limits(cJSON *limits, double now)
{
    cJSON *e = limits->child;
    while (e) {
        cJSON *next = e->next;
        const char *k = e->string ? e->string : "";
        bool stale = false;
        if (!cJSON_IsNumber(e))
            stale = false; /* not ours to judge (another version's entry) */
        else if (strncmp(k, "_lockout:", 9) == 0)
            stale = e->valuedouble <= now;
        else if (k[0] != '_')
            stale = now - e->valuedouble >= GW_PAIR_RATE_LIMIT;
        if (stale)
            cJSON_Delete(cJSON_DetachItemViaPointer(limits, e));
        e = next;
    }
}

static void set_num(cJSON *o, const char *key, double v)
{
    cJSON *n = cJSON_CreateNumber(v);
    if (cJSON_GetObjectItemCaseSensitive(o, key))
        cJSON_ReplaceItemInObjectCaseSensitive(o, key, n);
    else
        cJSON_AddItemToObject(o, key, n);
}

static bool is_rate_limited(const cJSON *limits, const char *platform, const char *uid, double now)
{
    char *k = rt_xasprintf("%s:%s", platform, uid);
    bool r = now - num(limits, k) < GW_PAIR_RATE_LIMIT;
    rt_free(k);
    return r;
}

static double lockout_until(const cJSON *limits, const char *platform)
{
    char k[PLATFORM_MAX + 16];
    snprintf(k, sizeof(k), "_lockout:%s", platform);
    return num(limits, k);
}

/* A fresh code not among the pending ones. -EIO if the CSPRNG fails. */
static int mint(const cJSON *pending, char code[GW_PAIR_CODE_LEN + 1])
{
    static const char alphabet[] = GW_PAIR_ALPHABET;
    _Static_assert(sizeof(alphabet) - 1 == 32, "256 % 32 == 0: byte & 31 is uniform");
    for (int tries = 0; tries < 16; tries++) {
        unsigned char r[GW_PAIR_CODE_LEN];
        if (RAND_bytes(r, (int)sizeof(r)) != 1) {
            RT_ERROR("gw", "pairing: RAND_bytes failed");
            return -EIO;
        }
        for (int i = 0; i < GW_PAIR_CODE_LEN; i++)
            code[i] = alphabet[r[i] & 31];
        code[GW_PAIR_CODE_LEN] = 0;
        if (!cJSON_GetObjectItemCaseSensitive(pending, code))
            return 0;
    }
    return -EIO; /* 16 collisions among at most 3 codes: the generator is broken */
}

/* The live code the user already holds, or NULL. */
static const char *code_of(const cJSON *pending, const char *uid)
{
    for (const cJSON *e = pending->child; e; e = e->next) {
        const char *u = str(e, "user_id");
        if (u && strcmp(u, uid) == 0)
            return e->string;
    }
    return NULL;
}

static int add_pending(cJSON *pending, const char *code, const char *uid, const char *name,
                       double now)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "user_id", uid);
    cJSON_AddStringToObject(e, "user_name", name);
    cJSON_AddNumberToObject(e, "created_at", now);
    cJSON_AddItemToObject(pending, code, e);
    return 0;
}

/* The decision of gw_pairing_generate, under the lock. *added: a new code is in pending. */
static int decide(cJSON *pending, const cJSON *limits, const char *platform, const char *uid,
                  const char *name, double now, char code[GW_PAIR_CODE_LEN + 1], bool *added)
{
    if (is_rate_limited(limits, platform, uid, now))
        return -EAGAIN;
    if (now < lockout_until(limits, platform))
        return -EBUSY;
    const char *have = code_of(pending, uid);
    if (have) {
        rt_strlcpy(code, have, GW_PAIR_CODE_LEN + 1);
        return 0;
    }
    if (cJSON_GetArraySize(pending) >= GW_PAIR_MAX_PENDING)
        return -ENOSPC;
    int err = mint(pending, code);
    if (err)
        return err;
    *added = true;
    return add_pending(pending, code, uid, name, now);
}

int gw_pairing_generate(gw_pairing *p, const char *platform, const char *user_id,
                        const char *user_name, double now, char code[GW_PAIR_CODE_LEN + 1])
{
    char pp[PATH_MAX], rp[PATH_MAX];
    code[0] = 0;
    if (!gw_pairing_platform_ok(platform) || !user_id || !*user_id ||
        strlen(user_id) > GW_PAIR_ID_MAX)
        return -EINVAL;
    if (path_of(p, pp, platform, PENDING_SFX) || path_of(p, rp, "", RATE_NAME))
        return -ENAMETOOLONG;
    char *name = cut_utf8(user_name ? user_name : "", GW_PAIR_NAME_MAX);
    lock(p);
    cJSON *pending = read_for_change(pp);
    bool changed = purge_pending(pending, now), added = false;
    cJSON *limits = read_for_change(rp);
    int r = decide(pending, limits, platform, user_id, name, now, code, &added);
    int err = 0;
    if (changed || added)
        err = write_obj(p, pp, pending);
    if (!err && r != -EAGAIN && r != -EINVAL && r != -EIO) {
        /* a code handed out, or "Too many…": the next requests within the window are
         * silent (gateway.md §3.2) */
        char *k = rt_xasprintf("%s:%s", platform, user_id);
        set_num(limits, k, now);
        rt_free(k);
        purge_limits(limits, now);
        err = write_obj(p, rp, limits);
    }
    unlock(p);
    cJSON_Delete(pending);
    cJSON_Delete(limits);
    rt_free(name);
    if (err) {
        code[0] = 0;
        return err;
    }
    if (r)
        code[0] = 0;
    return r;
}

/* ---- approve / revoke --------------------------------------------------------------------- */

/* Count a failed approval; the GW_PAIR_MAX_FAILURES-th locks generation (counter reset). */
static int record_failure(gw_pairing *p, const char *platform, double now)
{
    char rp[PATH_MAX], k[PLATFORM_MAX + 16];
    if (path_of(p, rp, "", RATE_NAME))
        return -ENAMETOOLONG;
    cJSON *limits = read_for_change(rp);
    snprintf(k, sizeof(k), "_failures:%s", platform);
    double fails = num(limits, k) + 1;
    if (fails >= GW_PAIR_MAX_FAILURES) {
        char lk[PLATFORM_MAX + 16];
        snprintf(lk, sizeof(lk), "_lockout:%s", platform);
        set_num(limits, lk, now + GW_PAIR_LOCKOUT);
        fails = 0;
        RT_WARN("gw", "[pairing] Platform %s locked out for %ds after %d failed attempts", platform,
                (int)GW_PAIR_LOCKOUT, GW_PAIR_MAX_FAILURES);
    }
    set_num(limits, k, fails);
    purge_limits(limits, now);
    int err = write_obj(p, rp, limits);
    cJSON_Delete(limits);
    return err;
}

static int reset_failures(gw_pairing *p, const char *platform, double now)
{
    char rp[PATH_MAX], k[PLATFORM_MAX + 16];
    if (path_of(p, rp, "", RATE_NAME))
        return -ENAMETOOLONG;
    cJSON *limits = read_for_change(rp);
    snprintf(k, sizeof(k), "_failures:%s", platform);
    int err = 0;
    if (num(limits, k) != 0) {
        set_num(limits, k, 0);
        purge_limits(limits, now);
        err = write_obj(p, rp, limits);
    }
    cJSON_Delete(limits);
    return err;
}

/* code trimmed and upper-cased into out; false if it cannot be a code we issued. */
static bool norm_code(const char *code, char *out, size_t n)
{
    while (code && isspace((unsigned char)*code))
        code++;
    size_t len = code ? strlen(code) : 0;
    while (len && isspace((unsigned char)code[len - 1]))
        len--;
    if (!len || len >= n)
        return false;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)toupper((unsigned char)code[i]);
    out[len] = 0;
    return true;
}

static int approve_user(gw_pairing *p, const char *platform, const char *uid, const char *name,
                        double now)
{
    char ap[PATH_MAX];
    if (path_of(p, ap, platform, APPROVED_SFX))
        return -ENAMETOOLONG;
    cJSON *approved = read_for_change(ap);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "user_name", name);
    cJSON_AddNumberToObject(e, "approved_at", now);
    if (cJSON_GetObjectItemCaseSensitive(approved, uid))
        cJSON_ReplaceItemInObjectCaseSensitive(approved, uid, e);
    else
        cJSON_AddItemToObject(approved, uid, e);
    int err = write_obj(p, ap, approved);
    cJSON_Delete(approved);
    return err;
}

int gw_pairing_approve(gw_pairing *p, const char *platform, const char *code, double now,
                       char **user_id, char **user_name)
{
    char pp[PATH_MAX], c[CODE_IN_MAX + 1];
    if (user_id)
        *user_id = NULL;
    if (user_name)
        *user_name = NULL;
    if (!gw_pairing_platform_ok(platform))
        return -EINVAL;
    if (path_of(p, pp, platform, PENDING_SFX))
        return -ENAMETOOLONG;
    bool valid = norm_code(code, c, sizeof(c));
    lock(p);
    cJSON *pending = read_for_change(pp);
    bool changed = purge_pending(pending, now);
    cJSON *e = valid ? cJSON_DetachItemFromObjectCaseSensitive(pending, c) : NULL;
    int err = 0;
    if (changed || e)
        err = write_obj(p, pp, pending);
    if (!e) {
        int ferr = record_failure(p, platform, now);
        err = err ? err : ferr ? ferr : -ENOENT;
        goto out;
    }
    const char *uid = str(e, "user_id"), *name = str(e, "user_name");
    if (!err)
        err = approve_user(p, platform, uid, name ? name : "", now);
    if (!err)
        err = reset_failures(p, platform, now);
    if (!err && user_id)
        *user_id = rt_xstrdup(uid);
    if (!err && user_name)
        *user_name = rt_xstrdup(name ? name : "");
out:
    unlock(p);
    cJSON_Delete(e);
    cJSON_Delete(pending);
    return err;
}

int gw_pairing_revoke(gw_pairing *p, const char *platform, const char *user_id)
{
    char ap[PATH_MAX];
    if (!gw_pairing_platform_ok(platform) || !user_id)
        return -EINVAL;
    if (path_of(p, ap, platform, APPROVED_SFX))
        return -ENAMETOOLONG;
    lock(p);
    cJSON *approved = read_for_change(ap);
    cJSON *e = cJSON_DetachItemFromObjectCaseSensitive(approved, user_id);
    int err = e ? write_obj(p, ap, approved) : -ENOENT;
    unlock(p);
    cJSON_Delete(e);
    cJSON_Delete(approved);
    return err;
}

bool gw_pairing_is_locked_out(gw_pairing *p, const char *platform, double now, double *until)
{
    char rp[PATH_MAX];
    bool corrupt;
    if (until)
        *until = 0;
    if (!gw_pairing_platform_ok(platform) || path_of(p, rp, "", RATE_NAME))
        return false;
    cJSON *limits = read_obj(rp, NULL, &corrupt);
    double u = lockout_until(limits, platform);
    cJSON_Delete(limits);
    if (until)
        *until = u;
    return now < u;
}

/* ---- approved users: a cache keyed by the file's identity --------------------------------- */

static acache *cache_for(gw_pairing *p, const char *platform)
{
    for (size_t i = 0; i < p->ncache; i++)
        if (strcmp(p->cache[i].platform, platform) == 0)
            return &p->cache[i];
    if (p->ncache == MAX_PLATFORMS)
        return NULL;
    p->cache = rt_xrealloc(p->cache, (p->ncache + 1) * sizeof(*p->cache));
    acache *c = &p->cache[p->ncache++];
    memset(c, 0, sizeof(*c));
    c->platform = rt_xstrdup(platform);
    return c;
}

static bool same_file(const acache *c, const struct stat *st)
{
    return c->valid && c->dev == st->st_dev && c->ino == st->st_ino && c->size == st->st_size &&
           c->mtim.tv_sec == st->st_mtim.tv_sec && c->mtim.tv_nsec == st->st_mtim.tv_nsec &&
           c->ctim.tv_sec == st->st_ctim.tv_sec && c->ctim.tv_nsec == st->st_ctim.tv_nsec;
}

bool gw_pairing_is_approved(gw_pairing *p, const char *platform, const char *user_id)
{
    char ap[PATH_MAX];
    if (!user_id || !gw_pairing_platform_ok(platform) || path_of(p, ap, platform, APPROVED_SFX))
        return false;
    acache *c = cache_for(p, platform);
    struct stat st;
    bool missing = stat(ap, &st) < 0;
    if (missing)
        memset(&st, 0, sizeof(st));
    if (!c || !same_file(c, &st)) {
        bool corrupt;
        cJSON *users = read_obj(ap, &st, &corrupt); /* st from the file actually read */
        if (!c) {
            bool r = cJSON_GetObjectItemCaseSensitive(users, user_id) != NULL;
            cJSON_Delete(users);
            return r;
        }
        cJSON_Delete(c->users);
        c->users = users;
        c->valid = true;
        c->dev = st.st_dev;
        c->ino = st.st_ino;
        c->size = st.st_size;
        c->mtim = st.st_mtim;
        c->ctim = st.st_ctim;
    }
    return cJSON_GetObjectItemCaseSensitive(c->users, user_id) != NULL;
}

/* ---- list / clear ------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Platforms with a pending or approved file, sorted. */
static size_t platforms_of(gw_pairing *p, char ***out)
{
    char **v = NULL;
    size_t n = 0;
    DIR *d = opendir(p->dir);
    struct dirent *e;
    while (d && (e = readdir(d)) && n < MAX_PLATFORMS) {
        size_t len = strlen(e->d_name), sl = 0;
        if (len > strlen(PENDING_SFX) &&
            strcmp(e->d_name + len - strlen(PENDING_SFX), PENDING_SFX) == 0)
            sl = strlen(PENDING_SFX);
        else if (len > strlen(APPROVED_SFX) &&
                 strcmp(e->d_name + len - strlen(APPROVED_SFX), APPROVED_SFX) == 0)
            sl = strlen(APPROVED_SFX);
        if (!sl)
            continue;
        char *name = rt_xstrndup(e->d_name, len - sl);
        bool dup = !gw_pairing_platform_ok(name);
        for (size_t i = 0; i < n && !dup; i++)
            dup = strcmp(v[i], name) == 0;
        if (dup) {
            rt_free(name);
            continue;
        }
        v = rt_xrealloc(v, (n + 1) * sizeof(*v));
        v[n++] = name;
    }
    if (d)
        closedir(d);
    if (n)
        qsort(v, n, sizeof(*v), cmp_str);
    *out = v;
    return n;
}

static void add_entry(gw_pair_entry **v, size_t *n, const char *platform, const char *code,
                      const char *uid, const char *name, double when)
{
    *v = rt_xrealloc(*v, (*n + 1) * sizeof(**v));
    gw_pair_entry *e = &(*v)[(*n)++];
    e->platform = rt_xstrdup(platform);
    e->code = code ? rt_xstrdup(code) : NULL;
    e->user_id = rt_xstrdup(uid);
    e->user_name = rt_xstrdup(name ? name : "");
    e->when = when;
}

static int list_platform(gw_pairing *p, const char *pl, double now, gw_pair_list *out)
{
    char pp[PATH_MAX], ap[PATH_MAX];
    if (path_of(p, pp, pl, PENDING_SFX) || path_of(p, ap, pl, APPROVED_SFX))
        return -ENAMETOOLONG;
    bool corrupt;
    cJSON *pending = read_obj(pp, NULL, &corrupt);
    int err = purge_pending(pending, now) ? write_obj(p, pp, pending) : 0;
    for (const cJSON *e = pending->child; e; e = e->next)
        add_entry(&out->pending, &out->npending, pl, e->string, str(e, "user_id"),
                  str(e, "user_name"), num(e, "created_at"));
    cJSON_Delete(pending);
    cJSON *approved = read_obj(ap, NULL, &corrupt);
    for (const cJSON *e = approved->child; e; e = e->next)
        if (e->string)
            add_entry(&out->approved, &out->napproved, pl, NULL, e->string,
                      cJSON_IsObject(e) ? str(e, "user_name") : NULL, num(e, "approved_at"));
    cJSON_Delete(approved);
    return err;
}

int gw_pairing_list(gw_pairing *p, double now, gw_pair_list *out)
{
    memset(out, 0, sizeof(*out));
    char **plats;
    size_t n = platforms_of(p, &plats);
    int err = 0;
    lock(p);
    for (size_t i = 0; i < n && !err; i++)
        err = list_platform(p, plats[i], now, out);
    unlock(p);
    for (size_t i = 0; i < n; i++)
        rt_free(plats[i]);
    rt_free(plats);
    return err;
}

static void entries_free(gw_pair_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rt_free(v[i].platform);
        rt_free(v[i].code);
        rt_free(v[i].user_id);
        rt_free(v[i].user_name);
    }
    rt_free(v);
}

void gw_pair_list_fini(gw_pair_list *l)
{
    entries_free(l->pending, l->npending);
    entries_free(l->approved, l->napproved);
    memset(l, 0, sizeof(*l));
}

int gw_pairing_clear_pending(gw_pairing *p)
{
    char **plats;
    size_t n = platforms_of(p, &plats);
    int count = 0, err = 0;
    lock(p);
    for (size_t i = 0; i < n && !err; i++) {
        char pp[PATH_MAX];
        struct stat st;
        if (path_of(p, pp, plats[i], PENDING_SFX) || lstat(pp, &st) < 0)
            continue; /* only an approved file */
        cJSON *pending = read_for_change(pp);
        count += cJSON_GetArraySize(pending);
        cJSON *empty = cJSON_CreateObject();
        err = write_obj(p, pp, empty);
        cJSON_Delete(empty);
        cJSON_Delete(pending);
    }
    unlock(p);
    for (size_t i = 0; i < n; i++)
        rt_free(plats[i]);
    rt_free(plats);
    return err ? err : count;
}

/* ---- the pairing actor -------------------------------------------------------------------- */

#define RECENT_MAX 64 /* users known to be inside their rate-limit window */

typedef struct recent {
    char *key; /* "<platform>:<user_id>" */
    double until;
} recent;

typedef struct pair_actor {
    char *home;        /* $HERMES_HOME */
    gw_pairing *store; /* opened on the actor's thread, NULL until then */
    gw_auth *auth;     /* one reference */
    recent recent[RECENT_MAX];
} pair_actor;

char *gw_pairing_code_text(const char *platform, const char *code)
{
    return rt_xasprintf("Hi~ I don't recognize you yet!\n\nHere's your pairing code: `%s`\n\n"
                        "Ask the bot owner to run:\n`hermes pairing approve %s %s`",
                        code, platform, code);
}

static void drop_check(rt_msg *m)
{
    gw_pair_check *c = (gw_pair_check *)m;
    if (c->event)
        rt_msg_free(&c->event->hdr);
}

rt_msg *gw_pair_check_new(gw_msg_event *lent, rt_ref reply_to)
{
    gw_pair_check *c = RT_MSG_NEW(gw_pair_check, GW_PAIR_CHECK);
    c->event = gw_event_take(lent, GW_MSG_EVENT);
    c->reply_to = reply_to;
    c->hdr.drop = drop_check;
    return &c->hdr;
}

static void drop_set_auth(rt_msg *m)
{
    gw_auth_free(((gw_pair_set_auth *)m)->auth);
}

rt_msg *gw_pair_set_auth_new(const gw_auth *auth)
{
    gw_pair_set_auth *s = RT_MSG_NEW(gw_pair_set_auth, GW_PAIR_SET_AUTH);
    s->auth = gw_auth_ref(auth);
    s->hdr.drop = drop_set_auth;
    return &s->hdr;
}

/* A burst from one unknown user costs a lookup here, not a locked read of two files. */
static bool recent_silenced(const pair_actor *a, const char *key, double now)
{
    for (int i = 0; i < RECENT_MAX; i++)
        if (a->recent[i].key && a->recent[i].until > now && strcmp(a->recent[i].key, key) == 0)
            return true;
    return false;
}

static void recent_add(pair_actor *a, const char *key, double until)
{
    int slot = 0;
    for (int i = 0; i < RECENT_MAX; i++) {
        if (!a->recent[i].key || strcmp(a->recent[i].key, key) == 0) {
            slot = i;
            break;
        }
        if (a->recent[i].until < a->recent[slot].until)
            slot = i;
    }
    rt_free(a->recent[slot].key);
    a->recent[slot].key = rt_xstrdup(key);
    a->recent[slot].until = until;
}

/* s for a log line: control characters replaced, cut to n - 1 bytes (ids and names come
 * from other people and could otherwise forge log lines). */
static const char *loggable(const char *s, char *out, size_t n)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < n; i++)
        out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    out[i] = 0;
    return out;
}

static bool ensure_store(pair_actor *a)
{
    if (a->store)
        return true;
    int err = 0;
    a->store = gw_pairing_open(a->home, &err);
    if (!a->store)
        RT_LOG_LIMITED(RT_LOG_ERROR, "gw", 60000, "pairing: cannot open the store in %s: %s",
                       a->home, rt_strerror(err));
    return a->store != NULL;
}

/* An unknown user in a DM whose platform pairs: a code, "Too many…", or silence. */
static void offer_code(pair_actor *a, rt_ctx *cx, const gw_msg_event *ev)
{
    const gw_source *s = &ev->src;
    double now = gw_pairing_now();
    char *key = rt_xasprintf("%s:%s", s->platform, s->user_id);
    char code[GW_PAIR_CODE_LEN + 1];
    char *text = NULL;
    if (recent_silenced(a, key, now))
        goto out;
    int r = gw_pairing_generate(a->store, s->platform, s->user_id, s->user_name, now, code);
    if (r == 0)
        text = gw_pairing_code_text(s->platform, code);
    else if (r == -EBUSY || r == -ENOSPC)
        text = rt_xstrdup(GW_PAIR_TOO_MANY_TEXT);
    else if (r != -EAGAIN) {
        char u[128];
        RT_LOG_LIMITED(RT_LOG_ERROR, "gw", 10000, "pairing: no code for platform=%s user=%s: %s",
                       s->platform, loggable(s->user_id, u, sizeof(u)), rt_strerror(r));
    }
    if (text) {
        recent_add(a, key, now + GW_PAIR_RATE_LIMIT);
        rt_send(cx, ev->adapter, gw_out_text_new(GW_OUT_TEXT, &ev->reply, text, GW_TEXT_NOTICE));
    }
out:
    rt_free(text);
    rt_free(key);
}

static void on_check(pair_actor *a, rt_ctx *cx, gw_pair_check *c)
{
    gw_msg_event *ev = c->event;
    if (!ev || !ev->src.platform || !ev->src.user_id || !*ev->src.user_id)
        return;
    const gw_source *s = &ev->src;
    if (!ensure_store(a))
        return; /* who was approved is unknown: deny, and say nothing */
    if (gw_pairing_is_approved(a->store, s->platform, s->user_id)) {
        rt_send(cx, c->reply_to, &gw_event_take(ev, GW_PAIR_ALLOWED)->hdr);
        return;
    }
    char u[128], n[128], pl[72];
    RT_LOG_LIMITED(RT_LOG_WARN, "gw", 1000, "unauthorized user=%s name=%s platform=%s chat=%s",
                   loggable(s->user_id, u, sizeof(u)), loggable(s->user_name, n, sizeof(n)),
                   loggable(s->platform, pl, sizeof(pl)), s->chat_type ? s->chat_type : "");
    if (!s->chat_type || strcmp(s->chat_type, "dm") != 0 || !gw_auth_dm_pairs(a->auth, s->platform))
        return; /* groups and channels: silence; DMs with "ignore": silence */
    offer_code(a, cx, ev);
}

static void pair_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    pair_actor *a = state;
    switch (m->type) {
    case GW_PAIR_CHECK: on_check(a, cx, (gw_pair_check *)m); break;
    case GW_PAIR_SET_AUTH: {
        gw_pair_set_auth *s = (gw_pair_set_auth *)m;
        gw_auth_free(a->auth);
        a->auth = s->auth;
        s->auth = NULL;
        break;
    }
    case RT_MSG_STOP: break;
    default: RT_WARN_ONCE("gw", "pairing: unexpected msg type %x", m->type); break;
    }
}

static void pair_fini(void *state)
{
    pair_actor *a = state;
    gw_pairing_free(a->store);
    gw_auth_free(a->auth);
    for (int i = 0; i < RECENT_MAX; i++)
        rt_free(a->recent[i].key);
    rt_free(a->home);
    rt_free(a);
}

static const rt_actor_type pair_type = {"pairing", pair_behave, pair_fini, 0};

rt_ref gw_pairing_start(rt_ctx *cx, const char *hermes_home, const gw_auth *auth, int *err)
{
    if (!cx || !hermes_home || !*hermes_home || !auth) {
        if (err)
            *err = -EINVAL;
        return 0;
    }
    pair_actor *a = rt_xcalloc(1, sizeof(*a));
    a->home = rt_xstrdup(hermes_home);
    a->auth = gw_auth_ref(auth);
    rt_spawn_opts o = {.flags = RT_SPAWN_DETACHED, .name = GW_PAIRING_NAME};
    rt_ref r = rt_spawn(cx, &pair_type, a, &o); /* on failure pair_fini has freed a */
    if (err)
        *err = r ? 0 : -EEXIST;
    return r;
}
