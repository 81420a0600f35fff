/*
 * test_slack — the Slack adapter against the Slack double (tests/doubles/slack_double.py, a
 * child process) and the gateway double (gw_double.h), on a runtime with a fake clock.
 *
 * Each case starts the double, the runtime and the adapter, drives the double through its
 * control endpoints (events, redeliveries, disconnects, faults) and checks what the double
 * saw (acks, Web API calls, posts, uploads) and what the gateway got.
 */
#include "adapter_env.h"
#include "gw_double.h"
#include "rt_alloc.h"
#include "rt_sched.h"
#include "slack.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BOT_TOKEN "xoxb-test-bot-token"
#define APP_TOKEN "xapp-test-app-token"

/* ================================================================ the double */

typedef struct sd {
    pid_t pid;
    int port;
} sd;

static void nap(void)
{
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static void sd_start(sd *d, const char *dir)
{
    char pf[512];
    snprintf(pf, sizeof(pf), "%s/slack.port", dir);
    char logp[512];
    snprintf(logp, sizeof(logp), "%s/slack_double.log", dir);
    d->pid = fork();
    ASSERT_GE(d->pid, 0);
    if (d->pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGTERM); /* a failed case must not leave it behind */
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl("/usr/bin/python3", "python3", SLACK_DOUBLE, "--port", "0", "--port-file", pf,
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 3000; i++) { /* 15 s */
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
            TEST_FAIL_("the Slack double exited (see %s)", logp);
        nap();
    }
    TEST_FAIL_("the Slack double did not start");
}

static void sd_stop(sd *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        waitpid(d->pid, NULL, 0);
    }
    d->pid = 0;
}

static cJSON *sd_call(sd *d, const char *method, const char *path, const char *body)
{
    hc_resp r;
    if (treq(d->port, method, path, NULL, body, &r) != 0)
        return NULL;
    cJSON *j = r.body ? cJSON_Parse(r.body) : NULL;
    hc_resp_free(&r);
    return j;
}

static void sd_do(sd *d, const char *path, const char *body)
{
    cJSON *j = sd_call(d, "POST", path, body);
    ASSERT_NOT_NULL(j);
    ASSERT_NULL(cJSON_GetObjectItem(j, "error"));
    cJSON_Delete(j);
}

/* Send an event; returns the envelope id (rt_free). */
static char *sd_event(sd *d, const char *body)
{
    cJSON *j = sd_call(d, "POST", "/_test/event", body);
    ASSERT_NOT_NULL(j);
    const cJSON *e = cJSON_GetObjectItem(j, "envelope_id");
    ASSERT_TRUE(cJSON_IsString(e));
    char *out = rt_xstrdup(e->valuestring);
    cJSON_Delete(j);
    return out;
}

static cJSON *sd_state(sd *d)
{
    cJSON *j = sd_call(d, "GET", "/_test/state", NULL);
    ASSERT_NOT_NULL(j);
    return j;
}

static int count_calls(const cJSON *st, const char *method, const char *arg, const char *val)
{
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(st, "calls"))
    {
        if (strcmp(cJSON_GetObjectItem(c, "method")->valuestring, method) != 0)
            continue;
        if (arg) {
            const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "args"), arg);
            if (!cJSON_IsString(v) || strcmp(v->valuestring, val) != 0)
                continue;
        }
        n++;
    }
    return n;
}

static int state_int(const cJSON *st, const char *key)
{
    return (int)cJSON_GetObjectItem(st, key)->valuedouble;
}

/* The posts containing needle. */
static int count_posts(const cJSON *st, const char *needle)
{
    int n = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(st, "posts"))
    {
        if (strstr(cJSON_GetObjectItem(p, "text")->valuestring, needle))
            n++;
    }
    return n;
}

static const cJSON *find_post(const cJSON *st, const char *needle)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(st, "posts"))
    {
        if (strstr(cJSON_GetObjectItem(p, "text")->valuestring, needle))
            return p;
    }
    return NULL;
}

typedef bool (*st_pred)(const cJSON *st, const void *arg);

/* Poll the double's state until pred holds (10 s); returns the state (cJSON_Delete). */
static cJSON *sd_wait(sd *d, st_pred pred, const void *arg, const char *what)
{
    for (int i = 0; i < 2000; i++) {
        cJSON *st = sd_state(d);
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

static bool has_call(const cJSON *st, const void *method)
{
    return count_calls(st, method, NULL, NULL) > 0;
}

static bool is_open(const cJSON *st, const void *conns)
{
    return state_int(st, "open") == 1 && state_int(st, "connections") >= *(const int *)conns;
}

static bool none_open(const cJSON *st, const void *unused)
{
    (void)unused;
    return state_int(st, "open") == 0;
}

static bool acked(const cJSON *st, const void *eid)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(st, "acks"))
    {
        if (strcmp(cJSON_GetObjectItem(a, "envelope_id")->valuestring, eid) == 0)
            return true;
    }
    return false;
}

static int ack_count(const cJSON *st, const char *eid)
{
    int n = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(st, "acks"))
    {
        if (strcmp(cJSON_GetObjectItem(a, "envelope_id")->valuestring, eid) == 0)
            n++;
    }
    return n;
}

/* Move the fake clock in steps until pred holds (a timer armed after an event the test cannot
 * see, such as a dropped socket, fires on a later step). Returns the state (cJSON_Delete). */
