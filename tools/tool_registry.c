/*
 * tool_registry — the tool table, toolsets, and the actor every tool call runs in.
 *
 * Tools are found through weak references to `tool_def_<name>`: a tool exists in a build
 * exactly when its file is linked (tools/ is an object library, so every tool file is).
 * Adding a tool therefore touches only its own file and tools/CMakeLists.txt. The order of
 * the list below is the original's; the tools array sent to the model is sorted by name.
 *
 * Toolsets follow the original's toolsets.py (agent-core §3.2), including the legacy
 * names; names of tools this build does not have resolve to nothing.
 */
#include "tool.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ============================================================== tool table */

#define TOOLS(X)                                                                                   \
    X(web_search)                                                                                  \
    X(web_extract)                                                                                 \
    X(terminal)                                                                                    \
    X(process)                                                                                     \
    X(read_file)                                                                                   \
    X(write_file)                                                                                  \
    X(patch)                                                                                       \
    X(search_files)                                                                                \
    X(vision_analyze)                                                                              \
    X(image_generate)                                                                              \
    X(mixture_of_agents)                                                                           \
    X(skills_list)                                                                                 \
    X(skill_view)                                                                                  \
    X(skill_manage)                                                                                \
    X(browser_navigate)                                                                            \
    X(browser_snapshot)                                                                            \
    X(browser_click)                                                                               \
    X(browser_type)                                                                                \
    X(browser_scroll)                                                                              \
    X(browser_back)                                                                                \
    X(browser_press)                                                                               \
    X(browser_close)                                                                               \
    X(browser_get_images)                                                                          \
    X(browser_vision)                                                                              \
    X(text_to_speech)                                                                              \
    X(todo)                                                                                        \
    X(memory)                                                                                      \
    X(session_search)                                                                              \
    X(clarify)                                                                                     \
    X(execute_code)                                                                                \
    X(delegate_task)                                                                               \
    X(schedule_cronjob)                                                                            \
    X(list_cronjobs)                                                                               \
    X(remove_cronjob)                                                                              \
    X(send_message)                                                                                \
    X(query_user_context)                                                                          \
    X(test_echo) /* tests/: a tool the unit tests link in */

#define DECLARE_WEAK(n) extern const tool_def tool_def_##n __attribute__((weak));
TOOLS(DECLARE_WEAK)
#undef DECLARE_WEAK

static const tool_def *const candidates[] = {
#define ADDR(n) &tool_def_##n,
    TOOLS(ADDR)
#undef ADDR
};

static const tool_def *present[RT_ARRAY_LEN(candidates) + 1];
static pthread_once_t present_once = PTHREAD_ONCE_INIT;

static void collect_present(void)
{
    size_t n = 0;
    for (size_t i = 0; i < RT_ARRAY_LEN(candidates); i++)
        if (candidates[i]) /* weak: NULL when the tool is not linked */
            present[n++] = candidates[i];
    present[n] = NULL;
}

const tool_def *const *tool_all(void)
{
    pthread_once(&present_once, collect_present);
    return present;
}

const tool_def *tool_find(const char *name)
{
    for (const tool_def *const *d = tool_all(); *d; d++)
        if (strcmp((*d)->name, name) == 0)
            return *d;
    return NULL;
}

/* ================================================================ toolsets */

#define CORE_TOOLS                                                                                 \
    "web_search", "web_extract", "terminal", "process", "read_file", "write_file", "patch",        \
        "search_files", "vision_analyze", "image_generate", "mixture_of_agents", "skills_list",    \
        "skill_view", "skill_manage", "browser_navigate", "browser_snapshot", "browser_click",     \
        "browser_type", "browser_scroll", "browser_back", "browser_press", "browser_close",        \
        "browser_get_images", "browser_vision", "text_to_speech", "todo", "memory",                \
        "session_search", "clarify", "execute_code", "delegate_task", "schedule_cronjob",          \
        "list_cronjobs", "remove_cronjob", "send_message", "query_user_context"

typedef struct toolset {
    const char *name;
    const char *tools[40];
    const char *includes[8];
} toolset;

