/*
 * tests/unit/test_codec.c — chunk codecs: bit-exact round trip on random and
 * adversarial data through the automatic choice and through every codec,
 * predictor and integer-stream layout forced in turn; summaries against a
 * brute-force reference; truncated and bit-flipped payloads are reported
 * (never a crash, never a write past cap); determinism; and sizes on
 * regular data. Seeds are fixed and printed.
 */
#include "testutil.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "codec_internal.h"
#include "format.h"
#include "util.h"

#define N_MAX MK_CHUNK_MAX_SAMPLES

/* ---- data generators ---------------------------------------------- */

enum { TS_REGULAR, TS_JITTER, TS_HUGE, TS_EXTREME_LOW, TS_EXTREME_HIGH, TS_NEGATIVE, TS_KINDS };
enum {
    V_CONST, V_DEC0, V_DEC1, V_DEC2, V_DEC4, V_DEC6, V_INT53, V_RANDOM_BITS, V_SPECIAL, V_MIXED,
    V_ZERO_INFLATED, V_FLAG, V_COUNTER, V_GAUSS, V_HUGE_STEP, V_ULP_OFF, V_KINDS
};

static void gen_ts(mk_rng *r, int kind, int64_t *ts, uint32_t n)
{
    int64_t t;
    switch (kind) {
    case TS_EXTREME_LOW: t = INT64_MIN; break;
    case TS_EXTREME_HIGH: t = INT64_MAX - (int64_t)n * 3; break;
    case TS_NEGATIVE: t = -(int64_t)mk_rng_below(r, 1ull << 50); break;
    default: t = 1700000000000 + (int64_t)mk_rng_below(r, 1000000); break;
    }
    for (uint32_t i = 0; i < n; i++) {
        ts[i] = t;
        uint64_t step;
        switch (kind) {
        case TS_REGULAR: step = 10000; break;
        case TS_JITTER: step = 9990 + mk_rng_below(r, 21); break;
        case TS_HUGE: {
            unsigned sh = (unsigned)mk_rng_below(r, 60);
            step = 1 + (mk_rng_next(r) >> (4 + sh));
            break;
        }
        case TS_EXTREME_LOW: step = i == 0 ? (uint64_t)INT64_MAX : 1 + mk_rng_below(r, 3); break;
        case TS_EXTREME_HIGH: step = 1 + mk_rng_below(r, 3); break;
        default: step = 1 + mk_rng_below(r, 100000); break;
        }
        /* keep within int64 (the last sample may sit at INT64_MAX) */
        uint64_t room = (uint64_t)INT64_MAX - (uint64_t)t;
        if (step > room / (n - i + 1)) step = room / (n - i + 1);
        if (step == 0) step = 1;
        t = (int64_t)((uint64_t)t + step);
    }
}

static double special(mk_rng *r)
{
    switch (mk_rng_below(r, 10)) {
    case 0: return mk_bits_f64(0x7ff8000000000000ull | (mk_rng_next(r) & 0x7ffffffffffffull));
    case 1: return mk_bits_f64(0x7ff0000000000001ull | (mk_rng_next(r) & 0x3ffffffffffffull)); /* sNaN */
    case 2: return mk_bits_f64(0xfff8000000000123ull);
    case 3: return INFINITY;
    case 4: return -INFINITY;
    case 5: return -0.0;
    case 6: return mk_bits_f64(mk_rng_next(r) & 0x000fffffffffffffull); /* denormal */
    case 7: return DBL_MAX;
    case 8: return -DBL_TRUE_MIN;
    default: return 9007199254740993.0; /* 2^53 + 1 rounds to 2^53 */
    }
}

static double dec(mk_rng *r, int digits, double scale)
{
    double p = 1;
    for (int i = 0; i < digits; i++) p *= 10;
    int64_t k = (int64_t)(mk_rng_unit(r) * scale * p) - (int64_t)(scale * p / 4);
    return (double)k / p;
}

static void gen_vals(mk_rng *r, int kind, double *v, uint32_t n)
{
    double x = 100, level = 50 + mk_rng_unit(r) * 200;
    for (uint32_t i = 0; i < n; i++) {
        switch (kind) {
        case V_CONST: v[i] = 3.25; break;
        case V_DEC0: v[i] = dec(r, 0, 1000); break;
        case V_DEC1: v[i] = dec(r, 1, 100); break;
        case V_DEC2: v[i] = dec(r, 2, 300); break;
        case V_DEC4: v[i] = dec(r, 4, 0.05); break;
        case V_DEC6: v[i] = dec(r, 6, 10); break;
        case V_INT53: v[i] = (double)((1ll << 53) - (int64_t)mk_rng_below(r, 1000)) * (i & 1 ? -1 : 1); break;
        case V_RANDOM_BITS: v[i] = mk_bits_f64(mk_rng_next(r)); break;
        case V_SPECIAL: v[i] = special(r); break;
        case V_MIXED:
            switch (mk_rng_below(r, 8)) {
            case 0: v[i] = special(r); break;
            case 1: v[i] = mk_rng_unit(r); break;
            default: v[i] = dec(r, (int)mk_rng_below(r, 4), 1000); break;
            }
            break;
        case V_ZERO_INFLATED: v[i] = mk_rng_below(r, 10) ? 0.0 : dec(r, 4, 0.03) + 0.01; break;
        case V_FLAG: v[i] = mk_rng_below(r, 50) ? 1.0 : 0.0; break;
        case V_COUNTER: x += (double)mk_rng_below(r, 50); v[i] = x; break;
        case V_GAUSS: {
            double g = 0;
            for (int j = 0; j < 4; j++) g += mk_rng_unit(r) - 0.5;
            v[i] = round((level + level * 0.1 * g) * 100) / 100;
            break;
        }
        case V_HUGE_STEP: v[i] = i % 100 == 0 ? 1e15 : (double)mk_rng_below(r, 10); break;
        default: { /* V_ULP_OFF: decimals left a few ulps off, as binary arithmetic does */
            double d = dec(r, 1 + (int)mk_rng_below(r, 3), 100);
            unsigned steps = mk_rng_below(r, 3) ? 0 : 1 + (unsigned)mk_rng_below(r, 20);
            for (unsigned s = 0; s < steps; s++) d = nextafter(d, i & 1 ? INFINITY : -INFINITY);
            v[i] = d;
            break;
        }
        }
    }
}

/* ---- reference summary --------------------------------------------- */

