/*
 * tools/checkpoint: the pure helpers, and the service against real git in a temporary
 * directory — a snapshot commits only when something changed, the list (newest first),
 * restoring a file's old content (and undoing that), the default excludes, once per turn,
 * disabled (explicitly and by config.yaml), a missing git, and hostile rollback targets.
 */
#include "ckpt.h"

#include "rt_alloc.h"
#include "rt_proc.h"
#include "rt_reactor.h"
#include "rt_sched.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 60000

/* ------------------------------------------------------------ pure helpers */

TEST(dir_hash_is_sha256_prefix)
{
    char h[CKPT_HASH_HEX + 1];
    ckpt_dir_hash("/tmp", h);
    ASSERT_STR_EQ("e9671acd244849c5", h); /* python: sha256(b"/tmp").hexdigest()[:16] */
}

TEST(a_hash_of_digits_is_a_hash_not_a_number)
{
    /* a short git hash can be all digits: it must not be read as a checkpoint number */
    int64_t k = 0;
    ASSERT_TRUE(ckpt_target_is_number("3", 50, &k));
    ASSERT_EQ(3, k);
    ASSERT_TRUE(ckpt_target_is_number("9", 50, &k)); /* past the list: "Invalid number" */
    ASSERT_TRUE(ckpt_target_is_number("0042", 50, &k));
    ASSERT_EQ(42, k);
    ASSERT_FALSE(ckpt_target_is_number("4094771", 50, &k));
    ASSERT_FALSE(ckpt_target_is_number("1234", 50, &k));
    ASSERT_TRUE(ckpt_target_is_number("1234", 5000, &k)); /* a list that long exists */
    ASSERT_FALSE(ckpt_target_is_number("abc1234", 50, &k));
    ASSERT_FALSE(ckpt_target_is_number(NULL, 50, &k));
}

TEST(hash_validation_refuses_hostile_targets)
{
    char why[160];
    ASSERT_TRUE(ckpt_hash_is_valid("abcd", why, sizeof(why)));
    ASSERT_TRUE(ckpt_hash_is_valid("0123456789ABCDEFabcdef0123456789abcdef01", why, sizeof(why)));
    ASSERT_FALSE(ckpt_hash_is_valid("--patch", why, sizeof(why)));
    ASSERT_STR_CONTAINS(why, "must not start with '-'");
    ASSERT_FALSE(ckpt_hash_is_valid("-p", why, sizeof(why)));
    ASSERT_FALSE(ckpt_hash_is_valid("abc", why, sizeof(why)));
    ASSERT_STR_CONTAINS(why, "expected 4-64 hex characters");
    ASSERT_FALSE(ckpt_hash_is_valid("HEAD~1", why, sizeof(why)));
    ASSERT_FALSE(ckpt_hash_is_valid("abcd; rm -rf /", why, sizeof(why)));
    char big[80];
    memset(big, 'a', 65);
    big[65] = '\0';
    ASSERT_FALSE(ckpt_hash_is_valid(big, why, sizeof(why)));
    ASSERT_FALSE(ckpt_hash_is_valid("", why, sizeof(why)));
    ASSERT_FALSE(ckpt_hash_is_valid(NULL, why, sizeof(why)));
}

TEST(destructive_commands)
{
    ASSERT_TRUE(ckpt_command_is_destructive("rm a.txt"));
    ASSERT_TRUE(ckpt_command_is_destructive("cd x && mv a b"));
    ASSERT_TRUE(ckpt_command_is_destructive("sed -i 's/a/b/' f"));
    ASSERT_TRUE(ckpt_command_is_destructive("git reset --hard"));
    ASSERT_TRUE(ckpt_command_is_destructive("git  checkout main"));
    ASSERT_TRUE(ckpt_command_is_destructive("echo hi > out.txt"));
    ASSERT_TRUE(ckpt_command_is_destructive("truncate -s 0 f"));
    ASSERT_FALSE(ckpt_command_is_destructive("ls -la"));
    ASSERT_FALSE(ckpt_command_is_destructive("echo hi >> log.txt"));
    ASSERT_FALSE(ckpt_command_is_destructive("make 2>&1"));
    ASSERT_FALSE(ckpt_command_is_destructive("git status"));
    ASSERT_FALSE(ckpt_command_is_destructive("grep rmx file"));
    ASSERT_FALSE(ckpt_command_is_destructive(""));
    ASSERT_FALSE(ckpt_command_is_destructive(NULL));
}

