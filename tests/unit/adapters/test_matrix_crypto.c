/*
 * test_matrix_crypto — the Matrix adapter's E2EE layer (adapters/matrix/mx_crypto.c with
 * libolm) driven directly through its seam (mx_crypto.h), with two libolm identities in
 * process: the bot (mx_crypto) and a test "person" built from the same wrappers (mx_olm.h).
 * The test plays the homeserver: every request the layer submits is captured and answered
 * here with the spec's response shapes.
 *
 * Covers: the account created once and kept in crypto.db (0600) across restarts; device keys,
 * one-time keys and the fallback key signed and uploaded and topped up from the sync counts;
 * Olm to-device decryption (pre-key and normal messages, several sessions per device);
 * m.room_key → Megolm inbound; timeline decryption, the replay check, a missing key (kept,
 * requested, redelivered); sharing an outbound session over Olm (members, query, claim,
 * send), rotation by message count, re-sharing to a device that appears later; the stale
 * identity check; attachments (AES-CTR + SHA-256); bad input.
 */
#include "mx_crypto.h"
#include "mx_cstore.h"
#include "mx_olm.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOT    "@bot:hs"
#define BOTDEV "BOTDEV"
#define ALICE  "@alice:hs"
#define ROOM   "!room:hs"

/* ============================================================ the fake env */

typedef struct rq {
    uint64_t id;
    char method[8];
    char *path, *body;
    bool done;
} rq;

static struct {
    rq v[256];
    size_t n;
    uint64_t next;
    cJSON *red[16];
    char red_room[16][64];
    size_t nred;
    int resumed;
    bool ready;
    int ready_err;
    char ready_msg[512];
    char *log;
    size_t log_len;
} E;

static uint64_t env_submit(void *arg, const char *method, const char *path, const char *body)
{
    (void)arg;
    if (E.n == RT_ARRAY_LEN(E.v))
        abort();
    rq *q = &E.v[E.n++];
    q->id = ++E.next;
    snprintf(q->method, sizeof(q->method), "%s", method);
    q->path = rt_xstrdup(path);
    q->body = body ? rt_xstrdup(body) : NULL;
    return q->id;
}

static void env_redeliver(void *arg, const char *room_id, cJSON *ev)
{
    (void)arg;
    if (E.nred == RT_ARRAY_LEN(E.red)) {
        cJSON_Delete(ev);
        return;
    }
    snprintf(E.red_room[E.nred], sizeof(E.red_room[0]), "%s", room_id);
    E.red[E.nred++] = ev;
}

static void env_resume(void *arg, const char *room_id)
{
    (void)arg;
    (void)room_id;
    E.resumed++;
}

static void env_ready(void *arg, int err, const char *msg)
{
    (void)arg;
    E.ready = true;
    E.ready_err = err;
    snprintf(E.ready_msg, sizeof(E.ready_msg), "%s", msg ? msg : "");
}

static void log_sink(const char *line, size_t len, void *arg)
{
    (void)arg;
    E.log = rt_xrealloc(E.log, E.log_len + len + 2);
    memcpy(E.log + E.log_len, line, len);
    E.log_len += len;
    E.log[E.log_len++] = '\n';
    E.log[E.log_len] = 0;
}

static bool logged(const char *s)
{
    return E.log && strstr(E.log, s);
}

static const mx_crypto_env ENV = {
    .submit = env_submit, .redeliver = env_redeliver, .resume = env_resume, .ready = env_ready};

/* The oldest request not answered yet whose method and path (prefix) match, or NULL. */
static rq *pending_rq(const char *method, const char *prefix)
{
    for (size_t i = 0; i < E.n; i++)
        if (!E.v[i].done && strcmp(E.v[i].method, method) == 0 &&
            strncmp(E.v[i].path, prefix, strlen(prefix)) == 0)
            return &E.v[i];
    return NULL;
}

static size_t open_rqs(void)
{
    size_t k = 0;
    for (size_t i = 0; i < E.n; i++)
        k += !E.v[i].done;
    return k;
}

static void answer(mx_crypto *c, rq *q, int status, const char *body)
{
    rt_io_msg_http_done d;
    memset(&d, 0, sizeof(d));
    d.id = q->id;
    d.status = status;
    d.body = body ? rt_xstrdup(body) : NULL;
    d.body_len = body ? strlen(body) : 0;
    q->done = true;
    mx_crypto_on_http(c, &d);
    rt_free(d.body);
}

static void answer_json(mx_crypto *c, rq *q, int status, cJSON *j)
{
    char *t = cJSON_PrintUnformatted(j);
    answer(c, q, status, t);
    cJSON_free(t);
    cJSON_Delete(j);
}

static const cJSON *jget(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = jget(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ========================================================== the homeserver */

/* What the "server" keeps of the bot. */
static struct {
    cJSON *device_keys; /* the uploaded device keys */
    cJSON *otks;        /* signed_curve25519:<id> → {key, signatures} */
    cJSON *fallback;
    char *curve, *ed;
} S;

static void server_reset(void)
{
    cJSON_Delete(S.device_keys);
    cJSON_Delete(S.otks);
    cJSON_Delete(S.fallback);
    rt_free(S.curve);
    rt_free(S.ed);
    memset(&S, 0, sizeof(S));
    S.otks = cJSON_CreateObject();
}

static cJSON *counts(void)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(j, "one_time_key_counts"), "signed_curve25519",
                            cJSON_GetArraySize(S.otks));
    return j;
}

/* Answer a /keys/upload like Synapse: check signatures, keep keys, refuse a clash. */
static void serve_upload(mx_crypto *c, rq *q)
{
    cJSON *b = cJSON_Parse(q->body);
    ASSERT_NOT_NULL(b);
    const cJSON *dk = jget(b, "device_keys");
    if (dk) {
        char k[64];
        snprintf(k, sizeof(k), "ed25519:%s", BOTDEV);
        const char *ed = jstr(jget(dk, "keys"), k);
        ASSERT_NOT_NULL(ed);
        ASSERT_TRUE(mx_olm_verify_json(dk, BOT, BOTDEV, ed));
        ASSERT_STR_EQ(jstr(dk, "user_id"), BOT);
        cJSON_Delete(S.device_keys);
        S.device_keys = cJSON_Duplicate(dk, true);
        rt_free(S.ed);
        S.ed = rt_xstrdup(ed);
        snprintf(k, sizeof(k), "curve25519:%s", BOTDEV);
        rt_free(S.curve);
        S.curve = rt_xstrdup(jstr(jget(dk, "keys"), k));
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, jget(b, "one_time_keys"))
    {
        ASSERT_TRUE(mx_olm_verify_json(it, BOT, BOTDEV, S.ed));
        if (jget(S.otks, it->string)) {
            cJSON_Delete(b);
            char err[256];
            snprintf(err, sizeof(err),
                     "{\"errcode\":\"M_INVALID_PARAM\",\"error\":\"One time key %s already "
                     "exists. Old key: x; new key: y\"}",
                     it->string);
            answer(c, q, 400, err);
            return;
        }
        cJSON_AddItemToObject(S.otks, it->string, cJSON_Duplicate(it, true));
    }
    cJSON_ArrayForEach(it, jget(b, "fallback_keys"))
    {
        ASSERT_TRUE(mx_olm_verify_json(it, BOT, BOTDEV, S.ed));
        ASSERT_TRUE(cJSON_IsTrue(jget(it, "fallback")));
        cJSON_Delete(S.fallback);
        S.fallback = cJSON_Duplicate(it, true);
    }
    cJSON_Delete(b);
    answer_json(c, q, 200, counts());
}

/* Answer the bot's query of its own device. */
static void serve_own_query(mx_crypto *c, rq *q)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *dk = cJSON_AddObjectToObject(j, "device_keys");
    if (S.device_keys)
        cJSON_AddItemToObject(cJSON_AddObjectToObject(dk, BOT), BOTDEV,
                              cJSON_Duplicate(S.device_keys, true));
    answer_json(c, q, 200, j);
}

