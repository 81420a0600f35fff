/*
 * tool_search_files — the `search_files` tool (agent-core §3.3; the original's
 * ShellFileOperations.search). The engine, its backends and the result shapes are in
 * ft_search.h; this file maps the arguments (including the legacy targets "grep" and
 * "find") and runs the search in slices (ft_tool.h), so an interrupt stops it at once
 * with the results found so far.
 *
 * Threads: a detached call actor (directory walks, ripgrep).
 */
#include "ft_fs.h"
#include "ft_search.h"
#include "ft_tool.h"
#include "rt_alloc.h"
#include "tool.h"

#include <string.h>

static const char SCHEMA[] =
    "{\"name\":\"search_files\",\"description\":\"Search file contents or find files by name."
    " Use this instead of grep/rg/find/ls in terminal. Ripgrep-backed, faster than shell equi"
    "valents.\\n\\nContent search (target='content'): Regex search inside files. Output modes"
    ": full matches with line numbers, file paths only, or match counts.\\n\\nFile search (ta"
    "rget='files'): Find files by glob pattern (e.g., '*.py', '*config*'). Also use this inst"
    "ead of ls — results sorted by modification time.\",\"parameters\":{\"type\":\"object\",\""
    "properties\":{\"pattern\":{\"type\":\"string\",\"description\":\"Regex pattern for conte"
    "nt search, or glob pattern (e.g., '*.py') for file search\"},\"target\":{\"type\":\"stri"
    "ng\",\"enum\":[\"content\",\"files\"],\"description\":\"'content' searches inside file c"
    "ontents, 'files' searches for files by name\",\"default\":\"content\"},\"path\":{\"type\""
    ":\"string\",\"description\":\"Directory or file to search in (default: current working d"
    "irectory)\",\"default\":\".\"},\"file_glob\":{\"type\":\"string\",\"description\":\"Filt"
    "er files by pattern in grep mode (e.g., '*.py' to only search Python files)\"},\"limit\""
    ":{\"type\":\"integer\",\"description\":\"Maximum number of results to return (default: 5"
    "0)\",\"default\":50},\"offset\":{\"type\":\"integer\",\"description\":\"Skip first N res"
    "ults for pagination (default: 0)\",\"default\":0},\"output_mode\":{\"type\":\"string\",\""
    "enum\":[\"content\",\"files_only\",\"count\"],\"description\":\"Output format for grep m"
    "ode: 'content' shows matching lines with line numbers, 'files_only' lists file paths, 'c"
    "ount' shows match counts per file\",\"default\":\"content\"},\"context\":{\"type\":\"int"
    "eger\",\"description\":\"Number of context lines before and after each match (grep mode "
    "only)\",\"default\":0}},\"required\":[\"pattern\"]}}";

static int target_of(const char *t)
{
    return t && (strcmp(t, "files") == 0 || strcmp(t, "find") == 0) ? FT_TARGET_FILES
                                                                    : FT_TARGET_CONTENT;
}

static int mode_of(const char *m)
{
    if (m && strcmp(m, "files_only") == 0)
        return FT_MODE_FILES_ONLY;
    if (m && strcmp(m, "count") == 0)
        return FT_MODE_COUNT;
    return FT_MODE_CONTENT;
}

static void search_slice(rt_ctx *cx, tool_run *run)
{
    cJSON *res = NULL;
    if (ft_search_step(run->data, FT_STEP_SLICE_MS, &res)) {
        tool_finish_json(cx, run, res); /* cleanup frees the job */
        return;
    }
    ft_tool_step(cx);
}

static void search_start(rt_ctx *cx, tool_run *run)
{
    const char *pattern = tool_arg_str(run, "pattern");
    const char *path = tool_arg_str(run, "path");
    char *display = ft_expand_user(path && *path ? path : ".");
    ft_search_opts o = {
        .pattern = pattern ? pattern : "",
        .path = display,
        .cwd = run->env ? run->env->cwd : NULL,
        .file_glob = tool_arg_str(run, "file_glob"),
        .target = target_of(tool_arg_str(run, "target")),
        .mode = mode_of(tool_arg_str(run, "output_mode")),
        .limit = tool_arg_int(run, "limit", 50),
        .offset = tool_arg_int(run, "offset", 0),
        .context = tool_arg_int(run, "context", 0),
    };
    cJSON *res = NULL;
    ft_search *s = ft_search_start(&o, &res);
    rt_free(display);
    if (!s) {
        tool_finish_json(cx, run, res);
        return;
    }
    run->data = s;
    search_slice(cx, run);
}

static void search_msg(rt_ctx *cx, tool_run *run, rt_msg *m)
{
    if (m->type == FT_MSG_STEP && run->data)
        search_slice(cx, run);
}

static void search_interrupt(rt_ctx *cx, tool_run *run)
{
    if (!run->data)
        return;
    tool_finish_json(cx, run,
                     ft_search_stop(run->data, "Search interrupted; results are incomplete"));
}

static void search_cleanup(tool_run *run)
{
    ft_search_free(run->data);
    run->data = NULL;
}

const tool_def tool_def_search_files = {
    .name = "search_files",
    .toolset = "file",
    .schema = SCHEMA,
    .blocking = true,
    .parallel_safe = true,
    .start = search_start,
    .on_msg = search_msg,
    .on_interrupt = search_interrupt,
    .cleanup = search_cleanup,
};
