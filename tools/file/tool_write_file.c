/*
 * tool_write_file — the `write_file` tool (agent-core §3.3; the original's
 * ShellFileOperations.write_file).
 *
 * Result: {bytes_written, dirs_created} or {bytes_written:0, dirs_created:false, error}
 * (WriteResult.to_dict keeps everything but None). Refused paths (ft_fs.h deny list):
 * "Write denied: '<path>' is a protected system/credential file."
 *
 * Differences from the original, on purpose:
 *   - the write is atomic (temporary file in the same directory, fsync, rename) and keeps
 *     an existing file's mode; a symlink is written through to its target, never replaced;
 *   - dirs_created is true only when a directory was actually created (the original said
 *     true for any path with a directory part);
 *   - symlinks and '..' cannot reach a protected file (the deny check resolves them all).
 *
 * Threads: a detached call actor (blocking writes).
 */
#include "ft_fs.h"
#include "ft_text.h"
#include "ft_tool.h"
#include "rt_alloc.h"
#include "rt_util.h"
#include "tool.h"

#include <string.h>

static const char SCHEMA[] =
    "{\"name\":\"write_file\",\"description\":\"Write content to a file, completely replacing"
    " existing content. Use this instead of echo/cat heredoc in terminal. Creates parent dire"
    "ctories automatically. OVERWRITES the entire file — use 'patch' for targeted edits.\",\""
    "parameters\":{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"descri"
    "ption\":\"Path to the file to write (will be created if it doesn't exist, overwritten if"
    " it does)\"},\"content\":{\"type\":\"string\",\"description\":\"Complete content to writ"
    "e to the file\"}},\"required\":[\"path\",\"content\"]}}";

static cJSON *write_result(int64_t bytes, bool dirs, const char *error)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "bytes_written", (double)bytes);
    cJSON_AddBoolToObject(o, "dirs_created", dirs);
    if (error) {
        char *e = ft_clean_dup(error, strlen(error));
        cJSON_AddStringToObject(o, "error", e);
        rt_free(e);
    }
    return o;
}

static void write_start(rt_ctx *cx, tool_run *run)
{
    const char *path = tool_arg_str(run, "path");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(run->args, "content");
    if (!path || !*path) {
        tool_finish_json(cx, run, write_result(0, false, "path is required"));
        return;
    }
    if (c && !cJSON_IsString(c)) {
        tool_finish_json(cx, run, write_result(0, false, "content must be a string"));
        return;
    }
    const char *content = c ? c->valuestring : ""; /* the original's default */
    char *display, *abs;
    ft_tool_path(run, path, &display, &abs);
    cJSON *res;
    if (ft_write_denied(abs)) {
        char *msg = rt_xasprintf(FT_DENY_FMT, display);
        res = write_result(0, false, msg);
        rt_free(msg);
    } else {
        char *real = ft_realpath(abs);
        bool dirs = false;
        size_t len = strlen(content);
        int err = ft_write_atomic(real, content, len, &dirs);
        if (err) {
            char *msg = rt_xasprintf("Failed to write file: %s: %s", display, rt_strerror(err));
            res = write_result(0, dirs, msg);
            rt_free(msg);
        } else {
            res = write_result((int64_t)len, dirs, NULL);
        }
        rt_free(real);
    }
    rt_free(display);
    rt_free(abs);
    tool_finish_json(cx, run, res);
}

const tool_def tool_def_write_file = {
    .name = "write_file",
    .toolset = "file",
    .schema = SCHEMA,
    .blocking = true,
    .parallel_safe = false,
    .start = write_start,
};
