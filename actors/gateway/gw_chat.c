/*
 * gw_chat — one conversation (one session key): the actor between the router and the agent.
 *
 * It owns the conversation's agent session (spawned through the host's gw_spawn_fn, linked
 * as a child so interrupts flow down) and does what gateway.md §1.6-§1.8, §4, §5.2 and §7 ask
 * of the gateway for one chat:
 *
 *   - chat commands (/new /stop /model /personality /retry /undo /queue /approve /deny
 *     /sethome /usage /yolo /help …); /stop and /new interrupt at once (the router sends them
 *     on the urgent lane, so they overtake queued messages);
 *   - a message while a turn runs goes to the session, which interrupts the turn and answers
 *     everything that arrived in one follow-up (nothing is dropped); the user gets
 *     "⚡ Interrupting current task…" at most once per 30 s. Programs (caps.api) are served in
 *     order instead: one request at a time, never interrupted by the next;
 *   - dangerous-command approvals: the question goes to the chat, answered by /approve,
 *     /deny or a bare "yes"/"y"/"no"/"n" (the users' habit), or it times out;
 *   - tool progress lines (off / new / all / verbose), batched into one message per 1.5 s;
 *   - the reply: chunked to the platform's limit, to the message it answers, typing on while
 *     a turn runs, a turn-end notice per answered message.
 *
 * After chat_idle_ms without a turn the actor stops its session and ends; the router spawns
 * it again (resuming from state.db) on the next message.
 *
 * Threads: a normal actor; everything here runs on workers and never blocks.
 */
#include "gw_cmds.h"
#include "gw_int.h"

#include "ag_session.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_timer.h"
#include "rt_util.h"
#include "st_store.h"
#include "tool.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ACK_INTERVAL_NS    (30LL * 1000000000LL) /* "Interrupting…" at most every 30 s */
#define PROGRESS_BATCH_MS  1500                  /* one progress message per 1.5 s */
#define CMD_PREVIEW        40
#define TAG_PROGRESS_FLUSH 1
#define TAG_IDLE           2

typedef struct out_target {
    uint64_t input_id;
    gw_target t;
} out_target;

typedef struct pend_ask {
    uint64_t ask_id;
    int kind;
    int64_t deadline_ns;
} pend_ask;

typedef struct gw_chat {
    gw_shared *sh;
    char *key;
    gw_source origin;
    rt_ref adapter;
    gw_caps caps;
    char *session_id;
    bool existing;     /* state.db may hold the session: resume it */
    char *context;     /* the session context block */
    char *home_hint;   /* sent once with the first turn of a fresh session */
    char *personality; /* /personality overlay for this session, or NULL */
    char *ephemeral;   /* the API client's system prompt of the last request, or NULL */
    char *model;       /* /model override, or NULL */
    int progress_mode;
    bool yolo;
    bool draining;
    bool disk_wait; /* the running turn said it waits for disk space (DISK_WAIT_NOTICE) */
    bool parked;    /* draining: that turn does not hold the shutdown up (on_drain) */

    rt_ref session;
    uint64_t session_mon;

    uint64_t next_input; /* inputs sent to the session */
    uint64_t answered;   /* the last input a DONE answered */
    out_target *targets; /* where the answer to each unanswered input goes */
    size_t ntargets, targets_cap;
    int64_t turn_start_ns;
    int64_t last_ack_ns;
    char *running_tool;
    bool typing;

    gw_msg_event **apiq; /* API requests waiting for the running one */
    size_t napiq, apiq_cap;

    /* progress */
    rt_buf plines; /* lines not sent yet */
    char *last_tool;
    char *last_line;
    int repeat;
    bool ptimer_on;

    pend_ask *asks; /* approvals and questions waiting for the user, oldest first */
    size_t nasks, asks_cap;

    uint64_t cancelled[16]; /* requests withdrawn before their event arrived (a ring) */
    unsigned ncancelled;

    uint64_t ctl_tag; /* the control request in flight (undo/retry/usage) */
    gw_target ctl_to;

    uint64_t stop_seq; /* the last /stop's arrival number (gw_event_seq): messages received
                          before it that it overtook on the urgent lane are dropped as it
                          would have dropped them had they been here */

    int64_t in_tokens, out_tokens, last_prompt;
    uint64_t idle_gen;
    uint64_t idle_timer; /* the pending idle timeout, cancelled when re-armed */
    gw_mediaq *mq;       /* events whose attachments are being described (gw_media.c) */

    gw_cmds *cmds; /* the commands kept in files of their own (gw_cmd_*.c), or NULL */

    /* Inputs given to the session whose inbox journal rows (gw_int.h) are still there: each
     * row goes when the turn that took its input ended. */
    struct inbox_ent {
        uint64_t input;
        char *platform, *message_id;
    } * inbox;
    size_t ninbox, inbox_cap;
    bool inbox_tracked; /* the event being handled was given to the session */
} gw_chat;

/* The words of ag_save.c's notice (WAIT_TEXT) that a turn waits for disk space. */
static const char DISK_WAIT_NOTICE[] = "The disk holding Hermes' data is full";

static const char INTERRUPT_FMT[] =
    "\xe2\x9a\xa1 Interrupting current task%s. I'll respond to your message shortly.";

/* ================================================================ helpers */

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static bool busy(const gw_chat *c)
{
    return c->answered < c->next_input;
}

/* ========================================================== inbox journal */

static bool journaled(const gw_chat *c, const gw_msg_event *ev)
{
    return c->sh->store && !c->caps.api && ev->message_id && *ev->message_id && ev->src.platform;
}

/* ev was dealt with here (a command, an answer to a question): its journal row goes. */
static void inbox_done(rt_ctx *cx, gw_chat *c, const gw_msg_event *ev)
{
    if (journaled(c, ev) && !c->inbox_tracked)
        gw_inbox_done(cx, c->sh->store, ev);
}

/* ev went to the session as input id: its row goes when that turn ends (inbox_settle). */
static void inbox_track(gw_chat *c, uint64_t id, const gw_msg_event *ev)
{
    if (!journaled(c, ev))
        return;
    if (c->ninbox == c->inbox_cap) {
        c->inbox_cap = c->inbox_cap ? c->inbox_cap * 2 : 4;
        c->inbox = rt_xrealloc(c->inbox, c->inbox_cap * sizeof(*c->inbox));
    }
    c->inbox[c->ninbox++] =
        (struct inbox_ent){id, rt_xstrdup(ev->src.platform), rt_xstrdup(ev->message_id)};
    c->inbox_tracked = true;
}

/* The turns up to input upto ended: the session has stored (or refused) their messages. */
static void inbox_settle(rt_ctx *cx, gw_chat *c, uint64_t upto)
{
    size_t keep = 0;
    for (size_t i = 0; i < c->ninbox; i++) {
        struct inbox_ent *e = &c->inbox[i];
        if (e->input > upto) {
            c->inbox[keep++] = *e;
            continue;
        }
        rt_send(cx, c->sh->store, &st_inbox_done_new(e->platform, e->message_id)->hdr);
        rt_free(e->platform);
        rt_free(e->message_id);
    }
    c->ninbox = keep;
}

static void say(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *text, int kind)
{
    /* Answers and failures are written down and retried until the platform has them;
     * notices and progress go straight (a lost one is not worth a retry). */
    if (c->sh->outbox && !c->caps.api && (kind == GW_TEXT_REPLY || kind == GW_TEXT_ERROR) &&
        c->origin.platform && to && to->chat_id) {
        gw_outbox_say(cx, c->sh->outbox, c->origin.platform, &c->caps, to, text, kind);
        return;
    }
    gw_say(cx, c->adapter, &c->caps, to, text, kind);
}

