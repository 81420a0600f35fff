# tests/unit/adapters/whatsapp.cmake: the WhatsApp Cloud API adapter — webhook handshake and
# signatures, and a message in → a reply out against the Graph API double
# (tests/doubles/whatsapp_double.py, /usr/bin/python3 + aiohttp) and the gateway double.
# adapter_testlib comes from api_server.cmake, included before us.
hermes_add_test(NAME adapter_whatsapp SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_whatsapp.c
                LIBS adapter_testlib adapter_whatsapp hm_config OpenSSL::Crypto
                LABELS unit adapters)
target_compile_definitions(test_adapter_whatsapp PRIVATE
  WA_DOUBLE="${PROJECT_SOURCE_DIR}/tests/doubles/whatsapp_double.py")
