/*
 * hm_yaml — YAML documents (libyaml) as cJSON trees that remember where each key was written,
 * and in-place edits of YAML text that keep the user's comments, order and layout.
 *
 * Reading follows PyYAML's safe_load, which the original Hermes used, so a config.yaml means
 * the same thing here as there: YAML 1.1 plain-scalar resolution (yes/no/on/off are booleans,
 * 0x1f and 017 are integers, 1:30 is 90, "1e5" is a string but "1.0e+5" a float), anchors,
 * aliases and "<<" merge keys, the last of duplicate keys wins. Only the standard tags (!!str,
 * !!int, !!float, !!bool, !!null, !!map, !!seq) are accepted.
 *
 * Hostile input gets an error, never a crash or an unbounded allocation: nesting deeper than
 * HM_YAML_MAX_DEPTH and trees of more than HM_YAML_MAX_NODES nodes (after alias expansion, so
 * "billion laughs" documents fail fast) are refused; NUL characters in values are refused; the
 * input must be UTF-8. Callers bound the input size before parsing.
 *
 * Paths: a key is named by its dotted path from the root ("terminal.timeout"). Keys that
 * contain dots cannot be named this way; such maps are read through their cJSON node.
 *
 * Threads: no shared state; every function may be called from any thread. A hm_yaml_doc is
 * immutable after hm_yaml_parse and may be read from many threads.
 */
#ifndef HM_YAML_H
#define HM_YAML_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#define HM_YAML_MAX_DEPTH 64      /* nesting of collections */
#define HM_YAML_MAX_NODES 1000000 /* nodes in one document, after alias expansion */
#define HM_YAML_MAX_PATH  32      /* components in a dotted path */

/* Where and why a parse or an edit failed. line/col are 1-based; 0 when unknown. */
typedef struct hm_yaml_err {
    int line;
    int col;
    char msg[320];
} hm_yaml_err;

/* A key that appeared twice in one mapping (the later one wins, as in PyYAML). */
typedef struct hm_yaml_dup {
    char *path;     /* dotted path of the duplicated key */
    int line;       /* 1-based line of the key that wins */
    int first_line; /* 1-based line of the key that was overridden */
} hm_yaml_dup;

typedef struct hm_yaml_doc hm_yaml_doc;

/*
 * Parse text[0..len) (need not be NUL-terminated). Returns a new document, or NULL with *err
 * filled in ("mapping values are not allowed in this context" at line 3, column 8; "invalid
 * leading UTF-8 octet"; "nesting deeper than 64 levels"; "found undefined alias 'x'"...).
 * An empty document (or one of only comments) parses to a cJSON null root.
 */
hm_yaml_doc *hm_yaml_parse(const char *text, size_t len, hm_yaml_err *err);
void hm_yaml_free(hm_yaml_doc *d);

/* The value tree. Borrowed: valid until hm_yaml_free. Never NULL (a null node when empty). */
const cJSON *hm_yaml_root(const hm_yaml_doc *d);
/* Take ownership of the value tree; the document keeps a null root. Free with cJSON_Delete. */
cJSON *hm_yaml_take_root(hm_yaml_doc *d);

/* 1-based line (and column, if col != NULL) where the key at a dotted path was written; 0 if no
 * such key. Keys reached through aliases report where the anchored node was written. */
int hm_yaml_line(const hm_yaml_doc *d, const char *path, int *col);

/* Duplicate keys found while parsing, in document order. Borrowed. */
const hm_yaml_dup *hm_yaml_dups(const hm_yaml_doc *d, size_t *n);

/*
 * Resolve a plain (unquoted, untagged) scalar the way PyYAML's safe_load does: returns a new
 * cJSON null, bool, number or string. Exposed for `hermes config set` and the tests.
 */
cJSON *hm_yaml_resolve_plain(const char *s, size_t n);

/*
 * The YAML text of a string value, plain when that reads back as the same string, otherwise
 * double-quoted with escapes. Returns a new string (rt_free).
 */
char *hm_yaml_quote(const char *s);

/*
 * Set the key at path[0..npath) to value_yaml (the YAML text of a scalar, or of a flow
 * sequence such as "[web, terminal]") in the document text[0..len), editing the text in place:
 * a scalar value is replaced where it stands (a comment after it stays), missing maps on the
 * way are created as nested block mappings indented like their siblings, everything else is
 * left byte for byte. The result is parsed again and must equal the old tree with just that
 * one change, or nothing is returned: so an edit that would also change an aliased copy, or
 * that cannot be expressed in place, fails instead of doing something surprising.
 *
 * On success *out is a new NUL-terminated string (rt_free) of *out_len bytes. Errors:
 * -EBADMSG (text does not parse: *err says where), -EINVAL (the edit is not possible in place,
 * e.g. the key holds a mapping or a list, a map on the way is written in flow style {…}, or
 * value_yaml is not a scalar or flow sequence: *err says which).
 */
int hm_yaml_set(const char *text, size_t len, const char *const *path, size_t npath,
                const char *value_yaml, char **out, size_t *out_len, hm_yaml_err *err);

/*
 * Split a dotted path into at most max components, pointing into buf (a copy the caller
 * provides, modified in place). Returns the count, or -EINVAL for an empty path, an empty
 * component or more than max components.
 */
int hm_yaml_split_path(char *buf, const char **parts, size_t max);

#endif /* HM_YAML_H */
