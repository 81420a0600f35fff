/*
 * mm_inbound — posts into gateway events (gateway.md §9.4), the catch-up after a reconnect,
 * and the persisted position in the server's history.
 *
 * A post becomes a job: the gw_msg_event built from it plus the requests it still waits for
 * (the sender's name for posts found by the catch-up, each attachment's info, bytes and
 * save). Jobs leave in arrival order, so a message with a large attachment is never
 * overtaken by the next one of the same person.
 *
 * Nothing lost, nothing twice (ARCHITECTURE: the platform's position advances only after a
 * message was handed on):
 *   1. Every post handed to the gateway is remembered in st.seen with its create_at; a post
 *      whose id is there (or in a waiting job) is never handed on again.
 *   2. st.mark advances only to a create_at all of whose predecessors have been handed on:
 *      never while a catch-up runs, never past a job still waiting.
 *   3. After a reconnect every channel the bot is in whose last_post_at is newer than
 *      mark - MM_SEEN_SLACK_MS is asked for its posts since then; what is not in st.seen
 *      goes through the same path as a live post, oldest first.
 *   4. The very first start has no mark: it begins at the newest post that exists then, so
 *      history is not answered.
 */
#include "mm_int.h"

#include "rt_alloc.h"
#include "rt_log.h"
#include "rt_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static char *dupn(const char *s)
{
    return s && *s ? rt_xstrdup(s) : NULL;
}

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ================================================================ the state */

void mm__state_check_identity(mm_adapter *a)
{
    if (a->st.user_id && strcmp(a->st.user_id, a->bot_id) != 0) {
        RT_INFO(MM_LOG, "Mattermost: the token belongs to another bot now; starting afresh");
        mm_state_fini(&a->st);
        mm_state_init(&a->st);
    }
    if (!a->st.server)
        a->st.server = rt_xstrdup(a->o.url);
    if (!a->st.user_id)
        a->st.user_id = rt_xstrdup(a->bot_id);
}

static void state_write(mm_adapter *a, rt_ctx *cx)
{
    char *json = mm_state_json(&a->st);
    ak_io_write(cx, a->io, a->state_path, json, strlen(json), 0600, a->self, 0);
    a->st_writing = true;
    a->st_dirty = false;
    a->st_saved = true;
    a->st_saved_ns = rt_now_ns(rt_ctx_runtime(cx));
}

/* The position is written at most once per MM_STATE_SAVE_MS: it holds up to MM_SEEN_MAX ids,
 * and writing it for every post made a busy server's posts cost O(posts in the last 10 s)
 * each. What a crash can lose is a second of position: posts re-fetched by the catch-up,
 * which the gateway's inbound journal recognises (exactly-once by post id). */
void mm__state_save(mm_adapter *a, rt_ctx *cx)
{
    if (!a->io || !a->st_dirty)
        return;
    if (a->st_writing || ak_timer_armed(&a->tm, MM_T_STATE))
        return; /* mm__state_written or the timer sends it */
    int64_t since_ms = (rt_now_ns(rt_ctx_runtime(cx)) - a->st_saved_ns) / 1000000;
    if (a->st_saved && since_ms < MM_STATE_SAVE_MS) {
        ak_timer_arm(cx, a->self, &a->tm, MM_T_STATE, MM_STATE_SAVE_MS - since_ms);
        return;
    }
    state_write(a, cx);
}

void mm__state_flush(mm_adapter *a, rt_ctx *cx)
{
    ak_timer_cancel(cx, &a->tm, MM_T_STATE);
    if (a->io && a->st_dirty)
        state_write(a, cx);
}

void mm__state_written(mm_adapter *a, rt_ctx *cx)
{
    a->st_writing = false;
    mm__state_save(a, cx);
}

/* Rule 2: the newest create_at every older post of which has been handed on. */
static void advance_mark(mm_adapter *a)
{
    if (a->catching_up || !a->st.mark)
        return;
    int64_t cand = a->handled_max;
    for (mm_job *j = a->jobs; j; j = j->next)
        if (j->at - 1 < cand)
            cand = j->at - 1;
    if (cand > a->st.mark) {
        a->st.mark = cand;
        mm_state_prune(&a->st, cand - MM_SEEN_SLACK_MS);
        a->st_dirty = true;
    }
}

