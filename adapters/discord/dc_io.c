/*
 * dc_io — the Discord adapter's file I/O helper: a detached actor (its own thread, so it may
 * block on the disk) that writes downloads into the cache and reads files to upload. It is
 * linked to the adapter and ends with it.
 */
#include "dc_int.h"

#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>

static void drop_io(rt_msg *m)
{
    dc_io_msg *w = (dc_io_msg *)m;
    rt_free(w->path);
    rt_free(w->data);
}

static void drop_done(rt_msg *m)
{
    rt_free(((dc_io_done *)m)->data);
}

static dc_io_msg *io_new(int op, const char *path, rt_ref reply_to, uint64_t tag)
{
    dc_io_msg *w = RT_MSG_NEW(dc_io_msg, DC_MSG_IO);
    w->op = op;
    w->path = path ? rt_xstrdup(path) : NULL;
    w->reply_to = reply_to;
    w->tag = tag;
    w->hdr.drop = drop_io;
    return w;
}

void dc__io_write(rt_ctx *cx, rt_ref io, const char *path, char *data, size_t len, rt_ref reply_to,
                  uint64_t tag)
{
    dc_io_msg *w = io_new(DC_IO_WRITE, path, reply_to, tag);
    w->data = data;
    w->len = len;
    rt_send(cx, io, &w->hdr);
}

void dc__io_read(rt_ctx *cx, rt_ref io, const char *path, size_t max, rt_ref reply_to, uint64_t tag)
{
    dc_io_msg *w = io_new(DC_IO_READ, path, reply_to, tag);
    w->max = max;
    rt_send(cx, io, &w->hdr);
}

void dc__io_quit(rt_ctx *cx, rt_ref io)
{
    rt_send(cx, io, &io_new(DC_IO_QUIT, NULL, 0, 0)->hdr);
}

static void make_parent(const char *path)
{
    char *copy = rt_xstrdup(path);
    char *dir = dirname(copy);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        (void)mkdir(dir, 0700);
        *p = '/';
    }
    (void)mkdir(dir, 0700);
    rt_free(copy);
}

static void io_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type != DC_MSG_IO)
        return;
    dc_io_msg *w = (dc_io_msg *)m;
    if (w->op == DC_IO_QUIT) {
        rt_exit(cx, RT_EXIT_NORMAL);
        return;
    }
    dc_io_done *d = RT_MSG_NEW(dc_io_done, DC_MSG_IO_DONE);
    d->tag = w->tag;
    d->hdr.drop = drop_done;
    if (w->op == DC_IO_WRITE) {
        make_parent(w->path);
        d->err = hm_write_atomic(w->path, w->data ? w->data : "", w->len, 0600);
        if (d->err)
            RT_WARN(DC_LOG, "Discord: could not write %s: %s", w->path, rt_strerror(d->err));
    } else {
        d->err = hm_read_file(w->path, w->max, &d->data, &d->len);
    }
    if (w->reply_to)
        rt_send(cx, w->reply_to, &d->hdr);
    else
        rt_msg_free(&d->hdr);
}

static const rt_actor_type io_type = {"discord.io", io_behave, NULL, 0};

rt_ref dc__io_start(rt_ctx *cx)
{
    rt_spawn_opts o = {.flags = RT_SPAWN_DETACHED | RT_SPAWN_LINK};
    return rt_spawn(cx, &io_type, NULL, &o);
}
