/*
 * mx_olm — libolm wrappers and Matrix crypto encodings (see mx_olm.h).
 */
#include "mx_olm.h"

#include "rt_alloc.h"

#include <errno.h>
#include <olm/inbound_group_session.h>
#include <olm/outbound_group_session.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mx_olm_version(char *buf, size_t len)
{
    uint8_t a = 0, b = 0, c = 0;
    olm_get_library_version(&a, &b, &c);
    snprintf(buf, len, "%u.%u.%u", a, b, c);
}

void mx_olm_random(void *buf, size_t len)
{
    if (len && RAND_bytes(buf, (int)len) != 1)
        abort(); /* no randomness: nothing safe to do */
}

static void *rnd_new(size_t len)
{
    void *r = rt_xmalloc(len ? len : 1);
    mx_olm_random(r, len);
    return r;
}

static void rnd_free(void *r, size_t len)
{
    if (r)
        OPENSSL_cleanse(r, len);
    rt_free(r);
}

/* ================================================================= account */

OlmAccount *mx_olm_account_new(void)
{
    OlmAccount *a = olm_account(rt_xmalloc(olm_account_size()));
    size_t rl = olm_create_account_random_length(a);
    void *r = rnd_new(rl);
    size_t rc = olm_create_account(a, r, rl);
    rnd_free(r, rl);
    if (rc == olm_error()) {
        mx_olm_account_free(a);
        return NULL;
    }
    return a;
}

void mx_olm_account_free(OlmAccount *a)
{
    if (!a)
        return;
    olm_clear_account(a);
    rt_free(a);
}

char *mx_olm_account_pickle(OlmAccount *a, const char *key)
{
    size_t n = olm_pickle_account_length(a);
    char *buf = rt_xmalloc(n + 1);
    size_t rc = olm_pickle_account(a, key, strlen(key), buf, n);
    if (rc == olm_error()) {
        rt_free(buf);
        return NULL;
    }
    buf[rc] = 0;
    return buf;
}

OlmAccount *mx_olm_account_unpickle(const char *pickle, const char *key)
{
    OlmAccount *a = olm_account(rt_xmalloc(olm_account_size()));
    char *p = rt_xstrdup(pickle);
    size_t rc = olm_unpickle_account(a, key, strlen(key), p, strlen(p));
    rt_free(p);
    if (rc == olm_error()) {
        mx_olm_account_free(a);
        return NULL;
    }
    return a;
}

void mx_olm_account_ids(OlmAccount *a, char **curve, char **ed)
{
    size_t n = olm_account_identity_keys_length(a);
    char *buf = rt_xmalloc(n + 1);
    size_t rc = olm_account_identity_keys(a, buf, n);
    buf[rc == olm_error() ? 0 : rc] = 0;
    cJSON *j = cJSON_Parse(buf);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "curve25519");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "ed25519");
    *curve = rt_xstrdup(cJSON_IsString(c) ? c->valuestring : "");
    *ed = rt_xstrdup(cJSON_IsString(e) ? e->valuestring : "");
    cJSON_Delete(j);
    rt_free(buf);
}

void mx_olm_sign_json(OlmAccount *a, cJSON *obj, const char *user, const char *device)
{
    char *canon = mx_canonical_json(obj);
    size_t n = olm_account_signature_length(a);
    char *sig = rt_xmalloc(n + 1);
    size_t rc = olm_account_sign(a, canon, strlen(canon), sig, n);
    sig[rc == olm_error() ? 0 : rc] = 0;
    cJSON *sigs = cJSON_GetObjectItemCaseSensitive(obj, "signatures");
    if (!sigs)
        sigs = cJSON_AddObjectToObject(obj, "signatures");
    cJSON *mine = cJSON_GetObjectItemCaseSensitive(sigs, user);
    if (!mine)
        mine = cJSON_AddObjectToObject(sigs, user);
    char kid[160];
    snprintf(kid, sizeof(kid), "ed25519:%s", device);
    cJSON_DeleteItemFromObjectCaseSensitive(mine, kid);
    cJSON_AddStringToObject(mine, kid, sig);
    rt_free(sig);
    rt_free(canon);
}

