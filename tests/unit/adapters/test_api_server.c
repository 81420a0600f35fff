/*
 * The API server adapter (gateway.md §10.1-10.3) against the gateway double: health and
 * models, non-streamed and streamed completions (SSE framing parsed back), the session
 * header rules, the derived session id (SHA-256 computed here independently), auth, the
 * loopback rule and the port pre-check, body limits, bad JSON, CORS, idempotency replay,
 * client disconnects cancelling at the gateway, the in-flight limit, keep-alives, the
 * configuration.
 */
#include "adapter_env.h"
#include "api_int.h"

#include "ag_session.h"
#include "hm_config.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <openssl/evp.h>

#define AUTH "Authorization: Bearer " TEST_KEY "\r\n"

/* ============================================================ helpers */

static const char *hdr(const hc_resp *r, const char *name)
{
    static char buf[1024];
    return hc_header(r, name, buf, sizeof(buf));
}

static cJSON *json_of(const hc_resp *r)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    if (!j)
        TEST_FAIL_("body is not JSON: %s", r->body ? r->body : "(null)");
    return j;
}

static const char *jstr(const cJSON *o, const char *path)
{
    /* "a.b.0.c" */
    char buf[256];
    rt_strlcpy(buf, path, sizeof(buf));
    const cJSON *cur = o;
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok && cur;
         tok = strtok_r(NULL, ".", &save))
        cur = cJSON_IsArray(cur) ? cJSON_GetArrayItem(cur, (int)strtol(tok, NULL, 10))
                                 : cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *path)
{
    char buf[256];
    rt_strlcpy(buf, path, sizeof(buf));
    const cJSON *cur = o;
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok && cur;
         tok = strtok_r(NULL, ".", &save))
        cur = cJSON_IsArray(cur) ? cJSON_GetArrayItem(cur, (int)strtol(tok, NULL, 10))
                                 : cJSON_GetObjectItemCaseSensitive(cur, tok);
    if (!cJSON_IsNumber(cur))
        TEST_FAIL_("no number at %s", path);
    return cur->valuedouble;
}

/* An error envelope with this status, message and code (NULL: JSON null). */
static void expect_error(const hc_resp *r, int status, const char *message, const char *code)
{
    if (r->status != status)
        TEST_FAIL_("status %d, expected %d (%s)", r->status, status, r->body);
    cJSON *j = json_of(r);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    ASSERT_NOT_NULL(e);
    if (message)
        ASSERT_STR_EQ(message, jstr(e, "message"));
    ASSERT_NOT_NULL(jstr(e, "type"));
    ASSERT_NOT_NULL(cJSON_GetObjectItemCaseSensitive(e, "param"));
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
    if (code)
        ASSERT_STR_EQ(code, cJSON_IsString(c) ? c->valuestring : NULL);
    else
        ASSERT(cJSON_IsNull(c));
    cJSON_Delete(j);
    ASSERT_STR_EQ("nosniff", hdr(r, "X-Content-Type-Options"));
    ASSERT_STR_EQ("no-referrer", hdr(r, "Referrer-Policy"));
}

/* "api-" + 16 hex of SHA-256(system "\n" first_user), computed here on its own. */
static void expected_sid(const char *system, const char *first_user, char out[32])
{
    char seed[4096];
    snprintf(seed, sizeof(seed), "%s\n%s", system, first_user);
    unsigned char d[32];
    unsigned n = sizeof(d);
    ASSERT(EVP_Digest(seed, strlen(seed), d, &n, EVP_sha256(), NULL) == 1);
    memcpy(out, "api-", 5);
    for (int i = 0; i < 8; i++)
        snprintf(out + 4 + 2 * i, 3, "%02x", d[i]);
}

static int post_chat(int port, const char *headers, const char *body, hc_resp *r)
{
    return treq(port, "POST", "/v1/chat/completions", headers, body, r);
}

/* Frames of an SSE body: split on blank lines; returns the count (frames[i] owned). */
static int sse_frames(const char *body, char **frames, int max)
{
    int n = 0;
    const char *p = body;
    while (*p && n < max) {
        const char *e = strstr(p, "\n\n");
        if (!e)
            TEST_FAIL_("unterminated SSE frame: %s", p);
        frames[n++] = rt_xstrndup(p, (size_t)(e - p));
        p = e + 2;
    }
    return n;
}

static cJSON *frame_json(const char *frame)
{
    if (strncmp(frame, "data: ", 6) != 0)
        TEST_FAIL_("not a data frame: %s", frame);
    cJSON *j = cJSON_Parse(frame + 6);
    if (!j)
        TEST_FAIL_("data is not JSON: %s", frame);
    return j;
}

/* ============================================================ tests */

TEST(health_models_and_announcement)
{
    tenv e;
    tenv_init(&e, true);
    tenv_server_key(&e, TEST_KEY);
    const gwd_rec *up = gwd_get(e.gw, GWD_UP, 0);
    ASSERT_STR_EQ("api_server", up->platform);
    ASSERT(up->caps.api && up->caps.streams && up->caps.progress);
    ASSERT_EQ(0, up->caps.max_message);

    hc_resp r;
    const char *paths[] = {"/health", "/v1/health"};
    for (int i = 0; i < 2; i++) { /* no auth needed */
        ASSERT_OK(treq(e.port, "GET", paths[i], NULL, NULL, &r));
        ASSERT_EQ(200, r.status);
        ASSERT_STR_EQ("{\"status\":\"ok\",\"platform\":\"hermes-agent\"}", r.body);
        ASSERT_STR_CONTAINS(hdr(&r, "Content-Type"), "application/json");
        ASSERT_STR_EQ("nosniff", hdr(&r, "X-Content-Type-Options"));
        ASSERT_STR_EQ("no-referrer", hdr(&r, "Referrer-Policy"));
        hc_resp_free(&r);
    }
    ASSERT_OK(treq(e.port, "GET", "/health/detailed", NULL, NULL, &r));
    ASSERT_EQ(200, r.status);
    cJSON *j = json_of(&r);
    ASSERT_STR_EQ("ok", jstr(j, "status"));
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(j, "gateway_state"))); /* no home: basics */
    ASSERT_EQ(getpid(), (int)jnum(j, "pid"));
    cJSON_Delete(j);
    hc_resp_free(&r);

    ASSERT_OK(treq(e.port, "GET", "/v1/models", NULL, NULL, &r));
    expect_error(&r, 401, "Invalid API key", "invalid_api_key");
    hc_resp_free(&r);
    ASSERT_OK(treq(e.port, "GET", "/v1/models", AUTH, NULL, &r));
    ASSERT_EQ(200, r.status);
    j = json_of(&r);
    ASSERT_STR_EQ("list", jstr(j, "object"));
    ASSERT_STR_EQ("hermes-test", jstr(j, "data.0.id"));
    ASSERT_STR_EQ("model", jstr(j, "data.0.object"));
    ASSERT_STR_EQ("hermes", jstr(j, "data.0.owned_by"));
    ASSERT_STR_EQ("hermes-test", jstr(j, "data.0.root"));
    ASSERT_GT(jnum(j, "data.0.created"), 1.7e9);
    cJSON_Delete(j);
    hc_resp_free(&r);

    ASSERT_OK(treq(e.port, "POST", "/v1/models", AUTH, "{}", &r));
    expect_error(&r, 405, "Method not allowed", NULL);
    hc_resp_free(&r);
    ASSERT_OK(treq(e.port, "POST", "/v1/responses", AUTH, "{}", &r));
    expect_error(&r, 501, "/v1/responses is not implemented by this server yet", "not_implemented");
    hc_resp_free(&r);
    ASSERT_OK(treq(e.port, "GET", "/api/jobs", AUTH, NULL, &r));
    ASSERT_EQ(501, r.status);
    hc_resp_free(&r);
    ASSERT_OK(treq(e.port, "GET", "/nowhere", AUTH, NULL, &r));
    expect_error(&r, 404, "Not found", "not_found");
    hc_resp_free(&r);
    tenv_fini(&e);
}

