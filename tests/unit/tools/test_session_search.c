/*
 * session_search: the original's schema; the text work (query sanitising as the later Hermes
 * does it, transcripts, windows around matches, dates, the summariser's prompts); and the
 * search itself over a real state.db written through the store actor: grouping by root
 * session, the current conversation left out, role filters, limits, FTS5 syntax the model
 * gets wrong, very long and empty queries, a missing or damaged database, and calls through
 * the tool's actor.
 */
#include "ss_search.h"
#include "ss_text.h"
#include "st_test.h"
#include "tool.h"

#include <math.h>
#include <stdatomic.h>

/* --------------------------------------------------------------- helpers */

static const char *sget(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int iget(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ASSERT_TRUE(cJSON_IsNumber(v));
    return v->valueint;
}

static bool ok(const cJSON *r)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "success"));
}

static const cJSON *result_at(const cJSON *r, int i)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "results"), i);
}

/* The database used by the search tests, written through the store. */
static char db_path[512];

static void create(harness *h, const char *id, const char *source, const char *model,
                   const char *parent)
{
    st_msg_create_session *m = st_create_session_new(id, source);
    if (model)
        m->model = rt_xstrdup(model);
    if (parent)
        m->parent_session_id = rt_xstrdup(parent);
    col_entry e = h_call(h, &m->hdr);
    if (e.err)
        TEST_FAIL_("create %s: %d %s", id, e.err, e.errmsg);
}

static void append_tool(harness *h, const char *sid, const char *name, const char *content)
{
    st_msg_append *m = st_append_new(sid, "tool", content);
    m->tool_name = rt_xstrdup(name);
    m->tool_call_id = rt_xstrdup("call_1");
    col_entry e = h_call(h, &m->hdr);
    ASSERT_EQ(0, e.err);
}

static void append_calls(harness *h, const char *sid, const char *content, const char *calls)
{
    st_msg_append *m = st_append_new(sid, "assistant", content);
    m->tool_calls = rt_xstrdup(calls);
    col_entry e = h_call(h, &m->hdr);
    ASSERT_EQ(0, e.err);
}

/*
 * alpha    cli, gpt-x: docker networking, with a tool call and its output
 * alpha_c  child of alpha (delegation): more docker talk
 * beta     matrix: nginx deploy, mentions docker once in a tool output
 * cur_root cli: the current conversation's compressed first part (docker)
 * cur      child of cur_root: the current session (docker)
 */
static void build_db(void)
{
    snprintf(db_path, sizeof(db_path), "%s/state.db", test_tmpdir());
    harness h;
    h_start(&h, db_path);
    create(&h, "alpha", "cli", "gpt-x", NULL);
    h_append(&h, "alpha", "user", "How do I fix docker networking between two containers?");
    append_calls(&h, "alpha", "Let me look.",
                 "[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"terminal\","
                 "\"arguments\":\"{}\"}}]");
    append_tool(&h, "alpha", "terminal", "bridge0 is down");
    h_append(&h, "alpha", "assistant", "The bridge network was down; I recreated it.");
    create(&h, "alpha_c", "cli", "cheap-model", "alpha");
    h_append(&h, "alpha_c", "user", "Inspect the docker bridge in detail");
    create(&h, "beta", "matrix", NULL, NULL);
    h_append(&h, "beta", "user", "Please deploy nginx on the staging box");
    append_tool(&h, "beta", "terminal", "nginx started (docker-proxy on port 80)");
    create(&h, "cur_root", "cli", NULL, NULL);
    h_append(&h, "cur_root", "user", "earlier docker talk in this conversation");
    create(&h, "cur", "cli", NULL, "cur_root");
    h_append(&h, "cur", "user", "what did we do about docker last week?");
    h_stop(&h);
}

