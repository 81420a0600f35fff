/*
 * tool_skills — the skills tools: skills_list, skill_view and skill_manage (agent-core §8),
 * over skl_store on $HERMES_HOME/skills.
 *
 * The three tools are `blocking` (each call runs on a detached actor), because they read
 * and write files. They finish synchronously in start.
 *
 * Threads: tool_skills_call runs on the calling thread and does blocking file I/O.
 */
#ifndef TOOL_SKILLS_H
#define TOOL_SKILLS_H

#include "tool.h"

#include <cjson/cJSON.h>

/* Run one of the skills tools (name: "skills_list", "skill_view", "skill_manage") with
 * args for env; returns the result object (new). For tests and the CLI. */
cJSON *tool_skills_call(const char *name, const tool_env *env, const cJSON *args);

/* <hermes_home>/skills (new string), or NULL without a home. */
char *tool_skills_root(const tool_env *env);

#endif /* TOOL_SKILLS_H */
