/*
 * Read side, synchronous functions over a database the original created: conversation format,
 * session rows, §6.3 search (snippets, context, filters, paging, FTS5 syntax errors), session
 * lists, latest session, counts.
 */
#include "st_test.h"

#define S_CLI   "20260301_101500_a1b2c3"
#define S_TG    "20260301_120000_d4e5f6"
#define S_CHILD "20260301_120140_0a0b0c"

static st_reader *fixture_reader(void)
{
    const char *p = tmp_path("state.db");
    make_fixture_db("original_v2.sql", p);
    int err = 0;
    char msg[ST_ERRMSG_MAX];
    st_reader *r = st_reader_open(p, &err, msg, sizeof(msg));
    if (!r)
        TEST_FAIL_("reader: %d %s", err, msg);
    return r;
}

static void exec_on(const char *sql)
{
    sqlite3 *db = raw_open(tmp_path("state.db"));
    char *e = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &e) != SQLITE_OK)
        TEST_FAIL_("%s: %s", sql, e);
    sqlite3_close(db);
}

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ASSERT_TRUE(cJSON_IsNumber(v));
    return v->valuedouble;
}

static bool has(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k) != NULL;
}

TEST(conversation_format)
{
    st_reader *r = fixture_reader();
    exec_on("INSERT INTO messages (session_id, role, content, tool_calls, timestamp) VALUES "
            "('" S_CLI "', 'assistant', NULL, 'not json', 1772360200.0)");
    cJSON *conv = NULL;
    ASSERT_OK(st_read_messages(r, S_CLI, &conv));
    ASSERT_EQ(5, cJSON_GetArraySize(conv));
    const cJSON *u = cJSON_GetArrayItem(conv, 0);
    ASSERT_STR_EQ("user", str_of(u, "role"));
    ASSERT_STR_CONTAINS(str_of(u, "content"), "deploy the docker container");
    ASSERT_FALSE(has(u, "tool_call_id"));
    ASSERT_FALSE(has(u, "tool_calls"));
    ASSERT_FALSE(has(u, "tool_name"));
    /* The assistant's tool_calls come back decoded. */
    const cJSON *a = cJSON_GetArrayItem(conv, 1);
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(a, "tool_calls");
    ASSERT_TRUE(cJSON_IsArray(calls));
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(calls, 0), "function");
    ASSERT_STR_EQ("terminal", str_of(fn, "name"));
    /* The tool result carries its call id and tool name. */
    const cJSON *t = cJSON_GetArrayItem(conv, 2);
    ASSERT_STR_EQ("tool", str_of(t, "role"));
    ASSERT_STR_EQ("call_1", str_of(t, "tool_call_id"));
    ASSERT_STR_EQ("terminal", str_of(t, "tool_name"));
    /* NULL content stays null; undecodable tool_calls are left out, as the original. */
    const cJSON *last = cJSON_GetArrayItem(conv, 4);
    ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(last, "content")));
    ASSERT_FALSE(has(last, "tool_calls"));
    cJSON_Delete(conv);
    /* Unknown session: an empty list. */
    ASSERT_OK(st_read_messages(r, "nope", &conv));
    ASSERT_EQ(0, cJSON_GetArraySize(conv));
    cJSON_Delete(conv);
    ASSERT_EQ(-EINVAL, st_read_messages(r, NULL, &conv));
    st_reader_free(r);
}

TEST(session_row_has_every_column)
{
    st_reader *r = fixture_reader();
    cJSON *s = NULL;
    ASSERT_OK(st_read_session(r, S_TG, &s));
    ASSERT_STR_EQ(S_TG, str_of(s, "id"));
    ASSERT_STR_EQ("telegram", str_of(s, "source"));
    ASSERT_STR_EQ("compression", str_of(s, "end_reason"));
    ASSERT_EQ(2, (int)num_of(s, "message_count"));
    ASSERT_EQ(1200, (int)num_of(s, "input_tokens"));
    ASSERT_EQ(85, (int)num_of(s, "output_tokens"));
    ASSERT_TRUE(num_of(s, "started_at") == 1772366400.0);
    ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(s, "user_id")));
    ASSERT_EQ(14, cJSON_GetArraySize(s));
    cJSON_Delete(s);
    ASSERT_OK(st_read_session(r, S_CLI, &s));
    ASSERT_STR_EQ("{\"max_iterations\": 60}", str_of(s, "model_config")); /* JSON text */
    cJSON_Delete(s);
    ASSERT_EQ(-ENOENT, st_read_session(r, "nope", &s));
    ASSERT_NULL(s);
    ASSERT_STR_CONTAINS(st_reader_errmsg(r), "no session 'nope'");
    st_reader_free(r);
}

