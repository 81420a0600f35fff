/*
 * ag_save — the turn's user message on its way into state.db (rule 2 of ag_session.c: the
 * user's message is durable before the model sees it), and what happens when the disk is full.
 *
 * The message's append asks for its own ack. (An ST_MSG_SYNC is not enough: after a write
 * failed and its transaction was rolled back, a SYNC starts from a clean slate and is acked
 * as if all was well.) So does the session row's create when the turn sends it; the store
 * acks in order, so that ack comes first, and an append refused for an unknown session
 * (-ENOENT) because the create failed for lack of space counts as the create's error.
 *
 * States (enum ag_save_state): NONE → FLIGHT (append sent) → DONE | FAILED. The session
 * decides in phase PERSIST (ag__save_continue): DONE goes on (ag__saved); FAILED with a
 * retryable error (-ENOSPC, -EIO) arms a retry (WAIT) — after 1 s, doubling up to 30 s — and
 * tells the user once; the timer sends the append again (FLIGHT). Past persist_retry_max_ms,
 * or at once for any other error, the turn ends with the refusal, and the message leaves the
 * transcript (it is neither in state.db nor seen by the model: "try again" must not send it
 * twice).
 *
 * While it waits the session stays in phase PERSIST: new messages are kept pending (bounded
 * by AG_PENDING_MAX) and join this turn once the message is saved, controls are busy, and
 * nothing blocks or spins: the wait is a timer message.
 *
 * Threads: the session's behaviour only.
 */
#include "ag_int.h"
#include "ag_persist.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"

#include <errno.h>
#include <string.h>

/* gw_chat.c knows a turn waits for disk space by these words (DISK_WAIT_NOTICE): a drain
 * does not wait for such a turn. Keep them. */
static const char WAIT_TEXT[] =
    "\xe2\x9a\xa0\xef\xb8\x8f The disk holding Hermes' data is full, so "
    "I could not save your message yet. I'll answer as soon as there "
    "is space again; there is no need to send it again.";
static const char DROPPED_TEXT[] = "The message that was waiting for disk space was dropped; "
                                   "nothing was sent to the model.";

bool ag_save_retryable(int err)
{
    return st_retryable(err);
}

static int64_t now_ms(rt_ctx *cx)
{
    return rt_now_ns(rt_ctx_runtime(cx)) / 1000000;
}

static void send_append(rt_ctx *cx, ag_session *s)
{
    s->save_tag = ++s->next_tag;
    s->save_attempts++;
    s->save_state = AG_SAVE_FLIGHT;
    ag_persist_message(cx, s->store, s->session_id, cJSON_GetArrayItem(s->messages, s->save_idx),
                       rt_self(cx), s->save_tag);
}

void ag__save_create(rt_ctx *cx, ag_session *s, int resend_upto)
{
    if (!s->store)
        return;
    s->create_tag = ++s->next_tag;
    s->create_err = 0;
    ag_persist_create_session(cx, s->store, rt_self(cx), s->create_tag, s->session_id, s->source,
                              s->user_id, s->model);
    /* The messages appended while the row was missing were refused with it. */
    for (int i = 0; i < resend_upto; i++)
        ag_persist_message(cx, s->store, s->session_id, cJSON_GetArrayItem(s->messages, i), 0, 0);
}

void ag__save_user(rt_ctx *cx, ag_session *s, cJSON *m)
{
    if (!s->store) {
        ag__append(cx, s, m, 0);
        return;
    }
    cJSON_AddItemToArray(s->messages, m);
    s->save_idx = cJSON_GetArraySize(s->messages) - 1;
    s->save_attempts = 0; /* a new message (the turn's, or what joined it): a new count */
    st_backoff_reset(&s->save_backoff);
    send_append(cx, s);
}

bool ag__save_on_ack(rt_ctx *cx, ag_session *s, uint64_t tag, int err, const char *errmsg)
{
    if (!tag)
        return false;
    if (tag == s->create_tag) {
        s->create_tag = 0;
        s->create_err = err == -EEXIST ? 0 : err; /* an existing row is fine */
        return true;
    }
    if (tag != s->save_tag || s->save_state != AG_SAVE_FLIGHT)
        return false;
    s->save_tag = 0;
    if (!err) {
        s->save_state = AG_SAVE_DONE;
        if (s->save_attempts > 1)
            RT_INFO("agent", "session %s: the message is saved after %d attempts; answering it",
                    s->session_id, s->save_attempts);
    } else {
        bool row_missing = err == -ENOENT && ag_save_retryable(s->create_err);
        s->save_state = AG_SAVE_FAILED;
        s->save_err = row_missing ? s->create_err : err;
        rt_free(s->save_errmsg);
        s->save_errmsg = !row_missing && errmsg && *errmsg ? rt_xstrdup(errmsg) : NULL;
    }
    if (s->phase == AG_PH_PERSIST)
        ag__save_continue(cx, s);
    return true;
}

/* Take the unsaved message out of the transcript (it is the last one: nothing is appended
 * while the turn waits in PROMPT or PERSIST). */
