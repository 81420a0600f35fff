/*
 * test_whatsapp — the WhatsApp Cloud API adapter: the webhook's handshake and signature
 * check, a message in → a reply out against the Graph API double
 * (tests/doubles/whatsapp_double.py), the bridge refused, and the pure helpers; acknowledged
 * sends (gw_caps.acks): one GW_MSG_SENT per delivery, classified the way Meta answered
 * (faults injected into the double), long replies acked once after their last part, and a
 * retried delivery sending only the parts that did not go.
 */
#include "adapter_env.h"
#include "whatsapp.h"

#include "hm_config.h"
#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_util.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SECRET "app-secret-0123456789"
#define VTOKEN "verify-me"
#define GTOKEN "EAAG-test-token-123"
#define PHONE  "1098765432"

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void sign(const char *body, char *out, size_t n)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)body, strlen(body), mac,
         &ml);
    size_t k = (size_t)snprintf(out, n, "sha256=");
    for (unsigned i = 0; i < ml && k + 2 < n; i++)
        k += (size_t)snprintf(out + k, n - k, "%02x", mac[i]);
}

TEST(signature_check)
{
    char sig[128];
    sign("{\"a\":1}", sig, sizeof(sig));
    ASSERT_TRUE(wa_signature_ok(SECRET, "{\"a\":1}", 7, sig));
    ASSERT_FALSE(wa_signature_ok(SECRET, "{\"a\":2}", 7, sig));
    ASSERT_FALSE(wa_signature_ok("other", "{\"a\":1}", 7, sig));
    ASSERT_FALSE(wa_signature_ok(SECRET, "{\"a\":1}", 7, NULL));
    ASSERT_FALSE(wa_signature_ok(SECRET, "{\"a\":1}", 7, sig + 7)); /* no "sha256=" */
    sig[20] = 'z';
    ASSERT_FALSE(wa_signature_ok(SECRET, "{\"a\":1}", 7, sig));
    ASSERT_FALSE(wa_signature_ok(SECRET, "{\"a\":1}", 7, "sha256=abcd"));
}

TEST(handshake_and_parsing)
{
    char *c =
        wa_handshake("hub.mode=subscribe&hub.verify_token=verify%2Dme&hub.challenge=42", VTOKEN);
    ASSERT_STR_EQ(c, "42");
    rt_free(c);
    ASSERT_NULL(wa_handshake("hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1", VTOKEN));
    ASSERT_NULL(
        wa_handshake("hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1", VTOKEN));
    ASSERT_NULL(wa_handshake("", VTOKEN));

    wa_inmsg *v = NULL;
    int n = wa_parse_notification(
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":[{"
        "\"field\":\"messages\",\"value\":{\"messaging_product\":\"whatsapp\",\"contacts\":[{"
        "\"profile\":{\"name\":\"Ann\"},\"wa_id\":\"15551234567\"}],\"messages\":[{\"from\":"
        "\"15551234567\",\"id\":\"wamid.A\",\"timestamp\":\"1\",\"type\":\"text\",\"text\":{"
        "\"body\":\"hi\"}},{\"from\":\"15551234567\",\"id\":\"wamid.B\",\"type\":\"image\","
        "\"image\":{\"caption\":\"pic\",\"id\":\"m1\"}}]}}]}]}",
        &v);
    ASSERT_EQ(n, 2);
    ASSERT_STR_EQ(v[0].id, "wamid.A");
    ASSERT_STR_EQ(v[0].text, "hi");
    ASSERT_STR_EQ(v[0].name, "Ann");
    ASSERT_STR_CONTAINS(v[1].text, "pic");
    ASSERT_STR_CONTAINS(v[1].text, "image");
    wa_inmsgs_free(v, n);
    ASSERT_EQ(
        wa_parse_notification("{\"entry\":[{\"changes\":[{\"value\":{\"statuses\":[]}}]}]}", &v),
        0);
    wa_inmsgs_free(v, 0);
    ASSERT_EQ(wa_parse_notification("nope", &v), -EINVAL);
}

