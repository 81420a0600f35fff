/*
 * hm_schema — every config.yaml key and environment variable the original Hermes knows.
 *
 * Defaults are those of the baseline (agent-core §9.3; where the example file, DEFAULT_CONFIG
 * and the CLI's built-ins disagree, the value a fresh install ends up with: the example file
 * the installer copies). Keys that later versions of Hermes write into config.yaml are listed
 * with HM_K_COMPAT, so a config.yaml written by a newer Hermes loads without unknown-key
 * errors; `hermes config` hides them unless they are set.
 */
#include "hm_config.h"

#include "rt_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define K(path, type, def, env, flags, choices, doc)                                               \
    {                                                                                              \
        path, type, def, env, flags, choices, doc                                                  \
    }
#define MAP  HM_T_MAP
#define FREE HM_T_FREE
#define STR  HM_T_STR
#define INT  HM_T_INT
#define FLT  HM_T_FLOAT
#define BOOL HM_T_BOOL
#define LIST HM_T_LIST
#define SORL HM_T_STR_OR_LIST
#define ANY  HM_T_ANY
#define SEC  HM_K_SECRET
#define CPT  HM_K_COMPAT

#define NODEJS_IMAGE "nikolaik/python-nodejs:python3.11-nodejs20"

/* The common keys of a per-platform section (gateway §1.3: copied into platforms.<p>.extra). */
#define PLATFORM_SECTION(p, fl)                                                                    \
    K(p, MAP, 0, 0, fl, 0, "settings of this platform's adapter"),                                 \
        K(p ".unauthorized_dm_behavior", STR, 0, 0, fl, "pair|ignore",                             \
          "override of unauthorized_dm_behavior for this platform"),                               \
        K(p ".reply_prefix", STR, 0, 0, fl, 0, "text put before every reply"),                     \
        K(p ".mention_patterns", LIST, 0, 0, fl, 0, "extra patterns that count as a mention"),     \
        K(p ".channel_prompts", FREE, 0, 0, fl, 0, "per-channel ephemeral system prompts")

