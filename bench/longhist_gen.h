/*
 * bench/longhist_gen.h — the long-history generator shared by
 * bench_longhist (which stores it) and bench_codec --longhist (which
 * encodes it in memory), and the entropy floor of what it makes.
 *
 * Series s has kind s % 4, the four fields of the peers' fleet generator
 * (../shared/peers/gen_fleet.py): qps (integer, daily cycle, Poisson-like
 * noise), p95_ms (2 decimals, grows with load), error_rate (4 decimals,
 * mostly 0 .. 0.02, often 0) and heartbeat (1, rarely 0). The noise n is
 * U1 + U2 + U3 - 1.5 (three uniforms, Irwin-Hall: about normal, sd 0.5).
 *
 * The floor: given the generator's hidden state (level, time of day), a
 * value v has probability P(v) = P(n lands in the interval that rounds to
 * v), computed exactly from the Irwin-Hall CDF; -log2 P(v) summed over the
 * samples is what a lossless coder needs at the very least even if it knew
 * the state, so no codec stores this data in fewer bits. The heartbeat's
 * rare zeros are priced as free (a lower bound stays a lower bound).
 */
#ifndef MK_BENCH_LONGHIST_GEN_H
#define MK_BENCH_LONGHIST_GEN_H

#include <math.h>
#include <stdint.h>

#define LH_STEP_MS 10000
#define LH_T0 ((int64_t)1700006400000) /* 2023-11-15T00:00:00Z, a whole hour */

typedef struct lh_gen {
    uint64_t rng;
    double level;
    int kind; /* 0 qps, 1 p95_ms, 2 error_rate, 3 heartbeat */
} lh_gen;

static double lh_day_wave[8640]; /* sin over a day, one per 10 s step */

static inline void lh_init(void)
{
    for (int i = 0; i < 8640; i++) lh_day_wave[i] = sin(2 * M_PI * i / 8640.0);
}

/* The generator of series s (0-based). */
static inline lh_gen lh_series(int s)
{
    return (lh_gen){0x9e3779b97f4a7c15ull * (uint64_t)(s + 1), 20 + s % 30, s % 4};
}

static inline double lh_unit(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (double)(*s >> 11) * 0x1.0p-53;
}

/* CDF of n = U1 + U2 + U3 - 1.5. */
static inline double lh_noise_cdf(double n)
{
    double x = n + 1.5;
    if (x <= 0) return 0;
    if (x >= 3) return 1;
    if (x <= 1) return x * x * x / 6;
    if (x <= 2) return (-2 * x * x * x + 9 * x * x - 9 * x + 3) / 6;
    return 1 - (3 - x) * (3 - x) * (3 - x) / 6;
}

/* The next sample of g at ts; adds -log2 P(sample | state) to *floor_bits
 * when it is not NULL. */
static inline double lh_sample(lh_gen *g, int64_t ts, double *floor_bits)
{
    double w = lh_day_wave[(ts / LH_STEP_MS) % 8640];
    double n = lh_unit(&g->rng) + lh_unit(&g->rng) + lh_unit(&g->rng) - 1.5;
    double lam = g->level * 10 * (1.2 + w);
    double v, p = 1;
    switch (g->kind) {
    case 0: { /* qps = round(lam + 2 sqrt(lam) n) */
        double sd = 2 * sqrt(lam);
        v = round(lam + n * sd);
        if (floor_bits) p = lh_noise_cdf((v + 0.5 - lam) / sd) - lh_noise_cdf((v - 0.5 - lam) / sd);
        break;
    }
    case 1: { /* p95 in hundredths k = round(b + 600 |n|), b = 4000 + 5 lam */
        double k = round((40 + lam * 0.05 + fabs(n) * 6) * 100);
        v = k / 100;
        if (floor_bits) {
            double b = 4000 + 5 * lam, lo = (k - 0.5 - b) / 600, hi = (k + 0.5 - b) / 600;
            if (lo < 0) lo = 0;
            p = hi <= lo ? 0 : 2 * (lh_noise_cdf(hi) - lh_noise_cdf(lo)); /* |n| folds both signs */
        }
        break;
    }
    case 2: { /* error rate in 1e-4: k = round(b + 40 n), b = 40 (1 + w); 0 when e <= 0 */
        double e = 0.004 * (1 + w) + n * 0.004;
        double k = e <= 0 ? 0 : round(e * 10000);
        v = k / 10000;
        if (floor_bits) {
            double b = 40 * (1 + w);
            p = k == 0 ? lh_noise_cdf((0.5 - b) / 40)
                       : lh_noise_cdf((k + 0.5 - b) / 40) - lh_noise_cdf((k - 0.5 - b) / 40);
        }
        break;
    }
    default: /* heartbeat */
        v = lh_unit(&g->rng) < 1e-5 ? 0 : 1;
        break;
    }
    /* rounding at interval edges can give p 0 for a value that did occur:
     * price it at 30 bits, far more than any real outcome costs */
    if (floor_bits) *floor_bits += p > 1e-9 ? -log2(p) : 30;
    return v;
}

#endif