static void check_summary(const int64_t *ts, const double *v, uint32_t n, const mk_chunk_summary *s)
{
    assert_int_equal(s->count, n);
    assert_true(s->first_ts_ms == ts[0] && s->last_ts_ms == ts[n - 1]);
    assert_true(mk_f64_bits(s->first) == mk_f64_bits(v[0]));
    assert_true(mk_f64_bits(s->last) == mk_f64_bits(v[n - 1]));
    double mn = 0, mx = 0, sum = 0, sq = 0;
    int has = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (v[i] != v[i]) continue; /* NaN */
        if (!has || v[i] < mn) mn = v[i];
        if (!has || v[i] > mx) mx = v[i];
        has = 1;
        sum += v[i];
        sq += v[i] * v[i];
    }
    if (!has) {
        assert_true(isnan(s->min) && isnan(s->max));
        assert_true(s->sum == 0 && s->sumsq == 0);
        return;
    }
    assert_true(s->min == mn && s->max == mx);
    /* same order of additions: identical, NaN (inf - inf) included */
    assert_true(mk_f64_bits(s->sum) == mk_f64_bits(sum) || (isnan(s->sum) && isnan(sum)));
    assert_true(mk_f64_bits(s->sumsq) == mk_f64_bits(sq) || (isnan(s->sumsq) && isnan(sq)));
}

/* ---- round trip ------------------------------------------------------ */

typedef struct ctx {
    mk_codec *c;
    int64_t *dts;
    double *dv;
    mk_buf out, out2;
    uint64_t n_roundtrips;
} ctx;

static int setup(void **state)
{
    ctx *x = calloc(1, sizeof *x);
    assert_int_equal(mk_codec_new(&x->c), MK_OK);
    x->dts = malloc(N_MAX * sizeof *x->dts);
    x->dv = malloc(N_MAX * sizeof *x->dv);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    ctx *x = *state;
    mk_codec_free(x->c);
    free(x->dts);
    free(x->dv);
    mk_buf_free(&x->out);
    mk_buf_free(&x->out2);
    free(x);
    return 0;
}

/* Encodes (with f forced, or automatic), decodes into an exact-size heap
 * buffer (so ASan sees any write past cap), compares bit for bit, checks
 * the summary and that encoding twice gives the same bytes. Returns the
 * encode result (MK_EINVAL for a forced codec that cannot hold the data). */
static mk_err roundtrip(ctx *x, const int64_t *ts, const double *v, uint32_t n, const mk_codec_force *f)
{
    mk_codec_set_force(x->c, f);
    x->out.len = 0;
    mk_chunk_summary s;
    mk_err rc = mk_codec_encode(x->c, ts, v, n, &x->out, &s);
    if (rc) {
        assert_int_equal(rc, MK_EINVAL);
        assert_int_equal(x->out.len, 0);
        mk_codec_set_force(x->c, NULL);
        return rc;
    }
    check_summary(ts, v, n, &s);
    x->out2.len = 0;
    assert_int_equal(mk_codec_encode(x->c, ts, v, n, &x->out2, NULL), MK_OK);
    assert_int_equal(x->out2.len, x->out.len);
    assert_memory_equal(x->out2.data, x->out.data, x->out.len);
    mk_codec_set_force(x->c, NULL);

    int64_t *dts = malloc(n * sizeof *dts);
    double *dv = malloc(n * sizeof *dv);
    uint32_t got = 0, cnt = 0;
    mk_diag d;
    rc = mk_codec_decode(x->c, x->out.data, x->out.len, dts, dv, n, &got, &d);
    if (rc) fail_msg("decode failed: %s", d.msg);
    assert_int_equal(got, n);
    for (uint32_t i = 0; i < n; i++) {
        if (dts[i] != ts[i] || mk_f64_bits(dv[i]) != mk_f64_bits(v[i]))
            fail_msg("sample %u of %u: got (%" PRId64 ", %016" PRIx64 ") want (%" PRId64 ", %016" PRIx64
                     ") codecs %s/%s",
                     i, n, dts[i], mk_f64_bits(dv[i]), ts[i], mk_f64_bits(v[i]), mk_codec_name(x->out.data[0]),
                     mk_codec_name(x->out.data[1]));
    }
    assert_int_equal(mk_codec_count(x->out.data, x->out.len, &cnt, NULL), MK_OK);
    assert_int_equal(cnt, n);
    uint8_t a, b;
    assert_int_equal(mk_codec_ids(x->out.data, x->out.len, &a, &b), MK_OK);
    assert_string_not_equal(mk_codec_name(a), "unknown");
    assert_string_not_equal(mk_codec_name(b), "unknown");
    if (n > 1) { /* a too-small buffer is refused before anything is written */
        rc = mk_codec_decode(x->c, x->out.data, x->out.len, dts, dv, n - 1, &got, NULL);
        assert_int_equal(rc, MK_EINVAL);
        assert_int_equal(got, 0);
    }
    free(dts);
    free(dv);
    x->n_roundtrips++;
    return MK_OK;
}

static const mk_codec_force no_force = {-1, -1, -1, -1, -1, -1};

static void test_roundtrip_auto(void **state)
{
    ctx *x = *state;
    const uint64_t seed = 0xc0dec001;
    printf("test_roundtrip_auto seed=0x%" PRIx64 "\n", seed);
    mk_rng r = {seed};
    int64_t *ts = malloc(N_MAX * sizeof *ts);
    double *v = malloc(N_MAX * sizeof *v);
    static const uint32_t sizes[] = {1, 2, 3, 4, 15, 16, 17, 100, 720, 1000, N_MAX};
    for (int tk = 0; tk < TS_KINDS; tk++)
        for (int vk = 0; vk < V_KINDS; vk++)
            for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                uint32_t n = sizes[si];
                gen_ts(&r, tk, ts, n);
                gen_vals(&r, vk, v, n);
                assert_int_equal(roundtrip(x, ts, v, n, NULL), MK_OK);
            }
    printf("  %" PRIu64 " round trips\n", x->n_roundtrips);
    free(ts);
    free(v);
}

