# tests/unit/adapters/mattermost.cmake: the Mattermost adapter. test_mattermost_parse covers the
# pure helpers; test_mattermost drives the adapter actor against the Mattermost server double
# (tests/doubles/mattermost_double.py, run with /usr/bin/python3 + python3-aiohttp) with a
# stand-in for the gateway (mattermost_env.c).
if(NOT TARGET mattermost_testlib)
  add_library(mattermost_testlib STATIC ${CMAKE_CURRENT_LIST_DIR}/mattermost_env.c)
  target_include_directories(mattermost_testlib PUBLIC ${CMAKE_CURRENT_LIST_DIR}
                             ${PROJECT_SOURCE_DIR}/tests/unit/io)
  target_compile_definitions(mattermost_testlib PRIVATE
    MM_DOUBLE_PATH="${PROJECT_SOURCE_DIR}/tests/doubles/mattermost_double.py")
  target_link_libraries(mattermost_testlib PUBLIC adapter_mattermost rt_http rt_lws
                        lws_testlib test_harness PRIVATE hermes_warnings)
endif()
hermes_add_test(NAME adapter_mattermost_parse
                SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_mattermost_parse.c
                LIBS adapter_mattermost LABELS unit adapters)
hermes_add_test(NAME adapter_mattermost SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_mattermost.c
                LIBS mattermost_testlib adapter_mattermost TIMEOUT 300
                LABELS unit adapters)