const hm_key hm_schema[] = {
    K("_config_version", INT, "4", 0, 0, 0, "config schema version (used by migrations)"),

    /* model and providers (agent-core §2) */
    K("model", HM_T_MODEL, 0, 0, 0, 0, "the model: a name, or a map {default, provider, base_url}"),
    K("model.default", STR, HM_DEFAULT_MODEL, 0, 0, 0,
      "default model (precedence differs between CLI and gateway: see below)"),
    K("model.provider", STR, "auto", "HERMES_INFERENCE_PROVIDER", 0,
      "auto|openrouter|custom|nous|openai-codex", "inference provider"),
    K("model.base_url", STR, "https://openrouter.ai/api/v1", 0, 0, 0,
      "OpenAI-compatible endpoint, used with provider auto when OPENAI_BASE_URL is unset"),
    K("model.api_key", STR, 0, 0, SEC, 0, "API key for model.base_url (better kept in .env)"),
    K("model.context_length", INT, 0, 0, 0, 0, "context window in tokens (detected if unset)"),
    K("provider_routing", FREE, 0, 0, 0, 0,
      "OpenRouter provider routing: sort, only, ignore, order, require_parameters, "
      "data_collection"),
    K("providers", FREE, 0, 0, CPT, 0, "named provider definitions (newer Hermes)"),
    K("fallback_providers", ANY, 0, 0, CPT, 0, "provider fallback chain (newer Hermes)"),
    K("credential_pool_strategies", FREE, 0, 0, CPT, 0, "credential pools (newer Hermes)"),
    K("smart_model_routing", FREE, 0, 0, CPT, 0, "cheap-model routing (newer Hermes)"),
    K("auxiliary", FREE, 0, 0, CPT, 0, "side-task models (newer Hermes)"),
    K("bedrock", FREE, 0, 0, CPT, 0, "AWS Bedrock settings (newer Hermes)"),

    /* toolsets */
    K("toolsets", LIST, "[hermes-cli]", 0, 0, 0, "toolsets enabled in the CLI"),
    K("platform_toolsets", MAP, 0, 0, 0, 0, "toolsets per platform"),
    K("platform_toolsets.cli", LIST, "[hermes-cli]", 0, 0, 0, "toolsets of the CLI"),
    K("platform_toolsets.telegram", LIST, "[hermes-telegram]", 0, 0, 0, "toolsets on Telegram"),
    K("platform_toolsets.discord", LIST, "[hermes-discord]", 0, 0, 0, "toolsets on Discord"),
    K("platform_toolsets.whatsapp", LIST, "[hermes-whatsapp]", 0, 0, 0, "toolsets on WhatsApp"),
    K("platform_toolsets.slack", LIST, "[hermes-slack]", 0, 0, 0, "toolsets on Slack"),
    K("platform_toolsets.*", LIST, 0, 0, 0, 0, "toolsets on another platform"),

    /* agent loop */
    K("max_turns", INT, "100", 0, 0, 0, "legacy: used as agent.max_turns by the CLI"),
    K("prefill_messages_file", STR, "", "HERMES_PREFILL_MESSAGES_FILE", 0, 0,
      "JSON list of {role, content} messages put before every conversation"),
    K("agent", MAP, 0, 0, 0, 0, "agent behaviour"),
    K("agent.max_turns", INT, "60", "HERMES_MAX_ITERATIONS", 0, 0,
      "maximum tool-calling iterations per turn"),
    K("agent.verbose", BOOL, "false", 0, 0, 0, "verbose logging"),
    K("agent.system_prompt", STR, "", "HERMES_EPHEMERAL_SYSTEM_PROMPT", 0, 0,
      "ephemeral system prompt (never stored in sessions)"),
    K("agent.prefill_messages_file", STR, "", 0, 0, 0, "CLI: prefill messages file"),
    K("agent.reasoning_effort", STR, "xhigh", "HERMES_REASONING_EFFORT", 0,
      "xhigh|high|medium|low|minimal|none|", "reasoning effort requested from the model"),
    K("agent.personalities", FREE, 0, 0, HM_K_REPLACE, 0,
      "named system prompts for /personality (a map of yours replaces the built-in one)"),
    K("agent.personalities.helpful", STR, "You are a helpful, friendly AI assistant.", 0, 0, 0,
      "built-in personality"),
    K("agent.personalities.concise", STR,
      "You are a concise assistant. Keep responses brief and to the point.", 0, 0, 0,
      "built-in personality"),
    K("agent.personalities.technical", STR,
      "You are a technical expert. Provide detailed, accurate technical information.", 0, 0, 0,
      "built-in personality"),
    K("agent.personalities.creative", STR,
      "You are a creative assistant. Think outside the box and offer innovative solutions.", 0, 0,
      0, "built-in personality"),
    K("agent.personalities.teacher", STR,
      "You are a patient teacher. Explain concepts clearly with examples.", 0, 0, 0,
      "built-in personality"),
    K("agent.personalities.kawaii", STR,
      "You are a kawaii assistant! Use cute expressions like (◕‿◕), ★, ♪, and ~! Add sparkles "
      "and be super enthusiastic about everything! Every response should feel warm and adorable "
      "desu~! ヽ(>∀<☆)ノ",
      0, 0, 0, "built-in personality"),
    K("agent.personalities.catgirl", STR,
      "You are Neko-chan, an anime catgirl AI assistant, nya~! Add 'nya' and cat-like "
      "expressions to your speech. Use kaomoji like (=^･ω･^=) and ฅ^•ﻌ•^ฅ. Be playful and "
      "curious like a cat, nya~!",
      0, 0, 0, "built-in personality"),
    K("agent.personalities.pirate", STR,
      "Arrr! Ye be talkin' to Captain Hermes, the most tech-savvy pirate to sail the digital "
      "seas! Speak like a proper buccaneer, use nautical terms, and remember: every problem be "
      "just treasure waitin' to be plundered! Yo ho ho!",
      0, 0, 0, "built-in personality"),
    K("agent.personalities.shakespeare", STR,
      "Hark! Thou speakest with an assistant most versed in the bardic arts. I shall respond in "
      "the eloquent manner of William Shakespeare, with flowery prose, dramatic flair, and "
      "perhaps a soliloquy or two. What light through yonder terminal breaks?",
      0, 0, 0, "built-in personality"),
    K("agent.personalities.surfer", STR,
      "Duuude! You're chatting with the chillest AI on the web, bro! Everything's gonna be "
      "totally rad. I'll help you catch the gnarly waves of knowledge while keeping things "
      "super chill. Cowabunga! 🤙",
      0, 0, 0, "built-in personality"),
    K("agent.personalities.noir", STR,
      "The rain hammered against the terminal like regrets on a guilty conscience. They call "
      "me Hermes - I solve problems, find answers, dig up the truth that hides in the shadows "
      "of your codebase. In this city of silicon and secrets, everyone's got something to "
      "hide. What's your story, pal?",
      0, 0, 0, "built-in personality"),
    K("agent.personalities.uwu", STR,
      "hewwo! i'm your fwiendwy assistant uwu~ i wiww twy my best to hewp you! *nuzzles your "
      "code* OwO what's this? wet me take a wook! i pwomise to be vewy hewpful >w<",
      0, 0, 0, "built-in personality"),
    K("agent.personalities.philosopher", STR,
      "Greetings, seeker of wisdom. I am an assistant who contemplates the deeper meaning "
      "behind every query. Let us examine not just the 'how' but the 'why' of your questions. "
      "Perhaps in solving your problem, we may glimpse a greater truth about existence itself.",
      0, 0, 0, "built-in personality"),
    K("agent.personalities.hype", STR,
      "YOOO LET'S GOOOO!!! 🔥🔥🔥 I am SO PUMPED to help you today! Every question is AMAZING "
      "and we're gonna CRUSH IT together! This is gonna be LEGENDARY! ARE YOU READY?! LET'S DO "
      "THIS! 💪😤🚀",
      0, 0, 0, "built-in personality"),
    K("agent.gateway_timeout", INT, "1800", "HERMES_AGENT_TIMEOUT", 0, 0,
      "gateway: seconds of agent inactivity before the turn is stopped (0 = never)"),
    K("agent.gateway_timeout_warning", INT, "900", "HERMES_AGENT_TIMEOUT_WARNING", 0, 0,
      "gateway: seconds of inactivity before a warning (0 = none)"),
    K("agent.gateway_notify_interval", INT, "600", "HERMES_AGENT_NOTIFY_INTERVAL", 0, 0,
      "gateway: seconds between \"still working\" notices (0 = none)"),
    K("agent.restart_drain_timeout", INT, "60", "HERMES_RESTART_DRAIN_TIMEOUT", 0, 0,
      "gateway: seconds running turns get to finish on stop/restart"),
    K("agent.persist_retry_max_s", INT, "3600", 0, 0, 0,
      "seconds a message the disk has no room for waits for space before it is refused "
      "(0 = refused at once; Hermes in C)"),
    K("agent.api_timeout", INT, "900", 0, 0, 0,
      "seconds one LLM request may take before it is retried or fails (the original's fixed "
      "client timeout; Hermes in C)"),
    K("agent.api_max_retries", INT, "6", 0, CPT, 0,
      "attempts after a failed LLM request before giving up (newer Hermes)"),
    K("agent.api_max_inflight", INT, "64", "HERMES_API_MAX_INFLIGHT", 0, 0,
      "LLM requests on the wire at once per provider; more wait in its queue, holding no "
      "worker (Hermes in C)"),
    K("agent.api_rate_limit", FLT, "0", "HERMES_API_RATE_LIMIT", 0, 0,
      "LLM requests per second per provider, a token bucket (0 = unlimited; Hermes in C)"),
    K("agent.service_tier", STR, "", 0, CPT, 0, "provider service tier (newer Hermes)"),
    K("agent.tool_use_enforcement", ANY, "auto", 0, CPT, 0, "tool-use guidance (newer Hermes)"),
    K("personalities", FREE, 0, 0, CPT, 0, "custom personalities (newer Hermes)"),

    /* terminal (agent-core §4; mirrored into TERMINAL_* variables) */
    K("terminal", MAP, 0, 0, 0, 0, "terminal tool and its execution backend"),
    K("terminal.backend", STR, "local", "TERMINAL_ENV", 0,
      "local|docker|ssh|singularity|modal|daytona", "where commands run"),
    K("terminal.env_type", STR, 0, 0, 0, "local|docker|ssh|singularity|modal|daytona",
      "legacy name of terminal.backend"),
    K("terminal.cwd", STR, ".", "TERMINAL_CWD", 0, 0,
      "working directory (\".\" = where hermes runs; the gateway uses MESSAGING_CWD or ~)"),
    K("terminal.timeout", INT, "180", "TERMINAL_TIMEOUT", 0, 0, "command timeout in seconds"),
    K("terminal.lifetime_seconds", INT, "300", "TERMINAL_LIFETIME_SECONDS", 0, 0,
      "idle sandbox teardown after this many seconds"),
    K("terminal.docker_image", STR, NODEJS_IMAGE, "TERMINAL_DOCKER_IMAGE", 0, 0, "Docker image"),
    K("terminal.singularity_image", STR, "docker://" NODEJS_IMAGE, "TERMINAL_SINGULARITY_IMAGE", 0,
      0, "Singularity/Apptainer image or .sif path"),
    K("terminal.modal_image", STR, NODEJS_IMAGE, "TERMINAL_MODAL_IMAGE", 0, 0, "Modal image"),
    K("terminal.daytona_image", STR, NODEJS_IMAGE, "TERMINAL_DAYTONA_IMAGE", CPT, 0,
      "Daytona image (newer Hermes)"),
    K("terminal.ssh_host", STR, 0, "TERMINAL_SSH_HOST", 0, 0, "SSH backend: host"),
    K("terminal.ssh_user", STR, 0, "TERMINAL_SSH_USER", 0, 0, "SSH backend: user"),
    K("terminal.ssh_port", INT, 0, "TERMINAL_SSH_PORT", 0, 0, "SSH backend: port (22 if unset)"),
    K("terminal.ssh_key", STR, 0, "TERMINAL_SSH_KEY", 0, 0,
      "SSH backend: private key file (ssh-agent if unset)"),
    K("terminal.container_cpu", FLT, "1", "TERMINAL_CONTAINER_CPU", 0, 0,
      "container backends: CPU cores"),
    K("terminal.container_memory", INT, "5120", "TERMINAL_CONTAINER_MEMORY", 0, 0,
      "container backends: memory in MB"),
    K("terminal.container_disk", INT, "51200", "TERMINAL_CONTAINER_DISK", 0, 0,
      "container backends: disk in MB"),
    K("terminal.container_persistent", BOOL, "true", "TERMINAL_CONTAINER_PERSISTENT", 0, 0,
      "container backends: keep the filesystem across sessions"),
    K("terminal.docker_volumes", LIST, "[]", "TERMINAL_DOCKER_VOLUMES", 0, 0,
      "Docker: extra \"host:container\" mounts"),
    K("terminal.sandbox_dir", STR, 0, "TERMINAL_SANDBOX_DIR", 0, 0,
      "host directory for sandboxes ($HERMES_HOME/sandboxes if unset)"),
    K("terminal.sudo_password", STR, 0, "SUDO_PASSWORD", SEC, 0,
      "password piped to sudo -S (kept in .env as SUDO_PASSWORD)"),
    K("terminal.persistent_shell", BOOL, "true", "TERMINAL_PERSISTENT_SHELL", CPT, 0,
      "keep one shell per session (newer Hermes)"),
    K("terminal.docker_forward_env", LIST, "[]", "TERMINAL_DOCKER_FORWARD_ENV", CPT, 0,
      "variables forwarded into Docker (newer Hermes)"),
    K("terminal.docker_env", FREE, 0, 0, CPT, 0, "variables set in Docker (newer Hermes)"),
    K("terminal.env_passthrough", LIST, "[]", 0, CPT, 0,
      "variables passed to sandboxes (newer Hermes)"),
    K("terminal.docker_mount_cwd_to_workspace", BOOL, "false", 0, CPT, 0,
      "mount the cwd at /workspace (newer Hermes)"),
    K("terminal.modal_mode", STR, "auto", 0, CPT, 0, "Modal mode (newer Hermes)"),

    K("browser", MAP, 0, 0, 0, 0, "browser tools"),
    K("browser.inactivity_timeout", INT, "120", "BROWSER_INACTIVITY_TIMEOUT", 0, 0,
      "seconds before an idle browser session is closed"),
    K("browser.command_timeout", INT, "30", 0, CPT, 0, "browser command timeout (newer Hermes)"),
    K("browser.record_sessions", BOOL, "false", 0, CPT, 0, "record sessions (newer Hermes)"),
    K("browser.allow_private_urls", BOOL, "false", 0, CPT, 0, "allow private IPs (newer Hermes)"),
    K("browser.camofox", FREE, 0, 0, CPT, 0, "Camofox settings (newer Hermes)"),

    K("compression", MAP, 0, 0, 0, 0, "context compression"),
    K("compression.enabled", BOOL, "true", "CONTEXT_COMPRESSION_ENABLED", 0, 0,
      "summarise the middle of long conversations"),
    K("compression.threshold", FLT, "0.85", "CONTEXT_COMPRESSION_THRESHOLD", 0, 0,
      "compress at this fraction of the context window"),
    K("compression.summary_model", STR, "google/gemini-3-flash-preview",
      "CONTEXT_COMPRESSION_MODEL", 0, 0, "model that writes the summaries"),
    K("compression.target_ratio", FLT, "0.2", 0, CPT, 0, "tail kept (newer Hermes)"),
    K("compression.protect_last_n", INT, "20", 0, CPT, 0, "messages kept (newer Hermes)"),
    K("context", FREE, 0, 0, CPT, 0, "context engine (newer Hermes)"),

    K("memory", MAP, 0, 0, 0, 0, "persistent memory (MEMORY.md, USER.md)"),
    K("memory.memory_enabled", BOOL, "true", 0, 0, 0, "the agent's notes (MEMORY.md)"),
    K("memory.user_profile_enabled", BOOL, "true", 0, 0, 0, "the user profile (USER.md)"),
    K("memory.memory_char_limit", INT, "2200", 0, 0, 0, "MEMORY.md size limit in characters"),
    K("memory.user_char_limit", INT, "1375", 0, 0, 0, "USER.md size limit in characters"),
    K("memory.nudge_interval", INT, "10", 0, 0, 0,
      "remind the agent to save memories every N user turns (0 = never)"),
    K("memory.flush_min_turns", INT, "6", 0, 0, 0,
      "user turns needed before memories are flushed on exit/reset (0 = never)"),
    K("memory.provider", STR, "", 0, CPT, 0, "external memory provider (newer Hermes)"),

    K("skills", MAP, 0, 0, 0, 0, "skills"),
    K("skills.creation_nudge_interval", INT, "15", 0, 0, 0,
      "remind the agent to save a skill every N tool iterations (0 = never)"),
    K("skills.external_dirs", LIST, "[]", 0, CPT, 0, "read-only skill directories (newer Hermes)"),

    /* gateway (gateway.md §1.3, §2) */
    K("session_reset", MAP, 0, 0, 0, 0, "gateway: when chat sessions start afresh"),
    K("session_reset.mode", STR, "both", 0, 0, "both|idle|daily|none", "reset policy"),
    K("session_reset.idle_minutes", INT, "1440", "SESSION_IDLE_MINUTES", 0, 0,
      "reset after this many idle minutes"),
    K("session_reset.at_hour", INT, "4", "SESSION_RESET_HOUR", 0, 0,
      "daily reset at this local hour (0-23)"),
    K("session_reset.notify", BOOL, "true", 0, 0, 0, "tell the user when a session was reset"),
    K("session_reset.notify_exclude_platforms", LIST, "[api_server, webhook]", 0, 0, 0,
      "platforms that are not told"),
    K("quick_commands", FREE, 0, 0, 0, 0,
      "gateway: slash commands that run a shell command ({name: {type: exec, command: …}})"),
    K("group_sessions_per_user", BOOL, "true", 0, 0, 0,
      "gateway: one session per user in rooms and channels"),
    K("thread_sessions_per_user", BOOL, "false", 0, 0, 0,
      "gateway: one session per user inside threads too"),
    K("reset_triggers", LIST, "[/new, /reset]", 0, 0, 0, "gateway: commands that reset a session"),
    K("always_log_local", BOOL, "true", 0, 0, 0, "gateway: also keep local transcripts"),
    K("unauthorized_dm_behavior", STR, "pair", 0, 0, "pair|ignore",
      "gateway: answer unknown users' DMs with a pairing code, or ignore them"),
    K("streaming", MAP, 0, 0, 0, 0, "gateway: token streaming into chats"),
    K("streaming.enabled", BOOL, "false", 0, 0, 0, "stream replies by editing a message"),
    K("streaming.transport", STR, "edit", 0, 0, "edit|off", "how replies are streamed"),
    K("streaming.edit_interval", FLT, "1.0", 0, 0, 0, "seconds between edits"),
    K("streaming.buffer_threshold", INT, "40", 0, 0, 0, "characters that force an edit"),
    K("streaming.cursor", STR, " ▉", 0, 0, 0, "cursor shown while streaming"),
    K("platforms", MAP, 0, 0, 0, 0, "gateway: per-platform settings (platforms.<name>.…)"),
    K("platforms.*", MAP, 0, 0, 0, 0, "one platform"),
    K("platforms.*.enabled", BOOL, "false", 0, 0, 0, "enable this platform"),
    K("platforms.*.token", STR, 0, 0, SEC, 0, "bot token (better kept in .env)"),
    K("platforms.*.api_key", STR, 0, 0, SEC, 0, "API key (better kept in .env)"),
    K("platforms.*.home_channel", ANY, 0, 0, 0, 0, "home channel {platform, chat_id, name}"),
    K("platforms.*.reply_to_mode", STR, "first", 0, 0, "off|first|all", "reply threading"),
    K("platforms.*.extra", FREE, 0, 0, 0, 0, "adapter-specific settings"),
    PLATFORM_SECTION("matrix", 0),
    K("matrix.require_mention", BOOL, "true", "MATRIX_REQUIRE_MENTION", 0, 0,
      "answer in rooms only when mentioned"),
    K("matrix.free_response_rooms", SORL, "[]", "MATRIX_FREE_RESPONSE_ROOMS", 0, 0,
      "rooms answered without a mention"),
    K("matrix.auto_thread", BOOL, "true", "MATRIX_AUTO_THREAD", 0, 0,
      "reply in a thread rooted at the user's message"),
    K("matrix.dm_mention_threads", BOOL, "false", "MATRIX_DM_MENTION_THREADS", 0, 0,
      "in DMs, start a thread when the bot is mentioned"),
    K("matrix.free_response_channels", SORL, 0, 0, 0, 0, "alias of free_response_rooms"),
    K("matrix.reactions", BOOL, "true", "MATRIX_REACTIONS", 0, 0,
      "👀/✅/❌ processing reactions (a newer key; the variable is the original's)"),
    K("matrix.allowed_rooms", SORL, 0, 0, CPT, 0, "room whitelist (newer Hermes)"),
    K("matrix.dm_auto_thread", BOOL, 0, 0, CPT, 0, "threads in DMs (newer Hermes)"),
    K("matrix.thread_require_mention", BOOL, 0, 0, CPT, 0,
      "mention gating in threads (newer Hermes)"),
    PLATFORM_SECTION("mattermost", 0),
    K("mattermost.require_mention", BOOL, "true", "MATTERMOST_REQUIRE_MENTION", 0, 0,
      "answer in channels only when mentioned"),
    K("mattermost.free_response_channels", SORL, "[]", "MATTERMOST_FREE_RESPONSE_CHANNELS", 0, 0,
      "channels answered without a mention"),
    K("mattermost.allowed_channels", SORL, 0, 0, CPT, 0, "channel whitelist (newer Hermes)"),
    PLATFORM_SECTION("telegram", CPT),
    K("telegram.require_mention", BOOL, 0, "TELEGRAM_REQUIRE_MENTION", CPT, 0, "mention gating"),
    K("telegram.free_response_channels", SORL, 0, 0, CPT, 0, "chats answered without a mention"),
    K("telegram.free_response_chats", SORL, 0, "TELEGRAM_FREE_RESPONSE_CHATS", CPT, 0,
      "chats answered without a mention"),
    K("telegram.ignored_threads", SORL, 0, "TELEGRAM_IGNORED_THREADS", CPT, 0, "ignored topics"),
    K("telegram.reactions", BOOL, 0, "TELEGRAM_REACTIONS", CPT, 0, "processing reactions"),
    K("telegram.proxy_url", STR, 0, "TELEGRAM_PROXY", CPT, 0, "proxy for Telegram"),
    K("telegram.disable_link_previews", BOOL, 0, 0, CPT, 0, "no link previews"),
    PLATFORM_SECTION("discord", CPT),
    K("discord.require_mention", BOOL, "true", "DISCORD_REQUIRE_MENTION", CPT, 0, "mention gating"),
    K("discord.free_response_channels", SORL, 0, "DISCORD_FREE_RESPONSE_CHANNELS", CPT, 0,
      "channels answered without a mention"),
    K("discord.allowed_channels", SORL, 0, "DISCORD_ALLOWED_CHANNELS", CPT, 0, "channel whitelist"),
    K("discord.ignored_channels", SORL, 0, "DISCORD_IGNORED_CHANNELS", CPT, 0, "ignored channels"),
    K("discord.no_thread_channels", SORL, 0, "DISCORD_NO_THREAD_CHANNELS", CPT, 0,
      "channels without auto-threads"),
    K("discord.auto_thread", BOOL, "true", "DISCORD_AUTO_THREAD", CPT, 0, "auto-create threads"),
    K("discord.reactions", BOOL, "true", "DISCORD_REACTIONS", CPT, 0, "processing reactions"),
    K("discord.channel_skill_bindings", FREE, 0, 0, CPT, 0, "skills per channel"),
    PLATFORM_SECTION("slack", CPT),
    K("slack.require_mention", BOOL, 0, "SLACK_REQUIRE_MENTION", CPT, 0, "mention gating"),
    K("slack.free_response_channels", SORL, 0, "SLACK_FREE_RESPONSE_CHANNELS", CPT, 0,
      "channels answered without a mention"),
    K("slack.allow_bots", BOOL, 0, "SLACK_ALLOW_BOTS", CPT, 0, "answer other bots"),
    PLATFORM_SECTION("whatsapp", CPT),
    K("whatsapp.require_mention", BOOL, 0, "WHATSAPP_REQUIRE_MENTION", CPT, 0, "mention gating"),
    K("whatsapp.free_response_channels", SORL, 0, 0, CPT, 0, "chats answered without a mention"),
    K("whatsapp.free_response_chats", SORL, 0, "WHATSAPP_FREE_RESPONSE_CHATS", CPT, 0,
      "chats answered without a mention"),
    K("gateway", MAP, 0, 0, 0, 0, "gateway process"),
    K("gateway.proxy_url", STR, 0, "GATEWAY_PROXY_URL", 0, 0,
      "proxy mode: forward turns to this remote Hermes API server"),
    K("gateway.delivery_deadline", INT, "21600", "GATEWAY_DELIVERY_DEADLINE", 0, 0,
      "seconds the outbox keeps retrying a reply a platform did not take (Hermes in C)"),
    K("gateway.agent_idle_s", INT, "120", "GATEWAY_AGENT_IDLE", 0, 0,
      "seconds an idle conversation keeps its agent (transcript, prompt) in memory; the next "
      "message reloads it from state.db (0 = until the conversation leaves memory; Hermes in C)"),
    K("gateway.index_warm_hours", FLT, "24", "GATEWAY_INDEX_WARM_HOURS", 0, 0,
      "hours a quiet conversation's sessions.json entry stays in memory before it moves to "
      "state.db (Hermes in C)"),
    K("gateway.memory_budget_mb", INT, "0", "GATEWAY_MEMORY_BUDGET_MB", 0, 0,
      "RSS above which idle conversations leave memory early; 0: no budget (Hermes in C)"),
    K("approvals", MAP, 0, 0, 0, 0, "dangerous-command approval"),
    K("approvals.mode", STR, "manual", 0, 0, "manual|smart|off",
      "how dangerous commands are approved"),
    K("approvals.timeout", INT, "60", 0, 0, 0, "CLI: seconds to answer an approval prompt"),
    K("approvals.gateway_timeout", INT, "300", 0, 0, 0, "gateway: seconds to wait for /approve"),
    K("command_allowlist", LIST, "[]", 0, 0, 0, "permanently approved dangerous-command patterns"),
    K("cron", MAP, 0, 0, 0, 0, "scheduled jobs"),
    K("cron.wrap_response", BOOL, "true", 0, 0, 0,
      "wrap delivered output with a header and footer"),
    K("cron.script_timeout_seconds", INT, "120", "HERMES_CRON_SCRIPT_TIMEOUT", 0, 0,
      "timeout of a job's pre-run script"),
    K("timezone", STR, "", "HERMES_TIMEZONE", 0, 0, "IANA time zone (server time if empty)"),
    K("privacy", MAP, 0, 0, 0, 0, "privacy"),
    K("privacy.redact_pii", BOOL, "false", 0, 0, 0, "hash user ids in the model's context"),
    K("security", MAP, 0, 0, 0, 0, "security"),
    K("security.redact_secrets", BOOL, "true", "HERMES_REDACT_SECRETS", 0, 0,
      "mask secrets in tool output and logs"),
    K("security.tirith_enabled", BOOL, "true", 0, CPT, 0, "tirith scanning (newer Hermes)"),
    K("security.tirith_path", STR, "tirith", 0, CPT, 0, "tirith binary (newer Hermes)"),
    K("security.tirith_timeout", INT, "5", 0, CPT, 0, "tirith timeout (newer Hermes)"),
    K("security.tirith_fail_open", BOOL, "true", 0, CPT, 0, "tirith fail-open (newer Hermes)"),
    K("security.website_blocklist", FREE, 0, 0, CPT, 0, "blocked websites (newer Hermes)"),

    /* tools */
    K("delegation", MAP, 0, 0, 0, 0, "delegate_task subagents"),
    K("delegation.max_iterations", INT, "25", 0, 0, 0, "tool-calling turns per subagent"),
    K("delegation.max_concurrent_children", INT, "3", 0, CPT, 0,
      "subagents one delegate_task call may run at once (newer Hermes)"),
    K("delegation.default_toolsets", LIST, "[terminal, file, web]", 0, 0, 0,
      "toolsets of subagents"),
    K("delegation.model", STR, "", 0, 0, 0, "subagent model (empty = the parent's)"),
    K("delegation.provider", STR, "", 0, 0, 0, "subagent provider (empty = the parent's)"),
    K("delegation.base_url", STR, "", 0, 0, 0, "subagent endpoint (empty = the parent's)"),
    K("delegation.api_key", STR, 0, 0, SEC, 0, "key for delegation.base_url"),
    K("delegation.reasoning_effort", STR, "", 0, 0, "xhigh|high|medium|low|minimal|none|",
      "subagent reasoning effort (empty = the parent's)"),
    K("code_execution", MAP, 0, 0, 0, 0, "execute_code sandbox"),
    K("code_execution.timeout", INT, "300", 0, 0, 0, "seconds per script"),
    K("code_execution.max_tool_calls", INT, "50", 0, 0, 0, "tool calls per script"),
    K("clarify", MAP, 0, 0, 0, 0, "clarify tool"),
    K("clarify.timeout", INT, "120", 0, 0, 0, "CLI: seconds to wait for an answer"),
    K("checkpoints", MAP, 0, 0, 0, 0, "filesystem checkpoints before file changes; /rollback"),
    K("checkpoints.enabled", BOOL, "false", 0, 0, 0,
      "snapshot the working directory before write_file/patch/destructive commands"),
    K("checkpoints.max_snapshots", INT, "50", 0, 0, 0, "checkpoints /rollback lists"),
    K("file_read_max_chars", INT, "100000", 0, CPT, 0, "read_file limit (newer Hermes)"),

    /* display, voice */
    K("display", MAP, 0, 0, 0, 0, "display"),
    K("display.compact", BOOL, "false", 0, 0, 0, "compact CLI banner"),
    K("display.tool_progress", ANY, "all", "HERMES_TOOL_PROGRESS_MODE", HM_K_ENV_FALLBACK,
      "off|new|all|verbose|true|false", "tool progress messages"),
    K("display.personality", STR, "kawaii", 0, 0, 0, "CLI personality (cosmetic)"),
    K("display.tool_preview_length", INT, "0", 0, 0, 0,
      "maximum characters of a tool preview (0 = platform default)"),
    K("display.tool_progress_command", BOOL, "false", 0, 0, 0, "allow /verbose in chats"),
    K("display.interim_assistant_messages", BOOL, "true", 0, 0, 0,
      "send the model's commentary between tool calls"),
    K("display.show_reasoning", BOOL, "false", 0, 0, 0, "show the model's reasoning"),
    K("display.busy_input_mode", STR, "interrupt", "HERMES_GATEWAY_BUSY_INPUT_MODE", 0,
      "interrupt|queue|steer", "gateway: what a message does while a turn runs"),
    K("display.background_process_notifications", STR, "all", "HERMES_BACKGROUND_NOTIFICATIONS", 0,
      "all|result|error|off", "gateway: background process notices"),
    K("display.platforms", FREE, 0, 0, 0, 0, "per-platform display overrides"),
    K("display.tool_progress_overrides", FREE, 0, 0, 0, 0, "deprecated: use display.platforms"),
    K("display.streaming", BOOL, "false", 0, CPT, 0, "CLI streaming (newer Hermes)"),
    K("display.resume_display", STR, "full", 0, CPT, 0, "resume display (newer Hermes)"),
    K("display.bell_on_complete", BOOL, "false", 0, CPT, 0, "bell (newer Hermes)"),
    K("display.inline_diffs", BOOL, "true", 0, CPT, 0, "inline diffs (newer Hermes)"),
    K("display.show_cost", BOOL, "false", 0, CPT, 0, "show cost (newer Hermes)"),
    K("display.skin", STR, "default", 0, CPT, 0, "CLI skin (newer Hermes)"),
    K("dashboard", FREE, 0, 0, CPT, 0, "web dashboard (newer Hermes)"),
    K("tts", MAP, 0, 0, 0, 0, "text to speech"),
    K("tts.provider", STR, "edge", 0, 0, "edge|elevenlabs|openai", "TTS provider"),
    K("tts.edge", MAP, 0, 0, 0, 0, "Edge TTS"),
    K("tts.edge.voice", STR, "en-US-AriaNeural", 0, 0, 0, "Edge TTS voice"),
    K("tts.elevenlabs", MAP, 0, 0, 0, 0, "ElevenLabs"),
    K("tts.elevenlabs.voice_id", STR, "pNInz6obpgDQGcFmaJgB", 0, 0, 0, "ElevenLabs voice"),
    K("tts.elevenlabs.model_id", STR, "eleven_multilingual_v2", 0, 0, 0, "ElevenLabs model"),
    K("tts.openai", MAP, 0, 0, 0, 0, "OpenAI TTS"),
    K("tts.openai.model", STR, "gpt-4o-mini-tts", 0, 0, 0, "OpenAI TTS model"),
    K("tts.openai.voice", STR, "alloy", 0, 0, 0, "OpenAI TTS voice"),
    K("tts.openai.base_url", STR, 0, 0, 0, 0, "OpenAI TTS endpoint (default api.openai.com)"),
    K("tts.openai.speed", FLT, 0, 0, 0, 0, "OpenAI TTS speed (0.25-4.0, default 1.0)"),
    K("tts.speed", FLT, 0, 0, 0, 0, "TTS speed for providers that support it"),
    K("tts.xai", FREE, 0, 0, CPT, 0, "xAI TTS (newer Hermes)"),
    K("tts.mistral", FREE, 0, 0, CPT, 0, "Mistral TTS (newer Hermes)"),
    K("tts.neutts", FREE, 0, 0, CPT, 0, "NeuTTS (newer Hermes)"),
    K("stt", MAP, 0, 0, 0, 0, "speech to text for voice messages"),
    K("stt.enabled", BOOL, "true", 0, 0, 0, "transcribe voice messages"),
    K("stt.model", STR, "whisper-1", 0, 0, 0, "transcription model"),
    K("stt.provider", STR, 0, 0, CPT, 0, "STT provider (newer Hermes)"),
    K("stt.local", FREE, 0, 0, CPT, 0, "local STT (newer Hermes)"),
    K("stt.openai", FREE, 0, 0, CPT, 0, "OpenAI STT (newer Hermes)"),
    K("stt.mistral", FREE, 0, 0, CPT, 0, "Mistral STT (newer Hermes)"),
    K("voice", FREE, 0, 0, CPT, 0, "CLI voice mode (newer Hermes)"),
    K("human_delay", MAP, 0, 0, 0, 0, "gateway: human-like pauses between message parts"),
    K("human_delay.mode", STR, "off", "HERMES_HUMAN_DELAY_MODE", 0, "off|natural|custom",
      "pause mode"),
    K("human_delay.min_ms", INT, "800", "HERMES_HUMAN_DELAY_MIN_MS", 0, 0,
      "custom: shortest pause"),
    K("human_delay.max_ms", INT, "2500", "HERMES_HUMAN_DELAY_MAX_MS", 0, 0,
      "custom: longest pause"),
    K("honcho", FREE, 0, 0, 0, 0, "Honcho user modelling overrides"),
    K("debug", MAP, 0, 0, 0, 0, "debug reports"),
    K("debug.paste_url", STR, "", 0, 0, 0,
      "where /debug POSTs its redacted report; empty: only written to ~/.hermes/logs"),
    K("logging", MAP, 0, 0, CPT, 0, "log files (newer Hermes)"),
    K("logging.level", STR, "INFO", 0, CPT, 0, "log level (newer Hermes)"),
    K("logging.max_size_mb", INT, "5", 0, CPT, 0, "log rotation size (newer Hermes)"),
    K("logging.backup_count", INT, "3", 0, CPT, 0, "rotated logs kept (newer Hermes)"),
    K("network", MAP, 0, 0, CPT, 0, "network (newer Hermes)"),
    K("network.force_ipv4", BOOL, "false", 0, CPT, 0, "IPv4 only (newer Hermes)"),
};
const size_t hm_schema_len = RT_ARRAY_LEN(hm_schema);