/* Run the start-up exchange to the end (ready). */
static void serve_startup(mx_crypto *c)
{
    for (int i = 0; i < 20 && !E.ready; i++) {
        rq *q = pending_rq("POST", "/_matrix/client/v3/keys/");
        ASSERT_NOT_NULL(q);
        if (strstr(q->path, "/keys/query"))
            serve_own_query(c, q);
        else
            serve_upload(c, q);
    }
    ASSERT_TRUE(E.ready);
}

static mx_crypto *bot_start(const char *store)
{
    E.ready = false;
    mx_crypto *c = mx_crypto_new(&ENV, store, true);
    mx_crypto_configure(c, NULL, NULL);
    mx_crypto_connect(c, BOT, BOTDEV);
    return c;
}

static char *store_dir(void)
{
    return rt_xasprintf("%s/platforms/matrix/store", test_tmpdir());
}

static void setup(void)
{
    rt_log_capture(log_sink, NULL);
    server_reset();
}

/* ============================================================== the person */

typedef struct person {
    const char *user, *dev;
    OlmAccount *acct;
    char *curve, *ed;
    OlmSession *to_bot; /* outbound Olm session */
    OlmSession *from_bot;
    OlmSession *extra; /* another outbound session (borrowed) */
    OlmSession *last;  /* the session the bot's last message came on (borrowed) */
    OlmOutboundGroupSession *out;
    OlmInboundGroupSession *in; /* the bot's room key */
    char *in_id;
} person;

static void person_init(person *p, const char *user, const char *dev)
{
    memset(p, 0, sizeof(*p));
    p->user = user;
    p->dev = dev;
    p->acct = mx_olm_account_new();
    mx_olm_account_ids(p->acct, &p->curve, &p->ed);
}

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
}

static cJSON *person_device_keys(person *p)
{
    cJSON *dk = cJSON_CreateObject();
    cJSON_AddStringToObject(dk, "user_id", p->user);
    cJSON_AddStringToObject(dk, "device_id", p->dev);
    cJSON *alg = cJSON_AddArrayToObject(dk, "algorithms");
    cJSON_AddItemToArray(alg, cJSON_CreateString("m.olm.v1.curve25519-aes-sha2"));
    cJSON_AddItemToArray(alg, cJSON_CreateString("m.megolm.v1.aes-sha2"));
    cJSON *keys = cJSON_AddObjectToObject(dk, "keys");
    char k[64];
    snprintf(k, sizeof(k), "curve25519:%s", p->dev);
    cJSON_AddStringToObject(keys, k, p->curve);
    snprintf(k, sizeof(k), "ed25519:%s", p->dev);
    cJSON_AddStringToObject(keys, k, p->ed);
    mx_olm_sign_json(p->acct, dk, p->user, p->dev);
    return dk;
}

/* A signed one-time key of the person: {"signed_curve25519:<id>": {key, signatures}}. */
static cJSON *person_otk(person *p)
{
    unsigned char r[64];
    size_t rl = olm_account_generate_one_time_keys_random_length(p->acct, 1);
    ASSERT_LE(rl, sizeof(r));
    mx_olm_random(r, rl);
    olm_account_generate_one_time_keys(p->acct, 1, r, rl);
    char buf[512];
    size_t n = olm_account_one_time_keys(p->acct, buf, sizeof(buf) - 1);
    buf[n] = 0;
    olm_account_mark_keys_as_published(p->acct);
    cJSON *j = cJSON_Parse(buf);
    const cJSON *k = jget(j, "curve25519")->child;
    cJSON *o = cJSON_CreateObject();
    cJSON *key = cJSON_CreateObject();
    cJSON_AddStringToObject(key, "key", k->valuestring);
    mx_olm_sign_json(p->acct, key, p->user, p->dev);
    char id[64];
    snprintf(id, sizeof(id), "signed_curve25519:%s", k->string);
    cJSON_AddItemToObject(o, id, key);
    cJSON_Delete(j);
    return o;
}

/* A to-device m.room.encrypted event from the person to the bot carrying type/content. */
static cJSON *person_to_device(person *p, OlmSession *s, const char *type, cJSON *content)
{
    cJSON *pl = cJSON_CreateObject();
    cJSON_AddStringToObject(pl, "type", type);
    cJSON_AddItemToObject(pl, "content", content);
    cJSON_AddStringToObject(pl, "sender", p->user);
    cJSON_AddStringToObject(pl, "sender_device", p->dev);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(pl, "keys"), "ed25519", p->ed);
    cJSON_AddStringToObject(pl, "recipient", BOT);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(pl, "recipient_keys"), "ed25519", S.ed);
    char *plain = cJSON_PrintUnformatted(pl);
    cJSON_Delete(pl);
    int mtype = 0;
    char *body = mx_olm_encrypt(s, plain, &mtype);
    cJSON_free(plain);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "type", "m.room.encrypted");
    cJSON_AddStringToObject(ev, "sender", p->user);
    cJSON *c = cJSON_AddObjectToObject(ev, "content");
    cJSON_AddStringToObject(c, "algorithm", "m.olm.v1.curve25519-aes-sha2");
    cJSON_AddStringToObject(c, "sender_key", p->curve);
    cJSON *m = cJSON_AddObjectToObject(cJSON_AddObjectToObject(c, "ciphertext"), S.curve);
    cJSON_AddNumberToObject(m, "type", mtype);
    cJSON_AddStringToObject(m, "body", body);
    rt_free(body);
    return ev;
}

/* One of the bot's uploaded one-time keys (removed from the server, as /keys/claim does). */
static char *claim_bot_otk(void)
{
    cJSON *k = S.otks->child;
    ASSERT_NOT_NULL(k);
    ASSERT_TRUE(mx_olm_verify_json(k, BOT, BOTDEV, S.ed));
    char *key = rt_xstrdup(jstr(k, "key"));
    cJSON_DeleteItemFromObjectCaseSensitive(S.otks, k->string);
    return key;
}

static cJSON *room_key_content(person *p)
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

/* A sync with to-device events (taken) and the room's encryption state. */
static cJSON *sync_with(cJSON *to_device_events, int64_t otk_count, bool encrypted_room,
                        int rotation_msgs)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "next_batch", "s1");
    if (otk_count >= 0)
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(s, "device_one_time_keys_count"),
                                "signed_curve25519", (double)otk_count);
    cJSON *fb = cJSON_AddArrayToObject(s, "device_unused_fallback_key_types");
    cJSON_AddItemToArray(fb, cJSON_CreateString("signed_curve25519"));
    cJSON *td = cJSON_AddObjectToObject(s, "to_device");
    cJSON_AddItemToObject(td, "events", to_device_events ? to_device_events : cJSON_CreateArray());
    if (encrypted_room) {
        cJSON *room = cJSON_AddObjectToObject(
            cJSON_AddObjectToObject(cJSON_AddObjectToObject(s, "rooms"), "join"), ROOM);
        cJSON *evs = cJSON_AddArrayToObject(cJSON_AddObjectToObject(room, "state"), "events");
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "type", "m.room.encryption");
        cJSON_AddStringToObject(e, "state_key", "");
        cJSON *c = cJSON_AddObjectToObject(e, "content");
        cJSON_AddStringToObject(c, "algorithm", "m.megolm.v1.aes-sha2");
        if (rotation_msgs > 0)
            cJSON_AddNumberToObject(c, "rotation_period_msgs", rotation_msgs);
        cJSON_AddItemToArray(evs, e);
    }
    return s;
}

static void sync_apply(mx_crypto *c, cJSON *s)
{
    mx_crypto_on_sync(c, s);
    cJSON_Delete(s);
}

