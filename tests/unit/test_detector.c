/*
 * tests/unit/test_detector.c — the detectors of detect/detector.h.
 *
 * References: hand-computed EWMA and median/MAD values; a brute-force
 * (sort-based) median/MAD on random windows; for recursive least squares the
 * batch least-squares solution of the same data, solved directly (normal
 * equations, Gaussian elimination with partial pivoting); for the combiner
 * its contract (range, warm-up silence, determinism); and for "online equals
 * backfill" the same series scored three ways — sample by sample while it is
 * written to a database, from sealed blocks after a flush, and from arrays —
 * which must give bitwise-identical scores. Seeds are fixed and printed.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detector.h"
#include "meerkat/db.h"

#define SEED 20261202u

/* ---- EWMA ---------------------------------------------------------------- */

static void test_ewma_hand(void **state)
{
    (void)state;
    /* alpha 1/2 over 1, 2, 3, 4 (every step exact in binary):
     *   x=1: mean 1, var 0
     *   x=2: d=1    mean 1.5    var 0.5*(0      + 0.5*1)      = 0.25
     *   x=3: d=1.5  mean 2.25   var 0.5*(0.25   + 0.5*2.25)   = 0.6875
     *   x=4: d=1.75 mean 3.125  var 0.5*(0.6875 + 0.5*3.0625) = 1.109375 */
    mk_det_ewma e;
    mk_det_ewma_init(&e);
    const double xs[] = {1, 2, 3, 4};
    const double mean[] = {1, 1.5, 2.25, 3.125};
    const double var[] = {0, 0.25, 0.6875, 1.109375};
    for (int i = 0; i < 4; i++) {
        mk_det_ewma_update(&e, 0.5, xs[i]);
        assert_true(e.mean == mean[i]);
        assert_true(e.var == var[i]);
    }
}

/* ---- median / MAD ---------------------------------------------------------- */

static void test_mad_hand(void **state)
{
    (void)state;
    mk_det_mad m;
    double med, mad;
    mk_det_mad_init(&m, 5);
    mk_det_mad_get(&m, &med, &mad);
    assert_true(med == 0 && mad == 0);
    /* 5 1 9 3 7: sorted 1 3 5 7 9, median 5; |dev| 4 2 0 2 4 -> MAD 2. */
    const double a[] = {5, 1, 9, 3, 7};
    for (int i = 0; i < 5; i++) mk_det_mad_push(&m, a[i]);
    mk_det_mad_get(&m, &med, &mad);
    assert_true(med == 5 && mad == 2);
    /* 100 pushes out the 5: 1 9 3 7 100 -> median 7; |dev| 6 2 4 0 93 -> 4. */
    mk_det_mad_push(&m, 100);
    mk_det_mad_get(&m, &med, &mad);
    assert_true(med == 7 && mad == 4);
    /* Even window 1 2 4 8: median 3; |dev| 2 1 1 5 -> (1 + 2) / 2 = 1.5. */
    mk_det_mad_init(&m, 4);
    const double b[] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++) mk_det_mad_push(&m, b[i]);
    mk_det_mad_get(&m, &med, &mad);
    assert_true(med == 3 && mad == 1.5);
}

static int cmp_d(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double ref_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_d);
    return (n & 1) ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void test_mad_random_vs_sort(void **state)
{
    (void)state;
    mk_rng rng = {SEED};
    printf("seed %u\n", SEED);
    for (unsigned cap = 1; cap <= MK_DET_MAD_MAX; cap++) {
        mk_det_mad m;
        mk_det_mad_init(&m, cap);
        float hist[4000];
        for (int i = 0; i < 300; i++) {
            /* Small integers make ties common; floats keep values exact. */
            float x = (i % 3) ? (float)mk_rng_below(&rng, 7) : (float)(mk_rng_unit(&rng) * 100);
            hist[i] = x;
            mk_det_mad_push(&m, x);
            size_t n = (size_t)(i + 1) < cap ? (size_t)(i + 1) : cap;
            double w[MK_DET_MAD_MAX], dev[MK_DET_MAD_MAX];
            for (size_t k = 0; k < n; k++) w[k] = hist[i + 1 - n + k];
            double med_ref = ref_median(w, n);
            for (size_t k = 0; k < n; k++) dev[k] = fabs(w[k] - med_ref);
            double mad_ref = ref_median(dev, n);
            double med, mad;
            mk_det_mad_get(&m, &med, &mad);
            assert_true(med == med_ref);
            assert_true(mad == mad_ref);
        }
    }
}