static void sayf(rt_ctx *cx, gw_chat *c, const gw_target *to, int kind, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void sayf(rt_ctx *cx, gw_chat *c, const gw_target *to, int kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    say(cx, c, to, rt_buf_cstr(&b), kind);
    rt_buf_fini(&b);
}

static void set_typing(rt_ctx *cx, gw_chat *c, const gw_target *to, bool on)
{
    if (c->typing == on || !c->adapter || c->caps.api)
        return;
    c->typing = on;
    rt_send(cx, c->adapter, gw_out_typing_new(to, on));
}

static void report(rt_ctx *cx, gw_chat *c, bool reset)
{
    gw_chat_update *u = (gw_chat_update *)gw_chat_update_new(c->key, c->session_id);
    u->input_tokens = c->in_tokens;
    u->output_tokens = c->out_tokens;
    u->last_prompt_tokens = c->last_prompt;
    u->busy = busy(c) && !c->parked; /* a parked turn waits for the restart */
    u->reset = reset;
    rt_ref gw = rt_whereis(cx, GW_NAME);
    if (gw)
        rt_send(cx, gw, &u->hdr);
    else
        rt_msg_free(&u->hdr);
}

/* The target for input id (the latest one when id is unknown). */
static const gw_target *target_of(const gw_chat *c, uint64_t id)
{
    for (size_t i = 0; i < c->ntargets; i++)
        if (c->targets[i].input_id == id)
            return &c->targets[i].t;
    return c->ntargets ? &c->targets[c->ntargets - 1].t : NULL;
}

static void push_target(gw_chat *c, uint64_t id, const gw_target *t)
{
    if (c->ntargets == c->targets_cap) {
        c->targets_cap = c->targets_cap ? c->targets_cap * 2 : 4;
        c->targets = rt_xrealloc(c->targets, c->targets_cap * sizeof(*c->targets));
    }
    c->targets[c->ntargets].input_id = id;
    gw_target_copy(&c->targets[c->ntargets].t, t);
    c->ntargets++;
}

/* Forget targets of inputs answered up to id, except the newest one (progress and the next
 * notices still go somewhere sensible). */
static void drop_targets(gw_chat *c, uint64_t id)
{
    size_t keep = 0;
    for (size_t i = 0; i < c->ntargets; i++) {
        if (c->targets[i].input_id <= id && i + 1 < c->ntargets) {
            gw_target_fini(&c->targets[i].t);
            continue;
        }
        c->targets[keep++] = c->targets[i];
    }
    c->ntargets = keep;
}

static const gw_target *current_target(const gw_chat *c)
{
    return c->ntargets ? &c->targets[c->ntargets - 1].t : NULL;
}

/* ======================================================== the session */

static char *ephemeral_text(const gw_chat *c)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    const char *parts[] = {c->context, c->personality ? c->personality : c->sh->personality_default,
                           c->ephemeral};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (!parts[i] || !*parts[i])
            continue;
        if (b.len)
            rt_buf_append_str(&b, "\n\n");
        rt_buf_append_str(&b, parts[i]);
    }
    if (!b.len) {
        rt_buf_fini(&b);
        return NULL;
    }
    return rt_buf_steal(&b, NULL);
}

static bool ensure_session(rt_ctx *cx, gw_chat *c, const cJSON *history)
{
    if (c->session)
        return true;
    char *eph = ephemeral_text(c);
    gw_session_req req = {
        .session_id = c->session_id,
        .session_key = c->key,
        .platform = c->origin.platform,
        .user_id = c->origin.user_id,
        .ephemeral = eph,
        .history = history,
        .model = c->model,
        .resume = c->existing,
        .stream = c->caps.streams,
    };
    c->session = c->sh->spawn(cx, &req, c->sh->spawn_arg);
    rt_free(eph);
    if (!c->session)
        return false;
    rt_link_child(cx, c->session);
    c->session_mon = rt_monitor(cx, c->session);
    c->existing = true; /* from now on it is in state.db (or will be) */
    return true;
}

static void stop_session(rt_ctx *cx, gw_chat *c)
{
    if (!c->session)
        return;
    rt_demonitor(cx, c->session, c->session_mon);
    rt_unlink(cx, c->session);
    rt_stop(cx, c->session, RT_EXIT_NORMAL);
    c->session = 0;
    c->session_mon = 0;
}

static void push_ephemeral(rt_ctx *cx, gw_chat *c)
{
    if (!c->session)
        return;
    char *eph = ephemeral_text(c);
    rt_send(cx, c->session, ag_text_new(AG_MSG_EPHEMERAL, eph));
    rt_free(eph);
}

/* ================================================================ progress */

static void progress_flush(rt_ctx *cx, gw_chat *c)
{
    if (!c->plines.len)
        return;
    const gw_target *to = current_target(c);
    if (to) {
        rt_send(cx, c->adapter,
                gw_out_text_new(GW_OUT_TEXT, to, rt_buf_cstr(&c->plines), GW_TEXT_PROGRESS));
    }
    rt_buf_reset(&c->plines);
}

static void progress_line(rt_ctx *cx, gw_chat *c, const char *line)
{
    if (c->last_line && strcmp(c->last_line, line) == 0) {
        /* consecutive identical lines collapse into one with " (×N)" */
        c->repeat++;
        char *nl = strrchr(rt_buf_cstr(&c->plines), '\n');
        size_t at = nl ? (size_t)(nl - rt_buf_cstr(&c->plines)) + 1 : 0;
        c->plines.len = at;
        rt_buf_printf(&c->plines, "%s (\xc3\x97%d)", line, c->repeat);
        if (!c->ptimer_on) {
            progress_flush(cx, c);
            c->ptimer_on = true;
            rt_send_after(cx, rt_self(cx), rt_timeout_new(TAG_PROGRESS_FLUSH), PROGRESS_BATCH_MS);
        }
        return;
    }
    rt_free(c->last_line);
    c->last_line = rt_xstrdup(line);
    c->repeat = 1;
    if (c->plines.len)
        rt_buf_append_str(&c->plines, "\n");
    rt_buf_append_str(&c->plines, line);
    if (!c->ptimer_on) {
        progress_flush(cx, c); /* the first line goes at once */
        c->ptimer_on = true;
        rt_send_after(cx, rt_self(cx), rt_timeout_new(TAG_PROGRESS_FLUSH), PROGRESS_BATCH_MS);
    }
}

static void on_progress(rt_ctx *cx, gw_chat *c, ag_msg_progress *p)
{
    rt_free(c->running_tool);
    c->running_tool = p->tool ? rt_xstrdup(p->tool) : NULL;
    if (!p->tool || !c->adapter || !c->caps.progress)
        return;
    const gw_target *to = current_target(c);
    if (!to)
        return;
    if (c->caps.api) {
        if (p->tool[0] == '_')
            return;
        const char *emoji = NULL;
        char *label = NULL;
        char *line = gw_progress_line(p->tool, p->preview, GW_PROGRESS_ALL, &emoji, &label);
        rt_send(cx, c->adapter, gw_out_progress_new(to, line, p->tool, emoji, label));
        rt_free(line);
        rt_free(label);
        return;
    }
    if (c->progress_mode == GW_PROGRESS_OFF)
        return;
    if (c->progress_mode == GW_PROGRESS_NEW && c->last_tool && strcmp(c->last_tool, p->tool) == 0)
        return;
    rt_free(c->last_tool);
    c->last_tool = rt_xstrdup(p->tool);
    char *line = gw_progress_line(p->tool, p->preview, c->progress_mode, NULL, NULL);
    progress_line(cx, c, line);
    rt_free(line);
}

/* ================================================================== turns */

static void deliver(rt_ctx *cx, gw_chat *c, gw_msg_event *ev, bool queue);

static void start_next_api(rt_ctx *cx, gw_chat *c)
{
    if (busy(c) || !c->napiq)
        return;
    gw_msg_event *ev = c->apiq[0];
    memmove(c->apiq, c->apiq + 1, (c->napiq - 1) * sizeof(*c->apiq));
    c->napiq--;
    deliver(cx, c, ev, false);
    rt_msg_free(&ev->hdr);
}

static void arm_idle(rt_ctx *cx, gw_chat *c)
{
    c->idle_gen++;
    if (c->idle_timer) /* one pending timer per conversation, not one per turn */
        (void)rt_timer_cancel(cx, c->idle_timer);
    c->idle_timer = rt_send_after(cx, rt_self(cx), rt_timeout_new(TAG_IDLE + (c->idle_gen << 8)),
                                  c->sh->chat_idle_ms);
}

static void turn_end(rt_ctx *cx, gw_chat *c, const gw_target *to, int outcome, const ag_msg_done *d)
{
    if (!c->adapter || !to)
        return;
    gw_out_turn_end *e =
        (gw_out_turn_end *)gw_out_turn_end_new(to, outcome, d ? d->session_id : c->session_id);
    if (d) {
        e->prompt_tokens = d->prompt_tokens;
        e->completion_tokens = d->completion_tokens;
    }
    rt_send(cx, c->adapter, &e->hdr);
}

