/*
 * cron_run — the texts of a cron run, as the original's cron/scheduler.py writes them: the
 * prompt (script block, cron hint, skills), the run report, the wrapped delivery, and the
 * delivery plan. See cron_int.h.
 */
#include "cron_int.h"

#include "cron_sched.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"
#include "send_dir.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TEXT_MAX        ((size_t)64 << 20)
#define SKILL_MAX_BYTES ((size_t)1 << 20)
#define SKILL_DEPTH     4

const char cron__hint[] =
    "[SYSTEM: You are running as a scheduled cron job. DELIVERY: Your final response will be "
    "automatically delivered to the user \xe2\x80\x94 do NOT use send_message or try to deliver "
    "the output yourself. Just produce your report/output as your final response and the "
    "system handles the rest. SILENT: If there is genuinely nothing new to report, respond "
    "with exactly \"[SILENT]\" (nothing else) to suppress delivery. Never combine [SILENT] "
    "with content \xe2\x80\x94 either report your findings normally, or say [SILENT] and "
    "nothing more.]\n\n";

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ================================================================= skills */

static char *read_small(const char *path, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    rt_buf b;
    rt_buf_init(&b, max);
    char chunk[8192];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        if (rt_buf_append(&b, chunk, (size_t)n) != 0)
            break;
    close(fd);
    return rt_buf_steal(&b, NULL);
}

/* <dir>/.../<name>/SKILL.md, depth-first with a depth bound: a new path, or NULL. */
static char *find_skill(const char *dir, const char *name, int depth)
{
    char *direct = rt_xasprintf("%s/%s/SKILL.md", dir, name);
    struct stat st;
    if (stat(direct, &st) == 0 && S_ISREG(st.st_mode))
        return direct;
    rt_free(direct);
    if (depth <= 0)
        return NULL;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char *found = NULL;
    struct dirent *e;
    int seen = 0;
    while (!found && (e = readdir(d)) != NULL && seen++ < 2000) {
        if (e->d_name[0] == '.')
            continue;
        char *sub = rt_xasprintf("%s/%s", dir, e->d_name);
        if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            found = find_skill(sub, name, depth - 1);
        rt_free(sub);
    }
    closedir(d);
    return found;
}

static char *skill_content(const char *home, const char *name)
{
    if (!*name || strchr(name, '/') || strcmp(name, "..") == 0 || strcmp(name, ".") == 0)
        return NULL;
    char *root = rt_xasprintf("%s/skills", home);
    char *path = find_skill(root, name, SKILL_DEPTH);
    rt_free(root);
    if (!path)
        return NULL;
    char *text = read_small(path, SKILL_MAX_BYTES);
    rt_free(path);
    if (!text)
        return NULL;
    /* str(...).strip() */
    char *s = text;
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    char *out = rt_xstrndup(s, n);
    rt_free(text);
    return out;
}

/* The skills of a job: its `skills` list, else the legacy `skill`. */
static cJSON *job_skills(const cJSON *job)
{
    cJSON *out = cJSON_CreateArray();
    const cJSON *skills = cJSON_GetObjectItemCaseSensitive(job, "skills");
    if (!cJSON_IsArray(skills) && jstr(job, "skill"))
        cJSON_AddItemToArray(out, cJSON_CreateString(jstr(job, "skill")));
    const cJSON *s;
    cJSON_ArrayForEach(s, skills)
    {
        if (!cJSON_IsString(s))
            continue;
        const char *t = s->valuestring;
        while (isspace((unsigned char)*t))
            t++;
        size_t n = strlen(t);
        while (n && isspace((unsigned char)t[n - 1]))
            n--;
        if (n) {
            char *c = rt_xstrndup(t, n);
            cJSON_AddItemToArray(out, cJSON_CreateString(c));
            rt_free(c);
        }
    }
    return out;
}

/* ================================================================ prompt */

