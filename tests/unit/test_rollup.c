/*
 * tests/unit/test_rollup.c — rollup tiers against a brute-force reference:
 * every written sample in a plain array; the expected buckets of a series
 * are computed from its last-write-wins samples directly (count, min, max,
 * first, last exact; sum and sumsq within 1e-9 relative).
 *
 * Random writes (in order, out of order, backfill, overwrites, NaN),
 * flushes, compactions (which build rollups), reopens, with and without the
 * background thread. Checked: the stored rollup blocks themselves (decoded
 * from the files of each tier directory, after a flush and a compaction,
 * when they must be up to date) and the bucket iterator at the tiers'
 * widths, at multiples of them (combined buckets, also wider than a rollup
 * window) and at a width no tier divides (raw), at any moment (late data
 * not rolled up yet must still be counted). Also: raw data expiring before
 * its rollups (fake clock), and the finest tier for a range.
 */
#include "testutil.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block.h"
#include "meerkat/meerkat.h"
#include "format.h"
#include "rollup.h"
#include "util.h"

#define N_SERIES 4
#define SPAN 1000
#define WIN 4000 /* the first compaction range (the rollup window where it is the only one) */

typedef struct rs {
    int s;
    int64_t ts;
    double v;
    uint64_t order;
} rs;

typedef struct ref {
    rs *v;
    size_t n, cap;
    uint64_t next;
} ref;

static void ref_add(ref *r, int s, int64_t ts, double v)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 4096;
        r->v = realloc(r->v, r->cap * sizeof *r->v);
        assert_non_null(r->v);
    }
    r->v[r->n++] = (rs){s, ts, v, r->next++};
}

static int cmp_rs(const void *a, const void *b)
{
    const rs *x = a, *y = b;
    if (x->s != y->s) return x->s - y->s;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Expected buckets of width step of series s (non-empty ones, in order),
 * computed naively: the last write of each ts, then per bucket. */
static size_t ref_buckets(ref *r, int s, int64_t step, mk_bucket *out)
{
    qsort(r->v, r->n, sizeof *r->v, cmp_rs);
    size_t nb = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i].s != s) continue;
        if (i + 1 < r->n && r->v[i + 1].s == s && r->v[i + 1].ts == r->v[i].ts) continue; /* a later write wins */
        int64_t st = mk_floordiv(r->v[i].ts, step) * step;
        double v = r->v[i].v;
        if (!nb || out[nb - 1].start_ms != st) {
            out[nb++] = (mk_bucket){st, 0, 0, 0, NAN, NAN, v, v};
        }
        mk_bucket *b = &out[nb - 1];
        b->count++;
        b->last = v;
        if (!isnan(v)) {
            if (isnan(b->min) || v < b->min) b->min = v;
            if (isnan(b->max) || v > b->max) b->max = v;
            b->sum += v;
            b->sumsq += v * v;
        }
    }
    return nb;
}

static int same(double a, double b) { return (isnan(a) && isnan(b)) || memcmp(&a, &b, 8) == 0 || a == b; }
static int close_to(double a, double b)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return fabs(a - b) <= 1e-9 * (m > 1 ? m : 1);
}

static void same_bucket(const mk_bucket *g, const mk_bucket *w, const char *what, int64_t step)
{
    if (g->start_ms != w->start_ms || g->count != w->count || !same(g->min, w->min) || !same(g->max, w->max) ||
        !same(g->first, w->first) || !same(g->last, w->last) || !close_to(g->sum, w->sum) || !close_to(g->sumsq, w->sumsq))
        fail_msg("%s step %" PRId64 ": bucket %" PRId64 " got n=%" PRIu64 " min=%g max=%g sum=%.17g sq=%g first=%g last=%g; "
                 "want %" PRId64 " n=%" PRIu64 " min=%g max=%g sum=%.17g sq=%g first=%g last=%g",
                 what, step, g->start_ms, g->count, g->min, g->max, g->sum, g->sumsq, g->first, g->last, w->start_ms,
                 w->count, w->min, w->max, w->sum, w->sumsq, w->first, w->last);
}

typedef struct fx {
    char *dir;
    mk_db *db;
    uint64_t ids[N_SERIES];
    mk_options o;
    mk_faultenv fe;
} fx;

static void fx_open(fx *f)
{
    mk_diag d = {0};
    if (mk_db_open(f->dir, &f->o, &f->db, &d)) fail_msg("open: %s", d.msg);
    for (int i = 0; i < N_SERIES; i++) {
        char h[16];
        snprintf(h, sizeof h, "h%d", i);
        mk_tag t = {"host", h};
        assert_int_equal(mk_db_series(f->db, "cpu", &t, 1, "v", &f->ids[i], &d), MK_OK);
    }
}

