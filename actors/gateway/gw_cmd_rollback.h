/*
 * gw_cmd_rollback — /rollback [N|hash] for one chat: the filesystem checkpoints of the
 * gateway's working directory (tools/checkpoint, ckpt.h).
 *
 * Threads: gw_cmd_rollback on the chat's worker.
 */
#ifndef GW_CMD_ROLLBACK_H
#define GW_CMD_ROLLBACK_H

#include "gw_int.h"

/*
 * `/rollback` lists the checkpoints of the working directory (TERMINAL_CWD, else
 * MESSAGING_CWD, else $HOME), newest first; `/rollback N` restores the N-th, `/rollback
 * <hash>` the checkpoint of that hash (4-64 hex digits), after a snapshot of the current
 * state. With checkpoints.enabled off it answers the original's hint. The answer comes later,
 * as a notice to `to` (copied), from a small actor that waits for the checkpoint service.
 * args is borrowed (blanks around it are ignored).
 */
void gw_cmd_rollback(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *args);

#endif /* GW_CMD_ROLLBACK_H */