char *cron__build_prompt(const char *home, const cJSON *job, bool has_script, bool script_ok,
                         const char *script_output)
{
    const char *prompt = jstr(job, "prompt") ? jstr(job, "prompt") : "";
    rt_buf b;
    rt_buf_init(&b, TEXT_MAX);
    (void)rt_buf_append_str(&b, cron__hint);
    if (has_script && script_ok && script_output && *script_output)
        (void)rt_buf_printf(&b,
                            "## Script Output\nThe following data was collected by a pre-run "
                            "script. Use it as context for your analysis.\n\n```\n%s\n```\n\n",
                            script_output);
    else if (has_script && script_ok)
        (void)rt_buf_append_str(&b, "[Script ran successfully but produced no output.]\n\n");
    else if (has_script)
        (void)rt_buf_printf(&b,
                            "## Script Error\nThe data-collection script failed. Report this to "
                            "the user.\n\n```\n%s\n```\n\n",
                            script_output ? script_output : "");
    (void)rt_buf_append_str(&b, prompt);
    char *full = rt_buf_steal(&b, NULL);
    cJSON *skills = job_skills(job);
    if (!cJSON_GetArraySize(skills)) {
        cJSON_Delete(skills);
        return full;
    }
    rt_buf parts, skipped;
    rt_buf_init(&parts, TEXT_MAX);
    rt_buf_init(&skipped, TEXT_MAX);
    const cJSON *s;
    cJSON_ArrayForEach(s, skills)
    {
        char *content = skill_content(home, s->valuestring);
        if (!content) {
            (void)rt_buf_printf(&skipped, "%s%s", skipped.len ? ", " : "", s->valuestring);
            continue;
        }
        (void)rt_buf_printf(&parts,
                            "%s[SYSTEM: The user has invoked the \"%s\" skill, indicating they "
                            "want you to follow its instructions. The full skill content is "
                            "loaded below.]\n\n%s",
                            parts.len ? "\n\n" : "", s->valuestring, content);
        rt_free(content);
    }
    cJSON_Delete(skills);
    rt_buf out;
    rt_buf_init(&out, TEXT_MAX);
    if (skipped.len) {
        const char *names = rt_buf_cstr(&skipped);
        (void)rt_buf_printf(&out,
                            "[SYSTEM: The following skill(s) were listed for this job but could "
                            "not be found and were skipped: %s. Start your response with a brief "
                            "notice so the user is aware, e.g.: '\xe2\x9a\xa0\xef\xb8\x8f Skill(s) "
                            "not found and skipped: %s']",
                            names, names);
        if (parts.len)
            (void)rt_buf_append_str(&out, "\n");
    }
    (void)rt_buf_append(&out, rt_buf_cstr(&parts), parts.len);
    (void)rt_buf_printf(&out,
                        "\n\nThe user has provided the following instruction alongside the skill "
                        "invocation: %s",
                        full);
    rt_buf_fini(&parts);
    rt_buf_fini(&skipped);
    rt_free(full);
    return rt_buf_steal(&out, NULL);
}

/* ================================================================ scripts */

/* Collapse ".", ".." and "//" of an absolute path: a new string. */
static char *normalize(const char *path)
{
    size_t n = strlen(path);
    char *out = rt_xmalloc(n + 2);
    size_t o = 0;
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0)
            break;
        if (len == 1 && p[0] == '.') {
            /* nothing */
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else {
            out[o++] = '/';
            memcpy(out + o, p, len);
            o += len;
        }
        p += len;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return out;
}

/* Path.resolve(strict=False): symlinks resolved where the path exists. */
static char *resolve(const char *path)
{
    char *lex = normalize(path);
    char real[PATH_MAX];
    if (realpath(lex, real)) {
        rt_free(lex);
        return rt_xstrdup(real);
    }
    char *slash = strrchr(lex, '/');
    if (slash && slash != lex) {
        *slash = '\0';
        if (realpath(lex, real)) {
            char *out = rt_xasprintf("%s/%s", real, slash + 1);
            rt_free(lex);
            return out;
        }
        *slash = '/';
    }
    return lex;
}

