# `hermes tools`: the toolsets and tools a platform's sessions get (chat_session.c prints the
# shared listings and is added by cli_repl.cmake).
target_sources(hermes PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cli_tools.c)
target_link_libraries(hermes PRIVATE host tools)
