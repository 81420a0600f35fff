/* Session keys exactly as the original (gateway.md §2.1 table), reply chunking and command
 * parsing. */
#include "gw.h"
#include "gw_int.h"
#include "rt_alloc.h"
#include "rt_sched.h"
#include "rt_util.h"
#include "test.h"

#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static char *key(const char *platform, const char *type, const char *chat, const char *thread,
                 const char *user, bool per_user, bool thread_per_user)
{
    gw_source s = {.platform = (char *)platform,
                   .chat_type = (char *)type,
                   .chat_id = (char *)chat,
                   .thread_id = (char *)thread,
                   .user_id = (char *)user};
    return gw_session_key(&s, per_user, thread_per_user);
}

#define KEY_IS(expect, ...)                                                                        \
    do {                                                                                           \
        char *k_ = key(__VA_ARGS__);                                                               \
        ASSERT_STR_EQ(expect, k_);                                                                 \
        rt_free(k_);                                                                               \
    } while (0)

TEST(session_keys_match_the_original_table)
{
    KEY_IS("agent:main:matrix:dm:!d:hs", "matrix", "dm", "!d:hs", NULL, "@a:hs", true, false);
    KEY_IS("agent:main:matrix:dm:!d:hs:$e", "matrix", "dm", "!d:hs", "$e", "@a:hs", true, false);
    KEY_IS("agent:main:matrix:group:!r:hs:@a:hs", "matrix", "group", "!r:hs", NULL, "@a:hs", true,
           false);
    KEY_IS("agent:main:matrix:group:!r:hs:$e", "matrix", "group", "!r:hs", "$e", "@a:hs", true,
           false);
    KEY_IS("agent:main:mattermost:dm:c1", "mattermost", "dm", "c1", NULL, "u1", true, false);
    KEY_IS("agent:main:mattermost:channel:c2:u1", "mattermost", "channel", "c2", NULL, "u1", true,
           false);
    KEY_IS("agent:main:mattermost:group:c3:u1", "mattermost", "group", "c3", NULL, "u1", true,
           false);
    KEY_IS("agent:main:mattermost:channel:c2:p9", "mattermost", "channel", "c2", "p9", "u1", true,
           false);
    /* thread_sessions_per_user and group_sessions_per_user=false */
    KEY_IS("agent:main:mattermost:channel:c2:p9:u1", "mattermost", "channel", "c2", "p9", "u1",
           true, true);
    KEY_IS("agent:main:mattermost:channel:c2", "mattermost", "channel", "c2", NULL, "u1", false,
           false);
    KEY_IS("agent:main:matrix:dm", "matrix", "dm", NULL, NULL, "u", true, false);
}

