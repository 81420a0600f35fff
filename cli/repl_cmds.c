/*
 * repl_cmds — the slash commands of the interactive CLI (agent-core §10.3), with the
 * original's names, descriptions and texts (its kaomoji included). Commands whose feature this
 * build does not have yet (/cron, /skills) say so.
 *
 * Threads: main thread (some commands read or write files).
 */
#include "repl_int.h"

#include "ag_session.h"
#include "chat_session.h"
#include "ckpt.h"
#include "cli.h"
#include "hm_env.h"
#include "hm_yaml.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"
#include "skl_admin.h"
#include "skl_store.h"
#include "tool.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const repl_cmd_info repl_cmd_list[] = {
    {"/help", "Show this help message"},
    {"/tools", "List available tools"},
    {"/toolsets", "List available toolsets"},
    {"/model", "Show or change the current model"},
    {"/prompt", "View/set custom system prompt"},
    {"/personality", "Set a predefined personality"},
    {"/clear", "Clear screen and reset conversation (fresh start)"},
    {"/history", "Show conversation history"},
    {"/new", "Start a new conversation (reset history)"},
    {"/reset", "Reset conversation only (keep screen)"},
    {"/retry", "Retry the last message (resend to agent)"},
    {"/undo", "Remove the last user/assistant exchange"},
    {"/save", "Save the current conversation"},
    {"/config", "Show current configuration"},
    {"/cron", "Manage scheduled tasks (list, add, remove)"},
    {"/skills", "Search, install, inspect, or manage skills from online registries"},
    {"/platforms", "Show gateway/messaging platform status"},
    {"/verbose", "Cycle tool progress display: off → new → all → verbose"},
    {"/compress", "Manually compress conversation context (flush memories + summarize)"},
    {"/usage", "Show token usage for the current session"},
    {"/rollback", "List or restore filesystem checkpoints (/rollback [number])"},
    {"/quit", "Exit the CLI (also: /exit, /q)"},
    {NULL, NULL},
};

#define DASHES "------------------------------------------------------------------------------"

static void header(repl *r, int width, int lpad, const char *title, int rpad)
{
    term_blank(r);
    term_line(r, "+%.*s+", width, DASHES);
    term_line(r, "|%*s%s%*s|", lpad, "", title, rpad, "");
    term_line(r, "+%.*s+", width, DASHES);
}

/* Copy at most max characters (code points) of s into out, with "..." if cut. */
static const char *clip(const char *s, size_t max, char *out, size_t outlen)
{
    size_t i = 0, chars = 0;
    while (s[i] && chars < max) {
        i++;
        while (((unsigned char)s[i] & 0xc0) == 0x80)
            i++;
        chars++;
    }
    snprintf(out, outlen, "%.*s%s", (int)i, s, s[i] ? "..." : "");
    return out;
}

/* ============================================================ config.yaml */

/* "model" when config.yaml has `model: name`, else "model.default". */
static const char *model_key(const char *text, size_t len)
{
    hm_yaml_err err;
    hm_yaml_doc *d = hm_yaml_parse(text, len, &err);
    const cJSON *m = d ? cJSON_GetObjectItemCaseSensitive(hm_yaml_root(d), "model") : NULL;
    const char *key = cJSON_IsString(m) ? "model" : "model.default";
    hm_yaml_free(d);
    return key;
}

/* Persist key = value in config.yaml, keeping the rest of the file as it is. */
static bool config_set(repl *r, const char *key, const char *value)
{
    char *path = hm_config_file(r->h->home, "config.yaml");
    char *text = NULL, *out = NULL, *yv = NULL;
    size_t len = 0, olen = 0;
    bool ok = false;
    int rc = hm_read_file(path, HM_CONFIG_MAX_BYTES, &text, &len);
    if (rc == -ENOENT) {
        text = rt_xstrdup("");
        rc = 0;
    }
    if (rc)
        goto out;
    if (strcmp(key, "model") == 0)
        key = model_key(text, len);
    char keybuf[128];
    const char *parts[HM_YAML_MAX_PATH];
    rt_strlcpy(keybuf, key, sizeof(keybuf));
    int np = hm_yaml_split_path(keybuf, parts, HM_YAML_MAX_PATH);
    yv = hm_yaml_quote(value);
    hm_yaml_err err;
    if (np > 0 && hm_yaml_set(text, len, parts, (size_t)np, yv, &out, &olen, &err) == 0) {
        struct stat st;
        mode_t mode = stat(path, &st) == 0 ? (st.st_mode & 07777) : 0600;
        ok = hm_write_atomic(path, out, olen, mode) == 0;
    }
out:
    rt_free(yv);
    rt_free(out);
    rt_free(text);
    rt_free(path);
    return ok;
}