/* ---- RLS against batch least squares ---------------------------------- */

/* Solves A x = b (n x n, row-major, destroyed) by Gaussian elimination
 * with partial pivoting. */
static void solve(double *A, double *b, double *x, int n)
{
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(A[r * n + c]) > fabs(A[piv * n + c])) piv = r;
        for (int k = 0; k < n; k++) {
            double t = A[c * n + k];
            A[c * n + k] = A[piv * n + k];
            A[piv * n + k] = t;
        }
        double t = b[c];
        b[c] = b[piv];
        b[piv] = t;
        for (int r = c + 1; r < n; r++) {
            double f = A[r * n + c] / A[c * n + c];
            for (int k = c; k < n; k++) A[r * n + k] -= f * A[c * n + k];
            b[r] -= f * b[c];
        }
    }
    for (int r = n - 1; r >= 0; r--) {
        double s = b[r];
        for (int k = r + 1; k < n; k++) s -= A[r * n + k] * x[k];
        x[r] = s / A[r * n + r];
    }
}

static void test_rls_vs_batch(void **state)
{
    (void)state;
    enum { P = MK_DET_RLS_P, N = 2000 };
    mk_rng rng = {SEED + 1};
    printf("seed %u\n", SEED + 1);
    const double w_true[P] = {0.5, -1.25, 2.0, 0.75, -0.3};
    mk_det_rls r;
    mk_det_rls_init(&r, 1e8);
    double XtX[P * P] = {0}, Xty[P] = {0};
    for (int i = 0; i < N; i++) {
        double x[P];
        x[0] = 1;
        for (int k = 1; k < P; k++) x[k] = mk_rng_unit(&rng) * 4 - 2;
        double y = (mk_rng_unit(&rng) - 0.5) * 0.5;
        for (int k = 0; k < P; k++) y += w_true[k] * x[k];
        /* lambda 1: plain least squares (with a 1e-8 ridge from delta). */
        mk_det_rls_update(&r, x, y, 1.0, 0, 1e300);
        for (int a = 0; a < P; a++) {
            Xty[a] += x[a] * y;
            for (int b = 0; b < P; b++) XtX[a * P + b] += x[a] * x[b];
        }
    }
    double w_ref[P];
    solve(XtX, Xty, w_ref, P);
    for (int k = 0; k < P; k++) {
        assert_true(fabs(r.w[k] - w_ref[k]) < 1e-6);
        assert_true(fabs(r.w[k] - w_true[k]) < 0.05); /* and it learnt the model */
    }
    /* Forgetting: after the model changes, a lambda < 1 fit follows the new
     * coefficients (reference: batch least squares over the new data). */
    const double w_new[P] = {-1, 0.5, 0.5, -2, 1};
    for (int i = 0; i < 3000; i++) {
        double x[P];
        x[0] = 1;
        for (int k = 1; k < P; k++) x[k] = mk_rng_unit(&rng) * 4 - 2;
        double y = 0;
        for (int k = 0; k < P; k++) y += w_new[k] * x[k];
        mk_det_rls_update(&r, x, y, 0.99, 0, 1e300);
    }
    for (int k = 0; k < P; k++) assert_true(fabs(r.w[k] - w_new[k]) < 1e-6);
}

/* ---- the combined detector ---------------------------------------------- */

/* A day-cycled series at 5-minute steps with noise and a few spikes. */
static void make_series(int64_t *ts, double *v, size_t n, uint64_t seed)
{
    mk_rng rng = {seed};
    for (size_t i = 0; i < n; i++) {
        ts[i] = 1700000000000LL + (int64_t)i * 300000;
        double day = sin(2 * M_PI * (double)i / 288.0);
        v[i] = 100 + 30 * day + (mk_rng_unit(&rng) - 0.5) * 6;
        v[i] = round(v[i] * 100) / 100;
        if (i % 997 == 500) v[i] += 200;
    }
}