static cJSON *run(const char *query, const char *roles, int64_t limit, const char *current)
{
    ss_request rq = {.db_path = db_path,
                     .query = query,
                     .role_filter = roles,
                     .limit = limit,
                     .current_session_id = current};
    cJSON *r = ss_run(&rq);
    ASSERT_NOT_NULL(r);
    return r;
}

/* ---------------------------------------------------------------- schema */

TEST(schema_is_the_originals)
{
    const tool_def *d = tool_find("session_search");
    ASSERT_NOT_NULL(d);
    ASSERT_STR_EQ("session_search", d->toolset);
    ASSERT_TRUE(d->blocking);
    ASSERT_TRUE(d->parallel_safe);
    cJSON *s = cJSON_Parse(d->schema);
    ASSERT_NOT_NULL(s);
    ASSERT_STR_EQ("session_search", sget(s, "name"));
    const char *desc = sget(s, "description");
    ASSERT(strncmp(desc, "Search your long-term memory of past conversations. This is your recall",
                   70) == 0);
    ASSERT_STR_CONTAINS(desc, "USE THIS PROACTIVELY when:\n- The user says 'we did this before'");
    ASSERT_STR_CONTAINS(desc, "phrases for exact match (\"docker networking\")");
    ASSERT_STR_CONTAINS(desc, "for best results \xe2\x80\x94 FTS5 defaults to AND");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(s, "parameters");
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(p, "properties");
    ASSERT_EQ(3, cJSON_GetArraySize(props));
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(props, "query");
    ASSERT_STR_EQ("string", sget(q, "type"));
    ASSERT_STR_EQ("Search query \xe2\x80\x94 keywords, phrases, or boolean expressions to find in "
                  "past sessions.",
                  sget(q, "description"));
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(props, "role_filter");
    ASSERT_STR_EQ("Optional: only search messages from specific roles (comma-separated). E.g. "
                  "'user,assistant' to skip tool outputs.",
                  sget(rf, "description"));
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(props, "limit");
    ASSERT_STR_EQ("integer", sget(lim, "type"));
    ASSERT_EQ(3, iget(lim, "default"));
    ASSERT_STR_EQ("Max sessions to summarize (default: 3, max: 5).", sget(lim, "description"));
    char *req = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(p, "required"));
    ASSERT_STR_EQ("[\"query\"]", req);
    cJSON_free(req);
    cJSON_Delete(s);
    /* Available wherever there is a Hermes home. */
    tool_env *env = tool_env_new();
    ASSERT_FALSE(d->available(env));
    env->hermes_home = rt_xstrdup("/nonexistent");
    ASSERT_TRUE(d->available(env));
    tool_env_unref(env);
}

/* ------------------------------------------------------------------ text */

TEST(sanitize_matches_the_later_hermes)
{
    static const char *const cases[][2] = {
        {"docker networking", "docker networking"},
        {"\"docker networking\" bridge", "\"docker networking\" bridge"},
        {"docker(", "docker"},
        {"\"unbalanced quote", "unbalanced quote"},
        {"foo:bar", "foo bar"},
        {"AND", ""},
        {"***", ""},
        {"C++ templates", "C   templates"},
        {"-flag", "-flag"},
        {"a AND AND b", "a AND AND b"},
        {"OR docker AND", "docker"},
        {"deploy* OR *x", "deploy* OR x"},
        {"chat-send", "\"chat-send\""},
        {"P2.2 release", "\"P2.2\" release"},
        {"my-app.config.ts", "\"my-app.config.ts\""},
        {"\"keep-this\" and-that", "\"keep-this\" \"and-that\""},
        {"{weird} ^caret", "weird   caret"},
        {"NOT java", "java"},
        {"python NOT java", "python NOT java"},
        {"ANDROID build", "ANDROID build"},
        {"docker OR", "docker"},
        {"a - b", "a - b"},
        {"x__y", "\"x__y\""},
        {"snake_case_name", "\"snake_case_name\""},
        {"caf\xc3\xa9-bar", "\"caf\xc3\xa9-bar\""},
        {"", ""},
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(cases); i++) {
        char *s = ss_sanitize(cases[i][0]);
        if (strcmp(s, cases[i][1]) != 0)
            TEST_FAIL_("sanitize(%s) = [%s], want [%s]", cases[i][0], s, cases[i][1]);
        rt_free(s);
    }
    char *q = ss_quote_terms(" a\"b  -x (c) \"\" ");
    ASSERT_STR_EQ("\"ab\" \"-x\" \"(c)\"", q);
    rt_free(q);
    q = ss_quote_terms("   ");
    ASSERT_STR_EQ("", q);
    rt_free(q);
}

