/*
 * rt_sse — a push parser for Server-Sent Events streams (text/event-stream).
 *
 * Follows the WHATWG HTML standard, "Server-sent events: interpreting an event stream":
 *   1. One U+FEFF byte-order mark (EF BB BF) at the very start of the stream is dropped.
 *   2. Lines end with CRLF, LF or CR. A CR at the end of one chunk and an LF at the start of
 *      the next are one line end.
 *   3. "field: value" — the first colon splits; one space after it is dropped. A line
 *      without a colon is a field with an empty value. A line starting with ':' is a comment.
 *   4. event sets the event type and id the last event ID, each unless the value contains
 *      NUL (it could never be compared whole); data appends its value plus "\n" to the data
 *      buffer; retry sets the reconnection
 *      time if the value is all ASCII digits. Other fields are ignored.
 *   5. An empty line dispatches: if the data buffer is empty nothing is dispatched (the
 *      event type is reset); otherwise the trailing "\n" is removed and the event goes to the
 *      callback with type "message" when none was set. The last event ID persists.
 *   6. At the end of the stream an unfinished event is discarded (the caller simply stops
 *      feeding).
 * Bytes are passed through as they are (no UTF-8 validation or replacement).
 *
 * Invariants: output never depends on how the input was split into chunks; memory is bounded
 * by the per-event cap given to rt_sse_init: an event's data, its type and its id are at most
 * max bytes, and every single line at most max + RT_SSE_LINE_SLACK (room for the field name).
 * Comment lines are skipped without being buffered, so they may be any length. Going over
 * fails with -E2BIG, which is sticky.
 *
 * Threads: an rt_sse belongs to one owner at a time; the module has no global state.
 */
#ifndef RT_SSE_H
#define RT_SSE_H

#include "rt_buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_SSE_LINE_SLACK 16 /* a line may exceed the event cap by this much */

/* One dispatched event. Every pointer is borrowed for the duration of the callback. */
typedef struct rt_sse_event {
    const char *type; /* event type, "message" when the stream named none; NUL-terminated */
    const char *data; /* data lines joined with "\n"; NUL-terminated (may contain NULs) */
    size_t data_len;  /* bytes in data, without the terminator */
    const char *id;   /* last event ID so far, "" when none */
    int64_t retry_ms; /* reconnection time last set by the stream, or -1 */
} rt_sse_event;

/* Receives each event; return 0 to go on, anything else to stop rt_sse_feed, which then
 * returns that value (the rest of the chunk is not parsed). */
typedef int (*rt_sse_fn)(void *arg, const rt_sse_event *ev);

typedef struct rt_sse {
    rt_buf line;      /* the current line, while it spans chunks */
    rt_buf data;      /* data buffer: each data value plus "\n" */
    rt_buf type;      /* event type buffer */
    rt_buf id;        /* last event ID buffer (persists across events) */
    size_t max;       /* per-event cap */
    int64_t retry_ms; /* -1 until the stream sends a valid retry field */
    int err;          /* sticky error (-E2BIG) or a callback's stop value */
    uint8_t bom;      /* BOM bytes matched so far; 3 once the check is over */
    bool cr;          /* the last byte was a CR: an LF next is part of the same line end */
    bool skip;        /* the current line is a comment and is being discarded */
} rt_sse;

/* Prepare p; max_event (> 0) caps an event's data, type and id in bytes (lines: + slack). */
void rt_sse_init(rt_sse *p, size_t max_event);
/* Release p's buffers. */
void rt_sse_fini(rt_sse *p);

/*
 * Parse len bytes of the stream, calling fn for each complete event. Borrows buf. Returns
 * 0; -E2BIG when an event or line goes over the cap; or fn's non-zero return value. After
 * an error every later call returns the same value without parsing.
 */
int rt_sse_feed(rt_sse *p, const void *buf, size_t len, rt_sse_fn fn, void *arg);

/* The last event ID seen so far ("" when none); for a reconnect's Last-Event-ID. */
const char *rt_sse_last_id(const rt_sse *p);

#endif /* RT_SSE_H */
