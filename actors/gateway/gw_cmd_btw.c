/*
 * gw_cmd_btw — /btw <question>: a side question answered over a snapshot of the chat's
 * conversation, beside it, without touching it (gateway.md §4; the original's
 * _handle_btw_command / _run_btw_task).
 *
 * The chat acknowledges at once ("💬 /btw: "<60 chars>"\nReply will appear here shortly.")
 * and spawns a runner actor, which:
 *   1. asks the store for the conversation so far (ST_SOP_TRANSCRIPT: user and assistant
 *      texts);
 *   2. spawns an agent session through the host (gw_shared.spawn) with that snapshot as its
 *      history and a throw-away id, and sends it the question prefixed with the original's
 *      instruction ("[Ephemeral /btw side question. … No tools available. …]"); any approval
 *      or question the agent asks is denied / left unanswered;
 *   3. sends '💬 /btw: "<preview>"\n\n<answer>' (or "❌ /btw failed: <reason>") to the chat
 *      that asked, stops the agent and deletes its throw-away session from state.db
 *      (ST_SOP_DELETE), so nothing of it is kept;
 *   4. tells the chat it is done (GW_BTW_DONE), which allows the next /btw.
 * One /btw runs per chat at a time ("A /btw is already running for this chat. Wait for it to
 * finish."). The runner gives up after BTW_TIMEOUT_MS.
 *
 * The side agent is spawned with gw_session_req.side: the host gives it no tools and no store,
 * so it cannot act and nothing of it reaches state.db (step 3's delete is then a no-op kept
 * for a proxy-mode host, whose remote session does persist).
 *
 * Threads: the chat's worker (gw_cmd_btw*) and the runner, a normal actor.
 */
#include "gw_cmds.h"

#include "ag_session.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_timer.h"
#include "rt_util.h"
#include "st_read.h"
#include "st_titles.h"
#include "tool.h"

#include <errno.h>
#include <string.h>

#define BTW_TIMEOUT_MS (5 * 60 * 1000)
#define PREVIEW_CHARS  60
#define TAG_SNAPSHOT   1
#define TAG_TIMEOUT    2

enum { GW_BTW_DONE = RT_MSG_TYPE(RT_MSG_MODULE_GW, 110) }; /* rt_msg: runner -> chat */

static const char PROMPT[] = "[Ephemeral /btw side question. Answer using the conversation "
                             "context. No tools available. Be direct and concise.]\n\n";

typedef struct btw_runner {
    gw_shared *sh;
    rt_ref chat;
    rt_ref adapter;
    gw_caps caps;
    gw_target to;
    gw_source origin;
    char *question;
    char *from_session; /* the chat's session: the snapshot's source */
    char *id;           /* the throw-away session */
    rt_ref agent;
    uint64_t agent_mon;
    uint64_t timer; /* the give-up timeout */
    bool finished;
} btw_runner;

/* ================================================================ the runner */

static void runner_say(rt_ctx *cx, btw_runner *r, const char *text)
{
    if (r->sh->outbox && !r->caps.api && r->origin.platform && r->to.chat_id)
        gw_outbox_say(cx, r->sh->outbox, r->origin.platform, &r->caps, &r->to, text, GW_TEXT_REPLY);
    else
        gw_say(cx, r->adapter, &r->caps, &r->to, text, GW_TEXT_REPLY);
}

