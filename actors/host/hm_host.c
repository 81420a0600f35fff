/*
 * hm_host — see hm_host.h.
 */
#include "hm_host.h"
#include "skl_admin.h"
#include "tool_code.h"

#include "hm_files.h"
#include "proxy.h"
#include "rt_alloc.h"
#include "rt_http.h"
#include "rt_log.h"
#include "rt_lws.h"
#include "rt_proc.h"
#include "rt_reactor.h"
#include "rt_signal.h"
#include "rt_util.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OPENROUTER_BASE "https://openrouter.ai/api/v1"
#define ANTHROPIC_BASE  "https://api.anthropic.com/v1"

/* The process registry of the terminal tool, when that tool is linked in. */
int term_procs_start(rt_ctx *cx) __attribute__((weak));

static char *dupn(const char *s)
{
    return s ? rt_xstrdup(s) : NULL;
}

static const char *env_of(const hm_config *cfg, const char *name)
{
    const char *v = hm_config_getenv(cfg, name, NULL);
    return v && *v ? v : NULL;
}

/* ================================================================ provider */

void hm_provider_opts_fini(llm_provider_opts *o)
{
    rt_free((char *)o->name);
    rt_free((char *)o->base_url);
    rt_free((char *)o->api_key);
    rt_free((char *)o->model);
    rt_free((char *)o->reasoning_effort);
    memset(o, 0, sizeof(*o));
}

static char *trim_slash(const char *url)
{
    char *s = rt_xstrdup(url);
    size_t n = strlen(s);
    while (n && s[n - 1] == '/')
        s[--n] = '\0';
    return s;
}

static int resolve_openai(const hm_config *cfg, const char *req, llm_provider_opts *o,
                          bool *configured)
{
    const char *base = env_of(cfg, "OPENAI_BASE_URL");
    const char *cfg_provider = hm_config_str(cfg, "model.provider");
    bool cfg_auto = !cfg_provider || !*cfg_provider || strcmp(cfg_provider, "auto") == 0;
    const char *cfg_base =
        hm_config_is_set(cfg, "model.base_url") ? hm_config_str(cfg, "model.base_url") : NULL;
    if (!base && cfg_base && *cfg_base && (strcmp(req, "custom") == 0 || cfg_auto))
        base = cfg_base;
    if (!base)
        base = env_of(cfg, "OPENROUTER_BASE_URL");
    if (!base)
        base = OPENROUTER_BASE;
    bool openrouter = strstr(base, "openrouter") != NULL;
    /* OpenRouter's own key wins on OpenRouter (as later upstream), OpenAI's elsewhere. */
    const char *key =
        openrouter ? env_of(cfg, "OPENROUTER_API_KEY") : env_of(cfg, "OPENAI_API_KEY");
    if (!key)
        key = openrouter ? env_of(cfg, "OPENAI_API_KEY") : env_of(cfg, "OPENROUTER_API_KEY");
    o->api = LLM_API_OPENAI;
    o->name = rt_xstrdup(openrouter ? "openrouter" : "custom");
    o->base_url = trim_slash(base);
    o->api_key = dupn(key);
    /* A custom endpoint may be a keyless local server; OpenRouter needs a key. */
    *configured = key || !openrouter;
    return 0;
}

