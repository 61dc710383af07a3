/*
 * bench/bench_db.c — in-process figures of the storage engine through its
 * public API (issue 3's "in-process" and "memory" figures).
 *
 *   bench_db ingest [N_SERIES [SAMPLES_PER_SERIES]]   mk_db_write, fsync=interval
 *   bench_db decode                                  mk_db_iter over sealed blocks
 *   bench_db memory [N_SERIES [SAMPLES_PER_SERIES]]  resident bytes per head series
 *   bench_db all                                     the three, default sizes
 *   bench_db ingest-once [N [S]]                     one ingest run, for callgrind:
 *     valgrind --tool=callgrind bench_db ingest-once 1000 1000
 *     instructions per sample = total Ir / (N * S)
 *
 * Each figure is the median of 5 runs, printed with the spread. Data is
 * fleet-like: 10 s steps, values with 0 or 2 decimals. The scratch
 * directory is $MK_BENCH_DIR or /tmp/mk-bench-db.
 *
 * ingest and decode run on one thread (one core); the machine is shared,
 * so read the ratios of one run and re-run before trusting a small change.
 */
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "meerkat/meerkat.h"

#define RUNS 5

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}

static const char *bench_dir(void)
{
    const char *d = getenv("MK_BENCH_DIR");
    return d && *d ? d : "/tmp/mk-bench-db";
}

static void rmrf(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static mk_db *open_fresh(mk_fsync_policy pol)
{
    rmrf(bench_dir());
    mk_options o;
    mk_options_init(&o);
    o.fsync = pol;
    mk_db *db = NULL;
    mk_diag d = {0};
    if (mk_db_open(bench_dir(), &o, &db, &d)) {
        fprintf(stderr, "open: %s\n", d.msg);
        exit(1);
    }
    return db;
}

static uint64_t *make_series(mk_db *db, int n)
{
    uint64_t *ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) {
        char svc[32], inst[32];
        snprintf(svc, sizeof svc, "svc-%d", i / 16);
        snprintf(inst, sizeof inst, "i-%d", (i / 4) % 4);
        static const char *fields[] = {"qps", "p95_ms", "error_rate", "heartbeat"};
        mk_tag tags[] = {{"service", svc}, {"instance", inst}};
        mk_diag d = {0};
        if (mk_db_series(db, "svc", tags, 2, fields[i % 4], &ids[i], &d)) {
            fprintf(stderr, "series: %s\n", d.msg);
            exit(1);
        }
    }
    return ids;
}

/* Fleet-like value of series i at step t (deterministic). */
static double value(int i, int64_t t)
{
    uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ull ^ (uint64_t)t * 0xbf58476d1ce4e5b9ull;
    x ^= x >> 31;
    switch (i % 4) {
    case 0: return (double)(500 + (int)(x % 60));
    case 1: return (double)(8000 + (int)(x % 900)) / 100.0;
    case 2: return (double)(x % 30) / 10000.0;
    default: return 1;
    }
}

static const int64_t t0 = 1764547200000; /* 2025-12-01 */

static double ingest_once(int n_series, int per_series, uint64_t *n_out)
{
    mk_db *db = open_fresh(MK_FSYNC_INTERVAL);
    uint64_t *ids = make_series(db, n_series);
    size_t cap = 10000;
    mk_point *pts = malloc(cap * sizeof *pts);
    /* pre-build nothing: generating points is part of the loop but cheap
     * next to the write; it is measured separately below */
    double t = now_s();
    size_t k = 0;
    uint64_t n = 0;
    mk_diag d = {0};
    for (int s = 0; s < per_series; s++) {
        for (int i = 0; i < n_series; i++) {
            pts[k++] = (mk_point){ids[i], t0 + (int64_t)s * 10000, value(i, s)};
            if (k == cap) {
                if (mk_db_write(db, pts, k, &d)) { fprintf(stderr, "write: %s\n", d.msg); exit(1); }
                n += k;
                k = 0;
            }
        }
    }
    if (k && mk_db_write(db, pts, k, &d)) { fprintf(stderr, "write: %s\n", d.msg); exit(1); }
    n += k;
    double dt = now_s() - t;
    mk_db_close(db, NULL);
    free(pts);
    free(ids);
    *n_out = n;
    return dt;
}

