/*
 * gw_pairing: the store (codes, expiry, rate limit, pending limit, lockout, approve/revoke/
 * clear, file formats and modes, corrupt files, a second process writing at the same time),
 * the pairing actor end to end, and — built with HERMES_BIN — `hermes pairing` through the
 * built binary. Time is a parameter of the store: no case sleeps.
 */
#include "gw_pairing.h"

#include "rt_alloc.h"
#include "rt_sched.h"
#include "test.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define T0 1700000000.5 /* a fixed "now" */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = rt_xmalloc(1 << 20);
    size_t n = fread(b, 1, (1 << 20) - 1, f);
    b[n] = 0;
    fclose(f);
    return b;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ASSERT_NOT_NULL(f);
    fputs(text, f);
    ASSERT_EQ(0, fclose(f));
}

/* dir/name in a static buffer (one at a time). */
static const char *in(const char *dir, const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf), "%s/%s", dir, name);
    return buf;
}

static int mode_of(const char *path)
{
    struct stat st;
    ASSERT_OK(stat(path, &st));
    return (int)(st.st_mode & 07777);
}

static gw_pairing *open_home(const char *home)
{
    int err = -1;
    gw_pairing *p = gw_pairing_open(home, &err);
    ASSERT_NOT_NULL(p);
    ASSERT_EQ(0, err);
    return p;
}

#ifndef HERMES_BIN /* ================================================ the store and the actor */

static cJSON *json_of(const char *path)
{
    char *s = slurp(path);
    ASSERT_NOT_NULL(s);
    cJSON *j = cJSON_Parse(s);
    rt_free(s);
    ASSERT_NOT_NULL(j);
    return j;
}

static int npending(gw_pairing *p, double now)
{
    gw_pair_list l;
    ASSERT_OK(gw_pairing_list(p, now, &l));
    int n = (int)l.npending;
    gw_pair_list_fini(&l);
    return n;
}

static void gen_ok(gw_pairing *p, const char *platform, const char *uid, double now, char *code)
{
    int r = gw_pairing_generate(p, platform, uid, NULL, now, code);
    if (r != 0)
        TEST_FAIL_("generate %s %s: %d", platform, uid, r);
    ASSERT_EQ(GW_PAIR_CODE_LEN, strlen(code));
}

TEST(codes_are_eight_characters_of_the_alphabet)
{
    gw_pairing *p = open_home(test_tmpdir());
    char code[GW_PAIR_CODE_LEN + 1];
    int seen[256] = {0}, distinct = 0;
    for (int i = 0; i < 20; i++) {
        char platform[16], uid[16];
        snprintf(platform, sizeof(platform), "p%d", i);
        for (int u = 0; u < GW_PAIR_MAX_PENDING; u++) {
            snprintf(uid, sizeof(uid), "u%d", u);
            gen_ok(p, platform, uid, T0, code);
            for (int k = 0; k < GW_PAIR_CODE_LEN; k++) {
                if (!strchr(GW_PAIR_ALPHABET, code[k]) || !code[k])
                    TEST_FAIL_("'%c' is not in the alphabet (%s)", code[k], code);
                distinct += seen[(unsigned char)code[k]]++ == 0;
            }
        }
    }
    /* 480 draws from 32 letters: a broken mapping (always 'A', only 8 letters…) shows */
    ASSERT_GE(distinct, 28);
    gw_pairing_free(p);
}

TEST(files_modes_and_the_originals_format)
{
    mode_t old = umask(0); /* the files must not depend on the umask */
    const char *home = test_tmpdir();
    gw_pairing *p = open_home(home);
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/platforms/pairing", home);
    ASSERT_STR_EQ(dir, gw_pairing_dir(p));
    ASSERT_EQ(0700, mode_of(dir));
    char code[GW_PAIR_CODE_LEN + 1];
    ASSERT_OK(gw_pairing_generate(p, "matrix", "@a:hs", "Alice \"A\" ✓", T0, code));
    ASSERT_EQ(0600, mode_of(in(dir, "matrix-pending.json")));
    ASSERT_EQ(0600, mode_of(in(dir, "_rate_limits.json")));
    char want[512];
    snprintf(want, sizeof(want),
             "{\n  \"%s\": {\n    \"user_id\": \"@a:hs\",\n    \"user_name\": \"Alice \\\"A\\\" "
             "✓\",\n    \"created_at\": 1700000000.5\n  }\n}",
             code);
    char *got = slurp(in(dir, "matrix-pending.json"));
    ASSERT_STR_EQ(want, got);
    rt_free(got);
    got = slurp(in(dir, "_rate_limits.json"));
    ASSERT_STR_EQ("{\n  \"matrix:@a:hs\": 1700000000.5\n}", got);
    rt_free(got);
    char *uid, *name;
    ASSERT_OK(gw_pairing_approve(p, "matrix", code, T0 + 60, &uid, &name));
    ASSERT_STR_EQ("@a:hs", uid);
    ASSERT_STR_EQ("Alice \"A\" ✓", name);
    rt_free(uid);
    rt_free(name);
    ASSERT_EQ(0600, mode_of(in(dir, "matrix-approved.json")));
    got = slurp(in(dir, "matrix-approved.json"));
    ASSERT_STR_EQ("{\n  \"@a:hs\": {\n    \"user_name\": \"Alice \\\"A\\\" ✓\",\n    "
                  "\"approved_at\": 1700000060.5\n  }\n}",
                  got);
    rt_free(got);
    got = slurp(in(dir, "matrix-pending.json"));
    ASSERT_STR_EQ("{}", got);
    rt_free(got);
    /* no temp file is left behind */
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp"))
            TEST_FAIL_("left behind: %s", e->d_name);
    closedir(d);
    gw_pairing_free(p);
    umask(old);
}

