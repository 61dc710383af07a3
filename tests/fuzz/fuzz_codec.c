/*
 * tests/fuzz/fuzz_codec.c — libFuzzer target for the chunk codecs.
 *
 * Every input is used twice:
 *  1. as a payload: mk_codec_decode must not crash, read outside the input
 *     or write past cap, whatever the bytes (MK_OK or MK_ECORRUPT/EINVAL);
 *  2. as samples: a small header picks the codec choices (automatic or
 *     forced), the rest becomes timestamps and values (raw doubles, short
 *     decimals, decimals a few ulps off, repeats, small integers), which
 *     are encoded twice (the bytes must be identical), decoded, and
 *     compared bit for bit.
 * The forced predictor (header byte 1, low nibble - 1) spans every
 * MK_CODEC_PRED_* id, the ZMEAN ones (8..12) included; the seeds in
 * tests/fuzz/corpus/fuzz_codec/ start it on ZMEAN payloads and samples.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "codec_internal.h"
#include "format.h"
#include "util.h"

static mk_codec *g_codec;
static int64_t g_ts[MK_CHUNK_MAX_SAMPLES], g_dts[MK_CHUNK_MAX_SAMPLES];
static double g_v[MK_CHUNK_MAX_SAMPLES], g_dv[MK_CHUNK_MAX_SAMPLES];

/* Reads up to n bytes (zeros past the end) as a little-endian integer. */
static uint64_t take(const uint8_t **p, const uint8_t *end, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n && *p < end; i++) v |= (uint64_t)*(*p)++ << (8 * i);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_codec && mk_codec_new(&g_codec)) abort();
    mk_codec *c = g_codec;

    /* 1. Arbitrary bytes as a payload (a small cap too, to hit EINVAL). */
    uint32_t got = 0;
    mk_err rc = mk_codec_decode(c, data, size, g_dts, g_dv, MK_CHUNK_MAX_SAMPLES, &got, NULL);
    if (rc != MK_OK && rc != MK_ECORRUPT) abort();
    if (rc == MK_OK && (got < 1 || got > MK_CHUNK_MAX_SAMPLES)) abort();
    rc = mk_codec_decode(c, data, size, g_dts, g_dv, 3, &got, NULL);
    if (rc != MK_OK && rc != MK_ECORRUPT && rc != MK_EINVAL) abort();
    uint32_t cnt;
    (void)mk_codec_count(data, size, &cnt, NULL);

    /* 2. Bytes as samples. */
    if (size < 4) return 0;
    const uint8_t *p = data, *end = data + size;
    uint8_t h0 = *p++, h1 = *p++, h2 = *p++;
    mk_codec_force f = {-1, -1, -1, -1, -1, -1};
    int is_forced = h0 & 1;
    if (is_forced) {
        static const int tsc[] = {-1, MK_CODEC_TS_DOD, MK_CODEC_TS_CONST};
        static const int vc[] = {-1, MK_CODEC_VAL_XOR, MK_CODEC_VAL_SCALED, MK_CODEC_VAL_CONST, MK_CODEC_VAL_RAW};
        f.ts_codec = tsc[(h0 >> 1) % 3];
        f.val_codec = vc[(h0 >> 3) % 5];
        f.pred = (int)(h1 & 15) - 1 < MK_CODEC_PRED_COUNT ? (int)(h1 & 15) - 1 : -1;
        f.int_mode = (int)(h1 >> 4) % (MK_CODEC_INT_COUNT + 1) - 1;
        f.int_k = (int)(h2 & 63) - 1;
        f.zstd = (int)((h0 >> 6) % 3) - 1;
    }
    int is_regular = (h2 >> 6) == 1;
    int64_t step = 1 + (int64_t)(h2 & 63) * 1000;
    uint32_t n = 0;
    int64_t t = (int64_t)take(&p, end, 8);
    double prev = 0;
    while (p < end && n < MK_CHUNK_MAX_SAMPLES) {
        uint8_t kind = *p++;
        double v;
        switch (kind & 3) {
        case 0: v = mk_bits_f64(take(&p, end, 8)); break;
        case 1: {
            static const double p10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
            v = (double)(int16_t)take(&p, end, 2) / p10[(kind >> 2) % 7];
            if (kind & 0x80) /* a decimal a few ulps off */
                v = mk_bits_f64(mk_f64_bits(v) + (uint64_t)(int64_t)((kind >> 4 & 7) - 3));
            break;
        }
        case 2: v = prev; break;
        default: v = (double)(kind >> 2); break;
        }
        if (n > 0) {
            uint64_t d = is_regular ? (uint64_t)step : 1 + (kind >> 5) * 997u;
            if ((kind & 0xe0) == 0xe0 && !is_regular) d = 1 + (take(&p, end, 8) >> (kind & 7));
            if (d == 0) d = 1; /* 1 + UINT64_MAX wrapped */
            uint64_t room = (uint64_t)INT64_MAX - (uint64_t)t;
            if (room == 0) break;
            if (d > room) d = room;
            t = (int64_t)((uint64_t)t + d);
        }
        g_ts[n] = t;
        g_v[n] = v;
        prev = v;
        n++;
    }
    if (n == 0) return 0;

    mk_buf a = {0}, b = {0};
    mk_codec_set_force(c, is_forced ? &f : NULL);
    mk_chunk_summary s;
    rc = mk_codec_encode(c, g_ts, g_v, n, &a, &s);
    if (rc == MK_EINVAL && is_forced) goto out; /* CONST forced on data it cannot hold */
    if (rc != MK_OK) abort();
    if (mk_codec_encode(c, g_ts, g_v, n, &b, NULL) != MK_OK) abort();
    if (a.len != b.len || memcmp(a.data, b.data, a.len)) abort(); /* deterministic */
    if (mk_codec_decode(c, a.data, a.len, g_dts, g_dv, MK_CHUNK_MAX_SAMPLES, &got, NULL) != MK_OK) abort();
    if (got != n) abort();
    if (memcmp(g_dts, g_ts, n * sizeof *g_ts) || memcmp(g_dv, g_v, n * sizeof *g_v)) abort();
    if (s.count != n || s.first_ts_ms != g_ts[0] || s.last_ts_ms != g_ts[n - 1]) abort();
out:
    mk_codec_set_force(c, NULL);
    mk_buf_free(&a);
    mk_buf_free(&b);
    return 0;
}