/* ============================================================ show */

/* The installed skills as `/<skill-name>` commands (the original's show_help: all of them,
 * sorted by command, after the built-in commands). */
static void help_skills(repl *r)
{
    char *root = rt_xasprintf("%s/skills", r->h->home);
    cJSON *list = NULL;
    skl_command *v = NULL;
    size_t keep = skl_commands(root, &v, &list);
    rt_free(root);
    if (keep) {
        term_blank(r);
        term_line(r, "  \xe2\x9a\xa1 Skill Commands (%zu installed):", keep);
        for (size_t i = 0; i < keep; i++)
            term_line(r, "  %-22s - %s", v[i].name, v[i].desc ? v[i].desc : "");
    }
    rt_free(v);
    cJSON_Delete(list);
}

static void cmd_help(repl *r)
{
    header(r, 50, 14, "(^_^)? Available Commands", 10);
    term_blank(r);
    for (const repl_cmd_info *c = repl_cmd_list; c->name; c++)
        term_line(r, "  %-15s - %s", c->name, c->desc);
    help_skills(r);
    term_blank(r);
    term_line(r, "  Tip: Just type your message to chat with Hermes!");
    term_line(r, "  Multi-line: Alt+Enter for a new line");
    term_blank(r);
}

static void cmd_tools(repl *r)
{
    term_endline(r);
    chat_print_tools(r->out, r->tools);
    fflush(r->out);
}

static void cmd_toolsets(repl *r)
{
    term_endline(r);
    chat_print_toolsets(r->out, r->h->cfg, r->toolsets);
    fflush(r->out);
}

static const char *env_or(repl *r, const char *name, const char *def)
{
    const char *v = hm_config_getenv(r->h->cfg, name, NULL);
    return v && *v ? v : def;
}

