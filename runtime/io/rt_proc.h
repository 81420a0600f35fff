/*
 * rt_proc — subprocesses on the reactor, as messages.
 *
 * An actor asks for a command with rt_proc_spawn(); the reactor thread starts it, streams
 * its output back as RT_PROC_MSG_OUTPUT messages and ends with exactly one RT_PROC_MSG_EXIT,
 * sent after every OUTPUT of that process. Nothing here blocks the caller.
 *
 * Each child:
 *   1. runs in a session and process group of its own (setsid: pid == pgid == sid), with an
 *      empty signal mask and every signal at its default disposition;
 *   2. sees only fds 0, 1 and 2 (all our fds are O_CLOEXEC and the child closes every fd
 *      from 3 up before exec); stdin is /dev/null unless stdin_pipe, stdout and stderr are
 *      pipes (or one pseudo-terminal in pty mode);
 *   3. is watched through a pidfd and reaped with waitid() on the reactor thread. Its
 *      zombie is kept until the EXIT is sent, so the process group id can never be reused
 *      while we may still signal it; after the EXIT no zombie is left;
 *   4. when interrupted, timed out, killed or caught by the reactor stop, its whole session
 *      is signalled (the process group, plus any job-control groups of the same session),
 *      so a command tree leaves no process behind. A command that exits by itself keeps
 *      its background jobs alive: they are the user's.
 *
 * End of a process: when the process itself has exited and its output pipes have reached
 * end of file, or RT_PROC_DRAIN_MS after it exited if a background job still holds them
 * (the pipes are then closed). For an interrupted command the jobs get the whole SIGTERM
 * grace first, and any survivor in its session is killed (SIGKILL) at the end.
 *
 * Output: read in chunks of at most RT_PROC_CHUNK bytes. At most max_output bytes per
 * stream are delivered; the rest is read and thrown away, and counted in bytes_dropped, so
 * memory stays bounded however much a command prints.
 *
 * Threads: rt_proc_init from the controlling thread after rt_reactor_start. rt_proc_spawn,
 * rt_proc_write, rt_proc_close_stdin, rt_proc_interrupt and rt_proc_kill from any thread
 * (a behaviour with its cx, or any thread with rt_ctx_external). All process state is
 * owned by the reactor thread; requests reach it through rt_reactor_call.
 *
 * Nothing in the process may reap children it did not start (no wait(-1), no SIGCHLD set
 * to SIG_IGN): the reactor owns its children's exit statuses.
 */
#ifndef RT_PROC_H
#define RT_PROC_H

#include "rt_actor.h"
#include "rt_reactor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes delivered per stream when rt_proc_opts.max_output is 0. */
#define RT_PROC_MAX_OUTPUT_DEFAULT ((size_t)1 << 20)
/* Largest OUTPUT message payload. */
#define RT_PROC_CHUNK 65536
/* Bytes accepted by rt_proc_write and not yet written to the child, per process. */
#define RT_PROC_STDIN_MAX ((size_t)1 << 20)
/* Time between SIGTERM and SIGKILL in the interrupt sequence. */
#define RT_PROC_KILL_GRACE_MS 1000
/* How long output pipes are still read after the process exited (background jobs). */
#define RT_PROC_DRAIN_MS 200
/* Terminal size in pty mode. */
#define RT_PROC_PTY_ROWS 30
#define RT_PROC_PTY_COLS 120

enum {
    RT_PROC_MSG_OUTPUT = RT_MSG_TYPE(RT_MSG_MODULE_IO, 0x300),
    RT_PROC_MSG_EXIT = RT_MSG_TYPE(RT_MSG_MODULE_IO, 0x301),
};

enum { RT_PROC_STDOUT = 1, RT_PROC_STDERR = 2 };

/* A chunk of output. data is owned by the message (freed by drop unless stolen: set it to
 * NULL to keep it) and NUL-terminated after len bytes. In pty and merge_stderr mode all
 * output is stream 1. */
typedef struct rt_proc_msg_output {
    rt_msg hdr;
    uint64_t id;  /* rt_proc_spawn's return value */
    uint64_t tag; /* rt_proc_opts.tag */
    int stream;   /* RT_PROC_STDOUT or RT_PROC_STDERR */
    char *data;   /* owned; len bytes then a NUL */
    size_t len;   /* 1..RT_PROC_CHUNK */
} rt_proc_msg_output;

/* The end of a process: exactly one per rt_proc_spawn that returned an id, after all its
 * OUTPUT messages. */
