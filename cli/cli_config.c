/*
 * cli_config — `hermes config`: show the effective configuration (secrets masked, each value
 * with its source), set one value (secrets and env-style keys to .env, the rest into
 * config.yaml edited in place), check, print paths, open an editor, migrate.
 *
 * Messages and routing follow the original's hermes_cli/config.py (agent-core §9.4), with its
 * quirk fixed: every UPPER_CASE key (API keys, tokens, home channels…) goes to .env, never
 * into config.yaml.
 */
#include "cli.h"

#include "hm_config.h"
#include "hm_env.h"
#include "hm_yaml.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_util.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHOW_WIDTH 60 /* values longer than this are cut in `hermes config` */

/* The original's list of keys that `config set` sends to .env (plus TERMINAL_SSH*). */
static const char *const orig_env_keys[] = {
    "OPENROUTER_API_KEY",
    "ANTHROPIC_API_KEY",
    "VOICE_TOOLS_OPENAI_KEY",
    "FIRECRAWL_API_KEY",
    "BROWSERBASE_API_KEY",
    "BROWSERBASE_PROJECT_ID",
    "FAL_KEY",
    "TELEGRAM_BOT_TOKEN",
    "DISCORD_BOT_TOKEN",
    "TERMINAL_SSH_HOST",
    "TERMINAL_SSH_USER",
    "TERMINAL_SSH_KEY",
    "SUDO_PASSWORD",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "GITHUB_TOKEN",
    "HONCHO_API_KEY",
};

/* config.yaml keys the original mirrors into .env, because tools read the variables. */
static const char *const mirror[][2] = {
    {"terminal.backend", "TERMINAL_ENV"},
    {"terminal.docker_image", "TERMINAL_DOCKER_IMAGE"},
    {"terminal.singularity_image", "TERMINAL_SINGULARITY_IMAGE"},
    {"terminal.modal_image", "TERMINAL_MODAL_IMAGE"},
    {"terminal.cwd", "TERMINAL_CWD"},
    {"terminal.timeout", "TERMINAL_TIMEOUT"},
};

static void config_usage(FILE *f)
{
    fprintf(f, "Available commands:\n"
               "  hermes config           Show current configuration\n"
               "  hermes config edit      Open config in editor\n"
               "  hermes config set K V   Set a config value\n"
               "  hermes config check     Check for missing/outdated config\n"
               "  hermes config migrate   Update config with new options\n"
               "  hermes config path      Show config file path\n"
               "  hermes config env-path  Show .env file path\n");
}

static void print_diag(const hm_config_diag *d, FILE *f, const char *indent)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(f, "%s%s %s\n", indent, d->items[i].severity == HM_DIAG_ERROR ? "✗" : "⚠",
                d->items[i].msg);
}

/* Load for a command; on failure print why and return NULL. */
static hm_config *load(hm_config_diag *diag)
{
    int err = 0;
    hm_config *c = hm_config_load(NULL, HM_LOAD_SETENV, diag, &err);
    if (!c) {
        print_diag(diag, stderr, "");
        cli_err("cannot load the configuration (%s)", rt_strerror(err));
    }
    return c;
}

/* ---- show ------------------------------------------------------------------------------ */

static bool is_upper_key(const char *k);

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int k = *p < 0x80             ? 0
                : (*p & 0xE0) == 0xC0 ? 1
                : (*p & 0xF0) == 0xE0 ? 2
                : (*p & 0xF8) == 0xF0 ? 3
                                      : -1;
        if (k < 0 || (k == 1 && *p < 0xC2))
            return false;
        for (int j = 1; j <= k; j++)
            if ((p[j] & 0xC0) != 0x80)
                return false;
        p += k + 1;
    }
    return true;
}

/* Copy s cut to about `width` characters (on a UTF-8 boundary, first line only). */
static void clip(const char *s, char *out, size_t n, size_t width)
{
    size_t o = 0, chars = 0;
    for (const char *p = s; *p && o + 5 < n; p++) {
        if (*p == '\n' || *p == '\r' || ((*p & 0xC0) != 0x80 && chars++ >= width)) {
            snprintf(out + o, n - o, "…");
            return;
        }
        out[o++] = *p;
    }
    out[o] = 0;
}

