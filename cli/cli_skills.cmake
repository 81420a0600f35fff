# `hermes skills list|inspect`: the skills directory through tools/skills (in the tools
# library) and the home directory from hm_config.
target_sources(hermes PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cli_skills.c)
target_link_libraries(hermes PRIVATE tools hm_config)