static void on_done(rt_ctx *cx, gw_chat *c, ag_msg_done *d)
{
    if (d->session_id && strcmp(d->session_id, c->session_id) != 0) {
        rt_free(c->session_id); /* compression split the session */
        c->session_id = rt_xstrdup(d->session_id);
    }
    /* The session's counters are totals since it started. */
    c->in_tokens = d->prompt_tokens;
    c->out_tokens = d->completion_tokens;
    if (d->input_id > c->answered)
        c->answered = d->input_id;
    gw_target to = {0};
    const gw_target *t = target_of(c, d->input_id);
    if (t)
        gw_target_copy(&to, t);
    progress_flush(cx, c);
    int outcome = GW_OUTCOME_SUCCESS;
    if (d->err == -EALREADY) {
        outcome = GW_OUTCOME_SUCCESS; /* recovery found nothing to answer */
    } else if (d->interrupted) {
        outcome = GW_OUTCOME_CANCELLED; /* superseded or stopped: no answer (§1.7 C) */
    } else if (d->text) {
        say(cx, c, &to, d->text, GW_TEXT_REPLY);
        /* §1.8 step 5: a voice note of the answer when the chat's voice mode says so */
        gw_voice_reply(cx, c->sh, c->adapter, &c->caps, c->origin.platform,
                       to.chat_id ? to.chat_id : c->origin.chat_id, &to, d->text,
                       gw_mediaq_take_voice(c->mq, d->input_id));
    } else {
        outcome = GW_OUTCOME_FAILURE;
        if (d->errmsg)
            say(cx, c, &to, d->errmsg, GW_TEXT_ERROR);
        else
            sayf(cx, c, &to, GW_TEXT_ERROR,
                 "Sorry, I encountered an error (%s).\nTry again or use /reset to start a fresh "
                 "session.",
                 rt_strerror(d->err));
    }
    turn_end(cx, c, &to, outcome, d);
    gw_target_fini(&to);
    drop_targets(c, d->input_id);
    c->disk_wait = false;
    /* Interrupted by the shutdown, the message may not be in state.db: its journal row stays
     * for the restart (which drops it if state.db has the message after all). */
    if (!(d->interrupted && c->draining))
        inbox_settle(cx, c, busy(c) ? d->input_id : UINT64_MAX);
    if (!busy(c)) {
        const gw_target *cur = current_target(c);
        if (cur)
            set_typing(cx, c, cur, false);
        rt_free(c->last_tool);
        c->last_tool = NULL;
        rt_free(c->last_line);
        c->last_line = NULL;
        c->nasks = 0; /* whatever was asked is over with the turn */
        rt_free(c->running_tool);
        c->running_tool = NULL;
        arm_idle(cx, c);
    }
    report(cx, c, false);
    start_next_api(cx, c);
}

/* The sender prefix in shared threads (§1.6.1 step 6). */
static const char *sender_of(const gw_chat *c, const gw_msg_event *ev)
{
    const gw_source *s = &ev->src;
    if (!s->chat_type || strcmp(s->chat_type, "dm") == 0 || !s->thread_id || c->sh->thread_per_user)
        return NULL;
    return s->user_name ? s->user_name : s->user_id;
}

static bool was_cancelled(gw_chat *c, uint64_t request)
{
    for (unsigned i = 0; request && i < RT_ARRAY_LEN(c->cancelled); i++)
        if (c->cancelled[i] == request) {
            c->cancelled[i] = 0;
            return true;
        }
    return false;
}

static void deliver(rt_ctx *cx, gw_chat *c, gw_msg_event *ev, bool queue)
{
    if (c->caps.api && was_cancelled(c, ev->reply.request)) {
        turn_end(cx, c, &ev->reply, GW_OUTCOME_CANCELLED, NULL);
        return;
    }
    if (c->caps.api && busy(c)) {
        if (c->napiq == c->apiq_cap) {
            c->apiq_cap = c->apiq_cap ? c->apiq_cap * 2 : 4;
            c->apiq = rt_xrealloc(c->apiq, c->apiq_cap * sizeof(*c->apiq));
        }
        c->apiq[c->napiq++] = gw_event_take(ev, GW_MSG_EVENT);
        return;
    }
    bool changed = false;
    if (c->caps.api && (ev->ephemeral || c->ephemeral) &&
        (!ev->ephemeral || !c->ephemeral || strcmp(ev->ephemeral, c->ephemeral) != 0)) {
        rt_free(c->ephemeral);
        c->ephemeral = ev->ephemeral;
        ev->ephemeral = NULL;
        changed = true;
    }
    bool fresh = !c->session;
    if (!ensure_session(cx, c, ev->history)) {
        say(cx, c, &ev->reply, "Sorry, I could not start an agent for this chat. Try again later.",
            GW_TEXT_ERROR);
        turn_end(cx, c, &ev->reply, GW_OUTCOME_FAILURE, NULL);
        inbox_done(cx, c, ev);
        return;
    }
    if (changed && !fresh)
        push_ephemeral(cx, c);
    bool was_busy = busy(c);
    uint64_t id = ++c->next_input;
    push_target(c, id, &ev->reply);
    if (c->home_hint && !was_busy) {
        say(cx, c, &ev->reply, c->home_hint, GW_TEXT_NOTICE);
        rt_free(c->home_hint);
        c->home_hint = NULL;
    }
    ag_msg_input *in = (ag_msg_input *)ag_input_new(ev->text, rt_self(cx), id);
    const char *sender = sender_of(c, ev);
    in->sender = sender ? rt_xstrdup(sender) : NULL;
    in->queue = queue;
    rt_send(cx, c->session, &in->hdr);
    inbox_track(c, id, ev);
    if (!was_busy) {
        c->turn_start_ns = now_ns();
        set_typing(cx, c, &ev->reply, true);
        report(cx, c, false);
        return;
    }
    if (queue || c->caps.api)
        return;
    /* Busy: the session interrupts its turn and answers everything together. */
    int64_t now = now_ns();
    if (now - c->last_ack_ns < ACK_INTERVAL_NS)
        return;
    c->last_ack_ns = now;
    char details[160] = "";
    int64_t min = (now - c->turn_start_ns) / 60000000000LL;
    if (c->running_tool)
        snprintf(details, sizeof(details), " (%lld min elapsed, running: %s)", (long long)min,
                 c->running_tool);
    else if (min > 0)
        snprintf(details, sizeof(details), " (%lld min elapsed)", (long long)min);
    sayf(cx, c, &ev->reply, GW_TEXT_NOTICE, INTERRUPT_FMT, details);
}

/* ================================================================== asks */

static void answer_asks(rt_ctx *cx, gw_chat *c, bool all, int answer, int kind)
{
    size_t keep = 0;
    bool done_one = false;
    for (size_t i = 0; i < c->nasks; i++) {
        pend_ask *a = &c->asks[i];
        if (a->kind == kind && (all || !done_one)) {
            rt_send(cx, c->session, ag_answer_new(a->ask_id, answer, NULL));
            done_one = true;
            continue;
        }
        c->asks[keep++] = *a;
    }
    c->nasks = keep;
}

/* Drop asks whose deadline passed (the session answered them with a timeout). */
static void expire_asks(gw_chat *c)
{
    int64_t now = now_ns();
    size_t keep = 0;
    for (size_t i = 0; i < c->nasks; i++)
        if (c->asks[i].deadline_ns > now)
            c->asks[keep++] = c->asks[i];
    c->nasks = keep;
}

static size_t asks_of(const gw_chat *c, int kind)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nasks; i++)
        n += c->asks[i].kind == kind;
    return n;
}

static void on_ask(rt_ctx *cx, gw_chat *c, ag_msg_ask *a)
{
    int answer_now = -1;
    if (a->kind == TOOL_ASK_APPROVAL && c->yolo)
        answer_now = TOOL_ANSWER_ONCE;
    else if (c->caps.api || a->kind == TOOL_ASK_SUDO)
        answer_now = TOOL_ANSWER_DENY; /* nobody can answer (§5.2: approval required) */
    if (answer_now >= 0) {
        rt_send(cx, c->session, ag_answer_new(a->ask_id, answer_now, NULL));
        return;
    }
    if (c->nasks == c->asks_cap) {
        c->asks_cap = c->asks_cap ? c->asks_cap * 2 : 4;
        c->asks = rt_xrealloc(c->asks, c->asks_cap * sizeof(*c->asks));
    }
    c->asks[c->nasks++] = (pend_ask){
        .ask_id = a->ask_id, .kind = a->kind, .deadline_ns = now_ns() + a->timeout_ms * 1000000LL};
    const gw_target *to = current_target(c);
    if (!to)
        return;
    progress_flush(cx, c);
    if (a->kind == TOOL_ASK_APPROVAL) {
        const char *cmd = a->text ? a->text : "";
        size_t n = strlen(cmd);
        sayf(cx, c, to, GW_TEXT_ASK,
             "\xe2\x9a\xa0\xef\xb8\x8f **Dangerous command requires approval:**\n```\n%.*s%s\n```\n"
             "Reason: %s\n\nReply `/approve` to execute, `/approve session` to approve this "
             "pattern for the session, `/approve always` to approve permanently, or `/deny` to "
             "cancel. A plain \"yes\"/\"y\" or \"no\"/\"n\" works too.",
             (int)(n > 200 ? 200 : n), cmd, n > 200 ? "..." : "",
             a->description ? a->description : "dangerous command");
        return;
    }
    /* clarify: the question and its choices; the next message answers it */
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_printf(&b, "\xe2\x9d\x93 %s", a->text ? a->text : "");
    const cJSON *ch;
    int i = 0;
    cJSON_ArrayForEach(ch, a->choices)
    {
        if (cJSON_IsString(ch))
            rt_buf_printf(&b, "\n%d. %s", ++i, ch->valuestring);
    }
    say(cx, c, to, rt_buf_cstr(&b), GW_TEXT_ASK);
    rt_buf_fini(&b);
}

