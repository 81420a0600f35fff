/*
 * ag_prompt_svc — the detached actor that builds system prompts. Building one reads files
 * (memory, skills, AGENTS.md), which must not happen on a worker; sessions ask here once
 * each and get the text back as a message.
 */
#include "ag_int.h"
#include "rt_alloc.h"

static void free_opts(ag_prompt_opts *o)
{
    rt_free((char *)o->hermes_home);
    rt_free((char *)o->cwd);
    rt_free((char *)o->platform);
    rt_free((char *)o->system_message);
    for (const char *const *t = o->tools; t && *t; t++)
        rt_free((char *)*t);
    rt_free((void *)o->tools);
}

static void drop_req(rt_msg *m)
{
    free_opts(&((ag_msg_prompt_req *)m)->opts);
}

static void drop_reply(rt_msg *m)
{
    rt_free(((ag_msg_prompt_reply *)m)->text);
}

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

rt_msg *ag_prompt_req_new(rt_ref reply_to, uint64_t tag, const ag_prompt_opts *o)
{
    ag_msg_prompt_req *m = RT_MSG_NEW(ag_msg_prompt_req, AG_MSG_PROMPT_REQ);
    m->reply_to = reply_to;
    m->tag = tag;
    m->opts = *o;
    m->opts.hermes_home = dupn(o->hermes_home);
    m->opts.cwd = dupn(o->cwd);
    m->opts.platform = dupn(o->platform);
    m->opts.system_message = dupn(o->system_message);
    size_t n = 0;
    while (o->tools && o->tools[n])
        n++;
    const char **tools = rt_xcalloc(n + 1, sizeof(*tools));
    for (size_t i = 0; i < n; i++)
        tools[i] = rt_xstrdup(o->tools[i]);
    m->opts.tools = tools;
    m->hdr.drop = drop_req;
    return &m->hdr;
}

static void svc_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type != AG_MSG_PROMPT_REQ)
        return;
    ag_msg_prompt_req *q = (ag_msg_prompt_req *)m;
    ag_msg_prompt_reply *r = RT_MSG_NEW(ag_msg_prompt_reply, AG_MSG_PROMPT_REPLY);
    r->tag = q->tag;
    r->text = ag_prompt_build(&q->opts); /* blocking file reads: this actor is detached */
    r->hdr.drop = drop_reply;
    rt_send(cx, q->reply_to, &r->hdr);
}

static const rt_actor_type svc_type = {"prompts", svc_behave, NULL, 0};

rt_ref ag_prompt_service_start(rt_ctx *cx)
{
    rt_spawn_opts o = {.flags = RT_SPAWN_DETACHED};
    return rt_spawn(cx, &svc_type, NULL, &o);
}