/* A value as one display line; secrets masked. */
static void value_text(const cJSON *v, bool secret, char *out, size_t n)
{
    char tmp[512];
    if (!v || cJSON_IsNull(v)) {
        snprintf(out, n, "(not set)");
    } else if (cJSON_IsString(v)) {
        if (secret && *v->valuestring)
            rt_log_redact(v->valuestring, out, n);
        else if (!*v->valuestring)
            snprintf(out, n, "\"\"");
        else
            clip(v->valuestring, out, n, SHOW_WIDTH);
    } else if (cJSON_IsBool(v)) {
        snprintf(out, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsNumber(v)) {
        if (v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 1e15)
            snprintf(out, n, "%lld", (long long)v->valuedouble);
        else
            hm_fmt_double(v->valuedouble, out, n);
    } else if (cJSON_IsArray(v)) {
        rt_buf b;
        rt_buf_init(&b, 4096);
        rt_buf_append_str(&b, "[");
        for (const cJSON *it = v->child; it; it = it->next)
            rt_buf_printf(&b, "%s%s", it == v->child ? "" : ", ",
                          cJSON_IsString(it) ? it->valuestring : "…");
        rt_buf_append_str(&b, "]");
        clip(rt_buf_cstr(&b), tmp, sizeof(tmp), SHOW_WIDTH);
        rt_buf_fini(&b);
        snprintf(out, n, "%s", secret ? "[***]" : tmp);
    } else {
        snprintf(out, n, "{%d entries}", cJSON_GetArraySize(v));
    }
}

static void show_source(const hm_config *c, const char *path, const hm_key *k, hm_source src,
                        char *out, size_t n)
{
    switch (src) {
    case HM_SRC_FILE: snprintf(out, n, "config.yaml:%d", hm_config_line(c, path)); break;
    case HM_SRC_ENV:
    case HM_SRC_DOTENV: snprintf(out, n, "%s %s", hm_source_name(src), k->env); break;
    default: snprintf(out, n, "%s", hm_source_name(src)); break;
    }
}

/* One schema key: effective value (env-aware), masked if secret, and where it came from. */
static void show_key(const hm_config *c, const hm_key *k, bool all)
{
    if (k->type == HM_T_MAP || k->type == HM_T_MODEL || strchr(k->path, '*') ||
        strncmp(k->path, "agent.personalities.", 20) == 0)
        return;
    bool set = hm_config_is_set(c, k->path);
    if ((k->flags & HM_K_COMPAT) && !set && !all)
        return;
    hm_source src = set ? HM_SRC_FILE : HM_SRC_DEFAULT;
    const cJSON *node = hm_config_node(c, k->path);
    cJSON *envnode = NULL;
    const char *last = strrchr(k->path, '.');
    bool secret = (k->flags & HM_K_SECRET) || hm_is_secret_name(last ? last + 1 : k->path);
    if (k->env && k->type != HM_T_FREE) {
        hm_source es;
        const char *ev = hm_config_getenv(c, k->env, &es);
        if (ev && !((k->flags & HM_K_ENV_FALLBACK) && set)) {
            envnode = cJSON_CreateString(ev);
            node = envnode;
            src = es;
        }
    }
    if (!node && !set && !all)
        return;
    char val[512], from[128];
    value_text(node, secret, val, sizeof(val));
    show_source(c, k->path, k, src, from, sizeof(from));
    printf("  %-36s %-40s %s\n", k->path, val, from);
    cJSON_Delete(envnode);
}

static void show_env(const hm_config *c)
{
    const char *group = NULL;
    for (size_t i = 0; i < hm_env_index_len; i++) {
        const hm_envkey *e = &hm_env_index[i];
        hm_source src;
        const char *v = hm_config_getenv(c, e->name, &src);
        if (!v || (e->flags & HM_E_MARKER))
            continue;
        if (!group || strcmp(group, e->group) != 0) {
            printf("  [%s]\n", e->group);
            group = e->group;
        }
        char val[256];
        if ((e->flags & HM_E_SECRET) || hm_is_secret_name(e->name))
            rt_log_redact(v, val, sizeof(val));
        else
            clip(v, val, sizeof(val), SHOW_WIDTH);
        printf("  %-36s %-40s %s\n", e->name, val, hm_source_name(src));
    }
    /* env-style keys written at the top of config.yaml (/sethome's MATRIX_HOME_CHANNEL) */
    for (const cJSON *it = hm_config_user(c)->child; it; it = it->next) {
        if (!is_upper_key(it->string) || cJSON_IsObject(it) || cJSON_IsArray(it))
            continue;
        char val[256];
        value_text(it, hm_is_secret_name(it->string), val, sizeof(val));
        printf("  %-36s %-40s config.yaml:%d\n", it->string, val, hm_config_line(c, it->string));
    }
    /* anything else .env sets */
    bool header = false;
    const char *name;
    for (size_t i = 0; (name = hm_config_dotenv_name(c, i)); i++) {
        bool seen = hm_env_index_find(name) != NULL;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(hm_config_dotenv_name(c, j), name) == 0;
        if (seen)
            continue;
        if (!header)
            printf("  [Other variables in .env]\n");
        header = true;
        hm_source src;
        const char *v = hm_config_getenv(c, name, &src);
        char val[256];
        if (hm_is_secret_name(name))
            rt_log_redact(v ? v : "", val, sizeof(val));
        else
            clip(v ? v : "", val, sizeof(val), SHOW_WIDTH);
        printf("  %-36s %-40s %s\n", name, val, hm_source_name(src));
    }
}

static void show_messaging(const hm_config *c)
{
    const char *mx = hm_config_getenv(c, "MATRIX_ACCESS_TOKEN", NULL);
    const char *mxp = hm_config_getenv(c, "MATRIX_PASSWORD", NULL);
    const char *mm = hm_config_getenv(c, "MATTERMOST_TOKEN", NULL);
    const char *api = hm_config_getenv(c, "API_SERVER_ENABLED", NULL);
    const char *apik = hm_config_getenv(c, "API_SERVER_KEY", NULL);
    bool api_on = false;
    if (api)
        (void)rt_parse_bool(api, &api_on);
    printf("  %-14s %s\n", "Matrix:",
           mx || mxp ? (mx ? "configured (access token)" : "configured (password)")
                     : "not configured");
    printf("  %-14s %s\n", "Mattermost:", mm ? "configured" : "not configured");
    printf("  %-14s %s\n", "API server:", api_on || (apik && *apik) ? "enabled" : "disabled");
    const char *proxy = hm_config_env_str(c, "gateway.proxy_url", NULL);
    if (proxy && *proxy)
        printf("  %-14s %s\n", "Proxy mode:", proxy);
}

static int cmd_show(int argc, char **argv)
{
    bool all = argc > 1 && (strcmp(argv[1], "--all") == 0 || strcmp(argv[1], "-a") == 0);
    hm_config_diag diag;
    hm_config_diag_init(&diag);
    hm_config *c = load(&diag);
    if (!c) {
        hm_config_diag_fini(&diag);
        return 1;
    }
    hm_source src;
    printf("\n⚕ Hermes Configuration\n\n◆ Paths\n");
    printf("  %-14s %s\n  %-14s %s%s\n  %-14s %s\n", "Home:", hm_config_home_dir(c),
           "Config:", hm_config_path(c),
           hm_config_has_file(c) ? "" : " (not created yet: all defaults)",
           "Secrets:", hm_config_env_path(c));
    printf("\n◆ Model\n");
    const char *model = hm_config_model(c, HM_CTX_CLI, NULL, &src);
    printf("  %-14s %s (%s)\n", "Model:", model, hm_source_name(src));
    const char *gmodel = hm_config_model(c, HM_CTX_GATEWAY, NULL, &src);
    if (strcmp(gmodel, model) != 0)
        printf("  %-14s %s (%s)\n", "Gateway model:", gmodel, hm_source_name(src));
    int64_t turns = hm_config_max_turns(c, HM_CTX_CLI, 0, &src);
    printf("  %-14s %lld (%s)\n", "Max turns:", (long long)turns, hm_source_name(src));
    printf("\n◆ Messaging Platforms\n");
    show_messaging(c);
    printf("\n◆ Environment (API keys and secrets masked)\n");
    show_env(c);
    printf("\n◆ Settings%s (value, then where it comes from)\n", all ? "" : " in use");
    for (size_t i = 0; i < hm_schema_len; i++)
        show_key(c, &hm_schema[i], all);
    if (diag.n) {
        printf("\n◆ Problems in %s\n", hm_config_path(c));
        print_diag(&diag, stdout, "  ");
    }
    printf("\n  hermes config edit          # Edit config file\n"
           "  hermes config set KEY VALUE # Set a value (API keys go to .env)\n"
           "  hermes config check         # Check config.yaml and .env\n"
           "  hermes config --all         # Also show options kept for newer Hermes versions\n\n");
    hm_config_unref(c);
    hm_config_diag_fini(&diag);
    return 0;
}

/* ---- set ------------------------------------------------------------------------------- */

static bool is_upper_key(const char *k)
{
    bool upper = false;
    for (const char *p = k; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            upper = true;
        else if (!(*p == '_' || (*p >= '0' && *p <= '9')))
            return false;
    }
    return upper;
}

/* Does KEY go to .env? *name gets the variable name (upper-cased, as the original did). */
static bool env_route(const char *key, char *name, size_t n)
{
    if (strchr(key, '.') || !hm_env_valid_key(key))
        return false;
    snprintf(name, n, "%s", key);
    for (char *p = name; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 32);
    if (is_upper_key(key))
        return true;
    if (hm_schema_find(key))
        return false; /* a lower-case config.yaml key such as "model" or "timezone" */
    for (size_t i = 0; i < RT_ARRAY_LEN(orig_env_keys); i++)
        if (strcmp(orig_env_keys[i], name) == 0)
            return true;
    return strncmp(name, "TERMINAL_SSH", 12) == 0 || hm_env_index_find(name) != NULL;
}

static int set_env(const char *name, const char *value, bool force, const char *why)
{
    char sug[128];
    int chk = hm_env_name_check(name, sug, sizeof(sug));
    if (chk == -EPERM) {
        cli_err("refusing to write %s to .env: it changes how programs run or is set by Hermes "
                "itself (edit the file by hand if you really mean it)",
                name);
        return 1;
    }
    if (chk == -ENOENT && !force) {
        if (*sug)
            cli_err("unknown setting '%s' (did you mean '%s'?); use --force to write it to .env "
                    "anyway",
                    name, sug);
        else
            cli_err("unknown setting '%s' (not a variable Hermes reads); use --force to write it "
                    "to .env anyway",
                    name);
        return 1;
    }
    char *home = hm_config_home();
    char *path = hm_config_file(home, ".env");
    int rc = hm_config_ensure_home(home);
    if (!rc)
        rc = hm_env_set_file(path, name, value);
    if (rc)
        cli_err("cannot write %s: %s", path, rt_strerror(rc));
    else
        printf("✓ Set %s in %s%s\n", name, path, why ? why : "");
    if (!rc &&
        (hm_is_secret_name(name) ||
         (hm_env_index_find(name) && (hm_env_index_find(name)->flags & HM_E_SECRET))) &&
        hm_is_placeholder_secret(value))
        printf("  note: that looks like a placeholder, not a real secret\n");
    rt_free(path);
    rt_free(home);
    return rc ? 1 : 0;
}

/* "a,b" → "[a, b]" with each item quoted as needed. */
static char *list_yaml(const char *v)
{
    rt_buf b;
    rt_buf_init(&b, 1u << 20);
    rt_buf_append_str(&b, "[");
    const char *p = v;
    for (int i = 0;; i++) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        while (l && *p == ' ')
            p++, l--;
        while (l && p[l - 1] == ' ')
            l--;
        char *item = rt_xstrndup(p, l);
        char *q = hm_yaml_quote(item);
        rt_buf_printf(&b, "%s%s", i ? ", " : "", q);
        rt_free(q);
        rt_free(item);
        if (!comma)
            break;
        p = comma + 1;
    }
    rt_buf_append_str(&b, "]");
    return rt_buf_steal(&b, NULL);
}

