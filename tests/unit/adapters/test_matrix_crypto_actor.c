/*
 * test_matrix_crypto_actor — the whole Matrix adapter with MATRIX_ENCRYPTION on, against the
 * homeserver double (tests/doubles/matrix_double.py: keys/upload, query, claim, sendToDevice,
 * to_device and device_lists in /sync), with a person built from libolm in process (the same
 * wrappers as the bot, mx_olm.h) and the gateway stand-in answering "Echo: <text>":
 *
 *   * start-up uploads signed device keys, 50 one-time keys and a fallback key;
 *   * the person's encrypted message (Olm pre-key m.room_key, then Megolm) reaches the
 *     gateway decrypted, and the bot's answer comes back encrypted: the person gets the room
 *     key over Olm and reads it; the 👀/✅ reactions stay plain;
 *   * a file sent into the encrypted room is uploaded as AES-CTR ciphertext and announced
 *     with file {url, key, iv, hashes} inside the encrypted event;
 *   * a message whose key is missing is held, a m.room_key_request goes to the sender, and
 *     it reaches the gateway when the key comes; another room keeps working meanwhile.
 */
#include "matrix_env.h"
#include "mx_olm.h"

#include "rt_alloc.h"
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ROOM  "!enc:localhost"
#define PLAIN "!plain:localhost"
#define ALICE "@alice:localhost"
#define ADEV  "ALICEDEV"