static hm_config *load_env(const char *home)
{
    int err = 0;
    hm_config *cfg = hm_config_load(home, 0, NULL, &err);
    ASSERT_NOT_NULL(cfg);
    return cfg;
}

TEST(the_bridge_is_refused_and_missing_settings_named)
{
    const char *home = test_tmpdir();
    static const char *vars[] = {"WHATSAPP_ENABLED",      "WHATSAPP_MODE",
                                 "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID",
                                 "WHATSAPP_APP_SECRET",   "WHATSAPP_VERIFY_TOKEN"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    wa_opts o;
    char err[512] = "";
    hm_config *cfg = load_env(home);
    ASSERT_EQ(wa_opts_from_config(cfg, &o, err, sizeof(err)), -ENOENT);
    hm_config_unref(cfg);

    setenv("WHATSAPP_ENABLED", "true", 1);
    cfg = load_env(home);
    ASSERT_EQ(wa_opts_from_config(cfg, &o, err, sizeof(err)), -ENOTSUP);
    ASSERT_STR_EQ(err, WA_BRIDGE_MSG);
    hm_config_unref(cfg);

    setenv("WHATSAPP_MODE", "bridge", 1);
    setenv("WHATSAPP_ACCESS_TOKEN", GTOKEN, 1);
    setenv("WHATSAPP_PHONE_NUMBER_ID", PHONE, 1);
    cfg = load_env(home);
    ASSERT_EQ(wa_opts_from_config(cfg, &o, err, sizeof(err)), -ENOTSUP);
    hm_config_unref(cfg);

    unsetenv("WHATSAPP_MODE");
    cfg = load_env(home);
    ASSERT_EQ(wa_opts_from_config(cfg, &o, err, sizeof(err)), -EINVAL);
    ASSERT_STR_CONTAINS(err, "WHATSAPP_APP_SECRET");
    hm_config_unref(cfg);

    setenv("WHATSAPP_APP_SECRET", SECRET, 1);
    setenv("WHATSAPP_VERIFY_TOKEN", VTOKEN, 1);
    cfg = load_env(home);
    ASSERT_OK(wa_opts_from_config(cfg, &o, err, sizeof(err)));
    ASSERT_EQ(o.port, WA_DEFAULT_PORT);
    ASSERT_STR_EQ(o.graph_base, WA_DEFAULT_GRAPH);
    ASSERT_STR_EQ(o.path, "/whatsapp/webhook");
    wa_opts_fini(&o);
    hm_config_unref(cfg);
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
}

/* ---- against the server ---- */

typedef struct dbl {
    pid_t pid;
    int port;
    char base[64];
} dbl;

static void dbl_start(dbl *d)
{
    const char *dir = test_tmpdir();
    char pf[512];
    snprintf(pf, sizeof(pf), "%s/wa.port", dir);
    d->pid = fork();
    ASSERT_GE(d->pid, 0);
    if (d->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execl("/usr/bin/python3", "python3", WA_DOUBLE, "--token", GTOKEN, "--port", "0",
              "--port-file", pf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000 && !d->port; i++) {
        char *s = NULL;
        size_t len = 0;
        int64_t p = 0;
        if (hm_read_file(pf, 64, &s, &len) == 0 && rt_parse_i64(s, 1, 65535, &p) == 0)
            d->port = (int)p;
        rt_free(s);
        if (!d->port)
            nap_ms(20);
    }
    ASSERT_GT(d->port, 0);
    snprintf(d->base, sizeof(d->base), "http://127.0.0.1:%d/v20.0", d->port);
}

static void dbl_stop(dbl *d)
{
    kill(d->pid, SIGTERM);
    (void)waitpid(d->pid, NULL, 0);
}

static wa_server *start_wa(tenv *e, dbl *d)
{
    wa_opts o = {.access_token = GTOKEN,
                 .phone_number_id = PHONE,
                 .app_secret = SECRET,
                 .verify_token = VTOKEN,
                 .graph_base = d->base,
                 .host = "127.0.0.1",
                 .port = 0,
                 .path = "/whatsapp/webhook"};
    wa_server *s = NULL;
    char err[256] = "";
    ASSERT_OK(wa_start(e->cx, e->l, &o, 0, &s, err, sizeof(err)));
    return s;
}

#define NOTE                                                                                       \
    "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":[{\"field\":"  \
    "\"messages\",\"value\":{\"messaging_product\":\"whatsapp\",\"metadata\":{"                    \
    "\"phone_number_id\":\"" PHONE "\"},\"contacts\":[{\"profile\":{\"name\":\"Ann\"},\"wa_id\":"  \
    "\"15551234567\"}],\"messages\":[{\"from\":\"15551234567\",\"id\":\"wamid.HBg1\","             \
    "\"timestamp\":\"1700000000\",\"type\":\"text\",\"text\":{\"body\":\"hello there\"}}]}}]}]}"

static int post_note(int port, const char *sig_header)
{
    hc_resp r;
    ASSERT_OK(treq(port, "POST", "/whatsapp/webhook", sig_header, NOTE, &r));
    int st = r.status;
    hc_resp_free(&r);
    return st;
}

TEST(webhook_handshake_signatures_and_a_reply)
{
    dbl d = {0};
    dbl_start(&d);
    tenv e;
    tenv_init(&e, true);
    wa_server *s = start_wa(&e, &d);
    int port = wa_port(s);
    ASSERT_OK(gwd_wait(e.gw, GWD_UP, 1, WAIT_MS));

    hc_resp r;
    ASSERT_OK(treq(port, "GET",
                   "/whatsapp/webhook?hub.mode=subscribe&hub.verify_token=verify-me"
                   "&hub.challenge=1158201444",
                   NULL, NULL, &r));
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(r.body, "1158201444");
    hc_resp_free(&r);
    ASSERT_OK(treq(port, "GET",
                   "/whatsapp/webhook?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
                   NULL, NULL, &r));
    ASSERT_EQ(r.status, 403);
    hc_resp_free(&r);

    /* missing and wrong signatures: 401, nothing reaches the gateway */
    ASSERT_EQ(post_note(port, NULL), 401);
    ASSERT_EQ(post_note(port, "X-Hub-Signature-256: sha256=00112233445566778899aabbccddeeff"
                              "00112233445566778899aabbccddeeff\r\n"),
              401);
    ASSERT_EQ(gwd_count(e.gw, GWD_EVENT), 0);

    char sig[128], hdr[200];
    sign(NOTE, sig, sizeof(sig));
    snprintf(hdr, sizeof(hdr), "X-Hub-Signature-256: %s\r\n", sig);
    ASSERT_EQ(post_note(port, hdr), 200);
    ASSERT_OK(gwd_wait(e.gw, GWD_EVENT, 1, WAIT_MS));
    const gwd_rec *ev = gwd_get(e.gw, GWD_EVENT, 0);
    ASSERT_STR_EQ(ev->platform, "whatsapp");
    ASSERT_STR_EQ(ev->chat_type, "dm");
    ASSERT_STR_EQ(ev->user_id, "15551234567");
    ASSERT_STR_EQ(ev->message_id, "wamid.HBg1");
    ASSERT_STR_EQ(ev->text, "hello there");

    /* the gateway double's reply goes out through the Graph API */
    bool found = false;
    for (int i = 0; i < 500 && !found; i++) {
        ASSERT_OK(treq(d.port, "GET", "/_ctl/sent", NULL, NULL, &r));
        cJSON *j = cJSON_Parse(r.body);
        hc_resp_free(&r);
        const cJSON *m;
        cJSON_ArrayForEach(m, j)
        {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "text");
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(t, "body");
            if (cJSON_IsString(b) && strcmp(b->valuestring, "Echo: hello there") == 0) {
                found = true;
                const cJSON *to = cJSON_GetObjectItemCaseSensitive(m, "to");
                ASSERT_STR_EQ(to->valuestring, "15551234567");
                const cJSON *ph = cJSON_GetObjectItemCaseSensitive(m, "phone_id");
                ASSERT_STR_EQ(ph->valuestring, PHONE);
            }
        }
        cJSON_Delete(j);
        if (!found)
            nap_ms(20);
    }
    ASSERT_TRUE(found);
    wa_stop(e.cx, s, 1000);
    tenv_fini(&e);
    dbl_stop(&d);
}

/* ---- acknowledged sends ---- */

TEST(send_verdicts_follow_metas_error_codes)
{
    wa_verdict v;
    const char *ok = "{\"messaging_product\":\"whatsapp\",\"contacts\":[{\"input\":\"1\","
                     "\"wa_id\":\"1\"}],\"messages\":[{\"id\":\"wamid.X\"}]}";
    wa_send_verdict(0, 200, ok, strlen(ok), 0, &v);
    ASSERT_EQ(v.err, 0);
    ASSERT_FALSE(v.permanent);
    const char *noid = "{\"messaging_product\":\"whatsapp\",\"contacts\":[]}";
    wa_send_verdict(0, 200, noid, strlen(noid), 0, &v);
    ASSERT_EQ(v.err, -EIO);
    ASSERT_FALSE(v.permanent);
    wa_send_verdict(0, 200, NULL, 0, 0, &v);
    ASSERT_EQ(v.err, -EIO);

#define GERR(code, msg)                                                                            \
    "{\"error\":{\"message\":\"" msg "\",\"type\":\"OAuthException\",\"code\":" #code              \
    ",\"error_data\":{\"messaging_product\":\"whatsapp\",\"details\":\"d-" #code "\"},"            \
    "\"fbtrace_id\":\"AbC\"}}"
    const char *b = GERR(131047, "(#131047) Re-engagement message");
    wa_send_verdict(0, 400, b, strlen(b), 0, &v);
    ASSERT_EQ(v.err, -EPERM);
    ASSERT_TRUE(v.permanent);
    ASSERT_EQ(v.code, 131047);
    ASSERT_STR_CONTAINS(v.why, "HTTP 400");
    ASSERT_STR_CONTAINS(v.why, "131047");
    ASSERT_STR_CONTAINS(v.why, "d-131047");
    b = GERR(131030, "(#131030) Recipient phone number not in allowed list");
    wa_send_verdict(0, 400, b, strlen(b), 0, &v);
    ASSERT_TRUE(v.permanent);
    b = GERR(100, "(#100) Invalid parameter");
    wa_send_verdict(0, 400, b, strlen(b), 0, &v);
    ASSERT_TRUE(v.permanent);
    /* throttling, whether answered 429 or 400 */
    b = GERR(130429, "(#130429) Rate limit hit");
    wa_send_verdict(0, 429, b, strlen(b), 7, &v);
    ASSERT_EQ(v.err, -EAGAIN);
    ASSERT_FALSE(v.permanent);
    ASSERT_EQ(v.retry_after_ms, 7000);
    wa_send_verdict(0, 400, b, strlen(b), 0, &v);
    ASSERT_EQ(v.err, -EAGAIN);
    ASSERT_EQ(v.retry_after_ms, 0);
    b = GERR(131056, "(#131056) Pair rate limit hit");
    wa_send_verdict(0, 400, b, strlen(b), 0, &v);
    ASSERT_EQ(v.err, -EAGAIN);
    /* server errors, with or without a body */
    b = GERR(131000, "(#131000) Something went wrong");
    wa_send_verdict(0, 500, b, strlen(b), 0, &v);
    ASSERT_EQ(v.err, -EIO);
    ASSERT_FALSE(v.permanent);
    wa_send_verdict(0, 502, "<html>bad gateway</html>", 24, 0, &v);
    ASSERT_EQ(v.err, -EIO);
    ASSERT_STR_CONTAINS(v.why, "HTTP 502");
    /* the token: fixable, so not permanent */
    b = GERR(190, "Invalid OAuth access token.");
    wa_send_verdict(0, 401, b, strlen(b), 0, &v);
    ASSERT_EQ(v.err, -EACCES);
    ASSERT_FALSE(v.permanent);
    /* the network */
    wa_send_verdict(-ECONNREFUSED, 0, NULL, 0, 0, &v);
    ASSERT_EQ(v.err, -ECONNREFUSED);
    ASSERT_FALSE(v.permanent);
    wa_send_verdict(-ETIMEDOUT, 0, NULL, 0, 0, &v);
    ASSERT_FALSE(v.permanent);
    ASSERT_STR_CONTAINS(v.why, "may have been sent");
    /* garbage: a 4xx without Meta's shape is the message's fault; a huge Retry-After is capped */
    wa_send_verdict(0, 400, "\xff\xfe{{{", 5, 999999, &v);
    ASSERT_TRUE(v.permanent);
    ASSERT_EQ(v.retry_after_ms, 3600 * 1000);
#undef GERR
}

/* A stand-in for the gateway that records the adapter's announcements and acknowledgements. */
#define SINK_MAX 64
typedef struct sink {
    pthread_mutex_t mu;
    rt_ref adapter;
    gw_caps caps;
    int ups;
    int nacks;
    gw_msg_sent acks[SINK_MAX];
} sink;

static void sink_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)cx;
    sink *k = *(sink **)state;
    pthread_mutex_lock(&k->mu);
    if (m->type == GW_MSG_ADAPTER_UP) {
        k->adapter = ((gw_msg_adapter *)m)->ref;
        k->caps = ((gw_msg_adapter *)m)->caps;
        k->ups++;
    } else if (m->type == GW_MSG_SENT && k->nacks < SINK_MAX) {
        k->acks[k->nacks++] = *(gw_msg_sent *)m;
    }
    pthread_mutex_unlock(&k->mu);
}

static const rt_actor_type sink_type = {"wa_gw_sink", sink_behave, NULL, sizeof(sink *)};

static int sink_nacks(sink *k)
{
    pthread_mutex_lock(&k->mu);
    int n = k->nacks;
    pthread_mutex_unlock(&k->mu);
    return n;
}

/* Wait (bounded) until n acks arrived; the n-th (1-based) is copied to out. */
static void sink_wait(sink *k, int n, gw_msg_sent *out)
{
    for (int i = 0; i < 1000 && sink_nacks(k) < n; i++)
        nap_ms(10);
    ASSERT_GE(sink_nacks(k), n);
    pthread_mutex_lock(&k->mu);
    *out = k->acks[n - 1];
    pthread_mutex_unlock(&k->mu);
}

static void out_text(tenv *e, sink *k, const char *to, const char *text, uint64_t delivery)
{
    gw_target t = {.chat_id = (char *)to, .reply_to = (char *)"wamid.IN"};
    gw_out_text *m = (gw_out_text *)gw_out_text_new(GW_OUT_TEXT, &t, text, GW_TEXT_REPLY);
    m->delivery = delivery;
    if (!to) {
        rt_free(m->to.chat_id);
        m->to.chat_id = NULL;
    }
    ASSERT_TRUE(rt_send(e->cx, k->adapter, &m->hdr));
}

static void ctl_fail(dbl *d, const char *json)
{
    hc_resp r;
    ASSERT_OK(treq(d->port, "POST", "/_ctl/fail", NULL, json, &r));
    ASSERT_EQ(r.status, 200);
    hc_resp_free(&r);
}

/* How many accepted messages (or, attempts: sends tried) have this text body. */
static int count_body(dbl *d, const char *what, const char *body)
{
    hc_resp r;
    char path[64];
    snprintf(path, sizeof(path), "/_ctl/%s", what);
    ASSERT_OK(treq(d->port, "GET", path, NULL, NULL, &r));
    cJSON *j = cJSON_Parse(r.body);
    hc_resp_free(&r);
    int n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, j)
    {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(m, "body");
        const cJSON *msg = cJSON_IsObject(x) ? x : m; /* attempts wrap the body */
        const cJSON *b =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(msg, "text"), "body");
        n += cJSON_IsString(b) && strcmp(b->valuestring, body) == 0;
    }
    cJSON_Delete(j);
    return n;
}

