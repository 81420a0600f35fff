/*
 * The chat commands kept out of gw_chat.c (gw_cmd_*.c), end to end inside one process: the
 * test adapter, the real router and chat actors, agent sessions, state.db and a scripted LLM
 * (the fixture is gw_fixture.c). /title /resume /branch with their exact replies, their
 * effects in state.db and on what the model is sent next, bad input, a restart; /btw; the
 * info commands.
 */
#include "ag_session.h"
#include "gw.h"
#include "gw_cmds.h"
#include "gw_fixture.h"
#include "gw_int.h"
#include "gw_pairing.h"
#include "hm_config.h"
#include "hm_env.h"
#include "llm_provider.h"
#include "rt_alloc.h"
#include "rt_http.h"
#include "rt_httpd.h"
#include "rt_lws.h"
#include "rt_reactor.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "st_read.h"
#include "st_store.h"
#include "test.h"
#include "tool.h"

#include <sqlite3.h>
#include <stdatomic.h>

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((unused)) static int count_out(uint32_t type, int kind, const char *chat)
{
    pthread_mutex_lock(&lock);
    int n = 0;
    for (int i = 0; i < nouts; i++)
        n += outs[i].type == type && (kind < 0 || outs[i].kind == kind) &&
             (!chat || strcmp(outs[i].chat, chat) == 0);
    pthread_mutex_unlock(&lock);
    return n;
}

/* Wait until the model has had n requests. */
__attribute__((unused)) static void wait_requests(int n)
{
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    pthread_mutex_lock(&lock);
    while (nrequests < n) {
        if (rt_now_ns(F.rt) > deadline) {
            pthread_mutex_unlock(&lock);
            TEST_FAIL_("the model got %d requests, not %d", nrequests, n);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&cond, &lock, &ts);
    }
    pthread_mutex_unlock(&lock);
}

__attribute__((unused)) static int count_text(const char *chat, const char *needle)
{
    pthread_mutex_lock(&lock);
    int n = 0;
    for (int i = 0; i < nouts; i++)
        n += outs[i].type == GW_OUT_TEXT && strcmp(outs[i].chat, chat) == 0 &&
             strstr(outs[i].text, needle) != NULL;
    pthread_mutex_unlock(&lock);
    return n;
}

/* sessions.json is written within a second of a change. */
__attribute__((unused)) static void wait_index(void)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/sessions/sessions.json", F.home);
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    while (access(path, F_OK) != 0 && rt_now_ns(F.rt) < deadline)
        usleep(5000);
    ASSERT_OK(access(path, F_OK));
}

static const char *out_text(int i)
{
    return outs[i].text;
}

#define TC(id, name, args)                                                                         \
    "{\"id\":\"" id "\",\"type\":\"function\",\"function\":{\"name\":\"" name                      \
    "\",\"arguments\":\"" args "\"}}"

/* ------------------------------------------------------------------ tests */

/* The text of the n-th notice containing needle; the test fails if it is not exactly want. */
static void expect_notice(const char *needle, int nth, const char *want)
{
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", needle, nth);
    ASSERT_STR_EQ(want, out_text(i));
}

static void say_alice(const char *text)
{
    msg_in(&F, "dm", "dm-alice", "alice", NULL, text);
}

/* The session of the n-th finished turn in dm-alice. */
static void turn_session(int nth, char *sid, size_t len)
{
    int i = wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, nth);
    snprintf(sid, len, "%s", outs[i].session);
}

static int64_t db_int(const char *sql)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/state.db", F.home);
    sqlite3 *db = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL));
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(SQLITE_OK, sqlite3_prepare_v2(db, sql, -1, &st, NULL));
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

