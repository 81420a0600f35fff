/*
 * cli — the `hermes` command line: one table of commands, one file per command family.
 *
 * A command is `int cli_<name>(int argc, char **argv)` where argv[0] is the command name;
 * it returns the process exit status (0 ok, 1 failure, 2 usage error) and prints its own
 * errors. Adding a command: a new cli/cli_<name>.c and one line in cli_commands.c.
 */
#ifndef CLI_H
#define CLI_H

#include <stdio.h>

typedef struct cli_cmd {
    const char *name;    /* "config", "gateway" */
    const char *summary; /* one line for `hermes help` */
    int (*run)(int argc, char **argv);
} cli_cmd;

/* The command table (cli_commands.c), terminated by a zeroed entry. */
extern const cli_cmd cli_commands[];

/* Print "hermes: " + message to stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int cli_version(int argc, char **argv);
int cli_chat(int argc, char **argv);
int cli_config(int argc, char **argv);
int cli_gateway(int argc, char **argv);
int cli_pairing(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_doctor(int argc, char **argv);
int cli_tools(int argc, char **argv);
int cli_skills(int argc, char **argv);
int cli_cron(int argc, char **argv);
int cli_cron_slash(const char *args, FILE *out); /* the REPL's /cron */

#endif /* CLI_H */
