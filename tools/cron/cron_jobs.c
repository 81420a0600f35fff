/*
 * cron_jobs — see cron_jobs.h. The file layer (lock, read, lenient parse, atomic write)
 * comes first, then one edit callback per operation of the original's cron/jobs.py.
 */
#include "cron_jobs.h"

#include "cron_pyjson.h"
#include "cron_sched.h"
#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ============================================================ small helpers */

char *cron_path(const char *home, const char *name)
{
    return name ? rt_xasprintf("%s/cron/%s", home, name) : rt_xasprintf("%s/cron", home);
}

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

size_t cron_utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

char *cron_utf8_prefix(const char *s, size_t n)
{
    size_t i = 0, cps = 0;
    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (cps == n)
                break;
            cps++;
        }
    }
    return rt_xstrndup(s, i);
}

/* Python's str.strip() for ASCII whitespace: a new string. */
static char *strip_dup(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return rt_xstrndup(s, n);
}

bool cron_id_is_safe(const char *id)
{
    if (!id || !*id || strlen(id) > 64)
        return false;
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return false;
    return true;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Set o[k] = item, keeping k's position when it exists (a Python dict update). */
static void put(cJSON *o, const char *k, cJSON *item)
{
    if (cJSON_GetObjectItemCaseSensitive(o, k))
        cJSON_ReplaceItemInObjectCaseSensitive(o, k, item);
    else
        cJSON_AddItemToObject(o, k, item);
}

static cJSON *str_or_null(const char *s)
{
    return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static bool job_enabled(const cJSON *job)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(job, "enabled");
    return !e || !cJSON_IsBool(e) || cJSON_IsTrue(e); /* job.get("enabled", True) */
}

static bool job_paused(const cJSON *job)
{
    const char *s = jstr(job, "state");
    return s && strcmp(s, "paused") == 0;
}

static const char *job_id(const cJSON *job)
{
    return jstr(job, "id");
}

static cJSON *find_job(cJSON *jobs, const char *id)
{
    cJSON *j;
    cJSON_ArrayForEach(j, jobs)
    {
        const char *jid = job_id(j);
        if (jid && strcmp(jid, id) == 0)
            return j;
    }
    return NULL;
}

/* The original's _normalize_skill_list(skill, skills): unique, stripped, non-empty names. */
static cJSON *normalize_skills(const char *skill, const cJSON *skills)
{
    cJSON *out = cJSON_CreateArray();
    const cJSON *one = NULL;
    cJSON *tmp = NULL;
    if (!skills || cJSON_IsNull(skills)) {
        if (skill && *skill)
            one = tmp = cJSON_CreateString(skill);
    } else if (cJSON_IsString(skills)) {
        one = skills;
    }
    const cJSON *list = skills && cJSON_IsArray(skills) ? skills : NULL;
    const cJSON *it = one ? one : list ? list->child : NULL;
    for (; it; it = one ? NULL : it->next) {
        if (!cJSON_IsString(it))
            continue;
        char *t = strip_dup(it->valuestring);
        bool dup = !*t;
        const cJSON *have;
        cJSON_ArrayForEach(have, out) dup |= strcmp(have->valuestring, t) == 0;
        if (!dup)
            cJSON_AddItemToArray(out, cJSON_CreateString(t));
        rt_free(t);
    }
    cJSON_Delete(tmp);
    return out;
}

/* The original's _apply_skill_fields: canonical `skills` and the legacy `skill`. */
static void apply_skill_fields(cJSON *job)
{
    cJSON *skills =
        normalize_skills(jstr(job, "skill"), cJSON_GetObjectItemCaseSensitive(job, "skills"));
    cJSON *first = cJSON_GetArrayItem(skills, 0);
    cJSON *skill = first ? cJSON_CreateString(first->valuestring) : cJSON_CreateNull();
    put(job, "skills", skills);
    put(job, "skill", skill);
}

static cJSON *copy_normalized(const cJSON *job)
{
    cJSON *c = cJSON_Duplicate(job, 1);
    apply_skill_fields(c);
    return c;
}

/* ============================================================== the file */

static int ensure_dirs(const char *home, char *err, size_t errlen)
{
    char *dir = cron_path(home, NULL), *out = cron_path(home, "output");
    int r = 0;
    const char *paths[] = {home, dir, out};
    for (size_t i = 0; i < RT_ARRAY_LEN(paths) && !r; i++) {
        if (mkdir(paths[i], 0700) != 0 && errno != EEXIST)
            r = -errno;
        else if (i > 0)
            (void)chmod(paths[i], 0700); /* the original's _secure_dir */
    }
    if (r)
        snprintf(err, errlen, "cannot create %s: %s", out, rt_strerror(r));
    rt_free(dir);
    rt_free(out);
    return r;
}

/* An exclusive flock on cron/.jobs.lock, waiting at most CRON_LOCK_WAIT_MS. The fd, or
 * -errno. */
static int take_lock(const char *home, char *err, size_t errlen)
{
    char *path = cron_path(home, ".jobs.lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int r = -errno;
        snprintf(err, errlen, "cannot open %s: %s", path, rt_strerror(r));
        rt_free(path);
        return r;
    }
    /* flock has no timeout: poll. The holders keep it for milliseconds; this only bounds
     * the wait behind a stuck process. */
    for (int waited = 0;; waited += 2) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            break;
        if (errno != EWOULDBLOCK && errno != EINTR) {
            int r = -errno;
            snprintf(err, errlen, "cannot lock %s: %s", path, rt_strerror(r));
            close(fd);
            rt_free(path);
            return r;
        }
        if (waited >= CRON_LOCK_WAIT_MS) {
            snprintf(err, errlen, "cron jobs are locked by another process (%s)", path);
            close(fd);
            rt_free(path);
            return -ETIMEDOUT;
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    rt_free(path);
    return fd;
}

static int read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size > (off_t)CRON_JOBS_MAX_BYTES) {
        int r = st.st_size > (off_t)CRON_JOBS_MAX_BYTES ? -E2BIG : -errno;
        close(fd);
        return r;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = rt_xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > CRON_JOBS_MAX_BYTES) {
                rt_free(buf);
                close(fd);
                return -E2BIG;
            }
            cap *= 2;
            buf = rt_xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = -errno;
            rt_free(buf);
            close(fd);
            return e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Raw control characters inside JSON strings: valid for cJSON, invalid for Python's strict
 * json (and for us, since we repair them). */
static bool has_raw_controls(const char *s)
{
    bool in = false;
    for (; *s; s++) {
        if (in && *s == '\\' && s[1]) {
            s++;
            continue;
        }
        if (*s == '"')
            in = !in;
        else if (in && (unsigned char)*s < 0x20)
            return true;
    }
    return false;
}

/* Line and column of offset in text, for the corruption message. */
static void where(const char *text, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i]; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* Load jobs.json into *jobs (an array). *repair: the file needs rewriting. */
static int load(const char *home, cJSON **jobs, bool *repair, char *err, size_t errlen)
{
    char *path = cron_path(home, "jobs.json");
    char *text = NULL;
    size_t len = 0;
    *repair = false;
    int r = read_file(path, &text, &len);
    if (r == -ENOENT) {
        *jobs = cJSON_CreateArray();
        rt_free(path);
        return 0;
    }
    if (r) {
        snprintf(err, errlen, "Failed to read cron database: %s: %s", path, rt_strerror(r));
        rt_free(path);
        return r;
    }
    rt_free(path);
    const char *end = NULL;
    cJSON *root = strlen(text) == len ? cJSON_ParseWithOpts(text, &end, 1) : NULL;
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "jobs");
    if (!cJSON_IsObject(root) || (arr && !cJSON_IsArray(arr))) {
        int line, col;
        size_t off = root ? 0 : end && end >= text ? (size_t)(end - text) : 0;
        where(text, off, &line, &col);
        if (root)
            snprintf(err, errlen,
                     "Cron database corrupted and unrepairable: expected an object "
                     "with a \"jobs\" list");
        else
            snprintf(err, errlen,
                     "Cron database corrupted and unrepairable: invalid JSON: line %d column %d "
                     "(char %zu)",
                     line, col, off);
        cJSON_Delete(root);
        rt_free(text);
        return -EBADMSG;
    }
    *repair = has_raw_controls(text);
    rt_free(text);
    *jobs = arr ? cJSON_DetachItemViaPointer(root, arr) : cJSON_CreateArray();
    cJSON_Delete(root);
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write text to path atomically (temp in the same directory named prefix…suffix, fsync,
 * chmod 0600, rename, fsync of the directory). */
static int write_atomic(const char *path, const char *prefix, const char *text)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? rt_xstrndup(path, (size_t)(slash - path)) : rt_xstrdup(".");
    char *tmp = rt_xasprintf("%s/%sXXXXXX.tmp", dir, prefix);
    int fd = mkstemps(tmp, 4), r = 0;
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    r = write_all(fd, text, strlen(text));
    if (!r && fsync(fd) != 0)
        r = -errno;
    if (!r && fchmod(fd, 0600) != 0)
        r = -errno;
    if (close(fd) != 0 && !r)
        r = -errno;
    if (!r && rename(tmp, path) != 0)
        r = -errno;
    if (r)
        (void)unlink(tmp);
    else {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd); /* the rename is durable; a failure here loses nothing now */
            close(dfd);
        }
    }