int hm_resolve_provider(const hm_config *cfg, const char *requested, llm_provider_opts *o,
                        char **name, bool *configured, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    char req[32];
    const char *r = requested ? requested : env_of(cfg, "HERMES_INFERENCE_PROVIDER");
    if (!r)
        r = hm_config_str(cfg, "model.provider");
    snprintf(req, sizeof(req), "%s", r && *r ? r : "auto");
    for (char *p = req; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strcmp(req, "nous") == 0 || strcmp(req, "openai-codex") == 0) {
        snprintf(err, errlen,
                 "provider '%s' (OAuth login) is not supported by this build; use OpenRouter "
                 "(OPENROUTER_API_KEY), an OpenAI-compatible endpoint (OPENAI_BASE_URL) or "
                 "Anthropic (ANTHROPIC_API_KEY)",
                 req);
        return -ENOTSUP;
    }
    bool anthropic = strcmp(req, "anthropic") == 0;
    if (strcmp(req, "auto") == 0)
        anthropic = env_of(cfg, "ANTHROPIC_API_KEY") && !env_of(cfg, "OPENROUTER_API_KEY") &&
                    !env_of(cfg, "OPENAI_API_KEY") && !env_of(cfg, "OPENAI_BASE_URL") &&
                    !hm_config_is_set(cfg, "model.base_url");
    else if (!anthropic && strcmp(req, "openrouter") != 0 && strcmp(req, "custom") != 0 &&
             strcmp(req, "openai") != 0) {
        snprintf(err, errlen, "unknown provider '%s' (valid: auto, openrouter, custom, anthropic)",
                 req);
        return -EINVAL;
    }
    if (anthropic) {
        const char *key = env_of(cfg, "ANTHROPIC_API_KEY");
        const char *base = env_of(cfg, "ANTHROPIC_BASE_URL");
        o->api = LLM_API_ANTHROPIC;
        o->name = rt_xstrdup("anthropic");
        o->base_url = trim_slash(base ? base : ANTHROPIC_BASE);
        o->api_key = dupn(key);
        *configured = key != NULL;
    } else {
        resolve_openai(cfg, req, o, configured);
    }
    o->reasoning_effort = dupn(hm_config_str(cfg, "agent.reasoning_effort"));
    *name = rt_xstrdup(o->name);
    return 0;
}

/* ============================================================ start and stop */

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

static int start_config(hm_host *h, const hm_host_opts *o, char *err, size_t errlen)
{
    h->home = o->home ? rt_xstrdup(o->home) : hm_config_home();
    int rc = hm_config_ensure_home(h->home);
    if (rc)
        return fail(err, errlen, rc, "cannot create HERMES_HOME %s", h->home);
    hm_config_diag diag;
    hm_config_diag_init(&diag);
    h->cfg = hm_config_load(h->home, HM_LOAD_SETENV | HM_LOAD_LOG, &diag, &rc);
    if (!h->cfg) {
        char first[512];
        snprintf(first, sizeof(first), "%s", diag.n ? diag.items[0].msg : rt_strerror(rc));
        hm_config_diag_fini(&diag);
        return fail(err, errlen, rc ? rc : -EINVAL, "%s", first);
    }
    hm_config_diag_fini(&diag);
    hm_config_export_env(h->cfg, o->ctx); /* before any thread starts */
    const char *level = getenv("HERMES_LOG_LEVEL");
    if (level)
        (void)rt_log_set_level_name(level); /* an unknown name keeps the default */
    rt_log_set_debug(getenv("HERMES_LOG_DEBUG"));
    return 0;
}

static int start_services(hm_host *h, const hm_host_opts *o, char *err, size_t errlen)
{
    rt_options ro = {.workers = o->workers};
    h->rt = rt_runtime_new(&ro);
    h->reactor = rt_reactor_start(h->rt);
    if (rt_http_init(h->reactor) < 0 || rt_proc_init(h->reactor) < 0)
        return fail(err, errlen, -EIO, "the I/O services did not start");
    if (o->lws) {
        int e = 0;
        h->lws = rt_lws_start(h->rt, &e);
        if (!h->lws)
            return fail(err, errlen, e ? e : -EIO, "the WebSocket/HTTP service did not start: %s",
                        rt_strerror(e));
    }
    rt_ctx *cx = rt_ctx_external(h->rt);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/state.db", h->home);
    st_store_opts so = {.path = path, .readers = 2};
    int64_t keep_s = hm_config_int(h->cfg, "agent.persist_retry_max_s");
    so.record_retry_max_ms = keep_s > 0 ? keep_s * 1000 : -1; /* as the sessions' retries */
    char serr[256];
    int rc = st_store_start(cx, &so, &h->store, serr, sizeof(serr));
    if (rc)
        return fail(err, errlen, rc, "state.db: %s", serr);
    h->prompts = ag_prompt_service_start(cx);
    hm_files_start(cx);
    if (term_procs_start)
        term_procs_start(cx);
    return 0;
}

