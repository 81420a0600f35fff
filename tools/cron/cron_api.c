/*
 * cron_api — see cron_api.h.
 */
#include "cron_api.h"

#include "cron_jobs.h"
#include "cron_pyjson.h"
#include "cron_sched.h"
#include "rt_alloc.h"
#include "rt_util.h"
#include "tool_scan.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define ERRLEN 1024

/* ============================================================== helpers */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *name_of(const cJSON *job)
{
    const char *n = jstr(job, "name");
    return n ? n : "";
}

static cJSON *jdup_or_null(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull();
}

/* json.dumps(obj, indent=2), consuming obj. */
static char *dump2(cJSON *obj)
{
    char *s = cron_pyjson(obj, 2, true);
    cJSON_Delete(obj);
    return s;
}

/* tool_error(message, success=False): one line, UTF-8 kept. */
static char *tool_err(const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    cJSON_AddFalseToObject(o, "success");
    char *s = cron_pyjson(o, -1, false);
    cJSON_Delete(o);
    return s;
}

/* json.dumps({"success": False, "error": msg}, indent=2) */
static char *fail2(const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddFalseToObject(o, "success");
    cJSON_AddStringToObject(o, "error", msg);
    return dump2(o);
}

/* An integer argument: a number, or a numeric string (models quote numbers). */
static bool arg_int(const cJSON *args, const char *k, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, k);
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
        *out = (int64_t)v->valuedouble;
        return true;
    }
    return cJSON_IsString(v) && rt_parse_i64(v->valuestring, INT64_MIN, INT64_MAX, out) == 0;
}

static bool arg_bool(const cJSON *args, const char *k, bool def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, k);
    bool b;
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    if (cJSON_IsString(v) && rt_parse_bool(v->valuestring, &b) == 0)
        return b;
    return def;
}

/* _normalize_optional_job_value: stripped (and without trailing '/'), NULL when empty. A
 * new string or NULL. */
static char *opt_value(const char *s, bool strip_slash)
{
    if (!s)
        return NULL;
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && (isspace((unsigned char)s[n - 1]) || (strip_slash && s[n - 1] == '/')))
        n--;
    return n ? rt_xstrndup(s, n) : NULL;
}

void cron_repeat_display(const cJSON *job, char *buf, size_t n)
{
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(job, "repeat");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rep, "times");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(rep, "completed");
    long long done = cJSON_IsNumber(c) ? (long long)c->valuedouble : 0;
    if (!cJSON_IsNumber(t)) {
        snprintf(buf, n, "forever");
        return;
    }
    long long times = (long long)t->valuedouble;
    if (times == 1)
        snprintf(buf, n, done == 0 ? "once" : "1/1");
    else if (done)
        snprintf(buf, n, "%lld/%lld", done, times);
    else
        snprintf(buf, n, "%lld times", times);
}

static cJSON *prompt_preview(const char *prompt)
{
    if (cron_utf8_len(prompt) <= 100)
        return cJSON_CreateString(prompt);
    char *cut = cron_utf8_prefix(prompt, 100);
    char *p = rt_xasprintf("%s...", cut);
    cJSON *v = cJSON_CreateString(p);
    rt_free(cut);
    rt_free(p);
    return v;
}

