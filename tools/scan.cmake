target_sources(tools PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/scan/tool_scan.c)
target_include_directories(tools PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/scan)
