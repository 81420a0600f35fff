# bench_proc: subprocess spawn rate through rt_proc (RESULT bench=proc_spawn).
add_executable(bench_proc ${CMAKE_CURRENT_LIST_DIR}/bench_proc.c)
target_link_libraries(bench_proc PRIVATE rt_proc hermes_warnings)
