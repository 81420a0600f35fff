/*
 * vo_audio — speech to text and text to speech through the OpenAI audio API, as the
 * original's tools/transcription_tools.py (provider "openai") and tools/tts_tool.py (provider
 * "openai") do it: the settings, the requests and the answers. No I/O of its own beyond
 * reading the audio file to upload; callers send the request with rt_http_submit and hand
 * the DONE message back here.
 *
 * Settings (the original's keys, env vars and defaults):
 *   stt.enabled (true); stt.openai.api_key / stt.openai.base_url (config), else
 *   VOICE_TOOLS_OPENAI_KEY, then OPENAI_API_KEY, with STT_OPENAI_BASE_URL or
 *   https://api.openai.com/v1; model stt.openai.model, else stt.model, else STT_OPENAI_MODEL,
 *   else whisper-1 (response_format "text" for whisper-1, "json" otherwise). Files: .mp3 .mp4
 *   .mpeg .mpga .m4a .wav .webm .ogg .aac .flac, at most 25 MB.
 *   tts.provider (edge), tts.openai.model (gpt-4o-mini-tts), tts.openai.voice (alloy),
 *   tts.openai.base_url, tts.openai.speed / tts.speed; key VOICE_TOOLS_OPENAI_KEY then
 *   OPENAI_API_KEY; TTS_OPENAI_BASE_URL (ours) overrides the default base URL for tests.
 *   Edge TTS and ElevenLabs are not implemented: they are refused with a sentence naming
 *   tts.provider.
 *
 * Threads: pure functions, any thread. vo_stt_request reads a file (blocking): call it from
 * a detached actor.
 */
#ifndef VO_AUDIO_H
#define VO_AUDIO_H

#include "hm_config.h"
#include "rt_http.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VO_STT_MAX_FILE   (25 * 1024 * 1024)
#define VO_TTS_MAX_TEXT   4000
#define VO_TTS_MAX_AUDIO  (32u << 20) /* the synthesized audio we accept */
#define VO_OPENAI_BASE    "https://api.openai.com/v1"
#define VO_HTTP_TIMEOUT   30000 /* the original's client timeout (s → ms) */
#define VO_TTS_TIMEOUT_MS 60000

typedef struct vo_stt_cfg {
    bool enabled;
    char *api_key; /* NULL: none configured */
    char *base_url;
    char *model;
} vo_stt_cfg;

typedef struct vo_tts_cfg {
    char *provider; /* lower-cased */
    char *api_key;  /* NULL: none */
    char *base_url;
    char *model;
    char *voice;
    double speed; /* 1.0: not sent */
} vo_tts_cfg;

/* An HTTP request ready for rt_http_submit (vo_http_fill). */
typedef struct vo_http_req {
    char *url;
    char *body;
    size_t len;
    char *hdr[4]; /* NULL-terminated "Name: value" lines */
} vo_http_req;

void vo_stt_cfg_load(const hm_config *c, vo_stt_cfg *out);
void vo_stt_cfg_fini(vo_stt_cfg *c);
void vo_tts_cfg_load(const hm_config *c, vo_tts_cfg *out);
void vo_tts_cfg_fini(vo_tts_cfg *c);
void vo_http_req_fini(vo_http_req *r);
/* Point req at r (borrowed: r must outlive the submit call). */
void vo_http_fill(const vo_http_req *r, rt_http_request *req);

/* The original's file checks: NULL when path may be sent, else its error sentence (new):
 * "Audio file not found: …", "Path is not a file: …", "Unsupported format: .x. Supported: …",
 * "File too large: 30.0MB (max 25MB)". */
char *vo_stt_validate(const char *path);

/* The error when no provider can transcribe (new): the original's "No STT provider available.
 * …" sentence. */
char *vo_stt_no_provider(void);

/*
 * Build the multipart/form-data transcription request for path (model, response_format,
 * file) with a random boundary. Reads the file. 0, or -errno with *err a sentence (new).
 */
int vo_stt_request(const vo_stt_cfg *c, const char *path, vo_http_req *out, char **err);

/*
 * The transcript in an answer: 0 with *text (new, trimmed), or -EPROTO / the transport's
 * error with *err (new) in the original's words ("Connection error: …", "API error: …").
 */
int vo_stt_parse(const vo_stt_cfg *c, const rt_io_msg_http_done *d, char **text, char **err);

/* NULL when TTS can run with c, else why not (new sentence). */
char *vo_tts_unavailable(const vo_tts_cfg *c);

/* The /v1/audio/speech request for text (capped at VO_TTS_MAX_TEXT characters); opus:
 * response_format "opus" (an .ogg file), else "mp3". */
void vo_tts_request(const vo_tts_cfg *c, const char *text, bool opus, vo_http_req *out);

/* 0 when d carries audio (body borrowed from d), else -errno with *err (new). */
int vo_tts_parse(const rt_io_msg_http_done *d, char **err);

/* <home>/cache/audio/tts_<YYYYmmdd_HHMMSS>_<6 hex>.<ogg|mp3> (new); creates the folders.
 * NULL on failure. */
char *vo_tts_output_path(const char *home, bool opus);

/* The original's _strip_markdown_for_tts (code blocks, links, URLs, emphasis, headers, list
 * markers, rules, extra blank lines) — new string. */
char *vo_strip_markdown(const char *text);
/* The adapters' auto-TTS cleanup: drop * _ ` # [ ] ( ), cut at 4000 characters, trim. New. */
char *vo_strip_simple(const char *text);

/* The first n characters of s (whole UTF-8 sequences), new. */
char *vo_utf8_prefix(const char *s, size_t n);

#endif /* VO_AUDIO_H */
