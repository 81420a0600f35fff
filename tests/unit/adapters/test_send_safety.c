/*
 * test_send_safety — an adapter's sends through per-chat lanes (adapters/kit/ak_lanes), seen
 * from outside with the Telegram adapter against its Bot API double
 * (tests/doubles/telegram_double.py, "/_ctl/slow": a chat whose sendMessage takes a while and
 * is made even when the client gave up) and a recording gateway (the acks, GW_MSG_SENT):
 *   - a send that timed out is acked as a permanent "maybe sent" failure and never sent
 *     again, also not when the outbox hands the same delivery over again (issue 13);
 *   - a slow chat does not hold another chat's reply; a copy of a delivery still on its way
 *     is not queued twice.
 */
#include "adapter_env.h"
#include "telegram.h"

#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_util.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "123456:ABC-test-token"

/* ================================================================ the double */

typedef struct dbl {
    pid_t pid;
    int port;
    char base[64];
    const char *dir;
} dbl;

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void dbl_start(dbl *d)
{
    d->dir = test_tmpdir();
    char pf[512];
    snprintf(pf, sizeof(pf), "%s/tg.port", d->dir);
    d->pid = fork();
    ASSERT_GE(d->pid, 0);
    if (d->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        char logp[512];
        snprintf(logp, sizeof(logp), "%s/tg.log", d->dir);
        FILE *f = freopen(logp, "w", stderr);
        (void)f;
        execl("/usr/bin/python3", "python3", TG_DOUBLE, "--token", TOKEN, "--port", "0",
              "--port-file", pf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) { /* at most 20 s */
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

/* sendMessage calls the double has seen (sent: the ones it made). */
static int count(dbl *d, bool sent)
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
        n += cJSON_IsString(m) && strcmp(m->valuestring, "sendMessage") == 0;
    }
    cJSON_Delete(j);
    return n;
}

/* ================================================================ the recording gateway */

#define ACKS_MAX 64

typedef struct ack_rec {
    uint64_t delivery;
    int err;
    bool permanent;
} ack_rec;

typedef struct rec {
    pthread_mutex_t mu;
    int up;
    ack_rec acks[ACKS_MAX];
    int nacks;
} rec;

static void rec_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)cx;
    rec *r = state;
    pthread_mutex_lock(&r->mu);
    if (m->type == GW_MSG_ADAPTER_UP)
        r->up++;
    if (m->type == GW_MSG_SENT && r->nacks < ACKS_MAX) {
        const gw_msg_sent *s = (const gw_msg_sent *)m;
        r->acks[r->nacks++] = (ack_rec){s->delivery, s->err, s->permanent};
    }
    pthread_mutex_unlock(&r->mu);
}

static const rt_actor_type rec_type = {"test.gateway", rec_behave, NULL, 0};

/* Acks recorded for delivery; *last gets the latest. */
static int acks_of(rec *r, uint64_t delivery, ack_rec *last)
{
    int n = 0;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nacks; i++)
        if (r->acks[i].delivery == delivery) {
            n++;
            if (last)
                *last = r->acks[i];
        }
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Wait (at most 15 s; the fake clock moves along, for retries and pacing) until delivery has
 * n acks. */
static int wait_acks(tenv *e, rec *r, uint64_t delivery, int n)
{
    for (int i = 0; i < 750; i++) {
        if (acks_of(r, delivery, NULL) >= n)
            return 0;
        tenv_advance_ms(e, 20);
        nap_ms(20);
    }
    return -ETIMEDOUT;
}

static void say(tenv *e, rt_ref tg, const char *chat, const char *text, uint64_t delivery)
{
    gw_target to = {.chat_id = (char *)chat};
    gw_out_text *t = (gw_out_text *)gw_out_text_new(GW_OUT_TEXT, &to, text, GW_TEXT_REPLY);
    t->delivery = delivery;
    ASSERT_TRUE(rt_send(e->cx, tg, &t->hdr));
}