#define E(name, group, flags, doc)                                                                 \
    {                                                                                              \
        name, group, flags, doc                                                                    \
    }
#define ES HM_E_SECRET
#define EM HM_E_MARKER

const hm_envkey hm_env_index[] = {
    E("HERMES_HOME", "Paths", 0, "the Hermes home directory (default ~/.hermes)"),
    E("OPENROUTER_API_KEY", "LLM provider", ES, "OpenRouter API key"),
    E("OPENROUTER_BASE_URL", "LLM provider", 0, "OpenRouter base URL override"),
    E("OPENAI_API_KEY", "LLM provider", ES, "API key of a custom OpenAI-compatible endpoint"),
    E("OPENAI_BASE_URL", "LLM provider", 0,
      "base URL of a custom OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp…)"),
    E("ANTHROPIC_API_KEY", "LLM provider", ES, "Anthropic API key"),
    E("LLM_MODEL", "LLM provider", 0,
      "model name (CLI: after --model; gateway: after HERMES_MODEL)"),
    E("OPENAI_MODEL", "LLM provider", 0, "model name for a custom endpoint (CLI)"),
    E("HERMES_MODEL", "LLM provider", 0, "model name for the gateway and cron"),
    E("HERMES_INFERENCE_PROVIDER", "LLM provider", 0,
      "auto, openrouter, custom, nous, openai-codex"),
    E("HERMES_PORTAL_BASE_URL", "LLM provider", 0, "Nous Portal URL override"),
    E("NOUS_INFERENCE_BASE_URL", "LLM provider", 0, "Nous inference API URL override"),
    E("HERMES_NOUS_MIN_KEY_TTL_SECONDS", "LLM provider", 0,
      "minimum Nous agent key lifetime (1800)"),
    E("HERMES_DUMP_REQUESTS", "LLM provider", 0, "dump API requests to files (true/false)"),
    E("FIRECRAWL_API_KEY", "Tools", ES, "Firecrawl key (web search and extraction)"),
    E("FIRECRAWL_API_URL", "Tools", 0, "self-hosted Firecrawl URL"),
    E("BROWSERBASE_API_KEY", "Tools", ES, "Browserbase key (browser tools)"),
    E("BROWSERBASE_PROJECT_ID", "Tools", 0, "Browserbase project"),
    E("BROWSER_INACTIVITY_TIMEOUT", "Tools", 0,
      "browser idle timeout (from browser.inactivity_timeout)"),
    E("FAL_KEY", "Tools", ES, "fal.ai key (image generation)"),
    E("VOICE_TOOLS_OPENAI_KEY", "Tools", ES, "OpenAI key for Whisper and OpenAI TTS"),
    E("ELEVENLABS_API_KEY", "Tools", ES, "ElevenLabs key (TTS)"),
    E("GITHUB_TOKEN", "Tools", ES, "GitHub token (Skills Hub)"),
    E("HONCHO_API_KEY", "Tools", ES, "Honcho key"),
    E("TINKER_API_KEY", "Tools", ES, "Tinker key (RL training)"),
    E("WANDB_API_KEY", "Tools", ES, "Weights & Biases key"),
    E("TERMINAL_ENV", "Terminal", 0, "backend: local, docker, ssh, singularity, modal"),
    E("TERMINAL_CWD", "Terminal", 0, "working directory"),
    E("TERMINAL_TIMEOUT", "Terminal", 0, "command timeout in seconds"),
    E("TERMINAL_LIFETIME_SECONDS", "Terminal", 0, "idle sandbox teardown"),
    E("TERMINAL_DOCKER_IMAGE", "Terminal", 0, "Docker image"),
    E("TERMINAL_SINGULARITY_IMAGE", "Terminal", 0, "Singularity image or .sif"),
    E("TERMINAL_MODAL_IMAGE", "Terminal", 0, "Modal image"),
    E("TERMINAL_SSH_HOST", "Terminal", 0, "SSH backend host"),
    E("TERMINAL_SSH_USER", "Terminal", 0, "SSH backend user"),
    E("TERMINAL_SSH_PORT", "Terminal", 0, "SSH backend port (22)"),
    E("TERMINAL_SSH_KEY", "Terminal", 0, "SSH backend private key file"),
    E("TERMINAL_CONTAINER_CPU", "Terminal", 0, "container CPU cores (1)"),
    E("TERMINAL_CONTAINER_MEMORY", "Terminal", 0, "container memory in MB (5120)"),
    E("TERMINAL_CONTAINER_DISK", "Terminal", 0, "container disk in MB (51200)"),
    E("TERMINAL_CONTAINER_PERSISTENT", "Terminal", 0, "keep container filesystems (true)"),
    E("TERMINAL_DOCKER_VOLUMES", "Terminal", 0, "Docker mounts as a JSON list"),
    E("TERMINAL_SANDBOX_DIR", "Terminal", 0, "host directory for sandboxes (~/.hermes/sandboxes)"),
    E("SUDO_PASSWORD", "Terminal", ES, "password for sudo -S (stored in plain text)"),
    E("MESSAGING_CWD", "Terminal", 0, "gateway: working directory for commands (default ~)"),
    E("HERMES_MAX_ITERATIONS", "Agent", 0, "tool-calling iterations per turn (60)"),
    E("HERMES_EPHEMERAL_SYSTEM_PROMPT", "Agent", 0, "ephemeral system prompt"),
    E("HERMES_PREFILL_MESSAGES_FILE", "Agent", 0, "prefill messages file"),
    E("HERMES_REASONING_EFFORT", "Agent", 0, "reasoning effort"),
    E("HERMES_TOOL_PROGRESS", "Agent", 0, "deprecated: use display.tool_progress"),
    E("HERMES_TOOL_PROGRESS_MODE", "Agent", 0, "deprecated: use display.tool_progress"),
    E("CONTEXT_COMPRESSION_ENABLED", "Agent", 0, "context compression on/off"),
    E("CONTEXT_COMPRESSION_THRESHOLD", "Agent", 0, "compression threshold (0.85)"),
    E("CONTEXT_COMPRESSION_MODEL", "Agent", 0, "summary model"),
    E("HERMES_YOLO_MODE", "Agent", 0, "approve every dangerous command (careful)"),
    E("HERMES_TIMEZONE", "Agent", 0, "IANA time zone"),
    E("HERMES_REDACT_SECRETS", "Agent", 0, "mask secrets in tool output"),
    E("GATEWAY_ALLOWED_USERS", "Gateway", 0, "users allowed on every platform (comma list)"),
    E("GATEWAY_ALLOW_ALL_USERS", "Gateway", 0, "allow everyone (true/false)"),
    E("GATEWAY_PROXY_URL", "Gateway", 0, "proxy mode: remote Hermes API server"),
    E("GATEWAY_PROXY_KEY", "Gateway", ES, "proxy mode: the remote API_SERVER_KEY"),
    E("HERMES_GATEWAY_LOCK_DIR", "Gateway", 0, "directory of gateway identity locks"),
    E("HERMES_GATEWAY_BUSY_INPUT_MODE", "Gateway", 0, "interrupt or queue"),
    E("HERMES_AGENT_TIMEOUT", "Gateway", 0, "agent inactivity limit in seconds (1800)"),
    E("HERMES_AGENT_TIMEOUT_WARNING", "Gateway", 0, "inactivity warning in seconds (900)"),
    E("HERMES_AGENT_NOTIFY_INTERVAL", "Gateway", 0, "\"still working\" interval (600)"),
    E("HERMES_RESTART_DRAIN_TIMEOUT", "Gateway", 0, "drain time on stop/restart (60)"),
    E("HERMES_BACKGROUND_NOTIFICATIONS", "Gateway", 0, "all, result, error or off"),
    E("HERMES_HUMAN_DELAY_MODE", "Gateway", 0, "off, natural or custom"),
    E("HERMES_HUMAN_DELAY_MIN_MS", "Gateway", 0, "shortest pause (800)"),
    E("HERMES_HUMAN_DELAY_MAX_MS", "Gateway", 0, "longest pause (2500)"),
    E("HERMES_CRON_TIMEOUT", "Gateway", 0, "cron job inactivity limit in seconds (600)"),
    E("HERMES_CRON_SCRIPT_TIMEOUT", "Gateway", 0, "cron pre-run script timeout (120)"),
    E("SESSION_IDLE_MINUTES", "Gateway", 0, "session_reset.idle_minutes override"),
    E("SESSION_RESET_HOUR", "Gateway", 0, "session_reset.at_hour override"),
    E("MATRIX_HOMESERVER", "Matrix", 0, "homeserver URL"),
    E("MATRIX_ACCESS_TOKEN", "Matrix", ES, "access token (preferred)"),
    E("MATRIX_USER_ID", "Matrix", 0, "bot user id @bot:server"),
    E("MATRIX_PASSWORD", "Matrix", ES, "password login alternative"),
    E("MATRIX_DEVICE_ID", "Matrix", 0, "stable device id (E2EE identity)"),
    E("MATRIX_ENCRYPTION", "Matrix", 0, "enable end-to-end encryption"),
    E("MATRIX_RECOVERY_KEY", "Matrix", ES, "SSSS recovery key"),
    E("MATRIX_ALLOWED_USERS", "Matrix", 0, "allowed @user:server ids (comma list)"),
    E("MATRIX_ALLOW_ALL_USERS", "Matrix", 0, "allow everyone on Matrix"),
    E("MATRIX_HOME_ROOM", "Matrix", 0, "home room id"),
    E("MATRIX_HOME_ROOM_NAME", "Matrix", 0, "home room name (Home)"),
    E("MATRIX_HOME_CHANNEL", "Matrix", 0, "legacy home room written by /sethome"),
    E("MATRIX_REQUIRE_MENTION", "Matrix", 0, "mention gating in rooms (true)"),
    E("MATRIX_FREE_RESPONSE_ROOMS", "Matrix", 0, "rooms answered without a mention"),
    E("MATRIX_AUTO_THREAD", "Matrix", 0, "reply in threads (true)"),
    E("MATRIX_DM_MENTION_THREADS", "Matrix", 0, "threads in DMs on mention (false)"),
    E("MATRIX_REACTIONS", "Matrix", 0, "processing reactions (true)"),
    E("HERMES_MATRIX_TEXT_BATCH_DELAY_SECONDS", "Matrix", 0, "text batching quiet period (0.6)"),
    E("HERMES_MATRIX_TEXT_BATCH_SPLIT_DELAY_SECONDS", "Matrix", 0,
      "quiet period after a long chunk (2.0)"),
    E("MATTERMOST_URL", "Mattermost", 0, "server URL"),
    E("MATTERMOST_TOKEN", "Mattermost", ES, "bot or personal access token"),
    E("MATTERMOST_ALLOWED_USERS", "Mattermost", 0, "allowed user ids (comma list)"),
    E("MATTERMOST_ALLOW_ALL_USERS", "Mattermost", 0, "allow everyone on Mattermost"),
    E("MATTERMOST_HOME_CHANNEL", "Mattermost", 0, "home channel id"),
    E("MATTERMOST_HOME_CHANNEL_NAME", "Mattermost", 0, "home channel name (Home)"),
    E("MATTERMOST_REPLY_MODE", "Mattermost", 0, "off or thread"),
    E("MATTERMOST_REQUIRE_MENTION", "Mattermost", 0, "mention gating (true)"),
    E("MATTERMOST_FREE_RESPONSE_CHANNELS", "Mattermost", 0, "channels answered without a mention"),
    E("API_SERVER_ENABLED", "API server", 0, "enable the OpenAI-compatible API server"),
    E("API_SERVER_KEY", "API server", ES, "bearer key (required off loopback)"),
    E("API_SERVER_HOST", "API server", 0, "bind address (127.0.0.1)"),
    E("API_SERVER_PORT", "API server", 0, "port (8642)"),
    E("API_SERVER_CORS_ORIGINS", "API server", 0, "allowed origins (comma list)"),
    E("API_SERVER_MODEL_NAME", "API server", 0, "model name on /v1/models"),
    E("TELEGRAM_BOT_TOKEN", "Other platforms", ES, "Telegram bot token"),
    E("TELEGRAM_ALLOWED_USERS", "Other platforms", 0, "allowed Telegram user ids"),
    E("TELEGRAM_HOME_CHANNEL", "Other platforms", 0, "Telegram home chat"),
    E("DISCORD_BOT_TOKEN", "Other platforms", ES, "Discord bot token"),
    E("DISCORD_ALLOWED_USERS", "Other platforms", 0, "allowed Discord user ids"),
    E("DISCORD_HOME_CHANNEL", "Other platforms", 0, "Discord home channel"),
    E("SLACK_BOT_TOKEN", "Other platforms", ES, "Slack bot token (xoxb-)"),
    E("SLACK_APP_TOKEN", "Other platforms", ES, "Slack app token (xapp-)"),
    E("SLACK_ALLOWED_USERS", "Other platforms", 0, "allowed Slack user ids"),
    E("WHATSAPP_ENABLED", "Other platforms", 0, "enable WhatsApp"),
    E("WHATSAPP_ALLOWED_USERS", "Other platforms", 0, "allowed WhatsApp numbers"),
    E("WHATSAPP_ACCESS_TOKEN", "Other platforms", ES, "WhatsApp Cloud API access token"),
    E("WHATSAPP_APP_SECRET", "Other platforms", ES, "WhatsApp app secret (webhook signatures)"),
    E("WHATSAPP_VERIFY_TOKEN", "Other platforms", ES, "WhatsApp webhook verify token"),
    E("WHATSAPP_PHONE_NUMBER_ID", "Other platforms", 0, "WhatsApp phone number id"),
    E("TELEGRAM_API_BASE", "Other platforms", 0, "Telegram Bot API server (self-hosted, tests)"),
    E("HERMES_INTERACTIVE", "Set by Hermes", EM, "marks the interactive CLI"),
    E("HERMES_GATEWAY_SESSION", "Set by Hermes", EM, "marks an agent run by the gateway"),
    E("HERMES_EXEC_ASK", "Set by Hermes", EM, "gateway: dangerous commands wait for /approve"),
    E("HERMES_QUIET", "Set by Hermes", EM, "gateway: quiet agent output"),
    E("HERMES_SESSION_KEY", "Set by Hermes", EM, "the running session's key"),
    E("HERMES_SESSION_PLATFORM", "Set by Hermes", EM, "the running session's platform"),
    E("HERMES_SESSION_CHAT_ID", "Set by Hermes", EM, "the running session's chat"),
    E("HERMES_SESSION_CHAT_NAME", "Set by Hermes", EM, "the running session's chat name"),
};
const size_t hm_env_index_len = RT_ARRAY_LEN(hm_env_index);

