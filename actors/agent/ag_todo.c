/*
 * ag_todo — see ag_todo.h. Schema and results as the original (agent-core §3.3).
 */
#include "ag_todo.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "tool.h"

#include <string.h>

static const char *const STATUSES[] = {"pending", "in_progress", "completed", "cancelled"};

static bool valid_status(const char *s)
{
    for (size_t i = 0; s && i < 4; i++)
        if (strcmp(s, STATUSES[i]) == 0)
            return true;
    return false;
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

static cJSON *normalised(const cJSON *item)
{
    cJSON *t = cJSON_CreateObject();
    const char *id = str_of(item, "id"), *content = str_of(item, "content");
    const char *status = str_of(item, "status");
    cJSON_AddStringToObject(t, "id", id ? id : "?");
    cJSON_AddStringToObject(t, "content", content ? content : "(no description)");
    cJSON_AddStringToObject(t, "status", valid_status(status) ? status : "pending");
    return t;
}

static cJSON *find_id(cJSON *todos, const char *id)
{
    cJSON *t;
    cJSON_ArrayForEach(t, todos)
    {
        const char *tid = str_of(t, "id");
        if (tid && id && strcmp(tid, id) == 0)
            return t;
    }
    return NULL;
}

static void merge(cJSON *todos, const cJSON *items)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, items)
    {
        cJSON *cur = find_id(todos, str_of(item, "id"));
        if (!cur) {
            cJSON_AddItemToArray(todos, normalised(item));
            continue;
        }
        const char *content = str_of(item, "content"), *status = str_of(item, "status");
        if (content)
            cJSON_ReplaceItemInObjectCaseSensitive(cur, "content", cJSON_CreateString(content));
        if (valid_status(status))
            cJSON_ReplaceItemInObjectCaseSensitive(cur, "status", cJSON_CreateString(status));
    }
}

static char *result(const cJSON *todos)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddItemToObject(r, "todos", cJSON_Duplicate(todos, 1));
    int counts[4] = {0};
    const cJSON *t;
    cJSON_ArrayForEach(t, todos)
    {
        for (int i = 0; i < 4; i++)
            if (strcmp(str_of(t, "status") ? str_of(t, "status") : "", STATUSES[i]) == 0)
                counts[i]++;
    }
    cJSON *s = cJSON_AddObjectToObject(r, "summary");
    cJSON_AddNumberToObject(s, "total", cJSON_GetArraySize(todos));
    for (int i = 0; i < 4; i++)
        cJSON_AddNumberToObject(s, STATUSES[i], counts[i]);
    char *p = cJSON_PrintUnformatted(r);
    char *out = rt_xstrdup(p);
    cJSON_free(p);
    cJSON_Delete(r);
    return out;
}

char *ag_todo_apply(cJSON **todos, const char *args_json)
{
    if (!*todos)
        *todos = cJSON_CreateArray();
    cJSON *args = args_json && *args_json ? cJSON_Parse(args_json) : NULL;
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(args, "todos");
    if (cJSON_IsArray(items)) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(args, "merge"))) {
            merge(*todos, items);
        } else {
            cJSON *fresh = cJSON_CreateArray();
            const cJSON *item;
            cJSON_ArrayForEach(item, items) cJSON_AddItemToArray(fresh, normalised(item));
            cJSON_Delete(*todos);
            *todos = fresh;
        }
    }
    cJSON_Delete(args);
    return result(*todos);
}

char *ag_todo_injection(const cJSON *todos)
{
    if (!todos || cJSON_GetArraySize(todos) == 0)
        return NULL;
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_append_str(&b, "[Your task list was preserved across context compression]");
    const cJSON *t;
    cJSON_ArrayForEach(t, todos)
    {
        const char *st = str_of(t, "status") ? str_of(t, "status") : "pending";
        const char *mark = strcmp(st, "completed") == 0     ? "[x]"
                           : strcmp(st, "in_progress") == 0 ? "[>]"
                           : strcmp(st, "cancelled") == 0   ? "[~]"
                                                            : "[ ]";
        rt_buf_printf(&b, "\n- %s %s. %s (%s)", mark, str_of(t, "id") ? str_of(t, "id") : "?",
                      str_of(t, "content") ? str_of(t, "content") : "", st);
    }
    return rt_buf_steal(&b, NULL);
}

cJSON *ag_todo_hydrate(const cJSON *messages)
{
    for (int i = cJSON_GetArraySize(messages) - 1; i >= 0; i--) {
        const cJSON *m = cJSON_GetArrayItem(messages, i);
        const char *role = str_of(m, "role");
        if (!role || strcmp(role, "tool") != 0)
            continue;
        const char *content = str_of(m, "content");
        cJSON *j = content ? cJSON_Parse(content) : NULL;
        cJSON *todos = cJSON_DetachItemFromObjectCaseSensitive(j, "todos");
        cJSON_Delete(j);
        if (cJSON_IsArray(todos))
            return todos;
        cJSON_Delete(todos);
    }
    return NULL;
}

/* The schema only: the session handles calls itself (start is NULL). */
const tool_def tool_def_todo = {
    .name = "todo",
    .toolset = "todo",
    .schema = "{\"name\":\"todo\",\"description\":\"Manage your task list for the current session. "
              "Call with no arguments to read it. Pass todos to write it: merge=false replaces the "
              "whole list, merge=true updates items by id and appends new ones. Use it for tasks "
              "with several steps; keep exactly one item in_progress.\",\"parameters\":{\"type\":"
              "\"object\",\"properties\":{\"todos\":{\"type\":\"array\",\"description\":\"Task "
              "items to write.\",\"items\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":"
              "\"string\",\"description\":\"Unique item identifier\"},\"content\":{\"type\":"
              "\"string\",\"description\":\"Task description\"},\"status\":{\"type\":\"string\","
              "\"enum\":[\"pending\",\"in_progress\",\"completed\",\"cancelled\"],\"description\":"
              "\"Current status\"}},\"required\":[\"id\",\"content\",\"status\"]}},\"merge\":{"
              "\"type\":\"boolean\",\"description\":\"true: update existing items by id and add "
              "new ones. false (default): replace the entire list.\",\"default\":false}},"
              "\"required\":[]}}",
    .parallel_safe = false,
};