/* The original's coercion: true/yes/on, false/no/off, digits → int, digits.digits → float. */
static char *coerce_plain(const char *v)
{
    bool b;
    if (rt_parse_bool(v, &b) == 0 && *v && strcmp(v, "0") && strcmp(v, "1") && strcasecmp(v, "y") &&
        strcasecmp(v, "n"))
        return rt_xstrdup(b ? "true" : "false");
    size_t n = strlen(v), digits = 0, dots = 0;
    for (const char *p = v; *p; p++)
        digits += *p >= '0' && *p <= '9', dots += *p == '.';
    if (n && digits == n)
        return rt_xstrdup(v);
    if (n > 1 && dots == 1 && digits == n - 1 && v[0] != '.' && v[n - 1] != '.')
        return rt_xstrdup(v);
    return hm_yaml_quote(v);
}

/* The YAML text for value as the key's type; NULL (message printed) if it does not fit. */
static char *value_yaml(const char *key, const hm_key *k, const char *v)
{
    int64_t iv;
    bool b;
    char *end;
    switch (k ? k->type : HM_T_ANY) {
    case HM_T_STR:
    case HM_T_MODEL: return hm_yaml_quote(v);
    case HM_T_INT:
        if (rt_parse_i64(v, INT64_MIN, INT64_MAX, &iv) == 0)
            return rt_xasprintf("%lld", (long long)iv);
        break;
    case HM_T_FLOAT: {
        double d = strtod(v, &end);
        if (*v && !*end && isfinite(d)) {
            char buf[64];
            if (d == floor(d) && fabs(d) < 1e15)
                snprintf(buf, sizeof(buf), "%lld", (long long)d);
            else
                hm_fmt_double(d, buf, sizeof(buf));
            return rt_xstrdup(buf);
        }
        break;
    }
    case HM_T_BOOL:
        if (rt_parse_bool(v, &b) == 0 && *v)
            return rt_xstrdup(b ? "true" : "false");
        break;
    case HM_T_LIST:
    case HM_T_STR_OR_LIST:
        if (v[0] == '[')
            return rt_xstrdup(v);
        return k->type == HM_T_LIST ? list_yaml(v) : hm_yaml_quote(v);
    case HM_T_MAP:
    case HM_T_FREE:
        cli_err("'%s' is a section; set one of its keys instead (e.g. '%s.<key>')", key, key);
        return NULL;
    case HM_T_ANY: return coerce_plain(v);
    }
    cli_err("'%s' should be %s, not '%s'", key, hm_type_name(k->type), v);
    return NULL;
}