static const cJSON *jget(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = jget(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *print(const cJSON *j)
{
    char *t = cJSON_PrintUnformatted(j);
    char *o = rt_xstrdup(t);
    cJSON_free(t);
    return o;
}

typedef struct person {
    OlmAccount *acct;
    char *curve, *ed;
    OlmSession *to_bot, *from_bot;
    OlmOutboundGroupSession *out;
    OlmInboundGroupSession *in;
    char *in_id;
    char *bot_curve, *bot_ed;
} person;

static void person_fini(person *p)
{
    mx_olm_account_free(p->acct);
    mx_olm_session_free(p->to_bot);
    mx_olm_session_free(p->from_bot);
    mx_olm_out_free(p->out);
    mx_olm_in_free(p->in);
    rt_free(p->in_id);
    rt_free(p->curve);
    rt_free(p->ed);
    rt_free(p->bot_curve);
    rt_free(p->bot_ed);
}

/* The person's device uploads its keys to the double. */
static void person_init(person *p, mxd *d)
{
    memset(p, 0, sizeof(*p));
    p->acct = mx_olm_account_new();
    mx_olm_account_ids(p->acct, &p->curve, &p->ed);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "user", ALICE);
    cJSON_AddStringToObject(b, "device", ADEV);
    cJSON *dk = cJSON_AddObjectToObject(b, "device_keys");
    cJSON_AddStringToObject(dk, "user_id", ALICE);
    cJSON_AddStringToObject(dk, "device_id", ADEV);
    cJSON *alg = cJSON_AddArrayToObject(dk, "algorithms");
    cJSON_AddItemToArray(alg, cJSON_CreateString("m.olm.v1.curve25519-aes-sha2"));
    cJSON_AddItemToArray(alg, cJSON_CreateString("m.megolm.v1.aes-sha2"));
    cJSON *keys = cJSON_AddObjectToObject(dk, "keys");
    cJSON_AddStringToObject(keys, "curve25519:" ADEV, p->curve);
    cJSON_AddStringToObject(keys, "ed25519:" ADEV, p->ed);
    mx_olm_sign_json(p->acct, dk, ALICE, ADEV);
    /* one signed one-time key */
    unsigned char r[64];
    size_t rl = olm_account_generate_one_time_keys_random_length(p->acct, 1);
    mx_olm_random(r, rl);
    olm_account_generate_one_time_keys(p->acct, 1, r, rl);
    char buf[512];
    size_t n = olm_account_one_time_keys(p->acct, buf, sizeof(buf) - 1);
    buf[n] = 0;
    olm_account_mark_keys_as_published(p->acct);
    cJSON *otks = cJSON_Parse(buf);
    const cJSON *k = jget(otks, "curve25519")->child;
    cJSON *key = cJSON_CreateObject();
    cJSON_AddStringToObject(key, "key", k->valuestring);
    mx_olm_sign_json(p->acct, key, ALICE, ADEV);
    char kid[64];
    snprintf(kid, sizeof(kid), "signed_curve25519:%s", k->string);
    cJSON_AddItemToObject(cJSON_AddObjectToObject(b, "one_time_keys"), kid, key);
    cJSON_Delete(otks);
    char *body = print(b);
    cJSON_Delete(b);
    mxd_do(d, "/_double/keys", body);
    rt_free(body);
}

/* Learn the bot's identity keys (checking their self-signature) and claim one of its
 * one-time keys. */
static void person_session_to_bot(person *p, mxd *d)
{
    int st = 0;
    cJSON *dk = mxd_call(d, "GET", "/_double/device_keys?user=%40bot%3Alocalhost", NULL, &st);
    ASSERT_EQ(st, 200);
    const cJSON *mine = jget(dk, "BOTDEVICE");
    ASSERT_NOT_NULL(mine);
    p->bot_curve = rt_xstrdup(jstr(jget(mine, "keys"), "curve25519:BOTDEVICE"));
    p->bot_ed = rt_xstrdup(jstr(jget(mine, "keys"), "ed25519:BOTDEVICE"));
    ASSERT_TRUE(mx_olm_verify_json(mine, MX_BOT, "BOTDEVICE", p->bot_ed));
    cJSON_Delete(dk);
    cJSON *claim = mxd_call(d, "POST", "/_double/claim",
                            "{\"user\":\"" MX_BOT "\",\"device\":\"BOTDEVICE\"}", &st);
    ASSERT_EQ(st, 200);
    ASSERT_NOT_NULL(claim);
    ASSERT_NOT_NULL(claim->child);
    ASSERT_STR_CONTAINS(claim->child->string, "signed_curve25519:");
    const char *otk = jstr(claim->child, "key");
    ASSERT_NOT_NULL(otk);
    ASSERT_TRUE(mx_olm_verify_json(claim->child, MX_BOT, "BOTDEVICE", p->bot_ed));
    p->to_bot = mx_olm_session_outbound(p->acct, p->bot_curve, otk);
    ASSERT_NOT_NULL(p->to_bot);
    cJSON_Delete(claim);
}

/* Send an m.room_key for the person's current outbound Megolm session over Olm. */
static void person_send_room_key(person *p, mxd *d, cJSON *content)
{
    cJSON *pl = cJSON_CreateObject();
    cJSON_AddStringToObject(pl, "type", "m.room_key");
    cJSON_AddItemToObject(pl, "content", content);
    cJSON_AddStringToObject(pl, "sender", ALICE);
    cJSON_AddStringToObject(pl, "sender_device", ADEV);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(pl, "keys"), "ed25519", p->ed);
    cJSON_AddStringToObject(pl, "recipient", MX_BOT);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(pl, "recipient_keys"), "ed25519", p->bot_ed);
    char *plain = print(pl);
    cJSON_Delete(pl);
    int type = 0;
    char *ct = mx_olm_encrypt(p->to_bot, plain, &type);
    rt_free(plain);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "sender", ALICE);
    cJSON_AddStringToObject(b, "type", "m.room.encrypted");
    cJSON *c = cJSON_AddObjectToObject(
        cJSON_AddObjectToObject(cJSON_AddObjectToObject(b, "messages"), MX_BOT), "BOTDEVICE");
    cJSON_AddStringToObject(c, "algorithm", "m.olm.v1.curve25519-aes-sha2");
    cJSON_AddStringToObject(c, "sender_key", p->curve);
    cJSON *m = cJSON_AddObjectToObject(cJSON_AddObjectToObject(c, "ciphertext"), p->bot_curve);
    cJSON_AddNumberToObject(m, "type", type);
    cJSON_AddStringToObject(m, "body", ct);
    rt_free(ct);
    char *body = print(b);
    cJSON_Delete(b);
    mxd_do(d, "/_double/to_device", body);
    rt_free(body);
}

