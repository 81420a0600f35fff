# tools/cron: the cron job store (jobs.json, schedules, run reports), the cron tools
# (schedule_cronjob, list_cronjobs, remove_cronjob and the newer cronjob) and the logic
# `hermes cron` shares with them. The scheduler actor is actors/cron.
target_sources(tools PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/cron/cron_pyjson.c
  ${CMAKE_CURRENT_SOURCE_DIR}/cron/cron_sched.c
  ${CMAKE_CURRENT_SOURCE_DIR}/cron/cron_jobs.c
  ${CMAKE_CURRENT_SOURCE_DIR}/cron/cron_api.c
  ${CMAKE_CURRENT_SOURCE_DIR}/cron/tool_cron.c)
target_include_directories(tools PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/cron)
# cron_pyjson formats numbers with floor/fabs (libm; unoptimised builds call them).
target_link_libraries(tools PUBLIC m)
