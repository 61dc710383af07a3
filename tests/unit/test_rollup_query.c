/*
 * tests/unit/test_rollup_query.c — the query planner reading rollup tiers.
 * The reference is the same query forced onto raw samples
 * (tier_mode = MK_QUERY_TIER_RAW, the path the other query tests check
 * against brute force): with values that are multiples of 1/4 every sum is
 * exact in any order, so both answers must be byte for byte the same (CSV,
 * ms epochs). Covered: aligned and unaligned ranges (raw edges), GROUP BY
 * tags, intervals wider than a rollup window, late data written after the
 * tiers were built (not yet rolled up, then rolled up), and EXPLAIN naming
 * the tier.
 *
 * test_direct: the direct tier path (query/exec.c, rollup buckets folded
 * straight into the answer) against two references on randomized data
 * (gaps, several fields and series per group, late data in the head):
 * raw samples forced, and the general aggregate path over the same tier
 * (the test hook mk_x_tier_direct_off). Random statements mix functions,
 * widths that are and are not multiples of the tiers' widths, offsets,
 * aligned and unaligned ranges, every fill mode, time zones, DESC, LIMIT,
 * OFFSET, SLIMIT and SOFFSET; on 2 threads and on 1 (the same answer).
 * test_direct_nan: NaN samples, where the tier
 * counts them in count() (as chunk summaries do) and raw decoding skips
 * them: there the direct path must equal the general tier path.
 * test_iter_reuse: one bucket iterator reset across snapshots (head data,
 * a newer raw block, a rebuilt tier) and read with and without counts
 * (mk_bucket_iter_fields_only), against brute force over raw samples.
 */
#include "testutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meerkat/meerkat.h"
#include "meerkat/query.h"
#include "rollup.h" /* mk_bucket_iter_fields_only */

/* query/exec_int.h's test hook: 1 turns the direct tier path off */
extern int mk_x_tier_direct_off;

static mk_err sink(void *ctx, const char *p, size_t n)
{
    mk_sb_add(ctx, p, n);
    return MK_OK;
}

static int g_threads = 2; /* n_threads of the queries run */

static char *run(mk_db *db, const char *q, int tier_mode)
{
    mk_query_opts o = {0};
    o.now_ns = 1000000000000000LL;
    o.tier_mode = tier_mode;
    o.n_threads = g_threads;
    mk_qresult *r = NULL;
    mk_diag d = {0};
    if (mk_query_exec(db, q, strlen(q), &o, &r, &d)) fail_msg("%s: %s", q, d.msg);
    mk_sbuf b = {0};
    mk_qout_opts oo = {MK_QFMT_CSV, "ms", 0, 0};
    if (mk_qresult_write(r, &oo, sink, &b, &d)) fail_msg("write: %s", d.msg);
    mk_qresult_free(r);
    char *s = strdup(mk_sb_str(&b));
    mk_sb_free(&b);
    return s;
}

static void same_both_ways(mk_db *db, const char *q)
{
    char *a = run(db, q, MK_QUERY_TIER_AUTO), *b = run(db, q, MK_QUERY_TIER_RAW);
    if (strcmp(a, b) != 0) fail_msg("%s:\nauto:\n%s\nraw:\n%s", q, a, b);
    if (strlen(a) < 40) fail_msg("%s: suspiciously short answer: %s", q, a);
    free(a);
    free(b);
}

static const char *queries[] = {
    "SELECT count(v), sum(v), min(v), max(v), mean(v), spread(v) FROM cpu WHERE time >= 4000ms AND time < 60000ms GROUP BY time(1000ms)",
    "SELECT count(v), max(v), mean(v) FROM cpu WHERE time >= 1234ms AND time < 61111ms GROUP BY time(1000ms), host",
    "SELECT sum(v), min(v) FROM cpu WHERE time >= 0ms AND time < 64000ms GROUP BY time(10000ms) fill(none)",
    "SELECT max(v) FROM cpu WHERE host = 'h1' AND time >= 500ms AND time < 70000ms GROUP BY time(100ms) fill(none)",
    "SELECT mean(v) FROM cpu WHERE time >= 2000ms AND time < 50000ms GROUP BY time(3000ms, 1000ms)",
};

static void check_all(mk_db *db)
{
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) same_both_ways(db, queries[i]);
}

