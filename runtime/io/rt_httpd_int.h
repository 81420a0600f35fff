/*
 * rt_httpd_int.h — internals of rt_httpd shared within runtime/io: the HTTP/1.1 wire format
 * (rt_httpd_parse.c).
 *
 * Everything here is pure: no I/O, no allocation, no state. Parsed results point into the
 * caller's bytes. That keeps the parser testable and fuzzable on its own.
 *
 * Threads: re-entrant; any thread.
 */
#ifndef RT_HTTPD_INT_H
#define RT_HTTPD_INT_H

#include <stdbool.h>
#include <stddef.h>

#define RT__H1_MAX_FIELDS 100 /* more header fields than this: 431 */

typedef struct rt__h1_field {
    const char *name, *value; /* value without surrounding whitespace */
    size_t nlen, vlen;
} rt__h1_field;

/* A parsed request head. */
typedef struct rt__h1_head {
    const char *method, *target;
    size_t mlen, tlen;
    int minor;        /* HTTP/1.minor */
    const char *path; /* the target as "path?query" (absolute form reduced), or "*" */
    size_t plen;
    size_t nf;
    bool chunked;   /* Transfer-Encoding: chunked */
    bool has_cl;    /* Content-Length given: cl */
    bool close, ka; /* Connection: close / keep-alive */
    bool expect;    /* Expect: 100-continue */
    size_t cl;
    int hosts;                         /* Host fields seen */
    rt__h1_field f[RT__H1_MAX_FIELDS]; /* last: parsing clears only what comes before it */
} rt__h1_head;

/* Parse the head [p, e), request line to blank line included, into h. Returns 0, or the
 * status to answer: 400 malformed, 413 Content-Length over max_body, 417 unknown
 * expectation, 431 too many fields, 501 unsupported method or transfer coding, 505 version.
 * On failure h keeps what was parsed before it (minor, close, ...). */
int rt__h1_parse_head(rt__h1_head *h, const char *p, const char *e, size_t max_body);

/* The end of a head (just past its blank line, CRLF or bare LF) in b[0..lim), searching from
 * `from`; NULL when it is not there yet. */
const char *rt__h1_head_end(const char *b, size_t from, size_t lim);

/* A chunk-size line p[0..n) without its LF: 0 and *size, or 400 (malformed) / 413 (more
 * than 15 hex digits). Extensions after ';' are ignored. */
int rt__h1_chunk_size(const char *p, size_t n, size_t *size);

/* The reason phrase for status ("Status" for codes without one). */
const char *rt__h1_reason(int status);

/* RFC 9110 tchar (token characters). */
bool rt__h1_is_tchar(int ch);

/* Validate actor-supplied "Name: value" lines (NULL-terminated list, may be NULL) and either
 * count the bytes of their wire form ("Name: value\r\n" each; Content-Length,
 * Transfer-Encoding, Connection and Date dropped) or, with out, write it. Returns the byte
 * count or -EINVAL for a malformed line (bad name, CR, LF or other control characters). */
long rt__h1_header_block(const char *const *hdrs, char *out);

#endif /* RT_HTTPD_INT_H */
