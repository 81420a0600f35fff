/*
 * cli_doctor — `hermes status` (what is configured) and `hermes doctor` (is it healthy).
 *
 *   status   home, config files, the model provider (key shown masked), the platforms that
 *            are enabled, the gateway (running?), state.db's size. Always exits 0.
 *   doctor   checks, one line each (✓ ok, ⚠ warning, ✗ problem) with a fix where there is
 *            one: home and its layout and modes, config.yaml (every diagnostic with file and
 *            line), .env's mode, a provider configured and reachable (GET <base>/models with
 *            the key, 10 s), state.db (quick_check, WAL, schema, FTS5, mode), the tools the
 *            agent shells out to (rg, git, ssh, docker). Exits 1 when a check failed.
 *
 * Both run on the calling thread (blocking is fine here) and never print a secret.
 */
#include "cli.h"

#include "hm_config.h"
#include "hm_env.h"
#include "hm_host.h"
#include "llm_provider.h"
#include "matrix.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"
#include "st_schema.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OK   "\xe2\x9c\x93" /* ✓ */
#define WARN "\xe2\x9a\xa0" /* ⚠ */
#define BAD  "\xe2\x9c\x97" /* ✗ */

static char *mask(const char *secret)
{
    size_t n = secret ? strlen(secret) : 0;
    if (!n)
        return rt_xstrdup("(not set)");
    if (n < 12)
        return rt_xstrdup("***");
    return rt_xasprintf("%.4s...%s", secret, secret + n - 4);
}

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char *copy = rt_xstrdup(path ? path : "/usr/bin:/bin");
    bool found = false;
    char *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", d, prog);
        found = access(full, X_OK) == 0;
    }
    rt_free(copy);
    return found;
}

static const char *platform_var(const hm_config *cfg, const char *name)
{
    const char *v = hm_config_getenv(cfg, name, NULL);
    return v && *v ? v : NULL;
}

/* ================================================================ status */

static int cmd_status(void)
{
    char *home = hm_config_home();
    int err = 0;
    hm_config *cfg = hm_config_load(home, 0, NULL, &err);
    printf("Hermes home:   %s\n", home);
    char *yaml = hm_config_file(home, "config.yaml"), *env = hm_config_file(home, ".env");
    printf("config.yaml:   %s\n", access(yaml, F_OK) == 0 ? yaml : "(none: defaults)");
    printf(".env:          %s\n", access(env, F_OK) == 0 ? env : "(none)");
    if (!cfg) {
        printf("\nconfig.yaml does not load (%s): run `hermes doctor`\n", rt_strerror(err));
        rt_free(yaml);
        rt_free(env);
        rt_free(home);
        return 0;
    }
    llm_provider_opts po;
    char *pname = NULL;
    bool configured = false;
    char msg[256];
    if (hm_resolve_provider(cfg, NULL, &po, &pname, &configured, msg, sizeof(msg)) == 0) {
        char *k = mask(po.api_key);
        printf("\nProvider:      %s%s\n", pname ? pname : "?",
               configured ? "" : " (not configured)");
        printf("Endpoint:      %s\n", po.base_url ? po.base_url : "(none)");
        printf("API key:       %s\n", k);
        printf("Model:         %s\n", hm_config_model(cfg, HM_CTX_CLI, NULL, NULL));
        rt_free(k);
        hm_provider_opts_fini(&po);
    } else {
        printf("\nProvider:      %s\n", msg);
    }
    rt_free(pname);

    printf("\nPlatforms:\n");
    const char *api = platform_var(cfg, "API_SERVER_ENABLED");
    printf("  api_server   %s\n",
           (api && strcmp(api, "false") != 0) || platform_var(cfg, "API_SERVER_KEY") ? "enabled"
                                                                                     : "off");
    printf("  matrix       %s\n",
           platform_var(cfg, "MATRIX_ACCESS_TOKEN") || platform_var(cfg, "MATRIX_PASSWORD")
               ? "enabled"
               : "off");
    printf("  mattermost   %s\n", platform_var(cfg, "MATTERMOST_TOKEN") ? "enabled" : "off");

    char *pidf = hm_config_file(home, "gateway.pid");
    char *text = NULL;
    size_t len = 0;
    long pid = 0;
    if (hm_read_file(pidf, 4096, &text, &len) == 0) {
        const char *p = strstr(text, "\"pid\"");
        if (p)
            pid = strtol(p + 6, NULL, 10);
        else
            pid = strtol(text, NULL, 10);
        if (pid > 0 && kill((pid_t)pid, 0) != 0)
            pid = 0;
        rt_free(text);
    }
    printf("\nGateway:       %s", pid > 0 ? "running" : "not running");
    if (pid > 0)
        printf(" (PID %ld; `hermes gateway status` for more)", pid);
    printf("\n");
    char *db = hm_config_file(home, "state.db");
    struct stat st;
    if (stat(db, &st) == 0)
        printf("state.db:      %s (%lld KB)\n", db, (long long)st.st_size / 1024);
    else
        printf("state.db:      (not created yet)\n");
    rt_free(db);
    rt_free(pidf);
    rt_free(yaml);
    rt_free(env);
    hm_config_unref(cfg);
    rt_free(home);
    return 0;
}

