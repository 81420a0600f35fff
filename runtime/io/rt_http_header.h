/*
 * rt_http_header — one HTTP header as carried in messages of the HTTP client, the HTTP
 * server and the WebSocket client. Both strings are NUL-terminated and borrowed from the
 * message that carries them (names keep the peer's spelling; HTTP/2 names are lower case).
 */
#ifndef RT_HTTP_HEADER_H
#define RT_HTTP_HEADER_H

typedef struct rt_http_header {
    const char *name;
    const char *value; /* leading and trailing blanks removed */
} rt_http_header;

#endif /* RT_HTTP_HEADER_H */
