/*
 * Actors: FIFO per sender, urgent before normal, never on two threads at once, links and
 * interrupts through three levels, monitors, dead letters, names, shutdown with messages
 * in flight, and a million actors spawned and stopped without a leak.
 */
#include "rt_actor.h"
#include "rt_alloc.h"
#include "rt_sched.h"
#include "test.h"

#include <errno.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

enum {
    T_SEQ = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1),
    T_GO = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 2),
    T_BLOCK = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 3),
    T_PING = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 4),
    T_BUILD = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 5),
    T_DIE = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 6),
    T_PAYLOAD = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 7),
};

typedef struct seq_msg {
    rt_msg hdr;
    int sender;
    int seq;
    rt_ref ref;
} seq_msg;

static rt_runtime *start(int workers)
{
    rt_options o = {.workers = workers};
    return rt_runtime_new(&o);
}

static void quiet(rt_runtime *rt)
{
    ASSERT_OK(rt_wait_quiescent(rt, 30000));
}

/* ========================================================= per-sender FIFO */

#define SENDERS    4
#define PER_SENDER 50000

typedef struct fifo_rx {
    int next[SENDERS + 1];
    int total;
    int errors;
} fifo_rx;

static void fifo_rx_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    fifo_rx *s = state;
    if (m->type != T_SEQ)
        return; /* RT_MSG_STOP at the end */
    seq_msg *q = (seq_msg *)m;
    if (q->seq != s->next[q->sender])
        s->errors++;
    s->next[q->sender] = q->seq + 1;
    s->total++;
}

typedef struct fifo_tx {
    rt_ref to;
    int id;
    int sent;
} fifo_tx;

/* Sends in slices of 500 and re-sends itself T_GO, so other actors interleave. */
static void fifo_tx_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    fifo_tx *s = state;
    for (int i = 0; i < 500 && s->sent < PER_SENDER; i++) {
        seq_msg *q = RT_MSG_NEW(seq_msg, T_SEQ);
        q->sender = s->id;
        q->seq = s->sent++;
        rt_send(cx, s->to, &q->hdr);
    }
    if (s->sent < PER_SENDER)
        rt_send(cx, rt_self(cx), rt_msg_new(T_GO, sizeof(rt_msg)));
}
static const rt_actor_type fifo_tx_type = {"fifo_tx", fifo_tx_behave, NULL, sizeof(fifo_tx)};

static fifo_rx *rx_state;
static void capture_rx_fini(void *state)
{
    fifo_rx *s = state;
    rx_state = rt_xmemdup(s, sizeof(*s));
}
static const rt_actor_type fifo_rx_type_cap = {"fifo_rx", fifo_rx_behave, capture_rx_fini,
                                               sizeof(fifo_rx)};

TEST(fifo_per_sender_actors_and_external)
{
    rt_runtime *rt = start(2);
    rt_ctx *cx = rt_ctx_external(rt);
    rt_ref rx = rt_spawn(cx, &fifo_rx_type_cap, NULL, NULL);
    for (int i = 0; i < SENDERS; i++) {
        fifo_tx tx = {.to = rx, .id = i};
        rt_ref t = rt_spawn(cx, &fifo_tx_type, &tx, NULL);
        rt_send(cx, t, rt_msg_new(T_GO, sizeof(rt_msg)));
    }
    /* The test thread is a fifth sender, through the injection queue. */
    for (int i = 0; i < PER_SENDER; i++) {
        seq_msg *q = RT_MSG_NEW(seq_msg, T_SEQ);
        q->sender = SENDERS;
        q->seq = i;
        rt_send(cx, rx, &q->hdr);
    }
    quiet(rt);
    rt_stop(cx, rx, RT_EXIT_NORMAL);
    quiet(rt);
    ASSERT_NOT_NULL(rx_state);
    ASSERT_EQ(0, rx_state->errors);
    ASSERT_EQ((SENDERS + 1) * PER_SENDER, rx_state->total);
    rt_free(rx_state);
    rt_runtime_free(rt);
}

