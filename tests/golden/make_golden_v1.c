/*
 * tests/golden/make_golden_v1.c — makes the data directory whose files are
 * frozen in tests/golden/v1/ (on-disk format version 1 of every file kind).
 *
 * Run once, when format version 1 was current; its output was copied into
 * the tree and is never regenerated (tests/golden/README.md). It is kept so
 * that anyone can see how the golden files were made, and as the model for
 * a make_golden_v2.c when a format version changes.
 *
 *   make_golden_v1 OUT_DIR > expected.c
 *
 * OUT_DIR must not exist. Writes go through the public API only
 * (include/meerkat/), with default options, in five phases:
 *
 *   1-3  in-order data in three 2-hour windows W0, W1, W2, each sealed by
 *        mk_db_flush (blocks 1, 2, 3);
 *   4    backfill into W0 (already sealed) and one sample in the window
 *        before it, sealed by mk_db_flush (block 4, overlapping block 1;
 *        two of its timestamps are in block 1 too: block 4 wins);
 *   5    writes left only in the WAL (close without flush): new samples,
 *        one overwrite of a sealed sample (the WAL wins over every block),
 *        a new series, and one timestamp written twice (the later wins).
 *
 * The samples are chosen to exercise every chunk codec: constant series
 * (decimal and not), a regular integer counter, 2-decimal gauges,
 * 4-decimal rates accumulated in binary (ulp corrections), irregular
 * timestamps, NaN (two payloads), +-Inf, -0.0, a denormal, binary
 * fractions that are not short decimals (XOR), random doubles (raw), a
 * repeating pattern of random doubles (raw + zstd), noise around a
 * drifting level (the mean predictors), a job on a repeating irregular
 * schedule (bit-packed delta-of-deltas + zstd), and one series of 1030
 * samples (rANS streams long enough for two interleaved coders).
 *
 * On stdout: the C tables of tests/unit/test_golden.c (the expected
 * samples of every series after duplicates are resolved by last-write-wins,
 * the exact bits of each NaN, series keys and ids, and the superseded
 * samples still stored in the files),
 * computed here by brute force from the list of writes, not by the engine.
 * Deterministic: fixed seed, fixed timestamps, no libm.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "meerkat/meerkat.h"

#define SEED 0x601de9u
#define T0 1700006400000LL /* 2023-11-15T00:00:00Z, a 2-hour window boundary */
#define SPAN_MS 7200000LL  /* default block_span_ms */
#define MIN_MS 60000LL

/* ---- the series ------------------------------------------------------- */

typedef struct gseries {
    const char *name; /* C identifier used in the emitted tables */
    const char *measurement;
    mk_tag tags[3];
    size_t n_tags;
    const char *field;
    uint64_t id;
} gseries;

enum { S_USER, S_SYSTEM, S_UP, S_RX, S_RATE, S_TEMP, S_EDGE, S_PHASE, S_PI, S_BULK, S_NOISE, S_JITTER, S_CRON, S_WALONLY, N_SERIES };

static gseries series[N_SERIES] = {
    /* escaped tag values: space, comma; three fields on one tag set */
    {"user", "cpu", {{"host", "web 01"}, {"dc", "eu,west"}}, 2, "usage_user", 0},
    {"system", "cpu", {{"host", "web 01"}, {"dc", "eu,west"}}, 2, "usage_system", 0},
    {"up", "cpu", {{"host", "web 01"}, {"dc", "eu,west"}}, 2, "up", 0},
    /* '=' in a tag value, a literal backslash, a non-ASCII value */
    {"rx", "net", {{"iface", "eth0"}, {"host", "db=1"}}, 2, "rx_bytes", 0},
    {"rate", "disk", {{"path", "C:\\data"}, {"host", "db=1"}}, 2, "read_rate", 0},
    {"temp", "sensor", {{"loc", "z\xc3\xbcrich lab 2"}}, 1, "temp_c", 0},
    /* a space in the measurement, a comma in the field key */
    {"edge", "edge cases", {{"kind", "special"}}, 1, "value,raw", 0},
    {"phase", "physics", {{"unit", "rad"}}, 1, "phase", 0},
    {"pi", "const", {{"src", "pi"}}, 1, "value", 0},
    {"bulk", "bulk", {{"host", "web 01"}}, 1, "latency_ms", 0},
    {"noise", "noise", {{"host", "web 01"}}, 1, "level", 0},
    {"jitter", "noise", {{"host", "web 01"}}, 1, "jitter", 0},
    {"cron", "cron", {{"job", "backup"}}, 1, "ok", 0},
    {"walonly", "wal_only", {{"host", "web 01"}}, 1, "value", 0},
};

