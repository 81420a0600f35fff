/*
 * cli_cron — `hermes cron list [--all] | status | add <schedule> <prompt…> [--name N]
 * [--deliver D] [--repeat N] | remove <job_id>` (agent-core §10.1, the original's
 * hermes_cli/cron.py), and the chat REPL's `/cron [list | add <schedule> <prompt> | remove
 * <id>]` (cli_cron_slash, the original's cli.py texts). Both work on ~/.hermes/cron/jobs.json
 * through the job store (tools/cron), the same store the agent's tools and the gateway's
 * scheduler use, under its lock, so they are safe while the gateway runs.
 *
 * Jobs only fire while a gateway runs (it ticks every 60 s); `cron status` says whether one
 * does (gateway.pid).
 *
 * Exit status: 0 done, 1 failed (not found, bad schedule, store error), 2 usage error.
 */
#include "cli.h"

#include "cron_api.h"
#include "cron_jobs.h"
#include "cron_sched.h"
#include "hm_config.h"
#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The entry points; declared here until cli.h lists them. */
int cli_cron(int argc, char **argv);
int cli_cron_slash(const char *args, FILE *out);

static const char *jstr(const cJSON *o, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static void cron_usage(FILE *f)
{
    fprintf(f, "usage: hermes cron {list,status,add,remove} ...\n"
               "\n"
               "  hermes cron list [--all]                  List scheduled jobs (--all: with "
               "disabled)\n"
               "  hermes cron status                        Is the gateway (the scheduler) "
               "running?\n"
               "  hermes cron add <schedule> <prompt...>    Schedule a job\n"
               "        [--name NAME] [--deliver TARGET] [--repeat N]\n"
               "  hermes cron remove <job_id>               Remove a job\n"
               "\n"
               "Schedules: '30m', '2h', '1d' (once, after a delay); 'every 30m', 'every 2h'\n"
               "(recurring); '0 9 * * *' (cron expression); '2026-02-03T14:00:00' (once at).\n");
}

/* The pid of the running gateway (gateway.pid, JSON {"pid": …} or a bare number), or 0. */
static long gateway_pid(const char *home)
{
    char *path = hm_config_file(home, "gateway.pid");
    char *text = NULL;
    size_t len = 0;
    long pid = 0;
    if (hm_read_file(path, 64 * 1024, &text, &len) == 0) {
        cJSON *j = cJSON_Parse(text);
        int64_t bare = 0;
        if (cJSON_IsObject(j))
            pid = (long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "pid"));
        else if (rt_parse_i64(text, 1, INT32_MAX, &bare) == 0)
            pid = (long)bare;
        cJSON_Delete(j);
        rt_free(text);
    }
    rt_free(path);
    if (pid <= 0 || pid > INT32_MAX || (kill((pid_t)pid, 0) != 0 && errno != EPERM))
        return 0;
    return pid;
}

static int load_jobs(const char *home, bool all, cJSON **jobs)
{
    char err[512];
    int r = cron_job_list(home, all, jobs, err, sizeof(err));
    if (r)
        cli_err("%s", err);
    return r;
}

static void repeat_str(const cJSON *job, const char *forever, char *buf, size_t n)
{
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(job, "repeat");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rep, "times");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(rep, "completed");
    if (cJSON_IsNumber(t) && t->valuedouble > 0)
        snprintf(buf, n, "%lld/%lld", (long long)(cJSON_IsNumber(c) ? c->valuedouble : 0),
                 (long long)t->valuedouble);
    else
        snprintf(buf, n, "%s", forever);
}

