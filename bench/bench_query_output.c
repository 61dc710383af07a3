/*
 * bench/bench_query_output.c — speed of the query answer writers
 * (query/output.c).
 *
 * A one-series answer of N rows (default 1,000,000) of [time, float],
 * written to a sink that only counts bytes (what a socket write costs is
 * not the writer's). Cases: JSON with RFC 3339 times, JSON with epoch=ms,
 * chunked JSON (chunk_size 10000), CSV and the table; floats either
 * 17-digit (means, rates: i / 7 + 0.1) or short decimals (2 places). For
 * comparison the same floats through the printf way: "%.15g", and "%.17g"
 * when that does not read back (strtod).
 *
 * Reported per case: median of --runs (default 5) runs of thread CPU time;
 * MB/s of output and ns per value (rows x 2 values).
 *
 *   build/bench/bench_query_output [--rows N] [--runs R] [--case I] [--short]
 *
 * --case I runs only case I (0 = JSON with RFC 3339 times, ... 4 = table)
 * and --short only the short decimals, e.g. for a stable instruction count:
 *   valgrind --tool=callgrind --toggle-collect=mk_qresult_write \
 *       build/bench/bench_query_output --rows 100000 --runs 1 --case 0
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meerkat/query.h"
#include "result.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static mk_err count_fn(void *ctx, const char *p, size_t n)
{
    (void)p;
    *(uint64_t *)ctx += n;
    return MK_OK;
}

static mk_qresult *make(uint64_t rows, int is_short)
{
    mk_qresult *r = NULL;
    uint32_t idx;
    const char *cols[] = {"time", "mean"};
    const char *tk[] = {"service"}, *tv[] = {"api"};
    if (mk_qres_new(&r) || mk_qres_begin_stmt(r, 0) || mk_qres_add_series(r, "svc", 1, tk, tv, 2, cols, &idx)) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (uint64_t i = 0; i < rows; i++) {
        double f = is_short ? (double)((i * 7919) % 100000) / 100 : (double)i / 7 + 0.1;
        mk_qv row[2] = {{.type = MK_QV_TIME, .u.i = 1700000000000000000LL + (int64_t)i * 10000000000LL},
                        {.type = MK_QV_FLOAT, .u.f = f}};
        if (mk_qres_add_row(r, idx, row)) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
    }
    return r;
}

static void report(const char *what, double *t, int runs, uint64_t bytes, uint64_t values)
{
    qsort(t, (size_t)runs, sizeof *t, cmp_dbl);
    double med = runs % 2 ? t[runs / 2] : (t[runs / 2 - 1] + t[runs / 2]) / 2;
    printf("%-34s %8.1f ms  %7.1f MB/s  %6.1f ns/value  (%" PRIu64 " bytes)\n", what, med * 1e3,
           (double)bytes / med / 1e6, med * 1e9 / (double)values, bytes);
}

int main(int argc, char **argv)
{
    uint64_t rows = 1000000;
    int runs = 5, only_case = -1, only_short = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc) rows = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--case") && i + 1 < argc) only_case = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--short")) only_short = 1;
        else {
            fprintf(stderr, "usage: bench_query_output [--rows N] [--runs R] [--case I] [--short]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 100) runs = 5;
    double t[100];
    printf("rows %" PRIu64 ", runs %d (median), thread CPU time\n", rows, runs);
    for (int is_short = only_short; is_short < 2; is_short++) {
        mk_qresult *r = make(rows, is_short);
        printf("floats: %s\n", is_short ? "short decimals (2 places)" : "17 digits (i / 7 + 0.1)");
        static const struct {
            const char *name;
            mk_qout_opts o;
        } cases[] = {
            {"json, rfc3339 times", {.format = MK_QFMT_JSON}},
            {"json, epoch=ms", {.format = MK_QFMT_JSON, .epoch = "ms"}},
            {"json, chunked 10000, epoch=ms", {.format = MK_QFMT_JSON, .epoch = "ms", .chunk_size = 10000}},
            {"csv", {.format = MK_QFMT_CSV}},
            {"table, epoch=ns", {.format = MK_QFMT_TABLE, .epoch = "ns"}},
        };
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            if (only_case >= 0 && (size_t)only_case != c) continue;
            uint64_t bytes = 0;
            for (int k = 0; k < runs; k++) {
                bytes = 0;
                double t0 = now_s();
                mk_qresult_write(r, &cases[c].o, count_fn, &bytes, NULL);
                t[k] = now_s() - t0;
            }
            report(cases[c].name, t, runs, bytes, rows * 2);
        }
        /* the printf way, floats only */
        if (only_case >= 0) {
            mk_qresult_free(r);
            break;
        }
        const mk_qstmt *st = mk_qresult_stmt(r, 0);
        const mk_qv *v = st->series[0].values;
        for (int k = 0; k < runs; k++) {
            uint64_t bytes = 0;
            char buf[64];
            double t0 = now_s();
            for (uint64_t i = 0; i < rows; i++) {
                double f = v[i * 2 + 1].u.f;
                int n = snprintf(buf, sizeof buf, "%.15g", f);
                if (strtod(buf, NULL) != f) n = snprintf(buf, sizeof buf, "%.17g", f);
                bytes += (uint64_t)n;
            }
            t[k] = now_s() - t0;
            if (k == runs - 1) report("floats alone via %.15g/%.17g+strtod", t, runs, bytes, rows);
        }
        mk_qresult_free(r);
    }
    return 0;
}
