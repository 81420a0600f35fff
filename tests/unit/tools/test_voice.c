/*
 * tools/voice: the OpenAI audio settings, requests and answers (vo_audio), the markdown
 * cleanup for speech, and the text_to_speech tool against an in-process fake of the API.
 */
#include "hm_config.h"
#include "hm_env.h"
#include "rt_alloc.h"
#include "rt_http.h"
#include "rt_lws.h"
#include "rt_reactor.h"
#include "rt_sched.h"
#include "test.h"
#include "tool.h"
#include "voice_fake.h"
#include "vo_audio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *path, const char *data)
{
    ASSERT_OK(hm_write_atomic(path, data, strlen(data), 0600));
}

static hm_config *load_home(const char *yaml)
{
    char *home = rt_xasprintf("%s/home", test_tmpdir());
    mkdir(home, 0700);
    if (yaml) {
        char *p = rt_xasprintf("%s/config.yaml", home);
        put(p, yaml);
        rt_free(p);
    }
    int err = 0;
    hm_config *c = hm_config_load(home, 0, NULL, &err);
    ASSERT_NOT_NULL(c);
    rt_free(home);
    return c;
}

static void clear_env(void)
{
    unsetenv("VOICE_TOOLS_OPENAI_KEY");
    unsetenv("OPENAI_API_KEY");
    unsetenv("STT_OPENAI_BASE_URL");
    unsetenv("STT_OPENAI_MODEL");
    unsetenv("TTS_OPENAI_BASE_URL");
}

TEST(stt_settings_follow_the_original)
{
    clear_env();
    hm_config *c = load_home(NULL);
    vo_stt_cfg s;
    vo_stt_cfg_load(c, &s);
    ASSERT_TRUE(s.enabled);
    ASSERT_NULL(s.api_key);
    ASSERT_STR_EQ("https://api.openai.com/v1", s.base_url);
    ASSERT_STR_EQ("whisper-1", s.model);
    vo_stt_cfg_fini(&s);

    setenv("OPENAI_API_KEY", "sk-general", 1);
    setenv("VOICE_TOOLS_OPENAI_KEY", " sk-voice ", 1);
    setenv("STT_OPENAI_BASE_URL", "http://127.0.0.1:9/v1/", 1);
    setenv("STT_OPENAI_MODEL", "gpt-4o-mini-transcribe", 1);
    vo_stt_cfg_load(c, &s);
    ASSERT_STR_EQ("sk-voice", s.api_key); /* the voice key wins, trimmed */
    ASSERT_STR_EQ("http://127.0.0.1:9/v1", s.base_url);
    ASSERT_STR_EQ("gpt-4o-mini-transcribe", s.model);
    vo_stt_cfg_fini(&s);
    unsetenv("VOICE_TOOLS_OPENAI_KEY");
    vo_stt_cfg_load(c, &s);
    ASSERT_STR_EQ("sk-general", s.api_key);
    vo_stt_cfg_fini(&s);
    hm_config_unref(c);

    /* config: stt.enabled, stt.model, stt.openai.{api_key,base_url,model} */
    c = load_home("stt:\n  enabled: false\n  model: gpt-4o-transcribe\n");
    vo_stt_cfg_load(c, &s);
    ASSERT_FALSE(s.enabled);
    ASSERT_STR_EQ("gpt-4o-transcribe", s.model);
    vo_stt_cfg_fini(&s);
    hm_config_unref(c);
    c = load_home("stt:\n  openai:\n    api_key: sk-cfg\n    base_url: http://h/v1\n"
                  "    model: whisper-1\n");
    vo_stt_cfg_load(c, &s);
    ASSERT_STR_EQ("sk-cfg", s.api_key);
    ASSERT_STR_EQ("http://h/v1", s.base_url);
    ASSERT_STR_EQ("whisper-1", s.model);
    vo_stt_cfg_fini(&s);
    hm_config_unref(c);
    clear_env();
}