static void test_planner(void **state)
{
    (void)state;
    char *dir = mk_test_dir("rollup_query");
    mk_options o;
    mk_options_init(&o);
    o.fsync = MK_FSYNC_OFF;
    o.block_span_ms = 1000;
    o.seal_gap_ms = -1;
    o.is_compaction_off = 1;
    o.compact_ranges_ms[0] = 4000;
    o.compact_ranges_ms[1] = 16000;
    o.rollup_steps_ms[0] = 100;
    o.rollup_min_density = 1; /* every series: the reference has all buckets */
    o.rollup_steps_ms[1] = 500;
    mk_db *db = NULL;
    mk_diag d = {0};
    assert_int_equal(mk_db_open(dir, &o, &db, &d), MK_OK);
    uint64_t ids[3];
    for (int h = 0; h < 3; h++) {
        char name[8];
        snprintf(name, sizeof name, "h%d", h);
        mk_tag t = {"host", name};
        assert_int_equal(mk_db_series(db, "cpu", &t, 1, "v", &ids[h], &d), MK_OK);
    }
    mk_rng g = {77};
    print_message("test_rollup_query: seed 77\n");
    for (int64_t t = 0; t < 64000; t += 7) {
        mk_point p = {ids[mk_rng_below(&g, 3)], t, (double)mk_rng_below(&g, 4000) / 4 - 300};
        assert_int_equal(mk_db_write(db, &p, 1, &d), MK_OK);
        if (t % 4000 < 7) assert_int_equal(mk_db_flush(db, &d), MK_OK);
    }
    assert_int_equal(mk_db_flush(db, &d), MK_OK);
    check_all(db); /* no tier built yet: the bucket iterator answers from raw */
    {
        char *e = run(db, "EXPLAIN SELECT mean(v) FROM cpu WHERE time >= 0ms AND time < 8000ms GROUP BY time(1000ms)", 0);
        if (!strstr(e, "tier: raw (no rollup block covers the range yet)")) fail_msg("EXPLAIN before any tier:\n%s", e);
        free(e);
    }
    assert_int_equal(mk_db_compact(db, NULL, &d), MK_OK);
    check_all(db);
    char *s = run(db, "EXPLAIN SELECT mean(v) FROM cpu WHERE time >= 0ms AND time < 8000ms GROUP BY time(1000ms)", 0);
    if (!strstr(s, "tier: rollup 500ms")) fail_msg("EXPLAIN does not name the tier:\n%s", s);
    free(s);
    s = run(db, "EXPLAIN SELECT mean(v) FROM cpu WHERE time >= 0ms AND time < 8000ms GROUP BY time(1000ms)", MK_QUERY_TIER_RAW);
    if (!strstr(s, "tier: raw")) fail_msg("EXPLAIN with raw forced:\n%s", s);
    free(s);
    s = run(db, "EXPLAIN SELECT median(v) FROM cpu WHERE time >= 0ms AND time < 8000ms GROUP BY time(1000ms)", 0);
    if (!strstr(s, "tier: raw")) fail_msg("EXPLAIN median:\n%s", s);
    free(s);
    /* the tier was really read: EXPLAIN ANALYZE counts chunks from summaries */
    s = run(db, "EXPLAIN ANALYZE SELECT count(v) FROM cpu WHERE time >= 0ms AND time < 64000ms GROUP BY time(1000ms)", 0);
    if (!strstr(s, "chunks from summaries") || strstr(s, "chunks from summaries 0,")) fail_msg("no tier chunks read:\n%s", s);
    free(s);
    /* late data over rolled-up windows: answered right before and after the
     * tiers catch up */
    for (int k = 0; k < 500; k++) {
        mk_point p = {ids[mk_rng_below(&g, 3)], (int64_t)mk_rng_below(&g, 64000), (double)mk_rng_below(&g, 4000) / 4};
        assert_int_equal(mk_db_write(db, &p, 1, &d), MK_OK);
    }
    check_all(db); /* in the head */
    assert_int_equal(mk_db_flush(db, &d), MK_OK);
    check_all(db); /* sealed, tiers stale */
    assert_int_equal(mk_db_compact(db, NULL, &d), MK_OK);
    check_all(db); /* rebuilt */
    assert_int_equal(mk_db_close(db, &d), MK_OK);
    mk_test_rmrf(dir);
    free(dir);
}

/* dir opened with 1 s blocks, no background thread, tiers of 100 and 500
 * ms; min_density: mk_options.rollup_min_density (0: the default). */
