/*
 * gw_auth — the allowlist snapshot (gw_auth.h has the rules and their order).
 */
#include "gw_auth.h"

#include "rt_alloc.h"
#include "rt_log.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SUFFIX_LIST    "_ALLOWED_USERS"
#define SUFFIX_ALL     "_ALLOW_ALL_USERS"
#define MAX_PREFIX     64   /* longest platform part of a variable name we look at */
#define MAX_PLATFORMS  256  /* platforms with variables or a behaviour of their own */
#define MAX_LIST_ITEMS 4096 /* items kept from one allowlist */

enum { DM_UNSET = 0, DM_PAIR = 1, DM_IGNORE = 2 };

typedef struct id_list {
    bool set;   /* the variable is non-empty after trimming */
    char **ids; /* trimmed, non-empty items */
    size_t n;
} id_list;

typedef struct plat_env {
    char *prefix;   /* upper-case variable prefix: "MATRIX", "API_SERVER" */
    bool allow_all; /* <PREFIX>_ALLOW_ALL_USERS truthy */
    id_list list;   /* <PREFIX>_ALLOWED_USERS */
} plat_env;

typedef struct plat_dm {
    char *platform; /* config.yaml platform name, exact ("matrix") */
    int dm;         /* DM_PAIR or DM_IGNORE */
} plat_dm;

struct gw_auth {
    _Atomic unsigned refs; /* any thread */
    /* immutable after gw_auth_new */
    bool allow_all; /* GATEWAY_ALLOW_ALL_USERS */
    id_list list;   /* GATEWAY_ALLOWED_USERS */
    bool dm_pair;   /* top-level unauthorized_dm_behavior is "pair" */
    plat_env *env;
    size_t nenv;
    plat_dm *dms;
    size_t ndms;
};

bool gw_auth_truthy(const char *v)
{
    return v && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0);
}

static const char *getenv_(const hm_config *cfg, const char *name)
{
    return cfg ? hm_config_getenv(cfg, name, NULL) : getenv(name);
}

static void list_parse(id_list *l, const char *v)
{
    memset(l, 0, sizeof(*l));
    if (!v)
        return;
    while (isspace((unsigned char)*v))
        v++;
    if (!*v)
        return;
    l->set = true;
    for (const char *p = v; *p && l->n < MAX_LIST_ITEMS;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *b = p, *e = end;
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        if (e > b) {
            l->ids = rt_xrealloc(l->ids, (l->n + 1) * sizeof(*l->ids));
            l->ids[l->n++] = rt_xstrndup(b, (size_t)(e - b));
        }
        if (!comma)
            break;
        p = comma + 1;
    }
}

static void list_fini(id_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        rt_free(l->ids[i]);
    rt_free(l->ids);
}

/* "*", the id itself, or the part of the id before its first '@' (gateway.md §3.1 step 6). */
static bool list_has(const id_list *l, const char *uid)
{
    const char *at = strchr(uid, '@');
    size_t pre = at ? (size_t)(at - uid) : 0;
    for (size_t i = 0; i < l->n; i++) {
        const char *id = l->ids[i];
        if (strcmp(id, "*") == 0 || strcmp(id, uid) == 0)
            return true;
        if (at && strlen(id) == pre && memcmp(id, uid, pre) == 0)
            return true;
    }
    return false;
}

/* The platform part of an allowlist variable's name, or false if name is not one. Only
 * upper-case names count: the original looks variables up by their exact upper-case name. */
static bool env_prefix(const char *name, size_t len, char *out)
{
    size_t sl = 0;
    if (len > strlen(SUFFIX_ALL) &&
        memcmp(name + len - strlen(SUFFIX_ALL), SUFFIX_ALL, strlen(SUFFIX_ALL)) == 0)
        sl = strlen(SUFFIX_ALL);
    else if (len > strlen(SUFFIX_LIST) &&
             memcmp(name + len - strlen(SUFFIX_LIST), SUFFIX_LIST, strlen(SUFFIX_LIST)) == 0)
        sl = strlen(SUFFIX_LIST);
    if (!sl || len - sl > MAX_PREFIX)
        return false;
    for (size_t i = 0; i < len - sl; i++)
        if (!isupper((unsigned char)name[i]) && !isdigit((unsigned char)name[i]) && name[i] != '_')
            return false;
    memcpy(out, name, len - sl);
    out[len - sl] = 0;
    return strcmp(out, "GATEWAY") != 0; /* the global pair, read separately */
}

