/*
 * chat_session — the CLI's agent session and its terminal prompts, shared by `hermes chat -q`
 * (cli_chat.c) and the interactive `hermes` (cli_repl.c). See chat_session.h.
 */
#include "chat_session.h"

#include "hm_env.h"
#include "hm_yaml.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"
#include "term_approval.h"
#include "tool.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096 /* one answer line; the rest of a longer one is dropped */

/* The original's toolset descriptions (toolsets.py), for /toolsets. */
static const char *const toolset_descs[][2] = {
    {"web", "Web research and content extraction tools"},
    {"search", "Web search only (no content extraction/scraping)"},
    {"vision", "Image analysis and vision tools"},
    {"image_gen", "Creative generation tools (images)"},
    {"terminal", "Terminal/command execution and process management tools"},
    {"moa", "Advanced reasoning and problem-solving tools"},
    {"skills", "Access, create, edit, and manage skill documents with specialized "
               "instructions and knowledge"},
    {"browser", "Browser automation for web interaction (navigate, click, type, scroll, "
                "iframes, hold-click) with web search for finding URLs"},
    {"cronjob", "Cronjob management tools - schedule, list, and remove automated tasks"},
    {"file", "File manipulation tools: read, write, patch (with fuzzy matching), and search "
             "(content + files)"},
    {"tts", "Text-to-speech: convert text to audio with Edge TTS (free), ElevenLabs, or OpenAI"},
    {"todo", "Task planning and tracking for multi-step work"},
    {"memory", "Persistent memory across sessions (personal notes + user profile)"},
    {"session_search", "Search and recall past conversations with summarization"},
    {"clarify", "Ask the user clarifying questions (multiple-choice or open-ended)"},
    {"code_execution", "Run Python scripts that call tools programmatically (reduces LLM round "
                       "trips)"},
    {"delegation", "Spawn subagents with isolated context for complex subtasks"},
    {"messaging", "Send messages to connected messaging platforms"},
    {"honcho", "Honcho AI-native memory for persistent cross-session user modeling"},
    {"debugging", "Debugging and troubleshooting toolkit"},
    {"safe", "Safe toolkit without terminal access"},
    {"hermes-cli", "Full interactive CLI toolset - all default tools plus cronjob management"},
    {"hermes-telegram", "Telegram bot toolset - full access for personal use (terminal has "
                        "safety checks)"},
    {"hermes-discord", "Discord bot toolset - full access (terminal has safety checks via "
                       "dangerous command approval)"},
    {"hermes-whatsapp", "WhatsApp bot toolset - similar to Telegram (personal messaging, more "
                        "trusted)"},
    {"hermes-slack", "Slack bot toolset - full access for workspace use (terminal has safety "
                     "checks)"},
    {"hermes-matrix", "Matrix bot toolset - full access (terminal has safety checks)"},
    {"hermes-mattermost", "Mattermost bot toolset - full access (terminal has safety checks)"},
    {"hermes-api-server", "API server toolset - the tools of an OpenAI-compatible endpoint"},
    {"hermes-gateway", "Gateway toolset - union of all messaging platform tools"},
};

const char *chat_system_prompt(const hm_host *h)
{
    const char *s = hm_config_env_str(h->cfg, "agent.system_prompt", NULL);
    return s ? s : "";
}

const char **chat_split_list(char *list)
{
    size_t n = 1;
    for (char *c = list; *c; c++)
        n += *c == ',';
    const char **out = rt_xcalloc(n + 1, sizeof(*out));
    size_t i = 0;
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t && i < n;
         t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        size_t len = strlen(t);
        while (len && t[len - 1] == ' ')
            t[--len] = '\0';
        if (*t)
            out[i++] = t;
    }
    return out;
}

void chat_strv_free(char **v)
{
    for (char **p = v; p && *p; p++)
        rt_free(*p);
    rt_free(v);
}