static mk_db *open_tiered(const char *dir, uint32_t min_density)
{
    mk_options o;
    mk_options_init(&o);
    o.fsync = MK_FSYNC_OFF;
    o.block_span_ms = 1000;
    o.seal_gap_ms = -1;
    o.is_compaction_off = 1;
    o.compact_ranges_ms[0] = 4000;
    o.compact_ranges_ms[1] = 16000;
    o.rollup_steps_ms[0] = 100;
    o.rollup_steps_ms[1] = 500;
    o.rollup_min_density = min_density;
    mk_db *db = NULL;
    mk_diag d = {0};
    assert_int_equal(mk_db_open(dir, &o, &db, &d), MK_OK);
    return db;
}

/* The default density rule: with raw data kept forever, a series sampled
 * fewer than 16 times per tier bucket gets no buckets in that tier (they
 * would cost more than its samples); its queries are answered from raw, the
 * same as raw forced, while a dense series is read from the tier. */
static void test_sparse(void **state)
{
    (void)state;
    char *dir = mk_test_dir("rollup_sparse");
    mk_db *db = open_tiered(dir, 0);
    mk_diag d = {0};
    uint64_t dense, sparse;
    mk_tag td = {"host", "dense"}, ts = {"host", "sparse"};
    assert_int_equal(mk_db_series(db, "cpu", &td, 1, "v", &dense, &d), MK_OK);
    assert_int_equal(mk_db_series(db, "cpu", &ts, 1, "v", &sparse, &d), MK_OK);
    for (int64_t t = 0; t < 32000; t += 5) {
        mk_point p = {dense, t, (double)(t % 97) / 4};
        assert_int_equal(mk_db_write(db, &p, 1, &d), MK_OK);
        if (t % 50 == 0) { /* 2 per 100 ms bucket, 10 per 500 ms bucket: under 16 */
            mk_point q = {sparse, t, (double)(t % 89) / 4};
            assert_int_equal(mk_db_write(db, &q, 1, &d), MK_OK);
        }
    }
    assert_int_equal(mk_db_flush(db, &d), MK_OK);
    assert_int_equal(mk_db_compact(db, NULL, &d), MK_OK);
    same_both_ways(db, "SELECT count(v), sum(v), min(v), max(v), mean(v) FROM cpu WHERE time >= 0ms AND time < 32000ms GROUP BY time(500ms), host");
    same_both_ways(db, "SELECT max(v) FROM cpu WHERE host = 'sparse' AND time >= 0ms AND time < 32000ms GROUP BY time(100ms)");
    char *s = run(db, "EXPLAIN ANALYZE SELECT count(v) FROM cpu WHERE host = 'dense' AND time >= 0ms AND time < 32000ms GROUP BY time(500ms)", 0);
    if (!strstr(s, "chunks from summaries") || strstr(s, "chunks from summaries 0,")) fail_msg("dense: no tier chunks read:\n%s", s);
    free(s);
    s = run(db, "EXPLAIN ANALYZE SELECT count(v) FROM cpu WHERE host = 'sparse' AND time >= 0ms AND time < 32000ms GROUP BY time(500ms)", 0);
    if (!strstr(s, "chunks from summaries 0,")) fail_msg("sparse: read from a tier it should not have:\n%s", s);
    free(s);
    assert_int_equal(mk_db_close(db, &d), MK_OK);
    mk_test_rmrf(dir);
    free(dir);
}

/* The three answers of q: the direct tier path, the general path over the
 * same tier, raw forced. Returns 1 when the direct path was taken. */
static int three_ways(mk_db *db, const char *q, int with_raw)
{
    char *a = run(db, q, MK_QUERY_TIER_AUTO);
    mk_x_tier_direct_off = 1;
    char *b = run(db, q, MK_QUERY_TIER_AUTO);
    mk_x_tier_direct_off = 0;
    if (strcmp(a, b) != 0) fail_msg("%s:\ndirect:\n%s\ngeneral path:\n%s", q, a, b);
    g_threads = 1; /* the same answer on one thread */
    char *a1 = run(db, q, MK_QUERY_TIER_AUTO);
    g_threads = 2;
    if (strcmp(a, a1) != 0) fail_msg("%s:\ndirect, 2 threads:\n%s\n1 thread:\n%s", q, a, a1);
    free(a1);
    if (with_raw) {
        char *c = run(db, q, MK_QUERY_TIER_RAW);
        if (strcmp(a, c) != 0) fail_msg("%s:\ndirect:\n%s\nraw:\n%s", q, a, c);
        free(c);
    }
    free(a);
    free(b);
    mk_sbuf e = {0};
    mk_sb_printf(&e, "EXPLAIN %s", q);
    char *x = run(db, mk_sb_str(&e), MK_QUERY_TIER_AUTO);
    mk_sb_free(&e);
    int is_direct = strstr(x, "folded straight into the answer") != NULL;
    free(x);
    return is_direct;
}


