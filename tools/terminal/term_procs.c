/*
 * term_procs — the process registry actor and its background processes (see
 * term_procs.h). Sandboxes live in term_sandbox.c.
 */
#include "term_procs.h"

#include "redact.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_proc.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"
#include "term_output.h"
#include "term_procs_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define SPAWN_REPLY_MS 30000 /* a spawn is answered without a pid after this */
#define SWEEP_MS       60000
#define OUT_BUF_MAX    ((size_t)4 << 20) /* 200,000 characters are at most 800 KB */
#define UNLIMITED      ((size_t)1 << 50) /* rt_proc max_output: we keep our own window */

extern char **environ;

typedef struct tp_proc {
    char id[24];          /* "proc_<12 hex>" */
    uint64_t seq;         /* spawn-timer tag */
    char *command;        /* as the model wrote it */
    char *cwd;            /* as spawned */
    char *task_id;        /* may be NULL */
    char *session_key;    /* may be NULL */
    char *mask;           /* sudo password to mask in the output, or NULL */
    term_target *target;  /* where it runs */
    tp_job *job;          /* while the subprocess runs */
    uint64_t rid;         /* rt_proc id, 0 after its EXIT */
    long pid;             /* 0: unknown */
    time_t started;       /* wall clock */
    bool exited;          /* finished, or killed */
    bool stdin_ok;        /* write/submit can reach it */
    bool clean_start;     /* still removing leading shell noise */
    int exit_code;        /* when exited */
    term_marker mk;       /* takes the HERMES_PID line out of the output */
    rt_buf out;           /* the rolling output */
    size_t out_chars;     /* code points in out */
    rt_ref spawn_reply;   /* who waits for TERM_MSG_SPAWNED; 0 once answered */
    uint64_t spawn_timer; /* SPAWN_REPLY_MS timer */
} tp_proc;

typedef struct tp_waiter {
    uint64_t id;
    char proc[24];
    rt_ref reply_to;
    uint64_t corr;
    uint64_t timer;
    int64_t effective_s;
    char *note; /* the clamp note, or NULL */
} tp_waiter;

/* ================================================================ small helpers */