/* A Megolm timeline event from the person. */
static cJSON *person_room_event(person *p, const char *event_id, const char *text)
{
    cJSON *pl = cJSON_CreateObject();
    cJSON_AddStringToObject(pl, "type", "m.room.message");
    cJSON_AddStringToObject(pl, "room_id", ROOM);
    cJSON *pc = cJSON_AddObjectToObject(pl, "content");
    cJSON_AddStringToObject(pc, "msgtype", "m.text");
    cJSON_AddStringToObject(pc, "body", text);
    char *plain = cJSON_PrintUnformatted(pl);
    cJSON_Delete(pl);
    char *ct = mx_olm_out_encrypt(p->out, plain);
    cJSON_free(plain);
    char *sid = mx_olm_out_id(p->out);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "type", "m.room.encrypted");
    cJSON_AddStringToObject(ev, "sender", p->user);
    cJSON_AddStringToObject(ev, "event_id", event_id);
    cJSON_AddNumberToObject(ev, "origin_server_ts", 1700000000000.0);
    cJSON *c = cJSON_AddObjectToObject(ev, "content");
    cJSON_AddStringToObject(c, "algorithm", "m.megolm.v1.aes-sha2");
    cJSON_AddStringToObject(c, "sender_key", p->curve);
    cJSON_AddStringToObject(c, "ciphertext", ct);
    cJSON_AddStringToObject(c, "session_id", sid);
    cJSON_AddStringToObject(c, "device_id", p->dev);
    rt_free(ct);
    rt_free(sid);
    return ev;
}

/* The bot is up, the person has an Olm session to it and has shared a Megolm session. */
static mx_crypto *bot_with_person_key(person *p, char **store)
{
    *store = store_dir();
    mx_crypto *c = bot_start(*store);
    serve_startup(c);
    ASSERT_EQ(E.ready_err, 0);
    person_init(p, ALICE, "ALICEDEV");
    char *otk = claim_bot_otk();
    p->to_bot = mx_olm_session_outbound(p->acct, S.curve, otk);
    rt_free(otk);
    ASSERT_NOT_NULL(p->to_bot);
    p->out = mx_olm_out_new();
    cJSON *evs = cJSON_CreateArray();
    cJSON_AddItemToArray(evs, person_to_device(p, p->to_bot, "m.room_key", room_key_content(p)));
    sync_apply(c, sync_with(evs, cJSON_GetArraySize(S.otks), true, 0));
    return c;
}

/* =================================================================== tests */

TEST(account_is_created_once_uploaded_signed_and_kept_across_restarts)
{
    setup();
    char *store = store_dir();
    mx_crypto *c = bot_start(store);
    serve_startup(c);
    ASSERT_EQ(E.ready_err, 0);
    ASSERT_TRUE(logged("Matrix: created a new E2EE identity for device BOTDEV"));
    ASSERT_TRUE(logged("Matrix: E2EE enabled (store: "));
    ASSERT_TRUE(logged("device_id=BOTDEV)"));
    ASSERT_NOT_NULL(S.device_keys);
    ASSERT_EQ(cJSON_GetArraySize(S.otks), 50); /* half of libolm's 100 */
    ASSERT_NOT_NULL(S.fallback);
    /* crypto.db is private and the pickle key never reaches the log */
    char *db = rt_xasprintf("%s/crypto.db", store);
    struct stat st;
    ASSERT_OK(stat(db, &st));
    ASSERT_EQ(st.st_mode & 0777, 0600);
    ASSERT_FALSE(logged(BOT ":default"));
    char *ed = rt_xstrdup(S.ed), *curve = rt_xstrdup(S.curve);
    mx_crypto_free(c);
    /* a restart: the same identity, nothing new uploaded but what is missing */
    size_t before = E.n;
    c = bot_start(store);
    serve_startup(c);
    ASSERT_EQ(E.ready_err, 0);
    ASSERT_STR_EQ(S.ed, ed);
    ASSERT_STR_EQ(S.curve, curve);
    for (size_t i = before; i < E.n; i++)
        ASSERT_FALSE(E.v[i].body && strstr(E.v[i].body, "\"device_keys\":{\"user_id\""));
    /* the sync count drops: more one-time keys go up */
    for (int i = 0; i < 30; i++)
        cJSON_DeleteItemFromObjectCaseSensitive(S.otks, S.otks->child->string);
    sync_apply(c, sync_with(NULL, cJSON_GetArraySize(S.otks), false, 0));
    rq *q = pending_rq("POST", "/_matrix/client/v3/keys/upload");
    ASSERT_NOT_NULL(q);
    serve_upload(c, q);
    ASSERT_EQ(cJSON_GetArraySize(S.otks), 50);
    /* no fallback key unused: a new one goes up */
    cJSON *s = sync_with(NULL, 50, false, 0);
    cJSON_ReplaceItemInObjectCaseSensitive(s, "device_unused_fallback_key_types",
                                           cJSON_CreateArray());
    cJSON *old_fb = cJSON_Duplicate(S.fallback, true);
    sync_apply(c, s);
    q = pending_rq("POST", "/_matrix/client/v3/keys/upload");
    ASSERT_NOT_NULL(q);
    ASSERT_STR_CONTAINS(q->body, "fallback_keys");
    serve_upload(c, q);
    ASSERT_FALSE(cJSON_Compare(old_fb, S.fallback, true));
    cJSON_Delete(old_fb);
    mx_crypto_free(c);
    rt_free(ed);
    rt_free(curve);
    rt_free(db);
    rt_free(store);
    server_reset();
}

TEST(a_deleted_store_with_the_same_device_is_refused_as_stale)
{
    setup();
    char *store = store_dir();
    mx_crypto *c = bot_start(store);
    serve_startup(c);
    ASSERT_EQ(E.ready_err, 0);
    mx_crypto_free(c);
    char *db = rt_xasprintf("%s/crypto.db", store);
    ASSERT_OK(unlink(db));
    c = bot_start(store);
    serve_startup(c);
    ASSERT_NE(E.ready_err, 0);
    ASSERT_STR_CONTAINS(E.ready_msg, "device BOTDEV has stale one-time keys on the server "
                                     "signed with a previous identity key");
    ASSERT_TRUE(logged("Matrix: device BOTDEV has stale one-time keys on the server signed "
                       "with a previous identity key. Peers cannot establish new Olm sessions "
                       "with this device. Delete the device from the homeserver and restart, "
                       "or generate a new access token to get a fresh device ID."));
    mx_crypto_free(c);
    rt_free(db);
    rt_free(store);
    server_reset();
}

TEST(shared_identity_replaced_on_the_server_is_fatal)
{
    setup();
    char *store = store_dir();
    mx_crypto *c = bot_start(store);
    serve_startup(c);
    mx_crypto_free(c);
    /* someone else's keys for our device */
    person other;
    person_init(&other, BOT, BOTDEV);
    cJSON_Delete(S.device_keys);
    S.device_keys = person_device_keys(&other);
    c = bot_start(store);
    serve_startup(c);
    ASSERT_NE(E.ready_err, 0);
    ASSERT_STR_CONTAINS(E.ready_msg, "server has different identity keys for device BOTDEV — "
                                     "local crypto state is stale. Delete ");
    mx_crypto_free(c);
    person_fini(&other);
    rt_free(store);
    server_reset();
}

