/* write_file: results, parent directories, atomic replacement keeping the mode, symlinks
 * written through, and the deny list (fake HOME) against symlink and '..' tricks — for
 * write_file and for patch's writes, deletes and moves. */
#include "ft_fs.h"
#include "rt_alloc.h"
#include "test.h"
#include "test_file_util.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static cJSON *write_to(tf_session *s, const char *path, const char *content)
{
    char *qp = tf_q(path), *qc = tf_q(content);
    char *args = rt_xasprintf("{\"path\":%s,\"content\":%s}", qp, qc);
    cJSON *r = tf_call(s, "write_file", args);
    rt_free(qp);
    rt_free(qc);
    rt_free(args);
    return r;
}

static char *print(const cJSON *o)
{
    char *p = cJSON_PrintUnformatted(o);
    char *s = rt_xstrdup(p);
    cJSON_free(p);
    return s;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."));
    closedir(d);
    return n;
}

TEST(write_creates_dirs_and_reports_bytes)
{
    const char *dir = test_tmpdir();
    tf_session *s = tf_open(dir);
    cJSON *r = write_to(s, "sub/deeper/x.txt", "héllo\n");
    char *j = print(r);
    ASSERT_STR_EQ("{\"bytes_written\":7,\"dirs_created\":true}", j);
    rt_free(j);
    cJSON_Delete(r);
    char *f = tf_join(dir, "sub/deeper/x.txt");
    char *got = tf_read(f);
    ASSERT_STR_EQ("héllo\n", got);
    rt_free(got);
    r = write_to(s, "sub/deeper/x.txt", "");
    j = print(r);
    ASSERT_STR_EQ("{\"bytes_written\":0,\"dirs_created\":false}", j); /* nothing created */
    rt_free(j);
    cJSON_Delete(r);
    /* Errors keep the WriteResult shape. */
    r = write_to(s, "sub", "x");
    j = print(r);
    ASSERT_STR_EQ("{\"bytes_written\":0,\"dirs_created\":false,\"error\":\"Failed to write file: "
                  "sub: Is a directory\"}",
                  j);
    rt_free(j);
    cJSON_Delete(r);
    r = tf_call(s, "write_file", "{\"path\":\"n.txt\",\"content\":5}");
    ASSERT_STR_EQ("content must be a string", tf_str(r, "error"));
    cJSON_Delete(r);
    r = tf_call(s, "write_file", "{\"content\":\"x\"}");
    ASSERT_STR_EQ("path is required", tf_str(r, "error"));
    cJSON_Delete(r);
    tf_close(s);
    rt_free(f);
}

TEST(atomic_write_keeps_mode_and_leaves_no_temp_files)
{
    const char *dir = test_tmpdir();
    char *f = tf_join(dir, "script.sh");
    tf_write(f, "#!/bin/sh\necho old\n");
    ASSERT_OK(chmod(f, 0751));
    struct stat before, after;
    ASSERT_OK(stat(f, &before));
    tf_session *s = tf_open(dir);
    cJSON *r = write_to(s, "script.sh", "#!/bin/sh\necho new\n");
    ASSERT_EQ(19, tf_num(r, "bytes_written"));
    cJSON_Delete(r);
    ASSERT_OK(stat(f, &after));
    ASSERT_EQ(0751, after.st_mode & 07777);
    ASSERT_NE(before.st_ino, after.st_ino); /* replaced by rename, not rewritten in place */
    /* New files: 0666 minus the umask. */
    umask(027);
    r = write_to(s, "new.txt", "x");
    cJSON_Delete(r);
    char *n = tf_join(dir, "new.txt");
    ASSERT_OK(stat(n, &after));
    ASSERT_EQ(0640, after.st_mode & 07777);
    ASSERT_EQ(2, count_entries(dir)); /* script.sh and new.txt: no temporary files left */
    tf_close(s);
    rt_free(f);
    rt_free(n);
}

TEST(symlinks_are_written_through)
{
    const char *dir = test_tmpdir();
    char *real = tf_join(dir, "real.txt"), *link = tf_join(dir, "link.txt");
    tf_write(real, "old\n");
    ASSERT_OK(symlink("real.txt", link));
    tf_session *s = tf_open(dir);
    cJSON *r = write_to(s, "link.txt", "new\n");
    ASSERT_NULL(cJSON_GetObjectItem(r, "error"));
    cJSON_Delete(r);
    struct stat st;
    ASSERT_OK(lstat(link, &st));
    ASSERT_TRUE(S_ISLNK(st.st_mode));
    char *got = tf_read(real);
    ASSERT_STR_EQ("new\n", got);
    rt_free(got);
    tf_close(s);
    rt_free(real);
    rt_free(link);
}

/* A fake HOME with the protected files in it. */
static char *fake_home(void)
{
    const char *home = test_tmpdir();
    ASSERT_OK(setenv("HOME", home, 1));
    char *ssh = tf_join(home, ".ssh");
    ASSERT_OK(mkdir(ssh, 0700));
    char *ak = tf_join(ssh, "authorized_keys");
    tf_write(ak, "ssh-ed25519 AAAA user\n");
    rt_free(ak);
    rt_free(ssh);
    return rt_xstrdup(home);
}

static void expect_denied(tf_session *s, const char *path, const char *shown)
{
    cJSON *r = write_to(s, path, "evil\n");
    char *want = rt_xasprintf("{\"bytes_written\":0,\"dirs_created\":false,\"error\":\"Write "
                              "denied: '%s' is a protected system/credential file.\"}",
                              shown);
    char *j = print(r);
    ASSERT_STR_EQ(want, j);
    rt_free(j);
    rt_free(want);
    cJSON_Delete(r);
}

