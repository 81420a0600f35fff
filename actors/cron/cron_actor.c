/*
 * cron_actor — the scheduler actor (see cron.h). One tick at a time, one job at a time:
 *
 *   IDLE ──tick──► take .tick.lock, load due jobs ──► for each job:
 *        SCRIPT    the pre-run script (rt_proc) when the job has one
 *        RUNNING   a fresh session (spawn callback), AG_MSG_INPUT → one AG_MSG_DONE;
 *                  inactivity timer, DOWN monitor
 *        DELIVER   GW_MSG_DELIVER to each planned target until one succeeds
 *        → report file, mark_job_run ──► next job ──► release the lock, CRON_MSG_TICKED
 *
 * Late messages (a DONE after a timeout, a DELIVERED after its timer) carry an old job
 * sequence number and are ignored.
 *
 * Threads: one detached actor; it blocks only on the job store's files and flock.
 */
#include "cron.h"

#include "ag_session.h"
#include "cron_int.h"
#include "cron_jobs.h"
#include "cron_sched.h"
#include "hm_config.h"
#include "redact.h"
#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_proc.h"
#include "rt_sched.h"
#include "rt_timer.h"
#include "rt_util.h"
#include "st_store.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TICK_DEFAULT_MS    60000
#define FIRST_TICK_MAX_MS  5000 /* adapters connect first */
#define JOB_TIMEOUT_S      600
#define DELIVER_DEFAULT_MS 60000
#define SCRIPT_TIMEOUT_S   120
#define SCRIPT_OUTPUT_MAX  ((size_t)1 << 20)
#define EMPTY_RESPONSE_TEXT                                                                        \
    "Agent completed but produced empty response (model error, timeout, or misconfiguration)"

enum { TAG_TICK = 1 };
enum { K_IDLE = 2, K_DELIVER = 3 };
enum { ST_IDLE = 0, ST_SCRIPT, ST_RUNNING, ST_DELIVER };

typedef struct cron_actor {
    /* settings, immutable after start */
    char *home;
    hm_config *cfg;
    gw_spawn_fn spawn;
    void *spawn_arg;
    int64_t tick_ms, job_timeout_ms, deliver_timeout_ms, script_timeout_s;
    rt_ref gateway, store;
    bool wrap;
    /* the tick */
    int state;
    bool ticking;
    int lock_fd;
    cJSON *due;
    int idx, ran;
    rt_ref tick_reply;
    uint64_t tick_tag;
    /* the job being run */
    uint64_t seq;
    const cJSON *job; /* borrowed from due */
    char *prompt;
    char *session_id;
    rt_ref session;
    uint64_t mon, idle_timer;
    int64_t last_activity_ns;
    char activity[160];
    uint64_t proc;
    char *script_path;
    rt_buf sout, serr;
    /* its result */
    bool ok;
    char *text;  /* the final response (ok) */
    char *error; /* "<Type>: <message>" (not ok) */
    /* its delivery */
    cron_plan plan;
    size_t target;
    char *deliver_text;
    char *delivery_error;
    uint64_t deliver_timer;
} cron_actor;

static void next_job(rt_ctx *cx, cron_actor *a);
static void start_session(rt_ctx *cx, cron_actor *a, bool has_script, bool script_ok,
                          const char *script_out);
static void finish_run(rt_ctx *cx, cron_actor *a);

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *job_name(const cJSON *job)
{
    const char *n = jstr(job, "name");
    return n ? n : jstr(job, "id") ? jstr(job, "id") : "";
}

static int64_t mono_ns(rt_ctx *cx)
{
    return rt_now_ns(rt_ctx_runtime(cx));
}

/* ================================================================ the tick */

static void reply_tick(rt_ctx *cx, rt_ref to, uint64_t tag, int ran, int err, const char *msg)
{
    if (!to)
        return;
    cron_msg_ticked *t = RT_MSG_NEW(cron_msg_ticked, CRON_MSG_TICKED);
    t->tag = tag;
    t->ran = ran;
    t->err = err;
    rt_strlcpy(t->errmsg, msg ? msg : "", sizeof(t->errmsg));
    rt_send(cx, to, &t->hdr);
}

