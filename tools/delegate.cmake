# delegate_task drives subagent sessions through their message protocol (agent_proto).
target_sources(tools PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/delegate/tool_delegate.c)
target_link_libraries(tools PUBLIC agent_proto)