TEST(transcripts_are_the_originals)
{
    cJSON *msgs = cJSON_Parse(
        "[{\"role\":\"user\",\"content\":\"hi\"},"
        "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"a\"}},"
        "{\"name\":\"b\"},{\"function\":{}},7]},"
        "{\"role\":\"assistant\",\"content\":\"text\",\"tool_calls\":[{\"function\":{\"name\":"
        "\"c\"}}]},"
        "{\"role\":\"assistant\",\"content\":null},"
        "{\"role\":\"tool\",\"content\":\"short\",\"tool_name\":\"terminal\"},"
        "{\"role\":\"tool\",\"content\":\"no name\"},"
        "{\"content\":\"who\"}]");
    char *t = ss_format_conversation(msgs);
    ASSERT_STR_EQ("[USER]: hi\n\n[ASSISTANT]: [Called: a, b, ?]\n\n[ASSISTANT]: [Called: c]\n\n"
                  "[ASSISTANT]: text\n\n[ASSISTANT]: \n\n[TOOL:terminal]: short\n\n[TOOL]: no "
                  "name\n\n[UNKNOWN]: who",
                  t);
    rt_free(t);
    cJSON_Delete(msgs);
    /* A tool output over 500 characters keeps its first and last 250 (characters). */
    char big[1300];
    size_t o = 0;
    for (int i = 0; i < 600; i++) {
        memcpy(big + o, i < 250 ? "\xc3\xa9" : i >= 350 ? "z" : "m", i < 250 ? 2 : 1);
        o += i < 250 ? 2 : 1;
    }
    big[o] = '\0';
    msgs = cJSON_CreateArray();
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "tool");
    cJSON_AddStringToObject(m, "tool_name", "x");
    cJSON_AddStringToObject(m, "content", big);
    cJSON_AddItemToArray(msgs, m);
    t = ss_format_conversation(msgs);
    ASSERT(strncmp(t, "[TOOL:x]: \xc3\xa9", 12) == 0);
    char *mid = strstr(t, "\n...[truncated]...\n");
    ASSERT_NOT_NULL(mid);
    ASSERT_EQ(10 + 500, mid - t); /* 250 two-byte characters after the label */
    ASSERT_EQ(250, (int)strlen(mid + strlen("\n...[truncated]...\n")));
    ASSERT_NULL(strchr(t, 'm'));
    rt_free(t);
    cJSON_Delete(msgs);
}