/* 4 hosts x fields v, w over [0, 64000) ms: h0 dense, h1 sparser, h2 with
 * long gaps, h3 only in [20000, 40000); values multiples of 1/4 (sums exact
 * in any order); nan_every > 0: about one v sample in nan_every is NaN. */
static void fill_random(mk_db *db, mk_rng *g, int nan_every)
{
    mk_diag d = {0};
    uint64_t ids[4][2];
    for (int h = 0; h < 4; h++)
        for (int f = 0; f < 2; f++) {
            char name[8];
            snprintf(name, sizeof name, "h%d", h);
            mk_tag t[2] = {{"dc", h < 2 ? "east" : "west"}, {"host", name}};
            assert_int_equal(mk_db_series(db, "cpu", t, 2, f ? "w" : "v", &ids[h][f], &d), MK_OK);
        }
    for (int64_t t = 0; t < 64000; t += 5) {
        for (int h = 0; h < 4; h++) {
            if (h == 1 && mk_rng_below(g, 3)) continue;
            if (h == 2 && (t / 3000) % 3 != 0) continue;
            if (h == 3 && (t < 20000 || t >= 40000 || mk_rng_below(g, 2))) continue;
            for (int f = 0; f < 2; f++) {
                double v = (double)mk_rng_below(g, 4000) / 4 - 300;
                if (nan_every && f == 0 && mk_rng_below(g, (uint64_t)nan_every) == 0) v = NAN;
                mk_point p = {ids[h][f], t, v};
                assert_int_equal(mk_db_write(db, &p, 1, &d), MK_OK);
            }
        }
        if (t % 4000 == 3995) assert_int_equal(mk_db_flush(db, &d), MK_OK);
    }
    assert_int_equal(mk_db_flush(db, &d), MK_OK);
    assert_int_equal(mk_db_compact(db, NULL, &d), MK_OK);
}

/* A random statement the direct path may answer (or must refuse). */
static void random_query(mk_rng *g, mk_sbuf *q, int is_aligned_only)
{
    static const char *fns[] = {"count", "sum", "mean", "min", "max", "spread"};
    static const char *widths[] = {"500ms", "1000ms", "1500ms", "100ms", "300ms", "2000ms", "250ms", "16000ms", "32s", "3s"};
    static const char *offsets[] = {"", "", "", ", 100ms", ", 500ms", ", 250ms", ", -1000ms"};
    static const char *fills[] = {"", "", " fill(none)", " fill(null)", " fill(0)", " fill(-2.5)", " fill(previous)", " fill(linear)"};
    static const char *wheres[] = {"", "", " AND host = 'h0'", " AND host = 'h2'", " AND dc = 'west'", " AND host =~ /h[13]/"};
    static const char *groups[] = {"", "", ", host", ", dc", ", *"};
    mk_sb_printf(q, "SELECT ");
    int n = 1 + (int)mk_rng_below(g, 3);
    for (int i = 0; i < n; i++) {
        const char *fn = fns[mk_rng_below(g, 6)];
        mk_sb_printf(q, "%s%s(%s)", i ? ", " : "", fn, mk_rng_below(g, 3) ? "v" : "w");
    }
    int64_t lo, hi;
    if (is_aligned_only || mk_rng_below(g, 3) == 0) {
        lo = 16000 * (int64_t)mk_rng_below(g, 3);
        hi = lo + 16000 * (1 + (int64_t)mk_rng_below(g, 3));
    } else {
        lo = (int64_t)mk_rng_below(g, 30000);
        hi = lo + 1 + (int64_t)mk_rng_below(g, 40000);
    }
    mk_sb_printf(q, " FROM cpu WHERE time >= %" PRId64 "ms AND time %s %" PRId64 "ms%s GROUP BY time(%s%s)%s%s", lo,
                 is_aligned_only || mk_rng_below(g, 2) ? "<" : "<=", hi, wheres[mk_rng_below(g, 6)], widths[mk_rng_below(g, 10)],
                 offsets[mk_rng_below(g, 7)], groups[mk_rng_below(g, 5)], fills[mk_rng_below(g, 8)]);
    if (mk_rng_below(g, 4) == 0) mk_sb_printf(q, " ORDER BY time DESC");
    if (mk_rng_below(g, 5) == 0) mk_sb_printf(q, " LIMIT %d", 1 + (int)mk_rng_below(g, 20));
    if (mk_rng_below(g, 6) == 0) mk_sb_printf(q, " OFFSET %d", (int)mk_rng_below(g, 30));
    if (mk_rng_below(g, 8) == 0) mk_sb_printf(q, " SLIMIT %d", 1 + (int)mk_rng_below(g, 2));
    if (mk_rng_below(g, 8) == 0) mk_sb_printf(q, " SOFFSET %d", (int)mk_rng_below(g, 2));
    if (mk_rng_below(g, 10) == 0) mk_sb_printf(q, " tz('Europe/Paris')");
}