/* Is `model` in config.yaml a map? Then `set model X` means model.default (keeps provider…). */
static bool model_is_map(const char *path)
{
    char *text;
    size_t len;
    if (hm_read_file(path, HM_CONFIG_MAX_BYTES, &text, &len))
        return false;
    hm_yaml_err err;
    hm_yaml_doc *d = hm_yaml_parse(text, len, &err);
    bool map = d && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(hm_yaml_root(d), "model"));
    hm_yaml_free(d);
    rt_free(text);
    return map;
}

static int write_yaml(const char *path, const char *const *parts, int np, const char *yv)
{
    char *text = NULL, *out = NULL;
    size_t len = 0, olen = 0;
    int rc = hm_read_file(path, HM_CONFIG_MAX_BYTES, &text, &len);
    if (rc == -ENOENT)
        text = rt_xstrdup(""), rc = 0;
    if (rc) {
        cli_err("cannot read %s: %s", path, rt_strerror(rc));
        return 1;
    }
    hm_yaml_err err;
    rc = hm_yaml_set(text, len, parts, (size_t)np, yv, &out, &olen, &err);
    if (rc == -EBADMSG)
        cli_err("%s:%d:%d: %s; fix the file first (hermes config edit)", path, err.line, err.col,
                err.msg);
    else if (rc && err.line)
        cli_err("cannot change %s (line %d): %s", path, err.line, err.msg);
    else if (rc)
        cli_err("cannot change %s: %s", path, err.msg);
    if (!rc) {
        struct stat st;
        mode_t mode = stat(path, &st) == 0 ? (st.st_mode & 07777) : 0600;
        rc = hm_write_atomic(path, out, olen, mode);
        if (rc)
            cli_err("cannot write %s: %s", path, rt_strerror(rc));
    }
    rt_free(text);
    rt_free(out);
    return rc ? 1 : 0;
}

