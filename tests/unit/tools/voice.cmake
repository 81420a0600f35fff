# tools/voice: the OpenAI audio requests and answers, the markdown cleanup and the
# text_to_speech tool, against an in-process fake of the audio API (voice_fake, shared with
# the gateway's media tests).
if(NOT TARGET voice_testlib)
  add_library(voice_testlib STATIC ${CMAKE_CURRENT_LIST_DIR}/voice_fake.c)
  target_include_directories(voice_testlib PUBLIC ${CMAKE_CURRENT_LIST_DIR})
  target_link_libraries(voice_testlib PUBLIC rt_lws rt_http test_harness PkgConfig::CJSON
                        PRIVATE hermes_warnings)
endif()
hermes_add_test(NAME tool_voice SOURCES test_voice.c LIBS tools voice_testlib hm_config
                LABELS unit tools actors)