TEST(health_detailed_reads_the_runtime_status_file)
{
    const char *home = test_tmpdir();
    char path[512];
    snprintf(path, sizeof(path), "%s/gateway_state.json", home);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs("{\"pid\": 1, \"gateway_state\": \"running\", \"exit_reason\": null, "
          "\"active_agents\": 3, \"platforms\": {\"matrix\": {\"state\": \"connected\"}}, "
          "\"updated_at\": \"2026-11-21T10:00:00Z\"}",
          f);
    fclose(f);
    tenv e;
    tenv_init(&e, true);
    api_server_opts o = {.hermes_home = home};
    ASSERT_OK(tenv_server(&e, &o, NULL, 0));
    hc_resp r;
    ASSERT_OK(treq(e.port, "GET", "/health/detailed", NULL, NULL, &r));
    ASSERT_EQ(200, r.status);
    cJSON *j = json_of(&r);
    ASSERT_STR_EQ("running", jstr(j, "gateway_state"));
    ASSERT_STR_EQ("connected", jstr(j, "platforms.matrix.state"));
    ASSERT_EQ(3, (int)jnum(j, "active_agents"));
    ASSERT_STR_EQ("2026-11-21T10:00:00Z", jstr(j, "updated_at"));
    ASSERT_EQ(getpid(), (int)jnum(j, "pid")); /* ours, not the file's */
    cJSON_Delete(j);
    hc_resp_free(&r);
    tenv_fini(&e);
}

TEST(non_streamed_completion)
{
    tenv e;
    tenv_init(&e, true);
    tenv_server_key(&e, TEST_KEY);
    hc_resp r;
    const char *body =
        "{\"model\":\"my-model\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"Be kind.\"}]},"
        "{\"role\":\"user\",\"content\":\"hello world\"}]}";
    ASSERT_OK(post_chat(e.port, AUTH, body, &r));
    ASSERT_EQ(200, r.status);
    char sid[32];
    expected_sid("Be brief.\nBe kind.", "hello world", sid);
    ASSERT_STR_EQ(sid, hdr(&r, "X-Hermes-Session-Id"));
    ASSERT_STR_EQ("nosniff", hdr(&r, "X-Content-Type-Options"));
    cJSON *j = json_of(&r);
    const char *id = jstr(j, "id");
    ASSERT_NOT_NULL(id);
    ASSERT_EQ(0, strncmp(id, "chatcmpl-", 9));
    ASSERT_EQ(9 + 29, (int)strlen(id));
    ASSERT_STR_EQ("chat.completion", jstr(j, "object"));
    ASSERT_STR_EQ("my-model", jstr(j, "model")); /* echoed */
    ASSERT_STR_EQ("assistant", jstr(j, "choices.0.message.role"));
    ASSERT_STR_EQ("Echo: hello world", jstr(j, "choices.0.message.content"));
    ASSERT_STR_EQ("stop", jstr(j, "choices.0.finish_reason"));
    ASSERT_EQ(11, (int)jnum(j, "usage.prompt_tokens"));
    ASSERT_EQ(7, (int)jnum(j, "usage.completion_tokens"));
    ASSERT_EQ(18, (int)jnum(j, "usage.total_tokens"));
    cJSON_Delete(j);
    hc_resp_free(&r);

    const gwd_rec *ev = gwd_get(e.gw, GWD_EVENT, 0);
    ASSERT_STR_EQ("api_server", ev->platform);
    ASSERT_STR_EQ("dm", ev->chat_type);
    ASSERT_STR_EQ(sid, ev->chat_id);
    ASSERT_STR_EQ(sid, ev->session_id);
    ASSERT_STR_EQ("api", ev->user_id);
    ASSERT_STR_EQ("hello world", ev->text);
    ASSERT_STR_EQ("Be brief.\nBe kind.", ev->ephemeral);
    ASSERT_NULL(ev->history);
    ASSERT(ev->internal);
    ASSERT_NE(0, ev->request);
    ASSERT_EQ(0, strncmp(ev->message_id, "chatcmpl-", 9));
    ASSERT_EQ(api_server_ref(e.srv), ev->adapter);
    tenv_fini(&e);
}

