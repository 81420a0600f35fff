/*
 * hm_config — the Hermes configuration: $HERMES_HOME, config.yaml, .env and the environment,
 * with the original's file names, keys, defaults, environment variables and precedence, so an
 * existing user's ~/.hermes carries over unchanged.
 *
 * Sources, highest first (for settings that have an environment variable):
 *   1. the process environment          (source "env")
 *   2. $HERMES_HOME/.env                (".env": loaded at start-up without overriding 1)
 *   3. $HERMES_HOME/config.yaml         ("config.yaml": deep-merged over the defaults)
 *   4. built-in defaults                ("default": the schema below)
 * Exceptions the original has, kept as functions: model selection (hm_config_model) and the
 * iteration limit (hm_config_max_turns) differ between the CLI and the gateway, the deprecated
 * HERMES_TOOL_PROGRESS_MODE only counts when config.yaml says nothing (HM_K_ENV_FALLBACK), and
 * hm_config_export_env copies config.yaml values into the environment for the subsystems that
 * read variables (terminal backends, context compression, the Matrix adapter…).
 *
 * Invariants:
 *   1. A loaded hm_config is immutable and reference counted; it may be shared by any number
 *      of actors on any threads. A reload (SIGHUP) loads a new one; the owner of "the current
 *      config" (the gateway actor) swaps its reference and hands new references out in
 *      messages; holders of the old one keep a valid object until they unref it.
 *   2. Unknown keys and values of the wrong type never stop a load: they are reported as
 *      errors (with file, line and a did-you-mean) and a wrong-typed value falls back to its
 *      default. A config.yaml that is not valid YAML (or too large) fails the load.
 *   3. Secrets (API keys, tokens, passwords) are never logged or printed unmasked.
 *
 * Threads: lookups may be called from any thread. Functions that change the process
 * environment (hm_config_load with HM_LOAD_SETENV, hm_config_export_env) must only run while
 * the process is single-threaded (start-up), because setenv(3) races with getenv(3); the
 * env-aware lookups call getenv(3). hm_config_load reads files (blocking): call it at start-up,
 * in the CLI, or from a detached actor, never from an ordinary behaviour.
 *
 * Reloading: a load without HM_LOAD_SETENV leaves the environment alone; its .env values still
 * count through the env-aware lookups, and for variables that only came from .env at start-up
 * the new .env value wins over that stale copy (the original re-read .env before every run).
 */
#ifndef HM_CONFIG_H
#define HM_CONFIG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HM_CONFIG_MAX_BYTES  (2u << 20) /* a config.yaml larger than 2 MiB is refused */
#define HM_DEFAULT_MODEL     "anthropic/claude-opus-4.6"
#define HM_DEFAULT_MAX_TURNS 60

/* ---- $HERMES_HOME ---------------------------------------------------------------------- */

/* $HERMES_HOME if set and non-empty, else $HOME/.hermes (the password database's home when
 * HOME is unset). Returns a new string (rt_free). */
char *hm_config_home(void);
/* home + "/" + name, a new string (rt_free). */
char *hm_config_file(const char *home, const char *name);
/* Create home and its layout (cron, sessions, logs, memories, skills, platforms) with mode
 * 0700 where missing; existing directories are left as they are. 0 or -errno. */
int hm_config_ensure_home(const char *home);

/* ---- the schema: every key the original knows, with its type and default --------------- */

typedef enum hm_type {
    HM_T_MAP,         /* a section with known keys */
    HM_T_FREE,        /* a mapping whose keys are the user's (personalities, quick_commands…) */
    HM_T_STR,         /* string (numbers and booleans are accepted and kept as text) */
    HM_T_INT,         /* integer ("180" is accepted) */
    HM_T_FLOAT,       /* number */
    HM_T_BOOL,        /* true/false (also yes/no/on/off, "true", 1/0) */
    HM_T_LIST,        /* list of strings */
    HM_T_STR_OR_LIST, /* a comma-separated string or a list of strings */
    HM_T_ANY,         /* anything (e.g. display.tool_progress: all | false) */
    HM_T_MODEL,       /* a model name, or a map {default, provider, base_url, …} */
} hm_type;

