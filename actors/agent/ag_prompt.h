/*
 * ag_prompt — the system prompt, assembled in the original's order (agent-core §1.2):
 * identity, tool guidance, the caller's system message, the frozen memory snapshot, the
 * skills index, the project context files (AGENTS.md hierarchy, .cursorrules, SOUL.md; each
 * capped at 20,000 characters and scanned for injected instructions), the timestamp and the
 * platform hint. Parts are joined by a blank line.
 *
 * ag_prompt_build reads files (blocking): the session runs it on the detached prompt
 * actor (ag_session.c), never on a worker. The other functions are pure.
 *
 * Threads: any thread.
 */
#ifndef AG_PROMPT_H
#define AG_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define AG_CONTEXT_FILE_MAX_CHARS 20000

typedef struct ag_prompt_opts {
    const char *hermes_home;
    const char *cwd;            /* where project context files are discovered */
    const char *platform;       /* "cli", "telegram", "matrix", …; NULL: none */
    const char *const *tools;   /* NULL-terminated enabled tool names */
    const char *system_message; /* the caller's system message, or NULL */
    bool skip_context_files;    /* sub-agents */
    bool skip_memory;           /* sub-agents, cron */
    bool memory_enabled;        /* memory.memory_enabled (true) */
    bool user_profile_enabled;  /* memory.user_profile_enabled (true) */
    size_t memory_limit;        /* memory.memory_char_limit (2200) */
    size_t user_limit;          /* memory.user_char_limit (1375) */
    time_t now;                 /* for "Conversation started:"; 0 = time(NULL) */
} ag_prompt_opts;

/* The whole system prompt (new string). Reads MEMORY.md, USER.md, skills and context
 * files; a file that cannot be read is left out. */
char *ag_prompt_build(const ag_prompt_opts *o);

/* The "# Project Context" block for cwd, or NULL when there are no context files. */
char *ag_prompt_context_files(const char *cwd, const char *hermes_home);
/* The skills index block for <hermes_home>/skills, or NULL when there are no skills. */
char *ag_prompt_skills_index(const char *skills_dir);
/* Cap text at AG_CONTEXT_FILE_MAX_CHARS characters: the head (70%), a marker naming label
 * and the sizes, and the tail (20%). Returns a new string. */
char *ag_prompt_truncate(const char *text, const char *label);
/* The platform hint for platform, or NULL. */
const char *ag_prompt_platform_hint(const char *platform);

#endif /* AG_PROMPT_H */
