/*
 * rt_int — runtime internals shared by the runtime folder only. Never included outside runtime/.
 *
 * Field groups are separated by writer (STYLE 3.10) and by cache line.
 */
#ifndef RT_INT_H
#define RT_INT_H

#include "rt_actor.h"
#include "rt_deque.h"
#include "rt_msg.h"
#include "rt_sched.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <urcu-qsbr.h>
#include <urcu/rculfhash.h>

typedef struct rt_worker rt_worker;
typedef struct rt_links rt_links;
typedef struct rt_timers rt_timers;
typedef struct rt_name rt_name;
typedef struct rt_detached rt_detached;
typedef struct rt_idpage rt_idpage;

/* Actor scheduling word (rt_actor.c rules 1 and 5): IDLE, SCHED or DEAD, and with SCHED the
 * flags RUN (a thread runs it now) and BOOST (it is queued and its id waits in the boost
 * ring: urgent mail arrived while it sat in a run queue). */
enum {
    RT_AS_IDLE = 0,
    RT_AS_SCHED = 1,
    RT_AS_DEAD = 2,
    RT_AS_RUN = 4,
    RT_AS_BOOST = 8,
};

/* Actor flags, owner only. */
enum {
    RT_AF_EXITING = 1u << 0,   /* end after the current message */
    RT_AF_TRAP_EXIT = 1u << 1, /* deliver RT_MSG_EXIT instead of dying */
    RT_AF_FINI_DONE = 1u << 2, /* fini already ran */
};

typedef struct rt_actor rt_actor;
struct rt_actor {
    /* line 0 — senders: the lane heads and `sched` are written by any thread; the rest is
     * immutable after spawn and read by senders (lookups, scheduling) */
    alignas(64) rt_qnode *_Atomic uhead; /* urgent lane, producer end */
    rt_qnode *_Atomic nhead;             /* normal lane, producer end */
    _Atomic uint32_t sched;              /* RT_AS_* */
    uint32_t size;                       /* bytes allocated (rt_slab class) */
    uint64_t id;
    const rt_actor_type *type;
    rt_detached *det; /* its own thread (RT_SPAWN_DETACHED), or NULL */
    union {
        struct cds_lfht_node node; /* ext ids: in rt->by_id_ext (liburcu may rewrite it) */
        struct rt_idpage *page;    /* worker ids: the page holding it (rt_idtab.h) */
    };

    /* line 1 — owner: the thread running the actor; after death, the reaper */
    alignas(64) rt_qnode *utail; /* urgent lane, consumer end */
    rt_qnode *ntail;             /* normal lane, consumer end */
    rt_qnode ustub;              /* urgent lane stub */
    rt_qnode nstub;              /* normal lane stub */
    void *state;                 /* behaviour state */
    rt_links *links;             /* links, monitors and the registered name; NULL when none */
    rt_actor *qnext;             /* link in the inject/urgent queues, death lists, graveyard */
    uint32_t flags;              /* RT_AF_* */
    int exit_reason;             /* valid once RT_AF_EXITING is set */
    alignas(16) unsigned char inline_state[];
};

/* Per-thread scheduling context. Workers embed one; other threads get a thread-local one. */
struct rt_ctx {
    bool online; /* always an RCU reader while running (workers, detached threads) */
    rt_runtime *rt;
    uint64_t gen;     /* rt->gen when this context was bound (runtimes can reuse addresses) */
    rt_worker *w;     /* NULL on external threads */
    rt_actor *self;   /* actor whose behaviour is running, or NULL */
    uint64_t id_next; /* workers: block of actor ids reserved by this thread */
    uint64_t id_end;
    struct rt_idpage *id_page; /* the block's page (rt_idtab.h) */
    uint64_t n_spawned;        /* counters; a worker's are read (relaxed) by rt_stats_get */
    uint64_t n_exited;
};

struct rt_worker {
    /* owner pushes and takes; thieves steal */
    rt_deque dq;
    alignas(64) _Atomic(rt_actor *) next; /* runs after the current actor; owner and spinners */

    /* parking: written by wakers under rt->idle_lock, read by the owner */
    alignas(64) _Atomic uint32_t wake; /* futex word: 1 = woken */
    rt_worker *idle_next;              /* guarded by idle_lock */
    bool idle_listed;                  /* guarded by idle_lock */

    /* counters: the owner writes (relaxed), anyone reads (advisory) */
    alignas(64) _Atomic uint64_t n_msgs;
    _Atomic uint64_t n_runs;
    _Atomic uint64_t n_steals;
    _Atomic uint64_t n_parks;
    _Atomic uint64_t n_spills;
    _Atomic uint64_t n_spawned;
    _Atomic uint64_t n_exited;

    /* owner only */
    alignas(64) uint64_t rng;
    rt_actor *dead; /* ended actors waiting for one batched call_rcu */
    uint32_t ndead;
    uint32_t tick;
    bool spinning;
    bool boosted; /* the actor find_work returned came from the boost ring */
    int index;
    pthread_t thread;
    rt_runtime *rt;
    rt_ctx cx;
};

/* A detached actor's own thread (RT_SPAWN_DETACHED), for actors that must block: SQLite. */
struct rt_detached {
    _Atomic uint32_t wake; /* futex word: 1 = scheduled */
    pthread_t thread;
    rt_actor *a;
    rt_ctx cx;
    rt_detached *next; /* rt->detached list, guarded by rt->detached_lock */
};