TEST(strings_are_escaped_as_python_writes_them)
{
    gw_pairing *p = open_home(test_tmpdir());
    char code[GW_PAIR_CODE_LEN + 1];
    ASSERT_OK(gw_pairing_generate(p, "matrix", "a\\b", "x\x01\ny\t\"\x7f", T0, code));
    char *got = slurp(in(gw_pairing_dir(p), "matrix-pending.json"));
    ASSERT_NOT_NULL(strstr(got, "\"user_id\": \"a\\\\b\","));
    ASSERT_NOT_NULL(strstr(got, "\"user_name\": \"x\\u0001\\ny\\t\\\"\x7f\","));
    rt_free(got);
    char *uid, *name;
    ASSERT_OK(gw_pairing_approve(p, "matrix", code, T0, &uid, &name)); /* and reads back */
    ASSERT_STR_EQ("a\\b", uid);
    ASSERT_STR_EQ("x\x01\ny\t\"\x7f", name);
    rt_free(uid);
    rt_free(name);
    gw_pairing_free(p);
}

TEST(legacy_directory_is_used_when_it_has_content)
{
    const char *home = test_tmpdir();
    char legacy[600];
    snprintf(legacy, sizeof(legacy), "%s/pairing", home);
    ASSERT_OK(mkdir(legacy, 0700));
    gw_pairing *p = open_home(home); /* empty legacy directory: the new one */
    ASSERT_NOT_NULL(strstr(gw_pairing_dir(p), "/platforms/pairing"));
    gw_pairing_free(p);
    spit(in(legacy, "matrix-approved.json"), "{\"@old:hs\": {\"user_name\": \"O\"}}");
    p = open_home(home);
    ASSERT_STR_EQ(legacy, gw_pairing_dir(p));
    ASSERT_TRUE(gw_pairing_is_approved(p, "matrix", "@old:hs"));
    gw_pairing_free(p);
}

TEST(rate_limit_and_one_code_per_user)
{
    gw_pairing *p = open_home(test_tmpdir());
    char c1[GW_PAIR_CODE_LEN + 1], c2[GW_PAIR_CODE_LEN + 1];
    gen_ok(p, "matrix", "@a:hs", T0, c1);
    ASSERT_EQ(-EAGAIN, gw_pairing_generate(p, "matrix", "@a:hs", NULL, T0 + 10, c2));
    ASSERT_EQ(0, c2[0]);
    ASSERT_EQ(-EAGAIN, gw_pairing_generate(p, "matrix", "@a:hs", NULL, T0 + 599.9, c2));
    /* the window is per platform and per user */
    gen_ok(p, "mattermost", "@a:hs", T0 + 10, c2);
    gen_ok(p, "matrix", "@b:hs", T0 + 10, c2);
    ASSERT_NE(0, strcmp(c1, c2));
    /* after the window, while the code lives: the same code again */
    gen_ok(p, "matrix", "@a:hs", T0 + 600, c2);
    ASSERT_STR_EQ(c1, c2);
    ASSERT_EQ(3, npending(p, T0 + 600)); /* two on matrix, one on mattermost */
    gw_pairing_free(p);
}

TEST(codes_expire_after_an_hour)
{
    gw_pairing *p = open_home(test_tmpdir());
    char c1[GW_PAIR_CODE_LEN + 1], c2[GW_PAIR_CODE_LEN + 1];
    gen_ok(p, "matrix", "@a:hs", T0, c1);
    gen_ok(p, "matrix", "@b:hs", T0 + 100, c2);
    ASSERT_EQ(2, npending(p, T0 + GW_PAIR_TTL));
    ASSERT_EQ(1, npending(p, T0 + GW_PAIR_TTL + 1)); /* purged from the file, too */
    char *s = slurp(in(gw_pairing_dir(p), "matrix-pending.json"));
    ASSERT_NULL(strstr(s, c1));
    ASSERT_NOT_NULL(strstr(s, c2));
    rt_free(s);
    ASSERT_EQ(-ENOENT, gw_pairing_approve(p, "matrix", c1, T0 + GW_PAIR_TTL + 1, NULL, NULL));
    ASSERT_EQ(-ENOENT, gw_pairing_approve(p, "matrix", c2, T0 + 100 + GW_PAIR_TTL + 1, NULL, NULL));
    ASSERT_FALSE(gw_pairing_is_approved(p, "matrix", "@b:hs"));
    /* an expired code's user gets a new one */
    char c3[GW_PAIR_CODE_LEN + 1];
    gen_ok(p, "matrix", "@a:hs", T0 + GW_PAIR_TTL + 2, c3);
    ASSERT_NE(0, strcmp(c1, c3));
    gw_pairing_free(p);
}

TEST(at_most_three_pending_codes_per_platform)
{
    gw_pairing *p = open_home(test_tmpdir());
    char code[GW_PAIR_CODE_LEN + 1];
    gen_ok(p, "matrix", "u1", T0, code);
    gen_ok(p, "matrix", "u2", T0, code);
    gen_ok(p, "matrix", "u3", T0, code);
    ASSERT_EQ(-ENOSPC, gw_pairing_generate(p, "matrix", "u4", NULL, T0, code));
    ASSERT_EQ(0, code[0]);
    /* the refusal was recorded: u4 is silent for the window (gateway.md §3.2) */
    ASSERT_EQ(-EAGAIN, gw_pairing_generate(p, "matrix", "u4", NULL, T0 + 1, code));
    ASSERT_EQ(-ENOSPC, gw_pairing_generate(p, "matrix", "u5", NULL, T0 + 1, code));
    gen_ok(p, "mattermost", "u4", T0 + 1, code); /* other platforms are not full */
    /* once the codes expire there is room again */
    gen_ok(p, "matrix", "u4", T0 + GW_PAIR_TTL + 1, code);
    gw_pairing_free(p);
}