typedef struct ackenv {
    dbl d;
    tenv e;
    sink *k;
    rt_ref sref;
    wa_server *s;
} ackenv;

static void ack_start(ackenv *a, char *graph)
{
    memset(a, 0, sizeof(*a));
    dbl_start(&a->d);
    tenv_init(&a->e, false);
    a->k = rt_xcalloc(1, sizeof(*a->k));
    pthread_mutex_init(&a->k->mu, NULL);
    a->sref = rt_spawn(a->e.cx, &sink_type, &a->k, NULL);
    ASSERT_NE(a->sref, 0);
    wa_opts o = {.access_token = GTOKEN,
                 .phone_number_id = PHONE,
                 .app_secret = SECRET,
                 .verify_token = VTOKEN,
                 .graph_base = graph ? graph : a->d.base,
                 .host = "127.0.0.1",
                 .port = 0,
                 .path = "/whatsapp/webhook"};
    char err[256] = "";
    ASSERT_OK(wa_start(a->e.cx, a->e.l, &o, a->sref, &a->s, err, sizeof(err)));
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&a->k->mu);
        int ups = a->k->ups;
        pthread_mutex_unlock(&a->k->mu);
        if (ups)
            break;
        nap_ms(10);
    }
    ASSERT_EQ(a->k->ups, 1);
    ASSERT_TRUE(a->k->caps.acks);
}

