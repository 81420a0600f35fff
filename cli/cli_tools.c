/*
 * cli_tools — `hermes tools`: which toolsets and tools a platform's sessions get (agent-core
 * §3.2): each toolset with its state (on: all its tools are in the platform's toolsets) and
 * each of its tools (✓ loaded, ✗ its requirements are not met here, · not in this build).
 *
 * The original's `hermes tools` is an interactive checklist that writes platform_toolsets;
 * this one shows the same information and says how to change it with `hermes config set`.
 * Exit status: 0, 1 (the configuration cannot be loaded), 2 (usage).
 */
#include "cli.h"

#include "chat_session.h"
#include "hm_host.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"
#include "tool.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: hermes tools [--platform NAME] [--toolsets a,b]\n"
               "  show the toolsets and tools a platform's sessions get (default platform: cli)\n"
               "  --platform NAME   cli, telegram, discord, whatsapp, slack, matrix, mattermost,\n"
               "                    api_server\n"
               "  --toolsets LIST   show what these toolsets would give instead of the "
               "configuration's\n");
}

static bool in(const char *const *list, const char *name)
{
    for (; list && *list; list++)
        if (strcmp(*list, name) == 0)
            return true;
    return false;
}

/* The platform's preset toolset ("hermes-cli"), or false when there is none. */
static bool preset_of(const char *platform, char *out, size_t n)
{
    snprintf(out, n, "hermes-%s", platform);
    for (char *c = out; *c; c++)
        if (*c == '_')
            *c = '-';
    return in(tool_toolset_names(), out);
}

/* A primitive toolset (shown with its tools): described, not a preset or a composite. */
static bool primitive(const char *name)
{
    return chat_toolset_desc(name) && strncmp(name, "hermes-", 7) != 0 &&
           strcmp(name, "debugging") != 0 && strcmp(name, "safe") != 0;
}

static void show(hm_host *h, const char *platform, const char *const *explicit_sets)
{
    char preset[64], path[96];
    (void)preset_of(platform, preset, sizeof(preset));
    snprintf(path, sizeof(path), "platform_toolsets.%s", platform);
    const char *sets[64];
    size_t nsets = 0;
    const char *from = "--toolsets";
    if (explicit_sets) {
        for (; explicit_sets[nsets] && nsets + 1 < RT_ARRAY_LEN(sets); nsets++)
            sets[nsets] = explicit_sets[nsets];
    } else {
        nsets = hm_config_list(h->cfg, path, sets, RT_ARRAY_LEN(sets) - 1);
        if (nsets > RT_ARRAY_LEN(sets) - 1)
            nsets = RT_ARRAY_LEN(sets) - 1;
        from = nsets && hm_config_is_set(h->cfg, path) ? path : "the default";
        if (!nsets)
            sets[nsets++] = preset;
    }
    sets[nsets] = NULL;
    /* Every tool the toolsets name that this build has, and those available here. */
    const char **wanted = tool_resolve(sets, NULL, NULL, NULL, NULL);
    tool_env *env = hm_host_tool_env(h, platform, getenv("TERMINAL_CWD"), false);
    const char **loaded = tool_resolve(sets, NULL, env, NULL, NULL);
    tool_env_unref(env);

    printf("⚕ Tools for %s\n  toolsets: ", platform);
    for (size_t i = 0; i < nsets; i++)
        printf("%s%s", i ? ", " : "", sets[i]);
    printf("   (%s)\n\n", from);

    const char *const *all = tool_toolset_names();
    for (size_t i = 0; all[i]; i++) {
        if (!primitive(all[i]))
            continue;
        const char **tools = tool_toolset_tools(all[i]);
        size_t built = 0, on = 0;
        for (size_t k = 0; tools[k]; k++) {
            if (!tool_find(tools[k]))
                continue;
            built++;
            on += in(wanted, tools[k]);
        }
        const char *state = !built ? "·" : on == built ? "✓" : on ? "~" : " ";
        printf("  [%s] %-16s %.60s%s\n", state, all[i], chat_toolset_desc(all[i]),
               strlen(chat_toolset_desc(all[i])) > 60 ? "..." : "");
        for (size_t k = 0; tools[k]; k++) {
            const char *mark, *note = "";
            if (!tool_find(tools[k])) {
                mark = "·";
                note = "not in this build";
            } else if (in(loaded, tools[k])) {
                mark = "✓";
            } else if (in(wanted, tools[k])) {
                mark = "✗";
                note = "unavailable here (requirements not met)";
            } else {
                mark = " ";
            }
            if (*note)
                printf("        %s %-22s %s\n", mark, tools[k], note);
            else
                printf("        %s %s\n", mark, tools[k]);
        }
        rt_free(tools);
    }
    size_t n = 0;
    while (loaded[n])
        n++;
    printf("\n  %zu tools loaded for %s.\n  [✓] on  [~] partly on  [ ] off  [·] not in this build;"
           "  ✓ loaded  ✗ unavailable here\n",
           n, platform);
    printf("  Change with: hermes config set %s \"[web, terminal, file]\"\n", path);
    if (strcmp(platform, "cli") == 0)
        printf("  For one chat: hermes --toolsets web,terminal\n");
    rt_free(loaded);
    rt_free(wanted);
}

int cli_tools(int argc, char **argv)
{
    static const struct option opts[] = {{"platform", required_argument, NULL, 'p'},
                                         {"toolsets", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *platform = "cli";
    const char *toolsets = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":p:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': platform = optarg; break;
        case 't': toolsets = optarg; break;
        case 'h': usage(stdout); return 0;
        case ':':
            cli_err("option '%s' needs a value", argv[optind - 1]);
            usage(stderr);
            return 2;
        default:
            cli_err("unknown option '%s'", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        /* `hermes tools list` reads naturally; anything else is a mistake. */
        if (strcmp(argv[optind], "list") != 0 || optind + 1 < argc) {
            cli_err("unexpected argument '%s'", argv[optind]);
            usage(stderr);
            return 2;
        }
    }
    char preset[64];
    if (strcmp(platform, "cli") != 0 && !preset_of(platform, preset, sizeof(preset))) {
        cli_err("unknown platform '%s'", platform);
        usage(stderr);
        return 2;
    }
    char *copy = toolsets ? rt_xstrdup(toolsets) : NULL;
    const char **ts = copy ? chat_split_list(copy) : NULL;
    const char *bad = ts ? chat_unknown_toolset(ts) : NULL;
    int status = 2;
    if (ts && !ts[0]) {
        cli_err("--toolsets needs at least one toolset name (see: hermes --list-toolsets)");
    } else if (bad) {
        cli_err("unknown toolset '%s' (see: hermes --list-toolsets)", bad);
    } else {
        rt_log_set_level(RT_LOG_WARN);
        hm_host_opts ho = {.ctx = HM_CTX_CLI};
        hm_host *h = NULL;
        char err[512];
        status = 1;
        if (hm_host_start(&ho, &h, err, sizeof(err)) != 0) {
            cli_err("%s", err);
        } else {
            show(h, platform, ts);
            fflush(stdout);
            hm_host_stop(h);
            status = 0;
        }
    }
    rt_free(ts);
    rt_free(copy);
    return status;
}
