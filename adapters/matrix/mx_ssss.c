/*
 * mx_ssss — secret storage and the self-signing key (see mx_ssss.h).
 */
#include "mx_ssss.h"

#include "mx_olm.h"

#include "rt_alloc.h"

#include <errno.h>
#include <olm/pk.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <stdio.h>
#include <string.h>

#define SSSS_ALG "m.secret_storage.v1.aes-hmac-sha2"

static const char B58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

int mx_recovery_key_decode(const char *text, unsigned char key[32])
{
    unsigned char num[64] = {0}; /* big-endian base-256 accumulator */
    size_t digits = 0;
    for (const char *p = text; *p; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\n')
            continue;
        const char *at = strchr(B58, *p);
        if (!at || ++digits > 80)
            return -EINVAL;
        unsigned carry = (unsigned)(at - B58);
        for (size_t i = sizeof(num); i-- > 0;) {
            carry += 58u * num[i];
            num[i] = (unsigned char)(carry & 0xff);
            carry >>= 8;
        }
        if (carry)
            return -EINVAL;
    }
    /* 35 bytes: 0x8B 0x01 key[32] parity */
    for (size_t i = 0; i < sizeof(num) - 35; i++)
        if (num[i])
            return -EINVAL;
    const unsigned char *b = num + sizeof(num) - 35;
    unsigned char parity = 0;
    for (size_t i = 0; i < 34; i++)
        parity ^= b[i];
    int rc = b[0] == 0x8B && b[1] == 0x01 && parity == b[34] ? 0 : -EINVAL;
    if (rc == 0)
        memcpy(key, b + 2, 32);
    OPENSSL_cleanse(num, sizeof(num));
    return rc;
}

char *mx_recovery_key_encode(const unsigned char key[32])
{
    unsigned char b[35];
    b[0] = 0x8B;
    b[1] = 0x01;
    memcpy(b + 2, key, 32);
    b[34] = 0;
    for (size_t i = 0; i < 34; i++)
        b[34] ^= b[i];
    unsigned char digits[64] = {0}; /* little-endian base 58 */
    size_t n = 0;
    for (size_t i = 0; i < sizeof(b); i++) {
        unsigned carry = b[i];
        for (size_t j = 0; j < n; j++) {
            carry += 256u * digits[j];
            digits[j] = (unsigned char)(carry % 58);
            carry /= 58;
        }
        while (carry) {
            digits[n++] = (unsigned char)(carry % 58);
            carry /= 58;
        }
    }
    char *out = rt_xmalloc(2 * n + 2), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (i && i % 4 == 0)
            *o++ = ' ';
        *o++ = B58[digits[n - 1 - i]];
    }
    *o = 0;
    OPENSSL_cleanse(b, sizeof(b));
    return out;
}

/* HKDF-SHA256(key, 32 zero bytes, name) → aes[32] || mac[32]. */
static int derive(const unsigned char key[32], const char *name, unsigned char out[64])
{
    unsigned char salt[32] = {0};
    EVP_PKEY_CTX *x = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t len = 64;
    int ok = x && EVP_PKEY_derive_init(x) > 0 && EVP_PKEY_CTX_set_hkdf_md(x, EVP_sha256()) > 0 &&
             EVP_PKEY_CTX_set1_hkdf_salt(x, salt, sizeof(salt)) > 0 &&
             EVP_PKEY_CTX_set1_hkdf_key(x, key, 32) > 0 &&
             EVP_PKEY_CTX_add1_hkdf_info(x, (const unsigned char *)name, (int)strlen(name)) > 0 &&
             EVP_PKEY_derive(x, out, &len) > 0 && len == 64;
    EVP_PKEY_CTX_free(x);
    return ok ? 0 : -EIO;
}

static int aes_ctr(const unsigned char key[32], const unsigned char iv[16], const unsigned char *in,
                   size_t len, unsigned char *out)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int w = 0;
    int ok = x && EVP_EncryptInit_ex(x, EVP_aes_256_ctr(), NULL, key, iv) == 1 &&
             EVP_EncryptUpdate(x, out, &w, in, (int)len) == 1;
    EVP_CIPHER_CTX_free(x);
    return ok ? 0 : -EIO;
}

static void hmac(const unsigned char key[32], const unsigned char *data, size_t len,
                 unsigned char out[32])
{
    unsigned int n = 32;
    HMAC(EVP_sha256(), key, 32, data, len, out, &n);
}

/* Encrypt plain under name: iv, ciphertext and mac (base64) into o. */
static void encrypt_into(const unsigned char key[32], const char *name, const unsigned char *plain,
                         size_t len, cJSON *o, bool with_ct)
{
    unsigned char k[64], iv[16], mac[32];
    (void)derive(key, name, k);
    mx_olm_random(iv, sizeof(iv));
    iv[8] &= 0x7f; /* the spec's advice: bit 63 clear */
    unsigned char *ct = rt_xmalloc(len ? len : 1);
    (void)aes_ctr(k, iv, plain, len, ct);
    hmac(k + 32, ct, len, mac);
    char *ivs = mx_b64_encode(iv, sizeof(iv), false), *cts = mx_b64_encode(ct, len, false);
    char *macs = mx_b64_encode(mac, sizeof(mac), false);
    cJSON_AddStringToObject(o, "iv", ivs);
    if (with_ct)
        cJSON_AddStringToObject(o, "ciphertext", cts);
    cJSON_AddStringToObject(o, "mac", macs);
    rt_free(ivs);
    rt_free(cts);
    rt_free(macs);
    rt_free(ct);
    OPENSSL_cleanse(k, sizeof(k));
}

