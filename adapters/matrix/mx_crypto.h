/*
 * mx_crypto — the end-to-end encryption seam of the Matrix adapter (gateway.md §8.10).
 *
 * Everything the adapter does with encryption goes through these calls, and only these, so
 * that the Olm/Megolm implementation (mx_crypto.c with libolm: mx_olm.c, mx_cstore.c) is
 * the only place that knows about keys; the actor, the rules and the gateway stay as they
 * are. With MATRIX_ENCRYPTION off, no room is treated as encrypted, outgoing events pass
 * through unchanged, and an encrypted event is refused (-ENOTSUP) so the adapter drops it
 * with a warning.
 *
 * The calls and when the adapter makes them:
 *   mx_crypto_new        at start, with the store directory (crypto.db lives there) and the
 *                        hooks below;
 *   mx_crypto_connect    after login (user, device, token known), before the first sync;
 *                        the implementation uploads keys (through env->submit) and says
 *                        when it is ready with env->ready (the plain one at once);
 *   mx_crypto_filter     lets the implementation widen the sync filter (to-device, OTK counts);
 *   mx_crypto_on_sync    with every /sync response, before its room events are handled
 *                        (to-device events, device_lists, device_one_time_keys_count,
 *                        m.room.encryption state);
 *   mx_crypto_decrypt    for each m.room.encrypted timeline event: 0 and a decrypted event
 *                        (handled like any other), -EAGAIN (keys are missing: the
 *                        implementation keeps it and hands it back later through
 *                        env->redeliver), anything else: dropped with a warning;
 *   mx_crypto_encrypt    before an event is sent into a room: 0 and the (type, content) to
 *                        send, or -EAGAIN (a session is being shared: the room's send queue
 *                        pauses until env->resume(room));
 *   mx_crypto_on_http    the result of a request it submitted through env->submit (tags
 *                        from mx_crypto_tag_base upwards are routed here);
 *   mx_crypto_room_encrypted  before a file is uploaded: encrypted rooms get AES-CTR
 *                        encrypted attachments (file: {url, key, iv, hashes, v}).
 *
 * Threads: owned by the adapter actor; every call runs inside its behaviour (never blocks).
 */
#ifndef MX_CRYPTO_H
#define MX_CRYPTO_H

#include "rt_http.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct mx_crypto mx_crypto;

typedef struct mx_crypto_env {
    void *arg; /* the adapter */
    /* Submit an HTTP request to the homeserver (auth header added); the DONE comes back to
     * mx_crypto_on_http. Returns the request id. */
    uint64_t (*submit)(void *arg, const char *method, const char *path, const char *body);
    /* An event decryptable at last (takes ownership of ev). */
    void (*redeliver)(void *arg, const char *room_id, cJSON *ev);
    /* A room whose sends were paused by -EAGAIN may go on. */
    void (*resume)(void *arg, const char *room_id);
    /* mx_crypto_connect finished: err 0, or a fatal error with a sentence for the log. */
    void (*ready)(void *arg, int err, const char *msg);
} mx_crypto_env;

/* enabled: MATRIX_ENCRYPTION. store_dir: where the crypto store lives. NULL-safe free. */
mx_crypto *mx_crypto_new(const mx_crypto_env *env, const char *store_dir, bool enabled);
void mx_crypto_free(mx_crypto *c);
/* MATRIX_DEVICE_ID as configured (or NULL): part of the pickle key ("<user>:<it or
 * 'default'>", as the original); MATRIX_RECOVERY_KEY (or NULL): at each connect the
 * self-signing key is taken from secret storage and signs this device. Copied. Call before
 * mx_crypto_connect. */
void mx_crypto_configure(mx_crypto *c, const char *conf_device_id, const char *recovery_key);
/* For `hermes doctor`: the libolm version and the crypto store's health in out (a line);
 * false when the store exists but is damaged. Blocking (opens the database); any thread. */
bool mx_crypto_status(const char *store_dir, char *out, size_t len);

void mx_crypto_connect(mx_crypto *c, const char *user_id, const char *device_id);
/* Add to the sync filter object (the plain implementation adds nothing). */
void mx_crypto_filter(mx_crypto *c, cJSON *filter);
void mx_crypto_on_sync(mx_crypto *c, const cJSON *sync);
int mx_crypto_decrypt(mx_crypto *c, const char *room_id, const cJSON *ev, cJSON **out);
/* out_type/out_content: new strings when 0 is returned. */
int mx_crypto_encrypt(mx_crypto *c, const char *room_id, const char *type, const char *content,
                      char **out_type, char **out_content);
void mx_crypto_on_http(mx_crypto *c, rt_io_msg_http_done *d);
/* Are events sent into room_id encrypted (E2EE on and m.room.encryption seen)? Files for it
 * are then uploaded encrypted (mx_olm.h: mx_attach_encrypt). */
bool mx_crypto_room_encrypted(mx_crypto *c, const char *room_id);

#endif /* MX_CRYPTO_H */
