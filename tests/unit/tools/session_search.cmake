# session_search over a real state.db written through the store (tests/unit/store/st_test.h).
hermes_add_test(NAME tool_session_search SOURCES test_session_search.c LIBS tools st_store
                LABELS unit tools)
target_include_directories(test_tool_session_search PRIVATE ${PROJECT_SOURCE_DIR}/tests/unit/store)
target_compile_definitions(test_tool_session_search PRIVATE
                           ST_TEST_DATA="${PROJECT_SOURCE_DIR}/tests/data/store")