/* Decrypt b64 ciphertext with iv and check mac; new buffer and *len, or NULL (*err). */
static unsigned char *decrypt_b64(const unsigned char key[32], const char *name, const char *iv_s,
                                  const char *ct_s, const char *mac_s, size_t *len, int *err)
{
    size_t il = 0, cl = 0, ml = 0;
    unsigned char *iv = mx_b64_decode(iv_s, &il), *ct = mx_b64_decode(ct_s, &cl);
    unsigned char *mac = mx_b64_decode(mac_s, &ml);
    unsigned char *out = NULL;
    unsigned char k[64], got[32];
    *err = -EINVAL;
    if (iv && ct && mac && il == 16 && ml == 32 && derive(key, name, k) == 0) {
        hmac(k + 32, ct, cl, got);
        if (CRYPTO_memcmp(got, mac, 32) != 0) {
            *err = -EBADMSG;
        } else {
            out = rt_xmalloc(cl + 1);
            if (aes_ctr(k, iv, ct, cl, out) == 0) {
                out[cl] = 0;
                *len = cl;
                *err = 0;
            } else {
                rt_free(out);
                out = NULL;
            }
        }
        OPENSSL_cleanse(k, sizeof(k));
    }
    rt_free(iv);
    rt_free(ct);
    rt_free(mac);
    return out;
}

int mx_ssss_check_key(const unsigned char key[32], const cJSON *info)
{
    const char *alg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(info, "algorithm"));
    if (!alg)
        return -EINVAL;
    if (strcmp(alg, SSSS_ALG) != 0)
        return -ENOTSUP;
    const char *iv_s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(info, "iv"));
    const char *mac_s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(info, "mac"));
    if (!iv_s || !mac_s)
        return 0; /* old keys carry no check: the secrets' MACs decide */
    size_t il = 0, ml = 0;
    unsigned char *iv = mx_b64_decode(iv_s, &il), *mac = mx_b64_decode(mac_s, &ml);
    int rc = -EINVAL;
    unsigned char k[64], zero[32] = {0}, ct[32], got[32];
    if (iv && mac && il == 16 && ml == 32 && derive(key, "", k) == 0 &&
        aes_ctr(k, iv, zero, sizeof(zero), ct) == 0) {
        hmac(k + 32, ct, sizeof(ct), got);
        rc = CRYPTO_memcmp(got, mac, 32) == 0 ? 0 : -EKEYREJECTED;
        OPENSSL_cleanse(k, sizeof(k));
    }
    rt_free(iv);
    rt_free(mac);
    return rc;
}

cJSON *mx_ssss_key_info(const unsigned char key[32])
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "algorithm", SSSS_ALG);
    unsigned char zero[32] = {0};
    encrypt_into(key, "", zero, sizeof(zero), o, false);
    return o;
}

int mx_ssss_decrypt(const unsigned char key[32], const char *key_id, const char *name,
                    const cJSON *content, char **out)
{
    *out = NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(content, "encrypted"), key_id);
    if (!e)
        return -ENOENT;
    const char *iv = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "iv"));
    const char *ct = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "ciphertext"));
    const char *mac = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "mac"));
    if (!iv || !ct || !mac)
        return -EINVAL;
    size_t len = 0;
    int err = 0;
    unsigned char *p = decrypt_b64(key, name, iv, ct, mac, &len, &err);
    if (!p)
        return err;
    *out = (char *)p;
    return 0;
}

cJSON *mx_ssss_encrypt(const unsigned char key[32], const char *key_id, const char *name,
                       const char *secret)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(cJSON_AddObjectToObject(o, "encrypted"), key_id);
    encrypt_into(key, name, (const unsigned char *)secret, strlen(secret), e, true);
    return o;
}

char *mx_seed_sign_json(const char *seed_b64, cJSON *obj, const char *user)
{
    size_t sl = 0;
    unsigned char *seed = mx_b64_decode(seed_b64, &sl);
    if (!seed || sl != olm_pk_signing_seed_length()) {
        if (seed)
            OPENSSL_cleanse(seed, sl);
        rt_free(seed);
        return NULL;
    }
    OlmPkSigning *s = olm_pk_signing(rt_xmalloc(olm_pk_signing_size()));
    size_t pl = olm_pk_signing_public_key_length();
    char *pub = rt_xmalloc(pl + 1);
    size_t rc = olm_pk_signing_key_from_seed(s, pub, pl, seed, sl);
    OPENSSL_cleanse(seed, sl);
    rt_free(seed);
    if (rc == olm_error()) {
        olm_clear_pk_signing(s);
        rt_free(s);
        rt_free(pub);
        return NULL;
    }
    pub[pl] = 0;
    char *canon = mx_canonical_json(obj);
    size_t gl = olm_pk_signature_length();
    uint8_t *sig = rt_xmalloc(gl + 1);
    rc = olm_pk_sign(s, (const uint8_t *)canon, strlen(canon), sig, gl);
    sig[rc == olm_error() ? 0 : gl] = 0;
    olm_clear_pk_signing(s);
    rt_free(s);
    rt_free(canon);
    cJSON *sigs = cJSON_GetObjectItemCaseSensitive(obj, "signatures");
    if (!sigs)
        sigs = cJSON_AddObjectToObject(obj, "signatures");
    cJSON *mine = cJSON_GetObjectItemCaseSensitive(sigs, user);
    if (!mine)
        mine = cJSON_AddObjectToObject(sigs, user);
    char kid[128];
    snprintf(kid, sizeof(kid), "ed25519:%s", pub);
    cJSON_DeleteItemFromObjectCaseSensitive(mine, kid);
    cJSON_AddStringToObject(mine, kid, (const char *)sig);
    rt_free(sig);
    return pub;
}