/* ================================================================ helpers */

static bool has_job(const mm_adapter *a, const char *id)
{
    for (const mm_job *j = a->jobs; j; j = j->next)
        if (j->ev->message_id && strcmp(j->ev->message_id, id) == 0)
            return true;
    return false;
}

static bool in_list(char *const *v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

static const char *prompt_for(const mm_adapter *a, const char *channel)
{
    for (size_t i = 0; a->o.prompt_channels && a->o.prompt_channels[i]; i++)
        if (strcmp(a->o.prompt_channels[i], channel) == 0)
            return a->o.prompts[i];
    return NULL;
}

static const char *user_name(const mm_adapter *a, const char *id)
{
    for (size_t i = 0; i < a->nusers; i++)
        if (strcmp(a->users[i].id, id) == 0)
            return a->users[i].name;
    return NULL;
}

static void user_put(mm_adapter *a, const char *id, const char *name)
{
    if (user_name(a, id))
        return;
    size_t i = a->nusers < MM_USERS_MAX ? a->nusers++ : a->users_next++ % MM_USERS_MAX;
    rt_free(a->users[i].id);
    rt_free(a->users[i].name);
    a->users[i].id = rt_xstrdup(id);
    a->users[i].name = rt_xstrdup(name);
}

static void job_free(mm_job *j)
{
    if (j->ev)
        rt_msg_free(&j->ev->hdr);
    for (size_t i = 0; i < MM_FILES_MAX; i++) {
        rt_free(j->mimes[i]);
        rt_free(j->paths[i]);
        rt_free(j->file_name[i]);
    }
    rt_free(j);
}

void mm__jobs_free(mm_adapter *a)
{
    while (a->jobs) {
        mm_job *j = a->jobs;
        a->jobs = j->next;
        job_free(j);
    }
    a->jobs_tail = NULL;
    a->njobs = 0;
}

/* The event's media and kind from the attachments that were saved. */
static void attach_media(mm_job *j)
{
    gw_msg_event *ev = j->ev;
    bool image = false, audio = false;
    size_t n = 0;
    for (size_t i = 0; i < j->nfiles; i++)
        n += j->paths[i] != NULL;
    if (!n)
        return;
    ev->media = rt_xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < j->nfiles; i++) {
        if (!j->paths[i])
            continue;
        ev->media[ev->nmedia++] = j->paths[i];
        j->paths[i] = NULL;
        image |= j->mimes[i] && strncmp(j->mimes[i], "image/", 6) == 0;
        audio |= j->mimes[i] && strncmp(j->mimes[i], "audio/", 6) == 0;
    }
    ev->kind = image ? GW_KIND_PHOTO : audio ? GW_KIND_VOICE : GW_KIND_DOCUMENT;
}

static void dispatch(mm_adapter *a, rt_ctx *cx, mm_job *j)
{
    attach_media(j);
    gw_msg_event *ev = j->ev;
    mm_state_add(&a->st, ev->message_id, j->at);
    a->st_dirty = true;
    if (j->at > a->handled_max)
        a->handled_max = j->at;
    if (!*ev->text && !ev->nmedia) {
        RT_DEBUG(MM_LOG, "Mattermost: post %s has nothing to answer", ev->message_id);
        return;
    }
    rt_ref gw = mm__gateway(a, cx);
    if (!gw) {
        RT_WARN(MM_LOG, "Mattermost: no gateway; post %s dropped", ev->message_id);
        return;
    }
    j->ev = NULL;
    gw_event_send(cx, gw, ev);
}

static void jobs_flush(mm_adapter *a, rt_ctx *cx)
{
    while (a->jobs && a->jobs->pending == 0) {
        mm_job *j = a->jobs;
        a->jobs = j->next;
        if (!a->jobs)
            a->jobs_tail = NULL;
        a->njobs--;
        dispatch(a, cx, j);
        job_free(j);
    }
    advance_mark(a);
    mm__state_save(a, cx);
}

