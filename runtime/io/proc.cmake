# Subprocesses (rt_proc) and signals (rt_signal) on the reactor.
add_library(rt_proc STATIC
  ${CMAKE_CURRENT_LIST_DIR}/rt_proc.c
  ${CMAKE_CURRENT_LIST_DIR}/rt_signal.c
)
target_include_directories(rt_proc PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(rt_proc PUBLIC rt_reactor PRIVATE hermes_warnings)
