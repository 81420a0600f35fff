/*
 * hm_host — one Hermes process: the configuration, the runtime and every service the
 * agent needs, started in order and stopped in reverse. `hermes chat` and `hermes gateway`
 * both stand on it.
 *
 * Start-up order: signals blocked (before any thread), .env applied and config.yaml loaded,
 * config exported to the environment the original's way, runtime, reactor (HTTP client,
 * subprocesses, signals), optionally the lws thread (WebSocket client, HTTP server),
 * state.db (store writer and readers), the LLM provider, the prompt builder. Stop: the
 * reverse, after the store has committed everything queued.
 *
 * Threads: start and stop from the main thread; the getters from any thread.
 */
#ifndef HM_HOST_H
#define HM_HOST_H

#include "ag_session.h"
#include "gw.h"
#include "hm_config.h"
#include "llm_provider.h"
#include "rt_sched.h"
#include "st_store.h"
#include "tool.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct rt_reactor rt_reactor;
typedef struct rt_lws rt_lws;

typedef struct hm_host_opts {
    hm_ctx ctx;            /* HM_CTX_CLI or HM_CTX_GATEWAY */
    const char *home;      /* NULL: $HERMES_HOME or ~/.hermes */
    const char *model;     /* --model, or NULL */
    const char *provider;  /* --provider, or NULL */
    bool lws;              /* start the WebSocket/HTTP-server thread (gateway) */
    bool require_provider; /* fail start-up when no provider is configured */
    int workers;           /* 0: HERMES_WORKERS or one per CPU */
} hm_host_opts;

typedef struct hm_host {
    hm_config *cfg;
    char *home;
    hm_ctx ctx;
    rt_runtime *rt;
    rt_reactor *reactor;
    rt_lws *lws;
    st_store_refs store;
    rt_ref provider;
    rt_ref prompts;
    llm_provider_opts popts; /* resolved; strings owned */
    char *provider_name;     /* "openrouter", "custom", "anthropic", … */
    char *model;             /* the main model */
    char *aux_model;         /* compression and summaries (CONTEXT_COMPRESSION_MODEL), or NULL */
    bool provider_configured;
} hm_host;

/* Start everything. 0, or -errno with a sentence for the user in err. */
int hm_host_start(const hm_host_opts *o, hm_host **out, char *err, size_t errlen);
/* Stop everything (waits for the store to commit). NULL: no-op. */
void hm_host_stop(hm_host *h);

/*
 * Resolve the provider the original's way (agent-core §2.1): --provider,
 * HERMES_INFERENCE_PROVIDER, model.provider, else auto. OpenRouter and any OpenAI-compatible
 * endpoint (OPENAI_BASE_URL / model.base_url) speak chat completions; "anthropic" (or auto
 * with only ANTHROPIC_API_KEY) speaks the Messages API. Fills o (strings owned, free with
 * hm_provider_opts_fini) and *configured (false when no key or endpoint is set at all).
 */
int hm_resolve_provider(const hm_config *cfg, const char *requested, llm_provider_opts *o,
                        char **name, bool *configured, char *err, size_t errlen);
void hm_provider_opts_fini(llm_provider_opts *o);

/* The tools for a platform: explicit toolsets (e.g. --toolsets) or
 * platform_toolsets.<platform> from config, else hermes-<platform>. NULL-terminated heap
 * array of borrowed names (free the array with rt_free). */
const char **hm_host_tools(hm_host *h, const char *platform, const char *const *toolsets,
                           const tool_env *env);

/* A tool environment for a session of platform in cwd (referenced, caller unrefs). */
tool_env *hm_host_tool_env(hm_host *h, const char *platform, const char *cwd, bool interactive);

/* Session options from the configuration (max iterations, compression, provider, store,
 * prompt builder). The caller sets the rest (ids, tools, env) before spawning. */
void hm_host_session_opts(hm_host *h, ag_session_opts *o);

/* The gateway's gw_spawn_fn (arg: the hm_host): an agent session for one conversation, with
 * the platform's tools, in MESSAGING_CWD (default: the home directory). Any worker. */
rt_ref hm_host_spawn_session(rt_ctx *cx, const gw_session_req *req, void *arg);

/* The tool_env's spawn_child (delegate_task): a subagent session with the parent's platform
 * and working directory, the given tools, no memory or context files (arg: the hm_host). */
rt_ref hm_host_spawn_child(rt_ctx *cx, const tool_child_req *req, void *arg);

#endif /* HM_HOST_H */
