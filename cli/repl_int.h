/*
 * repl_int — the interactive CLI's internals, shared by cli_repl.c (the loop and the turns),
 * repl_term.c (libedit and the screen), repl_cmds.c (slash commands), repl_hist.c (the
 * history file) and repl_bridge.c (the actor that hands session output to the main thread).
 *
 * Invariants:
 *   1. Everything in struct repl belongs to the main thread. The only other party is the
 *      bridge actor, which shares nothing with it but the write end of the event pipe: each
 *      event is a heap repl_ev whose pointer is written (8 bytes, atomic) to the pipe; the
 *      reader owns it from then on (the pipe's write/read order the accesses).
 *   2. While el_wgets is on screen (editing), the bottom of the terminal holds the "region":
 *      the streamed output line not yet ended (partial, at most one screen row) and below it
 *      the prompt and the input being edited. Output erases the region, prints, and draws it
 *      again (term_batch_end); nothing else writes to the terminal then.
 *   3. The session answers to one sink, the bridge; every request the main thread waits for
 *      carries a fresh tag (next_tag) and is matched by it, so a late reply is dropped.
 *
 * Threads: main thread only, except repl_bridge_start (any) and the bridge itself.
 */
#ifndef REPL_INT_H
#define REPL_INT_H

#include "repl.h"
#include "rt_buf.h"

#include <cjson/cJSON.h>
#include <histedit.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <wchar.h>

#define REPL_MAX_ASKS    16    /* questions waiting for an answer */
#define REPL_MAX_QUEUED  16    /* slash commands typed while the agent works */
#define REPL_PARTIAL_MAX 16384 /* bytes of the output line being streamed */
#define REPL_LINE_MAX    65536 /* bytes of one input line (more is refused) */
#define REPL_AWAIT_MS    10000 /* how long a command waits for the session or the store */
#define REPL_CTRL_C_MS   2000  /* a second Ctrl+C within this exits */

/* ---- events (bridge → main thread) ---- */

enum repl_ev_kind {
    REV_DELTA = 1, /* text: streamed answer */
    REV_REASONING, /* text: streamed reasoning */
    REV_PROGRESS,  /* text: tool, text2: preview */
    REV_STATUS,    /* text */
    REV_ASK,       /* from, id: ask id, code: TOOL_ASK_*, text, text2: description, json: choices,
                      timeout_ms */
    REV_DONE,      /* id: input id, text: answer, text2: errmsg, text3: session id, code: err,
                      interrupted, n: api calls */
    REV_CTL,       /* id: tag, code: err, n, text, json: info (AG_MSG_CONTROL_REPLY) */
    REV_STORE,     /* id: tag, code: err, json (ST_MSG_ACK / ST_MSG_RESULT) */
    REV_SIGNAL,    /* code: signal number */
    REV_BYE,       /* the bridge is ending: nothing follows */
};

typedef struct repl_ev {
    int kind;
    rt_ref from;
    uint64_t id;
    int code;
    int n;
    bool interrupted;
    int64_t timeout_ms;
    int64_t at_ms; /* monotonic time it was read */
    char *text;    /* owned */
    char *text2;   /* owned */
    char *text3;   /* owned */
    cJSON *json;   /* owned */
} repl_ev;

void repl_ev_free(repl_ev *e);

/* Spawn the detached bridge actor writing events to wfd (it owns wfd from then on and closes
 * it when it ends, after a REV_BYE). */
rt_ref repl_bridge_start(rt_ctx *cx, int wfd);

/* ---- the REPL ---- */

