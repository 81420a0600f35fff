/*
 * tool_memory — see tool_memory.h.
 */
#include "tool_memory.h"

#include "mem_store.h"

#include "rt_alloc.h"

#include <string.h>

static const char NOT_AVAILABLE[] =
    "Memory is not available. It may be disabled in config or this environment.";

/* The value at key as text for an error message: strings as they are, other JSON printed. */
static char *arg_text(const cJSON *v)
{
    if (cJSON_IsString(v))
        return rt_xstrdup(v->valuestring);
    char *p = cJSON_PrintUnformatted(v);
    char *s = rt_xstrdup(p ? p : "");
    cJSON_free(p);
    return s;
}

/* A non-empty string argument, or NULL (the original's `if not content`). */
static const char *nonempty(const cJSON *args, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* Takes ownership of text. */
static cJSON *error_take(char *text)
{
    cJSON *r = mem_error(text);
    rt_free(text);
    return r;
}

static cJSON *dispatch(const mem_store *s, const char *action, const char *target,
                       const cJSON *args)
{
    const char *content = nonempty(args, "content");
    const char *old_text = nonempty(args, "old_text");
    if (strcmp(action, "add") == 0) {
        if (!content)
            return mem_error("Content is required for 'add' action.");
        return mem_store_add(s, target, content);
    }
    if (strcmp(action, "replace") == 0) {
        if (!old_text)
            return mem_error("old_text is required for 'replace' action.");
        if (!content)
            return mem_error("content is required for 'replace' action.");
        return mem_store_replace(s, target, old_text, content);
    }
    if (strcmp(action, "remove") == 0) {
        if (!old_text)
            return mem_error("old_text is required for 'remove' action.");
        return mem_store_remove(s, target, old_text);
    }
    return error_take(rt_xasprintf("Unknown action '%s'. Use: add, replace, remove", action));
}

cJSON *tool_memory_call(const tool_env *env, const cJSON *args)
{
    /* Sub-agents run without memory (the original's skip_memory): the store is "missing". */
    if (!env || !env->hermes_home || !*env->hermes_home || env->delegate_depth > 0)
        return mem_error(NOT_AVAILABLE);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(args, "target");
    char *target = t ? arg_text(t) : rt_xstrdup("memory");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(args, "action");
    char *action = a ? arg_text(a) : rt_xstrdup("");
    cJSON *r;
    if ((t && !cJSON_IsString(t)) || !mem_target_file(target)) {
        r = error_take(rt_xasprintf("Invalid target '%s'. Use 'memory' or 'user'.", target));
    } else {
        char *dir = rt_xasprintf("%s/memories", env->hermes_home);
        mem_store s = {.dir = dir};
        r = dispatch(&s, action, target, args);
        rt_free(dir);
    }
    rt_free(target);
    rt_free(action);
    return r;
}

static void memory_start(rt_ctx *cx, tool_run *run)
{
    tool_finish_json(cx, run, tool_memory_call(run->env, run->args));
}

const tool_def tool_def_memory = {
    .name = "memory",
    .toolset = "memory",
    .schema =
        "{\"name\":\"memory\",\"description\":\"Save important information to persistent "
        "memory that survives across sessions. Your memory appears in your system prompt "
        "at session start -- it's how you remember things about the user and your environment "
        "between conversations.\\n\\nWHEN TO SAVE (do this proactively, don't wait to be "
        "asked):\\n- User shares a preference, habit, or personal detail (name, role, timezone, "
        "coding style)\\n- You discover something about the environment (OS, installed tools, "
        "project structure)\\n- User corrects you or says 'remember this' / 'don't do that "
        "again'\\n- You learn a convention, API quirk, or workflow specific to this user's "
        "setup\\n- You completed something - log it like a diary entry\\n- After completing "
        "a complex task, save a brief note about what was done\\n\\n- If you've discovered "
        "a new way to do something, solved a problem that could be necessary later, save "
        "it as a skill with the skill tool\\n\\nTWO TARGETS:\\n- 'user': who the user is "
        "-- name, role, preferences, communication style, pet peeves\\n- 'memory': your "
        "notes -- environment facts, project conventions, tool quirks, lessons learned\\n\\nACTION"
        "S: add (new entry), replace (update existing -- old_text identifies it), remove "
        "(delete -- old_text identifies it).\\nCapacity shown in system prompt. When >80%, "
        "consolidate entries before adding new ones.\\n\\nSKIP: trivial/obvious info, things "
        "easily re-discovered, raw data dumps.\",\"parameters\":{\"type\":\"object\",\"properties\""
        ":{\"action\":{\"type\":\"string\",\"enum\":[\"add\",\"replace\",\"remove\"],\"description"
        "\":\"The action to perform.\"},\"target\":{\"type\":\"string\",\"enum\":[\"memory\",\"use"
        "r\"],\"description\":\"Which memory store: 'memory' for personal notes, 'user' "
        "for user profile.\"},\"content\":{\"type\":\"string\",\"description\":\"The entry "
        "content. Required for 'add' and 'replace'.\"},\"old_text\":{\"type\":\"string\",\"descrip"
        "tion\":\"Short unique substring identifying the entry to replace or remove.\"}},\"require"
        "d\":[\"action\",\"target\"]}}",
    .blocking = true,       /* file I/O and a lock wait: a detached actor */
    .parallel_safe = false, /* calls of one response change the same files in order */
    .start = memory_start,
};