static void test_direct(void **state)
{
    (void)state;
    char *dir = mk_test_dir("rollup_direct");
    mk_db *db = open_tiered(dir, 1); /* every series gets buckets */
    mk_rng g = {4242};
    print_message("test_direct: seed 4242\n");
    fill_random(db, &g, 0);
    /* the statements the direct path exists for, and its edges */
    static const char *fixed[] = {
        "SELECT mean(v) FROM cpu WHERE host = 'h0' AND time >= 0ms AND time < 64000ms GROUP BY time(1000ms)",
        "SELECT max(v) FROM cpu WHERE time >= 16000ms AND time < 48000ms GROUP BY time(500ms)",
        "SELECT count(v), sum(w), min(v), max(w), mean(v), spread(v) FROM cpu WHERE time >= 1234ms AND time <= 51111ms GROUP BY time(1000ms), host fill(none)",
        "SELECT mean(v) FROM cpu WHERE time >= 0ms AND time < 64000ms GROUP BY time(1000ms), host fill(linear) ORDER BY time DESC",
        "SELECT count(v) FROM cpu WHERE host = 'h3' AND time >= 0ms AND time < 64000ms GROUP BY time(2000ms)",
        "SELECT count(v) FROM cpu WHERE host = 'h3' AND time >= 0ms AND time < 64000ms GROUP BY time(2000ms) fill(previous)",
        /* one series without data in the range: no series in the answer */
        "SELECT max(v) FROM cpu WHERE host = 'h3' AND time >= 0ms AND time < 16000ms GROUP BY time(1000ms)",
        "SELECT max(v) FROM cpu WHERE host = 'h3' AND time >= 500ms AND time < 16000ms GROUP BY time(1000ms) fill(none)",
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!three_ways(db, fixed[i], 1)) fail_msg("the direct path was not taken: %s", fixed[i]);
    /* first() and last() read the tier through the general path when each
     * group is one series (GROUP BY host or *; EXPLAIN names the tier) and
     * equal raw samples forced, with raw edges and not; over groups of
     * several series (GROUP BY dc, or none) they read raw samples */
    for (int i = 0; i < 80; i++) {
        static const char *fl[] = {"first", "last"};
        static const char *widths[] = {"100ms", "500ms", "1000ms", "1500ms", "16000ms"};
        static const char *tails[] = {"", ", host", ", * fill(none)", ", dc fill(previous)", " fill(linear) ORDER BY time DESC"};
        int64_t lo = i % 2 ? 16000 * (int64_t)mk_rng_below(&g, 3) : (int64_t)mk_rng_below(&g, 30000);
        int64_t hi = lo + (i % 2 ? 16000 : 1 + (int64_t)mk_rng_below(&g, 34000));
        mk_sbuf q = {0};
        int k = (int)mk_rng_below(&g, 5), is_one = k == 1 || k == 2;
        mk_sb_printf(&q, "SELECT %s(%s)%s FROM cpu WHERE time >= %" PRId64 "ms AND time < %" PRId64 "ms GROUP BY time(%s)%s",
                     fl[i % 2 == 0], i % 3 ? "v" : "w", i % 4 == 0 ? ", last(w), count(v)" : "", lo, hi,
                     widths[mk_rng_below(&g, 5)], tails[k]);
        three_ways(db, mk_sb_str(&q), 1);
        if (i % 2) { /* aligned: whole tier buckets, so a tier may answer */
            mk_sbuf e = {0};
            mk_sb_printf(&e, "EXPLAIN %s", mk_sb_str(&q));
            char *x = run(db, mk_sb_str(&e), MK_QUERY_TIER_AUTO);
            if (is_one && !strstr(x, "tier: rollup")) fail_msg("%s: no tier read:\n%s", mk_sb_str(&q), x);
            if (!is_one && !strstr(x, "first/last over several series")) fail_msg("%s: not raw:\n%s", mk_sb_str(&q), x);
            free(x);
            mk_sb_free(&e);
        }
        mk_sb_free(&q);
    }
    int n_direct = 0, n_q = 300;
    for (int i = 0; i < n_q; i++) {
        mk_sbuf q = {0};
        random_query(&g, &q, 0);
        n_direct += three_ways(db, mk_sb_str(&q), 1);
        mk_sb_free(&q);
    }
    /* late data, in the head and then sealed: the tier lags there */
    mk_diag d = {0};
    uint64_t id;
    mk_tag t[2] = {{"dc", "east"}, {"host", "h0"}};
    assert_int_equal(mk_db_series(db, "cpu", t, 2, "v", &id, &d), MK_OK);
    for (int k = 0; k < 300; k++) {
        mk_point p = {id, (int64_t)mk_rng_below(&g, 64000), (double)mk_rng_below(&g, 4000) / 4};
        assert_int_equal(mk_db_write(db, &p, 1, &d), MK_OK);
    }
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) three_ways(db, fixed[i], 1);
        for (int i = 0; i < 60; i++) {
            mk_sbuf q = {0};
            random_query(&g, &q, 0);
            n_direct += three_ways(db, mk_sb_str(&q), 1);
            mk_sb_free(&q);
        }
        assert_int_equal(mk_db_flush(db, &d), MK_OK);
    }
    print_message("test_direct: %d of %d random statements took the direct path\n", n_direct, n_q + 120);
    if (n_direct < n_q / 5) fail_msg("only %d random statements took the direct path", n_direct);
    assert_int_equal(mk_db_close(db, &d), MK_OK);
    mk_test_rmrf(dir);
    free(dir);
}