TEST(windows_centre_on_the_first_query_word)
{
    char text[4001];
    memset(text, 'a', 4000);
    text[4000] = '\0';
    memcpy(text + 3000, "Docker", 6);
    char *w = ss_truncate_around(text, "\"docker OR nginx\"", 1000);
    ASSERT(strncmp(w, "...[earlier conversation truncated]...\n\n", 40) == 0);
    size_t n = strlen(w);
    ASSERT(n > 40 + 1000);
    ASSERT_STR_EQ("\n\n...[later conversation truncated]...", w + n - 38);
    /* the window is [2500, 3500): Docker sits 500 characters in */
    ASSERT_EQ(40 + 500, strstr(w, "Docker") - w);
    rt_free(w);
    /* no word found: from the start; at the end: no later marker */
    w = ss_truncate_around(text, "zebra", 1000);
    ASSERT(strncmp(w, "aaaa", 4) == 0);
    ASSERT_STR_CONTAINS(w, "later conversation truncated");
    rt_free(w);
    memcpy(text + 3990, "nginx", 5);
    memcpy(text + 3000, "aaaaaa", 6);
    w = ss_truncate_around(text, "AND OR nginx", 1000); /* operators are not words */
    ASSERT_NULL(strstr(w, "later conversation"));
    ASSERT_STR_CONTAINS(w, "earlier conversation");
    rt_free(w);
    w = ss_truncate_around("short", "x", 1000);
    ASSERT_STR_EQ("short", w);
    rt_free(w);
    /* cuts fall between characters */
    char *u = rt_xmalloc(2 * 3000 + 1);
    for (int i = 0; i < 3000; i++)
        memcpy(u + 2 * i, "\xc3\xa9", 2);
    u[6000] = '\0';
    w = ss_truncate_around(u, "x", 1001);
    ASSERT_EQ(1001 * 2 + 38, (int)strlen(w));
    rt_free(w);
    rt_free(u);
}

TEST(dates_and_summary_prompts)
{
    setenv("TZ", "UTC", 1);
    tzset();
    char when[64];
    ss_format_when(1772442900.5, when, sizeof(when)); /* 2026-03-02 09:15:00 UTC */
    ASSERT_STR_EQ("March 02, 2026 at 09:15 AM", when);
    ss_format_when(NAN, when, sizeof(when));
    ASSERT_STR_EQ("unknown", when);
    ss_format_when(1e300, when, sizeof(when));
    ASSERT_STR_EQ("unknown", when);
    cJSON *msgs = ss_summary_messages("docker", "cli", "March 02, 2026 at 09:15 AM", "[USER]: x");
    ASSERT_EQ(2, cJSON_GetArraySize(msgs));
    const cJSON *sys = cJSON_GetArrayItem(msgs, 0);
    ASSERT_STR_EQ("system", sget(sys, "role"));
    ASSERT(strncmp(sget(sys, "content"), "You are reviewing a past conversation transcript", 48) ==
           0);
    ASSERT_STR_CONTAINS(sget(sys, "content"), "Write in past tense as a factual recap.");
    ASSERT_STR_EQ("Search topic: docker\nSession source: cli\nSession date: March 02, 2026 at "
                  "09:15 AM\n\nCONVERSATION TRANSCRIPT:\n[USER]: x\n\nSummarize this "
                  "conversation with focus on: docker",
                  sget(cJSON_GetArrayItem(msgs, 1), "content"));
    cJSON_Delete(msgs);
}

/* ---------------------------------------------------------------- search */

TEST(finds_a_conversation_written_through_the_store)
{
    build_db();
    cJSON *r = run("networking", NULL, 3, NULL);
    ASSERT_TRUE(ok(r));
    ASSERT_STR_EQ("networking", sget(r, "query"));
    ASSERT_EQ(1, iget(r, "count"));
    ASSERT_EQ(1, iget(r, "sessions_searched"));
    const cJSON *e = result_at(r, 0);
    ASSERT_STR_EQ("alpha", sget(e, "session_id"));
    ASSERT_STR_EQ("cli", sget(e, "source"));
    ASSERT_STR_EQ("gpt-x", sget(e, "model"));
    /* "when" is the session's start, formatted as the original */
    int err = 0;
    char msg[ST_ERRMSG_MAX];
    st_reader *rd = st_reader_open(db_path, &err, msg, sizeof(msg));
    ASSERT_NOT_NULL(rd);
    cJSON *row = NULL;
    ASSERT_OK(st_read_session(rd, "alpha", &row));
    char when[64];
    ss_format_when(cJSON_GetObjectItem(row, "started_at")->valuedouble, when, sizeof(when));
    ASSERT_STR_EQ(when, sget(e, "when"));
    cJSON_Delete(row);
    st_reader_free(rd);
    /* Without a summariser: a raw preview with the match and the transcript. */
    const char *sum = sget(e, "summary");
    ASSERT(strncmp(sum, "[Raw preview \xe2\x80\x94 summarization unavailable]\n", 44) == 0);
    ASSERT_STR_CONTAINS(sum, "[USER]: How do I fix docker >>>networking<<<");
    ASSERT_STR_CONTAINS(sum, "Transcript:\n[USER]: How do I fix docker networking");
    ASSERT_STR_CONTAINS(sum, "[ASSISTANT]: [Called: terminal]\n\n[ASSISTANT]: Let me look.");
    ASSERT_STR_CONTAINS(sum, "[TOOL:terminal]: bridge0 is down");
    cJSON_Delete(r);
}

