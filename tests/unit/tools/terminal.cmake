# terminal and process tools (tools/terminal/): pure modules, then the tools on a runtime.
hermes_add_test(NAME tool_terminal_redact SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_terminal_redact.c
                LIBS tools LABELS unit tools)
hermes_add_test(NAME tool_terminal_approval
                SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_terminal_approval.c LIBS tools
                LABELS unit tools)
hermes_add_test(NAME tool_terminal_backend
                SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_terminal_backend.c LIBS tools
                LABELS unit tools)
# test_terminal_harness.c is #included by the next two.
hermes_add_test(NAME tool_terminal SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_terminal_tool.c
                LIBS tools LABELS unit tools)
hermes_add_test(NAME tool_terminal_ssh SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_terminal_ssh.c
                LIBS tools LABELS unit tools)