static void release_lock(cron_actor *a)
{
    if (a->lock_fd >= 0) {
        (void)flock(a->lock_fd, LOCK_UN);
        close(a->lock_fd);
        a->lock_fd = -1;
    }
}

/* The non-blocking flock of the original's tick(): 0, or -EWOULDBLOCK / -errno. */
static int take_tick_lock(cron_actor *a, char *err, size_t errlen)
{
    char *dir = cron_path(a->home, NULL), *path = cron_path(a->home, ".tick.lock");
    (void)mkdir(a->home, 0700);
    (void)mkdir(dir, 0700);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600), r = 0;
    if (fd < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot open %s: %s", path, rt_strerror(r));
    } else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        r = errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
        snprintf(err, errlen, "Tick skipped \xe2\x80\x94 another instance holds the lock");
        close(fd);
    } else {
        a->lock_fd = fd;
    }
    rt_free(dir);
    rt_free(path);
    return r;
}

static void on_tick(rt_ctx *cx, cron_actor *a, rt_ref reply_to, uint64_t tag)
{
    char err[256] = "";
    if (a->ticking) {
        reply_tick(cx, reply_to, tag, -1, -EBUSY, "a tick is already running");
        return;
    }
    int r = take_tick_lock(a, err, sizeof(err));
    if (r) {
        RT_DEBUG("cron", "%s", err);
        reply_tick(cx, reply_to, tag, -1, r, err);
        return;
    }
    cJSON *due = NULL;
    r = cron_jobs_due(a->home, cron_now_us(), &due, err, sizeof(err));
    if (r || !cJSON_GetArraySize(due)) {
        if (r)
            RT_ERROR("cron", "tick: %s", err);
        cJSON_Delete(due);
        release_lock(a);
        reply_tick(cx, reply_to, tag, r ? -1 : 0, r, err);
        return;
    }
    RT_INFO("cron", "%d job(s) due", cJSON_GetArraySize(due));
    a->ticking = true;
    a->due = due;
    a->idx = 0;
    a->ran = 0;
    a->tick_reply = reply_to;
    a->tick_tag = tag;
    next_job(cx, a);
}

static void end_tick(rt_ctx *cx, cron_actor *a)
{
    release_lock(a);
    cJSON_Delete(a->due);
    a->due = NULL;
    a->ticking = false;
    a->state = ST_IDLE;
    reply_tick(cx, a->tick_reply, a->tick_tag, a->ran, 0, NULL);
    a->tick_reply = 0;
}

/* ============================================================= one job */

static void clear_job(cron_actor *a)
{
    rt_free(a->prompt);
    rt_free(a->session_id);
    rt_free(a->script_path);
    rt_free(a->text);
    rt_free(a->error);
    rt_free(a->deliver_text);
    rt_free(a->delivery_error);
    a->prompt = a->session_id = a->script_path = a->text = a->error = NULL;
    a->deliver_text = a->delivery_error = NULL;
    rt_buf_reset(&a->sout);
    rt_buf_reset(&a->serr);
    cron__plan_fini(&a->plan);
    a->session = 0;
    a->mon = a->idle_timer = a->deliver_timer = a->proc = 0;
    a->job = NULL;
    a->ok = false;
    a->target = 0;
}

