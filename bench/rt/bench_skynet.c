/*
 * bench_skynet — the skynet benchmark: 1,111,111 actors in a 10-ary tree sum 0..999,999.
 *
 * Every node is spawned by its parent and started with one message. A node of size 1 (a
 * leaf) replies its number and ends; an inner node spawns ten children, sums their ten
 * replies, replies the sum to its own parent and ends. The root's "parent" is main(),
 * reached through bench_done.
 *
 * Prints: RESULT bench=skynet impl=hermes time_ms=... peak_rss_kb=... sum=... actors=...
 */
#include "bench_common.h"

#include "rt_msg.h"

#include <inttypes.h>

#define SK_LEAVES   1000000 /* numbers 0..999,999 */
#define SK_DIV      10      /* children per inner node */
#define SK_EXPECTED 499999500000LL

enum {
    SK_MSG_START = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1), /* no payload: the state says it all */
    SK_MSG_SUM = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 2),   /* a child's subtotal */
};

typedef struct sk_msg_sum {
    rt_msg hdr;
    int64_t v;
} sk_msg_sum;

typedef struct sk_node {
    rt_ref parent; /* 0: the root, which reports to main() */
    int64_t num;   /* first number of this subtree */
    int64_t size;  /* numbers in this subtree; 1 for a leaf */
    int64_t sum;   /* subtotal so far */
    int pending;   /* replies still expected */
} sk_node;

/* Written by the root before it posts `done`; read by main() after the wait. */
static struct {
    bench_done done;
    int64_t sum;
    int64_t end_ns;
} sk_result;

static void sk_behave(rt_ctx *cx, void *state, rt_msg *m);
static const rt_actor_type sk_type = {"skynet", sk_behave, NULL, sizeof(sk_node)};

static void sk_reply(rt_ctx *cx, sk_node *n, int64_t v)
{
    if (!n->parent) {
        sk_result.sum = v;
        sk_result.end_ns = rt_now_ns(rt_ctx_runtime(cx));
        bench_done_post(&sk_result.done);
    } else {
        sk_msg_sum *r = RT_MSG_NEW(sk_msg_sum, SK_MSG_SUM);
        r->v = v;
        rt_send(cx, n->parent, &r->hdr);
    }
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void sk_on_start(rt_ctx *cx, sk_node *n)
{
    if (n->size == 1) {
        sk_reply(cx, n, n->num);
        return;
    }
    int64_t sub = n->size / SK_DIV;
    rt_ref self = rt_self(cx);
    for (int i = 0; i < SK_DIV; i++) {
        sk_node c = {.parent = self, .num = n->num + i * sub, .size = sub};
        rt_ref r = rt_spawn(cx, &sk_type, &c, NULL);
        rt_send(cx, r, rt_msg_new(SK_MSG_START, sizeof(rt_msg)));
    }
    n->pending = SK_DIV;
}

static void sk_on_sum(rt_ctx *cx, sk_node *n, const sk_msg_sum *s)
{
    n->sum += s->v;
    if (--n->pending == 0)
        sk_reply(cx, n, n->sum);
}

static void sk_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    sk_node *n = state;
    switch (m->type) {
    case SK_MSG_START: sk_on_start(cx, n); break;
    case SK_MSG_SUM: sk_on_sum(cx, n, (const sk_msg_sum *)m); break;
    default: break;
    }
}

int main(void)
{
    rt_runtime *rt = bench_runtime_new(0);
    rt_ctx *cx = rt_ctx_external(rt);
    bench_done_init(&sk_result.done);

    int64_t t0 = rt_now_ns(rt);
    sk_node root = {.parent = 0, .num = 0, .size = SK_LEAVES};
    rt_ref r = rt_spawn(cx, &sk_type, &root, NULL);
    rt_send(cx, r, rt_msg_new(SK_MSG_START, sizeof(rt_msg)));
    bench_done_wait(&sk_result.done, "skynet");

    double ms = (double)(sk_result.end_ns - t0) / 1e6;
    rt_stats st;
    rt_stats_get(rt, &st);
    long peak = bench_peak_rss_kb();
    printf("RESULT bench=skynet impl=hermes time_ms=%.1f peak_rss_kb=%ld sum=%" PRId64
           " actors=%" PRIu64 " workers=%d steals=%" PRIu64 " parks=%" PRIu64 "\n",
           ms, peak, sk_result.sum, st.spawned, rt_workers(rt), st.total.steals, st.total.parks);
    (void)fflush(stdout); /* a lost RESULT line shows up as a failed run */
    int rc = sk_result.sum == SK_EXPECTED ? 0 : 1;
    if (rc)
        (void)fprintf(stderr, "skynet: wrong sum %" PRId64 " (want %lld)\n", sk_result.sum,
                      SK_EXPECTED);
    rt_runtime_free(rt);
    bench_done_fini(&sk_result.done);
    return rc;
}
