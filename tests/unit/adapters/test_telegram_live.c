/*
 * test_telegram_live — the Telegram adapter actor against the Bot API double
 * (tests/doubles/telegram_double.py, started per case) and the gateway double: the offset
 * kept across a restart, 429 retry_after honoured, a bad token reported.
 *
 * The runtime's clock is fake (adapter_env): the adapter's timers (retry_after, backoff,
 * typing) only move with tenv_advance_ms, which makes "nothing is sent before retry_after"
 * checkable without waiting.
 */
#include "adapter_env.h"
#include "telegram.h"

#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "123456:ABC-test-token"

typedef struct dbl {
    pid_t pid;
    int port;
    char base[64];
    const char *dir; /* the case's directory: the double's files and HERMES_HOME */
} dbl;

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void dbl_start(dbl *d)
{
    d->dir = test_tmpdir(); /* a new directory per call: once per case */
    char pf[512];
    snprintf(pf, sizeof(pf), "%s/tg.port", d->dir);
    d->pid = fork();
    ASSERT_GE(d->pid, 0);
    if (d->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a case that aborts takes the double with it */
        char logp[512];
        snprintf(logp, sizeof(logp), "%s/tg.log", d->dir);
        FILE *f = freopen(logp, "w", stderr);
        (void)f;
        execl("/usr/bin/python3", "python3", TG_DOUBLE, "--token", TOKEN, "--port", "0",
              "--port-file", pf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) { /* wait for the port file, at most 20 s */
        char *s = NULL;
        size_t len = 0;
        if (hm_read_file(pf, 64, &s, &len) == 0) {
            int64_t port = 0;
            bool ok = rt_parse_i64(s, 1, 65535, &port) == 0;
            rt_free(s);
            if (ok) {
                d->port = (int)port;
                break;
            }
        }
        nap_ms(20);
    }
    ASSERT_GT(d->port, 0);
    snprintf(d->base, sizeof(d->base), "http://127.0.0.1:%d", d->port);
}

static void dbl_stop(dbl *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        (void)waitpid(d->pid, NULL, 0);
    }
    d->pid = 0;
}

static void ctl(dbl *d, const char *path, const char *json)
{
    hc_resp r;
    ASSERT_OK(treq(d->port, "POST", path, NULL, json, &r));
    ASSERT_EQ(r.status, 200);
    hc_resp_free(&r);
}

static void dm(dbl *d, const char *text)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"chat\":{\"id\":42,\"type\":\"private\"},\"from\":{\"id\":42,\"is_bot\":false,"
             "\"first_name\":\"Ann\"},\"text\":\"%s\"}",
             text);
    ctl(d, "/_ctl/message", body);
}

/* How many calls of method the double has seen; sent: successful sends only. */
static int count(dbl *d, const char *method, bool sent)
{
    hc_resp r;
    ASSERT_OK(treq(d->port, "GET", sent ? "/_ctl/sent" : "/_ctl/calls", NULL, NULL, &r));
    cJSON *j = cJSON_Parse(r.body);
    hc_resp_free(&r);
    ASSERT_NOT_NULL(j);
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(it, "method");
        n += cJSON_IsString(m) && strcmp(m->valuestring, method) == 0;
    }
    cJSON_Delete(j);
    return n;
}

static int wait_count(dbl *d, const char *method, bool sent, int n)
{
    for (int i = 0; i < 500; i++) { /* at most 10 s */
        if (count(d, method, sent) >= n)
            return 0;
        nap_ms(20);
    }
    return -ETIMEDOUT;
}

static rt_ref start_tg(tenv *e, dbl *d, const char *token)
{
    tg_opts o = {.token = (char *)token,
                 .api_base = d->base,
                 .hermes_home = (char *)d->dir,
                 .require_mention = true,
                 .poll_timeout_s = 2};
    rt_ref ref = 0;
    char err[256] = "";
    ASSERT_OK(tg_start(e->cx, &o, 0, &ref, err, sizeof(err)));
    return ref;
}

static void stop_tg(tenv *e, rt_ref ref)
{
    rt_stop(e->cx, ref, RT_EXIT_STOPPED);
    for (int i = 0; i < 500 && rt_is_alive(e->cx, ref); i++)
        nap_ms(10);
    ASSERT_FALSE(rt_is_alive(e->cx, ref));
}

