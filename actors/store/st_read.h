/*
 * st_read — the read side of state.db: queries over a read-only connection, as plain
 * synchronous functions (for CLI commands outside actors, e.g. `hermes sessions list`) and as
 * a detached reader actor that answers query messages (st_store_start spawns a few).
 *
 * Results are cJSON trees the caller owns, shaped like the original's (hermes_state.py):
 *   session       {"id", "source", "user_id", "model", "model_config", "system_prompt",
 *                  "parent_session_id", "started_at", "ended_at", "end_reason",
 *                  "message_count", "tool_call_count", "input_tokens", "output_tokens", ...}
 *                 every column of the row, NULL as null (a later Hermes's extra columns too);
 *   conversation  [{"role", "content", "tool_call_id"?, "tool_name"?, "tool_calls"?}, ...]
 *                 ordered by timestamp, id; tool_calls decoded, dropped if not JSON;
 *   search hit    {"id", "session_id", "role", "snippet", "timestamp", "tool_name", "source",
 *                  "model", "session_started", "context": [{"role", "content"}, ...]}
 *                 snippet marks matches with >>> <<< (40 tokens, "..." at cuts); context is the
 *                 session's messages with id-1 .. id+1, content cut to 200 characters.
 *
 * Invariants:
 *   1. A reader never writes and never holds a read transaction between calls (statements
 *      are reset before returning), so the writer's checkpoints are never held back.
 *   2. Errors are -errno and a sentence in st_reader_errmsg(): -ENOENT (no such session /
 *      file), -EINVAL (bad FTS5 query syntax: "search query: fts5: syntax error near ..."),
 *      -E2BIG (query over ST_QUERY_MAX), -EBUSY, -EIO, -EBADMSG.
 *
 * Threads: an st_reader is used by one thread at a time (the functions may block on disk:
 * not from a behaviour on a worker; the reader actor is detached for that). The message
 * constructors may be called from any thread.
 */
#ifndef ST_READ_H
#define ST_READ_H

#include "rt_actor.h"
#include "st_store.h"

#include <cjson/cJSON.h>

#include <stdbool.h>
#include <stdint.h>

#define ST_QUERY_MAX      4096 /* bytes in a search query */
#define ST_LIST_LIMIT_MAX 1000 /* rows per list or search call */
#define ST_CONTEXT_CHARS  200  /* characters of each context message, as the original */
#define ST_SEARCH_DEFAULT 20   /* limit when 0 is given */

typedef struct st_reader st_reader;

/* Open path read-only (it must exist). NULL with *err = -errno and errmsg filled on failure. */
st_reader *st_reader_open(const char *path, int *err, char *errmsg, size_t errlen);
/* Close; NULL is a no-op. */
void st_reader_free(st_reader *r);
/* The last error's sentence, "" after a success. Borrowed until the next call. */
const char *st_reader_errmsg(const st_reader *r);

/* The session row as an object, or -ENOENT. */
int st_read_session(st_reader *r, const char *id, cJSON **out);
/* The session's messages in conversation format ([] for an unknown session). */
int st_read_messages(st_reader *r, const char *session_id, cJSON **out);

typedef struct st_search_query {
    const char *query;          /* FTS5 syntax, passed to MATCH as given; blank: [] */
    const char *const *sources; /* sessions.source IN (...); nsources == 0: every source */
    size_t nsources;
    const char *const *roles; /* messages.role IN (...); nroles == 0: every role */
    size_t nroles;
    int limit;  /* 0: 20; capped at ST_LIST_LIMIT_MAX */
    int offset; /* < 0 is 0 */
} st_search_query;
/* Full-text search, ordered by rank, as an array of hits (format above). */
int st_read_search(st_reader *r, const st_search_query *q, cJSON **out);

/* Sessions, newest started first, optionally of one source (NULL: all). limit 0: 20. */
int st_read_sessions(st_reader *r, const char *source, int limit, int offset, cJSON **out);
/* The most recently started session of source (NULL: any), or -ENOENT. */
int st_read_latest_session(st_reader *r, const char *source, cJSON **out);
/* Sessions (of source, NULL: all) and messages (of session_id, NULL: all). */
int st_read_session_count(st_reader *r, const char *source, int64_t *out);
int st_read_message_count(st_reader *r, const char *session_id, int64_t *out);
/* Ids of the sessions whose last message (stored at or after since, epoch seconds) is the
 * user's or a tool result: turns a crash or restart left unanswered. */
int st_read_unanswered(st_reader *r, double since, cJSON **out);
/* The limit most recent updates the gateway accepted (hc_inbound), oldest first: fn is called
 * once for each (strings borrowed for the call). */
