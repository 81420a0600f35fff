# The HTTP client and the SSE parser. The HTTP tests run their own loopback servers
# (plain, TLS with a CA made at test time by the openssl CLI, and a proxy).
hermes_add_test(NAME io_sse SOURCES test_sse.c LIBS rt_http LABELS unit runtime io)
hermes_add_test(NAME io_http SOURCES test_http.c http_server.c LIBS rt_http OpenSSL::SSL
                LABELS unit runtime io)