static int set_yaml(const char *key, const char *value, bool force)
{
    char *home = hm_config_home();
    char *path = hm_config_file(home, "config.yaml");
    char keybuf[512];
    const char *parts[HM_YAML_MAX_PATH];
    int rc = 1;
    if (strcmp(key, "model") == 0 && model_is_map(path))
        key = "model.default";
    snprintf(keybuf, sizeof(keybuf), "%s", key);
    int np = strlen(key) < sizeof(keybuf) ? hm_yaml_split_path(keybuf, parts, HM_YAML_MAX_PATH)
                                          : -EINVAL;
    const hm_key *k = hm_schema_find(key);
    char *yv = NULL;
    if (np < 0) {
        cli_err("invalid key '%s'", key);
        goto out;
    }
    if (!k && !hm_schema_in_free_map(key) && !force) {
        char sug[256];
        if (hm_schema_suggest(key, sug, sizeof(sug)))
            cli_err("unknown key '%s' (did you mean '%s'?); use --force to set it anyway", key,
                    sug);
        else
            cli_err("unknown key '%s'; use --force to set it anyway", key);
        goto out;
    }
    if (k && (k->flags & HM_K_SECRET) && k->env) { /* a secret: into .env, not config.yaml */
        rc = set_env(k->env, value, true, " (secrets are kept in .env, not config.yaml)");
        goto out;
    }
    yv = value_yaml(key, k, value);
    if (!yv)
        goto out;
    int erc = hm_config_ensure_home(home);
    if (erc) {
        cli_err("cannot create %s: %s", home, rt_strerror(erc));
        goto out;
    }
    if (write_yaml(path, parts, np, yv))
        goto out;
    const char *last = strrchr(key, '.');
    bool secret = (k && (k->flags & HM_K_SECRET)) || hm_is_secret_name(last ? last + 1 : key);
    char shown[128];
    if (secret)
        rt_log_redact(value, shown, sizeof(shown));
    else
        clip(value, shown, sizeof(shown), SHOW_WIDTH);
    printf("✓ Set %s = %s in %s\n", key, shown, path);
    if (secret)
        printf("  note: '%s' is a secret and config.yaml is not private; prefer an environment "
               "variable in %s/.env\n",
               key, home);
    rc = 0;
    for (size_t i = 0; i < RT_ARRAY_LEN(mirror); i++) { /* tools read these variables */
        if (strcmp(key, mirror[i][0]) != 0)
            continue;
        char *env = hm_config_file(home, ".env");
        int mrc = hm_env_set_file(env, mirror[i][1], value);
        if (mrc) {
            cli_err("cannot write %s: %s", env, rt_strerror(mrc));
            rc = 1;
        }
        rt_free(env);
    }
out:
    rt_free(yv);
    rt_free(path);
    rt_free(home);
    return rc;
}

