/* The LLM wire layer: request bodies for both APIs, complete and streamed responses,
 * tool calls assembled from fragments, truncated streams, and error classification. */
#include "llm_wire.h"
#include "rt_alloc.h"
#include "test.h"

#include <errno.h>

static cJSON *conversation(void)
{
    return cJSON_Parse(
        "[{\"role\":\"system\",\"content\":\"You are Hermes.\"},"
        "{\"role\":\"user\",\"content\":\"list files\"},"
        "{\"role\":\"assistant\",\"content\":\"\",\"reasoning\":\"think\",\"finish_reason\":"
        "\"tool_calls\",\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":"
        "{\"name\":\"terminal\",\"arguments\":\"{\\\"command\\\":\\\"ls\\\"}\"}},"
        "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"read_file\","
        "\"arguments\":\"not json\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"a.txt\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":\"err\"},"
        "{\"role\":\"user\",\"content\":\"thanks\"}]");
}

static cJSON *tools(void)
{
    return cJSON_Parse(
        "[{\"name\":\"terminal\",\"description\":\"run\",\"parameters\":"
        "{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\"}}}}]");
}

TEST(openai_body_strips_bookkeeping_and_wraps_tools)
{
    cJSON *msgs = conversation(), *t = tools(),
          *extra = cJSON_Parse("{\"reasoning\":{\"enabled\":true}}");
    llm_request_spec s = {.api = LLM_API_OPENAI,
                          .model = "m",
                          .messages = msgs,
                          .tools = t,
                          .extra = extra,
                          .max_tokens = 100,
                          .temperature = -1,
                          .stream = true};
    char *body = llm_build_body(&s);
    cJSON *b = cJSON_Parse(body);
    ASSERT_NOT_NULL(b);
    ASSERT_STR_EQ("m", cJSON_GetObjectItem(b, "model")->valuestring);
    ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(b, "stream")));
    ASSERT_EQ(100, cJSON_GetObjectItem(b, "max_tokens")->valueint);
    ASSERT_NULL(cJSON_GetObjectItem(b, "temperature"));
    cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(b, "messages"), 2);
    ASSERT_NULL(cJSON_GetObjectItem(a, "finish_reason"));
    ASSERT_NULL(cJSON_GetObjectItem(a, "reasoning"));
    ASSERT_STR_EQ("think", cJSON_GetObjectItem(a, "reasoning_content")->valuestring);
    cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItem(b, "tools"), 0);
    ASSERT_STR_EQ("function", cJSON_GetObjectItem(t0, "type")->valuestring);
    ASSERT_STR_EQ("terminal",
                  cJSON_GetObjectItem(cJSON_GetObjectItem(t0, "function"), "name")->valuestring);
    ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "reasoning"), "enabled")));
    cJSON_Delete(b);
    rt_free(body);
    cJSON_Delete(msgs);
    cJSON_Delete(t);
    cJSON_Delete(extra);
}