static cJSON *search(st_reader *r, const char *q, const char *source, const char *role, int limit,
                     int offset)
{
    st_search_query sq = {.query = q,
                          .sources = &source,
                          .nsources = source ? 1 : 0,
                          .roles = &role,
                          .nroles = role ? 1 : 0,
                          .limit = limit,
                          .offset = offset};
    cJSON *out = NULL;
    int err = st_read_search(r, &sq, &out);
    if (err)
        TEST_FAIL_("search %s: %d %s", q, err, st_reader_errmsg(r));
    return out;
}

TEST(search_hits_have_snippet_and_context)
{
    st_reader *r = fixture_reader();
    cJSON *hits = search(r, "docker", NULL, NULL, 0, 0);
    ASSERT_EQ(2, cJSON_GetArraySize(hits));
    const cJSON *h = NULL;
    cJSON_ArrayForEach(h, hits)
    {
        ASSERT_STR_CONTAINS(str_of(h, "snippet"), ">>>docker<<<");
        const char *keys[] = {"id",     "session_id", "role",      "snippet",         "timestamp",
                              "source", "model",      "tool_name", "session_started", "context"};
        for (size_t i = 0; i < RT_ARRAY_LEN(keys); i++)
            ASSERT_TRUE(has(h, keys[i]));
    }
    /* The cli hit is the session's first message: context is itself and the next one. */
    const cJSON *cli = NULL;
    cJSON_ArrayForEach(h, hits)
    {
        if (strcmp(str_of(h, "source"), "cli") == 0)
            cli = h;
    }
    ASSERT_NOT_NULL(cli);
    ASSERT_STR_EQ(S_CLI, str_of(cli, "session_id"));
    ASSERT_STR_EQ("How do I deploy the >>>docker<<< container on kubernetes?",
                  str_of(cli, "snippet"));
    ASSERT_TRUE(num_of(cli, "session_started") == 1772360100.125);
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(cli, "context");
    ASSERT_EQ(2, cJSON_GetArraySize(ctx));
    ASSERT_STR_EQ("user", str_of(cJSON_GetArrayItem(ctx, 0), "role"));
    ASSERT_STR_EQ("assistant", str_of(cJSON_GetArrayItem(ctx, 1), "role"));
    ASSERT_EQ(2, cJSON_GetArraySize(cJSON_GetArrayItem(ctx, 0))); /* role and content only */
    cJSON_Delete(hits);

    /* A hit in the middle has both neighbours. */
    hits = search(r, "\"CONTAINER ID\"", NULL, NULL, 0, 0);
    ASSERT_EQ(1, cJSON_GetArraySize(hits));
    ctx = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(hits, 0), "context");
    ASSERT_EQ(3, cJSON_GetArraySize(ctx));
    ASSERT_STR_EQ("tool", str_of(cJSON_GetArrayItem(ctx, 1), "role"));
    cJSON_Delete(hits);

    /* Prefix queries. */
    hits = search(r, "deploy*", NULL, NULL, 0, 0);
    ASSERT_EQ(2, cJSON_GetArraySize(hits)); /* "deploy" and "deployment" */
    cJSON_Delete(hits);
    st_reader_free(r);
}

TEST(search_context_is_cut_to_200_characters)
{
    st_reader *r = fixture_reader();
    char sql[2048];
    char body[1200];
    for (int i = 0; i < 300; i++)
        memcpy(body + 2 * i, "\xc3\xa9", 2); /* é: 2 bytes, 1 character */
    body[600] = '\0';
    snprintf(sql, sizeof(sql),
             "INSERT INTO messages (session_id, role, content, timestamp) VALUES "
             "('" S_CHILD "', 'assistant', 'needle %s', 1772366520.0)",
             body);
    exec_on(sql);
    cJSON *hits = search(r, "needle", NULL, NULL, 0, 0);
    ASSERT_EQ(1, cJSON_GetArraySize(hits));
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(hits, 0), "context");
    ASSERT_EQ(2, cJSON_GetArraySize(ctx)); /* the user message before it, and itself */
    const char *c = str_of(cJSON_GetArrayItem(ctx, 1), "content");
    ASSERT_EQ(7 + 193 * 2, (int)strlen(c)); /* "needle " + 193 é = 200 characters */
    cJSON_Delete(hits);
    st_reader_free(r);
}