static void fx_close(fx *f)
{
    mk_diag d = {0};
    if (mk_db_close(f->db, &d)) fail_msg("close: %s", d.msg);
    f->db = NULL;
}

static void fx_init(fx *f, const char *name, int is_thread)
{
    memset(f, 0, sizeof *f);
    f->dir = mk_test_dir(name);
    mk_faultenv_init(&f->fe);
    mk_options_init(&f->o);
    f->o.env = &f->fe.env;
    f->o.fsync = MK_FSYNC_OFF;
    f->o.block_span_ms = SPAN;
    f->o.seal_gap_ms = -1;
    f->o.compact_ranges_ms[0] = WIN;
    f->o.compact_ranges_ms[1] = 4 * WIN;
    f->o.rollup_steps_ms[0] = 100;
    f->o.rollup_min_density = 1; /* every series: the reference has all buckets */
    f->o.rollup_steps_ms[1] = 500;
    f->o.is_compaction_off = !is_thread;
    f->o.compact_interval_ms = 3;
    fx_open(f);
}

static const int64_t all_steps[] = {100, 500, 1000, 300, 2 * WIN + 500 * 3, 7};

/* The iterator at every width of steps[0..n_steps) against the reference
 * (need_tier: some bucket of the first three widths must come from a tier). */
static void check_steps(fx *f, ref *r, const char *when, int need_tier, const int64_t *steps, size_t n_steps)
{
    mk_bucket *want = malloc((r->n + 1) * sizeof *want);
    mk_bucket_iter *it = NULL;
    mk_diag d = {0};
    uint64_t n_from_tier = 0;
    for (size_t si = 0; si < n_steps; si++) {
        for (int s = 0; s < N_SERIES; s++) {
            size_t nw = ref_buckets(r, s, steps[si], want), k = 0;
            mk_err rc = it ? mk_bucket_iter_reset(it, f->db, f->ids[s], steps[si], INT64_MIN / 2, INT64_MAX / 2, &d)
                           : mk_db_iter_buckets(f->db, f->ids[s], steps[si], INT64_MIN / 2, INT64_MAX / 2, &it, &d);
            if (rc) fail_msg("%s: iter: %s", when, d.msg);
            for (;;) {
                const mk_bucket *b;
                size_t n;
                if (mk_bucket_iter_next(it, &b, &n, &d)) fail_msg("%s: next: %s", when, d.msg);
                if (!n) break;
                for (size_t i = 0; i < n; i++, k++) {
                    if (k >= nw) fail_msg("%s step %" PRId64 " series %d: extra bucket at %" PRId64, when, steps[si], s, b[i].start_ms);
                    same_bucket(&b[i], &want[k], when, steps[si]);
                }
            }
            if (k != nw) fail_msg("%s step %" PRId64 " series %d: %zu buckets, want %zu", when, steps[si], s, k, nw);
        }
        mk_read_stats st;
        mk_bucket_iter_stats(it, &st);
        if (si < 3) n_from_tier += st.n_chunks_summary;
    }
    if (need_tier && n_from_tier == 0) fail_msg("%s: no bucket came from a tier", when);
    mk_bucket_iter_free(it);
    free(want);
}

static void check_iter(fx *f, ref *r, const char *when, int need_tier)
{
    check_steps(f, r, when, need_tier, all_steps, sizeof all_steps / sizeof all_steps[0]);
}

/* The stored rollup blocks, decoded from the files: every bucket equals the
 * reference's. Call when they must be up to date (after flush + compact). */
