/*
 * ag_frozen: a request's view of the transcript is copied once, shared, and stays valid and
 * unchanged for as long as the request lives, whatever the session does to its transcript.
 */
#include "ag_frozen.h"
#include "test.h"

#include <stdio.h>
#include <string.h>

typedef struct runs {
    ag_frozen **v;
    size_t n;
    int upto;
} runs;

static void append(cJSON *t, const char *role, const char *content)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", content);
    cJSON_AddStringToObject(m, "name", "bookkeeping");
    cJSON_AddItemToArray(t, m);
}

static char *render(cJSON *out)
{
    char *s = cJSON_PrintUnformatted(out);
    return s;
}

TEST(requests_see_the_transcript_without_bookkeeping)
{
    runs r = {0};
    cJSON *t = cJSON_CreateArray();
    append(t, "user", "one");
    append(t, "assistant", "two");
    cJSON *out = cJSON_CreateArray();
    ag_frozen_keep *k = ag_frozen_refer(&r.v, &r.n, &r.upto, t, "name", out);
    char *s = render(out);
    ASSERT_STR_EQ("[{\"role\":\"user\",\"content\":\"one\"},{\"role\":\"assistant\","
                  "\"content\":\"two\"}]",
                  s);
    cJSON_free(s);
    ASSERT_EQ(1, r.n);
    /* Appending adds one run with only the new messages. */
    append(t, "user", "three");
    cJSON *out2 = cJSON_CreateArray();
    ag_frozen_keep *k2 = ag_frozen_refer(&r.v, &r.n, &r.upto, t, "name", out2);
    ASSERT_EQ(2, r.n);
    ASSERT_EQ(3, cJSON_GetArraySize(out2));
    ASSERT_STR_EQ("three", cJSON_GetArrayItem(out2, 2)->child->next->valuestring);
    /* Nothing new: no new run. */
    cJSON *out3 = cJSON_CreateArray();
    ag_frozen_keep *k3 = ag_frozen_refer(&r.v, &r.n, &r.upto, t, "name", out3);
    ASSERT_EQ(2, r.n);
    cJSON_Delete(out3);
    ag_frozen_keep_drop(k3);
    cJSON_Delete(out2);
    ag_frozen_keep_drop(k2);
    cJSON_Delete(out);
    ag_frozen_keep_drop(k);
    ag_frozen_reset(&r.v, &r.n, &r.upto);
    cJSON_Delete(t);
}

TEST(a_request_outlives_undo_and_the_session)
{
    runs r = {0};
    cJSON *t = cJSON_CreateArray();
    append(t, "user", "keep me");
    cJSON *out = cJSON_CreateArray();
    ag_frozen_keep *k = ag_frozen_refer(&r.v, &r.n, &r.upto, t, "name", out);
    /* The session undoes the message and ends: the request's view is unchanged. */
    cJSON_DeleteItemFromArray(t, 0);
    ag_frozen_reset(&r.v, &r.n, &r.upto);
    cJSON_Delete(t);
    char *s = render(out);
    ASSERT_STR_EQ("[{\"role\":\"user\",\"content\":\"keep me\"}]", s);
    cJSON_free(s);
    cJSON_Delete(out);
    ag_frozen_keep_drop(k); /* the last reference frees the run (LeakSanitizer checks) */
}

TEST(a_changed_transcript_is_frozen_afresh_and_runs_stay_few)
{
    runs r = {0};
    cJSON *t = cJSON_CreateArray();
    char c[32];
    for (int i = 0; i < 100; i++) {
        snprintf(c, sizeof(c), "m%d", i);
        append(t, i % 2 ? "assistant" : "user", c);
        cJSON *out = cJSON_CreateArray();
        ag_frozen_keep_drop(ag_frozen_refer(&r.v, &r.n, &r.upto, t, "name", out));
        ASSERT_EQ(i + 1, cJSON_GetArraySize(out));
        ASSERT_LE(r.n, (size_t)AG_FROZEN_MAX_RUNS);
        cJSON_Delete(out);
    }
    /* Shrinking (undo) without telling: the size check starts over. */
    while (cJSON_GetArraySize(t) > 10)
        cJSON_DeleteItemFromArray(t, 10);
    cJSON *out = cJSON_CreateArray();
    ag_frozen_keep *k = ag_frozen_refer(&r.v, &r.n, &r.upto, t, "name", out);
    ASSERT_EQ(10, cJSON_GetArraySize(out));
    ASSERT_EQ(1, r.n);
    ASSERT_STR_EQ("m9", cJSON_GetArrayItem(out, 9)->child->next->valuestring);
    cJSON_Delete(out);
    ag_frozen_keep_drop(k);
    /* An empty transcript needs nothing kept. */
    ag_frozen_reset(&r.v, &r.n, &r.upto);
    cJSON *empty = cJSON_CreateArray(), *o2 = cJSON_CreateArray();
    ASSERT_NULL(ag_frozen_refer(&r.v, &r.n, &r.upto, empty, "name", o2));
    cJSON_Delete(o2);
    cJSON_Delete(empty);
    cJSON_Delete(t);
}
