/*
 * skl_admin — managing the skills directory as a whole (agent-core §8.1, §8.3, §8.5):
 * installing a skill from a local directory (or git checkout) after a security audit,
 * copying bundled skills in with the original's manifest rules, and the user message of a
 * /<skill-name> command.
 *
 * Audit (a subset of the original's skills_guard): structural checks — more than
 * SKL_AUDIT_MAX_FILES files, more than SKL_AUDIT_MAX_TOTAL bytes in all, a file over
 * SKL_AUDIT_MAX_FILE bytes, binary/executable extensions (.exe .dll .so .dylib .bin .dat
 * .com .msi .dmg .app .deb .rpm), any symlink — and the text of every scanned file
 * (.md .txt .py .sh .bash .js .ts .rb .yaml .yml .json .toml .cfg .ini .conf .html .css .xml
 * .tex .r .jl .pl .php) through tool_scan's context patterns (prompt injection, secret
 * exfiltration, invisible Unicode). Installs use the "community" policy: any finding blocks
 * unless forced.
 *
 * Threads: blocking file I/O; CLI or detached actors.
 */
#ifndef SKL_ADMIN_H
#define SKL_ADMIN_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#define SKL_AUDIT_MAX_FILES 50
#define SKL_AUDIT_MAX_TOTAL (1024u * 1024u)
#define SKL_AUDIT_MAX_FILE  (256u * 1024u)

/* Audit the skill directory dir: a new array of findings [{"file", "finding"}] (empty:
 * safe). Hidden entries (.git, .github, …) are skipped. */
cJSON *skl_audit(const char *dir);

/*
 * Install the skill in directory src (which holds SKILL.md) as <root>/[category/]<name>,
 * name being src's last path component (it must follow the skill name rules). Hidden
 * entries (.git …) are not copied; symlinks are never followed. Returns 0, or:
 *   -ENOENT  src has no SKILL.md        -EINVAL  bad name or category
 *   -EEXIST  a skill of that name exists -EPERM   the audit found something and !force
 *   other -errno from the copy
 * *report (may be NULL) receives a new human-readable line or finding list, or NULL.
 */
int skl_install(const char *root, const char *src, const char *category, bool force, char **report);

/*
 * Copy the bundled skills of src into root with the manifest rules: names listed in
 * <root>/.bundled_manifest are never copied again (deletions and edits stick); a new name
 * is copied only when its destination directory does not exist, and is added to the
 * manifest either way; category DESCRIPTION.md files are copied when missing. Returns the
 * number of skills copied, or -errno (the manifest could not be written).
 */
int skl_sync_bundled(const char *src, const char *root);

/*
 * The user message of `/<name> [text]` (agent-core §8.3): the invocation notice, the full
 * SKILL.md, its supporting files with a hint to load them through skill_view, then the
 * user's text if any. name is a skill name or its command form (lowercase, '-' for spaces
 * and '_'). New string, or NULL when there is no such skill.
 */
char *skl_invoke_message(const char *root, const char *name, const char *text);

#endif /* SKL_ADMIN_H */
