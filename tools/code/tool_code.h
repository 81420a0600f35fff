/*
 * tool_code — the execute_code tool (agent-core §3.7): run a Python script that may call a
 * subset of Hermes tools through the generated hermes_tools module.
 *
 * One call: a private directory $TMPDIR/hermes_sandbox_XXXXXX holds script.py, the
 * generated hermes_tools.py (one function per allowed tool) and the RPC socket rpc.sock
 * (code_rpc). The script runs as `python3 <dir>/script.py` through rt_proc (its own
 * session and process group, stdin /dev/null) in the session's working directory (the
 * sandbox directory when that does not exist), with a filtered environment (no variable
 * whose name suggests a secret) plus HERMES_RPC_SOCKET and PYTHONDONTWRITEBYTECODE=1.
 *
 * Each RPC request starts the named tool as a child call of this call's actor (same
 * tool_env: cwd, task id, approvals), so an interrupt reaches the script's tools too;
 * approval and clarify questions of those tools are passed on to the session. Allowed
 * tools: web_search, web_extract, read_file, write_file, search_files, patch, terminal,
 * intersected with the session's tools (all seven when the intersection is empty); at most
 * max_tool_calls calls per run; terminal loses background, check_interval and pty.
 *
 * Limits: tool_code_set_limits (config code_execution.timeout, 300 s, and
 * code_execution.max_tool_calls, 50); stdout is kept up to 50,000 bytes, stderr up to
 * 10,000. On timeout or interrupt the process group gets SIGTERM, then SIGKILL after
 * RT_PROC_KILL_GRACE_MS. Result: {status: success|error|timeout|interrupted, output,
 * tool_calls_made, duration_seconds, error?}.
 *
 * Not available to subagents (delegate_depth > 0). Needs rt_proc on the runtime's reactor.
 * Threads: the tool runs on a detached actor (it writes the sandbox files); limits are
 * atomics, settable from any thread.
 */
#ifndef TOOL_CODE_H
#define TOOL_CODE_H

#include <stdint.h>

#define CODE_STDOUT_MAX     50000
#define CODE_STDERR_MAX     10000
#define CODE_TIMEOUT_S      300
#define CODE_MAX_TOOL_CALLS 50

/* Set the limits of later calls (values <= 0 restore the defaults). Any thread. */
void tool_code_set_limits(int64_t timeout_s, int max_tool_calls);

#endif /* TOOL_CODE_H */
