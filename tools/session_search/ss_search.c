/*
 * ss_search — see ss_search.h.
 */
#include "ss_search.h"

#include "mem_file.h"
#include "ss_text.h"
#include "st_read.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#define MAX_ROLES    16 /* role_filter entries used */
#define MAX_HOPS     64 /* parent links followed at most (the original stops on a cycle) */
#define MAX_RESOLVED 64 /* session → root cache entries (one per distinct hit session) */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static cJSON *failure(const char *text)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", false);
    cJSON_AddStringToObject(o, "error", text);
    return o;
}

static cJSON *no_matches(const char *query)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddStringToObject(o, "query", query);
    cJSON_AddItemToObject(o, "results", cJSON_CreateArray());
    cJSON_AddNumberToObject(o, "count", 0);
    cJSON_AddStringToObject(o, "message", "No matching sessions found.");
    return o;
}

/* =============================================================== lineage */

typedef struct resolver {
    st_reader *r;
    char *sid[MAX_RESOLVED];
    char *root[MAX_RESOLVED];
    size_t n;
} resolver;

static bool seen_in(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

/* The original's _resolve_to_parent: follow parent_session_id to the root; a missing
 * session or a cycle ends the walk where it is. New string. */
static char *walk_to_root(st_reader *r, const char *sid)
{
    char *visited[MAX_HOPS];
    size_t n = 0;
    char *cur = rt_xstrdup(sid);
    while (n < MAX_HOPS && !seen_in(visited, n, cur)) {
        visited[n++] = rt_xstrdup(cur);
        cJSON *row = NULL;
        if (st_read_session(r, cur, &row) != 0)
            break;
        const char *parent = jstr(row, "parent_session_id");
        bool has_parent = parent && *parent;
        if (has_parent) {
            rt_free(cur);
            cur = rt_xstrdup(parent);
        }
        cJSON_Delete(row);
        if (!has_parent)
            break;
    }
    for (size_t i = 0; i < n; i++)
        rt_free(visited[i]);
    return cur;
}

/* The root of sid (borrowed from the cache, or new in *owned when the cache is full). */
static const char *resolve(resolver *rs, const char *sid, char **owned)
{
    *owned = NULL;
    for (size_t i = 0; i < rs->n; i++)
        if (strcmp(rs->sid[i], sid) == 0)
            return rs->root[i];
    char *root = walk_to_root(rs->r, sid);
    if (rs->n == MAX_RESOLVED) {
        *owned = root;
        return root;
    }
    rs->sid[rs->n] = rt_xstrdup(sid);
    rs->root[rs->n] = root;
    return rs->root[rs->n++];
}

static void resolver_fini(resolver *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        rt_free(rs->sid[i]);
        rt_free(rs->root[i]);
    }
}

/* ================================================================ search */

/* The raw query first (the original passes it to MATCH as given); when FTS5 rejects it,
 * the sanitised form, then every word quoted. The first error is the one reported. */
static int search(st_reader *r, st_search_query *q, cJSON **hits, char *err, size_t errlen)
{
    const char *raw = q->query;
    int rc = st_read_search(r, q, hits);
    if (rc != -EINVAL)
        goto out;
    rt_strlcpy(err, st_reader_errmsg(r), errlen);
    char *forms[2] = {ss_sanitize(raw), ss_quote_terms(raw)};
    for (int i = 0; i < 2 && rc == -EINVAL; i++) {
        if (strcmp(forms[i], raw) == 0)
            continue;
        q->query = forms[i];
        rc = st_read_search(r, q, hits);
        RT_DEBUG("tools", "session_search: retried as a safe query, rc=%d", rc);
    }
    q->query = raw;
    rt_free(forms[0]);
    rt_free(forms[1]);
    if (rc == -EINVAL)
        return rc; /* err holds the raw query's error */
out:
    if (rc)
        rt_strlcpy(err, st_reader_errmsg(r), errlen);
    return rc;
}

static size_t split_roles(const char *filter, char **roles)
{
    size_t n = 0;
    const char *p = filter ? filter : "";
    while (*p && n < MAX_ROLES) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char *role = mem_strip(p, len);
        if (*role)
            roles[n++] = role;
        else
            rt_free(role);
        p += len + (comma ? 1 : 0);
    }
    return n;
}

/* ============================================================== grouping */

typedef struct group {
    char *root;
    cJSON *first_hit; /* borrowed from hits */
    cJSON *snippets;
} group;