TEST(room_key_over_olm_then_megolm_decrypts_and_replays_are_refused)
{
    setup();
    person p;
    char *store;
    mx_crypto *c = bot_with_person_key(&p, &store);
    ASSERT_FALSE(logged("cannot decrypt an encrypted to-device"));
    cJSON *ev = person_room_event(&p, "$e1", "hello bot");
    cJSON *plain = NULL;
    ASSERT_OK(mx_crypto_decrypt(c, ROOM, ev, &plain));
    ASSERT_STR_EQ(jstr(plain, "type"), "m.room.message");
    ASSERT_STR_EQ(jstr(jget(plain, "content"), "body"), "hello bot");
    ASSERT_STR_EQ(jstr(plain, "event_id"), "$e1");
    ASSERT_STR_EQ(jstr(plain, "sender"), ALICE);
    cJSON_Delete(plain);
    /* the same event again (a redelivery) is fine; its index under another id is not */
    ASSERT_OK(mx_crypto_decrypt(c, ROOM, ev, &plain));
    cJSON_Delete(plain);
    cJSON_ReplaceItemInObjectCaseSensitive(ev, "event_id", cJSON_CreateString("$forged"));
    ASSERT_EQ(mx_crypto_decrypt(c, ROOM, ev, &plain), -EBADMSG);
    ASSERT_NULL(plain);
    ASSERT_TRUE(logged("Matrix: refusing $forged in !room:hs: its message index was already "
                       "used by another event (a replay)"));
    /* the event claims another room inside: refused */
    ASSERT_EQ(mx_crypto_decrypt(c, "!other:hs", ev, &plain), -EAGAIN); /* no key there */
    cJSON_Delete(ev);
    /* a session named with another device's key is refused */
    ev = person_room_event(&p, "$spoof", "spoofed");
    cJSON_ReplaceItemInObjectCaseSensitive((cJSON *)jget(ev, "content"), "sender_key",
                                           cJSON_CreateString(S.curve));
    ASSERT_EQ(mx_crypto_decrypt(c, ROOM, ev, &plain), -EBADMSG);
    ASSERT_TRUE(logged("refusing $spoof in !room:hs: its session belongs to another device"));
    cJSON_Delete(ev);
    /* a second event on the same session */
    ev = person_room_event(&p, "$e2", "second");
    ASSERT_OK(mx_crypto_decrypt(c, ROOM, ev, &plain));
    ASSERT_STR_EQ(jstr(jget(plain, "content"), "body"), "second");
    cJSON_Delete(plain);
    cJSON_Delete(ev);
    /* the keys survive a restart of the bot */
    mx_crypto_free(c);
    c = bot_start(store);
    serve_startup(c);
    ev = person_room_event(&p, "$e3", "after restart");
    ASSERT_OK(mx_crypto_decrypt(c, ROOM, ev, &plain));
    ASSERT_STR_EQ(jstr(jget(plain, "content"), "body"), "after restart");
    cJSON_Delete(plain);
    cJSON_Delete(ev);
    mx_crypto_free(c);
    person_fini(&p);
    rt_free(store);
    server_reset();
}

TEST(missing_key_is_requested_and_the_event_redelivered_when_it_comes)
{
    setup();
    person p;
    char *store;
    mx_crypto *c = bot_with_person_key(&p, &store);
    /* a new Megolm session the bot has not been given */
    mx_olm_out_free(p.out);
    p.out = mx_olm_out_new();
    cJSON *key = room_key_content(&p); /* at index 0, as a key request answer would be */
    cJSON *ev = person_room_event(&p, "$late", "wait for me");
    cJSON *plain = NULL;
    ASSERT_EQ(mx_crypto_decrypt(c, ROOM, ev, &plain), -EAGAIN);
    ASSERT_TRUE(logged("Matrix: cannot decrypt $late in !room:hs yet: no room key for session"));
    ASSERT_TRUE(logged("requested it"));
    rq *kr = pending_rq("PUT", "/_matrix/client/v3/sendToDevice/m.room_key_request/");
    ASSERT_NOT_NULL(kr);
    cJSON *b = cJSON_Parse(kr->body);
    const cJSON *req = jget(jget(jget(b, "messages"), ALICE), "*");
    ASSERT_STR_EQ(jstr(req, "action"), "request");
    ASSERT_STR_EQ(jstr(req, "requesting_device_id"), BOTDEV);
    ASSERT_STR_EQ(jstr(jget(req, "body"), "room_id"), ROOM);
    cJSON_Delete(b);
    answer(c, kr, 200, "{}");
    /* asking again keeps one copy */
    ASSERT_EQ(mx_crypto_decrypt(c, ROOM, ev, &plain), -EAGAIN);
    ASSERT_EQ(E.nred, 0u);
    /* the key arrives over Olm (pre-key messages again: the bot has not answered on this
     * session yet) */
    /* a forwarded key nobody asked for is ignored */
    cJSON *stray = cJSON_Parse("{\"algorithm\":\"m.megolm.v1.aes-sha2\",\"room_id\":\"!x:hs\","
                               "\"session_id\":\"nope\",\"session_key\":\"AAAA\",\"sender_key\":"
                               "\"k\",\"sender_claimed_ed25519_key\":\"e\"}");
    cJSON *evs = cJSON_CreateArray();
    cJSON_AddItemToArray(evs, person_to_device(&p, p.to_bot, "m.forwarded_room_key", stray));
    sync_apply(c, sync_with(evs, -1, false, 0));
    ASSERT_TRUE(logged("a forwarded room key from @alice:hs that was not asked for; ignored"));
    ASSERT_EQ(E.nred, 0u);
    /* the answer to the request: m.forwarded_room_key with the exported session */
    OlmInboundGroupSession *mine = mx_olm_in_new(jstr(key, "session_key"), false);
    char *exported = mx_olm_in_export(mine);
    mx_olm_in_free(mine);
    cJSON_ReplaceItemInObjectCaseSensitive(key, "session_key", cJSON_CreateString(exported));
    rt_free(exported);
    cJSON_AddStringToObject(key, "sender_key", p.curve);
    cJSON_AddStringToObject(key, "sender_claimed_ed25519_key", p.ed);
    cJSON_AddArrayToObject(key, "forwarding_curve25519_key_chain");
    evs = cJSON_CreateArray();
    cJSON_AddItemToArray(evs, person_to_device(&p, p.to_bot, "m.forwarded_room_key", key));
    sync_apply(c, sync_with(evs, -1, false, 0));
    ASSERT_EQ(E.nred, 1u);
    ASSERT_STR_EQ(E.red_room[0], ROOM);
    ASSERT_STR_EQ(jstr(jget(E.red[0], "content"), "body"), "wait for me");
    ASSERT_STR_EQ(jstr(E.red[0], "event_id"), "$late");
    ASSERT_TRUE(logged("Matrix: the key for $late in !room:hs arrived; handling it now"));
    cJSON_Delete(E.red[0]);
    E.nred = 0;
    cJSON_Delete(ev);
    mx_crypto_free(c);
    person_fini(&p);
    rt_free(store);
    server_reset();
}

/* Drive a share to the end playing the server; returns the sendToDevice body (new). */
static cJSON *serve_share(mx_crypto *c, person **ps, size_t np, bool claim_expected)
{
    for (int i = 0; i < 10; i++) {
        rq *q;
        if ((q = pending_rq("GET", "/_matrix/client/v3/rooms/"))) {
            cJSON *j = cJSON_CreateObject();
            cJSON *joined = cJSON_AddObjectToObject(j, "joined");
            cJSON_AddObjectToObject(joined, BOT);
            cJSON_AddObjectToObject(joined, ALICE);
            answer_json(c, q, 200, j);
        } else if ((q = pending_rq("POST", "/_matrix/client/v3/keys/query"))) {
            cJSON *j = cJSON_CreateObject();
            cJSON *dk = cJSON_AddObjectToObject(j, "device_keys");
            cJSON *a = cJSON_AddObjectToObject(dk, ALICE);
            for (size_t k = 0; k < np; k++)
                cJSON_AddItemToObject(a, ps[k]->dev, person_device_keys(ps[k]));
            cJSON_AddItemToObject(cJSON_AddObjectToObject(dk, BOT), BOTDEV,
                                  cJSON_Duplicate(S.device_keys, true));
            answer_json(c, q, 200, j);
        } else if ((q = pending_rq("POST", "/_matrix/client/v3/keys/claim"))) {
            ASSERT_TRUE(claim_expected);
            cJSON *b = cJSON_Parse(q->body);
            cJSON *j = cJSON_CreateObject();
            cJSON *a = cJSON_AddObjectToObject(cJSON_AddObjectToObject(j, "one_time_keys"), ALICE);
            for (size_t k = 0; k < np; k++)
                if (jget(jget(jget(b, "one_time_keys"), ALICE), ps[k]->dev))
                    cJSON_AddItemToObject(a, ps[k]->dev, person_otk(ps[k]));
            cJSON_Delete(b);
            answer_json(c, q, 200, j);
        } else if ((q = pending_rq("PUT", "/_matrix/client/v3/sendToDevice/m.room.encrypted/"))) {
            cJSON *b = cJSON_Parse(q->body);
            answer(c, q, 200, "{}");
            return b;
        } else {
            return NULL;
        }
    }
    return NULL;
}