static void ack_stop(ackenv *a)
{
    wa_stop(a->e.cx, a->s, 1000);
    rt_stop(a->e.cx, a->sref, RT_EXIT_STOPPED);
    tenv_fini(&a->e);
    dbl_stop(&a->d);
    pthread_mutex_destroy(&a->k->mu);
    rt_free(a->k);
}

TEST(every_delivery_is_acked_once_the_way_meta_answered)
{
    ackenv a;
    ack_start(&a, NULL);
    gw_msg_sent s;
    int n = 0;

    out_text(&a.e, a.k, "15551234567", "plain", 101); /* taken */
    sink_wait(a.k, ++n, &s);
    ASSERT_EQ(s.delivery, 101);
    ASSERT_EQ(s.err, 0);
    ASSERT_EQ(count_body(&a.d, "sent", "plain"), 1);

    ctl_fail(&a.d, "{\"faults\":[{\"status\":500}]}"); /* 131000: again later */
    out_text(&a.e, a.k, "15551234567", "second", 102);
    sink_wait(a.k, ++n, &s);
    ASSERT_EQ(s.delivery, 102);
    ASSERT_EQ(s.err, -EIO);
    ASSERT_FALSE(s.permanent);
    ASSERT_STR_CONTAINS(s.errmsg, "131000");
    out_text(&a.e, a.k, "15551234567", "second", 102); /* the outbox's next attempt */
    sink_wait(a.k, ++n, &s);
    ASSERT_EQ(s.err, 0);
    ASSERT_EQ(count_body(&a.d, "sent", "second"), 1);

    ctl_fail(&a.d, "{\"faults\":[{\"status\":429,\"retry_after\":7}]}");
    out_text(&a.e, a.k, "15551234567", "third", 103);
    sink_wait(a.k, ++n, &s);
    ASSERT_EQ(s.err, -EAGAIN);
    ASSERT_FALSE(s.permanent);
    ASSERT_EQ(s.retry_after_ms, 7000);

    ctl_fail(&a.d, "{\"faults\":[{\"status\":400,\"code\":130429,\"retry_after\":null}]}");
    out_text(&a.e, a.k, "15551234567", "fourth", 104);
    sink_wait(a.k, ++n, &s);
    ASSERT_EQ(s.err, -EAGAIN);
    ASSERT_EQ(s.retry_after_ms, 0);

    ctl_fail(&a.d, "{\"faults\":[{\"status\":400,\"code\":131047}]}"); /* 24 h window */
    out_text(&a.e, a.k, "15551234567", "fifth", 105);
    sink_wait(a.k, ++n, &s);
    ASSERT_EQ(s.delivery, 105);
    ASSERT_EQ(s.err, -EPERM);
    ASSERT_TRUE(s.permanent);
    ASSERT_STR_CONTAINS(s.errmsg, "131047");

    ctl_fail(&a.d, "{\"faults\":[{\"status\":400,\"code\":131030}]}"); /* bad recipient */
    out_text(&a.e, a.k, "15550000000", "sixth", 106);
    sink_wait(a.k, ++n, &s);
    ASSERT_TRUE(s.permanent);

    ctl_fail(&a.d, "{\"faults\":[{\"status\":200,\"no_id\":true}]}"); /* no message id */
    out_text(&a.e, a.k, "15551234567", "eighth", 108);
    sink_wait(a.k, ++n, &s);
    ASSERT_EQ(s.err, -EIO);
    ASSERT_FALSE(s.permanent);

    /* bad input is refused for good; nothing to send is done at once */
    out_text(&a.e, a.k, NULL, "nowhere", 109);
    sink_wait(a.k, ++n, &s);
    ASSERT_EQ(s.delivery, 109);
    ASSERT_EQ(s.err, -EINVAL);
    ASSERT_TRUE(s.permanent);
    out_text(&a.e, a.k, "15551234567", "", 110);
    sink_wait(a.k, ++n, &s);
    ASSERT_EQ(s.delivery, 110);
    ASSERT_EQ(s.err, 0);

    /* without a delivery there is no ack (and the adapter retries a 500 itself) */
    out_text(&a.e, a.k, "15551234567", "a notice", 0);
    out_text(&a.e, a.k, "15551234567", "after the notice", 111);
    sink_wait(a.k, ++n, &s);
    ASSERT_EQ(s.delivery, 111);
    ASSERT_EQ(s.err, 0);
    ASSERT_EQ(count_body(&a.d, "sent", "a notice"), 1);
    ASSERT_EQ(sink_nacks(a.k), n);
    ack_stop(&a);
}

