/*
 * http_server — loopback servers for the HTTP client tests, each on its own thread:
 *
 *   hsrv  a scripted HTTP/1.1 server (epoll, non-blocking) whose paths pick a behaviour:
 *         /hello, /echo, /status/<code>, /big/<n>, /bigc/<n> (chunked), /raw/<n>,
 *         /slow/<ms>, /gate/<n> (held until n gate requests are waiting), /reset, /close-early,
 *         /empty, /garbage, /redirect, /headers/big,
 *         /headers/fold, /sse/tiny, /sse/forever, /sse/stall,
 *         /sse/big/<n>; see http_server.c for the exact bytes.
 *   tsrv  a TLS server (OpenSSL, blocking, one connection at a time) answering "secure".
 *   psrv  an HTTP proxy: CONNECT tunnels to 127.0.0.1, absolute-form requests are answered by
 *         the proxy itself with "proxied <request line>".
 *
 * All listen on 127.0.0.1 with a port chosen by the kernel. Counters are atomics, readable
 * from any thread. Everything here is test code.
 */
#ifndef HTTP_SERVER_H
#define HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

/* The bytes /sse/tiny sends (in 1..3-byte chunks) and the events they make. */
extern const char hsrv_sse_sample[];
extern const char hsrv_sse_sample_events[]; /* "type|data|id\n" per event */

typedef struct hsrv hsrv;
hsrv *hsrv_start(void);
int hsrv_port(const hsrv *s);
int hsrv_accepted(const hsrv *s);    /* connections accepted */
int hsrv_peer_closed(const hsrv *s); /* connections the client closed or reset */
int hsrv_requests(const hsrv *s);    /* requests parsed */
void hsrv_stop(hsrv *s);

typedef struct tsrv tsrv;
/* cert/key: PEM files. */
tsrv *tsrv_start(const char *cert, const char *key);
int tsrv_port(const tsrv *s);
int tsrv_served(const tsrv *s); /* responses sent */
int tsrv_handshake_failures(const tsrv *s);
void tsrv_stop(tsrv *s);

typedef struct psrv psrv;
psrv *psrv_start(void);
int psrv_port(const psrv *s);
int psrv_connects(const psrv *s); /* CONNECT tunnels opened */
int psrv_forwards(const psrv *s); /* absolute-form requests answered */
void psrv_stop(psrv *s);

/*
 * nginx as an HTTP/2 (and HTTP/1.1) TLS server for the files in dir (srv.pem/srv.key from
 * tls_make_certs): /h2 answers "h2 ok", /sse two SSE events, /big.bin a 1 MiB a..z file.
 * The listening socket is bound here and inherited by nginx (NGINX="3;"), so connections
 * queue from the start. Returns nginx's pid, 0 if nginx is not installed, -1 on failure.
 */
int ngx_start(const char *dir, int *port);
void ngx_stop(int pid);

/* Make a test CA and a server certificate for IP 127.0.0.1 in a new temporary directory
 * with the openssl CLI. Fills dir (ca.pem, srv.pem, srv.key inside). 0 or -1. Call before
 * starting threads (it forks). */
int tls_make_certs(char *dir, size_t dirlen);
void tls_remove_certs(const char *dir);

#endif /* HTTP_SERVER_H */