cJSON *cron_format_job(const cJSON *job)
{
    const char *prompt = jstr(job, "prompt") ? jstr(job, "prompt") : "";
    const cJSON *skills = cJSON_GetObjectItemCaseSensitive(job, "skills");
    const cJSON *first = cJSON_GetArrayItem(skills, 0);
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(job, "enabled");
    bool enabled = !cJSON_IsBool(en) || cJSON_IsTrue(en);
    char rep[64];
    cron_repeat_display(job, rep, sizeof(rep));
    cJSON *r = cJSON_CreateObject();
    cJSON_AddItemToObject(r, "job_id", jdup_or_null(job, "id"));
    cJSON_AddItemToObject(r, "name", jdup_or_null(job, "name"));
    cJSON_AddItemToObject(r, "skill",
                          cJSON_IsString(first) ? cJSON_CreateString(first->valuestring)
                                                : cJSON_CreateNull());
    cJSON_AddItemToObject(r, "skills",
                          cJSON_IsArray(skills) ? cJSON_Duplicate(skills, 1) : cJSON_CreateArray());
    cJSON_AddItemToObject(r, "prompt_preview", prompt_preview(prompt));
    cJSON_AddItemToObject(r, "model", jdup_or_null(job, "model"));
    cJSON_AddItemToObject(r, "provider", jdup_or_null(job, "provider"));
    cJSON_AddItemToObject(r, "base_url", jdup_or_null(job, "base_url"));
    cJSON_AddItemToObject(r, "schedule", jdup_or_null(job, "schedule_display"));
    cJSON_AddStringToObject(r, "repeat", rep);
    cJSON_AddStringToObject(r, "deliver", jstr(job, "deliver") ? jstr(job, "deliver") : "local");
    cJSON_AddItemToObject(r, "next_run_at", jdup_or_null(job, "next_run_at"));
    cJSON_AddItemToObject(r, "last_run_at", jdup_or_null(job, "last_run_at"));
    cJSON_AddItemToObject(r, "last_status", jdup_or_null(job, "last_status"));
    cJSON_AddItemToObject(r, "last_delivery_error", jdup_or_null(job, "last_delivery_error"));
    cJSON_AddBoolToObject(r, "enabled", enabled);
    const char *state = jstr(job, "state");
    cJSON_AddStringToObject(r, "state", state ? state : enabled ? "scheduled" : "paused");
    cJSON_AddItemToObject(r, "paused_at", jdup_or_null(job, "paused_at"));
    cJSON_AddItemToObject(r, "paused_reason", jdup_or_null(job, "paused_reason"));
    if (jstr(job, "script") && *jstr(job, "script"))
        cJSON_AddStringToObject(r, "script", jstr(job, "script"));
    return r;
}

/* ================================================================ checks */

bool cron_prompt_blocked(const char *prompt, char *msg, size_t n)
{
    static const struct {
        const char *utf8;
        unsigned cp;
    } invisible[] = {
        {"\xe2\x80\x8b", 0x200B}, {"\xe2\x80\x8c", 0x200C}, {"\xe2\x80\x8d", 0x200D},
        {"\xe2\x81\xa0", 0x2060}, {"\xef\xbb\xbf", 0xFEFF}, {"\xe2\x80\xaa", 0x202A},
        {"\xe2\x80\xab", 0x202B}, {"\xe2\x80\xac", 0x202C}, {"\xe2\x80\xad", 0x202D},
        {"\xe2\x80\xae", 0x202E},
    };
    if (!prompt)
        return false;
    for (size_t i = 0; i < RT_ARRAY_LEN(invisible); i++) {
        if (strstr(prompt, invisible[i].utf8)) {
            snprintf(msg, n,
                     "Blocked: prompt contains invisible unicode U+%04X (possible injection).",
                     invisible[i].cp);
            return true;
        }
    }
    char ids[256];
    if (!tool_scan(prompt, TOOL_SCAN_CRON, ids, sizeof(ids)))
        return false;
    char *comma = strchr(ids, ',');
    if (comma)
        *comma = '\0';
    snprintf(msg, n,
             "Blocked: prompt matches threat pattern '%s'. Cron prompts must not contain "
             "injection or exfiltration payloads.",
             ids);
    return true;
}

/* Python's repr() of a str, for messages: '…' (or "…" when it holds a single quote). */
static char *py_repr(const char *s)
{
    bool sq = strchr(s, '\'') && !strchr(s, '"');
    return rt_xasprintf(sq ? "\"%s\"" : "'%s'", s);
}

