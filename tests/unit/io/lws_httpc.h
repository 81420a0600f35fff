/*
 * lws_httpc — a deliberately dumb blocking HTTP/1.1 client for the rt_httpd tests: raw
 * bytes out (so tests can send malformed requests), one response at a time back, with a
 * buffer per connection so pipelined responses are split correctly. Every read is bounded
 * by HC_TIMEOUT_MS.
 *
 * Threads: a connection belongs to one thread at a time.
 */
#ifndef LWS_HTTPC_H
#define LWS_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

#define HC_TIMEOUT_MS 10000

typedef struct hc_conn {
    int fd;
    char buf[1 << 16];
    size_t len;
} hc_conn;

typedef struct hc_resp {
    int status;
    char head[8192]; /* status line and header fields, NUL-terminated */
    char *body;      /* rt_free'd by hc_resp_free; NUL-terminated */
    size_t len;
} hc_resp;

/* Connect to 127.0.0.1:port; -1 on failure (errno kept). rcvbuf > 0 sets SO_RCVBUF first. */
int hc_open(hc_conn *c, int port, int rcvbuf);
void hc_close(hc_conn *c);
int hc_send(hc_conn *c, const char *s);
/* Read one response (head_only: the request was HEAD). Body by Content-Length, chunked, or
 * until the server closes. 0 or -1. */
int hc_read(hc_conn *c, hc_resp *r, bool head_only);
/* Read the head only (for streams read piece by piece). 0 or -1. */
int hc_read_head(hc_conn *c, hc_resp *r);
/* Read at least n more raw bytes into out (NUL-terminated, cap bytes). Bytes read, or -1. */
int hc_read_some(hc_conn *c, char *out, size_t cap, size_t n);
/* Has the server closed (EOF or reset) within HC_TIMEOUT_MS? */
bool hc_wait_closed(hc_conn *c);
void hc_resp_free(hc_resp *r);
/* Open, send raw, read one response, close. 0 or -1. */
int hc_roundtrip(int port, const char *raw, hc_resp *r);
/* The value of header name in r->head (case-insensitive) copied to out, or NULL. */
const char *hc_header(const hc_resp *r, const char *name, char *out, size_t cap);

#endif /* LWS_HTTPC_H */
