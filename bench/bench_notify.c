/*
 * bench/bench_notify.c — notification figures of issue 7.
 *
 *   bench_notify --serve BUILD/meerkat [--events 1000] [--storm 5000] [--tmp DIR]
 *
 * 1. Alert latency: a fresh `meerkat serve` with one threshold rule
 *    (v > 10 on measurement m, interval 10 s, so only the write path's
 *    kick makes it judge at once), a route with group_by [id] and
 *    group_wait 0, a webhook to a loopback receiver in this process
 *    (tests/notify/recv.h). For each of --events events: write
 *    `m,id=N v=50` and take the time the 204 arrived; the latency is until
 *    the receiver has read the whole webhook request carrying it. Events are
 *    sequential (each waits for its webhook). Prints p50/p90/p99/max.
 * 2. Outage storm: another fresh server, route group_by [alertname],
 *    group_wait 1 s, group_interval 5 s; --storm series fire in one write
 *    (5 writes of 1,000 lines). Reports the messages the receiver got, the
 *    distinct alerts in them (must be --storm: none lost), the time from the
 *    last 204 to the last alert received (drain), and the server's peak RSS
 *    (VmHWM of /proc/PID/status).
 * The server runs on a free loopback port and is stopped by its PID.
 */
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tests/integration/test_server_util.h"
#include "../tests/notify/recv.h"

static const char *g_tmp = "/tmp";

static int start_server(srv *s, const char *name, const char *cfg_text)
{
    char dir[1024], cfg[1100], cmd[1200];
    snprintf(dir, sizeof dir, "%s/bench-notify-%s-%d", g_tmp, name, (int)getpid());
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return -1;
    snprintf(cfg, sizeof cfg, "%s.yaml", dir);
    FILE *f = fopen(cfg, "w");
    if (!f) return -1;
    fputs(cfg_text, f);
    fclose(f);
    return srv_start(s, dir, cfg, NULL);
}

static int post(unsigned port, const char *lp)
{
    mk_httpc c;
    mk_httpc_resp r;
    mk_httpc_init(&c, "127.0.0.1", port);
    int st = -1;
    if (mk_httpc_request(&c, "POST", "/write?db=b&precision=ms", NULL, lp, strlen(lp), &r) == 0) {
        st = r.status;
        mk_httpc_resp_free(&r);
    }
    mk_httpc_close(&c);
    return st;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static long long now_ms(void) { return (long long)(recv_now_s() * 1000); }

static long vm_hwm_kib(pid_t pid)
{
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "r");
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) v = atol(line + 6);
    if (f) fclose(f);
    return v;
}

