target_sources(tools PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/memory/mem_file.c)
target_include_directories(tools PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/memory)
