/* test_file_util — see test_file_util.h. */
#include "test_file_util.h"

#include "rt_actor.h"
#include "rt_alloc.h"
#include "rt_sched.h"
#include "test.h"
#include "tool.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

enum { TF_GO = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 0x0F01) };

typedef struct tf_go {
    rt_msg hdr;
    char *tool;
    char *args;
} tf_go;

struct tf_session {
    rt_runtime *rt;
    rt_ref ref;
    tool_env *env;
    _Atomic int done; /* release by the session actor, acquire by the test */
    _Atomic int interrupted;
    char *result; /* written before done is set */
};

static void drop_go(rt_msg *m)
{
    tf_go *g = (tf_go *)m;
    rt_free(g->tool);
    rt_free(g->args);
}

static void session_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    tf_session *s = *(tf_session **)state;
    if (m->type == TF_GO) {
        tf_go *g = (tf_go *)m;
        const tool_def *d = tool_find(g->tool);
        ASSERT_NOT_NULL(d);
        ASSERT_NE(0, tool_start_call(cx, d, s->env, 1, "call_1", g->args));
    } else if (m->type == TOOL_MSG_RESULT) {
        tool_msg_result *r = (tool_msg_result *)m;
        s->result = r->result;
        r->result = NULL;
        atomic_store_explicit(&s->interrupted, r->interrupted, memory_order_relaxed);
        /* release: pairs with the acquire in tf_done */
        atomic_store_explicit(&s->done, 1, memory_order_release);
    }
}

static const rt_actor_type session_type = {"tf_session", session_behave, NULL,
                                           sizeof(tf_session *)};

tf_session *tf_open(const char *cwd)
{
    tf_session *s = rt_xcalloc(1, sizeof(*s));
    s->rt = rt_runtime_new(NULL);
    s->env = tool_env_new();
    s->env->cwd = cwd ? rt_xstrdup(cwd) : NULL;
    s->env->platform = rt_xstrdup("cli");
    rt_spawn_opts o = {.flags = RT_SPAWN_TRAP_EXIT};
    s->ref = rt_spawn(rt_ctx_external(s->rt), &session_type, &s, &o);
    return s;
}

void tf_close(tf_session *s)
{
    ASSERT_OK(rt_wait_quiescent(s->rt, 20000));
    rt_runtime_free(s->rt);
    tool_env_unref(s->env);
    rt_free(s->result);
    rt_free(s);
}

void tf_start(tf_session *s, const char *tool, const char *args_json)
{
    atomic_store(&s->done, 0);
    rt_free(s->result);
    s->result = NULL;
    tf_go *g = RT_MSG_NEW(tf_go, TF_GO);
    g->tool = rt_xstrdup(tool);
    g->args = rt_xstrdup(args_json);
    g->hdr.drop = drop_go;
    rt_send(rt_ctx_external(s->rt), s->ref, &g->hdr);
}

bool tf_done(tf_session *s)
{
    /* acquire: pairs with the release in session_behave */
    return atomic_load_explicit(&s->done, memory_order_acquire) != 0;
}

char *tf_wait(tf_session *s)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!tf_done(s)) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        ASSERT_LT(t.tv_sec - t0.tv_sec, 20);
        usleep(1000);
    }
    char *r = s->result;
    s->result = NULL;
    return r;
}

void tf_interrupt(tf_session *s)
{
    rt_interrupt(rt_ctx_external(s->rt), s->ref, 1);
}

bool tf_was_interrupted(tf_session *s)
{
    return atomic_load_explicit(&s->interrupted, memory_order_relaxed) != 0;
}

cJSON *tf_call(tf_session *s, const char *tool, const char *args_json)
{
    tf_start(s, tool, args_json);
    char *r = tf_wait(s);
    cJSON *o = cJSON_Parse(r);
    if (!o)
        TEST_FAIL_("result is not JSON: %s", r);
    rt_free(r);
    return o;
}

const char *tf_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) {
        char *p = cJSON_PrintUnformatted(o);
        TEST_FAIL_("no string \"%s\" in %s", key, p);
    }
    return v->valuestring;
}

double tf_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) {
        char *p = cJSON_PrintUnformatted(o);
        TEST_FAIL_("no number \"%s\" in %s", key, p);
    }
    return v->valuedouble;
}

bool tf_bool(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsBool(v)) {
        char *p = cJSON_PrintUnformatted(o);
        TEST_FAIL_("no bool \"%s\" in %s", key, p);
    }
    return cJSON_IsTrue(v);
}

void tf_write(const char *path, const char *content)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    size_t n = strlen(content);
    ASSERT_EQ((ssize_t)n, write(fd, content, n));
    close(fd);
}

char *tf_read(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = rt_xmalloc(1 << 20);
    ssize_t n = read(fd, buf, (1 << 20) - 1);
    close(fd);
    ASSERT_GE(n, 0);
    buf[n] = '\0';
    return buf;
}

char *tf_join(const char *dir, const char *name)
{
    return rt_xasprintf("%s/%s", dir, name);
}

char *tf_q(const char *s)
{
    cJSON *j = cJSON_CreateString(s);
    char *p = cJSON_PrintUnformatted(j);
    char *out = rt_xstrdup(p);
    cJSON_free(p);
    cJSON_Delete(j);
    return out;
}