TEST(search_filters_and_paging)
{
    st_reader *r = fixture_reader();
    cJSON *hits = search(r, "docker", "cli", NULL, 0, 0);
    ASSERT_EQ(1, cJSON_GetArraySize(hits));
    ASSERT_STR_EQ("cli", str_of(cJSON_GetArrayItem(hits, 0), "source"));
    cJSON_Delete(hits);
    hits = search(r, "docker", "discord", NULL, 0, 0);
    ASSERT_EQ(0, cJSON_GetArraySize(hits));
    cJSON_Delete(hits);
    hits = search(r, "nginx", NULL, "tool", 0, 0);
    ASSERT_EQ(1, cJSON_GetArraySize(hits));
    ASSERT_STR_EQ("terminal", str_of(cJSON_GetArrayItem(hits, 0), "tool_name"));
    cJSON_Delete(hits);
    hits = search(r, "nginx", NULL, "assistant", 0, 0);
    ASSERT_EQ(1, cJSON_GetArraySize(hits));
    ASSERT_STR_EQ("assistant", str_of(cJSON_GetArrayItem(hits, 0), "role"));
    cJSON_Delete(hits);

    /* Two sources at once, through the IN list. */
    const char *both[] = {"cli", "telegram"};
    st_search_query q = {.query = "docker", .sources = both, .nsources = 2};
    ASSERT_OK(st_read_search(r, &q, &hits));
    ASSERT_EQ(2, cJSON_GetArraySize(hits));
    cJSON_Delete(hits);

    /* Paging walks the same ranked list. */
    cJSON *p0 = search(r, "docker", NULL, NULL, 1, 0);
    cJSON *p1 = search(r, "docker", NULL, NULL, 1, 1);
    cJSON *p2 = search(r, "docker", NULL, NULL, 1, 2);
    ASSERT_EQ(1, cJSON_GetArraySize(p0));
    ASSERT_EQ(1, cJSON_GetArraySize(p1));
    ASSERT_EQ(0, cJSON_GetArraySize(p2));
    ASSERT_NE((int64_t)num_of(cJSON_GetArrayItem(p0, 0), "id"),
              (int64_t)num_of(cJSON_GetArrayItem(p1, 0), "id"));
    cJSON_Delete(p0);
    cJSON_Delete(p1);
    cJSON_Delete(p2);
    st_reader_free(r);
}

TEST(search_errors_are_clear)
{
    st_reader *r = fixture_reader();
    cJSON *out = NULL;
    const char *bad[] = {"docker AND", "\"unterminated", "nosuchcolumn:docker", "(docker"};
    for (size_t i = 0; i < RT_ARRAY_LEN(bad); i++) {
        st_search_query q = {.query = bad[i]};
        ASSERT_EQ(-EINVAL, st_read_search(r, &q, &out));
        ASSERT_NULL(out);
        ASSERT_STR_CONTAINS(st_reader_errmsg(r), "search query: ");
    }
    st_search_query q = {.query = "docker AND"};
    ASSERT_EQ(-EINVAL, st_read_search(r, &q, &out));
    ASSERT_STR_CONTAINS(st_reader_errmsg(r), "fts5: syntax error");
    /* Blank and missing queries: no hits, no error. */
    const char *blank[] = {"", "   \t\n", NULL};
    for (size_t i = 0; i < RT_ARRAY_LEN(blank); i++) {
        st_search_query b = {.query = blank[i]};
        ASSERT_OK(st_read_search(r, &b, &out));
        ASSERT_EQ(0, cJSON_GetArraySize(out));
        cJSON_Delete(out);
    }
    /* Too long. */
    char *big = rt_xmalloc(ST_QUERY_MAX + 2);
    memset(big, 'a', ST_QUERY_MAX + 1);
    big[ST_QUERY_MAX + 1] = '\0';
    st_search_query l = {.query = big};
    ASSERT_EQ(-E2BIG, st_read_search(r, &l, &out));
    rt_free(big);
    /* Still usable afterwards. */
    out = search(r, "dentist", NULL, NULL, 0, 0);
    ASSERT_EQ(2, cJSON_GetArraySize(out));
    cJSON_Delete(out);
    st_reader_free(r);
}

