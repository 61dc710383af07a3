/*
 * detect/detector.c — the streaming detectors, their combiner and the
 * database-backed history provider (see detector.h for the picture).
 *
 * Life of one series' detector, counted in samples n:
 *
 *   n < warmup/2       collect mean and spread of the level (Welford); these
 *                      fix the normalisation (c, s) of the linear model's
 *                      inputs and the scale floors, so the model sees
 *                      numbers near 1 whatever the unit of the series
 *   warmup/2 <= n      the linear model learns; residual spread and the
 *                      rolling Gaussian of the evidence settle
 *   n >= warmup        scores are reported
 *
 * Invariants: all state lives in struct mk_det (fixed size, no pointers to
 * heap except the borrowed parameter set); a sample that is NaN or infinite
 * changes nothing and scores 0; samples must arrive in time order (an older
 * or equal timestamp is scored like any other sample — the detector does
 * not look at gaps — but the seasonal cache assumes time moves forward).
 */
#include "detector.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define DAY_MS (86400LL * 1000)
#define N_LAGS 2
static const int64_t k_lag_ms[N_LAGS] = {DAY_MS, 7 * DAY_MS};
#define SHORT_MAX 8
#define MAD_EVERY 4

/* ---- EWMA -------------------------------------------------------------- */

void mk_det_ewma_init(mk_det_ewma *e) { memset(e, 0, sizeof *e); }

void mk_det_ewma_update(mk_det_ewma *e, double alpha, double x)
{
    if (e->n == 0) {
        e->mean = x;
        e->var = 0;
    } else {
        double d = x - e->mean;
        e->mean += alpha * d;
        e->var = (1.0 - alpha) * (e->var + alpha * d * d);
    }
    if (e->n < UINT32_MAX) e->n++;
}

/* ---- windowed median / MAD -------------------------------------------- */

void mk_det_mad_init(mk_det_mad *m, unsigned cap)
{
    memset(m, 0, sizeof *m);
    if (cap < 1) cap = 1;
    if (cap > MK_DET_MAD_MAX) cap = MK_DET_MAD_MAX;
    m->cap = (uint8_t)cap;
}

