# bench/io/lws.cmake: the WebSocket client and HTTP server benchmarks (rt_lws).
#   bench_ws            1,000 WebSocket connections: idle memory and echo throughput
#   bench_httpd_server  our HTTP server answering "ok" from an actor, for bench_httpd.sh
add_executable(bench_ws ${CMAKE_CURRENT_LIST_DIR}/bench_ws.c)
target_include_directories(bench_ws PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../rt)
target_link_libraries(bench_ws PRIVATE rt_lws PkgConfig::LWS hermes_warnings)
add_executable(bench_httpd_server ${CMAKE_CURRENT_LIST_DIR}/bench_httpd_server.c)
target_include_directories(bench_httpd_server PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../rt)
target_link_libraries(bench_httpd_server PRIVATE rt_lws hermes_warnings)
