/*
 * Checkpoints off the writer's thread (st_ckpt.h): the WAL is folded into state.db while the
 * writer goes on, it stays bounded over many commits, and nothing is lost.
 */
#include "st_ckpt.h"
#include "st_test.h"

#include <sys/stat.h>
#include <time.h>

#define SID       "sess-ckpt"
#define ROUNDS    3
#define PER_ROUND 1500
#define BODY      4000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static off_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : 0;
}

TEST(the_wal_is_checkpointed_off_the_writer_and_stays_bounded)
{
    harness h;
    const char *path = tmp_path("state.db");
    st_store_opts o = {.path = path, .commit_each = true}; /* many commits, as under load */
    h_start_opts(&h, &o);
    ASSERT_NE(0, h.st.checkpointer);
    h_create(&h, SID, "cli");
    char wal[600];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    char body[BODY + 1];
    off_t wal_max = 0;
    for (int r = 0; r < ROUNDS; r++) {
        size_t base = col_count();
        for (int i = 0; i < PER_ROUND; i++) {
            memset(body, 'a' + (i + r) % 26, BODY);
            snprintf(body, 32, "round %d message %d ", r, i);
            body[strlen(body)] = ' ';
            body[BODY] = '\0';
            h_send(&h, &st_append_new(SID, "user", body)->hdr, (uint64_t)i);
        }
        h_send(&h, &st_ctl_new(ST_MSG_SYNC, 0, 0)->hdr, 0);
        col_wait(base + PER_ROUND + 1);
        if (file_size(wal) > wal_max)
            wal_max = file_size(wal);
    }
    /* ~18 MB of text went through the WAL; without checkpoints it would hold all of it, and
     * the database file none (SQLite's own automatic checkpoint is off on the writer). */
    off_t total = (off_t)ROUNDS * PER_ROUND * BODY;
    int64_t t0 = now_ms();
    while (file_size(path) < total / 2 && now_ms() - t0 < WAIT_MS)
        usleep(10000);
    ASSERT_GT(file_size(path), total / 2);
    /* the log is reused, bounded by what the writer allows before it checkpoints itself
     * (without checkpoints it reached over 100 MB here) */
    ASSERT_LT(wal_max, (off_t)ST_CKPT_INLINE_PAGES * 4096 * 3 / 2);
    h_stop(&h);
    /* everything is there, once */
    sqlite3 *db = raw_open(path);
    ASSERT_EQ(ROUNDS * PER_ROUND, q_int(db, "SELECT count(*) FROM messages"));
    ASSERT_EQ(ROUNDS * PER_ROUND, q_int(db, "SELECT message_count FROM sessions"));
    sqlite3_close(db);
    integrity_ok(path);
}