TEST(streamed_completion_sse_framing)
{
    tenv e;
    tenv_init(&e, true);
    tenv_server_key(&e, TEST_KEY);
    hc_resp r;
    ASSERT_OK(post_chat(e.port, AUTH,
                        "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi "
                        "there\"}]}",
                        &r));
    ASSERT_EQ(200, r.status);
    ASSERT_STR_EQ("text/event-stream", hdr(&r, "Content-Type"));
    ASSERT_STR_EQ("no-cache", hdr(&r, "Cache-Control"));
    ASSERT_STR_EQ("no", hdr(&r, "X-Accel-Buffering"));
    ASSERT_STR_EQ("nosniff", hdr(&r, "X-Content-Type-Options"));
    char sid[32];
    expected_sid("", "hi there", sid);
    ASSERT_STR_EQ(sid, hdr(&r, "X-Hermes-Session-Id"));

    char *f[32];
    int n = sse_frames(r.body, f, 32);
    /* role, "Echo: ", progress event, "hi there", final, [DONE] */
    if (n != 6)
        TEST_FAIL_("%d frames: %s", n, r.body);
    cJSON *j = frame_json(f[0]);
    const char *id = jstr(j, "id");
    ASSERT_EQ(0, strncmp(id, "chatcmpl-", 9));
    char idc[64];
    rt_strlcpy(idc, id, sizeof(idc));
    ASSERT_STR_EQ("chat.completion.chunk", jstr(j, "object"));
    ASSERT_STR_EQ("hermes-test", jstr(j, "model"));
    ASSERT_STR_EQ("assistant", jstr(j, "choices.0.delta.role"));
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "finish_reason")));
    cJSON_Delete(j);
    j = frame_json(f[1]);
    ASSERT_STR_EQ(idc, jstr(j, "id"));
    ASSERT_STR_EQ("Echo: ", jstr(j, "choices.0.delta.content"));
    cJSON_Delete(j);
    /* tool progress as its own event; "_thinking" and the unstructured line are not sent */
    ASSERT_STR_EQ("event: hermes.tool.progress\n"
                  "data: {\"tool\":\"terminal\",\"emoji\":\"💻\",\"label\":\"ls -la\"}",
                  f[2]);
    j = frame_json(f[3]);
    ASSERT_STR_EQ("hi there", jstr(j, "choices.0.delta.content"));
    cJSON_Delete(j);
    j = frame_json(f[4]);
    ASSERT_STR_EQ("stop", jstr(j, "choices.0.finish_reason"));
    ASSERT_NOT_NULL(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "delta"));
    ASSERT_NULL(jstr(j, "choices.0.delta.content"));
    ASSERT_EQ(11, (int)jnum(j, "usage.prompt_tokens"));
    ASSERT_EQ(7, (int)jnum(j, "usage.completion_tokens"));
    ASSERT_EQ(18, (int)jnum(j, "usage.total_tokens"));
    cJSON_Delete(j);
    ASSERT_STR_EQ("data: [DONE]", f[5]);
    for (int i = 0; i < n; i++)
        rt_free(f[i]);
    hc_resp_free(&r);
    tenv_fini(&e);
}

TEST(streamed_failure_and_final_text_without_deltas)
{
    tenv e;
    tenv_init(&e, true);
    tenv_server_key(&e, NULL);
    hc_resp r;
    ASSERT_OK(post_chat(e.port, NULL,
                        "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"final "
                        "please\"}]}",
                        &r));
    ASSERT_EQ(200, r.status);
    ASSERT_STR_CONTAINS(r.body, "\"delta\":{\"content\":\"Final only\"}");
    ASSERT_STR_CONTAINS(r.body, "data: [DONE]\n\n");
    hc_resp_free(&r);
    ASSERT_OK(post_chat(e.port, NULL,
                        "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"fail "
                        "now\"}]}",
                        &r));
    ASSERT_EQ(200, r.status);
    ASSERT_STR_CONTAINS(r.body, "\"delta\":{\"content\":\"⚠️ boom\"}");
    ASSERT_STR_CONTAINS(r.body, "\"finish_reason\":\"stop\"");
    hc_resp_free(&r);
    /* not streamed: a failed turn without an answer is a 500 with the error text */
    ASSERT_OK(post_chat(e.port, NULL,
                        "{\"messages\":[{\"role\":\"user\",\"content\":\"fail now\"}]}", &r));
    expect_error(&r, 500, "⚠️ boom", NULL);
    hc_resp_free(&r);
    ASSERT_OK(
        post_chat(e.port, NULL, "{\"messages\":[{\"role\":\"user\",\"content\":\"final\"}]}", &r));
    ASSERT_EQ(200, r.status);
    ASSERT_STR_CONTAINS(r.body, "\"content\":\"Final only\"");
    hc_resp_free(&r);
    tenv_fini(&e);
}

