# `hermes config`: show, set, check, path, env-path, edit, migrate.
target_sources(hermes PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cli_config.c)
target_link_libraries(hermes PRIVATE hm_config)
