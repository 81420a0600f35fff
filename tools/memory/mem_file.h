/*
 * mem_file — the MEMORY.md / USER.md format (agent-core §7): entries separated by
 * "\n§\n", stripped, empties dropped, duplicates removed (first wins); limits counted in
 * characters of the joined text; atomic rewrites; the system-prompt block.
 *
 * Pure except mem_file_load / mem_file_save (blocking file I/O: call them from a detached
 * actor or a command-line tool, never from a worker).
 */
#ifndef MEM_FILE_H
#define MEM_FILE_H

#include <stddef.h>

#define MEM_DELIM        "\n\xc2\xa7\n" /* newline, U+00A7 SECTION SIGN, newline */
#define MEM_MEMORY_LIMIT 2200
#define MEM_USER_LIMIT   1375

typedef struct mem_entries {
    char **v; /* owned strings */
    size_t n;
} mem_entries;

void mem_entries_fini(mem_entries *e);
/* Split text into entries (strip, drop empties, de-duplicate). */
void mem_parse(const char *text, mem_entries *out);
/* The joined text (new string). */
char *mem_join(const mem_entries *e);
/* Characters (UTF-8 code points) of the joined text. */
size_t mem_chars(const mem_entries *e);
size_t mem_utf8_len(const char *s);

/* Read <dir>/<file>; a missing file is an empty list. 0 or -errno. */
int mem_file_load(const char *path, mem_entries *out);
/* Rewrite atomically (temp file in the same directory, fsync, rename), mode 0600. */
int mem_file_save(const char *path, const mem_entries *e);

/* The prompt block for target "memory" or "user", or NULL when there are no entries. */
char *mem_render_block(const char *target, const mem_entries *e, size_t limit);

/* "1,375": thousands separators. */
void mem_format_thousands(size_t n, char *out, size_t outlen);

#endif /* MEM_FILE_H */
