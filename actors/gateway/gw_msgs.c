/*
 * gw_msgs — constructors of the gateway's messages (gw.h).
 */
#include "gw.h"
#include "gw_int.h"

#include "rt_alloc.h"
#include "rt_util.h"

#include <string.h>

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

void gw_source_copy(gw_source *d, const gw_source *s)
{
    d->platform = dupn(s->platform);
    d->chat_id = dupn(s->chat_id);
    d->chat_name = dupn(s->chat_name);
    d->chat_type = dupn(s->chat_type);
    d->user_id = dupn(s->user_id);
    d->user_name = dupn(s->user_name);
    d->thread_id = dupn(s->thread_id);
    d->user_id_alt = dupn(s->user_id_alt);
}

void gw_source_fini(gw_source *s)
{
    rt_free(s->platform);
    rt_free(s->chat_id);
    rt_free(s->chat_name);
    rt_free(s->chat_type);
    rt_free(s->user_id);
    rt_free(s->user_name);
    rt_free(s->thread_id);
    rt_free(s->user_id_alt);
    memset(s, 0, sizeof(*s));
}

void gw_target_copy(gw_target *d, const gw_target *s)
{
    d->chat_id = dupn(s->chat_id);
    d->thread_id = dupn(s->thread_id);
    d->reply_to = dupn(s->reply_to);
    d->request = s->request;
}

void gw_target_fini(gw_target *t)
{
    rt_free(t->chat_id);
    rt_free(t->thread_id);
    rt_free(t->reply_to);
    memset(t, 0, sizeof(*t));
}

static void drop_event(rt_msg *m)
{
    gw_msg_event *e = (gw_msg_event *)m;
    gw_source_fini(&e->src);
    gw_target_fini(&e->reply);
    rt_free(e->text);
    rt_free(e->message_id);
    rt_free(e->session_id);
    rt_free(e->ephemeral);
    cJSON_Delete(e->history);
    for (size_t i = 0; i < e->nmedia; i++)
        rt_free(e->media[i]);
    rt_free(e->media);
}

gw_msg_event *gw_event_take(gw_msg_event *from, uint32_t type)
{
    gw_msg_event *e = RT_MSG_NEW(gw_msg_event, type);
    e->src = from->src;
    e->reply = from->reply;
    e->text = from->text;
    e->message_id = from->message_id;
    e->session_id = from->session_id;
    e->kind = from->kind;
    e->media = from->media;
    e->nmedia = from->nmedia;
    e->adapter = from->adapter;
    e->internal = from->internal;
    e->ephemeral = from->ephemeral;
    e->history = from->history;
    e->seq = from->seq;
    from->ephemeral = NULL;
    from->history = NULL;
    memset(&from->src, 0, sizeof(from->src));
    memset(&from->reply, 0, sizeof(from->reply));
    from->text = from->message_id = from->session_id = NULL;
    from->media = NULL;
    from->nmedia = 0;
    e->hdr.drop = drop_event;
    return e;
}

gw_msg_event *gw_event_new(const char *platform, const char *chat_type, const char *chat_id,
                           const char *user_id, const char *text)
{
    gw_msg_event *e = RT_MSG_NEW(gw_msg_event, GW_MSG_EVENT);
    e->src.platform = dupn(platform);
    e->src.chat_type = dupn(chat_type);
    e->src.chat_id = dupn(chat_id);
    e->src.user_id = dupn(user_id);
    e->reply.chat_id = dupn(chat_id);
    e->text = rt_xstrdup(text ? text : "");
    e->hdr.drop = drop_event;
    return e;
}

static void drop_adapter(rt_msg *m)
{
    rt_free(((gw_msg_adapter *)m)->platform);
    rt_free(((gw_msg_adapter *)m)->home_channel);
}

rt_msg *gw_adapter_up_new(const char *platform, rt_ref ref, const gw_caps *caps,
                          const char *home_channel)
{
    gw_msg_adapter *a = RT_MSG_NEW(gw_msg_adapter, GW_MSG_ADAPTER_UP);
    a->platform = dupn(platform);
    a->ref = ref;
    if (caps)
        a->caps = *caps;
    a->home_channel = dupn(home_channel);
    a->hdr.drop = drop_adapter;
    return &a->hdr;
}

rt_msg *gw_adapter_down_new(const char *platform, rt_ref ref)
{
    gw_msg_adapter *a = RT_MSG_NEW(gw_msg_adapter, GW_MSG_ADAPTER_DOWN);
    a->platform = dupn(platform);
    a->ref = ref;
    a->hdr.drop = drop_adapter;
    return &a->hdr;
}