TEST(title_resume_and_branch)
{
    char first[96], second[96], buf[1024];
    start_gateway(&F, true);
    say_alice("first");
    turn_session(0, first, sizeof(first));

    say_alice("/title");
    snprintf(buf, sizeof(buf),
             "\xf0\x9f\x93\x8c Session: `%s`\nNo title set. Usage: `/title My Session Name`",
             first);
    expect_notice("No title set", 0, buf);
    say_alice("/title   Project \t Alpha ");
    expect_notice("Session title set", 0,
                  "\xe2\x9c\x8f\xef\xb8\x8f Session title set: **Project Alpha**");
    say_alice("/title");
    snprintf(buf, sizeof(buf), "\xf0\x9f\x93\x8c Session: `%s`\nTitle: **Project Alpha**", first);
    expect_notice("Title: **", 0, buf);
    /* bad titles */
    char longt[128] = "/title ";
    memset(longt + 7, 'x', 101);
    longt[108] = '\0';
    say_alice(longt);
    expect_notice("Title too long", 0,
                  "\xe2\x9a\xa0\xef\xb8\x8f Title too long (101 chars, max 100)");
    say_alice("/title \xe2\x80\x8b");
    expect_notice("empty after cleanup", 0,
                  "\xe2\x9a\xa0\xef\xb8\x8f Title is empty after cleanup. Please use printable "
                  "characters.");

    /* a second session: the title is taken (any case); it gets its own */
    say_alice("/new");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Session reset!", 0);
    say_alice("second");
    turn_session(1, second, sizeof(second));
    ASSERT_NE(0, strcmp(first, second));
    say_alice("/title project ALPHA");
    snprintf(buf, sizeof(buf),
             "\xe2\x9a\xa0\xef\xb8\x8f Title 'project ALPHA' is already in use by session %s",
             first);
    expect_notice("already in use", 0, buf);
    say_alice("/title Side");
    expect_notice("Session title set", 1, "\xe2\x9c\x8f\xef\xb8\x8f Session title set: **Side**");

    /* /resume: the list, an unknown name, the current one, then back to the first */
    say_alice("/resume");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Named Sessions", 0);
    ASSERT_STR_EQ("\xf0\x9f\x93\x8b **Named Sessions**\n"
                  "\n\xe2\x80\xa2 **Side** (1 message) \xe2\x80\x94 _second_"
                  "\n\xe2\x80\xa2 **Project Alpha** (1 message) \xe2\x80\x94 _first_"
                  "\n\nUsage: `/resume <session name>`",
                  out_text(i));
    say_alice("/resume Nope");
    expect_notice("No session found", 0,
                  "No session found matching '**Nope**'.\nUse `/resume` with no arguments to see "
                  "available sessions.");
    say_alice("/resume Side");
    expect_notice("Already on session", 0, "\xf0\x9f\x93\x8c Already on session **Side**.");
    say_alice("/resume project alpha ");
    expect_notice("Resumed session", 0,
                  "\xe2\x86\xbb Resumed session **Project Alpha** (1 message). Conversation "
                  "restored.");
    say_alice("third");
    turn_session(2, buf, sizeof(buf));
    ASSERT_STR_EQ(first, buf);
    ASSERT_STR_EQ("first|third|", all_users); /* the old transcript was loaded */

    /* /branch copies the transcript (4 rows) and goes over to the copy */
    say_alice("/branch");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Branched to", 0);
    const char *bt = out_text(i);
    ASSERT_STR_CONTAINS(bt, "\xe2\x91\x82 Branched to **Project Alpha #2** (2 messages copied)\n"
                            "Original: `");
    ASSERT_STR_CONTAINS(bt, first);
    ASSERT_STR_CONTAINS(bt, "`\nUse `/resume` to switch back to the original.");
    char branch[96] = "";
    const char *b = strstr(bt, "Branch: `");
    ASSERT_NOT_NULL(b);
    snprintf(branch, sizeof(branch), "%.*s", (int)strcspn(b + 9, "`"), b + 9);
    snprintf(buf, sizeof(buf), "SELECT count(*) FROM messages WHERE session_id = '%s'", branch);
    ASSERT_EQ(4, db_int(buf));
    snprintf(buf, sizeof(buf),
             "SELECT count(*) FROM sessions WHERE id = '%s' AND "
             "parent_session_id = '%s'",
             branch, first);
    ASSERT_EQ(1, db_int(buf));
    say_alice("fourth");
    turn_session(3, buf, sizeof(buf));
    ASSERT_STR_EQ(branch, buf);
    ASSERT_STR_EQ("first|third|fourth|", all_users);
    snprintf(buf, sizeof(buf), "SELECT count(*) FROM messages WHERE session_id = '%s'", first);
    ASSERT_EQ(4, db_int(buf)); /* the original is untouched */
    say_alice("/fork Project Alpha");
    snprintf(buf, sizeof(buf),
             "\xe2\x9a\xa0\xef\xb8\x8f Title 'Project Alpha' is already in use by session %s",
             first);
    expect_notice("already in use", 1, buf);
    stop_gateway(&F);

    /* after a restart: the chat is still on the branch and its title is there */
    start_gateway(&F, false);
    reset_records();
    say_alice("/title");
    snprintf(buf, sizeof(buf), "\xf0\x9f\x93\x8c Session: `%s`\nTitle: **Project Alpha #2**",
             branch);
    expect_notice("Title: **", 0, buf);
    stop_gateway(&F);
}

