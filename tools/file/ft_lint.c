/*
 * ft_lint — see ft_lint.h.
 */
#include "ft_lint.h"

#include "ft_proc.h"
#include "ft_text.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

struct ft_lint {
    ft_proc *proc;
    rt_buf out;       /* merged output, capped */
    int64_t deadline; /* CLOCK_MONOTONIC ms */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static cJSON *skipped(const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "skipped");
    cJSON_AddStringToObject(o, "message", msg);
    return o;
}

static cJSON *finished(bool ok, const char *text, size_t n)
{
    ft_span s = ft_strip((ft_span){text, n});
    char *clean = ft_clean_dup(s.p, s.n);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", ok ? "ok" : "error");
    cJSON_AddStringToObject(o, "output", clean);
    rt_free(clean);
    return o;
}

static bool sink(void *arg, const char *data, size_t n)
{
    rt_buf *b = arg;
    size_t room = b->max - b->len;
    (void)rt_buf_append(b, data, n < room ? n : room); /* the rest is dropped */
    return true;
}

ft_lint *ft_lint_start(const char *cwd, const char *path, cJSON **result)
{
    char ext[32];
    ft_path_ext(path, ext, sizeof(ext));
    const char *argv[6] = {NULL};
    const char *base = NULL;
    if (strcmp(ext, ".py") == 0) {
        base = "python";
        argv[0] = ft_proc_have("python") ? "python" : "python3";
        argv[1] = "-m", argv[2] = "py_compile";
    } else if (strcmp(ext, ".js") == 0) {
        base = argv[0] = "node", argv[1] = "--check";
    } else if (strcmp(ext, ".ts") == 0) {
        base = argv[0] = "npx", argv[1] = "tsc", argv[2] = "--noEmit";
    } else if (strcmp(ext, ".go") == 0) {
        base = argv[0] = "go", argv[1] = "vet";
    } else if (strcmp(ext, ".rs") == 0) {
        base = argv[0] = "rustfmt", argv[1] = "--check";
    } else {
        char msg[64];
        snprintf(msg, sizeof(msg), "No linter for %s files", ext);
        *result = skipped(msg);
        return NULL;
    }
    if (!ft_proc_have(argv[0])) {
        char msg[64];
        snprintf(msg, sizeof(msg), "%s not available", base);
        *result = skipped(msg);
        return NULL;
    }
    size_t k = 0;
    while (argv[k])
        k++;
    char *arg = path[0] == '-' ? rt_xasprintf("./%s", path) : rt_xstrdup(path);
    argv[k] = arg;
    ft_lint *l = rt_xcalloc(1, sizeof(*l));
    rt_buf_init(&l->out, FT_LINT_OUTPUT_MAX);
    int err;
    l->proc = ft_proc_start(argv, cwd && *cwd ? cwd : NULL, true, 0, sink, &l->out, &err);
    rt_free(arg);
    if (!l->proc) {
        char msg[256];
        snprintf(msg, sizeof(msg), "Failed to run %s: %s", base, rt_strerror(err));
        *result = finished(false, msg, strlen(msg));
        ft_lint_free(l);
        return NULL;
    }
    l->deadline = now_ms() + FT_LINT_TIMEOUT_MS;
    return l;
}

bool ft_lint_step(ft_lint *l, int slice_ms, cJSON **result)
{
    int64_t left = l->deadline - now_ms();
    if (left <= 0) {
        char msg[64];
        snprintf(msg, sizeof(msg), "Command timed out after %ds", FT_LINT_TIMEOUT_MS / 1000);
        *result = finished(false, msg, strlen(msg));
        return true;
    }
    int r = ft_proc_pump(l->proc, (int)(left < slice_ms ? left : slice_ms));
    if (r == 0)
        return false;
    int status = -1;
    ft_proc_free(l->proc, &status);
    l->proc = NULL;
    *result = finished(r > 0 && status == 0, l->out.data ? l->out.data : "", l->out.len);
    return true;
}

void ft_lint_free(ft_lint *l)
{
    if (!l)
        return;
    ft_proc_free(l->proc, NULL);
    rt_buf_fini(&l->out);
    rt_free(l);
}

cJSON *ft_lint_run(const char *cwd, const char *path)
{
    cJSON *res = NULL;
    ft_lint *l = ft_lint_start(cwd, path, &res);
    while (l && !ft_lint_step(l, 1000, &res))
        ;
    ft_lint_free(l);
    return res;
}