static char **copy_names(const char *const *names)
{
    size_t n = 0;
    while (names[n])
        n++;
    char **out = rt_xcalloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = rt_xstrdup(names[i]);
    return out;
}

/* Append extra approval patterns ("always" answers of this process) to env's allowlist. */
static void add_allowed(tool_env *env, const char *const *extra)
{
    size_t n = 0, k = 0;
    while (env->command_allowlist && env->command_allowlist[n])
        n++;
    while (extra && extra[k])
        k++;
    if (!k)
        return;
    char **v = rt_xcalloc(n + k + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = env->command_allowlist[i];
    for (size_t i = 0; i < k; i++)
        v[n + i] = rt_xstrdup(extra[i]);
    rt_free(env->command_allowlist);
    env->command_allowlist = v;
}

rt_ref chat_spawn_session(hm_host *h, const chat_spawn *o, char ***tools_out)
{
    rt_ctx *cx = rt_ctx_external(h->rt);
    tool_env *env = hm_host_tool_env(h, "cli", getenv("TERMINAL_CWD"), o->interactive);
    if (o->session_id)
        env->session_id = rt_xstrdup(o->session_id);
    add_allowed(env, o->allow_extra);
    const char **names = hm_host_tools(h, "cli", o->toolsets, env);
    env->enabled_tools = copy_names(names);
    ag_session_opts so;
    hm_host_session_opts(h, &so);
    so.source = "cli";
    so.session_id = o->session_id;
    so.resume = o->resume && o->session_id;
    if (o->model)
        so.model = o->model;
    const char *eph = o->ephemeral ? o->ephemeral : chat_system_prompt(h);
    so.ephemeral = eph && *eph ? eph : NULL;
    so.env = env;
    so.tools = names;
    rt_ref session = ag_session_spawn(cx, &so, NULL);
    if (tools_out)
        *tools_out = copy_names(names);
    rt_free(names);
    tool_env_unref(env);
    return session;
}

/* ============================================================== prompts */

static void print_sudo_box(FILE *f, int64_t timeout_ms)
{
    static const char *bar = "──────────────────────────────────────────────────────────";
    char wait[64];
    snprintf(wait, sizeof(wait), "Wait %llds to auto-skip", (long long)(timeout_ms / 1000));
    fprintf(f, "\n┌%s┐\n", bar);
    fprintf(f, "│  🔐 SUDO PASSWORD REQUIRED                               │\n");
    fprintf(f, "├%s┤\n", bar);
    fprintf(f, "│  Enter password below (input is hidden), or:             │\n");
    fprintf(f, "│    • Press Enter to skip (command fails gracefully)      │\n");
    fprintf(f, "│    • %-52s│\n", wait);
    fprintf(f, "└%s┘\n\n  Password (hidden): ", bar);
}

void chat_print_ask(FILE *f, int kind, const char *text, const char *description,
                    const cJSON *choices, int64_t timeout_ms)
{
    if (kind == TOOL_ASK_APPROVAL) {
        fprintf(f, "\n  ⚠️  DANGEROUS COMMAND: %s\n      %s\n\n",
                description ? description : "", text ? text : "");
        fprintf(f,
                "      [o]nce  |  [s]ession  |  [a]lways  |  [d]eny\n\n      Choice [o/s/a/D]: ");
    } else if (kind == TOOL_ASK_SUDO) {
        print_sudo_box(f, timeout_ms);
    } else {
        fprintf(f, "\n  ❓ %s\n", text ? text : "");
        int i = 1;
        const cJSON *c;
        cJSON_ArrayForEach(c, choices)
            fprintf(f, "      %d. %s\n", i++, cJSON_IsString(c) ? c->valuestring : "");
        if (i > 1)
            fprintf(f, "      (a number picks a choice; or type your own answer)\n");
        fprintf(f, "\n  ❯ ");
    }
    fflush(f);
}

static bool word_is(const char *line, const char *a, const char *b)
{
    return strcasecmp(line, a) == 0 || (b && strcasecmp(line, b) == 0);
}

void chat_parse_answer(int kind, const char *line, const cJSON *choices, int *answer,
                       const char **text)
{
    *text = NULL;
    if (!line) {
        *answer = TOOL_ANSWER_TIMEOUT;
        return;
    }
    if (kind == TOOL_ASK_APPROVAL) {
        while (*line == ' ')
            line++;
        if (word_is(line, "o", "once") || word_is(line, "y", "yes"))
            *answer = TOOL_ANSWER_ONCE;
        else if (word_is(line, "s", "session"))
            *answer = TOOL_ANSWER_SESSION;
        else if (word_is(line, "a", "always"))
            *answer = TOOL_ANSWER_ALWAYS;
        else
            *answer = TOOL_ANSWER_DENY;
        return;
    }
    *answer = TOOL_ANSWER_TEXT;
    *text = line;
    if (kind != TOOL_ASK_CLARIFY)
        return;
    int count = cJSON_IsArray(choices) ? cJSON_GetArraySize(choices) : 0;
    int64_t n = 0;
    if (count > 0 && rt_parse_i64(line, 1, count, &n) == 0) {
        const cJSON *pick = cJSON_GetArrayItem(choices, (int)n - 1);
        if (cJSON_IsString(pick))
            *text = pick->valuestring;
    }
}

const char *chat_timeout_text(int kind)
{
    if (kind == TOOL_ASK_APPROVAL)
        return "      ⏱ Timeout - denying command";
    if (kind == TOOL_ASK_SUDO)
        return "  ⏱ Timeout - continuing without sudo";
    return "  ⏱ No answer in time - the agent will decide on its own";
}

/* ============================================================ reading */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *chat_read_line(int64_t timeout_ms, bool secret)
{
    struct termios saved;
    bool restore = false;
    if (secret && tcgetattr(0, &saved) == 0) {
        struct termios t = saved;
        t.c_lflag &= ~(tcflag_t)ECHO;
        restore = tcsetattr(0, TCSANOW, &t) == 0;
    }
    char buf[LINE_MAX_BYTES];
    size_t len = 0;
    bool done = false, got = false;
    int64_t deadline = mono_ms() + timeout_ms;
    while (!done) {
        int64_t left = deadline - mono_ms();
        struct pollfd p = {.fd = 0, .events = POLLIN};
        int rc = left > 0 ? poll(&p, 1, (int)(left > 60000 ? 60000 : left)) : 0;
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0 || (rc == 0 && left <= 60000))
            break; /* error or timeout */
        if (rc == 0)
            continue;
        char c;
        ssize_t n = read(0, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* end of input */
        if (c == '\n' || c == '\r') {
            done = got = true;
        } else if (len + 1 < sizeof(buf)) {
            buf[len++] = c;
        }
    }
    if (restore) {
        (void)tcsetattr(0, TCSANOW, &saved);
        fputc('\n', stderr); /* the Enter was not echoed */
    }
    if (!got)
        return NULL;
    buf[len] = '\0';
    return rt_xstrdup(buf);
}

/* ============================================================ tools and toolsets */

const char *chat_toolset_desc(const char *name)
{
    for (size_t k = 0; k < RT_ARRAY_LEN(toolset_descs); k++)
        if (strcmp(toolset_descs[k][0], name) == 0)
            return toolset_descs[k][1];
    return NULL;
}

const char *chat_unknown_toolset(const char *const *names)
{
    const char *const *all = tool_toolset_names();
    for (const char *const *n = names; n && *n; n++) {
        bool known = strcmp(*n, "all") == 0 || strcmp(*n, "*") == 0;
        for (size_t i = 0; all[i] && !known; i++)
            known = strcmp(all[i], *n) == 0;
        if (!known)
            return *n;
    }
    return NULL;
}

size_t chat_cli_toolsets(const hm_config *cfg, const char *const *toolsets, const char **out,
                         size_t max)
{
    size_t n = 0;
    if (toolsets && toolsets[0]) {
        for (; toolsets[n] && n + 1 < max; n++)
            out[n] = toolsets[n];
    } else {
        n = hm_config_list(cfg, "platform_toolsets.cli", out, max - 1);
        if (n > max - 1)
            n = max - 1;
        if (!n)
            out[n++] = "hermes-cli";
    }
    out[n] = NULL;
    return n;
}

#define DASHES "------------------------------------------------------------------------------"

static void header(FILE *f, int width, int lpad, const char *title, int rpad)
{
    fprintf(f, "\n+%.*s+\n|%*s%s%*s|\n+%.*s+\n", width, DASHES, lpad, "", title, rpad, "", width,
            DASHES);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first sentence of a tool's description, at most 60 characters. */
static void tool_summary(const tool_def *d, char *out, size_t n)
{
    out[0] = '\0';
    cJSON *s = d ? cJSON_Parse(d->schema) : NULL;
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(s, "description");
    if (cJSON_IsString(desc)) {
        size_t k = strcspn(desc->valuestring, ".");
        if (k > 60)
            k = 60;
        snprintf(out, n, "%.*s", (int)k, desc->valuestring);
    }
    cJSON_Delete(s);
}

static const char *toolset_of(const char *name)
{
    const tool_def *d = tool_find(name);
    return d && d->toolset ? d->toolset : "unknown";
}

void chat_print_tools(FILE *f, char *const *tools)
{
    size_t n = 0;
    while (tools && tools[n])
        n++;
    if (!n) {
        fprintf(f, "(;_;) No tools available\n");
        return;
    }
    header(f, 78, 25, "(^_^)/ Available Tools", 30);
    fputc('\n', f);
    const char **sets = rt_xcalloc(n + 1, sizeof(*sets));
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        const char *ts = toolset_of(tools[i]);
        bool seen = false;
        for (size_t j = 0; j < ns && !seen; j++)
            seen = strcmp(sets[j], ts) == 0;
        if (!seen)
            sets[ns++] = ts;
    }
    qsort(sets, ns, sizeof(*sets), cmp_str);
    const char **names = rt_xcalloc(n + 1, sizeof(*names));
    for (size_t i = 0; i < n; i++)
        names[i] = tools[i];
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t j = 0; j < ns; j++) {
        fprintf(f, "  [%s]\n", sets[j]);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(toolset_of(names[i]), sets[j]) != 0)
                continue;
            char desc[128];
            tool_summary(tool_find(names[i]), desc, sizeof(desc));
            fprintf(f, "    * %-20s - %s\n", names[i], desc);
        }
        fputc('\n', f);
    }
    fprintf(f, "  Total: %zu tools  ヽ(^o^)ノ\n\n", n);
    rt_free(names);
    rt_free(sets);
}

