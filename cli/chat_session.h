/*
 * chat_session — what `hermes chat -q` and the interactive `hermes` share: the CLI's agent
 * session (tools, tool environment, the ephemeral system prompt of agent.system_prompt), the
 * original's approval, clarify and sudo prompts, and reading their answers at the terminal.
 *
 * Threads: chat_spawn_session from the main thread (it reads the configuration); the prompt
 * and parsing helpers from any thread; chat_read_line blocks, so only from the main thread or a
 * detached actor.
 */
#ifndef CHAT_SESSION_H
#define CHAT_SESSION_H

#include "hm_host.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct chat_spawn {
    const char *session_id;         /* NULL: a new id */
    bool resume;                    /* load session_id's history from state.db first */
    const char *model;              /* NULL: the host's model */
    const char *ephemeral;          /* NULL: agent.system_prompt (HERMES_EPHEMERAL_SYSTEM_PROMPT);
                                       "": none */
    const char *const *toolsets;    /* --toolsets, NULL-terminated; NULL: the configuration's */
    bool interactive;               /* a person can answer approval and clarify prompts */
    const char *const *allow_extra; /* NULL-terminated approval patterns to add to the
                                       configuration's command_allowlist, or NULL */
} chat_spawn;

/*
 * Spawn the CLI's agent session (platform "cli") on h's runtime. The caller keeps o.
 * tools_out (may be NULL) receives a NULL-terminated heap copy of the loaded tool names
 * (free with chat_strv_free). Returns the session's ref (0 only if the runtime refused).
 */
rt_ref chat_spawn_session(hm_host *h, const chat_spawn *o, char ***tools_out);

/* The effective agent.system_prompt (env HERMES_EPHEMERAL_SYSTEM_PROMPT first), borrowed from
 * the configuration or the environment; "" when unset. */
const char *chat_system_prompt(const hm_host *h);

/* Split a comma-separated list in place into a NULL-terminated heap array of pointers into it
 * (rt_free the array). Empty items are skipped. */
const char **chat_split_list(char *list);

/* Free a NULL-terminated heap array of heap strings. NULL is a no-op. */
void chat_strv_free(char **v);

/*
 * Print the original's prompt for a question of kind TOOL_ASK_* to f: for an approval
 *   "  ⚠️  DANGEROUS COMMAND: <description>\n      <command>\n\n      [o]nce  |  [s]ession  |
 *   [a]lways  |  [d]eny\n\n      Choice [o/s/a/D]: "
 * for clarify the question and its numbered choices, for sudo the password box. The last line
 * is the input prompt, without a newline. timeout_ms is shown where the original shows it.
 */
void chat_print_ask(FILE *f, int kind, const char *text, const char *description,
                    const cJSON *choices, int64_t timeout_ms);

/*
 * The answer to a question of kind from the line the user typed (NULL: no answer — timeout,
 * end of input): *answer is a TOOL_ANSWER_*, *text the text to send (a clarify choice or the
 * line itself, borrowed from line or choices) or NULL. Approvals: o/once/y/yes → once,
 * s/session → session, a/always → always, anything else → deny (as the original).
 */
void chat_parse_answer(int kind, const char *line, const cJSON *choices, int *answer,
                       const char **text);

/* What to print when a question was not answered in time (no newline at either end). */
const char *chat_timeout_text(int kind);

/*
 * Read one line from the terminal (stdin) within timeout_ms, without echo when secret.
 * Returns a new string without the line end, or NULL on timeout or end of input. Blocks:
 * main thread or a detached actor only.
 */
char *chat_read_line(int64_t timeout_ms, bool secret);

/*
 * Check --toolsets names against the registry ("all" and "*" included). Returns NULL when all
 * are known, else the first unknown name (borrowed from names).
 */
const char *chat_unknown_toolset(const char *const *names);

/*
 * "Always" for a dangerous command (agent-core §4.4): add the command's pattern key to
 * command_allowlist in home/config.yaml, keeping the rest of the file as it is (comments and
 * order included). key_out (keylen bytes, may be NULL) receives the key. Returns 0 (added, or
 * already there), -EINVAL (the command matches no pattern, or the file's command_allowlist
 * cannot be edited in place: msg says why), -EBADMSG (config.yaml does not parse), or -errno
 * from reading or writing the file. Blocking file I/O: main thread or a detached actor.
 */
int chat_allowlist_add(const char *home, const char *command, char *key_out, size_t keylen,
                       char *msg, size_t msglen);

/* The original's /tools listing (also `hermes --list-tools`): the tools in names
 * (NULL-terminated) grouped by toolset, each with the start of its description. */
void chat_print_tools(FILE *f, char *const *names);

/* The original's /toolsets listing (also `hermes --list-toolsets`): every toolset with its tool
 * count and description, "(*)" marking the ones in force (toolsets, else the configuration's
 * platform_toolsets.cli, else hermes-cli). */
void chat_print_toolsets(FILE *f, const hm_config *cfg, const char *const *toolsets);

/* The toolsets in force for the CLI as above, NULL-terminated, borrowed; at most max names
 * (max >= 2) go to out. Returns the count. */
size_t chat_cli_toolsets(const hm_config *cfg, const char *const *toolsets, const char **out,
                         size_t max);

/* The original's description of toolset name, or NULL (a legacy alias). */
const char *chat_toolset_desc(const char *name);

#endif /* CHAT_SESSION_H */
