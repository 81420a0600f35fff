/*
 * api_int.h — internals of the API server adapter shared within adapters/api_server:
 *
 *   api_chat.c  the chat-completions request (content normalization, limits, session id)
 *               and the JSON it answers with; pure, no I/O
 *   api_http.c  auth, CORS, security headers, error envelopes, the loopback rule, the port
 *               pre-check, the configuration
 *   api_idem.c  the Idempotency-Key cache
 *   api_turn.c  a chat completion in the actor: the event, the stream or answer, cancels
 *   api_server.c the actor (dispatch, routing, the other endpoints), start and stop
 *
 * Threads: everything here is re-entrant; objects belong to one owner (the actor).
 */
#ifndef API_INT_H
#define API_INT_H

#include "api_server.h"
#include "rt_buf.h"
#include "rt_httpd.h"
#include "rt_map.h"
#include "rt_sched.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API__TEXT_MAX     65536 /* bytes of normalized message text (the original: 64 K chars) */
#define API__PARTS_MAX    1000  /* content parts looked at per message */
#define API__DEPTH_MAX    10    /* nested content lists */
#define API__SID_MAX      256   /* X-Hermes-Session-Id length */
#define API__IDEM_KEY_MAX 256   /* Idempotency-Key length */
#define API__MAX_HDRS     20
#define API__DIGEST       32

/* ---------------------------------------------------------------- the configuration */

/* Immutable after api_server_start; owned by the actor. */
typedef struct api_cfg {
    bool has_key;
    uint8_t key_digest[API__DIGEST]; /* SHA-256 of the key (the key itself is not kept) */
    char **origins;                  /* allowed origins, NULL-terminated */
    bool any_origin;                 /* "*" is among them */
    char *model;                     /* advertised model name */
    char *status_path;               /* $HERMES_HOME/gateway_state.json, or NULL */
    size_t max_inflight;
    int64_t keepalive_ms;
    int64_t cancel_grace_ms;
    rt_reactor *reactor;
} api_cfg;

void api__cfg_init(api_cfg *c, const api_server_opts *o);
void api__cfg_fini(api_cfg *c);

/* Constant-time check of an Authorization header value (may be NULL) against the key: true
 * when no key is configured or the header is "Bearer <key>" (scheme case-insensitive, token
 * trimmed). */
bool api__auth_ok(const api_cfg *c, const char *authorization);

/* The original's is_network_accessible: false only for loopback addresses (127/8, ::1,
 * ::ffff:127.x) and host names that resolve to loopback addresses only. Blocking (DNS). */
bool api__is_network_accessible(const char *host);
/* A key fit for a network-accessible server: not a placeholder, at least 8 characters. */
bool api__key_usable(const char *key);
/* Something accepts connections on 127.0.0.1:port (waits at most 1 s). Blocking. */
bool api__port_in_use(int port);

/* ---------------------------------------------------------------- response headers */

typedef struct api_hdrs {
    char *line[API__MAX_HDRS + 1]; /* owned "Name: value" lines, NULL-terminated */
    size_t n;
} api_hdrs;