/* Index of the first element of a[0..n) not less than x (a sorted). */
static unsigned lower_bound_f(const float *a, unsigned n, float x)
{
    unsigned lo = 0, hi = n;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (a[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

void mk_det_mad_push(mk_det_mad *m, double x)
{
    float f = (float)x;
    unsigned n = m->n;
    float *a = m->sorted;
    if (n < m->cap) {
        unsigned j = lower_bound_f(a, n, f);
        for (unsigned k = n; k > j; k--) a[k] = a[k - 1];
        a[j] = f;
        m->n = (uint8_t)(n + 1);
    } else {
        /* Replace the oldest value (it is in the sorted copy exactly, the
         * same float, so its lower bound finds it) by the new one, shifting
         * only the values between the two positions. */
        unsigned i = lower_bound_f(a, n, m->ring[m->head]);
        unsigned j = lower_bound_f(a, n, f);
        if (j > i) {
            j--; /* position in the array without a[i] */
            for (unsigned k = i; k < j; k++) a[k] = a[k + 1];
        } else {
            for (unsigned k = i; k > j; k--) a[k] = a[k - 1];
        }
        a[j] = f;
    }
    m->ring[m->head] = f;
    m->head = (uint8_t)((m->head + 1) % m->cap);
}

void mk_det_mad_get(const mk_det_mad *m, double *median, double *mad)
{
    unsigned n = m->n;
    if (n == 0) {
        *median = 0;
        *mad = 0;
        return;
    }
    const float *a = m->sorted;
    double med = (n & 1) ? a[n / 2] : 0.5 * ((double)a[n / 2 - 1] + (double)a[n / 2]);
    /* MAD: the deviations |a[i] - med| are two sorted runs walking outwards
     * from the middle; merge them until the middle rank(s). */
    /* a[lo] <= med <= a[hi]; for odd n, a[lo] is the median itself. */
    int lo, hi;
    if ((n & 1) == 0) {
        lo = (int)n / 2 - 1;
        hi = (int)n / 2;
    } else {
        lo = (int)n / 2;
        hi = lo + 1;
    }
    unsigned want = (n - 1) / 2; /* rank of the (lower) middle deviation */
    double d_prev = 0, d = 0;
    for (unsigned k = 0; k <= n / 2; k++) {
        double dl = lo >= 0 ? med - a[lo] : DBL_MAX;
        double dh = hi < (int)n ? a[hi] - med : DBL_MAX;
        d_prev = d;
        if (dl <= dh) { d = dl; lo--; }
        else { d = dh; hi++; }
        if (k == want) {
            if (n & 1) break;
        } else if (k == want + 1) {
            break;
        }
    }
    *median = med;
    *mad = (n & 1) ? d : 0.5 * (d_prev + d);
}

/* ---- recursive least squares ------------------------------------------ */

#define P_ MK_DET_RLS_P

void mk_det_rls_init(mk_det_rls *r, double delta)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < P_; i++) r->P[i * P_ + i] = delta;
}

double mk_det_rls_predict(const mk_det_rls *r, const double *x)
{
    double y = 0;
    for (int i = 0; i < P_; i++) y += r->w[i] * x[i];
    return y;
}

double mk_det_rls_update(mk_det_rls *r, const double *x, double y, double lambda, double err_clip,
                         double p_max)
{
    /* The detector's hottest loop nest: fixed sizes, fully unrolled. */
    double *P = r->P, *w = r->w;
    double px[P_]; /* P x (P symmetric: also x' P) */
    double denom = 0, tr = 0, pred = 0;
#pragma GCC unroll 5
    for (int i = 0; i < P_; i++) {
        double s = 0;
#pragma GCC unroll 5
        for (int j = 0; j < P_; j++) s += P[i * P_ + j] * x[j];
        px[i] = s;
        tr += P[i * P_ + i];
        denom += x[i] * s;
        pred += w[i] * x[i];
    }
    double lam = tr > p_max ? 1.0 : lambda;
    denom += lam;
    double err = y - pred;
    double e = err;
    if (err_clip > 0) {
        if (e > err_clip) e = err_clip;
        else if (e < -err_clip) e = -err_clip;
    }
    double inv = 1.0 / denom, inv_lam = 1.0 / lam;
#pragma GCC unroll 5
    for (int i = 0; i < P_; i++) {
        double ki = px[i] * inv;
        w[i] += ki * e;
#pragma GCC unroll 5
        for (int j = i; j < P_; j++) {
            double v = (P[i * P_ + j] - ki * px[j]) * inv_lam;
            P[i * P_ + j] = v;
            P[j * P_ + i] = v;
        }
    }
    return err;
}

/* ---- parameters ------------------------------------------------------- */

void mk_det_params_init(mk_det_params *p)
{
#define MK_DET_P_INIT_(name, def) p->name = (def);
    MK_DET_PARAMS(MK_DET_P_INIT_)
#undef MK_DET_P_INIT_
}

mk_err mk_det_params_set(mk_det_params *p, const char *name, double v, mk_diag *diag)
{
    if (!isfinite(v))
        return mk_diag_set(diag, MK_ERANGE, "detector parameter %s: %g is not finite", name, v);
#define MK_DET_P_SET_(field, def)                                                            \
    if (strcmp(name, #field) == 0) {                                                         \
        p->field = v;                                                                        \
        goto check;                                                                          \
    }
    MK_DET_PARAMS(MK_DET_P_SET_)
#undef MK_DET_P_SET_
    return mk_diag_set(diag, MK_ENOTFOUND, "no detector parameter named '%s'", name);
check:
    if (p->mad_window < 1 || p->mad_window > MK_DET_MAD_MAX || p->warmup < 2 ||
        p->ewma_alpha <= 0 || p->ewma_alpha > 1 || p->rls_lambda <= 0 || p->rls_lambda > 1 ||
        p->resid_alpha <= 0 || p->resid_alpha > 1 || p->lik_alpha <= 0 || p->lik_alpha > 1 ||
        p->lik_short < 1 || p->lik_short > SHORT_MAX || p->season_bucket_s < 1 ||
        p->smooth_alpha <= 0 || p->smooth_alpha > 1 || p->suppress < 0)
        return mk_diag_set(diag, MK_ERANGE, "detector parameter %s = %g is out of range", name,
                           v);
    return MK_OK;
}

mk_err mk_det_params_parse(mk_det_params *p, const char *assignment, mk_diag *diag)
{
    const char *eq = strchr(assignment, '=');
    char name[64];
    if (!eq || (size_t)(eq - assignment) >= sizeof name)
        return mk_diag_set(diag, MK_EINVAL, "detector parameter '%s': expected name=value",
                           assignment);
    memcpy(name, assignment, (size_t)(eq - assignment));
    name[eq - assignment] = 0;
    char *end;
    double v = strtod(eq + 1, &end);
    if (end == eq + 1 || *end)
        return mk_diag_set(diag, MK_EINVAL, "detector parameter %s: '%s' is not a number", name,
                           eq + 1);
    return mk_det_params_set(p, name, v, diag);
}

/* ---- the detector ----------------------------------------------------- */

typedef struct season_cache {
    int64_t bucket; /* bucket index the answer is for; INT64_MIN = none */
    float mean, sd; /* float-rounded: see the header's invariants */
    uint8_t has;
} season_cache;

struct mk_det {
    const mk_det_params *p; /* borrowed */
    uint64_t n;             /* finite samples seen */
    /* Welford over the first warmup/2 samples, then frozen normalisation. */
    double w_mean, w_m2;
    double c, s;         /* model inputs are (v - c) / s */
    double floor_raw;    /* scale floor in the series' unit */
    mk_det_ewma ewma;    /* of the raw value */
    mk_det_mad mad;      /* of the raw value */
    mk_det_rls rls;      /* on normalised values */
    double u1, u2, smooth; /* previous two normalised values, smoothed value */
    double resid_var;    /* running mean square of the RLS residual */
    double absdev;       /* long-run mean |v - window median| */
    double short_mean;   /* EWMA of v with shift_alpha */
    double med, mad_v;   /* window median and MAD as last computed */
    uint8_t mad_age;     /* samples since they were computed, mod MAD_EVERY */
    double lik_mean, lik_var; /* rolling Gaussian over the evidence */
    double shortv[SHORT_MAX];
    uint32_t short_n, short_head;
    uint32_t mute_left; /* samples still muted after a detection */
    double mute_z;      /* evidence (z) of the detection that muted */
    double z_prev;      /* calibrated evidence of the previous sample */
    double inv_shift_se; /* 1 / standard error of an EWMA of unit-variance noise */
    double inv_s;       /* 1 / s */
    season_cache season[N_LAGS];
    int64_t bucket_lo_ms, bucket_hi_ms; /* the bucket both caches answer */
    double short_sum;   /* sum of shortv[0..short_n) */
    double rec_max;     /* highest evidence seen after the warm-up */
};

size_t mk_det_state_bytes(void) { return sizeof(struct mk_det); }

void mk_det_reset(mk_det *d)
{
    const mk_det_params *p = d->p;
    memset(d, 0, sizeof *d);
    d->p = p;
    mk_det_ewma_init(&d->ewma);
    mk_det_mad_init(&d->mad, (unsigned)p->mad_window);
    mk_det_rls_init(&d->rls, p->rls_delta);
    d->s = 1;
    d->resid_var = 1;
    d->inv_shift_se = 1.0 / sqrt(p->shift_alpha / (2 - p->shift_alpha));
    d->inv_s = 1;
    for (int i = 0; i < N_LAGS; i++) d->season[i].bucket = INT64_MIN;
}

mk_err mk_det_new(const mk_det_params *params, mk_det **out, mk_diag *diag)
{
    *out = NULL;
    mk_det *d = malloc(sizeof *d);
    if (!d) return mk_diag_set(diag, MK_ENOMEM, "detector: out of memory (%zu bytes)", sizeof *d);
    d->p = params;
    mk_det_reset(d);
    *out = d;
    return MK_OK;
}

void mk_det_free(mk_det *d) { free(d); }

/* Refreshes the cached baseline of lag i for the bucket holding ts_ms. */
static mk_err season_fetch(mk_det *d, int i, int64_t ts_ms, mk_det_history_fn history, void *ctx,
                           mk_diag *diag)
{
    int64_t b_ms = (int64_t)d->p->season_bucket_s * 1000;
    int64_t k = mk_floordiv(ts_ms, b_ms);
    season_cache *sc = &d->season[i];
    if (sc->bucket == k) return MK_OK;
    int64_t from = k * b_ms - k_lag_ms[i];
    mk_det_agg a = {0, 0, 0};
    mk_err rc = history(ctx, from, from + b_ms, &a, diag);
    if (rc) return rc;
    sc->bucket = k;
    sc->has = 0;
    if (a.count >= (uint64_t)d->p->season_min_count && a.count > 0) {
        double m = a.sum / (double)a.count;
        double var = a.sumsq / (double)a.count - m * m;
        sc->mean = (float)m;
        sc->sd = (float)sqrt(var > 0 ? var : 0);
        sc->has = isfinite(sc->mean) && isfinite(sc->sd);
    }
    return MK_OK;
}

/* Surprise of evidence z: t = -log(2 q) with q the Gaussian upper tail
 * probability of z (t = 0 at z = 0), mapped to [0, 1) as t / (t + t0).
 * Unlike HTM's clamp at q = 1e-10 this never saturates, so the strongest
 * events stay ranked against each other. 2q = erfc(x), x = z / sqrt(2), from
 * the Chebyshev fit erfc(x) = t exp(-x^2 - 1.26551223 + t P(t)), t = 1 /
 * (1 + x / 2) (relative error below 1.2e-7 for x >= 0): one log, no exp,
 * no underflow for large z. */
static double tail_score(double z, double t0)
{
    if (!(z > 0)) return 0;
    double x = z * M_SQRT1_2;
    double t = 1.0 / (1.0 + 0.5 * x);
    double poly =
        -1.26551223 +
        t * (1.00002368 +
             t * (0.37409196 +
                  t * (0.09678418 +
                       t * (-0.18628806 +
                            t * (0.27886807 +
                                 t * (-1.13520398 +
                                      t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    double s = x * x - poly - log(t);
    if (!(s > 0)) return 0;
    if (isinf(s)) return 1;
    return s / (s + t0);
}

mk_err mk_det_step(mk_det *d, int64_t ts_ms, double v, mk_det_history_fn history,
                   void *history_ctx, double *score, mk_det_evidence *ev, mk_diag *diag)
{
    const mk_det_params *p = d->p;
    mk_det_evidence e = {0, 0, 0, -1, 0, 0, 0, 0, 0};
    *score = 0;
    if (!isfinite(v)) goto done;
    if (history && d->n >= (uint64_t)(p->warmup / 2) &&
        !(ts_ms >= d->bucket_lo_ms && ts_ms < d->bucket_hi_ms)) {
        /* A new seasonal bucket: refresh the baselines of both lags. */
        for (int i = 0; i < N_LAGS; i++) {
            mk_err rc = season_fetch(d, i, ts_ms, history, history_ctx, diag);
            if (rc) return rc;
        }
        int64_t b_ms = (int64_t)p->season_bucket_s * 1000;
        d->bucket_lo_ms = mk_floordiv(ts_ms, b_ms) * b_ms;
        d->bucket_hi_ms = d->bucket_lo_ms + b_ms;
    }
    uint64_t half = (uint64_t)(p->warmup / 2);
    if (d->n < half) {
        /* Phase 1: learn the level and spread. */
        double delta = v - d->w_mean;
        d->w_mean += delta / (double)(d->n + 1);
        d->w_m2 += delta * (v - d->w_mean);
        mk_det_ewma_update(&d->ewma, p->ewma_alpha, v);
        mk_det_mad_push(&d->mad, v);
        d->n++;
        if (d->n == half) {
            double sd = d->n > 1 ? sqrt(d->w_m2 / (double)(d->n - 1)) : 0;
            d->c = d->w_mean;
            d->floor_raw = p->floor_std * sd + p->floor_rel * fabs(d->c) + 1e-12;
            d->s = sd > 0 ? sd : (fabs(d->c) > 0 ? fabs(d->c) : 1);
            d->inv_s = 1.0 / d->s;
            d->u1 = d->u2 = d->smooth = (v - d->c) / d->s;
            d->short_mean = d->c;
            /* Evidence is log1p(z): start its statistics near those of
             * |z| of a unit Gaussian, so early scores are not wild. */
            d->lik_mean = 0.45;
            d->lik_var = 0.1;
        }
        goto done;
    }

    double fl = d->floor_raw + p->absdev_k * d->absdev;
    double u = (v - d->c) * d->inv_s;
    double fl_u = fl * d->inv_s;

    /* EWMA evidence (before folding v in). */
    e.z_ewma = fabs(v - d->ewma.mean) / (sqrt(d->ewma.var) + fl);
    /* Robust window evidence. */
    /* The window's median and MAD are refreshed every MAD_EVERY samples
     * (an approximate quantile: the window moves little in between). */
    if (d->mad_age == 0) mk_det_mad_get(&d->mad, &d->med, &d->mad_v);
    d->mad_age = (uint8_t)((d->mad_age + 1) % MAD_EVERY);
    double med = d->med, mad = d->mad_v;
    double inv_mad = 1.0 / (1.4826 * mad + fl);
    e.z_mad = fabs(v - med) * inv_mad;
    /* Level shift: the short EWMA (this sample included) against the
     * window median, in units of the standard error of such an EWMA. */
    d->short_mean += p->shift_alpha * (v - d->short_mean);
    e.z_shift = fabs(d->short_mean - med) * inv_mad * d->inv_shift_se;
    {
        double ad = fabs(v - med), cap = 6 * (d->absdev + d->floor_raw);
        if (d->absdev > 0 && ad > cap) ad = cap;
        d->absdev += p->absdev_alpha * (ad - d->absdev);
    }
    /* Seasonal evidence: unlike both yesterday and last week, when known. */
    double season_u = d->u1;
    double zs = -1;
    int is_zs_used = p->w_season > 0 || p->season_gate > 0 || ev;
    for (int i = 0; history && i < N_LAGS; i++) {
        const season_cache *sc = &d->season[i];
        if (!sc->has) continue;
        if (i == 0) season_u = ((double)sc->mean - d->c) * d->inv_s;
        if (!is_zs_used) continue;
        double z = fabs(v - sc->mean) / ((double)sc->sd + fl);
        if (zs < 0 || z < zs) zs = z;
    }
    e.z_season = zs;
    /* Linear model: predict u from lags, smoothed value and the day-old
     * baseline (the previous value stands in when there is none). */
    double x[MK_DET_RLS_P] = {1.0, d->u1, d->u2, d->smooth, season_u};
    double sd_r = sqrt(d->resid_var) + fl_u;
    double r = mk_det_rls_update(&d->rls, x, u, p->rls_lambda, p->rls_clip * sd_r, 1e6);
    e.prediction = d->c + d->s * (u - r);
    e.z_rls = fabs(r) / sd_r;
    double rc = r;
    double lim = p->rls_clip * sd_r;
    if (rc > lim) rc = lim;
    else if (rc < -lim) rc = -lim;
    d->resid_var += p->resid_alpha * (rc * rc - d->resid_var);

    /* Combine. */
    double raw;
    if (p->comb_max > 0) {
        raw = p->w_rls * e.z_rls;
        if (p->w_mad * e.z_mad > raw) raw = p->w_mad * e.z_mad;
        if (p->w_ewma * e.z_ewma > raw) raw = p->w_ewma * e.z_ewma;
        if (p->w_shift * e.z_shift > raw) raw = p->w_shift * e.z_shift;
    } else {
        double wsum = p->w_rls + p->w_mad + p->w_ewma;
        raw = wsum > 0 ? (p->w_rls * e.z_rls + p->w_mad * e.z_mad + p->w_ewma * e.z_ewma) / wsum
                       : 0;
    }
    if (p->rel_gate > 0) {
        /* Practical significance: the symmetric relative difference
         * 2 |a - m| / (a + m) (in [0, 2); 0.85 is a factor 2.5 either way) of
         * v, and of the short mean, from the window median, for data that
         * is not negative; a plain relative change where it is. */
        double eps = d->floor_raw + p->absdev_k * d->absdev;
        double lr;
        if (med > 0 && v >= 0 && d->short_mean >= 0) {
            double m = med + eps, a = v + eps, b = d->short_mean + eps;
            double ra = 2 * fabs(a - m) / (a + m), rb = 2 * fabs(b - m) / (b + m);
            lr = ra > rb ? ra : rb;
        } else {
            lr = fabs(v - med) / (fabs(med) + eps);
        }
        if (lr < p->rel_gate) {
            double g = lr / p->rel_gate;
            raw *= p->rel_pow == 2 ? g * g : pow(g, p->rel_pow);
        }
    }
    if (zs >= 0) {
        if (p->season_gate > 0 && raw > zs) raw = zs;
        raw += p->w_season * zs;
    }
    raw = log1p(raw);
    e.raw = raw;

    /* The evidence against its rolling Gaussian: the sample alone, and the
     * mean of the last lik_short samples (persistent shifts add up). */
    unsigned k_short = (unsigned)p->lik_short;
    if (d->short_n == k_short) d->short_sum -= d->shortv[d->short_head];
    else d->short_n++;
    d->shortv[d->short_head] = raw;
    d->short_sum += raw;
    d->short_head = (d->short_head + 1) % k_short;
    double center = d->lik_mean, scale = sqrt(d->lik_var) + 1e-3;
    double inv_scale = 1.0 / scale;
    double z1 = (raw - center) * inv_scale;
    double z = p->single_w * z1;
    if (p->pair_gain > 0) {
        double zp = (z1 < d->z_prev ? z1 : d->z_prev) * p->pair_gain;
        if (zp > z) z = zp;
    }
    d->z_prev = z1;
    if (p->short_gain > 0) {
        double sm = d->short_sum / d->short_n;
        double z2 = (sm - center) * inv_scale * p->short_gain * sqrt((double)d->short_n);
        if (z2 > z) z = z2;
    }
    /* A new record of the evidence (after the warm-up) counts extra: the
     * first event of a kind in a series stands out more than one it has
     * had before. Recurring events still score through z alone; the
     * record is all-time, since a decaying one was worse on both corpora
     * (bench/DETECT.md). */
    if (p->rec_gain != 1 && d->n >= (uint64_t)p->warmup) {
        if (raw > d->rec_max) {
            if (d->rec_max > 0) z *= p->rec_gain;
            d->rec_max = raw;
        }
    }
    double sc = tail_score(z, p->score_t0);
    if (ev) e.likelihood = 1.0 - 0.5 * erfc(z * M_SQRT1_2);
    double dl = raw - d->lik_mean;
    d->lik_mean += p->lik_alpha * dl;
    d->lik_var = (1.0 - p->lik_alpha) * (d->lik_var + p->lik_alpha * dl * dl);

    /* Fold v into the rolling statistics. */
    mk_det_ewma_update(&d->ewma, p->ewma_alpha, v);
    mk_det_mad_push(&d->mad, v);
    d->u2 = d->u1;
    d->u1 = u;
    d->smooth += p->smooth_alpha * (u - d->smooth);
    d->n++;

    if (d->n <= (uint64_t)p->warmup) sc = 0;
    /* Spike suppression: after a detection, the next `suppress` samples stay
     * silent; one event is reported once, at its start. */
    if (d->mute_left > 0 && !(p->suppress_ratio > 0 && z > d->mute_z * p->suppress_ratio)) {
        d->mute_left--;
        sc = 0;
    } else if (sc >= p->suppress_level) {
        d->mute_left = (uint32_t)p->suppress;
        d->mute_z = z;
    }
    *score = sc;
done:
    e.score = *score;
    if (ev) *ev = e;
    return MK_OK;
}

/* ---- database-backed history and backfill ----------------------------- */

void mk_det_agg_of(const int64_t *ts, const double *v, size_t n, int64_t from_ms, int64_t to_ms,
                   mk_det_agg *out)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ts[mid] < from_ms) lo = mid + 1;
        else hi = mid;
    }
    mk_det_agg a = {0, 0, 0};
    for (size_t i = lo; i < n && ts[i] < to_ms; i++) {
        double x = v[i];
        if (!isfinite(x)) continue;
        a.count++;
        a.sum += x;
        a.sumsq += x * x;
    }
    *out = a;
}

mk_err mk_det_array_history_fn(void *ctx, int64_t from_ms, int64_t to_ms, mk_det_agg *out,
                               mk_diag *diag)
{
    (void)diag;
    const mk_det_array_history *h = ctx;
    mk_det_agg_of(h->ts, h->v, h->n, from_ms, to_ms, out);
    return MK_OK;
}

void mk_det_db_history_init(mk_det_db_history *h, mk_db *db, uint64_t series_id)
{
    memset(h, 0, sizeof *h);
    h->db = db;
    h->series_id = series_id;
}

void mk_det_db_history_free(mk_det_db_history *h)
{
    for (int i = 0; i < 2; i++) {
        free(h->slot[i].ts);
        free(h->slot[i].v);
        h->slot[i] = (mk_det_hist_slot){0};
    }
}

/* Decodes [from_ms, from_ms + span) into slot s, stopping after
 * MK_DET_HIST_CAP samples (then the slot ends after the last one kept). */
static mk_err hist_fill(mk_det_db_history *h, mk_det_hist_slot *s, int64_t from_ms, int64_t to_ms,
                        mk_diag *diag)
{
    mk_iter *it = NULL;
    mk_err rc = MK_OK;
    if (!s->ts) {
        s->ts = malloc(MK_DET_HIST_CAP * sizeof *s->ts);
        s->v = malloc(MK_DET_HIST_CAP * sizeof *s->v);
        if (!s->ts || !s->v) {
            rc = mk_diag_set(diag, MK_ENOMEM, "seasonal history cache: out of memory");
            goto out;
        }
    }
    s->from_ms = s->to_ms = from_ms;
    s->n = 0;
    rc = mk_db_iter(h->db, h->series_id, from_ms, to_ms, &it, diag);
    if (rc) goto out;
    for (;;) {
        const int64_t *ts;
        const double *vals;
        size_t n;
        rc = mk_iter_next(it, &ts, &vals, &n, diag);
        if (rc) goto out;
        if (n == 0) {
            s->to_ms = to_ms;
            break;
        }
        size_t room = MK_DET_HIST_CAP - s->n;
        size_t k = n < room ? n : room;
        memcpy(s->ts + s->n, ts, k * sizeof *ts);
        memcpy(s->v + s->n, vals, k * sizeof *vals);
        s->n += k;
        if (k < n || s->n == MK_DET_HIST_CAP) {
            /* Full: the slot covers up to its last sample only. */
            s->to_ms = s->ts[s->n - 1] + 1;
            if (k < n) break;
        }
    }
    h->n_fills++;
out:
    mk_iter_free(it);
    if (rc) s->from_ms = s->to_ms = 0, s->n = 0;
    return rc;
}

/*
 * count, sum and sumsq over [from_ms, to_ms) from the series' buckets of
 * width step_ms (a rollup tier's; mk_db_iter_buckets reads the tier where
 * it is up to date, raw samples elsewhere). A bucket partly inside the
 * range counts by the share of its width inside it (the detector's ranges
 * are seasonal buckets, on tier bucket edges whenever the tier's width
 * divides season_bucket_s: then exact); with is_whole_only, only buckets
 * wholly inside count (where raw data had nothing in the range, a bucket
 * at its edge would count samples outside it). A tier bucket's count
 * includes its NaN samples, which its sums leave out.
 */
static mk_err hist_from_tier(mk_det_db_history *h, int64_t step_ms, int64_t from_ms, int64_t to_ms,
                             int is_whole_only, mk_det_agg *out, mk_diag *diag)
{
    double n, sum, sumsq;
    mk_err rc = mk_db_bucket_totals(h->db, h->series_id, step_ms, from_ms, to_ms, is_whole_only, &n, &sum, &sumsq,
                                    diag);
    if (rc) return rc;
    *out = (mk_det_agg){n > 0 && n < 1 ? 1 : (uint64_t)llround(n), sum, sumsq};
    return MK_OK;
}

static mk_err hist_raw(mk_det_db_history *h, int64_t from_ms, int64_t to_ms, mk_det_agg *out, mk_diag *diag);

/*
 * Raw samples while the retention policy keeps them for the range
 * (mk_db_finest_tier), else the finest rollup tier still covering it (a
 * week back with raw data kept 1 d); and a tier with blocks there when raw
 * should be there but holds nothing (dropped by the size cap).
 */
mk_err mk_det_db_history_fn(void *ctx, int64_t from_ms, int64_t to_ms, mk_det_agg *out,
                            mk_diag *diag)
{
    mk_det_db_history *h = ctx;
    int64_t step_ms = 0;
    if (mk_db_finest_tier(h->db, h->series_id, from_ms, to_ms, &step_ms, NULL) == MK_OK && step_ms > 0)
        return hist_from_tier(h, step_ms, from_ms, to_ms, 0, out, diag);
    mk_err rc = hist_raw(h, from_ms, to_ms, out, diag);
    if (rc || out->count) return rc;
    if ((step_ms = mk_db_finest_tier_with_data(h->db, from_ms, to_ms)))
        return hist_from_tier(h, step_ms, from_ms, to_ms, 1, out, diag);
    return MK_OK;
}

static mk_err hist_raw(mk_det_db_history *h, int64_t from_ms, int64_t to_ms, mk_det_agg *out, mk_diag *diag)
{
    h->tick++;
    for (int i = 0; i < 2; i++) {
        mk_det_hist_slot *s = &h->slot[i];
        if (s->from_ms < s->to_ms && from_ms >= s->from_ms && to_ms <= s->to_ms) {
            s->last_use = h->tick;
            mk_det_agg_of(s->ts, s->v, s->n, from_ms, to_ms, out);
            return MK_OK;
        }
    }
    mk_det_hist_slot *s = h->slot[0].last_use <= h->slot[1].last_use ? &h->slot[0] : &h->slot[1];
    int64_t span = to_ms - from_ms > MK_DET_HIST_SPAN_MS ? to_ms - from_ms : MK_DET_HIST_SPAN_MS;
    int64_t end = from_ms > INT64_MAX - span ? INT64_MAX : from_ms + span;
    mk_err rc = hist_fill(h, s, from_ms, end, diag);
    if (rc) return rc;
    s->last_use = h->tick;
    if (to_ms <= s->to_ms) {
        mk_det_agg_of(s->ts, s->v, s->n, from_ms, to_ms, out);
        return MK_OK;
    }
    /* A window denser than the cache: sum it straight from the iterator, in
     * the same order mk_det_agg_of would. */
    mk_iter *it = NULL;
    mk_det_agg a = {0, 0, 0};
    rc = mk_db_iter(h->db, h->series_id, from_ms, to_ms, &it, diag);
    while (!rc) {
        const int64_t *ts;
        const double *vals;
        size_t n;
        rc = mk_iter_next(it, &ts, &vals, &n, diag);
        if (rc || n == 0) break;
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(vals[i])) continue;
            a.count++;
            a.sum += vals[i];
            a.sumsq += vals[i] * vals[i];
        }
    }
    mk_iter_free(it);
    if (!rc) *out = a;
    return rc;
}

mk_err mk_det_score_series(mk_db *db, uint64_t series_id, int64_t from_ms, int64_t to_ms,
                           const mk_det_params *params, mk_det_emit_fn emit, void *emit_ctx,
                           mk_diag *diag)
{
    mk_det *d = NULL;
    mk_iter *it = NULL;
    mk_det_db_history h;
    mk_det_db_history_init(&h, db, series_id);
    mk_err rc = mk_det_new(params, &d, diag);
    if (rc) goto out;
    rc = mk_db_iter(db, series_id, from_ms, to_ms, &it, diag);
    if (rc) goto out;
    for (;;) {
        const int64_t *ts;
        const double *vals;
        size_t n;
        rc = mk_iter_next(it, &ts, &vals, &n, diag);
        if (rc || n == 0) goto out;
        for (size_t i = 0; i < n; i++) {
            double sc;
            rc = mk_det_step(d, ts[i], vals[i], mk_det_db_history_fn, &h, &sc, NULL, diag);
            if (rc) goto out;
            if (emit(emit_ctx, ts[i], vals[i], sc)) goto out;
        }
    }
out:
    mk_iter_free(it);
    mk_det_free(d);
    mk_det_db_history_free(&h);
    return rc;
}