static void cmd_config(repl *r)
{
    static const char *const modes[] = {"off", "new", "all", "verbose"};
    char key[64], cwd[4096];
    const char *api = r->h->popts.api_key;
    const char *backend = env_or(r, "TERMINAL_ENV", "local");
    header(r, 50, 15, "(^_^) Configuration", 15);
    term_blank(r);
    term_line(r, "  -- Model --");
    term_line(r, "  Model:     %s", r->model);
    term_line(r, "  Provider:  %s", r->h->provider_name ? r->h->provider_name : "");
    term_line(r, "  Base URL:  %s", r->h->popts.base_url ? r->h->popts.base_url : "");
    term_line(r, "  API Key:   %s",
              api && *api ? rt_log_redact(api, key, sizeof(key)) : "Not set!");
    term_blank(r);
    term_line(r, "  -- Terminal --");
    term_line(r, "  Environment:  %s", backend);
    if (strcmp(backend, "ssh") == 0)
        term_line(r, "  SSH Target:   %s@%s:%s", env_or(r, "TERMINAL_SSH_USER", "not set"),
                  env_or(r, "TERMINAL_SSH_HOST", "not set"), env_or(r, "TERMINAL_SSH_PORT", "22"));
    term_line(r, "  Working Dir:  %s",
              env_or(r, "TERMINAL_CWD", getcwd(cwd, sizeof(cwd)) ? cwd : "."));
    term_line(r, "  Timeout:      %ss", env_or(r, "TERMINAL_TIMEOUT", "180"));
    term_blank(r);
    term_line(r, "  -- Agent --");
    term_line(r, "  Max Turns:  %lld",
              (long long)hm_config_max_turns(r->h->cfg, HM_CTX_CLI, 0, NULL));
    char sets[512] = "";
    for (size_t i = 0; r->toolsets && r->toolsets[i]; i++)
        snprintf(sets + strlen(sets), sizeof(sets) - strlen(sets), "%s%s", i ? ", " : "",
                 r->toolsets[i]);
    term_line(r, "  Toolsets:   %s", sets[0] ? sets : "(from config: platform_toolsets.cli)");
    term_line(r, "  Progress:   %s", modes[r->verbose & 3]);
    term_blank(r);
    term_line(r, "  -- Session --");
    struct tm tm;
    char when[64];
    localtime_r(&r->started, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    term_line(r, "  Session:     %s", r->session_id);
    term_line(r, "  Started:     %s", when);
    term_line(r, "  Config File: %s %s", hm_config_path(r->h->cfg),
              hm_config_has_file(r->h->cfg) ? "(loaded)" : "(not found)");
    term_blank(r);
}

static bool env_set(repl *r, const char *name)
{
    const char *v = hm_config_getenv(r->h->cfg, name, NULL);
    return v && *v && !hm_is_placeholder_secret(v);
}

static void cmd_platforms(repl *r)
{
    header(r, 60, 15, "(✿◠‿◠) Gateway Status", 17);
    term_blank(r);
    term_line(r, "  Messaging Platform Configuration:");
    term_line(r, "  %.55s", DASHES);
    bool mx = env_set(r, "MATRIX_HOMESERVER") &&
              (env_set(r, "MATRIX_ACCESS_TOKEN") || env_set(r, "MATRIX_PASSWORD"));
    bool mm = env_set(r, "MATTERMOST_URL") && env_set(r, "MATTERMOST_TOKEN");
    const char *api = hm_config_getenv(r->h->cfg, "API_SERVER_ENABLED", NULL);
    bool as = api && (strcasecmp(api, "true") == 0 || strcmp(api, "1") == 0 ||
                      strcasecmp(api, "yes") == 0);
    term_line(r, "    %s %-12s %s", mx ? "✓" : "○", "Matrix",
              mx ? "Enabled" : "Not configured (MATRIX_HOMESERVER, MATRIX_ACCESS_TOKEN)");
    term_line(r, "    %s %-12s %s", mm ? "✓" : "○", "Mattermost",
              mm ? "Enabled" : "Not configured (MATTERMOST_URL, MATTERMOST_TOKEN)");
    term_line(r, "    %s %-12s %s", as ? "✓" : "○", "API server",
              as ? "Enabled" : "Not configured (API_SERVER_ENABLED)");
    static const char *const later[] = {"Telegram", "Discord", "Slack", "WhatsApp"};
    for (size_t i = 0; i < RT_ARRAY_LEN(later); i++)
        term_line(r, "    ○ %-12s Not available in this build yet", later[i]);
    term_blank(r);
    term_line(r, "  To start the gateway:");
    term_line(r, "    hermes gateway");
    term_blank(r);
    term_line(r, "  Configuration file: %s", hm_config_path(r->h->cfg));
    term_blank(r);
}

static void not_yet(repl *r, const char *cmd, const char *what)
{
    term_line(r, "(._.) %s is not available in this build yet: %s", cmd, what);
}

static void cmd_verbose(repl *r)
{
    static const char *const text[] = {
        "off — no tool progress lines",
        "new — a line when the agent switches to another tool",
        "all — a line for every tool call",
        "verbose — every tool call and every status message",
    };
    r->verbose = (r->verbose + 1) % 4;
    term_line(r, "(^_^)b Tool progress: %s", text[r->verbose]);
}

/* ============================================================ change */

static void cmd_model(repl *r, const char *arg)
{
    if (!*arg) {
        term_line(r, "Current model: %s", r->model);
        term_line(r, "  Usage: /model <model-name> to change");
        return;
    }
    rt_free(r->model);
    r->model = rt_xstrdup(arg);
    rt_send(r->cx, r->session, ag_text_new(AG_MSG_MODEL, arg));
    if (config_set(r, "model", arg))
        term_line(r, "(^_^)b Model changed to: %s (saved to config)", arg);
    else
        term_line(r, "(^_^) Model changed to: %s (session only)", arg);
}

static void set_prompt(repl *r, const char *text)
{
    rt_free(r->system_prompt);
    r->system_prompt = rt_xstrdup(text);
    rt_send(r->cx, r->session, ag_text_new(AG_MSG_EPHEMERAL, *text ? text : NULL));
}

static void show_wrapped(repl *r, const char *text)
{
    char line[256] = "";
    char *copy = rt_xstrdup(text);
    for (char *save = NULL, *w = strtok_r(copy, " \n\t", &save); w;
         w = strtok_r(NULL, " \n\t", &save)) {
        size_t have = strlen(line);
        if (have && have + strlen(w) + 1 > 50) {
            term_line(r, "  %s", line);
            line[0] = '\0';
            have = 0;
        }
        snprintf(line + have, sizeof(line) - have, "%s%s", have ? " " : "", w);
    }
    if (line[0])
        term_line(r, "  %s", line);
    rt_free(copy);
}

static void cmd_prompt(repl *r, const char *arg)
{
    char shown[512];
    if (strcasecmp(arg, "clear") == 0) {
        set_prompt(r, "");
        if (config_set(r, "agent.system_prompt", ""))
            term_line(r, "(^_^)b System prompt cleared (saved to config)");
        else
            term_line(r, "(^_^) System prompt cleared (session only)");
    } else if (*arg) {
        set_prompt(r, arg);
        if (config_set(r, "agent.system_prompt", arg))
            term_line(r, "(^_^)b System prompt set (saved to config)");
        else
            term_line(r, "(^_^) System prompt set (session only)");
        term_line(r, "  \"%s\"", clip(arg, 60, shown, sizeof(shown)));
    } else {
        header(r, 50, 15, "(^_^) System Prompt", 15);
        term_blank(r);
        if (*r->system_prompt)
            show_wrapped(r, r->system_prompt);
        else
            term_line(r, "  (no custom prompt set - using default)");
        term_blank(r);
        term_line(r, "  Usage:");
        term_line(r, "    /prompt <text>  - Set a custom system prompt");
        term_line(r, "    /prompt clear   - Remove custom prompt");
        term_line(r, "    /personality    - Use a predefined personality");
        term_blank(r);
    }
}

static void cmd_personality(repl *r, const char *arg)
{
    const cJSON *all = hm_config_node(r->h->cfg, "agent.personalities");
    char shown[512];
    if (!*arg) {
        header(r, 50, 12, "(^o^)/ Personalities", 15);
        term_blank(r);
        const cJSON *p;
        cJSON_ArrayForEach(p, all)
        {
            if (cJSON_IsString(p))
                term_line(r, "  %-12s - \"%s\"", p->string, clip(p->valuestring, 40, shown, 200));
        }
        term_blank(r);
        term_line(r, "  Usage: /personality <name>");
        term_blank(r);
        return;
    }
    char name[128];
    size_t n = 0;
    for (; arg[n] && n + 1 < sizeof(name); n++)
        name[n] = (char)tolower((unsigned char)arg[n]);
    name[n] = '\0';
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(all, name);
    if (!cJSON_IsString(p)) {
        char list[1024] = "";
        const cJSON *q;
        cJSON_ArrayForEach(q, all) snprintf(list + strlen(list), sizeof(list) - strlen(list),
                                            "%s%s", list[0] ? ", " : "", q->string);
        term_line(r, "(._.) Unknown personality: %s", name);
        term_line(r, "  Available: %s", list);
        return;
    }
    set_prompt(r, p->valuestring);
    if (config_set(r, "agent.system_prompt", p->valuestring))
        term_line(r, "(^_^)b Personality set to '%s' (saved to config)", name);
    else
        term_line(r, "(^_^) Personality set to '%s' (session only)", name);
    term_line(r, "  \"%s\"", clip(p->valuestring, 60, shown, sizeof(shown)));
}

/* ============================================================ the conversation */

static const char *content_of(const cJSON *m)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
    return cJSON_IsString(c) ? c->valuestring : "";
}