void chat_print_toolsets(FILE *f, const hm_config *cfg, const char *const *toolsets)
{
    const char *on[64];
    size_t non = chat_cli_toolsets(cfg, toolsets, on, RT_ARRAY_LEN(on));
    header(f, 58, 15, "(^_^)b Available Toolsets", 17);
    fputc('\n', f);
    const char *const *all = tool_toolset_names();
    size_t n = 0;
    while (all[n])
        n++;
    const char **names = rt_xcalloc(n + 1, sizeof(*names));
    memcpy(names, all, n * sizeof(*names));
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        const char *desc = chat_toolset_desc(names[i]);
        if (!desc)
            continue; /* a legacy alias */
        const char **tools = tool_toolset_tools(names[i]);
        size_t count = 0;
        while (tools[count])
            count++;
        rt_free(tools);
        bool enabled = false;
        for (size_t k = 0; k < non && !enabled; k++)
            enabled = strcmp(on[k], names[i]) == 0 || strcmp(on[k], "all") == 0 ||
                      strcmp(on[k], "*") == 0;
        fprintf(f, "  %s %-18s [%2zu tools] - %.45s\n", enabled ? "(*)" : "   ", names[i], count,
                desc);
    }
    rt_free(names);
    fprintf(f, "\n  (*) = currently enabled\n\n  Tip: Use 'all' or '*' to enable all toolsets\n"
               "  Example: hermes --toolsets web,terminal\n\n");
}

