/*
 * hermes — the command-line entry point. Parses the command and hands over to the module
 * that owns it. Commands arrive with the modules that implement them.
 */
#include "rt_log.h"

#include <stdio.h>
#include <string.h>

#ifndef HERMES_VERSION
#define HERMES_VERSION "0.1.0"
#endif

static void usage(FILE *f)
{
    fprintf(f, "usage: hermes <command> [options]\n"
               "\n"
               "commands:\n"
               "  version        print the version\n"
               "  help           this text\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("hermes %s\n", HERMES_VERSION);
        return 0;
    }
    fprintf(stderr, "hermes: unknown command '%s' (try 'hermes help')\n", argv[1]);
    return 2;
}
