/*
 * cron_sched — see cron_sched.h.
 */
#include "cron_sched.h"

#include "rt_alloc.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define US_PER_S    1000000LL
#define SEARCH_DAYS (366 * 9)    /* Feb 29 can be eight years away (2096 → 2104) */
#define MINUTES_MAX 5000000000LL /* about 9500 years: Python's datetime would overflow */
#define MIN_GRACE_S 120
#define MAX_GRACE_S 7200

/* =============================================================== calendar */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int n[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : n[m - 1];
}

/* floor division for possibly negative values */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t cron_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * US_PER_S + ts.tv_nsec / 1000;
}

static int32_t local_offset(int64_t s)
{
    time_t t = (time_t)s;
    struct tm tm;
    if (!localtime_r(&t, &tm))
        return 0;
    return (int32_t)tm.tm_gmtoff;
}

char *cron_iso(int64_t us, int32_t off_s, char *buf, size_t n)
{
    int64_t s = floor_div(us, US_PER_S);
    int64_t frac = us - s * US_PER_S;
    if (off_s == CRON_LOCAL)
        off_s = local_offset(s);
    int64_t ls = s + off_s;
    int64_t days = floor_div(ls, 86400);
    int64_t sod = ls - days * 86400;
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    int len = snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d", y, m, d, (int)(sod / 3600),
                       (int)(sod / 60 % 60), (int)(sod % 60));
    if (frac && len > 0 && (size_t)len < n)
        len += snprintf(buf + len, n - (size_t)len, ".%06d", (int)frac);
    int32_t a = off_s < 0 ? -off_s : off_s;
    if (len > 0 && (size_t)len < n)
        len += snprintf(buf + len, n - (size_t)len, "%c%02d:%02d", off_s < 0 ? '-' : '+',
                        (int)(a / 3600), (int)(a / 60 % 60));
    if (a % 60 && len > 0 && (size_t)len < n)
        snprintf(buf + len, n - (size_t)len, ":%02d", (int)(a % 60));
    return buf;
}

/* ============================================================ local wall time */

static bool local_is(time_t t, int y, int mo, int d, int h, int mi)
{
    struct tm tm;
    if (!localtime_r(&t, &tm))
        return false;
    return tm.tm_year + 1900 == y && tm.tm_mon + 1 == mo && tm.tm_mday == d && tm.tm_hour == h &&
           tm.tm_min == mi;
}

/*
 * The instant a local wall-clock minute names: its first occurrence when the clock falls
 * back over it, the instant after the jump when the clock springs over it (what Python's
 * astimezone() does with fold=0).
 */
static int64_t wall_to_epoch(int y, int mo, int d, int h, int mi)
{
    int64_t cand[2], best = 0;
    bool have = false;
    for (int dst = 0; dst < 2; dst++) {
        struct tm tm = {.tm_year = y - 1900,
                        .tm_mon = mo - 1,
                        .tm_mday = d,
                        .tm_hour = h,
                        .tm_min = mi,
                        .tm_isdst = dst};
        cand[dst] = (int64_t)mktime(&tm);
        if (local_is((time_t)cand[dst], y, mo, d, h, mi) && (!have || cand[dst] < best)) {
            best = cand[dst];
            have = true;
        }
    }
    if (have)
        return best;
    return cand[0] > cand[1] ? cand[0] : cand[1];
}

/* ================================================================ ISO 8601 */

/* n digits at *p into *v; advances *p. */
static bool digits(const char **p, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        x = x * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *v = x;
    return true;
}

