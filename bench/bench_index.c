/*
 * bench/bench_index.c — series index speed and size on fleet-like keys
 * (`svc,instance=i-N,service=sM field`, 4 fields per instance, 20 services):
 * add rate, lookups by id, find() latency for a selective equality matcher
 * (one instance: 4 series) and a broad one (one service and one field),
 * encode and load time, bytes per series in memory and on disk.
 * Every figure is the median of 5 runs (min and max beside it).
 *
 * usage: bench_index [n_series ...]      default: 100000 1000000
 * Load is reported as wall time and as CPU time split into user and system
 * (system is mostly first-touch page faults of the new index's memory).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "index.h"

#define RUNS 5
#define N_FIELDS 4
#define N_SERVICES 20

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void cpu_ms(double *user, double *sys, long *minflt)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3;
    *sys = ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3;
    *minflt = ru.ru_minflt;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { M_ADD, M_BYTES, M_LOOKUP, M_FIND1, M_FIND2, M_ENCODE, M_FILE, M_LOAD, M_LOAD_USER,
       M_LOAD_SYS, M_LOAD_FAULTS, M_LOAD_FILE, M_N };
static const char *const names[M_N] = {
    "add (ns/series)",          "memory (bytes/series)",     "lookup by id (M/s)",
    "find instance=X (us)",     "find service=X,up (us)",     "encode (ms)",
    "file (bytes/series)",      "load from memory (ms wall)", "  load user CPU (ms)",
    "  load system CPU (ms)",   "  load page faults",         "load from file (ms wall)",
};

#define DIE(...) do { fprintf(stderr, __VA_ARGS__); exit(1); } while (0)

static void run(uint32_t n, double res[M_N][RUNS], int r, char **keys, size_t *lens,
                const char *dir)
{
    mk_index *ix, *back, *back2;
    mk_diag d = {0, {0}};
    if (mk_index_new(&ix)) DIE("new\n");
    double t0 = now_ms();
    for (uint32_t i = 0; i < n; i++)
        if (mk_index_add(ix, keys[i], lens[i], NULL, NULL, NULL, &d)) DIE("add: %s\n", d.msg);
    double t1 = now_ms();
    res[M_ADD][r] = (t1 - t0) * 1e6 / n;
    res[M_BYTES][r] = (double)mk_index_bytes(ix) / n;

    /* lookups of random existing ids, drawn before the clock starts */
    enum { N_LOOKUP = 1000000 };
    uint64_t *ids = malloc(sizeof *ids * N_LOOKUP), s = 42 + (uint64_t)r, sum = 0;
    for (int i = 0; i < N_LOOKUP; i++) ids[i] = mk_index_id_at(ix, (uint32_t)(rng_next(&s) % n));
    t0 = now_ms();
    for (int i = 0; i < N_LOOKUP; i++) {
        uint32_t o = 0;
        if (mk_index_ordinal(ix, ids[i], &o)) DIE("lookup\n");
        sum += o;
    }
    t1 = now_ms();
    res[M_LOOKUP][r] = N_LOOKUP / (t1 - t0) / 1e3;
    if (sum == 1) fprintf(stderr, " "); /* uses sum */
    free(ids);

    /* find: one instance (4 series), and one service's "up" field */
    enum { N_FIND1 = 20000, N_FIND2 = 200 };
    char val[32];
    t0 = now_ms();
    for (int i = 0; i < N_FIND1; i++) {
        snprintf(val, sizeof val, "i-%u", (unsigned)(rng_next(&s) % (n / N_FIELDS)));
        mk_matcher m = {"instance", val, 0};
        uint32_t *out;
        size_t k;
        if (mk_index_find(ix, "svc", &m, 1, NULL, &out, &k, NULL) || k != N_FIELDS) DIE("find1\n");
        free(out);
    }
    t1 = now_ms();
    res[M_FIND1][r] = (t1 - t0) * 1e3 / N_FIND1;
    t0 = now_ms();
    for (int i = 0; i < N_FIND2; i++) {
        snprintf(val, sizeof val, "s%u", (unsigned)(rng_next(&s) % N_SERVICES));
        mk_matcher m = {"service", val, 0};
        uint32_t *out;
        size_t k;
        if (mk_index_find(ix, "svc", &m, 1, "up", &out, &k, NULL) || !k) DIE("find2\n");
        free(out);
    }
    t1 = now_ms();
    res[M_FIND2][r] = (t1 - t0) * 1e3 / N_FIND2;

    /* encode, load from memory, save + load from a file */
    mk_buf f = {0};
    t0 = now_ms();
    if (mk_index_encode(ix, &f)) DIE("encode\n");
    t1 = now_ms();
    res[M_ENCODE][r] = t1 - t0;
    res[M_FILE][r] = (double)f.len / n;
    if (mk_index_new(&back)) DIE("new\n");
    double u0, s0, u1, s1;
    long f0, f1;
    cpu_ms(&u0, &s0, &f0);
    t0 = now_ms();
    if (mk_index_load_buf(back, f.data, f.len, "bench", &d)) DIE("load: %s\n", d.msg);
    t1 = now_ms();
    cpu_ms(&u1, &s1, &f1);
    res[M_LOAD][r] = t1 - t0;
    res[M_LOAD_USER][r] = u1 - u0;
    res[M_LOAD_SYS][r] = s1 - s0;
    res[M_LOAD_FAULTS][r] = (double)(f1 - f0);
    if (mk_index_count(back) != n) DIE("load count\n");
    if (mk_index_save(ix, mk_env_default(), dir, &d)) DIE("save: %s\n", d.msg);
    if (mk_index_new(&back2)) DIE("new\n");
    t0 = now_ms();
    if (mk_index_load(back2, mk_env_default(), dir, &d)) DIE("load: %s\n", d.msg);
    t1 = now_ms();
    res[M_LOAD_FILE][r] = t1 - t0;
    mk_buf_free(&f);
    mk_index_free(back2);
    mk_index_free(back);
    mk_index_free(ix);
}

