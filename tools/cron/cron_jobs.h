/*
 * cron_jobs — the job store: ~/.hermes/cron/jobs.json exactly as the original's cron/jobs.py
 * keeps it (gateway.md §6.2): {"jobs": [...], "updated_at": <iso>} written by json.dump with
 * indent=2, atomically (temp file, fsync, rename), mode 0600 in a 0700 directory; run
 * reports in cron/output/<job_id>/<YYYY-MM-DD_HH-MM-SS>.md (0600).
 *
 * Jobs are cJSON objects with the original's fields in the original's order; fields this
 * version does not know are kept as they are.
 *
 * Invariants:
 *   1. Every read-modify-write holds an exclusive flock on cron/.jobs.lock for its whole
 *      duration, so the CLI, the agent's tools and the scheduler — in any number of
 *      processes — never lose each other's edits (the original had no lock).
 *   2. A jobs.json that does not parse is never overwritten: every operation fails with
 *      "Cron database corrupted and unrepairable: …" until a person fixes it. One whose
 *      only fault is raw control characters inside strings is read leniently and
 *      rewritten with proper escapes, as the original does.
 *   3. Job ids used in paths must be [A-Za-z0-9_-]+ (ours are 12 lowercase hex digits), so a
 *      doctored jobs.json cannot make the scheduler write outside cron/output/.
 *
 * Threads: any thread, but every call blocks on the file system and the lock (at most
 * CRON_LOCK_WAIT_MS): call from the CLI, a blocking tool or a detached actor. "now" is a
 * parameter (microseconds since the epoch) so tests control time.
 */
#ifndef CRON_JOBS_H
#define CRON_JOBS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRON_JOBS_MAX_BYTES (16u << 20) /* a larger jobs.json is refused */
#define CRON_LOCK_WAIT_MS   10000       /* waiting longer for the lock is an error */

/* The parts of a new job (the original's create_job arguments). */
typedef struct cron_new_job {
    const char *prompt;   /* may be "" when skills are given */
    const char *schedule; /* as the user wrote it */
    const char *name;     /* NULL or "": the prompt's first 50 characters */
    bool has_repeat;      /* repeat was given */
    int64_t repeat;       /* ≤ 0: forever */
    const char *deliver;  /* NULL: "origin" when there is an origin, else "local" */
    const cJSON *origin;  /* {platform, chat_id, chat_name, thread_id} or NULL */
    const cJSON *skills;  /* array of names, a single string, or NULL */
    const char *skill;    /* the legacy single skill, or NULL */
    const char *model;    /* per-job overrides, or NULL */
    const char *provider;
    const char *base_url;
    const char *script;
} cron_new_job;

/* <home>/cron/<name> (name may be NULL for the directory itself): a new string. */
char *cron_path(const char *home, const char *name);

/*
 * Run fn on the job array under the lock (invariant 1). fn edits jobs in place and returns
 * 1 to save, 0 to leave the file as it is, or -errno (nothing is saved; fn should have
 * written err). A missing file is an empty array. 0, or -errno with err filled (-EBADMSG
 * corrupt, -E2BIG too large, -ETIMEDOUT lock, other I/O errors).
 */
typedef int (*cron_edit_fn)(cJSON *jobs, void *arg, char *err, size_t errlen);
int cron_jobs_edit(const char *home, cron_edit_fn fn, void *arg, char *err, size_t errlen);

/* Each of these returns 0, -ENOENT (no such job: err says "Job not found"), or another
 * -errno with err filled. Returned jobs are new copies, normalised as the original's
 * _apply_skill_fields does; the caller deletes them. */
int cron_job_create(const char *home, const cron_new_job *nj, int64_t now_us, cJSON **job,
                    char *err, size_t errlen);
int cron_job_get(const char *home, const char *id, cJSON **job, char *err, size_t errlen);
int cron_job_list(const char *home, bool include_disabled, cJSON **jobs, char *err, size_t errlen);
/* updates: an object of fields to set ({**job, **updates}); "schedule" may be a string. */
int cron_job_update(const char *home, const char *id, const cJSON *updates, int64_t now_us,
                    cJSON **job, char *err, size_t errlen);
int cron_job_pause(const char *home, const char *id, const char *reason, int64_t now_us,
                   cJSON **job, char *err, size_t errlen);
int cron_job_resume(const char *home, const char *id, int64_t now_us, cJSON **job, char *err,
                    size_t errlen);
/* Run on the next tick: next_run_at = now. */
int cron_job_trigger(const char *home, const char *id, int64_t now_us, cJSON **job, char *err,
                     size_t errlen);
int cron_job_remove(const char *home, const char *id, char *err, size_t errlen);

/* ---- the scheduler's side ---- */

/* The due jobs (copies, an array): enabled and next_run_at ≤ now. Stale recurring runs
 * (later than cron_grace_s) are fast-forwarded instead, a one-shot without next_run_at
 * still within its grace is recovered; both are saved. */
int cron_jobs_due(const char *home, int64_t now_us, cJSON **due, char *err, size_t errlen);
/* Before running a recurring job: move next_run_at to the next future time, so a crash
 * during the run cannot make it fire again (at-most-once). One-shots are left alone.
 * *advanced (may be NULL) says whether it changed. */
int cron_job_advance(const char *home, const char *id, int64_t now_us, bool *advanced, char *err,
                     size_t errlen);
/* After a run: last_run_at, last_status ("ok"/"error"), last_error, last_delivery_error,
 * repeat.completed + 1; the job is deleted when completed reaches repeat.times; otherwise
 * the next run is computed, and a job with none left is disabled (state "completed"). */
int cron_job_mark_run(const char *home, const char *id, bool ok, const char *error,
                      const char *delivery_error, int64_t now_us, char *err, size_t errlen);
/* Write a run report to cron/output/<id>/<YYYY-MM-DD_HH-MM-SS>.md (local time of now_us)
 * atomically, mode 0600. *path (may be NULL) gets the file's path (rt_free). */
int cron_output_save(const char *home, const char *id, const char *text, int64_t now_us,
                     char **path, char *err, size_t errlen);

/* Is id usable in a path (invariant 3)? */
bool cron_id_is_safe(const char *id);

/* The first n characters (code points) of s, as Python's s[:n]: a new string. */
char *cron_utf8_prefix(const char *s, size_t n);
/* The number of characters (code points) in s. */
size_t cron_utf8_len(const char *s);

#endif /* CRON_JOBS_H */