TEST(branch_needs_a_conversation)
{
    start_gateway(&F, true);
    say_alice("/branch");
    expect_notice("No conversation", 0,
                  "No conversation to branch \xe2\x80\x94 send a message first.");
    say_alice("/resume");
    expect_notice("No named sessions", 0,
                  "No named sessions found.\nUse `/title My Session` to name your current "
                  "session, then `/resume My Session` to return to it later.");
    /* bob cannot resume alice's session by its title */
    say_alice("/title Mine");
    wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Session title set", 0);
    say_alice("hello");
    wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    msg_in(&F, "dm", "dm-bob", "bob", NULL, "/resume Mine");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-bob", "No session found", 0);
    ASSERT_STR_CONTAINS(out_text(i), "'**Mine**'");
    stop_gateway(&F);
}

/* Wait until sql counts want rows (the store works behind the replies). */
static void wait_db(const char *sql, int64_t want)
{
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    int64_t v = db_int(sql);
    while (v != want && rt_now_ns(F.rt) < deadline) {
        usleep(10000);
        v = db_int(sql);
    }
    ASSERT_EQ(want, v);
}

TEST(btw_answers_beside_the_conversation_one_at_a_time)
{
    char first[96], buf[2048];
    start_gateway(&F, true);
    say_alice("/btw");
    expect_notice("Usage: /btw", 0,
                  "Usage: /btw <question>\nExample: /btw what module owns session title "
                  "sanitization?\n\nAnswers using session context. No tools, not persisted.");
    say_alice("first");
    turn_session(0, first, sizeof(first));
    pthread_mutex_lock(&lock);
    scripts[0] = (script){.delay_ms = 300}; /* the side question takes a while */
    nscripts = 1;
    pthread_mutex_unlock(&lock);
    say_alice("/btw what did I say?");
    expect_notice("/btw: \"what", 0,
                  "\xf0\x9f\x92\xac /btw: \"what did I say?\"\nReply will appear here shortly.");
    say_alice("/btw and again?");
    expect_notice("already running", 0,
                  "A /btw is already running for this chat. Wait for it to finish.");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "/btw: \"what did I say?\"\n\n", 0);
    snprintf(buf, sizeof(buf),
             "\xf0\x9f\x92\xac /btw: \"what did I say?\"\n\necho: [Ephemeral /btw side question. "
             "Answer using the conversation context. No tools available. Be direct and "
             "concise.]\n\nwhat did I say?");
    ASSERT_STR_EQ(buf, out_text(i));
    /* the model saw the conversation so far, then the side question */
    pthread_mutex_lock(&lock);
    ASSERT_STR_CONTAINS(all_users, "first|[Ephemeral /btw side question.");
    pthread_mutex_unlock(&lock);
    /* nothing of it is kept; the conversation goes on without it */
    wait_db("SELECT count(*) FROM sessions WHERE id LIKE 'btw_%'", 0);
    snprintf(buf, sizeof(buf), "SELECT count(*) FROM messages WHERE session_id = '%s'", first);
    ASSERT_EQ(2, db_int(buf));
    say_alice("second");
    turn_session(1, buf, sizeof(buf));
    ASSERT_STR_EQ(first, buf);
    ASSERT_STR_EQ("first|second|", all_users);
    /* the next /btw may run now */
    say_alice("/btw once more");
    expect_notice("/btw: \"once", 0,
                  "\xf0\x9f\x92\xac /btw: \"once more\"\nReply will appear here shortly.");
    wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "/btw: \"once more\"\n\n", 0);
    wait_db("SELECT count(*) FROM sessions WHERE id LIKE 'btw_%'", 0);
    stop_gateway(&F);
}

static char *read_text_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = rt_xcalloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static char *config_text(void)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/config.yaml", F.home);
    char *t = read_text_file(path);
    return t ? t : rt_xstrdup("");
}