TEST(derived_session_id_and_history)
{
    tenv e;
    tenv_init(&e, true);
    tenv_server_key(&e, TEST_KEY);
    hc_resp r;
    const char *body =
        "{\"messages\":["
        "{\"role\":\"system\",\"content\":\"S\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"first\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://x/y.png\"}},"
        "\"second\",[{\"type\":\" TEXT \",\"text\":\"nested\"}]]},"
        "{\"role\":\"assistant\",\"content\":\"answer\"},"
        "{\"role\":\"tool\",\"content\":\"ignored\"},"
        "{\"role\":\"user\",\"content\":\"again\"}]}";
    ASSERT_OK(post_chat(e.port, AUTH, body, &r));
    ASSERT_EQ(200, r.status);
    char sid[32];
    expected_sid("S", "first\nsecond\nnested", sid);
    ASSERT_STR_EQ(sid, hdr(&r, "X-Hermes-Session-Id"));
    hc_resp_free(&r);
    const gwd_rec *ev = gwd_get(e.gw, GWD_EVENT, 0);
    ASSERT_STR_EQ(sid, ev->session_id);
    ASSERT_STR_EQ("again", ev->text);
    ASSERT_STR_EQ("[{\"role\":\"user\",\"content\":\"first\\nsecond\\nnested\"},"
                  "{\"role\":\"assistant\",\"content\":\"answer\"}]",
                  ev->history);
    /* the same conversation one turn later keeps its id */
    const char *later = "{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                        "{\"role\":\"user\",\"content\":\"first\\nsecond\\nnested\"},"
                        "{\"role\":\"assistant\",\"content\":\"x\"},"
                        "{\"role\":\"user\",\"content\":\"more\"}]}";
    ASSERT_OK(post_chat(e.port, AUTH, later, &r));
    ASSERT_STR_EQ(sid, hdr(&r, "X-Hermes-Session-Id"));
    hc_resp_free(&r);
    tenv_fini(&e);
}

TEST(session_header_rules)
{
    tenv e;
    tenv_init(&e, true);
    tenv_server_key(&e, NULL);
    hc_resp r;
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    ASSERT_OK(post_chat(e.port, "X-Hermes-Session-Id: 20260101_000000_abcdef\r\n", body, &r));
    expect_error(&r, 403,
                 "Session continuation requires API key authentication. Configure "
                 "API_SERVER_KEY to enable this feature.",
                 NULL);
    hc_resp_free(&r);
    ASSERT_EQ(0, gwd_count(e.gw, GWD_EVENT));
    tenv_fini(&e);

    tenv_init(&e, true);
    tenv_server_key(&e, TEST_KEY);
    ASSERT_OK(post_chat(e.port, AUTH "X-Hermes-Session-Id:  my-session-1 \r\n",
                        "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
                        "{\"role\":\"assistant\",\"content\":\"b\"},"
                        "{\"role\":\"user\",\"content\":\"c\"}]}",
                        &r));
    ASSERT_EQ(200, r.status);
    ASSERT_STR_EQ("my-session-1", hdr(&r, "X-Hermes-Session-Id"));
    hc_resp_free(&r);
    const gwd_rec *ev = gwd_get(e.gw, GWD_EVENT, 0);
    ASSERT_STR_EQ("my-session-1", ev->session_id);
    ASSERT_STR_EQ("my-session-1", ev->chat_id);
    ASSERT_NULL(ev->history); /* the session's own history is used */
    ASSERT_STR_EQ("c", ev->text);
    /* a control character (CR, LF and NUL cannot even cross HTTP) */
    ASSERT_OK(post_chat(e.port, AUTH "X-Hermes-Session-Id: bad\x01id\r\n", body, &r));
    ASSERT_EQ(400, r.status);
    hc_resp_free(&r);
    char longsid[600]; /* a value of 431 characters: over the 256 allowed */
    memset(longsid, 'a', sizeof(longsid));
    memcpy(longsid, AUTH "X-Hermes-Session-Id: ", strlen(AUTH "X-Hermes-Session-Id: "));
    memcpy(longsid + 500, "\r\n", 3);
    ASSERT_OK(post_chat(e.port, longsid, body, &r));
    expect_error(&r, 400, "Invalid session ID", NULL);
    hc_resp_free(&r);
    ASSERT_FALSE(api__session_id_valid("a\rb"));
    ASSERT_FALSE(api__session_id_valid("a\nb"));
    ASSERT_FALSE(api__session_id_valid(""));
    ASSERT_TRUE(api__session_id_valid("api-0123456789abcdef"));
    ASSERT_EQ(1, gwd_count(e.gw, GWD_EVENT));
    tenv_fini(&e);
}

TEST(auth_rules)
{
    tenv e;
    tenv_init(&e, true);
    tenv_server_key(&e, TEST_KEY);
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    const char *bad[] = {NULL,
                         "Authorization: Bearer wrong\r\n",
                         "Authorization: Bearer " TEST_KEY "x\r\n",
                         "Authorization: Bearer sk-test-0123456789abcdeX\r\n", /* same length */
                         "Authorization: Basic " TEST_KEY "\r\n",
                         "Authorization: " TEST_KEY "\r\n",
                         "Authorization: Bearer \r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hc_resp r;
        ASSERT_OK(post_chat(e.port, bad[i], body, &r));
        ASSERT_STR_EQ("{\"error\":{\"message\":\"Invalid API key\",\"type\":"
                      "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}",
                      r.body);
        expect_error(&r, 401, "Invalid API key", "invalid_api_key");
        hc_resp_free(&r);
    }
    ASSERT_EQ(0, gwd_count(e.gw, GWD_EVENT));
    hc_resp r;
    ASSERT_OK(post_chat(e.port, "Authorization: bearer   " TEST_KEY "  \r\n", body, &r));
    ASSERT_EQ(200, r.status);
    hc_resp_free(&r);
    tenv_fini(&e);

    /* the check itself: digests of equal length, no early exit, key never stored */
    api_server_opts o = {.key = TEST_KEY};
    api_cfg c;
    api__cfg_init(&c, &o);
    ASSERT_TRUE(c.has_key);
    ASSERT_TRUE(api__auth_ok(&c, "Bearer " TEST_KEY));
    ASSERT_FALSE(api__auth_ok(&c, "Bearer sk-test"));
    ASSERT_FALSE(api__auth_ok(&c, NULL));
    ASSERT_FALSE(api__auth_ok(&c, "Bearer"));
    api__cfg_fini(&c);
    api_server_opts none = {0};
    api__cfg_init(&c, &none);
    ASSERT_TRUE(api__auth_ok(&c, NULL)); /* no key: loopback accepts everything */
    api__cfg_fini(&c);
}

TEST(loopback_rule_and_port_check)
{
    ASSERT_FALSE(api__is_network_accessible("127.0.0.1"));
    ASSERT_FALSE(api__is_network_accessible("127.0.0.2"));
    ASSERT_FALSE(api__is_network_accessible("::1"));
    ASSERT_FALSE(api__is_network_accessible("::ffff:127.0.0.1"));
    ASSERT_FALSE(api__is_network_accessible("localhost"));
    ASSERT_TRUE(api__is_network_accessible("0.0.0.0"));
    ASSERT_TRUE(api__is_network_accessible("::"));
    ASSERT_TRUE(api__is_network_accessible("10.1.2.3"));
    ASSERT_TRUE(api__is_network_accessible("no-such-host.invalid"));
    ASSERT_FALSE(api__key_usable("changeme"));
    ASSERT_FALSE(api__key_usable("short12"));
    ASSERT_TRUE(api__key_usable("longenough"));

    tenv e;
    tenv_init(&e, true);
    char err[512];
    api_server_opts o = {.host = "0.0.0.0"};
    ASSERT_EQ(-EPERM, tenv_server(&e, &o, err, sizeof(err)));
    ASSERT_STR_EQ("Refusing to start: binding to 0.0.0.0 requires API_SERVER_KEY. Set "
                  "API_SERVER_KEY or use the default 127.0.0.1.",
                  err);
    o = (api_server_opts){.host = "::", .key = "changeme"};
    ASSERT_EQ(-EPERM, tenv_server(&e, &o, err, sizeof(err)));
    ASSERT_STR_EQ("Refusing to start: API_SERVER_KEY is set to a placeholder value. Generate a "
                  "real secret (e.g. `openssl rand -hex 32`) and set API_SERVER_KEY before "
                  "exposing the API server on ::.",
                  err);
    o = (api_server_opts){.host = "0.0.0.0", .key = "abc1234"};
    ASSERT_EQ(-EPERM, tenv_server(&e, &o, err, sizeof(err)));
    ASSERT_STR_CONTAINS(err, "placeholder");
    ASSERT_NULL(e.srv);

    /* something already listens on the port */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(listen(fd, 4));
    socklen_t sl = sizeof(a);
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &sl));
    int port = ntohs(a.sin_port);
    o = (api_server_opts){.port = port};
    ASSERT_EQ(-EADDRINUSE, tenv_server(&e, &o, err, sizeof(err)));
    char want[160];
    snprintf(want, sizeof(want),
             "Port %d already in use. Set a different port in config.yaml: "
             "platforms.api_server.port",
             port);
    ASSERT_STR_EQ(want, err);
    close(fd);
    o = (api_server_opts){.lws = NULL};
    ASSERT_EQ(-EINVAL, api_server_start(e.cx, &o, &e.srv, err, sizeof(err)));
    tenv_fini(&e);
}

