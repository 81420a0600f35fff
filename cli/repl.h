/*
 * repl — the interactive `hermes`: a line editor (libedit) at the terminal, the agent session
 * as actors behind it (agent-core §10.2, §10.3).
 *
 * The terminal belongs to the main thread: it edits the input line, renders what the session
 * sends (streamed answer, tool progress, questions) and runs the slash commands. The session
 * never waits for it: its output goes to a detached bridge actor that hands each message to
 * the main thread through a pipe, and the main thread answers with ordinary sends.
 *
 * Threads: repl_run from the main thread only, after hm_host_start.
 */
#ifndef REPL_H
#define REPL_H

#include "hm_host.h"

typedef struct repl_opts {
    const char *const *toolsets; /* --toolsets, NULL-terminated; NULL: the configuration's */
    const char *resume_id;       /* --resume / --continue: the session to carry on, or NULL */
} repl_opts;

/*
 * Run the interactive chat on the terminal (stdin and stdout must be terminals) until the user
 * leaves (/quit, Ctrl+D, Ctrl+C when idle or twice within 2 s while the agent works). Returns
 * the process exit status: 0, or 1 if the terminal could not be set up.
 */
int repl_run(hm_host *h, const repl_opts *o);

#endif /* REPL_H */
