/*
 * skl_front — the YAML front matter of a SKILL.md (agent-core §8.2, §8.4).
 *
 * A SKILL.md starts with a `---` line; the front matter runs to the next line that is `---`
 * (trailing blanks allowed) and the body follows it. The front matter is parsed by a small
 * YAML subset reader that covers what skills use: nested block mappings, block sequences
 * (`- item`, including `- key: value` items), flow sequences (`[a, "b"]`), flow mappings
 * of scalars (`{a: 1}`), single- and double-quoted scalars, literal and folded block scalars
 * (`|`, `|-`, `>`, `>-`), comments and a leading UTF-8 BOM. Every scalar becomes a JSON
 * string. Anchors, aliases, tags and multi-document streams are refused with an error.
 * Errors name the line of the front matter (1 = the line after the opening `---`).
 *
 * Invariants: parsing is bounded (nesting depth SKL_YAML_MAX_DEPTH, input size
 * SKL_FRONT_MAX_BYTES); bad input gets an error string, never a crash.
 * Threads: pure functions, any thread.
 */
#ifndef SKL_FRONT_H
#define SKL_FRONT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#define SKL_YAML_MAX_DEPTH  16
#define SKL_FRONT_MAX_BYTES (1u << 20)
#define SKL_NAME_MAX        64
#define SKL_DESCRIPTION_MAX 1024
#define SKL_CONTENT_MAX     100000  /* characters of an agent-written SKILL.md or file */
#define SKL_FILE_MAX        1048576 /* bytes of an agent-written supporting file */

/*
 * Parse YAML subset text (the front matter alone) into a new cJSON value (an object for a
 * mapping, an array, a string, or JSON null for empty text). Returns 0 and *out, or
 * -EINVAL with a message "line N: ..." in err (never NULL out on success).
 */
int skl_yaml_parse(const char *text, size_t len, cJSON **out, char *err, size_t errlen);

/*
 * Split a SKILL.md: find the front matter. On success returns 0 with *fm_off and *fm_len give the
 * front matter text and *body_off the offset of the body in text. -EINVAL with err when
 * the text does not start with `---` or the front matter is not closed.
 */
int skl_front_split(const char *text, size_t *fm_off, size_t *fm_len, size_t *body_off, char *err,
                    size_t errlen);

/*
 * Validate the content an agent writes as SKILL.md (§8.4): non-empty, front matter present
 * and closed, a YAML mapping with `name` and `description`, description at most
 * SKL_DESCRIPTION_MAX characters, a non-empty body. Returns 0, or -EINVAL with the
 * original's error message in err.
 */
int skl_front_validate(const char *content, char *err, size_t errlen);

/*
 * Read a SKILL.md leniently for listing and viewing: the front matter as an object (new;
 * an empty object when absent; the naive `key: value` lines when the YAML is bad) and the
 * body offset. Never fails.
 */
cJSON *skl_front_read(const char *text, size_t *body_off);

/* The description of a skill: front matter `description`, else the first body line that
 * is not a heading (new string, possibly empty). */
char *skl_front_description(const cJSON *meta, const char *body);

/* A string list field: metadata.hermes.<key>, else top-level <key>; a string is split at
 * commas. New array (possibly empty). */
cJSON *skl_front_list(const cJSON *meta, const char *key);

/* Skill and category names: ^[a-z0-9][a-z0-9._-]*$ and at most SKL_NAME_MAX characters. */
bool skl_name_valid(const char *name);

#endif /* SKL_FRONT_H */