/* Every codec, predictor, layout, low-bit count and zstd stage, forced. */
static void test_roundtrip_forced(void **state)
{
    ctx *x = *state;
    const uint64_t seed = 0xc0dec002;
    printf("test_roundtrip_forced seed=0x%" PRIx64 "\n", seed);
    mk_rng r = {seed};
    int64_t *ts = malloc(N_MAX * sizeof *ts);
    double *v = malloc(N_MAX * sizeof *v);
    static const int ts_codecs[] = {MK_CODEC_TS_DOD, MK_CODEC_TS_CONST};
    static const int val_codecs[] = {MK_CODEC_VAL_XOR, MK_CODEC_VAL_SCALED, MK_CODEC_VAL_CONST, MK_CODEC_VAL_RAW};
    static const uint32_t sizes[] = {1, 2, 3, 40, 777, 1500};
    uint64_t ok = 0, refused = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        uint32_t n = sizes[si];
        for (int tk = 0; tk < TS_KINDS; tk += 2)
            for (int vk = 0; vk < V_KINDS; vk++) {
                gen_ts(&r, tk, ts, n);
                gen_vals(&r, vk, v, n);
                for (int tc = 0; tc < 2; tc++)
                    for (int vc = 0; vc < 4; vc++)
                        for (int z = 0; z < 2; z++) {
                            mk_codec_force f = no_force;
                            f.ts_codec = ts_codecs[tc];
                            f.val_codec = val_codecs[vc];
                            f.zstd = z;
                            if (roundtrip(x, ts, v, n, &f) == MK_OK) ok++;
                            else refused++;
                        }
                /* scaled: every predictor x layout x a few low-bit counts */
                for (int p = 0; p < MK_CODEC_PRED_COUNT; p++)
                    for (int m = 0; m < MK_CODEC_INT_COUNT; m++)
                        for (int ki = 0; ki < 3; ki++) {
                            static const int ks[] = {-1, 12, 60}; /* 60: fields wider than one load */
                            int k = ks[ki];
                            mk_codec_force f = no_force;
                            f.ts_codec = MK_CODEC_TS_DOD;
                            f.val_codec = MK_CODEC_VAL_SCALED;
                            f.pred = p;
                            f.int_mode = m;
                            f.int_k = k;
                            f.zstd = (p + m) % 3 == 0;
                            if (roundtrip(x, ts, v, n, &f) == MK_OK) ok++;
                            else refused++;
                        }
            }
    }
    /* Refusals: CONST on varying data only. */
    printf("  %" PRIu64 " forced round trips, %" PRIu64 " refused (CONST on varying data)\n", ok, refused);
    assert_true(ok > 1000);
    free(ts);
    free(v);
}

/* Hand-picked edges. */
static void test_edges(void **state)
{
    ctx *x = *state;
    const int64_t t2[] = {INT64_MIN, INT64_MAX};
    const double v2[] = {-0.0, 0.0};
    assert_int_equal(roundtrip(x, t2, v2, 2, NULL), MK_OK);
    const int64_t t3[] = {INT64_MIN, -1, INT64_MAX};
    const double v3[] = {NAN, -NAN, INFINITY};
    assert_int_equal(roundtrip(x, t3, v3, 3, NULL), MK_OK);
    const int64_t t1[] = {-5};
    const double v1[] = {0.1};
    assert_int_equal(roundtrip(x, t1, v1, 1, NULL), MK_OK);
    /* 2^53 and its neighbours, and integers just above it (not exact in k) */
    const int64_t t4[] = {0, 1, 2, 3, 4};
    const double v4[] = {9007199254740992.0, 9007199254740991.0, -9007199254740992.0, 18014398509481984.0, 1e300};
    assert_int_equal(roundtrip(x, t4, v4, 5, NULL), MK_OK);
    /* decimals that are not what they print as: 0.1 + 0.2 */
    const double v5[] = {0.1 + 0.2, 0.3, 1.0 / 3.0, 2.675, 1e-300};
    assert_int_equal(roundtrip(x, t4, v5, 5, NULL), MK_OK);
    /* all-NaN: summary min/max NaN */
    const double v6[] = {NAN, NAN, NAN, NAN, NAN};
    assert_int_equal(roundtrip(x, t4, v6, 5, NULL), MK_OK);
    /* decimals a few ulps off (0.1 + 0.2, 41.362 - 1 ulp) stay scaled */
    int64_t t8[64];
    double v8[64];
    for (int i = 0; i < 64; i++) {
        t8[i] = i;
        v8[i] = (double)(41000 + i * 7) / 1000;
        if (i % 3 == 0) v8[i] = nextafter(v8[i], 0);
        if (i % 5 == 0) v8[i] = nextafter(nextafter(v8[i], 1e9), 1e9);
    }
    v8[7] = 0.1 + 0.2;
    v8[8] = 5e-324; /* 0 + 1 ulp */
    assert_int_equal(roundtrip(x, t8, v8, 64, NULL), MK_OK);
    assert_int_equal(x->out.data[1], MK_CODEC_VAL_SCALED);
    /* tiny decimals need big exponents */
    const double v7[] = {1.5e-20, 2.5e-20, 0, 1e-22, 3e-21};
    assert_int_equal(roundtrip(x, t4, v7, 5, NULL), MK_OK);
}

/* Found by fuzz_codec: the SPLIT layout read low-bit fields wider than 56
 * bits with a single 64-bit load, losing their top bits (a timestamp jump
 * to INT64_MAX with k = 62 forced). */
static void test_fuzz_split_wide_low_bits(void **state)
{
    ctx *x = *state;
    const int64_t ts[] = {-2738189479561920513, -2738189479561920512, -2738189479561919514,
                          -2738189479561918516, INT64_MAX};
    const double v[] = {0, 0, 0, 0, 0x1.6ffffffffffffp-303};
    for (int m = MK_CODEC_INT_PACK; m < MK_CODEC_INT_COUNT; m++)
        for (int k = 55; k <= 63; k++) {
            mk_codec_force f = no_force;
            f.ts_codec = MK_CODEC_TS_DOD;
            f.int_mode = m;
            f.int_k = k;
            assert_int_equal(roundtrip(x, ts, v, 5, &f), MK_OK);
        }
}

