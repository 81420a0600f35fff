/*
 * bench_store — appends per second through the store actor, group commit against one
 * transaction per append (the original's way), measured side by side in one run.
 *
 * Two load shapes, each run in both modes on a fresh state.db in a temporary folder:
 *   sessions  64 sender actors, each with one append in flight (a session waits for its
 *             ack before the next message): what the gateway does under load;
 *   burst     8 senders, each with up to 256 appends in flight: a backlog being written.
 * And the same "sessions" shape with synchronous=FULL (an fsync per commit), fewer appends.
 *
 * Prints per run:
 *   RESULT bench=store impl=hermes shape=S sync=normal|full mode=group|each appends=N
 *          time_ms=T appends_per_s=R commits=C appends_per_commit=A
 * and per shape:
 *   RESULT bench=store impl=hermes shape=S sync=... ratio_group_vs_each=X
 */
#include "bench_common.h"

#include "st_store.h"

#include "rt_alloc.h"

#include <ftw.h>
#include <inttypes.h>
#include <stdatomic.h>

enum { BS_MSG_GO = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1) };

typedef struct bs_sender {
    rt_ref store;
    char sid[32];
    int to_send; /* appends not sent yet */
    int to_ack;  /* appends not acked yet */
    int window;  /* appends in flight at most */
    int seq;
} bs_sender;

static struct {
    bench_done done;
    _Atomic int senders_left;
    _Atomic int errors;
    st_msg_stats stats;
} bs;

static const char *const bs_words[] = {"deploy",  "docker", "kubernetes", "matrix", "reminder",
                                       "meeting", "budget", "release",    "backup", "invoice"};

static void bs_send_one(rt_ctx *cx, bs_sender *s)
{
    char body[256];
    snprintf(body, sizeof(body),
             "message %d about the %s and the %s: a typical chat line of a couple of dozen "
             "words, long enough to look like what people actually write to an agent",
             s->seq, bs_words[s->seq % 10], bs_words[(s->seq / 10) % 10]);
    s->seq++;
    st_msg_append *a = st_append_new(s->sid, s->seq % 2 ? "user" : "assistant", body);
    a->req.reply_to = rt_self(cx);
    rt_send(cx, s->store, &a->hdr);
    s->to_send--;
}

static void bs_sender_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    bs_sender *s = state;
    if (m->type == BS_MSG_GO) {
        for (int i = 0; i < s->window && s->to_send > 0; i++)
            bs_send_one(cx, s);
        return;
    }
    if (m->type != ST_MSG_ACK)
        return;
    if (((st_msg_ack *)m)->err)
        atomic_fetch_add(&bs.errors, 1);
    if (s->to_send > 0)
        bs_send_one(cx, s);
    if (--s->to_ack == 0 && atomic_fetch_sub(&bs.senders_left, 1) == 1)
        bench_done_post(&bs.done);
}
static const rt_actor_type bs_sender_type = {"bsender", bs_sender_behave, NULL, sizeof(bs_sender)};

/* Receives the writer's stats and the shutdown ack for main(). */
static void bs_probe_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type == ST_MSG_STATS_REPLY)
        bs.stats = *(st_msg_stats *)m;
    if (m->type == ST_MSG_STATS_REPLY || m->type == ST_MSG_ACK)
        bench_done_post(&bs.done);
}
static const rt_actor_type bs_probe_type = {"bprobe", bs_probe_behave, NULL, 0};

static int bs_rm(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

typedef struct bs_shape {
    const char *name;
    int senders;
    int window;
    int appends;
    bool sync_full;
} bs_shape;

/* One run; returns appends per second. */
static double bs_run(const bs_shape *sh, bool each)
{
    char dir[] = "/tmp/hermes-bench-store-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("bench_store: mkdtemp");
        exit(1);
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/state.db", dir);
    rt_runtime *rt = bench_runtime_new(0);
    rt_ctx *cx = rt_ctx_external(rt);
    st_store_opts o = {.path = path, .readers = 1, .commit_each = each, .sync_full = sh->sync_full};
    st_store_refs st;
    char msg[ST_ERRMSG_MAX];
    if (st_store_start(cx, &o, &st, msg, sizeof(msg)) != 0) {
        printf("RESULT bench=store impl=hermes error=start: %s\n", msg);
        exit(1);
    }
    rt_ref probe = rt_spawn(cx, &bs_probe_type, NULL, NULL);
    /* Sessions first, each acked, so the timed part is appends only. */
    for (int i = 0; i < sh->senders; i++) {
        char sid[32];
        snprintf(sid, sizeof(sid), "bench-%d", i);
        st_msg_create_session *c = st_create_session_new(sid, "cli");
        c->req.reply_to = probe;
        rt_send(cx, st.writer, &c->hdr);
        bench_done_wait(&bs.done, "store");
    }
    rt_send(cx, st.writer, &st_ctl_new(ST_MSG_STATS, probe, 0)->hdr);
    bench_done_wait(&bs.done, "store");
    uint64_t commits0 = bs.stats.commits;

    atomic_store(&bs.senders_left, sh->senders);
    int per = sh->appends / sh->senders;
    rt_ref senders[256];
    for (int i = 0; i < sh->senders; i++) {
        bs_sender s = {.store = st.writer, .to_send = per, .to_ack = per, .window = sh->window};
        snprintf(s.sid, sizeof(s.sid), "bench-%d", i);
        senders[i] = rt_spawn(cx, &bs_sender_type, &s, NULL);
    }
    int64_t t0 = bench_now_ns();
    for (int i = 0; i < sh->senders; i++)
        rt_send(cx, senders[i], rt_msg_new(BS_MSG_GO, sizeof(rt_msg)));
    bench_done_wait(&bs.done, "store");
    int64_t t1 = bench_now_ns();

    rt_send(cx, st.writer, &st_ctl_new(ST_MSG_STATS, probe, 0)->hdr);
    bench_done_wait(&bs.done, "store");
    uint64_t commits = bs.stats.commits - commits0;
    st_store_stop(cx, &st, probe, 0);
    bench_done_wait(&bs.done, "store");
    rt_runtime_free(rt);
    nftw(dir, bs_rm, 8, FTW_DEPTH | FTW_PHYS);

    int n = per * sh->senders;
    double secs = (double)(t1 - t0) / 1e9;
    double rate = n / secs;
    printf("RESULT bench=store impl=hermes shape=%s sync=%s mode=%s appends=%d time_ms=%.1f "
           "appends_per_s=%.0f commits=%" PRIu64 " appends_per_commit=%.1f errors=%d\n",
           sh->name, sh->sync_full ? "full" : "normal", each ? "each" : "group", n, secs * 1e3,
           rate, commits, commits ? (double)n / (double)commits : 0.0, atomic_load(&bs.errors));
    fflush(stdout);
    return rate;
}

int main(void)
{
    bench_done_init(&bs.done);
    const bs_shape shapes[] = {
        {"sessions", 64, 1, 19200, false},
        {"burst", 8, 256, 40000, false},
        {"sessions", 64, 1, 2048, true},
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        double group = bs_run(&shapes[i], false);
        double each = bs_run(&shapes[i], true);
        printf("RESULT bench=store impl=hermes shape=%s sync=%s ratio_group_vs_each=%.2f\n",
               shapes[i].name, shapes[i].sync_full ? "full" : "normal", group / each);
        fflush(stdout);
    }
    bench_done_fini(&bs.done);
    return atomic_load(&bs.errors) ? 1 : 0;
}