void api__hdrs_add(api_hdrs *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *const *api__hdrs_list(api_hdrs *h);
void api__hdrs_fini(api_hdrs *h);

enum api_origin { API_ORIGIN_NONE = 0, API_ORIGIN_OK, API_ORIGIN_FORBIDDEN };
/* Classify a request's Origin header (NULL: none): no Origin is fine (non-browser
 * clients); otherwise it must be allowed. */
int api__origin_check(const api_cfg *c, const char *origin);
/* Add the CORS headers for an allowed origin (none when origin is NULL or not allowed). */
void api__cors_headers(const api_cfg *c, const char *origin, api_hdrs *h);
/* Security headers every response carries. */
void api__security_headers(api_hdrs *h);

/* {"error": {"message", "type", "param", "code"}} as a new string; type NULL means
 * "invalid_request_error"; param and code may be NULL (JSON null). */
char *api__error_json(const char *message, const char *type, const char *param, const char *code);

/* ---------------------------------------------------------------- the chat request */

typedef struct api_chat {
    char *text;       /* the new input (last user/assistant message), never empty */
    char *system;     /* system messages joined with "\n", or NULL when there are none */
    char *first_user; /* the first user message ("" when none) */
    cJSON *history;   /* the earlier user/assistant messages [{role, content}], or NULL */
    char *model;      /* "model" when it is a string, else NULL */
    bool stream;
    uint8_t fp[API__DIGEST]; /* Idempotency-Key fingerprint (when asked for) */
} api_chat;

/*
 * Parse a chat-completions body. fp_extra non-NULL: also compute c->fp over the request's
 * model, messages, tools, tool_choice and stream and fp_extra (the session header). Returns
 * 0, or an HTTP status (400) with an OpenAI error envelope in *errjson (new string). c is
 * filled on success (free with api__chat_fini).
 */
int api__chat_parse(const char *body, size_t len, const char *fp_extra, api_chat *c,
                    char **errjson);
void api__chat_fini(api_chat *c);

/* Flatten an OpenAI message content (string or parts) into text, the original's way:
 * text parts joined with "\n", other parts ignored, capped at API__TEXT_MAX bytes (cut on a
 * UTF-8 boundary), API__PARTS_MAX parts and API__DEPTH_MAX levels. Appends to out. */
void api__normalize_content(const cJSON *content, rt_buf *out);

/* "api-" + the first 16 hex digits of SHA-256(system + "\n" + first_user); out has 21+
 * bytes. system may be NULL (""). */
void api__derive_session_id(const char *system, const char *first_user, char *out, size_t outlen);

/* A session id header value is acceptable (non-empty, at most API__SID_MAX bytes, no control
 * characters: CR, LF and NUL in particular). */
bool api__session_id_valid(const char *sid);

/* "chatcmpl-" + 29 random hex digits into out (39+ bytes). */
void api__completion_id(char *out, size_t outlen);

/* The non-streamed answer. */
char *api__completion_json(const char *id, int64_t created, const char *model, const char *content,
                           int64_t prompt_tokens, int64_t completion_tokens);
/* One SSE frame "data: <chunk>\n\n" with delta {role} (role != NULL), {content} (content !=
 * NULL) or {} with finish_reason "stop" and usage (final). */
char *api__chunk_frame(const char *id, int64_t created, const char *model, const char *role,
                       const char *content, bool final, int64_t prompt_tokens,
                       int64_t completion_tokens);
/* "event: hermes.tool.progress\ndata: {tool, emoji, label}\n\n". */
char *api__progress_frame(const char *tool, const char *emoji, const char *label);
/* GET /v1/models. */
char *api__models_json(const char *model, int64_t now);
/* GET /health/detailed from the status file's JSON (NULL or unparsable: basics). */
char *api__health_detailed_json(const char *status_file, size_t len);

/* ---------------------------------------------------------------- Idempotency-Key cache */

#define API__IDEM_TTL_NS (300LL * 1000000000LL)
#define API__IDEM_MAX    1000
#define API__IDEM_BYTES  ((size_t)32 << 20) /* total cached bodies */

typedef struct api_idem_entry api_idem_entry;
typedef struct api_idem {
    rt_map by_hash;              /* rt_hash_str(key) -> entry */
    api_idem_entry *head, *tail; /* insertion order (oldest first) */
    size_t n, bytes;
} api_idem;

void api__idem_init(api_idem *c);
void api__idem_fini(api_idem *c);
/* A cached answer for key with fingerprint fp, not older than the TTL at now_ns: its body
 * and session id (borrowed until the next change), or false. Expired entries go. */
bool api__idem_get(api_idem *c, const char *key, const uint8_t *fp, int64_t now_ns,
                   const char **body, const char **session_id);
/* Remember an answer (copied), replacing what key held, evicting the oldest beyond
 * API__IDEM_MAX entries or API__IDEM_BYTES. */
void api__idem_put(api_idem *c, const char *key, const uint8_t *fp, int64_t now_ns,
                   const char *body, const char *session_id);

/* ---------------------------------------------------------------- the actor's state */

typedef struct api_waiter {
    struct api_waiter *next;
    uint64_t http;
    char *origin;
} api_waiter;

typedef struct api_req {
    uint64_t id;    /* gw_target.request */
    uint64_t http;  /* the rt_httpd request while its client waits, else 0 */
    bool stream;    /* SSE */
    bool cancelled; /* GW_MSG_CANCEL sent; waiting for the turn end (rule 1) */
    bool streamed;  /* a content chunk went out */
    char *origin;   /* the client's Origin (CORS headers), or NULL */
    char *session_id;
    char cid[48]; /* chatcmpl-… */
    char *model;
    int64_t created;
    rt_buf deltas; /* non-streamed: concatenated GW_OUT_DELTA texts */
    char *final;   /* non-streamed: the GW_TEXT_REPLY text */
    char *error;   /* the last GW_TEXT_ERROR text */
    int64_t last_out_ns;
    uint64_t timer; /* keepalive or grace timer */
    char *idem_key; /* non-streamed with an Idempotency-Key */
    uint8_t fp[API__DIGEST];
    api_waiter *waiters; /* same key and fingerprint, arrived meanwhile */
    size_t nwaiters;
} api_req;

typedef struct api_state {
    api_cfg cfg;
    rt_runtime *rt;
    rt_map reqs;     /* id -> api_req */
    rt_map by_http;  /* rt_httpd id -> api_req (while its client waits) */
    size_t inflight; /* requests + waiters (rule 1) */
    uint64_t next_id;
    rt_ref gateway; /* the gateway we announced ourselves to */
    api_idem idem;
} api_state;

/* api_server.c: answers with the security and CORS headers; a JSON body (NULL: none), the
 * session header (NULL: none) and one more header line (NULL: none). */
void api__reply(rt_ctx *cx, api_state *s, uint64_t http, const char *origin, int status,
                const char *json, const char *session_id, const char *extra);
void api__reply_error(rt_ctx *cx, api_state *s, uint64_t http, const char *origin, int status,
                      const char *msg, const char *type, const char *code, const char *extra);

/* api_turn.c: the chat completion, handlers of the actor's messages. */
void api__on_chat(rt_ctx *cx, api_state *s, const rt_httpd_msg_request *m, const char *origin);
void api__on_delta(rt_ctx *cx, api_state *s, gw_out_text *t);
void api__on_text(rt_ctx *cx, api_state *s, gw_out_text *t);
void api__on_turn_end(rt_ctx *cx, api_state *s, gw_out_turn_end *e);
void api__on_gone(rt_ctx *cx, api_state *s, rt_httpd_msg_gone *g);
void api__on_timeout(rt_ctx *cx, api_state *s, rt_msg_timeout *t);
/* The actor is stopping: withdraw every request at the gateway. */
void api__on_stop(rt_ctx *cx, api_state *s);
/* The gateway's ref (0: none), announcing ourselves (GW_MSG_ADAPTER_UP) to a new one. */
rt_ref api__announce(rt_ctx *cx, api_state *s);
/* Forget a request (rule 1); cx NULL when the actor ends (timers are not cancelled). */
void api__free_req(rt_ctx *cx, api_state *s, api_req *r);

#endif /* API_INT_H */