TEST(children_count_as_their_root_and_the_current_conversation_is_left_out)
{
    build_db();
    /* docker is in alpha, alpha_c (child of alpha), beta's tool output, cur_root and cur. */
    cJSON *r = run("docker", NULL, 5, "cur");
    ASSERT_TRUE(ok(r));
    ASSERT_EQ(2, iget(r, "count"));
    ASSERT_EQ(2, iget(r, "sessions_searched"));
    bool alpha = false, beta = false;
    for (int i = 0; i < 2; i++) {
        const char *sid = sget(result_at(r, i), "session_id");
        alpha |= strcmp(sid, "alpha") == 0;
        beta |= strcmp(sid, "beta") == 0;
        ASSERT(strcmp(sid, "alpha_c") != 0 && strncmp(sid, "cur", 3) != 0);
    }
    ASSERT_TRUE(alpha && beta);
    cJSON_Delete(r);
    /* A hit only in the child reports the root, with the root's source and model. */
    r = run("Inspect", NULL, 3, NULL);
    ASSERT_EQ(1, iget(r, "count"));
    ASSERT_STR_EQ("alpha", sget(result_at(r, 0), "session_id"));
    ASSERT_STR_EQ("gpt-x", sget(result_at(r, 0), "model"));
    ASSERT_STR_CONTAINS(sget(result_at(r, 0), "summary"), ">>>Inspect<<< the docker bridge");
    cJSON_Delete(r);
    /* Without a current session every root is found: alpha, beta and cur_root. */
    r = run("docker", NULL, 5, NULL);
    ASSERT_EQ(3, iget(r, "count"));
    cJSON_Delete(r);
    /* The current session excluded only finds its own lineage: no matches. */
    r = run("earlier", NULL, 3, "cur");
    char *t = cJSON_PrintUnformatted(r);
    ASSERT_STR_EQ("{\"success\":true,\"query\":\"earlier\",\"results\":[],\"count\":0,"
                  "\"message\":\"No matching sessions found.\"}",
                  t);
    cJSON_free(t);
    cJSON_Delete(r);
}

TEST(limits_and_role_filters)
{
    build_db();
    cJSON *r = run("docker", NULL, 1, NULL);
    ASSERT_EQ(1, iget(r, "count"));
    ASSERT_EQ(1, iget(r, "sessions_searched"));
    cJSON_Delete(r);
    r = run("docker", NULL, 0, NULL); /* as the original: at least one */
    ASSERT_EQ(1, iget(r, "count"));
    cJSON_Delete(r);
    r = run("docker", NULL, 99, NULL); /* capped at 5; three exist */
    ASSERT_EQ(3, iget(r, "count"));
    cJSON_Delete(r);
    /* beta mentions docker only in a tool output. */
    r = run("docker", " user , assistant,", 5, NULL);
    ASSERT_EQ(2, iget(r, "count"));
    for (int i = 0; i < 2; i++)
        ASSERT(strcmp(sget(result_at(r, i), "session_id"), "beta") != 0);
    cJSON_Delete(r);
    r = run("docker", "tool", 5, NULL);
    ASSERT_EQ(1, iget(r, "count"));
    ASSERT_STR_EQ("beta", sget(result_at(r, 0), "session_id"));
    ASSERT_STR_EQ("matrix", sget(result_at(r, 0), "source"));
    ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(result_at(r, 0), "model")));
    cJSON_Delete(r);
    r = run("nginx OR networking", NULL, 5, NULL);
    ASSERT_EQ(2, iget(r, "count"));
    cJSON_Delete(r);
    r = run("nginx networking", NULL, 5, NULL); /* AND: no message has both */
    ASSERT_EQ(0, iget(r, "count"));
    cJSON_Delete(r);
}

