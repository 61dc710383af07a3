/*
 * tests/unit/test_xorchunk.c — the head's Gorilla chunk: bit-exact round trip
 * of every sample appended (checked against the input arrays themselves),
 * on random and adversarial timestamps and values, decoding after every
 * append, refusal of non-increasing timestamps, and small memory growth.
 * Seeds are fixed and printed.
 */
#include "testutil.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "xorchunk.h"

/* Appends ts/vals, decodes, and checks every sample bit for bit. */
static void roundtrip(const int64_t *ts, const double *vals, uint32_t n)
{
    mk_xor c;
    memset(&c, 0, sizeof c);
    for (uint32_t i = 0; i < n; i++) assert_int_equal(mk_xor_append(&c, ts[i], vals[i]), MK_OK);
    assert_int_equal(c.count, n);
    int64_t *dts = malloc((n + 1) * sizeof *dts);
    double *dv = malloc((n + 1) * sizeof *dv);
    assert_non_null(dts);
    assert_non_null(dv);
    mk_xor_decode(&c, dts, dv);
    for (uint32_t i = 0; i < n; i++) {
        if (dts[i] != ts[i] || mk_f64_bits(dv[i]) != mk_f64_bits(vals[i])) {
            fail_msg("sample %u: got (%" PRId64 ", %016" PRIx64 ") want (%" PRId64 ", %016" PRIx64 ")",
                     i, dts[i], mk_f64_bits(dv[i]), ts[i], mk_f64_bits(vals[i]));
        }
    }
    free(dts);
    free(dv);
    mk_xor_free(&c);
    assert_null(c.bits);
    assert_int_equal(c.count, 0);
}

static void test_empty_and_free(void **state)
{
    (void)state;
    mk_xor c;
    memset(&c, 0, sizeof c);
    assert_int_equal(mk_xor_bytes(&c), 0);
    mk_xor_decode(&c, NULL, NULL); /* count 0: touches nothing */
    mk_xor_free(&c);
    mk_xor_free(&c); /* twice is fine: back to empty */
    assert_int_equal(c.count, 0);
}

static void test_one_sample(void **state)
{
    (void)state;
    static const int64_t tss[] = {0, -1, INT64_MIN, INT64_MAX, 1700000000000};
    static const double vs[] = {0.0, -0.0, 1.5, -INFINITY, INFINITY};
    for (size_t i = 0; i < 5; i++) roundtrip(&tss[i], &vs[i], 1);
}

static void test_rejects_non_increasing(void **state)
{
    (void)state;
    mk_xor c;
    memset(&c, 0, sizeof c);
    assert_int_equal(mk_xor_append(&c, 1000, 1.0), MK_OK);
    assert_int_equal(mk_xor_append(&c, 2000, 2.0), MK_OK);
    uint32_t bits = c.n_bits;
    assert_int_equal(mk_xor_append(&c, 2000, 3.0), MK_EINVAL);
    assert_int_equal(mk_xor_append(&c, 1500, 3.0), MK_EINVAL);
    assert_int_equal(mk_xor_append(&c, INT64_MIN, 3.0), MK_EINVAL);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.n_bits, bits);
    assert_int_equal(mk_xor_append(&c, 2001, 3.0), MK_OK);
    int64_t ts[3];
    double v[3];
    mk_xor_decode(&c, ts, v);
    assert_true(ts[0] == 1000 && ts[1] == 2000 && ts[2] == 2001);
    assert_true(v[0] == 1.0 && v[1] == 2.0 && v[2] == 3.0);
    mk_xor_free(&c);
}