static int cmd_list(const char *home, bool all)
{
    cJSON *jobs = NULL;
    if (load_jobs(home, all, &jobs))
        return 1;
    if (!cJSON_GetArraySize(jobs)) {
        printf("No scheduled jobs.\n"
               "Create one with the /cron add command in chat, or via Telegram.\n");
        cJSON_Delete(jobs);
        return 0;
    }
    /* the original's box, 73 columns */
    static const char title[] =
        "                         Scheduled Jobs                                  ";
    printf("\n\xe2\x94\x8c");
    for (size_t i = 0; i < sizeof(title) - 1; i++)
        printf("\xe2\x94\x80");
    printf("\xe2\x94\x90\n\xe2\x94\x82%s\xe2\x94\x82\n\xe2\x94\x94", title);
    for (size_t i = 0; i < sizeof(title) - 1; i++)
        printf("\xe2\x94\x80");
    printf("\xe2\x94\x98\n\n");
    const cJSON *j;
    cJSON_ArrayForEach(j, jobs)
    {
        char rep[64];
        repeat_str(j, "\xe2\x88\x9e", rep, sizeof(rep));
        const cJSON *en = cJSON_GetObjectItemCaseSensitive(j, "enabled");
        const char *id = jstr(j, "id") ? jstr(j, "id") : "?";
        const char *next = jstr(j, "next_run_at");
        /* the whole id (the original cut it to 8 characters, which remove does not take) */
        printf("  %s %s\n", id, cJSON_IsFalse(en) ? "[disabled]" : "[active]");
        printf("    Name:      %s\n", jstr(j, "name") ? jstr(j, "name") : "(unnamed)");
        printf("    Schedule:  %s\n",
               jstr(j, "schedule_display") ? jstr(j, "schedule_display") : "?");
        printf("    Repeat:    %s\n", rep);
        printf("    Next run:  %s\n", next ? next : "None");
        printf("    Deliver:   %s\n", jstr(j, "deliver") ? jstr(j, "deliver") : "local");
        const char *last = jstr(j, "last_run_at");
        if (last)
            printf("    Last run:  %s (%s)\n", last,
                   jstr(j, "last_status") ? jstr(j, "last_status") : "?");
        printf("\n");
    }
    cJSON_Delete(jobs);
    if (!gateway_pid(home))
        printf("  \xe2\x9a\xa0  Gateway is not running \xe2\x80\x94 jobs won't fire "
               "automatically.\n"
               "     Start it with: hermes gateway run\n\n");
    return 0;
}

static int cmd_status(const char *home)
{
    printf("\n");
    long pid = gateway_pid(home);
    if (pid) {
        printf("\xe2\x9c\x93 Gateway is running \xe2\x80\x94 cron jobs will fire automatically\n");
        printf("  PID: %ld\n", pid);
    } else {
        printf("\xe2\x9c\x97 Gateway is not running \xe2\x80\x94 cron jobs will NOT fire\n\n");
        printf("  To enable automatic execution:\n");
        printf("    hermes gateway run       # Run in the foreground\n");
        printf("    hermes gateway start     # Or in the background\n");
    }
    printf("\n");
    cJSON *jobs = NULL;
    if (load_jobs(home, false, &jobs))
        return 1;
    int n = cJSON_GetArraySize(jobs);
    if (n) {
        const char *first = NULL;
        int64_t first_us = INT64_MAX;
        const cJSON *j;
        cJSON_ArrayForEach(j, jobs)
        {
            const char *nx = jstr(j, "next_run_at");
            int64_t us;
            int32_t off;
            if (nx && cron_iso_parse(nx, &us, &off, NULL) == 0 && us < first_us) {
                first_us = us;
                first = nx;
            }
        }
        printf("  %d active job(s)\n", n);
        if (first)
            printf("  Next run: %s\n", first);
    } else {
        printf("  No active jobs\n");
    }
    printf("\n");
    cJSON_Delete(jobs);
    return 0;
}

