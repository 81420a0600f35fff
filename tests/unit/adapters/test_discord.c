/*
 * test_discord — the Discord adapter against the Discord double
 * (tests/doubles/discord_double.py, a child process) and the gateway double, on a runtime
 * with a fake clock: heartbeats, reconnects and rate-limit waits move only when the test
 * advances the clock.
 */
#include "adapter_env.h"
#include "discord.h"
#include "gw_double.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_sched.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOKEN  "test-discord-token"
#define BOT_ID "100000000000000001"

/* ================================================================ the double */

typedef struct dd {
    pid_t pid;
    int port;
} dd;

static void nap(void)
{
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static void dd_start(dd *d, const char *dir)
{
    char pf[512], logp[512];
    snprintf(pf, sizeof(pf), "%s/discord.port", dir);
    snprintf(logp, sizeof(logp), "%s/discord_double.log", dir);
    d->pid = fork();
    ASSERT_GE(d->pid, 0);
    if (d->pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl("/usr/bin/python3", "python3", DISCORD_DOUBLE, "--port", "0", "--port-file", pf,
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 3000; i++) {
        FILE *f = fopen(pf, "r");
        if (f) {
            int port = 0;
            int n = fscanf(f, "%d", &port);
            fclose(f);
            if (n == 1 && port > 0) {
                d->port = port;
                return;
            }
        }
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid)
            TEST_FAIL_("the Discord double exited (see %s)", logp);
        nap();
    }
    TEST_FAIL_("the Discord double did not start");
}

static void dd_stop(dd *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        waitpid(d->pid, NULL, 0);
    }
    d->pid = 0;
}

static cJSON *dd_call(dd *d, const char *method, const char *path, const char *body)
{
    hc_resp r;
    if (treq(d->port, method, path, NULL, body, &r) != 0)
        return NULL;
    cJSON *j = r.body ? cJSON_Parse(r.body) : NULL;
    hc_resp_free(&r);
    return j;
}

static void dd_do(dd *d, const char *path, const char *body)
{
    cJSON *j = dd_call(d, "POST", path, body);
    ASSERT_NOT_NULL(j);
    ASSERT_NULL(cJSON_GetObjectItem(j, "error"));
    cJSON_Delete(j);
}

static cJSON *dd_state(dd *d)
{
    cJSON *j = dd_call(d, "GET", "/_test/state", NULL);
    ASSERT_NOT_NULL(j);
    return j;
}

static int n_of(const cJSON *st, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(st, key);
    return cJSON_IsArray(v) ? cJSON_GetArraySize(v) : (int)v->valuedouble;
}

static int count_posts(const cJSON *st, const char *needle)
{
    int n = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(st, "posts"))
    {
        if (strstr(cJSON_GetObjectItem(p, "content")->valuestring, needle))
            n++;
    }
    return n;
}

static const cJSON *find_post(const cJSON *st, const char *needle)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(st, "posts"))
    {
        if (strstr(cJSON_GetObjectItem(p, "content")->valuestring, needle))
            return p;
    }
    return NULL;
}

typedef bool (*st_pred)(const cJSON *st, const void *arg);

static cJSON *dd_wait(dd *d, st_pred pred, const void *arg, const char *what)
{
    for (int i = 0; i < 2000; i++) {
        cJSON *st = dd_state(d);
        if (pred(st, arg))
            return st;
        if (i == 1999) {
            char *txt = cJSON_Print(st);
            fprintf(stderr, "the double's state: %s\n", txt);
            cJSON_free(txt);
        }
        cJSON_Delete(st);
        nap();
    }
    TEST_FAIL_("timed out waiting for %s", what);
    return NULL;
}

static bool has_post(const cJSON *st, const void *needle)
{
    return count_posts(st, needle) > 0;
}

static bool none_open(const cJSON *st, const void *unused)
{
    (void)unused;
    return n_of(st, "open") == 0;
}

typedef struct at_least {
    const char *key;
    int n;
} at_least;

static bool reached(const cJSON *st, const void *arg)
{
    const at_least *a = arg;
    return n_of(st, a->key) >= a->n;
}

static cJSON *dd_wait_n(dd *d, const char *key, int n)
{
    at_least a = {key, n};
    char what[64];
    snprintf(what, sizeof(what), "%d %s", n, key);
    return dd_wait(d, reached, &a, what);
}

/* Move the fake clock in steps until pred holds (a timer armed after an event the test cannot
 * see, such as a dropped socket, fires on a later step). Returns the state (cJSON_Delete). */
static cJSON *dd_advance_until(dd *d, tenv *e, int64_t step_ms, st_pred pred, const void *arg,
                               const char *what)
{
    for (int i = 0; i < 200; i++) {
        ASSERT_OK(rt_wait_quiescent(e->rt, WAIT_MS));
        cJSON *st = dd_state(d);
        if (pred(st, arg))
            return st;
        cJSON_Delete(st);
        tenv_advance_ms(e, step_ms);
        nap();
    }
    TEST_FAIL_("timed out waiting for %s", what);
    return NULL;
}

/* ================================================================ the world */

typedef struct world {
    dd d;
    tenv e;
    rt_ref ref;
    char base[128];
    const char *tmp;
} world;

static void w_init(world *w, const char *config)
{
    memset(w, 0, sizeof(*w));
    w->tmp = test_tmpdir();
    dd_start(&w->d, w->tmp);
    snprintf(w->base, sizeof(w->base), "http://127.0.0.1:%d/api/v10", w->d.port);
    dd_do(&w->d, "/_test/config", config ? config : "{\"heartbeat_interval\":1000}");
    tenv_init(&w->e, true);
}

static int w_start(world *w, discord_opts *o)
{
    o->api_base = w->base;
    o->hermes_home = (char *)w->tmp;
    if (!o->token)
        o->token = TOKEN;
    char err[256];
    return discord_start(w->e.cx, o, 0, &w->ref, err, sizeof(err));
}

static void w_up(world *w, discord_opts *extra)
{
    discord_opts o = {.require_mention = true};
    if (extra)
        o = *extra;
    ASSERT_OK(w_start(w, &o));
    ASSERT_OK(gwd_wait(w->e.gw, GWD_UP, 1, WAIT_MS));
}

static void w_fini(world *w)
{
    if (w->ref)
        rt_stop(w->e.cx, w->ref, RT_EXIT_STOPPED);
    ASSERT_OK(rt_wait_quiescent(w->e.rt, WAIT_MS));
    tenv_fini(&w->e);
    dd_stop(&w->d);
}

static void quiet(world *w)
{
    ASSERT_OK(rt_wait_quiescent(w->e.rt, WAIT_MS));
}

static void dm(world *w, const char *id, const char *text)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"id\":\"%s\",\"channel_id\":\"500\",\"author_id\":\"400\",\"content\":\"%s\"}", id,
             text);
    dd_do(&w->d, "/_test/message", body);
}

/* ================================================================ cases */