static void job_step_done(mm_adapter *a, rt_ctx *cx, mm_job *j)
{
    if (j->pending > 0)
        j->pending--;
    jobs_flush(a, cx);
}

/* ================================================================ a post */

/* "/sethome" (possibly "/sethome@hermes" or with arguments), leading blanks allowed. */
static bool is_sethome(const char *m)
{
    while (*m == ' ' || *m == '\t' || *m == '\n')
        m++;
    if (strncasecmp(m, "/sethome", 8) != 0)
        return false;
    char c = m[8];
    return c == '\0' || c == ' ' || c == '\t' || c == '\n' || c == '@';
}

/* The text to answer, or NULL when the post is not for the bot (§9.4 step 3). */
static char *gated_text(const mm_adapter *a, const mm_post *p, const char *ctype)
{
    if (ctype && strcmp(ctype, "D") == 0)
        return mm_trim(p->message);
    bool mentioned = mm_mentions(p->message, a->bot_name, a->bot_id);
    if (!mentioned && is_sethome(p->message))
        return mm_trim(p->message); /* the seed: "/sethome in any channel where the bot is" */
    if (!mentioned && a->o.require_mention && !in_list(a->o.free_channels, p->channel_id)) {
        RT_DEBUG(MM_LOG, "Mattermost: skipping non-DM message without @mention (channel=%s)",
                 p->channel_id);
        return NULL;
    }
    return mentioned ? mm_strip_mentions(p->message, a->bot_name, a->bot_id) : mm_trim(p->message);
}

static void ask_user(mm_adapter *a, rt_ctx *cx, mm_job *j, const char *uid)
{
    char *path = rt_xasprintf("/api/v4/users/%s", uid);
    mm_req *r = mm__req_new(a, MM_R_USER, NULL, path);
    rt_free(path);
    r->ctx = j;
    r->aux = rt_xstrdup(uid);
    j->pending++;
    mm__submit(a, cx, r);
}

static void ask_files(mm_adapter *a, rt_ctx *cx, mm_job *j, const mm_post *p)
{
    for (size_t i = 0; i < p->nfiles; i++) {
        char *path = rt_xasprintf("/api/v4/files/%s/info", p->file_ids[i]);
        mm_req *r = mm__req_new(a, MM_R_FILE_INFO, NULL, path);
        rt_free(path);
        r->ctx = j;
        r->idx = i;
        r->aux = rt_xstrdup(p->file_ids[i]);
        j->pending++;
        mm__submit(a, cx, r);
    }
    j->nfiles = p->nfiles;
}

/* Hand a post on (as a job) if it is for the bot; true when it was taken. */
static bool inbound_post(mm_adapter *a, rt_ctx *cx, const mm_post *p, const char *ctype,
                         const char *sender, const char *chat_name)
{
    if (!a->bot_id || strcmp(p->user_id, a->bot_id) == 0 || p->type || p->delete_at)
        return false; /* our own posts, system messages, deleted posts */
    if (mm_state_has(&a->st, p->id) || has_job(a, p->id))
        return false;
    char *text = gated_text(a, p, ctype);
    if (!text)
        return false;
    if (a->njobs >= MM_JOBS_MAX) {
        RT_LOG_LIMITED(RT_LOG_WARN, MM_LOG, 10000, "Mattermost: too many posts waiting; %s dropped",
                       p->id);
        rt_free(text);
        return false;
    }
    mm_job *j = rt_xcalloc(1, sizeof(*j));
    j->at = p->create_at;
    gw_msg_event *ev =
        gw_event_new(MATTERMOST_PLATFORM, mm_chat_type(ctype), p->channel_id, p->user_id, text);
    rt_free(text);
    const char *name = sender ? sender : user_name(a, p->user_id);
    ev->src.user_name = dupn(name);
    ev->src.chat_name = dupn(chat_name);
    ev->src.thread_id = dupn(p->root_id);
    ev->reply.thread_id = dupn(p->root_id);
    ev->reply.reply_to = rt_xstrdup(p->id);
    ev->message_id = rt_xstrdup(p->id);
    ev->adapter = a->self;
    ev->ephemeral = dupn(prompt_for(a, p->channel_id));
    j->ev = ev;
    if (a->jobs_tail)
        a->jobs_tail->next = j;
    else
        a->jobs = j;
    a->jobs_tail = j;
    a->njobs++;
    if (!name)
        ask_user(a, cx, j, p->user_id);
    ask_files(a, cx, j, p);
    jobs_flush(a, cx);
    return true;
}

