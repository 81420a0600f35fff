/*
 * ak_io — see ak_io.h.
 */
#include "ak_io.h"

#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>

enum ak_io_op { AK_IO_WRITE = 1, AK_IO_READ, AK_IO_QUIT };

typedef struct ak_io_msg {
    rt_msg hdr;
    int op;
    char *path; /* owned */
    char *data; /* WRITE: owned */
    size_t len;
    size_t max; /* READ */
    int mode;   /* WRITE */
    rt_ref reply_to;
    uint64_t tag;
} ak_io_msg;

typedef struct ak_io_state {
    char who[32];
} ak_io_state;

static void drop_io(rt_msg *m)
{
    ak_io_msg *w = (ak_io_msg *)m;
    rt_free(w->path);
    rt_free(w->data);
}

static void drop_done(rt_msg *m)
{
    rt_free(((ak_io_done *)m)->data);
}

static ak_io_msg *io_new(int op, const char *path, rt_ref reply_to, uint64_t tag)
{
    ak_io_msg *w = RT_MSG_NEW(ak_io_msg, AK_MSG_IO);
    w->op = op;
    w->path = path ? rt_xstrdup(path) : NULL;
    w->reply_to = reply_to;
    w->tag = tag;
    w->hdr.drop = drop_io;
    return w;
}

void ak_io_write(rt_ctx *cx, rt_ref io, const char *path, char *data, size_t len, int mode,
                 rt_ref reply_to, uint64_t tag)
{
    ak_io_msg *w = io_new(AK_IO_WRITE, path, reply_to, tag);
    w->data = data;
    w->len = len;
    w->mode = mode;
    rt_send(cx, io, &w->hdr);
}

void ak_io_read(rt_ctx *cx, rt_ref io, const char *path, size_t max, rt_ref reply_to, uint64_t tag)
{
    ak_io_msg *w = io_new(AK_IO_READ, path, reply_to, tag);
    w->max = max;
    rt_send(cx, io, &w->hdr);
}

void ak_io_quit(rt_ctx *cx, rt_ref io)
{
    rt_send(cx, io, &io_new(AK_IO_QUIT, NULL, 0, 0)->hdr);
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
        (void)mkdir(dir, 0700); /* EEXIST is the usual answer */
        *p = '/';
    }
    (void)mkdir(dir, 0700);
    rt_free(copy);
}

static void io_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    const ak_io_state *s = state;
    if (m->type == RT_MSG_EXIT) { /* the adapter ended: finish the queue, then go */
        ak_io_quit(cx, rt_self(cx));
        return;
    }
    if (m->type != AK_MSG_IO)
        return;
    ak_io_msg *w = (ak_io_msg *)m;
    if (w->op == AK_IO_QUIT) {
        rt_exit(cx, RT_EXIT_NORMAL);
        return;
    }
    ak_io_done *d = RT_MSG_NEW(ak_io_done, AK_MSG_IO_DONE);
    d->tag = w->tag;
    d->hdr.drop = drop_done;
    if (w->op == AK_IO_WRITE) {
        make_parent(w->path);
        d->err = hm_write_atomic(w->path, w->data ? w->data : "", w->len, (mode_t)w->mode);
        if (d->err)
            RT_LOG_LIMITED(RT_LOG_WARN, "adapter", 10000, "%s: could not write %s: %s", s->who,
                           w->path, rt_strerror(d->err));
    } else {
        d->err = hm_read_file(w->path, w->max, &d->data, &d->len);
    }
    if (w->reply_to)
        rt_send(cx, w->reply_to, &d->hdr);
    else
        rt_msg_free(&d->hdr);
}

static const rt_actor_type io_type = {"adapter.io", io_behave, NULL, sizeof(ak_io_state)};

rt_ref ak_io_start(rt_ctx *cx, const char *who)
{
    ak_io_state s;
    rt_strlcpy(s.who, who ? who : "adapter", sizeof(s.who));
    /* linked, but trapping the adapter's exit: a stop must not cut the final state write
     * (RT_EXIT_STOPPED is abnormal for links); what is queued is finished first */
    rt_spawn_opts o = {.flags = RT_SPAWN_DETACHED | RT_SPAWN_LINK | RT_SPAWN_TRAP_EXIT};
    return rt_spawn(cx, &io_type, &s, &o);
}