TEST(identifies_with_the_message_content_intent)
{
    world w;
    w_init(&w, NULL);
    w_up(&w, &(discord_opts){.home_channel = "777"});
    const gwd_rec *up = gwd_get(w.e.gw, GWD_UP, 0);
    ASSERT_STR_EQ(up->platform, "discord");
    ASSERT_EQ(up->caps.max_message, (size_t)DISCORD_MAX_MESSAGE);
    cJSON *st = dd_state(&w.d);
    ASSERT_EQ(n_of(st, "identifies"), 1);
    const cJSON *id = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "identifies"), 0);
    ASSERT_STR_EQ(cJSON_GetObjectItem(id, "token")->valuestring, TOKEN);
    int intents = (int)cJSON_GetObjectItem(id, "intents")->valuedouble;
    ASSERT_EQ(intents, DISCORD_INTENTS);
    ASSERT_TRUE(intents & (1 << 15)); /* MESSAGE_CONTENT */
    ASSERT_NOT_NULL(cJSON_GetObjectItem(cJSON_GetObjectItem(id, "properties"), "os"));
    const cJSON *req = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "requests"), 0);
    ASSERT_STR_EQ(cJSON_GetObjectItem(req, "auth")->valuestring, "Bot " TOKEN);
    cJSON_Delete(st);
    w_fini(&w);
}

TEST(heartbeats_carry_the_sequence_and_acks_keep_the_session)
{
    world w;
    w_init(&w, NULL);
    w_up(&w, NULL);
    quiet(&w);
    cJSON *st = dd_state(&w.d);
    int n0 = n_of(st, "heartbeats");
    ASSERT_LE(n0, 1); /* the first beat is at a random point (it may precede READY) */
    cJSON_Delete(st);
    tenv_advance_ms(&w.e, 1000);
    st = dd_wait_n(&w.d, "heartbeats", n0 + 1);
    const cJSON *hb = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "heartbeats"), n0);
    ASSERT_EQ((int)cJSON_GetObjectItem(hb, "d")->valuedouble, 1); /* READY was seq 1 */
    cJSON_Delete(st);
    for (int i = 0; i < 3; i++) {
        quiet(&w);
        cJSON *s2 = dd_state(&w.d);
        int n = n_of(s2, "heartbeats");
        cJSON_Delete(s2);
        tenv_advance_ms(&w.e, 1000);
        cJSON_Delete(dd_wait_n(&w.d, "heartbeats", n + 1));
    }
    st = dd_state(&w.d);
    ASSERT_EQ(n_of(st, "connections"), 1); /* every beat was acked: no reconnect */
    cJSON_Delete(st);
    /* op 1: a beat at once */
    quiet(&w);
    st = dd_state(&w.d);
    int n = n_of(st, "heartbeats");
    cJSON_Delete(st);
    dd_do(&w.d, "/_test/op", "{\"op\":1}");
    cJSON_Delete(dd_wait_n(&w.d, "heartbeats", n + 1));
    w_fini(&w);
}

TEST(a_missed_ack_is_a_zombie_and_the_session_is_resumed)
{
    world w;
    w_init(&w, NULL);
    w_up(&w, NULL);
    dd_do(&w.d, "/_test/config", "{\"mute_acks\":true}");
    tenv_advance_ms(&w.e, 1000);
    cJSON_Delete(dd_wait_n(&w.d, "heartbeats", 1));
    quiet(&w);
    tenv_advance_ms(&w.e, 1000); /* the next beat finds no ack */
    cJSON *st = dd_wait_n(&w.d, "resumes", 1);
    const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "resumes"), 0);
    ASSERT_STR_CONTAINS(cJSON_GetObjectItem(r, "session_id")->valuestring, "sess");
    ASSERT_EQ((int)cJSON_GetObjectItem(r, "seq")->valuedouble, 1);
    ASSERT_EQ(n_of(st, "identifies"), 1); /* resumed, not identified again */
    ASSERT_EQ(n_of(st, "connections"), 2);
    cJSON_Delete(st);
    dd_do(&w.d, "/_test/config", "{\"mute_acks\":false}");
    dm(&w, "9001", "after the zombie");
    cJSON_Delete(dd_wait(&w.d, has_post, "Echo: after the zombie", "the reply"));
    ASSERT_EQ(gwd_count(w.e.gw, GWD_UP), 1);
    w_fini(&w);
}

TEST(a_drop_resumes_and_replays_what_was_missed)
{
    world w;
    w_init(&w, NULL);
    w_up(&w, NULL);
    dd_do(&w.d, "/_test/close", "{\"code\":4000}");
    dm(&w, "9101", "sent while away"); /* the double keeps it for the resume */
    cJSON *st = dd_advance_until(&w.d, &w.e, 300, has_post, "Echo: sent while away",
                                 "the replayed message");
    ASSERT_EQ(n_of(st, "resumes"), 1);
    ASSERT_EQ(n_of(st, "identifies"), 1);
    cJSON_Delete(st);
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 1, WAIT_MS));
    ASSERT_STR_EQ(gwd_get(w.e.gw, GWD_EVENT, 0)->message_id, "9101");
    w_fini(&w);
}

TEST(op7_reconnects_and_op9_identifies_again)
{
    world w;
    w_init(&w, NULL);
    w_up(&w, NULL);
    dd_do(&w.d, "/_test/op", "{\"op\":7}");
    cJSON_Delete(dd_wait_n(&w.d, "resumes", 1));
    quiet(&w);
    dd_do(&w.d, "/_test/op", "{\"op\":9,\"d\":false}");
    /* the adapter has read op 9 (it closed the connection) and armed its 1–5 s wait */
    cJSON_Delete(dd_wait(&w.d, none_open, NULL, "the connection closed after op 9"));
    quiet(&w);
    cJSON *st = dd_state(&w.d);
    ASSERT_EQ(n_of(st, "identifies"), 1); /* not before 1–5 s */
    cJSON_Delete(st);
    tenv_advance_ms(&w.e, 5000);
    st = dd_wait_n(&w.d, "identifies", 2);
    ASSERT_EQ(n_of(st, "resumes"), 1);
    cJSON_Delete(st);
    dm(&w, "9201", "new session");
    cJSON_Delete(dd_wait(&w.d, has_post, "Echo: new session", "the reply"));
    w_fini(&w);
}

TEST(close_4004_and_4014_are_fatal)
{
    static const char *const cfg[] = {"{\"heartbeat_interval\":1000}",
                                      "{\"heartbeat_interval\":1000,"
                                      "\"message_content_enabled\":false}"};
    for (int k = 0; k < 2; k++) {
        world w;
        w_init(&w, cfg[k]);
        discord_opts o = {0};
        ASSERT_OK(w_start(&w, &o));
        if (k == 0) { /* 4004: the gateway refuses the session */
            cJSON_Delete(dd_wait_n(&w.d, "identifies", 1));
            dd_do(&w.d, "/_test/close", "{\"code\":4004}");
        }
        quiet(&w);
        tenv_advance_ms(&w.e, 120000);
        quiet(&w);
        cJSON *st = dd_state(&w.d);
        ASSERT_EQ(n_of(st, "connections"), 1); /* never again */
        ASSERT_EQ(n_of(st, "resumes"), 0);
        cJSON_Delete(st);
        if (k == 1)
            ASSERT_EQ(gwd_count(w.e.gw, GWD_UP), 0);
        w_fini(&w);
    }
}

TEST(a_refused_token_is_fatal)
{
    world w;
    w_init(&w, NULL);
    discord_opts o = {.token = "not-the-token"};
    ASSERT_OK(w_start(&w, &o));
    quiet(&w);
    tenv_advance_ms(&w.e, 120000);
    quiet(&w);
    cJSON *st = dd_state(&w.d);
    ASSERT_EQ(n_of(st, "requests"), 1);
    ASSERT_EQ(n_of(st, "connections"), 0);
    cJSON_Delete(st);
    ASSERT_EQ(gwd_count(w.e.gw, GWD_UP), 0);
    w_fini(&w);
}

