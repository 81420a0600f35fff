/*
 * test_whatsapp — the WhatsApp Cloud API adapter: the webhook's handshake and signature
 * check, a message in → a reply out against the Graph API double
 * (tests/doubles/whatsapp_double.py), the bridge refused, and the pure helpers.
 */
#include "adapter_env.h"
#include "whatsapp.h"

#include "hm_config.h"
#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_util.h"
#include "test.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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