static const toolset toolsets[] = {
    {"web", {"web_search", "web_extract"}, {NULL}},
    {"search", {"web_search"}, {NULL}},
    {"vision", {"vision_analyze"}, {NULL}},
    {"image_gen", {"image_generate"}, {NULL}},
    {"terminal", {"terminal", "process"}, {NULL}},
    {"moa", {"mixture_of_agents"}, {NULL}},
    {"skills", {"skills_list", "skill_view", "skill_manage"}, {NULL}},
    {"browser",
     {"browser_navigate", "browser_snapshot", "browser_click", "browser_type", "browser_scroll",
      "browser_back", "browser_press", "browser_close", "browser_get_images", "browser_vision",
      "web_search"},
     {NULL}},
    {"cronjob", {"schedule_cronjob", "list_cronjobs", "remove_cronjob"}, {NULL}},
    {"file", {"read_file", "write_file", "patch", "search_files"}, {NULL}},
    {"tts", {"text_to_speech"}, {NULL}},
    {"todo", {"todo"}, {NULL}},
    {"memory", {"memory"}, {NULL}},
    {"session_search", {"session_search"}, {NULL}},
    {"clarify", {"clarify"}, {NULL}},
    {"code_execution", {"execute_code"}, {NULL}},
    {"delegation", {"delegate_task"}, {NULL}},
    {"messaging", {"send_message"}, {NULL}},
    {"honcho", {"query_user_context"}, {NULL}},
    {"debugging", {"terminal", "process"}, {"web", "file"}},
    {"safe", {"mixture_of_agents"}, {"web", "vision", "image_gen"}},
    {"hermes-cli", {CORE_TOOLS}, {NULL}},
    {"hermes-telegram", {CORE_TOOLS}, {NULL}},
    {"hermes-discord", {CORE_TOOLS}, {NULL}},
    {"hermes-whatsapp", {CORE_TOOLS}, {NULL}},
    {"hermes-slack", {CORE_TOOLS}, {NULL}},
    {"hermes-matrix", {CORE_TOOLS}, {NULL}},
    {"hermes-mattermost", {CORE_TOOLS}, {NULL}},
    {"hermes-api-server", {CORE_TOOLS}, {NULL}},
    {"hermes-gateway",
     {NULL},
     {"hermes-telegram", "hermes-discord", "hermes-whatsapp", "hermes-slack", "hermes-matrix",
      "hermes-mattermost"}},
    /* Legacy names from before toolsets existed. */
    {"web_tools", {NULL}, {"web"}},
    {"terminal_tools", {NULL}, {"terminal"}},
    {"file_tools", {NULL}, {"file"}},
    {"vision_tools", {NULL}, {"vision"}},
    {"image_tools", {NULL}, {"image_gen"}},
    {"moa_tools", {NULL}, {"moa"}},
    {"browser_tools", {NULL}, {"browser"}},
    {"cronjob_tools", {NULL}, {"cronjob"}},
    {"skills_tools", {NULL}, {"skills"}},
};

static const toolset *find_toolset(const char *name)
{
    for (size_t i = 0; i < RT_ARRAY_LEN(toolsets); i++)
        if (strcmp(toolsets[i].name, name) == 0)
            return &toolsets[i];
    return NULL;
}

const char *const *tool_toolset_names(void)
{
    static const char *names[RT_ARRAY_LEN(toolsets) + 1];
    for (size_t i = 0; i < RT_ARRAY_LEN(toolsets); i++)
        names[i] = toolsets[i].name;
    return names;
}

typedef struct name_set {
    const char **v; /* NULL-terminated once allocated */
    size_t n, cap;
} name_set;

static void set_init(name_set *s)
{
    s->cap = 64;
    s->n = 0;
    s->v = rt_xcalloc(s->cap, sizeof(s->v[0]));
}

static void set_add(name_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0)
            return;
    if (s->n + 1 >= s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = rt_xrealloc(s->v, s->cap * sizeof(s->v[0]));
    }
    s->v[s->n++] = name;
    s->v[s->n] = NULL;
}

