/*
 * server/httpc.h — a minimal blocking HTTP/1.1 client over one keep-alive
 * TCP connection, for the server's tests and bench/bench_http.c (so they
 * need no client library). Handles Content-Length and chunked responses.
 * One mk_httpc per thread.
 */
#ifndef MK_HTTPC_H
#define MK_HTTPC_H

#include <stddef.h>

typedef struct mk_httpc {
    int fd;             /* -1 when not connected */
    char host[64];
    unsigned port;
    int timeout_ms;     /* per read/write wait; default 30000 */
    char *rbuf;         /* owned: bytes read past the last response */
    size_t rlen, rcap;
} mk_httpc;

typedef struct mk_httpc_resp {
    int status;
    char *head;         /* owned: status line and headers, NUL-terminated */
    char *body;         /* owned: NUL-terminated (may hold NULs) */
    size_t body_len;
} mk_httpc_resp;

/* Prepares c for host:port (IPv4 literal); connects lazily. */
void mk_httpc_init(mk_httpc *c, const char *host, unsigned port);
void mk_httpc_close(mk_httpc *c);

/*
 * Sends one request (extra_headers: "Name: value\r\n" lines or NULL) and
 * reads the answer into *r (free with mk_httpc_resp_free). A stale
 * keep-alive connection is reopened once. Returns 0, or -1 on a network
 * error or timeout (then the connection is closed).
 */
int mk_httpc_request(mk_httpc *c, const char *method, const char *target, const char *extra_headers,
                     const void *body, size_t n, mk_httpc_resp *r);
void mk_httpc_resp_free(mk_httpc_resp *r);

/* Value of header name in r (case-insensitive), copied into out; 0 if found. */
int mk_httpc_header(const mk_httpc_resp *r, const char *name, char *out, size_t cap);

#endif
