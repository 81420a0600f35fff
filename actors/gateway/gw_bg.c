/*
 * gw_bg — /background <prompt> (gateway.md §4): the prompt runs in a fresh session of its own
 * while the chat goes on, and its answer is sent to the chat when it is done.
 *
 * One small actor per task owns the task's session (spawned through the gateway's spawn
 * callback, so it is persisted like any conversation, under its own session key), is the
 * sink of its one turn, and ends with it. Nobody is there to answer questions: approvals are
 * denied and clarify questions answered "no answer", as for scheduled jobs.
 *
 * Threads: gw_bg_start from a behaviour (the chat actor's); the task actor on the pool.
 */
#include "gw_int.h"

#include "ag_session.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"
#include "tool.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { BG_GO = RT_MSG_TYPE(RT_MSG_MODULE_GW, 51) };

typedef struct bg_task {
    gw_shared *sh;
    rt_ref adapter;
    gw_caps caps;
    gw_target to;
    rt_ref session;
    uint64_t mon;
    char *prompt;
    char id[32];
} bg_task;

static void finish(rt_ctx *cx, bg_task *t, const char *text, int kind)
{
    gw_say(cx, t->adapter, &t->caps, &t->to, text, kind);
    if (t->session) {
        rt_demonitor(cx, t->session, t->mon);
        rt_stop(cx, t->session, RT_EXIT_NORMAL);
        t->session = 0;
    }
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void on_done(rt_ctx *cx, bg_task *t, const ag_msg_done *d)
{
    char *text;
    int kind = GW_TEXT_REPLY;
    if (d->text && !d->err) {
        char *pv = gw_preview(t->prompt, 60);
        text = rt_xasprintf("\xe2\x9c\x85 Background task complete\nPrompt: \"%s\"\n\n%s", pv,
                            d->text);
        rt_free(pv);
    } else {
        kind = GW_TEXT_ERROR;
        text = rt_xasprintf("\xe2\x9d\x8c Background task %s failed: %s", t->id,
                            d->errmsg        ? d->errmsg
                            : d->interrupted ? "it was interrupted"
                                             : "no answer");
    }
    finish(cx, t, text, kind);
    rt_free(text);
}

static void bg_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    bg_task *t = state;
    switch (m->type) {
    case BG_GO:
        t->mon = rt_monitor(cx, t->session);
        rt_send(cx, t->session, ag_input_new(t->prompt, rt_self(cx), 1));
        break;
    case AG_MSG_ASK: {
        const ag_msg_ask *a = (const ag_msg_ask *)m;
        rt_send(cx, a->from,
                ag_answer_new(a->ask_id,
                              a->kind == TOOL_ASK_APPROVAL ? TOOL_ANSWER_DENY : TOOL_ANSWER_TIMEOUT,
                              NULL));
        break;
    }
    case AG_MSG_DONE: on_done(cx, t, (const ag_msg_done *)m); break;
    case RT_MSG_DOWN: {
        t->session = 0; /* already gone */
        char *text =
            rt_xasprintf("\xe2\x9d\x8c Background task %s failed: the agent stopped", t->id);
        finish(cx, t, text, GW_TEXT_ERROR);
        rt_free(text);
        break;
    }
    case RT_MSG_STOP:
        if (t->session) {
            rt_demonitor(cx, t->session, t->mon);
            rt_stop(cx, t->session, RT_EXIT_NORMAL);
            t->session = 0;
        }
        break;
    default: break; /* deltas, progress, status: only the answer is sent */
    }
}

static void bg_fini(void *state)
{
    bg_task *t = state;
    gw_target_fini(&t->to);
    rt_free(t->prompt);
    gw_shared_unref(t->sh);
}

static const rt_actor_type bg_type = {"gateway.background", bg_behave, bg_fini, sizeof(bg_task)};

int gw_bg_start(rt_ctx *cx, gw_shared *sh, rt_ref adapter, const gw_caps *caps, const gw_target *to,
                const gw_source *origin, const char *prompt, char id[32])
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint32_t r =
        (uint32_t)rt_hash_u64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ adapter);
    snprintf(id, 32, "bg_%02d%02d%02d_%06x", tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100,
             (unsigned)(r & 0xffffff));
    char *sid = ag_new_session_id();
    char *key = rt_xasprintf("agent:main:%s:background:%s",
                             origin->platform ? origin->platform : "unknown", id);
    gw_session_req req = {
        .session_id = sid,
        .session_key = key,
        .platform = origin->platform,
        .user_id = origin->user_id,
        .resume = false,
        .stream = false,
    };
    rt_ref session = sh->spawn(cx, &req, sh->spawn_arg);
    rt_free(key);
    rt_free(sid);
    if (!session)
        return -EAGAIN;
    bg_task init = {.sh = gw_shared_ref(sh),
                    .adapter = adapter,
                    .caps = *caps,
                    .session = session,
                    .prompt = rt_xstrdup(prompt)};
    gw_target_copy(&init.to, to);
    rt_strlcpy(init.id, id, sizeof(init.id));
    rt_ref ref = rt_spawn(cx, &bg_type, &init, NULL);
    rt_send(cx, ref, rt_msg_new(BG_GO, sizeof(rt_msg)));
    RT_INFO("gateway", "background task %s started (session of its own)", id);
    return 0;
}