out:
    rt_free(tmp);
    rt_free(dir);
    return r;
}

static int save(const char *home, cJSON *jobs, char *err, size_t errlen)
{
    char now[CRON_ISO_MAX];
    cron_iso(cron_now_us(), CRON_LOCAL, now, sizeof(now));
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(root, "jobs", jobs);
    cJSON_AddStringToObject(root, "updated_at", now);
    char *text = cron_pyjson(root, 2, true);
    cJSON_Delete(root); /* the reference only */
    char *path = cron_path(home, "jobs.json");
    int r = write_atomic(path, ".jobs_", text);
    if (r)
        snprintf(err, errlen, "cannot write %s: %s", path, rt_strerror(r));
    rt_free(path);
    rt_free(text);
    return r;
}

int cron_jobs_edit(const char *home, cron_edit_fn fn, void *arg, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    int r = ensure_dirs(home, err, errlen);
    if (r)
        return r;
    int fd = take_lock(home, err, errlen);
    if (fd < 0)
        return fd;
    cJSON *jobs = NULL;
    bool repair = false;
    r = load(home, &jobs, &repair, err, errlen);
    if (!r) {
        int w = fn(jobs, arg, err, errlen);
        if (w < 0)
            r = w;
        else if (w > 0 || repair) {
            if (repair && !w)
                RT_WARN("cron", "Auto-repaired jobs.json (had invalid control characters)");
            r = save(home, jobs, err, errlen);
        }
    }
    cJSON_Delete(jobs);
    close(fd); /* releases the lock */
    return r;
}

