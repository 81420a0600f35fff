# `hermes cron list|status|add|remove` and the REPL's /cron (cli_cron_slash): the job store of
# tools/cron (in the tools library).
target_sources(hermes PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cli_cron.c)
target_link_libraries(hermes PRIVATE tools hm_config)