void mm__inbound_ws(mm_adapter *a, rt_ctx *cx, mm_wsmsg *m)
{
    const char *chat = m->channel_display_name && *m->channel_display_name ? m->channel_display_name
                                                                           : m->channel_name;
    const char *sender = m->sender_name ? m->sender_name : m->post.user_id;
    if (m->sender_name)
        user_put(a, m->post.user_id, m->sender_name);
    (void)inbound_post(a, cx, &m->post, m->channel_type, sender, chat);
}

/* ================================================================ attachments */

static const char *ext_of(const char *name, const char *def, char *buf, size_t len)
{
    const char *dot = name ? strrchr(name, '.') : NULL;
    if (!dot || strchr(dot, '/') || strlen(dot) < 2 || strlen(dot) >= len)
        return def;
    for (size_t i = 0; dot[i]; i++) {
        if (i && !isalnum((unsigned char)dot[i]))
            return def;
        buf[i] = (char)tolower((unsigned char)dot[i]);
        buf[i + 1] = '\0';
    }
    return buf;
}

/* Where a download goes: cache/images/img_<hex>.<ext>, cache/audio/audio_<hex>.<ext>,
 * cache/documents/doc_<hex>_<name> (the original's cache layout). */
static char *cache_path(mm_adapter *a, const char *mime, const char *name)
{
    char ext[16];
    unsigned long long u = (unsigned long long)(ak_rand(&a->rnd) & 0xffffffffffffULL);
    if (mime && strncmp(mime, "image/", 6) == 0)
        return rt_xasprintf("%s/images/img_%012llx%s", a->cache_dir, u,
                            ext_of(name, ".png", ext, sizeof(ext)));
    if (mime && strncmp(mime, "audio/", 6) == 0)
        return rt_xasprintf("%s/audio/audio_%012llx%s", a->cache_dir, u,
                            ext_of(name, ".ogg", ext, sizeof(ext)));
    char *safe = mm_safe_name(name);
    char *p = rt_xasprintf("%s/documents/doc_%012llx_%s", a->cache_dir, u, safe);
    rt_free(safe);
    return p;
}

static void on_file_info(mm_adapter *a, rt_ctx *cx, mm_req *r, rt_io_msg_http_done *d)
{
    mm_job *j = r->ctx;
    cJSON *info = !d->err && d->status == 200 ? cJSON_Parse(d->body ? d->body : "") : NULL;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(info, "name");
    const cJSON *mime = cJSON_GetObjectItemCaseSensitive(info, "mime_type");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(info, "size");
    if (!cJSON_IsObject(info)) {
        RT_WARN(MM_LOG, "Mattermost: failed to get file info %s: %s", r->aux,
                d->err ? rt_strerror(d->err) : "bad answer");
        cJSON_Delete(info);
        job_step_done(a, cx, j);
        return;
    }
    if (cJSON_IsNumber(size) && size->valuedouble > (double)a->o.max_file_bytes) {
        RT_WARN(MM_LOG,
                "Mattermost: attachment %s (%.0f bytes) is over the %zu-byte limit; "
                "skipped",
                r->aux, size->valuedouble, a->o.max_file_bytes);
        cJSON_Delete(info);
        job_step_done(a, cx, j);
        return;
    }
    size_t i = r->idx;
    j->mimes[i] = rt_xstrdup(cJSON_IsString(mime) ? mime->valuestring : "application/octet-stream");
    j->file_name[i] = rt_xstrdup(cJSON_IsString(name) ? name->valuestring : r->aux);
    cJSON_Delete(info);
    char *path = rt_xasprintf("/api/v4/files/%s", r->aux);
    mm_req *g = mm__req_new(a, MM_R_FILE_GET, NULL, path);
    rt_free(path);
    g->ctx = j;
    g->idx = i;
    g->aux = rt_xstrdup(r->aux);
    g->max_body = a->o.max_file_bytes;
    g->timeout_ms = a->o.upload_timeout_ms;
    mm__submit(a, cx, g);
}