TEST(five_failed_approvals_lock_generation_for_an_hour)
{
    gw_pairing *p = open_home(test_tmpdir());
    char live[GW_PAIR_CODE_LEN + 1], code[GW_PAIR_CODE_LEN + 1];
    gen_ok(p, "matrix", "u0", T0, live);
    for (int i = 0; i < GW_PAIR_MAX_FAILURES - 1; i++)
        ASSERT_EQ(-ENOENT, gw_pairing_approve(p, "matrix", "AAAAAAAA", T0 + i, NULL, NULL));
    ASSERT_FALSE(gw_pairing_is_locked_out(p, "matrix", T0 + 10, NULL));
    gen_ok(p, "matrix", "u1", T0 + 10, code);
    ASSERT_EQ(-ENOENT, gw_pairing_approve(p, "matrix", "", T0 + 20, NULL, NULL));
    double until = 0;
    ASSERT_TRUE(gw_pairing_is_locked_out(p, "matrix", T0 + 21, &until));
    ASSERT_TRUE(until == T0 + 20 + GW_PAIR_LOCKOUT);
    ASSERT_FALSE(gw_pairing_is_locked_out(p, "mattermost", T0 + 21, NULL));
    cJSON *limits = json_of(in(gw_pairing_dir(p), "_rate_limits.json"));
    ASSERT_EQ(0, cJSON_GetObjectItem(limits, "_failures:matrix")->valueint); /* reset */
    cJSON_Delete(limits);
    /* generation is refused ("Too many…", and the user is then rate-limited) */
    ASSERT_EQ(-EBUSY, gw_pairing_generate(p, "matrix", "u2", NULL, T0 + 30, code));
    ASSERT_EQ(-EAGAIN, gw_pairing_generate(p, "matrix", "u2", NULL, T0 + 31, code));
    gen_ok(p, "mattermost", "u2", T0 + 31, code);
    /* approving a live code still works: only generation is locked */
    ASSERT_OK(gw_pairing_approve(p, "matrix", live, T0 + 40, NULL, NULL));
    /* an hour later generation works again */
    ASSERT_EQ(-EBUSY,
              gw_pairing_generate(p, "matrix", "u3", NULL, T0 + 20 + GW_PAIR_LOCKOUT - 1, code));
    gen_ok(p, "matrix", "u4", T0 + 20 + GW_PAIR_LOCKOUT, code);
    gw_pairing_free(p);
}

TEST(a_successful_approval_resets_the_failure_count)
{
    gw_pairing *p = open_home(test_tmpdir());
    char code[GW_PAIR_CODE_LEN + 1];
    for (int i = 0; i < GW_PAIR_MAX_FAILURES - 1; i++)
        ASSERT_EQ(-ENOENT, gw_pairing_approve(p, "matrix", "ZZZZZZZZ", T0, NULL, NULL));
    gen_ok(p, "matrix", "u1", T0, code);
    ASSERT_OK(gw_pairing_approve(p, "matrix", code, T0, NULL, NULL));
    for (int i = 0; i < GW_PAIR_MAX_FAILURES - 1; i++)
        ASSERT_EQ(-ENOENT, gw_pairing_approve(p, "matrix", "ZZZZZZZZ", T0, NULL, NULL));
    ASSERT_FALSE(gw_pairing_is_locked_out(p, "matrix", T0, NULL));
    gw_pairing_free(p);
}

TEST(approve_revoke_and_clear_pending)
{
    gw_pairing *p = open_home(test_tmpdir());
    char c1[GW_PAIR_CODE_LEN + 1], c2[GW_PAIR_CODE_LEN + 1], c3[GW_PAIR_CODE_LEN + 1];
    ASSERT_OK(gw_pairing_generate(p, "matrix", "@a:hs", "Alice", T0, c1));
    gen_ok(p, "matrix", "@b:hs", T0, c2);
    gen_ok(p, "mattermost", "u1", T0, c3);
    ASSERT_FALSE(gw_pairing_is_approved(p, "matrix", "@a:hs"));
    /* codes are trimmed and upper-cased */
    char typed[32];
    snprintf(typed, sizeof(typed), "  %s\n", c1);
    for (char *s = typed; *s; s++)
        *s = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
    char *uid, *name;
    ASSERT_OK(gw_pairing_approve(p, "matrix", typed, T0 + 5, &uid, &name));
    ASSERT_STR_EQ("@a:hs", uid);
    ASSERT_STR_EQ("Alice", name);
    rt_free(uid);
    rt_free(name);
    ASSERT_TRUE(gw_pairing_is_approved(p, "matrix", "@a:hs"));
    ASSERT_FALSE(gw_pairing_is_approved(p, "mattermost", "@a:hs"));
    ASSERT_FALSE(gw_pairing_is_approved(p, "matrix", "@b:hs"));
    ASSERT_EQ(-ENOENT, gw_pairing_approve(p, "matrix", c1, T0 + 6, NULL, NULL)); /* used */
    ASSERT_EQ(-ENOENT, gw_pairing_approve(p, "mattermost", c2, T0 + 6, NULL, NULL));
    gw_pair_list l;
    ASSERT_OK(gw_pairing_list(p, T0 + 7, &l));
    ASSERT_EQ(2, l.npending);
    ASSERT_STR_EQ("matrix", l.pending[0].platform); /* by platform name */
    ASSERT_STR_EQ(c2, l.pending[0].code);
    ASSERT_STR_EQ("@b:hs", l.pending[0].user_id);
    ASSERT_STR_EQ("", l.pending[0].user_name);
    ASSERT_TRUE(l.pending[0].when == T0);
    ASSERT_STR_EQ("mattermost", l.pending[1].platform);
    ASSERT_EQ(1, l.napproved);
    ASSERT_STR_EQ("@a:hs", l.approved[0].user_id);
    ASSERT_STR_EQ("Alice", l.approved[0].user_name);
    ASSERT_NULL(l.approved[0].code);
    ASSERT_TRUE(l.approved[0].when == T0 + 5);
    gw_pair_list_fini(&l);
    ASSERT_EQ(2, gw_pairing_clear_pending(p));
    ASSERT_EQ(0, gw_pairing_clear_pending(p));
    ASSERT_EQ(0, npending(p, T0 + 8));
    ASSERT_TRUE(gw_pairing_is_approved(p, "matrix", "@a:hs"));
    ASSERT_OK(gw_pairing_revoke(p, "matrix", "@a:hs"));
    ASSERT_FALSE(gw_pairing_is_approved(p, "matrix", "@a:hs"));
    ASSERT_EQ(-ENOENT, gw_pairing_revoke(p, "matrix", "@a:hs"));
    gw_pairing_free(p);
}