static cJSON *room_key(person *p)
{
    char *key = mx_olm_out_key(p->out), *id = mx_olm_out_id(p->out);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "algorithm", "m.megolm.v1.aes-sha2");
    cJSON_AddStringToObject(c, "room_id", ROOM);
    cJSON_AddStringToObject(c, "session_id", id);
    cJSON_AddStringToObject(c, "session_key", key);
    rt_free(key);
    rt_free(id);
    return c;
}

/* Post a Megolm-encrypted m.text from the person; the event id (new). */
static char *person_say(person *p, mxd *d, const char *text)
{
    cJSON *pl = cJSON_CreateObject();
    cJSON_AddStringToObject(pl, "type", "m.room.message");
    cJSON_AddStringToObject(pl, "room_id", ROOM);
    cJSON *pc = cJSON_AddObjectToObject(pl, "content");
    cJSON_AddStringToObject(pc, "msgtype", "m.text");
    cJSON_AddStringToObject(pc, "body", text);
    char *plain = print(pl);
    cJSON_Delete(pl);
    char *ct = mx_olm_out_encrypt(p->out, plain);
    rt_free(plain);
    char *sid = mx_olm_out_id(p->out);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "algorithm", "m.megolm.v1.aes-sha2");
    cJSON_AddStringToObject(c, "sender_key", p->curve);
    cJSON_AddStringToObject(c, "ciphertext", ct);
    cJSON_AddStringToObject(c, "session_id", sid);
    cJSON_AddStringToObject(c, "device_id", ADEV);
    rt_free(ct);
    rt_free(sid);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "room_id", ROOM);
    cJSON_AddStringToObject(b, "sender", ALICE);
    cJSON_AddStringToObject(b, "type", "m.room.encrypted");
    cJSON_AddItemToObject(b, "content", c);
    char *body = print(b);
    cJSON_Delete(b);
    int st = 0;
    cJSON *r = mxd_call(d, "POST", "/_double/message", body, &st);
    rt_free(body);
    ASSERT_EQ(st, 200);
    char *id = rt_xstrdup(jstr(r, "event_id"));
    cJSON_Delete(r);
    return id;
}

/* Take the to-device events for the person's device; handle m.room_key from the bot. */
static void person_take_to_device(person *p, mxd *d)
{
    int st = 0;
    char path[160];
    snprintf(path, sizeof(path), "/_double/to_device?user=%%40alice%%3Alocalhost&device=%s", ADEV);
    cJSON *evs = mxd_call(d, "GET", path, NULL, &st);
    ASSERT_EQ(st, 200);
    const cJSON *ev;
    cJSON_ArrayForEach(ev, evs)
    {
        if (strcmp(jstr(ev, "type"), "m.room.encrypted") != 0)
            continue;
        const cJSON *m = jget(jget(jget(ev, "content"), "ciphertext"), p->curve);
        ASSERT_NOT_NULL(m);
        int type = (int)jget(m, "type")->valuedouble;
        const char *body = jstr(m, "body");
        char *plain = NULL;
        OlmSession *mine[2] = {p->to_bot, p->from_bot};
        for (int i = 0; i < 2 && !plain; i++)
            if (mine[i] && (type == 1 || mx_olm_session_matches(mine[i], p->bot_curve, body)))
                plain = mx_olm_decrypt(mine[i], type, body);
        if (!plain) {
            ASSERT_EQ(type, 0);
            p->from_bot = mx_olm_session_inbound(p->acct, p->bot_curve, body);
            ASSERT_NOT_NULL(p->from_bot);
            plain = mx_olm_decrypt(p->from_bot, 0, body);
        }
        ASSERT_NOT_NULL(plain);
        cJSON *j = cJSON_Parse(plain);
        rt_free(plain);
        ASSERT_STR_EQ(jstr(j, "type"), "m.room_key");
        ASSERT_STR_EQ(jstr(j, "recipient"), ALICE);
        ASSERT_STR_EQ(jstr(jget(j, "keys"), "ed25519"), p->bot_ed);
        const cJSON *rk = jget(j, "content");
        mx_olm_in_free(p->in);
        rt_free(p->in_id);
        p->in = mx_olm_in_new(jstr(rk, "session_key"), false);
        p->in_id = rt_xstrdup(jstr(rk, "session_id"));
        cJSON_Delete(j);
    }
    cJSON_Delete(evs);
}