static int cmd_add(const char *home, int argc, char **argv)
{
    const char *name = NULL, *deliver = NULL, *schedule = NULL;
    int64_t repeat = 0;
    bool has_repeat = false;
    char prompt[16384] = "";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "--name") == 0 || strcmp(a, "--deliver") == 0 ||
             strcmp(a, "--repeat") == 0) &&
            i + 1 >= argc) {
            cli_err("%s needs a value", a);
            return 2;
        }
        if (strcmp(a, "--name") == 0) {
            name = argv[++i];
        } else if (strcmp(a, "--deliver") == 0) {
            deliver = argv[++i];
        } else if (strcmp(a, "--repeat") == 0) {
            if (rt_parse_i64(argv[++i], 0, INT32_MAX, &repeat)) {
                cli_err("--repeat wants a whole number, not '%s'", argv[i]);
                return 2;
            }
            has_repeat = true;
        } else if (!schedule) {
            schedule = a;
        } else {
            size_t l = strlen(prompt);
            if (l + strlen(a) + 2 > sizeof(prompt)) {
                cli_err("the prompt is too long (at most %zu bytes)", sizeof(prompt) - 1);
                return 2;
            }
            snprintf(prompt + l, sizeof(prompt) - l, "%s%s", l ? " " : "", a);
        }
    }
    if (!schedule || !*prompt) {
        cron_usage(stderr);
        return 2;
    }
    char err[512];
    if (cron_prompt_blocked(prompt, err, sizeof(err))) {
        cli_err("%s", err);
        return 1;
    }
    cron_new_job nj = {.prompt = prompt,
                       .schedule = schedule,
                       .name = name,
                       .has_repeat = has_repeat,
                       .repeat = repeat,
                       .deliver = deliver};
    cJSON *job = NULL;
    if (cron_job_create(home, &nj, cron_now_us(), &job, err, sizeof(err))) {
        cli_err("Failed to create job: %s", err);
        return 1;
    }
    char rep[64];
    repeat_str(job, "forever", rep, sizeof(rep));
    printf("Created job: %s\n", jstr(job, "id"));
    printf("  Name:     %s\n", jstr(job, "name") ? jstr(job, "name") : "");
    printf("  Schedule: %s\n", jstr(job, "schedule_display") ? jstr(job, "schedule_display") : "");
    printf("  Repeat:   %s\n", rep);
    printf("  Deliver:  %s\n", jstr(job, "deliver") ? jstr(job, "deliver") : "local");
    printf("  Next run: %s\n", jstr(job, "next_run_at") ? jstr(job, "next_run_at") : "None");
    cJSON_Delete(job);
    if (!gateway_pid(home))
        printf("Note: the gateway is not running; start it (hermes gateway run) for jobs to "
               "fire.\n");
    return 0;
}

static int cmd_remove(const char *home, const char *id)
{
    char err[512];
    cJSON *job = NULL;
    int r = cron_job_get(home, id, &job, err, sizeof(err));
    if (r == -ENOENT) {
        cli_err("Job not found: %s", id);
        return 1;
    }
    if (r == 0)
        r = cron_job_remove(home, id, err, sizeof(err));
    if (r) {
        cli_err("%s", err);
        cJSON_Delete(job);
        return 1;
    }
    printf("Removed job: %s (%s)\n", jstr(job, "name") ? jstr(job, "name") : "", id);
    cJSON_Delete(job);
    return 0;
}

int cli_cron(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        cron_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    char *home = hm_config_home();
    const char *sub = argv[1];
    int rc;
    if (strcmp(sub, "list") == 0 || strcmp(sub, "ls") == 0) {
        bool all = false;
        rc = 0;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--all") == 0 || strcmp(argv[i], "-a") == 0) {
                all = true;
            } else {
                cli_err("cron list: unknown option '%s'", argv[i]);
                rc = 2;
            }
        }
        if (!rc)
            rc = cmd_list(home, all);
    } else if (strcmp(sub, "status") == 0) {
        rc = cmd_status(home);
    } else if (strcmp(sub, "add") == 0 || strcmp(sub, "create") == 0) {
        rc = cmd_add(home, argc - 2, argv + 2);
    } else if (strcmp(sub, "remove") == 0 || strcmp(sub, "rm") == 0 || strcmp(sub, "delete") == 0) {
        if (argc != 3) {
            cron_usage(stderr);
            rc = 2;
        } else {
            rc = cmd_remove(home, argv[2]);
        }
    } else {
        cli_err("unknown cron command '%s'", sub);
        cron_usage(stderr);
        rc = 2;
    }
    rt_free(home);
    return rc;
}

