/*
 * The gateway's attachments and voice (gw_media.c) inside one process: a test adapter
 * (platform "telegram") in front, the real router, chat actors and agent sessions, an echoing
 * model actor at the back ("echo: <last user message>", so the prompt text comes back in the
 * reply), and an in-process fake of the OpenAI audio API (voice_fake) for transcription and
 * speech. Covers: the transcript reaching the model before a later text, the original's
 * notes for failures / no key / disabled STT / images / documents, /voice and its file, and
 * voice replies sent as MEDIA: voice notes.
 */
#include "ag_session.h"
#include "gw.h"
#include "gw_int.h"
#include "hm_config.h"
#include "hm_env.h"
#include "llm_provider.h"
#include "rt_alloc.h"
#include "rt_http.h"
#include "rt_httpd.h"
#include "rt_lws.h"
#include "rt_reactor.h"
#include "rt_sched.h"
#include "st_store.h"
#include "test.h"
#include "tool.h"
#include "voice_fake.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAIT_NS 15000000000LL
#define CHAT    "dm-alice"

/* ------------------------------------------------------- the echoing model */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static char reqs[32][8192]; /* every request's user messages, joined with | */
static int nrequests;

static void model_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type != LLM_MSG_REQUEST)
        return;
    llm_msg_request *q = (llm_msg_request *)m;
    char last[4096] = "";
    pthread_mutex_lock(&lock);
    char *all = nrequests < 32 ? reqs[nrequests] : NULL;
    if (all)
        all[0] = '\0';
    const cJSON *it;
    cJSON_ArrayForEach(it, q->messages)
    {
        const cJSON *role = cJSON_GetObjectItem(it, "role");
        const cJSON *c = cJSON_GetObjectItem(it, "content");
        if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0 && cJSON_IsString(c)) {
            if (all) {
                size_t l = strlen(all);
                snprintf(all + l, 8192 - l, "%s|", c->valuestring);
            }
            snprintf(last, sizeof(last), "%s", c->valuestring);
        }
    }
    nrequests++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    llm_msg_result *r = llm_result_msg_new(q->tag);
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "assistant");
    char *t = rt_xasprintf("echo: %s", last);
    cJSON_AddStringToObject(msg, "content", t);
    rt_free(t);
    r->result.message = msg;
    r->result.finish_reason = rt_xstrdup("stop");
    r->result.usage.prompt_tokens = 50;
    r->result.usage.completion_tokens = 5;
    rt_send(cx, q->reply_to, &r->hdr);
}
static const rt_actor_type model_type = {"model", model_behave, NULL, 0};

/* ---------------------------------------------------------- the adapter */

typedef struct out {
    uint32_t type;
    int kind;
    char chat[128];
    char text[8192];
} out;

static out outs[128];
static int nouts;
static int ncancelled; /* GW_OUT_TURN_END with GW_OUTCOME_CANCELLED */

static void adapter_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)state;
    if (m->type == GW_OUT_TEXT && ((gw_out_text *)m)->delivery)
        rt_send(cx, rt_whereis(cx, GW_NAME), gw_sent_new(((gw_out_text *)m)->delivery, 0, NULL));
    pthread_mutex_lock(&lock);
    if (m->type == GW_OUT_TURN_END && ((gw_out_turn_end *)m)->outcome == GW_OUTCOME_CANCELLED)
        ncancelled++;
    if (nouts < 128 && m->type == GW_OUT_TEXT) {
        gw_out_text *t = (gw_out_text *)m;
        out *o = &outs[nouts++];
        o->type = m->type;
        o->kind = t->kind;
        snprintf(o->chat, sizeof(o->chat), "%s", t->to.chat_id ? t->to.chat_id : "");
        snprintf(o->text, sizeof(o->text), "%s", t->text ? t->text : "");
    }
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}
static const rt_actor_type adapter_type = {"test_adapter", adapter_behave, NULL, 0};

/* ------------------------------------------------------------- fixture */

typedef struct fixture {
    rt_runtime *rt;
    rt_reactor *re;
    rt_lws *l;
    rt_ctx *cx;
    hm_config *cfg;
    st_store_refs store;
    rt_ref model, gateway, adapter;
    char home[512];
    char url[128];
} fixture;

static fixture F;