/* Regular 10 s timestamps cost nothing per sample; decimal data is scaled. */
static void test_sizes(void **state)
{
    ctx *x = *state;
    int64_t ts[720];
    double v[720];
    mk_rng r = {0xc0dec003};
    for (int i = 0; i < 720; i++) {
        ts[i] = 1700000000000 + (int64_t)i * 10000;
        v[i] = 1.0;
    }
    x->out.len = 0;
    assert_int_equal(mk_codec_encode(x->c, ts, v, 720, &x->out, NULL), MK_OK);
    printf("regular ts + constant value, 720 samples: %zu bytes\n", x->out.len);
    assert_true(x->out.len <= 20);
    assert_int_equal(x->out.data[0], MK_CODEC_TS_CONST);
    assert_int_equal(x->out.data[1], MK_CODEC_VAL_SCALED); /* 1.0 is 5 bytes scaled, 8 raw */
    for (int i = 0; i < 720; i++) v[i] = M_PI;
    x->out.len = 0;
    assert_int_equal(mk_codec_encode(x->c, ts, v, 720, &x->out, NULL), MK_OK);
    assert_int_equal(x->out.data[1], MK_CODEC_VAL_CONST); /* not decimal: 8 raw bytes */
    assert_true(x->out.len <= 24);
    gen_vals(&r, V_GAUSS, v, 720);
    x->out.len = 0;
    assert_int_equal(mk_codec_encode(x->c, ts, v, 720, &x->out, NULL), MK_OK);
    printf("regular ts + 2-decimal gauge, 720 samples: %zu bytes (%s)\n", x->out.len,
           mk_codec_name(x->out.data[1]));
    assert_int_equal(x->out.data[1] & ~MK_CODEC_ZSTD_FLAG, MK_CODEC_VAL_SCALED);
    assert_true(x->out.len < 720 * 2);
    gen_vals(&r, V_FLAG, v, 720);
    x->out.len = 0;
    assert_int_equal(mk_codec_encode(x->c, ts, v, 720, &x->out, NULL), MK_OK);
    printf("regular ts + 0/1 flag, 720 samples: %zu bytes\n", x->out.len);
    assert_true(x->out.len < 720 / 4);
}

/* mk_codec_set_fast_decode: exact round trips, never a zstd stage, rANS
 * only where it is at least a fifth smaller than bit-packing the same
 * stream (checked against the payload forced to PACK), and the two known
 * cases: near-Gaussian noise, where rANS gains well under a fifth (about
 * 0.7 of ~10 bits), is packed; a stream nine tenths zeros, where rANS
 * gains most of it, stays rANS. */
static void test_fast_decode(void **state)
{
    ctx *x = *state;
    const uint64_t seed = 0xc0dec006;
    printf("test_fast_decode seed=0x%" PRIx64 "\n", seed);
    mk_rng r = {seed};
    int64_t *ts = malloc(N_MAX * sizeof *ts);
    double *v = malloc(N_MAX * sizeof *v);
    static const uint32_t sizes[] = {1, 2, 17, 168, 720, 2016, N_MAX};
    mk_buf packed = {0};
    int n_rans = 0, n_pack = 0;
    for (int tk = 0; tk < TS_KINDS; tk++)
        for (int vk = 0; vk < V_KINDS; vk++)
            for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                uint32_t n = sizes[si];
                gen_ts(&r, tk, ts, n);
                gen_vals(&r, vk, v, n);
                mk_codec_set_fast_decode(x->c, 1);
                mk_err rc = roundtrip(x, ts, v, n, NULL);
                mk_codec_set_fast_decode(x->c, 0);
                assert_int_equal(rc, MK_OK);
                assert_int_equal(x->out.data[0] & MK_CODEC_ZSTD_FLAG, 0);
                assert_int_equal(x->out.data[1] & MK_CODEC_ZSTD_FLAG, 0);
                /* (roundtrip encoded twice: the modes are of the same payload) */
                int tm, vm;
                mk_codec_last_int_modes(x->c, &tm, &vm);
                if (vm != MK_CODEC_INT_RANS && tm != MK_CODEC_INT_RANS) { n_pack += vm == MK_CODEC_INT_PACK; continue; }
                n_rans++;
                /* the same choices with every stream packed: at least a
                 * fifth of the rANS stream's packed size larger */
                uint8_t ids[2] = {x->out.data[0], x->out.data[1]};
                size_t fast_len = x->out.len;
                mk_codec_force f = {ids[0], ids[1], -1, MK_CODEC_INT_PACK, -1, 0};
                mk_codec_set_force(x->c, &f);
                packed.len = 0;
                assert_int_equal(mk_codec_encode(x->c, ts, v, n, &packed, NULL), MK_OK);
                mk_codec_set_force(x->c, NULL);
                if (!(fast_len < packed.len))
                    fail_msg("kind %d/%d, %u samples: rANS payload %zu bytes, packed %zu", tk, vk, n, fast_len, packed.len);
            }
    printf("  fast layout: %d payloads kept a rANS stream, %d packed their values\n", n_rans, n_pack);
    assert_true(n_pack > 0);
    /* known answers on 2016 regular samples */
    for (int i = 0; i < 2016; i++) ts[i] = 1700000000000 + (int64_t)i * 300000;
    int tm, vm;
    gen_vals(&r, V_GAUSS, v, 2016);
    x->out.len = 0;
    assert_int_equal(mk_codec_encode(x->c, ts, v, 2016, &x->out, NULL), MK_OK);
    mk_codec_last_int_modes(x->c, &tm, &vm);
    size_t normal_len = x->out.len;
    int normal_vm = vm;
    mk_codec_set_fast_decode(x->c, 1);
    x->out.len = 0;
    assert_int_equal(mk_codec_encode(x->c, ts, v, 2016, &x->out, NULL), MK_OK);
    mk_codec_last_int_modes(x->c, &tm, &vm);
    printf("  gaussian 2016: normal %zu bytes (layout %d), fast %zu bytes (layout %d)\n", normal_len, normal_vm, x->out.len, vm);
    assert_int_equal(normal_vm, MK_CODEC_INT_RANS);
    assert_int_equal(vm, MK_CODEC_INT_PACK);
    assert_true(x->out.len >= normal_len && x->out.len * 4 < normal_len * 5);
    for (int i = 0; i < 2016; i++) v[i] = i % 10 == 3 ? (double)(1 + mk_rng_below(&r, 1000)) : 0.0;
    x->out.len = 0;
    assert_int_equal(mk_codec_encode(x->c, ts, v, 2016, &x->out, NULL), MK_OK);
    mk_codec_last_int_modes(x->c, &tm, &vm);
    mk_codec_set_fast_decode(x->c, 0);
    printf("  nine tenths zeros 2016: fast %zu bytes (layout %d)\n", x->out.len, vm);
    assert_int_equal(vm, MK_CODEC_INT_RANS);
    mk_buf_free(&packed);
    free(ts);
    free(v);
}

/* mk_codec_decode_values against the values encoded: with the same
 * timestamps (regular and jittered) it decodes the values alone; with
 * timestamps differing in one sample, in count or in codec, MK_ENOTFOUND
 * and nothing decoded; a damaged value column is MK_ECORRUPT. */
