/*
 * mx_io — the Matrix adapter's file actor and the blocking file work it does: state files
 * written atomically (sync_token.json, matrix_threads.json), downloads saved into the media
 * cache, files read for upload, and the identity lock (gateway.md §11.2).
 *
 * The actor is detached (its own thread) because fsync and large reads block; it handles its
 * mailbox in order, so a write sent after another lands after it. It ends on MX_IO_QUIT,
 * after releasing the lock it was given.
 *
 * Lock files: <dir>/matrix-<first 16 hex of sha256(identity)>.lock, created O_EXCL, holding
 * {pid, kind, argv, start_time, scope, identity_hash, metadata}. A lock whose process is gone,
 * was restarted (start time differs) or is stopped (state T/t) is stale and replaced.
 */
#include "mx_int.h"

#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_MAX_BYTES (64u << 10)

/* ================================================================= helpers */

/* mkdir -p with mode 0700 for what it creates. */
static int mkdirs(const char *dir)
{
    char buf[4096];
    if (rt_strlcpy(buf, dir, sizeof(buf)) >= sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int mkparent(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return 0;
    char *dir = rt_xstrndup(path, (size_t)(slash - path));
    int rc = mkdirs(dir);
    rt_free(dir);
    return rc;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ============================================================= the lock */

void mx_lock_name(const char *identity, char *buf, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(identity, strlen(identity), md, &mdlen, EVP_sha256(), NULL);
    char hex[17];
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(buf, len, "matrix-%s.lock", hex);
}

/* Field 22 (start time) and field 3 (state) of /proc/<pid>/stat; -1 when unreadable. */
static long long proc_stat(long pid, char *state)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p || !p[1] || !p[2])
        return -1;
    *state = p[2];
    int field = 2;
    for (p++; *p && field < 22; p++)
        field += *p == ' ';
    long long v = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        v = v * 10 + (*p - '0');
    return v;
}

static bool holder_alive(long pid, long long start_time)
{
    if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno != EPERM))
        return false;
    char state = '?';
    long long st = proc_stat(pid, &state);
    if (st < 0)
        return true; /* no /proc: trust kill() */
    if (start_time >= 0 && st != start_time)
        return false; /* the pid was reused */
    return state != 'T' && state != 't';
}

static char *lock_record(const char *hash, const char *what)
{
    char state;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "pid", getpid());
    cJSON_AddStringToObject(o, "kind", "hermes-gateway");
    cJSON_AddItemToObject(o, "argv", cJSON_CreateArray());
    cJSON_AddNumberToObject(o, "start_time", (double)proc_stat(getpid(), &state));
    cJSON_AddStringToObject(o, "scope", "matrix");
    cJSON_AddStringToObject(o, "identity_hash", hash);
    cJSON *md = cJSON_AddObjectToObject(o, "metadata");
    cJSON_AddStringToObject(md, "identity", what ? what : "");
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *out = rt_xstrdup(txt);
    cJSON_free(txt);
    return out;
}

/* The pid and start time recorded in a lock file (pid 0 if unreadable). */
static long lock_holder(const char *path, long long *start_time)
{
    char *text = NULL;
    size_t len = 0;
    long pid = 0;
    *start_time = -1;
    if (hm_read_file(path, LOCK_MAX_BYTES, &text, &len) != 0)
        return 0;
    cJSON *j = cJSON_Parse(text);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pid");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "start_time");
    if (cJSON_IsNumber(p))
        pid = (long)p->valuedouble;
    if (cJSON_IsNumber(s))
        *start_time = (long long)s->valuedouble;
    cJSON_Delete(j);
    rt_free(text);
    return pid;
}

