/*
 * bench/bench_http.c — HTTP ingest load client for `meerkat serve`.
 *
 *   bench_http --file FLEET.lp [--conns 2] [--batch 5000] [--repeat 3]
 *              (--serve BUILD/meerkat [--serve-args "..."] | --addr 127.0.0.1:8086)
 *              [--path "/write?db=bench&precision=s"] [--bearer KEY]
 *
 * The file is loaded into memory and cut into batches of --batch lines
 * before the clock starts; --conns threads, each with one keep-alive
 * connection (server/httpc.c), take the next batch in turn and POST it. The
 * time runs from the first request to the last response, as the peers
 * harness's lp_send.py measures. Samples = numeric and boolean field values
 * in the file (string fields counted too: the server rejects them, and a
 * rejected request counts as an error).
 *
 * With --serve, each repeat starts a fresh `meerkat serve` over an empty
 * data directory on a free loopback port, loads, then stops it with SIGTERM
 * (whose flush is not timed). Reports every run and the median.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "httpc.h"

typedef struct batch {
    const char *p;
    size_t n;
} batch;

typedef struct load {
    const char *host;
    unsigned port;
    const char *path;
    char headers[512];
    batch *batches;
    size_t n_batches;
    atomic_size_t next;
    atomic_uint_fast64_t n_errors, n_requests;
    char first_error[512];
    pthread_mutex_t mu;
} load;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *sender(void *arg)
{
    load *l = arg;
    mk_httpc c;
    mk_httpc_init(&c, l->host, l->port);
    c.timeout_ms = 120000;
    for (;;) {
        size_t i = atomic_fetch_add(&l->next, 1);
        if (i >= l->n_batches) break;
        mk_httpc_resp r;
        atomic_fetch_add(&l->n_requests, 1);
        int rc = mk_httpc_request(&c, "POST", l->path, l->headers, l->batches[i].p, l->batches[i].n, &r);
        if (rc != 0 || r.status / 100 != 2) {
            atomic_fetch_add(&l->n_errors, 1);
            pthread_mutex_lock(&l->mu);
            if (!l->first_error[0])
                snprintf(l->first_error, sizeof l->first_error, "status %d: %.400s", rc ? -1 : r.status,
                         rc ? "no answer" : r.body);
            pthread_mutex_unlock(&l->mu);
        }
        mk_httpc_resp_free(&r);
    }
    mk_httpc_close(&c);
    return NULL;
}

/* Field values on one line: commas outside quotes in the field set + 1. */
static uint64_t count_fields(const char *p, const char *end)
{
    if (p == end || *p == '#') return 0;
    const char *q = p;
    while (q < end && !(*q == ' ' && q[-1] != '\\')) q++; /* end of measurement,tags */
    if (q >= end) return 0;
    uint64_t n = 1;
    int in_str = 0;
    for (q++; q < end; q++) {
        if (*q == '\\') { q++; continue; }
        if (*q == '"') in_str = !in_str;
        else if (!in_str && *q == ',') n++;
        else if (!in_str && *q == ' ') break;
    }
    return n;
}