/* ============================================================== commands */

typedef struct cmd_info {
    const char *name, *args, *desc, *alias;
} cmd_info;

static const cmd_info commands[] = {
    {"new", "", "Start a new session (fresh session ID + history)", "reset"},
    {"stop", "", "Stop the running agent", NULL},
    {"status", "", "Show session info", NULL},
    {"model", "[name]", "Show or change the model for this session", NULL},
    {"personality", "[name]", "Set a predefined personality", NULL},
    {"retry", "", "Retry the last message (resend to agent)", NULL},
    {"undo", "", "Remove the last user/assistant exchange", NULL},
    {"queue", "<prompt>", "Queue a prompt for the next turn (doesn't interrupt)", "q"},
    {"approve", "[session|always]", "Approve a pending dangerous command", NULL},
    {"deny", "", "Deny a pending dangerous command", NULL},
    {"sethome", "", "Set this chat as the home channel", "set-home"},
    {"usage", "", "Show token usage for the current session", NULL},
    {"background", "<prompt>", "Run a prompt in the background", "bg"},
    {"compress", "", "Manually compress conversation context", NULL},
    {"yolo", "", "Toggle YOLO mode (skip all dangerous command approvals)", NULL},
    {"profile", "", "Show active profile name and home directory", NULL},
    {"help", "", "Show available commands", NULL},
    {"commands", "[page]", "Browse all commands", NULL},
};

/* Recognised commands of the original this gateway does not offer (yet). */
static const char *const unavailable[] = {
    "reload-mcp",
    "reload_mcp",
};

static const char *canonical(const char *name)
{
    for (size_t i = 0; i < RT_ARRAY_LEN(commands); i++)
        if (strcmp(commands[i].name, name) == 0 ||
            (commands[i].alias && strcmp(commands[i].alias, name) == 0))
            return commands[i].name;
    return NULL;
}

static char *help_text(void)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_append_str(&b, "\xf0\x9f\x93\x96 **Hermes Commands**\n");
    for (size_t i = 0; i < RT_ARRAY_LEN(commands); i++) {
        const cmd_info *m = &commands[i];
        rt_buf_printf(&b, "\n`/%s%s%s` -- %s", m->name, *m->args ? " " : "", m->args, m->desc);
        if (m->alias)
            rt_buf_printf(&b, " (alias: `/%s`)", m->alias);
    }
    gw_cmds_help(&b);
    return rt_buf_steal(&b, NULL);
}

static char *model_block(const gw_chat *c)
{
    const gw_shared *sh = c->sh;
    const char *model = c->model ? c->model : (sh->model ? sh->model : "(default)");
    int64_t ctx = sh->context_length > 0 ? sh->context_length : ag_context_length_for(model);
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_printf(&b, "\xe2\x97\x86 Model: `%s`\n\xe2\x97\x86 Provider: %s\n", model,
                  sh->provider ? sh->provider : "auto");
    rt_buf_printf(&b, "\xe2\x97\x86 Context: %lldK tokens (%s)", (long long)(ctx / 1000),
                  sh->context_length > 0 ? "config" : "detected");
    if (sh->base_url && (strstr(sh->base_url, "localhost") || strstr(sh->base_url, "127.0.0.1") ||
                         strstr(sh->base_url, "0.0.0.0")))
        rt_buf_printf(&b, "\n\xe2\x97\x86 Endpoint: %s", sh->base_url);
    return rt_buf_steal(&b, NULL);
}

static void begin_new_session(rt_ctx *cx, gw_chat *c, const char *new_id)
{
    if (busy(c) && c->session)
        rt_interrupt(cx, c->session, AG_INT_STOP);
    if (c->sh->store && c->existing)
        rt_send(cx, c->sh->store, &st_end_session_new(c->session_id, "session_reset")->hdr);
    stop_session(cx, c);
    c->answered = c->next_input; /* whatever was running is over */
    rt_free(c->session_id);
    c->session_id = new_id ? rt_xstrdup(new_id) : gw_new_session_id();
    c->existing = false;
    rt_free(c->model);
    c->model = NULL;
    c->in_tokens = c->out_tokens = c->last_prompt = 0;
    c->nasks = 0;
    const gw_target *cur = current_target(c);
    if (cur)
        set_typing(cx, c, cur, false);
    report(cx, c, true);
}

static void cmd_personality(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *args)
{
    const cJSON *ps = hm_config_node(c->sh->cfg, "agent.personalities");
    if (!*args) {
        if (!cJSON_IsObject(ps) || !ps->child) {
            say(cx, c, to, "No personalities configured in `~/.hermes/config.yaml`",
                GW_TEXT_NOTICE);
            return;
        }
        rt_buf b;
        rt_buf_init(&b, SIZE_MAX / 2);
        rt_buf_append_str(&b, "\xf0\x9f\x8e\xad **Available Personalities**\n\n\xe2\x80\xa2 "
                              "`none` \xe2\x80\x94 (no personality overlay)");
        const cJSON *p;
        cJSON_ArrayForEach(p, ps)
        {
            const char *txt =
                cJSON_IsString(p) ? p->valuestring : (cJSON_IsObject(p) ? "(custom)" : "");
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(p, "system_prompt");
            if (cJSON_IsString(sp))
                txt = sp->valuestring;
            rt_buf_printf(&b, "\n\xe2\x80\xa2 `%s` \xe2\x80\x94 %.50s%s", p->string, txt,
                          strlen(txt) > 50 ? "..." : "");
        }
        rt_buf_append_str(&b, "\n\nUsage: `/personality <name>`");
        say(cx, c, to, rt_buf_cstr(&b), GW_TEXT_NOTICE);
        rt_buf_fini(&b);
        return;
    }
    if (strcasecmp(args, "none") == 0 || strcasecmp(args, "default") == 0 ||
        strcasecmp(args, "neutral") == 0) {
        rt_free(c->personality);
        c->personality = NULL;
        push_ephemeral(cx, c);
        say(cx, c, to, "\xf0\x9f\x8e\xad Personality cleared\n_(takes effect on next message)_",
            GW_TEXT_NOTICE);
        return;
    }
    const cJSON *p = cJSON_IsObject(ps) ? cJSON_GetObjectItemCaseSensitive(ps, args) : NULL;
    if (!p) {
        rt_buf b;
        rt_buf_init(&b, SIZE_MAX / 2);
        rt_buf_printf(&b, "Unknown personality: `%s`\n\nAvailable: `none`", args);
        const cJSON *q;
        cJSON_ArrayForEach(q, ps) rt_buf_printf(&b, ", `%s`", q->string);
        say(cx, c, to, rt_buf_cstr(&b), GW_TEXT_NOTICE);
        rt_buf_fini(&b);
        return;
    }
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    if (cJSON_IsString(p)) {
        rt_buf_append_str(&b, p->valuestring);
    } else {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(p, "system_prompt");
        const cJSON *tone = cJSON_GetObjectItemCaseSensitive(p, "tone");
        const cJSON *style = cJSON_GetObjectItemCaseSensitive(p, "style");
        if (cJSON_IsString(sp))
            rt_buf_append_str(&b, sp->valuestring);
        if (cJSON_IsString(tone))
            rt_buf_printf(&b, "\nTone: %s", tone->valuestring);
        if (cJSON_IsString(style))
            rt_buf_printf(&b, "\nStyle: %s", style->valuestring);
    }
    rt_free(c->personality);
    c->personality = rt_buf_steal(&b, NULL);
    push_ephemeral(cx, c);
    sayf(cx, c, to, GW_TEXT_NOTICE,
         "\xf0\x9f\x8e\xad Personality set to **%s**\n_(takes effect on next message)_", args);
}

