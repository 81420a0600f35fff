/*
 * cli_pairing — `hermes pairing list | approve <platform> <code> | revoke <platform> <user_id>
 * | clear-pending`: the owner's side of DM pairing (gateway.md §3.3), with the original's
 * texts (hermes_cli/pairing.py). It works on the files directly, so it takes effect while the
 * gateway runs: the gateway sees an approval on the user's next message.
 *
 * Exit status: 0 done, 1 not found or failed, 2 usage error.
 */
#include "cli.h"

#include "gw_pairing.h"
#include "hm_config.h"
#include "rt_alloc.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The entry point, in cli_commands' table; declared here until cli.h lists it. */
int cli_pairing(int argc, char **argv);

static void pairing_usage(FILE *f)
{
    fprintf(f, "usage: hermes pairing {list,approve,revoke,clear-pending} ...\n"
               "\n"
               "  hermes pairing list                         Show all pending + approved users\n"
               "  hermes pairing approve <platform> <code>    Approve a pairing code\n"
               "  hermes pairing revoke <platform> <user_id>  Revoke user access\n"
               "  hermes pairing clear-pending                Clear all expired/pending codes\n");
}

static gw_pairing *open_store(void)
{
    char *home = hm_config_home();
    int err = 0;
    gw_pairing *p = gw_pairing_open(home, &err);
    if (!p)
        cli_err("cannot open the pairing store in %s: %s", home, rt_strerror(err));
    rt_free(home);
    return p;
}

/* Python's f"{s:<width}": pad with spaces to width characters (code points), never cut. */
static void pad(const char *s, int width)
{
    int n = 0;
    for (const char *p = s; *p; p++)
        n += ((unsigned char)*p & 0xC0) != 0x80;
    fputs(s, stdout);
    for (; n < width; n++)
        putchar(' ');
}

static int cmd_list(void)
{
    gw_pairing *p = open_store();
    if (!p)
        return 1;
    gw_pair_list l;
    double now = gw_pairing_now();
    int err = gw_pairing_list(p, now, &l);
    gw_pairing_free(p);
    if (err) {
        cli_err("cannot read the pairing store: %s", rt_strerror(err));
        gw_pair_list_fini(&l);
        return 1;
    }
    if (!l.npending && !l.napproved) {
        printf("No pairing data found. No one has tried to pair yet~\n");
        gw_pair_list_fini(&l);
        return 0;
    }
    if (l.npending) {
        printf("\n  Pending Pairing Requests (%zu):\n", l.npending);
        printf("  Platform     Code       User ID              Name                 Age\n");
        printf("  --------     ----       -------              ----                 ---\n");
        for (size_t i = 0; i < l.npending; i++) {
            const gw_pair_entry *e = &l.pending[i];
            fputs("  ", stdout);
            pad(e->platform, 12), putchar(' ');
            pad(e->code, 10), putchar(' ');
            pad(e->user_id, 20), putchar(' ');
            pad(e->user_name, 20), putchar(' ');
            printf("%lldm ago\n", (long long)((now - e->when) / 60)); /* int(): toward 0 */
        }
    } else {
        printf("\n  No pending pairing requests.\n");
    }
    if (l.napproved) {
        printf("\n  Approved Users (%zu):\n", l.napproved);
        printf("  Platform     User ID              Name                \n");
        printf("  --------     -------              ----                \n");
        for (size_t i = 0; i < l.napproved; i++) {
            const gw_pair_entry *e = &l.approved[i];
            fputs("  ", stdout);
            pad(e->platform, 12), putchar(' ');
            pad(e->user_id, 20), putchar(' ');
            pad(e->user_name, 20), putchar('\n');
        }
    } else {
        printf("\n  No approved users.\n");
    }
    printf("\n");
    gw_pair_list_fini(&l);
    return 0;
}

/* platform.lower().strip() into buf; false (after a message) if it cannot name a platform. */
static bool norm_platform(const char *in, char *buf, size_t n)
{
    while (isspace((unsigned char)*in))
        in++;
    size_t len = strlen(in);
    while (len && isspace((unsigned char)in[len - 1]))
        len--;
    if (len >= n)
        len = n - 1;
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)tolower((unsigned char)in[i]);
    buf[len] = 0;
    if (gw_pairing_platform_ok(buf))
        return true;
    cli_err("invalid platform name '%s' (letters, digits, '_' and '-')", in);
    return false;
}