static bool file_has(const char *path, const char *needle)
{
    char *s = NULL;
    size_t len = 0;
    if (hm_read_file(path, 4096, &s, &len) != 0)
        return false;
    bool ok = strstr(s, needle) != NULL;
    rt_free(s);
    return ok;
}

TEST(offset_persists_and_updates_sent_while_down_are_answered_once)
{
    dbl d = {0};
    dbl_start(&d);
    tenv e;
    tenv_init(&e, true);
    rt_ref tg = start_tg(&e, &d, TOKEN);
    ASSERT_OK(gwd_wait(e.gw, GWD_UP, 1, WAIT_MS));
    const gwd_rec *up = gwd_get(e.gw, GWD_UP, 0);
    ASSERT_STR_EQ(up->platform, "telegram");
    ASSERT_EQ(up->caps.max_message, (size_t)TG_MAX_MESSAGE);

    dm(&d, "one");
    ASSERT_OK(gwd_wait(e.gw, GWD_EVENT, 1, WAIT_MS));
    const gwd_rec *ev = gwd_get(e.gw, GWD_EVENT, 0);
    ASSERT_STR_EQ(ev->text, "one");
    ASSERT_STR_EQ(ev->message_id, "1000"); /* the update_id */
    ASSERT_STR_EQ(ev->chat_type, "dm");
    ASSERT_STR_EQ(ev->user_id, "42");

    char state[512];
    snprintf(state, sizeof(state), "%s/platforms/telegram/state.json", d.dir);
    for (int i = 0; i < 500 && !file_has(state, "\"offset\":1001"); i++)
        nap_ms(10);
    ASSERT_TRUE(file_has(state, "\"offset\":1001"));
    struct stat st;
    ASSERT_OK(stat(state, &st));
    ASSERT_EQ(st.st_mode & 0777, 0600u);
    stop_tg(&e, tg);
    ASSERT_OK(gwd_wait(e.gw, GWD_DOWN, 1, WAIT_MS));

    dm(&d, "two"); /* while the adapter is down */
    tg = start_tg(&e, &d, TOKEN);
    ASSERT_OK(gwd_wait(e.gw, GWD_EVENT, 2, WAIT_MS));
    ASSERT_STR_EQ(gwd_get(e.gw, GWD_EVENT, 1)->text, "two");
    ASSERT_STR_EQ(gwd_get(e.gw, GWD_EVENT, 1)->message_id, "1001");
    dm(&d, "three");
    ASSERT_OK(gwd_wait(e.gw, GWD_EVENT, 3, WAIT_MS));
    ASSERT_STR_EQ(gwd_get(e.gw, GWD_EVENT, 2)->text, "three");
    ASSERT_EQ(gwd_count(e.gw, GWD_EVENT), 3); /* "one" was not handed over again */
    stop_tg(&e, tg);
    tenv_fini(&e);
    dbl_stop(&d);
}

TEST(retry_after_of_a_429_is_honoured)
{
    dbl d = {0};
    dbl_start(&d);
    tenv e;
    tenv_init(&e, true);
    rt_ref tg = start_tg(&e, &d, TOKEN);
    ASSERT_OK(gwd_wait(e.gw, GWD_UP, 1, WAIT_MS));
    ctl(&d, "/_ctl/fail",
        "{\"method\":\"sendMessage\",\"count\":1,\"error_code\":429,\"description\":\"Too Many "
        "Requests: retry after 5\",\"retry_after\":5}");
    dm(&d, "hello");
    ASSERT_OK(gwd_wait(e.gw, GWD_EVENT, 1, WAIT_MS));
    ASSERT_OK(wait_count(&d, "sendMessage", false, 1));
    nap_ms(300); /* a retry storm would show here: nothing may go out before retry_after */
    ASSERT_EQ(count(&d, "sendMessage", false), 1);
    tenv_advance_ms(&e, 4000);
    nap_ms(200);
    ASSERT_EQ(count(&d, "sendMessage", false), 1);
    tenv_advance_ms(&e, 1500);
    ASSERT_OK(wait_count(&d, "sendMessage", true, 1));
    /* everything the gateway double said goes out, each exactly once after the one 429 */
    int sent = 0;
    for (int i = 0; i < 200; i++) {
        tenv_advance_ms(&e, 100);
        sent = count(&d, "sendMessage", true);
        if (sent >= 2 && count(&d, "sendMessage", false) == sent + 1)
            break;
        nap_ms(20);
    }
    ASSERT_EQ(count(&d, "sendMessage", false), sent + 1);
    stop_tg(&e, tg);
    tenv_fini(&e);
    dbl_stop(&d);
}