static const char *role_of(const cJSON *m)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "role");
    return cJSON_IsString(c) ? c->valuestring : "";
}

static void cmd_history(repl *r)
{
    cJSON *msgs = r->talked ? repl_fetch_messages(r) : NULL;
    if (!cJSON_GetArraySize(msgs)) {
        term_line(r, "(._.) No conversation history yet.");
        cJSON_Delete(msgs);
        return;
    }
    header(r, 50, 12, "(^_^) Conversation History", 11);
    int i = 0;
    char shown[1024];
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        i++;
        const char *role = role_of(m), *content = content_of(m);
        if (strcmp(role, "user") == 0) {
            term_line(r, "\n  [You #%d]", i);
            term_line(r, "    %s", clip(content, 200, shown, sizeof(shown)));
        } else if (strcmp(role, "assistant") == 0) {
            term_line(r, "\n  [Hermes #%d]", i);
            term_line(r, "    %s",
                      *content ? clip(content, 200, shown, sizeof(shown)) : "(tool calls)");
        }
    }
    term_blank(r);
    cJSON_Delete(msgs);
}

static void cmd_reset(repl *r, bool fresh_start)
{
    repl_new_session(r);
    if (fresh_start) {
        term_clear_screen(r);
        repl_banner(r);
        term_line(r, "  ✨ (◕‿◕)✨ Fresh start! Screen cleared and conversation reset.\n");
    } else {
        term_line(r, "(^_^)b Conversation reset!");
    }
}

