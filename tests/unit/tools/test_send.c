/*
 * send_message: target parsing and the channel directory (send_dir), and the tool itself
 * through its call actor against a gateway double registered as GW_NAME — home channel, an
 * explicit chat, a chat found by name, the list action, and every error the original gives
 * (missing arguments, unknown platform, unresolvable name, platform not connected, no home
 * channel, no gateway in the process). The tool is not offered to cron runs.
 */
#include "gw.h"
#include "rt_alloc.h"
#include "rt_sched.h"
#include "send_dir.h"
#include "test.h"
#include "tool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ send_dir */

TEST(target_refs)
{
    struct {
        const char *platform, *ref, *chat, *thread; /* chat NULL: not explicit */
    } t[] = {
        {"telegram", "-1001234567890", "-1001234567890", NULL},
        {"telegram", "-1001234567890:17585", "-1001234567890", "17585"},
        {"discord", "999888777:555444333", "999888777", "555444333"},
        {"matrix", "!room:example.org", "!room:example.org", NULL},
        {"matrix", "@alice:example.org", "@alice:example.org", NULL},
        {"matrix", " !room:example.org ", "!room:example.org", NULL},
        {"mattermost", "abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz", NULL},
        {"slack", "12345", "12345", NULL},
        {"matrix", "#general", NULL, NULL},
        {"mattermost", "town-square", NULL, NULL},
        {"telegram", "my group", NULL, NULL},
        {"telegram", "12:ab", NULL, NULL},
        {"matrix", "", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char *chat = NULL, *thread = NULL;
        bool ok = send_parse_ref(t[i].platform, t[i].ref, &chat, &thread);
        if (ok != (t[i].chat != NULL))
            TEST_FAIL_("%s:'%s' explicit=%d", t[i].platform, t[i].ref, ok);
        if (ok) {
            ASSERT_STR_EQ(t[i].chat, chat);
            if (t[i].thread)
                ASSERT_STR_EQ(t[i].thread, thread);
            else
                ASSERT_NULL(thread);
        }
        rt_free(chat);
        rt_free(thread);
    }
    char buf[64];
    ASSERT_STR_EQ("MATRIX_HOME_ROOM", send_home_var("matrix", buf, sizeof(buf)));
    ASSERT_STR_EQ("MATTERMOST_HOME_CHANNEL", send_home_var("mattermost", buf, sizeof(buf)));
    ASSERT_STR_EQ("TELEGRAM_HOME_CHANNEL", send_home_var("telegram", buf, sizeof(buf)));
    ASSERT_TRUE(send_platform_known("matrix"));
    ASSERT_FALSE(send_platform_known("myspace"));
}

static void write_file(const char *home, const char *name, const char *text)
{
    char *dir = rt_xasprintf("%s/sessions", home);
    mkdir(home, 0700);
    mkdir(dir, 0700);
    char *path = rt_xasprintf("%s/%s", home, name);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs(text, f);
    fclose(f);
    rt_free(path);
    rt_free(dir);
}

static const char sessions_json[] =
    "{\"agent:main:matrix:group:!ops:example.org\": {\"session_id\": \"s1\", \"chat_type\": "
    "\"group\", \"origin\": {\"platform\": \"matrix\", \"chat_id\": \"!ops:example.org\", "
    "\"chat_name\": \"Ops\"}},"
    " \"agent:main:matrix:dm:!dm:example.org\": {\"session_id\": \"s2\", \"chat_type\": \"dm\", "
    "\"origin\": {\"platform\": \"matrix\", \"chat_id\": \"!dm:example.org\", \"user_name\": "
    "\"alice\"}},"
    " \"agent:main:mattermost:group:c1\": {\"session_id\": \"s3\", \"chat_type\": \"group\", "
    "\"origin\": {\"platform\": \"mattermost\", \"chat_id\": \"abcdefghijklmnopqrstuvwxy1\", "
    "\"chat_name\": \"town-square\"}},"
    " \"agent:main:local:dm:x\": {\"session_id\": \"s4\", \"origin\": {\"platform\": \"local\", "
    "\"chat_id\": \"x\"}}}";

TEST(the_directory_from_sessions_and_its_display)
{
    char *home = rt_xasprintf("%s/h", test_tmpdir());
    cJSON *dir = send_directory(home); /* nothing known yet */
    char *text = send_directory_display(dir);
    ASSERT_STR_EQ("No messaging platforms connected or no channels discovered yet.", text);
    rt_free(text);
    cJSON_Delete(dir);

    write_file(home, "sessions/sessions.json", sessions_json);
    dir = send_directory(home);
    text = send_directory_display(dir);
    ASSERT_STR_EQ("Available messaging targets:\n\n"
                  "Matrix:\n  matrix:Ops (group)\n  matrix:alice (dm)\n\n"
                  "Mattermost:\n  mattermost:town-square (group)\n\n"
                  "Use these as the \"target\" parameter when sending.\n"
                  "Bare platform name (e.g. \"telegram\") sends to home channel.",
                  text);
    rt_free(text);
    const char *q[][2] = {{"Ops", "!ops:example.org"},
                          {"#ops", "!ops:example.org"},
                          {"Ops (group)", "!ops:example.org"},
                          {"alice", "!dm:example.org"},
                          {"!dm:example.org", "!dm:example.org"}};
    for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
        char *id = send_resolve_name(dir, "matrix", q[i][0]);
        if (!id || strcmp(id, q[i][1]) != 0)
            TEST_FAIL_("'%s' → %s", q[i][0], id ? id : "(null)");
        rt_free(id);
    }
    ASSERT_NULL(send_resolve_name(dir, "matrix", "nowhere"));
    ASSERT_NULL(send_resolve_name(dir, "telegram", "Ops"));
    cJSON_Delete(dir);

    /* a gateway's channel_directory.json wins; a broken one is ignored */
    write_file(home, "channel_directory.json",
               "{\"updated_at\": \"2026-03-01T10:00:00\", \"platforms\": {\"telegram\": "
               "[{\"id\": \"-100123\", \"name\": \"Family\", \"type\": \"group\", "
               "\"thread_id\": null}]}}");
    dir = send_directory(home);
    char *id = send_resolve_name(dir, "telegram", "family");
    ASSERT_STR_EQ("-100123", id);
    rt_free(id);
    cJSON_Delete(dir);
    write_file(home, "channel_directory.json", "{not json");
    dir = send_directory(home);
    id = send_resolve_name(dir, "matrix", "Ops");
    ASSERT_STR_EQ("!ops:example.org", id);
    rt_free(id);
    cJSON_Delete(dir);
    rt_free(home);
}