char *cron_script_error(const char *script)
{
    if (!script)
        return NULL;
    char *raw = opt_value(script, false);
    if (!raw)
        return NULL; /* empty clears the field */
    char *rep = py_repr(raw), *msg = NULL;
    if (raw[0] == '/' || raw[0] == '~' || (strlen(raw) >= 2 && raw[1] == ':')) {
        msg = rt_xasprintf("Script path must be relative to ~/.hermes/scripts/. Got absolute or "
                           "home-relative path: %s. Place scripts in ~/.hermes/scripts/ and use "
                           "just the filename.",
                           rep);
    } else {
        /* lexical containment; the scheduler resolves symlinks again before running it */
        int depth = 0;
        bool escapes = false;
        for (const char *p = raw; *p && !escapes;) {
            const char *e = strchr(p, '/');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            if (len == 2 && p[0] == '.' && p[1] == '.')
                escapes = --depth < 0;
            else if (len && !(len == 1 && p[0] == '.'))
                depth++;
            p += len + (e ? 1 : 0);
        }
        if (escapes)
            msg = rt_xasprintf("Script path escapes the scripts directory via traversal: %s", rep);
    }
    rt_free(rep);
    rt_free(raw);
    return msg;
}

/* ========================================================= cronjob actions */

/* _canonical_skills(skill, skills) as an array (new). */
static cJSON *canonical_skills(const cJSON *args)
{
    const cJSON *skills = cJSON_GetObjectItemCaseSensitive(args, "skills");
    const char *skill = jstr(args, "skill");
    cJSON *out = cJSON_CreateArray();
    const cJSON *it = NULL;
    cJSON *tmp = NULL;
    if (!skills || cJSON_IsNull(skills))
        it = skill ? (tmp = cJSON_CreateString(skill)) : NULL;
    else if (cJSON_IsString(skills))
        it = skills;
    bool single = it != NULL;
    if (!single && cJSON_IsArray(skills))
        it = skills->child;
    for (; it; it = single ? NULL : it->next) {
        char *t = cJSON_IsString(it) ? opt_value(it->valuestring, false) : NULL;
        bool dup = !t;
        const cJSON *h;
        cJSON_ArrayForEach(h, out) dup |= t && strcmp(h->valuestring, t) == 0;
        if (!dup)
            cJSON_AddItemToArray(out, cJSON_CreateString(t));
        rt_free(t);
    }
    cJSON_Delete(tmp);
    return out;
}

/* model: {provider, model} (the original's _resolve_model_override, without pinning the
 * configured provider: tools do not read config.yaml). */
static void model_override(const cJSON *args, char **provider, char **model)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(args, "model");
    *provider = *model = NULL;
    if (cJSON_IsObject(m)) {
        *model = opt_value(jstr(m, "model"), false);
        *provider = opt_value(jstr(m, "provider"), false);
    } else if (cJSON_IsString(m)) {
        *model = opt_value(m->valuestring, false);
    }
    if (!*provider)
        *provider = opt_value(jstr(args, "provider"), false);
}