bool mx_olm_verify_json(const cJSON *obj, const char *user, const char *device, const char *ed25519)
{
    char kid[160];
    snprintf(kid, sizeof(kid), "ed25519:%s", device);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "signatures"), user),
        kid);
    if (!cJSON_IsString(s) || !ed25519)
        return false;
    char *canon = mx_canonical_json(obj);
    OlmUtility *u = olm_utility(rt_xmalloc(olm_utility_size()));
    char *sig = rt_xstrdup(s->valuestring);
    size_t rc =
        olm_ed25519_verify(u, ed25519, strlen(ed25519), canon, strlen(canon), sig, strlen(sig));
    olm_clear_utility(u);
    rt_free(u);
    rt_free(sig);
    rt_free(canon);
    return rc != olm_error();
}

/* ================================================================ sessions */

void mx_olm_session_free(OlmSession *s)
{
    if (!s)
        return;
    olm_clear_session(s);
    rt_free(s);
}

char *mx_olm_session_pickle(OlmSession *s, const char *key)
{
    size_t n = olm_pickle_session_length(s);
    char *buf = rt_xmalloc(n + 1);
    size_t rc = olm_pickle_session(s, key, strlen(key), buf, n);
    if (rc == olm_error()) {
        rt_free(buf);
        return NULL;
    }
    buf[rc] = 0;
    return buf;
}

OlmSession *mx_olm_session_unpickle(const char *pickle, const char *key)
{
    OlmSession *s = olm_session(rt_xmalloc(olm_session_size()));
    char *p = rt_xstrdup(pickle);
    size_t rc = olm_unpickle_session(s, key, strlen(key), p, strlen(p));
    rt_free(p);
    if (rc == olm_error()) {
        mx_olm_session_free(s);
        return NULL;
    }
    return s;
}

char *mx_olm_session_id(OlmSession *s)
{
    size_t n = olm_session_id_length(s);
    char *buf = rt_xmalloc(n + 1);
    size_t rc = olm_session_id(s, buf, n);
    buf[rc == olm_error() ? 0 : rc] = 0;
    return buf;
}

OlmSession *mx_olm_session_outbound(OlmAccount *a, const char *their_curve, const char *otk)
{
    OlmSession *s = olm_session(rt_xmalloc(olm_session_size()));
    size_t rl = olm_create_outbound_session_random_length(s);
    void *r = rnd_new(rl);
    size_t rc = olm_create_outbound_session(s, a, their_curve, strlen(their_curve), otk,
                                            strlen(otk), r, rl);
    rnd_free(r, rl);
    if (rc == olm_error()) {
        mx_olm_session_free(s);
        return NULL;
    }
    return s;
}

OlmSession *mx_olm_session_inbound(OlmAccount *a, const char *sender_curve, const char *body)
{
    OlmSession *s = olm_session(rt_xmalloc(olm_session_size()));
    char *b = rt_xstrdup(body);
    size_t rc =
        olm_create_inbound_session_from(s, a, sender_curve, strlen(sender_curve), b, strlen(b));
    rt_free(b);
    if (rc == olm_error()) {
        mx_olm_session_free(s);
        return NULL;
    }
    olm_remove_one_time_keys(a, s); /* fails harmlessly for the fallback key */
    return s;
}

bool mx_olm_session_matches(OlmSession *s, const char *sender_curve, const char *body)
{
    char *b = rt_xstrdup(body);
    size_t rc =
        olm_matches_inbound_session_from(s, sender_curve, strlen(sender_curve), b, strlen(b));
    rt_free(b);
    return rc == 1;
}

char *mx_olm_decrypt(OlmSession *s, int type, const char *body)
{
    char *b = rt_xstrdup(body);
    size_t max = olm_decrypt_max_plaintext_length(s, (size_t)type, b, strlen(b));
    rt_free(b);
    if (max == olm_error())
        return NULL;
    b = rt_xstrdup(body);
    char *out = rt_xmalloc(max + 1);
    size_t rc = olm_decrypt(s, (size_t)type, b, strlen(b), out, max);
    rt_free(b);
    if (rc == olm_error()) {
        rt_free(out);
        return NULL;
    }
    out[rc] = 0;
    return out;
}

char *mx_olm_encrypt(OlmSession *s, const char *plain, int *type)
{
    *type = (int)olm_encrypt_message_type(s);
    size_t rl = olm_encrypt_random_length(s);
    size_t n = olm_encrypt_message_length(s, strlen(plain));
    void *r = rnd_new(rl);
    char *out = rt_xmalloc(n + 1);
    size_t rc = olm_encrypt(s, plain, strlen(plain), r, rl, out, n);
    rnd_free(r, rl);
    if (rc == olm_error()) {
        rt_free(out);
        return NULL;
    }
    out[rc] = 0;
    return out;
}