/* ------------------------------------------------------------ the tool */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int ndeliver;
static char got_platform[32], got_chat[128], got_text[256];

static void drop_delivered(rt_msg *m)
{
    rt_free(((gw_msg_delivered *)m)->chat_id);
}

/* matrix: connected, home "!home:example.org"; telegram: connected, no home; others: not
 * connected. */
static void gw_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type != GW_MSG_DELIVER)
        return;
    gw_msg_deliver *d = (gw_msg_deliver *)m;
    pthread_mutex_lock(&lock);
    ndeliver++;
    snprintf(got_platform, sizeof(got_platform), "%s", d->platform);
    snprintf(got_chat, sizeof(got_chat), "%s", d->chat_id ? d->chat_id : "(home)");
    snprintf(got_text, sizeof(got_text), "%s", d->text);
    pthread_mutex_unlock(&lock);
    gw_msg_delivered *r = RT_MSG_NEW(gw_msg_delivered, GW_MSG_DELIVERED);
    r->hdr.drop = drop_delivered;
    r->tag = d->tag;
    if (strcmp(d->platform, "matrix") == 0)
        r->chat_id = rt_xstrdup(d->chat_id ? d->chat_id : "!home:example.org");
    else if (strcmp(d->platform, "telegram") == 0 && !d->chat_id)
        r->err = -EDESTADDRREQ;
    else if (strcmp(d->platform, "telegram") == 0)
        r->err = -EIO, snprintf(r->errmsg, sizeof(r->errmsg), "Bad Request: chat not found");
    else
        r->err = -ENOENT;
    rt_send(cx, d->reply_to, &r->hdr);
}
static const rt_actor_type gw_type = {"gw-double", gw_behave, NULL, 0};

