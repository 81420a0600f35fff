/*
 * mx_crypto — end-to-end encryption for the Matrix adapter with libolm (gateway.md §8.10;
 * the seam is described in mx_crypto.h).
 *
 * Start-up (mx_crypto_connect): open <store>/crypto.db, load or create the Olm account
 * (pickled with the key "<user id>:<MATRIX_DEVICE_ID or 'default'>"), then
 *   Q_OWN     POST /keys/query for our device: absent → upload the device keys; different
 *             ed25519 → re-upload once when the account was never shared, else fatal;
 *   Q_DEVICE  POST /keys/upload {device_keys} (then Q_OWN again to check it took);
 *   Q_OTK     POST /keys/upload {one_time_keys, fallback_keys} topping up to half the
 *             maximum; "already exists" → the seed's stale one-time keys error (fatal at
 *             start, a warning later); then ready.
 * Each /sync: device_one_time_keys_count and device_unused_fallback_key_types replenish keys;
 * device_lists.changed marks tracked users outdated; to-device m.room.encrypted (Olm) is
 * decrypted with the sender's sessions or a new inbound session from a pre-key message;
 * m.room_key / m.forwarded_room_key make Megolm inbound sessions, and events waiting for
 * them are decrypted and redelivered; m.room.encryption and m.room.member keep the rooms.
 *
 * Timeline m.room.encrypted (Megolm): decrypted by (room, session id); the plaintext must
 * name the same room; (sender key, session, index) is recorded and the same index under
 * another event id is refused. No session: the event waits (at most MAX_PENDING, for
 * PENDING_MS), a m.room_key_request goes to the sender's devices, -EAGAIN.
 *
 * Sending into an encrypted room (m.reaction stays plain): the room's outbound Megolm
 * session is used while it has sent fewer than rotation_period_msgs messages (100) and is
 * younger than rotation_period_ms (7 days); otherwise, or while a joined member's device has
 * not got the key, a share runs (-EAGAIN; the room's queue resumes after it):
 *   S_MEMBERS GET /rooms/{id}/joined_members (once per room; then m.room.member events)
 *   S_QUERY   POST /keys/query for members not tracked or outdated
 *   S_CLAIM   POST /keys/claim signed_curve25519 for devices without an Olm session
 *   S_SEND    PUT /sendToDevice/m.room.encrypted/{txn}: m.room_key over Olm to each device
 * A member leaving discards the room's outbound session.
 *
 * Key requests (m.room_key_request) for sessions the bot created are answered with
 * m.forwarded_room_key to devices of the room's joined members (the original's trust
 * policy: unverified devices too), claiming a one-time key when no Olm session exists.
 *
 * MATRIX_RECOVERY_KEY (start-up step 4, after the key upload): account data
 * m.secret_storage.default_key → m.secret_storage.key.<id> (the key is checked) →
 * m.cross_signing.self_signing (decrypted, mx_ssss.h) → our device keys signed with the
 * self-signing key → /keys/signatures/upload; "Matrix: cross-signing verified via recovery
 * key" or a warning, and E2EE starts either way. Every start (idempotent).
 *
 * Invariants: a device is in a session's shared list only after its to-device message was
 * accepted by the homeserver; a room runs at most one share at a time; pickles and keys are
 * never logged.
 *
 * Threads: owned by the adapter actor; every call runs inside its behaviour. SQLite calls
 * block briefly (small local writes; see mx_cstore.h).
 */
#include "mx_crypto.h"

#include "matrix.h"

#include "mx_cstore.h"
#include "mx_olm.h"
#include "mx_ssss.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define LOG             "matrix"
#define OLM_ALG         "m.olm.v1.curve25519-aes-sha2"
#define MEGOLM_ALG      "m.megolm.v1.aes-sha2"
#define MAX_PENDING     100
#define PENDING_MS      (5 * 60000)
#define ROT_MSGS        100
#define ROT_MS          (7LL * 24 * 3600000)
#define OTK_BATCH_MAX   50
#define MAX_USERS_SHARE 1000
#define MAX_INS_CACHE   1000 /* Megolm inbound sessions kept in memory */

enum q_kind {
    Q_OWN = 1,    /* /keys/query of our device */
    Q_DEVICE,     /* /keys/upload of the device keys */
    Q_OTK,        /* /keys/upload of one-time and fallback keys */
    Q_QUERY,      /* /keys/query for a room's share (room) or for outdated users (NULL) */
    Q_MEMBERS,    /* /joined_members (room) */
    Q_CLAIM,      /* /keys/claim (room) */
    Q_SEND,       /* /sendToDevice m.room.encrypted (room) */
    Q_KEYREQ,     /* /sendToDevice m.room_key_request */
    Q_SS_DEFAULT, /* account data m.secret_storage.default_key */
    Q_SS_KEY,     /* account data m.secret_storage.key.<id> */
    Q_SS_SSK,     /* account data m.cross_signing.self_signing */
    Q_SS_SIGN,    /* /keys/signatures/upload */
    Q_FWD_CLAIM,  /* /keys/claim to answer a key request (targets: [user, device, room, id]) */
    Q_FWD_SEND,   /* /sendToDevice m.forwarded_room_key */
};

typedef struct req {
    struct req *next;
    uint64_t id;
    int kind;
    char *room;
    cJSON *targets; /* Q_SEND: ["user|device", …] */
} req;

typedef struct osess { /* an Olm session */
    struct osess *next;
    char *sender_key, *id;
    OlmSession *s;
    int64_t last; /* wall ms of its last use */
} osess;

typedef struct device {
    struct device *next;
    char *id, *curve, *ed;
    bool no_otk; /* a claim found no one-time key: skipped until the list changes */
} device;

typedef struct user {
    struct user *next;
    char *id;
    bool known;    /* queried at least once */
    bool outdated; /* device_lists.changed since */
    device *devs;
} user;

typedef struct room {
    struct room *next;
    char *id;
    bool encrypted;
    int64_t rot_msgs, rot_ms;
    char **members; /* joined members */
    size_t nmem, memcap;
    bool members_loaded;
    bool sharing;     /* a share is in flight */
    bool shared_pass; /* a share pass ended since the last encrypt: send with what we have */
    OlmOutboundGroupSession *out;
    char *out_id;
    int64_t out_count, out_created;
    cJSON *shared; /* array of "user|device" */
} room;

typedef struct insess {
    struct insess *next;
    char *room, *id, *sender_key, *signing_key;
    OlmInboundGroupSession *s;
} insess;

typedef struct pending {
    struct pending *next;
    char *room, *session;
    cJSON *ev;
    int64_t at;
} pending;

struct mx_crypto {
    mx_crypto_env env;
    bool enabled;
    char *store_dir;
    char *conf_device; /* MATRIX_DEVICE_ID, or NULL */
    char *recovery;    /* MATRIX_RECOVERY_KEY, or NULL (never logged) */
    char *ss_key_id;   /* the default secret storage key during the cross-signing steps */
    char *server_ssk;  /* the self-signing key the server has for us, or NULL */
    mx_cs *cs;
    char *user_id, *device_id;
    char *pickle_key;
    OlmAccount *acct;
    char *curve, *ed;
    bool shared;   /* device keys are on the server */
    bool ready;    /* connect finished */
    bool owncheck; /* Q_OWN after our own upload */
    bool replaced; /* the server held another identity for this device at start */
    bool otk_busy; /* an upload of keys is in flight */
    bool need_fallback;
    int64_t otk_count; /* server's signed_curve25519 count, -1 unknown */
    req *reqs;
    osess *olm;
    user *users;
    room *rooms;
    insess *ins; /* cache of Megolm inbound sessions (all are in crypto.db), newest first */
    size_t nins;
    pending *pend;
    size_t npend;
    uint64_t txn;
    bool query_busy;
};

/* ================================================================ helpers */

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
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

static char *escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = rt_xmalloc(3 * n + 1), *p = o;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            *p++ = (char)ch;
        } else {
            *p++ = '%';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 15];
        }
    }
    *p = 0;
    return o;
}

static char *print(const cJSON *j)
{
    char *t = cJSON_PrintUnformatted(j);
    char *o = rt_xstrdup(t ? t : "{}");
    cJSON_free(t);
    return o;
}

static void submit(mx_crypto *c, int kind, const char *room_id, const char *method,
                   const char *path, cJSON *body, cJSON *targets)
{
    char *b = body ? print(body) : NULL;
    req *q = rt_xcalloc(1, sizeof(*q));
    q->kind = kind;
    q->room = room_id ? rt_xstrdup(room_id) : NULL;
    q->targets = targets;
    q->id = c->env.submit(c->env.arg, method, path, b);
    q->next = c->reqs;
    c->reqs = q;
    rt_free(b);
}

static void req_free(req *q)
{
    rt_free(q->room);
    cJSON_Delete(q->targets);
    rt_free(q);
}

static char *new_txn(mx_crypto *c)
{
    unsigned char r[6];
    mx_olm_random(r, sizeof(r));
    return rt_xasprintf("hmc%llx.%02x%02x%02x%02x%02x%02x", (unsigned long long)++c->txn, r[0],
                        r[1], r[2], r[3], r[4], r[5]);
}

static void save_account(mx_crypto *c)
{
    char *p = mx_olm_account_pickle(c->acct, c->pickle_key);
    if (!p || mx_cs_account_save(c->cs, c->user_id, c->device_id, c->shared, p) != 0)
        RT_WARN(LOG, "Matrix: cannot save the Olm account in %s", mx_cs_path(c->cs));
    rt_free(p);
}

/* ================================================================== rooms */

static room *room_get(mx_crypto *c, const char *id, bool create)
{
    for (room *r = c->rooms; r; r = r->next)
        if (strcmp(r->id, id) == 0)
            return r;
    if (!create)
        return NULL;
    room *r = rt_xcalloc(1, sizeof(*r));
    r->id = rt_xstrdup(id);
    r->rot_msgs = ROT_MSGS;
    r->rot_ms = ROT_MS;
    r->next = c->rooms;
    c->rooms = r;
    return r;
}

static void out_discard(mx_crypto *c, room *r)
{
    if (!r->out)
        return;
    mx_olm_out_free(r->out);
    r->out = NULL;
    rt_free(r->out_id);
    r->out_id = NULL;
    cJSON_Delete(r->shared);
    r->shared = NULL;
    r->out_count = 0;
    if (c->cs)
        (void)mx_cs_out_delete(c->cs, c->user_id, r->id);
}

