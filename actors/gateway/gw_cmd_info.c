/*
 * gw_cmd_info — /provider, /reasoning, /verbose, /fast, /insights, /update, /debug,
 * /restart and /help (with the installed skills as commands) for one chat, and the router's
 * /status reply with the session's title (gateway.md §4; replies as the original's
 * gateway/run.py where it has them).
 *
 * Anything that touches a file runs on a job: a detached one-shot actor (its own thread, so
 * it may block) that does the work, sends its reply to the chat's platform and ends. Config
 * changes edit config.yaml in place (hm_yaml_set: the rest of the file stays byte for byte),
 * one at a time in the process. The gateway's loaded configuration is not reloaded: a saved
 * setting applies to this chat at once where the chat holds it (/verbose) and to everything
 * else after a restart.
 *
 * /restart: one restart actor (registered as GW_RESTART_NAME, so a second /restart finds it)
 * tells the chat how many turns the drain waits for (active_agents of gateway_state.json)
 * and, RESTART_GRACE_MS later (so the notice reaches the platform), calls gw_restart_fn. The
 * default sends the process SIGTERM, so `hermes gateway run` stops exactly as on Ctrl+C:
 * new work is refused, running turns get agent.restart_drain_timeout, the platforms stop and
 * release their identity locks, state is written; an exit handler registered here then
 * either exits with status 75 under systemd (INVOCATION_ID set; the unit `hermes gateway
 * install` writes restarts on it: RestartForceExitStatus=75) or re-executes the same binary
 * with the same arguments (every descriptor but 0-2 closed on exec, so the new image takes
 * the lock and the ports). The notice goes through the outbox, which keeps it in state.db
 * until the platform took it. A gateway not run by `hermes gateway run` (no SIGTERM
 * handler) would just end.
 *
 * /debug writes a redacted report (no secrets: keys are shown as set/unset, log lines that
 * mention keys, tokens, secrets or passwords are masked) to ~/.hermes/logs/debug-<time>.txt
 * and says where; it is POSTed (text/plain) only when debug.paste_url is set (the original
 * always uploads to a paste service).
 *
 * Threads: the gw_cmd_* entry points on the chat's worker; jobs on their own threads.
 */
#include "gw_cmds.h"

#include "hm_config.h"
#include "hm_env.h"
#include "skl_admin.h"
#include "skl_store.h"
#include "hm_yaml.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_http.h"
#include "rt_log.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"
#include "st_read.h"
#include "st_titles.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define INSIGHTS_DEFAULT_DAYS 30
#define INSIGHTS_MAX_DAYS     3650
#define LOG_TAIL_BYTES        (16 * 1024)
#define CMDLINE_MAX           (64 * 1024)

enum { GW_JOB_RUN = RT_MSG_TYPE(RT_MSG_MODULE_GW, 111) }; /* rt_msg: start the job */

/* ============================================================ replies */