int mx_lock_take(const char *dir, const char *identity, const char *what, long *holder)
{
    char name[64];
    mx_lock_name(identity, name, sizeof(name));
    int rc = mkdirs(dir);
    if (rc)
        return rc;
    char *path = rt_xasprintf("%s/%s", dir, name);
    char hash[17];
    memcpy(hash, name + 7, 16);
    hash[16] = '\0';
    char *rec = lock_record(hash, what);
    rc = -EEXIST;
    for (int attempt = 0; attempt < 3 && rc == -EEXIST; attempt++) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            ssize_t w = write(fd, rec, strlen(rec));
            rc = w == (ssize_t)strlen(rec) ? 0 : -EIO;
            close(fd);
            break;
        }
        if (errno != EEXIST) {
            rc = -errno;
            break;
        }
        long long start = -1;
        long pid = lock_holder(path, &start);
        if (pid == (long)getpid() || !holder_alive(pid, start)) {
            (void)unlink(path); /* ours from before, or stale */
            continue;
        }
        *holder = pid;
        rc = -EBUSY;
    }
    rt_free(rec);
    rt_free(path);
    return rc;
}

void mx_lock_release(const char *dir, const char *identity)
{
    char name[64];
    mx_lock_name(identity, name, sizeof(name));
    char *path = rt_xasprintf("%s/%s", dir, name);
    long long start;
    if (lock_holder(path, &start) == (long)getpid())
        (void)unlink(path);
    rt_free(path);
}

/* ============================================================ media cache */

bool mx_looks_like_image(const char *data, size_t len)
{
    const unsigned char *d = (const unsigned char *)data;
    if (len >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF)
        return true; /* JPEG */
    if (len >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
        return true;
    if (len >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))
        return true;
    return len >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0;
}

static const char *image_ext(const char *mime)
{
    if (!mime)
        return ".jpg";
    if (strstr(mime, "png"))
        return ".png";
    if (strstr(mime, "gif"))
        return ".gif";
    if (strstr(mime, "webp"))
        return ".webp";
    return ".jpg";
}

/* The extension of a file name (".ogg"), when short and plain; else fallback. */
static const char *name_ext(const char *name, const char *fallback)
{
    const char *dot = name ? strrchr(name, '.') : NULL;
    if (!dot || strlen(dot) > 8 || strchr(dot, '/'))
        return fallback;
    for (const char *p = dot + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return fallback;
    return dot[1] ? dot : fallback;
}

/* <cache>/<sub>, or the legacy <home>/<legacy> when that exists. */
static char *cache_subdir(const char *cache_dir, const char *sub, const char *legacy)
{
    const char *slash = strrchr(cache_dir, '/');
    if (slash) {
        char *old = rt_xasprintf("%.*s/%s", (int)(slash - cache_dir), cache_dir, legacy);
        if (is_dir(old))
            return old;
        rt_free(old);
    }
    return rt_xasprintf("%s/%s", cache_dir, sub);
}

char *mx_cache_path(const char *cache_dir, int kind, const char *mime, const char *name,
                    const char *hex12)
{
    char *dir = NULL, *path = NULL;
    if (kind == GW_KIND_PHOTO) {
        dir = cache_subdir(cache_dir, "images", "image_cache");
        path = rt_xasprintf("%s/img_%s%s", dir, hex12, image_ext(mime));
    } else if (kind == GW_KIND_AUDIO || kind == GW_KIND_VOICE) {
        dir = cache_subdir(cache_dir, "audio", "audio_cache");
        path = rt_xasprintf("%s/audio_%s%s", dir, hex12, name_ext(name, ".ogg"));
    } else {
        const char *base = name ? strrchr(name, '/') : NULL;
        base = base ? base + 1 : (name ? name : "");
        if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strchr(base, '\\') ||
            strlen(base) > 200)
            return NULL; /* path traversal or nonsense */
        dir = cache_subdir(cache_dir, "documents", "document_cache");
        path = rt_xasprintf("%s/doc_%s_%s", dir, hex12, base);
    }
    rt_free(dir);
    return path;
}