enum {
    HM_K_SECRET = 1u << 0,       /* value is a secret: masked when shown */
    HM_K_COMPAT = 1u << 1,       /* accepted for compatibility with newer Hermes; not used yet */
    HM_K_ENV_FALLBACK = 1u << 2, /* env var counts only when config.yaml does not set the key */
    HM_K_REPLACE = 1u << 3,      /* a user's map replaces the default map instead of merging */
};

typedef struct hm_key {
    const char *path;    /* "terminal.timeout"; "*" matches any one key: "platforms.*.token" */
    hm_type type;        /* */
    const char *def;     /* default: the text itself for HM_T_STR, YAML text for the other
                            types ("180", "true", "[hermes-cli]"); NULL if there is none */
    const char *env;     /* environment variable that overrides it, or NULL */
    unsigned flags;      /* HM_K_* */
    const char *choices; /* "local|docker|…" for enumerations, NULL otherwise */
    const char *doc;     /* one line for `hermes config` and docs/configuration.md */
} hm_key;

extern const hm_key hm_schema[];
extern const size_t hm_schema_len;

/* The schema entry for a dotted path (exact match first, then "*" patterns), or NULL. */
const hm_key *hm_schema_find(const char *path);
/* True if path lies inside a HM_T_FREE map (so any key is allowed there). */
bool hm_schema_in_free_map(const char *path);
/* The known key closest to an unknown one ("terminal.bakend" → "terminal.backend"), copied
 * into buf; NULL if nothing is close enough. */
const char *hm_schema_suggest(const char *path, char *buf, size_t n);
/* "a string", "an integer", … for messages. */
const char *hm_type_name(hm_type t);

/* ---- environment variables the original reads -------------------------------------------- */

enum {
    HM_E_SECRET = 1u << 0, /* masked when shown; checked for placeholder values */
    HM_E_MARKER = 1u << 1, /* set by Hermes itself at run time; never written to .env */
};

typedef struct hm_envkey {
    const char *name;  /* "MATRIX_ACCESS_TOKEN" */
    const char *group; /* "Matrix", "LLM provider", … */
    unsigned flags;    /* HM_E_* */
    const char *doc;   /* one line */
} hm_envkey;

extern const hm_envkey hm_env_index[];
extern const size_t hm_env_index_len;

const hm_envkey *hm_env_index_find(const char *name);
/* Names that look like secrets: a word TOKEN, SECRET, PASSWORD or PASSWD, or ending in KEY
 * (API_KEY, FAL_KEY, key…), case-insensitive; SSH key paths are not secrets. */
bool hm_is_secret_name(const char *name);
/* The original's placeholder check (gateway §1.3): "*", "changeme", "your_api_key", "dummy"…
 * or shorter than 4 characters after trimming. */
bool hm_is_placeholder_secret(const char *value);
/*
 * May `hermes config set NAME` write NAME to .env? 0: a variable Hermes reads (or of a family
 * it reads, such as <PLATFORM>_HOME_CHANNEL). -EPERM: never (PATH, LD_PRELOAD, HERMES_HOME,
 * run-time markers…). -ENOENT: unknown; suggest (if not NULL) gets the closest known name or "".
 */
int hm_env_name_check(const char *name, char *suggest, size_t n);

/* ---- diagnostics ------------------------------------------------------------------------- */

enum { HM_DIAG_ERROR = 0, HM_DIAG_WARN = 1 };

typedef struct hm_diag_item {
    int severity; /* HM_DIAG_* */
    int line;     /* 1-based line in config.yaml, 0 if not about a line */
    char *key;    /* dotted key or variable name, or NULL */
    char *msg;    /* complete message: "/h/.hermes/config.yaml:12: unknown key 'x' (…)" */
} hm_diag_item;

typedef struct hm_config_diag {
    hm_diag_item *items;
    size_t n, cap;
    int errors, warnings;
} hm_config_diag;

void hm_config_diag_init(hm_config_diag *d);
void hm_config_diag_fini(hm_config_diag *d);

/* ---- loading ----------------------------------------------------------------------------- */

