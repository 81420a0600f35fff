# tests/unit/adapters/ak_lanes.cmake: the adapter kit's per-chat send lanes (ak_lanes, issue 13)
# — the module itself, and an adapter using it seen from outside (the Telegram adapter against
# its Bot API double and a recording gateway: timeouts never sent twice, slow chats alone).
hermes_add_test(NAME adapter_kit_lanes
                SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_ak_lanes.c
                LIBS adapter_kit rt
                LABELS unit adapters)
if(NOT TARGET adapter_testlib)
  add_library(adapter_testlib STATIC
    ${CMAKE_CURRENT_LIST_DIR}/gw_double.c ${CMAKE_CURRENT_LIST_DIR}/adapter_env.c)
  target_include_directories(adapter_testlib PUBLIC ${CMAKE_CURRENT_LIST_DIR}
                             ${PROJECT_SOURCE_DIR}/tests/unit/io)
  target_link_libraries(adapter_testlib PUBLIC adapter_api_server agent rt_http rt_lws
                        lws_testlib test_harness PRIVATE hermes_warnings)
endif()
hermes_add_test(NAME adapter_send_safety SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_send_safety.c
                LIBS adapter_testlib adapter_telegram hm_config LABELS unit adapters
                TIMEOUT 300)
target_compile_definitions(test_adapter_send_safety PRIVATE
  TG_DOUBLE="${PROJECT_SOURCE_DIR}/tests/doubles/telegram_double.py")
