/* hm_config: defaults, precedence, checking, the original's special rules and exports. */
#include "cfg_test.h"
#include "hm_config.h"
#include "rt_buf.h"
#include "rt_log.h"
#include "rt_util.h"
#include "test.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>

/* Every variable these tests touch starts unset (the runner's environment may have some). */
static void clean_env(void)
{
    for (size_t i = 0; i < hm_env_index_len; i++)
        unsetenv(hm_env_index[i].name);
    static const char *const more[] = {"BROWSER_INACTIVITY_TIMEOUT", "TERMINAL_PERSISTENT_SHELL",
                                       "MATRIX_HOME_CHANNEL", "model", "HM_T_X"};
    for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
        unsetenv(more[i]);
}

/* Load home with config.yaml = yaml (NULL: no file) and .env = dotenv (NULL: none). */
static hm_config *load_with(const char *home, const char *yaml, const char *dotenv,
                            hm_config_diag *diag, unsigned flags)
{
    if (yaml)
        write_str(home, "config.yaml", yaml);
    if (dotenv)
        write_str(home, ".env", dotenv);
    int err = 0;
    hm_config *c = hm_config_load(home, flags, diag, &err);
    if (!c) {
        for (size_t i = 0; diag && i < diag->n; i++)
            fprintf(stderr, "%s\n", diag->items[i].msg);
        TEST_FAIL_("load failed: %d", err);
    }
    return c;
}

static bool diag_has(const hm_config_diag *d, const char *needle)
{
    for (size_t i = 0; i < d->n; i++)
        if (strstr(d->items[i].msg, needle))
            return true;
    return false;
}

static void dump_diag(const hm_config_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(stderr, "diag: %s\n", d->items[i].msg);
}

TEST(defaults_without_files)
{
    clean_env();
    char *home = tmp_dir();
    hm_config_diag d;
    hm_config_diag_init(&d);
    hm_config *c = load_with(home, NULL, NULL, &d, 0);
    ASSERT_FALSE(hm_config_has_file(c));
    ASSERT_EQ(0, d.n);
    ASSERT_STR_EQ("local", hm_config_str(c, "terminal.backend"));
    ASSERT_EQ(180, hm_config_int(c, "terminal.timeout"));
    ASSERT_FALSE(hm_config_is_set(c, "terminal.timeout"));
    hm_source src;
    ASSERT_EQ(180, hm_config_env_int(c, "terminal.timeout", &src));
    ASSERT_EQ(HM_SRC_DEFAULT, src);
    char *p = rt_xasprintf("%s/config.yaml", home);
    ASSERT_STR_EQ(p, hm_config_path(c));
    rt_free(p);
    hm_config_unref(c);
    hm_config_diag_fini(&d);
    rm_rf(home, 0);
    rt_free(home);
}