enum {
    HM_LOAD_SETENV = 1u << 0, /* apply .env to the environment, not overriding (start-up only) */
    HM_LOAD_LOG = 1u << 1,    /* also log every diagnostic (errors as RT_ERROR, "config") */
};

typedef struct hm_config hm_config;

/*
 * Load the configuration of home (NULL: hm_config_home()). Reads home/.env (missing is fine)
 * and home/config.yaml (missing means defaults), checks every key against the schema, and
 * deep-merges it over the defaults. Diagnostics go to diag (may be NULL). Returns a new config
 * with one reference, or NULL with *err (may be NULL) = -EBADMSG (config.yaml is not valid
 * YAML or its top level is not a mapping: diag says file, line, column and why), -E2BIG (file
 * too large) or another -errno reading a file.
 */
hm_config *hm_config_load(const char *home, unsigned flags, hm_config_diag *diag, int *err);
/* Another reference (any thread). */
hm_config *hm_config_ref(hm_config *c);
/* Drop a reference; the last one frees. NULL is a no-op. Any thread. */
void hm_config_unref(hm_config *c);

const char *hm_config_home_dir(const hm_config *c); /* borrowed */
const char *hm_config_path(const hm_config *c);     /* home/config.yaml, borrowed */
const char *hm_config_env_path(const hm_config *c); /* home/.env, borrowed */
/* Whether config.yaml existed when loaded. */
bool hm_config_has_file(const hm_config *c);

/* ---- lookups (any thread; returned pointers are borrowed from c) ------------------------- */

/* The effective value at a dotted path (config.yaml over defaults), or the schema default
 * for "*" keys, or NULL. Use for maps with user keys (agent.personalities, quick_commands). */
const cJSON *hm_config_node(const hm_config *c, const char *path);
/* Typed lookups of the effective value; when there is none, the schema default; when there is
 * none either, NULL / 0 / false. Values of the wrong type never get here (invariant 2). */
const char *hm_config_str(const hm_config *c, const char *path);
int64_t hm_config_int(const hm_config *c, const char *path);
double hm_config_double(const hm_config *c, const char *path);
bool hm_config_bool(const hm_config *c, const char *path);
/* Fill out[0..max) with the strings of a list; returns the list's length (may exceed max). A
 * key that may also be a comma-separated string (HM_T_STR_OR_LIST) set to a string gives that
 * one string: split it yourself. */
size_t hm_config_list(const hm_config *c, const char *path, const char **out, size_t max);

/* config.yaml itself, as checked and normalised (an object; empty without a file). */
const cJSON *hm_config_user(const hm_config *c);
/* True if config.yaml itself sets path (to something other than null). */
bool hm_config_is_set(const hm_config *c, const char *path);
/* 1-based line in config.yaml where path is set, 0 if it is not. */
int hm_config_line(const hm_config *c, const char *path);

typedef enum hm_source {
    HM_SRC_DEFAULT, /* built-in default */
    HM_SRC_FILE,    /* config.yaml */
    HM_SRC_DOTENV,  /* $HERMES_HOME/.env */
    HM_SRC_ENV,     /* the process environment */
    HM_SRC_ARG,     /* a command-line option */
} hm_source;
/* "default", "config.yaml", ".env", "env", "command line". */
const char *hm_source_name(hm_source s);

/*
 * Env-aware lookups: for keys whose schema entry names an environment variable, that variable
 * (if set and non-empty) wins over config.yaml, which wins over the default (HM_K_ENV_FALLBACK
 * keys: config.yaml first). *src (may be NULL) says where the value came from. The string is
 * borrowed from the environment or from c: do not keep it across a setenv.
 */
const char *hm_config_env_str(const hm_config *c, const char *path, hm_source *src);
int64_t hm_config_env_int(const hm_config *c, const char *path, hm_source *src);
double hm_config_env_double(const hm_config *c, const char *path, hm_source *src);
bool hm_config_env_bool(const hm_config *c, const char *path, hm_source *src);
/* An environment variable: the process environment, else the .env file as loaded. */
const char *hm_config_getenv(const hm_config *c, const char *name, hm_source *src);
/* The value .env assigned to name when c was loaded, or NULL. */
const char *hm_config_dotenv(const hm_config *c, const char *name);
/* The name of the i-th assignment in .env (in file order, repeats included), NULL past the end. */
const char *hm_config_dotenv_name(const hm_config *c, size_t i);

