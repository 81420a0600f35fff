/*
 * ak_io — the file helper every adapter needs: a detached actor (its own thread, since
 * writing, fsyncing and reading files block) that writes state files and downloaded
 * attachments and reads files to upload, answering each request with AK_MSG_IO_DONE and the
 * request's tag. Requests are served in the order sent.
 *
 * The helper is linked to the adapter that started it but traps its exit: when the adapter
 * ends (also when it is stopped), what is queued is still done, so a final state write is
 * never cut; then the helper ends.
 *
 * Threads: the functions from the adapter's behaviour (any actor).
 */
#ifndef AK_IO_H
#define AK_IO_H

#include "rt_actor.h"

#include <stddef.h>
#include <stdint.h>

/* adapters/kit's range of RT_MSG_MODULE_ADAPTER numbers: 0x0F00-0x0FFF. */
enum {
    AK_MSG_IO = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0F01),      /* ak_io_msg (internal) */
    AK_MSG_IO_DONE = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0F02), /* ak_io_done */
};

typedef struct ak_io_done {
    rt_msg hdr;
    uint64_t tag;
    int err;    /* 0 or -errno (-ENOENT, -E2BIG, …) */
    char *data; /* READ: owned, stealable */
    size_t len;
} ak_io_done;

/* Start the helper, linked to the calling actor. who ("Slack") prefixes its log lines. */
rt_ref ak_io_start(rt_ctx *cx, const char *who);
/* Write data (taken, may be NULL for empty) to path atomically with mode; parents are made
 * 0700. reply_to 0: no answer (a failure is still logged). */
void ak_io_write(rt_ctx *cx, rt_ref io, const char *path, char *data, size_t len, int mode,
                 rt_ref reply_to, uint64_t tag);
/* Read path whole (at most max bytes: -E2BIG beyond). */
void ak_io_read(rt_ctx *cx, rt_ref io, const char *path, size_t max, rt_ref reply_to, uint64_t tag);
/* End the helper once what is queued before this is done. */
void ak_io_quit(rt_ctx *cx, rt_ref io);

#endif /* AK_IO_H */
