/*
 * tool_send — the `send_message` tool (agent-core §3.3, gateway.md §11.5): send text to a
 * chat on any platform the running gateway has connected, or list the known targets.
 *
 * Unlike the original, which opened a new HTTP client per call and posted Matrix messages in
 * clear even into encrypted rooms (gateway.md §12.1 item 11), the message goes through the
 * gateway's live adapter: GW_MSG_DELIVER to the gateway actor, and this call's actor waits
 * for GW_MSG_DELIVERED (never blocking a worker: the call runs on a detached actor because
 * it reads the channel directory, and waiting is a message). Without a gateway in the
 * process (`hermes chat -q`) the tool answers with a clear error.
 *
 * Not done here (yet): MEDIA: attachments and mirroring the text into the receiving chat's
 * session; the cron duplicate-send guard is moot because cron runs have no send_message.
 */
#include "cron_pyjson.h"
#include "gw.h"
#include "rt_alloc.h"
#include "rt_timer.h"
#include "send_dir.h"
#include "tool.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define DELIVER_TIMEOUT_MS 60000 /* the original's live-adapter timeout */

typedef struct send_call {
    char *platform;
    char *chat_id; /* NULL: the home channel */
    uint64_t timer;
} send_call;

static void drop_deliver(rt_msg *m)
{
    gw_msg_deliver *d = (gw_msg_deliver *)m;
    rt_free(d->platform);
    rt_free(d->chat_id);
    rt_free(d->thread_id);
    rt_free(d->text);
}

/* GW_MSG_DELIVER, built here rather than with gw_deliver_new: tools link below the gateway
 * library, and only the message layout (gw.h) is shared. */
static rt_msg *deliver_new(const char *platform, const char *chat, const char *thread,
                           const char *text, rt_ref reply_to, uint64_t tag)
{
    gw_msg_deliver *d = RT_MSG_NEW(gw_msg_deliver, GW_MSG_DELIVER);
    d->platform = rt_xstrdup(platform);
    d->chat_id = chat ? rt_xstrdup(chat) : NULL;
    d->thread_id = thread ? rt_xstrdup(thread) : NULL;
    d->text = rt_xstrdup(text);
    d->reply_to = reply_to;
    d->tag = tag;
    d->hdr.drop = drop_deliver;
    return &d->hdr;
}

static void finish_obj(rt_ctx *cx, tool_run *run, cJSON *o, bool ascii)
{
    char *s = cron_pyjson(o, -1, ascii);
    cJSON_Delete(o);
    tool_finish(cx, run, s);
}

/* tool_error(msg): {"error": msg}, UTF-8 kept. */
static void finish_error(rt_ctx *cx, tool_run *run, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    finish_obj(cx, run, o, false);
}

/* json.dumps({"error": msg}): non-ASCII escaped. */
static void finish_error_ascii(rt_ctx *cx, tool_run *run, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    finish_obj(cx, run, o, true);
}

static const char *home_of(const tool_run *run)
{
    return run->env && run->env->hermes_home ? run->env->hermes_home : ".";
}

static void do_list(rt_ctx *cx, tool_run *run)
{
    cJSON *dir = send_directory(home_of(run));
    char *text = send_directory_display(dir);
    cJSON_Delete(dir);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "targets", text);
    rt_free(text);
    finish_obj(cx, run, o, true);
}

