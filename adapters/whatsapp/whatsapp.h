/*
 * whatsapp — the WhatsApp adapter for the WhatsApp Business Cloud API: a webhook receiver on
 * the runtime's HTTP server (rt_httpd.h) and the Graph API's send endpoint over the reactor's
 * HTTP client (rt_http.h). docs/whatsapp.md is the user's guide.
 *
 *   GET  <path>   the subscription handshake: hub.mode=subscribe and hub.verify_token equal
 *                 to WHATSAPP_VERIFY_TOKEN → 200 with hub.challenge; anything else 403;
 *   POST <path>   notifications: X-Hub-Signature-256 must be "sha256=" + the hex HMAC-SHA256
 *                 of the raw body keyed with the app secret (compared in constant time),
 *                 else 401; then 200, and every text message in it becomes one GW_MSG_EVENT
 *                 (a direct chat: chat_id = user_id = the sender's number, message_id = the
 *                 wamid, so Meta's redeliveries are dropped by the gateway);
 *   replies       POST <graph>/<phone-number-id>/messages, split at 4096 characters, the
 *                 first part quoting the message it answers; one at a time.
 *
 * Acknowledged sends (gw_caps.acks): every GW_OUT_TEXT with a `delivery` (the gateway's
 * outbox) gets exactly one GW_MSG_SENT — success once the Cloud API answered 200 with a
 * message id for its last part (text chunks and MEDIA: files), else a failure as
 * wa_send_verdict classifies it (retryable with the platform's Retry-After, or permanent).
 * The adapter does not retry those itself (the outbox does, per chat, with backoff); the
 * parts after a failed one are not sent, and the parts that did go are remembered so the
 * outbox's next attempt of the same delivery sends only the rest. Messages without a
 * delivery (notices, progress) are retried here: 429 / 5xx / network errors up to 3 times
 * with backoff (Retry-After honoured).
 *
 * The original's whatsapp-web.js bridge for personal accounts is not supported: asking for
 * it (WHATSAPP_MODE=bridge, or WHATSAPP_ENABLED without Cloud API credentials) is refused at
 * start with WA_BRIDGE_MSG.
 *
 * Threads: options and the pure helpers from any thread; wa_start/wa_stop from the
 * controlling thread. The actor runs on workers and never blocks.
 */
#ifndef WHATSAPP_H
#define WHATSAPP_H

#include "rt_actor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hm_config hm_config;
typedef struct rt_lws rt_lws;

#define WHATSAPP_PLATFORM "whatsapp"
#define WA_MAX_MESSAGE    4096
#define WA_DEFAULT_GRAPH  "https://graph.facebook.com/v20.0"
#define WA_DEFAULT_PORT   8443
#define WA_BRIDGE_MSG                                                                              \
    "WhatsApp: the whatsapp-web.js bridge for personal accounts is not supported by this build. "  \
    "Use the WhatsApp Business Cloud API: set WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID, "   \
    "WHATSAPP_APP_SECRET and WHATSAPP_VERIFY_TOKEN (see docs/whatsapp.md)"

typedef struct wa_opts {
    char *access_token;    /* WHATSAPP_ACCESS_TOKEN */
    char *phone_number_id; /* WHATSAPP_PHONE_NUMBER_ID */
    char *app_secret;      /* WHATSAPP_APP_SECRET */
    char *verify_token;    /* WHATSAPP_VERIFY_TOKEN */
    char *graph_base;      /* WHATSAPP_GRAPH_API_BASE; default WA_DEFAULT_GRAPH */
    char *host;            /* WHATSAPP_WEBHOOK_HOST; default 127.0.0.1 */
    int port;              /* WHATSAPP_WEBHOOK_PORT; default WA_DEFAULT_PORT, 0: ephemeral */
    char *path;            /* WHATSAPP_WEBHOOK_PATH; default /whatsapp/webhook */
    char *home_channel;    /* WHATSAPP_HOME_CHANNEL, or NULL */
    int64_t backoff_ms;    /* first retry delay; 0: 2000 */
    char *cache_dir;       /* inbound media files; <HERMES_HOME>/cache/whatsapp */
} wa_opts;