enum { T_GO = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1) };
#define NCALLS 12

static const char *call_args[NCALLS];
static int ncalls;
static char results[NCALLS][2048];
static _Atomic int nresults;
static tool_env *env;

static void session_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type == T_GO) {
        for (int i = 0; i < ncalls; i++)
            ASSERT_NE(0, tool_start_call(cx, tool_find("send_message"), env, (uint64_t)i, "c",
                                         call_args[i]));
    } else if (m->type == TOOL_MSG_RESULT) {
        tool_msg_result *r = (tool_msg_result *)m;
        snprintf(results[r->seq], sizeof(results[0]), "%s", r->result);
        atomic_fetch_add(&nresults, 1);
    }
}
static const rt_actor_type session_type = {"session", session_behave, NULL, 0};

/* Run the calls one at a time (the gateway double records the last delivery) in a runtime
 * with or without the double. */
static void run_calls(bool with_gateway, const char *home)
{
    env = tool_env_new();
    env->hermes_home = rt_xstrdup(home);
    env->platform = rt_xstrdup("cli");
    rt_runtime *rt = rt_runtime_new(NULL);
    rt_ctx *ext = rt_ctx_external(rt);
    if (with_gateway) {
        rt_spawn_opts go = {.name = GW_NAME};
        ASSERT_NE(0, rt_spawn(ext, &gw_type, NULL, &go));
    }
    rt_spawn_opts o = {.flags = RT_SPAWN_TRAP_EXIT};
    rt_ref s = rt_spawn(ext, &session_type, NULL, &o);
    atomic_store(&nresults, 0);
    rt_send(ext, s, rt_msg_new(T_GO, sizeof(rt_msg)));
    int64_t t0 = rt_now_ns(rt);
    while (atomic_load(&nresults) < ncalls) {
        ASSERT_LT(rt_now_ns(rt) - t0, 20000000000LL);
        usleep(1000);
    }
    ASSERT_OK(rt_wait_quiescent(rt, 10000));
    rt_runtime_free(rt);
    tool_env_unref(env);
}