TEST(anthropic_body_alternates_roles_and_converts_tools)
{
    cJSON *msgs = conversation(), *t = tools();
    llm_request_spec s = {.api = LLM_API_ANTHROPIC,
                          .model = "claude",
                          .messages = msgs,
                          .tools = t,
                          .temperature = -1};
    char *body = llm_build_body(&s);
    cJSON *b = cJSON_Parse(body);
    ASSERT_STR_EQ("You are Hermes.", cJSON_GetObjectItem(b, "system")->valuestring);
    ASSERT_EQ(8192, cJSON_GetObjectItem(b, "max_tokens")->valueint);
    cJSON *turns = cJSON_GetObjectItem(b, "messages");
    ASSERT_EQ(3, cJSON_GetArraySize(turns)); /* user, assistant, user(tool results + text) */
    cJSON *asst = cJSON_GetArrayItem(turns, 1);
    ASSERT_STR_EQ("assistant", cJSON_GetObjectItem(asst, "role")->valuestring);
    cJSON *blocks = cJSON_GetObjectItem(asst, "content");
    ASSERT_EQ(2, cJSON_GetArraySize(blocks));
    cJSON *tu = cJSON_GetArrayItem(blocks, 0);
    ASSERT_STR_EQ("tool_use", cJSON_GetObjectItem(tu, "type")->valuestring);
    ASSERT_STR_EQ("ls",
                  cJSON_GetObjectItem(cJSON_GetObjectItem(tu, "input"), "command")->valuestring);
    /* Invalid arguments from the model become an empty input, not a failure. */
    ASSERT_TRUE(cJSON_IsObject(cJSON_GetObjectItem(cJSON_GetArrayItem(blocks, 1), "input")));
    cJSON *last = cJSON_GetObjectItem(cJSON_GetArrayItem(turns, 2), "content");
    ASSERT_EQ(3, cJSON_GetArraySize(last));
    ASSERT_STR_EQ("tool_result",
                  cJSON_GetObjectItem(cJSON_GetArrayItem(last, 0), "type")->valuestring);
    ASSERT_STR_EQ("call_1",
                  cJSON_GetObjectItem(cJSON_GetArrayItem(last, 0), "tool_use_id")->valuestring);
    ASSERT_STR_EQ("thanks", cJSON_GetObjectItem(cJSON_GetArrayItem(last, 2), "text")->valuestring);
    cJSON *tool = cJSON_GetArrayItem(cJSON_GetObjectItem(b, "tools"), 0);
    ASSERT_NOT_NULL(cJSON_GetObjectItem(tool, "input_schema"));
    cJSON_Delete(b);
    rt_free(body);
    cJSON_Delete(msgs);
    cJSON_Delete(t);
}

TEST(openai_complete_response_with_tool_calls)
{
    const char *body =
        "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,\"reasoning\":\"r1\","
        "\"reasoning_details\":[{\"summary\":\"r1\"},{\"text\":\"r2\"}],"
        "\"tool_calls\":[{\"id\":\"\",\"type\":\"function\",\"function\":{\"name\":\"todo\","
        "\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}],"
        "\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":5}}";
    llm_result r;
    char err[128];
    ASSERT_OK(llm_parse_response(LLM_API_OPENAI, body, strlen(body), &r, err, sizeof(err)));
    ASSERT_STR_EQ("tool_calls", r.finish_reason);
    ASSERT_STR_EQ("", cJSON_GetObjectItem(r.message, "content")->valuestring);
    ASSERT_STR_EQ("r1\n\nr2", cJSON_GetObjectItem(r.message, "reasoning")->valuestring);
    ASSERT_NOT_NULL(cJSON_GetObjectItem(r.message, "reasoning_details"));
    cJSON *tc = cJSON_GetArrayItem(cJSON_GetObjectItem(r.message, "tool_calls"), 0);
    const char *id = cJSON_GetObjectItem(tc, "id")->valuestring;
    ASSERT_EQ(17, strlen(id)); /* generated call_<12 hex> */
    ASSERT_EQ(0, strncmp(id, "call_", 5));
    ASSERT_EQ(11, r.usage.prompt_tokens);
    ASSERT_EQ(5, r.usage.completion_tokens);
    llm_result_fini(&r);
}

TEST(malformed_and_error_bodies_are_clear_errors)
{
    llm_result r;
    char err[128];
    ASSERT_EQ(-EBADMSG, llm_parse_response(LLM_API_OPENAI, "{not json", 9, &r, err, sizeof(err)));
    ASSERT_STR_CONTAINS(err, "not a JSON object");
    ASSERT_EQ(-EBADMSG,
              llm_parse_response(LLM_API_OPENAI, "{\"choices\":[]}", 14, &r, err, sizeof(err)));
    ASSERT_STR_CONTAINS(err, "Invalid API response shape");
    const char *e = "{\"error\":{\"message\":\"quota exceeded\"}}";
    ASSERT_EQ(-EBADMSG, llm_parse_response(LLM_API_OPENAI, e, strlen(e), &r, err, sizeof(err)));
    ASSERT_STR_CONTAINS(err, "quota exceeded");
    ASSERT_EQ(-EBADMSG, llm_parse_response(LLM_API_ANTHROPIC, NULL, 0, &r, err, sizeof(err)));
}

typedef struct sink {
    char text[256];
    int ncontent, nreasoning;
} sink;

static void on_delta(void *arg, int kind, const char *t, size_t n)
{
    sink *s = arg;
    if (kind == LLM_DELTA_CONTENT) {
        strncat(s->text, t, sizeof(s->text) - strlen(s->text) - 1);
        s->ncontent++;
    } else {
        s->nreasoning++;
    }
}