/* ===================================================== urgent before normal */

static _Atomic bool gate_open;
static _Atomic bool gate_entered;
static _Atomic int order_log[64];
static _Atomic int order_n;

static void gate_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type == T_BLOCK) {
        atomic_store(&gate_entered, true);
        while (!atomic_load(&gate_open))
            usleep(100);
        return;
    }
    int v = m->type == RT_MSG_INTERRUPT ? -1 : ((seq_msg *)m)->seq;
    int i = atomic_fetch_add(&order_n, 1);
    if (i < 64)
        atomic_store(&order_log[i], v);
}
static const rt_actor_type gate_type = {"gate", gate_behave, NULL, 0};

TEST(urgent_lane_drained_before_normal)
{
    rt_runtime *rt = start(2);
    rt_ctx *cx = rt_ctx_external(rt);
    rt_ref a = rt_spawn(cx, &gate_type, NULL, NULL);
    rt_send(cx, a, rt_msg_new(T_BLOCK, sizeof(rt_msg)));
    while (!atomic_load(&gate_entered))
        usleep(100);
    for (int i = 0; i < 10; i++) {
        seq_msg *q = RT_MSG_NEW(seq_msg, T_SEQ);
        q->seq = i;
        rt_send(cx, a, &q->hdr);
    }
    rt_interrupt(cx, a, 1);
    atomic_store(&gate_open, true);
    quiet(rt);
    ASSERT_EQ(11, atomic_load(&order_n));
    ASSERT_EQ(-1, atomic_load(&order_log[0]));
    for (int i = 1; i < 11; i++)
        ASSERT_EQ(i - 1, atomic_load(&order_log[i]));
    rt_runtime_free(rt);
}

/* ============================================= never on two threads at once */

#define EXCL_ACTORS 200
#define EXCL_ROUNDS 2000

typedef struct excl {
    _Atomic int inside; /* must be 0 on entry */
    int count;          /* plain: a second thread here would be a data race under TSan */
    rt_ref peers[4];
} excl;

typedef struct peers_msg {
    rt_msg hdr;
    rt_ref peers[4];
} peers_msg;

static _Atomic int excl_violations;
static _Atomic long excl_total;

static void excl_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    excl *s = state;
    if (atomic_exchange(&s->inside, 1) != 0)
        atomic_fetch_add(&excl_violations, 1);
    s->count++;
    if (m->type == T_PING) {
        memcpy(s->peers, ((peers_msg *)m)->peers, sizeof(s->peers));
    } else {
        seq_msg *q = (seq_msg *)m;
        for (int i = 0; q->seq > 0 && i < 2; i++) {
            seq_msg *f = RT_MSG_NEW(seq_msg, T_SEQ);
            f->seq = q->seq - 1;
            rt_send(cx, s->peers[(q->seq + i) % 4], &f->hdr);
        }
        atomic_fetch_add_explicit(&excl_total, 1, memory_order_relaxed);
    }
    atomic_store(&s->inside, 0);
}
static const rt_actor_type excl_type = {"excl", excl_behave, NULL, sizeof(excl)};

TEST(no_actor_runs_on_two_threads_at_once)
{
    rt_runtime *rt = start(0);
    rt_ctx *cx = rt_ctx_external(rt);
    static rt_ref ids[EXCL_ACTORS];
    for (int i = 0; i < EXCL_ACTORS; i++)
        ids[i] = rt_spawn(cx, &excl_type, NULL, NULL);
    for (int i = 0; i < EXCL_ACTORS; i++) {
        peers_msg *p = RT_MSG_NEW(peers_msg, T_PING);
        for (int k = 0; k < 4; k++)
            p->peers[k] = ids[(i * 7 + k * 13 + 1) % EXCL_ACTORS];
        rt_send(cx, ids[i], &p->hdr);
    }
    quiet(rt);
    /* Each seed fans out to 1 + 2 + 4 + 8 handlings across many actors at once. */
    for (int r = 0; r < EXCL_ROUNDS; r++) {
        seq_msg *q = RT_MSG_NEW(seq_msg, T_SEQ);
        q->seq = 3;
        rt_send(cx, ids[r % EXCL_ACTORS], &q->hdr);
    }
    quiet(rt);
    ASSERT_EQ(0, atomic_load(&excl_violations));
    ASSERT_EQ(15L * EXCL_ROUNDS, atomic_load(&excl_total));
    rt_stats st;
    rt_stats_get(rt, &st);
    ASSERT_EQ(0, st.dead_letters);
    rt_runtime_free(rt);
}

