/*
 * detect/detector.h — streaming anomaly detectors and their combiner
 * (internal to detect/ and the tools; prefix mk_det_).
 *
 * One mk_det scores one series, one sample at a time, in time order:
 *
 *   sample (ts_ms, v) --+--> EWMA mean/variance ............ z_ewma
 *                       +--> windowed median / MAD ......... z_mad
 *                       +--> short EWMA vs window median ... z_shift (level shift)
 *                       +--> online linear model (RLS) ..... z_rls
 *                       |      features: 1, last two values, smoothed value,
 *                       |      the day-old baseline
 *                       +--> seasonal baselines (1 d, 7 d) . z_season
 *                              read through a caller-supplied provider
 *                                       |
 *   combiner: evidence = max of the weighted z's (seasonal evidence only
 *   when weighted in), scaled down while the change is small as a ratio
 *   (symmetric relative change 2|v - med| / (v + med) under rel_gate:
 *   practical significance), log1p'd;
 *   then measured against a rolling Gaussian of itself (HTM's anomaly
 *   likelihood idea) three ways — this sample, the weaker of this and the
 *   previous one (persistence), the mean of the last few — and the
 *   strongest (boosted when the evidence beats the series' record)
 *   turned into a tail probability, then a score in [0, 1);
 *   spike suppression reports an event once, at its start.
 *
 * Invariants:
 *  - The state of one series is a fixed-size struct (mk_det_state_bytes(),
 *    under 1 KiB); nothing is allocated per sample. History older than the
 *    model's lags is never kept: day-old and week-old baselines come from
 *    the provider (in production: chunk summaries of stored data).
 *  - Scores are a pure function of the parameter set, the samples fed so
 *    far and what the provider answered. Baselines are rounded to float
 *    precision before use, so the summation order of whoever computed them
 *    (stored chunk summaries or freshly decoded samples) cannot change a
 *    score: online scoring and backfill over blocks give identical doubles.
 *  - The score is 0 during the warm-up (the first `warmup` samples) and
 *    always within [0, 1]; NaN or infinite input samples score 0 and leave
 *    the state untouched.
 *
 * Thread rules: an mk_det is used by one thread at a time; a parameter set
 * is read-only after mk_det_new and may be shared by many detectors.
 */
#ifndef MK_DETECTOR_H
#define MK_DETECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "meerkat/db.h"
#include "meerkat/error.h"

/* ---- building blocks (exposed for tests and the benchmark) ------------ */

/* Exponentially weighted mean and variance (West's incremental form). */
typedef struct mk_det_ewma {
    double mean, var;
    uint32_t n; /* samples seen (saturates) */
} mk_det_ewma;
void mk_det_ewma_init(mk_det_ewma *e);
/* Folds x in with weight alpha (0 < alpha <= 1); the first sample sets the
 * mean and leaves var 0. Then: d = x - mean; mean += alpha d;
 * var = (1 - alpha) (var + alpha d^2). */
void mk_det_ewma_update(mk_det_ewma *e, double alpha, double x);

/* Windowed median and MAD over the last `cap` samples (cap <= MK_DET_MAD_MAX),
 * kept as an insertion-order ring plus a sorted copy (floats: the window is
 * for robust statistics, not for exact values). */
#define MK_DET_MAD_MAX 32
typedef struct mk_det_mad {
    float ring[MK_DET_MAD_MAX];
    float sorted[MK_DET_MAD_MAX];
    uint8_t cap, n, head;
} mk_det_mad;
void mk_det_mad_init(mk_det_mad *m, unsigned cap);
void mk_det_mad_push(mk_det_mad *m, double x);
/* Median of the window (mean of the two middle values when n is even) and
 * the median absolute deviation from it. Both 0 on an empty window. */
void mk_det_mad_get(const mk_det_mad *m, double *median, double *mad);

/* Recursive least squares with exponential forgetting over MK_DET_RLS_P
 * features. w: coefficients; P: inverse correlation matrix (row-major). */
#define MK_DET_RLS_P 5
typedef struct mk_det_rls {
    double w[MK_DET_RLS_P];
    double P[MK_DET_RLS_P * MK_DET_RLS_P];
} mk_det_rls;
/* P = delta * I, w = 0. */
void mk_det_rls_init(mk_det_rls *r, double delta);
/* Prediction w . x. */
double mk_det_rls_predict(const mk_det_rls *r, const double *x);
/* One update with features x and target y, forgetting factor lambda in
 * (0, 1]; err_clip > 0 limits the a-priori error used for the update to
 * +-err_clip (robustness against outliers), 0 = no limit. Returns the
 * a-priori error y - w . x. When the trace of P exceeds p_max the forgetting
 * step is skipped (no wind-up on inputs that stop varying). */
double mk_det_rls_update(mk_det_rls *r, const double *x, double y, double lambda,
                         double err_clip, double p_max);