static void set_remove(name_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0) {
            memmove(&s->v[i], &s->v[i + 1], (s->n - i) * sizeof(s->v[0]));
            s->n--;
            return;
        }
}

/* Expand a toolset (or "all"/"*") into names; depth bounds include cycles. */
static bool expand(name_set *out, const char *name, int depth)
{
    if (depth > 8)
        return true; /* a cycle: stop following it */
    if (strcmp(name, "all") == 0 || strcmp(name, "*") == 0) {
        for (const tool_def *const *d = tool_all(); *d; d++)
            set_add(out, (*d)->name);
        return true;
    }
    const toolset *ts = find_toolset(name);
    if (!ts)
        return false;
    for (size_t i = 0; i < RT_ARRAY_LEN(ts->tools) && ts->tools[i]; i++)
        set_add(out, ts->tools[i]);
    for (size_t i = 0; i < RT_ARRAY_LEN(ts->includes) && ts->includes[i]; i++)
        expand(out, ts->includes[i], depth + 1);
    return true;
}

const char **tool_toolset_tools(const char *name)
{
    name_set s;
    set_init(&s);
    expand(&s, name, 0);
    return s.v;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **tool_resolve(const char *const *enabled, const char *const *disabled,
                          const tool_env *env, void (*unknown)(const char *name, void *arg),
                          void *arg)
{
    name_set want;
    set_init(&want);
    if (enabled && enabled[0]) {
        for (const char *const *e = enabled; *e; e++)
            if (!expand(&want, *e, 0) && unknown)
                unknown(*e, arg);
    } else {
        expand(&want, "all", 0);
        for (const char *const *d = disabled; d && *d; d++) {
            name_set drop;
            set_init(&drop);
            if (!expand(&drop, *d, 0) && unknown)
                unknown(*d, arg);
            for (size_t i = 0; i < drop.n; i++)
                set_remove(&want, drop.v[i]);
            rt_free(drop.v);
        }
    }
    /* Keep what this build has and what is available to this session. */
    size_t k = 0;
    for (size_t i = 0; i < want.n; i++) {
        const tool_def *d = tool_find(want.v[i]);
        if (d && (!d->available || !env || d->available(env)))
            want.v[k++] = d->name;
    }
    want.v[k] = NULL;
    qsort(want.v, k, sizeof(want.v[0]), cmp_names);
    return want.v;
}

cJSON *tool_schemas(const char *const *names)
{
    cJSON *arr = cJSON_CreateArray();
    for (const char *const *n = names; n && *n; n++) {
        const tool_def *d = tool_find(*n);
        cJSON *s = d ? cJSON_Parse(d->schema) : NULL;
        if (!s) {
            RT_WARN_ONCE("tools", "tool %s has no valid schema", *n);
            continue;
        }
        cJSON_AddItemToArray(arr, s);
    }
    return arr;
}

/* Distinct tool sets are few (per platform, per sub-agent toolset): a short list suffices. */
typedef struct schema_set {
    struct schema_set *next;
    char *key; /* the names, comma-joined */
    cJSON *schemas;
} schema_set;

static pthread_mutex_t schema_lock = PTHREAD_MUTEX_INITIALIZER;
static schema_set *schema_sets;

const cJSON *tool_schemas_shared(const char *const *names)
{
    rt_buf key;
    rt_buf_init(&key, SIZE_MAX / 2);
    for (const char *const *n = names; n && *n; n++)
        rt_buf_printf(&key, "%s,", *n);
    pthread_mutex_lock(&schema_lock);
    schema_set *s = schema_sets;
    while (s && strcmp(s->key, rt_buf_cstr(&key)) != 0)
        s = s->next;
    if (!s) {
        s = rt_xcalloc(1, sizeof(*s));
        s->key = rt_buf_steal(&key, NULL);
        s->schemas = tool_schemas(names);
        s->next = schema_sets;
        schema_sets = s;
    }
    const cJSON *out = s->schemas;
    pthread_mutex_unlock(&schema_lock);
    rt_buf_fini(&key);
    return out;
}

/* ================================================================ tool_env */

tool_env *tool_env_new(void)
{
    tool_env *e = rt_xcalloc(1, sizeof(*e));
    atomic_init(&e->refs, 1);
    e->terminal_timeout_s = 180;
    return e;
}

tool_env *tool_env_ref(tool_env *e)
{
    /* relaxed: the caller already holds a reference. */
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    return e;
}

void tool_env_unref(tool_env *e)
{
    if (!e)
        return;
    /* acq_rel: the last holder sees every other holder's reads finished. */
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1)
        return;
    rt_free(e->hermes_home);
    rt_free(e->cwd);
    rt_free(e->task_id);
    rt_free(e->session_key);
    rt_free(e->session_id);
    rt_free(e->platform);
    for (char **t = e->enabled_tools; t && *t; t++)
        rt_free(*t);
    rt_free(e->enabled_tools);
    for (char **t = e->command_allowlist; t && *t; t++)
        rt_free(*t);
    rt_free(e->command_allowlist);
    for (char **t = e->child_toolsets; t && *t; t++)
        rt_free(*t);
    rt_free(e->child_toolsets);
    rt_free(e);
}