static bool same_key(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

tp_job *tp__job_add(tp_state *st, uint64_t rid, int kind, void *owner)
{
    tp_job *j = rt_xcalloc(1, sizeof(*j));
    j->kind = kind;
    j->owner = owner;
    rt_map_put(&st->jobs, rid, j);
    return j;
}

void tp__fire(rt_ctx *cx, tp_state *st, char **argv, int64_t timeout_ms)
{
    rt_proc_opts o = {
        .argv = (const char *const *)argv,
        .timeout_ms = timeout_ms,
        .merge_stderr = true,
        .max_output = 4096,
        .reply_to = rt_self(cx),
    };
    uint64_t rid = rt_proc_spawn(cx, &o);
    if (rid)
        tp__job_add(st, rid, TP_JOB_FIRE, NULL);
    term_argv_free(argv);
}

void tp__arm_sweep(rt_ctx *cx, tp_state *st)
{
    if (st->sweep_armed)
        return;
    st->sweep_armed = true;
    rt_send_after(cx, rt_self(cx), rt_timeout_new(TP_TAG_SWEEP), SWEEP_MS);
}

bool tp__sandbox_busy(const tp_state *st, const term_target *t, const char *task_id)
{
    for (size_t i = 0; i < st->nprocs; i++) {
        const tp_proc *p = st->procs[i];
        if (p->exited || p->target->backend != t->backend)
            continue;
        if (t->backend == TERM_BE_SSH ? same_key(p->target->ssh_control, t->ssh_control)
                                      : same_key(p->task_id, task_id ? task_id : "default"))
            return true;
    }
    return false;
}

/* The last `chars` characters of p's output, as clean, masked, redacted text. */
static char *tail_text(const tp_proc *p, size_t chars)
{
    const char *d = rt_buf_cstr(&p->out);
    size_t off = term_utf8_suffix(d, p->out.len, chars);
    char *clean = term_utf8_clean(d + off, p->out.len - off, NULL);
    char *masked = term_mask_secret(clean, p->mask);
    char *red = redact_secrets(masked);
    rt_free(clean);
    rt_free(masked);
    return red;
}

static void add_clean(cJSON *o, const char *key, const char *s, size_t n)
{
    char *c = term_utf8_clean(s ? s : "", s ? n : 0, NULL);
    cJSON_AddStringToObject(o, key, c);
    rt_free(c);
}

static void add_pid(cJSON *o, long pid)
{
    if (pid > 0)
        cJSON_AddNumberToObject(o, "pid", (double)pid);
    else
        cJSON_AddNullToObject(o, "pid");
}

static void drop_reply(rt_msg *m)
{
    rt_free(((term_msg_reply *)m)->json);
}

static void reply(rt_ctx *cx, rt_ref to, uint64_t corr, cJSON *o)
{
    char *p = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    term_msg_reply *r = RT_MSG_NEW(term_msg_reply, TERM_MSG_REPLY);
    r->corr = corr;
    r->json = rt_xstrdup(p ? p : "{}");
    cJSON_free(p);
    r->hdr.drop = drop_reply;
    rt_send(cx, to, &r->hdr);
}

static cJSON *status_error(const char *status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static cJSON *status_error(const char *status, const char *fmt, ...)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", status);
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    add_clean(o, "error", text, strlen(text));
    return o;
}

/* ================================================================ the process table */

static void new_id(const tp_state *st, char out[24])
{
    for (int attempt = 0; attempt < 8; attempt++) {
        unsigned char r[6];
        if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
            uint64_t x = rt_hash_u64((uint64_t)rt_reactor_now_ns() ^ st->next_id ^
                                     ((uint64_t)getpid() << 40) ^ (uint64_t)attempt);
            memcpy(r, &x, sizeof(r));
        }
        snprintf(out, 24, "proc_%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5]);
        bool taken = false;
        for (size_t i = 0; i < st->nprocs && !taken; i++)
            taken = strcmp(st->procs[i]->id, out) == 0;
        if (!taken)
            return;
    }
}

static void free_proc(tp_proc *p)
{
    if (p->job)
        p->job->owner = NULL; /* its EXIT will find no owner */
    rt_free(p->command);
    rt_free(p->cwd);
    rt_free(p->task_id);
    rt_free(p->session_key);
    rt_free(p->mask);
    term_target_free(p->target);
    rt_buf_fini(&p->out);
    rt_free(p);
}

static void remove_at(tp_state *st, size_t i)
{
    free_proc(st->procs[i]);
    memmove(&st->procs[i], &st->procs[i + 1], (st->nprocs - i - 1) * sizeof(st->procs[0]));
    st->nprocs--;
}

static void remove_proc(tp_state *st, tp_proc *p)
{
    for (size_t i = 0; i < st->nprocs; i++)
        if (st->procs[i] == p) {
            remove_at(st, i);
            return;
        }
}

/* Finished processes older than the TTL go; then the oldest finished while full. */
static void prune(tp_state *st)
{
    time_t now = time(NULL);
    for (size_t i = 0; i < st->nprocs;) {
        if (st->procs[i]->exited && now - st->procs[i]->started > TERM_PROCS_FINISHED_TTL_S)
            remove_at(st, i);
        else
            i++;
    }
    while (st->nprocs >= TERM_PROCS_MAX) {
        size_t oldest = st->nprocs;
        for (size_t i = 0; i < st->nprocs; i++)
            if (st->procs[i]->exited &&
                (oldest == st->nprocs || st->procs[i]->started < st->procs[oldest]->started))
                oldest = i;
        if (oldest == st->nprocs)
            return;
        remove_at(st, oldest);
    }
}

static tp_proc *find_proc(const tp_state *st, const char *id, const char *session_key)
{
    for (size_t i = 0; id && i < st->nprocs; i++)
        if (strcmp(st->procs[i]->id, id) == 0 && same_key(st->procs[i]->session_key, session_key))
            return st->procs[i];
    return NULL;
}

static tp_proc *find_seq(const tp_state *st, uint64_t seq)
{
    for (size_t i = 0; i < st->nprocs; i++)
        if (st->procs[i]->seq == seq)
            return st->procs[i];
    return NULL;
}

/* ================================================================ output */

static void feed(tp_proc *p, const char *d, size_t n)
{
    if (!n)
        return;
    if (rt_buf_append(&p->out, d, n) != 0)
        return; /* cannot happen: the window is trimmed far below OUT_BUF_MAX */
    p->out_chars += term_utf8_count(d, n);
    while (p->clean_start) {
        const char *nl = memchr(p->out.data, '\n', p->out.len);
        if (!nl) {
            p->clean_start = p->out.len <= 4096; /* a first line that long is no noise */
            break;
        }
        size_t len = (size_t)(nl - p->out.data);
        if (!term_noise_line(p->out.data, len)) {
            p->clean_start = false;
            break;
        }
        p->out_chars -= term_utf8_count(p->out.data, len + 1);
        rt_buf_consume(&p->out, len + 1);
    }
    if (p->out_chars > TERM_PROCS_BUFFER_CHARS) {
        size_t excess = p->out_chars - TERM_PROCS_BUFFER_CHARS;
        rt_buf_consume(&p->out, term_utf8_prefix(p->out.data, p->out.len, excess));
        p->out_chars = term_utf8_count(p->out.data, p->out.len);
    }
}

static void drop_spawned(rt_msg *m)
{
    rt_free(((term_msg_spawned *)m)->error);
}

static void answer_spawn(rt_ctx *cx, tp_proc *p, const char *error)
{
    if (!p->spawn_reply)
        return;
    term_msg_spawned *r = RT_MSG_NEW(term_msg_spawned, TERM_MSG_SPAWNED);
    if (error) {
        r->error = rt_xstrdup(error);
    } else {
        rt_strlcpy(r->session_id, p->id, sizeof(r->session_id));
        r->pid = p->pid;
    }
    r->hdr.drop = drop_spawned;
    rt_send(cx, p->spawn_reply, &r->hdr);
    p->spawn_reply = 0;
    if (p->spawn_timer)
        rt_timer_cancel(cx, p->spawn_timer);
    p->spawn_timer = 0;
}

static void feed_sink(void *arg, const char *d, size_t n)
{
    feed(arg, d, n);
}

static void bg_output(rt_ctx *cx, tp_proc *p, const rt_proc_msg_output *o)
{
    bool had = p->mk.done;
    term_marker_feed(&p->mk, o->data, o->len, feed_sink, p);
    if (!had && p->mk.done) {
        if (p->mk.pid)
            p->pid = p->mk.pid;
        answer_spawn(cx, p, NULL);
    }
}

/* ================================================================ waits */

static cJSON *wait_result(const tp_proc *p, const char *status, size_t chars, const char *note)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", status);
    if (strcmp(status, "exited") == 0)
        cJSON_AddNumberToObject(o, "exit_code", p->exit_code);
    char *t = tail_text(p, chars);
    cJSON_AddStringToObject(o, "output", t);
    rt_free(t);
    if (note)
        cJSON_AddStringToObject(o, "timeout_note", note);
    return o;
}