static cJSON *sd_advance_until(sd *d, tenv *e, int64_t step_ms, st_pred pred, const void *arg,
                               const char *what)
{
    for (int i = 0; i < 200; i++) {
        ASSERT_OK(rt_wait_quiescent(e->rt, WAIT_MS));
        cJSON *st = sd_state(d);
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
    sd d;
    tenv e;
    rt_ref ref;
    char base[128];
    const char *tmp; /* this case's directory (HERMES_HOME) */
} world;

static int w_start_opts(world *w, slack_opts *o, char *err, size_t errlen)
{
    o->api_base = w->base;
    o->hermes_home = (char *)w->tmp;
    return slack_start(w->e.cx, o, 0, &w->ref, err, errlen);
}

static void w_init(world *w)
{
    memset(w, 0, sizeof(*w));
    w->tmp = test_tmpdir();
    sd_start(&w->d, w->tmp); /* before any thread: it forks */
    snprintf(w->base, sizeof(w->base), "http://127.0.0.1:%d/api", w->d.port);
    tenv_init(&w->e, true);
}

/* Start with the right tokens and wait until announced. */
static void w_up(world *w, slack_opts *extra)
{
    slack_opts o = {0};
    if (extra)
        o = *extra;
    else
        o.require_mention = true; /* the configuration's default */
    o.bot_token = BOT_TOKEN;
    o.app_token = APP_TOKEN;
    char err[256] = "";
    ASSERT_OK(w_start_opts(w, &o, err, sizeof(err)));
    ASSERT_OK(gwd_wait(w->e.gw, GWD_UP, 1, WAIT_MS));
}

static void w_fini(world *w)
{
    if (w->ref)
        rt_stop(w->e.cx, w->ref, RT_EXIT_STOPPED);
    ASSERT_OK(rt_wait_quiescent(w->e.rt, WAIT_MS));
    tenv_fini(&w->e);
    sd_stop(&w->d);
}

/* ================================================================ cases */

TEST(connects_and_announces)
{
    world w;
    w_init(&w);
    w_up(&w, &(slack_opts){.home_channel = "C0HOME"});
    const gwd_rec *up = gwd_get(w.e.gw, GWD_UP, 0);
    ASSERT_STR_EQ(up->platform, "slack");
    ASSERT_EQ(up->caps.max_message, (size_t)SLACK_MAX_MESSAGE);
    ASSERT_TRUE(up->caps.markdown);
    cJSON *st = sd_state(&w.d);
    ASSERT_EQ(state_int(st, "hellos"), 1);
    ASSERT_EQ(count_calls(st, "auth.test", NULL, NULL), 1);
    ASSERT_EQ(count_calls(st, "apps.connections.open", NULL, NULL), 1);
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(st, "calls"))
    {
        const char *m = cJSON_GetObjectItem(c, "method")->valuestring;
        const char *tok = cJSON_GetObjectItem(c, "token")->valuestring;
        ASSERT_STR_EQ(tok, strcmp(m, "apps.connections.open") == 0 ? APP_TOKEN : BOT_TOKEN);
    }
    cJSON_Delete(st);
    rt_stop(w.e.cx, w.ref, RT_EXIT_STOPPED);
    ASSERT_OK(gwd_wait(w.e.gw, GWD_DOWN, 1, WAIT_MS)); /* stop says goodbye */
    w.ref = 0;
    w_fini(&w);
}

TEST(dm_is_acked_answered_and_marked)
{
    world w;
    w_init(&w);
    w_up(&w, NULL);
    char *eid = sd_event(&w.d, "{\"event\":{\"type\":\"message\",\"channel\":\"D1\","
                               "\"channel_type\":\"im\",\"user\":\"UALICE\",\"ts\":\"1.000100\","
                               "\"text\":\"hi &amp; hello\"}}");
    cJSON *st = sd_wait(&w.d, has_post, "Echo: hi &amp; hello", "the reply");
    ASSERT_TRUE(acked(st, eid));
    const cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "acks"), 0);
    ASSERT_LT(cJSON_GetObjectItem(a, "delay_ms")->valuedouble, 3000.0);
    const cJSON *p = find_post(st, "Echo: hi");
    ASSERT_STR_EQ(cJSON_GetObjectItem(p, "channel")->valuestring, "D1");
    ASSERT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(p, "thread_ts"))); /* top-level DM */
    ASSERT_EQ(count_calls(st, "reactions.add", "name", "eyes"), 1);
    cJSON_Delete(st);
    st = sd_wait(&w.d, has_call, "reactions.remove", "the reaction removed");
    cJSON_Delete(st);
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 1, WAIT_MS));
    const gwd_rec *ev = gwd_get(w.e.gw, GWD_EVENT, 0);
    ASSERT_STR_EQ(ev->platform, "slack");
    ASSERT_STR_EQ(ev->chat_type, "dm");
    ASSERT_STR_EQ(ev->chat_id, "D1");
    ASSERT_STR_EQ(ev->user_id, "UALICE");
    ASSERT_STR_EQ(ev->text, "hi & hello"); /* Slack's escaping undone */
    ASSERT_STR_EQ(ev->message_id, "D1:1.000100");
    rt_free(eid);
    w_fini(&w);
}

