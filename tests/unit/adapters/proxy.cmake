# tests/unit/adapters/proxy.cmake: proxy sessions against a real API server instance (and
# the gateway double behind it), a failing server and a closed port.
if(NOT TARGET adapter_testlib)
  add_library(adapter_testlib STATIC
    ${CMAKE_CURRENT_LIST_DIR}/gw_double.c ${CMAKE_CURRENT_LIST_DIR}/adapter_env.c)
  target_include_directories(adapter_testlib PUBLIC ${CMAKE_CURRENT_LIST_DIR}
                             ${PROJECT_SOURCE_DIR}/tests/unit/io)
  target_link_libraries(adapter_testlib PUBLIC adapter_api_server agent rt_http rt_lws
                        lws_testlib test_harness PRIVATE hermes_warnings)
endif()
hermes_add_test(NAME adapter_proxy SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_proxy.c
                LIBS adapter_testlib adapter_proxy hm_config
                LABELS unit adapters)