static void cmd_undo(repl *r)
{
    char shown[512];
    repl_ev *e = repl_control(r, AG_CTL_UNDO);
    if (!e)
        term_line(r, "(x_x) The agent did not answer.");
    else if (e->code == -ENOENT)
        term_line(r, "(._.) No messages to undo.");
    else if (e->code)
        term_line(r, "(x_x) Cannot undo: %s", rt_strerror(e->code));
    if (!e || e->code) {
        repl_ev_free(e);
        return;
    }
    term_line(r, "(^_^)b Undid %d message(s). Removed: \"%s\"", e->n,
              clip(e->text ? e->text : "", 60, shown, sizeof(shown)));
    repl_ev_free(e);
    e = repl_control(r, AG_CTL_USAGE);
    const cJSON *left = e ? cJSON_GetObjectItemCaseSensitive(e->json, "messages") : NULL;
    if (cJSON_IsNumber(left))
        term_line(r, "  %d message(s) remaining in history.", (int)left->valuedouble);
    repl_ev_free(e);
}

/* /cron [list|add|remove]: the same as `hermes cron`, its lines printed through the terminal. */
static void cmd_cron(repl *r, const char *arg)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f) {
        term_line(r, "(x_x) /cron: %s", rt_strerror(-errno));
        return;
    }
    (void)cli_cron_slash(arg ? arg : "", f);
    fclose(f);
    for (char *line = out, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        term_line(r, "%s", line);
    }
    rt_free(out); /* open_memstream allocates with malloc; rt_free is free */
}

/* /compress: the session summarises the middle of the conversation now. The summary is a
 * model call, so this waits longer than other commands. */
static void cmd_compress(repl *r)
{
    term_line(r, "(^_^) Compressing the conversation...");
    uint64_t tag = repl_tag(r);
    rt_send(r->cx, r->session, ag_control_new(AG_CTL_COMPRESS, r->bridge, tag));
    repl_ev *e = repl_await(r, tag, 180000);
    if (!e)
        term_line(r, "(x_x) The agent did not answer.");
    else if (e->code == -ENOENT)
        term_line(r, "(._.) Not enough conversation to compress (need at least 4 messages).");
    else if (e->code == -ENODATA)
        term_line(r, "(._.) Nothing to compress yet: the first and the last few messages are "
                     "always kept as they are.");
    else if (e->code)
        term_line(r, "(x_x) Cannot compress: %s", rt_strerror(e->code));
    else {
        const cJSON *after = cJSON_GetObjectItemCaseSensitive(e->json, "after");
        const cJSON *sid = cJSON_GetObjectItemCaseSensitive(e->json, "session_id");
        term_line(r, "(^_^)b Compressed: %d \xe2\x86\x92 %d messages", e->n,
                  cJSON_IsNumber(after) ? (int)after->valuedouble : 0);
        if (cJSON_IsString(sid) && (!r->session_id || strcmp(sid->valuestring, r->session_id))) {
            rt_free(r->session_id); /* the conversation continues under a new id */
            r->session_id = rt_xstrdup(sid->valuestring);
        }
    }
    repl_ev_free(e);
}

