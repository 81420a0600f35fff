/*
 * dc_int.h — internals of the Discord adapter shared within adapters/discord:
 *
 *   dc_fmt.c    pure helpers: payloads, close codes, rate limits (discord.h)
 *   dc_def.c    discord_opts_from_config, the gw_adapter_def
 *   dc_actor.c  the actor: the Gateway session, inbound messages, outbound posts, files,
 *               typing, REST with rate limits, discord_start
 *   (file I/O: the detached helper of adapters/kit/ak_io.h)
 *
 * Invariants:
 *   1. Everything in the adapter belongs to the actor and is touched only from its behaviour.
 *   2. A request's ctx (a job or an outbound item) lives until every request pointing at it
 *      has completed (jobs count pending requests; the outbound head is released only after
 *      its request completed).
 *   3. Messages from an older WebSocket, a re-armed timer or a forgotten request are
 *      recognised (generation, timer sequence, unknown tag) and ignored.
 *
 * Threads: the actor runs on workers; the kit's file helper (ak_io) has its own thread.
 */
#ifndef DC_INT_H
#define DC_INT_H

#include "discord.h"
#include "ak_io.h"
#include "ak_timer.h"
#include "gw.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DC_LOG "discord"

/* Internal messages (RT_MSG_MODULE_ADAPTER 0x0D00..0x0DFF belong to Discord). */
enum {
    DC_MSG_START = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0D01), /* rt_msg */
    DC_MSG_DRAIN = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0D04), /* rt_msg: discord_drain */
};

#endif /* DC_INT_H */
