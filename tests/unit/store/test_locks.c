/*
 * A second write connection opened beside a running store must not drop the process's POSIX
 * locks on state.db (a close() of any descriptor of the file does): another process closing
 * its connection would take the database for unused and delete the WAL under the writer,
 * whose later commits then went to a deleted file (seen as replies missing from state.db
 * after a kill -9 and restart).
 */
#include "st_test.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static bool exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Another process (a new program: a forked child would share SQLite's view of this
 * process's locks) opens state.db, reads and closes, as `sqlite3 state.db` or a Python
 * reader does. Returns its exit status. */
static int other_process_reads(const char *path)
{
    char script[1024];
    snprintf(script, sizeof(script),
             "import sqlite3; c = sqlite3.connect(%s%s%s); "
             "c.execute('SELECT count(*) FROM messages').fetchall(); c.close()",
             "'", path, "'");
    pid_t pid = fork();
    if (pid == 0) {
        execl("/usr/bin/python3", "python3", "-c", script, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(a_second_write_connection_keeps_the_wal_of_the_running_store)
{
    harness h;
    const char *path = tmp_path("state.db");
    h_start(&h, path);
    h_create(&h, "s1", "cli");
    h_append(&h, "s1", "user", "before");
    char wal[600];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    ASSERT_TRUE(exists(wal));
    /* what the checkpointer and the sessions index do: a write connection of their own */
    st_open_opts o = {.mode = ST_OPEN_WRITE};
    sqlite3 *second = NULL;
    char msg[ST_ERRMSG_MAX] = "";
    ASSERT_OK(st_db_open(path, &o, &second, msg, sizeof(msg)));
    ASSERT_EQ(0, other_process_reads(path));
    ASSERT_TRUE(exists(wal)); /* deleted under the writer before the fix */
    h_append(&h, "s1", "assistant", "after");
    sqlite3 *db = raw_open(path); /* a new reader sees the commit */
    ASSERT_EQ(2, q_int(db, "SELECT count(*) FROM messages WHERE session_id = 's1'"));
    sqlite3_close(db);
    sqlite3_close(second);
    h_stop(&h);
}

TEST(a_new_file_is_created_owner_only)
{
    const char *path = tmp_path("fresh.db");
    st_open_opts o = {.mode = ST_OPEN_WRITE};
    sqlite3 *db = NULL;
    char msg[ST_ERRMSG_MAX] = "";
    ASSERT_OK(st_db_open(path, &o, &db, msg, sizeof(msg)));
    struct stat sb;
    ASSERT_EQ(0, stat(path, &sb));
    ASSERT_EQ(0600, (int)(sb.st_mode & 0777));
    sqlite3_close(db);
    /* a directory where the file should be: a clear error */
    const char *dir = tmp_path("adir.db");
    ASSERT_EQ(0, mkdir(dir, 0700));
    ASSERT_EQ(-EINVAL, st_db_open(dir, &o, &db, msg, sizeof(msg)));
    ASSERT_STR_CONTAINS(msg, "not a regular file");
}