/* ======================== urgent mail overtakes the run queues (rt_actor.c rule 5) */

#define QUEUED 100
static _Atomic int ran_order[QUEUED + 2];
static _Atomic int ran_n;

static void recorder_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)cx;
    if (m->type != T_SEQ && m->type != RT_MSG_INTERRUPT)
        return;
    int who = *(int *)state;
    int i = atomic_fetch_add(&ran_n, 1);
    if (i < QUEUED + 2)
        atomic_store(&ran_order[i], m->type == RT_MSG_INTERRUPT ? -who : who);
}
static const rt_actor_type recorder_type = {"recorder", recorder_behave, NULL, sizeof(int)};

TEST(urgent_mail_to_a_queued_actor_runs_it_ahead_of_the_queue)
{
    /* One worker, held by the gate; 100 actors queue up behind it, the target last. An
     * interrupt for the target must run it before the 100 (it keeps its queue place too). */
    atomic_store(&gate_open, false);
    atomic_store(&gate_entered, false);
    rt_runtime *rt = start(1);
    rt_ctx *cx = rt_ctx_external(rt);
    rt_ref gate = rt_spawn(cx, &gate_type, NULL, NULL);
    rt_send(cx, gate, rt_msg_new(T_BLOCK, sizeof(rt_msg)));
    for (int i = 0; i < 30000 && !atomic_load(&gate_entered); i++)
        usleep(1000);
    ASSERT_TRUE(atomic_load(&gate_entered));
    rt_ref r[QUEUED + 1];
    for (int i = 0; i <= QUEUED; i++) {
        int who = i + 1; /* the target is QUEUED + 1 */
        r[i] = rt_spawn(cx, &recorder_type, &who, NULL);
        seq_msg *q = RT_MSG_NEW(seq_msg, T_SEQ);
        rt_send(cx, r[i], &q->hdr); /* queued: the only worker is busy */
    }
    ASSERT_TRUE(rt_interrupt(cx, r[QUEUED], 7));
    rt_stats st0;
    rt_stats_get(rt, &st0);
    atomic_store(&gate_open, true);
    quiet(rt);
    ASSERT_EQ(QUEUED + 2, atomic_load(&ran_n));
    /* the target first: its interrupt (urgent lane), then its queued message */
    ASSERT_EQ(-(QUEUED + 1), atomic_load(&ran_order[0]));
    ASSERT_EQ(QUEUED + 1, atomic_load(&ran_order[1]));
    for (int i = 2; i < QUEUED + 2; i++)
        ASSERT_EQ(i - 1, atomic_load(&ran_order[i]));
    rt_stats st;
    rt_stats_get(rt, &st);
    ASSERT_EQ(0, st.dead_letters);
    rt_runtime_free(rt);
}

/* Boosted runs against queued runs, from many threads at once: never two runs of one actor
 * at a time, nothing lost, and an exit asked for in a boosted run still ends the actor. */
#define BOOST_ACTORS 64
#define BOOST_ROUNDS 3000
static _Atomic long boost_handled;
static _Atomic int boost_ended;

static void boost_fini(void *state)
{
    (void)state;
    atomic_fetch_add(&boost_ended, 1);
}

