/*
 * server/httpc.c — the minimal HTTP/1.1 client (see httpc.h).
 */
#include "httpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

void mk_httpc_init(mk_httpc *c, const char *host, unsigned port)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    snprintf(c->host, sizeof c->host, "%s", host);
    c->port = port;
    c->timeout_ms = 30000;
}

void mk_httpc_close(mk_httpc *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    free(c->rbuf);
    c->rbuf = NULL;
    c->rlen = c->rcap = 0;
}

static int do_connect(mk_httpc *c)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)c->port);
    if (inet_pton(AF_INET, c->host, &a.sin_addr) != 1) return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->rlen = 0;
    return 0;
}

static int wait_fd(mk_httpc *c, short ev)
{
    struct pollfd p = {.fd = c->fd, .events = ev};
    int r;
    do r = poll(&p, 1, c->timeout_ms);
    while (r < 0 && errno == EINTR);
    return r > 0 ? 0 : -1;
}

static int send_all(mk_httpc *c, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        if (wait_fd(c, POLLOUT) != 0) return -1;
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads more bytes into rbuf; 0 ok, -1 error or EOF. */
static int fill(mk_httpc *c)
{
    if (c->rlen + 65536 > c->rcap) {
        size_t cap = c->rcap ? c->rcap * 2 : 131072;
        while (cap < c->rlen + 65536) cap *= 2;
        char *nb = realloc(c->rbuf, cap + 1);
        if (!nb) return -1;
        c->rbuf = nb;
        c->rcap = cap;
    }
    if (wait_fd(c, POLLIN) != 0) return -1;
    ssize_t r;
    do r = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return -1;
    c->rlen += (size_t)r;
    return 0;
}

static void consume(mk_httpc *c, size_t n)
{
    memmove(c->rbuf, c->rbuf + n, c->rlen - n);
    c->rlen -= n;
}

int mk_httpc_header(const mk_httpc_resp *r, const char *name, char *out, size_t cap)
{
    if (!r->head) return -1;
    size_t nl = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p && p[2]) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') v++;
            const char *e = strstr(v, "\r\n");
            size_t len = e ? (size_t)(e - v) : strlen(v);
            if (len + 1 > cap) len = cap - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return 0;
        }
        p = strstr(p, "\r\n");
    }
    return -1;
}

static int read_response(mk_httpc *c, int is_head, mk_httpc_resp *r)
{
    char *end;
    for (;;) {
        if (c->rlen) {
            c->rbuf[c->rlen] = '\0';
            if ((end = strstr(c->rbuf, "\r\n\r\n"))) break;
        }
        if (fill(c) != 0) return -1;
    }
    size_t hlen = (size_t)(end - c->rbuf) + 4;
    r->head = malloc(hlen + 1);
    if (!r->head) return -1;
    memcpy(r->head, c->rbuf, hlen);
    r->head[hlen] = '\0';
    consume(c, hlen);
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1) return -1;
    char v[64];
    size_t need = 0;
    int is_chunked = mk_httpc_header(r, "Transfer-Encoding", v, sizeof v) == 0 && strcasecmp(v, "chunked") == 0;
    int has_len = mk_httpc_header(r, "Content-Length", v, sizeof v) == 0;
    if (has_len) need = (size_t)strtoull(v, NULL, 10);
    if (is_head || r->status == 204 || r->status == 304 || (r->status >= 100 && r->status < 200)) {
        need = 0;
        is_chunked = 0;
        has_len = 1;
    }
    size_t cap = need + 1, len = 0;
    r->body = malloc(cap);
    if (!r->body) return -1;
    if (!is_chunked) {
        if (!has_len) return -1; /* close-delimited bodies are not used by the server */
        while (c->rlen < need)
            if (fill(c) != 0) return -1;
        memcpy(r->body, c->rbuf, need);
        len = need;
        consume(c, need);
    } else {
        for (;;) {
            char *eol;
            for (;;) {
                c->rbuf[c->rlen] = '\0';
                if (c->rlen && (eol = strstr(c->rbuf, "\r\n"))) break;
                if (fill(c) != 0) return -1;
                if (c->rbuf == NULL) return -1;
            }
            size_t sz = (size_t)strtoull(c->rbuf, NULL, 16);
            consume(c, (size_t)(eol - c->rbuf) + 2);
            while (c->rlen < sz + 2)
                if (fill(c) != 0) return -1;
            if (sz == 0) {
                /* no trailers expected: the final CRLF */
                consume(c, 2);
                break;
            }
            if (len + sz + 1 > cap) {
                cap = (len + sz + 1) * 2;
                char *nb = realloc(r->body, cap);
                if (!nb) return -1;
                r->body = nb;
            }
            memcpy(r->body + len, c->rbuf, sz);
            len += sz;
            consume(c, sz + 2);
        }
    }
    r->body[len] = '\0';
    r->body_len = len;
    return 0;
}

int mk_httpc_request(mk_httpc *c, const char *method, const char *target, const char *extra_headers,
                     const void *body, size_t n, mk_httpc_resp *r)
{
    memset(r, 0, sizeof *r);
    char head[8192];
    int hl = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s:%u\r\n%sContent-Length: %zu\r\n\r\n",
                      method, target, c->host, c->port, extra_headers ? extra_headers : "", n);
    if (hl < 0 || (size_t)hl >= sizeof head) return -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        int was_open = c->fd >= 0;
        if (!was_open && do_connect(c) != 0) return -1;
        /* A body send may fail when the server answered early (413) and
         * closed: the answer is still there to read. */
        if (send_all(c, head, (size_t)hl) == 0) {
            int body_ok = n == 0 || send_all(c, body, n) == 0;
            if (read_response(c, strcmp(method, "HEAD") == 0, r) == 0) {
                if (!body_ok) mk_httpc_close(c);
                return 0;
            }
        }
        mk_httpc_resp_free(r);
        if (c->fd >= 0) close(c->fd);
        c->fd = -1;
        c->rlen = 0;
        if (!was_open) return -1; /* a fresh connection failed: do not retry */
    }
    return -1;
}

void mk_httpc_resp_free(mk_httpc_resp *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}