/* ================================================================ /cron */

static void slash_help(FILE *out, const cJSON *jobs)
{
    fprintf(out, "\n+------------------------------------------------------------+\n"
                 "|                  (^_^) Scheduled Tasks                   |\n"
                 "+------------------------------------------------------------+\n\n"
                 "  Commands:\n"
                 "    /cron                     - List scheduled jobs\n"
                 "    /cron list                - List scheduled jobs\n"
                 "    /cron add <schedule> <prompt>  - Add a new job\n"
                 "    /cron remove <job_id>     - Remove a job\n\n"
                 "  Schedule formats:\n"
                 "    30m, 2h, 1d              - One-shot delay\n"
                 "    \"every 30m\", \"every 2h\"  - Recurring interval\n"
                 "    \"0 9 * * *\"              - Cron expression\n\n");
    if (!cJSON_GetArraySize(jobs)) {
        fprintf(out, "  No scheduled jobs. Use '/cron add' to create one.\n\n");
        return;
    }
    fprintf(out, "  Current Jobs:\n  -------------------------------------------------------\n");
    const cJSON *j;
    cJSON_ArrayForEach(j, jobs)
    {
        char rep[64];
        repeat_str(j, "forever", rep, sizeof(rep));
        const char *sd = jstr(j, "schedule_display") ? jstr(j, "schedule_display") : "";
        fprintf(out, "    %-12.12s | %-15s | %-8s\n", jstr(j, "id") ? jstr(j, "id") : "", sd, rep);
        const char *p = jstr(j, "prompt") ? jstr(j, "prompt") : "";
        char *pre = cron_utf8_prefix(p, 45);
        fprintf(out, "      %s%s\n", pre, cron_utf8_len(p) > 45 ? "..." : "");
        rt_free(pre);
        const char *next = jstr(j, "next_run_at");
        if (next && strlen(next) >= 16)
            fprintf(out, "      Next: %.10s %.5s\n", next, next + 11);
        fprintf(out, "\n");
    }
    fprintf(out, "\n");
}

static void slash_list(FILE *out, const cJSON *jobs)
{
    if (!cJSON_GetArraySize(jobs)) {
        fprintf(out, "(._.) No scheduled jobs.\n");
        return;
    }
    fprintf(out, "\nScheduled Jobs:\n------------------------------------------------------------"
                 "----------\n");
    const cJSON *j;
    cJSON_ArrayForEach(j, jobs)
    {
        char rep[64];
        repeat_str(j, "forever", rep, sizeof(rep));
        const char *p = jstr(j, "prompt") ? jstr(j, "prompt") : "";
        char *pre = cron_utf8_prefix(p, 100);
        const char *next = jstr(j, "next_run_at");
        fprintf(out, "  ID: %s\n  Name: %s\n  Schedule: %s (%s)\n  Next run: %s\n  Prompt: %s%s\n",
                jstr(j, "id") ? jstr(j, "id") : "", jstr(j, "name") ? jstr(j, "name") : "",
                jstr(j, "schedule_display") ? jstr(j, "schedule_display") : "", rep,
                next ? next : "N/A", pre, cron_utf8_len(p) > 100 ? "..." : "");
        rt_free(pre);
        if (jstr(j, "last_run_at"))
            fprintf(out, "  Last run: %s (%s)\n", jstr(j, "last_run_at"),
                    jstr(j, "last_status") ? jstr(j, "last_status") : "?");
        fprintf(out, "\n");
    }
}