static void sayf(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sayf(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    gw_chat_say(cx, c, to, rt_buf_cstr(&b), GW_TEXT_NOTICE);
    rt_buf_fini(&b);
}

/* ============================================================ jobs */

typedef struct job job;
typedef char *(*job_fn)(rt_ctx *cx, job *j); /* the reply (new string), or NULL for none */

struct job {
    job_fn fn;
    gw_shared *sh;
    rt_ref adapter;
    gw_caps caps;
    gw_target to;
    char *platform;
    int kind;    /* of the reply */
    char *key;   /* config: dotted path */
    char *value; /* config: the value (a string, or YAML text when raw) */
    bool raw;
    char *ok;         /* config: the reply when saved */
    char *path;       /* debug: where the report was written */
    bool waiting;     /* the job goes on after fn (an upload in flight) */
    gw_msg_event *ev; /* /<skill>: the command's event (a copy), to send on as a message */
    char *name;       /* /<skill>: the command's name */
};

static void job_reply(rt_ctx *cx, job *j, const char *text)
{
    if (j->kind == GW_TEXT_REPLY && j->sh->outbox && !j->caps.api && j->platform && j->to.chat_id)
        gw_outbox_say(cx, j->sh->outbox, j->platform, &j->caps, &j->to, text, j->kind);
    else
        gw_say(cx, j->adapter, &j->caps, &j->to, text, j->kind);
}

static char *debug_uploaded(job *j, const rt_io_msg_http_done *d);

static void job_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    job *j = state;
    char *text = NULL;
    if (m->type == GW_JOB_RUN && !j->waiting)
        text = j->fn(cx, j);
    else if (m->type == RT_IO_MSG_HTTP_DONE && j->waiting)
        text = debug_uploaded(j, (const rt_io_msg_http_done *)m), j->waiting = false;
    else
        return;
    if (text)
        job_reply(cx, j, text);
    rt_free(text);
    if (j->waiting)
        return;
    rt_busy_leave(rt_ctx_runtime(cx));
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void job_fini(void *state)
{
    job *j = state;
    gw_shared_unref(j->sh);
    gw_target_fini(&j->to);
    rt_free(j->platform);
    rt_free(j->key);
    rt_free(j->value);
    rt_free(j->ok);
    rt_free(j->path);
    rt_free(j->name);
    if (j->ev)
        rt_msg_free(&j->ev->hdr);
    rt_free(j);
}

static const rt_actor_type job_type = {"gw.job", job_behave, job_fini, 0};

static job *job_new(gw_chat *c, const gw_target *to, job_fn fn)
{
    job *j = rt_xcalloc(1, sizeof(*j));
    j->fn = fn;
    j->sh = gw_shared_ref(gw_chat_shared(c));
    j->adapter = gw_chat_adapter(c);
    j->caps = *gw_chat_caps(c);
    gw_target_copy(&j->to, to);
    const char *p = gw_chat_origin(c)->platform;
    j->platform = p ? rt_xstrdup(p) : NULL;
    j->kind = GW_TEXT_NOTICE;
    return j;
}

static void job_start(rt_ctx *cx, job *j)
{
    rt_spawn_opts o = {.flags = RT_SPAWN_DETACHED};
    rt_ref ref = rt_spawn(cx, &job_type, j, &o);
    if (!ref)
        return;                        /* j was freed by job_fini */
    rt_busy_enter(rt_ctx_runtime(cx)); /* tests wait for the job with rt_wait_quiescent */
    rt_send(cx, ref, rt_msg_new(GW_JOB_RUN, sizeof(rt_msg)));
}

/* ---- config.yaml ---- */

static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER; /* one edit at a time */

/* Set key to the string value in config.yaml, keeping the rest of the file. 0 or -errno with
 * a sentence in err. Blocks (a job's thread). */
static int config_write(const char *path, const char *key, const char *value, bool raw, char *err,
                        size_t errlen)
{
    pthread_mutex_lock(&config_lock);
    char *text = NULL, *out = NULL, *yv = NULL;
    size_t len = 0, olen = 0;
    int rc = hm_read_file(path, HM_CONFIG_MAX_BYTES, &text, &len);
    if (rc == -ENOENT) {
        text = rt_xstrdup("");
        len = 0;
        rc = 0;
    }
    if (rc) {
        snprintf(err, errlen, "cannot read %s: %s", path, rt_strerror(rc));
        goto out;
    }
    char keybuf[256];
    const char *parts[HM_YAML_MAX_PATH];
    rt_strlcpy(keybuf, key, sizeof(keybuf));
    int np = hm_yaml_split_path(keybuf, parts, HM_YAML_MAX_PATH);
    if (np <= 0) {
        rc = -EINVAL;
        snprintf(err, errlen, "bad key %s", key);
        goto out;
    }
    yv = raw ? rt_xstrdup(value) : hm_yaml_quote(value);
    hm_yaml_err ye;
    memset(&ye, 0, sizeof(ye));
    rc = hm_yaml_set(text, len, parts, (size_t)np, yv, &out, &olen, &ye);
    if (rc) {
        snprintf(err, errlen, "cannot set %s in config.yaml (%s)", key, rt_strerror(rc));
        goto out;
    }
    struct stat st;
    mode_t mode = stat(path, &st) == 0 ? (st.st_mode & 07777) : 0600;
    rc = hm_write_atomic(path, out, olen, mode);
    if (rc)
        snprintf(err, errlen, "cannot write %s: %s", path, rt_strerror(rc));
out:
    pthread_mutex_unlock(&config_lock);
    rt_free(yv);
    rt_free(out);
    rt_free(text);
    return rc;
}

static char *job_config(rt_ctx *cx, job *j)
{
    (void)cx;
    char err[300];
    const char *path = hm_config_path(j->sh->cfg);
    if (config_write(path, j->key, j->value, j->raw, err, sizeof(err)) != 0) {
        RT_WARN("gateway", "saving %s: %s", j->key, err);
        return rt_xasprintf("\xe2\x9a\xa0\xef\xb8\x8f Could not save `%s`: %s", j->key, err);
    }
    return rt_xstrdup(j->ok);
}

/* raw: value is YAML text (true, false), else a string quoted as needed. */
static void save_config(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *key,
                        const char *value, bool raw, const char *ok)
{
    job *j = job_new(c, to, job_config);
    j->key = rt_xstrdup(key);
    j->value = rt_xstrdup(value);
    j->raw = raw;
    j->ok = rt_xstrdup(ok);
    job_start(cx, j);
}

/* ============================================================ /provider */

typedef struct provider_info {
    const char *id, *label, *env, *env2;
} provider_info;

static const provider_info providers[] = {
    {"openrouter", "OpenRouter", "OPENROUTER_API_KEY", NULL},
    {"custom", "Custom endpoint (OpenAI-compatible)", "OPENAI_BASE_URL", "OPENAI_API_KEY"},
    {"anthropic", "Anthropic", "ANTHROPIC_API_KEY", NULL},
};

static bool env_set(const hm_config *cfg, const char *name)
{
    const char *v = name ? hm_config_getenv(cfg, name, NULL) : NULL;
    return v && *v;
}

static void cmd_provider(rt_ctx *cx, gw_chat *c, const gw_target *to)
{
    const gw_shared *sh = gw_chat_shared(c);
    const char *cur = sh->provider ? sh->provider : "auto";
    const char *label = cur;
    for (size_t i = 0; i < RT_ARRAY_LEN(providers); i++)
        if (strcmp(providers[i].id, cur) == 0)
            label = providers[i].label;
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_printf(&b,
                  "\xf0\x9f\x94\x8c **Current provider:** %s (`%s`)\n\n**Available providers:**",
                  label, cur);
    for (size_t i = 0; i < RT_ARRAY_LEN(providers); i++) {
        const provider_info *p = &providers[i];
        bool auth = env_set(sh->cfg, p->env) || env_set(sh->cfg, p->env2) ||
                    (strcmp(p->id, "custom") == 0 && hm_config_is_set(sh->cfg, "model.base_url"));
        rt_buf_printf(&b, "\n%s `%s` \xe2\x80\x94 %s%s", auth ? "\xe2\x9c\x85" : "\xe2\x9d\x8c",
                      p->id, p->label, strcmp(p->id, cur) == 0 ? " \xe2\x86\x90 active" : "");
    }
    rt_buf_append_str(&b, "\n\nSwitch: `hermes config set model.provider <name>`, then `/restart`"
                          "\nSetup: `hermes config set OPENROUTER_API_KEY ...` (or "
                          "`OPENAI_BASE_URL`, `ANTHROPIC_API_KEY`)");
    gw_chat_say(cx, c, to, rt_buf_cstr(&b), GW_TEXT_NOTICE);
    rt_buf_fini(&b);
}

/* ============================================================ /reasoning */

static const char *const efforts[] = {"none", "minimal", "low", "medium", "high", "xhigh"};

static void cmd_reasoning(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *args)
{
    const gw_shared *sh = gw_chat_shared(c);
    const char *platform = gw_chat_origin(c)->platform ? gw_chat_origin(c)->platform : "default";
    char a[32];
    rt_strlcpy(a, args, sizeof(a));
    for (char *p = a; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    char key[160];
    snprintf(key, sizeof(key), "display.platforms.%s.show_reasoning", platform);
    if (!*args) {
        const char *e = hm_config_str(sh->cfg, "agent.reasoning_effort");
        const cJSON *pv = hm_config_node(sh->cfg, key);
        bool show =
            cJSON_IsBool(pv) ? cJSON_IsTrue(pv) : hm_config_bool(sh->cfg, "display.show_reasoning");
        sayf(cx, c, to,
             "\xf0\x9f\xa7\xa0 **Reasoning Settings**\n\n**Effort:** `%s`\n**Display:** %s\n\n"
             "_Usage:_ `/reasoning <none|minimal|low|medium|high|xhigh|show|hide>`",
             e && *e ? e : "medium (default)", show ? "on \xe2\x9c\x93" : "off");
        return;
    }
    if (strcmp(a, "show") == 0 || strcmp(a, "on") == 0 || strcmp(a, "hide") == 0 ||
        strcmp(a, "off") == 0) {
        bool on = strcmp(a, "show") == 0 || strcmp(a, "on") == 0;
        char ok[256];
        snprintf(ok, sizeof(ok),
                 "\xf0\x9f\xa7\xa0 \xe2\x9c\x93 Reasoning display: **%s** for **%s**",
                 on ? "ON" : "OFF", platform);
        save_config(cx, c, to, key, on ? "true" : "false", true, ok);
        return;
    }
    for (size_t i = 0; i < RT_ARRAY_LEN(efforts); i++) {
        if (strcmp(a, efforts[i]) != 0)
            continue;
        char ok[256];
        snprintf(ok, sizeof(ok),
                 "\xf0\x9f\xa7\xa0 \xe2\x9c\x93 Reasoning effort set to `%s` (saved to config)",
                 efforts[i]);
        save_config(cx, c, to, "agent.reasoning_effort", efforts[i], false, ok);
        return;
    }
    sayf(cx, c, to,
         "\xe2\x9a\xa0\xef\xb8\x8f Unknown argument: `%.64s`\n\n**Valid levels:** none, minimal, "
         "low, medium, high, xhigh\n**Display:** show, hide",
         args);
}

/* ============================================================ /verbose */

static void cmd_verbose(rt_ctx *cx, gw_chat *c, const gw_target *to)
{
    const gw_shared *sh = gw_chat_shared(c);
    if (!hm_config_bool(sh->cfg, "display.tool_progress_command")) {
        gw_chat_say(cx, c, to,
                    "The `/verbose` command is not enabled for messaging platforms.\n\nEnable "
                    "it in `config.yaml`:\n```yaml\ndisplay:\n  tool_progress_command: true\n```",
                    GW_TEXT_NOTICE);
        return;
    }
    static const char *const names[] = {"off", "new", "all", "verbose"};
    static const char *const desc[] = {
        "\xe2\x9a\x99\xef\xb8\x8f Tool progress: **OFF** \xe2\x80\x94 no tool activity shown.",
        "\xe2\x9a\x99\xef\xb8\x8f Tool progress: **NEW** \xe2\x80\x94 shown when tool changes.",
        "\xe2\x9a\x99\xef\xb8\x8f Tool progress: **ALL** \xe2\x80\x94 every tool call shown.",
        "\xe2\x9a\x99\xef\xb8\x8f Tool progress: **VERBOSE** \xe2\x80\x94 full args and results.",
    };
    int m = (gw_chat_progress_mode(c) + 1) % 4;
    gw_chat_set_progress_mode(c, m);
    const char *platform = gw_chat_origin(c)->platform ? gw_chat_origin(c)->platform : "default";
    char key[160], ok[400];
    snprintf(key, sizeof(key), "display.platforms.%s.tool_progress", platform);
    snprintf(ok, sizeof(ok),
             "%s\n_(saved for **%s**: this chat now, the platform's other chats after a "
             "restart)_",
             desc[m], platform);
    save_config(cx, c, to, key, names[m], false, ok);
}

/* ============================================================ /fast */

static void cmd_fast(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *args)
{
    if (!*args || strcasecmp(args, "status") == 0) {
        gw_chat_say(cx, c, to,
                    "\xe2\x9a\xa1 Priority Processing: **Normal**\n_This build's LLM client does "
                    "not request priority processing (OpenAI service tier / Anthropic fast mode) "
                    "yet._",
                    GW_TEXT_NOTICE);
        return;
    }
    if (strcasecmp(args, "fast") == 0 || strcasecmp(args, "normal") == 0 ||
        strcasecmp(args, "on") == 0 || strcasecmp(args, "off") == 0) {
        gw_chat_say(cx, c, to,
                    "\xe2\x9a\xa1 /fast is not available in this build: its LLM client does not "
                    "request priority processing yet. Replies keep the normal tier.",
                    GW_TEXT_NOTICE);
        return;
    }
    gw_chat_say(cx, c, to, "Usage: `/fast [normal|fast|status]`", GW_TEXT_NOTICE);
}

/* ============================================================ /insights */

static void cmd_insights(rt_ctx *cx, gw_chat *c, gw_cmds **st, const gw_target *to,
                         const char *args)
{
    int64_t days = INSIGHTS_DEFAULT_DAYS;
    char *source = NULL;
    char buf[256];
    rt_strlcpy(buf, args, sizeof(buf));
    char *save = NULL;
    for (char *w = strtok_r(buf, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        if (strcmp(w, "--days") == 0 || isdigit((unsigned char)w[0])) {
            const char *v = isdigit((unsigned char)w[0]) ? w : strtok_r(NULL, " \t", &save);
            if (!v || rt_parse_i64(v, 1, INSIGHTS_MAX_DAYS, &days) != 0) {
                sayf(cx, c, to, "Invalid --days value: %.32s (1 to %d)", v ? v : "(none)",
                     INSIGHTS_MAX_DAYS);
                rt_free(source);
                return;
            }
        } else if (strcmp(w, "--source") == 0) {
            const char *v = strtok_r(NULL, " \t", &save);
            rt_free(source);
            source = v ? rt_xstrdup(v) : NULL;
        } else {
            sayf(cx, c, to, "Usage: `/insights [days] [--source <platform>]`");
            rt_free(source);
            return;
        }
    }
    gw_shared *sh = gw_chat_shared(c);
    if (!sh->store) {
        rt_free(source);
        gw_chat_say(cx, c, to, "Session database not available.", GW_TEXT_NOTICE);
        return;
    }
    gw_cmds *s = gw_cmds_get(st);
    st_msg_sop *m = st_sop_new(ST_SOP_INSIGHTS, NULL, rt_self(cx), 0);
    m->since = (double)time(NULL) - (double)days * 86400.0;
    m->source = source;
    m->req.tag = gw_cmds_pend(s, GW_REQ_INSIGHTS, to, source, days);
    rt_send(cx, sh->store, &m->hdr);
}

/* 1234567 -> "1,234,567" into buf. */
static const char *thousands(long long v, char *buf, size_t len)
{
    char raw[32];
    snprintf(raw, sizeof(raw), "%lld", v < 0 ? -v : v);
    size_t n = strlen(raw), o = 0;
    if (v < 0 && o + 1 < len)
        buf[o++] = '-';
    for (size_t i = 0; i < n && o + 2 < len; i++) {
        if (i && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
    return buf;
}

static void ranked_line(rt_buf *b, const cJSON *arr, const char *title, bool numbered)
{
    if (cJSON_GetArraySize(arr) == 0)
        return;
    rt_buf_printf(b, "\n\n**%s:**", title);
    const cJSON *it;
    int i = 0;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
        long long k =
            (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "count"));
        if (numbered)
            rt_buf_printf(b, "\n%d. %s \xe2\x80\x94 %lld", ++i,
                          cJSON_IsString(n) ? n->valuestring : "?", k);
        else
            rt_buf_printf(b, "%s %s (%lld)", i++ ? "," : "",
                          cJSON_IsString(n) ? n->valuestring : "?", k);
    }
}

void gw_cmd_insights_answer(rt_ctx *cx, gw_chat *c, const gw_cmd_pend *p,
                            const struct st_msg_result *r)
{
    if (r->err) {
        sayf(cx, c, &p->to, "Error generating insights: %s", r->errmsg);
        return;
    }
    const cJSON *j = r->json;
#define N(k) (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, k))
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_printf(&b, "\xf0\x9f\x93\x8a **Hermes Insights** \xe2\x80\x94 last %lld day%s%s%s",
                  (long long)p->n, p->n == 1 ? "" : "s", p->arg ? " on " : "",
                  p->arg ? p->arg : "");
    if (N("sessions") == 0) {
        rt_buf_append_str(&b, "\n\nNo sessions in this period.");
    } else {
        char t1[32], t2[32], t3[32];
        rt_buf_printf(&b, "\n\n**Sessions:** %s", thousands(N("sessions"), t1, sizeof(t1)));
        rt_buf_printf(&b, "\n**Messages:** %s (%s from users)",
                      thousands(N("messages"), t1, sizeof(t1)),
                      thousands(N("user_messages"), t2, sizeof(t2)));
        rt_buf_printf(&b, "\n**Tool calls:** %s", thousands(N("tool_calls"), t1, sizeof(t1)));
        rt_buf_printf(&b, "\n**Tokens:** %s in / %s out (%s total)",
                      thousands(N("input_tokens"), t1, sizeof(t1)),
                      thousands(N("output_tokens"), t2, sizeof(t2)),
                      thousands(N("input_tokens") + N("output_tokens"), t3, sizeof(t3)));
        ranked_line(&b, cJSON_GetObjectItemCaseSensitive(j, "tools"), "Top tools", true);
        ranked_line(&b, cJSON_GetObjectItemCaseSensitive(j, "platforms"), "Platforms", false);
        ranked_line(&b, cJSON_GetObjectItemCaseSensitive(j, "models"), "Models", false);
    }
#undef N
    gw_chat_say(cx, c, &p->to, rt_buf_cstr(&b), GW_TEXT_NOTICE);
    rt_buf_fini(&b);
}

/* ============================================================ /update */

static void cmd_update(rt_ctx *cx, gw_chat *c, const gw_target *to)
{
    /* The source tree: the binary is <source>/build.../hermes when built as the README says. */
    char exe[PATH_MAX] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    char src[PATH_MAX] = "";
    char *slash = strrchr(exe, '/');
    if (slash) {
        *slash = '\0';
        char *bdir = strrchr(exe, '/');
        if (bdir && strncmp(bdir + 1, "build", 5) == 0) {
            *bdir = '\0';
            rt_strlcpy(src, exe, sizeof(src));
        }
    }
    sayf(cx, c, to,
         "\xe2\x9a\x95 **Updating Hermes**\nThis Hermes is a C build made from source: it does "
         "not update itself, and no network command is run from a chat. On the host:\n```\n"
         "cd %s\ngit pull\nscripts/install-deps.sh\ncmake --build build -j\"$(nproc)\"\n"
         "build/hermes gateway restart\n```\nThe last line restarts this gateway on the new "
         "build (`/restart` here does the same once the build is done).",
         src[0] ? src : "<the Hermes source folder>");
}

/* ============================================================ /debug */

/* Lines of the log tail, each redacted of anything that looks like a secret. */
static void append_redacted(rt_buf *b, const char *text)
{
    static const char *const marks[] = {"key",      "token",         "secret",
                                        "password", "authorization", "bearer"};
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, "\n");
        char line[1024];
        snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) - 1 ? len : sizeof(line) - 1),
                 p);
        bool secret = false;
        for (size_t i = 0; i < RT_ARRAY_LEN(marks); i++)
            if (strcasestr(line, marks[i]))
                secret = true;
        if (secret) {
            /* keep the line's start (time, level, module), mask the rest */
            size_t keep = strcspn(line, ":=");
            rt_buf_printf(b, "%.*s: [redacted]\n", (int)keep, line);
        } else {
            rt_buf_printf(b, "%s\n", line);
        }
        p += len;
        if (*p)
            p++;
    }
}