/* Send the outcome (answer or failure), clean up, tell the chat, end. */
static void finish(rt_ctx *cx, btw_runner *r, const char *answer, const char *failure)
{
    if (r->finished)
        return;
    r->finished = true;
    char *pv = gw_preview(r->question, PREVIEW_CHARS);
    char *text = failure ? rt_xasprintf("\xe2\x9d\x8c /btw failed: %s", failure)
                         : rt_xasprintf("\xf0\x9f\x92\xac /btw: \"%s\"\n\n%s", pv,
                                        answer && *answer ? answer : "(No response generated)");
    runner_say(cx, r, text);
    rt_free(text);
    rt_free(pv);
    if (r->agent) {
        rt_demonitor(cx, r->agent, r->agent_mon);
        rt_stop(cx, r->agent, RT_EXIT_NORMAL);
        r->agent = 0;
    }
    if (r->timer)
        (void)rt_timer_cancel(cx, r->timer);
    if (r->sh->store && r->id) /* after everything the agent wrote: nothing of it stays */
        rt_send(cx, r->sh->store, &st_sop_new(ST_SOP_DELETE, r->id, 0, 0)->hdr);
    rt_send(cx, r->chat, rt_msg_new(GW_BTW_DONE, sizeof(rt_msg)));
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void on_snapshot(rt_ctx *cx, btw_runner *r, st_msg_result *res)
{
    if (res->err) {
        finish(cx, r, NULL, res->errmsg[0] ? res->errmsg : "the conversation could not be read");
        return;
    }
    char *fresh = gw_new_session_id();
    rt_free(r->id);
    r->id = rt_xasprintf("btw_%s", fresh);
    rt_free(fresh);
    gw_session_req req = {
        .session_id = r->id,
        .session_key = r->id,
        .platform = r->origin.platform,
        .user_id = r->origin.user_id,
        .history = res->json,
        .resume = false,
        .stream = false,
        .side = true,
    };
    r->agent = r->sh->spawn(cx, &req, r->sh->spawn_arg);
    if (!r->agent) {
        finish(cx, r, NULL, "no agent could be started");
        return;
    }
    r->agent_mon = rt_monitor(cx, r->agent);
    r->timer = rt_send_after(cx, rt_self(cx), rt_timeout_new(TAG_TIMEOUT), BTW_TIMEOUT_MS);
    char *q = rt_xasprintf("%s%s", PROMPT, r->question);
    rt_send(cx, r->agent, ag_input_new(q, rt_self(cx), 1));
    rt_free(q);
}

static void runner_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    btw_runner *r = *(btw_runner **)state;
    switch (m->type) {
    case ST_MSG_RESULT:
        if (((st_msg_result *)m)->tag == TAG_SNAPSHOT && !r->agent)
            on_snapshot(cx, r, (st_msg_result *)m);
        break;
    case AG_MSG_DONE: {
        ag_msg_done *d = (ag_msg_done *)m;
        if (d->text)
            finish(cx, r, d->text, NULL);
        else
            finish(cx, r, NULL,
                   d->errmsg ? d->errmsg : (d->err ? rt_strerror(d->err) : "no answer"));
        break;
    }
    case AG_MSG_ASK: /* nobody is asked anything on behalf of a side question */
        rt_send(cx, r->agent, ag_answer_new(((ag_msg_ask *)m)->ask_id, TOOL_ANSWER_DENY, NULL));
        break;
    case RT_MSG_DOWN:
        if (((rt_msg_down *)m)->ref == r->agent) {
            r->agent = 0;
            finish(cx, r, NULL, "the agent stopped unexpectedly");
        }
        break;
    case RT_MSG_TIMEOUT:
        if (((rt_msg_timeout *)m)->tag == TAG_TIMEOUT)
            finish(cx, r, NULL, "no answer within 5 minutes");
        break;
    case RT_MSG_STOP:
        if (r->agent) {
            rt_demonitor(cx, r->agent, r->agent_mon);
            rt_stop(cx, r->agent, RT_EXIT_NORMAL);
            r->agent = 0;
        }
        break;
    default: break;
    }
}

static void runner_fini(void *state)
{
    btw_runner *r = *(btw_runner **)state;
    gw_shared_unref(r->sh);
    gw_target_fini(&r->to);
    gw_source_fini(&r->origin);
    rt_free(r->question);
    rt_free(r->from_session);
    rt_free(r->id);
    rt_free(r);
}

static const rt_actor_type runner_type = {"btw", runner_behave, runner_fini, sizeof(btw_runner *)};

/* ================================================================ the chat side */

void gw_cmd_btw(rt_ctx *cx, gw_chat *c, gw_cmds **st, const gw_msg_event *ev, const char *args)
{
    const gw_target *to = &ev->reply;
    if (!*args) {
        gw_chat_say(cx, c, to,
                    "Usage: /btw <question>\nExample: /btw what module owns session title "
                    "sanitization?\n\nAnswers using session context. No tools, not persisted.",
                    GW_TEXT_NOTICE);
        return;
    }
    gw_cmds *s = gw_cmds_get(st);
    if (s->btw) {
        gw_chat_say(cx, c, to, "A /btw is already running for this chat. Wait for it to finish.",
                    GW_TEXT_NOTICE);
        return;
    }
    gw_shared *sh = gw_chat_shared(c);
    if (!sh->store) {
        gw_chat_say(cx, c, to, "Session database not available.", GW_TEXT_NOTICE);
        return;
    }
    btw_runner *r = rt_xcalloc(1, sizeof(*r));
    r->sh = gw_shared_ref(sh);
    r->chat = rt_self(cx);
    r->adapter = ev->adapter ? ev->adapter : gw_chat_adapter(c);
    r->caps = *gw_chat_caps(c);
    gw_target_copy(&r->to, to);
    gw_source_copy(&r->origin, gw_chat_origin(c));
    r->question = rt_xstrdup(args);
    r->from_session = rt_xstrdup(gw_chat_session_id(c));
    rt_ref ref = rt_spawn(cx, &runner_type, &r, NULL);
    if (!ref) {
        gw_chat_say(cx, c, to, "Sorry, I could not start the side question.", GW_TEXT_ERROR);
        return;
    }
    s->btw = ref;
    /* the snapshot: everything the chat's session wrote before this command is in it */
    rt_send(cx, sh->store,
            &st_sop_new(ST_SOP_TRANSCRIPT, gw_chat_session_id(c), ref, TAG_SNAPSHOT)->hdr);
    char *pv = gw_preview(args, PREVIEW_CHARS);
    char *ack = rt_xasprintf("\xf0\x9f\x92\xac /btw: \"%s\"\nReply will appear here shortly.", pv);
    gw_chat_say(cx, c, to, ack, GW_TEXT_NOTICE);
    rt_free(ack);
    rt_free(pv);
}

bool gw_cmd_btw_on_msg(rt_ctx *cx, gw_chat *c, gw_cmds **st, rt_msg *m)
{
    (void)cx, (void)c;
    if (m->type != GW_BTW_DONE || !*st)
        return false;
    (*st)->btw = 0;
    return true;
}
