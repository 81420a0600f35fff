# `hermes pairing`: list, approve, revoke, clear-pending (the DM pairing store of the gateway).
target_sources(hermes PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cli_pairing.c)
target_link_libraries(hermes PRIVATE gateway hm_config)