static void remove_wait(tp_state *st, size_t i)
{
    rt_free(st->waits[i].note);
    memmove(&st->waits[i], &st->waits[i + 1], (st->nwaits - i - 1) * sizeof(st->waits[0]));
    st->nwaits--;
}

/* p ended (or was killed): every wait on it is answered. */
static void wake_waiters(rt_ctx *cx, tp_state *st, const tp_proc *p)
{
    for (size_t i = 0; i < st->nwaits;) {
        tp_waiter *w = &st->waits[i];
        if (strcmp(w->proc, p->id) != 0) {
            i++;
            continue;
        }
        rt_timer_cancel(cx, w->timer);
        reply(cx, w->reply_to, w->corr, wait_result(p, "exited", 2000, w->note));
        remove_wait(st, i);
    }
}

static void on_wait_timer(rt_ctx *cx, tp_state *st, uint64_t id)
{
    for (size_t i = 0; i < st->nwaits; i++) {
        tp_waiter *w = &st->waits[i];
        if (w->id != id)
            continue;
        const tp_proc *p = NULL;
        for (size_t k = 0; k < st->nprocs && !p; k++)
            if (strcmp(st->procs[k]->id, w->proc) == 0)
                p = st->procs[k];
        char note[128];
        if (!w->note)
            snprintf(note, sizeof(note), "Waited %llds, process still running",
                     (long long)w->effective_s);
        if (p) {
            reply(cx, w->reply_to, w->corr,
                  wait_result(p, "timeout", 1000, w->note ? w->note : note));
        } else {
            reply(cx, w->reply_to, w->corr,
                  status_error("not_found", "No process with ID %s", w->proc));
        }
        remove_wait(st, i);
        return;
    }
}

