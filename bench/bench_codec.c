/*
 * bench/bench_codec.c — size and speed of the chunk codecs and the head's
 * Gorilla chunk on real-shaped data.
 *
 * Input: a columns file written by bench/fleet_columns.py (per series: name,
 * timestamps in ms, values). Each series is cut into chunks of
 * --chunk samples (default: both 720 = 2 h at 10 s, and 8192 = the maximum)
 * and each chunk encoded on its own. Reported per field (the last word of a
 * series name) and overall: payload bytes/sample, which codecs were chosen;
 * then encode and decode samples/s (median of --runs runs, decode checked
 * bit for bit), and xorchunk append ns/sample over all series interleaved
 * the way the head sees them. Times are the thread's CPU time.
 *
 *   python3 ../shared/peers/gen_fleet.py --services 10 --instances 4 --days 1 \
 *       --interval-s 10 --seed 1 --start 1699999200 --lp /tmp/fleet-small.lp
 *   python3 bench/fleet_columns.py /tmp/fleet-small.lp /tmp/fleet-small.cols
 *   build/bench/bench_codec /tmp/fleet-small.cols
 *
 * Options: --chunk N (repeatable), --runs N, --level L (zstd level),
 * --quiet (sizes only), --dump (per-chunk lines: series, n, bytes, codecs).
 *
 * Instead of a file, --longhist DAYS SERIES makes the series of
 * bench/bench_longhist.c's generator in memory (the same formulas, seeds
 * and start time, one field per series in turn: qps, p95_ms, error_rate,
 * heartbeat), so issue 4's data can be sized here: --chunk 720 is its 2 h
 * blocks, --chunk 8192 its compacted ones.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "codec_internal.h"
#include "format.h"
#include "xorchunk.h"

#include "longhist_gen.h"

typedef struct series {
    char name[256];
    const char *field; /* points into name */
    uint32_t n;
    int64_t *ts;
    double *v;
} series;

/* CPU time of this thread, not wall time: the build machines are shared,
 * and time spent descheduled is not the codec's. */
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

static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof *x, cmp_dbl);
    return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
}

static series *load(const char *path, uint32_t *n_series, uint64_t *n_samples)
{
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    char magic[8];
    uint32_t ns;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "MKCOLS1\n", 8) || fread(&ns, 4, 1, f) != 1) {
        fprintf(stderr, "%s: not a columns file\n", path);
        exit(1);
    }
    series *s = calloc(ns, sizeof *s);
    *n_samples = 0;
    for (uint32_t i = 0; i < ns; i++) {
        uint16_t len;
        if (fread(&len, 2, 1, f) != 1 || len >= sizeof s[i].name || fread(s[i].name, 1, len, f) != len ||
            fread(&s[i].n, 4, 1, f) != 1) {
            fprintf(stderr, "%s: truncated\n", path);
            exit(1);
        }
        s[i].name[len] = 0;
        const char *sp = strrchr(s[i].name, ' ');
        s[i].field = sp ? sp + 1 : s[i].name;
        s[i].ts = malloc((size_t)s[i].n * 8 + 8);
        s[i].v = malloc((size_t)s[i].n * 8 + 8);
        if (fread(s[i].ts, 8, s[i].n, f) != s[i].n || fread(s[i].v, 8, s[i].n, f) != s[i].n) {
            fprintf(stderr, "%s: truncated\n", path);
            exit(1);
        }
        *n_samples += s[i].n;
    }
    fclose(f);
    *n_series = ns;
    return s;
}

/* ---- bench_longhist's generator (bench/longhist_gen.h) ---- */

static series *make_longhist(int days, int n_series, uint32_t *n_out, uint64_t *n_samples)
{
    static const char *fields[4] = {"qps", "p95_ms", "error_rate", "heartbeat"};
    lh_init();
    series *s = calloc((size_t)n_series, sizeof *s);
    uint32_t n = (uint32_t)days * 8640;
    *n_samples = 0;
    for (int i = 0; i < n_series; i++) {
        lh_gen g = lh_series(i);
        snprintf(s[i].name, sizeof s[i].name, "m,host=h%03d %s", i, fields[i % 4]);
        s[i].field = strrchr(s[i].name, ' ') + 1;
        s[i].n = n;
        s[i].ts = malloc((size_t)n * 8 + 8);
        s[i].v = malloc((size_t)n * 8 + 8);
        if (!s[i].ts || !s[i].v) { fprintf(stderr, "out of memory\n"); exit(1); }
        for (uint32_t j = 0; j < n; j++) {
            s[i].ts[j] = LH_T0 + (int64_t)j * LH_STEP_MS;
            s[i].v[j] = lh_sample(&g, s[i].ts[j], NULL);
        }
        *n_samples += n;
    }
    *n_out = (uint32_t)n_series;
    return s;
}

#define MAX_FIELDS 16

typedef struct field_stat {
    const char *name;
    uint64_t samples, bytes, ts_bytes, chunks;
    uint64_t val_codec[256], ts_codec[256];
} field_stat;

