/*
 * term_backend — where a terminal command runs (agent-core §4.2) and the exact command
 * lines that run it.
 *
 * The backend comes from the environment, as in the original (the session host exports
 * terminal.* from config.yaml as TERMINAL_* variables):
 *   TERMINAL_ENV                local (default) | ssh | docker | singularity | modal
 *   TERMINAL_CWD                working directory (local: the session's; others: "~")
 *   TERMINAL_SSH_HOST/USER/PORT/KEY
 *   TERMINAL_DOCKER_IMAGE, TERMINAL_SINGULARITY_IMAGE
 *   TERMINAL_CONTAINER_CPU (1), _MEMORY (5120 MB), _DISK (51200 MB), _PERSISTENT (true)
 *   TERMINAL_DOCKER_VOLUMES     JSON list of "host:container"
 *   TERMINAL_SANDBOX_DIR        host root for container workspaces ($HERMES_HOME/sandboxes)
 *   TERMINAL_SCRATCH_DIR, APPTAINER_CACHEDIR (singularity), MSWEA_DOCKER_EXECUTABLE
 *   TERMINAL_LIFETIME_SECONDS   idle time before a sandbox is torn down (300)
 *
 * This module is pure apart from reading the environment and PATH in term_config_load and
 * term_which: every argv builder is a function of its arguments, so tests check the
 * command lines exactly. Builders return NULL-terminated heap arrays of heap strings
 * (free with term_argv_free).
 *
 * Threads: any thread.
 */
#ifndef TERM_BACKEND_H
#define TERM_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERM_DEFAULT_IMAGE "nikolaik/python-nodejs:python3.11-nodejs20"
/* The first line a marked remote or background command prints: "HERMES_PID=<pid>". */
#define TERM_PID_MARKER "HERMES_PID="

typedef enum term_backend {
    TERM_BE_LOCAL = 0,
    TERM_BE_SSH,
    TERM_BE_DOCKER,
    TERM_BE_SINGULARITY,
    TERM_BE_MODAL,
} term_backend;

/* The backend's display name ("local", "ssh", ...). */
const char *term_backend_name(term_backend b);

typedef struct term_config {
    term_backend backend;
    char *cwd;               /* TERMINAL_CWD (checked for containers), or NULL */
    char *docker_image;      /* TERMINAL_DOCKER_IMAGE */
    char *singularity_image; /* TERMINAL_SINGULARITY_IMAGE (docker://… by default) */
    char *docker_exe;        /* MSWEA_DOCKER_EXECUTABLE or "docker" */
    char *ssh_host, *ssh_user, *ssh_key;
    int ssh_port;      /* 22 */
    double cpu;        /* cores, 0: no limit */
    int64_t memory_mb; /* 0: no limit */
    int64_t disk_mb;   /* 0: no limit */
    bool persistent;   /* bind-mounted workspace (docker) / overlay dir (singularity) */
    char **volumes;    /* NULL-terminated "host:container" strings; never NULL once loaded */
    char *sandbox_dir; /* TERMINAL_SANDBOX_DIR or <hermes_home>/sandboxes */
    char *control_dir; /* $TMPDIR/hermes-ssh */
    int64_t lifetime_s;
} term_config;

/*
 * Load the configuration from the environment. hermes_home (may be NULL: $HOME/.hermes)
 * roots the default sandbox dir. Returns 0, or -EINVAL for an unknown TERMINAL_ENV with
 * the original's message in err ("Unknown environment type: …"). On error c holds nothing
 * to free. Reads the environment: call from one thread at a time with setenv.
 */
int term_config_load(term_config *c, const char *hermes_home, char *err, size_t errlen);
void term_config_fini(term_config *c);
term_config *term_config_dup(const term_config *c);
/* fini + free; NULL is a no-op. */
void term_config_free(term_config *c);

/* Where one command runs: what the argv builders need once a sandbox exists. */
typedef struct term_target {
    term_backend backend;
    char *exe;         /* ssh: "ssh"; docker: the engine; singularity: apptainer|singularity */
    char *ssh_dest;    /* user@host */
    char *ssh_control; /* ControlPath socket */
    char *ssh_key;     /* -i, or NULL */
    int ssh_port;
    char *container; /* docker container id, singularity instance name */
} term_target;