static void act_wait(rt_ctx *cx, tp_state *st, term_msg_req *m, tp_proc *p)
{
    int64_t max = m->max_timeout_s > 0 ? m->max_timeout_s : 180;
    int64_t eff = m->timeout_s > 0 ? m->timeout_s : max;
    char *note = NULL;
    if (m->timeout_s > max) {
        eff = max;
        note = rt_xasprintf("Requested wait of %llds was clamped to configured limit of %llds",
                            (long long)m->timeout_s, (long long)max);
    }
    if (p->exited) {
        reply(cx, m->reply_to, m->corr, wait_result(p, "exited", 2000, note));
        rt_free(note);
        return;
    }
    if (st->nwaits == st->capwaits) {
        st->capwaits = st->capwaits ? st->capwaits * 2 : 8;
        st->waits = rt_xrealloc(st->waits, st->capwaits * sizeof(st->waits[0]));
    }
    tp_waiter *w = &st->waits[st->nwaits++];
    memset(w, 0, sizeof(*w));
    w->id = ++st->next_id;
    rt_strlcpy(w->proc, p->id, sizeof(w->proc));
    w->reply_to = m->reply_to;
    w->corr = m->corr;
    w->effective_s = eff;
    w->note = note;
    w->timer = rt_send_after(cx, rt_self(cx), rt_timeout_new(TP_TAG_WAIT | w->id), eff * 1000);
}

static void act_wait_cancel(rt_ctx *cx, tp_state *st, const term_msg_req *m)
{
    for (size_t i = 0; i < st->nwaits; i++) {
        tp_waiter *w = &st->waits[i];
        if (w->reply_to != m->reply_to || w->corr != m->corr)
            continue;
        rt_timer_cancel(cx, w->timer);
        const tp_proc *p = find_proc(st, w->proc, m->session_key);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "interrupted");
        char *t = p ? tail_text(p, 1000) : rt_xstrdup("");
        cJSON_AddStringToObject(o, "output", t);
        rt_free(t);
        cJSON_AddStringToObject(o, "note", "User sent a new message -- wait interrupted");
        if (w->note)
            cJSON_AddStringToObject(o, "timeout_note", w->note);
        reply(cx, w->reply_to, w->corr, o);
        remove_wait(st, i);
        return;
    }
}

/* ================================================================ actions */

static void fmt_local_time(time_t t, char *out, size_t n)
{
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
}

static cJSON *list_entry(const tp_proc *p, time_t now)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "session_id", p->id);
    add_clean(e, "command", p->command, term_utf8_prefix(p->command, strlen(p->command), 200));
    add_clean(e, "cwd", p->cwd, p->cwd ? strlen(p->cwd) : 0);
    add_pid(e, p->pid);
    char ts[32];
    fmt_local_time(p->started, ts, sizeof(ts));
    cJSON_AddStringToObject(e, "started_at", ts);
    cJSON_AddNumberToObject(e, "uptime_seconds", (double)(now - p->started));
    cJSON_AddStringToObject(e, "status", p->exited ? "exited" : "running");
    char *t = tail_text(p, 200);
    cJSON_AddStringToObject(e, "output_preview", t);
    rt_free(t);
    if (p->exited)
        cJSON_AddNumberToObject(e, "exit_code", p->exit_code);
    return e;
}

static cJSON *act_list(const tp_state *st, const term_msg_req *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "processes");
    time_t now = time(NULL);
    for (size_t i = 0; i < st->nprocs; i++)
        if (same_key(st->procs[i]->session_key, m->session_key))
            cJSON_AddItemToArray(arr, list_entry(st->procs[i], now));
    return o;
}

static cJSON *act_poll(const tp_proc *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "session_id", p->id);
    add_clean(o, "command", p->command, strlen(p->command));
    cJSON_AddStringToObject(o, "status", p->exited ? "exited" : "running");
    add_pid(o, p->pid);
    cJSON_AddNumberToObject(o, "uptime_seconds", (double)(time(NULL) - p->started));
    char *t = tail_text(p, 1000);
    cJSON_AddStringToObject(o, "output_preview", t);
    rt_free(t);
    if (p->exited)
        cJSON_AddNumberToObject(o, "exit_code", p->exit_code);
    return o;
}

