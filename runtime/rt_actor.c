/*
 * rt_actor — spawning, sending, running and ending actors; links, monitors and names.
 *
 * Rules this file keeps (the code cites them by number):
 *
 *   1. `sched` is IDLE, SCHED or DEAD. A sender that moves it IDLE -> SCHED owns the duty
 *      to schedule the actor, exactly once. While SCHED, the actor sits in exactly one run
 *      queue (a next slot, a deque, the inject or urgent FIFO) or is running, never two.
 *   2. No lost wake-up. A sender pushes (seq_cst exchange on the lane head) and then reads
 *      `sched` (seq_cst). An actor that finds its mailbox empty stores IDLE (seq_cst) and then
 *      re-reads both lane heads (seq_cst). In the single total order of seq_cst operations
 *      one of the two must see the other: either the sender sees IDLE and schedules, or the
 *      actor sees the message and reschedules itself. A push caught between its exchange and
 *      its link counts as "not empty" (rt_mbox.h rule 2).
 *   3. Ending. The dying actor removes itself from the registry, then stores DEAD. Senders
 *      that looked it up earlier may still push; they are all inside an RCU read-side
 *      section, so after one grace period (call_rcu) nobody can reach it, and the reaper
 *      drains and frees it on a worker. Link and monitor requests found there are answered
 *      with RT_EXIT_NOPROC, everything else counts as a dead letter.
 *   4. After storing IDLE (or DEAD) a worker no longer owns the actor and reads none of
 *      its owner fields.
 *   5. Urgent mail overtakes the run queues. A thread runs an actor only after moving
 *      `sched` from SCHED (or SCHED|BOOST) to SCHED|RUN, and drops RUN when it stops. A sender
 *      of urgent mail that finds the actor SCHED — queued, not running — sets BOOST and puts
 *      its id in the boost ring, which workers serve before any queue: the boosted run
 *      claims SCHED|BOOST -> SCHED|RUN, runs one batch and stores SCHED again. The actor
 *      keeps its place in its run queue (rule 1 still holds); when that entry comes up it
 *      runs normally (an exit asked for in the boosted run happens then), or, if a boosted
 *      run has it at that moment, it is queued again (RUN_BUSY). A boosted run never stores
 *      IDLE or DEAD: only the run that owns the queue entry does.
 *
 * Threads: the behaviour-facing functions run on any thread with a valid rt_ctx; external
 * threads enter an RCU read-side section (QSBR online) for the duration of each call.
 */
#include "rt_actor.h"

#include "rt_alloc.h"
#include "rt_idtab.h"
#include "rt_int.h"
#include "rt_log.h"
#include "rt_mbox.h"
#include "rt_slab.h"
#include "rt_util.h"

#include <errno.h>
#include <string.h>

_Static_assert(sizeof(rt_actor) == 128, "rt_actor must stay two cache lines");

/* ===================================================================== links */

enum link_kind {
    LK_PEER = 1,     /* exits flow both ways */
    LK_CHILD = 2,    /* exits both ways; interrupts flow to it */
    LK_PARENT = 3,   /* exits both ways; it interrupts us */
    LK_WATCHER = 4,  /* it monitors us: gets RT_MSG_DOWN */
    LK_WATCHING = 5, /* we monitor it */
};

typedef struct link_ent {
    rt_ref ref;
    uint64_t mon; /* monitor id for LK_WATCHER / LK_WATCHING */
    uint32_t kind;
} link_ent;

/* The rarely used parts of an actor, allocated on first need (owner only). */
struct rt_links {
    rt_name *name; /* registered name, or NULL */
    uint32_t n, cap;
    link_ent e[];
};

/* Internal request carried by RT_MSG_LINK / UNLINK / MONITOR / DEMONITOR. */
typedef struct rt_msg_link {
    rt_msg hdr;
    rt_ref from;
    uint64_t mon;
    uint32_t kind; /* what the receiver records about `from` */
} rt_msg_link;

static rt_links *links_get(rt_actor *a)
{
    if (!a->links) {
        a->links = rt_xmalloc(sizeof(*a->links) + 4 * sizeof(a->links->e[0]));
        a->links->name = NULL;
        a->links->n = 0;
        a->links->cap = 4;
    }
    return a->links;
}

