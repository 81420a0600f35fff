/*
 * gw_cmd_rollback — /rollback for one chat (see the header). The chat spawns a waiter: a
 * one-shot actor that sends the request to the checkpoint service, relays its answer to the
 * chat's platform and ends. The service does the git work and the file access, so neither
 * the chat nor the waiter ever blocks.
 *
 * Threads: gw_cmd_rollback on the chat's worker; the waiter on any worker.
 */
#include "gw_cmd_rollback.h"

#include "ckpt.h"
#include "hm_config.h"
#include "rt_alloc.h"
#include "rt_sched.h"

#include <stdlib.h>
#include <string.h>

enum { GW_ROLLBACK_GO = RT_MSG_TYPE(RT_MSG_MODULE_GW, 140) }; /* rt_msg: start */

typedef struct waiter {
    rt_ref adapter;
    gw_caps caps;
    gw_target to;
    char *home, *dir, *target; /* the request's (target NULL: the list) */
    bool asked;
} waiter;

static void waiter_end(rt_ctx *cx)
{
    rt_busy_leave(rt_ctx_runtime(cx));
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void waiter_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    waiter *w = state;
    if (m->type == GW_ROLLBACK_GO && !w->asked) {
        ckpt_msg_req *q =
            ckpt_req_new(w->target ? CKPT_OP_ROLLBACK : CKPT_OP_LIST, w->home, w->dir);
        q->target = w->target;
        w->target = NULL;
        q->reply_to = rt_self(cx);
        w->asked = true;
        if (!ckpt_request_send(cx, q)) {
            gw_say(cx, w->adapter, &w->caps, &w->to,
                   "\xe2\x9d\x8c The checkpoint service is not running.", GW_TEXT_NOTICE);
            waiter_end(cx);
        }
    } else if (m->type == CKPT_MSG_DONE && w->asked) {
        const ckpt_msg_done *d = (const ckpt_msg_done *)m;
        gw_say(cx, w->adapter, &w->caps, &w->to, d->text ? d->text : "Done.", GW_TEXT_NOTICE);
        waiter_end(cx);
    }
}

static void waiter_fini(void *state)
{
    waiter *w = state;
    gw_target_fini(&w->to);
    rt_free(w->home);
    rt_free(w->dir);
    rt_free(w->target);
    rt_free(w);
}

static const rt_actor_type waiter_type = {"gw.rollback", waiter_behave, waiter_fini, 0};

/* The gateway's working directory: where its terminal commands run. */
static const char *work_dir(const gw_shared *sh)
{
    const char *d = getenv("TERMINAL_CWD");
    if (!d || !*d)
        d = sh->cfg ? hm_config_getenv(sh->cfg, "MESSAGING_CWD", NULL) : NULL;
    if (!d || !*d)
        d = getenv("HOME");
    return d && *d ? d : "/";
}

void gw_cmd_rollback(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *args)
{
    gw_shared *sh = gw_chat_shared(c);
    while (args && (*args == ' ' || *args == '\t'))
        args++;
    size_t n = args ? strlen(args) : 0;
    while (n && (args[n - 1] == ' ' || args[n - 1] == '\t' || args[n - 1] == '\n'))
        n--;
    waiter *w = rt_xcalloc(1, sizeof(*w));
    w->adapter = gw_chat_adapter(c);
    w->caps = *gw_chat_caps(c);
    gw_target_copy(&w->to, to);
    w->home = rt_xstrdup(sh->home ? sh->home : ".");
    w->dir = rt_xstrdup(work_dir(sh));
    w->target = n ? rt_xasprintf("%.*s", (int)n, args) : NULL;
    rt_ref ref = rt_spawn(cx, &waiter_type, w, NULL);
    if (!ref)
        return;                        /* w was freed by waiter_fini */
    rt_busy_enter(rt_ctx_runtime(cx)); /* tests wait for the answer with rt_wait_quiescent */
    rt_send(cx, ref, rt_msg_new(GW_ROLLBACK_GO, sizeof(rt_msg)));
}