/* Python's str.splitlines() boundaries that ASCII output uses. */
static size_t line_break(const char *s, size_t n, size_t i)
{
    if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
        return 2;
    return (s[i] == '\n' || s[i] == '\r' || s[i] == '\v' || s[i] == '\f' ||
            (s[i] >= 0x1c && s[i] <= 0x1e))
               ? 1
               : 0;
}

/* Python slice bounds for [start:stop] over n items. */
static int64_t py_index(int64_t i, int64_t n)
{
    if (i < 0)
        i += n;
    return i < 0 ? 0 : i > n ? n : i;
}

static cJSON *act_log(const tp_proc *p, int64_t offset, int64_t limit)
{
    char *all = term_utf8_clean(rt_buf_cstr(&p->out), p->out.len, NULL);
    size_t n = strlen(all);
    /* Line starts and ends, as splitlines() sees them. */
    size_t cap = 64, nl = 0;
    size_t(*lines)[2] = rt_xmalloc(cap * sizeof(*lines));
    for (size_t i = 0, start = 0; i < n;) {
        size_t k = line_break(all, n, i);
        if (!k && i + 1 < n) {
            i++;
            continue;
        }
        size_t end = k ? i : n;
        if (nl == cap) {
            cap *= 2;
            lines = rt_xrealloc(lines, cap * sizeof(*lines));
        }
        lines[nl][0] = start;
        lines[nl][1] = end;
        nl++;
        i = k ? i + k : n;
        start = i;
    }
    int64_t a, b;
    if (offset == 0 && limit > 0) {
        a = py_index(-limit, (int64_t)nl);
        b = (int64_t)nl;
    } else {
        a = py_index(offset, (int64_t)nl);
        b = py_index(offset + limit, (int64_t)nl);
    }
    rt_buf sel;
    rt_buf_init(&sel, n + 1);
    for (int64_t i = a; i < b; i++) {
        if (i > a)
            (void)rt_buf_append(&sel, "\n", 1);
        (void)rt_buf_append(&sel, all + lines[i][0], lines[i][1] - lines[i][0]);
    }
    char *masked = term_mask_secret(rt_buf_cstr(&sel), p->mask);
    char *red = redact_secrets(masked);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "session_id", p->id);
    cJSON_AddStringToObject(o, "status", p->exited ? "exited" : "running");
    cJSON_AddStringToObject(o, "output", red);
    cJSON_AddNumberToObject(o, "total_lines", (double)nl);
    char showing[48];
    snprintf(showing, sizeof(showing), "%lld lines", (long long)(b > a ? b - a : 0));
    cJSON_AddStringToObject(o, "showing", showing);
    rt_free(red);
    rt_free(masked);
    rt_buf_fini(&sel);
    rt_free(lines);
    rt_free(all);
    return o;
}

static void remote_kill(rt_ctx *cx, tp_state *st, const tp_proc *p)
{
    char *cmd = term_remote_kill_command(p->pid);
    tp__fire(cx, st, term_exec_argv(p->target, "/", cmd, false, false), 15000);
    rt_free(cmd);
}

static cJSON *act_kill(rt_ctx *cx, tp_state *st, tp_proc *p)
{
    if (p->exited) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "already_exited");
        cJSON_AddNumberToObject(o, "exit_code", p->exit_code);
        return o;
    }
    if (p->target->backend != TERM_BE_LOCAL && p->pid > 0)
        remote_kill(cx, st, p);
    rt_proc_interrupt(cx, p->rid);
    p->exited = true;
    p->exit_code = -15; /* SIGTERM, as the original records it */
    p->stdin_ok = false;
    wake_waiters(cx, st, p);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "killed");
    cJSON_AddStringToObject(o, "session_id", p->id);
    return o;
}

