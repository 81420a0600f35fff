/*
 * bench_contention — many senders, one receiver: 4 senders push 10,000,000 messages in
 * total into one mailbox.
 *
 * Each sender sends CT_SLICE messages per run and then re-sends itself CT_MSG_MORE, so no
 * behaviour runs unbounded and the scheduler can interleave the receiver (STYLE 3.6). The
 * receiver checks per-sender FIFO order while it counts. The time runs from the start
 * message to the receiver's last message.
 *
 * Prints: RESULT bench=contention impl=hermes time_ms=... msgs_per_s=... peak_rss_kb=...
 */
#include "bench_common.h"

#include "rt_msg.h"

#include <inttypes.h>

#define CT_SENDERS 4
#define CT_TOTAL   10000000
#define CT_PER     (CT_TOTAL / CT_SENDERS)
#define CT_SLICE   1000

enum {
    CT_MSG_MORE = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1), /* sender: send the next slice */
    CT_MSG_DATA = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 2), /* sender -> receiver */
};

typedef struct ct_msg_data {
    rt_msg hdr;
    int32_t sender;
    int32_t seq;
} ct_msg_data;

typedef struct ct_sender {
    rt_ref to;
    int32_t id;
    int32_t sent;
} ct_sender;

typedef struct ct_receiver {
    int64_t got;
    int64_t errors;           /* out-of-order messages; must stay 0 */
    int32_t next[CT_SENDERS]; /* next expected seq per sender */
} ct_receiver;

static struct {
    bench_done done;
    int64_t t0_ns, t1_ns;
    int64_t errors;
} ct_result;

static void sender_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    ct_sender *s = state;
    if (m->type != CT_MSG_MORE)
        return;
    for (int i = 0; i < CT_SLICE && s->sent < CT_PER; i++) {
        ct_msg_data *d = RT_MSG_NEW(ct_msg_data, CT_MSG_DATA);
        d->sender = s->id;
        d->seq = s->sent++;
        rt_send(cx, s->to, &d->hdr);
    }
    if (s->sent < CT_PER)
        rt_send(cx, rt_self(cx), rt_msg_new(CT_MSG_MORE, sizeof(rt_msg)));
    else
        rt_exit(cx, RT_EXIT_NORMAL);
}
static const rt_actor_type sender_type = {"ct_sender", sender_behave, NULL, sizeof(ct_sender)};

static void receiver_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    ct_receiver *r = state;
    if (m->type != CT_MSG_DATA)
        return;
    const ct_msg_data *d = (const ct_msg_data *)m;
    if (d->seq != r->next[d->sender])
        r->errors++;
    r->next[d->sender] = d->seq + 1;
    if (++r->got < CT_TOTAL)
        return;
    ct_result.t1_ns = rt_now_ns(rt_ctx_runtime(cx));
    ct_result.errors = r->errors;
    bench_done_post(&ct_result.done);
    rt_exit(cx, RT_EXIT_NORMAL);
}
static const rt_actor_type receiver_type = {"ct_receiver", receiver_behave, NULL,
                                            sizeof(ct_receiver)};

int main(void)
{
    rt_runtime *rt = bench_runtime_new(0);
    rt_ctx *cx = rt_ctx_external(rt);
    bench_done_init(&ct_result.done);

    rt_ref rx = rt_spawn(cx, &receiver_type, NULL, NULL);
    rt_ref tx[CT_SENDERS];
    for (int i = 0; i < CT_SENDERS; i++) {
        ct_sender s = {.to = rx, .id = i};
        tx[i] = rt_spawn(cx, &sender_type, &s, NULL);
    }
    ct_result.t0_ns = rt_now_ns(rt);
    for (int i = 0; i < CT_SENDERS; i++)
        rt_send(cx, tx[i], rt_msg_new(CT_MSG_MORE, sizeof(rt_msg)));
    bench_done_wait(&ct_result.done, "contention");

    double s = (double)(ct_result.t1_ns - ct_result.t0_ns) / 1e9;
    rt_stats st;
    rt_stats_get(rt, &st);
    printf("RESULT bench=contention impl=hermes time_ms=%.1f msgs_per_s=%.0f msgs=%d "
           "peak_rss_kb=%ld workers=%d steals=%" PRIu64 " parks=%" PRIu64 "\n",
           s * 1e3, CT_TOTAL / s, CT_TOTAL, bench_peak_rss_kb(), rt_workers(rt), st.total.steals,
           st.total.parks);
    (void)fflush(stdout); /* a lost RESULT line shows up as a failed run */
    int rc = ct_result.errors == 0 ? 0 : 1;
    if (rc)
        (void)fprintf(stderr, "contention: %" PRId64 " messages out of order\n", ct_result.errors);
    rt_runtime_free(rt);
    bench_done_fini(&ct_result.done);
    return rc;
}