TEST(more_than_five_sessions_are_capped)
{
    snprintf(db_path, sizeof(db_path), "%s/state.db", test_tmpdir());
    harness h;
    h_start(&h, db_path);
    for (int i = 0; i < 7; i++) {
        char id[16];
        snprintf(id, sizeof(id), "s%d", i);
        create(&h, id, "telegram", NULL, NULL);
        h_append(&h, id, "user", "kubernetes rollout question");
    }
    h_stop(&h);
    cJSON *r = run("kubernetes", NULL, 5, NULL);
    ASSERT_EQ(5, iget(r, "count"));
    ASSERT_EQ(5, iget(r, "sessions_searched"));
    cJSON_Delete(r);
}

TEST(queries_fts5_rejects_are_made_safe)
{
    build_db();
    static const char *const found[] = {
        "docker(",
        "\"docker",
        "docker:",
        "(networking",
        "networking^",
        "+docker",
        "docker OR",
        "AND docker",
        "bridge0 -down",
        "docker AND AND bridge",
        "docker OR OR networking",
        "docker*",
        "\"docker-proxy\"",
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(found); i++) {
        cJSON *r = run(found[i], NULL, 5, NULL);
        if (!ok(r) || iget(r, "count") == 0) {
            char *t = cJSON_PrintUnformatted(r);
            TEST_FAIL_("query %s: %s", found[i], t);
        }
        cJSON_Delete(r);
    }
    /* Nothing left to search for: no matches rather than an error. */
    static const char *const empty[] = {"***", "AND", "()", "^", "\"\""};
    for (size_t i = 0; i < RT_ARRAY_LEN(empty); i++) {
        cJSON *r = run(empty[i], NULL, 5, NULL);
        ASSERT_TRUE(ok(r));
        ASSERT_EQ(0, iget(r, "count"));
        cJSON_Delete(r);
    }
    /* The query reported is the model's, stripped. */
    cJSON *r = run("  docker(  ", NULL, 5, NULL);
    ASSERT_STR_EQ("docker(", sget(r, "query"));
    cJSON_Delete(r);
}

TEST(empty_and_very_long_queries)
{
    build_db();
    static const char *const blank[] = {"", "   ", "\t\n", "\xe3\x80\x80"};
    for (size_t i = 0; i < RT_ARRAY_LEN(blank); i++) {
        cJSON *r = run(blank[i], NULL, 3, NULL);
        ASSERT_FALSE(ok(r));
        ASSERT_STR_EQ("Query cannot be empty.", sget(r, "error"));
        cJSON_Delete(r);
    }
    cJSON *r = run(NULL, NULL, 3, NULL);
    ASSERT_STR_EQ("Query cannot be empty.", sget(r, "error"));
    cJSON_Delete(r);
    char *q = rt_xmalloc(5001);
    for (int i = 0; i < 5000; i++)
        q[i] = "docker "[i % 7];
    q[5000] = '\0';
    r = run(q, NULL, 3, NULL);
    ASSERT_FALSE(ok(r));
    ASSERT_STR_CONTAINS(sget(r, "error"), "Search failed: the query is ");
    ASSERT_STR_CONTAINS(sget(r, "error"), "keep it under 4096");
    cJSON_Delete(r);
    q[3997] = '\0'; /* long but allowed: 571 ANDed "docker" terms */
    r = run(q, NULL, 3, NULL);
    ASSERT_TRUE(ok(r));
    ASSERT_EQ(3, iget(r, "count"));
    cJSON_Delete(r);
    rt_free(q);
}