static int cmd_set(int argc, char **argv)
{
    const char *pos[2];
    int npos = 0;
    bool force = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0)
            force = true;
        else if (npos < 2)
            pos[npos++] = argv[i];
        else
            npos = 3;
    }
    if (npos != 2) {
        fprintf(stderr, "Usage: hermes config set KEY VALUE [--force]\n\n"
                        "Examples:\n"
                        "  hermes config set model anthropic/claude-sonnet-4\n"
                        "  hermes config set terminal.backend docker\n"
                        "  hermes config set OPENROUTER_API_KEY sk-or-...\n");
        return 2;
    }
    if (!utf8_valid(pos[0]) || !utf8_valid(pos[1])) {
        cli_err("the key and value must be UTF-8 text");
        return 1;
    }
    char name[256];
    if (strlen(pos[0]) < sizeof(name) && env_route(pos[0], name, sizeof(name)))
        return set_env(name, pos[1], force, NULL);
    return set_yaml(pos[0], pos[1], force);
}

/* ---- check, paths, edit, migrate ------------------------------------------------------- */

static int cmd_check(void)
{
    hm_config_diag diag;
    hm_config_diag_init(&diag);
    hm_config *c = load(&diag);
    if (!c) {
        hm_config_diag_fini(&diag);
        return 1;
    }
    hm_config_check(c, &diag);
    printf("\n📋 Configuration Status\n\n");
    printf("  Config: %s%s\n  Secrets: %s\n\n", hm_config_path(c),
           hm_config_has_file(c) ? "" : " (not created yet: all defaults)", hm_config_env_path(c));
    print_diag(&diag, stdout, "  ");
    if (diag.errors)
        printf("\n  %d error(s), %d warning(s)\n\n", diag.errors, diag.warnings);
    else
        printf("  ✓ No errors%s\n\n", diag.warnings ? " (see the warnings above)" : "");
    int rc = diag.errors ? 1 : 0;
    hm_config_unref(c);
    hm_config_diag_fini(&diag);
    return rc;
}