bool tool_env_has_tool(const tool_env *e, const char *name)
{
    for (char **t = e->enabled_tools; t && *t; t++)
        if (strcmp(*t, name) == 0)
            return true;
    return false;
}

/* ============================================================ the call actor */

typedef struct tool_msg_start {
    rt_msg hdr;
    char *args; /* owned JSON text */
} tool_msg_start;

static void drop_start(rt_msg *m)
{
    rt_free(((tool_msg_start *)m)->args);
}

static void drop_result(rt_msg *m)
{
    rt_free(((tool_msg_result *)m)->result);
}

static void drop_progress(rt_msg *m)
{
    rt_free(((tool_msg_progress *)m)->text);
}

static void drop_ask(rt_msg *m)
{
    tool_msg_ask *a = (tool_msg_ask *)m;
    rt_free(a->text);
    rt_free(a->description);
    rt_free(a->pattern_key);
    cJSON_Delete(a->choices);
}

static void on_start(rt_ctx *cx, tool_run *run, tool_msg_start *m)
{
    cJSON *args = NULL;
    if (m->args && *m->args)
        args = cJSON_Parse(m->args);
    if (!args)
        args = cJSON_CreateObject();
    if (!cJSON_IsObject(args)) {
        cJSON_Delete(args);
        tool_finish_error(cx, run, "Tool arguments must be a JSON object.");
        return;
    }
    run->args = args;
    run->def->start(cx, run);
}

static void call_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    tool_run *run = state;
    if (run->finished)
        return; /* late messages after the result went out */
    switch (m->type) {
    case TOOL_MSG_START: on_start(cx, run, (tool_msg_start *)m); break;
    case RT_MSG_INTERRUPT:
        run->interrupted = true;
        if (run->def->on_interrupt)
            run->def->on_interrupt(cx, run);
        break;
    case RT_MSG_STOP: break; /* the runtime ends us after this; fini cleans up */
    default:
        if (run->def->on_msg)
            run->def->on_msg(cx, run, m);
        break;
    }
}

static void call_fini(void *state)
{
    tool_run *run = state;
    if (!run->finished && run->def->cleanup)
        run->def->cleanup(run);
    cJSON_Delete(run->args);
    tool_env_unref(run->env);
    rt_free(run->call_id);
}

static const rt_actor_type call_type = {"tool", call_behave, call_fini, sizeof(tool_run)};

