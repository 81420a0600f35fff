/*
 * skl_store — the skills directory ($HERMES_HOME/skills) and the operations of the skills
 * tools (agent-core §8): listing, viewing (SKILL.md or one linked file), the skill_manage
 * actions, and the skills index for the system prompt.
 *
 * Layout: a skill is a directory holding SKILL.md, either <root>/<name>/ or
 * <root>/<category>/<name>/; supporting files live under references/, templates/,
 * scripts/ and assets/. Entries whose names start with '.' (.hub, .git, .archive, …) are
 * never skills. A skill's name is its directory name.
 *
 * Results are cJSON objects shaped as the original's tool results: {"success": true, …}
 * or {"success": false, "error": "…", …}.
 *
 * Safety: a file_path may not be absolute or contain a ".." component, and the resolved
 * file (symlinks followed) must stay inside the skill's directory; deletion never follows
 * symlinks. Writes are atomic (temporary file + rename). Reads are capped
 * (SKL_READ_MAX); walks are bounded (SKL_MAX_SKILLS, SKL_MAX_FILES).
 *
 * Threads: every function does blocking file I/O — call from a detached actor (the skills
 * tools are `blocking`), the prompt service, or a CLI thread. skl_index keeps a cache
 * behind a mutex and may be called from several threads.
 */
#ifndef SKL_STORE_H
#define SKL_STORE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define SKL_READ_MAX   (2u << 20) /* bytes read from one skill file */
#define SKL_MAX_SKILLS 2000
#define SKL_MAX_FILES  500 /* linked files listed per skill */
#define SKL_INDEX_DESC 60  /* characters of a description in the index */

/* skills_list: {success, skills:[{name, description, category}], categories, count, hint}
 * sorted by category then name; category may be NULL (all). New object. */
cJSON *skl_list(const char *root, const char *category);

/* The installed skills as slash commands, as the original's help lists them: "/" + the name
 * lower-cased with spaces and underscores as '-', sorted, one per command; desc borrowed from
 * the list, which the caller keeps (*list, cJSON_Delete) as long as it reads the commands.
 * Returns the number (0: none; *out NULL-safe to rt_free). */
typedef struct skl_command {
    char name[128];   /* "/deploy-k8s" */
    const char *desc; /* the skill's description, or NULL */
} skl_command;
size_t skl_commands(const char *root, skl_command **out, cJSON **list);

/* skill_view: the skill's SKILL.md with its metadata and linked files, or (file_path not
 * NULL) one supporting file. New object. */
cJSON *skl_view(const char *root, const char *name, const char *file_path);

/* skill_manage: args is the tool's argument object (action, name, content, category,
 * old_string, new_string, replace_all, file_path, file_content). Creates root if needed.
 * New object. */
cJSON *skl_manage(const char *root, const cJSON *args);

/*
 * The "## Skills (mandatory)" block of the system prompt for root (agent-core §8.3 tier 0),
 * or NULL when there are no skills. Cached per root: the cache is reused while the
 * modification times and sizes of the root, its category and skill directories and every
 * SKILL.md / DESCRIPTION.md are unchanged, so edits made by anyone are picked up.
 * Returns a new string.
 */
char *skl_index(const char *root);

/* One entry of the directory walk (for `hermes skills list`). */
typedef struct skl_entry {
    char *category; /* NULL for a top-level skill */
    char *name;     /* directory name */
    char *dir;      /* absolute path of the skill directory */
} skl_entry;

/* All skills under root (sorted by category, then name; first of a duplicate name wins).
 * Returns the count; *out is a new array to free with skl_entries_free. */
size_t skl_scan(const char *root, skl_entry **out);
void skl_entries_free(skl_entry *v, size_t n);

#endif /* SKL_STORE_H */