static char *job_debug(rt_ctx *cx, job *j)
{
    const hm_config *cfg = j->sh->cfg;
    const char *home = j->sh->home ? j->sh->home : ".";
    rt_buf b;
    rt_buf_init(&b, 1 << 20);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char ts[32], stamp[32];
    strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S UTC", &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%d_%H%M%S", &tm);
    struct utsname u;
    memset(&u, 0, sizeof(u));
    (void)uname(&u);
    rt_buf_printf(&b, "Hermes debug report (%s)\n\n[system]\nos: %s %s %s\npid: %d\n", ts,
                  u.sysname, u.release, u.machine, (int)getpid());
    rt_buf_printf(&b, "\n[gateway]\nhome: %s\nplatform asking: %s\nmodel: %s\nprovider: %s\n", home,
                  j->platform ? j->platform : "?", j->sh->model ? j->sh->model : "(default)",
                  j->sh->provider ? j->sh->provider : "auto");
    if (j->sh->base_url)
        rt_buf_printf(&b, "base_url: %s\n", j->sh->base_url);
    rt_buf_append_str(&b, "\n[credentials] (set or not; values are never included)\n");
    static const char *const vars[] = {
        "OPENROUTER_API_KEY",  "OPENAI_API_KEY",   "OPENAI_BASE_URL", "ANTHROPIC_API_KEY",
        "MATRIX_ACCESS_TOKEN", "MATTERMOST_TOKEN", "API_SERVER_KEY",  "GATEWAY_PROXY_KEY"};
    for (size_t i = 0; i < RT_ARRAY_LEN(vars); i++)
        rt_buf_printf(&b, "%s: %s\n", vars[i], env_set(cfg, vars[i]) ? "set" : "unset");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/gateway_state.json", home);
    char *text = NULL;
    size_t len = 0;
    if (hm_read_file(path, 1 << 20, &text, &len) == 0) {
        rt_buf_append_str(&b, "\n[gateway_state.json]\n");
        rt_buf_append(&b, text, len);
        rt_buf_append_str(&b, "\n");
    }
    rt_free(text);
    text = NULL;
    snprintf(path, sizeof(path), "%s/logs/gateway.log", home);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0) {
            off_t from = st.st_size > LOG_TAIL_BYTES ? st.st_size - LOG_TAIL_BYTES : 0;
            char *tail = rt_xmalloc(LOG_TAIL_BYTES + 1);
            ssize_t got = pread(fd, tail, LOG_TAIL_BYTES, from);
            tail[got > 0 ? got : 0] = '\0';
            rt_buf_append_str(&b, "\n[logs/gateway.log, last 16 KiB, redacted]\n");
            append_redacted(&b, tail);
            rt_free(tail);
        }
        close(fd);
    }
    snprintf(path, sizeof(path), "%s/logs", home);
    (void)mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/logs/debug-%s.txt", home, stamp);
    int rc = hm_write_atomic(path, rt_buf_cstr(&b), b.len, 0600);
    if (rc) {
        rt_buf_fini(&b);
        return rt_xasprintf("\xe2\x9a\xa0\xef\xb8\x8f Could not write the debug report to `%s`: "
                            "%s",
                            path, rt_strerror(rc));
    }
    j->path = rt_xstrdup(path);
    const char *url = hm_config_str(cfg, "debug.paste_url");
    if (url && *url) { /* configured: post it there too */
        const char *const hdrs[] = {"Content-Type: text/plain; charset=utf-8", NULL};
        rt_http_request rq = {.method = "POST",
                              .url = url,
                              .headers = hdrs,
                              .body = rt_buf_cstr(&b),
                              .body_len = b.len,
                              .timeout_ms = 30000,
                              .max_body = 64 * 1024,
                              .reply_to = rt_self(cx)};
        (void)rt_http_submit(cx, &rq); /* copies the body; DONE comes back to this job */
        j->waiting = true;
        rt_buf_fini(&b);
        return NULL;
    }
    rt_buf_fini(&b);
    return rt_xasprintf("\xf0\x9f\x90\x9b Debug report written to `%s` (secrets redacted).\nThis "
                        "build does not upload it anywhere unless `debug.paste_url` is set: "
                        "attach the file yourself if you want to share it.",
                        path);
}

