/*
 * cron_api — what the agent's cron tools and `hermes cron` do with the job store, with the
 * original's result texts (tools/cronjob_tools.py): the `cronjob` tool with its actions
 * (create, list, update, pause, resume, remove, run) as of the gateway baseline, and the
 * three tools of the agent-core baseline that the registry lists (schedule_cronjob,
 * list_cronjobs, remove_cronjob), which keep their own result shapes and texts.
 *
 * Results are JSON text as the original's json.dumps wrote them (indent=2 for results,
 * one line with ensure_ascii off for tool_error).
 *
 * Threads: any thread; blocks on the job store (see cron_jobs.h).
 */
#ifndef CRON_API_H
#define CRON_API_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The `cronjob` tool. args: {action, job_id, prompt, schedule, name, repeat, deliver,
 * include_disabled (default true), skill, skills, model: {provider, model}, provider,
 * base_url, reason, script}. origin: the calling session's {platform, chat_id, chat_name,
 * thread_id}, or NULL. Returns a new string.
 */
char *cron_api(const char *home, const cJSON *args, const cJSON *origin, int64_t now_us);

/* The agent-core baseline tools (same args as their schemas). New strings. */
char *cron_api_schedule(const char *home, const cJSON *args, const cJSON *origin, int64_t now_us);
char *cron_api_list(const char *home, const cJSON *args);
char *cron_api_remove(const char *home, const cJSON *args);

/* The prompt scan (critical patterns only, since cron prompts run unattended with every
 * tool): true and the "Blocked: …" text in msg when prompt must be refused. */
bool cron_prompt_blocked(const char *prompt, char *msg, size_t n);

/* A script path for a job must be relative and stay inside ~/.hermes/scripts/: NULL when
 * it does, else the original's error text (a new string). */
char *cron_script_error(const char *script);

/* "forever", "once", "1/1", "3 times", "2/3" (the original's _repeat_display). */
void cron_repeat_display(const cJSON *job, char *buf, size_t n);

/* The original's _format_job: the job as the tools and the API show it (a new object). */
cJSON *cron_format_job(const cJSON *job);

#endif /* CRON_API_H */