static void out_save(mx_crypto *c, room *r)
{
    mx_cs_out o = {0};
    o.session_id = r->out_id;
    o.pickle = mx_olm_out_pickle(r->out, c->pickle_key);
    o.shared = r->shared ? print(r->shared) : NULL;
    o.message_count = r->out_count;
    o.created_at = r->out_created;
    o.max_messages = r->rot_msgs;
    o.max_age = r->rot_ms;
    if (!o.pickle || mx_cs_out_save(c->cs, c->user_id, r->id, &o) != 0)
        RT_WARN(LOG, "Matrix: cannot save the outbound session of %s", r->id);
    rt_free(o.pickle);
    rt_free(o.shared);
}

static void out_load(mx_crypto *c, room *r)
{
    mx_cs_out o;
    if (r->out || mx_cs_out_load(c->cs, c->user_id, r->id, &o) != 0)
        return;
    r->out = mx_olm_out_unpickle(o.pickle, c->pickle_key);
    if (r->out) {
        r->out_id = o.session_id;
        o.session_id = NULL;
        r->out_count = o.message_count;
        r->out_created = o.created_at;
        r->shared = cJSON_Parse(o.shared ? o.shared : "[]");
        if (!cJSON_IsArray(r->shared)) {
            cJSON_Delete(r->shared);
            r->shared = cJSON_CreateArray();
        }
    }
    mx_cs_out_fini(&o);
}

static bool member_has(const room *r, const char *uid)
{
    for (size_t i = 0; i < r->nmem; i++)
        if (strcmp(r->members[i], uid) == 0)
            return true;
    return false;
}

static void member_set(mx_crypto *c, room *r, const char *uid, bool joined)
{
    for (size_t i = 0; i < r->nmem; i++) {
        if (strcmp(r->members[i], uid) != 0)
            continue;
        if (!joined) {
            rt_free(r->members[i]);
            r->members[i] = r->members[--r->nmem];
            if (r->encrypted && r->out) {
                RT_INFO(LOG, "Matrix: %s left %s; the room's session key is rotated", uid, r->id);
                out_discard(c, r);
            }
        }
        return;
    }
    if (!joined)
        return;
    if (r->nmem == r->memcap) {
        r->memcap = r->memcap ? 2 * r->memcap : 8;
        r->members = rt_xrealloc(r->members, r->memcap * sizeof(*r->members));
    }
    r->members[r->nmem++] = rt_xstrdup(uid);
}

static void room_free(room *r)
{
    for (size_t i = 0; i < r->nmem; i++)
        rt_free(r->members[i]);
    rt_free(r->members);
    mx_olm_out_free(r->out);
    rt_free(r->out_id);
    cJSON_Delete(r->shared);
    rt_free(r->id);
    rt_free(r);
}

/* ================================================================= devices */

static user *user_get(mx_crypto *c, const char *id, bool create)
{
    for (user *u = c->users; u; u = u->next)
        if (strcmp(u->id, id) == 0)
            return u;
    if (!create)
        return NULL;
    user *u = rt_xcalloc(1, sizeof(*u));
    u->id = rt_xstrdup(id);
    u->next = c->users;
    c->users = u;
    return u;
}

static void devs_free(device *d)
{
    while (d) {
        device *n = d->next;
        rt_free(d->id);
        rt_free(d->curve);
        rt_free(d->ed);
        rt_free(d);
        d = n;
    }
}

static device *device_by_curve(mx_crypto *c, const char *curve, const char **user_out)
{
    for (user *u = c->users; u; u = u->next)
        for (device *d = u->devs; d; d = d->next)
            if (strcmp(d->curve, curve) == 0) {
                if (user_out)
                    *user_out = u->id;
                return d;
            }
    return NULL;
}

/* A /keys/query answer: replace the device lists of the users it names. */
static void apply_query(mx_crypto *c, const cJSON *j)
{
    const cJSON *dk = jget(j, "device_keys"), *uo;
    cJSON_ArrayForEach(uo, (cJSON_IsObject(dk) ? dk : NULL))
    {
        user *u = user_get(c, uo->string, true);
        device *old = u->devs, *list = NULL;
        const cJSON *dv;
        cJSON_ArrayForEach(dv, uo)
        {
            const char *did = dv->string;
            char kc[160], ke[160];
            snprintf(kc, sizeof(kc), "curve25519:%s", did);
            snprintf(ke, sizeof(ke), "ed25519:%s", did);
            const char *curve = jstr(jget(dv, "keys"), kc), *ed = jstr(jget(dv, "keys"), ke);
            const char *uid = jstr(dv, "user_id"), *did2 = jstr(dv, "device_id");
            if (!curve || !ed || !uid || !did2 || strcmp(uid, u->id) != 0 ||
                strcmp(did2, did) != 0) {
                RT_WARN(LOG, "Matrix: ignoring malformed device keys of %s / %s", u->id, did);
                continue;
            }
            if (!mx_olm_verify_json(dv, u->id, did, ed)) {
                RT_WARN(LOG, "Matrix: ignoring device %s of %s: its keys are not signed by it", did,
                        u->id);
                continue;
            }
            /* a known device keeps its keys: a change is refused (spec: possible attack) */
            device *prev = NULL;
            for (device *d = old; d; d = d->next)
                if (strcmp(d->id, did) == 0)
                    prev = d;
            if (prev && strcmp(prev->ed, ed) != 0) {
                RT_WARN(LOG, "Matrix: device %s of %s changed its signing key; ignored", did,
                        u->id);
                continue;
            }
            device *d = rt_xcalloc(1, sizeof(*d));
            d->id = rt_xstrdup(did);
            d->curve = rt_xstrdup(curve);
            d->ed = rt_xstrdup(ed);
            d->next = list;
            list = d;
        }
        devs_free(old);
        u->devs = list;
        u->known = true;
        u->outdated = false;
    }
}

/* ============================================================ Olm sessions */

static void olm_add(mx_crypto *c, const char *sender_key, OlmSession *s, bool save)
{
    osess *o = rt_xcalloc(1, sizeof(*o));
    o->sender_key = rt_xstrdup(sender_key);
    o->id = mx_olm_session_id(s);
    o->s = s;
    o->last = wall_ms();
    o->next = c->olm;
    c->olm = o;
    if (save) {
        char *p = mx_olm_session_pickle(s, c->pickle_key);
        if (!p || mx_cs_olm_save(c->cs, c->user_id, sender_key, o->id, p, o->last) != 0)
            RT_WARN(LOG, "Matrix: cannot save an Olm session");
        rt_free(p);
    }
}

static void olm_save(mx_crypto *c, osess *o)
{
    o->last = wall_ms();
    char *p = mx_olm_session_pickle(o->s, c->pickle_key);
    if (!p || mx_cs_olm_save(c->cs, c->user_id, o->sender_key, o->id, p, o->last) != 0)
        RT_WARN(LOG, "Matrix: cannot save an Olm session");
    rt_free(p);
}

static void olm_loaded(void *arg, const char *sender_key, const char *id, const char *pickle,
                       int64_t last)
{
    mx_crypto *c = arg;
    (void)id;
    OlmSession *s = mx_olm_session_unpickle(pickle, c->pickle_key);
    if (!s) {
        RT_WARN(LOG, "Matrix: an Olm session in the crypto store cannot be read; skipped");
        return;
    }
    olm_add(c, sender_key, s, false);
    c->olm->last = last;
}

/* The newest session with a device (by its curve25519 key), or NULL. */
static osess *olm_for(mx_crypto *c, const char *curve)
{
    osess *best = NULL;
    for (osess *o = c->olm; o; o = o->next)
        if (strcmp(o->sender_key, curve) == 0 && (!best || o->last > best->last))
            best = o;
    return best;
}

/* Olm-encrypt a to-device payload for one device: the m.room.encrypted content, or NULL. */
static cJSON *olm_wrap(mx_crypto *c, const char *user_id, const device *d, const char *type,
                       cJSON *content)
{
    osess *o = olm_for(c, d->curve);
    if (!o)
        return NULL;
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", type);
    cJSON_AddItemToObject(p, "content", cJSON_Duplicate(content, true));
    cJSON_AddStringToObject(p, "sender", c->user_id);
    cJSON_AddStringToObject(p, "sender_device", c->device_id);
    cJSON *keys = cJSON_AddObjectToObject(p, "keys");
    cJSON_AddStringToObject(keys, "ed25519", c->ed);
    cJSON_AddStringToObject(p, "recipient", user_id);
    cJSON *rk = cJSON_AddObjectToObject(p, "recipient_keys");
    cJSON_AddStringToObject(rk, "ed25519", d->ed);
    char *plain = print(p);
    cJSON_Delete(p);
    int type_n = 0;
    char *body = mx_olm_encrypt(o->s, plain, &type_n);
    memset(plain, 0, strlen(plain));
    rt_free(plain);
    if (!body)
        return NULL;
    olm_save(c, o);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "algorithm", OLM_ALG);
    cJSON_AddStringToObject(e, "sender_key", c->curve);
    cJSON *ct = cJSON_AddObjectToObject(e, "ciphertext");
    cJSON *m = cJSON_AddObjectToObject(ct, d->curve);
    cJSON_AddNumberToObject(m, "type", type_n);
    cJSON_AddStringToObject(m, "body", body);
    rt_free(body);
    return e;
}

/* ======================================================= Megolm inbound */

static void ins_added(mx_crypto *c);

static insess *in_find(mx_crypto *c, const char *room_id, const char *id)
{
    for (insess *s = c->ins; s; s = s->next)
        if (strcmp(s->room, room_id) == 0 && strcmp(s->id, id) == 0)
            return s;
    char *sk = NULL, *sg = NULL, *pk = NULL;
    if (mx_cs_in_load(c->cs, c->user_id, room_id, id, &sk, &sg, &pk) != 0)
        return NULL;
    OlmInboundGroupSession *g = mx_olm_in_unpickle(pk, c->pickle_key);
    rt_free(pk);
    if (!g) {
        rt_free(sk);
        rt_free(sg);
        return NULL;
    }
    insess *s = rt_xcalloc(1, sizeof(*s));
    s->room = rt_xstrdup(room_id);
    s->id = rt_xstrdup(id);
    s->sender_key = sk;
    s->signing_key = sg;
    s->s = g;
    s->next = c->ins;
    c->ins = s;
    ins_added(c);
    return s;
}

