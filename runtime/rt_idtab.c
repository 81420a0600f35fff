/*
 * rt_idtab — the ref → actor registry (see rt_idtab.h).
 */
#include "rt_idtab.h"

#include "rt_alloc.h"
#include "rt_util.h"

#include <string.h>

_Static_assert((RT_IDTAB_PAGE & (RT_IDTAB_PAGE - 1)) == 0, "pages are a power of two");
_Static_assert(RT_IDTAB_EXT_BASE % RT_IDTAB_PAGE == 0, "the spaces meet at a page boundary");

struct rt_idpage {
    struct cds_lfht_node node; /* in rt->idpages, keyed by base */
    struct rcu_head rcu;
    rt_runtime *rt;
    uint64_t base;         /* first id of the block, a multiple of the page */
    _Atomic uint32_t left; /* ids of the block not yet retired */
    _Atomic(rt_actor *) slot[RT_IDTAB_PAGE];
};

static inline bool is_ext(uint64_t id)
{
    return id >= RT_IDTAB_EXT_BASE;
}

/* ------------------------------------------------------------------ tables */

void rt_idtab_init(rt_runtime *rt)
{
    /* Small to start, resized by liburcu as they fill: a million live worker-spawned actors
     * are 245 pages; the single-id space holds what non-worker threads spawn. */
    rt->idpages = cds_lfht_new_flavor(1 << 6, 1 << 6, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
                                      &urcu_qsbr_flavor, NULL);
    rt->by_id_ext = cds_lfht_new_flavor(
        1 << 8, 1 << 8, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, &urcu_qsbr_flavor, NULL);
    RT_VERIFY(rt->idpages && rt->by_id_ext);
    atomic_init(&rt->id_counter, RT_IDTAB_PAGE); /* block 0 is never used: ref 0 is "none" */
    atomic_init(&rt->ext_id_counter, RT_IDTAB_EXT_BASE);
    atomic_init(&rt->id_pages, 0);
}

void rt_idtab_fini(rt_runtime *rt)
{
    RT_VERIFY(cds_lfht_destroy(rt->idpages, NULL) == 0);
    RT_VERIFY(cds_lfht_destroy(rt->by_id_ext, NULL) == 0);
    rt->idpages = rt->by_id_ext = NULL;
}

/* ------------------------------------------------------------------ pages */

static int match_page(struct cds_lfht_node *n, const void *key)
{
    return caa_container_of(n, rt_idpage, node)->base == *(const uint64_t *)key;
}

static rt_idpage *page_find(rt_runtime *rt, uint64_t base)
{
    struct cds_lfht_iter it;
    cds_lfht_lookup(rt->idpages, rt_hash_u64(base), match_page, &base, &it);
    struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
    if (!n)
        return NULL;
    rt_idpage *p = caa_container_of(n, rt_idpage, node);
    RT_TSAN_ACQUIRE(p); /* pairs with the release before cds_lfht_add in page_new */
    return p;
}

static rt_idpage *page_new(rt_runtime *rt, uint64_t base)
{
    rt_idpage *p = rt_xcalloc(1, sizeof(*p));
    cds_lfht_node_init(&p->node);
    p->rt = rt;
    p->base = base;
    atomic_init(&p->left, RT_IDTAB_PAGE);
    RT_TSAN_RELEASE(p); /* cds_lfht_add publishes it; TSan cannot see inside liburcu */
    cds_lfht_add(rt->idpages, rt_hash_u64(base), &p->node);
    atomic_fetch_add_explicit(&rt->id_pages, 1, memory_order_relaxed);
    return p;
}

static void page_free_cb(struct rcu_head *h)
{
    rt_idpage *p = caa_container_of(h, rt_idpage, rcu);
    RT_TSAN_ACQUIRE(&p->rt->rcu_hb); /* a grace period: every reader is done with it */
    rt_free(p);
}

/* Retire n ids of page p; the last retirement unlinks the page and frees it after a grace
 * period (readers that found it may still load a slot: all slots are NULL by then). */
static void page_retire(rt_runtime *rt, rt_idpage *p, uint32_t n)
{
    /* acq_rel: the freeing thread sees every other retirement's slot store. */
    if (atomic_fetch_sub_explicit(&p->left, n, memory_order_acq_rel) != n)
        return;
    cds_lfht_del(rt->idpages, &p->node);
    atomic_fetch_sub_explicit(&rt->id_pages, 1, memory_order_relaxed);
    urcu_qsbr_call_rcu(&p->rcu, page_free_cb);
}