TEST(dms_are_answered_with_typing)
{
    world w;
    w_init(&w, NULL);
    w_up(&w, NULL);
    dm(&w, "9301", "hi discord");
    cJSON *st = dd_wait(&w.d, has_post, "Echo: hi discord", "the reply");
    const cJSON *p = find_post(st, "Echo: hi discord");
    ASSERT_STR_EQ(cJSON_GetObjectItem(p, "channel_id")->valuestring, "500");
    ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(p, "reply_to"))); /* DMs: no reference */
    const cJSON *am = cJSON_GetObjectItem(p, "allowed_mentions");
    ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(am, "parse")), 0);
    ASSERT_GE(n_of(st, "typing"), 1);
    cJSON_Delete(st);
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 1, WAIT_MS));
    const gwd_rec *ev = gwd_get(w.e.gw, GWD_EVENT, 0);
    ASSERT_STR_EQ(ev->chat_type, "dm");
    ASSERT_STR_EQ(ev->chat_id, "500");
    ASSERT_STR_EQ(ev->user_id, "400");
    ASSERT_STR_EQ(ev->message_id, "9301");
    w_fini(&w);
}

TEST(guilds_need_a_mention_and_threads_are_followed)
{
    world w;
    w_init(&w, NULL);
    w_up(&w, NULL);
    dd_do(&w.d, "/_test/message",
          "{\"id\":\"9401\",\"channel_id\":\"600\",\"guild_id\":\"300\","
          "\"author_id\":\"400\",\"content\":\"chatter\"}");
    dd_do(&w.d, "/_test/message",
          "{\"id\":\"9402\",\"channel_id\":\"600\",\"guild_id\":\"300\",\"author_id\":\"400\","
          "\"content\":\"<@" BOT_ID "> ping\",\"mentions\":[\"" BOT_ID "\"]}");
    cJSON *st = dd_wait(&w.d, has_post, "Echo: ping", "the mention's reply");
    ASSERT_STR_EQ(cJSON_GetObjectItem(find_post(st, "Echo: ping"), "reply_to")->valuestring,
                  "9402");
    cJSON_Delete(st);
    /* a reply to the bot counts as addressing it */
    dd_do(&w.d, "/_test/message",
          "{\"id\":\"9403\",\"channel_id\":\"600\",\"guild_id\":\"300\",\"author_id\":\"400\","
          "\"content\":\"and pong\",\"referenced_author\":\"" BOT_ID "\"}");
    cJSON_Delete(dd_wait(&w.d, has_post, "Echo: and pong", "the reply-to-bot answer"));
    /* a thread: ignored until the bot is mentioned in it, then followed */
    dd_do(&w.d, "/_test/dispatch",
          "{\"t\":\"THREAD_CREATE\",\"d\":{\"id\":\"700\",\"parent_id\":\"600\",\"type\":11,"
          "\"guild_id\":\"300\"}}");
    dd_do(&w.d, "/_test/message",
          "{\"id\":\"9404\",\"channel_id\":\"700\",\"guild_id\":\"300\","
          "\"author_id\":\"400\",\"content\":\"thread talk\"}");
    dd_do(&w.d, "/_test/message",
          "{\"id\":\"9405\",\"channel_id\":\"700\",\"guild_id\":\"300\",\"author_id\":\"400\","
          "\"content\":\"<@!" BOT_ID "> join\"}");
    cJSON_Delete(dd_wait(&w.d, has_post, "Echo: join", "the thread mention's reply"));
    dd_do(&w.d, "/_test/message",
          "{\"id\":\"9406\",\"channel_id\":\"700\",\"guild_id\":\"300\","
          "\"author_id\":\"400\",\"content\":\"follow up\"}");
    /* another bot: ignored */
    dd_do(&w.d, "/_test/message",
          "{\"id\":\"9407\",\"channel_id\":\"500\",\"author_id\":\"401\","
          "\"bot\":true,\"content\":\"beep\"}");
    st = dd_wait(&w.d, has_post, "Echo: follow up", "the thread follow-up reply");
    ASSERT_EQ(count_posts(st, "chatter"), 0);
    ASSERT_EQ(count_posts(st, "thread talk"), 0);
    ASSERT_EQ(count_posts(st, "beep"), 0);
    cJSON_Delete(st);
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 4, WAIT_MS));
    quiet(&w);
    ASSERT_EQ(gwd_count(w.e.gw, GWD_EVENT), 4);
    const gwd_rec *ev = gwd_get(w.e.gw, GWD_EVENT, 0);
    ASSERT_STR_EQ(ev->text, "ping");
    ASSERT_STR_EQ(ev->chat_type, "group");
    ev = gwd_get(w.e.gw, GWD_EVENT, 2);
    ASSERT_STR_EQ(ev->text, "join");
    ASSERT_STR_EQ(ev->chat_type, "thread");
    ASSERT_STR_EQ(ev->chat_id, "600");
    w_fini(&w);
}

TEST(buckets_are_respected_before_any_429)
{
    world w;
    w_init(&w, "{\"heartbeat_interval\":600000,\"limit\":2,\"reset_after\":3.0,"
               "\"manual_reset\":true}");
    w_up(&w, NULL);
    dm(&w, "9501", "bucket"); /* the gateway double answers with four posts */
    cJSON_Delete(dd_wait_n(&w.d, "posts", 2));
    quiet(&w);
    cJSON *st = dd_state(&w.d);
    ASSERT_EQ(n_of(st, "posts"), 2);
    ASSERT_EQ(n_of(st, "rejected"), 0); /* the third waited for the reset */
    cJSON_Delete(st);
    dd_do(&w.d, "/_test/reset_buckets", "{}");
    tenv_advance_ms(&w.e, 3000);
    cJSON_Delete(dd_wait_n(&w.d, "posts", 4));
    quiet(&w);
    st = dd_state(&w.d);
    ASSERT_EQ(n_of(st, "rejected"), 0);
    ASSERT_EQ(count_posts(st, "Echo: bucket"), 1);
    cJSON_Delete(st);
    w_fini(&w);
}

TEST(a_429_waits_retry_after_and_global_limits_hold_everything)
{
    world w;
    w_init(&w, "{\"heartbeat_interval\":600000}");
    w_up(&w, NULL);
    dd_do(&w.d, "/_test/fault", "{\"route\":\"messages\",\"count\":1,\"retry_after\":2.5}");
    dm(&w, "9601", "limited");
    cJSON_Delete(dd_wait_n(&w.d, "requests", 2)); /* gateway/bot + the refused post */
    quiet(&w);
    cJSON *st = dd_state(&w.d);
    ASSERT_EQ(n_of(st, "posts"), 0);
    cJSON_Delete(st);
    tenv_advance_ms(&w.e, 2000);
    quiet(&w);
    st = dd_state(&w.d);
    ASSERT_EQ(n_of(st, "posts"), 0);
    cJSON_Delete(st);
    tenv_advance_ms(&w.e, 600);
    cJSON_Delete(dd_wait(&w.d, has_post, "Echo: limited", "the post after retry_after"));
    /* global */
    quiet(&w);
    dd_do(&w.d, "/_test/fault",
          "{\"route\":\"messages\",\"count\":1,\"retry_after\":1.0,\"global\":true}");
    st = dd_state(&w.d);
    int nreq = n_of(st, "requests");
    cJSON_Delete(st);
    dm(&w, "9602", "global");
    /* the refused post has reached the double before the clock moves */
    cJSON_Delete(dd_wait_n(&w.d, "requests", nreq + 1));
    quiet(&w);
    st = dd_state(&w.d);
    ASSERT_EQ(count_posts(st, "Echo: global"), 0);
    cJSON_Delete(st);
    tenv_advance_ms(&w.e, 1100);
    cJSON_Delete(dd_wait(&w.d, has_post, "Echo: global", "the post after the global limit"));
    w_fini(&w);
}

