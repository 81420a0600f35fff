/*
 * Session titles and the operations on them (st_titles.h) through the store writer: the
 * original's title rules (clean-up, length, unique without regard to case), resolving a
 * name (numbered variants, compression continuations, other users' sessions hidden),
 * listing with counts, /branch copying the transcript with a lineage title, insights, and
 * titles surviving a restart.
 */
#include "st_test.h"
#include "st_titles.h"

static col_entry sop(harness *h, st_msg_sop *m)
{
    return h_call(h, &m->hdr);
}

static col_entry set_title(harness *h, const char *id, const char *title)
{
    st_msg_sop *m = st_sop_new(ST_SOP_TITLE_SET, id, 0, 0);
    m->title = title ? rt_xstrdup(title) : NULL;
    return sop(h, m);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jint(const cJSON *o, const char *k)
{
    return (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

TEST(sanitize_follows_the_original)
{
    char err[200];
    char *t = NULL;
    ASSERT_OK(st_title_sanitize("  My \t\n Project\xe2\x80\x8b  ", &t, err, sizeof(err)));
    ASSERT_STR_EQ("My Project", t);
    rt_free(t);
    ASSERT_OK(st_title_sanitize("caf\xc3\xa9 \x01ok", &t, err, sizeof(err)));
    ASSERT_STR_EQ("caf\xc3\xa9 ok", t);
    rt_free(t);
    ASSERT_EQ(-ENODATA, st_title_sanitize(" \x01\xe2\x80\x8f ", &t, err, sizeof(err)));
    ASSERT_STR_EQ("Title is empty after cleanup. Please use printable characters.", err);
    ASSERT_NULL(t);
    char longt[160];
    memset(longt, 'x', 101);
    longt[101] = '\0';
    ASSERT_EQ(-E2BIG, st_title_sanitize(longt, &t, err, sizeof(err)));
    ASSERT_STR_EQ("Title too long (101 chars, max 100)", err);
    longt[100] = '\0';
    ASSERT_OK(st_title_sanitize(longt, &t, err, sizeof(err)));
    rt_free(t);
    /* 100 two-byte characters are 100 characters, not 200 */
    char wide[256];
    for (int i = 0; i < 100; i++)
        memcpy(wide + 2 * i, "\xc3\xa9", 2);
    wide[200] = '\0';
    ASSERT_OK(st_title_sanitize(wide, &t, err, sizeof(err)));
    rt_free(t);
    ASSERT_EQ(-EILSEQ, st_title_sanitize("bad \xff", &t, err, sizeof(err)));
}

TEST(set_get_unique_and_kept_across_a_restart)
{
    const char *p = tmp_path("state.db");
    harness h;
    h_start(&h, p);
    h_create(&h, "s1", "matrix");
    h_create(&h, "s2", "matrix");
    col_entry e = set_title(&h, "s1", "Project Alpha");
    ASSERT_EQ(ST_MSG_RESULT, e.type);
    ASSERT_EQ(0, e.err);
    ASSERT_STR_EQ("Project Alpha", jstr(e.json, "title"));
    e = set_title(&h, "s2", "project ALPHA");
    ASSERT_EQ(-EEXIST, e.err);
    ASSERT_STR_EQ("Title 'project ALPHA' is already in use by session s1", e.errmsg);
    /* the same session may set it again, and rename itself */
    ASSERT_EQ(0, set_title(&h, "s1", "Project Alpha").err);
    ASSERT_EQ(0, set_title(&h, "s1", "Project Beta").err);
    ASSERT_EQ(0, set_title(&h, "s2", "Project Alpha").err);
    /* a session with no sessions row yet may be named */
    ASSERT_EQ(0, set_title(&h, "not-yet", "Early").err);
    h_stop(&h);

    h_start(&h, p);
    e = sop(&h, st_sop_new(ST_SOP_TITLE_GET, "s1", 0, 0));
    ASSERT_STR_EQ("Project Beta", jstr(e.json, "title"));
    e = sop(&h, st_sop_new(ST_SOP_TITLE_GET, "s9", 0, 0));
    ASSERT_EQ(0, e.err);
    ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e.json, "title")));
    /* clearing */
    ASSERT_EQ(0, set_title(&h, "s1", NULL).err);
    e = sop(&h, st_sop_new(ST_SOP_TITLE_GET, "s1", 0, 0));
    ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e.json, "title")));
    /* bad input */
    e = sop(&h, st_sop_new(ST_SOP_TITLE_GET, NULL, 0, 0));
    ASSERT_EQ(-EINVAL, e.err);
    e = sop(&h, st_sop_new(99, "s1", 0, 0));
    ASSERT_EQ(-EINVAL, e.err);
    h_stop(&h);
}