/* ------------------------------------------------------------------ ids */

uint64_t rt_idtab_next(rt_ctx *cx)
{
    rt_runtime *rt = cx->rt;
    if (!cx->w) /* relaxed: ids only need to be unique */
        return atomic_fetch_add_explicit(&rt->ext_id_counter, 1, memory_order_relaxed);
    if (cx->id_next == cx->id_end) {
        uint64_t base =
            atomic_fetch_add_explicit(&rt->id_counter, RT_IDTAB_PAGE, memory_order_relaxed);
        RT_VERIFY(base < RT_IDTAB_EXT_BASE); /* 2^52 worker spawns: not in this universe */
        cx->id_page = page_new(rt, base);
        cx->id_next = base;
        cx->id_end = base + RT_IDTAB_PAGE;
    }
    return cx->id_next++;
}

uint64_t rt_idtab_token(rt_runtime *rt)
{
    return atomic_fetch_add_explicit(&rt->ext_id_counter, 1, memory_order_relaxed);
}

static int match_id(struct cds_lfht_node *n, const void *key)
{
    return caa_container_of(n, rt_actor, node)->id == *(const uint64_t *)key;
}

void rt_idtab_publish(rt_ctx *cx, rt_actor *a)
{
    if (is_ext(a->id)) {
        cds_lfht_node_init(&a->node);
        RT_TSAN_RELEASE(a); /* cds_lfht_add publishes the node */
        cds_lfht_add(cx->rt->by_id_ext, rt_hash_u64(a->id), &a->node);
        return;
    }
    rt_idpage *p = cx->id_page;
    a->page = p;
    /* release: a's fields before its pointer, for the acquire load in rt_idtab_find. */
    atomic_store_explicit(&p->slot[a->id - p->base], a, memory_order_release);
}

void rt_idtab_forget(rt_ctx *cx, uint64_t id)
{
    if (!is_ext(id))
        page_retire(cx->rt, cx->id_page, 1);
}

rt_actor *rt_idtab_find(rt_runtime *rt, uint64_t id)
{
    if (is_ext(id)) {
        struct cds_lfht_iter it;
        cds_lfht_lookup(rt->by_id_ext, rt_hash_u64(id), match_id, &id, &it);
        struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
        if (!n)
            return NULL;
        rt_actor *a = caa_container_of(n, rt_actor, node);
        RT_TSAN_ACQUIRE(a); /* pairs with the release before cds_lfht_add */
        return a;
    }
    rt_idpage *p = page_find(rt, id & ~(uint64_t)(RT_IDTAB_PAGE - 1));
    if (!p)
        return NULL;
    return atomic_load_explicit(&p->slot[id - p->base], memory_order_acquire);
}

void rt_idtab_remove(rt_runtime *rt, rt_actor *a)
{
    if (is_ext(a->id)) {
        cds_lfht_del(rt->by_id_ext, &a->node);
        return;
    }
    rt_idpage *p = a->page;
    atomic_store_explicit(&p->slot[a->id - p->base], NULL, memory_order_relaxed);
    page_retire(rt, p, 1);
}

rt_actor *rt_idtab_take_all(rt_runtime *rt)
{
    rt_actor *list = NULL;
    struct cds_lfht_iter it;
    /* Node by node: cds_lfht_for_each_entry computes container_of(NULL) at the end. */
    for (cds_lfht_first(rt->by_id_ext, &it); cds_lfht_iter_get_node(&it);
         cds_lfht_next(rt->by_id_ext, &it)) {
        rt_actor *a = caa_container_of(cds_lfht_iter_get_node(&it), rt_actor, node);
        cds_lfht_del(rt->by_id_ext, &a->node);
        a->qnext = list;
        list = a;
    }
    for (cds_lfht_first(rt->idpages, &it); cds_lfht_iter_get_node(&it);
         cds_lfht_next(rt->idpages, &it)) {
        rt_idpage *p = caa_container_of(cds_lfht_iter_get_node(&it), rt_idpage, node);
        cds_lfht_del(rt->idpages, &p->node);
        atomic_fetch_sub_explicit(&rt->id_pages, 1, memory_order_relaxed);
        for (uint32_t i = 0; i < RT_IDTAB_PAGE; i++) {
            rt_actor *a = atomic_load_explicit(&p->slot[i], memory_order_relaxed);
            if (a) {
                a->qnext = list;
                list = a;
            }
        }
        rt_free(p); /* nobody else runs: no grace period to wait for */
    }
    return list;
}