TEST(which_calls_change_files)
{
    char *p = NULL;
    ASSERT_TRUE(
        ckpt_call_changes_files("write_file", "{\"path\":\"a.txt\",\"content\":\"x\"}", &p));
    ASSERT_STR_EQ("a.txt", p);
    rt_free(p);
    ASSERT_TRUE(ckpt_call_changes_files("patch", "{\"mode\":\"patch\",\"patch\":\"...\"}", &p));
    ASSERT_NULL(p);
    ASSERT_TRUE(
        ckpt_call_changes_files("terminal", "{\"command\":\"rm -f x\",\"workdir\":\"/w\"}", &p));
    ASSERT_STR_EQ("/w", p);
    rt_free(p);
    ASSERT_FALSE(ckpt_call_changes_files("terminal", "{\"command\":\"ls\"}", &p));
    ASSERT_NULL(p);
    ASSERT_FALSE(ckpt_call_changes_files("read_file", "{\"path\":\"a\"}", &p));
    ASSERT_TRUE(ckpt_call_changes_files("write_file", "not json", &p)); /* the tool will refuse */
    ASSERT_NULL(p);
    char *r = ckpt_call_reason("terminal", "{\"command\":\"rm -rf build\"}");
    ASSERT_STR_EQ("before terminal: rm -rf build", r);
    rt_free(r);
    r = ckpt_call_reason("write_file", "{}");
    ASSERT_STR_EQ("before write_file", r);
    rt_free(r);
}

/* ------------------------------------------------------------ the service */

enum { T_REPLY_SEEN = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 7) };

static struct {
    rt_runtime *rt;
    rt_reactor *re;
    rt_ctx *cx;
    rt_ref svc, sink;
    char home[512], dir[512];
    _Atomic int done;
    _Atomic uint64_t want_tag;
    int err;
    bool taken;
    char text[8192];
} h;

static void sink_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    if (m->type != CKPT_MSG_DONE)
        return;
    ckpt_msg_done *d = (ckpt_msg_done *)m;
    if (d->tag != atomic_load(&h.want_tag))
        return;
    h.err = d->err;
    h.taken = d->taken;
    snprintf(h.text, sizeof(h.text), "%s", d->text ? d->text : "");
    atomic_store(&h.done, 1); /* seq_cst: publishes the fields above */
}
static const rt_actor_type sink_type = {"sink", sink_behave, NULL, 0};

static void put(const char *rel, const char *text)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", h.dir, rel);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", p);
    ASSERT_EQ(0, system(cmd));
    *slash = '/';
    FILE *f = fopen(p, "w");
    ASSERT_NOT_NULL(f);
    fputs(text, f);
    fclose(f);
}

static void get(const char *rel, char *out, size_t n)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", h.dir, rel);
    FILE *f = fopen(p, "r");
    ASSERT_NOT_NULL(f);
    size_t k = fread(out, 1, n - 1, f);
    out[k] = '\0';
    fclose(f);
}

static void setup(const char *git)
{
    snprintf(h.home, sizeof(h.home), "%s/hermes", test_tmpdir());
    snprintf(h.dir, sizeof(h.dir), "%s/project", test_tmpdir());
    mkdir(h.home, 0700);
    mkdir(h.dir, 0700);
    char userhome[600];
    snprintf(userhome, sizeof(userhome), "%s/userhome", test_tmpdir());
    mkdir(userhome, 0700);
    setenv("HOME", userhome, 1); /* before any thread: "/" and $HOME are never snapshotted */
    h.rt = rt_runtime_new(NULL);
    h.re = rt_reactor_start(h.rt);
    ASSERT_OK(rt_proc_init(h.re));
    h.cx = rt_ctx_external(h.rt);
    h.svc = ckpt_service_spawn(h.cx, git);
    ASSERT_NE(0, h.svc);
    h.sink = rt_spawn(h.cx, &sink_type, NULL, NULL);
}