TEST(long_replies_are_split_at_2000)
{
    world w;
    w_init(&w, "{\"heartbeat_interval\":600000}");
    w_up(&w, NULL);
    char text[2601];
    for (int i = 0; i < 2600; i++)
        text[i] = (i % 10 == 9) ? ' ' : 'a';
    text[2600] = '\0';
    char body[3000];
    snprintf(body, sizeof(body),
             "{\"id\":\"9701\",\"channel_id\":\"500\",\"author_id\":\"400\",\"content\":\"%s\"}",
             text);
    dd_do(&w.d, "/_test/message", body);
    at_least two = {"posts", 5}; /* 3 progress lines + 2 parts */
    cJSON *st = dd_wait(&w.d, reached, &two, "the split reply");
    int parts = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(st, "posts"))
    {
        const char *c = cJSON_GetObjectItem(p, "content")->valuestring;
        ASSERT_LE(strlen(c), 2000u);
        if (strstr(c, "aaaaaaaaa"))
            parts++;
    }
    ASSERT_EQ(parts, 2);
    cJSON_Delete(st);
    w_fini(&w);
}

TEST(attachments_in_and_out)
{
    world w;
    w_init(&w, "{\"heartbeat_interval\":600000}");
    w_up(&w, NULL);
    cJSON *att = dd_call(&w.d, "POST", "/_test/attachment",
                         "{\"name\":\"in.txt\",\"data\":\"inbound bytes\","
                         "\"content_type\":\"text/plain\"}");
    ASSERT_NOT_NULL(att);
    char out_path[512];
    snprintf(out_path, sizeof(out_path), "%s/out.txt", w.tmp);
    FILE *f = fopen(out_path, "w");
    ASSERT_NOT_NULL(f);
    fputs("outbound bytes", f);
    fclose(f);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", "9801");
    cJSON_AddStringToObject(m, "channel_id", "500");
    cJSON_AddStringToObject(m, "author_id", "400");
    char *text = rt_xasprintf("see\nMEDIA:%s", out_path);
    cJSON_AddStringToObject(m, "content", text);
    rt_free(text);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(m, "attachments"), att);
    char *body = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    dd_do(&w.d, "/_test/message", body);
    cJSON_free(body);
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 1, WAIT_MS));
    char cached[600];
    snprintf(cached, sizeof(cached), "%s/cache/discord_9801_0_in.txt", w.tmp);
    f = fopen(cached, "r");
    ASSERT_NOT_NULL(f);
    char buf[64] = "";
    ASSERT_NOT_NULL(fgets(buf, sizeof(buf), f));
    fclose(f);
    ASSERT_STR_EQ(buf, "inbound bytes");
    cJSON *st = NULL;
    for (int i = 0; i < 2000 && !st; i++) {
        cJSON *s = dd_state(&w.d);
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(s, "posts"))
        {
            if (cJSON_GetArraySize(cJSON_GetObjectItem(p, "files")) > 0)
                st = s;
        }
        if (!st) {
            cJSON_Delete(s);
            nap();
        }
    }
    ASSERT_NOT_NULL(st);
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(st, "posts"))
    {
        const cJSON *files = cJSON_GetObjectItem(p, "files");
        if (cJSON_GetArraySize(files) == 0)
            continue;
        const cJSON *f0 = cJSON_GetArrayItem(files, 0);
        ASSERT_STR_EQ(cJSON_GetObjectItem(f0, "filename")->valuestring, "out.txt");
        ASSERT_STR_EQ(cJSON_GetObjectItem(f0, "data")->valuestring, "outbound bytes");
    }
    ASSERT_EQ(count_posts(st, "MEDIA:"), 0);
    cJSON_Delete(st);
    w_fini(&w);
}

TEST(bad_payloads_are_ignored)
{
    world w;
    w_init(&w, "{\"heartbeat_interval\":600000}");
    w_up(&w, NULL);
    dd_do(&w.d, "/_test/dispatch", "{\"t\":\"MESSAGE_CREATE\",\"d\":{\"id\":\"x\"}}");
    dd_do(&w.d, "/_test/dispatch", "{\"t\":\"MESSAGE_CREATE\",\"d\":5}");
    dd_do(&w.d, "/_test/dispatch",
          "{\"t\":\"MESSAGE_CREATE\",\"d\":{\"id\":\"1\",\"channel_id\":\"../x\","
          "\"author\":{\"id\":\"4\"},\"content\":\"evil\"}}");
    dd_do(&w.d, "/_test/op", "{\"op\":99,\"d\":{}}");
    dd_do(&w.d, "/_test/dispatch", "{\"t\":\"THREAD_CREATE\",\"d\":[]}");
    dm(&w, "9901", "still fine");
    cJSON *st = dd_wait(&w.d, has_post, "Echo: still fine", "the reply");
    ASSERT_EQ(count_posts(st, "evil"), 0);
    ASSERT_EQ(n_of(st, "connections"), 1);
    cJSON_Delete(st);
    w_fini(&w);
}

/* The post containing needle went to channel. */
static bool post_in(const cJSON *st, const char *needle, const char *channel)
{
    const cJSON *p = find_post(st, needle);
    return p && strcmp(cJSON_GetObjectItem(p, "channel_id")->valuestring, channel) == 0;
}