TEST(body_limits)
{
    tenv e;
    tenv_init(&e, true);
    tenv_server_key(&e, NULL);
    size_t n = API_SERVER_MAX_BODY + 1;
    char *big = rt_xmalloc(n + 1);
    memset(big, ' ', n);
    big[n] = '\0';
    hc_resp r;
    ASSERT_OK(post_chat(e.port, NULL, big, &r));
    expect_error(&r, 413, "Request body too large.", "body_too_large");
    hc_resp_free(&r);
    rt_free(big);
    n = 2u << 20; /* over the HTTP server's own cap: refused before the actor */
    big = rt_xmalloc(n + 1);
    memset(big, ' ', n);
    big[n] = '\0';
    char *raw = rt_xasprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: "
                             "%zu\r\n\r\n",
                             n);
    ASSERT_OK(hc_roundtrip(e.port, raw, &r));
    ASSERT_EQ(413, r.status);
    hc_resp_free(&r);
    rt_free(raw);
    rt_free(big);
    ASSERT_OK(hc_roundtrip(e.port,
                           "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                           "Content-Length: 12abc\r\n\r\n",
                           &r));
    ASSERT_EQ(400, r.status);
    hc_resp_free(&r);
    ASSERT_EQ(0, gwd_count(e.gw, GWD_EVENT));
    tenv_fini(&e);
}