static void links_add(rt_actor *a, rt_ref ref, uint32_t kind, uint64_t mon)
{
    rt_links *l = links_get(a);
    if (l->n == l->cap) {
        l->cap *= 2;
        l = rt_xrealloc(l, sizeof(*l) + l->cap * sizeof(l->e[0]));
        a->links = l;
    }
    l->e[l->n++] = (link_ent){.ref = ref, .mon = mon, .kind = kind};
}

static bool is_link_kind(uint32_t k)
{
    return k == LK_PEER || k == LK_CHILD || k == LK_PARENT;
}

/* Remove the first entry for ref whose kind matches (is_link_kind when kind == 0) and,
 * for monitors, whose id matches. Returns the removed kind or 0. */
static uint32_t links_remove(rt_actor *a, rt_ref ref, uint32_t kind, uint64_t mon)
{
    rt_links *l = a->links;
    if (!l)
        return 0;
    for (uint32_t i = 0; i < l->n; i++) {
        link_ent *e = &l->e[i];
        if (e->ref != ref)
            continue;
        if (kind ? e->kind != kind : !is_link_kind(e->kind))
            continue;
        if ((kind == LK_WATCHER || kind == LK_WATCHING) && e->mon != mon)
            continue;
        uint32_t k = e->kind;
        l->e[i] = l->e[--l->n];
        return k;
    }
    return 0;
}

/* ======================================================= external contexts and RCU */

static _Thread_local rt_ctx tl_ext;
static _Thread_local int tl_rcu_state; /* 0 unregistered, 1 registered */
static _Thread_local int tl_rcu_depth; /* nesting of rt__ext_enter */
static pthread_key_t rcu_key;
static pthread_once_t rcu_key_once = PTHREAD_ONCE_INIT;

static void rcu_thread_exit(void *arg)
{
    (void)arg;
    urcu_qsbr_unregister_thread();
    rt_msg_pool_flush();
}

static void rcu_key_init(void)
{
    (void)pthread_key_create(&rcu_key, rcu_thread_exit); /* failure: no unregister at exit */
}

rt_ctx *rt_ctx_external(rt_runtime *rt)
{
    if (!tl_rcu_state) {
        pthread_once(&rcu_key_once, rcu_key_init);
        urcu_qsbr_register_thread();
        urcu_qsbr_thread_offline(); /* online only inside rt__ext_enter/leave */
        (void)pthread_setspecific(rcu_key, &tl_ext);
        tl_rcu_state = 1;
    }
    if (tl_ext.rt != rt || tl_ext.gen != rt->gen) {
        memset(&tl_ext, 0, sizeof(tl_ext));
        tl_ext.rt = rt;
        tl_ext.gen = rt->gen;
    }
    return &tl_ext;
}

bool rt__ext_enter(rt_ctx *cx)
{
    if (cx->online)
        return false; /* workers and detached threads are online while they run */
    if (tl_rcu_depth++ == 0)
        urcu_qsbr_thread_online();
    return true;
}

void rt__ext_leave(rt_ctx *cx, bool entered)
{
    if (entered && --tl_rcu_depth == 0) {
        /* An external thread's last look at an actor happens before that actor is freed:
         * grace_cb acquires rcu_hb after the grace period (TSan cannot see RCU's ordering). */
        RT_TSAN_RELEASE(&cx->rt->rcu_hb);
        urcu_qsbr_thread_offline();
    }
}

/* ================================================================== registry */

rt_actor *rt__lookup(rt_runtime *rt, rt_ref id)
{
    return rt_idtab_find(rt, id);
}

struct rt_name {
    struct cds_lfht_node node;
    struct rcu_head rcu;
    rt_ref ref;
    uint64_t hash;
    char s[];
};

static int match_name(struct cds_lfht_node *n, const void *key)
{
    const rt_name *nm = caa_container_of(n, rt_name, node);
    return strcmp(nm->s, key) == 0;
}

static void name_free_cb(struct rcu_head *h)
{
    rt_free(caa_container_of(h, rt_name, rcu));
}