TEST(provider_reasoning_fast_update_insights_help)
{
    unsetenv("OPENROUTER_API_KEY");
    unsetenv("OPENAI_BASE_URL");
    unsetenv("OPENAI_API_KEY");
    setenv("ANTHROPIC_API_KEY", "sk-ant-secret-123456", 1);
    start_gateway(&F, true);
    say_alice("/provider");
    expect_notice("Current provider", 0,
                  "\xf0\x9f\x94\x8c **Current provider:** Custom endpoint (OpenAI-compatible) "
                  "(`custom`)\n\n**Available providers:**"
                  "\n\xe2\x9d\x8c `openrouter` \xe2\x80\x94 OpenRouter"
                  "\n\xe2\x9d\x8c `custom` \xe2\x80\x94 Custom endpoint (OpenAI-compatible) "
                  "\xe2\x86\x90 active"
                  "\n\xe2\x9c\x85 `anthropic` \xe2\x80\x94 Anthropic"
                  "\n\nSwitch: `hermes config set model.provider <name>`, then `/restart`"
                  "\nSetup: `hermes config set OPENROUTER_API_KEY ...` (or `OPENAI_BASE_URL`, "
                  "`ANTHROPIC_API_KEY`)");

    say_alice("/reasoning");
    expect_notice("Reasoning Settings", 0,
                  "\xf0\x9f\xa7\xa0 **Reasoning Settings**\n\n**Effort:** `xhigh`\n**Display:** "
                  "off\n\n_Usage:_ `/reasoning <none|minimal|low|medium|high|xhigh|show|hide>`");
    say_alice("/reasoning HIGH");
    expect_notice("Reasoning effort set", 0,
                  "\xf0\x9f\xa7\xa0 \xe2\x9c\x93 Reasoning effort set to `high` (saved to config)");
    char *cfg = config_text();
    ASSERT_STR_CONTAINS(cfg, "reasoning_effort: high");
    rt_free(cfg);
    say_alice("/reasoning show");
    expect_notice("Reasoning display", 0,
                  "\xf0\x9f\xa7\xa0 \xe2\x9c\x93 Reasoning display: **ON** for **test**");
    cfg = config_text();
    ASSERT_STR_CONTAINS(cfg, "show_reasoning: true");
    ASSERT_STR_CONTAINS(cfg, "reasoning_effort: high"); /* the earlier edit is kept */
    rt_free(cfg);
    say_alice("/reasoning loud");
    expect_notice("Unknown argument", 0,
                  "\xe2\x9a\xa0\xef\xb8\x8f Unknown argument: `loud`\n\n**Valid levels:** none, "
                  "minimal, low, medium, high, xhigh\n**Display:** show, hide");

    say_alice("/verbose");
    expect_notice("/verbose", 0,
                  "The `/verbose` command is not enabled for messaging platforms.\n\nEnable it "
                  "in `config.yaml`:\n```yaml\ndisplay:\n  tool_progress_command: true\n```");
    say_alice("/fast");
    expect_notice("Priority Processing", 0,
                  "\xe2\x9a\xa1 Priority Processing: **Normal**\n_This build's LLM client does not "
                  "request priority processing (OpenAI service tier / Anthropic fast mode) yet._");
    say_alice("/fast sideways");
    expect_notice("Usage: `/fast", 0, "Usage: `/fast [normal|fast|status]`");

    say_alice("/update");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Updating Hermes", 0);
    ASSERT_STR_CONTAINS(out_text(i), "\ngit pull\nscripts/install-deps.sh\ncmake --build build "
                                     "-j\"$(nproc)\"\nbuild/hermes gateway restart\n```");

    say_alice("hello");
    wait_out(GW_OUT_TURN_END, -1, "dm-alice", NULL, 0);
    say_alice("/insights");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Hermes Insights", 0);
    ASSERT_STR_CONTAINS(out_text(i), "\xf0\x9f\x93\x8a **Hermes Insights** \xe2\x80\x94 last 30 "
                                     "days\n\n**Sessions:** 1\n**Messages:** 2 (1 from users)\n"
                                     "**Tool calls:** 0\n**Tokens:** ");
    ASSERT_STR_CONTAINS(out_text(i), "**Platforms:** test (1)");
    say_alice("/insights 7 --source matrix");
    expect_notice("last 7 days", 0,
                  "\xf0\x9f\x93\x8a **Hermes Insights** \xe2\x80\x94 last 7 days on matrix\n\nNo "
                  "sessions in this period.");
    say_alice("/insights 0");
    expect_notice("Invalid --days", 0, "Invalid --days value: 0 (1 to 3650)");
    say_alice("/insights lots");
    expect_notice("Usage: `/insights", 0, "Usage: `/insights [days] [--source <platform>]`");

    say_alice("/debug");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Debug report written", 0);
    ASSERT_STR_CONTAINS(out_text(i), "(secrets redacted).\nThis build does not upload it anywhere "
                                     "unless `debug.paste_url` is set");
    const char *d = strstr(out_text(i), "`");
    ASSERT_NOT_NULL(d);
    char path[700];
    snprintf(path, sizeof(path), "%.*s", (int)strcspn(d + 1, "`"), d + 1);
    ASSERT_TRUE(strncmp(path, F.home, strlen(F.home)) == 0);
    char *report = read_text_file(path);
    ASSERT_NOT_NULL(report);
    ASSERT_STR_CONTAINS(report, "ANTHROPIC_API_KEY: set");
    ASSERT_TRUE(strstr(report, "sk-ant-secret") == NULL);
    rt_free(report);

    say_alice("/help");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Hermes Commands", 0);
    static const char *const listed[] = {"`/title [name]` -- ",
                                         "`/resume [name]` -- ",
                                         "(alias: `/fork`)",
                                         "`/btw <question>`",
                                         "`/provider` -- ",
                                         "`/reasoning [level|show|hide]`",
                                         "`/fast [normal|fast|status]`",
                                         "`/verbose` -- ",
                                         "`/insights [days]`",
                                         "`/restart` -- ",
                                         "`/debug` -- ",
                                         "`/update` -- ",
                                         "`/new` -- "};
    for (size_t k = 0; k < sizeof(listed) / sizeof(listed[0]); k++)
        ASSERT_STR_CONTAINS(out_text(i), listed[k]);
    say_alice("/reload-mcp");
    expect_notice("not available", 0, "`/reload-mcp` is not available in this gateway yet.");
    say_alice("/rollback"); /* checkpoints are off unless config.yaml turns them on */
    expect_notice("Checkpoints are not enabled", 0,
                  "Checkpoints are not enabled.\nEnable in config.yaml:\n```\ncheckpoints:\n"
                  "  enabled: true\n```");
    stop_gateway(&F);
    unsetenv("ANTHROPIC_API_KEY");
}