TEST(openai_stream_assembles_deltas_and_tool_calls)
{
    static const char *const ev[] = {
        "{\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}",
        "{\"choices\":[{\"delta\":{\"reasoning\":\"hm\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"c2\",\"function\":{"
        "\"name\":\"b\",\"arguments\":\"{\\\"x\\\"\"}}]}}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{"
        "\"name\":\"a\",\"arguments\":\"{}\"}}]}}]}",
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\":1}"
        "\"}}]}}]}",
        "{\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}",
        "{\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}",
        "[DONE]"};
    llm_stream *st = llm_stream_new(LLM_API_OPENAI);
    sink sk = {0};
    char err[128];
    int rc = 0;
    for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++)
        rc = llm_stream_event(st, NULL, ev[i], on_delta, &sk, err, sizeof(err));
    ASSERT_EQ(1, rc);
    ASSERT_STR_EQ("Hello", sk.text);
    ASSERT_EQ(2, sk.ncontent);
    ASSERT_EQ(1, sk.nreasoning);
    llm_result r;
    ASSERT_OK(llm_stream_finish(st, &r, err, sizeof(err)));
    cJSON *tcs = cJSON_GetObjectItem(r.message, "tool_calls");
    ASSERT_EQ(2, cJSON_GetArraySize(tcs));
    cJSON *f1 = cJSON_GetObjectItem(cJSON_GetArrayItem(tcs, 1), "function");
    ASSERT_STR_EQ("b", cJSON_GetObjectItem(f1, "name")->valuestring);
    ASSERT_STR_EQ("{\"x\":1}", cJSON_GetObjectItem(f1, "arguments")->valuestring);
    ASSERT_STR_EQ("hm", cJSON_GetObjectItem(r.message, "reasoning")->valuestring);
    ASSERT_EQ(7, r.usage.prompt_tokens);
    llm_result_fini(&r);
    llm_stream_free(st);
}

TEST(stream_cut_before_finish_is_an_error)
{
    llm_stream *st = llm_stream_new(LLM_API_OPENAI);
    char err[128];
    ASSERT_OK(llm_stream_event(st, NULL, "{\"choices\":[{\"delta\":{\"content\":\"par\"}}]}", NULL,
                               NULL, err, sizeof(err)));
    llm_result r;
    ASSERT_EQ(-EBADMSG, llm_stream_finish(st, &r, err, sizeof(err)));
    ASSERT_STR_CONTAINS(err, "ended before");
    ASSERT_EQ(-EBADMSG, llm_stream_event(st, NULL, "{bad", NULL, NULL, err, sizeof(err)));
    ASSERT_EQ(-EBADMSG, llm_stream_event(st, NULL, "{\"error\":{\"message\":\"boom\"}}", NULL, NULL,
                                         err, sizeof(err)));
    ASSERT_STR_CONTAINS(err, "boom");
    llm_stream_free(st);
}

TEST(anthropic_stream_with_text_thinking_and_tool_use)
{
    static const char *const ev[][2] = {
        {"message_start",
         "{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":9}}}"},
        {"content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{"
                                "\"type\":\"thinking\"}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                                "\"thinking_delta\",\"thinking\":\"ponder\"}}"},
        {"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}"},
        {"content_block_start", "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{"
                                "\"type\":\"text\",\"text\":\"\"}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
                                "\"text_delta\",\"text\":\"Sure\"}}"},
        {"content_block_start",
         "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\","
         "\"id\":\"toolu_1\",\"name\":\"terminal\",\"input\":{}}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
                                "\"input_json_delta\",\"partial_json\":\"{\\\"command\\\":\"}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
                                "\"input_json_delta\",\"partial_json\":\"\\\"ls\\\"}\"}}"},
        {"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":2}"},
        {"message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},"
                          "\"usage\":{\"output_tokens\":4}}"},
        {"message_stop", "{\"type\":\"message_stop\"}"}};
    llm_stream *st = llm_stream_new(LLM_API_ANTHROPIC);
    sink sk = {0};
    char err[128];
    int rc = 0;
    for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++)
        rc = llm_stream_event(st, ev[i][0], ev[i][1], on_delta, &sk, err, sizeof(err));
    ASSERT_EQ(1, rc);
    llm_result r;
    ASSERT_OK(llm_stream_finish(st, &r, err, sizeof(err)));
    ASSERT_STR_EQ("tool_calls", r.finish_reason);
    ASSERT_STR_EQ("Sure", cJSON_GetObjectItem(r.message, "content")->valuestring);
    ASSERT_STR_EQ("ponder", cJSON_GetObjectItem(r.message, "reasoning")->valuestring);
    cJSON *f = cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(r.message, "tool_calls"), 0), "function");
    ASSERT_STR_EQ("{\"command\":\"ls\"}", cJSON_GetObjectItem(f, "arguments")->valuestring);
    ASSERT_EQ(9, r.usage.prompt_tokens);
    ASSERT_EQ(4, r.usage.completion_tokens);
    llm_result_fini(&r);
    llm_stream_free(st);
}

