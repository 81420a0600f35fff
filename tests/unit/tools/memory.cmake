# The memory tool: the format, the locked operations, the tool (and concurrent writers), and
# the frozen snapshot through a real session.
hermes_add_test(NAME tool_memory SOURCES test_memory.c LIBS tools LABELS unit tools)
hermes_add_test(NAME tool_memory_snapshot SOURCES test_memory_snapshot.c LIBS agent tools
                LABELS unit tools)
