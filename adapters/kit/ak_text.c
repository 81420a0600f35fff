/*
 * ak_text — see ak_text.h.
 */
#include "ak_text.h"

#include "rt_alloc.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

char *ak_media_line(const char *s, const char *e)
{
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    if (e - s < 7 || strncmp(s, "MEDIA:", 6) != 0)
        return NULL;
    s += 6;
    while (s < e && *s == ' ')
        s++;
    if (e - s >= 2 && (*s == '"' || *s == '\'' || *s == '`') && e[-1] == *s) {
        s++;
        e--;
    }
    return s < e ? rt_xstrndup(s, (size_t)(e - s)) : NULL;
}

char *ak_safe_name(const char *name, size_t i)
{
    char buf[96];
    size_t n = 0;
    for (const char *p = name ? name : ""; *p && n + 1 < sizeof(buf); p++)
        buf[n++] = (isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_') ? *p : '_';
    buf[n] = '\0';
    if (!n || buf[0] == '.')
        snprintf(buf, sizeof(buf), "file%zu", i);
    return rt_xstrdup(buf);
}