static void bench_ingest(int n_series, int per_series)
{
    double rate[RUNS];
    uint64_t n = 0;
    for (int r = 0; r < RUNS; r++) rate[r] = 0;
    for (int r = 0; r < RUNS; r++) {
        double dt = ingest_once(n_series, per_series, &n);
        rate[r] = n / dt;
    }
    double lo = rate[0], hi = rate[0];
    for (int r = 0; r < RUNS; r++) { if (rate[r] < lo) lo = rate[r]; if (rate[r] > hi) hi = rate[r]; }
    printf("ingest: %d series x %d samples, mk_db_write batches of 10000, fsync=interval, WAL on, sealing included\n",
           n_series, per_series);
    printf("ingest: median %.2f M samples/s (min %.2f, max %.2f; %d runs)\n", median(rate, RUNS) / 1e6, lo / 1e6, hi / 1e6, RUNS);
}

static void bench_decode(void)
{
    int n_series = 1000, per_series = 10000;
    uint64_t n;
    ingest_once(n_series, per_series, &n);
    mk_options o;
    mk_options_init(&o);
    mk_db *db = NULL;
    mk_diag d = {0};
    if (mk_db_open(bench_dir(), &o, &db, &d) || mk_db_flush(db, &d)) { fprintf(stderr, "%s\n", d.msg); exit(1); }
    uint64_t *ids;
    size_t n_ids;
    mk_db_find_series(db, "svc", NULL, 0, NULL, &ids, &n_ids, &d);
    double rate[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double t = now_s();
        uint64_t got = 0;
        double sink = 0;
        for (size_t i = 0; i < n_ids; i++) {
            mk_iter *it;
            mk_db_iter(db, ids[i], INT64_MIN, INT64_MAX, &it, &d);
            const int64_t *ts;
            const double *v;
            size_t k;
            while (mk_iter_next(it, &ts, &v, &k, &d) == MK_OK && k) {
                got += k;
                sink += v[k - 1];
            }
            mk_iter_free(it);
        }
        double dt = now_s() - t;
        rate[r] = got / dt;
        if (got != n || sink == 12345.678) fprintf(stderr, "decode: read %" PRIu64 " of %" PRIu64 "\n", got, n);
    }
    printf("decode: %" PRIu64 " samples in sealed blocks, mk_db_iter over every series: median %.1f M samples/s\n", n,
           median(rate, RUNS) / 1e6);
    free(ids);
    mk_db_close(db, NULL);
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void bench_memory(int n_series, int per_series)
{
    long before = rss_kb();
    mk_db *db = open_fresh(MK_FSYNC_OFF);
    uint64_t *ids = make_series(db, n_series);
    long after_series = rss_kb();
    mk_point *pts = malloc((size_t)n_series * sizeof *pts);
    mk_diag d = {0};
    for (int s = 0; s < per_series; s++) {
        for (int i = 0; i < n_series; i++) pts[i] = (mk_point){ids[i], t0 + (int64_t)s * 10000, value(i, s)};
        if (mk_db_write(db, pts, (size_t)n_series, &d)) { fprintf(stderr, "write: %s\n", d.msg); exit(1); }
    }
    free(pts);
    long after = rss_kb();
    mk_db_stats st;
    mk_db_stats_get(db, &st);
    printf("memory: %d series x %d samples each in the head (10 s steps, %.0f min)\n", n_series, per_series, per_series * 10 / 60.0);
    printf("memory: resident %.0f bytes per series (RSS after - before, /proc/self/statm; includes index, head, WAL buffers)\n",
           (after - before) * 1024.0 / n_series);
    printf("memory: of which %.0f bytes per series before any sample (index, series table)\n",
           (after_series - before) * 1024.0 / n_series);
    printf("memory: head structures %.0f bytes per series (mk_db_stats head_bytes)\n", (double)st.head_bytes / n_series);
    struct mallinfo2 mi = mallinfo2();
    printf("memory: malloc in use %.0f bytes per series, heap %.0f (mallinfo2)\n", (double)mi.uordblks / n_series,
           (double)mi.arena / n_series);
    mk_db_close(db, NULL);
    free(ids);
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "all";
    int a = argc > 2 ? atoi(argv[2]) : 0, b = argc > 3 ? atoi(argv[3]) : 0;
    if (!strcmp(what, "ingest") || !strcmp(what, "all")) bench_ingest(a ? a : 1000, b ? b : 10000);
    if (!strcmp(what, "decode") || !strcmp(what, "all")) bench_decode();
    if (!strcmp(what, "memory") || !strcmp(what, "all")) bench_memory(a ? a : 100000, b ? b : 120);
    if (!strcmp(what, "ingest-once")) { /* one run, for valgrind --tool=callgrind */
        uint64_t n;
        double dt = ingest_once(a ? a : 1000, b ? b : 1000, &n);
        printf("ingest-once: %" PRIu64 " samples in %.3f s\n", n, dt);
    }
    rmrf(bench_dir());
    return 0;
}