static void cmd_approve(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *args, bool yes)
{
    expire_asks(c);
    size_t pending = asks_of(c, TOOL_ASK_APPROVAL);
    bool all = false;
    int answer = yes ? TOOL_ANSWER_ONCE : TOOL_ANSWER_DENY;
    const char *scope = "";
    char words[128];
    rt_strlcpy(words, args, sizeof(words));
    for (char *w = words; *w; w++)
        *w = (char)tolower((unsigned char)*w);
    char *save = NULL;
    for (char *w = strtok_r(words, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        if (strcmp(w, "all") == 0)
            all = true;
        else if (yes && (strcmp(w, "always") == 0 || strcmp(w, "permanent") == 0 ||
                         strcmp(w, "permanently") == 0)) {
            answer = TOOL_ANSWER_ALWAYS;
            scope = " (pattern approved permanently)";
        } else if (yes && (strcmp(w, "session") == 0 || strcmp(w, "ses") == 0)) {
            answer = TOOL_ANSWER_SESSION;
            scope = " (pattern approved for this session)";
        }
    }
    if (!pending) {
        say(cx, c, to, yes ? "No pending command to approve." : "No pending command to deny.",
            GW_TEXT_NOTICE);
        return;
    }
    size_t n = all ? pending : 1;
    answer_asks(cx, c, all, answer, TOOL_ASK_APPROVAL);
    if (yes && n > 1)
        sayf(cx, c, to, GW_TEXT_NOTICE,
             "\xe2\x9c\x85 Commands approved%s. The agent is resuming... (%zu commands)", scope, n);
    else if (yes)
        sayf(cx, c, to, GW_TEXT_NOTICE, "\xe2\x9c\x85 Command approved%s. The agent is resuming...",
             scope);
    else if (n > 1)
        sayf(cx, c, to, GW_TEXT_NOTICE, "\xe2\x9d\x8c Commands denied (%zu commands).", n);
    else
        say(cx, c, to, "\xe2\x9d\x8c Command denied.", GW_TEXT_NOTICE);
}

static void control(rt_ctx *cx, gw_chat *c, const gw_target *to, int op)
{
    c->ctl_tag++;
    gw_target_fini(&c->ctl_to);
    gw_target_copy(&c->ctl_to, to);
    ag_msg_control *m = (ag_msg_control *)ag_control_new(op, rt_self(cx), c->ctl_tag);
    if (op == AG_CTL_RETRY) {
        m->sink = rt_self(cx);
        m->input_id = ++c->next_input;
        push_target(c, m->input_id, to);
    }
    rt_send(cx, c->session, &m->hdr);
}

static void on_control_reply(rt_ctx *cx, gw_chat *c, ag_msg_control_reply *r)
{
    if (r->tag != c->ctl_tag)
        return;
    const gw_target *to = &c->ctl_to;
    switch (r->op) {
    case AG_CTL_UNDO:
        if (r->err) {
            say(cx, c, to,
                r->err == -EBUSY ? "Agent is running \xe2\x80\x94 wait or /stop first."
                                 : "Nothing to undo.",
                GW_TEXT_NOTICE);
            return;
        }
        sayf(cx, c, to, GW_TEXT_NOTICE,
             "\xe2\x86\xa9\xef\xb8\x8f Undid %d message(s).\nRemoved: \"%.*s%s\"", r->n,
             CMD_PREVIEW, r->text ? r->text : "",
             r->text && strlen(r->text) > CMD_PREVIEW ? "..." : "");
        return;
    case AG_CTL_COMPRESS: {
        set_typing(cx, c, to, false);
        if (r->err) {
            say(cx, c, to,
                r->err == -EBUSY       ? "Agent is running \xe2\x80\x94 wait or /stop first."
                : r->err == -ECANCELED ? "Compression was cancelled."
                : r->err == -ENODATA
                    ? "Nothing to compress yet: the first and the last few messages are always "
                      "kept as they are."
                    : "Not enough conversation to compress (need at least 4 messages).",
                GW_TEXT_NOTICE);
            return;
        }
        const cJSON *sid = cJSON_GetObjectItemCaseSensitive(r->info, "session_id");
        if (cJSON_IsString(sid) && strcmp(sid->valuestring, c->session_id) != 0) {
            rt_free(c->session_id); /* the conversation continues under a new id */
            c->session_id = rt_xstrdup(sid->valuestring);
            report(cx, c, false);
        }
        sayf(cx, c, to, GW_TEXT_NOTICE,
             "\xf0\x9f\x97\x9c\xef\xb8\x8f Compressed: %d \xe2\x86\x92 %d messages", r->n,
             (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r->info, "after")));
        return;
    }
    case AG_CTL_RETRY:
        if (r->err) {
            c->answered = c->next_input; /* the input we reserved will never be answered */
            say(cx, c, to,
                r->err == -EBUSY ? "Agent is running \xe2\x80\x94 wait or /stop first."
                                 : "No previous message to retry.",
                GW_TEXT_NOTICE);
            return;
        }
        c->turn_start_ns = now_ns();
        set_typing(cx, c, to, true);
        return;
    case AG_CTL_USAGE: {
        if (r->err || !r->info) {
            sayf(cx, c, to, GW_TEXT_NOTICE,
                 "\xf0\x9f\x93\x8a **Session Token Usage**\nInput tokens: %lld\nOutput tokens: "
                 "%lld\n_(a turn is running: totals as of the last answer)_",
                 (long long)c->in_tokens, (long long)c->out_tokens);
            return;
        }
        const cJSON *i = r->info;
#define N(k) (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(i, k))
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(i, "model");
        long long ctx = N("context_length"), last = N("last_prompt_tokens");
        sayf(
            cx, c, to, GW_TEXT_NOTICE,
            "\xf0\x9f\x93\x8a **Session Token Usage**\nModel: `%s`\nInput tokens: %lld\nOutput "
            "tokens: %lld\nTotal tokens: %lld\nAPI calls: %lld\nMessages: %lld\nContext: %lld%% of "
            "%lldK\nCompressions: %lld",
            cJSON_IsString(m) ? m->valuestring : (c->sh->model ? c->sh->model : "default"),
            N("prompt_tokens"), N("completion_tokens"), N("prompt_tokens") + N("completion_tokens"),
            N("api_calls"), N("messages"), ctx > 0 ? last * 100 / ctx : 0, ctx / 1000,
            N("compressions"));
#undef N
        return;
    }
    default: return;
    }
}

static void cmd_background(rt_ctx *cx, gw_chat *c, const gw_msg_event *ev, const char *args)
{
    const gw_target *to = &ev->reply;
    if (!*args) {
        say(cx, c, to,
            "Usage: /background <prompt>\nExample: /background Summarize the top HN stories "
            "today\n\nRuns the prompt in a separate background session. You can keep chatting "
            "\xe2\x80\x94 results will appear here when done.",
            GW_TEXT_NOTICE);
        return;
    }
    char id[32];
    if (gw_bg_start(cx, c->sh, c->adapter, &c->caps, to, &c->origin, args, id) != 0) {
        say(cx, c, to, "Sorry, I could not start a background task.", GW_TEXT_ERROR);
        return;
    }
    char *pv = gw_preview(args, 60);
    sayf(cx, c, to, GW_TEXT_NOTICE,
         "\xf0\x9f\x94\x84 Background task started: \"%s\"\nTask ID: %s\nYou can keep "
         "chatting \xe2\x80\x94 results will appear when done.",
         pv, id);
    rt_free(pv);
}