TEST(find_exact_then_numbered_follows_compression_and_hides_other_users)
{
    harness h;
    h_start(&h, tmp_path("state.db"));
    st_msg_create_session *c = st_create_session_new("a1", "matrix");
    c->user_id = rt_xstrdup("alice");
    ASSERT_EQ(0, h_call(&h, &c->hdr).err);
    h_append(&h, "a1", "user", "hello");
    h_append(&h, "a1", "assistant", "hi");
    ASSERT_EQ(0, set_title(&h, "a1", "Work").err);

    st_msg_sop *f = st_sop_new(ST_SOP_TITLE_FIND, NULL, 0, 0);
    f->title = rt_xstrdup("work");
    col_entry e = sop(&h, f);
    ASSERT_EQ(0, e.err);
    ASSERT_STR_EQ("a1", jstr(e.json, "id"));
    ASSERT_EQ(2, jint(e.json, "message_count"));
    ASSERT_EQ(1, jint(e.json, "user_messages"));

    /* bob on the same platform does not see alice's session */
    f = st_sop_new(ST_SOP_TITLE_FIND, NULL, 0, 0);
    f->title = rt_xstrdup("Work");
    f->source = rt_xstrdup("matrix");
    f->user_id = rt_xstrdup("bob");
    ASSERT_EQ(-ENOENT, sop(&h, f).err);
    f = st_sop_new(ST_SOP_TITLE_FIND, NULL, 0, 0);
    f->title = rt_xstrdup("Nope");
    ASSERT_EQ(-ENOENT, sop(&h, f).err);

    /* compression continued a1 as a2: Work resolves to a2 */
    ASSERT_EQ(0, h_call(&h, &st_end_session_new("a1", "compression")->hdr).err);
    c = st_create_session_new("a2", "matrix");
    c->user_id = rt_xstrdup("alice");
    c->parent_session_id = rt_xstrdup("a1");
    ASSERT_EQ(0, h_call(&h, &c->hdr).err);
    h_append(&h, "a2", "user", "summary");
    f = st_sop_new(ST_SOP_TITLE_FIND, NULL, 0, 0);
    f->title = rt_xstrdup("Work");
    f->source = rt_xstrdup("matrix");
    f->user_id = rt_xstrdup("alice");
    e = sop(&h, f);
    ASSERT_EQ(0, e.err);
    ASSERT_STR_EQ("a2", jstr(e.json, "id"));
    ASSERT_STR_EQ("Work", jstr(e.json, "title"));

    /* the exact title wins; without one, the newest numbered variant */
    h_create(&h, "a3", "matrix");
    ASSERT_EQ(0, set_title(&h, "a3", "Work #2").err);
    f = st_sop_new(ST_SOP_TITLE_FIND, NULL, 0, 0);
    f->title = rt_xstrdup("Work");
    e = sop(&h, f);
    ASSERT_STR_EQ("a2", jstr(e.json, "id"));
    h_create(&h, "a4", "matrix");
    ASSERT_EQ(0, set_title(&h, "a4", "Work #3").err);
    ASSERT_EQ(0, set_title(&h, "a1", "Old work").err);
    f = st_sop_new(ST_SOP_TITLE_FIND, NULL, 0, 0);
    f->title = rt_xstrdup("work");
    e = sop(&h, f);
    ASSERT_STR_EQ("a4", jstr(e.json, "id"));
    ASSERT_STR_EQ("Work #3", jstr(e.json, "title"));

    /* the list: titled sessions of the platform and user, with counts and a preview */
    st_msg_sop *l = st_sop_new(ST_SOP_TITLE_LIST, NULL, 0, 0);
    l->source = rt_xstrdup("matrix");
    l->user_id = rt_xstrdup("alice");
    e = sop(&h, l);
    ASSERT_EQ(0, e.err);
    ASSERT_EQ(3, cJSON_GetArraySize(e.json)); /* a4, a3 (no user recorded), a1 */
    ASSERT_STR_EQ("Work #3", jstr(cJSON_GetArrayItem(e.json, 0), "title"));
    const cJSON *last = cJSON_GetArrayItem(e.json, 2);
    ASSERT_STR_EQ("Old work", jstr(last, "title"));
    ASSERT_STR_EQ("hello", jstr(last, "preview"));
    ASSERT_EQ(2, jint(last, "message_count"));
    l = st_sop_new(ST_SOP_TITLE_LIST, NULL, 0, 0);
    l->source = rt_xstrdup("mattermost");
    e = sop(&h, l);
    ASSERT_EQ(0, cJSON_GetArraySize(e.json));
    h_stop(&h);
}

