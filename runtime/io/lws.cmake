# runtime/io/lws.cmake: the libwebsockets service thread, the WebSocket client and the HTTP
# server (one library: they share the service thread and its lws context).
add_library(rt_lws STATIC rt_lws.c rt_ws.c rt_httpd.c rt_httpd_parse.c)
target_include_directories(rt_lws PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(rt_lws PUBLIC rt PRIVATE PkgConfig::LWS hermes_warnings)