static rt_ref spawn_session(rt_ctx *cx, const gw_session_req *req, void *arg)
{
    fixture *f = arg;
    tool_env *env = tool_env_new();
    ag_session_opts o = {.session_id = req->session_id,
                         .source = req->platform,
                         .user_id = req->user_id,
                         .ephemeral = req->ephemeral,
                         .history = req->history,
                         .provider = f->model,
                         .store = f->store.writer,
                         .store_reader = f->store.readers[0],
                         .env = env,
                         .resume = req->resume,
                         .stream = req->stream};
    rt_ref r = ag_session_spawn(cx, &o, NULL);
    tool_env_unref(env);
    return r;
}

static void put(const char *name, const char *data)
{
    char *p = rt_xasprintf("%s/%s", F.home, name);
    ASSERT_OK(hm_write_atomic(p, data, strlen(data), 0600));
    rt_free(p);
}

/* Start everything; yaml: config.yaml (NULL: none); key: the voice key (NULL: none). */
static void start(const char *yaml, const char *key)
{
    static int run;
    snprintf(F.home, sizeof(F.home), "%s/home%d", test_tmpdir(), run++);
    pthread_mutex_lock(&lock);
    nouts = nrequests = ncancelled = 0;
    pthread_mutex_unlock(&lock);
    mkdir(F.home, 0700);
    if (yaml)
        put("config.yaml", yaml);
    setenv("HERMES_HOME", F.home, 1);
    setenv("TELEGRAM_ALLOWED_USERS", "alice", 1);
    unsetenv("OPENAI_API_KEY");
    if (key)
        setenv("VOICE_TOOLS_OPENAI_KEY", key, 1);
    else
        unsetenv("VOICE_TOOLS_OPENAI_KEY");
    int err = 0;
    ASSERT_OK(hm_config_ensure_home(F.home));
    rt_options ro = {.workers = 2};
    F.rt = rt_runtime_new(&ro);
    F.re = rt_reactor_start(F.rt);
    ASSERT_OK(rt_http_init(F.re));
    F.l = rt_lws_start(F.rt, &err);
    ASSERT_NOT_NULL(F.l);
    F.cx = rt_ctx_external(F.rt);
    vfake_start(F.rt, F.url, sizeof(F.url));
    setenv("STT_OPENAI_BASE_URL", F.url, 1);
    setenv("TTS_OPENAI_BASE_URL", F.url, 1);
    if (getenv("AUXILIARY_VISION_MODEL")) /* the vision tests: the fake is the vision model */
        setenv("AUXILIARY_VISION_BASE_URL", F.url, 1);
    F.cfg = hm_config_load(F.home, 0, NULL, &err);
    ASSERT_NOT_NULL(F.cfg);
    char path[600], msg[256];
    snprintf(path, sizeof(path), "%s/state.db", F.home);
    st_store_opts so = {.path = path, .readers = 1};
    ASSERT_OK(st_store_start(F.cx, &so, &F.store, msg, sizeof(msg)));
    F.model = rt_spawn(F.cx, &model_type, NULL, NULL);
    gw_opts go = {.cfg = F.cfg,
                  .home = F.home,
                  .spawn = spawn_session,
                  .spawn_arg = &F,
                  .store = F.store.writer,
                  .state_db = path,
                  .model = "test-model",
                  .provider = "custom",
                  .delivery_retry_ms = 20};
    ASSERT_OK(gw_start(F.cx, &go, &F.gateway, msg, sizeof(msg)));
    F.adapter = rt_spawn(F.cx, &adapter_type, NULL, NULL);
    gw_caps caps = {.max_message = 4000, .markdown = true};
    rt_send(F.cx, F.gateway, gw_adapter_up_new("telegram", F.adapter, &caps, NULL));
}

static void stop(void)
{
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    vfake_stop();
    rt_lws_stop(F.l);
    rt_reactor_stop(F.re);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    rt_runtime_free(F.rt);
    hm_config_unref(F.cfg);
}

/* A file in the test's folder with data (new path). */
static char *media_file(const char *name, const char *data)
{
    char *p = rt_xasprintf("%s/%s", test_tmpdir(), name);
    ASSERT_OK(hm_write_atomic(p, data, strlen(data), 0600));
    return p;
}

static void send_ev(int kind, const char *text, const char *path)
{
    gw_msg_event *e = gw_event_new("telegram", "dm", CHAT, "alice", text);
    e->kind = kind;
    if (path) {
        e->media = rt_xcalloc(1, sizeof(char *));
        e->media[0] = rt_xstrdup(path);
        e->nmedia = 1;
    }
    e->adapter = F.adapter;
    rt_send(F.cx, F.gateway, &e->hdr);
}