static size_t cps(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

TEST(short_text_is_one_chunk)
{
    char **c = gw_chunk("hello", 4000);
    ASSERT_STR_EQ("hello", c[0]);
    ASSERT_NULL(c[1]);
    gw_chunks_free(c);
}

TEST(long_text_splits_at_newlines_with_indicators)
{
    char text[10001];
    for (int i = 0; i < 10000; i++)
        text[i] = (i % 100 == 99) ? '\n' : 'a' + i % 26;
    text[10000] = '\0';
    char **c = gw_chunk(text, 4000);
    int n = 0;
    for (char **p = c; *p; p++, n++)
        ASSERT_LE(cps(*p), 4000);
    ASSERT_EQ(3, n);
    ASSERT_STR_CONTAINS(c[0], " (1/3)");
    ASSERT_STR_CONTAINS(c[2], " (3/3)");
    ASSERT_EQ('\n', text[strlen(c[0]) - 6]); /* the first cut fell on a newline */
    gw_chunks_free(c);
}

TEST(fenced_code_is_closed_and_reopened_across_chunks)
{
    char text[6000];
    size_t n = (size_t)snprintf(text, sizeof(text), "intro\n```python\n");
    for (int i = 0; i < 200 && n < 5900; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "print('line %03d')\n", i);
    snprintf(text + n, sizeof(text) - n, "```\nafter");
    char **c = gw_chunk(text, 1000);
    ASSERT_NOT_NULL(c[1]);
    ASSERT_STR_CONTAINS(c[0], "\n``` (1/");
    ASSERT_EQ(0, strncmp(c[1], "```python\n", 10));
    for (char **p = c; *p; p++)
        ASSERT_LE(cps(*p), 1000);
    gw_chunks_free(c);
}

TEST(commands_are_parsed_like_the_original)
{
    char *buf;
    const char *name, *args;
    ASSERT_TRUE(gw_parse_command("/Model gpt-4o --global", &buf, &name, &args));
    ASSERT_STR_EQ("model", name);
    ASSERT_STR_EQ("gpt-4o --global", args);
    rt_free(buf);
    ASSERT_TRUE(gw_parse_command("/help@hermes_bot", &buf, &name, &args));
    ASSERT_STR_EQ("help", name);
    ASSERT_STR_EQ("", args);
    rt_free(buf);
    ASSERT_FALSE(gw_parse_command("/etc/passwd is a file", &buf, &name, &args));
    ASSERT_FALSE(gw_parse_command("hello /stop", &buf, &name, &args));
    ASSERT_FALSE(gw_parse_command("/", &buf, &name, &args));
    ASSERT_NULL(buf);
}

TEST(the_interrupting_commands_are_urgent)
{
    ASSERT_TRUE(gw_command_is_urgent("/stop"));
    ASSERT_TRUE(gw_command_is_urgent("/STOP@hermes_bot"));
    ASSERT_TRUE(gw_command_is_urgent("/approve session"));
    ASSERT_TRUE(gw_command_is_urgent("/deny"));
    ASSERT_TRUE(gw_command_is_urgent("/new"));
    ASSERT_TRUE(gw_command_is_urgent("/reset"));
    ASSERT_FALSE(gw_command_is_urgent("/status"));
    ASSERT_FALSE(gw_command_is_urgent("please /stop"));
    ASSERT_FALSE(gw_command_is_urgent("/stopwatch"));
    ASSERT_FALSE(gw_command_is_urgent(""));
}

/* A stand-in router that is busy (its first message blocks it on a gate) while events queue
 * up behind it, then records the order in which it sees them. */
enum { T_GATE = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1) };
static _Atomic bool gate_entered, gate_open;
static char seen_order[16][32];
static _Atomic int seen_n;

static void router_standin(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)cx;
    (void)state;
    if (m->type == T_GATE) {
        atomic_store(&gate_entered, true);
        for (int i = 0; i < 30000 && !atomic_load(&gate_open); i++) /* at most 30 s */
            usleep(1000);
        return;
    }
    if (m->type != GW_MSG_EVENT)
        return;
    int i = atomic_fetch_add(&seen_n, 1);
    if (i < 16)
        snprintf(seen_order[i], sizeof(seen_order[i]), "%s", ((gw_msg_event *)m)->text);
}
static const rt_actor_type standin_type = {"router-standin", router_standin, NULL, 0};

TEST(an_interrupt_overtakes_events_queued_at_the_router)
{
    rt_options o = {.workers = 2};
    rt_runtime *rt = rt_runtime_new(&o);
    rt_ctx *cx = rt_ctx_external(rt);
    rt_ref gw = rt_spawn(cx, &standin_type, NULL, NULL);
    rt_send(cx, gw, rt_msg_new(T_GATE, sizeof(rt_msg)));
    for (int i = 0; i < 30000 && !atomic_load(&gate_entered); i++)
        usleep(1000);
    ASSERT_TRUE(atomic_load(&gate_entered));
    const char *texts[] = {"first", "second", "/stop", "third", "/approve", "fourth"};
    for (size_t i = 0; i < RT_ARRAY_LEN(texts); i++)
        ASSERT_TRUE(
            gw_event_send(cx, gw, gw_event_new("matrix", "dm", "!r:hs", "@u:hs", texts[i])));
    atomic_store(&gate_open, true);
    ASSERT_OK(rt_wait_quiescent(rt, 30000));
    ASSERT_EQ(6, atomic_load(&seen_n));
    const char *expect[] = {"/stop", "/approve", "first", "second", "third", "fourth"};
    for (size_t i = 0; i < RT_ARRAY_LEN(expect); i++)
        ASSERT_STR_EQ(expect[i], seen_order[i]);
    /* no gateway: refused, the event freed (LeakSanitizer checks) */
    ASSERT_FALSE(gw_event_send(cx, 0, gw_event_new("matrix", "dm", "!r:hs", "@u:hs", "/stop")));
    rt_runtime_free(rt);
}