TEST(verbose_cycles_and_saves_per_platform)
{
    snprintf(F.home, sizeof(F.home), "%s/home", test_tmpdir());
    mkdir(F.home, 0700);
    char path[600];
    snprintf(path, sizeof(path), "%s/config.yaml", F.home);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs("# mine\ndisplay:\n  tool_progress_command: true\n", f);
    fclose(f);
    reset_records();
    start_gateway(&F, false);
    say_alice("/verbose"); /* "test" starts at all */
    expect_notice("Tool progress", 0,
                  "\xe2\x9a\x99\xef\xb8\x8f Tool progress: **VERBOSE** \xe2\x80\x94 full args and "
                  "results.\n_(saved for **test**: this chat now, the platform's other chats "
                  "after a restart)_");
    char *cfg = config_text();
    ASSERT_STR_CONTAINS(cfg, "# mine\n");
    ASSERT_STR_CONTAINS(cfg, "tool_progress: verbose");
    rt_free(cfg);
    say_alice("/verbose");
    expect_notice("Tool progress", 1,
                  "\xe2\x9a\x99\xef\xb8\x8f Tool progress: **OFF** \xe2\x80\x94 no tool activity "
                  "shown.\n_(saved for **test**: this chat now, the platform's other chats after "
                  "a restart)_");
    cfg = config_text();
    ASSERT_STR_CONTAINS(cfg, "tool_progress: \"off\""); /* a string, not YAML's false */
    rt_free(cfg);
    stop_gateway(&F);
}

static atomic_int restarted;
static void fake_restart(void)
{
    atomic_fetch_add(&restarted, 1);
}

static void idle_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)cx, (void)state, (void)m;
}
static const rt_actor_type idle_type = {"idle", idle_behave, NULL, 0};