static void on_file_get(mm_adapter *a, rt_ctx *cx, mm_req *r, rt_io_msg_http_done *d)
{
    mm_job *j = r->ctx;
    if (d->err || d->status != 200 || !d->body) {
        RT_WARN(MM_LOG, "Mattermost: failed to download file %s: %s", r->aux,
                d->err ? rt_strerror(d->err) : "HTTP error");
        job_step_done(a, cx, j);
        return;
    }
    size_t i = r->idx;
    char *dest = cache_path(a, j->mimes[i], j->file_name[i]);
    mm_req *s = mm__req_new(a, MM_R_FILE_SAVE, NULL, NULL);
    s->ctx = j;
    s->idx = i;
    s->aux = dest;
    uint64_t tag = mm__track(a, s);
    char *data = d->body;
    d->body = NULL; /* stolen: the io actor writes and frees it */
    ak_io_write(cx, a->io, dest, data, d->body_len, 0600, a->self, tag);
}

void mm__inbound_io(mm_adapter *a, rt_ctx *cx, mm_req *r, ak_io_done *d)
{
    mm_job *j = r->ctx;
    if (d->err == 0) {
        j->paths[r->idx] = r->aux;
        r->aux = NULL;
    } else {
        RT_WARN(MM_LOG, "Mattermost: could not save an attachment: %s", rt_strerror(d->err));
    }
    job_step_done(a, cx, j);
}

static void on_user(mm_adapter *a, rt_ctx *cx, mm_req *r, rt_io_msg_http_done *d)
{
    mm_job *j = r->ctx;
    cJSON *u = !d->err && d->status == 200 ? cJSON_Parse(d->body ? d->body : "") : NULL;
    const cJSON *un = cJSON_GetObjectItemCaseSensitive(u, "username");
    if (cJSON_IsString(un) && *un->valuestring)
        user_put(a, r->aux, un->valuestring);
    cJSON_Delete(u);
    const char *name = user_name(a, r->aux);
    if (j->ev && !j->ev->src.user_name)
        j->ev->src.user_name = rt_xstrdup(name ? name : r->aux);
    job_step_done(a, cx, j);
}

/* ================================================================ catch-up */

void mm__catchup_reset(mm_adapter *a)
{
    mm_channels_free(a->cu_ch, a->cu_n);
    a->cu_ch = NULL;
    a->cu_n = a->cu_next = 0;
    mm_strv_free(a->cu_teams);
    a->cu_teams = NULL;
    a->cu_nteams = a->cu_team_next = 0;
    for (size_t i = 0; i < a->cu_np; i++)
        mm_post_fini(&a->cu_posts[i].p);
    rt_free(a->cu_posts);
    a->cu_posts = NULL;
    a->cu_np = a->cu_cap = 0;
}

static void cu_request(mm_adapter *a, rt_ctx *cx, int kind, char *path)
{
    mm_req *r = mm__req_new(a, kind, NULL, path);
    rt_free(path);
    r->gen = a->cu_gen;
    mm__submit(a, cx, r);
}

void mm__catchup_start(mm_adapter *a, rt_ctx *cx)
{
    mm__catchup_reset(a);
    ak_timer_cancel(cx, &a->tm, MM_T_CATCHUP);
    a->cu_gen++;
    a->catching_up = true;
    cu_request(a, cx, MM_R_CHANNELS, rt_xasprintf("/api/v4/users/%s/channels", a->bot_id));
}

void mm__on_catchup_timer(mm_adapter *a, rt_ctx *cx)
{
    if (a->phase == MM_PH_LIVE)
        mm__catchup_start(a, cx);
}

