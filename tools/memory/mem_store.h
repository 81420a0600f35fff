/*
 * mem_store — the memory store's operations (the original's MemoryStore.add / replace /
 * remove, agent-core §7, tools/memory_tool.py): validate and scan the new text, then, under
 * the target file's lock, re-read the file, apply the change, check the character limit and
 * rewrite the file atomically. Results are the original's JSON objects, messages verbatim.
 *
 * Unlike the original at the baseline, there is no in-process copy of the entries: every
 * operation starts from the file as it is under the lock, so concurrent sessions, sub-agents,
 * other gateway processes and the CLI never lose each other's updates (the original lost
 * them until it added the same lock file in March 2026). The system prompt's snapshot is
 * not kept here: the session builds its prompt once (ag_prompt.c) and keeps it, so tool
 * writes reach the files at once and the prompt only at the next session or compression.
 *
 * Threads: any thread, but every operation does blocking file I/O (a detached actor or a
 * command-line tool, never a worker). Operations on the same file serialise on its lock.
 */
#ifndef MEM_STORE_H
#define MEM_STORE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#define MEM_LOCK_TIMEOUT_MS 10000 /* waiting longer for a file's lock is an error */

typedef struct mem_store {
    const char *dir;     /* the memories folder, <hermes_home>/memories (created if missing) */
    size_t memory_limit; /* memory.memory_char_limit; 0: MEM_MEMORY_LIMIT (2200) */
    size_t user_limit;   /* memory.user_char_limit; 0: MEM_USER_LIMIT (1375) */
    int lock_timeout_ms; /* 0: MEM_LOCK_TIMEOUT_MS */
} mem_store;

/* "MEMORY.md" for "memory", "USER.md" for "user", NULL for anything else. */
const char *mem_target_file(const char *target);

/*
 * The original's threat scan for text that will sit in the system prompt: invisible
 * Unicode first, then the memory patterns of tool_scan in order. Returns true and fills msg
 * with the original's "Blocked: ..." sentence when content must be refused.
 */
bool mem_scan(const char *content, char *msg, size_t msglen);

/*
 * The operations. target must be "memory" or "user" (the tool checks it first); content and
 * old_text are the model's text (stripped here, as the original). Each returns a new object
 * the caller owns, never NULL:
 *   success  {"success":true,"target","entries":[...],"usage":"<pct>% — <cur>/<limit> chars",
 *             "entry_count","message"}
 *   failure  {"success":false,"error", ...} with "current_entries" and "usage" when an add
 *             is over the limit, "matches" (80-character previews) when old_text is ambiguous.
 * Content that is not UTF-8 is refused ("Content is not valid UTF-8 text.": the original's
 * strings are always Unicode). I/O failures (lock, unreadable or damaged file, write) are
 * failures naming the file; the file is then left as it was.
 */
cJSON *mem_store_add(const mem_store *s, const char *target, const char *content);
cJSON *mem_store_replace(const mem_store *s, const char *target, const char *old_text,
                         const char *content);
cJSON *mem_store_remove(const mem_store *s, const char *target, const char *old_text);

/* A failure object {"success":false,"error":text}. */
cJSON *mem_error(const char *text);

#endif /* MEM_STORE_H */