/* ---- the original's special precedence rules --------------------------------------------- */

typedef enum hm_ctx { HM_CTX_CLI = 1, HM_CTX_GATEWAY = 2 } hm_ctx;

/*
 * The model name (agent-core §2.2). CLI: cli_arg (--model) → LLM_MODEL → OPENAI_MODEL →
 * config.yaml model / model.default → "anthropic/claude-opus-4.6". Gateway and cron:
 * config.yaml model / model.default when the file sets it, else HERMES_MODEL → LLM_MODEL →
 * the default. Borrowed string.
 */
const char *hm_config_model(const hm_config *c, hm_ctx ctx, const char *cli_arg, hm_source *src);
/*
 * Tool-calling iterations per turn. CLI: cli_arg (--max-turns, if > 0) → agent.max_turns →
 * root max_turns (legacy) → HERMES_MAX_ITERATIONS → 60, the config values counting only when
 * config.yaml sets them. Gateway: agent.max_turns (its start-up copied it into
 * HERMES_MAX_ITERATIONS, config winning) → HERMES_MAX_ITERATIONS → 60.
 */
int64_t hm_config_max_turns(const hm_config *c, hm_ctx ctx, int64_t cli_arg, hm_source *src);

/*
 * Copy config.yaml settings into the environment, as the original's start-up did (agent-core
 * §9.3, gateway §1.2-1.3). Start-up only (single-threaded). Returns how many were set.
 *
 * HM_CTX_CLI: terminal.* → TERMINAL_* (keys config.yaml sets always win; defaults only fill
 *   unset variables), "."/"auto"/"cwd" as terminal.cwd means the current directory for the
 *   local backend and no TERMINAL_CWD otherwise; browser.inactivity_timeout →
 *   BROWSER_INACTIVITY_TIMEOUT and compression.* → CONTEXT_COMPRESSION_* (always).
 * HM_CTX_GATEWAY: top-level UPPER_CASE scalar keys (e.g. MATRIX_HOME_CHANNEL written by
 *   /sethome) → the variable of that name if unset; terminal.* and compression.* keys that
 *   config.yaml sets → TERMINAL_*, CONTEXT_COMPRESSION_* (config wins); agent.max_turns →
 *   HERMES_MAX_ITERATIONS (config wins); agent.gateway_timeout & co, display.busy_input_mode,
 *   timezone, gateway.proxy_url → their variables if unset; security.redact_secrets →
 *   HERMES_REDACT_SECRETS; matrix:/mattermost:/telegram:/discord:/slack:/whatsapp: section
 *   keys → MATRIX_REQUIRE_MENTION, MATRIX_FREE_RESPONSE_ROOMS (a list is joined with commas),
 *   MATRIX_AUTO_THREAD, MATRIX_DM_MENTION_THREADS, … only if unset; HERMES_QUIET=1,
 *   HERMES_EXEC_ASK=1; and TERMINAL_CWD = MESSAGING_CWD or $HOME unless terminal.cwd names a
 *   directory.
 * Values are written as the original's str() wrote them: True/False for terminal and
 * compression booleans, true/false for the platform sections, lists as JSON.
 */
int hm_config_export_env(const hm_config *c, hm_ctx ctx); /* ctx: one of HM_CTX_* */

/*
 * The extra checks of `hermes config check`, added to diag: placeholder secrets in the
 * environment, .env or config.yaml (gateway §1.3 list), secrets stored in config.yaml
 * (warnings: they belong in .env), values outside a key's choices (warnings), an .env line
 * that does not parse (warning). Returns the number of errors added.
 */
int hm_config_check(const hm_config *c, hm_config_diag *diag);

/* Format a double the way Python's str() does ("0.85", "1.0", "1e-05"). */
void hm_fmt_double(double d, char *buf, size_t n);

#endif /* HM_CONFIG_H */
