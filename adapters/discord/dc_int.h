/*
 * dc_int.h — internals of the Discord adapter shared within adapters/discord:
 *
 *   dc_fmt.c    pure helpers: payloads, close codes, rate limits (discord.h)
 *   dc_def.c    discord_opts_from_config, the gw_adapter_def
 *   dc_actor.c  the actor: the Gateway session, inbound messages, outbound posts, files,
 *               typing, REST with rate limits, discord_start
 *   dc_io.c     the detached helper actor doing file I/O
 *
 * Invariants:
 *   1. Everything in the adapter belongs to the actor and is touched only from its behaviour.
 *   2. A request's ctx (a job or an outbound item) lives until every request pointing at it
 *      has completed (jobs count pending requests; the outbound head is released only after
 *      its request completed).
 *   3. Messages from an older WebSocket, a re-armed timer or a forgotten request are
 *      recognised (generation, timer sequence, unknown tag) and ignored.
 *
 * Threads: the actor runs on workers; dc_io's actor has its own thread.
 */
#ifndef DC_INT_H
#define DC_INT_H

#include "discord.h"
#include "gw.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DC_LOG "discord"

/* Internal messages (RT_MSG_MODULE_ADAPTER 0x0D00..0x0DFF belong to Discord). */
enum {
    DC_MSG_START = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0D01),   /* rt_msg */
    DC_MSG_IO = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0D02),      /* dc_io_msg */
    DC_MSG_IO_DONE = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0D03), /* dc_io_done */
    DC_MSG_DRAIN = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0D04),   /* rt_msg: discord_drain */
};

enum dc_io_op { DC_IO_WRITE = 1, DC_IO_READ, DC_IO_QUIT };

typedef struct dc_io_msg {
    rt_msg hdr;
    int op;
    char *path; /* owned */
    char *data; /* WRITE: owned */
    size_t len;
    size_t max; /* READ: largest file accepted */
    rt_ref reply_to;
    uint64_t tag;
} dc_io_msg;

typedef struct dc_io_done {
    rt_msg hdr;
    uint64_t tag;
    int err;    /* 0 or -errno */
    char *data; /* READ: owned, stealable */
    size_t len;
} dc_io_done;

rt_ref dc__io_start(rt_ctx *cx);
/* Write data (taken) to path, parents made 0700, file 0600. */
void dc__io_write(rt_ctx *cx, rt_ref io, const char *path, char *data, size_t len, rt_ref reply_to,
                  uint64_t tag);
void dc__io_read(rt_ctx *cx, rt_ref io, const char *path, size_t max, rt_ref reply_to,
                 uint64_t tag);
void dc__io_quit(rt_ctx *cx, rt_ref io);

#endif /* DC_INT_H */
