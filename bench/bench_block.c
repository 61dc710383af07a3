/*
 * bench/bench_block.c — block file size and speed.
 *
 *   bench_block size [--lp FILE] [--span-ms N] [--dir DIR]
 *       Index bytes per chunk and per-sample overhead of real block files.
 *       With --lp, the samples come from InfluxDB line protocol with
 *       timestamps in seconds (gen_fleet.py --lp); without, from a built-in
 *       fleet-like generator (640 series: p95_ms, qps, error_rate,
 *       heartbeat of 160 instances, one day at 10 s). Samples are cut into
 *       --span-ms windows (default 2 h), one block per window, one chunk per
 *       series and window; summaries are computed as a codec does. Payloads
 *       are random bytes of 0.58 B/sample (the index does not depend on them).
 *
 *   bench_block speed [--series N] [--dir DIR]
 *       A block of N series (default 100000, one chunk each): write time,
 *       open time (median of 15), mk_block_find latency (median of 15 runs of
 *       100k random lookups, half present), payload check throughput.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "block.h"
#include "util.h"

#define HDR_BYTES 16
#define FTR_BYTES 84
#define XXH_BYTES 8

static uint64_t rng_s = 0x62656e6368ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double unit(void) { return (double)(rnd() >> 11) * 0x1.0p-53; }
static double gauss(void) { return sqrt(-2.0 * log(unit() + 1e-300)) * cos(2.0 * M_PI * unit()); }

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_dbl);
    return v[n / 2];
}

/* ---- series store ---------------------------------------------------------- */

typedef struct series {
    uint64_t id;
    int64_t *ts;
    double *v;
    size_t n, cap;
} series;

typedef struct store {
    series *s;
    size_t n, cap;
    /* open-addressing map id -> index */
    size_t *slot;
    size_t n_slot;
} store;

static series *store_get(store *st, uint64_t id)
{
    if (st->n * 2 >= st->n_slot) {
        size_t ns = st->n_slot ? st->n_slot * 2 : 4096;
        size_t *sl = malloc(ns * sizeof *sl);
        for (size_t i = 0; i < ns; i++) sl[i] = SIZE_MAX;
        for (size_t i = 0; i < st->n; i++) {
            size_t h = st->s[i].id & (ns - 1);
            while (sl[h] != SIZE_MAX) h = (h + 1) & (ns - 1);
            sl[h] = i;
        }
        free(st->slot);
        st->slot = sl;
        st->n_slot = ns;
    }
    size_t h = id & (st->n_slot - 1);
    while (st->slot[h] != SIZE_MAX) {
        if (st->s[st->slot[h]].id == id) return &st->s[st->slot[h]];
        h = (h + 1) & (st->n_slot - 1);
    }
    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 1024;
        st->s = realloc(st->s, st->cap * sizeof *st->s);
    }
    st->slot[h] = st->n;
    series *s = &st->s[st->n++];
    memset(s, 0, sizeof *s);
    s->id = id;
    return s;
}

static void series_add(series *s, int64_t ts, double v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->ts = realloc(s->ts, s->cap * sizeof *s->ts);
        s->v = realloc(s->v, s->cap * sizeof *s->v);
    }
    s->ts[s->n] = ts;
    s->v[s->n++] = v;
}

static int load_lp(store *st, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "%s: %s\n", path, strerror(errno)); return -1; }
    char *line = NULL, key[1024];
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        char *sp1 = strchr(line, ' ');
        if (!sp1) continue;
        char *sp2 = strchr(sp1 + 1, ' ');
        if (!sp2) continue;
        int64_t ts = strtoll(sp2 + 1, NULL, 10) * 1000;
        size_t kl = (size_t)(sp1 - line);
        if (kl + 64 > sizeof key) continue;
        memcpy(key, line, kl);
        key[kl] = ' ';
        char *p = sp1 + 1;
        while (p < sp2) {
            char *eq = memchr(p, '=', (size_t)(sp2 - p));
            if (!eq) break;
            char *end = memchr(eq, ',', (size_t)(sp2 - eq));
            if (!end) end = sp2;
            size_t fl = (size_t)(eq - p);
            memcpy(key + kl + 1, p, fl);
            uint64_t id = mk_hash64(key, kl + 1 + fl);
            series_add(store_get(st, id), ts, strtod(eq + 1, NULL));
            p = end + 1;
        }
    }
    free(line);
    fclose(f);
    return 0;
}