/* ---- lookups -------------------------------------------------------------------------- */

/* Does pattern (with "*" components) match path, component by component? */
static bool path_match(const char *pat, const char *path)
{
    for (;;) {
        const char *pd = strchr(pat, '.'), *qd = strchr(path, '.');
        size_t pl = pd ? (size_t)(pd - pat) : strlen(pat);
        size_t ql = qd ? (size_t)(qd - path) : strlen(path);
        if (!(pl == 1 && pat[0] == '*' && ql > 0) && (pl != ql || memcmp(pat, path, pl) != 0))
            return false;
        if (!pd || !qd)
            return !pd && !qd;
        pat = pd + 1;
        path = qd + 1;
    }
}

const hm_key *hm_schema_find(const char *path)
{
    for (size_t i = 0; i < hm_schema_len; i++)
        if (strcmp(hm_schema[i].path, path) == 0)
            return &hm_schema[i];
    for (size_t i = 0; i < hm_schema_len; i++)
        if (strchr(hm_schema[i].path, '*') && path_match(hm_schema[i].path, path))
            return &hm_schema[i];
    return NULL;
}

bool hm_schema_in_free_map(const char *path)
{
    char buf[512];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return false;
    for (char *dot = strrchr(buf, '.'); dot; dot = strrchr(buf, '.')) {
        *dot = 0;
        const hm_key *k = hm_schema_find(buf);
        if (k && (k->type == HM_T_FREE || k->type == HM_T_ANY))
            return true;
    }
    return false;
}