static void add_snippet(group *g, const cJSON *hit)
{
    if (cJSON_GetArraySize(g->snippets) >= SS_SNIPPETS_MAX)
        return;
    cJSON *s = cJSON_CreateObject();
    const char *role = jstr(hit, "role"), *tool = jstr(hit, "tool_name");
    const char *snip = jstr(hit, "snippet");
    cJSON_AddStringToObject(s, "role", role ? role : "unknown");
    if (tool)
        cJSON_AddStringToObject(s, "tool_name", tool);
    cJSON_AddStringToObject(s, "snippet", snip ? snip : "");
    cJSON_AddItemToArray(g->snippets, s);
}

/* The original's loop: the first hit per root until `limit` distinct roots, skipping the
 * current conversation. Returns the number of groups filled. */
static size_t group_hits(resolver *rs, const cJSON *hits, const char *current, size_t limit,
                         group *out)
{
    char *cur_root_owned = NULL;
    const char *cur_root = current && *current ? resolve(rs, current, &cur_root_owned) : NULL;
    char *cur_root_copy = cur_root ? rt_xstrdup(cur_root) : NULL;
    rt_free(cur_root_owned);
    size_t n = 0;
    const cJSON *hit;
    cJSON_ArrayForEach(hit, hits)
    {
        const char *sid = jstr(hit, "session_id");
        if (!sid)
            continue;
        char *owned;
        const char *root = resolve(rs, sid, &owned);
        bool skip = (cur_root_copy && strcmp(root, cur_root_copy) == 0) ||
                    (current && strcmp(sid, current) == 0);
        size_t i = 0;
        while (!skip && i < n && strcmp(out[i].root, root) != 0)
            i++;
        if (!skip && i == n) {
            out[n].root = rt_xstrdup(root);
            out[n].first_hit = (cJSON *)hit;
            out[n].snippets = cJSON_CreateArray();
            n++;
        }
        if (!skip)
            add_snippet(&out[i], hit);
        rt_free(owned);
        if (n >= limit)
            break;
    }
    rt_free(cur_root_copy);
    return n;
}

/* Load a group's conversation; false when it has none (the original skips it). */
static bool load_session(st_reader *r, const char *query, group *g, ss_session *s)
{
    cJSON *msgs = NULL;
    int err = st_read_messages(r, g->root, &msgs);
    if (err || cJSON_GetArraySize(msgs) == 0) {
        if (err)
            RT_WARN("tools", "session_search: cannot load session %s: %s", g->root,
                    st_reader_errmsg(r));
        cJSON_Delete(msgs);
        return false;
    }
    cJSON *row = NULL;
    const cJSON *meta = st_read_session(r, g->root, &row) == 0 ? row : g->first_hit;
    const char *source = jstr(meta, "source");
    const char *model = jstr(meta, "model");
    double started = jnum(meta, row ? "started_at" : "session_started");
    memset(s, 0, sizeof(*s));
    s->session_id = rt_xstrdup(g->root);
    s->source = rt_xstrdup(source ? source : "unknown");
    s->model = model ? rt_xstrdup(model) : NULL;
    ss_format_when(started, s->when, sizeof(s->when));
    char *full = ss_format_conversation(msgs);
    s->transcript = ss_truncate_around(full, query, SS_MAX_SESSION_CHARS);
    rt_free(full);
    s->snippets = g->snippets;
    g->snippets = NULL;
    cJSON_Delete(row);
    cJSON_Delete(msgs);
    return true;
}

/* ================================================================= entry */

static cJSON *query_error(const char *query, char **q_out)
{
    *q_out = NULL;
    if (!query)
        return failure("Query cannot be empty.");
    char *q = mem_strip(query, strlen(query));
    if (!*q) {
        rt_free(q);
        return failure("Query cannot be empty.");
    }
    if (strlen(q) > ST_QUERY_MAX) {
        char *t = rt_xasprintf("Search failed: the query is %zu bytes long; keep it under %d "
                               "(a few keywords joined with OR).",
                               strlen(q), ST_QUERY_MAX);
        cJSON *r = failure(t);
        rt_free(t);
        rt_free(q);
        return r;
    }
    *q_out = q;
    return NULL;
}

