/*
 * ft_text — text helpers shared by the file tools (read_file, write_file, patch,
 * search_files): UTF-8 decoding the way the original's Python sees text, Python's
 * str.isspace / strip / lstrip, JSON-safe text (invalid UTF-8 and NUL become U+FFFD), cuts
 * to N characters, and os.path-style name helpers (splitext, dirname, basename, join).
 *
 * "Character" means a Unicode code point, as in Python; a byte that is not part of a valid
 * UTF-8 sequence counts as one character of its own (decoded as 0xDC80 + byte, like
 * Python's surrogateescape, so two different bad bytes never compare equal).
 *
 * Threads: pure functions, any thread.
 */
#ifndef FT_TEXT_H
#define FT_TEXT_H

#include "rt_buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A borrowed byte range. */
typedef struct ft_span {
    const char *p;
    size_t n;
} ft_span;

/* A growable array of code points (owned; free with ft_u32_fini). */
typedef struct ft_u32 {
    uint32_t *v;
    size_t n, cap;
} ft_u32;

void ft_u32_fini(ft_u32 *a);

/* Decode the character at s[0..n) (n > 0): returns its length in bytes (1..4) and stores
 * the code point in *cp (0xDC80 + byte for an invalid byte). */
size_t ft_utf8_next(const char *s, size_t n, uint32_t *cp);

/* Replace a's contents with the code points of s[0..n). */
void ft_utf8_decode(const char *s, size_t n, ft_u32 *a);

/* Number of characters in s[0..n). */
size_t ft_utf8_chars(const char *s, size_t n);

/* Bytes taken by the first max_chars characters of s[0..n); *cut says whether more follow. */
size_t ft_utf8_prefix(const char *s, size_t n, size_t max_chars, bool *cut);

/* Python's str.isspace() for one character. */
bool ft_is_pyspace(uint32_t cp);

/* Python's str.strip() / str.lstrip() on a span (no copy). */
ft_span ft_strip(ft_span s);
ft_span ft_lstrip(ft_span s);

/* Append s[0..n) to b as valid UTF-8: every invalid byte and every NUL becomes U+FFFD
 * (the original decodes command output with errors="replace"). 0 or -E2BIG. */
int ft_append_clean(rt_buf *b, const char *s, size_t n);

/* A new NUL-terminated, JSON-safe copy of s[0..n) (see ft_append_clean). */
char *ft_clean_dup(const char *s, size_t n);

/* os.path.splitext(path)[1].lower() (ASCII lowering) into out; "" when there is none. */
void ft_path_ext(const char *path, char *out, size_t outlen);

/* os.path.dirname / os.path.basename / os.path.join(a, b); dirname and join return new
 * strings, basename points into path. */
char *ft_path_dirname(const char *path);
const char *ft_path_basename(const char *path);
char *ft_path_join(const char *a, const char *b);

#endif /* FT_TEXT_H */
