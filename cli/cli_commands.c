/*
 * cli_commands — the table of `hermes` commands. One line per command family.
 */
#include "cli.h"

#include <stddef.h>

const cli_cmd cli_commands[] = {
    {"chat", "talk to the agent: hermes chat -q \"question\"", cli_chat},
    {"version", "print the version", cli_version},
    {"config", "show or change settings", cli_config},
    {"status", "what is configured: provider, platforms, gateway", cli_status},
    {"doctor", "check the installation and configuration", cli_doctor},
    {"pairing", "approve or revoke users who asked to talk to the bot", cli_pairing},
    {"tools", "show the toolsets and tools each platform gets", cli_tools},
    {"skills", "list, inspect or install skills: hermes skills list", cli_skills},
    {"cron", "scheduled jobs: hermes cron [list|status|add|remove]", cli_cron},
    {"gateway", "run the messaging gateway: hermes gateway [run|status|install|start|stop]",
     cli_gateway},
    {NULL, NULL, NULL},
};
