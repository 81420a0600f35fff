/*
 * ft_seqmatch — Python's difflib.SequenceMatcher (isjunk=None, autojunk=True) over arrays
 * of 32-bit symbols, and difflib.unified_diff over the lines of two texts.
 *
 * The fuzzy matcher (ft_fuzzy) needs SequenceMatcher.ratio() on code points with the exact
 * numbers the original gets, thresholds included, and patch results carry a unified diff in
 * difflib's layout; both come from here. The algorithm is difflib's: b2j index of the second
 * sequence with "popular" symbols (more than 1% + 1 of a sequence of 200 or more) removed,
 * find_longest_match with the same tie-breaks, matching blocks from a stack of ranges,
 * adjacent blocks merged.
 *
 * A workspace (ft_sm) keeps the index and row buffers between calls, so the thousands of
 * small ratio() calls a fuzzy match makes do not allocate. It also counts the inner-loop
 * steps it has done (ft_sm_work), which callers use as a work budget.
 *
 * Threads: a workspace belongs to one thread at a time; everything else is pure.
 */
#ifndef FT_SEQMATCH_H
#define FT_SEQMATCH_H

#include "rt_buf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ft_sm ft_sm;

typedef struct ft_sm_block {
    size_t a, b, size; /* a[a..a+size) == b[b..b+size) */
} ft_sm_block;

ft_sm *ft_sm_new(void);
void ft_sm_free(ft_sm *w);

/* Inner-loop steps done by this workspace so far (a cost measure, not a time). */
uint64_t ft_sm_work(const ft_sm *w);

/*
 * The matching blocks of a and b, sorted, adjacent ones merged, ending with the
 * (la, lb, 0) sentinel like difflib's get_matching_blocks(). The array belongs to w and
 * stays valid until its next call. Returns the number of blocks (sentinel included).
 */
size_t ft_sm_blocks(ft_sm *w, const uint32_t *a, size_t la, const uint32_t *b, size_t lb,
                    const ft_sm_block **out);

/* SequenceMatcher(None, a, b).ratio(): 2*M/(la+lb), 1.0 when both are empty. */
double ft_sm_ratio(ft_sm *w, const uint32_t *a, size_t la, const uint32_t *b, size_t lb);

/*
 * Append difflib.unified_diff(a.splitlines(True), b.splitlines(True), fromfile, tofile)
 * (3 lines of context, no dates) to out. Lines are split at '\n' only. Where the original
 * would glue a last line without newline to the next diff line, a "\ No newline at end of
 * file" marker line is written instead, as GNU diff does. Returns 0 or -E2BIG when out's
 * limit was reached (out then holds a prefix of the diff).
 */
int ft_unified_diff(const char *a, size_t la, const char *b, size_t lb, const char *fromfile,
                    const char *tofile, rt_buf *out);

#endif /* FT_SEQMATCH_H */