typedef struct rt_proc_msg_exit {
    rt_msg hdr;
    uint64_t id;
    uint64_t tag;
    /* 0: the command ran (see exit_code / term_signal). Otherwise -errno: it could not be
     * started (-ENOENT no such program or cwd, -EACCES not executable, -EMFILE, -E2BIG,
     * -ENOTCONN no rt_proc on this runtime's reactor), or the reactor stopped (-ECANCELED:
     * refused before starting, or killed while running). */
    int err;
    int pid;                   /* the child (also its process group and session); 0 if never run */
    int exit_code;             /* exit status if it exited, else -1 */
    int term_signal;           /* signal that ended it, else 0 */
    bool timed_out;            /* the timeout started the interrupt sequence */
    bool interrupted;          /* rt_proc_interrupt / rt_proc_kill / reactor stop came first */
    uint64_t bytes_dropped[2]; /* [0] stdout, [1] stderr: read beyond max_output */
    int64_t duration_ms;       /* from start to the end (0 if never started) */
} rt_proc_msg_exit;

typedef struct rt_proc_opts {
    const char *const *argv; /* NULL-terminated; argv[0] looked up in PATH (env's, if given) */
    const char *cwd;         /* NULL: inherit */
    const char *const *env;  /* "K=V" list replacing the environment; NULL: inherit */
    int64_t timeout_ms;      /* 0: none; on expiry the interrupt sequence, timed_out set */
    size_t max_output;       /* bytes delivered per stream; 0: RT_PROC_MAX_OUTPUT_DEFAULT */
    bool merge_stderr;       /* stderr into the stdout pipe */
    bool stdin_pipe;         /* stdin is a pipe fed by rt_proc_write; else /dev/null */
    bool pty;                /* run on a pseudo-terminal (30x120): stdin, stdout, stderr */
    rt_ref reply_to;         /* receives OUTPUT and EXIT */
    uint64_t tag;            /* copied into every message */
} rt_proc_opts;

/*
 * Attach the subprocess service to a running reactor. Registers a stop hook that kills
 * every child's session (SIGKILL), reaps it and reports its EXIT (err -ECANCELED if it was
 * still running) before the reactor ends; requests arriving after that are refused with
 * -ECANCELED. Controlling thread, once per reactor: 0, -EEXIST if already attached,
 * -EINVAL for NULL.
 */
int rt_proc_init(rt_reactor *r);

/*
 * Start a command. Copies everything in o (o may be freed on return). Returns the process
 * id used in its messages (never 0), or 0 without any message when o is invalid (NULL o,
 * NULL or empty argv, reply_to 0). A failure to start arrives as the EXIT (err set).
 * Any thread; counts as external work (rt_busy_enter) until its EXIT is sent.
 */
uint64_t rt_proc_spawn(rt_ctx *cx, const rt_proc_opts *o);

/*
 * Queue len bytes (copied) for the child's stdin; written without blocking, in call order
 * per calling thread. Any thread. 0, or:
 *   -ESRCH  no such running process (finished, or never existed)
 *   -EBADF  it has no stdin pipe (opts.stdin_pipe and opts.pty both false)
 *   -EPIPE  stdin was closed (rt_proc_close_stdin, or the child closed its end)
 *   -E2BIG  len > RT_PROC_STDIN_MAX
 *   -EAGAIN RT_PROC_STDIN_MAX bytes already queued: retry after the child reads some
 *   -EINVAL bad arguments
 */
int rt_proc_write(rt_ctx *cx, uint64_t id, const void *data, size_t len);

/* Close the child's stdin once the queued bytes are written (in pty mode: write the
 * terminal's EOF character, ^D, which ends input at the start of a line). Any thread;
 * unknown ids are ignored. */
void rt_proc_close_stdin(rt_ctx *cx, uint64_t id);

/* SIGTERM (and SIGCONT) to the child's session now, SIGKILL RT_PROC_KILL_GRACE_MS later if
 * it has not ended. Any thread; unknown or finished ids are ignored. */
void rt_proc_interrupt(rt_ctx *cx, uint64_t id);

/* SIGKILL to the child's session now. Any thread; unknown or finished ids are ignored. */
void rt_proc_kill(rt_ctx *cx, uint64_t id);

/* Shell flags for rt_proc_shell_argv. */
enum { RT_PROC_SHELL_LOGIN = 1u << 0, RT_PROC_SHELL_INTERACTIVE = 1u << 1 };

/*
 * Fill out[4] with {shell, "-c" | "-lc" | "-ic" | "-lic", cmd, NULL} for running cmd through
 * the user's shell: $SHELL if it is an absolute path to an executable, else bash (as the
 * original does; dash as an interactive shell reports job control and "Terminated" into
 * the output), else "/bin/sh". The
 * strings are borrowed (cmd, the environment, literals); pass out as rt_proc_opts.argv
 * (rt_proc_spawn copies it). Returns out. Any thread (reads the environment).
 */
const char *const *rt_proc_shell_argv(const char *out[4], const char *cmd, unsigned flags);

#endif /* RT_PROC_H */
