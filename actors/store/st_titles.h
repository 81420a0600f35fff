/*
 * st_titles — session titles and the session operations built on them (/title, /resume,
 * /branch, /insights), over the writer's connection to state.db.
 *
 * Titles live in our table hc_session_titles (migration 4: session_id PK, title UNIQUE
 * COLLATE NOCASE, updated_at), not in a sessions.title column as in the original's schema
 * v6: our migrations may not alter the original's tables (st_schema.h rule a). The rules
 * are the original's (hermes_state.py sanitize_title / set_session_title /
 * resolve_session_by_title / get_next_title_in_lineage):
 *   - a title is cleaned first: ASCII control characters and invisible Unicode format
 *     characters (zero-width, bidi overrides, BOM, ...) removed, whitespace runs collapsed
 *     to one space, ends trimmed; empty after that is refused; more than ST_TITLE_MAX
 *     characters is "Title too long (N chars, max 100)";
 *   - titles are unique without regard to ASCII case: "Title 'x' is already in use by
 *     session <id>" (-EEXIST);
 *   - a name resolves to the session with exactly that title, else to the most recent
 *     "name #N" variant; a session that compression continued under a new id resolves to its
 *     newest continuation. C: the original prefers the numbered variant even over an exact
 *     match, so after /branch ("name #2") `/resume name` could never go back to the original,
 *     which the /branch reply tells the user to do;
 *   - /branch without a name titles the copy "<base> #N", N one more than the lineage's
 *     highest (base: the current title without " #N", or "branch").
 * C: listing and resolving are limited to the asking platform and user (the original lists
 * every session of the platform, so one user could resume another's conversation).
 *
 * Requests (ST_MSG_SESSION_OP) go to the store writer (st_store.h), which commits any open
 * batch first, so an operation sees every write sent before it; the answer is one
 * ST_MSG_RESULT (st_read.h) with a JSON object or array, or err and errmsg.
 *
 * Threads: st_sop_new and st_title_sanitize from any thread; st_sop_exec on the thread that
 * owns the connection (it blocks on disk).
 */
#ifndef ST_TITLES_H
#define ST_TITLES_H

#include "st_store.h"

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include <stddef.h>
#include <stdint.h>

#define ST_TITLE_MAX 100 /* characters, the original's MAX_TITLE_LENGTH */

enum { ST_MSG_SESSION_OP = RT_MSG_TYPE(RT_MSG_MODULE_ST, 15) }; /* st_msg_sop -> ST_MSG_RESULT */

enum st_sop_kind {
    /* id, title (cleaned; NULL clears) -> {"id", "title"}; -EEXIST when taken */
    ST_SOP_TITLE_SET = 1,
    /* id -> {"id", "title": string or null} */
    ST_SOP_TITLE_GET,
    /* title, source?, user_id? -> {"id", "title", "message_count", "user_messages"} or -ENOENT */
    ST_SOP_TITLE_FIND,
    /* source?, user_id?, n (limit, 0: 10) -> [{"id", "title", "message_count",
     * "user_messages", "preview"}], newest first */
    ST_SOP_TITLE_LIST,
    /* id (from), new_id, title? (NULL: next in lineage), source, user_id?, model? ->
     * {"id", "parent", "title", "copied", "user_messages"}; -ENODATA with no messages */
    ST_SOP_BRANCH,
    /* since (epoch s), source? -> {"sessions", "messages", "user_messages", "tool_calls",
     * "input_tokens", "output_tokens", "tools": [{"name", "count"}], "platforms":
     * [{"name", "count"}], "models": [{"name", "count"}]} */
    ST_SOP_INSIGHTS,
    /* id -> [{"role", "content"}]: the user and assistant messages with text, in order (a
     * snapshot for /btw) */
    ST_SOP_TRANSCRIPT,
    /* id -> {"id", "deleted": messages}: the session, its messages and title removed (the
     * throw-away session of a /btw) */
    ST_SOP_DELETE,
};

typedef struct st_msg_sop {
    rt_msg hdr;
    st_req req;
    int op; /* st_sop_kind */
    char *id;
    char *title;
    char *new_id;
    char *source;
    char *user_id;
    char *model;
    int64_t n;
    double since;
} st_msg_sop;

/* A request for op about session id (copied, may be NULL); other fields are assigned with
 * rt_xstrdup afterwards. Never NULL. */
st_msg_sop *st_sop_new(int op, const char *id, rt_ref reply_to, uint64_t tag);

/*
 * Clean a title as described above. Returns 0 with *out a new string, -ENODATA when nothing
 * is left ("Title is empty after cleanup..."), -E2BIG when too long or -EILSEQ when not
 * UTF-8, with the sentence the user sees in err.
 */
int st_title_sanitize(const char *in, char **out, char *err, size_t errlen);

/* Run one operation on db (a writer connection). 0 with *out (caller owns), or -errno with
 * a sentence in errmsg. */
int st_sop_exec(sqlite3 *db, const st_msg_sop *m, cJSON **out, char *errmsg, size_t errlen);

#endif /* ST_TITLES_H */
