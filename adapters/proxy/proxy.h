/*
 * proxy — proxy mode (gateway.md §10.5): a session actor that runs each turn on a remote
 * Hermes API server instead of a local agent, speaking the same protocol as ag_session.h,
 * so the gateway's chat actor spawns it in place of ag_session_spawn when GATEWAY_PROXY_URL
 * (or gateway.proxy_url) is set.
 *
 * A turn: POST <url>/v1/chat/completions, streamed, with Authorization: Bearer <key> (when
 * set) and X-Hermes-Session-Id: <the local session id>; body {"model": "hermes-agent",
 * "stream": true, "messages": [system: <context> (if any), user: <text>]}. Because the session
 * header is sent, the host keeps the conversation in its own state.db under that id (so the
 * host must have API_SERVER_KEY set), and no local transcript is kept or sent here; /new on
 * this side means a new session id and so a fresh host session.
 *
 * What the sink gets (ag_session.h): AG_MSG_DELTA for every content delta (kind
 * LLM_DELTA_CONTENT), AG_MSG_PROGRESS for every hermes.tool.progress event (tool, preview =
 * its label) — the original ignored these — and exactly one AG_MSG_DONE per turn:
 *   - success: text = the whole answer, or "(No response from remote agent)";
 *   - HTTP status other than 200: text NULL, err -EPROTO, errmsg "⚠️ Proxy error (<status>):
 *     <first 300 characters of the body>";
 *   - transport failure (refused, reset, 1800 s without a byte): with text received so far,
 *     that partial text (err 0, completed false); without, err = the -errno and errmsg
 *     "⚠️ Proxy connection error: <what happened>";
 *   - interrupted: interrupted = true, text NULL.
 * There is no total time limit, only the read-idle one.
 *
 * Messages during a turn follow ag_session: each AG_MSG_INPUT is kept; unless it has `queue`
 * set, the running remote request is cancelled at once (the host sees its client leave and
 * interrupts its agent) and the turn ends with interrupted = true; then everything kept is
 * sent, joined with "\n" ("[sender] " before a sender's text), as one follow-up turn whose
 * output goes to the latest input's sink. RT_MSG_INTERRUPT with AG_INT_STOP cancels and
 * drops what was kept; AG_INT_NEW_MESSAGE and AG_INT_SHUTDOWN cancel and keep it.
 * AG_MSG_EPHEMERAL replaces the context block (the system message); AG_MSG_MODEL and
 * AG_MSG_ANSWER are ignored (the host chooses its model; approvals are not relayed).
 *
 * Threads: proxy_session_spawn and proxy_opts_from_config from any thread; the actor runs on
 * workers. The HTTP client (rt_http_init on the runtime's reactor) must be running.
 */
#ifndef PROXY_H
#define PROXY_H

#include "rt_actor.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct hm_config hm_config;

#define PROXY_IDLE_TIMEOUT_MS (1800LL * 1000) /* the original's 1800 s socket-read limit */

typedef struct proxy_opts {
    const char *url;            /* the remote API server, e.g. http://host:8642 (trailing '/'
                                   removed); required */
    const char *key;            /* GATEWAY_PROXY_KEY (the remote API_SERVER_KEY), or NULL */
    const char *session_id;     /* the local session id, sent as X-Hermes-Session-Id; required */
    const char *context;        /* the session context block (a system message), or NULL */
    const char *ca_file;        /* PEM bundle for an https URL with a private CA, or NULL */
    int64_t idle_timeout_ms;    /* 0: PROXY_IDLE_TIMEOUT_MS */
    int64_t connect_timeout_ms; /* 0: the HTTP client's default (10 s) */
} proxy_opts;

/*
 * Spawn a proxy session. o and its strings are copied; so may be NULL (name, links). Returns
 * the actor, or 0 when o lacks url or session_id, the URL is not http(s), or so->name is
 * taken.
 */
rt_ref proxy_session_spawn(rt_ctx *cx, const proxy_opts *o, const rt_spawn_opts *so);

/*
 * Proxy mode from the configuration: GATEWAY_PROXY_URL (environment or .env), else
 * gateway.proxy_url in config.yaml; GATEWAY_PROXY_KEY. Fills url and key (borrowed from cfg
 * or the environment: valid while cfg is referenced and the environment is not changed; the
 * trailing '/' is removed by proxy_session_spawn) and leaves the rest zero. Returns 1 when
 * proxy mode is on, 0 when it is not.
 */
int proxy_opts_from_config(const hm_config *cfg, proxy_opts *o);

#endif /* PROXY_H */
