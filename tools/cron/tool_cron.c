/*
 * tool_cron — the agent's cron tools (agent-core §3.3/§3.5): schedule_cronjob, list_cronjobs
 * and remove_cronjob (the names the registry lists, with the baseline's schemas and
 * results), and the later single `cronjob` tool with actions (gateway baseline). The work is
 * cron_api's; these are thin wrappers.
 *
 * The origin of a job (where "origin" delivery goes) is the calling session's chat: taken
 * from the gateway's sessions.json entry for the session key (platform, chat_id, chat_name,
 * thread_id). A CLI session has none, so its jobs default to "local" delivery, as in the
 * original.
 *
 * The tools touch files and take a file lock, so they run on a detached actor (blocking).
 * They are not offered to cron runs themselves (platform "cron"): a cron job must not
 * schedule more cron jobs.
 */
#include "cron_api.h"
#include "cron_sched.h"
#include "rt_alloc.h"
#include "tool.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SESSIONS_MAX_BYTES (64u << 20)

/* The session's origin from sessions.json, or NULL. */
static cJSON *session_origin(const tool_env *env)
{
    if (!env || !env->hermes_home || !env->session_key)
        return NULL;
    char *path = rt_xasprintf("%s/sessions/sessions.json", env->hermes_home);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    rt_free(path);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *text = NULL;
    if (fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size < (off_t)SESSIONS_MAX_BYTES) {
        text = rt_xmalloc((size_t)st.st_size + 1);
        ssize_t n = read(fd, text, (size_t)st.st_size);
        text[n > 0 ? n : 0] = '\0';
    }
    close(fd);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    rt_free(text);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, env->session_key);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(e, "origin");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "platform");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "chat_id");
    cJSON *origin = NULL;
    if (cJSON_IsString(p) && *p->valuestring && cJSON_IsString(c) && *c->valuestring) {
        static const char *const keys[] = {"platform", "chat_id", "chat_name", "thread_id"};
        origin = cJSON_CreateObject();
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
            cJSON_AddItemToObject(origin, keys[i],
                                  cJSON_IsString(v) && *v->valuestring
                                      ? cJSON_CreateString(v->valuestring)
                                      : cJSON_CreateNull());
        }
    }
    cJSON_Delete(root);
    return origin;
}

static bool cron_available(const tool_env *env)
{
    return !env || !env->platform || strcmp(env->platform, "cron") != 0;
}

static const char *home_of(const tool_run *run)
{
    return run->env && run->env->hermes_home ? run->env->hermes_home : ".";
}

static void cronjob_start(rt_ctx *cx, tool_run *run)
{
    cJSON *origin = session_origin(run->env);
    char *out = cron_api(home_of(run), run->args, origin, cron_now_us());
    cJSON_Delete(origin);
    tool_finish(cx, run, out);
}

static void schedule_start(rt_ctx *cx, tool_run *run)
{
    cJSON *origin = session_origin(run->env);
    char *out = cron_api_schedule(home_of(run), run->args, origin, cron_now_us());
    cJSON_Delete(origin);
    tool_finish(cx, run, out);
}

static void list_start(rt_ctx *cx, tool_run *run)
{
    tool_finish(cx, run, cron_api_list(home_of(run), run->args));
}

static void remove_start(rt_ctx *cx, tool_run *run)
{
    tool_finish(cx, run, cron_api_remove(home_of(run), run->args));
}

