/*
 * cron_sched: the schedule grammar of the original's parse_schedule (good and bad input with
 * its error texts), durations, ISO-8601 times as Python writes and reads them, and next-run
 * times for cron expressions, intervals and one-shots — table-driven, in UTC and in a
 * DST-free local zone (UTC+05:30), so the expected times do not depend on the machine.
 */
#include "cron_sched.h"
#include "rt_alloc.h"
#include "test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void use_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

static int64_t iso_us(const char *s)
{
    int64_t us = 0;
    int32_t off = 0;
    bool naive = false;
    if (cron_iso_parse(s, &us, &off, &naive) != 0)
        TEST_FAIL_("bad ISO time in the test: %s", s);
    return us;
}

static const char *jstr(const cJSON *o, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* ------------------------------------------------------------ parsing */

TEST(schedules_of_every_form)
{
    use_tz("UTC");
    int64_t now = iso_us("2026-03-01T10:00:00+00:00");
    char err[512] = "";
    struct {
        const char *in, *kind, *display;
        double minutes;     /* interval */
        const char *run_at; /* once */
    } t[] = {
        {"every 2h", "interval", "every 120m", 120, NULL},
        {"every 30m", "interval", "every 30m", 30, NULL},
        {"  EVERY 1 Day ", "interval", "every 1440m", 1440, NULL},
        {"every 5 minutes", "interval", "every 5m", 5, NULL},
        {"0 9 * * *", "cron", "0 9 * * *", 0, NULL},
        {"*/15 8-18 * * 1-5", "cron", "*/15 8-18 * * 1-5", 0, NULL},
        {"30m", "once", "once in 30m", 0, "2026-03-01T10:30:00+00:00"},
        {"2 hours", "once", "once in 2 hours", 0, "2026-03-01T12:00:00+00:00"},
        {"1d", "once", "once in 1d", 0, "2026-03-02T10:00:00+00:00"},
        {"2026-04-17T09:00:00Z", "once", "once at 2026-04-17 09:00", 0,
         "2026-04-17T09:00:00+00:00"},
        {"2026-04-17T09:00:00+02:00", "once", "once at 2026-04-17 09:00", 0,
         "2026-04-17T09:00:00+02:00"},
        {"2026-04-17 09:30", "once", "once at 2026-04-17 09:30", 0, "2026-04-17T09:30:00+00:00"},
        {"2026-04-17", "once", "once at 2026-04-17 00:00", 0, "2026-04-17T00:00:00+00:00"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        cJSON *s = cron_parse_schedule(t[i].in, now, err, sizeof(err));
        if (!s)
            TEST_FAIL_("'%s' refused: %s", t[i].in, err);
        ASSERT_STR_EQ(t[i].kind, jstr(s, "kind"));
        ASSERT_STR_EQ(t[i].display, jstr(s, "display"));
        if (t[i].minutes > 0)
            ASSERT_EQ((int64_t)t[i].minutes,
                      (int64_t)cJSON_GetObjectItem(s, "minutes")->valuedouble);
        if (t[i].run_at)
            ASSERT_STR_EQ(t[i].run_at, jstr(s, "run_at"));
        if (strcmp(t[i].kind, "cron") == 0)
            ASSERT_STR_EQ(t[i].display, jstr(s, "expr"));
        cJSON_Delete(s);
    }
}

TEST(bad_schedules_get_the_originals_errors)
{
    use_tz("UTC");
    int64_t now = iso_us("2026-03-01T10:00:00+00:00");
    struct {
        const char *in, *err;
    } t[] = {
        {"soon", "Invalid schedule 'soon'. Use:\n  - Duration: '30m', '2h', '1d' (one-shot)\n"},
        {"", "Invalid schedule ''. Use:"},
        {"every", "Invalid schedule 'every'. Use:"},
        {"every fortnight", "Invalid duration: 'fortnight'. Use format like '30m', '2h', or '1d'"},
        {"every 5x", "Invalid duration: '5x'"},
        {"61 * * * *", "Invalid cron expression '61 * * * *': [61 * * * *] is not acceptable, "
                       "out of range"},
        {"* 24 * * *", "Invalid cron expression '* 24 * * *':"},
        {"* * 0 * *", "Invalid cron expression '* * 0 * *':"},
        {"* * * 13 *", "Invalid cron expression"},
        {"5-1 * * * *", "Invalid cron expression"},
        {"*/0 * * * *", "Invalid cron expression"},
        {"1,,2 * * * *", "Invalid cron expression"},
        {"2026-13-45T09:00", "Invalid timestamp '2026-13-45T09:00': Invalid isoformat string"},
        {"2026-04-17Tnine", "Invalid timestamp"},
        {"99999999999999999999m", "date value out of range"},
        {"every 99999999999d", "date value out of range"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char err[512] = "";
        cJSON *s = cron_parse_schedule(t[i].in, now, err, sizeof(err));
        if (s)
            TEST_FAIL_("'%s' accepted", t[i].in);
        ASSERT_STR_CONTAINS(err, t[i].err);
    }
    char err[512] = "";
    ASSERT_NULL(cron_parse_schedule(NULL, now, err, sizeof(err)));
    ASSERT_STR_CONTAINS(err, "Invalid schedule");
}

TEST(durations)
{
    struct {
        const char *in;
        int64_t minutes;
    } ok[] = {{"30m", 30},    {"30 min", 30}, {"1 minute", 1}, {"2h", 120},       {"3 HRS", 180},
              {"1 hour", 60}, {"2d", 2880},   {"1 day", 1440}, {" 45 mins ", 45}, {"0m", 0}};
    char err[256];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t m = -1;
        ASSERT_OK(cron_parse_duration(ok[i].in, &m, err, sizeof(err)));
        ASSERT_EQ(ok[i].minutes, m);
    }
    const char *bad[] = {"", "m", "5", "5 weeks", "-5m", "5.5h", "h5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t m = -1;
        ASSERT_EQ(-EINVAL, cron_parse_duration(bad[i], &m, err, sizeof(err)));
        ASSERT_STR_CONTAINS(err, "Invalid duration");
    }
}

TEST(iso_times_as_python_writes_them)
{
    use_tz("UTC");
    char buf[CRON_ISO_MAX];
    ASSERT_STR_EQ("2026-03-01T10:00:00+00:00",
                  cron_iso(iso_us("2026-03-01T10:00:00Z"), CRON_LOCAL, buf, sizeof(buf)));
    ASSERT_STR_EQ("2026-03-01T10:00:00.250000+00:00",
                  cron_iso(iso_us("2026-03-01T10:00:00.25+00:00"), CRON_LOCAL, buf, sizeof(buf)));
    ASSERT_STR_EQ("2026-03-01T15:30:00+05:30",
                  cron_iso(iso_us("2026-03-01T10:00:00Z"), 19800, buf, sizeof(buf)));
    ASSERT_STR_EQ("2026-03-01T06:00:00-04:00",
                  cron_iso(iso_us("2026-03-01T10:00:00Z"), -14400, buf, sizeof(buf)));
    /* equal instants in any notation */
    ASSERT_EQ(iso_us("2026-03-01T10:00:00+00:00"), iso_us("2026-03-01T12:00:00+0200"));
    ASSERT_EQ(iso_us("2026-03-01T10:00:00+00:00"), iso_us("2026-03-01 10:00"));
    int64_t us;
    int32_t off;
    bool naive;
    ASSERT_OK(cron_iso_parse("2026-03-01T10:00:00", &us, &off, &naive));
    ASSERT_TRUE(naive);
    ASSERT_OK(cron_iso_parse("2026-03-01T10:00:00-03:00", &us, &off, &naive));
    ASSERT_FALSE(naive);
    ASSERT_EQ(-10800, off);
    const char *bad[] = {"",
                         "2026",
                         "2026-02-30",
                         "2026-03-01T25:00",
                         "2026-03-01T10:00:00+",
                         "2026-03-01X10:00",
                         "2026-03-01T10:00:00 junk"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ASSERT_EQ(-EINVAL, cron_iso_parse(bad[i], &us, &off, &naive));
}

/* ---------------------------------------------------------- next runs */

typedef struct next_case {
    const char *expr, *after, *next;
} next_case;

static void run_next_table(const next_case *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cron_expr e;
        char err[256], buf[CRON_ISO_MAX];
        if (cron_expr_parse(t[i].expr, &e, err, sizeof(err)))
            TEST_FAIL_("'%s': %s", t[i].expr, err);
        int64_t next = 0;
        if (!t[i].next) {
            ASSERT_EQ(-ENOENT, cron_expr_next(&e, iso_us(t[i].after) / 1000000, &next));
            continue;
        }
        ASSERT_OK(cron_expr_next(&e, iso_us(t[i].after) / 1000000, &next));
        cron_iso(next * 1000000, CRON_LOCAL, buf, sizeof(buf));
        if (strcmp(buf, t[i].next) != 0)
            TEST_FAIL_("'%s' after %s: %s, expected %s", t[i].expr, t[i].after, buf, t[i].next);
    }
}

TEST(cron_next_in_utc)
{
    use_tz("UTC");
    static const next_case t[] = {
        {"*/15 * * * *", "2026-03-01T10:07:00+00:00", "2026-03-01T10:15:00+00:00"},
        {"*/15 * * * *", "2026-03-01T10:15:00+00:00", "2026-03-01T10:30:00+00:00"}, /* strictly */
        {"*/15 * * * *", "2026-03-01T10:14:59+00:00", "2026-03-01T10:15:00+00:00"},
        {"0 9 * * *", "2026-03-01T10:00:00+00:00", "2026-03-02T09:00:00+00:00"},
        {"0 9 * * *", "2026-03-01T08:59:00+00:00", "2026-03-01T09:00:00+00:00"},
        {"30 23 31 12 *", "2026-03-01T00:00:00+00:00", "2026-12-31T23:30:00+00:00"},
        {"0 0 1 * *", "2026-12-15T00:00:00+00:00", "2027-01-01T00:00:00+00:00"},
        {"0 0 29 2 *", "2026-03-01T00:00:00+00:00", "2028-02-29T00:00:00+00:00"},
        {"0 12 * * 1-5", "2026-03-06T13:00:00+00:00", "2026-03-09T12:00:00+00:00"}, /* Fri → Mon */
        {"0 12 * * 0", "2026-03-02T00:00:00+00:00", "2026-03-08T12:00:00+00:00"},   /* Sunday */
        {"0 12 * * 7", "2026-03-02T00:00:00+00:00", "2026-03-08T12:00:00+00:00"},   /* 7 = Sun */
        {"0 0 13 * 5", "2026-03-01T00:00:00+00:00", "2026-03-06T00:00:00+00:00"},   /* dom OR dow */
        {"5,35 1-3 * * *", "2026-03-01T02:40:00+00:00", "2026-03-01T03:05:00+00:00"},
        {"0-10/5 * * * *", "2026-03-01T02:06:00+00:00", "2026-03-01T02:10:00+00:00"},
        {"0 0 31 2 *", "2026-03-01T00:00:00+00:00", NULL}, /* never */
    };
    run_next_table(t, sizeof(t) / sizeof(t[0]));
}

TEST(cron_next_in_a_fixed_local_zone)
{
    use_tz("<+0530>-05:30"); /* UTC+05:30, no daylight saving */
    static const next_case t[] = {
        /* 09:00 local is 03:30 UTC */
        {"0 9 * * *", "2026-03-01T03:00:00+00:00", "2026-03-01T09:00:00+05:30"},
        {"0 9 * * *", "2026-03-01T03:30:00+00:00", "2026-03-02T09:00:00+05:30"},
        {"0 0 * * *", "2026-03-01T18:00:00+00:00", "2026-03-02T00:00:00+05:30"},
        {"0 0 * * *", "2026-03-01T19:00:00+00:00", "2026-03-03T00:00:00+05:30"},
        {"0 0 1 * *", "2026-03-31T18:00:00+00:00", "2026-04-01T00:00:00+05:30"},
        {"45 23 * * 6", "2026-03-01T00:00:00+00:00", "2026-03-07T23:45:00+05:30"},
    };
    run_next_table(t, sizeof(t) / sizeof(t[0]));
}

static cJSON *sched(const char *s, int64_t now)
{
    char err[512];
    cJSON *o = cron_parse_schedule(s, now, err, sizeof(err));
    if (!o)
        TEST_FAIL_("'%s': %s", s, err);
    return o;
}

TEST(next_run_for_each_kind)
{
    use_tz("UTC");
    int64_t now = iso_us("2026-03-01T10:00:00+00:00");
    char buf[CRON_ISO_MAX];
    cJSON *iv = sched("every 2h", now);
    ASSERT_OK(cron_next_run(iv, NULL, now, buf, sizeof(buf)));
    ASSERT_STR_EQ("2026-03-01T12:00:00+00:00", buf); /* first: now + interval */
    ASSERT_OK(cron_next_run(iv, "2026-03-01T11:00:00+00:00", now, buf, sizeof(buf)));
    ASSERT_STR_EQ("2026-03-01T13:00:00+00:00", buf); /* then last run + interval */
    cJSON_Delete(iv);

    cJSON *cr = sched("0 9 * * *", now);
    ASSERT_OK(cron_next_run(cr, NULL, now, buf, sizeof(buf)));
    ASSERT_STR_EQ("2026-03-02T09:00:00+00:00", buf);
    cJSON_Delete(cr);

    cJSON *once = sched("30m", now);
    ASSERT_OK(cron_next_run(once, NULL, now, buf, sizeof(buf)));
    ASSERT_STR_EQ("2026-03-01T10:30:00+00:00", buf);
    /* still due shortly after its time (120 s grace), not later, and never after a run */
    ASSERT_OK(cron_next_run(once, NULL, now + (30 * 60 + 100) * 1000000LL, buf, sizeof(buf)));
    ASSERT_EQ(-ENOENT,
              cron_next_run(once, NULL, now + (30 * 60 + 200) * 1000000LL, buf, sizeof(buf)));
    ASSERT_EQ(-ENOENT, cron_next_run(once, "2026-03-01T10:30:00+00:00", now, buf, sizeof(buf)));
    cJSON_Delete(once);

    cJSON *junk = cJSON_Parse("{\"kind\":\"weekly\"}");
    ASSERT_EQ(-EINVAL, cron_next_run(junk, NULL, now, buf, sizeof(buf)));
    cJSON_Delete(junk);
    junk = cJSON_Parse("{\"kind\":\"cron\",\"expr\":\"bogus\"}");
    ASSERT_EQ(-EINVAL, cron_next_run(junk, NULL, now, buf, sizeof(buf)));
    cJSON_Delete(junk);
}

TEST(catch_up_grace_is_half_the_period_clamped)
{
    use_tz("UTC");
    int64_t now = iso_us("2026-03-01T10:00:00+00:00");
    struct {
        const char *s;
        int64_t grace;
    } t[] = {{"every 1m", 120},   {"every 10m", 300},   {"every 1h", 1800}, {"every 1d", 7200},
             {"0 * * * *", 1800}, {"*/2 * * * *", 120}, {"30m", 120}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        cJSON *s = sched(t[i].s, now);
        ASSERT_EQ(t[i].grace, cron_grace_s(s, now));
        cJSON_Delete(s);
    }
}