const char *hm_type_name(hm_type t)
{
    switch (t) {
    case HM_T_MAP: return "a section (a mapping of keys)";
    case HM_T_FREE: return "a mapping";
    case HM_T_STR: return "a string";
    case HM_T_INT: return "an integer";
    case HM_T_FLOAT: return "a number";
    case HM_T_BOOL: return "true or false";
    case HM_T_LIST: return "a list";
    case HM_T_STR_OR_LIST: return "a string or a list";
    case HM_T_ANY: return "a value";
    case HM_T_MODEL: return "a model name or a mapping";
    }
    return "a value";
}

/* Levenshtein distance, giving up (returning a large number) above 127 characters. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[128], prev[128];
    if (la > 127 || lb > 127)
        return 1000;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, row, (lb + 1) * sizeof(row[0]));
    }
    return prev[lb];
}

/* The pattern with each "*" replaced by the matching component of path (same depth only). */
static bool instantiate(const char *pat, const char *path, char *out, size_t n)
{
    size_t o = 0;
    for (;;) {
        const char *pd = strchr(pat, '.'), *qd = strchr(path, '.');
        size_t pl = pd ? (size_t)(pd - pat) : strlen(pat);
        size_t ql = qd ? (size_t)(qd - path) : strlen(path);
        const char *src = pl == 1 && pat[0] == '*' ? path : pat;
        size_t sl = src == path ? ql : pl;
        if (o + sl + 2 > n)
            return false;
        memcpy(out + o, src, sl);
        o += sl;
        if (!pd || !qd) {
            out[o] = 0;
            return !pd && !qd;
        }
        out[o++] = '.';
        pat = pd + 1;
        path = qd + 1;
    }
}

