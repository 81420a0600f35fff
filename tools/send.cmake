# tools/send: the send_message tool — targets, the channel directory, and delivery through
# the running gateway's live adapters (GW_MSG_DELIVER). Only gw.h's message layout is shared
# with the gateway, so its folder is a private include path, not a link dependency.
target_sources(tools PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/send/send_dir.c
  ${CMAKE_CURRENT_SOURCE_DIR}/send/tool_send.c)
target_include_directories(tools PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/send
                           PRIVATE ${PROJECT_SOURCE_DIR}/actors/gateway)