/* The defaults documented in agent-core §9.3 and gateway.md. */
TEST(every_documented_default)
{
    clean_env();
    char *home = tmp_dir();
    hm_config *c = load_with(home, NULL, NULL, NULL, 0);
    static const struct {
        const char *path, *str;
    } s[] = {
        {"model.default", "anthropic/claude-opus-4.6"},
        {"model.provider", "auto"},
        {"model.base_url", "https://openrouter.ai/api/v1"},
        {"agent.system_prompt", ""},
        {"agent.reasoning_effort", "xhigh"},
        {"agent.prefill_messages_file", ""},
        {"prefill_messages_file", ""},
        {"terminal.backend", "local"},
        {"terminal.cwd", "."},
        {"terminal.docker_image", "nikolaik/python-nodejs:python3.11-nodejs20"},
        {"terminal.singularity_image", "docker://nikolaik/python-nodejs:python3.11-nodejs20"},
        {"terminal.modal_image", "nikolaik/python-nodejs:python3.11-nodejs20"},
        {"compression.summary_model", "google/gemini-3-flash-preview"},
        {"session_reset.mode", "both"},
        {"display.tool_progress", "all"},
        {"display.personality", "kawaii"},
        {"display.busy_input_mode", "interrupt"},
        {"tts.provider", "edge"},
        {"tts.edge.voice", "en-US-AriaNeural"},
        {"tts.elevenlabs.voice_id", "pNInz6obpgDQGcFmaJgB"},
        {"tts.elevenlabs.model_id", "eleven_multilingual_v2"},
        {"tts.openai.model", "gpt-4o-mini-tts"},
        {"tts.openai.voice", "alloy"},
        {"stt.model", "whisper-1"},
        {"human_delay.mode", "off"},
        {"unauthorized_dm_behavior", "pair"},
        {"streaming.transport", "edit"},
        {"streaming.cursor", " ▉"},
        {"approvals.mode", "manual"},
        {"platforms.matrix.reply_to_mode", "first"}, /* "*" keys have defaults too */
        {"agent.personalities.helpful", "You are a helpful, friendly AI assistant."},
    };
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        const char *v = hm_config_str(c, s[i].path);
        if (!v || strcmp(v, s[i].str) != 0)
            TEST_FAIL_("%s = '%s', expected '%s'", s[i].path, v ? v : "(null)", s[i].str);
    }
    static const struct {
        const char *path;
        int64_t v;
    } n[] = {
        {"_config_version", 4},
        {"max_turns", 100},
        {"agent.max_turns", 60},
        {"terminal.timeout", 180},
        {"terminal.lifetime_seconds", 300},
        {"terminal.container_memory", 5120},
        {"terminal.container_disk", 51200},
        {"browser.inactivity_timeout", 120},
        {"memory.memory_char_limit", 2200},
        {"memory.user_char_limit", 1375},
        {"memory.nudge_interval", 10},
        {"memory.flush_min_turns", 6},
        {"skills.creation_nudge_interval", 15},
        {"session_reset.idle_minutes", 1440},
        {"session_reset.at_hour", 4},
        {"delegation.max_iterations", 25},
        {"code_execution.timeout", 300},
        {"code_execution.max_tool_calls", 50},
        {"clarify.timeout", 120},
        {"human_delay.min_ms", 800},
        {"human_delay.max_ms", 2500},
        {"streaming.buffer_threshold", 40},
        {"agent.gateway_timeout", 1800},
        {"agent.gateway_timeout_warning", 900},
        {"agent.gateway_notify_interval", 600},
        {"agent.restart_drain_timeout", 60},
        {"approvals.timeout", 60},
        {"approvals.gateway_timeout", 300},
        {"cron.script_timeout_seconds", 120},
        {"display.tool_preview_length", 0},
    };
    for (size_t i = 0; i < sizeof(n) / sizeof(n[0]); i++)
        if (hm_config_int(c, n[i].path) != n[i].v)
            TEST_FAIL_("%s = %lld, expected %lld", n[i].path,
                       (long long)hm_config_int(c, n[i].path), (long long)n[i].v);
    static const struct {
        const char *path;
        bool v;
    } b[] = {
        {"agent.verbose", false},
        {"terminal.container_persistent", true},
        {"compression.enabled", true},
        {"memory.memory_enabled", true},
        {"memory.user_profile_enabled", true},
        {"display.compact", false},
        {"stt.enabled", true},
        {"group_sessions_per_user", true},
        {"thread_sessions_per_user", false},
        {"streaming.enabled", false},
        {"always_log_local", true},
        {"session_reset.notify", true},
        {"matrix.require_mention", true},
        {"matrix.auto_thread", true},
        {"matrix.dm_mention_threads", false},
        {"cron.wrap_response", true},
        {"display.interim_assistant_messages", true},
        {"privacy.redact_pii", false},
        {"platforms.mattermost.enabled", false},
    };
    for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
        if (hm_config_bool(c, b[i].path) != b[i].v)
            TEST_FAIL_("%s != %d", b[i].path, b[i].v);
    ASSERT_TRUE(fabs(hm_config_double(c, "compression.threshold") - 0.85) < 1e-12);
    ASSERT_TRUE(fabs(hm_config_double(c, "terminal.container_cpu") - 1) < 1e-12);
    ASSERT_TRUE(fabs(hm_config_double(c, "streaming.edit_interval") - 1.0) < 1e-12);
    const char *l[8];
    ASSERT_EQ(1, hm_config_list(c, "toolsets", l, 8));
    ASSERT_STR_EQ("hermes-cli", l[0]);
    ASSERT_EQ(3, hm_config_list(c, "delegation.default_toolsets", l, 8));
    ASSERT_STR_EQ("terminal", l[0]);
    ASSERT_STR_EQ("web", l[2]);
    ASSERT_EQ(2, hm_config_list(c, "reset_triggers", l, 8));
    ASSERT_STR_EQ("/new", l[0]);
    ASSERT_EQ(2, hm_config_list(c, "session_reset.notify_exclude_platforms", l, 8));
    ASSERT_EQ(0, hm_config_list(c, "command_allowlist", l, 8));
    ASSERT_EQ(0, hm_config_list(c, "terminal.docker_volumes", l, 8));
    ASSERT_EQ(1, hm_config_list(c, "platform_toolsets.telegram", l, 8));
    ASSERT_STR_EQ("hermes-telegram", l[0]);
    ASSERT_EQ(14, cJSON_GetArraySize(hm_config_node(c, "agent.personalities")));
    hm_config_unref(c);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(precedence_env_over_dotenv_over_yaml_over_default)
{
    clean_env();
    char *home = tmp_dir();
    hm_source src;
    hm_config *c = load_with(home, "terminal:\n  timeout: 200\n", NULL, NULL, HM_LOAD_SETENV);
    ASSERT_EQ(200, hm_config_env_int(c, "terminal.timeout", &src));
    ASSERT_EQ(HM_SRC_FILE, src);
    hm_config_unref(c);
    /* the environment beats .env (which does not override it at load) */
    setenv("TERMINAL_TIMEOUT", "300", 1);
    c = load_with(home, NULL, "TERMINAL_TIMEOUT=250\n", NULL, HM_LOAD_SETENV);
    ASSERT_EQ(300, hm_config_env_int(c, "terminal.timeout", &src));
    ASSERT_EQ(HM_SRC_ENV, src);
    ASSERT_STR_EQ("300", getenv("TERMINAL_TIMEOUT"));
    ASSERT_STR_EQ("300", hm_config_env_str(c, "terminal.timeout", &src));
    hm_config_unref(c);
    /* .env beats config.yaml */
    unsetenv("TERMINAL_TIMEOUT");
    c = load_with(home, NULL, NULL, NULL, HM_LOAD_SETENV);
    ASSERT_STR_EQ("250", getenv("TERMINAL_TIMEOUT"));
    ASSERT_EQ(250, hm_config_env_int(c, "terminal.timeout", &src));
    ASSERT_EQ(HM_SRC_DOTENV, src);
    ASSERT_EQ(200, hm_config_int(c, "terminal.timeout")); /* the plain lookup is the file's */
    hm_config_unref(c);
    /* without HM_LOAD_SETENV the environment is untouched, .env still counts */
    unsetenv("TERMINAL_TIMEOUT");
    c = load_with(home, NULL, NULL, NULL, 0);
    ASSERT_NULL(getenv("TERMINAL_TIMEOUT"));
    ASSERT_EQ(250, hm_config_env_int(c, "terminal.timeout", &src));
    ASSERT_EQ(HM_SRC_DOTENV, src);
    hm_config_unref(c);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(dotenv_never_overrides_the_environment_at_load)
{
    clean_env();
    char *home = tmp_dir();
    setenv("OPENROUTER_API_KEY", "from-shell-0123456789", 1);
    hm_config *c = load_with(home, NULL, "OPENROUTER_API_KEY=from-file-0123456789\nHM_T_X=3\n",
                             NULL, HM_LOAD_SETENV);
    ASSERT_STR_EQ("from-shell-0123456789", getenv("OPENROUTER_API_KEY"));
    ASSERT_STR_EQ("3", getenv("HM_T_X"));
    hm_source src;
    ASSERT_STR_EQ("from-shell-0123456789", hm_config_getenv(c, "OPENROUTER_API_KEY", &src));
    ASSERT_EQ(HM_SRC_ENV, src);
    ASSERT_STR_EQ("from-file-0123456789", hm_config_dotenv(c, "OPENROUTER_API_KEY"));
    hm_config_unref(c);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(deep_merge_keeps_sibling_defaults)
{
    clean_env();
    char *home = tmp_dir();
    hm_config_diag d;
    hm_config_diag_init(&d);
    hm_config *c = load_with(home,
                             "tts:\n  elevenlabs:\n    voice_id: mine\n"
                             "terminal:\n  backend: docker\n"
                             "agent:\n  personalities:\n    pirate2: Arr.\n",
                             NULL, &d, 0);
    ASSERT_EQ(0, d.errors);
    ASSERT_STR_EQ("mine", hm_config_str(c, "tts.elevenlabs.voice_id"));
    ASSERT_STR_EQ("eleven_multilingual_v2", hm_config_str(c, "tts.elevenlabs.model_id"));
    ASSERT_STR_EQ("edge", hm_config_str(c, "tts.provider"));
    ASSERT_STR_EQ("docker", hm_config_str(c, "terminal.backend"));
    ASSERT_EQ(180, hm_config_int(c, "terminal.timeout"));
    ASSERT_EQ(60, hm_config_int(c, "agent.max_turns"));
    /* a personalities map of the user's replaces the built-in one (as the CLI did) */
    ASSERT_EQ(1, cJSON_GetArraySize(hm_config_node(c, "agent.personalities")));
    ASSERT_STR_EQ("Arr.", hm_config_str(c, "agent.personalities.pirate2"));
    ASSERT_NULL(hm_config_str(c, "agent.personalities.helpful"));
    hm_config_unref(c);
    hm_config_diag_fini(&d);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(unknown_keys_are_errors_with_line_and_suggestion)
{
    clean_env();
    char *home = tmp_dir();
    hm_config_diag d;
    hm_config_diag_init(&d);
    hm_config *c = load_with(home,
                             "# 1\n# 2\n# 3\n# 4\n# 5\n# 6\n# 7\n# 8\n# 9\n# 10\n"
                             "terminal:\n"
                             "  bakend: docker\n" /* line 12 */
                             "backend: docker\n"  /* line 13: right key, wrong section */
                             "MATRIX_HOME_CHANNEL: '!room:hs'\n"
                             "quick_commands:\n  status: {type: exec, command: uptime}\n"
                             "platforms:\n  matrix:\n    extra: {anything: 1}\n"
                             "zzzqqq: 1\n",
                             NULL, &d, 0);
    if (d.errors != 3)
        dump_diag(&d);
    ASSERT_EQ(3, d.errors);
    ASSERT_TRUE(diag_has(&d, "config.yaml:12: unknown key 'terminal.bakend' (did you mean "
                             "'terminal.backend'?)"));
    ASSERT_TRUE(diag_has(&d, "config.yaml:13: unknown key 'backend' (did you mean "
                             "'terminal.backend'?)"));
    ASSERT_TRUE(diag_has(&d, "unknown key 'zzzqqq'"));
    ASSERT_EQ(12, d.items[0].line);
    ASSERT_STR_EQ("local", hm_config_str(c, "terminal.backend")); /* loading went on */
    hm_config_unref(c);
    hm_config_diag_fini(&d);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(wrong_types_are_errors_and_fall_back_to_defaults)
{
    clean_env();
    char *home = tmp_dir();
    hm_config_diag d;
    hm_config_diag_init(&d);
    hm_config *c = load_with(home,
                             "terminal:\n"
                             "  timeout: abc\n"
                             "  lifetime_seconds: '600'\n"
                             "  container_persistent: 'no'\n"
                             "compression:\n"
                             "  threshold: [1]\n"
                             "memory:\n"
                             "  memory_enabled: 7\n"
                             "toolsets: web\n"
                             "model: 42\n"
                             "stt:\n"
                             "  model: 5\n"
                             "terminal_x: 1\n",
                             NULL, &d, 0);
    ASSERT_TRUE(diag_has(&d, "config.yaml:2: 'terminal.timeout' should be an integer, not 'abc' "
                             "(the default, 180, is used)"));
    ASSERT_TRUE(diag_has(&d, "config.yaml:6: 'compression.threshold' should be a number, not a "
                             "list"));
    ASSERT_TRUE(diag_has(&d, "'memory.memory_enabled' should be true or false, not 7"));
    ASSERT_TRUE(diag_has(&d, "'toolsets' should be a list"));
    ASSERT_EQ(180, hm_config_int(c, "terminal.timeout"));
    ASSERT_EQ(600, hm_config_int(c, "terminal.lifetime_seconds"));
    ASSERT_FALSE(hm_config_bool(c, "terminal.container_persistent"));
    ASSERT_TRUE(fabs(hm_config_double(c, "compression.threshold") - 0.85) < 1e-12);
    ASSERT_TRUE(hm_config_bool(c, "memory.memory_enabled"));
    ASSERT_STR_EQ("42", hm_config_str(c, "model.default")); /* a name, kept as text */
    ASSERT_STR_EQ("5", hm_config_str(c, "stt.model"));
    ASSERT_EQ(5, d.errors);
    hm_config_unref(c);
    hm_config_diag_fini(&d);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(choices_are_checked_as_warnings)
{
    clean_env();
    char *home = tmp_dir();
    hm_config_diag d;
    hm_config_diag_init(&d);
    hm_config *c = load_with(
        home, "terminal:\n  backend: dokcer\ndisplay:\n  tool_progress: false\n", NULL, &d, 0);
    ASSERT_EQ(0, d.errors);
    ASSERT_EQ(1, d.warnings);
    ASSERT_TRUE(diag_has(&d, "config.yaml:2: 'terminal.backend' is 'dokcer', which is not one of"));
    ASSERT_STR_EQ("dokcer", hm_config_str(c, "terminal.backend")); /* kept: the user decides */
    ASSERT_STR_EQ("false", hm_config_str(c, "display.tool_progress"));
    hm_config_unref(c);
    hm_config_diag_fini(&d);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(bad_yaml_fails_with_file_line_and_reason)
{
    clean_env();
    char *home = tmp_dir();
    write_str(home, "config.yaml", "terminal:\n  backend: local\n   timeout: 3\n");
    hm_config_diag d;
    hm_config_diag_init(&d);
    int err = 0;
    ASSERT_NULL(hm_config_load(home, 0, &d, &err));
    ASSERT_EQ(-EBADMSG, err);
    ASSERT_EQ(1, d.errors);
    char *want = rt_xasprintf("%s/config.yaml:3:", home);
    ASSERT_STR_CONTAINS(d.items[0].msg, want);
    ASSERT_STR_CONTAINS(d.items[0].msg, "mapping values are not allowed");
    rt_free(want);
    hm_config_diag_fini(&d);
    /* a list at the top */
    write_str(home, "config.yaml", "- a\n- b\n");
    hm_config_diag_init(&d);
    ASSERT_NULL(hm_config_load(home, 0, &d, &err));
    ASSERT_EQ(-EBADMSG, err);
    ASSERT_TRUE(diag_has(&d, "config.yaml:1: the top level must be a mapping"));
    hm_config_diag_fini(&d);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(hostile_files_get_clear_errors)
{
    clean_env();
    char *home = tmp_dir();
    hm_config_diag d;
    int err = 0;
    /* 10 MB */
    size_t big = 10u << 20;
    char *junk = rt_xmalloc(big);
    for (size_t i = 0; i < big; i++)
        junk[i] = i % 64 == 63 ? '\n' : '#';
    write_file(home, "config.yaml", junk, big);
    rt_free(junk);
    hm_config_diag_init(&d);
    ASSERT_NULL(hm_config_load(home, 0, &d, &err));
    ASSERT_EQ(-E2BIG, err);
    ASSERT_TRUE(diag_has(&d, "config.yaml: file too large (10485760 bytes"));
    hm_config_diag_fini(&d);
    /* deep nesting */
    rt_buf b;
    rt_buf_init(&b, 1u << 20);
    rt_buf_append_str(&b, "a: ");
    for (int i = 0; i < 50000; i++)
        rt_buf_append_str(&b, "{b: ");
    write_file(home, "config.yaml", rt_buf_cstr(&b), b.len);
    rt_buf_fini(&b);
    hm_config_diag_init(&d);
    ASSERT_NULL(hm_config_load(home, 0, &d, &err));
    ASSERT_EQ(-EBADMSG, err);
    ASSERT_TRUE(diag_has(&d, "nesting deeper than"));
    hm_config_diag_fini(&d);
    /* invalid UTF-8 */
    write_str(home, "config.yaml", "model: x\ntimezone: \"\xc3\x28\"\n");
    hm_config_diag_init(&d);
    ASSERT_NULL(hm_config_load(home, 0, &d, &err));
    ASSERT_TRUE(diag_has(&d, "config.yaml:2:"));
    ASSERT_TRUE(diag_has(&d, "UTF-8"));
    hm_config_diag_fini(&d);
    /* random bytes: an error or a config, never a crash */
    unsigned seed = 99;
    char buf[256];
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = (char)rand_r(&seed);
        write_file(home, "config.yaml", buf, sizeof(buf));
        hm_config_diag_init(&d);
        hm_config *c = hm_config_load(home, 0, &d, &err);
        ASSERT_TRUE(c || d.errors > 0);
        hm_config_unref(c);
        hm_config_diag_fini(&d);
    }
    rm_rf(home, 0);
    rt_free(home);
}

TEST(the_originals_config_files_load_without_errors)
{
    clean_env();
    static const char *const files[] = {"original_example.yaml",  "original_example_v18.yaml",
                                        "original_full_v18.yaml", "original_full_v4.yaml",
                                        "set_input.yaml",         "set_expected.yaml"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *p = rt_xasprintf("%s/%s", HM_TEST_DATA, files[i]);
        char *text = slurp(p);
        ASSERT_NOT_NULL(text);
        char *home = tmp_dir();
        hm_config_diag d;
        hm_config_diag_init(&d);
        hm_config *c = load_with(home, text, NULL, &d, 0);
        if (d.errors || d.warnings) {
            dump_diag(&d);
            TEST_FAIL_("%s: %d errors, %d warnings", files[i], d.errors, d.warnings);
        }
        hm_config_unref(c);
        hm_config_diag_fini(&d);
        rm_rf(home, 0);
        rt_free(home);
        rt_free(text);
        rt_free(p);
    }
}

TEST(model_precedence_differs_between_cli_and_gateway)
{
    clean_env();
    char *home = tmp_dir();
    hm_source src;
    hm_config *c = load_with(home, NULL, NULL, NULL, 0);
    ASSERT_STR_EQ("anthropic/claude-opus-4.6", hm_config_model(c, HM_CTX_CLI, NULL, &src));
    ASSERT_EQ(HM_SRC_DEFAULT, src);
    setenv("HERMES_MODEL", "hm", 1);
    setenv("LLM_MODEL", "llm", 1);
    ASSERT_STR_EQ("hm", hm_config_model(c, HM_CTX_GATEWAY, NULL, &src));
    ASSERT_EQ(HM_SRC_ENV, src);
    ASSERT_STR_EQ("llm", hm_config_model(c, HM_CTX_CLI, NULL, &src));
    ASSERT_STR_EQ("arg", hm_config_model(c, HM_CTX_CLI, "arg", &src));
    ASSERT_EQ(HM_SRC_ARG, src);
    hm_config_unref(c);
    c = load_with(home, "model: from/yaml\n", NULL, NULL, 0);
    ASSERT_STR_EQ("from/yaml", hm_config_model(c, HM_CTX_GATEWAY, NULL, &src)); /* config wins */
    ASSERT_EQ(HM_SRC_FILE, src);
    ASSERT_STR_EQ("llm", hm_config_model(c, HM_CTX_CLI, NULL, &src)); /* env wins */
    unsetenv("LLM_MODEL");
    setenv("OPENAI_MODEL", "oai", 1);
    ASSERT_STR_EQ("oai", hm_config_model(c, HM_CTX_CLI, NULL, &src));
    unsetenv("OPENAI_MODEL");
    ASSERT_STR_EQ("from/yaml", hm_config_model(c, HM_CTX_CLI, NULL, &src));
    ASSERT_EQ(2, hm_config_line(c, "model.default") + 1);
    hm_config_unref(c);
    c = load_with(home, "model:\n  default: map/model\n  provider: nous\n", NULL, NULL, 0);
    ASSERT_STR_EQ("map/model", hm_config_model(c, HM_CTX_GATEWAY, NULL, &src));
    ASSERT_STR_EQ("nous", hm_config_str(c, "model.provider"));
    hm_config_unref(c);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(max_turns_precedence)
{
    clean_env();
    char *home = tmp_dir();
    hm_source src;
    hm_config *c = load_with(home, NULL, NULL, NULL, 0);
    ASSERT_EQ(60, hm_config_max_turns(c, HM_CTX_CLI, 0, &src));
    setenv("HERMES_MAX_ITERATIONS", "40", 1);
    ASSERT_EQ(40, hm_config_max_turns(c, HM_CTX_CLI, 0, &src));
    ASSERT_EQ(40, hm_config_max_turns(c, HM_CTX_GATEWAY, 0, &src));
    ASSERT_EQ(7, hm_config_max_turns(c, HM_CTX_CLI, 7, &src));
    hm_config_unref(c);
    c = load_with(home, "max_turns: 80\n", NULL, NULL, 0);
    ASSERT_EQ(80, hm_config_max_turns(c, HM_CTX_CLI, 0, &src));     /* legacy root key */
    ASSERT_EQ(40, hm_config_max_turns(c, HM_CTX_GATEWAY, 0, &src)); /* the gateway ignores it */
    hm_config_unref(c);
    c = load_with(home, "max_turns: 80\nagent:\n  max_turns: 33\n", NULL, NULL, 0);
    ASSERT_EQ(33, hm_config_max_turns(c, HM_CTX_CLI, 0, &src));
    ASSERT_EQ(33, hm_config_max_turns(c, HM_CTX_GATEWAY, 0, &src));
    ASSERT_EQ(HM_SRC_FILE, src);
    hm_config_unref(c);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(env_fallback_keys_only_count_when_config_is_silent)
{
    clean_env();
    char *home = tmp_dir();
    setenv("HERMES_TOOL_PROGRESS_MODE", "new", 1);
    hm_source src;
    hm_config *c = load_with(home, NULL, NULL, NULL, 0);
    ASSERT_STR_EQ("new", hm_config_env_str(c, "display.tool_progress", &src));
    ASSERT_EQ(HM_SRC_ENV, src);
    hm_config_unref(c);
    c = load_with(home, "display:\n  tool_progress: verbose\n", NULL, NULL, 0);
    ASSERT_STR_EQ("verbose", hm_config_env_str(c, "display.tool_progress", &src));
    ASSERT_EQ(HM_SRC_FILE, src);
    hm_config_unref(c);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(export_env_cli)
{
    clean_env();
    char *home = tmp_dir();
    setenv("TERMINAL_SSH_PORT", "2222", 1);
    hm_config *c = load_with(home, NULL, "TERMINAL_TIMEOUT=77\n", NULL, HM_LOAD_SETENV);
    ASSERT_GT(hm_config_export_env(c, HM_CTX_CLI), 0);
    ASSERT_STR_EQ("local", getenv("TERMINAL_ENV"));
    ASSERT_STR_EQ("77", getenv("TERMINAL_TIMEOUT")); /* a default never overrides .env */
    char cwd[4096];
    ASSERT_NOT_NULL(getcwd(cwd, sizeof(cwd)));
    ASSERT_STR_EQ(cwd, getenv("TERMINAL_CWD"));
    ASSERT_STR_EQ("True", getenv("CONTEXT_COMPRESSION_ENABLED"));
    ASSERT_STR_EQ("0.85", getenv("CONTEXT_COMPRESSION_THRESHOLD"));
    ASSERT_STR_EQ("google/gemini-3-flash-preview", getenv("CONTEXT_COMPRESSION_MODEL"));
    ASSERT_STR_EQ("120", getenv("BROWSER_INACTIVITY_TIMEOUT"));
    ASSERT_STR_EQ("2222", getenv("TERMINAL_SSH_PORT"));
    hm_config_unref(c);
    clean_env();
    setenv("TERMINAL_TIMEOUT", "5", 1);
    c = load_with(home,
                  "terminal:\n  backend: docker\n  timeout: 90\n  cwd: .\n"
                  "  docker_volumes: ['/a:/b', '/c:/d']\n  container_persistent: false\n"
                  "compression:\n  enabled: false\n  threshold: 0.5\n",
                  "", NULL, HM_LOAD_SETENV);
    hm_config_export_env(c, HM_CTX_CLI);
    ASSERT_STR_EQ("docker", getenv("TERMINAL_ENV"));
    ASSERT_STR_EQ("90", getenv("TERMINAL_TIMEOUT")); /* config.yaml wins over the variable */
    ASSERT_NULL(getenv("TERMINAL_CWD"));             /* "." means nothing for docker */
    ASSERT_STR_EQ("[\"/a:/b\", \"/c:/d\"]", getenv("TERMINAL_DOCKER_VOLUMES"));
    ASSERT_STR_EQ("False", getenv("TERMINAL_CONTAINER_PERSISTENT"));
    ASSERT_STR_EQ("False", getenv("CONTEXT_COMPRESSION_ENABLED"));
    ASSERT_STR_EQ("0.5", getenv("CONTEXT_COMPRESSION_THRESHOLD"));
    hm_config_unref(c);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(export_env_gateway)
{
    clean_env();
    char *home = tmp_dir();
    setenv("MATRIX_AUTO_THREAD", "true", 1);
    setenv("HERMES_MAX_ITERATIONS", "99", 1);
    setenv("HERMES_AGENT_TIMEOUT", "5", 1);
    setenv("MESSAGING_CWD", "/srv/work", 1);
    hm_config *c = load_with(home,
                             "MATRIX_HOME_CHANNEL: '!home:hs'\n"
                             "model: some/model\n"
                             "terminal:\n  timeout: 45\n  cwd: auto\n"
                             "agent:\n  max_turns: 33\n  gateway_timeout: 100\n"
                             "  gateway_notify_interval: 30\n"
                             "matrix:\n  require_mention: false\n"
                             "  free_response_rooms: ['!a:hs', '!b:hs']\n  auto_thread: false\n"
                             "mattermost:\n  require_mention: no\n"
                             "timezone: Europe/Berlin\n"
                             "security:\n  redact_secrets: false\n"
                             "gateway:\n  proxy_url: http://127.0.0.1:8642\n",
                             NULL, NULL, HM_LOAD_SETENV);
    ASSERT_GT(hm_config_export_env(c, HM_CTX_GATEWAY), 0);
    ASSERT_STR_EQ("!home:hs", getenv("MATRIX_HOME_CHANNEL"));
    ASSERT_NULL(getenv("model")); /* lower-case top-level keys are not variables */
    ASSERT_STR_EQ("45", getenv("TERMINAL_TIMEOUT"));
    ASSERT_STR_EQ("33", getenv("HERMES_MAX_ITERATIONS")); /* config wins */
    ASSERT_STR_EQ("5", getenv("HERMES_AGENT_TIMEOUT"));   /* env wins */
    ASSERT_STR_EQ("30", getenv("HERMES_AGENT_NOTIFY_INTERVAL"));
    ASSERT_STR_EQ("false", getenv("MATRIX_REQUIRE_MENTION"));
    ASSERT_STR_EQ("!a:hs,!b:hs", getenv("MATRIX_FREE_RESPONSE_ROOMS"));
    ASSERT_STR_EQ("true", getenv("MATRIX_AUTO_THREAD")); /* only if unset */
    ASSERT_NULL(getenv("MATRIX_DM_MENTION_THREADS"));
    ASSERT_STR_EQ("false", getenv("MATTERMOST_REQUIRE_MENTION"));
    ASSERT_STR_EQ("Europe/Berlin", getenv("HERMES_TIMEZONE"));
    ASSERT_STR_EQ("false", getenv("HERMES_REDACT_SECRETS"));
    ASSERT_STR_EQ("http://127.0.0.1:8642", getenv("GATEWAY_PROXY_URL"));
    ASSERT_STR_EQ("1", getenv("HERMES_QUIET"));
    ASSERT_STR_EQ("1", getenv("HERMES_EXEC_ASK"));
    ASSERT_STR_EQ("/srv/work", getenv("TERMINAL_CWD"));
    ASSERT_NULL(getenv("CONTEXT_COMPRESSION_ENABLED")); /* not in the file */
    hm_config_unref(c);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(check_flags_placeholders_and_secrets_in_yaml)
{
    clean_env();
    char *home = tmp_dir();
    hm_config_diag d;
    hm_config_diag_init(&d);
    hm_config *c =
        load_with(home,
                  "model:\n  api_key: sk-real-looking-0123456789abcdef\n"
                  "platforms:\n  matrix:\n    token: changeme\n"
                  "OPENAI_API_KEY: sk-quirk-0123456789abcdefghij\n",
                  "MATRIX_ACCESS_TOKEN=***\nOPENROUTER_API_KEY=sk-or-v1-good-0123456789\n"
                  "MY_SERVICE_TOKEN=dummy\nthis line is broken\n",
                  &d, 0);
    ASSERT_EQ(0, d.errors);
    int added = hm_config_check(c, &d);
    ASSERT_EQ(3, added);
    ASSERT_TRUE(diag_has(&d, "MATRIX_ACCESS_TOKEN is set to a placeholder value"));
    ASSERT_TRUE(diag_has(&d, "MY_SERVICE_TOKEN is set to a placeholder value"));
    ASSERT_TRUE(diag_has(&d, "'platforms.matrix.token' is set to a placeholder value"));
    ASSERT_TRUE(diag_has(&d, "'model.api_key' holds a secret"));
    ASSERT_TRUE(diag_has(&d, "'OPENAI_API_KEY' holds a secret"));
    ASSERT_TRUE(diag_has(&d, ".env:4: 1 line(s) could not be read"));
    for (size_t i = 0; i < d.n; i++) { /* no message shows a secret */
        ASSERT_FALSE(strstr(d.items[i].msg, "0123456789abcdef"));
        ASSERT_FALSE(strstr(d.items[i].msg, "good-0123456789"));
    }
    hm_config_unref(c);
    hm_config_diag_fini(&d);
    rm_rf(home, 0);
    rt_free(home);
}

/* Many threads read one config while its owner drops its reference. */
static void *reader(void *arg)
{
    hm_config *c = arg;
    for (int i = 0; i < 2000; i++) {
        RT_VERIFY(hm_config_int(c, "terminal.timeout") == 180);
        RT_VERIFY(strcmp(hm_config_str(c, "model.default"), HM_DEFAULT_MODEL) == 0);
        RT_VERIFY(hm_config_bool(c, "compression.enabled"));
    }
    hm_config_unref(c);
    return NULL;
}

TEST(shared_between_threads_by_reference)
{
    clean_env();
    char *home = tmp_dir();
    hm_config *c = load_with(home, NULL, NULL, NULL, 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(0, pthread_create(&t[i], NULL, reader, hm_config_ref(c)));
    hm_config_unref(c); /* the readers keep it alive */
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(0, pthread_join(t[i], NULL));
    hm_config_unref(NULL);
    rm_rf(home, 0);
    rt_free(home);
}

TEST(home_and_layout)
{
    setenv("HERMES_HOME", "/x/custom", 1);
    char *h = hm_config_home();
    ASSERT_STR_EQ("/x/custom", h);
    rt_free(h);
    unsetenv("HERMES_HOME");
    setenv("HOME", "/home/someone", 1);
    h = hm_config_home();
    ASSERT_STR_EQ("/home/someone/.hermes", h);
    rt_free(h);
    char *dir = tmp_dir();
    char *home = rt_xasprintf("%s/a/b/.hermes", dir);
    ASSERT_OK(hm_config_ensure_home(home));
    static const char *const sub[] = {"",          "/cron",   "/sessions", "/logs",
                                      "/memories", "/skills", "/platforms"};
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        char *p = rt_xasprintf("%s%s", home, sub[i]);
        struct stat st;
        ASSERT_OK(stat(p, &st));
        ASSERT_TRUE(S_ISDIR(st.st_mode));
        ASSERT_EQ(0700, st.st_mode & 0777);
        rt_free(p);
    }
    ASSERT_OK(hm_config_ensure_home(home)); /* again: nothing to do */
    rm_rf(dir, 0);
    rt_free(home);
    rt_free(dir);
}

TEST(names_secrets_placeholders)
{
    ASSERT_TRUE(hm_is_secret_name("OPENROUTER_API_KEY"));
    ASSERT_TRUE(hm_is_secret_name("api_key"));
    ASSERT_TRUE(hm_is_secret_name("MATRIX_ACCESS_TOKEN"));
    ASSERT_TRUE(hm_is_secret_name("SUDO_PASSWORD"));
    ASSERT_TRUE(hm_is_secret_name("FAL_KEY"));
    ASSERT_TRUE(hm_is_secret_name("token"));
    ASSERT_FALSE(hm_is_secret_name("TERMINAL_SSH_KEY"));
    ASSERT_FALSE(hm_is_secret_name("max_tokens"));
    ASSERT_FALSE(hm_is_secret_name("record_key"));
    ASSERT_FALSE(hm_is_secret_name("MATRIX_HOMESERVER"));
    ASSERT_TRUE(hm_is_placeholder_secret("changeme"));
    ASSERT_TRUE(hm_is_placeholder_secret(" YOUR_API_KEY "));
    ASSERT_TRUE(hm_is_placeholder_secret("abc"));
    ASSERT_TRUE(hm_is_placeholder_secret("***"));
    ASSERT_FALSE(hm_is_placeholder_secret("sk-or-v1-0123"));
    char sug[64];
    ASSERT_EQ(0, hm_env_name_check("OPENROUTER_API_KEY", sug, sizeof(sug)));
    ASSERT_EQ(0, hm_env_name_check("TELEGRAM_HOME_CHANNEL_NAME", sug, sizeof(sug)));
    ASSERT_EQ(0, hm_env_name_check("SIGNAL_ACCOUNT", sug, sizeof(sug)));
    ASSERT_EQ(-ENOENT, hm_env_name_check("MATRIX_ACCES_TOKEN", sug, sizeof(sug)));
    ASSERT_STR_EQ("MATRIX_ACCESS_TOKEN", sug);
    ASSERT_EQ(-ENOENT, hm_env_name_check("WHATEVER_THING", sug, sizeof(sug)));
    ASSERT_STR_EQ("", sug);
    ASSERT_EQ(-EPERM, hm_env_name_check("LD_PRELOAD", sug, sizeof(sug)));
    ASSERT_EQ(-EPERM, hm_env_name_check("HERMES_HOME", sug, sizeof(sug)));
    ASSERT_EQ(-EPERM, hm_env_name_check("HERMES_EXEC_ASK", sug, sizeof(sug)));
    char buf[64];
    ASSERT_STR_EQ("terminal.backend", hm_schema_suggest("terminal.bakend", buf, sizeof(buf)));
    ASSERT_STR_EQ("platforms.matrix.token",
                  hm_schema_suggest("platforms.matrix.tokn", buf, sizeof(buf)));
    ASSERT_NULL(hm_schema_suggest("completely.unrelated.thing", buf, sizeof(buf)));
    hm_fmt_double(0.85, buf, sizeof(buf));
    ASSERT_STR_EQ("0.85", buf);
    hm_fmt_double(1, buf, sizeof(buf));
    ASSERT_STR_EQ("1.0", buf);
    hm_fmt_double(1e-5, buf, sizeof(buf));
    ASSERT_STR_EQ("1e-05", buf);
}

/* docs/configuration.md names every key and every variable of the schema. */
TEST(docs_cover_the_schema)
{
    char *doc = slurp(HM_DOCS);
    ASSERT_NOT_NULL(doc);
    for (size_t i = 0; i < hm_schema_len; i++) {
        if (strncmp(hm_schema[i].path, "agent.personalities.", 20) == 0)
            continue;
        char *k = rt_xasprintf("`%s`", hm_schema[i].path);
        if (!strstr(doc, k))
            TEST_FAIL_("docs/configuration.md does not mention %s", k);
        rt_free(k);
    }
    for (size_t i = 0; i < hm_env_index_len; i++) {
        char *k = rt_xasprintf("`%s`", hm_env_index[i].name);
        if (!strstr(doc, k))
            TEST_FAIL_("docs/configuration.md does not mention %s", k);
        rt_free(k);
    }
    rt_free(doc);
}

TEST(reload_sees_a_changed_dotenv_without_touching_the_environment)
{
    clean_env();
    char *home = tmp_dir();
    hm_config *c =
        load_with(home, NULL, "MATRIX_ACCESS_TOKEN=syt_first_0123456789\n", NULL, HM_LOAD_SETENV);
    ASSERT_STR_EQ("syt_first_0123456789", getenv("MATRIX_ACCESS_TOKEN"));
    hm_config_unref(c);
    setenv("GITHUB_TOKEN", "ghp_from_the_shell_0123", 1);
    c = load_with(home, NULL,
                  "MATRIX_ACCESS_TOKEN=syt_second_0123456789\nGITHUB_TOKEN=ghp_file_0123456789\n",
                  NULL, 0);
    hm_source src;
    ASSERT_STR_EQ("syt_second_0123456789", hm_config_getenv(c, "MATRIX_ACCESS_TOKEN", &src));
    ASSERT_EQ(HM_SRC_DOTENV, src);
    ASSERT_STR_EQ("syt_first_0123456789", getenv("MATRIX_ACCESS_TOKEN")); /* untouched */
    /* a variable of the real environment still wins over .env */
    ASSERT_STR_EQ("ghp_from_the_shell_0123", hm_config_getenv(c, "GITHUB_TOKEN", &src));
    ASSERT_EQ(HM_SRC_ENV, src);
    hm_config_unref(c);
    rm_rf(home, 0);
    rt_free(home);
}

static void capture(const char *line, size_t len, void *arg)
{
    rt_buf *b = arg;
    (void)rt_buf_append(b, line, len);
    (void)rt_buf_append_str(b, "\n");
}

TEST(load_logs_problems_when_asked)
{
    clean_env();
    char *home = tmp_dir();
    rt_buf logs;
    rt_buf_init(&logs, 1u << 16);
    rt_log_capture(capture, &logs);
    hm_config *c = load_with(home, "terminal:\n  bakend: docker\n", NULL, NULL, HM_LOAD_LOG);
    rt_log_capture(NULL, NULL);
    ASSERT_STR_CONTAINS(rt_buf_cstr(&logs), "config.yaml:2: unknown key 'terminal.bakend'");
    ASSERT_STR_CONTAINS(rt_buf_cstr(&logs), "ERROR");
    hm_config_unref(c);
    rt_buf_fini(&logs);
    rm_rf(home, 0);
    rt_free(home);
}