int main(int argc, char **argv)
{
    static const char *const fields[N_FIELDS] = {"qps", "p95_ms", "error_rate", "up"};
    uint32_t sizes[16] = {100000, 1000000};
    int n_sizes = 2;
    if (argc > 1) {
        n_sizes = 0;
        for (int i = 1; i < argc && n_sizes < 16; i++) sizes[n_sizes++] = (uint32_t)strtoul(argv[i], NULL, 10);
    }
    char dir[] = "/tmp/bench-index-XXXXXX";
    if (!mkdtemp(dir)) DIE("mkdtemp\n");
    printf("bench_index: fleet keys svc,instance=i-N,service=sM <field>, %d fields, %d services; "
           "median of %d runs [min .. max]\n", N_FIELDS, N_SERVICES, RUNS);
    for (int si = 0; si < n_sizes; si++) {
        uint32_t n = sizes[si] / N_FIELDS * N_FIELDS;
        char **keys = malloc(sizeof *keys * n);
        size_t *lens = malloc(sizeof *lens * n), key_bytes = 0;
        char buf[128];
        for (uint32_t i = 0; i < n; i++) {
            uint32_t inst = i / N_FIELDS;
            int l = snprintf(buf, sizeof buf, "svc,instance=i-%u,service=s%u %s", inst,
                             inst % N_SERVICES, fields[i % N_FIELDS]);
            keys[i] = strdup(buf);
            lens[i] = (size_t)l;
            key_bytes += (size_t)l;
        }
        double res[M_N][RUNS];
        for (int r = 0; r < RUNS; r++) run(n, res, r, keys, lens, dir);
        printf("\n%u series (mean key %.1f bytes)\n", n, (double)key_bytes / n);
        for (int m = 0; m < M_N; m++) {
            qsort(res[m], RUNS, sizeof(double), cmp_d);
            printf("  %-28s %10.2f   [%.2f .. %.2f]\n", names[m], res[m][RUNS / 2], res[m][0],
                   res[m][RUNS - 1]);
        }
        for (uint32_t i = 0; i < n; i++) free(keys[i]);
        free(keys);
        free(lens);
    }
    char path[64];
    snprintf(path, sizeof path, "%s/index.mki", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}