/* Insert a name for ref; returns the node or NULL if taken. Caller is in a read section. */
static rt_name *name_add(rt_runtime *rt, const char *name, rt_ref ref)
{
    size_t len = strlen(name);
    rt_name *nm = rt_xmalloc(sizeof(*nm) + len + 1);
    cds_lfht_node_init(&nm->node);
    nm->ref = ref;
    nm->hash = rt_hash_str(name);
    memcpy(nm->s, name, len + 1);
    RT_TSAN_RELEASE(nm);
    struct cds_lfht_node *got =
        cds_lfht_add_unique(rt->by_name, nm->hash, match_name, nm->s, &nm->node);
    if (got != &nm->node) {
        rt_free(nm);
        return NULL;
    }
    return nm;
}

int rt_register_name(rt_ctx *cx, const char *name)
{
    rt_actor *a = cx->self;
    if (!a || !name || !*name)
        return -EINVAL;
    if (a->links && a->links->name)
        return -EEXIST;
    rt_name *nm = name_add(cx->rt, name, a->id);
    if (!nm)
        return -EEXIST;
    links_get(a)->name = nm;
    return 0;
}

rt_ref rt_whereis(rt_ctx *cx, const char *name)
{
    bool entered = rt__ext_enter(cx);
    struct cds_lfht_iter it;
    rt_ref ref = 0;
    cds_lfht_lookup(cx->rt->by_name, rt_hash_str(name), match_name, name, &it);
    struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
    if (n) {
        rt_name *nm = caa_container_of(n, rt_name, node);
        RT_TSAN_ACQUIRE(nm);
        ref = nm->ref;
    }
    rt__ext_leave(cx, entered);
    return ref;
}

bool rt_is_alive(rt_ctx *cx, rt_ref ref)
{
    bool entered = rt__ext_enter(cx);
    rt_actor *a = rt__lookup(cx->rt, ref);
    bool alive = a && atomic_load_explicit(&a->sched, memory_order_relaxed) != RT_AS_DEAD;
    rt__ext_leave(cx, entered);
    return alive;
}

/* ===================================================================== spawn */

static void count_spawn(rt_ctx *cx)
{
    if (cx->w)
        atomic_store_explicit(&cx->w->n_spawned, ++cx->n_spawned, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&cx->rt->ext_spawned, 1, memory_order_relaxed);
}

static void count_exit(rt_ctx *cx)
{
    if (cx->w)
        atomic_store_explicit(&cx->w->n_exited, ++cx->n_exited, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&cx->rt->ext_exited, 1, memory_order_relaxed);
}

rt_ref rt_spawn(rt_ctx *cx, const rt_actor_type *t, void *init, const rt_spawn_opts *o)
{
    rt_runtime *rt = cx->rt;
    uint32_t size = (uint32_t)(sizeof(rt_actor) + t->state_size);
    rt_actor *a = rt_slab_alloc(size);
    memset(a, 0, sizeof(*a));
    a->size = size;
    atomic_init(&a->sched, RT_AS_IDLE);
    rt_mbox_init(&a->uhead, &a->utail, &a->ustub);
    rt_mbox_init(&a->nhead, &a->ntail, &a->nstub);
    a->type = t;
    if (t->state_size) {
        a->state = a->inline_state;
        if (init)
            memcpy(a->inline_state, init, t->state_size);
        else
            memset(a->inline_state, 0, t->state_size);
    } else {
        a->state = init;
    }
    uint32_t flags = o ? o->flags : 0;
    if (flags & RT_SPAWN_TRAP_EXIT)
        a->flags |= RT_AF_TRAP_EXIT;

    bool entered = rt__ext_enter(cx);
    a->id = rt_idtab_next(cx);
    if (o && o->name) {
        rt_name *nm = name_add(rt, o->name, a->id);
        if (!nm) {
            rt_idtab_forget(cx, a->id);
            rt__ext_leave(cx, entered);
            if (t->fini)
                t->fini(a->state);
            rt_slab_free(a, size);
            return 0;
        }
        links_get(a)->name = nm;
    }
    /* The new actor cannot run before its first message, so both sides of a spawn link
     * are written here directly. */
    if ((flags & RT_SPAWN_LINK) && cx->self) {
        links_add(cx->self, a->id, LK_CHILD, 0);
        links_add(a, cx->self->id, LK_PARENT, 0);
    }
    if (flags & RT_SPAWN_DETACHED)
        rt__detached_start(rt, a); /* sets a->det before anyone can find the actor */
    rt_idtab_publish(cx, a);
    rt__ext_leave(cx, entered);
    count_spawn(cx);
    return a->id;
}

