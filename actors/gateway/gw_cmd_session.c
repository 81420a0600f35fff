/*
 * gw_cmd_session — /title, /resume and /branch (/fork) for one chat (gateway.md §4), and the
 * dispatcher of the commands kept out of gw_chat.c.
 *
 * Titles live in state.db (st_titles.h); every question goes to the store writer as an
 * ST_MSG_SESSION_OP and is answered when its ST_MSG_RESULT comes back to the chat actor, so
 * nothing here blocks. /resume and /branch then move the conversation to the other session
 * with gw_chat_switch_session: the agent is stopped and the next message loads that
 * session's transcript from state.db.
 *
 * Replies are the original's (gateway/run.py _handle_title/_resume/_branch_command).
 * C: /branch refuses while a turn runs (the original copies a transcript still being
 * written); an explicit /branch name that is taken fails as a whole instead of leaving an
 * untitled branch; /resume lists only the asking user's sessions, with their counts.
 *
 * Threads: the chat actor's worker only.
 */
#include "gw_cmds.h"
#include "gw_cmd_rollback.h"

#include "rt_alloc.h"
#include "rt_buf.h"
#include "rt_util.h"
#include "st_read.h"
#include "st_titles.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LIST_MAX    10 /* titled sessions listed by /resume */
#define PREVIEW_LEN 40

static const char BUSY[] = "Agent is running \xe2\x80\x94 wait or /stop first.";
static const char NO_DB[] = "Session database not available.";

/* ================================================================ state */

gw_cmds *gw_cmds_get(gw_cmds **st)
{
    if (!*st)
        *st = rt_xcalloc(1, sizeof(**st));
    return *st;
}

uint64_t gw_cmds_pend(gw_cmds *s, int kind, const gw_target *to, const char *arg, int64_t n)
{
    if (s->npend == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4;
        s->pend = rt_xrealloc(s->pend, s->cap * sizeof(*s->pend));
    }
    gw_cmd_pend *p = &s->pend[s->npend++];
    memset(p, 0, sizeof(*p));
    p->tag = ++s->next_tag;
    p->kind = kind;
    gw_target_copy(&p->to, to);
    p->arg = arg ? rt_xstrdup(arg) : NULL;
    p->n = n;
    return p->tag;
}

static void pend_fini(gw_cmd_pend *p)
{
    gw_target_fini(&p->to);
    rt_free(p->arg);
}

static void drop_pend(gw_cmds *s, uint64_t tag)
{
    for (size_t i = 0; i < s->npend; i++) {
        if (s->pend[i].tag != tag)
            continue;
        pend_fini(&s->pend[i]);
        memmove(s->pend + i, s->pend + i + 1, (s->npend - i - 1) * sizeof(*s->pend));
        s->npend--;
        return;
    }
}

void gw_cmds_free(gw_cmds *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->npend; i++)
        pend_fini(&st->pend[i]);
    rt_free(st->pend);
    gw_target_fini(&st->btw_to);
    rt_free(st->btw_id);
    rt_free(st);
}

/* ================================================================ helpers */