static pid_t start_server(const char *bin, const char *dir, const char *extra, const char *log, unsigned *port)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        close(fd);
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "exec '%s' serve --data '%s' --listen 127.0.0.1:0 %s", bin, dir, extra ? extra : "");
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 3000; i++) {
        FILE *f = fopen(log, "r");
        char line[1024];
        while (f && fgets(line, sizeof line, f)) {
            char *a = strstr(line, "addr=127.0.0.1:");
            if (a) {
                *port = (unsigned)atoi(a + 15);
                fclose(f);
                return pid;
            }
        }
        if (f) fclose(f);
        if (waitpid(pid, NULL, WNOHANG) == pid) return -1;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *file = NULL, *serve = NULL, *serve_args = "", *addr = "127.0.0.1:8086";
    const char *path = "/write?db=bench&precision=s", *bearer = NULL;
    int conns = 2, batch_lines = 5000, repeat = 3;
    static const struct option opts[] = {{"file", 1, 0, 'f'},  {"conns", 1, 0, 'c'},      {"batch", 1, 0, 'b'},
                                         {"repeat", 1, 0, 'r'}, {"serve", 1, 0, 's'},     {"serve-args", 1, 0, 'S'},
                                         {"addr", 1, 0, 'a'},   {"path", 1, 0, 'p'},      {"bearer", 1, 0, 'k'},
                                         {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'f': file = optarg; break;
        case 'c': conns = atoi(optarg); break;
        case 'b': batch_lines = atoi(optarg); break;
        case 'r': repeat = atoi(optarg); break;
        case 's': serve = optarg; break;
        case 'S': serve_args = optarg; break;
        case 'a': addr = optarg; break;
        case 'p': path = optarg; break;
        case 'k': bearer = optarg; break;
        default: return 2;
        }
    }
    if (!file || conns < 1 || batch_lines < 1 || repeat < 1) {
        fprintf(stderr, "usage: bench_http --file FILE.lp [--conns N] [--batch LINES] [--repeat R]\n"
                        "       (--serve MEERKAT_BIN [--serve-args ARGS] | --addr HOST:PORT) [--path P] [--bearer KEY]\n");
        return 2;
    }
    /* load and cut the file before any clock runs */
    FILE *f = fopen(file, "rb");
    if (!f) {
        perror(file);
        return 1;
    }
    struct stat st;
    fstat(fileno(f), &st);
    char *text = malloc((size_t)st.st_size + 1);
    size_t len = fread(text, 1, (size_t)st.st_size, f);
    fclose(f);
    size_t cap = 1024, nb = 0;
    batch *b = malloc(cap * sizeof *b);
    uint64_t n_samples = 0, n_lines = 0;
    size_t start = 0, pos = 0;
    int in_batch = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        n_samples += count_fields(text + pos, text + end);
        n_lines++;
        pos = end + 1;
        if (++in_batch == batch_lines || pos >= len) {
            if (nb == cap) b = realloc(b, (cap *= 2) * sizeof *b);
            b[nb++] = (batch){text + start, (pos > len ? len : pos) - start};
            start = pos;
            in_batch = 0;
        }
    }
    printf("file %s: %" PRIu64 " lines, %" PRIu64 " samples, %zu batches of %d lines, %d connections\n", file, n_lines,
           n_samples, nb, batch_lines, conns);
    double *rates = calloc((size_t)repeat, sizeof *rates);
    int status = 0;
    for (int r = 0; r < repeat; r++) {
        load l;
        memset(&l, 0, sizeof l);
        pthread_mutex_init(&l.mu, NULL);
        l.path = path;
        l.batches = b;
        l.n_batches = nb;
        if (bearer) snprintf(l.headers, sizeof l.headers, "Authorization: Bearer %s\r\n", bearer);
        char host[64] = "127.0.0.1";
        unsigned port = 0;
        pid_t pid = 0;
        char dir[256], log[300];
        if (serve) {
            snprintf(dir, sizeof dir, "/tmp/bench_http.%d", (int)getpid());
            snprintf(log, sizeof log, "%s.log", dir);
            char cmd[600];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
            if (system(cmd) != 0) return 1;
            pid = start_server(serve, dir, serve_args, log, &port);
            if (pid <= 0) {
                fprintf(stderr, "server did not start (see %s)\n", log);
                return 1;
            }
        } else {
            const char *colon = strrchr(addr, ':');
            snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
            port = (unsigned)atoi(colon + 1);
        }
        l.host = host;
        l.port = port;
        pthread_t th[64];
        int n_th = conns > 64 ? 64 : conns;
        double t0 = now_s();
        for (int i = 0; i < n_th; i++) pthread_create(&th[i], NULL, sender, &l);
        for (int i = 0; i < n_th; i++) pthread_join(th[i], NULL);
        double dt = now_s() - t0;
        rates[r] = (double)n_samples / dt;
        printf("run %d: %.3f s, %.0f samples/s, %" PRIu64 " requests, %" PRIu64 " errors%s%s\n", r + 1, dt, rates[r],
               (uint64_t)l.n_requests, (uint64_t)l.n_errors, l.first_error[0] ? ", first: " : "", l.first_error);
        if (l.n_errors) status = 1;
        if (pid > 0) {
            kill(pid, SIGTERM);
            int ws;
            waitpid(pid, &ws, 0);
            char cmd[600];
            snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, log);
            if (system(cmd) != 0) status = 1;
        }
        pthread_mutex_destroy(&l.mu);
    }
    qsort(rates, (size_t)repeat, sizeof *rates, cmp_double);
    printf("median: %.0f samples/s over %d runs\n", rates[repeat / 2], repeat);
    free(rates);
    free(b);
    free(text);
    return status;
}
