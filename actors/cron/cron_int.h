/*
 * cron_int — what the cron actor (cron_actor.c) builds with the pure helpers of cron_run.c:
 * a job's prompt, its run report, the delivered text and where it goes. Internal to
 * actors/cron.
 *
 * Threads: any thread; cron__build_prompt and cron__script_path read files (the cron actor
 * is detached, so it may).
 */
#ifndef CRON_INT_H
#define CRON_INT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The fixed hint every cron prompt starts with (the original's cron_hint). */
extern const char cron__hint[];

/*
 * The original's _build_job_prompt: an optional script block (script_ok: the "## Script
 * Output" / "[Script ran successfully but produced no output.]" forms; else "## Script
 * Error"), the cron hint, the job's prompt, and its skills loaded from
 * <home>/skills/.../<name>/SKILL.md (missing ones announced). has_script false: no script
 * block. New string.
 */
char *cron__build_prompt(const char *home, const cJSON *job, bool has_script, bool script_ok,
                         const char *script_output);

/*
 * Where a job's script runs from: *path (new string) is the resolved file inside
 * <home>/scripts/ (created if missing). Returns 0, or -1 with *why (new string) the
 * original's text ("Blocked: script path resolves outside the scripts directory (…): '…'",
 * "Script not found: …", "Script path is not a file: …").
 */
int cron__script_path(const char *home, const char *script, char **path, char **why);

/* The script result as the original's _run_job_script phrases it (stdout/stderr already
 * stripped and redacted by the caller). ok false: a failure text. New string. */
char *cron__script_result(int exit_code, int term_signal, const char *out, const char *err,
                          bool *ok);

/* The run report (cron/output/<id>/<ts>.md). ok: "## Response" with text (empty:
 * "(No response generated)"); else "(FAILED)" and "## Error" with text. New string. */
char *cron__output_doc(const cJSON *job, const char *prompt, bool ok, const char *text,
                       int64_t now_us);

/* "Cronjob Response: <name>\n(job_id: <id>)\n-------------\n\n<content>\n\nTo stop or
 * manage this job, send me a new message (e.g. \"stop reminder <name>\")." New string. */
char *cron__wrap(const cJSON *job, const char *content);

/* One place to try delivering to. */
typedef struct cron_target {
    char *platform;
    char *chat_id;   /* NULL: the platform's home channel */
    char *thread_id; /* or NULL */
} cron_target;

#define CRON_MAX_TARGETS 8

/* Where a job's output goes (gateway.md §6.5, with the home-channel fixes of §6.1): the
 * targets to try in order (the first success wins), or none. */
typedef struct cron_plan {
    cron_target t[CRON_MAX_TARGETS];
    size_t n;
    bool local;    /* deliver=local: nothing to do, not an error */
    bool fallback; /* deliver=origin without an origin: t[] are home channels to try */
    bool home;     /* a bare platform: t[0] is its home channel */
    char *deliver; /* the job's deliver value, for messages */
    char *error;   /* nothing to try: the last_delivery_error text (new string) */
} cron_plan;

void cron__plan(const char *home, const cJSON *job, cron_plan *p);
void cron__plan_fini(cron_plan *p);

/* The last_delivery_error for a failed attempt at t (router err, its errmsg), or for the
 * whole plan when every target failed. New string. */
char *cron__delivery_error(const cron_plan *p, const cron_target *t, int err, const char *errmsg);

#endif /* CRON_INT_H */
