/*
 * bench/bench_heartbeats.c — the cost of many heartbeat monitors on
 * `meerkat serve` (issue 6: "10,000 heartbeat monitors pushing every 10 s
 * keep the server under 5 % of one core and under 100 MiB resident").
 *
 *   bench_heartbeats --serve BUILD/meerkat [--monitors 10000] [--period 10]
 *                    [--warmup 10] [--seconds 60] [--conns 4] [--repeat 3]
 *                    [--variant both|monitors|rules]
 *
 * For each variant and repeat: writes a config with --monitors Uptime Kuma
 * push monitors (m0..mN-1, tokens t0..tN-1) and, in the "rules" variant, one
 * heartbeat rule per monitor (period = --period, grace 5 s); starts a fresh
 * `meerkat serve` on an empty data directory and a free loopback port;
 * pushes one `GET /api/push/tK?status=up&ping=12` per monitor every --period
 * seconds, spread evenly over the period (N / period requests/s), over
 * --conns keep-alive connections (server/httpc.c), each thread sending its
 * share on an absolute schedule (a late thread catches up without sleeping,
 * so the offered rate stays fixed). After --warmup seconds the window of
 * --seconds starts: the server's CPU is utime+stime of /proc/PID/stat over
 * the window (% of one core), its memory VmRSS sampled every 100 ms (max in
 * the window) and VmHWM at the end (peak since start); the pusher's own CPU
 * is getrusage(RUSAGE_SELF) over the same window. Any answer other than 200
 * or a network error counts as an error. The server is stopped with SIGTERM
 * by its PID. Prints every run and the medians.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "httpc.h"

typedef struct push {
    const char *host;
    unsigned port;
    int n_monitors;
    int n_conns;
    int conn;                       /* this thread sends global beats j with j % n_conns == conn */
    double t0_s, win_start_s, end_s; /* CLOCK_MONOTONIC */
    double period_s;
    /* counted only for beats sent inside [win_start_s, end_s) */
    uint64_t n_requests, n_errors;
    double max_lag_s;               /* worst lateness of a send against its schedule, in the window */
    char first_error[256];
} push;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t_s)
{
    struct timespec ts;
    ts.tv_sec = (time_t)t_s;
    ts.tv_nsec = (long)((t_s - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
}

static void *pusher(void *arg)
{
    push *p = arg;
    mk_httpc c;
    mk_httpc_init(&c, p->host, p->port);
    c.timeout_ms = 10000;
    double step_s = p->period_s / (double)p->n_monitors; /* between consecutive beats, all threads */
    for (uint64_t j = (uint64_t)p->conn;; j += (uint64_t)p->n_conns) {
        double due_s = p->t0_s + (double)j * step_s;
        if (due_s >= p->end_s) break;
        if (now_s() < due_s) sleep_until(due_s);
        char target[96];
        snprintf(target, sizeof target, "/api/push/t%" PRIu64 "?status=up&ping=12", j % (uint64_t)p->n_monitors);
        double sent_s = now_s();
        mk_httpc_resp r;
        int rc = mk_httpc_request(&c, "GET", target, NULL, NULL, 0, &r);
        int is_in_window = due_s >= p->win_start_s;
        if (is_in_window) {
            p->n_requests++;
            if (sent_s - due_s > p->max_lag_s) p->max_lag_s = sent_s - due_s;
        }
        if (rc != 0 || r.status != 200) {
            if (is_in_window) p->n_errors++;
            if (!p->first_error[0])
                snprintf(p->first_error, sizeof p->first_error, "status %d: %.200s", rc ? -1 : r.status,
                         rc ? "no answer" : r.body);
        }
        if (rc == 0) mk_httpc_resp_free(&r);
    }
    mk_httpc_close(&c);
    return NULL;
}

static pid_t start_server(const char *bin, const char *dir, const char *config, const char *log, unsigned *port)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        close(fd);
        execl(bin, bin, "serve", "--config", config, "--data", dir, "--listen", "127.0.0.1:0", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 6000; i++) {
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

/* utime + stime of pid in seconds, or -1. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces */
    if (!p) return -1;
    unsigned long ut = 0, st = 0;
    /* after ")": state(3) ... utime is field 14, stime 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Vm...:" line of /proc/pid/status in KiB, or -1. */
static long proc_status_kib(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = atol(line + kl + 1);
            break;
        }
    fclose(f);
    return v;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static int write_config(const char *path, int n_monitors, int has_rules, int period_s)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "monitors:\n");
    for (int i = 0; i < n_monitors; i++) fprintf(f, "  - {name: m%d, kind: kuma, token: t%d}\n", i, i);
    if (has_rules) {
        fprintf(f, "rules:\n");
        for (int i = 0; i < n_monitors; i++)
            fprintf(f,
                    "  - {name: hb-%d, kind: heartbeat, measurement: heartbeat, tags: {monitor: m%d}, "
                    "period: %ds, grace: 5s}\n",
                    i, i, period_s);
    }
    return fclose(f);
}

typedef struct result {
    double rps, server_cpu_pct, pusher_cpu_pct, rss_max_mib, hwm_mib, max_lag_ms, startup_s;
    uint64_t n_requests, n_errors;
} result;

static int run_once(const char *bin, int has_rules, int n_monitors, int period_s, int warmup_s, int seconds,
                    int n_conns, result *res, char *first_error, size_t fe_cap)
{
    int status = 0;
    char dir[256], log[300], config[300], cmd[1024];
    snprintf(dir, sizeof dir, "/tmp/bench_heartbeats.%d", (int)getpid());
    snprintf(log, sizeof log, "%s.log", dir);
    snprintf(config, sizeof config, "%s.yaml", dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return -1;
    if (write_config(config, n_monitors, has_rules, period_s) != 0) return -1;
    unsigned port = 0;
    double t_start = now_s();
    pid_t pid = start_server(bin, dir, config, log, &port);
    if (pid <= 0) {
        fprintf(stderr, "server did not start (see %s)\n", log);
        return -1;
    }
    res->startup_s = now_s() - t_start;
    push *ps = calloc((size_t)n_conns, sizeof *ps);
    pthread_t *th = calloc((size_t)n_conns, sizeof *th);
    double t0 = now_s() + 0.05;
    for (int i = 0; i < n_conns; i++) {
        ps[i] = (push){.host = "127.0.0.1",
                       .port = port,
                       .n_monitors = n_monitors,
                       .n_conns = n_conns,
                       .conn = i,
                       .t0_s = t0,
                       .win_start_s = t0 + warmup_s,
                       .end_s = t0 + warmup_s + seconds,
                       .period_s = period_s};
        pthread_create(&th[i], NULL, pusher, &ps[i]);
    }
    sleep_until(t0 + warmup_s);
    double cpu0 = proc_cpu_s(pid), self0 = self_cpu_s(), w0 = now_s();
    long rss_max = 0;
    while (now_s() < t0 + warmup_s + seconds) {
        long rss = proc_status_kib(pid, "VmRSS");
        if (rss > rss_max) rss_max = rss;
        usleep(100000);
    }
    double cpu1 = proc_cpu_s(pid), self1 = self_cpu_s(), w1 = now_s();
    long hwm = proc_status_kib(pid, "VmHWM");
    for (int i = 0; i < n_conns; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < n_conns; i++) {
        res->n_requests += ps[i].n_requests;
        res->n_errors += ps[i].n_errors;
        if (ps[i].max_lag_s * 1e3 > res->max_lag_ms) res->max_lag_ms = ps[i].max_lag_s * 1e3;
        if (ps[i].first_error[0] && !first_error[0]) snprintf(first_error, fe_cap, "%s", ps[i].first_error);
    }
    res->rps = (double)res->n_requests / (double)seconds;
    res->server_cpu_pct = 100.0 * (cpu1 - cpu0) / (w1 - w0);
    res->pusher_cpu_pct = 100.0 * (self1 - self0) / (w1 - w0);
    res->rss_max_mib = (double)rss_max / 1024.0;
    res->hwm_mib = (double)hwm / 1024.0;
    if (cpu0 < 0 || cpu1 < 0 || hwm < 0) status = -1;
    kill(pid, SIGTERM);
    int ws = 0;
    waitpid(pid, &ws, 0);
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        fprintf(stderr, "server exited abnormally (status 0x%x; log %s)\n", ws, log);
        status = -1;
    } else {
        snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", dir, log, config);
        if (system(cmd) != 0) status = -1;
    }
    free(ps);
    free(th);
    return status;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    const char *serve = NULL, *variant = "both";
    int n_monitors = 10000, period_s = 10, warmup_s = 10, seconds = 60, n_conns = 4, repeat = 3;
    static const struct option opts[] = {{"serve", 1, 0, 's'},   {"monitors", 1, 0, 'm'}, {"period", 1, 0, 'p'},
                                         {"warmup", 1, 0, 'w'},  {"seconds", 1, 0, 't'},  {"conns", 1, 0, 'c'},
                                         {"repeat", 1, 0, 'r'},  {"variant", 1, 0, 'v'},  {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 's': serve = optarg; break;
        case 'm': n_monitors = atoi(optarg); break;
        case 'p': period_s = atoi(optarg); break;
        case 'w': warmup_s = atoi(optarg); break;
        case 't': seconds = atoi(optarg); break;
        case 'c': n_conns = atoi(optarg); break;
        case 'r': repeat = atoi(optarg); break;
        case 'v': variant = optarg; break;
        default: return 2;
        }
    }
    int do_mon = strcmp(variant, "both") == 0 || strcmp(variant, "monitors") == 0;
    int do_rules = strcmp(variant, "both") == 0 || strcmp(variant, "rules") == 0;
    if (!serve || n_monitors < 1 || period_s < 1 || warmup_s < 0 || seconds < 1 || n_conns < 1 || n_conns > 256 ||
        repeat < 1 || (!do_mon && !do_rules)) {
        fprintf(stderr, "usage: bench_heartbeats --serve MEERKAT_BIN [--monitors N] [--period S] [--warmup S]\n"
                        "       [--seconds S] [--conns N] [--repeat R] [--variant both|monitors|rules]\n");
        return 2;
    }
    printf("%d kuma monitors, one beat each every %d s (%.0f req/s offered) over %d connections; "
           "%d s warm-up, %d s window\n",
           n_monitors, period_s, (double)n_monitors / period_s, n_conns, warmup_s, seconds);
    int status = 0;
    for (int v = 0; v < 2; v++) {
        if ((v == 0 && !do_mon) || (v == 1 && !do_rules)) continue;
        const char *name = v ? "monitors + heartbeat rules" : "monitors only";
        double *rps = calloc((size_t)repeat, sizeof *rps), *cpu = calloc((size_t)repeat, sizeof *cpu);
        double *pcpu = calloc((size_t)repeat, sizeof *pcpu), *rss = calloc((size_t)repeat, sizeof *rss);
        double *hwm = calloc((size_t)repeat, sizeof *hwm);
        uint64_t errors = 0;
        for (int r = 0; r < repeat; r++) {
            result res = {0};
            char first_error[256] = "";
            if (run_once(serve, v, n_monitors, period_s, warmup_s, seconds, n_conns, &res, first_error,
                         sizeof first_error) != 0)
                status = 1;
            printf("[%s] run %d: start-up %.2f s, %" PRIu64 " requests in window = %.1f req/s, %" PRIu64
                   " errors%s%s, max send lag %.1f ms; server CPU %.2f %% of one core, RSS max %.1f MiB, "
                   "VmHWM %.1f MiB; pusher CPU %.2f %%\n",
                   name, r + 1, res.startup_s, res.n_requests, res.rps, res.n_errors, first_error[0] ? ", first: " : "",
                   first_error, res.max_lag_ms, res.server_cpu_pct, res.rss_max_mib, res.hwm_mib, res.pusher_cpu_pct);
            fflush(stdout);
            rps[r] = res.rps;
            cpu[r] = res.server_cpu_pct;
            pcpu[r] = res.pusher_cpu_pct;
            rss[r] = res.rss_max_mib;
            hwm[r] = res.hwm_mib;
            errors += res.n_errors;
        }
        printf("[%s] median of %d: %.1f req/s, %" PRIu64 " errors total, server CPU %.2f %%, RSS max %.1f MiB, "
               "VmHWM %.1f MiB, pusher CPU %.2f %%\n",
               name, repeat, median(rps, repeat), errors, median(cpu, repeat), median(rss, repeat),
               median(hwm, repeat), median(pcpu, repeat));
        if (errors) status = 1;
        free(rps);
        free(cpu);
        free(pcpu);
        free(rss);
        free(hwm);
    }
    return status;
}
