/*
 * cli_main — the `hermes` entry point: finds the command in cli_commands and runs it.
 */
#include "cli.h"

#include "rt_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef HERMES_VERSION
#define HERMES_VERSION "0.1.0"
#endif

void cli_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hermes: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_version(int argc, char **argv)
{
    printf("hermes %s\n", HERMES_VERSION);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: hermes <command> [options]\n\ncommands:\n");
    for (const cli_cmd *c = cli_commands; c->name; c++)
        fprintf(f, "  %-14s %s\n", c->name, c->summary);
    fprintf(f, "  %-14s %s\n", "help", "this text");
}

int main(int argc, char **argv)
{
    if (argc < 2 && !(isatty(0) && isatty(1))) {
        usage(stderr);
        return 2;
    }
    if (argc < 2) /* `hermes` on a terminal: the interactive chat */
        return cli_chat(argc, argv);
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0)
        name = "version";
    else if (name[0] == '-') /* `hermes --toolsets web`, `hermes --list-tools`, ...: chat's */
        return cli_chat(argc, argv);
    for (const cli_cmd *c = cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c->run(argc - 1, argv + 1);
    cli_err("unknown command '%s' (try 'hermes help')", argv[1]);
    return 2;
}