const tool_def tool_def_schedule_cronjob = {
    .name = "schedule_cronjob",
    .toolset = "cronjob",
    .schema =
        "{\"name\":\"schedule_cronjob\",\"description\":\"Schedule an automated task to run the "
        "agent on a schedule.\\n\\n\xe2\x9a\xa0\xef\xb8\x8f CRITICAL: The cronjob runs in a FRESH "
        "SESSION with NO CONTEXT from this conversation.\\nThe prompt must be COMPLETELY "
        "SELF-CONTAINED with ALL necessary information including:\\n- Full context and "
        "background\\n- Specific file paths, URLs, server addresses\\n- Clear instructions and "
        "success criteria\\n- Any credentials or configuration details\\n\\nThe future agent "
        "will NOT remember anything from the current conversation.\\n\\nSCHEDULE FORMATS:\\n- "
        "One-shot: \\\"30m\\\", \\\"2h\\\", \\\"1d\\\" (runs once after delay)\\n- Interval: "
        "\\\"every 30m\\\", \\\"every 2h\\\" (recurring)  \\n- Cron: \\\"0 9 * * *\\\" (cron "
        "expression for precise scheduling)\\n- Timestamp: \\\"2026-02-03T14:00:00\\\" "
        "(specific date/time)\\n\\nREPEAT BEHAVIOR:\\n- One-shot schedules: run once by "
        "default\\n- Intervals/cron: run forever by default\\n- Set repeat=N to run exactly N "
        "times then auto-delete\\n\\nDELIVERY OPTIONS (where output goes):\\n- \\\"origin\\\": "
        "Back to current chat (default if in messaging platform)\\n- \\\"local\\\": Save to "
        "local files only (default if in CLI)\\n- \\\"telegram\\\": Send to Telegram home "
        "channel\\n- \\\"discord\\\": Send to Discord home channel\\n- \\\"telegram:123456\\\": "
        "Send to specific chat (if user provides ID)\\n\\nNOTE: The agent's final response is "
        "auto-delivered to the target \xe2\x80\x94 do NOT use\\nsend_message in the prompt. Just "
        "have the agent compose its response normally.\\n\\nUse for: reminders, periodic "
        "checks, scheduled reports, automated maintenance.\",\"parameters\":{\"type\":"
        "\"object\",\"properties\":{\"prompt\":{\"type\":\"string\",\"description\":\"Complete, "
        "self-contained instructions. Must include ALL context - the future agent will have NO "
        "memory of this conversation.\"},\"schedule\":{\"type\":\"string\",\"description\":"
        "\"When to run: '30m' (once in 30min), 'every 30m' (recurring), '0 9 * * *' (cron), or "
        "ISO timestamp\"},\"name\":{\"type\":\"string\",\"description\":\"Optional "
        "human-friendly name for the job\"},\"repeat\":{\"type\":\"integer\",\"description\":"
        "\"How many times to run. Omit for default (once for one-shot, forever for recurring). "
        "Set to N for exactly N runs.\"},\"deliver\":{\"type\":\"string\",\"description\":"
        "\"Where to send output: 'origin' (back to this chat), 'local' (files only), "
        "'telegram', 'discord', or 'platform:chat_id'\"}},\"required\":[\"prompt\","
        "\"schedule\"]}}",
    .blocking = true,
    .available = cron_available,
    .start = schedule_start,
};

const tool_def tool_def_list_cronjobs = {
    .name = "list_cronjobs",
    .toolset = "cronjob",
    .schema = "{\"name\":\"list_cronjobs\",\"description\":\"List all scheduled cronjobs with "
              "their IDs, schedules, and status.\\n\\nUse this to:\\n- See what jobs are "
              "currently scheduled\\n- Find job IDs for removal with remove_cronjob\\n- Check "
              "job status and next run times\\n\\nReturns job_id, name, schedule, repeat "
              "status, next/last run times.\",\"parameters\":{\"type\":\"object\","
              "\"properties\":{\"include_disabled\":{\"type\":\"boolean\",\"description\":"
              "\"Include disabled/completed jobs in the list (default: false)\"}},"
              "\"required\":[]}}",
    .blocking = true,
    .parallel_safe = true,
    .available = cron_available,
    .start = list_start,
};

const tool_def tool_def_remove_cronjob = {
    .name = "remove_cronjob",
    .toolset = "cronjob",
    .schema = "{\"name\":\"remove_cronjob\",\"description\":\"Remove a scheduled cronjob by its "
              "ID.\\n\\nUse list_cronjobs first to find the job_id of the job you want to "
              "remove.\\nJobs that have completed their repeat count are auto-removed, but you "
              "can\\nuse this to cancel a job before it completes.\",\"parameters\":{\"type\":"
              "\"object\",\"properties\":{\"job_id\":{\"type\":\"string\",\"description\":\"The "
              "ID of the cronjob to remove (from list_cronjobs output)\"}},\"required\":["
              "\"job_id\"]}}",
    .blocking = true,
    .available = cron_available,
    .start = remove_start,
};

