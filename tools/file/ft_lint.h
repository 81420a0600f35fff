/*
 * ft_lint — the syntax check the patch tool runs on each file it edits (the original's
 * _check_lint, agent-core §3.3): by extension
 *   .py  python -m py_compile <file>      .js  node --check <file>
 *   .ts  npx tsc --noEmit <file>          .go  go vet <file>
 *   .rs  rustfmt --check <file>
 * run in the session's working directory with stdout and stderr merged, 30 s at most.
 * Results, as JSON objects:
 *   {"status":"skipped","message":"No linter for <ext> files"}
 *   {"status":"skipped","message":"<cmd> not available"}
 *   {"status":"ok"|"error","output":"<stripped output>"}
 * A timeout gives {"status":"error","output":"Command timed out after 30s"}. Where the
 * original needs `python` and Debian only has `python3`, python3 is used.
 *
 * A lint is a job that can be advanced in slices (ft_lint_step), so the tool actor stays
 * responsive to interrupts while a linter runs.
 *
 * Threads: a job belongs to one thread; it blocks for at most the slice given.
 */
#ifndef FT_LINT_H
#define FT_LINT_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#define FT_LINT_TIMEOUT_MS 30000
#define FT_LINT_OUTPUT_MAX 65536

typedef struct ft_lint ft_lint;

/* Start linting path (display form) in cwd. Returns the job, or NULL with *result set when
 * the result is already known (skipped, or the linter could not start). */
ft_lint *ft_lint_start(const char *cwd, const char *path, cJSON **result);

/* Advance for up to slice_ms. Returns true with *result (new object) when done. */
bool ft_lint_step(ft_lint *l, int slice_ms, cJSON **result);

/* Stop (kills the linter) and free; NULL is a no-op. */
void ft_lint_free(ft_lint *l);

/* Start and run to the end (blocks up to FT_LINT_TIMEOUT_MS). New object. */
cJSON *ft_lint_run(const char *cwd, const char *path);

#endif /* FT_LINT_H */
