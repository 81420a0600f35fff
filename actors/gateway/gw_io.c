/*
 * gw_io — the gateway's file writer: a detached actor (writing and fsyncing block), so the
 * router and the chat actors never touch the disk themselves. Writes to one path are applied
 * in the order they were sent (the router coalesces its sessions.json rewrites itself).
 */
#include "gw_int.h"

#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_sched.h"
#include "rt_util.h"

#include <errno.h>
#include <malloc.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>

static void drop_io(rt_msg *m)
{
    gw_io_msg *w = (gw_io_msg *)m;
    rt_free(w->path);
    rt_free(w->data);
    rt_free(w->key);
}

static gw_io_msg *io_new(uint32_t type, const char *path, rt_ref reply_to, uint64_t tag)
{
    gw_io_msg *w = RT_MSG_NEW(gw_io_msg, type);
    w->path = rt_xstrdup(path);
    w->reply_to = reply_to;
    w->tag = tag;
    w->hdr.drop = drop_io;
    return w;
}

void gw_io_write(rt_ctx *cx, rt_ref io, const char *path, char *data_taken, size_t len, int mode,
                 rt_ref reply_to, uint64_t tag)
{
    gw_io_msg *w = io_new(GW_IO_WRITE, path, reply_to, tag);
    w->data = data_taken;
    w->len = len;
    w->mode = mode;
    rt_send(cx, io, &w->hdr);
}

void gw_io_write_index(rt_ctx *cx, rt_ref io, const char *path, char *flat_taken, size_t len,
                       rt_ref reply_to, uint64_t tag)
{
    gw_io_msg *w = io_new(GW_IO_INDEX, path, reply_to, tag);
    w->data = flat_taken;
    w->len = len;
    w->mode = 0600;
    rt_send(cx, io, &w->hdr);
}

void gw_io_setenv(rt_ctx *cx, rt_ref io, const char *path, const char *key, const char *value,
                  rt_ref reply_to, uint64_t tag)
{
    gw_io_msg *w = io_new(GW_IO_SETENV, path, reply_to, tag);
    w->key = rt_xstrdup(key);
    w->data = rt_xstrdup(value ? value : "");
    rt_send(cx, io, &w->hdr);
}

/* mkdir -p for the parent of path, 0700. */
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

#define TRIM_FREE_BYTES ((size_t)4 << 20)

static void io_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type == GW_IO_TRIM) {
        /* After conversations (or their agents) left memory, glibc keeps their pages: hand
         * them back to the system once more than TRIM_FREE_BYTES sit free in the arenas
         * (both walk the heap, so they run here, off the workers). */
        struct mallinfo2 mi = mallinfo2();
        if (mi.fordblks > TRIM_FREE_BYTES)
            (void)malloc_trim(0);
        return;
    }
    if (m->type != GW_IO_WRITE && m->type != GW_IO_SETENV && m->type != GW_IO_INDEX)
        return;
    gw_io_msg *w = (gw_io_msg *)m;
    make_parent(w->path);
    int64_t took_ms = 0;
    if (m->type == GW_IO_INDEX) { /* rendered here, off the router (gw_router.c index_write) */
        int64_t t0 = rt_now_ns(rt_ctx_runtime(cx));
        char *text = gw_index_render_flat(w->data ? w->data : "", w->len);
        took_ms = (rt_now_ns(rt_ctx_runtime(cx)) - t0) / 1000000;
        rt_free(w->data);
        w->data = text;
        w->len = strlen(text);
    }
    int err = m->type != GW_IO_SETENV
                  ? hm_write_atomic(w->path, w->data ? w->data : "", w->len, (mode_t)w->mode)
                  : hm_env_set_file(w->path, w->key, w->data);
    if (err)
        RT_LOG_LIMITED(RT_LOG_WARN, "gateway", 10000, "could not write %s: %s", w->path,
                       rt_strerror(err));
    if (w->reply_to) {
        gw_io_done *d = RT_MSG_NEW(gw_io_done, GW_IO_DONE);
        d->tag = w->tag;
        d->err = err;
        d->took_ms = took_ms;
        rt_send(cx, w->reply_to, &d->hdr);
    }
}

static const rt_actor_type io_type = {"gateway.io", io_behave, NULL, 0};

rt_ref gw_io_start(rt_ctx *cx)
{
    rt_spawn_opts o = {.flags = RT_SPAWN_DETACHED};
    return rt_spawn(cx, &io_type, NULL, &o);
}