/* The paste service answered (or not): say where the report is. */
static char *debug_uploaded(job *j, const rt_io_msg_http_done *d)
{
    if (d->err == 0 && d->status >= 200 && d->status < 300) {
        char where[256] = "";
        if (d->body) { /* the service's answer: its first line (usually the link) */
            snprintf(where, sizeof(where), "%.*s", (int)strcspn(d->body, "\r\n"), d->body);
        }
        return rt_xasprintf("\xf0\x9f\x90\x9b Debug report uploaded%s%s\n(also written to "
                            "`%s`, secrets redacted)",
                            where[0] ? ": " : ".", where, j->path);
    }
    char why[200];
    if (d->err)
        snprintf(why, sizeof(why), "%s", d->errmsg ? d->errmsg : rt_strerror(d->err));
    else
        snprintf(why, sizeof(why), "HTTP %d", d->status);
    return rt_xasprintf("\xe2\x9a\xa0\xef\xb8\x8f The debug report could not be uploaded "
                        "(%s). It is written to `%s` (secrets redacted).",
                        why, j->path);
}

/* ============================================================ /restart */

gw_restart_hook gw_restart_fn = gw_restart_default;

/* What the process re-executes, read while the runtime still runs (the exit handler only
 * calls execv). */
static char restart_exe[PATH_MAX];
static char restart_args[CMDLINE_MAX];
static char *restart_argv[256];

