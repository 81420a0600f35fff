/*
 * redact — secret masking (see redact.h). Each pass is a left-to-right scan that either
 * matches at the current position (the leftmost match, as Python's re.sub finds it) and
 * writes the replacement, or copies one byte and moves on. The comments name the
 * original's expression each scanner implements.
 */
#include "redact.h"

#include "rt_alloc.h"
#include "rt_buf.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Python's \s for the characters we can see byte-wise. */
static bool is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(unsigned char c)
{
    return is_alpha(c) || is_digit(c);
}

/* [A-Za-z0-9_-]: the characters a prefixed key may not touch on either side. */
static bool is_tok(unsigned char c)
{
    return is_alnum(c) || c == '_' || c == '-';
}

static size_t count_cp(const char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)p[i] & 0xC0) != 0x80;
    return k;
}

const char *redact_mask(const char *value, size_t n, char *out, size_t outlen)
{
    if (!outlen)
        return out;
    if (count_cp(value, n) < 18) {
        snprintf(out, outlen, "***");
        return out;
    }
    /* First 6 code points. */
    size_t head = 0;
    for (int cps = 0; head < n && cps < 6; cps++) {
        head++;
        while (head < n && ((unsigned char)value[head] & 0xC0) == 0x80)
            head++;
    }
    /* Last 4 code points. */
    size_t tail = n;
    for (int cps = 0; tail > head && cps < 4; cps++) {
        tail--;
        while (tail > head && ((unsigned char)value[tail] & 0xC0) == 0x80)
            tail--;
    }
    snprintf(out, outlen, "%.*s...%.*s", (int)head, value, (int)(n - tail), value + tail);
    return out;
}

static void put_mask(rt_buf *b, const char *v, size_t n)
{
    char m[64];
    (void)rt_buf_append_str(b, redact_mask(v, n, m, sizeof(m))); /* within the pass cap */
}

/* Each pass writes into a buffer capped at twice its input (no match grows its text by
 * more than half), so appends cannot fail. */
static void pass_init(rt_buf *b, size_t inlen)
{
    rt_buf_init(b, inlen * 2 + 64);
}

/* ---------------------------------------------------------------- pass 1: prefixes */

enum { CL_TOK, CL_ALNUM, CL_ALNUM_US, CL_ALNUM_DASH, CL_TOK_EQ };

static bool in_class(int cl, unsigned char c)
{
    switch (cl) {
    case CL_TOK: return is_tok(c);
    case CL_ALNUM: return is_alnum(c);
    case CL_ALNUM_US: return is_alnum(c) || c == '_';
    case CL_ALNUM_DASH: return is_alnum(c) || c == '-';
    default: return is_tok(c) || c == '=';
    }
}

static const struct {
    const char *prefix; /* '?' stands for one of [baprs] */
    int cl;             /* the run's character class */
    size_t min;         /* minimum run length */
} prefixes[] = {
    {"sk-", CL_TOK, 10},    /* sk-[A-Za-z0-9_-]{10,} */
    {"ghp_", CL_ALNUM, 10}, /* ghp_[A-Za-z0-9]{10,} */
    {"github_pat_", CL_ALNUM_US, 10},
    {"xox?-", CL_ALNUM_DASH, 10}, /* xox[baprs]-[A-Za-z0-9-]{10,} */
    {"AIza", CL_TOK, 30},
    {"pplx-", CL_ALNUM, 10},
    {"fal_", CL_TOK, 10},
    {"fc-", CL_ALNUM, 10},
    {"bb_live_", CL_TOK, 10},
    {"gAAAA", CL_TOK_EQ, 20}, /* gAAAA[A-Za-z0-9_=-]{20,} */
};

static size_t prefix_len_at(const char *s, const char *prefix)
{
    size_t i = 0;
    for (; prefix[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (prefix[i] == '?' ? !(c && strchr("baprs", c)) : c != (unsigned char)prefix[i])
            return 0;
    }
    return i;
}

/*
 * (?<![A-Za-z0-9_-])(alternatives)(?![A-Za-z0-9_-]) at s: the token's length, or 0.
 * Each run class is a subset of the look-ahead set or adds only '=', so backtracking a
 * run can never satisfy the look-ahead: the maximal run decides.
 */
static size_t prefix_match(const char *start, const char *s)
{
    if (s > start && is_tok((unsigned char)s[-1]))
        return 0;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t pl = prefix_len_at(s, prefixes[i].prefix);
        if (!pl)
            continue;
        size_t run = 0;
        while (s[pl + run] && in_class(prefixes[i].cl, (unsigned char)s[pl + run]))
            run++;
        if (run >= prefixes[i].min && !is_tok((unsigned char)s[pl + run]))
            return pl + run;
    }
    return 0;
}

