# bench_http: 10,000 HTTP requests in flight at once through the reactor (see bench_http.c).
add_executable(bench_http ${CMAKE_CURRENT_LIST_DIR}/bench_http.c)
target_include_directories(bench_http PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../rt)
target_link_libraries(bench_http PRIVATE rt_http hermes_warnings)