/* Runs at exit, after `hermes gateway run` stopped the way SIGTERM stops it. */
static void restart_at_exit(void)
{
    if (getenv("INVOCATION_ID")) /* systemd: the unit restarts us on status 75 */
        _exit(75);
    if (!restart_argv[0])
        return;
    /* every descriptor but stdio closes on exec: the new process takes the lock and ports */
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int self = dirfd(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            int64_t fd = -1;
            if (rt_parse_i64(e->d_name, 0, INT_MAX, &fd) == 0 && fd > 2 && fd != self) {
                int fl = fcntl((int)fd, F_GETFD);
                if (fl >= 0)
                    (void)fcntl((int)fd, F_SETFD, fl | FD_CLOEXEC);
            }
        }
        closedir(d);
    }
    execv(restart_exe, restart_argv);
    (void)!write(2, "hermes: restart: cannot re-execute the gateway\n", 47);
}

void gw_restart_default(void)
{
    ssize_t n = readlink("/proc/self/exe", restart_exe, sizeof(restart_exe) - 1);
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t len = fd >= 0 ? read(fd, restart_args, sizeof(restart_args) - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n > 0 && len > 0) {
        restart_exe[n] = '\0';
        restart_args[len] = '\0';
        size_t k = 0;
        for (ssize_t i = 0; i < len && k + 1 < RT_ARRAY_LEN(restart_argv);
             i += (ssize_t)strlen(restart_args + i) + 1)
            restart_argv[k++] = restart_args + i;
        restart_argv[k] = NULL;
    }
    if (getenv("INVOCATION_ID"))
        RT_INFO("gateway", "restarting: stopping, then exiting with status 75 for systemd");
    else if (restart_argv[0])
        RT_INFO("gateway", "restarting: stopping, then re-executing %s", restart_exe);
    else
        RT_WARN("gateway", "restart: cannot read /proc/self: the gateway only stops");
    static bool registered;
    if (!registered)
        registered = atexit(restart_at_exit) == 0;
    /* the same graceful stop as Ctrl+C: drain, stop the platforms (their locks go), exit */
    (void)kill(getpid(), SIGTERM);
}