/* A slash command; true when handled (false: send the text to the model). */
static bool on_command(rt_ctx *cx, gw_chat *c, gw_msg_event *ev, const char *name, const char *args)
{
    const gw_target *to = &ev->reply;
    if (gw_cmds_handle(cx, c, &c->cmds, ev, name, args))
        return true;
    if (strcmp(name, "voice") == 0) { /* /voice [on|off|tts|status] (gw_media.c) */
        char *r = gw_voice_command(cx, c->sh, ev->src.chat_id, args);
        say(cx, c, to, r, GW_TEXT_NOTICE);
        rt_free(r);
        return true;
    }
    const char *cmd = canonical(name);
    if (!cmd) {
        for (size_t i = 0; i < RT_ARRAY_LEN(unavailable); i++)
            if (strcmp(unavailable[i], name) == 0) {
                sayf(cx, c, to, GW_TEXT_NOTICE, "`/%s` is not available in this gateway yet.",
                     name);
                return true;
            }
        gw_cmds_skill(cx, c, ev, name, args); /* an installed skill, or "Unknown command" */
        return true;
    }
    if (strcmp(cmd, "stop") == 0) {
        if (ev->seq > c->stop_seq)
            c->stop_seq = ev->seq;
        /* messages whose attachments are still being described never reach the agent */
        bool setup = gw_mediaq_cancel(cx, c->mq, c->sh->store, c->adapter, c->session_id) > 0;
        if (!busy(c)) {
            if (setup)
                set_typing(cx, c, to, false);
            say(cx, c, to,
                setup ? "\xe2\x9a\xa1 Force-stopped. The agent was still starting \xe2\x80\x94 "
                        "session unlocked."
                      : "No active task to stop.",
                GW_TEXT_NOTICE);
            return true;
        }
        rt_interrupt(cx, c->session, AG_INT_STOP);
        for (size_t i = 0; i < c->napiq; i++)
            rt_msg_free(&c->apiq[i]->hdr);
        c->napiq = 0;
        say(cx, c, to, "\xe2\x9a\xa1 Stopped. You can continue this session.", GW_TEXT_NOTICE);
    } else if (strcmp(cmd, "new") == 0) {
        bool had = c->existing;
        begin_new_session(cx, c, NULL);
        char *mb = model_block(c);
        sayf(cx, c, to, GW_TEXT_NOTICE, "%s\n\n%s",
             had ? "\xe2\x9c\xa8 Session reset! Starting fresh."
                 : "\xe2\x9c\xa8 New session started!",
             mb);
        rt_free(mb);
    } else if (strcmp(cmd, "help") == 0) {
        gw_cmds_help_reply(cx, c, to); /* with the installed skills: a job (gw_cmd_info.c) */
    } else if (strcmp(cmd, "commands") == 0) {
        char *h = help_text();
        say(cx, c, to, h, GW_TEXT_NOTICE);
        rt_free(h);
    } else if (strcmp(cmd, "model") == 0) {
        if (!*args) {
            char *mb = model_block(c);
            say(cx, c, to, mb, GW_TEXT_NOTICE);
            rt_free(mb);
        } else if (busy(c)) {
            say(cx, c, to, "Agent is running \xe2\x80\x94 wait or /stop first, then switch models.",
                GW_TEXT_NOTICE);
        } else if (strstr(args, "--global")) {
            say(cx, c, to,
                "Saving a model with `--global` is not available in chats yet; run `hermes "
                "config set model.default <name>` on the host.",
                GW_TEXT_NOTICE);
        } else {
            char m[256];
            rt_strlcpy(m, args, sizeof(m));
            m[strcspn(m, " \t")] = '\0';
            rt_free(c->model);
            c->model = rt_xstrdup(m);
            if (c->session)
                rt_send(cx, c->session, ag_text_new(AG_MSG_MODEL, m));
            sayf(cx, c, to, GW_TEXT_NOTICE,
                 "Model switched to `%s`\n_(session only -- add `--global` to persist)_", m);
        }
    } else if (strcmp(cmd, "personality") == 0) {
        cmd_personality(cx, c, to, args);
    } else if (strcmp(cmd, "retry") == 0 || strcmp(cmd, "undo") == 0 || strcmp(cmd, "usage") == 0) {
        int op = cmd[0] == 'r' ? AG_CTL_RETRY : (cmd[1] == 'n' ? AG_CTL_UNDO : AG_CTL_USAGE);
        if (busy(c) && op != AG_CTL_USAGE) {
            say(cx, c, to, "Agent is running \xe2\x80\x94 wait or /stop first.", GW_TEXT_NOTICE);
            return true;
        }
        if (!ensure_session(cx, c, NULL)) {
            say(cx, c, to, "Sorry, I could not start an agent for this chat.", GW_TEXT_ERROR);
            return true;
        }
        control(cx, c, to, op);
    } else if (strcmp(cmd, "queue") == 0) {
        if (!*args) {
            say(cx, c, to, "Usage: /queue <prompt>", GW_TEXT_NOTICE);
            return true;
        }
        bool was_busy = busy(c);
        rt_free(ev->text);
        ev->text = rt_xstrdup(args);
        deliver(cx, c, ev, true);
        if (was_busy)
            say(cx, c, to, "Queued for the next turn.", GW_TEXT_NOTICE);
    } else if (strcmp(cmd, "approve") == 0 || strcmp(cmd, "deny") == 0) {
        cmd_approve(cx, c, to, args, cmd[0] == 'a');
    } else if (strcmp(cmd, "sethome") == 0) {
        gw_chat_sethome *h = RT_MSG_NEW(gw_chat_sethome, GW_CHAT_SETHOME);
        gw_target_copy(&h->to, to);
        h->platform = rt_xstrdup(ev->src.platform ? ev->src.platform : "");
        h->chat_id = rt_xstrdup(ev->src.chat_id ? ev->src.chat_id : "");
        h->chat_name = ev->src.chat_name ? rt_xstrdup(ev->src.chat_name) : NULL;
        h->thread_id = ev->src.thread_id ? rt_xstrdup(ev->src.thread_id) : NULL;
        h->hdr.drop = gw__drop_sethome;
        rt_ref gw = rt_whereis(cx, GW_NAME);
        if (gw)
            rt_send(cx, gw, &h->hdr);
        else
            rt_msg_free(&h->hdr);
    } else if (strcmp(cmd, "compress") == 0) {
        if (busy(c)) {
            say(cx, c, to, "Agent is running \xe2\x80\x94 wait or /stop first.", GW_TEXT_NOTICE);
            return true;
        }
        if (!ensure_session(cx, c, NULL)) {
            say(cx, c, to, "Sorry, I could not start an agent for this chat.", GW_TEXT_ERROR);
            return true;
        }
        control(cx, c, to, AG_CTL_COMPRESS);
        set_typing(cx, c, to, true);
    } else if (strcmp(cmd, "background") == 0) {
        cmd_background(cx, c, ev, args);
    } else if (strcmp(cmd, "yolo") == 0) {
        c->yolo = !c->yolo;
        say(cx, c, to,
            c->yolo ? "\xe2\x9a\xa1 YOLO mode **ON** for this session \xe2\x80\x94 all commands "
                      "auto-approved. Use with caution."
                    : "\xe2\x9a\xa0\xef\xb8\x8f YOLO mode **OFF** for this session \xe2\x80\x94 "
                      "dangerous commands will require approval.",
            GW_TEXT_NOTICE);
    } else if (strcmp(cmd, "profile") == 0) {
        sayf(cx, c, to, GW_TEXT_NOTICE,
             "\xf0\x9f\x91\xa4 **Profile:** `default`\n\xf0\x9f\x93\x82 **Home:** `%s`",
             c->sh->home ? c->sh->home : "~/.hermes");
    } else {
        return false; /* /status is the router's */
    }
    return true;
}

/* A bare yes/y/no/n: 1 yes, 0 no, -1 neither. */
static int yes_no(const char *t)
{
    char w[8];
    size_t n = 0;
    while (*t && isspace((unsigned char)*t))
        t++;
    for (; *t && n + 1 < sizeof(w); t++)
        w[n++] = (char)tolower((unsigned char)*t);
    while (n && (isspace((unsigned char)w[n - 1]) || w[n - 1] == '.' || w[n - 1] == '!'))
        n--;
    w[n] = '\0';
    if (strcmp(w, "yes") == 0 || strcmp(w, "y") == 0)
        return 1;
    if (strcmp(w, "no") == 0 || strcmp(w, "n") == 0)
        return 0;
    return -1;
}