TEST(channels_need_a_mention_or_the_bots_thread)
{
    world w;
    w_init(&w);
    w_up(&w, NULL);
    /* no mention: ignored (but acked) */
    char *e1 = sd_event(&w.d, "{\"event\":{\"type\":\"message\",\"channel\":\"C1\","
                              "\"channel_type\":\"channel\",\"user\":\"UALICE\","
                              "\"ts\":\"2.000001\",\"text\":\"chatter\"}}");
    /* a mention arrives twice: as message and as app_mention */
    sd_do(&w.d, "/_test/event",
          "{\"event\":{\"type\":\"message\",\"channel\":\"C1\",\"channel_type\":\"channel\","
          "\"user\":\"UALICE\",\"ts\":\"2.000002\",\"text\":\"<@UBOT> what time\"}}");
    sd_do(&w.d, "/_test/event",
          "{\"event\":{\"type\":\"app_mention\",\"channel\":\"C1\",\"user\":\"UALICE\","
          "\"ts\":\"2.000002\",\"text\":\"<@UBOT> what time\"}}");
    cJSON *st = sd_wait(&w.d, has_post, "Echo: what time", "the reply to the mention");
    ASSERT_TRUE(acked(st, e1));
    const cJSON *p = find_post(st, "Echo: what time");
    ASSERT_STR_EQ(cJSON_GetObjectItem(p, "thread_ts")->valuestring, "2.000002");
    cJSON_Delete(st);
    /* a reply in that thread, no mention: the bot is in it */
    sd_do(&w.d, "/_test/event",
          "{\"event\":{\"type\":\"message\",\"channel\":\"C1\",\"channel_type\":\"channel\","
          "\"user\":\"UALICE\",\"ts\":\"2.000003\",\"thread_ts\":\"2.000002\","
          "\"text\":\"and the date\"}}");
    st = sd_wait(&w.d, has_post, "Echo: and the date", "the thread reply");
    cJSON_Delete(st);
    /* another thread without the bot: ignored; a bot's message: ignored */
    sd_do(&w.d, "/_test/event",
          "{\"event\":{\"type\":\"message\",\"channel\":\"C1\",\"channel_type\":\"channel\","
          "\"user\":\"UBOB\",\"ts\":\"2.000005\",\"thread_ts\":\"2.000004\","
          "\"text\":\"not for you\"}}");
    sd_do(&w.d, "/_test/event",
          "{\"event\":{\"type\":\"message\",\"channel\":\"D1\",\"channel_type\":\"im\","
          "\"user\":\"UOTHERBOT\",\"bot_id\":\"B9\",\"subtype\":\"bot_message\","
          "\"ts\":\"2.000006\",\"text\":\"beep\"}}");
    /* an edit is not a new message */
    sd_do(&w.d, "/_test/event",
          "{\"event\":{\"type\":\"message\",\"subtype\":\"message_changed\",\"channel\":\"D1\","
          "\"channel_type\":\"im\",\"ts\":\"2.000007\",\"message\":{\"text\":\"x\"}}}");
    /* a marker DM proves everything before it was handled */
    sd_do(&w.d, "/_test/event",
          "{\"event\":{\"type\":\"message\",\"channel\":\"D1\",\"channel_type\":\"im\","
          "\"user\":\"UALICE\",\"ts\":\"2.000008\",\"text\":\"marker\"}}");
    st = sd_wait(&w.d, has_post, "Echo: marker", "the marker");
    ASSERT_EQ(count_posts(st, "Echo: what time"), 1);
    ASSERT_EQ(count_calls(st, "users.info", "user", "UALICE"), 1); /* the name is remembered */
    ASSERT_EQ(count_posts(st, "chatter"), 0);
    ASSERT_EQ(count_posts(st, "not for you"), 0);
    ASSERT_EQ(count_posts(st, "beep"), 0);
    cJSON_Delete(st);
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 3, WAIT_MS));
    ASSERT_EQ(gwd_count(w.e.gw, GWD_EVENT), 3);
    const gwd_rec *ev = gwd_get(w.e.gw, GWD_EVENT, 0);
    ASSERT_STR_EQ(ev->text, "what time"); /* the mention removed */
    ASSERT_STR_EQ(ev->chat_type, "group");
    ASSERT_STR_EQ(ev->message_id, "C1:2.000002");
    rt_free(e1);
    w_fini(&w);
}

TEST(free_channels_and_require_mention_off)
{
    world w;
    w_init(&w);
    char *free_ch[] = {"CFREE", NULL};
    w_up(&w, &(slack_opts){.require_mention = true, .free_channels = free_ch});
    sd_do(&w.d, "/_test/event",
          "{\"event\":{\"type\":\"message\",\"channel\":\"CFREE\",\"channel_type\":\"channel\","
          "\"user\":\"UALICE\",\"ts\":\"3.000001\",\"text\":\"open talk\"}}");
    cJSON *st = sd_wait(&w.d, has_post, "Echo: open talk", "the free-channel reply");
    cJSON_Delete(st);
    w_fini(&w);
}

