/*
 * ft_fs — see ft_fs.h.
 */
#include "ft_fs.h"

#include "ft_text.h"
#include "rt_alloc.h"
#include "rt_buf.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FT_SYMLINK_HOPS 40

char *ft_home(void)
{
    const char *h = getenv("HOME");
    if (h && *h)
        return rt_xstrdup(h);
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_dir)
        return rt_xstrdup(res->pw_dir);
    return rt_xstrdup("/");
}

char *ft_expand_user(const char *path)
{
    if (path[0] != '~')
        return rt_xstrdup(path);
    const char *slash = strchr(path, '/');
    size_t ulen = slash ? (size_t)(slash - path) - 1 : strlen(path) - 1;
    const char *rest = slash ? slash : "";
    char *home;
    if (ulen == 0) {
        home = ft_home();
    } else {
        char *user = rt_xstrndup(path + 1, ulen);
        struct passwd pw, *res = NULL;
        char buf[4096];
        int rc = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
        rt_free(user);
        if (rc != 0 || !res || !res->pw_dir)
            return rt_xstrdup(path);
        home = rt_xstrdup(res->pw_dir);
    }
    /* expanduser strips a trailing slash of the home directory before appending. */
    size_t hn = strlen(home);
    while (hn > 1 && home[hn - 1] == '/')
        home[--hn] = '\0';
    char *out = rt_xasprintf("%s%s", (hn == 1 && home[0] == '/' && *rest) ? "" : home, rest);
    rt_free(home);
    return out;
}

char *ft_abs(const char *cwd, const char *path)
{
    if (path[0] == '/')
        return rt_xstrdup(path);
    char here[4096];
    if (!cwd || !*cwd)
        cwd = getcwd(here, sizeof(here)) ? here : "/";
    return ft_path_join(cwd, path);
}

/* ------------------------------------------------------------ realpath */

typedef struct pathbuf {
    char *p;
    size_t n, cap;
} pathbuf;

static void pb_set(pathbuf *b, const char *s, size_t n)
{
    if (b->cap < n + 1) {
        b->cap = n + 64;
        b->p = rt_xrealloc(b->p, b->cap);
    }
    memcpy(b->p, s, n);
    b->p[n] = '\0';
    b->n = n;
}