TEST(branch_copies_the_transcript_with_a_lineage_title)
{
    const char *p = tmp_path("state.db");
    harness h;
    h_start(&h, p);
    h_create(&h, "p1", "test");
    h_append(&h, "p1", "user", "one");
    st_msg_append *a = st_append_new("p1", "assistant", "");
    a->tool_calls = rt_xstrdup("[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":"
                               "\"terminal\",\"arguments\":\"{}\"}}]");
    ASSERT_EQ(0, h_call(&h, &a->hdr).err);
    a = st_append_new("p1", "tool", "ok");
    a->tool_call_id = rt_xstrdup("c1");
    a->tool_name = rt_xstrdup("terminal");
    ASSERT_EQ(0, h_call(&h, &a->hdr).err);
    h_append(&h, "p1", "assistant", "done");
    ASSERT_EQ(0, set_title(&h, "p1", "Plan").err);

    st_msg_sop *b = st_sop_new(ST_SOP_BRANCH, "p1", 0, 0);
    b->new_id = rt_xstrdup("b1");
    b->source = rt_xstrdup("test");
    col_entry e = sop(&h, b);
    ASSERT_EQ(0, e.err);
    ASSERT_STR_EQ("Plan #2", jstr(e.json, "title"));
    ASSERT_EQ(4, jint(e.json, "copied"));
    ASSERT_EQ(1, jint(e.json, "user_messages"));
    b = st_sop_new(ST_SOP_BRANCH, "b1", 0, 0);
    b->new_id = rt_xstrdup("b2");
    b->source = rt_xstrdup("test");
    e = sop(&h, b);
    ASSERT_STR_EQ("Plan #3", jstr(e.json, "title"));
    /* an explicit name, taken: nothing is created */
    b = st_sop_new(ST_SOP_BRANCH, "p1", 0, 0);
    b->new_id = rt_xstrdup("b3");
    b->source = rt_xstrdup("test");
    b->title = rt_xstrdup("plan");
    e = sop(&h, b);
    ASSERT_EQ(-EEXIST, e.err);
    ASSERT_STR_CONTAINS(e.errmsg, "already in use by session p1");
    /* nothing to branch */
    h_create(&h, "empty", "test");
    b = st_sop_new(ST_SOP_BRANCH, "empty", 0, 0);
    b->new_id = rt_xstrdup("b4");
    b->source = rt_xstrdup("test");
    e = sop(&h, b);
    ASSERT_EQ(-ENODATA, e.err);
    /* untitled parent: "branch" */
    h_append(&h, "empty", "user", "x");
    b = st_sop_new(ST_SOP_BRANCH, "empty", 0, 0);
    b->new_id = rt_xstrdup("b5");
    b->source = rt_xstrdup("test");
    e = sop(&h, b);
    ASSERT_STR_EQ("branch", jstr(e.json, "title"));

    st_msg_sop *in = st_sop_new(ST_SOP_INSIGHTS, NULL, 0, 0);
    in->since = 0;
    e = sop(&h, in);
    ASSERT_EQ(0, e.err);
    ASSERT_EQ(5, jint(e.json, "sessions")); /* p1, b1, b2, empty, b5 */
    ASSERT_EQ(1, cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(e.json, "tools")));
    ASSERT_EQ(3, jint(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e.json, "tools"), 0),
                      "count")); /* p1, b1, b2 */
    in = st_sop_new(ST_SOP_INSIGHTS, NULL, 0, 0);
    in->since = st_now_epoch() + 3600;
    e = sop(&h, in);
    ASSERT_EQ(0, jint(e.json, "sessions"));
    h_stop(&h);

    sqlite3 *db = raw_open(p);
    ASSERT_EQ(4, q_int(db, "SELECT count(*) FROM messages WHERE session_id = 'b1'"));
    ASSERT_EQ(4, q_int(db, "SELECT message_count FROM sessions WHERE id = 'b1'"));
    ASSERT_EQ(2, q_int(db, "SELECT tool_call_count FROM sessions WHERE id = 'b1'"));
    char *par = q_text(db, "SELECT parent_session_id FROM sessions WHERE id = 'b1'");
    ASSERT_STR_EQ("p1", par);
    rt_free(par);
    ASSERT_EQ(0, q_int(db, "SELECT count(*) FROM sessions WHERE id = 'b3'"));
    ASSERT_EQ(4, q_int(db, "SELECT count(*) FROM messages WHERE session_id = 'p1'"));
    sqlite3_close(db);
    integrity_ok(p);
}