static void insess_free(insess *s)
{
    mx_olm_in_free(s->s);
    rt_free(s->room);
    rt_free(s->id);
    rt_free(s->sender_key);
    rt_free(s->signing_key);
    rt_free(s);
}

/* A session was put at the head of the cache: drop the oldest beyond the cap. */
static void ins_added(mx_crypto *c)
{
    if (++c->nins <= MAX_INS_CACHE)
        return;
    insess **pp = &c->ins;
    while (*pp && (*pp)->next)
        pp = &(*pp)->next;
    if (*pp) {
        insess_free(*pp);
        *pp = NULL;
        c->nins--;
    }
}

static int megolm_decrypt(mx_crypto *c, const char *room_id, const cJSON *ev, cJSON **out);

/* Events waiting for (room, session): decrypt and hand them back now. */
static void pending_retry(mx_crypto *c, const char *room_id, const char *session)
{
    pending **pp = &c->pend;
    while (*pp) {
        pending *p = *pp;
        if (strcmp(p->room, room_id) != 0 || strcmp(p->session, session) != 0) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        c->npend--;
        cJSON *plain = NULL;
        int rc = megolm_decrypt(c, p->room, p->ev, &plain);
        if (rc == 0) {
            RT_INFO(LOG, "Matrix: the key for %s in %s arrived; handling it now",
                    jstr(p->ev, "event_id") ? jstr(p->ev, "event_id") : "?", p->room);
            c->env.redeliver(c->env.arg, p->room, plain);
        }
        cJSON_Delete(p->ev);
        rt_free(p->room);
        rt_free(p->session);
        rt_free(p);
    }
}

static void add_room_key(mx_crypto *c, const cJSON *content, const char *sender_key,
                         const char *signing_key, bool forwarded)
{
    const char *alg = jstr(content, "algorithm"), *room_id = jstr(content, "room_id");
    const char *sid = jstr(content, "session_id"), *key = jstr(content, "session_key");
    if (forwarded) {
        sender_key = jstr(content, "sender_key");
        signing_key = jstr(content, "sender_claimed_ed25519_key");
    }
    if (!alg || strcmp(alg, MEGOLM_ALG) != 0 || !room_id || !sid || !key || !sender_key) {
        RT_WARN(LOG, "Matrix: ignoring a malformed room key");
        return;
    }
    insess *have = in_find(c, room_id, sid);
    if (have && !forwarded)
        return; /* a re-share of a session we have: keep the one with the older index */
    OlmInboundGroupSession *g = mx_olm_in_new(key, forwarded);
    char *gid = g ? mx_olm_in_id(g) : NULL;
    if (!g || strcmp(gid, sid) != 0) {
        RT_WARN(LOG, "Matrix: a room key for %s does not match its session id; ignored", room_id);
        mx_olm_in_free(g);
        rt_free(gid);
        return;
    }
    rt_free(gid);
    if (have) {
        if (olm_inbound_group_session_first_known_index(g) >=
            olm_inbound_group_session_first_known_index(have->s)) {
            mx_olm_in_free(g);
            return;
        }
        mx_olm_in_free(have->s);
        have->s = g;
    } else {
        have = rt_xcalloc(1, sizeof(*have));
        have->room = rt_xstrdup(room_id);
        have->id = rt_xstrdup(sid);
        have->sender_key = rt_xstrdup(sender_key);
        have->signing_key = signing_key ? rt_xstrdup(signing_key) : NULL;
        have->s = g;
        have->next = c->ins;
        c->ins = have;
        ins_added(c);
    }
    char *p = mx_olm_in_pickle(g, c->pickle_key);
    if (!p ||
        mx_cs_in_save(c->cs, c->user_id, room_id, sid, sender_key, signing_key, p, wall_ms()) != 0)
        RT_WARN(LOG, "Matrix: cannot save a room key for %s", room_id);
    rt_free(p);
    RT_DEBUG(LOG, "Matrix: room key received for %s (session %.10s…)", room_id, sid);
    pending_retry(c, room_id, sid);
}

/* ============================================================ to-device */

/* Forwarded keys are taken only for sessions the bot asked for (an event waits for it). */
static bool awaited(mx_crypto *c, const cJSON *content)
{
    const char *room_id = jstr(content, "room_id"), *sid = jstr(content, "session_id");
    for (pending *p = c->pend; p && room_id && sid; p = p->next)
        if (strcmp(p->room, room_id) == 0 && strcmp(p->session, sid) == 0)
            return true;
    return false;
}

static void on_olm_event(mx_crypto *c, const cJSON *ev)
{
    const cJSON *content = jget(ev, "content");
    const char *sender = jstr(ev, "sender"), *alg = jstr(content, "algorithm");
    const char *sk = jstr(content, "sender_key");
    if (!sender || !alg || strcmp(alg, OLM_ALG) != 0 || !sk)
        return;
    const cJSON *mine = jget(jget(content, "ciphertext"), c->curve);
    const cJSON *tn = jget(mine, "type");
    const char *body = jstr(mine, "body");
    if (!cJSON_IsNumber(tn) || !body)
        return; /* not for this device */
    int type = (int)tn->valuedouble;
    char *plain = NULL;
    osess *used = NULL;
    for (osess *o = c->olm; o && !plain; o = o->next) {
        if (strcmp(o->sender_key, sk) != 0)
            continue;
        if (type == 0 && !mx_olm_session_matches(o->s, sk, body))
            continue;
        plain = mx_olm_decrypt(o->s, type, body);
        if (plain)
            used = o;
    }
    if (!plain && type == 0) {
        OlmSession *s = mx_olm_session_inbound(c->acct, sk, body);
        if (s) {
            plain = mx_olm_decrypt(s, 0, body);
            if (plain) {
                olm_add(c, sk, s, true);
                save_account(c); /* the one-time key is gone */
                RT_DEBUG(LOG, "Matrix: new Olm session with %s", sender);
            } else {
                mx_olm_session_free(s);
            }
        }
    }
    if (used)
        olm_save(c, used);
    if (!plain) {
        RT_WARN(LOG,
                "Matrix: cannot decrypt an encrypted to-device message from %s (no "
                "matching Olm session)",
                sender);
        return;
    }
    cJSON *p = cJSON_Parse(plain);
    memset(plain, 0, strlen(plain));
    rt_free(plain);
    const char *ptype = jstr(p, "type"), *psender = jstr(p, "sender");
    const char *recip = jstr(p, "recipient"), *rk = jstr(jget(p, "recipient_keys"), "ed25519");
    const char *sign = jstr(jget(p, "keys"), "ed25519");
    if (!ptype || !psender || strcmp(psender, sender) != 0 || !recip ||
        strcmp(recip, c->user_id) != 0 || !rk || strcmp(rk, c->ed) != 0 || !sign) {
        RT_WARN(LOG, "Matrix: refusing an Olm message from %s: sender or recipient do not match",
                sender);
        cJSON_Delete(p);
        return;
    }
    const device *known = device_by_curve(c, sk, NULL);
    if (known && strcmp(known->ed, sign) != 0) {
        RT_WARN(LOG,
                "Matrix: refusing an Olm message from %s: its signing key is not the "
                "device's",
                sender);
        cJSON_Delete(p);
        return;
    }
    if (strcmp(ptype, "m.room_key") == 0)
        add_room_key(c, jget(p, "content"), sk, sign, false);
    else if (strcmp(ptype, "m.forwarded_room_key") == 0 && awaited(c, jget(p, "content")))
        add_room_key(c, jget(p, "content"), sk, sign, true);
    else if (strcmp(ptype, "m.forwarded_room_key") == 0)
        RT_WARN(LOG, "Matrix: a forwarded room key from %s that was not asked for; ignored",
                sender);
    else
        RT_DEBUG(LOG, "Matrix: encrypted to-device %s from %s ignored", ptype, sender);
    cJSON_Delete(p);
}

/* ================================================================= uploads */

/* Our device keys, signed by the device (new object). */
static cJSON *device_keys_obj(mx_crypto *c)
{
    cJSON *dk = cJSON_CreateObject();
    cJSON_AddStringToObject(dk, "user_id", c->user_id);
    cJSON_AddStringToObject(dk, "device_id", c->device_id);
    cJSON *alg = cJSON_AddArrayToObject(dk, "algorithms");
    cJSON_AddItemToArray(alg, cJSON_CreateString(OLM_ALG));
    cJSON_AddItemToArray(alg, cJSON_CreateString(MEGOLM_ALG));
    cJSON *keys = cJSON_AddObjectToObject(dk, "keys");
    char k[160];
    snprintf(k, sizeof(k), "curve25519:%s", c->device_id);
    cJSON_AddStringToObject(keys, k, c->curve);
    snprintf(k, sizeof(k), "ed25519:%s", c->device_id);
    cJSON_AddStringToObject(keys, k, c->ed);
    mx_olm_sign_json(c->acct, dk, c->user_id, c->device_id);
    return dk;
}