/* ---- the parameter set ------------------------------------------------ */

/* One global parameter set; every field has a default (mk_det_params_init)
 * and a name for mk_det_params_set. */
#define MK_DET_PARAMS(X)                                                                  \
    X(warmup, 60)            /* samples scored 0 while statistics settle            */  \
    X(ewma_alpha, 0.02)      /* EWMA weight of a new sample                         */  \
    X(mad_window, 24)        /* median/MAD window, samples (<= 32)                  */  \
    X(rls_lambda, 0.995)     /* RLS forgetting factor                               */  \
    X(rls_delta, 100)        /* RLS initial P = delta I                             */  \
    X(rls_clip, 4)           /* clip of the RLS update error, in residual sigmas    */  \
    X(smooth_alpha, 0.3)     /* smoothed-value feature of the RLS                   */  \
    X(resid_alpha, 0.01)     /* weight of the running residual spread               */  \
    X(season_bucket_s, 1800) /* seasonal bucket: baseline = same bucket 1 d / 7 d ago */ \
    X(season_min_count, 3)   /* fewest baseline samples for a usable baseline       */  \
    X(w_rls, 1)              /* combiner weights of the evidence                    */  \
    X(w_mad, 1)                                                                         \
    X(w_ewma, 1)                                                                        \
    X(w_shift, 0.7)          /* level shift: short EWMA against the window median   */  \
    X(shift_alpha, 0.15)     /* weight of the short EWMA                            */  \
    X(rel_gate, 0.85)        /* >0: evidence scaled down while the symmetric        */  \
                             /* relative change 2|v-med|/(v+med) stays under this  */  \
    X(rel_pow, 2)            /* steepness of that scaling                           */  \
    X(w_season, 0)                                                                      \
    X(season_gate, 0)        /* 1: evidence capped by the seasonal evidence          */ \
    X(floor_rel, 0.001)      /* scale floor relative to the warm-up level           */  \
    X(floor_std, 0.05)       /* scale floor relative to the warm-up spread          */  \
    X(lik_alpha, 0.004)      /* weight of the rolling Gaussian over evidence        */  \
    X(rec_gain, 3)           /* z of evidence above the series' highest so far is   */  \
                             /* multiplied by this (1 = off)                        */  \
    X(lik_short, 4)          /* samples averaged for the short-term evidence        */  \
    X(short_gain, 0.7)       /* 0: short-term mean off; else its z is scaled by      */ \
                             /* short_gain * sqrt(lik_short)                        */   \
    X(single_w, 0.7)         /* weight of one sample's evidence z                   */  \
    X(pair_gain, 2)          /* weight of min(z now, z before): persistent evidence */  \
    X(comb_max, 1)           /* 1: evidence is the max of the weighted parts        */  \
    X(absdev_alpha, 0.01)    /* weight of the long-run mean absolute deviation      */  \
    X(absdev_k, 2)           /* its share in the scale floor of z_mad / z_ewma      */  \
    X(score_t0, 11.5)        /* surprise -log(2q) that maps to score 1/2            */  \
    X(suppress, 50)          /* samples muted after a detection                     */  \
    X(suppress_level, 0.7)   /* score that counts as a detection for suppression    */  \
    X(suppress_ratio, 1.5)   /* >0: while muted, evidence above ratio x the muting  */  \
                             /* evidence is reported anyway (a stronger event)      */

typedef struct mk_det_params {
#define MK_DET_P_FIELD_(name, def) double name;
    MK_DET_PARAMS(MK_DET_P_FIELD_)
#undef MK_DET_P_FIELD_
} mk_det_params;

/* Fills p with the defaults (the parameter set `meerkat nab` uses). */
void mk_det_params_init(mk_det_params *p);
/* Sets the field called name to v; MK_ENOTFOUND for an unknown name,
 * MK_ERANGE for a value outside the field's valid range. */
mk_err mk_det_params_set(mk_det_params *p, const char *name, double v, mk_diag *diag);
/* Parses "name=value" (as mk_det_params_set). */
mk_err mk_det_params_parse(mk_det_params *p, const char *assignment, mk_diag *diag);

/* ---- seasonal baselines come from a provider --------------------------- */

/* Aggregate of the samples of one series in a time range. */
typedef struct mk_det_agg {
    uint64_t count;
    double sum, sumsq; /* over non-NaN samples */
} mk_det_agg;

/*
 * Provider of stored history: fills *out with the aggregate of the series'
 * samples with from_ms <= ts < to_ms. The detector asks, when a sample
 * enters a new seasonal bucket [k B, (k + 1) B) (B = season_bucket_s), for
 * that bucket shifted back by one day and by one week; so every range ends
 * at least one day minus one bucket before the sample being scored, and
 * the provider is called at most twice per bucket. An error stops the
 * scoring of that sample (mk_det_step returns it).
 */