static char *act_create(const char *home, const cJSON *args, const cJSON *origin, int64_t now)
{
    const char *schedule = jstr(args, "schedule"), *prompt = jstr(args, "prompt");
    char err[ERRLEN];
    if (!schedule || !*schedule)
        return tool_err("schedule is required for create");
    cJSON *skills = canonical_skills(args);
    char *out = NULL, *provider = NULL, *model = NULL, *base = NULL, *script = NULL;
    if ((!prompt || !*prompt) && !cJSON_GetArraySize(skills)) {
        out = tool_err("create requires either prompt or at least one skill");
        goto done;
    }
    if (prompt && *prompt && cron_prompt_blocked(prompt, err, sizeof(err))) {
        out = tool_err(err);
        goto done;
    }
    char *serr = cron_script_error(jstr(args, "script"));
    if (serr) {
        out = tool_err(serr);
        rt_free(serr);
        goto done;
    }
    model_override(args, &provider, &model);
    base = opt_value(jstr(args, "base_url"), true);
    script = opt_value(jstr(args, "script"), false);
    int64_t repeat = 0;
    cron_new_job nj = {.prompt = prompt ? prompt : "",
                       .schedule = schedule,
                       .name = jstr(args, "name"),
                       .has_repeat = arg_int(args, "repeat", &repeat),
                       .repeat = repeat,
                       .deliver = jstr(args, "deliver"),
                       .origin = origin,
                       .skills = skills,
                       .model = model,
                       .provider = provider,
                       .base_url = base,
                       .script = script};
    cJSON *job = NULL;
    if (cron_job_create(home, &nj, now, &job, err, sizeof(err))) {
        out = tool_err(err);
        goto done;
    }
    char rep[64];
    cron_repeat_display(job, rep, sizeof(rep));
    cJSON *r = cJSON_CreateObject();
    cJSON_AddTrueToObject(r, "success");
    cJSON_AddItemToObject(r, "job_id", jdup_or_null(job, "id"));
    cJSON_AddItemToObject(r, "name", jdup_or_null(job, "name"));
    cJSON_AddItemToObject(r, "skill", jdup_or_null(job, "skill"));
    cJSON_AddItemToObject(r, "skills", jdup_or_null(job, "skills"));
    cJSON_AddItemToObject(r, "schedule", jdup_or_null(job, "schedule_display"));
    cJSON_AddStringToObject(r, "repeat", rep);
    cJSON_AddItemToObject(r, "deliver", jdup_or_null(job, "deliver"));
    cJSON_AddItemToObject(r, "next_run_at", jdup_or_null(job, "next_run_at"));
    cJSON_AddItemToObject(r, "job", cron_format_job(job));
    char *msg = rt_xasprintf("Cron job '%s' created.", name_of(job));
    cJSON_AddStringToObject(r, "message", msg);
    rt_free(msg);
    cJSON_Delete(job);
    out = dump2(r);
done:
    cJSON_Delete(skills);
    rt_free(provider);
    rt_free(model);
    rt_free(base);
    rt_free(script);
    return out;
}

static char *act_list(const char *home, const cJSON *args)
{
    char err[ERRLEN];
    cJSON *jobs = NULL;
    if (cron_job_list(home, arg_bool(args, "include_disabled", true), &jobs, err, sizeof(err)))
        return tool_err(err);
    cJSON *arr = cJSON_CreateArray();
    const cJSON *j;
    cJSON_ArrayForEach(j, jobs) cJSON_AddItemToArray(arr, cron_format_job(j));
    cJSON_Delete(jobs);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddTrueToObject(r, "success");
    cJSON_AddNumberToObject(r, "count", cJSON_GetArraySize(arr));
    cJSON_AddItemToObject(r, "jobs", arr);
    return dump2(r);
}

static char *job_result(cJSON *job)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddTrueToObject(r, "success");
    cJSON_AddItemToObject(r, "job", cron_format_job(job));
    cJSON_Delete(job);
    return dump2(r);
}