/* ================================================================== megolm */

OlmOutboundGroupSession *mx_olm_out_new(void)
{
    OlmOutboundGroupSession *s =
        olm_outbound_group_session(rt_xmalloc(olm_outbound_group_session_size()));
    size_t rl = olm_init_outbound_group_session_random_length(s);
    uint8_t *r = rnd_new(rl);
    size_t rc = olm_init_outbound_group_session(s, r, rl);
    rnd_free(r, rl);
    if (rc == olm_error()) {
        mx_olm_out_free(s);
        return NULL;
    }
    return s;
}

void mx_olm_out_free(OlmOutboundGroupSession *s)
{
    if (!s)
        return;
    olm_clear_outbound_group_session(s);
    rt_free(s);
}

char *mx_olm_out_pickle(OlmOutboundGroupSession *s, const char *key)
{
    size_t n = olm_pickle_outbound_group_session_length(s);
    char *buf = rt_xmalloc(n + 1);
    size_t rc = olm_pickle_outbound_group_session(s, key, strlen(key), buf, n);
    if (rc == olm_error()) {
        rt_free(buf);
        return NULL;
    }
    buf[rc] = 0;
    return buf;
}

OlmOutboundGroupSession *mx_olm_out_unpickle(const char *pickle, const char *key)
{
    OlmOutboundGroupSession *s =
        olm_outbound_group_session(rt_xmalloc(olm_outbound_group_session_size()));
    char *p = rt_xstrdup(pickle);
    size_t rc = olm_unpickle_outbound_group_session(s, key, strlen(key), p, strlen(p));
    rt_free(p);
    if (rc == olm_error()) {
        mx_olm_out_free(s);
        return NULL;
    }
    return s;
}

char *mx_olm_out_id(OlmOutboundGroupSession *s)
{
    size_t n = olm_outbound_group_session_id_length(s);
    uint8_t *buf = rt_xmalloc(n + 1);
    size_t rc = olm_outbound_group_session_id(s, buf, n);
    buf[rc == olm_error() ? 0 : rc] = 0;
    return (char *)buf;
}

char *mx_olm_out_key(OlmOutboundGroupSession *s)
{
    size_t n = olm_outbound_group_session_key_length(s);
    uint8_t *buf = rt_xmalloc(n + 1);
    size_t rc = olm_outbound_group_session_key(s, buf, n);
    buf[rc == olm_error() ? 0 : rc] = 0;
    return (char *)buf;
}

char *mx_olm_out_encrypt(OlmOutboundGroupSession *s, const char *plain)
{
    size_t n = olm_group_encrypt_message_length(s, strlen(plain));
    uint8_t *out = rt_xmalloc(n + 1);
    size_t rc = olm_group_encrypt(s, (const uint8_t *)plain, strlen(plain), out, n);
    if (rc == olm_error()) {
        rt_free(out);
        return NULL;
    }
    out[rc] = 0;
    return (char *)out;
}

OlmInboundGroupSession *mx_olm_in_new(const char *session_key, bool exported)
{
    OlmInboundGroupSession *s =
        olm_inbound_group_session(rt_xmalloc(olm_inbound_group_session_size()));
    char *k = rt_xstrdup(session_key);
    size_t rc = exported ? olm_import_inbound_group_session(s, (uint8_t *)k, strlen(k))
                         : olm_init_inbound_group_session(s, (uint8_t *)k, strlen(k));
    OPENSSL_cleanse(k, strlen(k));
    rt_free(k);
    if (rc == olm_error()) {
        mx_olm_in_free(s);
        return NULL;
    }
    return s;
}

void mx_olm_in_free(OlmInboundGroupSession *s)
{
    if (!s)
        return;
    olm_clear_inbound_group_session(s);
    rt_free(s);
}

char *mx_olm_in_pickle(OlmInboundGroupSession *s, const char *key)
{
    size_t n = olm_pickle_inbound_group_session_length(s);
    char *buf = rt_xmalloc(n + 1);
    size_t rc = olm_pickle_inbound_group_session(s, key, strlen(key), buf, n);
    if (rc == olm_error()) {
        rt_free(buf);
        return NULL;
    }
    buf[rc] = 0;
    return buf;
}

