/*
 * term_output — a command's raw output turned into the text the model sees
 * (agent-core §4.1 step 6, §4.2 local): valid UTF-8, leading shell noise removed,
 * capped at 50,000 characters as the first 20,000 + a notice + the last 30,000, stripped,
 * and with secrets masked.
 *
 * A term_outbuf collects output of any size in bounded memory: the first
 * TERM_OUT_HEAD_BYTES and a ring of the last TERM_OUT_TAIL_BYTES, plus the totals. Both
 * windows hold more than the characters the cap keeps (a character is at most 4 bytes),
 * so the capped text is exact whatever the command printed; only the omitted count is
 * approximate for output that is not valid UTF-8.
 *
 * "Characters" are Unicode code points, as the original's Python strings count them.
 * Invalid UTF-8 becomes U+FFFD per maximal invalid sequence (Python's errors="replace")
 * and NUL bytes are dropped (they cannot travel in the JSON text we hand on).
 *
 * Threads: any thread; a term_outbuf belongs to one owner.
 */
#ifndef TERM_OUTPUT_H
#define TERM_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERM_OUT_MAX_CHARS  50000
#define TERM_OUT_HEAD_CHARS 20000 /* 40 %: errors often come first */
#define TERM_OUT_TAIL_CHARS 30000
#define TERM_OUT_HEAD_BYTES ((size_t)256 * 1024)
#define TERM_OUT_TAIL_BYTES ((size_t)256 * 1024)

/* The note the local backend appends to an interrupted command's output. */
#define TERM_NOTE_INTERRUPTED "\n[Command interrupted — user sent a new message]"
/* The same for the ssh, docker and singularity backends (the original's words). */
#define TERM_NOTE_INTERRUPTED_REMOTE "\n[Command interrupted]"
/* Added in messaging sessions when sudo wanted a password it could not get. */
#define TERM_SUDO_TIP                                                                              \
    "\n\n💡 Tip: To enable sudo over messaging, add SUDO_PASSWORD to ~/.hermes/.env on the "     \
    "agent machine."

typedef struct term_outbuf {
    char *head;           /* the first bytes, up to TERM_OUT_HEAD_BYTES */
    size_t head_len;      /* bytes in head */
    char *ring;           /* the last bytes after head, TERM_OUT_TAIL_BYTES, lazily */
    size_t ring_pos;      /* next write position in ring */
    uint64_t ring_total;  /* bytes ever written to ring */
    uint64_t total_bytes; /* bytes appended */
    uint64_t total_chars; /* code points appended (bytes that are not 10xxxxxx) */
} term_outbuf;

void term_outbuf_init(term_outbuf *b);
void term_outbuf_fini(term_outbuf *b);
/* Append n bytes (copied). Memory stays under HEAD + TAIL bytes. */
void term_outbuf_append(term_outbuf *b, const char *p, size_t n);

typedef struct term_finish_opts {
    bool strip_noise; /* remove leading shell-noise lines (local backend, normal end) */
    const char *note; /* appended before capping (an interrupt note), or NULL */
    bool sudo_tip;    /* append TERM_SUDO_TIP if the output shows sudo wanted a password */
    const char *mask; /* a secret (the sudo password) to replace by "***", or NULL */
} term_finish_opts;

/* The final text: clean, de-noised, note and tip added, capped, stripped, masked and
 * redacted. New heap string (rt_free). b is not changed. */
char *term_outbuf_finish(const term_outbuf *b, const term_finish_opts *o);

/* ---- the pid marker of remote and background commands ---- */

#define TERM_MARKER_SCAN 4096 /* give up looking for the marker after this much output */

typedef void (*term_sink)(void *arg, const char *p, size_t n);

/*
 * Finds the "HERMES_PID=<pid>" line (TERM_PID_MARKER) a marked command prints first and
 * takes it out of the output stream. Lines before it (an ssh warning) pass through; after
 * TERM_MARKER_SCAN bytes without it, everything passes through.
 */
typedef struct term_marker {
    char line[TERM_MARKER_SCAN]; /* the current, unfinished line */
    size_t len;                  /* bytes in line */
    size_t scanned;              /* bytes looked at */
    bool done;                   /* found, or given up */
    long pid;                    /* the marker's pid, 0 if none */
} term_marker;

/* Feed output; everything but the marker line reaches out(arg, …), in order. */
void term_marker_feed(term_marker *m, const char *p, size_t n, term_sink out, void *arg);
/* The stream ended: pass on what is held back. */
void term_marker_flush(term_marker *m, term_sink out, void *arg);

/* ---- pure helpers (also used by the process registry) ---- */

/* Copy p[0..n) as valid UTF-8 (see the header) into a new heap string; *outlen (may be
 * NULL) gets its length. */
char *term_utf8_clean(const char *p, size_t n, size_t *outlen);
/* Code points in valid UTF-8 text. */
size_t term_utf8_count(const char *p, size_t n);
/* Byte length of the first `chars` code points of p[0..n). */
size_t term_utf8_prefix(const char *p, size_t n, size_t chars);
/* Byte offset at which the last `chars` code points of p[0..n) start. */
size_t term_utf8_suffix(const char *p, size_t n, size_t chars);

/* Remove leading lines that contain a known shell-noise text ("bash: no job control in
 * this shell", ...), in place. Returns the new length. */
size_t term_strip_noise(char *s, size_t n);
/* Does this line (n bytes, no newline) contain a known shell-noise text? */
bool term_noise_line(const char *line, size_t n);

/* Apply the 50,000-character cap to valid UTF-8 text: a new heap string. */
char *term_cap_output(const char *s, size_t n);
/* Python's str.strip() for ASCII whitespace, in place; returns s. */
char *term_strip(char *s);
/* A new heap string with every occurrence of secret (if it has 4+ bytes) as "***". */
char *term_mask_secret(const char *s, const char *secret);

#endif /* TERM_OUTPUT_H */