typedef void (*st_inbound_fn)(void *arg, const char *platform, const char *message_id);
int st_read_inbound_recent(st_reader *r, size_t limit, st_inbound_fn fn, void *arg);
/* The inbox journal (hc_inbox), oldest first: fn once for each row (strings borrowed for the
 * call; session_key may be NULL). */
typedef struct st_inbox_row {
    const char *platform, *message_id, *session_key, *event_json;
    double received_at;
} st_inbox_row;
typedef void (*st_inbox_fn)(void *arg, const st_inbox_row *row);
int st_read_inbox(st_reader *r, st_inbox_fn fn, void *arg);
/* The contents of session_id's user messages stored at or after since (epoch seconds), in
 * order, as a new array of strings in *out. */
int st_read_user_since(st_reader *r, const char *session_id, double since, cJSON **out);
/* The replies still waiting in the outbox (state 'pending'), oldest first: fn once for each
 * (the row's strings borrowed for the call; thread_id and reply_to may be NULL). */
typedef struct st_outbox_row {
    int64_t id;
    const char *platform, *chat_id, *thread_id, *reply_to, *text;
    int kind, part, parts;
    double created_at;
} st_outbox_row;
typedef void (*st_outbox_fn)(void *arg, const st_outbox_row *row);
int st_read_outbox_pending(st_reader *r, st_outbox_fn fn, void *arg);

/* ======================================================== the reader actor */

/* Spawn a detached reader actor that owns r (freed when it ends, also on failure: 0 is
 * returned when name is taken). */
rt_ref st_reader_spawn(rt_ctx *cx, st_reader *r, const char *name);

enum {
    ST_MSG_GET_SESSION = RT_MSG_TYPE(RT_MSG_MODULE_ST, 32),    /* st_msg_get: key = id */
    ST_MSG_GET_MESSAGES = RT_MSG_TYPE(RT_MSG_MODULE_ST, 33),   /* st_msg_get: key = id */
    ST_MSG_SEARCH = RT_MSG_TYPE(RT_MSG_MODULE_ST, 34),         /* st_msg_search */
    ST_MSG_LIST_SESSIONS = RT_MSG_TYPE(RT_MSG_MODULE_ST, 35),  /* st_msg_get: key = source */
    ST_MSG_LATEST_SESSION = RT_MSG_TYPE(RT_MSG_MODULE_ST, 36), /* st_msg_get: key = source */
    ST_MSG_SESSION_COUNT = RT_MSG_TYPE(RT_MSG_MODULE_ST, 37),  /* st_msg_get: key = source */
    ST_MSG_MESSAGE_COUNT = RT_MSG_TYPE(RT_MSG_MODULE_ST, 38),  /* st_msg_get: key = id */
    ST_MSG_RESULT = RT_MSG_TYPE(RT_MSG_MODULE_ST, 48),         /* st_msg_result */
};

/* A query keyed by one optional string (see the enum), with paging for lists. */
typedef struct st_msg_get {
    rt_msg hdr;
    st_req req;
    char *key; /* owned; may be NULL (all sources / all sessions) */
    int limit; /* LIST_SESSIONS */
    int offset;
} st_msg_get;

typedef struct st_msg_search {
    rt_msg hdr;
    st_req req;
    char *query;    /* owned */
    char **sources; /* owned array of owned strings; add with st_search_add_source */
    size_t nsources;
    char **roles; /* likewise */
    size_t nroles;
    int limit;
    int offset;
} st_msg_search;

/* The reply to every read: json (owned by the message; steal it by NULLing the field) or
 * count, or err with errmsg. */
typedef struct st_msg_result {
    rt_msg hdr;
    uint64_t tag;               /* the request's req.tag */
    uint32_t op;                /* the request's type */
    int err;                    /* 0 or -errno */
    cJSON *json;                /* object / array, or NULL for counts and errors */
    int64_t count;              /* SESSION_COUNT, MESSAGE_COUNT */
    char errmsg[ST_ERRMSG_MAX]; /* "" or the reason */
} st_msg_result;

/* Constructors: copy the strings, set hdr.drop, never NULL. */
st_msg_get *st_get_new(uint32_t type, const char *key, rt_ref reply_to, uint64_t tag);
st_msg_search *st_search_new(const char *query, rt_ref reply_to, uint64_t tag);
void st_search_add_source(st_msg_search *m, const char *source);
void st_search_add_role(st_msg_search *m, const char *role);

#endif /* ST_READ_H */