static void test_decode_values(void **state)
{
    ctx *x = *state;
    mk_rng r = {0xc0dec007};
    printf("test_decode_values seed=0xc0dec007\n");
    int64_t ts[720], ts2[720];
    double v[720], w[720], got[720];
    mk_buf a = {0}, b = {0};
    for (int tk = 0; tk < 2; tk++)
        for (int vk = 0; vk < V_KINDS; vk++) {
            uint32_t n = 1 + (uint32_t)mk_rng_below(&r, 720);
            gen_ts(&r, tk ? TS_JITTER : TS_REGULAR, ts, n);
            gen_vals(&r, vk, v, n);
            gen_vals(&r, (vk + 3) % V_KINDS, w, n);
            a.len = b.len = 0;
            assert_int_equal(mk_codec_encode(x->c, ts, v, n, &a, NULL), MK_OK);
            assert_int_equal(mk_codec_encode(x->c, ts, w, n, &b, NULL), MK_OK);
            uint32_t k = 0;
            assert_int_equal(mk_codec_decode_values(x->c, b.data, b.len, a.data, a.len, got, n, &k, NULL), MK_OK);
            assert_int_equal(k, n);
            for (uint32_t i = 0; i < n; i++)
                if (mk_f64_bits(got[i]) != mk_f64_bits(w[i])) fail_msg("kind %d/%d sample %u of %u differs", tk, vk, i, n);
            if (n < 3) continue;
            /* one timestamp moved (still increasing) */
            memcpy(ts2, ts, n * sizeof *ts);
            ts2[n / 2] = ts2[n / 2 - 1] + (ts2[n / 2 + 1] - ts2[n / 2 - 1] > 1 ? 1 : 0);
            if (ts2[n / 2] == ts[n / 2] || ts2[n / 2] <= ts2[n / 2 - 1]) continue;
            b.len = 0;
            assert_int_equal(mk_codec_encode(x->c, ts2, w, n, &b, NULL), MK_OK);
            k = 99;
            assert_int_equal(mk_codec_decode_values(x->c, b.data, b.len, a.data, a.len, got, n, &k, NULL), MK_ENOTFOUND);
            assert_int_equal(k, 0);
            /* one sample fewer */
            b.len = 0;
            assert_int_equal(mk_codec_encode(x->c, ts, w, n - 1, &b, NULL), MK_OK);
            assert_int_equal(mk_codec_decode_values(x->c, b.data, b.len, a.data, a.len, got, n, &k, NULL), MK_ENOTFOUND);
        }
    /* damage in the value column (its last byte, the first of the values
     * after the header and timestamps) is reported, not decoded as values */
    for (int i = 0; i < 720; i++) { ts[i] = 1700000000000 + (int64_t)i * 10000; v[i] = (double)i * 0.25; }
    a.len = 0;
    assert_int_equal(mk_codec_encode(x->c, ts, v, 720, &a, NULL), MK_OK);
    b.len = 0;
    assert_int_equal(mk_buf_append(&b, a.data, a.len - 1), MK_OK); /* truncated */
    uint32_t k = 0;
    mk_diag d = {0};
    assert_int_equal(mk_codec_decode_values(x->c, b.data, b.len, a.data, a.len, got, 720, &k, &d), MK_ECORRUPT);
    assert_int_equal(k, 0);
    assert_true(d.msg[0] != 0);
    /* too small a buffer */
    assert_int_equal(mk_codec_decode_values(x->c, a.data, a.len, a.data, a.len, got, 719, &k, NULL), MK_EINVAL);
    mk_buf_free(&a);
    mk_buf_free(&b);
}

static void test_encode_refuses(void **state)
{
    ctx *x = *state;
    int64_t ts[3] = {1, 2, 2};
    double v[3] = {1, 2, 3};
    x->out.len = 0;
    assert_int_equal(mk_codec_encode(x->c, ts, v, 0, &x->out, NULL), MK_EINVAL);
    assert_int_equal(mk_codec_encode(x->c, ts, v, 3, &x->out, NULL), MK_EINVAL);
    ts[2] = 0;
    assert_int_equal(mk_codec_encode(x->c, ts, v, 3, &x->out, NULL), MK_EINVAL);
    assert_int_equal(mk_codec_encode(x->c, ts, v, N_MAX + 1, &x->out, NULL), MK_EINVAL);
    assert_int_equal(x->out.len, 0);
    mk_codec_free(NULL);
    assert_string_equal(mk_codec_name(0x77), "unknown");
    assert_string_equal(mk_codec_name(MK_CODEC_VAL_SCALED | MK_CODEC_ZSTD_FLAG), "scaled+zstd");
}

/* Decoding damaged payloads: never a crash (ASan/UBSan builds check the
 * reads and writes), a damaged payload either fails with MK_ECORRUPT and a
 * message naming an offset inside the payload, or decodes to n <= cap
 * samples. Truncation always fails. */
static void damage(ctx *x, const int64_t *ts, const double *v, uint32_t n, const mk_codec_force *f, mk_rng *r,
                   uint64_t *n_corrupt, uint64_t *n_ok)
{
    mk_codec_set_force(x->c, f);
    x->out.len = 0;
    mk_err rc = mk_codec_encode(x->c, ts, v, n, &x->out, NULL);
    mk_codec_set_force(x->c, NULL);
    if (rc) return;
    size_t len = x->out.len;
    uint8_t *p = malloc(len + 1);
    int64_t *dts = malloc(n * sizeof *dts);
    double *dv = malloc(n * sizeof *dv);
    mk_diag d;
    uint32_t got;
    /* every truncation (exact-size heap copies, so over-reads are caught) */
    for (size_t cut = 0; cut < len; cut += 1 + cut / 64) {
        uint8_t *q = malloc(cut ? cut : 1);
        memcpy(q, x->out.data, cut);
        rc = mk_codec_decode(x->c, q, cut, dts, dv, n, &got, &d);
        if (rc != MK_ECORRUPT) fail_msg("truncated to %zu of %zu bytes: rc %d", cut, len, rc);
        assert_non_null(strstr(d.msg, "corrupt at offset"));
        free(q);
        (*n_corrupt)++;
    }
    /* single and multiple bit flips */
    for (int t = 0; t < 64; t++) {
        memcpy(p, x->out.data, len);
        int flips = 1 + (int)mk_rng_below(r, 3);
        for (int j = 0; j < flips; j++) {
            size_t at = (size_t)mk_rng_below(r, len);
            p[at] ^= (uint8_t)(1u << mk_rng_below(r, 8));
        }
        got = 0;
        rc = mk_codec_decode(x->c, p, len, dts, dv, n, &got, &d);
        if (rc == MK_OK) {
            assert_true(got >= 1 && got <= n);
            (*n_ok)++;
        } else {
            assert_true(rc == MK_ECORRUPT || rc == MK_EINVAL);
            if (rc == MK_ECORRUPT) {
                unsigned long long off = 0;
                const char *at = strstr(d.msg, "corrupt at offset ");
                assert_non_null(at);
                assert_int_equal(sscanf(at, "corrupt at offset %llu", &off), 1);
                assert_true(off <= len);
            }
            (*n_corrupt)++;
        }
    }
    free(p);
    free(dts);
    free(dv);
}