static int field_index(field_stat *fs, int *n_fs, const char *name)
{
    for (int i = 0; i < *n_fs; i++)
        if (!strcmp(fs[i].name, name)) return i;
    if (*n_fs == MAX_FIELDS) return MAX_FIELDS - 1;
    memset(&fs[*n_fs], 0, sizeof fs[*n_fs]);
    fs[*n_fs].name = name;
    return (*n_fs)++;
}

/* Size of the ts column of a payload (its header's ts_len). */
static size_t ts_col_len(const uint8_t *p, size_t len)
{
    uint64_t n = 0, tl = 0;
    size_t o = 2, u = mk_get_uvarint(p + o, len - o, &n);
    o += u;
    u = mk_get_uvarint(p + o, len - o, &tl);
    return (size_t)tl + o + u; /* header counted with the ts column */
}

static void run_chunk_size(series *s, uint32_t ns, uint64_t total, uint32_t chunk, int runs, int level,
                           int quiet, int dump)
{
    mk_codec *c;
    if (mk_codec_new(&c)) exit(1);
    mk_codec_set_zstd_level(c, level);
    field_stat fs[MAX_FIELDS];
    int n_fs = 0;
    mk_buf out = {0};
    /* One pass for sizes, with every chunk's offsets kept for decoding. */
    size_t n_chunks = 0;
    for (uint32_t i = 0; i < ns; i++) n_chunks += (s[i].n + chunk - 1) / chunk;
    size_t *off = malloc((n_chunks + 1) * sizeof *off);
    uint32_t *cn = malloc(n_chunks * sizeof *cn);
    size_t ci = 0;
    for (uint32_t i = 0; i < ns; i++) {
        int fi = field_index(fs, &n_fs, s[i].field);
        for (uint32_t a = 0; a < s[i].n; a += chunk) {
            uint32_t m = s[i].n - a < chunk ? s[i].n - a : chunk;
            size_t start = out.len;
            mk_chunk_summary sum;
            if (mk_codec_encode(c, s[i].ts + a, s[i].v + a, m, &out, &sum)) {
                fprintf(stderr, "encode failed\n");
                exit(1);
            }
            off[ci] = start;
            cn[ci++] = m;
            size_t b = out.len - start;
            fs[fi].samples += m;
            fs[fi].bytes += b;
            fs[fi].ts_bytes += ts_col_len(out.data + start, b);
            fs[fi].chunks++;
            fs[fi].ts_codec[out.data[start]]++;
            fs[fi].val_codec[out.data[start + 1]]++;
            if (dump)
                printf("chunk %s @%u n=%u bytes=%zu ts=%s val=%s\n", s[i].name, a, m, b,
                       mk_codec_name(out.data[start]), mk_codec_name(out.data[start + 1]));
        }
    }
    off[ci] = out.len;
    printf("\n== chunk size %u samples, zstd level %d: %zu chunks ==\n", chunk, level, n_chunks);
    printf("%-14s %10s %8s %10s %10s  %s\n", "field", "samples", "chunks", "B/sample", "ts B/smp",
           "value codecs chosen (chunks)");
    for (int f = 0; f < n_fs; f++) {
        printf("%-14s %10" PRIu64 " %8" PRIu64 " %10.4f %10.4f ", fs[f].name, fs[f].samples, fs[f].chunks,
               (double)fs[f].bytes / (double)fs[f].samples, (double)fs[f].ts_bytes / (double)fs[f].samples);
        for (int id = 0; id < 256; id++)
            if (fs[f].val_codec[id]) printf(" %s:%" PRIu64, mk_codec_name((uint8_t)id), fs[f].val_codec[id]);
        printf(" | ts");
        for (int id = 0; id < 256; id++)
            if (fs[f].ts_codec[id]) printf(" %s:%" PRIu64, mk_codec_name((uint8_t)id), fs[f].ts_codec[id]);
        printf("\n");
    }
    printf("%-14s %10" PRIu64 " %8zu %10.4f\n", "ALL", total, n_chunks, (double)out.len / (double)total);

    if (!quiet) {
        int64_t *ts = malloc((size_t)MK_CHUNK_MAX_SAMPLES * 8);
        double *v = malloc((size_t)MK_CHUNK_MAX_SAMPLES * 8);
        double enc[32], dec[32];
        mk_buf out2 = {0};
        for (int r = 0; r < runs && r < 32; r++) {
            out2.len = 0;
            double t0 = now_s();
            for (uint32_t i = 0; i < ns; i++)
                for (uint32_t a = 0; a < s[i].n; a += chunk) {
                    uint32_t m = s[i].n - a < chunk ? s[i].n - a : chunk;
                    mk_chunk_summary sum;
                    mk_codec_encode(c, s[i].ts + a, s[i].v + a, m, &out2, &sum);
                }
            enc[r] = (double)total / (now_s() - t0);
            if (out2.len != out.len || memcmp(out2.data, out.data, out.len)) {
                fprintf(stderr, "encode is not deterministic\n");
                exit(1);
            }
            t0 = now_s();
            for (size_t k = 0; k < n_chunks; k++) {
                uint32_t n;
                if (mk_codec_decode(c, out.data + off[k], off[k + 1] - off[k], ts, v, MK_CHUNK_MAX_SAMPLES,
                                    &n, NULL) || n != cn[k]) {
                    fprintf(stderr, "decode failed at chunk %zu\n", k);
                    exit(1);
                }
            }
            dec[r] = (double)total / (now_s() - t0);
        }
        /* Bit-exact check, outside the timing. */
        ci = 0;
        for (uint32_t i = 0; i < ns; i++)
            for (uint32_t a = 0; a < s[i].n; a += chunk, ci++) {
                uint32_t n;
                mk_codec_decode(c, out.data + off[ci], off[ci + 1] - off[ci], ts, v, MK_CHUNK_MAX_SAMPLES, &n,
                                NULL);
                if (memcmp(ts, s[i].ts + a, (size_t)n * 8) || memcmp(v, s[i].v + a, (size_t)n * 8)) {
                    fprintf(stderr, "round trip differs: %s chunk at %u\n", s[i].name, a);
                    exit(1);
                }
            }
        printf("encode %.1f M samples/s, decode %.1f M samples/s (median of %d; round trip bit-exact)\n",
               median(enc, runs) / 1e6, median(dec, runs) / 1e6, runs);
        free(ts);
        free(v);
        mk_buf_free(&out2);
    }
    mk_buf_free(&out);
    free(off);
    free(cn);
    mk_codec_free(c);
}

