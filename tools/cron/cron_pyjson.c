/*
 * cron_pyjson — see cron_pyjson.h.
 */
#include "cron_pyjson.h"

#include "rt_alloc.h"
#include "rt_buf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PYJSON_MAX ((size_t)256 << 20) /* far above any jobs.json; a bound, not a limit */

/* Decode one UTF-8 sequence at s (n bytes left); *cp gets U+FFFD for a bad byte. Returns
 * the bytes used (at least 1). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n) {
        *cp = 0xFFFD;
        return 1;
    }
    uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = 0xFFFD;
        return 1;
    }
    *cp = v;
    return len;
}

static void put_utf8(rt_buf *b, uint32_t cp)
{
    char o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        o[0] = (char)(0xF0 | (cp >> 18));
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    (void)rt_buf_append(b, o, n);
}

static void put_string(rt_buf *b, const char *s, bool ascii)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    (void)rt_buf_append(b, "\"", 1);
    while (n) {
        uint32_t cp;
        size_t used = utf8_next(p, n, &cp);
        p += used;
        n -= used;
        switch (cp) {
        case '"': (void)rt_buf_append_str(b, "\\\""); continue;
        case '\\': (void)rt_buf_append_str(b, "\\\\"); continue;
        case '\n': (void)rt_buf_append_str(b, "\\n"); continue;
        case '\r': (void)rt_buf_append_str(b, "\\r"); continue;
        case '\t': (void)rt_buf_append_str(b, "\\t"); continue;
        case '\b': (void)rt_buf_append_str(b, "\\b"); continue;
        case '\f': (void)rt_buf_append_str(b, "\\f"); continue;
        default: break;
        }
        if (cp < 0x20 || (ascii && cp >= 0x7F)) {
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                (void)rt_buf_printf(b, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
            } else {
                (void)rt_buf_printf(b, "\\u%04x", cp);
            }
        } else {
            put_utf8(b, cp);
        }
    }
    (void)rt_buf_append(b, "\"", 1);
}

static void put_number(rt_buf *b, double d)
{
    if (isnan(d) || isinf(d)) {
        (void)rt_buf_append_str(b, isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
        return;
    }
    if (d == floor(d) && fabs(d) < 9007199254740992.0) {
        (void)rt_buf_printf(b, "%lld", (long long)d);
        return;
    }
    char t[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(t, sizeof(t), "%.*g", prec, d);
        if (strtod(t, NULL) == d)
            break;
    }
    (void)rt_buf_append_str(b, t);
}

static void newline(rt_buf *b, int indent, int level)
{
    (void)rt_buf_append(b, "\n", 1);
    for (int i = 0; i < indent * level; i++)
        (void)rt_buf_append(b, " ", 1);
}

static void put_value(rt_buf *b, const cJSON *v, int indent, int level, bool ascii)
{
    if (cJSON_IsString(v)) {
        put_string(b, v->valuestring ? v->valuestring : "", ascii);
    } else if (cJSON_IsNumber(v)) {
        put_number(b, v->valuedouble);
    } else if (cJSON_IsBool(v)) {
        (void)rt_buf_append_str(b, cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        bool obj = cJSON_IsObject(v);
        const cJSON *c = v->child;
        if (!c) {
            (void)rt_buf_append_str(b, obj ? "{}" : "[]");
            return;
        }
        (void)rt_buf_append(b, obj ? "{" : "[", 1);
        for (; c; c = c->next) {
            if (indent >= 0)
                newline(b, indent, level + 1);
            if (obj) {
                put_string(b, c->string ? c->string : "", ascii);
                (void)rt_buf_append_str(b, ": ");
            }
            put_value(b, c, indent, level + 1, ascii);
            if (c->next)
                (void)rt_buf_append_str(b, indent >= 0 ? "," : ", ");
        }
        if (indent >= 0)
            newline(b, indent, level);
        (void)rt_buf_append(b, obj ? "}" : "]", 1);
    } else {
        (void)rt_buf_append_str(b, "null");
    }
}

char *cron_pyjson(const cJSON *v, int indent, bool ensure_ascii)
{
    rt_buf b;
    rt_buf_init(&b, PYJSON_MAX);
    put_value(&b, v, indent, 0, ensure_ascii);
    return rt_buf_steal(&b, NULL);
}
