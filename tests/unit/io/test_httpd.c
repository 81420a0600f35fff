/*
 * The HTTP server: routing to actors (longest prefix, 404 without actors), body and header
 * caps (413, 431, 414), malformed and unsupported requests (400, 501, 505, 417), keep-alive
 * and pipelining, SSE streaming read by libcurl and by a raw client, a client leaving
 * mid-stream (GONE), request timeout (504 + GONE), graceful stop with requests in flight,
 * binding (127.0.0.1 by default, EADDRINUSE, EACCES, bad options) and shutdown.
 */
#include "rt_httpd.h"
#include "rt_lws.h"

#include "lws_httpc.h"
#include "lws_sink.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_timer.h"
#include "rt_util.h"
#include "test.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 10000

/* ============================================================ the handlers */

enum mode {
    M_ECHO,     /* 200 "method path?query body" with X-Req */
    M_SILENT,   /* never answers */
    M_SSE,      /* stream 3 events and end */
    M_SSE_OPEN, /* stream 1 event and keep the request */
    M_LATER,    /* answer 200 "late" after 150 ms (a timer to itself) */
};

enum { T_LATER = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 0x300) };

typedef struct later_msg {
    rt_msg hdr;
    uint64_t req;
} later_msg;

static void handler_hook(rt_ctx *cx, rt_msg *m, void *arg)
{
    enum mode mode = (enum mode)(intptr_t)arg;
    if (m->type == T_LATER) {
        ASSERT_OK(rt_httpd_reply(cx, ((later_msg *)m)->req, 200, NULL, "late", 4));
        return;
    }
    if (m->type != RT_HTTPD_MSG_REQUEST)
        return;
    rt_httpd_msg_request *r = (rt_httpd_msg_request *)m;
    switch (mode) {
    case M_ECHO: {
        char *body =
            rt_xasprintf("%s %s?%s %.*s", r->method, r->path, r->query, (int)r->body_len, r->body);
        char xreq[64];
        snprintf(xreq, sizeof(xreq), "X-Req: %llu", (unsigned long long)r->req);
        const char *hdrs[] = {"Content-Type: text/plain", xreq, NULL};
        ASSERT_OK(rt_httpd_reply(cx, r->req, 200, hdrs, body, strlen(body)));
        rt_free(body);
        break;
    }
    case M_SSE:
    case M_SSE_OPEN: {
        static const char *const hdrs[] = {"Content-Type: text/event-stream",
                                           "Cache-Control: no-cache", NULL};
        ASSERT_OK(rt_httpd_stream_begin(cx, r->req, 200, hdrs));
        ASSERT_OK(rt_httpd_stream_write(cx, r->req, "data: one\n\n", 11));
        if (mode == M_SSE_OPEN)
            break;
        ASSERT_OK(rt_httpd_stream_write(cx, r->req, "data: two\n\n", 11));
        ASSERT_OK(rt_httpd_stream_write(cx, r->req, "", 0)); /* ignored, not an end */
        ASSERT_OK(rt_httpd_stream_write(cx, r->req, "data: three\n\n", 13));
        ASSERT_OK(rt_httpd_stream_end(cx, r->req));
        break;
    }
    case M_LATER: {
        later_msg *l = RT_MSG_NEW(later_msg, T_LATER);
        l->req = r->req;
        rt_send_after(cx, rt_self(cx), &l->hdr, 150);
        break;
    }
    case M_SILENT: break;
    }
}

/* ============================================================ environment */

typedef struct env {
    rt_runtime *rt;
    rt_lws *l;
    rt_ctx *cx;
    sink *s;
    rt_httpd *h;
    int port;
} env;

static env setup_with(enum mode mode, rt_httpd_opts *o)
{
    env e;
    rt_options ro = {.workers = 2};
    e.rt = rt_runtime_new(&ro);
    int err = 0;
    e.l = rt_lws_start(e.rt, &err);
    ASSERT_NOT_NULL(e.l);
    e.cx = rt_ctx_external(e.rt);
    e.s = sink_new(e.rt, handler_hook, (void *)(intptr_t)mode);
    rt_httpd_route route = {"/", sink_ref(e.s)};
    rt_httpd_opts dflt = {0};
    if (!o)
        o = &dflt;
    if (!o->nroutes) {
        o->routes = &route;
        o->nroutes = 1;
    }
    e.h = rt_httpd_start(e.rt, o, &err);
    ASSERT_OK(err);
    ASSERT_NOT_NULL(e.h);
    e.port = rt_httpd_port(e.h);
    ASSERT_GT(e.port, 0);
    return e;
}

static env setup(enum mode mode)
{
    return setup_with(mode, NULL);
}

static void teardown(env *e)
{
    rt_httpd_stop(e->h, 1000);
    rt_lws_stop(e->l);
    ASSERT_OK(rt_wait_quiescent(e->rt, WAIT_MS));
    rt_runtime_free(e->rt);
    sink_free(e->s);
}

static int status_of(int port, const char *raw)
{
    hc_resp r;
    int rc = hc_roundtrip(port, raw, &r);
    int st = rc ? -1 : r.status;
    hc_resp_free(&r);
    return st;
}

/* ================================================================== tests */