static double round_to(double v, int nd)
{
    static const double p[] = {1, 10, 100, 1000, 10000};
    return round(v * p[nd]) / p[nd];
}

/* 160 instances x 4 fields, one day at 10 s, shaped like gen_fleet.py. */
static void gen_fleet(store *st)
{
    const int n_inst = 160, n_ts = 8640;
    const int64_t t0 = INT64_C(1763596800000);
    for (int i = 0; i < n_inst; i++) {
        double lat = exp(log(8) + unit() * (log(250) - log(8)));
        double rate = exp(log(5) + unit() * (log(1250) - log(5)));
        double perr = exp(log(1e-4) + unit() * (log(4e-3) - log(1e-4)));
        double peak = unit() * 86400;
        series *s[4];
        for (int f = 0; f < 4; f++) s[f] = store_get(st, rnd());
        double drift = 0;
        for (int k = 0; k < n_ts; k++) {
            double season = 1 + 0.5 * cos(2 * M_PI * (k * 10 - peak) / 86400);
            drift = drift * 0.995 + 0.01 * gauss();
            double mean = rate * season * exp(drift) * 10;
            double nreq = floor(mean + sqrt(mean) * gauss() + 0.5);
            if (nreq < 0) nreq = 0;
            double util = season / 1.5, sigma = 0.05 + 0.6 / sqrt(nreq + 1);
            double e = 0, lam = nreq * perr * (1 + 2 * util * util * util * util), p = unit(), lim = exp(-lam);
            while (p > lim && e < nreq) { e++; p *= unit(); }
            int64_t ts = t0 + (int64_t)k * 10000;
            series_add(s[0], ts, nreq ? round_to(lat * (1 + 0.5 * util * util * util) * exp(sigma * gauss()), 2) : 0);
            series_add(s[1], ts, floor(nreq / 10 + 0.5));
            series_add(s[2], ts, nreq ? round_to(e / nreq, 4) : 0);
            series_add(s[3], ts, 1);
        }
    }
}

static int cmp_series(const void *a, const void *b)
{
    uint64_t x = ((const series *)a)->id, y = ((const series *)b)->id;
    return x < y ? -1 : x > y;
}

static void summarise(const int64_t *ts, const double *v, uint32_t n, mk_chunk_summary *s)
{
    s->count = n;
    s->first_ts_ms = ts[0];
    s->last_ts_ms = ts[n - 1];
    s->first = v[0];
    s->last = v[n - 1];
    s->min = INFINITY;
    s->max = -INFINITY;
    s->sum = s->sumsq = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (isnan(v[i])) continue;
        if (v[i] < s->min) s->min = v[i];
        if (v[i] > s->max) s->max = v[i];
        s->sum += v[i];
        s->sumsq += v[i] * v[i];
    }
}

static const char *opt(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 2; i + 1 < argc; i++) if (!strcmp(argv[i], name)) return argv[i + 1];
    return def;
}

