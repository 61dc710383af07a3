/*
 * tests/notify/recv.h — a loopback HTTP receiver for the notification
 * tests (header-only: each test binary is one .c file). One thread accepts
 * on 127.0.0.1:<ephemeral>, reads each request (request line, headers,
 * Content-Length body), records it and answers with the status the test
 * set (fail_next: that many requests get 500 first; status: the answer
 * after that). Connection: close after each answer. Written from the HTTP/1.1
 * message syntax, independent of notify/'s own code.
 */
#ifndef MK_TEST_NOTIFY_RECV_H
#define MK_TEST_NOTIFY_RECV_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct recv_req {
    char method[16];
    char path[256];
    char *headers; /* owned */
    char *body;    /* owned, NUL-terminated */
    size_t n_body;
    double t_s;    /* CLOCK_REALTIME when the body was complete */
} recv_req;

typedef struct recv_srv {
    int fd;
    unsigned port;
    pthread_t th;
    pthread_mutex_t mu;
    int is_stopping;
    int fail_next;   /* answer 500 to this many requests first */
    int status;      /* then this (default 200) */
    int is_down;     /* answer nothing: close at once */
    recv_req *reqs;
    size_t n, cap;
} recv_srv;

static inline double recv_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void recv_serve_one(recv_srv *r, int c)
{
    char *buf = malloc(16 << 20); /* a storm's grouped message can be megabytes */
    size_t n = 0, cap = (16 << 20) - 1;
    size_t head_end = 0, need = 0;
    int is_bad = 0;
    while (!is_bad && n < cap) {
        struct pollfd p = {c, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0) { is_bad = 1; break; }
        ssize_t k = read(c, buf + n, cap - n);
        if (k <= 0) { is_bad = 1; break; }
        n += (size_t)k;
        buf[n] = 0;
        if (!head_end) {
            char *e = strstr(buf, "\r\n\r\n");
            if (!e) continue;
            head_end = (size_t)(e - buf) + 4;
            char *cl = strcasestr(buf, "\r\ncontent-length:");
            need = cl && cl < e ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
        }
        if (head_end && n >= head_end + need) break;
    }
    pthread_mutex_lock(&r->mu);
    int code = r->fail_next > 0 ? 500 : r->status;
    if (r->fail_next > 0) r->fail_next--;
    int is_down = r->is_down;
    if (!is_bad && head_end && !is_down) {
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 64;
            r->reqs = realloc(r->reqs, r->cap * sizeof *r->reqs);
        }
        recv_req *q = &r->reqs[r->n++];
        memset(q, 0, sizeof *q);
        sscanf(buf, "%15s %255s", q->method, q->path);
        q->headers = strndup(buf, head_end);
        q->body = strndup(buf + head_end, need);
        q->n_body = need;
        q->t_s = recv_now_s();
    }
    pthread_mutex_unlock(&r->mu);
    if (!is_down) {
        char resp[200];
        int k = snprintf(resp, sizeof resp, "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", code);
        ssize_t w = write(c, resp, (size_t)k);
        (void)w;
    }
    free(buf);
    close(c);
}

static inline void *recv_main(void *arg)
{
    recv_srv *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int stop = r->is_stopping;
        pthread_mutex_unlock(&r->mu);
        if (stop) break;
        struct pollfd p = {r->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept(r->fd, NULL, NULL);
        if (c >= 0) recv_serve_one(r, c);
    }
    return NULL;
}

/* Starts a receiver on 127.0.0.1 (port 0 = any); 0 on success. */
static inline int recv_start(recv_srv *r, unsigned port)
{
    memset(r, 0, sizeof *r);
    r->status = 200;
    pthread_mutex_init(&r->mu, NULL);
    r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(r->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (bind(r->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(r->fd, 64) != 0) return -1;
    socklen_t al = sizeof a;
    getsockname(r->fd, (struct sockaddr *)&a, &al);
    r->port = ntohs(a.sin_port);
    return pthread_create(&r->th, NULL, recv_main, r) == 0 ? 0 : -1;
}

static inline void recv_stop(recv_srv *r)
{
    pthread_mutex_lock(&r->mu);
    r->is_stopping = 1;
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->th, NULL);
    close(r->fd);
    for (size_t i = 0; i < r->n; i++) {
        free(r->reqs[i].headers);
        free(r->reqs[i].body);
    }
    free(r->reqs);
    pthread_mutex_destroy(&r->mu);
}

/* Requests recorded so far whose path is path (NULL = any). */
static inline size_t recv_count(recv_srv *r, const char *path)
{
    size_t k = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++) k += !path || !strcmp(r->reqs[i].path, path);
    pthread_mutex_unlock(&r->mu);
    return k;
}

/* Copy of the body of the i-th request to path (malloc'ed) or NULL. */
static inline char *recv_body(recv_srv *r, const char *path, size_t i)
{
    char *out = NULL;
    pthread_mutex_lock(&r->mu);
    for (size_t j = 0; j < r->n; j++)
        if (!path || !strcmp(r->reqs[j].path, path)) {
            if (i-- == 0) {
                out = strdup(r->reqs[j].body);
                break;
            }
        }
    pthread_mutex_unlock(&r->mu);
    return out;
}

static inline void recv_set(recv_srv *r, int fail_next, int status, int is_down)
{
    pthread_mutex_lock(&r->mu);
    r->fail_next = fail_next;
    r->status = status;
    r->is_down = is_down;
    pthread_mutex_unlock(&r->mu);
}

#endif