static void add_prefix(gw_auth *a, const char *prefix)
{
    for (size_t i = 0; i < a->nenv; i++)
        if (strcmp(a->env[i].prefix, prefix) == 0)
            return;
    if (a->nenv == MAX_PLATFORMS) {
        RT_WARN_ONCE("gw", "auth: more than %d platforms with allowlists; ignoring the rest",
                     MAX_PLATFORMS);
        return;
    }
    a->env = rt_xrealloc(a->env, (a->nenv + 1) * sizeof(*a->env));
    memset(&a->env[a->nenv], 0, sizeof(a->env[0]));
    a->env[a->nenv++].prefix = rt_xstrdup(prefix);
}

static void scan_name(gw_auth *a, const char *name, size_t len)
{
    char prefix[MAX_PREFIX + 1];
    if (env_prefix(name, len, prefix))
        add_prefix(a, prefix);
}

static void load_env(gw_auth *a, const hm_config *cfg)
{
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (eq)
            scan_name(a, *e, (size_t)(eq - *e));
    }
    for (size_t i = 0; cfg && hm_config_dotenv_name(cfg, i); i++) {
        const char *n = hm_config_dotenv_name(cfg, i);
        scan_name(a, n, strlen(n));
    }
    char name[MAX_PREFIX + 32];
    for (size_t i = 0; i < a->nenv; i++) {
        plat_env *p = &a->env[i];
        snprintf(name, sizeof(name), "%s%s", p->prefix, SUFFIX_ALL);
        p->allow_all = gw_auth_truthy(getenv_(cfg, name));
        snprintf(name, sizeof(name), "%s%s", p->prefix, SUFFIX_LIST);
        list_parse(&p->list, getenv_(cfg, name));
    }
    a->allow_all = gw_auth_truthy(getenv_(cfg, "GATEWAY_ALLOW_ALL_USERS"));
    list_parse(&a->list, getenv_(cfg, "GATEWAY_ALLOWED_USERS"));
}

/* _normalize_unauthorized_dm_behavior: "pair"/"ignore" after trimming, case-insensitive. */
static int dm_parse_str(const char *s)
{
    if (!s)
        return DM_UNSET;
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 4 && strncasecmp(s, "pair", 4) == 0)
        return DM_PAIR;
    if (n == 6 && strncasecmp(s, "ignore", 6) == 0)
        return DM_IGNORE;
    return DM_UNSET;
}

static int dm_parse(const cJSON *v)
{
    return cJSON_IsString(v) ? dm_parse_str(v->valuestring) : DM_UNSET;
}

static void set_dm(gw_auth *a, const char *platform, int dm, bool override)
{
    if (dm == DM_UNSET)
        return;
    for (size_t i = 0; i < a->ndms; i++) {
        if (strcmp(a->dms[i].platform, platform) == 0) {
            if (override)
                a->dms[i].dm = dm;
            return;
        }
    }
    if (a->ndms == MAX_PLATFORMS)
        return;
    a->dms = rt_xrealloc(a->dms, (a->ndms + 1) * sizeof(*a->dms));
    a->dms[a->ndms].platform = rt_xstrdup(platform);
    a->dms[a->ndms++].dm = dm;
}