static void test_direct_nan(void **state)
{
    (void)state;
    char *dir = mk_test_dir("rollup_direct_nan");
    mk_db *db = open_tiered(dir, 1); /* every series gets buckets */
    mk_rng g = {977};
    print_message("test_direct_nan: seed 977\n");
    fill_random(db, &g, 7);
    /* whole windows only: the edges' raw samples skip NaN, the tier counts it */
    int n_direct = 0;
    for (int i = 0; i < 150; i++) {
        mk_sbuf q = {0};
        random_query(&g, &q, 1);
        n_direct += three_ways(db, mk_sb_str(&q), 0);
        mk_sb_free(&q);
    }
    if (n_direct < 20) fail_msg("only %d statements took the direct path", n_direct);
    /* w has no NaN: raw agrees there too */
    if (!three_ways(db, "SELECT count(w), mean(w), max(w) FROM cpu WHERE time >= 0ms AND time < 64000ms GROUP BY time(1000ms), host", 1))
        fail_msg("direct path not taken");
    mk_diag d = {0};
    assert_int_equal(mk_db_close(db, &d), MK_OK);
    mk_test_rmrf(dir);
    free(dir);
}

/* Brute force over raw samples (mk_db_iter): per bucket of step ms in
 * [0, 64000), the count and the max (NaN-free data). */
static void brute_buckets(mk_db *db, uint64_t id, int64_t step, uint64_t *cnt, double *mx, size_t nb)
{
    mk_diag d = {0};
    mk_iter *it = NULL;
    for (size_t b = 0; b < nb; b++) { cnt[b] = 0; mx[b] = -INFINITY; }
    assert_int_equal(mk_db_iter(db, id, 0, (int64_t)nb * step, &it, &d), MK_OK);
    for (;;) {
        const int64_t *ts;
        const double *v;
        size_t n;
        assert_int_equal(mk_iter_next(it, &ts, &v, &n, &d), MK_OK);
        if (!n) break;
        for (size_t i = 0; i < n; i++) {
            size_t b = (size_t)(ts[i] / step);
            cnt[b]++;
            if (v[i] > mx[b]) mx[b] = v[i];
        }
    }
    mk_iter_free(it);
}