/* Values that stress the XOR windows: every class of double. */
static double adversarial_value(mk_rng *r)
{
    switch (mk_rng_below(r, 16)) {
    case 0: return mk_bits_f64(0x7ff8000000000000ull | (mk_rng_next(r) & 0x7ffffffffffffull)); /* qNaN + payload */
    case 1: return mk_bits_f64(0x7ff0000000000001ull | (mk_rng_next(r) & 0x3ffffffffffffull)); /* sNaN */
    case 2: return mk_bits_f64(0xfff8000000000000ull | mk_rng_below(r, 1000));                  /* -NaN */
    case 3: return INFINITY;
    case 4: return -INFINITY;
    case 5: return -0.0;
    case 6: return 0.0;
    case 7: return mk_bits_f64(mk_rng_next(r) & 0x000fffffffffffffull); /* denormal */
    case 8: return DBL_MIN;
    case 9: return DBL_MAX;
    case 10: return -DBL_TRUE_MIN;
    case 11: return (double)(1ull << 53) + (double)mk_rng_below(r, 2) * 2.0;
    case 12: return mk_bits_f64(mk_rng_next(r)); /* any bit pattern */
    case 13: return (double)(int64_t)mk_rng_below(r, 100000) / 100.0;
    default: return 42.0;
    }
}

static int64_t adversarial_step(mk_rng *r, int64_t last)
{
    uint64_t room = (uint64_t)INT64_MAX - (uint64_t)last; /* 0 only at INT64_MAX */
    uint64_t step;
    switch (mk_rng_below(r, 10)) {
    case 0: step = 1; break;
    case 1: step = 1 + mk_rng_below(r, 1u << 13); break;
    case 2: step = 1 + mk_rng_below(r, 1u << 17); break;
    case 3: step = 1 + mk_rng_below(r, 1u << 21); break;
    case 4: { /* huge; two statements: operand order is unspecified */
        unsigned sh = 1 + (unsigned)mk_rng_below(r, 62);
        step = 1 + (mk_rng_next(r) >> sh);
        break;
    }
    default: step = 10000; break;
    }
    if (step > room) step = room;
    return (int64_t)((uint64_t)last + step);
}

static void test_adversarial(void **state)
{
    (void)state;
    const uint64_t seed = 0x5eed0001;
    printf("test_adversarial seed=0x%" PRIx64 "\n", seed);
    mk_rng r = {seed};
    enum { N = 4000 };
    int64_t *ts = malloc(N * sizeof *ts);
    double *v = malloc(N * sizeof *v);
    for (int round = 0; round < 50; round++) {
        uint32_t n = 1 + (uint32_t)mk_rng_below(&r, N);
        int64_t t = round % 3 == 0 ? INT64_MIN : (int64_t)(mk_rng_next(&r) >> 2) - (INT64_MAX >> 2);
        uint32_t k = 0;
        for (; k < n; k++) {
            ts[k] = t;
            v[k] = adversarial_value(&r);
            if (t == INT64_MAX) { k++; break; }
            t = adversarial_step(&r, t);
        }
        roundtrip(ts, v, k);
    }
    free(ts);
    free(v);
}

/* The extreme timestamp jumps: INT64_MIN .. INT64_MAX, deltas beyond
 * INT64_MAX, alternating huge and tiny deltas. */
static void test_timestamp_extremes(void **state)
{
    (void)state;
    const int64_t a[] = {INT64_MIN, INT64_MAX};
    const double av[] = {1.0, 2.0};
    roundtrip(a, av, 2);
    const int64_t b[] = {INT64_MIN, INT64_MIN + 1, 0, 1, INT64_MAX - 1, INT64_MAX};
    const double bv[] = {1, 1, 1, 1, 1, 1};
    roundtrip(b, bv, 6);
    const int64_t c[] = {-3000000, -2000000, -1000000, -1, 0, 1, 10000, 20000, 30001, 39999};
    const double cv[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    roundtrip(c, cv, 10);
    /* Every dod bucket boundary. */
    const int64_t edges[] = {0, 1, (1 << 13) - 1, 1 << 13, -(1 << 13), -(1 << 13) - 1,
                             (1 << 16) - 1, 1 << 16, -(1 << 16), -(1 << 16) - 1,
                             (1 << 19) - 1, 1 << 19, -(1 << 19), -(1 << 19) - 1};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        /* deltas D, D + dod: keep both positive */
        int64_t d0 = 2000000;
        int64_t t3[3] = {0, d0, d0 + d0 + edges[i]};
        double v3[3] = {1, 2, 3};
        roundtrip(t3, v3, 3);
    }
}