TEST(bad_arguments_get_clear_errors)
{
    int err = 0;
    ASSERT_NULL(gw_pairing_open(NULL, &err));
    ASSERT_EQ(-EINVAL, err);
    ASSERT_NULL(gw_pairing_open("", &err));
    ASSERT_EQ(-EINVAL, err);
    const char *home = test_tmpdir();
    spit(in(home, "file"), "x");
    ASSERT_NULL(gw_pairing_open(in(home, "file"), &err)); /* a file where a directory goes */
    ASSERT_NE(0, err);
    gw_pairing *p = open_home(home);
    char code[GW_PAIR_CODE_LEN + 1];
    static const char *const bad[] = {"",   "../x",   "a/b",     "_rate_limits",
                                      "-x", "Matrix", "mat rix", "p\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_FALSE(gw_pairing_platform_ok(bad[i]));
        ASSERT_EQ(-EINVAL, gw_pairing_generate(p, bad[i], "u", NULL, T0, code));
        ASSERT_EQ(-EINVAL, gw_pairing_approve(p, bad[i], "ABCDEFGH", T0, NULL, NULL));
        ASSERT_EQ(-EINVAL, gw_pairing_revoke(p, bad[i], "u"));
        ASSERT_FALSE(gw_pairing_is_approved(p, bad[i], "u"));
    }
    char longname[80];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    ASSERT_FALSE(gw_pairing_platform_ok(longname));
    longname[65] = 0;
    ASSERT_FALSE(gw_pairing_platform_ok(longname));
    longname[64] = 0; /* 64 characters: the longest allowed */
    ASSERT_TRUE(gw_pairing_platform_ok(longname));
    ASSERT_FALSE(gw_pairing_platform_ok(NULL));
    ASSERT_TRUE(gw_pairing_platform_ok("api_server"));
    ASSERT_EQ(-EINVAL, gw_pairing_generate(p, "matrix", NULL, NULL, T0, code));
    ASSERT_EQ(-EINVAL, gw_pairing_generate(p, "matrix", "", NULL, T0, code));
    char *huge = rt_xmalloc(GW_PAIR_ID_MAX + 2);
    memset(huge, 'x', GW_PAIR_ID_MAX + 1);
    huge[GW_PAIR_ID_MAX + 1] = 0;
    ASSERT_EQ(-EINVAL, gw_pairing_generate(p, "matrix", huge, NULL, T0, code));
    /* a long name is cut on a character boundary */
    memset(huge, 0, GW_PAIR_ID_MAX + 2);
    for (int i = 0; i + 3 <= GW_PAIR_ID_MAX; i += 3)
        memcpy(huge + i, "✓", 3);
    gen_ok(p, "matrix", "u", T0, code);
    char *uid = NULL, *name = NULL;
    ASSERT_OK(gw_pairing_generate(p, "matrix", "u2", huge, T0, code));
    ASSERT_OK(gw_pairing_approve(p, "matrix", code, T0, &uid, &name));
    ASSERT_LE(strlen(name), GW_PAIR_NAME_MAX);
    ASSERT_EQ(0, strlen(name) % 3);
    rt_free(uid);
    rt_free(name);
    rt_free(huge);
    ASSERT_EQ(-ENOENT, gw_pairing_approve(p, "matrix", NULL, T0, NULL, NULL));
    ASSERT_EQ(-ENOENT, gw_pairing_approve(p, "matrix", "   ", T0, NULL, NULL));
    ASSERT_FALSE(gw_pairing_is_approved(p, "matrix", NULL));
    gw_pairing_free(p);
    gw_pairing_free(NULL);
}

TEST(corrupt_files_are_treated_as_empty_and_kept_aside)
{
    gw_pairing *p = open_home(test_tmpdir());
    const char *dir = gw_pairing_dir(p);
    char d[600];
    snprintf(d, sizeof(d), "%s", dir);
    spit(in(d, "matrix-pending.json"), "{\"ABCDEFGH\": {\"user_id\": ");
    spit(in(d, "matrix-approved.json"), "[1, 2, 3]");
    spit(in(d, "_rate_limits.json"), "\xEF\xBB\xBF{\"matrix:u1\": \"soon\", \"_lockout:matrix\": "
                                     "null, \"_failures:matrix\": {\"x\": 1}}");
    spit(in(d, "slack-pending.json"),
         "{\"AAAA2222\": 5, \"BBBB3333\": {\"user_id\": 7, "
         "\"created_at\": \"x\"}, \"CCCC4444\": {\"user_id\": \"u\"}}");
    spit(in(d, "slack-approved.json"), "");
    ASSERT_FALSE(gw_pairing_is_approved(p, "matrix", "u1"));
    ASSERT_FALSE(gw_pairing_is_approved(p, "slack", "u1"));
    gw_pair_list l;
    ASSERT_OK(gw_pairing_list(p, T0, &l)); /* nothing valid to show */
    ASSERT_EQ(0, l.npending);
    ASSERT_EQ(0, l.napproved);
    gw_pair_list_fini(&l);
    char code[GW_PAIR_CODE_LEN + 1];
    gen_ok(p, "matrix", "u1", T0, code); /* "soon" is no timestamp: not rate-limited */
    gen_ok(p, "slack", "u1", T0, code);
    char *kept = slurp(in(d, "matrix-pending.json.corrupt"));
    ASSERT_STR_EQ("{\"ABCDEFGH\": {\"user_id\": ", kept);
    rt_free(kept);
    cJSON *j = json_of(in(d, "matrix-pending.json"));
    ASSERT_EQ(1, cJSON_GetArraySize(j));
    cJSON_Delete(j);
    /* a file too large is refused, not read */
    int fd = open(in(d, "matrix-approved.json"), O_WRONLY | O_TRUNC);
    ASSERT_GE(fd, 0);
    ASSERT_OK(ftruncate(fd, (off_t)GW_PAIR_FILE_MAX + 1));
    close(fd);
    ASSERT_FALSE(gw_pairing_is_approved(p, "matrix", "u1"));
    /* a symlink is not followed */
    unlink(in(d, "slack-approved.json"));
    spit(in(d, "target.json"), "{\"u1\": {}}");
    ASSERT_OK(symlink("target.json", in(d, "slack-approved.json")));
    ASSERT_FALSE(gw_pairing_is_approved(p, "slack", "u1"));
    gw_pairing_free(p);
}