/* Append "/name" (path is "/" or has no trailing slash). */
static void pb_push(pathbuf *b, const char *name, size_t n)
{
    size_t need = b->n + n + 2;
    if (b->cap < need) {
        b->cap = need + 64;
        b->p = rt_xrealloc(b->p, b->cap);
    }
    if (!(b->n == 1 && b->p[0] == '/'))
        b->p[b->n++] = '/';
    memcpy(b->p + b->n, name, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void pb_pop(pathbuf *b)
{
    char *s = strrchr(b->p, '/');
    b->n = (s && s != b->p) ? (size_t)(s - b->p) : 1;
    b->p[b->n] = '\0';
}

char *ft_realpath(const char *abs)
{
    pathbuf out = {0}, rest = {0};
    pb_set(&out, "/", 1);
    pb_set(&rest, abs, strlen(abs));
    size_t at = 0;
    int hops = 0;
    while (at < rest.n) {
        while (at < rest.n && rest.p[at] == '/')
            at++;
        size_t e = at;
        while (e < rest.n && rest.p[e] != '/')
            e++;
        const char *name = rest.p + at;
        size_t nn = e - at;
        at = e;
        if (nn == 0 || (nn == 1 && name[0] == '.'))
            continue;
        if (nn == 2 && name[0] == '.' && name[1] == '.') {
            pb_pop(&out);
            continue;
        }
        size_t before = out.n;
        pb_push(&out, name, nn);
        struct stat st;
        if (lstat(out.p, &st) != 0 || !S_ISLNK(st.st_mode))
            continue; /* missing components are kept as written */
        char target[4096];
        ssize_t tn = readlink(out.p, target, sizeof(target) - 1);
        if (tn <= 0 || ++hops > FT_SYMLINK_HOPS)
            continue; /* unreadable or a loop: keep the link's own path, as Python does */
        /* Resolve the link's target in place of the link, then the rest. */
        out.n = before;
        out.p[out.n] = '\0';
        if (out.n == 0)
            pb_set(&out, "/", 1);
        if (target[0] == '/')
            pb_set(&out, "/", 1);
        size_t left = rest.n - at;
        char *next = rt_xmalloc((size_t)tn + left + 2);
        memcpy(next, target, (size_t)tn);
        next[tn] = '/';
        memcpy(next + tn + 1, rest.p + at, left);
        pb_set(&rest, next, (size_t)tn + 1 + left);
        rt_free(next);
        at = 0;
    }
    rt_free(rest.p);
    return out.p;
}

/* ------------------------------------------------------------ deny list */

static const char *const denied_home_files[] = {
    ".ssh/authorized_keys",
    ".ssh/id_rsa",
    ".ssh/id_ed25519",
    ".ssh/config",
    ".hermes/.env",
    ".bashrc",
    ".zshrc",
    ".profile",
    ".bash_profile",
    ".zprofile",
    ".netrc",
    ".pgpass",
    ".npmrc",
    ".pypirc",
};
static const char *const denied_files[] = {"/etc/sudoers", "/etc/passwd", "/etc/shadow"};
static const char *const denied_home_dirs[] = {".ssh", ".aws", ".gnupg", ".kube"};
static const char *const denied_dirs[] = {"/etc/sudoers.d", "/etc/systemd"};

static bool same_as(const char *resolved, const char *entry)
{
    char *r = ft_realpath(entry);
    bool eq = strcmp(resolved, r) == 0;
    rt_free(r);
    return eq;
}

static bool under(const char *resolved, const char *dir)
{
    char *r = ft_realpath(dir);
    size_t n = strlen(r);
    /* realpath(p) + os.sep is the prefix; "/" itself would be "//", matching nothing. */
    bool in = strncmp(resolved, r, n) == 0 && resolved[n] == '/' && !(n == 1 && r[0] == '/');
    rt_free(r);
    return in;
}

bool ft_write_denied(const char *abs)
{
    char *home = ft_home();
    char *resolved = ft_realpath(abs);
    bool deny = false;
    for (size_t i = 0; !deny && i < sizeof(denied_home_files) / sizeof(char *); i++) {
        char *p = ft_path_join(home, denied_home_files[i]);
        deny = same_as(resolved, p);
        rt_free(p);
    }
    for (size_t i = 0; !deny && i < sizeof(denied_files) / sizeof(char *); i++)
        deny = same_as(resolved, denied_files[i]);
    for (size_t i = 0; !deny && i < sizeof(denied_home_dirs) / sizeof(char *); i++) {
        char *p = ft_path_join(home, denied_home_dirs[i]);
        deny = under(resolved, p);
        rt_free(p);
    }
    for (size_t i = 0; !deny && i < sizeof(denied_dirs) / sizeof(char *); i++)
        deny = under(resolved, denied_dirs[i]);
    rt_free(resolved);
    rt_free(home);
    return deny;
}

/* ------------------------------------------------------------ writing */

int ft_mkdirs(const char *dir, bool *created)
{
    if (created)
        *created = false;
    if (!dir[0])
        return 0;
    char *p = rt_xstrdup(dir);
    size_t n = strlen(p);
    int err = 0;
    /* Walk forward: create each missing prefix. */
    for (size_t i = 1; i <= n && !err; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0777) == 0) {
            if (created)
                *created = true;
        } else if (errno != EEXIST) {
            err = -errno;
        } else {
            struct stat st;
            if (stat(p, &st) != 0)
                err = -errno;
            else if (!S_ISDIR(st.st_mode))
                err = -ENOTDIR;
        }
        p[i] = c;
    }
    rt_free(p);
    return err;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int open_temp(const char *dir, char **tmp)
{
    static _Atomic unsigned long counter;
    for (int attempt = 0; attempt < 100; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long k = ++counter;
        char *t = rt_xasprintf("%s/.hermes-write-%ld-%lu-%lx.tmp", dir, (long)getpid(), k,
                               (unsigned long)ts.tv_nsec);
        int fd = open(t, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd >= 0) {
            *tmp = t;
            return fd;
        }
        int e = errno;
        rt_free(t);
        if (e != EEXIST)
            return -e;
    }
    return -EEXIST;
}

static int write_in_place(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    int err = write_all(fd, data, len);
    if (close(fd) != 0 && !err)
        err = -errno;
    return err;
}

int ft_write_atomic(const char *path, const void *data, size_t len, bool *dirs_created)
{
    char *dir = ft_path_dirname(path);
    if (!dir[0]) {
        rt_free(dir);
        dir = rt_xstrdup(".");
    }
    int err = ft_mkdirs(dir, dirs_created);
    if (err)
        goto out_dir;
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
        err = -EISDIR;
        goto out_dir;
    }
    if (exists && !S_ISREG(st.st_mode)) {
        err = -EINVAL;
        goto out_dir;
    }
    char *tmp = NULL;
    int fd = open_temp(dir, &tmp);
    if (fd < 0) {
        err = fd;
        if (exists && (err == -EACCES || err == -EPERM))
            err = write_in_place(path, data, len);
        goto out_dir;
    }
    err = write_all(fd, data, len);
    if (!err && exists) {
        /* Keep owner (best effort: only root may give a file away) and mode. */
        (void)!fchown(fd, st.st_uid, st.st_gid);
        if (fchmod(fd, st.st_mode & 07777) != 0)
            err = -errno;
    }
    if (!err && fsync(fd) != 0)
        err = -errno;
    if (close(fd) != 0 && !err)
        err = -errno;
    if (!err && rename(tmp, path) != 0)
        err = -errno;
    if (err) {
        (void)unlink(tmp); /* best effort: the temporary file must not stay behind */
    } else {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd); /* best effort: the rename is done either way */
            close(dfd);
        }
    }
    rt_free(tmp);
out_dir:
    rt_free(dir);
    return err;
}

int ft_read_all(const char *abs, size_t max, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(abs, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    struct stat st;
    int err = 0;
    if (fstat(fd, &st) != 0) {
        err = -errno;
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        err = -EISDIR;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        err = -EINVAL;
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        err = -EFBIG;
        goto out;
    }
    rt_buf b;
    rt_buf_init(&b, max);
    char chunk[65536];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = -errno;
            break;
        }
        if (r == 0)
            break;
        if (rt_buf_append(&b, chunk, (size_t)r) < 0) {
            err = -EFBIG;
            break;
        }
    }
    if (err)
        rt_buf_fini(&b);
    else
        *data = rt_buf_steal(&b, len);
out:
    close(fd);
    return err;
}
