/*
 * ckpt — filesystem checkpoints and rollback (the original's tools/checkpoint_manager.py).
 *
 * Before a tool changes files (write_file, patch, a destructive terminal command) the session
 * asks for a snapshot of the working directory; `/rollback` lists the snapshots and restores
 * one. The model never sees any of this: it is not a tool.
 *
 * Layout (the original's per-directory shadow repositories):
 *   $HERMES_HOME/checkpoints/<first 16 hex digits of sha256(absolute dir)>/
 *       a git repository used through GIT_DIR + GIT_WORK_TREE, so nothing is written into
 *       the user's directory; HERMES_WORKDIR holds the directory's path; info/exclude the
 *       default excludes (dependencies, build output, caches, virtualenvs, VCS directories,
 *       binaries, media, archives, .env files, logs).
 *   git runs with the user's global and system configuration switched off
 *   (GIT_CONFIG_GLOBAL=/dev/null, GIT_CONFIG_SYSTEM=/dev/null, GIT_CONFIG_NOSYSTEM=1), so
 *   signing hooks or credential helpers never run; each git command has CKPT_GIT_TIMEOUT_MS.
 *   A snapshot is `git add -A`, then `git diff --cached --quiet`, and a commit only when
 *   something changed. Restoring takes a snapshot first ("pre-rollback snapshot"), so a
 *   rollback can itself be undone, then `git checkout <commit> -- .`.
 *
 * The checkpoint service: one actor per process, registered as CKPT_SERVICE_NAME and spawned
 * on first use (ckpt_service). It is detached (a thread of its own) because it does small
 * blocking file work (mkdir, the marker files, reading config.yaml, walking up to a project
 * root); git itself runs as subprocesses through the reactor (rt_proc), so several
 * directories are worked on at once while requests for one directory run one after the
 * other. It answers every request exactly once.
 *
 * Settings: checkpoints.enabled and checkpoints.max_snapshots are read from the request's
 * $HERMES_HOME/config.yaml (cached until the file changes), unless the request says.
 *
 * Threads: ckpt_service, ckpt_request_send and the pure helpers from any thread (a behaviour
 * with its cx, or rt_ctx_external). The service's state is its own.
 */
#ifndef CKPT_H
#define CKPT_H

#include "rt_actor.h"
#include "rt_msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CKPT_SERVICE_NAME          "hermes.checkpoints"
#define CKPT_GIT_TIMEOUT_MS        30000
#define CKPT_MAX_SNAPSHOTS_DEFAULT 50
#define CKPT_HASH_HEX              16           /* directory name: hex digits of sha256(path) */
#define CKPT_TEXT_MAX              (256 * 1024) /* a reply's text, and git output kept */
#define CKPT_QUEUE_MAX             1024         /* requests the service holds; more are refused */
/* Tool-result replies (CKPT_REPLY_TOOL) carry the call's seq with this bit set, so a session
 * tells them from its calls' results. */
#define CKPT_SEQ_FLAG (UINT64_C(1) << 63)

/* The original's answer when checkpoints are off. */
#define CKPT_DISABLED_TEXT                                                                         \
    "Checkpoints are not enabled.\nEnable in config.yaml:\n```\ncheckpoints:\n  enabled: "         \
    "true\n```"

enum {
    CKPT_MSG_REQ = RT_MSG_TYPE(RT_MSG_MODULE_TOOL, 0x1401),  /* anyone → service */
    CKPT_MSG_DONE = RT_MSG_TYPE(RT_MSG_MODULE_TOOL, 0x1402), /* service → reply_to */
};

enum ckpt_op {
    CKPT_OP_SNAPSHOT = 1, /* snapshot the directory (if enabled, once per session turn) */
    CKPT_OP_LIST,         /* the checkpoints of dir, newest first, as text */
    CKPT_OP_ROLLBACK,     /* restore dir to checkpoint `target` (a number or a hash) */
};

enum ckpt_reply_kind {
    CKPT_REPLY_DONE = 0, /* a ckpt_msg_done */
    CKPT_REPLY_TOOL,     /* a tool_msg_result (tool.h): seq = tag, result = the text or NULL */
    CKPT_REPLY_CONTROL,  /* an ag_msg_control_reply (ag_session.h): tag, err, text */
};