static int cmd_approve(const char *platform_in, const char *code_in)
{
    char platform[80], code[80];
    if (!norm_platform(platform_in, platform, sizeof(platform)))
        return 2;
    while (isspace((unsigned char)*code_in))
        code_in++;
    size_t len = rt_strlcpy(code, code_in, sizeof(code));
    if (len >= sizeof(code))
        len = sizeof(code) - 1;
    while (len && isspace((unsigned char)code[len - 1]))
        code[--len] = 0;
    for (char *c = code; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    gw_pairing *p = open_store();
    if (!p)
        return 1;
    char *uid = NULL, *name = NULL;
    int err = gw_pairing_approve(p, platform, code, gw_pairing_now(), &uid, &name);
    gw_pairing_free(p);
    if (err == 0) {
        if (*name)
            printf("\n  Approved! User %s (%s) on %s can now use the bot~\n", name, uid, platform);
        else
            printf("\n  Approved! User %s on %s can now use the bot~\n", uid, platform);
        printf("  They'll be recognized automatically on their next message.\n\n");
    } else if (err == -ENOENT) {
        printf("\n  Code '%s' not found or expired for platform '%s'.\n", code, platform);
        printf("  Run 'hermes pairing list' to see pending codes.\n\n");
    } else {
        cli_err("cannot approve: %s", rt_strerror(err));
    }
    rt_free(uid);
    rt_free(name);
    return err ? 1 : 0;
}

static int cmd_revoke(const char *platform_in, const char *user_id)
{
    char platform[80];
    if (!norm_platform(platform_in, platform, sizeof(platform)))
        return 2;
    gw_pairing *p = open_store();
    if (!p)
        return 1;
    int err = gw_pairing_revoke(p, platform, user_id);
    gw_pairing_free(p);
    if (err == 0)
        printf("\n  Revoked access for user %s on %s.\n\n", user_id, platform);
    else if (err == -ENOENT)
        printf("\n  User %s not found in approved list for %s.\n\n", user_id, platform);
    else
        cli_err("cannot revoke: %s", rt_strerror(err));
    return err ? 1 : 0;
}

static int cmd_clear_pending(void)
{
    gw_pairing *p = open_store();
    if (!p)
        return 1;
    int n = gw_pairing_clear_pending(p);
    gw_pairing_free(p);
    if (n < 0) {
        cli_err("cannot clear pending requests: %s", rt_strerror(n));
        return 1;
    }
    if (n)
        printf("\n  Cleared %d pending pairing request(s).\n\n", n);
    else
        printf("\n  No pending requests to clear.\n\n");
    return 0;
}

/* Wrong arguments for sub: its usage line on stderr, status 2. */
static int bad_args(const char *sub, const char *args)
{
    fprintf(stderr, "usage: hermes pairing %s%s\n", sub, args);
    return 2;
}

int cli_pairing(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;
    if (!sub) {
        printf("Usage: hermes pairing {list|approve|revoke|clear-pending}\n"
               "Run 'hermes pairing --help' for details.\n");
        return 2;
    }
    if (strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        pairing_usage(stdout);
        return 0;
    }
    if (strcmp(sub, "list") == 0)
        return argc == 2 ? cmd_list() : bad_args("list", "");
    if (strcmp(sub, "approve") == 0)
        return argc == 4 ? cmd_approve(argv[2], argv[3])
                         : bad_args("approve", " <platform> <code>");
    if (strcmp(sub, "revoke") == 0)
        return argc == 4 ? cmd_revoke(argv[2], argv[3])
                         : bad_args("revoke", " <platform> <user_id>");
    if (strcmp(sub, "clear-pending") == 0)
        return argc == 2 ? cmd_clear_pending() : bad_args("clear-pending", "");
    cli_err("unknown pairing command '%s'", sub);
    pairing_usage(stderr);
    return 2;
}
