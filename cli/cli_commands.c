/*
 * cli_commands — the table of `hermes` commands. One line per command family.
 */
#include "cli.h"

#include <stddef.h>

const cli_cmd cli_commands[] = {
    {"chat", "talk to the agent: hermes chat -q \"question\"", cli_chat},
    {"version", "print the version", cli_version},
    {"config", "show or change settings", cli_config},
    {NULL, NULL, NULL},
};
