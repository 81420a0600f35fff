# The interactive `hermes` (cli_repl.c and repl_*.c) and what it shares with `hermes chat -q`
# (chat_session.c): libedit from Debian's libedit-dev for the input line.
pkg_check_modules(LIBEDIT REQUIRED IMPORTED_TARGET libedit>=3.1)
target_sources(hermes PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/chat_session.c
  ${CMAKE_CURRENT_SOURCE_DIR}/cli_repl.c
  ${CMAKE_CURRENT_SOURCE_DIR}/repl_bridge.c
  ${CMAKE_CURRENT_SOURCE_DIR}/repl_cmds.c
  ${CMAKE_CURRENT_SOURCE_DIR}/repl_hist.c
  ${CMAKE_CURRENT_SOURCE_DIR}/repl_term.c)
target_link_libraries(hermes PRIVATE host tools st_store hm_config PkgConfig::LIBEDIT)
