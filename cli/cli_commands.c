/*
 * cli_commands — the table of `hermes` commands. One line per command family.
 */
#include "cli.h"

#include <stddef.h>

const cli_cmd cli_commands[] = {
    {"version", "print the version", cli_version},
    {"config", "show or change settings", cli_config},
    {NULL, NULL, NULL},
};