static cJSON *act_write(rt_ctx *cx, tp_proc *p, const char *data, bool newline)
{
    if (p->exited)
        return status_error("already_exited", "Process has already finished");
    char *d = rt_xasprintf("%s%s", data ? data : "", newline ? "\n" : "");
    size_t n = strlen(d);
    int err = p->stdin_ok && p->rid ? rt_proc_write(cx, p->rid, d, n) : -EPIPE;
    cJSON *o;
    if (err == 0) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "ok");
        cJSON_AddNumberToObject(o, "bytes_written", (double)term_utf8_count(d, n));
    } else if (err == -EAGAIN) {
        o = status_error("error", "%s",
                         "stdin is full: the process has not read what was sent yet; retry");
    } else if (err == -E2BIG) {
        o = status_error("error", "%s", "data too large (at most 1048576 bytes per write)");
    } else {
        o = status_error("error", "%s",
                         "Process stdin not available (non-local backend or stdin closed)");
    }
    rt_free(d);
    return o;
}

static void on_req(rt_ctx *cx, tp_state *st, term_msg_req *m)
{
    prune(st);
    if (m->action == TERM_ACT_WAIT_CANCEL) {
        act_wait_cancel(cx, st, m);
        return;
    }
    if (m->action == TERM_ACT_LIST) {
        reply(cx, m->reply_to, m->corr, act_list(st, m));
        return;
    }
    tp_proc *p = find_proc(st, m->session_id, m->session_key);
    if (!p) {
        reply(
            cx, m->reply_to, m->corr,
            status_error("not_found", "No process with ID %s", m->session_id ? m->session_id : ""));
        return;
    }
    cJSON *o = NULL;
    switch (m->action) {
    case TERM_ACT_POLL: o = act_poll(p); break;
    case TERM_ACT_LOG: o = act_log(p, m->offset, m->limit); break;
    case TERM_ACT_WAIT: act_wait(cx, st, m, p); return;
    case TERM_ACT_KILL: o = act_kill(cx, st, p); break;
    case TERM_ACT_WRITE: o = act_write(cx, p, m->data, false); break;
    case TERM_ACT_SUBMIT: o = act_write(cx, p, m->data, true); break;
    default: o = status_error("error", "unknown request"); break;
    }
    reply(cx, m->reply_to, m->corr, o);
}

/* ================================================================ spawning */

/* The environment plus PYTHONUNBUFFERED=1 (progress shows up in poll). */
static char **bg_env(void)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **v = rt_xcalloc(n + 2, sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "PYTHONUNBUFFERED=", 17) != 0)
            v[k++] = environ[i];
    v[k] = "PYTHONUNBUFFERED=1";
    return v;
}

static uint64_t bg_start(rt_ctx *cx, const tp_proc *p, const char *exec, bool pty)
{
    rt_proc_opts o = {
        .merge_stderr = true,
        .max_output = UNLIMITED,
        .reply_to = rt_self(cx),
    };
    uint64_t rid;
    if (p->target->backend == TERM_BE_LOCAL) {
        /* sh prints its pid, then becomes the user's shell (same pid, group, session). */
        char **sh = term_exec_argv(p->target, NULL, exec, false, false);
        const char *argv[] = {
            "/bin/sh", "-c", "echo \"" TERM_PID_MARKER "$$\"; exec \"$0\" -lic \"$1\"",
            sh[0],     exec, NULL};
        char **env = bg_env();
        o.argv = argv;
        o.env = (const char *const *)env;
        o.cwd = p->cwd;
        o.pty = pty;
        o.stdin_pipe = !pty;
        rid = rt_proc_spawn(cx, &o);
        rt_free(env);
        term_argv_free(sh);
    } else {
        char *q = term_shell_quote(exec);
        char *wrapper = rt_xasprintf("{ echo \"" TERM_PID_MARKER "$$\"; exec bash -c %s; }", q);
        char **argv = term_exec_argv(p->target, p->cwd, wrapper, true, false);
        o.argv = (const char *const *)argv;
        o.stdin_pipe = true;
        rid = rt_proc_spawn(cx, &o);
        term_argv_free(argv);
        rt_free(wrapper);
        rt_free(q);
    }
    return rid;
}

static void fail_spawn(rt_ctx *cx, rt_ref to, const char *why)
{
    term_msg_spawned *r = RT_MSG_NEW(term_msg_spawned, TERM_MSG_SPAWNED);
    r->error = rt_xstrdup(why);
    r->hdr.drop = drop_spawned;
    rt_send(cx, to, &r->hdr);
}

