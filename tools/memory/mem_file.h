/*
 * mem_file — the MEMORY.md / USER.md format (agent-core §7): entries separated by
 * "\n§\n", stripped, empties dropped, duplicates removed (first wins); limits counted in
 * characters (code points) of the joined text; atomic rewrites; the system-prompt block;
 * the lock file that serialises read-modify-write cycles across threads and processes.
 *
 * Invariants:
 *   1. A memory file on disk is always complete: writers replace it with rename(2) from a
 *      temporary file in the same folder (".mem_XXXXXX.tmp", unique per call), so readers
 *      never need the lock and never see a half-written file.
 *   2. Writers that read, change and rewrite a file hold an flock(2) on "<file>.lock" for the
 *      whole cycle (the file itself is replaced, so it cannot carry the lock). flock locks
 *      belong to the open file description: two threads of one process exclude each other
 *      as two processes do. The later Python Hermes uses the same lock file name.
 *   3. Memory files and lock files are created with mode 0600, their folders 0700.
 *
 * Threads: any thread. Everything is pure except mem_file_load, mem_file_save,
 * mem_file_lock and mem_dir_ensure (blocking file I/O: call them from a detached actor or a
 * command-line tool, never from a worker).
 */
#ifndef MEM_FILE_H
#define MEM_FILE_H

#include <stdbool.h>
#include <stddef.h>

#define MEM_DELIM        "\n\xc2\xa7\n" /* newline, U+00A7 SECTION SIGN, newline */
#define MEM_MEMORY_LIMIT 2200
#define MEM_USER_LIMIT   1375
#define MEM_FILE_MAX     (1u << 20) /* a memory file larger than this is not ours to load */

typedef struct mem_entries {
    char **v; /* owned strings */
    size_t n;
} mem_entries;

void mem_entries_fini(mem_entries *e);
/* Append a copy of s (no de-duplication: callers check first). */
void mem_entries_push(mem_entries *e, const char *s);
/* The index of the entry equal to s, or -1. */
long mem_entries_find(const mem_entries *e, const char *s);
/* Split text into entries (strip, drop empties, de-duplicate). */
void mem_parse(const char *text, mem_entries *out);
/* The joined text (new string). */
char *mem_join(const mem_entries *e);
/* Characters (UTF-8 code points) of the joined text; 0 for no entries. */
size_t mem_chars(const mem_entries *e);
size_t mem_utf8_len(const char *s);
/* Bytes of the first `chars` code points of s (all of s when it is shorter). */
size_t mem_utf8_prefix(const char *s, size_t chars);
/* True when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or values > U+10FFFF). */
bool mem_utf8_valid(const char *s, size_t n);
/* A copy of s[0..n) without leading and trailing whitespace as Python's str.strip() sees it
 * (ASCII whitespace, U+001C..U+001F, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028,
 * U+2029, U+202F, U+205F, U+3000). */
char *mem_strip(const char *s, size_t n);
/* The usage percentage as the original computes it: int(cur / limit * 100) in doubles
 * (so 29/100 gives 28, as in Python); 0 when limit is 0. */
unsigned mem_pct(size_t cur, size_t limit);

/* Read a memory file into entries; a missing file is an empty list. 0 or -errno:
 * -E2BIG over MEM_FILE_MAX, -EILSEQ when it holds NUL bytes or is not UTF-8 (a file that
 * would be damaged by rewriting it), or the open/read error. *out is empty on error. */
int mem_file_load(const char *path, mem_entries *out);
/* Rewrite atomically (unique temp file in the same directory, fsync, rename, fsync of the
 * directory), mode 0600. 0 or -errno; on error the old file is untouched. */
int mem_file_save(const char *path, const mem_entries *e);
/* Create dir (and its parents) with mode 0700 where missing. 0 or -errno. */
int mem_dir_ensure(const char *dir);
/* Take the exclusive lock for path ("<path>.lock", created 0600), waiting at most timeout_ms.
 * On success *fd holds the lock until mem_file_unlock(*fd). 0, -ETIMEDOUT or -errno. */
int mem_file_lock(const char *path, int timeout_ms, int *fd);
void mem_file_unlock(int fd);

/* The prompt block for target "memory" or "user", or NULL when there are no entries. */
char *mem_render_block(const char *target, const mem_entries *e, size_t limit);

/* "1,375": thousands separators. */
void mem_format_thousands(size_t n, char *out, size_t outlen);

#endif /* MEM_FILE_H */
