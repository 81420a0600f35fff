/*
 * ag_msgs — constructors of the session's messages, ids and model facts.
 */
#include "ag_int.h"
#include "rt_alloc.h"
#include "rt_util.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ========================================================== sink messages */

void ag__drop_delta(rt_msg *m)
{
    rt_free(((ag_msg_delta *)m)->text);
}
void ag__drop_progress(rt_msg *m)
{
    rt_free(((ag_msg_progress *)m)->tool);
    rt_free(((ag_msg_progress *)m)->preview);
}
static void drop_status(rt_msg *m)
{
    rt_free(((ag_msg_status *)m)->text);
}
void ag__drop_ask(rt_msg *m)
{
    ag_msg_ask *a = (ag_msg_ask *)m;
    rt_free(a->text);
    rt_free(a->description);
    cJSON_Delete(a->choices);
}
void ag__drop_done(rt_msg *m)
{
    rt_free(((ag_msg_done *)m)->text);
    rt_free(((ag_msg_done *)m)->errmsg);
    rt_free(((ag_msg_done *)m)->session_id);
}
static void drop_control_reply(rt_msg *m)
{
    rt_free(((ag_msg_control_reply *)m)->text);
    cJSON_Delete(((ag_msg_control_reply *)m)->info);
}

rt_msg *ag__control_reply_new(const ag_msg_control *c, int err, int n, char *text, cJSON *info)
{
    ag_msg_control_reply *r = RT_MSG_NEW(ag_msg_control_reply, AG_MSG_CONTROL_REPLY);
    r->op = c->op;
    r->tag = c->tag;
    r->err = err;
    r->n = n;
    r->text = text;
    r->info = info;
    r->hdr.drop = drop_control_reply;
    return &r->hdr;
}

void ag__to_sink(rt_ctx *cx, ag_session *s, rt_msg *m)
{
    if (s->sink)
        rt_send(cx, s->sink, m);
    else
        rt_msg_free(m);
}

void ag__send_status(rt_ctx *cx, ag_session *s, const char *text)
{
    ag_msg_status *m = RT_MSG_NEW(ag_msg_status, AG_MSG_STATUS);
    m->turn = s->turn;
    m->text = rt_xstrdup(text);
    m->hdr.drop = drop_status;
    ag__to_sink(cx, s, &m->hdr);
}

char *ag_new_session_id(void)
{
    /* The original's shape, YYYYMMDD_HHMMSS_<6 hex>. Random suffixes collide within a second
     * under load (birthday bound: 1000 new sessions a second collide 3% of seconds), so this
     * process counts up from a random start: ids made here in one second never repeat (below
     * 16M a second), and another process starts elsewhere. */
    static _Atomic uint32_t next;
    static _Atomic bool seeded;
    if (!atomic_load_explicit(&seeded, memory_order_acquire)) {
        uint32_t r = 0;
        if (getentropy(&r, sizeof(r)) != 0) {
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            r = (uint32_t)rt_hash_u64((uint64_t)t.tv_nsec ^ (uint64_t)getpid());
        }
        uint32_t zero = 0;
        (void)atomic_compare_exchange_strong(&next, &zero, r | 1u);
        atomic_store_explicit(&seeded, true, memory_order_release);
    }
    uint32_t n = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed);
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char ts[32];
    strftime(ts, sizeof(ts), "%Y%m%d_%H%M%S", &tm);
    return rt_xasprintf("%s_%06x", ts, (unsigned)(n & 0xffffff));
}

int64_t ag_context_length_for(const char *model)
{
    static const struct {
        const char *needle;
        int64_t len;
    } table[] = {{"claude", 200000},     {"gpt-4o", 128000},        {"gemini-2", 1048576},
                 {"gemini-3", 1048576},  {"llama-3.3-70b", 131072}, {"deepseek-chat-v3", 65536},
                 {"qwen-2.5-72b", 32768}};
    for (size_t i = 0; model && i < RT_ARRAY_LEN(table); i++)
        if (strstr(model, table[i].needle))
            return table[i].len;
    return 128000;
}