static int run_size(int argc, char **argv)
{
    const char *lp = opt(argc, argv, "--lp", NULL), *dir = opt(argc, argv, "--dir", "/tmp/bench_block");
    int64_t span = strtoll(opt(argc, argv, "--span-ms", "7200000"), NULL, 10);
    store st = {0};
    if (lp ? load_lp(&st, lp) : (gen_fleet(&st), 0)) return 1;
    qsort(st.s, st.n, sizeof *st.s, cmp_series);
    mkdir(dir, 0755);
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    uint64_t n_samples = 0;
    for (size_t i = 0; i < st.n; i++) {
        n_samples += st.s[i].n;
        if (st.s[i].n && st.s[i].ts[0] < lo) lo = st.s[i].ts[0];
        if (st.s[i].n && st.s[i].ts[st.s[i].n - 1] > hi) hi = st.s[i].ts[st.s[i].n - 1];
    }
    printf("%zu series, %" PRIu64 " samples, %s\n", st.n, n_samples, lp ? lp : "built-in fleet generator");
    size_t *pos = calloc(st.n, sizeof *pos);
    uint8_t *payload = malloc(1 << 20);
    for (size_t i = 0; i < (1 << 20); i++) payload[i] = (uint8_t)rnd();
    uint64_t tot_file = 0, tot_payload = 0, tot_chunks = 0, seq = 1;
    double t_write = 0;
    for (int64_t w0 = mk_floordiv(lo, span) * span; w0 <= hi; w0 += span, seq++) {
        mk_block_writer *w = NULL;
        mk_diag d;
        char path[4200];
        snprintf(path, sizeof path, "%s/%016" PRIx64 ".mkb", dir, seq);
        unlink(path);
        double t = now_s();
        if (mk_block_writer_open(NULL, dir, seq, &w, &d)) { fprintf(stderr, "%s\n", d.msg); return 1; }
        uint64_t n_c = 0, pay = 0;
        for (size_t i = 0; i < st.n; i++) {
            series *s = &st.s[i];
            size_t a = pos[i], b = a;
            while (b < s->n && s->ts[b] < w0 + span) b++;
            pos[i] = b;
            for (size_t c = a; c < b; c += 8192) {
                uint32_t m = (uint32_t)(b - c < 8192 ? b - c : 8192);
                mk_chunk_summary sum;
                summarise(s->ts + c, s->v + c, m, &sum);
                size_t len = (size_t)(0.58 * m) + 1;
                if (mk_block_writer_add(w, s->id, &sum, payload + (rnd() & 0xffff), len, &d)) {
                    fprintf(stderr, "%s\n", d.msg);
                    return 1;
                }
                n_c++;
                pay += len;
            }
        }
        if (mk_block_writer_finish(w, &d)) { fprintf(stderr, "%s\n", d.msg); return 1; }
        t_write += now_s() - t;
        if (!n_c) continue;
        mk_block *b = NULL;
        if (mk_block_open(NULL, path, &b, &d)) { fprintf(stderr, "%s\n", d.msg); return 1; }
        tot_file += mk_block_file_bytes(b);
        tot_payload += pay;
        tot_chunks += n_c;
        mk_block_close(b);
        unlink(path);
    }
    uint64_t overhead = tot_file - tot_payload;
    uint64_t index = overhead - XXH_BYTES * tot_chunks - (HDR_BYTES + FTR_BYTES) * (seq - 1);
    printf("%" PRIu64 " blocks of %" PRId64 " ms, %" PRIu64 " chunks (%.0f samples/chunk), written in %.3f s\n",
           seq - 1, span, tot_chunks, (double)n_samples / (double)tot_chunks, t_write);
    printf("index            %8.2f B/chunk  %.4f B/sample\n", (double)index / (double)tot_chunks,
           (double)index / (double)n_samples);
    printf("all overhead     %8.2f B/chunk  %.4f B/sample  (index + 8 B checksum per chunk + 100 B per file)\n",
           (double)overhead / (double)tot_chunks, (double)overhead / (double)n_samples);
    free(pos);
    free(payload);
    return 0;
}

