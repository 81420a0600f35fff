# The asynchronous HTTP client (libcurl multi on the reactor) and the SSE parser.
add_library(rt_http STATIC rt_http.c rt_sse.c)
target_include_directories(rt_http PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(rt_http PUBLIC rt_reactor CURL::libcurl PRIVATE hermes_warnings)