/* HH[:MM[:SS[.f…]]] or HHMM[SS]; leaves *p after it. */
static bool parse_clock(const char **p, int *h, int *mi, int *s, int *us)
{
    *mi = *s = *us = 0;
    if (!digits(p, 2, h))
        return false;
    bool colon = **p == ':';
    if (colon)
        (*p)++;
    else if (!isdigit((unsigned char)**p))
        return true;
    if (!digits(p, 2, mi))
        return false;
    if (colon ? **p == ':' : isdigit((unsigned char)**p)) {
        if (colon)
            (*p)++;
        if (!digits(p, 2, s))
            return false;
        if (**p == '.' || **p == ',') {
            (*p)++;
            if (!isdigit((unsigned char)**p))
                return false;
            int n = 0;
            for (; isdigit((unsigned char)**p); (*p)++, n++)
                if (n < 6)
                    *us = *us * 10 + (**p - '0');
            for (; n < 6; n++)
                *us *= 10;
        }
    }
    return true;
}

int cron_iso_parse(const char *s, int64_t *us, int32_t *off_s, bool *naive)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    if (!s || !digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return -EINVAL;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!parse_clock(&p, &h, &mi, &sec, &frac))
            return -EINVAL;
    }
    bool has_off = false;
    int32_t off = 0;
    if (*p == 'Z') {
        has_off = true;
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om, os, ous;
        if (!parse_clock(&p, &oh, &om, &os, &ous) || oh > 23 || om > 59 || os > 59)
            return -EINVAL;
        off = sign * (oh * 3600 + om * 60 + os);
        has_off = true;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 59 || y < 1)
        return -EINVAL;
    int64_t secs;
    if (has_off) {
        secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    } else {
        secs = wall_to_epoch(y, mo, d, h, mi) + sec;
        off = local_offset(secs);
    }
    *us = secs * US_PER_S + frac;
    *off_s = off;
    if (naive)
        *naive = !has_off;
    return 0;
}

/* ========================================================== cron expressions */

typedef struct field_spec {
    const char *name;
    int lo, hi;
} field_spec;

static const field_spec fields[5] = {
    {"minute", 0, 59}, {"hour", 0, 23}, {"day", 1, 31}, {"month", 1, 12}, {"weekday", 0, 7}};

static int bad_expr(char *err, size_t errlen, const char *s, bool range)
{
    snprintf(err, errlen, "[%s] is not acceptable%s", s, range ? ", out of range" : "");
    return -EINVAL;
}

/* A number at *p (at most 4 digits); false if there is none. */
static bool number(const char **p, int *v)
{
    if (!isdigit((unsigned char)**p))
        return false;
    int x = 0, n = 0;
    for (; isdigit((unsigned char)**p); (*p)++)
        if (++n <= 4)
            x = x * 10 + (**p - '0');
    *v = n <= 4 ? x : 99999;
    return true;
}

/* One comma-separated item of a field into bits. -1 syntax, -2 range, 0 ok. */
static int parse_item(const char *it, size_t len, const field_spec *f, uint64_t *bits)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, it, len);
    buf[len] = '\0';
    const char *p = buf;
    int lo, hi, step = 1;
    bool star = *p == '*', range = false;
    if (star) {
        p++;
        lo = f->lo;
        hi = f->hi == 7 ? 6 : f->hi;
    } else {
        if (!number(&p, &lo))
            return -1;
        hi = lo;
        if (*p == '-') {
            p++;
            range = true;
            if (!number(&p, &hi))
                return -1;
        }
    }
    if (*p == '/') {
        p++;
        if (!number(&p, &step))
            return -1;
        if (!star && !range)
            hi = f->hi == 7 ? 6 : f->hi; /* "a/n": from a to the end, croniter's reading */
    }
    if (*p)
        return -1;
    if (lo < f->lo || hi > f->hi || lo > hi || step < 1)
        return -2;
    for (int v = lo; v <= hi; v += step)
        *bits |= 1ull << (f->hi == 7 && v == 7 ? 0 : v);
    return 0;
}