static int latency(int events)
{
    recv_srv r;
    if (recv_start(&r, 0) != 0) return 1;
    char cfg[1200];
    snprintf(cfg, sizeof cfg,
             "rules:\n  - {name: lat, kind: threshold, measurement: m, field: v, expr: \"v > 10\", interval: 10s}\n"
             "channels:\n  - {name: hook, kind: webhook, url: 'http://127.0.0.1:%u/hook'}\n"
             "routes:\n  - {channels: [hook], group_by: [id], group_wait: 0s}\n",
             r.port);
    srv s;
    if (start_server(&s, "lat", cfg) != 0) {
        fprintf(stderr, "server did not start\n");
        return 1;
    }
    double *lat = calloc((size_t)events, sizeof *lat);
    int n_lost = 0;
    for (int i = 0; i < events; i++) {
        char lp[128];
        snprintf(lp, sizeof lp, "m,id=%d v=50 %lld\n", i, now_ms());
        if (post(s.port, lp) != 204) {
            fprintf(stderr, "write %d refused\n", i);
            n_lost++;
            continue;
        }
        double t204 = recv_now_s();
        double deadline = t204 + 10;
        while (recv_count(&r, NULL) < (size_t)(i + 1 - n_lost) && recv_now_s() < deadline) {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
        if (recv_count(&r, NULL) < (size_t)(i + 1 - n_lost)) {
            fprintf(stderr, "event %d: no webhook within 10 s\n", i);
            n_lost++;
            continue;
        }
        pthread_mutex_lock(&r.mu);
        lat[i - n_lost] = (r.reqs[r.n - 1].t_s - t204) * 1000;
        pthread_mutex_unlock(&r.mu);
    }
    int n = events - n_lost;
    qsort(lat, (size_t)n, sizeof *lat, cmp_d);
    printf("alert latency, write 204 -> webhook received (group_wait 0), %d events (%d lost):\n", events, n_lost);
    if (n > 0)
        printf("  p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms\n", lat[n / 2], lat[(int)(n * 0.9)],
               lat[(int)(n * 0.99) < n ? (int)(n * 0.99) : n - 1], lat[n - 1]);
    free(lat);
    srv_stop(&s, SIGTERM, 30000);
    recv_stop(&r);
    return n_lost != 0;
}

/* Incidents firing now, from the server's /metrics; -1 on error. */
static long incidents_open(unsigned port)
{
    mk_httpc c;
    mk_httpc_resp r;
    mk_httpc_init(&c, "127.0.0.1", port);
    long n = -1;
    if (mk_httpc_request(&c, "GET", "/metrics", NULL, NULL, 0, &r) == 0) {
        const char *w = strstr(r.body, "meerkat_incidents_open{severity=\"warning\"} ");
        const char *k = strstr(r.body, "meerkat_incidents_open{severity=\"critical\"} ");
        if (w && k) n = atol(w + 43) + atol(k + 44);
        mk_httpc_resp_free(&r);
    }
    mk_httpc_close(&c);
    return n;
}

static int storm(int n_series)
{
    recv_srv r;
    if (recv_start(&r, 0) != 0) return 1;
    char cfg[1200];
    snprintf(cfg, sizeof cfg,
             "rules:\n  - {name: storm, kind: threshold, measurement: s, field: v, expr: \"v > 10\", interval: 10s}\n"
             "channels:\n  - {name: hook, kind: webhook, url: 'http://127.0.0.1:%u/hook'}\n"
             "routes:\n  - {channels: [hook], group_by: [alertname], group_wait: 1s, group_interval: 5s}\n",
             r.port);
    srv s;
    if (start_server(&s, "storm", cfg) != 0) {
        fprintf(stderr, "server did not start\n");
        return 1;
    }
    size_t cap = (size_t)n_series * 64 + 64;
    char *lp = malloc(cap);
    long long ts = now_ms();
    for (int base = 0; base < n_series; base += 1000) {
        size_t k = 0;
        for (int i = base; i < base + 1000 && i < n_series; i++)
            k += (size_t)snprintf(lp + k, cap - k, "s,id=%d v=50 %lld\n", i, ts);
        if (post(s.port, lp) != 204) fprintf(stderr, "storm write refused\n");
    }
    double t_written = recv_now_s();
    free(lp);
    char *seen = calloc((size_t)n_series, 1);
    int n_distinct = 0;
    size_t n_done = 0;
    double t_last = t_written, deadline = t_written + 120, t_fired = -1, t_probe = 0;
    while (n_distinct < n_series && recv_now_s() < deadline) {
        if (t_fired < 0 && recv_now_s() - t_probe > 0.1) {
            t_probe = recv_now_s();
            if (incidents_open(s.port) >= n_series) t_fired = t_probe - t_written;
        }
        size_t n = recv_count(&r, NULL);
        for (; n_done < n; n_done++) {
            char *b = recv_body(&r, NULL, n_done);
            json_t *o = json_loads(b, 0, NULL);
            free(b);
            json_t *al = json_object_get(o, "alerts");
            for (size_t i = 0; i < json_array_size(al); i++) {
                const char *id = json_string_value(json_object_get(json_object_get(json_array_get(al, i), "labels"), "id"));
                int v = id ? atoi(id) : -1;
                if (v >= 0 && v < n_series && !seen[v]) {
                    seen[v] = 1;
                    n_distinct++;
                }
            }
            json_decref(o);
            pthread_mutex_lock(&r.mu);
            t_last = r.reqs[n_done].t_s;
            pthread_mutex_unlock(&r.mu);
        }
        struct timespec sl = {0, 5000000};
        nanosleep(&sl, NULL);
    }
    long hwm = vm_hwm_kib(s.pid);
    if (t_fired < 0 && incidents_open(s.port) >= n_series) t_fired = recv_now_s() - t_written;
    printf("outage storm: %d series firing at once -> %zu webhook messages, %d distinct alerts delivered (%d lost),\n"
           "  drained %.2f s after the last write's 204 (all %d incidents open after %.2f s: the rule engine's\n"
           "  fsynced incident log), server peak RSS %.1f MiB\n",
           n_series, n_done, n_distinct, n_series - n_distinct, t_last - t_written, n_series, t_fired, hwm / 1024.0);
    free(seen);
    srv_stop(&s, SIGTERM, 30000);
    recv_stop(&r);
    return n_distinct != n_series;
}

int main(int argc, char **argv)
{
    int events = 1000, n_storm = 5000;
    static struct option opts[] = {{"serve", required_argument, 0, 's'}, {"events", required_argument, 0, 'e'},
                                   {"storm", required_argument, 0, 'n'}, {"tmp", required_argument, 0, 't'},
                                   {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 's') setenv("MK_BIN", optarg, 1);
        else if (ch == 'e') events = atoi(optarg);
        else if (ch == 'n') n_storm = atoi(optarg);
        else if (ch == 't') g_tmp = optarg;
        else {
            fprintf(stderr, "usage: bench_notify --serve BUILD/meerkat [--events 1000] [--storm 5000] [--tmp DIR]\n");
            return 2;
        }
    }
    if (!getenv("MK_BIN")) {
        fprintf(stderr, "bench_notify: --serve BUILD/meerkat is required\n");
        return 2;
    }
    int rc = 0;
    if (events > 0) rc |= latency(events);
    if (n_storm > 0) rc |= storm(n_storm);
    return rc;
}