/* Where the next start says "♻ Gateway restarted successfully" (gateway.md §1.2:
 * ~/.hermes/.restart_notify.json; read by gw_restart_notify). Blocking write: the restart
 * actor is detached. */
static void write_restart_notify(const job *j)
{
    if (!j->sh->home || !j->platform || !j->to.chat_id)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "platform", j->platform);
    cJSON_AddStringToObject(o, "chat_id", j->to.chat_id);
    if (j->to.thread_id)
        cJSON_AddStringToObject(o, "thread_id", j->to.thread_id);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/" GW_RESTART_NOTIFY_FILE, j->sh->home);
    int rc = hm_write_atomic(path, text, strlen(text), 0600);
    if (rc)
        RT_WARN("gateway", "restart: cannot write %s: %s", path, rt_strerror(rc));
    cJSON_free(text);
}

typedef struct restarter {
    job *j;
    bool draining;
} restarter;

enum { TAG_EXEC = 0x7e58 };
#define RESTART_GRACE_MS 1500

static void restart_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    restarter *r = state;
    job *j = r->j;
    if (m->type == GW_JOB_RUN && !r->draining) {
        /* how many turns the drain waits for, from the router's status file */
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/gateway_state.json", j->sh->home ? j->sh->home : ".");
        char *text = NULL;
        size_t len = 0;
        long long active = 0;
        if (hm_read_file(path, 1 << 20, &text, &len) == 0) {
            cJSON *s = cJSON_Parse(text);
            active = (long long)cJSON_GetNumberValue(
                cJSON_GetObjectItemCaseSensitive(s, "active_agents"));
            cJSON_Delete(s);
        }
        rt_free(text);
        char *say =
            active > 0
                ? rt_xasprintf("\xe2\x8f\xb3 Draining %lld active agent(s) before restart...",
                               active)
                : rt_xstrdup("\xe2\x99\xbb Restarting gateway. If you aren't notified within "
                             "60 seconds, restart from the console with `hermes gateway "
                             "restart`.");
        job_reply(cx, j, say);
        rt_free(say);
        r->draining = true;
        /* a moment for the notice to reach the platform, then the stop that drains */
        rt_send_after(cx, rt_self(cx), rt_timeout_new(TAG_EXEC), RESTART_GRACE_MS);
        return;
    }
    if (m->type == RT_MSG_TIMEOUT && ((rt_msg_timeout *)m)->tag == TAG_EXEC && r->draining) {
        write_restart_notify(j);
        rt_busy_leave(rt_ctx_runtime(cx));
        gw_restart_fn();
    }
}

static void restart_fini(void *state)
{
    restarter *r = state;
    job_fini(r->j);
    rt_free(r);
}

static const rt_actor_type restart_type = {"gw.restart", restart_behave, restart_fini, 0};

static void cmd_restart(rt_ctx *cx, gw_chat *c, const gw_target *to)
{
    if (rt_whereis(cx, GW_RESTART_NAME)) {
        gw_chat_say(cx, c, to, "\xe2\x8f\xb3 Gateway restart already in progress...",
                    GW_TEXT_NOTICE);
        return;
    }
    restarter *r = rt_xcalloc(1, sizeof(*r));
    r->j = job_new(c, to, NULL);
    r->j->kind = GW_TEXT_REPLY; /* through the outbox: kept until the platform took it */
    rt_spawn_opts o = {.flags = RT_SPAWN_DETACHED, .name = GW_RESTART_NAME};
    rt_ref ref = rt_spawn(cx, &restart_type, r, &o);
    if (!ref) { /* taken a moment ago */
        gw_chat_say(cx, c, to, "\xe2\x8f\xb3 Gateway restart already in progress...",
                    GW_TEXT_NOTICE);
        return;
    }
    rt_busy_enter(rt_ctx_runtime(cx));
    rt_send(cx, ref, rt_msg_new(GW_JOB_RUN, sizeof(rt_msg)));
}