int cron_expr_parse(const char *s, cron_expr *e, char *err, size_t errlen)
{
    memset(e, 0, sizeof(*e));
    const char *p = s ? s : "";
    uint64_t bits[5] = {0};
    int nf = 0;
    while (*p) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        const char *start = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (nf == 5) {
            snprintf(err, errlen,
                     "[%s] is not acceptable: only 5 fields (minute hour day month weekday) are "
                     "supported",
                     s);
            return -EINVAL;
        }
        const field_spec *f = &fields[nf];
        const char *q = start;
        while (q < p) {
            const char *c = memchr(q, ',', (size_t)(p - q));
            const char *end = c ? c : p;
            int r = parse_item(q, (size_t)(end - q), f, &bits[nf]);
            if (r)
                return bad_expr(err, errlen, s, r == -2);
            q = c ? c + 1 : p;
            if (c && q == p)
                return bad_expr(err, errlen, s, false); /* a trailing comma */
        }
        nf++;
    }
    if (nf != 5) {
        snprintf(err, errlen, "Exactly 5 columns has to be specified for iterator expression.");
        return -EINVAL;
    }
    e->minute = bits[0];
    e->hour = (uint32_t)bits[1];
    e->dom = (uint32_t)bits[2];
    e->month = (uint16_t)bits[3];
    e->dow = (uint8_t)bits[4];
    e->dom_any = e->dom == 0xFFFFFFFEu; /* 1..31 */
    e->dow_any = e->dow == 0x7F;        /* 0..6 */
    return 0;
}

static bool day_matches(const cron_expr *e, int y, int m, int d, int64_t days)
{
    if (!(e->month & (1u << m)))
        return false;
    (void)y;
    int wd = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
    bool dom_ok = (e->dom >> d) & 1u, dow_ok = (e->dow >> wd) & 1u;
    if (!e->dom_any && !e->dow_any)
        return dom_ok || dow_ok; /* croniter's day_or */
    return dom_ok && dow_ok;
}

int cron_expr_next(const cron_expr *e, int64_t after_s, int64_t *next_s)
{
    int32_t off = local_offset(after_s);
    int64_t day0 = floor_div(after_s + off, 86400);
    int start_h = (int)((after_s + off - day0 * 86400) / 3600);
    for (int64_t i = 0; i < SEARCH_DAYS; i++) {
        int y, m, d;
        civil_from_days(day0 + i, &y, &m, &d);
        if (!day_matches(e, y, m, d, day0 + i))
            continue;
        int64_t best = INT64_MAX;
        int best_h = 99;
        for (int h = i == 0 ? (start_h > 2 ? start_h - 2 : 0) : 0; h < 24; h++) {
            if (!((e->hour >> h) & 1u))
                continue;
            if (h > best_h + 2)
                break; /* wall order and instant order differ by at most a DST shift */
            for (int mi = 0; mi < 60; mi++) {
                if (!((e->minute >> mi) & 1u))
                    continue;
                int64_t t = wall_to_epoch(y, m, d, h, mi);
                if (t > after_s && t < best) {
                    best = t;
                    if (best_h == 99)
                        best_h = h;
                }
            }
        }
        if (best != INT64_MAX) {
            *next_s = best;
            return 0;
        }
    }
    return -ENOENT;
}

/* ================================================================ schedules */

static char *trim_copy(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return rt_xstrndup(s, n);
}