/* Ids of queued actors with urgent mail (rule 5): a worker runs them ahead of every queue.
 * Ids, not actors: a stale one (the actor ran meanwhile, or ended) is simply skipped. */
#define RT_BOOST_MAX 256
typedef struct rt_boost_ring {
    pthread_mutex_t lock;
    uint32_t head;                  /* guarded by lock */
    uint64_t ids[RT_BOOST_MAX];     /* guarded by lock */
    alignas(64) _Atomic uint32_t n; /* guarded by lock for writes; read relaxed as a hint */
} rt_boost_ring;

/* A global FIFO of actors (inject, urgent), linked through rt_actor.qnext. */
typedef struct rt_actor_fifo {
    pthread_mutex_t lock;
    rt_actor *head, *tail;          /* guarded by lock */
    alignas(64) _Atomic uint32_t n; /* advisory length for lock-free emptiness checks */
} rt_actor_fifo;

struct rt_runtime {
    rt_options opt;
    int nworkers;
    uint64_t gen; /* unique per runtime instance in this process */
    bool joined;  /* workers stopped and joined (controlling thread only) */
    rt_worker **workers;

    /* scheduler state, any thread */
    alignas(64) _Atomic int nspinning; /* workers looking for work */
    _Atomic int nidle;                 /* workers on the idle stack */
    _Atomic bool stopping;
    _Atomic int busy; /* external activity (rt_busy_enter) */

    alignas(64) pthread_mutex_t idle_lock; /* leaf lock: idle stack and quiescence */
    pthread_cond_t quiet_cond;             /* signalled when the last worker parks */
    rt_worker *idle_top;                   /* guarded by idle_lock */
    int nparked;                           /* guarded by idle_lock */
    int quiet_waiters;                     /* guarded by idle_lock */

    rt_actor_fifo inject; /* actors woken by non-worker threads */
    rt_actor_fifo urgent; /* actors woken by urgent messages */
    rt_boost_ring boost;  /* queued actors that got urgent mail (rule 5) */

    alignas(64) _Atomic(rt_actor *) grave; /* actors past their grace period, to free */

    /* registry */
    struct cds_lfht *idpages;   /* rt_idtab.h: pages of worker-spawned actors */
    struct cds_lfht *by_id_ext; /* rt_idtab.h: actors spawned by other threads */
    struct cds_lfht *by_name;
    alignas(64) _Atomic uint64_t id_counter; /* next worker block */
    _Atomic uint64_t ext_id_counter;         /* next id of the single-id space */
    _Atomic uint64_t id_pages;               /* pages linked in idpages (rt_stats) */
    _Atomic uint64_t dead_letters;
    _Atomic uint64_t ext_spawned; /* spawns/exits counted outside workers */
    _Atomic uint64_t ext_exited;
    char rcu_hb; /* address for TSan annotations of RCU grace periods */

    _Atomic(void *) slots[RT_SLOT_MAX]; /* rt_runtime_set_slot */
    pthread_mutex_t detached_lock;      /* leaf lock over the list below */
    rt_detached *detached;              /* every detached thread, joined at free */

    /* clock and timers */
    _Atomic int64_t fake_now;
    rt_timers *timers;
};

/* rt_actor.c */
rt_actor *rt__lookup(rt_runtime *rt, rt_ref id);
/* Run one batch of an actor taken from a run queue. Returns RUN_EXITED (the actor ended),
 * RUN_MORE (still scheduled, mail waiting: the caller must run or queue it again), RUN_IDLE
 * (it went idle, rule 4) or RUN_BUSY (a boosted run has it right now: the caller must queue
 * it again, rule 5). */
enum { RT_RUN_EXITED, RT_RUN_MORE, RT_RUN_IDLE, RT_RUN_BUSY };
int rt__run_actor(rt_ctx *cx, rt_actor *a);
/* Run one batch of an actor claimed from the boost ring (rule 5): it stays in its run queue
 * and never goes idle or ends here (an exit waits for its queued run). */
void rt__run_boosted(rt_ctx *cx, rt_actor *a);
/* Claim a boosted actor: its id from the ring, SCHED|BOOST -> SCHED|RUN; NULL when none. */
rt_actor *rt__boost_take(rt_runtime *rt);
void rt__detached_start(rt_runtime *rt, rt_actor *a);
void rt__detached_wake(rt_actor *a);
void rt__reap(rt_ctx *cx);
/* Hand the worker's ended actors to RCU in one batch (they are freed a grace period later). */
void rt__flush_dead(rt_worker *w);
void rt__destroy_all(rt_runtime *rt);
bool rt__ext_enter(rt_ctx *cx);
void rt__ext_leave(rt_ctx *cx, bool entered);

/* rt_sched.c */
void rt__schedule(rt_ctx *cx, rt_actor *a, bool urgent);
void rt__reschedule(rt_worker *w, rt_actor *a);
bool rt__urgent_pending(rt_runtime *rt);
void rt__boost_push(rt_runtime *rt, uint64_t id);
void rt__wake_if_needed(rt_runtime *rt);
void rt__rcu_quiescent(rt_runtime *rt);

/* rt_timer.c */
rt_timers *rt__timers_new(rt_runtime *rt);
void rt__timers_stop(rt_timers *t);
void rt__timers_free(rt_timers *t);
bool rt__timers_idle(rt_timers *t);
uint64_t rt__timers_pending(rt_timers *t);
void rt__timers_kick(rt_timers *t);

#endif /* RT_INT_H */