static void boost_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    excl *s = state;
    if (atomic_exchange(&s->inside, 1) != 0)
        atomic_fetch_add(&excl_violations, 1);
    s->count++;
    if (m->type == T_DIE)
        rt_exit(cx, RT_EXIT_NORMAL);
    else if (m->type == T_SEQ || m->type == RT_MSG_INTERRUPT)
        atomic_fetch_add_explicit(&boost_handled, 1, memory_order_relaxed);
    atomic_store(&s->inside, 0);
}
static const rt_actor_type boost_type = {"boosted", boost_behave, boost_fini, sizeof(excl)};

typedef struct boost_sender {
    rt_runtime *rt;
    rt_ref *ids;
    int seed;
} boost_sender;

static void *boost_send_thread(void *arg)
{
    boost_sender *b = arg;
    rt_ctx *cx = rt_ctx_external(b->rt);
    for (int r = 0; r < BOOST_ROUNDS; r++) {
        rt_ref to = b->ids[(r * 7 + b->seed) % BOOST_ACTORS];
        if (r % 3 == 0) {
            rt_interrupt(cx, to, 1);
        } else {
            seq_msg *q = RT_MSG_NEW(seq_msg, T_SEQ);
            rt_send(cx, to, &q->hdr);
        }
    }
    return NULL;
}

TEST(boosted_and_queued_runs_never_overlap)
{
    atomic_store(&excl_violations, 0);
    rt_runtime *rt = start(2);
    rt_ctx *cx = rt_ctx_external(rt);
    static rt_ref ids[BOOST_ACTORS];
    for (int i = 0; i < BOOST_ACTORS; i++)
        ids[i] = rt_spawn(cx, &boost_type, NULL, NULL);
    pthread_t th[3];
    boost_sender bs[3];
    for (int t = 0; t < 3; t++) {
        bs[t] = (boost_sender){rt, ids, t * 11};
        ASSERT_EQ(0, pthread_create(&th[t], NULL, boost_send_thread, &bs[t]));
    }
    for (int t = 0; t < 3; t++)
        pthread_join(th[t], NULL);
    quiet(rt);
    ASSERT_EQ(0, atomic_load(&excl_violations));
    ASSERT_EQ(3L * BOOST_ROUNDS, atomic_load(&boost_handled));
    /* every actor told to end with normal mail queued behind, then interrupted at once: the
     * interrupt may run it boosted, its end still comes */
    for (int i = 0; i < BOOST_ACTORS; i++) {
        rt_send(cx, ids[i], rt_msg_new(T_DIE, sizeof(rt_msg)));
        for (int k = 0; k < 4; k++)
            rt_send(cx, ids[i], &RT_MSG_NEW(seq_msg, T_SEQ)->hdr);
        rt_interrupt(cx, ids[i], 2);
    }
    quiet(rt);
    ASSERT_EQ(BOOST_ACTORS, atomic_load(&boost_ended));
    ASSERT_EQ(0, atomic_load(&excl_violations));
    rt_runtime_free(rt);
}

/* ================================== links and interrupts through three levels */

static _Atomic int interrupted[8];
static _Atomic int exit_reason_seen = -1;
static _Atomic int ended[8];

typedef struct node {
    int level;
    int trap;
} node;

static void node_fini(void *state)
{
    node *n = state;
    atomic_store(&ended[n->level], 1);
}

static void node_behave(rt_ctx *cx, void *state, rt_msg *m);
static const rt_actor_type node_type = {"node", node_behave, node_fini, sizeof(node)};

static void node_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    node *n = state;
    switch (m->type) {
    case T_BUILD:
        if (n->level < 3) {
            node child = {.level = n->level + 1};
            rt_spawn_opts o = {.flags = RT_SPAWN_LINK};
            rt_ref c = rt_spawn(cx, &node_type, &child, &o);
            rt_send(cx, c, rt_msg_new(T_BUILD, sizeof(rt_msg)));
        } else {
            rt_register_name(cx, "leaf"); /* so the test can make it fail */
        }
        break;
    case RT_MSG_INTERRUPT: atomic_fetch_add(&interrupted[n->level], 1); break;
    case T_DIE: rt_exit(cx, RT_EXIT_ERROR); break;
    case RT_MSG_EXIT:
        /* Only the trapping root gets here. */
        atomic_store(&exit_reason_seen, ((rt_msg_exit *)m)->reason);
        break;
    default: break;
    }
}