/* =========================================================== operations */

static int not_found(char *err, size_t errlen, const char *id)
{
    return fail(err, errlen, -ENOENT, "Job not found: %s", id);
}

static void new_id(cJSON *jobs, char out[13])
{
    for (int tries = 0; tries < 100; tries++) {
        unsigned char b[6];
        if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
            uint64_t x = (uint64_t)cron_now_us() ^ ((uint64_t)getpid() << 20) ^ (uint64_t)tries;
            for (int i = 0; i < 6; i++)
                b[i] = (unsigned char)(rt_hash_u64(x) >> (i * 8));
        }
        for (int i = 0; i < 6; i++)
            snprintf(out + i * 2, 3, "%02x", b[i]);
        if (!find_job(jobs, out))
            return;
    }
}

static cJSON *opt_str(const char *s, bool strip_slash)
{
    if (!s)
        return cJSON_CreateNull();
    char *t = strip_dup(s);
    size_t n = strlen(t);
    while (strip_slash && n && t[n - 1] == '/')
        t[--n] = '\0';
    cJSON *v = *t ? cJSON_CreateString(t) : cJSON_CreateNull();
    rt_free(t);
    return v;
}

typedef struct create_ctx {
    cJSON *job; /* built before the lock; its id is chosen under it */
    cJSON *out;
} create_ctx;

