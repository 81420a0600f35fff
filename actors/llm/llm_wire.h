/*
 * llm_wire — the wire formats of the LLM providers, as pure functions: request bodies,
 * complete responses and streamed (SSE) responses, for OpenAI-compatible chat completions
 * and the native Anthropic Messages API, plus error classification.
 *
 * The neutral model is OpenAI's: a conversation is an array of messages
 * {role, content, tool_calls?, tool_call_id?}; a reply is one assistant message
 * {role:"assistant", content, tool_calls?, reasoning?, reasoning_details?} with a separate
 * finish_reason ("stop", "tool_calls", "length") and usage. The Anthropic functions convert
 * to and from that model, so the agent loop never knows which API it talks to.
 *
 * No I/O, no globals: safe on any thread; every function owns nothing it is not told to.
 */
#ifndef LLM_WIRE_H
#define LLM_WIRE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum llm_api { LLM_API_OPENAI = 0, LLM_API_ANTHROPIC = 1 } llm_api;

typedef struct llm_request_spec {
    llm_api api;
    const char *model;
    const cJSON *messages; /* neutral messages; a leading "system" message is allowed */
    const cJSON *tools;    /* array of {name, description, parameters}, or NULL */
    const cJSON *extra;    /* OpenAI only: object merged into the body (reasoning, provider) */
    int64_t max_tokens;    /* 0: unset (Anthropic requires one: 8192 is used) */
    double temperature;    /* < 0: unset */
    bool stream;
    bool use_max_completion_tokens; /* OpenAI's own API wants max_completion_tokens */
} llm_request_spec;

/* The JSON request body for spec, as a new string (free with rt_free). Never NULL. */
char *llm_build_body(const llm_request_spec *spec);

typedef struct llm_usage {
    int64_t prompt_tokens;
    int64_t completion_tokens;
} llm_usage;

typedef struct llm_result {
    cJSON *message;      /* owned assistant message (neutral format) */
    char *finish_reason; /* owned: "stop", "tool_calls", "length", or the provider's word */
    llm_usage usage;
} llm_result;

void llm_result_fini(llm_result *r);

/* Parse a complete (non-streamed) response body. 0, or -EBADMSG with err filled when the
 * body is not a usable completion (invalid JSON, no choices, an error object). */
int llm_parse_response(llm_api api, const char *body, size_t len, llm_result *out, char *err,
                       size_t errlen);

enum { LLM_DELTA_CONTENT = 0, LLM_DELTA_REASONING = 1 };
typedef void (*llm_delta_cb)(void *arg, int kind, const char *text, size_t len);

typedef struct llm_stream llm_stream;
llm_stream *llm_stream_new(llm_api api);
void llm_stream_free(llm_stream *s);
/*
 * Feed one SSE event (event name may be NULL). Content and reasoning deltas are passed to
 * cb as they arrive. Returns 0 to continue, 1 when the stream says it is complete, or
 * -EBADMSG with err filled for malformed JSON or an in-stream error object.
 */
int llm_stream_event(llm_stream *s, const char *event, const char *data, llm_delta_cb cb, void *arg,
                     char *err, size_t errlen);
/* Build the result from everything fed so far. -EBADMSG if the stream never completed
 * (no finish reason: the connection was cut mid-stream). */
int llm_stream_finish(llm_stream *s, llm_result *out, char *err, size_t errlen);

/* Error classes, from the HTTP status, the error body and the transport error. */
typedef enum llm_err_kind {
    LLM_ERR_NONE = 0,
    LLM_ERR_RATE_LIMIT,        /* 429 */
    LLM_ERR_OVERLOADED,        /* 529, Anthropic overloaded_error */
    LLM_ERR_SERVER,            /* 5xx */
    LLM_ERR_AUTH,              /* 401, 403 */
    LLM_ERR_PAYMENT,           /* 402 */
    LLM_ERR_NOT_FOUND,         /* 404, unknown model */
    LLM_ERR_BAD_REQUEST,       /* other 4xx */
    LLM_ERR_CONTEXT_LENGTH,    /* the prompt does not fit */
    LLM_ERR_PAYLOAD_TOO_LARGE, /* 413 */
    LLM_ERR_NETWORK,           /* refused, reset, DNS, TLS */
    LLM_ERR_TIMEOUT,
    LLM_ERR_MALFORMED, /* 2xx with an unusable body, or a stream cut short */
} llm_err_kind;

/* http_status 0 means no response; transport_err is 0 or a negative errno from the HTTP
 * client. body may be NULL. */
llm_err_kind llm_classify(int http_status, const char *body, int transport_err);
/* Worth retrying with backoff: rate limits, overload, 5xx, network, timeouts, malformed. */
bool llm_err_is_retryable(llm_err_kind k);
/* A short name for logs ("rate_limit"). */
const char *llm_err_name(llm_err_kind k);
/* What the user should do about it, one sentence. */
const char *llm_err_hint(llm_err_kind k);
/* The provider's own error message from an error body, or NULL (new string). */
char *llm_error_message(const char *body);
/* Retry-After as milliseconds (delta-seconds or an HTTP date); -1 if absent or invalid. */
int64_t llm_retry_after_ms(const char *value, int64_t now_unix_s);

#endif /* LLM_WIRE_H */