/* /rollback [N|hash]: the checkpoints of the session's working directory (the same one its
 * tools use), or a restore; the checkpoint service does the work (tools/checkpoint). */
static void cmd_rollback(repl *r, const char *arg)
{
    char cwd[4096];
    const char *dir = getenv("TERMINAL_CWD");
    if (!dir || !*dir)
        dir = getcwd(cwd, sizeof(cwd)) ? cwd : ".";
    while (arg && isspace((unsigned char)*arg))
        arg++;
    size_t n = arg ? strlen(arg) : 0;
    while (n && isspace((unsigned char)arg[n - 1]))
        n--;
    ckpt_msg_req *q = ckpt_req_new(n ? CKPT_OP_ROLLBACK : CKPT_OP_LIST, r->h->home, dir);
    q->target = n ? rt_xasprintf("%.*s", (int)n, arg) : NULL;
    q->reply_kind = CKPT_REPLY_CONTROL;
    q->reply_to = r->bridge;
    q->tag = repl_tag(r);
    uint64_t tag = q->tag;
    if (!ckpt_request_send(r->cx, q)) {
        term_line(r, "(x_x) The checkpoint service is not running.");
        return;
    }
    repl_ev *e = repl_await(r, tag, 2 * CKPT_GIT_TIMEOUT_MS + 10000);
    if (!e)
        term_line(r, "(x_x) The checkpoint service did not answer.");
    else
        term_line(r, "%s", e->text ? e->text : "Done.");
    repl_ev_free(e);
}

static void cmd_retry(repl *r)
{
    char shown[512];
    r->busy = true; /* the session starts the turn right after its reply */
    r->box_open = false;
    r->stop_upto = 0;
    r->last_tool[0] = '\0';
    repl_ev *e = repl_control(r, AG_CTL_RETRY);
    if (e && !e->code) {
        term_line(r, "(^_^)b Retrying: \"%s\"",
                  clip(e->text ? e->text : "", 60, shown, sizeof(shown)));
        r->talked = true;
        repl_ev_free(e);
        return;
    }
    r->busy = false;
    if (!e)
        term_line(r, "(x_x) The agent did not answer.");
    else if (e->code == -ENOENT)
        term_line(r, "(._.) No messages to retry.");
    else
        term_line(r, "(x_x) Cannot retry: %s", rt_strerror(e->code));
    repl_ev_free(e);
}

static void cmd_save(repl *r)
{
    cJSON *msgs = r->talked ? repl_fetch_messages(r) : NULL;
    if (!cJSON_GetArraySize(msgs)) {
        term_line(r, "(;_;) No conversation to save.");
        cJSON_Delete(msgs);
        return;
    }
    time_t now = time(NULL);
    struct tm tm;
    char name[64], start[64];
    localtime_r(&now, &tm);
    strftime(name, sizeof(name), "hermes_conversation_%Y%m%d_%H%M%S.json", &tm);
    localtime_r(&r->started, &tm);
    strftime(start, sizeof(start), "%Y-%m-%dT%H:%M:%S", &tm);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "model", r->model);
    cJSON_AddStringToObject(doc, "session_start", start);
    cJSON_AddItemToObject(doc, "messages", msgs);
    char *text = cJSON_Print(doc);
    int rc = text ? hm_write_atomic(name, text, strlen(text), 0600) : -ENOMEM;
    if (rc)
        term_line(r, "(x_x) Failed to save: %s", rt_strerror(rc));
    else
        term_line(r, "(^_^)v Conversation saved to: %s", name);
    cJSON_free(text);
    cJSON_Delete(doc);
}

static void fmt_int(int64_t v, char *out, size_t n)
{
    char digits[32];
    int len = snprintf(digits, sizeof(digits), "%lld", (long long)(v < 0 ? -v : v));
    size_t k = 0;
    if (v < 0 && k + 1 < n)
        out[k++] = '-';
    for (int i = 0; i < len && k + 2 < n; i++) {
        if (i && (len - i) % 3 == 0)
            out[k++] = ',';
        out[k++] = digits[i];
    }
    out[k] = '\0';
}

