/*
 * ag_prompt — see ag_prompt.h. The wording of the fixed paragraphs is ours; their order,
 * placement and the markers users see (headers, truncation notes) follow the original.
 */
#include "ag_prompt.h"
#include "skl_store.h"

#include "mem_file.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"
#include "tool_scan.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_READ_MAX  (16u << 20) /* larger context files are left out */
#define WALK_MAX_DIRS  5000        /* AGENTS.md discovery stops after this many directories */
#define WALK_MAX_DEPTH 12

static const char IDENTITY[] =
    "You are Hermes Agent, an intelligent AI assistant created by Nous Research. You help "
    "with a wide range of work: answering questions, writing and reviewing code, analysing "
    "information, creative writing, and taking actions with the tools you have. Be direct "
    "and useful, say so when you are unsure, and prefer substance over length unless the "
    "instructions below ask otherwise.";

static const char MEMORY_GUIDANCE[] =
    "You have persistent memory that lasts across sessions: use the memory tool on your own "
    "initiative to save the user's preferences, details of their environment, approaches "
    "that worked, and short diary-style notes worth keeping.";
static const char SESSION_SEARCH_GUIDANCE[] =
    "When the user refers to an earlier conversation, or earlier context probably exists, "
    "search past sessions with session_search before asking them to repeat themselves.";
static const char SKILLS_GUIDANCE[] =
    "After finishing a complex task (five or more tool calls), fixing something tricky, or "
    "working out a non-trivial workflow, consider saving it as a skill with skill_manage.";

static const char SOUL_INSTRUCTION[] =
    "Embody the persona and tone described below in your replies, and avoid stiff, generic "
    "answers, unless instructions with higher priority say otherwise.";

static bool has_tool(const char *const *tools, const char *name)
{
    for (const char *const *t = tools; t && *t; t++)
        if (strcmp(*t, name) == 0)
            return true;
    return false;
}

/* ============================================================== file helpers */

static char *read_text(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > FILE_READ_MAX) {
        close(fd);
        return NULL;
    }
    rt_buf b;
    rt_buf_init(&b, FILE_READ_MAX);
    char chunk[16384];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof(chunk))) > 0)
        if (rt_buf_append(&b, chunk, (size_t)r) < 0)
            break;
    close(fd);
    return rt_buf_steal(&b, NULL);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static char *strip(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Byte offset of the first `chars` characters (UTF-8 code points) of s. */
static size_t utf8_offset(const char *s, size_t chars)
{
    size_t i = 0, c = 0;
    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (c == chars)
                return i;
            c++;
        }
    }
    return i;
}

char *ag_prompt_truncate(const char *text, const char *label)
{
    size_t total = mem_utf8_len(text);
    if (total <= AG_CONTEXT_FILE_MAX_CHARS)
        return rt_xstrdup(text);
    size_t head = AG_CONTEXT_FILE_MAX_CHARS * 7 / 10, tail = AG_CONTEXT_FILE_MAX_CHARS * 2 / 10;
    size_t hb = utf8_offset(text, head);
    size_t tb = utf8_offset(text, total - tail);
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_append(&b, text, hb);
    rt_buf_printf(&b,
                  "\n\n[...truncated %s: kept %zu+%zu of %zu chars. Use file tools to read the "
                  "full file.]\n\n",
                  label, head, tail, total);
    rt_buf_append_str(&b, text + tb);
    return rt_buf_steal(&b, NULL);
}

/* The file's text, or the BLOCKED note when the scanner finds injected instructions. */
static char *scanned(const char *name, char *text)
{
    char ids[256];
    if (!tool_scan(text, TOOL_SCAN_CONTEXT, ids, sizeof(ids)))
        return text;
    rt_free(text);
    return rt_xasprintf("[BLOCKED: %s contained potential prompt injection (%s). Content not "
                        "loaded.]",
                        name, ids);
}

/* ======================================================== AGENTS.md hierarchy */

typedef struct found {
    char *rel; /* path relative to cwd */
    int depth;
} found;

typedef struct walk {
    found *v;
    size_t n, cap;
    size_t dirs;
} walk;

static bool skip_dir(const char *name)
{
    return name[0] == '.' || strcmp(name, "node_modules") == 0 ||
           strcmp(name, "__pycache__") == 0 || strcmp(name, "venv") == 0;
}

