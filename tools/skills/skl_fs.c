/*
 * skl_fs — see skl_fs.h.
 */
#include "skl_fs.h"

#include "rt_alloc.h"
#include "rt_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool skl_is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

bool skl_is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Read at most max bytes of a regular file (new NUL-terminated string), or NULL with
 * errno. *truncated (may be NULL) tells whether the file was longer. */
char *skl_read_file(const char *path, size_t max, size_t *len, bool *truncated)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EISDIR;
        return NULL;
    }
    size_t cap = (size_t)st.st_size < max ? (size_t)st.st_size : max;
    char *buf = rt_xmalloc(cap + 1);
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    if (len)
        *len = n;
    if (truncated)
        *truncated = (size_t)st.st_size > n;
    return buf;
}

int skl_mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    if (rt_strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp))
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
        return -errno;
    return skl_is_dir(tmp) ? 0 : -ENOTDIR;
}

/* Write atomically: a temporary file in the same directory, then rename. 0 or -errno. */
int skl_write_atomic(const char *path, const char *data, size_t n)
{
    char *tmp = rt_xasprintf("%s.tmp.XXXXXX", path);
    char *slash = strrchr(tmp, '/');
    if (slash) { /* ".SKILL.md.tmp.XXXXXX": hidden while it exists */
        char *name = rt_xasprintf("%.*s/.%s", (int)(slash - tmp), tmp, slash + 1);
        rt_free(tmp);
        tmp = name;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = -errno;
        rt_free(tmp);
        return e;
    }
    size_t off = 0;
    int rc = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = -errno;
            break;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0 && !rc)
        rc = -errno;
    if (!rc && chmod(tmp, 0600) < 0)
        rc = -errno;
    if (!rc && rename(tmp, path) < 0)
        rc = -errno;
    if (rc)
        unlink(tmp);
    rt_free(tmp);
    return rc;
}

/* Remove a directory tree without following symlinks (depth-bounded). 0 or -errno. */
int skl_rm_tree_at(int dfd, const char *name, int depth)
{
    if (depth > 32)
        return -ELOOP;
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dfd, name, 0) < 0 ? -errno : 0;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        rc = skl_rm_tree_at(dirfd(d), e->d_name, depth + 1);
    }
    closedir(d);
    if (!rc && unlinkat(dfd, name, AT_REMOVEDIR) < 0)
        rc = -errno;
    return rc;
}