static int start_provider(hm_host *h, const hm_host_opts *o, char *err, size_t errlen)
{
    int rc = hm_resolve_provider(h->cfg, o->provider, &h->popts, &h->provider_name,
                                 &h->provider_configured, err, errlen);
    if (rc)
        return rc;
    if (!h->provider_configured && o->require_provider)
        return fail(err, errlen, -ENOKEY,
                    "No LLM provider is configured. Set OPENROUTER_API_KEY, or OPENAI_BASE_URL "
                    "(and OPENAI_API_KEY if the endpoint needs one), or ANTHROPIC_API_KEY — for "
                    "example: hermes config set OPENROUTER_API_KEY sk-or-...");
    h->model = rt_xstrdup(hm_config_model(h->cfg, o->ctx, o->model, NULL));
    const char *aux = env_of(h->cfg, "CONTEXT_COMPRESSION_MODEL");
    h->aux_model = dupn(aux);
    h->popts.model = rt_xstrdup(h->model);
    if (hm_config_is_set(h->cfg, "agent.api_max_retries")) {
        int64_t n = hm_config_int(h->cfg, "agent.api_max_retries");
        h->popts.max_retries = n <= 0 ? -1 : (int)(n > 20 ? 20 : n);
    }
    if (hm_config_is_set(h->cfg, "agent.api_timeout")) {
        int64_t s = hm_config_int(h->cfg, "agent.api_timeout"); /* <= 0: the default */
        h->popts.timeout_ms = s > 0 ? (s > 86400 ? 86400 : s) * 1000 : 0;
    }
    /* config.yaml or HERMES_API_MAX_INFLIGHT / HERMES_API_RATE_LIMIT; <= 0: the defaults */
    int64_t inflight = hm_config_int(h->cfg, "agent.api_max_inflight");
    h->popts.max_inflight = inflight > 0 ? (int)(inflight > 100000 ? 100000 : inflight) : 0;
    double rate = hm_config_double(h->cfg, "agent.api_rate_limit");
    h->popts.rate_per_s = rate > 0 ? rate : 0;
    h->provider = llm_provider_start(rt_ctx_external(h->rt), &h->popts);
    return 0;
}

/* The skills that ship with Hermes go into ~/.hermes/skills (skl_sync_bundled: a skill the
 * user deleted or edited is never copied again). HERMES_BUNDLED_SKILLS names another source;
 * "" turns it off. */
static void sync_bundled_skills(hm_host *h)
{
    const char *src = getenv("HERMES_BUNDLED_SKILLS");
    if (!src)
        src = HERMES_BUNDLED_SKILLS_DIR;
    if (!*src || access(src, R_OK) != 0)
        return;
    char *root = rt_xasprintf("%s/skills", h->home);
    int n = skl_sync_bundled(src, root);
    if (n > 0)
        RT_INFO("host", "%d bundled skill(s) copied into %s", n, root);
    else if (n < 0)
        RT_WARN("host", "bundled skills were not copied into %s: %s", root, rt_strerror(n));
    rt_free(root);
}

int hm_host_start(const hm_host_opts *o, hm_host **out, char *err, size_t errlen)
{
    (void)rt_signals_block(); /* first: every thread inherits the mask */
    hm_host *h = rt_xcalloc(1, sizeof(*h));
    h->ctx = o->ctx;
    int rc = start_config(h, o, err, errlen);
    if (!rc)
        rc = start_services(h, o, err, errlen);
    if (!rc)
        rc = start_provider(h, o, err, errlen);
    if (rc) {
        hm_host_stop(h);
        return rc;
    }
    tool_code_set_limits(hm_config_int(h->cfg, "code_execution.timeout"),
                         (int)hm_config_int(h->cfg, "code_execution.max_tool_calls"));
    sync_bundled_skills(h);
    *out = h;
    return 0;
}

