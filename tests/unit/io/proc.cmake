# Subprocess and signal tests (runtime/io/rt_proc, rt_signal).
hermes_add_test(NAME io_proc SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_proc.c LIBS rt_proc
                LABELS unit runtime io)
hermes_add_test(NAME io_signal SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_signal.c LIBS rt_proc
                LABELS unit runtime io)