TEST(link_and_interrupt_propagation_three_levels)
{
    rt_runtime *rt = start(2);
    rt_ctx *cx = rt_ctx_external(rt);
    node root = {.level = 0};
    rt_spawn_opts o = {.flags = RT_SPAWN_TRAP_EXIT, .name = "root"};
    rt_ref r = rt_spawn(cx, &node_type, &root, &o);
    ASSERT_NE(0, r);
    ASSERT_EQ(r, rt_whereis(cx, "root"));
    node dup = {.level = 7};
    ASSERT_EQ(0, rt_spawn(cx, &node_type, &dup, &o)); /* the name is taken */
    ASSERT_EQ(1, atomic_load(&ended[7]));             /* and its state was released */
    rt_send(cx, r, rt_msg_new(T_BUILD, sizeof(rt_msg)));
    quiet(rt);
    rt_ref leaf = rt_whereis(cx, "leaf");
    ASSERT_NE(0, leaf);

    rt_interrupt(cx, r, 7);
    quiet(rt);
    for (int l = 0; l <= 3; l++)
        ASSERT_EQ(1, atomic_load(&interrupted[l]));

    /* The leaf fails: levels 2 and 1 die with it; the trapping root is told. */
    rt_send(cx, leaf, rt_msg_new(T_DIE, sizeof(rt_msg)));
    quiet(rt);
    ASSERT_EQ(1, atomic_load(&ended[3]));
    ASSERT_EQ(1, atomic_load(&ended[2]));
    ASSERT_EQ(1, atomic_load(&ended[1]));
    ASSERT_EQ(0, atomic_load(&ended[0]));
    ASSERT_EQ(RT_EXIT_LINKED, atomic_load(&exit_reason_seen));
    ASSERT_FALSE(rt_is_alive(cx, leaf));
    ASSERT_EQ(0, rt_whereis(cx, "leaf"));
    ASSERT_TRUE(rt_is_alive(cx, r));
    rt_runtime_free(rt);
    ASSERT_EQ(1, atomic_load(&ended[0])); /* ended by the runtime at teardown */
}

/* ================================================================ monitors */

typedef struct watcher {
    rt_ref target;
    uint64_t mon;
} watcher;

static _Atomic int downs;
static _Atomic int down_reason = -1;
static _Atomic int down_mon_matches;

static void watcher_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    watcher *w = state;
    if (m->type == T_GO) {
        w->mon = rt_monitor(cx, w->target);
    } else if (m->type == T_PING) {
        rt_demonitor(cx, w->target, w->mon);
    } else if (m->type == RT_MSG_DOWN) {
        rt_msg_down *d = (rt_msg_down *)m;
        atomic_fetch_add(&downs, 1);
        atomic_store(&down_reason, d->reason);
        if (d->mon == w->mon && d->ref == w->target)
            atomic_fetch_add(&down_mon_matches, 1);
    }
}
static const rt_actor_type watcher_type = {"watcher", watcher_behave, NULL, sizeof(watcher)};

static void victim_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type == T_DIE)
        rt_exit(cx, RT_EXIT_USER + 42);
}
static const rt_actor_type victim_type = {"victim", victim_behave, NULL, 0};