TEST(auto_thread_starts_a_thread_and_answers_there)
{
    world w;
    w_init(&w, "{\"heartbeat_interval\":600000}");
    w_up(&w, &(discord_opts){.require_mention = true, .auto_thread = true});
    dd_do(&w.d, "/_test/message",
          "{\"id\":\"9801\",\"channel_id\":\"600\",\"guild_id\":\"300\",\"author_id\":\"400\","
          "\"content\":\"<@" BOT_ID "> plan   the trip\",\"mentions\":[\"" BOT_ID "\"]}");
    cJSON *st = dd_wait(&w.d, has_post, "Echo: plan", "the answer in the thread");
    const cJSON *th = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "threads"), 0);
    ASSERT_NOT_NULL(th);
    ASSERT_STR_EQ(cJSON_GetObjectItem(th, "id")->valuestring, "9801"); /* from the message */
    ASSERT_STR_EQ(cJSON_GetObjectItem(th, "parent_id")->valuestring, "600");
    ASSERT_STR_EQ(cJSON_GetObjectItem(th, "name")->valuestring, "plan the trip");
    ASSERT_TRUE(post_in(st, "Echo: plan", "9801")); /* in the thread */
    ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(find_post(st, "Echo: plan"), "reply_to")));
    cJSON_Delete(st);
    /* a follow-up in the thread needs no mention and keeps the thread's session */
    dd_do(&w.d, "/_test/message",
          "{\"id\":\"9802\",\"channel_id\":\"9801\",\"guild_id\":\"300\","
          "\"author_id\":\"400\",\"content\":\"and the hotel\"}");
    st = dd_wait(&w.d, has_post, "Echo: and the hotel", "the follow-up's answer");
    ASSERT_TRUE(post_in(st, "Echo: and the hotel", "9801"));
    ASSERT_EQ(n_of(st, "threads"), 1); /* no thread in a thread */
    cJSON_Delete(st);
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 2, WAIT_MS));
    for (int i = 0; i < 2; i++) {
        const gwd_rec *ev = gwd_get(w.e.gw, GWD_EVENT, i);
        ASSERT_STR_EQ(ev->chat_type, "thread");
        ASSERT_STR_EQ(ev->chat_id, "600");
    }
    ASSERT_STR_EQ(gwd_get(w.e.gw, GWD_EVENT, 0)->message_id, "9801");
    /* after a restart GUILD_CREATE lists the bot's active threads: still no mention needed,
     * while another's thread still needs one */
    rt_stop(w.e.cx, w.ref, RT_EXIT_STOPPED);
    quiet(&w);
    ASSERT_OK(w_start(&w, &(discord_opts){.require_mention = true, .auto_thread = true}));
    ASSERT_OK(gwd_wait(w.e.gw, GWD_UP, 2, WAIT_MS));
    dd_do(&w.d, "/_test/dispatch",
          "{\"t\":\"GUILD_CREATE\",\"d\":{\"id\":\"300\",\"threads\":["
          "{\"id\":\"9801\",\"parent_id\":\"600\",\"type\":11,\"owner_id\":\"" BOT_ID "\"},"
          "{\"id\":\"9850\",\"parent_id\":\"600\",\"type\":11,\"owner_id\":\"400\"}]}}");
    dd_do(&w.d, "/_test/message",
          "{\"id\":\"9851\",\"channel_id\":\"9850\",\"guild_id\":\"300\","
          "\"author_id\":\"400\",\"content\":\"not yours\"}");
    dd_do(&w.d, "/_test/message",
          "{\"id\":\"9803\",\"channel_id\":\"9801\",\"guild_id\":\"300\","
          "\"author_id\":\"400\",\"content\":\"after the restart\"}");
    st = dd_wait(&w.d, has_post, "Echo: after the restart", "the answer after the restart");
    ASSERT_TRUE(post_in(st, "Echo: after the restart", "9801"));
    ASSERT_EQ(count_posts(st, "not yours"), 0);
    ASSERT_EQ(n_of(st, "threads"), 1);
    cJSON_Delete(st);
    w_fini(&w);
}

TEST(auto_thread_waits_out_a_429_and_falls_back_without_permission)
{
    world w;
    w_init(&w, "{\"heartbeat_interval\":600000}");
    char *free_ch[] = {"650", NULL};
    w_up(&w,
         &(discord_opts){.require_mention = true, .auto_thread = true, .free_channels = free_ch});
    dd_do(&w.d, "/_test/fault", "{\"route\":\"threads\",\"count\":1,\"retry_after\":2.0}");
    dd_do(&w.d, "/_test/message",
          "{\"id\":\"9811\",\"channel_id\":\"600\",\"guild_id\":\"300\",\"author_id\":\"400\","
          "\"content\":\"<@" BOT_ID "> limited\",\"mentions\":[\"" BOT_ID "\"]}");
    cJSON_Delete(dd_wait_n(&w.d, "requests", 2)); /* gateway/bot + the refused thread */
    quiet(&w);
    cJSON *st = dd_state(&w.d);
    ASSERT_EQ(n_of(st, "threads"), 0);
    ASSERT_EQ(n_of(st, "posts"), 0); /* the answer waits for its thread */
    cJSON_Delete(st);
    tenv_advance_ms(&w.e, 1500);
    quiet(&w);
    st = dd_state(&w.d);
    ASSERT_EQ(n_of(st, "threads"), 0); /* retry_after 2 s */
    cJSON_Delete(st);
    tenv_advance_ms(&w.e, 600);
    st = dd_wait(&w.d, has_post, "Echo: limited", "the answer after the 429");
    ASSERT_EQ(n_of(st, "threads"), 1);
    ASSERT_TRUE(post_in(st, "Echo: limited", "9811"));
    cJSON_Delete(st);
    /* a free-response channel: no thread */
    dd_do(&w.d, "/_test/message",
          "{\"id\":\"9812\",\"channel_id\":\"650\",\"guild_id\":\"300\",\"author_id\":\"400\","
          "\"content\":\"open talk\"}");
    st = dd_wait(&w.d, has_post, "Echo: open talk", "the free channel's answer");
    ASSERT_TRUE(post_in(st, "Echo: open talk", "650"));
    ASSERT_EQ(n_of(st, "threads"), 1);
    cJSON_Delete(st);
    /* no Create Public Threads permission: answered in the channel */
    dd_do(&w.d, "/_test/config", "{\"can_create_threads\":false}");
    dd_do(&w.d, "/_test/message",
          "{\"id\":\"9813\",\"channel_id\":\"600\",\"guild_id\":\"300\",\"author_id\":\"400\","
          "\"content\":\"<@" BOT_ID "> no perms\",\"mentions\":[\"" BOT_ID "\"]}");
    st = dd_wait(&w.d, has_post, "Echo: no perms", "the answer in the channel");
    ASSERT_TRUE(post_in(st, "Echo: no perms", "600"));
    ASSERT_STR_EQ(cJSON_GetObjectItem(find_post(st, "Echo: no perms"), "reply_to")->valuestring,
                  "9813");
    cJSON_Delete(st);
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 3, WAIT_MS));
    ASSERT_STR_EQ(gwd_get(w.e.gw, GWD_EVENT, 2)->chat_type, "group");
    w_fini(&w);
}