/* ================================================================ doctor */

typedef struct tally {
    int bad, warn;
} tally;

static void line(tally *t, const char *mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void line(tally *t, const char *mark, const char *fmt, ...)
{
    if (strcmp(mark, BAD) == 0)
        t->bad++;
    else if (strcmp(mark, WARN) == 0)
        t->warn++;
    va_list ap;
    va_start(ap, fmt);
    printf("  %s ", mark);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

/* GET <base>/models with the key: HTTP status, or -1 with curl's error in err. */
static long probe(const llm_provider_opts *po, char *err, size_t errlen)
{
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "libcurl could not start");
        return -1;
    }
    char url[2048];
    snprintf(url, sizeof(url), "%s/models", po->base_url);
    struct curl_slist *h = NULL;
    char auth[1024];
    if (po->api_key && *po->api_key) {
        if (po->api == LLM_API_ANTHROPIC) {
            snprintf(auth, sizeof(auth), "x-api-key: %s", po->api_key);
            h = curl_slist_append(h, auth);
            h = curl_slist_append(h, "anthropic-version: 2023-06-01");
        } else {
            snprintf(auth, sizeof(auth), "Authorization: Bearer %s", po->api_key);
            h = curl_slist_append(h, auth);
        }
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode rc = curl_easy_perform(c);
    long status = -1;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(err, errlen, "%s", curl_easy_strerror(rc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    memset(auth, 0, sizeof(auth));
    return status;
}

static void check_mode(tally *t, const char *path, unsigned want, const char *what)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        line(t, OK, "%s: not present", what);
        return;
    }
    unsigned mode = st.st_mode & 0777;
    if (mode & ~want)
        line(t, WARN, "%s has mode %03o; it holds private data: chmod %03o %s", what, mode, want,
             path);
    else
        line(t, OK, "%s (mode %03o)", what, mode);
}

static int cmd_doctor(void)
{
    tally t = {0};
    char *home = hm_config_home();
    printf("Hermes doctor\n\nHome\n");
    struct stat st;
    if (stat(home, &st) != 0) {
        line(&t, WARN, "%s does not exist yet (created on first use, or: hermes config)", home);
    } else {
        check_mode(&t, home, 0700, home);
        const char *subdirs[] = {"sessions", "memories", "skills", "cron", "logs"};
        for (size_t i = 0; i < RT_ARRAY_LEN(subdirs); i++) {
            char *p = hm_config_file(home, subdirs[i]);
            if (access(p, F_OK) != 0)
                line(&t, WARN, "%s is missing (the gateway creates it)", p);
            rt_free(p);
        }
    }

    printf("\nConfiguration\n");
    hm_config_diag diag;
    hm_config_diag_init(&diag);
    int err = 0;
    hm_config *cfg = hm_config_load(home, 0, &diag, &err);
    for (size_t i = 0; i < diag.n; i++)
        line(&t, diag.items[i].severity == HM_DIAG_ERROR ? BAD : WARN, "%s", diag.items[i].msg);
    if (!cfg)
        line(&t, BAD, "config.yaml does not load: %s", rt_strerror(err));
    else if (!diag.n)
        line(&t, OK, "config.yaml and .env read without problems");
    hm_config_diag_fini(&diag);
    char *env = hm_config_file(home, ".env");
    check_mode(&t, env, 0600, ".env");
    rt_free(env);

    printf("\nModel provider\n");
    if (cfg) {
        llm_provider_opts po;
        char *pname = NULL;
        bool configured = false;
        char msg[512];
        if (hm_resolve_provider(cfg, NULL, &po, &pname, &configured, msg, sizeof(msg)) != 0) {
            line(&t, BAD, "%s", msg);
        } else if (!configured) {
            line(&t, BAD,
                 "no provider is configured: hermes config set OPENROUTER_API_KEY ... "
                 "(or OPENAI_BASE_URL, or ANTHROPIC_API_KEY)");
            hm_provider_opts_fini(&po);
        } else {
            char perr[256] = "";
            long status = probe(&po, perr, sizeof(perr));
            if (status < 0)
                line(&t, BAD, "%s at %s is not reachable: %s", pname, po.base_url, perr);
            else if (status == 401 || status == 403)
                line(&t, BAD, "%s at %s refuses the key (HTTP %ld): check the API key", pname,
                     po.base_url, status);
            else if (status >= 500)
                line(&t, WARN, "%s at %s answers HTTP %ld (a server problem)", pname, po.base_url,
                     status);
            else
                line(&t, OK, "%s at %s reachable (HTTP %ld)", pname, po.base_url, status);
            hm_provider_opts_fini(&po);
        }
        rt_free(pname);
    }

    printf("\nState store\n");
    char *db = hm_config_file(home, "state.db");
    if (access(db, F_OK) != 0) {
        line(&t, OK, "state.db not created yet (the first conversation creates it)");
    } else {
        st_check c;
        if (st_store_check(db, &c) != 0)
            line(&t, BAD, "state.db: %s", c.problem);
        else
            line(&t, OK, "state.db healthy: %lld sessions, %lld messages, %lld KB, journal %s",
                 (long long)c.sessions, (long long)c.messages, (long long)c.file_bytes / 1024,
                 c.journal_mode);
    }
    rt_free(db);

    printf("\nMatrix end-to-end encryption\n");
    if (cfg) {
        matrix_opts mo;
        char merr[256];
        memset(&mo, 0, sizeof(mo));
        if (matrix_opts_from_config(cfg, home, &mo, merr, sizeof(merr)) == 0 && mo.encryption) {
            char e2ee[600];
            if (matrix_e2ee_status(mo.store_dir, e2ee, sizeof(e2ee)))
                line(&t, OK, "%s", e2ee);
            else
                line(&t, BAD, "%s (docs/matrix.md: Deleting the crypto store)", e2ee);
        } else {
            line(&t, OK, "off (MATRIX_ENCRYPTION is not set)");
        }
        matrix_opts_fini(&mo);
    }

    printf("\nTools\n");
    const struct {
        const char *prog, *why;
        bool needed;
    } progs[] = {{"bash", "the terminal tool runs commands with it", true},
                 {"rg",
                  "search_files is faster with ripgrep (a built-in search is used "
                  "without it)",
                  false},
                 {"git", "skills install from git checkouts", false},
                 {"ssh", "the ssh terminal backend (TERMINAL_ENV=ssh)", false},
                 {"docker", "the docker terminal backend (TERMINAL_ENV=docker)", false}};
    for (size_t i = 0; i < RT_ARRAY_LEN(progs); i++) {
        if (on_path(progs[i].prog))
            line(&t, OK, "%s", progs[i].prog);
        else
            line(&t, progs[i].needed ? BAD : WARN, "%s not found: %s", progs[i].prog, progs[i].why);
    }

    hm_config_unref(cfg);
    rt_free(home);
    printf("\n%s\n", t.bad ? "Some checks failed (" BAD ")." : "All essential checks passed.");
    return t.bad ? 1 : 0;
}

int cli_status(int argc, char **argv)
{
    (void)argc, (void)argv;
    rt_log_set_level(RT_LOG_ERROR);
    return cmd_status();
}

int cli_doctor(int argc, char **argv)
{
    (void)argc, (void)argv;
    rt_log_set_level(RT_LOG_ERROR);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmd_doctor();
    curl_global_cleanup();
    return rc;
}