/* A request. Every string is owned by the message (drop frees them); build it with
 * ckpt_req_new. */
typedef struct ckpt_msg_req {
    rt_msg hdr;
    int op;         /* ckpt_op */
    int reply_kind; /* ckpt_reply_kind */
    rt_ref reply_to;
    uint64_t tag;      /* copied into the reply */
    char *home;        /* $HERMES_HOME: where checkpoints/ and config.yaml are */
    char *dir;         /* the working directory (LIST, ROLLBACK; SNAPSHOT: the fallback) */
    char *path;        /* SNAPSHOT: the file about to change, or NULL: its directory's project
                          root is snapshotted (relative paths are taken from dir) */
    char *reason;      /* SNAPSHOT: the commit message ("before write_file") */
    char *target;      /* ROLLBACK: "3" (the list's number) or a hash of 4-64 hex digits */
    int enabled;       /* -1: checkpoints.enabled from config.yaml; 0 or 1: as given */
    int max_snapshots; /* 0: checkpoints.max_snapshots from config.yaml (else 50) */
    rt_ref session;    /* SNAPSHOT: at most one per (session, turn, directory); 0: always */
    uint64_t turn;
} ckpt_msg_req;

/* The answer. */
typedef struct ckpt_msg_done {
    rt_msg hdr;
    uint64_t tag;
    int op;
    int err;    /* 0, or -errno: -ENOENT git missing, -ETIMEDOUT, -EIO git failed, -EINVAL bad
                   target, -ENOTSUP checkpoints disabled, -EAGAIN service full */
    bool taken; /* SNAPSHOT: a commit was made */
    char *text; /* owned: what to tell the user (LIST, ROLLBACK; SNAPSHOT: NULL unless err) */
} ckpt_msg_done;

/* A new request with copies of the strings (each may be NULL). */
ckpt_msg_req *ckpt_req_new(int op, const char *home, const char *dir);

/* The process's service: the registered one, or a new one spawned and registered now. 0 only
 * if it cannot be spawned. Any thread. */
rt_ref ckpt_service(rt_ctx *cx);

/* A service of one's own (tests): git is the program to run ("git" when NULL); not registered.
 * Any thread. */
rt_ref ckpt_service_spawn(rt_ctx *cx, const char *git);

/* Send req to the service (ckpt_service). false if it could not be reached: req was freed and
 * no answer will come. Any thread. */
bool ckpt_request_send(rt_ctx *cx, ckpt_msg_req *req);

/* ---- pure helpers (any thread) ---- */

/* The directory's name under checkpoints/: the first CKPT_HASH_HEX hex digits of
 * sha256(abs_dir), NUL-terminated in out. */
void ckpt_dir_hash(const char *abs_dir, char out[CKPT_HASH_HEX + 1]);

/* Is target acceptable as a commit hash (4-64 hex digits, not starting with '-')? On false,
 * why (the original's sentence) goes to err. */
bool ckpt_hash_is_valid(const char *target, char *err, size_t errlen);
/* Is a /rollback target a checkpoint number (into *k)? An integer of fewer than 4 characters,
 * or one no larger than max_snapshots (the longest list there can be); other digit strings
 * are hashes (a short git hash is all digits one time in 27: "1234567" must restore that
 * commit, not fail as a number). */
bool ckpt_target_is_number(const char *target, int max_snapshots, int64_t *k);

/* Does this terminal command change files (rm, mv, sed -i, truncate, dd, shred, git
 * reset/clean/checkout, an overwriting '>' redirect), or is it one the dangerous-command
 * detector flags? Such a command gets a snapshot first. NULL: false. */
bool ckpt_command_is_destructive(const char *cmd);

/* Does this tool call change files (write_file, patch, or a destructive terminal command)?
 * args is the call's JSON arguments text (may be NULL). On true, path (if not NULL) gets the
 * file's path (write_file, patch's replace mode) or the terminal's workdir, or NULL: a new
 * string to rt_free. */
bool ckpt_call_changes_files(const char *tool, const char *args, char **path);

/* The checkpoint's message for such a call: "before write_file", "before patch", "before
 * terminal: <the command's first 60 characters>". A new string. */
char *ckpt_call_reason(const char *tool, const char *args);

#endif /* CKPT_H */