TEST(monitor_down_noproc_and_demonitor)
{
    rt_runtime *rt = start(2);
    rt_ctx *cx = rt_ctx_external(rt);
    rt_ref v = rt_spawn(cx, &victim_type, NULL, NULL);
    watcher w = {.target = v};
    rt_ref wa = rt_spawn(cx, &watcher_type, &w, NULL);
    rt_send(cx, wa, rt_msg_new(T_GO, sizeof(rt_msg)));
    quiet(rt);
    rt_send(cx, v, rt_msg_new(T_DIE, sizeof(rt_msg)));
    quiet(rt);
    ASSERT_EQ(1, atomic_load(&downs));
    ASSERT_EQ(RT_EXIT_USER + 42, atomic_load(&down_reason));
    ASSERT_EQ(1, atomic_load(&down_mon_matches));

    /* Monitoring something that never existed: DOWN with NOPROC at once. */
    watcher w2 = {.target = 999999999};
    rt_ref wb = rt_spawn(cx, &watcher_type, &w2, NULL);
    rt_send(cx, wb, rt_msg_new(T_GO, sizeof(rt_msg)));
    quiet(rt);
    ASSERT_EQ(2, atomic_load(&downs));
    ASSERT_EQ(RT_EXIT_NOPROC, atomic_load(&down_reason));

    /* Demonitor: no DOWN when the target later ends. */
    rt_ref v3 = rt_spawn(cx, &victim_type, NULL, NULL);
    watcher w3 = {.target = v3};
    rt_ref wc = rt_spawn(cx, &watcher_type, &w3, NULL);
    rt_send(cx, wc, rt_msg_new(T_GO, sizeof(rt_msg)));
    quiet(rt);
    rt_send(cx, wc, rt_msg_new(T_PING, sizeof(rt_msg)));
    quiet(rt);
    rt_send(cx, v3, rt_msg_new(T_DIE, sizeof(rt_msg)));
    quiet(rt);
    ASSERT_EQ(2, atomic_load(&downs));
    rt_runtime_free(rt);
}

/* ============================================================= dead letters */

static void idle_behave(rt_ctx *cx, void *state, rt_msg *m)
{
}
static const rt_actor_type idle_type = {"idle", idle_behave, NULL, 0};

TEST(dead_letters_are_counted_not_crashes)
{
    rt_runtime *rt = start(2);
    rt_ctx *cx = rt_ctx_external(rt);
    ASSERT_FALSE(rt_send(cx, 123456789, rt_msg_new(T_PING, sizeof(rt_msg))));
    rt_ref a = rt_spawn(cx, &idle_type, NULL, NULL);
    ASSERT_TRUE(rt_send(cx, a, rt_msg_new(T_PING, sizeof(rt_msg))));
    quiet(rt); /* handled: not a dead letter */
    rt_kill(cx, a);
    quiet(rt);
    ASSERT_FALSE(rt_is_alive(cx, a));
    ASSERT_FALSE(rt_send(cx, a, rt_msg_new(T_PING, sizeof(rt_msg))));
    rt_stats st;
    rt_stats_get(rt, &st);
    ASSERT_EQ(2, st.dead_letters);
    ASSERT_EQ(1, st.spawned);
    ASSERT_EQ(1, st.exited);
    rt_runtime_free(rt);
}

/* A kill is urgent: mail still queued when it lands is dropped and counted at reaping. */
TEST(mail_queued_behind_a_kill_is_counted)
{
    rt_runtime *rt = start(1);
    rt_ctx *cx = rt_ctx_external(rt);
    atomic_store(&gate_open, false);
    rt_ref a = rt_spawn(cx, &gate_type, NULL, NULL);
    rt_send(cx, a, rt_msg_new(T_BLOCK, sizeof(rt_msg)));
    while (!atomic_load(&gate_entered)) /* else the urgent kill would overtake the block too */
        usleep(100);
    for (int i = 0; i < 5; i++)
        rt_send(cx, a, rt_msg_new(T_PING, sizeof(rt_msg)));
    rt_kill(cx, a);
    atomic_store(&gate_open, true);
    quiet(rt);
    /* Counted when the reaper frees the actor, one RCU grace period after its death. */
    rt_stats st;
    for (int i = 0; i < 10000; i++) {
        rt_stats_get(rt, &st);
        if (st.dead_letters == 5)
            break;
        usleep(1000);
    }
    ASSERT_EQ(5, st.dead_letters);
    rt_runtime_free(rt);
}

