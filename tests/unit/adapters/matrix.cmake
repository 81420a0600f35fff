# tests/unit/adapters/matrix.cmake: the Matrix adapter. test_matrix_rules covers the pure
# parts (mentions, gating, threads, wire, Markdown); test_matrix drives the adapter against
# the homeserver double tests/doubles/matrix_double.py (Debian python3-aiohttp).
hermes_add_test(NAME adapter_matrix_rules
                SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_matrix_rules.c
                LIBS adapter_matrix hm_config LABELS unit adapters)

add_library(matrix_testlib STATIC ${CMAKE_CURRENT_LIST_DIR}/matrix_env.c)
target_include_directories(matrix_testlib PUBLIC ${CMAKE_CURRENT_LIST_DIR}
                           ${PROJECT_SOURCE_DIR}/tests/unit/io)
target_compile_definitions(matrix_testlib PRIVATE
  MATRIX_DOUBLE_PY="${PROJECT_SOURCE_DIR}/tests/doubles/matrix_double.py")
target_link_libraries(matrix_testlib PUBLIC adapter_matrix rt_http lws_testlib test_harness
                      PRIVATE hermes_warnings)
hermes_add_test(NAME adapter_matrix SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_matrix.c
                LIBS matrix_testlib adapter_matrix LABELS unit adapters TIMEOUT 300)

# test_matrix_crypto: the E2EE layer (mx_crypto with libolm) through its seam, with a second
# libolm identity in process playing the person and the test answering as the homeserver.
find_library(MATRIX_TEST_OLM_LIB NAMES olm REQUIRED)
hermes_add_test(NAME adapter_matrix_crypto
                SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_matrix_crypto.c
                LIBS adapter_matrix ${MATRIX_TEST_OLM_LIB} LABELS unit adapters TIMEOUT 120)
hermes_add_test(NAME adapter_matrix_crypto_actor
                SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_matrix_crypto_actor.c
                LIBS matrix_testlib adapter_matrix ${MATRIX_TEST_OLM_LIB} LABELS unit adapters
                TIMEOUT 120)
