/*
 * ag_proto — constructors of the messages others send a session (ag_session.h). Kept apart
 * from the session so that tools which drive sessions (delegate_task) can build them without
 * linking the agent loop.
 */
#include "ag_session.h"

#include "rt_alloc.h"

static void drop_input(rt_msg *m)
{
    rt_free(((ag_msg_input *)m)->text);
    rt_free(((ag_msg_input *)m)->sender);
}
static void drop_answer(rt_msg *m)
{
    rt_free(((ag_msg_answer *)m)->text);
}
static void drop_text(rt_msg *m)
{
    rt_free(((ag_msg_text *)m)->text);
}

rt_msg *ag_input_new(const char *text, rt_ref sink, uint64_t input_id)
{
    ag_msg_input *m = RT_MSG_NEW(ag_msg_input, AG_MSG_INPUT);
    m->text = rt_xstrdup(text ? text : "");
    m->sink = sink;
    m->input_id = input_id;
    m->hdr.drop = drop_input;
    return &m->hdr;
}

rt_msg *ag_answer_new(uint64_t ask_id, int answer, const char *text)
{
    ag_msg_answer *m = RT_MSG_NEW(ag_msg_answer, AG_MSG_ANSWER);
    m->ask_id = ask_id;
    m->answer = answer;
    m->text = (text ? rt_xstrdup(text) : NULL);
    m->hdr.drop = drop_answer;
    return &m->hdr;
}

rt_msg *ag_text_new(uint32_t type, const char *text)
{
    ag_msg_text *m = RT_MSG_NEW(ag_msg_text, type);
    m->text = (text ? rt_xstrdup(text) : NULL);
    m->hdr.drop = drop_text;
    return &m->hdr;
}

rt_msg *ag_control_new(int op, rt_ref reply_to, uint64_t tag)
{
    ag_msg_control *m = RT_MSG_NEW(ag_msg_control, AG_MSG_CONTROL);
    m->op = op;
    m->reply_to = reply_to;
    m->tag = tag;
    return &m->hdr;
}