/* ============================================= shutdown with messages in flight */

static _Atomic long payload_allocs, payload_drops;

typedef struct payload_msg {
    rt_msg hdr;
    char *data;
} payload_msg;

static void payload_drop(rt_msg *m)
{
    payload_msg *p = (payload_msg *)m;
    if (p->data) {
        rt_free(p->data);
        atomic_fetch_add(&payload_drops, 1);
    }
}

static rt_msg *payload_new(void)
{
    payload_msg *p = RT_MSG_NEW(payload_msg, T_PAYLOAD);
    p->data = rt_xstrdup("owned payload");
    p->hdr.drop = payload_drop;
    atomic_fetch_add(&payload_allocs, 1);
    return &p->hdr;
}

typedef struct looper {
    rt_ref peer;
} looper;

static void looper_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    looper *l = state;
    /* Endless traffic: every message begets two, bounded only by shutdown. */
    if (atomic_load_explicit(&payload_allocs, memory_order_relaxed) < 2000000) {
        rt_send(cx, rt_self(cx), payload_new());
        rt_send(cx, l->peer, payload_new());
    }
}
static const rt_actor_type looper_type = {"looper", looper_behave, NULL, sizeof(looper)};

TEST(shutdown_with_messages_in_flight_drops_everything)
{
    rt_runtime *rt = start(2);
    rt_ctx *cx = rt_ctx_external(rt);
    rt_ref prev = rt_spawn(cx, &idle_type, NULL, NULL);
    for (int i = 0; i < 1000; i++) {
        looper l = {.peer = prev};
        prev = rt_spawn(cx, &looper_type, &l, NULL);
        rt_send(cx, prev, payload_new());
    }
    usleep(50000);
    rt_runtime_free(rt); /* DROP: queued messages are dropped, actors ended */
    ASSERT_GT(atomic_load(&payload_allocs), 1000);
    ASSERT_EQ(atomic_load(&payload_allocs), atomic_load(&payload_drops));
}

TEST(drain_shutdown_waits_for_work)
{
    rt_runtime *rt = start(2);
    rt_ctx *cx = rt_ctx_external(rt);
    rx_state = NULL;
    rt_ref rx = rt_spawn(cx, &fifo_rx_type_cap, NULL, NULL);
    for (int i = 0; i < 10000; i++) {
        seq_msg *q = RT_MSG_NEW(seq_msg, T_SEQ);
        q->seq = i;
        rt_send(cx, rx, &q->hdr);
    }
    ASSERT_OK(rt_shutdown(rt, RT_SHUTDOWN_DRAIN, 30000));
    rt_runtime_free(rt);
    ASSERT_NOT_NULL(rx_state);
    ASSERT_EQ(10000, rx_state->total);
    ASSERT_EQ(0, rx_state->errors);
    rt_free(rx_state);
}

/* ================================== a million actors spawned and stopped */

static long million(void)
{
    const char *env = getenv("RT_TEST_MILLION");
    return env && atol(env) > 0 ? atol(env) : 1000000; /* test knob; bad value = default */
}

typedef struct spawner {
    long left;
} spawner;
static _Atomic rt_ref first_short; /* the spawner's first child, long gone at the end */

static void short_lived_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    rt_exit(cx, RT_EXIT_NORMAL);
}
static const rt_actor_type short_lived_type = {"short", short_lived_behave, NULL, 16};

static void spawner_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    spawner *s = state;
    for (int i = 0; i < 1000 && s->left > 0; i++, s->left--) {
        rt_ref c = rt_spawn(cx, &short_lived_type, NULL, NULL);
        rt_ref none = 0;
        atomic_compare_exchange_strong(&first_short, &none, c);
        rt_send(cx, c, rt_msg_new(T_GO, sizeof(rt_msg)));
    }
    if (s->left > 0)
        rt_send(cx, rt_self(cx), rt_msg_new(T_GO, sizeof(rt_msg)));
}
static const rt_actor_type spawner_type = {"spawner", spawner_behave, NULL, sizeof(spawner)};

