/*
 * cron_sched — cron schedules as the original's cron/jobs.py has them (gateway.md §6.3):
 * parsing ('30m', 'every 2h', 5-field cron expressions, ISO timestamps), next-run times, the
 * catch-up grace, and ISO-8601 times written the way Python's datetime.isoformat() writes
 * them, so jobs.json stays interchangeable with the original.
 *
 * Time zone: "the Hermes time zone" is the process's local zone (localtime_r/mktime). The
 * host sets TZ from HERMES_TIMEZONE / config `timezone` at start-up, before any thread, so
 * every local time in the process agrees; without it the server's zone is used, as in the
 * original.
 *
 * Cron expressions follow croniter: minute hour day-of-month month day-of-week, each a list
 * of `*`, `n`, `a-b`, `*` or `a-b` or `a` with `/step`; day-of-week 0-7 (0 and 7 are Sunday);
 * when both day fields are restricted a day matching either counts. Names (MON, JAN) are not
 * accepted (the original's pre-check refuses them too). Only five fields are supported.
 * Daylight saving: every wall-clock time that matches fires once — at its first occurrence
 * when the clock falls back, and at the moment the clock jumps forward when it does not
 * exist (02:30 on the spring-forward night fires at 03:30 new time).
 *
 * Schedules are cJSON objects in the file format: {kind:"once", run_at, display},
 * {kind:"interval", minutes, display:"every <N>m"}, {kind:"cron", expr, display}.
 *
 * Threads: any thread. Pure except for the clock (cron_now_us) and the zone (tzset state).
 */
#ifndef CRON_SCHED_H
#define CRON_SCHED_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRON_ONESHOT_GRACE_S 120 /* a one-shot still fires this long after its time */
#define CRON_ISO_MAX         40  /* "YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM:SS" and a NUL */

/* The wall clock in microseconds since the epoch. */
int64_t cron_now_us(void);

/*
 * Format us (microseconds since the epoch) as Python's isoformat() of that instant in the
 * local zone (off_s < INT32_MIN + 1: the local offset) or at the fixed UTC offset off_s:
 * "2026-04-17T09:00:00+02:00", with ".ffffff" when the microseconds are not zero. Returns
 * buf. buf must hold CRON_ISO_MAX bytes.
 */
#define CRON_LOCAL INT32_MIN
char *cron_iso(int64_t us, int32_t off_s, char *buf, size_t n);

/*
 * Parse an ISO-8601 time as Python's datetime.fromisoformat() does: YYYY-MM-DD, then
 * optionally a separator ('T', 't' or ' ') and HH[:MM[:SS[.f…]]], then optionally an offset
 * (Z, ±HH, ±HH:MM, ±HHMM, ±HH:MM:SS). A time without an offset is local time (naive = true).
 * 0, or -EINVAL. *us is the instant, *off_s its offset (the local offset for naive times).
 */
int cron_iso_parse(const char *s, int64_t *us, int32_t *off_s, bool *naive);

/* A parsed cron expression: one bit per allowed value. */
typedef struct cron_expr {
    uint64_t minute; /* bits 0-59 */
    uint32_t hour;   /* bits 0-23 */
    uint32_t dom;    /* bits 1-31 */
    uint16_t month;  /* bits 1-12 */
    uint8_t dow;     /* bits 0-6, Sunday = 0 */
    bool dom_any;    /* the day-of-month field allows every day */
    bool dow_any;    /* the day-of-week field allows every day */
} cron_expr;

/* Parse a 5-field expression. 0, or -EINVAL with croniter's words in err ("[61 * * * *] is
 * not acceptable, out of range"). */
int cron_expr_parse(const char *s, cron_expr *e, char *err, size_t errlen);

/* The first matching minute strictly after after_s (seconds since the epoch), local zone.
 * 0, or -ENOENT when nothing matches within nine years (e.g. "0 0 31 2 *"). */
int cron_expr_next(const cron_expr *e, int64_t after_s, int64_t *next_s);

/* "30m", "2 hours", "1d" → minutes. 0, -EINVAL ("Invalid duration: '<s>'. Use format like
 * '30m', '2h', or '1d'"), or -ERANGE ("date value out of range"). */
int cron_parse_duration(const char *s, int64_t *minutes, char *err, size_t errlen);

/*
 * The original's parse_schedule(). now_us is "now" for relative one-shots. Returns a new
 * schedule object, or NULL with the original's error text in err (the four accepted forms
 * for unrecognised input, "Invalid cron expression '…': …", "Invalid timestamp '…': …").
 */
cJSON *cron_parse_schedule(const char *s, int64_t now_us, char *err, size_t errlen);

/*
 * The original's compute_next_run(): the next run as isoformat text in buf (CRON_ISO_MAX
 * bytes) — once: run_at while it has not run and is not older than now − 120 s; interval:
 * last_run + N minutes (now + N for the first run); cron: the next match after now.
 * last_run may be NULL. 0, -ENOENT (no further run), or -EINVAL (a schedule we cannot
 * read).
 */
int cron_next_run(const cJSON *schedule, const char *last_run, int64_t now_us, char *buf, size_t n);

/* How late a recurring run may be and still fire instead of being skipped: half the period,
 * clamped to 120 … 7200 s (120 for anything else). */
int64_t cron_grace_s(const cJSON *schedule, int64_t now_us);

/* The schedule's kind string ("once", "interval", "cron"), or "" when there is none. */
const char *cron_schedule_kind(const cJSON *schedule);

#endif /* CRON_SCHED_H */