OlmInboundGroupSession *mx_olm_in_unpickle(const char *pickle, const char *key)
{
    OlmInboundGroupSession *s =
        olm_inbound_group_session(rt_xmalloc(olm_inbound_group_session_size()));
    char *p = rt_xstrdup(pickle);
    size_t rc = olm_unpickle_inbound_group_session(s, key, strlen(key), p, strlen(p));
    rt_free(p);
    if (rc == olm_error()) {
        mx_olm_in_free(s);
        return NULL;
    }
    return s;
}

char *mx_olm_in_id(OlmInboundGroupSession *s)
{
    size_t n = olm_inbound_group_session_id_length(s);
    uint8_t *buf = rt_xmalloc(n + 1);
    size_t rc = olm_inbound_group_session_id(s, buf, n);
    buf[rc == olm_error() ? 0 : rc] = 0;
    return (char *)buf;
}

char *mx_olm_in_export(OlmInboundGroupSession *s)
{
    size_t n = olm_export_inbound_group_session_length(s);
    uint8_t *buf = rt_xmalloc(n + 1);
    size_t rc =
        olm_export_inbound_group_session(s, buf, n, olm_inbound_group_session_first_known_index(s));
    buf[rc == olm_error() ? 0 : rc] = 0;
    return (char *)buf;
}

char *mx_olm_in_decrypt(OlmInboundGroupSession *s, const char *body, uint32_t *index,
                        const char **err)
{
    char *b = rt_xstrdup(body);
    size_t max = olm_group_decrypt_max_plaintext_length(s, (uint8_t *)b, strlen(b));
    rt_free(b);
    if (max == olm_error()) {
        *err = olm_inbound_group_session_last_error(s);
        return NULL;
    }
    b = rt_xstrdup(body);
    uint8_t *out = rt_xmalloc(max + 1);
    size_t rc = olm_group_decrypt(s, (uint8_t *)b, strlen(b), out, max, index);
    rt_free(b);
    if (rc == olm_error()) {
        *err = olm_inbound_group_session_last_error(s);
        rt_free(out);
        return NULL;
    }
    out[rc] = 0;
    return (char *)out;
}

/* ==================================================================== JSON */

static int cmp_items(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string, y->string);
}

static cJSON *canon_copy(const cJSON *j, bool top)
{
    if (cJSON_IsObject(j)) {
        size_t n = (size_t)cJSON_GetArraySize(j), k = 0;
        const cJSON **v = rt_xcalloc(n ? n : 1, sizeof(*v));
        const cJSON *it;
        cJSON_ArrayForEach(it, j)
        {
            if (top &&
                (strcmp(it->string, "signatures") == 0 || strcmp(it->string, "unsigned") == 0))
                continue;
            v[k++] = it;
        }
        qsort(v, k, sizeof(*v), cmp_items);
        cJSON *o = cJSON_CreateObject();
        for (size_t i = 0; i < k; i++)
            cJSON_AddItemToObject(o, v[i]->string, canon_copy(v[i], false));
        rt_free(v);
        return o;
    }
    if (cJSON_IsArray(j)) {
        cJSON *a = cJSON_CreateArray();
        const cJSON *it;
        cJSON_ArrayForEach(it, j) cJSON_AddItemToArray(a, canon_copy(it, false));
        return a;
    }
    return cJSON_Duplicate(j, true);
}

char *mx_canonical_json(const cJSON *obj)
{
    cJSON *c = canon_copy(obj, true);
    char *txt = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    char *out = rt_xstrdup(txt ? txt : "{}");
    cJSON_free(txt);
    return out;
}

char *mx_b64_encode(const unsigned char *data, size_t len, bool url)
{
    size_t n = 4 * ((len + 2) / 3);
    char *out = rt_xmalloc(n + 1);
    int w = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    out[w < 0 ? 0 : w] = 0;
    char *e = out + strlen(out);
    while (e > out && e[-1] == '=')
        *--e = 0;
    if (url)
        for (char *p = out; *p; p++)
            *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return out;
}

