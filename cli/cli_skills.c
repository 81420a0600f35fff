/*
 * cli_skills — `hermes skills list|inspect|install`: the skills in $HERMES_HOME/skills
 * (agent-core §8) through tools/skills.
 *
 * list prints the skills grouped by category (top-level skills under "general") with their
 * descriptions; inspect prints one skill's SKILL.md and its supporting files; install copies
 * a skill directory from a local path (a git checkout works: .git is skipped) after the
 * security audit (skl_admin), which blocks on any finding unless --force.
 * Hub commands (search, audit, publish, …) are not part of this build.
 * Exit status: 0, 1 (not found, exists, blocked, copy failed), 2 (usage).
 */
#include "cli.h"

#include "hm_config.h"
#include "rt_alloc.h"
#include "skl_admin.h"
#include "skl_store.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: hermes skills {list,inspect} ...\n"
               "  list [--category NAME]   the installed skills, by category\n"
               "  inspect NAME             one skill's SKILL.md and supporting files\n"
               "  install PATH [--category NAME] [--force]\n"
               "                           copy the skill directory PATH in (after a security "
               "audit)\n");
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int do_list(const char *root, const char *category)
{
    cJSON *r = skl_list(root, category);
    const cJSON *skills = cJSON_GetObjectItemCaseSensitive(r, "skills");
    int n = cJSON_GetArraySize(skills);
    if (n == 0) {
        printf(category ? "No skills in category '%s' (%s).\n" : "No skills installed%s(%s).\n",
               category ? category : " ", root);
        cJSON_Delete(r);
        return 0;
    }
    const char *cat = NULL;
    bool first = true;
    const cJSON *s;
    cJSON_ArrayForEach(s, skills)
    {
        const char *c = jstr(s, "category");
        if (!c)
            c = "general";
        if (first || strcmp(c, cat) != 0) {
            printf("%s%s:\n", first ? "" : "\n", c);
            cat = c;
            first = false;
        }
        const char *d = jstr(s, "description");
        char line[100];
        snprintf(line, sizeof(line), "%s", d ? d : "");
        for (char *p = line; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        printf("  %-28s %s%s\n", jstr(s, "name"), line,
               d && strlen(d) >= sizeof(line) ? "..." : "");
    }
    printf("\n%d skill%s in %s\n", n, n == 1 ? "" : "s", root);
    cJSON_Delete(r);
    return 0;
}

static int do_inspect(const char *root, const char *name)
{
    cJSON *r = skl_view(root, name, NULL);
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "success"))) {
        fprintf(stderr, "hermes skills: %s\n", jstr(r, "error"));
        cJSON_Delete(r);
        return 1;
    }
    printf("%s  (%s)\n\n%s", jstr(r, "name"), jstr(r, "path"), jstr(r, "content"));
    const cJSON *lf = cJSON_GetObjectItemCaseSensitive(r, "linked_files");
    if (cJSON_IsObject(lf)) {
        printf("\nSupporting files:\n");
        const cJSON *kind, *f;
        cJSON_ArrayForEach(kind, lf)
        {
            cJSON_ArrayForEach(f, kind)
            {
                printf("  %s\n", f->valuestring);
            }
        }
    }
    cJSON_Delete(r);
    return 0;
}

/* Declared here as well so that this file builds before cli.h lists it. */
int cli_skills(int argc, char **argv);

int cli_skills(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    const char *category = NULL;
    if (strcmp(sub, "list") == 0 || strcmp(sub, "ls") == 0) {
        for (int i = 2; i < argc; i++) {
            if ((strcmp(argv[i], "--category") == 0 || strcmp(argv[i], "-c") == 0) &&
                i + 1 < argc) {
                category = argv[++i];
            } else if (strncmp(argv[i], "--category=", 11) == 0) {
                category = argv[i] + 11;
            } else {
                usage(stderr);
                return 2;
            }
        }
    } else if (strcmp(sub, "inspect") == 0 || strcmp(sub, "show") == 0) {
        if (argc != 3) {
            usage(stderr);
            return 2;
        }
    } else if (strcmp(sub, "install") == 0) {
        const char *path = NULL;
        bool force = false;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--force") == 0)
                force = true;
            else if (strcmp(argv[i], "--category") == 0 && i + 1 < argc)
                category = argv[++i];
            else if (argv[i][0] != '-' && !path)
                path = argv[i];
            else {
                usage(stderr);
                return 2;
            }
        }
        if (!path) {
            usage(stderr);
            return 2;
        }
        char *home = hm_config_home();
        char *root = rt_xasprintf("%s/skills", home);
        char *report = NULL;
        int rc = skl_install(root, path, category, force, &report);
        fprintf(rc ? stderr : stdout, "%s%s\n", rc ? "hermes skills: " : "",
                report ? report : "failed");
        rt_free(report);
        rt_free(root);
        rt_free(home);
        return rc ? 1 : 0;
    } else {
        fprintf(stderr, "hermes skills: unknown command '%s'\n", sub);
        usage(stderr);
        return 2;
    }
    char *home = hm_config_home();
    char *root = rt_xasprintf("%s/skills", home);
    int rc = sub[0] == 'l' ? do_list(root, category) : do_inspect(root, argv[2]);
    rt_free(root);
    rt_free(home);
    return rc;
}
