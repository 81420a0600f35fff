# tests/unit/adapters/discord.cmake: the Discord adapter against the Discord double
# (tests/doubles/discord_double.py) and the gateway double.
if(NOT TARGET adapter_testlib)
  add_library(adapter_testlib STATIC
    ${CMAKE_CURRENT_LIST_DIR}/gw_double.c ${CMAKE_CURRENT_LIST_DIR}/adapter_env.c)
  target_include_directories(adapter_testlib PUBLIC ${CMAKE_CURRENT_LIST_DIR}
                             ${PROJECT_SOURCE_DIR}/tests/unit/io)
  target_link_libraries(adapter_testlib PUBLIC adapter_api_server agent rt_http rt_lws
                        lws_testlib test_harness PRIVATE hermes_warnings)
endif()
hermes_add_test(NAME adapter_discord SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_discord.c
                LIBS adapter_testlib adapter_discord hm_config LABELS unit adapters TIMEOUT 300)
target_compile_definitions(test_adapter_discord PRIVATE
                           DISCORD_DOUBLE="${PROJECT_SOURCE_DIR}/tests/doubles/discord_double.py")