static void sayf(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sayf(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    gw_chat_say(cx, c, to, rt_buf_cstr(&b), GW_TEXT_NOTICE);
    rt_buf_fini(&b);
}

/* Send a session operation to the store for the chat; the answer comes back to on_result. */
static void ask_store(rt_ctx *cx, gw_chat *c, gw_cmds **st, int kind, const gw_target *to,
                      const char *arg, st_msg_sop *m)
{
    gw_shared *sh = gw_chat_shared(c);
    if (!sh->store) {
        rt_msg_free(&m->hdr);
        gw_chat_say(cx, c, to, NO_DB, GW_TEXT_NOTICE);
        return;
    }
    gw_cmds *s = gw_cmds_get(st);
    m->req.reply_to = rt_self(cx);
    m->req.tag = gw_cmds_pend(s, kind, to, arg, 0);
    uint64_t tag = m->req.tag;
    if (!rt_send(cx, sh->store, &m->hdr)) {
        drop_pend(s, tag);
        gw_chat_say(cx, c, to, NO_DB, GW_TEXT_NOTICE);
    }
}

/* The user's title cleaned, or NULL after telling them why. */
static char *clean_title(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *raw)
{
    char err[200];
    char *t = NULL;
    if (st_title_sanitize(raw, &t, err, sizeof(err)) != 0) {
        sayf(cx, c, to, "\xe2\x9a\xa0\xef\xb8\x8f %s", err);
        return NULL;
    }
    return t;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static long long jnum(const cJSON *o, const char *k)
{
    return (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* ================================================================ commands */

static void cmd_title(rt_ctx *cx, gw_chat *c, gw_cmds **st, const gw_target *to, const char *args)
{
    if (!*args) {
        ask_store(cx, c, st, GW_REQ_TITLE_GET, to, NULL,
                  st_sop_new(ST_SOP_TITLE_GET, gw_chat_session_id(c), 0, 0));
        return;
    }
    char *t = clean_title(cx, c, to, args);
    if (!t)
        return;
    st_msg_sop *m = st_sop_new(ST_SOP_TITLE_SET, gw_chat_session_id(c), 0, 0);
    m->title = t;
    ask_store(cx, c, st, GW_REQ_TITLE_SET, to, NULL, m);
}

static void cmd_resume(rt_ctx *cx, gw_chat *c, gw_cmds **st, const gw_target *to, const char *args)
{
    const gw_source *o = gw_chat_origin(c);
    st_msg_sop *m = st_sop_new(*args ? ST_SOP_TITLE_FIND : ST_SOP_TITLE_LIST, NULL, 0, 0);
    m->source = o->platform ? rt_xstrdup(o->platform) : NULL;
    m->user_id = o->user_id ? rt_xstrdup(o->user_id) : NULL;
    m->n = LIST_MAX;
    if (*args)
        m->title = rt_xstrdup(args);
    ask_store(cx, c, st, *args ? GW_REQ_RESUME : GW_REQ_RESUME_LIST, to, *args ? args : NULL, m);
}

static void cmd_branch(rt_ctx *cx, gw_chat *c, gw_cmds **st, const gw_target *to, const char *args)
{
    if (gw_chat_busy(c)) {
        gw_chat_say(cx, c, to, BUSY, GW_TEXT_NOTICE);
        return;
    }
    char *t = NULL;
    if (*args && !(t = clean_title(cx, c, to, args)))
        return;
    const gw_source *o = gw_chat_origin(c);
    st_msg_sop *m = st_sop_new(ST_SOP_BRANCH, gw_chat_session_id(c), 0, 0);
    m->title = t;
    m->new_id = gw_new_session_id();
    m->source = rt_xstrdup(o->platform ? o->platform : "gateway");
    m->user_id = o->user_id ? rt_xstrdup(o->user_id) : NULL;
    m->model = gw_chat_model(c) ? rt_xstrdup(gw_chat_model(c)) : NULL;
    ask_store(cx, c, st, GW_REQ_BRANCH, to, NULL, m);
}

/* /commands [page]: every command /help lists, 20 a page (15 on Telegram). */
static void cmd_commands(rt_ctx *cx, gw_chat *c, const gw_target *to, const char *args)
{
    int64_t want = 1;
    if (*args && rt_parse_i64(args, INT64_MIN, INT64_MAX, &want) != 0) {
        gw_chat_say(cx, c, to, "Usage: `/commands [page]`", GW_TEXT_NOTICE);
        return;
    }
    const char *platform = gw_chat_origin(c)->platform;
    int64_t per = platform && strcmp(platform, "telegram") == 0 ? 15 : 20;
    char *help = gw_chat_help_text();
    const char *lines[256];
    int64_t n = 0;
    for (char *p = strstr(help, "\n`/"); p && n < (int64_t)RT_ARRAY_LEN(lines);
         p = strstr(p, "\n`/")) {
        *p++ = '\0'; /* ends the previous line */
        lines[n++] = p;
    }
    int64_t pages = n ? (n + per - 1) / per : 1;
    int64_t page = want < 1 ? 1 : (want > pages ? pages : want);
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_printf(&b, "\xf0\x9f\x93\x9a **Commands** (%lld total, page %lld/%lld)\n", (long long)n,
                  (long long)page, (long long)pages);
    for (int64_t i = (page - 1) * per; i < n && i < page * per; i++)
        rt_buf_printf(&b, "\n%s", lines[i]);
    if (page > 1 || page < pages) {
        rt_buf_append_str(&b, "\n\n");
        if (page > 1)
            rt_buf_printf(&b, "`/commands %lld` \xe2\x86\x90 prev", (long long)(page - 1));
        if (page > 1 && page < pages)
            rt_buf_append_str(&b, " | ");
        if (page < pages)
            rt_buf_printf(&b, "next \xe2\x86\x92 `/commands %lld`", (long long)(page + 1));
    }
    if (page != want)
        rt_buf_printf(&b, "\n_(Requested page %lld was out of range, showing page %lld.)_",
                      (long long)want, (long long)page);
    gw_chat_say(cx, c, to, rt_buf_cstr(&b), GW_TEXT_NOTICE);
    rt_buf_fini(&b);
    rt_free(help);
}

/* ================================================================ answers */

static const char *plural(long long n)
{
    return n == 1 ? "" : "s";
}

static void on_title(rt_ctx *cx, gw_chat *c, const gw_cmd_pend *p, const st_msg_result *r)
{
    if (r->err == -EEXIST) {
        sayf(cx, c, &p->to, "\xe2\x9a\xa0\xef\xb8\x8f %s", r->errmsg);
        return;
    }
    if (r->err) {
        sayf(cx, c, &p->to, "\xe2\x9a\xa0\xef\xb8\x8f Could not %s the title: %s",
             p->kind == GW_REQ_TITLE_SET ? "set" : "read", r->errmsg);
        return;
    }
    const char *t = jstr(r->json, "title");
    if (p->kind == GW_REQ_TITLE_SET)
        sayf(cx, c, &p->to, "\xe2\x9c\x8f\xef\xb8\x8f Session title set: **%s**", t ? t : "");
    else if (t)
        sayf(cx, c, &p->to, "\xf0\x9f\x93\x8c Session: `%s`\nTitle: **%s**", gw_chat_session_id(c),
             t);
    else
        sayf(cx, c, &p->to,
             "\xf0\x9f\x93\x8c Session: `%s`\nNo title set. Usage: `/title My Session Name`",
             gw_chat_session_id(c));
}

static void on_resume_list(rt_ctx *cx, gw_chat *c, const gw_cmd_pend *p, const st_msg_result *r)
{
    if (r->err) {
        sayf(cx, c, &p->to, "Could not list sessions: %s", r->errmsg);
        return;
    }
    if (cJSON_GetArraySize(r->json) == 0) {
        gw_chat_say(cx, c, &p->to,
                    "No named sessions found.\nUse `/title My Session` to name your current "
                    "session, then `/resume My Session` to return to it later.",
                    GW_TEXT_NOTICE);
        return;
    }
    rt_buf b;
    rt_buf_init(&b, SIZE_MAX / 2);
    rt_buf_append_str(&b, "\xf0\x9f\x93\x8b **Named Sessions**\n");
    const cJSON *s;
    cJSON_ArrayForEach(s, r->json)
    {
        long long n = jnum(s, "user_messages");
        rt_buf_printf(&b, "\n\xe2\x80\xa2 **%s** (%lld message%s)", jstr(s, "title"), n, plural(n));
        const char *pv = jstr(s, "preview");
        if (pv && *pv) {
            char *cut = gw_preview(pv, PREVIEW_LEN);
            for (char *q = cut; *q; q++)
                if (*q == '\n' || *q == '\r' || *q == '_')
                    *q = ' ';
            rt_buf_printf(&b, " \xe2\x80\x94 _%s_", cut);
            rt_free(cut);
        }
    }
    rt_buf_append_str(&b, "\n\nUsage: `/resume <session name>`");
    gw_chat_say(cx, c, &p->to, rt_buf_cstr(&b), GW_TEXT_NOTICE);
    rt_buf_fini(&b);
}

static void on_resume(rt_ctx *cx, gw_chat *c, const gw_cmd_pend *p, const st_msg_result *r)
{
    const char *name = p->arg ? p->arg : "";
    if (r->err == -ENOENT) {
        sayf(cx, c, &p->to,
             "No session found matching '**%s**'.\nUse `/resume` with no arguments to see "
             "available sessions.",
             name);
        return;
    }
    if (r->err) {
        sayf(cx, c, &p->to, "Failed to switch session: %s", r->errmsg);
        return;
    }
    const char *id = jstr(r->json, "id");
    if (!id)
        return;
    if (strcmp(id, gw_chat_session_id(c)) == 0) {
        sayf(cx, c, &p->to, "\xf0\x9f\x93\x8c Already on session **%s**.", name);
        return;
    }
    gw_chat_switch_session(cx, c, id);
    long long n = jnum(r->json, "user_messages");
    char part[48] = "";
    if (n > 0)
        snprintf(part, sizeof(part), " (%lld message%s)", n, plural(n));
    const char *t = jstr(r->json, "title");
    sayf(cx, c, &p->to, "\xe2\x86\xbb Resumed session **%s**%s. Conversation restored.",
         t ? t : name, part);
}

static void on_branch(rt_ctx *cx, gw_chat *c, const gw_cmd_pend *p, const st_msg_result *r)
{
    if (r->err == -ENODATA) {
        gw_chat_say(cx, c, &p->to, "No conversation to branch \xe2\x80\x94 send a message first.",
                    GW_TEXT_NOTICE);
        return;
    }
    if (r->err == -EEXIST) {
        sayf(cx, c, &p->to, "\xe2\x9a\xa0\xef\xb8\x8f %s", r->errmsg);
        return;
    }
    if (r->err) {
        sayf(cx, c, &p->to, "Failed to create branch: %s", r->errmsg);
        return;
    }
    const char *id = jstr(r->json, "id"), *parent = jstr(r->json, "parent");
    if (!id || !parent)
        return;
    char *old = rt_xstrdup(parent);
    gw_chat_switch_session(cx, c, id);
    long long n = jnum(r->json, "user_messages");
    sayf(cx, c, &p->to,
         "\xe2\x91\x82 Branched to **%s** (%lld message%s copied)\nOriginal: `%s`\nBranch: "
         "`%s`\nUse `/resume` to switch back to the original.",
         jstr(r->json, "title"), n, plural(n), old, id);
    rt_free(old);
}

static bool on_result(rt_ctx *cx, gw_chat *c, gw_cmds *s, const st_msg_result *r)
{
    gw_cmd_pend p;
    size_t i = 0;
    while (i < s->npend && s->pend[i].tag != r->tag)
        i++;
    if (i == s->npend)
        return false;
    p = s->pend[i];
    memmove(s->pend + i, s->pend + i + 1, (s->npend - i - 1) * sizeof(*s->pend));
    s->npend--;
    switch (p.kind) {
    case GW_REQ_TITLE_GET:
    case GW_REQ_TITLE_SET: on_title(cx, c, &p, r); break;
    case GW_REQ_RESUME_LIST: on_resume_list(cx, c, &p, r); break;
    case GW_REQ_RESUME: on_resume(cx, c, &p, r); break;
    case GW_REQ_BRANCH: on_branch(cx, c, &p, r); break;
    case GW_REQ_INSIGHTS: gw_cmd_insights_answer(cx, c, &p, r); break;
    default: break;
    }
    pend_fini(&p);
    return true;
}

/* ================================================================ dispatch */

bool gw_cmds_handle(rt_ctx *cx, gw_chat *c, gw_cmds **st, gw_msg_event *ev, const char *name,
                    const char *args)
{
    const gw_target *to = &ev->reply;
    char *a = rt_xstrdup(args ? args : ""); /* without trailing blanks */
    size_t n = strlen(a);
    while (n && (a[n - 1] == ' ' || a[n - 1] == '\t' || a[n - 1] == '\n' || a[n - 1] == '\r'))
        a[--n] = '\0';
    bool handled = true;
    if (strcmp(name, "title") == 0)
        cmd_title(cx, c, st, to, a);
    else if (strcmp(name, "resume") == 0)
        cmd_resume(cx, c, st, to, a);
    else if (strcmp(name, "branch") == 0 || strcmp(name, "fork") == 0)
        cmd_branch(cx, c, st, to, a);
    else if (strcmp(name, "btw") == 0)
        gw_cmd_btw(cx, c, st, ev, a);
    else if (strcmp(name, "commands") == 0)
        cmd_commands(cx, c, to, a);
    else if (strcmp(name, "rollback") == 0) /* filesystem checkpoints (gw_cmd_rollback.c) */
        gw_cmd_rollback(cx, c, to, a);
    else
        handled = gw_cmd_info_handle(cx, c, st, ev, name, a);
    rt_free(a);
    return handled;
}

bool gw_cmds_on_msg(rt_ctx *cx, gw_chat *c, gw_cmds **st, rt_msg *m)
{
    if (!*st)
        return false;
    if (m->type == ST_MSG_RESULT)
        return on_result(cx, c, *st, (const st_msg_result *)m);
    return gw_cmd_btw_on_msg(cx, c, st, m);
}

typedef struct help_line {
    const char *name, *args, *desc, *alias;
} help_line;

/* In the original registry's order of these commands. */
static const help_line help[] = {
    {"title", "[name]", "Set a title for the current session", NULL},
    {"resume", "[name]", "Resume a previously-named session", NULL},
    {"branch", "[name]", "Branch the current session (explore a different path)", "fork"},
    {"btw", "<question>",
     "Ephemeral side question using session context (no tools, not "
     "persisted)",
     NULL},
    {"provider", "", "Show available providers and current provider", NULL},
    {"reasoning", "[level|show|hide]", "Manage reasoning effort and display", NULL},
    {"fast", "[normal|fast|status]", "Toggle fast mode (priority processing)", NULL},
    {"verbose", "", "Cycle tool progress display: off -> new -> all -> verbose", NULL},
    {"rollback", "[number]", "List or restore filesystem checkpoints", NULL},
    {"voice", "[on|off|tts|status]", "Toggle voice mode", NULL},
    {"insights", "[days]", "Show usage insights and analytics (last 30 days)", NULL},
    {"restart", "", "Gracefully restart the gateway after draining active runs", NULL},
    {"debug", "", "Write a redacted debug report (system info + logs)", NULL},
    {"update", "", "How to update this Hermes build", NULL},
};

void gw_cmds_help(rt_buf *b)
{
    for (size_t i = 0; i < RT_ARRAY_LEN(help); i++) {
        const help_line *m = &help[i];
        rt_buf_printf(b, "\n`/%s%s%s` -- %s", m->name, *m->args ? " " : "", m->args, m->desc);
        if (m->alias)
            rt_buf_printf(b, " (alias: `/%s`)", m->alias);
    }
}
