/*
 * bench_idle — 1,000,000 live idle actors: how long they take to spawn and what each costs
 * in resident memory.
 *
 * A spawner actor creates the actors in slices of ID_SLICE (re-sending itself ID_MSG_MORE
 * between slices) and sends each a hello; each actor answers a counter actor once and then
 * sits idle, alive, with an empty mailbox. Reported:
 *   spawn_ms         the spawner's loop of rt_spawn + first send, until the last actor
 *                    exists and is runnable (what Go's `go` and Erlang's spawn() give);
 *   ready_ms         until every actor has run once and answered (all live and idle);
 *   bytes_per_actor  resident set after ready minus before spawning, divided by 1e6.
 *
 * Idle actors have no state of their own (state_size 0): the number is the runtime's own
 * per-actor cost (actor header, mailbox stubs, registry entry, allocator overhead).
 *
 * Prints: RESULT bench=idle impl=hermes spawn_ms=... ready_ms=... bytes_per_actor=...
 */
#include "bench_common.h"

#include "rt_msg.h"

#include <inttypes.h>

#define ID_ACTORS 1000000
#define ID_SLICE  1000

enum {
    ID_MSG_MORE = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1),    /* spawner: next slice */
    ID_MSG_HELLO = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 2),   /* spawner -> idle actor */
    ID_MSG_READY = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 3),   /* idle actor -> counter */
    ID_MSG_SPAWNED = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 4), /* spawner -> counter: all exist */
};

typedef struct id_msg_spawned {
    rt_msg hdr;
    int64_t at_ns; /* when the last actor was spawned */
} id_msg_spawned;

typedef struct id_msg_hello {
    rt_msg hdr;
    rt_ref counter;
} id_msg_hello;

typedef struct id_spawner {
    rt_ref counter;
    int64_t spawned;
} id_spawner;

typedef struct id_counter {
    int64_t ready;      /* idle actors that answered */
    int64_t spawned_ns; /* from ID_MSG_SPAWNED; 0 until it arrives */
} id_counter;

/* Written by the counter before it posts `done`; read by main() after the wait. */
static struct {
    bench_done done;
    int64_t spawned_ns;
    int64_t ready_ns;
} id_result;

static void idle_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type == ID_MSG_HELLO)
        rt_send(cx, ((id_msg_hello *)m)->counter, rt_msg_new(ID_MSG_READY, sizeof(rt_msg)));
}
static const rt_actor_type idle_type = {"idle", idle_behave, NULL, 0};

static void spawner_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    id_spawner *s = state;
    if (m->type != ID_MSG_MORE)
        return;
    for (int i = 0; i < ID_SLICE && s->spawned < ID_ACTORS; i++, s->spawned++) {
        rt_ref a = rt_spawn(cx, &idle_type, NULL, NULL);
        id_msg_hello *h = RT_MSG_NEW(id_msg_hello, ID_MSG_HELLO);
        h->counter = s->counter;
        rt_send(cx, a, &h->hdr);
    }
    if (s->spawned < ID_ACTORS) {
        rt_send(cx, rt_self(cx), rt_msg_new(ID_MSG_MORE, sizeof(rt_msg)));
        return;
    }
    id_msg_spawned *d = RT_MSG_NEW(id_msg_spawned, ID_MSG_SPAWNED);
    d->at_ns = rt_now_ns(rt_ctx_runtime(cx));
    rt_send(cx, s->counter, &d->hdr);
    rt_exit(cx, RT_EXIT_NORMAL);
}
static const rt_actor_type spawner_type = {"id_spawner", spawner_behave, NULL, sizeof(id_spawner)};

static void counter_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    id_counter *c = state;
    if (m->type == ID_MSG_READY && ++c->ready == ID_ACTORS)
        id_result.ready_ns = rt_now_ns(rt_ctx_runtime(cx));
    else if (m->type == ID_MSG_SPAWNED)
        c->spawned_ns = ((id_msg_spawned *)m)->at_ns;
    if (c->ready < ID_ACTORS || !c->spawned_ns)
        return;
    id_result.spawned_ns = c->spawned_ns;
    bench_done_post(&id_result.done);
    rt_exit(cx, RT_EXIT_NORMAL);
}
static const rt_actor_type counter_type = {"id_counter", counter_behave, NULL, sizeof(id_counter)};

int main(void)
{
    rt_runtime *rt = bench_runtime_new(0);
    rt_ctx *cx = rt_ctx_external(rt);
    bench_done_init(&id_result.done);

    rt_ref counter = rt_spawn(cx, &counter_type, NULL, NULL);
    id_spawner init = {.counter = counter};
    rt_ref sp = rt_spawn(cx, &spawner_type, &init, NULL);
    long rss0 = bench_rss_kb();
    int64_t t0 = rt_now_ns(rt);
    rt_send(cx, sp, rt_msg_new(ID_MSG_MORE, sizeof(rt_msg)));
    bench_done_wait(&id_result.done, "idle");
    /* Every idle actor has answered; let the two helpers' ends be reaped too, so the
     * reading holds only live idle actors. */
    if (rt_wait_quiescent(rt, 10000) != 0)
        (void)fprintf(stderr,
                      "idle: runtime not quiescent after 10 s; RSS may include queued mail\n");
    long rss1 = bench_rss_kb();

    rt_stats st;
    rt_stats_get(rt, &st);
    double per = (double)(rss1 - rss0) * 1024.0 / ID_ACTORS;
    printf("RESULT bench=idle impl=hermes spawn_ms=%.1f ready_ms=%.1f bytes_per_actor=%.0f "
           "rss_before_kb=%ld rss_after_kb=%ld peak_rss_kb=%ld alive=%" PRIu64 " workers=%d\n",
           (double)(id_result.spawned_ns - t0) / 1e6, (double)(id_result.ready_ns - t0) / 1e6, per,
           rss0, rss1, bench_peak_rss_kb(), st.spawned - st.exited, rt_workers(rt));
    (void)fflush(stdout); /* a lost RESULT line shows up as a failed run */
    rt_runtime_free(rt);
    bench_done_fini(&id_result.done);
    return 0;
}