TEST(redelivered_envelopes_are_answered_once)
{
    world w;
    w_init(&w);
    w_up(&w, NULL);
    char *eid = sd_event(&w.d, "{\"event\":{\"type\":\"message\",\"channel\":\"D1\","
                               "\"channel_type\":\"im\",\"user\":\"UALICE\","
                               "\"ts\":\"4.000001\",\"text\":\"once\"},\"event_id\":\"Ev1\"}");
    char body[256];
    snprintf(body, sizeof(body), "{\"envelope_id\":\"%s\"}", eid);
    sd_do(&w.d, "/_test/resend", body);
    /* Slack's retry of the same event: a new envelope, retry_attempt 1 */
    char *eid2 = sd_event(&w.d, "{\"event\":{\"type\":\"message\",\"channel\":\"D1\","
                                "\"channel_type\":\"im\",\"user\":\"UALICE\","
                                "\"ts\":\"4.000001\",\"text\":\"once\"},\"event_id\":\"Ev1\","
                                "\"retry_attempt\":1}");
    sd_do(&w.d, "/_test/event",
          "{\"event\":{\"type\":\"message\",\"channel\":\"D1\",\"channel_type\":\"im\","
          "\"user\":\"UALICE\",\"ts\":\"4.000002\",\"text\":\"marker\"}}");
    cJSON *st = sd_wait(&w.d, has_post, "Echo: marker", "the marker");
    ASSERT_EQ(ack_count(st, eid), 2); /* every delivery is acked */
    ASSERT_TRUE(acked(st, eid2));
    ASSERT_EQ(count_posts(st, "Echo: once"), 1);
    cJSON_Delete(st);
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 2, WAIT_MS));
    ASSERT_EQ(gwd_count(w.e.gw, GWD_EVENT), 2);
    rt_free(eid);
    rt_free(eid2);
    w_fini(&w);
}

TEST(disconnect_reconnects_with_a_fresh_url)
{
    world w;
    w_init(&w);
    w_up(&w, NULL);
    sd_do(&w.d, "/_test/disconnect", "{\"reason\":\"refresh_requested\",\"close_after\":5}");
    int two = 2;
    cJSON *st = sd_wait(&w.d, is_open, &two, "the second connection");
    ASSERT_EQ(count_calls(st, "apps.connections.open", NULL, NULL), 2);
    ASSERT_EQ(count_calls(st, "auth.test", NULL, NULL), 1); /* no need to re-authenticate */
    cJSON_Delete(st);
    sd_do(&w.d, "/_test/event",
          "{\"event\":{\"type\":\"message\",\"channel\":\"D1\",\"channel_type\":\"im\","
          "\"user\":\"UALICE\",\"ts\":\"5.000001\",\"text\":\"after refresh\"}}");
    st = sd_wait(&w.d, has_post, "Echo: after refresh", "the reply on the new connection");
    cJSON_Delete(st);
    ASSERT_EQ(gwd_count(w.e.gw, GWD_UP), 1); /* announced once */
    w_fini(&w);
}

TEST(a_dropped_socket_reconnects_after_backoff)
{
    world w;
    w_init(&w);
    w_up(&w, NULL);
    sd_do(&w.d, "/_test/drop", "{}");
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    cJSON *st = sd_state(&w.d);
    ASSERT_EQ(count_calls(st, "auth.test", NULL, NULL), 1); /* not at once: after a backoff */
    cJSON_Delete(st);
    int two = 2;
    st = sd_advance_until(&w.d, &w.e, 300, is_open, &two, "the reconnection");
    ASSERT_EQ(count_calls(st, "auth.test", NULL, NULL), 2);
    cJSON_Delete(st);
    w_fini(&w);
}

TEST(rate_limits_are_per_method)
{
    world w;
    w_init(&w);
    w_up(&w, NULL);
    sd_do(&w.d, "/_test/fault",
          "{\"method\":\"chat.postMessage\",\"status\":429,\"retry_after\":3,\"count\":1}");
    sd_do(&w.d, "/_test/event",
          "{\"event\":{\"type\":\"message\",\"channel\":\"D1\",\"channel_type\":\"im\","
          "\"user\":\"UALICE\",\"ts\":\"6.000001\",\"text\":\"limited\"}}");
    cJSON *st = sd_wait(&w.d, has_call, "chat.postMessage", "the first post");
    cJSON_Delete(st);
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    st = sd_state(&w.d);
    ASSERT_EQ(count_calls(st, "chat.postMessage", NULL, NULL), 1);
    ASSERT_EQ(count_posts(st, "Echo"), 0);
    ASSERT_EQ(count_calls(st, "reactions.add", "name", "eyes"), 1);
    cJSON_Delete(st);
    /* another method is not held back by chat.postMessage's limit */
    sd_do(&w.d, "/_test/event",
          "{\"event\":{\"type\":\"message\",\"channel\":\"D2\",\"channel_type\":\"im\","
          "\"user\":\"UBOB\",\"ts\":\"6.000002\",\"text\":\"second\"}}");
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 2, WAIT_MS));
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    st = sd_state(&w.d);
    ASSERT_EQ(count_calls(st, "reactions.add", "name", "eyes"), 2);
    ASSERT_EQ(count_calls(st, "chat.postMessage", NULL, NULL), 1);
    cJSON_Delete(st);
    tenv_advance_ms(&w.e, 2000);
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    st = sd_state(&w.d);
    ASSERT_EQ(count_calls(st, "chat.postMessage", NULL, NULL), 1); /* Retry-After: 3 s */
    cJSON_Delete(st);
    tenv_advance_ms(&w.e, 1100);
    st = sd_wait(&w.d, has_post, "Echo: second", "the posts after Retry-After");
    ASSERT_EQ(count_posts(st, "Echo: limited"), 1); /* in order, none lost */
    cJSON_Delete(st);
    w_fini(&w);
}

