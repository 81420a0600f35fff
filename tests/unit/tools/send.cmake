# send_message: targets and the channel directory, and the tool against a gateway double.
hermes_add_test(NAME tool_send SOURCES test_send.c LIBS tools LABELS unit tools actors)
target_include_directories(test_tool_send PRIVATE ${PROJECT_SOURCE_DIR}/actors/gateway)