static void load_dm(gw_auth *a, const hm_config *cfg)
{
    a->dm_pair = true;
    if (!cfg)
        return;
    a->dm_pair = dm_parse_str(hm_config_str(cfg, "unauthorized_dm_behavior")) != DM_IGNORE;
    const cJSON *root = hm_config_user(cfg);
    const cJSON *sec;
    /* the per-platform section (`matrix: {unauthorized_dm_behavior: …}`) wins: the original
     * copies it over platforms.<p>.extra */
    cJSON_ArrayForEach(sec, root)
    {
        if (cJSON_IsObject(sec) && sec->string && strcmp(sec->string, "platforms") != 0)
            set_dm(a, sec->string,
                   dm_parse(cJSON_GetObjectItemCaseSensitive(sec, "unauthorized_dm_behavior")),
                   true);
    }
    const cJSON *plats = cJSON_GetObjectItemCaseSensitive(root, "platforms");
    cJSON_ArrayForEach(sec, plats)
    {
        const cJSON *extra = cJSON_GetObjectItemCaseSensitive(sec, "extra");
        if (sec->string && cJSON_IsObject(extra))
            set_dm(a, sec->string,
                   dm_parse(cJSON_GetObjectItemCaseSensitive(extra, "unauthorized_dm_behavior")),
                   false);
    }
}

gw_auth *gw_auth_new(const hm_config *cfg)
{
    gw_auth *a = rt_xcalloc(1, sizeof(*a));
    atomic_init(&a->refs, 1);
    load_env(a, cfg);
    load_dm(a, cfg);
    return a;
}

gw_auth *gw_auth_ref(const gw_auth *ca)
{
    gw_auth *a = (gw_auth *)ca; /* the count is the one mutable part of a shared gw_auth */
    atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed); /* advisory: we hold one */
    return a;
}

void gw_auth_free(gw_auth *a)
{
    if (!a)
        return;
    /* acq_rel: the release orders this holder's reads before the free; the acquire on the
     * last decrement pairs with the other holders' releases. */
    if (atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < a->nenv; i++) {
        rt_free(a->env[i].prefix);
        list_fini(&a->env[i].list);
    }
    rt_free(a->env);
    for (size_t i = 0; i < a->ndms; i++)
        rt_free(a->dms[i].platform);
    rt_free(a->dms);
    list_fini(&a->list);
    rt_free(a);
}

/* The variables of platform: its name upper-cased is the variable prefix. */
static const plat_env *find_env(const gw_auth *a, const char *platform)
{
    size_t n = strlen(platform);
    if (!n || n > MAX_PREFIX)
        return NULL;
    for (size_t i = 0; i < a->nenv; i++) {
        const char *p = a->env[i].prefix;
        if (strlen(p) != n)
            continue;
        size_t j = 0;
        while (j < n && toupper((unsigned char)platform[j]) == (unsigned char)p[j])
            j++;
        if (j == n)
            return &a->env[i];
    }
    return NULL;
}

int gw_auth_check(const gw_auth *a, const gw_source *src)
{
    const char *platform = src->platform ? src->platform : "";
    if (strcmp(platform, "homeassistant") == 0 || strcmp(platform, "webhook") == 0)
        return GW_AUTH_ALLOW;
    const char *uid = src->user_id;
    if (!uid || !*uid)
        return GW_AUTH_DENY;
    const plat_env *p = find_env(a, platform);
    if (p && p->allow_all)
        return GW_AUTH_ALLOW;
    if (!(p && p->list.set) && !a->list.set)
        return a->allow_all ? GW_AUTH_ALLOW : GW_AUTH_UNKNOWN;
    if ((p && list_has(&p->list, uid)) || list_has(&a->list, uid))
        return GW_AUTH_ALLOW;
    return GW_AUTH_UNKNOWN;
}

bool gw_auth_dm_pairs(const gw_auth *a, const char *platform)
{
    for (size_t i = 0; platform && i < a->ndms; i++)
        if (strcmp(a->dms[i].platform, platform) == 0)
            return a->dms[i].dm == DM_PAIR;
    return a->dm_pair;
}

bool gw_auth_has_lists(const gw_auth *a)
{
    if (a->allow_all || a->list.set)
        return true;
    for (size_t i = 0; i < a->nenv; i++)
        if (a->env[i].allow_all || a->env[i].list.set)
            return true;
    return false;
}