/* Split "platform[:ref]" into a lower-cased platform and the trimmed ref (or NULL). */
static void split_target(const char *target, char **platform, char **ref)
{
    const char *colon = strchr(target, ':');
    size_t n = colon ? (size_t)(colon - target) : strlen(target);
    const char *p = target;
    while (n && isspace((unsigned char)*p))
        p++, n--;
    while (n && isspace((unsigned char)p[n - 1]))
        n--;
    *platform = rt_xstrndup(p, n);
    for (char *c = *platform; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    *ref = NULL;
    if (colon) {
        const char *r = colon + 1;
        while (isspace((unsigned char)*r))
            r++;
        size_t m = strlen(r);
        while (m && isspace((unsigned char)r[m - 1]))
            m--;
        *ref = rt_xstrndup(r, m);
    }
}

static void unknown_platform(rt_ctx *cx, tool_run *run, const char *platform)
{
    char avail[512] = "";
    for (const char *const *p = send_platforms; *p; p++) {
        size_t l = strlen(avail);
        snprintf(avail + l, sizeof(avail) - l, "%s%s", l ? ", " : "", *p);
    }
    char msg[800];
    snprintf(msg, sizeof(msg), "Unknown platform: %s. Available: %s", platform, avail);
    finish_error(cx, run, msg);
}

/* The chat a ref names: explicit, or resolved through the directory. false after finishing
 * the call with an error. */
static bool resolve_ref(rt_ctx *cx, tool_run *run, const char *platform, const char *ref,
                        char **chat, char **thread)
{
    if (send_parse_ref(platform, ref, chat, thread))
        return true;
    cJSON *dir = send_directory(home_of(run));
    char *id = send_resolve_name(dir, platform, ref);
    cJSON_Delete(dir);
    if (!id) {
        char msg[1024];
        snprintf(msg, sizeof(msg),
                 "Could not resolve '%s' on %s. Use send_message(action='list') to see available "
                 "targets.",
                 ref, platform);
        finish_error_ascii(cx, run, msg);
        return false;
    }
    /* a directory id may carry a thread ("<chat>:<thread>", from a threaded session) */
    if (!send_parse_ref(platform, id, chat, thread)) {
        char *colon = strrchr(id, ':');
        if (colon && strcmp(platform, "matrix") != 0) {
            *chat = rt_xstrndup(id, (size_t)(colon - id));
            *thread = rt_xstrdup(colon + 1);
        } else {
            *chat = rt_xstrdup(id);
        }
    }
    rt_free(id);
    return true;
}

static void do_send(rt_ctx *cx, tool_run *run)
{
    const char *target = tool_arg_str(run, "target"), *message = tool_arg_str(run, "message");
    if (!target || !*target || !message || !*message) {
        finish_error(cx, run, "Both 'target' and 'message' are required when action='send'");
        return;
    }
    char *platform, *ref, *chat = NULL, *thread = NULL;
    split_target(target, &platform, &ref);
    if (ref && *ref && !resolve_ref(cx, run, platform, ref, &chat, &thread))
        goto out;
    if (!send_platform_known(platform)) {
        unknown_platform(cx, run, platform);
        goto out;
    }
    rt_ref gw = rt_whereis(cx, GW_NAME);
    if (!gw) {
        finish_error(cx, run,
                     "No gateway is running in this process, so no messaging platform is "
                     "connected. send_message works in sessions of `hermes gateway run`; start "
                     "the gateway to send messages.");
        goto out;
    }
    send_call *c = rt_xcalloc(1, sizeof(*c));
    c->platform = platform;
    c->chat_id = chat ? rt_xstrdup(chat) : NULL;
    platform = NULL;
    run->data = c;
    rt_send(cx, gw, deliver_new(c->platform, chat, thread, message, rt_self(cx), run->seq));
    c->timer = rt_send_after(cx, rt_self(cx), rt_timeout_new(run->seq), DELIVER_TIMEOUT_MS);
out:
    rt_free(platform);
    rt_free(ref);
    rt_free(chat);
    rt_free(thread);
}

static void send_start(rt_ctx *cx, tool_run *run)
{
    const char *action = tool_arg_str(run, "action");
    if (action && strcmp(action, "list") == 0)
        do_list(cx, run);
    else
        do_send(cx, run);
}

static void on_delivered(rt_ctx *cx, tool_run *run, send_call *c, gw_msg_delivered *d)
{
    rt_timer_cancel(cx, c->timer);
    char msg[1024], var[96];
    if (d->err == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddTrueToObject(o, "success");
        cJSON_AddStringToObject(o, "platform", c->platform);
        cJSON_AddStringToObject(o, "chat_id", d->chat_id ? d->chat_id : "");
        if (!c->chat_id) {
            snprintf(msg, sizeof(msg), "Sent to %s home channel (chat_id: %s)", c->platform,
                     d->chat_id ? d->chat_id : "");
            cJSON_AddStringToObject(o, "note", msg);
        }
        finish_obj(cx, run, o, true);
    } else if (d->err == -EDESTADDRREQ) {
        snprintf(msg, sizeof(msg),
                 "No home channel set for %s to determine where to send the message. Either "
                 "specify a channel directly with '%s:CHANNEL_NAME', or set a home channel via: "
                 "hermes config set %s <channel_id>",
                 c->platform, c->platform, send_home_var(c->platform, var, sizeof(var)));
        finish_error_ascii(cx, run, msg);
    } else if (d->err == -ENOENT) {
        snprintf(msg, sizeof(msg),
                 "Platform '%s' is not configured. Set up credentials in ~/.hermes/config.yaml "
                 "or environment variables.",
                 c->platform);
        finish_error(cx, run, msg);
    } else {
        snprintf(msg, sizeof(msg), "Send failed: %s", d->errmsg);
        finish_error_ascii(cx, run, msg);
    }
}

static void send_msg(rt_ctx *cx, tool_run *run, rt_msg *m)
{
    send_call *c = run->data;
    if (!c)
        return;
    if (m->type == GW_MSG_DELIVERED && ((gw_msg_delivered *)m)->tag == run->seq)
        on_delivered(cx, run, c, (gw_msg_delivered *)m);
    else if (m->type == RT_MSG_TIMEOUT && ((rt_msg_timeout *)m)->tag == run->seq)
        finish_error_ascii(cx, run,
                           "Send failed: the gateway did not confirm the delivery "
                           "within 60 s");
}

static void send_interrupt(rt_ctx *cx, tool_run *run)
{
    send_call *c = run->data;
    if (c)
        rt_timer_cancel(cx, c->timer);
    finish_error(cx, run, "Interrupted");
}

static void send_cleanup(tool_run *run)
{
    send_call *c = run->data;
    if (!c)
        return;
    rt_free(c->platform);
    rt_free(c->chat_id);
    rt_free(c);
    run->data = NULL;
}

static bool send_available(const tool_env *env)
{
    return !env || !env->platform || strcmp(env->platform, "cron") != 0;
}

const tool_def tool_def_send_message = {
    .name = "send_message",
    .toolset = "messaging",
    .schema =
        "{\"name\":\"send_message\",\"description\":\"Send a message to a connected messaging "
        "platform, or list available targets.\\n\\nIMPORTANT: When the user asks to send to a "
        "specific channel or person (not just a bare platform name), call "
        "send_message(action='list') FIRST to see available targets, then send to the correct "
        "one.\\nIf the user just says a platform name like 'send to telegram', send directly "
        "to the home channel without listing first.\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"action\":{\"type\":\"string\",\"enum\":[\"send\",\"list\"],"
        "\"description\":\"Action to perform. 'send' (default) sends a message. 'list' returns "
        "all available channels/contacts across connected platforms.\"},\"target\":{\"type\":"
        "\"string\",\"description\":\"Delivery target. Format: 'platform' (uses home channel), "
        "'platform:#channel-name', 'platform:chat_id', or 'platform:chat_id:thread_id' for "
        "Telegram topics and Discord threads. Examples: 'telegram', "
        "'telegram:-1001234567890:17585', 'discord:999888777:555444333', 'discord:#bot-home', "
        "'slack:#engineering', 'signal:+155****4567', 'matrix:!roomid:server.org', "
        "'matrix:@user:server.org'\"},\"message\":{\"type\":\"string\",\"description\":\"The "
        "message text to send\"}},\"required\":[]}}",
    .blocking = true,
    .available = send_available,
    .start = send_start,
    .on_msg = send_msg,
    .on_interrupt = send_interrupt,
    .cleanup = send_cleanup,
};