/* The update action's changes, or NULL with *out set to the error result. */
static cJSON *build_updates(const cJSON *args, const cJSON *job, int64_t now, char **out)
{
    char err[ERRLEN];
    cJSON *u = cJSON_CreateObject();
    const char *prompt = jstr(args, "prompt"), *script = jstr(args, "script");
    if (prompt && cron_prompt_blocked(prompt, err, sizeof(err)))
        goto fail;
    if (prompt)
        cJSON_AddStringToObject(u, "prompt", prompt);
    if (jstr(args, "name"))
        cJSON_AddStringToObject(u, "name", jstr(args, "name"));
    if (jstr(args, "deliver"))
        cJSON_AddStringToObject(u, "deliver", jstr(args, "deliver"));
    if (cJSON_GetObjectItemCaseSensitive(args, "skills") || jstr(args, "skill")) {
        cJSON *sk = canonical_skills(args);
        const cJSON *first = cJSON_GetArrayItem(sk, 0);
        cJSON_AddItemToObject(u, "skill",
                              first ? cJSON_CreateString(first->valuestring) : cJSON_CreateNull());
        cJSON_AddItemToObject(u, "skills", sk);
    }
    char *provider, *model;
    model_override(args, &provider, &model);
    if (cJSON_GetObjectItemCaseSensitive(args, "model"))
        cJSON_AddItemToObject(u, "model", model ? cJSON_CreateString(model) : cJSON_CreateNull());
    if (provider)
        cJSON_AddStringToObject(u, "provider", provider);
    rt_free(provider);
    rt_free(model);
    if (jstr(args, "base_url")) {
        char *b = opt_value(jstr(args, "base_url"), true);
        cJSON_AddItemToObject(u, "base_url", b ? cJSON_CreateString(b) : cJSON_CreateNull());
        rt_free(b);
    }
    if (script) {
        char *serr = cron_script_error(script), *s = opt_value(script, false);
        if (serr) {
            snprintf(err, sizeof(err), "%s", serr);
            rt_free(serr);
            rt_free(s);
            goto fail;
        }
        cJSON_AddItemToObject(u, "script", s ? cJSON_CreateString(s) : cJSON_CreateNull());
        rt_free(s);
    }
    int64_t repeat;
    if (arg_int(args, "repeat", &repeat)) {
        cJSON *rs = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(job, "repeat"), 1);
        if (!cJSON_IsObject(rs)) {
            cJSON_Delete(rs);
            rs = cJSON_CreateObject();
        }
        cJSON *t = repeat <= 0 ? cJSON_CreateNull() : cJSON_CreateNumber((double)repeat);
        if (cJSON_GetObjectItemCaseSensitive(rs, "times"))
            cJSON_ReplaceItemInObjectCaseSensitive(rs, "times", t);
        else
            cJSON_AddItemToObject(rs, "times", t);
        cJSON_AddItemToObject(u, "repeat", rs);
    }
    const char *schedule = jstr(args, "schedule");
    if (schedule) {
        cJSON *parsed = cron_parse_schedule(schedule, now, err, sizeof(err));
        if (!parsed)
            goto fail;
        const char *disp = jstr(parsed, "display");
        cJSON_AddStringToObject(u, "schedule_display", disp ? disp : schedule);
        cJSON_AddItemToObject(u, "schedule", parsed);
        const char *state = jstr(job, "state");
        if (!state || strcmp(state, "paused") != 0) {
            cJSON_AddStringToObject(u, "state", "scheduled");
            cJSON_AddTrueToObject(u, "enabled");
        }
    }
    if (!u->child) {
        snprintf(err, sizeof(err), "No updates provided.");
        goto fail;
    }
    return u;
fail:
    cJSON_Delete(u);
    *out = tool_err(err);
    return NULL;
}