/* ============================================================ command_allowlist */

/* The list at command_allowlist in root as a flow sequence "[a, b]" plus key. */
static char *flow_with(const cJSON *list, const char *key)
{
    rt_buf b;
    rt_buf_init(&b, HM_CONFIG_MAX_BYTES);
    (void)rt_buf_append(&b, "[", 1);
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        if (!cJSON_IsString(it))
            continue;
        char *q = hm_yaml_quote(it->valuestring);
        (void)rt_buf_append(&b, q, strlen(q));
        (void)rt_buf_append(&b, ", ", 2);
        rt_free(q);
    }
    char *q = hm_yaml_quote(key);
    (void)rt_buf_append(&b, q, strlen(q));
    rt_free(q);
    (void)rt_buf_append(&b, "]", 1);
    size_t len = 0;
    char *s = rt_buf_steal(&b, &len);
    return s ? s : rt_xstrdup("[]");
}

/* Edit a command_allowlist that is a list already: a one-line flow sequence is replaced, a
 * block sequence gets one more "- key" line after its last item. NULL when neither fits. */
static char *edit_list(const char *text, size_t len, const cJSON *list, const char *key)
{
    static const char name[] = "command_allowlist:";
    const char *line = text, *end = text + len;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *next = nl ? nl + 1 : end;
        if ((size_t)(end - line) >= sizeof(name) - 1 && memcmp(line, name, sizeof(name) - 1) == 0)
            break;
        line = next;
    }
    if (line >= end)
        return NULL;
    const char *nl = memchr(line, '\n', (size_t)(end - line));
    const char *eol = nl ? nl : end;
    const char *v = line + sizeof(name) - 1;
    while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
    rt_buf out;
    rt_buf_init(&out, HM_CONFIG_MAX_BYTES + 4096);
    int rc = 0;
    if (v < eol && *v == '[') { /* flow: the whole line becomes the new list */
        if (!memchr(v, ']', (size_t)(eol - v)))
            goto fail;
        char *flow = flow_with(list, key);
        rc |= rt_buf_append(&out, text, (size_t)(line - text));
        rc |= rt_buf_append(&out, name, sizeof(name) - 1);
        rc |= rt_buf_append(&out, " ", 1);
        rc |= rt_buf_append(&out, flow, strlen(flow));
        rc |= rt_buf_append(&out, eol, (size_t)(end - eol));
        rt_free(flow);
    } else if (v == eol || *v == '#') { /* block: find the last "- item" line */
        const char *p = nl ? nl + 1 : end, *after = NULL;
        int indent = -1;
        while (p < end) {
            const char *pn = memchr(p, '\n', (size_t)(end - p));
            const char *pe = pn ? pn : end;
            const char *q = p;
            while (q < pe && *q == ' ')
                q++;
            if (q == pe || *q == '#') { /* blank or comment line */
                p = pn ? pn + 1 : end;
                continue;
            }
            if (*q != '-' || (q + 1 < pe && q[1] != ' '))
                break;
            indent = (int)(q - p);
            after = pn ? pn + 1 : end;
            p = after;
        }
        if (!after)
            goto fail;
        char *q = hm_yaml_quote(key);
        rc |= rt_buf_append(&out, text, (size_t)(after - text));
        if (after == end && (after == text || after[-1] != '\n'))
            rc |= rt_buf_append(&out, "\n", 1);
        for (int i = 0; i < indent; i++)
            rc |= rt_buf_append(&out, " ", 1);
        rc |= rt_buf_append(&out, "- ", 2);
        rc |= rt_buf_append(&out, q, strlen(q));
        rc |= rt_buf_append(&out, "\n", 1);
        rc |= rt_buf_append(&out, after, (size_t)(end - after));
        rt_free(q);
    } else {
        goto fail;
    }
    if (rc)
        goto fail;
    size_t olen = 0;
    return rt_buf_steal(&out, &olen);
