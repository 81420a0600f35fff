# terminal and process tools: backends, dangerous-command approval, secret redaction and
# the process registry (tools/terminal/).
target_sources(tools PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/terminal/redact.c
  ${CMAKE_CURRENT_SOURCE_DIR}/terminal/term_approval.c
  ${CMAKE_CURRENT_SOURCE_DIR}/terminal/term_backend.c
  ${CMAKE_CURRENT_SOURCE_DIR}/terminal/term_output.c
  ${CMAKE_CURRENT_SOURCE_DIR}/terminal/term_procs.c
  ${CMAKE_CURRENT_SOURCE_DIR}/terminal/term_sandbox.c
  ${CMAKE_CURRENT_SOURCE_DIR}/terminal/tool_terminal.c
  ${CMAKE_CURRENT_SOURCE_DIR}/terminal/tool_process.c
)
target_include_directories(tools PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/terminal)
target_link_libraries(tools PUBLIC rt_proc)