TEST(a_long_reply_is_acked_once_after_its_last_part)
{
    ackenv a;
    ack_start(&a, NULL);
    gw_msg_sent s;
    /* two parts: 4000 'a' + newline + 3000 'b' */
    size_t la = 4000, lb = 3000;
    char *text = rt_xmalloc(la + lb + 2);
    memset(text, 'a', la);
    text[la] = '\n';
    memset(text + la + 1, 'b', lb);
    text[la + lb + 1] = '\0';
    char *pa = rt_xasprintf("%.*s (1/2)", (int)la, text);
    char *pb = rt_xasprintf("%s (2/2)", text + la + 1);

    out_text(&a.e, a.k, "15551234567", text, 201);
    sink_wait(a.k, 1, &s);
    ASSERT_EQ(s.delivery, 201);
    ASSERT_EQ(s.err, 0);
    ASSERT_EQ(count_body(&a.d, "sent", pa), 1);
    ASSERT_EQ(count_body(&a.d, "sent", pb), 1);

    /* the second part fails: one failure; the next attempt sends only the second part */
    ctl_fail(&a.d, "{\"faults\":[{\"pass\":true},{\"status\":503}]}");
    out_text(&a.e, a.k, "15551234567", text, 202);
    sink_wait(a.k, 2, &s);
    ASSERT_EQ(s.delivery, 202);
    ASSERT_EQ(s.err, -EIO);
    ASSERT_FALSE(s.permanent);
    ASSERT_EQ(count_body(&a.d, "sent", pa), 2);
    ASSERT_EQ(count_body(&a.d, "sent", pb), 1);
    out_text(&a.e, a.k, "15551234567", text, 202);
    sink_wait(a.k, 3, &s);
    ASSERT_EQ(s.delivery, 202);
    ASSERT_EQ(s.err, 0);
    ASSERT_EQ(count_body(&a.d, "sent", pa), 2); /* not again */
    ASSERT_EQ(count_body(&a.d, "sent", pb), 2);

    /* the first part is refused for good: the second is never tried */
    ctl_fail(&a.d, "{\"faults\":[{\"status\":400,\"code\":131047}]}");
    out_text(&a.e, a.k, "15551234567", text, 203);
    sink_wait(a.k, 4, &s);
    ASSERT_EQ(s.delivery, 203);
    ASSERT_TRUE(s.permanent);
    ASSERT_EQ(count_body(&a.d, "attempts", pa), 3);
    ASSERT_EQ(count_body(&a.d, "attempts", pb), 3);
    /* one more delivery proves no stray ack for 203 is still coming */
    out_text(&a.e, a.k, "15551234567", "done", 204);
    sink_wait(a.k, 5, &s);
    ASSERT_EQ(s.delivery, 204);
    ASSERT_EQ(sink_nacks(a.k), 5);
    rt_free(pa);
    rt_free(pb);
    rt_free(text);
    ack_stop(&a);
}