/* The iterator's buckets of series id against brute force: with the count
 * asked, exact counts; without (mk_bucket_iter_fields_only), a count of at
 * least 1 where there is data. One iterator, reset each time. */
static void check_iter(mk_db *db, mk_bucket_iter *bi, uint64_t id, int64_t step, int has_count)
{
    enum { NB = 64000 / 100 };
    uint64_t cnt[NB];
    double mx[NB];
    size_t nb = (size_t)(64000 / step);
    brute_buckets(db, id, step, cnt, mx, nb);
    mk_diag d = {0};
    assert_int_equal(mk_bucket_iter_reset(bi, db, id, step, 0, 64000, &d), MK_OK);
    mk_bucket_iter_fields_only(bi, MK_BUCKET_MAX | (has_count ? MK_BUCKET_COUNT : 0));
    size_t seen = 0;
    for (;;) {
        const mk_bucket *k;
        size_t n;
        assert_int_equal(mk_bucket_iter_next(bi, &k, &n, &d), MK_OK);
        if (!n) break;
        for (size_t i = 0; i < n; i++) {
            size_t b = (size_t)(k[i].start_ms / step);
            if (b >= nb || !cnt[b]) fail_msg("bucket %" PRId64 " has no data", k[i].start_ms);
            if (k[i].max != mx[b]) fail_msg("bucket %" PRId64 ": max %g, not %g", k[i].start_ms, k[i].max, mx[b]);
            if (has_count ? k[i].count != cnt[b] : k[i].count < 1)
                fail_msg("bucket %" PRId64 ": count %" PRIu64 " (%" PRIu64 " samples)", k[i].start_ms, k[i].count, cnt[b]);
            seen++;
        }
    }
    size_t want = 0;
    for (size_t b = 0; b < nb; b++) want += cnt[b] != 0;
    if (seen != want) fail_msg("%zu buckets, not %zu", seen, want);
}

/* The bucket iterator reused across snapshots (late data in the head, then
 * sealed into a block newer than the tier, then rolled up again): its
 * index of blocks by time must follow, and buckets read without their
 * count must still be right. */
static void test_iter_reuse(void **state)
{
    (void)state;
    char *dir = mk_test_dir("rollup_iter_reuse");
    mk_db *db = open_tiered(dir, 1); /* every series gets buckets */
    mk_rng g = {31337};
    print_message("test_iter_reuse: seed 31337\n");
    fill_random(db, &g, 0);
    mk_diag d = {0};
    uint64_t id;
    mk_tag t[2] = {{"dc", "west"}, {"host", "h2"}};
    assert_int_equal(mk_db_series(db, "cpu", t, 2, "v", &id, &d), MK_OK);
    mk_bucket_iter *bi = NULL;
    assert_int_equal(mk_db_iter_buckets(db, id, 500, 0, 64000, &bi, &d), MK_OK);
    for (int round = 0; round < 4; round++) {
        for (int has_count = 0; has_count < 2; has_count++) {
            check_iter(db, bi, id, 500, has_count);
            check_iter(db, bi, id, 1000, has_count);
            check_iter(db, bi, id, 100, has_count);
        }
        if (round == 3) break;
        /* late samples over rolled-up windows, some larger than any yet */
        for (int k = 0; k < 50; k++) {
            mk_point p = {id, (int64_t)mk_rng_below(&g, 64000), (double)mk_rng_below(&g, 8000) / 4};
            assert_int_equal(mk_db_write(db, &p, 1, &d), MK_OK);
        }
        if (round >= 1) assert_int_equal(mk_db_flush(db, &d), MK_OK);
        if (round == 2) assert_int_equal(mk_db_compact(db, NULL, &d), MK_OK);
    }
    mk_read_stats st;
    mk_bucket_iter_stats(bi, &st);
    if (!st.n_chunks_summary) fail_msg("no tier chunk was read");
    mk_bucket_iter_free(bi);
    assert_int_equal(mk_db_close(db, &d), MK_OK);
    mk_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_planner), cmocka_unit_test(test_sparse), cmocka_unit_test(test_direct),
                                       cmocka_unit_test(test_direct_nan), cmocka_unit_test(test_iter_reuse)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
