/*
 * bench/bench_query.c — in-process figures of the InfluxQL executor on the
 * peers harness's "fleet" shape (200 series x 4 fields x 17,280 samples at
 * 10 s, 2 days, ~14 M samples) and its four queries Q1..Q4.
 *
 *   bench_query [FLEET.lp [START_S]]
 *
 * With a file (python3 /work/shared/peers/gen_fleet.py --services 50
 * --instances 4 --days 2 --seed 1 --lp /tmp/fleet.lp), it is imported as is
 * (precision s; START_S defaults to the first line's timestamp). Without
 * one, a fleet of the same shape is generated in memory (fixed seed 1).
 * The data is written with mk_db_write_lp_parallel and flushed to blocks,
 * then each query runs 5 times (after one warm-up) with summaries and with
 * opts.no_summaries=1; the medians are printed, then EXPLAIN ANALYZE of
 * each. Scratch directory: $MK_BENCH_DIR or /tmp/mk-bench-query.
 * For profiling: MK_BENCH_REUSE=1 reopens the scratch directory of an
 * earlier run (kept when MK_BENCH_REUSE is set) instead of importing, and
 * MK_BENCH_LOOP=N runs query QN 200 times and exits (perf record ...);
 * MK_BENCH_THREADS=N sets opts.n_threads (default: one per core, at most 8).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meerkat/meerkat.h"
#include "meerkat/query.h"

#define RUNS 5

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)sz + 1);
    if (p && fread(p, 1, (size_t)sz, f) != (size_t)sz) { free(p); p = NULL; }
    fclose(f);
    if (p) { p[sz] = 0; *n = (size_t)sz; }
    return p;
}

static const char *k_services[] = {"api-gateway", "auth", "billing", "cart", "catalog", "checkout", "search", "inventory",
                                   "payments", "shipping"};

/* A fleet-shaped line-protocol text: 50 services x 4 instances x 17,280 steps. */
static char *gen_fleet(int64_t start_s, size_t *n)
{
    size_t cap = (size_t)3456000 * 110, len = 0;
    char *p = malloc(cap);
    if (!p) return NULL;
    uint64_t s = 1;
    for (int step = 0; step < 17280; step++)
        for (int sv = 0; sv < 50; sv++)
            for (int in = 0; in < 4; in++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                unsigned r = (unsigned)(s >> 33);
                char svc[32];
                snprintf(svc, sizeof svc, "%s%s%d", k_services[sv % 10], sv >= 10 ? "-" : "", sv >= 10 ? sv / 10 : 0);
                if (sv < 10) svc[strlen(k_services[sv % 10])] = 0;
                len += (size_t)snprintf(p + len, cap - len,
                                        "svc,instance=i-%d,service=%s qps=%u,p95_ms=%u.%02u,error_rate=0.%04u,heartbeat=1 %" PRId64 "\n",
                                        in, svc, 100 + r % 400, 20 + r % 80, r % 100, r % 200, start_s + (int64_t)step * 10);
            }
    *n = len;
    return p;
}

static double run_q(mk_db *db, const char *q, int no_sum, int print)
{
    const char *thr = getenv("MK_BENCH_THREADS");
    mk_query_opts o = {.db = "bench", .no_summaries = no_sum, .n_threads = thr ? atoi(thr) : 0};
    mk_qresult *r = NULL;
    mk_diag d = {0};
    double t0 = now_ms();
    mk_err e = mk_query_exec(db, q, strlen(q), &o, &r, &d);
    double t = now_ms() - t0;
    if (e) { fprintf(stderr, "query failed: %s\n", d.msg); exit(1); }
    const mk_qstmt *st = mk_qresult_stmt(r, 0);
    if (st->error) { fprintf(stderr, "statement failed: %s\n", st->error); exit(1); }
    if (print)
        for (uint32_t i = 0; i < st->n_series; i++)
            for (uint64_t k = 0; k < st->series[i].n_rows; k++) printf("  %s\n", st->series[i].values[k].u.s);
    mk_qresult_free(r);
    return t;
}

