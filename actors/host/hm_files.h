/*
 * hm_files — atomic file writes for actors. Writing a file blocks (and fsync can take tens of
 * milliseconds), so actors hand the bytes to this detached actor instead: it writes a temp
 * file in the same directory, fsyncs, renames, and optionally acks. Writes to one path are
 * applied in the order they were sent.
 *
 * Threads: hm_files_write from any thread.
 */
#ifndef HM_FILES_H
#define HM_FILES_H

#include "rt_actor.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HM_FILES_NAME "hermes.files"

enum {
    HM_MSG_FILE_WRITE = RT_MSG_TYPE(RT_MSG_MODULE_HOST, 1),
    HM_MSG_FILE_DONE = RT_MSG_TYPE(RT_MSG_MODULE_HOST, 2)
};

typedef struct hm_msg_file_done {
    rt_msg hdr;
    uint64_t tag;
    int err; /* 0 or -errno */
} hm_msg_file_done;

/* Start the writer (registered as HM_FILES_NAME). Idempotent. */
rt_ref hm_files_start(rt_ctx *cx);
/* Write data (copied) to path with mode, atomically; reply_to (if not 0) gets
 * HM_MSG_FILE_DONE with tag. Directories are created (0700) as needed. */
void hm_files_write(rt_ctx *cx, const char *path, const void *data, size_t len, mode_t mode,
                    rt_ref reply_to, uint64_t tag);
/* The same, synchronously (for the CLI and detached actors). 0 or -errno. */
int hm_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

#endif /* HM_FILES_H */
