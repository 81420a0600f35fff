/*
 * hm_config — loading, checking and merging the configuration; typed and env-aware lookups;
 * the original's special precedence rules and its config → environment exports.
 */
#include "hm_config.h"

#include "hm_env.h"
#include "hm_yaml.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_MAX_LEN 512 /* longest dotted path we look up */

struct hm_config {
    _Atomic int refs; /* starts at 1 */
    /* immutable after hm_config_load */
    char *home;       /* $HERMES_HOME */
    char *path;       /* home/config.yaml */
    char *env_path;   /* home/.env */
    bool has_file;    /* config.yaml existed */
    cJSON *user;      /* config.yaml as checked and normalised (an object) */
    cJSON *eff;       /* defaults deep-merged with user */
    cJSON **defs;     /* hm_schema_len defaults, NULL where none */
    hm_yaml_doc *doc; /* key positions in config.yaml (its value tree taken) */
    hm_env dotenv;    /* .env as read */
};

/*
 * Names that hm_config_load(HM_LOAD_SETENV) copied from .env into the environment because they
 * were not set there. Written only at start-up, while the process is single-threaded (see the
 * header), and only read afterwards, from any thread. A later load's .env value wins over such
 * a copy, so a key changed in .env applies after a reload, as the original's per-run reload of
 * .env (with override) made it.
 */
static char **applied;
static size_t napplied;

static bool was_applied(const char *name)
{
    for (size_t i = 0; i < napplied; i++)
        if (strcmp(applied[i], name) == 0)
            return true;
    return false;
}

static void apply_dotenv(const hm_env *e)
{
    for (size_t i = 0; i < e->n; i++) {
        const char *k = e->v[i].key;
        if (hm_env_get(e, k) != e->v[i].value || getenv(k)) /* last assignment; env wins */
            continue;
        if (setenv(k, e->v[i].value, 1) != 0)
            continue;
        if (!was_applied(k)) {
            applied = rt_xrealloc(applied, (napplied + 1) * sizeof(*applied));
            applied[napplied++] = rt_xstrdup(k);
        }
    }
}

/* ---- $HERMES_HOME ---------------------------------------------------------------------- */

char *hm_config_home(void)
{
    const char *h = getenv("HERMES_HOME");
    if (h && *h)
        return rt_xstrdup(h);
    const char *home = getenv("HOME");
    if (home && *home)
        return rt_xasprintf("%s/.hermes", home);
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_dir)
        return rt_xasprintf("%s/.hermes", res->pw_dir);
    return rt_xstrdup(".hermes");
}

char *hm_config_file(const char *home, const char *name)
{
    return rt_xasprintf("%s/%s", home, name);
}

static int mkdir_p(const char *path, mode_t mode)
{
    char *p = rt_xstrdup(path);
    int err = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != 0)
            continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, mode) && errno != EEXIST) {
            err = -errno;
            break;
        }
        *s = c;
        if (!c)
            break;
    }
    rt_free(p);
    return err;
}

int hm_config_ensure_home(const char *home)
{
    static const char *const sub[] = {"cron",     "sessions", "logs",
                                      "memories", "skills",   "platforms"};
    int err = mkdir_p(home, 0700);
    for (size_t i = 0; !err && i < RT_ARRAY_LEN(sub); i++) {
        char *d = hm_config_file(home, sub[i]);
        if (mkdir(d, 0700) && errno != EEXIST)
            err = -errno;
        rt_free(d);
    }
    return err;
}

/* ---- diagnostics ------------------------------------------------------------------------- */

void hm_config_diag_init(hm_config_diag *d)
{
    *d = (hm_config_diag){0};
}

void hm_config_diag_fini(hm_config_diag *d)
{
    for (size_t i = 0; i < d->n; i++) {
        rt_free(d->items[i].key);
        rt_free(d->items[i].msg);
    }
    rt_free(d->items);
    *d = (hm_config_diag){0};
}

static void diag_add(hm_config_diag *d, int sev, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void diag_add(hm_config_diag *d, int sev, int line, const char *key, const char *fmt, ...)
{
    if (!d)
        return;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->items = rt_xrealloc(d->items, d->cap * sizeof(*d->items));
    }
    char msg[1024]; /* an over-long message (a huge key) is cut */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    d->items[d->n++] = (hm_diag_item){sev, line, key ? rt_xstrdup(key) : NULL, rt_xstrdup(msg)};
    if (sev == HM_DIAG_ERROR)
        d->errors++;
    else
        d->warnings++;
}

/* ---- small helpers ----------------------------------------------------------------------- */

