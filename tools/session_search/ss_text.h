/*
 * ss_text — the text work of session_search (agent-core §6.4, tools/session_search_tool.py):
 * making a model's query safe for FTS5 when it is not, rendering a stored conversation as a
 * transcript, cutting a transcript to a window around the first query term, the "when"
 * dates, the summariser's prompts and the raw preview used when no summariser is wired.
 *
 * Lengths are counted in characters (UTF-8 code points) as the original counts them, and
 * every cut falls on a character boundary. Case-insensitive term search folds ASCII only.
 *
 * Threads: any thread; everything here is pure.
 */
#ifndef SS_TEXT_H
#define SS_TEXT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define SS_MAX_SESSION_CHARS  100000 /* transcript sent to the summariser (the original's) */
#define SS_TOOL_OUTPUT_CHARS  500    /* longer tool outputs keep 250 + 250 characters */
#define SS_PREVIEW_CHARS      1500   /* transcript window in a raw preview */
#define SS_SUMMARY_MAX_TOKENS 10000  /* the summariser's max_tokens (the original's) */
#define SS_SUMMARY_TEMP       0.1    /* the summariser's temperature (the original's) */

/*
 * The query with FTS5 syntax that would fail made harmless, as the later Hermes does
 * (hermes_state.py _sanitize_fts5_query): balanced "phrases" kept; + { } ( ) : ^ and stray
 * quotes become spaces; runs of * become one and a leading * goes; a leading or trailing
 * AND/OR/NOT goes; words joined by . _ - ("chat-send", "P2.2") become "phrases". New string,
 * possibly empty.
 */
char *ss_sanitize(const char *query);
/* Every whitespace-separated word of query as a quoted phrase (quotes inside dropped),
 * joined by spaces, bare AND / OR left out: the last resort for a query FTS5 still rejects.
 * New string. */
char *ss_quote_terms(const char *query);

/*
 * A conversation in st_read's format ([{"role","content","tool_name"?,"tool_calls"?}...])
 * as the original's transcript: "[USER]: text", "[ASSISTANT]: [Called: a, b]" then the
 * text, "[TOOL:name]: output" (outputs over 500 characters keep the first and last 250),
 * joined by blank lines. New string.
 */
char *ss_format_conversation(const cJSON *messages);

/*
 * text cut to max_chars characters around the first occurrence of any query word (FTS5
 * operators and syntax characters ignored), with "...[earlier conversation truncated]..."
 * and "...[later conversation truncated]..." markers where text was cut; text itself when
 * it fits. New string.
 */
char *ss_truncate_around(const char *text, const char *query, size_t max_chars);

/* A session start time (Unix seconds) as "March 02, 2026 at 09:15 AM", local time. */
void ss_format_when(double ts, char *out, size_t outlen);

/* The summariser's request messages for one session, the original's prompts:
 * [{"role":"system",...},{"role":"user",...}]. New array. */
cJSON *ss_summary_messages(const char *query, const char *source, const char *when,
                           const char *transcript);

/*
 * The summary of a session when no summariser is available: a header saying so, the
 * matching snippets (FTS5 ">>>match<<<" marks) and a SS_PREVIEW_CHARS window of the
 * transcript around the first query word. snippets may be NULL. New string.
 */
char *ss_raw_preview(const char *transcript, const char *query, const cJSON *snippets);

#endif /* SS_TEXT_H */