/* A request of the catch-up failed in a way worth retrying: try the whole catch-up again
 * later; the mark stays where it is meanwhile (rule 2). */
static void cu_retry(mm_adapter *a, rt_ctx *cx, const char *what, rt_io_msg_http_done *d)
{
    a->cu_retry_ms = mm_backoff_next(a->cu_retry_ms, a->o.backoff_min_ms, a->o.backoff_max_ms);
    RT_WARN(MM_LOG, "Mattermost: catching up failed (%s: %s); retrying in %.1fs", what,
            d->err ? rt_strerror(d->err) : "HTTP error", (double)a->cu_retry_ms / 1000.0);
    mm__catchup_reset(a);
    ak_timer_arm(cx, a->self, &a->tm, MM_T_CATCHUP, a->cu_retry_ms);
}

static int cu_post_cmp(const void *x, const void *y)
{
    const mm_cu_post *a = x, *b = y;
    if (a->p.create_at != b->p.create_at)
        return a->p.create_at < b->p.create_at ? -1 : 1;
    return strcmp(a->p.id, b->p.id);
}

static void cu_finish(mm_adapter *a, rt_ctx *cx)
{
    if (a->cu_np)
        qsort(a->cu_posts, a->cu_np, sizeof(*a->cu_posts), cu_post_cmp);
    a->catching_up = false; /* the posts below go through the live path */
    a->cu_retry_ms = 0;
    size_t taken = 0;
    for (size_t i = 0; i < a->cu_np; i++) {
        const mm_channel *ch = &a->cu_ch[a->cu_posts[i].ch];
        taken += inbound_post(a, cx, &a->cu_posts[i].p, ch->type, NULL,
                              ch->display_name && *ch->display_name ? ch->display_name : NULL);
    }
    if (taken)
        RT_INFO(MM_LOG, "Mattermost: caught up with %zu post(s) made while disconnected", taken);
    mm__catchup_reset(a);
    jobs_flush(a, cx);
}

static void cu_fetch_next(mm_adapter *a, rt_ctx *cx)
{
    while (a->cu_next < a->cu_n && a->cu_ch[a->cu_next].last_post_at < a->cu_since)
        a->cu_next++;
    if (a->cu_next == a->cu_n) {
        cu_finish(a, cx);
        return;
    }
    cu_request(a, cx, MM_R_POSTS_SINCE,
               rt_xasprintf("/api/v4/channels/%s/posts?since=%lld", a->cu_ch[a->cu_next].id,
                            (long long)a->cu_since));
}

static void cu_channels_known(mm_adapter *a, rt_ctx *cx)
{
    if (!a->st.mark) { /* rule 4: the first start begins at the present */
        int64_t newest = a->handled_max;
        for (size_t i = 0; i < a->cu_n; i++)
            if (a->cu_ch[i].last_post_at > newest)
                newest = a->cu_ch[i].last_post_at;
        a->st.mark = newest > 0 ? newest : wall_ms();
        a->st_dirty = true;
        a->catching_up = false;
        mm__catchup_reset(a);
        jobs_flush(a, cx);
        return;
    }
    int64_t since = a->st.mark - MM_SEEN_SLACK_MS;
    int64_t floor = wall_ms() - a->o.catchup_max_age_ms;
    if (since < floor) {
        RT_WARN(MM_LOG,
                "Mattermost: posts older than %lld h are not answered after a "
                "reconnect",
                (long long)(a->o.catchup_max_age_ms / 3600000));
        since = floor;
    }
    a->cu_since = since;
    a->cu_next = 0;
    cu_fetch_next(a, cx);
}

static void cu_add_channels(mm_adapter *a, mm_channel *v, size_t n)
{
    a->cu_ch = rt_xrealloc(a->cu_ch, (a->cu_n + n + 1) * sizeof(*a->cu_ch));
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        for (size_t k = 0; k < a->cu_n && !dup; k++)
            dup = strcmp(a->cu_ch[k].id, v[i].id) == 0;
        if (dup) {
            rt_free(v[i].id);
            rt_free(v[i].type);
            rt_free(v[i].display_name);
            rt_free(v[i].name);
            continue;
        }
        a->cu_ch[a->cu_n++] = v[i];
    }
    rt_free(v);
}