static void on_spawn(rt_ctx *cx, tp_state *st, term_msg_spawn *m)
{
    prune(st);
    if (st->nprocs >= TERM_PROCS_MAX) {
        fail_spawn(cx, m->reply_to,
                   "Too many background processes (64 tracked); kill or wait for some first");
        return;
    }
    tp_proc *p = rt_xcalloc(1, sizeof(*p));
    new_id(st, p->id);
    p->seq = ++st->next_id;
    p->command = m->command ? m->command : rt_xstrdup("");
    p->cwd = m->cwd;
    p->task_id = m->task_id ? m->task_id : rt_xstrdup("default");
    p->session_key = m->session_key;
    p->mask = m->mask;
    p->target = m->target;
    m->command = m->cwd = m->task_id = m->session_key = m->mask = NULL;
    m->target = NULL;
    p->started = time(NULL);
    p->clean_start = true;
    rt_buf_init(&p->out, OUT_BUF_MAX);
    p->rid = bg_start(cx, p, m->exec, m->pty);
    p->stdin_ok = true;
    if (!p->rid) {
        fail_spawn(cx, m->reply_to, "Failed to start background process: invalid command");
        free_proc(p);
        return;
    }
    p->job = tp__job_add(st, p->rid, TP_JOB_BG, p);
    p->spawn_reply = m->reply_to;
    p->spawn_timer =
        rt_send_after(cx, rt_self(cx), rt_timeout_new(TP_TAG_SPAWN | p->seq), SPAWN_REPLY_MS);
    st->procs[st->nprocs++] = p;
    RT_DEBUG("terminal", "background process %s started rid=%llu", p->id,
             (unsigned long long)p->rid);
}

static void bg_exit(rt_ctx *cx, tp_state *st, tp_proc *p, const rt_proc_msg_exit *e)
{
    p->rid = 0;
    p->job = NULL;
    p->stdin_ok = false;
    term_marker_flush(&p->mk, feed_sink, p);
    if (!p->pid && p->target->backend == TERM_BE_LOCAL)
        p->pid = e->pid;
    if (p->spawn_reply && e->err) {
        char why[512];
        if (e->err == -ENOENT)
            snprintf(why, sizeof(why),
                     "Failed to start background process: No such file or directory: '%s'",
                     p->target->backend == TERM_BE_LOCAL && p->cwd ? p->cwd : p->target->exe);
        else
            snprintf(why, sizeof(why), "Failed to start background process: %s (cwd '%s')",
                     rt_strerror(e->err), p->cwd ? p->cwd : ".");
        answer_spawn(cx, p, why);
        remove_proc(st, p);
        return;
    }
    answer_spawn(cx, p, NULL);
    if (!p->exited) {
        p->exited = true;
        p->exit_code = e->err ? -1 : e->exit_code >= 0 ? e->exit_code : -e->term_signal;
    }
    wake_waiters(cx, st, p);
}

/* ================================================================ the actor */

static void on_proc_msg(rt_ctx *cx, tp_state *st, rt_msg *m)
{
    bool is_exit = m->type == RT_PROC_MSG_EXIT;
    uint64_t rid = is_exit ? ((rt_proc_msg_exit *)m)->id : ((rt_proc_msg_output *)m)->id;
    tp_job *j = rt_map_get(&st->jobs, rid);
    if (!j)
        return;
    if (j->owner && j->kind == TP_JOB_BG) {
        if (is_exit)
            bg_exit(cx, st, j->owner, (rt_proc_msg_exit *)m);
        else
            bg_output(cx, j->owner, (rt_proc_msg_output *)m);
    } else if (j->owner && j->kind == TP_JOB_SBX) {
        if (is_exit)
            tp__sbx_exit(cx, st, j->owner, m);
        else
            tp__sbx_output(j->owner, m);
    }
    if (is_exit) {
        rt_map_del(&st->jobs, rid);
        rt_free(j);
    }
}