TEST(a_missing_or_damaged_database_is_reported)
{
    snprintf(db_path, sizeof(db_path), "%s/state.db", test_tmpdir());
    cJSON *r = run("docker", NULL, 3, NULL);
    ASSERT_FALSE(ok(r));
    ASSERT_STR_EQ("Session database not available.", sget(r, "error"));
    cJSON_Delete(r);
    ss_request rq = {.query = "docker", .limit = 3};
    r = ss_run(&rq); /* no path at all */
    ASSERT_STR_EQ("Session database not available.", sget(r, "error"));
    cJSON_Delete(r);
    /* Not a database: an error result, never a crash. */
    FILE *f = fopen(db_path, "w");
    ASSERT_NOT_NULL(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not an sqlite file ", f);
    fclose(f);
    r = run("docker", NULL, 3, NULL);
    ASSERT_FALSE(ok(r));
    ASSERT_NOT_NULL(sget(r, "error"));
    cJSON_Delete(r);
    /* An empty file opens as an empty database without the tables. */
    f = fopen(db_path, "w");
    fclose(f);
    r = run("docker", NULL, 3, NULL);
    ASSERT_FALSE(ok(r));
    ASSERT_STR_CONTAINS(sget(r, "error"), "Search failed: ");
    cJSON_Delete(r);
}

/* ------------------------------------------------------- through the tool */

enum { T_GO = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1) };
static tool_env *env;
static _Atomic int nresults;
static char results[3][8192];

static void session_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    static const char *const args[3] = {
        "{\"query\":\"networking\"}",
        "{\"query\":\"docker\",\"role_filter\":\"tool\",\"limit\":\"2\"}",
        "{\"limit\":3}",
    };
    if (m->type == T_GO) {
        for (int i = 0; i < 3; i++)
            ASSERT_NE(0, tool_start_call(cx, tool_find("session_search"), env, (uint64_t)i, "c",
                                         args[i]));
    } else if (m->type == TOOL_MSG_RESULT) {
        tool_msg_result *r = (tool_msg_result *)m;
        snprintf(results[r->seq], sizeof(results[0]), "%s", r->result);
        atomic_fetch_add(&nresults, 1);
    }
}
static const rt_actor_type session_type = {"session", session_behave, NULL, 0};

TEST(parallel_calls_through_the_tool_actor)
{
    build_db();
    env = tool_env_new();
    char *slash = strrchr(db_path, '/');
    env->hermes_home = rt_xstrndup(db_path, (size_t)(slash - db_path));
    env->session_id = rt_xstrdup("alpha"); /* the current session: alpha is left out */
    rt_runtime *rt = rt_runtime_new(NULL);
    rt_spawn_opts o = {.flags = RT_SPAWN_TRAP_EXIT};
    rt_ref s = rt_spawn(rt_ctx_external(rt), &session_type, NULL, &o);
    rt_send(rt_ctx_external(rt), s, rt_msg_new(T_GO, sizeof(rt_msg)));
    int64_t t0 = rt_now_ns(rt);
    while (atomic_load(&nresults) < 3) {
        ASSERT_LT(rt_now_ns(rt) - t0, 20000000000LL);
        usleep(1000);
    }
    ASSERT_OK(rt_wait_quiescent(rt, 10000));
    ASSERT_STR_CONTAINS(results[0], "\"message\":\"No matching sessions found.\"");
    ASSERT_STR_CONTAINS(results[1], "\"session_id\":\"beta\"");
    ASSERT_STR_CONTAINS(results[1], "\"count\":1");
    ASSERT_STR_EQ("{\"success\":false,\"error\":\"Query cannot be empty.\"}", results[2]);
    rt_runtime_free(rt);
    tool_env_unref(env);
}