/* ====================================================================== send */

static bool deliver(rt_ctx *cx, rt_ref to, rt_msg *m, bool urgent)
{
    rt_actor *a;
    bool entered = false;
    if (cx->self && cx->self->id == to) {
        a = cx->self;
    } else {
        entered = rt__ext_enter(cx);
        a = rt__lookup(cx->rt, to);
    }
    if (!a) {
        rt__ext_leave(cx, entered);
        atomic_fetch_add_explicit(&cx->rt->dead_letters, 1, memory_order_relaxed);
        RT_DEBUG("rt", "dead letter type=%#x to=%llx", m->type, (unsigned long long)to);
        rt_msg_free(m);
        return false;
    }
    rt_mbox_push(urgent ? &a->uhead : &a->nhead, &m->q);
    /* seq_cst: rule 2, the sender's half. */
    uint32_t s = atomic_load_explicit(&a->sched, memory_order_seq_cst);
    if (s == RT_AS_IDLE &&
        atomic_compare_exchange_strong_explicit(&a->sched, &s, RT_AS_SCHED, memory_order_seq_cst,
                                                memory_order_seq_cst))
        rt__schedule(cx, a, urgent);
    else if (urgent && s == RT_AS_SCHED && !a->det && a != cx->self &&
             atomic_compare_exchange_strong_explicit(&a->sched, &s, RT_AS_SCHED | RT_AS_BOOST,
                                                     memory_order_seq_cst, memory_order_seq_cst))
        rt__boost_push(cx->rt, a->id); /* rule 5: queued behind others, run it first */
    rt__ext_leave(cx, entered);
    /* A DEAD receiver's mail is drained by the reaper and counted there (rule 3). */
    return s != RT_AS_DEAD;
}

bool rt_send(rt_ctx *cx, rt_ref to, rt_msg *m)
{
    return deliver(cx, to, m, false);
}

bool rt_send_urgent(rt_ctx *cx, rt_ref to, rt_msg *m)
{
    return deliver(cx, to, m, true);
}

rt_msg *rt_timeout_new(uint64_t tag)
{
    rt_msg_timeout *t = RT_MSG_NEW(rt_msg_timeout, RT_MSG_TIMEOUT);
    t->tag = tag;
    return &t->hdr;
}

rt_ref rt_self(rt_ctx *cx)
{
    return cx->self ? cx->self->id : 0;
}

rt_runtime *rt_ctx_runtime(rt_ctx *cx)
{
    return cx->rt;
}

void rt_exit(rt_ctx *cx, int reason)
{
    rt_actor *a = cx->self;
    if (!a || (a->flags & RT_AF_EXITING))
        return;
    a->flags |= RT_AF_EXITING;
    a->exit_reason = reason;
}

void rt_trap_exit(rt_ctx *cx, bool on)
{
    if (!cx->self)
        return;
    if (on)
        cx->self->flags |= RT_AF_TRAP_EXIT;
    else
        cx->self->flags &= ~(uint32_t)RT_AF_TRAP_EXIT;
}

bool rt_stop(rt_ctx *cx, rt_ref to, int reason)
{
    rt_msg_stop *m = RT_MSG_NEW(rt_msg_stop, RT_MSG_STOP);
    m->reason = reason;
    return rt_send_urgent(cx, to, &m->hdr);
}

bool rt_kill(rt_ctx *cx, rt_ref to)
{
    return rt_send_urgent(cx, to, rt_msg_new(RT_MSG_KILL, sizeof(rt_msg)));
}

bool rt_interrupt(rt_ctx *cx, rt_ref to, int code)
{
    rt_msg_interrupt *m = RT_MSG_NEW(rt_msg_interrupt, RT_MSG_INTERRUPT);
    m->from = rt_self(cx);
    m->code = code;
    return rt_send_urgent(cx, to, &m->hdr);
}