TEST(bad_requests_get_clear_errors)
{
    tenv e;
    tenv_init(&e, true);
    tenv_server_key(&e, NULL);
    struct {
        const char *body;
        const char *msg;
    } cases[] = {
        {"{\"messages\": [", "Invalid JSON in request body"},
        {"[1,2]", "Invalid JSON in request body"},
        {"", "Invalid JSON in request body"},
        {"{}", "Missing or invalid 'messages' field"},
        {"{\"messages\": []}", "Missing or invalid 'messages' field"},
        {"{\"messages\": \"hi\"}", "Missing or invalid 'messages' field"},
        {"{\"messages\": [{\"role\":\"system\",\"content\":\"only\"}]}",
         "No user message found in messages"},
        {"{\"messages\": [{\"role\":\"user\",\"content\":\"  \\n \"}]}",
         "No user message found in messages"},
        {"{\"messages\": [{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
         "No user message found in messages"},
        {"{\"messages\": [\"hi\"]}", "Each message must be an object with a role and content"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hc_resp r;
        ASSERT_OK(post_chat(e.port, NULL, cases[i].body, &r));
        expect_error(&r, 400, cases[i].msg, NULL);
        hc_resp_free(&r);
    }
    hc_resp r;
    ASSERT_OK(treq(e.port, "GET", "/v1/chat/completions", NULL, NULL, &r));
    expect_error(&r, 405, "Method not allowed", NULL);
    ASSERT_STR_EQ("POST", hdr(&r, "Allow"));
    hc_resp_free(&r);
    ASSERT_EQ(0, gwd_count(e.gw, GWD_EVENT));
    tenv_fini(&e);
}

TEST(content_normalization_limits)
{
    /* 64 KB per text (cut on a character boundary), 1000 parts, 10 levels */
    rt_buf out;
    rt_buf_init(&out, 1 << 20);
    size_t n = API__TEXT_MAX + 100;
    char *s = rt_xmalloc(n + 1);
    memset(s, 'a', n);
    memcpy(s + API__TEXT_MAX - 1, "é", 2); /* straddles the limit */
    s[n] = '\0';
    cJSON *str = cJSON_CreateString(s);
    api__normalize_content(str, &out);
    ASSERT_EQ(API__TEXT_MAX - 1, (int)out.len);
    cJSON_Delete(str);
    rt_free(s);

    rt_buf_reset(&out);
    cJSON *parts = cJSON_CreateArray();
    for (int i = 0; i < 1500; i++)
        cJSON_AddItemToArray(parts, cJSON_CreateString("x"));
    api__normalize_content(parts, &out);
    ASSERT_EQ(1000 * 2 - 1, (int)out.len); /* "x\nx\n…x" */
    cJSON_Delete(parts);

    rt_buf_reset(&out);
    cJSON *deep = cJSON_CreateString("deep");
    for (int i = 0; i < 12; i++) {
        cJSON *l = cJSON_CreateArray();
        cJSON_AddItemToArray(l, deep);
        deep = l;
    }
    api__normalize_content(deep, &out); /* deeper than 10 levels: dropped */
    ASSERT_EQ(0, (int)out.len);
    cJSON_Delete(deep);
    rt_buf_reset(&out);
    deep = cJSON_CreateString("deep");
    for (int i = 0; i < 10; i++) {
        cJSON *l = cJSON_CreateArray();
        cJSON_AddItemToArray(l, deep);
        deep = l;
    }
    api__normalize_content(deep, &out);
    ASSERT_STR_EQ("deep", rt_buf_cstr(&out));
    cJSON_Delete(deep);
    rt_buf_fini(&out);
}

TEST(cors_rules)
{
    tenv e;
    tenv_init(&e, true);
    api_server_opts o = {.cors_origins = " https://app.example , http://localhost:3000"};
    ASSERT_OK(tenv_server(&e, &o, NULL, 0));
    hc_resp r;
    ASSERT_OK(treq(e.port, "GET", "/health", "Origin: https://app.example\r\n", NULL, &r));
    ASSERT_EQ(200, r.status);
    ASSERT_STR_EQ("https://app.example", hdr(&r, "Access-Control-Allow-Origin"));
    ASSERT_STR_EQ("Origin", hdr(&r, "Vary"));
    ASSERT_STR_EQ("GET, POST, DELETE, OPTIONS", hdr(&r, "Access-Control-Allow-Methods"));
    ASSERT_STR_EQ("Authorization, Content-Type, Idempotency-Key",
                  hdr(&r, "Access-Control-Allow-Headers"));
    ASSERT_STR_EQ("600", hdr(&r, "Access-Control-Max-Age"));
    hc_resp_free(&r);
    ASSERT_OK(treq(e.port, "GET", "/health", "Origin: https://evil.example\r\n", NULL, &r));
    ASSERT_EQ(403, r.status);
    ASSERT_NULL(hdr(&r, "Access-Control-Allow-Origin"));
    hc_resp_free(&r);
    ASSERT_OK(treq(e.port, "OPTIONS", "/v1/chat/completions",
                   "Origin: http://localhost:3000\r\nAccess-Control-Request-Method: POST\r\n", NULL,
                   &r));
    ASSERT_EQ(200, r.status);
    ASSERT_STR_EQ("http://localhost:3000", hdr(&r, "Access-Control-Allow-Origin"));
    hc_resp_free(&r);
    ASSERT_OK(treq(e.port, "OPTIONS", "/v1/chat/completions", NULL, NULL, &r));
    ASSERT_EQ(403, r.status); /* a preflight without an origin */
    hc_resp_free(&r);
    ASSERT_OK(treq(e.port, "OPTIONS", "/v1/chat/completions", "Origin: https://evil.example\r\n",
                   NULL, &r));
    ASSERT_EQ(403, r.status);
    hc_resp_free(&r);
    /* streamed answers carry the CORS headers in their head */
    ASSERT_OK(post_chat(e.port, "Origin: https://app.example\r\n",
                        "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                        &r));
    ASSERT_EQ(200, r.status);
    ASSERT_STR_EQ("https://app.example", hdr(&r, "Access-Control-Allow-Origin"));
    hc_resp_free(&r);
    tenv_fini(&e);

    tenv_init(&e, true);
    o = (api_server_opts){.cors_origins = "*"};
    ASSERT_OK(tenv_server(&e, &o, NULL, 0));
    ASSERT_OK(treq(e.port, "GET", "/health", "Origin: https://any.example\r\n", NULL, &r));
    ASSERT_EQ(200, r.status);
    ASSERT_STR_EQ("*", hdr(&r, "Access-Control-Allow-Origin"));
    ASSERT_NULL(hdr(&r, "Vary"));
    hc_resp_free(&r);
    tenv_fini(&e);

    tenv_init(&e, true); /* no origins configured: browsers are refused */
    tenv_server_key(&e, NULL);
    ASSERT_OK(treq(e.port, "GET", "/health", "Origin: http://localhost:3000\r\n", NULL, &r));
    ASSERT_EQ(403, r.status);
    hc_resp_free(&r);
    tenv_fini(&e);
}

/* Poll with requests that fail fast until the server is full (429): proves that requests
 * sent before have reached the actor. Bounded. */
static void wait_until_full(int port)
{
    for (int i = 0; i < 5000; i++) {
        hc_resp r;
        ASSERT_OK(post_chat(port, NULL, "not json", &r));
        int st = r.status;
        hc_resp_free(&r);
        if (st == 429)
            return;
        ASSERT_EQ(400, st);
    }
    TEST_FAIL_("the server never filled up");
}

TEST(idempotency_replay)
{
    tenv e;
    tenv_init(&e, true);
    api_server_opts o = {.max_inflight = 2};
    ASSERT_OK(tenv_server(&e, &o, NULL, 0));
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"once\"}]}";
    hc_resp a, b;
    ASSERT_OK(post_chat(e.port, "Idempotency-Key: k1\r\n", body, &a));
    ASSERT_EQ(200, a.status);
    ASSERT_OK(post_chat(e.port, "Idempotency-Key: k1\r\n", body, &b));
    ASSERT_EQ(200, b.status);
    ASSERT_STR_EQ(a.body, b.body); /* the same completion id: replayed */
    ASSERT_STR_EQ(hdr(&a, "X-Hermes-Session-Id"), hdr(&b, "X-Hermes-Session-Id"));
    hc_resp_free(&b);
    ASSERT_EQ(1, gwd_count(e.gw, GWD_EVENT));
    /* another body under the same key runs; so does a request without the key */
    ASSERT_OK(post_chat(e.port, "Idempotency-Key: k1\r\n",
                        "{\"messages\":[{\"role\":\"user\",\"content\":\"twice\"}]}", &b));
    ASSERT_EQ(200, b.status);
    hc_resp_free(&b);
    ASSERT_OK(post_chat(e.port, NULL, body, &b));
    ASSERT_NE(0, strcmp(a.body, b.body));
    hc_resp_free(&b);
    ASSERT_EQ(3, gwd_count(e.gw, GWD_EVENT));
    ASSERT_OK(post_chat(e.port, "Idempotency-Key: k2\r\n", body, &b));
    hc_resp_free(&b);
    ASSERT_EQ(4, gwd_count(e.gw, GWD_EVENT));
    /* past 300 s the answer is computed again */
    tenv_advance_ms(&e, 301 * 1000);
    ASSERT_OK(post_chat(e.port, "Idempotency-Key: k2\r\n", body, &b));
    ASSERT_EQ(200, b.status);
    hc_resp_free(&b);
    ASSERT_EQ(5, gwd_count(e.gw, GWD_EVENT));
    hc_resp_free(&a);

    /* a twin arriving while the first is running waits for it */
    const char *slow = "{\"messages\":[{\"role\":\"user\",\"content\":\"silent twin\"}]}";
    hc_conn c1, c2;
    ASSERT_OK(hc_open(&c1, e.port, 0));
    ASSERT_OK(hc_open(&c2, e.port, 0));
    ASSERT_OK(treq_send(&c1, "POST", "/v1/chat/completions", "Idempotency-Key: k3\r\n", slow));
    ASSERT_OK(gwd_wait(e.gw, GWD_EVENT, 6, WAIT_MS));
    ASSERT_OK(treq_send(&c2, "POST", "/v1/chat/completions", "Idempotency-Key: k3\r\n", slow));
    wait_until_full(e.port); /* the twin waits, and counts */
    gwd_release(e.gw, e.cx);
    ASSERT_OK(hc_read(&c1, &a, false));
    ASSERT_OK(hc_read(&c2, &b, false));
    ASSERT_EQ(200, a.status);
    ASSERT_STR_EQ(a.body, b.body);
    ASSERT_STR_CONTAINS(a.body, "\"content\":\"released\"");
    ASSERT_EQ(6, gwd_count(e.gw, GWD_EVENT));
    hc_resp_free(&a);
    hc_resp_free(&b);
    hc_close(&c1);
    hc_close(&c2);
    tenv_fini(&e);
}

TEST(client_disconnect_cancels_at_the_gateway)
{
    tenv e;
    tenv_init(&e, true);
    tenv_server_key(&e, TEST_KEY);
    hc_conn c;
    ASSERT_OK(hc_open(&c, e.port, 0));
    ASSERT_OK(treq_send(&c, "POST", "/v1/chat/completions", AUTH,
                        "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hang "
                        "on\"}]}"));
    hc_resp r;
    ASSERT_OK(hc_read_head(&c, &r));
    ASSERT_EQ(200, r.status);
    hc_resp_free(&r);
    char acc[8192] = "";
    ASSERT_OK(tread_until(&c, "partial", acc, sizeof(acc)));
    hc_close(&c);
    ASSERT_OK(gwd_wait(e.gw, GWD_CANCEL, 1, WAIT_MS));
    const gwd_rec *ev = gwd_get(e.gw, GWD_EVENT, 0);
    const gwd_rec *cn = gwd_get(e.gw, GWD_CANCEL, 0);
    ASSERT_STR_EQ("api_server", cn->platform);
    ASSERT_EQ(ev->request, cn->request);
    ASSERT_STR_EQ(ev->session_id, cn->session_id);
    ASSERT_STR_EQ(ev->chat_id, cn->chat_id);
    ASSERT_EQ(api_server_ref(e.srv), cn->adapter);

    /* not streamed, no Idempotency-Key: cancelled too */
    ASSERT_OK(hc_open(&c, e.port, 0));
    ASSERT_OK(treq_send(&c, "POST", "/v1/chat/completions", AUTH,
                        "{\"messages\":[{\"role\":\"user\",\"content\":\"silent\"}]}"));
    ASSERT_OK(gwd_wait(e.gw, GWD_EVENT, 2, WAIT_MS));
    hc_close(&c);
    ASSERT_OK(gwd_wait(e.gw, GWD_CANCEL, 2, WAIT_MS));
    ASSERT_EQ(gwd_get(e.gw, GWD_EVENT, 1)->request, gwd_get(e.gw, GWD_CANCEL, 1)->request);
    tenv_fini(&e);
}

TEST(in_flight_limit)
{
    tenv e;
    tenv_init(&e, true);
    api_server_opts o = {.max_inflight = 2};
    ASSERT_OK(tenv_server(&e, &o, NULL, 0));
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"silent\"}]}";
    hc_conn c1, c2;
    ASSERT_OK(hc_open(&c1, e.port, 0));
    ASSERT_OK(hc_open(&c2, e.port, 0));
    ASSERT_OK(treq_send(&c1, "POST", "/v1/chat/completions", NULL, body));
    ASSERT_OK(treq_send(&c2, "POST", "/v1/chat/completions", NULL, body));
    ASSERT_OK(gwd_wait(e.gw, GWD_EVENT, 2, WAIT_MS));
    hc_resp r;
    ASSERT_OK(post_chat(e.port, NULL, body, &r));
    expect_error(&r, 429, "Too many requests in flight (limit 2); retry later",
                 "rate_limit_exceeded");
    ASSERT_STR_EQ("1", hdr(&r, "Retry-After"));
    hc_resp_free(&r);
    ASSERT_OK(treq(e.port, "GET", "/health", NULL, NULL, &r)); /* not counted */
    ASSERT_EQ(200, r.status);
    hc_resp_free(&r);
    gwd_release(e.gw, e.cx);
    ASSERT_OK(hc_read(&c1, &r, false));
    ASSERT_EQ(200, r.status);
    hc_resp_free(&r);
    ASSERT_OK(hc_read(&c2, &r, false));
    ASSERT_EQ(200, r.status);
    hc_resp_free(&r);
    ASSERT_OK(
        post_chat(e.port, NULL, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r));
    ASSERT_EQ(200, r.status);
    hc_resp_free(&r);
    hc_close(&c1);
    hc_close(&c2);

    /* cancelled requests keep their slots until the gateway ends their turns */
    ASSERT_OK(hc_open(&c1, e.port, 0));
    ASSERT_OK(hc_open(&c2, e.port, 0));
    ASSERT_OK(treq_send(&c1, "POST", "/v1/chat/completions", NULL, body));
    ASSERT_OK(treq_send(&c2, "POST", "/v1/chat/completions", NULL,
                        "{\"messages\":[{\"role\":\"user\",\"content\":\"deaf\"}]}"));
    ASSERT_OK(gwd_wait(e.gw, GWD_EVENT, 5, WAIT_MS));
    hc_close(&c1);
    hc_close(&c2);
    ASSERT_OK(gwd_wait(e.gw, GWD_CANCEL, 2, WAIT_MS));
    ASSERT_OK(rt_wait_quiescent(e.rt, WAIT_MS)); /* the double ended the first one */
    ASSERT_OK(
        post_chat(e.port, NULL, "{\"messages\":[{\"role\":\"user\",\"content\":\"y\"}]}", &r));
    ASSERT_EQ(200, r.status);
    hc_resp_free(&r);
    /* the deaf one still holds its slot: one more fills the server... */
    ASSERT_OK(hc_open(&c1, e.port, 0));
    ASSERT_OK(treq_send(&c1, "POST", "/v1/chat/completions", NULL, body));
    wait_until_full(e.port);
    /* ...until the grace runs out without a turn end */
    tenv_advance_ms(&e, 30 * 1000);
    ASSERT_OK(rt_wait_quiescent(e.rt, WAIT_MS));
    ASSERT_OK(post_chat(e.port, NULL, "not json", &r));
    ASSERT_EQ(400, r.status);
    hc_resp_free(&r);
    gwd_release(e.gw, e.cx);
    ASSERT_OK(hc_read(&c1, &r, false));
    ASSERT_EQ(200, r.status);
    hc_resp_free(&r);
    hc_close(&c1);
    tenv_fini(&e);
}

TEST(keepalive_after_silence)
{
    tenv e;
    tenv_init(&e, true);
    tenv_server_key(&e, NULL);
    hc_conn c;
    ASSERT_OK(hc_open(&c, e.port, 0));
    ASSERT_OK(treq_send(&c, "POST", "/v1/chat/completions", NULL,
                        "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"silent "
                        "please\"}]}"));
    hc_resp r;
    ASSERT_OK(hc_read_head(&c, &r));
    ASSERT_EQ(200, r.status);
    hc_resp_free(&r);
    char acc[16384] = "";
    ASSERT_OK(tread_until(&c, "\"role\":\"assistant\"", acc, sizeof(acc)));
    ASSERT_OK(gwd_wait(e.gw, GWD_EVENT, 1, WAIT_MS));
    ASSERT_NULL(strstr(acc, "keepalive"));
    tenv_advance_ms(&e, 29 * 1000);
    ASSERT_OK(rt_wait_quiescent(e.rt, WAIT_MS));
    tenv_advance_ms(&e, 1000);
    ASSERT_OK(tread_until(&c, ": keepalive\n\n", acc, sizeof(acc)));
    acc[0] = '\0'; /* nothing can follow the first keep-alive before the clock moves */
    ASSERT_OK(rt_wait_quiescent(e.rt, WAIT_MS)); /* the next one is armed */
    tenv_advance_ms(&e, 30 * 1000);
    ASSERT_OK(tread_until(&c, ": keepalive\n\n", acc, sizeof(acc)));
    gwd_release(e.gw, e.cx);
    ASSERT_OK(tread_until(&c, "data: [DONE]\n\n", acc, sizeof(acc)));
    ASSERT_STR_CONTAINS(acc, "\"content\":\"released\"");
    hc_close(&c);
    tenv_fini(&e);
}

TEST(no_gateway_is_503)
{
    tenv e;
    tenv_init(&e, false);
    tenv_server_key(&e, NULL);
    hc_resp r;
    ASSERT_OK(
        post_chat(e.port, NULL, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r));
    expect_error(&r, 503, "The gateway is not running", "gateway_unavailable");
    hc_resp_free(&r);
    tenv_fini(&e);
}

TEST(stopping_with_a_stream_open_cancels_it)
{
    tenv e;
    tenv_init(&e, true);
    tenv_server_key(&e, NULL);
    hc_conn c;
    ASSERT_OK(hc_open(&c, e.port, 0));
    ASSERT_OK(
        treq_send(&c, "POST", "/v1/chat/completions", NULL,
                  "{\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hang\"}]}"));
    char acc[8192] = "";
    ASSERT_OK(tread_until(&c, "partial", acc, sizeof(acc)));
    api_server_stop(e.cx, e.srv, 50);
    e.srv = NULL;
    ASSERT_OK(gwd_wait(e.gw, GWD_CANCEL, 1, WAIT_MS));
    ASSERT_OK(gwd_wait(e.gw, GWD_DOWN, 1, WAIT_MS));
    ASSERT_TRUE(hc_wait_closed(&c));
    hc_close(&c);
    tenv_fini(&e);
}

TEST(options_from_config)
{
    const char *home = test_tmpdir();
    const char *vars[] = {"API_SERVER_ENABLED", "API_SERVER_KEY",          "API_SERVER_HOST",
                          "API_SERVER_PORT",    "API_SERVER_CORS_ORIGINS", "API_SERVER_MODEL_NAME"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    int err = 0;
    hm_config *cfg = hm_config_load(home, 0, NULL, &err);
    ASSERT_NOT_NULL(cfg);
    api_server_opts o;
    char msg[256];
    ASSERT_EQ(0, api_server_opts_from_config(cfg, &o, msg, sizeof(msg)));
    ASSERT_STR_EQ("127.0.0.1", o.host);
    ASSERT_EQ(8642, o.port);
    ASSERT_NULL(o.key);
    api_server_opts_fini(&o);
    setenv("API_SERVER_ENABLED", "yes", 1);
    ASSERT_EQ(1, api_server_opts_from_config(cfg, &o, msg, sizeof(msg)));
    api_server_opts_fini(&o);
    unsetenv("API_SERVER_ENABLED");
    hm_config_unref(cfg);

    char path[512];
    snprintf(path, sizeof(path), "%s/config.yaml", home);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs("platforms:\n  api_server:\n    extra:\n      key: from-config-key\n"
          "      host: 127.0.0.2\n      port: 9000\n"
          "      cors_origins: [https://a.example, https://b.example]\n"
          "      model_name: my-hermes\n      max_concurrent: 5\n",
          f);
    fclose(f);
    cfg = hm_config_load(home, 0, NULL, &err);
    ASSERT_NOT_NULL(cfg);
    ASSERT_EQ(1, api_server_opts_from_config(cfg, &o, msg, sizeof(msg))); /* a key enables */
    ASSERT_STR_EQ("from-config-key", o.key);
    ASSERT_STR_EQ("127.0.0.2", o.host);
    ASSERT_EQ(9000, o.port);
    ASSERT_STR_EQ("https://a.example,https://b.example", o.cors_origins);
    ASSERT_STR_EQ("my-hermes", o.model_name);
    ASSERT_EQ(5, (int)o.max_inflight);
    ASSERT_STR_EQ(home, o.hermes_home);
    api_server_opts_fini(&o);
    setenv("API_SERVER_KEY", "env-key-wins", 1);
    setenv("API_SERVER_PORT", "8700", 1);
    ASSERT_EQ(1, api_server_opts_from_config(cfg, &o, msg, sizeof(msg)));
    ASSERT_STR_EQ("env-key-wins", o.key);
    ASSERT_EQ(8700, o.port);
    api_server_opts_fini(&o);
    setenv("API_SERVER_PORT", "eighty", 1);
    ASSERT_EQ(-EINVAL, api_server_opts_from_config(cfg, &o, msg, sizeof(msg)));
    ASSERT_STR_EQ("API server port must be a number from 1 to 65535 (got \"eighty\")", msg);
    api_server_opts_fini(&o);
    unsetenv("API_SERVER_KEY");
    unsetenv("API_SERVER_PORT");
    hm_config_unref(cfg);
}