/* Decrypt an event the bot sent; the plaintext event (cJSON_Delete). */
static cJSON *person_read(person *p, const cJSON *sent)
{
    const cJSON *c = jget(sent, "content");
    ASSERT_STR_EQ(jstr(c, "algorithm"), "m.megolm.v1.aes-sha2");
    ASSERT_NOT_NULL(p->in);
    ASSERT_STR_EQ(jstr(c, "session_id"), p->in_id);
    uint32_t idx = 0;
    const char *why = NULL;
    char *plain = mx_olm_in_decrypt(p->in, jstr(c, "ciphertext"), &idx, &why);
    ASSERT_NOT_NULL(plain);
    cJSON *j = cJSON_Parse(plain);
    rt_free(plain);
    ASSERT_STR_EQ(jstr(j, "room_id"), ROOM);
    return j;
}

/* Wait until the bot has sent n events of type into room; the array (cJSON_Delete). */
static cJSON *wait_sent(mxd *d, const char *room, const char *type, int n)
{
    char what[256];
    snprintf(what, sizeof(what), "sent?room=%s&type=%s", room, type);
    cJSON *s = mxd_wait(d, what, n, MX_WAIT_MS);
    ASSERT_NOT_NULL(s);
    return s;
}

TEST(encrypted_room_end_to_end_through_the_adapter)
{
    mxd d = {0};
    mxd_start(&d, 0, NULL, false);
    mxd_room(&d, ROOM, ALICE, true, false);
    mxd_do(&d, "/_double/message",
           "{\"room_id\":\"" ROOM "\",\"sender\":\"" ALICE "\",\"type\":\"m.room.encryption\","
           "\"state_key\":\"\",\"content\":{\"algorithm\":\"m.megolm.v1.aes-sha2\"}}");
    mxd_room(&d, PLAIN, "@bob:localhost", true, false);
    person p;
    person_init(&p, &d);
    mte e;
    mte_init(&e, &d, NULL);
    e.o.encryption = true;
    mte_up(&e);
    ASSERT_TRUE(mte_logged("Matrix: E2EE enabled (store: "));
    ASSERT_TRUE(mte_logged("device_id=BOTDEVICE)"));
    int st = 0;
    cJSON *j = mxd_call(&d, "GET", "/_double/requests?label=keys_upload", NULL, &st);
    ASSERT_GE(cJSON_GetArraySize(j), 2); /* device keys, then one-time + fallback keys */
    cJSON_Delete(j);
    person_session_to_bot(&p, &d);

    /* 1. the person's encrypted message reaches the gateway in clear */
    p.out = mx_olm_out_new();
    person_send_room_key(&p, &d, room_key(&p));
    char *id = person_say(&p, &d, "hello secret bot");
    ASSERT_OK(mgw_wait(e.gw, 1, MX_WAIT_MS));
    const mgw_ev *ev = mgw_get(e.gw, 0);
    ASSERT_STR_EQ(ev->text, "hello secret bot");
    ASSERT_STR_EQ(ev->message_id, id);
    ASSERT_STR_EQ(ev->chat_id, ROOM);
    rt_free(id);

    /* 2. the answer is encrypted; the key came to the person's device over Olm */
    cJSON *sent = wait_sent(&d, ROOM, "m.room.encrypted", 1);
    person_take_to_device(&p, &d);
    cJSON *plain = person_read(&p, cJSON_GetArrayItem(sent, 0));
    ASSERT_STR_EQ(jstr(plain, "type"), "m.room.message");
    ASSERT_STR_EQ(jstr(jget(plain, "content"), "body"), "Echo: hello secret bot");
    cJSON_Delete(plain);
    cJSON_Delete(sent);
    /* reactions stay plain (never encrypted) */
    cJSON *re = wait_sent(&d, ROOM, "m.reaction", 1);
    cJSON_Delete(re);
    ASSERT_EQ(mxd_count(&d, "sent?room=" ROOM "&type=m.room.message"), 0);

    /* 3. a file into the encrypted room: ciphertext on the server, the key in the event */
    char path[256];
    snprintf(path, sizeof(path), "%s/report.txt", e.home);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs("the quarterly numbers, in secret", f);
    fclose(f);
    gw_target to = {.chat_id = ROOM};
    rt_send(e.cx, e.ref, matrix_file_new(&to, path, NULL, false));
    sent = wait_sent(&d, ROOM, "m.room.encrypted", 2);
    person_take_to_device(&p, &d); /* nothing new: same session */
    plain = person_read(&p, cJSON_GetArrayItem(sent, 1));
    const cJSON *c = jget(plain, "content");
    ASSERT_STR_EQ(jstr(c, "msgtype"), "m.file");
    ASSERT_NULL(jget(c, "url"));
    const cJSON *file = jget(c, "file");
    const char *url = jstr(file, "url");
    ASSERT_NOT_NULL(url);
    ASSERT_STR_EQ(jstr(file, "v"), "v2");
    char q[256];
    snprintf(q, sizeof(q), "/_double/media_hex?id=%s", strrchr(url, '/') + 1);
    cJSON *m = mxd_call(&d, "GET", q, NULL, &st);
    ASSERT_EQ(st, 200);
    const char *hex = jstr(m, "hex");
    size_t n = strlen(hex) / 2;
    unsigned char *bytes = rt_xmalloc(n + 1), *out = NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        ASSERT_EQ(sscanf(hex + 2 * i, "%2x", &v), 1);
        bytes[i] = (unsigned char)v;
    }
    ASSERT_EQ(n, strlen("the quarterly numbers, in secret"));
    ASSERT_NE(memcmp(bytes, "the quarterly", 13), 0); /* the server has ciphertext */
    ASSERT_STR_EQ(jstr(m, "content_type"), "application/octet-stream");
    ASSERT_OK(mx_attach_decrypt(file, bytes, n, &out));
    ASSERT_EQ(memcmp(out, "the quarterly numbers, in secret", n), 0);
    rt_free(out);
    rt_free(bytes);
    cJSON_Delete(m);
    cJSON_Delete(plain);
    cJSON_Delete(sent);

    /* 4. a key the bot lacks: held and requested; another room goes on; then delivered */
    mx_olm_out_free(p.out);
    p.out = mx_olm_out_new();
    cJSON *late_key = room_key(&p);
    id = person_say(&p, &d, "the key comes later");
    char want[300];
    snprintf(want, sizeof(want), "Matrix: cannot decrypt %s in " ROOM " yet", id);
    for (int i = 0; i < 500 && !mte_logged(want); i++)
        usleep(10000); /* polling a condition with a deadline */
    ASSERT_TRUE(mte_logged(want));
    mxd_post(&d, PLAIN, "@bob:localhost", "meanwhile in the plain room", NULL);
    ASSERT_OK(mgw_wait(e.gw, 2, MX_WAIT_MS));
    ASSERT_STR_EQ(mgw_get(e.gw, 1)->text, "meanwhile in the plain room");
    /* the request reached the sender's devices */
    snprintf(q, sizeof(q), "/_double/to_device?user=%%40alice%%3Alocalhost&device=%s", ADEV);
    cJSON *reqs = NULL;
    for (int i = 0; i < 500; i++) {
        reqs = mxd_call(&d, "GET", q, NULL, &st);
        if (cJSON_GetArraySize(reqs) > 0)
            break;
        cJSON_Delete(reqs);
        reqs = NULL;
        usleep(10000);
    }
    ASSERT_NOT_NULL(reqs);
    ASSERT_STR_EQ(jstr(cJSON_GetArrayItem(reqs, 0), "type"), "m.room_key_request");
    ASSERT_STR_EQ(jstr(jget(cJSON_GetArrayItem(reqs, 0), "content"), "action"), "request");
    cJSON_Delete(reqs);
    person_send_room_key(&p, &d, late_key);
    ASSERT_OK(mgw_wait(e.gw, 3, MX_WAIT_MS));
    ASSERT_STR_EQ(mgw_get(e.gw, 2)->text, "the key comes later");
    ASSERT_STR_EQ(mgw_get(e.gw, 2)->message_id, id);
    rt_free(id);
    mte_fini(&e, true);
    person_fini(&p);
    mxd_stop(&d);
}
