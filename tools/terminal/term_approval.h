/*
 * term_approval — dangerous-command detection (agent-core §4.4, the original's
 * tools/approval.py).
 *
 * The original's ordered pattern list, in its categories: deletion (rm in /, recursive
 * rm, xargs rm, find -exec rm, find -delete), permissions (chmod 777, recursive chown to
 * root), disks (mkfs, dd if=, redirects to /dev/sd*), databases (DROP TABLE/DATABASE,
 * DELETE FROM without WHERE, TRUNCATE), system (redirects into /etc/, systemctl
 * stop/disable/mask, kill -9 -1, pkill -9, the fork bomb) and indirect execution
 * (sh/bash/zsh -c, python/perl/ruby/node -e/-c, curl|wget piped into a shell). The first
 * pattern that matches the lower-cased command names the family.
 *
 * pattern_key is derived from the original's regular-expression text exactly as the
 * original derives it (the text between the first and second "\b", else its first 20
 * characters), so approvals and `command_allowlist` entries in an existing config.yaml
 * carry over unchanged: e.g. "rm\s+-[^\s]*r", "mkfs", "(bash|sh|zsh)\s+-c\s+".
 *
 * Fixes against the original (agent-core Appendix A):
 *   5. matching is multiline-safe: '.' also matches a newline, so a newline cannot hide
 *      the rest of a command from ".*" patterns (and DELETE FROM ... \n WHERE is fine);
 *   -  the fork-bomb pattern also matches the canonical ":(){ :|:& };:" (the original's
 *      regex read "()" as an empty group and only matched ":{ :|:& };:").
 * Bytes outside ASCII count as word characters (as Python's \w counts letters), so a
 * command's non-ASCII text can neither hide nor invent an ASCII word boundary.
 *
 * Threads: any thread (the compiled patterns are built once, then read-only).
 */
#ifndef TERM_APPROVAL_H
#define TERM_APPROVAL_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Is cmd dangerous? On true, the pattern key is copied into key (keylen bytes, always
 * NUL-terminated; 64 suffice) and *desc points at the static description ("recursive
 * delete"). key and desc may be NULL. cmd is borrowed; NULL or "" is not dangerous.
 */
bool term_is_dangerous(const char *cmd, char *key, size_t keylen, const char **desc);

/* The text the model sees when the user denies (or does not answer) an approval:
 * "BLOCKED: User denied this potentially dangerous command (matched '<desc>' pattern).
 * Do NOT retry this command - the user has explicitly rejected it." Heap string. */
char *term_blocked_message(const char *desc);

/* Does the NULL-terminated list hold key? (command_allowlist; NULL list: no.) */
bool term_key_allowed(char *const *allowlist, const char *key);

/* Number of patterns, and the i-th pattern's key and description (for tests, docs and
 * `hermes` tooling). */
size_t term_pattern_count(void);
void term_pattern_info(size_t i, char *key, size_t keylen, const char **desc);

#endif /* TERM_APPROVAL_H */