static void teardown(void)
{
    rt_reactor_stop(h.re);
    rt_runtime_free(h.rt);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct call_opts {
    const char *path, *target, *reason, *dir;
    int enabled; /* 0 means 1 here; use -2 for "from config.yaml", -3 for off */
    rt_ref session;
    uint64_t turn;
} call_opts;

static void call(int op, call_opts o)
{
    static uint64_t tag;
    ckpt_msg_req *q = ckpt_req_new(op, h.home, o.dir ? o.dir : h.dir);
    q->path = o.path ? rt_xstrdup(o.path) : NULL;
    q->target = o.target ? rt_xstrdup(o.target) : NULL;
    q->reason = o.reason ? rt_xstrdup(o.reason) : NULL;
    q->enabled = o.enabled == -2 ? -1 : (o.enabled == -3 ? 0 : 1);
    q->session = o.session;
    q->turn = o.turn;
    q->reply_to = h.sink;
    q->tag = ++tag;
    atomic_store(&h.done, 0);
    atomic_store(&h.want_tag, tag);
    ASSERT_TRUE(rt_send(h.cx, h.svc, &q->hdr));
    int64_t t0 = now_ms();
    while (!atomic_load(&h.done)) {
        ASSERT_LT(now_ms() - t0, WAIT_MS);
        usleep(1000);
    }
}

static void snap(const char *reason)
{
    call(CKPT_OP_SNAPSHOT, (call_opts){.reason = reason});
    ASSERT_EQ(0, h.err);
}

TEST(snapshot_commits_only_when_something_changed)
{
    setup(NULL);
    put("a.txt", "one\n");
    snap("first");
    ASSERT_TRUE(h.taken);
    snap("again");
    ASSERT_FALSE(h.taken); /* nothing changed */
    put("a.txt", "two\n");
    snap("second");
    ASSERT_TRUE(h.taken);
    /* the shadow repository: named by the hash, marked with the directory, with excludes */
    char real[512], hx[CKPT_HASH_HEX + 1], p[1200], buf[1024];
    ASSERT_NOT_NULL(realpath(h.dir, real));
    ckpt_dir_hash(real, hx);
    snprintf(p, sizeof(p), "%s/checkpoints/%s/HERMES_WORKDIR", h.home, hx);
    FILE *f = fopen(p, "r");
    ASSERT_NOT_NULL(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    ASSERT_STR_CONTAINS(buf, real);
    snprintf(p, sizeof(p), "%s/checkpoints/%s/info/exclude", h.home, hx);
    ASSERT_EQ(0, access(p, R_OK));
    /* nothing of it in the user's directory */
    snprintf(p, sizeof(p), "%s/.git", h.dir);
    ASSERT_NE(0, access(p, F_OK));
    teardown();
}

TEST(list_newest_first)
{
    setup(NULL);
    call(CKPT_OP_LIST, (call_opts){0});
    ASSERT_STR_CONTAINS(h.text, "No checkpoints found for ");
    put("a.txt", "one\n");
    snap("first");
    put("a.txt", "one\ntwo\n");
    put("b.txt", "b\n");
    snap("second");
    call(CKPT_OP_LIST, (call_opts){0});
    ASSERT_EQ(0, h.err);
    ASSERT_STR_CONTAINS(h.text, "\xf0\x9f\x93\xb8 Checkpoints for ");
    char *one = strstr(h.text, "  1. ");
    char *two = strstr(h.text, "  2. ");
    ASSERT_NOT_NULL(one);
    ASSERT_NOT_NULL(two);
    ASSERT_TRUE(strstr(one, "second") && strstr(one, "second") < two);
    ASSERT_STR_CONTAINS(two, "first");
    ASSERT_STR_CONTAINS(h.text, "(2 files, +2/-0)");
    ASSERT_STR_CONTAINS(h.text, "/rollback <N>");
    teardown();
}

TEST(rollback_restores_old_content_and_can_be_undone)
{
    setup(NULL);
    put("a.txt", "old\n");
    snap("before edit");
    put("a.txt", "new\n");
    call(CKPT_OP_ROLLBACK, (call_opts){.target = "1"});
    ASSERT_EQ(0, h.err);
    ASSERT_STR_CONTAINS(h.text, "Restored to checkpoint ");
    ASSERT_STR_CONTAINS(h.text, ": before edit");
    ASSERT_STR_CONTAINS(h.text, "pre-rollback snapshot was saved");
    char buf[64];
    get("a.txt", buf, sizeof(buf));
    ASSERT_STR_EQ("old\n", buf);
    /* the state before the rollback is checkpoint 1 now: restoring it undoes the rollback */
    call(CKPT_OP_LIST, (call_opts){0});
    ASSERT_STR_CONTAINS(h.text, "1. ");
    ASSERT_STR_CONTAINS(h.text, "pre-rollback snapshot (restoring to ");
    call(CKPT_OP_ROLLBACK, (call_opts){.target = "1"});
    ASSERT_EQ(0, h.err);
    get("a.txt", buf, sizeof(buf));
    ASSERT_STR_EQ("new\n", buf);
    /* by hash: the first line of the list names it */
    call(CKPT_OP_LIST, (call_opts){0});
    char *last = strstr(h.text, "  3. ");
    ASSERT_NOT_NULL(last);
    char hash[16] = {0};
    memcpy(hash, last + 5, 7);
    call(CKPT_OP_ROLLBACK, (call_opts){.target = hash});
    ASSERT_EQ(0, h.err);
    get("a.txt", buf, sizeof(buf));
    ASSERT_STR_EQ("old\n", buf);
    call(CKPT_OP_ROLLBACK, (call_opts){.target = "9"});
    ASSERT_EQ(-EINVAL, h.err);
    ASSERT_STR_CONTAINS(h.text, "Invalid checkpoint number. Use 1-");
    teardown();
}

TEST(excluded_files_are_not_checkpointed)
{
    setup(NULL);
    put("src.c", "int x;\n");
    snap("base");
    ASSERT_TRUE(h.taken);
    put("node_modules/lib/x.js", "x\n");
    put(".env", "SECRET=1\n");
    put("build/out.o", "obj\n");
    put("debug.log", "log\n");
    put(".venv/bin/python", "py\n");
    snap("excluded only");
    ASSERT_FALSE(h.taken);
    put("src.c", "int y;\n");
    snap("real change");
    ASSERT_TRUE(h.taken);
    teardown();
}

TEST(once_per_session_turn)
{
    setup(NULL);
    put("a.txt", "1\n");
    call(CKPT_OP_SNAPSHOT, (call_opts){.session = 77, .turn = 1});
    ASSERT_TRUE(h.taken);
    put("a.txt", "2\n");
    call(CKPT_OP_SNAPSHOT, (call_opts){.session = 77, .turn = 1});
    ASSERT_EQ(0, h.err);
    ASSERT_FALSE(h.taken); /* the same turn: the first snapshot stands */
    call(CKPT_OP_SNAPSHOT, (call_opts){.session = 77, .turn = 2});
    ASSERT_TRUE(h.taken);
    call(CKPT_OP_SNAPSHOT, (call_opts){.session = 78, .turn = 2});
    ASSERT_FALSE(h.taken); /* another session, but nothing changed */
    teardown();
}

TEST(project_root_and_broad_directories)
{
    setup(NULL);
    put("Makefile", "all:\n");
    put("sub/deep/f.txt", "f\n");
    char p[1024];
    snprintf(p, sizeof(p), "%s/sub/deep/f.txt", h.dir);
    call(CKPT_OP_SNAPSHOT, (call_opts){.path = p, .dir = "/"});
    ASSERT_TRUE(h.taken); /* the Makefile's directory, not sub/deep */
    call(CKPT_OP_LIST, (call_opts){0});
    ASSERT_STR_CONTAINS(h.text, "1. ");
    /* $HOME itself is too broad */
    call(CKPT_OP_SNAPSHOT, (call_opts){.dir = getenv("HOME")});
    ASSERT_EQ(0, h.err);
    ASSERT_FALSE(h.taken);
    teardown();
}

TEST(disabled_explicitly_or_by_config)
{
    setup(NULL);
    put("a.txt", "1\n");
    call(CKPT_OP_SNAPSHOT, (call_opts){.enabled = -3});
    ASSERT_EQ(-ENOTSUP, h.err);
    ASSERT_FALSE(h.taken);
    call(CKPT_OP_LIST, (call_opts){.enabled = -2}); /* no config.yaml: off by default */
    ASSERT_STR_EQ(CKPT_DISABLED_TEXT, h.text);
    call(CKPT_OP_ROLLBACK, (call_opts){.enabled = -2, .target = "1"});
    ASSERT_STR_EQ(CKPT_DISABLED_TEXT, h.text);
    char real[512], hx[CKPT_HASH_HEX + 1], p[1200];
    ASSERT_NOT_NULL(realpath(h.dir, real));
    ckpt_dir_hash(real, hx);
    snprintf(p, sizeof(p), "%s/checkpoints/%s", h.home, hx);
    ASSERT_NE(0, access(p, F_OK)); /* nothing was made */
    /* config.yaml turns them on (read again when it changes) */
    snprintf(p, sizeof(p), "%s/config.yaml", h.home);
    FILE *f = fopen(p, "w");
    ASSERT_NOT_NULL(f);
    fputs("checkpoints:\n  enabled: true\n  max_snapshots: 1\n", f);
    fclose(f);
    call(CKPT_OP_SNAPSHOT, (call_opts){.enabled = -2});
    ASSERT_EQ(0, h.err);
    ASSERT_TRUE(h.taken);
    put("a.txt", "2\n");
    call(CKPT_OP_SNAPSHOT, (call_opts){.enabled = -2});
    ASSERT_TRUE(h.taken);
    call(CKPT_OP_LIST, (call_opts){.enabled = -2}); /* max_snapshots: 1 listed */
    ASSERT_STR_CONTAINS(h.text, "  1. ");
    ASSERT_NULL(strstr(h.text, "  2. "));
    teardown();
}

TEST(missing_git_is_a_clear_error)
{
    setup("/nonexistent/bin/git");
    put("a.txt", "1\n");
    call(CKPT_OP_SNAPSHOT, (call_opts){0});
    ASSERT_EQ(-ENOENT, h.err);
    ASSERT_FALSE(h.taken);
    ASSERT_STR_CONTAINS(h.text, "Checkpoints need git, which is not installed");
    teardown();
}

TEST(hostile_rollback_targets_are_refused)
{
    setup(NULL);
    put("a.txt", "1\n");
    snap("base");
    static const char *const bad[] = {"--patch", "-p",  "--output=/tmp/x", "zzzz",
                                      "HEAD~1",  "abc", "1; rm -rf /",     "../../etc"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        call(CKPT_OP_ROLLBACK, (call_opts){.target = bad[i]});
        ASSERT_EQ(-EINVAL, h.err);
        ASSERT_STR_CONTAINS(h.text, "Invalid commit hash");
    }
    call(CKPT_OP_ROLLBACK, (call_opts){.target = "deadbeef"});
    ASSERT_EQ(-ENOENT, h.err);
    ASSERT_STR_CONTAINS(h.text, "Checkpoint 'deadbeef' not found");
    char buf[16];
    get("a.txt", buf, sizeof(buf));
    ASSERT_STR_EQ("1\n", buf); /* untouched */
    /* a missing working directory */
    call(CKPT_OP_LIST, (call_opts){.dir = "/nonexistent/dir"});
    ASSERT_EQ(-ENOENT, h.err);
    ASSERT_STR_CONTAINS(h.text, "Working directory not found");
    teardown();
}