/* Search and group; the groups found or a finished result. */
static cJSON *find_groups(const ss_request *rq, st_reader *r, const char *q, group *groups,
                          size_t *ngroups)
{
    char *roles[MAX_ROLES];
    size_t nroles = split_roles(rq->role_filter, roles);
    st_search_query sq = {
        .query = q, .roles = (const char *const *)roles, .nroles = nroles, .limit = SS_HITS};
    cJSON *hits = NULL, *r_obj = NULL;
    char err[ST_ERRMSG_MAX] = "";
    int rc = search(r, &sq, &hits, err, sizeof(err));
    for (size_t i = 0; i < nroles; i++)
        rt_free(roles[i]);
    if (rc) {
        char *t = rt_xasprintf("Search failed: %s", err[0] ? err : rt_strerror(rc));
        r_obj = failure(t);
        rt_free(t);
        return r_obj;
    }
    int64_t limit = rq->limit < 1 ? 1 : rq->limit > SS_LIMIT_MAX ? SS_LIMIT_MAX : rq->limit;
    resolver rs = {.r = r};
    *ngroups = group_hits(&rs, hits, rq->current_session_id, (size_t)limit, groups);
    resolver_fini(&rs);
    /* The groups borrowed their first hit from hits, which goes now: copy them. */
    for (size_t i = 0; i < *ngroups; i++)
        groups[i].first_hit = cJSON_Duplicate(groups[i].first_hit, 1);
    cJSON_Delete(hits);
    if (*ngroups == 0)
        return no_matches(q);
    return NULL;
}

cJSON *ss_prepare(const ss_request *rq, ss_found *found)
{
    memset(found, 0, sizeof(*found));
    char *q = NULL;
    cJSON *res = query_error(rq->query, &q);
    if (res)
        return res;
    int err = 0;
    char msg[ST_ERRMSG_MAX];
    st_reader *r = rq->db_path ? st_reader_open(rq->db_path, &err, msg, sizeof(msg)) : NULL;
    if (!r) {
        if (rq->db_path && err != -ENOENT)
            RT_WARN("tools", "session_search: cannot open %s: %s", rq->db_path, msg);
        rt_free(q);
        return failure("Session database not available.");
    }
    group groups[SS_LIMIT_MAX];
    size_t ng = 0;
    res = find_groups(rq, r, q, groups, &ng);
    if (!res) {
        found->v = rt_xcalloc(ng, sizeof(found->v[0]));
        for (size_t i = 0; i < ng; i++)
            if (load_session(r, q, &groups[i], &found->v[found->n]))
                found->n++;
        found->searched = ng;
        found->query = q;
        q = NULL;
    }
    for (size_t i = 0; i < ng; i++) {
        rt_free(groups[i].root);
        cJSON_Delete(groups[i].first_hit);
        cJSON_Delete(groups[i].snippets);
    }
    st_reader_free(r);
    rt_free(q);
    return res;
}

void ss_found_fini(ss_found *f)
{
    for (size_t i = 0; i < f->n; i++) {
        rt_free(f->v[i].session_id);
        rt_free(f->v[i].source);
        rt_free(f->v[i].model);
        rt_free(f->v[i].transcript);
        cJSON_Delete(f->v[i].snippets);
    }
    rt_free(f->v);
    rt_free(f->query);
    memset(f, 0, sizeof(*f));
}

cJSON *ss_result(const ss_found *f, const char *const *summaries)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddStringToObject(o, "query", f->query ? f->query : "");
    cJSON *results = cJSON_AddArrayToObject(o, "results");
    for (size_t i = 0; i < f->n; i++) {
        const ss_session *s = &f->v[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "session_id", s->session_id);
        cJSON_AddStringToObject(e, "when", s->when);
        cJSON_AddStringToObject(e, "source", s->source);
        if (s->model)
            cJSON_AddStringToObject(e, "model", s->model);
        else
            cJSON_AddNullToObject(e, "model");
        const char *sum = summaries ? summaries[i] : NULL;
        if (sum && *sum) {
            cJSON_AddStringToObject(e, "summary", sum);
        } else {
            char *p = ss_raw_preview(s->transcript, f->query, s->snippets);
            cJSON_AddStringToObject(e, "summary", p);
            rt_free(p);
        }
        cJSON_AddItemToArray(results, e);
    }
    cJSON_AddNumberToObject(o, "count", (double)f->n);
    cJSON_AddNumberToObject(o, "sessions_searched", (double)f->searched);
    return o;
}

cJSON *ss_run(const ss_request *rq)
{
    ss_found f;
    cJSON *res = ss_prepare(rq, &f);
    if (res)
        return res;
    res = ss_result(&f, NULL);
    ss_found_fini(&f);
    return res;
}
