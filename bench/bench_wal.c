/*
 * bench/bench_wal.c — WAL commit throughput per fsync policy.
 *
 * For each policy (always, interval 1000 ms, off), thread count (1, 4) and
 * payload size, committers loop on mk_wal_commit for a fixed time; the
 * figure is the median of 5 runs, in records/s and MB/s of payload, plus
 * records per fsync (group commit at work; "no fsync" when a run ended
 * before the interval thread's first tick). Numbers depend heavily on the
 * disk's fsync latency: run on an otherwise idle machine.
 *
 *   bench_wal [dir] [seconds-per-run]     (default /tmp, 0.5)
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "env.h"
#include "wal.h"

enum { N_RUNS = 5 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static atomic_uint_fast64_t g_fsyncs;
static int count_fsync(mk_env *e, int fd)
{
    (void)e;
    atomic_fetch_add(&g_fsyncs, 1);
    return mk_env_default()->fsync(mk_env_default(), fd);
}

typedef struct job {
    mk_wal *w;
    size_t payload_bytes;
    double until_s;
    uint64_t n;
    int has_error;
} job;

static void *committer(void *arg)
{
    job *j = arg;
    uint8_t *buf = malloc(j->payload_bytes);
    for (size_t i = 0; i < j->payload_bytes; i++) buf[i] = (uint8_t)(i * 7);
    while (now_s() < j->until_s) {
        for (int k = 0; k < 16; k++) {
            mk_diag d;
            if (mk_wal_commit(j->w, 2, buf, j->payload_bytes, NULL, &d)) {
                fprintf(stderr, "commit: %s\n", d.msg);
                j->has_error = 1;
                goto out;
            }
            j->n++;
        }
    }
out:
    free(buf);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void rmrf(const char *dir)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

/* One run: records/s, and records per fsync in *per_fsync. */
static double run_once(const char *root, mk_fsync_policy pol, int n_threads, size_t payload_bytes, double secs,
                       double *per_fsync, int *has_error)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/mk-bench-wal-%d", root, (int)getpid());
    rmrf(dir);
    mk_env env = *mk_env_default();
    env.fsync = count_fsync;
    mk_wal_opts o = {pol, 1000, 0, NULL, NULL};
    mk_wal *w;
    mk_diag d;
    if (mk_wal_open(&env, dir, &o, 1, &w, &d)) {
        fprintf(stderr, "open: %s\n", d.msg);
        exit(1);
    }
    atomic_store(&g_fsyncs, 0);
    pthread_t th[8];
    job jobs[8];
    double t0 = now_s();
    for (int i = 0; i < n_threads; i++) {
        jobs[i] = (job){w, payload_bytes, t0 + secs, 0, 0};
        pthread_create(&th[i], NULL, committer, &jobs[i]);
    }
    uint64_t n = 0;
    for (int i = 0; i < n_threads; i++) {
        pthread_join(th[i], NULL);
        n += jobs[i].n;
        if (jobs[i].has_error) *has_error = 1;
    }
    double dt = now_s() - t0;
    uint64_t f = atomic_load(&g_fsyncs);
    *per_fsync = f ? (double)n / (double)f : 0;
    mk_wal_close(w, NULL);
    rmrf(dir);
    return (double)n / dt;
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : "/tmp";
    double secs = argc > 2 ? atof(argv[2]) : 0.5;
    static const struct { mk_fsync_policy pol; const char *name; } pols[] = {
        {MK_FSYNC_ALWAYS, "always"}, {MK_FSYNC_INTERVAL, "interval"}, {MK_FSYNC_OFF, "off"}};
    static const size_t sizes[] = {100, 4096};
    static const int threads[] = {1, 4};
    printf("WAL commit throughput, dir %s, %.2f s per run, median of %d\n", root, secs, N_RUNS);
    printf("%-9s %7s %7s %14s %10s %14s\n", "policy", "threads", "payload", "records/s", "MB/s", "records/fsync");
    for (size_t p = 0; p < 3; p++) {
        for (size_t s = 0; s < 2; s++) {
            for (size_t t = 0; t < 2; t++) {
                double r[N_RUNS], pf[N_RUNS];
                int has_error = 0;
                for (int k = 0; k < N_RUNS; k++)
                    r[k] = run_once(root, pols[p].pol, threads[t], sizes[s], secs, &pf[k], &has_error);
                qsort(r, N_RUNS, sizeof r[0], cmp_double);
                qsort(pf, N_RUNS, sizeof pf[0], cmp_double);
                double med = r[N_RUNS / 2];
                char per[32];
                if (pf[N_RUNS / 2] > 0) snprintf(per, sizeof per, "%.1f", pf[N_RUNS / 2]);
                else snprintf(per, sizeof per, "no fsync");
                printf("%-9s %7d %7zu %14.0f %10.1f %14s%s\n", pols[p].name, threads[t], sizes[s], med,
                       med * (double)sizes[s] / 1e6, per, has_error ? "  (errors!)" : "");
                fflush(stdout);
            }
        }
    }
    return 0;
}