/* ============================================================ dispatch */

bool gw_cmd_info_handle(rt_ctx *cx, gw_chat *c, gw_cmds **st, gw_msg_event *ev, const char *name,
                        const char *args)
{
    const gw_target *to = &ev->reply;
    if (strcmp(name, "provider") == 0)
        cmd_provider(cx, c, to);
    else if (strcmp(name, "reasoning") == 0)
        cmd_reasoning(cx, c, to, args);
    else if (strcmp(name, "verbose") == 0)
        cmd_verbose(cx, c, to);
    else if (strcmp(name, "fast") == 0)
        cmd_fast(cx, c, to, args);
    else if (strcmp(name, "insights") == 0)
        cmd_insights(cx, c, st, to, args);
    else if (strcmp(name, "update") == 0)
        cmd_update(cx, c, to);
    else if (strcmp(name, "debug") == 0)
        job_start(cx, job_new(c, to, job_debug));
    else if (strcmp(name, "restart") == 0)
        cmd_restart(cx, c, to);
    else
        return false;
    return true;
}

/* ======================================================== restart notice */

enum { NOTIFY_TAG = 0x7e59, NOTIFY_TRIES = 120 };

typedef struct notifier {
    char *path, *platform, *chat_id, *thread_id;
    rt_ref gateway;
    int tries;
} notifier;

static void notify_try(rt_ctx *cx, notifier *n)
{
    rt_send(cx, n->gateway,
            gw_deliver_new(n->platform, n->chat_id, n->thread_id,
                           "\xe2\x99\xbb Gateway restarted successfully. Your session continues.",
                           rt_self(cx), NOTIFY_TAG));
}

static void notify_done(rt_ctx *cx, notifier *n)
{
    if (unlink(n->path) != 0 && errno != ENOENT)
        RT_WARN("gateway", "cannot remove %s: %s", n->path, rt_strerror(-errno));
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void notify_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    notifier *n = state;
    if (m->type == GW_JOB_RUN) {
        notify_try(cx, n);
    } else if (m->type == GW_MSG_DELIVERED) {
        gw_msg_delivered *d = (gw_msg_delivered *)m;
        if (d->err == -ENOENT && ++n->tries < NOTIFY_TRIES) { /* not connected yet */
            rt_send_after(cx, rt_self(cx), rt_timeout_new(NOTIFY_TAG), 1000);
            return;
        }
        if (d->err)
            RT_WARN("gateway", "restart notice to %s not sent: %s", n->platform, d->errmsg);
        else
            RT_INFO("gateway", "restart notice sent to %s", n->platform);
        notify_done(cx, n);
    } else if (m->type == RT_MSG_TIMEOUT && ((rt_msg_timeout *)m)->tag == NOTIFY_TAG) {
        notify_try(cx, n);
    }
}

static void notify_fini(void *state)
{
    notifier *n = state;
    rt_free(n->path);
    rt_free(n->platform);
    rt_free(n->chat_id);
    rt_free(n->thread_id);
    rt_free(n);
}

static const rt_actor_type notify_type = {"gw.restart_notice", notify_behave, notify_fini, 0};

void gw_restart_notify(rt_ctx *cx, const char *home, rt_ref gateway)
{
    char *path = rt_xasprintf("%s/" GW_RESTART_NOTIFY_FILE, home);
    char *text = NULL;
    size_t len = 0;
    if (hm_read_file(path, 64 * 1024, &text, &len) != 0) {
        rt_free(path);
        return;
    }
    cJSON *o = cJSON_Parse(text);
    rt_free(text);
    const char *p = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "platform"));
    const char *c = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "chat_id"));
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "thread_id"));
    if (!p || !c) {
        RT_WARN("gateway", "%s is not a restart notice: removed", path);
        (void)unlink(path);
        cJSON_Delete(o);
        rt_free(path);
        return;
    }
    notifier *n = rt_xcalloc(1, sizeof(*n));
    n->path = path;
    n->platform = rt_xstrdup(p);
    n->chat_id = rt_xstrdup(c);
    n->thread_id = t ? rt_xstrdup(t) : NULL;
    n->gateway = gateway;
    cJSON_Delete(o);
    rt_ref ref = rt_spawn(cx, &notify_type, n, NULL);
    if (ref)
        rt_send(cx, ref, rt_msg_new(GW_JOB_RUN, sizeof(rt_msg)));
}

/* ============================================================ /<skill> */

/* The job: the skill's invocation message (skl_invoke_message reads SKILL.md and its files,
 * so it runs on the job's own thread) goes back through the router as the user's message,
 * so authorization, busy turns and ordering treat it like any other; no such skill: the
 * original's unknown-command notice. */
static char *skill_run(rt_ctx *cx, job *j)
{
    char *root = rt_xasprintf("%s/skills", j->sh->home ? j->sh->home : ".");
    char *msg = skl_invoke_message(root, j->name, j->ev->text);
    rt_free(root);
    if (!msg)
        return rt_xasprintf("Unknown command `/%s`. Type /commands to see what's available, or "
                            "resend without the leading slash to send as a regular message.",
                            j->name);
    RT_INFO("gateway", "skill command /%s from %s", j->name, j->platform ? j->platform : "?");
    gw_msg_event *e = j->ev;
    j->ev = NULL;
    rt_free(e->text);
    e->text = msg;
    rt_free(e->message_id); /* a message of its own, not the platform update again */
    e->message_id = NULL;
    rt_ref gw = rt_whereis(cx, GW_NAME);
    if (gw)
        rt_send(cx, gw, &e->hdr);
    else
        rt_msg_free(&e->hdr);
    return NULL;
}