TEST(session_lists_latest_and_counts)
{
    st_reader *r = fixture_reader();
    cJSON *l = NULL;
    ASSERT_OK(st_read_sessions(r, NULL, 0, 0, &l));
    ASSERT_EQ(3, cJSON_GetArraySize(l));
    ASSERT_STR_EQ(S_CHILD, str_of(cJSON_GetArrayItem(l, 0), "id")); /* newest first */
    ASSERT_STR_EQ(S_TG, str_of(cJSON_GetArrayItem(l, 1), "id"));
    ASSERT_STR_EQ(S_CLI, str_of(cJSON_GetArrayItem(l, 2), "id"));
    ASSERT_STR_EQ(S_TG, str_of(cJSON_GetArrayItem(l, 0), "parent_session_id"));
    cJSON_Delete(l);
    ASSERT_OK(st_read_sessions(r, "telegram", 1, 1, &l));
    ASSERT_EQ(1, cJSON_GetArraySize(l));
    ASSERT_STR_EQ(S_TG, str_of(cJSON_GetArrayItem(l, 0), "id"));
    cJSON_Delete(l);

    cJSON *s = NULL;
    ASSERT_OK(st_read_latest_session(r, "telegram", &s));
    ASSERT_STR_EQ(S_CHILD, str_of(s, "id"));
    cJSON_Delete(s);
    ASSERT_OK(st_read_latest_session(r, "cli", &s));
    ASSERT_STR_EQ(S_CLI, str_of(s, "id"));
    cJSON_Delete(s);
    ASSERT_EQ(-ENOENT, st_read_latest_session(r, "discord", &s));
    ASSERT_NULL(s);

    int64_t n = -1;
    ASSERT_OK(st_read_session_count(r, NULL, &n));
    ASSERT_EQ(3, n);
    ASSERT_OK(st_read_session_count(r, "telegram", &n));
    ASSERT_EQ(2, n);
    ASSERT_OK(st_read_message_count(r, NULL, &n));
    ASSERT_EQ(7, n);
    ASSERT_OK(st_read_message_count(r, S_CLI, &n));
    ASSERT_EQ(4, n);
    ASSERT_OK(st_read_message_count(r, "nope", &n));
    ASSERT_EQ(0, n);
    st_reader_free(r);
}

TEST(unanswered_sessions_are_the_ones_ending_with_the_user)
{
    st_reader *r = fixture_reader();
    exec_on("INSERT INTO sessions (id, source, started_at) VALUES ('u1', 'matrix', 100.0), "
            "('u2', 'matrix', 100.0), ('u3', 'matrix', 100.0), ('old', 'matrix', 1.0)");
    exec_on("INSERT INTO messages (session_id, role, content, timestamp) VALUES "
            "('u1', 'user', 'q', 2000000000.0), ('u1', 'assistant', 'a', 2000000001.0), "
            "('u2', 'user', 'q1', 2000000000.0), ('u2', 'assistant', 'a1', 2000000001.0), "
            "('u2', 'user', 'q2', 2000000002.0), "
            "('u3', 'assistant', 'call', 2000000000.0), ('u3', 'tool', 'result', 2000000001.0), "
            "('old', 'user', 'never answered, long ago', 10.0)");
    cJSON *ids = NULL;
    ASSERT_OK(st_read_unanswered(r, 1900000000.0, &ids));
    char *txt = cJSON_PrintUnformatted(ids);
    ASSERT_NOT_NULL(strstr(txt, "\"u2\""));
    ASSERT_NOT_NULL(strstr(txt, "\"u3\""));
    ASSERT_NULL(strstr(txt, "\"u1\""));
    ASSERT_NULL(strstr(txt, "\"old\""));
    ASSERT_EQ(2, cJSON_GetArraySize(ids));
    cJSON_free(txt);
    cJSON_Delete(ids);
    st_reader_free(r);
}