/* Data with a floor (the shape ZMEAN is for) and its adversaries. */
enum { Z_CLIPPED, Z_ALL_FLOOR, Z_ONE_ABOVE, Z_HUGE, Z_NEG_FLOOR, Z_RANDOM_DEC, Z_KINDS };

static void gen_floor(mk_rng *r, int kind, double *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        switch (kind) {
        case Z_CLIPPED: { /* an error rate: a daily wave plus noise, floored at 0 */
            double e = 40 * (1 + sin((double)i * 0.01)) + 40 * (mk_rng_unit(r) * 3 - 1.5);
            v[i] = e <= 0 ? 0 : round(e) / 10000;
            break;
        }
        case Z_ALL_FLOOR: v[i] = 0.25; break;
        case Z_ONE_ABOVE: v[i] = i == n / 2 ? 7.5 : -3.5; break;
        case Z_HUGE: /* k at both ends of the exact range, and the floor between */
            v[i] = i % 3 == 0 ? 9007199254740992.0 : i % 3 == 1 ? -9007199254740992.0 : (double)mk_rng_below(r, 5);
            break;
        case Z_NEG_FLOOR: v[i] = mk_rng_below(r, 3) ? -1e6 : -1e6 + (double)mk_rng_below(r, 1000) / 100; break;
        default: v[i] = dec(r, (int)mk_rng_below(r, 3), 1000); break;
        }
    }
}

/* Reads the predictor byte of a SCALED payload (FORMAT.md, "Chunk payload":
 * u8 ts | u8 val | uvarint n | uvarint ts_len | ts column | u8 e | u8 pred). */
static int payload_pred(const uint8_t *p, size_t len)
{
    if (len < 4 || p[1] != MK_CODEC_VAL_SCALED) return -1;
    size_t o = 2;
    uint64_t n = 0, tl = 0;
    o += mk_get_uvarint(p + o, len - o, &n);
    o += mk_get_uvarint(p + o, len - o, &tl);
    o += (size_t)tl;
    return o + 1 < len ? (p[o + 1] & 0x7f) : -1;
}

/* The ZMEAN predictors: every window x layout x a few low-bit counts, on
 * floored and adversarial data, n = 1..40 and the sizes around the two-state
 * rANS threshold up to the maximum; and the automatic choice takes ZMEAN on
 * a clipped gauge. */
static void test_zmean(void **state)
{
    ctx *x = *state;
    const uint64_t seed = 0xc0dec005;
    printf("test_zmean seed=0x%" PRIx64 "\n", seed);
    mk_rng r = {seed};
    int64_t *ts = malloc(N_MAX * sizeof *ts);
    double *v = malloc(N_MAX * sizeof *v);
    static const uint32_t big[] = {100, 1023, 1024, 1025, 4097, N_MAX - 1, N_MAX};
    uint64_t ok = 0;
    for (uint32_t si = 0; si < 40 + sizeof big / sizeof big[0]; si++) {
        uint32_t n = si < 40 ? si + 1 : big[si - 40];
        for (int zk = 0; zk < Z_KINDS; zk++) {
            gen_ts(&r, TS_REGULAR, ts, n);
            gen_floor(&r, zk, v, n);
            assert_int_equal(roundtrip(x, ts, v, n, NULL), MK_OK);
            for (int p = MK_CODEC_PRED_ZMEAN2; p <= MK_CODEC_PRED_ZMEAN32; p++)
                for (int m = 0; m < MK_CODEC_INT_COUNT; m++)
                    for (int ki = 0; ki < (n > 1100 ? 1 : 4); ki++) {
                        static const int ks[] = {-1, 0, 5, 60};
                        mk_codec_force f = no_force;
                        f.val_codec = MK_CODEC_VAL_SCALED;
                        f.pred = p;
                        f.int_mode = m;
                        f.int_k = ks[ki];
                        f.zstd = (p + m + ki) % 4 == 0;
                        assert_int_equal(roundtrip(x, ts, v, n, &f), MK_OK);
                        if (!(x->out.data[1] & MK_CODEC_ZSTD_FLAG)) /* else inside the frame */
                            assert_int_equal(payload_pred(x->out.data, x->out.len), p);
                        ok++;
                    }
        }
    }
    printf("  %" PRIu64 " forced ZMEAN round trips\n", ok);
    /* A clipped gauge, a day of it: the floor runs make ZMEAN the pick. */
    gen_ts(&r, TS_REGULAR, ts, N_MAX);
    for (uint32_t i = 0; i < N_MAX; i++) {
        double e = 40 * (1 + sin((double)i * 2 * M_PI / 8640)) + 40 * (mk_rng_unit(&r) * 3 - 1.5);
        v[i] = e <= 0 ? 0 : round(e) / 10000;
    }
    assert_int_equal(roundtrip(x, ts, v, N_MAX, NULL), MK_OK);
    int pred = payload_pred(x->out.data, x->out.len);
    printf("  clipped gauge: %zu bytes, predictor %d\n", x->out.len, pred);
    assert_true(pred >= MK_CODEC_PRED_ZMEAN2 && pred <= MK_CODEC_PRED_ZMEAN32);
    free(ts);
    free(v);
}

/* ---- the chooser against a brute-force reference ------------------- */

/* Width in bits (0 for 0). */
static unsigned ref_width(uint64_t z)
{
    unsigned w = 0;
    while (z) { w++; z >>= 1; }
    return w;
}

static uint64_t ref_zz(int64_t d) { return d >= 0 ? (uint64_t)d * 2 : (uint64_t)(-(d + 1)) * 2 + 1; }