TEST(a_network_error_is_acked_as_worth_another_try)
{
    /* a port nobody listens on: connection refused */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_OK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
    socklen_t sl = sizeof(sa);
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&sa, &sl));
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/v20.0", ntohs(sa.sin_port));
    ackenv a;
    ack_start(&a, base);
    gw_msg_sent s;
    out_text(&a.e, a.k, "15551234567", "into the void", 301);
    sink_wait(a.k, 1, &s);
    ASSERT_EQ(s.delivery, 301);
    ASSERT_NE(s.err, 0);
    ASSERT_FALSE(s.permanent);
    ack_stop(&a);
    close(fd);
}

TEST(a_reply_with_a_file_is_acked_after_the_file)
{
    ackenv a;
    ack_start(&a, NULL);
    gw_msg_sent s;
    char path[512];
    snprintf(path, sizeof(path), "%s/report.txt", test_tmpdir());
    ASSERT_OK(hm_write_atomic(path, "the report\n", 11, 0600));
    char *text = rt_xasprintf("Here it is.\nMEDIA:%s", path);
    out_text(&a.e, a.k, "15551234567", text, 401);
    sink_wait(a.k, 1, &s);
    ASSERT_EQ(s.delivery, 401);
    ASSERT_EQ(s.err, 0);
    ASSERT_EQ(count_body(&a.d, "sent", "Here it is."), 1);
    hc_resp r;
    ASSERT_OK(treq(a.d.port, "GET", "/_ctl/sent", NULL, NULL, &r));
    ASSERT_STR_CONTAINS(r.body, "\"document\""); /* the file went before the ack */
    ASSERT_STR_CONTAINS(r.body, "report.txt");
    hc_resp_free(&r);
    rt_free(text);
    /* a file that cannot be read is left out (logged): the text still counts */
    text = rt_xasprintf("Missing file.\nMEDIA:%s/nope.pdf", test_tmpdir());
    out_text(&a.e, a.k, "15551234567", text, 402);
    sink_wait(a.k, 2, &s);
    ASSERT_EQ(s.delivery, 402);
    ASSERT_EQ(s.err, 0);
    ASSERT_EQ(count_body(&a.d, "sent", "Missing file."), 1);
    rt_free(text);
    /* the file's send is refused by a 500: the next attempt sends only the file */
    ctl_fail(&a.d, "{\"faults\":[{\"pass\":true},{\"status\":500}]}");
    text = rt_xasprintf("Again.\nMEDIA:%s", path);
    out_text(&a.e, a.k, "15551234567", text, 403);
    sink_wait(a.k, 3, &s);
    ASSERT_EQ(s.err, -EIO);
    out_text(&a.e, a.k, "15551234567", text, 403);
    sink_wait(a.k, 4, &s);
    ASSERT_EQ(s.delivery, 403);
    ASSERT_EQ(s.err, 0);
    ASSERT_EQ(count_body(&a.d, "sent", "Again."), 1);
    rt_free(text);
    ack_stop(&a);
}
