/*
 * ft_regex — ripgrep's regular expressions (Rust regex syntax) in POSIX regcomp, for
 * search_files' built-in search when rg is not installed.
 *
 * The pattern is rewritten into a glibc extended regular expression: \d \D become
 * [0-9] [^0-9]; \n \t \r \f \v \xHH \x{H..} become the characters; lazy quantifiers lose
 * their `?` (a line either matches or not, so laziness never matters here); (?:...),
 * (?P<n>...) and (?<n>...) become plain groups; a leading (?i) (or any (?i)) sets
 * REG_ICASE; \A and \z become ^ and $; character classes are rebuilt for POSIX brackets
 * (escapes inside them, \d \w \s as [:digit:] [:alnum:]_ [:space:]). \w \W \s \S \b \B pass
 * through (glibc extensions). What POSIX cannot say (look-around, \p{..}, class set
 * operations) is left for regcomp to reject, and the search reports its error.
 *
 * Matching runs in the C.UTF-8 locale (per thread, uselocale) so `.` is one character, as
 * in Rust.
 *
 * Threads: an ft_regex belongs to one thread.
 */
#ifndef FT_REGEX_H
#define FT_REGEX_H

#include <stdbool.h>
#include <stddef.h>

/* Limits (regcomp has none of its own): longer patterns and larger {n,m} counts are
 * refused with a parse error. */
#define FT_REGEX_MAX_LEN    4096
#define FT_REGEX_MAX_REPEAT 1000

typedef struct ft_regex ft_regex;

/* Compile a Rust-syntax pattern. Returns NULL with msg (size msglen) set on error. */
ft_regex *ft_regex_new(const char *pattern, char *msg, size_t msglen);

/* Does s[0..n) (one line, no newline) contain a match? */
bool ft_regex_search(ft_regex *re, const char *s, size_t n);

void ft_regex_free(ft_regex *re);

/* The POSIX translation of pattern (new string) and whether it is case-insensitive; for
 * tests. */
char *ft_regex_translate(const char *pattern, bool *icase);

#endif /* FT_REGEX_H */