/* Wait for the nth GW_OUT_TEXT of kind (-1: any) containing needle; its index. */
static int wait_text(int kind, const char *needle, int nth)
{
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    pthread_mutex_lock(&lock);
    for (;;) {
        int seen = 0;
        for (int i = 0; i < nouts; i++)
            if ((kind < 0 || outs[i].kind == kind) && strstr(outs[i].text, needle) &&
                seen++ == nth) {
                pthread_mutex_unlock(&lock);
                return i;
            }
        if (rt_now_ns(F.rt) > deadline) {
            for (int i = 0; i < nouts; i++)
                fprintf(stderr, "  out[%d] kind=%d %s\n", i, outs[i].kind, outs[i].text);
            pthread_mutex_unlock(&lock);
            TEST_FAIL_("timed out waiting for \"%s\"", needle);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&cond, &lock, &ts);
    }
}

static int count_text(const char *needle)
{
    pthread_mutex_lock(&lock);
    int n = 0;
    for (int i = 0; i < nouts; i++)
        n += strstr(outs[i].text, needle) != NULL;
    pthread_mutex_unlock(&lock);
    return n;
}

static const char *text_at(int i)
{
    return outs[i].text;
}

/* ----------------------------------------------------------- pure texts */

TEST(compose_follows_the_original)
{
    char *v = "/c/v.ogg";
    gw_stt_result ok = {.status = GW_STT_OK, .transcript = "hi there"};
    char *t = gw_media_compose("", GW_KIND_VOICE, &v, 1, &ok, true, NULL);
    ASSERT_STR_EQ("[The user sent a voice message~ Here's what they said: \"hi there\"]", t);
    rt_free(t);
    t = gw_media_compose("caption", GW_KIND_VOICE, &v, 1, &ok, true, NULL);
    ASSERT_STR_EQ("[The user sent a voice message~ Here's what they said: \"hi there\"]\n\ncaption",
                  t);
    rt_free(t);
    t = gw_media_compose("(The user sent a message with no text content)", GW_KIND_AUDIO, &v, 1,
                         &ok, true, NULL);
    ASSERT_STR_EQ("[The user sent a voice message~ Here's what they said: \"hi there\"]", t);
    rt_free(t);
    gw_stt_result np = {.status = GW_STT_NO_PROVIDER};
    bool no = false;
    t = gw_media_compose("", GW_KIND_VOICE, &v, 1, &np, true, &no);
    ASSERT_TRUE(no);
    ASSERT_STR_EQ("[The user sent a voice message but I can't listen to it right now \xe2\x80\x94 "
                  "no STT provider is configured. A direct message has already been sent to the "
                  "user with setup instructions.]",
                  t);
    rt_free(t);
    gw_stt_result bad = {.status = GW_STT_FAILED, .error = "Connection error: refused"};
    t = gw_media_compose("x", GW_KIND_VOICE, &v, 1, &bad, true, NULL);
    ASSERT_STR_EQ("[The user sent a voice message but I had trouble transcribing it~ (Connection "
                  "error: refused)]\n\nx",
                  t);
    rt_free(t);
    t = gw_media_compose("x", GW_KIND_VOICE, &v, 1, NULL, false, NULL);
    ASSERT_STR_EQ("[The user sent voice message(s), but transcription is disabled in config.]\n\nx",
                  t);
    rt_free(t);
    char *img = "/c/img_1.jpg";
    t = gw_media_compose("what is it?", GW_KIND_PHOTO, &img, 1, NULL, true, NULL);
    ASSERT_STR_EQ("[The user sent an image but I couldn't quite see it this time (>_<) You can "
                  "try looking at it yourself with vision_analyze using image_url: "
                  "/c/img_1.jpg]\n\nwhat is it?",
                  t);
    rt_free(t);
    /* a video is nobody's business here; a text message neither */
    char *vid = "/c/v.mp4";
    t = gw_media_compose("watch", GW_KIND_VIDEO, &vid, 1, NULL, true, NULL);
    ASSERT_STR_EQ("watch", t);
    rt_free(t);
    ASSERT_EQ(0, gw_media_class("/c/v.mp4", GW_KIND_VIDEO));
    ASSERT_EQ(GW_MEDIA_AUDIO, gw_media_class("/c/x.ogg", GW_KIND_TEXT));
    ASSERT_EQ(0, gw_media_class("/c/x.bin2", GW_KIND_DOCUMENT));
    ASSERT_EQ(GW_MEDIA_AUDIO, gw_media_class("/c/doc_1_talk.mp3", GW_KIND_DOCUMENT));
    ASSERT_EQ(GW_MEDIA_IMAGE, gw_media_class("/c/a.png", GW_KIND_TEXT));
    ASSERT_EQ(GW_MEDIA_DOC, gw_media_class("/c/doc_1_a.pdf", GW_KIND_DOCUMENT));
}

