/*
 * tool_scan — prompt-injection and exfiltration patterns in text that will reach the
 * model or run unattended: context files (AGENTS.md, SOUL.md), memory entries, cron
 * prompts (agent-core §1.3, §7, §3.5). Case-insensitive POSIX regexes compiled once, plus
 * invisible Unicode (zero-width characters and bidirectional overrides).
 *
 * Threads: any thread (the compiled patterns are immutable after the first call).
 */
#ifndef TOOL_SCAN_H
#define TOOL_SCAN_H

#include <stdbool.h>
#include <stddef.h>

enum tool_scan_profile {
    TOOL_SCAN_CONTEXT = 1, /* context files */
    TOOL_SCAN_MEMORY = 2,  /* memory add/replace */
    TOOL_SCAN_CRON = 3,    /* cron job prompts */
};

/* Scan text. Returns true when something was found; ids receives the finding ids joined
 * with ", " (e.g. "prompt_injection, invisible_unicode"). */
bool tool_scan(const char *text, int profile, char *ids, size_t idslen);

#endif /* TOOL_SCAN_H */