const char *hm_schema_suggest(const char *path, char *buf, size_t n)
{
    size_t best = 1000;
    const char *last = strrchr(path, '.');
    last = last ? last + 1 : path;
    char cand[256];
    for (size_t i = 0; i < hm_schema_len; i++) {
        const char *p = hm_schema[i].path;
        if (strchr(p, '*')) {
            if (!instantiate(p, path, cand, sizeof(cand)))
                continue;
        } else if (snprintf(cand, sizeof(cand), "%s", p) >= (int)sizeof(cand)) {
            continue;
        }
        size_t d = edit_distance(path, cand);
        size_t limit = strlen(path) / 4 > 2 ? strlen(path) / 4 : 2;
        if (d <= limit && d < best) {
            best = d;
            snprintf(buf, n, "%s", cand);
        }
    }
    if (best < 1000)
        return buf;
    /* the right key in the wrong section: "backend" → "terminal.backend" */
    for (size_t i = 0; i < hm_schema_len; i++) {
        const char *p = hm_schema[i].path, *pl = strrchr(p, '.');
        if (pl && strcmp(pl + 1, last) == 0 && !strchr(p, '*') && !(hm_schema[i].flags & CPT)) {
            snprintf(buf, n, "%s", p);
            return buf;
        }
    }
    return NULL;
}