TEST(pure_helpers)
{
    discord_payload p;
    const char *j = "{\"op\":0,\"s\":42,\"t\":\"READY\",\"d\":{\"session_id\":\"s\"}}";
    ASSERT_OK(discord_payload_parse(j, strlen(j), &p));
    ASSERT_EQ(p.op, 0);
    ASSERT_EQ(p.s, 42);
    ASSERT_STR_EQ(p.t, "READY");
    ASSERT_NOT_NULL(p.d);
    discord_payload_fini(&p);
    j = "{\"op\":11,\"s\":null,\"t\":null,\"d\":null}";
    ASSERT_OK(discord_payload_parse(j, strlen(j), &p));
    ASSERT_EQ(p.s, -1);
    ASSERT_NULL(p.t);
    discord_payload_fini(&p);
    static const char *const bad[] = {"", "x", "[]", "{\"op\":\"1\"}", "{}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_EQ(discord_payload_parse(bad[i], strlen(bad[i]), &p), -EINVAL);
        discord_payload_fini(&p);
    }
    ASSERT_EQ(discord_close_kind(4004), DISCORD_CLOSE_FATAL);
    ASSERT_EQ(discord_close_kind(4014), DISCORD_CLOSE_FATAL);
    ASSERT_EQ(discord_close_kind(4009), DISCORD_CLOSE_NEW_SESSION);
    ASSERT_EQ(discord_close_kind(4000), DISCORD_CLOSE_RESUME);
    ASSERT_EQ(discord_close_kind(1006), DISCORD_CLOSE_RESUME);
    ASSERT_STR_CONTAINS(discord_close_message(4014), "Message Content Intent");
    /* buckets */
    discord_rl *rl = discord_rl_new();
    const char *r = "POST /channels/{id}/messages";
    int64_t s = 1000000000LL;
    ASSERT_EQ(discord_rl_wait(rl, r, "1", 0), 0); /* unknown: go */
    discord_rl_update(rl, r, "1", "B1", 1, 2.0, false, 0, false, 0);
    ASSERT_EQ(discord_rl_wait(rl, r, "1", 0), 0);     /* the last one */
    ASSERT_EQ(discord_rl_wait(rl, r, "1", 0), 2 * s); /* empty until the reset */
    ASSERT_EQ(discord_rl_wait(rl, r, "2", 0), 0);     /* another channel: its own count */
    ASSERT_EQ(discord_rl_wait(rl, r, "1", 2 * s), 0); /* after the reset */
    discord_rl_update(rl, r, "1", "B1", -1, -1, true, 1.5, false, 3 * s);
    ASSERT_EQ(discord_rl_wait(rl, r, "1", 3 * s), (int64_t)(1.5 * s));
    discord_rl_update(rl, r, "1", NULL, -1, -1, true, 4.0, true, 5 * s);
    ASSERT_EQ(discord_rl_wait(rl, "POST /channels/{id}/typing", "9", 5 * s), 4 * s);
    ASSERT_EQ(discord_rl_wait(rl, "POST /channels/{id}/typing", "9", 9 * s), 0);
    discord_rl_free(rl);
    /* thread names */
    static const char *const names[][2] = {
        {"<@" BOT_ID "> hello   world", "hello world"},
        {"<@!" BOT_ID ">", "Hermes"},
        {"", "Hermes"},
        {"a <#123> b <@&9> c", "a b c"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *n = discord_thread_name(names[i][0]);
        ASSERT_STR_EQ(n, names[i][1]);
        rt_free(n);
    }
    char longer[200];
    memset(longer, 'x', 100);
    longer[100] = '\0';
    char *n = discord_thread_name(longer);
    ASSERT_EQ(strlen(n), (size_t)80);
    ASSERT_STR_EQ(n + 77, "...");
    rt_free(n);
    n = discord_thread_name(NULL);
    ASSERT_STR_EQ(n, "Hermes");
    rt_free(n);
}

TEST(drain_sends_what_is_queued_then_ends)
{
    world w;
    w_init(&w, "{\"heartbeat_interval\":600000}");
    w_up(&w, NULL);
    dd_do(&w.d, "/_test/fault", "{\"route\":\"messages\",\"count\":1,\"retry_after\":1.0}");
    dm(&w, "9951", "last words");
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 1, WAIT_MS));
    quiet(&w);
    discord_drain(w.e.cx, w.ref);
    quiet(&w);
    ASSERT_TRUE(rt_is_alive(w.e.cx, w.ref));
    tenv_advance_ms(&w.e, 1100);
    cJSON_Delete(dd_wait(&w.d, has_post, "Echo: last words", "the last reply"));
    ASSERT_OK(gwd_wait(w.e.gw, GWD_DOWN, 1, WAIT_MS));
    quiet(&w);
    ASSERT_FALSE(rt_is_alive(w.e.cx, w.ref));
    cJSON_Delete(dd_wait(&w.d, none_open, NULL, "the socket closed"));
    w.ref = 0;
    w_fini(&w);
}

/* ================================================================ catching up */

/* A message through the double (its id, a snowflake of now, into id). */
static void post_msg(world *w, const char *json, char *id, size_t idlen)
{
    cJSON *j = dd_call(&w->d, "POST", "/_test/message", json);
    ASSERT_NOT_NULL(j);
    const cJSON *v = cJSON_GetObjectItem(j, "id");
    ASSERT_TRUE(cJSON_IsString(v));
    if (id)
        snprintf(id, idlen, "%s", v->valuestring);
    cJSON_Delete(j);
}

static void dm_msg(world *w, const char *text, bool history_only, char *id, size_t idlen)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"channel_id\":\"500\",\"author_id\":\"400\",\"content\":\"%s\"%s}", text,
             history_only ? ",\"history_only\":true" : "");
    post_msg(w, body, id, idlen);
}

static void mention_msg(world *w, const char *channel, const char *text, bool mention,
                        bool history_only, char *id, size_t idlen)
{
    char body[512];
    snprintf(
        body, sizeof(body),
        "{\"channel_id\":\"%s\",\"guild_id\":\"300\",\"author_id\":\"400\",\"content\":\"%s%s\""
        "%s%s}",
        channel, mention ? "<@" BOT_ID "> " : "", text,
        mention ? ",\"mentions\":[\"" BOT_ID "\"]" : "",
        history_only ? ",\"history_only\":true" : "");
    post_msg(w, body, id, idlen);
}

/* Stop the adapter (its positions are written), then start a new one on the same home: a
 * gateway restart. */
static void w_restart(world *w, discord_opts *extra)
{
    rt_stop(w->e.cx, w->ref, RT_EXIT_STOPPED);
    quiet(w);
    int ups = gwd_count(w->e.gw, GWD_UP);
    discord_opts o = {.require_mention = true};
    if (extra)
        o = *extra;
    ASSERT_OK(w_start(w, &o));
    ASSERT_OK(gwd_wait(w->e.gw, GWD_UP, ups + 1, WAIT_MS));
}

static void state_path(const world *w, char *p, size_t n)
{
    snprintf(p, n, "%s/platforms/discord/state.json", w->tmp);
}

static char *read_state(const world *w)
{
    char p[512];
    state_path(w, p, sizeof(p));
    FILE *f = fopen(p, "r");
    if (!f)
        return NULL;
    char *buf = rt_xcalloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void write_state(const world *w, const char *text)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/platforms", w->tmp);
    (void)mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/platforms/discord", w->tmp);
    (void)mkdir(p, 0700);
    state_path(w, p, sizeof(p));
    FILE *f = fopen(p, "w");
    ASSERT_NOT_NULL(f);
    fputs(text, f);
    fclose(f);
}

static int events_with_id(world *w, const char *id)
{
    int n = 0;
    for (int i = 0; i < gwd_count(w->e.gw, GWD_EVENT); i++)
        if (strcmp(gwd_get(w->e.gw, GWD_EVENT, i)->message_id, id) == 0)
            n++;
    return n;
}

static int event_index(world *w, const char *id)
{
    for (int i = 0; i < gwd_count(w->e.gw, GWD_EVENT); i++)
        if (strcmp(gwd_get(w->e.gw, GWD_EVENT, i)->message_id, id) == 0)
            return i;
    return -1;
}

static int reads_of(const cJSON *st, const char *channel, int status)
{
    int n = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(st, "history_reads"))
    {
        const cJSON *s = cJSON_GetObjectItem(r, "status");
        if (strcmp(cJSON_GetObjectItem(r, "channel")->valuestring, channel) == 0 &&
            (status < 0 || (cJSON_IsNumber(s) && (int)s->valuedouble == status)))
            n++;
    }
    return n;
}

