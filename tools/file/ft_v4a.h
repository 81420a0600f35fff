/*
 * ft_v4a — the V4A patch format of the patch tool's "patch" mode (the original's
 * tools/patch_parser.py):
 *
 *   *** Begin Patch
 *   *** Update File: path/to/file.py
 *   @@ optional context hint @@
 *    context line
 *   -removed line
 *   +added line
 *   *** Add File: path/to/new.py
 *   +new file content
 *   *** Delete File: path/to/old.py
 *   *** Move File: old/path.py -> new/path.py
 *   *** End Patch
 *
 * Parsing follows the original line for line (markers found anywhere in a line, an optional
 * begin marker, "\" lines skipped, unprefixed lines taken as context). Additions here:
 *   - an empty line inside a hunk is an empty context line (models drop the lone space);
 *     empty lines at the start or end of a hunk are ignored, as before;
 *   - "@@ text" without a closing "@@" gives the hint "text";
 *   - "*** Move to: path" after an Update File renames the updated file (OpenAI's V4A);
 *   - "*** End of File" lines are ignored;
 *   - a patch with no operations, or an operation with an empty path, is a parse error.
 *
 * Applying an update is pure (ft_v4a_apply_update): each hunk's context and '-' lines form
 * the text to find, context and '+' lines its replacement, matched with the fuzzy matcher
 * (unique match required); when that fails and the hunk has a hint, the match is retried in
 * a window from 500 bytes before to 2000 bytes after the hint's first occurrence. A hunk of
 * '+' lines only (upstream's later fix) is inserted after the line holding its hint, or
 * appended at the end of the file.
 *
 * Threads: pure, any thread.
 */
#ifndef FT_V4A_H
#define FT_V4A_H

#include <stdbool.h>
#include <stddef.h>

typedef enum ft_v4a_kind {
    FT_V4A_ADD = 1,
    FT_V4A_UPDATE = 2,
    FT_V4A_DELETE = 3,
    FT_V4A_MOVE = 4,
} ft_v4a_kind;

typedef struct ft_v4a_line {
    char prefix; /* ' ', '-' or '+' */
    char *text;  /* owned, without the prefix */
    size_t len;
} ft_v4a_line;

typedef struct ft_v4a_hunk {
    char *hint; /* owned context hint, or NULL */
    ft_v4a_line *lines;
    size_t n, cap;
} ft_v4a_hunk;

typedef struct ft_v4a_op {
    ft_v4a_kind kind;
    char *path;     /* owned */
    char *new_path; /* owned: MOVE destination, or UPDATE's "Move to", else NULL */
    ft_v4a_hunk *hunks;
    size_t n, cap;
} ft_v4a_op;

typedef struct ft_v4a_patch {
    ft_v4a_op *ops;
    size_t n, cap;
} ft_v4a_patch;

/* Parse text[0..len). Returns 0, or -EINVAL with *err a new message (free with rt_free). */
int ft_v4a_parse(const char *text, size_t len, ft_v4a_patch *out, char **err);
void ft_v4a_free(ft_v4a_patch *p);

/* The content of an ADD operation: its '+' lines joined by '\n' (no final newline, as the
 * original). New string; *len set. */
char *ft_v4a_add_content(const ft_v4a_op *op, size_t *len);

/*
 * Apply an UPDATE's hunks to content[0..len). Returns 0 with *out (new string, *outlen), or
 * -EINVAL with *err a new message "Could not apply hunk: <fuzzy matcher error>".
 */
int ft_v4a_apply_update(const ft_v4a_op *op, const char *content, size_t len, char **out,
                        size_t *outlen, char **err);

#endif /* FT_V4A_H */