const hm_envkey *hm_env_index_find(const char *name)
{
    for (size_t i = 0; i < hm_env_index_len; i++)
        if (strcmp(hm_env_index[i].name, name) == 0)
            return &hm_env_index[i];
    return NULL;
}

bool hm_is_secret_name(const char *name)
{
    char up[128];
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof(up))
        return false;
    for (size_t i = 0; i <= n; i++)
        up[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    if (n >= 7 && strcmp(up + n - 7, "SSH_KEY") == 0)
        return false; /* a path, not a secret */
    if (strcmp(up, "RECORD_KEY") == 0)
        return false; /* voice.record_key is a keyboard shortcut */
    if ((n >= 3 && strcmp(up + n - 3, "KEY") == 0))
        return true;
    static const char *const words[] = {"TOKEN", "SECRET", "PASSWORD", "PASSWD"};
    for (size_t w = 0; w < RT_ARRAY_LEN(words); w++) {
        size_t wl = strlen(words[w]);
        for (const char *p = strstr(up, words[w]); p; p = strstr(p + 1, words[w])) {
            bool left = p == up || p[-1] == '_' || p[-1] == '.';
            bool right = p[wl] == 0 || p[wl] == '_' || p[wl] == '.';
            if (left && right)
                return true;
        }
    }
    return false;
}