TEST(approvals_by_another_process_count_at_once)
{
    const char *home = test_tmpdir();
    gw_pairing *gw = open_home(home), *cli = open_home(home);
    char code[GW_PAIR_CODE_LEN + 1];
    gen_ok(gw, "matrix", "@a:hs", T0, code);
    ASSERT_FALSE(gw_pairing_is_approved(gw, "matrix", "@a:hs")); /* cached now */
    ASSERT_OK(gw_pairing_approve(cli, "matrix", code, T0, NULL, NULL));
    ASSERT_TRUE(gw_pairing_is_approved(gw, "matrix", "@a:hs"));
    ASSERT_OK(gw_pairing_revoke(cli, "matrix", "@a:hs"));
    ASSERT_FALSE(gw_pairing_is_approved(gw, "matrix", "@a:hs"));
    gw_pairing_free(cli);
    gw_pairing_free(gw);
}

#define ROUNDS 30

TEST(a_concurrent_writer_loses_no_update)
{
    const char *home = test_tmpdir();
    gw_pairing *p = open_home(home);
    char mcode[3][GW_PAIR_CODE_LEN + 1];
    for (int i = 0; i < 3; i++) {
        char uid[16];
        snprintf(uid, sizeof(uid), "m%d", i);
        gen_ok(p, "matrix", uid, T0, mcode[i]);
    }
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) { /* the CLI: approves while generating on other platforms */
        gw_pairing *c = gw_pairing_open(home, NULL);
        int bad = !c;
        for (int i = 0; c && i < ROUNDS; i++) {
            char platform[16], code[GW_PAIR_CODE_LEN + 1];
            snprintf(platform, sizeof(platform), "c%d", i);
            bad |= gw_pairing_generate(c, platform, "cu", NULL, T0, code) != 0;
            if (i % 10 == 0)
                bad |= gw_pairing_approve(c, "matrix", mcode[i / 10], T0, NULL, NULL) != 0;
        }
        gw_pairing_free(c);
        _exit(bad);
    }
    for (int i = 0; i < ROUNDS; i++) {
        char platform[16], code[GW_PAIR_CODE_LEN + 1];
        snprintf(platform, sizeof(platform), "p%d", i);
        gen_ok(p, platform, "pu", T0, code);
    }
    int st;
    ASSERT_EQ(pid, waitpid(pid, &st, 0));
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cJSON *limits = json_of(in(gw_pairing_dir(p), "_rate_limits.json"));
    for (int i = 0; i < ROUNDS; i++) {
        char k[32];
        snprintf(k, sizeof(k), "p%d:pu", i);
        if (!cJSON_GetObjectItem(limits, k))
            TEST_FAIL_("lost the rate-limit entry %s", k);
        snprintf(k, sizeof(k), "c%d:cu", i);
        if (!cJSON_GetObjectItem(limits, k))
            TEST_FAIL_("lost the rate-limit entry %s", k);
    }
    ASSERT_EQ(2 * ROUNDS + 3, cJSON_GetArraySize(limits));
    cJSON_Delete(limits);
    for (int i = 0; i < 3; i++) {
        char uid[16];
        snprintf(uid, sizeof(uid), "m%d", i);
        ASSERT_TRUE(gw_pairing_is_approved(p, "matrix", uid));
    }
    ASSERT_EQ(2 * ROUNDS, npending(p, T0));
    gw_pairing_free(p);
}

/* ---- the actor ------------------------------------------------------------------------- */

#define MAXGOT 32

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char *text[MAXGOT], *chat[MAXGOT], *thread[MAXGOT];
    int kind[MAXGOT], ntext;
    char *user[MAXGOT], *utext[MAXGOT];
    int nallowed;
} got;

static void adapter_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type != GW_OUT_TEXT)
        return;
    gw_out_text *t = (gw_out_text *)m;
    pthread_mutex_lock(&mu);
    if (got.ntext < MAXGOT) {
        got.text[got.ntext] = rt_xstrdup(t->text);
        got.chat[got.ntext] = rt_xstrdup(t->to.chat_id);
        got.thread[got.ntext] = rt_xstrdup(t->to.thread_id);
        got.kind[got.ntext++] = t->kind;
    }
    pthread_mutex_unlock(&mu);
}

static void reply_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type != GW_PAIR_ALLOWED)
        return;
    gw_msg_event *e = (gw_msg_event *)m;
    pthread_mutex_lock(&mu);
    if (got.nallowed < MAXGOT) {
        got.user[got.nallowed] = rt_xstrdup(e->src.user_id);
        got.utext[got.nallowed++] = rt_xstrdup(e->text);
    }
    pthread_mutex_unlock(&mu);
}