TEST(documents_are_named_and_text_included)
{
    char *txt = media_file("doc_ab12cd34ef56_my notes!.txt", "line one\nline two\n");
    char *t = gw_media_compose("please summarise", GW_KIND_DOCUMENT, &txt, 1, NULL, true, NULL);
    char *want = rt_xasprintf("[The user sent a text document: 'my notes_.txt'. Its content has "
                              "been included below. The file is also saved at: %s]\n\n[Content of "
                              "my notes_.txt]:\nline one\nline two\n\n\nplease summarise",
                              txt);
    ASSERT_STR_EQ(want, t);
    rt_free(want);
    rt_free(t);
    char *pdf = media_file("doc_1_report.pdf", "%PDF-1.4");
    t = gw_media_compose("", GW_KIND_DOCUMENT, &pdf, 1, NULL, true, NULL);
    want = rt_xasprintf("[The user sent a document: 'report.pdf'. The file is saved at: %s. Ask "
                        "the user what they'd like you to do with it.]\n\n",
                        pdf);
    ASSERT_STR_EQ(want, t);
    rt_free(want);
    rt_free(t);
    /* a text file over 100 KB: named, its content left out (capped) */
    char *big = rt_xcalloc(1, 100 * 1024 + 2);
    memset(big, 'a', 100 * 1024 + 1);
    char *bigp = media_file("doc_2_big.md", big);
    t = gw_media_compose("", GW_KIND_DOCUMENT, &bigp, 1, NULL, true, NULL);
    ASSERT_NULL(strstr(t, "[Content of"));
    ASSERT_NOT_NULL(strstr(t, "[The user sent a text document: 'big.md'."));
    rt_free(t);
    /* not UTF-8: left out too */
    char *bin = media_file("doc_3_raw.txt", "\xff\xfe\x00");
    t = gw_media_compose("", GW_KIND_DOCUMENT, &bin, 1, NULL, true, NULL);
    ASSERT_NULL(strstr(t, "[Content of"));
    rt_free(t);
    rt_free(big);
    rt_free(txt);
    rt_free(pdf);
    rt_free(bigp);
    rt_free(bin);
}

/* ------------------------------------------------------------ end to end */