/* xorchunk: append every series' samples in time order, interleaved across
 * series (as the head receives them), in chunks of `chunk` samples. */
static void run_xor(series *s, uint32_t ns, uint32_t chunk, int runs)
{
    mk_xor *x = calloc(ns, sizeof *x);
    uint32_t maxn = 0;
    for (uint32_t i = 0; i < ns; i++) maxn = s[i].n > maxn ? s[i].n : maxn;
    double t_app[32];
    uint64_t bits = 0, appended = 0;
    for (int r = 0; r < runs && r < 32; r++) {
        double t = 0;
        bits = appended = 0;
        for (uint32_t a = 0; a < maxn; a += chunk) {
            double t0 = now_s();
            for (uint32_t j = a; j < a + chunk && j < maxn; j++)
                for (uint32_t i = 0; i < ns; i++)
                    if (j < s[i].n) mk_xor_append(&x[i], s[i].ts[j], s[i].v[j]);
            t += now_s() - t0;
            for (uint32_t i = 0; i < ns; i++) {
                bits += x[i].n_bits;
                appended += x[i].count;
                mk_xor_free(&x[i]);
            }
        }
        t_app[r] = t * 1e9 / (double)appended;
    }
    printf("xorchunk: append %.1f ns/sample (median of %d, %u series interleaved, chunks of %u), "
           "%.3f B/sample in the head\n",
           median(t_app, runs), runs, ns, chunk, (double)bits / 8.0 / (double)appended);
    free(x);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    uint32_t chunks[8];
    int n_chunks = 0, runs = 5, level = MK_CODEC_ZSTD_LEVEL, quiet = 0, dump = 0, lh_days = 0, lh_series = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--chunk") && i + 1 < argc && n_chunks < 8) chunks[n_chunks++] = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--level") && i + 1 < argc) level = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quiet")) quiet = 1;
        else if (!strcmp(argv[i], "--dump")) dump = 1;
        else if (!strcmp(argv[i], "--longhist") && i + 2 < argc) {
            lh_days = atoi(argv[++i]);
            lh_series = atoi(argv[++i]);
        }
        else path = argv[i];
    }
    if (!path && (lh_days < 1 || lh_series < 1)) {
        fprintf(stderr, "usage: bench_codec [--chunk N]... [--runs N] [--level L] [--quiet] [--dump] "
                        "FILE.cols | --longhist DAYS SERIES\n");
        return 2;
    }
    if (!n_chunks) {
        chunks[n_chunks++] = 720;
        chunks[n_chunks++] = MK_CHUNK_MAX_SAMPLES;
    }
    if (runs < 1) runs = 1;
    uint32_t ns;
    uint64_t total;
    series *s = path ? load(path, &ns, &total) : make_longhist(lh_days, lh_series, &ns, &total);
    if (path) printf("%s: %u series, %" PRIu64 " samples\n", path, ns, total);
    else printf("bench_longhist generator, %d days: %u series, %" PRIu64 " samples\n", lh_days, ns, total);
    for (int i = 0; i < n_chunks; i++) {
        if (chunks[i] < 1 || chunks[i] > MK_CHUNK_MAX_SAMPLES) continue;
        run_chunk_size(s, ns, total, chunks[i], runs, level, quiet, dump);
    }
    if (!quiet) run_xor(s, ns, 720, runs);
    for (uint32_t i = 0; i < ns; i++) {
        free(s[i].ts);
        free(s[i].v);
    }
    free(s);
    return 0;
}