TEST(restart_says_so_then_restarts_once)
{
    gw_restart_fn = fake_restart;
    start_gateway(&F, true);
    /* a restart already under way */
    rt_spawn_opts o = {.name = GW_RESTART_NAME};
    rt_ref other = rt_spawn(F.cx, &idle_type, NULL, &o);
    ASSERT_NE(0, other);
    say_alice("/restart");
    expect_notice("already in progress", 0, "\xe2\x8f\xb3 Gateway restart already in progress...");
    rt_stop(F.cx, other, RT_EXIT_NORMAL);
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    while (rt_whereis(F.cx, GW_RESTART_NAME) && rt_now_ns(F.rt) < deadline)
        usleep(1000);
    say_alice("/restart");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_REPLY, "dm-alice", "Restarting gateway", 0);
    ASSERT_STR_EQ("\xe2\x99\xbb Restarting gateway. If you aren't notified within 60 seconds, "
                  "restart from the console with `hermes gateway restart`.",
                  out_text(i));
    deadline = rt_now_ns(F.rt) + WAIT_NS;
    while (atomic_load(&restarted) == 0 && rt_now_ns(F.rt) < deadline)
        usleep(1000);
    ASSERT_EQ(1, atomic_load(&restarted));
    /* while it runs, another /restart is refused */
    say_alice("/restart");
    expect_notice("already in progress", 1, "\xe2\x8f\xb3 Gateway restart already in progress...");
    ASSERT_EQ(1, atomic_load(&restarted));
    stop_gateway(&F);
}

/* ------------------------------------------------------ /debug with a paste service */

static char pasted[8192];

static void paste_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type != RT_HTTPD_MSG_REQUEST)
        return;
    rt_httpd_msg_request *q = (rt_httpd_msg_request *)m;
    pthread_mutex_lock(&lock);
    snprintf(pasted, sizeof(pasted), "%s %s\n%s", q->method, q->path, q->body);
    pthread_mutex_unlock(&lock);
    const char *const hdrs[] = {"Content-Type: text/plain", NULL};
    static const char link[] = "https://paste.example/abc\nexpires in 6 hours\n";
    rt_httpd_reply(cx, q->req, 200, hdrs, link, sizeof(link) - 1);
}
static const rt_actor_type paste_type = {"paste", paste_behave, NULL, 0};

/* Start the gateway with debug.paste_url = url and the HTTP client on its reactor. */
static rt_reactor *start_with_paste_url(const char *url)
{
    snprintf(F.home, sizeof(F.home), "%s/home", test_tmpdir());
    mkdir(F.home, 0700);
    char path[600];
    snprintf(path, sizeof(path), "%s/config.yaml", F.home);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fprintf(f, "debug:\n  paste_url: %s\n", url);
    fclose(f);
    reset_records();
    start_gateway(&F, false);
    rt_reactor *r = rt_reactor_start(F.rt);
    ASSERT_NOT_NULL(r);
    ASSERT_OK(rt_http_init(r));
    return r;
}

static void stop_with_reactor(rt_reactor *r)
{
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    rt_reactor_stop(r);
    rt_runtime_free(F.rt);
    hm_config_unref(F.cfg);
}

TEST(debug_posts_the_redacted_report_to_the_configured_url)
{
    setenv("ANTHROPIC_API_KEY", "sk-ant-secret-123456", 1);
    rt_options ro = {.workers = 1};
    rt_runtime *prt = rt_runtime_new(&ro);
    int err = 0;
    rt_lws *l = rt_lws_start(prt, &err);
    ASSERT_NOT_NULL(l);
    rt_httpd_route route = {"/", rt_spawn(rt_ctx_external(prt), &paste_type, NULL, NULL)};
    rt_httpd_opts ho = {.routes = &route, .nroutes = 1};
    rt_httpd *h = rt_httpd_start(prt, &ho, &err);
    ASSERT_NOT_NULL(h);
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/paste", rt_httpd_port(h));
    rt_reactor *r = start_with_paste_url(url);

    say_alice("/debug");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Debug report", 0);
    char want[800];
    snprintf(want, sizeof(want),
             "\xf0\x9f\x90\x9b Debug report uploaded: https://paste.example/abc\n(also written to "
             "`%s/logs/debug-",
             F.home);
    ASSERT_STR_CONTAINS(out_text(i), want);
    ASSERT_STR_CONTAINS(out_text(i), ".txt`, secrets redacted)");
    pthread_mutex_lock(&lock);
    ASSERT_STR_CONTAINS(pasted, "POST /paste\nHermes debug report (");
    ASSERT_STR_CONTAINS(pasted, "ANTHROPIC_API_KEY: set");
    ASSERT_TRUE(strstr(pasted, "sk-ant-secret") == NULL);
    pthread_mutex_unlock(&lock);
    stop_with_reactor(r);

    rt_httpd_stop(h, 1000);
    rt_lws_stop(l);
    ASSERT_OK(rt_wait_quiescent(prt, 10000));
    rt_runtime_free(prt);
    unsetenv("ANTHROPIC_API_KEY");
}