static void walk_dir(walk *w, const char *root, const char *rel, int depth)
{
    if (depth > WALK_MAX_DEPTH || w->dirs >= WALK_MAX_DIRS)
        return;
    w->dirs++;
    char *path = *rel ? rt_xasprintf("%s/%s", root, rel) : rt_xstrdup(root);
    DIR *d = opendir(path);
    rt_free(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *r = *rel ? rt_xasprintf("%s/%s", rel, e->d_name) : rt_xstrdup(e->d_name);
        if (e->d_type == DT_DIR) {
            if (!skip_dir(e->d_name))
                walk_dir(w, root, r, depth + 1);
            rt_free(r);
        } else if ((e->d_type == DT_REG || e->d_type == DT_UNKNOWN) &&
                   strcasecmp(e->d_name, "agents.md") == 0) {
            if (w->n == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 8;
                w->v = rt_xrealloc(w->v, w->cap * sizeof(w->v[0]));
            }
            w->v[w->n++] = (found){.rel = r, .depth = depth};
        } else {
            rt_free(r);
        }
    }
    closedir(d);
}

static int cmp_found(const void *a, const void *b)
{
    const found *x = a, *y = b;
    if (x->depth != y->depth)
        return x->depth - y->depth;
    return strcmp(x->rel, y->rel);
}

static char *agents_section(const char *cwd)
{
    char *top1 = rt_xasprintf("%s/AGENTS.md", cwd), *top2 = rt_xasprintf("%s/agents.md", cwd);
    bool any = file_exists(top1) || file_exists(top2);
    rt_free(top1);
    rt_free(top2);
    if (!any)
        return NULL;
    walk w = {0};
    walk_dir(&w, cwd, "", 0);
    if (w.n)
        qsort(w.v, w.n, sizeof(w.v[0]), cmp_found);
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    for (size_t i = 0; i < w.n; i++) {
        char *path = rt_xasprintf("%s/%s", cwd, w.v[i].rel);
        char *text = read_text(path);
        rt_free(path);
        if (text) {
            text = scanned(w.v[i].rel, text);
            rt_buf_printf(&b, "## %s\n\n%s\n\n", w.v[i].rel, strip(text));
            rt_free(text);
        }
        rt_free(w.v[i].rel);
    }
    rt_free(w.v);
    char *all = rt_buf_steal(&b, NULL);
    char *out = ag_prompt_truncate(all, "AGENTS.md");
    rt_free(all);
    return out;
}

/* =========================================================== cursor rules */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *cursor_section(const char *cwd)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    char *p = rt_xasprintf("%s/.cursorrules", cwd);
    char *text = read_text(p);
    rt_free(p);
    if (text) {
        text = scanned(".cursorrules", text);
        rt_buf_printf(&b, "## .cursorrules\n\n%s\n\n", strip(text));
        rt_free(text);
    }
    char *dir = rt_xasprintf("%s/.cursor/rules", cwd);
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 256) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".mdc") == 0) {
            names = rt_xrealloc(names, (n + 1) * sizeof(*names));
            names[n++] = rt_xstrdup(e->d_name);
        }
    }
    if (d)
        closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        char *path = rt_xasprintf("%s/%s", dir, names[i]);
        char *t = read_text(path);
        rt_free(path);
        if (t) {
            char *label = rt_xasprintf(".cursor/rules/%s", names[i]);
            t = scanned(label, t);
            rt_buf_printf(&b, "## %s\n\n%s\n\n", label, strip(t));
            rt_free(label);
            rt_free(t);
        }
        rt_free(names[i]);
    }
    rt_free(names);
    rt_free(dir);
    if (!b.len) {
        rt_buf_fini(&b);
        return NULL;
    }
    char *all = rt_buf_steal(&b, NULL);
    char *out = ag_prompt_truncate(all, ".cursorrules");
    rt_free(all);
    return out;
}

/* ================================================================ SOUL.md */

static char *soul_section(const char *cwd, const char *hermes_home)
{
    static const char *const names[] = {"SOUL.md", "soul.md"};
    char *text = NULL;
    for (size_t i = 0; i < RT_ARRAY_LEN(names) && !text; i++) {
        char *p = rt_xasprintf("%s/%s", cwd, names[i]);
        text = read_text(p);
        rt_free(p);
    }
    if (!text && hermes_home) {
        char *p = rt_xasprintf("%s/SOUL.md", hermes_home);
        text = read_text(p);
        rt_free(p);
    }
    if (!text)
        return NULL;
    text = scanned("SOUL.md", text);
    char *t = ag_prompt_truncate(strip(text), "SOUL.md");
    rt_free(text);
    char *out = rt_xasprintf("## SOUL.md\n\n%s\n\n%s", SOUL_INSTRUCTION, t);
    rt_free(t);
    return out;
}