static void got_free(void)
{
    for (int i = 0; i < got.ntext; i++) {
        rt_free(got.text[i]);
        rt_free(got.chat[i]);
        rt_free(got.thread[i]);
    }
    for (int i = 0; i < got.nallowed; i++) {
        rt_free(got.user[i]);
        rt_free(got.utext[i]);
    }
    memset(&got, 0, sizeof(got));
}

static int ntext(void)
{
    pthread_mutex_lock(&mu);
    int n = got.ntext;
    pthread_mutex_unlock(&mu);
    return n;
}

static int nallowed(void)
{
    pthread_mutex_lock(&mu);
    int n = got.nallowed;
    pthread_mutex_unlock(&mu);
    return n;
}

static const rt_actor_type adapter_type = {"fake_adapter", adapter_behave, NULL, 0};
static const rt_actor_type reply_type = {"fake_gateway", reply_behave, NULL, 0};

typedef struct world {
    rt_runtime *rt;
    rt_ctx *cx;
    rt_ref pairing, adapter, gateway;
} world;

/* One message from user on platform in a chat of type, through the pairing actor; returns
 * once everything it caused has happened. */
static void say(world *w, const char *platform, const char *type, const char *user,
                const char *text)
{
    gw_msg_event *e = gw_event_new(platform, type, "!room:hs", user, text);
    e->src.user_name = rt_xstrdup("Somebody");
    e->reply.thread_id = rt_xstrdup("$thread");
    e->adapter = w->adapter;
    rt_send(w->cx, w->pairing, gw_pair_check_new(e, w->gateway));
    ASSERT_NULL(e->src.user_id); /* taken */
    rt_msg_free(&e->hdr);
    ASSERT_OK(rt_wait_quiescent(w->rt, 20000));
}

/* The code in the pairing message number i, checked against the exact text. */
static void code_in(int i, const char *platform, char *code)
{
    pthread_mutex_lock(&mu);
    const char *t = got.text[i];
    const char *pre = "Hi~ I don't recognize you yet!\n\nHere's your pairing code: `";
    ASSERT_EQ(0, strncmp(t, pre, strlen(pre)));
    memcpy(code, t + strlen(pre), GW_PAIR_CODE_LEN);
    code[GW_PAIR_CODE_LEN] = 0;
    char want[256];
    snprintf(want, sizeof(want),
             "Hi~ I don't recognize you yet!\n\nHere's your pairing code: `%s`\n\n"
             "Ask the bot owner to run:\n`hermes pairing approve %s %s`",
             code, platform, code);
    ASSERT_STR_EQ(want, t);
    ASSERT_STR_EQ("!room:hs", got.chat[i]);
    ASSERT_STR_EQ("$thread", got.thread[i]);
    ASSERT_EQ(GW_TEXT_NOTICE, got.kind[i]);
    pthread_mutex_unlock(&mu);
}

static hm_config *config_with(const char *home, const char *yaml)
{
    spit(in(home, "config.yaml"), yaml);
    int err = 0;
    hm_config *c = hm_config_load(home, 0, NULL, &err);
    ASSERT_NOT_NULL(c);
    return c;
}

TEST(actor_pairs_unknown_dm_users_and_lets_approved_ones_in)
{
    const char *home = test_tmpdir();
    hm_config *cfg = config_with(home, "mattermost:\n  unauthorized_dm_behavior: ignore\n");
    gw_auth *auth = gw_auth_new(cfg);
    rt_options o = {.workers = 2};
    world w = {.rt = rt_runtime_new(&o)};
    w.cx = rt_ctx_external(w.rt);
    w.adapter = rt_spawn(w.cx, &adapter_type, NULL, NULL);
    w.gateway = rt_spawn(w.cx, &reply_type, NULL, NULL);
    int err = -1;
    w.pairing = gw_pairing_start(w.cx, home, auth, &err);
    ASSERT_NE(0, w.pairing);
    ASSERT_EQ(0, err);
    ASSERT_EQ(0, gw_pairing_start(w.cx, home, auth, &err)); /* one per runtime */
    ASSERT_EQ(-EEXIST, err);
    ASSERT_EQ(0, gw_pairing_start(w.cx, NULL, auth, &err));
    ASSERT_EQ(-EINVAL, err);
    gw_auth_free(auth); /* the actor holds its own reference */

    say(&w, "matrix", "dm", "@u1:hs", "hi");
    ASSERT_EQ(1, ntext());
    char code[GW_PAIR_CODE_LEN + 1];
    code_in(0, "matrix", code);
    say(&w, "matrix", "dm", "@u1:hs", "hello?");    /* rate-limited: silence */
    say(&w, "matrix", "group", "@u2:hs", "hi all"); /* groups: silence, no code */
    say(&w, "mattermost", "dm", "u9", "hi");        /* behaviour "ignore" */
    ASSERT_EQ(1, ntext());
    ASSERT_EQ(0, nallowed());

    /* the owner approves from another process while the gateway runs */
    gw_pairing *cli = open_home(home);
    ASSERT_EQ(1, npending(cli, gw_pairing_now()));
    ASSERT_OK(gw_pairing_approve(cli, "matrix", code, gw_pairing_now(), NULL, NULL));
    say(&w, "matrix", "dm", "@u1:hs", "hello again");
    say(&w, "matrix", "group", "@u1:hs", "in the room");
    ASSERT_EQ(2, nallowed());
    pthread_mutex_lock(&mu);
    ASSERT_STR_EQ("@u1:hs", got.user[0]);
    ASSERT_STR_EQ("hello again", got.utext[0]);
    ASSERT_STR_EQ("in the room", got.utext[1]);
    pthread_mutex_unlock(&mu);

    /* three codes pending, then "Too many…" once, then silence */
    say(&w, "matrix", "dm", "@u3:hs", "hi");
    say(&w, "matrix", "dm", "@u4:hs", "hi");
    say(&w, "matrix", "dm", "@u5:hs", "hi");
    say(&w, "matrix", "dm", "@u6:hs", "hi");
    say(&w, "matrix", "dm", "@u6:hs", "hi?");
    ASSERT_EQ(5, ntext());
    code_in(3, "matrix", code);
    pthread_mutex_lock(&mu);
    ASSERT_STR_EQ("Too many pairing requests right now~ Please try again later!", got.text[4]);
    ASSERT_EQ(GW_TEXT_NOTICE, got.kind[4]);
    pthread_mutex_unlock(&mu);

    /* revoked: no longer let in, and silent (within the window) */
    ASSERT_OK(gw_pairing_revoke(cli, "matrix", "@u1:hs"));
    say(&w, "matrix", "dm", "@u1:hs", "still me");
    ASSERT_EQ(2, nallowed());
    ASSERT_EQ(5, ntext());

    /* a reload that switches Matrix to "ignore" */
    hm_config *cfg2 = config_with(home, "unauthorized_dm_behavior: ignore\n");
    gw_auth *auth2 = gw_auth_new(cfg2);
    rt_send(w.cx, w.pairing, gw_pair_set_auth_new(auth2));
    gw_auth_free(auth2);
    ASSERT_EQ(3, gw_pairing_clear_pending(cli));
    say(&w, "matrix", "dm", "@u7:hs", "hi");
    ASSERT_EQ(5, ntext());
    ASSERT_EQ(0, npending(cli, gw_pairing_now()));
    gw_pairing_free(cli);

    rt_runtime_free(w.rt);
    got_free();
    hm_config_unref(cfg);
    hm_config_unref(cfg2);
}