/* =========================================================== links and monitors */

static void send_exit(rt_ctx *cx, rt_ref to, rt_ref from, int reason)
{
    rt_msg_exit *e = RT_MSG_NEW(rt_msg_exit, RT_MSG_EXIT);
    e->from = from;
    e->reason = reason;
    /* A normal exit keeps its place behind what the actor sent before it ended. */
    if (reason == RT_EXIT_NORMAL)
        rt_send(cx, to, &e->hdr);
    else
        rt_send_urgent(cx, to, &e->hdr);
}

static void send_down(rt_ctx *cx, rt_ref to, rt_ref ref, uint64_t mon, int reason)
{
    rt_msg_down *d = RT_MSG_NEW(rt_msg_down, RT_MSG_DOWN);
    d->ref = ref;
    d->mon = mon;
    d->reason = reason;
    rt_send(cx, to, &d->hdr);
}

static bool send_link_req(rt_ctx *cx, uint32_t type, rt_ref to, uint32_t kind, uint64_t mon)
{
    rt_msg_link *l = RT_MSG_NEW(rt_msg_link, type);
    l->from = cx->self->id;
    l->kind = kind;
    l->mon = mon;
    return rt_send_urgent(cx, to, &l->hdr);
}

static int link_common(rt_ctx *cx, rt_ref other, uint32_t mine, uint32_t theirs)
{
    rt_actor *a = cx->self;
    if (!a || !other || other == a->id)
        return -EINVAL;
    links_add(a, other, mine, 0);
    if (!send_link_req(cx, RT_MSG_LINK, other, theirs, 0))
        send_exit(cx, a->id, other, RT_EXIT_NOPROC);
    return 0;
}

int rt_link(rt_ctx *cx, rt_ref other)
{
    return link_common(cx, other, LK_PEER, LK_PEER);
}

int rt_link_child(rt_ctx *cx, rt_ref child)
{
    return link_common(cx, child, LK_CHILD, LK_PARENT);
}

int rt_unlink(rt_ctx *cx, rt_ref other)
{
    if (!cx->self)
        return -EINVAL;
    if (!links_remove(cx->self, other, 0, 0))
        return -ENOENT;
    send_link_req(cx, RT_MSG_UNLINK, other, 0, 0);
    return 0;
}

uint64_t rt_monitor(rt_ctx *cx, rt_ref target)
{
    rt_actor *a = cx->self;
    if (!a)
        return 0;
    uint64_t mon = rt_idtab_token(cx->rt); /* unique, never 0 */
    links_add(a, target, LK_WATCHING, mon);
    if (!send_link_req(cx, RT_MSG_MONITOR, target, LK_WATCHER, mon))
        send_down(cx, a->id, target, mon, RT_EXIT_NOPROC);
    return mon;
}

void rt_demonitor(rt_ctx *cx, rt_ref target, uint64_t mon)
{
    if (!cx->self || !links_remove(cx->self, target, LK_WATCHING, mon))
        return;
    send_link_req(cx, RT_MSG_DEMONITOR, target, LK_WATCHER, mon);
}

/* Handle RT_MSG_EXIT before the behaviour; returns true if the behaviour should see it. */
static bool on_exit_signal(rt_ctx *cx, rt_actor *a, const rt_msg_exit *e)
{
    /* A request to a missing actor comes back as NOPROC; its entry is still here. */
    if (!links_remove(a, e->from, 0, 0))
        return false; /* unlinked meanwhile */
    if (a->flags & RT_AF_TRAP_EXIT)
        return true;
    if (e->reason != RT_EXIT_NORMAL)
        rt_exit(cx, RT_EXIT_LINKED);
    return false;
}

static void forward_interrupt(rt_ctx *cx, rt_actor *a, const rt_msg_interrupt *in)
{
    rt_links *l = a->links;
    for (uint32_t i = 0; l && i < l->n; i++) {
        if (l->e[i].kind != LK_CHILD)
            continue;
        rt_msg_interrupt *m = RT_MSG_NEW(rt_msg_interrupt, RT_MSG_INTERRUPT);
        m->from = a->id;
        m->code = in->code;
        rt_send_urgent(cx, l->e[i].ref, &m->hdr);
    }
}

