/*
 * ak_text — text helpers every adapter's outbound and inbound path needs: the agent's
 * "MEDIA:<path>" lines (files to send instead of text) and safe file names for downloads.
 *
 * Threads: pure functions, any thread.
 */
#ifndef AK_TEXT_H
#define AK_TEXT_H

#include <stddef.h>

/* The line [s, e) when it is a MEDIA:<path> tag alone on its line (blanks around, the path
 * maybe quoted with " ' or `): the path (new string, rt_free), else NULL. */
char *ak_media_line(const char *s, const char *e);

/* name reduced to [A-Za-z0-9._-] (others become '_', at most 95 characters), or "file<i>"
 * when nothing is left or it would start with '.'. New string (rt_free). */
char *ak_safe_name(const char *name, size_t i);

#endif /* AK_TEXT_H */