static int do_create(cJSON *jobs, void *arg, char *err, size_t errlen)
{
    create_ctx *c = arg;
    (void)err, (void)errlen;
    char id[13];
    new_id(jobs, id);
    cJSON_ReplaceItemInObjectCaseSensitive(c->job, "id", cJSON_CreateString(id));
    c->out = cJSON_Duplicate(c->job, 1);
    cJSON_AddItemToArray(jobs, c->job);
    c->job = NULL;
    return 1;
}

static cJSON *build_job(const cron_new_job *nj, cJSON *schedule, const char *next, const char *now)
{
    cJSON *skills = normalize_skills(nj->skill, nj->skills);
    const cJSON *first = cJSON_GetArrayItem(skills, 0);
    const char *prompt = nj->prompt ? nj->prompt : "";
    const char *label = *prompt ? prompt : first ? first->valuestring : "cron job";
    char *cut = cron_utf8_prefix(label, 50), *name = strip_dup(cut);
    rt_free(cut);
    bool has_origin = nj->origin && cJSON_IsObject(nj->origin);
    int64_t times = nj->repeat;
    bool forever = !nj->has_repeat || times <= 0;
    if (forever && strcmp(cron_schedule_kind(schedule), "once") == 0) {
        forever = false;
        times = 1;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", "");
    cJSON_AddStringToObject(j, "name", nj->name && *nj->name ? nj->name : name);
    cJSON_AddStringToObject(j, "prompt", prompt);
    cJSON_AddItemToObject(j, "skills", skills);
    cJSON_AddItemToObject(j, "skill", str_or_null(first ? first->valuestring : NULL));
    cJSON_AddItemToObject(j, "model", opt_str(nj->model, false));
    cJSON_AddItemToObject(j, "provider", opt_str(nj->provider, false));
    cJSON_AddItemToObject(j, "base_url", opt_str(nj->base_url, true));
    cJSON_AddItemToObject(j, "script", opt_str(nj->script, false));
    const char *disp = jstr(schedule, "display");
    cJSON_AddItemToObject(j, "schedule", schedule);
    cJSON_AddStringToObject(j, "schedule_display", disp ? disp : nj->schedule);
    cJSON *rep = cJSON_AddObjectToObject(j, "repeat");
    if (forever)
        cJSON_AddNullToObject(rep, "times");
    else
        cJSON_AddNumberToObject(rep, "times", (double)times);
    cJSON_AddNumberToObject(rep, "completed", 0);
    cJSON_AddBoolToObject(j, "enabled", true);
    cJSON_AddStringToObject(j, "state", "scheduled");
    cJSON_AddNullToObject(j, "paused_at");
    cJSON_AddNullToObject(j, "paused_reason");
    cJSON_AddStringToObject(j, "created_at", now);
    cJSON_AddItemToObject(j, "next_run_at", str_or_null(next));
    cJSON_AddNullToObject(j, "last_run_at");
    cJSON_AddNullToObject(j, "last_status");
    cJSON_AddNullToObject(j, "last_error");
    cJSON_AddNullToObject(j, "last_delivery_error");
    const char *deliver = nj->deliver ? nj->deliver : has_origin ? "origin" : "local";
    cJSON_AddStringToObject(j, "deliver", deliver);
    cJSON_AddItemToObject(j, "origin",
                          has_origin ? cJSON_Duplicate(nj->origin, 1) : cJSON_CreateNull());
    rt_free(name);
    return j;
}

/* compute_next_run for a new or updated schedule: a cron expression that never matches is
 * an error there, as croniter's is. */
static int first_run(const cJSON *schedule, int64_t now_us, char *buf, size_t n, bool *none,
                     char *err, size_t errlen)
{
    int r = cron_next_run(schedule, NULL, now_us, buf, n);
    *none = r == -ENOENT;
    if (r == -ENOENT && strcmp(cron_schedule_kind(schedule), "cron") == 0)
        return fail(err, errlen, -EINVAL, "failed to find next date");
    if (r && r != -ENOENT)
        return fail(err, errlen, r, "Invalid schedule");
    return 0;
}

int cron_job_create(const char *home, const cron_new_job *nj, int64_t now_us, cJSON **job,
                    char *err, size_t errlen)
{
    *job = NULL;
    cJSON *schedule = cron_parse_schedule(nj->schedule, now_us, err, errlen);
    if (!schedule)
        return -EINVAL;
    char next[CRON_ISO_MAX], now[CRON_ISO_MAX];
    bool none;
    int r = first_run(schedule, now_us, next, sizeof(next), &none, err, errlen);
    if (r) {
        cJSON_Delete(schedule);
        return r;
    }
    cron_iso(now_us, CRON_LOCAL, now, sizeof(now));
    create_ctx c = {.job = build_job(nj, schedule, none ? NULL : next, now)};
    r = cron_jobs_edit(home, do_create, &c, err, errlen);
    cJSON_Delete(c.job);
    if (!r)
        *job = c.out;
    else
        cJSON_Delete(c.out);
    return r;
}

typedef struct find_ctx {
    const char *id;
    bool include_disabled;
    cJSON *out;
} find_ctx;

static int do_get(cJSON *jobs, void *arg, char *err, size_t errlen)
{
    find_ctx *c = arg;
    cJSON *j = find_job(jobs, c->id);
    if (!j)
        return not_found(err, errlen, c->id);
    c->out = copy_normalized(j);
    return 0;
}

int cron_job_get(const char *home, const char *id, cJSON **job, char *err, size_t errlen)
{
    find_ctx c = {.id = id ? id : ""};
    int r = cron_jobs_edit(home, do_get, &c, err, errlen);
    *job = c.out;
    return r;
}

static int do_list(cJSON *jobs, void *arg, char *err, size_t errlen)
{
    find_ctx *c = arg;
    (void)err, (void)errlen;
    c->out = cJSON_CreateArray();
    const cJSON *j;
    cJSON_ArrayForEach(j, jobs)
    {
        if (cJSON_IsObject(j) && (c->include_disabled || job_enabled(j)))
            cJSON_AddItemToArray(c->out, copy_normalized(j));
    }
    return 0;
}

int cron_job_list(const char *home, bool include_disabled, cJSON **jobs, char *err, size_t errlen)
{
    find_ctx c = {.include_disabled = include_disabled};
    int r = cron_jobs_edit(home, do_list, &c, err, errlen);
    if (r) {
        cJSON_Delete(c.out);
        c.out = NULL;
    }
    *jobs = c.out;
    return r;
}

typedef struct update_ctx {
    const char *id;
    const cJSON *updates;
    int64_t now_us;
    cJSON *out;
} update_ctx;

/* The original's update_job on one job object. */
static int update_one(cJSON *job, const cJSON *updates, int64_t now_us, char *err, size_t errlen)
{
    const cJSON *u;
    cJSON *new_schedule = NULL;
    const cJSON *sch = cJSON_GetObjectItemCaseSensitive(updates, "schedule");
    if (cJSON_IsString(sch)) {
        new_schedule = cron_parse_schedule(sch->valuestring, now_us, err, errlen);
        if (!new_schedule)
            return -EINVAL;
    }
    cJSON_ArrayForEach(u, updates)
    {
        if (strcmp(u->string, "schedule") == 0 && new_schedule) {
            put(job, "schedule", new_schedule);
            new_schedule = NULL;
        } else {
            put(job, u->string, cJSON_Duplicate(u, 1));
        }
    }
    apply_skill_fields(job);
    char next[CRON_ISO_MAX];
    bool none;
    const cJSON *schedule = cJSON_GetObjectItemCaseSensitive(job, "schedule");
    if (sch) {
        const cJSON *sd = cJSON_GetObjectItemCaseSensitive(updates, "schedule_display");
        const char *disp = cJSON_IsString(sd) ? sd->valuestring : jstr(schedule, "display");
        if (disp)
            put(job, "schedule_display", cJSON_CreateString(disp));
        if (!job_paused(job)) {
            int r = first_run(schedule, now_us, next, sizeof(next), &none, err, errlen);
            if (r)
                return r;
            put(job, "next_run_at", str_or_null(none ? NULL : next));
        }
    }
    const char *nr = jstr(job, "next_run_at");
    if (job_enabled(job) && !job_paused(job) && (!nr || !*nr) &&
        cron_next_run(schedule, NULL, now_us, next, sizeof(next)) == 0)
        put(job, "next_run_at", cJSON_CreateString(next));
    return 0;
}

static int do_update(cJSON *jobs, void *arg, char *err, size_t errlen)
{
    update_ctx *c = arg;
    cJSON *j = find_job(jobs, c->id);
    if (!j)
        return not_found(err, errlen, c->id);
    int r = update_one(j, c->updates, c->now_us, err, errlen);
    if (r)
        return r;
    c->out = copy_normalized(j);
    return 1;
}

int cron_job_update(const char *home, const char *id, const cJSON *updates, int64_t now_us,
                    cJSON **job, char *err, size_t errlen)
{
    /* Work on a copy: a failed update must leave the stored job untouched, and the file is
     * only written when every step succeeded. */
    update_ctx c = {.id = id ? id : "", .updates = updates, .now_us = now_us};
    *job = NULL;
    if (!cJSON_IsObject(updates))
        return fail(err, errlen, -EINVAL, "No updates provided.");
    int r = cron_jobs_edit(home, do_update, &c, err, errlen);
    if (r) {
        cJSON_Delete(c.out);
        return r;
    }
    *job = c.out;
    return 0;
}

int cron_job_pause(const char *home, const char *id, const char *reason, int64_t now_us,
                   cJSON **job, char *err, size_t errlen)
{
    char now[CRON_ISO_MAX];
    cron_iso(now_us, CRON_LOCAL, now, sizeof(now));
    cJSON *u = cJSON_CreateObject();
    cJSON_AddBoolToObject(u, "enabled", false);
    cJSON_AddStringToObject(u, "state", "paused");
    cJSON_AddStringToObject(u, "paused_at", now);
    cJSON_AddItemToObject(u, "paused_reason", str_or_null(reason));
    int r = cron_job_update(home, id, u, now_us, job, err, errlen);
    cJSON_Delete(u);
    return r;
}

/* resume and trigger: enable and schedule; next is the new next_run_at or NULL. */
static int reschedule(const char *home, const char *id, const char *next, int64_t now_us,
                      cJSON **job, char *err, size_t errlen)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddBoolToObject(u, "enabled", true);
    cJSON_AddStringToObject(u, "state", "scheduled");
    cJSON_AddNullToObject(u, "paused_at");
    cJSON_AddNullToObject(u, "paused_reason");
    cJSON_AddItemToObject(u, "next_run_at", str_or_null(next));
    int r = cron_job_update(home, id, u, now_us, job, err, errlen);
    cJSON_Delete(u);
    return r;
}