int cron__script_path(const char *home, const char *script, char **path, char **why)
{
    *path = *why = NULL;
    char *dir = rt_xasprintf("%s/scripts", home);
    (void)mkdir(dir, 0700);
    char *rdir = resolve(dir);
    rt_free(dir);
    const char *h = getenv("HOME");
    char *raw = script[0] == '~' && (script[1] == '/' || !script[1]) && h
                    ? rt_xasprintf("%s%s", h, script + 1)
                    : rt_xstrdup(script);
    char *joined = raw[0] == '/' ? rt_xstrdup(raw) : rt_xasprintf("%s/%s", rdir, raw);
    char *p = resolve(joined);
    rt_free(joined);
    rt_free(raw);
    size_t dl = strlen(rdir);
    struct stat st;
    int r = -1;
    if (strncmp(p, rdir, dl) != 0 || (p[dl] != '/' && p[dl] != '\0'))
        *why = rt_xasprintf("Blocked: script path resolves outside the scripts directory (%s): "
                            "'%s'",
                            rdir, script);
    else if (stat(p, &st) != 0)
        *why = rt_xasprintf("Script not found: %s", p);
    else if (!S_ISREG(st.st_mode))
        *why = rt_xasprintf("Script path is not a file: %s", p);
    else
        r = 0;
    rt_free(rdir);
    if (r == 0)
        *path = p;
    else
        rt_free(p);
    return r;
}

char *cron__script_result(int exit_code, int term_signal, const char *out, const char *err,
                          bool *ok)
{
    int code = term_signal ? -term_signal : exit_code;
    *ok = code == 0;
    if (*ok)
        return rt_xstrdup(out ? out : "");
    rt_buf b;
    rt_buf_init(&b, TEXT_MAX);
    (void)rt_buf_printf(&b, "Script exited with code %d", code);
    if (err && *err)
        (void)rt_buf_printf(&b, "\nstderr:\n%s", err);
    if (out && *out)
        (void)rt_buf_printf(&b, "\nstdout:\n%s", out);
    return rt_buf_steal(&b, NULL);
}

/* ============================================================ the report */

char *cron__output_doc(const cJSON *job, const char *prompt, bool ok, const char *text,
                       int64_t now_us)
{
    const char *name = jstr(job, "name") ? jstr(job, "name") : "";
    const char *id = jstr(job, "id") ? jstr(job, "id") : "";
    const char *sched = jstr(job, "schedule_display") ? jstr(job, "schedule_display") : "N/A";
    time_t t = (time_t)(now_us / 1000000);
    struct tm tm;
    char when[32];
    localtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    rt_buf b;
    rt_buf_init(&b, TEXT_MAX);
    (void)rt_buf_printf(&b,
                        "# Cron Job: %s%s\n\n**Job ID:** %s\n**Run Time:** %s\n**Schedule:** "
                        "%s\n\n## Prompt\n\n%s\n\n",
                        name, ok ? "" : " (FAILED)", id, when, sched, prompt);
    if (ok)
        (void)rt_buf_printf(&b, "## Response\n\n%s\n",
                            text && *text ? text : "(No response generated)");
    else
        (void)rt_buf_printf(&b, "## Error\n\n```\n%s\n```\n", text ? text : "");
    return rt_buf_steal(&b, NULL);
}

char *cron__wrap(const cJSON *job, const char *content)
{
    const char *id = jstr(job, "id") ? jstr(job, "id") : "";
    const char *name = jstr(job, "name") ? jstr(job, "name") : id;
    rt_buf b;
    rt_buf_init(&b, TEXT_MAX);
    (void)rt_buf_printf(&b,
                        "Cronjob Response: %s\n(job_id: %s)\n-------------\n\n%s\n\nTo stop or "
                        "manage this job, send me a new message (e.g. \"stop reminder %s\").",
                        name, id, content, name);
    return rt_buf_steal(&b, NULL);
}

/* ============================================================== delivery */

/* The platforms the original checks, in order, for deliver=origin without an origin
 * (mattermost added: gateway.md §6.1 makes its home channel a first-class one). */
static const char *const fallback_platforms[] = {"matrix",  "mattermost", "telegram",
                                                 "discord", "slack",      "bluebubbles"};

static void add_target(cron_plan *p, const char *platform, const char *chat, const char *thread)
{
    if (p->n >= CRON_MAX_TARGETS)
        return;
    cron_target *t = &p->t[p->n++];
    t->platform = rt_xstrdup(platform);
    for (char *c = t->platform; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    t->chat_id = chat ? rt_xstrdup(chat) : NULL;
    t->thread_id = thread && *thread ? rt_xstrdup(thread) : NULL;
}

/* origin.chat_id as text (the original does str()). */
static char *origin_chat(const cJSON *origin)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(origin, "chat_id");
    if (cJSON_IsString(c) && *c->valuestring)
        return rt_xstrdup(c->valuestring);
    if (cJSON_IsNumber(c))
        return rt_xasprintf("%lld", (long long)c->valuedouble);
    return NULL;
}