TEST(deny_list_with_symlink_and_dotdot_tricks)
{
    char *home = fake_home();
    const char *work = test_tmpdir();
    tf_session *s = tf_open(work);
    char *ak = rt_xasprintf("%s/.ssh/authorized_keys", home);
    expect_denied(s, "~/.ssh/authorized_keys", ak);
    char *bashrc = rt_xasprintf("%s/.bashrc", home);
    expect_denied(s, "~/.bashrc", bashrc);
    char *aws = rt_xasprintf("%s/.aws/credentials", home);
    expect_denied(s, "~/.aws/credentials", aws); /* under a protected directory */
    char *env = rt_xasprintf("%s/.hermes/.env", home);
    expect_denied(s, env, env);
    expect_denied(s, "/etc/passwd", "/etc/passwd");
    expect_denied(s, "/etc/sudoers.d/x", "/etc/sudoers.d/x");
    /* A symlink in the workspace pointing at authorized_keys. */
    char *link = tf_join(work, "innocent.txt");
    ASSERT_OK(symlink(ak, link));
    expect_denied(s, "innocent.txt", "innocent.txt");
    /* A symlinked directory leading into ~/.ssh, and a '..' walk into it. */
    char *sshdir = rt_xasprintf("%s/.ssh", home);
    char *dlink = tf_join(work, "keys");
    ASSERT_OK(symlink(sshdir, dlink));
    expect_denied(s, "keys/id_rsa", "keys/id_rsa");
    char *dots = rt_xasprintf("%s/../%s/./.ssh/config", work, strrchr(home, '/') + 1);
    expect_denied(s, dots, dots);
    char *got = tf_read(ak);
    ASSERT_STR_EQ("ssh-ed25519 AAAA user\n", got); /* untouched */
    rt_free(got);
    /* Not protected: a lookalike name next to it. */
    char *ok = rt_xasprintf("%s/.sshx/file", home);
    cJSON *r = write_to(s, ok, "fine");
    ASSERT_NULL(cJSON_GetObjectItem(r, "error"));
    cJSON_Delete(r);
    tf_close(s);
    rt_free(ok);
    rt_free(dots);
    rt_free(dlink);
    rt_free(sshdir);
    rt_free(link);
    rt_free(env);
    rt_free(aws);
    rt_free(bashrc);
    rt_free(ak);
    rt_free(home);
}

TEST(patch_writes_deletes_and_moves_obey_the_deny_list)
{
    char *home = fake_home();
    const char *work = test_tmpdir();
    char *link = tf_join(work, "k.txt");
    char *ak = rt_xasprintf("%s/.ssh/authorized_keys", home);
    ASSERT_OK(symlink(ak, link));
    tf_session *s = tf_open(work);
    cJSON *r = tf_call(s, "patch",
                       "{\"mode\":\"replace\",\"path\":\"k.txt\",\"old_string\":\"AAAA\","
                       "\"new_string\":\"BBBB\"}");
    ASSERT_FALSE(tf_bool(r, "success"));
    ASSERT_STR_EQ("Write denied: 'k.txt' is a protected system/credential file.",
                  tf_str(r, "error"));
    cJSON_Delete(r);
    r = tf_call(s, "patch",
                "{\"mode\":\"patch\",\"patch\":\"*** Begin Patch\\n*** Add File: ok.txt\\n+fine\\n"
                "*** Delete File: ~/.ssh/authorized_keys\\n*** Move File: k.txt -> moved.txt\\n"
                "*** Add File: ~/.ssh/id_ed25519\\n+key\\n*** End Patch\"}");
    ASSERT_FALSE(tf_bool(r, "success"));
    const char *e = tf_str(r, "error");
    ASSERT_STR_CONTAINS(e, "Failed to delete ~/.ssh/authorized_keys: Write denied:");
    ASSERT_STR_CONTAINS(e, "Failed to move k.txt: Write denied: 'k.txt'");
    ASSERT_STR_CONTAINS(e, "Failed to add ~/.ssh/id_ed25519: Write denied:");
    ASSERT_STR_CONTAINS(e, "(no files were modified)");
    cJSON_Delete(r);
    char *okf = tf_join(work, "ok.txt");
    ASSERT_EQ(-1, access(okf, F_OK)); /* the valid Add was not applied either */
    char *got = tf_read(ak);
    ASSERT_STR_EQ("ssh-ed25519 AAAA user\n", got);
    rt_free(got);
    tf_close(s);
    rt_free(okf);
    rt_free(ak);
    rt_free(link);
    rt_free(home);
}

TEST(realpath_like_python)
{
    const char *dir = test_tmpdir();
    char *a = tf_join(dir, "a");
    ASSERT_OK(mkdir(a, 0755));
    char *l = tf_join(dir, "l");
    ASSERT_OK(symlink("a/../a/", l));
    char *p = rt_xasprintf("%s/l/missing/../x/./y", dir);
    char *r = ft_realpath(p);
    char *want = rt_xasprintf("%s/a/x/y", dir);
    ASSERT_STR_EQ(want, r);
    rt_free(r);
    rt_free(want);
    /* A symlink loop does not hang. */
    char *loop = tf_join(dir, "loop");
    ASSERT_OK(symlink("loop", loop));
    r = ft_realpath(loop);
    ASSERT_NOT_NULL(r);
    rt_free(r);
    rt_free(loop);
    rt_free(p);
    rt_free(l);
    rt_free(a);
}