/* Runtime messages handled before (or instead of) the behaviour. Returns true when the
 * behaviour should see m. */
static bool system_msg(rt_ctx *cx, rt_actor *a, rt_msg *m)
{
    rt_msg_link *l = (rt_msg_link *)m;
    switch (m->type) {
    case RT_MSG_LINK: links_add(a, l->from, l->kind, 0); return false;
    case RT_MSG_UNLINK: links_remove(a, l->from, 0, 0); return false;
    case RT_MSG_MONITOR: links_add(a, l->from, LK_WATCHER, l->mon); return false;
    case RT_MSG_DEMONITOR: links_remove(a, l->from, LK_WATCHER, l->mon); return false;
    case RT_MSG_KILL: rt_exit(cx, RT_EXIT_KILLED); return false;
    case RT_MSG_EXIT: return on_exit_signal(cx, a, (rt_msg_exit *)m);
    case RT_MSG_INTERRUPT: forward_interrupt(cx, a, (rt_msg_interrupt *)m); return true;
    case RT_MSG_DOWN: {
        rt_msg_down *d = (rt_msg_down *)m;
        links_remove(a, d->ref, LK_WATCHING, d->mon);
        return true;
    }
    default: return true;
    }
}

static void dispatch(rt_ctx *cx, rt_actor *a, rt_msg *m)
{
    if (RT_MSG_MODULE(m->type) != RT_MSG_MODULE_RT || system_msg(cx, a, m)) {
        a->type->behave(cx, a->state, m);
        if (m->type == RT_MSG_STOP)
            rt_exit(cx, ((rt_msg_stop *)m)->reason);
    }
    rt_msg_free(m);
}

/* ===================================================================== death */

/* Ended actors handed to RCU together (rule 3): one call_rcu per batch, not per actor. */
typedef struct grave_batch {
    struct rcu_head rcu;
    rt_runtime *rt;
    rt_actor *head, *tail; /* linked through qnext */
} grave_batch;

static void grave_cb(struct rcu_head *h)
{
    grave_batch *b = caa_container_of(h, grave_batch, rcu);
    rt_runtime *rt = b->rt;
    /* A grace period has passed: every worker released rcu_hb after its last look. */
    RT_TSAN_ACQUIRE(&rt->rcu_hb);
    rt_actor *top = atomic_load_explicit(&rt->grave, memory_order_relaxed);
    do {
        b->tail->qnext = top;
        /* release: the reaper's acquire exchange sees qnext and the actors' contents. */
    } while (!atomic_compare_exchange_weak_explicit(&rt->grave, &top, b->head, memory_order_release,
                                                    memory_order_relaxed));
    rt_free(b);
    /* The first grave in a while makes sure some worker comes to reap, even when all of
     * them sleep: memory of ended actors is returned promptly on an idle gateway. */
    if (!top)
        rt__wake_if_needed(rt);
}

static void bury(rt_runtime *rt, rt_actor *head, rt_actor *tail)
{
    grave_batch *b = rt_xmalloc(sizeof(*b));
    b->rt = rt;
    b->head = head;
    b->tail = tail;
    tail->qnext = NULL;
    urcu_qsbr_call_rcu(&b->rcu, grave_cb);
}

void rt__flush_dead(rt_worker *w)
{
    if (!w->dead)
        return;
    rt_actor *tail = w->dead;
    while (tail->qnext)
        tail = tail->qnext;
    bury(w->rt, w->dead, tail);
    w->dead = NULL;
    w->ndead = 0;
}

static void notify_links(rt_ctx *cx, rt_actor *a, int reason)
{
    rt_links *l = a->links;
    for (uint32_t i = 0; l && i < l->n; i++) {
        link_ent *e = &l->e[i];
        switch (e->kind) {
        case LK_PEER:
        case LK_CHILD:
        case LK_PARENT: send_exit(cx, e->ref, a->id, reason); break;
        case LK_WATCHER: send_down(cx, e->ref, a->id, e->mon, reason); break;
        case LK_WATCHING: send_link_req(cx, RT_MSG_DEMONITOR, e->ref, LK_WATCHER, e->mon); break;
        default: break;
        }
    }
    rt_free(l);
    a->links = NULL;
}