static void cu_next_team(mm_adapter *a, rt_ctx *cx)
{
    if (a->cu_team_next >= a->cu_nteams) {
        cu_channels_known(a, cx);
        return;
    }
    cu_request(a, cx, MM_R_TEAM_CHANNELS,
               rt_xasprintf("/api/v4/users/%s/teams/%s/channels", a->bot_id,
                            a->cu_teams[a->cu_team_next++]));
}

static void on_cu_result(mm_adapter *a, rt_ctx *cx, mm_req *r, rt_io_msg_http_done *d)
{
    if (r->gen != a->cu_gen || !a->catching_up)
        return;
    bool ok = !d->err && d->status == 200;
    mm_channel *v = NULL;
    size_t n = 0;
    switch (r->kind) {
    case MM_R_CHANNELS:
        if (ok && mm_channels_parse(d->body, &v, &n) == 0) {
            cu_add_channels(a, v, n);
            cu_channels_known(a, cx);
        } else if (!d->err && d->status >= 400 && d->status < 500 && d->status != 429) {
            /* servers before 6.1: the channels of each team */
            cu_request(a, cx, MM_R_TEAMS, rt_xasprintf("/api/v4/users/%s/teams", a->bot_id));
        } else {
            cu_retry(a, cx, "listing channels", d);
        }
        break;
    case MM_R_TEAMS:
        if (!ok || !(a->cu_teams = mm_team_ids_parse(d->body, &a->cu_nteams))) {
            cu_retry(a, cx, "listing teams", d);
            break;
        }
        cu_next_team(a, cx);
        break;
    case MM_R_TEAM_CHANNELS:
        if (!ok || mm_channels_parse(d->body, &v, &n) != 0) {
            cu_retry(a, cx, "listing a team's channels", d);
            break;
        }
        cu_add_channels(a, v, n);
        cu_next_team(a, cx);
        break;
    default: break;
    }
}

static void on_posts_since(mm_adapter *a, rt_ctx *cx, mm_req *r, rt_io_msg_http_done *d)
{
    if (r->gen != a->cu_gen || !a->catching_up)
        return;
    if (d->err || d->status >= 500 || d->status == 429) {
        cu_retry(a, cx, "fetching posts", d);
        return;
    }
    mm_post *v = NULL;
    size_t n = 0;
    if (d->status != 200 || mm_postlist_parse(d->body, &v, &n) != 0) {
        /* left the channel meanwhile (403), or it is gone: nothing to answer there */
        RT_DEBUG(MM_LOG, "Mattermost: posts of channel %s: HTTP %d; skipped",
                 a->cu_ch[a->cu_next].id, d->status);
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].create_at < a->cu_since || v[i].delete_at) {
            mm_post_fini(&v[i]);
            continue;
        }
        if (a->cu_np == a->cu_cap) {
            a->cu_cap = a->cu_cap ? a->cu_cap * 2 : 16;
            a->cu_posts = rt_xrealloc(a->cu_posts, a->cu_cap * sizeof(*a->cu_posts));
        }
        a->cu_posts[a->cu_np].p = v[i]; /* moved */
        a->cu_posts[a->cu_np].ch = a->cu_next;
        a->cu_np++;
    }
    rt_free(v);
    a->cu_next++;
    cu_fetch_next(a, cx);
}

void mm__inbound_result(mm_adapter *a, rt_ctx *cx, mm_req *r, rt_io_msg_http_done *d)
{
    switch (r->kind) {
    case MM_R_USER: on_user(a, cx, r, d); break;
    case MM_R_FILE_INFO: on_file_info(a, cx, r, d); break;
    case MM_R_FILE_GET: on_file_get(a, cx, r, d); break;
    case MM_R_POSTS_SINCE: on_posts_since(a, cx, r, d); break;
    case MM_R_CHANNELS:
    case MM_R_TEAMS:
    case MM_R_TEAM_CHANNELS: on_cu_result(a, cx, r, d); break;
    default: break;
    }
}