unsigned char *mx_b64_decode(const char *s, size_t *len)
{
    size_t n = strlen(s);
    while (n && s[n - 1] == '=')
        n--;
    size_t padded = (n + 3) / 4 * 4;
    char *in = rt_xmalloc(padded + 1);
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        in[i] = ch == '-' ? '+' : ch == '_' ? '/' : ch;
    }
    for (size_t i = n; i < padded; i++)
        in[i] = '=';
    in[padded] = 0;
    if (n % 4 == 1) {
        rt_free(in);
        return NULL;
    }
    unsigned char *out = rt_xmalloc(padded / 4 * 3 + 1);
    int w = padded ? EVP_DecodeBlock(out, (unsigned char *)in, (int)padded) : 0;
    rt_free(in);
    if (w < 0) {
        rt_free(out);
        return NULL;
    }
    size_t pad = padded - n;
    *len = (size_t)w - pad;
    return out;
}

/* ============================================================= attachments */

static int ctr(const unsigned char key[32], const unsigned char iv[16], const unsigned char *in,
               size_t len, unsigned char *out)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int ok = x && EVP_EncryptInit_ex(x, EVP_aes_256_ctr(), NULL, key, iv) == 1;
    size_t done = 0;
    while (ok && done < len) {
        int chunk = len - done > (1u << 30) ? (1 << 30) : (int)(len - done), w = 0;
        ok = EVP_EncryptUpdate(x, out + done, &w, in + done, chunk) == 1;
        done += (size_t)w;
    }
    EVP_CIPHER_CTX_free(x);
    return ok ? 0 : -EIO;
}

void mx_attach_encrypt(const unsigned char *data, size_t len, unsigned char **out, cJSON **file)
{
    unsigned char key[32], iv[16], hash[32];
    mx_olm_random(key, sizeof(key));
    mx_olm_random(iv, 8);
    memset(iv + 8, 0, 8); /* the counter half starts at zero (v2) */
    *out = rt_xmalloc(len ? len : 1);
    if (ctr(key, iv, data, len, *out) != 0)
        abort();
    SHA256(*out, len, hash);
    cJSON *f = cJSON_CreateObject();
    cJSON *k = cJSON_AddObjectToObject(f, "key");
    cJSON_AddStringToObject(k, "kty", "oct");
    cJSON *ops = cJSON_AddArrayToObject(k, "key_ops");
    cJSON_AddItemToArray(ops, cJSON_CreateString("encrypt"));
    cJSON_AddItemToArray(ops, cJSON_CreateString("decrypt"));
    cJSON_AddStringToObject(k, "alg", "A256CTR");
    char *ks = mx_b64_encode(key, sizeof(key), true);
    cJSON_AddStringToObject(k, "k", ks);
    cJSON_AddTrueToObject(k, "ext");
    char *ivs = mx_b64_encode(iv, sizeof(iv), false);
    cJSON_AddStringToObject(f, "iv", ivs);
    cJSON *h = cJSON_AddObjectToObject(f, "hashes");
    char *hs = mx_b64_encode(hash, sizeof(hash), false);
    cJSON_AddStringToObject(h, "sha256", hs);
    cJSON_AddStringToObject(f, "v", "v2");
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(ks, strlen(ks));
    rt_free(ks);
    rt_free(ivs);
    rt_free(hs);
    *file = f;
}

int mx_attach_decrypt(const cJSON *file, const unsigned char *data, size_t len, unsigned char **out)
{
    *out = NULL;
    const cJSON *k =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(file, "key"), "k");
    const cJSON *iv = cJSON_GetObjectItemCaseSensitive(file, "iv");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(file, "hashes"), "sha256");
    if (!cJSON_IsString(k) || !cJSON_IsString(iv) || !cJSON_IsString(h))
        return -EINVAL;
    size_t kl = 0, il = 0, hl = 0;
    unsigned char *key = mx_b64_decode(k->valuestring, &kl);
    unsigned char *ivb = mx_b64_decode(iv->valuestring, &il);
    unsigned char *hash = mx_b64_decode(h->valuestring, &hl);
    int rc = -EINVAL;
    if (key && ivb && hash && kl == 32 && il == 16 && hl == 32) {
        unsigned char got[32];
        SHA256(data, len, got);
        if (CRYPTO_memcmp(got, hash, 32) != 0) {
            rc = -EBADMSG;
        } else {
            *out = rt_xmalloc(len ? len : 1);
            rc = ctr(key, ivb, data, len, *out);
            if (rc) {
                rt_free(*out);
                *out = NULL;
            }
        }
    }
    if (key)
        OPENSSL_cleanse(key, kl);
    rt_free(key);
    rt_free(ivb);
    rt_free(hash);
    return rc;
}
