/*
 * rt_msg — the message envelope every actor message starts with, and its allocator.
 *
 * Ownership (STYLE 3.5):
 *   1. rt_msg_new() gives the caller a zeroed message; rt_send() moves it to the receiver.
 *      The sender must not touch it afterwards.
 *   2. The receiver borrows it for the duration of its behaviour. The runtime then calls
 *      drop (if set) and frees the envelope.
 *   3. To keep payload, steal the field and NULL it; drop then skips it.
 *
 * Message types are 32-bit: the high 16 bits name the module (RT_MSG_MODULE_*), the low 16
 * bits the message within it, so two modules can never collide. Types 0x0000xxxx belong to
 * the runtime.
 *
 * Envelopes come from per-thread freelists in size classes (HERMES_POOL=ON) or straight from
 * malloc (HERMES_POOL=OFF, for sanitizers). A message may be freed on any thread.
 *
 * Threads: every function may be called from any thread.
 */
#ifndef RT_MSG_H
#define RT_MSG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Intrusive MPSC queue link; first member of every envelope, and the mailbox stub. */
typedef struct rt_qnode rt_qnode;
struct rt_qnode {
    rt_qnode *_Atomic next;
};

typedef struct rt_msg rt_msg;
struct rt_msg {
    rt_qnode q;              /* runtime-owned link; actors never touch it */
    uint32_t type;           /* RT_MSG_TYPE(module, n) */
    uint32_t size;           /* allocation size; picks the pool class */
    void (*drop)(rt_msg *m); /* frees owned payload still present; may be NULL */
};
_Static_assert(offsetof(rt_msg, q) == 0, "the queue link must come first");

#define RT_MSG_TYPE(module, n) (((uint32_t)(module) << 16) | (uint32_t)(n))
#define RT_MSG_MODULE(type)    ((uint32_t)(type) >> 16)

/*
 * Module numbers, one per module that defines messages. Listed here only so that no two
 * collide; the runtime does not interpret them. Add new modules at the end.
 */
enum rt_msg_module {
    RT_MSG_MODULE_RT = 0,      /* runtime: exit, down, interrupt, stop, timers */
    RT_MSG_MODULE_TEST = 1,    /* tests and benchmarks */
    RT_MSG_MODULE_IO = 2,      /* runtime/io reactor: http, websocket, subprocess, signals */
    RT_MSG_MODULE_GW = 3,      /* gateway */
    RT_MSG_MODULE_AG = 4,      /* agent / session */
    RT_MSG_MODULE_ST = 5,      /* store */
    RT_MSG_MODULE_TOOL = 6,    /* tools */
    RT_MSG_MODULE_ADAPTER = 7, /* platform adapters */
    RT_MSG_MODULE_CRON = 8,    /* cron */
    RT_MSG_MODULE_LLM = 9,     /* LLM client */
    RT_MSG_MODULE_HOST = 10,   /* the process: start-up, files, status */
};

/*
 * Allocate a zeroed message of size bytes (size >= sizeof(rt_msg)) with the given type.
 * Never returns NULL (aborts on OOM). The result is owned by the caller until sent.
 */
void *rt_msg_new(uint32_t type, size_t size);
#define RT_MSG_NEW(T, type) ((T *)rt_msg_new((type), sizeof(T)))

/* Run drop (if any) and free the envelope. For messages that were never sent. */
void rt_msg_free(rt_msg *m);

/* Return this thread's cached envelopes to malloc (called when a thread exits). */
void rt_msg_pool_flush(void);

#endif /* RT_MSG_H */