static void slash_add(FILE *out, const char *home, const char *rest)
{
    while (isspace((unsigned char)*rest))
        rest++;
    if (!*rest) {
        fprintf(out, "(._.) Usage: /cron add <schedule> <prompt>\n"
                     "  Example: /cron add 30m Remind me to take a break\n"
                     "  Example: /cron add \"every 2h\" Check server status at 192.168.1.1\n");
        return;
    }
    char *schedule;
    const char *prompt;
    if (*rest == '"') {
        const char *close = strchr(rest + 1, '"');
        if (!close) {
            fprintf(out, "(._.) Unmatched quote in schedule\n");
            return;
        }
        schedule = rt_xstrndup(rest + 1, (size_t)(close - rest - 1));
        prompt = close + 1;
    } else {
        size_t n = strcspn(rest, " \t\r\n");
        schedule = rt_xstrndup(rest, n);
        prompt = rest + n;
    }
    while (isspace((unsigned char)*prompt))
        prompt++;
    size_t plen = strlen(prompt);
    while (plen && isspace((unsigned char)prompt[plen - 1]))
        plen--;
    if (!plen) {
        fprintf(out, "(._.) Please provide a prompt for the job\n");
        rt_free(schedule);
        return;
    }
    char *p = rt_xstrndup(prompt, plen);
    char err[512];
    cJSON *job = NULL;
    cron_new_job nj = {.prompt = p, .schedule = schedule};
    if (cron_prompt_blocked(p, err, sizeof(err)) ||
        cron_job_create(home, &nj, cron_now_us(), &job, err, sizeof(err))) {
        fprintf(out, "(x_x) Failed to create job: %s\n", err);
    } else {
        const char *next = jstr(job, "next_run_at");
        fprintf(out, "(^_^)b Created job: %s\n  Schedule: %s\n  Next run: %s\n", jstr(job, "id"),
                jstr(job, "schedule_display") ? jstr(job, "schedule_display") : "",
                next ? next : "None");
    }
    cJSON_Delete(job);
    rt_free(p);
    rt_free(schedule);
}

static void slash_remove(FILE *out, const char *home, const char *rest)
{
    while (isspace((unsigned char)*rest))
        rest++;
    size_t n = strlen(rest);
    while (n && isspace((unsigned char)rest[n - 1]))
        n--;
    if (!n) {
        fprintf(out, "(._.) Usage: /cron remove <job_id>\n");
        return;
    }
    char *id = rt_xstrndup(rest, n), err[512];
    cJSON *job = NULL;
    int r = cron_job_get(home, id, &job, err, sizeof(err));
    if (r == 0)
        r = cron_job_remove(home, id, err, sizeof(err));
    if (r == -ENOENT)
        fprintf(out, "(._.) Job not found: %s\n", id);
    else if (r)
        fprintf(out, "(x_x) %s\n", err);
    else
        fprintf(out, "(^_^)b Removed job: %s (%s)\n", jstr(job, "name") ? jstr(job, "name") : "",
                id);
    cJSON_Delete(job);
    rt_free(id);
}

int cli_cron_slash(const char *args, FILE *out)
{
    char *home = hm_config_home();
    const char *p = args ? args : "";
    while (isspace((unsigned char)*p))
        p++;
    size_t n = strcspn(p, " \t\r\n");
    char sub[16] = "";
    if (n < sizeof(sub))
        for (size_t i = 0; i < n; i++)
            sub[i] = (char)tolower((unsigned char)p[i]);
    const char *rest = p + n;
    int rc = 0;
    if (n == 0 || strcmp(sub, "list") == 0) {
        cJSON *jobs = NULL;
        char err[512];
        if (cron_job_list(home, false, &jobs, err, sizeof(err))) {
            fprintf(out, "(x_x) %s\n", err);
            rc = 1;
        } else if (n == 0) {
            slash_help(out, jobs);
        } else {
            slash_list(out, jobs);
        }
        cJSON_Delete(jobs);
    } else if (strcmp(sub, "add") == 0) {
        slash_add(out, home, rest);
    } else if (strcmp(sub, "remove") == 0 || strcmp(sub, "rm") == 0 || strcmp(sub, "delete") == 0) {
        slash_remove(out, home, rest);
    } else {
        fprintf(out, "(._.) Unknown cron command: %.*s\n  Available: list, add, remove\n", (int)n,
                p);
        rc = 1;
    }
    rt_free(home);
    return rc;
}
