/*
 * tests/integration/test_server_util.h — starting and stopping the real `meerkat
 * serve` ($MK_BIN) for the server's integration and crash tests. Header-only
 * (static functions) so each test binary is one .c file as CMake expects.
 *
 * The server is started on 127.0.0.1 port 0 and the port it picked is read
 * from its "listening addr=..." log line; it is then polled on /ping. Only
 * PIDs started here are ever signalled.
 */
#ifndef MK_TEST_SERVER_UTIL_H
#define MK_TEST_SERVER_UTIL_H

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "httpc.h"

typedef struct srv {
    pid_t pid;
    unsigned port;
    char log_path[4096];
} srv;

static inline const char *srv_bin(void)
{
    const char *b = getenv("MK_BIN");
    if (!b || !*b) {
        fprintf(stderr, "MK_BIN is not set (run through ctest)\n");
        exit(1);
    }
    return b;
}

static inline void srv_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reads the whole log file (malloc'ed, NUL-terminated). */
static inline char *srv_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)(n < 0 ? 0 : n) + 1);
    size_t got = fread(p, 1, (size_t)(n < 0 ? 0 : n), f);
    p[got] = '\0';
    fclose(f);
    return p;
}

/* Servers still running when the test process exits (a failed check
 * longjmps past srv_stop) are killed, so none outlives its test. */
static pid_t srv_live[16];

static inline void srv_kill_live(void)
{
    for (size_t i = 0; i < sizeof srv_live / sizeof srv_live[0]; i++)
        if (srv_live[i] > 0) {
            kill(srv_live[i], SIGKILL);
            waitpid(srv_live[i], NULL, 0);
            srv_live[i] = 0;
        }
}

static inline void srv_track(pid_t pid, pid_t replace)
{
    static int is_registered;
    if (!is_registered) {
        atexit(srv_kill_live);
        is_registered = 1;
    }
    for (size_t i = 0; i < sizeof srv_live / sizeof srv_live[0]; i++)
        if (srv_live[i] == replace) {
            srv_live[i] = pid;
            return;
        }
}

/* Starts `meerkat serve --data dir --listen 127.0.0.1:0 [--config cfg]`
 * with extra environment variable env ("K=V" or NULL). Returns 0 once /ping
 * answers 204, -1 if the server exited or did not come up within 20 s. */
static inline int srv_start(srv *s, const char *dir, const char *cfg, const char *env)
{
    memset(s, 0, sizeof *s);
    snprintf(s->log_path, sizeof s->log_path, "%s.serve.log", dir);
    /* the log is appended to across restarts: look only at this start's lines */
    char *before = srv_read_file(s->log_path);
    size_t log_off = strlen(before);
    free(before);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
            close(fd);
        }
        if (env) putenv((char *)env);
        else unsetenv("MEERKAT_API_KEYS");
        const char *args[10];
        int n = 0;
        args[n++] = srv_bin();
        args[n++] = "serve";
        args[n++] = "--data";
        args[n++] = dir;
        args[n++] = "--listen";
        args[n++] = "127.0.0.1:0";
        if (cfg) {
            args[n++] = "--config";
            args[n++] = cfg;
        }
        args[n] = NULL;
        execv(args[0], (char *const *)args);
        _exit(127);
    }
    s->pid = pid;
    srv_track(pid, 0);
    for (int i = 0; i < 2000; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            srv_track(0, pid);
            s->pid = 0;
            return -1;
        }
        if (!s->port) {
            char *log = srv_read_file(s->log_path);
            /* the last "listening" line of this start */
            char *p = log + (strlen(log) >= log_off ? log_off : 0), *hit = NULL;
            while ((p = strstr(p, "msg=\"listening\" addr=127.0.0.1:"))) hit = p++;
            if (hit) s->port = (unsigned)atoi(hit + strlen("msg=\"listening\" addr=127.0.0.1:"));
            free(log);
        }
        if (s->port) {
            mk_httpc c;
            mk_httpc_resp r;
            mk_httpc_init(&c, "127.0.0.1", s->port);
            c.timeout_ms = 2000;
            int ok = mk_httpc_request(&c, "GET", "/ping", NULL, NULL, 0, &r) == 0 && r.status == 204;
            mk_httpc_resp_free(&r);
            mk_httpc_close(&c);
            if (ok) return 0;
        }
        srv_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    srv_track(0, pid);
    s->pid = 0;
    return -1;
}

/* Sends sig and waits (SIGKILL after timeout_ms); returns the exit status,
 * 128 + signal when killed by one, -1 when it had to be killed. */
static inline int srv_stop(srv *s, int sig, int timeout_ms)
{
    if (!s->pid) return -1;
    kill(s->pid, sig);
    int st = 0;
    for (int waited = 0;; waited += 5) {
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid) break;
        if (waited >= timeout_ms) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
            srv_track(0, s->pid);
            s->pid = 0;
            return -1;
        }
        srv_sleep_ms(5);
    }
    srv_track(0, s->pid);
    s->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs MK_BIN with args (NULL-terminated, args[0] = sub-command) and
 * returns its stdout (malloc'ed) and exit status in *status. */
static inline char *srv_run(const char *const *args, int *status)
{
    int p[2];
    if (pipe(p) != 0) return NULL;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        const char *argv[32];
        int n = 0;
        argv[n++] = srv_bin();
        for (int i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
        argv[n] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t cap = 65536, len = 0;
    char *out = malloc(cap);
    for (;;) {
        if (len + 4096 > cap) out = realloc(out, cap *= 2);
        ssize_t r = read(p[0], out + len, cap - len - 1);
        if (r <= 0) break;
        len += (size_t)r;
    }
    out[len] = '\0';
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return out;
}

#endif