static int cmd_path(bool env)
{
    char *home = hm_config_home();
    char *p = hm_config_file(home, env ? ".env" : "config.yaml");
    printf("%s\n", p);
    rt_free(p);
    rt_free(home);
    return 0;
}

static const char *find_editor(char *buf, size_t n)
{
    const char *e = getenv("EDITOR");
    if (!e || !*e)
        e = getenv("VISUAL");
    if (e && *e)
        return e;
    static const char *const cands[] = {"nano", "vim", "vi"};
    const char *path = getenv("PATH");
    for (size_t i = 0; path && i < RT_ARRAY_LEN(cands); i++) {
        for (const char *p = path; *p;) {
            const char *colon = strchr(p, ':');
            size_t l = colon ? (size_t)(colon - p) : strlen(p);
            snprintf(buf, n, "%.*s/%s", (int)l, p, cands[i]);
            if (access(buf, X_OK) == 0)
                return buf;
            p += l + (colon != NULL);
        }
    }
    return NULL;
}

static int cmd_edit(void)
{
    char *home = hm_config_home();
    char *path = hm_config_file(home, "config.yaml");
    int rc = hm_config_ensure_home(home);
    if (!rc && access(path, F_OK) != 0) {
        static const char tmpl[] = "# Hermes configuration. Every key and its default: "
                                   "docs/configuration.md, or `hermes config --all`.\n";
        rc = hm_write_atomic(path, tmpl, sizeof(tmpl) - 1, 0600);
        if (!rc)
            printf("Created %s\n", path);
    }
    char buf[1024];
    const char *editor = rc ? NULL : find_editor(buf, sizeof(buf));
    if (rc) {
        cli_err("cannot create %s: %s", path, rt_strerror(rc));
    } else if (!editor) {
        printf("No editor found. Config file is at:\n  %s\n", path);
    } else {
        printf("Opening %s in %s...\n", path, editor);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            execlp(editor, editor, path, (char *)NULL);
            _exit(127);
        }
        int st = 0;
        while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        rc = pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) ? 1 : 0;
        if (!rc)
            rc = cmd_check();
    }
    rt_free(path);
    rt_free(home);
    return rc ? 1 : 0;
}

/* The original's only migration (config version 3 → 4): tool progress from .env to
 * config.yaml. Defaults are built in, so nothing else needs adding to the file. */