TEST(send_message_through_the_gateway)
{
    char *home = rt_xasprintf("%s/h", test_tmpdir());
    write_file(home, "sessions/sessions.json", sessions_json);
    static const char *const args[] = {
        "{\"target\":\"matrix\",\"message\":\"hello home\"}",
        "{\"action\":\"send\",\"target\":\"Matrix: !room:example.org\",\"message\":\"hi\"}",
        "{\"target\":\"matrix:#ops\",\"message\":\"to ops\"}",
        "{\"target\":\"matrix:nowhere\",\"message\":\"x\"}",
        "{\"target\":\"myspace\",\"message\":\"x\"}",
        "{\"action\":\"send\",\"target\":\"matrix\"}",
        "{}",
        "{\"action\":\"list\"}",
        "{\"target\":\"mattermost\",\"message\":\"x\"}",
        "{\"target\":\"telegram\",\"message\":\"x\"}",
        "{\"target\":\"telegram:-100555\",\"message\":\"x\"}",
    };
    ncalls = 11;
    for (int i = 0; i < ncalls; i++)
        call_args[i] = args[i];
    run_calls(true, home);
    ASSERT_STR_EQ("{\"success\": true, \"platform\": \"matrix\", \"chat_id\": "
                  "\"!home:example.org\", \"note\": \"Sent to matrix home channel (chat_id: "
                  "!home:example.org)\"}",
                  results[0]);
    ASSERT_STR_EQ("{\"success\": true, \"platform\": \"matrix\", \"chat_id\": "
                  "\"!room:example.org\"}",
                  results[1]);
    ASSERT_STR_EQ("{\"success\": true, \"platform\": \"matrix\", \"chat_id\": "
                  "\"!ops:example.org\"}",
                  results[2]);
    ASSERT_STR_EQ("{\"error\": \"Could not resolve 'nowhere' on matrix. Use "
                  "send_message(action='list') to see available targets.\"}",
                  results[3]);
    ASSERT_STR_CONTAINS(results[4], "{\"error\": \"Unknown platform: myspace. Available: "
                                    "telegram, discord, slack,");
    ASSERT_STR_EQ("{\"error\": \"Both 'target' and 'message' are required when "
                  "action='send'\"}",
                  results[5]);
    ASSERT_STR_EQ(results[5], results[6]);
    ASSERT_STR_CONTAINS(results[7], "{\"targets\": \"Available messaging targets:\\n\\nMatrix:"
                                    "\\n  matrix:Ops (group)\\n");
    ASSERT_STR_EQ("{\"error\": \"Platform 'mattermost' is not configured. Set up credentials in "
                  "~/.hermes/config.yaml or environment variables.\"}",
                  results[8]);
    ASSERT_STR_EQ("{\"error\": \"No home channel set for telegram to determine where to send "
                  "the message. Either specify a channel directly with 'telegram:CHANNEL_NAME', "
                  "or set a home channel via: hermes config set TELEGRAM_HOME_CHANNEL "
                  "<channel_id>\"}",
                  results[9]);
    ASSERT_STR_EQ("{\"error\": \"Send failed: Bad Request: chat not found\"}", results[10]);
    ASSERT_EQ(6, ndeliver); /* the errors before delivery never reached the gateway */
    rt_free(home);
}

TEST(without_a_gateway_send_message_says_so)
{
    char *home = rt_xasprintf("%s/h", test_tmpdir());
    call_args[0] = "{\"target\":\"matrix\",\"message\":\"hello\"}";
    ncalls = 1;
    run_calls(false, home);
    ASSERT_STR_CONTAINS(results[0], "{\"error\": \"No gateway is running in this process");
    rt_free(home);
}

TEST(schema_and_availability)
{
    const tool_def *d = tool_find("send_message");
    ASSERT_NOT_NULL(d);
    ASSERT_STR_EQ("messaging", d->toolset);
    cJSON *s = cJSON_Parse(d->schema);
    ASSERT_NOT_NULL(s);
    ASSERT_STR_EQ("send_message", cJSON_GetStringValue(cJSON_GetObjectItem(s, "name")));
    const cJSON *props = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "parameters"), "properties");
    const cJSON *en = cJSON_GetObjectItem(cJSON_GetObjectItem(props, "action"), "enum");
    ASSERT_STR_EQ("send", cJSON_GetStringValue(cJSON_GetArrayItem(en, 0)));
    ASSERT_STR_EQ("list", cJSON_GetStringValue(cJSON_GetArrayItem(en, 1)));
    ASSERT_NOT_NULL(cJSON_GetObjectItem(props, "target"));
    ASSERT_NOT_NULL(cJSON_GetObjectItem(props, "message"));
    cJSON_Delete(s);
    tool_env *e = tool_env_new();
    e->platform = rt_xstrdup("matrix");
    ASSERT_TRUE(d->available(e));
    rt_free(e->platform);
    e->platform = rt_xstrdup("cron"); /* a cron run's answer is delivered for it */
    ASSERT_FALSE(d->available(e));
    tool_env_unref(e);
}