/* The person's device reads the room key the bot sent it. */
static void person_take_key(person *p, const cJSON *send_body)
{
    const cJSON *e = jget(jget(jget(send_body, "messages"), p->user), p->dev);
    ASSERT_NOT_NULL(e);
    ASSERT_STR_EQ(jstr(e, "algorithm"), "m.olm.v1.curve25519-aes-sha2");
    ASSERT_STR_EQ(jstr(e, "sender_key"), S.curve);
    const cJSON *m = jget(jget(e, "ciphertext"), p->curve);
    int type = (int)jget(m, "type")->valuedouble;
    const char *body = jstr(m, "body");
    char *plain = NULL;
    OlmSession *mine[3] = {p->to_bot, p->extra, p->from_bot};
    for (size_t i = 0; i < 3 && !plain; i++) {
        if (!mine[i] || (type == 0 && !mx_olm_session_matches(mine[i], S.curve, body)))
            continue;
        plain = mx_olm_decrypt(mine[i], type, body);
        if (plain)
            p->last = mine[i];
    }
    if (!plain) {
        ASSERT_EQ(type, 0);
        mx_olm_session_free(p->from_bot);
        p->from_bot = mx_olm_session_inbound(p->acct, S.curve, body);
        ASSERT_NOT_NULL(p->from_bot);
        plain = mx_olm_decrypt(p->from_bot, 0, body);
        p->last = p->from_bot;
    }
    ASSERT_NOT_NULL(plain);
    cJSON *j = cJSON_Parse(plain);
    rt_free(plain);
    ASSERT_STR_EQ(jstr(j, "type"), "m.room_key");
    ASSERT_STR_EQ(jstr(j, "sender"), BOT);
    ASSERT_STR_EQ(jstr(j, "recipient"), p->user);
    ASSERT_STR_EQ(jstr(jget(j, "recipient_keys"), "ed25519"), p->ed);
    ASSERT_STR_EQ(jstr(jget(j, "keys"), "ed25519"), S.ed);
    const cJSON *rk = jget(j, "content");
    ASSERT_STR_EQ(jstr(rk, "room_id"), ROOM);
    mx_olm_in_free(p->in);
    rt_free(p->in_id);
    p->in = mx_olm_in_new(jstr(rk, "session_key"), false);
    ASSERT_NOT_NULL(p->in);
    p->in_id = rt_xstrdup(jstr(rk, "session_id"));
    cJSON_Delete(j);
}

/* The person decrypts what the bot would send; returns the body (new) and session id. */
static char *person_read(person *p, const char *type, const char *content, char *sid, size_t sidlen)
{
    ASSERT_STR_EQ(type, "m.room.encrypted");
    cJSON *c = cJSON_Parse(content);
    ASSERT_STR_EQ(jstr(c, "algorithm"), "m.megolm.v1.aes-sha2");
    ASSERT_STR_EQ(jstr(c, "device_id"), BOTDEV);
    snprintf(sid, sidlen, "%s", jstr(c, "session_id"));
    if (!p->in || strcmp(p->in_id, sid) != 0) {
        cJSON_Delete(c);
        return NULL;
    }
    uint32_t idx = 0;
    const char *why = NULL;
    char *plain = mx_olm_in_decrypt(p->in, jstr(c, "ciphertext"), &idx, &why);
    cJSON_Delete(c);
    ASSERT_NOT_NULL(plain);
    cJSON *j = cJSON_Parse(plain);
    rt_free(plain);
    ASSERT_STR_EQ(jstr(j, "room_id"), ROOM);
    char *body = rt_xstrdup(jstr(jget(j, "content"), "body"));
    cJSON_Delete(j);
    return body;
}

static int encrypt_text(mx_crypto *c, const char *text, char **type, char **content)
{
    char *pc = rt_xasprintf("{\"msgtype\":\"m.text\",\"body\":\"%s\",\"m.relates_to\":{"
                            "\"rel_type\":\"m.thread\",\"event_id\":\"$root\"}}",
                            text);
    int rc = mx_crypto_encrypt(c, ROOM, "m.room.message", pc, type, content);
    rt_free(pc);
    return rc;
}

