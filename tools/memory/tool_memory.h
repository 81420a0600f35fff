/*
 * tool_memory — the `memory` tool (agent-core §3.3, §7): add, replace and remove entries of
 * MEMORY.md (target "memory", the agent's notes) and USER.md (target "user", the user
 * profile) under <hermes_home>/memories. The schema, argument rules, results and messages
 * are the original's (tools/memory_tool.py); the file work is mem_store's.
 *
 * The tool is `blocking`: each call runs on a detached actor, which takes the file's lock
 * and does plain file I/O. Calls are not parallel-safe (a "remove" then an "add" in one
 * response must run in that order for the character budget to work out).
 *
 * Threads: tool_memory_call from any thread that may block on file I/O.
 */
#ifndef TOOL_MEMORY_H
#define TOOL_MEMORY_H

#include "tool.h"

#include <cjson/cJSON.h>

extern const tool_def tool_def_memory;

/* One call, as the original's memory_tool(): args is the call's argument object (borrowed).
 * Returns the result object (new, never NULL). Blocking file I/O. */
cJSON *tool_memory_call(const tool_env *env, const cJSON *args);

#endif /* TOOL_MEMORY_H */
