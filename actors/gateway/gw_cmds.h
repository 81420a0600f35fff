/*
 * gw_cmds — the state the chat commands kept in their own files share (gw_cmd_session.c,
 * gw_cmd_info.c, gw_cmd_btw.c): the store requests waiting for their answer and the /btw
 * in flight. One per chat actor, touched only on its worker.
 */
#ifndef GW_CMDS_H
#define GW_CMDS_H

#include "gw_int.h"

#include <stdbool.h>
#include <stdint.h>

enum gw_cmd_req {
    GW_REQ_TITLE_GET = 1,
    GW_REQ_TITLE_SET,
    GW_REQ_RESUME_LIST,
    GW_REQ_RESUME,
    GW_REQ_BRANCH,
    GW_REQ_INSIGHTS,
};

typedef struct gw_cmd_pend {
    uint64_t tag;
    int kind; /* gw_cmd_req */
    gw_target to;
    char *arg; /* the name asked for, or NULL */
    int64_t n; /* /insights: days */
} gw_cmd_pend;

struct gw_cmds {
    uint64_t next_tag;
    gw_cmd_pend *pend;
    size_t npend, cap;
    /* /btw */
    rt_ref btw;       /* the side question's agent, 0 when none runs */
    uint64_t btw_mon; /* its monitor */
    gw_target btw_to; /* where its answer goes */
    char *btw_id;     /* its throw-away session id */
    bool btw_answered;
};

/* The state, created on first use. */
gw_cmds *gw_cmds_get(gw_cmds **st);
/* Remember a store request to answer to (copied), returning its tag. */
uint64_t gw_cmds_pend(gw_cmds *s, int kind, const gw_target *to, const char *arg, int64_t n);

/* gw_cmd_info.c: the answer to an /insights request. */
struct st_msg_result;
void gw_cmd_insights_answer(rt_ctx *cx, gw_chat *c, const gw_cmd_pend *p,
                            const struct st_msg_result *r);

/* gw_cmd_info.c: `/<name> [args]` that is no command: when a skill of that name is
 * installed, its instructions (agent-core §8.3) become the user's message, else the
 * unknown-command notice. Answers later, from a job of its own. */
void gw_cmds_skill(rt_ctx *cx, gw_chat *c, const gw_msg_event *ev, const char *name,
                   const char *args);

/*
 * gw_media.c: /stop while attachments are being described (a voice note transcribed, an
 * image described): every event of q is dropped unanswered — those whose jobs still run
 * (the jobs are stopped; an answer already sent matches nothing) and the ones waiting
 * behind them — each with its journal row removed (store, 0: none) and a GW_OUT_TURN_END
 * (cancelled, session_id) to adapter (0: none). Returns how many were dropped; 0 and
 * nothing changed when no job runs. The chat's worker.
 */
size_t gw_mediaq_cancel(rt_ctx *cx, gw_mediaq *q, rt_ref store, rt_ref adapter,
                        const char *session_id);

/* gw_cmd_info.c: /help — the command list, then the installed skills as `/<skill-name>`
 * commands (the original's "⚡ **Skill Commands** (N active):", at most 10, then "... and N
 * more."). Answers later, from a job of its own (it reads the skills directory). */
void gw_cmds_help_reply(rt_ctx *cx, gw_chat *c, const gw_target *to);

/*
 * gw_cmd_info.c: the router's /status reply (gateway.md §4): head (every line up to and with
 * "**Session ID:** …\n"), then "**Title:** <title>\n" when the session has one in state.db,
 * then tail, as a notice to adapter for `to` (copied). The title is asked of the store writer
 * (0: none, no title line) by a one-shot actor, so the caller never waits; without an answer
 * within a few seconds the reply goes without the title. Any actor's thread.
 */
void gw_status_reply(rt_ctx *cx, rt_ref store, rt_ref adapter, const gw_target *to,
                     const char *session_id, const char *head, const char *tail);

#endif /* GW_CMDS_H */