void hm_fmt_double(double d, char *buf, size_t n)
{
    if (isnan(d)) {
        snprintf(buf, n, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, n, d < 0 ? "-inf" : "inf");
        return;
    }
    for (int p = 1; p <= 17; p++) { /* the shortest text that reads back exactly, like repr */
        snprintf(buf, n, "%.*g", p, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    size_t l = strlen(buf);
    if (!strpbrk(buf, ".en") && l + 3 <= n)
        snprintf(buf + l, n - l, ".0");
}

static bool is_integral(double d)
{
    return isfinite(d) && d == floor(d) && fabs(d) < 9.2e18;
}

/* Python's str() of a value; lower: str(v).lower(). New string. */
static char *pystr(const cJSON *v, bool lower)
{
    char num[64];
    char *s;
    if (cJSON_IsString(v)) {
        s = rt_xstrdup(v->valuestring);
    } else if (cJSON_IsBool(v)) {
        s = rt_xstrdup(cJSON_IsTrue(v) ? "True" : "False");
    } else if (cJSON_IsNumber(v)) {
        if (is_integral(v->valuedouble))
            snprintf(num, sizeof(num), "%lld", (long long)v->valuedouble);
        else
            hm_fmt_double(v->valuedouble, num, sizeof(num));
        s = rt_xstrdup(num);
    } else if (cJSON_IsArray(v)) { /* json.dumps(list): ["a", "b"] */
        rt_buf b;
        rt_buf_init(&b, 1u << 20);
        rt_buf_append_str(&b, "[");
        for (const cJSON *it = v->child; it; it = it->next) {
            char *j = cJSON_PrintUnformatted(it);
            rt_buf_printf(&b, "%s%s", it == v->child ? "" : ", ", j ? j : "null");
            cJSON_free(j);
        }
        rt_buf_append_str(&b, "]");
        s = rt_buf_steal(&b, NULL);
    } else if (cJSON_IsNull(v) || !v) {
        s = rt_xstrdup("None");
    } else {
        char *j = cJSON_PrintUnformatted(v);
        s = rt_xstrdup(j ? j : "");
        cJSON_free(j);
    }
    if (lower)
        for (char *p = s; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p + 32);
    return s;
}

/* The node at a dotted path under root, or NULL. */
static cJSON *get_path(const cJSON *root, const char *path)
{
    char buf[PATH_MAX_LEN];
    if (!root || snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return NULL;
    const cJSON *cur = root;
    for (char *p = buf, *dot;; p = dot + 1) {
        dot = strchr(p, '.');
        if (dot)
            *dot = 0;
        if (!cJSON_IsObject(cur))
            return NULL;
        cur = cJSON_GetObjectItemCaseSensitive(cur, p);
        if (!cur || !dot)
            return (cJSON *)cur;
    }
}

/* Put v (taking it) at path under root, creating maps on the way. */
static void set_path(cJSON *root, const char *path, cJSON *v)
{
    char buf[PATH_MAX_LEN];
    snprintf(buf, sizeof(buf), "%s", path);
    cJSON *cur = root;
    for (char *p = buf, *dot;; p = dot + 1) {
        dot = strchr(p, '.');
        if (dot)
            *dot = 0;
        cJSON *ch = cJSON_GetObjectItemCaseSensitive(cur, p);
        if (!dot) {
            if (ch)
                cJSON_ReplaceItemInObjectCaseSensitive(cur, p, v);
            else
                cJSON_AddItemToObject(cur, p, v);
            return;
        }
        if (!cJSON_IsObject(ch)) {
            cJSON *m = cJSON_CreateObject();
            if (ch)
                cJSON_ReplaceItemInObjectCaseSensitive(cur, p, m);
            else
                cJSON_AddItemToObject(cur, p, m);
            ch = m;
        }
        cur = ch;
    }
}

static bool is_env_style(const char *name)
{
    bool upper = false;
    for (const char *p = name; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            upper = true;
        else if (!(*p == '_' || (*p >= '0' && *p <= '9')))
            return false;
    }
    return upper && hm_env_valid_key(name);
}

/* ---- defaults ---------------------------------------------------------------------------- */

static cJSON *default_value(const hm_key *k)
{
    if (!k->def)
        return NULL;
    if (k->type == HM_T_STR)
        return cJSON_CreateString(k->def);
    hm_yaml_err err;
    hm_yaml_doc *d = hm_yaml_parse(k->def, strlen(k->def), &err);
    RT_VERIFY(d); /* the schema's defaults are ours: a bad one is a programming error */
    cJSON *v = hm_yaml_take_root(d);
    hm_yaml_free(d);
    return v;
}

/* One default per schema entry, and the tree of the concrete ones. */
static cJSON *build_defaults(cJSON **defs)
{
    cJSON *tree = cJSON_CreateObject();
    for (size_t i = 0; i < hm_schema_len; i++) {
        defs[i] = default_value(&hm_schema[i]);
        if (defs[i] && !strchr(hm_schema[i].path, '*'))
            set_path(tree, hm_schema[i].path, cJSON_Duplicate(defs[i], true));
    }
    return tree;
}

static void merge(cJSON *dst, const cJSON *src, const char *prefix)
{
    for (const cJSON *it = src->child; it; it = it->next) {
        char *path = prefix[0] ? rt_xasprintf("%s.%s", prefix, it->string) : rt_xstrdup(it->string);
        const hm_key *k = hm_schema_find(path);
        cJSON *d = cJSON_GetObjectItemCaseSensitive(dst, it->string);
        if (d && cJSON_IsObject(d) && cJSON_IsObject(it) && !(k && (k->flags & HM_K_REPLACE)))
            merge(d, it, path);
        else if (d)
            cJSON_ReplaceItemInObjectCaseSensitive(dst, it->string, cJSON_Duplicate(it, true));
        else
            cJSON_AddItemToObject(dst, it->string, cJSON_Duplicate(it, true));
        rt_free(path);
    }
}

/* ---- checking config.yaml against the schema ---------------------------------------------- */

typedef struct lctx {
    hm_config_diag *diag;
    const hm_yaml_doc *doc;
    const char *file;
} lctx;

/* How a bad value is shown in a message: 'text' (masked for secrets), or its kind. */
static void describe(const cJSON *v, const char *path, char *buf, size_t n)
{
    if (cJSON_IsString(v)) {
        const char *last = strrchr(path, '.');
        if (hm_is_secret_name(last ? last + 1 : path)) {
            char red[64];
            snprintf(buf, n, "'%s'", rt_log_redact(v->valuestring, red, sizeof(red)));
        } else {
            snprintf(buf, n, "'%.60s%s'", v->valuestring, strlen(v->valuestring) > 60 ? "…" : "");
        }
    } else if (cJSON_IsBool(v)) {
        snprintf(buf, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsNumber(v)) {
        hm_fmt_double(v->valuedouble, buf, n);
    } else if (cJSON_IsArray(v)) {
        snprintf(buf, n, "a list");
    } else {
        snprintf(buf, n, "a mapping");
    }
}

static void bad_type(lctx *x, const cJSON *v, const char *path, const hm_key *k)
{
    char got[128], def[128] = "";
    describe(v, path, got, sizeof(got));
    if (k->def && k->type != HM_T_MAP)
        snprintf(def, sizeof(def), " (the default, %s%s%s, is used)",
                 k->type == HM_T_STR ? "'" : "", k->def, k->type == HM_T_STR ? "'" : "");
    diag_add(x->diag, HM_DIAG_ERROR, hm_yaml_line(x->doc, path, NULL), path,
             "%s:%d: '%s' should be %s, not %s%s", x->file, hm_yaml_line(x->doc, path, NULL), path,
             hm_type_name(k->type), got, def);
}

/* A scalar as a string node (numbers as Python prints them). */
static cJSON *as_string(const cJSON *v)
{
    if (cJSON_IsBool(v))
        return cJSON_CreateString(cJSON_IsTrue(v) ? "true" : "false");
    char *s = pystr(v, false);
    cJSON *r = cJSON_CreateString(s);
    rt_free(s);
    return r;
}

/* Convert every item of a list to a string; false if an item is a list or mapping. */
static bool list_of_strings(cJSON *arr)
{
    int i = 0;
    for (cJSON *it = arr->child, *next; it; it = next, i++) {
        next = it->next;
        if (cJSON_IsArray(it) || cJSON_IsObject(it))
            return false;
        if (!cJSON_IsString(it))
            cJSON_ReplaceItemInArray(arr, i, as_string(it));
    }
    return true;
}

/* Check v (a child of parent) against k; coerce it to k's type in place. Returns the node now
 * at that place, or NULL if it was of the wrong type and has been removed. */
static cJSON *coerce(lctx *x, cJSON *parent, cJSON *v, const char *path, const hm_key *k)
{
    cJSON *neu = NULL;
    bool ok = true;
    int64_t iv;
    bool b;
    switch (k->type) {
    case HM_T_MAP:
    case HM_T_FREE: ok = cJSON_IsObject(v); break;
    case HM_T_ANY: break;
    case HM_T_MODEL:
        if (cJSON_IsString(v) || cJSON_IsNumber(v)) {
            neu = cJSON_CreateObject();
            cJSON_AddItemToObject(neu, "default", as_string(v));
        } else {
            ok = cJSON_IsObject(v);
        }
        break;
    case HM_T_STR:
        if (cJSON_IsNumber(v) || cJSON_IsBool(v))
            neu = as_string(v);
        else
            ok = cJSON_IsString(v);
        break;
    case HM_T_INT:
        if (cJSON_IsNumber(v))
            ok = is_integral(v->valuedouble);
        else if (cJSON_IsString(v) && rt_parse_i64(v->valuestring, INT64_MIN, INT64_MAX, &iv) == 0)
            neu = cJSON_CreateNumber((double)iv);
        else
            ok = false;
        break;
    case HM_T_FLOAT:
        if (cJSON_IsString(v)) {
            char *end;
            double d = strtod(v->valuestring, &end);
            ok = *v->valuestring && !*end;
            if (ok)
                neu = cJSON_CreateNumber(d);
        } else {
            ok = cJSON_IsNumber(v);
        }
        break;
    case HM_T_BOOL:
        if (cJSON_IsString(v) && rt_parse_bool(v->valuestring, &b) == 0)
            neu = cJSON_CreateBool(b);
        else if (cJSON_IsNumber(v) && (v->valuedouble == 0 || v->valuedouble == 1))
            neu = cJSON_CreateBool(v->valuedouble == 1);
        else
            ok = cJSON_IsBool(v);
        break;
    case HM_T_LIST: ok = cJSON_IsArray(v) && list_of_strings(v); break;
    case HM_T_STR_OR_LIST:
        if (cJSON_IsNumber(v))
            neu = as_string(v);
        else
            ok = cJSON_IsString(v) || (cJSON_IsArray(v) && list_of_strings(v));
        break;
    }
    if (!ok) {
        bad_type(x, v, path, k);
        cJSON_Delete(cJSON_DetachItemViaPointer(parent, v));
        return NULL;
    }
    if (neu) {
        cJSON_ReplaceItemInObjectCaseSensitive(parent, v->string, neu);
        v = neu;
    }
    return v;
}

/* A value outside the key's choices is reported (a warning: the user may know better). */
static void check_choice(lctx *x, const cJSON *v, const char *path, const hm_key *k)
{
    if (!k->choices || !(cJSON_IsString(v) || cJSON_IsBool(v)))
        return;
    const char *s = cJSON_IsString(v) ? v->valuestring : cJSON_IsTrue(v) ? "true" : "false";
    size_t n = strlen(s);
    for (const char *c = k->choices;; c++) {
        const char *bar = strchr(c, '|');
        size_t cl = bar ? (size_t)(bar - c) : strlen(c);
        if (cl == n && strncmp(c, s, n) == 0)
            return;
        if (!bar)
            break;
        c = bar;
    }
    char list[256];
    snprintf(list, sizeof(list), "%s", k->choices);
    for (char *p = strchr(list, '|'); p; p = strchr(p, '|'))
        *p = ',';
    diag_add(x->diag, HM_DIAG_WARN, hm_yaml_line(x->doc, path, NULL), path,
             "%s:%d: '%s' is '%.60s', which is not one of: %s", x->file,
             hm_yaml_line(x->doc, path, NULL), path, s, list);
}

static void check_map(lctx *x, cJSON *obj, const char *prefix, int depth);

static void unknown_key(lctx *x, const char *path)
{
    char sug[256];
    int line = hm_yaml_line(x->doc, path, NULL);
    if (hm_schema_suggest(path, sug, sizeof(sug)))
        diag_add(x->diag, HM_DIAG_ERROR, line, path, "%s:%d: unknown key '%s' (did you mean '%s'?)",
                 x->file, line, path, sug);
    else
        diag_add(x->diag, HM_DIAG_ERROR, line, path, "%s:%d: unknown key '%s'", x->file, line,
                 path);
}

static void check_item(lctx *x, cJSON *parent, cJSON *v, const char *path, int depth)
{
    if (cJSON_IsNull(v)) { /* `key:` with nothing: the same as not set */
        cJSON_Delete(cJSON_DetachItemViaPointer(parent, v));
        return;
    }
    const hm_key *k = hm_schema_find(path);
    if (!k) {
        /* top-level UPPER_CASE scalars are env-style settings (/sethome writes them) */
        bool env_style =
            !strchr(path, '.') && is_env_style(path) && !cJSON_IsObject(v) && !cJSON_IsArray(v);
        if (!env_style && !hm_schema_in_free_map(path))
            unknown_key(x, path);
        return;
    }
    v = coerce(x, parent, v, path, k);
    if (!v)
        return;
    check_choice(x, v, path, k);
    if ((k->type == HM_T_MAP || k->type == HM_T_MODEL) && cJSON_IsObject(v))
        check_map(x, v, path, depth + 1);
}

static void check_map(lctx *x, cJSON *obj, const char *prefix, int depth)
{
    if (depth > HM_YAML_MAX_DEPTH)
        return;
    for (cJSON *it = obj->child, *next; it; it = next) {
        next = it->next;
        char *path = prefix[0] ? rt_xasprintf("%s.%s", prefix, it->string) : rt_xstrdup(it->string);
        check_item(x, obj, it, path, depth);
        rt_free(path);
    }
}

/* ---- loading ----------------------------------------------------------------------------- */

static void config_free(hm_config *c)
{
    if (c->defs)
        for (size_t i = 0; i < hm_schema_len; i++)
            cJSON_Delete(c->defs[i]);
    rt_free(c->defs);
    cJSON_Delete(c->user);
    cJSON_Delete(c->eff);
    hm_yaml_free(c->doc);
    hm_env_fini(&c->dotenv);
    rt_free(c->home);
    rt_free(c->path);
    rt_free(c->env_path);
    rt_free(c);
}

static void log_diag(const hm_config_diag *d, size_t from)
{
    for (size_t i = from; d && i < d->n; i++) {
        if (d->items[i].severity == HM_DIAG_ERROR)
            RT_ERROR("config", "%s", d->items[i].msg);
        else
            RT_WARN("config", "%s", d->items[i].msg);
    }
}

static int read_dotenv(hm_config *c, unsigned flags, hm_config_diag *diag)
{
    int rc = hm_env_read(&c->dotenv, c->env_path);
    if (rc == -ENOENT)
        return 0;
    if (rc) {
        diag_add(diag, HM_DIAG_ERROR, 0, NULL, "%s: cannot read: %s", c->env_path, rt_strerror(rc));
        return rc;
    }
    if (flags & HM_LOAD_SETENV)
        apply_dotenv(&c->dotenv);
    return 0;
}

/* Read and parse config.yaml into c->user and c->doc. */
static int read_yaml(hm_config *c, hm_config_diag *diag)
{
    char *text;
    size_t len;
    int rc = hm_read_file(c->path, HM_CONFIG_MAX_BYTES, &text, &len);
    if (rc == -ENOENT) {
        c->user = cJSON_CreateObject();
        return 0;
    }
    if (rc == -E2BIG) {
        struct stat st;
        long long sz = stat(c->path, &st) == 0 ? (long long)st.st_size : -1;
        diag_add(diag, HM_DIAG_ERROR, 0, NULL,
                 "%s: file too large (%lld bytes; the limit is %u bytes)", c->path, sz,
                 HM_CONFIG_MAX_BYTES);
        return rc;
    }
    if (rc) {
        diag_add(diag, HM_DIAG_ERROR, 0, NULL, "%s: cannot read: %s", c->path, rt_strerror(rc));
        return rc;
    }
    c->has_file = true;
    hm_yaml_err err;
    c->doc = hm_yaml_parse(text, len, &err);
    rt_free(text);
    if (!c->doc) {
        if (err.col > 0)
            diag_add(diag, HM_DIAG_ERROR, err.line, NULL, "%s:%d:%d: %s", c->path, err.line,
                     err.col, err.msg);
        else
            diag_add(diag, HM_DIAG_ERROR, err.line, NULL, "%s:%d: %s", c->path, err.line, err.msg);
        return -EBADMSG;
    }
    cJSON *root = hm_yaml_take_root(c->doc);
    if (cJSON_IsNull(root)) { /* empty file */
        cJSON_Delete(root);
        root = cJSON_CreateObject();
    }
    if (!cJSON_IsObject(root)) {
        diag_add(diag, HM_DIAG_ERROR, 1, NULL,
                 "%s:1: the top level must be a mapping of keys (key: value), not %s", c->path,
                 cJSON_IsArray(root) ? "a list" : "a single value");
        cJSON_Delete(root);
        return -EBADMSG;
    }
    c->user = root;
    size_t nd;
    const hm_yaml_dup *dups = hm_yaml_dups(c->doc, &nd);
    for (size_t i = 0; i < nd; i++)
        diag_add(diag, HM_DIAG_WARN, dups[i].line, dups[i].path,
                 "%s:%d: duplicate key '%s' (it overrides line %d)", c->path, dups[i].line,
                 dups[i].path, dups[i].first_line);
    return 0;
}

hm_config *hm_config_load(const char *home, unsigned flags, hm_config_diag *diag, int *err)
{
    hm_config_diag own;
    hm_config_diag_init(&own);
    if (!diag && (flags & HM_LOAD_LOG))
        diag = &own; /* to log problems the caller does not want back */
    size_t first = diag ? diag->n : 0;
    hm_config *c = rt_xcalloc(1, sizeof(*c));
    atomic_init(&c->refs, 1);
    c->home = home ? rt_xstrdup(home) : hm_config_home();
    c->path = hm_config_file(c->home, "config.yaml");
    c->env_path = hm_config_file(c->home, ".env");
    hm_env_init(&c->dotenv);
    int rc = read_dotenv(c, flags, diag);
    if (!rc)
        rc = read_yaml(c, diag);
    if (!rc) {
        lctx x = {diag, c->doc, c->path};
        check_map(&x, c->user, "", 0);
        c->defs = rt_xcalloc(hm_schema_len, sizeof(*c->defs));
        c->eff = build_defaults(c->defs);
        merge(c->eff, c->user, "");
    }
    if (flags & HM_LOAD_LOG)
        log_diag(diag, first);
    hm_config_diag_fini(&own);
    if (err)
        *err = rc;
    if (rc) {
        config_free(c);
        return NULL;
    }
    return c;
}

hm_config *hm_config_ref(hm_config *c)
{
    /* relaxed: a new reference is made from an existing one, which keeps c alive */
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void hm_config_unref(hm_config *c)
{
    if (!c)
        return;
    /* acq_rel: the release orders this holder's reads before the free; the acquire of the
     * last unref pairs with every other holder's release */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        config_free(c);
}

const char *hm_config_home_dir(const hm_config *c)
{
    return c->home;
}

const char *hm_config_path(const hm_config *c)
{
    return c->path;
}

const char *hm_config_env_path(const hm_config *c)
{
    return c->env_path;
}

bool hm_config_has_file(const hm_config *c)
{
    return c->has_file;
}

/* ---- lookups ----------------------------------------------------------------------------- */

const cJSON *hm_config_node(const hm_config *c, const char *path)
{
    const cJSON *n = get_path(c->eff, path);
    if (n && !cJSON_IsNull(n))
        return n;
    /* concrete defaults are in c->eff already (unless the user's map replaced them, as
     * agent.personalities may); only "*" keys need their default here */
    const hm_key *k = hm_schema_find(path);
    return k && strchr(k->path, '*') ? c->defs[k - hm_schema] : NULL;
}

const char *hm_config_str(const hm_config *c, const char *path)
{
    const cJSON *n = hm_config_node(c, path);
    if (cJSON_IsString(n))
        return n->valuestring;
    if (cJSON_IsBool(n))
        return cJSON_IsTrue(n) ? "true" : "false";
    return NULL;
}

int64_t hm_config_int(const hm_config *c, const char *path)
{
    const cJSON *n = hm_config_node(c, path);
    int64_t v = 0;
    if (cJSON_IsNumber(n))
        return isfinite(n->valuedouble) && fabs(n->valuedouble) < 9.2e18 ? (int64_t)n->valuedouble
                                                                         : 0;
    if (cJSON_IsBool(n))
        return cJSON_IsTrue(n);
    if (cJSON_IsString(n) && rt_parse_i64(n->valuestring, INT64_MIN, INT64_MAX, &v) == 0)
        return v;
    return 0;
}

double hm_config_double(const hm_config *c, const char *path)
{
    const cJSON *n = hm_config_node(c, path);
    if (cJSON_IsNumber(n))
        return n->valuedouble;
    if (cJSON_IsString(n))
        return strtod(n->valuestring, NULL);
    return 0;
}

bool hm_config_bool(const hm_config *c, const char *path)
{
    const cJSON *n = hm_config_node(c, path);
    bool b = false;
    if (cJSON_IsBool(n))
        return cJSON_IsTrue(n);
    if (cJSON_IsNumber(n))
        return n->valuedouble != 0;
    if (cJSON_IsString(n) && rt_parse_bool(n->valuestring, &b) == 0)
        return b;
    return false;
}

size_t hm_config_list(const hm_config *c, const char *path, const char **out, size_t max)
{
    const cJSON *n = hm_config_node(c, path);
    size_t i = 0;
    if (cJSON_IsString(n) && *n->valuestring) { /* a comma list given as one string */
        if (max)
            out[0] = n->valuestring;
        return 1;
    }
    if (!cJSON_IsArray(n))
        return 0;
    for (const cJSON *it = n->child; it; it = it->next, i++)
        if (i < max)
            out[i] = cJSON_IsString(it) ? it->valuestring : "";
    return i;
}

const cJSON *hm_config_user(const hm_config *c)
{
    return c->user;
}

bool hm_config_is_set(const hm_config *c, const char *path)
{
    const cJSON *n = get_path(c->user, path);
    return n && !cJSON_IsNull(n);
}

int hm_config_line(const hm_config *c, const char *path)
{
    if (!c->doc)
        return 0;
    int line = hm_yaml_line(c->doc, path, NULL);
    if (!line && strcmp(path, "model.default") == 0)
        line = hm_yaml_line(c->doc, "model", NULL); /* `model: name` */
    return line;
}

const char *hm_source_name(hm_source s)
{
    switch (s) {
    case HM_SRC_DEFAULT: return "default";
    case HM_SRC_FILE: return "config.yaml";
    case HM_SRC_DOTENV: return ".env";
    case HM_SRC_ENV: return "env";
    case HM_SRC_ARG: return "command line";
    }
    return "?";
}

static void set_src(hm_source *src, hm_source s)
{
    if (src)
        *src = s;
}

const char *hm_config_dotenv(const hm_config *c, const char *name)
{
    return hm_env_get(&c->dotenv, name);
}

const char *hm_config_dotenv_name(const hm_config *c, size_t i)
{
    return i < c->dotenv.n ? c->dotenv.v[i].key : NULL;
}

const char *hm_config_getenv(const hm_config *c, const char *name, hm_source *src)
{
    const char *v = getenv(name), *dv = hm_env_get(&c->dotenv, name);
    if (dv && *dv && v && was_applied(name)) { /* the environment only has an older .env copy */
        set_src(src, HM_SRC_DOTENV);
        return dv;
    }
    if (v && *v) {
        set_src(src, dv && strcmp(dv, v) == 0 ? HM_SRC_DOTENV : HM_SRC_ENV);
        return v;
    }
    if (dv && *dv) {
        set_src(src, HM_SRC_DOTENV);
        return dv;
    }
    return NULL;
}

/* The variable that overrides path, if it is set and counts. */
static const char *env_override(const hm_config *c, const char *path, const hm_key **kp,
                                hm_source *src)
{
    const hm_key *k = hm_schema_find(path);
    *kp = k;
    if (!k || !k->env)
        return NULL;
    if ((k->flags & HM_K_ENV_FALLBACK) && hm_config_is_set(c, path))
        return NULL;
    return hm_config_getenv(c, k->env, src);
}

static hm_source file_or_default(const hm_config *c, const char *path)
{
    return hm_config_is_set(c, path) ? HM_SRC_FILE : HM_SRC_DEFAULT;
}

const char *hm_config_env_str(const hm_config *c, const char *path, hm_source *src)
{
    const hm_key *k;
    const char *v = env_override(c, path, &k, src);
    if (v)
        return v;
    set_src(src, file_or_default(c, path));
    return hm_config_str(c, path);
}

int64_t hm_config_env_int(const hm_config *c, const char *path, hm_source *src)
{
    const hm_key *k;
    int64_t n;
    const char *v = env_override(c, path, &k, src);
    if (v && rt_parse_i64(v, INT64_MIN, INT64_MAX, &n) == 0)
        return n;
    if (v)
        RT_LOG_LIMITED(RT_LOG_WARN, "config", 60000, "ignoring %s: not an integer", k->env);
    set_src(src, file_or_default(c, path));
    return hm_config_int(c, path);
}

double hm_config_env_double(const hm_config *c, const char *path, hm_source *src)
{
    const hm_key *k;
    const char *v = env_override(c, path, &k, src);
    if (v) {
        char *end;
        double d = strtod(v, &end);
        if (!*end)
            return d;
        RT_LOG_LIMITED(RT_LOG_WARN, "config", 60000, "ignoring %s: not a number", k->env);
    }
    set_src(src, file_or_default(c, path));
    return hm_config_double(c, path);
}

bool hm_config_env_bool(const hm_config *c, const char *path, hm_source *src)
{
    const hm_key *k;
    bool b;
    const char *v = env_override(c, path, &k, src);
    if (v && rt_parse_bool(v, &b) == 0)
        return b;
    if (v)
        RT_LOG_LIMITED(RT_LOG_WARN, "config", 60000, "ignoring %s: not true or false", k->env);
    set_src(src, file_or_default(c, path));
    return hm_config_bool(c, path);
}

/* ---- the original's special precedence rules --------------------------------------------- */

const char *hm_config_model(const hm_config *c, hm_ctx ctx, const char *cli_arg, hm_source *src)
{
    const char *v;
    if (ctx == HM_CTX_GATEWAY) {
        if (hm_config_is_set(c, "model.default") && hm_config_str(c, "model.default")) {
            set_src(src, HM_SRC_FILE);
            return hm_config_str(c, "model.default");
        }
        if ((v = hm_config_getenv(c, "HERMES_MODEL", src)) ||
            (v = hm_config_getenv(c, "LLM_MODEL", src)))
            return v;
        set_src(src, HM_SRC_DEFAULT);
        return HM_DEFAULT_MODEL;
    }
    if (cli_arg && *cli_arg) {
        set_src(src, HM_SRC_ARG);
        return cli_arg;
    }
    if ((v = hm_config_getenv(c, "LLM_MODEL", src)) ||
        (v = hm_config_getenv(c, "OPENAI_MODEL", src)))
        return v;
    v = hm_config_str(c, "model.default");
    set_src(src, file_or_default(c, "model.default"));
    return v && *v ? v : HM_DEFAULT_MODEL;
}

int64_t hm_config_max_turns(const hm_config *c, hm_ctx ctx, int64_t cli_arg, hm_source *src)
{
    int64_t n;
    if (ctx == HM_CTX_CLI && cli_arg > 0) {
        set_src(src, HM_SRC_ARG);
        return cli_arg;
    }
    /* The gateway exports agent.max_turns into HERMES_MAX_ITERATIONS (config wins), so in
     * both contexts a value in config.yaml comes before the variable. */
    if (hm_config_is_set(c, "agent.max_turns")) {
        set_src(src, HM_SRC_FILE);
        return hm_config_int(c, "agent.max_turns");
    }
    if (ctx == HM_CTX_CLI && hm_config_is_set(c, "max_turns")) {
        set_src(src, HM_SRC_FILE);
        return hm_config_int(c, "max_turns");
    }
    const char *v = hm_config_getenv(c, "HERMES_MAX_ITERATIONS", src);
    if (v && rt_parse_i64(v, 1, INT32_MAX, &n) == 0)
        return n;
    set_src(src, HM_SRC_DEFAULT);
    return HM_DEFAULT_MAX_TURNS;
}

/* ---- config.yaml → environment ----------------------------------------------------------- */

enum { PUT_ALWAYS, PUT_IF_ABSENT, PUT_IF_EMPTY };

static int put(const char *name, const cJSON *v, bool lower, int mode)
{
    const char *cur = getenv(name);
    if ((mode == PUT_IF_ABSENT && cur) || (mode == PUT_IF_EMPTY && cur && *cur))
        return 0;
    char *s = pystr(v, lower);
    int ok = setenv(name, s, 1) == 0;
    rt_free(s);
    return ok;
}

static int put_str(const char *name, const char *s, int mode)
{
    const char *cur = getenv(name);
    if ((mode == PUT_IF_ABSENT && cur) || (mode == PUT_IF_EMPTY && cur && *cur))
        return 0;
    return setenv(name, s, 1) == 0;
}

/* terminal.<key> → variable; cli: the CLI's built-in defaults are exported too (if unset). */
static const struct {
    const char *key, *env;
    bool cli, gateway_only;
} term_map[] = {
    {"cwd", "TERMINAL_CWD", true, false},
    {"timeout", "TERMINAL_TIMEOUT", true, false},
    {"lifetime_seconds", "TERMINAL_LIFETIME_SECONDS", true, false},
    {"docker_image", "TERMINAL_DOCKER_IMAGE", true, false},
    {"singularity_image", "TERMINAL_SINGULARITY_IMAGE", true, false},
    {"modal_image", "TERMINAL_MODAL_IMAGE", true, false},
    {"ssh_host", "TERMINAL_SSH_HOST", false, false},
    {"ssh_user", "TERMINAL_SSH_USER", false, false},
    {"ssh_port", "TERMINAL_SSH_PORT", false, false},
    {"ssh_key", "TERMINAL_SSH_KEY", false, false},
    {"container_cpu", "TERMINAL_CONTAINER_CPU", false, false},
    {"container_memory", "TERMINAL_CONTAINER_MEMORY", false, false},
    {"container_disk", "TERMINAL_CONTAINER_DISK", false, false},
    {"container_persistent", "TERMINAL_CONTAINER_PERSISTENT", false, false},
    {"docker_volumes", "TERMINAL_DOCKER_VOLUMES", false, false},
    {"sudo_password", "SUDO_PASSWORD", false, false},
    {"docker_forward_env", "TERMINAL_DOCKER_FORWARD_ENV", false, true},
    {"daytona_image", "TERMINAL_DAYTONA_IMAGE", false, true},
    {"sandbox_dir", "TERMINAL_SANDBOX_DIR", false, true},
    {"persistent_shell", "TERMINAL_PERSISTENT_SHELL", false, true},
};

static bool cwd_placeholder(const char *s)
{
    return s && (strcmp(s, ".") == 0 || strcmp(s, "auto") == 0 || strcmp(s, "cwd") == 0);
}

static int export_terminal_cli(const hm_config *c)
{
    int n = 0;
    const char *backend = hm_config_str(c, "terminal.backend");
    bool backend_set = hm_config_is_set(c, "terminal.backend");
    if (!backend_set && hm_config_is_set(c, "terminal.env_type")) {
        backend = hm_config_str(c, "terminal.env_type");
        backend_set = true;
    }
    n += put_str("TERMINAL_ENV", backend ? backend : "local",
                 backend_set ? PUT_ALWAYS : PUT_IF_ABSENT);
    for (size_t i = 0; i < RT_ARRAY_LEN(term_map); i++) {
        if (term_map[i].gateway_only)
            continue;
        char path[64];
        snprintf(path, sizeof(path), "terminal.%s", term_map[i].key);
        bool set = hm_config_is_set(c, path);
        const cJSON *v = hm_config_node(c, path);
        if (!v || (!set && !term_map[i].cli))
            continue;
        int mode = set ? PUT_ALWAYS : PUT_IF_ABSENT;
        if (strcmp(term_map[i].key, "cwd") == 0 && cwd_placeholder(hm_config_str(c, path))) {
            /* "." means where hermes runs, for the local backend only */
            char cwd[4096];
            if (strcmp(backend ? backend : "local", "local") == 0 && getcwd(cwd, sizeof(cwd)))
                n += put_str("TERMINAL_CWD", cwd, mode);
            continue;
        }
        n += put(term_map[i].env, v, false, mode);
    }
    return n;
}

static int export_common_always(const hm_config *c, bool only_set)
{
    static const char *const comp[][2] = {
        {"compression.enabled", "CONTEXT_COMPRESSION_ENABLED"},
        {"compression.threshold", "CONTEXT_COMPRESSION_THRESHOLD"},
        {"compression.summary_model", "CONTEXT_COMPRESSION_MODEL"},
    };
    int n = 0;
    for (size_t i = 0; i < RT_ARRAY_LEN(comp); i++)
        if (!only_set || hm_config_is_set(c, comp[i][0]))
            n += put(comp[i][1], hm_config_node(c, comp[i][0]), false, PUT_ALWAYS);
    return n;
}

/* Platform sections → variables, only if unset (env wins); lists joined with commas. */
static int export_platform_sections(const hm_config *c)
{
    static const char *const map[][2] = {
        {"matrix.require_mention", "MATRIX_REQUIRE_MENTION"},
        {"matrix.free_response_rooms", "MATRIX_FREE_RESPONSE_ROOMS"},
        {"matrix.auto_thread", "MATRIX_AUTO_THREAD"},
        {"matrix.dm_mention_threads", "MATRIX_DM_MENTION_THREADS"},
        {"mattermost.require_mention", "MATTERMOST_REQUIRE_MENTION"},
        {"mattermost.free_response_channels", "MATTERMOST_FREE_RESPONSE_CHANNELS"},
        {"slack.require_mention", "SLACK_REQUIRE_MENTION"},
        {"slack.allow_bots", "SLACK_ALLOW_BOTS"},
        {"slack.free_response_channels", "SLACK_FREE_RESPONSE_CHANNELS"},
        {"discord.require_mention", "DISCORD_REQUIRE_MENTION"},
        {"discord.free_response_channels", "DISCORD_FREE_RESPONSE_CHANNELS"},
        {"discord.auto_thread", "DISCORD_AUTO_THREAD"},
        {"discord.reactions", "DISCORD_REACTIONS"},
        {"discord.ignored_channels", "DISCORD_IGNORED_CHANNELS"},
        {"discord.allowed_channels", "DISCORD_ALLOWED_CHANNELS"},
        {"discord.no_thread_channels", "DISCORD_NO_THREAD_CHANNELS"},
        {"telegram.require_mention", "TELEGRAM_REQUIRE_MENTION"},
        {"telegram.free_response_chats", "TELEGRAM_FREE_RESPONSE_CHATS"},
        {"telegram.ignored_threads", "TELEGRAM_IGNORED_THREADS"},
        {"telegram.reactions", "TELEGRAM_REACTIONS"},
        {"whatsapp.require_mention", "WHATSAPP_REQUIRE_MENTION"},
        {"whatsapp.free_response_chats", "WHATSAPP_FREE_RESPONSE_CHATS"},
    };
    int n = 0;
    for (size_t i = 0; i < RT_ARRAY_LEN(map); i++) {
        const cJSON *v = get_path(c->user, map[i][0]);
        if (!v)
            continue;
        if (cJSON_IsArray(v)) {
            rt_buf b;
            rt_buf_init(&b, 1u << 20);
            for (const cJSON *it = v->child; it; it = it->next) {
                char *s = pystr(it, false);
                rt_buf_printf(&b, "%s%s", it == v->child ? "" : ",", s);
                rt_free(s);
            }
            n += put_str(map[i][1], rt_buf_cstr(&b), PUT_IF_EMPTY);
            rt_buf_fini(&b);
        } else {
            n += put(map[i][1], v, !cJSON_IsString(v) || strstr(map[i][0], "free") == NULL,
                     PUT_IF_EMPTY);
        }
    }
    const cJSON *proxy = get_path(c->user, "telegram.proxy_url");
    if (cJSON_IsString(proxy))
        n += put_str("TELEGRAM_PROXY", proxy->valuestring, PUT_IF_EMPTY);
    return n;
}

static int export_gateway(const hm_config *c)
{
    int n = 0;
    /* top-level UPPER_CASE scalars (fallback only); the original also exported lower-case
     * keys such as `model` as variables of that name, which nothing reads: not copied */
    for (const cJSON *it = c->user->child; it; it = it->next)
        if (is_env_style(it->string) && !cJSON_IsObject(it) && !cJSON_IsArray(it))
            n += put(it->string, it, false, PUT_IF_ABSENT);
    for (size_t i = 0; i < RT_ARRAY_LEN(term_map); i++) {
        char path[64];
        snprintf(path, sizeof(path), "terminal.%s", term_map[i].key);
        const cJSON *v = get_path(c->user, path);
        if (!v || (strcmp(term_map[i].key, "cwd") == 0 && cwd_placeholder(v->valuestring)))
            continue;
        n += put(term_map[i].env, v, false, PUT_ALWAYS);
    }
    const cJSON *be = get_path(c->user, "terminal.backend");
    if (!be)
        be = get_path(c->user, "terminal.env_type");
    if (be)
        n += put("TERMINAL_ENV", be, false, PUT_ALWAYS);
    n += export_common_always(c, true);
    static const char *const agent[][2] = {
        {"agent.gateway_timeout", "HERMES_AGENT_TIMEOUT"},
        {"agent.gateway_timeout_warning", "HERMES_AGENT_TIMEOUT_WARNING"},
        {"agent.gateway_notify_interval", "HERMES_AGENT_NOTIFY_INTERVAL"},
        {"agent.restart_drain_timeout", "HERMES_RESTART_DRAIN_TIMEOUT"},
        {"display.busy_input_mode", "HERMES_GATEWAY_BUSY_INPUT_MODE"},
        {"gateway.proxy_url", "GATEWAY_PROXY_URL"},
    };
    if (hm_config_is_set(c, "agent.max_turns"))
        n += put("HERMES_MAX_ITERATIONS", get_path(c->user, "agent.max_turns"), false, PUT_ALWAYS);
    for (size_t i = 0; i < RT_ARRAY_LEN(agent); i++)
        if (hm_config_is_set(c, agent[i][0]))
            n += put(agent[i][1], get_path(c->user, agent[i][0]), false, PUT_IF_ABSENT);
    const char *tz = hm_config_str(c, "timezone");
    if (hm_config_is_set(c, "timezone") && tz && *tz)
        n += put_str("HERMES_TIMEZONE", tz, PUT_IF_ABSENT);
    if (hm_config_is_set(c, "security.redact_secrets"))
        n += put("HERMES_REDACT_SECRETS", get_path(c->user, "security.redact_secrets"), true,
                 PUT_ALWAYS);
    n += export_platform_sections(c);
    n += put_str("HERMES_QUIET", "1", PUT_ALWAYS);
    n += put_str("HERMES_EXEC_ASK", "1", PUT_ALWAYS);
    /* the gateway's commands run in MESSAGING_CWD or ~ unless terminal.cwd names a directory */
    const char *cwd = getenv("TERMINAL_CWD");
    if (!cwd || !*cwd || cwd_placeholder(cwd)) {
        const char *m = getenv("MESSAGING_CWD");
        const char *home = getenv("HOME");
        if ((m && *m) || (home && *home))
            n += put_str("TERMINAL_CWD", m && *m ? m : home, PUT_ALWAYS);
    }
    return n;
}

int hm_config_export_env(const hm_config *c, hm_ctx ctx)
{
    if (ctx == HM_CTX_GATEWAY)
        return export_gateway(c);
    int n = export_terminal_cli(c);
    n += put("BROWSER_INACTIVITY_TIMEOUT", hm_config_node(c, "browser.inactivity_timeout"), false,
             PUT_ALWAYS);
    return n + export_common_always(c, false);
}

/* ---- `hermes config check` ---------------------------------------------------------------- */

static void check_env_secret(const hm_config *c, const char *name, hm_config_diag *diag)
{
    hm_source src;
    const char *v = hm_config_getenv(c, name, &src);
    if (v && hm_is_placeholder_secret(v))
        diag_add(diag, HM_DIAG_ERROR, 0, name,
                 "%s: %s is set to a placeholder value, not a real secret (from %s)",
                 src == HM_SRC_DOTENV ? c->env_path : "environment", name,
                 src == HM_SRC_DOTENV ? ".env" : "the environment");
}

/* Secrets written into config.yaml: placeholders are errors, real ones belong in .env. */
static void check_yaml_secrets(const hm_config *c, const cJSON *obj, const char *prefix,
                               hm_config_diag *diag, int depth)
{
    if (depth > HM_YAML_MAX_DEPTH)
        return;
    for (const cJSON *it = obj->child; it; it = it->next) {
        char *path = prefix[0] ? rt_xasprintf("%s.%s", prefix, it->string) : rt_xstrdup(it->string);
        int line = hm_config_line(c, path);
        if (cJSON_IsObject(it)) {
            check_yaml_secrets(c, it, path, diag, depth + 1);
        } else if (cJSON_IsString(it) && *it->valuestring && hm_is_secret_name(it->string)) {
            if (hm_is_placeholder_secret(it->valuestring))
                diag_add(diag, HM_DIAG_ERROR, line, path,
                         "%s:%d: '%s' is set to a placeholder value, not a real secret", c->path,
                         line, path);
            else
                diag_add(diag, HM_DIAG_WARN, line, path,
                         "%s:%d: '%s' holds a secret; config.yaml is not meant for secrets, "
                         "keep it in %s",
                         c->path, line, path, c->env_path);
        }
        rt_free(path);
    }
}

int hm_config_check(const hm_config *c, hm_config_diag *diag)
{
    int before = diag ? diag->errors : 0;
    for (size_t i = 0; i < hm_env_index_len; i++)
        if (hm_env_index[i].flags & HM_E_SECRET)
            check_env_secret(c, hm_env_index[i].name, diag);
    for (size_t i = 0; i < c->dotenv.n; i++) {
        const char *name = c->dotenv.v[i].key;
        const hm_envkey *k = hm_env_index_find(name);
        if (!k && hm_is_secret_name(name) && hm_env_get(&c->dotenv, name) == c->dotenv.v[i].value)
            check_env_secret(c, name, diag);
    }
    if (c->dotenv.bad_lines)
        diag_add(diag, HM_DIAG_WARN, 0, NULL, "%s:%d: %d line(s) could not be read and are ignored",
                 c->env_path, c->dotenv.first_bad, c->dotenv.bad_lines);
    check_yaml_secrets(c, c->user, "", diag, 0);
    return diag ? diag->errors - before : 0;
}