/*
 * WHATSAPP_ENABLED (true/1/yes) enables the adapter; then the Cloud API settings above are
 * required. 0 (enabled), -ENOENT (not enabled), -ENOTSUP with WA_BRIDGE_MSG (the bridge was
 * asked for), -EINVAL with a sentence naming what is missing or wrong. Strings owned.
 */
int wa_opts_from_config(const hm_config *cfg, wa_opts *o, char *err, size_t errlen);
void wa_opts_fini(wa_opts *o);

typedef struct wa_server wa_server;

/* Start the actor and the webhook server on lws. 0 and *out, or -errno with a sentence. */
int wa_start(rt_ctx *cx, rt_lws *lws, const wa_opts *o, rt_ref gateway, wa_server **out, char *err,
             size_t errlen);
int wa_port(const wa_server *s);
/* The adapter actor of s (0 for NULL): what its supervisor watches. */
rt_ref wa_ref(const wa_server *s);
/* Stop the server (grace_ms for requests in flight) and the actor; frees s. NULL: no-op. */
void wa_stop(rt_ctx *cx, wa_server *s, int64_t grace_ms);

/* ---- pure helpers (wa_hook.c; tested) ---- */

/* Whether header is "sha256=<64 hex>" equal to HMAC-SHA256(secret, body) (constant time). */
bool wa_signature_ok(const char *secret, const void *body, size_t len, const char *header);

/* The GET handshake: the challenge (new string) when query has hub.mode=subscribe and
 * hub.verify_token == verify_token, else NULL. Query is percent-encoded, without '?'. */
char *wa_handshake(const char *query, const char *verify_token);

typedef struct wa_inmsg {
    char *id;   /* wamid */
    char *from; /* the sender's number */
    char *name; /* profile name, or NULL */
    char *text; /* text body (or a note for other types) */
    /* audio, voice, image, document, video: the attachment to fetch (GET <graph>/<media_id>,
     * then its url, both with the access token), else NULL */
    char *media_id;
    char *mime;     /* mime_type, or NULL */
    char *filename; /* document file name, or NULL */
    char *caption;  /* the caption ("" when none) when media_id is set */
    int kind;       /* gw_kind of the attachment */
} wa_inmsg;

#define WA_MEDIA_MAX (25u << 20) /* inbound attachments we fetch */

/* The file name for an attachment of message id (new): audio_<id>.<ext>, img_<id>.<ext>,
 * doc_<id>_<filename> or video_<id>.<ext>, with unsafe characters replaced. */
char *wa_media_name(const wa_inmsg *m);

/* How one POST <graph>/<phone-number-id>/messages went (the Graph API's error shape:
 * {"error":{"message","type","code","error_data":{"details"},"fbtrace_id"}}). */
typedef struct wa_verdict {
    int err;                /* 0: taken (2xx with messages[0].id); -EAGAIN throttled (429, or
                               codes 4, 80007, 130429, 131048, 131056), -EIO server error (5xx, 408,
                               codes 2, 131000, 131016) or an answer without a message id,
                               -EACCES the token or its permissions (401/403, codes 0, 10, 190,
                               200-299: fixable, so not permanent), a network error (its
                               -errno), -EPERM the platform refused this message (any other
                               4xx: 131047 outside the 24-hour window, 131026 undeliverable,
                               131030 / 100 bad recipient or parameter, …) */
    bool permanent;         /* only with -EPERM: sending it again cannot help */
    int64_t retry_after_ms; /* the answer's Retry-After, 0: none */
    int code;               /* error.code, 0: none */
    char why[160];          /* for logs and GW_MSG_SENT: "HTTP 400 (#131047) …: details" */
} wa_verdict;

/* Classify an answer: err is the transport's (-errno, 0 for an HTTP answer), status the HTTP
 * status, body the answer (may be NULL), retry_after_s the Retry-After header (0: none).
 * Never fails; any thread. */
void wa_send_verdict(int err, int status, const char *body, size_t len, int64_t retry_after_s,
                     wa_verdict *v);

/* The messages in a notification body (statuses and other fields ignored). Returns how
 * many were put in *out (an array to free with wa_inmsgs_free), -EINVAL for bad JSON. */
int wa_parse_notification(const char *body, wa_inmsg **out);
void wa_inmsgs_free(wa_inmsg *v, int n);

#endif /* WHATSAPP_H */
