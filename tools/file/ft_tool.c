/*
 * ft_tool — see ft_tool.h.
 */
#include "ft_tool.h"

#include "ft_fs.h"

void ft_tool_step(rt_ctx *cx)
{
    rt_send(cx, rt_self(cx), rt_msg_new(FT_MSG_STEP, sizeof(rt_msg)));
}

void ft_tool_path(const tool_run *run, const char *arg, char **display, char **abs)
{
    *display = ft_expand_user(arg);
    *abs = ft_abs(run->env ? run->env->cwd : NULL, *display);
}