static void forget_message(ag_session *s)
{
    int n = cJSON_GetArraySize(s->messages);
    if (s->save_idx >= 0 && s->save_idx < n) {
        cJSON_DeleteItemFromArray(s->messages, s->save_idx);
        if (s->frozen_upto > s->save_idx)
            ag_frozen_reset(&s->frozen, &s->nfrozen, &s->frozen_upto);
    }
}

static void refuse(rt_ctx *cx, ag_session *s)
{
    int err = s->save_err;
    /* The message could not be made durable: say so instead of answering from a transcript
     * that would be lost on a restart. */
    char *msg = rt_xasprintf("Could not save your message (%s). Nothing was sent to the model; "
                             "please try again.",
                             s->save_errmsg ? s->save_errmsg : rt_strerror(err));
    forget_message(s);
    ag__end_turn(cx, s, NULL, err, msg, false);
}

void ag__save_continue(rt_ctx *cx, ag_session *s)
{
    if (s->save_state == AG_SAVE_DONE) {
        s->save_state = AG_SAVE_NONE;
        s->save_idx = -1;
        ag__saved(cx, s);
        return;
    }
    if (s->save_state != AG_SAVE_FAILED)
        return; /* FLIGHT, WAIT: the ack or the timer comes */
    if (!ag_save_retryable(s->save_err) || s->save_max_ms < 0) {
        refuse(cx, s);
        return;
    }
    int64_t now = now_ms(cx);
    if (s->save_backoff.delay_ms <= 0) /* the first failure of this message */
        RT_WARN("agent",
                "session %s: the user's message could not be saved (%s); keeping it and "
                "retrying for up to %lld s",
                s->session_id, s->save_errmsg ? s->save_errmsg : rt_strerror(s->save_err),
                (long long)(s->save_max_ms / 1000));
    /* 1 s doubling to 30 s, the last one at the deadline (the store's own schedule) */
    int64_t delay = st_backoff_next(&s->save_backoff, now, s->save_max_ms);
    if (delay < 0) {
        RT_WARN("agent",
                "session %s: the message is still not saved after %lld s (%d attempts): "
                "refused",
                s->session_id, (long long)((now - s->save_backoff.since_ms) / 1000),
                s->save_attempts);
        refuse(cx, s);
        return;
    }
    rt_msg_timeout *t = RT_MSG_NEW(rt_msg_timeout, AG_MSG_SAVE_RETRY);
    t->tag = ++s->save_gen;
    s->save_timer = rt_send_after(cx, rt_self(cx), &t->hdr, delay);
    s->save_state = AG_SAVE_WAIT;
    RT_DEBUG("agent", "session %s: retrying the save in %lld ms", s->session_id, (long long)delay);
    if (!s->save_noticed) {
        s->save_noticed = true;
        ag__send_status(cx, s, WAIT_TEXT);
    }
}

void ag__save_on_timer(rt_ctx *cx, ag_session *s, rt_msg_timeout *t)
{
    if (t->tag != s->save_gen || s->save_state != AG_SAVE_WAIT)
        return; /* the turn it was for has ended */
    s->save_timer = 0;
    if (ag_save_retryable(s->create_err))
        ag__save_create(cx, s, s->save_idx);
    send_append(cx, s);
}

void ag__save_interrupted(rt_ctx *cx, ag_session *s, int code)
{
    switch (s->save_state) {
    case AG_SAVE_NONE:
    case AG_SAVE_DONE: return; /* durable: it stays, as after any interrupt */
    case AG_SAVE_FLIGHT:
        if (s->save_attempts == 1)
            return; /* the first attempt, nothing known to be wrong: as before any failure */
        break;
    default: break;
    }
    if (code == AG_INT_SHUTDOWN) {
        /* Left to the crash-recovery path: one last attempt, unacknowledged (when space is
         * back, the next start finds it unanswered in state.db and answers it); no refusal. */
        if (s->save_state != AG_SAVE_FLIGHT && ag_save_retryable(s->save_err)) {
            if (ag_save_retryable(s->create_err))
                ag__save_create(cx, s, s->save_idx);
            ag_persist_message(cx, s->store, s->session_id,
                               cJSON_GetArrayItem(s->messages, s->save_idx), 0, 0);
        }
        return;
    }
    if (s->save_state == AG_SAVE_FLIGHT) /* a retry is at the store: undo it if it lands */
        ag_persist_truncate(cx, s->store, s->session_id, s->save_idx);
    forget_message(s);
    if (s->save_noticed)
        ag__send_status(cx, s, DROPPED_TEXT);
}

void ag__save_reset(rt_ctx *cx, ag_session *s)
{
    if (s->save_timer) {
        (void)rt_timer_cancel(cx, s->save_timer);
        s->save_timer = 0;
    }
    s->save_gen++;
    s->save_state = AG_SAVE_NONE;
    s->save_idx = -1;
    s->save_tag = 0;
    s->save_err = 0;
    rt_free(s->save_errmsg);
    s->save_errmsg = NULL;
    s->save_attempts = 0;
    st_backoff_reset(&s->save_backoff);
    s->save_noticed = false;
}
