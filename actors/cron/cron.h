/*
 * cron — the scheduler actor: runs due cron jobs (gateway.md §6.4) and delivers their
 * output through the gateway (§6.5).
 *
 * Every tick (60 s by default, or a CRON_MSG_TICK) it takes a non-blocking exclusive flock on
 * ~/.hermes/cron/.tick.lock — held by another process or tick, the tick is skipped — and runs
 * the due jobs one after another. For each: a recurring job's next_run_at is moved on first
 * (a crash cannot make it fire twice); its optional pre-run script runs (python3, in
 * ~/.hermes/scripts/, timeout cron.script_timeout_seconds); a fresh isolated session is
 * spawned through the spawn callback (platform "cron", session id
 * cron_<job>_<YYYYmmdd_HHMMSS>) and given the prompt (cron hint, script block, skills,
 * prompt); its answer — or a failure, or the inactivity limit HERMES_CRON_TIMEOUT (600 s)
 * being hit — is written to cron/output/<job>/<ts>.md, delivered (wrapped as "Cronjob
 * Response: <name> …" unless cron.wrap_response is false; "[SILENT]" answers are not
 * delivered) with GW_MSG_DELIVER to the job's target, and recorded in jobs.json
 * (last_run_at, last_status, last_error, last_delivery_error, repeat counts; a job that has
 * run its count is deleted, a one-shot that has run is disabled).
 *
 * What the spawn callback is asked for (gw_session_req): session_id and session_key
 * "cron_<job>_<ts>", platform "cron", model = the job's model or NULL, no history, no resume,
 * no streaming. Such a session should have every toolset but cronjob, messaging and
 * clarify, no memory and no context files, and a non-interactive tool environment:
 * cron_host_spawn (arg: the hm_host) is that callback for a Hermes process.
 *
 * The actor is detached (its own thread): the job store blocks on files and flocks. Stopping
 * it (rt_stop) stops a running job's session and script and releases the tick lock.
 *
 * Threads: cron_start and the constructors from any thread.
 */
#ifndef CRON_H
#define CRON_H

#include "gw.h"
#include "rt_actor.h"

#include <stddef.h>
#include <stdint.h>

#define CRON_NAME "hermes.cron" /* the cron actor's registered name */

enum {
    CRON_MSG_TICK = RT_MSG_TYPE(RT_MSG_MODULE_CRON, 1),   /* cron_msg_tick: tick now */
    CRON_MSG_TICKED = RT_MSG_TYPE(RT_MSG_MODULE_CRON, 2), /* cron_msg_ticked: its result */
};

typedef struct cron_msg_tick {
    rt_msg hdr;
    rt_ref reply_to; /* gets CRON_MSG_TICKED when the tick is over, or 0 */
    uint64_t tag;
} cron_msg_tick;

typedef struct cron_msg_ticked {
    rt_msg hdr;
    uint64_t tag;
    int ran; /* jobs run by this tick; -1 when it was skipped */
    int err; /* 0; -EWOULDBLOCK another tick holds .tick.lock; -EBUSY this actor was
                already ticking; another -errno: the job store failed */
    char errmsg[256];
} cron_msg_ticked;

/* A tick request (reply_to may be 0). Any thread. */
rt_msg *cron_tick_new(rt_ref reply_to, uint64_t tag);

typedef struct hm_config hm_config;

typedef struct cron_opts {
    const char *home;  /* HERMES_HOME (required) */
    hm_config *cfg;    /* referenced; NULL: defaults and the environment */
    gw_spawn_fn spawn; /* required: a session for one run */
    void *spawn_arg;
    int64_t tick_ms;            /* 0: 60000 */
    rt_ref gateway;             /* where GW_MSG_DELIVER goes; 0: the actor named GW_NAME */
    rt_ref store;               /* ends each run's session ("cron_complete"); 0: none */
    int64_t job_timeout_ms;     /* inactivity limit; 0: HERMES_CRON_TIMEOUT (600 s); < 0: none */
    int64_t deliver_timeout_ms; /* 0: 60 s */
} cron_opts;

/*
 * Start the cron actor (registered as CRON_NAME, detached) with its periodic tick; the first
 * tick comes min(tick_ms, 5 s) after the start (adapters connect first), then every
 * tick_ms. 0, or -errno with err filled (-EINVAL: home or spawn missing; -EEXIST: one is
 * already running). Any thread. Stop it with rt_stop(ref) before the gateway goes away.
 */
int cron_start(rt_ctx *cx, const cron_opts *o, rt_ref *out, char *err, size_t errlen);

/*
 * The spawn callback for cron_opts in a Hermes process (arg: the hm_host): an agent session
 * for one run as the original's run_job has it — every toolset but cronjob, messaging and
 * clarify (and memory, which such a run does not have), no memory and no context files, platform
 * "cron", non-interactive (approvals are denied by the cron actor), the job's model override if
 * any. Returns 0 on failure. Any worker.
 */
rt_ref cron_host_spawn(rt_ctx *cx, const gw_session_req *req, void *arg);

#endif /* CRON_H */
