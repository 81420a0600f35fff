/*
 * rt_signal — process signals as messages to one root actor.
 *
 * The signals we act on (SIGINT, SIGTERM, SIGHUP) are blocked in every thread and read from
 * a signalfd on the reactor thread, so no handler ever runs and nothing is async-signal
 * constrained: SIGINT and SIGTERM become RT_SIGNAL_MSG_SHUTDOWN (urgent lane), SIGHUP
 * becomes RT_SIGNAL_MSG_RELOAD (normal lane). The root decides what to do.
 *
 * Invariants:
 *   1. rt_signals_block() runs in main() before any thread exists, so every thread inherits
 *      the mask; otherwise a signal could land on a thread with it unblocked and kill the
 *      process. rt_signal_watch() checks every thread's mask and refuses if one is missing.
 *   2. SIGPIPE is ignored: a write to a closed pipe or socket fails with EPIPE instead.
 *      SIGCHLD keeps its default (children are watched through pidfds, see rt_proc.h).
 *   3. Children started by rt_proc get an empty mask and default dispositions back.
 *   4. One watch per process (signals are process-wide), held until its reactor stops.
 *
 * Threads: rt_signals_block from main() before any thread; rt_signal_watch from the
 * controlling thread.
 */
#ifndef RT_SIGNAL_H
#define RT_SIGNAL_H

#include "rt_actor.h"
#include "rt_reactor.h"

enum {
    RT_SIGNAL_MSG_SHUTDOWN = RT_MSG_TYPE(RT_MSG_MODULE_IO, 0x380), /* SIGINT, SIGTERM */
    RT_SIGNAL_MSG_RELOAD = RT_MSG_TYPE(RT_MSG_MODULE_IO, 0x381),   /* SIGHUP */
};

/* Both message types. */
typedef struct rt_signal_msg {
    rt_msg hdr;
    int signo;  /* the signal received */
    int sender; /* pid of the process that sent it (0: the kernel) */
} rt_signal_msg;

/*
 * Block SIGINT, SIGTERM and SIGHUP in the calling thread (and so in every thread created
 * after it) and ignore SIGPIPE. Call first thing in main(). 0 or -errno.
 */
int rt_signals_block(void);

/*
 * Read the blocked signals on r's reactor thread and send them to root as messages until
 * the reactor stops. Controlling thread. 0, or:
 *   -EINVAL  r or root missing, or some thread does not block the signals (call
 *            rt_signals_block() in main() before starting anything)
 *   -EBUSY   signals are already being watched
 *   -errno   signalfd failed
 */
int rt_signal_watch(rt_reactor *r, rt_ref root);

#endif /* RT_SIGNAL_H */