TEST(anthropic_complete_response)
{
    const char *body =
        "{\"content\":[{\"type\":\"text\",\"text\":\"Hi\"},{\"type\":\"tool_use\","
        "\"id\":\"t1\",\"name\":\"memory\",\"input\":{\"action\":\"add\"}}],"
        "\"stop_reason\":\"max_tokens\",\"usage\":{\"input_tokens\":3,\"output_tokens\":2}}";
    llm_result r;
    char err[128];
    ASSERT_OK(llm_parse_response(LLM_API_ANTHROPIC, body, strlen(body), &r, err, sizeof(err)));
    ASSERT_STR_EQ("length", r.finish_reason);
    ASSERT_STR_EQ("Hi", cJSON_GetObjectItem(r.message, "content")->valuestring);
    llm_result_fini(&r);
}

TEST(error_classification)
{
    ASSERT_EQ(LLM_ERR_RATE_LIMIT, llm_classify(429, "{}", 0));
    ASSERT_EQ(
        LLM_ERR_CONTEXT_LENGTH,
        llm_classify(
            400, "{\"error\":{\"message\":\"This model's maximum context length is 8192\"}}", 0));
    ASSERT_EQ(LLM_ERR_AUTH, llm_classify(401, NULL, 0));
    ASSERT_EQ(LLM_ERR_PAYMENT, llm_classify(402, NULL, 0));
    ASSERT_EQ(LLM_ERR_NOT_FOUND, llm_classify(400, "x is not a valid model ID", 0));
    ASSERT_EQ(LLM_ERR_OVERLOADED, llm_classify(529, NULL, 0));
    ASSERT_EQ(LLM_ERR_SERVER, llm_classify(503, NULL, 0));
    ASSERT_EQ(LLM_ERR_PAYLOAD_TOO_LARGE, llm_classify(413, NULL, 0));
    ASSERT_EQ(LLM_ERR_NETWORK, llm_classify(0, NULL, -ECONNREFUSED));
    ASSERT_EQ(LLM_ERR_TIMEOUT, llm_classify(0, NULL, -ETIMEDOUT));
    ASSERT_TRUE(llm_err_is_retryable(LLM_ERR_RATE_LIMIT));
    ASSERT_FALSE(llm_err_is_retryable(LLM_ERR_AUTH));
    ASSERT_STR_CONTAINS(llm_err_hint(LLM_ERR_AUTH), "API key");
    char *m = llm_error_message("{\"error\":{\"message\":\"Invalid API key\"}}");
    ASSERT_STR_EQ("Invalid API key", m);
    rt_free(m);
    ASSERT_NULL(llm_error_message("<html>"));
}

TEST(retry_after_seconds_and_dates)
{
    ASSERT_EQ(2000, llm_retry_after_ms("2", 0));
    ASSERT_EQ(1500, llm_retry_after_ms(" 1.5", 0));
    ASSERT_EQ(-1, llm_retry_after_ms("soon", 0));
    ASSERT_EQ(-1, llm_retry_after_ms(NULL, 0));
    /* Thu, 01 Jan 1970 00:00:30 GMT is 30 s after the epoch. */
    ASSERT_EQ(20000, llm_retry_after_ms("Thu, 01 Jan 1970 00:00:30 GMT", 10));
}