void hm_host_stop(hm_host *h)
{
    if (!h)
        return;
    if (h->rt) {
        rt_ctx *cx = rt_ctx_external(h->rt);
        if (h->store.writer) {
            /* Everything queued before this is committed before the writer ends. */
            st_store_stop(cx, &h->store, 0, 0);
            (void)rt_wait_quiescent(h->rt, 10000); /* -ETIMEDOUT: stop anyway */
        }
        rt_lws_stop(h->lws);
        rt_reactor_stop(h->reactor);
        rt_runtime_free(h->rt);
    }
    hm_provider_opts_fini(&h->popts);
    rt_free(h->provider_name);
    rt_free(h->model);
    rt_free(h->aux_model);
    hm_config_unref(h->cfg);
    rt_free(h->home);
    rt_free(h);
}

/* ================================================================== tools */

static void warn_unknown(const char *name, void *arg)
{
    RT_WARN("config", "unknown toolset '%s' ignored", name);
}

const char **hm_host_tools(hm_host *h, const char *platform, const char *const *toolsets,
                           const tool_env *env)
{
    if (toolsets && toolsets[0])
        return tool_resolve(toolsets, NULL, env, warn_unknown, NULL);
    char path[96];
    snprintf(path, sizeof(path), "platform_toolsets.%s", platform);
    const char *list[64];
    size_t n = hm_config_list(h->cfg, path, list, 63);
    char preset[64];
    if (!n) {
        snprintf(preset, sizeof(preset), "hermes-%s",
                 strcmp(platform, "local") == 0 ? "cli" : platform);
        list[n++] = preset;
    }
    list[n] = NULL;
    return tool_resolve(list, NULL, env, warn_unknown, NULL);
}

static char **copy_list(const char **names)
{
    size_t n = 0;
    while (names && names[n])
        n++;
    char **out = rt_xcalloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = rt_xstrdup(names[i]);
    return out;
}

tool_env *hm_host_tool_env(hm_host *h, const char *platform, const char *cwd, bool interactive)
{
    tool_env *e = tool_env_new();
    e->hermes_home = rt_xstrdup(h->home);
    e->platform = rt_xstrdup(platform);
    e->interactive = interactive;
    if (cwd) {
        e->cwd = rt_xstrdup(cwd);
    } else {
        char buf[PATH_MAX];
        e->cwd = rt_xstrdup(getcwd(buf, sizeof(buf)) ? buf : "/");
    }
    int64_t t = hm_config_env_int(h->cfg, "terminal.timeout", NULL);
    e->terminal_timeout_s = t > 0 ? t : 180;
    const char *allow[256];
    size_t n = hm_config_list(h->cfg, "command_allowlist", allow, 255);
    allow[n] = NULL;
    e->command_allowlist = copy_list(allow);
    e->store = h->store.writer;
    e->spawn_child = hm_host_spawn_child;
    e->spawn_arg = h;
    int64_t mc = hm_config_int(h->cfg, "delegation.max_concurrent_children");
    e->max_children = mc > 0 ? (int)(mc > 1000 ? 1000 : mc) : 3;
    int64_t mi = hm_config_int(h->cfg, "delegation.max_iterations");
    e->child_iterations = mi > 0 ? (int)mi : 25;
    const char *sets[32];
    size_t ns = hm_config_list(h->cfg, "delegation.default_toolsets", sets, 31);
    if (ns) {
        sets[ns < 31 ? ns : 31] = NULL;
        e->child_toolsets = copy_list(sets);
    }
    return e;
}

