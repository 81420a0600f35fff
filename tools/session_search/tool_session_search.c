/*
 * tool_session_search — the `session_search` tool (agent-core §3.3, §6.4): full-text
 * search over past conversations in <hermes_home>/state.db, one result per matching
 * conversation. Schema, arguments and result shapes are the original's
 * (tools/session_search_tool.py); the work is ss_search's.
 *
 * The tool is `blocking` (SQLite reads on a detached actor) and parallel-safe (read-only;
 * its description asks the model to run keyword searches in parallel).
 *
 * Summaries: the original asks an auxiliary model for one per session. Until an auxiliary
 * provider reaches tools, every result carries a raw preview instead (see ss_search.h for
 * the seam, and docs/tools-memory.md).
 */
#include "ss_search.h"
#include "tool.h"

#include "rt_alloc.h"

#include <string.h>

/* Available where a state.db can be: a Hermes home (the original also needs an
 * auxiliary model, which only the summaries use here). */
static bool session_search_available(const tool_env *env)
{
    return env->hermes_home && *env->hermes_home;
}

static void session_search_start(rt_ctx *cx, tool_run *run)
{
    const tool_env *env = run->env;
    char *db = env->hermes_home && *env->hermes_home ? rt_xasprintf("%s/state.db", env->hermes_home)
                                                     : NULL;
    ss_request rq = {
        .db_path = db,
        .query = tool_arg_str(run, "query"),
        .role_filter = tool_arg_str(run, "role_filter"),
        .limit = tool_arg_int(run, "limit", 3),
        .current_session_id = env->session_id,
    };
    cJSON *r = ss_run(&rq);
    rt_free(db);
    tool_finish_json(cx, run, r);
}

const tool_def tool_def_session_search = {
    .name = "session_search",
    .toolset = "session_search",
    .schema =
        "{\"name\":\"session_search\",\"description\":\"Search your long-term memory of "
        "past conversations. This is your recall -- every past session is searchable, and "
        "this tool summarizes what happened.\\n\\nUSE THIS PROACTIVELY when:\\n- The user "
        "says 'we did this before', 'remember when', 'last time', 'as I mentioned'\\n- The "
        "user asks about a topic you worked on before but don't have in current context\\n- "
        "The user references a project, person, or concept that seems familiar but isn't "
        "in memory\\n- You want to check if you've solved a similar problem before\\n- The "
        "user asks 'what did we do about X?' or 'how did we fix Y?'\\n\\nDon't hesitate "
        "to search -- it's fast and cheap. Better to search and confirm than to guess or "
        "ask the user to repeat themselves.\\n\\nSearch syntax: keywords joined with OR "
        "for broad recall (elevenlabs OR baseten OR funding), phrases for exact match (\\\"docker "
        "networking\\\"), boolean (python NOT java), prefix (deploy*). IMPORTANT: Use OR "
        "between keywords for best results \xe2\x80\x94"
        " FTS5 defaults to AND which misses "
        "sessions that only mention some terms. If a broad OR query returns nothing, try "
        "individual keyword searches in parallel. Returns summaries of the top matching "
        "sessions.\",\"parameters\":{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"str"
        "ing\",\"description\":\"Search query \xe2\x80\x94"
        " keywords, phrases, or boolean "
        "expressions to find in past sessions.\"},\"role_filter\":{\"type\":\"string\",\"descripti"
        "on\":\"Optional: only search messages from specific roles (comma-separated). E.g. "
        "'user,assistant' to skip tool outputs.\"},\"limit\":{\"type\":\"integer\",\"description\""
        ":\"Max sessions to summarize (default: 3, max: 5).\",\"default\":3}},\"required\":[\"quer"
        "y\"]}}",
    .blocking = true,      /* SQLite reads: a detached actor */
    .parallel_safe = true, /* read-only */
    .available = session_search_available,
    .start = session_search_start,
};