static void upload_keys(mx_crypto *c, bool device_keys)
{
    cJSON *b = cJSON_CreateObject();
    if (device_keys) {
        cJSON_AddItemToObject(b, "device_keys", device_keys_obj(c));
        submit(c, Q_DEVICE, NULL, "POST", "/_matrix/client/v3/keys/upload", b, NULL);
        cJSON_Delete(b);
        return;
    }
    size_t target = olm_account_max_number_of_one_time_keys(c->acct) / 2;
    if (c->otk_count >= 0 && (size_t)c->otk_count < target) {
        size_t want = target - (size_t)c->otk_count;
        if (want > OTK_BATCH_MAX)
            want = OTK_BATCH_MAX;
        size_t rl = olm_account_generate_one_time_keys_random_length(c->acct, want);
        unsigned char *r = rt_xmalloc(rl ? rl : 1);
        mx_olm_random(r, rl);
        (void)olm_account_generate_one_time_keys(c->acct, want, r, rl);
        rt_free(r);
    }
    if (c->need_fallback) {
        size_t rl = olm_account_generate_fallback_key_random_length(c->acct);
        unsigned char *r = rt_xmalloc(rl ? rl : 1);
        mx_olm_random(r, rl);
        (void)olm_account_generate_fallback_key(c->acct, r, rl);
        rt_free(r);
        c->need_fallback = false;
    }
    save_account(c); /* unpublished keys survive a crash and are sent again */
    size_t n = olm_account_one_time_keys_length(c->acct);
    char *buf = rt_xmalloc(n + 1);
    size_t rc = olm_account_one_time_keys(c->acct, buf, n);
    buf[rc == olm_error() ? 0 : rc] = 0;
    cJSON *otks = cJSON_Parse(buf);
    rt_free(buf);
    n = olm_account_unpublished_fallback_key_length(c->acct);
    buf = rt_xmalloc(n + 1);
    rc = olm_account_unpublished_fallback_key(c->acct, buf, n);
    buf[rc == olm_error() ? 0 : rc] = 0;
    cJSON *fb = cJSON_Parse(buf);
    rt_free(buf);
    const cJSON *it;
    cJSON *o = cJSON_AddObjectToObject(b, "one_time_keys");
    cJSON_ArrayForEach(it, jget(otks, "curve25519"))
    {
        if (!cJSON_IsString(it))
            continue;
        cJSON *k = cJSON_CreateObject();
        cJSON_AddStringToObject(k, "key", it->valuestring);
        mx_olm_sign_json(c->acct, k, c->user_id, c->device_id);
        char id[128];
        snprintf(id, sizeof(id), "signed_curve25519:%s", it->string);
        cJSON_AddItemToObject(o, id, k);
    }
    const cJSON *fbk = jget(fb, "curve25519");
    if (cJSON_GetArraySize(fbk) > 0) {
        cJSON *f = cJSON_AddObjectToObject(b, "fallback_keys");
        cJSON_ArrayForEach(it, fbk)
        {
            if (!cJSON_IsString(it))
                continue;
            cJSON *k = cJSON_CreateObject();
            cJSON_AddStringToObject(k, "key", it->valuestring);
            cJSON_AddTrueToObject(k, "fallback");
            mx_olm_sign_json(c->acct, k, c->user_id, c->device_id);
            char id[128];
            snprintf(id, sizeof(id), "signed_curve25519:%s", it->string);
            cJSON_AddItemToObject(f, id, k);
        }
    }
    cJSON_Delete(otks);
    cJSON_Delete(fb);
    c->otk_busy = true;
    submit(c, Q_OTK, NULL, "POST", "/_matrix/client/v3/keys/upload", b, NULL);
    cJSON_Delete(b);
}

static void fail(mx_crypto *c, const char *msg)
{
    if (c->ready) {
        RT_ERROR(LOG, "%s", msg);
        return;
    }
    if (c->env.ready)
        c->env.ready(c->env.arg, -EPROTO, msg);
}

static void query_own(mx_crypto *c)
{
    cJSON *b = cJSON_CreateObject();
    cJSON *dk = cJSON_AddObjectToObject(b, "device_keys");
    cJSON *a = cJSON_AddArrayToObject(dk, c->user_id);
    cJSON_AddItemToArray(a, cJSON_CreateString(c->device_id));
    submit(c, Q_OWN, NULL, "POST", "/_matrix/client/v3/keys/query", b, NULL);
    cJSON_Delete(b);
}

static void on_own(mx_crypto *c, const cJSON *j)
{
    const cJSON *ssk = jget(jget(jget(j, "self_signing_keys"), c->user_id), "keys");
    rt_free(c->server_ssk);
    c->server_ssk = ssk && ssk->child && cJSON_IsString(ssk->child)
                        ? rt_xstrdup(ssk->child->valuestring)
                        : NULL;
    char k[160];
    snprintf(k, sizeof(k), "ed25519:%s", c->device_id);
    const char *server =
        jstr(jget(jget(jget(jget(j, "device_keys"), c->user_id), c->device_id), "keys"), k);
    char msg[512];
    if (!server) {
        if (c->owncheck) {
            snprintf(msg, sizeof(msg),
                     "the homeserver did not keep the device keys of %s after the upload",
                     c->device_id);
            fail(c, msg);
            return;
        }
        c->shared = false;
        c->owncheck = true;
        upload_keys(c, true);
        return;
    }
    if (strcmp(server, c->ed) != 0) {
        if (c->shared) {
            snprintf(msg, sizeof(msg),
                     "server has different identity keys for device %s — local crypto state "
                     "is stale. Delete %s and restart.",
                     c->device_id, mx_cs_path(c->cs));
            fail(c, msg);
            return;
        }
        if (c->owncheck) {
            snprintf(msg, sizeof(msg),
                     "device %s has immutable identity keys that don't match this "
                     "installation. Generate a new access token with a fresh device.",
                     c->device_id);
            fail(c, msg);
            return;
        }
        c->owncheck = true;
        c->replaced = true;
        upload_keys(c, true);
        return;
    }
    if (!c->shared) {
        c->shared = true;
        save_account(c);
    }
    c->otk_count = -1;
    /* an empty upload tells the server's one-time key count */
    cJSON *b = cJSON_CreateObject();
    c->otk_busy = true;
    submit(c, Q_OTK, NULL, "POST", "/_matrix/client/v3/keys/upload", b, NULL);
    cJSON_Delete(b);
}

static void finish_start(mx_crypto *c)
{
    if (c->ready)
        return;
    c->ready = true;
    RT_INFO(LOG, "Matrix: E2EE enabled (store: %s, device_id=%s)", c->store_dir, c->device_id);
    c->env.ready(c->env.arg, 0, NULL);
}

static void account_data_get(mx_crypto *c, int kind, const char *type)
{
    char *u = escape(c->user_id), *t = escape(type);
    char *path = rt_xasprintf("/_matrix/client/v3/user/%s/account_data/%s", u, t);
    submit(c, kind, NULL, "GET", path, NULL, NULL);
    rt_free(path);
    rt_free(u);
    rt_free(t);
}

static void recovery_failed(mx_crypto *c, const char *why)
{
    RT_WARN(LOG,
            "Matrix: cross-signing with MATRIX_RECOVERY_KEY failed: %s; continuing "
            "without it",
            why);
    rt_free(c->ss_key_id);
    c->ss_key_id = NULL;
    finish_start(c);
}

/* Start-up step 4: the self-signing key from secret storage signs this device. */
static void start_recovery(mx_crypto *c)
{
    if (!c->recovery) {
        finish_start(c);
        return;
    }
    account_data_get(c, Q_SS_DEFAULT, "m.secret_storage.default_key");
}

static void on_recovery(mx_crypto *c, int kind, bool ok, const char *why, const cJSON *j)
{
    unsigned char key[32];
    char msg[400];
    if (!ok) {
        snprintf(msg, sizeof(msg), "%s (%s)",
                 kind == Q_SS_SIGN ? "the signature upload was refused"
                                   : "secret storage is not set up for this account",
                 why);
        recovery_failed(c, msg);
        return;
    }
    if (mx_recovery_key_decode(c->recovery, key) != 0) {
        recovery_failed(c, "MATRIX_RECOVERY_KEY is not a valid recovery key");
        return;
    }
    switch (kind) {
    case Q_SS_DEFAULT: {
        const char *id = jstr(j, "key");
        if (!id) {
            recovery_failed(c, "no default secret storage key");
            break;
        }
        rt_free(c->ss_key_id);
        c->ss_key_id = rt_xstrdup(id);
        char type[256];
        snprintf(type, sizeof(type), "m.secret_storage.key.%s", id);
        account_data_get(c, Q_SS_KEY, type);
        break;
    }
    case Q_SS_KEY: {
        int rc = mx_ssss_check_key(key, j);
        if (rc) {
            recovery_failed(c, rc == -EKEYREJECTED ? "the recovery key does not match the "
                                                     "account's secret storage key"
                               : rc == -ENOTSUP    ? "the secret storage key uses an unknown "
                                                     "algorithm"
                                                   : "the secret storage key is malformed");
            break;
        }
        account_data_get(c, Q_SS_SSK, "m.cross_signing.self_signing");
        break;
    }
    case Q_SS_SSK: {
        char *seed = NULL;
        int rc = mx_ssss_decrypt(key, c->ss_key_id, "m.cross_signing.self_signing", j, &seed);
        if (rc) {
            recovery_failed(c, rc == -EBADMSG ? "the self-signing key in secret storage fails "
                                                "its MAC check"
                                              : "the self-signing key is not in secret "
                                                "storage under the default key");
            break;
        }
        cJSON *dk = device_keys_obj(c);
        char *pub = mx_seed_sign_json(seed, dk, c->user_id);
        memset(seed, 0, strlen(seed));
        rt_free(seed);
        if (!pub) {
            cJSON_Delete(dk);
            recovery_failed(c, "the self-signing key in secret storage is malformed");
            break;
        }
        if (c->server_ssk && strcmp(pub, c->server_ssk) != 0) {
            rt_free(pub);
            cJSON_Delete(dk);
            recovery_failed(c, "the self-signing key in secret storage is not the account's "
                               "published one");
            break;
        }
        rt_free(pub);
        cJSON *b = cJSON_CreateObject();
        cJSON_AddItemToObject(cJSON_AddObjectToObject(b, c->user_id), c->device_id, dk);
        submit(c, Q_SS_SIGN, NULL, "POST", "/_matrix/client/v3/keys/signatures/upload", b, NULL);
        cJSON_Delete(b);
        break;
    }
    case Q_SS_SIGN:
        if (cJSON_GetArraySize(jget(j, "failures")) > 0) {
            char *f = print(jget(j, "failures"));
            snprintf(msg, sizeof(msg), "the homeserver refused the signature: %.200s", f);
            rt_free(f);
            recovery_failed(c, msg);
            break;
        }
        RT_INFO(LOG, "Matrix: cross-signing verified via recovery key");
        rt_free(c->ss_key_id);
        c->ss_key_id = NULL;
        finish_start(c);
        break;
    default: break;
    }
    OPENSSL_cleanse(key, sizeof(key));
}