static char *act_on_job(const char *home, const char *action, const char *raw, const cJSON *args,
                        int64_t now)
{
    char err[ERRLEN];
    const char *id = jstr(args, "job_id");
    if (!id || !*id) {
        snprintf(err, sizeof(err), "job_id is required for action '%s'", action);
        return tool_err(err);
    }
    cJSON *job = NULL;
    int r = cron_job_get(home, id, &job, err, sizeof(err));
    if (r == -ENOENT) {
        snprintf(err, sizeof(err),
                 "Job with ID '%s' not found. Use cronjob(action='list') to inspect jobs.", id);
        return fail2(err);
    }
    if (r)
        return tool_err(err);
    char *out = NULL;
    cJSON *updated = NULL;
    if (strcmp(action, "remove") == 0) {
        if (cron_job_remove(home, id, err, sizeof(err))) {
            char m[ERRLEN + 64];
            snprintf(m, sizeof(m), "Failed to remove job '%s'", id);
            out = tool_err(m);
        } else {
            cJSON *o = cJSON_CreateObject(), *rm;
            char *msg = rt_xasprintf("Cron job '%s' removed.", name_of(job));
            cJSON_AddTrueToObject(o, "success");
            cJSON_AddStringToObject(o, "message", msg);
            rm = cJSON_AddObjectToObject(o, "removed_job");
            cJSON_AddStringToObject(rm, "id", id);
            cJSON_AddItemToObject(rm, "name", jdup_or_null(job, "name"));
            cJSON_AddItemToObject(rm, "schedule", jdup_or_null(job, "schedule_display"));
            rt_free(msg);
            out = dump2(o);
        }
    } else if (strcmp(action, "pause") == 0) {
        r = cron_job_pause(home, id, jstr(args, "reason"), now, &updated, err, sizeof(err));
    } else if (strcmp(action, "resume") == 0) {
        r = cron_job_resume(home, id, now, &updated, err, sizeof(err));
    } else if (strcmp(action, "run") == 0 || strcmp(action, "run_now") == 0 ||
               strcmp(action, "trigger") == 0) {
        r = cron_job_trigger(home, id, now, &updated, err, sizeof(err));
    } else if (strcmp(action, "update") == 0) {
        cJSON *u = build_updates(args, job, now, &out);
        if (u) {
            r = cron_job_update(home, id, u, now, &updated, err, sizeof(err));
            cJSON_Delete(u);
        }
    } else {
        snprintf(err, sizeof(err), "Unknown cron action '%s'", raw);
        out = tool_err(err);
    }
    cJSON_Delete(job);
    if (out)
        return out;
    return r ? tool_err(err) : job_result(updated);
}

char *cron_api(const char *home, const cJSON *args, const cJSON *origin, int64_t now_us)
{
    const char *raw = jstr(args, "action") ? jstr(args, "action") : "";
    char *action = opt_value(raw, false), *out;
    for (char *c = action; c && *c; c++)
        *c = (char)tolower((unsigned char)*c);
    const char *a = action ? action : "";
    if (strcmp(a, "create") == 0)
        out = act_create(home, args, origin, now_us);
    else if (strcmp(a, "list") == 0)
        out = act_list(home, args);
    else
        out = act_on_job(home, a, raw, args, now_us);
    rt_free(action);
    return out;
}

/* ========================================================== the baseline tools */

char *cron_api_schedule(const char *home, const cJSON *args, const cJSON *origin, int64_t now_us)
{
    char err[ERRLEN];
    const char *prompt = jstr(args, "prompt") ? jstr(args, "prompt") : "";
    const char *schedule = jstr(args, "schedule") ? jstr(args, "schedule") : "";
    if (cron_prompt_blocked(prompt, err, sizeof(err)))
        return fail2(err);
    int64_t repeat = 0;
    cron_new_job nj = {.prompt = prompt,
                       .schedule = schedule,
                       .name = jstr(args, "name"),
                       .has_repeat = arg_int(args, "repeat", &repeat),
                       .repeat = repeat,
                       .deliver = jstr(args, "deliver"),
                       .origin = origin};
    cJSON *job = NULL;
    if (cron_job_create(home, &nj, now_us, &job, err, sizeof(err)))
        return fail2(err);
    const cJSON *t =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(job, "repeat"), "times");
    char rep[64];
    if (!cJSON_IsNumber(t))
        snprintf(rep, sizeof(rep), "forever");
    else if (t->valuedouble == 1)
        snprintf(rep, sizeof(rep), "once");
    else
        snprintf(rep, sizeof(rep), "%lld times", (long long)t->valuedouble);
    const char *deliver = jstr(job, "deliver") ? jstr(job, "deliver") : "local";
    const char *next = jstr(job, "next_run_at");
    cJSON *r = cJSON_CreateObject();
    cJSON_AddTrueToObject(r, "success");
    cJSON_AddItemToObject(r, "job_id", jdup_or_null(job, "id"));
    cJSON_AddItemToObject(r, "name", jdup_or_null(job, "name"));
    cJSON_AddItemToObject(r, "schedule", jdup_or_null(job, "schedule_display"));
    cJSON_AddStringToObject(r, "repeat", rep);
    cJSON_AddStringToObject(r, "deliver", deliver);
    cJSON_AddItemToObject(r, "next_run_at", jdup_or_null(job, "next_run_at"));
    char *msg = rt_xasprintf("Cronjob '%s' created. It will run %s, deliver to %s, next at %s.",
                             name_of(job), rep, deliver, next ? next : "None");
    cJSON_AddStringToObject(r, "message", msg);
    rt_free(msg);
    cJSON_Delete(job);
    return dump2(r);
}