TEST(a_refused_bot_token_is_fatal)
{
    world w;
    w_init(&w);
    slack_opts o = {.bot_token = "xoxb-wrong", .app_token = APP_TOKEN};
    char err[256];
    ASSERT_OK(w_start_opts(&w, &o, err, sizeof(err)));
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    cJSON *st = sd_state(&w.d);
    ASSERT_EQ(count_calls(st, "auth.test", NULL, NULL), 1);
    ASSERT_EQ(count_calls(st, "apps.connections.open", NULL, NULL), 0);
    cJSON_Delete(st);
    tenv_advance_ms(&w.e, 120000); /* no retry */
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    st = sd_state(&w.d);
    ASSERT_EQ(count_calls(st, "auth.test", NULL, NULL), 1);
    cJSON_Delete(st);
    ASSERT_EQ(gwd_count(w.e.gw, GWD_UP), 0);
    w_fini(&w);
}

TEST(a_wrong_app_token_is_fatal)
{
    world w;
    w_init(&w);
    slack_opts o = {.bot_token = BOT_TOKEN, .app_token = "xapp-wrong"};
    char err[256];
    ASSERT_OK(w_start_opts(&w, &o, err, sizeof(err)));
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    tenv_advance_ms(&w.e, 120000);
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    cJSON *st = sd_state(&w.d);
    ASSERT_EQ(count_calls(st, "apps.connections.open", NULL, NULL), 1);
    ASSERT_EQ(state_int(st, "connections"), 0);
    cJSON_Delete(st);
    ASSERT_EQ(gwd_count(w.e.gw, GWD_UP), 0);
    w_fini(&w);
}

TEST(files_in_and_out)
{
    world w;
    w_init(&w);
    w_up(&w, NULL);
    cJSON *file = sd_call(&w.d, "POST", "/_test/file",
                          "{\"name\":\"notes.txt\",\"data\":\"hello file\","
                          "\"mimetype\":\"text/plain\"}");
    ASSERT_NOT_NULL(file);
    char out_path[512];
    snprintf(out_path, sizeof(out_path), "%s/report.txt", w.tmp);
    FILE *f = fopen(out_path, "w");
    ASSERT_NOT_NULL(f);
    fputs("report body", f);
    fclose(f);
    cJSON *ev = cJSON_Parse("{\"event\":{\"type\":\"message\",\"subtype\":\"file_share\","
                            "\"channel\":\"D1\",\"channel_type\":\"im\",\"user\":\"UALICE\","
                            "\"ts\":\"7.000001\"}}");
    cJSON *e = cJSON_GetObjectItem(ev, "event");
    char *text = rt_xasprintf("see\nMEDIA:%s", out_path);
    cJSON_AddStringToObject(e, "text", text);
    rt_free(text);
    cJSON *files = cJSON_AddArrayToObject(e, "files");
    cJSON_AddItemToArray(files, file);
    char *body = cJSON_PrintUnformatted(ev);
    cJSON_Delete(ev);
    sd_do(&w.d, "/_test/event", body);
    cJSON_free(body);
    /* in: the file is in the cache with what the server had */
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 1, WAIT_MS));
    char cached[600];
    snprintf(cached, sizeof(cached), "%s/cache/slack_7.000001_0_notes.txt", w.tmp);
    f = fopen(cached, "r");
    ASSERT_NOT_NULL(f);
    char buf[64] = "";
    ASSERT_NOT_NULL(fgets(buf, sizeof(buf), f));
    fclose(f);
    ASSERT_STR_EQ(buf, "hello file");
    /* out: the echo names MEDIA:<path> alone on a line: uploaded, not posted as text */
    cJSON *st = sd_wait(&w.d, has_call, "files.completeUploadExternal", "the upload");
    const cJSON *up = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "uploads"), 0);
    ASSERT_NOT_NULL(up);
    ASSERT_STR_EQ(cJSON_GetObjectItem(up, "filename")->valuestring, "report.txt");
    ASSERT_STR_EQ(cJSON_GetObjectItem(up, "data")->valuestring, "report body");
    ASSERT_STR_EQ(cJSON_GetObjectItem(up, "channel_id")->valuestring, "D1");
    ASSERT_EQ(count_posts(st, "MEDIA:"), 0);
    ASSERT_EQ(count_posts(st, "Echo: see"), 1);
    cJSON_Delete(st);
    w_fini(&w);
}

TEST(bad_frames_are_ignored)
{
    world w;
    w_init(&w);
    w_up(&w, NULL);
    static const char *const bad[] = {
        "{\"text\":\"garbage\"}",
        "not json",
        "{\"type\":\"events_api\",\"envelope_id\":\"x\\\"y\",\"payload\":7}",
        ("{\"type\":\"events_api\",\"envelope_id\":\"bad1\",\"payload\":{\"event\":"
         "{\"type\":\"message\"}}}"),
        "{\"type\":\"slash_commands\",\"envelope_id\":\"sc1\",\"payload\":{}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "text", bad[i]);
        char *body = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        sd_do(&w.d, "/_test/raw", body);
        cJSON_free(body);
    }
    sd_do(&w.d, "/_test/event",
          "{\"event\":{\"type\":\"message\",\"channel\":\"D1\",\"channel_type\":\"im\","
          "\"user\":\"UALICE\",\"ts\":\"8.000001\",\"text\":\"still here\"}}");
    cJSON *st = sd_wait(&w.d, has_post, "Echo: still here", "the reply after garbage");
    ASSERT_EQ(state_int(st, "connections"), 1); /* the connection survived */
    cJSON_Delete(st);
    ASSERT_EQ(gwd_count(w.e.gw, GWD_EVENT), 1);
    w_fini(&w);
}