static char *pass_prefixes(const char *in)
{
    size_t n = strlen(in);
    rt_buf b;
    pass_init(&b, n);
    for (const char *s = in; *s;) {
        size_t m = prefix_match(in, s);
        if (m) {
            put_mask(&b, s, m);
            s += m;
        } else {
            (void)rt_buf_append(&b, s++, 1);
        }
    }
    return rt_buf_steal(&b, NULL);
}

/* ------------------------------------------------------- pass 2: NAME=value pairs */

static bool has_secret_name(const char *s, size_t n)
{
    static const char *const names[] = {"API_KEY",  "APIKEY", "TOKEN",      "SECRET",
                                        "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t k = strlen(names[i]);
        for (size_t j = 0; j + k <= n; j++)
            if (strncasecmp(s + j, names[i], k) == 0)
                return true;
    }
    return false;
}

/*
 * ([A-Z_]*NAME[A-Z_]*)\s*=\s*(['"]?)(\S+)\2 (IGNORECASE) for the letter run s[0..run):
 * the name must be the whole run (the greedy tail cannot stop before a letter, and only
 * \s or '=' may follow it). Returns the match length, or 0; the value is [*v, *v+*vn),
 * quoted with *q (0 when unquoted).
 */
static size_t assign_match(const char *s, size_t run, const char **v, size_t *vn, char *q)
{
    size_t i = run;
    while (is_space((unsigned char)s[i]))
        i++;
    if (s[i] != '=')
        return 0;
    i++;
    while (is_space((unsigned char)s[i]))
        i++;
    if (s[i] == '\'' || s[i] == '"') {
        /* Quoted: \S+ backtracks to the last matching quote with at least one char
         * before it, inside the non-blank run after the opening quote. */
        size_t r = i + 1, last = 0;
        for (size_t k = r; s[k] && !is_space((unsigned char)s[k]); k++)
            if (s[k] == s[i] && k > r)
                last = k;
        if (last) {
            *v = s + r;
            *vn = last - r;
            *q = s[i];
            return last + 1;
        }
    }
    /* Unquoted (or no closing quote): the non-blank run, quote included. */
    size_t e = i;
    while (s[e] && !is_space((unsigned char)s[e]))
        e++;
    if (e == i)
        return 0;
    *v = s + i;
    *vn = e - i;
    *q = 0;
    return e;
}

static bool is_name(unsigned char c)
{
    return is_alpha(c) || c == '_';
}

static char *pass_assignments(const char *in)
{
    size_t n = strlen(in);
    rt_buf b;
    pass_init(&b, n);
    const char *s = in;
    while (*s) {
        if (!is_name((unsigned char)*s)) {
            (void)rt_buf_append(&b, s++, 1);
            continue;
        }
        size_t run = 0;
        while (is_name((unsigned char)s[run]))
            run++;
        const char *v;
        size_t vn, m = 0;
        char q;
        if (has_secret_name(s, run))
            m = assign_match(s, run, &v, &vn, &q);
        if (!m) {
            (void)rt_buf_append(&b, s, run);
            s += run;
            continue;
        }
        (void)rt_buf_append(&b, s, run);
        (void)rt_buf_append(&b, "=", 1);
        if (q)
            (void)rt_buf_append(&b, &q, 1);
        put_mask(&b, v, vn);
        if (q)
            (void)rt_buf_append(&b, &q, 1);
        s += m;
    }
    return rt_buf_steal(&b, NULL);
}

/* ---------------------------------------------------------- pass 3: JSON fields */

/* ("(?:api_?[Kk]ey|token|secret|password|access_token|refresh_token|auth_token|bearer)")
 * \s*:\s*"([^"]+)" (IGNORECASE) at s (s[0] == '"'). */
static size_t json_match(const char *s, size_t *keylen, const char **v, size_t *vn)
{
    static const char *const keys[] = {"apikey",        "api_key",    "token",
                                       "secret",        "password",   "access_token",
                                       "refresh_token", "auth_token", "bearer"};
    size_t k = 0;
    while (k < 16 && s[1 + k] && s[1 + k] != '"')
        k++;
    if (s[1 + k] != '"')
        return 0;
    bool hit = false;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && !hit; i++)
        hit = strlen(keys[i]) == k && strncasecmp(s + 1, keys[i], k) == 0;
    if (!hit)
        return 0;
    *keylen = k + 2;
    size_t i = k + 2;
    while (is_space((unsigned char)s[i]))
        i++;
    if (s[i] != ':')
        return 0;
    i++;
    while (is_space((unsigned char)s[i]))
        i++;
    if (s[i] != '"')
        return 0;
    size_t e = i + 1;
    while (s[e] && s[e] != '"')
        e++;
    if (!s[e] || e == i + 1)
        return 0;
    *v = s + i + 1;
    *vn = e - i - 1;
    return e + 1;
}

