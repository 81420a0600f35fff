/* gw_auth: the original's authorization order (gateway.md §3.1) and the unauthorized-DM
 * behaviour (§3.2), from the environment, ~/.hermes/.env and config.yaml. Each case runs in
 * its own process, so setenv here touches no other case. */
#include "gw_auth.h"

#include "rt_alloc.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Remove every variable that could grant access, so the runner's environment cannot leak in. */
static void clean_env(void)
{
    for (int round = 0; round < 64; round++) { /* unsetenv shifts environ: rescan, bounded */
        bool removed = false;
        for (char **e = environ; e && *e; e++) {
            const char *eq = strchr(*e, '=');
            if (!eq)
                continue;
            char name[256];
            size_t n = (size_t)(eq - *e);
            if (n >= sizeof(name))
                continue;
            memcpy(name, *e, n);
            name[n] = 0;
            if (strstr(name, "_ALLOWED_USERS") || strstr(name, "_ALLOW_ALL_USERS")) {
                unsetenv(name);
                removed = true;
                break;
            }
        }
        if (!removed)
            return;
    }
}

static int check(const gw_auth *a, const char *platform, const char *user)
{
    gw_source s = {.platform = (char *)platform, .chat_type = "dm", .user_id = (char *)user};
    return gw_auth_check(a, &s);
}

/* A fresh snapshot of the process environment (no config). */
static gw_auth *env_auth(void)
{
    return gw_auth_new(NULL);
}

TEST(nothing_configured_denies_by_default)
{
    clean_env();
    gw_auth *a = env_auth();
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "matrix", "@a:hs"));
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "mattermost", "u1"));
    ASSERT_FALSE(gw_auth_has_lists(a));
    ASSERT_TRUE(gw_auth_dm_pairs(a, "matrix")); /* default behaviour: pair */
    gw_auth_free(a);
}

TEST(no_user_id_is_denied_even_when_everyone_is_allowed)
{
    clean_env();
    setenv("GATEWAY_ALLOW_ALL_USERS", "true", 1);
    setenv("MATRIX_ALLOW_ALL_USERS", "true", 1);
    gw_auth *a = env_auth();
    ASSERT_EQ(GW_AUTH_DENY, check(a, "matrix", NULL));
    ASSERT_EQ(GW_AUTH_DENY, check(a, "matrix", ""));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "matrix", "@a:hs"));
    gw_auth_free(a);
}

TEST(home_assistant_and_webhooks_are_always_allowed)
{
    clean_env();
    gw_auth *a = env_auth();
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "homeassistant", "x"));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "webhook", NULL));
    gw_auth_free(a);
}

TEST(platform_list_applies_to_its_platform_only)
{
    clean_env();
    setenv("MATRIX_ALLOWED_USERS", " @a:hs , @b:hs,,", 1);
    gw_auth *a = env_auth();
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "matrix", "@a:hs"));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "matrix", "@b:hs"));
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "matrix", "@c:hs"));
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "matrix", "@A:hs"));  /* case-sensitive */
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "matrix", "@a:hs ")); /* exact */
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "mattermost", "@a:hs"));
    ASSERT_TRUE(gw_auth_has_lists(a));
    gw_auth_free(a);
}

TEST(global_list_is_a_union_with_the_platform_list)
{
    clean_env();
    setenv("GATEWAY_ALLOWED_USERS", "u1", 1);
    setenv("MATTERMOST_ALLOWED_USERS", "u2", 1);
    gw_auth *a = env_auth();
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "mattermost", "u1"));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "mattermost", "u2"));
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "mattermost", "u3"));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "matrix", "u1"));
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "matrix", "u2"));
    gw_auth_free(a);
}

TEST(star_allows_everyone_in_either_list)
{
    clean_env();
    setenv("MATRIX_ALLOWED_USERS", "@a:hs, *", 1);
    gw_auth *a = env_auth();
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "matrix", "@anyone:hs"));
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "mattermost", "u1"));
    gw_auth_free(a);
    setenv("GATEWAY_ALLOWED_USERS", "*", 1);
    a = env_auth();
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "mattermost", "u1"));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "telegram", "42"));
    gw_auth_free(a);
}