static int run_speed(int argc, char **argv)
{
    const char *dir = opt(argc, argv, "--dir", "/tmp/bench_block");
    size_t n = (size_t)strtoull(opt(argc, argv, "--series", "100000"), NULL, 10);
    mkdir(dir, 0755);
    uint64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = rnd();
    qsort(ids, n, sizeof *ids, cmp_u64);
    uint8_t payload[512];
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)rnd();
    char path[4200];
    snprintf(path, sizeof path, "%s/%016" PRIx64 ".mkb", dir, (uint64_t)1);
    unlink(path);
    mk_diag d;
    mk_block_writer *w = NULL;
    uint64_t pay = 0;
    double t = now_s();
    if (mk_block_writer_open(NULL, dir, 1, &w, &d)) { fprintf(stderr, "%s\n", d.msg); return 1; }
    for (size_t i = 0; i < n; i++) {
        mk_chunk_summary s = {.first_ts_ms = INT64_C(1763596800000), .last_ts_ms = INT64_C(1763596800000) + 7190000,
                              .count = 720};
        s.min = round_to(50 + 10 * unit(), 2);
        s.max = round_to(s.min + 30 * unit(), 2);
        s.first = round_to(s.min + (s.max - s.min) * unit(), 2);
        s.last = round_to(s.min + (s.max - s.min) * unit(), 2);
        s.sum = 720 * (s.min + s.max) / 2 + gauss();
        s.sumsq = s.sum * s.sum / 720 + 100 * unit();
        size_t len = 300 + (rnd() & 127);
        pay += len;
        if (mk_block_writer_add(w, ids[i], &s, payload, len, &d)) { fprintf(stderr, "%s\n", d.msg); return 1; }
    }
    if (mk_block_writer_finish(w, &d)) { fprintf(stderr, "%s\n", d.msg); return 1; }
    double t_write = now_s() - t;
    enum { RUNS = 15, LOOKUPS = 100000 };
    double t_open[RUNS], t_find[RUNS], t_pay[RUNS];
    mk_block *b = NULL;
    size_t hits = 0;
    for (int r = 0; r < RUNS; r++) {
        t = now_s();
        if (mk_block_open(NULL, path, &b, &d)) { fprintf(stderr, "%s\n", d.msg); return 1; }
        t_open[r] = now_s() - t;
        uint64_t *q = malloc(LOOKUPS * sizeof *q);
        for (int i = 0; i < LOOKUPS; i++) q[i] = (i & 1) ? rnd() : ids[rnd() % n];
        t = now_s();
        for (int i = 0; i < LOOKUPS; i++) {
            size_t k;
            if (mk_block_find(b, q[i], &k)) hits += k;
        }
        t_find[r] = (now_s() - t) / LOOKUPS;
        free(q);
        size_t nc;
        const mk_block_chunk *c = mk_block_chunks(b, &nc);
        uint64_t bytes = 0;
        t = now_s();
        for (size_t i = 0; i < nc; i++) {
            const uint8_t *p;
            if (mk_block_payload(b, &c[i], &p, &d)) { fprintf(stderr, "%s\n", d.msg); return 1; }
            bytes += c[i].len;
        }
        t_pay[r] = (double)bytes / (now_s() - t) / 1e9;
        if (r < RUNS - 1) mk_block_close(b);
    }
    printf("%zu series, file %" PRIu64 " B (index+footer %.2f B/chunk), write %.3f s\n", n, mk_block_file_bytes(b),
           (double)(mk_block_file_bytes(b) - HDR_BYTES - pay) / (double)n - XXH_BYTES, t_write);
    printf("open (mmap + check + decode index) median %.2f ms\n", median(t_open, RUNS) * 1e3);
    printf("find median %.0f ns per lookup (%zu hits)\n", median(t_find, RUNS) * 1e9, hits);
    printf("payload check (XXH3 over every chunk) median %.2f GB/s\n", median(t_pay, RUNS));
    mk_block_close(b);
    unlink(path);
    free(ids);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "size")) return run_size(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "speed")) return run_speed(argc, argv);
    fprintf(stderr, "usage: %s size [--lp FILE] [--span-ms N] [--dir DIR]\n"
                    "       %s speed [--series N] [--dir DIR]\n", argv[0], argv[0]);
    return 2;
}
