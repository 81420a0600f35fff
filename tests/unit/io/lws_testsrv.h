/*
 * lws_testsrv — a scripted WebSocket server for the rt_ws tests, on 127.0.0.1.
 *
 * Deliberately not libwebsockets: the tests need to misbehave in ways a real server library
 * will not (fragment at will, never answer pings, reset the socket mid-stream), so this is a
 * plain blocking server written from RFC 6455, one thread per accepted connection, with
 * optional TLS through OpenSSL. Each connection runs a script (a function) given at start.
 *
 * Every blocking call is bounded: reads time out after TS_IO_TIMEOUT_MS, and ts_stop()
 * shuts every socket down so scripts return promptly.
 *
 * Threads: ts_start/ts_stop from the test's main thread; the per-connection helpers from
 * the script's own thread.
 */
#ifndef LWS_TESTSRV_H
#define LWS_TESTSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TS_IO_TIMEOUT_MS 10000

enum { TS_CONT = 0x0, TS_TEXT = 0x1, TS_BIN = 0x2, TS_CLOSE = 0x8, TS_PING = 0x9, TS_PONG = 0xa };

typedef struct ts_server ts_server;
typedef struct ts_conn ts_conn;
typedef void (*ts_script)(ts_conn *c, void *arg);

/* Listen on 127.0.0.1 (ephemeral port); with cert/key PEM paths the server speaks TLS. */
ts_server *ts_start(ts_script fn, void *arg, const char *cert, const char *key);
int ts_port(ts_server *s);
/* Connections accepted so far. */
int ts_accepted(ts_server *s);
/* Close the listener and every connection, join every thread, free. */
void ts_stop(ts_server *s);

/* Read the HTTP upgrade request (its headers are kept, see ts_request) and answer 101.
 * With status != 101, answer that status instead and return -1. 0 or -1. */
int ts_handshake(ts_conn *c, int status);
/* The raw upgrade request as received (NUL-terminated). */
const char *ts_request(ts_conn *c);
/* Send one frame (server frames are unmasked). 0 or -1. */
int ts_send_frame(ts_conn *c, int opcode, bool fin, const void *p, size_t n);
/* Receive one frame, unmasked; *data is malloc'd (free with rt_free()). 0, or -1 on EOF, error
 * or timeout. */
int ts_recv_frame(ts_conn *c, int *opcode, bool *fin, char **data, size_t *n, int timeout_ms);
/* Receive one whole message (reassembling continuation frames, answering pings, skipping
 * pongs). On a close frame returns TS_CLOSE with the payload. Returns the opcode or -1. */
int ts_recv_message(ts_conn *c, char **data, size_t *n, int timeout_ms);
/* Pongs received (and skipped) by ts_recv_message so far. */
int ts_pongs(ts_conn *c);
/* Send a close frame with code and reason. */
int ts_send_close(ts_conn *c, int code, const char *reason);
/* Reset the connection (SO_LINGER 0 + close): the client sees ECONNRESET. */
void ts_abort(ts_conn *c);
/* Read and discard until the peer closes, ts_stop, or 3 * TS_IO_TIMEOUT_MS. */
void ts_hold(ts_conn *c);
/* Has ts_stop been called? Scripts poll it in long loops. */
bool ts_stopping(ts_conn *c);

/* Write a CA, and a server certificate for 127.0.0.1 signed by it, into dir with the openssl
 * CLI: dir/ca.pem, dir/cert.pem, dir/key.pem; plus dir/other-ca.pem, a CA that signed
 * nothing. 0 or -1. */
int ts_make_certs(const char *dir);

#endif /* LWS_TESTSRV_H */