TEST(stt_file_checks)
{
    const char *d = test_tmpdir();
    char *missing = rt_xasprintf("%s/none.ogg", d);
    char *e = vo_stt_validate(missing);
    ASSERT_NOT_NULL(e);
    ASSERT_TRUE(strncmp(e, "Audio file not found: ", 22) == 0);
    rt_free(e);
    e = vo_stt_validate(d);
    ASSERT_TRUE(strncmp(e, "Path is not a file: ", 20) == 0);
    rt_free(e);
    char *odd = rt_xasprintf("%s/a.xyz", d);
    put(odd, "SAY:x");
    e = vo_stt_validate(odd);
    ASSERT_STR_EQ("Unsupported format: .xyz. Supported: .aac, .flac, .m4a, .mp3, .mp4, .mpeg, "
                  ".mpga, .ogg, .wav, .webm",
                  e);
    rt_free(e);
    char *big = rt_xasprintf("%s/big.ogg", d);
    int fd = open(big, O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_OK(ftruncate(fd, 26 * 1024 * 1024 + 1)); /* sparse: nothing is written */
    close(fd);
    e = vo_stt_validate(big);
    ASSERT_STR_EQ("File too large: 26.0MB (max 25MB)", e);
    rt_free(e);
    char *ok = rt_xasprintf("%s/v.OGG", d);
    put(ok, "SAY:hi");
    ASSERT_NULL(vo_stt_validate(ok));
    rt_free(missing);
    rt_free(odd);
    rt_free(big);
    rt_free(ok);
}

static rt_io_msg_http_done done_of(int err, int status, const char *body, const char *ct)
{
    rt_io_msg_http_done d;
    memset(&d, 0, sizeof(d));
    d.err = err;
    d.status = status;
    d.body = (char *)body;
    d.body_len = body ? strlen(body) : 0;
    d.errmsg = err ? (char *)"Connection refused" : NULL;
    static rt_http_header h[1];
    if (ct) {
        h[0].name = "Content-Type";
        h[0].value = ct;
        d.headers = h;
        d.nheaders = 1;
    }
    return d;
}

TEST(stt_request_and_answers)
{
    char *path = rt_xasprintf("%s/note \"1\".ogg", test_tmpdir());
    put(path, "SAY:hello");
    vo_stt_cfg s = {.enabled = true,
                    .api_key = rt_xstrdup("sk-x"),
                    .base_url = rt_xstrdup("http://h/v1"),
                    .model = rt_xstrdup("whisper-1")};
    vo_http_req r;
    char *err = NULL;
    ASSERT_OK(vo_stt_request(&s, path, &r, &err));
    ASSERT_STR_EQ("http://h/v1/audio/transcriptions", r.url);
    ASSERT_STR_EQ("Authorization: Bearer sk-x", r.hdr[0]);
    ASSERT_TRUE(strncmp(r.hdr[1], "Content-Type: multipart/form-data; boundary=", 44) == 0);
    const char *bd = r.hdr[1] + 44;
    ASSERT_TRUE(strlen(bd) > 16);
    char want[256];
    snprintf(want, sizeof(want),
             "--%s\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n"
             "whisper-1\r\n",
             bd);
    ASSERT_NOT_NULL(strstr(r.body, want));
    ASSERT_NOT_NULL(strstr(r.body, "name=\"response_format\"\r\n\r\ntext\r\n"));
    /* the file name's quote cannot end the header */
    ASSERT_NOT_NULL(strstr(r.body, "filename=\"note _1_.ogg\"\r\nContent-Type: audio/ogg\r\n\r\n"
                                   "SAY:hello\r\n"));
    snprintf(want, sizeof(want), "\r\n--%s--\r\n", bd);
    ASSERT_EQ(strlen(want), strlen(strstr(r.body, want)));
    ASSERT_EQ(strlen(r.body), r.len);
    vo_http_req_fini(&r);

    /* answers: text, JSON, an API error, a dead server */
    char *t = NULL;
    rt_io_msg_http_done d = done_of(0, 200, "  hello there \n", "text/plain");
    ASSERT_OK(vo_stt_parse(&s, &d, &t, &err));
    ASSERT_STR_EQ("hello there", t);
    rt_free(t);
    d = done_of(0, 200, "{\"text\":\" json text \"}", "application/json");
    ASSERT_OK(vo_stt_parse(&s, &d, &t, &err));
    ASSERT_STR_EQ("json text", t);
    rt_free(t);
    d = done_of(0, 401, "{\"error\":\n{\"message\":\"Incorrect API key\"}}", "application/json");
    ASSERT_EQ(-EPROTO, vo_stt_parse(&s, &d, &t, &err));
    ASSERT_NULL(t);
    ASSERT_STR_EQ("API error: Error code: 401 - {\"error\": {\"message\":\"Incorrect API key\"}}",
                  err);
    rt_free(err);
    d = done_of(-ECONNREFUSED, 0, NULL, NULL);
    ASSERT_EQ(-ECONNREFUSED, vo_stt_parse(&s, &d, &t, &err));
    ASSERT_STR_EQ("Connection error: Connection refused", err);
    rt_free(err);
    /* other models ask for JSON and need its text */
    rt_free(s.model);
    s.model = rt_xstrdup("gpt-4o-transcribe");
    d = done_of(0, 200, "not json", "text/plain");
    ASSERT_EQ(-EPROTO, vo_stt_parse(&s, &d, &t, &err));
    rt_free(err);
    ASSERT_OK(vo_stt_request(&s, path, &r, &err));
    ASSERT_NOT_NULL(strstr(r.body, "name=\"response_format\"\r\n\r\njson\r\n"));
    vo_http_req_fini(&r);
    /* a file that cannot be read */
    char *gone = rt_xasprintf("%s/gone.ogg", test_tmpdir());
    ASSERT_EQ(-ENOENT, vo_stt_request(&s, gone, &r, &err));
    ASSERT_NOT_NULL(err);
    rt_free(err);
    rt_free(gone);
    vo_stt_cfg_fini(&s);
    rt_free(path);
    char *np = vo_stt_no_provider();
    ASSERT_TRUE(strncmp(np, "No STT provider available.", 26) == 0);
    rt_free(np);
}

TEST(tts_settings_and_request)
{
    clear_env();
    hm_config *c = load_home(NULL);
    vo_tts_cfg t;
    vo_tts_cfg_load(c, &t);
    ASSERT_STR_EQ("edge", t.provider);
    char *why = vo_tts_unavailable(&t);
    ASSERT_NOT_NULL(strstr(why, "tts.provider: openai"));
    rt_free(why);
    vo_tts_cfg_fini(&t);
    hm_config_unref(c);

    c = load_home("tts:\n  provider: OpenAI\n  openai:\n    voice: nova\n");
    vo_tts_cfg_load(c, &t);
    ASSERT_STR_EQ("openai", t.provider);
    ASSERT_STR_EQ("gpt-4o-mini-tts", t.model);
    ASSERT_STR_EQ("nova", t.voice);
    why = vo_tts_unavailable(&t);
    ASSERT_STR_EQ("TTS configuration error (openai): Neither VOICE_TOOLS_OPENAI_KEY nor "
                  "OPENAI_API_KEY is set",
                  why);
    rt_free(why);
    vo_tts_cfg_fini(&t);
    setenv("OPENAI_API_KEY", "sk-o", 1);
    setenv("TTS_OPENAI_BASE_URL", "http://127.0.0.1:1/v1", 1);
    vo_tts_cfg_load(c, &t);
    ASSERT_NULL(vo_tts_unavailable(&t));
    /* 5000 'é' are cut at 4000 characters */
    char *longtext = rt_xcalloc(1, 10001);
    for (int i = 0; i < 5000; i++)
        memcpy(longtext + 2 * i, "\xc3\xa9", 2);
    vo_http_req r;
    vo_tts_request(&t, longtext, true, &r);
    ASSERT_STR_EQ("http://127.0.0.1:1/v1/audio/speech", r.url);
    cJSON *j = cJSON_Parse(r.body);
    ASSERT_STR_EQ("gpt-4o-mini-tts", cJSON_GetObjectItem(j, "model")->valuestring);
    ASSERT_STR_EQ("nova", cJSON_GetObjectItem(j, "voice")->valuestring);
    ASSERT_STR_EQ("opus", cJSON_GetObjectItem(j, "response_format")->valuestring);
    ASSERT_EQ(8000u, strlen(cJSON_GetObjectItem(j, "input")->valuestring));
    ASSERT_NULL(cJSON_GetObjectItem(j, "speed"));
    cJSON_Delete(j);
    vo_http_req_fini(&r);
    rt_free(longtext);
    vo_tts_cfg_fini(&t);
    hm_config_unref(c);
    c = load_home(
        "tts:\n  provider: openai\n  speed: 9\n  openai:\n    base_url: http://tts/v1/\n");
    vo_tts_cfg_load(c, &t);
    ASSERT_STR_EQ("http://tts/v1", t.base_url);
    vo_tts_request(&t, "x", false, &r);
    ASSERT_STR_CONTAINS(r.body, "\"speed\":4");
    ASSERT_STR_CONTAINS(r.body, "\"response_format\":\"mp3\"");
    vo_http_req_fini(&r);
    vo_tts_cfg_fini(&t);
    hm_config_unref(c);
    clear_env();
}

TEST(markdown_cleanup_for_speech)
{
    char *s = vo_strip_markdown("# Title\n\nSee **bold** and *it* and `code` [link](http://x.y) "
                                "at https://example.org/a?b.\n\n\n\n- item one\n* item two\n"
                                "---\n```\nprint(1)\n```\nEnd");
    /* as Python: ^\\s* of the list pattern also eats the blank lines before "- item" */
    ASSERT_STR_EQ("Title\n\nSee bold and it and code link at \nitem one\nitem two\n\n \nEnd", s);
    rt_free(s);
    s = vo_strip_simple("  **Hi** [there](x) #1_a `c`  ");
    ASSERT_STR_EQ("Hi therex 1a c", s);
    rt_free(s);
    s = vo_strip_markdown("");
    ASSERT_STR_EQ("", s);
    rt_free(s);
    s = vo_strip_markdown("unclosed **bold and *star");
    ASSERT_STR_EQ("unclosed *bold and star", s); /* as Python's \\*(.+?)\\* does */
    rt_free(s);
}

/* ------------------------------------------------------------ the tool */

enum { T_GO = RT_MSG_TYPE(RT_MSG_MODULE_TEST, 1) };
static const char *call_args;
static char result[4096];
static _Atomic int nresults;
static tool_env *env;

static void session_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type == T_GO) {
        ASSERT_NE(0, tool_start_call(cx, tool_find("text_to_speech"), env, 1, "c", call_args));
    } else if (m->type == TOOL_MSG_RESULT) {
        snprintf(result, sizeof(result), "%s", ((tool_msg_result *)m)->result);
        atomic_fetch_add(&nresults, 1);
    }
}
static const rt_actor_type session_type = {"session", session_behave, NULL, 0};