TEST(part_before_the_first_at_sign_matches)
{
    clean_env();
    setenv("WHATSAPP_ALLOWED_USERS", "15551234", 1);
    setenv("MATRIX_ALLOWED_USERS", "alice", 1);
    gw_auth *a = env_auth();
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "whatsapp", "15551234@s.whatsapp.net"));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "whatsapp", "15551234@x@y"));
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "whatsapp", "1555@s.whatsapp.net"));
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "whatsapp", "x15551234@s.whatsapp.net"));
    /* Matrix ids start with '@': the part before it is empty and matches nothing */
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "matrix", "@alice:hs"));
    gw_auth_free(a);
}

TEST(platform_allow_all_flag)
{
    clean_env();
    static const char *const yes[] = {"true", "TRUE", "True", "1", "yes", "YES"};
    static const char *const no[] = {"false", "0", "no", "on", " true", "", "2", "y"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        setenv("MATRIX_ALLOW_ALL_USERS", yes[i], 1);
        gw_auth *a = env_auth();
        ASSERT_EQ(GW_AUTH_ALLOW, check(a, "matrix", "@x:hs"));
        ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "mattermost", "u1"));
        gw_auth_free(a);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        setenv("MATRIX_ALLOW_ALL_USERS", no[i], 1);
        gw_auth *a = env_auth();
        if (check(a, "matrix", "@x:hs") != GW_AUTH_UNKNOWN)
            TEST_FAIL_("MATRIX_ALLOW_ALL_USERS=\"%s\" allowed", no[i]);
        gw_auth_free(a);
    }
    /* the flag wins over a list that does not name the user */
    setenv("MATRIX_ALLOW_ALL_USERS", "yes", 1);
    setenv("MATRIX_ALLOWED_USERS", "@a:hs", 1);
    gw_auth *a = env_auth();
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "matrix", "@x:hs"));
    gw_auth_free(a);
}

TEST(global_allow_all_only_when_no_list_applies)
{
    clean_env();
    setenv("GATEWAY_ALLOW_ALL_USERS", "1", 1);
    gw_auth *a = env_auth();
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "matrix", "@x:hs"));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "mattermost", "u9"));
    gw_auth_free(a);
    /* a platform list switches the global flag off for that platform (the original's rule) */
    setenv("MATRIX_ALLOWED_USERS", "@a:hs", 1);
    a = env_auth();
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "matrix", "@x:hs"));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "matrix", "@a:hs"));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "mattermost", "u9"));
    gw_auth_free(a);
    /* and a global list for every platform */
    setenv("GATEWAY_ALLOWED_USERS", "u1", 1);
    a = env_auth();
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "mattermost", "u9"));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "mattermost", "u1"));
    gw_auth_free(a);
}

TEST(a_list_of_only_commas_is_set_and_allows_no_one)
{
    clean_env();
    setenv("GATEWAY_ALLOW_ALL_USERS", "true", 1);
    setenv("MATRIX_ALLOWED_USERS", " , ,", 1);
    gw_auth *a = env_auth();
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "matrix", "@x:hs"));
    gw_auth_free(a);
    setenv("MATRIX_ALLOWED_USERS", "   ", 1); /* blank: not set */
    a = env_auth();
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "matrix", "@x:hs"));
    gw_auth_free(a);
}

TEST(any_platform_name_maps_to_its_variables)
{
    clean_env();
    setenv("API_SERVER_ALLOWED_USERS", "k1", 1);
    setenv("NEWCHAT_ALLOW_ALL_USERS", "true", 1);
    setenv("slack_ALLOWED_USERS", "s1", 1); /* not the original's variable name */
    gw_auth *a = env_auth();
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "api_server", "k1"));
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "api_server", "k2"));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "newchat", "anyone"));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "NewChat", "anyone"));
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "slack", "s1"));
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "", "s1"));
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, NULL, "s1"));
    gw_auth_free(a);
}

TEST(the_snapshot_does_not_follow_later_changes)
{
    clean_env();
    gw_auth *a = env_auth();
    setenv("MATRIX_ALLOW_ALL_USERS", "true", 1);
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "matrix", "@x:hs"));
    gw_auth *b = gw_auth_ref(a);
    gw_auth_free(a);
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(b, "matrix", "@x:hs")); /* still alive */
    gw_auth_free(b);
    gw_auth_free(NULL);
}