static rt_ref start(tenv *e, dbl *d, rec *r, int64_t http_timeout_ms)
{
    rt_ref gw = rt_spawn(e->cx, &rec_type, r, NULL);
    ASSERT_NE(gw, 0);
    tg_opts o = {.token = TOKEN,
                 .api_base = d->base,
                 .hermes_home = (char *)d->dir,
                 .require_mention = true,
                 .poll_timeout_s = 2,
                 .http_timeout_ms = http_timeout_ms};
    rt_ref ref = 0;
    char err[256] = "";
    ASSERT_OK(tg_start(e->cx, &o, gw, &ref, err, sizeof(err)));
    for (int i = 0; i < 500; i++) { /* at most 10 s */
        pthread_mutex_lock(&r->mu);
        int up = r->up;
        pthread_mutex_unlock(&r->mu);
        if (up)
            break;
        nap_ms(20);
    }
    ASSERT_EQ(r->up, 1);
    return ref;
}

static void stop(tenv *e, rt_ref tg)
{
    rt_stop(e->cx, tg, RT_EXIT_STOPPED);
    for (int i = 0; i < 500 && rt_is_alive(e->cx, tg); i++)
        nap_ms(10);
    ASSERT_FALSE(rt_is_alive(e->cx, tg));
}

/* ================================================================ cases */

TEST(a_timed_out_send_is_acked_as_maybe_sent_and_never_sent_again)
{
    dbl d = {0};
    dbl_start(&d);
    tenv e;
    tenv_init(&e, false);
    rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
    rt_ref tg = start(&e, &d, &r, 300);
    ctl(&d, "/_ctl/slow", "{\"chat_id\":\"42\",\"ms\":1500}");

    say(&e, tg, "42", "first", 7);
    ASSERT_OK(wait_acks(&e, &r, 7, 1));
    ack_rec a = {0};
    ASSERT_EQ(acks_of(&r, 7, &a), 1);
    ASSERT_EQ(a.err, -ETIMEDOUT);
    ASSERT_TRUE(a.permanent); /* the outbox must not send it again */

    /* the outbox hands it over again anyway: acked again the same way, not sent */
    say(&e, tg, "42", "first", 7);
    ASSERT_OK(wait_acks(&e, &r, 7, 2));
    ASSERT_EQ(acks_of(&r, 7, &a), 2);
    ASSERT_EQ(a.err, -ETIMEDOUT);
    ASSERT_TRUE(a.permanent);

    /* the server made the slow one after all; the chat's next reply is the barrier */
    for (int i = 0; i < 500 && count(&d, true) < 1; i++)
        nap_ms(20);
    ASSERT_EQ(count(&d, true), 1);
    ctl(&d, "/_ctl/slow", "{\"chat_id\":\"42\",\"ms\":0}");
    say(&e, tg, "42", "second", 8);
    ASSERT_OK(wait_acks(&e, &r, 8, 1));
    ASSERT_EQ(acks_of(&r, 8, &a), 1);
    ASSERT_EQ(a.err, 0);
    ASSERT_EQ(count(&d, false), 2); /* "first" once, "second" once */
    ASSERT_EQ(count(&d, true), 2);
    stop(&e, tg);
    tenv_fini(&e);
    dbl_stop(&d);
}

TEST(a_slow_chat_does_not_hold_another_and_copies_are_not_queued)
{
    dbl d = {0};
    dbl_start(&d);
    tenv e;
    tenv_init(&e, false);
    rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
    rt_ref tg = start(&e, &d, &r, 30000);
    ctl(&d, "/_ctl/slow", "{\"chat_id\":\"42\",\"ms\":3000}");

    say(&e, tg, "42", "slow one", 1);
    say(&e, tg, "42", "slow one", 1); /* the outbox's copy while it is on its way */
    say(&e, tg, "43", "fast one", 2);
    ASSERT_OK(wait_acks(&e, &r, 2, 1));
    ASSERT_EQ(acks_of(&r, 1, NULL), 0); /* chat 43 was answered while 42's send was slow */
    ASSERT_OK(wait_acks(&e, &r, 1, 1));
    ack_rec a = {0};
    ASSERT_EQ(acks_of(&r, 1, &a), 1); /* one ack answers both copies */
    ASSERT_EQ(a.err, 0);
    ASSERT_EQ(acks_of(&r, 2, &a), 1);
    ASSERT_EQ(a.err, 0);
    ASSERT_EQ(count(&d, false), 2); /* one sendMessage per chat */
    stop(&e, tg);
    tenv_fini(&e);
    dbl_stop(&d);
}