static void on_otk(mx_crypto *c, rt_io_msg_http_done *d, const cJSON *j)
{
    c->otk_busy = false;
    /* one-time keys on the server that this (new) identity never published were signed by
     * the previous one: peers cannot start Olm sessions with them */
    const cJSON *cnt = jget(jget(j, "one_time_key_counts"), "signed_curve25519");
    bool stale = c->replaced && !c->ready && d->err == 0 && d->status == 200 && c->otk_count < 0 &&
                 cJSON_IsNumber(cnt) && cnt->valuedouble > 0;
    if (d->err || d->status != 200 || stale) {
        const char *err = stale ? "already exists" : jstr(j, "error");
        if (err && strstr(err, "already exists")) {
            char msg[512];
            snprintf(msg, sizeof(msg),
                     "Matrix: device %s has stale one-time keys on the server signed with a "
                     "previous identity key. Peers cannot establish new Olm sessions with this "
                     "device. Delete the device from the homeserver and restart, or generate a "
                     "new access token to get a fresh device ID.",
                     c->device_id);
            if (!c->ready) {
                RT_ERROR(LOG, "%s", msg);
                c->env.ready(c->env.arg, -EEXIST, msg + strlen("Matrix: "));
            } else {
                RT_ERROR(LOG, "%s", msg);
            }
            return;
        }
        RT_WARN(LOG, "Matrix: uploading encryption keys failed (HTTP %d%s%s); continuing",
                d->status, err ? ": " : "", err ? err : "");
        if (!c->ready)
            start_recovery(c);
        return;
    }
    bool had_unpublished = c->otk_count >= 0;
    olm_account_mark_keys_as_published(c->acct);
    save_account(c);
    const cJSON *n = jget(jget(j, "one_time_key_counts"), "signed_curve25519");
    c->otk_count = cJSON_IsNumber(n) ? (int64_t)n->valuedouble : 0;
    size_t target = olm_account_max_number_of_one_time_keys(c->acct) / 2;
    if ((size_t)c->otk_count < target || c->need_fallback || !had_unpublished) {
        if (!had_unpublished)
            c->need_fallback = c->need_fallback || !c->ready;
        if ((size_t)c->otk_count < target || c->need_fallback) {
            upload_keys(c, false);
            return;
        }
    }
    if (!c->ready)
        start_recovery(c);
}

/* ================================================================ sharing */

static void share_step(mx_crypto *c, room *r);

static void share_end(mx_crypto *c, room *r, const char *why)
{
    if (why)
        RT_WARN(LOG, "Matrix: sharing the room key of %s: %s", r->id, why);
    r->sharing = false;
    r->shared_pass = true;
    c->env.resume(c->env.arg, r->id);
}

static bool is_shared(const room *r, const char *uid, const char *did)
{
    char k[512];
    snprintf(k, sizeof(k), "%s|%s", uid, did);
    const cJSON *it;
    cJSON_ArrayForEach(it, r->shared) if (cJSON_IsString(it) &&
                                          strcmp(it->valuestring, k) == 0) return true;
    return false;
}

/* Does the room need a share before the next message? */
static bool needs_share(mx_crypto *c, room *r)
{
    if (!r->members_loaded || !r->out)
        return true;
    for (size_t i = 0; i < r->nmem; i++) {
        user *u = user_get(c, r->members[i], false);
        if (!u || !u->known || u->outdated)
            return true;
        for (device *d = u->devs; d; d = d->next) {
            if (strcmp(u->id, c->user_id) == 0 && strcmp(d->id, c->device_id) == 0)
                continue;
            if (!d->no_otk && !is_shared(r, u->id, d->id))
                return true;
        }
    }
    return false;
}

static void share_step(mx_crypto *c, room *r)
{
    if (!r->members_loaded) {
        char *id = escape(r->id);
        char *path = rt_xasprintf("/_matrix/client/v3/rooms/%s/joined_members", id);
        submit(c, Q_MEMBERS, r->id, "GET", path, NULL, NULL);
        rt_free(path);
        rt_free(id);
        return;
    }
    /* users whose devices we do not know */
    cJSON *b = cJSON_CreateObject();
    cJSON *dk = cJSON_AddObjectToObject(b, "device_keys");
    int n = 0;
    for (size_t i = 0; i < r->nmem && n < MAX_USERS_SHARE; i++) {
        user *u = user_get(c, r->members[i], true);
        if (!u->known || u->outdated) {
            cJSON_AddArrayToObject(dk, u->id);
            n++;
        }
    }
    if (n) {
        RT_DEBUG(LOG, "Matrix: querying the devices of %d member(s) of %s", n, r->id);
        submit(c, Q_QUERY, r->id, "POST", "/_matrix/client/v3/keys/query", b, NULL);
        cJSON_Delete(b);
        return;
    }
    cJSON_Delete(b);
    if (!r->out) {
        r->out = mx_olm_out_new();
        if (!r->out) {
            share_end(c, r, "cannot create a Megolm session");
            return;
        }
        r->out_id = mx_olm_out_id(r->out);
        r->out_created = wall_ms();
        r->out_count = 0;
        r->shared = cJSON_CreateArray();
        /* our own inbound copy, so that our events stay readable to this device */
        char *key = mx_olm_out_key(r->out);
        cJSON *rk = cJSON_CreateObject();
        cJSON_AddStringToObject(rk, "algorithm", MEGOLM_ALG);
        cJSON_AddStringToObject(rk, "room_id", r->id);
        cJSON_AddStringToObject(rk, "session_id", r->out_id);
        cJSON_AddStringToObject(rk, "session_key", key);
        add_room_key(c, rk, c->curve, c->ed, false);
        memset(key, 0, strlen(key));
        rt_free(key);
        cJSON_Delete(rk);
        out_save(c, r);
        RT_INFO(LOG, "Matrix: new Megolm session for %s", r->id);
    }
    /* devices without an Olm session: claim a one-time key */
    b = cJSON_CreateObject();
    cJSON *otk = cJSON_AddObjectToObject(b, "one_time_keys");
    n = 0;
    for (size_t i = 0; i < r->nmem; i++) {
        user *u = user_get(c, r->members[i], false);
        cJSON *uo = NULL;
        for (device *d = u ? u->devs : NULL; d; d = d->next) {
            if (strcmp(u->id, c->user_id) == 0 && strcmp(d->id, c->device_id) == 0)
                continue;
            if (d->no_otk || is_shared(r, u->id, d->id) || olm_for(c, d->curve))
                continue;
            if (!uo)
                uo = cJSON_AddObjectToObject(otk, u->id);
            cJSON_AddStringToObject(uo, d->id, "signed_curve25519");
            n++;
        }
    }
    if (n) {
        RT_DEBUG(LOG, "Matrix: claiming one-time keys of %d device(s) for %s", n, r->id);
        submit(c, Q_CLAIM, r->id, "POST", "/_matrix/client/v3/keys/claim", b, NULL);
        cJSON_Delete(b);
        return;
    }
    cJSON_Delete(b);
    /* the key over Olm to every device not yet given it */
    char *key = mx_olm_out_key(r->out);
    cJSON *rk = cJSON_CreateObject();
    cJSON_AddStringToObject(rk, "algorithm", MEGOLM_ALG);
    cJSON_AddStringToObject(rk, "room_id", r->id);
    cJSON_AddStringToObject(rk, "session_id", r->out_id);
    cJSON_AddStringToObject(rk, "session_key", key);
    memset(key, 0, strlen(key));
    rt_free(key);
    b = cJSON_CreateObject();
    cJSON *msgs = cJSON_AddObjectToObject(b, "messages");
    cJSON *targets = cJSON_CreateArray();
    n = 0;
    for (size_t i = 0; i < r->nmem; i++) {
        user *u = user_get(c, r->members[i], false);
        cJSON *uo = NULL;
        for (device *d = u ? u->devs : NULL; d; d = d->next) {
            if (strcmp(u->id, c->user_id) == 0 && strcmp(d->id, c->device_id) == 0)
                continue;
            if (d->no_otk || is_shared(r, u->id, d->id))
                continue;
            cJSON *e = olm_wrap(c, u->id, d, "m.room_key", rk);
            if (!e) {
                d->no_otk = true;
                continue;
            }
            if (!uo)
                uo = cJSON_AddObjectToObject(msgs, u->id);
            cJSON_AddItemToObject(uo, d->id, e);
            char t[512];
            snprintf(t, sizeof(t), "%s|%s", u->id, d->id);
            cJSON_AddItemToArray(targets, cJSON_CreateString(t));
            n++;
        }
    }
    cJSON_Delete(rk);
    if (!n) {
        RT_DEBUG(LOG, "Matrix: every device in %s has the room key", r->id);
        cJSON_Delete(b);
        cJSON_Delete(targets);
        share_end(c, r, NULL);
        return;
    }
    char *txn = new_txn(c);
    char *path = rt_xasprintf("/_matrix/client/v3/sendToDevice/m.room.encrypted/%s", txn);
    RT_DEBUG(LOG, "Matrix: sharing the room key of %s with %d device(s)", r->id, n);
    submit(c, Q_SEND, r->id, "PUT", path, b, targets);
    rt_free(path);
    rt_free(txn);
    cJSON_Delete(b);
}

static void on_members(mx_crypto *c, room *r, const cJSON *j)
{
    const cJSON *joined = jget(j, "joined");
    if (!cJSON_IsObject(joined)) {
        share_end(c, r, "the member list could not be fetched");
        return;
    }
    for (size_t i = 0; i < r->nmem; i++)
        rt_free(r->members[i]);
    r->nmem = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, joined) member_set(c, r, it->string, true);
    r->members_loaded = true;
    share_step(c, r);
}

static void on_claim(mx_crypto *c, room *r, const cJSON *j)
{
    const cJSON *uo;
    cJSON_ArrayForEach(uo, jget(j, "one_time_keys"))
    {
        user *u = user_get(c, uo->string, false);
        const cJSON *dv;
        cJSON_ArrayForEach(dv, uo)
        {
            device *d = NULL;
            for (device *x = u ? u->devs : NULL; x; x = x->next)
                if (strcmp(x->id, dv->string) == 0)
                    d = x;
            const cJSON *k = dv->child; /* "signed_curve25519:<id>": {key, signatures} */
            if (!d || !k || !jstr(k, "key"))
                continue;
            if (!mx_olm_verify_json(k, u->id, d->id, d->ed)) {
                RT_WARN(LOG, "Matrix: the one-time key of %s / %s is not signed by the device",
                        u->id, d->id);
                continue;
            }
            OlmSession *s = mx_olm_session_outbound(c->acct, d->curve, jstr(k, "key"));
            if (s)
                olm_add(c, d->curve, s, true);
        }
    }
    /* devices that got no key are skipped until their list changes */
    for (size_t i = 0; i < r->nmem; i++) {
        user *u = user_get(c, r->members[i], false);
        for (device *d = u ? u->devs : NULL; d; d = d->next) {
            if (strcmp(u->id, c->user_id) == 0 && strcmp(d->id, c->device_id) == 0)
                continue;
            if (!is_shared(r, u->id, d->id) && !olm_for(c, d->curve)) {
                RT_WARN(LOG, "Matrix: no one-time key for %s / %s: it cannot read %s yet", u->id,
                        d->id, r->id);
                d->no_otk = true;
            }
        }
    }
    share_step(c, r);
}