TEST(voice_note_transcript_reaches_the_model_before_a_later_text)
{
    start(NULL, "sk-voice-test");
    char *v = media_file("42_voice.ogg", "SLOW:first words");
    send_ev(GW_KIND_VOICE, "", v);
    send_ev(GW_KIND_TEXT, "and then this", NULL); /* while the transcription runs */
    wait_text(GW_TEXT_REPLY, "and then this", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    /* the transcription request: multipart, whisper-1, text, the key */
    ASSERT_EQ(1, vfake_count());
    vfake_rec r = vfake_get(0);
    ASSERT_STR_EQ("/v1/audio/transcriptions", r.path);
    ASSERT_STR_EQ("whisper-1", r.model);
    ASSERT_STR_EQ("text", r.format);
    ASSERT_STR_EQ("42_voice.ogg", r.filename);
    ASSERT_STR_EQ("Bearer sk-voice-test", r.auth);
    ASSERT_EQ(strlen("SLOW:first words"), r.file_len);
    /* the model saw the transcript first, then the text */
    pthread_mutex_lock(&lock);
    const char *first = reqs[0];
    const char *lastreq = reqs[nrequests - 1];
    const char *tr = strstr(lastreq, "[The user sent a voice message~ Here's what they said: "
                                     "\"first words\"]");
    const char *tx = strstr(lastreq, "and then this");
    /* the text waited for the transcript: the first request has the transcript, and the
     * text, if the session took both at once, after it */
    const char *f1 = strstr(first, "first words"), *f2 = strstr(first, "and then this");
    bool first_ok = f1 && (!f2 || f1 < f2);
    if (!first_ok)
        fprintf(stderr, "first request: %s\n", first);
    pthread_mutex_unlock(&lock);
    ASSERT_TRUE(first_ok);
    ASSERT_NOT_NULL(tr);
    ASSERT_NOT_NULL(tx);
    ASSERT_TRUE(tr < tx);
    ASSERT_EQ(0, count_text("MEDIA:")); /* the default TTS provider (edge) is not available */
    stop();
    rt_free(v);
}

TEST(no_key_and_failures_give_the_original_notes)
{
    start(NULL, NULL);
    char *v = media_file("1_voice.ogg", "SAY:unheard");
    send_ev(GW_KIND_VOICE, "", v);
    int i = wait_text(GW_TEXT_NOTICE, "I received your voice message but can't transcribe it", 0);
    ASSERT_STR_CONTAINS(text_at(i), "VOICE_TOOLS_OPENAI_KEY");
    i = wait_text(GW_TEXT_REPLY, "echo: ", 0);
    ASSERT_STR_EQ("echo: [The user sent a voice message but I can't listen to it right now "
                  "\xe2\x80\x94 no STT provider is configured. A direct message has already been "
                  "sent to the user with setup instructions.]",
                  text_at(i));
    ASSERT_EQ(0, vfake_count());
    stop();

    start(NULL, "sk-voice-test");
    char *f500 = media_file("2_voice.ogg", "FAIL:500");
    send_ev(GW_KIND_VOICE, "", f500);
    i = wait_text(GW_TEXT_REPLY, "had trouble transcribing", 0);
    ASSERT_STR_CONTAINS(text_at(i), "[The user sent a voice message but I had trouble "
                                    "transcribing it~ (API error: Error code: 500 - ");
    char *odd = media_file("3_voice.xyz", "SAY:odd");
    send_ev(GW_KIND_VOICE, "", odd);
    i = wait_text(GW_TEXT_REPLY, "Unsupported format: .xyz", 0);
    char *big = rt_xasprintf("%s/4_big.ogg", test_tmpdir());
    int fd = open(big, O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_OK(ftruncate(fd, 26 * 1024 * 1024 + 1));
    close(fd);
    send_ev(GW_KIND_AUDIO, "", big);
    i = wait_text(GW_TEXT_REPLY, "File too large: 26.0MB (max 25MB)", 0);
    /* the missing file of a broken download */
    send_ev(GW_KIND_VOICE, "", "/nonexistent/5_voice.ogg");
    wait_text(GW_TEXT_REPLY, "Audio file not found: /nonexistent/5_voice.ogg", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(1, vfake_count()); /* only the 500 went out */
    stop();

    start("stt:\n  enabled: false\n", "sk-voice-test");
    send_ev(GW_KIND_VOICE, "hello", v);
    i = wait_text(GW_TEXT_REPLY, "echo: ", 0);
    ASSERT_STR_EQ("echo: [The user sent voice message(s), but transcription is disabled in "
                  "config.]\n\nhello",
                  text_at(i));
    ASSERT_EQ(0, vfake_count());
    stop();
    rt_free(v);
    rt_free(f500);
    rt_free(odd);
    rt_free(big);
}

TEST(images_and_documents_reach_the_model_described)
{
    start(NULL, "sk-voice-test");
    char *img = media_file("7_photo.jpg", "\xff\xd8\xff");
    send_ev(GW_KIND_PHOTO, "what is this?", img);
    int i = wait_text(GW_TEXT_REPLY, "what is this?", 0);
    char *want = rt_xasprintf("echo: [The user sent an image but I couldn't quite see it this "
                              "time (>_<) You can try looking at it yourself with vision_analyze "
                              "using image_url: %s]\n\nwhat is this?",
                              img);
    ASSERT_STR_EQ(want, text_at(i));
    rt_free(want);
    char *doc = media_file("doc_8_todo.md", "- buy milk");
    send_ev(GW_KIND_DOCUMENT, "", doc);
    i = wait_text(GW_TEXT_REPLY, "todo.md", 0);
    ASSERT_STR_CONTAINS(text_at(i), "[Content of todo.md]:\n- buy milk");
    ASSERT_EQ(0, vfake_count());
    stop();

    /* with an auxiliary vision model the image is described */
    setenv("AUXILIARY_VISION_MODEL", "vision-test", 1);
    setenv("AUXILIARY_VISION_API_KEY", "sk-vision", 1);
    start(NULL, "sk-voice-test");
    send_ev(GW_KIND_PHOTO, "and this?", img);
    i = wait_text(GW_TEXT_REPLY, "and this?", 0);
    want = rt_xasprintf("echo: [The user sent an image~ Here's what I can see:\nA red square on "
                        "white.]\n[If you need a closer look, use vision_analyze with image_url: "
                        "%s ~]\n\nand this?",
                        img);
    ASSERT_STR_EQ(want, text_at(i));
    rt_free(want);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(1, vfake_count());
    vfake_rec r = vfake_get(0);
    ASSERT_STR_EQ("/v1/chat/completions", r.path);
    ASSERT_STR_EQ("Bearer sk-vision", r.auth);
    ASSERT_STR_CONTAINS(r.json, "\"model\":\"vision-test\"");
    ASSERT_STR_CONTAINS(r.json, "\"image_url\":{\"url\":\"data:image/jpeg;base64,/9j/\"}");
    ASSERT_STR_CONTAINS(r.json, "Describe everything visible in this image");
    stop();
    /* a refused key: the original's note */
    setenv("AUXILIARY_VISION_API_KEY", "bad-vision", 1);
    start(NULL, "sk-voice-test");
    send_ev(GW_KIND_PHOTO, "again", img);
    i = wait_text(GW_TEXT_REPLY, "again", 0);
    ASSERT_STR_CONTAINS(text_at(i), "[The user sent an image but I couldn't quite see it");
    stop();
    unsetenv("AUXILIARY_VISION_MODEL");
    unsetenv("AUXILIARY_VISION_API_KEY");
    unsetenv("AUXILIARY_VISION_BASE_URL");
    rt_free(img);
    rt_free(doc);
}

TEST(voice_command_and_voice_replies)
{
    start("tts:\n  provider: openai\n", "sk-voice-test");
    send_ev(GW_KIND_TEXT, "/voice status", NULL);
    wait_text(GW_TEXT_NOTICE, "Voice mode: Off (text only)", 0);
    send_ev(GW_KIND_TEXT, "/voice tts", NULL);
    wait_text(GW_TEXT_NOTICE, "Auto-TTS enabled.\nAll replies will include a voice message.", 0);
    send_ev(GW_KIND_TEXT, "**speak** up", NULL);
    wait_text(GW_TEXT_REPLY, "echo: **speak** up", 0);
    int i = wait_text(GW_TEXT_REPLY, "MEDIA:", 0);
    char prefix[700];
    snprintf(prefix, sizeof(prefix), "MEDIA:%s/cache/audio/tts_", F.home);
    ASSERT_TRUE(strncmp(text_at(i), prefix, strlen(prefix)) == 0);
    ASSERT_STR_EQ(".ogg", text_at(i) + strlen(text_at(i)) - 4);
    char *data = NULL;
    size_t len = 0;
    ASSERT_OK(hm_read_file(text_at(i) + 6, 4096, &data, &len));
    ASSERT_STR_EQ("OggS-fake-opus:echo: speak up", data); /* markdown stripped */
    rt_free(data);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    vfake_rec r = vfake_get(vfake_count() - 1);
    ASSERT_STR_EQ("/v1/audio/speech", r.path);
    ASSERT_STR_CONTAINS(r.json, "\"model\":\"gpt-4o-mini-tts\"");
    ASSERT_STR_CONTAINS(r.json, "\"voice\":\"alloy\"");
    ASSERT_STR_CONTAINS(r.json, "\"response_format\":\"opus\"");
    char *p = rt_xasprintf("%s/gateway_voice_mode.json", F.home);
    ASSERT_OK(hm_read_file(p, 4096, &data, &len));
    ASSERT_STR_EQ("{\n  \"dm-alice\": \"all\"\n}", data);
    rt_free(data);

    /* off: a voice note gets text only */
    send_ev(GW_KIND_TEXT, "/voice off", NULL);
    wait_text(GW_TEXT_NOTICE, "Voice mode disabled. Text-only replies.", 0);
    char *v = media_file("9_voice.ogg", "SAY:quiet please");
    send_ev(GW_KIND_VOICE, "", v);
    wait_text(GW_TEXT_REPLY, "quiet please", 0);
    send_ev(GW_KIND_TEXT, "/voice", NULL); /* toggles: off -> on */
    wait_text(GW_TEXT_NOTICE, "Voice mode enabled.", 0);
    send_ev(GW_KIND_TEXT, "/voice status", NULL);
    wait_text(GW_TEXT_NOTICE, "Voice mode: On (voice reply to voice messages)", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(1, count_text("MEDIA:"));
    ASSERT_OK(hm_read_file(p, 4096, &data, &len));
    ASSERT_STR_EQ("{\n  \"dm-alice\": \"voice_only\"\n}", data);
    rt_free(data);

    /* on: a text gets text only, a voice note a voice reply too */
    send_ev(GW_KIND_TEXT, "typed", NULL);
    wait_text(GW_TEXT_REPLY, "echo: typed", 0);
    send_ev(GW_KIND_VOICE, "", v);
    wait_text(GW_TEXT_REPLY, "MEDIA:", 1);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    ASSERT_EQ(2, count_text("MEDIA:"));
    send_ev(GW_KIND_TEXT, "/voice bogus", NULL); /* toggles: on -> off */
    wait_text(GW_TEXT_NOTICE, "Voice mode disabled.", 1);
    stop();
    rt_free(p);
    rt_free(v);
}

TEST(a_voice_note_transcribed_during_shutdown_is_refused)
{
    start(NULL, "sk-voice-test");
    char *v = media_file("11_voice.ogg", "SLOW:too late");
    send_ev(GW_KIND_VOICE, "", v);
    rt_send(F.cx, F.gateway, gw_shutdown_new(0, 0, 100));
    wait_text(GW_TEXT_NOTICE, "Gateway is shutting down and is not accepting new work", 0);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    pthread_mutex_lock(&lock);
    int n = nrequests;
    pthread_mutex_unlock(&lock);
    ASSERT_EQ(0, n); /* the model never saw it */
    stop();
    rt_free(v);
}

/* A transcription endpoint that holds its one request until the test releases it, so the
 * test decides when a transcription ends, whatever the machine's load. */
static uint64_t held_req; /* guarded by lock; 0 until the request came */

static void hold_behave(rt_ctx *cx, void *state, rt_msg *m)
{
    (void)cx;
    (void)state;
    if (m->type != RT_HTTPD_MSG_REQUEST)
        return;
    pthread_mutex_lock(&lock);
    held_req = ((rt_httpd_msg_request *)m)->req;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}
static const rt_actor_type hold_type = {"stt-hold", hold_behave, NULL, 0};

static uint64_t wait_held(void)
{
    int64_t deadline = rt_now_ns(F.rt) + WAIT_NS;
    pthread_mutex_lock(&lock);
    while (!held_req) {
        if (rt_now_ns(F.rt) > deadline) {
            pthread_mutex_unlock(&lock);
            TEST_FAIL_("the transcription request never came");
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&cond, &lock, &ts);
    }
    uint64_t r = held_req;
    pthread_mutex_unlock(&lock);
    return r;
}

/* /stop while a voice note is transcribed: the note and the text queued behind it are never
 * answered (the original's set-up wording, each event ends cancelled), the session goes on. */
TEST(stop_drops_a_voice_note_being_transcribed)
{
    start(NULL, "sk-voice-test");
    rt_httpd_route route = {"/", rt_spawn(F.cx, &hold_type, NULL, NULL)};
    rt_httpd_opts ho = {.routes = &route, .nroutes = 1, .max_body = 1u << 20};
    int err = 0;
    rt_httpd *hold = rt_httpd_start(F.rt, &ho, &err);
    ASSERT_NOT_NULL(hold);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1", rt_httpd_port(hold));
    setenv("STT_OPENAI_BASE_URL", url, 1); /* read when a job starts */
    char *v = media_file("12_voice.ogg", "SAY:never answered");
    send_ev(GW_KIND_VOICE, "", v);
    send_ev(GW_KIND_TEXT, "queued behind it", NULL);
    uint64_t req = wait_held(); /* the transcription is in flight, and stays so */
    send_ev(GW_KIND_TEXT, "/stop", NULL);
    int i = wait_text(GW_TEXT_NOTICE, "Force-stopped", 0);
    ASSERT_STR_EQ("\xe2\x9a\xa1 Force-stopped. The agent was still starting \xe2\x80\x94 session "
                  "unlocked.",
                  text_at(i));
    /* now the transcript comes: nobody is waiting for it any more */
    const char *const h[] = {"Content-Type: text/plain", NULL};
    ASSERT_OK(rt_httpd_reply(F.cx, req, 200, h, "never answered\n", 15));
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    pthread_mutex_lock(&lock);
    int n = nrequests, cancelled = ncancelled;
    pthread_mutex_unlock(&lock);
    ASSERT_EQ(0, n); /* the model never saw either */
    ASSERT_EQ(2, cancelled);
    ASSERT_EQ(0, count_text("never answered"));
    ASSERT_EQ(0, count_text("queued behind it"));
    send_ev(GW_KIND_TEXT, "/stop", NULL); /* nothing left */
    i = wait_text(GW_TEXT_NOTICE, "No active task", 0);
    ASSERT_STR_EQ("No active task to stop.", text_at(i));
    send_ev(GW_KIND_TEXT, "still here", NULL);
    wait_text(GW_TEXT_REPLY, "echo: still here", 0);
    setenv("STT_OPENAI_BASE_URL", F.url, 1);
    char *v2 = media_file("13_voice.ogg", "SAY:after the stop");
    send_ev(GW_KIND_VOICE, "", v2);
    wait_text(GW_TEXT_REPLY, "after the stop", 0); /* later voice notes are transcribed */
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    pthread_mutex_lock(&lock);
    n = nrequests;
    pthread_mutex_unlock(&lock);
    ASSERT_EQ(2, n);
    ASSERT_EQ(0, count_text("never answered"));
    rt_httpd_stop(hold, 1000);
    stop();
    rt_free(v);
    rt_free(v2);
}

static void make_skill(const char *name, const char *desc)
{
    char dir[700], path[800];
    snprintf(dir, sizeof(dir), "%s/skills", F.home);
    ASSERT_TRUE(mkdir(dir, 0700) == 0 || errno == EEXIST);
    snprintf(dir, sizeof(dir), "%s/skills/%s", F.home, name);
    ASSERT_TRUE(mkdir(dir, 0700) == 0 || errno == EEXIST);
    snprintf(path, sizeof(path), "%s/SKILL.md", dir);
    char *text = rt_xasprintf("---\nname: %s\ndescription: %s\n---\nDo it.\n", name, desc);
    ASSERT_OK(hm_write_atomic(path, text, strlen(text), 0600));
    rt_free(text);
}

/* /help ends with the installed skills as `/<skill-name>` commands (gateway.md §4), sorted,
 * at most 10, then how many more; no skills: no section. (Here: this fixture keeps 8 KB of
 * a reply.) */
TEST(help_lists_the_skill_commands)
{
    start(NULL, NULL);
    send_ev(GW_KIND_TEXT, "/help", NULL);
    int i = wait_text(GW_TEXT_NOTICE, "Hermes Commands", 0);
    ASSERT_TRUE(strstr(text_at(i), "Skill Commands") == NULL);
    make_skill("deploy_k8s", "Deploy to Kubernetes");
    send_ev(GW_KIND_TEXT, "/help", NULL);
    i = wait_text(GW_TEXT_NOTICE, "Hermes Commands", 1);
    const char *sec = strstr(text_at(i), "\n\n\xe2\x9a\xa1 **Skill Commands**");
    ASSERT_NOT_NULL(sec);
    ASSERT_STR_EQ("\n\n\xe2\x9a\xa1 **Skill Commands** (1 active):\n`/deploy-k8s` \xe2\x80\x94 "
                  "Deploy to Kubernetes",
                  sec);
    ASSERT_TRUE(strstr(text_at(i), "\n`/help` -- ") < sec); /* the commands come first */
    char name[32], desc[32];
    for (int k = 11; k >= 1; k--) { /* 12 in all */
        snprintf(name, sizeof(name), "s%02d", k);
        snprintf(desc, sizeof(desc), "Skill number %d", k);
        make_skill(name, desc);
    }
    send_ev(GW_KIND_TEXT, "/help", NULL);
    i = wait_text(GW_TEXT_NOTICE, "Hermes Commands", 2);
    sec = strstr(text_at(i), "\n\n\xe2\x9a\xa1 **Skill Commands**");
    ASSERT_NOT_NULL(sec);
    /* sorted by command: /deploy-k8s and /s01 … /s09 shown, /s10 and /s11 are the 2 more */
    ASSERT_STR_EQ("\n\n\xe2\x9a\xa1 **Skill Commands** (12 active):\n"
                  "`/deploy-k8s` \xe2\x80\x94 Deploy to Kubernetes\n"
                  "`/s01` \xe2\x80\x94 Skill number 1\n`/s02` \xe2\x80\x94 Skill number 2\n"
                  "`/s03` \xe2\x80\x94 Skill number 3\n`/s04` \xe2\x80\x94 Skill number 4\n"
                  "`/s05` \xe2\x80\x94 Skill number 5\n`/s06` \xe2\x80\x94 Skill number 6\n"
                  "`/s07` \xe2\x80\x94 Skill number 7\n`/s08` \xe2\x80\x94 Skill number 8\n"
                  "`/s09` \xe2\x80\x94 Skill number 9\n\n... and 2 more. Use `/commands` for "
                  "the full paginated list.",
                  sec);
    ASSERT_OK(rt_wait_quiescent(F.rt, 10000));
    stop();
}
