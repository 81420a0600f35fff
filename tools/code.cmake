# tools/code: execute_code — a Python script in a sandbox directory, run through rt_proc,
# calling Hermes tools over a Unix-socket RPC served on the reactor (code_rpc).
target_sources(tools PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/code/code_rpc.c
  ${CMAKE_CURRENT_SOURCE_DIR}/code/tool_code.c)
target_include_directories(tools PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/code)