/* ---- every write, in order (the reference) ----------------------------- */

typedef struct gwrite {
    int s;
    int64_t ts;
    double v;
    int phase;
} gwrite;

static gwrite writes[8192];
static size_t n_writes;
static mk_point batch[2048];
static size_t n_batch;
static int cur_phase;

static mk_db *db;
static mk_diag diag;

static void die(const char *what)
{
    fprintf(stderr, "make_golden_v1: %s: %s\n", what, diag.msg);
    exit(1);
}

static void put(int s, int64_t ts, double v)
{
    if (n_writes == sizeof writes / sizeof *writes || n_batch == sizeof batch / sizeof *batch) {
        fprintf(stderr, "make_golden_v1: too many writes\n");
        exit(1);
    }
    writes[n_writes++] = (gwrite){s, ts, v, cur_phase};
    batch[n_batch++] = (mk_point){series[s].id, ts, v};
}

/* One mk_db_write (one WAL record) per call. */
static void commit(void)
{
    if (n_batch && mk_db_write(db, batch, n_batch, &diag) != MK_OK) die("write");
    n_batch = 0;
}

static void flush(void)
{
    if (mk_db_flush(db, &diag) != MK_OK) die("flush");
}

static void on_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "log(%d): %s\n", level, msg);
    if (level <= MK_LOG_WARN) exit(1); /* nothing here may warn */
}