void gw_cmds_skill(rt_ctx *cx, gw_chat *c, const gw_msg_event *ev, const char *name,
                   const char *args)
{
    job *j = job_new(c, &ev->reply, skill_run);
    j->name = rt_xstrdup(name);
    gw_msg_event *e = gw_event_new(NULL, NULL, NULL, NULL, args);
    gw_target_fini(&e->reply);
    gw_source_copy(&e->src, &ev->src);
    gw_target_copy(&e->reply, &ev->reply);
    e->session_id = ev->session_id ? rt_xstrdup(ev->session_id) : NULL;
    e->adapter = ev->adapter;
    e->internal = ev->internal;
    j->ev = e;
    job_start(cx, j);
}

/* ============================================================ /status */

/* The router's /status reply waits for the session's title (state.db, through the store
 * writer) on a one-shot actor of its own, so the router never waits; the answer, or
 * STATUS_WAIT_MS without one, sends the reply and ends it. */
#define STATUS_WAIT_MS 5000

typedef struct status_ask {
    rt_ref adapter;
    gw_target to;
    char *head, *tail;
    uint64_t timer;
} status_ask;

static void status_send(rt_ctx *cx, status_ask *s, const char *title)
{
    char *text = title && *title ? rt_xasprintf("%s**Title:** %s\n%s", s->head, title, s->tail)
                                 : rt_xasprintf("%s%s", s->head, s->tail);
    rt_send(cx, s->adapter, gw_out_text_new(GW_OUT_TEXT, &s->to, text, GW_TEXT_NOTICE));
    rt_free(text);
}

static void status_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    status_ask *s = state;
    if (m->type == ST_MSG_RESULT) {
        const st_msg_result *r = (const st_msg_result *)m;
        const cJSON *t = r->err ? NULL : cJSON_GetObjectItemCaseSensitive(r->json, "title");
        status_send(cx, s, cJSON_IsString(t) ? t->valuestring : NULL);
    } else if (m->type == RT_MSG_TIMEOUT) {
        RT_WARN("gateway", "/status: state.db did not answer; replying without the title");
        status_send(cx, s, NULL);
    } else {
        return;
    }
    if (s->timer)
        (void)rt_timer_cancel(cx, s->timer); /* false when it is what came */
    rt_busy_leave(rt_ctx_runtime(cx));
    rt_exit(cx, RT_EXIT_NORMAL);
}

static void status_fini(void *state)
{
    status_ask *s = state;
    gw_target_fini(&s->to);
    rt_free(s->head);
    rt_free(s->tail);
    rt_free(s);
}

static const rt_actor_type status_type = {"gw.status", status_behave, status_fini, 0};

void gw_status_reply(rt_ctx *cx, rt_ref store, rt_ref adapter, const gw_target *to,
                     const char *session_id, const char *head, const char *tail)
{
    status_ask *s = rt_xcalloc(1, sizeof(*s));
    s->adapter = adapter;
    gw_target_copy(&s->to, to);
    s->head = rt_xstrdup(head);
    s->tail = rt_xstrdup(tail);
    if (!store || !session_id) {
        status_send(cx, s, NULL);
        status_fini(s);
        return;
    }
    rt_ref ref = rt_spawn(cx, &status_type, s, NULL);
    if (!ref) { /* s was freed by status_fini */
        char *text = rt_xasprintf("%s%s", head, tail);
        rt_send(cx, adapter, gw_out_text_new(GW_OUT_TEXT, to, text, GW_TEXT_NOTICE));
        rt_free(text);
        return;
    }
    rt_busy_enter(rt_ctx_runtime(cx)); /* tests wait for the reply with rt_wait_quiescent */
    /* Only this thread touches s until the actor's first message: the timer id is set before
     * anything is sent to it. */
    s->timer = rt_send_after(cx, ref, rt_timeout_new(0), STATUS_WAIT_MS);
    if (!rt_send(cx, store, &st_sop_new(ST_SOP_TITLE_GET, session_id, ref, 0)->hdr))
        rt_send(cx, ref, rt_timeout_new(0)); /* the store has gone: reply without it */
}

/* ============================================================ /help */

#define HELP_SKILLS 10 /* skill commands /help lists; /commands has the rest */

/* The original's /help: the commands, then the installed skills as `/<skill-name>` commands,
 * sorted, at most HELP_SKILLS of them (reading the skills directory is why this is a job). */
static char *help_run(rt_ctx *cx, job *j)
{
    (void)cx;
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    char *help = gw_chat_help_text();
    rt_buf_append_str(&b, help);
    rt_free(help);
    char *root = rt_xasprintf("%s/skills", j->sh->home ? j->sh->home : ".");
    cJSON *list = NULL;
    skl_command *v = NULL;
    size_t nv = skl_commands(root, &v, &list);
    rt_free(root);
    if (nv) {
        rt_buf_printf(&b, "\n\n\xe2\x9a\xa1 **Skill Commands** (%zu active):", nv);
        for (size_t i = 0; i < nv && i < HELP_SKILLS; i++)
            rt_buf_printf(&b, "\n`%s` \xe2\x80\x94 %s", v[i].name,
                          v[i].desc ? v[i].desc : "Skill command");
        if (nv > HELP_SKILLS)
            rt_buf_printf(&b, "\n\n... and %zu more. Use `/commands` for the full paginated list.",
                          nv - HELP_SKILLS);
    }
    rt_free(v);
    cJSON_Delete(list);
    return rt_buf_steal(&b, NULL);
}

void gw_cmds_help_reply(rt_ctx *cx, gw_chat *c, const gw_target *to)
{
    job_start(cx, job_new(c, to, help_run));
}
