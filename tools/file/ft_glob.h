/*
 * ft_glob — glob matching for search_files' built-in search, after ripgrep's --glob:
 * `*` and `?` stay within one path component, `[...]` classes (`!` or `^` negates, ranges),
 * `**` crosses directories (`**` / matches zero or more of them), `{a,b}` alternatives,
 * `\` escapes. `?` and classes take one UTF-8 character.
 *
 * Threads: pure, any thread.
 */
#ifndef FT_GLOB_H
#define FT_GLOB_H

#include <stdbool.h>

/* Does text match glob? */
bool ft_glob_match(const char *glob, const char *text);

#endif /* FT_GLOB_H */
