target_sources(tools PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/clarify/tool_clarify.c)
