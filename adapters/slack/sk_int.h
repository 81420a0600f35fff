/*
 * sk_int.h — internals of the Slack adapter shared within adapters/slack:
 *
 *   sk_fmt.c     pure helpers: mrkdwn, frame and history-message parsing, ts order, the
 *                state file (slack.h)
 *   sk_def.c     slack_opts_from_config, the gw_adapter_def
 *   sk_actor.c   the actor: connecting, Socket Mode, inbound events, catching up, outbound posts
 * and files, Web API requests with per-method rate limits, slack_start (file I/O: the detached
 * helper of adapters/kit/ak_io.h)
 *
 * Invariants:
 *   1. Everything in sk_adapter belongs to the actor and is touched only from its behaviour.
 *   2. A request's ctx (a job or an outbound item) lives until every request pointing at it
 *      has completed: jobs count their pending requests, the outbound queue releases its
 *      head only after the head's last request completed.
 *   3. Messages from an older WebSocket, a re-armed timer or a forgotten request are
 *      recognised (generation, timer sequence, unknown tag) and ignored.
 *
 * Threads: the actor runs on workers; the kit's file helper (ak_io) has its own thread (it blocks
 * on disk).
 */
#ifndef SK_INT_H
#define SK_INT_H

#include "ak_io.h"
#include "ak_timer.h"
#include "gw.h"
#include "rt_http.h"
#include "rt_map.h"
#include "slack.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SK_LOG          "slack"
#define SK_API_MAX_BODY (4u << 20)
#define SK_WS_MAX       (4u << 20)
#define SK_JOBS_MAX     256
#define SK_OUT_MAX      4096
#define SK_SEEN_MAX     2048 /* recent event keys and envelope ids remembered */
#define SK_THREADS_MAX  4096 /* threads the bot is in */
#define SK_REACTED_MAX  256
#define SK_USERS_MAX    512 /* display names remembered */
#define SK_RL_MAX       32  /* methods with a rate limit in force */
#define SK_RL_TRIES     8   /* 429s one request puts up with */
#define SK_OUT_TRIES    5   /* transient failures one post puts up with */
#define SK_POST_LIMIT   40000

/* Internal messages (RT_MSG_MODULE_ADAPTER 0x0C00..0x0CFF belong to Slack). */
enum {
    SK_MSG_START = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0C01), /* rt_msg */
    SK_MSG_DRAIN = RT_MSG_TYPE(RT_MSG_MODULE_ADAPTER, 0x0C04), /* rt_msg: slack_drain */
};

#endif /* SK_INT_H */