TEST(start_rejects_bad_options)
{
    tenv e;
    tenv_init(&e, false);
    rt_ref ref = 0;
    char err[256] = "";
    slack_opts o = {.bot_token = BOT_TOKEN};
    ASSERT_EQ(slack_start(e.cx, &o, 0, &ref, err, sizeof(err)), -EINVAL);
    ASSERT_STR_CONTAINS(err, "SLACK_APP_TOKEN");
    ASSERT_EQ(slack_start(e.cx, NULL, 0, &ref, err, sizeof(err)), -EINVAL);
    ASSERT_EQ(ref, 0u);
    tenv_fini(&e);
}

TEST(drain_sends_what_is_queued_then_ends)
{
    world w;
    w_init(&w);
    w_up(&w, NULL);
    sd_do(&w.d, "/_test/fault",
          "{\"method\":\"chat.postMessage\",\"status\":429,\"retry_after\":1,\"count\":1}");
    sd_do(&w.d, "/_test/event",
          "{\"event\":{\"type\":\"message\",\"channel\":\"D1\",\"channel_type\":\"im\","
          "\"user\":\"UALICE\",\"ts\":\"9.000001\",\"text\":\"last words\"}}");
    ASSERT_OK(gwd_wait(w.e.gw, GWD_EVENT, 1, WAIT_MS));
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS)); /* the replies wait for the limit */
    slack_drain(w.e.cx, w.ref);
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    ASSERT_TRUE(rt_is_alive(w.e.cx, w.ref));                         /* still sending */
    cJSON *st = sd_wait(&w.d, none_open, NULL, "the socket closed"); /* no longer listening */
    cJSON_Delete(st);
    tenv_advance_ms(&w.e, 1100);
    st = sd_wait(&w.d, has_post, "Echo: last words", "the last reply");
    cJSON_Delete(st);
    ASSERT_OK(gwd_wait(w.e.gw, GWD_DOWN, 1, WAIT_MS));
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    ASSERT_FALSE(rt_is_alive(w.e.cx, w.ref));
    w.ref = 0;
    w_fini(&w);
}

/* ================================================================ catching up */

/* A message posted in Slack (into the history; delivered live when a socket is open).
 * Returns whether it was delivered live. */
static bool sd_post(sd *d, const char *channel, const char *type, const char *user,
                    const char *text, const char *thread_ts)
{
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "type", "message");
    cJSON_AddStringToObject(ev, "channel", channel);
    cJSON_AddStringToObject(ev, "channel_type", type);
    cJSON_AddStringToObject(ev, "user", user);
    cJSON_AddStringToObject(ev, "text", text);
    if (thread_ts)
        cJSON_AddStringToObject(ev, "thread_ts", thread_ts);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddItemToObject(b, "event", ev);
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    cJSON *j = sd_call(d, "POST", "/_test/post", body);
    cJSON_free(body);
    ASSERT_NOT_NULL(j);
    bool live = cJSON_IsTrue(cJSON_GetObjectItem(j, "delivered"));
    cJSON_Delete(j);
    return live;
}

/* A call of method whose args have key (cursor…). */
static int count_calls_with(const cJSON *st, const char *method, const char *key)
{
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(st, "calls"))
    {
        if (strcmp(cJSON_GetObjectItem(c, "method")->valuestring, method) == 0 &&
            cJSON_GetObjectItem(cJSON_GetObjectItem(c, "args"), key))
            n++;
    }
    return n;
}

static int post_index(const cJSON *st, const char *needle)
{
    int i = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(st, "posts"))
    {
        if (strstr(cJSON_GetObjectItem(p, "text")->valuestring, needle))
            return i;
        i++;
    }
    return -1;
}

static void w_restart(world *w, slack_opts *o)
{
    rt_stop(w->e.cx, w->ref, RT_EXIT_STOPPED);
    ASSERT_OK(rt_wait_quiescent(w->e.rt, WAIT_MS));
    int ups = gwd_count(w->e.gw, GWD_UP);
    o->bot_token = BOT_TOKEN;
    o->app_token = APP_TOKEN;
    char err[256] = "";
    ASSERT_OK(w_start_opts(w, o, err, sizeof(err)));
    ASSERT_OK(gwd_wait(w->e.gw, GWD_UP, ups + 1, WAIT_MS));
}

