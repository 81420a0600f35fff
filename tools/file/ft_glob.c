/*
 * ft_glob — see ft_glob.h. Braces are expanded first (at most FT_GLOB_MAX_ALTS patterns);
 * each pattern is matched by a backtracking matcher with a step budget (FT_GLOB_MAX_STEPS),
 * so no pattern can make a match run away.
 */
#include "ft_glob.h"

#include "ft_text.h"
#include "rt_alloc.h"

#include <stdint.h>
#include <string.h>

#define FT_GLOB_MAX_ALTS  64
#define FT_GLOB_MAX_STEPS 100000L

/* Match a bracket class at *pp against character c; advances *pp past ']'. */
static bool class_match(const char **pp, uint32_t c, bool *ok)
{
    const char *p = *pp + 1; /* after '[' */
    bool neg = false, hit = false;
    if (*p == '!' || *p == '^') {
        neg = true;
        p++;
    }
    bool first = true;
    while (*p && (*p != ']' || first)) {
        first = false;
        uint32_t lo, hi;
        if (*p == '\\' && p[1])
            p++;
        p += ft_utf8_next(p, strlen(p), &lo);
        hi = lo;
        if (*p == '-' && p[1] && p[1] != ']') {
            p++;
            if (*p == '\\' && p[1])
                p++;
            p += ft_utf8_next(p, strlen(p), &hi);
        }
        if (c >= lo && c <= hi)
            hit = true;
    }
    if (*p != ']') {
        *ok = false; /* unterminated: the '[' is a literal */
        return false;
    }
    *ok = true;
    *pp = p + 1;
    return hit != neg;
}

static bool match_here(const char *p, const char *t, long *steps)
{
    if (--*steps < 0)
        return false; /* pathological pattern: give up (no match) */
    while (*p) {
        if (p[0] == '*' && p[1] == '*') {
            const char *rest = p + 2;
            if (*rest == '/') { /* "**" "/": zero or more whole directories */
                rest++;
                if (match_here(rest, t, steps))
                    return true;
                for (const char *s = t; *s; s++)
                    if (*s == '/' && match_here(rest, s + 1, steps))
                        return true;
                return false;
            }
            for (const char *s = t;; s++) { /* any run, '/' included */
                if (match_here(rest, s, steps))
                    return true;
                if (!*s)
                    return false;
            }
        }
        if (*p == '*') {
            p++;
            for (const char *s = t;; s++) {
                if (match_here(p, s, steps))
                    return true;
                if (!*s || *s == '/')
                    return false;
            }
        }
        if (!*t)
            return false;
        uint32_t c;
        size_t cl = ft_utf8_next(t, strlen(t), &c);
        if (*p == '?') {
            if (*t == '/')
                return false;
            p++;
            t += cl;
            continue;
        }
        if (*p == '[') {
            bool ok;
            const char *q = p;
            bool hit = class_match(&q, c, &ok);
            if (ok) {
                if (!hit || *t == '/')
                    return false;
                p = q;
                t += cl;
                continue;
            }
        }
        if (*p == '\\' && p[1])
            p++;
        if (*p != *t)
            return false;
        p++;
        t++;
    }
    return *t == '\0';
}

/* Expand the first {a,b,...} group of g into alternatives (recursively), calling try on
 * each complete pattern until one matches. */
static bool expand(const char *g, const char *text, int *budget)
{
    const char *open = NULL;
    for (const char *p = g; *p; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            continue;
        }
        if (*p == '{') {
            open = p;
            break;
        }
    }
    const char *close = NULL;
    int depth = 0;
    for (const char *p = open; p && *p; p++) {
        if (*p == '\\' && p[1]) {
            p++;
        } else if (*p == '{') {
            depth++;
        } else if (*p == '}' && --depth == 0) {
            close = p;
            break;
        }
    }
    if (!open || !close) {
        if (--*budget < 0)
            return false;
        long steps = FT_GLOB_MAX_STEPS;
        return match_here(g, text, &steps);
    }
    size_t pre = (size_t)(open - g);
    const char *post = close + 1;
    const char *alt = open + 1;
    depth = 0;
    for (const char *p = alt;; p++) {
        if (*p == '\\' && p[1] && p + 1 < close) {
            p++;
            continue;
        }
        if (*p == '{')
            depth++;
        else if (*p == '}' && p != close)
            depth--;
        if (p == close || (*p == ',' && depth == 0)) {
            char *cand = rt_xasprintf("%.*s%.*s%s", (int)pre, g, (int)(p - alt), alt, post);
            bool hit = expand(cand, text, budget);
            rt_free(cand);
            if (hit)
                return true;
            if (p == close || *budget < 0)
                return false;
            alt = p + 1;
        }
    }
}

bool ft_glob_match(const char *glob, const char *text)
{
    int budget = FT_GLOB_MAX_ALTS;
    return expand(glob, text, &budget);
}
