/*
 * hm_env — the $HERMES_HOME/.env file: KEY=value lines read the way python-dotenv reads them
 * (the original loaded .env with it), and written back in place, one key at a time.
 *
 * Reading: blank lines and "#" comments are skipped; "export KEY=value" is accepted; values
 * may be 'single-quoted' (literal, \' and \\ escapes), "double-quoted" (\n \t \" \\ … escapes)
 * or bare (a " #" starts a comment, surrounding blanks are stripped); quoted values may span
 * lines. ${VAR} and ${VAR:-default} are expanded in bare and double-quoted values, from the
 * process environment first, then from earlier lines (python-dotenv without override). A line
 * that does not parse is skipped and reported through `bad_lines`. A file that is not UTF-8 is
 * read as Latin-1, as the original's fallback did.
 *
 * Writing (hm_env_set_file): the first line that assigns KEY is replaced, or KEY=value is
 * appended; later assignments of the same KEY (which would win over it when read) are removed;
 * comments and every other line stay as they were. The file is written atomically
 * (temporary file, fsync, rename, fsync of the directory) and is always left with mode 0600,
 * since it holds secrets.
 *
 * Threads: no shared state, except hm_env_apply, which calls setenv(3): call it only while the
 * process has a single thread (start-up), as setenv races with getenv on other threads.
 */
#ifndef HM_ENV_H
#define HM_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define HM_ENV_MAX_BYTES (1u << 20) /* a .env larger than 1 MiB is refused */

typedef struct hm_env_var {
    char *key;
    char *value;
    int line;          /* 1-based line of the assignment */
    size_t start, end; /* byte span of the statement in the text, without its line break */
} hm_env_var;

typedef struct hm_env {
    hm_env_var *v; /* in file order; a key may appear twice (the last one counts) */
    size_t n, cap;
    int bad_lines; /* lines that did not parse and were skipped */
    int first_bad; /* 1-based line of the first of them, 0 if none */
} hm_env;

void hm_env_init(hm_env *e);
void hm_env_fini(hm_env *e);

/* Parse text[0..len) into e (which must be initialised). Never fails; see bad_lines. */
void hm_env_parse(hm_env *e, const char *text, size_t len);

/* Read and parse the file at path. 0, -ENOENT (no file: e stays empty), -E2BIG (over
 * HM_ENV_MAX_BYTES) or another -errno from open/read. */
int hm_env_read(hm_env *e, const char *path);

/* The value of key (the last assignment), or NULL. Borrowed from e. */
const char *hm_env_get(const hm_env *e, const char *key);

/* setenv every variable; existing environment variables are kept unless override. Returns how
 * many were set. Start-up only (see the threading note above). */
int hm_env_apply(const hm_env *e, bool override);

/* A valid variable name: [A-Za-z_][A-Za-z0-9_]*. */
bool hm_env_valid_key(const char *key);

/*
 * Set key=value in the .env file at path, creating it (mode 0600) if needed. The value is
 * written bare when that reads back unchanged, otherwise single-quoted. The result is parsed
 * again and must give back value for key, or nothing is written. 0, -EINVAL (bad key),
 * -E2BIG (file too large), or -errno from the file system.
 */
int hm_env_set_file(const char *path, const char *key, const char *value);

/*
 * Write data[0..len) to path atomically: a temporary file in the same directory, fsync,
 * fchmod(mode), rename over path, fsync of the directory. On failure the temporary file is
 * removed and path is untouched. 0 or -errno.
 */
int hm_write_atomic(const char *path, const char *data, size_t len, mode_t mode);

/* Read a whole file (at most max bytes) into a new NUL-terminated string (rt_free).
 * 0, -ENOENT, -E2BIG or -errno. */
int hm_read_file(const char *path, size_t max, char **out, size_t *len);

#endif /* HM_ENV_H */