static int cmd_migrate(void)
{
    hm_config_diag diag;
    hm_config_diag_init(&diag);
    hm_config *c = load(&diag);
    hm_config_diag_fini(&diag);
    if (!c)
        return 1;
    printf("\n🔄 Checking configuration for updates...\n\n");
    int rc = 0;
    int64_t ver = hm_config_int(c, "_config_version");
    if (ver < 4 && !hm_config_is_set(c, "display.tool_progress")) {
        const char *old = hm_config_getenv(c, "HERMES_TOOL_PROGRESS", NULL);
        const char *mode = hm_config_getenv(c, "HERMES_TOOL_PROGRESS_MODE", NULL);
        bool on = true;
        const char *tp = "all";
        if (old && rt_parse_bool(old, &on) == 0 && !on)
            tp = "off";
        else if (mode && (strcasecmp(mode, "new") == 0 || strcasecmp(mode, "all") == 0))
            tp = strcasecmp(mode, "new") == 0 ? "new" : "all";
        const char *p1[] = {"display", "tool_progress"}, *p2[] = {"_config_version"};
        rc = write_yaml(hm_config_path(c), p1, 2, tp);
        if (!rc)
            rc = write_yaml(hm_config_path(c), p2, 1, "4");
        if (!rc)
            printf("  ✓ Migrated tool progress to config.yaml: %s\n  Config version: %lld → 4\n",
                   tp, (long long)ver);
    } else if (ver < 4) {
        const char *p2[] = {"_config_version"};
        rc = write_yaml(hm_config_path(c), p2, 1, "4");
        if (!rc)
            printf("  Config version: %lld → 4\n", (long long)ver);
    } else {
        printf("✓ Configuration is up to date!\n");
    }
    printf("\n");
    hm_config_unref(c);
    return rc;
}

/* Choices "a|b|" as "`a`, `b` or empty" for Markdown (a bare | would end a table cell). */
static void print_choices(const char *choices)
{
    printf(" (");
    bool empty = false;
    int n = 0;
    for (const char *c = choices;; c++) {
        const char *bar = strchr(c, '|');
        size_t l = bar ? (size_t)(bar - c) : strlen(c);
        if (l)
            printf("%s`%.*s`", n++ ? ", " : "", (int)l, c);
        else
            empty = true;
        if (!bar)
            break;
        c = bar;
    }
    printf("%s)", empty ? " or empty" : "");
}

static void print_key_table(bool compat)
{
    printf("| key | type | default | variable | description |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < hm_schema_len; i++) {
        const hm_key *k = &hm_schema[i];
        if (strncmp(k->path, "agent.personalities.", 20) == 0 ||
            !(k->flags & HM_K_COMPAT) != !compat)
            continue;
        char def[96];
        clip(k->def ? k->def : "", def, sizeof(def), 40);
        printf("| `%s` | %s | ", k->path, hm_type_name(k->type));
        if (k->def && !*k->def)
            printf("`\"\"`");
        else if (k->def)
            printf("`%s`", def);
        else
            printf("—");
        printf(" | %s%s%s | %s", k->env ? "`" : "", k->env ? k->env : "", k->env ? "`" : "",
               k->doc);
        if (k->choices)
            print_choices(k->choices);
        printf(" |\n");
    }
}

/* `hermes config schema`: the key and variable reference as Markdown (docs/configuration.md). */
static int cmd_schema(void)
{
    print_key_table(false);
    printf("\nAccepted for compatibility with newer Hermes versions (not used yet):\n\n");
    print_key_table(true);
    printf("\n| variable | group | secret | description |\n|---|---|---|---|\n");
    for (size_t i = 0; i < hm_env_index_len; i++)
        printf("| `%s` | %s | %s | %s |\n", hm_env_index[i].name, hm_env_index[i].group,
               (hm_env_index[i].flags & HM_E_SECRET) ? "yes" : "", hm_env_index[i].doc);
    return 0;
}

int cli_config(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "show";
    if (strcmp(sub, "show") == 0)
        return cmd_show(argc - 1, argv + 1);
    if (strcmp(sub, "--all") == 0 || strcmp(sub, "-a") == 0)
        return cmd_show(argc, argv);
    if (strcmp(sub, "set") == 0)
        return cmd_set(argc - 1, argv + 1);
    if (strcmp(sub, "check") == 0)
        return cmd_check();
    if (strcmp(sub, "path") == 0)
        return cmd_path(false);
    if (strcmp(sub, "env-path") == 0)
        return cmd_path(true);
    if (strcmp(sub, "edit") == 0)
        return cmd_edit();
    if (strcmp(sub, "migrate") == 0)
        return cmd_migrate();
    if (strcmp(sub, "schema") == 0)
        return cmd_schema();
    if (strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        config_usage(stdout);
        return 0;
    }
    printf("Unknown config command: %s\n\n", sub);
    config_usage(stdout);
    return 2;
}