const tool_def tool_def_cronjob = {
    .name = "cronjob",
    .toolset = "cronjob",
    .schema =
        "{\"name\":\"cronjob\",\"description\":\"Manage scheduled cron jobs with a single "
        "compressed tool.\\n\\nUse action='create' to schedule a new job from a prompt or one "
        "or more skills.\\nUse action='list' to inspect jobs.\\nUse action='update', 'pause', "
        "'resume', 'remove', or 'run' to manage an existing job.\\n\\nTo stop a job the user no "
        "longer wants: first action='list' to find the job_id, then action='remove' with that "
        "job_id. Never guess job IDs \xe2\x80\x94 always list first.\\n\\nJobs run in a fresh "
        "session with no current-chat context, so prompts must be self-contained.\\nIf skills "
        "are provided on create, the future cron run loads those skills in order, then follows "
        "the prompt as the task instruction.\\nOn update, passing skills=[] clears attached "
        "skills.\\n\\nNOTE: The agent's final response is auto-delivered to the target. Put the "
        "primary\\nuser-facing content in the final response. Cron jobs run autonomously with "
        "no user\\npresent \xe2\x80\x94 they cannot ask questions or request clarification."
        "\\n\\nImportant safety rule: cron-run sessions should not recursively schedule more "
        "cron jobs.\",\"parameters\":{\"type\":\"object\",\"properties\":{\"action\":{\"type\":"
        "\"string\",\"description\":\"One of: create, list, update, pause, resume, remove, "
        "run\"},\"job_id\":{\"type\":\"string\",\"description\":\"Required for "
        "update/pause/resume/remove/run\"},\"prompt\":{\"type\":\"string\",\"description\":"
        "\"For create: the full self-contained prompt. If skills are also provided, this "
        "becomes the task instruction paired with those skills.\"},\"schedule\":{\"type\":"
        "\"string\",\"description\":\"For create/update: '30m', 'every 2h', '0 9 * * *', or ISO "
        "timestamp\"},\"name\":{\"type\":\"string\",\"description\":\"Optional human-friendly "
        "name\"},\"repeat\":{\"type\":\"integer\",\"description\":\"Optional repeat count. Omit "
        "for defaults (once for one-shot, forever for recurring).\"},\"deliver\":{\"type\":"
        "\"string\",\"description\":\"Omit this parameter to auto-deliver back to the current "
        "chat and topic (recommended). Auto-detection preserves thread/topic context. Only set "
        "explicitly when the user asks to deliver somewhere OTHER than the current "
        "conversation. Values: 'origin' (same as omitting), 'local' (no delivery, save only), "
        "or platform:chat_id:thread_id for a specific destination. Examples: "
        "'telegram:-1001234567890:17585', 'discord:#engineering', 'sms:+15551234567'. WARNING: "
        "'platform:chat_id' "
        "without :thread_id loses topic targeting.\"},\"skills\":{\"type\":\"array\","
        "\"items\":{\"type\":\"string\"},\"description\":\"Optional ordered list of skill names "
        "to load before executing the cron prompt. On update, pass an empty array to clear "
        "attached skills.\"},\"model\":{\"type\":\"object\",\"description\":\"Optional per-job "
        "model override.\",\"properties\":{\"provider\":{\"type\":\"string\",\"description\":"
        "\"Provider name (e.g. 'openrouter', 'anthropic').\"},\"model\":{\"type\":\"string\","
        "\"description\":\"Model name (e.g. 'anthropic/claude-sonnet-4', "
        "'claude-sonnet-4')\"}},\"required\":[\"model\"]},\"script\":{\"type\":\"string\","
        "\"description\":\"Optional path to a Python script that runs before each cron job "
        "execution. Its stdout is injected into the prompt as context. Use for data collection "
        "and change detection. Relative paths resolve under ~/.hermes/scripts/. On update, "
        "pass empty string to clear.\"}},\"required\":[\"action\"]}}",
    .blocking = true,
    .available = cron_available,
    .start = cronjob_start,
};
