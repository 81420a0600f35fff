/*
 * rt_theap — see rt_theap.h.
 */
#include "rt_theap.h"

#include "rt_alloc.h"

#include <stdbool.h>
#include <string.h>

void rt_theap_init(rt_theap *h)
{
    memset(h, 0, sizeof(*h));
}

void rt_theap_fini(rt_theap *h)
{
    rt_free(h->v);
    memset(h, 0, sizeof(*h));
}

static bool before(const rt_theap_node *a, const rt_theap_node *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void set(rt_theap *h, size_t i, rt_theap_node *n)
{
    h->v[i] = n;
    n->idx = i;
}

static void sift_up(rt_theap *h, size_t i)
{
    rt_theap_node *n = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(n, h->v[p]))
            break;
        set(h, i, h->v[p]);
        i = p;
    }
    set(h, i, n);
}

static void sift_down(rt_theap *h, size_t i)
{
    rt_theap_node *n = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(h->v[c + 1], h->v[c]))
            c++;
        if (!before(h->v[c], n))
            break;
        set(h, i, h->v[c]);
        i = c;
    }
    set(h, i, n);
}

void rt_theap_push(rt_theap *h, rt_theap_node *n)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = rt_xrealloc(h->v, h->cap * sizeof(h->v[0]));
    }
    n->seq = ++h->seq;
    set(h, h->n++, n);
    sift_up(h, n->idx);
}

rt_theap_node *rt_theap_peek(const rt_theap *h)
{
    return h->n ? h->v[0] : NULL;
}

void rt_theap_remove(rt_theap *h, rt_theap_node *n)
{
    size_t i = n->idx;
    h->n--;
    if (i == h->n)
        return;
    rt_theap_node *moved = h->v[h->n];
    set(h, i, moved);
    sift_down(h, i);
    sift_up(h, moved->idx);
}
