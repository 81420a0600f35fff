/*
 * bench_pingpong — two actors bounce a ball 1,000,000 times (2,000,000 messages).
 *
 * Each hop allocates a fresh message and sends it, as real actors do; nothing is reused
 * behind the runtime's back. The time runs from the first serve to the last return, both
 * taken inside the ping actor.
 *
 * Prints: RESULT bench=pingpong impl=hermes ns_per_msg=... time_ms=... msgs=...
 */
#include "bench_common.h"

#include "rt_msg.h"

#include <inttypes.h>

#define PP_ROUNDS 1000000

enum {
    PP_MSG_SERVE = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1), /* main -> ping: start */
    PP_MSG_BALL = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 2),  /* ping <-> pong */
};

typedef struct pp_msg_ball {
    rt_msg hdr;
    rt_ref from; /* where the ball goes back to */
} pp_msg_ball;

typedef struct pp_ping {
    rt_ref pong;
    int64_t left; /* round trips still to play */
} pp_ping;

static struct {
    bench_done done;
    int64_t t0_ns, t1_ns;
} pp_result;

static void pp_hit(rt_ctx *cx, rt_ref to)
{
    pp_msg_ball *b = RT_MSG_NEW(pp_msg_ball, PP_MSG_BALL);
    b->from = rt_self(cx);
    rt_send(cx, to, &b->hdr);
}

static void ping_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    pp_ping *p = state;
    switch (m->type) {
    case PP_MSG_SERVE:
        pp_result.t0_ns = rt_now_ns(rt_ctx_runtime(cx));
        pp_hit(cx, p->pong);
        break;
    case PP_MSG_BALL:
        if (--p->left > 0) {
            pp_hit(cx, p->pong);
            break;
        }
        pp_result.t1_ns = rt_now_ns(rt_ctx_runtime(cx));
        bench_done_post(&pp_result.done);
        rt_exit(cx, RT_EXIT_NORMAL);
        break;
    default: break;
    }
}
static const rt_actor_type ping_type = {"ping", ping_behave, NULL, sizeof(pp_ping)};

static void pong_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type == PP_MSG_BALL)
        pp_hit(cx, ((pp_msg_ball *)m)->from);
}
static const rt_actor_type pong_type = {"pong", pong_behave, NULL, 0};

int main(void)
{
    rt_runtime *rt = bench_runtime_new(0);
    rt_ctx *cx = rt_ctx_external(rt);
    bench_done_init(&pp_result.done);

    rt_ref pong = rt_spawn(cx, &pong_type, NULL, NULL);
    pp_ping init = {.pong = pong, .left = PP_ROUNDS};
    rt_ref ping = rt_spawn(cx, &ping_type, &init, NULL);
    rt_send(cx, ping, rt_msg_new(PP_MSG_SERVE, sizeof(rt_msg)));
    bench_done_wait(&pp_result.done, "pingpong");

    int64_t ns = pp_result.t1_ns - pp_result.t0_ns;
    double msgs = 2.0 * PP_ROUNDS;
    rt_stats st;
    rt_stats_get(rt, &st);
    printf("RESULT bench=pingpong impl=hermes ns_per_msg=%.1f time_ms=%.1f msgs=%.0f "
           "peak_rss_kb=%ld workers=%d steals=%" PRIu64 " parks=%" PRIu64 "\n",
           (double)ns / msgs, (double)ns / 1e6, msgs, bench_peak_rss_kb(), rt_workers(rt),
           st.total.steals, st.total.parks);
    (void)fflush(stdout); /* a lost RESULT line shows up as a failed run */
    rt_runtime_free(rt);
    bench_done_fini(&pp_result.done);
    return 0;
}
