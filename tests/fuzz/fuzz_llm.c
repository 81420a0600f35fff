/*
 * fuzz_llm — libFuzzer target for what we parse from an LLM provider
 * (actors/llm/llm_wire.c): complete chat-completion and Messages responses, streamed events
 * (OpenAI chunks and Anthropic's typed events), error bodies and Retry-After values.
 *
 * Byte 0 picks the API and the mode; the rest is a response body, or SSE events separated by
 * NUL bytes (each "event\x01data" or just data). Checked besides what ASan and UBSan catch:
 * every call returns 0, 1 or -EBADMSG; a failure always explains itself in err; a result
 * always has an assistant message with a role; deltas have the length they claim.
 */
#include "llm_wire.h"
#include "rt_alloc.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_delta(void *arg, int kind, const char *text, size_t len)
{
    (void)arg;
    if ((kind != LLM_DELTA_CONTENT && kind != LLM_DELTA_REASONING) || strlen(text) != len)
        abort();
}

static void check_result(int rc, llm_result *r, const char *err)
{
    if (rc == 0) {
        if (!r->message || !cJSON_GetObjectItemCaseSensitive(r->message, "role"))
            abort();
        llm_result_fini(r);
    } else if (rc != -EBADMSG || !err[0]) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    llm_api api = (data[0] & 1) ? LLM_API_ANTHROPIC : LLM_API_OPENAI;
    char *body = rt_xmalloc(size);
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';
    size_t len = size - 1;
    char err[256] = "";
    llm_result r = {0};
    switch ((data[0] >> 1) & 3) {
    case 0: check_result(llm_parse_response(api, body, len, &r, err, sizeof(err)), &r, err); break;
    case 1: {
        llm_stream *s = llm_stream_new(api);
        int rc = 0;
        for (char *p = body; p < body + len && rc == 0;) {
            size_t n = strlen(p);
            char *sep = memchr(p, '\x01', n);
            const char *event = NULL, *d = p;
            if (sep) {
                *sep = '\0';
                event = p;
                d = sep + 1;
            }
            err[0] = '\0';
            rc = llm_stream_event(s, event, d, on_delta, NULL, err, sizeof(err));
            if (rc != 0 && rc != 1 && !(rc == -EBADMSG && err[0]))
                abort();
            p += n + 1;
        }
        if (rc >= 0) {
            err[0] = '\0';
            check_result(llm_stream_finish(s, &r, err, sizeof(err)), &r, err);
        }
        llm_stream_free(s);
        break;
    }
    case 2: {
        rt_free(llm_error_message(body));
        (void)llm_classify(400 + (int)(len % 200), body, 0);
        break;
    }
    default: {
        int64_t ms = llm_retry_after_ms(body, 1700000000);
        if (ms < -1)
            abort();
        break;
    }
    }
    rt_free(body);
    return 0;
}
