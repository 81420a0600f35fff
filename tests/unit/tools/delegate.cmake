hermes_add_test(NAME tool_delegate SOURCES test_delegate.c LIBS agent tools
                LABELS unit tools actors)