fail:
    rt_buf_fini(&out);
    return NULL;
}

int chat_allowlist_add(const char *home, const char *command, char *key_out, size_t keylen,
                       char *msg, size_t msglen)
{
    char key[128];
    msg[0] = '\0';
    if (!term_is_dangerous(command, key, sizeof(key), NULL)) {
        snprintf(msg, msglen, "not a dangerous command");
        return -EINVAL;
    }
    if (key_out)
        rt_strlcpy(key_out, key, keylen);
    char *path = hm_config_file(home, "config.yaml");
    char *text = NULL, *out = NULL;
    size_t len = 0, olen = 0;
    hm_yaml_doc *doc = NULL, *check = NULL;
    cJSON *want = NULL;
    int rc = hm_read_file(path, HM_CONFIG_MAX_BYTES, &text, &len);
    if (rc == -ENOENT) {
        text = rt_xstrdup("");
        rc = 0;
    }
    if (rc) {
        snprintf(msg, msglen, "cannot read %s: %s", path, rt_strerror(rc));
        goto done;
    }
    hm_yaml_err err;
    doc = len ? hm_yaml_parse(text, len, &err) : NULL;
    if (len && !doc) {
        snprintf(msg, msglen, "%s does not parse", path);
        rc = -EBADMSG;
        goto done;
    }
    const cJSON *root = doc ? hm_yaml_root(doc) : NULL;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "command_allowlist");
    const cJSON *items = cJSON_IsArray(list) ? list : NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        if (cJSON_IsString(it) && strcmp(it->valuestring, key) == 0)
            goto done; /* already there */
    }
    if (cJSON_IsArray(list)) {
        out = edit_list(text, len, list, key);
        olen = out ? strlen(out) : 0;
    } else {
        const char *parts[1] = {"command_allowlist"};
        char *flow = flow_with(NULL, key);
        if (hm_yaml_set(text, len, parts, 1, flow, &out, &olen, &err) != 0)
            out = NULL;
        rt_free(flow);
    }
    /* The edit must change nothing but the list. */
    want = root ? cJSON_Duplicate(root, 1) : cJSON_CreateObject();
    cJSON *nl = cJSON_CreateArray();
    cJSON_ArrayForEach(it, items) cJSON_AddItemToArray(nl, cJSON_Duplicate(it, 1));
    cJSON_AddItemToArray(nl, cJSON_CreateString(key));
    if (cJSON_GetObjectItemCaseSensitive(want, "command_allowlist"))
        cJSON_ReplaceItemInObjectCaseSensitive(want, "command_allowlist", nl);
    else
        cJSON_AddItemToObject(want, "command_allowlist", nl);
    check = out ? hm_yaml_parse(out, olen, &err) : NULL;
    if (!check || !cJSON_Compare(hm_yaml_root(check), want, 1)) {
        snprintf(msg, msglen,
                 "cannot add '%s' to command_allowlist in %s without rewriting it; add it by hand",
                 key, path);
        rc = -EINVAL;
        goto done;
    }
    struct stat st;
    mode_t mode = stat(path, &st) == 0 ? (st.st_mode & 07777) : 0600;
    rc = hm_write_atomic(path, out, olen, mode);
    if (rc)
        snprintf(msg, msglen, "cannot write %s: %s", path, rt_strerror(rc));
done:
    cJSON_Delete(want);
    hm_yaml_free(check);
    hm_yaml_free(doc);
    rt_free(out);
    rt_free(text);
    rt_free(path);
    return rc;
}