static void test_combiner_range_warmup(void **state)
{
    (void)state;
    enum { N = 3000 };
    static int64_t ts[N];
    static double v[N];
    make_series(ts, v, N, SEED + 2);
    v[1200] = NAN;
    mk_det_params p;
    mk_det_params_init(&p);
    mk_det *d = NULL;
    assert_int_equal(mk_det_new(&p, &d, NULL), MK_OK);
    mk_det_array_history h = {ts, v, N};
    double max_sc = 0;
    size_t at_max = 0;
    for (size_t i = 0; i < N; i++) {
        double sc;
        mk_det_evidence ev;
        assert_int_equal(mk_det_step(d, ts[i], v[i], mk_det_array_history_fn, &h, &sc, &ev, NULL),
                         MK_OK);
        assert_true(sc >= 0 && sc <= 1);
        assert_true(ev.score == sc);
        if (i < (size_t)p.warmup) assert_true(sc == 0);
        if (i == 1200) assert_true(sc == 0);
        if (sc > max_sc) max_sc = sc, at_max = i;
    }
    /* The spikes are the most anomalous samples. */
    assert_true(at_max % 997 == 500);
    assert_true(max_sc > 0.5);
    assert_true(mk_det_state_bytes() < 1024);
    printf("state %zu bytes, spike score %.3f\n", mk_det_state_bytes(), max_sc);
    mk_det_free(d);
    /* A constant series never alarms (no division by a zero spread). */
    assert_int_equal(mk_det_new(&p, &d, NULL), MK_OK);
    for (int i = 0; i < 2000; i++) {
        double sc;
        assert_int_equal(mk_det_step(d, i * 1000, 5.0, NULL, NULL, &sc, NULL, NULL), MK_OK);
        assert_true(sc == 0);
    }
    mk_det_free(d);
}

static void test_determinism_and_reset(void **state)
{
    (void)state;
    enum { N = 2500 };
    static int64_t ts[N];
    static double v[N], s1[N], s2[N];
    make_series(ts, v, N, SEED + 3);
    mk_det_params p;
    mk_det_params_init(&p);
    mk_det *a = NULL;
    assert_int_equal(mk_det_new(&p, &a, NULL), MK_OK);
    mk_det_array_history h = {ts, v, N};
    for (int round = 0; round < 2; round++) {
        double *s = round ? s2 : s1;
        mk_det_reset(a);
        for (size_t i = 0; i < N; i++)
            mk_det_step(a, ts[i], v[i], mk_det_array_history_fn, &h, &s[i], NULL, NULL);
    }
    assert_memory_equal(s1, s2, sizeof s1);
    mk_det_free(a);
}

static void test_params(void **state)
{
    (void)state;
    mk_det_params p;
    mk_det_params_init(&p);
    mk_diag diag = {0};
    assert_int_equal(mk_det_params_parse(&p, "rls_lambda=0.99", &diag), MK_OK);
    assert_true(p.rls_lambda == 0.99);
    assert_int_equal(mk_det_params_parse(&p, "no_such=1", &diag), MK_ENOTFOUND);
    assert_int_equal(mk_det_params_parse(&p, "mad_window=99", &diag), MK_ERANGE);
    assert_int_equal(mk_det_params_parse(&p, "warmup", &diag), MK_EINVAL);
    assert_int_equal(mk_det_params_parse(&p, "warmup=x", &diag), MK_EINVAL);
}

typedef struct fill {
    double *s;
    size_t n;
} fill;

static int fill_emit(void *ctx, int64_t t, double x, double sc)
{
    (void)t;
    (void)x;
    fill *f = ctx;
    f->s[f->n++] = sc;
    return 0;
}