#else /* ============================================================ hermes pairing (the CLI) */

typedef struct run {
    int status;
    char *out, *err;
} run;

/* Run the built hermes with HERMES_HOME=home and a clean environment. */
static run hermes(const char *home, const char *const *args)
{
    char out[600], err[600];
    snprintf(out, sizeof(out), "%s/.stdout", home);
    snprintf(err, sizeof(err), "%s/.stderr", home);
    char *envp[8];
    int ne = 0;
    envp[ne++] = rt_xasprintf("HERMES_HOME=%s", home);
    envp[ne++] = rt_xasprintf("HOME=%s", home);
    envp[ne++] = rt_xstrdup("PATH=/usr/bin:/bin");
    static const char *const keep[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                                       "TSAN_OPTIONS"};
    for (size_t i = 0; i < 4; i++)
        if (getenv(keep[i]))
            envp[ne++] = rt_xasprintf("%s=%s", keep[i], getenv(keep[i]));
    envp[ne] = NULL;
    char *argv[8];
    int na = 0;
    argv[na++] = (char *)HERMES_BIN;
    argv[na++] = (char *)"pairing";
    for (int i = 0; args[i]; i++) {
        ASSERT_LT(na, 7);
        argv[na++] = (char *)args[i];
    }
    argv[na] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fo < 0 || fe < 0)
            _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        execve(HERMES_BIN, argv, envp);
        _exit(127);
    }
    int st;
    ASSERT_EQ(pid, waitpid(pid, &st, 0));
    for (int i = 0; i < ne; i++)
        rt_free(envp[i]);
    run r = {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), slurp(out), slurp(err)};
    unlink(out);
    unlink(err);
    return r;
}

#define HERMES(home, ...) hermes((home), (const char *const[]){__VA_ARGS__, NULL})

static void run_free(run *r)
{
    rt_free(r->out);
    rt_free(r->err);
}

static void expect(run *r, int status, const char *out)
{
    if (r->status != status || (out && strcmp(r->out, out) != 0))
        TEST_FAIL_("hermes exited %d (want %d)\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", r->status,
                   status, r->out, out ? out : "(any)", r->err);
    run_free(r);
}

TEST(cli_list_when_empty)
{
    const char *home = test_tmpdir();
    run r = HERMES(home, "list");
    expect(&r, 0, "No pairing data found. No one has tried to pair yet~\n");
}

TEST(cli_list_shows_pending_and_approved)
{
    const char *home = test_tmpdir();
    gw_pairing *p = open_home(home);
    double now = gw_pairing_now();
    char c1[GW_PAIR_CODE_LEN + 1], c2[GW_PAIR_CODE_LEN + 1], c3[GW_PAIR_CODE_LEN + 1];
    ASSERT_OK(gw_pairing_generate(p, "matrix", "@alice:example.org", "Alice ✓", now - 300, c1));
    ASSERT_OK(gw_pairing_generate(p, "mattermost", "u1", NULL, now - 30, c2));
    ASSERT_OK(gw_pairing_generate(p, "matrix", "@bob:hs", "Bob", now - 10, c3));
    ASSERT_OK(gw_pairing_approve(p, "matrix", c3, now, NULL, NULL));
    gw_pairing_free(p);
    char want[2048];
    snprintf(want, sizeof(want),
             "\n  Pending Pairing Requests (2):\n"
             "  Platform     Code       User ID              Name                 Age\n"
             "  --------     ----       -------              ----                 ---\n"
             "  matrix       %s   @alice:example.org   Alice ✓              5m ago\n"
             "  mattermost   %s   u1                                        0m ago\n"
             "\n  Approved Users (1):\n"
             "  Platform     User ID              Name                \n"
             "  --------     -------              ----                \n"
             "  matrix       @bob:hs              Bob                 \n"
             "\n",
             c1, c2);
    run r = HERMES(home, "list");
    expect(&r, 0, want);
}