static void on_event(rt_ctx *cx, gw_chat *c, gw_msg_event *ev)
{
    c->adapter = ev->adapter ? ev->adapter : c->adapter;
    c->inbox_tracked = false;
    if (c->draining) {
        say(cx, c, &ev->reply,
            "\xe2\x8f\xb3 Gateway is shutting down and is not accepting new work right now.",
            GW_TEXT_NOTICE);
        turn_end(cx, c, &ev->reply, GW_OUTCOME_CANCELLED, NULL);
        return;
    }
    if (!c->caps.api) {
        char *buf = NULL;
        const char *name = NULL, *args = NULL;
        if (gw_parse_command(ev->text, &buf, &name, &args)) {
            bool handled = on_command(cx, c, ev, name, args);
            rt_free(buf);
            if (handled) {
                inbox_done(cx, c, ev);
                return;
            }
        }
        if (ev->seq && ev->seq < c->stop_seq) { /* sent before a /stop that overtook it */
            RT_INFO("gateway", "/stop: message %.80s, sent before the stop, dropped",
                    ev->message_id ? ev->message_id : "(no id)");
            inbox_done(cx, c, ev);
            turn_end(cx, c, &ev->reply, GW_OUTCOME_CANCELLED, NULL);
            return;
        }
        expire_asks(c);
        if (asks_of(c, TOOL_ASK_CLARIFY)) {
            for (size_t i = 0; i < c->nasks; i++) {
                if (c->asks[i].kind != TOOL_ASK_CLARIFY)
                    continue;
                rt_send(cx, c->session,
                        ag_answer_new(c->asks[i].ask_id, TOOL_ANSWER_ONCE, ev->text));
                memmove(c->asks + i, c->asks + i + 1, (c->nasks - i - 1) * sizeof(*c->asks));
                c->nasks--;
                inbox_done(cx, c, ev);
                return;
            }
        }
        int yn = asks_of(c, TOOL_ASK_APPROVAL) ? yes_no(ev->text) : -1;
        if (yn >= 0) {
            cmd_approve(cx, c, &ev->reply, "", yn == 1);
            inbox_done(cx, c, ev);
            return;
        }
    }
    if (!c->caps.api && gw_media_wants(ev))
        set_typing(cx, c, &ev->reply, true); /* while the attachment is transcribed */
    if (!c->caps.api && gw_mediaq_intake(cx, &c->mq, c->sh, ev))
        return; /* attachments are described first; on_media delivers in order */
    deliver(cx, c, ev, false);
}

/* A media job finished: hand the ready events to the agent, oldest first (gw_media.c). */
static void on_media(rt_ctx *cx, gw_chat *c, gw_media_done *d)
{
    gw_mediaq_done(c->mq, d);
    char *notice = NULL;
    gw_msg_event *ev;
    while ((ev = gw_mediaq_pop(c->mq, &notice)) != NULL) {
        if (notice)
            say(cx, c, &ev->reply, notice, GW_TEXT_NOTICE);
        rt_free(notice);
        if (c->draining) { /* the gateway began stopping while this was transcribed */
            say(cx, c, &ev->reply,
                "\xe2\x8f\xb3 Gateway is shutting down and is not accepting new work right now.",
                GW_TEXT_NOTICE);
            turn_end(cx, c, &ev->reply, GW_OUTCOME_CANCELLED, NULL);
            if (!busy(c))
                set_typing(cx, c, &ev->reply, false);
            rt_msg_free(&ev->hdr);
            continue;
        }
        bool voice = ev->kind == GW_KIND_VOICE;
        uint64_t before = c->next_input;
        if (ev->nmedia && journaled(c, ev)) /* its row keeps the composed text from now on */
            gw_inbox_put(cx, c->sh->store, ev, c->key);
        c->inbox_tracked = false;
        deliver(cx, c, ev, false);
        if (voice && c->next_input > before)
            gw_mediaq_voice_input(&c->mq, c->next_input);
        rt_msg_free(&ev->hdr);
    }
}

/* ============================================================== actor */

static void on_reset(rt_ctx *cx, gw_chat *c, gw_chat_reset *r)
{
    if (busy(c)) {
        report(cx, c, false); /* a turn runs: keep this session; the index follows us */
        return;
    }
    begin_new_session(cx, c, r->session_id);
    if (r->reason && r->notify && current_target(c)) {
        char *mb = model_block(c);
        sayf(cx, c, current_target(c), GW_TEXT_NOTICE,
             "\xe2\x97\x90 Session automatically reset (%s). Conversation history cleared.\nUse "
             "/resume to browse and restore a previous session.\nAdjust reset timing in "
             "config.yaml under session_reset.\n\n%s",
             r->reason, mb);
        rt_free(mb);
    }
}

static void on_recover(rt_ctx *cx, gw_chat *c)
{
    if (!ensure_session(cx, c, NULL))
        return;
    gw_target to = {.chat_id = c->origin.chat_id, .thread_id = c->origin.thread_id};
    uint64_t id = ++c->next_input;
    push_target(c, id, &to);
    ag_msg_input *in = (ag_msg_input *)ag_input_new(NULL, rt_self(cx), id);
    in->unanswered = true;
    rt_send(cx, c->session, &in->hdr);
    c->turn_start_ns = now_ns();
    set_typing(cx, c, &to, true);
    RT_INFO("gateway", "answering a message left unanswered by the last run (%s)", c->session_id);
}

/* Draining while the turn waits for disk space: it need not hold the shutdown up (it is not
 * interrupted either: the session keeps its messages, and an interrupt would start the
 * follow-up turn). The messages are left to the restart: their inbox journal rows are never
 * cleared here, and the store keeps the key + journal writes the disk refused and saves them
 * at its SHUTDOWN, in its space reserve if need be (st_store.h rule 4), so the restart
 * replays them from the journal; failing that, neither key nor row was saved and the
 * platform's redelivery is answered. */
static void park(rt_ctx *cx, gw_chat *c)
{
    if (c->parked || !busy(c))
        return;
    c->parked = true;
    RT_INFO("gateway",
            "session %s waits for disk space: not holding up the shutdown (its messages are "
            "answered after the restart)",
            c->session_id);
    report(cx, c, false);
}

static void on_drain(rt_ctx *cx, gw_chat *c, gw_chat_drain *d)
{
    c->draining = true;
    if (!busy(c))
        return;
    if (c->disk_wait) {
        park(cx, c);
        return;
    }
    const gw_target *to = current_target(c);
    if (d->notice && to)
        say(cx, c, to, d->notice, GW_TEXT_NOTICE);
    if (d->code && c->session)
        rt_interrupt(cx, c->session, d->code);
}

/* An adapter withdrew a request (GW_MSG_CANCEL): drop it if it waits, stop it if it runs. */
static void on_cancel(rt_ctx *cx, gw_chat *c, gw_msg_cancel *m)
{
    uint64_t req = m->to.request;
    for (size_t i = 0; i < c->napiq; i++) {
        gw_msg_event *ev = c->apiq[i];
        if (ev->reply.request != req)
            continue;
        turn_end(cx, c, &ev->reply, GW_OUTCOME_CANCELLED, NULL);
        rt_msg_free(&ev->hdr);
        memmove(c->apiq + i, c->apiq + i + 1, (c->napiq - i - 1) * sizeof(*c->apiq));
        c->napiq--;
        return;
    }
    for (size_t i = 0; i < c->ntargets; i++) {
        if (c->targets[i].t.request != req || c->targets[i].input_id <= c->answered)
            continue;
        if (c->session)
            rt_interrupt(cx, c->session, AG_INT_STOP); /* its DONE ends the turn: cancelled */
        return;
    }
    c->cancelled[c->ncancelled++ % RT_ARRAY_LEN(c->cancelled)] = req;
}

static void on_session_down(rt_ctx *cx, gw_chat *c, rt_msg_down *d)
{
    if (d->ref != c->session)
        return;
    c->session = 0;
    c->session_mon = 0;
    if (!busy(c)) { /* gateway.agent_idle_s: it rested, the store has everything */
        RT_DEBUG("gateway", "the agent of %s rests; the next message reloads it", c->session_id);
        return;
    }
    const gw_target *to = current_target(c);
    RT_WARN("gateway", "the agent of %s ended during a turn (reason %d)", c->session_id, d->reason);
    if (to) {
        say(cx, c, to,
            "Sorry, I encountered an error (the agent stopped unexpectedly).\nTry again or use "
            "/reset to start a fresh session.",
            GW_TEXT_ERROR);
        turn_end(cx, c, to, GW_OUTCOME_FAILURE, NULL);
        set_typing(cx, c, to, false);
    }
    c->answered = c->next_input;
    inbox_settle(cx, c, UINT64_MAX);
    report(cx, c, false);
}