TEST(catch_up_helpers)
{
    ASSERT_TRUE(discord_id_ok("1234"));
    ASSERT_FALSE(discord_id_ok(""));
    ASSERT_FALSE(discord_id_ok("12a"));
    ASSERT_FALSE(discord_id_ok("123456789012345678901234567890123"));
    ASSERT_EQ(discord_id_cmp("9", "10"), -1);
    ASSERT_EQ(discord_id_cmp("200", "199"), 1);
    ASSERT_EQ(discord_id_cmp("0042", "42"), 0);
    char s[DISCORD_ID_MAX];
    discord_snowflake_at(DISCORD_EPOCH_MS + 1, s, sizeof(s));
    ASSERT_STR_EQ(s, "4194304");
    discord_snowflake_at(0, s, sizeof(s));
    ASSERT_STR_EQ(s, "0");
    discord_mark m[3];
    memset(m, 0, sizeof(m));
    snprintf(m[0].channel, sizeof(m[0].channel), "500");
    snprintf(m[0].last, sizeof(m[0].last), "1001");
    snprintf(m[1].channel, sizeof(m[1].channel), "700");
    snprintf(m[1].guild, sizeof(m[1].guild), "300");
    snprintf(m[1].parent, sizeof(m[1].parent), "600");
    snprintf(m[1].last, sizeof(m[1].last), "1002");
    /* m[2]: no position, not written */
    snprintf(m[2].channel, sizeof(m[2].channel), "800");
    char *txt = discord_state_format(BOT_ID, m, 3);
    discord_mark back[4];
    size_t n = 0;
    char bot[DISCORD_ID_MAX];
    ASSERT_OK(discord_state_parse(txt, bot, sizeof(bot), back, 4, &n));
    rt_free(txt);
    ASSERT_STR_EQ(bot, BOT_ID);
    ASSERT_EQ(n, (size_t)2);
    ASSERT_STR_EQ(back[1].parent, "600");
    ASSERT_STR_EQ(back[1].guild, "300");
    ASSERT_STR_EQ(back[0].guild, "");
    /* damaged entries are skipped, a damaged file refused */
    ASSERT_OK(discord_state_parse("{\"bot_user\":\"1\",\"channels\":[{\"channel\":\"x\",\"last\":"
                                  "\"1\"},{\"channel\":\"5\"},{\"channel\":\"6\",\"last\":\"7\"},"
                                  "{\"channel\":\"8\",\"last\":\"9\",\"parent\":3}]}",
                                  bot, sizeof(bot), back, 4, &n));
    ASSERT_EQ(n, (size_t)1);
    ASSERT_STR_EQ(back[0].channel, "6");
    ASSERT_EQ(discord_state_parse("{not json", bot, sizeof(bot), back, 4, &n), -EINVAL);
    ASSERT_EQ(discord_state_parse("[]", bot, sizeof(bot), back, 4, &n), -EINVAL);
    ASSERT_EQ(discord_state_parse(NULL, bot, sizeof(bot), back, 4, &n), -EINVAL);
}

TEST(a_restart_catches_up_each_message_once_in_order)
{
    world w;
    w_init(&w, NULL);
    w_up(&w, NULL);
    char a0[40], g0[40];
    dm_msg(&w, "before", false, a0, sizeof(a0));
    mention_msg(&w, "600", "hello", true, false, g0, sizeof(g0));
    cJSON_Delete(dd_wait(&w.d, has_post, "Echo: hello", "the mention's reply"));
    cJSON_Delete(dd_wait(&w.d, has_post, "Echo: before", "the DM's reply"));
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 2, WAIT_MS));
    quiet(&w);
    rt_stop(w.e.cx, w.ref, RT_EXIT_STOPPED);
    quiet(&w);
    cJSON_Delete(dd_wait(&w.d, none_open, NULL, "the socket closed"));
    /* while Hermes is away (the double keeps them for a Resume that never comes) */
    char r1[40], r2[40], r3[40], g1[40], g2[40];
    dm_msg(&w, "away one", false, r1, sizeof(r1));
    mention_msg(&w, "600", "guild one", true, false, g1, sizeof(g1));
    dm_msg(&w, "away two", false, r2, sizeof(r2));
    mention_msg(&w, "600", "chatter", false, false, NULL, 0);
    mention_msg(&w, "600", "guild two", true, false, g2, sizeof(g2));
    dm_msg(&w, "away three", false, r3, sizeof(r3));
    int ups = gwd_count(w.e.gw, GWD_UP);
    discord_opts o = {.require_mention = true};
    ASSERT_OK(w_start(&w, &o));
    ASSERT_OK(gwd_wait(w.e.gw, GWD_UP, ups + 1, WAIT_MS));
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 7, WAIT_MS));
    cJSON *st = dd_wait(&w.d, has_post, "Echo: away three", "the caught-up replies");
    cJSON_Delete(st);
    quiet(&w);
    st = dd_state(&w.d);
    ASSERT_EQ(n_of(st, "identifies"), 2); /* a new session: nothing replayed by Discord */
    ASSERT_EQ(count_posts(st, "Echo: away one"), 1);
    ASSERT_EQ(count_posts(st, "Echo: away two"), 1);
    ASSERT_EQ(count_posts(st, "Echo: away three"), 1);
    ASSERT_EQ(count_posts(st, "Echo: guild one"), 1);
    ASSERT_EQ(count_posts(st, "Echo: guild two"), 1);
    ASSERT_EQ(count_posts(st, "chatter"), 0);
    ASSERT_EQ(count_posts(st, "Echo: before"), 1); /* not again */
    ASSERT_EQ(count_posts(st, "Echo: hello"), 1);
    ASSERT_STR_EQ(cJSON_GetObjectItem(find_post(st, "Echo: guild one"), "reply_to")->valuestring,
                  g1);
    cJSON_Delete(st);
    ASSERT_EQ(gwd_count(w.e.gw, GWD_EVENT), 7);
    const char *ids[] = {r1, r2, r3, g1, g2};
    for (size_t i = 0; i < 5; i++)
        ASSERT_EQ(events_with_id(&w, ids[i]), 1);
    ASSERT_LT(event_index(&w, r1), event_index(&w, r2));
    ASSERT_LT(event_index(&w, r2), event_index(&w, r3));
    ASSERT_LT(event_index(&w, g1), event_index(&w, g2));
    const gwd_rec *ev = gwd_get(w.e.gw, GWD_EVENT, event_index(&w, g1));
    ASSERT_STR_EQ(ev->chat_type, "group"); /* the guild is known although REST omits it */
    ASSERT_STR_EQ(ev->text, "guild one");
    ASSERT_STR_EQ(gwd_get(w.e.gw, GWD_EVENT, event_index(&w, r1))->chat_type, "dm");
    /* the positions are on disk, 0600 */
    rt_stop(w.e.cx, w.ref, RT_EXIT_STOPPED);
    quiet(&w);
    w.ref = 0;
    char sp[512];
    state_path(&w, sp, sizeof(sp));
    struct stat sb;
    ASSERT_OK(stat(sp, &sb));
    ASSERT_EQ(sb.st_mode & 0777, 0600);
    char *txt = read_state(&w);
    ASSERT_NOT_NULL(txt);
    ASSERT_STR_CONTAINS(txt, r3);
    rt_free(txt);
    w_fini(&w);
}

TEST(a_message_seen_live_and_in_history_is_answered_once)
{
    world w;
    w_init(&w, NULL);
    w_up(&w, NULL);
    dm_msg(&w, "first", false, NULL, 0);
    cJSON_Delete(dd_wait(&w.d, has_post, "Echo: first", "the reply"));
    quiet(&w);
    char b[40];
    dm_msg(&w, "twice", true, b, sizeof(b));
    dd_do(&w.d, "/_test/config", "{\"history_delay\":0.5}");
    w_restart(&w, NULL);
    at_least one = {"history_reads", 1};
    cJSON_Delete(dd_wait(&w.d, reached, &one, "the history request"));
    char body[128];
    snprintf(body, sizeof(body), "{\"id\":\"%s\"}", b);
    dd_do(&w.d, "/_test/redeliver", body); /* live while the history is on its way */
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 2, WAIT_MS));
    quiet(&w);
    cJSON *st = dd_state(&w.d);
    ASSERT_EQ(reads_of(st, "500", 200), 1); /* the history came, with it */
    ASSERT_EQ(count_posts(st, "Echo: twice"), 1);
    cJSON_Delete(st);
    ASSERT_EQ(events_with_id(&w, b), 1);
    ASSERT_EQ(gwd_count(w.e.gw, GWD_EVENT), 2);
    w_fini(&w);
}