typedef struct repl {
    /* the host and the session */
    hm_host *h;
    rt_ctx *cx;
    rt_ref session;
    rt_ref bridge;
    char *session_id;
    char *model;
    char *system_prompt; /* the ephemeral prompt in force; "" none */
    char **tools;        /* the session's tool names */
    char **allowed;      /* patterns answered "always" here, NULL-terminated (or NULL):
                            sessions started later (/new) know them too */
    size_t nallowed;
    const char *const *toolsets; /* --toolsets, or NULL */
    time_t started;              /* wall clock: /save, the exit summary */
    int64_t started_ms;          /* monotonic */
    /* turns */
    bool busy;          /* a turn runs */
    uint64_t stop_upto; /* Ctrl+C stopped the turn; inputs up to this one are discarded */
    bool box_open;      /* the answer box of this turn is open */
    bool talked;        /* at least one message went to the session */
    uint64_t next_input;
    uint64_t last_input; /* the newest input sent */
    uint64_t next_tag;
    int verbose;         /* tool progress: 0 off, 1 new, 2 all, 3 verbose */
    char last_tool[64];  /* for verbose == 1 */
    int64_t last_ctrl_c; /* monotonic ms of the last Ctrl+C while busy */
    /* events */
    int evr; /* read end of the event pipe (non-blocking) */
    uint64_t await_tag;
    repl_ev *awaited;  /* the reply repl_await waits for, once it came */
    bool awaiting;     /* repl_await runs */
    bool await_cancel; /* Ctrl+C during it */
    bool bye;
    /* questions, first one shown first */
    repl_ev *asks[REPL_MAX_ASKS];
    size_t nasks;
    bool answering;     /* term_read_answer runs */
    bool answer_cancel; /* Ctrl+C during it */
    /* commands typed while the agent works, run when it is done */
    char *queued[REPL_MAX_QUEUED];
    size_t nqueued;
    bool quit;
    /* the terminal */
    EditLine *el;
    History *hist;
    char *hist_path;
    FILE *out;
    int cols;
    bool editing;    /* el_wgets is on screen (invariant 2) */
    bool erased;     /* the region is erased for output */
    bool break_edit; /* make el_wgets return */
    bool eof;        /* end of input on the terminal */
    char inbuf[512]; /* bytes read from the terminal, not yet decoded */
    size_t inlen;
    rt_buf partial;         /* the output line not yet ended (invariant 2) */
    int pcol;               /* its width in columns (less than cols) */
    bool busy_prompt_shown; /* the prompt on screen is the working one ("⚕ ❯ ") */
    wchar_t *stash;         /* the input line put aside while a question is asked */
} repl;

/* cli_repl.c */
int64_t repl_now_ms(void);
void repl_dispatch(repl *r, repl_ev *e);
/* Read and handle the events already in the pipe (at most a bounded batch). */
void repl_drain(repl *r);
/* Wait up to timeout_ms for the reply tagged tag, handling other events meanwhile. Returns it
 * (caller frees) or NULL (timeout, Ctrl+C, or the bridge ended). */
repl_ev *repl_await(repl *r, uint64_t tag, int64_t timeout_ms);
/* A new tag for a request. */
uint64_t repl_tag(repl *r);
/* Send text to the agent: a new turn, or (while one runs) an interruption that redirects it. */
void repl_send_message(repl *r, const char *text);
/* A fresh session (same model, prompt and tools); the old one ends. */
void repl_new_session(repl *r);
/* Ask the session a control question (AG_CTL_*) and wait for the reply (caller frees). */
repl_ev *repl_control(repl *r, int op);
/* The session's messages from state.db (caller frees), or NULL with a reason printed. */
cJSON *repl_fetch_messages(repl *r);

/* repl_term.c */
int term_init(repl *r);
void term_fini(repl *r);
/* Edit one line. Returns a new string without the line end, or NULL when editing was broken
 * off (break_edit: a question, a queued command, leaving) or at end of input (eof set). */
char *term_read_line(repl *r);
/* Streamed text: control characters dropped, tabs expanded; may end mid-line. */
void term_text(repl *r, const char *s, size_t n);
/* Whole lines (printf format; may hold several lines and colours), on a line of their own. */
void term_line(repl *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An empty line. */
void term_blank(repl *r);
/* End the current output line if one is open. */
void term_endline(repl *r);
/* After a batch of output while editing: draw the prompt and the input again. */
void term_batch_end(repl *r);
/* Read an answer line for a question (no echo when secret) until deadline (monotonic ms).
 * Returns a new string, or NULL on timeout, end of input or Ctrl+C (answer_cancel set). */
char *term_read_answer(repl *r, int64_t deadline, bool secret);
/* Empty the input line (Ctrl+C while idle). Only while editing. */
bool term_input_empty(repl *r);
void term_clear_input(repl *r);
/* Clear the screen (/clear). */
void term_clear_screen(repl *r);
/* Terminal width (at least 20). */
int term_cols(repl *r);

/* repl_cmds.c */
typedef struct repl_cmd_info {
    const char *name; /* "/help" */
    const char *desc;
} repl_cmd_info;
/* The commands shown by /help and offered by Tab, NULL-terminated. */
extern const repl_cmd_info repl_cmd_list[];
/* Run a slash command line ("/model x"). */
void repl_command(repl *r, const char *line);
/* May this command run while the agent works (else it waits for the turn to end)? */
bool repl_command_runs_busy(const char *line);
void repl_banner(repl *r);
/* Print the exit summary (resume hint, duration, message counts). */
void repl_summary(repl *r);

/* repl_hist.c */
/* Load the history file into r->hist (missing file: nothing). */
void hist_load(repl *r);
/* Add an entry to r->hist and append it to the file. */
void hist_add(repl *r, const char *line);

#endif /* REPL_INT_H */
