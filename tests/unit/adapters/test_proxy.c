/*
 * Proxy mode (gateway.md §10.5): a proxy session against a real API server instance (with
 * the gateway double behind it) relays deltas and tool progress to an agent-protocol sink
 * and ends every turn with one AG_MSG_DONE; the original's error texts for a failing host
 * and a refused connection; the partial answer kept when the host drops the stream; an
 * interrupt cancelling the remote request (the host cancels at its gateway); messages during
 * a turn (interrupt and follow up, or queue); the configuration.
 */
#include "adapter_env.h"
#include "proxy.h"

#include "ag_session.h"
#include "hm_config.h"
#include "rt_alloc.h"
#include "rt_httpd.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct pworld {
    tenv e;
    tsink *sink;
    rt_ref px;
} pworld;

static rt_ref spawn_proxy(pworld *w, const char *url, const char *key)
{
    proxy_opts o = {.url = url, .key = key, .session_id = "sess-1", .context = "CTX"};
    rt_ref px = proxy_session_spawn(w->e.cx, &o, NULL);
    ASSERT_NE(0, px);
    return px;
}

/* API server with a key, the gateway double, a sink and a proxy session pointing at it. */
static void world(pworld *w)
{
    tenv_init(&w->e, true);
    tenv_server_key(&w->e, TEST_KEY);
    w->sink = tsink_new(w->e.rt);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d//", w->e.port);
    w->px = spawn_proxy(w, url, TEST_KEY);
}

static void world_fini(pworld *w)
{
    tenv_fini(&w->e);
    tsink_free(w->sink);
}

static void input(pworld *w, const char *text, uint64_t id, bool queue)
{
    ag_msg_input *m = (ag_msg_input *)ag_input_new(text, tsink_ref(w->sink), id);
    m->queue = queue;
    ASSERT_TRUE(rt_send(w->e.cx, w->px, &m->hdr));
}

static const tsink_ev *done(pworld *w, int i)
{
    ASSERT_OK(tsink_wait(w->sink, AG_MSG_DONE, i + 1, WAIT_MS));
    return tsink_get(w->sink, AG_MSG_DONE, i);
}

/* ============================================================ tests */

TEST(relays_deltas_progress_and_the_answer)
{
    pworld w;
    world(&w);
    input(&w, "hello", 7, false);
    const tsink_ev *d = done(&w, 0);
    ASSERT_STR_EQ("Echo: hello", d->text);
    ASSERT_EQ(0, d->err);
    ASSERT_NULL(d->errmsg);
    ASSERT_FALSE(d->interrupted);
    ASSERT_TRUE(d->completed);
    ASSERT_EQ(7, (int)d->input_id);
    ASSERT_EQ(11, (int)d->prompt_tokens);
    ASSERT_EQ(7, (int)d->completion_tokens);
    ASSERT_STR_EQ("sess-1", d->session_id);
    char *deltas = tsink_deltas(w.sink, d->turn);
    ASSERT_STR_EQ("Echo: hello", deltas);
    rt_free(deltas);
    ASSERT_EQ(2, tsink_count(w.sink, AG_MSG_DELTA));
    ASSERT_EQ(1, tsink_count(w.sink, AG_MSG_PROGRESS)); /* "_thinking" stayed on the host */
    const tsink_ev *p = tsink_get(w.sink, AG_MSG_PROGRESS, 0);
    ASSERT_STR_EQ("terminal", p->tool);
    ASSERT_STR_EQ("ls -la", p->text);
    ASSERT_EQ(d->turn, p->turn);

    /* what the host's gateway saw: the local session id, the context, no history */
    const gwd_rec *ev = gwd_get(w.e.gw, GWD_EVENT, 0);
    ASSERT_STR_EQ("sess-1", ev->session_id);
    ASSERT_STR_EQ("sess-1", ev->chat_id);
    ASSERT_STR_EQ("CTX", ev->ephemeral);
    ASSERT_NULL(ev->history);
    ASSERT_STR_EQ("hello", ev->text);
    ASSERT_TRUE(ev->internal);

    /* the context block can change; a second turn uses it */
    rt_send(w.e.cx, w.px, ag_text_new(AG_MSG_EPHEMERAL, "CTX2"));
    input(&w, "again", 8, false);
    d = done(&w, 1);
    ASSERT_STR_EQ("Echo: again", d->text);
    ASSERT_EQ(8, (int)d->input_id);
    ASSERT_STR_EQ("CTX2", gwd_get(w.e.gw, GWD_EVENT, 1)->ephemeral);
    world_fini(&w);
}

static void fail_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type != RT_HTTPD_MSG_REQUEST)
        return;
    char body[800];
    for (int i = 0; i < 350; i++)
        memcpy(body + 2 * i, "é", 2); /* two bytes each: the text is cut at 300 characters */
    body[700] = '\0';
    const char *const hdrs[] = {"Content-Type: text/plain", NULL};
    rt_httpd_reply(cx, ((rt_httpd_msg_request *)m)->req, 500, hdrs, body, strlen(body));
}

