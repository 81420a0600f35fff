# gw_auth: who may talk (allowlists, allow-all flags, unauthorized_dm_behavior).
target_sources(gateway PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/gw_auth.c)
# gw_auth.h takes an hm_config.
target_link_libraries(gateway PUBLIC hm_config)