int cron_job_resume(const char *home, const char *id, int64_t now_us, cJSON **job, char *err,
                    size_t errlen)
{
    cJSON *cur = NULL;
    int r = cron_job_get(home, id, &cur, err, errlen);
    if (r) {
        *job = NULL;
        return r;
    }
    char next[CRON_ISO_MAX];
    bool have = cron_next_run(cJSON_GetObjectItemCaseSensitive(cur, "schedule"), NULL, now_us, next,
                              sizeof(next)) == 0;
    cJSON_Delete(cur);
    return reschedule(home, id, have ? next : NULL, now_us, job, err, errlen);
}

int cron_job_trigger(const char *home, const char *id, int64_t now_us, cJSON **job, char *err,
                     size_t errlen)
{
    char now[CRON_ISO_MAX];
    cron_iso(now_us, CRON_LOCAL, now, sizeof(now));
    return reschedule(home, id, now, now_us, job, err, errlen);
}

static int do_remove(cJSON *jobs, void *arg, char *err, size_t errlen)
{
    find_ctx *c = arg;
    cJSON *j = find_job(jobs, c->id);
    if (!j)
        return not_found(err, errlen, c->id);
    cJSON_Delete(cJSON_DetachItemViaPointer(jobs, j));
    return 1;
}

int cron_job_remove(const char *home, const char *id, char *err, size_t errlen)
{
    find_ctx c = {.id = id ? id : ""};
    return cron_jobs_edit(home, do_remove, &c, err, errlen);
}

