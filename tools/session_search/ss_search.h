/*
 * ss_search — the state.db side of session_search (agent-core §6.3–6.4): full-text search
 * over past messages, hits grouped by conversation (a delegated or compressed child session
 * counts as its root ancestor), the current conversation left out, each session's
 * transcript loaded and cut around the query, and the tool's result object.
 *
 * The original summarises every session found with an auxiliary model (one request per
 * session, in parallel). The work is split at that point so the summaries can be wired in:
 *   ss_prepare  search, group, load transcripts           (blocking: SQLite reads)
 *   ...         one summariser request per session: ss_summary_messages(query,
 *               source, when, transcript) from ss_text.h                 (not wired yet)
 *   ss_result   the result object; a session without a summary gets a raw preview
 * ss_run does ss_prepare and ss_result with no summaries.
 *
 * Differences from the original at the baseline, all later fixed upstream too:
 *   1. The current session and its whole lineage (parents from compression, children from
 *      delegation) are left out (agent-core Appendix A 13).
 *   2. A query FTS5 rejects is retried made safe (ss_sanitize, then every word quoted)
 *      instead of failing; the error is reported only when all three fail.
 *   3. Sessions of every source are searched (the baseline listed cli, telegram, discord,
 *      whatsapp and slack: every platform it had; this build also has matrix, mattermost,
 *      api_server, …).
 *   4. source, model and when describe the root session, not the child the hit was in.
 *   5. Without a summariser a session still appears, with a raw preview as its summary.
 *
 * Threads: any thread that may block (a detached actor); one call opens and closes its own
 * read-only connection.
 */
#ifndef SS_SEARCH_H
#define SS_SEARCH_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define SS_HITS         50 /* messages fetched to find distinct sessions (the original's) */
#define SS_LIMIT_MAX    5  /* sessions per call at most (the original's cap) */
#define SS_SNIPPETS_MAX 3  /* matching snippets kept per session for the raw preview */

typedef struct ss_request {
    const char *db_path;            /* <hermes_home>/state.db */
    const char *query;              /* the model's query, FTS5 syntax */
    const char *role_filter;        /* comma-separated roles, or NULL / "" for all */
    int64_t limit;                  /* sessions; clamped to 1..SS_LIMIT_MAX */
    const char *current_session_id; /* left out with its lineage; NULL: nothing is */
} ss_request;

typedef struct ss_session {
    char *session_id; /* the root session of the matching conversation */
    char *source;     /* its platform */
    char *model;      /* its model, or NULL */
    char when[64];    /* its start, "March 02, 2026 at 09:15 AM", or "unknown" */
    char *transcript; /* ss_format_conversation, cut to SS_MAX_SESSION_CHARS around the query */
    cJSON *snippets;  /* [{"role","tool_name","snippet"}] of its hits, at most SS_SNIPPETS_MAX */
} ss_session;

typedef struct ss_found {
    char *query;     /* the query as searched (stripped) */
    ss_session *v;   /* the sessions to summarise, best first */
    size_t n;        /* entries of v */
    size_t searched; /* distinct sessions matched, including any without messages */
} ss_found;

/*
 * Search. Returns NULL with *found filled (free with ss_found_fini) when there are sessions
 * to summarise, or a finished result object the caller owns: a failure
 * {"success":false,"error"} ("Query cannot be empty.", "Session database not available.",
 * "Search failed: ...") or {"success":true,...,"message":"No matching sessions found."}.
 */
cJSON *ss_prepare(const ss_request *rq, ss_found *found);
void ss_found_fini(ss_found *f);

/*
 * The result {"success":true,"query","results":[{"session_id","when","source","model",
 * "summary"}],"count","sessions_searched"}. summaries (may be NULL) holds f->n texts
 * (borrowed); a NULL or empty one is replaced by ss_raw_preview. New object.
 */
cJSON *ss_result(const ss_found *f, const char *const *summaries);

/* ss_prepare then ss_result without summaries. New object, never NULL. */
cJSON *ss_run(const ss_request *rq);

#endif /* SS_SEARCH_H */
