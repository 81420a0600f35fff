# tools/session_search: full-text search over past conversations in state.db (ss_search),
# the transcript and query text work (ss_text) and the `session_search` tool.
target_sources(tools PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/session_search/ss_text.c
  ${CMAKE_CURRENT_SOURCE_DIR}/session_search/ss_search.c
  ${CMAKE_CURRENT_SOURCE_DIR}/session_search/tool_session_search.c)
target_include_directories(tools PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/session_search)
# The read side of the state store (st_read.h): synchronous queries on our own connection.
target_link_libraries(tools PUBLIC st_store)