static void plan_explicit(const char *home, cron_plan *p, const char *deliver)
{
    const char *colon = strchr(deliver, ':');
    char *plat = rt_xstrndup(deliver, (size_t)(colon - deliver)), *key = rt_xstrdup(plat);
    for (char *c = key; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    const char *rest = colon + 1;
    char *chat = NULL, *thread = NULL;
    if (!send_parse_ref(key, rest, &chat, &thread)) {
        cJSON *dir = send_directory(home);
        char *resolved = send_resolve_name(dir, key, rest);
        cJSON_Delete(dir);
        if (resolved && !send_parse_ref(key, resolved, &chat, &thread))
            chat = rt_xstrdup(resolved);
        if (!chat)
            chat = rt_xstrdup(rest);
        rt_free(resolved);
    }
    if (!send_platform_known(key))
        p->error = rt_xasprintf("unknown platform '%s'", plat);
    else
        add_target(p, key, chat, thread);
    rt_free(chat);
    rt_free(thread);
    rt_free(plat);
    rt_free(key);
}

void cron__plan(const char *home, const cJSON *job, cron_plan *p)
{
    memset(p, 0, sizeof(*p));
    const char *deliver = jstr(job, "deliver") ? jstr(job, "deliver") : "local";
    p->deliver = rt_xstrdup(deliver);
    const cJSON *origin = cJSON_GetObjectItemCaseSensitive(job, "origin");
    const char *oplat = jstr(origin, "platform");
    char *ochat = origin_chat(origin);
    bool has_origin = oplat && *oplat && ochat;
    if (strcmp(deliver, "local") == 0) {
        p->local = true;
    } else if (strcmp(deliver, "origin") == 0) {
        if (has_origin) {
            add_target(p, oplat, ochat, jstr(origin, "thread_id"));
        } else {
            p->fallback = true;
            for (size_t i = 0; i < RT_ARRAY_LEN(fallback_platforms); i++)
                add_target(p, fallback_platforms[i], NULL, NULL);
        }
    } else if (strchr(deliver, ':')) {
        plan_explicit(home, p, deliver);
    } else if (has_origin && strcmp(oplat, deliver) == 0) {
        add_target(p, oplat, ochat, jstr(origin, "thread_id"));
    } else {
        char *key = rt_xstrdup(deliver);
        for (char *c = key; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (send_platform_known(key)) {
            p->home = true;
            add_target(p, key, NULL, NULL);
        } else {
            p->error = rt_xasprintf("no delivery target resolved for deliver=%s", deliver);
        }
        rt_free(key);
    }
    rt_free(ochat);
}

void cron__plan_fini(cron_plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        rt_free(p->t[i].platform);
        rt_free(p->t[i].chat_id);
        rt_free(p->t[i].thread_id);
    }
    rt_free(p->deliver);
    rt_free(p->error);
    memset(p, 0, sizeof(*p));
}

char *cron__delivery_error(const cron_plan *p, const cron_target *t, int err, const char *errmsg)
{
    if (p->fallback)
        return rt_xasprintf("no delivery target resolved for deliver=%s", p->deliver);
    switch (err) {
    case -ENOENT: return rt_xasprintf("platform '%s' not configured/enabled", t->platform);
    case -EDESTADDRREQ:
        return p->home ? rt_xasprintf("no delivery target resolved for deliver=%s", p->deliver)
                       : rt_xasprintf("delivery error: %s", errmsg ? errmsg : "");
    case -ESRCH: return rt_xasprintf("no gateway is running: cannot deliver to %s", t->platform);
    case -ETIMEDOUT:
        return rt_xasprintf("delivery to %s:%s failed: timed out", t->platform,
                            t->chat_id ? t->chat_id : "home channel");
    default: return rt_xasprintf("delivery error: %s", errmsg ? errmsg : rt_strerror(err));
    }
}