typedef struct world {
    rt_runtime *rt;
    rt_reactor *re;
    rt_lws *l;
    rt_ctx *cx;
    char url[128];
} world;

static void world_start(world *w)
{
    rt_options ro = {.workers = 2};
    w->rt = rt_runtime_new(&ro);
    w->re = rt_reactor_start(w->rt);
    ASSERT_OK(rt_http_init(w->re));
    int err = 0;
    w->l = rt_lws_start(w->rt, &err);
    ASSERT_NOT_NULL(w->l);
    w->cx = rt_ctx_external(w->rt);
    vfake_start(w->rt, w->url, sizeof(w->url));
}

static void world_stop(world *w)
{
    ASSERT_OK(rt_wait_quiescent(w->rt, 10000));
    vfake_stop();
    rt_lws_stop(w->l);
    rt_reactor_stop(w->re);
    ASSERT_OK(rt_wait_quiescent(w->rt, 10000));
    rt_runtime_free(w->rt);
}

static void call(world *w, const char *args)
{
    call_args = args;
    atomic_store(&nresults, 0);
    rt_spawn_opts o = {.flags = RT_SPAWN_TRAP_EXIT};
    rt_ref s = rt_spawn(w->cx, &session_type, NULL, &o);
    rt_send(w->cx, s, rt_msg_new(T_GO, sizeof(rt_msg)));
    int64_t t0 = rt_now_ns(w->rt);
    while (atomic_load(&nresults) < 1) {
        ASSERT_LT(rt_now_ns(w->rt) - t0, 20000000000LL);
        usleep(1000);
    }
    ASSERT_OK(rt_wait_quiescent(w->rt, 10000));
}

