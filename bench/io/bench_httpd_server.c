/*
 * bench_httpd_server — the server side of bench_httpd.sh: rt_httpd on 127.0.0.1 with one
 * route, "/", whose actor answers every request with 200 "ok".
 *
 * Usage: bench_httpd_server PORT [SECONDS]
 * Binds 127.0.0.1:PORT, prints "READY port=..." once listening, serves for SECONDS (default
 * 60, a hard bound so a forgotten server never lingers) or until SIGTERM/SIGINT, then stops.
 */
#include "bench_common.h"
#include "rt_httpd.h"
#include "rt_lws.h"
#include "rt_util.h"

#include <signal.h>

static void ok_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    static const char *const hdrs[] = {"Content-Type: text/plain", NULL};
    if (m->type == RT_HTTPD_MSG_REQUEST)
        rt_httpd_reply(cx, ((rt_httpd_msg_request *)m)->req, 200, hdrs, "ok", 2);
}

static const rt_actor_type ok_type = {"ok", ok_behave, NULL, 0};

int main(int argc, char **argv)
{
    int64_t port = 0, seconds = 60;
    if (argc < 2 || rt_parse_i64(argv[1], 0, 65535, &port) ||
        (argc > 2 && rt_parse_i64(argv[2], 1, 3600, &seconds))) {
        fprintf(stderr, "usage: bench_httpd_server PORT [SECONDS]\n");
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts: all inherit it */
    rt_runtime *rt = bench_runtime_new(0);
    int err = 0;
    rt_lws *l = rt_lws_start(rt, &err);
    if (!l) {
        fprintf(stderr, "bench_httpd_server: lws: %s\n", rt_strerror(err));
        return 1;
    }
    rt_ctx *cx = rt_ctx_external(rt);
    rt_httpd_route route = {"/", rt_spawn(cx, &ok_type, NULL, NULL)};
    rt_httpd_opts o = {.port = (int)port, .routes = &route, .nroutes = 1, .max_conns = 4096};
    rt_httpd *h = rt_httpd_start(rt, &o, &err);
    if (!h) {
        fprintf(stderr, "bench_httpd_server: %s\n", rt_strerror(err));
        return 1;
    }
    printf("READY port=%d\n", rt_httpd_port(h));
    fflush(stdout);
    struct timespec ts = {(time_t)seconds, 0};
    sigtimedwait(&set, NULL, &ts);
    rt_httpd_stop(h, 1000);
    rt_lws_stop(l);
    rt_shutdown(rt, RT_SHUTDOWN_DRAIN, 5000);
    rt_runtime_free(rt);
    return 0;
}
