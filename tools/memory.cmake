# tools/memory: the MEMORY.md / USER.md format (mem_file), the locked read-modify-write
# operations (mem_store) and the `memory` tool.
target_sources(tools PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/memory/mem_file.c
  ${CMAKE_CURRENT_SOURCE_DIR}/memory/mem_store.c
  ${CMAKE_CURRENT_SOURCE_DIR}/memory/tool_memory.c)
target_include_directories(tools PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/memory)
