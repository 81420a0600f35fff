/*
 * ft_search — the engine behind search_files (agent-core §3.3, the original's
 * ShellFileOperations.search).
 *
 * target "content": ripgrep when `rg` is on PATH, run as
 *     rg --no-config --color never --line-number --no-heading --with-filename --null
 *        --sort path [-C n] [--glob g] [-l | -c] -e <pattern> -- <path>
 * (the original's flags plus --null, --sort path and --no-config: output that parses
 * without guessing where a file name ends, results in a stable order, and no user config
 * changing the format), else a built-in search (ft_walk.c) that reproduces rg's
 * defaults: hidden files and directories skipped, binary files (a NUL byte) skipped,
 * symlinks not followed, entries visited in name order, globs as rg's --glob, Rust regex
 * syntax translated for regcomp (ft_regex). The built-in search does not read .gitignore
 * files; it also skips node_modules.
 *
 * target "files": like `find <path> -type f -name <pattern>` sorted newest first: every
 * regular file whose name matches (fnmatch; leading dots match), .git and node_modules
 * not entered, symlinks not followed (the starting path is), the newest offset+limit kept
 * in a bounded heap.
 *
 * Results are the original's SearchResult shapes:
 *   content:     {total_count, matches:[{path,line,content}], truncated?, error?}
 *   files_only:  {total_count, files:[...], truncated?, error?}
 *   count:       {total_count, counts:{path:n}, truncated?, error?}
 *   files:       {total_count, files:[...], truncated?, error?}
 * Empty arrays/objects are left out. In content mode context lines count as entries, as in
 * the original. Each match's content is cut to 500 characters.
 *
 * Pagination: at most offset+limit+1 entries are gathered, so total_count is exact up to
 * that many and `truncated` says whether more exist (the original fetched offset+limit
 * and so never saw that there were more). count mode pages over files. The target "files"
 * counts every matching file. limit is clamped to 1..FT_SEARCH_LIMIT_MAX, offset to >= 0,
 * context to 0..FT_SEARCH_CONTEXT_MAX.
 *
 * A search is a job run in slices (ft_search_step), at most FT_SEARCH_TIMEOUT_MS in all;
 * when time runs out the results so far are returned with truncated and an error note.
 * The environment variable HERMES_SEARCH_BACKEND=builtin forces the built-in search.
 *
 * Threads: a job belongs to one thread; it blocks for at most the slice given.
 */
#ifndef FT_SEARCH_H
#define FT_SEARCH_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#define FT_SEARCH_TIMEOUT_MS    60000
#define FT_SEARCH_LIMIT_MAX     1000
#define FT_SEARCH_CONTEXT_MAX   100
#define FT_SEARCH_CONTENT_CHARS 500
#define FT_SEARCH_LINE_MAX      (1u << 20) /* longer lines are matched on their start */
#define FT_SEARCH_MAX_DEPTH     128
#define FT_SEARCH_GLOB_MAX      1024

enum { FT_TARGET_CONTENT = 0, FT_TARGET_FILES = 1 };
enum { FT_MODE_CONTENT = 0, FT_MODE_FILES_ONLY = 1, FT_MODE_COUNT = 2 };

typedef struct ft_search_opts {
    const char *pattern;   /* regex (content) or glob (files) */
    const char *path;      /* display form: "~" already expanded; "." by default */
    const char *cwd;       /* where relative paths start (NULL: the process's) */
    const char *file_glob; /* content only; NULL for none */
    int target;            /* FT_TARGET_* */
    int mode;              /* FT_MODE_* */
    int64_t limit, offset, context;
    bool builtin;       /* never use rg */
    int64_t timeout_ms; /* 0: FT_SEARCH_TIMEOUT_MS */
} ft_search_opts;

typedef struct ft_search ft_search;

/* Begin a search. Returns the job, or NULL with *result set when the answer is immediate
 * (bad arguments, path not found, nothing to do). Strings in o are copied. */
ft_search *ft_search_start(const ft_search_opts *o, cJSON **result);

/* Work for about slice_ms. Returns true with *result (new object) when done. */
bool ft_search_step(ft_search *s, int slice_ms, cJSON **result);

/* End early: the results so far plus {"error": why} (new object). The job stays to be
 * freed. */
cJSON *ft_search_stop(ft_search *s, const char *why);

/* Free (kills rg if still running); NULL is a no-op. */
void ft_search_free(ft_search *s);

/* Start and run to the end (blocks up to the timeout). New object. */
cJSON *ft_search_run(const ft_search_opts *o);

/* Whether a content search with these options would run rg. */
bool ft_search_uses_rg(const ft_search_opts *o);

#endif /* FT_SEARCH_H */