static const rt_actor_type fail_type = {"fail", fail_behave, NULL, 0};

TEST(error_status_and_refused_connection)
{
    pworld w;
    tenv_init(&w.e, true);
    w.sink = tsink_new(w.e.rt);
    rt_httpd_route route = {"/", rt_spawn(w.e.cx, &fail_type, NULL, NULL)};
    rt_httpd_opts ho = {.routes = &route, .nroutes = 1};
    int err = 0;
    rt_httpd *h = rt_httpd_start(w.e.rt, &ho, &err);
    ASSERT_NOT_NULL(h);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", rt_httpd_port(h));
    w.px = spawn_proxy(&w, url, NULL);
    input(&w, "hi", 1, false);
    const tsink_ev *d = done(&w, 0);
    ASSERT_NULL(d->text);
    ASSERT_EQ(-EPROTO, d->err);
    char want[1024];
    size_t k = (size_t)snprintf(want, sizeof(want), "⚠️ Proxy error (500): ");
    for (int i = 0; i < 300; i++, k += 2)
        memcpy(want + k, "é", 2);
    want[k] = '\0';
    ASSERT_STR_EQ(want, d->errmsg);
    ASSERT_FALSE(d->interrupted);
    rt_httpd_stop(h, 1000);

    /* a port nobody listens on */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
    socklen_t sl = sizeof(a);
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &sl));
    close(fd);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    rt_ref px2 = spawn_proxy(&w, url, TEST_KEY);
    ag_msg_input *m = (ag_msg_input *)ag_input_new("hi", tsink_ref(w.sink), 2);
    rt_send(w.e.cx, px2, &m->hdr);
    d = done(&w, 1);
    ASSERT_NULL(d->text);
    ASSERT_EQ(-ECONNREFUSED, d->err);
    ASSERT_EQ(0, strncmp(d->errmsg, "⚠️ Proxy connection error: ",
                         strlen("⚠️ Proxy connection error: ")));
    ASSERT_GT(strlen(d->errmsg), strlen("⚠️ Proxy connection error: "));
    ASSERT_EQ(2, (int)d->input_id);
    world_fini(&w);
}

TEST(interrupt_cancels_the_remote_request)
{
    pworld w;
    world(&w);
    input(&w, "hang on", 1, false);
    ASSERT_OK(tsink_wait(w.sink, AG_MSG_DELTA, 1, WAIT_MS));
    ASSERT_STR_EQ("partial", tsink_get(w.sink, AG_MSG_DELTA, 0)->text);
    ASSERT_TRUE(rt_interrupt(w.e.cx, w.px, AG_INT_STOP));
    const tsink_ev *d = done(&w, 0);
    ASSERT_TRUE(d->interrupted);
    ASSERT_NULL(d->text);
    ASSERT_EQ(1, (int)d->input_id);
    /* the host saw its client leave and withdrew the turn at its gateway */
    ASSERT_OK(gwd_wait(w.e.gw, GWD_CANCEL, 1, WAIT_MS));
    ASSERT_EQ(gwd_get(w.e.gw, GWD_EVENT, 0)->request, gwd_get(w.e.gw, GWD_CANCEL, 0)->request);
    ASSERT_STR_EQ("sess-1", gwd_get(w.e.gw, GWD_CANCEL, 0)->session_id);
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    ASSERT_EQ(1, tsink_count(w.sink, AG_MSG_DONE)); /* exactly one per turn */
    /* the session goes on */
    input(&w, "after", 2, false);
    ASSERT_STR_EQ("Echo: after", done(&w, 1)->text);
    world_fini(&w);
}

TEST(new_message_interrupts_and_follows_up)
{
    pworld w;
    world(&w);
    input(&w, "hang one", 1, false);
    ASSERT_OK(tsink_wait(w.sink, AG_MSG_DELTA, 1, WAIT_MS));
    input(&w, "second", 2, false);
    const tsink_ev *d = done(&w, 0);
    ASSERT_TRUE(d->interrupted);
    ASSERT_EQ(1, (int)d->input_id);
    d = done(&w, 1);
    ASSERT_FALSE(d->interrupted);
    ASSERT_STR_EQ("Echo: second", d->text);
    ASSERT_EQ(2, (int)d->input_id);
    ASSERT_OK(gwd_wait(w.e.gw, GWD_CANCEL, 1, WAIT_MS));
    ASSERT_EQ(2, gwd_count(w.e.gw, GWD_EVENT));
    world_fini(&w);
}