TEST(million_actors_spawned_and_stopped_without_leak)
{
    long n = million();
    rt_runtime *rt = start(0);
    rt_ctx *cx = rt_ctx_external(rt);
    spawner s = {.left = n};
    rt_ref sp = rt_spawn(cx, &spawner_type, &s, NULL);
    rt_send(cx, sp, rt_msg_new(T_GO, sizeof(rt_msg)));
    quiet(rt);
    rt_stats st;
    rt_stats_get(rt, &st);
    ASSERT_EQ(n + 1, (long)st.spawned);
    ASSERT_EQ(n, (long)st.exited);
    ASSERT_EQ(0, st.dead_letters);
    /* The registry gave back the pages of ended actors: at most each worker's current
     * block is left (and the spawner, if a worker block holds it). */
    ASSERT_LE(st.id_pages, (uint64_t)rt_workers(rt) + 1);
    /* A ref whose page is gone is a dead letter, never a crash or another actor. */
    ASSERT_FALSE(rt_send(cx, atomic_load(&first_short), rt_msg_new(T_GO, sizeof(rt_msg))));
    rt_stats_get(rt, &st);
    ASSERT_EQ(1, st.dead_letters);
    rt_runtime_free(rt); /* LeakSanitizer checks the rest at exit */
}

/* Idle actors that are never messaged are ended by teardown. */
TEST(idle_actors_freed_at_teardown)
{
    rt_runtime *rt = start(1);
    rt_ctx *cx = rt_ctx_external(rt);
    for (int i = 0; i < 10000; i++)
        rt_spawn(cx, &idle_type, NULL, NULL);
    rt_runtime_free(rt);
}

/* =========================================================== detached actors */

static _Atomic int det_count;
static _Atomic int det_on_worker;

static void det_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    char name[32] = "";
    pthread_getname_np(pthread_self(), name, sizeof(name));
    if (strncmp(name, "hermes-w", 8) == 0)
        atomic_fetch_add(&det_on_worker, 1);
    if (m->type == T_SEQ) {
        usleep(1000); /* a detached actor may block without holding up a worker */
        atomic_fetch_add(&det_count, 1);
        /* Replies from a detached actor travel like any other send. */
        seq_msg *r = RT_MSG_NEW(seq_msg, T_SEQ);
        r->seq = ((seq_msg *)m)->seq;
        rt_send(cx, ((seq_msg *)m)->ref, &r->hdr);
    }
}
static const rt_actor_type det_type = {"det", det_behave, NULL, 0};

TEST(detached_actor_blocks_on_its_own_thread)
{
    rt_runtime *rt = start(1);
    rt_ctx *cx = rt_ctx_external(rt);
    rx_state = NULL;
    rt_ref rx = rt_spawn(cx, &fifo_rx_type_cap, NULL, NULL);
    rt_spawn_opts o = {.flags = RT_SPAWN_DETACHED};
    rt_ref d = rt_spawn(cx, &det_type, NULL, &o);
    for (int i = 0; i < 50; i++) {
        seq_msg *q = RT_MSG_NEW(seq_msg, T_SEQ);
        q->seq = i;
        q->ref = rx;
        rt_send(cx, d, &q->hdr);
    }
    quiet(rt); /* waits for the detached thread too */
    ASSERT_EQ(50, atomic_load(&det_count));
    ASSERT_EQ(0, atomic_load(&det_on_worker));
    rt_stop(cx, rx, RT_EXIT_NORMAL);
    rt_stop(cx, d, RT_EXIT_NORMAL);
    quiet(rt);
    ASSERT_FALSE(rt_is_alive(cx, d));
    ASSERT_NOT_NULL(rx_state);
    ASSERT_EQ(50, rx_state->total);
    ASSERT_EQ(0, rx_state->errors);
    rt_free(rx_state);
    rt_runtime_free(rt);
}
