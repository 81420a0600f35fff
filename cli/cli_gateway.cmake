target_sources(hermes PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cli_gateway.c)
target_link_libraries(hermes PRIVATE host gateway adapters_all cron_host)