/* sessions.json is rendered off the router from a flat copy: the same text as rendering the
 * entries themselves, and a cut copy renders its whole entries only. */
TEST(a_flat_copy_of_the_index_renders_as_the_entries_do)
{
    const char *json =
        "{\"agent:main:matrix:dm:!a:hs\": {\"session_key\": \"agent:main:matrix:dm:!a:hs\", "
        "\"session_id\": \"20261122_010203_abcdef01\", \"created_at\": \"2026-11-22T01:02:03\", "
        "\"updated_at\": \"2026-11-22T01:05:00.250000\", \"display_name\": \"Ada \\\"A\\\"\", "
        "\"platform\": \"matrix\", \"chat_type\": \"dm\", \"input_tokens\": 1234, "
        "\"output_tokens\": 56, \"total_tokens\": 1290, \"last_prompt_tokens\": 999, "
        "\"memory_flushed\": true, \"suspended\": false, \"origin\": {\"platform\": \"matrix\", "
        "\"chat_id\": \"!a:hs\", \"chat_type\": \"dm\", \"user_id\": \"@ada:hs\"}},"
        "\"agent:main:api_server:dm:s2\": {\"session_key\": \"agent:main:api_server:dm:s2\", "
        "\"session_id\": \"s2\", \"created_at\": \"2026-11-21T23:00:00\", "
        "\"updated_at\": \"2026-11-21T23:00:01\", \"platform\": \"api_server\", "
        "\"chat_type\": \"dm\", \"input_tokens\": 0, \"output_tokens\": 0, \"total_tokens\": 0, "
        "\"last_prompt_tokens\": 0, \"memory_flushed\": false, \"suspended\": true}}";
    gw_entry **es = NULL;
    size_t n = 0;
    char err[256] = "";
    ASSERT_OK(gw_index_parse(json, &es, &n, err, sizeof(err)));
    ASSERT_EQ(2, (int)n);
    char *direct = gw_index_render(es, n);
    rt_buf flat;
    rt_buf_init(&flat, SIZE_MAX / 2);
    gw_index_flatten(es, n, &flat);
    size_t len = 0;
    char *data = rt_buf_steal(&flat, &len);
    char *via = gw_index_render_flat(data, len);
    ASSERT_STR_EQ(direct, via);
    ASSERT_STR_CONTAINS(via, "\"display_name\":\t\"Ada \\\"A\\\"\"");
    ASSERT_STR_CONTAINS(via, "\"user_id\":\t\"@ada:hs\"");
    /* cut in the middle of the second entry: the first renders, nothing else, no crash */
    char *cut = gw_index_render_flat(data, len - 3);
    ASSERT_STR_CONTAINS(cut, "agent:main:matrix:dm:!a:hs");
    ASSERT_NULL(strstr(cut, "agent:main:api_server:dm:s2"));
    char *empty = gw_index_render_flat("", 0);
    ASSERT_STR_EQ("{\n}", empty);
    rt_free(empty);
    rt_free(cut);
    rt_free(via);
    rt_free(data);
    rt_free(direct);
    for (size_t i = 0; i < n; i++)
        gw_entry_free(es[i]);
    rt_free(es);
}