TEST(text_to_speech_tool)
{
    clear_env();
    world w;
    world_start(&w);
    char *home = rt_xasprintf("%s/home", test_tmpdir());
    mkdir(home, 0700);
    char *cfgp = rt_xasprintf("%s/config.yaml", home);
    put(cfgp, "tts:\n  provider: openai\n");
    setenv("VOICE_TOOLS_OPENAI_KEY", "sk-tts-test", 1);
    setenv("TTS_OPENAI_BASE_URL", w.url, 1);
    env = tool_env_new();
    env->hermes_home = rt_xstrdup(home);
    env->platform = rt_xstrdup("telegram");
    ASSERT_TRUE(tool_find("text_to_speech")->available(env));

    call(&w, "{\"text\":\"Hello **world**\"}");
    cJSON *j = cJSON_Parse(result);
    ASSERT_NOT_NULL(j);
    ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(j, "success")));
    const char *fp = cJSON_GetObjectItem(j, "file_path")->valuestring;
    char prefix[600];
    snprintf(prefix, sizeof(prefix), "%s/cache/audio/tts_", home);
    ASSERT_TRUE(strncmp(fp, prefix, strlen(prefix)) == 0);
    ASSERT_STR_EQ(".ogg", fp + strlen(fp) - 4);
    char *want = rt_xasprintf("[[audio_as_voice]]\nMEDIA:%s", fp);
    ASSERT_STR_EQ(want, cJSON_GetObjectItem(j, "media_tag")->valuestring);
    rt_free(want);
    ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(j, "voice_compatible")));
    char *data = NULL;
    size_t len = 0;
    ASSERT_OK(hm_read_file(fp, 4096, &data, &len));
    ASSERT_STR_EQ("OggS-fake-opus:Hello **world**", data);
    rt_free(data);
    cJSON_Delete(j);
    vfake_rec r = vfake_get(vfake_count() - 1);
    ASSERT_STR_EQ("/v1/audio/speech", r.path);
    ASSERT_STR_EQ("Bearer sk-tts-test", r.auth);
    ASSERT_NOT_NULL(strstr(r.json, "\"model\":\"gpt-4o-mini-tts\""));
    ASSERT_NOT_NULL(strstr(r.json, "\"voice\":\"alloy\""));

    /* an explicit path elsewhere: MP3, no voice flag */
    char *mp3 = rt_xasprintf("%s/out/x.mp3", test_tmpdir());
    char *args = rt_xasprintf("{\"text\":\"hi\",\"output_path\":\"%s\"}", mp3);
    call(&w, args);
    j = cJSON_Parse(result);
    ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(j, "success")));
    ASSERT_STR_EQ(mp3, cJSON_GetObjectItem(j, "file_path")->valuestring);
    ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(j, "voice_compatible")));
    cJSON_Delete(j);
    rt_free(args);
    rt_free(mp3);

    /* failures: no text, a server error, the Edge provider */
    call(&w, "{\"text\":\"  \"}");
    ASSERT_STR_EQ("{\"error\": \"Text is required\", \"success\": false}", result);
    call(&w, "{\"text\":\"please FAIL_TTS\"}");
    ASSERT_NOT_NULL(strstr(result, "TTS generation failed (openai): API error: Error code: 500"));
    put(cfgp, "tts:\n  provider: edge\n");
    call(&w, "{\"text\":\"hi\"}");
    ASSERT_NOT_NULL(strstr(result, "tts.provider: openai"));
    ASSERT_NOT_NULL(strstr(result, "\"success\": false"));

    unsetenv("VOICE_TOOLS_OPENAI_KEY");
    ASSERT_FALSE(tool_find("text_to_speech")->available(env));
    tool_env_unref(env);
    world_stop(&w);
    rt_free(cfgp);
    rt_free(home);
    clear_env();
}