bool hm_is_placeholder_secret(const char *value)
{
    static const char *const ph[] = {
        "*",           "**",      "***",   "changeme", "your_api_key", "your-api-key",
        "placeholder", "example", "dummy", "null",     "none"};
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(value);
    while (n && (value[n - 1] == ' ' || value[n - 1] == '\t' || value[n - 1] == '\n' ||
                 value[n - 1] == '\r'))
        n--;
    if (n < 4)
        return true;
    for (size_t i = 0; i < RT_ARRAY_LEN(ph); i++)
        if (strlen(ph[i]) == n && strncasecmp(value, ph[i], n) == 0)
            return true;
    return false;
}

/* Variables that change how programs run, or Hermes' own location and run-time markers:
 * `hermes config set` never writes these (later upstream's denylist). */
static const char *const env_denied[] = {
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "LD_DEBUG",
    "DYLD_INSERT_LIBRARIES",
    "PYTHONPATH",
    "PYTHONHOME",
    "NODE_OPTIONS",
    "PATH",
    "SHELL",
    "BROWSER",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "GIT_SSH_COMMAND",
    "GIT_EXEC_PATH",
    "HOME",
    "HERMES_HOME",
};

/* Families of variables the original reads. */
static const char *const env_prefixes[] = {
    "TERMINAL_",    "HERMES_",      "CONTEXT_COMPRESSION_",
    "AUXILIARY_",   "MATRIX_",      "MATTERMOST_",
    "TELEGRAM_",    "DISCORD_",     "SLACK_",
    "WHATSAPP_",    "SIGNAL_",      "EMAIL_",
    "SMS_",         "TWILIO_",      "HASS_",
    "API_SERVER_",  "GATEWAY_",     "WEBHOOK_",
    "BROWSERBASE_", "BROWSER_",     "FIRECRAWL_",
    "OPENAI_",      "OPENROUTER_",  "ANTHROPIC_",
    "NOUS_",        "HONCHO_",      "ELEVENLABS_",
    "GITHUB_",      "TINKER_",      "WANDB_",
    "MODAL_",       "DAYTONA_",     "FEISHU_",
    "WECOM_",       "WEIXIN_",      "QQ_",
    "DINGTALK_",    "BLUEBUBBLES_", "SESSION_",
    "LLM_",         "TAVILY_",      "EXA_",
    "MISTRAL_",     "GOOGLE_",      "GEMINI_",
    "XAI_",         "DEEPSEEK_",
};
static const char *const env_suffixes[] = {
    "_API_KEY",           "_TOKEN",         "_BASE_URL",        "_HOME_CHANNEL",
    "_HOME_CHANNEL_NAME", "_ALLOWED_USERS", "_ALLOW_ALL_USERS",
};

int hm_env_name_check(const char *name, char *suggest, size_t n)
{
    if (suggest && n)
        suggest[0] = 0;
    for (size_t i = 0; i < RT_ARRAY_LEN(env_denied); i++)
        if (strcmp(env_denied[i], name) == 0)
            return -EPERM;
    const hm_envkey *k = hm_env_index_find(name);
    if (k)
        return k->flags & HM_E_MARKER ? -EPERM : 0;
    /* a near miss of a known name is a typo, even inside a known family */
    size_t best = 1000;
    for (size_t i = 0; i < hm_env_index_len; i++) {
        size_t d = edit_distance(name, hm_env_index[i].name);
        if (d <= 2 && d < best && !(hm_env_index[i].flags & HM_E_MARKER)) {
            best = d;
            if (suggest)
                snprintf(suggest, n, "%s", hm_env_index[i].name);
        }
    }
    if (best < 1000)
        return -ENOENT;
    size_t len = strlen(name);
    for (size_t i = 0; i < RT_ARRAY_LEN(env_prefixes); i++)
        if (strncmp(name, env_prefixes[i], strlen(env_prefixes[i])) == 0)
            return 0;
    for (size_t i = 0; i < RT_ARRAY_LEN(env_suffixes); i++) {
        size_t sl = strlen(env_suffixes[i]);
        if (len > sl && strcmp(name + len - sl, env_suffixes[i]) == 0)
            return 0;
    }
    return -ENOENT;
}
