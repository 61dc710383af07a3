/*
 * bench/bench_lp.c — line-protocol parser throughput.
 *
 *   bench_lp FILE [ns|us|ms|s] [runs]
 *
 * Reads FILE into memory once, parses it `runs` times (default 5) with a
 * fresh parser each time, and prints the median lines/s, MB/s and fields/s
 * (one core, parse only: nothing is stored), by wall clock and by the
 * thread's CPU time (the latter is steadier on a shared machine, where the
 * wall clock also counts time spent descheduled). The precision defaults to s,
 * the unit of gen_fleet.py's files; it changes only the timestamp scaling.
 *
 * Generate a file with:
 *   python3 /work/shared/peers/gen_fleet.py --services 10 --instances 4 \
 *       --days 1 --interval-s 10 --seed 1 --lp /tmp/fleet-small.lp
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lp.h"

static double now_s(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [ns|us|ms|s] [runs]\n", argv[0]);
        return 2;
    }
    mk_precision prec = MK_PRECISION_S;
    if (argc > 2) {
        if (!strcmp(argv[2], "ns")) prec = MK_PRECISION_NS;
        else if (!strcmp(argv[2], "us")) prec = MK_PRECISION_US;
        else if (!strcmp(argv[2], "ms")) prec = MK_PRECISION_MS;
        else if (!strcmp(argv[2], "s")) prec = MK_PRECISION_S;
        else { fprintf(stderr, "bad precision %s\n", argv[2]); return 2; }
    }
    int runs = argc > 3 ? atoi(argv[3]) : 5;
    if (runs < 1 || runs > 1000) runs = 5;

    FILE *fp = fopen(argv[1], "rb");
    if (!fp) { perror(argv[1]); return 1; }
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    if (sz < 0) { perror("ftell"); fclose(fp); return 1; }
    char *buf = malloc((size_t)sz + 1);
    if (!buf || fread(buf, 1, (size_t)sz, fp) != (size_t)sz) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        fclose(fp);
        return 1;
    }
    fclose(fp);

    double *secs = calloc((size_t)runs, sizeof *secs);
    double *cpu = calloc((size_t)runs, sizeof *cpu);
    uint64_t n_lines = 0, n_fields = 0, n_errors = 0;
    double checksum = 0; /* keeps the values live */
    for (int r = 0; r < runs; r++) {
        mk_lp_parser *p = NULL;
        if (mk_lp_parser_new(buf, (size_t)sz, prec, 1, &p) != MK_OK) return 1;
        mk_lp_line line;
        mk_lp_error err;
        uint64_t nl = 0, nf = 0, ne = 0;
        double sum = 0;
        int64_t tsum = 0;
        double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
        int k;
        while ((k = mk_lp_next(p, &line, &err)) != MK_LP_END) {
            if (k == MK_LP_ERROR) {
                if (ne++ < 3) fprintf(stderr, "line %llu, column %u: %s\n",
                                      (unsigned long long)err.line, err.column, err.reason);
                continue;
            }
            nl++;
            nf += line.n_fields;
            for (uint32_t i = 0; i < line.n_fields; i++) sum += line.fields[i].value;
            tsum += line.ts_ms + line.n_tags + line.series_raw.len;
        }
        secs[r] = now_s(CLOCK_MONOTONIC) - t0;
        cpu[r] = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        mk_lp_parser_free(p);
        n_lines = nl;
        n_fields = nf;
        n_errors = ne;
        checksum += sum + (double)tsum;
    }
    qsort(secs, (size_t)runs, sizeof *secs, cmp_double);
    qsort(cpu, (size_t)runs, sizeof *cpu, cmp_double);
    double med = secs[runs / 2], cmed = cpu[runs / 2];
    printf("file %s: %.1f MB, %llu lines, %llu fields, %llu errors; %d runs\n", argv[1],
           (double)sz / 1e6, (unsigned long long)n_lines, (unsigned long long)n_fields,
           (unsigned long long)n_errors, runs);
    printf("wall: median %.4f s (min %.4f, max %.4f): %.2f M lines/s, %.0f MB/s, %.2f M fields/s\n",
           med, secs[0], secs[runs - 1], (double)n_lines / med / 1e6, (double)sz / med / 1e6,
           (double)n_fields / med / 1e6);
    printf("cpu:  median %.4f s (min %.4f, max %.4f): %.2f M lines/s, %.0f MB/s, %.2f M fields/s\n",
           cmed, cpu[0], cpu[runs - 1], (double)n_lines / cmed / 1e6, (double)sz / cmed / 1e6,
           (double)n_fields / cmed / 1e6);
    fprintf(stderr, "(checksum %g)\n", checksum);
    free(secs);
    free(cpu);
    free(buf);
    return 0;
}