static int64_t info_int(const cJSON *info, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(info, key);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static void cmd_usage(repl *r)
{
    repl_ev *e = repl_control(r, AG_CTL_USAGE);
    if (!e || e->code) {
        term_line(r, "(x_x) No usage from the agent%s%s", e ? ": " : ".",
                  e ? rt_strerror(e->code) : "");
        repl_ev_free(e);
        return;
    }
    const cJSON *in = e->json;
    int64_t p = info_int(in, "prompt_tokens"), c = info_int(in, "completion_tokens");
    int64_t last = info_int(in, "last_prompt_tokens"), ctx = info_int(in, "context_length");
    char a[32], b[32], t[32], l[32], x[32];
    fmt_int(p, a, sizeof(a));
    fmt_int(c, b, sizeof(b));
    fmt_int(p + c, t, sizeof(t));
    fmt_int(last, l, sizeof(l));
    fmt_int(ctx, x, sizeof(x));
    term_blank(r);
    term_line(r, "  📊 Session Token Usage");
    term_line(r, "  ────────────────────────────────────────");
    term_line(r, "  Prompt tokens (input):      %s", a);
    term_line(r, "  Completion tokens (output): %s", b);
    term_line(r, "  Total tokens:               %s", t);
    term_line(r, "  API calls:                  %lld", (long long)info_int(in, "api_calls"));
    term_line(r, "  Current context:            %s / %s (%lld%%)", l, x,
              (long long)(ctx > 0 ? last * 100 / ctx : 0));
    term_line(r, "  Messages:                   %lld", (long long)info_int(in, "messages"));
    term_line(r, "  Compressions:               %lld", (long long)info_int(in, "compressions"));
    term_blank(r);
    repl_ev_free(e);
}

/* ============================================================ dispatch */

static void split(const char *line, char *cmd, size_t n, const char **arg)
{
    size_t k = 0;
    while (line[k] && line[k] != ' ' && line[k] != '\t' && line[k] != '\n' && k + 1 < n) {
        cmd[k] = (char)tolower((unsigned char)line[k]);
        k++;
    }
    cmd[k] = '\0';
    const char *a = line + strcspn(line, " \t\n");
    while (*a == ' ' || *a == '\t' || *a == '\n')
        a++;
    *arg = a;
}

bool repl_command_runs_busy(const char *line)
{
    static const char *const ok[] = {"/help",      "/tools",   "/toolsets", "/config",
                                     "/platforms", "/gateway", "/verbose",  "/quit",
                                     "/exit",      "/q",       "/cron",     "/skills"};
    char cmd[32];
    const char *arg;
    split(line, cmd, sizeof(cmd), &arg);
    for (size_t i = 0; i < RT_ARRAY_LEN(ok); i++)
        if (strcmp(cmd, ok[i]) == 0)
            return true;
    return false;
}

/* `/<skill-name> [text]` (agent-core §8.3): an installed skill's instructions become the
 * message; false when there is no such skill. */
static bool skill_command(repl *r, const char *name, const char *text)
{
    char *root = rt_xasprintf("%s/skills", r->h->home);
    char *msg = skl_invoke_message(root, name, text && *text ? text : NULL);
    rt_free(root);
    if (!msg)
        return false;
    repl_send_message(r, msg);
    rt_free(msg);
    return true;
}

void repl_command(repl *r, const char *line)
{
    char cmd[64];
    const char *arg;
    split(line, cmd, sizeof(cmd), &arg);
    if (!strcmp(cmd, "/quit") || !strcmp(cmd, "/exit") || !strcmp(cmd, "/q"))
        r->quit = true;
    else if (!strcmp(cmd, "/help"))
        cmd_help(r);
    else if (!strcmp(cmd, "/tools"))
        cmd_tools(r);
    else if (!strcmp(cmd, "/toolsets"))
        cmd_toolsets(r);
    else if (!strcmp(cmd, "/config"))
        cmd_config(r);
    else if (!strcmp(cmd, "/clear"))
        cmd_reset(r, true);
    else if (!strcmp(cmd, "/history"))
        cmd_history(r);
    else if (!strcmp(cmd, "/reset"))
        cmd_reset(r, false);
    else if (!strcmp(cmd, "/new")) {
        repl_new_session(r);
        term_line(r, "(^_^)v New session started!");
    } else if (!strcmp(cmd, "/model"))
        cmd_model(r, arg);
    else if (!strcmp(cmd, "/prompt"))
        cmd_prompt(r, arg);
    else if (!strcmp(cmd, "/personality"))
        cmd_personality(r, arg);
    else if (!strcmp(cmd, "/retry"))
        cmd_retry(r);
    else if (!strcmp(cmd, "/undo"))
        cmd_undo(r);
    else if (!strcmp(cmd, "/save"))
        cmd_save(r);
    else if (!strcmp(cmd, "/usage"))
        cmd_usage(r);
    else if (!strcmp(cmd, "/verbose"))
        cmd_verbose(r);
    else if (!strcmp(cmd, "/platforms") || !strcmp(cmd, "/gateway"))
        cmd_platforms(r);
    else if (!strcmp(cmd, "/cron"))
        cmd_cron(r, arg);
    else if (!strcmp(cmd, "/skills"))
        not_yet(r, "/skills",
                "use `hermes skills list | inspect | install` in a shell; the agent itself has "
                "skills_list, skill_view and skill_manage");
    else if (!strcmp(cmd, "/compress"))
        cmd_compress(r);
    else if (!strcmp(cmd, "/rollback"))
        cmd_rollback(r, arg);
    else if (!skill_command(r, cmd + 1, arg)) {
        term_line(r, "\033[1;31mUnknown command: %s\033[0m", cmd);
        term_line(r, "\033[2mType /help for available commands\033[0m");
    }
}

/* ============================================================ banner and summary */

void repl_banner(repl *r)
{
    size_t n = 0;
    while (r->tools && r->tools[n])
        n++;
    const char *model = strrchr(r->model, '/') ? strrchr(r->model, '/') + 1 : r->model;
    char cwd[4096];
    const char *dir = env_or(r, "TERMINAL_CWD", getcwd(cwd, sizeof(cwd)) ? cwd : ".");
    term_blank(r);
    term_line(r, "\033[1;33m╔══════════════════════════════════════════════════════════════╗"
                 "\033[0m");
    term_line(r,
              "\033[1;33m║\033[0m  \033[33m⚕ NOUS HERMES\033[0m \033[2m- AI Agent Framework\033[0m"
              "                          \033[1;33m║\033[0m");
    term_line(r, "\033[1;33m║\033[0m  \033[33mMessenger of the Digital Gods\033[0m"
                 "               \033[2mNous Research\033[0m   \033[1;33m║\033[0m");
    term_line(r, "\033[1;33m╚══════════════════════════════════════════════════════════════╝"
                 "\033[0m");
    term_blank(r);
    term_line(r, "  %s● \033[0m\033[33m%s\033[0m · \033[1;36m%zu tools\033[0m",
              r->h->popts.api_key && *r->h->popts.api_key ? "\033[1;32m" : "\033[1;31m", model, n);
    term_line(r, "  \033[2m%s · Session: %s\033[0m", dir, r->session_id);
    term_blank(r);
    term_line(r, "Welcome to Hermes Agent! Type your message or /help for commands.");
    term_blank(r);
}

static void duration(int64_t s, char *out, size_t n)
{
    if (s < 60)
        snprintf(out, n, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(out, n, "%lldm %llds", (long long)(s / 60), (long long)(s % 60));
    else
        snprintf(out, n, "%lldh %lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
}

void repl_summary(repl *r)
{
    if (!r->talked)
        return;
    cJSON *msgs = repl_fetch_messages(r);
    int total = 0, users = 0, calls = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        total++;
        users += strcmp(role_of(m), "user") == 0;
        calls += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "tool_calls"));
    }
    cJSON_Delete(msgs);
    char d[64];
    duration((repl_now_ms() - r->started_ms) / 1000, d, sizeof(d));
    term_blank(r);
    term_line(r, "Resume this session with:");
    term_line(r, "  hermes --resume %s", r->session_id);
    term_blank(r);
    term_line(r, "Session:        %s", r->session_id);
    term_line(r, "Duration:       %s", d);
    term_line(r, "Messages:       %d (%d user, %d tool calls)", total, users, calls);
}