/* ======================================================== the scheduler's side */

typedef struct run_ctx {
    const char *id;
    bool ok;
    const char *error, *delivery_error;
    int64_t now_us;
    bool advanced;
    cJSON *due;
} run_ctx;

static int do_mark_run(cJSON *jobs, void *arg, char *err, size_t errlen)
{
    run_ctx *c = arg;
    cJSON *j = find_job(jobs, c->id);
    if (!j) {
        RT_WARN("cron", "mark_job_run: job_id %s not found, skipping save", c->id);
        return not_found(err, errlen, c->id);
    }
    char now[CRON_ISO_MAX], next[CRON_ISO_MAX];
    cron_iso(c->now_us, CRON_LOCAL, now, sizeof(now));
    put(j, "last_run_at", cJSON_CreateString(now));
    put(j, "last_status", cJSON_CreateString(c->ok ? "ok" : "error"));
    put(j, "last_error", str_or_null(c->ok ? NULL : c->error));
    put(j, "last_delivery_error", str_or_null(c->delivery_error));
    cJSON *rep = cJSON_GetObjectItemCaseSensitive(j, "repeat");
    if (cJSON_IsObject(rep) && rep->child) {
        const cJSON *done = cJSON_GetObjectItemCaseSensitive(rep, "completed");
        double completed = (cJSON_IsNumber(done) ? done->valuedouble : 0) + 1;
        put(rep, "completed", cJSON_CreateNumber(completed));
        const cJSON *times = cJSON_GetObjectItemCaseSensitive(rep, "times");
        if (cJSON_IsNumber(times) && times->valuedouble > 0 && completed >= times->valuedouble) {
            cJSON_Delete(cJSON_DetachItemViaPointer(jobs, j)); /* the limit is reached */
            return 1;
        }
    }
    bool have = cron_next_run(cJSON_GetObjectItemCaseSensitive(j, "schedule"), now, c->now_us, next,
                              sizeof(next)) == 0;
    put(j, "next_run_at", str_or_null(have ? next : NULL));
    if (!have) {
        put(j, "enabled", cJSON_CreateBool(false));
        put(j, "state", cJSON_CreateString("completed"));
    } else if (!job_paused(j)) {
        put(j, "state", cJSON_CreateString("scheduled"));
    }
    return 1;
}