/* floor((sum + 2^(s-1)) / 2^s) for a sum of small integers. */
static int64_t ref_mean(int64_t sum, unsigned s)
{
    int64_t d = (int64_t)1 << s, q = sum + d / 2;
    return q >= 0 ? q / d : -((-q + d - 1) / d);
}

/* Residuals of predictor pred (FOR .. MEAN32) of k[0..n), written straight
 * from the definitions in format.h (windows start as copies of k[0]);
 * returns their count. */
static uint32_t ref_residuals(int pred, const int64_t *k, uint32_t n, uint64_t *z)
{
    if (pred == MK_CODEC_PRED_FOR) {
        int64_t mn = k[0];
        for (uint32_t i = 1; i < n; i++) mn = k[i] < mn ? k[i] : mn;
        for (uint32_t i = 0; i < n; i++) z[i] = (uint64_t)(k[i] - mn);
        return n;
    }
    for (uint32_t i = 1; i < n; i++) {
        int64_t p;
        if (pred == MK_CODEC_PRED_PREV) p = k[i - 1];
        else if (pred == MK_CODEC_PRED_LIN) p = i >= 2 ? 2 * k[i - 1] - k[i - 2] : k[0];
        else {
            unsigned s = (unsigned)(pred - MK_CODEC_PRED_MEAN2 + 1);
            int64_t sum = 0;
            for (int64_t j = (int64_t)i - (1 << s); j < (int64_t)i; j++) sum += k[j < 0 ? 0 : j];
            p = ref_mean(sum, s);
        }
        z[i - 1] = ref_zz(k[i] - p);
    }
    return n - 1;
}

/* The RANS low-bit count the encoder's size model picks for z[0..m):
 * candidates around the median width, each priced by the entropy of its
 * symbol histogram over a systematic sample (one pass per k here), first
 * of equals wins. */
static unsigned ref_rans_k(const uint64_t *z, uint32_t m)
{
    uint32_t wh[65] = {0};
    for (uint32_t i = 0; i < m; i++) wh[ref_width(z[i])]++;
    uint32_t nz = m - wh[0], acc = 0;
    unsigned wmed = 1;
    for (unsigned b = 1; b <= 64 && nz; b++) {
        acc += wh[b];
        if (acc * 2 >= nz) { wmed = b; break; }
    }
    unsigned lo = wmed > 6 ? wmed - 6 : 0, hi = wmed - 1, best_k = lo;
    double best = 0;
    uint32_t step = m >= 2048 ? m / 1024 : 1;
    for (unsigned k = lo; k <= hi; k++) {
        uint32_t hist[64] = {0}, taken = 0;
        uint64_t nnz = 0;
        double extra = 0;
        unsigned top = 0;
        for (uint32_t i = 0; i < m; i += step, taken++) {
            unsigned s = 0;
            if (z[i]) {
                uint64_t h = (z[i] - 1) >> k;
                s = h < 62 ? 1 + (unsigned)h : 63;
                if (s == 63) {
                    unsigned len = 1;
                    for (uint64_t v = h - 62; v >= 0x80; v >>= 7) len++;
                    extra += 8.0 * len;
                }
                nnz++;
            }
            hist[s]++;
            top = s > top ? s : top;
        }
        double bits = (double)nnz * k + extra;
        unsigned n_sym = 0;
        for (unsigned s = 0; s <= top; s++)
            if (hist[s]) bits += (double)hist[s] * log2((double)taken / hist[s]);
        for (unsigned s = 0; s <= top; s++) n_sym += hist[s] != 0;
        bits += (n_sym - 1) / (2 * 0.6931471805599453);
        double e = bits * ((double)m / taken) + 4.0 * (top + 1) + 64;
        if (k == lo || e < best) { best = e; best_k = k; }
    }
    return best_k;
}

/* Integer-valued chunks (scaled, e = 0, no exceptions) of many shapes and
 * sizes below the ZMEAN threshold: the predictor in the payload must be
 * the one with the fewest residual bits (PREV on a tie with it, else the
 * first), and a rANS residual stream must carry the low-bit count of the
 * reference size model. Guards the chooser's shortcuts (early-stopped
 * candidates, the one-pass estimate over all k) against the plain sums. */