static void fail_run(rt_ctx *cx, cron_actor *a, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_run(rt_ctx *cx, cron_actor *a, const char *fmt, ...)
{
    rt_buf b;
    rt_buf_init(&b, 1 << 16);
    va_list ap;
    va_start(ap, fmt);
    (void)rt_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    rt_free(a->error);
    a->error = rt_buf_steal(&b, NULL);
    a->ok = false;
    finish_run(cx, a);
}

static void start_script(rt_ctx *cx, cron_actor *a, const char *script)
{
    char *path = NULL, *why = NULL;
    if (cron__script_path(a->home, script, &path, &why) != 0) {
        start_session(cx, a, true, false, why);
        rt_free(why);
        return;
    }
    char *dir = rt_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    const char *argv[] = {"python3", path, NULL};
    rt_proc_opts po = {.argv = argv,
                       .cwd = dir,
                       .timeout_ms = a->script_timeout_s * 1000,
                       .max_output = SCRIPT_OUTPUT_MAX,
                       .reply_to = rt_self(cx),
                       .tag = a->seq};
    a->script_path = path;
    a->state = ST_SCRIPT;
    a->proc = rt_proc_spawn(cx, &po);
    rt_free(dir);
    if (!a->proc) {
        a->state = ST_IDLE;
        start_session(cx, a, true, false, "Script execution failed: could not start python3");
    }
}

static void next_job(rt_ctx *cx, cron_actor *a)
{
    clear_job(a);
    if (a->idx >= cJSON_GetArraySize(a->due)) {
        end_tick(cx, a);
        return;
    }
    a->job = cJSON_GetArrayItem(a->due, a->idx);
    a->seq++;
    char err[256];
    if (cron_job_advance(a->home, jstr(a->job, "id"), cron_now_us(), NULL, err, sizeof(err)))
        RT_WARN("cron", "job %s: %s", jstr(a->job, "id"), err);
    RT_INFO("cron", "Running job '%s' (ID: %s)", job_name(a->job), jstr(a->job, "id"));
    const char *script = jstr(a->job, "script");
    if (script && *script)
        start_script(cx, a, script);
    else
        start_session(cx, a, false, false, NULL);
}

/* ---------------------------------------------------------------- script */

static char *strip_redact(const rt_buf *b)
{
    const char *s = rt_buf_cstr(b);
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    char *t = rt_xstrndup(s, n), *r = redact_secrets(t);
    rt_free(t);
    return r;
}

static void on_proc_output(cron_actor *a, rt_proc_msg_output *o)
{
    if (a->state != ST_SCRIPT || o->id != a->proc)
        return;
    /* over the cap the rest is dropped: rt_proc already bounds each stream */
    (void)rt_buf_append(o->stream == RT_PROC_STDERR ? &a->serr : &a->sout, o->data, o->len);
}

static void on_proc_exit(rt_ctx *cx, cron_actor *a, rt_proc_msg_exit *e)
{
    if (a->state != ST_SCRIPT || e->id != a->proc)
        return;
    a->proc = 0;
    a->state = ST_IDLE;
    char *text;
    bool ok = false;
    if (e->timed_out) {
        text = rt_xasprintf("Script timed out after %llds: %s", (long long)a->script_timeout_s,
                            a->script_path);
    } else if (e->err) {
        text = rt_xasprintf("Script execution failed: %s", rt_strerror(e->err));
    } else {
        char *out = strip_redact(&a->sout), *err = strip_redact(&a->serr);
        text = cron__script_result(e->exit_code, e->term_signal, out, err, &ok);
        rt_free(out);
        rt_free(err);
    }
    start_session(cx, a, true, ok, text);
    rt_free(text);
}

/* --------------------------------------------------------------- session */

static void arm_idle(rt_ctx *cx, cron_actor *a, int64_t ms)
{
    a->idle_timer = rt_send_after(cx, rt_self(cx), rt_timeout_new((a->seq << 8) | K_IDLE), ms);
}

static void start_session(rt_ctx *cx, cron_actor *a, bool has_script, bool script_ok,
                          const char *script_out)
{
    const char *id = jstr(a->job, "id");
    a->prompt = cron__build_prompt(a->home, a->job, has_script, script_ok, script_out);
    time_t t = time(NULL);
    struct tm tm;
    char stamp[32];
    localtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%d_%H%M%S", &tm);
    a->session_id = rt_xasprintf("cron_%s_%s", id, stamp);
    gw_session_req req = {.session_id = a->session_id,
                          .session_key = a->session_id,
                          .platform = "cron",
                          .model = jstr(a->job, "model")};
    rt_ref s = a->spawn(cx, &req, a->spawn_arg);
    if (!s) {
        fail_run(cx, a, "RuntimeError: could not start a session for the job");
        return;
    }
    a->session = s;
    a->mon = rt_monitor(cx, s);
    a->state = ST_RUNNING;
    a->last_activity_ns = mono_ns(cx);
    snprintf(a->activity, sizeof(a->activity), "starting the agent");
    rt_send(cx, s, ag_input_new(a->prompt, rt_self(cx), a->seq));
    if (a->job_timeout_ms > 0)
        arm_idle(cx, a, a->job_timeout_ms);
}

/* The session is done with (answered, failed, timed out): stop it and end its record. */
static void drop_session(rt_ctx *cx, cron_actor *a)
{
    if (!a->session)
        return;
    if (a->mon)
        rt_demonitor(cx, a->session, a->mon);
    rt_timer_cancel(cx, a->idle_timer);
    rt_stop(cx, a->session, RT_EXIT_NORMAL);
    if (a->store)
        rt_send(cx, a->store, &st_end_session_new(a->session_id, "cron_complete")->hdr);
    a->session = 0;
    a->mon = a->idle_timer = 0;
}

static void on_done(rt_ctx *cx, cron_actor *a, ag_msg_done *d)
{
    if (a->state != ST_RUNNING || d->input_id != a->seq)
        return;
    drop_session(cx, a);
    if (d->err || d->interrupted) {
        fail_run(cx, a, "RuntimeError: %s",
                 d->errmsg        ? d->errmsg
                 : d->interrupted ? "the run was interrupted"
                                  : rt_strerror(d->err));
        return;
    }
    a->ok = true;
    a->text = d->text;
    d->text = NULL;
    finish_run(cx, a);
}

static void on_activity(rt_ctx *cx, cron_actor *a, rt_msg *m)
{
    if (a->state != ST_RUNNING)
        return;
    a->last_activity_ns = mono_ns(cx);
    if (m->type == AG_MSG_PROGRESS)
        snprintf(a->activity, sizeof(a->activity), "tool call: %s",
                 ((ag_msg_progress *)m)->tool ? ((ag_msg_progress *)m)->tool : "?");
    else if (m->type == AG_MSG_STATUS)
        snprintf(a->activity, sizeof(a->activity), "%s",
                 ((ag_msg_status *)m)->text ? ((ag_msg_status *)m)->text : "status");
    else
        snprintf(a->activity, sizeof(a->activity), "receiving the model's reply");
}

/* Nobody can answer a cron run's questions: approvals are denied, the rest time out. */
static void on_ask(rt_ctx *cx, cron_actor *a, ag_msg_ask *q)
{
    if (a->state != ST_RUNNING || !a->session)
        return;
    a->last_activity_ns = mono_ns(cx);
    int answer = q->kind == TOOL_ASK_APPROVAL ? TOOL_ANSWER_DENY : TOOL_ANSWER_TIMEOUT;
    rt_send(cx, a->session, ag_answer_new(q->ask_id, answer, NULL));
}

static void on_idle_timer(rt_ctx *cx, cron_actor *a)
{
    if (a->state != ST_RUNNING)
        return;
    a->idle_timer = 0;
    int64_t idle_ms = (mono_ns(cx) - a->last_activity_ns) / 1000000;
    if (idle_ms < a->job_timeout_ms) {
        arm_idle(cx, a, a->job_timeout_ms - idle_ms);
        return;
    }
    RT_ERROR("cron", "Job '%s' idle for %llds (inactivity limit %llds) | last_activity=%s",
             job_name(a->job), (long long)(idle_ms / 1000), (long long)(a->job_timeout_ms / 1000),
             a->activity);
    drop_session(cx, a);
    fail_run(cx, a,
             "TimeoutError: Cron job '%s' idle for %llds (limit %llds) \xe2\x80\x94 last "
             "activity: %s",
             job_name(a->job), (long long)(idle_ms / 1000), (long long)(a->job_timeout_ms / 1000),
             a->activity);
}

static void on_down(rt_ctx *cx, cron_actor *a, rt_msg_down *d)
{
    if (a->state != ST_RUNNING || d->mon != a->mon)
        return;
    a->mon = 0;
    a->session = 0;
    rt_timer_cancel(cx, a->idle_timer);
    a->idle_timer = 0;
    fail_run(cx, a, "RuntimeError: the job's session ended before it answered (reason %d)",
             d->reason);
}

/* -------------------------------------------------------------- delivery */

static void mark_done(rt_ctx *cx, cron_actor *a)
{
    char err[256];
    int r = cron_job_mark_run(a->home, jstr(a->job, "id"), a->ok, a->error, a->delivery_error,
                              cron_now_us(), err, sizeof(err));
    if (r && r != -ENOENT)
        RT_ERROR("cron", "job %s: %s", jstr(a->job, "id"), err);
    a->ran++;
    a->state = ST_IDLE;
    a->idx++;
    next_job(cx, a);
}

static void deliver_next(rt_ctx *cx, cron_actor *a);

static void target_failed(rt_ctx *cx, cron_actor *a, int err, const char *errmsg)
{
    const cron_target *t = &a->plan.t[a->target];
    if (a->plan.fallback && a->target + 1 < a->plan.n && err != -ESRCH) {
        a->target++;
        deliver_next(cx, a);
        return;
    }
    a->delivery_error = cron__delivery_error(&a->plan, t, err, errmsg);
    RT_WARN("cron", "Job '%s': %s", jstr(a->job, "id"), a->delivery_error);
    mark_done(cx, a);
}

static void drop_deliver(rt_msg *m)
{
    gw_msg_deliver *d = (gw_msg_deliver *)m;
    rt_free(d->platform);
    rt_free(d->chat_id);
    rt_free(d->thread_id);
    rt_free(d->text);
}

static void deliver_next(rt_ctx *cx, cron_actor *a)
{
    const cron_target *t = &a->plan.t[a->target];
    rt_ref gw = a->gateway ? a->gateway : rt_whereis(cx, GW_NAME);
    if (!gw) {
        target_failed(cx, a, -ESRCH, NULL);
        return;
    }
    gw_msg_deliver *d = RT_MSG_NEW(gw_msg_deliver, GW_MSG_DELIVER);
    d->platform = rt_xstrdup(t->platform);
    d->chat_id = t->chat_id ? rt_xstrdup(t->chat_id) : NULL;
    d->thread_id = t->thread_id ? rt_xstrdup(t->thread_id) : NULL;
    d->text = rt_xstrdup(a->deliver_text);
    d->reply_to = rt_self(cx);
    d->tag = a->seq;
    d->hdr.drop = drop_deliver;
    a->state = ST_DELIVER;
    if (!rt_send(cx, gw, &d->hdr)) {
        target_failed(cx, a, -ESRCH, NULL);
        return;
    }
    a->deliver_timer = rt_send_after(cx, rt_self(cx), rt_timeout_new((a->seq << 8) | K_DELIVER),
                                     a->deliver_timeout_ms);
}

static void on_delivered(rt_ctx *cx, cron_actor *a, gw_msg_delivered *d)
{
    if (a->state != ST_DELIVER || d->tag != a->seq)
        return;
    rt_timer_cancel(cx, a->deliver_timer);
    a->deliver_timer = 0;
    if (d->err) {
        target_failed(cx, a, d->err, d->errmsg);
        return;
    }
    RT_INFO("cron", "Job '%s': delivered to %s:%s via live adapter", jstr(a->job, "id"),
            a->plan.t[a->target].platform, d->chat_id ? d->chat_id : "");
    mark_done(cx, a);
}

/* ----------------------------------------------------------- the result */

static bool is_silent(const char *text)
{
    for (const char *p = text; *p; p++)
        if (*p == '[' && strncasecmp(p, "[SILENT]", 8) == 0)
            return true;
    return false;
}

static bool is_blank(const char *s)
{
    for (; s && *s; s++)
        if (!isspace((unsigned char)*s))
            return false;
    return true;
}

static void finish_run(rt_ctx *cx, cron_actor *a)
{
    a->state = ST_IDLE;
    char *final = a->ok && a->text ? a->text : NULL;
    if (final && strcmp(final, "(No response generated)") == 0)
        final = NULL; /* a placeholder is no answer */
    int64_t now = cron_now_us();
    char *doc =
        cron__output_doc(a->job, a->prompt ? a->prompt : "", a->ok, a->ok ? final : a->error, now);
    char *path = NULL, err[512];
    if (cron_output_save(a->home, jstr(a->job, "id"), doc, now, &path, err, sizeof(err)))
        RT_ERROR("cron", "job %s: %s", jstr(a->job, "id"), err);
    else
        RT_INFO("cron", "Output saved to: %s", path);
    rt_free(path);
    rt_free(doc);
    char *content = a->ok ? rt_xstrdup(final ? final : "")
                          : rt_xasprintf("\xe2\x9a\xa0\xef\xb8\x8f Cron job '%s' failed:\n%s",
                                         job_name(a->job), a->error ? a->error : "");
    bool deliver = !is_blank(content) && !(a->ok && is_silent(content));
    if (a->ok && !final) {
        a->ok = false; /* an empty answer is a soft failure, and nothing is delivered */
        rt_free(a->error);
        a->error = rt_xstrdup(EMPTY_RESPONSE_TEXT);
    }
    if (deliver) {
        cron__plan(a->home, a->job, &a->plan);
        if (a->plan.error) {
            a->delivery_error = rt_xstrdup(a->plan.error);
            RT_WARN("cron", "Job '%s': %s", jstr(a->job, "id"), a->plan.error);
        } else if (!a->plan.local && a->plan.n) {
            a->deliver_text = a->wrap ? cron__wrap(a->job, content) : rt_xstrdup(content);
            rt_free(content);
            /* the original strips the text it sends */
            char *s = a->deliver_text;
            size_t lead = strspn(s, " \t\r\n"), n = strlen(s);
            while (n > lead && isspace((unsigned char)s[n - 1]))
                n--;
            memmove(s, s + lead, n - lead);
            s[n - lead] = '\0';
            a->target = 0;
            deliver_next(cx, a);
            return;
        }
    } else if (a->ok) {
        RT_INFO("cron", "Job '%s': agent returned [SILENT] \xe2\x80\x94 skipping delivery",
                jstr(a->job, "id"));
    }
    rt_free(content);
    mark_done(cx, a);
}

/* ================================================================ actor */

static void on_timeout(rt_ctx *cx, cron_actor *a, rt_msg_timeout *t)
{
    if (t->tag == TAG_TICK) {
        rt_send_after(cx, rt_self(cx), rt_timeout_new(TAG_TICK), a->tick_ms);
        on_tick(cx, a, 0, 0);
        return;
    }
    if ((t->tag >> 8) != a->seq)
        return; /* a timer of an earlier job */
    if ((t->tag & 0xFF) == K_IDLE)
        on_idle_timer(cx, a);
    else if ((t->tag & 0xFF) == K_DELIVER && a->state == ST_DELIVER) {
        a->deliver_timer = 0;
        target_failed(cx, a, -ETIMEDOUT, NULL);
    }
}

static void on_stop(rt_ctx *cx, cron_actor *a)
{
    if (a->session) {
        if (a->mon)
            rt_demonitor(cx, a->session, a->mon);
        rt_stop(cx, a->session, RT_EXIT_STOPPED);
        if (a->store)
            rt_send(cx, a->store, &st_end_session_new(a->session_id, "cron_complete")->hdr);
        a->session = 0;
    }
    if (a->proc)
        rt_proc_kill(cx, a->proc);
    release_lock(a);
}

static void cron_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    cron_actor *a = *(cron_actor **)state;
    switch (m->type) {
    case CRON_MSG_TICK:
        on_tick(cx, a, ((cron_msg_tick *)m)->reply_to, ((cron_msg_tick *)m)->tag);
        break;
    case RT_MSG_TIMEOUT: on_timeout(cx, a, (rt_msg_timeout *)m); break;
    case AG_MSG_DONE: on_done(cx, a, (ag_msg_done *)m); break;
    case AG_MSG_DELTA:
    case AG_MSG_PROGRESS:
    case AG_MSG_STATUS: on_activity(cx, a, m); break;
    case AG_MSG_ASK: on_ask(cx, a, (ag_msg_ask *)m); break;
    case RT_MSG_DOWN: on_down(cx, a, (rt_msg_down *)m); break;
    case GW_MSG_DELIVERED: on_delivered(cx, a, (gw_msg_delivered *)m); break;
    case RT_PROC_MSG_OUTPUT: on_proc_output(a, (rt_proc_msg_output *)m); break;
    case RT_PROC_MSG_EXIT: on_proc_exit(cx, a, (rt_proc_msg_exit *)m); break;
    case RT_MSG_STOP: on_stop(cx, a); break;
    default: break; /* late control replies and the like */
    }
}