static void chat_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    gw_chat *c = *(gw_chat **)state;
    switch (m->type) {
    case GW_MSG_EVENT: on_event(cx, c, (gw_msg_event *)m); break;
    case GW_MEDIA_DONE: on_media(cx, c, (gw_media_done *)m); break;
    case AG_MSG_DONE: on_done(cx, c, (ag_msg_done *)m); break;
    case AG_MSG_DELTA: {
        ag_msg_delta *d = (ag_msg_delta *)m;
        const gw_target *to = current_target(c);
        c->disk_wait = false; /* the model answers: the message was saved */
        if (c->caps.streams && to && d->kind == 0 && d->text)
            rt_send(cx, c->adapter, gw_out_text_new(GW_OUT_DELTA, to, d->text, GW_TEXT_REPLY));
        break;
    }
    case AG_MSG_PROGRESS:
        c->disk_wait = false;
        on_progress(cx, c, (ag_msg_progress *)m);
        break;
    case AG_MSG_STATUS: {
        const gw_target *to = current_target(c);
        const char *text = ((ag_msg_status *)m)->text;
        if (text && strstr(text, DISK_WAIT_NOTICE)) {
            c->disk_wait = true;
            if (c->draining)
                park(cx, c);
        }
        if (!c->caps.api && to && text)
            say(cx, c, to, text, GW_TEXT_NOTICE);
        break;
    }
    case AG_MSG_ASK: on_ask(cx, c, (ag_msg_ask *)m); break;
    case AG_MSG_CONTROL_REPLY: on_control_reply(cx, c, (ag_msg_control_reply *)m); break;
    case GW_CHAT_RESET: on_reset(cx, c, (gw_chat_reset *)m); break;
    case GW_CHAT_RECOVER: on_recover(cx, c); break;
    case GW_CHAT_DRAIN: on_drain(cx, c, (gw_chat_drain *)m); break;
    case GW_CHAT_EVICT: /* the router's memory budget: the idle timeout's path, if idle */
        if (!busy(c) && !c->napiq && !gw_mediaq_pending(c->mq)) {
            stop_session(cx, c);
            rt_exit(cx, RT_EXIT_NORMAL);
        } else {
            rt_msg *k = gw_chat_update_new(c->key, c->session_id);
            k->type = GW_CHAT_KEPT;
            rt_ref gw = rt_whereis(cx, GW_NAME);
            if (gw)
                rt_send(cx, gw, k);
            else
                rt_msg_free(k);
        }
        break;
    case GW_MSG_CANCEL: on_cancel(cx, c, (gw_msg_cancel *)m); break;
    case RT_MSG_TIMEOUT: {
        uint64_t tag = ((rt_msg_timeout *)m)->tag;
        if (tag == TAG_PROGRESS_FLUSH) {
            c->ptimer_on = false;
            progress_flush(cx, c);
        } else if ((tag & 0xff) == TAG_IDLE && (tag >> 8) == c->idle_gen && !busy(c) && !c->napiq &&
                   !gw_mediaq_pending(c->mq)) {
            stop_session(cx, c);
            rt_exit(cx, RT_EXIT_NORMAL); /* state.db has it all; the router respawns us */
        }
        break;
    }
    case RT_MSG_DOWN: on_session_down(cx, c, (rt_msg_down *)m); break;
    case RT_MSG_EXIT: break; /* the session's exit; DOWN handles it */
    case RT_MSG_STOP: stop_session(cx, c); break;
    default: (void)gw_cmds_on_msg(cx, c, &c->cmds, m); break; /* store results, /btw */
    }
}

static void chat_fini(void *state)
{
    gw_chat *c = *(gw_chat **)state;
    gw_shared_unref(c->sh);
    rt_free(c->key);
    gw_source_fini(&c->origin);
    rt_free(c->session_id);
    rt_free(c->context);
    rt_free(c->home_hint);
    rt_free(c->personality);
    rt_free(c->ephemeral);
    rt_free(c->model);
    for (size_t i = 0; i < c->ntargets; i++)
        gw_target_fini(&c->targets[i].t);
    rt_free(c->targets);
    rt_free(c->running_tool);
    for (size_t i = 0; i < c->napiq; i++)
        rt_msg_free(&c->apiq[i]->hdr);
    rt_free(c->apiq);
    rt_buf_fini(&c->plines);
    rt_free(c->last_tool);
    rt_free(c->last_line);
    rt_free(c->asks);
    gw_mediaq_free(c->mq);
    gw_target_fini(&c->ctl_to);
    gw_cmds_free(c->cmds);
    for (size_t i = 0; i < c->ninbox; i++) {
        rt_free(c->inbox[i].platform);
        rt_free(c->inbox[i].message_id);
    }
    rt_free(c->inbox);
    rt_free(c);
}

static const rt_actor_type chat_type = {"chat", chat_behave, chat_fini, sizeof(gw_chat *)};

rt_ref gw_chat_spawn(rt_ctx *cx, const gw_chat_init *in)
{
    gw_chat *c = rt_xcalloc(1, sizeof(*c));
    c->sh = gw_shared_ref(in->shared);
    c->key = rt_xstrdup(in->key);
    gw_source_copy(&c->origin, in->origin);
    c->adapter = in->adapter;
    c->caps = in->caps;
    c->session_id = rt_xstrdup(in->session_id);
    c->existing = in->existing;
    c->context = in->context ? rt_xstrdup(in->context) : NULL;
    c->home_hint = in->home_hint ? rt_xstrdup(in->home_hint) : NULL;
    c->progress_mode = in->progress_mode;
    rt_buf_init(&c->plines, 64 * 1024);
    rt_spawn_opts o = {.flags = RT_SPAWN_TRAP_EXIT};
    rt_ref ref = rt_spawn(cx, &chat_type, &c, &o);
    return ref;
}

/* ================================================= for the command files */

char *gw_chat_help_text(void)
{
    return help_text();
}

const char *gw_chat_session_id(const gw_chat *c)
{
    return c->session_id;
}

const gw_source *gw_chat_origin(const gw_chat *c)
{
    return &c->origin;
}

gw_shared *gw_chat_shared(const gw_chat *c)
{
    return c->sh;
}

rt_ref gw_chat_adapter(const gw_chat *c)
{
    return c->adapter;
}

const gw_caps *gw_chat_caps(const gw_chat *c)
{
    return &c->caps;
}

bool gw_chat_busy(const gw_chat *c)
{
    return busy(c);
}

const char *gw_chat_model(const gw_chat *c)
{
    return c->model ? c->model : c->sh->model;
}

void gw_chat_say(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *text, int kind)
{
    say(cx, c, to, text, kind);
}

int gw_chat_progress_mode(const gw_chat *c)
{
    return c->progress_mode;
}

void gw_chat_set_progress_mode(gw_chat *c, int mode)
{
    c->progress_mode = mode;
}

void gw_chat_switch_session(rt_ctx *cx, gw_chat *c, const char *session_id)
{
    if (busy(c) && c->session)
        rt_interrupt(cx, c->session, AG_INT_STOP);
    stop_session(cx, c);
    c->answered = c->next_input; /* whatever was running is over */
    rt_free(c->session_id);
    c->session_id = rt_xstrdup(session_id);
    c->existing = true; /* the next turn loads its transcript from state.db */
    rt_free(c->model);
    c->model = NULL;
    c->in_tokens = c->out_tokens = c->last_prompt = 0;
    c->nasks = 0;
    const gw_target *cur = current_target(c);
    if (cur)
        set_typing(cx, c, cur, false);
    report(cx, c, true);
}

/* ============================================================ messages */

static void drop_update(rt_msg *m)
{
    rt_free(((gw_chat_update *)m)->key);
    rt_free(((gw_chat_update *)m)->session_id);
}

rt_msg *gw_chat_update_new(const char *key, const char *session_id)
{
    gw_chat_update *u = RT_MSG_NEW(gw_chat_update, GW_CHAT_UPDATE);
    u->key = rt_xstrdup(key);
    u->session_id = rt_xstrdup(session_id);
    u->hdr.drop = drop_update;
    return &u->hdr;
}

static void drop_reset(rt_msg *m)
{
    rt_free(((gw_chat_reset *)m)->session_id);
    rt_free(((gw_chat_reset *)m)->reason);
}

rt_msg *gw_chat_reset_new(const char *session_id, const char *reason, bool notify)
{
    gw_chat_reset *r = RT_MSG_NEW(gw_chat_reset, GW_CHAT_RESET);
    r->session_id = rt_xstrdup(session_id);
    r->reason = reason ? rt_xstrdup(reason) : NULL;
    r->notify = notify;
    r->hdr.drop = drop_reset;
    return &r->hdr;
}

static void drop_drain(rt_msg *m)
{
    rt_free(((gw_chat_drain *)m)->notice);
}

rt_msg *gw_chat_drain_new(const char *notice, int code)
{
    gw_chat_drain *d = RT_MSG_NEW(gw_chat_drain, GW_CHAT_DRAIN);
    d->notice = notice ? rt_xstrdup(notice) : NULL;
    d->code = code;
    d->hdr.drop = drop_drain;
    return &d->hdr;
}

void gw__drop_sethome(rt_msg *m)
{
    gw_chat_sethome *h = (gw_chat_sethome *)m;
    gw_target_fini(&h->to);
    rt_free(h->platform);
    rt_free(h->chat_id);
    rt_free(h->chat_name);
    rt_free(h->thread_id);
}