TEST(transcript_snapshot_and_delete)
{
    const char *p = tmp_path("state.db");
    harness h;
    h_start(&h, p);
    h_create(&h, "t1", "test");
    h_append(&h, "t1", "user", "q1");
    h_append(&h, "t1", "assistant", "");
    st_msg_append *a = st_append_new("t1", "tool", "{}");
    a->tool_call_id = rt_xstrdup("c1");
    ASSERT_EQ(0, h_call(&h, &a->hdr).err);
    h_append(&h, "t1", "assistant", "a1");
    ASSERT_EQ(0, set_title(&h, "t1", "Throwaway").err);
    col_entry e = sop(&h, st_sop_new(ST_SOP_TRANSCRIPT, "t1", 0, 0));
    ASSERT_EQ(0, e.err);
    char *j = cJSON_PrintUnformatted(e.json);
    ASSERT_STR_EQ(
        "[{\"role\":\"user\",\"content\":\"q1\"},{\"role\":\"assistant\",\"content\":\"a1\"}]", j);
    cJSON_free(j);
    e = sop(&h, st_sop_new(ST_SOP_TRANSCRIPT, "unknown", 0, 0));
    ASSERT_EQ(0, cJSON_GetArraySize(e.json));
    e = sop(&h, st_sop_new(ST_SOP_DELETE, "t1", 0, 0));
    ASSERT_EQ(0, e.err);
    ASSERT_EQ(4, jint(e.json, "deleted"));
    ASSERT_EQ(-EINVAL, sop(&h, st_sop_new(ST_SOP_DELETE, NULL, 0, 0)).err);
    h_stop(&h);
    sqlite3 *db = raw_open(p);
    ASSERT_EQ(0, q_int(db, "SELECT count(*) FROM sessions"));
    ASSERT_EQ(0, q_int(db, "SELECT count(*) FROM messages"));
    ASSERT_EQ(0, q_int(db, "SELECT count(*) FROM hc_session_titles"));
    ASSERT_EQ(0, q_int(db, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'q1'"));
    sqlite3_close(db);
    integrity_ok(p);
}