int cron_parse_duration(const char *s, int64_t *minutes, char *err, size_t errlen)
{
    static const char *const units[] = {"m",   "min",  "mins",  "minute", "minutes", "h",   "hr",
                                        "hrs", "hour", "hours", "d",      "day",     "days"};
    char *t = trim_copy(s ? s : "");
    for (char *c = t; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    const char *p = t;
    int64_t v = 0;
    bool ok = isdigit((unsigned char)*p), big = false;
    for (; isdigit((unsigned char)*p); p++) {
        if (v > MINUTES_MAX)
            big = true;
        else
            v = v * 10 + (*p - '0');
    }
    while (isspace((unsigned char)*p))
        p++;
    bool unit_ok = false;
    for (size_t i = 0; ok && i < RT_ARRAY_LEN(units); i++)
        unit_ok |= strcmp(p, units[i]) == 0;
    if (!ok || !unit_ok) {
        snprintf(err, errlen, "Invalid duration: '%s'. Use format like '30m', '2h', or '1d'", t);
        rt_free(t);
        return -EINVAL;
    }
    int64_t mult = *p == 'm' ? 1 : *p == 'h' ? 60 : 1440;
    rt_free(t);
    if (big || v > MINUTES_MAX / mult) {
        snprintf(err, errlen, "date value out of range");
        return -ERANGE;
    }
    *minutes = v * mult;
    return 0;
}

/* Five fields of [0-9*,/-] and at least five fields: the original's cron pre-check. */
static bool looks_like_cron(const char *s)
{
    int nf = 0;
    const char *p = s;
    while (*p && nf < 5) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        for (; *p && !isspace((unsigned char)*p); p++)
            if (!isdigit((unsigned char)*p) && !strchr("*-,/", *p))
                return false;
        nf++;
    }
    return nf == 5;
}