TEST(routes_to_actors_by_longest_prefix)
{
    rt_runtime *rt = rt_runtime_new(NULL);
    rt_lws *l = rt_lws_start(rt, NULL);
    sink *a = sink_new(rt, handler_hook, (void *)(intptr_t)M_ECHO);
    sink *b = sink_new(rt, handler_hook, (void *)(intptr_t)M_ECHO);
    sink *c = sink_new(rt, handler_hook, (void *)(intptr_t)M_ECHO);
    rt_httpd_route routes[] = {
        {"/api", sink_ref(b)}, {"/", sink_ref(a)}, {"/api/v2/", sink_ref(c)}};
    rt_httpd_opts o = {.routes = routes, .nroutes = 3};
    int err;
    rt_httpd *h = rt_httpd_start(rt, &o, &err);
    ASSERT_NOT_NULL(h);
    int port = rt_httpd_port(h);

    hc_resp r;
    ASSERT_OK(
        hc_roundtrip(port, "GET /api/v2/x?k=v HTTP/1.1\r\nHost: t\r\nX-Custom: yes\r\n\r\n", &r));
    ASSERT_EQ(200, r.status);
    ASSERT_STR_EQ("GET /api/v2/x?k=v ", r.body);
    hc_resp_free(&r);
    ASSERT_EQ(1, sink_count(c, RT_HTTPD_MSG_REQUEST));
    sink_ev *ev = sink_get(c, RT_HTTPD_MSG_REQUEST, 0);
    ASSERT_STR_EQ("/api/v2/x", ev->path);
    ASSERT_STR_EQ("k=v", ev->query);
    ASSERT_STR_CONTAINS(ev->headers, "Host: t\n");
    ASSERT_STR_CONTAINS(ev->headers, "X-Custom: yes\n");
    ASSERT_STR_CONTAINS(ev->peer, "127.0.0.1:");

    ASSERT_EQ(200, status_of(port, "GET /api HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_EQ(200, status_of(port, "GET /api/v1 HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_EQ(200, status_of(port, "GET /apix HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_EQ(200, status_of(port, "GET /api/v2 HTTP/1.1\r\nHost: t\r\n\r\n")); /* not "/api/v2/" */
    ASSERT_OK(hc_roundtrip(port,
                           "POST /api?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n"
                           "hello world",
                           &r));
    ASSERT_STR_EQ("POST /api?x=1 hello world", r.body);
    hc_resp_free(&r);
    ASSERT_EQ(1, sink_count(c, RT_HTTPD_MSG_REQUEST));
    ASSERT_EQ(4, sink_count(b, RT_HTTPD_MSG_REQUEST));
    ASSERT_EQ(1, sink_count(a, RT_HTTPD_MSG_REQUEST));
    ASSERT_STR_EQ("/apix", sink_get(a, RT_HTTPD_MSG_REQUEST, 0)->path);
    ASSERT_STR_EQ("hello world", sink_get(b, RT_HTTPD_MSG_REQUEST, 3)->data);
    rt_httpd_stop(h, 1000);

    /* No route: 404 from the server itself. */
    rt_httpd_route only[] = {{"/api", sink_ref(b)}};
    rt_httpd_opts o2 = {.routes = only, .nroutes = 1};
    h = rt_httpd_start(rt, &o2, &err);
    ASSERT_NOT_NULL(h);
    ASSERT_OK(hc_roundtrip(rt_httpd_port(h), "GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n", &r));
    ASSERT_EQ(404, r.status);
    ASSERT_STR_EQ("Not Found\n", r.body);
    hc_resp_free(&r);
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    ASSERT_EQ(4, sink_count(b, 0));
    rt_httpd_stop(h, 1000);
    rt_lws_stop(l);
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    rt_runtime_free(rt);
    sink_free(a);
    sink_free(b);
    sink_free(c);
}

TEST(body_cap_413_before_any_actor)
{
    rt_httpd_opts o = {.max_body = 1000};
    env e = setup_with(M_ECHO, &o);
    char *req =
        rt_xasprintf("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n%1000s", "");
    ASSERT_EQ(200, status_of(e.port, req));
    rt_free(req);
    ASSERT_EQ(413,
              status_of(e.port, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n"));
    ASSERT_EQ(413, status_of(e.port, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: "
                                     "99999999999999999999\r\n\r\n"));
    /* Chunked: the sum of the chunks counts. */
    char *chunked = rt_xasprintf("POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "1f4\r\n%500s\r\n1f5\r\n%501s\r\n0\r\n\r\n",
                                 "", "");
    ASSERT_EQ(413, status_of(e.port, chunked));
    rt_free(chunked);
    /* A chunked body within the cap, with an extension and a trailer, arrives whole. */
    hc_resp r;
    ASSERT_OK(hc_roundtrip(e.port,
                           "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
                           &r));
    ASSERT_EQ(200, r.status);
    ASSERT_STR_EQ("POST /c? hello world", r.body);
    hc_resp_free(&r);
    /* Expect: 100-continue within the cap: "100 Continue" first, then the answer. */
    hc_conn *ec = rt_xmalloc(sizeof(*ec));
    ASSERT_OK(hc_open(ec, e.port, 0));
    ASSERT_OK(hc_send(ec, "PUT /e HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                          "Expect: 100-continue\r\n\r\n"));
    ASSERT_OK(hc_read_head(ec, &r));
    ASSERT_EQ(100, r.status);
    ASSERT_OK(hc_send(ec, "data"));
    ASSERT_OK(hc_read(ec, &r, false));
    ASSERT_EQ(200, r.status);
    ASSERT_STR_EQ("PUT /e? data", r.body);
    hc_resp_free(&r);
    hc_close(ec);
    rt_free(ec);
    /* Expect: 100-continue with a body over the cap: 413 without waiting for the body. */
    ASSERT_EQ(413, status_of(e.port, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n"
                                     "Expect: 100-continue\r\n\r\n"));
    ASSERT_OK(rt_wait_quiescent(e.rt, WAIT_MS));
    ASSERT_EQ(3, sink_count(e.s, RT_HTTPD_MSG_REQUEST));

    /* libcurl posting over the cap sees 413 too. */
    CURL *cu = curl_easy_init();
    char url[64], *big = rt_xcalloc(1, 5001);
    memset(big, 'b', 5000);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/up", e.port);
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_POSTFIELDS, big);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, (long)WAIT_MS);
    FILE *devnull = fopen("/dev/null", "w");
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, devnull);
    ASSERT_EQ(CURLE_OK, curl_easy_perform(cu));
    long code = 0;
    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &code);
    ASSERT_EQ(413, code);
    curl_easy_cleanup(cu);
    fclose(devnull);
    rt_free(big);
    ASSERT_EQ(3, sink_count(e.s, RT_HTTPD_MSG_REQUEST));
    teardown(&e);
}

TEST(malformed_and_unsupported_requests)
{
    env e = setup(M_ECHO);
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"GARBAGE\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n\r\n", 400}, /* no Host */
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"GET /\r\nHost: t\r\n\r\n", 400},
        {"GET  / HTTP/1.1\r\nHost: t\r\n\r\n", 400},
        {"GET x HTTP/1.1\r\nHost: t\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: t\r\nNoColon\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: t\r\nBad Name: v\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n  folded\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x01z\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n", 400},
        {"GET /\x7f HTTP/1.1\r\nHost: t\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
        {"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n", 501},
        {"TRACE / HTTP/1.1\r\nHost: t\r\n\r\n", 501},
        {"CONNECT example.com:443 HTTP/1.1\r\nHost: t\r\n\r\n", 501},
        {"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505},
        {"GET / HTTP/1.x\r\nHost: t\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: t\r\nExpect: telepathy\r\n\r\n", 417},
        {"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400},
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(cases); i++) {
        hc_conn *c = rt_xmalloc(sizeof(*c));
        ASSERT_OK(hc_open(c, e.port, 0));
        ASSERT_OK(hc_send(c, cases[i].req));
        hc_resp r;
        ASSERT_OK(hc_read(c, &r, false));
        if (r.status != cases[i].status)
            TEST_FAIL_("case %zu: got %d want %d", i, r.status, cases[i].status);
        char v[32];
        ASSERT_STR_EQ("close", hc_header(&r, "Connection", v, sizeof(v)));
        ASSERT_TRUE(hc_wait_closed(c));
        hc_resp_free(&r);
        hc_close(c);
        rt_free(c);
    }
    /* Accepted oddities: leading blank lines, bare LF line ends, absolute form, OPTIONS *,
     * HTTP/1.0 without Host. */
    ASSERT_EQ(200, status_of(e.port, "\r\n\r\nGET /a HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_EQ(200, status_of(e.port, "GET /b HTTP/1.1\nHost: t\n\n"));
    ASSERT_EQ(200, status_of(e.port, "GET http://t:1/c?d=1 HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_EQ(200, status_of(e.port, "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_EQ(200, status_of(e.port, "DELETE /d HTTP/1.0\r\n\r\n"));
    ASSERT_OK(rt_wait_quiescent(e.rt, WAIT_MS));
    ASSERT_EQ(5, sink_count(e.s, RT_HTTPD_MSG_REQUEST));
    ASSERT_STR_EQ("/c", sink_get(e.s, RT_HTTPD_MSG_REQUEST, 2)->path);
    ASSERT_STR_EQ("d=1", sink_get(e.s, RT_HTTPD_MSG_REQUEST, 2)->query);
    ASSERT_STR_EQ("*", sink_get(e.s, RT_HTTPD_MSG_REQUEST, 3)->path);
    teardown(&e);
}

TEST(header_caps_431_and_414)
{
    rt_httpd_opts o = {.max_header = 1024};
    env e = setup_with(M_ECHO, &o);
    char *big = rt_xasprintf("GET / HTTP/1.1\r\nHost: t\r\nX-Big: %1500s\r\n\r\n", "v");
    ASSERT_EQ(431, status_of(e.port, big));
    rt_free(big);
    char *longline = rt_xasprintf("GET /%2000s HTTP/1.1\r\nHost: t\r\n\r\n", "x");
    for (char *p = longline + 5; *p == ' '; p++)
        *p = 'a';
    ASSERT_EQ(414, status_of(e.port, longline));
    rt_free(longline);
    rt_buf b;
    rt_buf_init(&b, 1 << 20);
    rt_buf_append_str(&b, "GET / HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 101; i++)
        rt_buf_printf(&b, "X%d: v\r\n", i);
    rt_buf_append_str(&b, "\r\n");
    rt_httpd_stop(e.h, 1000);
    rt_httpd_opts o2 = {
        .max_header = 1 << 16, .routes = &(rt_httpd_route){"/", sink_ref(e.s)}, .nroutes = 1};
    int err;
    e.h = rt_httpd_start(e.rt, &o2, &err);
    ASSERT_NOT_NULL(e.h);
    ASSERT_EQ(431, status_of(rt_httpd_port(e.h), rt_buf_cstr(&b))); /* more than 100 fields */
    rt_buf_fini(&b);
    ASSERT_OK(rt_wait_quiescent(e.rt, WAIT_MS));
    ASSERT_EQ(0, sink_count(e.s, RT_HTTPD_MSG_REQUEST));
    teardown(&e);
}

TEST(keep_alive_reuse_and_pipelining)
{
    env e = setup(M_ECHO);
    hc_conn *c = rt_xmalloc(sizeof(*c));
    ASSERT_OK(hc_open(c, e.port, 0));
    hc_resp r;
    char v[64];
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(hc_send(c, "GET /k HTTP/1.1\r\nHost: t\r\n\r\n"));
        ASSERT_OK(hc_read(c, &r, false));
        ASSERT_EQ(200, r.status);
        ASSERT_NULL(hc_header(&r, "Connection", v, sizeof(v)));
        ASSERT_NOT_NULL(hc_header(&r, "Date", v, sizeof(v)));
        hc_resp_free(&r);
    }
    /* Three pipelined requests in one write come back in order. */
    ASSERT_OK(hc_send(c, "GET /p1 HTTP/1.1\r\nHost: t\r\n\r\n"
                         "POST /p2 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"
                         "HEAD /p3 HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_OK(hc_read(c, &r, false));
    ASSERT_STR_EQ("GET /p1? ", r.body);
    hc_resp_free(&r);
    ASSERT_OK(hc_read(c, &r, false));
    ASSERT_STR_EQ("POST /p2? hi", r.body);
    hc_resp_free(&r);
    ASSERT_OK(hc_read(c, &r, true));
    ASSERT_EQ(200, r.status);
    ASSERT_STR_EQ("10", hc_header(&r, "Content-Length", v, sizeof(v))); /* "HEAD /p3? " */
    hc_resp_free(&r);
    /* Connection: close is honoured. */
    ASSERT_OK(hc_send(c, "GET /bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    ASSERT_OK(hc_read(c, &r, false));
    ASSERT_STR_EQ("close", hc_header(&r, "Connection", v, sizeof(v)));
    hc_resp_free(&r);
    ASSERT_TRUE(hc_wait_closed(c));
    hc_close(c);
    /* HTTP/1.0: closes by default, stays with keep-alive. */
    ASSERT_OK(hc_open(c, e.port, 0));
    ASSERT_OK(hc_send(c, "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    ASSERT_OK(hc_read(c, &r, false));
    ASSERT_STR_EQ("keep-alive", hc_header(&r, "Connection", v, sizeof(v)));
    hc_resp_free(&r);
    ASSERT_OK(hc_send(c, "GET /old2 HTTP/1.0\r\n\r\n"));
    ASSERT_OK(hc_read(c, &r, false));
    ASSERT_STR_EQ("close", hc_header(&r, "Connection", v, sizeof(v)));
    ASSERT_STR_EQ("GET /old2? ", r.body);
    hc_resp_free(&r);
    ASSERT_TRUE(hc_wait_closed(c));
    hc_close(c);
    rt_free(c);

    /* libcurl reuses the connection. */
    CURL *cu = curl_easy_init();
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/curl", e.port);
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, (long)WAIT_MS);
    FILE *devnull = fopen("/dev/null", "w");
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, devnull);
    long conns[2];
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(CURLE_OK, curl_easy_perform(cu));
        curl_easy_getinfo(cu, CURLINFO_NUM_CONNECTS, &conns[i]);
    }
    ASSERT_EQ(1, conns[0]);
    ASSERT_EQ(0, conns[1]);
    curl_easy_cleanup(cu);
    fclose(devnull);
    teardown(&e);
}

static size_t collect(char *p, size_t sz, size_t n, void *arg)
{
    rt_buf_append(arg, p, sz * n);
    return sz * n;
}

TEST(sse_stream_read_by_curl)
{
    env e = setup(M_SSE);
    CURL *cu = curl_easy_init();
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/events", e.port);
    rt_buf body, hdrs;
    rt_buf_init(&body, 1 << 20);
    rt_buf_init(&hdrs, 1 << 20);
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, (long)WAIT_MS);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(cu, CURLOPT_HEADERDATA, &hdrs);
    ASSERT_EQ(CURLE_OK, curl_easy_perform(cu));
    long code = 0;
    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &code);
    ASSERT_EQ(200, code);
    ASSERT_STR_EQ("data: one\n\ndata: two\n\ndata: three\n\n", rt_buf_cstr(&body));
    ASSERT_STR_CONTAINS(rt_buf_cstr(&hdrs), "Transfer-Encoding: chunked");
    ASSERT_STR_CONTAINS(rt_buf_cstr(&hdrs), "Content-Type: text/event-stream");
    /* The same connection serves the next request. */
    rt_buf_reset(&body);
    ASSERT_EQ(CURLE_OK, curl_easy_perform(cu));
    long nconn = -1;
    curl_easy_getinfo(cu, CURLINFO_NUM_CONNECTS, &nconn);
    ASSERT_EQ(0, nconn);
    ASSERT_STR_EQ("data: one\n\ndata: two\n\ndata: three\n\n", rt_buf_cstr(&body));
    curl_easy_cleanup(cu);
    rt_buf_fini(&body);
    rt_buf_fini(&hdrs);

    /* HTTP/1.0: no chunked framing, the end of the body is the end of the connection. */
    hc_resp r;
    ASSERT_OK(hc_roundtrip(e.port, "GET /events HTTP/1.0\r\n\r\n", &r));
    ASSERT_EQ(200, r.status);
    ASSERT_STR_EQ("data: one\n\ndata: two\n\ndata: three\n\n", r.body);
    char v[32];
    ASSERT_NULL(hc_header(&r, "Transfer-Encoding", v, sizeof(v)));
    hc_resp_free(&r);
    teardown(&e);
}

TEST(client_leaving_mid_stream_sends_gone)
{
    env e = setup(M_SSE_OPEN);
    hc_conn *c = rt_xmalloc(sizeof(*c));
    ASSERT_OK(hc_open(c, e.port, 0));
    ASSERT_OK(hc_send(c, "GET /events HTTP/1.1\r\nHost: t\r\n\r\n"));
    hc_resp r;
    ASSERT_OK(hc_read_head(c, &r));
    ASSERT_EQ(200, r.status);
    char got[256];
    ASSERT_GT(hc_read_some(c, got, sizeof(got), 14), 0); /* "b\r\ndata: one\n\n\r\n" */
    ASSERT_STR_CONTAINS(got, "data: one\n\n");
    ASSERT_OK(sink_wait(e.s, RT_HTTPD_MSG_REQUEST, 1, WAIT_MS));
    uint64_t req = sink_get(e.s, RT_HTTPD_MSG_REQUEST, 0)->id;
    /* More events from another thread while the client is still there. */
    ASSERT_OK(rt_httpd_stream_write(e.cx, req, "data: two\n\n", 11));
    ASSERT_GT(hc_read_some(c, got, sizeof(got), 14), 0);
    ASSERT_STR_CONTAINS(got, "data: two\n\n");
    hc_close(c);
    ASSERT_OK(sink_wait(e.s, RT_HTTPD_MSG_GONE, 1, WAIT_MS));
    sink_ev *g = sink_get(e.s, RT_HTTPD_MSG_GONE, 0);
    ASSERT_EQ(req, g->id);
    ASSERT_EQ(-ECONNRESET, g->err);
    /* Writes after GONE are dropped quietly; nothing else comes. */
    ASSERT_OK(rt_httpd_stream_write(e.cx, req, "data: late\n\n", 12));
    ASSERT_OK(rt_httpd_stream_end(e.cx, req));
    ASSERT_OK(rt_httpd_reply(e.cx, req, 200, NULL, "x", 1));
    ASSERT_OK(rt_wait_quiescent(e.rt, WAIT_MS));
    ASSERT_EQ(1, sink_count(e.s, RT_HTTPD_MSG_GONE));
    rt_free(c);
    teardown(&e);
}

TEST(request_timeout_504_and_gone)
{
    rt_httpd_opts o = {.request_timeout_ms = 150};
    env e = setup_with(M_SILENT, &o);
    hc_conn *c = rt_xmalloc(sizeof(*c));
    ASSERT_OK(hc_open(c, e.port, 0));
    hc_resp r;
    for (int i = 0; i < 2; i++) { /* the connection stays usable after a 504 */
        ASSERT_OK(hc_send(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
        ASSERT_OK(hc_read(c, &r, false));
        ASSERT_EQ(504, r.status);
        hc_resp_free(&r);
    }
    ASSERT_OK(sink_wait(e.s, RT_HTTPD_MSG_GONE, 2, WAIT_MS));
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(-ETIMEDOUT, sink_get(e.s, RT_HTTPD_MSG_GONE, i)->err);
        ASSERT_EQ(sink_get(e.s, RT_HTTPD_MSG_REQUEST, i)->id,
                  sink_get(e.s, RT_HTTPD_MSG_GONE, i)->id);
    }
    /* A late reply is dropped. */
    ASSERT_OK(rt_httpd_reply(e.cx, sink_get(e.s, RT_HTTPD_MSG_REQUEST, 0)->id, 200, NULL, "l", 1));
    ASSERT_OK(rt_wait_quiescent(e.rt, WAIT_MS));
    hc_close(c);
    rt_free(c);
    teardown(&e);
}

TEST(idle_and_slow_clients_are_timed_out)
{
    rt_httpd_opts o = {.idle_timeout_ms = 150};
    env e = setup_with(M_ECHO, &o);
    hc_conn *c = rt_xmalloc(sizeof(*c));
    ASSERT_OK(hc_open(c, e.port, 0));
    ASSERT_TRUE(hc_wait_closed(c)); /* idle: closed without a word */
    hc_close(c);
    ASSERT_OK(hc_open(c, e.port, 0));
    ASSERT_OK(hc_send(c, "GET /slow HTTP/1.1\r\nHost: t\r\n")); /* never finished */
    hc_resp r;
    ASSERT_OK(hc_read(c, &r, false));
    ASSERT_EQ(408, r.status);
    hc_resp_free(&r);
    ASSERT_TRUE(hc_wait_closed(c));
    hc_close(c);
    rt_free(c);
    ASSERT_EQ(0, sink_count(e.s, RT_HTTPD_MSG_REQUEST));
    teardown(&e);
}

typedef struct client_job {
    int port;
    const char *req;
    hc_resp r;
    int rc;
} client_job;

static void *client_thread(void *arg)
{
    client_job *j = arg;
    j->rc = hc_roundtrip(j->port, j->req, &j->r);
    return NULL;
}

TEST(graceful_stop_lets_requests_in_flight_finish)
{
    rt_runtime *rt = rt_runtime_new(NULL);
    rt_lws *l = rt_lws_start(rt, NULL);
    sink *later = sink_new(rt, handler_hook, (void *)(intptr_t)M_LATER);
    sink *silent = sink_new(rt, handler_hook, (void *)(intptr_t)M_SILENT);
    rt_httpd_route routes[] = {{"/later", sink_ref(later)}, {"/silent", sink_ref(silent)}};
    rt_httpd_opts o = {.routes = routes, .nroutes = 2};
    int err;
    rt_httpd *h = rt_httpd_start(rt, &o, &err);
    ASSERT_NOT_NULL(h);
    int port = rt_httpd_port(h);
    hc_conn *idle = rt_xmalloc(sizeof(*idle));
    ASSERT_OK(hc_open(idle, port, 0)); /* an idle keep-alive connection */
    client_job a = {port, "GET /later HTTP/1.1\r\nHost: t\r\n\r\n", {0}, -1};
    client_job b = {port, "GET /silent HTTP/1.1\r\nHost: t\r\n\r\n", {0}, -1};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, client_thread, &a);
    pthread_create(&tb, NULL, client_thread, &b);
    ASSERT_OK(sink_wait(later, RT_HTTPD_MSG_REQUEST, 1, WAIT_MS));
    ASSERT_OK(sink_wait(silent, RT_HTTPD_MSG_REQUEST, 1, WAIT_MS));
    rt_httpd_stop(h, 1500); /* returns when the silent request is cut off at 1.5 s */
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ASSERT_OK(a.rc);
    ASSERT_EQ(200, a.r.status);
    ASSERT_STR_EQ("late", a.r.body);
    char v[32];
    ASSERT_STR_EQ("close", hc_header(&a.r, "Connection", v, sizeof(v)));
    ASSERT_NE(0, b.rc); /* cut off without an answer */
    ASSERT_TRUE(hc_wait_closed(idle));
    ASSERT_OK(sink_wait(silent, RT_HTTPD_MSG_GONE, 1, WAIT_MS));
    ASSERT_EQ(-ESHUTDOWN, sink_get(silent, RT_HTTPD_MSG_GONE, 0)->err);
    ASSERT_EQ(0, sink_count(later, RT_HTTPD_MSG_GONE));
    hc_conn *c = rt_xmalloc(sizeof(*c));
    ASSERT_NE(0, hc_open(c, port, 0)); /* no longer listening */
    ASSERT_EQ(ECONNREFUSED, errno);
    hc_resp_free(&a.r);
    hc_resp_free(&b.r);
    hc_close(idle);
    rt_free(idle);
    rt_free(c);
    rt_lws_stop(l);
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    rt_runtime_free(rt);
    sink_free(later);
    sink_free(silent);
}

/* Is port listening on 127.0.0.1 (and not on 0.0.0.0) according to /proc/net/tcp? */
static int listen_addr(int port, char *out, size_t cap)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return -1;
    char line[512];
    int found = -1;
    while (fgets(line, sizeof(line), f)) {
        unsigned addr, p, st;
        if (sscanf(line, " %*d: %8X:%4X %*8X:%*4X %2X", &addr, &p, &st) == 3 && (int)p == port &&
            st == 0x0A) {
            snprintf(out, cap, "%08X", addr);
            found = 0;
        }
    }
    fclose(f);
    return found;
}

TEST(binds_127_0_0_1_by_default_and_reports_bind_errors)
{
    env e = setup(M_ECHO);
    char addr[16];
    ASSERT_OK(listen_addr(e.port, addr, sizeof(addr)));
    ASSERT_STR_EQ("0100007F", addr); /* 127.0.0.1, little-endian */
    int err = 0;
    rt_httpd_route route = {"/", sink_ref(e.s)};
    rt_httpd_opts same = {.port = e.port, .routes = &route, .nroutes = 1};
    ASSERT_NULL(rt_httpd_start(e.rt, &same, &err));
    ASSERT_EQ(-EADDRINUSE, err);
    if (geteuid() != 0) {
        rt_httpd_opts priv = {.port = 1, .routes = &route, .nroutes = 1};
        ASSERT_NULL(rt_httpd_start(e.rt, &priv, &err));
        ASSERT_EQ(-EACCES, err);
    }
    rt_httpd_opts bad_host = {.host = "localhost"};
    ASSERT_NULL(rt_httpd_start(e.rt, &bad_host, &err));
    ASSERT_EQ(-EINVAL, err);
    rt_httpd_opts bad_port = {.port = 70000};
    ASSERT_NULL(rt_httpd_start(e.rt, &bad_port, &err));
    ASSERT_EQ(-EINVAL, err);
    rt_httpd_route bad_routes[] = {{"api", sink_ref(e.s)}};
    rt_httpd_opts bad_route = {.routes = bad_routes, .nroutes = 1};
    ASSERT_NULL(rt_httpd_start(e.rt, &bad_route, &err));
    ASSERT_EQ(-EINVAL, err);
    ASSERT_NULL(rt_httpd_start(e.rt, NULL, &err));
    ASSERT_EQ(-EINVAL, err);
    /* IPv6 loopback works too. */
    rt_httpd_opts v6 = {.host = "::1", .routes = &route, .nroutes = 1};
    rt_httpd *h6 = rt_httpd_start(e.rt, &v6, &err);
    if (h6) /* a host without IPv6 gives EADDRNOTAVAIL: fine */
        rt_httpd_stop(h6, 0);
    else
        ASSERT_EQ(-EADDRNOTAVAIL, err);
    /* The first server is unharmed. */
    ASSERT_EQ(200, status_of(e.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
    teardown(&e);

    rt_runtime *rt = rt_runtime_new(NULL);
    rt_httpd_opts ok = {0};
    ASSERT_NULL(rt_httpd_start(rt, &ok, &err));
    ASSERT_EQ(-ESHUTDOWN, err);
    rt_ctx *cx = rt_ctx_external(rt);
    ASSERT_EQ(-ESHUTDOWN, rt_httpd_reply(cx, 1, 200, NULL, "", 0));
    rt_runtime_free(rt);
}

TEST(reply_validation_and_framing_headers)
{
    env e = setup(M_SILENT);
    hc_conn *c = rt_xmalloc(sizeof(*c));
    ASSERT_OK(hc_open(c, e.port, 0));
    ASSERT_OK(hc_send(c, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_OK(sink_wait(e.s, RT_HTTPD_MSG_REQUEST, 1, WAIT_MS));
    uint64_t req = sink_get(e.s, RT_HTTPD_MSG_REQUEST, 0)->id;
    static const char *const bad1[] = {"X-A: 1\r\nX-Injected: 2", NULL};
    static const char *const bad2[] = {"Bad Name: 1", NULL};
    static const char *const bad3[] = {": empty", NULL};
    ASSERT_EQ(-EINVAL, rt_httpd_reply(e.cx, req, 200, bad1, "", 0));
    ASSERT_EQ(-EINVAL, rt_httpd_reply(e.cx, req, 200, bad2, "", 0));
    ASSERT_EQ(-EINVAL, rt_httpd_reply(e.cx, req, 200, bad3, "", 0));
    ASSERT_EQ(-EINVAL, rt_httpd_reply(e.cx, req, 99, NULL, "", 0));
    ASSERT_EQ(-EINVAL, rt_httpd_reply(e.cx, req, 600, NULL, "", 0));
    ASSERT_EQ(-EINVAL, rt_httpd_reply(e.cx, req, 200, NULL, NULL, 5));
    ASSERT_EQ(-EINVAL, rt_httpd_reply(e.cx, 0, 200, NULL, "", 0));
    ASSERT_EQ(-EINVAL, rt_httpd_stream_begin(e.cx, req, 100, NULL));
    static const char *const hdrs[] = {"X-A: 1", "content-length: 999", "Connection: close",
                                       "X-B:two", NULL};
    size_t n = 100000; /* big enough to go out as its own piece, in slices */
    char *body = rt_xmalloc(n);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('a' + i % 26);
    ASSERT_OK(rt_httpd_reply(e.cx, req, 201, hdrs, body, n));
    hc_resp r;
    ASSERT_OK(hc_read(c, &r, false));
    ASSERT_EQ(201, r.status);
    char v[32];
    ASSERT_STR_EQ("100000", hc_header(&r, "Content-Length", v, sizeof(v)));
    ASSERT_STR_EQ("1", hc_header(&r, "X-A", v, sizeof(v)));
    ASSERT_STR_EQ("two", hc_header(&r, "X-B", v, sizeof(v)));
    ASSERT_NULL(hc_header(&r, "Connection", v, sizeof(v)));
    ASSERT_EQ(n, r.len);
    ASSERT_EQ(0, memcmp(body, r.body, n));
    hc_resp_free(&r);
    rt_free(body);
    /* 204 carries no body even if the actor gives one. */
    ASSERT_OK(hc_send(c, "GET /y HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_OK(sink_wait(e.s, RT_HTTPD_MSG_REQUEST, 2, WAIT_MS));
    ASSERT_OK(rt_httpd_reply(e.cx, sink_get(e.s, RT_HTTPD_MSG_REQUEST, 1)->id, 204, NULL, "zz", 2));
    ASSERT_OK(hc_read(c, &r, false));
    ASSERT_EQ(204, r.status);
    ASSERT_NULL(hc_header(&r, "Content-Length", v, sizeof(v)));
    hc_resp_free(&r);
    ASSERT_OK(hc_send(c, "GET /z HTTP/1.1\r\nHost: t\r\n\r\n"));
    hc_resp z;
    ASSERT_OK(sink_wait(e.s, RT_HTTPD_MSG_REQUEST, 3, WAIT_MS));
    ASSERT_OK(rt_httpd_reply(e.cx, sink_get(e.s, RT_HTTPD_MSG_REQUEST, 2)->id, 200, NULL, "ok", 2));
    ASSERT_OK(hc_read(c, &z, false)); /* the 204 left nothing behind on the connection */
    ASSERT_STR_EQ("ok", z.body);
    hc_resp_free(&z);
    hc_close(c);
    rt_free(c);
    teardown(&e);
}

TEST(dead_handler_gets_503)
{
    env e = setup(M_ECHO);
    rt_runtime *rt = e.rt;
    sink *dead = sink_new(rt, NULL, NULL);
    rt_stop(e.cx, sink_ref(dead), RT_EXIT_NORMAL);
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    rt_httpd_route route = {"/", sink_ref(dead)};
    rt_httpd_opts o = {.routes = &route, .nroutes = 1};
    int err;
    rt_httpd *h = rt_httpd_start(rt, &o, &err);
    ASSERT_NOT_NULL(h);
    ASSERT_EQ(503, status_of(rt_httpd_port(h), "GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
    rt_httpd_stop(h, 0);
    teardown(&e);
    sink_free(dead);
}

TEST(max_conns_and_stream_overflow)
{
    rt_httpd_opts o = {.max_conns = 2, .max_stream_queue = 64 * 1024};
    env e = setup_with(M_SSE_OPEN, &o);
    hc_conn *c1 = rt_xmalloc(sizeof(*c1)), *c2 = rt_xmalloc(sizeof(*c2)),
            *c3 = rt_xmalloc(sizeof(*c3));
    ASSERT_OK(hc_open(c1, e.port, 4096));
    ASSERT_OK(hc_open(c2, e.port, 0));
    ASSERT_OK(hc_send(c1, "GET /s HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_OK(sink_wait(e.s, RT_HTTPD_MSG_REQUEST, 1, WAIT_MS));
    ASSERT_OK(hc_send(c2, "GET /t HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_OK(sink_wait(e.s, RT_HTTPD_MSG_REQUEST, 2, WAIT_MS)); /* both are accepted now */
    ASSERT_OK(hc_open(c3, e.port, 0));
    ASSERT_TRUE(hc_wait_closed(c3)); /* over max_conns */
    /* c1 never reads: the stream's queue fills and the client is dropped. */
    uint64_t req = 0;
    for (int i = 0; i < 2; i++)
        if (!strcmp(sink_get(e.s, RT_HTTPD_MSG_REQUEST, i)->path, "/s"))
            req = sink_get(e.s, RT_HTTPD_MSG_REQUEST, i)->id;
    char *chunk = rt_xcalloc(1, 16384);
    for (int i = 0; i < 2000 && sink_count(e.s, RT_HTTPD_MSG_GONE) == 0; i++) {
        ASSERT_OK(rt_httpd_stream_write(e.cx, req, chunk, 16384));
        if (i % 64 == 63)
            ASSERT_OK(rt_wait_quiescent(e.rt, WAIT_MS));
    }
    ASSERT_OK(sink_wait(e.s, RT_HTTPD_MSG_GONE, 1, WAIT_MS));
    ASSERT_EQ(-ENOBUFS, sink_get(e.s, RT_HTTPD_MSG_GONE, 0)->err);
    rt_free(chunk);
    hc_close(c1);
    hc_close(c2);
    hc_close(c3);
    rt_free(c1);
    rt_free(c2);
    rt_free(c3);
    teardown(&e);
}

TEST(service_shutdown_with_requests_in_flight)
{
    env e = setup(M_SILENT);
    hc_conn *c = rt_xmalloc(sizeof(*c));
    ASSERT_OK(hc_open(c, e.port, 0));
    ASSERT_OK(hc_send(c, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_OK(sink_wait(e.s, RT_HTTPD_MSG_REQUEST, 1, WAIT_MS));
    rt_lws_stop(e.l);
    e.l = NULL;
    ASSERT_OK(sink_wait(e.s, RT_HTTPD_MSG_GONE, 1, WAIT_MS));
    ASSERT_EQ(-ESHUTDOWN, sink_get(e.s, RT_HTTPD_MSG_GONE, 0)->err);
    ASSERT_TRUE(hc_wait_closed(c));
    ASSERT_EQ(-ESHUTDOWN, rt_httpd_reply(e.cx, 1, 200, NULL, "", 0));
    hc_close(c);
    rt_free(c);
    teardown(&e); /* rt_httpd_stop after rt_lws_stop only frees */
}