TEST(a_restart_catches_up_channels_dms_and_threads)
{
    world w;
    w_init(&w);
    w_up(&w, NULL);
    ASSERT_TRUE(sd_post(&w.d, "D1", "im", "UALICE", "first", NULL));
    ASSERT_TRUE(sd_post(&w.d, "C1", "channel", "UALICE", "<@UBOT> start a thread", NULL));
    cJSON *st = sd_wait(&w.d, has_post, "Echo: start a thread", "the thread's first answer");
    char *root = rt_xstrdup(
        cJSON_GetObjectItem(find_post(st, "Echo: start a thread"), "thread_ts")->valuestring);
    cJSON_Delete(st);
    cJSON_Delete(sd_wait(&w.d, has_post, "Echo: first", "the DM's answer"));
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    /* stopped: what is posted now reaches no one */
    rt_stop(w.e.cx, w.ref, RT_EXIT_STOPPED);
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    char path[600];
    snprintf(path, sizeof(path), "%s/platforms/slack/state.json", w.tmp);
    struct stat sb;
    ASSERT_OK(stat(path, &sb));
    ASSERT_EQ(sb.st_mode & 0777, 0600u);
    ASSERT_FALSE(sd_post(&w.d, "D1", "im", "UALICE", "away one", NULL));
    ASSERT_FALSE(sd_post(&w.d, "C1", "channel", "UBOB", "away chatter", NULL));
    ASSERT_FALSE(sd_post(&w.d, "C1", "channel", "UBOB", "<@UBOT> away mention", NULL));
    ASSERT_FALSE(sd_post(&w.d, "C1", "channel", "UALICE", "away in the thread", root));
    ASSERT_FALSE(sd_post(&w.d, "D1", "im", "UALICE", "away two", NULL));
    int ups = gwd_count(w.e.gw, GWD_UP);
    slack_opts o = {.require_mention = true, .bot_token = BOT_TOKEN, .app_token = APP_TOKEN};
    char err[256] = "";
    ASSERT_OK(w_start_opts(&w, &o, err, sizeof(err)));
    ASSERT_OK(gwd_wait(w.e.gw, GWD_UP, ups + 1, WAIT_MS));
    st = sd_wait(&w.d, has_post, "Echo: away two", "the DMs caught up");
    cJSON_Delete(st);
    st = sd_wait(&w.d, has_post, "Echo: away in the thread", "the thread caught up");
    cJSON_Delete(st);
    st = sd_wait(&w.d, has_post, "Echo: away mention", "the mention caught up");
    ASSERT_EQ(count_posts(st, "Echo: first"), 1);
    ASSERT_EQ(count_posts(st, "Echo: start a thread"), 1);
    ASSERT_EQ(count_posts(st, "Echo: away one"), 1);
    ASSERT_EQ(count_posts(st, "Echo: away two"), 1);
    ASSERT_EQ(count_posts(st, "Echo: away in the thread"), 1);
    ASSERT_EQ(count_posts(st, "chatter"), 0); /* the rules hold for history too */
    ASSERT_LT(post_index(st, "Echo: away one"), post_index(st, "Echo: away two"));
    ASSERT_STR_EQ(
        cJSON_GetObjectItem(find_post(st, "Echo: away in the thread"), "thread_ts")->valuestring,
        root);
    ASSERT_GE(count_calls(st, "conversations.replies", "ts", root), 1);
    cJSON_Delete(st);
    rt_free(root);
    w_fini(&w);
}

TEST(an_outage_is_caught_up_a_429_waited_out_and_nothing_answered_twice)
{
    world w;
    w_init(&w);
    w_up(&w, NULL);
    ASSERT_TRUE(sd_post(&w.d, "D1", "im", "UALICE", "before", NULL));
    cJSON_Delete(sd_wait(&w.d, has_post, "Echo: before", "the first answer"));
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    sd_do(&w.d, "/_test/drop", "{}");
    cJSON_Delete(sd_wait(&w.d, none_open, NULL, "the socket dropped"));
    ASSERT_FALSE(sd_post(&w.d, "D1", "im", "UALICE", "during the outage", NULL));
    sd_do(&w.d, "/_test/fault",
          "{\"method\":\"conversations.history\",\"status\":429,\"retry_after\":2,\"count\":1}");
    int two = 2;
    cJSON_Delete(sd_advance_until(&w.d, &w.e, 300, is_open, &two, "the reconnection"));
    cJSON_Delete(sd_wait(&w.d, has_call, "conversations.history", "the refused history call"));
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    /* live while catching up: seen live now, and again in the history later */
    ASSERT_TRUE(sd_post(&w.d, "D1", "im", "UALICE", "live and in history", NULL));
    cJSON *st = sd_wait(&w.d, has_post, "Echo: live and in history", "the live answer");
    ASSERT_EQ(count_calls(st, "conversations.history", NULL, NULL), 1); /* Retry-After: 2 s */
    ASSERT_EQ(count_posts(st, "Echo: during the outage"), 0);
    cJSON_Delete(st);
    tenv_advance_ms(&w.e, 1500);
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    st = sd_state(&w.d);
    ASSERT_EQ(count_calls(st, "conversations.history", NULL, NULL), 1);
    cJSON_Delete(st);
    tenv_advance_ms(&w.e, 600);
    cJSON_Delete(sd_wait(&w.d, has_post, "Echo: during the outage", "the outage caught up"));
    ASSERT_TRUE(sd_post(&w.d, "D1", "im", "UALICE", "marker", NULL));
    st = sd_wait(&w.d, has_post, "Echo: marker", "the marker");
    ASSERT_EQ(count_calls(st, "conversations.history", NULL, NULL), 2);
    ASSERT_EQ(count_posts(st, "Echo: before"), 1);
    ASSERT_EQ(count_posts(st, "Echo: during the outage"), 1);
    ASSERT_EQ(count_posts(st, "Echo: live and in history"), 1);
    cJSON_Delete(st);
    w_fini(&w);
}