/* Realistic shapes: regular 10 s with jitter, decimals, counters, flags. */
static void test_realistic(void **state)
{
    (void)state;
    const uint64_t seed = 0x5eed0002;
    printf("test_realistic seed=0x%" PRIx64 "\n", seed);
    mk_rng r = {seed};
    enum { N = 8192 };
    int64_t *ts = malloc(N * sizeof *ts);
    double *v = malloc(N * sizeof *v);
    for (int kind = 0; kind < 6; kind++) {
        int64_t t = 1700000000000;
        double x = 100.0;
        for (uint32_t i = 0; i < N; i++) {
            ts[i] = t;
            t += 10000 + (kind & 1 ? (int64_t)mk_rng_below(&r, 21) - 10 : 0);
            switch (kind) {
            case 0: v[i] = 7.0; break;
            case 1: v[i] = (double)(int64_t)(x * 100 + 0.5) / 100; x += mk_rng_unit(&r) - 0.5; break;
            case 2: v[i] = (double)(i * 17); break;
            case 3: v[i] = mk_rng_below(&r, 100) < 2 ? 0.0 : 1.0; break;
            case 4: v[i] = mk_rng_unit(&r); break;
            default: v[i] = (double)mk_rng_below(&r, 10000) / 10000.0; break;
            }
        }
        roundtrip(ts, v, N);
    }
    /* A regular constant series costs about 2 bits a sample. */
    mk_xor c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < 720; i++) assert_int_equal(mk_xor_append(&c, 1000 + i * 10000, 3.5), MK_OK);
    printf("regular constant 720 samples: %u bits, %zu bytes held\n", c.n_bits, mk_xor_bytes(&c));
    assert_true(c.n_bits <= 128 + 21 + 2 * 719);
    mk_xor_free(&c);
    free(ts);
    free(v);
}

/* Decoding after every append sees exactly the prefix appended so far. */
static void test_decode_every_step(void **state)
{
    (void)state;
    const uint64_t seed = 0x5eed0003;
    printf("test_decode_every_step seed=0x%" PRIx64 "\n", seed);
    mk_rng r = {seed};
    enum { N = 600 };
    int64_t ts[N], dts[N];
    double v[N], dv[N];
    mk_xor c;
    memset(&c, 0, sizeof c);
    int64_t t = -5000;
    for (uint32_t i = 0; i < N; i++) {
        if (i > 0 && t == ts[i - 1]) break; /* reached INT64_MAX */
        ts[i] = t;
        v[i] = adversarial_value(&r);
        t = adversarial_step(&r, t);
        assert_int_equal(mk_xor_append(&c, ts[i], v[i]), MK_OK);
        mk_xor_decode(&c, dts, dv);
        for (uint32_t j = 0; j <= i; j++) {
            assert_true(dts[j] == ts[j]);
            assert_true(mk_f64_bits(dv[j]) == mk_f64_bits(v[j]));
        }
    }
    mk_xor_free(&c);
}

/* Memory: the first sample takes a small allocation and growth stays within
 * ~25% (+ a small constant) of the bytes written. */
static void test_memory_growth(void **state)
{
    (void)state;
    mk_xor c;
    memset(&c, 0, sizeof c);
    mk_rng r = {7};
    assert_int_equal(mk_xor_append(&c, 0, 1.0), MK_OK);
    assert_true(mk_xor_bytes(&c) <= 64);
    size_t worst_over = 0;
    for (int i = 1; i < 20000; i++) {
        assert_int_equal(mk_xor_append(&c, (int64_t)i * 10000, mk_rng_unit(&r)), MK_OK);
        size_t used = (c.n_bits + 7) / 8;
        size_t held = mk_xor_bytes(&c);
        assert_true(held >= used + 9);
        size_t over = held - used;
        if (over > used / 4 + 64 && over > worst_over) worst_over = over;
    }
    assert_int_equal(worst_over, 0);
    mk_xor_free(&c);
    assert_int_equal(mk_xor_bytes(&c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_free),
        cmocka_unit_test(test_one_sample),
        cmocka_unit_test(test_rejects_non_increasing),
        cmocka_unit_test(test_adversarial),
        cmocka_unit_test(test_timestamp_extremes),
        cmocka_unit_test(test_realistic),
        cmocka_unit_test(test_decode_every_step),
        cmocka_unit_test(test_memory_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