TEST(server_errors_back_off_without_a_retry_storm)
{
    dbl d = {0};
    dbl_start(&d);
    ctl(&d, "/_ctl/fail",
        "{\"method\":\"getUpdates\",\"count\":3,\"error_code\":502,\"description\":"
        "\"Bad Gateway\"}");
    tenv e;
    tenv_init(&e, true);
    rt_ref tg = start_tg(&e, &d, TOKEN);
    ASSERT_OK(wait_count(&d, "getUpdates", false, 1));
    /* backoff: 1 s, 2 s, 4 s (each plus up to 20 % jitter), on the runtime's (fake) clock */
    static const int64_t delay_ms[] = {1000, 2000, 4000};
    for (int k = 0; k < 3; k++) {
        nap_ms(200);
        ASSERT_EQ(count(&d, "getUpdates", false), k + 1); /* nothing before the delay */
        tenv_advance_ms(&e, delay_ms[k] - 100);
        nap_ms(100);
        ASSERT_EQ(count(&d, "getUpdates", false), k + 1);
        tenv_advance_ms(&e, delay_ms[k] / 5 + 200);
        ASSERT_OK(wait_count(&d, "getUpdates", false, k + 2));
    }
    /* the fourth attempt succeeded: the loop polls normally again and messages get through */
    dm(&d, "after the storm");
    ASSERT_OK(gwd_wait(e.gw, GWD_EVENT, 1, WAIT_MS));
    ASSERT_STR_EQ(gwd_get(e.gw, GWD_EVENT, 0)->text, "after the storm");
    stop_tg(&e, tg);
    tenv_fini(&e);
    dbl_stop(&d);
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_acc[16384];
static size_t log_len;

static void log_sink(const char *line, size_t len, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&log_mu);
    if (log_len + len + 1 < sizeof(log_acc)) {
        memcpy(log_acc + log_len, line, len);
        log_len += len;
        log_acc[log_len] = '\0';
    }
    pthread_mutex_unlock(&log_mu);
}

static bool log_has(const char *s)
{
    pthread_mutex_lock(&log_mu);
    bool ok = strstr(log_acc, s) != NULL;
    pthread_mutex_unlock(&log_mu);
    return ok;
}

TEST(a_bad_token_is_reported_and_the_adapter_ends)
{
    dbl d = {0};
    dbl_start(&d);
    rt_log_capture(log_sink, NULL);
    tenv e;
    tenv_init(&e, true);
    rt_ref tg = start_tg(&e, &d, "999:WRONG-secret");
    for (int i = 0; i < 500 && rt_is_alive(e.cx, tg); i++)
        nap_ms(10);
    ASSERT_FALSE(rt_is_alive(e.cx, tg));
    ASSERT_TRUE(log_has(TG_BAD_TOKEN_MSG));
    ASSERT_FALSE(log_has("WRONG-secret"));
    ASSERT_EQ(gwd_count(e.gw, GWD_UP), 0);
    ASSERT_EQ(count(&d, "getUpdates", false), 0);
    tenv_fini(&e);
    rt_log_capture(NULL, NULL);
    dbl_stop(&d);
}

TEST(bad_arguments_get_a_sentence)
{
    tenv e;
    tenv_init(&e, false);
    tg_opts o = {0};
    rt_ref ref = 0;
    char err[256] = "";
    ASSERT_EQ(tg_start(e.cx, &o, 0, &ref, err, sizeof(err)), -EINVAL);
    ASSERT_STR_CONTAINS(err, "token");
    ASSERT_EQ(ref, 0u);
    tenv_fini(&e);
}