TEST(outbound_session_is_shared_over_olm_rotated_and_reshared_to_new_devices)
{
    setup();
    char *store = store_dir();
    mx_crypto *c = bot_start(store);
    serve_startup(c);
    /* an encrypted room, rotation after 2 messages */
    sync_apply(c, sync_with(NULL, -1, true, 2));
    person phone;
    person_init(&phone, ALICE, "PHONE");
    person *ps[2] = {&phone, NULL};
    char *type = NULL, *content = NULL;
    /* reactions stay plain */
    ASSERT_OK(mx_crypto_encrypt(c, ROOM, "m.reaction", "{}", &type, &content));
    ASSERT_STR_EQ(type, "m.reaction");
    rt_free(type);
    rt_free(content);
    /* the first message waits for the share: members, query, claim, send */
    ASSERT_EQ(encrypt_text(c, "one", &type, &content), -EAGAIN);
    int resumed = E.resumed;
    cJSON *sent = serve_share(c, ps, 1, true);
    ASSERT_NOT_NULL(sent);
    ASSERT_EQ(E.resumed, resumed + 1);
    person_take_key(&phone, sent);
    cJSON_Delete(sent);
    ASSERT_OK(encrypt_text(c, "one", &type, &content));
    char sid1[128], sid[128];
    char *body = person_read(&phone, type, content, sid1, sizeof(sid1));
    ASSERT_STR_EQ(body, "one");
    rt_free(body);
    /* the relation stays in clear for the server */
    ASSERT_STR_CONTAINS(content, "\"m.relates_to\":{\"rel_type\":\"m.thread\"");
    rt_free(type);
    rt_free(content);
    ASSERT_OK(encrypt_text(c, "two", &type, &content));
    body = person_read(&phone, type, content, sid, sizeof(sid));
    ASSERT_STR_EQ(body, "two");
    ASSERT_STR_EQ(sid, sid1);
    rt_free(body);
    rt_free(type);
    rt_free(content);
    /* the third: rotation_period_msgs=2 → a new session, shared again (the Olm session
     * exists: no claim) */
    ASSERT_EQ(encrypt_text(c, "three", &type, &content), -EAGAIN);
    ASSERT_TRUE(logged("Matrix: rotating the Megolm session of !room:hs (2 message(s)"));
    sent = serve_share(c, ps, 1, false);
    ASSERT_NOT_NULL(sent);
    person_take_key(&phone, sent);
    cJSON_Delete(sent);
    ASSERT_OK(encrypt_text(c, "three", &type, &content));
    body = person_read(&phone, type, content, sid, sizeof(sid));
    ASSERT_STR_EQ(body, "three");
    ASSERT_NE(strcmp(sid, sid1), 0);
    rt_free(body);
    rt_free(type);
    rt_free(content);
    /* a second device appears: device_lists.changed → query → claim → only it gets the key */
    person laptop;
    person_init(&laptop, ALICE, "LAPTOP");
    ps[1] = &laptop;
    cJSON *s = sync_with(NULL, -1, false, 0);
    cJSON *chg = cJSON_AddArrayToObject(cJSON_AddObjectToObject(s, "device_lists"), "changed");
    cJSON_AddItemToArray(chg, cJSON_CreateString(ALICE));
    sync_apply(c, s);
    /* the sync's own re-query of outdated users */
    rq *q = pending_rq("POST", "/_matrix/client/v3/keys/query");
    if (q) {
        cJSON *j = cJSON_CreateObject();
        cJSON *a = cJSON_AddObjectToObject(cJSON_AddObjectToObject(j, "device_keys"), ALICE);
        cJSON_AddItemToObject(a, "PHONE", person_device_keys(&phone));
        cJSON_AddItemToObject(a, "LAPTOP", person_device_keys(&laptop));
        answer_json(c, q, 200, j);
    }
    ASSERT_EQ(encrypt_text(c, "four", &type, &content), -EAGAIN);
    sent = serve_share(c, ps, 2, true);
    ASSERT_NOT_NULL(sent);
    ASSERT_NULL(jget(jget(jget(sent, "messages"), ALICE), "PHONE")); /* it has it already */
    person_take_key(&laptop, sent);
    cJSON_Delete(sent);
    ASSERT_OK(encrypt_text(c, "four", &type, &content));
    body = person_read(&laptop, type, content, sid, sizeof(sid));
    ASSERT_STR_EQ(body, "four");
    char *four = rt_xstrdup(content);
    rt_free(body);
    rt_free(type);
    rt_free(content);
    ASSERT_EQ(open_rqs(), 0u);
    /* a key request from a member's device the bot never shared with: answered with
     * m.forwarded_room_key over a new Olm session (claim first) */
    person desk;
    person_init(&desk, ALICE, "DESK");
    s = sync_with(NULL, -1, false, 0);
    chg = cJSON_AddArrayToObject(cJSON_AddObjectToObject(s, "device_lists"), "changed");
    cJSON_AddItemToArray(chg, cJSON_CreateString(ALICE));
    sync_apply(c, s);
    q = pending_rq("POST", "/_matrix/client/v3/keys/query");
    ASSERT_NOT_NULL(q);
    cJSON *j = cJSON_CreateObject();
    cJSON *a = cJSON_AddObjectToObject(cJSON_AddObjectToObject(j, "device_keys"), ALICE);
    cJSON_AddItemToObject(a, "PHONE", person_device_keys(&phone));
    cJSON_AddItemToObject(a, "LAPTOP", person_device_keys(&laptop));
    cJSON_AddItemToObject(a, "DESK", person_device_keys(&desk));
    answer_json(c, q, 200, j);
    cJSON *kr = cJSON_CreateObject();
    cJSON_AddStringToObject(kr, "type", "m.room_key_request");
    cJSON_AddStringToObject(kr, "sender", ALICE);
    cJSON *kc = cJSON_AddObjectToObject(kr, "content");
    cJSON_AddStringToObject(kc, "action", "request");
    cJSON_AddStringToObject(kc, "requesting_device_id", "DESK");
    cJSON_AddStringToObject(kc, "request_id", "r1");
    cJSON *kb = cJSON_AddObjectToObject(kc, "body");
    cJSON_AddStringToObject(kb, "algorithm", "m.megolm.v1.aes-sha2");
    cJSON_AddStringToObject(kb, "room_id", ROOM);
    cJSON_AddStringToObject(kb, "sender_key", S.curve);
    cJSON_AddStringToObject(kb, "session_id", sid);
    cJSON *evs = cJSON_CreateArray();
    cJSON_AddItemToArray(evs, kr);
    sync_apply(c, sync_with(evs, -1, false, 0));
    q = pending_rq("POST", "/_matrix/client/v3/keys/claim");
    ASSERT_NOT_NULL(q);
    j = cJSON_CreateObject();
    cJSON_AddItemToObject(
        cJSON_AddObjectToObject(cJSON_AddObjectToObject(j, "one_time_keys"), ALICE), "DESK",
        person_otk(&desk));
    answer_json(c, q, 200, j);
    q = pending_rq("PUT", "/_matrix/client/v3/sendToDevice/m.room.encrypted/");
    ASSERT_NOT_NULL(q);
    cJSON *fb = cJSON_Parse(q->body);
    answer(c, q, 200, "{}");
    ASSERT_TRUE(logged("Matrix: answered a key request of @alice:hs (device DESK)"));
    const cJSON *m =
        jget(jget(jget(jget(jget(jget(fb, "messages"), ALICE), "DESK"), "ciphertext"), desk.curve),
             "body");
    ASSERT_NOT_NULL(m);
    desk.from_bot = mx_olm_session_inbound(desk.acct, S.curve, m->valuestring);
    char *fwd = mx_olm_decrypt(desk.from_bot, 0, m->valuestring);
    ASSERT_NOT_NULL(fwd);
    cJSON *fj = cJSON_Parse(fwd);
    rt_free(fwd);
    cJSON_Delete(fb);
    ASSERT_STR_EQ(jstr(fj, "type"), "m.forwarded_room_key");
    const cJSON *fc = jget(fj, "content");
    ASSERT_STR_EQ(jstr(fc, "session_id"), sid);
    ASSERT_STR_EQ(jstr(fc, "sender_claimed_ed25519_key"), S.ed);
    desk.in = mx_olm_in_new(jstr(fc, "session_key"), true);
    ASSERT_NOT_NULL(desk.in);
    desk.in_id = rt_xstrdup(sid);
    cJSON_Delete(fj);
    body = person_read(&desk, "m.room.encrypted", four, sid, sizeof(sid));
    ASSERT_STR_EQ(body, "four"); /* an earlier message, readable with the forwarded key */
    rt_free(body);
    rt_free(four);
    /* a stranger's request is refused */
    kr = cJSON_Parse("{\"type\":\"m.room_key_request\",\"sender\":\"@eve:hs\",\"content\":"
                     "{\"action\":\"request\",\"requesting_device_id\":\"EVE\",\"body\":{"
                     "\"algorithm\":\"m.megolm.v1.aes-sha2\",\"room_id\":\"!room:hs\","
                     "\"session_id\":\"x\"}}}");
    evs = cJSON_CreateArray();
    cJSON_AddItemToArray(evs, kr);
    sync_apply(c, sync_with(evs, -1, false, 0));
    ASSERT_TRUE(logged("key request of @eve:hs for !room:hs refused: not a member"));
    ASSERT_EQ(open_rqs(), 0u);
    person_fini(&desk);
    mx_crypto_free(c);
    person_fini(&phone);
    person_fini(&laptop);
    rt_free(store);
    server_reset();
}

