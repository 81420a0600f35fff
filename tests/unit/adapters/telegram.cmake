# tests/unit/adapters/telegram.cmake: the Telegram adapter — its pure parts, and the actor
# against the Bot API double (tests/doubles/telegram_double.py, /usr/bin/python3 + aiohttp)
# and the gateway double.
hermes_add_test(NAME adapter_telegram SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_telegram.c
                LIBS adapter_telegram LABELS unit adapters)
# adapter_testlib (gw_double, adapter_env) comes from api_server.cmake, included before us.
hermes_add_test(NAME adapter_telegram_live SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_telegram_live.c
                LIBS adapter_testlib adapter_telegram hm_config LABELS unit adapters)
target_compile_definitions(test_adapter_telegram_live PRIVATE
  TG_DOUBLE="${PROJECT_SOURCE_DIR}/tests/doubles/telegram_double.py")