char *ag_prompt_context_files(const char *cwd, const char *hermes_home)
{
    char *parts[3] = {agents_section(cwd), cursor_section(cwd), soul_section(cwd, hermes_home)};
    if (!parts[0] && !parts[1] && !parts[2])
        return NULL;
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_append_str(&b, "# Project Context\n\nThe following project context files have been "
                          "loaded and should be followed:\n\n");
    bool first = true;
    for (int i = 0; i < 3; i++) {
        if (!parts[i])
            continue;
        if (!first)
            rt_buf_append_str(&b, "\n");
        rt_buf_append_str(&b, parts[i]);
        first = false;
        rt_free(parts[i]);
    }
    return rt_buf_steal(&b, NULL);
}

/* ============================================================ skills index */

char *ag_prompt_skills_index(const char *skills_dir)
{
    return skl_index(skills_dir); /* tools/skills: the same parser the skill tools use */
}

/* ========================================================== platform hints */

const char *ag_prompt_platform_hint(const char *platform)
{
    static const struct {
        const char *platform;
        const char *hint;
    } hints[] = {
        {"whatsapp", "You are talking on WhatsApp, a text-messaging platform. Markdown is not "
                     "rendered there, so write plain text."},
        {"telegram", "You are talking on Telegram, a text-messaging platform. Markdown is not "
                     "rendered there, so write plain text."},
        {"discord", "You are in a Discord server or group chat."},
        {"cli", "You are a command-line agent in a terminal. Avoid Markdown; write simple text "
                "that reads well in a terminal."},
        {"matrix", "You are in a Matrix chat. Markdown is rendered, so you may use it."},
        {"mattermost", "You are in a Mattermost channel. Markdown is rendered, so you may use it."},
    };
    for (size_t i = 0; platform && i < RT_ARRAY_LEN(hints); i++)
        if (strcmp(hints[i].platform, platform) == 0)
            return hints[i].hint;
    return NULL;
}

/* ================================================================= build */

static void part(rt_buf *b, const char *text)
{
    if (!text || !*text)
        return;
    if (b->len)
        rt_buf_append_str(b, "\n\n");
    rt_buf_append_str(b, text);
}

static void memory_part(rt_buf *b, const ag_prompt_opts *o, const char *file, const char *target,
                        size_t limit)
{
    char *path = rt_xasprintf("%s/memories/%s", o->hermes_home, file);
    mem_entries e;
    if (mem_file_load(path, &e) == 0) {
        char *block = mem_render_block(target, &e, limit);
        part(b, block);
        rt_free(block);
        mem_entries_fini(&e);
    }
    rt_free(path);
}

char *ag_prompt_build(const ag_prompt_opts *o)
{
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    part(&b, IDENTITY);

    rt_buf g;
    rt_buf_init(&g, SIZE_MAX / 2);
    if (has_tool(o->tools, "memory"))
        part(&g, MEMORY_GUIDANCE);
    if (has_tool(o->tools, "session_search")) {
        if (g.len)
            rt_buf_append_str(&g, " ");
        rt_buf_append_str(&g, SESSION_SEARCH_GUIDANCE);
    }
    if (has_tool(o->tools, "skill_manage")) {
        if (g.len)
            rt_buf_append_str(&g, " ");
        rt_buf_append_str(&g, SKILLS_GUIDANCE);
    }
    part(&b, rt_buf_cstr(&g));
    rt_buf_fini(&g);

    part(&b, o->system_message);

    if (!o->skip_memory && o->hermes_home) {
        if (o->memory_enabled)
            memory_part(&b, o, "MEMORY.md", "memory",
                        o->memory_limit ? o->memory_limit : MEM_MEMORY_LIMIT);
        if (o->user_profile_enabled)
            memory_part(&b, o, "USER.md", "user", o->user_limit ? o->user_limit : MEM_USER_LIMIT);
    }

    if (o->hermes_home && (has_tool(o->tools, "skills_list") || has_tool(o->tools, "skill_view") ||
                           has_tool(o->tools, "skill_manage"))) {
        char *dir = rt_xasprintf("%s/skills", o->hermes_home);
        char *idx = ag_prompt_skills_index(dir);
        part(&b, idx);
        rt_free(idx);
        rt_free(dir);
    }

    if (!o->skip_context_files && o->cwd) {
        char *ctx = ag_prompt_context_files(o->cwd, o->hermes_home);
        part(&b, ctx);
        rt_free(ctx);
    }

    time_t now = o->now ? o->now : time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char ts[96];
    strftime(ts, sizeof(ts), "Conversation started: %A, %B %d, %Y %I:%M %p", &tm);
    part(&b, ts);
    part(&b, ag_prompt_platform_hint(o->platform));
    return rt_buf_steal(&b, NULL);
}