static void share_start(mx_crypto *c, room *r)
{
    if (r->sharing)
        return;
    r->sharing = true;
    share_step(c, r);
}

/* ================================================================= public */

mx_crypto *mx_crypto_new(const mx_crypto_env *env, const char *store_dir, bool enabled)
{
    mx_crypto *c = rt_xcalloc(1, sizeof(*c));
    c->env = *env;
    c->enabled = enabled;
    c->store_dir = store_dir ? rt_xstrdup(store_dir) : NULL;
    c->otk_count = -1;
    return c;
}

void mx_crypto_configure(mx_crypto *c, const char *conf_device_id, const char *recovery_key)
{
    rt_free(c->conf_device);
    c->conf_device = conf_device_id ? rt_xstrdup(conf_device_id) : NULL;
    if (c->recovery) {
        memset(c->recovery, 0, strlen(c->recovery));
        rt_free(c->recovery);
    }
    c->recovery = recovery_key && *recovery_key ? rt_xstrdup(recovery_key) : NULL;
}

void mx_crypto_free(mx_crypto *c)
{
    if (!c)
        return;
    while (c->reqs) {
        req *q = c->reqs;
        c->reqs = q->next;
        req_free(q);
    }
    while (c->olm) {
        osess *o = c->olm;
        c->olm = o->next;
        mx_olm_session_free(o->s);
        rt_free(o->sender_key);
        rt_free(o->id);
        rt_free(o);
    }
    while (c->users) {
        user *u = c->users;
        c->users = u->next;
        devs_free(u->devs);
        rt_free(u->id);
        rt_free(u);
    }
    while (c->rooms) {
        room *r = c->rooms;
        c->rooms = r->next;
        room_free(r);
    }
    while (c->ins) {
        insess *s = c->ins;
        c->ins = s->next;
        insess_free(s);
    }
    while (c->pend) {
        pending *p = c->pend;
        c->pend = p->next;
        cJSON_Delete(p->ev);
        rt_free(p->room);
        rt_free(p->session);
        rt_free(p);
    }
    mx_olm_account_free(c->acct);
    mx_cs_close(c->cs);
    if (c->pickle_key) {
        memset(c->pickle_key, 0, strlen(c->pickle_key));
        rt_free(c->pickle_key);
    }
    rt_free(c->curve);
    rt_free(c->ed);
    rt_free(c->user_id);
    rt_free(c->device_id);
    rt_free(c->store_dir);
    rt_free(c->conf_device);
    if (c->recovery) {
        memset(c->recovery, 0, strlen(c->recovery));
        rt_free(c->recovery);
    }
    rt_free(c->ss_key_id);
    rt_free(c->server_ssk);
    rt_free(c);
}

void mx_crypto_connect(mx_crypto *c, const char *user_id, const char *device_id)
{
    if (!c->enabled) {
        c->env.ready(c->env.arg, 0, NULL);
        return;
    }
    char err[512];
    if (!user_id || !device_id || !c->store_dir) {
        c->env.ready(c->env.arg, -EINVAL,
                     "E2EE needs a device id (set MATRIX_DEVICE_ID, or log in with a token "
                     "whose whoami names a device)");
        return;
    }
    rt_free(c->user_id);
    rt_free(c->device_id);
    c->user_id = rt_xstrdup(user_id);
    c->device_id = rt_xstrdup(device_id);
    if (!c->cs) {
        int rc = mx_cs_open(c->store_dir, &c->cs, err, sizeof(err));
        if (rc) {
            c->env.ready(c->env.arg, rc, err);
            return;
        }
    }
    rt_free(c->pickle_key);
    c->pickle_key = rt_xasprintf("%s:%s", user_id, c->conf_device ? c->conf_device : "default");
    char *pickle = NULL, *dev = NULL;
    bool shared = false;
    int rc = mx_cs_account_load(c->cs, user_id, &pickle, &dev, &shared);
    if (rc == 0 && dev && dev[0] && strcmp(dev, device_id) != 0) {
        RT_WARN(LOG,
                "Matrix: the crypto store holds the identity of device %s, not %s; a new "
                "identity is created for %s",
                dev, device_id, device_id);
        rt_free(pickle);
        pickle = NULL;
        rc = -ENOENT;
    }
    rt_free(dev);
    mx_olm_account_free(c->acct);
    c->acct = NULL;
    if (rc == 0) {
        c->acct = mx_olm_account_unpickle(pickle, c->pickle_key);
        memset(pickle, 0, strlen(pickle));
        rt_free(pickle);
        if (!c->acct) {
            snprintf(err, sizeof(err),
                     "the Olm account in %s cannot be read with this pickle key (was "
                     "MATRIX_DEVICE_ID changed?)",
                     mx_cs_path(c->cs));
            c->env.ready(c->env.arg, -EKEYREJECTED, err);
            return;
        }
        c->shared = shared;
    } else if (rc == -ENOENT) {
        c->acct = mx_olm_account_new();
        c->shared = false;
        if (!c->acct) {
            c->env.ready(c->env.arg, -EIO, "libolm could not create an account");
            return;
        }
        c->need_fallback = true;
        save_account(c); /* bound to the real device id before anything else */
        RT_INFO(LOG, "Matrix: created a new E2EE identity for device %s", device_id);
    } else {
        snprintf(err, sizeof(err), "cannot read %s", mx_cs_path(c->cs));
        c->env.ready(c->env.arg, rc, err);
        return;
    }
    rt_free(c->curve);
    rt_free(c->ed);
    mx_olm_account_ids(c->acct, &c->curve, &c->ed);
    if (!c->olm)
        (void)mx_cs_olm_each(c->cs, user_id, olm_loaded, c);
    c->owncheck = false;
    query_own(c);
}

void mx_crypto_filter(mx_crypto *c, cJSON *filter)
{
    (void)c;
    (void)filter; /* to_device and device_lists are not filtered out by default */
}

static void room_events(mx_crypto *c, room *r, const cJSON *evs)
{
    const cJSON *ev;
    cJSON_ArrayForEach(ev, (cJSON_IsArray(evs) ? evs : NULL))
    {
        const char *type = jstr(ev, "type"), *key = jstr(ev, "state_key");
        if (!type || !key)
            continue;
        const cJSON *content = jget(ev, "content");
        if (strcmp(type, "m.room.encryption") == 0) {
            const char *alg = jstr(content, "algorithm");
            if (!alg || strcmp(alg, MEGOLM_ALG) != 0) {
                RT_WARN(LOG, "Matrix: %s uses the unknown encryption algorithm %s", r->id,
                        alg ? alg : "(none)");
                continue;
            }
            r->encrypted = true;
            const cJSON *pm = jget(content, "rotation_period_msgs");
            const cJSON *pt = jget(content, "rotation_period_ms");
            r->rot_msgs =
                cJSON_IsNumber(pm) && pm->valuedouble >= 1 ? (int64_t)pm->valuedouble : ROT_MSGS;
            r->rot_ms =
                cJSON_IsNumber(pt) && pt->valuedouble >= 1 ? (int64_t)pt->valuedouble : ROT_MS;
        } else if (strcmp(type, "m.room.member") == 0) {
            const char *ms = jstr(content, "membership");
            bool joined = ms && strcmp(ms, "join") == 0;
            bool was = member_has(r, key);
            if (was != joined || joined)
                member_set(c, r, key, joined);
            if (joined && !was) {
                user *u = user_get(c, key, true);
                (void)u; /* its devices are queried at the next share */
            }
        }
    }
}

static void query_outdated(mx_crypto *c)
{
    if (c->query_busy)
        return;
    cJSON *b = cJSON_CreateObject();
    cJSON *dk = cJSON_AddObjectToObject(b, "device_keys");
    int n = 0;
    for (user *u = c->users; u && n < MAX_USERS_SHARE; u = u->next)
        if (u->known && u->outdated) {
            cJSON_AddArrayToObject(dk, u->id);
            n++;
        }
    if (n) {
        c->query_busy = true;
        submit(c, Q_QUERY, NULL, "POST", "/_matrix/client/v3/keys/query", b, NULL);
    }
    cJSON_Delete(b);
}

static device *device_of(mx_crypto *c, const char *uid, const char *did)
{
    user *u = user_get(c, uid, false);
    for (device *d = u ? u->devs : NULL; d; d = d->next)
        if (strcmp(d->id, did) == 0)
            return d;
    return NULL;
}

/* Send our session (room, id) to a device over Olm as m.forwarded_room_key. */
static void forward_key(mx_crypto *c, const char *uid, const device *d, const char *room_id,
                        const char *sid)
{
    insess *s = in_find(c, room_id, sid);
    if (!s)
        return;
    char *key = mx_olm_in_export(s->s);
    cJSON *fk = cJSON_CreateObject();
    cJSON_AddStringToObject(fk, "algorithm", MEGOLM_ALG);
    cJSON_AddStringToObject(fk, "room_id", room_id);
    cJSON_AddStringToObject(fk, "sender_key", s->sender_key);
    cJSON_AddStringToObject(fk, "session_id", sid);
    cJSON_AddStringToObject(fk, "session_key", key);
    cJSON_AddStringToObject(fk, "sender_claimed_ed25519_key", c->ed);
    cJSON_AddArrayToObject(fk, "forwarding_curve25519_key_chain");
    memset(key, 0, strlen(key));
    rt_free(key);
    cJSON *e = olm_wrap(c, uid, d, "m.forwarded_room_key", fk);
    cJSON_Delete(fk);
    if (!e)
        return;
    cJSON *b = cJSON_CreateObject();
    cJSON_AddItemToObject(cJSON_AddObjectToObject(cJSON_AddObjectToObject(b, "messages"), uid),
                          d->id, e);
    char *txn = new_txn(c);
    char *path = rt_xasprintf("/_matrix/client/v3/sendToDevice/m.room.encrypted/%s", txn);
    submit(c, Q_FWD_SEND, room_id, "PUT", path, b, NULL);
    RT_INFO(LOG, "Matrix: answered a key request of %s (device %s) for %s", uid, d->id, room_id);
    rt_free(path);
    rt_free(txn);
    cJSON_Delete(b);
}

/* m.room_key_request: sessions the bot created are shared with any device of a joined member
 * of the room (the original's trust policy: unverified devices too). */