static void name_remove(rt_runtime *rt, rt_name *nm)
{
    if (!nm)
        return;
    cds_lfht_del(rt->by_name, &nm->node);
    urcu_qsbr_call_rcu(&nm->rcu, name_free_cb);
}

/* End the running actor (rule 3). Runs on a worker with cx->self == a. */
static void die(rt_ctx *cx, rt_actor *a)
{
    rt_runtime *rt = cx->rt;
    int reason = a->exit_reason;
    if (a->links) {
        name_remove(rt, a->links->name);
        a->links->name = NULL;
    }
    rt_idtab_remove(rt, a);
    /* seq_cst: a sender that pushed after our removal sees DEAD (rt_send returns false). */
    atomic_store_explicit(&a->sched, RT_AS_DEAD, memory_order_seq_cst);
    if (a->type->fini && !(a->flags & RT_AF_FINI_DONE))
        a->type->fini(a->state);
    a->flags |= RT_AF_FINI_DONE;
    notify_links(cx, a, reason);
    RT_DEBUG("rt", "actor ended reason=%d", reason);
    count_exit(cx);
    rt_worker *w = cx->w;
    if (!w) {
        bury(rt, a, a); /* a detached actor: its own batch */
        return;
    }
    a->qnext = w->dead;
    w->dead = a;
    if (++w->ndead >= 256)
        rt__flush_dead(w);
}

/* Empty a dead actor's lanes: answer link/monitor requests, count the rest (rule 3). */
static void drain_dead(rt_ctx *cx, rt_actor *a, bool answer)
{
    rt_qnode *q;
    for (int lane = 0; lane < 2; lane++) {
        rt_qnode *_Atomic *head = lane ? &a->nhead : &a->uhead;
        rt_qnode **tail = lane ? &a->ntail : &a->utail;
        rt_qnode *stub = lane ? &a->nstub : &a->ustub;
        while ((q = rt_mbox_pop(head, tail, stub))) {
            rt_msg *m = (rt_msg *)q;
            rt_msg_link *l = (rt_msg_link *)m;
            if (answer && m->type == RT_MSG_LINK)
                send_exit(cx, l->from, a->id, RT_EXIT_NOPROC);
            else if (answer && m->type == RT_MSG_MONITOR)
                send_down(cx, l->from, a->id, l->mon, RT_EXIT_NOPROC);
            else if (RT_MSG_MODULE(m->type) != RT_MSG_MODULE_RT || m->type == RT_MSG_STOP ||
                     m->type == RT_MSG_INTERRUPT)
                atomic_fetch_add_explicit(&cx->rt->dead_letters, 1, memory_order_relaxed);
            rt_msg_free(m);
        }
    }
}

void rt__reap(rt_ctx *cx)
{
    /* acquire: pairs with the release in grave_cb. */
    rt_actor *a = atomic_exchange_explicit(&cx->rt->grave, NULL, memory_order_acquire);
    while (a) {
        rt_actor *next = a->qnext;
        drain_dead(cx, a, true);
        rt_slab_free(a, a->size);
        a = next;
    }
}

/* ======================================================================= run */

/* Rule 5: take the right to run a queued actor. False when a boosted run has it. */
static bool claim(rt_actor *a)
{
    uint32_t s = atomic_load_explicit(&a->sched, memory_order_acquire);
    for (;;) {
        if (s & RT_AS_RUN)
            return false;
        /* acquire: what the last run (maybe a boosted one on another thread) did to the
         * actor's owner fields happens before this run. */
        if (atomic_compare_exchange_weak_explicit(&a->sched, &s, RT_AS_SCHED | RT_AS_RUN,
                                                  memory_order_acq_rel, memory_order_acquire))
            return true;
    }
}