TEST(several_olm_sessions_per_device_and_normal_messages)
{
    setup();
    person p;
    char *store;
    mx_crypto *c = bot_with_person_key(&p, &store);
    /* a second pre-key session from the same device (another one-time key) */
    char *otk = claim_bot_otk();
    OlmSession *second = mx_olm_session_outbound(p.acct, S.curve, otk);
    rt_free(otk);
    p.extra = second;
    OlmOutboundGroupSession *g2 = mx_olm_out_new();
    OlmOutboundGroupSession *g1 = p.out;
    p.out = g2;
    cJSON *evs = cJSON_CreateArray();
    cJSON_AddItemToArray(evs, person_to_device(&p, second, "m.room_key", room_key_content(&p)));
    sync_apply(c, sync_with(evs, -1, false, 0));
    cJSON *ev = person_room_event(&p, "$s2", "on session two"), *plain = NULL;
    ASSERT_OK(mx_crypto_decrypt(c, ROOM, ev, &plain));
    cJSON_Delete(plain);
    cJSON_Delete(ev);
    p.out = g1; /* the first Megolm session still decrypts */
    ev = person_room_event(&p, "$s1", "on session one");
    ASSERT_OK(mx_crypto_decrypt(c, ROOM, ev, &plain));
    ASSERT_STR_EQ(jstr(jget(plain, "content"), "body"), "on session one");
    cJSON_Delete(plain);
    cJSON_Delete(ev);
    /* the bot answers on the first session (sharing its own room key), then the person's
     * next message on it is a normal (type 1) one */
    char *type = NULL, *content = NULL;
    ASSERT_EQ(encrypt_text(c, "hi", &type, &content), -EAGAIN);
    person *ps[1] = {&p};
    cJSON *sent = serve_share(c, ps, 1, false);
    ASSERT_NOT_NULL(sent);
    person_take_key(&p, sent);
    cJSON_Delete(sent);
    ASSERT_OK(encrypt_text(c, "hi", &type, &content));
    rt_free(type);
    rt_free(content);
    OlmOutboundGroupSession *g3 = mx_olm_out_new();
    p.out = g3;
    OlmSession *used = p.last;
    ASSERT_NOT_NULL(used);
    ASSERT_EQ(olm_encrypt_message_type(used), 1u);
    evs = cJSON_CreateArray();
    cJSON_AddItemToArray(evs, person_to_device(&p, used, "m.room_key", room_key_content(&p)));
    sync_apply(c, sync_with(evs, -1, false, 0));
    ev = person_room_event(&p, "$s3", "over a normal message");
    ASSERT_OK(mx_crypto_decrypt(c, ROOM, ev, &plain));
    cJSON_Delete(plain);
    cJSON_Delete(ev);
    ASSERT_FALSE(logged("cannot decrypt an encrypted to-device"));
    mx_olm_out_free(g2);
    mx_olm_out_free(g3);
    p.out = g1;
    mx_olm_session_free(second);
    mx_crypto_free(c);
    person_fini(&p);
    rt_free(store);
    server_reset();
}

TEST(bad_input_gets_an_error_never_a_crash)
{
    setup();
    person p;
    char *store;
    mx_crypto *c = bot_with_person_key(&p, &store);
    cJSON *plain = NULL;
    /* malformed encrypted events */
    const char *bad[] = {
        "{}",
        "{\"event_id\":\"$x\",\"sender\":\"@a:hs\",\"content\":{}}",
        "{\"event_id\":\"$x\",\"sender\":\"@a:hs\",\"content\":{\"algorithm\":\"m.olm.v1."
        "curve25519-aes-sha2\"}}",
        "{\"event_id\":\"$x\",\"sender\":\"@a:hs\",\"content\":{\"algorithm\":\"m.megolm.v1."
        "aes-sha2\",\"sender_key\":\"k\",\"session_id\":7,\"ciphertext\":\"zz\"}}",
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(bad); i++) {
        cJSON *ev = cJSON_Parse(bad[i]);
        ASSERT_EQ(mx_crypto_decrypt(c, ROOM, ev, &plain), -EPROTO);
        ASSERT_NULL(plain);
        cJSON_Delete(ev);
    }
    /* garbage ciphertext on a known session */
    cJSON *ev = person_room_event(&p, "$g", "x");
    cJSON_ReplaceItemInObjectCaseSensitive(jget(ev, "content") ? (cJSON *)jget(ev, "content") : ev,
                                           "ciphertext", cJSON_CreateString("AAAA!!"));
    ASSERT_EQ(mx_crypto_decrypt(c, ROOM, ev, &plain), -EBADMSG);
    cJSON_Delete(ev);
    /* junk to-device events and sync shapes */
    cJSON *evs = cJSON_Parse(
        "[{\"type\":\"m.room.encrypted\",\"sender\":\"@a:hs\",\"content\":{\"algorithm\":"
        "\"m.olm.v1.curve25519-aes-sha2\",\"sender_key\":\"abc\",\"ciphertext\":{}}},"
        "{\"type\":\"m.room.encrypted\"},{\"type\":5},7,\"x\"]");
    sync_apply(c, sync_with(evs, -1, false, 0));
    mx_crypto_on_sync(c, NULL);
    cJSON *s = cJSON_Parse("{\"device_lists\":{\"changed\":[1,null]},\"rooms\":{\"join\":"
                           "{\"!r:hs\":{\"state\":{\"events\":[{\"type\":\"m.room.encryption\","
                           "\"state_key\":\"\",\"content\":{\"algorithm\":\"rot13\"}}]}}}}}");
    sync_apply(c, s);
    ASSERT_TRUE(logged("uses the unknown encryption algorithm rot13"));
    /* a pre-key message not meant for us (wrong recipient) is refused */
    person mallory;
    person_init(&mallory, "@mallory:hs", "MAL");
    char *otk = claim_bot_otk();
    mallory.to_bot = mx_olm_session_outbound(mallory.acct, S.curve, otk);
    rt_free(otk);
    cJSON *e = person_to_device(&mallory, mallory.to_bot, "m.room_key", cJSON_CreateString("x"));
    cJSON_ReplaceItemInObjectCaseSensitive(e, "sender", cJSON_CreateString(ALICE));
    evs = cJSON_CreateArray();
    cJSON_AddItemToArray(evs, e);
    sync_apply(c, sync_with(evs, -1, false, 0));
    ASSERT_TRUE(logged("refusing an Olm message from @alice:hs: sender or recipient do not "
                       "match"));
    /* HTTP answers that are not JSON */
    ASSERT_EQ(encrypt_text(c, "x", &(char *){NULL}, &(char *){NULL}), -EAGAIN);
    rq *q = pending_rq("GET", "/_matrix/client/v3/rooms/");
    ASSERT_NOT_NULL(q);
    answer(c, q, 200, "not json");
    q = pending_rq("POST", "/_matrix/client/v3/keys/query");
    if (q)
        answer(c, q, 500, "<html>");
    /* the share ends (nothing to send to) and the room goes on */
    ASSERT_GE(E.resumed, 1);
    /* an unknown request id is ignored */
    rq fake = {.id = 999999};
    answer(c, &fake, 200, "{}");
    mx_crypto_free(c);
    person_fini(&p);
    person_fini(&mallory);
    rt_free(store);
    server_reset();
}

TEST(attachments_round_trip_and_a_bad_hash_is_refused)
{
    unsigned char data[3000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7);
    unsigned char *enc = NULL, *dec = NULL;
    cJSON *file = NULL;
    mx_attach_encrypt(data, sizeof(data), &enc, &file);
    ASSERT_NE(memcmp(enc, data, sizeof(data)), 0);
    ASSERT_STR_EQ(jstr(file, "v"), "v2");
    ASSERT_STR_EQ(jstr(jget(file, "key"), "alg"), "A256CTR");
    ASSERT_STR_EQ(jstr(jget(file, "key"), "kty"), "oct");
    ASSERT_OK(mx_attach_decrypt(file, enc, sizeof(data), &dec));
    ASSERT_EQ(memcmp(dec, data, sizeof(data)), 0);
    rt_free(dec);
    enc[10] ^= 1;
    ASSERT_EQ(mx_attach_decrypt(file, enc, sizeof(data), &dec), -EBADMSG);
    ASSERT_NULL(dec);
    cJSON *broken = cJSON_Parse("{\"key\":{\"k\":\"short\"},\"iv\":\"x\",\"hashes\":{}}");
    ASSERT_EQ(mx_attach_decrypt(broken, enc, sizeof(data), &dec), -EINVAL);
    cJSON_Delete(broken);
    cJSON_Delete(file);
    rt_free(enc);
    /* canonical JSON sorts keys and drops signatures/unsigned */
    cJSON *j = cJSON_Parse("{\"b\":1,\"a\":{\"d\":[\"x\"],\"c\":true},\"signatures\":{},"
                           "\"unsigned\":{}}");
    char *cj = mx_canonical_json(j);
    ASSERT_STR_EQ(cj, "{\"a\":{\"c\":true,\"d\":[\"x\"]},\"b\":1}");
    rt_free(cj);
    cJSON_Delete(j);
    /* unpadded base64 both ways */
    char *b = mx_b64_encode((const unsigned char *)"hi?", 3, false);
    ASSERT_STR_EQ(b, "aGk/");
    rt_free(b);
    b = mx_b64_encode((const unsigned char *)"hi?>", 4, true);
    ASSERT_STR_EQ(b, "aGk_Pg");
    size_t n = 0;
    unsigned char *back = mx_b64_decode(b, &n);
    ASSERT_EQ(n, 4u);
    ASSERT_EQ(memcmp(back, "hi?>", 4), 0);
    rt_free(back);
    rt_free(b);
    ASSERT_NULL(mx_b64_decode("a", &n));
}