/* splitmix64 */
static uint64_t rng_s = SEED;
static uint64_t rnd(void)
{
    uint64_t z = (rng_s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int64_t rnd_below(int64_t n) { return (int64_t)(rnd() % (uint64_t)n); }

static double bits_f64(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}
static uint64_t f64_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

/* A random finite double with a full random mantissa, magnitude ~1..1e6. */
static double rnd_double(void)
{
    uint64_t exp = 1023 + (uint64_t)rnd_below(20);
    return bits_f64((rnd() & 0x800fffffffffffffull) | (exp << 52));
}

/* ---- state of the series that carry a random walk across windows ------- */

static int64_t k_user = 2345, k_system = 512, k_temp = 187, k_bulk = 4210;
static int64_t rx = 1234567890;
static double rate = 0.5;

/* Regular series: 30 samples a minute apart from window start w. */
static void regular_window(int64_t w)
{
    for (int i = 0; i < 30; i++) {
        k_user += rnd_below(301) - 150;
        if (k_user < 0) k_user = -k_user;
        if (k_user > 10000) k_user = 20000 - k_user;
        put(S_USER, w + i * MIN_MS, (double)k_user / 100.0);
    }
    commit();
    for (int i = 0; i < 30; i++) {
        k_system += rnd_below(61) - 30;
        if (k_system < 0) k_system = -k_system;
        put(S_SYSTEM, w + i * MIN_MS, (double)k_system / 100.0);
    }
    commit();
    for (int i = 0; i < 30; i++) put(S_UP, w + i * MIN_MS, 1.0);
    commit();
    for (int i = 0; i < 30; i++) {
        rx += 1000 + rnd_below(4000);
        put(S_RX, w + i * MIN_MS, (double)rx);
    }
    commit();
    for (int i = 0; i < 30; i++) {
        /* binary accumulation of 4-decimal steps: some results land an ulp
         * or two off the decimal (0.5 + 0.0037 - 0.0012 ...) */
        rate += (double)(rnd_below(201) - 100) * 0.0001;
        put(S_RATE, w + i * MIN_MS, rate);
    }
    commit();
    for (int i = 0; i < 20; i++) put(S_PI, w + i * 5 * MIN_MS, 3.141592653589793);
    commit();
}

/* Irregular timestamps: ~45 s apart with jitter and one long gap. */
static void temp_window(int64_t w, int n)
{
    int64_t t = w + 7000;
    for (int i = 0; i < n; i++) {
        k_temp += rnd_below(7) - 3;
        put(S_TEMP, t, (double)k_temp / 10.0);
        t += 45000 + rnd_below(20001) - 10000;
        if (i == n / 2) t += 11 * MIN_MS;
    }
    commit();
}

/* Noise around a drifting level, from its own generator (seeded per
 * call): the mean predictors' data, parameters picked so that each chunk
 * gets a different window (MEAN4, MEAN8, MEAN16, MEAN32). */
static void noise_window(int s, int64_t w, int n, int64_t drift, int64_t noise)
{
    uint64_t saved = rng_s;
    rng_s = 1;
    int64_t level = 5000;
    for (int i = 0; i < n; i++) {
        level += (i / 40) % 2 ? -drift : drift;
        put(s, w + 120000 + i * 20000, (double)(level + rnd_below(2 * noise + 1) - noise) / 100.0);
    }
    commit();
    rng_s = saved;
}

/* A job whose start times repeat a fixed irregular pattern: bit-packed
 * delta-of-deltas that zstd shrinks. */
static void cron_window(int64_t w, int n)
{
    static const int64_t gaps[] = {91234, 32889, 74002, 29483, 82222, 51877, 89999, 47655};
    int64_t t = w + 3000;
    for (int i = 0; i < n; i++) {
        put(S_CRON, t, 1.0);
        t += gaps[i % 8];
    }
    commit();
}

static int64_t edge_w0_nan_ts; /* the NaN that phase 4 overwrites */

static void phase1(void)
{
    int64_t w = T0;
    cur_phase = 1;
    regular_window(w);
    temp_window(w, 40);
    /* Decimals with 5 exceptions in 40 (<= n/8, so still scaled): NaN, the
     * Prometheus stale-marker NaN payload, +Inf, -0.0, a denormal. */
    int64_t t = w;
    for (int i = 0; i < 40; i++, t += 90000) {
        double v = (double)(rnd_below(20001) - 10000) / 100.0;
        if (i == 5) { v = bits_f64(0x7ff8000000000000ull); edge_w0_nan_ts = t; }
        if (i == 11) v = bits_f64(0x7ff0000000000002ull);
        if (i == 17) v = bits_f64(0x7ff0000000000000ull); /* +Inf */
        if (i == 23) v = bits_f64(0x8000000000000000ull); /* -0.0 */
        if (i == 31) v = bits_f64(0x0000000000000001ull); /* smallest denormal */
        put(S_EDGE, t, v);
    }
    commit();
    /* Binary fractions with few mantissa bits but ~40 decimal digits: not
     * decimal-like, cheap for XOR. */
    for (int i = 0; i < 40; i++)
        put(S_PHASE, w + i * 30000 + (i % 3) * 1000, (1.0 + (double)(i % 8) / 8.0) * bits_f64(0x3d70000000000000ull));
    commit();
    noise_window(S_NOISE, w, 40, 0, 100);
    noise_window(S_JITTER, w, 40, 2, 50);
    cron_window(w, 60);
    flush(); /* block 1: W0 */
}

static void phase2(void)
{
    int64_t w = T0 + SPAN_MS;
    cur_phase = 2;
    regular_window(w);
    temp_window(w, 40);
    /* Only specials and non-decimals: raw (or XOR). */
    static const uint64_t specials[] = {
        0x7ff8000000000000ull, 0xfff0000000000000ull, 0x7ff0000000000000ull, 0x8000000000000000ull,
        0x7ff0000000000002ull, 0x0000000000000001ull, 0x000fffffffffffffull, 0x7fefffffffffffffull,
        0xffefffffffffffffull, 0x3fd5555555555555ull, 0xbfe5555555555555ull, 0x7ff8000000000001ull,
        0x0010000000000000ull, 0xfff8000000000000ull, 0x400921fb54442d18ull, 0x3ff0000000000001ull,
    };
    for (int i = 0; i < 16; i++) put(S_EDGE, w + i * 7 * MIN_MS, bits_f64(specials[i]));
    commit();
    /* A repeating cycle of 5 random doubles: raw, and zstd finds repeats. */
    double cyc[5];
    for (int i = 0; i < 5; i++) cyc[i] = rnd_double();
    for (int i = 0; i < 40; i++) put(S_PHASE, w + i * 30000, cyc[i % 5]);
    commit();
    noise_window(S_NOISE, w, 60, 2, 300);
    /* 1030 samples about 5 s apart (mostly exactly 5 s): delta-of-delta and
     * residual streams of over 1024 values. */
    int64_t t = w + 60000;
    for (int i = 0; i < 1030; i++) {
        k_bulk += rnd_below(41) - 20;
        if (k_bulk < 0) k_bulk = -k_bulk;
        put(S_BULK, t, (double)k_bulk / 100.0);
        int64_t r = rnd_below(100);
        t += 5000 + (r < 70 ? 0 : r < 85 ? rnd_below(5) - 2 : r < 97 ? rnd_below(201) - 100 : rnd_below(4001));
        if (i % 256 == 255) commit();
    }
    commit();
    flush(); /* block 2: W1 */
}

static void phase3(void)
{
    int64_t w = T0 + 2 * SPAN_MS;
    cur_phase = 3;
    regular_window(w);
    for (int i = 0; i < 12; i++) put(S_PHASE, w + i * 30000, rnd_double()); /* raw */
    commit();
    noise_window(S_NOISE, w, 60, 2, 50);
    flush(); /* block 3: W2 */
}

static void phase4(void)
{
    cur_phase = 4;
    /* Backfill into W0, sealed in block 1: new timestamps between old ones,
     * and one timestamp block 1 already holds (block 4 must win). */
    put(S_USER, T0 + 30000, 11.11);
    put(S_USER, T0 + 90000, 22.22);
    put(S_USER, T0 + 2 * MIN_MS, 99.99); /* duplicate of a block-1 sample */
    put(S_USER, T0 + 150000, 33.33);
    commit();
    put(S_TEMP, T0 + 1000, 17.5); /* before the first temp sample */
    put(S_TEMP, T0 + 20 * MIN_MS + 500, 19.25);
    commit();
    put(S_EDGE, edge_w0_nan_ts, 7.5); /* replaces a NaN of block 1 */
    commit();
    put(S_RX, T0 - 5 * MIN_MS, 1234000000.0); /* the window before W0 */
    commit();
    flush(); /* block 4: W-1 and W0 */
}

static void phase5(void)
{
    cur_phase = 5;
    int64_t w2 = T0 + 2 * SPAN_MS;
    put(S_USER, w2 + 30 * MIN_MS, 45.6);
    put(S_USER, w2 + 31 * MIN_MS, 45.7);
    put(S_USER, w2 + 32 * MIN_MS, 45.8);
    commit();
    put(S_USER, T0 + SPAN_MS + 10 * MIN_MS, 0.01); /* overwrites a block-2 sample */
    commit();
    if (mk_db_series(db, series[S_WALONLY].measurement, series[S_WALONLY].tags, series[S_WALONLY].n_tags,
                     series[S_WALONLY].field, &series[S_WALONLY].id, &diag) != MK_OK)
        die("series");
    put(S_WALONLY, w2 + 5000, -1.5);
    put(S_WALONLY, w2 + 6000, 0.0);
    put(S_WALONLY, w2 + 8000, 1e300);
    commit();
    put(S_RX, w2 + 30 * MIN_MS, 9.0e9);
    commit();
    put(S_RX, w2 + 30 * MIN_MS, 9.5e9); /* same timestamp again: this one wins */
    commit();
    /* no flush: close leaves these in the WAL only */
}

/* ---- output: the C tables of test_golden.c ----------------------------- */

/* Shortest %g that reads back to the same double. */
static void fmt_double(char *buf, size_t cap, double v)
{
    uint64_t b = f64_bits(v);
    if (v != v) {
        snprintf(buf, cap, "NAN");
        return;
    }
    if (b == 0x7ff0000000000000ull) { snprintf(buf, cap, "INFINITY"); return; }
    if (b == 0xfff0000000000000ull) { snprintf(buf, cap, "-INFINITY"); return; }
    if (b == 0x8000000000000000ull) { snprintf(buf, cap, "-0.0"); return; }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, cap, "%.*g", p, v);
        if (f64_bits(strtod(buf, NULL)) == b) break;
    }
    if (!strpbrk(buf, ".eni")) strncat(buf, ".0", cap - strlen(buf) - 1);
}

