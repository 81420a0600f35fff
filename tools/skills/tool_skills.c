/*
 * tool_skills — see tool_skills.h.
 */
#include "tool_skills.h"

#include "rt_alloc.h"
#include "skl_store.h"

#include <string.h>

char *tool_skills_root(const tool_env *env)
{
    if (!env || !env->hermes_home || !*env->hermes_home)
        return NULL;
    return rt_xasprintf("%s/skills", env->hermes_home);
}

static const char *arg(const cJSON *args, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

cJSON *tool_skills_call(const char *name, const tool_env *env, const cJSON *args)
{
    char *root = tool_skills_root(env);
    cJSON *r;
    if (!root) {
        r = cJSON_CreateObject();
        cJSON_AddFalseToObject(r, "success");
        cJSON_AddStringToObject(r, "error", "Skills are not available: no Hermes home directory.");
        return r;
    }
    if (strcmp(name, "skills_list") == 0)
        r = skl_list(root, arg(args, "category"));
    else if (strcmp(name, "skill_view") == 0)
        r = skl_view(root, arg(args, "name"), arg(args, "file_path"));
    else
        r = skl_manage(root, args);
    rt_free(root);
    return r;
}

static void list_start(rt_ctx *cx, tool_run *run)
{
    tool_finish_json(cx, run, tool_skills_call("skills_list", run->env, run->args));
}

static void view_start(rt_ctx *cx, tool_run *run)
{
    tool_finish_json(cx, run, tool_skills_call("skill_view", run->env, run->args));
}

static void manage_start(rt_ctx *cx, tool_run *run)
{
    tool_finish_json(cx, run, tool_skills_call("skill_manage", run->env, run->args));
}

const tool_def tool_def_skills_list = {
    .name = "skills_list",
    .toolset = "skills",
    .schema = "{\"name\":\"skills_list\",\"description\":\"List the installed skills with their "
              "names, short descriptions and categories. Skills are documents with step-by-step "
              "instructions for particular kinds of tasks; load one with skill_view(name) to read "
              "it.\",\"parameters\":{\"type\":\"object\",\"properties\":{\"category\":{\"type\":"
              "\"string\",\"description\":\"Only list the skills of this category.\"}},"
              "\"required\":[]}}",
    .blocking = true,
    .parallel_safe = true,
    .start = list_start,
};

const tool_def tool_def_skill_view = {
    .name = "skill_view",
    .toolset = "skills",
    .schema = "{\"name\":\"skill_view\",\"description\":\"Load a skill: its full SKILL.md "
              "instructions, tags, related skills and the list of its supporting files "
              "(references, templates, scripts, assets). Pass file_path to read one supporting "
              "file instead.\",\"parameters\":{\"type\":\"object\",\"properties\":{\"name\":{"
              "\"type\":\"string\",\"description\":\"The skill's name as shown by skills_list "
              "(or category/name).\"},\"file_path\":{\"type\":\"string\",\"description\":\"A "
              "supporting file inside the skill, relative to its directory, e.g. "
              "'references/api.md'. Omit it to get SKILL.md.\"}},\"required\":[\"name\"]}}",
    .blocking = true,
    .parallel_safe = true,
    .start = view_start,
};

const tool_def tool_def_skill_manage = {
    .name = "skill_manage",
    .toolset = "skills",
    .schema =
        "{\"name\":\"skill_manage\",\"description\":\"Create, change or delete skills, your "
        "procedural memory: reusable instructions for recurring kinds of tasks, kept in "
        "~/.hermes/skills/.\\n\\nActions: create (a complete SKILL.md, optional category), "
        "patch (replace old_string by new_string; best for small fixes), edit (replace the "
        "whole SKILL.md), delete, write_file (add or replace a supporting file), remove_file."
        "\\n\\nSave a skill after a complex task succeeded (many tool calls), after overcoming "
        "errors, when the user corrected your approach, or when asked to remember a "
        "procedure. Fix a skill as soon as you find it wrong, outdated or missing a step. Ask "
        "the user before creating or deleting one.\\n\\nA SKILL.md starts with YAML front "
        "matter between --- lines holding name and description, followed by the "
        "instructions: when to use it, numbered steps with exact commands, pitfalls, and how "
        "to verify the result.\",\"parameters\":{\"type\":\"object\",\"properties\":{"
        "\"action\":{\"type\":\"string\",\"enum\":[\"create\",\"patch\",\"edit\",\"delete\","
        "\"write_file\",\"remove_file\"],\"description\":\"What to do.\"},\"name\":{\"type\":"
        "\"string\",\"description\":\"The skill's name: lowercase letters, digits, '.', '_' "
        "and '-', at most 64 characters. Other actions than create need an existing skill."
        "\"},\"content\":{\"type\":\"string\",\"description\":\"The complete SKILL.md (front "
        "matter and body), for create and edit. Read the skill with skill_view first when "
        "editing.\"},\"old_string\":{\"type\":\"string\",\"description\":\"patch: the exact "
        "text to replace; it must occur once unless replace_all is true.\"},\"new_string\":{"
        "\"type\":\"string\",\"description\":\"patch: the replacement text (may be empty to "
        "delete).\"},\"replace_all\":{\"type\":\"boolean\",\"description\":\"patch: replace "
        "every occurrence (default false).\"},\"category\":{\"type\":\"string\",\"description"
        "\":\"create: a category directory to put the skill in, e.g. 'devops'.\"},"
        "\"file_path\":{\"type\":\"string\",\"description\":\"A supporting file under "
        "references/, templates/, scripts/ or assets/: required for write_file and "
        "remove_file; for patch it selects the file (default SKILL.md).\"},\"file_content\":{"
        "\"type\":\"string\",\"description\":\"write_file: the file's content.\"}},"
        "\"required\":[\"action\",\"name\"]}}",
    .blocking = true,
    .parallel_safe = false, /* calls of one response may change the same skill */
    .start = manage_start,
};
