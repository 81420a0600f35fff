/*
 * hm_files — see hm_files.h.
 */
#include "hm_files.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct file_msg {
    rt_msg hdr;
    char *path;
    void *data;
    size_t len;
    mode_t mode;
    rt_ref reply_to;
    uint64_t tag;
} file_msg;

static int mkdirs(const char *dir)
{
    char buf[PATH_MAX];
    if (rt_strlcpy(buf, dir, sizeof(buf)) >= sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int hm_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    char dir[PATH_MAX], tmp[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash || (size_t)(slash - path) >= sizeof(dir))
        return -EINVAL;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    int err = mkdirs(dir);
    if (err)
        return err;
    if (snprintf(tmp, sizeof(tmp), "%s/.%s.%d.tmp", dir, slash + 1, (int)getpid()) >=
        (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    (void)fchmod(fd, mode); /* the umask must not widen or narrow what we asked for */
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
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
    return err;
}

static void drop_file(rt_msg *m)
{
    file_msg *f = (file_msg *)m;
    rt_free(f->path);
    rt_free(f->data);
}

static void files_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type != HM_MSG_FILE_WRITE)
        return;
    file_msg *f = (file_msg *)m;
    int err = hm_write_file_atomic(f->path, f->data, f->len, f->mode);
    if (err)
        RT_ERROR("files", "could not write %s: %s", f->path, rt_strerror(err));
    if (f->reply_to) {
        hm_msg_file_done *d = RT_MSG_NEW(hm_msg_file_done, HM_MSG_FILE_DONE);
        d->tag = f->tag;
        d->err = err;
        rt_send(cx, f->reply_to, &d->hdr);
    }
}

static const rt_actor_type files_type = {"files", files_behave, NULL, 0};

rt_ref hm_files_start(rt_ctx *cx)
{
    rt_ref r = rt_whereis(cx, HM_FILES_NAME);
    if (r)
        return r;
    rt_spawn_opts o = {.flags = RT_SPAWN_DETACHED, .name = HM_FILES_NAME};
    r = rt_spawn(cx, &files_type, NULL, &o);
    return r ? r : rt_whereis(cx, HM_FILES_NAME); /* lost a race: the other one */
}

void hm_files_write(rt_ctx *cx, const char *path, const void *data, size_t len, mode_t mode,
                    rt_ref reply_to, uint64_t tag)
{
    file_msg *f = RT_MSG_NEW(file_msg, HM_MSG_FILE_WRITE);
    f->path = rt_xstrdup(path);
    f->data = rt_xmemdup(data, len);
    f->len = len;
    f->mode = mode;
    f->reply_to = reply_to;
    f->tag = tag;
    f->hdr.drop = drop_file;
    rt_ref w = rt_whereis(cx, HM_FILES_NAME);
    if (!w)
        w = hm_files_start(cx);
    rt_send(cx, w, &f->hdr);
}