static void check_files(fx *f, ref *r, const char *when)
{
    mk_bucket *want = malloc((r->n + 1) * sizeof *want);
    mk_bucket *got = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *got);
    int64_t *ts = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *ts);
    double *v = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *v);
    mk_codec *codec = NULL;
    assert_int_equal(mk_codec_new(&codec), MK_OK);
    mk_diag d = {0};
    for (int ti = 0; ti < 2; ti++) {
        int64_t step = ti ? 500 : 100;
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/rollup/%" PRId64, f->dir, step);
        /* per series: collect buckets from all files, compare as a set */
        for (int s = 0; s < N_SERIES; s++) {
            size_t nw = ref_buckets(r, s, step, want);
            char *seen = calloc(nw + 1, 1);
            size_t n_seen = 0;
            DIR *dd = opendir(dir);
            assert_non_null(dd);
            struct dirent *e;
            while ((e = readdir(dd))) {
                if (strlen(e->d_name) != 20) continue;
                char path[8192];
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                mk_block *b = NULL;
                if (mk_block_open(mk_env_default(), path, &b, &d)) fail_msg("%s: %s", when, d.msg);
                assert_int_equal(mk_block_flags(b), MK_BLOCK_FLAG_ROLLUP);
                size_t nc;
                const mk_block_chunk *c = mk_block_find(b, f->ids[s], &nc);
                for (size_t j = 0; j < nc; j++) {
                    const uint8_t *p;
                    assert_int_equal(mk_block_payload(b, &c[j], &p, &d), MK_OK);
                    uint32_t n;
                    if (mk_rollup_decode(codec, p, c[j].len, got, MK_CHUNK_MAX_SAMPLES, &n, ts, v, &d)) fail_msg("%s: %s", when, d.msg);
                    assert_int_equal(n, c[j].sum.count);
                    for (uint32_t i = 0; i < n; i++) {
                        size_t lo = 0, hi = nw;
                        while (lo < hi) {
                            size_t mid = (lo + hi) / 2;
                            if (want[mid].start_ms < got[i].start_ms) lo = mid + 1;
                            else hi = mid;
                        }
                        if (lo >= nw || want[lo].start_ms != got[i].start_ms)
                            fail_msg("%s: %s holds bucket %" PRId64 " the data has not", when, path, got[i].start_ms);
                        if (seen[lo]++) fail_msg("%s: bucket %" PRId64 " stored twice", when, got[i].start_ms);
                        n_seen++;
                        same_bucket(&got[i], &want[lo], when, step);
                    }
                }
                mk_block_close(b);
            }
            closedir(dd);
            if (n_seen != nw) fail_msg("%s: tier %" PRId64 " series %d: %zu buckets stored, want %zu", when, step, s, n_seen, nw);
            free(seen);
        }
    }
    mk_codec_free(codec);
    free(want);
    free(got);
    free(ts);
    free(v);
}

static void run_random(uint64_t seed, int is_thread)
{
    print_message("test_rollup: seed %" PRIu64 " thread %d\n", seed, is_thread);
    mk_rng g = {seed};
    fx f;
    fx_init(&f, "rollup", is_thread);
    ref r = {0};
    int64_t now_ts = 50000;
    char when[96];
    mk_diag d = {0};
    for (int step = 0; step < 200; step++) {
        mk_point p[48];
        size_t n = 1 + mk_rng_below(&g, 48);
        int kind = (int)mk_rng_below(&g, 10);
        for (size_t i = 0; i < n; i++) {
            int s = (int)mk_rng_below(&g, N_SERIES);
            int64_t ts;
            if (kind <= 5) ts = (now_ts += 1 + (int64_t)mk_rng_below(&g, 30));
            else if (kind <= 7) ts = now_ts - (int64_t)mk_rng_below(&g, 2 * WIN);
            else ts = (int64_t)mk_rng_below(&g, (uint64_t)now_ts);
            if (kind > 5) ts -= ts % 5; /* late writes often hit existing timestamps */
            double v = (double)(int64_t)mk_rng_below(&g, 200000) / 100 - 1000;
            if (mk_rng_below(&g, 300) == 0) v = NAN;
            p[i] = (mk_point){f.ids[s], ts, v};
            ref_add(&r, s, ts, v);
        }
        if (mk_db_write(f.db, p, n, &d)) fail_msg("write: %s", d.msg);
        int op = (int)mk_rng_below(&g, 30);
        if (op == 0) {
            assert_int_equal(mk_db_flush(f.db, &d), MK_OK);
        } else if (op == 1 || op == 2) {
            if (op == 1) assert_int_equal(mk_db_flush(f.db, &d), MK_OK);
            if (mk_db_compact(f.db, NULL, &d)) fail_msg("seed %" PRIu64 ": compact: %s", seed, d.msg);
            snprintf(when, sizeof when, "seed %" PRIu64 " step %d after compact", seed, step);
            check_iter(&f, &r, when, 0);
            if (op == 1 && !is_thread) check_files(&f, &r, when);
        } else if (op == 3) {
            fx_close(&f);
            fx_open(&f);
            snprintf(when, sizeof when, "seed %" PRIu64 " step %d after reopen", seed, step);
            check_iter(&f, &r, when, 0);
        } else if (op == 4) {
            snprintf(when, sizeof when, "seed %" PRIu64 " step %d", seed, step);
            check_iter(&f, &r, when, 0);
        }
    }
    assert_int_equal(mk_db_flush(f.db, &d), MK_OK);
    assert_int_equal(mk_db_compact(f.db, NULL, &d), MK_OK);
    snprintf(when, sizeof when, "seed %" PRIu64 " end", seed);
    check_iter(&f, &r, when, 1);
    if (!is_thread) check_files(&f, &r, when);
    fx_close(&f);
    fx_open(&f);
    check_iter(&f, &r, when, 1);
    fx_close(&f);
    mk_test_rmrf(f.dir);
    free(f.dir);
    free(r.v);
}

static void test_random(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 2; seed++) run_random(seed, 0);
}

