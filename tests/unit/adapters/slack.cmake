# tests/unit/adapters/slack.cmake: the Slack adapter — pure helpers, and the actor against the
# Slack double (tests/doubles/slack_double.py) and the gateway double.
if(NOT TARGET adapter_testlib)
  add_library(adapter_testlib STATIC
    ${CMAKE_CURRENT_LIST_DIR}/gw_double.c ${CMAKE_CURRENT_LIST_DIR}/adapter_env.c)
  target_include_directories(adapter_testlib PUBLIC ${CMAKE_CURRENT_LIST_DIR}
                             ${PROJECT_SOURCE_DIR}/tests/unit/io)
  target_link_libraries(adapter_testlib PUBLIC adapter_api_server agent rt_http rt_lws
                        lws_testlib test_harness PRIVATE hermes_warnings)
endif()
hermes_add_test(NAME adapter_slack_fmt SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_slack_fmt.c
                LIBS adapter_slack PkgConfig::CJSON LABELS unit adapters)
hermes_add_test(NAME adapter_slack SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_slack.c
                LIBS adapter_testlib adapter_slack hm_config LABELS unit adapters TIMEOUT 300)
target_compile_definitions(test_adapter_slack PRIVATE
                           SLACK_DOUBLE="${PROJECT_SOURCE_DIR}/tests/doubles/slack_double.py")
