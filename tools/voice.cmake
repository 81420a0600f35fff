# tools/voice: the OpenAI audio API (speech to text for the gateway's voice notes, text to
# speech) and the `text_to_speech` tool.
target_sources(tools PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/voice/vo_audio.c
  ${CMAKE_CURRENT_SOURCE_DIR}/voice/tool_tts.c)
target_include_directories(tools PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/voice)
target_link_libraries(tools PUBLIC hm_config rt_http)
