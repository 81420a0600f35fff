# Cron: schedules and next runs (pure), the job store and the tools' results (files), the
# scheduler actor (ticks, sessions, delivery, the cross-process tick lock).
hermes_add_test(NAME tool_cron_sched SOURCES test_cron_sched.c LIBS tools LABELS unit tools)
hermes_add_test(NAME tool_cron_jobs SOURCES test_cron_jobs.c LIBS tools LABELS unit tools)
hermes_add_test(NAME tool_cron_actor SOURCES test_cron_actor.c LIBS cron agent tools
                LABELS unit tools actors)
# `hermes cron` and /cron: cli/cli_cron.c compiled into the test (cli_err is the test's).
hermes_add_test(NAME tool_cron_cli SOURCES test_cron_cli.c ${PROJECT_SOURCE_DIR}/cli/cli_cron.c
                LIBS tools hm_config LABELS unit tools)
target_include_directories(test_tool_cron_cli PRIVATE ${PROJECT_SOURCE_DIR}/cli)