/* Scores identical online (while writing), from blocks, and from arrays. */
static void test_online_equals_backfill(void **state)
{
    (void)state;
    enum { N = 9 * 288 }; /* 9 days at 5 min: both seasonal lags answer */
    static int64_t ts[N];
    static double v[N], online[N], arrays[N], backfill[N];
    make_series(ts, v, N, SEED + 4);
    printf("seed %u\n", SEED + 4);
    char *dir = mk_test_dir("detector_backfill");
    mk_options o;
    mk_options_init(&o);
    o.has_wal = 0;
    o.fsync = MK_FSYNC_OFF;
    o.block_span_ms = 6LL * 3600 * 1000;
    mk_db *db = NULL;
    mk_diag diag = {0};
    assert_int_equal(mk_db_open(dir, &o, &db, &diag), MK_OK);
    mk_tag tag = {"service", "api"};
    uint64_t sid;
    assert_int_equal(mk_db_series(db, "svc", &tag, 1, "p95_ms", &sid, &diag), MK_OK);
    mk_det_params p;
    mk_det_params_init(&p);
    mk_det *d = NULL;
    assert_int_equal(mk_det_new(&p, &d, NULL), MK_OK);
    mk_det_db_history h;
    mk_det_db_history_init(&h, db, sid);
    int n_seasonal = 0;
    for (size_t i = 0; i < N; i++) {
        mk_point pt = {sid, ts[i], v[i]};
        assert_int_equal(mk_db_write(db, &pt, 1, &diag), MK_OK);
        if (i == N / 2) assert_int_equal(mk_db_flush(db, &diag), MK_OK); /* half in blocks */
        mk_det_evidence ev;
        assert_int_equal(mk_det_step(d, ts[i], v[i], mk_det_db_history_fn, &h, &online[i], &ev,
                                     &diag),
                         MK_OK);
        n_seasonal += ev.z_season >= 0;
    }
    assert_true(n_seasonal > N / 2); /* the seasonal part took part */
    assert_true(h.n_fills > 0 && h.n_fills < N / 10);
    mk_det_db_history_free(&h);
    assert_int_equal(mk_db_flush(db, &diag), MK_OK);
    /* Arrays. */
    mk_det_array_history ah = {ts, v, N};
    mk_det_reset(d);
    for (size_t i = 0; i < N; i++)
        mk_det_step(d, ts[i], v[i], mk_det_array_history_fn, &ah, &arrays[i], NULL, NULL);
    mk_det_free(d);
    /* Backfill from blocks after reopening. */
    assert_int_equal(mk_db_close(db, &diag), MK_OK);
    db = NULL;
    assert_int_equal(mk_db_open(dir, &o, &db, &diag), MK_OK);
    fill f = {backfill, 0};
    assert_int_equal(mk_det_score_series(db, sid, INT64_MIN, INT64_MAX, &p, fill_emit, &f, &diag),
                     MK_OK);
    assert_int_equal(f.n, N);
    assert_memory_equal(online, backfill, sizeof online);
    assert_memory_equal(online, arrays, sizeof online);
    assert_int_equal(mk_db_close(db, &diag), MK_OK);
    mk_test_rmrf(dir);
    free(dir);
}

/* The database provider (cache slots, the sample cap, the direct path for
 * windows denser than the cache) against sums over the test's arrays. */
static void test_db_history_vs_arrays(void **state)
{
    (void)state;
    enum { N = 20000 };
    static int64_t ts[N];
    static double v[N];
    mk_rng rng = {SEED + 5};
    printf("seed %u\n", SEED + 5);
    int64_t t = 1700000000000LL;
    for (size_t i = 0; i < N; i++) {
        /* Mostly 1 s apart (denser than the cache holds for 6 h), with gaps. */
        t += (mk_rng_below(&rng, 50) == 0) ? 600000 : 1000;
        ts[i] = t;
        v[i] = round(mk_rng_unit(&rng) * 1e4) / 100;
    }
    char *dir = mk_test_dir("detector_history");
    mk_options o;
    mk_options_init(&o);
    o.has_wal = 0;
    o.fsync = MK_FSYNC_OFF;
    mk_db *db = NULL;
    mk_diag diag = {0};
    assert_int_equal(mk_db_open(dir, &o, &db, &diag), MK_OK);
    uint64_t sid;
    assert_int_equal(mk_db_series(db, "m", NULL, 0, "f", &sid, &diag), MK_OK);
    for (size_t i = 0; i < N; i += 1000) {
        mk_point pts[1000];
        for (size_t k = 0; k < 1000; k++) pts[k] = (mk_point){sid, ts[i + k], v[i + k]};
        assert_int_equal(mk_db_write(db, pts, 1000, &diag), MK_OK);
    }
    assert_int_equal(mk_db_flush(db, &diag), MK_OK);
    mk_det_db_history h;
    mk_det_db_history_init(&h, db, sid);
    int64_t span = ts[N - 1] - ts[0];
    for (int q = 0; q < 400; q++) {
        /* Mostly moving forward in small windows (as the detector asks),
         * sometimes anywhere and sometimes wide. */
        int64_t from = ts[0] - 5000 + (int64_t)(mk_rng_unit(&rng) * (double)(span + 10000));
        int64_t len = (q % 7 == 0) ? (int64_t)(mk_rng_unit(&rng) * (double)span)
                                   : (int64_t)mk_rng_below(&rng, 3600000);
        mk_det_agg a, b;
        assert_int_equal(mk_det_db_history_fn(&h, from, from + len, &a, &diag), MK_OK);
        mk_det_agg_of(ts, v, N, from, from + len, &b);
        assert_true(a.count == b.count);
        assert_true(a.sum == b.sum);
        assert_true(a.sumsq == b.sumsq);
    }
    mk_det_db_history_free(&h);
    assert_int_equal(mk_db_close(db, &diag), MK_OK);
    mk_test_rmrf(dir);
    free(dir);
}