TEST(debug_says_where_the_report_is_when_the_upload_fails)
{
    rt_reactor *r = start_with_paste_url("http://127.0.0.1:1/paste"); /* nobody listens */
    say_alice("/debug");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "could not be uploaded", 0);
    ASSERT_STR_CONTAINS(out_text(i), "\xe2\x9a\xa0\xef\xb8\x8f The debug report could not be "
                                     "uploaded (");
    char want[700];
    snprintf(want, sizeof(want), "). It is written to `%s/logs/debug-", F.home);
    ASSERT_STR_CONTAINS(out_text(i), want);
    stop_with_reactor(r);
}

TEST(commands_pages_through_everything_help_lists)
{
    start_gateway(&F, true);
    say_alice("/help");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Hermes Commands", 0);
    int n = 0;
    for (const char *p = strstr(out_text(i), "\n`/"); p; p = strstr(p + 1, "\n`/"))
        n++;
    ASSERT_GT(n, 20);
    int pages = (n + 19) / 20;
    char want[256];
    say_alice("/commands");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "**Commands** (", 0);
    snprintf(want, sizeof(want),
             "\xf0\x9f\x93\x9a **Commands** (%d total, page 1/%d)\n\n`/new` -- ", n, pages);
    ASSERT_TRUE(strncmp(out_text(i), want, strlen(want)) == 0);
    snprintf(want, sizeof(want), "\n\nnext \xe2\x86\x92 `/commands 2`");
    ASSERT_STR_CONTAINS(out_text(i), want);
    int lines = 0;
    for (const char *p = strstr(out_text(i), "\n`/"); p; p = strstr(p + 1, "\n`/"))
        lines++;
    ASSERT_EQ(20, lines);
    say_alice("/commands 99");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "**Commands** (", 1);
    snprintf(want, sizeof(want), "(%d total, page %d/%d)", n, pages, pages);
    ASSERT_STR_CONTAINS(out_text(i), want);
    snprintf(want, sizeof(want), "`/commands %d` \xe2\x86\x90 prev", pages - 1);
    ASSERT_STR_CONTAINS(out_text(i), want);
    snprintf(want, sizeof(want), "\n_(Requested page 99 was out of range, showing page %d.)_",
             pages);
    ASSERT_STR_CONTAINS(out_text(i), want);
    ASSERT_STR_CONTAINS(out_text(i), "`/update` -- "); /* the last one */
    say_alice("/commands two");
    expect_notice("Usage: `/commands", 0, "Usage: `/commands [page]`");
    stop_gateway(&F);
}

/* /<skill> runs an installed skill's instructions as the user's message (agent-core §8.3);
 * a name that is neither a command nor a skill gets the unknown-command notice. */
TEST(a_skill_command_becomes_the_users_message)
{
    start_gateway(&F, true);
    char dir[700], path[800];
    const char *parts[] = {"skills", "skills/devops", "skills/devops/deploy_k8s"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(dir, sizeof(dir), "%s/%s", F.home, parts[i]);
        ASSERT_TRUE(mkdir(dir, 0700) == 0 || errno == EEXIST);
    }
    snprintf(path, sizeof(path), "%s/SKILL.md", dir);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs("---\nname: deploy_k8s\ndescription: Deploy\n---\n1. kubectl apply\n", f);
    fclose(f);
    say_alice("/deploy-k8s to staging");
    turn_session(0, path, sizeof(path));
    pthread_mutex_lock(&lock);
    ASSERT_STR_CONTAINS(all_users, "[SYSTEM: The user has invoked the \"deploy_k8s\" skill");
    ASSERT_STR_CONTAINS(all_users, "1. kubectl apply");
    ASSERT_STR_CONTAINS(all_users, "alongside the skill invocation: to staging");
    pthread_mutex_unlock(&lock);
    say_alice("/ghost now");
    expect_notice("Unknown command", 0,
                  "Unknown command `/ghost`. Type /commands to see what's available, or resend "
                  "without the leading slash to send as a regular message.");
    stop_gateway(&F);
}

