/*
 * voice_fake — an in-process stand-in for the OpenAI audio API (rt_httpd on 127.0.0.1), for
 * the voice tests: POST …/audio/transcriptions (multipart) and …/audio/speech (JSON).
 *
 * The uploaded file decides a transcription's answer: "SAY:<text>" → <text>; "SLOW:<text>" →
 * <text> after 300 ms; "FAIL:<status>" → that status with an OpenAI error body; anything else
 * "(fake transcript of N bytes)". response_format "text" answers text/plain, else JSON.
 * Speech answers "OggS…" (opus) or "ID3…" (mp3); an input containing FAIL_TTS gets 500.
 * POST …/chat/completions (a vision model) answers "A red square on white." (401 for the key
 * "bad-vision"). A request without "Authorization: Bearer <something>" gets 401.
 *
 * Threads: start/stop from the test's main thread (lws and reactor running); records are
 * locked and may be read from any thread.
 */
#ifndef VOICE_FAKE_H
#define VOICE_FAKE_H

#include "rt_actor.h"
#include "rt_sched.h"

#include <stddef.h>

typedef struct vfake_rec {
    char path[128];
    char model[64];
    char format[32];
    char filename[128];
    char auth[128];
    char content_type[128];
    char json[4096]; /* speech, chat completions: the body (cut) */
    size_t file_len;
} vfake_rec;

/* Start the server; its base URL ("http://127.0.0.1:<port>/v1") is written to url. */
void vfake_start(rt_runtime *rt, char *url, size_t len);
void vfake_stop(void);
/* Requests so far, and a copy of the i-th. */
int vfake_count(void);
vfake_rec vfake_get(int i);

#endif /* VOICE_FAKE_H */
