# tests/unit/io/lws.cmake: the WebSocket client and HTTP server tests (rt_lws). The helpers
# (a scripted WebSocket server, a raw HTTP client, a recording actor) are test code only.
add_library(lws_testlib STATIC lws_testsrv.c lws_httpc.c lws_sink.c)
target_link_libraries(lws_testlib PUBLIC rt_lws OpenSSL::SSL OpenSSL::Crypto
                      PRIVATE hermes_warnings)
hermes_add_test(NAME io_ws SOURCES test_ws.c LIBS lws_testlib LABELS unit runtime io)
hermes_add_test(NAME io_httpd SOURCES test_httpd.c LIBS lws_testlib CURL::libcurl
                LABELS unit runtime io)
