/*
 * ft_fuzzy — the patch tool's find-and-replace with the original's chain of matching
 * strategies (tools/fuzzy_match.py, agent-core §3.3). The first strategy that finds at
 * least one match wins; more than one match without replace_all is an error; replacements
 * are applied right to left.
 *
 *   1 exact                  every occurrence (overlapping scan)
 *   2 line_trimmed           blocks of N lines equal after strip() of each line
 *   3 whitespace_normalized  runs of spaces/tabs collapsed to one space, mapped back
 *   4 indentation_flexible   blocks equal after lstrip() of each line
 *   5 escape_normalized      old_string with literal \n \t \r unescaped, then exact
 *   6 trimmed_boundary       only the first and last lines strip()ped
 *   7 block_anchor           first/last lines equal after strip, middle ratio >= 0.70
 *   8 context_aware          >= 50% of lines with per-line ratio >= 0.80
 * Line strategies match whole lines: from the start of the first line to the end of the
 * last one, without its newline. Ratios are difflib's (ft_seqmatch) over code points.
 *
 * Differences from the original, on purpose:
 *   - replace_all applies non-overlapping matches only (leftmost first); the original
 *     spliced overlapping spans and corrupted the text. The "Found N matches" count still
 *     counts every match, as before.
 *   - strategies 7 and 8 have a work budget (FT_FUZZY_WORK_BUDGET steps); a pathological
 *     input gives up with an error instead of running for minutes.
 *   - text is bytes; positions are byte offsets (the same spans as the original's
 *     character offsets for UTF-8 text).
 *
 * Threads: pure, any thread.
 */
#ifndef FT_FUZZY_H
#define FT_FUZZY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FT_FUZZY_NSTRATEGIES 8
#define FT_FUZZY_WORK_BUDGET 400000000ULL

typedef struct ft_match {
    size_t start, end; /* byte span in the content */
} ft_match;

typedef struct ft_matches {
    ft_match *v;  /* non-overlapping matches, ascending */
    size_t n;     /* entries in v */
    size_t total; /* every match found, overlapping ones included */
    size_t cap;
    bool gave_up; /* the work budget ran out */
} ft_matches;

void ft_matches_fini(ft_matches *m);

/* The name of strategy i (1..8), e.g. "line_trimmed". */
const char *ft_fuzzy_strategy_name(int i);

/* Run one strategy (1..8) alone. m must be zeroed or finished; budget 0 means the default. */
void ft_fuzzy_find(int strategy, const char *content, size_t clen, const char *pat, size_t plen,
                   uint64_t budget, ft_matches *m);

typedef struct ft_fuzzy_result {
    char *content;   /* new content (owned, NUL-terminated) on success, else NULL */
    size_t len;      /* its length */
    size_t count;    /* replacements made */
    int strategy;    /* 1..8 on success, 0 otherwise */
    char error[256]; /* "" on success, else the original's error text */
} ft_fuzzy_result;

/*
 * fuzzy_find_and_replace(content, old, new, replace_all). Returns 0 with r->content set, or
 * -EINVAL with r->error one of the original's messages:
 *   "old_string cannot be empty", "old_string and new_string are identical",
 *   "Found <n> matches for old_string. Provide more context to make it unique, or use
 *   replace_all=True.", "Could not find a match for old_string in the file".
 */
int ft_fuzzy_replace(const char *content, size_t clen, const char *old, size_t olen,
                     const char *new_, size_t nlen, bool replace_all, ft_fuzzy_result *r);

void ft_fuzzy_result_fini(ft_fuzzy_result *r);

#endif /* FT_FUZZY_H */
