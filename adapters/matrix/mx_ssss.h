/*
 * mx_ssss — Matrix secret storage (SSSS, m.secret_storage.v1.aes-hmac-sha2) and the
 * cross-signing key it holds, for MATRIX_RECOVERY_KEY (gateway.md §8.10 start-up step 4).
 *
 *   recovery key: base58 of 0x8B 0x01 || 32-byte key || parity (XOR of the bytes before);
 *   per secret name: HKDF-SHA256(key, salt = 32 zero bytes, info = name) → 32-byte AES key
 *   || 32-byte HMAC key; ciphertext = AES-256-CTR(iv), mac = HMAC-SHA256(ciphertext);
 *   the key check: encrypting 32 zero bytes under the name "" gives the key's "mac".
 *
 * Pure functions; secrets are wiped from temporaries. Threads: any.
 */
#ifndef MX_SSSS_H
#define MX_SSSS_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Decode a recovery key (spaces allowed): 0 and key, or -EINVAL (bad alphabet, length,
 * prefix or parity). */
int mx_recovery_key_decode(const char *text, unsigned char key[32]);
/* The reverse (groups of 4 separated by spaces): a new string. */
char *mx_recovery_key_encode(const unsigned char key[32]);
/* Does key match the m.secret_storage.key.<id> content (algorithm, iv, mac)? 0, -EKEYREJECTED
 * (wrong key), -ENOTSUP (another algorithm), -EINVAL (malformed). */
int mx_ssss_check_key(const unsigned char key[32], const cJSON *key_info);
/* Key info for key (iv and mac), as a client writes m.secret_storage.key.<id>. New object. */
cJSON *mx_ssss_key_info(const unsigned char key[32]);
/* Decrypt the secret name from its account data content ({"encrypted": {key_id: {iv,
 * ciphertext, mac}}}): 0 and a new string, -EBADMSG (mac mismatch), -ENOENT (not encrypted
 * for key_id), -EINVAL. */
int mx_ssss_decrypt(const unsigned char key[32], const char *key_id, const char *name,
                    const cJSON *content, char **out);
/* Encrypt secret under name for key_id: the account data content. New object. */
cJSON *mx_ssss_encrypt(const unsigned char key[32], const char *key_id, const char *name,
                       const char *secret);

/* An ed25519 signing key from its 32-byte seed (base64 in secret storage): sign the canonical
 * JSON of obj as user/ed25519:<public key> and return the public key (new string), or NULL
 * when the seed is bad. */
char *mx_seed_sign_json(const char *seed_b64, cJSON *obj, const char *user);

#endif /* MX_SSSS_H */