static void cron_fini(void *state)
{
    cron_actor *a = *(cron_actor **)state;
    release_lock(a);
    clear_job(a);
    rt_buf_fini(&a->sout);
    rt_buf_fini(&a->serr);
    cJSON_Delete(a->due);
    hm_config_unref(a->cfg);
    rt_free(a->home);
    rt_free(a);
}

static const rt_actor_type cron_type = {"cron", cron_behave, cron_fini, sizeof(cron_actor *)};

static void drop_tick(rt_msg *m)
{
    (void)m;
}

rt_msg *cron_tick_new(rt_ref reply_to, uint64_t tag)
{
    cron_msg_tick *t = RT_MSG_NEW(cron_msg_tick, CRON_MSG_TICK);
    t->reply_to = reply_to;
    t->tag = tag;
    t->hdr.drop = drop_tick;
    return &t->hdr;
}

/* HERMES_CRON_TIMEOUT (seconds, may be fractional; 0: none), else 600 s. */
static int64_t job_timeout_from(const hm_config *cfg)
{
    const char *v =
        cfg ? hm_config_getenv(cfg, "HERMES_CRON_TIMEOUT", NULL) : getenv("HERMES_CRON_TIMEOUT");
    if (!v || !*v)
        return JOB_TIMEOUT_S * 1000;
    char *end = NULL;
    double s = strtod(v, &end);
    if (end == v || s != s) {
        RT_WARN("cron", "HERMES_CRON_TIMEOUT=%s is not a number: using %d s", v, JOB_TIMEOUT_S);
        return JOB_TIMEOUT_S * 1000;
    }
    return s > 0 ? (int64_t)(s * 1000) : -1;
}