/* /status answers from the router's memory, with the session's title from state.db between
 * the session id and the creation time (the original's "**Title:** …" line), and without
 * the line while the session has none. */
TEST(status_shows_the_session_title)
{
    char sid[96], want[512];
    start_gateway(&F, true);
    say_alice("first");
    turn_session(0, sid, sizeof(sid));
    say_alice("/status");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Hermes Gateway Status", 0);
    snprintf(want, sizeof(want),
             "\xf0\x9f\x93\x8a **Hermes Gateway Status**\n\n**Session ID:** `%s`\n**Created:** ",
             sid);
    ASSERT_TRUE(strncmp(out_text(i), want, strlen(want)) == 0);
    ASSERT_TRUE(strstr(out_text(i), "**Title:**") == NULL);
    ASSERT_STR_CONTAINS(out_text(i), "\n\n**Connected Platforms:** test");
    say_alice("/title Project Alpha");
    expect_notice("Session title set", 0,
                  "\xe2\x9c\x8f\xef\xb8\x8f Session title set: **Project Alpha**");
    say_alice("/status");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-alice", "Hermes Gateway Status", 1);
    snprintf(want, sizeof(want),
             "\xf0\x9f\x93\x8a **Hermes Gateway Status**\n\n**Session ID:** `%s`\n**Title:** "
             "Project Alpha\n**Created:** ",
             sid);
    ASSERT_TRUE(strncmp(out_text(i), want, strlen(want)) == 0);
    ASSERT_STR_CONTAINS(out_text(i), "**Agent Running:** No\n\n**Connected Platforms:** test");
    /* another chat: a session of its own, untitled */
    msg_in(&F, "dm", "dm-bob", "alice", NULL, "/status");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-bob", "Hermes Gateway Status", 0);
    ASSERT_TRUE(strstr(out_text(i), "**Title:**") == NULL);
    ASSERT_TRUE(strstr(out_text(i), sid) == NULL);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    stop_gateway(&F);
}

/* A store that never answers, and one that has ended. */
static void silent_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type == RT_MSG_TIMEOUT) /* the one that ends */
        rt_exit(cx, RT_EXIT_NORMAL);
}
static const rt_actor_type silent_type = {"silent-store", silent_behave, NULL, 0};

/* Without an answer about the title, /status still answers, without the line: no store, a
 * store that has gone, a store that does not answer in time. */
TEST(status_answers_without_the_store)
{
    start_gateway(&F, true);
    gw_target to = {.chat_id = "dm-status"};
    gw_status_reply(F.cx, 0, F.adapter, &to, "sid-1", "HEAD\n", "TAIL");
    int i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-status", "HEAD", 0);
    ASSERT_STR_EQ("HEAD\nTAIL", out_text(i));
    rt_ref gone = rt_spawn(F.cx, &silent_type, NULL, NULL);
    rt_send(F.cx, gone, rt_timeout_new(0));
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    while (rt_is_alive(F.cx, gone) && rt_now_ns(F.rt) < deadline)
        usleep(2000);
    ASSERT_FALSE(rt_is_alive(F.cx, gone));
    gw_status_reply(F.cx, gone, F.adapter, &to, "sid-1", "HEAD\n", "TAIL");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-status", "HEAD", 1);
    ASSERT_STR_EQ("HEAD\nTAIL", out_text(i));
    rt_ref silent = rt_spawn(F.cx, &silent_type, NULL, NULL);
    gw_status_reply(F.cx, silent, F.adapter, &to, "sid-1", "HEAD\n", "TAIL");
    i = wait_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-status", "HEAD", 2); /* after a few s */
    ASSERT_STR_EQ("HEAD\nTAIL", out_text(i));
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(3, count_out(GW_OUT_TEXT, GW_TEXT_NOTICE, "dm-status"));
    rt_stop(F.cx, silent, RT_EXIT_STOPPED);
    stop_gateway(&F);
}

/* /help with skill commands: test_gw_media.c (this fixture keeps only 2 KB of a reply). */