static int cmp_write(const void *a, const void *b)
{
    const gwrite *x = a, *y = b;
    if (x->s != y->s) return x->s - y->s;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return 0;
}

static void emit_sample(const gwrite *w, int *col)
{
    char v[64];
    fmt_double(v, sizeof v, w->v);
    printf("{%" PRId64 ", %s},", (int64_t)(w->ts - T0), v);
    if (++*col == 4) {
        printf("\n   ");
        *col = 0;
    } else {
        printf(" ");
    }
}

static void emit(void)
{
    /* Stable sort by (series, ts): equal timestamps keep write order, so
     * the last of a run is the winner, the others are superseded. */
    static gwrite sorted[sizeof writes / sizeof *writes];
    memcpy(sorted, writes, n_writes * sizeof *writes);
    for (size_t i = 1; i < n_writes; i++) { /* insertion sort: stable */
        gwrite x = sorted[i];
        size_t j = i;
        while (j > 0 && cmp_write(&sorted[j - 1], &x) > 0) { sorted[j] = sorted[j - 1]; j--; }
        sorted[j] = x;
    }
    printf("/* ---- BEGIN tables made by make_golden_v1 (seed 0x%x) ---- */\n\n", SEED);
    printf("#define T0 INT64_C(%lld) /* timestamps below are ms after T0 */\n\n", T0);
    for (int s = 0; s < N_SERIES; s++) {
        printf("static const gsample exp_%s[] = {\n   ", series[s].name);
        int col = 0;
        size_t n = 0;
        for (size_t i = 0; i < n_writes; i++) {
            if (sorted[i].s != s) continue;
            if (i + 1 < n_writes && sorted[i + 1].s == s && sorted[i + 1].ts == sorted[i].ts) continue;
            emit_sample(&sorted[i], &col);
            n++;
        }
        printf("\n}; /* %zu samples */\n\n", n);
    }
    printf("/* The exact bits of every NaN above: {series, ts - T0, bits}. */\n");
    printf("static const gnan nan_bits[] = {\n");
    for (size_t i = 0; i < n_writes; i++) {
        if (sorted[i].v == sorted[i].v) continue;
        if (i + 1 < n_writes && sorted[i + 1].s == sorted[i].s && sorted[i + 1].ts == sorted[i].ts) continue;
        printf("    {%d, %" PRId64 ", 0x%016" PRIx64 "ull},\n", sorted[i].s, (int64_t)(sorted[i].ts - T0), f64_bits(sorted[i].v));
    }
    printf("};\n\n");
    printf("static const gseries_exp exp_series[] = {\n");
    for (int s = 0; s < N_SERIES; s++) {
        char key[512];
        size_t len = 0;
        if (mk_db_series_key(db, series[s].id, key, sizeof key, &len, &diag) != MK_OK) die("series key");
        printf("    {\"");
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)key[i];
            if (c == '\\' || c == '"') printf("\\%c", c);
            else if (c < 0x20 || c >= 0x7f) printf("\\x%02x\"\"", c);
            else putchar(c);
        }
        printf("\", 0x%016" PRIx64 "ull, exp_%s, sizeof exp_%s / sizeof *exp_%s},\n", series[s].id, series[s].name,
               series[s].name, series[s].name);
    }
    printf("};\n\n");
    printf("/* Samples still stored in the files but hidden by a newer write:\n"
           " * {series, ts - T0, value, NaN bits, phase that wrote it}. */\n");
    printf("static const gsuperseded superseded[] = {\n");
    for (size_t i = 0; i + 1 < n_writes; i++) {
        if (sorted[i + 1].s != sorted[i].s || sorted[i + 1].ts != sorted[i].ts) continue;
        char v[64];
        fmt_double(v, sizeof v, sorted[i].v);
        printf("    {%d, %" PRId64 ", %s, 0x%016" PRIx64 "ull, %d},\n", sorted[i].s, (int64_t)(sorted[i].ts - T0), v,
               sorted[i].v != sorted[i].v ? f64_bits(sorted[i].v) : 0, sorted[i].phase);
    }
    printf("};\n\n/* ---- END tables made by make_golden_v1 ---- */\n");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_golden_v1 OUT_DIR > expected.c\n");
        return 2;
    }
    struct stat st;
    if (stat(argv[1], &st) == 0) {
        fprintf(stderr, "make_golden_v1: %s exists; give a new directory\n", argv[1]);
        return 2;
    }
    fprintf(stderr, "make_golden_v1: seed 0x%x, T0 %lld, library %s\n", SEED, T0, mk_version());
    mk_options o;
    mk_options_init(&o); /* defaults: 2-hour blocks, WAL on */
    o.log = on_log;
    if (mk_db_open(argv[1], &o, &db, &diag) != MK_OK) die("open");
    for (int s = 0; s < S_WALONLY; s++) /* the WAL-only series comes in phase 5 */
        if (mk_db_series(db, series[s].measurement, series[s].tags, series[s].n_tags, series[s].field, &series[s].id,
                         &diag) != MK_OK)
            die("series");
    phase1();
    phase2();
    phase3();
    phase4();
    phase5();
    emit();
    if (mk_db_close(db, &diag) != MK_OK) die("close");
    return 0;
}
