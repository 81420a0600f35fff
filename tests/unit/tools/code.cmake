# execute_code (tools/code/): scripts through rt_proc, the RPC bridge to the file tools,
# limits, timeout, interrupt and a missing python3. Needs /usr/bin/python3.
hermes_add_test(NAME tool_code SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_code.c LIBS tools
                LABELS unit tools)