/* A target for config c (container: the sandbox's id or NULL). New heap object. */
term_target *term_target_new(const term_config *c, const char *exe, const char *container);
term_target *term_target_dup(const term_target *t);
void term_target_free(term_target *t);

void term_argv_free(char **argv);
size_t term_argv_len(char *const *argv);
/* The argv joined with spaces, each element shell-quoted (for logs and tests). */
char *term_argv_join(char *const *argv);

/*
 * The command line that runs cmd in cwd on t:
 *   local        {shell, "-lic", cmd}                      (cwd goes to rt_proc)
 *   ssh          {ssh, <options>, user@host, "bash -c '<cd cwd && cmd>'"}
 *   docker       {docker, exec, [-i], -w, cwd, <id>, bash, -lc, cmd}
 *   singularity  {exe, exec, --pwd, cwd, instance://<id>, bash, -c, cmd}
 * A "~" or "~/…" cwd in a container becomes a "cd" in front of cmd (docker -w "/",
 * singularity --pwd "/tmp"), as the original does, since neither expands "~".
 * stdin_open adds docker's -i (background processes that accept write/submit). marker
 * (ssh, docker, singularity) makes the remote shell print TERM_PID_MARKER<its pid> first,
 * so an interrupt or timeout can also end the command where it runs, not only our client.
 */
char **term_exec_argv(const term_target *t, const char *cwd, const char *cmd, bool stdin_open,
                      bool marker);

/* ssh <the original's options> [extra...] user@host [remote]. */
char **term_ssh_argv(const term_target *t, const char *const *extra, const char *remote);
/* "bash -c '[echo "HERMES_PID=$$"; ]cd <cwd> && cmd'", quoted for the remote login shell. */
char *term_ssh_remote(const char *cwd, const char *cmd, bool marker);
/* The command that ends a remote command whose marker said pid (its process group, else
 * the process itself). */
char *term_remote_kill_command(long pid);
/* The ControlPath for user@host:port under dir. */
char *term_ssh_control_path(const char *dir, const char *user, const char *host, int port);

/* The docker container's workspace and home bind-mount directories for task_id. */
char *term_docker_dir(const term_config *c, const char *task_id, const char *leaf);
/*
 * docker run -d --name <name> -w <cwd> <hardening> <writable mounts> <limits> <volumes>
 * <image> sleep 2h — the original's container (via mini-swe-agent). ws/home: the
 * persistent bind-mount dirs (used when c->persistent). storage_opt: the engine supports
 * --storage-opt size= (overlay2 on XFS with pquota).
 */
char **term_docker_run_argv(const term_config *c, const char *name, const char *cwd, const char *ws,
                            const char *home, bool storage_opt);

/* The singularity scratch dir (TERMINAL_SCRATCH_DIR, /scratch/$USER/hermes-agent, or
 * <sandbox_dir>/singularity). Reads the environment and /scratch. */
char *term_singularity_scratch(const term_config *c);
/* The cached SIF path for a docker:// image, or NULL when image is not docker://. */
char *term_singularity_sif(const char *scratch, const char *image);
/* <exe> instance start --containall --no-home [--overlay dir | --writable-tmpfs]
 * [--memory NM] [--cpus N] <image> <instance>. overlay: NULL when not persistent. */
char **term_singularity_start_argv(const term_config *c, const char *exe, const char *image,
                                   const char *overlay, const char *instance);

/* Python's shlex.quote. New heap string. */
char *term_shell_quote(const char *s);
/* Python's str(float): "1.0", "0.5", "2.25". */
void term_fmt_pyfloat(double v, char *out, size_t n);
/* A path or task id made safe as one path component ([A-Za-z0-9._-], no ".."). */
char *term_safe_component(const char *s);

/* Does cmd contain the word "sudo" (Python \bsudo\b)? */
bool term_has_sudo(const char *cmd);
/* Every "sudo" word replaced by "echo <quoted password> | sudo -S -p ''" (the original's
 * transform). New heap string; NULL when cmd has no sudo word. The result holds the
 * password: never log it. */
char *term_sudo_transform(const char *cmd, const char *password);

/* The full path of an executable found on $PATH, or NULL. New heap string. */
char *term_which(const char *name);

#endif /* TERM_BACKEND_H */
