/*
 * ft_fs — the file tools' filesystem layer: ~ expansion, paths relative to the session's
 * working directory, os.path.realpath, the original's write deny list, atomic writes, and
 * bounded whole-file reads.
 *
 * Paths. The tools keep two forms of a path: the *display* form (the argument with ~
 * expanded, relative paths left relative: what the original shows in its messages) and the
 * *absolute* form used for system calls (relative paths joined to the session's cwd, since
 * the process's own cwd is shared by every thread).
 *
 * The deny list (agent-core §3.3, file_operations.py WRITE_DENIED_*): a write is refused
 * when the path, resolved like os.path.realpath (every symlink of every existing component,
 * '..' after resolution), equals one of the protected files or lies under one of the
 * protected directories, themselves resolved the same way. $HOME is read at each check, so
 * a test can point it at a temporary directory. A symlink anywhere in the path that leads
 * into a protected place is therefore refused, and so is any '..' trick.
 *
 * Threads: any thread, but every function except ft_expand_user's string work does
 * blocking system calls: call them from a detached (blocking) tool actor only.
 */
#ifndef FT_FS_H
#define FT_FS_H

#include <stdbool.h>
#include <stddef.h>

#define FT_DENY_FMT "Write denied: '%s' is a protected system/credential file."

/* $HOME, else the passwd entry's home, else "/". New string. */
char *ft_home(void);

/* os.path.expanduser: "~" and "~/x" from ft_home(), "~user/x" from the passwd entry;
 * anything else (or an unknown user) unchanged. New string. */
char *ft_expand_user(const char *path);

/* The absolute form of a display path: relative paths are joined to cwd (NULL or "": the
 * process's working directory). No normalisation. New string. */
char *ft_abs(const char *cwd, const char *path);

/* os.path.realpath(path) (non-strict) of an absolute path. New string. */
char *ft_realpath(const char *abs);

/* Whether writing to (or deleting, or moving) abs is refused by the deny list. */
bool ft_write_denied(const char *abs);

/* mkdir -p dir (mode 0777 minus umask). *created (may be NULL) says whether any directory
 * was made. 0 or -errno. */
int ft_mkdirs(const char *dir, bool *created);

/*
 * Write data to path atomically: parent directories are created, the bytes go to a new
 * temporary file in the same directory which is fsynced and renamed over path. An
 * existing file keeps its mode (and, where permitted, its owner); a new one gets 0666
 * minus the umask. If the directory does not let us create the temporary file but the file
 * itself is writable, the file is rewritten in place instead. path should already be
 * resolved (ft_realpath) so that a symlink is written through, not replaced.
 * 0 or -errno (-EISDIR for a directory, -EINVAL for another non-regular file).
 */
int ft_write_atomic(const char *path, const void *data, size_t len, bool *dirs_created);

/* Read a whole regular file of at most max bytes. 0 with *data (NUL-terminated, owned) and
 * *len, or -errno: -ENOENT, -EISDIR, -EINVAL (not a regular file), -EFBIG (over max)… */
int ft_read_all(const char *abs, size_t max, char **data, size_t *len);

#endif /* FT_FS_H */
