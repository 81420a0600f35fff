/*
 * ft_proc — a small blocking subprocess runner for the file tools (ripgrep, linters).
 *
 * The file tools run in detached actors (their own threads), where a plain child process
 * with a deadline is simpler than the reactor's rt_proc. The child is started with
 * posix_spawnp in a session of its own (so the whole group can be killed), with an empty
 * signal mask, default signal dispositions, stdin from /dev/null, only fds 0-2 open, and
 * optionally a working directory. stdout and stderr are pipes (stderr may be merged into
 * stdout). The exit is watched through a pidfd and the child is reaped with waitpid on its
 * own pid, never wait(-1) (rt_proc.h: the reactor owns its children's statuses).
 *
 * Threads: an ft_proc belongs to one thread. Calls block for at most the timeout given.
 */
#ifndef FT_PROC_H
#define FT_PROC_H

#include <stdbool.h>
#include <stddef.h>

/* How long output is still read after the child exited, if something else holds its pipes. */
#define FT_PROC_DRAIN_MS 200

typedef struct ft_proc ft_proc;

/* Receives stdout bytes; return false to stop reading (the caller will kill). */
typedef bool (*ft_proc_sink)(void *arg, const char *data, size_t n);

/*
 * Start argv[0] (looked up on PATH) with argv, in cwd (NULL: ours). stdout goes to sink;
 * stderr is kept (at most err_max bytes) or, with merge_stderr, sent to sink too.
 * Returns the process, or NULL with *err = -errno (-ENOENT when the program is missing).
 */
ft_proc *ft_proc_start(const char *const *argv, const char *cwd, bool merge_stderr, size_t err_max,
                       ft_proc_sink sink, void *arg, int *err);

/* Wait up to timeout_ms for output or the exit and hand output to the sink. Returns 1 when
 * the output is drained (end of file on both pipes, or FT_PROC_DRAIN_MS after the exit if
 * something else still holds them) or the sink said stop, 0 if not yet, -errno on
 * failure. */
int ft_proc_pump(ft_proc *p, int timeout_ms);

/* Kill the child's whole process group (SIGKILL). */
void ft_proc_kill(ft_proc *p);

/* The kept stderr (NUL-terminated, "" if none); valid until ft_proc_free. */
const char *ft_proc_stderr(const ft_proc *p);

/* Reap (killing first if it still runs) and free. *status (may be NULL) gets the exit code,
 * or 128 + signal. ft_proc_free(NULL) is a no-op. */
void ft_proc_free(ft_proc *p, int *status);

/* Whether an executable named name is on PATH. */
bool ft_proc_have(const char *name);

#endif /* FT_PROC_H */