TEST(catching_up_pages_and_waits_out_a_429)
{
    world w;
    w_init(&w, "{\"heartbeat_interval\":600000}");
    w_up(&w, NULL);
    mention_msg(&w, "600", "start", true, false, NULL, 0);
    cJSON_Delete(dd_wait(&w.d, has_post, "Echo: start", "the reply"));
    quiet(&w);
    rt_stop(w.e.cx, w.ref, RT_EXIT_STOPPED);
    quiet(&w);
    char first[40], mid[40], last[40];
    for (int i = 1; i <= 230; i++) {
        char text[32];
        snprintf(text, sizeof(text), "p%d", i);
        bool m = i == 1 || i == 120 || i == 230;
        mention_msg(&w, "600", text, m, true, i == 1 ? first : i == 120 ? mid : last, 40);
    }
    dd_do(&w.d, "/_test/fault", "{\"route\":\"history\",\"count\":1,\"retry_after\":2.0}");
    int ups = gwd_count(w.e.gw, GWD_UP);
    discord_opts o = {.require_mention = true};
    ASSERT_OK(w_start(&w, &o));
    ASSERT_OK(gwd_wait(w.e.gw, GWD_UP, ups + 1, WAIT_MS));
    at_least one = {"history_reads", 1};
    cJSON_Delete(dd_wait(&w.d, reached, &one, "the first history request"));
    quiet(&w);
    cJSON *st = dd_state(&w.d);
    ASSERT_EQ(reads_of(st, "600", -1), 1); /* the 429: nothing more before retry_after */
    ASSERT_EQ(reads_of(st, "600", 429), 1);
    cJSON_Delete(st);
    tenv_advance_ms(&w.e, 1000);
    quiet(&w);
    st = dd_state(&w.d);
    ASSERT_EQ(reads_of(st, "600", -1), 1);
    cJSON_Delete(st);
    tenv_advance_ms(&w.e, 1100);
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 4, WAIT_MS));
    quiet(&w);
    st = dd_state(&w.d);
    ASSERT_EQ(reads_of(st, "600", 200), 3); /* 100 + 100 + 30 */
    const cJSON *r;
    int k = 0;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(st, "history_reads"))
    {
        const cJSON *q = cJSON_GetObjectItem(r, "query");
        ASSERT_STR_EQ(cJSON_GetObjectItem(q, "limit")->valuestring, "100");
        ASSERT_NOT_NULL(cJSON_GetObjectItem(q, "after"));
        ASSERT_NULL(cJSON_GetObjectItem(q, "before"));
        k++;
    }
    ASSERT_EQ(k, 4);
    ASSERT_EQ(count_posts(st, "Echo: "), 4); /* start, p1, p120, p230: nothing else */
    ASSERT_EQ(count_posts(st, "Echo: p120"), 1);
    ASSERT_EQ(count_posts(st, "Echo: p230"), 1);
    cJSON_Delete(st);
    ASSERT_EQ(gwd_count(w.e.gw, GWD_EVENT), 4);
    ASSERT_EQ(event_index(&w, first), 1);
    ASSERT_EQ(event_index(&w, mid), 2);
    ASSERT_EQ(event_index(&w, last), 3);
    w_fini(&w);
}

TEST(a_channel_the_bot_lost_is_forgotten)
{
    world w;
    w_init(&w, "{\"heartbeat_interval\":600000,\"forbidden\":[\"600\"]}");
    char now[DISCORD_ID_MAX];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    discord_snowflake_at((int64_t)ts.tv_sec * 1000 - 60000, now, sizeof(now));
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"bot_user\":\"" BOT_ID "\",\"channels\":["
             "{\"channel\":\"600\",\"guild\":\"300\",\"last\":\"%s\"},"
             "{\"channel\":\"999\",\"guild\":\"300\",\"last\":\"%s\"},"
             "{\"channel\":\"500\",\"last\":\"%s\"}]}",
             now, now, now);
    write_state(&w, text);
    dm_msg(&w, "while away", true, NULL, 0);
    mention_msg(&w, "600", "unseen", true, true, NULL, 0);
    w_up(&w, NULL);
    cJSON_Delete(dd_wait(&w.d, has_post, "Echo: while away", "the caught-up DM"));
    quiet(&w);
    cJSON *st = dd_state(&w.d);
    ASSERT_EQ(reads_of(st, "600", 403), 1);
    ASSERT_EQ(reads_of(st, "999", 404), 1);
    ASSERT_EQ(count_posts(st, "unseen"), 0);
    cJSON_Delete(st);
    rt_stop(w.e.cx, w.ref, RT_EXIT_STOPPED);
    quiet(&w);
    w.ref = 0;
    char *txt = read_state(&w);
    ASSERT_NOT_NULL(txt);
    ASSERT_STR_CONTAINS(txt, "\"500\"");
    ASSERT_NULL(strstr(txt, "\"600\""));
    ASSERT_NULL(strstr(txt, "\"999\""));
    rt_free(txt);
    w_fini(&w);
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[16384];
static size_t log_len;

static void log_sink(const char *line, size_t len, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&log_mu);
    if (log_len + len + 2 < sizeof(log_buf)) {
        memcpy(log_buf + log_len, line, len);
        log_len += len;
        log_buf[log_len++] = '\n';
        log_buf[log_len] = '\0';
    }
    pthread_mutex_unlock(&log_mu);
}

static bool logged(const char *needle)
{
    pthread_mutex_lock(&log_mu);
    bool r = strstr(log_buf, needle) != NULL;
    pthread_mutex_unlock(&log_mu);
    return r;
}

TEST(a_damaged_state_file_is_ignored_with_a_log_line)
{
    world w;
    w_init(&w, "{\"heartbeat_interval\":600000}");
    write_state(&w, "{\"bot_user\": \"1\", \"channels\": [ {\"chan");
    rt_log_capture(log_sink, NULL);
    w_up(&w, NULL);
    dm_msg(&w, "still here", false, NULL, 0);
    cJSON_Delete(dd_wait(&w.d, has_post, "Echo: still here", "the reply"));
    quiet(&w);
    rt_log_capture(NULL, NULL);
    ASSERT_TRUE(logged("state.json is damaged; starting without catch-up positions"));
    cJSON *st = dd_state(&w.d);
    ASSERT_EQ(n_of(st, "history_reads"), 0);
    cJSON_Delete(st);
    rt_stop(w.e.cx, w.ref, RT_EXIT_STOPPED);
    quiet(&w);
    w.ref = 0;
    char *txt = read_state(&w); /* replaced by good positions */
    ASSERT_NOT_NULL(txt);
    discord_mark m[4];
    size_t n = 0;
    char bot[DISCORD_ID_MAX];
    ASSERT_OK(discord_state_parse(txt, bot, sizeof(bot), m, 4, &n));
    rt_free(txt);
    ASSERT_STR_EQ(bot, BOT_ID);
    ASSERT_EQ(n, (size_t)1);
    ASSERT_STR_EQ(m[0].channel, "500");
    w_fini(&w);
}