/* Pop and dispatch up to one batch; true if the actor asked to end. */
static bool run_batch(rt_ctx *cx, rt_actor *a, uint32_t *np)
{
    rt_worker *w = cx->w;
    rt_runtime *rt = cx->rt;
    uint32_t batch = rt->opt.batch, n = 0;
    bool exiting = false;
    for (;;) {
        rt_qnode *q = rt_mbox_pop(&a->uhead, &a->utail, &a->ustub);
        if (!q) {
            /* Yield after a full batch, or at once when an urgent actor waits elsewhere. */
            if (n >= batch || (n > 0 && w && rt__urgent_pending(rt)))
                break;
            q = rt_mbox_pop(&a->nhead, &a->ntail, &a->nstub);
            if (!q)
                break;
        }
        n++;
        dispatch(cx, a, (rt_msg *)q);
        if (a->flags & RT_AF_EXITING) {
            exiting = true;
            break;
        }
    }
    *np = n;
    return exiting;
}

static void count_run(rt_worker *w, uint32_t n)
{
    if (!w)
        return;
    atomic_store_explicit(&w->n_msgs, atomic_load_explicit(&w->n_msgs, memory_order_relaxed) + n,
                          memory_order_relaxed);
    atomic_store_explicit(&w->n_runs, atomic_load_explicit(&w->n_runs, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void rt__run_boosted(rt_ctx *cx, rt_actor *a)
{
    uint32_t n = 0;
    cx->self = a;
    rt__log_set_actor(a->type->name, a->id);
    (void)run_batch(cx, a, &n); /* an exit waits for the queued run (rule 5) */
    cx->self = NULL;
    rt__log_set_actor(NULL, 0);
    /* release: this run's effects happen before the next claim (acquire). */
    atomic_store_explicit(&a->sched, RT_AS_SCHED, memory_order_seq_cst);
    count_run(cx->w, n);
}

int rt__run_actor(rt_ctx *cx, rt_actor *a)
{
    rt_worker *w = cx->w;
    uint32_t n = 0;
    int result;
    if (!claim(a))
        return RT_RUN_BUSY;
    cx->self = a;
    rt__log_set_actor(a->type->name, a->id);
    if ((a->flags & RT_AF_EXITING) || run_batch(cx, a, &n)) {
        die(cx, a);
        result = RT_RUN_EXITED;
        goto out;
    }
    cx->self = NULL;
    if (!rt_mbox_is_empty(&a->uhead, a->utail, &a->ustub) ||
        !rt_mbox_is_empty(&a->nhead, a->ntail, &a->nstub)) {
        /* still SCHED, for the caller to queue again (rule 5: drop RUN first) */
        atomic_store_explicit(&a->sched, RT_AS_SCHED, memory_order_seq_cst);
        result = RT_RUN_MORE;
        goto out;
    }
    /* seq_cst: rule 2, the actor's half. From here on, rule 4. */
    atomic_store_explicit(&a->sched, RT_AS_IDLE, memory_order_seq_cst);
    result = RT_RUN_IDLE;
    if (atomic_load_explicit(&a->uhead, memory_order_seq_cst) != &a->ustub ||
        atomic_load_explicit(&a->nhead, memory_order_seq_cst) != &a->nstub) {
        uint32_t s = RT_AS_IDLE;
        if (atomic_compare_exchange_strong_explicit(&a->sched, &s, RT_AS_SCHED,
                                                    memory_order_seq_cst, memory_order_relaxed))
            result = RT_RUN_MORE; /* we own it again */
    }
out:
    cx->self = NULL;
    rt__log_set_actor(NULL, 0);
    count_run(w, n);
    return result;
}

/* ================================================================== teardown */

/* End every actor still registered. Only when no worker or other thread runs. */
void rt__destroy_all(rt_runtime *rt)
{
    rt_ctx *cx = rt_ctx_external(rt);
    bool entered = rt__ext_enter(cx);
    rt_actor *a, *doomed = rt_idtab_take_all(rt);
    while (doomed) {
        a = doomed;
        doomed = a->qnext;
        if (a->links && a->links->name) {
            cds_lfht_del(rt->by_name, &a->links->name->node);
            rt_free(a->links->name);
        }
        if (a->type->fini && !(a->flags & RT_AF_FINI_DONE))
            a->type->fini(a->state);
        rt_free(a->links);
        drain_dead(cx, a, false);
        rt_slab_free(a, a->size);
    }
    rt__ext_leave(cx, entered);
}