static void test_random_thread(void **state)
{
    (void)state;
    run_random(201, 1);
}

/* Raw data expires before its rollups; the rollups then still answer, and
 * the finest tier moves from raw to the tiers as the range gets older. */
static void test_raw_expires_first(void **state)
{
    (void)state;
    fx f;
    fx_init(&f, "rollup_ret", 0);
    fx_close(&f);
    f.o.compact_ranges_ms[1] = 0; /* blocks of one window each */
    fx_open(&f);
    ref r = {0};
    mk_diag d = {0};
    for (int64_t t = 0; t < 4 * WIN; t += 10) {
        mk_point p = {f.ids[0], t, (double)(t % 997)};
        ref_add(&r, 0, t, p.value);
        assert_int_equal(mk_db_write(f.db, &p, 1, &d), MK_OK);
        if (t % SPAN == SPAN - 10) assert_int_equal(mk_db_flush(f.db, &d), MK_OK);
    }
    f.fe.fake_now_ms = 4 * WIN;
    assert_int_equal(mk_db_compact(f.db, NULL, &d), MK_OK);
    fx_close(&f);
    f.o.retention_raw_ms = 2 * WIN;       /* raw windows 0 and 1 go */
    f.o.retention_rollup_ms[0] = 3 * WIN; /* 100 ms tier: window 0 goes */
    f.o.retention_rollup_ms[1] = 0;       /* 500 ms tier: kept */
    f.fe.fake_now_ms = 19000; /* raw windows 0, 1 past (max 7990 + 8000); 100 ms tier window 0 (3999 + 12000) */
    fx_open(&f);
    int64_t step;
    assert_int_equal(mk_db_finest_tier(f.db, f.ids[0], 3 * WIN, 4 * WIN, &step, &d), MK_OK);
    assert_int_equal(step, 0);
    assert_int_equal(mk_db_finest_tier(f.db, f.ids[0], 2 * WIN, 4 * WIN, &step, &d), MK_OK);
    assert_int_equal(step, 100);
    assert_int_equal(mk_db_finest_tier(f.db, f.ids[0], 0, 4 * WIN, &step, &d), MK_OK);
    assert_int_equal(step, 500);
    uint64_t n = 0;
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    assert_true(n > 0);
    /* raw: windows 0, 1 gone */
    mk_iter *it = NULL;
    assert_int_equal(mk_db_iter(f.db, f.ids[0], 0, 2 * WIN, &it, &d), MK_OK);
    const int64_t *ts;
    const double *v;
    size_t m;
    assert_int_equal(mk_iter_next(it, &ts, &v, &m, &d), MK_OK);
    assert_int_equal(m, 0);
    mk_iter_free(it);
    /* the 500 ms tier still answers for all of it, exactly */
    static const int64_t coarse[] = {500, 1000, 2 * WIN};
    check_steps(&f, &r, "after raw expired", 1, coarse, 3);
    fx_close(&f);
    mk_test_rmrf(f.dir);
    free(f.dir);
    free(r.v);
}

/* Payload round trip and damage: every truncation and a flipped byte are
 * refused, never read out of bounds. */
static void test_payload(void **state)
{
    (void)state;
    mk_codec *c = NULL;
    assert_int_equal(mk_codec_new(&c), MK_OK);
    mk_bucket b[50];
    for (int i = 0; i < 50; i++) b[i] = (mk_bucket){i * 300000LL, (uint64_t)(i + 1), i * 1.5, i * 2.25, -i, i * 3.0, 0.5, NAN};
    mk_buf out = {0};
    mk_chunk_summary s;
    assert_int_equal(mk_rollup_encode(c, b, 50, &out, &s), MK_OK);
    assert_int_equal(s.count, 50);
    assert_int_equal(s.first_ts_ms, 0);
    assert_int_equal(s.last_ts_ms, 49 * 300000LL);
    mk_bucket got[64];
    int64_t *ts = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *ts);
    double *v = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *v);
    uint32_t n;
    mk_diag d = {0};
    assert_int_equal(mk_rollup_decode(c, out.data, out.len, got, 64, &n, ts, v, &d), MK_OK);
    assert_int_equal(n, 50);
    for (int i = 0; i < 50; i++) same_bucket(&got[i], &b[i], "round trip", 1);
    for (size_t len = 0; len < out.len; len++)
        assert_int_not_equal(mk_rollup_decode(c, out.data, len, got, 64, &n, ts, v, &d), MK_OK);
    assert_int_not_equal(mk_rollup_decode(c, out.data, out.len, got, 10, &n, ts, v, &d), MK_OK);
    mk_buf_free(&out);
    free(ts);
    free(v);
    mk_codec_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payload),
        cmocka_unit_test(test_raw_expires_first),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_random_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