static void on_key_request(mx_crypto *c, const cJSON *ev)
{
    const cJSON *content = jget(ev, "content"), *body = jget(content, "body");
    const char *sender = jstr(ev, "sender"), *action = jstr(content, "action");
    const char *did = jstr(content, "requesting_device_id");
    const char *room_id = jstr(body, "room_id"), *sid = jstr(body, "session_id");
    const char *sk = jstr(body, "sender_key"), *alg = jstr(body, "algorithm");
    if (!sender || !action || strcmp(action, "request") != 0 || !did || !room_id || !sid || !alg ||
        strcmp(alg, MEGOLM_ALG) != 0)
        return;
    if (sk && strcmp(sk, c->curve) != 0)
        return; /* not a session of ours */
    if (strcmp(sender, c->user_id) == 0 && strcmp(did, c->device_id) == 0)
        return;
    room *r = room_get(c, room_id, false);
    if (!r || !r->encrypted || !member_has(r, sender)) {
        RT_INFO(LOG, "Matrix: key request of %s for %s refused: not a member", sender, room_id);
        return;
    }
    device *d = device_of(c, sender, did);
    if (!d) {
        RT_INFO(LOG, "Matrix: key request of %s from unknown device %s ignored", sender, did);
        return;
    }
    if (!in_find(c, room_id, sid))
        return;
    if (olm_for(c, d->curve)) {
        forward_key(c, sender, d, room_id, sid);
        return;
    }
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(
        cJSON_AddObjectToObject(cJSON_AddObjectToObject(b, "one_time_keys"), sender), did,
        "signed_curve25519");
    cJSON *t = cJSON_CreateArray();
    cJSON_AddItemToArray(t, cJSON_CreateString(sender));
    cJSON_AddItemToArray(t, cJSON_CreateString(did));
    cJSON_AddItemToArray(t, cJSON_CreateString(room_id));
    cJSON_AddItemToArray(t, cJSON_CreateString(sid));
    submit(c, Q_FWD_CLAIM, room_id, "POST", "/_matrix/client/v3/keys/claim", b, t);
    cJSON_Delete(b);
}

static void on_fwd_claim(mx_crypto *c, const cJSON *t, const cJSON *j)
{
    const char *uid = cJSON_GetStringValue(cJSON_GetArrayItem(t, 0));
    const char *did = cJSON_GetStringValue(cJSON_GetArrayItem(t, 1));
    const char *room_id = cJSON_GetStringValue(cJSON_GetArrayItem(t, 2));
    const char *sid = cJSON_GetStringValue(cJSON_GetArrayItem(t, 3));
    device *d = uid && did ? device_of(c, uid, did) : NULL;
    const cJSON *k = jget(jget(jget(j, "one_time_keys"), uid ? uid : ""), did ? did : "");
    k = k ? k->child : NULL;
    if (!d || !k || !jstr(k, "key") || !mx_olm_verify_json(k, uid, did, d->ed)) {
        RT_WARN(LOG, "Matrix: cannot answer the key request of %s: no valid one-time key",
                uid ? uid : "?");
        return;
    }
    OlmSession *s = mx_olm_session_outbound(c->acct, d->curve, jstr(k, "key"));
    if (!s)
        return;
    olm_add(c, d->curve, s, true);
    forward_key(c, uid, d, room_id, sid);
}

void mx_crypto_on_sync(mx_crypto *c, const cJSON *sync)
{
    if (!c->enabled || !c->ready)
        return;
    /* one-time and fallback keys */
    const cJSON *n = jget(jget(sync, "device_one_time_keys_count"), "signed_curve25519");
    const cJSON *fb = jget(sync, "device_unused_fallback_key_types");
    if (cJSON_IsArray(fb)) {
        bool has = false;
        const cJSON *it;
        cJSON_ArrayForEach(it, fb) has =
            has || (cJSON_IsString(it) && strcmp(it->valuestring, "signed_curve25519") == 0);
        if (!has)
            c->need_fallback = true;
    }
    if (cJSON_IsNumber(n) || jget(sync, "device_one_time_keys_count"))
        c->otk_count = cJSON_IsNumber(n) ? (int64_t)n->valuedouble : 0;
    size_t target = olm_account_max_number_of_one_time_keys(c->acct) / 2;
    if (!c->otk_busy && ((c->otk_count >= 0 && (size_t)c->otk_count < target) || c->need_fallback))
        upload_keys(c, false);
    /* device lists */
    const cJSON *it;
    cJSON_ArrayForEach(it, jget(jget(sync, "device_lists"), "changed"))
    {
        user *u = cJSON_IsString(it) ? user_get(c, it->valuestring, false) : NULL;
        if (u && u->known) {
            u->outdated = true;
            for (device *d = u->devs; d; d = d->next)
                d->no_otk = false;
        }
    }
    cJSON_ArrayForEach(it, jget(jget(sync, "device_lists"), "left"))
    {
        user *u = cJSON_IsString(it) ? user_get(c, it->valuestring, false) : NULL;
        if (u) {
            devs_free(u->devs);
            u->devs = NULL;
            u->known = false;
        }
    }
    /* rooms: encryption state and members */
    const cJSON *room_o;
    cJSON_ArrayForEach(room_o, jget(jget(sync, "rooms"), "join"))
    {
        room *r = room_get(c, room_o->string, true);
        room_events(c, r, jget(jget(room_o, "state"), "events"));
        room_events(c, r, jget(jget(room_o, "timeline"), "events"));
    }
    /* to-device */
    cJSON_ArrayForEach(it, jget(jget(sync, "to_device"), "events"))
    {
        const char *type = jstr(it, "type");
        if (type && strcmp(type, "m.room.encrypted") == 0)
            on_olm_event(c, it);
        else if (type && strcmp(type, "m.room_key_request") == 0)
            on_key_request(c, it);
    }
    query_outdated(c);
    /* events that waited too long */
    int64_t now = wall_ms();
    pending **pp = &c->pend;
    while (*pp) {
        pending *p = *pp;
        if (now - p->at < PENDING_MS) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        c->npend--;
        RT_WARN(LOG, "Matrix: gave up on encrypted event %s in %s: its room key never came",
                jstr(p->ev, "event_id") ? jstr(p->ev, "event_id") : "?", p->room);
        cJSON_Delete(p->ev);
        rt_free(p->room);
        rt_free(p->session);
        rt_free(p);
    }
}

static int megolm_decrypt(mx_crypto *c, const char *room_id, const cJSON *ev, cJSON **out)
{
    const cJSON *content = jget(ev, "content");
    const char *sid = jstr(content, "session_id"), *ct = jstr(content, "ciphertext");
    const char *eid = jstr(ev, "event_id");
    insess *s = in_find(c, room_id, sid);
    if (!s)
        return -EAGAIN;
    /* the session must come from the device the event names, and that device must belong
     * to the event's sender (when we know its owner) */
    const char *sk = jstr(content, "sender_key"), *sender = jstr(ev, "sender"), *owner = NULL;
    if (sk && strcmp(sk, s->sender_key) != 0) {
        RT_WARN(LOG, "Matrix: refusing %s in %s: its session belongs to another device", eid,
                room_id);
        return -EBADMSG;
    }
    if (device_by_curve(c, s->sender_key, &owner) && sender && strcmp(owner, sender) != 0) {
        RT_WARN(LOG, "Matrix: refusing %s in %s: sent as %s with a key of %s", eid, room_id, sender,
                owner);
        return -EBADMSG;
    }
    uint32_t index = 0;
    const char *why = NULL;
    char *plain = mx_olm_in_decrypt(s->s, ct, &index, &why);
    if (!plain) {
        RT_WARN(LOG, "Matrix: cannot decrypt %s in %s: %s", eid, room_id, why ? why : "?");
        return -EBADMSG;
    }
    const cJSON *ts = jget(ev, "origin_server_ts");
    int rc = mx_cs_index_check(c->cs, s->sender_key, sid, index, eid,
                               cJSON_IsNumber(ts) ? (int64_t)ts->valuedouble : 0);
    if (rc == -EEXIST) {
        RT_WARN(LOG,
                "Matrix: refusing %s in %s: its message index was already used by another "
                "event (a replay)",
                eid, room_id);
        rt_free(plain);
        return -EBADMSG;
    }
    cJSON *p = cJSON_Parse(plain);
    memset(plain, 0, strlen(plain));
    rt_free(plain);
    const char *proom = jstr(p, "room_id"), *ptype = jstr(p, "type");
    const cJSON *pc = jget(p, "content");
    if (!ptype || !cJSON_IsObject(pc) || (proom && strcmp(proom, room_id) != 0)) {
        RT_WARN(LOG,
                "Matrix: refusing %s in %s: the decrypted event is for another room or "
                "malformed",
                eid, room_id);
        cJSON_Delete(p);
        return -EBADMSG;
    }
    cJSON *e = cJSON_Duplicate(ev, true);
    cJSON_ReplaceItemInObjectCaseSensitive(e, "type", cJSON_CreateString(ptype));
    cJSON *nc = cJSON_Duplicate(pc, true);
    const cJSON *rel = jget(content, "m.relates_to");
    if (rel && !jget(nc, "m.relates_to"))
        cJSON_AddItemToObject(nc, "m.relates_to", cJSON_Duplicate(rel, true));
    cJSON_ReplaceItemInObjectCaseSensitive(e, "content", nc);
    cJSON_Delete(p);
    *out = e;
    return 0;
}

static void key_request(mx_crypto *c, const char *room_id, const cJSON *ev)
{
    const cJSON *content = jget(ev, "content");
    const char *sender = jstr(ev, "sender");
    cJSON *rq = cJSON_CreateObject();
    cJSON_AddStringToObject(rq, "action", "request");
    cJSON *body = cJSON_AddObjectToObject(rq, "body");
    cJSON_AddStringToObject(body, "algorithm", MEGOLM_ALG);
    cJSON_AddStringToObject(body, "room_id", room_id);
    cJSON_AddStringToObject(body, "sender_key", jstr(content, "sender_key"));
    cJSON_AddStringToObject(body, "session_id", jstr(content, "session_id"));
    char *rid = new_txn(c);
    cJSON_AddStringToObject(rq, "request_id", rid);
    cJSON_AddStringToObject(rq, "requesting_device_id", c->device_id);
    cJSON *b = cJSON_CreateObject();
    cJSON *msgs = cJSON_AddObjectToObject(b, "messages");
    cJSON *u = cJSON_AddObjectToObject(msgs, sender);
    cJSON_AddItemToObject(u, "*", cJSON_Duplicate(rq, true));
    if (strcmp(sender, c->user_id) != 0) {
        cJSON *me = cJSON_AddObjectToObject(msgs, c->user_id);
        cJSON_AddItemToObject(me, "*", rq);
    } else {
        cJSON_Delete(rq);
    }
    char *path = rt_xasprintf("/_matrix/client/v3/sendToDevice/m.room_key_request/%s", rid);
    submit(c, Q_KEYREQ, room_id, "PUT", path, b, NULL);
    rt_free(path);
    rt_free(rid);
    cJSON_Delete(b);
}