int cron_start(rt_ctx *cx, const cron_opts *o, rt_ref *out, char *err, size_t errlen)
{
    if (!o || !o->home || !o->spawn) {
        snprintf(err, errlen, "cron: home and spawn are required");
        return -EINVAL;
    }
    cron_actor *a = rt_xcalloc(1, sizeof(*a));
    a->home = rt_xstrdup(o->home);
    a->cfg = o->cfg ? hm_config_ref(o->cfg) : NULL;
    a->spawn = o->spawn;
    a->spawn_arg = o->spawn_arg;
    a->tick_ms = o->tick_ms > 0 ? o->tick_ms : TICK_DEFAULT_MS;
    a->job_timeout_ms = o->job_timeout_ms ? o->job_timeout_ms : job_timeout_from(o->cfg);
    a->deliver_timeout_ms = o->deliver_timeout_ms > 0 ? o->deliver_timeout_ms : DELIVER_DEFAULT_MS;
    a->script_timeout_s =
        o->cfg ? hm_config_env_int(o->cfg, "cron.script_timeout_seconds", NULL) : SCRIPT_TIMEOUT_S;
    if (a->script_timeout_s <= 0)
        a->script_timeout_s = SCRIPT_TIMEOUT_S;
    a->wrap = o->cfg ? hm_config_bool(o->cfg, "cron.wrap_response") : true;
    a->gateway = o->gateway;
    a->store = o->store;
    a->lock_fd = -1;
    rt_buf_init(&a->sout, SCRIPT_OUTPUT_MAX);
    rt_buf_init(&a->serr, SCRIPT_OUTPUT_MAX);
    int64_t tick_ms = a->tick_ms; /* a belongs to the actor once it is spawned */
    rt_spawn_opts so = {.flags = RT_SPAWN_DETACHED, .name = CRON_NAME};
    rt_ref ref = rt_spawn(cx, &cron_type, &a, &so);
    if (!ref) {
        snprintf(err, errlen, "cron: a scheduler is already running (%s)", CRON_NAME);
        return -EEXIST; /* fini freed a */
    }
    int64_t first = tick_ms < FIRST_TICK_MAX_MS ? tick_ms : FIRST_TICK_MAX_MS;
    rt_send_after(cx, ref, rt_timeout_new(TAG_TICK), first);
    RT_INFO("cron", "Cron ticker started (interval=%llds)", (long long)(tick_ms / 1000));
    *out = ref;
    return 0;
}