static bool starts_with_date(const char *s)
{
    for (int i = 0; i < 10; i++) {
        bool dash = i == 4 || i == 7;
        if (dash ? s[i] != '-' : !isdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* s with every 'Z' replaced by "+00:00" (Python's str.replace), a new string. */
static char *replace_z(const char *s)
{
    size_t n = strlen(s), z = 0;
    for (size_t i = 0; i < n; i++)
        z += s[i] == 'Z';
    char *out = rt_xmalloc(n + z * 5 + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == 'Z') {
            memcpy(o, "+00:00", 6);
            o += 6;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

static cJSON *parse_timestamp(const char *s, char *err, size_t errlen)
{
    char *rep = replace_z(s);
    int64_t us;
    int32_t off;
    bool naive;
    int r = cron_iso_parse(rep, &us, &off, &naive);
    if (r) {
        snprintf(err, errlen, "Invalid timestamp '%s': Invalid isoformat string: '%s'", s, rep);
        rt_free(rep);
        return NULL;
    }
    rt_free(rep);
    char iso[CRON_ISO_MAX], disp[64];
    cron_iso(us, off, iso, sizeof(iso));
    /* strftime('%Y-%m-%d %H:%M') in the timestamp's own offset: the first 16 characters */
    snprintf(disp, sizeof(disp), "once at %.10s %.5s", iso, iso + 11);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", "once");
    cJSON_AddStringToObject(o, "run_at", iso);
    cJSON_AddStringToObject(o, "display", disp);
    return o;
}

cJSON *cron_parse_schedule(const char *s, int64_t now_us, char *err, size_t errlen)
{
    char *sch = trim_copy(s ? s : "");
    cJSON *o = NULL;
    int64_t minutes;
    if (strncasecmp(sch, "every ", 6) == 0) {
        if (cron_parse_duration(sch + 6, &minutes, err, errlen) == 0) {
            char disp[64];
            snprintf(disp, sizeof(disp), "every %lldm", (long long)minutes);
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "kind", "interval");
            cJSON_AddNumberToObject(o, "minutes", (double)minutes);
            cJSON_AddStringToObject(o, "display", disp);
        }
    } else if (looks_like_cron(sch)) {
        cron_expr e;
        char why[256];
        if (cron_expr_parse(sch, &e, why, sizeof(why)) == 0) {
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "kind", "cron");
            cJSON_AddStringToObject(o, "expr", sch);
            cJSON_AddStringToObject(o, "display", sch);
        } else {
            snprintf(err, errlen, "Invalid cron expression '%s': %s", sch, why);
        }
    } else if (strchr(sch, 'T') || starts_with_date(sch)) {
        o = parse_timestamp(sch, err, errlen);
    } else if (cron_parse_duration(sch, &minutes, err, errlen) == 0) {
        char iso[CRON_ISO_MAX];
        cron_iso(now_us + minutes * 60 * US_PER_S, CRON_LOCAL, iso, sizeof(iso));
        char *disp = rt_xasprintf("once in %s", sch);
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", "once");
        cJSON_AddStringToObject(o, "run_at", iso);
        cJSON_AddStringToObject(o, "display", disp);
        rt_free(disp);
    } else if (strcmp(err, "date value out of range") != 0) {
        snprintf(err, errlen,
                 "Invalid schedule '%s'. Use:\n"
                 "  - Duration: '30m', '2h', '1d' (one-shot)\n"
                 "  - Interval: 'every 30m', 'every 2h' (recurring)\n"
                 "  - Cron: '0 9 * * *' (cron expression)\n"
                 "  - Timestamp: '2026-02-03T14:00:00' (one-shot at time)",
                 sch);
    }
    rt_free(sch);
    return o;
}

const char *cron_schedule_kind(const cJSON *schedule)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(schedule, "kind");
    return cJSON_IsString(k) ? k->valuestring : "";
}

static int next_cron(const cJSON *schedule, int64_t after_s, int64_t *next_s)
{
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(schedule, "expr");
    cron_expr e;
    char why[256];
    if (!cJSON_IsString(ex) || cron_expr_parse(ex->valuestring, &e, why, sizeof(why)))
        return -EINVAL;
    return cron_expr_next(&e, after_s, next_s);
}

int cron_next_run(const cJSON *schedule, const char *last_run, int64_t now_us, char *buf, size_t n)
{
    const char *kind = cron_schedule_kind(schedule);
    if (strcmp(kind, "once") == 0) {
        const cJSON *ra = cJSON_GetObjectItemCaseSensitive(schedule, "run_at");
        int64_t at;
        int32_t off;
        if (last_run && *last_run)
            return -ENOENT;
        if (!cJSON_IsString(ra) || !*ra->valuestring)
            return -ENOENT;
        if (cron_iso_parse(ra->valuestring, &at, &off, NULL))
            return -EINVAL;
        if (at < now_us - CRON_ONESHOT_GRACE_S * US_PER_S)
            return -ENOENT;
        rt_strlcpy(buf, ra->valuestring, n);
        return 0;
    }
    if (strcmp(kind, "interval") == 0) {
        const cJSON *mi = cJSON_GetObjectItemCaseSensitive(schedule, "minutes");
        if (!cJSON_IsNumber(mi) || mi->valuedouble < 0 || mi->valuedouble > (double)MINUTES_MAX)
            return -EINVAL;
        int64_t base = now_us, step = (int64_t)mi->valuedouble * 60 * US_PER_S;
        int32_t off;
        if (last_run && *last_run && cron_iso_parse(last_run, &base, &off, NULL))
            return -EINVAL;
        cron_iso(base + step, CRON_LOCAL, buf, n);
        return 0;
    }
    if (strcmp(kind, "cron") == 0) {
        int64_t next;
        int r = next_cron(schedule, floor_div(now_us, US_PER_S), &next);
        if (r)
            return r;
        cron_iso(next * US_PER_S, CRON_LOCAL, buf, n);
        return 0;
    }
    return -EINVAL;
}

int64_t cron_grace_s(const cJSON *schedule, int64_t now_us)
{
    const char *kind = cron_schedule_kind(schedule);
    int64_t period = -1;
    if (strcmp(kind, "interval") == 0) {
        const cJSON *mi = cJSON_GetObjectItemCaseSensitive(schedule, "minutes");
        period = cJSON_IsNumber(mi) ? (int64_t)mi->valuedouble * 60 : 60;
    } else if (strcmp(kind, "cron") == 0) {
        int64_t a, b;
        if (next_cron(schedule, floor_div(now_us, US_PER_S), &a) == 0 &&
            next_cron(schedule, a, &b) == 0)
            period = b - a;
    }
    if (period < 0)
        return MIN_GRACE_S;
    int64_t g = period / 2;
    return g < MIN_GRACE_S ? MIN_GRACE_S : g > MAX_GRACE_S ? MAX_GRACE_S : g;
}
