/*
 * mx_olm — thin, allocation-owning wrappers over libolm for the Matrix adapter's E2EE layer,
 * plus the JSON and encoding helpers Matrix crypto needs (canonical JSON, signatures,
 * unpadded base64, attachment encryption).
 *
 * Every object is created with rt_xmalloc and freed (cleared first: keys do not linger in
 * freed memory) by its *_free. Pickles are libolm's own encrypted text under the pickle key.
 *
 * Threads: no shared state; an object is used by one thread at a time.
 */
#ifndef MX_OLM_H
#define MX_OLM_H

#include <cjson/cJSON.h>
#include <olm/olm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "3.2.13" into buf. */
void mx_olm_version(char *buf, size_t len);

/* Cryptographic random bytes (OpenSSL); aborts when the generator fails. */
void mx_olm_random(void *buf, size_t len);

/* ---- account ---- */
OlmAccount *mx_olm_account_new(void); /* a fresh identity */
void mx_olm_account_free(OlmAccount *a);
char *mx_olm_account_pickle(OlmAccount *a, const char *key);
OlmAccount *mx_olm_account_unpickle(const char *pickle, const char *key); /* NULL: bad */
/* identity keys: new strings */
void mx_olm_account_ids(OlmAccount *a, char **curve25519, char **ed25519);
/* Sign the canonical JSON of obj (its "signatures" and "unsigned" left out) and add
 * signatures.<user>.ed25519:<device>. */
void mx_olm_sign_json(OlmAccount *a, cJSON *obj, const char *user, const char *device);
/* Verify obj's signature by user/ed25519:<device> with the given ed25519 key. */
bool mx_olm_verify_json(const cJSON *obj, const char *user, const char *device,
                        const char *ed25519);

/* ---- Olm sessions ---- */
void mx_olm_session_free(OlmSession *s);
char *mx_olm_session_pickle(OlmSession *s, const char *key);
OlmSession *mx_olm_session_unpickle(const char *pickle, const char *key);
char *mx_olm_session_id(OlmSession *s);
/* Outbound session to a device (their curve25519 identity key, a one-time key); NULL: bad */
OlmSession *mx_olm_session_outbound(OlmAccount *a, const char *their_curve, const char *otk);
/* Inbound session from a pre-key message body (the one-time key is removed from a). */
OlmSession *mx_olm_session_inbound(OlmAccount *a, const char *sender_curve, const char *body);
/* Does a pre-key body belong to s? */
bool mx_olm_session_matches(OlmSession *s, const char *sender_curve, const char *body);
/* Decrypt (type 0/1): new string or NULL. */
char *mx_olm_decrypt(OlmSession *s, int type, const char *body);
/* Encrypt: new string (base64 body), *type set. */
char *mx_olm_encrypt(OlmSession *s, const char *plain, int *type);

/* ---- Megolm ---- */
OlmOutboundGroupSession *mx_olm_out_new(void);
void mx_olm_out_free(OlmOutboundGroupSession *s);
char *mx_olm_out_pickle(OlmOutboundGroupSession *s, const char *key);
OlmOutboundGroupSession *mx_olm_out_unpickle(const char *pickle, const char *key);
char *mx_olm_out_id(OlmOutboundGroupSession *s);
char *mx_olm_out_key(OlmOutboundGroupSession *s); /* session key at the current index */
char *mx_olm_out_encrypt(OlmOutboundGroupSession *s, const char *plain);

OlmInboundGroupSession *mx_olm_in_new(const char *session_key, bool exported);
void mx_olm_in_free(OlmInboundGroupSession *s);
char *mx_olm_in_pickle(OlmInboundGroupSession *s, const char *key);
OlmInboundGroupSession *mx_olm_in_unpickle(const char *pickle, const char *key);
char *mx_olm_in_id(OlmInboundGroupSession *s);
/* The session exported at its first known index (for m.forwarded_room_key): new string. */
char *mx_olm_in_export(OlmInboundGroupSession *s);
/* Decrypt: new string or NULL (*err a libolm reason, static); *index the message index. */
char *mx_olm_in_decrypt(OlmInboundGroupSession *s, const char *body, uint32_t *index,
                        const char **err);

/* ---- JSON and encodings ---- */
/* Canonical JSON (keys sorted, no spaces) of obj without "signatures" and "unsigned". */
char *mx_canonical_json(const cJSON *obj);
/* Unpadded base64 (url: the URL-safe alphabet). New string. */
char *mx_b64_encode(const unsigned char *data, size_t len, bool url);
/* Decode padded or unpadded, standard or URL-safe; new buffer, *len set; NULL: bad input. */
unsigned char *mx_b64_decode(const char *s, size_t *len);

/* Attachment encryption (AES-256-CTR, v2): encrypt data; *out new buffer of len bytes and
 * *file a new JSON object {key: JWK, iv, hashes: {sha256}, v: "v2"} (url added by the
 * caller). */
void mx_attach_encrypt(const unsigned char *data, size_t len, unsigned char **out, cJSON **file);
/* Decrypt with the event's "file" object: 0 and a new buffer, -EBADMSG (hash mismatch),
 * -EINVAL (missing or bad fields). */
int mx_attach_decrypt(const cJSON *file, const unsigned char *data, size_t len,
                      unsigned char **out);

#endif /* MX_OLM_H */
