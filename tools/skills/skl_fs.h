/*
 * skl_fs — small file helpers of the skills modules: bounded reads, atomic writes,
 * directory creation and removal that never follows symlinks.
 *
 * Threads: blocking system calls; any thread that may block (detached actors, CLI).
 */
#ifndef SKL_FS_H
#define SKL_FS_H

#include <stdbool.h>
#include <stddef.h>

/* Whether p is (after symlinks) a directory / a regular file. */
bool skl_is_dir(const char *p);
bool skl_is_file(const char *p);

/* At most max bytes of the regular file path (new NUL-terminated string; *len bytes may
 * contain NULs), or NULL with errno set. *truncated (may be NULL): the file is longer. */
char *skl_read_file(const char *path, size_t max, size_t *len, bool *truncated);

/* mkdir -p with mode 0700. 0 or -errno (-ENOTDIR when a component is not a directory). */
int skl_mkdir_p(const char *path);

/* Replace path with n bytes of data atomically (a hidden temporary file in the same
 * directory, mode 0600, renamed over path). 0 or -errno. */
int skl_write_atomic(const char *path, const char *data, size_t n);

/* Remove name (relative to directory fd dfd, or AT_FDCWD) and everything below it without
 * following symlinks; depth bounds the recursion (start with 0). 0 (also when it does not
 * exist) or -errno. */
int skl_rm_tree_at(int dfd, const char *name, int depth);

#endif /* SKL_FS_H */