static void on_timeout(rt_ctx *cx, tp_state *st, const rt_msg_timeout *t)
{
    uint64_t id = t->tag & ~TP_TAG_MASK;
    switch (t->tag & TP_TAG_MASK) {
    case TP_TAG_WAIT: on_wait_timer(cx, st, id); break;
    case TP_TAG_SPAWN: {
        tp_proc *p = find_seq(st, id);
        if (p && p->spawn_reply) {
            p->spawn_timer = 0; /* it fired */
            answer_spawn(cx, p, NULL);
        }
        break;
    }
    case TP_TAG_SWEEP:
        st->sweep_armed = false;
        prune(st);
        if (tp__sbx_sweep(cx, st))
            tp__arm_sweep(cx, st);
        break;
    default: break;
    }
}

static void procs_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    tp_state *st = state;
    switch (m->type) {
    case TERM_MSG_SPAWN: on_spawn(cx, st, (term_msg_spawn *)m); break;
    case TERM_MSG_REQ: on_req(cx, st, (term_msg_req *)m); break;
    case TERM_MSG_SANDBOX: tp__sbx_request(cx, st, (term_msg_sandbox *)m); break;
    case RT_PROC_MSG_OUTPUT:
    case RT_PROC_MSG_EXIT: on_proc_msg(cx, st, m); break;
    case RT_MSG_TIMEOUT: on_timeout(cx, st, (rt_msg_timeout *)m); break;
    case RT_MSG_DOWN: tp__sbx_down(st, ((rt_msg_down *)m)->ref); break;
    case RT_MSG_INTERRUPT:
    case RT_MSG_STOP: break;
    default: RT_WARN_ONCE("terminal", "procs: unexpected msg type %#x", m->type); break;
    }
}

static void procs_fini(void *state)
{
    tp_state *st = state;
    while (st->nprocs)
        remove_at(st, st->nprocs - 1);
    for (size_t i = 0; i < st->jobs.cap; i++)
        if (st->jobs.keys[i])
            rt_free(st->jobs.vals[i]);
    rt_map_fini(&st->jobs);
    while (st->nwaits)
        remove_wait(st, st->nwaits - 1);
    rt_free(st->waits);
    tp__sbx_free_all(st);
}

static const rt_actor_type procs_type = {"procs", procs_behave, procs_fini, sizeof(tp_state)};

int term_procs_start(rt_ctx *cx)
{
    if (rt_whereis(cx, TERM_PROCS_NAME))
        return 0;
    rt_spawn_opts o = {.name = TERM_PROCS_NAME};
    /* 0 means someone registered the name first: the registry runs either way. */
    (void)rt_spawn(cx, &procs_type, NULL, &o);
    return 0;
}

rt_ref term_procs_ref(rt_ctx *cx)
{
    rt_ref r = rt_whereis(cx, TERM_PROCS_NAME);
    if (!r) {
        (void)term_procs_start(cx);
        r = rt_whereis(cx, TERM_PROCS_NAME);
    }
    return r;
}

/* ================================================================ requests */

static void drop_spawn(rt_msg *m)
{
    term_msg_spawn *s = (term_msg_spawn *)m;
    rt_free(s->command);
    rt_free(s->exec);
    rt_free(s->cwd);
    rt_free(s->task_id);
    rt_free(s->session_key);
    rt_free(s->mask);
    term_target_free(s->target);
}

term_msg_spawn *term_spawn_new(void)
{
    term_msg_spawn *m = RT_MSG_NEW(term_msg_spawn, TERM_MSG_SPAWN);
    m->hdr.drop = drop_spawn;
    return m;
}

static void drop_req(rt_msg *m)
{
    term_msg_req *r = (term_msg_req *)m;
    rt_free(r->session_id);
    rt_free(r->data);
    rt_free(r->session_key);
}

term_msg_req *term_req_new(int action)
{
    term_msg_req *m = RT_MSG_NEW(term_msg_req, TERM_MSG_REQ);
    m->action = action;
    m->hdr.drop = drop_req;
    return m;
}

static void drop_sandbox(rt_msg *m)
{
    term_msg_sandbox *s = (term_msg_sandbox *)m;
    rt_free(s->task_id);
    term_config_free(s->config);
}

term_msg_sandbox *term_sandbox_new(void)
{
    term_msg_sandbox *m = RT_MSG_NEW(term_msg_sandbox, TERM_MSG_SANDBOX);
    m->hdr.drop = drop_sandbox;
    return m;
}