int main(int argc, char **argv)
{
    const char *dir = getenv("MK_BENCH_DIR");
    if (!dir || !*dir) dir = "/tmp/mk-bench-query";
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int is_reuse = getenv("MK_BENCH_REUSE") && *getenv("MK_BENCH_REUSE") == '1';
    if (!is_reuse && system(cmd) != 0) return 1;
    size_t n = 0;
    char *lp;
    int64_t start_s = 1795906800;
    if (argc > 1) {
        lp = read_file(argv[1], &n);
        if (!lp) { fprintf(stderr, "cannot read %s\n", argv[1]); return 1; }
        const char *sp = memchr(lp, '\n', n);
        if (sp) { const char *q = sp; while (q > lp && q[-1] != ' ') q--; start_s = strtoll(q, NULL, 10); }
        if (argc > 2) start_s = strtoll(argv[2], NULL, 10);
    } else if (is_reuse) {
        lp = NULL;
    } else {
        lp = gen_fleet(start_s, &n);
        if (!lp) return 1;
    }
    mk_options opts;
    mk_options_init(&opts);
    opts.has_wal = 0;
    mk_db *db;
    mk_diag d = {0};
    if (mk_db_open(dir, &opts, &db, &d)) { fprintf(stderr, "open: %s\n", d.msg); return 1; }
    double t0 = now_ms();
    mk_write_stats ws = {0};
    if (lp) {
        if (mk_db_write_lp_parallel(db, lp, n, MK_PRECISION_S, 0, 2, &ws, NULL, NULL, &d) || mk_db_flush(db, &d)) {
            fprintf(stderr, "import: %s\n", d.msg);
            return 1;
        }
        printf("imported %" PRIu64 " samples in %.0f ms (write + flush)\n", ws.n_samples_accepted, now_ms() - t0);
        free(lp);
    }
    int64_t b0 = start_s, bend = start_s + 48 * 3600, last = start_s + 17279 * 10;
    char q[4][512];
    snprintf(q[0], sizeof q[0], "SELECT mean(p95_ms) FROM svc WHERE instance='i-0' AND service='checkout' AND time >= %" PRId64 "s AND time < %" PRId64 "s GROUP BY time(1h)", b0, bend);
    snprintf(q[1], sizeof q[1], "SELECT max(p95_ms) FROM svc WHERE time >= %" PRId64 "s AND time < %" PRId64 "s GROUP BY time(1h)", b0, bend);
    snprintf(q[2], sizeof q[2], "SELECT p95_ms FROM svc WHERE instance='i-0' AND service='checkout' AND time > %" PRId64 "s AND time <= %" PRId64 "s", last - 3600, last);
    snprintf(q[3], sizeof q[3], "SELECT count(p95_ms) FROM svc WHERE time >= %" PRId64 "s AND time <= %" PRId64 "s", b0, last);
    const char *loop = getenv("MK_BENCH_LOOP");
    if (loop && *loop >= '1' && *loop <= '4') {
        for (int k = 0; k < 200; k++) run_q(db, q[*loop - '1'], 0, 0);
        mk_db_close(db, NULL);
        return 0;
    }
    printf("%-4s %14s %16s   (median of %d, ms, in-process, no HTTP/JSON)\n", "", "summaries", "no_summaries", RUNS);
    for (int i = 0; i < 4; i++) {
        double v[2];
        for (int ns = 0; ns <= 1; ns++) {
            double t[RUNS];
            run_q(db, q[i], ns, 0);
            for (int k = 0; k < RUNS; k++) t[k] = run_q(db, q[i], ns, 0);
            qsort(t, RUNS, sizeof t[0], cmp_d);
            v[ns] = t[RUNS / 2];
        }
        printf("Q%d   %14.3f %16.3f\n", i + 1, v[0], v[1]);
    }
    for (int i = 0; i < 4; i++) {
        char ex[2600];
        snprintf(ex, sizeof ex, "EXPLAIN ANALYZE %s", q[i]);
        printf("\nQ%d EXPLAIN ANALYZE:\n", i + 1);
        run_q(db, ex, 0, 1);
    }
    mk_db_close(db, NULL);
    if (!getenv("MK_BENCH_REUSE") && system(cmd) != 0) return 1;
    return 0;
}