rt_ref tool_start_call(rt_ctx *cx, const tool_def *def, tool_env *env, uint64_t seq,
                       const char *call_id, const char *args_json)
{
    if (!def || !def->start)
        return 0;
    tool_run init = {
        .session = rt_self(cx),
        .seq = seq,
        .call_id = rt_xstrdup(call_id ? call_id : ""),
        .def = def,
        .env = tool_env_ref(env),
    };
    rt_spawn_opts o = {.flags = RT_SPAWN_LINK | (def->blocking ? RT_SPAWN_DETACHED : 0)};
    rt_ref ref = rt_spawn(cx, &call_type, &init, &o);
    tool_msg_start *m = RT_MSG_NEW(tool_msg_start, TOOL_MSG_START);
    m->args = rt_xstrdup(args_json ? args_json : "");
    m->hdr.drop = drop_start;
    rt_send(cx, ref, &m->hdr);
    return ref;
}

/* =========================================================== tool helpers */

void tool_finish(rt_ctx *cx, tool_run *run, char *result)
{
    if (run->finished) {
        rt_free(result);
        return;
    }
    run->finished = true;
    if (run->def->cleanup)
        run->def->cleanup(run);
    tool_msg_result *r = RT_MSG_NEW(tool_msg_result, TOOL_MSG_RESULT);
    r->seq = run->seq;
    r->result = result ? result : rt_xstrdup("");
    r->interrupted = run->interrupted;
    r->hdr.drop = drop_result;
    rt_send(cx, run->session, &r->hdr);
    rt_exit(cx, RT_EXIT_NORMAL);
}

void tool_finish_json(rt_ctx *cx, tool_run *run, cJSON *obj)
{
    char *p = cJSON_PrintUnformatted(obj);
    char *s = rt_xstrdup(p ? p : "{}");
    cJSON_free(p);
    cJSON_Delete(obj);
    tool_finish(cx, run, s);
}

void tool_finish_error(rt_ctx *cx, tool_run *run, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", text);
    tool_finish_json(cx, run, o);
}

void tool_progress(rt_ctx *cx, tool_run *run, const char *fmt, ...)
{
    tool_msg_progress *p = RT_MSG_NEW(tool_msg_progress, TOOL_MSG_PROGRESS);
    va_list ap;
    va_start(ap, fmt);
    rt_buf b;
    rt_buf_init(&b, 4096);
    (void)rt_buf_vprintf(&b, fmt, ap); /* over 4 KiB: the line is dropped, progress is optional */
    va_end(ap);
    p->seq = run->seq;
    p->text = rt_buf_steal(&b, NULL);
    p->hdr.drop = drop_progress;
    rt_send(cx, run->session, &p->hdr);
}

void tool_ask(rt_ctx *cx, tool_run *run, int kind, char *text, char *description, char *pattern_key,
              cJSON *choices)
{
    tool_msg_ask *a = RT_MSG_NEW(tool_msg_ask, TOOL_MSG_ASK);
    a->seq = run->seq;
    a->reply_to = rt_self(cx);
    a->kind = kind;
    a->text = text;
    a->description = description;
    a->pattern_key = pattern_key;
    a->choices = choices;
    a->hdr.drop = drop_ask;
    rt_send(cx, run->session, &a->hdr);
}

static void drop_answer(rt_msg *m)
{
    rt_free(((tool_msg_answer *)m)->text);
}

rt_msg *tool_answer_new(int answer, const char *text)
{
    tool_msg_answer *a = RT_MSG_NEW(tool_msg_answer, TOOL_MSG_ANSWER);
    a->answer = answer;
    a->text = text ? rt_xstrdup(text) : NULL;
    a->hdr.drop = drop_answer;
    return &a->hdr;
}

const char *tool_arg_str(const tool_run *run, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(run->args, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int64_t tool_arg_int(const tool_run *run, const char *key, int64_t def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(run->args, key);
    if (cJSON_IsNumber(v))
        return (int64_t)v->valuedouble;
    int64_t n;
    if (cJSON_IsString(v) && rt_parse_i64(v->valuestring, INT64_MIN, INT64_MAX, &n) == 0)
        return n; /* models sometimes quote numbers */
    return def;
}

bool tool_arg_bool(const tool_run *run, const char *key, bool def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(run->args, key);
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    bool b;
    if (cJSON_IsString(v) && rt_parse_bool(v->valuestring, &b) == 0)
        return b;
    return def;
}