char *cron_api_list(const char *home, const cJSON *args)
{
    char err[ERRLEN];
    cJSON *jobs = NULL;
    if (cron_job_list(home, arg_bool(args, "include_disabled", false), &jobs, err, sizeof(err)))
        return fail2(err);
    cJSON *arr = cJSON_CreateArray();
    const cJSON *j;
    cJSON_ArrayForEach(j, jobs)
    {
        const cJSON *rep = cJSON_GetObjectItemCaseSensitive(j, "repeat");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(rep, "times");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(rep, "completed");
        char rs[64];
        if (!cJSON_IsNumber(t))
            snprintf(rs, sizeof(rs), "forever");
        else
            snprintf(rs, sizeof(rs), "%lld/%lld",
                     cJSON_IsNumber(c) ? (long long)c->valuedouble : 0LL,
                     (long long)t->valuedouble);
        const cJSON *en = cJSON_GetObjectItemCaseSensitive(j, "enabled");
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "job_id", jdup_or_null(j, "id"));
        cJSON_AddItemToObject(o, "name", jdup_or_null(j, "name"));
        cJSON_AddItemToObject(o, "prompt_preview",
                              prompt_preview(jstr(j, "prompt") ? jstr(j, "prompt") : ""));
        cJSON_AddItemToObject(o, "schedule", jdup_or_null(j, "schedule_display"));
        cJSON_AddStringToObject(o, "repeat", rs);
        cJSON_AddStringToObject(o, "deliver", jstr(j, "deliver") ? jstr(j, "deliver") : "local");
        cJSON_AddItemToObject(o, "next_run_at", jdup_or_null(j, "next_run_at"));
        cJSON_AddItemToObject(o, "last_run_at", jdup_or_null(j, "last_run_at"));
        cJSON_AddItemToObject(o, "last_status", jdup_or_null(j, "last_status"));
        cJSON_AddBoolToObject(o, "enabled", !cJSON_IsBool(en) || cJSON_IsTrue(en));
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_Delete(jobs);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddTrueToObject(r, "success");
    cJSON_AddNumberToObject(r, "count", cJSON_GetArraySize(arr));
    cJSON_AddItemToObject(r, "jobs", arr);
    return dump2(r);
}

char *cron_api_remove(const char *home, const cJSON *args)
{
    char err[ERRLEN];
    const char *id = jstr(args, "job_id") ? jstr(args, "job_id") : "";
    cJSON *job = NULL;
    int r = cron_job_get(home, id, &job, err, sizeof(err));
    if (r == -ENOENT) {
        snprintf(err, sizeof(err),
                 "Job with ID '%s' not found. Use list_cronjobs to see available jobs.", id);
        return fail2(err);
    }
    if (r)
        return fail2(err);
    if (cron_job_remove(home, id, err, sizeof(err))) {
        cJSON_Delete(job);
        char m[ERRLEN + 64];
        snprintf(m, sizeof(m), "Failed to remove job '%s'", id);
        return fail2(m);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "success");
    char *msg = rt_xasprintf("Cronjob '%s' (ID: %s) has been removed.", name_of(job), id);
    cJSON_AddStringToObject(o, "message", msg);
    rt_free(msg);
    cJSON *rm = cJSON_AddObjectToObject(o, "removed_job");
    cJSON_AddStringToObject(rm, "id", id);
    cJSON_AddItemToObject(rm, "name", jdup_or_null(job, "name"));
    cJSON_AddItemToObject(rm, "schedule", jdup_or_null(job, "schedule_display"));
    cJSON_Delete(job);
    return dump2(o);
}