int mx_crypto_decrypt(mx_crypto *c, const char *room_id, const cJSON *ev, cJSON **out)
{
    *out = NULL;
    if (!c->enabled || !c->ready)
        return -ENOTSUP;
    const cJSON *content = jget(ev, "content");
    const char *alg = jstr(content, "algorithm"), *sid = jstr(content, "session_id");
    const char *eid = jstr(ev, "event_id"), *sender = jstr(ev, "sender");
    if (!alg || strcmp(alg, MEGOLM_ALG) != 0 || !sid || !jstr(content, "ciphertext") || !eid ||
        !sender || !jstr(content, "sender_key")) {
        RT_WARN(LOG, "Matrix: cannot decrypt %s in %s: unknown algorithm or malformed content",
                eid ? eid : "?", room_id);
        return -EPROTO;
    }
    int rc = megolm_decrypt(c, room_id, ev, out);
    if (rc != -EAGAIN)
        return rc;
    for (pending *p = c->pend; p; p = p->next)
        if (strcmp(p->room, room_id) == 0 && strcmp(jstr(p->ev, "event_id"), eid) == 0)
            return -EAGAIN; /* waiting already */
    if (c->npend >= MAX_PENDING) {
        RT_WARN(LOG,
                "Matrix: cannot decrypt %s in %s: no room key (session %.10s…) and %d events "
                "already wait for keys; dropped",
                eid, room_id, sid, MAX_PENDING);
        return -ENOBUFS;
    }
    pending *p = rt_xcalloc(1, sizeof(*p));
    p->room = rt_xstrdup(room_id);
    p->session = rt_xstrdup(sid);
    p->ev = cJSON_Duplicate(ev, true);
    p->at = wall_ms();
    p->next = c->pend;
    c->pend = p;
    c->npend++;
    RT_WARN(LOG,
            "Matrix: cannot decrypt %s in %s yet: no room key for session %.10s… from %s; "
            "requested it, the event waits up to %d min",
            eid, room_id, sid, sender, PENDING_MS / 60000);
    key_request(c, room_id, ev);
    return -EAGAIN;
}

int mx_crypto_encrypt(mx_crypto *c, const char *room_id, const char *type, const char *content,
                      char **out_type, char **out_content)
{
    *out_type = *out_content = NULL;
    room *r = c->enabled && c->ready ? room_get(c, room_id, false) : NULL;
    if (!r || !r->encrypted || strcmp(type, "m.reaction") == 0) {
        *out_type = rt_xstrdup(type);
        *out_content = rt_xstrdup(content);
        return 0;
    }
    if (r->sharing) {
        RT_DEBUG(LOG, "Matrix: %s waits for its room key to be shared", r->id);
        return -EAGAIN;
    }
    out_load(c, r);
    if (r->out && (r->out_count >= r->rot_msgs || wall_ms() - r->out_created >= r->rot_ms)) {
        RT_INFO(LOG, "Matrix: rotating the Megolm session of %s (%lld message(s), %llds old)",
                r->id, (long long)r->out_count, (long long)((wall_ms() - r->out_created) / 1000));
        out_discard(c, r);
    }
    if (!r->out || (!r->shared_pass && needs_share(c, r))) {
        share_start(c, r);
        if (r->sharing)
            return -EAGAIN;
        if (!r->out)
            return -EIO;
    }
    r->shared_pass = false;
    cJSON *pc = cJSON_Parse(content);
    if (!pc)
        return -EINVAL;
    cJSON *rel = cJSON_Duplicate(jget(pc, "m.relates_to"), true); /* NULL when none */
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", type);
    cJSON_AddStringToObject(p, "room_id", room_id);
    cJSON_AddItemToObject(p, "content", pc);
    char *plain = print(p);
    cJSON_Delete(p);
    char *ct = mx_olm_out_encrypt(r->out, plain);
    memset(plain, 0, strlen(plain));
    rt_free(plain);
    if (!ct) {
        cJSON_Delete(rel);
        return -EIO;
    }
    r->out_count++;
    out_save(c, r);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "algorithm", MEGOLM_ALG);
    cJSON_AddStringToObject(e, "sender_key", c->curve);
    cJSON_AddStringToObject(e, "ciphertext", ct);
    cJSON_AddStringToObject(e, "session_id", r->out_id);
    cJSON_AddStringToObject(e, "device_id", c->device_id);
    if (rel) /* relations stay visible to the server (threads, replies) */
        cJSON_AddItemToObject(e, "m.relates_to", rel);
    rt_free(ct);
    *out_type = rt_xstrdup("m.room.encrypted");
    *out_content = print(e);
    cJSON_Delete(e);
    return 0;
}

void mx_crypto_on_http(mx_crypto *c, rt_io_msg_http_done *d)
{
    req **pq = &c->reqs, *q = NULL;
    for (; *pq; pq = &(*pq)->next)
        if ((*pq)->id == d->id) {
            q = *pq;
            *pq = q->next;
            break;
        }
    if (!q)
        return;
    if (d->err == -ECANCELED) {
        req_free(q);
        return;
    }
    cJSON *j = d->body ? cJSON_Parse(d->body) : NULL;
    bool ok = d->err == 0 && d->status == 200 && cJSON_IsObject(j);
    room *r = q->room ? room_get(c, q->room, false) : NULL;
    char why[256];
    snprintf(why, sizeof(why), "HTTP %d%s%s", d->status, jstr(j, "error") ? ": " : "",
             jstr(j, "error") ? jstr(j, "error") : "");
    if (d->err)
        snprintf(why, sizeof(why), "%s", rt_strerror(d->err));
    switch (q->kind) {
    case Q_OWN:
        if (!ok) {
            char msg[400];
            snprintf(msg, sizeof(msg), "querying our own device keys failed (%s)", why);
            fail(c, msg);
            break;
        }
        on_own(c, j);
        break;
    case Q_DEVICE:
        if (!ok) {
            char msg[400];
            snprintf(msg, sizeof(msg), "uploading the device keys failed (%s)", why);
            fail(c, msg);
            break;
        }
        query_own(c);
        break;
    case Q_OTK: on_otk(c, d, j); break;
    case Q_QUERY:
        RT_DEBUG(LOG, "Matrix: device query for %s: %s (sharing: %d)", q->room ? q->room : "-",
                 ok ? "ok" : why, r ? r->sharing : -1);
        if (ok)
            apply_query(c, j);
        else
            RT_WARN(LOG, "Matrix: querying device keys failed (%s)", why);
        if (!q->room) {
            c->query_busy = false;
        } else if (r && r->sharing) {
            if (!ok) {
                /* do not loop: users we could not query count as known for this pass */
                for (size_t i = 0; i < r->nmem; i++) {
                    user *u = user_get(c, r->members[i], true);
                    u->known = true;
                    u->outdated = false;
                }
            }
            share_step(c, r);
        }
        break;
    case Q_MEMBERS:
        if (r && r->sharing) {
            if (ok) {
                on_members(c, r, j);
            } else {
                r->members_loaded = true; /* what sync told us */
                RT_WARN(LOG, "Matrix: fetching the members of %s failed (%s)", r->id, why);
                share_step(c, r);
            }
        }
        break;
    case Q_CLAIM:
        if (r && r->sharing) {
            if (ok)
                on_claim(c, r, j);
            else
                share_end(c, r, why);
        }
        break;
    case Q_SEND:
        RT_DEBUG(LOG, "Matrix: room key of %s sent (%s)", q->room ? q->room : "?", ok ? "ok" : why);
        if (r && ok && r->out && r->shared) {
            const cJSON *it;
            cJSON_ArrayForEach(it, q->targets)
                cJSON_AddItemToArray(r->shared, cJSON_CreateString(it->valuestring));
            out_save(c, r);
        }
        if (r && r->sharing) {
            if (!ok)
                share_end(c, r, why);
            else {
                r->sharing = false;
                r->shared_pass = true;
                c->env.resume(c->env.arg, r->id);
            }
        }
        break;
    case Q_SS_DEFAULT:
    case Q_SS_KEY:
    case Q_SS_SSK:
    case Q_SS_SIGN: on_recovery(c, q->kind, ok, why, j); break;
    case Q_FWD_CLAIM:
        if (ok)
            on_fwd_claim(c, q->targets, j);
        else
            RT_WARN(LOG, "Matrix: claiming a key to answer a key request failed (%s)", why);
        break;
    case Q_FWD_SEND:
        if (!ok)
            RT_WARN(LOG, "Matrix: sending a forwarded room key failed (%s)", why);
        break;
    case Q_KEYREQ:
        if (!ok)
            RT_WARN(LOG, "Matrix: the room key request for %s failed (%s)", q->room ? q->room : "?",
                    why);
        break;
    default: break;
    }
    cJSON_Delete(j);
    req_free(q);
}

bool mx_crypto_room_encrypted(mx_crypto *c, const char *room_id)
{
    room *r = c->enabled && c->ready ? room_get(c, room_id, false) : NULL;
    return r && r->encrypted;
}

bool mx_crypto_status(const char *store_dir, char *out, size_t len)
{
    char ver[32];
    mx_olm_version(ver, sizeof(ver));
    if (!store_dir) {
        snprintf(out, len, "libolm %s; no crypto store", ver);
        return true;
    }
    char *path = rt_xasprintf("%s/crypto.db", store_dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(out, len, "libolm %s; crypto store %s not created yet", ver, path);
        rt_free(path);
        return true;
    }
    fclose(f);
    char chk[512];
    bool ok = mx_cs_check_file(path, chk, sizeof(chk));
    snprintf(out, len, "libolm %s; crypto store %s", ver, chk);
    rt_free(path);
    return ok;
}

bool matrix_e2ee_status(const char *store_dir, char *out, size_t len)
{
    return mx_crypto_status(store_dir, out, len);
}
