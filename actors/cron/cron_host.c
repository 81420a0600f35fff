/*
 * cron_host — the session a cron run gets in a Hermes process (see cron_host_spawn in
 * cron.h): the original's run_job agent (gateway.md §6.4) — every toolset but cronjob,
 * messaging, clarify (and memory), no memory, no context files, platform "cron", nobody to answer
 * approvals (the cron actor denies them), in MESSAGING_CWD or the home directory.
 *
 * Threads: called on a worker by the cron actor; hm_host's getters are thread-safe.
 */
#include "cron.h"

#include "hm_host.h"
#include "rt_alloc.h"

#include <stdlib.h>

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

rt_ref cron_host_spawn(rt_ctx *cx, const gw_session_req *req, void *arg)
{
    hm_host *h = arg;
    const char *cwd = hm_config_getenv(h->cfg, "MESSAGING_CWD", NULL);
    if (!cwd || !*cwd)
        cwd = getenv("HOME");
    tool_env *env = hm_host_tool_env(h, "cron", cwd, false);
    env->session_key = dupn(req->session_key);
    env->session_id = dupn(req->session_id);
    env->task_id = dupn(req->session_key);
    /* the original disables cronjob, messaging and clarify; its memory tool answers "not
     * available" in a run without memory, which leaving the toolset out says better */
    static const char *const disabled[] = {"cronjob", "messaging", "clarify", "memory", NULL};
    const char **names = tool_resolve(NULL, disabled, env, NULL, NULL);
    size_t n = 0;
    while (names[n])
        n++;
    env->enabled_tools = rt_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        env->enabled_tools[i] = rt_xstrdup(names[i]);
    ag_session_opts o;
    hm_host_session_opts(h, &o);
    o.session_id = req->session_id;
    o.source = "cron";
    if (req->model && *req->model)
        o.model = req->model;
    o.env = env;
    o.tools = names;
    o.stream = false;
    o.resume = false;
    o.skip_memory = true;
    o.skip_context_files = true;
    rt_ref ref = ag_session_spawn(cx, &o, NULL);
    rt_free(names);
    tool_env_unref(env);
    return ref;
}
