/*
 * code_rpc — the Unix-socket RPC endpoint of one execute_code run, on the reactor.
 *
 * The script's hermes_tools module connects to a listening Unix stream socket and sends
 * newline-terminated JSON requests ({"tool": name, "args": {...}}); each is answered by
 * one line. This module owns the sockets on the reactor thread: it accepts connections
 * (at most CODE_RPC_MAX_CONNS at once), splits requests into lines (at most
 * CODE_RPC_LINE_MAX bytes; a longer one gets an error line and the connection is closed)
 * and hands each line to the owner actor as a CODE_MSG_RPC_REQ. The owner answers with
 * code_rpc_reply. A connection carries one request at a time: the next line is delivered
 * only after the previous one was answered, so answers stay in order.
 *
 * Lifetime: code_rpc_open creates and binds the socket (on the calling thread: no
 * blocking), the reactor then owns the endpoint. code_rpc_reply and code_rpc_close post
 * to the reactor, in call order per calling thread; close removes the socket file and
 * frees everything, after which the handle must not be used. Messages already sent to the
 * owner stay valid to read (they carry no pointer into the endpoint besides the opaque
 * handle, which the owner only passes back before it closes).
 *
 * Threads: open/reply/close from the owner actor's thread; everything else on the reactor.
 */
#ifndef CODE_RPC_H
#define CODE_RPC_H

#include "rt_actor.h"
#include "rt_msg.h"
#include "rt_reactor.h"

#include <stdint.h>

#define CODE_RPC_MAX_CONNS 8
#define CODE_RPC_LINE_MAX  (4u << 20)

enum {
    CODE_MSG_RPC_REQ = RT_MSG_TYPE(RT_MSG_MODULE_TOOL, 0x0C01), /* reactor → owner */
};

typedef struct code_rpc code_rpc;

typedef struct code_msg_rpc_req {
    rt_msg hdr;
    code_rpc *rpc; /* opaque: pass back to code_rpc_reply */
    uint64_t conn; /* the connection that asked */
    char *line;    /* owned: the request line, without its newline */
} code_msg_rpc_req;

/*
 * Listen on a new Unix socket at path (which must not exist; at most 107 bytes) and
 * deliver its requests to owner. Returns the endpoint, or NULL with *err = -errno
 * (-ENAMETOOLONG for a long path).
 */
code_rpc *code_rpc_open(rt_reactor *r, const char *path, rt_ref owner, int *err);

/* Answer the request of connection conn with line (copied; a newline is appended). A
 * closed connection drops it. */
void code_rpc_reply(code_rpc *rpc, uint64_t conn, const char *line);

/* Close every connection and the listener, remove the socket file, free the endpoint.
 * NULL: no-op. */
void code_rpc_close(code_rpc *rpc);

#endif /* CODE_RPC_H */