int cron_job_mark_run(const char *home, const char *id, bool ok, const char *error,
                      const char *delivery_error, int64_t now_us, char *err, size_t errlen)
{
    run_ctx c = {.id = id ? id : "",
                 .ok = ok,
                 .error = error,
                 .delivery_error = delivery_error,
                 .now_us = now_us};
    return cron_jobs_edit(home, do_mark_run, &c, err, errlen);
}

static bool recurring(const cJSON *schedule)
{
    const char *k = cron_schedule_kind(schedule);
    return strcmp(k, "cron") == 0 || strcmp(k, "interval") == 0;
}

static int do_advance(cJSON *jobs, void *arg, char *err, size_t errlen)
{
    run_ctx *c = arg;
    (void)err, (void)errlen;
    cJSON *j = find_job(jobs, c->id);
    const cJSON *schedule = cJSON_GetObjectItemCaseSensitive(j, "schedule");
    if (!j || !recurring(schedule))
        return 0;
    char now[CRON_ISO_MAX], next[CRON_ISO_MAX];
    cron_iso(c->now_us, CRON_LOCAL, now, sizeof(now));
    if (cron_next_run(schedule, now, c->now_us, next, sizeof(next)) != 0)
        return 0;
    const char *cur = jstr(j, "next_run_at");
    if (cur && strcmp(cur, next) == 0)
        return 0;
    put(j, "next_run_at", cJSON_CreateString(next));
    c->advanced = true;
    return 1;
}

int cron_job_advance(const char *home, const char *id, int64_t now_us, bool *advanced, char *err,
                     size_t errlen)
{
    run_ctx c = {.id = id ? id : "", .now_us = now_us};
    int r = cron_jobs_edit(home, do_advance, &c, err, errlen);
    if (advanced)
        *advanced = c.advanced;
    return r;
}