static void test_chooser_reference(void **state)
{
    ctx *x = *state;
    const uint64_t seed = 0xc4005e12;
    printf("test_chooser_reference seed=0x%" PRIx64 "\n", seed);
    mk_rng r = {seed};
    enum { NMAXT = 2047 };
    int64_t *ts = malloc(NMAXT * sizeof *ts), *k = malloc(NMAXT * sizeof *k);
    double *v = malloc(NMAXT * sizeof *v);
    uint64_t *z = malloc(NMAXT * sizeof *z);
    unsigned n_pred = 0, n_k = 0, by_pred[MK_CODEC_PRED_COUNT] = {0};
    for (int it = 0; it < 1500; it++) {
        uint32_t n = 3 + (uint32_t)mk_rng_below(&r, it % 3 ? 720 : NMAXT - 3);
        int shape = (int)mk_rng_below(&r, 6);
        double noise = (double)(1ull << mk_rng_below(&r, 20)), x0 = 0, slope = 0, ph = mk_rng_unit(&r) * 6;
        for (uint32_t i = 0; i < n; i++) {
            double e = (mk_rng_unit(&r) - 0.5) * noise, y;
            switch (shape) {
            case 0: x0 += e; y = x0; break;                                /* random walk */
            case 1: y = 1000 * sin(ph + i / 30.0) + e; break;              /* smooth gauge + noise */
            case 2: slope += e / 64; x0 += slope; y = x0; break;           /* trend */
            case 3: y = mk_rng_below(&r, 8) ? 0 : e; break;                /* mostly zero */
            case 4: y = (double)(i * 7) + (mk_rng_below(&r, 50) ? 0 : e); break; /* counter */
            default: y = e * mk_rng_unit(&r) * mk_rng_unit(&r); break;     /* heavy tail */
            }
            k[i] = (int64_t)llround(y);
            v[i] = (double)k[i];
        }
        gen_ts(&r, TS_REGULAR, ts, n);
        mk_codec_force f = no_force;
        f.val_codec = MK_CODEC_VAL_SCALED;
        f.zstd = 0;
        assert_int_equal(roundtrip(x, ts, v, n, &f), MK_OK);
        const uint8_t *p = x->out.data;
        size_t len = x->out.len, o = 2;
        uint64_t nn = 0, tl = 0, n_exc = 0, base = 0;
        o += mk_get_uvarint(p + o, len - o, &nn);
        o += mk_get_uvarint(p + o, len - o, &tl);
        o += (size_t)tl;
        assert_int_equal(p[o], 0); /* e = 0 */
        int pred = p[o + 1];
        assert_int_equal(pred & 0x80, 0); /* no ulp corrections */
        o += 2;
        o += mk_get_uvarint(p + o, len - o, &n_exc);
        assert_int_equal(n_exc, 0);
        o += mk_get_uvarint(p + o, len - o, &base);

        int64_t mn = k[0], mx = k[0];
        for (uint32_t i = 1; i < n; i++) {
            mn = k[i] < mn ? k[i] : mn;
            mx = k[i] > mx ? k[i] : mx;
        }
        if (mn == mx) continue; /* constant: FOR without a choice */
        uint64_t cost[MK_CODEC_PRED_ZMEAN2];
        for (int q = 0; q < MK_CODEC_PRED_ZMEAN2; q++) {
            uint32_t m = ref_residuals(q, k, n, z);
            cost[q] = 0;
            for (uint32_t i = 0; i < m; i++) cost[q] += ref_width(z[i]);
        }
        int want = MK_CODEC_PRED_PREV;
        for (int q = 0; q < MK_CODEC_PRED_ZMEAN2; q++)
            if (cost[q] < cost[want]) want = q;
        if (pred != want)
            fail_msg("chunk %d (n %u, shape %d): predictor %d, reference %d (costs %" PRIu64 " vs %" PRIu64 ")", it,
                     n, shape, pred, want, cost[pred < MK_CODEC_PRED_ZMEAN2 ? pred : 0], cost[want]);
        n_pred++;
        by_pred[pred]++;
        uint32_t m = ref_residuals(pred, k, n, z);
        if (m >= 16 && p[o] == MK_CODEC_INT_RANS) {
            unsigned kw = ref_rans_k(z, m);
            if (p[o + 1] != kw)
                fail_msg("chunk %d (n %u, shape %d): rANS k %u, reference %u", it, n, shape, p[o + 1], kw);
            n_k++;
        }
    }
    printf("  %u predictor choices, %u rANS low-bit counts checked; picks:", n_pred, n_k);
    for (int q = 0; q < MK_CODEC_PRED_ZMEAN2; q++) printf(" %u", by_pred[q]);
    printf("\n");
    assert_true(n_pred > 1000 && n_k > 300);
    free(ts);
    free(k);
    free(v);
    free(z);
}

static void test_damaged_payloads(void **state)
{
    ctx *x = *state;
    const uint64_t seed = 0xc0dec004;
    printf("test_damaged_payloads seed=0x%" PRIx64 "\n", seed);
    mk_rng r = {seed};
    int64_t *ts = malloc(N_MAX * sizeof *ts);
    double *v = malloc(N_MAX * sizeof *v);
    uint64_t n_corrupt = 0, n_ok = 0;
    static const uint32_t sizes[] = {1, 3, 50, 700, 2100}; /* 2100: two rANS states */
    for (size_t si = 0; si < 5; si++)
        for (int vk = 0; vk < V_KINDS; vk++) {
            uint32_t n = sizes[si];
            gen_ts(&r, vk % 2 ? TS_JITTER : TS_REGULAR, ts, n);
            gen_vals(&r, vk, v, n);
            damage(x, ts, v, n, NULL, &r, &n_corrupt, &n_ok);
            for (int m = 0; m < MK_CODEC_INT_COUNT; m++) {
                mk_codec_force f = no_force;
                f.ts_codec = MK_CODEC_TS_DOD;
                f.val_codec = m == 0 ? MK_CODEC_VAL_XOR : MK_CODEC_VAL_SCALED;
                f.int_mode = m;
                f.pred = (int)(m + si) % MK_CODEC_PRED_COUNT;
                f.zstd = m == 2;
                damage(x, ts, v, n, &f, &r, &n_corrupt, &n_ok);
            }
            mk_codec_force f = no_force;
            f.val_codec = MK_CODEC_VAL_RAW;
            f.zstd = 1;
            damage(x, ts, v, n, &f, &r, &n_corrupt, &n_ok);
        }
    /* ZMEAN columns on floored data, every window, PACK and RANS */
    for (size_t si = 0; si < 5; si++)
        for (int zk = 0; zk < Z_KINDS; zk++) {
            uint32_t n = sizes[si];
            gen_ts(&r, TS_REGULAR, ts, n);
            gen_floor(&r, zk, v, n);
            for (int p = MK_CODEC_PRED_ZMEAN2; p <= MK_CODEC_PRED_ZMEAN32; p++) {
                mk_codec_force f = no_force;
                f.val_codec = MK_CODEC_VAL_SCALED;
                f.pred = p;
                f.int_mode = MK_CODEC_INT_PACK + (p + zk) % 2;
                damage(x, ts, v, n, &f, &r, &n_corrupt, &n_ok);
            }
        }
    printf("  damaged payloads: %" PRIu64 " reported corrupt, %" PRIu64 " decoded (flips in value bits)\n",
           n_corrupt, n_ok);
    /* arbitrary short garbage */
    uint8_t g[64];
    int64_t dts[16];
    double dv[16];
    uint32_t got;
    for (int t = 0; t < 20000; t++) {
        size_t len = (size_t)mk_rng_below(&r, sizeof g + 1);
        for (size_t i = 0; i < len; i++) g[i] = (uint8_t)mk_rng_next(&r);
        if (len > 0 && t % 2) g[0] = (uint8_t)(1 + mk_rng_below(&r, 2) + (t % 4 == 1 ? 0x80 : 0));
        if (len > 1 && t % 2) g[1] = (uint8_t)(0x11 + mk_rng_below(&r, 4));
        if (len > 2 && t % 3) g[2] = (uint8_t)(1 + mk_rng_below(&r, 16));
        mk_err rc = mk_codec_decode(x->c, g, len, dts, dv, 16, &got, NULL);
        assert_true(rc == MK_OK || rc == MK_ECORRUPT || rc == MK_EINVAL);
        if (rc == MK_OK) assert_true(got >= 1 && got <= 16);
    }
    assert_int_equal(mk_codec_count(g, 0, &got, NULL), MK_ECORRUPT);
    free(ts);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_auto, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_forced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fuzz_split_wide_low_bits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fast_decode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zmean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chooser_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_payloads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
