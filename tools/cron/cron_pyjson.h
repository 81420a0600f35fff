/*
 * cron_pyjson — JSON text written exactly as Python's json.dump/json.dumps writes it, so the
 * files and tool results the original produced (jobs.json with indent=2, tool results with
 * ", " and ": " separators, \uXXXX escapes for non-ASCII when ensure_ascii) come out byte for
 * byte the same.
 *
 * Threads: any thread (pure).
 */
#ifndef CRON_PYJSON_H
#define CRON_PYJSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>

/*
 * Serialize v. indent < 0: one line with ", " and ": " (json.dumps default); indent >= 0:
 * one item per line indented by that many spaces per level (json.dump(indent=n)).
 * ensure_ascii: non-ASCII characters as \uXXXX (surrogate pairs above U+FFFF), as Python's
 * default; otherwise UTF-8 is kept (invalid bytes become U+FFFD either way). Integral
 * numbers print as integers, others as the shortest text that reads back the same.
 * Returns a new string (rt_free).
 */
char *cron_pyjson(const cJSON *v, int indent, bool ensure_ascii);

#endif /* CRON_PYJSON_H */