TEST(history_is_read_page_by_page_up_to_the_cap)
{
    world w;
    w_init(&w);
    slack_opts o = {.require_mention = true, .catchup_pages = 3, .catchup_page_size = 2};
    w_up(&w, &o);
    ASSERT_TRUE(sd_post(&w.d, "D1", "im", "UALICE", "hello", NULL));
    cJSON_Delete(sd_wait(&w.d, has_post, "Echo: hello", "the first answer"));
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    rt_stop(w.e.cx, w.ref, RT_EXIT_STOPPED);
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    static const char *const five[] = {"p-one", "p-two", "p-three", "p-four", "p-five"};
    for (size_t i = 0; i < 5; i++)
        ASSERT_FALSE(sd_post(&w.d, "D1", "im", "UALICE", five[i], NULL));
    w_restart(&w, &o);
    cJSON *st = sd_wait(&w.d, has_post, "Echo: p-five", "the last page");
    cJSON_Delete(st);
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    st = sd_state(&w.d);
    for (size_t i = 0; i < 5; i++) {
        char needle[32];
        snprintf(needle, sizeof(needle), "Echo: %s", five[i]);
        ASSERT_EQ(count_posts(st, needle), 1);
        if (i)
            ASSERT_LT(post_index(st, five[i - 1]), post_index(st, five[i])); /* oldest first */
    }
    ASSERT_EQ(count_calls(st, "conversations.history", "limit", "2"), 3); /* 2 + 2 + 1 */
    ASSERT_EQ(count_calls_with(st, "conversations.history", "cursor"), 2);
    cJSON_Delete(st);
    /* seven while away: three pages of two hold the newest six; the oldest is not read */
    rt_stop(w.e.cx, w.ref, RT_EXIT_STOPPED);
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    static const char *const seven[] = {"q-1", "q-2", "q-3", "q-4", "q-5", "q-6", "q-7"};
    for (size_t i = 0; i < 7; i++)
        ASSERT_FALSE(sd_post(&w.d, "D1", "im", "UALICE", seven[i], NULL));
    w_restart(&w, &o);
    cJSON_Delete(sd_wait(&w.d, has_post, "Echo: q-7", "the capped catch-up"));
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    st = sd_state(&w.d);
    ASSERT_EQ(count_posts(st, "Echo: q-1"), 0);
    for (size_t i = 1; i < 7; i++) {
        char needle[32];
        snprintf(needle, sizeof(needle), "Echo: %s", seven[i]);
        ASSERT_EQ(count_posts(st, needle), 1);
    }
    ASSERT_EQ(count_calls(st, "conversations.history", "limit", "2"), 6);
    cJSON_Delete(st);
    w_fini(&w);
}

TEST(a_damaged_state_file_or_a_lost_channel_is_no_obstacle)
{
    world w;
    w_init(&w);
    char dir[600], path[640];
    snprintf(dir, sizeof(dir), "%s/platforms", w.tmp);
    ASSERT_OK(mkdir(dir, 0700));
    snprintf(dir, sizeof(dir), "%s/platforms/slack", w.tmp);
    ASSERT_OK(mkdir(dir, 0700));
    snprintf(path, sizeof(path), "%s/state.json", dir);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs("{\"bot_user\": 7, garbage", f);
    fclose(f);
    w_up(&w, NULL);
    ASSERT_TRUE(sd_post(&w.d, "D1", "im", "UALICE", "works", NULL));
    ASSERT_TRUE(sd_post(&w.d, "C9", "channel", "UALICE", "<@UBOT> here", NULL));
    cJSON_Delete(sd_wait(&w.d, has_post, "Echo: works", "the answer"));
    cJSON_Delete(sd_wait(&w.d, has_post, "Echo: here", "the answer in C9"));
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    tenv_advance_ms(&w.e, 1100); /* the positions are written a second later */
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    char *text = NULL;
    size_t len = 0;
    f = fopen(path, "r");
    ASSERT_NOT_NULL(f);
    char buf[4096];
    len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    text = buf;
    ASSERT_STR_CONTAINS(text, "\"bot_user\":\"UBOT\"");
    ASSERT_STR_CONTAINS(text, "\"channel\":\"D1\"");
    /* the bot leaves C9: catching up there stops, D1 goes on */
    sd_do(&w.d, "/_test/member", "{\"channel\":\"C9\",\"member\":false}");
    slack_opts o = {.require_mention = true};
    w_restart(&w, &o);
    ASSERT_TRUE(sd_post(&w.d, "D1", "im", "UALICE", "marker", NULL));
    cJSON *st = sd_wait(&w.d, has_post, "Echo: marker", "the marker");
    ASSERT_EQ(count_calls(st, "conversations.history", "channel", "C9"), 1);
    cJSON_Delete(st);
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    tenv_advance_ms(&w.e, 1100);
    ASSERT_OK(rt_wait_quiescent(w.e.rt, WAIT_MS));
    f = fopen(path, "r");
    ASSERT_NOT_NULL(f);
    len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    ASSERT_NULL(strstr(buf, "C9")); /* forgotten */
    ASSERT_STR_CONTAINS(buf, "D1");
    w_fini(&w);
}