TEST(cli_list_without_pending_or_without_approved)
{
    const char *home = test_tmpdir();
    gw_pairing *p = open_home(home);
    char c[GW_PAIR_CODE_LEN + 1];
    ASSERT_OK(gw_pairing_generate(p, "matrix", "u", NULL, gw_pairing_now(), c));
    run r = HERMES(home, "list");
    ASSERT_NOT_NULL(strstr(r.out, "\n  No approved users.\n\n"));
    expect(&r, 0, NULL);
    ASSERT_OK(gw_pairing_approve(p, "matrix", c, gw_pairing_now(), NULL, NULL));
    gw_pairing_free(p);
    r = HERMES(home, "list");
    ASSERT_NOT_NULL(strstr(r.out, "\n  No pending pairing requests.\n\n  Approved Users (1):\n"));
    expect(&r, 0, NULL);
}

TEST(cli_approve)
{
    const char *home = test_tmpdir();
    gw_pairing *p = open_home(home);
    char c1[GW_PAIR_CODE_LEN + 1], c2[GW_PAIR_CODE_LEN + 1];
    ASSERT_OK(gw_pairing_generate(p, "matrix", "@a:hs", "Alice", gw_pairing_now(), c1));
    ASSERT_OK(gw_pairing_generate(p, "matrix", "@b:hs", NULL, gw_pairing_now(), c2));
    char typed[32];
    snprintf(typed, sizeof(typed), " %s ", c1);
    for (char *s = typed; *s; s++)
        *s = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
    run r = HERMES(home, "approve", " Matrix", typed);
    expect(&r, 0,
           "\n  Approved! User Alice (@a:hs) on matrix can now use the bot~\n"
           "  They'll be recognized automatically on their next message.\n\n");
    ASSERT_TRUE(gw_pairing_is_approved(p, "matrix", "@a:hs"));
    char dir[700];
    snprintf(dir, sizeof(dir), "%s/matrix-approved.json", gw_pairing_dir(p));
    ASSERT_EQ(0600, mode_of(dir));
    r = HERMES(home, "approve", "matrix", c2);
    expect(&r, 0,
           "\n  Approved! User @b:hs on matrix can now use the bot~\n"
           "  They'll be recognized automatically on their next message.\n\n");
    r = HERMES(home, "approve", "matrix", "nope1234");
    expect(&r, 1,
           "\n  Code 'NOPE1234' not found or expired for platform 'matrix'.\n"
           "  Run 'hermes pairing list' to see pending codes.\n\n");
    gw_pairing_free(p);
}

TEST(cli_revoke)
{
    const char *home = test_tmpdir();
    gw_pairing *p = open_home(home);
    char c[GW_PAIR_CODE_LEN + 1];
    ASSERT_OK(gw_pairing_generate(p, "mattermost", "u1", NULL, gw_pairing_now(), c));
    ASSERT_OK(gw_pairing_approve(p, "mattermost", c, gw_pairing_now(), NULL, NULL));
    run r = HERMES(home, "revoke", "MATTERMOST", "u1");
    expect(&r, 0, "\n  Revoked access for user u1 on mattermost.\n\n");
    ASSERT_FALSE(gw_pairing_is_approved(p, "mattermost", "u1"));
    r = HERMES(home, "revoke", "mattermost", "u1");
    expect(&r, 1, "\n  User u1 not found in approved list for mattermost.\n\n");
    gw_pairing_free(p);
}

TEST(cli_clear_pending)
{
    const char *home = test_tmpdir();
    run r = HERMES(home, "clear-pending");
    expect(&r, 0, "\n  No pending requests to clear.\n\n");
    gw_pairing *p = open_home(home);
    char c[GW_PAIR_CODE_LEN + 1];
    ASSERT_OK(gw_pairing_generate(p, "matrix", "a", NULL, gw_pairing_now(), c));
    ASSERT_OK(gw_pairing_generate(p, "matrix", "b", NULL, gw_pairing_now(), c));
    ASSERT_OK(gw_pairing_generate(p, "slack", "a", NULL, gw_pairing_now(), c));
    gw_pairing_free(p);
    r = HERMES(home, "clear-pending");
    expect(&r, 0, "\n  Cleared 3 pending pairing request(s).\n\n");
    r = HERMES(home, "clear-pending");
    expect(&r, 0, "\n  No pending requests to clear.\n\n");
}

TEST(cli_usage_errors)
{
    const char *home = test_tmpdir();
    run r = hermes(home, (const char *const[]){NULL});
    expect(&r, 2,
           "Usage: hermes pairing {list|approve|revoke|clear-pending}\n"
           "Run 'hermes pairing --help' for details.\n");
    r = HERMES(home, "--help");
    ASSERT_NOT_NULL(strstr(r.out, "hermes pairing approve <platform> <code>"));
    expect(&r, 0, NULL);
    r = HERMES(home, "approve", "matrix");
    ASSERT_STR_EQ("usage: hermes pairing approve <platform> <code>\n", r.err);
    expect(&r, 2, "");
    r = HERMES(home, "revoke");
    ASSERT_STR_EQ("usage: hermes pairing revoke <platform> <user_id>\n", r.err);
    expect(&r, 2, "");
    r = HERMES(home, "list", "extra");
    expect(&r, 2, "");
    r = HERMES(home, "approve", "../etc", "ABCDEFGH");
    ASSERT_NOT_NULL(strstr(r.err, "invalid platform name"));
    expect(&r, 2, "");
    r = HERMES(home, "frobnicate");
    ASSERT_NOT_NULL(strstr(r.err, "unknown pairing command 'frobnicate'"));
    expect(&r, 2, "");
}

TEST(cli_store_that_cannot_be_opened)
{
    const char *home = test_tmpdir();
    spit(in(home, "platforms"), "a file where a directory goes");
    run r = HERMES(home, "list");
    ASSERT_NOT_NULL(strstr(r.err, "cannot open the pairing store"));
    expect(&r, 1, "");
}

#endif