/* One job of get_due_jobs: 1 due, 0 not due; *changed when next_run_at was rewritten. */
static int due_one(cJSON *j, int64_t now_us, bool *changed)
{
    const cJSON *schedule = cJSON_GetObjectItemCaseSensitive(j, "schedule");
    const char *name = jstr(j, "name") ? jstr(j, "name") : job_id(j);
    char buf[CRON_ISO_MAX];
    const char *next = jstr(j, "next_run_at");
    if (!next || !*next) {
        const char *last = jstr(j, "last_run_at");
        if (strcmp(cron_schedule_kind(schedule), "once") != 0 ||
            cron_next_run(schedule, last, now_us, buf, sizeof(buf)) != 0)
            return 0;
        RT_INFO("cron", "Job '%s' had no next_run_at; recovering one-shot run at %s", name, buf);
        put(j, "next_run_at", cJSON_CreateString(buf));
        *changed = true;
        next = jstr(j, "next_run_at");
    }
    int64_t at;
    int32_t off;
    if (cron_iso_parse(next, &at, &off, NULL) != 0) {
        RT_WARN("cron", "Job '%s' has an unreadable next_run_at '%s': skipped", name, next);
        return 0;
    }
    if (at > now_us)
        return 0;
    int64_t grace = cron_grace_s(schedule, now_us);
    if (recurring(schedule) && now_us - at > grace * 1000000LL) {
        char now[CRON_ISO_MAX];
        cron_iso(now_us, CRON_LOCAL, now, sizeof(now));
        if (cron_next_run(schedule, now, now_us, buf, sizeof(buf)) == 0) {
            RT_INFO("cron",
                    "Job '%s' missed its scheduled time (%s, grace=%llds). Fast-forwarding to "
                    "next run: %s",
                    name, next, (long long)grace, buf);
            put(j, "next_run_at", cJSON_CreateString(buf));
            *changed = true;
            return 0;
        }
    }
    return 1;
}

static int do_due(cJSON *jobs, void *arg, char *err, size_t errlen)
{
    run_ctx *c = arg;
    (void)err, (void)errlen;
    bool changed = false;
    c->due = cJSON_CreateArray();
    cJSON *j;
    cJSON_ArrayForEach(j, jobs)
    {
        if (!cJSON_IsObject(j) || !job_enabled(j) || !cron_id_is_safe(job_id(j)))
            continue;
        if (due_one(j, c->now_us, &changed))
            cJSON_AddItemToArray(c->due, copy_normalized(j));
    }
    return changed ? 1 : 0;
}

int cron_jobs_due(const char *home, int64_t now_us, cJSON **due, char *err, size_t errlen)
{
    run_ctx c = {.now_us = now_us};
    int r = cron_jobs_edit(home, do_due, &c, err, errlen);
    if (r) {
        cJSON_Delete(c.due);
        c.due = NULL;
    }
    *due = c.due;
    return r;
}

int cron_output_save(const char *home, const char *id, const char *text, int64_t now_us,
                     char **path, char *err, size_t errlen)
{
    if (path)
        *path = NULL;
    if (!cron_id_is_safe(id))
        return fail(err, errlen, -EINVAL, "unsafe job id '%s'", id ? id : "");
    int r = ensure_dirs(home, err, errlen);
    if (r)
        return r;
    char *dir = rt_xasprintf("%s/cron/output/%s", home, id);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        r = -errno;
        snprintf(err, errlen, "cannot create %s: %s", dir, rt_strerror(r));
        rt_free(dir);
        return r;
    }
    (void)chmod(dir, 0700);
    time_t t = (time_t)(now_us / 1000000);
    struct tm tm;
    char stamp[32];
    localtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d_%H-%M-%S", &tm);
    char *file = rt_xasprintf("%s/%s.md", dir, stamp);
    r = write_atomic(file, ".output_", text);
    if (r)
        snprintf(err, errlen, "cannot write %s: %s", file, rt_strerror(r));
    if (!r && path)
        *path = file;
    else
        rt_free(file);
    rt_free(dir);
    return r;
}