static char *pass_json(const char *in)
{
    size_t n = strlen(in);
    rt_buf b;
    pass_init(&b, n);
    for (const char *s = in; *s;) {
        size_t kl, vn, m = 0;
        const char *v;
        if (*s == '"')
            m = json_match(s, &kl, &v, &vn);
        if (!m) {
            (void)rt_buf_append(&b, s++, 1);
            continue;
        }
        (void)rt_buf_append(&b, s, kl);
        (void)rt_buf_append_str(&b, ": \"");
        put_mask(&b, v, vn);
        (void)rt_buf_append(&b, "\"", 1);
        s += m;
    }
    return rt_buf_steal(&b, NULL);
}

/* ------------------------------------------------------ pass 4: Bearer headers */

/* (Authorization:\s*Bearer\s+)(\S+) (IGNORECASE) at s: match length, value offset. */
static size_t bearer_match(const char *s, size_t *voff)
{
    static const char a[] = "authorization:", br[] = "bearer";
    if (strncasecmp(s, a, sizeof(a) - 1) != 0)
        return 0;
    size_t i = sizeof(a) - 1;
    while (is_space((unsigned char)s[i]))
        i++;
    if (strncasecmp(s + i, br, sizeof(br) - 1) != 0)
        return 0;
    i += sizeof(br) - 1;
    if (!is_space((unsigned char)s[i]))
        return 0;
    while (is_space((unsigned char)s[i]))
        i++;
    size_t e = i;
    while (s[e] && !is_space((unsigned char)s[e]))
        e++;
    if (e == i)
        return 0;
    *voff = i;
    return e;
}

static char *pass_bearer(const char *in)
{
    size_t n = strlen(in);
    rt_buf b;
    pass_init(&b, n);
    for (const char *s = in; *s;) {
        size_t voff, m = bearer_match(s, &voff);
        if (!m) {
            (void)rt_buf_append(&b, s++, 1);
            continue;
        }
        (void)rt_buf_append(&b, s, voff);
        put_mask(&b, s + voff, m - voff);
        s += m;
    }
    return rt_buf_steal(&b, NULL);
}

/* ----------------------------------------------------- pass 5: Telegram tokens */

static bool is_tg(unsigned char c)
{
    return is_tok(c);
}

/* (bot)?(\d{8,}):([-A-Za-z0-9_]{30,}) at s: match length and the digits' offset and
 * length. No look-around: every run is maximal. */
static size_t tg_match_digits(const char *s, size_t at, size_t *dn)
{
    size_t d = 0;
    while (is_digit((unsigned char)s[at + d]))
        d++;
    if (d < 8 || s[at + d] != ':')
        return 0;
    size_t t = 0;
    while (is_tg((unsigned char)s[at + d + 1 + t]))
        t++;
    if (t < 30)
        return 0;
    *dn = d;
    return at + d + 1 + t;
}

static char *pass_telegram(const char *in)
{
    size_t n = strlen(in);
    rt_buf b;
    pass_init(&b, n);
    for (const char *s = in; *s;) {
        size_t dn = 0, m = 0, at = 0;
        if (strncmp(s, "bot", 3) == 0) {
            at = 3;
            m = tg_match_digits(s, at, &dn);
        }
        if (!m && is_digit((unsigned char)*s)) {
            at = 0;
            m = tg_match_digits(s, at, &dn);
            if (!m) {
                /* No later start inside this digit run can match either. */
                size_t d = 0;
                while (is_digit((unsigned char)s[d]))
                    d++;
                (void)rt_buf_append(&b, s, d);
                s += d;
                continue;
            }
        }
        if (!m) {
            (void)rt_buf_append(&b, s++, 1);
            continue;
        }
        (void)rt_buf_append(&b, s, at + dn);
        (void)rt_buf_append_str(&b, ":***");
        s += m;
    }
    return rt_buf_steal(&b, NULL);
}

/* ------------------------------------------------------------------ entry point */

char *redact_secrets(const char *text)
{
    if (!text)
        return NULL;
    char *(*const passes[])(const char *) = {pass_prefixes, pass_assignments, pass_json,
                                             pass_bearer, pass_telegram};
    char *cur = rt_xstrdup(text);
    for (size_t i = 0; i < sizeof(passes) / sizeof(passes[0]); i++) {
        char *next = passes[i](cur);
        rt_free(cur);
        cur = next;
    }
    return cur;
}