typedef mk_err (*mk_det_history_fn)(void *ctx, int64_t from_ms, int64_t to_ms, mk_det_agg *out,
                                    mk_diag *diag);

/* Sums samples ts[i0..i1) where i0, i1 are the first indexes with
 * ts >= from_ms and ts >= to_ms: the one summation every provider below
 * uses, in time order, so equal samples give bitwise-equal aggregates. */
void mk_det_agg_of(const int64_t *ts, const double *v, size_t n, int64_t from_ms, int64_t to_ms,
                   mk_det_agg *out);

/* Provider over in-memory arrays (tests, benchmarks). ts ascending. */
typedef struct mk_det_array_history {
    const int64_t *ts; /* borrowed */
    const double *v;   /* borrowed */
    size_t n;
} mk_det_array_history;
/* ctx is an mk_det_array_history*. */
mk_err mk_det_array_history_fn(void *ctx, int64_t from_ms, int64_t to_ms, mk_det_agg *out,
                               mk_diag *diag);

/*
 * Provider reading a database. Stored chunks hold about 120 samples, far
 * more than a seasonal bucket, so their summaries rarely answer a 30-minute
 * window alone; the provider decodes (mk_db_iter) a span of up to
 * MK_DET_HIST_SPAN_MS and MK_DET_HIST_CAP samples at once into one of two
 * cache slots (one per seasonal lag in practice) and answers following
 * requests from it. Memory: at most 2 * MK_DET_HIST_CAP samples.
 */
#define MK_DET_HIST_SPAN_MS (6LL * 3600 * 1000)
#define MK_DET_HIST_CAP 4096
typedef struct mk_det_hist_slot {
    int64_t from_ms, to_ms; /* cached range [from_ms, to_ms); empty if equal */
    size_t n;
    int64_t *ts;
    double *v;
    uint64_t last_use;
} mk_det_hist_slot;
typedef struct mk_det_db_history {
    mk_db *db;          /* borrowed; must outlive every call */
    uint64_t series_id; /* the series being scored */
    mk_det_hist_slot slot[2];
    uint64_t tick;
    uint64_t n_fills;   /* decodes done (for tests and benchmarks) */
} mk_det_db_history;
void mk_det_db_history_init(mk_det_db_history *h, mk_db *db, uint64_t series_id);
/* Frees the cache; h can be initialised again. */
void mk_det_db_history_free(mk_det_db_history *h);
/* ctx is an mk_det_db_history*. */
mk_err mk_det_db_history_fn(void *ctx, int64_t from_ms, int64_t to_ms, mk_det_agg *out,
                            mk_diag *diag);

/* ---- the detector ----------------------------------------------------- */

typedef struct mk_det mk_det;

/* What each part saw for the last sample (for explanations and tests). */
typedef struct mk_det_evidence {
    double z_ewma, z_mad, z_rls, z_season; /* z_season is -1 without a baseline */
    double z_shift;                         /* level shift evidence */
    double prediction;                      /* RLS prediction of the sample */
    double raw;                             /* combined evidence */
    double likelihood;                      /* tail probability of raw */
    double score;                           /* final score in [0, 1] */
} mk_det_evidence;

/* Size of one series' state, bytes (the figure bench/ reports). */
size_t mk_det_state_bytes(void);

/* New detector for one series. params is borrowed: it must stay valid and
 * unchanged for the detector's life. Free with mk_det_free (accepts NULL). */
mk_err mk_det_new(const mk_det_params *params, mk_det **out, mk_diag *diag);
void mk_det_free(mk_det *d);
/* Back to the state of a new detector. */
void mk_det_reset(mk_det *d);

/*
 * Scores the sample (ts_ms, v); samples must come in increasing ts_ms.
 * history/history_ctx: the baseline provider (NULL = no seasonal evidence).
 * *score gets the anomaly score in [0, 1]; ev (may be NULL) the evidence.
 * On a provider error the error is returned and the sample is not scored:
 * the statistics are unchanged (a cached baseline may have been refreshed),
 * so calling again with the same sample is safe.
 */
mk_err mk_det_step(mk_det *d, int64_t ts_ms, double v, mk_det_history_fn history,
                   void *history_ctx, double *score, mk_det_evidence *ev, mk_diag *diag);

/*
 * Backfill: scores every sample of series_id in [from_ms, to_ms) read from
 * db (blocks and head, through mk_db_iter) with a fresh detector of params
 * and seasonal baselines from db (mk_det_db_history_fn), the same path as
 * online scoring. For each sample calls emit(emit_ctx, ts_ms, v, score);
 * a non-zero return from emit stops early (not an error).
 */
typedef int (*mk_det_emit_fn)(void *ctx, int64_t ts_ms, double v, double score);
mk_err mk_det_score_series(mk_db *db, uint64_t series_id, int64_t from_ms, int64_t to_ms,
                           const mk_det_params *params, mk_det_emit_fn emit, void *emit_ctx,
                           mk_diag *diag);

#endif
