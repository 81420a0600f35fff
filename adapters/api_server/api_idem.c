/*
 * api_idem — the Idempotency-Key cache of non-streamed chat completions (gateway.md §10.3):
 * the same key with the same request fingerprint within 300 s gets the stored answer. At
 * most 1000 keys (and API__IDEM_BYTES of bodies); the oldest insertion goes first, as in
 * the original's OrderedDict. Keys are found by a 64-bit hash; the stored key is compared,
 * so a collision is only a miss.
 */
#include "api_int.h"

#include "rt_alloc.h"
#include "rt_util.h"

#include <string.h>

struct api_idem_entry {
    api_idem_entry *prev, *next; /* insertion order */
    uint64_t hash;
    char *key;
    uint8_t fp[API__DIGEST];
    int64_t ts_ns;
    char *body;
    char *session_id;
    size_t bytes;
};

void api__idem_init(api_idem *c)
{
    memset(c, 0, sizeof(*c));
    rt_map_init(&c->by_hash);
}

static void unlink_entry(api_idem *c, api_idem_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    if (rt_map_get(&c->by_hash, e->hash) == e)
        rt_map_del(&c->by_hash, e->hash);
    c->n--;
    c->bytes -= e->bytes;
    rt_free(e->key);
    rt_free(e->body);
    rt_free(e->session_id);
    rt_free(e);
}

void api__idem_fini(api_idem *c)
{
    while (c->head)
        unlink_entry(c, c->head);
    rt_map_fini(&c->by_hash);
}

static uint64_t key_hash(const char *key)
{
    uint64_t h = rt_hash_str(key);
    return h ? h : 1; /* rt_map keys are non-zero */
}

/* Drop entries past the TTL (the oldest are first). */
static void purge(api_idem *c, int64_t now_ns)
{
    while (c->head && now_ns - c->head->ts_ns > API__IDEM_TTL_NS)
        unlink_entry(c, c->head);
}

bool api__idem_get(api_idem *c, const char *key, const uint8_t *fp, int64_t now_ns,
                   const char **body, const char **session_id)
{
    purge(c, now_ns);
    api_idem_entry *e = rt_map_get(&c->by_hash, key_hash(key));
    if (!e || strcmp(e->key, key) != 0 || memcmp(e->fp, fp, API__DIGEST) != 0)
        return false;
    *body = e->body;
    *session_id = e->session_id;
    return true;
}

void api__idem_put(api_idem *c, const char *key, const uint8_t *fp, int64_t now_ns,
                   const char *body, const char *session_id)
{
    uint64_t h = key_hash(key);
    api_idem_entry *old = rt_map_get(&c->by_hash, h);
    if (old)
        unlink_entry(c, old); /* same key (or a colliding one): the new answer wins */
    if (strlen(body) > API__IDEM_BYTES / 8)
        return; /* too large to keep: a retry runs again */
    api_idem_entry *e = rt_xcalloc(1, sizeof(*e));
    e->hash = h;
    e->key = rt_xstrdup(key);
    memcpy(e->fp, fp, API__DIGEST);
    e->ts_ns = now_ns;
    e->body = rt_xstrdup(body);
    e->session_id = rt_xstrdup(session_id ? session_id : "");
    e->bytes = strlen(key) + strlen(body) + strlen(e->session_id) + sizeof(*e);
    e->prev = c->tail;
    if (c->tail)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
    rt_map_put(&c->by_hash, h, e);
    c->n++;
    c->bytes += e->bytes;
    while (c->head && c->head != e && (c->n > API__IDEM_MAX || c->bytes > API__IDEM_BYTES))
        unlink_entry(c, c->head);
    purge(c, now_ns);
}