/* A home with .env and config.yaml. */
static hm_config *load_home(const char *dotenv, const char *yaml)
{
    const char *home = test_tmpdir();
    char path[512];
    if (dotenv) {
        snprintf(path, sizeof(path), "%s/.env", home);
        FILE *f = fopen(path, "w");
        ASSERT_NOT_NULL(f);
        fputs(dotenv, f);
        ASSERT_EQ(0, fclose(f));
    }
    if (yaml) {
        snprintf(path, sizeof(path), "%s/config.yaml", home);
        FILE *f = fopen(path, "w");
        ASSERT_NOT_NULL(f);
        fputs(yaml, f);
        ASSERT_EQ(0, fclose(f));
    }
    int err = 0;
    hm_config *c = hm_config_load(home, 0, NULL, &err);
    ASSERT_NOT_NULL(c);
    return c;
}

TEST(dotenv_variables_count_and_the_environment_wins)
{
    clean_env();
    hm_config *c = load_home("MATRIX_ALLOWED_USERS=@a:hs\nMATTERMOST_ALLOW_ALL_USERS=true\n"
                             "GATEWAY_ALLOWED_USERS=g1\n",
                             NULL);
    gw_auth *a = gw_auth_new(c);
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "matrix", "@a:hs"));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "matrix", "g1"));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "mattermost", "anyone"));
    gw_auth_free(a);
    setenv("MATRIX_ALLOWED_USERS", "@b:hs", 1);
    setenv("MATTERMOST_ALLOW_ALL_USERS", "false", 1);
    a = gw_auth_new(c);
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "matrix", "@a:hs"));
    ASSERT_EQ(GW_AUTH_ALLOW, check(a, "matrix", "@b:hs"));
    ASSERT_EQ(GW_AUTH_UNKNOWN, check(a, "mattermost", "anyone"));
    gw_auth_free(a);
    hm_config_unref(c);
}

TEST(dm_behaviour_platform_section_then_extra_then_global)
{
    clean_env();
    hm_config *c = load_home(NULL, "unauthorized_dm_behavior: ignore\n"
                                   "matrix:\n"
                                   "  unauthorized_dm_behavior: pair\n"
                                   "mattermost:\n"
                                   "  unauthorized_dm_behavior: ' IGNORE '\n"
                                   "platforms:\n"
                                   "  mattermost:\n"
                                   "    extra:\n"
                                   "      unauthorized_dm_behavior: pair\n"
                                   "  telegram:\n"
                                   "    extra:\n"
                                   "      unauthorized_dm_behavior: Pair\n"
                                   "  slack:\n"
                                   "    extra:\n"
                                   "      unauthorized_dm_behavior: bogus\n");
    gw_auth *a = gw_auth_new(c);
    ASSERT_TRUE(gw_auth_dm_pairs(a, "matrix"));
    ASSERT_FALSE(gw_auth_dm_pairs(a, "mattermost")); /* the section wins over extra */
    ASSERT_TRUE(gw_auth_dm_pairs(a, "telegram"));
    ASSERT_FALSE(gw_auth_dm_pairs(a, "slack")); /* invalid: the global value */
    ASSERT_FALSE(gw_auth_dm_pairs(a, "discord"));
    ASSERT_FALSE(gw_auth_dm_pairs(a, NULL));
    gw_auth_free(a);
    hm_config_unref(c);
}

TEST(dm_behaviour_defaults_to_pair)
{
    clean_env();
    hm_config *c = load_home(NULL, "matrix:\n  unauthorized_dm_behavior: ignore\n");
    gw_auth *a = gw_auth_new(c);
    ASSERT_FALSE(gw_auth_dm_pairs(a, "matrix"));
    ASSERT_TRUE(gw_auth_dm_pairs(a, "mattermost"));
    gw_auth_free(a);
    hm_config_unref(c);
    c = load_home(NULL, "unauthorized_dm_behavior: nonsense\n");
    a = gw_auth_new(c);
    ASSERT_TRUE(gw_auth_dm_pairs(a, "matrix"));
    gw_auth_free(a);
    hm_config_unref(c);
}

TEST(truthy_is_the_originals)
{
    ASSERT_TRUE(gw_auth_truthy("TrUe"));
    ASSERT_TRUE(gw_auth_truthy("1"));
    ASSERT_TRUE(gw_auth_truthy("Yes"));
    ASSERT_FALSE(gw_auth_truthy("on"));
    ASSERT_FALSE(gw_auth_truthy(NULL));
    ASSERT_FALSE(gw_auth_truthy("1 "));
}
