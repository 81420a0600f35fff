/*
 * ft_search_int — shared between ft_search.c (API, results, the rg backend) and ft_walk.c
 * (the built-in directory walk for content and file-name searches). Not exported.
 *
 * Threads: everything belongs to the search's thread.
 */
#ifndef FT_SEARCH_INT_H
#define FT_SEARCH_INT_H

#include "ft_regex.h"
#include "ft_search.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Entries in the order they are found; only the page [offset, offset+limit) is kept. */
typedef struct ft_collect {
    int mode;             /* FT_MODE_* */
    size_t offset, limit; /* the page */
    size_t want;          /* offset + limit + 1: gathering stops there */
    size_t seen;          /* entries found so far (<= want) */
    cJSON *items;         /* matches or files (array) or counts (object) */
    int64_t count_sum;    /* count mode: sum over the page */
} ft_collect;

/* Each returns false once the collector is full (stop searching). */
bool ft__collect_line(ft_collect *c, const char *path, size_t pn, uint64_t line, const char *text,
                      size_t n);
bool ft__collect_file(ft_collect *c, const char *path, size_t pn);
bool ft__collect_count(ft_collect *c, const char *path, size_t pn, int64_t count);

/* Monotonic milliseconds. */
int64_t ft__now_ms(void);

typedef struct ft_walk ft_walk;

/*
 * A built-in walk from root (abs: for system calls; disp: as shown) for a content search
 * (re set: lines go to c) or a file-name search (re NULL: names matched against name_glob,
 * newest kept). Takes no ownership.
 */
ft_walk *ft__walk_new(const ft_search_opts *o, const char *abs, const char *disp, ft_regex *re,
                      ft_collect *c);
/* Work until until_ms (monotonic). Returns true when the walk is over. */
bool ft__walk_step(ft_walk *w, int64_t until_ms);
/* File-name search: the total found and the page (new array, newest first). */
size_t ft__walk_files(ft_walk *w, size_t offset, size_t limit, cJSON **files);
void ft__walk_free(ft_walk *w);

#endif /* FT_SEARCH_INT_H */
