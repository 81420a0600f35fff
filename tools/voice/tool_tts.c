/*
 * tool_tts — the `text_to_speech` tool (toolset tts), as the original's tools/tts_tool.py with
 * the OpenAI provider: the text (cut at 4000 characters) goes to /v1/audio/speech and the
 * audio is saved under ~/.hermes/cache/audio (an .ogg voice note for Telegram, .mp3
 * elsewhere) or at output_path. The result carries the MEDIA:<path> tag the platforms send
 * as a voice message ("[[audio_as_voice]]" first when the file is Opus).
 *
 * Edge TTS (the original's default) and ElevenLabs are not implemented: a call with those
 * providers fails with a sentence naming tts.provider.
 *
 * The call runs on a detached actor (it reads config.yaml and writes the audio file); the
 * HTTP request goes through the reactor and its answer comes back as a message.
 */
#include "cron_pyjson.h"
#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_http.h"
#include "rt_log.h"
#include "rt_util.h"
#include "tool.h"
#include "vo_audio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct tts_call {
    char *path;
    uint64_t http;
} tts_call;

static void finish_py(rt_ctx *cx, tool_run *run, cJSON *o)
{
    char *s = cron_pyjson(o, -1, false);
    cJSON_Delete(o);
    tool_finish(cx, run, s);
}

static void fail(rt_ctx *cx, tool_run *run, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    cJSON_AddBoolToObject(o, "success", false);
    finish_py(cx, run, o);
}

static void tts_cleanup(tool_run *run)
{
    tts_call *t = run->data;
    if (!t)
        return;
    rt_free(t->path);
    rt_free(t);
    run->data = NULL;
}

static char *expand_home(const char *p)
{
    if (p[0] == '~' && (p[1] == '/' || !p[1])) {
        const char *h = getenv("HOME");
        if (h)
            return rt_xasprintf("%s%s", h, p + 1);
    }
    return rt_xstrdup(p);
}

static void tts_start(rt_ctx *cx, tool_run *run)
{
    const char *text = tool_arg_str(run, "text");
    bool blank = true;
    for (const char *p = text ? text : ""; *p && blank; p++)
        blank = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
    if (blank) {
        fail(cx, run, "Text is required");
        return;
    }
    const char *home = run->env ? run->env->hermes_home : NULL;
    int err = 0;
    hm_config *cfg = hm_config_load(home, 0, NULL, &err);
    vo_tts_cfg tc;
    vo_tts_cfg_load(cfg, &tc);
    hm_config_unref(cfg);
    char *why = vo_tts_unavailable(&tc);
    if (why) {
        fail(cx, run, why);
        rt_free(why);
        vo_tts_cfg_fini(&tc);
        return;
    }
    const char *out = tool_arg_str(run, "output_path");
    bool telegram = run->env && run->env->platform && strcmp(run->env->platform, "telegram") == 0;
    char *path = NULL;
    if (out && *out) {
        path = expand_home(out);
        char *slash = strrchr(path, '/');
        if (slash && slash != path) {
            *slash = '\0';
            (void)mkdir(path, 0700); /* the parent, as the original's mkdir(parents) */
            *slash = '/';
        }
    } else {
        char *h = home ? rt_xstrdup(home) : hm_config_home();
        path = vo_tts_output_path(h, telegram);
        rt_free(h);
    }
    if (!path) {
        fail(cx, run, "TTS generation failed (openai): the audio folder could not be created");
        vo_tts_cfg_fini(&tc);
        return;
    }
    size_t n = strlen(path);
    bool opus = n > 4 && strcmp(path + n - 4, ".ogg") == 0;
    vo_http_req hr;
    vo_tts_request(&tc, text, opus, &hr);
    vo_tts_cfg_fini(&tc);
    tts_call *t = rt_xcalloc(1, sizeof(*t));
    t->path = path;
    run->data = t;
    rt_http_request req = {.timeout_ms = VO_TTS_TIMEOUT_MS,
                           .max_body = VO_TTS_MAX_AUDIO,
                           .reply_to = rt_self(cx),
                           .mode = RT_HTTP_BUFFER};
    vo_http_fill(&hr, &req);
    t->http = rt_http_submit(cx, &req);
    vo_http_req_fini(&hr);
    tool_progress(cx, run, "synthesizing speech");
}

static void tts_on_msg(rt_ctx *cx, tool_run *run, rt_msg *m)
{
    tts_call *t = run->data;
    if (m->type != RT_IO_MSG_HTTP_DONE || !t || run->finished)
        return;
    rt_io_msg_http_done *d = (rt_io_msg_http_done *)m;
    if (d->id != t->http)
        return;
    t->http = 0;
    char *err = NULL;
    if (vo_tts_parse(d, &err) != 0) {
        fail(cx, run, err);
        rt_free(err);
        tts_cleanup(run);
        return;
    }
    int rc = hm_write_atomic(t->path, d->body, d->body_len, 0600);
    if (rc) {
        char msg[512];
        snprintf(msg, sizeof(msg), "TTS generation failed (openai): %s: %s", t->path,
                 rt_strerror(rc));
        fail(cx, run, msg);
        tts_cleanup(run);
        return;
    }
    size_t n = strlen(t->path);
    bool voice = n > 4 && strcmp(t->path + n - 4, ".ogg") == 0;
    RT_INFO("tts", "TTS audio saved: %s (%zu bytes, provider: openai)", t->path, d->body_len);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", true);
    cJSON_AddStringToObject(o, "file_path", t->path);
    char *tag = rt_xasprintf("%sMEDIA:%s", voice ? "[[audio_as_voice]]\n" : "", t->path);
    cJSON_AddStringToObject(o, "media_tag", tag);
    rt_free(tag);
    cJSON_AddStringToObject(o, "provider", "openai");
    cJSON_AddBoolToObject(o, "voice_compatible", voice);
    tts_cleanup(run);
    finish_py(cx, run, o);
}

static void tts_interrupt(rt_ctx *cx, tool_run *run)
{
    tts_call *t = run->data;
    if (t && t->http)
        rt_http_cancel(cx, t->http);
    if (!run->finished) {
        tts_cleanup(run);
        fail(cx, run, "TTS generation failed (openai): interrupted");
    }
}

/* The original's check_tts_requirements, for the provider this build has: an OpenAI audio
 * key in the environment (.env is applied to it at start-up). */
static bool tts_available(const tool_env *env)
{
    (void)env;
    const char *a = getenv("VOICE_TOOLS_OPENAI_KEY");
    const char *b = getenv("OPENAI_API_KEY");
    return (a && *a) || (b && *b);
}

const tool_def tool_def_text_to_speech = {
    .name = "text_to_speech",
    .toolset = "tts",
    .schema =
        "{\"name\":\"text_to_speech\",\"description\":\"Convert text to speech audio. Returns a "
        "MEDIA: path that the platform delivers as a voice message. On Telegram it plays as a "
        "voice bubble, on Discord/WhatsApp as an audio attachment. In CLI mode, saves to "
        "~/voice-memos/. Voice and provider are user-configured, not model-selected.\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\","
        "\"description\":\"The text to convert to speech. Keep under 4000 characters.\"},"
        "\"output_path\":{\"type\":\"string\",\"description\":\"Optional custom file path to "
        "save the audio. Defaults to ~/.hermes/audio_cache/<timestamp>.mp3\"}},\"required\":["
        "\"text\"]}}",
    .blocking = true,
    .parallel_safe = true,
    .available = tts_available,
    .start = tts_start,
    .on_msg = tts_on_msg,
    .on_interrupt = tts_interrupt,
    .cleanup = tts_cleanup,
};