TEST(doctor_status_reports_libolm_and_store_health)
{
    setup();
    char out[512];
    char *store = store_dir();
    ASSERT_TRUE(mx_crypto_status(store, out, sizeof(out)));
    ASSERT_STR_CONTAINS(out, "libolm 3.");
    ASSERT_STR_CONTAINS(out, "not created yet");
    mx_crypto *c = bot_start(store);
    serve_startup(c);
    mx_crypto_free(c);
    ASSERT_TRUE(mx_crypto_status(store, out, sizeof(out)));
    ASSERT_STR_CONTAINS(out, "crypto.db: ok (revision 10)");
    /* a damaged file */
    char *db = rt_xasprintf("%s/crypto.db", store);
    FILE *f = fopen(db, "r+b");
    ASSERT_NOT_NULL(f);
    for (int i = 0; i < 64; i++)
        fputs("garbage!", f);
    fclose(f);
    ASSERT_FALSE(mx_crypto_status(store, out, sizeof(out)));
    rt_free(db);
    rt_free(store);
    server_reset();
}

#include "mx_ssss.h"

/* The account's secret storage: default key K1 holding the self-signing seed. */
typedef struct ssss_world {
    unsigned char key[32];
    char *seed_b64, *ssk_pub;
} ssss_world;

static void ssss_world_init(ssss_world *w)
{
    mx_olm_random(w->key, sizeof(w->key));
    unsigned char seed[32];
    mx_olm_random(seed, sizeof(seed));
    w->seed_b64 = mx_b64_encode(seed, sizeof(seed), false);
    cJSON *probe = cJSON_CreateObject();
    w->ssk_pub = mx_seed_sign_json(w->seed_b64, probe, BOT);
    cJSON_Delete(probe);
}

/* Serve start-up with secret storage; returns the signatures upload body (new) or NULL. */
static cJSON *serve_startup_ssss(mx_crypto *c, ssss_world *w)
{
    cJSON *signed_body = NULL;
    for (int i = 0; i < 30 && !E.ready; i++) {
        rq *q;
        if ((q = pending_rq("GET", "/_matrix/client/v3/user/"))) {
            cJSON *j = NULL;
            if (strstr(q->path, "m.secret_storage.default_key"))
                j = cJSON_Parse("{\"key\":\"K1\"}");
            else if (strstr(q->path, "m.secret_storage.key.K1"))
                j = mx_ssss_key_info(w->key);
            else if (strstr(q->path, "m.cross_signing.self_signing"))
                j = mx_ssss_encrypt(w->key, "K1", "m.cross_signing.self_signing", w->seed_b64);
            if (j)
                answer_json(c, q, 200, j);
            else
                answer(c, q, 404, "{\"errcode\":\"M_NOT_FOUND\",\"error\":\"no data\"}");
        } else if ((q = pending_rq("POST", "/_matrix/client/v3/keys/signatures/upload"))) {
            cJSON_Delete(signed_body);
            signed_body = cJSON_Parse(q->body);
            answer(c, q, 200, "{\"failures\":{}}");
        } else if ((q = pending_rq("POST", "/_matrix/client/v3/keys/query"))) {
            /* our device plus the account's published self-signing key */
            cJSON *j = cJSON_CreateObject();
            cJSON *dk = cJSON_AddObjectToObject(j, "device_keys");
            if (S.device_keys)
                cJSON_AddItemToObject(cJSON_AddObjectToObject(dk, BOT), BOTDEV,
                                      cJSON_Duplicate(S.device_keys, true));
            cJSON *ssk =
                cJSON_AddObjectToObject(cJSON_AddObjectToObject(j, "self_signing_keys"), BOT);
            cJSON_AddStringToObject(ssk, "user_id", BOT);
            char kid[128];
            snprintf(kid, sizeof(kid), "ed25519:%s", w->ssk_pub);
            cJSON_AddStringToObject(cJSON_AddObjectToObject(ssk, "keys"), kid, w->ssk_pub);
            answer_json(c, q, 200, j);
        } else if ((q = pending_rq("POST", "/_matrix/client/v3/keys/upload"))) {
            serve_upload(c, q);
        } else {
            break;
        }
    }
    return signed_body;
}

TEST(recovery_key_signs_the_device_with_the_self_signing_key)
{
    setup();
    ssss_world w;
    ssss_world_init(&w);
    char *rk = mx_recovery_key_encode(w.key);
    unsigned char back[32];
    ASSERT_OK(mx_recovery_key_decode(rk, back));
    ASSERT_EQ(memcmp(back, w.key, 32), 0);
    /* a typo breaks the parity */
    char *typo = rt_xstrdup(rk);
    typo[5] = typo[5] == 'a' ? 'b' : 'a';
    ASSERT_EQ(mx_recovery_key_decode(typo, back), -EINVAL);
    ASSERT_EQ(mx_recovery_key_decode("not base58 0OIl", back), -EINVAL);
    rt_free(typo);
    char *store = store_dir();
    E.ready = false;
    mx_crypto *c = mx_crypto_new(&ENV, store, true);
    mx_crypto_configure(c, NULL, rk);
    mx_crypto_connect(c, BOT, BOTDEV);
    cJSON *b = serve_startup_ssss(c, &w);
    ASSERT_TRUE(E.ready);
    ASSERT_EQ(E.ready_err, 0);
    ASSERT_NOT_NULL(b);
    ASSERT_TRUE(logged("Matrix: cross-signing verified via recovery key"));
    /* the device keys carry a signature by the self-signing key that verifies */
    const cJSON *dk = jget(jget(b, BOT), BOTDEV);
    ASSERT_NOT_NULL(dk);
    ASSERT_TRUE(mx_olm_verify_json(dk, BOT, w.ssk_pub, w.ssk_pub));
    ASSERT_TRUE(mx_olm_verify_json(dk, BOT, BOTDEV, S.ed)); /* still the device's own too */
    cJSON_Delete(b);
    ASSERT_FALSE(logged(rk)); /* the recovery key never reaches the log */
    mx_crypto_free(c);
    /* idempotent: again at the next start */
    c = mx_crypto_new(&ENV, store, true);
    mx_crypto_configure(c, NULL, rk);
    E.ready = false;
    mx_crypto_connect(c, BOT, BOTDEV);
    b = serve_startup_ssss(c, &w);
    ASSERT_NOT_NULL(b);
    ASSERT_EQ(E.ready_err, 0);
    cJSON_Delete(b);
    mx_crypto_free(c);
    /* a wrong recovery key: a warning, E2EE still starts */
    unsigned char other[32];
    mx_olm_random(other, sizeof(other));
    char *wrong = mx_recovery_key_encode(other);
    c = mx_crypto_new(&ENV, store, true);
    mx_crypto_configure(c, NULL, wrong);
    E.ready = false;
    mx_crypto_connect(c, BOT, BOTDEV);
    b = serve_startup_ssss(c, &w);
    ASSERT_NULL(b);
    ASSERT_TRUE(E.ready);
    ASSERT_EQ(E.ready_err, 0);
    ASSERT_TRUE(logged("Matrix: cross-signing with MATRIX_RECOVERY_KEY failed: the recovery "
                       "key does not match the account's secret storage key"));
    mx_crypto_free(c);
    rt_free(wrong);
    rt_free(rk);
    rt_free(w.seed_b64);
    rt_free(w.ssk_pub);
    rt_free(store);
    server_reset();
}