TEST(queued_message_waits_for_the_turn)
{
    pworld w;
    world(&w);
    input(&w, "silent one", 1, false);
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 1, WAIT_MS));
    input(&w, "queued", 2, true);
    /* a control message after it comes back only once the input was handled (one sender,
     * one receiver: in order) */
    rt_send(w.e.cx, w.px, ag_control_new(AG_CTL_USAGE, tsink_ref(w.sink), 1));
    ASSERT_OK(tsink_wait(w.sink, AG_MSG_CONTROL_REPLY, 1, WAIT_MS));
    ASSERT_EQ(0, tsink_count(w.sink, AG_MSG_DONE));
    ASSERT_EQ(0, gwd_count(w.e.gw, GWD_CANCEL));
    gwd_release(w.e.gw, w.e.cx);
    const tsink_ev *d = done(&w, 0);
    ASSERT_STR_EQ("released", d->text); /* a final text without deltas, relayed as content */
    ASSERT_EQ(1, (int)d->input_id);
    d = done(&w, 1);
    ASSERT_STR_EQ("Echo: queued", d->text);
    ASSERT_EQ(2, (int)d->input_id);
    ASSERT_EQ(0, gwd_count(w.e.gw, GWD_CANCEL));
    world_fini(&w);
}

TEST(partial_answer_kept_when_the_host_drops_the_stream)
{
    pworld w;
    world(&w);
    input(&w, "hang", 1, false);
    ASSERT_OK(tsink_wait(w.sink, AG_MSG_DELTA, 1, WAIT_MS));
    api_server_stop(w.e.cx, w.e.srv, 0);
    w.e.srv = NULL;
    const tsink_ev *d = done(&w, 0);
    ASSERT_STR_EQ("partial", d->text);
    ASSERT_EQ(0, d->err);
    ASSERT_FALSE(d->completed);
    ASSERT_FALSE(d->interrupted);
    world_fini(&w);
}

TEST(no_answer_and_session_controls)
{
    pworld w;
    world(&w);
    ag_msg_input *m = (ag_msg_input *)ag_input_new("", tsink_ref(w.sink), 3);
    m->unanswered = true;
    rt_send(w.e.cx, w.px, &m->hdr);
    const tsink_ev *d = done(&w, 0);
    ASSERT_EQ(-EALREADY, d->err);
    ASSERT_EQ(3, (int)d->input_id);
    rt_send(w.e.cx, w.px, ag_control_new(AG_CTL_USAGE, tsink_ref(w.sink), 9));
    ASSERT_OK(tsink_wait(w.sink, AG_MSG_CONTROL_REPLY, 1, WAIT_MS));
    ASSERT_EQ(-ENOTSUP, tsink_get(w.sink, AG_MSG_CONTROL_REPLY, 0)->err);
    ASSERT_EQ(0, gwd_count(w.e.gw, GWD_EVENT));
    /* the host answers nothing at all */
    input(&w, "empty", 4, false);
    d = done(&w, 1);
    ASSERT_STR_EQ("(No response from remote agent)", d->text);
    ASSERT_EQ(0, d->err);
    world_fini(&w);
}

TEST(spawn_checks_and_configuration)
{
    rt_runtime *rt = rt_runtime_new(NULL);
    rt_ctx *cx = rt_ctx_external(rt);
    proxy_opts o = {.url = "ftp://host", .session_id = "s"};
    ASSERT_EQ(0, proxy_session_spawn(cx, &o, NULL));
    o = (proxy_opts){.url = "http://host:8642", .session_id = NULL};
    ASSERT_EQ(0, proxy_session_spawn(cx, &o, NULL));
    o = (proxy_opts){.url = "http://host:8642", .session_id = "a\r\nb"};
    ASSERT_EQ(0, proxy_session_spawn(cx, &o, NULL));
    o = (proxy_opts){.url = "https://host:8642/", .session_id = "s"};
    ASSERT_NE(0, proxy_session_spawn(cx, &o, NULL));
    ASSERT_OK(rt_wait_quiescent(rt, WAIT_MS));
    rt_runtime_free(rt);

    const char *home = test_tmpdir();
    unsetenv("GATEWAY_PROXY_URL");
    unsetenv("GATEWAY_PROXY_KEY");
    int err = 0;
    hm_config *cfg = hm_config_load(home, 0, NULL, &err);
    ASSERT_NOT_NULL(cfg);
    ASSERT_EQ(0, proxy_opts_from_config(cfg, &o));
    setenv("GATEWAY_PROXY_URL", "http://remote:8642/", 1);
    setenv("GATEWAY_PROXY_KEY", "remote-key", 1);
    ASSERT_EQ(1, proxy_opts_from_config(cfg, &o));
    ASSERT_STR_EQ("http://remote:8642/", o.url);
    ASSERT_STR_EQ("remote-key", o.key);
    unsetenv("GATEWAY_PROXY_URL");
    unsetenv("GATEWAY_PROXY_KEY");
    hm_config_unref(cfg);
    char path[512];
    snprintf(path, sizeof(path), "%s/config.yaml", home);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs("gateway:\n  proxy_url: http://from-config:8642\n", f);
    fclose(f);
    cfg = hm_config_load(home, 0, NULL, &err);
    ASSERT_NOT_NULL(cfg);
    ASSERT_EQ(1, proxy_opts_from_config(cfg, &o));
    ASSERT_STR_EQ("http://from-config:8642", o.url);
    ASSERT_NULL(o.key);
    hm_config_unref(cfg);
}
