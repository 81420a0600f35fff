/*
 * bench_fanout — fan-out/fan-in: one parent spawns 100,000 children, sends each a request
 * and collects one reply from each; every child ends after replying.
 *
 * The parent spawns in slices of FO_SLICE and re-sends itself FO_MSG_MORE between slices
 * (bounded work per message, STYLE 3.6), so replies are collected while it still spawns.
 * The time runs from the parent's first message to the last reply.
 *
 * Prints: RESULT bench=fanout impl=hermes time_ms=... children=... peak_rss_kb=...
 */
#include "bench_common.h"

#include "rt_msg.h"

#include <inttypes.h>

#define FO_CHILDREN 100000
#define FO_SLICE    1000

enum {
    FO_MSG_MORE = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1),  /* parent: spawn the next slice */
    FO_MSG_REQ = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 2),   /* parent -> child */
    FO_MSG_REPLY = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 3), /* child -> parent */
};

typedef struct fo_msg_req {
    rt_msg hdr;
    rt_ref reply_to;
    int64_t n;
} fo_msg_req;

typedef struct fo_msg_reply {
    rt_msg hdr;
    int64_t n;
} fo_msg_reply;

typedef struct fo_parent {
    int64_t spawned;
    int64_t replies;
    int64_t sum; /* of the reply values: proves every child answered once */
} fo_parent;

static struct {
    bench_done done;
    int64_t t0_ns, t1_ns;
    int64_t sum;
} fo_result;

static void child_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type != FO_MSG_REQ)
        return;
    fo_msg_req *q = (fo_msg_req *)m;
    fo_msg_reply *r = RT_MSG_NEW(fo_msg_reply, FO_MSG_REPLY);
    r->n = q->n;
    rt_send(cx, q->reply_to, &r->hdr);
    rt_exit(cx, RT_EXIT_NORMAL);
}
static const rt_actor_type child_type = {"fo_child", child_behave, NULL, 0};

static void parent_on_more(rt_ctx *cx, fo_parent *p)
{
    rt_ref self = rt_self(cx);
    if (p->spawned == 0)
        fo_result.t0_ns = rt_now_ns(rt_ctx_runtime(cx));
    for (int i = 0; i < FO_SLICE && p->spawned < FO_CHILDREN; i++) {
        rt_ref c = rt_spawn(cx, &child_type, NULL, NULL);
        fo_msg_req *q = RT_MSG_NEW(fo_msg_req, FO_MSG_REQ);
        q->reply_to = self;
        q->n = p->spawned++;
        rt_send(cx, c, &q->hdr);
    }
    if (p->spawned < FO_CHILDREN)
        rt_send(cx, self, rt_msg_new(FO_MSG_MORE, sizeof(rt_msg)));
}

static void parent_on_reply(rt_ctx *cx, fo_parent *p, const fo_msg_reply *r)
{
    p->sum += r->n;
    if (++p->replies < FO_CHILDREN)
        return;
    fo_result.t1_ns = rt_now_ns(rt_ctx_runtime(cx));
    fo_result.sum = p->sum;
    bench_done_post(&fo_result.done);
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void parent_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    fo_parent *p = state;
    switch (m->type) {
    case FO_MSG_MORE: parent_on_more(cx, p); break;
    case FO_MSG_REPLY: parent_on_reply(cx, p, (const fo_msg_reply *)m); break;
    default: break;
    }
}
static const rt_actor_type parent_type = {"fo_parent", parent_behave, NULL, sizeof(fo_parent)};

int main(void)
{
    rt_runtime *rt = bench_runtime_new(0);
    rt_ctx *cx = rt_ctx_external(rt);
    bench_done_init(&fo_result.done);

    rt_ref p = rt_spawn(cx, &parent_type, NULL, NULL);
    rt_send(cx, p, rt_msg_new(FO_MSG_MORE, sizeof(rt_msg)));
    bench_done_wait(&fo_result.done, "fanout");

    const int64_t want = (int64_t)FO_CHILDREN * (FO_CHILDREN - 1) / 2;
    printf("RESULT bench=fanout impl=hermes time_ms=%.1f children=%d peak_rss_kb=%ld "
           "workers=%d\n",
           (double)(fo_result.t1_ns - fo_result.t0_ns) / 1e6, FO_CHILDREN, bench_peak_rss_kb(),
           rt_workers(rt));
    (void)fflush(stdout); /* a lost RESULT line shows up as a failed run */
    int rc = fo_result.sum == want ? 0 : 1;
    if (rc)
        (void)fprintf(stderr, "fanout: wrong sum %" PRId64 " (want %" PRId64 ")\n", fo_result.sum,
                      want);
    rt_runtime_free(rt);
    bench_done_fini(&fo_result.done);
    return rc;
}