static void drop_text(rt_msg *m)
{
    gw_out_text *t = (gw_out_text *)m;
    gw_target_fini(&t->to);
    rt_free(t->text);
    rt_free(t->tool);
    rt_free(t->emoji);
    rt_free(t->label);
}

rt_msg *gw_out_text_new(uint32_t type, const gw_target *to, const char *text, int kind)
{
    gw_out_text *t = RT_MSG_NEW(gw_out_text, type);
    gw_target_copy(&t->to, to);
    t->text = rt_xstrdup(text ? text : "");
    t->kind = kind;
    t->part = t->parts = 1;
    t->hdr.drop = drop_text;
    return &t->hdr;
}

rt_msg *gw_out_progress_new(const gw_target *to, const char *line, const char *tool,
                            const char *emoji, const char *label)
{
    gw_out_text *t = (gw_out_text *)gw_out_text_new(GW_OUT_TEXT, to, line, GW_TEXT_PROGRESS);
    t->tool = dupn(tool);
    t->emoji = dupn(emoji);
    t->label = dupn(label);
    return &t->hdr;
}

static void drop_typing(rt_msg *m)
{
    gw_target_fini(&((gw_out_typing *)m)->to);
}

rt_msg *gw_out_typing_new(const gw_target *to, bool on)
{
    gw_out_typing *t = RT_MSG_NEW(gw_out_typing, GW_OUT_TYPING);
    gw_target_copy(&t->to, to);
    t->on = on;
    t->hdr.drop = drop_typing;
    return &t->hdr;
}

static void drop_end(rt_msg *m)
{
    gw_out_turn_end *e = (gw_out_turn_end *)m;
    gw_target_fini(&e->to);
    rt_free(e->session_id);
}

rt_msg *gw_out_turn_end_new(const gw_target *to, int outcome, const char *session_id)
{
    gw_out_turn_end *e = RT_MSG_NEW(gw_out_turn_end, GW_OUT_TURN_END);
    gw_target_copy(&e->to, to);
    e->outcome = outcome;
    e->session_id = dupn(session_id);
    e->hdr.drop = drop_end;
    return &e->hdr;
}

rt_msg *gw_sent_new(uint64_t delivery, int err, const char *errmsg)
{
    gw_msg_sent *m = RT_MSG_NEW(gw_msg_sent, GW_MSG_SENT);
    m->delivery = delivery;
    m->err = err;
    if (errmsg)
        rt_strlcpy(m->errmsg, errmsg, sizeof(m->errmsg));
    return &m->hdr;
}

void gw_ack(rt_ctx *cx, rt_ref gateway, uint64_t delivery, int err, bool permanent,
            int64_t retry_after_ms, const char *errmsg)
{
    if (!gateway || !delivery)
        return;
    gw_msg_sent *s =
        (gw_msg_sent *)gw_sent_new(delivery, err, err && !errmsg ? rt_strerror(err) : errmsg);
    s->permanent = permanent;
    s->retry_after_ms = retry_after_ms;
    rt_send(cx, gateway, &s->hdr);
}

static void drop_deliver(rt_msg *m)
{
    gw_msg_deliver *d = (gw_msg_deliver *)m;
    rt_free(d->platform);
    rt_free(d->chat_id);
    rt_free(d->thread_id);
    rt_free(d->text);
}

rt_msg *gw_deliver_new(const char *platform, const char *chat_id, const char *thread_id,
                       const char *text, rt_ref reply_to, uint64_t tag)
{
    gw_msg_deliver *d = RT_MSG_NEW(gw_msg_deliver, GW_MSG_DELIVER);
    d->platform = dupn(platform);
    d->chat_id = dupn(chat_id);
    d->thread_id = dupn(thread_id);
    d->text = rt_xstrdup(text ? text : "");
    d->reply_to = reply_to;
    d->tag = tag;
    d->hdr.drop = drop_deliver;
    return &d->hdr;
}

void gw__drop_delivered(rt_msg *m)
{
    rt_free(((gw_msg_delivered *)m)->chat_id);
}

static void drop_cancel(rt_msg *m)
{
    gw_msg_cancel *c = (gw_msg_cancel *)m;
    rt_free(c->platform);
    rt_free(c->session_id);
    gw_target_fini(&c->to);
}

rt_msg *gw_cancel_new(const char *platform, const gw_target *to, const char *session_id,
                      rt_ref adapter)
{
    gw_msg_cancel *c = RT_MSG_NEW(gw_msg_cancel, GW_MSG_CANCEL);
    c->platform = dupn(platform);
    gw_target_copy(&c->to, to);
    c->session_id = dupn(session_id);
    c->adapter = adapter;
    c->hdr.drop = drop_cancel;
    return &c->hdr;
}
