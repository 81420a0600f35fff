# tests/unit/adapters/api_server.cmake: the API server adapter against a gateway double, with
# a raw HTTP client (tests/unit/io/lws_httpc). The support library is shared with proxy.cmake.
if(NOT TARGET adapter_testlib)
  add_library(adapter_testlib STATIC
    ${CMAKE_CURRENT_LIST_DIR}/gw_double.c ${CMAKE_CURRENT_LIST_DIR}/adapter_env.c)
  target_include_directories(adapter_testlib PUBLIC ${CMAKE_CURRENT_LIST_DIR}
                             ${PROJECT_SOURCE_DIR}/tests/unit/io)
  target_link_libraries(adapter_testlib PUBLIC adapter_api_server agent rt_http rt_lws
                        lws_testlib test_harness PRIVATE hermes_warnings)
endif()
hermes_add_test(NAME adapter_api_server SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_api_server.c
                LIBS adapter_testlib adapter_api_server hm_config OpenSSL::Crypto
                LABELS unit adapters)