rt_ref hm_host_spawn_child(rt_ctx *cx, const tool_child_req *req, void *arg)
{
    hm_host *h = arg;
    const tool_env *parent = req->parent;
    tool_env *env =
        hm_host_tool_env(h, parent->platform ? parent->platform : "cli", parent->cwd, false);
    env->delegate_depth = req->depth;
    env->session_key = dupn(parent->session_key);
    char *id = ag_new_session_id();
    env->session_id = rt_xstrdup(id);
    env->task_id = rt_xasprintf("subagent-%s", id); /* its own terminal */
    size_t n = 0;
    while (req->tools && req->tools[n])
        n++;
    env->enabled_tools = rt_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        env->enabled_tools[i] = rt_xstrdup(req->tools[i]);
    ag_session_opts o;
    hm_host_session_opts(h, &o);
    o.session_id = id;
    o.source = env->platform;
    if (req->model)
        o.model = req->model;
    o.ephemeral = req->instructions;
    o.max_iterations = req->max_iterations;
    o.skip_memory = true;
    o.skip_context_files = true;
    o.stream = false;
    o.env = env;
    o.tools = req->tools;
    o.approval_timeout_ms = hm_config_int(h->cfg, "approvals.gateway_timeout") * 1000;
    rt_ref ref = ag_session_spawn(cx, &o, NULL);
    tool_env_unref(env);
    rt_free(id);
    return ref;
}

void hm_host_session_opts(hm_host *h, ag_session_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->provider = h->provider;
    o->store = h->store.writer;
    o->store_reader = st_store_reader(&h->store, 0);
    o->prompt_service = h->prompts;
    o->model = h->model;
    o->max_iterations = (int)hm_config_max_turns(h->cfg, h->ctx, 0, NULL);
    o->stream = true;
    /* model.context_length: the window when the model table does not know it (local models) */
    int64_t window = hm_config_int(h->cfg, "model.context_length");
    o->context_length = window > 0 ? window : 0;
    o->compression_enabled = hm_config_env_bool(h->cfg, "compression.enabled", NULL);
    o->compression_threshold = hm_config_env_double(h->cfg, "compression.threshold", NULL);
    int64_t wait_s = hm_config_int(h->cfg, "agent.persist_retry_max_s");
    o->persist_retry_max_ms = wait_s > 0 ? wait_s * 1000 : -1; /* 0: refuse at once */
}

rt_ref hm_host_spawn_session(rt_ctx *cx, const gw_session_req *req, void *arg)
{
    hm_host *h = arg;
    proxy_opts po;
    if (proxy_opts_from_config(h->cfg, &po) == 1) {
        /* proxy mode (gateway.md §10.5): the turn runs on the remote Hermes */
        po.session_id = req->session_id;
        po.context = req->ephemeral;
        return proxy_session_spawn(cx, &po, NULL);
    }
    const char *cwd = hm_config_getenv(h->cfg, "MESSAGING_CWD", NULL);
    if (!cwd || !*cwd)
        cwd = getenv("HOME");
    bool api = req->platform && strcmp(req->platform, "api_server") == 0;
    tool_env *env = hm_host_tool_env(h, req->platform, cwd, !api);
    env->session_key = dupn(req->session_key);
    env->session_id = dupn(req->session_id);
    env->task_id = dupn(req->session_key);
    const char **names = hm_host_tools(h, req->platform, NULL, env);
    size_t n = 0;
    while (names[n])
        n++;
    env->enabled_tools = rt_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        env->enabled_tools[i] = rt_xstrdup(names[i]);
    ag_session_opts o;
    hm_host_session_opts(h, &o);
    o.session_id = req->session_id;
    o.source = req->platform;
    o.user_id = req->user_id;
    o.ephemeral = req->ephemeral;
    o.history = req->history;
    if (req->model)
        o.model = req->model;
    o.resume = req->resume;
    o.stream = req->stream;
    o.env = env;
    o.tools = names;
    o.approval_timeout_ms = hm_config_int(h->cfg, "approvals.gateway_timeout") * 1000;
    /* An idle agent leaves memory early; the conversation (its chat actor) stays and reloads
     * it from state.db, stored system prompt included, on the next message. */
    o.idle_timeout_ms = hm_config_env_int(h->cfg, "gateway.agent_idle_s", NULL) * 1000;
    if (req->side) { /* /btw: answered from the snapshot alone, and forgotten */
        o.store = 0;
        o.store_reader = 0;
        o.resume = false;
        o.tools = NULL;
    }
    rt_ref ref = ag_session_spawn(cx, &o, NULL);
    rt_free(names);
    tool_env_unref(env);
    return ref;
}