static void random_hex12(char out[13])
{
    unsigned char b[6] = {0};
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        uint64_t t = (uint64_t)rt_hash_u64((uint64_t)(uintptr_t)out ^ (uint64_t)getpid());
        memcpy(b, &t, sizeof(b));
    }
    for (int i = 0; i < 6; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* ================================================================ the actor */

void mx__drop_io_done(rt_msg *msg)
{
    mx_io_done *d = (mx_io_done *)msg;
    rt_free(d->msg);
    rt_free(d->path);
    rt_free(d->data);
}

static void reply(rt_ctx *cx, mx_io_msg *m, int err, const char *msg, char *path, char *data,
                  size_t len, long holder)
{
    mx_io_done *d = RT_MSG_NEW(mx_io_done, MX_IO_DONE);
    d->tag = m->tag;
    d->err = err;
    d->msg = msg ? rt_xstrdup(msg) : NULL;
    d->path = path;
    d->data = data;
    d->len = len;
    d->holder = holder;
    d->hdr.drop = mx__drop_io_done;
    if (m->reply_to)
        rt_send(cx, m->reply_to, &d->hdr);
    else
        rt_msg_free(&d->hdr);
}

static void do_write(rt_ctx *cx, mx_io_msg *m)
{
    int rc = mkparent(m->path);
    if (!rc)
        rc = hm_write_atomic(m->path, m->data ? m->data : "", m->len, (mode_t)m->mode);
    if (rc)
        RT_WARN(MX_LOG, "Matrix: cannot write %s: %s", m->path, rt_strerror(rc));
    reply(cx, m, rc, NULL, NULL, NULL, 0, 0);
}

static void do_read(rt_ctx *cx, mx_io_msg *m)
{
    char *data = NULL;
    size_t len = 0;
    int rc = hm_read_file(m->path, m->len, &data, &len);
    reply(cx, m, rc, rc ? rt_strerror(rc) : NULL, NULL, data, len, 0);
}

static void do_media(rt_ctx *cx, mx_io_msg *m)
{
    char hex[13];
    random_hex12(hex);
    if (m->kind == GW_KIND_PHOTO && !mx_looks_like_image(m->data, m->len)) {
        reply(cx, m, -EBADMSG, "the file is not an image", NULL, NULL, 0, 0);
        return;
    }
    char *path = mx_cache_path(m->path, m->kind, m->mime, m->name, hex);
    if (!path) {
        reply(cx, m, -EINVAL, "unsafe file name", NULL, NULL, 0, 0);
        return;
    }
    int rc = mkparent(path);
    if (!rc)
        rc = hm_write_atomic(path, m->data, m->len, 0600);
    if (rc) {
        RT_WARN(MX_LOG, "Matrix: cannot cache media at %s: %s", path, rt_strerror(rc));
        rt_free(path);
        reply(cx, m, rc, rt_strerror(rc), NULL, NULL, 0, 0);
        return;
    }
    reply(cx, m, 0, NULL, path, NULL, 0, 0);
}

static void do_lock(rt_ctx *cx, mx_io_msg *m)
{
    long holder = 0;
    int rc = mx_lock_take(m->path, m->data, m->name, &holder);
    reply(cx, m, rc, rc && rc != -EBUSY ? rt_strerror(rc) : NULL, NULL, NULL, 0, holder);
}

static void io_behave(rt_ctx *cx, void *state, rt_msg *msg)
{
    (void)state;
    mx_io_msg *m = (mx_io_msg *)msg;
    switch (msg->type) {
    case MX_IO_WRITE: do_write(cx, m); break;
    case MX_IO_READ: do_read(cx, m); break;
    case MX_IO_MEDIA: do_media(cx, m); break;
    case MX_IO_LOCK: do_lock(cx, m); break;
    case MX_IO_QUIT:
        if (m->path && m->data)
            mx_lock_release(m->path, m->data);
        reply(cx, m, 0, NULL, NULL, NULL, 0, 0);
        rt_exit(cx, RT_EXIT_NORMAL);
        break;
    default: break;
    }
}

static const rt_actor_type io_type = {"matrix.io", io_behave, NULL, 0};

rt_ref mx_io_start(rt_ctx *cx)
{
    rt_spawn_opts so = {.flags = RT_SPAWN_DETACHED};
    return rt_spawn(cx, &io_type, NULL, &so);
}

static void drop_io(rt_msg *msg)
{
    mx_io_msg *m = (mx_io_msg *)msg;
    rt_free(m->path);
    rt_free(m->data);
    rt_free(m->name);
    rt_free(m->mime);
}

mx_io_msg *mx_io_new(uint32_t type, rt_ref reply_to, uint64_t tag)
{
    mx_io_msg *m = RT_MSG_NEW(mx_io_msg, type);
    m->reply_to = reply_to;
    m->tag = tag;
    m->hdr.drop = drop_io;
    return m;
}