/* Issue 4: seasonal history through the rollup tiers. Raw data kept 2 d
 * (fake clock at T0 + 10.5 d); a sample every minute (integer values, so
 * every sum is exact) written day by day, rolled up, then the raw blocks
 * past 2 d dropped. A seasonal bucket a week back (on 5 min edges) comes
 * from the 5 min tier without decoding anything and equals the
 * brute-force sums of the samples written; one inside the raw retention
 * is decoded from raw, and equal too. */
static void test_db_history_tiers(void **state)
{
    (void)state;
    const int64_t MIN = 60000, DAY = 86400000, T0 = 1767225600000LL, now = T0 + 10 * DAY + DAY / 2;
    const size_t N = 10 * 1440 + 720;
    int64_t *ts = malloc(N * sizeof *ts);
    double *v = malloc(N * sizeof *v);
    mk_point *p = malloc(1440 * sizeof *p);
    assert_true(ts && v && p);
    mk_rng rng = {SEED + 9};
    printf("seed %u\n", SEED + 9);
    for (size_t i = 0; i < N; i++) {
        ts[i] = T0 + (int64_t)i * MIN + 30000;
        v[i] = (double)(100 + mk_rng_below(&rng, 900));
    }
    char *dir = mk_test_dir("detector_tiers");
    mk_faultenv fe;
    mk_db *db = mk_test_open_at(dir, &fe, now, 2 * DAY);
    mk_diag diag = {0};
    uint64_t sid;
    assert_int_equal(mk_db_series(db, "m", NULL, 0, "f", &sid, &diag), MK_OK);
    for (size_t i = 0; i < N; i += 1440) {
        size_t k = N - i < 1440 ? N - i : 1440;
        for (size_t j = 0; j < k; j++) p[j] = (mk_point){sid, ts[i + j], v[i + j]};
        assert_int_equal(mk_db_write(db, p, k, &diag), MK_OK);
        assert_int_equal(mk_db_flush(db, &diag), MK_OK);
    }
    assert_int_equal(mk_db_compact(db, NULL, &diag), MK_OK);
    uint64_t n_drop = 0;
    assert_int_equal(mk_db_retention(db, 0, NULL, NULL, &n_drop, &diag), MK_OK);
    assert_true(n_drop >= 1);
    mk_det_db_history h;
    mk_det_db_history_init(&h, db, sid);
    for (int q = 0; q < 6; q++) {
        /* 30 min buckets, a week and a day back from now - q h */
        int64_t t = now - q * 3600000LL;
        int64_t from = (t - 7 * DAY) / 1800000 * 1800000, to = from + 1800000;
        mk_det_agg a, b;
        uint64_t n_fills0 = h.n_fills;
        assert_int_equal(mk_det_db_history_fn(&h, from, to, &a, &diag), MK_OK);
        mk_det_agg_of(ts, v, N, from, to, &b);
        assert_int_equal(h.n_fills, n_fills0); /* the tier: nothing decoded */
        assert_true(b.count == 30);
        assert_true(a.count == b.count);
        assert_true(a.sum == b.sum);
        assert_true(a.sumsq == b.sumsq);
        from = (t - DAY) / 1800000 * 1800000;
        to = from + 1800000;
        uint64_t n_fills = h.n_fills;
        assert_int_equal(mk_det_db_history_fn(&h, from, to, &a, &diag), MK_OK);
        mk_det_agg_of(ts, v, N, from, to, &b);
        assert_true(h.n_fills >= n_fills); /* raw (a cache slot, or decoded now) */
        assert_true(b.count == 30);
        assert_true(a.count == b.count && a.sum == b.sum && a.sumsq == b.sumsq);
    }
    assert_true(h.n_fills > 0);
    mk_det_db_history_free(&h);
    assert_int_equal(mk_db_close(db, &diag), MK_OK);
    mk_test_rmrf(dir);
    free(dir);
    free(ts);
    free(v);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ewma_hand),
        cmocka_unit_test(test_mad_hand),
        cmocka_unit_test(test_mad_random_vs_sort),
        cmocka_unit_test(test_rls_vs_batch),
        cmocka_unit_test(test_combiner_range_warmup),
        cmocka_unit_test(test_determinism_and_reset),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_online_equals_backfill),
        cmocka_unit_test(test_db_history_vs_arrays),
        cmocka_unit_test(test_db_history_tiers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
